//! mt-read's selections by time and by thread: `--since DURATION|TIME`
//! and `--thread ID`, on channels written by mt-post and on segments
//! written here with chosen timestamps.

use crate::support::{Env, text};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

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

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Write a channel's segments directly: `records` as (seq, timestamp), in
/// segments of `per` records, with `junk` lines put after the record of
/// each seq it names.
fn write_channel(e: &Env, chan: &str, records: &[(u64, DateTime<Utc>)], per: usize, junk: &[u64]) {
    let dir = e.state.join("channels").join(chan);
    fs::create_dir_all(&dir).unwrap();
    for part in records.chunks(per) {
        let mut data = String::new();
        for &(seq, t) in part {
            let rec = json!({
                "seq": seq, "id": format!("R{seq}"), "timestamp": stamp(t),
                "from": "old", "type": "text", "content": format!("m{seq} {}", "p".repeat(120)),
                "channel": chan, "mentions": [],
            });
            data.push_str(&rec.to_string());
            data.push('\n');
            if junk.contains(&seq) {
                data.push_str("not json at all\n");
            }
        }
        fs::write(dir.join(format!("{:020}.jsonl", part[0].0)), data).unwrap();
    }
}

fn since(e: &Env, chan: &str, when: &str) -> (Vec<u64>, String) {
    let o = e.run("mt-read", &["-c", chan, "--json", "--since", when]);
    assert_eq!(o.status.code(), Some(0), "{when}: {}", text(&o.stderr));
    (seqs(&text(&o.stdout)), text(&o.stderr))
}

/// Records a minute apart, each 30 s off a whole minute back from now, so
/// that a whole number of minutes never falls on a record however long the
/// test takes (up to 30 s).
#[test]
fn since_a_duration_or_time_selects_by_timestamp_without_reading_older_segments() {
    let e = Env::new();
    let now = Utc::now();
    let n = 3000u64;
    let at = |seq: u64| now - chrono::Duration::seconds(30 + 60 * (n - seq) as i64);
    let mut records: Vec<(u64, DateTime<Utc>)> = (1..=n).map(|s| (s, at(s))).collect();
    // The clock went back after the last record: it is written 2 h ago,
    // the next 20 s ago.
    records.push((n + 1, now - chrono::Duration::hours(2)));
    records.push((n + 2, now - chrono::Duration::seconds(20)));
    // Malformed lines in the old segments, and early in the newest one: a
    // reader that went through them would warn.
    write_channel(&e, "c", &records, 751, &[10, 400, 760, 1600, 2256]);
    assert_eq!(
        fs::read_dir(e.state.join("channels/c")).unwrap().count(),
        4,
        "four segments"
    );

    // From the first record at or after the time, every record after it.
    for (when, minutes) in [("1h", 60), ("30m", 30), ("1h30m", 90), ("2d", 2880)] {
        let (got, err) = since(&e, "c", when);
        let want: Vec<u64> = (n + 1 - minutes..=n + 2).collect();
        assert_eq!(got, want, "--since {when}");
        // Only the malformed lines after the start are met.
        let after = [10, 400, 760, 1600, 2256]
            .iter()
            .filter(|&&j| j >= n + 1 - minutes)
            .count();
        assert_eq!(
            err.matches("skipping a malformed line").count(),
            after,
            "--since {when}: {err}"
        );
    }
    // Older than the channel: all of it (with the warnings a full read has).
    let (got, err) = since(&e, "c", "5d");
    assert_eq!(got, (1..=n + 2).collect::<Vec<_>>());
    assert_eq!(err.matches("skipping a malformed line").count(), 5, "{err}");
    // An RFC 3339 time, the time of a record included.
    let (got, _) = since(&e, "c", &stamp(at(2950)));
    assert_eq!(got, (2950..=n + 2).collect::<Vec<_>>());
    let (got, _) = since(
        &e,
        "c",
        &stamp(at(2950) + chrono::Duration::milliseconds(1)),
    );
    assert_eq!(got, (2951..=n + 2).collect::<Vec<_>>());
    // A bare number is still a seq.
    let (got, _) = since(&e, "c", "2990");
    assert_eq!(got, (2991..=n + 2).collect::<Vec<_>>());
    // In the future: nothing.
    assert_eq!(since(&e, "c", "2999-01-01T00:00:00Z").0, Vec::<u64>::new());
    let q = |when: &str| {
        e.run("mt-read", &["-c", "c", "-q", "--since", when])
            .status
            .code()
    };
    assert_eq!(q("1h"), Some(0));
    assert_eq!(q("2999-01-01T00:00:00Z"), Some(1));

    // New posts come after the start, and the text form selects alike.
    e.ok("mt-post", &["-c", "c", "fresh"]);
    assert_eq!(
        since(&e, "c", "30m").0,
        (n - 29..=n + 3).collect::<Vec<_>>()
    );
    let out = e.ok("mt-read", &["-c", "c", "--since", "30m"]);
    assert_eq!(out.lines().count(), 33, "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains(&format!("#{} old: m{}", n - 29, n - 29))
    );
    // A selection touches no cursor.
    e.ok("mt-read", &["-c", "c", "--as", "york", "--since", "1h"]);
    assert!(!e.state.join("cursors/york/c.json").exists());
}

#[test]
fn since_on_channels_written_by_mt_post() {
    let e = Env::new();
    let o = e.run("mt-read", &["--since", "1h"]);
    assert_eq!((o.status.code(), text(&o.stdout)), (Some(0), String::new()));
    for i in 1..=5 {
        e.ok("mt-post", &[&format!("m{i}")]);
    }
    assert_eq!(since(&e, "general", "1h").0, [1, 2, 3, 4, 5]);
    assert_eq!(since(&e, "general", "3").0, [4, 5]);
    assert_eq!(since(&e, "general", "0").0, [1, 2, 3, 4, 5]);
}

#[test]
fn since_refuses_what_is_neither_a_seq_a_duration_nor_a_time() {
    let e = Env::new();
    e.ok("mt-post", &["hi"]);
    for bad in [
        "1x",
        "yesterday",
        "1h30",
        "",
        "25:99",
        "1.5h",
        "99999999999999999999999",
    ] {
        let o = e.run("mt-read", &["--since", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("is not a seq (42), a duration (90s, 30m, 2h, 1d) or a time")
                || err.contains("is too large"),
            "{bad:?}: {err}"
        );
        assert!(o.stdout.is_empty());
    }
}

/// Post as `from`, answering `reply_to` when given; the stored record.
fn post(e: &Env, chan: &str, msg: &str, reply_to: Option<&str>) -> Value {
    let mut args = vec!["-c", chan, "--json", msg];
    if let Some(r) = reply_to {
        args.extend(["--reply-to", r]);
    }
    json_lines(&e.ok("mt-post", &args)).remove(0)
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[test]
fn thread_shows_exactly_the_record_and_its_replies() {
    let e = Env::new();
    let a = post(&e, "general", "question a", None);
    post(&e, "general", "unrelated", None);
    let b = post(&e, "general", "answer to a", Some(id(&a)));
    let c = post(&e, "general", "question c", None);
    let d = post(&e, "general", "answer to c", Some(id(&c)));
    post(&e, "general", "answer to the answer to a", Some(id(&b)));
    post(
        &e,
        "general",
        "answer to nothing",
        Some("01NOTANIDATALL0000000000XX"),
    );
    post(&e, "general", "second answer to a", Some(id(&a)));
    post(&e, "general", "answer to the answer to c", Some(id(&d)));
    post(&e, "dev", "an answer to a elsewhere", Some(id(&a)));

    let thread = |args: &[&str]| seqs(&e.ok("mt-read", &[&["--json"], args].concat()));
    assert_eq!(thread(&["--thread", id(&a)]), [1, 3, 6, 8]);
    assert_eq!(thread(&["--thread", "1"]), [1, 3, 6, 8], "by seq");
    assert_eq!(thread(&["--thread", id(&b)]), [3, 6]);
    assert_eq!(thread(&["--thread", id(&c)]), [4, 5, 9]);
    assert_eq!(thread(&["--thread", "7"]), [7]);
    // The text form, and no cursor.
    let out = e.ok("mt-read", &["--as", "york", "--thread", id(&c)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].ends_with("#4 lead: question c"), "{out}");
    assert!(
        lines[2].ends_with("#9 lead: answer to the answer to c"),
        "{out}"
    );
    assert!(!e.state.join("cursors").exists());
    // -q: is there such a thread.
    let q = |args: &[&str]| {
        let o = e.run("mt-read", &[&["-q"], args].concat());
        assert!(o.stdout.is_empty() && o.stderr.is_empty());
        o.status.code()
    };
    assert_eq!(q(&["--thread", id(&a)]), Some(0));
    assert_eq!(q(&["--thread", "99"]), Some(1));
}

#[test]
fn thread_of_a_missing_or_bad_id_is_an_error() {
    let e = Env::new();
    let a = post(&e, "general", "question", None);
    let missing = |args: &[&str], what: &str| {
        let o = e.run("mt-read", args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&o.stderr), format!("mt-read: no record with {what}\n"));
        assert!(o.stdout.is_empty());
    };
    let other = "01M7ZW3QYZXVHP102D51VXHDA4";
    missing(
        &["--thread", other],
        &format!("id {other} on channel general"),
    );
    missing(&["--thread", "2"], "seq 2 on channel general");
    missing(
        &["-c", "dev", "--thread", id(&a)],
        &format!("id {} on channel dev", id(&a)),
    );
    assert!(!e.state.join("channels/dev").exists(), "nothing created");
    for bad in ["a b", "x\u{1b}[2J", ""] {
        let o = e.run("mt-read", &["--thread", bad]);
        assert_eq!(o.status.code(), Some(65), "{bad:?}");
        assert!(text(&o.stderr).starts_with("mt-read: invalid --thread id"));
    }
    // One selection at a time.
    let o = e.run("mt-read", &["--thread", id(&a), "--since", "1h"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A root whose id says a time later than where it is stored (a clock
/// went back, or another tool made the id) is still found.
#[test]
fn thread_finds_a_root_its_id_time_does_not_place() {
    let e = Env::new();
    let t = Utc::now() - chrono::Duration::days(1);
    write_channel(&e, "odd", &[(1, t), (2, t)], 10, &[]);
    // Record 1's id carries the latest time an id can hold.
    let root = "7ZZZZZZZZZ0000000000000000";
    let path = e.state.join("channels/odd/00000000000000000001.jsonl");
    let data = fs::read_to_string(&path)
        .unwrap()
        .replace("\"R1\"", &format!("\"{root}\""));
    fs::write(&path, data).unwrap();
    post(&e, "odd", "late answer", Some(root));
    assert_eq!(
        seqs(&e.ok("mt-read", &["-c", "odd", "--json", "--thread", root])),
        [1, 3]
    );
}

/// The root is found from the time its id carries, without reading the
/// segments before it; a follower prints later replies as they come.
#[test]
fn thread_starts_at_its_root_and_follows_new_replies() {
    let e = Env::new();
    let mut c = e.cmd("mt-post");
    c.args(["--lines", "--segment-bytes", "20000"])
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let body: String = (0..2000).map(|i| format!("filler {i}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    // Time moves on past the filler's last millisecond before the root.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let root = post(&e, "general", "root", None);
    let r1 = post(&e, "general", "first answer", Some(id(&root)));
    // A malformed line in the first segment: reading it would warn.
    let first = e.state.join("channels/general/00000000000000000001.jsonl");
    let mut f = fs::OpenOptions::new().append(true).open(&first).unwrap();
    f.write_all(b"garbage\n").unwrap();
    drop(f);
    let o = e.run("mt-read", &["--json", "--thread", id(&root)]);
    assert_eq!(seqs(&text(&o.stdout)), [2001, 2002]);
    assert_eq!(text(&o.stderr), "", "no segment before the root was read");

    let mut follower = e
        .cmd("mt-read")
        .args(["--json", "--follow", "--thread", id(&root)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive through a thread, so a missing one fails the test
    // instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let _ = tx.send(l.unwrap());
        }
    });
    let next = || {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the follower printed the record");
        json_lines(&line).remove(0)["seq"].clone()
    };
    assert_eq!(next(), 2001);
    assert_eq!(next(), 2002);
    post(&e, "general", "unrelated", None);
    post(&e, "general", "answer to the answer", Some(id(&r1)));
    assert_eq!(next(), 2004, "only the reply");
    follower.kill().unwrap();
    follower.wait().unwrap();
}
