//! Drawing a frame. Every text that comes from a file (records, names,
//! task subjects) goes through `names::printable` first, so it is shown as
//! text and never reaches the terminal as a control sequence; lines are
//! wrapped here, so the view knows which records it drew.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use unicode_width::UnicodeWidthChar;

use super::app::{App, Top};
use super::feed::Msg;
use crate::names::printable;

/// Widths from which the side panels show.
pub const SIDE_FROM: u16 = 100;
pub const LIST_FROM: u16 = 60;

/// Text from a file as one terminal-safe string (tabs as spaces).
pub fn safe(s: &str) -> String {
    printable(s).replace('\t', "    ")
}

/// What the view drew: records `lo..=hi` of `msgs`.
pub struct Drawn {
    pub range: Option<(usize, usize)>,
}

struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
}

/// `text` cut into lines, the first at most `first` columns wide and the
/// others `rest`, breaking at a space when one is near, else anywhere (a
/// very long word wraps too).
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut width = first.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut w = 0;
    for c in text.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width && !line.is_empty() {
            match line.rfind(' ').filter(|&i| i > line.len() / 2) {
                Some(i) => {
                    let tail = line[i + 1..].to_string();
                    line.truncate(i);
                    out.push(std::mem::replace(&mut line, tail));
                    w = line.chars().map(|c| c.width().unwrap_or(0)).sum();
                }
                None => {
                    out.push(std::mem::take(&mut line));
                    w = 0;
                }
            }
            width = rest.max(1);
        }
        line.push(c);
        w += cw;
    }
    out.push(line);
    out
}

fn clock(stamp: &str) -> String {
    crate::infra::time::parse_stamp(stamp)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_default()
}

/// A record as screen lines `width` wide: a header (time, sender, type)
/// before the first line of content, further lines indented.
pub fn msg_lines(m: &Msg, width: usize, me: &str, color: bool) -> Vec<Line<'static>> {
    let t = Theme { color };
    let from = safe(&m.from);
    let mut head = format!("{} {from}", clock(&m.timestamp));
    if !m.kind.is_empty() && m.kind != "text" {
        head.push_str(&format!(" [{}]", safe(&m.kind)));
    }
    head.push_str(": ");
    let head_w: usize = head.chars().map(|c| c.width().unwrap_or(0)).sum();
    let mut body_style = Style::default();
    if m.to_me {
        body_style = t.fg(Color::Yellow).add_modifier(Modifier::BOLD);
    }
    let name_style = if m.from == me {
        t.fg(Color::Green).add_modifier(Modifier::BOLD)
    } else if m.kind == "text" || m.kind.is_empty() {
        t.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        t.fg(Color::DarkGray)
    };
    let indent = 2;
    let mut out = Vec::new();
    let content = safe(&m.content);
    for (i, para) in content.split('\n').enumerate() {
        let (first_w, lead) = if i == 0 {
            (width.saturating_sub(head_w), head_w)
        } else {
            (width.saturating_sub(indent), indent)
        };
        let mut pieces = wrap(para, first_w, width.saturating_sub(indent)).into_iter();
        let first = pieces.next().unwrap_or_default();
        let rest: Vec<String> = pieces.collect();
        let mut spans = Vec::new();
        if i == 0 {
            let mark = if m.to_me {
                name_style.add_modifier(Modifier::REVERSED)
            } else {
                name_style
            };
            spans.push(Span::styled(head.clone(), mark));
        } else {
            spans.push(Span::raw(" ".repeat(lead)));
        }
        spans.push(Span::styled(first, body_style));
        out.push(Line::from(spans));
        for r in rest {
            out.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(r, body_style),
            ]));
        }
    }
    out
}

/// The wrapped lines on screen for a view `height` high, and the records
/// they come from; may move `top` back to following when it reached the end.
fn visible(
    app: &mut App,
    width: usize,
    height: usize,
) -> (Vec<Line<'static>>, Option<(usize, usize)>) {
    if let Some(seq) = app.anchor.take()
        && let Some(index) = app.msgs.iter().position(|m| m.seq == seq)
    {
        app.top = Some(Top { index, line: 0 });
    }
    let me = app.me.clone();
    let color = app.color;
    let lines_of = |m: &Msg| msg_lines(m, width, &me, color);
    if let Some(top) = app.top {
        let mut out = Vec::new();
        for i in top.index..app.msgs.len() {
            let ls = lines_of(&app.msgs[i]);
            let skip = if i == top.index {
                top.line.min(ls.len())
            } else {
                0
            };
            out.extend(ls.into_iter().skip(skip));
            if out.len() >= height {
                out.truncate(height);
                return (out, Some((top.index, i)));
            }
        }
        // The end is on screen: follow from now on.
        app.top = None;
    }
    let mut out: Vec<Line> = Vec::new();
    let mut lo = None;
    let hi = app.msgs.len().checked_sub(1);
    for i in (0..app.msgs.len()).rev() {
        let mut ls = lines_of(&app.msgs[i]);
        lo = Some(i);
        if out.len() + ls.len() >= height {
            let keep = height - out.len();
            ls.drain(..ls.len() - keep);
            ls.extend(out);
            out = ls;
            break;
        }
        ls.extend(out);
        out = ls;
    }
    (out, lo.zip(hi))
}

/// Scroll the message view by `delta` lines (negative: back in time).
pub fn scroll(app: &mut App, width: usize, height: usize, delta: isize) {
    let me = app.me.clone();
    let count = |app: &App, i: usize| msg_lines(&app.msgs[i], width, &me, false).len();
    if app.msgs.is_empty() {
        return;
    }
    // Where the top is now, in (record, line).
    let mut top = match app.top {
        Some(t) => t,
        None => {
            // The top of the bottom-anchored view.
            let mut need = height;
            let mut i = app.msgs.len();
            let mut line = 0;
            while i > 0 {
                i -= 1;
                let n = count(app, i);
                if n >= need {
                    line = n - need;
                    break;
                }
                need -= n;
            }
            Top { index: i, line }
        }
    };
    if delta < 0 {
        let mut left = delta.unsigned_abs();
        while left > 0 {
            if top.line >= left {
                top.line -= left;
                break;
            }
            left -= top.line;
            top.line = 0;
            if top.index == 0 {
                // The oldest held record: read a page before it.
                match app.pull_older().unwrap_or(0) {
                    0 => break,
                    n => top.index += n,
                }
            }
            top.index -= 1;
            top.line = count(app, top.index);
        }
        app.top = Some(top);
    } else {
        let mut left = delta as usize;
        while left > 0 {
            let n = count(app, top.index);
            if top.line + left < n {
                top.line += left;
                break;
            }
            left -= n - top.line;
            if top.index + 1 >= app.msgs.len() {
                app.top = None;
                return;
            }
            top.index += 1;
            top.line = 0;
        }
        app.top = Some(top);
    }
}

pub fn draw(frame: &mut Frame, app: &mut App) -> Drawn {
    let area = frame.area();
    let t = Theme { color: app.color };
    let show_side = area.width >= SIDE_FROM;
    let show_list = area.width >= LIST_FROM;
    let mut cols = Vec::new();
    if show_list {
        cols.push(Constraint::Length(18));
    }
    cols.push(Constraint::Min(10));
    if show_side {
        cols.push(Constraint::Length(34));
    }
    let parts = Layout::horizontal(cols).split(area);
    let (list_area, main_area, side_area) = match (show_list, show_side) {
        (true, true) => (Some(parts[0]), parts[1], Some(parts[2])),
        (true, false) => (Some(parts[0]), parts[1], None),
        _ => (None, parts[0], None),
    };
    if let Some(a) = list_area {
        draw_channels(frame, app, a, &t);
    }
    if let Some(a) = side_area {
        draw_side(frame, app, a, &t);
    }
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .split(main_area);
    // Title: the channel, and unread elsewhere when the list is hidden.
    let mut title = format!("#{} as {}", app.current, safe(&app.me));
    let elsewhere: u64 = app
        .channels
        .iter()
        .filter(|c| c.name != app.current)
        .map(|c| c.unread())
        .sum();
    if !show_list && elsewhere > 0 {
        title.push_str(&format!(" ({elsewhere} unread)"));
    }
    if app.top.is_some() {
        title.push_str(" [scrolled]");
    }
    frame.render_widget(
        Paragraph::new(title).style(t.fg(Color::White).add_modifier(Modifier::BOLD)),
        rows[0],
    );
    let view = rows[1];
    let (lines, range) = visible(app, view.width as usize, view.height as usize);
    frame.render_widget(Paragraph::new(lines), view);
    let hint = match &app.notice {
        Some(n) => Span::styled(safe(n), t.fg(Color::Red).add_modifier(Modifier::BOLD)),
        None => Span::styled(
            "Enter send  Tab @name  ^K channels  PgUp/PgDn  ^C quit",
            t.fg(Color::DarkGray),
        ),
    };
    frame.render_widget(Paragraph::new(Line::from(hint)), rows[2]);
    draw_input(frame, app, rows[3]);
    if app.switcher.is_some() {
        draw_switcher(frame, app, area, &t);
    }
    Drawn { range }
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    let prompt = "> ";
    let width = (area.width as usize)
        .saturating_sub(prompt.len() + 1)
        .max(1);
    let chars: Vec<char> = safe(&app.input).chars().collect();
    let caret = app.caret.min(chars.len());
    // Scroll the line sideways so the caret stays in sight.
    let start = caret.saturating_sub(width);
    let shown: String = chars[start..].iter().take(width).collect();
    frame.render_widget(Paragraph::new(format!("{prompt}{shown}")), area);
    if app.switcher.is_none() {
        let before: usize = chars[start..caret]
            .iter()
            .map(|c| c.width().unwrap_or(0))
            .sum();
        frame.set_cursor_position((area.x + (prompt.len() + before) as u16, area.y));
    }
}

fn draw_channels(frame: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let block = Block::default().borders(Borders::RIGHT).title("channels");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let lines: Vec<Line> = app
        .channels
        .iter()
        .map(|c| {
            let n = c.unread();
            let count = if n > 0 { n.to_string() } else { String::new() };
            let name: String = format!("#{}", c.name)
                .chars()
                .take(w.saturating_sub(count.len() + 1))
                .collect();
            let pad = w.saturating_sub(name.chars().count() + count.len());
            let mut style = Style::default();
            if n > 0 {
                style = style.add_modifier(Modifier::BOLD);
            }
            if c.name == app.current {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Line::from(vec![
                Span::styled(format!("{name}{}", " ".repeat(pad)), style),
                Span::styled(count, style.patch(t.fg(Color::Yellow))),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_side(frame: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let block = Block::default().borders(Borders::LEFT);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let cut = |s: String| -> String { s.chars().take(w).collect() };
    let head = |s: &str| {
        Line::from(Span::styled(
            s.to_string(),
            t.fg(Color::White).add_modifier(Modifier::BOLD),
        ))
    };
    let mut lines = vec![head("coworkers")];
    match &app.overview {
        None => lines.push(Line::from("…")),
        Some(o) if o.agents.is_empty() => lines.push(Line::from("none")),
        Some(o) => {
            for a in &o.agents {
                let task = a
                    .task
                    .as_deref()
                    .map(|t| format!(" #{}", safe(t)))
                    .unwrap_or_default();
                let state_color = match a.state {
                    "working" | "starting" => Color::Green,
                    "idle" => Color::Yellow,
                    "failed" | "lost" => Color::Red,
                    _ => Color::DarkGray,
                };
                lines.push(Line::from(vec![
                    Span::raw(cut(format!("{} ", safe(&a.name)))),
                    Span::styled(a.state.to_string(), t.fg(state_color)),
                    Span::raw(cut(format!("{task} ${:.2}", a.cost_usd))),
                ]));
            }
        }
    }
    lines.push(Line::from(""));
    lines.push(head("tasks"));
    if let Some(tasks) = app.overview.as_ref().and_then(|o| o.tasks.as_ref()) {
        lines.push(Line::from(cut(format!(
            "{} pending  {} active  {} done",
            tasks.pending, tasks.in_progress, tasks.completed
        ))));
        for r in &tasks.active {
            let owner = r
                .owner
                .as_deref()
                .map(|o| format!(" ({})", safe(o)))
                .unwrap_or_default();
            lines.push(Line::from(Span::styled(
                cut(format!("> #{} {}{owner}", r.id, safe(&r.subject))),
                t.fg(Color::Green),
            )));
        }
        for r in &tasks.blocked {
            let by: Vec<String> = r.blocked_by.iter().map(|b| format!("#{b}")).collect();
            lines.push(Line::from(Span::styled(
                cut(format!(
                    "- #{} {} (after {})",
                    r.id,
                    safe(&r.subject),
                    by.join(" ")
                )),
                t.fg(Color::DarkGray),
            )));
        }
    } else if app.overview.is_some() {
        lines.push(Line::from("no task list"));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_switcher(frame: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let Some(sw) = &app.switcher else { return };
    let w = area.width.clamp(10, 40);
    let matches = app.matches(&sw.filter);
    let h = (matches.len() as u16 + 3).clamp(4, area.height.max(4));
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + area.height.saturating_sub(h) / 3,
        width: w,
        height: h.min(area.height),
    };
    frame.render_widget(Clear, r);
    let block = Block::bordered().title("go to channel");
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let mut lines = vec![Line::from(format!("#{}", sw.filter))];
    for (i, m) in matches.iter().enumerate() {
        let style = if i == sw.selected {
            Style::default()
                .add_modifier(Modifier::REVERSED)
                .patch(t.fg(Color::Cyan))
        } else {
            Style::default()
        };
        let unread = app
            .channels
            .iter()
            .find(|c| &c.name == m)
            .map(|c| c.unread())
            .filter(|&n| n > 0)
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        lines.push(Line::from(Span::styled(format!("#{m}{unread}"), style)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    frame.set_cursor_position((inner.x + 1 + sw.filter.chars().count() as u16, inner.y));
}
