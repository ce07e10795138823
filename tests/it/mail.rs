//! mt-mail against real processes: concurrent senders, a competing writer
//! using Claude Code's lock-directory algorithm, held and stale locks, bad
//! inboxes and bad names.

use assert_cmd::Command;
use std::collections::HashMap;
use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

    fn inbox(&self, team: &str, agent: &str) -> PathBuf {
        self.claude()
            .join("teams")
            .join(team)
            .join("inboxes")
            .join(format!("{agent}.json"))
    }

    fn std(&self) -> Std {
        self.clean("mt-mail")
    }

    fn cmd(&self) -> Command {
        Command::from_std(self.std())
    }

    fn mail(&self, args: &[&str]) -> Command {
        let mut c = self.cmd();
        c.args(args);
        c
    }
}

fn parse(path: &Path) -> Vec<serde_json::Value> {
    let bytes = fs::read(path).unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not valid JSON ({e}):\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    })
}

fn texts(path: &Path) -> Vec<String> {
    parse(path)
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

fn set_mtime_ago(path: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t))
        .unwrap();
}

/// Claude Code's writer, as a separate process: exclusive create of `[]`,
/// `mkdir` lock with retries, read, append, write (temp file and rename),
/// `rmdir`. Appending is done on the text, as the file is pretty-printed
/// with the closing bracket on its own last line.
const CLAUDE_WRITER: &str = r#"
f=$1; n=$2
(set -C; printf '[]' > "$f") 2>/dev/null || :
i=1
while [ "$i" -le "$n" ]; do
  until mkdir "$f.lock" 2>/dev/null; do sleep 0.002; done
  msg=$(printf '{\n    "from": "cc",\n    "text": "cc-%d",\n    "timestamp": "2026-03-04T05:32:26.455Z",\n    "read": false,\n    "ccOnly": {"k": [1, 2]}\n  }' "$i")
  if [ "$(cat "$f")" = "[]" ]; then
    printf '[\n  %s\n]' "$msg" > "$f.cc-tmp"
  else
    body=$(sed '$d' "$f")
    printf '%s,\n  %s\n]' "$body" "$msg" > "$f.cc-tmp"
  fi
  mv "$f.cc-tmp" "$f"
  rmdir "$f.lock"
  i=$((i + 1))
done
"#;

#[test]
fn concurrent_senders_and_a_claude_code_writer_lose_nothing() {
    let env = Arc::new(Env::new());
    let inbox = env.inbox("demo", "york");
    fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    let (procs, per) = (8, 50);

    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    // A lock-free reader, as Claude Code's is: every version it sees parses.
    // One exception: Claude Code's writer creates the inbox (exclusively)
    // and then writes `[]` into it, so until the file first has content it
    // may be seen empty. Once it has had content, an empty file is a writer
    // that truncated it in place, and fails like any other invalid JSON.
    let watcher = {
        let (inbox, done, checks) = (inbox.clone(), done.clone(), checks.clone());
        thread::spawn(move || {
            let mut had_content = false;
            while !done.load(Ordering::Relaxed) {
                if let Ok(bytes) = fs::read(&inbox) {
                    if bytes.is_empty() && !had_content {
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    had_content = true;
                    let v: Result<Vec<serde_json::Value>, _> = serde_json::from_slice(&bytes);
                    assert!(
                        v.is_ok(),
                        "inbox was not valid JSON at some moment:\n{}",
                        String::from_utf8_lossy(&bytes)
                    );
                    checks.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let cc = Std::new("sh")
        .args(["-c", CLAUDE_WRITER, "cc"])
        .arg(&inbox)
        .arg(per.to_string())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let senders: Vec<_> = (0..procs)
        .map(|p| {
            let env = env.clone();
            thread::spawn(move || {
                for i in 0..per {
                    let out = env
                        .std()
                        .args(["send", "--team", "demo", "--to", "york", "--from"])
                        .arg(format!("p{p}"))
                        .arg(format!("p{p}-{i}"))
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "send failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let status = cc.wait_with_output().unwrap().status;
    assert!(status.success(), "competing writer failed");
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(checks.load(Ordering::Relaxed) > 0);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in texts(&inbox) {
        *seen.entry(t).or_default() += 1;
    }
    let mut want: Vec<String> = (0..procs)
        .flat_map(|p| (0..per).map(move |i| format!("p{p}-{i}")))
        .collect();
    want.extend((1..=per).map(|i| format!("cc-{i}")));
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w} should be present exactly once");
    }
    assert_eq!(seen.len(), want.len(), "no extra messages");
    // The other writer's fields survive our rewrites.
    let list = parse(&inbox);
    assert!(
        list.iter()
            .filter(|m| m["from"] == "cc")
            .all(|m| m["ccOnly"]["k"][1] == 2)
    );
    assert!(!PathBuf::from(format!("{}.lock", inbox.display())).exists());
}

#[test]
fn held_fresh_lock_makes_send_wait_then_fail_untouched() {
    let env = Env::new();
    env.mail(&["send", "--team", "demo", "--to", "york", "first"])
        .assert()
        .success();
    let inbox = env.inbox("demo", "york");
    let before = fs::read(&inbox).unwrap();
    let lock = PathBuf::from(format!("{}.lock", inbox.display()));
    fs::create_dir(&lock).unwrap();
    let out = env
        .mail(&[
            "send", "--team", "demo", "--to", "york", "--wait", "300ms", "second",
        ])
        .assert()
        .code(75)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("mt-mail: cannot lock inbox"), "{err}");
    assert!(err.contains("held by another writer"), "{err}");
    assert_eq!(fs::read(&inbox).unwrap(), before, "inbox untouched");
    assert!(lock.is_dir(), "another writer's lock is not removed");
    // MT_LOCK_WAIT sets the same bound.
    env.mail(&["send", "--team", "demo", "--to", "york", "third"])
        .env("MT_LOCK_WAIT", "100ms")
        .assert()
        .code(75);
    assert_eq!(fs::read(&inbox).unwrap(), before);
}

#[test]
fn stale_lock_is_broken_and_send_succeeds() {
    let env = Env::new();
    env.mail(&["send", "--team", "demo", "--to", "york", "first"])
        .assert()
        .success();
    let inbox = env.inbox("demo", "york");
    let lock = PathBuf::from(format!("{}.lock", inbox.display()));
    fs::create_dir(&lock).unwrap();
    set_mtime_ago(&lock, 11);
    env.mail(&[
        "send", "--team", "demo", "--to", "york", "--wait", "200ms", "second",
    ])
    .assert()
    .success();
    assert_eq!(texts(&inbox), ["first", "second"]);
    assert!(!lock.exists());
    let leftovers: Vec<_> = fs::read_dir(inbox.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["york.json"]);
}

#[test]
fn many_senders_break_one_stale_lock_safely() {
    let env = Arc::new(Env::new());
    env.mail(&["send", "--team", "demo", "--to", "york", "first"])
        .assert()
        .success();
    let inbox = env.inbox("demo", "york");
    let lock = PathBuf::from(format!("{}.lock", inbox.display()));
    fs::create_dir(&lock).unwrap();
    set_mtime_ago(&lock, 60);
    let gate = Arc::new(std::sync::Barrier::new(8));
    let senders: Vec<_> = (0..8)
        .map(|p| {
            let (env, gate) = (env.clone(), gate.clone());
            thread::spawn(move || {
                gate.wait();
                for i in 0..5 {
                    let out = env
                        .std()
                        .args(["send", "--team", "demo", "--to", "york"])
                        .arg(format!("s{p}-{i}"))
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let got = texts(&inbox);
    assert_eq!(got.len(), 41, "{got:?}");
    let unique: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 41);
    let names: Vec<String> = fs::read_dir(inbox.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["york.json"], "no lock or stale copy left behind");
}

#[test]
fn writes_claude_code_format_and_keeps_unknown_fields() {
    let env = Env::new();
    let inbox = env.inbox("demo", "york");
    fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    let old = r#"[
  {
    "from": "team-lead",
    "text": "{\"type\":\"idle_notification\",\"from\":\"x\"}",
    "timestamp": "2026-03-04T05:32:26.455Z",
    "read": true,
    "color": "blue",
    "futureField": {
      "nested": [
        1,
        "two"
      ]
    }
  }
]"#;
    fs::write(&inbox, old).unwrap();
    let out = env
        .mail(&[
            "send",
            "--team",
            "demo",
            "--to",
            "york",
            "--from",
            "lead",
            "--summary",
            "a short preview",
            "--color",
            "green",
            "--json",
            "hello",
            "\"world\"",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stored: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let ts = stored["timestamp"].as_str().unwrap().to_string();
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    let want = format!(
        "{},\n  {{\n    \"from\": \"lead\",\n    \"text\": \"hello \\\"world\\\"\",\n    \"timestamp\": \"{ts}\",\n    \"read\": false,\n    \"color\": \"green\",\n    \"summary\": \"a short preview\"\n  }}\n]",
        &old[..old.len() - 2]
    );
    assert_eq!(fs::read_to_string(&inbox).unwrap(), want);
}

#[test]
fn missing_inbox_is_created_and_stdin_is_the_message() {
    let env = Env::new();
    env.mail(&["send", "--team", "demo", "--to", "york"])
        .write_stdin("line one\nline two\n")
        .assert()
        .success()
        .stdout("");
    assert_eq!(texts(&env.inbox("demo", "york")), ["line one\nline two"]);
    env.mail(&["send", "--team", "demo", "--to", "york"])
        .write_stdin("  \n")
        .assert()
        .code(65)
        .stderr("mt-mail: refusing an empty message\n");
}

#[test]
fn unparsable_inbox_is_moved_aside_never_overwritten() {
    let env = Env::new();
    let inbox = env.inbox("demo", "york");
    fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    let bad = b"[{\"from\": \"lead\", \"text\": \"precious\"";
    fs::write(&inbox, bad).unwrap();
    let err = env
        .mail(&["read", "--team", "demo", "--as", "york"])
        .assert()
        .code(65)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("does not parse"));
    assert_eq!(fs::read(&inbox).unwrap(), bad, "a reader changes nothing");

    let out = env
        .mail(&["send", "--team", "demo", "--to", "york", "new"])
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    let asides: Vec<PathBuf> = fs::read_dir(inbox.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("york.json.corrupt-"))
        .collect();
    assert_eq!(asides.len(), 1, "{asides:?}");
    assert_eq!(fs::read(&asides[0]).unwrap(), bad, "nothing lost");
    assert!(
        err.contains("did not parse") && err.contains(&*asides[0].to_string_lossy()),
        "{err}"
    );
    assert_eq!(texts(&inbox), ["new"]);
}

#[test]
fn read_unread_and_mark_read() {
    let env = Env::new();
    for t in ["one", "two\nmore"] {
        env.mail(&[
            "send", "--team", "demo", "--to", "york", "--from", "park", t,
        ])
        .assert()
        .success();
    }
    let out = env
        .mail(&[
            "read",
            "--team",
            "demo",
            "--as",
            "york",
            "--unread",
            "--mark-read",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("* ") && lines[0].ends_with(" park: one"),
        "{out}"
    );
    assert_eq!(lines[2], "    more");
    assert!(
        parse(&env.inbox("demo", "york"))
            .iter()
            .all(|m| m["read"] == true)
    );
    env.mail(&["read", "--team", "demo", "--as", "york", "--unread", "-q"])
        .assert()
        .code(1);
    env.mail(&["read", "--team", "demo", "--as", "york", "--unread"])
        .assert()
        .success()
        .stdout("");
    env.mail(&["send", "--team", "demo", "--to", "york", "three"])
        .assert()
        .success();
    let out = env
        .mail(&["read", "--team", "demo", "--json"])
        .env("MT_AGENT", "york")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["read"], false);
    // A missing inbox reads as empty, and reading does not create it.
    env.mail(&["read", "--team", "demo", "--as", "nobody", "-q"])
        .assert()
        .code(1);
    env.mail(&["read", "--team", "other", "--as", "nobody", "--mark-read"])
        .assert()
        .success()
        .stdout("");
    assert!(!env.claude().join("teams/other").exists());
}

#[test]
fn bad_names_are_refused_before_any_file_is_touched() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["send", "--team", "../x", "--to", "york", "hi"],
        &["send", "--team", "demo", "--to", "../../etc/passwd", "hi"],
        &["send", "--team", "demo", "--to", "a/b", "hi"],
        &["send", "--team", "..", "--to", "york", "hi"],
        &["send", "--team", "demo", "--to", "york.json", "hi"],
        &["send", "--team", "", "--to", "york", "hi"],
        &[
            "send", "--team", "demo", "--to", "york", "--from", "bad name", "hi",
        ],
        &[
            "send", "--team", "demo", "--to", "york", "--color", "bl ue", "hi",
        ],
        &["read", "--team", "demo", "--as", "../york"],
        &["member", "--team", "demo", "../york"],
        &["members", "--team", "a b"],
    ];
    for args in cases {
        let out = env.mail(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            code == Some(65) || (args[2].is_empty() && code == Some(2)),
            "{args:?}: {code:?} {err}"
        );
        assert!(err.starts_with("mt-mail: "), "{args:?}: {err}");
    }
    let err = env
        .mail(&["send", "--team", "my team", "--to", "york", "hi"])
        .assert()
        .code(65)
        .get_output()
        .stderr
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&err),
        "mt-mail: invalid team name \"my team\": only A-Z a-z 0-9 _ - are allowed (Claude Code would store it as \"my-team\")\n"
    );
    env.mail(&["send", "--to", "york", "hi"]).assert().code(2);
    assert!(!env.claude().exists(), "nothing was created");
}

#[test]
fn members_are_added_updated_and_listed() {
    let env = Env::new();
    let cfg = env.claude().join("teams/demo/config.json");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(
        &cfg,
        r#"{"name":"demo","description":"d","createdAt":1,"leadAgentId":"team-lead@demo","custom":true,
            "members":[{"agentId":"team-lead@demo","name":"team-lead","agentType":"team-lead","isActive":true}]}"#,
    )
    .unwrap();
    env.mail(&["member", "--team", "demo", "york", "--model", "sonnet"])
        .assert()
        .success()
        .stdout("added york in team demo\n");
    env.mail(&[
        "member", "--team", "demo", "york", "--color", "blue", "--json",
    ])
    .assert()
    .success();
    let out = env
        .mail(&["members", "--team", "demo", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["isActive"], true);
    assert_eq!(rows[1]["agentId"], "york@demo");
    assert_eq!(
        (rows[1]["model"].as_str(), rows[1]["color"].as_str()),
        (Some("sonnet"), Some("blue"))
    );
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with("{\n  \"name\": \"demo\",\n"), "{text}");
    assert!(text.contains("\"custom\": true"));
    let out = env
        .mail(&["members", "--team", "demo"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("york "), "{out}");
}
