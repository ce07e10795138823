//! The Claude Code hook scripts (run through `sh`, as Claude Code runs them)
//! and the settings installer, driven as real processes.

use serde_json::{Value, json};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::repo;

fn fixture(name: &str) -> Vec<u8> {
    fs::read(repo().join("tests/fixtures/claude/hooks").join(name)).unwrap()
}

const SCRIPTS: &[&str] = &[
    "session-start",
    "user-prompt-submit",
    "stop",
    "post-tool-use",
    "notification",
];

// Payloads as Claude Code's documentation gives them, for the events without
// a real capture.
const STOP: &str = r#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/home/u/.claude/projects/-repo/7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60.jsonl","cwd":"/repo","permission_mode":"default","hook_event_name":"Stop","stop_hook_active":false,"last_assistant_message":"Done."}"#;
const STOP_ACTIVE: &str = r#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/home/u/.claude/projects/-repo/7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60.jsonl","cwd":"/repo","permission_mode":"default","hook_event_name":"Stop","stop_hook_active":true,"last_assistant_message":"Reviewed it."}"#;
const PROMPT: &str = r#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/home/u/.claude/projects/-repo/7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60.jsonl","cwd":"/repo","permission_mode":"default","hook_event_name":"UserPromptSubmit","prompt":"Write a function to parse dates"}"#;
const IDLE: &str = r#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/home/u/.claude/projects/-repo/7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60.jsonl","cwd":"/repo","hook_event_name":"Notification","message":"Claude is waiting for your input","notification_type":"idle_prompt"}"#;
const PERMISSION: &str = r#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/x.jsonl","cwd":"/repo","hook_event_name":"Notification","message":"Claude needs your permission to use Bash","notification_type":"permission_prompt"}"#;

fn tool_use(tool: &str, input: Value, response: Value) -> String {
    json!({
        "session_id": "7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60",
        "transcript_path": "/home/u/.claude/projects/-repo/x.jsonl",
        "cwd": "/repo",
        "permission_mode": "acceptEdits",
        "hook_event_name": "PostToolUse",
        "tool_name": tool,
        "tool_input": input,
        "tool_response": response,
        "tool_use_id": "toolu_01ABCDEFGHIJKLMNOPQRSTUV"
    })
    .to_string()
}

/// The shared scratch environment, with this area's verbs.
struct Env(crate::support::Env);

impl std::ops::Deref for Env {
    type Target = crate::support::Env;
    fn deref(&self) -> &crate::support::Env {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(crate::support::Env::new())
    }

    fn in_dir(parent: &Path) -> Env {
        Env(crate::support::Env::new_in(parent))
    }

    /// A command with a clean environment: the built binaries on PATH, and
    /// MT_BIN pointing at an empty place so only PATH can supply mt-hook.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.clean_program(program);
        c.env("MT_BIN", self.root.join("nobin"));
        c
    }

    /// Run `sh hooks/<script>` as `agent` with `input` on stdin.
    fn hook(&self, script: &str, agent: &str, input: &[u8]) -> Output {
        self.hook_with(script, input, |c| {
            c.env("MT_AGENT", agent);
        })
    }

    fn hook_with(&self, script: &str, input: &[u8], f: impl FnOnce(&mut Command)) -> Output {
        let mut c = self.command("sh");
        c.arg(repo().join("hooks").join(script));
        f(&mut c);
        feed(c, input)
    }

    fn post(&self, from: &str, text: &str) {
        let o = self
            .command(crate::support::bin("mt-post"))
            .args(["--from", from, text])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Every record of a channel, parsed.
    fn records(&self) -> Vec<Value> {
        let o = self
            .command(crate::support::bin("mt-read"))
            .args(["--all", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn feed(mut c: Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hook that fails early may not read its input: ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A failed hook: status 1 (never 2), nothing on stdout, one line on stderr.
fn failed(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

fn context(event: &str, text: &str) -> String {
    format!(
        "{}\n",
        json!({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}})
    )
}

const YORK_INTRO: &str = "mt: this session is the mt agent \"york\", one coworker of a team led by \"lead\". Its channel is #general.\n- `mt-post 'text'` posts to #general; @name in the text mentions someone, @all everyone.\n- `mt-read` prints the messages of #general not read yet. New messages also arrive here with each prompt, and messages that mention york or @all arrive when the session stops.\n";

// ---------------------------------------------------------------------------
// Each hook against real and documented payloads: exact stdout and status

#[test]
fn session_start_real_payloads() {
    let e = Env::new();
    for f in ["session-start.json", "session-start.raw.json"] {
        let o = e.hook("session-start", "york", &fixture(f));
        assert_eq!(
            stdout(&o),
            r#"{"hookSpecificOutput":{"hookEventName":"SessionStart","additionalContext":"mt: this session is the mt agent \"york\", one coworker of a team led by \"lead\". Its channel is #general.\n- `mt-post 'text'` posts to #general; @name in the text mentions someone, @all everyone.\n- `mt-read` prints the messages of #general not read yet. New messages also arrive here with each prompt, and messages that mention york or @all arrive when the session stops.\nNothing unread on #general."}}
"#
        );
    }
    assert!(!e.state.exists(), "reading created the state directory");
}

#[test]
fn session_start_as_lead_with_task_and_unread() {
    let e = Env::new();
    let list = e.claude().join("tasks/team-1");
    fs::create_dir_all(&list).unwrap();
    fs::write(
        list.join("3.json"),
        serde_json::to_string_pretty(&json!({"id":"3","subject":"Add login","description":"Form and session cookie.\nTests too.","activeForm":"Adding login","owner":"york","status":"in_progress","blocks":[],"blockedBy":[],"metadata":{"x":1}})).unwrap(),
    )
    .unwrap();
    e.post("park", "@york the parser is yours");
    e.post("york", "on it");
    let o = e.hook_with("session-start", &fixture("session-start.json"), |c| {
        c.env("MT_AGENT", "york")
            .env("MT_TASK", "3")
            .env("CLAUDE_CODE_TASK_LIST_ID", "team-1")
            .env("MT_CHANNEL", "general");
    });
    let want = format!(
        "{YORK_INTRO}Assigned task 3 (in_progress): Add login\n  Form and session cookie.\n  Tests too.\nUnread on #general:\n#1 park: @york the parser is yours"
    );
    assert_eq!(stdout(&o), context("SessionStart", &want));

    // The lead, whose identity is the default; a task file that is missing.
    let o = e.hook_with("session-start", &fixture("session-start.raw.json"), |c| {
        c.env("MT_TASK", "9")
            .env("CLAUDE_CODE_TASK_LIST_ID", "team-1");
    });
    let want = "mt: this session is the lead of this repository's mt team. Its channel is #general.\n- `mt-post 'text'` posts to #general; @name in the text mentions someone, @all everyone.\n- `mt-read` prints the messages of #general not read yet. New messages also arrive here with each prompt, and messages that mention lead or @all arrive when the session stops.\nAssigned task 9; task list team-1 has no file for it.\nUnread on #general:\n#1 park: @york the parser is yours\n#2 york: on it";
    assert_eq!(stdout(&o), context("SessionStart", want));
}

#[test]
fn user_prompt_submit_delivers_unread_then_nothing() {
    let e = Env::new();
    e.post("lead", "build is green");
    e.post("park", "first line\nsecond line");
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    assert_eq!(
        stdout(&o),
        r#"{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"mt: new on #general since the last delivery:\n#1 lead: build is green\n#2 park: first line\n    second line"}}
"#
    );
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    assert_eq!(stdout(&o), "");
}

#[test]
fn stop_blocks_for_mentions_and_leaves_the_rest_for_the_prompt() {
    let e = Env::new();
    e.post("lead", "@york can you review the parser?");
    e.post("lead", "lunch is here");
    e.post("park", "@all standup in 5");
    let o = e.hook("stop", "york", STOP.as_bytes());
    assert_eq!(
        stdout(&o),
        r#"{"decision":"block","reason":"mt: messages on #general that mention york arrived:\n#1 lead: @york can you review the parser?\n#3 park: @all standup in 5"}
"#
    );
    // The chatter was not consumed: the next prompt gets it, and only it.
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    assert_eq!(
        stdout(&o),
        context(
            "UserPromptSubmit",
            "mt: new on #general since the last delivery:\n#2 lead: lunch is here"
        )
    );
    // Someone who is not mentioned is not woken.
    e.post("lead", "@park ping");
    let o = e.hook("stop", "york", STOP.as_bytes());
    assert_eq!(stdout(&o), "");
}

#[test]
fn stop_loop_guard() {
    let e = Env::new();
    e.post("lead", "@york please rebase");
    let o = e.hook("stop", "york", STOP.as_bytes());
    assert!(stdout(&o).starts_with(r#"{"decision":"block""#));
    // Running on because of that block, nothing new: the agent may stop.
    let o = e.hook("stop", "york", STOP_ACTIVE.as_bytes());
    assert_eq!(stdout(&o), "");
    // A message that does not mention york changes nothing.
    e.post("park", "coffee?");
    let o = e.hook("stop", "york", STOP_ACTIVE.as_bytes());
    assert_eq!(stdout(&o), "");
    // A new mention blocks again, even while stop_hook_active.
    e.post("lead", "@york and squash");
    let o = e.hook("stop", "york", STOP_ACTIVE.as_bytes());
    assert_eq!(
        stdout(&o),
        r#"{"decision":"block","reason":"mt: messages on #general that mention york arrived:\n#3 lead: @york and squash"}
"#
    );
    let o = e.hook("stop", "york", STOP_ACTIVE.as_bytes());
    assert_eq!(stdout(&o), "");
}

#[test]
fn stop_guard_lets_undelivered_backlog_wait() {
    // More mentions than one block carries: the rest is pointed to, and with
    // stop_hook_active it is not new, so it does not hold the agent.
    let e = Env::new();
    for i in 1..=25 {
        e.post("lead", &format!("@york item {i}"));
    }
    let o = e.hook("stop", "york", STOP.as_bytes());
    let out = stdout(&o);
    let v: Value = serde_json::from_str(&out).unwrap();
    let reason = v["reason"].as_str().unwrap();
    assert_eq!(reason.lines().count(), 1 + 20 + 1, "{reason}");
    assert!(reason.ends_with("#20 lead: @york item 20\n5 more unread messages are not shown here; `mt-read -c general` prints them."), "{reason}");
    let o = e.hook("stop", "york", STOP_ACTIVE.as_bytes());
    assert_eq!(stdout(&o), "");
    // Without stop_hook_active (a later stop), the backlog is delivered.
    let o = e.hook("stop", "york", STOP.as_bytes());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["reason"].as_str().unwrap().starts_with(
        "mt: messages on #general that mention york arrived:\n#21 lead: @york item 21\n"
    ));
}

#[test]
fn wake_all_blocks_for_any_message_from_others() {
    let e = Env::new();
    e.post("york", "note to self");
    e.post("lead", "lunch is here");
    let o = e.hook_with("stop", STOP.as_bytes(), |c| {
        c.env("MT_AGENT", "york").env("MT_WAKE", "all");
    });
    assert_eq!(
        stdout(&o),
        r#"{"decision":"block","reason":"mt: messages on #general arrived:\n#2 lead: lunch is here"}
"#
    );
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    assert_eq!(stdout(&o), "");
}

#[test]
fn delivered_once_across_hooks_and_mt_read() {
    let e = Env::new();
    e.post("lead", "welcome");
    let o = e.hook("session-start", "york", &fixture("session-start.json"));
    assert!(stdout(&o).contains("#1 lead: welcome"));
    assert_eq!(
        stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes())),
        ""
    );
    assert_eq!(stdout(&e.hook("stop", "york", STOP.as_bytes())), "");

    e.post("lead", "fyi: main moved");
    e.post("park", "@york your branch conflicts");
    assert!(
        stdout(&e.hook("stop", "york", STOP.as_bytes()))
            .contains("#3 park: @york your branch conflicts")
    );
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    assert_eq!(
        stdout(&o),
        context(
            "UserPromptSubmit",
            "mt: new on #general since the last delivery:\n#2 lead: fyi: main moved"
        )
    );
    assert_eq!(
        stdout(&e.hook("session-start", "york", &fixture("session-start.json"))),
        context(
            "SessionStart",
            &format!("{YORK_INTRO}Nothing unread on #general.")
        )
    );

    // The hooks and mt-read share one cursor.
    let read = |e: &Env| {
        let o = e
            .command(crate::support::bin("mt-read"))
            .args(["--as", "york", "--json"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(read(&e), "");
    e.post("lead", "@york one more");
    assert!(read(&e).contains("@york one more"));
    assert_eq!(stdout(&e.hook("stop", "york", STOP.as_bytes())), "");
    assert_eq!(
        stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes())),
        ""
    );
}

#[test]
fn deliveries_are_bounded() {
    let e = Env::new();
    for i in 1..=25 {
        e.post("lead", &format!("note {i}"));
    }
    let o = e.hook("user-prompt-submit", "york", PROMPT.as_bytes());
    let lines: Vec<String> = (1..=20).map(|i| format!("#{i} lead: note {i}")).collect();
    let want = format!(
        "mt: new on #general since the last delivery:\n{}\n5 more unread messages are not shown here; `mt-read -c general` prints them.",
        lines.join("\n")
    );
    assert_eq!(stdout(&o), context("UserPromptSubmit", &want));
    // The cursor stopped after what was shown: mt-read prints the rest.
    let o = e
        .command(crate::support::bin("mt-read"))
        .args(["--as", "york", "--json"])
        .output()
        .unwrap();
    let seqs: Vec<u64> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (21..=25).collect::<Vec<_>>());

    // Bytes: big messages stop the batch early; a huge first one is cut.
    let e = Env::new();
    e.post("lead", &"x".repeat(10_000));
    for _ in 0..5 {
        e.post("lead", &"y".repeat(1500));
    }
    let out = stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes()));
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(text.len() < 4096 + 200, "{}", text.len());
    assert!(
        text.contains("… [cut; `mt-read -c general --since 0` shows it whole]"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\n5 more unread messages are not shown here; `mt-read -c general` prints them."
        ),
        "{text}"
    );
    let out = stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes()));
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("#2 lead: yyy") && text.contains("#3 lead: yyy") && !text.contains("#4 lead"),
        "{text}"
    );
}

#[test]
fn post_tool_use_posts_task_actions() {
    let e = Env::new();
    // Other tools: nothing at all.
    let o = e.hook("post-tool-use", "york", &fixture("post-tool-use-bash.json"));
    assert_eq!(stdout(&o), "");
    assert!(!e.state.exists());

    let created = tool_use(
        "TaskCreate",
        json!({"subject": "Add login", "description": "Form and cookie", "activeForm": "Adding login"}),
        json!({"task": {"id": "3", "subject": "Add login"}}),
    );
    let claimed = tool_use(
        "TaskUpdate",
        json!({"taskId": "3", "status": "in_progress", "owner": "york"}),
        json!({"success": true, "taskId": "3", "updatedFields": ["owner", "status"], "statusChange": {"from": "pending", "to": "in_progress"}}),
    );
    let completed = tool_use(
        "TaskUpdate",
        json!({"taskId": "3", "status": "completed"}),
        json!({"success": true, "taskId": "3", "updatedFields": ["status"], "statusChange": {"from": "in_progress", "to": "completed"}}),
    );
    let refused = tool_use(
        "TaskUpdate",
        json!({"taskId": "4", "status": "completed"}),
        json!({"success": false, "taskId": "4", "error": "Task not found"}),
    );
    let from_text = tool_use(
        "TaskCreate",
        json!({"subject": "Write docs"}),
        json!("Task #4 created successfully: Write docs"),
    );
    for p in [&created, &claimed, &completed, &refused, &from_text] {
        assert_eq!(stdout(&e.hook("post-tool-use", "york", p.as_bytes())), "");
    }
    let recs = e.records();
    let got: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("york", "action", "created task 3: Add login"),
            ("york", "action", "claimed task 3"),
            ("york", "action", "completed task 3"),
            ("york", "action", "created task 4: Write docs"),
        ]
    );
    assert_eq!(
        recs[0]["session_id"],
        "7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60"
    );
}

#[test]
fn notification_posts_waiting_for_input() {
    let e = Env::new();
    assert_eq!(
        stdout(&e.hook("notification", "york", PERMISSION.as_bytes())),
        ""
    );
    assert!(!e.state.exists());
    assert_eq!(stdout(&e.hook("notification", "york", IDLE.as_bytes())), "");
    let recs = e.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (
            recs[0]["from"].as_str(),
            recs[0]["type"].as_str(),
            recs[0]["content"].as_str()
        ),
        (Some("york"), Some("status"), Some("waiting for input"))
    );
    // The agent's own records are never delivered back to it.
    assert_eq!(
        stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes())),
        ""
    );
}

#[test]
fn other_real_payloads_are_harmless() {
    let e = Env::new();
    e.post("lead", "@york hi");
    for f in [
        "pre-tool-use-bash.json",
        "pre-tool-use-agent.json",
        "post-tool-use-bash.json",
    ] {
        assert_eq!(stdout(&e.hook("post-tool-use", "york", &fixture(f))), "");
        assert_eq!(stdout(&e.hook("notification", "york", &fixture(f))), "");
    }
    assert_eq!(e.records().len(), 1);
}

// ---------------------------------------------------------------------------
// A hook never blocks by accident

#[test]
fn bad_input_is_a_non_blocking_error() {
    let e = Env::new();
    e.post("lead", "@york hi");
    for script in SCRIPTS {
        for input in [&b""[..], b"\n", b"{\"session_id\":", b"not json", b"[1,2]"] {
            let err = failed(&e.hook(script, "york", input));
            assert!(err.starts_with("mt-hook: "), "{err}");
        }
    }
    // Nothing was consumed by the failures.
    assert!(stdout(&e.hook("stop", "york", STOP.as_bytes())).contains("@york hi"));
}

#[test]
fn invalid_names_from_the_environment_and_json_are_refused() {
    let e = Env::new();
    e.post("lead", "@york hi");
    for agent in ["../x", "York", ""] {
        let o = e.hook_with("stop", STOP.as_bytes(), |c| {
            c.env("MT_AGENT", agent);
        });
        if agent.is_empty() {
            // An empty MT_AGENT means the default, lead.
            assert_eq!(stdout(&o), "");
        } else {
            assert!(failed(&o).contains("invalid agent name"));
        }
    }
    let o = e.hook_with("stop", STOP.as_bytes(), |c| {
        c.env("MT_AGENT", "york").env("MT_CHANNEL", "a/b");
    });
    assert!(failed(&o).contains("invalid channel name"));
    let bad_owner = tool_use(
        "TaskUpdate",
        json!({"taskId": "3", "owner": "../../etc"}),
        json!({"success": true}),
    );
    assert!(
        failed(&e.hook("post-tool-use", "york", bad_owner.as_bytes()))
            .contains("invalid owner name")
    );
    let bad_id = tool_use(
        "TaskUpdate",
        json!({"taskId": "1/../2", "status": "completed"}),
        json!({"success": true}),
    );
    assert!(
        failed(&e.hook("post-tool-use", "york", bad_id.as_bytes())).contains("invalid task id")
    );
    // A task list name that is not a name: the context comes without it.
    let o = e.hook_with("session-start", &fixture("session-start.json"), |c| {
        c.env("MT_AGENT", "york")
            .env("MT_TASK", "3")
            .env("CLAUDE_CODE_TASK_LIST_ID", "../../etc");
    });
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid task list name"));
    assert_eq!(e.records().len(), 1);
    assert!(!e.root.join("etc").exists());
}

#[test]
fn missing_state_directory() {
    // No MT_DIR and not inside a repository: one line, status 1.
    let e = Env::new();
    for script in SCRIPTS {
        let o = e.hook_with(script, STOP.as_bytes(), |c| {
            c.env_remove("MT_DIR").env("MT_AGENT", "york");
        });
        assert!(failed(&o).contains("no state directory"));
    }
    // A state directory that does not exist yet: nothing to deliver, nothing
    // created by reading.
    for script in ["stop", "user-prompt-submit"] {
        assert_eq!(stdout(&e.hook(script, "york", STOP.as_bytes())), "");
    }
    assert!(!e.state.exists());
}

#[test]
fn missing_or_failing_binary_never_exits_2() {
    let e = Env::new();
    // mt-hook nowhere: not in MT_BIN, not beside the script, not on PATH.
    for script in SCRIPTS {
        let o = e.hook_with(script, STOP.as_bytes(), |c| {
            c.env("PATH", "/usr/bin:/bin");
        });
        assert!(failed(&o).contains("mt-hook not found"), "{script}");
    }
    // mt-hook exits 2 on a usage error (here a mistyped MT_WAKE): one line,
    // and the script ends with 1.
    for script in SCRIPTS {
        let o = e.hook_with(script, STOP.as_bytes(), |c| {
            c.env("MT_WAKE", "bogus");
        });
        assert!(
            failed(&o).starts_with("mt-hook: invalid value 'bogus' for '--wake"),
            "{script}"
        );
    }
    // An mt-hook that dies of a signal: here sh, reading a script named after
    // the event from the current directory (nothing is written and then run,
    // which could race with other tests' forks).
    let fake = e.root.join("fake");
    fs::create_dir_all(&fake).unwrap();
    std::os::unix::fs::symlink("/bin/sh", fake.join("mt-hook")).unwrap();
    for script in SCRIPTS {
        fs::write(e.root.join(script), "kill -9 $$\n").unwrap();
        let o = e.hook_with(script, STOP.as_bytes(), |c| {
            c.env("MT_BIN", &fake);
        });
        // The shell may report the signal itself; the script adds its own
        // line and ends with 1.
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.ends_with(&format!(
                "mt {script} hook: mt-hook failed with status 137\n"
            )),
            "{err}"
        );
    }
}

#[test]
fn scripts_find_the_binary_in_their_prefix() {
    // PREFIX/share/mt/hooks/stop runs PREFIX/bin/mt-hook, with nothing on PATH.
    let e = Env::new();
    let prefix = e.root.join("prefix");
    let hooks = prefix.join("share/mt/hooks");
    fs::create_dir_all(&hooks).unwrap();
    fs::create_dir_all(prefix.join("bin")).unwrap();
    std::os::unix::fs::symlink(crate::support::bin("mt-hook"), prefix.join("bin/mt-hook")).unwrap();
    fs::copy(repo().join("hooks/stop"), hooks.join("stop")).unwrap();
    e.post("lead", "@york hi");
    let mut c = e.command("sh");
    c.arg(hooks.join("stop"))
        .env("PATH", "/usr/bin:/bin")
        .env_remove("MT_BIN")
        .env("MT_AGENT", "york");
    assert!(stdout(&feed(c, STOP.as_bytes())).contains("#1 lead: @york hi"));
}

#[test]
fn hook_scripts_are_executable_posix_sh() {
    for script in SCRIPTS {
        let p = repo().join("hooks").join(script);
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        assert!(text.contains(&format!("mt-hook {script}\n")), "{script}");
    }
}

// ---------------------------------------------------------------------------
// mt-hooks: the settings installer

fn hooks_cmd(e: &Env, args: &[&str]) -> Output {
    e.command(crate::support::bin("mt-hooks"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// What `install` writes for a hooks directory, as Claude Code's settings
/// want it.
fn expected_hooks(dir: &str) -> Value {
    let h = |s: &str| json!([{"type": "command", "command": format!("{dir}/{s}"), "timeout": 10}]);
    json!({
        "SessionStart": [{"hooks": h("session-start")}],
        "UserPromptSubmit": [{"hooks": h("user-prompt-submit")}],
        "Stop": [{"hooks": h("stop")}],
        "PostToolUse": [{"matcher": "*", "hooks": h("post-tool-use")}],
        "Notification": [{"matcher": "idle_prompt", "hooks": h("notification")}]
    })
}

fn hooks_dir() -> String {
    fs::canonicalize(repo().join("hooks"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn install_into_a_fresh_file() {
    let e = Env::new();
    let f = e.root.join("new/settings.json");
    let fs_ = f.display().to_string();
    let out = ok(&hooks_cmd(
        &e,
        &["install", "--settings", &fs_, "--hooks-dir", &hooks_dir()],
    ));
    assert!(out.starts_with("installed mt's hooks"), "{out}");
    let text = fs::read_to_string(&f).unwrap();
    let want = json!({"hooks": expected_hooks(&hooks_dir())});
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&want).unwrap())
    );
    // print shows the same entries.
    let printed = ok(&hooks_cmd(&e, &["print", "--hooks-dir", &hooks_dir()]));
    assert_eq!(printed, text);
}

#[test]
fn install_keeps_everything_else_and_is_idempotent() {
    let e = Env::new();
    let f = e.root.join("settings.json");
    let original = r#"{
  "model": "opus",
  "permissions": {
    "allow": ["Bash(npm test)"],
    "deny": []
  },
  "hooks": {
    "Stop": [
      {
        "matcher": "",
        "hooks": [
          {
            "type": "command",
            "command": "notify-send done"
          }
        ]
      }
    ],
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "/usr/local/bin/guard",
            "timeout": 5
          }
        ]
      }
    ]
  },
  "env": {
    "Z": "1",
    "A": "2"
  }
}
"#;
    fs::write(&f, original).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let path = f.display().to_string();
    ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &hooks_dir()],
    ));
    let once = fs::read_to_string(&f).unwrap();
    let v: Value = serde_json::from_str(&once).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "env"]);
    let env_keys: Vec<&String> = v["env"].as_object().unwrap().keys().collect();
    assert_eq!(env_keys, ["Z", "A"]);
    assert_eq!(
        v["permissions"],
        json!({"allow": ["Bash(npm test)"], "deny": []})
    );
    let events: Vec<&String> = v["hooks"].as_object().unwrap().keys().collect();
    assert_eq!(
        events,
        [
            "Stop",
            "PreToolUse",
            "SessionStart",
            "UserPromptSubmit",
            "PostToolUse",
            "Notification"
        ]
    );
    let want = expected_hooks(&hooks_dir());
    assert_eq!(
        v["hooks"]["Stop"][0]["hooks"][0]["command"],
        "notify-send done"
    );
    assert_eq!(v["hooks"]["Stop"][1], want["Stop"][0]);
    assert_eq!(v["hooks"]["PreToolUse"][0]["hooks"][0]["timeout"], 5);
    for ev in [
        "SessionStart",
        "UserPromptSubmit",
        "PostToolUse",
        "Notification",
    ] {
        assert_eq!(v["hooks"][ev], want[ev], "{ev}");
    }
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Twice: nothing changes, not even the file.
    let out = ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &hooks_dir()],
    ));
    assert!(out.starts_with("mt's hooks are already installed"), "{out}");
    assert_eq!(fs::read_to_string(&f).unwrap(), once);

    // Uninstall removes only ours, and what ours alone filled.
    let out = ok(&hooks_cmd(
        &e,
        &[
            "uninstall",
            "--settings",
            &path,
            "--hooks-dir",
            &hooks_dir(),
        ],
    ));
    assert!(out.starts_with("removed mt's hooks"), "{out}");
    let back = fs::read_to_string(&f).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&back).unwrap(),
        serde_json::from_str::<Value>(original).unwrap()
    );
    let v: Value = serde_json::from_str(&back).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "env"]);
    let out = ok(&hooks_cmd(
        &e,
        &[
            "uninstall",
            "--settings",
            &path,
            "--hooks-dir",
            &hooks_dir(),
        ],
    ));
    assert!(out.starts_with("no mt hooks"), "{out}");
}

#[test]
fn install_then_uninstall_fresh_leaves_an_empty_object() {
    let e = Env::new();
    let project = e.root.join("proj");
    fs::create_dir_all(&project).unwrap();
    let p = project.display().to_string();
    ok(&hooks_cmd(
        &e,
        &["install", "--project", &p, "--hooks-dir", &hooks_dir()],
    ));
    let f = project.join(".claude/settings.json");
    assert!(f.is_file());
    ok(&hooks_cmd(
        &e,
        &["uninstall", "--project", &p, "--hooks-dir", &hooks_dir()],
    ));
    assert_eq!(fs::read_to_string(&f).unwrap(), "{}\n");

    // --user writes Claude Code's own settings file.
    ok(&hooks_cmd(
        &e,
        &["install", "--user", "--hooks-dir", &hooks_dir()],
    ));
    let v: Value =
        serde_json::from_str(&fs::read_to_string(e.claude().join("settings.json")).unwrap())
            .unwrap();
    assert_eq!(v["hooks"], expected_hooks(&hooks_dir()));
}

#[test]
fn install_replaces_entries_from_another_prefix() {
    let e = Env::new();
    let f = e.root.join("settings.json");
    let old = json!({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/old/prefix/share/mt/hooks/stop", "timeout": 10}]}]}});
    fs::write(&f, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let path = f.display().to_string();
    ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &hooks_dir()],
    ));
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(v["hooks"], expected_hooks(&hooks_dir()));
}

#[test]
fn installer_refuses_bad_files_and_missing_scripts() {
    let e = Env::new();
    let f = e.root.join("settings.json");
    fs::write(&f, "{ not json").unwrap();
    let path = f.display().to_string();
    let o = hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &hooks_dir()],
    );
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(fs::read_to_string(&f).unwrap(), "{ not json");
    fs::write(&f, r#"{"hooks": []}"#).unwrap();
    let o = hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &hooks_dir()],
    );
    assert_eq!(o.status.code(), Some(65));
    // The default hooks directory is PREFIX/share/mt/hooks beside PREFIX/bin;
    // for the build tree it does not exist, so the scripts cannot be used.
    fs::remove_file(&f).unwrap();
    let o = hooks_cmd(&e, &["install", "--settings", &path, "--form", "scripts"]);
    assert_eq!(
        o.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--form direct"));
    assert!(!f.exists());
}

#[test]
fn installer_finds_scripts_beside_its_prefix() {
    let e = Env::in_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let prefix = e.root.join("prefix");
    fs::create_dir_all(prefix.join("bin")).unwrap();
    fs::create_dir_all(prefix.join("share/mt/hooks")).unwrap();
    for s in SCRIPTS {
        fs::copy(
            repo().join("hooks").join(s),
            prefix.join("share/mt/hooks").join(s),
        )
        .unwrap();
    }
    // A hard link or a copy, not a symlink: the program finds itself through
    // its real path.
    let exe = prefix.join("bin/mt-hooks");
    if fs::hard_link(crate::support::bin("mt-hooks"), &exe).is_err() {
        fs::copy(crate::support::bin("mt-hooks"), &exe).unwrap();
    }
    let f = e.root.join("s.json");
    // Another test's fork may briefly hold a copy open for writing
    // (ETXTBSY): try again.
    let mut tries = 0;
    let o = loop {
        match e
            .command(prefix.join("bin/mt-hooks"))
            .args(["install", "--settings"])
            .arg(&f)
            .output()
        {
            Err(err) if err.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => break r.unwrap(),
        }
    };
    ok(&o);
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    let dir = fs::canonicalize(prefix.join("share/mt/hooks")).unwrap();
    assert_eq!(v["hooks"], expected_hooks(&dir.display().to_string()));
}

#[test]
fn nothing_is_consumed_when_the_output_fails() {
    let e = Env::new();
    e.post("lead", "@york look");
    e.post("lead", "chatter");
    for script in ["stop", "user-prompt-submit"] {
        let mut c = e.command("sh");
        c.arg(repo().join("hooks").join(script))
            .env("MT_AGENT", "york");
        c.stdout(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        );
        let mut child = c
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(STOP.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{script}");
    }
    assert!(stdout(&e.hook("stop", "york", STOP.as_bytes())).contains("#1 lead: @york look"));
    assert!(
        stdout(&e.hook("user-prompt-submit", "york", PROMPT.as_bytes()))
            .contains("#2 lead: chatter")
    );
}

#[test]
fn stop_state_follows_a_channel_reset() {
    let e = Env::new();
    e.post("lead", "chatter");
    e.post("lead", "@york one");
    e.post("lead", "@york two");
    assert!(stdout(&e.hook("stop", "york", STOP.as_bytes())).contains("#3 lead: @york two"));
    assert!(e.state.join("cursors/york/general.stop").is_file());
    // Someone removes the channel and starts again: seqs restart at 1.
    fs::remove_dir_all(e.state.join("channels/general")).unwrap();
    e.post("park", "@york fresh start");
    let out = stdout(&e.hook("stop", "york", STOP_ACTIVE.as_bytes()));
    assert!(out.contains("#1 park: @york fresh start"), "{out}");
}

// ---------------------------------------------------------------------------
// mt-hook as the hook command itself, and the Stop block cap

impl Env {
    /// Run `mt-hook EVENT` directly as `agent`, with `input` on stdin.
    fn direct(&self, event: &str, agent: &str, input: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(crate::support::bin("mt-hook"));
        c.arg(event).env("MT_AGENT", agent);
        for (k, v) in env {
            c.env(k, v);
        }
        feed(c, input)
    }

    /// What `mt-read --peek` shows `agent` as unread, one content per record.
    fn unread(&self, agent: &str) -> Vec<String> {
        let o = self
            .command(crate::support::bin("mt-read"))
            .args(["--as", agent, "--peek", "--json"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn stop_state(&self) -> Value {
        serde_json::from_slice(&fs::read(self.state.join("cursors/york/general.stop")).unwrap())
            .unwrap()
    }
}

const BASH_DONE: &str = r#"{"session_id":"s","cwd":"/repo","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{"command":"true"},"tool_response":{"stdout":"","stderr":"","interrupted":false},"tool_use_id":"toolu_1"}"#;

/// A Stop call that the agent sees as blocked or not.
fn blocks(o: &Output) -> bool {
    let out = stdout(o);
    assert!(
        out.is_empty() || out.starts_with(r#"{"decision":"block""#),
        "{out}"
    );
    !out.is_empty()
}

#[test]
fn mt_hook_never_exits_2_on_bad_usage() {
    let e = Env::new();
    e.post("lead", "@york hi");
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let bad: &[(&[&str], Vars)] = &[
        (&[], &[]),
        (&["bogus-event"], &[]),
        (&["stop", "--no-such-flag"], &[]),
        (&["stop", "--max-messages", "many"], &[]),
        (&["stop"], &[("MT_WAKE", "bogus")]),
        (&["stop", "extra"], &[]),
    ];
    for (args, env) in bad {
        let mut c = e.command(crate::support::bin("mt-hook"));
        c.args(*args).env("MT_AGENT", "york");
        for (k, v) in *env {
            c.env(k, v);
        }
        let o = feed(c, STOP.as_bytes());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("mt-hook: "), "{err}");
    }
    // Other failures keep their own codes, none of them 2.
    let o = e.direct("stop", "york", b"not json", &[]);
    assert_eq!(o.status.code(), Some(65));
    let o = e.direct("stop", "../x", STOP.as_bytes(), &[]);
    assert_eq!(o.status.code(), Some(65));
    let mut c = e.command(crate::support::bin("mt-hook"));
    c.arg("stop").env_remove("MT_DIR");
    assert_eq!(feed(c, STOP.as_bytes()).status.code(), Some(69));
    // Help is no error; nothing was consumed by any of this.
    let o = e
        .command(crate::support::bin("mt-hook"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(blocks(&e.direct("stop", "york", STOP.as_bytes(), &[])));
}

#[test]
fn direct_entries_run_through_a_shell() {
    // Claude Code runs a hook's command with sh -c: the entry for an agent
    // works from anywhere, with a path that needs quoting too.
    let e = Env::new();
    let odd = e.root.join("bin dir/it's");
    fs::create_dir_all(&odd).unwrap();
    let bin = odd.join("mt-hook");
    fs::copy(crate::support::bin("mt-hook"), &bin).unwrap();
    let hooks = mt::claude_settings::hooks_for_agent(&bin);
    let events: Vec<&String> = hooks["hooks"].as_object().unwrap().keys().collect();
    assert_eq!(
        events,
        ["SessionStart", "UserPromptSubmit", "Stop", "PostToolUse"]
    );
    assert_eq!(hooks["hooks"]["PostToolUse"][0]["matcher"], "*");
    e.post("lead", "@york look");
    let stop = hooks["hooks"]["Stop"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap();
    assert!(stop.ends_with("/mt-hook' stop"), "{stop}");
    // Another test's fork may briefly hold the copy open for writing.
    let o = loop {
        let mut c = e.command("sh");
        c.args(["-c", stop]).env("MT_AGENT", "york");
        let o = feed(c, STOP.as_bytes());
        if !String::from_utf8_lossy(&o.stderr).contains("Text file busy") {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(stdout(&o).contains("#1 lead: @york look"));

    // The same entries are mt's for the installer: uninstall removes them
    // all, and install puts one handler per event in their place.
    let mut s = json!({"model": "x"});
    s.as_object_mut()
        .unwrap()
        .insert("hooks".into(), hooks["hooks"].clone());
    assert!(mt::claude_settings::uninstall(&mut s, Path::new("/nowhere")).unwrap());
    assert_eq!(s, json!({"model": "x"}));
    let mut s = hooks.clone();
    assert!(mt::claude_settings::install(&mut s, Path::new("/p/share/mt/hooks")).unwrap());
    assert_eq!(
        s,
        mt::claude_settings::snippet(Path::new("/p/share/mt/hooks"))
    );
    // Someone's own mt-hook command with flags is theirs.
    let mut s = json!({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/x/mt-hook stop --wake all"}]}]}});
    assert!(!mt::claude_settings::uninstall(&mut s, Path::new("/nowhere")).unwrap());
}

#[test]
fn installer_writes_mt_hook_itself_without_scripts() {
    // The build tree has no PREFIX/share/mt/hooks: as after `cargo install`,
    // the entries run the mt-hook beside mt-hooks.
    let e = Env::new();
    let f = e.root.join("settings.json");
    let path = f.display().to_string();
    let out = ok(&hooks_cmd(&e, &["install", "--settings", &path]));
    assert!(out.starts_with("installed mt's hooks"), "{out}");
    let bin = fs::canonicalize(crate::support::bin("mt-hook")).unwrap();
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(
        v,
        mt::claude_settings::snippet(mt::claude_settings::Source::Binary(&bin))
    );
    assert_eq!(
        v["hooks"]["Stop"][0]["hooks"][0]["command"],
        format!("{} stop", bin.display())
    );
    assert_eq!(
        ok(&hooks_cmd(&e, &["print"])),
        fs::read_to_string(&f).unwrap()
    );
    let out = ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--form", "direct"],
    ));
    assert!(out.starts_with("mt's hooks are already installed"), "{out}");
    // Switching to installed scripts replaces the entries, and back.
    let scripts = e.root.join("prefix/share/mt/hooks");
    fs::create_dir_all(&scripts).unwrap();
    for s in SCRIPTS {
        fs::copy(repo().join("hooks").join(s), scripts.join(s)).unwrap();
    }
    let dir = scripts.display().to_string();
    ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &dir],
    ));
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(v["hooks"], expected_hooks(&dir));
    ok(&hooks_cmd(&e, &["install", "--settings", &path]));
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(
        v,
        mt::claude_settings::snippet(mt::claude_settings::Source::Binary(&bin))
    );
    ok(&hooks_cmd(&e, &["uninstall", "--settings", &path]));
    assert_eq!(fs::read_to_string(&f).unwrap(), "{}\n");
    // An older install, PostToolUse for the task tools only, is replaced.
    let old = json!({"hooks": {"PostToolUse": [{"matcher": "TaskCreate|TaskUpdate", "hooks": [{"type": "command", "command": format!("{dir}/post-tool-use"), "timeout": 10}]}]}});
    fs::write(&f, old.to_string()).unwrap();
    ok(&hooks_cmd(
        &e,
        &["install", "--settings", &path, "--hooks-dir", &dir],
    ));
    let v: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(
        v["hooks"]["PostToolUse"],
        expected_hooks(&dir)["PostToolUse"]
    );
}

#[test]
fn stop_never_blocks_past_claude_codes_cap() {
    let e = Env::new();
    e.post("lead", "@york 1");
    assert!(blocks(&e.direct("stop", "york", STOP.as_bytes(), &[])));
    // Seven more blocks, each for a new mention: eight in a row.
    for i in 2..=8 {
        e.post("lead", &format!("@york {i}"));
        assert!(
            blocks(&e.direct("stop", "york", STOP_ACTIVE.as_bytes(), &[])),
            "{i}"
        );
    }
    // The ninth would be overridden: no block, and the mention stays unread.
    e.post("lead", "@york 9");
    assert!(!blocks(&e.direct(
        "stop",
        "york",
        STOP_ACTIVE.as_bytes(),
        &[]
    )));
    assert_eq!(e.unread("york"), ["@york 9"]);
    // The next prompt delivers it.
    let out = stdout(&e.direct("user-prompt-submit", "york", PROMPT.as_bytes(), &[]));
    assert!(out.contains("#9 lead: @york 9"), "{out}");
    assert!(e.unread("york").is_empty());

    // A tool call restarts the count, as it does in Claude Code.
    e.post("lead", "@york 10");
    assert!(!blocks(&e.direct(
        "stop",
        "york",
        STOP_ACTIVE.as_bytes(),
        &[]
    )));
    assert_eq!(
        stdout(&e.direct("post-tool-use", "york", BASH_DONE.as_bytes(), &[])),
        ""
    );
    assert_eq!(e.stop_state()["blocks"], 0);
    assert!(blocks(&e.direct(
        "stop",
        "york",
        STOP_ACTIVE.as_bytes(),
        &[]
    )));
    // A goal tool does not, nor a tool a subagent ran.
    let goal = BASH_DONE.replace("\"Bash\"", "\"GetGoal\"");
    let sub = BASH_DONE.replace(
        "\"cwd\"",
        "\"agent_id\":\"a1b2\",\"agent_type\":\"Explore\",\"cwd\"",
    );
    for p in [goal, sub] {
        assert_eq!(
            stdout(&e.direct("post-tool-use", "york", p.as_bytes(), &[])),
            ""
        );
        assert_eq!(e.stop_state()["blocks"], 1);
    }
    // A new turn (stop_hook_active false) restarts it too.
    for i in 11..=20 {
        e.post("lead", &format!("@york {i}"));
        let input = if i == 11 { STOP } else { STOP_ACTIVE };
        assert_eq!(
            blocks(&e.direct("stop", "york", input.as_bytes(), &[])),
            i <= 18,
            "{i}"
        );
    }
}

#[test]
fn stop_cap_counts_blocks_by_other_hooks_and_follows_the_variable() {
    // Another Stop hook kept the session going five times; mt's mention
    // comes next, and the cap of 6 leaves room for one block only.
    let e = Env::new();
    e.post("park", "chatter");
    let cap = [("CLAUDE_CODE_STOP_HOOK_BLOCK_CAP", "6")];
    assert!(!blocks(&e.direct("stop", "york", STOP.as_bytes(), &cap)));
    for _ in 0..4 {
        assert!(!blocks(&e.direct(
            "stop",
            "york",
            STOP_ACTIVE.as_bytes(),
            &cap
        )));
    }
    e.post("lead", "@york a");
    assert!(blocks(&e.direct(
        "stop",
        "york",
        STOP_ACTIVE.as_bytes(),
        &cap
    )));
    e.post("lead", "@york b");
    assert!(!blocks(&e.direct(
        "stop",
        "york",
        STOP_ACTIVE.as_bytes(),
        &cap
    )));
    let out = stdout(&e.direct("user-prompt-submit", "york", PROMPT.as_bytes(), &[]));
    assert_eq!(
        out,
        context(
            "UserPromptSubmit",
            "mt: new on #general since the last delivery:\n#1 park: chatter\n#3 lead: @york b"
        )
    );

    // 0 (or less) means no cap at all.
    let none = [("CLAUDE_CODE_STOP_HOOK_BLOCK_CAP", "0")];
    for i in 0..12 {
        e.post("lead", &format!("@york more {i}"));
        assert!(
            blocks(&e.direct("stop", "york", STOP_ACTIVE.as_bytes(), &none)),
            "{i}"
        );
    }
    // Through the hook scripts, the same.
    e.post("lead", "@york last");
    let o = e.hook_with("stop", STOP_ACTIVE.as_bytes(), |c| {
        c.env("MT_AGENT", "york")
            .env("CLAUDE_CODE_STOP_HOOK_BLOCK_CAP", "3");
    });
    assert!(!blocks(&o));
}
