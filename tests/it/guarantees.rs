//! Tests for guarantees of mt-guarantees(7) that no other suite checks:
//! what is synced when, one delivery per record among concurrent readers
//! of one agent, and what a dead supervisor, watcher or reminder check
//! leaves behind.

use crate::support::tool;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn cmd(root: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = tool(name, root);
    c.args(args)
        .env("MT_TEAM", "t")
        .env("CLAUDE_CODE_TASK_LIST_ID", "demo");
    c
}

/// How many fsync(2) and fdatasync(2) calls `c` makes, by strace.
fn syncs(root: &Path, c: &Command) -> Option<usize> {
    let log = root.join("strace.log");
    let mut s = Command::new("strace");
    s.args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .current_dir(root)
        .stdin(Stdio::null());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    let o = s.output().ok()?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        // Tracing may be forbidden here (no ptrace): nothing to check.
        assert!(
            err.contains("ptrace") || err.contains("strace:"),
            "{c:?}: {err}"
        );
        return None;
    }
    let text = fs::read_to_string(&log).ok()?;
    Some(text.lines().filter(|l| l.contains("sync(")).count())
}

/// Posts, inbox and task writes and reminders are synced to disk before
/// the command reports success; MT_FSYNC=0 turns the syncs off, except for
/// reminders. Without strace (or where it may not trace) this skips, but
/// fails under CI (`MT_CI=1`).
#[test]
fn writes_are_synced_unless_mt_fsync_is_0() {
    if Command::new("strace").arg("-V").output().is_err() {
        crate::support::skip("strace is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir(root.join("home")).unwrap();
    let runs: &[(&str, &[&str])] = &[
        ("mt-post", &["hi"]),
        ("mt-mail", &["send", "--to", "york", "hi"]),
        ("mt-task", &["create", "one"]),
        ("mt-remind", &["add", "--after", "1h", "x"]),
    ];
    // Warm up: directories and files exist, so only the write is measured.
    for (t, a) in runs {
        ok(&mut cmd(root, t, a));
    }
    for (t, a) in runs {
        let mut c = cmd(root, t, a);
        c.env_remove("MT_FSYNC");
        let Some(n) = syncs(root, &c) else {
            crate::support::skip("strace cannot trace here");
            return;
        };
        assert!(n >= 1, "{t} synced nothing");
        c.env("MT_FSYNC", "0");
        let n = syncs(root, &c).unwrap();
        if *t == "mt-remind" {
            // A reminder must survive to fire exactly once: always synced.
            assert!(n >= 1, "{t} did not sync with MT_FSYNC=0");
        } else {
            assert_eq!(n, 0, "{t} synced with MT_FSYNC=0");
        }
    }
}

/// Readers acting as one agent, all at once, while a writer posts: each
/// record is printed by exactly one of them (the agent's cursor lock), and
/// none is lost.
#[test]
fn concurrent_readers_as_one_agent_print_each_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Arc::new(tmp.path().to_path_buf());
    let posts = 300u64;
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let root = Arc::clone(&root);
        thread::spawn(move || {
            for i in 0..posts {
                ok(&mut cmd(
                    &root,
                    "mt-post",
                    &["--from", "park", &format!("m{i}")],
                ));
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (root, seen, done) = (Arc::clone(&root), Arc::clone(&seen), Arc::clone(&done));
            thread::spawn(move || {
                loop {
                    let last = done.load(std::sync::atomic::Ordering::SeqCst);
                    let out = ok(&mut cmd(&root, "mt-read", &["--as", "york", "--json"]));
                    let mut s = seen.lock().unwrap();
                    for l in out.lines() {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        s.push(v["seq"].as_u64().unwrap());
                    }
                    if last {
                        break;
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let unique: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record was printed twice");
    assert_eq!(unique, (1..=posts).collect(), "a record was never printed");
}

/// An agent's supervisor holds agents/<name>/running.lock while the agent
/// runs; when the supervisor dies, however it dies, the agent stops
/// counting as running: the kernel drops the lock.
#[test]
fn a_dead_supervisor_leaves_its_agent_not_running() {
    let tmp = tempfile::tempdir().unwrap();
    let state = mt::statedir::StateDir::at(tmp.path().join("state"));
    fs::create_dir_all(state.agent("york")).unwrap();
    assert!(!state.agent_running("york").unwrap());
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 9>>\"$1\"; flock 9; echo held; exec sleep 600")
        .arg("sh")
        .arg(state.agent_lock("york"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(state.agent_running("york").unwrap());
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(!state.agent_running("york").unwrap());
}

/// A watcher killed with SIGKILL leaves nothing that keeps the next one
/// from starting.
#[test]
fn a_killed_watcher_leaves_no_lock_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(root.join("rules"), "name=i @every 1h echo i >> i.out\n").unwrap();
    let mut w = cmd(root, "mt-watch", &["--rules", "rules"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while !root.join("i.out").exists() {
        assert!(Instant::now() < give_up, "the watcher never ran");
        thread::sleep(Duration::from_millis(20));
    }
    let second = cmd(root, "mt-watch", &["--rules", "rules", "--once"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(75), "one watcher at a time");
    w.kill().unwrap();
    w.wait().unwrap();
    ok(&mut cmd(root, "mt-watch", &["--rules", "rules", "--once"]));
}

/// A reminder check that died after claiming a reminder: the next check
/// still delivers the nudge (at least once), and the record once.
#[test]
fn a_crashed_check_still_nudges() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let inbox = root.join("state/agents/lead/inbox/new");
    fs::create_dir_all(&inbox).unwrap();
    let id = ok(&mut cmd(
        root,
        "mt-remind",
        &["add", "--at", "2000-01-01T00:00:00Z", "x"],
    ));
    let id = id.trim();
    let r = root.join("state/reminders");
    fs::rename(
        r.join(format!("pending/{id}.json")),
        r.join(format!("firing/{id}.json")),
    )
    .unwrap();
    ok(&mut cmd(root, "mt-remind", &["check"]));
    assert_eq!(
        fs::read_dir(&inbox).unwrap().count(),
        1,
        "the nudge was delivered"
    );
    let recs = ok(&mut cmd(root, "mt-read", &["--all", "--json"]));
    assert_eq!(recs.lines().count(), 1, "the record was posted once");
}

/// mt-guarantees(7) names only tests that exist, and every guarantee in it
/// names at least one.
#[test]
fn every_test_the_guarantees_page_names_exists() {
    let root = crate::support::repo();
    let page = fs::read_to_string(root.join("share/man/man7/mt-guarantees.7")).unwrap();
    let mut named = 0;
    for block in page.split("Tests:\n").skip(1) {
        let list = block.split(".fi").next().unwrap();
        let names: Vec<&str> = list
            .lines()
            .filter_map(|l| l.strip_prefix("\\fI")?.strip_suffix("\\fR"))
            .collect();
        assert!(!names.is_empty(), "a guarantee without a test: {list}");
        for n in names {
            let (file, func) = match n.rsplit_once("::tests::") {
                Some((lib, func)) => (root.join(lib), func),
                None => {
                    // area::test: tests/it/area.rs, or area.rs of a
                    // binary of its own (tests/claude/, tests/fleet/...).
                    let (f, func) = n.split_once("::").unwrap();
                    let file = fs::read_dir(root.join("tests"))
                        .unwrap()
                        .map(|d| d.unwrap().path().join(format!("{f}.rs")))
                        .find(|p| p.is_file())
                        .unwrap_or_else(|| panic!("{n}: no tests/*/{f}.rs"));
                    (file, func)
                }
            };
            let text =
                fs::read_to_string(&file).unwrap_or_else(|_| panic!("{n}: no {}", file.display()));
            assert!(text.contains(&format!("fn {func}(")), "{n}: no such test");
            named += 1;
        }
    }
    assert!(named > 60, "{named}");
}
