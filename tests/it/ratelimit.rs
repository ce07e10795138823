//! Agents stopped by a usage limit: mt-reap resumes each exactly
//! once after the limit's reset time, never before, however often and
//! however many reapers run.

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The reset time the agent reported, in seconds since the epoch.
fn resets_at(e: &Env, name: &str) -> i64 {
    let st = e.status(name);
    let rl = &st["rate_limit"];
    assert_eq!(rl["status"], "rejected", "{st}");
    let t = rl["resets_at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

/// Start `name` with the fake agent reporting a rejected limit that resets
/// in `secs` seconds; `modes` are added to rate-limit.
fn spawn_limited(e: &Env, name: &str, modes: &str, secs: u64, receipts: &std::path::Path) {
    let o = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", format!("rate-limit{modes}"))
        .env("MT_FAKE_RESETS_IN", secs.to_string())
        .env("MT_FAKE_RECEIPTS", receipts)
        .args([name, "--detach", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    wait_for("the rejected rate limit", || {
        e.agent(name).join("status.json").is_file()
            && e.status(name)["rate_limit"]["status"] == "rejected"
    });
}

/// mt-reap as the default rule runs it (no --restart), acting right at
/// the reset; the receipts file is passed on to the agents it resumes.
fn reap(e: &Env, receipts: &std::path::Path, extra: &[&str]) -> String {
    let o = e
        .cmd("mt-reap")
        .env("MT_FAKE_RECEIPTS", receipts)
        .args(["--after-reset", "0s"])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
}

fn reap_records(e: &Env, event: &str) -> Vec<Value> {
    e.channel("general")
        .into_iter()
        .filter(|r| r["from"] == "mt-reap" && r["meta"]["reap"] == event)
        .collect()
}

/// Messages the agent received that carry the reaper's note.
fn notes(receipts: &std::path::Path) -> Vec<Value> {
    jsonl(receipts)
        .into_iter()
        .filter(|r| r["text"].as_str().unwrap_or("").contains("usage limit"))
        .collect()
}

#[test]
fn stopped_agent_is_resumed_exactly_once_after_the_reset_never_before() {
    let e = Env::new();
    let receipts = e.root.join("receipts.jsonl");
    // exit:0 ends the agent after its limited turn.
    spawn_limited(&e, "york", ",exit:0", 3, &receipts);
    wait_for("york to end", || !e.running("york"));
    assert_eq!(e.status("york")["state"], "exited");
    let reset = resets_at(&e, "york");

    // Four reapers at once, each run again and again, from before the
    // reset until two seconds after it.
    let runs: Vec<(f64, f64, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while now_secs() < reset as f64 + 2.0 {
                        let start = now_secs();
                        let said = reap(&e, &receipts, &[]);
                        out.push((start, now_secs(), said));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let early: Vec<_> = runs.iter().filter(|r| r.1 < reset as f64).collect();
    assert!(!early.is_empty(), "no run before the reset");
    for (_, _, said) in &early {
        assert_eq!(said, "", "a run before the reset acted");
    }
    let acted: Vec<&String> = runs
        .iter()
        .map(|r| &r.2)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(acted.len(), 1, "{acted:?}");
    assert!(
        acted[0].starts_with("york: usage limit (five_hour) reset at ")
            && acted[0].ends_with("; resumed\n"),
        "{}",
        acted[0]
    );

    wait_for("the note on york's stdin", || !notes(&receipts).is_empty());
    e.wait_idle("york");
    let got = notes(&receipts);
    assert_eq!(got.len(), 1, "{got:?}");
    let at_ns: u128 = got[0]["at_ns"].as_str().unwrap().parse().unwrap();
    assert!(
        at_ns >= reset as u128 * 1_000_000_000,
        "resumed before the reset"
    );
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("Carry on where you left off")
    );
    assert_eq!(e.status("york")["runs"], 2);
    let recs = reap_records(&e, "limit-resume");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["type"], "system");
    assert_eq!(recs[0]["meta"]["agent"], "york");
    assert!(
        recs[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("york resumed after the usage limit reset (five_hour) at "),
        "{}",
        recs[0]["content"]
    );
    // The supervisor's record of the limit came first.
    let all = e.channel("general");
    let limit = all
        .iter()
        .position(|r| r["meta"]["event"] == "rate_limit")
        .unwrap();
    let resumed = all
        .iter()
        .position(|r| r["meta"]["reap"] == "limit-resume")
        .unwrap();
    assert!(limit < resumed);
    assert!(
        e.agent("york")
            .join(format!("limit-resumed.{reset}"))
            .is_file()
    );

    // Once resumed, nothing more to do for that reset.
    e.ok("mt-stop", &["york"]);
    assert_eq!(reap(&e, &receipts, &[]), "");
    assert_eq!(notes(&receipts).len(), 1);
}

#[test]
fn the_same_reset_is_claimed_once_even_after_the_status_shows_it_again() {
    let e = Env::new();
    let receipts = e.root.join("receipts.jsonl");
    spawn_limited(&e, "york", ",exit:0", 1, &receipts);
    wait_for("york to end", || !e.running("york"));
    let reset = resets_at(&e, "york");
    while now_secs() < reset as f64 + 0.1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reap(&e, &receipts, &[]).ends_with("; resumed\n"));
    e.wait_idle("york");
    e.ok("mt-stop", &["york"]);
    // The agent reports the same limit again (the service still refused
    // it): not resumed a second time for that reset.
    let path = e.agent("york").join("status.json");
    let mut st = e.status("york");
    st["rate_limit"] = serde_json::json!({"status": "rejected",
        "resets_at": chrono::DateTime::from_timestamp(reset, 0).unwrap().to_rfc3339(),
        "kind": "five_hour", "at": ""});
    st["stopped"] = false.into();
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(reap(&e, &receipts, &[]), "");
    assert_eq!(notes(&receipts).len(), 1);
    assert_eq!(reap_records(&e, "limit-resume").len(), 1);
}

#[test]
fn idle_agent_is_nudged_and_an_agent_stopped_on_request_is_left_alone() {
    let e = Env::new();
    let receipts = e.root.join("receipts.jsonl");
    // Without exit: the agent stays, idle, as Claude Code does.
    spawn_limited(&e, "idle", "", 2, &receipts);
    spawn_limited(&e, "held", ",exit:0", 2, &receipts);
    e.wait_idle("idle");
    wait_for("held to end", || !e.running("held"));
    // held was stopped by a person after it met the limit.
    let path = e.agent("held").join("status.json");
    let mut st = e.status("held");
    st["stopped"] = true.into();
    st["stopped_by"] = "mt-stop by lead".into();
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    let reset = resets_at(&e, "idle").max(resets_at(&e, "held"));
    while now_secs() < reset as f64 + 0.1 {
        std::thread::sleep(Duration::from_millis(50));
    }

    // Not before --after-reset (1m by default) has passed, and never with
    // --no-limit-resume.
    assert_eq!(e.ok("mt-reap", &[]), "");
    assert_eq!(e.ok("mt-reap", &["--restart"]), "");
    assert_eq!(
        e.ok("mt-reap", &["--no-limit-resume", "--after-reset", "0s"]),
        ""
    );
    let dry = reap(&e, &receipts, &["--dry-run"]);
    assert!(
        dry.starts_with("idle: usage limit") && dry.ends_with("; would nudge\n"),
        "{dry}"
    );
    assert!(notes(&receipts).is_empty());

    let out = reap(&e, &receipts, &[]);
    assert!(
        out.starts_with("idle: usage limit") && out.ends_with("; nudged\n"),
        "{out}"
    );
    wait_for("the note", || notes(&receipts).len() == 1);
    for _ in 0..5 {
        assert_eq!(reap(&e, &receipts, &[]), "");
    }
    assert_eq!(notes(&receipts).len(), 1);
    assert!(!e.running("held"));
    assert_eq!(e.status("held")["runs"], 1);
    let recs = reap_records(&e, "limit-resume");
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("idle nudged after the usage limit reset")
    );
}

#[test]
fn lost_agent_waits_for_its_limit_to_reset() {
    let e = Env::new();
    let receipts = e.root.join("receipts.jsonl");
    spawn_limited(&e, "york", "", 3, &receipts);
    e.wait_idle("york");
    let reset = resets_at(&e, "york");
    let pid = e.status("york")["supervisor_pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the lock to be free", || !e.running("york"));
    if now_secs() < reset as f64 {
        let out = reap(&e, &receipts, &[]);
        assert!(
            out.contains("; reported; resumes after its usage limit resets at "),
            "{out}"
        );
        assert!(!e.running("york"));
        assert_eq!(e.status("york")["error"], "lost");
    }
    while now_secs() < reset as f64 + 0.1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reap(&e, &receipts, &[]);
    assert!(out.ends_with("; resumed\n"), "{out}");
    wait_for("the note", || notes(&receipts).len() == 1);
}
