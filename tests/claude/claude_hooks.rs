//! mt's hooks in real Claude Code sessions (the pinned CLI that `make
//! claude-code` installs), talking to the stand-in Messages API: what each
//! hook event changes in the next request the model sees, and the Stop block
//! cap with no message lost. Each test skips with one loud line when the CLI
//! is missing, and fails instead under `MT_REQUIRE_CLAUDE=1`.

use serde_json::{Value, json};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::support::api::{Request, Script, Step};
use crate::support::claude::{PATIENCE, Team, text};

/// The mt-hook under test, absolute (hooks run in the session's directory).
fn mt_hook() -> PathBuf {
    fs::canonicalize(crate::support::bin("mt-hook")).unwrap()
}

/// A settings file holding `hooks` (a `{"hooks": …}` object).
fn settings_file(t: &Team, name: &str, hooks: &Value) -> PathBuf {
    let p = t.root.join(name);
    fs::write(&p, serde_json::to_vec_pretty(hooks).unwrap()).unwrap();
    p
}

/// The settings mt gives a headless agent: mt-hook itself for every event.
fn agent_settings(t: &Team) -> PathBuf {
    settings_file(
        t,
        "agent.json",
        &mt::claude_settings::hooks_for_agent(&mt_hook()),
    )
}

/// `claude -p` as agent `york` with `settings`, stream-json out.
fn claude(t: &Team, settings: &Path, extra: &[&str]) -> Command {
    let mut c = t.claude_cmd();
    c.env("MT_AGENT", "york")
        .args(["-p", "--verbose", "--output-format", "stream-json"])
        .arg("--settings")
        .arg(settings)
        .args(extra);
    c
}

/// Run one headless session to its end; its stream-json events.
fn session(t: &Team, settings: &Path, extra: &[&str], prompt: &str) -> Vec<Value> {
    let o = run_bounded(claude(t, settings, extra).arg("--").arg(prompt));
    assert!(
        o.status.success(),
        "claude: {:?}\n{}\n{}",
        o.status,
        text(&o.stderr),
        text(&o.stdout)
    );
    events(&o.stdout)
}

/// `output()` with a deadline, so a hung session fails the test.
fn run_bounded(c: &mut Command) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the session did not end within {PATIENCE:?}");
        }
    }
}

fn events(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Whether Claude Code overrode a Stop block (its block cap).
fn cap_hit(events: &[Value]) -> bool {
    events.iter().any(|e| {
        e["key"] == "stop-hook-block-cap"
            || e["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("A hook blocked the turn from ending"))
    })
}

/// The last main-loop request of the session `sid`.
fn last_turn(t: &Team, sid: &str) -> Request {
    t.api
        .turns()
        .into_iter()
        .rfind(|r| r.session.as_deref() == Some(sid))
        .expect("a request")
}

fn session_id(events: &[Value]) -> String {
    events
        .iter()
        .find_map(|e| e["session_id"].as_str().filter(|s| !s.is_empty()))
        .expect("a session id")
        .to_string()
}

/// The first main-loop request answering the user's `prompt`, a plain
/// word or two (hook context comes after the prompt, as a message of its
/// own, so the prompt is in the last user message).
fn answering(t: &Team, prompt: &str) -> Request {
    t.api
        .turns()
        .into_iter()
        .find(|r| {
            r.messages()
                .iter()
                .rfind(|m| m["role"] == "user")
                .is_some_and(|m| m["content"].to_string().contains(prompt))
        })
        .unwrap_or_else(|| panic!("no request answers {prompt:?}"))
}

/// How many Stop blocks the model read in `req`.
fn feedback_count(req: &Request) -> usize {
    req.all_text().matches("Stop hook feedback").count()
}

/// Contents of `york`'s unread records (`mt-read --peek`).
fn unread(t: &Team) -> Vec<String> {
    let out = t.ok("mt-read", &["--as", "york", "--peek", "--json"]);
    out.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn session_start_context_reaches_the_first_request() {
    let Some(t) = Team::new(
        "session_start_context_reaches_the_first_request",
        Script::new(),
    ) else {
        return;
    };
    t.post("lead", "@york the parser is yours");
    let f = agent_settings(&t);
    let started = Instant::now();
    let ev = session(&t, &f, &[], "hello");
    let first = t.api.wait_for("the first turn", PATIENCE, Request::is_turn);
    eprintln!(
        "start to first request: {:?}; whole session: {:?}",
        first.at - started,
        started.elapsed()
    );
    for want in [
        "SessionStart hook additional context",
        "the mt agent \"york\"",
        "Its channel is #general",
        "Unread on #general:\n#1 lead: @york the parser is yours",
    ] {
        assert!(first.sees(want), "{want:?} not in {}", first.all_text());
    }
    assert!(!cap_hit(&ev));
    assert!(unread(&t).is_empty());
}

/// A user message line for `--input-format stream-json`.
fn user_line(text: &str) -> String {
    format!(
        "{}\n",
        json!({"type": "user", "message": {"role": "user", "content": text},
               "parent_tool_use_id": null, "session_id": ""})
    )
}

#[test]
fn user_prompt_submit_delivers_what_arrived_between_turns() {
    let Some(t) = Team::new(
        "user_prompt_submit_delivers_what_arrived_between_turns",
        Script::new(),
    ) else {
        return;
    };
    let f = agent_settings(&t);
    let mut child = claude(&t, &f, &["--input-format", "stream-json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let until_result = |what: &str| loop {
        let line = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no result for {what}"));
        if serde_json::from_str::<Value>(&line).is_ok_and(|e| e["type"] == "result") {
            break;
        }
    };
    stdin
        .write_all(user_line("first question").as_bytes())
        .unwrap();
    until_result("the first turn");
    t.post("park", "lunch is here");
    stdin
        .write_all(user_line("second question").as_bytes())
        .unwrap();
    until_result("the second turn");
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let first = answering(&t, "first question");
    let second = answering(&t, "second question");
    assert!(!first.sees("lunch is here"));
    assert!(
        second.sees("UserPromptSubmit hook additional context")
            && second.sees("mt: new on #general since the last delivery:\n#1 park: lunch is here"),
        "{}",
        second.all_text()
    );
    assert!(unread(&t).is_empty());
}

#[test]
fn stop_block_reason_reaches_the_next_request() {
    // A teammate's mention arrives while york works (its own Bash call posts
    // it as lead); the Stop hook keeps york going with it. The hooks are the
    // installed scripts here, as `mt-hooks install --hooks-dir` writes them.
    let script = Script::new().on(
        "review please",
        vec![
            Step::bash("mt-post --from lead '@york the parser needs a look'"),
            Step::text("posted"),
        ],
    );
    let Some(t) = Team::new("stop_block_reason_reaches_the_next_request", script) else {
        return;
    };
    let f = t.root.join("scripts.json");
    let hooks_dir = crate::support::repo().join("hooks");
    t.ok(
        "mt-hooks",
        &[
            "install",
            "--settings",
            f.to_str().unwrap(),
            "--hooks-dir",
            hooks_dir.to_str().unwrap(),
        ],
    );
    let ev = session(&t, &f, &["--allowedTools", "Bash"], "review please");
    let turns = t.api.turns();
    let reason = "mt: messages on #general that mention york arrived:\n#1 lead: @york the parser needs a look";
    let at = turns
        .iter()
        .position(|r| r.sees("Stop hook feedback"))
        .expect("a Stop block reached the model");
    assert!(turns[at].sees(reason), "{}", turns[at].all_text());
    assert!(at >= 2 && !turns[at - 1].sees("the parser needs a look"));
    assert_eq!(
        t.channel("general")[0]["content"],
        "@york the parser needs a look"
    );
    assert_eq!(at, turns.len() - 1, "the session then ended");
    assert!(!cap_hit(&ev));
}

#[test]
fn task_create_posts_an_action_record() {
    let script = Script::new().on(
        "plan it",
        vec![
            Step::tool(
                "TaskCreate",
                json!({"subject": "Add login", "description": "OAuth only"}),
            ),
            Step::text("planned"),
        ],
    );
    let Some(t) = Team::new("task_create_posts_an_action_record", script) else {
        return;
    };
    let f = agent_settings(&t);
    let mut c = claude(&t, &f, &[]);
    c.env("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1")
        .env("CLAUDE_CODE_TASK_LIST_ID", "demo")
        .args(["--", "plan it"]);
    let o = run_bounded(&mut c);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let recs = t.channel("general");
    let actions: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r["type"] == "action")
        .map(|r| (r["from"].as_str().unwrap(), r["content"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("york", "created task 1: Add login")]);
    assert!(t.config.join("tasks/demo/1.json").is_file());
    let sid = session_id(&events(&o.stdout));
    assert_eq!(recs[0]["session_id"], sid.as_str());
}

#[test]
fn a_failing_hook_never_blocks_a_real_session() {
    // Every mt-hook call fails on a usage error (MT_WAKE is not a policy).
    // Exit 2 would make Claude Code block the Stop and feed the error to
    // the model; mt-hook's 64 is a non-blocking error.
    let Some(t) = Team::new("a_failing_hook_never_blocks_a_real_session", Script::new()) else {
        return;
    };
    t.post("lead", "@york waiting for you");
    let f = agent_settings(&t);
    let mut c = claude(&t, &f, &[]);
    c.env("MT_WAKE", "bogus").args(["--", "hello"]);
    let o = run_bounded(&mut c);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let turns = t.api.turns();
    assert_eq!(turns.len(), 1, "the turn ended at the first stop");
    assert!(!turns[0].sees("invalid value"));
    assert!(!turns[0].sees("waiting for you"));
    assert_eq!(unread(&t), ["@york waiting for you"]);
}

/// Settings whose Stop hook first has lead post a new mention of york
/// (`@york ping N.`, for N up to `upto`), then runs mt-hook: every Stop
/// finds something new, as on a busy channel. `stops` counts the calls.
fn chatty_settings(t: &Team, upto: u32) -> PathBuf {
    let counter = mt::claude_settings::shell_word(&t.root.join("stops").to_string_lossy());
    let hook = mt::claude_settings::shell_word(&mt_hook().to_string_lossy());
    let mut hooks = mt::claude_settings::hooks_for_agent(&mt_hook());
    hooks["hooks"]["Stop"][0]["hooks"][0]["command"] = format!(
        "n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; \
         if [ $n -le {upto} ]; then mt-post --from lead \"@york ping $n.\" >/dev/null; fi; \
         exec {hook} stop"
    )
    .into();
    settings_file(t, "chatty.json", &hooks)
}

fn stops(t: &Team) -> u32 {
    fs::read_to_string(t.root.join("stops"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn block_cap_loses_no_mention() {
    // The model only ever answers text; a new mention arrives before every
    // Stop. mt blocks eight times in a row, then leaves the ninth mention
    // unread rather than have Claude Code override the block.
    let Some(t) = Team::new("block_cap_loses_no_mention", Script::new()) else {
        return;
    };
    let f = chatty_settings(&t, 9);
    let started = Instant::now();
    let ev = session(&t, &f, &[], "hello");
    eprintln!("nine stops, eight blocks: {:?}", started.elapsed());
    assert!(!cap_hit(&ev), "Claude Code overrode a block");
    let sid = session_id(&ev);
    assert_eq!(feedback_count(&last_turn(&t, &sid)), 8);
    assert_eq!(stops(&t), 9);
    for n in 1..=8 {
        assert!(t.api.model_saw(&format!("@york ping {n}.")), "ping {n}");
    }
    assert!(!t.api.model_saw("@york ping 9."));
    assert_eq!(unread(&t), ["@york ping 9."]);

    // The next session start hands it over.
    let ev = session(&t, &f, &["--resume", &sid], "next");
    let first = answering(&t, "next");
    assert!(first.sees("#9 lead: @york ping 9."), "{}", first.all_text());
    assert!(unread(&t).is_empty());
    assert!(!cap_hit(&ev));
}

#[test]
fn tool_calls_between_blocks_restart_the_count() {
    // The model answers each block with a tool call, then text: Claude Code
    // does not count such blocks, and neither does mt (its PostToolUse hook
    // runs for every tool), so all twelve mentions are delivered by blocks.
    let script = Script::new().on(
        "that mention york arrived",
        vec![Step::bash("true"), Step::text("checked")],
    );
    let Some(t) = Team::new("tool_calls_between_blocks_restart_the_count", script) else {
        return;
    };
    let f = chatty_settings(&t, 12);
    let ev = session(&t, &f, &["--allowedTools", "Bash"], "hello");
    assert!(!cap_hit(&ev));
    let sid = session_id(&ev);
    assert_eq!(feedback_count(&last_turn(&t, &sid)), 12);
    for n in 1..=12 {
        assert!(t.api.model_saw(&format!("@york ping {n}.")), "ping {n}");
    }
    assert!(unread(&t).is_empty());
    assert_eq!(stops(&t), 13);
}
