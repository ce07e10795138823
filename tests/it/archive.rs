//! Archiving channels whole (mt-channels archive, unarchive): posts are
//! refused while archived and never lost, readers and cursors go on.

use crate::support::{Env, text};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn seqs(s: &str) -> Vec<u64> {
    json_lines(s)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

fn names(s: &str) -> Vec<String> {
    json_lines(s)
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

fn post(e: &Env, args: &[&str]) -> Output {
    e.run("mt-post", args)
}

/// The bytes of every file of a channel directory, by name.
fn files(e: &Env, chan: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(e.state.join("channels").join(chan))
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            (
                d.file_name().to_string_lossy().into_owned(),
                fs::read(d.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn archived_channels_leave_listings_refuse_posts_and_stay_readable() {
    let e = Env::new();
    for (chan, msg) in [
        ("general", "g1"),
        ("old", "o1"),
        ("old", "o2"),
        ("dev", "d1"),
    ] {
        e.ok("mt-post", &["-c", chan, msg]);
    }
    // york has read one record of old.
    let o = e.run("mt-read", &["-c", "old", "--as", "york", "--json"]);
    assert_eq!(seqs(&text(&o.stdout)), [1, 2]);
    e.ok("mt-post", &["-c", "old", "o3"]);
    let cursor = fs::read(e.state.join("cursors/york/old.json")).unwrap();

    e.ok("mt-channels", &["archive", "old"]);
    let mark: Value =
        serde_json::from_slice(&fs::read(e.state.join("channels/old/ARCHIVED")).unwrap()).unwrap();
    assert_eq!(mark["last_seq"], 3);
    assert!(mark["archived_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        fs::read(e.state.join("cursors/york/old.json")).unwrap(),
        cursor,
        "cursors are not touched"
    );

    // Out of the default listing and its unread counts; listed on request.
    let listed = e.ok("mt-channels", &["--json", "--as", "york"]);
    assert_eq!(names(&listed), ["dev", "general"]);
    assert!(json_lines(&listed).iter().all(|v| v["archived"] == false));
    let archived = e.ok("mt-channels", &["--json", "--archived", "--as", "york"]);
    let rows = json_lines(&archived);
    assert_eq!(names(&archived), ["old"]);
    assert_eq!(rows[0]["archived"], true);
    assert_eq!(rows[0]["archived_at"], mark["archived_at"]);
    assert_eq!(rows[0]["unread"], 1);
    assert_eq!(rows[0]["records"], 3);
    assert_eq!(
        names(&e.ok("mt-channels", &["--json", "--all"])),
        ["dev", "general", "old"]
    );
    let table = e.ok("mt-channels", &[]);
    assert!(!table.contains("old"), "{table}");
    let table = e.ok("mt-channels", &["--all"]);
    let head = table.lines().next().unwrap();
    assert!(head.contains("ARCHIVED"), "{table}");
    let old_row = table.lines().find(|l| l.starts_with("old")).unwrap();
    assert!(
        old_row.ends_with(mark["archived_at"].as_str().unwrap()),
        "{table}"
    );
    assert!(
        table
            .lines()
            .find(|l| l.starts_with("dev"))
            .unwrap()
            .ends_with('-')
    );

    // A post is refused with the way out, and writes nothing; so is a batch.
    let before = files(&e, "old");
    let o = post(&e, &["-c", "old", "late"]);
    assert_eq!(o.status.code(), Some(69), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "mt-post: channel old is archived; `mt-channels unarchive old` to post to it again\n"
    );
    let mut c = e.cmd("mt-post");
    c.args(["-c", "old", "--lines"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(69));
    assert_eq!(files(&e, "old"), before, "nothing written");
    // Other channels take posts as ever.
    e.ok("mt-post", &["-c", "dev", "d2"]);

    // Still readable, by selection and by cursor: york goes on at seq 3.
    assert_eq!(
        seqs(&e.ok("mt-read", &["-c", "old", "--all", "--json"])),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(&e.ok("mt-read", &["-c", "old", "--as", "york", "--json"])),
        [3]
    );

    // Archiving again changes nothing; unarchiving numbers on.
    e.ok("mt-channels", &["archive", "old"]);
    let again: Value =
        serde_json::from_slice(&fs::read(e.state.join("channels/old/ARCHIVED")).unwrap()).unwrap();
    assert_eq!(again, mark);
    e.ok("mt-channels", &["unarchive", "old"]);
    assert!(!e.state.join("channels/old/ARCHIVED").exists());
    e.ok("mt-channels", &["unarchive", "old"]);
    assert_eq!(seqs(&e.ok("mt-post", &["-c", "old", "--json", "o4"])), [4]);
    assert_eq!(
        seqs(&e.ok("mt-read", &["-c", "old", "--as", "york", "--json"])),
        [4]
    );
    assert_eq!(
        names(&e.ok("mt-channels", &["--json"])),
        ["dev", "general", "old"]
    );
}

#[test]
fn archive_names_are_checked_and_missing_channels_reported() {
    let e = Env::new();
    e.ok("mt-post", &["-c", "a", "x"]);
    e.ok("mt-post", &["-c", "b", "x"]);
    // A missing channel is reported (exit 1); the others are archived.
    let o = e.run("mt-channels", &["archive", "a", "nope", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr), "mt-channels: no channel nope\n");
    assert!(!e.state.join("channels/nope").exists(), "nothing created");
    assert_eq!(
        names(&e.ok("mt-channels", &["--json", "--archived"])),
        ["a", "b"]
    );
    // A bad name anywhere: nothing is touched.
    let o = e.run("mt-channels", &["unarchive", "a", "../b"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with("mt-channels: invalid channel name"));
    assert_eq!(
        names(&e.ok("mt-channels", &["--json", "--archived"])),
        ["a", "b"]
    );
    // A command takes names, and no listing options.
    assert_eq!(e.run("mt-channels", &["archive"]).status.code(), Some(2));
    assert_eq!(
        e.run("mt-channels", &["--json", "archive", "a"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn archive_waits_for_a_post_in_progress() {
    let e = Env::new();
    e.ok("mt-post", &["x"]);
    // A writer holding the append lock, as flock(1) in a script would.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(e.state.join("channels/general/LOCK"))
        .unwrap();
    lock.lock().unwrap();
    for cmd in ["archive", "unarchive"] {
        let mut child = e.cmd("mt-channels").args([cmd, "general"]).spawn().unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{cmd} did not wait for the lock"
        );
        let archived = e.state.join("channels/general/ARCHIVED").exists();
        assert_eq!(archived, cmd == "unarchive", "{cmd} changed nothing yet");
        lock.unlock().unwrap();
        assert!(child.wait().unwrap().success());
        lock.lock().unwrap();
    }
}

/// Writers post while the channel is archived and unarchived over and over,
/// and a reader reads as it goes: every acknowledged post is there exactly
/// once, every refused one is absent, nothing lands while archived, seqs
/// stay gapless and the reader's cursor never skips or repeats.
#[test]
fn archive_under_concurrent_posts_loses_nothing() {
    let e = Arc::new(Env::new());
    e.ok("mt-post", &["--from", "lead", "start"]);
    let writers = 4;
    let per = if std::env::var_os("MT_LONG_TESTS").is_some() {
        600
    } else {
        150
    };
    let done = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..writers)
        .map(|w| {
            let e = Arc::clone(&e);
            thread::spawn(move || {
                let mut outcome = Vec::new();
                for k in 0..per {
                    let msg = format!("w{w} {k}");
                    let o = post(&e, &["--from", &format!("w{w}"), "--json", &msg]);
                    match o.status.code() {
                        Some(0) => outcome.push((msg, Some(seqs(&text(&o.stdout))[0]))),
                        Some(69) => {
                            assert!(text(&o.stderr).contains("mt-channels unarchive general"));
                            outcome.push((msg, None));
                        }
                        c => panic!("mt-post exit {c:?}: {}", text(&o.stderr)),
                    }
                }
                outcome
            })
        })
        .collect();
    // Archive and unarchive until the writers are done; while archived, the
    // channel's last seq is the one the marker recorded.
    let toggler = {
        let (e, done) = (Arc::clone(&e), Arc::clone(&done));
        thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) {
                e.ok("mt-channels", &["archive", "general"]);
                let mark: Value = serde_json::from_slice(
                    &fs::read(e.state.join("channels/general/ARCHIVED")).unwrap(),
                )
                .unwrap();
                thread::sleep(Duration::from_millis(15));
                let now = json_lines(&e.ok("mt-channels", &["--json", "--archived"]));
                assert_eq!(now[0]["last_seq"], mark["last_seq"], "a post landed");
                e.ok("mt-channels", &["unarchive", "general"]);
                thread::sleep(Duration::from_millis(15));
                rounds += 1;
            }
            rounds
        })
    };
    // york reads as it goes, through every archive and unarchive.
    let reader = {
        let (e, done) = (Arc::clone(&e), Arc::clone(&done));
        thread::spawn(move || {
            let mut got = Vec::new();
            while !done.load(Ordering::Relaxed) {
                got.extend(seqs(&e.ok("mt-read", &["--as", "york", "--json"])));
            }
            got
        })
    };
    let mut posted: HashMap<String, Option<u64>> = HashMap::new();
    for h in hs {
        posted.extend(h.join().unwrap());
    }
    done.store(true, Ordering::Relaxed);
    let rounds = toggler.join().unwrap();
    let mut york = reader.join().unwrap();
    e.run("mt-channels", &["unarchive", "general"]);
    york.extend(seqs(&e.ok("mt-read", &["--as", "york", "--json"])));

    let acked = posted.values().filter(|s| s.is_some()).count();
    let refused = posted.len() - acked;
    assert!(
        rounds > 0 && refused > 0 && acked > 0,
        "{rounds} {refused} {acked}"
    );
    let all = json_lines(&e.ok("mt-read", &["--all", "--json"]));
    let total = 1 + acked;
    assert_eq!(all.len(), total, "exactly the acknowledged posts");
    let got: Vec<u64> = all.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, (1..=total as u64).collect::<Vec<_>>(), "gapless");
    for v in &all[1..] {
        let c = v["content"].as_str().unwrap();
        assert_eq!(
            posted[c],
            v["seq"].as_u64(),
            "{c}: stored where acknowledged"
        );
    }
    assert_eq!(york, got, "york read each record once, in order");
}

/// The hooks' own records (a task created, the session waiting) are not
/// taken by an archived channel, and the session sees no hook error.
#[test]
fn hooks_post_nothing_to_an_archived_channel_and_do_not_fail() {
    let e = Env::new();
    assert!(post(&e, &["--from", "lead", "before"]).status.success());
    e.ok("mt-channels", &["archive", "general"]);
    let payload = serde_json::json!({
        "session_id": "7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60",
        "hook_event_name": "PostToolUse",
        "tool_name": "TaskCreate",
        "tool_input": {"subject": "Add login", "description": "x"},
        "tool_response": {"task": {"id": "3", "subject": "Add login"}},
        "tool_use_id": "toolu_01"
    })
    .to_string();
    let before = files(&e, "general");
    let mut c = e.cmd("mt-hook");
    c.args(["post-tool-use"])
        .env("MT_AGENT", "york")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(files(&e, "general"), before, "nothing written");
    // Unarchived, the same hook posts again.
    e.ok("mt-channels", &["unarchive", "general"]);
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let all = e.ok("mt-read", &["--all", "--json"]);
    assert!(all.contains("Add login"), "{all}");
}
