//! Channel records: one compact JSON object per line. Field names match the
//! log of the system mt replaces, so either tool can read the other's records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names;

/// Record types mt knows; other values are kept as they are.
pub const TYPES: &[&str] = &[
    "text", "status", "action", "system", "error", "insight", "command",
];

/// A record as written by mt-post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub id: String,
    pub timestamp: String,
    pub from: String,
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    pub content: String,
    pub channel: String,
    #[serde(default)]
    pub mentions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meta: Option<Value>,
    /// The host that wrote the record, on records mt-sync brought from
    /// another host; absent on records written here.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<String>,
    /// The record's seq in that host's channel.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin_seq: Option<u64>,
}

fn default_type() -> String {
    "text".into()
}

/// The parts of a stored line a reader needs; unknown fields are ignored and
/// strings are borrowed where the JSON allows it.
#[derive(Debug, Deserialize)]
pub struct View<'a> {
    pub seq: u64,
    #[serde(default, borrow)]
    pub id: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub timestamp: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub from: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", default, borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub content: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub mentions: Vec<String>,
    #[serde(default, borrow)]
    pub reply_to: Option<std::borrow::Cow<'a, str>>,
    /// The host that wrote it, on records mt-sync imported.
    #[serde(default, borrow)]
    pub origin: Option<std::borrow::Cow<'a, str>>,
}

impl View<'_> {
    /// Whether this record mentions `name` directly or through `@all`.
    pub fn mentions_name(&self, name: &str) -> bool {
        self.mentions.iter().any(|m| m == name || m == "all")
    }
}

/// The readable one-line form: local time, seq, sender (`name@host` for a
/// record from another host), type unless `text`, content; further lines
/// of the content are indented by four spaces.
pub fn render_text(v: &View<'_>, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let when = crate::infra::time::parse_stamp(&v.timestamp)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| v.timestamp.to_string());
    // Whoever wrote the record, it cannot drive the reader's terminal.
    let p = names::printable;
    write!(out, "{} #{} {}", p(&when), v.seq, p(&v.from))?;
    // A record from another host says which (mt-sync).
    if let Some(host) = &v.origin {
        write!(out, "@{}", p(host))?;
    }
    if !v.kind.is_empty() && v.kind != "text" {
        write!(out, " [{}]", p(&v.kind))?;
    }
    out.write_all(b": ")?;
    let content = p(&v.content);
    let mut lines = content.split('\n');
    out.write_all(lines.next().unwrap_or("").as_bytes())?;
    for l in lines {
        out.write_all(b"\n    ")?;
        out.write_all(l.as_bytes())?;
    }
    out.write_all(b"\n")
}

/// Parse one stored line (without its newline).
pub fn parse(line: &[u8]) -> Option<View<'_>> {
    serde_json::from_slice(line).ok()
}

/// Only the sequence number of a stored line.
pub fn parse_seq(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
}

/// Check a record id given on a command line (`--reply-to`, `--thread`):
/// ids are not names, but they are stored and shown, so no whitespace or
/// control characters and a bounded length; else exit 65.
pub fn check_id(what: &str, id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(crate::exit::fail(
            crate::exit::DATAERR,
            format!("invalid {what} id {}", names::quote(id)),
        ));
    }
    Ok(())
}

/// The seq and time of a stored line, for searches by time; `None` when it
/// is not a record or its timestamp is not RFC 3339.
pub fn parse_time(line: &[u8]) -> Option<(u64, chrono::DateTime<chrono::Utc>)> {
    #[derive(Deserialize)]
    struct Stamped<'a> {
        seq: u64,
        #[serde(borrow)]
        timestamp: std::borrow::Cow<'a, str>,
    }
    let s: Stamped<'_> = serde_json::from_slice(line).ok()?;
    Some((s.seq, crate::infra::time::parse_stamp(&s.timestamp)?))
}

/// The names written as `@name` in `content`, in order of first appearance.
/// An `@` counts only at the start or after a character that cannot be part
/// of a name (so `a@b.com` is not a mention); trailing dots are punctuation.
pub fn mentions(content: &str) -> Vec<String> {
    let b = content.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'@' && (i == 0 || !is_word_byte(b[i - 1])) {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && names::is_name_byte(b[end]) {
                end += 1;
            }
            let mut name = &content[start..end];
            name = name.trim_end_matches(['.', '-', '_']);
            if names::is_valid(name) && !out.iter().any(|m| m == name) {
                out.push(name.to_string());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mentions() {
        assert_eq!(mentions("@york can you review?"), vec!["york"]);
        assert_eq!(mentions("hi @a, @b. and @all!"), vec!["a", "b", "all"]);
        assert_eq!(mentions("mail me at x@y.com"), Vec::<String>::new());
        assert_eq!(mentions("@a @a (@b)"), vec!["a", "b"]);
        assert_eq!(mentions("@ alone, @Upper"), Vec::<String>::new());
        assert_eq!(mentions("line\n@park-2: done"), vec!["park-2"]);
    }

    #[test]
    fn record_round_trip_and_field_order() {
        let r = Record {
            seq: 42,
            id: "01J".into(),
            timestamp: "2026-11-21T19:40:01.123Z".into(),
            from: "park".into(),
            kind: "text".into(),
            content: "@york can you review?".into(),
            channel: "general".into(),
            mentions: vec!["york".into()],
            reply_to: None,
            session_id: None,
            meta: None,
            origin: None,
            origin_seq: None,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"seq":42,"id":"01J","timestamp":"2026-11-21T19:40:01.123Z","from":"park","type":"text","content":"@york can you review?","channel":"general","mentions":["york"]}"#
        );
        let v = parse(line.as_bytes()).unwrap();
        assert_eq!(v.seq, 42);
        assert!(v.mentions_name("york"));
        assert!(!v.mentions_name("park"));
    }

    #[test]
    fn renders_text() {
        let line = br#"{"seq":7,"timestamp":"bad","from":"park","type":"status","content":"a\nb"}"#;
        let mut out = Vec::new();
        render_text(&parse(line).unwrap(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "bad #7 park [status]: a\n    b\n"
        );
    }

    #[test]
    fn tolerates_unknown_fields_and_rejects_garbage() {
        assert_eq!(parse_seq(br#"{"seq":3,"x":{"y":1}}"#), Some(3));
        let (seq, t) = parse_time(br#"{"seq":4,"timestamp":"2026-11-21T19:40:01.123Z"}"#).unwrap();
        assert_eq!((seq, t.timestamp_millis()), (4, 1_795_290_001_123));
        assert!(parse_time(br#"{"seq":4,"timestamp":"yesterday"}"#).is_none());
        assert!(parse_time(br#"{"timestamp":"2026-11-21T19:40:01.123Z"}"#).is_none());
        let v = parse(br#"{"seq":5,"reply_to":"01J"}"#).unwrap();
        assert_eq!(v.reply_to.as_deref(), Some("01J"));
        assert!(parse(b"{\"seq\":").is_none());
        assert!(parse(b"not json").is_none());
    }
}
