//! mt-remind, driven as a real process over temporary directories.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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
        let e = crate::support::Env::new();
        fs::create_dir(e.claude()).unwrap();
        Env(e)
    }

    fn mt(&self) -> PathBuf {
        self.state.clone()
    }

    fn cmd(&self) -> Command {
        let mut c = self.clean("mt-remind");
        c.env("TZ", "UTC");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and expect success; return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn add(&self, args: &[&str]) -> String {
        let mut a = vec!["add"];
        a.extend_from_slice(args);
        self.ok(&a).trim().to_string()
    }

    fn records(&self, channel: &str) -> Vec<serde_json::Value> {
        let dir = self.mt().join("channels").join(channel);
        let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        segs.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
        segs.sort();
        segs.iter()
            .flat_map(|p| {
                fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn lead_inbox(&self) -> PathBuf {
        self.mt().join("agents/lead/inbox")
    }

    fn nudges(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.lead_inbox().join("new"))
            .map(|rd| {
                rd.map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn task(&self, list: &str, id: u32, status: &str) {
        let dir = self.claude().join("tasks").join(list);
        fs::create_dir_all(&dir).unwrap();
        let t = serde_json::json!({"id": id.to_string(), "subject": "s", "description": "",
            "status": status, "blocks": [], "blockedBy": []});
        fs::write(
            dir.join(format!("{id}.json")),
            serde_json::to_string_pretty(&t).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn a_due_reminder_fires_once_with_a_record_and_a_nudge() {
    let e = Env::new();
    fs::create_dir_all(e.lead_inbox().join("new")).unwrap();
    let id = e.add(&["--at", "2000-01-01T00:00:00Z", "-c", "ops", "ship", "it"]);
    assert_eq!(id, "1");
    assert_eq!(e.ok(&["check"]), "fired 1: ship it\n");
    assert_eq!(e.ok(&["check"]), "");
    let recs = e.records("ops");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["type"], "system");
    assert_eq!(recs[0]["from"], "mt-remind");
    assert_eq!(recs[0]["meta"]["reminder"], "1");
    assert!(recs[0]["content"].as_str().unwrap().contains("reminder 1"));
    assert!(recs[0]["content"].as_str().unwrap().contains("ship it"));
    assert_eq!(e.nudges(), ["Reminder 1: ship it"]);
    assert!(
        fs::read_dir(e.lead_inbox().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    let list = e.ok(&["list"]);
    assert!(list.is_empty(), "{list}");
    let all = e.ok(&["list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(all.trim()).unwrap();
    assert_eq!(v["stage"], "fired");
    assert!(v["fired_at"].is_string());
}

#[test]
fn without_an_inbox_there_is_no_nudge_and_no_error() {
    let e = Env::new();
    e.add(&["--at", "2000-01-01T00:00:00Z", "x"]);
    e.ok(&["check"]);
    assert_eq!(e.records("general").len(), 1);
    assert!(!e.lead_inbox().exists());
}

#[test]
fn after_counts_from_the_time_it_was_added() {
    let e = Env::new();
    let t0 = "2026-03-02T10:00:00Z";
    let out = e
        .cmd()
        .args(["add", "--after", "10m", "tea"])
        .env("MT_REMIND_NOW", t0)
        .output()
        .unwrap();
    assert!(out.status.success());
    let check = |now: &str| {
        let out = e
            .cmd()
            .arg("check")
            .env("MT_REMIND_NOW", now)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(check("2026-03-02T10:09:59Z"), "");
    assert_eq!(check("2026-03-02T10:10:00Z"), "fired 1: tea\n");
    assert_eq!(check("2026-03-02T10:20:00Z"), "");
}

#[test]
fn at_takes_rfc3339_and_refuses_nonsense() {
    let e = Env::new();
    e.add(&["--at", "2026-03-02T12:00:00+02:00", "noon"]);
    let v: serde_json::Value = serde_json::from_str(e.ok(&["list", "--json"]).trim()).unwrap();
    assert_eq!(v["when"]["at"], "2026-03-02T10:00:00.000Z");
    let check = |now: &str| {
        let out = e
            .cmd()
            .arg("check")
            .env("MT_REMIND_NOW", now)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(check("2026-03-02T09:59:59Z"), "");
    assert_eq!(check("2026-03-02T10:00:00Z"), "fired 1: noon\n");
    assert_eq!(
        e.run(&["add", "--at", "tomorrowish", "x"]).status.code(),
        Some(65)
    );
    assert_eq!(
        e.run(&["add", "--after", "soon", "x"]).status.code(),
        Some(65)
    );
    assert_eq!(e.run(&["add", "x"]).status.code(), Some(2));
    assert_eq!(
        e.run(&["add", "--at", "10:00", "--after", "1m", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn all_tasks_done_waits_for_every_task() {
    let e = Env::new();
    let out = e
        .cmd()
        .args(["add", "--when", "all-tasks-done", "merge", "now"])
        .env("CLAUDE_CODE_TASK_LIST_ID", "team")
        .output()
        .unwrap();
    assert!(out.status.success());
    // No tasks yet: not done.
    assert_eq!(e.ok(&["check"]), "");
    e.task("team", 1, "completed");
    e.task("team", 2, "in_progress");
    assert_eq!(e.ok(&["check"]), "");
    e.task("team", 2, "completed");
    // Another list's tasks do not matter.
    e.task("other", 1, "pending");
    assert_eq!(e.ok(&["check"]), "fired 1: merge now\n");
    assert_eq!(e.ok(&["check"]), "");
}

#[test]
fn all_tasks_done_defaults_to_the_list_of_the_state_directory() {
    let e = Env::new();
    e.add(&["--when", "all-tasks-done", "x"]);
    let tmp = e.root.file_name().unwrap().to_string_lossy();
    let list = format!("mt-{}", tmp.trim_start_matches('.'));
    let all = e.ok(&["list", "--json"]);
    assert!(all.contains(&format!("\"list\":\"{list}\"")), "{all}");
    e.task(&list, 1, "completed");
    assert_eq!(e.ok(&["check"]), "fired 1: x\n");
}

#[test]
fn cancel_wins_or_loses_against_firing_never_both() {
    let e = Env::new();
    let a = e.add(&["--at", "2000-01-01T00:00:00Z", "a"]);
    let b = e.add(&["--after", "1h", "b"]);
    assert_eq!(e.ok(&["cancel", &a]), "");
    assert_eq!(e.ok(&["check"]), "");
    assert!(e.records("general").is_empty());
    let again = e.run(&["cancel", &a]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already cancelled"));

    let c = e.add(&["--at", "2000-01-01T00:00:00Z", "c"]);
    e.ok(&["check"]);
    let late = e.run(&["cancel", &c]);
    assert_eq!(late.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&late.stderr).contains("already fired"));

    assert_eq!(e.run(&["cancel", "99"]).status.code(), Some(65));
    assert_eq!(e.run(&["cancel", "../1"]).status.code(), Some(65));
    let list = e.ok(&["list"]);
    assert!(list.contains(&format!("{b}   pending")), "{list}");
    let all = e.ok(&["list", "--all"]);
    assert!(all.contains("cancelled") && all.contains("fired"), "{all}");
}

/// `mt-remind cancel` racing `mt-remind check`, as real processes, over
/// and over: each due reminder is either cancelled (cancel exits 0, no
/// record is posted, it ends in cancelled/) or fired (cancel exits 1
/// saying so, one record, it ends in fired/), never both and never
/// neither. (The test above runs them one after the other, which cannot
/// catch a checker that fires without first claiming the reminder.)
#[test]
fn cancel_racing_check_either_cancels_or_fires_never_both() {
    let e = Env::new();
    let (rounds, per) = (40, 4);
    let mut cancelled = 0;
    for round in 0..rounds {
        let ids: Vec<String> = (0..per)
            .map(|i| e.add(&["--at", "2000-01-01T00:00:00Z", &format!("race {round}.{i}")]))
            .collect();
        let check = || e.cmd().arg("check").stdout(Stdio::null()).spawn().unwrap();
        let cancel = |id: &String| {
            e.cmd()
                .args(["cancel", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        // Either one first, so that each side sometimes has the head start.
        let (checker, cancels) = if round % 2 == 0 {
            let c = check();
            (c, ids.iter().map(cancel).collect::<Vec<_>>())
        } else {
            let cs = ids.iter().map(cancel).collect::<Vec<_>>();
            (check(), cs)
        };
        let outcomes: Vec<_> = cancels
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        assert!(checker.wait_with_output().unwrap().status.success());
        let records = e.records("general");
        for (id, out) in ids.iter().zip(&outcomes) {
            let posted = records
                .iter()
                .filter(|r| r["meta"]["reminder"].as_str() == Some(id.as_str()))
                .count();
            let at = |stage: &str| {
                e.mt()
                    .join("reminders")
                    .join(stage)
                    .join(format!("{id}.json"))
            };
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    cancelled += 1;
                    assert_eq!(posted, 0, "reminder {id} was cancelled and fired");
                    assert!(at("cancelled").is_file() && !at("fired").exists(), "{id}");
                }
                Some(1) => {
                    assert!(err.contains("already fired"), "{id}: {err}");
                    assert_eq!(posted, 1, "reminder {id} fired {posted} times");
                    assert!(at("fired").is_file() && !at("cancelled").exists(), "{id}");
                }
                other => panic!("cancel {id}: {other:?}: {err}"),
            }
            assert!(!at("pending").exists(), "{id} still pending");
        }
    }
    eprintln!("{cancelled} of {} cancels won", rounds * per);
}

#[test]
fn concurrent_checks_fire_each_reminder_exactly_once() {
    let e = Env::new();
    fs::create_dir_all(e.lead_inbox().join("new")).unwrap();
    let mut expected = HashSet::new();
    for round in 0..3 {
        for i in 0..10 {
            let id = e.add(&["--at", "2000-01-01T00:00:00Z", &format!("r{round}-{i}")]);
            expected.insert(id);
        }
        let children: Vec<_> = (0..8)
            .map(|_| e.cmd().arg("check").stdout(Stdio::piped()).spawn().unwrap())
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
        }
    }
    let recs = e.records("general");
    let ids: Vec<String> = recs
        .iter()
        .map(|r| r["meta"]["reminder"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), 30, "records: {ids:?}");
    assert_eq!(unique, expected);
    assert_eq!(e.nudges().len(), 30);
    assert_eq!(
        fs::read_dir(e.mt().join("reminders/fired"))
            .unwrap()
            .count(),
        30
    );
    assert_eq!(
        fs::read_dir(e.mt().join("reminders/pending"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(e.mt().join("reminders/firing"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_checks_print_each_firing_once() {
    let e = Env::new();
    for i in 0..12 {
        e.add(&["--at", "2000-01-01T00:00:00Z", &format!("m{i}")]);
    }
    let children: Vec<_> = (0..8)
        .map(|_| e.cmd().arg("check").stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    let mut lines = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        lines.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    lines.sort();
    let before = lines.len();
    lines.dedup();
    assert_eq!(before, 12);
    assert_eq!(lines.len(), 12);
}

#[test]
fn a_claim_left_by_a_crashed_check_is_delivered_once() {
    let e = Env::new();
    fs::create_dir_all(e.lead_inbox().join("new")).unwrap();
    let a = e.add(&["--at", "2000-01-01T00:00:00Z", "crashed before posting"]);
    let b = e.add(&["--at", "2000-01-01T00:00:00Z", "crashed after posting"]);
    let r = e.mt().join("reminders");
    // A checker claimed both and died: files in firing/, their locks free.
    for id in [&a, &b] {
        fs::rename(
            r.join(format!("pending/{id}.json")),
            r.join(format!("firing/{id}.json")),
        )
        .unwrap();
    }
    // It had already posted b's record.
    let post = Command::new(crate::support::bin("mt-post"))
        .env("MT_DIR", e.mt())
        .args(["--from", "mt-remind", "--type", "system"])
        .args([
            "--meta",
            &format!(r#"{{"reminder":"{b}"}}"#),
            "reminder (first try)",
        ])
        .output()
        .unwrap();
    assert!(post.status.success());
    let out = e.ok(&["check"]);
    assert!(
        out.contains(&format!("fired {a}:")) && out.contains(&format!("fired {b}:")),
        "{out}"
    );
    let recs = e.records("general");
    let count = |id: &str| recs.iter().filter(|r| r["meta"]["reminder"] == id).count();
    assert_eq!(count(&a), 1);
    assert_eq!(count(&b), 1, "not posted twice");
    assert_eq!(e.ok(&["check"]), "");
    assert_eq!(fs::read_dir(r.join("firing")).unwrap().count(), 0);
}

#[test]
fn check_without_reminders_is_quiet_and_creates_nothing() {
    let e = Env::new();
    assert_eq!(e.ok(&["check"]), "");
    assert!(!e.mt().join("reminders").exists());
    assert_eq!(e.ok(&["list"]), "");
}
