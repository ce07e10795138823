//! Support for the integration tests, in one place: the scratch
//! environment (`Env`), the built tools (`bin`, `tool`), git, waiting, JSON
//! files, generators and the proptest configuration, and for the tests of
//! the real Claude Code CLI a stand-in Messages API (`api`) and a team that
//! runs `claude` against it (`claude`).
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod claude;
mod env;
mod generators;
mod tmux;
mod tools;

#[allow(unused_imports)] // not all of it in every binary
pub use env::*;
#[allow(unused_imports)]
pub use generators::*;
#[allow(unused_imports)] // only tests/it drives a terminal
pub use tmux::*;
pub use tools::*;

use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Liveness bound only: no assertion depends on how fast things are.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The built-in fake agent, `MT_AGENT_CMD` of the tests.
pub const FAKE: &str = env!("CARGO_BIN_EXE_mt-fake-agent");

/// Wait until `f` holds, failing the test after `PATIENCE`.
pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    wait_for_within(PATIENCE, what, f)
}

/// Wait until `f` holds, failing the test after `limit`.
pub fn wait_for_within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// A JSON file, which must exist and parse.
pub fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The records of a JSON-lines file (none when it is missing). A last
/// line still being written (no newline yet) is left out; any other line
/// must parse.
pub fn jsonl(p: &Path) -> Vec<Value> {
    let text = fs::read_to_string(p).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", p.display()))
        })
        .collect()
}

/// git in `dir` with `home` as its home and a fixed identity, no system
/// or user configuration.
pub fn git_output(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap()
}

/// git as `git_output`, insisting on success; its standard output.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let o = git_output(dir, home, args);
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// Whether this run may skip a test for want of a tool: not under CI
/// (`MT_CI=1`, which .ci/run sets, or `MT_REQUIRE_CLAUDE=1`).
pub fn may_skip() -> bool {
    let set = |k: &str| std::env::var(k).as_deref() == Ok("1");
    !(set("MT_CI") || set("MT_REQUIRE_CLAUDE"))
}

/// Skip the calling test, saying why, or fail it where skipping is not
/// allowed (`may_skip`).
#[track_caller]
pub fn skip(why: &str) {
    assert!(
        may_skip(),
        "{why}; MT_CI=1 or MT_REQUIRE_CLAUDE=1 forbids skipping"
    );
    eprintln!("skipping: {why}");
}

/// The variables of mt's settings (see mt-config(1)), which a caller's
/// environment must not bring into a test.
pub const SETTINGS_ENV: &[&str] = &[
    "MT_MODEL",
    "MT_PERMISSION_MODE",
    "MT_PERMISSIONS",
    "MT_MAX_AGENTS",
    "MT_RULES",
    "MT_PROFILE",
    "MT_LEAD_CMD",
    "MT_CONFIG_HOME",
    "MT_HOST",
    "MT_SYNC_REMOTE",
    "MT_SYNC_TOKEN",
];
