//! mt-task against real processes: concurrent creates and claims, blockers,
//! locks, unreadable task files and bad input.

use assert_cmd::Command;
use std::collections::BTreeSet;
use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Output};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

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

    fn list_dir(&self) -> PathBuf {
        self.claude().join("tasks").join("demo")
    }

    fn task_file(&self, id: u64) -> PathBuf {
        self.list_dir().join(format!("{id}.json"))
    }

    fn std(&self) -> Std {
        let mut c = self.clean("mt-task");
        c.env("CLAUDE_CODE_TASK_LIST_ID", "demo");
        c
    }

    fn task(&self, args: &[&str]) -> Command {
        let mut c = Command::from_std(self.std());
        c.args(args);
        c
    }

    fn create(&self, args: &[&str]) -> u64 {
        let out = self
            .task(&[&["create"], args].concat())
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn json(&self, id: u64) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.task_file(id)).unwrap()).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn set_mtime_ago(path: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t))
        .unwrap();
}

#[test]
fn concurrent_creates_get_unique_ids_and_the_high_water_mark() {
    let env = Arc::new(Env::new());
    let (procs, per) = (8, 20);
    let workers: Vec<_> = (0..procs)
        .map(|p| {
            let env = env.clone();
            thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let out = env
                            .std()
                            .args(["create", &format!("task {p}-{i}")])
                            .output()
                            .unwrap();
                        assert!(out.status.success(), "{}", stderr(&out));
                        String::from_utf8(out.stdout)
                            .unwrap()
                            .trim()
                            .parse::<u64>()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let printed: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let unique: BTreeSet<u64> = printed.iter().copied().collect();
    assert_eq!(printed.len(), 160);
    assert_eq!(unique, (1..=160).collect(), "ids 1..160, each once");
    let on_disk: BTreeSet<u64> = (1..=160).filter(|&i| env.task_file(i).is_file()).collect();
    assert_eq!(on_disk.len(), 160);
    let subjects: BTreeSet<String> = (1..=160)
        .map(|i| env.json(i)["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 160, "every create stored its own task");
    assert_eq!(
        fs::read_to_string(env.list_dir().join(".highwatermark")).unwrap(),
        "160"
    );
}

#[test]
fn concurrent_claims_have_exactly_one_winner() {
    let env = Arc::new(Env::new());
    let id = env.create(&["contested"]);
    let n = 8;
    let gate = Arc::new(Barrier::new(n));
    let claimers: Vec<_> = (0..n)
        .map(|i| {
            let (env, gate) = (env.clone(), gate.clone());
            thread::spawn(move || {
                let mut c = env.std();
                c.args(["claim", &id.to_string(), "--as", &format!("agent{i}")]);
                gate.wait();
                (i, c.output().unwrap())
            })
        })
        .collect();
    let results: Vec<(usize, Output)> = claimers.into_iter().map(|c| c.join().unwrap()).collect();
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, o)| o.status.success())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let winner = format!("agent{}", winners[0]);
    for (_, o) in results.iter().filter(|(_, o)| !o.status.success()) {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        assert_eq!(
            stderr(o),
            format!(
                "mt-task: cannot claim task {id} of list demo: it is already claimed by {winner}\n"
            )
        );
    }
    let t = env.json(id);
    assert_eq!(
        (t["owner"].as_str(), t["status"].as_str()),
        (Some(&*winner), Some("in_progress"))
    );
}

#[test]
fn blocked_task_cannot_be_claimed_until_its_blocker_is_done() {
    let env = Env::new();
    let a = env.create(&["first"]);
    let b = env.create(&["second", "--blocked-by", &a.to_string()]);
    assert_eq!(env.json(a)["blocks"], serde_json::json!([b.to_string()]));
    assert_eq!(env.json(b)["blockedBy"], serde_json::json!([a.to_string()]));
    env.task(&["claim", &b.to_string(), "--as", "york"])
        .assert()
        .code(1)
        .stderr(format!(
            "mt-task: cannot claim task {b} of list demo: it is blocked by task {a} (not completed)\n"
        ));
    let avail = env
        .task(&["list", "--available", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let ids: Vec<String> = String::from_utf8(avail)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, [a.to_string()]);
    env.task(&["claim", &a.to_string(), "--as", "park"])
        .assert()
        .success();
    env.task(&["claim", &b.to_string(), "--as", "york"])
        .assert()
        .code(1);
    env.task(&["done", &a.to_string()]).assert().success();
    env.task(&["claim", &b.to_string(), "--as", "york"])
        .assert()
        .success()
        .stdout(format!("claimed task {b}: second\n"));
    // A blocker that does not exist keeps a task blocked.
    let c = env.create(&["third", "--blocked-by", &a.to_string()]);
    let path = env.task_file(c);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(&format!("\"{a}\""), "\"99\"");
    fs::write(&path, text).unwrap();
    env.task(&["claim", &c.to_string(), "--as", "york"])
        .assert()
        .code(1)
        .stderr(format!(
            "mt-task: cannot claim task {c} of list demo: it is blocked by task 99 (not completed)\n"
        ));
}

#[test]
fn claim_refusals_say_why() {
    let env = Env::new();
    let a = env.create(&["a"]);
    env.task(&["done", &a.to_string()]).assert().success();
    env.task(&["claim", &a.to_string(), "--as", "york"])
        .assert()
        .code(1)
        .stderr("mt-task: cannot claim task 1 of list demo: it is already completed\n");
    env.task(&["claim", "7", "--as", "york"])
        .assert()
        .code(1)
        .stderr("mt-task: cannot claim task 7 of list demo: there is no such task\n");
    env.task(&["claim", "1"]).assert().code(2);
    let b = env.create(&["b", "--owner", "york"]);
    env.task(&["claim", &b.to_string(), "--as", "park"])
        .assert()
        .code(1);
    env.task(&["claim", &b.to_string()])
        .env("MT_AGENT", "york")
        .assert()
        .success();
    // Claiming again what is already yours is not an error.
    env.task(&["claim", &b.to_string(), "--as", "york"])
        .assert()
        .success()
        .stdout("already had task 2: b\n");
}

#[test]
fn task_files_are_pretty_and_keep_unknown_fields() {
    let env = Env::new();
    let id = env.create(&[
        "Write",
        "the",
        "parser",
        "--description",
        "in Rust",
        "--active-form",
        "Writing the parser",
    ]);
    assert_eq!(
        fs::read_to_string(env.task_file(id)).unwrap(),
        "{\n  \"id\": \"1\",\n  \"subject\": \"Write the parser\",\n  \"description\": \"in Rust\",\n  \"activeForm\": \"Writing the parser\",\n  \"status\": \"pending\",\n  \"blocks\": [],\n  \"blockedBy\": []\n}"
    );
    // As another writer might leave it: extra fields, compact.
    fs::write(
        env.task_file(id),
        r#"{"id":"1","subject":"Write the parser","description":"in Rust","status":"pending","blocks":[],"blockedBy":[],"metadata":{"x":[1,2.5]},"zExtra":"kept"}"#,
    )
    .unwrap();
    env.task(&["claim", "1", "--as", "york"]).assert().success();
    let text = fs::read_to_string(env.task_file(id)).unwrap();
    assert!(text.contains("  \"metadata\": {\n    \"x\": [\n      1,\n      2.5\n    ]\n  },\n  \"zExtra\": \"kept\",\n  \"owner\": \"york\""), "{text}");
    assert!(text.contains("\"status\": \"in_progress\""));
    env.task(&[
        "update",
        "1",
        "--owner",
        "",
        "--status",
        "pending",
        "--subject",
        "Parse",
    ])
    .assert()
    .success();
    let t = env.json(id);
    assert!(t.get("owner").is_none());
    assert_eq!(
        (t["subject"].as_str(), t["zExtra"].as_str()),
        (Some("Parse"), Some("kept"))
    );
}

#[test]
fn delete_removes_the_id_from_other_tasks() {
    let env = Env::new();
    let a = env.create(&["a"]);
    let b = env.create(&["b", "--blocked-by", "1"]);
    let c = env.create(&["c", "--blocked-by", "1,2"]);
    env.task(&["delete", &a.to_string()]).assert().success();
    assert!(!env.task_file(a).exists());
    assert_eq!(env.json(b)["blockedBy"], serde_json::json!([]));
    assert_eq!(env.json(c)["blockedBy"], serde_json::json!(["2"]));
    assert_eq!(env.json(b)["blocks"], serde_json::json!(["3"]));
    env.task(&["delete", &c.to_string()]).assert().success();
    assert_eq!(env.json(b)["blocks"], serde_json::json!([]));
    // The high-water mark keeps deleted ids from coming back.
    assert_eq!(env.create(&["d"]), 4);
    env.task(&["delete", "3"])
        .assert()
        .code(1)
        .stderr("mt-task: no task 3 in task list demo\n");
}

#[test]
fn unparsable_task_file_is_skipped_and_never_rewritten() {
    let env = Env::new();
    env.create(&["a"]);
    env.create(&["b", "--blocked-by", "1"]);
    let bad = b"{\"id\": \"2\", \"subject\": \"b\", \"blockedBy\": [\"1\"";
    fs::write(env.task_file(2), bad).unwrap();
    let out = env.task(&["list"]).assert().success().get_output().clone();
    assert!(
        stderr(&out).starts_with("mt-task: warning: skipping ")
            && stderr(&out).contains("2.json: it does not parse"),
        "{}",
        stderr(&out)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(shown.lines().count(), 1, "{shown}");
    env.task(&["show", "2"]).assert().code(65);
    let out = env
        .task(&["claim", "2", "--as", "york"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("its file does not parse"),
        "{}",
        stderr(&out)
    );
    env.task(&["update", "2", "--subject", "x"])
        .assert()
        .code(65);
    env.task(&["done", "2"]).assert().code(65);
    // Deleting the task it names leaves it alone (with a warning).
    let out = env
        .task(&["delete", "1"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stderr(&out).contains("2.json"), "{}", stderr(&out));
    assert_eq!(env.create(&["c"]), 3);
    assert_eq!(fs::read(env.task_file(2)).unwrap(), bad, "never rewritten");
}

#[test]
fn bad_input_gets_clear_errors() {
    let env = Env::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--list", "../x", "list"],
            65,
            "invalid task list name \"../x\"",
        ),
        (
            &["--list", "a/b", "create", "x"],
            65,
            "invalid task list name",
        ),
        (&["--list", "..", "list"], 65, "invalid task list name"),
        (
            &["show", "abc"],
            65,
            "invalid task id \"abc\": ids are whole numbers from 1, like 3",
        ),
        (
            &["claim", "1x", "--as", "york"],
            65,
            "invalid task id \"1x\"",
        ),
        (&["done", "-1"], 2, ""),
        (&["done", "0"], 65, "invalid task id \"0\""),
        (
            &["create", "x", "--blocked-by", "1,two"],
            65,
            "invalid task id \"two\"",
        ),
        (
            &["create", "x", "--blocked-by", "5"],
            65,
            "no task 5 in task list demo",
        ),
        (
            &["create", "x", "--owner", "../y"],
            65,
            "invalid owner name",
        ),
        (&["claim", "1", "--as", "a b"], 65, "invalid owner name"),
        (&["create", " "], 65, "the subject is empty"),
    ];
    for (args, code, msg) in cases {
        let out = env.task(args).output().unwrap();
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(msg), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !env.claude().join("tasks").exists()
            || fs::read_dir(env.list_dir()).map_or(true, |d| {
                d.filter_map(Result::ok)
                    .all(|e| !e.file_name().to_string_lossy().ends_with(".json"))
            }),
        "no task was created"
    );
    // No list named: the state directory's default list; none at all
    // without a state directory.
    env.task(&["create", "x"])
        .env_remove("CLAUDE_CODE_TASK_LIST_ID")
        .assert()
        .success();
    let tmp = env.root.file_name().unwrap().to_string_lossy();
    let default = format!("mt-{}", tmp.trim_start_matches('.'));
    assert!(
        env.claude()
            .join("tasks")
            .join(default)
            .join("1.json")
            .is_file()
    );
    env.task(&["list"])
        .env_remove("CLAUDE_CODE_TASK_LIST_ID")
        .env_remove("MT_DIR")
        .current_dir("/")
        .assert()
        .code(2)
        .stderr("mt-task: no task list: give --list NAME or set CLAUDE_CODE_TASK_LIST_ID\n");
}

#[test]
fn held_list_lock_waits_then_fails_and_stale_one_is_broken() {
    let env = Env::new();
    env.create(&["a"]);
    let before = fs::read(env.task_file(1)).unwrap();
    let lock = env.list_dir().join(".lock.lock");
    fs::create_dir(&lock).unwrap();
    let out = env
        .task(&["claim", "1", "--as", "york", "--wait", "300ms"])
        .assert()
        .code(75)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("cannot lock task list demo")
            && stderr(&out).contains("held by another writer"),
        "{}",
        stderr(&out)
    );
    env.task(&["create", "b", "--wait", "100ms"])
        .assert()
        .code(75);
    assert_eq!(fs::read(env.task_file(1)).unwrap(), before);
    assert!(!env.task_file(2).exists());
    set_mtime_ago(&lock, 11);
    env.task(&["claim", "1", "--as", "york", "--wait", "300ms"])
        .assert()
        .success();
    assert!(!lock.exists());
    // A held per-task lock (Claude Code updating that task) also excludes us.
    let tlock = env.list_dir().join("1.json.lock");
    fs::create_dir(&tlock).unwrap();
    env.task(&["done", "1", "--wait", "200ms"])
        .assert()
        .code(75);
    assert_eq!(env.json(1)["status"], "in_progress");
    fs::remove_dir(&tlock).unwrap();
    env.task(&["done", "1"]).assert().success();
    assert_eq!(env.json(1)["status"], "completed");
}

#[test]
fn announce_posts_action_records() {
    let env = Env::new();
    env.task(&["create", "Write the parser", "--announce", "--as", "lead"])
        .assert()
        .success()
        .stdout("1\n");
    env.task(&[
        "claim",
        "1",
        "--as",
        "york",
        "--announce",
        "--channel",
        "work",
    ])
    .assert()
    .success();
    env.task(&[
        "done",
        "1",
        "--as",
        "york",
        "--announce",
        "--channel",
        "work",
    ])
    .assert()
    .success();
    let read = |chan: &str| -> Vec<serde_json::Value> {
        let dir = env.state.join("channels").join(chan);
        let mut lines = Vec::new();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                for l in fs::read_to_string(&p).unwrap().lines() {
                    lines.push(serde_json::from_str(l).unwrap());
                }
            }
        }
        lines
    };
    let general = read("general");
    assert_eq!(general.len(), 1);
    assert_eq!(general[0]["type"], "action");
    assert_eq!(general[0]["content"], "created task 1: Write the parser");
    assert_eq!(general[0]["meta"]["task"], "1");
    let work = read("work");
    let contents: Vec<&str> = work
        .iter()
        .map(|r| r["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "claimed task 1: Write the parser",
            "completed task 1: Write the parser"
        ]
    );
    assert!(
        work.iter()
            .all(|r| r["from"] == "york" && r["type"] == "action")
    );
}

#[test]
fn list_filters_and_show() {
    let env = Env::new();
    env.create(&["a"]);
    env.create(&["b", "--blocked-by", "1"]);
    env.create(&["c", "--owner", "york"]);
    env.task(&["claim", "1", "--as", "park"]).assert().success();
    let ids = |args: &[&str]| -> Vec<String> {
        let out = env
            .task(&[&["list", "--json"], args].concat())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(ids(&[]), ["1", "2", "3"]);
    assert_eq!(ids(&["--status", "pending"]), ["2", "3"]);
    assert_eq!(ids(&["--status", "in_progress"]), ["1"]);
    assert!(ids(&["--available"]).is_empty());
    assert_eq!(ids(&["--owner", "york"]), ["3"]);
    let out = env
        .task(&["list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.lines().nth(1).unwrap().ends_with("b  [blocked by 1]"),
        "{out}"
    );
    let out = env
        .task(&["show", "2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("blocked by:  1\n") && out.contains("waiting for: 1\n"),
        "{out}"
    );
    env.task(&["show", "9"]).assert().code(1);
}
