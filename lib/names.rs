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
}
