//! The real Claude Code CLI in tests: where the pinned version is installed
//! (`make claude-code` puts it in a cache), and `Team`, a scratch repository,
//! state directory and Claude Code configuration whose sessions talk to the
//! stand-in API on 127.0.0.1.

use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::api::{Api, Script};

pub use super::{PATIENCE, jsonl, read_json, text, wait_for};

/// The pinned Claude Code version (the Makefile reads the same file).
pub fn version() -> &'static str {
    include_str!("claude-code.version").trim()
}

/// Where `make claude-code` installs it: `$MT_CLAUDE_CACHE`, else
/// `$XDG_CACHE_HOME/mt`, else `~/.cache/mt`, then `claude-code-VERSION`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("MT_CLAUDE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("mt")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mt")
        });
    base.join(format!("claude-code-{}", version()))
}

/// The native `claude` binary: `$MT_CLAUDE_BIN`, else the one in the cache
/// (npm puts it in the platform package, `claude-code-<os>-<arch>`).
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MT_CLAUDE_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let dir = cache_dir().join("node_modules/@anthropic-ai");
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("claude-code-"))
        })
        .map(|e| e.path().join("claude"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The CLI, or `None` after one loud line saying the test is skipped. With
/// `MT_REQUIRE_CLAUDE=1` (CI) a missing CLI fails the test instead.
pub fn require(test: &str) -> Option<PathBuf> {
    if let Some(p) = find() {
        return Some(p);
    }
    let why = format!(
        "the real Claude Code CLI {} is not installed in {} (run `make claude-code`)",
        version(),
        cache_dir().display()
    );
    if std::env::var("MT_REQUIRE_CLAUDE").as_deref() == Ok("1") {
        panic!("{test}: {why}; MT_REQUIRE_CLAUDE=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// Variables of an enclosing Claude Code session or mt setup that must not
/// reach the tools under test.
const INHERITED: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_EXECPATH",
    "CLAUDE_CODE_TASK_LIST_ID",
    "CLAUDE_CODE_ENABLE_TODO_TOOLS",
    "CLAUDE_PID",
    "CLAUDE_EFFORT",
    "CLAUDE_ENV_FILE",
    "CLAUDE_PROJECT_DIR",
    "AI_AGENT",
    "ANTHROPIC_AUTH_TOKEN",
    "MT_AGENT",
    "MT_CHANNEL",
    "MT_TASK",
    "MT_TEAM",
    "MT_POOL",
    "MT_WAKE",
    "MT_WORKTREES",
    "MT_AGENT_CMD",
    "MT_BIN",
    "MT_HOOKS_DIR",
];

/// A team with the real CLI: repository, state directory, home, Claude
/// Code's configuration, and the stand-in API. Dropping it stops every agent
/// and the API.
pub struct Team {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
    pub home: PathBuf,
    pub config: PathBuf,
    pub repo: PathBuf,
    pub claude: PathBuf,
    pub bindir: PathBuf,
    pub api: Api,
}

impl Team {
    /// `None` (the test is skipped) when the CLI is not installed.
    pub fn new(test: &str, script: Script) -> Option<Team> {
        let claude = require(test)?;
        let tmp = tempfile::Builder::new().prefix("mt-cc.").tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let bindir = super::bin_dir();
        let t = Team {
            state: root.join("repo/.git/mt"),
            home: root.join("home"),
            config: root.join("home/.claude"),
            repo: root.join("repo"),
            claude,
            bindir,
            api: Api::start(script),
            root,
            _tmp: tmp,
        };
        fs::create_dir_all(&t.config).unwrap();
        // No first-run dialogs in interactive sessions.
        fs::write(
            t.config.join(".claude.json"),
            r#"{"hasCompletedOnboarding":true,"theme":"dark","bypassPermissionsModeAccepted":true}"#,
        )
        .unwrap();
        fs::create_dir_all(&t.repo).unwrap();
        t.git(&["init", "-q", "-b", "main"]);
        fs::write(t.repo.join("README"), "hello\n").unwrap();
        t.git(&["add", "."]);
        t.git(&["commit", "-qm", "first"]);
        Some(t)
    }

    /// The environment every command gets.
    fn setup(&self, c: &mut Command) {
        for k in INHERITED.iter().chain(super::SETTINGS_ENV) {
            c.env_remove(k);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bindir.clone()];
        dirs.extend(std::env::split_paths(&path));
        c.current_dir(&self.repo)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("MT_DIR", &self.state)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("CLAUDE_CONFIG_DIR", &self.config)
            .env("ANTHROPIC_BASE_URL", self.api.url())
            .env("ANTHROPIC_API_KEY", "sk-standin")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("MT_AGENT_CMD", &self.claude)
            .env("MT_FSYNC", "0")
            .stdin(Stdio::null());
    }

    /// One of mt's tools, in the repository.
    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bindir.join(tool));
        self.setup(&mut c);
        c
    }

    /// `claude` itself, with the same environment.
    pub fn claude_cmd(&self) -> Command {
        let mut c = Command::new(&self.claude);
        self.setup(&mut c);
        c
    }

    pub fn git(&self, args: &[&str]) -> String {
        let mut c = Command::new("git");
        self.setup(&mut c);
        let o = c.args(args).output().unwrap();
        assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.cmd(tool).args(args).output().unwrap()
    }

    /// Run, insist on exit 0, return stdout.
    pub fn ok(&self, tool: &str, args: &[&str]) -> String {
        let o = self.run(tool, args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{tool} {args:?}: {}{}",
            text(&o.stderr),
            text(&o.stdout)
        );
        text(&o.stdout)
    }

    /// `mt-spawn NAME --detach ARGS…`, insisting on success.
    pub fn spawn(&self, name: &str, args: &[&str]) {
        let mut a = vec![name, "--detach"];
        a.extend_from_slice(args);
        self.ok("mt-spawn", &a);
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

    /// The agent's events.jsonl.
    pub fn events(&self, name: &str) -> Vec<Value> {
        jsonl(&self.agent(name).join("events.jsonl"))
    }

    /// The `result` events Claude Code wrote for the agent.
    pub fn results(&self, name: &str) -> Vec<Value> {
        self.events(name)
            .into_iter()
            .filter(|e| e["type"] == "result")
            .collect()
    }

    /// `mt-ps --json NAME`.
    pub fn ps(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok("mt-ps", &["--json", name])).unwrap()
    }

    pub fn running(&self, name: &str) -> bool {
        self.ps(name)["running"] == true
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

    pub fn post(&self, from: &str, message: &str) {
        self.ok("mt-post", &["--from", from, message]);
    }

    /// Processes whose environment says they belong to this team's state
    /// directory (whatever session or process group they are in).
    pub fn processes(&self) -> Vec<i32> {
        let want = format!("MT_DIR={}", self.state.display());
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true);
            if !zombie && env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
                out.push(pid);
            }
        }
        out
    }

    /// `wait_for`, showing what `agent` did when it times out.
    pub fn wait(&self, agent: &str, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            if start.elapsed() > PATIENCE {
                let dir = self.agent(agent);
                let events = fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
                let tail: Vec<&str> = events.lines().rev().take(30).collect();
                for l in tail.iter().rev() {
                    eprintln!("event: {}", &l[..l.len().min(600)]);
                }
                eprintln!(
                    "stderr.log: {}",
                    fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
                );
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn agent_names(&self) -> Vec<String> {
        fs::read_dir(self.state.join("agents"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        if std::env::var_os("MT_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.root.display());
            let dump: String = self
                .api
                .requests()
                .iter()
                .map(|r| {
                    let v =
                        serde_json::json!({"path": r.path, "session": r.session, "body": r.body});
                    format!("{v}\n")
                })
                .collect();
            let _ = fs::write(self.root.join("api.jsonl"), dump);
            let tmp = std::mem::replace(&mut self._tmp, tempfile::tempdir().unwrap());
            let _ = tmp.keep();
        }
        let names = self.agent_names();
        if !names.is_empty() {
            let mut args = vec!["--grace", "2s"];
            args.extend(names.iter().map(String::as_str));
            let _ = self.run("mt-stop", &args);
        }
        // Whatever a failed test left behind must not outlive it.
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// An interactive `claude` (or a tool running it) in a pseudo-terminal: what
/// it drew, and a way to type. Killed (with its process group) when dropped.
pub struct Pty {
    pub pid: i32,
    child: std::process::Child,
    master: std::fs::File,
    screen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Team {
    /// Start `claude ARGS` interactively in the repository, with Claude
    /// Code's first-run questions (trust, API key) answered up front.
    pub fn interactive(&self, args: &[&str], env: &[(&str, &str)]) -> Pty {
        let mut c = self.claude_cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        self.in_pty(c)
    }

    /// Answer Claude Code's first-run questions (trust in the repository,
    /// the API key) in its configuration. A session running meanwhile may
    /// write its own copy back when it exits: call this before starting it.
    pub fn answer_first_run(&self) {
        let mut conf: Value =
            serde_json::from_slice(&fs::read(self.config.join(".claude.json")).unwrap()).unwrap();
        conf["customApiKeyResponses"] =
            serde_json::json!({"approved": ["sk-standin"], "rejected": []});
        conf["messageIdleNotifThresholdMs"] = 1000.into();
        conf["projects"][self.repo.to_string_lossy().as_ref()] = serde_json::json!({"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true});
        fs::write(self.config.join(".claude.json"), conf.to_string()).unwrap();
    }

    /// Run `c` (one of mt's tools that starts `claude`, say) in a
    /// pseudo-terminal of its own, as `interactive` does.
    pub fn in_pty(&self, mut c: Command) -> Pty {
        use std::os::fd::{AsRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        self.answer_first_run();
        let size = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&size), None).unwrap();
        let slave: OwnedFd = p.slave;
        c.env("TERM", "xterm-256color");
        c.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        let master = std::fs::File::from(p.master);
        let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut rd, sc) = (master.try_clone().unwrap(), screen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 8192];
            while let Ok(n) = rd.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sc.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let _ = master.as_raw_fd();
        Pty {
            pid: child.id() as i32,
            child,
            master,
            screen,
        }
    }
}

impl Pty {
    /// Everything drawn so far, escape sequences removed.
    pub fn text(&self) -> String {
        let raw = String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned();
        let mut out = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ params final; OSC: ESC ] ... BEL or ESC \.
                match chars.next() {
                    Some('[') => {
                        for d in chars.by_ref() {
                            if ('@'..='~').contains(&d) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        while let Some(d) = chars.next() {
                            if d == '\u{7}' || (d == '\u{1b}' && chars.next_if_eq(&'\\').is_some())
                            {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Type `s` (a prompt, then `\r` for Enter).
    pub fn type_text(&mut self, s: &str) {
        use std::io::Write;
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Wait until the screen shows `what` (spaces ignored: the terminal
    /// draws some with cursor moves).
    pub fn wait_for(&self, what: &str) {
        let want: String = what.chars().filter(|c| !c.is_whitespace()).collect();
        wait_for(&format!("the screen to show {what:?}"), || {
            self.text()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .contains(&want)
        });
    }
}

impl Pty {
    /// Wait (up to `PATIENCE`) for the program to exit; its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for the program to exit; screen:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}
