//! The security pass: symlinks planted in the state directory, a team
//! inbox or a task list never redirect a write; names arriving in JSON are
//! checked like command-line names; message content never reaches a shell;
//! everything mt creates is private whatever the umask; a state directory
//! of another user is refused by every writer.

use crate::support::{bin_dir, repo, tool, walk, with_umask};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The shared scratch environment, with a secret outside the state
/// directory and this area's verbs.
struct Env(crate::support::Env);

impl Env {
    fn new() -> Env {
        let e = crate::support::Env::new();
        fs::create_dir(e.root.join("outside")).unwrap();
        fs::write(e.root.join("outside/secret"), "secret\n").unwrap();
        Env(e)
    }

    fn root(&self) -> &Path {
        &self.0.root
    }

    fn state(&self) -> PathBuf {
        self.root().join("state")
    }

    fn claude(&self) -> PathBuf {
        self.root().join("claude")
    }

    fn outside(&self) -> PathBuf {
        self.root().join("outside")
    }

    fn cmd(&self, name: &str, args: &[&str]) -> Command {
        let mut c = tool(name, self.root());
        c.args(args)
            .env("CLAUDE_CODE_TASK_LIST_ID", "demo")
            .env("MT_TEAM", "t");
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name, args).output().unwrap()
    }

    fn run_in(&self, name: &str, args: &[&str], input: &str) -> Output {
        let mut c = self.cmd(name, args);
        feed(&mut c, input.as_bytes())
    }

    fn ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.run(name, args);
        assert!(
            o.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Plant a symlink at `at` (inside the state or Claude directory)
    /// pointing at `to`.
    fn link(&self, at: &Path, to: &Path) {
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        if fs::symlink_metadata(at).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(at).unwrap();
        } else {
            let _ = fs::remove_file(at);
        }
        symlink(to, at).unwrap();
    }

    /// The outside directory holds exactly what the test put there.
    fn outside_untouched(&self, what: &str) {
        let got: Vec<String> = walk(&self.outside())
            .iter()
            .map(|p| {
                p.strip_prefix(self.outside())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        let mut want = vec!["secret".to_string()];
        for sub in ["inbox", "inbox/new", "inbox/tmp", "new"] {
            if self.outside().join(sub).exists() {
                want.push(sub.to_string());
            }
        }
        let mut got_sorted = got.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(got_sorted, want, "{what}: something was written outside");
        assert_eq!(
            fs::read_to_string(self.outside().join("secret")).unwrap(),
            "secret\n",
            "{what}: the file behind a symlink was changed"
        );
    }
}

fn feed(c: &mut Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// Run with a deadline: a FIFO must never make mt wait forever.
fn run_bounded(mut c: Command) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > give_up {
            child.kill().unwrap();
            panic!("{c:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// Symlinks in the state directory

/// A directory of the state directory replaced by a symlink to somewhere
/// else: the command that would write in it refuses (73), and nothing
/// appears at the symlink's target.
#[test]
fn symlinked_state_directories_are_refused() {
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("channels", "mt-post", &["hi"], ""),
        ("channels/general", "mt-post", &["hi"], ""),
        ("cursors", "mt-read", &["--as", "york"], ""),
        ("cursors/york", "mt-read", &["--as", "york"], ""),
        ("cursors/york", "mt-hook", &["stop", "--as", "york"], "{}"),
        (
            "cursors/york",
            "mt-hook",
            &["user-prompt-submit", "--as", "york"],
            "{}",
        ),
        ("watch", "mt-watch", &["--once", "--rules", "rules"], ""),
        ("reminders", "mt-remind", &["add", "--after", "1m", "x"], ""),
        (
            "reminders/pending",
            "mt-remind",
            &["add", "--after", "1m", "x"],
            "",
        ),
    ];
    for (at, tool, args, input) in cases {
        let e = Env::new();
        fs::write(e.root().join("rules"), "@every 1h true\n").unwrap();
        e.ok("mt-post", &["--from", "park", "first"]);
        if at.starts_with("channels") {
            // Nothing of the channel is left to reuse.
            fs::remove_dir_all(e.state().join("channels")).unwrap();
            fs::create_dir(e.state().join("channels")).unwrap();
        }
        if at.starts_with("reminders/") {
            e.ok("mt-remind", &["add", "--after", "1m", "first"]);
        }
        e.link(&e.state().join(at), &e.outside());
        let o = e.run_in(tool, args, input);
        assert!(!o.status.success(), "{at} / {tool}: accepted a symlink");
        if *tool != "mt-hook" {
            assert_eq!(o.status.code(), Some(73), "{at} / {tool}: {}", err(&o));
        }
        e.outside_untouched(&format!("{at} / {tool}"));
    }
}

/// A file of the state directory replaced by a symlink: replaced files get
/// a fresh file in the symlink's place, appended or locked ones are
/// refused, read ones are refused or ignored. The target never changes.
#[test]
fn symlinked_state_files_are_never_written_through() {
    let secret = |e: &Env| e.outside().join("secret");
    let seg = "channels/general/00000000000000000001.jsonl";
    let cases: &[(&str, &str, &[&str], &str, bool)] = &[
        // (file, tool, args, stdin, replaced by a real file afterwards)
        (
            "cursors/york/general.json",
            "mt-read",
            &["--as", "york"],
            "",
            false,
        ),
        (
            "cursors/york/general.stop",
            "mt-hook",
            &["stop", "--as", "york"],
            "{}",
            true,
        ),
        ("channels/general/LOCK", "mt-post", &["hi"], "", false),
        (seg, "mt-post", &["hi"], "", false),
        (
            "watch/state.json",
            "mt-watch",
            &["--once", "--rules", "rules"],
            "",
            false,
        ),
        (
            "watch/log",
            "mt-watch",
            &["--once", "--rules", "rules"],
            "",
            false,
        ),
        (
            "watch/LOCK",
            "mt-watch",
            &["--once", "--rules", "rules"],
            "",
            false,
        ),
        (
            "reminders/last-id",
            "mt-remind",
            &["add", "--after", "1m", "x"],
            "",
            true,
        ),
    ];
    for (file, tool, args, input, replaced) in cases {
        let e = Env::new();
        fs::write(e.root().join("rules"), "@every 1h echo hi\n").unwrap();
        e.ok("mt-post", &["--from", "park", "@york first"]);
        e.ok("mt-read", &["--as", "york", "--peek"]);
        e.ok("mt-watch", &["--once", "--rules", "rules"]);
        e.ok("mt-remind", &["add", "--after", "1m", "first"]);
        fs::create_dir_all(e.state().join("cursors/york")).unwrap();
        let at = e.state().join(file);
        e.link(&at, &secret(&e));
        let o = e.run_in(tool, args, input);
        e.outside_untouched(file);
        let m = fs::symlink_metadata(&at).unwrap();
        if *replaced {
            assert!(o.status.success(), "{file}: {}", err(&o));
            assert!(m.is_file(), "{file}: the symlink was not replaced");
        } else if m.file_type().is_symlink() && *file != "watch/log" {
            assert!(!o.status.success(), "{file}: used a symlink");
        }
    }
}

/// The nudge of a reminder goes into agents/<name>/inbox/new only through
/// real directories; a symlink anywhere on that path means no nudge.
#[test]
fn a_nudge_never_follows_a_symlinked_agent_directory() {
    for (link, target) in [
        ("agents/lead", ""),
        ("agents/lead/inbox", "inbox"),
        ("agents/lead/inbox/new", "inbox/new"),
        ("", ""),
    ] {
        let e = Env::new();
        fs::create_dir_all(e.outside().join("inbox/new")).unwrap();
        fs::create_dir_all(e.outside().join("inbox/tmp")).unwrap();
        fs::create_dir_all(e.state().join("agents/lead/inbox/new")).unwrap();
        fs::create_dir_all(e.state().join("agents/lead/inbox/tmp")).unwrap();
        if !link.is_empty() {
            e.link(&e.state().join(link), &e.outside().join(target));
        }
        e.ok("mt-remind", &["add", "--after", "1m", "ship it"]);
        let o = e
            .cmd("mt-remind", &["check"])
            .env("MT_REMIND_NOW", "2999-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(o.status.success(), "{link}: {}", err(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("fired 1"));
        e.outside_untouched(link);
        let nudged = walk(&e.state().join("agents"))
            .iter()
            .any(|p| p.parent().is_some_and(|d| d.ends_with("inbox/new")));
        assert_eq!(nudged, link.is_empty(), "{link}: nudge where it belongs");
    }
}

/// A reminder file is outside input too: a channel, agent or id in it that
/// is not a name is refused, the file stays, nothing is created elsewhere.
#[test]
fn names_in_reminder_files_are_checked() {
    for (field, value) in [
        ("channel", "../../escape"),
        ("to", "../../escape"),
        ("from", "a/b"),
        ("id", "../../../escape"),
        ("id", "2"),
    ] {
        let e = Env::new();
        e.ok("mt-remind", &["add", "--after", "1m", "first"]);
        let p = e.state().join("reminders/pending/1.json");
        let mut r: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        r[field] = value.into();
        fs::write(&p, r.to_string()).unwrap();
        fs::create_dir_all(e.state().join("agents/lead/inbox/new")).unwrap();
        let o = e
            .cmd("mt-remind", &["check"])
            .env("MT_REMIND_NOW", "2999-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{field}={value}: fired");
        assert!(p.exists(), "{field}={value}: the reminder was lost");
        let escaped: Vec<PathBuf> = walk(e.root())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("escape"))
            .collect();
        assert!(escaped.is_empty(), "{field}={value}: {escaped:?}");
        assert!(!e.state().join("channels").exists() || field != "channel");
    }
}

// ---------------------------------------------------------------------------
// Symlinks in Claude Code's directory

#[test]
fn symlinks_in_a_team_inbox_never_redirect_a_write() {
    let e = Env::new();
    let inbox = e.claude().join("teams/t/inboxes/york.json");
    e.link(&inbox, &e.outside().join("secret"));
    for args in [
        &["send", "--to", "york", "hi"][..],
        &["read", "--as", "york", "--mark-read"][..],
    ] {
        let o = e.run("mt-mail", args);
        assert!(!o.status.success(), "{args:?}");
        e.outside_untouched(&format!("{args:?}"));
    }
    assert!(
        fs::symlink_metadata(&inbox)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn symlinks_in_a_team_directory_never_redirect_a_write() {
    for at in ["teams/web", "teams/web/inboxes", "teams"] {
        let e = Env::new();
        e.link(&e.claude().join(at), &e.outside());
        let o = e.run("mt-mail", &["send", "--team", "web", "--to", "york", "hi"]);
        assert_eq!(o.status.code(), Some(73), "{at}: {}", err(&o));
        // The team's config sits above its inboxes.
        let o = e.run("mt-mail", &["member", "--team", "web", "york"]);
        assert_eq!(
            o.status.success(),
            at == "teams/web/inboxes",
            "{at}: member"
        );
        e.outside_untouched(at);
    }
}

#[test]
fn symlinks_in_a_task_list_never_redirect_a_write() {
    let secret_link = |e: &Env, name: &str| {
        let p = e.claude().join("tasks/demo").join(name);
        e.link(&p, &e.outside().join("secret"));
        p
    };
    // The list directory, or the tasks directory above it.
    for at in ["tasks/demo", "tasks"] {
        let e = Env::new();
        e.link(&e.claude().join(at), &e.outside());
        let o = e.run("mt-task", &["create", "x"]);
        assert_eq!(o.status.code(), Some(73), "{at}: {}", err(&o));
        e.outside_untouched(at);
    }

    // A task file: skipped when listing, refused when changing.
    let e = Env::new();
    e.ok("mt-task", &["create", "one"]);
    secret_link(&e, "2.json");
    let o = e.run("mt-task", &["list"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("2.json"), "{}", err(&o));
    for args in [
        &["update", "2", "--subject", "x"][..],
        &["claim", "2", "--as", "york"],
        &["done", "2"],
    ] {
        let o = e.run("mt-task", args);
        assert!(!o.status.success(), "{args:?}");
    }
    e.ok("mt-task", &["create", "three"]);
    e.outside_untouched("task file");

    // The high-water mark and the list lock's marker.
    for (name, code) in [(".highwatermark", 65), (".lock", 73)] {
        let e = Env::new();
        e.ok("mt-task", &["create", "one"]);
        secret_link(&e, name);
        let o = e.run("mt-task", &["create", "two"]);
        assert_eq!(o.status.code(), Some(code), "{name}: {}", err(&o));
        e.outside_untouched(name);
    }
}

/// A FIFO where mt expects a file would block a reader forever; mt
/// refuses it instead.
#[test]
fn a_fifo_in_place_of_a_file_never_blocks() {
    let fifo = |p: &Path| {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    };
    let e = Env::new();
    e.ok("mt-task", &["create", "one"]);
    fifo(&e.claude().join("tasks/demo/2.json"));
    let o = run_bounded(e.cmd("mt-task", &["list"]));
    assert!(o.status.success(), "{}", err(&o));

    e.ok("mt-post", &["hi"]);
    fifo(&e.state().join("cursors/york/general.json"));
    let o = run_bounded(e.cmd("mt-read", &["--as", "york"]));
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));

    fifo(&e.state().join("cursors/york/general.stop"));
    let mut c = e.cmd("mt-hook", &["stop", "--as", "york"]);
    c.stdin(Stdio::null());
    let o = run_bounded(c);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
}

// ---------------------------------------------------------------------------
// Names from JSON

fn post_tool_use(e: &Env, input: serde_json::Value) -> Output {
    let payload = serde_json::json!({
        "session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "TaskUpdate",
        "tool_input": input, "tool_response": {"success": true},
    });
    let mut c = Command::new("sh");
    c.arg(repo().join("hooks/post-tool-use"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .env("MT_DIR", e.state())
        .env("MT_AGENT", "york")
        .env("HOME", e.root().join("home"))
        .env("MT_FSYNC", "0");
    feed(&mut c, payload.to_string().as_bytes())
}

#[test]
fn names_in_hook_payloads_are_checked() {
    let e = Env::new();
    for bad in [
        serde_json::json!({"taskId": "../../x", "status": "completed"}),
        serde_json::json!({"taskId": "3", "owner": "../x"}),
        serde_json::json!({"taskId": "3", "owner": "a b"}),
    ] {
        let o = post_tool_use(&e, bad.clone());
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(err(&o).contains("invalid"), "{bad}: {}", err(&o));
    }
    assert!(!e.state().join("channels").exists(), "nothing was posted");
    // A Claude Code name is a name, as for mt-task --owner.
    let o = post_tool_use(&e, serde_json::json!({"taskId": "3", "owner": "Team_Lead"}));
    assert!(o.status.success(), "{}", err(&o));
    let out = e.ok("mt-read", &["--all"]);
    assert!(out.contains("assigned task 3 to Team_Lead"), "{out}");
}

#[test]
fn names_in_commands_that_reach_claude_codes_files_are_checked() {
    let e = Env::new();
    for (tool, args) in [
        (
            "mt-mail",
            &["send", "--to", "york", "--from", "../x", "hi"][..],
        ),
        ("mt-mail", &["send", "--to", "../york", "hi"]),
        ("mt-mail", &["--team", "../t", "send", "--to", "york", "hi"]),
        ("mt-task", &["create", "--owner", "../x", "s"]),
        ("mt-task", &["--list", "../demo", "create", "s"]),
        ("mt-task", &["claim", "1", "--as", "a/b"]),
    ] {
        let o = e.run(tool, args);
        assert_eq!(o.status.code(), Some(65), "{tool} {args:?}: {}", err(&o));
    }
    assert!(!e.claude().exists(), "nothing was created");
    // An owner read from a task file is shown, compared, never a path.
    e.ok("mt-task", &["create", "one"]);
    let p = e.claude().join("tasks/demo/1.json");
    let mut t: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    t["owner"] = "../../escape".into();
    fs::write(&p, t.to_string()).unwrap();
    e.ok("mt-task", &["list"]);
    assert_eq!(
        e.run("mt-task", &["claim", "1", "--as", "york"])
            .status
            .code(),
        Some(1)
    );
    assert!(!walk(e.root()).iter().any(|p| p.ends_with("escape")));
}

// ---------------------------------------------------------------------------
// No shell

/// Content that a shell would run, carried through every tool that handles
/// messages: nothing runs it.
#[test]
fn message_content_never_reaches_a_shell() {
    let e = Env::new();
    let evil = "@york @all $(touch pwned1) `touch pwned2` '; touch pwned3; ' \"; touch pwned4\" | touch pwned5";
    fs::write(
        e.root().join("rules"),
        "name=seen @change channel:general printf '%s\\n' \"$MT_CHANGED\" > changed.out\n",
    )
    .unwrap();
    e.ok("mt-watch", &["--once", "--rules", "rules"]);
    e.ok("mt-post", &["--from", "park", evil]);
    e.ok("mt-watch", &["--once", "--rules", "rules"]);
    e.ok("mt-read", &["--as", "lead"]);
    for (script, input) in [
        ("session-start", "{}".to_string()),
        ("user-prompt-submit", "{}".to_string()),
        ("stop", "{}".to_string()),
        ("notification", serde_json::json!({"message": evil, "notification_type": "idle_prompt"}).to_string()),
        ("post-tool-use", serde_json::json!({"tool_name": "TaskCreate", "tool_input": {"subject": evil}, "tool_response": {"task": {"id": "1"}}}).to_string()),
    ] {
        let mut c = Command::new("sh");
        c.arg(repo().join("hooks").join(script))
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
            .env("MT_DIR", e.state())
            .env("MT_AGENT", "york")
            .env("MT_TASK", "1")
            .env("HOME", e.root().join("home"))
            .current_dir(e.root());
        let o = feed(&mut c, input.as_bytes());
        assert!(o.status.success(), "{script}: {}", err(&o));
    }
    e.ok("mt-mail", &["send", "--to", "york", evil]);
    e.ok("mt-mail", &["read", "--as", "york", "--mark-read"]);
    e.ok("mt-task", &["create", "--announce", evil]);
    e.ok("mt-remind", &["add", "--after", "1m", evil]);
    fs::create_dir_all(e.state().join("agents/lead/inbox/new")).unwrap();
    let o = e
        .cmd("mt-remind", &["check"])
        .env("MT_REMIND_NOW", "2999-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    e.ok("mt-watch", &["--once", "--rules", "rules"]);
    assert_eq!(
        fs::read_to_string(e.root().join("changed.out"))
            .unwrap()
            .trim(),
        "channel:general"
    );
    let ran: Vec<PathBuf> = walk(e.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("pwned"))
        .collect();
    assert!(ran.is_empty(), "a shell ran message content: {ran:?}");
}

/// The audit, kept: the only shell mt starts is mt-watch's, for the
/// user's own rule commands (their changes reach them in the environment).
/// A new `sh -c` anywhere else fails here until it is reviewed.
#[test]
fn only_the_watcher_starts_a_shell() {
    let mut found = Vec::new();
    let mut files = walk(&repo().join("lib"));
    files.extend(walk(&repo().join("bin")));
    for p in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
    {
        let text = fs::read_to_string(p).unwrap();
        // Unit tests may use a shell to set things up.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, line) in code.lines().enumerate() {
            let l = line.trim();
            if l.starts_with("//") {
                continue;
            }
            if ["\"sh\"", "\"bash\"", "\"/bin/sh\"", "\"-c\""]
                .iter()
                .any(|s| l.contains(s))
            {
                let rel = p.strip_prefix(repo()).unwrap().display().to_string();
                found.push(format!("{rel}:{}: {l}", i + 1));
            }
        }
    }
    // mt-watch runs the user's own rules, and mt-fake-agent the command
    // its user configured (MT_FAKE_RUN, with the message in the
    // environment, never in the command line).
    let watch = |f: &&String| f.starts_with("lib/watch/engine.rs:");
    let fake = |f: &&String| f.starts_with("lib/fake_agent.rs:");
    let others: Vec<&String> = found.iter().filter(|f| !watch(f) && !fake(f)).collect();
    assert!(others.is_empty(), "a shell outside mt-watch: {others:#?}");
    assert_eq!(
        found.iter().filter(watch).count(),
        2,
        "mt-watch's own: {found:#?}"
    );
    // And the hook scripts hand stdin to mt-hook without looking at it.
    for s in [
        "session-start",
        "user-prompt-submit",
        "stop",
        "post-tool-use",
        "notification",
    ] {
        let text = fs::read_to_string(repo().join("hooks").join(s)).unwrap();
        assert!(!text.contains("eval") && !text.contains("read "), "{s}");
    }
}

// ---------------------------------------------------------------------------
// Modes and ownership

/// Every tool, with umask 000: every directory created under the state
/// directory and Claude Code's directory is 0700, every file 0600.
#[test]
fn everything_mt_creates_is_private_even_with_umask_000() {
    let e = Env::new();
    let repo_dir = e.0.repo.clone();
    e.0.git(&repo_dir, &["init", "-q", "-b", "main"]);
    fs::write(repo_dir.join("f"), "x").unwrap();
    e.0.git(&repo_dir, &["add", "."]);
    e.0.git(&repo_dir, &["commit", "-qm", "first"]);
    fs::write(e.root().join("rules"), "name=t @every 1h true\n").unwrap();
    fs::create_dir(e.root().join("hookdir")).unwrap();
    let settings = e.claude().join("settings.json");
    let hooks = repo().join("hooks");
    let runs: Vec<(&str, Vec<&str>, &str)> = vec![
        ("mt-post", vec!["--from", "park", "@york hi"], ""),
        ("mt-read", vec!["--as", "lead"], ""),
        ("mt-channels", vec!["--as", "lead"], ""),
        ("mt-hook", vec!["stop", "--as", "york"], "{}"),
        (
            "mt-hook",
            vec!["post-tool-use", "--as", "york"],
            r#"{"tool_name":"TaskUpdate","tool_input":{"taskId":"1","status":"completed"},"tool_response":{}}"#,
        ),
        (
            "mt-hooks",
            vec![
                "install",
                "--settings",
                settings.to_str().unwrap(),
                "--hooks-dir",
                hooks.to_str().unwrap(),
            ],
            "",
        ),
        ("mt-watch", vec!["--once", "--rules", "rules"], ""),
        ("mt-remind", vec!["add", "--after", "1m", "x"], ""),
        ("mt-mail", vec!["send", "--to", "york", "hi"], ""),
        ("mt-mail", vec!["member", "york"], ""),
        ("mt-task", vec!["create", "one"], ""),
        ("mt-task", vec!["claim", "1", "--as", "york"], ""),
    ];
    for (t, args, input) in &runs {
        let mut c = e.cmd(t, args);
        with_umask(&mut c, 0);
        let o = feed(&mut c, input.as_bytes());
        assert!(o.status.success(), "{t} {args:?}: {}", err(&o));
    }
    fs::create_dir_all(e.state().join("agents/lead/inbox/new")).unwrap();
    fs::set_permissions(e.state().join("agents"), fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = e.cmd("mt-remind", &["check"]);
    c.env("MT_REMIND_NOW", "2999-01-01T00:00:00Z");
    with_umask(&mut c, 0);
    assert!(c.output().unwrap().status.success());
    let mut c = e.cmd(
        "mt-worktree",
        &["add", "w1", "--repo", repo_dir.to_str().unwrap()],
    );
    c.env_remove("MT_DIR").current_dir(&repo_dir);
    with_umask(&mut c, 0);
    let o = c.output().unwrap();
    assert!(o.status.success(), "mt-worktree: {}", err(&o));

    let test_made = |p: &Path| p.starts_with(e.state().join("agents"));
    let mut checked = 0;
    for top in [e.state(), e.claude(), repo_dir.join(".git/mt")] {
        let mut all = walk(&top);
        all.push(top.clone());
        for p in all.iter().filter(|p| !test_made(p)) {
            let m = fs::symlink_metadata(p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:o}", p.display());
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} paths checked");
    for must in [
        "cursors/lead/general.json",
        "cursors/york/general.stop",
        "watch/state.json",
        "watch/log",
        "reminders/fired/1.json",
    ] {
        assert!(e.state().join(must).exists(), "{must} was not created");
    }
}

fn as_nobody(c: &Command) -> Option<Command> {
    if !Path::new("/usr/bin/setpriv").exists() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root and setpriv to act as another user");
        return None;
    }
    let mut n = Command::new("/usr/bin/setpriv");
    n.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            n.env(k, v);
        }
    }
    if let Some(d) = c.get_current_dir() {
        n.current_dir(d);
    }
    Some(n)
}

/// Every tool that writes in the state directory refuses one that belongs
/// to someone else: its owner could redirect what we write.
#[test]
fn every_writer_refuses_a_state_directory_of_another_user() {
    let e = Env::new();
    fs::set_permissions(e.root(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(e.root().join("rules"), "@every 1h true\n").unwrap();
    fs::set_permissions(e.root().join("rules"), fs::Permissions::from_mode(0o644)).unwrap();
    e.ok("mt-post", &["@york mine"]);
    // Readable by all, so only the owner check stands in the way.
    for p in walk(&e.state()).into_iter().chain([e.state()]) {
        let m = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
    }
    for (t, args, input) in [
        ("mt-post", &["theirs"][..], ""),
        ("mt-read", &["--as", "york"], ""),
        ("mt-hook", &["stop", "--as", "york"], "{}"),
        ("mt-remind", &["add", "--after", "1m", "x"], ""),
        ("mt-watch", &["--once", "--rules", "rules"], ""),
    ] {
        let Some(mut c) = as_nobody(&e.cmd(t, args)) else {
            return;
        };
        let o = feed(&mut c, input.as_bytes());
        assert!(!o.status.success(), "{t}");
        if t != "mt-hook" {
            assert_eq!(o.status.code(), Some(73), "{t}: {}", err(&o));
        }
        assert!(err(&o).contains("belongs to uid 0"), "{t}: {}", err(&o));
    }
}

/// Text that others wrote (messages, inboxes, task files, reminders) is
/// shown with its control characters made visible: it cannot drive the
/// reader's terminal (escape sequences, clipboard writes via OSC 52).
#[test]
fn control_characters_never_reach_the_terminal() {
    let e = Env::new();
    let evil = "hi \x1b]52;c;cHduZWQ=\x07 \x1b[2J \u{9b}31m \u{202e}txt.exe";
    e.ok("mt-post", &["--from", "park", evil]);
    e.ok("mt-mail", &["send", "--to", "york", evil]);
    e.ok("mt-mail", &["member", "york", "--model", "m"]);
    e.ok("mt-task", &["create", "--description", evil, evil]);
    e.ok("mt-remind", &["add", "--after", "1m", evil]);
    let p = e.claude().join("tasks/demo/1.json");
    let mut t: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    t["owner"] = "\x1b[31mred".into();
    fs::write(&p, t.to_string()).unwrap();
    let outputs = [
        e.run("mt-read", &["--all"]),
        e.run("mt-read", &["--as", "york"]),
        e.run("mt-mail", &["read", "--as", "york"]),
        e.run("mt-task", &["list"]),
        e.run("mt-task", &["show", "1"]),
        e.run("mt-task", &["claim", "1", "--as", "york"]),
        e.run("mt-remind", &["list"]),
    ];
    for o in &outputs {
        for stream in [&o.stdout, &o.stderr] {
            let s = String::from_utf8_lossy(stream);
            assert!(
                !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'
                    || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{s:?}"
            );
        }
    }
    let shown = String::from_utf8(outputs[0].stdout.clone()).unwrap();
    assert!(
        shown.contains("^[]52;c;cHduZWQ=^G ^[[2J \\u{9b}31m \\u{202e}txt.exe"),
        "{shown}"
    );
}
