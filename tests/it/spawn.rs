//! The agent lifecycle, driven through the real binaries with the fake agent
//! (mt-fake-agent) standing in for Claude Code.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{FAKE, bin, jsonl, repo, text, wait_for};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/claude/stream-json").join(name)
}

/// The shared scratch environment (agents still running when a test ends
/// are stopped), with this area's verbs and the fake agent's receipts.
struct Env {
    base: crate::support::Env,
    receipts: PathBuf,
}

impl std::ops::Deref for Env {
    type Target = crate::support::Env;
    fn deref(&self) -> &crate::support::Env {
        &self.base
    }
}

impl Env {
    fn new() -> Env {
        let base = crate::support::Env::new();
        let receipts = base.root.join("receipts.jsonl");
        Env { base, receipts }
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = self.base.cmd(name);
        c.env("MT_FAKE_RECEIPTS", &self.receipts);
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().unwrap()
    }

    /// Start a detached agent with the fake in `mode`.
    fn spawn_detached(&self, name: &str, mode: &str, prompt: &str) {
        let out = self
            .cmd("mt-spawn")
            .env("MT_FAKE_MODE", mode)
            .args([name, "--detach", "--prompt", prompt])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }

    fn ps(&self, name: &str) -> Value {
        let out = self.run("mt-ps", &["--json", name]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn records(&self) -> Vec<Value> {
        jsonl(&self.record)
    }

    fn receipts(&self) -> Vec<String> {
        jsonl(&self.receipts)
            .iter()
            .map(|r| r["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn channel(&self) -> Vec<Value> {
        let out = self.run("mt-read", &["--all", "--json"]);
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn inbox(&self, name: &str, sub: &str) -> usize {
        fs::read_dir(self.agent(name).join("inbox").join(sub))
            .unwrap()
            .count()
    }
}

/// A process is gone when /proc has no entry or only a zombie (whose
/// parent is then init, which reaps in its own time).
fn alive(pid: i64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

fn ppid(pid: i64) -> Option<i64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pid_of(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn agent_sees_stream_json_argv_and_clean_environment() {
    let e = Env::new();
    let sub = e.repo.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .env("CLAUDECODE", "1")
        .env("CLAUDE_CODE_SESSION_ID", "parent-session")
        .env("CLAUDE_CODE_ENTRYPOINT", "cli")
        .env("CLAUDE_CODE_MESSAGING_SOCKET", "/tmp/sock")
        .env("CLAUDE_CODE_MESSAGING_TOKEN", "secret")
        .env("CLAUDE_CODE_CHILD_SESSION", "1")
        .env("CLAUDE_CODE_CHILD_NOTES_DIR", "/tmp/notes")
        .env("CLAUDE_CODE_SESSION_ATTENDED", "0")
        .env("CLAUDE_CODE_EXECPATH", "/usr/bin/claude")
        .env("CLAUDE_PID", "4242")
        .env("CLAUDE_EFFORT", "high")
        .env("CLAUDE_ENV_FILE", "/tmp/env")
        .env("CLAUDE_PROJECT_DIR", "/tmp/p")
        .env("AI_AGENT", "claude-code")
        .env("MT_RUN", "parent-run")
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:8")
        .env("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "1000")
        .env("MT_AGENT", "lead")
        .env("MT_TASK", "parent-task")
        .env("CLAUDE_CODE_TASK_LIST_ID", "team-list")
        .args([
            "york",
            "--prompt",
            "hello",
            "--model",
            "opus",
            "--role",
            "You review.",
            "--no-coworker-prompt",
            "--task",
            "12",
            "--channel",
            "team",
            "--cwd",
            "sub",
            "--",
            "--max-turns",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rec = &e.records()[0];
    let session = e.meta("york")["session_id"].as_str().unwrap().to_string();
    let argv: Vec<&str> = rec["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], FAKE);
    assert_eq!(
        argv[1..],
        [
            "-p",
            "--verbose",
            "--output-format",
            "stream-json",
            "--input-format",
            "stream-json",
            "--session-id",
            &session,
            "--settings",
            e.state.join("agents/york/settings.json").to_str().unwrap(),
            "--model",
            "opus",
            "--append-system-prompt",
            "You review.",
            "--max-turns",
            "3"
        ]
    );
    let env = &rec["env"];
    for gone in [
        "CLAUDECODE",
        "CLAUDE_CODE_SESSION_ID",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_CODE_MESSAGING_SOCKET",
        "CLAUDE_CODE_MESSAGING_TOKEN",
        "CLAUDE_CODE_CHILD_SESSION",
        "CLAUDE_CODE_CHILD_NOTES_DIR",
        "CLAUDE_CODE_SESSION_ATTENDED",
        "CLAUDE_CODE_EXECPATH",
        "CLAUDE_PID",
        "CLAUDE_EFFORT",
        "CLAUDE_ENV_FILE",
        "CLAUDE_PROJECT_DIR",
        "AI_AGENT",
    ] {
        assert!(env.get(gone).is_none(), "{gone} leaked into the agent");
    }
    // The user's own configuration stays.
    assert_eq!(env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:9");
    assert_eq!(env["HTTPS_PROXY"], "http://127.0.0.1:8");
    assert_eq!(env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"], "1000");
    // Task tools on; a run marker of its own.
    assert_eq!(env["CLAUDE_CODE_ENABLE_TODO_TOOLS"], "1");
    let run = e.status("york")["run_id"].as_str().unwrap().to_string();
    assert_eq!(env["MT_RUN"], run.as_str());
    assert_eq!(env["MT_AGENT"], "york");
    assert_eq!(env["MT_DIR"], e.state.to_str().unwrap());
    assert_eq!(env["MT_CHANNEL"], "team");
    assert_eq!(env["MT_TASK"], "12");
    assert_eq!(env["CLAUDE_CODE_TASK_LIST_ID"], "team-list");
    assert_eq!(rec["cwd"], sub.to_str().unwrap());
    // Its own session and process group, child of the supervisor.
    let pid = pid_of(rec, "pid");
    assert_eq!(pid_of(rec, "pgid"), pid);
    assert_eq!(pid_of(rec, "sid"), pid);
    assert_eq!(
        pid_of(rec, "ppid"),
        pid_of(&e.status("york"), "supervisor_pid")
    );
    // The prompt was its first message.
    assert_eq!(e.receipts(), vec!["hello"]);
}

/// The expected status values computed from a capture itself.
fn expected(capture: &str) -> (String, u64, u64, u64, f64) {
    let lines: Vec<Value> = capture
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = lines.iter().rfind(|v| v["type"] == "result").unwrap();
    (
        lines[0]["session_id"].as_str().unwrap().to_string(),
        result["num_turns"].as_u64().unwrap(),
        result["usage"]["input_tokens"].as_u64().unwrap(),
        result["usage"]["output_tokens"].as_u64().unwrap(),
        result["total_cost_usd"].as_f64().unwrap(),
    )
}

#[test]
fn status_after_each_fixture_stream() {
    let e = Env::new();
    for (i, f) in [
        "simple_greeting.jsonl",
        "multi_turn.jsonl",
        "todo_operations.jsonl",
        "tool_error.jsonl",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("fx{i}");
        let out = e
            .cmd("mt-spawn")
            .env("MT_FAKE_MODE", "exit:0")
            .env("MT_FAKE_SCRIPT", fixture(f))
            .args([&name, "--prompt", "go"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{f}: {}", text(&out.stderr));
        let capture = fs::read_to_string(fixture(f)).unwrap();
        let (session, num_turns, input, output, cost) = expected(&capture);
        let st = e.status(&name);
        assert_eq!(st["session_id"], session.as_str(), "{f}");
        assert_eq!(st["turns"], 1, "{f}");
        assert_eq!(st["num_turns"], num_turns, "{f}");
        assert_eq!(st["input_tokens"], input, "{f}");
        assert_eq!(st["output_tokens"], output, "{f}");
        assert_eq!(st["cost_usd"].as_f64().unwrap(), cost, "{f}");
        assert_eq!(st["model"], "claude-opus-4-20250514", "{f}");
        assert_eq!(st["state"], "exited", "{f}");
        assert_eq!(st["exit_code"], 0, "{f}");
        assert_eq!(st["events"], capture.lines().count(), "{f}");
        // Every line of the capture is in events.jsonl, as it was.
        let events = fs::read_to_string(e.agent(&name).join("events.jsonl")).unwrap();
        for line in capture.lines() {
            assert!(events.lines().any(|l| l == line), "{f}: line missing");
        }
    }
}

#[test]
fn rate_limit_is_recorded_and_posted() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "rate-limit,exit:0")
        .args(["rl", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rl = &e.status("rl")["rate_limit"];
    assert_eq!(rl["status"], "rejected");
    assert_eq!(rl["kind"], "five_hour");
    assert!(rl["resets_at"].as_str().unwrap().ends_with('Z'));
    let recs = e.channel();
    let kinds: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap(),
                r["meta"]["event"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("status", "start"),
            ("system", "rate_limit"),
            ("status", "exit")
        ]
    );
    assert!(recs.iter().all(|r| r["from"] == "rl"));
}

#[test]
fn unknown_events_and_malformed_lines_are_kept_and_survived() {
    let e = Env::new();
    let script = e.repo.join("junk.jsonl");
    let junk = [
        r#"{"type":"system","subtype":"init","session_id":"s-junk","model":"m"}"#,
        r#"{"type":"telepathy","payload":{"x":1}}"#,
        "this is not json {",
        "[1,2,3]",
        r#"{"type":"system","subtype":"brand_new_subtype"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"hologram"}]},"extra":true}"#,
        r#"{"type":"result","subtype":"success","num_turns":2,"session_id":"s-junk","total_cost_usd":0.5,"usage":{"input_tokens":3,"output_tokens":4},"new_field":[]}"#,
    ];
    fs::write(&script, junk.join("\n") + "\n").unwrap();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .env("MT_FAKE_SCRIPT", &script)
        .args(["junk", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = fs::read_to_string(e.agent("junk").join("events.jsonl")).unwrap();
    for line in junk {
        assert!(events.lines().any(|l| l == line), "{line} not kept");
    }
    let st = e.status("junk");
    assert_eq!(st["malformed"], 2);
    // The result after the junk was still understood.
    assert_eq!(st["turns"], 1);
    assert_eq!(st["cost_usd"], 0.5);
    assert_eq!(st["session_id"], "s-junk");
    assert_eq!(st["state"], "exited");
    // The transcript shows the bad line rather than hiding it.
    let log = e.run("mt-log", &["junk"]);
    assert!(text(&log.stdout).contains("?? this is not json {"));
}

#[test]
fn nudge_to_running_agent_arrives_once() {
    let e = Env::new();
    e.spawn_detached("york", "", "first");
    wait_for("the prompt", || e.receipts().len() == 1);
    let out = e.run("mt-nudge", &["york", "second", "message"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the nudge", || e.receipts().len() == 2);
    // From standard input, multi-line.
    let out = e
        .cmd("mt-nudge")
        .arg("york")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"third\nline two\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the stdin nudge", || e.receipts().len() == 3);
    wait_for("the third turn", || e.status("york")["turns"] == 3);
    // Each arrived exactly once, in order; the inbox holds them as read.
    assert_eq!(e.receipts(), ["first", "second message", "third\nline two"]);
    assert_eq!(e.inbox("york", "new"), 0);
    assert_eq!(e.inbox("york", "cur"), 2);
    let st = e.status("york");
    assert_eq!(st["inputs"], 3);
    assert_eq!(st["state"], "idle");
    assert_eq!(st["cost_usd"], 0.03);
    let log = text(&e.run("mt-log", &["york"]).stdout);
    assert!(log.contains(">> second message\n"), "{log}");
    assert!(log.contains("ok: second message\n"), "{log}");
}

#[test]
fn nudge_to_stopped_agent_resumes_its_session() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .args([
            "park",
            "--prompt",
            "one",
            "--model",
            "haiku",
            "--idle-exit",
            "90s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(e.ps("park")["state"], "exited");
    let session = e.status("park")["session_id"].as_str().unwrap().to_string();

    let out = e.run("mt-nudge", &["park", "come", "back"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the resumed turn", || e.status("park")["turns"] == 2);
    let recs = e.records();
    assert_eq!(recs.len(), 2);
    let argv = recs[1]["argv"].as_array().unwrap();
    let pos = argv.iter().position(|a| a == "--resume").expect("--resume");
    assert_eq!(argv[pos + 1], session.as_str());
    assert!(!argv.iter().any(|a| a == "--session-id"));
    // Options of the first start carry over.
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--model" && w[1] == "haiku")
    );
    assert_eq!(e.receipts(), ["one", "come back"]);
    assert_eq!(e.meta("park")["idle_exit_ms"], 90_000);
    let st = e.status("park");
    assert_eq!(st["runs"], 2);
    assert_eq!(st["cost_usd"], 0.02, "totals carry over across runs");
    assert!(e.ps("park")["running"].as_bool().unwrap());
    // --no-resume leaves a message for a stopped agent in its inbox.
    e.run("mt-stop", &["park"]);
    let out = e.run("mt-nudge", &["--no-resume", "park", "later"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(e.inbox("park", "new"), 1);
    assert_eq!(e.records().len(), 2);
}

#[test]
fn late_nudge_after_idle_exit_resumes_in_the_same_supervisor() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "linger:1500")
        .args(["late", "-d", "--idle-exit", "100ms", "--prompt", "one"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("stdin to close", || {
        e.status("late")["stdin_closed"] == true
    });
    let sup = pid_of(&e.status("late"), "supervisor_pid");
    // Still running (lingering): the message goes to the inbox, and the
    // supervisor resumes the session with it once the agent ends.
    let out = e.run("mt-nudge", &["late", "after", "close"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the late message", || e.receipts().len() == 2);
    assert_eq!(e.receipts(), ["one", "after close"]);
    let recs = e.records();
    assert!(
        recs[1]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--resume")
    );
    assert_eq!(pid_of(&e.status("late"), "supervisor_pid"), sup);
}

#[test]
fn stop_kills_agent_and_grandchild() {
    let e = Env::new();
    e.spawn_detached("york", "grandchild", "work");
    wait_for("the record", || !e.records().is_empty());
    let rec = &e.records()[0];
    let (agent, gc) = (pid_of(rec, "pid"), pid_of(rec, "grandchild"));
    let sup = pid_of(&e.status("york"), "supervisor_pid");
    assert!(alive(agent) && alive(gc) && alive(sup));

    let out = e.run("mt-stop", &["york"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // mt-stop returns once the supervisor released the lock.
    assert!(!alive(agent), "agent survived");
    assert!(!alive(gc), "grandchild survived");
    wait_for("the supervisor to end", || !alive(sup));
    let st = e.ps("york");
    assert_eq!(st["state"], "exited");
    assert_eq!(st["stopped"], true);
    assert_eq!(st["signal"], "SIGTERM");
    assert_eq!(st["exit_code"], 143);
    assert_eq!(st["running"], false);
    assert!(st["stopped_by"].as_str().unwrap().contains("mt-stop"));
    let last = e.channel().pop().unwrap();
    assert_eq!(last["meta"]["event"], "stop");
    assert!(!e.agent("york").join("stop.json").exists());
}

#[test]
fn an_ended_agent_takes_its_whole_session_with_it() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "grandchild,job,setsid,exit:0")
        .args(["york", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rec = &e.records()[0];
    let (gc, job) = (pid_of(rec, "grandchild"), pid_of(rec, "job"));
    let own = pid_of(rec, "setsid");
    assert_ne!(pid_of(rec, "pid"), job);
    assert!(!alive(gc), "grandchild in the agent's group survived");
    assert!(!alive(job), "grandchild in its own group survived");
    assert!(!alive(own), "grandchild in its own session survived");
}

#[test]
fn stop_escalates_to_sigkill_after_the_grace() {
    let e = Env::new();
    e.spawn_detached("stubborn", "hang,ignore-term", "work");
    wait_for("the record", || !e.records().is_empty());
    let agent = pid_of(&e.records()[0], "pid");
    let out = e.run("mt-stop", &["--grace", "200ms", "stubborn"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!alive(agent));
    let st = e.status("stubborn");
    assert_eq!(st["signal"], "SIGKILL");
    assert_eq!(st["stopped"], true);
    assert_eq!(st["state"], "exited");
}

#[test]
fn soft_stop_closes_stdin_and_the_agent_exits_cleanly() {
    let e = Env::new();
    e.spawn_detached("york", "", "work");
    wait_for("the agent to be idle", || {
        e.status("york")["state"] == "idle"
    });
    let sup = pid_of(&e.status("york"), "supervisor_pid");
    let out = e
        .cmd("mt-stop")
        .env("MT_AGENT", "boss")
        .args(["--soft", "--grace", "30s", "york"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the supervisor to end", || !alive(sup));
    let st = e.ps("york");
    assert_eq!(st["state"], "exited");
    assert_eq!(st["exit_code"], 0);
    assert_eq!(st["signal"], Value::Null);
    assert_eq!(st["stopped"], true);
    assert_eq!(st["stopped_by"], "mt-stop by boss");
    assert_eq!(st["stdin_closed"], true);
    assert_eq!(e.channel().pop().unwrap()["meta"]["event"], "stop");
    assert!(!e.agent("york").join("stop.json").exists());
    assert!(!e.agent("york").join("inbox/new/.stop").exists());
}

#[test]
fn soft_stop_signals_an_agent_that_does_not_exit_after_the_grace() {
    let e = Env::new();
    e.spawn_detached("slow", "linger:60000", "work");
    wait_for("the agent to be idle", || {
        e.status("slow")["state"] == "idle"
    });
    let out = e.run("mt-stop", &["--soft", "--grace", "500ms", "slow"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let st = e.ps("slow");
    assert_eq!(st["running"], false);
    assert_eq!(st["signal"], "SIGTERM");
    assert_eq!(st["stopped"], true);
    assert_eq!(st["state"], "exited");

    // One that ignores both end of input and SIGTERM is killed.
    e.spawn_detached("stubborn", "hang,ignore-term", "work");
    wait_for("the record", || !e.records().is_empty());
    let agent = pid_of(&e.records()[0], "pid");
    let out = e.run("mt-stop", &["--soft", "--grace", "500ms", "stubborn"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!alive(agent));
    let st = e.status("stubborn");
    assert_eq!(st["signal"], "SIGKILL");
    assert_eq!(st["stopped"], true);
}

#[test]
fn crashing_agent_is_reported_with_its_exit_code() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:3")
        .args(["bad", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let st = e.ps("bad");
    assert_eq!(st["state"], "failed");
    assert_eq!(st["exit_code"], 3);
    assert_eq!(st["error"], "exit");
    assert_eq!(e.run("mt-wait", &["bad"]).status.code(), Some(3));
    let last = e.channel().pop().unwrap();
    assert_eq!(last["type"], "system");
    assert_eq!(last["meta"]["event"], "fail");
    assert_eq!(last["meta"]["exit_code"], 3);

    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "crash")
        .args(["boom", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(134), "SIGABRT is 128+6");
    let st = e.status("boom");
    assert_eq!(st["signal"], "SIGABRT");
    assert_eq!(st["error"], "signal");
    assert_eq!(st["state"], "failed");
}

#[test]
fn missing_agent_program_fails_clearly() {
    let e = Env::new();
    for detach in [false, true] {
        let name = if detach { "nf-d" } else { "nf" };
        let mut c = e.cmd("mt-spawn");
        c.env("MT_AGENT_CMD", "/nonexistent/claude")
            .args([name, "--prompt", "go"]);
        if detach {
            c.arg("--detach");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("/nonexistent/claude"));
        let st = e.status(name);
        assert_eq!(st["state"], "failed");
        assert_eq!(st["error"], "spawn");
    }
}

#[test]
fn killing_the_supervisor_leaves_no_agent_behind() {
    let e = Env::new();
    // hang: the agent would not end by itself when its stdin closes.
    e.spawn_detached("york", "hang,grandchild,setsid", "work");
    wait_for("the record", || !e.records().is_empty());
    let rec = &e.records()[0];
    let (agent, gc) = (pid_of(rec, "pid"), pid_of(rec, "grandchild"));
    // Like a command of Claude Code's Bash tool: a session of its own.
    let own = pid_of(rec, "setsid");
    let sup = pid_of(&e.status("york"), "supervisor_pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the agent to die with its supervisor", || !alive(agent));
    wait_for("the lock to be free", || e.ps("york")["running"] == false);
    assert!(
        alive(own),
        "a process in a session of its own outlives the agent"
    );
    // The status shows what happened.
    assert_eq!(e.ps("york")["state"], "lost");
    let ps = text(&e.run("mt-ps", &[]).stdout);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("york") && l.contains("lost")),
        "{ps}"
    );
    // mt-stop ends what is left of its session and records the loss.
    let out = e.run("mt-stop", &["york"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the grandchild to die", || !alive(gc));
    wait_for("the process in its own session to die", || !alive(own));
    let st = e.status("york");
    assert_eq!(st["state"], "failed");
    assert_eq!(st["error"], "lost");
}

#[test]
fn supervisor_terminated_by_signal_stops_its_agent() {
    let e = Env::new();
    e.spawn_detached("york", "", "work");
    wait_for("the record", || !e.records().is_empty());
    let agent = pid_of(&e.records()[0], "pid");
    let sup = pid_of(&e.status("york"), "supervisor_pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(e.run("mt-wait", &["york"]).status.code(), Some(143));
    assert!(!alive(agent));
    let st = e.status("york");
    assert_eq!(st["stopped"], true);
    assert!(st["stopped_by"].as_str().unwrap().contains("SIGTERM"));
}

#[test]
fn orphans_of_the_agent_are_reaped() {
    let e = Env::new();
    e.spawn_detached("york", "orphan", "work");
    wait_for("the record", || !e.records().is_empty());
    let orphan = pid_of(&e.records()[0], "orphan");
    let sup = pid_of(&e.status("york"), "supervisor_pid");
    // Its parent exited at once, so it belongs to the supervisor (a child
    // subreaper) until it ends; then the supervisor must reap it.
    if let Some(p) = ppid(orphan) {
        assert_eq!(p, sup, "orphan adopted by the supervisor");
    }
    wait_for("the orphan to be reaped", || {
        !Path::new(&format!("/proc/{orphan}")).exists()
    });
    assert!(alive(sup), "the supervisor runs on");
    // The supervisor has no zombie children at all.
    let zombies: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|d| d.file_name().to_str()?.parse::<i64>().ok())
        .filter(|&p| ppid(p) == Some(sup) && !alive(p))
        .map(|p| p.to_string())
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
}

#[test]
fn two_spawns_of_one_name_exactly_one_runs() {
    let e = Env::new();
    for round in 0..4 {
        let name = format!("twin{round}");
        let children: Vec<_> = (0..3)
            .map(|_| {
                e.cmd("mt-spawn")
                    .args([&name, "--detach", "--prompt", "go"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let ok = outs.iter().filter(|o| o.status.code() == Some(0)).count();
        assert_eq!(ok, 1, "round {round}");
        for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
            assert_eq!(o.status.code(), Some(1));
            assert!(
                text(&o.stderr).contains("already running"),
                "{}",
                text(&o.stderr)
            );
        }
        let started = e
            .records()
            .iter()
            .filter(|r| r["env"]["MT_AGENT"] == name.as_str())
            .count();
        assert_eq!(started, 1, "round {round}");
    }
}

#[test]
fn idle_exit_closes_stdin() {
    let e = Env::new();
    let out = e.run(
        "mt-spawn",
        &["idle", "--idle-exit", "150ms", "--prompt", "go"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let st = e.status("idle");
    assert_eq!(st["stdin_closed"], true);
    assert_eq!(st["state"], "exited");
    assert_eq!(st["turns"], 1);
}

#[test]
fn wait_blocks_until_the_end_or_times_out() {
    let e = Env::new();
    e.spawn_detached("a", "", "go");
    e.spawn_detached("b", "exit:0", "go");
    let out = e.run("mt-wait", &["--timeout", "200ms", "a"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(text(&out.stderr).contains("still running"));
    assert_eq!(e.run("mt-wait", &["b"]).status.code(), Some(0));
    let waiter = e.cmd("mt-wait").args(["a", "b"]).spawn().unwrap();
    e.run("mt-stop", &["a"]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a was stopped: not all exited 0"
    );
    assert_eq!(e.run("mt-wait", &["nobody"]).status.code(), Some(1));
}

#[test]
fn log_is_a_readable_transcript() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .env("MT_FAKE_SCRIPT", fixture("simple_greeting.jsonl"))
        .args(["york", "--prompt", "say hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = text(&e.run("mt-log", &["york"]).stdout);
    assert!(log.contains(">> say hello\n"), "{log}");
    assert!(
        log.contains("── session cc0cdfdf-f2a7-4a3b-943a-87093ebb49fb · claude-opus-4-20250514")
    );
    assert!(log.contains("\nI'll help you with your Claude Code SDK PHP project."));
    assert!(log.contains("\n→ TodoWrite {\"todos\":"));
    assert!(log.contains("\n← Todos have been modified successfully."));
    assert!(
        log.contains("\n── success · 4 turns · 11/207 tokens · $0.1712 · 10.7s\n"),
        "{log}"
    );
    assert!(log.contains("── exited"));
    let raw = e.run("mt-log", &["--raw", "york"]).stdout;
    assert_eq!(raw, fs::read(e.agent("york").join("events.jsonl")).unwrap());
    // -f ends when the agent has ended.
    let out = e.run("mt-log", &["-f", "york"]);
    assert_eq!(text(&out.stdout), log);
}

#[test]
fn log_follows_a_running_agent_until_it_ends() {
    let e = Env::new();
    e.spawn_detached("york", "", "first");
    wait_for("the first turn", || e.status("york")["turns"] == 1);
    let follower = e
        .cmd("mt-log")
        .args(["-f", "york"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    e.run("mt-nudge", &["york", "while you follow"]);
    wait_for("the second turn", || e.status("york")["turns"] == 2);
    e.run("mt-stop", &["york"]);
    let out = follower.wait_with_output().unwrap();
    let log = text(&out.stdout);
    assert!(log.contains("ok: first\n"), "{log}");
    assert!(
        log.contains(">> while you follow\nok: while you follow\n"),
        "{log}"
    );
    assert!(log.contains("── stopped by mt-stop"), "{log}");
}

#[test]
fn open_tool_call_shows_as_working() {
    let e = Env::new();
    e.spawn_detached("busy", "tool-wait", "go");
    wait_for("the tool call", || {
        e.status("busy")["last_event_type"] == "assistant"
    });
    let st = e.ps("busy");
    assert_eq!(st["state"], "working");
    assert_eq!(st["pending"], 1);
    let log = text(&e.run("mt-log", &["busy"]).stdout);
    assert!(log.contains("→ Bash {\"command\":\"sleep 1000\"}"), "{log}");
}

#[test]
fn ps_lists_agents_with_full_json() {
    let e = Env::new();
    e.spawn_detached("york", "", "go");
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:2")
        .args(["park", "--prompt", "go", "--task", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    wait_for("york to be idle", || e.status("york")["state"] == "idle");
    let out = e.run("mt-ps", &[]);
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    assert!(lines[1].starts_with("park") && lines[1].contains("failed") && lines[1].ends_with('2'));
    assert!(lines[2].starts_with("york") && lines[2].contains("idle"));
    let park = e.ps("park");
    assert_eq!(park["task"], "7");
    assert_eq!(park["exit_code"], 2);
    assert_eq!(park["session_id"].as_str().unwrap().len(), 36);
    assert_eq!(park["cost_usd"], 0.01);
    assert_eq!(park["cwd"], e.repo.to_str().unwrap());
    let york = e.ps("york");
    assert_eq!(york["running"], true);
    assert!(york["pid"].as_i64().is_some());
    let out = e.run("mt-ps", &["ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no agent named ghost"));
}

#[test]
fn sandbox_without_bubblewrap_is_a_clear_error() {
    let e = Env::new();
    let out = e
        .cmd("mt-spawn")
        .env("PATH", e.home.as_os_str())
        .args(["sb", "--sandbox", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stderr).contains("bubblewrap (bwrap)"),
        "{}",
        text(&out.stderr)
    );
    assert!(e.records().is_empty());
}

#[test]
fn sandbox_keeps_writes_inside_the_allowed_places() {
    let usable = Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("skipping: bubblewrap (bwrap) is not installed or cannot run here");
        return;
    }
    let e = Env::new();
    // Outside /tmp, which the sandbox leaves writable.
    let Some(outside) = ["/var/tmp", env!("CARGO_TARGET_TMPDIR")]
        .iter()
        .filter(|d| !Path::new(d).starts_with("/tmp"))
        .find_map(|d| tempfile::tempdir_in(d).ok())
    else {
        eprintln!("skipping: no writable directory outside /tmp");
        return;
    };
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .env("OUTSIDE", outside.path())
        .env(
            "MT_FAKE_RUN",
            "echo in > inside.txt; (echo out > \"$OUTSIDE/x.txt\") 2>/dev/null || echo refused > refused.txt",
        )
        .args(["sb", "--sandbox", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        e.repo.join("inside.txt").exists(),
        "the working directory is writable"
    );
    assert!(
        e.repo.join("refused.txt").exists(),
        "the write outside was refused"
    );
    assert!(!outside.path().join("x.txt").exists());
    let argv = e.records()[0]["argv"].clone();
    assert!(argv.to_string().contains("stream-json"), "{argv}");
}

#[test]
fn relative_agent_program_is_taken_from_the_callers_directory() {
    let e = Env::new();
    std::os::unix::fs::symlink(FAKE, e.repo.join("agent")).unwrap();
    fs::create_dir_all(e.repo.join("elsewhere")).unwrap();
    let out = e
        .cmd("mt-spawn")
        .env("MT_AGENT_CMD", "./agent")
        .env("MT_FAKE_MODE", "exit:0")
        .args(["rel", "--cwd", "elsewhere", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        e.meta("rel")["agent_cmd"],
        e.repo.join("agent").to_str().unwrap()
    );
}

#[test]
fn callers_open_descriptors_are_not_inherited() {
    let e = Env::new();
    let marker = e.repo.join("held-by-caller");
    // fd 9 stays inheritable, as a shell's `exec 9>file; flock 9` leaves it.
    let script = format!(
        "exec 9>\"$MARKER\"; exec '{}' fds --detach --prompt go",
        bin("mt-spawn").display()
    );
    let spawn = e.cmd("mt-spawn");
    let mut sh = Command::new("sh");
    for (k, v) in spawn.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = sh
        .args(["-c", &script])
        .env("MARKER", &marker)
        .current_dir(&e.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("the record", || !e.records().is_empty());
    let agent = pid_of(&e.records()[0], "pid");
    let sup = pid_of(&e.status("fds"), "supervisor_pid");
    for pid in [agent, sup] {
        for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
            let target = fs::read_link(fd.path()).unwrap_or_default();
            assert_ne!(target, marker, "pid {pid} holds the caller's fd");
        }
    }
}

#[test]
fn worktree_option_runs_the_agent_in_its_own_worktree() {
    let e = Env::new();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(&e.repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "init"]);
    let out = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "exit:0")
        .args(["york", "--worktree", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let wt = e.repo.parent().unwrap().join("repo.worktrees").join("york");
    assert_eq!(
        e.records()[0]["cwd"].as_str().unwrap(),
        wt.to_str().unwrap()
    );
    assert_eq!(
        e.meta("york")["worktree"].as_str().unwrap(),
        wt.to_str().unwrap()
    );
    let list = git(&["worktree", "list", "--porcelain"]);
    assert!(
        list.contains(&format!("worktree {}", wt.display())),
        "{list}"
    );
    assert!(list.contains("branch refs/heads/mt/york"), "{list}");
}

#[test]
fn refusals() {
    let e = Env::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["../x", "--prompt", "go"], 65, "invalid agent name"),
        (&["york", "--prompt", "  "], 65, "prompt is empty"),
        (
            &["york", "--resume", "--prompt", "go"],
            65,
            "no saved session",
        ),
        (
            &["york", "--worktree", "--prompt", "go"],
            69,
            "not inside a git repository",
        ),
        (
            &["york", "--cwd", "/nonexistent", "--prompt", "go"],
            65,
            "/nonexistent",
        ),
        (
            &["york", "--idle-exit", "soon", "--prompt", "go"],
            2,
            "invalid duration",
        ),
    ];
    for (args, code, msg) in cases {
        let out = e.run("mt-spawn", args);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(msg),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(e.records().is_empty());
    let out = e.run("mt-nudge", &["ghost", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let out = e.run("mt-stop", &["ghost"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn fake_agent_hang_first_stalls_only_a_fresh_start() {
    let user = "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hi\"}}\n";
    let run = |extra: &[&str]| {
        let mut child = Command::new(FAKE)
            .args(["-p", "--verbose"])
            .args(extra)
            .env("MT_AGENT", "york")
            .env("MT_FAKE_MODE", "hang-first:york")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, user.as_bytes()).unwrap();
        drop(stdin);
        // A stalled agent never ends on its own: end it after a while.
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        text(&out.stdout)
    };
    let fresh = run(&["--session-id", "11111111-1111-4111-8111-111111111111"]);
    assert!(fresh.contains("\"subtype\":\"init\""), "{fresh}");
    assert!(
        !fresh.contains("\"type\":\"result\""),
        "a fresh start stalls: {fresh}"
    );
    let resumed = run(&["--resume", "11111111-1111-4111-8111-111111111111"]);
    assert!(
        resumed.contains("\"type\":\"result\""),
        "a resumed one answers: {resumed}"
    );
}

/// An agent may start agents of its own (their supervisors inherit its run
/// marker); they outlive it, and only its own processes end with it.
#[test]
fn agents_an_agent_started_outlive_it() {
    let e = Env::new();
    let spawn = bin("mt-spawn");
    let out = e
        .cmd("mt-spawn")
        .env(
            "MT_FAKE_RUN",
            format!("{} park --detach --prompt hi", spawn.display()),
        )
        .args(["york", "--detach", "--prompt", "start park"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for("park to run", || {
        e.agent("park").join("status.json").is_file()
            && e.status("park")["supervisor_pid"].is_i64()
            && e.status("york")["supervisor_pid"].is_i64()
    });
    let park_sup = pid_of(&e.status("park"), "supervisor_pid");
    let york_sup = pid_of(&e.status("york"), "supervisor_pid");
    // york is killed the hard way; stopping the lost agent ends its leftovers.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(york_sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("york to be lost", || e.ps("york")["running"] == false);
    let out = e.run("mt-stop", &["york"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        alive(park_sup),
        "park's supervisor was taken for york's leftover"
    );
    assert_eq!(e.ps("park")["running"], true);
    let out = e.run("mt-stop", &["park"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
