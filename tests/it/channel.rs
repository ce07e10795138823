//! mt-post, mt-read and mt-channels, driven as real processes.

use crate::support::{bin, git};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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

    fn cmd(&self, tool: &str) -> Command {
        self.clean(tool)
    }

    fn post(&self, args: &[&str]) -> Output {
        self.cmd("mt-post").args(args).output().unwrap()
    }

    fn read(&self, args: &[&str]) -> Output {
        self.cmd("mt-read").args(args).output().unwrap()
    }

    fn seg_dir(&self, chan: &str) -> PathBuf {
        self.state.join("channels").join(chan)
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn contents(s: &str) -> Vec<String> {
    json_lines(s)
        .iter()
        .map(|v| v["content"].as_str().unwrap().to_string())
        .collect()
}

fn seqs(s: &str) -> Vec<u64> {
    json_lines(s)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn post_stores_a_complete_record() {
    let e = Env::new();
    let out = ok(&e.post(&[
        "--json", "--from", "park", "@york", "can", "you", "review?", "@all",
    ]));
    let v = &json_lines(&out)[0];
    assert_eq!(v["seq"], 1);
    assert_eq!(v["from"], "park");
    assert_eq!(v["type"], "text");
    assert_eq!(v["channel"], "general");
    assert_eq!(v["content"], "@york can you review? @all");
    assert_eq!(v["mentions"], serde_json::json!(["york", "all"]));
    assert_eq!(v["id"].as_str().unwrap().len(), 26);
    let ts = v["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    // The stored line is exactly what --json printed.
    let seg = fs::read_to_string(e.seg_dir("general").join("00000000000000000001.jsonl")).unwrap();
    assert_eq!(seg, out);
}

#[test]
fn post_reads_stdin_and_lines_and_environment() {
    let e = Env::new();
    let mut c = e.cmd("mt-post");
    c.env("MT_AGENT", "york")
        .env("MT_CHANNEL", "dev")
        .arg("--json");
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\n\nline two\n")
        .unwrap();
    let out = ok(&child.wait_with_output().unwrap());
    let v = &json_lines(&out)[0];
    assert_eq!(v["content"], "line one\n\nline two");
    assert_eq!(v["from"], "york");
    assert_eq!(v["channel"], "dev");

    let mut c = e.cmd("mt-post");
    c.args(["--lines", "--json", "-c", "dev"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a\n\n  \nb\nc")
        .unwrap();
    let out = ok(&child.wait_with_output().unwrap());
    assert_eq!(contents(&out), ["a", "b", "c"]);
    assert_eq!(seqs(&out), [2, 3, 4]);
}

#[test]
fn cursors_are_per_reader_and_per_channel() {
    let e = Env::new();
    ok(&e.post(&["one"]));
    ok(&e.post(&["-c", "dev", "dev one"]));
    ok(&e.post(&["two"]));

    assert_eq!(
        contents(&ok(&e.read(&["--as", "york", "--json"]))),
        ["one", "two"]
    );
    assert_eq!(
        ok(&e.read(&["--as", "york", "--json"])),
        "",
        "york caught up"
    );
    assert_eq!(
        contents(&ok(&e.read(&["--as", "park", "--json"]))),
        ["one", "two"]
    );
    assert_eq!(
        contents(&ok(&e.read(&["--as", "york", "-c", "dev", "--json"]))),
        ["dev one"]
    );

    ok(&e.post(&["three"]));
    // --peek shows but does not advance.
    assert_eq!(
        contents(&ok(&e.read(&["--as", "york", "--peek", "--json"]))),
        ["three"]
    );
    assert_eq!(
        contents(&ok(&e.read(&["--as", "york", "--json"]))),
        ["three"]
    );
    assert_eq!(ok(&e.read(&["--as", "york", "--json"])), "");
    // MT_AGENT is an identity too.
    let o = e
        .cmd("mt-read")
        .env("MT_AGENT", "park")
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(contents(&ok(&o)), ["three"]);
}

#[test]
fn selections_touch_no_cursor() {
    let e = Env::new();
    for i in 1..=5 {
        ok(&e.post(&[&format!("m{i}")]));
    }
    // No identity: the whole channel, no cursor created.
    assert_eq!(seqs(&ok(&e.read(&["--json"]))), [1, 2, 3, 4, 5]);
    assert!(!e.state.join("cursors").exists());
    assert_eq!(
        seqs(&ok(&e.read(&["--as", "york", "--all", "--json"]))),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(&ok(&e.read(&["--as", "york", "--last", "2", "--json"]))),
        [4, 5]
    );
    assert_eq!(
        seqs(&ok(&e.read(&["--as", "york", "--since", "3", "--json"]))),
        [4, 5]
    );
    assert_eq!(
        seqs(&ok(&e.read(&["--last", "10", "--json"]))),
        [1, 2, 3, 4, 5]
    );
    assert!(!e.state.join("cursors/york/general.json").exists());
    // The cursor is still at the start.
    assert_eq!(
        seqs(&ok(&e.read(&["--as", "york", "--json"]))),
        [1, 2, 3, 4, 5]
    );
}

#[test]
fn quiet_answers_with_exit_status() {
    let e = Env::new();
    let q = |args: &[&str]| e.read(args).status.code().unwrap();
    assert_eq!(q(&["-q", "--as", "york"]), 1, "no channel yet");
    ok(&e.post(&["hi"]));
    assert_eq!(q(&["-q", "--as", "york"]), 0);
    assert_eq!(q(&["-q", "--as", "york"]), 0, "-q does not consume");
    let o = e.read(&["-q", "--as", "york"]);
    assert!(o.stdout.is_empty());
    ok(&e.read(&["--as", "york"]));
    assert_eq!(q(&["-q", "--as", "york"]), 1);
    assert_eq!(q(&["-q"]), 0, "without identity: the channel is not empty");
    assert_eq!(q(&["-q", "--since", "1"]), 1);
}

#[test]
fn text_form_is_one_line_per_message_with_indented_continuations() {
    let e = Env::new();
    ok(&e.post(&["--from", "park", "--type", "status", "first\nsecond"]));
    let out = ok(&e.read(&[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with("#1 park [status]: first"), "{out}");
    assert_eq!(lines[1], "    second");
}

#[test]
fn follow_prints_new_records_and_advances_the_cursor() {
    let e = Env::new();
    ok(&e.post(&["before"]));
    let mut child = e
        .cmd("mt-read")
        .args(["--follow", "--json", "--as", "york"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(contents(&first), ["before"]);
    ok(&e.post(&["after"]));
    let second = lines.next().unwrap().unwrap();
    assert_eq!(contents(&second), ["after"]);
    // Closing the pipe ends the follower cleanly.
    drop(lines);
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("follower exits");
    assert!(status.success(), "{status:?}");
    let cursor: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(e.state.join("cursors/york/general.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cursor["seq"], 2);
}

fn wait_timeout(child: &mut std::process::Child, t: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < t {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn concurrent_writers_lose_nothing_and_keep_order() {
    let e = Arc::new(Env::new());
    let writers = 8;
    let per = if std::env::var_os("MT_LONG_TESTS").is_some() {
        3000
    } else {
        1000
    };
    // Eight writers posting one record per process, as scripts and hooks do,
    // and two more posting batches with --lines, all at once.
    let mut hs: Vec<_> = (0..writers)
        .map(|w| {
            let e = Arc::clone(&e);
            thread::spawn(move || {
                for k in 0..per {
                    ok(&e.post(&["--from", &format!("w{w}"), &format!("w{w} {k}")]));
                }
            })
        })
        .collect();
    let batches = 20;
    hs.extend((0..2).map(|b| {
        let e = Arc::clone(&e);
        thread::spawn(move || {
            for i in 0..batches {
                let body: String = (0..50).map(|k| format!("b{b} {}\n", i * 50 + k)).collect();
                let mut c = e.cmd("mt-post");
                c.arg("--lines").stdin(Stdio::piped()).stdout(Stdio::null());
                let mut child = c.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(body.as_bytes())
                    .unwrap();
                assert!(child.wait().unwrap().success());
            }
        })
    }));
    for h in hs {
        h.join().unwrap();
    }
    let out = ok(&e.read(&["--json"]));
    let recs = json_lines(&out);
    let total = writers * per + 2 * batches * 50;
    assert_eq!(recs.len(), total);
    let got: Vec<u64> = recs.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, (1..=total as u64).collect::<Vec<_>>(), "gapless seq");
    let mut last: HashMap<String, i64> = HashMap::new();
    for v in &recs {
        let c = v["content"].as_str().unwrap();
        let (who, k) = c.split_once(' ').unwrap();
        let k: i64 = k.parse().unwrap();
        let prev = last.insert(who.to_string(), k).unwrap_or(-1);
        assert_eq!(k, prev + 1, "{who}'s own order");
    }
    assert_eq!(last.len(), writers + 2, "every writer present");
}

#[test]
fn killed_writer_fragment_never_surfaces_and_is_sealed() {
    let e = Env::new();
    ok(&e.post(&["one"]));
    let seg = e.seg_dir("general").join("00000000000000000001.jsonl");
    // What a writer killed in the middle of its write leaves behind.
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(br#"{"seq":2,"id":"01X","timestamp":"2026-11-21T19:40:01.1"#)
        .unwrap();
    drop(f);
    assert_eq!(contents(&ok(&e.read(&["--json"]))), ["one"]);
    assert_eq!(contents(&ok(&e.read(&["--json", "--as", "york"]))), ["one"]);
    let o = e.post(&["--json", "two"]);
    assert_eq!(
        seqs(&ok(&o)),
        [2],
        "the fragment's seq was never acknowledged"
    );
    ok(&e.post(&["three"]));
    let o = e.read(&["--json", "--as", "york"]);
    assert_eq!(contents(&ok(&o)), ["two", "three"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("malformed"),
        "warned"
    );
}

#[test]
fn malformed_lines_are_skipped_with_a_warning() {
    let e = Env::new();
    ok(&e.post(&["one"]));
    let seg = e.seg_dir("general").join("00000000000000000001.jsonl");
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"this is not json\n{\"seq\":\"x\"}\n").unwrap();
    drop(f);
    ok(&e.post(&["two"]));
    let o = e.read(&["--json"]);
    assert_eq!(contents(&ok(&o)), ["one", "two"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("skipping a malformed line").count(), 2, "{err}");
}

#[test]
fn reader_never_sees_part_of_a_large_record() {
    let e = Arc::new(Env::new());
    let big = 1_200_000usize;
    let n = 12;
    let mut follower = e
        .cmd("mt-read")
        .args(["--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(follower.stdout.take().unwrap());
    let writer = {
        let e = Arc::clone(&e);
        thread::spawn(move || {
            for i in 0..n {
                let body = format!("{i:02}{}", "x".repeat(big));
                let mut c = e.cmd("mt-post");
                c.args(["--max-bytes", "2000000"]).stdin(Stdio::piped());
                let mut child = c.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(body.as_bytes())
                    .unwrap();
                assert!(child.wait().unwrap().success());
            }
        })
    };
    let mut seen = 0;
    for line in reader.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a whole record");
        assert_eq!(v["content"].as_str().unwrap().len(), big + 2);
        seen += 1;
        if seen == n {
            break;
        }
    }
    writer.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen, n);
}

#[test]
fn rollover_under_concurrent_writers_and_a_following_reader() {
    let e = Arc::new(Env::new());
    let (writers, per) = (4, 150);
    let total = writers * per;
    let mut follower = e
        .cmd("mt-read")
        .args(["--follow", "--json", "--as", "tail"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(follower.stdout.take().unwrap());
    let hs: Vec<_> = (0..writers)
        .map(|w| {
            let e = Arc::clone(&e);
            thread::spawn(move || {
                for k in 0..per {
                    let o = e
                        .cmd("mt-post")
                        .env("MT_SEGMENT_BYTES", "2048")
                        .args(["--from", &format!("w{w}"), &format!("w{w} {k}")])
                        .output()
                        .unwrap();
                    assert!(o.status.success());
                }
            })
        })
        .collect();
    // The follower's lines, through a thread, so that a record it never
    // prints fails the test at a deadline instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + crate::support::PATIENCE;
    let mut got = Vec::new();
    while got.len() < total {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(wait) else {
            let _ = follower.kill();
            let _ = follower.wait();
            panic!(
                "the follower printed {} of {total} records in {:?}; last seqs {:?}",
                got.len(),
                crate::support::PATIENCE,
                &got[got.len().saturating_sub(5)..]
            );
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        got.push(v["seq"].as_u64().unwrap());
    }
    for h in hs {
        h.join().unwrap();
    }
    let _ = follower.kill();
    let _ = follower.wait();
    lines.join().unwrap();
    assert_eq!(
        got,
        (1..=total as u64).collect::<Vec<_>>(),
        "none lost, none twice"
    );
    let segs = fs::read_dir(e.seg_dir("general"))
        .unwrap()
        .filter(|d| {
            d.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert!(segs > 5, "rolled over into {segs} segments");
    // Every record appears once across segments, and a cursor reader agrees.
    let out = ok(&e.read(&["--json", "--as", "later"]));
    assert_eq!(seqs(&out), (1..=total as u64).collect::<Vec<_>>());
}

#[test]
fn bad_names_are_refused_and_create_nothing() {
    let e = Env::new();
    let long = "a".repeat(65);
    for bad in ["../x", "a/b", "", &long, "a\x01b", "Upper", ".x"] {
        for args in [vec!["-c", bad, "hi"], vec!["--from", bad, "hi"]] {
            let o = e.post(&args);
            assert_eq!(o.status.code(), Some(65), "{bad:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.starts_with("mt-post: invalid"), "{err}");
        }
        let o = e.read(&["--as", bad]);
        assert_eq!(o.status.code(), Some(65), "{bad:?}");
    }
    assert!(!e.state.exists(), "nothing was created");
}

/// `.` and `..` are path segments, not names: as a channel or agent name
/// they would put a segment or cursor in the state directory's root or
/// above it. Every tool that takes such a name refuses them, creating
/// nothing.
#[test]
fn dot_and_dot_dot_are_refused_as_channel_and_agent_names() {
    let e = Env::new();
    for bad in [".", ".."] {
        let runs: Vec<(&str, Vec<&str>)> = vec![
            ("mt-post", vec!["-c", bad, "hi"]),
            ("mt-post", vec!["--from", bad, "hi"]),
            ("mt-read", vec!["-c", bad]),
            ("mt-read", vec!["--as", bad]),
            ("mt-read", vec!["-c", bad, "--as", "york"]),
            ("mt-read", vec!["--follow", "-c", bad]),
        ];
        for (tool, args) in runs {
            let o = e.cmd(tool).args(&args).output().unwrap();
            assert_eq!(
                o.status.code(),
                Some(65),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(!e.state.exists(), "{bad:?}: nothing was created");
    }
    // With a state directory in place, nothing appears in it either.
    ok(&e.post(&["hi"]));
    let before = crate::support::walk(&e.state);
    for bad in [".", ".."] {
        assert_eq!(e.post(&["-c", bad, "x"]).status.code(), Some(65));
        assert_eq!(e.post(&["--from", bad, "x"]).status.code(), Some(65));
        assert_eq!(e.read(&["--as", bad]).status.code(), Some(65));
    }
    assert_eq!(crate::support::walk(&e.state), before);
    assert_eq!(contents(&ok(&e.read(&["--all", "--json"]))), ["hi"]);
}

#[test]
fn empty_and_oversized_messages_are_refused() {
    let e = Env::new();
    let o = e.post(&["   "]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty"));
    let o = e.post(&["--max-bytes", "10", "0123456789a"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("limit"));
    let o = e
        .cmd("mt-post")
        .env("MT_MAX_MESSAGE_BYTES", "3")
        .arg("abcd")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65));
    // The default limit is 1 MiB.
    let mut c = e.cmd("mt-post");
    c.stdin(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&vec![b'y'; (1 << 20) + 1])
        .unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(65));
    // --lines refuses the whole batch when one line is bad: nothing is written.
    let mut c = e.cmd("mt-post");
    c.args(["--lines", "--max-bytes", "5"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ok\ntoo long\nok\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
    assert!(!e.state.join("channels").exists());
}

#[test]
fn unwritable_state_directory_exits_73() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    fs::write(&blocker, "").unwrap();
    let o = Command::new(bin("mt-post"))
        .env("MT_DIR", blocker.join("mt"))
        .arg("hi")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(73));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mt-post: cannot create directory"), "{err}");
}

#[test]
fn linked_worktree_shares_the_state_directory_without_git() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("repo");
    fs::create_dir(&main).unwrap();
    git(&main, tmp.path(), &["init", "-q", "-b", "main"]);
    git(
        &main,
        tmp.path(),
        &["commit", "-q", "--allow-empty", "-m", "init"],
    );
    let wt = tmp.path().join("wt");
    git(
        &main,
        tmp.path(),
        &["worktree", "add", "-q", wt.to_str().unwrap()],
    );
    fs::create_dir(wt.join("sub")).unwrap();
    // An empty PATH: if mt-post started git, it would fail.
    let empty = tmp.path().join("empty-path");
    fs::create_dir(&empty).unwrap();
    let run = |tool: &str, cwd: &Path, args: &[&str]| {
        Command::new(bin(tool))
            .env_clear()
            .env("PATH", &empty)
            .env("MT_FSYNC", "0")
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
    };
    ok(&run("mt-post", &wt.join("sub"), &["from the worktree"]));
    ok(&run("mt-post", &main, &["from main"]));
    let out = ok(&run("mt-read", &main, &["--json"]));
    assert_eq!(contents(&out), ["from the worktree", "from main"]);
    let state = main.join(".git/mt");
    assert!(state.join("channels/general").is_dir());
    // Modes: directories 0700, files 0600.
    for p in [
        state.clone(),
        state.join("channels"),
        state.join("channels/general"),
    ] {
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700,
            "{p:?}"
        );
    }
    for ent in fs::read_dir(state.join("channels/general")).unwrap() {
        let p = ent.unwrap().path();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{p:?}"
        );
    }
    // Nothing shows up in git status.
    let st = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&main)
        .output()
        .unwrap();
    assert!(
        st.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    // Outside a repository and without MT_DIR: a clear error.
    let o = run("mt-post", tmp.path(), &["x"]);
    assert_eq!(o.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not inside a git repository"));
}

#[test]
fn channels_lists_counts_activity_and_unread() {
    let e = Env::new();
    ok(&e.post(&["a"]));
    ok(&e.post(&["b"]));
    ok(&e.post(&["-c", "dev", "c"]));
    ok(&e.read(&["--as", "york"]));
    let out = ok(&e
        .cmd("mt-channels")
        .args(["--as", "york", "--json"])
        .output()
        .unwrap());
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "dev");
    assert_eq!(rows[0]["records"], 1);
    assert_eq!(rows[0]["unread"], 1);
    assert_eq!(rows[1]["name"], "general");
    assert_eq!(rows[1]["records"], 2);
    assert_eq!(rows[1]["unread"], 0);
    assert!(rows[1]["last_activity"].as_str().unwrap().ends_with('Z'));
    let text = ok(&e.cmd("mt-channels").output().unwrap());
    assert!(text.starts_with("CHANNEL"), "{text}");
    assert!(text.contains("general"));
}

#[test]
fn cursor_survives_a_rewritten_segment_without_redelivery() {
    let e = Env::new();
    for i in 1..=4 {
        ok(&e.post(&[&format!("m{i}")]));
    }
    assert_eq!(
        seqs(&ok(&e.read(&["--as", "york", "--json"]))),
        [1, 2, 3, 4]
    );
    // Archive the segment and start a new one from seq 5, as retention would.
    let dir = e.seg_dir("general");
    ok(&e.post(&["--segment-bytes", "1", "m5"]));
    fs::remove_file(dir.join("00000000000000000001.jsonl")).unwrap();
    ok(&e.post(&["m6"]));
    assert_eq!(seqs(&ok(&e.read(&["--as", "york", "--json"]))), [5, 6]);
}

/// Post `n` records with --lines, `width` bytes of padding each, into
/// segments of about `segment` bytes.
fn post_many(e: &Env, chan: &str, n: usize, width: usize, segment: &str) {
    let mut c = e.cmd("mt-post");
    c.args(["--lines", "-c", chan])
        .env("MT_SEGMENT_BYTES", segment)
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
    let pad = "p".repeat(width);
    for i in 1..=n {
        writeln!(w, "m{i} {}", &pad[..i % (width + 1)]).unwrap();
    }
    drop(w);
    assert!(child.wait().unwrap().success());
}

/// The first seqs of a channel's segments, from their names.
fn segment_firsts(e: &Env, chan: &str) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(e.seg_dir(chan))
        .unwrap()
        .filter_map(|d| {
            let n = d.unwrap().file_name().to_string_lossy().into_owned();
            n.strip_suffix(".jsonl")?.parse().ok()
        })
        .collect();
    v.sort();
    v
}

/// Put `junk` in front of the line holding record `seq` in its segment (a
/// test may rewrite what a writer never would).
fn insert_before(e: &Env, chan: &str, seg: u64, seq: u64, junk: &str) {
    let path = e.seg_dir(chan).join(format!("{seg:020}.jsonl"));
    let text = fs::read_to_string(&path).unwrap();
    let at = text
        .find(&format!("{{\"seq\":{seq},"))
        .unwrap_or_else(|| panic!("no record {seq} in segment {seg}"));
    fs::write(&path, format!("{}{junk}{}", &text[..at], &text[at..])).unwrap();
}

fn since(e: &Env, chan: &str, n: u64) -> Vec<u64> {
    seqs(&ok(&e.read(&[
        "-c",
        chan,
        "--json",
        "--since",
        &n.to_string(),
    ])))
}

#[test]
fn since_starts_exactly_after_n_at_every_segment_boundary() {
    let e = Env::new();
    // Many small segments: every boundary is tried.
    post_many(&e, "small", 300, 40, "700");
    let firsts = segment_firsts(&e, "small");
    assert!(firsts.len() > 20, "{firsts:?}");
    let last = 300u64;
    let mut ns = vec![0, last - 1, last, last + 1, u64::MAX];
    for &f in &firsts {
        ns.extend([f - 1, f, f + 1]);
    }
    for n in ns {
        let want: Vec<u64> = (n.saturating_add(1)..=last).collect();
        assert_eq!(since(&e, "small", n), want, "--since {n}");
    }

    // Segments large enough to be searched, with malformed lines: at the
    // start of a segment, just before a boundary, amid records, and a
    // fragment left by a killed writer.
    post_many(&e, "big", 4000, 200, "120000");
    let firsts = segment_firsts(&e, "big");
    assert!(firsts.len() >= 4, "{firsts:?}");
    let last = 4000u64;
    for (i, &f) in firsts.iter().enumerate() {
        insert_before(&e, "big", f, f, "not json\n\n");
        if let Some(&next) = firsts.get(i + 1) {
            insert_before(&e, "big", f, next - 1, "{\"seq\":\n");
            insert_before(
                &e,
                "big",
                f,
                (f + next) / 2,
                "{\"seq\":9999,\"id\":\"torn\n",
            );
        }
    }
    let mut ns = vec![0, 1, 2, 777, 1999, 2000, last - 1, last, last + 1];
    for &f in &firsts {
        ns.extend([f.saturating_sub(2), f - 1, f, f + 1]);
    }
    ns.extend((0..last).step_by(97));
    for n in ns {
        let o = e.read(&["-c", "big", "--json", "--since", &n.to_string()]);
        let want: Vec<u64> = (n + 1..=last).collect();
        assert_eq!(seqs(&ok(&o)), want, "--since {n}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.lines().all(|l| l.contains("skipping a malformed line")),
            "{err}"
        );
    }
    // A full read still warns about every malformed line.
    let o = e.read(&["-c", "big", "--json", "--all"]);
    assert_eq!(seqs(&ok(&o)).len(), last as usize);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("skipping a malformed line").count(),
        firsts.len() + 2 * (firsts.len() - 1),
        "{err}"
    );
}

/// Peak resident memory of a finished child, in KiB, reaping it.
fn reap_max_rss_kib(child: std::process::Child) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: a plain wait4 on our own child, into local variables.
    let (pid, ru) = unsafe {
        let mut ru: nix::libc::rusage = std::mem::zeroed();
        let pid = nix::libc::wait4(child.id() as i32, &mut status, 0, &mut ru);
        (pid, ru)
    };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(nix::libc::WIFEXITED(status), "status {status}");
    (nix::libc::WEXITSTATUS(status), ru.ru_maxrss)
}

/// Set in the copy of this test binary that measures mt-post (see below).
const RSS_CHILD: &str = "MT_TEST_RSS_CHILD";
const STREAM_TEST: &str = "channel::post_lines_streams_a_million_lines_in_bounded_memory";

/// Feed `n` lines to `mt-post --lines` and print its peak RSS.
fn post_lines_and_measure(dir: &Path, n: usize) {
    let mut child = Command::new(bin("mt-post"))
        .env_clear()
        .env("MT_DIR", dir)
        .env("MT_FSYNC", "0")
        .args(["--lines", "--from", "bulk"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, child.stdin.take().unwrap());
    let pad = "q".repeat(180);
    for i in 0..n {
        writeln!(w, "message {i} {pad}").unwrap();
    }
    drop(w);
    let (code, kib) = reap_max_rss_kib(child);
    println!("mt-post exit {code} peak-rss-kib {kib}");
}

#[test]
fn post_lines_streams_a_million_lines_in_bounded_memory() {
    let n: usize = if std::env::var_os("MT_LONG_TESTS").is_some() {
        1_000_000
    } else {
        200_000
    };
    if let Some(dir) = std::env::var_os(RSS_CHILD) {
        return post_lines_and_measure(Path::new(&dir), n);
    }
    // A child's peak RSS counts the memory of the process that started it
    // (Linux carries it over exec), and this test process may be large:
    // mt-post is started by a fresh copy of this binary running this test.
    let e = Env::new();
    let o = Command::new(std::env::current_exe().unwrap())
        .args([STREAM_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(RSS_CHILD, &e.state)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let report = out
        .lines()
        .find_map(|l| l.split_once("mt-post exit ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report: {out}"));
    let (code, kib) = report.split_once(" peak-rss-kib ").unwrap();
    assert_eq!(code, "0", "{out}");
    let kib: i64 = kib.parse().unwrap();
    // A resource bound, not a speed bound: the input alone is 38 MB at the
    // default size, and 190 MB under MT_LONG_TESTS.
    assert!(kib < 64 << 10, "peak RSS {kib} KiB");

    let mut r = e
        .cmd("mt-read")
        .args(["--all", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut count = 0;
    for line in BufReader::new(r.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let seq = count + 1;
        assert!(
            line.starts_with(&format!("{{\"seq\":{seq},"))
                && line.contains(&format!(",\"content\":\"message {count} q")),
            "record {seq}: {line}"
        );
        count += 1;
    }
    assert!(r.wait().unwrap().success());
    assert_eq!(count, n);
    // The spool is gone.
    let left: Vec<_> = fs::read_dir(&e.state)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .filter(|n| n != "channels")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn post_lines_refuses_a_bad_line_after_a_large_input_and_writes_nothing() {
    let e = Env::new();
    ok(&e.post(&["before"]));
    // Past the part held in memory, so the input is spooled to a file.
    let mut input: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("line {i} {}\r\n", "r".repeat(40)).into_bytes())
        .collect();
    input.extend_from_slice(b"\n  \n");
    let post = |input: Vec<u8>| {
        let mut c = e.cmd("mt-post");
        c.args(["--lines", "--max-bytes", "60"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = thread::spawn(move || stdin.write_all(&input).unwrap());
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        o
    };
    for (last, what) in [
        (&b"\xff\xfe not utf-8\n"[..], "not valid UTF-8"),
        (&[b'y'; 61][..], "more than the limit of 60"),
    ] {
        let o = post([&input[..], last].concat());
        assert_eq!(o.status.code(), Some(65));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("line 40003 of the input") && err.contains(what),
            "{err}"
        );
    }
    assert_eq!(contents(&ok(&e.read(&["--all", "--json"]))), ["before"]);
    // The same input without the bad line: every line, without its CR.
    ok(&post(input));
    let all = contents(&ok(&e.read(&["--all", "--json"])));
    assert_eq!(all.len(), 40_001);
    assert_eq!(all[1], format!("line 0 {}", "r".repeat(40)));
    assert_eq!(all[40_000], format!("line 39999 {}", "r".repeat(40)));
}
