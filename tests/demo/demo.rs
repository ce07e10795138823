//! The main job end to end: `demo/mt-demo` with the fake agent, and what the
//! team session leaves behind.

use crate::support::{bin_dir, repo};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn records(repo: &Path) -> Vec<Value> {
    let text = fs::read_dir(repo.join(".git/mt/channels/general"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| fs::read_to_string(p).unwrap())
        .collect::<String>();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn task(claude: &Path, id: u32) -> Value {
    let p = claude.join(format!("tasks/demo/{id}.json"));
    serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
}

#[test]
fn the_demo_runs_a_whole_team_session() {
    let tmp = tempfile::tempdir().unwrap();
    let top: PathBuf = fs::canonicalize(tmp.path()).unwrap();
    let bin = bin_dir();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(repo().join("demo/mt-demo"))
        .env("PATH", path)
        .env("MT_DEMO_DIR", &top)
        .env("MT_FSYNC", "0")
        .env_remove("MT_DEMO_AGENT")
        .env_remove("MT_DIR")
        .env_remove("MT_AGENT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("the channel, as the team saw it"),
        "{stdout}"
    );

    let repo = top.join("repo");
    let claude = top.join("claude");
    let recs = records(&repo);
    let said = |from: &str, needle: &str| {
        recs.iter()
            .any(|r| r["from"] == from && r["content"].as_str().unwrap_or("").contains(needle))
    };

    // Who took which task: the pool hands out names in order, and the
    // blocked task went to the third coworker once its blocker was done.
    let owners: Vec<String> = (1..=3)
        .map(|i| {
            let t = task(&claude, i);
            assert_eq!(t["status"], "completed", "task {i}: {t}");
            t["owner"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(owners, ["ash", "cedar", "birch"]);
    for (i, who) in owners.iter().enumerate() {
        assert!(
            said(who, &format!("finished task {}", i + 1)),
            "{who} finished"
        );
    }

    // The mention was routed: ash got birch's question and answered it.
    assert!(said("birch", "@ash"));
    let ash_events = fs::read_to_string(repo.join(".git/mt/agents/ash/events.jsonl")).unwrap();
    assert!(
        ash_events.contains("birch: @ash"),
        "ash received the mention"
    );
    assert!(said("ash", "birch: yes"));
    assert!(
        !recs
            .iter()
            .any(|r| r["from"] == "mt-route" && r["type"] == "system"),
        "nothing was left undelivered"
    );

    // The silent coworker was reported stuck and resumed.
    assert!(
        recs.iter()
            .any(|r| r["content"].as_str().unwrap_or("").contains("cedar")
                && r["content"].as_str().unwrap_or("").contains("stuck")),
        "cedar reported stuck"
    );
    let cedar: Value =
        serde_json::from_slice(&fs::read(repo.join(".git/mt/agents/cedar/status.json")).unwrap())
            .unwrap();
    assert!(
        cedar["runs"].as_u64().unwrap() >= 2,
        "cedar was resumed: {cedar}"
    );

    // Cleaned up: the work is merged into main and no worktree is left.
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let wts = git(&["worktree", "list", "--porcelain"]);
    assert_eq!(wts.matches("worktree ").count(), 1, "{wts}");
    for i in 1..=3 {
        assert!(
            repo.join(format!("task-{i}.txt")).exists(),
            "task {i} merged"
        );
    }
    assert!(git(&["branch", "--list", "mt/*"]).trim().is_empty());

    // The reminder fired exactly once, after all the work.
    let reminders: Vec<&Value> = recs.iter().filter(|r| r["from"] == "mt-remind").collect();
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    let fired = reminders[0]["seq"].as_u64().unwrap();
    for i in 1..=3 {
        let done = recs
            .iter()
            .find(|r| {
                r["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("finished task {i}"))
            })
            .unwrap();
        assert!(done["seq"].as_u64().unwrap() < fired);
    }

    // No coworker is left running.
    let ps = Command::new(bin.join("mt-ps"))
        .arg("--json")
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("\"running\":true"));
}
