//! mt-reap with the fake agent: lost, stuck and idle agents.

use crate::support::*;
use std::time::Duration;

/// Kill an agent's supervisor with SIGKILL (its agent then ends on the
/// closed stdin) and wait until nothing holds its liveness lock.
fn kill_supervisor(e: &Env, name: &str) {
    let pid = e.status(name)["supervisor_pid"].as_i64().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_for("the lock to be free", || !e.running(name));
}

fn reap_records(e: &Env) -> Vec<serde_json::Value> {
    e.channel("general")
        .into_iter()
        .filter(|r| r["from"] == "mt-reap")
        .collect()
}

#[test]
fn lost_agent_is_reported_once() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    kill_supervisor(&e, "york");
    let out = e.ok("mt-reap", &[]);
    assert!(
        out.starts_with("york: lost: its supervisor is gone") && out.ends_with("; reported\n"),
        "{out}"
    );
    let st = e.status("york");
    assert_eq!(
        (st["state"].as_str(), st["error"].as_str()),
        (Some("failed"), Some("lost"))
    );
    let recs = reap_records(&e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["type"], "system");
    assert_eq!(recs[0]["meta"]["reap"], "lost");
    assert!(
        recs[0]["content"]
            .as_str()
            .unwrap()
            .contains("york exited unexpectedly")
    );
    assert_eq!(e.ok("mt-reap", &[]), "");
    assert_eq!(reap_records(&e).len(), 1);
    assert!(!e.running("york"));
}

#[test]
fn lost_agent_is_resumed_with_restart() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    kill_supervisor(&e, "york");
    let out = e.ok("mt-reap", &["--restart"]);
    assert!(out.ends_with("; reported; resumed\n"), "{out}");
    wait_for("the note on york's stdin", || {
        e.inputs("york")
            .iter()
            .any(|t| t.contains("ended unexpectedly"))
    });
    assert!(e.running("york"));
    assert_eq!(e.status("york")["runs"], 2);
}

#[test]
fn open_tool_call_is_not_stuck_but_silence_is() {
    let e = Env::new();
    e.spawn("busy", "tool-wait", &[]);
    e.spawn("hung", "hang", &[]);
    wait_for("the open tool call", || {
        e.status("busy")["open_tool_calls"] == serde_json::json!(["toolu_fake_wait"])
    });
    wait_for("the hung agent's init", || e.status("hung")["events"] == 1);
    assert_eq!(e.status("hung")["state"], "working");
    std::thread::sleep(Duration::from_millis(400));
    // Both have been silent for longer than the threshold by now.
    let out = e.ok("mt-reap", &["--stuck-after", "300ms"]);
    assert_eq!(lines(&out).len(), 1, "{out}");
    assert!(
        out.starts_with("hung: stuck: no event for ")
            && out.ends_with(" while working, no tool call open; reported\n"),
        "{out}"
    );
    assert_eq!(e.status("busy")["state"], "working");
    let recs = reap_records(&e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["meta"]["agent"], "hung");
    assert!(
        recs[0]["content"]
            .as_str()
            .unwrap()
            .contains("hung looks stuck")
    );
    // The same silence is reported once; nothing is stopped without --restart.
    assert_eq!(e.ok("mt-reap", &["--stuck-after", "300ms"]), "");
    assert_eq!(reap_records(&e).len(), 1);
    assert!(e.running("hung") && e.running("busy"));
}

#[test]
fn restart_needs_a_second_look_then_stops_and_resumes() {
    let e = Env::new();
    e.spawn("hung", "hang", &[]);
    wait_for("the hung agent's init", || e.status("hung")["events"] == 1);
    std::thread::sleep(Duration::from_millis(400));
    let args = ["--stuck-after", "300ms", "--restart", "--grace", "1s"];
    let first = e.ok("mt-reap", &args);
    assert!(first.ends_with("; reported\n"), "{first}");
    assert!(e.running("hung"));
    let second = e.ok("mt-reap", &args);
    assert!(second.ends_with("; restarted\n"), "{second}");
    // Resumed without MT_FAKE_MODE: it answers the note and goes idle.
    wait_for("the note on hung's stdin", || {
        e.inputs("hung")
            .iter()
            .any(|t| t.contains("mt-reap: you were silent"))
    });
    e.wait_idle("hung");
    assert!(e.running("hung"));
    assert_eq!(e.status("hung")["runs"], 2);
    assert_eq!(e.ok("mt-reap", &args), "");
}

#[test]
fn idle_stop_stops_only_idle_agents_without_open_tasks() {
    let e = Env::new();
    let task = |args: &[&str]| {
        let mut a = vec!["--list", "team"];
        a.extend_from_slice(args);
        e.ok("mt-task", &a)
    };
    task(&["create", "open one"]);
    task(&["create", "done one"]);
    task(&["create", "owned one", "--owner", "holder"]);
    task(&["done", "2"]);
    let with_task = |id: &'static str| vec!["--task", id, "--task-list", "team"];
    e.spawn("worker", "", &with_task("1"));
    e.spawn("finished", "", &with_task("2"));
    e.spawn("holder", "", &["--task-list", "team"]);
    e.spawn("free", "", &[]);
    e.spawn("busy", "tool-wait", &[]);
    for n in ["worker", "finished", "holder", "free"] {
        e.wait_idle(n);
    }
    wait_for("the open tool call", || {
        e.status("busy")["open_tool_calls"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    std::thread::sleep(Duration::from_millis(400));
    let out = e.ok("mt-reap", &["--idle-stop", "300ms", "--grace", "2s"]);
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got.len(), 2, "{out}");
    assert!(
        got[0].starts_with("finished: idle for ") && got[0].ends_with("with no open task; stopped")
    );
    assert!(
        got[1].starts_with("free: idle for ") && got[1].ends_with("with no open task; stopped")
    );
    for (n, up) in [
        ("worker", true),
        ("holder", true),
        ("busy", true),
        ("finished", false),
        ("free", false),
    ] {
        assert_eq!(e.running(n), up, "{n}");
    }
    assert_eq!(e.status("free")["stopped_by"], "mt-stop by mt-reap");
    // Soft: the idle session ended on its own, not by a signal.
    assert_eq!(e.status("free")["exit_code"], 0);
    assert_eq!(e.status("free")["signal"], serde_json::Value::Null);
}

#[test]
fn dry_run_changes_nothing() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    kill_supervisor(&e, "york");
    let out = e.ok("mt-reap", &["--dry-run", "--restart"]);
    assert!(out.ends_with("; would report and resume\n"), "{out}");
    assert_eq!(e.status("york")["state"], "idle");
    assert!(reap_records(&e).is_empty());
}

/// `.` and `..` are refused as agent names by the tools that take one,
/// and nothing appears in the state directory for them.
#[test]
fn dot_and_dot_dot_are_refused_as_agent_names() {
    let e = Env::with_repo();
    for bad in [".", ".."] {
        let runs: Vec<(&str, Vec<&str>)> = vec![
            ("mt-spawn", vec![bad, "--detach", "--prompt", "go"]),
            ("mt-post", vec!["--from", bad, "hi"]),
            ("mt-read", vec!["--as", bad]),
            ("mt-stop", vec![bad]),
        ];
        for (tool, args) in runs {
            let o = e.run(tool, &args);
            assert_eq!(
                o.status.code(),
                Some(65),
                "{tool} {args:?}: {}",
                text(&o.stderr)
            );
        }
    }
    assert!(e.starts().is_empty(), "no agent was started");
    let left: Vec<_> = walk(&e.state).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "{left:?}");
}
