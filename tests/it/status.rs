//! mt-status over state made by the real tools: agents started with
//! mt-spawn and the fake agent, tasks with mt-task, messages with
//! mt-post, worktrees with mt-worktree, reminders with mt-remind and a
//! real mt-watch.

use serde_json::Value;
use std::fs;
use std::process::{Output, Stdio};

use crate::support::{Env, text, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn status(e: &Env, args: &[&str]) -> Output {
    e.cmd("mt-status").args(args).output().unwrap()
}

/// The screen, which must come with exit 0 and fit 80 columns.
fn screen(e: &Env, args: &[&str]) -> String {
    let out = e.ok("mt-status", args);
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l:?}");
        assert_eq!(l, l.trim_end(), "trailing blanks: {l:?}");
    }
    out
}

/// The screen as `screen` checks it, run in `dir`.
fn screen_in(e: &Env, dir: &std::path::Path) -> String {
    let out = e.cmd("mt-status").current_dir(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The --json object, which must be one line that parses.
fn json(e: &Env, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = e.ok("mt-status", &a);
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("{err}: {out}"))
}

/// The line of `screen` that starts with `start`.
fn line<'a>(screen: &'a str, start: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in\n{screen}"))
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_fresh_repository_is_an_empty_team_not_an_error() {
    let e = Env::with_repo();
    // The state directory of the repository itself, never created.
    let mut c = e.cmd("mt-status");
    c.env_remove("MT_DIR");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(line(&s, "AGENTS").contains("none yet"), "{s}");
    assert!(line(&s, "TASKS").contains("none"), "{s}");
    assert!(
        line(&s, "MESSAGES").contains("nothing unread for lead"),
        "{s}"
    );
    assert!(line(&s, "WATCHER").contains("not running"), "{s}");
    assert!(line(&s, "REMINDERS").contains("none pending"), "{s}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(!e.repo.join(".git/mt").exists(), "mt-status created state");

    let v = json(&e, &[]);
    assert_eq!(v["agents"], serde_json::json!([]));
    assert_eq!(v["totals"]["agents"], 0);
    assert_eq!(v["tasks"]["pending"], 0);
    assert_eq!(v["tasks"]["list"], e.default_list());
    assert_eq!(v["watcher"]["running"], false);
    assert_eq!(v["reminders"]["pending"], 0);
    assert_eq!(v["errors"], serde_json::json!([]));
    assert!(!e.state.exists(), "mt-status created {}", e.state.display());
}

#[test]
fn outside_a_repository_without_mt_dir_is_an_error() {
    let e = Env::new();
    let mut c = e.cmd("mt-status");
    c.env_remove("MT_DIR");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stderr).starts_with("mt-status: no state directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn agents_show_state_task_tokens_cost_and_rate_limits_with_a_total() {
    let e = Env::with_repo();
    e.spawn("york", "", &["--task", "7"]);
    e.spawn("park", "rate-limit", &[]);
    e.spawn("quinn", "exit:3", &[]);
    e.wait_idle("york");
    e.wait_idle("park");
    wait_for("quinn to fail", || {
        e.agent("quinn").join("status.json").is_file()
            && e.status("quinn")["state"] == "failed"
            && !e.running("quinn")
    });

    let v = json(&e, &[]);
    let agents = &v["agents"];
    assert_eq!(names(agents), ["park", "quinn", "york"]);
    let mut cost = 0.0;
    let mut input = 0;
    for a in agents.as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        let st = e.status(name);
        let ps: Value = serde_json::from_str(&e.ok("mt-ps", &["--json", name])).unwrap();
        assert_eq!(a["state"], ps["state"], "{name}: the state mt-ps shows");
        assert_eq!(a["running"], ps["running"]);
        assert_eq!(a["input_tokens"], st["input_tokens"]);
        assert_eq!(a["output_tokens"], st["output_tokens"]);
        assert_eq!(a["cost_usd"], st["cost_usd"]);
        assert_eq!(a["last_event_at"], st["last_event_at"]);
        cost += st["cost_usd"].as_f64().unwrap();
        input += st["input_tokens"].as_u64().unwrap();
    }
    assert!(input > 0 && cost > 0.0, "the fake agent reports usage");
    assert_eq!(agents[2]["task"], "7");
    assert_eq!(agents[0]["task"], Value::Null);
    assert_eq!(agents[1]["state"], "failed");
    assert_eq!(agents[1]["error"], "exit");
    // Only the rejection not yet reset is shown.
    assert_eq!(agents[0]["rate_limit"]["status"], "rejected");
    assert_eq!(agents[0]["rate_limit"]["kind"], "five_hour");
    assert_eq!(agents[2]["rate_limit"], Value::Null);
    let t = &v["totals"];
    assert_eq!(t["agents"], 3);
    assert_eq!(t["running"], 2);
    assert_eq!(t["states"], serde_json::json!({"idle": 2, "failed": 1}));
    assert_eq!(t["input_tokens"], input);
    assert!((t["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert_eq!(t["rate_limited"], 1);

    let s = screen(&e, &[]);
    assert!(line(&s, "AGENTS").contains("3: 1 failed, 2 idle"), "{s}");
    let york: Vec<&str> = line(&s, "york").split_whitespace().collect();
    assert_eq!(york[..3], ["york", "idle", "7"], "{s}");
    assert!(line(&s, "park").contains("rate limited until"), "{s}");
    assert!(line(&s, "quinn").contains("failed"), "{s}");
    let total = line(&s, "total");
    assert!(total.contains(&format!("${cost:.4}")), "{s}");
    assert!(total.contains("2 running, 1 rate limited"), "{s}");

    // At most --limit rows; the rest are counted.
    let s = screen(&e, &["--limit", "2"]);
    assert!(s.contains("… and 1 more"), "{s}");
    assert!(!s.lines().any(|l| l.starts_with("york")), "{s}");
    assert!(s.lines().any(|l| l.starts_with("total")), "{s}");
}

#[test]
fn tasks_are_counted_by_state_with_the_active_and_blocked_ones() {
    let e = Env::with_repo();
    let task = |args: &[&str]| e.ok("mt-task", args);
    task(&["create", "Write the parser"]);
    task(&["create", "Review the parser", "--blocked-by", "1"]);
    task(&["create", "Release", "--blocked-by", "1,2"]);
    task(&["create", "Set up CI"]);
    task(&["create", "Unblocked by a done task", "--blocked-by", "4"]);
    task(&["claim", "1", "--as", "york"]);
    task(&["claim", "4", "--as", "park"]);
    task(&["done", "4"]);
    task(&["create", "Elsewhere", "--list", "other"]);

    let v = json(&e, &[]);
    let t = &v["tasks"];
    assert_eq!(t["list"], e.default_list());
    assert_eq!(
        (&t["pending"], &t["in_progress"], &t["completed"]),
        (&3.into(), &1.into(), &1.into()),
        "{t}"
    );
    assert_eq!(
        t["active"],
        serde_json::json!([{"id": 1, "subject": "Write the parser", "owner": "york", "blocked_by": []}])
    );
    let blocked: Vec<(u64, Vec<u64>)> = t["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let by = r["blocked_by"].as_array().unwrap();
            (
                r["id"].as_u64().unwrap(),
                by.iter().map(|b| b.as_u64().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(blocked, [(2, vec![1]), (3, vec![1, 2])]);

    let s = screen(&e, &[]);
    assert!(
        line(&s, "TASKS").contains("3 pending, 1 in progress, 1 completed"),
        "{s}"
    );
    let active: Vec<&str> = line(&s, " 1").split_whitespace().collect();
    assert_eq!(
        active,
        ["1", "in", "progress", "york", "-", "Write", "the", "parser"]
    );
    assert!(line(&s, " 3").contains("1,2"), "{s}");
    assert!(
        !s.contains("Set up CI"),
        "completed tasks are only counted: {s}"
    );

    // The list mt-task uses: --list, else CLAUDE_CODE_TASK_LIST_ID.
    let v = json(&e, &["--list", "other"]);
    assert_eq!(
        (&v["tasks"]["list"], &v["tasks"]["pending"]),
        (&"other".into(), &1.into())
    );
    let out = e
        .cmd("mt-status")
        .arg("--json")
        .env("CLAUDE_CODE_TASK_LIST_ID", "other")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tasks"]["list"], "other");
}

#[test]
fn unread_counts_per_channel_move_no_cursor() {
    let e = Env::with_repo();
    e.post("park", "@york the parser is ready");
    e.post("park", "and the tests");
    e.ok(
        "mt-post",
        &["--from", "park", "-c", "review", "please review"],
    );
    e.ok("mt-post", &["--from", "park", "-c", "quiet", "old news"]);
    e.ok("mt-read", &["--as", "york", "-c", "quiet"]);
    let cursors = |who: &str| crate::support::walk(&e.state.join("cursors").join(who));
    let before: Vec<_> = cursors("york")
        .iter()
        .map(|p| (p.clone(), fs::read(p).ok()))
        .collect();

    let v = json(&e, &["--as", "york"]);
    assert_eq!(v["reader"], "york");
    let unread: Vec<(&str, u64)> = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["unread"].as_u64().unwrap()))
        .collect();
    assert_eq!(unread, [("general", 2), ("review", 1)], "quiet is all read");
    let v = json(&e, &["--as", "york", "--all"]);
    assert_eq!(names(&v["channels"]), ["general", "quiet", "review"]);
    assert_eq!(v["channels"][1]["unread"], 0);
    // An archived channel is left out, unread or not.
    e.ok("mt-post", &["--from", "park", "-c", "done", "closing this"]);
    e.ok("mt-channels", &["archive", "done"]);
    let v = json(&e, &["--as", "york", "--all"]);
    assert_eq!(names(&v["channels"]), ["general", "quiet", "review"]);

    // The reader defaults to $MT_AGENT, else lead.
    let out = e
        .cmd("mt-status")
        .arg("--json")
        .env("MT_AGENT", "york")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reader"], "york");
    assert_eq!(json(&e, &[])["reader"], "lead");
    let s = screen(&e, &["--as", "york"]);
    assert!(line(&s, "MESSAGES").contains("3 unread for york"), "{s}");
    assert!(line(&s, "     2").ends_with("general"), "{s}");

    // Nothing was moved or created: york still reads it all.
    let after: Vec<_> = cursors("york")
        .iter()
        .map(|p| (p.clone(), fs::read(p).ok()))
        .collect();
    assert_eq!(before, after);
    assert!(!e.state.join("cursors/lead").exists());
    let read = e.ok("mt-read", &["--as", "york"]);
    assert!(
        read.contains("the parser is ready") && read.contains("and the tests"),
        "{read}"
    );
    let v = json(&e, &["--as", "york"]);
    assert_eq!(names(&v["channels"]), ["review"]);
}

#[test]
fn worktrees_with_work_not_in_the_base_are_listed() {
    let e = Env::with_repo();
    let add = |n: &str| std::path::PathBuf::from(e.ok("mt-worktree", &["add", n]).trim());
    let york = add("york");
    let park = add("park");
    add("clean");
    let old = add("old");
    fs::write(york.join("parser.rs"), "fn main() {}\n").unwrap();
    e.git(&york, &["add", "."]);
    e.git(&york, &["commit", "-qm", "parser"]);
    fs::write(park.join("notes.txt"), "draft\n").unwrap();
    fs::write(old.join("kept.txt"), "kept\n").unwrap();
    e.git(&old, &["add", "."]);
    e.git(&old, &["commit", "-qm", "kept"]);
    e.ok("mt-worktree", &["rm", "old", "--keep-branch"]);
    // A merged loose branch is not work left behind.
    add("merged");
    e.ok("mt-worktree", &["rm", "merged", "--keep-branch"]);

    let v = json(&e, &[]);
    let w = &v["worktrees"];
    assert_eq!(names(&w["unmerged"]), ["park", "york"]);
    let york_row = &w["unmerged"][1];
    assert_eq!(
        (&york_row["branch"], &york_row["ahead"], &york_row["dirty"]),
        (&"mt/york".into(), &1.into(), &false.into())
    );
    assert_eq!(
        w["unmerged"][0]["changes"],
        serde_json::json!(["?? notes.txt"])
    );
    assert_eq!(
        w["branches"],
        serde_json::json!([{"name": "mt/old", "base": "refs/heads/main", "unmerged": 1}])
    );

    let s = screen(&e, &[]);
    assert!(
        line(&s, "WORKTREES").contains("2 with work not in their base, 1 branch"),
        "{s}"
    );
    let y: Vec<&str> = line(&s, "york").split_whitespace().collect();
    assert_eq!(y, ["york", "mt/york", "1", "0", "-", "main"], "{s}");
    let p: Vec<&str> = line(&s, "park").split_whitespace().collect();
    assert_eq!(p, ["park", "mt/park", "0", "1", "-", "main"], "{s}");
    let old_row: Vec<&str> = s
        .lines()
        .find(|l| l.contains("mt/old"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(old_row, ["-", "mt/old", "1", "-", "-", "main"], "{s}");
    assert!(!s.contains("clean"), "{s}");

    // From outside the repository: the one holding the state directory,
    // and with neither, no section at all.
    let inside = e.repo.join(".git/mt");
    let from = |state: &std::path::Path| -> Value {
        let out = e
            .cmd("mt-status")
            .arg("--json")
            .env("MT_DIR", state)
            .current_dir(&e.root)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    fs::create_dir_all(&inside).unwrap();
    assert_eq!(
        names(&from(&inside)["worktrees"]["unmerged"]),
        ["park", "york"]
    );
    assert_eq!(from(&e.state)["worktrees"], Value::Null);
    assert!(!screen_in(&e, &e.root).contains("WORKTREES"));

    // Merged and committed: nothing left to show.
    e.git(&e.repo, &["merge", "-q", "mt/york", "mt/old"]);
    fs::remove_file(park.join("notes.txt")).unwrap();
    let v = json(&e, &[]);
    assert_eq!(v["worktrees"]["unmerged"], serde_json::json!([]));
    assert_eq!(v["worktrees"]["branches"], serde_json::json!([]));
    assert!(line(&screen(&e, &[]), "WORKTREES").contains("no work outside"));
}

#[test]
fn the_watcher_is_shown_running_and_not_running() {
    let e = Env::with_repo();
    fs::create_dir_all(e.claude()).unwrap();
    let s = screen(&e, &[]);
    assert!(line(&s, "WATCHER").contains("not running"), "{s}");
    assert!(line(&s, "WATCHER").contains("mt-watch"), "a hint: {s}");

    fs::write(e.repo.join("rules"), "name=t @every 1h true\n").unwrap();
    let mut w = e
        .cmd("mt-watch")
        .args(["--rules", "rules"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = w.id();
    wait_for("the watcher to show", || {
        json(&e, &[])["watcher"]["pid"] == pid
    });
    assert_eq!(json(&e, &[])["watcher"]["running"], true);
    let s = screen(&e, &[]);
    assert_eq!(
        line(&s, "WATCHER"),
        format!("WATCHER    running (pid {pid})"),
        "{s}"
    );

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    w.wait().unwrap();
    let v = json(&e, &[]);
    assert_eq!(
        (&v["watcher"]["running"], &v["watcher"]["pid"]),
        (&false.into(), &Value::Null)
    );
    assert!(line(&screen(&e, &[]), "WATCHER").contains("not running"));
}

#[test]
fn reminders_due_and_pending() {
    let e = Env::with_repo();
    e.ok(
        "mt-remind",
        &["add", "--at", "2020-01-01T00:00:00Z", "review the parser"],
    );
    e.ok("mt-remind", &["add", "--after", "2h", "merge and release"]);
    e.ok("mt-task", &["create", "only task"]);
    e.ok(
        "mt-remind",
        &["add", "--when", "all-tasks-done", "all done"],
    );

    let v = json(&e, &[]);
    let r = &v["reminders"];
    assert_eq!(r["pending"], 3);
    let due = r["due"].as_array().unwrap();
    assert_eq!(due.len(), 1, "{r}");
    assert_eq!(
        (&due[0]["id"], &due[0]["stage"], &due[0]["message"]),
        (&"1".into(), &"pending".into(), &"review the parser".into())
    );
    let s = screen(&e, &[]);
    assert!(line(&s, "REMINDERS").contains("1 due, 3 pending"), "{s}");
    assert!(line(&s, " 1").contains("review the parser"), "{s}");
    assert!(line(&s, " 1").contains(" ago"), "{s}");

    // Due with the tasks done, and by the clock.
    e.ok("mt-task", &["claim", "1", "--as", "york"]);
    e.ok("mt-task", &["done", "1"]);
    let out = e
        .cmd("mt-status")
        .arg("--json")
        .env("MT_REMIND_NOW", "2100-01-01T00:00:00Z")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v["reminders"]["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);

    // Fired reminders are neither due nor pending.
    e.ok("mt-remind", &["check"]);
    let v = json(&e, &[]);
    assert_eq!(v["reminders"]["pending"], 1);
    assert_eq!(v["reminders"]["due"], serde_json::json!([]));
}

#[test]
fn long_names_and_texts_fit_80_columns_and_stay_inert() {
    let e = Env::with_repo();
    let long = format!("a{}", "b".repeat(63));
    e.spawn(&long, "", &["--task", "12345678901234567890"]);
    e.wait_idle(&long);
    let subject = format!("\u{1b}[31mred{}", " and more words".repeat(10));
    e.ok("mt-task", &["create", &subject]);
    e.ok("mt-task", &["claim", "1", "--as", &long]);
    e.ok("mt-post", &["--from", "park", "-c", &long, "hello"]);
    let s = screen(&e, &[]);
    assert!(
        !s.contains('\u{1b}'),
        "a control character reached the terminal: {s}"
    );
    assert!(s.contains("^[[31mred"), "{s}");
    assert!(s.contains('…'), "{s}");
}

#[test]
fn bad_input_is_refused_and_a_broken_section_does_not_hide_the_rest() {
    let e = Env::with_repo();
    let out = status(&e, &["--as", "../x"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        text(&out.stderr).starts_with("mt-status: invalid reader name"),
        "{}",
        text(&out.stderr)
    );

    e.post("park", "hello");
    e.ok("mt-remind", &["add", "--after", "1h", "later"]);
    fs::write(e.state.join("reminders/pending/1.json"), "{not json").unwrap();
    let out = status(&e, &["--json"]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with("mt-status: reminders: "), "{err}");
    assert!(err.contains("does not parse"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reminders"], Value::Null);
    assert_eq!(v["errors"][0]["section"], "reminders");
    assert_eq!(v["errors"][0]["code"], 65);
    assert_eq!(v["channels"][0]["unread"], 1, "the rest is shown");

    let out = status(&e, &[]);
    assert_eq!(out.status.code(), Some(65));
    let s = text(&out.stdout);
    assert!(line(&s, "REMINDERS").contains("could not be read"), "{s}");
    assert!(line(&s, "MESSAGES").contains("1 unread"), "{s}");
}
