//! Property tests for merging mt's hooks into Claude Code settings files:
//! install then uninstall gives back what was there, install is
//! idempotent, and the hook commands survive the shell that runs them.

use crate::support::{cases, json};
use mt::claude_settings::{self as settings, ENTRIES};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::path::Path;

const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "Stop",
    "PostToolUse",
    "Notification",
    "PreToolUse",
    "SubagentStop",
];

/// A command that is not one of mt's hook scripts.
fn foreign_command() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z /'.$-]{0,30}",
        "\\PC{0,20}",
        prop::sample::select(vec![
            "/usr/bin/stop",
            "say done",
            "/opt/x/hooks/other",
            "'/a b/stop'"
        ])
        .prop_map(str::to_string),
    ]
    .prop_filter("not ours", |c| !c.contains("mt/hooks"))
}

fn handler() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (foreign_command(), prop::option::of(0u64..100)).prop_map(|(c, t)| {
            let mut h = json!({"type": "command", "command": c});
            if let Some(t) = t { h["timeout"] = t.into(); }
            h
        }),
        1 => json(),
    ]
}

fn group() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (prop::option::of("[A-Za-z|*]{0,12}"), prop::collection::vec(handler(), 0..3)).prop_map(|(m, hs)| {
            let mut g = Map::new();
            if let Some(m) = m { g.insert("matcher".into(), m.into()); }
            g.insert("hooks".into(), Value::Array(hs));
            Value::Object(g)
        }),
        1 => json(),
    ]
}

/// A settings object with other keys, other events and other handlers,
/// none of them mt's.
fn settings_value() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(("[a-z]{1,8}", json()), 0..4),
        prop::option::of(prop::collection::vec(
            (
                prop::sample::select(EVENTS.to_vec()),
                prop::collection::vec(group(), 0..3),
            ),
            0..5,
        )),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(others, hooks, at)| {
            let mut root: Vec<(String, Value)> =
                others.into_iter().filter(|(k, _)| k != "hooks").collect();
            if let Some(events) = hooks {
                let h: Map<String, Value> = events
                    .into_iter()
                    .map(|(e, g)| (e.to_string(), Value::Array(g)))
                    .collect();
                root.insert(at.index(root.len() + 1), ("hooks".into(), Value::Object(h)));
            }
            Value::Object(root.into_iter().collect())
        })
}

/// What uninstall cannot tell apart from its own leftovers: an empty list
/// under one of mt's events, and then an empty `hooks`. Both go.
fn normalised(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(h) = v.get_mut("hooks").and_then(Value::as_object_mut) {
        let empty: Vec<String> = h
            .iter()
            .filter(|(k, g)| {
                ENTRIES.iter().any(|e| e.event == *k) && g.as_array().is_some_and(Vec::is_empty)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in empty {
            h.shift_remove(&k);
        }
        if h.is_empty() {
            v.as_object_mut().unwrap().shift_remove("hooks");
        }
    }
    v
}

fn hooks_dir() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/usr/local/share/mt/hooks".to_string()),
        "/[a-z]{1,6}/share/mt/hooks",
        "/\\PC{1,12}/mt/hooks",
        "/[a-z '\"$`\\\\]{1,12}/hooks",
    ]
}

proptest! {
    #![proptest_config(crate::support::config(cases(256)))]

    #[test]
    fn install_then_uninstall_gives_back_the_original(orig in settings_value(), dir in hooks_dir()) {
        let dir = Path::new(&dir);
        let mut s = orig.clone();
        match settings::install(&mut s, dir) {
            Ok(changed) => {
                prop_assert!(changed);
                prop_assert!(settings::uninstall(&mut s, dir).unwrap());
                let want = normalised(&orig);
                prop_assert_eq!(&s, &want);
                // Key order too, as the file shows it.
                prop_assert_eq!(s.to_string(), want.to_string());
            }
            Err(e) => {
                prop_assert_eq!(mt::exit::code_of(&e), mt::exit::DATAERR);
                let bad_hooks = orig.get("hooks").is_some_and(|h| !h.is_object()
                    || ENTRIES.iter().any(|e| h.get(e.event).is_some_and(|g| !g.is_array())));
                prop_assert!(bad_hooks, "{:#}", e);
            }
        }
    }

    #[test]
    fn install_is_idempotent_and_replaces_another_prefix(orig in settings_value(), a in hooks_dir(), b in hooks_dir()) {
        let (a, b) = (Path::new(&a), Path::new(&b));
        let mut s = orig.clone();
        if settings::install(&mut s, a).is_err() {
            return Ok(());
        }
        let once = s.clone();
        prop_assert!(!settings::install(&mut s, a).unwrap());
        prop_assert_eq!(&s, &once);
        // Another prefix: still exactly one handler of ours per event.
        settings::install(&mut s, b).unwrap();
        let snippet = settings::snippet(b);
        for e in ENTRIES {
            let ours: Vec<&Value> = s["hooks"][e.event].as_array().unwrap().iter()
                .filter(|g| g["hooks"].as_array().is_some_and(|hs| hs.iter().any(|h| h["command"] == snippet["hooks"][e.event][0]["hooks"][0]["command"])))
                .collect();
            prop_assert_eq!(ours.len(), 1, "{}", e.event);
        }
        if a != b && !(a.ends_with("mt/hooks") && b.ends_with("mt/hooks")) {
            return Ok(());
        }
        prop_assert!(settings::uninstall(&mut s, b).unwrap());
        prop_assert_eq!(s, normalised(&orig));
    }

}

proptest! {
    // Each case syncs a file to disk.
    #![proptest_config(crate::support::config(cases(48)))]

    #[test]
    fn saved_settings_load_back(orig in settings_value()) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("dir/settings.json");
        settings::save(&p, &orig).unwrap();
        let back = settings::load(&p).unwrap();
        prop_assert_eq!(back.to_string(), orig.to_string());
    }
}

proptest! {
    // Each case starts a shell.
    #![proptest_config(crate::support::config(cases(48)))]

    /// Claude Code runs a hook's command with a shell: the path mt writes
    /// must reach it as exactly one word, whatever it holds.
    #[test]
    fn hook_commands_are_one_shell_word(path in "\\PC{1,30}") {
        let word = settings::shell_word(&path);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s|' {word}"))
            .output()
            .unwrap();
        prop_assert!(out.status.success());
        prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{path}|"));
    }
}
