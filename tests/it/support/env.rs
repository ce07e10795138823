//! `Env`: a scratch state directory, home, Claude Code directory and git
//! repository, and the tools run in them with the fake agent; helpers to
//! look at agents, channels and task lists. Agents still running when a
//! test ends are stopped.

use super::{FAKE, bin, git, jsonl, read_json, text, wait_for};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory `root` holding the state directory (`state`),
/// a home (`home`), Claude Code's directory (`claude`), a working directory
/// that may be a git repository (`repo`) and the fake agent's record of
/// its starts. Agents still running when a test ends are stopped.
pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub record: PathBuf,
}

impl Env {
    /// Without a repository: commands run in an empty directory.
    pub fn new() -> Env {
        Env::new_in(&std::env::temp_dir())
    }

    /// As `new`, in a scratch directory made in `parent`.
    pub fn new_in(parent: &Path) -> Env {
        let tmp = tempfile::tempdir_in(parent).unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let env = Env {
            state: root.join("state"),
            home: root.join("home"),
            repo: root.join("repo"),
            record: root.join("record.jsonl"),
            root,
            _tmp: tmp,
        };
        fs::create_dir_all(&env.home).unwrap();
        fs::create_dir_all(&env.repo).unwrap();
        env
    }

    /// With a git repository (one commit on main) as the working directory.
    pub fn with_repo() -> Env {
        let e = Env::new();
        e.git(&e.repo, &["init", "-q", "-b", "main"]);
        fs::write(e.repo.join("README"), "hello\n").unwrap();
        e.git(&e.repo, &["add", "."]);
        e.git(&e.repo, &["commit", "-qm", "first"]);
        e
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        git(dir, &self.home, args)
    }

    /// Claude Code's directory (`CLAUDE_CONFIG_DIR`).
    pub fn claude(&self) -> PathBuf {
        self.root.join("claude")
    }

    /// A tool with nothing of the caller's environment: `tool` rooted here
    /// (state, home and Claude Code's directory of this `Env`, no syncs,
    /// the root as working directory).
    pub fn clean(&self, name: &str) -> Command {
        super::tool(name, &self.root)
    }

    /// Any program in the environment of `clean`.
    pub fn clean_program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        super::clean_command(program, &self.root)
    }

    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.current_dir(&self.repo)
            .env("MT_DIR", &self.state)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("CLAUDE_CONFIG_DIR", self.claude())
            .env("MT_AGENT_CMD", FAKE)
            .env("MT_FSYNC", "0")
            .env("MT_FAKE_RECORD", &self.record)
            .stdin(Stdio::null());
        for k in [
            "MT_AGENT",
            "MT_CHANNEL",
            "MT_TASK",
            "MT_TEAM",
            "MT_POOL",
            "MT_WORKTREES",
            "MT_FAKE_MODE",
            "MT_FAKE_SCRIPT",
            "MT_FAKE_RUN",
            "MT_FAKE_DELAY",
            "MT_FAKE_RECEIPTS",
            "MT_FAKE_RESETS_IN",
            "MT_PROFILE",
            "MT_PROFILES",
            "MT_CONFIG_HOME",
            "CLAUDE_CODE_TASK_LIST_ID",
        ]
        .into_iter()
        .chain(super::SETTINGS_ENV.iter().copied())
        {
            c.env_remove(k);
        }
        c
    }

    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().unwrap()
    }

    /// Run, insist on exit 0, return stdout.
    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.run(name, args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name} {args:?}: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Start a detached agent with the fake in `mode`.
    pub fn spawn(&self, name: &str, mode: &str, extra: &[&str]) {
        let o = self
            .cmd("mt-spawn")
            .env("MT_FAKE_MODE", mode)
            .args([name, "--detach", "--prompt", "go"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }

    pub fn post(&self, from: &str, message: &str) {
        self.ok("mt-post", &["--from", from, message]);
    }

    pub fn agent(&self, name: &str) -> PathBuf {
        self.state.join("agents").join(name)
    }

    pub fn status(&self, name: &str) -> Value {
        read_json(&self.agent(name).join("status.json"))
    }

    pub fn meta(&self, name: &str) -> Value {
        read_json(&self.agent(name).join("meta.json"))
    }

    pub fn running(&self, name: &str) -> bool {
        let o = self.run("mt-ps", &["--json", name]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["running"] == true
    }

    pub fn wait_idle(&self, name: &str) {
        wait_for(&format!("{name} to be idle"), || {
            self.agent(name).join("status.json").is_file() && self.status(name)["state"] == "idle"
        });
    }

    /// Nudges ever left in an agent's inbox (forwarded or waiting).
    pub fn inbox(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = fs::read_dir(self.agent(name).join("inbox").join(sub)) {
                for e in rd.flatten() {
                    out.push(fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        out.sort();
        out
    }

    /// The messages the supervisor wrote to the agent's standard input.
    pub fn inputs(&self, name: &str) -> Vec<String> {
        jsonl(&self.agent(name).join("events.jsonl"))
            .into_iter()
            .filter(|v| v["type"] == "mt" && v["subtype"] == "input")
            .map(|v| v["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Every record of a channel, in order.
    pub fn channel(&self, name: &str) -> Vec<Value> {
        let o = self.run("mt-read", &["--all", "--json", "-c", name]);
        o.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    /// One JSON line per start of a fake agent.
    pub fn starts(&self) -> Vec<Value> {
        jsonl(&self.record)
    }

    pub fn task_dir(&self, list: &str) -> PathBuf {
        self.claude().join("tasks").join(list)
    }

    pub fn task(&self, list: &str, id: u64) -> Value {
        read_json(&self.task_dir(list).join(format!("{id}.json")))
    }

    /// The default task list of this state directory.
    pub fn default_list(&self) -> String {
        let n = self.root.file_name().unwrap().to_string_lossy();
        format!("mt-{}", n.trim_start_matches(['.', '-']))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.state.join("agents").is_dir() {
            let _ = self.run("mt-stop", &["--grace", "1s", "--all"]);
        }
    }
}
