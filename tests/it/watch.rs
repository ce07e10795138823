//! mt-watch, driven as a real process over temporary directories.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::support::{PATIENCE, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The shared scratch environment, with this area's verbs; `repo` is
/// the working directory, which holds the rules.
struct Env(crate::support::Env);

impl std::ops::Deref for Env {
    type Target = crate::support::Env;
    fn deref(&self) -> &crate::support::Env {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        let e = crate::support::Env::new();
        fs::create_dir(e.claude()).unwrap();
        Env(e)
    }

    fn work(&self) -> PathBuf {
        self.repo.clone()
    }

    fn mt(&self) -> PathBuf {
        self.state.clone()
    }

    fn cmd(&self, bin: &str) -> Command {
        let mut c = self.clean(bin);
        c.current_dir(self.work()).env("TZ", "UTC");
        c
    }

    /// Write `work/rules` whole (by rename), as a careful editor does.
    fn rules(&self, text: &str) -> PathBuf {
        let p = self.work().join("rules");
        let tmp = self.work().join(".rules.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &p).unwrap();
        p
    }

    /// Start a long-running watcher on `work/rules`.
    fn watch(&self, extra: &[&str]) -> Watcher {
        let child = self
            .cmd("mt-watch")
            .args(["--rules", "rules"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Watcher { child }
    }

    fn once(&self, envs: &[(&str, &str)]) -> std::process::Output {
        let out = self
            .cmd("mt-watch")
            .args(["--rules", "rules", "--once"])
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn post(&self, msg: &str) {
        let st = self.cmd("mt-post").arg(msg).status().unwrap();
        assert!(st.success());
    }

    fn lines(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.work().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn state(&self) -> serde_json::Value {
        let t = fs::read_to_string(self.mt().join("watch/state.json")).unwrap_or_default();
        serde_json::from_str(&t).unwrap_or(serde_json::Value::Null)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.mt().join("watch/log")).unwrap_or_default()
    }

    /// Every record of a channel, parsed.
    fn records(&self, channel: &str) -> Vec<serde_json::Value> {
        let dir = self.mt().join("channels").join(channel);
        let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        segs.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
        segs.sort();
        segs.iter()
            .flat_map(|p| {
                fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

struct Watcher {
    child: Child,
}

impl Watcher {
    /// Stop with SIGTERM and return (status, stderr).
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    e.read_to_string(&mut err).unwrap();
                }
                return (st, err);
            }
            assert!(
                start.elapsed() < PATIENCE,
                "watcher did not stop on SIGTERM"
            );
            sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn interval_rule_runs_again_and_again() {
    let e = Env::new();
    e.rules("name=tick @every 100ms echo \"$MT_RULE\" >> tick.out\n");
    let w = e.watch(&[]);
    wait_for("three runs", || e.lines("tick.out").len() >= 3);
    let (st, err) = w.stop();
    assert!(st.success(), "{err}");
    assert!(e.lines("tick.out").iter().all(|l| l == "tick"));
    assert!(e.state()["rules"]["tick"]["runs"].as_u64().unwrap() >= 3);
}

#[test]
fn cron_rule_runs_once_per_passed_slot() {
    let e = Env::new();
    let rule = "*/5 * * * * echo cron >> cron.out";
    e.rules(&format!("name=c {rule}\n"));
    // First seen: waits for its next slot, runs nothing.
    e.once(&[("MT_WATCH_NOW", "2026-03-02T10:01:00Z")]);
    assert_eq!(e.lines("cron.out").len(), 0);
    e.once(&[("MT_WATCH_NOW", "2026-03-02T10:04:59Z")]);
    assert_eq!(e.lines("cron.out").len(), 0);
    // The 10:05 slot (in any whole-hour time zone) has passed: one run, not one per
    // missed slot.
    e.once(&[("MT_WATCH_NOW", "2026-03-02T10:22:00Z")]);
    assert_eq!(e.lines("cron.out").len(), 1);
    e.once(&[("MT_WATCH_NOW", "2026-03-02T10:24:00Z")]);
    assert_eq!(e.lines("cron.out").len(), 1);
    e.once(&[("MT_WATCH_NOW", "2026-03-02T10:25:00Z")]);
    assert_eq!(e.lines("cron.out").len(), 2);
}

#[test]
fn cron_rule_with_a_passed_slot_runs_in_the_long_running_watcher() {
    let e = Env::new();
    let rule = "0 0 1 1 * echo cron >> cron.out";
    fs::create_dir_all(e.mt().join("watch")).unwrap();
    let state =
        serde_json::json!({"rules": {"c": {"rule": rule, "since": "2000-01-01T00:00:00.000Z"}}});
    fs::write(e.mt().join("watch/state.json"), state.to_string()).unwrap();
    e.rules(&format!("name=c {rule}\n"));
    let w = e.watch(&[]);
    wait_for("the cron run", || e.lines("cron.out").len() == 1);
    w.stop();
    assert_eq!(e.state()["rules"]["c"]["runs"], 1);
}

#[test]
fn change_of_a_file_runs_the_rule() {
    let e = Env::new();
    e.rules("name=f @change watched.txt echo \"$MT_CHANGED\" >> f.out\n");
    let w = e.watch(&[]);
    // A change rule runs once when first seen (the target is still missing).
    wait_for("the first run", || !e.lines("f.out").is_empty());
    // A change may be seen in steps (created, then written): at least one
    // more run each time.
    let n = e.lines("f.out").len();
    fs::write(e.work().join("watched.txt"), "1").unwrap();
    wait_for("a run after creation", || e.lines("f.out").len() > n);
    let n = e.lines("f.out").len();
    fs::write(e.work().join("watched.txt"), "22").unwrap();
    wait_for("a run after a write", || e.lines("f.out").len() > n);
    w.stop();
    let want = fs::canonicalize(e.work()).unwrap().join("watched.txt");
    assert_eq!(
        e.lines("f.out").last().unwrap(),
        &want.display().to_string()
    );
}

#[test]
fn change_in_a_directory_runs_the_rule() {
    let e = Env::new();
    fs::create_dir(e.work().join("inbox")).unwrap();
    e.rules("name=d @change inbox echo run >> d.out\n");
    let w = e.watch(&[]);
    wait_for("the first run", || !e.lines("d.out").is_empty());
    let n = e.lines("d.out").len();
    fs::write(e.work().join("inbox/a"), "1").unwrap();
    wait_for("a run for a new entry", || e.lines("d.out").len() > n);
    let n = e.lines("d.out").len();
    fs::remove_file(e.work().join("inbox/a")).unwrap();
    wait_for("a run for a removed entry", || e.lines("d.out").len() > n);
    w.stop();
}

#[test]
fn post_on_a_channel_runs_the_rule() {
    let e = Env::new();
    e.rules("name=route @change channel:general echo \"$MT_CHANGED\" >> ch.out\n");
    let w = e.watch(&[]);
    wait_for("the first run", || !e.lines("ch.out").is_empty());
    let n = e.lines("ch.out").len();
    e.post("hello @york");
    wait_for("a run after the post", || e.lines("ch.out").len() > n);
    let n = e.lines("ch.out").len();
    e.post("again");
    wait_for("a run after the second post", || {
        e.lines("ch.out").len() > n
    });
    w.stop();
    assert_eq!(e.lines("ch.out").last().unwrap(), "channel:general");
}

#[test]
fn task_list_change_runs_the_rule() {
    let e = Env::new();
    e.rules("name=t @change tasks echo \"$MT_CHANGED\" >> t.out\n");
    let child = e
        .cmd("mt-watch")
        .args(["--rules", "rules"])
        .env("CLAUDE_CODE_TASK_LIST_ID", "team")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let w = Watcher { child };
    wait_for("the first run", || !e.lines("t.out").is_empty());
    // The list directory does not exist yet: its creation is seen too.
    let dir = e.claude().join("tasks/team");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("1.json"), r#"{"id":"1","status":"pending"}"#).unwrap();
    wait_for("a run for the new task", || e.lines("t.out").len() >= 2);
    let n = e.lines("t.out").len();
    fs::write(dir.join("1.json"), r#"{"id":"1","status":"completed"}"#).unwrap();
    wait_for("a run for the update", || e.lines("t.out").len() > n);
    w.stop();
    assert_eq!(e.lines("t.out")[1], "tasks:team");
}

#[test]
fn once_runs_each_due_rule_once() {
    let e = Env::new();
    fs::write(e.work().join("f.txt"), "1").unwrap();
    let cron = "0 0 1 1 * echo y >> cron.out";
    fs::create_dir_all(e.mt().join("watch")).unwrap();
    let state =
        serde_json::json!({"rules": {"y": {"rule": cron, "since": "2000-01-01T00:00:00.000Z"}}});
    fs::write(e.mt().join("watch/state.json"), state.to_string()).unwrap();
    e.rules(&format!(
        "name=i @every 1h echo i >> i.out\n\
         name=f @change f.txt echo f >> f.out\n\
         name=ch @change channel:general echo ch >> ch.out\n\
         name=y {cron}\n"
    ));
    let t0 = [("MT_WATCH_NOW", "2026-03-02T10:00:00Z")];
    e.post("before");
    e.once(&t0);
    for f in ["i.out", "f.out", "ch.out", "cron.out"] {
        assert_eq!(e.lines(f).len(), 1, "{f}");
    }
    // Nothing is due any more.
    e.once(&t0);
    for f in ["i.out", "f.out", "ch.out", "cron.out"] {
        assert_eq!(e.lines(f).len(), 1, "{f}");
    }
    // Only what changed runs.
    fs::write(e.work().join("f.txt"), "22").unwrap();
    e.post("after");
    e.once(&t0);
    assert_eq!(e.lines("f.out").len(), 2);
    assert_eq!(e.lines("ch.out").len(), 2);
    assert_eq!(e.lines("i.out").len(), 1);
    assert_eq!(e.lines("cron.out").len(), 1);
    // An hour later the interval rule is due again.
    e.once(&[("MT_WATCH_NOW", "2026-03-02T11:01:00Z")]);
    assert_eq!(e.lines("i.out").len(), 2);
    assert_eq!(e.lines("f.out").len(), 2);
}

#[test]
fn only_one_watcher_per_state_directory() {
    let e = Env::new();
    e.rules("name=i @every 1h echo i >> i.out\n");
    let w = e.watch(&[]);
    wait_for("the first watcher to run", || e.lines("i.out").len() == 1);
    for extra in [&[][..], &["--once"][..]] {
        let out = e
            .cmd("mt-watch")
            .args(["--rules", "rules"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(75), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains(&format!("pid {}", w.child.id())), "{err}");
    }
    assert_eq!(e.lines("i.out").len(), 1, "the second watcher ran nothing");
    w.stop();
}

#[test]
fn a_running_rule_is_not_started_again() {
    let e = Env::new();
    // The mkdir fails if two runs overlap.
    e.rules(
        "name=slow @every 50ms mkdir busy || echo overlap >> bad.out; echo run >> runs.out; sleep 0.4; rmdir busy\n\
         name=slowch @change channel:general mkdir busy2 || echo overlap >> bad.out; echo run >> ch.out; sleep 0.4; rmdir busy2\n",
    );
    let w = e.watch(&[]);
    wait_for("the first change run", || !e.lines("ch.out").is_empty());
    let n = e.lines("ch.out").len();
    e.post("one");
    e.post("two");
    wait_for("two slow runs", || e.lines("runs.out").len() >= 2);
    wait_for("a skipped interval run", || {
        e.state()["rules"]["slow"]["skipped"].as_u64().unwrap_or(0) >= 1
    });
    // Changes made during a run run the rule once more after it.
    wait_for("the change run after the busy one", || {
        e.lines("ch.out").len() > n
    });
    w.stop();
    assert!(e.lines("bad.out").is_empty(), "runs overlapped");
    assert!(e.log().contains("slow: still running; this run is skipped"));
}

#[test]
fn without_notifications_a_change_is_seen_at_the_next_rescan() {
    let e = Env::new();
    e.rules(
        "name=f @change f.txt echo f >> f.out\nname=ch @change channel:general echo ch >> ch.out\n",
    );
    let w = e.watch(&["--no-notify", "--rescan", "200ms"]);
    wait_for("the first runs", || {
        !e.lines("f.out").is_empty() && !e.lines("ch.out").is_empty()
    });
    let (f, ch) = (e.lines("f.out").len(), e.lines("ch.out").len());
    fs::write(e.work().join("f.txt"), "x").unwrap();
    e.post("hi");
    wait_for("the rescan to see both changes", || {
        e.lines("f.out").len() > f && e.lines("ch.out").len() > ch
    });
    w.stop();
}

#[test]
fn a_failing_command_posts_one_error_record_per_streak() {
    let e = Env::new();
    e.rules("name=bad @every 50ms echo broken; exit 3\n");
    let w = e.watch(&["--channel", "ops"]);
    wait_for("three failures", || {
        e.state()["rules"]["bad"]["failures"].as_u64().unwrap_or(0) >= 3
    });
    w.stop();
    let recs = e.records("ops");
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["type"], "error");
    assert_eq!(r["from"], "mt-watch");
    assert_eq!(r["meta"]["rule"], "bad");
    assert_eq!(r["meta"]["exit"], 3);
    assert!(r["content"].as_str().unwrap().contains("broken"));
    assert!(e.log().contains("bad: broken"));
    assert!(e.log().contains("bad: exit 3"));
}

#[test]
fn commands_get_the_mt_environment_and_run_at_the_repository_top() {
    let e = Env::new();
    fs::create_dir(e.work().join(".git")).unwrap();
    fs::create_dir(e.work().join("sub")).unwrap();
    fs::write(
        e.work().join("sub/rules"),
        "name=env @every 1h pwd > env.out; echo \"$MT_RULE|$MT_DIR|$MT_CHANNEL|$MT_CHANGED|\" >> env.out\n",
    )
    .unwrap();
    let out = e
        .cmd("mt-watch")
        .current_dir(e.work().join("sub"))
        .args(["--rules", "rules", "--once", "-c", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = e.lines("env.out");
    assert_eq!(
        lines[0],
        fs::canonicalize(e.work()).unwrap().display().to_string()
    );
    let mt = fs::canonicalize(e.mt()).unwrap();
    assert_eq!(lines[1], format!("env|{}|dev||", mt.display()));
}

#[test]
fn bad_rules_are_refused_with_line_numbers() {
    let e = Env::new();
    e.rules("# ok\n@every 1s true\n@every soon x\n* * * true\n@change tasks:a.b x\n");
    let out = e
        .cmd("mt-watch")
        .args(["--rules", "rules", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    for n in [3, 4, 5] {
        assert!(err.contains(&format!("rules:{n}: ")), "line {n}: {err}");
    }
    assert!(!err.contains("rules:2:"), "{err}");
    let out = e
        .cmd("mt-watch")
        .args(["--rules", "missing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
}

#[test]
fn init_writes_default_rules_once() {
    let e = Env::new();
    let out = e.cmd("mt-watch").arg("--init").output().unwrap();
    assert!(out.status.success());
    let path = e.mt().join("watch/rules");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        path.display().to_string()
    );
    fs::write(&path, "# mine\n").unwrap();
    let out = e.cmd("mt-watch").arg("--init").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\n");
    // The default rules are valid and run as they are.
    fs::remove_file(&path).unwrap();
    e.cmd("mt-watch").arg("--init").output().unwrap();
    let out = e.cmd("mt-watch").arg("--dry-run").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("mt-remind check"));
}

#[test]
fn dry_run_runs_nothing() {
    let e = Env::new();
    e.rules("name=i @every 1s echo i >> i.out\nname=c 0 0 1 1 * echo c >> c.out\n");
    let out = e
        .cmd("mt-watch")
        .args(["--rules", "rules", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("run   i  (first run)  echo i >> i.out"),
        "{text}"
    );
    assert!(text.contains("wait  c  (next "), "{text}");
    assert!(e.lines("i.out").is_empty());
    assert!(!e.mt().join("watch/state.json").exists());
}

#[test]
fn rules_are_reloaded_when_the_file_changes() {
    let e = Env::new();
    e.rules("name=a @every 1h echo a >> a.out\n");
    let w = e.watch(&[]);
    wait_for("rule a", || e.lines("a.out").len() == 1);
    e.rules("name=a @every 1h echo a >> a.out\nname=b @every 1h echo b >> b.out\n");
    wait_for("the new rule b", || e.lines("b.out").len() == 1);
    // A broken file keeps the old rules and says so.
    e.rules("@every never x\n");
    wait_for("the reload error", || {
        e.log().contains("rules not reloaded")
    });
    w.stop();
    assert_eq!(e.lines("a.out").len(), 1);
    let recs = e.records("general");
    assert!(recs.iter().any(|r| r["type"] == "error"));
}

#[test]
fn sigterm_stops_running_commands() {
    let e = Env::new();
    e.rules("name=long @every 1h echo started >> l.out; sleep 60; echo finished >> l.out\n");
    let w = e.watch(&[]);
    wait_for("the long command", || e.lines("l.out").len() == 1);
    let (st, err) = w.stop();
    assert!(st.success(), "{err}");
    assert_eq!(e.lines("l.out"), ["started"]);
    assert_eq!(e.state()["rules"]["long"]["last_exit"], 128 + 15);
}

#[test]
fn watcher_runs_reminder_checks() {
    let e = Env::new();
    let out = e
        .cmd("mt-remind")
        .args(["add", "--at", "2000-01-01T00:00:00Z", "stand-up"])
        .output()
        .unwrap();
    assert!(out.status.success());
    e.rules("name=remind @every 100ms mt-remind check\n");
    let w = e.watch(&[]);
    wait_for("the reminder record", || {
        e.records("general")
            .iter()
            .any(|r| r["from"] == "mt-remind")
    });
    wait_for("several checks", || {
        e.state()["rules"]["remind"]["runs"].as_u64().unwrap_or(0) >= 3
    });
    w.stop();
    let n = e
        .records("general")
        .iter()
        .filter(|r| r["from"] == "mt-remind")
        .count();
    assert_eq!(n, 1);
}

/// Every mt-watch invocation in share/ (units, cron lines, launchd) uses
/// flags the real binary accepts, and the example rules parse.
#[test]
fn packaging_uses_real_flags() {
    let e = Env::new();
    e.rules("name=i @every 1h true\n");
    let share = crate::support::repo().join("share");
    let mut invocations: Vec<Vec<String>> = Vec::new();
    for f in [
        "systemd/mt-watch.service",
        "systemd/mt-watch-once.service",
        "cron/mt-watch",
    ] {
        let text = fs::read_to_string(share.join(f)).unwrap();
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            let Some(pos) = line.find("mt-watch") else {
                continue;
            };
            if line.starts_with("ExecStart=") || line.contains("&& ") {
                let args: Vec<String> = line[pos + "mt-watch".len()..]
                    .split_whitespace()
                    .take_while(|w| w.starts_with("--"))
                    .map(str::to_string)
                    .collect();
                invocations.push(args);
            }
        }
    }
    assert!(invocations.len() >= 4, "{invocations:?}");
    assert!(invocations.iter().any(|a| a == &["--once"]));
    for args in invocations {
        let out = e
            .cmd("mt-watch")
            .args(&args)
            .args(["--rules", "rules", "--dry-run"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let plist = fs::read_to_string(share.join("launchd/org.mt.watch.plist")).unwrap();
    assert!(plist.contains("<string>/usr/local/bin/mt-watch</string>"));
    let example = share.join("examples/rules");
    let out = e
        .cmd("mt-watch")
        .args(["--dry-run", "--rules"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
