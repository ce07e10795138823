//! Keys and mouse: editing the input line, `@` completion, the channel
//! switcher, scrolling.

use anyhow::Result;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use super::app::{App, Switcher};
use super::render;

/// The size of the message view, for scrolling by pages.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub width: usize,
    pub height: usize,
}

/// The message view's size in a terminal of `cols` x `rows`.
pub fn view_of(cols: u16, rows: u16) -> View {
    let mut w = cols;
    if cols >= render::LIST_FROM {
        w = w.saturating_sub(18);
    }
    if cols >= render::SIDE_FROM {
        w = w.saturating_sub(34);
    }
    View {
        width: w.max(1) as usize,
        height: rows.saturating_sub(3).max(1) as usize,
    }
}

/// Complete the `@name` before the caret: the only match, or the longest
/// prefix the matches share.
pub fn complete(input: &str, caret: usize, names: &[String]) -> Option<(String, usize)> {
    let chars: Vec<char> = input.chars().collect();
    let caret = caret.min(chars.len());
    let at = chars[..caret].iter().rposition(|&c| c == '@')?;
    let word: String = chars[at + 1..caret].iter().collect();
    if !word.bytes().all(crate::names::is_name_byte) {
        return None;
    }
    let found: Vec<&String> = names.iter().filter(|n| n.starts_with(&word)).collect();
    let fill = match found.as_slice() {
        [] => return None,
        [one] => format!("{one} "),
        many => {
            let mut p = many[0].clone();
            for n in &many[1..] {
                let k = p.chars().zip(n.chars()).take_while(|(a, b)| a == b).count();
                p = p.chars().take(k).collect();
            }
            p
        }
    };
    let add: String = fill.chars().skip(word.chars().count()).collect();
    if add.is_empty() {
        return None;
    }
    let mut out: String = chars[..caret].iter().collect();
    out.push_str(&add);
    let new_caret = out.chars().count();
    out.extend(&chars[caret..]);
    Some((out, new_caret))
}

fn insert(app: &mut App, c: char) {
    let i = byte_at(&app.input, app.caret);
    app.input.insert(i, c);
    app.caret += 1;
}

fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

pub fn handle(app: &mut App, ev: Event, view: View) -> Result<()> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => {
            app.notice = None;
            if app.switcher.is_some() {
                switcher_key(app, k)
            } else {
                key(app, k, view)
            }
        }
        Event::Mouse(m) => {
            match m.kind {
                MouseEventKind::ScrollUp => render::scroll(app, view.width, view.height, -3),
                MouseEventKind::ScrollDown => render::scroll(app, view.width, view.height, 3),
                _ => {}
            }
            Ok(())
        }
        Event::Paste(text) => {
            for c in text.chars() {
                insert(app, if c == '\n' || c == '\r' { ' ' } else { c });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn switcher_key(app: &mut App, k: KeyEvent) -> Result<()> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let sw = app.switcher.as_mut().expect("open");
    match k.code {
        KeyCode::Esc => app.switcher = None,
        KeyCode::Char('c' | 'k') if ctrl => app.switcher = None,
        KeyCode::Up => sw.selected = sw.selected.saturating_sub(1),
        KeyCode::Char('p') if ctrl => sw.selected = sw.selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Tab => sw.selected += 1,
        KeyCode::Char('n') if ctrl => sw.selected += 1,
        KeyCode::Backspace => {
            sw.filter.pop();
            sw.selected = 0;
        }
        KeyCode::Enter => {
            let (filter, selected) = (sw.filter.clone(), sw.selected);
            let matches = app.matches(&filter);
            let pick = matches.get(selected.min(matches.len().saturating_sub(1)));
            if let Some(name) = pick.cloned() {
                app.switcher = None;
                app.open(&name)?;
            }
        }
        KeyCode::Char(c) if !ctrl && crate::names::is_name_byte(c as u8) && c.is_ascii() => {
            sw.filter.push(c.to_ascii_lowercase());
            sw.selected = 0;
        }
        _ => {}
    }
    if let Some(sw) = app.switcher.as_mut() {
        let n = app.channels.len().max(1);
        sw.selected = sw.selected.min(n - 1);
    }
    Ok(())
}

fn key(app: &mut App, k: KeyEvent, view: View) -> Result<()> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let alt = k.modifiers.contains(KeyModifiers::ALT);
    let page = view.height.saturating_sub(2).max(1) as isize;
    match k.code {
        KeyCode::Char('c') if ctrl => app.quit = true,
        KeyCode::Char('d') if ctrl && app.input.is_empty() => app.quit = true,
        KeyCode::Char('k') if ctrl => app.switcher = Some(Switcher::default()),
        KeyCode::Char('n') if ctrl => app.cycle(1)?,
        KeyCode::Char('p') if ctrl => app.cycle(-1)?,
        KeyCode::Down if alt => app.cycle(1)?,
        KeyCode::Up if alt => app.cycle(-1)?,
        KeyCode::Char('a') if ctrl => app.caret = 0,
        KeyCode::Char('e') if ctrl => app.caret = app.input.chars().count(),
        KeyCode::Char('u') if ctrl => {
            let i = byte_at(&app.input, app.caret);
            app.input.replace_range(..i, "");
            app.caret = 0;
        }
        KeyCode::Char('w') if ctrl => {
            let chars: Vec<char> = app.input.chars().collect();
            let mut i = app.caret.min(chars.len());
            while i > 0 && chars[i - 1] == ' ' {
                i -= 1;
            }
            while i > 0 && chars[i - 1] != ' ' {
                i -= 1;
            }
            let (a, b) = (byte_at(&app.input, i), byte_at(&app.input, app.caret));
            app.input.replace_range(a..b, "");
            app.caret = i;
        }
        KeyCode::Char('l') if ctrl => {}
        KeyCode::Char(c) if !ctrl => insert(app, c),
        KeyCode::Enter => {
            if let Err(e) = app.send() {
                app.notice = Some(format!("not sent: {e:#}"));
            }
        }
        KeyCode::Tab => {
            if let Some((s, caret)) = complete(&app.input, app.caret, &app.names()) {
                app.input = s;
                app.caret = caret;
            }
        }
        KeyCode::Backspace if app.caret > 0 => {
            app.caret -= 1;
            let i = byte_at(&app.input, app.caret);
            app.input.remove(i);
        }
        KeyCode::Delete if app.caret < app.input.chars().count() => {
            let i = byte_at(&app.input, app.caret);
            app.input.remove(i);
        }
        KeyCode::Left => app.caret = app.caret.saturating_sub(1),
        KeyCode::Right => app.caret = (app.caret + 1).min(app.input.chars().count()),
        KeyCode::Home => app.caret = 0,
        KeyCode::End if ctrl => app.top = None,
        KeyCode::End => app.caret = app.input.chars().count(),
        KeyCode::Esc => app.top = None,
        KeyCode::Up => render::scroll(app, view.width, view.height, -1),
        KeyCode::Down => render::scroll(app, view.width, view.height, 1),
        KeyCode::PageUp => render::scroll(app, view.width, view.height, -page),
        KeyCode::PageDown => render::scroll(app, view.width, view.height, page),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_a_name_or_the_shared_prefix() {
        let names: Vec<String> = ["york", "yolanda", "park"].map(String::from).to_vec();
        assert_eq!(complete("hi @pa", 6, &names), Some(("hi @park ".into(), 9)));
        assert_eq!(complete("@yo", 3, &names), None);
        assert_eq!(complete("@y", 2, &names), Some(("@yo".into(), 3)));
        assert_eq!(complete("@x", 2, &names), None);
        assert_eq!(complete("no at", 5, &names), None);
    }

    #[test]
    fn wraps_long_words_and_at_spaces() {
        assert_eq!(render::wrap("abcdefgh", 3, 3), ["abc", "def", "gh"]);
        assert_eq!(render::wrap("aaa bbb ccc", 8, 8), ["aaa bbb", "ccc"]);
        assert_eq!(render::wrap("", 5, 5), [""]);
    }
}
