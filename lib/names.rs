//! Channel and agent names: 1–64 characters of `a-z 0-9 . _ -`, starting with
//! a letter or digit. Names become file names, so this check is also the
//! path-traversal defence; it runs before any file is touched.

use crate::exit::{DATAERR, fail};

pub const MAX_LEN: usize = 64;

/// Why `name` is not a valid name, or `None` when it is.
pub fn problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some("it is empty");
    }
    if b.len() > MAX_LEN {
        return Some("it is longer than 64 characters");
    }
    if !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
        return Some("it must start with a-z or 0-9");
    }
    if !b.iter().all(|&c| is_name_byte(c)) {
        return Some("only a-z 0-9 . _ - are allowed");
    }
    None
}

pub fn is_name_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
}

pub fn is_valid(name: &str) -> bool {
    problem(name).is_none()
}

/// Check a name of the given kind ("channel", "agent", ...) and return it, or
/// an error (exit 65) that quotes it safely.
pub fn check<'a>(kind: &str, name: &'a str) -> anyhow::Result<&'a str> {
    match problem(name) {
        None => Ok(name),
        Some(why) => Err(fail(
            DATAERR,
            format!("invalid {kind} name {}: {why}", quote(name)),
        )),
    }
}

/// A name as it may be shown in a message: escaped, bounded.
pub fn quote(s: &str) -> String {
    let shown: String = s.chars().take(80).collect();
    let more = if s.chars().count() > 80 { "…" } else { "" };
    format!("{:?}{more}", shown)
}

/// Text from a file as it may be written to a terminal: control characters
/// other than newline and tab, and the bidirectional overrides, are shown
/// (`^[`, `\u{9b}`) instead of being sent, so a message cannot drive the
/// reader's terminal (escape sequences, clipboard writes, reordered text).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push((b'@' + c as u8) as char);
            }
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Longest team, agent or task-list name accepted in Claude Code's directory.
pub const CLAUDE_MAX_LEN: usize = 128;

/// Why `name` cannot name a team, agent or task list in Claude Code's
/// directory, or `None` when it can. Claude Code turns every character
/// outside `A-Z a-z 0-9 _ -` into `-` when it makes a path of a name; mt
/// accepts exactly the names that this leaves unchanged (so mt and Claude
/// Code agree on the file) and refuses the rest rather than rewrite them
/// silently. Without `.` and `/`, such a name cannot leave its directory.
pub fn claude_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > CLAUDE_MAX_LEN {
        return Some("it is longer than 128 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Some("only A-Z a-z 0-9 _ - are allowed");
    }
    None
}

/// The file name Claude Code makes of `name`.
pub fn claude_sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Check a team, agent or task-list name (`kind`) for Claude Code's
/// directory; the error (exit 65) says what Claude Code would call it.
pub fn check_claude<'a>(kind: &str, name: &'a str) -> anyhow::Result<&'a str> {
    match claude_problem(name) {
        None => Ok(name),
        Some(why) => {
            let fixed = claude_sanitize(name);
            // No hint for what looks like a path: it is not a name at all.
            let pathlike = name.contains('/') || name.starts_with('.');
            let hint = if !pathlike && claude_problem(&fixed).is_none() {
                format!(" (Claude Code would store it as {})", quote(&fixed))
            } else {
                String::new()
            };
            Err(fail(
                DATAERR,
                format!("invalid {kind} name {}: {why}{hint}", quote(name)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_names() {
        for n in ["general", "a", "0", "park-2", "x.y_z", &"a".repeat(64)] {
            assert!(is_valid(n), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            "_x",
            "Upper",
            "a b",
            "a\nb",
            "a\0b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_valid(n), "{n:?}");
        }
    }

    #[test]
    fn error_quotes_control_characters() {
        let e = check("channel", "a\x1bb").unwrap_err();
        assert!(e.to_string().contains("\\u{1b}"), "{e}");
    }

    #[test]
    fn printable_shows_controls() {
        assert_eq!(printable("a\tb\nc"), "a\tb\nc");
        assert_eq!(
            printable("\x1b]52;c;eA==\x07 \u{9b}2J \u{202e}x\x7f"),
            "^[]52;c;eA==^G \\u{9b}2J \\u{202e}x^?"
        );
    }

    #[test]
    fn claude_names() {
        for n in [
            "team-lead",
            "My_Team",
            "0",
            "a5f0c1d2-0b1e-4c7a-9d1e-1234567890ab",
        ] {
            assert!(claude_problem(n).is_none(), "{n}");
        }
        for n in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a.json",
            "a b",
            "é",
            &"a".repeat(129),
        ] {
            assert!(claude_problem(n).is_some(), "{n:?}");
        }
        let e = check_claude("team", "my team").unwrap_err().to_string();
        assert!(e.contains("\"my-team\""), "{e}");
    }
}
