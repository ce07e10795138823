//! Fault injection beyond the channel log: mt-mail send and mt-task create
//! killed at random points, mt-read killed while it saves its cursor, and
//! a full disk under Claude Code's files.
//!
//! A killed writer may leave its lock directory behind; it goes stale after
//! 10 s. Rather than wait, the tests age such a directory (as `touch -d`
//! would) once its holder is known to be dead, and the next writer breaks
//! it. The long variants run with `MT_LONG_TESTS=1` (`make check-long`).

use crate::support::{Rng, Tmpfs, long, tool, walk};
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, SystemTime};

fn iterations() -> usize {
    if long() { 2000 } else { 200 }
}

fn cmd(root: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = tool(name, root);
    c.args(args)
        .env("MT_TEAM", "t")
        .env("CLAUDE_CODE_TASK_LIST_ID", "demo")
        .env("MT_LOCK_WAIT", "30s")
        .env("MT_FSYNC", "0");
    c
}

/// Start `c` with `input` on stdin, kill it after `delay`, and return its
/// output; a process that finished first keeps its real status.
fn kill_after(mut c: Command, input: &[u8], delay: Duration) -> Output {
    let mut child: Child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    // Kill it at `delay`, unless it is done by then.
    let deadline = std::time::Instant::now() + delay;
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Age a lock directory left by a dead writer past the 10 s after which it
/// is stale, so the next writer breaks it now.
fn age_if_left(lock: &Path) -> bool {
    let Ok(f) = File::open(lock) else {
        return false;
    };
    let t = SystemTime::now() - Duration::from_secs(60);
    f.set_times(FileTimes::new().set_modified(t)).unwrap();
    true
}

/// Hidden temporary files a killed writer left (`.NAME.tmp.PID.N`).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp."))
        .collect()
}

// ---------------------------------------------------------------------------
// mt-mail send

#[test]
fn killed_senders_never_break_an_inbox_or_lose_an_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let inbox = root.join("claude/teams/t/inboxes/york.json");
    let lock = root.join("claude/teams/t/inboxes/york.json.lock");
    // A large inbox makes every rewrite long enough to be cut into.
    fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    let old: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!({"from": "park", "text": format!("old {i} {}", "o".repeat(400)), "timestamp": "t", "read": false}))
        .collect();
    fs::write(&inbox, serde_json::to_vec_pretty(&old).unwrap()).unwrap();

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let big = "v".repeat(5_000);
    let mut acked: Vec<String> = Vec::new();
    let (mut killed, mut aged) = (0, 0);
    for i in 0..iterations() {
        let text = format!("victim {i} {big}");
        let o = kill_after(
            cmd(root, "mt-mail", &["send", "--to", "york"]),
            text.as_bytes(),
            Duration::from_micros(rng.below(20_000)),
        );
        if o.status.success() {
            acked.push(text);
        } else {
            killed += 1;
        }
        // The victim is dead: a lock directory left now is its own.
        if age_if_left(&lock) {
            aged += 1;
        }
        let steady = format!("steady {i}");
        let o = cmd(root, "mt-mail", &["send", "--to", "york", &steady])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        acked.push(steady);
        if i % 20 == 0 || i + 1 == iterations() {
            let list: Vec<serde_json::Value> = serde_json::from_slice(&fs::read(&inbox).unwrap())
                .expect("the inbox always parses");
            let texts: HashSet<&str> = list.iter().filter_map(|m| m["text"].as_str()).collect();
            for a in &acked {
                assert!(
                    texts.contains(a.as_str()),
                    "acknowledged message lost: {:.20}",
                    a
                );
            }
            assert_eq!(list.len(), texts.len(), "no message twice");
        }
    }
    assert!(killed > 0, "some senders must actually have been killed");
    assert!(!lock.exists(), "a lock directory was left behind");
    let stray: Vec<PathBuf> = walk(inbox.parent().unwrap())
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.contains(".stale.") || n.contains(".corrupt-")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    eprintln!(
        "mt-mail: {killed} of {} senders killed, {aged} lock directories aged, {} temporary files left",
        iterations(),
        leftovers(inbox.parent().unwrap()).len()
    );
}

// ---------------------------------------------------------------------------
// mt-task create

#[test]
fn killed_creators_never_break_a_task_list_or_lose_an_acknowledged_task() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = root.join("claude/tasks/demo");
    let list_lock = dir.join(".lock.lock");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let big = "d".repeat(50_000);
    let mut acked: Vec<(u64, String)> = Vec::new();
    let (mut killed, mut aged) = (0, 0);
    for i in 0..iterations() {
        let subject = format!("victim {i}");
        let o = kill_after(
            cmd(
                root,
                "mt-task",
                &["create", "--description", &big, &subject],
            ),
            b"",
            Duration::from_micros(rng.below(20_000)),
        );
        if o.status.success() {
            let id: u64 = String::from_utf8(o.stdout).unwrap().trim().parse().unwrap();
            acked.push((id, subject));
        } else {
            killed += 1;
        }
        for l in [list_lock.clone()].into_iter().chain(
            walk(&dir)
                .into_iter()
                .filter(|p| p.extension().is_some_and(|x| x == "lock") && p.is_dir()),
        ) {
            if age_if_left(&l) {
                aged += 1;
            }
        }
        let steady = format!("steady {i}");
        let o = cmd(root, "mt-task", &["create", &steady]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let id: u64 = String::from_utf8(o.stdout).unwrap().trim().parse().unwrap();
        acked.push((id, steady));
    }
    assert!(killed > 0, "some creators must actually have been killed");

    // Every task file parses; every acknowledged task is there, as created.
    let mut ids = BTreeSet::new();
    for p in walk(&dir) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".json") {
            let v: serde_json::Value =
                serde_json::from_slice(&fs::read(&p).unwrap()).expect("every task file parses");
            assert_eq!(v["id"].as_str(), Some(stem));
            ids.insert(stem.parse::<u64>().unwrap());
        }
    }
    let mut seen = HashSet::new();
    for (id, subject) in &acked {
        assert!(seen.insert(*id), "id {id} given twice");
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap();
        assert_eq!(v["subject"].as_str(), Some(subject.as_str()), "task {id}");
    }
    let hwm: u64 = fs::read_to_string(dir.join(".highwatermark"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        hwm,
        *ids.last().unwrap(),
        "the high-water mark covers every id"
    );
    let locks: Vec<PathBuf> = walk(&dir).into_iter().filter(|p| p.is_dir()).collect();
    assert!(locks.is_empty(), "lock directories left behind: {locks:?}");
    let o = cmd(root, "mt-task", &["list"]).output().unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "mt-task: {killed} of {} creators killed, {aged} lock directories aged, {} temporary files left",
        iterations(),
        leftovers(&dir).len()
    );
}

// ---------------------------------------------------------------------------
// Cursor saves

/// mt-read killed anywhere, saving its cursor included: the cursor file is
/// never torn and never ahead of what was printed (at-least-once), and a
/// final read delivers everything not yet printed.
#[test]
fn readers_killed_while_saving_never_tear_or_advance_their_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cursor = root.join("state/cursors/york/general.json");
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut printed: BTreeSet<u64> = BTreeSet::new();
    let mut posted = 0u64;
    let mut killed = 0;
    for i in 0..iterations() {
        // A few posts, so each read has a little to print and save.
        let n = 1 + rng.below(3);
        for k in 0..n {
            let o = tool("mt-post", root)
                .args(["--from", "park", &format!("m {i} {k}")])
                .output()
                .unwrap();
            assert!(o.status.success());
            posted += 1;
        }
        let mut child = cmd(root, "mt-read", &["--as", "york", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        thread::sleep(Duration::from_micros(rng.below(6_000)));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        for line in reader.join().unwrap().lines() {
            // A record whose line reached us whole was printed.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                printed.insert(v["seq"].as_u64().unwrap());
            }
        }
        if let Ok(bytes) = fs::read(&cursor) {
            let c: serde_json::Value =
                serde_json::from_slice(&bytes).expect("a cursor is never torn");
            let seq = c["seq"].as_u64().unwrap();
            assert!(
                (1..=seq).all(|s| printed.contains(&s)),
                "the cursor ({seq}) is ahead of what was printed"
            );
        }
    }
    assert!(killed > 0, "some readers must actually have been killed");
    let o = cmd(root, "mt-read", &["--as", "york", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        printed.insert(v["seq"].as_u64().unwrap());
    }
    assert_eq!(
        printed,
        (1..=posted).collect(),
        "every record printed at least once"
    );
    eprintln!(
        "mt-read: {killed} of {} readers killed, {} temporary files left",
        iterations(),
        leftovers(&root.join("state/cursors")).len()
    );
}

// ---------------------------------------------------------------------------
// Full disk

fn fill_until_failure(mut run: impl FnMut(usize) -> Output) -> (usize, Output) {
    for i in 0..1000 {
        let o = run(i);
        if !o.status.success() {
            return (i, o);
        }
    }
    panic!("the disk never filled up");
}

#[test]
fn a_full_disk_fails_a_send_cleanly_and_keeps_the_inbox() {
    let Some(fsys) = Tmpfs::mount("512k") else {
        return;
    };
    let root = fsys.0.clone();
    fs::create_dir(root.join("home")).unwrap();
    let inbox = root.join("claude/teams/t/inboxes/york.json");
    let filler = root.join("filler");
    fs::write(&filler, vec![0u8; 128 << 10]).unwrap();
    let text = |i: usize| format!("{i} {}", "m".repeat(3000));
    let (sent, o) = fill_until_failure(|i| {
        cmd(&root, "mt-mail", &["send", "--to", "york", &text(i)])
            .output()
            .unwrap()
    });
    assert_eq!(
        o.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mt-mail: "), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&fs::read(&inbox).unwrap()).expect("the inbox still parses");
    assert_eq!(list.len(), sent, "exactly the acknowledged messages");
    assert!(
        leftovers(inbox.parent().unwrap()).is_empty(),
        "no temporary file left"
    );
    assert!(
        !root.join("claude/teams/t/inboxes/york.json.lock").exists(),
        "lock released"
    );
    fs::remove_file(&filler).unwrap();
    let o = cmd(&root, "mt-mail", &["send", "--to", "york", "after"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&fs::read(&inbox).unwrap()).unwrap();
    assert_eq!(list.len(), sent + 1);
}

#[test]
fn a_full_disk_fails_a_create_cleanly_and_keeps_the_list() {
    let Some(fsys) = Tmpfs::mount("512k") else {
        return;
    };
    let root = fsys.0.clone();
    fs::create_dir(root.join("home")).unwrap();
    let dir = root.join("claude/tasks/demo");
    let filler = root.join("filler");
    fs::write(&filler, vec![0u8; 128 << 10]).unwrap();
    let desc = "d".repeat(6000);
    let (created, o) = fill_until_failure(|i| {
        cmd(
            &root,
            "mt-task",
            &["create", "--description", &desc, &format!("t{i}")],
        )
        .output()
        .unwrap()
    });
    assert_eq!(
        o.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("mt-task: ") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = cmd(&root, "mt-task", &["list"]).output().unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().lines().count(),
        created
    );
    assert!(leftovers(&dir).is_empty(), "no temporary file left");
    assert!(walk(&dir).iter().all(|p| !p.is_dir()), "locks released");
    fs::remove_file(&filler).unwrap();
    let o = cmd(&root, "mt-task", &["create", "after"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().trim(),
        (created + 1).to_string()
    );
}
