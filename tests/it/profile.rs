//! Auth profiles: mt-profile, and the agents started with one (mt-spawn,
//! mt-sling, mt-dispatch) with the fake agent. The key reaches the agent's
//! process environment and nothing else: no file under the state
//! directory, no tool's output.

use crate::support::*;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const KEY: &str = "sk-mt-test-4b1d9e07c3a25f68";
const KEY2: &str = "sk-mt-test-rotated-81f0c2d4";

/// mt's configuration directory in `Env` (XDG_CONFIG_HOME is its home).
fn config(e: &Env) -> PathBuf {
    e.home.join("mt")
}

fn with_stdin(mut c: Command, input: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A tool that refuses its arguments may not read it.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn add_key(e: &Env, name: &str, key: &str, extra: &[&str]) -> Output {
    let mut c = e.cmd("mt-profile");
    c.args(["add", name, "--api-key-stdin"]).args(extra);
    with_umask(&mut c, 0);
    with_stdin(c, &format!("{key}\n"))
}

fn spawn_with(e: &Env, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = e.cmd("mt-spawn");
    c.args([name, "--detach"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The environment of the fake agent's `n`th start (from 0).
fn start_env(e: &Env, n: usize) -> Value {
    wait_for("the agent's start", || e.starts().len() > n);
    e.starts()[n]["env"].clone()
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The caller's own account, which a profile must override.
const CALLER: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "caller-key"),
    ("ANTHROPIC_AUTH_TOKEN", "caller-token"),
    ("ANTHROPIC_BASE_URL", "http://caller.invalid"),
    ("CLAUDE_CODE_OAUTH_TOKEN", "caller-oauth"),
];

#[test]
fn api_key_profile_reaches_only_the_agents_environment() {
    let e = Env::new();
    let o = add_key(&e, "gw", KEY, &["--base-url", "http://127.0.0.1:9/v1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Private even under umask 0.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config(&e).join("profiles")), 0o700);
    assert_eq!(mode(&config(&e).join("profiles/gw.toml")), 0o600);

    let o = spawn_with(&e, "york", &["--profile", "gw", "--prompt", "go"], CALLER);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let env = start_env(&e, 0);
    assert_eq!(env["ANTHROPIC_API_KEY"], KEY);
    assert_eq!(env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:9/v1");
    assert_eq!(env["MT_PROFILE"], "gw");
    for gone in ["ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"] {
        assert!(env.get(gone).is_none(), "{gone} leaked into the agent");
    }
    // An API key leaves Claude Code's directory (task lists) alone.
    assert_eq!(env["CLAUDE_CONFIG_DIR"], e.claude().to_str().unwrap());
    assert_eq!(e.meta("york")["profile"], "gw");
    e.wait_idle("york");

    // A rotated key, without a base URL: the resumed agent gets the new
    // key and no base URL, not even the caller's.
    let o = add_key(&e, "gw", KEY2, &[]);
    assert_eq!(o.status.code(), Some(1), "add over an existing profile");
    assert!(text(&o.stderr).contains("profile gw exists (--force replaces it)"));
    let o = add_key(&e, "gw", KEY2, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    e.ok("mt-stop", &["york"]);
    let o = spawn_with(&e, "york", &["--resume", "--prompt", "again"], CALLER);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let env = start_env(&e, 1);
    assert_eq!(env["ANTHROPIC_API_KEY"], KEY2);
    assert!(env.get("ANTHROPIC_BASE_URL").is_none());
    assert_eq!(e.meta("york")["profile"], "gw");
    e.wait_idle("york");

    // No tool shows a key, and the state directory holds none.
    let mut shown = String::new();
    for (tool, args) in [
        ("mt-ps", vec!["--json"]),
        ("mt-ps", vec![]),
        ("mt-log", vec!["york"]),
        ("mt-log", vec!["--raw", "york"]),
        ("mt-read", vec!["--all", "--json"]),
        ("mt-profile", vec!["list"]),
        ("mt-profile", vec!["list", "--json"]),
        ("mt-reap", vec!["--dry-run"]),
        ("mt-channels", vec![]),
    ] {
        let o = e.run(tool, &args);
        shown.push_str(&text(&o.stdout));
        shown.push_str(&text(&o.stderr));
    }
    assert!(shown.contains("york"), "{shown}");
    for k in [KEY, KEY2] {
        assert!(!shown.contains(k), "a tool printed the key:\n{shown}");
        let leaked = files_holding(&e.state, k);
        assert!(leaked.is_empty(), "the key is in {leaked:?}");
    }
    let settings = std::fs::read_to_string(e.agent("york").join("settings.json")).unwrap();
    assert!(settings.contains("\"MT_PROFILE\": \"gw\""), "{settings}");

    let list = e.ok("mt-profile", &["list", "--json"]);
    let v: Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(
        (
            v["name"].as_str(),
            v["kind"].as_str(),
            v["running"].as_u64()
        ),
        (Some("gw"), Some("api-key"), Some(1))
    );
    assert_eq!(v["agents"], serde_json::json!(["york"]));
}

#[test]
fn config_dir_profile_default_and_mt_profile() {
    let e = Env::new();
    let dir = e.root.join("claude-work");
    std::fs::create_dir(&dir).unwrap();
    e.ok(
        "mt-profile",
        &["add", "work", "--config-dir", dir.to_str().unwrap()],
    );
    assert_eq!(add_key(&e, "gw", KEY, &[]).status.code(), Some(0));
    e.ok("mt-profile", &["use", "work"]);
    // The default is the profile setting of the global settings file.
    let settings = || std::fs::read_to_string(config(&e).join("config.toml")).unwrap_or_default();
    assert_eq!(settings().trim(), "profile = \"work\"");
    let o = e
        .cmd("mt-profile")
        .env("MT_PROFILE", "gw")
        .args(["use", "work"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o.stderr),
        "mt-profile: $MT_PROFILE names profile gw, which new agents get instead\n"
    );

    // No --profile: the default.
    let o = spawn_with(&e, "york", &["--prompt", "go"], CALLER);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let env = start_env(&e, 0);
    assert_eq!(env["CLAUDE_CONFIG_DIR"], dir.to_str().unwrap());
    for gone in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ] {
        assert!(env.get(gone).is_none(), "{gone} leaked into the agent");
    }
    assert_eq!(e.meta("york")["profile"], "work");

    // $MT_PROFILE goes before the default for a new agent, but does not
    // move a resumed one.
    let o = spawn_with(&e, "park", &["--prompt", "go"], &[("MT_PROFILE", "gw")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(start_env(&e, 1)["ANTHROPIC_API_KEY"], KEY);
    assert_eq!(e.meta("park")["profile"], "gw");
    let list = e.run("mt-profile", &["list"]);
    let table = text(&list.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("work ") && l.ends_with("global")),
        "{table}"
    );
    e.wait_idle("york");
    e.ok("mt-stop", &["york"]);
    let o = spawn_with(
        &e,
        "york",
        &["--resume", "--prompt", "again"],
        &[("MT_PROFILE", "gw")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(start_env(&e, 2)["CLAUDE_CONFIG_DIR"], dir.to_str().unwrap());
    assert_eq!(e.meta("york")["profile"], "work");

    // An unknown profile starts nothing.
    let o = spawn_with(&e, "kent", &["--profile", "nope", "--prompt", "go"], &[]);
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(
        text(&o.stderr),
        "mt-spawn: no profile named nope (see mt-profile list)\n"
    );
    assert_eq!(e.starts().len(), 3);
    assert!(!e.agent("kent").join("meta.json").exists());

    // Removing a profile a running agent uses is refused, unless forced;
    // the agent then cannot be resumed.
    let o = e.run("mt-profile", &["remove", "work"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("profile work is used by running agents: york"),
        "{}",
        text(&o.stderr)
    );
    e.ok("mt-profile", &["remove", "work", "--force"]);
    assert!(!settings().contains("profile"), "{}", settings());
    e.ok("mt-stop", &["york"]);
    let o = spawn_with(&e, "york", &["--resume", "--prompt", "again"], &[]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert_eq!(
        e.run("mt-profile", &["remove", "work"]).status.code(),
        Some(65)
    );
}

#[test]
fn bad_profiles_are_refused_without_showing_a_key() {
    let e = Env::new();
    let o = add_key(&e, "gw", "", &[]);
    assert_eq!(o.status.code(), Some(65));
    let o = add_key(&e, "gw", KEY, &["--base-url", "ftp://x"]);
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(add_key(&e, "../x", KEY, &[]).status.code(), Some(65));
    let o = e.run(
        "mt-profile",
        &["add", "w", "--config-dir", "/nonexistent/dir"],
    );
    assert_eq!(o.status.code(), Some(65));
    let o = e.run(
        "mt-profile",
        &["add", "w", "--config-dir", "/tmp", "--base-url", "http://x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!config(&e).join("profiles").exists() || profiles_in(&e).is_empty());

    // A profile file broken by hand: its key is never quoted.
    std::fs::create_dir_all(config(&e).join("profiles")).unwrap();
    std::fs::write(
        config(&e).join("profiles/broken.toml"),
        format!("api_key = \"{KEY}\nbase_url = 3\n"),
    )
    .unwrap();
    let o = e.run(
        "mt-spawn",
        &["york", "-d", "--profile", "broken", "--prompt", "go"],
    );
    assert_eq!(o.status.code(), Some(65));
    let err = text(&o.stderr);
    assert!(
        err.contains("broken.toml: does not parse (line 1)"),
        "{err}"
    );
    let o = e.run("mt-profile", &["list"]);
    assert_eq!(o.status.code(), Some(0));
    let all = format!("{err}{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("broken  invalid"), "{all}");
    assert!(!all.contains(KEY), "{all}");
    assert!(e.starts().is_empty());
}

fn profiles_in(e: &Env) -> Vec<PathBuf> {
    walk(&config(e).join("profiles"))
}

#[test]
fn dispatch_spreads_agents_over_profiles_and_leaves_out_limited_ones() {
    let e = Env::with_repo();
    for p in ["a", "b"] {
        assert_eq!(
            add_key(&e, p, &format!("{KEY}-{p}"), &[]).status.code(),
            Some(0)
        );
    }
    for t in ["one", "two", "three"] {
        e.ok("mt-task", &["create", t]);
    }
    let o = e.run("mt-dispatch", &["--profiles", "a,nope"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert!(e.agent("york").read_dir().is_err(), "nothing started");

    let out = e.ok("mt-dispatch", &["--profiles", "a,b", "--max", "10"]);
    assert_eq!(lines(&out).len(), 3, "{out}");
    let profile = |n: &str| e.meta(n)["profile"].as_str().unwrap().to_string();
    // Fewest running first, the first given on a tie.
    assert_eq!(
        [profile("york"), profile("park"), profile("kent")],
        ["a", "b", "a"]
    );

    // An agent of b meets its usage limit: b is left out until it resets.
    let o = e
        .cmd("mt-spawn")
        .env("MT_FAKE_MODE", "rate-limit")
        .args(["lim", "-d", "--profile", "b", "--prompt", "go"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    wait_for("b's limit", || {
        e.status("lim")["rate_limit"]["status"] == "rejected"
    });
    e.ok("mt-task", &["create", "four"]);
    let out = e.ok("mt-dispatch", &["--profiles", "a,b", "--max", "10"]);
    assert_eq!(out, "hale took task 4: four\n");
    assert_eq!(profile("hale"), "a");

    // mt-sling with a limited profile leaves its task pending.
    let o = e.run("mt-sling", &["five", "--profile", "b"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "");
    assert!(
        text(&o.stderr).contains("profile b is at its usage limit until "),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(e.task(&e.default_list(), 5)["status"], "pending");

    // Both limited: the task waits.
    let out = e.ok("mt-dispatch", &["--profiles", "b", "--max", "10"]);
    assert!(
        out.starts_with("task 5 waits: every profile is at its usage limit (the first resets at "),
        "{out}"
    );
    assert_eq!(e.task(&e.default_list(), 5)["status"], "pending");
}

/// A person who takes over the session (mt-attach) runs it on the agent's
/// account too.
#[test]
fn attach_runs_the_session_with_the_agents_profile() {
    let e = Env::new();
    assert_eq!(add_key(&e, "gw", KEY, &[]).status.code(), Some(0));
    let o = spawn_with(&e, "york", &["--profile", "gw", "--prompt", "go"], CALLER);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    e.wait_idle("york");
    // A stand-in for the interactive program: records its environment.
    let seen = e.root.join("attached-env");
    let program = e.root.join("interactive");
    std::fs::write(&program, format!("#!/bin/sh\nenv > {}\n", seen.display())).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = e.cmd("mt-attach");
    c.env("MT_AGENT_CMD", &program)
        .env("MT_USER", "alice")
        .arg("york");
    for (k, v) in CALLER {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains(&format!("ANTHROPIC_API_KEY={KEY}\n")), "{env}");
    for gone in ["ANTHROPIC_AUTH_TOKEN=", "ANTHROPIC_BASE_URL=", "caller-"] {
        assert!(!env.contains(gone), "{gone} in {env}");
    }
    assert!(files_holding(&e.state, KEY).is_empty());
}
