//! mt-sling and mt-dispatch with the fake agent, in a real repository.

use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

fn worktree(e: &Env, name: &str) -> std::path::PathBuf {
    e.root.join("repo.worktrees").join(name)
}

#[test]
fn sling_starts_an_agent_on_the_task_in_its_worktree() {
    let e = Env::with_repo();
    let out = e.run("mt-sling", &["Write", "the parser", "--body", "In Rust."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "york\n");
    let list = e.default_list();

    let t = e.task(&list, 1);
    assert_eq!(
        (t["owner"].as_str(), t["status"].as_str()),
        (Some("york"), Some("in_progress"))
    );
    assert_eq!(t["subject"], "Write the parser");

    let wt = worktree(&e, "york");
    assert!(wt.join("README").is_file());
    assert_eq!(e.git(&wt, &["branch", "--show-current"]).trim(), "mt/york");
    let meta = e.meta("york");
    assert_eq!(meta["task"], "1");
    assert_eq!(meta["task_list"], list.as_str());
    assert_eq!(meta["worktree"], wt.to_str().unwrap());

    wait_for("the agent's start record", || !e.starts().is_empty());
    let starts = e.starts();
    assert_eq!(starts.len(), 1);
    let env = &starts[0]["env"];
    assert_eq!(env["MT_AGENT"], "york");
    assert_eq!(env["MT_TASK"], "1");
    assert_eq!(env["CLAUDE_CODE_TASK_LIST_ID"], list.as_str());
    assert_eq!(starts[0]["cwd"], wt.to_str().unwrap());

    wait_for("the prompt", || !e.inputs("york").is_empty());
    assert_eq!(
        e.inputs("york")[0],
        format!(
            "Write the parser\n\nIn Rust.\n\nThis is task 1 of the task list {list}. When it is done, mark it done: mt-task done 1"
        )
    );
    let took: Vec<Value> = e
        .channel("general")
        .into_iter()
        .filter(|r| r["type"] == "action")
        .collect();
    assert_eq!(took.len(), 1);
    assert_eq!(took[0]["from"], "mt-sling");
    assert_eq!(took[0]["content"], "york took task 1: Write the parser");
    assert_eq!(took[0]["meta"]["task"], "1");
}

#[test]
fn blocked_task_waits_until_its_blocker_is_done() {
    let e = Env::with_repo();
    assert_eq!(e.ok("mt-sling", &["first"]), "york\n");
    let out = e.run("mt-sling", &["second", "--blocked-by", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("task 2 waits for task 1"),
        "{}",
        text(&out.stderr)
    );
    let list = e.default_list();
    assert_eq!(e.task(&list, 2)["status"], "pending");
    assert!(e.task(&list, 2).get("owner").is_none());

    assert_eq!(e.ok("mt-dispatch", &[]), "");
    e.ok("mt-task", &["done", "1"]);
    // york still runs, so the next free name takes it.
    assert_eq!(e.ok("mt-dispatch", &[]), "park took task 2: second\n");
    assert_eq!(e.task(&list, 2)["owner"], "park");
    assert_eq!(e.meta("park")["task"], "2");
}

#[test]
fn dispatch_respects_the_maximum() {
    let e = Env::with_repo();
    for i in 1..=4 {
        e.ok("mt-task", &["create", &format!("t{i}")]);
    }
    let out = e.ok("mt-dispatch", &["--max", "2"]);
    assert_eq!(
        lines(&out),
        [
            "york took task 1: t1",
            "park took task 2: t2",
            "task 3 waits: 2 agents running (--max 2)"
        ]
    );
    let out = e.ok("mt-dispatch", &["--max", "2"]);
    assert_eq!(out, "task 3 waits: 2 agents running (--max 2)\n");
    let out = e.ok("mt-dispatch", &["--max", "3", "--dry-run"]);
    assert_eq!(
        lines(&out),
        [
            "would give task 3 to kent: t3",
            "task 4 waits: 3 agents running (--max 3)"
        ]
    );
    assert_eq!(e.task(&e.default_list(), 3)["status"], "pending");
    let out = e.ok("mt-dispatch", &["--max", "3"]);
    assert_eq!(
        lines(&out),
        [
            "kent took task 3: t3",
            "task 4 waits: 3 agents running (--max 3)"
        ]
    );
    wait_for("three agent starts", || e.starts().len() == 3);
}

#[test]
fn concurrent_dispatchers_never_give_a_task_twice() {
    let e = Env::with_repo();
    for i in 1..=6 {
        e.ok("mt-task", &["create", &format!("t{i}")]);
    }
    // Four dispatchers, and a rival claiming tasks through the task list
    // at the same time (as Claude Code's own task tools would).
    let kids: Vec<_> = (0..4)
        .map(|_| {
            e.cmd("mt-dispatch")
                .args(["--max", "10"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for id in [6, 3] {
        e.run("mt-task", &["claim", &id.to_string(), "--as", "rival"]);
    }
    let mut took = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        took += text(&o.stdout)
            .lines()
            .filter(|l| l.contains(" took task "))
            .count();
    }
    let list = e.default_list();
    let mut owners = BTreeSet::new();
    let mut rival = 0;
    for id in 1..=6 {
        let t = e.task(&list, id);
        assert_eq!(t["status"], "in_progress");
        let owner = t["owner"].as_str().unwrap().to_string();
        if owner == "rival" {
            rival += 1;
            continue;
        }
        assert_eq!(e.meta(&owner)["task"], id.to_string());
        assert!(worktree(&e, &owner).join("README").is_file());
        assert!(owners.insert(owner), "task {id} shares an owner");
    }
    assert_eq!(took + rival, 6);
    // Each agent was started once, and only for a task it owns.
    wait_for("the start records", || e.starts().len() >= took);
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    for s in e.starts() {
        *starts
            .entry(s["env"]["MT_AGENT"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(starts.len(), took);
    assert!(starts.values().all(|&n| n == 1), "{starts:?}");
    assert!(starts.keys().all(|a| owners.contains(a)), "{starts:?}");
}

#[test]
fn a_failed_start_gives_the_claim_back() {
    let e = Env::with_repo();
    let out = e
        .cmd("mt-sling")
        .env("MT_AGENT_CMD", e.root.join("no-such-agent"))
        .arg("doomed")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("the task is pending again"),
        "{}",
        text(&out.stderr)
    );
    let t = e.task(&e.default_list(), 1);
    assert_eq!(t["status"], "pending");
    assert!(t.get("owner").is_none());
    let errors: Vec<Value> = e
        .channel("general")
        .into_iter()
        .filter(|r| r["type"] == "error" && r["from"] == "mt-sling")
        .collect();
    assert_eq!(errors.len(), 1);
    // Dispatch starts it once the agent program is there (and the failed
    // supervisor has let go of the name).
    wait_for("the failed supervisor to end", || !e.running("york"));
    assert_eq!(e.ok("mt-dispatch", &[]), "york took task 1: doomed\n");
}

#[test]
fn names_with_work_or_tasks_are_not_free() {
    let e = Env::with_repo();
    // york has a worktree with a commit not merged into main.
    let wt = std::path::PathBuf::from(e.ok("mt-worktree", &["add", "york"]).trim());
    fs::write(wt.join("wip"), "x").unwrap();
    e.git(&wt, &["add", "wip"]);
    e.git(&wt, &["commit", "-qm", "wip"]);
    // park owns an unfinished task.
    e.ok("mt-task", &["create", "parked", "--owner", "park"]);
    // kent's worktree is clean and merged: free, made again from main.
    let kent = std::path::PathBuf::from(e.ok("mt-worktree", &["add", "kent"]).trim());
    fs::write(e.repo.join("NEWS"), "news\n").unwrap();
    e.git(&e.repo, &["add", "NEWS"]);
    e.git(&e.repo, &["commit", "-qm", "news"]);
    assert!(!kent.join("NEWS").exists());
    assert_eq!(e.ok("mt-sling", &["next"]), "kent\n");
    assert!(kent.join("NEWS").is_file());
    // An explicit name that is not free: the task waits, exit 1.
    let out = e.run("mt-sling", &["mine", "--name", "york"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("york is not free"));
    assert_eq!(e.task(&e.default_list(), 3)["status"], "pending");
    // A pool of our own.
    assert_eq!(e.ok("mt-sling", &["pooled", "--pool", "york,zed"]), "zed\n");
}

#[test]
fn outside_a_repository_nothing_is_created() {
    let e = Env::new();
    let out = e.run("mt-sling", &["lost"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not inside a git repository"));
    assert!(!e.task_dir(&e.default_list()).exists());
    assert_eq!(e.run("mt-dispatch", &[]).status.code(), Some(69));
}
