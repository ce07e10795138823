//! Property tests for what Claude Code hands to mt's hooks: the JSON
//! object on standard input, and the names found in it. Nothing a payload
//! holds makes mt panic, makes a hook script exit 2 (which Claude Code
//! reads as "block"), or reaches a file name unchecked.

use crate::support::{cases, json, json_ish_bytes, json_object, repo, tool};
use mt::delivery::{self as hook, Payload};
use mt::exit::{DATAERR, code_of};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

const SCRIPTS: &[&str] = &[
    "session-start",
    "user-prompt-submit",
    "stop",
    "post-tool-use",
    "notification",
];

/// Run hooks/<script> through sh, as Claude Code does.
fn script(root: &Path, name: &str, input: &[u8], env: &[(&str, &str)]) -> Output {
    let mut c = std::process::Command::new("sh");
    c.arg(repo().join("hooks").join(name))
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", crate::support::bin_dir().display()),
        )
        .env("HOME", root.join("home"))
        .env("MT_DIR", root.join("state"))
        .env("CLAUDE_CONFIG_DIR", root.join("claude"))
        .env("MT_FSYNC", "0")
        .env("MT_BIN", root.join("nobin"))
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    // A hook may exit before reading everything; that is fine.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// Only state/, claude/ and home/ may exist at the top of a test root.
fn nothing_escaped(root: &Path) -> Result<(), TestCaseError> {
    for e in fs::read_dir(root).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        prop_assert!(
            ["state", "claude", "home"].contains(&name.as_str()),
            "{name} was created outside the state directory"
        );
    }
    Ok(())
}

fn posted(root: &Path) {
    let o = tool("mt-post", root)
        .args([
            "--from",
            "park",
            "@york @all hello; $(touch pwned) `touch pwned2`",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
}

/// A payload like the ones Claude Code sends, with arbitrary values in the
/// fields mt reads.
fn payload() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["TaskCreate", "TaskUpdate", "Bash", ""]),
        json_object(),
        json(),
        json(),
        json(),
        json(),
    )
        .prop_map(|(tool_name, mut o, input, resp, id, owner)| {
            let mut input = match input {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            input.insert("taskId".into(), id);
            input.insert("owner".into(), owner);
            o.insert("tool_name".into(), tool_name.into());
            o.insert("tool_input".into(), Value::Object(input));
            o.insert("tool_response".into(), resp);
            Value::Object(o)
        })
}

/// Names a task action mentions: the id after "task", and the owner after
/// "to" (the subject, after ": ", is free text).
fn names_in_action(s: &str) -> Vec<String> {
    let head = s.split(": ").next().unwrap_or("");
    let words: Vec<&str> = head.split(' ').collect();
    let mut out = Vec::new();
    for w in words.windows(2) {
        if w[0] == "task" || w[0] == "to" {
            out.push(w[1].to_string());
        }
    }
    out
}

proptest! {
    #![proptest_config(crate::support::config(cases(256)))]

    #[test]
    fn payload_parser_never_panics_and_takes_only_objects(bytes in json_ish_bytes()) {
        let is_object = matches!(serde_json::from_slice::<Value>(&bytes), Ok(Value::Object(_)));
        match Payload::parse(&bytes) {
            Ok(p) => {
                prop_assert!(is_object);
                // Field access never panics, whatever the types.
                let _ = (p.session_id(), p.flag("stop_hook_active"), p.str("tool_name"));
                let _ = hook::notification_status(&p);
            }
            Err(e) => {
                prop_assert!(!is_object);
                prop_assert_eq!(code_of(&e), DATAERR);
                prop_assert!(!e.to_string().contains('\n'), "one line: {}", e);
            }
        }
    }

    #[test]
    fn session_ids_kept_are_one_bounded_line(v in json()) {
        let p = Payload::parse(json!({"session_id": v}).to_string().as_bytes()).unwrap();
        if let Some(s) = p.session_id() {
            prop_assert!(!s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control));
        }
    }

    /// Ids and owners from a tool call are checked like command-line names:
    /// an action either names only valid ones, or is refused with 65.
    #[test]
    fn task_actions_name_only_valid_names(p in payload(), agent in "[a-z][a-z0-9-]{0,8}") {
        let null = Value::Null;
        let res = hook::task_action(
            p["tool_name"].as_str().unwrap(),
            p.get("tool_input").unwrap_or(&null),
            p.get("tool_response").unwrap_or(&null),
            &agent,
        );
        match res {
            Ok(Some(s)) => {
                prop_assert!(!s.contains('\n'), "{s:?}");
                for n in names_in_action(&s) {
                    prop_assert!(
                        mt::names::is_valid(&n) || mt::names::claude_problem(&n).is_none(),
                        "unchecked name {n:?} in {s:?}"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => prop_assert_eq!(code_of(&e), DATAERR, "{:#}", e),
        }
    }

    #[test]
    fn render_cuts_anything_within_its_budget(content in "\\PC{0,300}", budget in 0usize..400, seq in any::<u64>()) {
        let line = json!({"seq": seq, "from": "park", "type": "status", "content": content}).to_string();
        let v = mt::record::parse(line.as_bytes()).unwrap();
        let r = hook::render(&v, "general", budget);
        let head = format!("#{} park [status]: ", seq);
        prop_assert!(r.starts_with(&head));
        let note_room = 80 + seq.to_string().len() * 2;
        prop_assert!(r.len() <= budget.max(note_room + 30), "{} > {}", r.len(), budget);
    }
}

proptest! {
    // Each case starts every hook script: a few dozen cases only.
    #![proptest_config(crate::support::config(cases(20)))]

    #[test]
    fn hook_scripts_never_exit_2_whatever_the_input(
        input in prop_oneof![json_ish_bytes(), payload().prop_map(|v| v.to_string().into_bytes())],
        agent in prop::sample::select(vec!["york", "lead", "../x", "York", "", "a b", "$(touch pwned)"]),
        wake in prop::sample::select(vec!["mentions", "all", "sometimes", ""]),
        list in prop::sample::select(vec!["", "demo", "../../etc", "My_List"]),
        task in prop::sample::select(vec!["", "1", "../1", "$(id)"]),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("home")).unwrap();
        posted(root);
        for s in SCRIPTS {
            let o = script(root, s, &input, &[
                ("MT_AGENT", agent), ("MT_WAKE", wake),
                ("CLAUDE_CODE_TASK_LIST_ID", list), ("MT_TASK", task),
            ]);
            let code = o.status.code();
            prop_assert!(code == Some(0) || code == Some(1), "{s}: status {:?}: {}", code, String::from_utf8_lossy(&o.stderr));
            let out = String::from_utf8(o.stdout).unwrap();
            if !out.is_empty() {
                prop_assert!(out.ends_with('\n') && out.lines().count() == 1, "{s}: {out:?}");
                prop_assert!(serde_json::from_str::<Value>(&out).unwrap().is_object());
            }
            if code == Some(1) {
                prop_assert!(!o.stderr.is_empty(), "{s}: a failure says why");
            }
        }
        nothing_escaped(root)?;
        prop_assert!(!root.join("pwned").exists() && !root.join("pwned2").exists());
    }
}
