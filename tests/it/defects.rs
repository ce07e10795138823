//! Regression tests for defects that need the built binaries.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{FAKE, bin, read_json, repo};

/// How long a child may take to end on its own in the loops below.
const PATIENCE: Duration = Duration::from_secs(20);

fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    crate::support::wait_for(what, ok)
}

fn status(state: &Path, name: &str) -> serde_json::Value {
    read_json(&state.join("agents").join(name).join("status.json"))
}

/// A caller with live threads (one holding a lock, others allocating) can
/// start a detached agent, and the supervisor is a fresh mt-spawn process
/// in a session of its own, not a fork of the caller.
#[test]
fn detached_spawn_from_a_threaded_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let state = mt::statedir::StateDir::at(root.join("state"));
    fs::create_dir_all(state.root()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(Mutex::new(()));
    let mut threads = vec![];
    {
        let (held, stop) = (held.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let _g = held.lock().unwrap();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    for _ in 0..3 {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let v: Vec<u8> = vec![1; 4096];
                std::hint::black_box(v);
            }
        }));
    }
    let opts = mt::spawn::Options {
        name: "york".into(),
        prompt: Some("hello".into()),
        cwd: Some(root.clone()),
        agent_cmd: Some(FAKE.into()),
        ..Default::default()
    };
    let pid = mt::spawn::spawn_detached(&state, opts).expect("spawn");
    assert!(pid > 0);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    let st = status(state.root(), "york");
    let sup = st["supervisor_pid"].as_i64().expect("supervisor pid") as i32;
    let exe = fs::read_link(format!("/proc/{sup}/exe")).unwrap();
    assert_eq!(exe.file_name().unwrap(), "mt-spawn", "{exe:?}");
    let cmdline = fs::read(format!("/proc/{sup}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(mt::spawn::DETACHED_FLAG),
        "{cmdline:?}"
    );
    let stat = fs::read_to_string(format!("/proc/{sup}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, sid): (i32, i32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "the supervisor is our child"
    );
    assert_ne!(
        sid,
        nix::unistd::getsid(None).unwrap().as_raw(),
        "the supervisor is in our session"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until("the agent to end", || {
        !status(state.root(), "york")["state"]
            .as_str()
            .is_some_and(|s| s == "running" || s == "starting")
    });
}

/// An agent that ends at once whenever it is resumed while a nudge waits in
/// its inbox is resumed a bounded number of times, then left alone with a
/// system record, the nudge still in inbox/new.
#[test]
fn resume_loop_is_bounded() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let state = root.join("state");
    let agent = root.join("quitter");
    // Ends at once, reading nothing: a big nudge never fits in the pipe.
    fs::write(&agent, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
    let new = state.join("agents/q/inbox/new");
    fs::create_dir_all(&new).unwrap();
    fs::write(new.join("1.nudge"), "x".repeat(256 << 10)).unwrap();
    let mut child = Command::new(bin("mt-spawn"))
        .args(["q", "--prompt", "go"])
        .env("MT_DIR", &state)
        .env("MT_AGENT_CMD", &agent)
        .env("MT_FSYNC", "0")
        .env_remove("MT_CHANNEL")
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mt-spawn kept resuming the agent");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(new.join("1.nudge").exists(), "the nudge stays in inbox/new");
    let log = fs::read_dir(state.join("channels/general"))
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
        .collect::<String>();
    assert!(log.contains("resume-limit"), "{log}");
}

/// `mt-read -f` on a channel that does not exist yet ends when the reader
/// of its output goes away, as it does on an existing channel.
#[test]
fn follow_of_a_missing_channel_ends_with_its_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("mt-read"))
        .args(["-f", "-c", "not-yet"])
        .env("MT_DIR", tmp.path())
        .env_remove("MT_AGENT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(child.stdout.take());
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert_eq!(s.code(), Some(0));
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mt-read -f kept waiting for a channel nobody reads");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bad MT_SEGMENT_BYTES is bad input data (65) for mt-post as for every
/// other writer, whether it comes from the environment or the flag.
#[test]
fn segment_bytes_have_one_parser_and_one_code() {
    let tmp = tempfile::tempdir().unwrap();
    let post = |env: Option<&str>, flag: Option<&str>| {
        let mut c = Command::new(bin("mt-post"));
        c.env("MT_DIR", tmp.path())
            .env("MT_FSYNC", "0")
            .env("MT_AGENT", "lead")
            .env_remove("MT_CHANNEL")
            .env_remove("MT_SEGMENT_BYTES")
            .stdin(Stdio::null());
        if let Some(v) = env {
            c.env("MT_SEGMENT_BYTES", v);
        }
        if let Some(v) = flag {
            c.args(["--segment-bytes", v]);
        }
        c.arg("hello").output().unwrap().status.code()
    };
    assert_eq!(post(Some("abc"), None), Some(65));
    assert_eq!(post(Some("0"), None), Some(65));
    assert_eq!(post(None, Some("abc")), Some(65));
    assert_eq!(post(None, Some("0")), Some(65));
    assert_eq!(post(Some("4096"), None), Some(0));
}

/// After `cargo install` (every binary in one bin directory, no
/// share/mt/hooks), `mt-hooks install` writes entries that run the mt-hook
/// beside it.
#[test]
fn hooks_install_after_cargo_install() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let bindir = root.join("cargo/bin");
    fs::create_dir_all(&bindir).unwrap();
    for b in ["mt-hooks", "mt-hook"] {
        fs::copy(bin(b), bindir.join(b)).unwrap();
    }
    let config = root.join("claude");
    let out = Command::new(bindir.join("mt-hooks"))
        .args(["install", "--user"])
        .env("CLAUDE_CONFIG_DIR", &config)
        .env("HOME", &root)
        .env_remove("MT_HOOKS_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = fs::read_to_string(config.join("settings.json")).unwrap();
    let hook = bindir.join("mt-hook");
    for event in [
        "session-start",
        "user-prompt-submit",
        "stop",
        "post-tool-use",
    ] {
        assert!(
            settings.contains(&format!("{} {event}", hook.display())),
            "{event}: {settings}"
        );
    }
}

/// `make install` and `make demo` take the binaries from CARGO_TARGET_DIR
/// when it is set.
#[test]
fn makefile_follows_cargo_target_dir() {
    if Command::new("make").arg("--version").output().is_err() {
        crate::support::skip("make is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("build");
    for goal in ["install", "demo"] {
        let out = Command::new("make")
            .args(["-n", goal])
            .arg(format!("PREFIX={}", tmp.path().join("pfx").display()))
            .env("CARGO_TARGET_DIR", &elsewhere)
            .env_remove("MAKEFLAGS")
            .current_dir(repo())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&*elsewhere.to_string_lossy()),
            "{goal}: {text}"
        );
        for word in text.split_whitespace() {
            let w = word
                .trim_start_matches(['"', '\''])
                .trim_start_matches("PATH=");
            assert!(
                !w.starts_with("target/") && !w.contains("/target/"),
                "{goal} uses {w}: {text}"
            );
        }
    }
}

/// A warning printed by library code carries the name of the tool that
/// runs it (here the channel reader inside mt-route), not a fixed one.
#[test]
fn warnings_carry_the_running_tool_name() {
    let tmp = tempfile::tempdir().unwrap();
    let post = Command::new(bin("mt-post"))
        .env("MT_DIR", tmp.path())
        .env("MT_FSYNC", "0")
        .env("MT_AGENT", "lead")
        .env_remove("MT_CHANNEL")
        .arg("hello")
        .output()
        .unwrap();
    assert!(post.status.success());
    let dir = tmp.path().join("channels/general");
    let seg = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(seg).unwrap();
    std::io::Write::write_all(&mut f, b"not json\n").unwrap();
    let out = Command::new(bin("mt-route"))
        .env("MT_DIR", tmp.path())
        .env("MT_FSYNC", "0")
        .env_remove("MT_CHANNEL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mt-route: general: skipping a malformed line"),
        "{err}"
    );
    assert!(!err.contains("mt-read:"), "{err}");
}
