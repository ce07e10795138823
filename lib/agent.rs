//! One coworker's directory, `agents/<name>/`:
//!
//! ```text
//! meta.json      how the agent was started (replaced atomically)
//! status.json    what it is doing, derived from its events (replaced atomically)
//! events.jsonl   every line the agent printed, plus `{"type":"mt",…}` lines
//! stderr.log     the agent's standard error (and a detached supervisor's)
//! stop.json      present while an `mt-stop` is in progress
//! running.lock   the liveness lock, held by the supervisor while the agent runs
//!                (or by mt-attach while a person has the session)
//! attached.json  present while a person has the session (see `attach`)
//! inbox/{tmp,new,cur}/   nudges, maildir style (`new/.stop`: soft stop wake-up)
//! inbox/wake     a FIFO the supervisor holds open; rung after each delivery
//! ```

use anyhow::{Context, Result};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::fsutil;
use crate::names;
use crate::statedir::StateDir;

/// How an agent was started; enough to resume it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Meta {
    pub name: String,
    /// The session id chosen at spawn (the agent may report another one;
    /// status.json has what it reported).
    pub session_id: String,
    pub cwd: PathBuf,
    pub worktree: Option<PathBuf>,
    pub task: Option<String>,
    pub task_list: Option<String>,
    pub model: Option<String>,
    pub role: Option<String>,
    pub channel: String,
    /// The agent program, as given (`$MT_AGENT_CMD`, default `claude`).
    pub agent_cmd: String,
    pub extra_args: Vec<String>,
    pub sandbox: bool,
    /// `--idle-exit`, in milliseconds.
    pub idle_exit_ms: Option<u64>,
    /// The `permissions` object of the agent's Claude Code settings (see
    /// `permissions`), kept so a resume starts with the same.
    pub permissions: Option<serde_json::Value>,
    /// The auth profile's name (`mt-profile`); its key stays in its file.
    pub profile: Option<String>,
    /// The coworker prompt composed at the first start (see `prompts`),
    /// appended to the system prompt before `role`; kept for resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Worktrees in other repositories the agent may also work in
    /// (`--add-repo`), given to it with `--add-dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_dirs: Vec<PathBuf>,
    pub created: String,
}

/// meta.json as listings read it: all but the permission profile and the
/// system prompt, which no listing shows and which cost a thousand agents'
/// `mt-ps` a sixth of its time to parse. Converting it names every field of [`Meta`], so a new
/// field cannot be forgotten here.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListedMeta {
    name: String,
    session_id: String,
    cwd: PathBuf,
    worktree: Option<PathBuf>,
    task: Option<String>,
    task_list: Option<String>,
    model: Option<String>,
    role: Option<String>,
    channel: String,
    agent_cmd: String,
    extra_args: Vec<String>,
    sandbox: bool,
    idle_exit_ms: Option<u64>,
    profile: Option<String>,
    add_dirs: Vec<PathBuf>,
    created: String,
}

impl From<ListedMeta> for Meta {
    fn from(m: ListedMeta) -> Meta {
        Meta {
            name: m.name,
            session_id: m.session_id,
            cwd: m.cwd,
            worktree: m.worktree,
            task: m.task,
            task_list: m.task_list,
            model: m.model,
            role: m.role,
            channel: m.channel,
            agent_cmd: m.agent_cmd,
            extra_args: m.extra_args,
            sandbox: m.sandbox,
            idle_exit_ms: m.idle_exit_ms,
            permissions: None,
            profile: m.profile,
            system_prompt: None,
            add_dirs: m.add_dirs,
            created: m.created,
        }
    }
}

/// The states a supervisor writes. `lost` is never written: readers derive it
/// from a live state whose liveness lock is free.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Started, no event yet.
    #[default]
    Starting,
    /// A turn is in progress.
    Working,
    /// Waiting for input.
    Idle,
    /// Ended normally, or stopped on request.
    Exited,
    /// Ended with an error, could not start, or was lost.
    Failed,
    /// Written by a newer version.
    #[serde(other)]
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Working => "working",
            State::Idle => "idle",
            State::Exited => "exited",
            State::Failed => "failed",
            State::Unknown => "unknown",
        }
    }

    /// A state in which an agent process should exist.
    pub fn is_live(self) -> bool {
        matches!(self, State::Starting | State::Working | State::Idle)
    }
}

/// The last rate-limit event the agent reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimit {
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: String,
    /// When the limit resets (RFC 3339), when reported.
    pub resets_at: Option<String>,
    /// `five_hour`, `seven_day`, ...
    pub kind: Option<String>,
    /// When the event arrived.
    pub at: String,
}

/// What the agent is doing, derived by its supervisor from the events.
/// Totals (turns, tokens, cost) cover every run of the same session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub pgid: Option<i32>,
    pub supervisor_pid: Option<i32>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// Completed turns (result events).
    pub turns: u64,
    /// `num_turns` of the last result (model round trips in that turn).
    pub num_turns: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    /// Cost in USD as Claude Code reports it (`total_cost_usd`, cumulative
    /// over the session, resumes included).
    pub cost_usd: f64,
    /// Lines read from the agent's stdout, and how many did not parse.
    pub events: u64,
    pub malformed: u64,
    /// Messages written to the agent's stdin whose turn has not ended.
    pub pending: u64,
    /// Messages delivered to the agent's stdin (prompt and nudges).
    pub inputs: u64,
    /// Ids of tool calls (subagents included) started and not yet answered
    /// by a tool result: while one is open, silence is not a stuck agent.
    pub open_tool_calls: Vec<String>,
    /// Background tasks (shell commands, subagents) Claude Code reports as
    /// still running, which may start a turn of their own when they end.
    pub background_tasks: u64,
    /// Marker in the environment of every process of the current run
    /// (`MT_RUN`), by which its leftovers are found.
    pub run_id: Option<String>,
    pub last_event_at: Option<String>,
    pub last_event_type: Option<String>,
    pub rate_limit: Option<RateLimit>,
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, e.g. `SIGTERM`.
    pub signal: Option<String>,
    /// Error class: `spawn`, `exit`, `signal`, `lost`, or the subtype of a
    /// failed result (`error_max_turns`, `error_during_execution`, ...).
    pub error: Option<String>,
    pub error_detail: Option<String>,
    /// Ended by `mt-stop` or by a signal to the supervisor.
    pub stopped: bool,
    pub stopped_by: Option<String>,
    /// `--idle-exit` closed the agent's stdin.
    pub stdin_closed: bool,
    /// Runs of this session (1 + resumes).
    pub runs: u64,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A stop request left by `mt-stop` for the supervisor to record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StopRequest {
    pub at: String,
    pub by: String,
    pub grace_ms: u64,
    /// Soft stop: the supervisor closes the agent's stdin first.
    pub soft: bool,
}

/// Name of the control file `mt-stop --soft` writes in `inbox/new/` to
/// wake the supervisor (a dot file, so never forwarded as a message).
pub const SOFT_STOP_WAKE: &str = ".stop";

/// The files of one agent.
#[derive(Debug, Clone)]
pub struct AgentDir {
    pub name: String,
    pub dir: PathBuf,
    lock: PathBuf,
}

impl AgentDir {
    /// The directory of agent `name` (checked) in `state`. Nothing is created.
    pub fn new(state: &StateDir, name: &str) -> Result<AgentDir> {
        names::check("agent", name)?;
        Ok(AgentDir {
            name: name.to_string(),
            dir: state.agent(name),
            lock: state.agent_lock(name),
        })
    }

    pub fn meta_path(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }
    pub fn stop_path(&self) -> PathBuf {
        self.dir.join("stop.json")
    }
    /// The Claude Code settings given to the agent with `--settings`.
    pub fn settings_path(&self) -> PathBuf {
        self.dir.join("settings.json")
    }
    pub fn lock_path(&self) -> &Path {
        &self.lock
    }
    /// Who has the session interactively (see `attach`).
    pub fn attached_path(&self) -> PathBuf {
        self.dir.join("attached.json")
    }
    pub fn inbox(&self, sub: &str) -> PathBuf {
        self.dir.join("inbox").join(sub)
    }
    /// The supervisor's doorbell (see `wake`).
    pub fn wake_path(&self) -> PathBuf {
        self.inbox("wake")
    }

    /// Whether this agent has ever been started.
    pub fn exists(&self) -> bool {
        self.meta_path().is_file() || self.status_path().is_file()
    }

    /// Create the directory tree (0700), refusing symlinks in the way.
    pub fn ensure(&self, state: &StateDir) -> Result<()> {
        state.ensure()?;
        fsutil::ensure_subdir(&state.agents())?;
        fsutil::ensure_subdir(&self.dir)?;
        fsutil::ensure_subdir(&self.dir.join("inbox"))?;
        for sub in ["tmp", "new", "cur"] {
            fsutil::ensure_subdir(&self.inbox(sub))?;
        }
        Ok(())
    }

    /// Whether the supervisor holds the liveness lock.
    pub fn running(&self) -> Result<bool> {
        crate::infra::lock::is_held(&self.lock)
    }

    pub fn read_meta(&self) -> Result<Option<Meta>> {
        read_json(&self.meta_path())
    }

    pub fn write_meta(&self, m: &Meta) -> Result<()> {
        write_json(&self.meta_path(), m)
    }

    pub fn read_status(&self) -> Result<Option<Status>> {
        read_json(&self.status_path())
    }

    pub fn write_status(&self, s: &Status) -> Result<()> {
        write_json(&self.status_path(), s)
    }

    pub fn read_stop(&self) -> Option<StopRequest> {
        read_json(&self.stop_path()).ok().flatten()
    }

    /// The state to show: a live state with a free liveness lock means the
    /// supervisor died without recording the end: `lost`.
    pub fn shown_state(&self, status: Option<&Status>) -> Result<&'static str> {
        let running = self.running()?;
        let attached =
            running && !status.is_some_and(|s| s.state.is_live()) && self.attached_path().is_file();
        Ok(match status {
            _ if attached => "attached",
            None if running => "starting",
            None => "unknown",
            Some(s) if s.state.is_live() && !running => "lost",
            Some(s) => s.state.as_str(),
        })
    }

    /// Put a nudge in the inbox: write it under `tmp/`, then rename it into
    /// `new/`, so the supervisor never sees half a message; then ring the
    /// supervisor's doorbell (after the rename, so its rescan finds the
    /// message). Returns its path.
    pub fn deliver(&self, text: &str) -> Result<PathBuf> {
        self.deliver_as(text, Durability::Synced)
    }

    /// `deliver`; with `Durability::Deferred` the message is not synced
    /// here, and the caller syncs (`fsutil::sync_filesystem`) before it
    /// counts the message as delivered.
    pub fn deliver_as(&self, text: &str, durability: Durability) -> Result<PathBuf> {
        let name = inbox_name();
        let tmp = self.inbox("tmp").join(&name);
        let new = self.inbox("new").join(&name);
        let res = (|| -> io::Result<()> {
            let mut f = fsutil::options().write(true).create_new(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            if durability == Durability::Synced && fsutil::fsync_enabled() {
                f.sync_data()?;
            }
            fs::rename(&tmp, &new)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.with_context(|| format!("cannot write to the inbox of {}", self.name))
            .code(CANTCREAT)?;
        crate::infra::wake::ring(&self.wake_path());
        Ok(new)
    }

    /// Messages waiting in `new/`, oldest first (names sort by time).
    pub fn inbox_new(&self) -> Result<Vec<PathBuf>> {
        let dir = self.inbox("new");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for ent in rd {
            let ent = ent?;
            let n = ent.file_name();
            // Skip dot files: temporary names of other tools.
            if n.to_string_lossy().starts_with('.') || !ent.file_type()?.is_file() {
                continue;
            }
            out.push(ent.path());
        }
        out.sort();
        Ok(out)
    }
}

/// A unique, time-ordered inbox file name: nanoseconds, pid, counter.
fn inbox_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{ns:020}.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| fail(DATAERR, format!("{} does not parse: {e}", path.display())))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut data = serde_json::to_vec_pretty(v).context("cannot encode JSON")?;
    data.push(b'\n');
    fsutil::write_atomic(path, &data, false)
}

/// Names of the agents in `state` that have been started at least once.
pub fn list(state: &StateDir) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(state.agents()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).context("cannot list agents"),
    };
    for ent in rd {
        let ent = ent?;
        if let Some(n) = ent.file_name().to_str()
            && names::is_valid(n)
            && ent.file_type()?.is_dir()
            && AgentDir::new(state, n)?.exists()
        {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `arg` is a glob pattern rather than a name: names never hold
/// `*`, `?` or `[`.
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// The agents `args` name: each a name (of an agent that must exist) or a
/// glob pattern (`*`, `?`, `[a-z]`, `[!0-9]`) matched against every
/// agent's name. Each agent comes once, in the order of `args` (a pattern's
/// matches sorted). Also returns the arguments that named no agent.
pub fn select(state: &StateDir, args: &[String]) -> Result<(Vec<AgentDir>, Vec<String>)> {
    let mut all: Option<Vec<String>> = None;
    let mut picked: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for arg in args {
        let found: Vec<String> = if is_pattern(arg) {
            if all.is_none() {
                all = Some(list(state)?);
            }
            let all = all.as_deref().unwrap_or_default();
            all.iter().filter(|n| glob(arg, n)).cloned().collect()
        } else {
            match existing(state, arg) {
                Ok(_) => vec![arg.clone()],
                Err(e) if crate::exit::code_of(&e) == crate::exit::NO => vec![],
                Err(e) => return Err(e),
            }
        };
        if found.is_empty() {
            missing.push(arg.clone());
        }
        for n in found {
            if !picked.contains(&n) {
                picked.push(n);
            }
        }
    }
    let agents = picked
        .iter()
        .map(|n| AgentDir::new(state, n))
        .collect::<Result<_>>()?;
    Ok((agents, missing))
}

/// Whether `name` matches the shell-style glob `pattern`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was, and how much of `s` it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(&p[pi..], s[si]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (s[si] == b'[').then_some(1),
            },
            Some(&c) => (c == s[si]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                si += 1;
            }
            (None, Some((sp, taken))) => {
                star = Some((sp, taken + 1));
                pi = sp + 1;
                si = taken + 1;
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Match `c` against the bracket expression at the start of `p`: whether
/// it matched and the expression's length; `None` when it is not closed.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&hi| hi != b']') {
            hit |= (lo..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

/// An agent that must exist (exit 1 when it was never started).
pub fn existing(state: &StateDir, name: &str) -> Result<AgentDir> {
    let a = AgentDir::new(state, name)?;
    if !a.exists() {
        return Err(fail(crate::exit::NO, format!("no agent named {name}")));
    }
    Ok(a)
}

/// One agent as the tools show it.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    /// The state to show (see `AgentDir::shown_state`), `lost` included.
    pub shown: &'static str,
    /// Its supervisor holds the liveness lock.
    pub running: bool,
    /// meta.json; from [`all`] and [`infos`] without `permissions`.
    pub meta: Option<Meta>,
    pub status: Option<Status>,
}

/// What is known about agent `name` (files that do not parse count as
/// missing).
pub fn info(state: &StateDir, name: &str) -> Result<Info> {
    let a = AgentDir::new(state, name)?;
    let status = a.read_status().ok().flatten();
    Ok(Info {
        name: name.to_string(),
        shown: a.shown_state(status.as_ref())?,
        running: a.running()?,
        meta: a.read_meta().ok().flatten(),
        status,
    })
}

/// Every agent that has been started at least once, by name.
pub fn all(state: &StateDir) -> Result<Vec<Info>> {
    let names = subdirs(state)?;
    Ok(infos(state, &names)?.into_iter().flatten().collect())
}

/// The valid names of the directories in `agents/`, sorted.
fn subdirs(state: &StateDir) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(state.agents()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).context("cannot list agents"),
    };
    for ent in rd {
        let ent = ent?;
        if let Some(n) = ent.file_name().to_str()
            && names::is_valid(n)
            && ent.file_type()?.is_dir()
        {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Below this many agents, one thread reads them all.
const PARALLEL_FROM: usize = 64;

/// [`info`] for each of `names` (checked), `None` for a name that was never
/// started. Made for a thousand agents: the agents directory is opened
/// once and each agent's files are opened relative to it (no long path
/// walks, no stat), each liveness lock is tested once, and a few threads
/// share the work.
pub fn infos(state: &StateDir, names: &[String]) -> Result<Vec<Option<Info>>> {
    for n in names {
        names::check("agent", n)?;
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = match nix::fcntl::open(&state.agents(), flags, Mode::empty()) {
        Ok(d) => d,
        Err(nix::errno::Errno::ENOENT) => return Ok(names.iter().map(|_| None).collect()),
        Err(e) => return Err(e).context("cannot open the agents directory"),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(names.len().div_ceil(PARALLEL_FROM))
        .max(1);
    if threads == 1 {
        return Ok(probe_all(&dir, names));
    }
    let chunk = names.len().div_ceil(threads);
    Ok(std::thread::scope(|s| {
        let parts: Vec<_> = names
            .chunks(chunk)
            .map(|part| s.spawn(|| probe_all(&dir, part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }))
}

/// Agents read one after another, with one buffer for their files.
fn probe_all(dir: &OwnedFd, names: &[String]) -> Vec<Option<Info>> {
    let mut buf = vec![0; 16 << 10];
    names.iter().map(|n| probe(dir, n, &mut buf)).collect()
}

/// One agent, its files opened relative to `dir` (agents/) and read into
/// `buf`. The status is read before the lock is tested, as `info` does.
fn probe(dir: &OwnedFd, name: &str, buf: &mut Vec<u8>) -> Option<Info> {
    let status_len = read_at(dir, &format!("{name}/status.json"), buf);
    // A file that does not parse counts as missing.
    let status: Option<Status> = status_len.and_then(|n| serde_json::from_slice(&buf[..n]).ok());
    let running = lock_held_at(dir, &format!("{name}/running.lock"));
    let meta_len = read_at(dir, &format!("{name}/meta.json"), buf);
    if status_len.is_none() && meta_len.is_none() {
        return None;
    }
    let meta = meta_len
        .and_then(|n| serde_json::from_slice::<ListedMeta>(&buf[..n]).ok())
        .map(Meta::from);
    // A person holds the lock with no supervisor running (see `attach`);
    // looked up only then, so listing running agents costs nothing more.
    let attached = running
        && !status.as_ref().is_some_and(|s| s.state.is_live())
        && read_at(dir, &format!("{name}/attached.json"), &mut Vec::new()).is_some();
    let shown = match &status {
        _ if attached => "attached",
        None if running => "starting",
        None => "unknown",
        Some(s) if s.state.is_live() && !running => "lost",
        Some(s) => s.state.as_str(),
    };
    Some(Info {
        name: name.to_string(),
        shown,
        running,
        meta,
        status,
    })
}

/// Read regular file `path` below `dir` into the start of `buf` (grown as
/// needed, never shrunk: one buffer serves a thousand agents); its length,
/// or `None` when it cannot be read as one. Never blocks on a FIFO and
/// never asks for the size.
fn read_at(dir: &OwnedFd, path: &str, buf: &mut Vec<u8>) -> Option<usize> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let mut f = File::from(openat(dir, path, flags, Mode::empty()).ok()?);
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((len * 2).max(4096), 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => return Some(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A directory, a FIFO without a writer, an I/O error.
            Err(_) => return None,
        }
    }
}

/// `lock::is_held` for a lock below `dir`; an error counts as not held.
fn lock_held_at(dir: &OwnedFd, path: &str) -> bool {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, path, flags, Mode::empty()) else {
        return false;
    };
    matches!(
        File::from(fd).try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

/// Whether agent `name` runs now (its supervisor holds the liveness lock).
pub fn is_running(state: &StateDir, name: &str) -> Result<bool> {
    AgentDir::new(state, name)?.running()
}

/// The last sign of life in a status: the newest of the last event, the
/// last save by the supervisor (inputs too) and the start.
pub fn last_activity(st: &Status) -> Option<chrono::DateTime<chrono::Utc>> {
    [&st.last_event_at, &st.updated_at, &st.started_at]
        .into_iter()
        .flatten()
        .filter_map(|s| crate::infra::time::parse_stamp(s))
        .max()
}

/// What a nudge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudged {
    /// In the inbox of a running agent; its supervisor forwards it at once.
    Delivered,
    /// The agent was stopped; it has been resumed in the background and
    /// reads the message first.
    Resumed,
    /// Left in the inbox of an agent that is not running and was not
    /// resumed; says why.
    Waiting(String),
}

/// Send `text` to agent `name`: into its inbox, which a running agent's
/// supervisor forwards to its standard input. A stopped agent with a saved
/// session is resumed in the background (detached) when `resume` is set.
/// Exit 1 when there is no such agent and no inbox of that name.
pub fn nudge(state: &StateDir, name: &str, text: &str, resume: bool) -> Result<Nudged> {
    nudge_as(state, name, text, resume, Durability::Synced)
}

/// Whether a delivery syncs its message itself, or leaves that to a caller
/// delivering many at once (one sync for the lot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Synced,
    Deferred,
}

/// `nudge`, with the message synced now or by the caller (`Durability`).
pub fn nudge_as(
    state: &StateDir,
    name: &str,
    text: &str,
    resume: bool,
    durability: Durability,
) -> Result<Nudged> {
    let a = AgentDir::new(state, name)?;
    // An inbox without an agent (made by hand, e.g. for the lead) still
    // takes messages.
    if !a.exists() && !a.inbox("new").is_dir() {
        return Err(fail(crate::exit::NO, format!("no agent named {name}")));
    }
    if text.trim().is_empty() {
        return Err(fail(DATAERR, "refusing an empty message"));
    }
    a.ensure(state)?;
    a.deliver_as(text, durability)?;
    if a.running()? {
        // A person has the session: the message waits for the hand-back.
        if let Some(h) = crate::attach::holder(&a) {
            return Ok(Nudged::Waiting(format!("{name} is attached by {}", h.by)));
        }
        return Ok(Nudged::Delivered);
    }
    if !a.exists() {
        return Ok(Nudged::Waiting(format!("{name} has never been started")));
    }
    if !resume {
        return Ok(Nudged::Waiting(format!("{name} is not running")));
    }
    let opts = crate::spawn::Options {
        name: name.to_string(),
        resume: true,
        ..crate::spawn::Options::default()
    };
    // The resumed supervisor delivers the inbox first thing.
    match crate::spawn::spawn_detached(state, opts) {
        Ok(_) => Ok(Nudged::Resumed),
        // Started meanwhile by someone else: its supervisor delivers it.
        Err(e) if crate::exit::code_of(&e) == crate::exit::NO => Ok(Nudged::Delivered),
        Err(e) if crate::exit::code_of(&e) == DATAERR => Ok(Nudged::Waiting(format!("{e:#}"))),
        Err(e) => Err(e),
    }
}

/// An agent whose status says live while no supervisor holds its liveness
/// lock: its supervisor died without recording the end. Under the lock (so
/// no new run starts meanwhile), kill what is left of its session and
/// record it as failed with error `lost` (`stopped_by` set when this is
/// part of a stop). Returns the status as it was when this call recorded
/// the loss; `None` when the agent runs, is not live, or someone else holds
/// the lock right now.
pub fn mark_lost(
    state: &StateDir,
    a: &AgentDir,
    stopped_by: Option<String>,
) -> Result<Option<Status>> {
    let Some(_held) = crate::infra::lock::try_exclusive(a.lock_path())? else {
        return Ok(None);
    };
    let Some(before) = a.read_status()? else {
        return Ok(None);
    };
    if !before.state.is_live() {
        return Ok(None);
    }
    let mut st = before.clone();
    kill_leftovers(state, &st);
    st.state = State::Failed;
    st.error = Some("lost".into());
    st.error_detail = Some("the supervisor ended without recording the agent's end".into());
    st.stopped = stopped_by.is_some();
    st.stopped_by = stopped_by;
    st.pending = 0;
    st.open_tool_calls.clear();
    st.ended_at = Some(crate::infra::time::now_stamp());
    st.updated_at = st.ended_at.clone();
    a.write_status(&st)?;
    Ok(Some(before))
}

/// What is left of the run `st` describes, its supervisor gone: every
/// process carrying the run's marker (see `procs`), whatever session it
/// made, except the supervisors of other agents (an agent may start agents
/// of its own, which outlive it). A status from before run markers falls
/// back to the members of the agent's session that carry its name.
pub fn leftovers(state: &StateDir, st: &Status) -> Vec<i32> {
    match &st.run_id {
        Some(run) => {
            let mut pids = crate::infra::procs::marked(run);
            if !pids.is_empty() {
                let others = other_supervisors(state, &st.name);
                pids.retain(|p| !others.contains(p));
            }
            pids
        }
        None => match st.pgid {
            Some(sid) => {
                let root = state.root().to_string_lossy().into_owned();
                crate::infra::procs::leftovers(sid, &st.name, &root)
            }
            None => Vec::new(),
        },
    }
}

/// The supervisors of agents other than `name`.
fn other_supervisors(state: &StateDir, name: &str) -> Vec<i32> {
    list(state)
        .unwrap_or_default()
        .iter()
        .filter(|n| *n != name)
        .filter_map(|n| {
            AgentDir::new(state, n)
                .ok()?
                .read_status()
                .ok()??
                .supervisor_pid
        })
        .collect()
}

/// What is left of the running agent `st` describes, from its live
/// supervisor: the supervisor's own descendants (it is their subreaper, so
/// every process the agent started is among them) that carry the run's
/// marker or sit in the agent's session, except the supervisors of agents
/// the agent started, with theirs. Costs in proportion to the tree, not to
/// every process on the machine.
pub fn tree_leftovers(state: &StateDir, st: &Status) -> Vec<i32> {
    let me = std::process::id() as i32;
    let tree = crate::infra::procs::descendants(me);
    // Only an mt program in the tree can be another agent's supervisor;
    // reading every agent's status is left for that case.
    let spared: Vec<i32> = if tree
        .iter()
        .any(|&p| crate::infra::procs::program(p).is_some_and(|n| n.starts_with("mt-")))
    {
        let sups = other_supervisors(state, &st.name);
        let mut spared: Vec<i32> = tree.iter().copied().filter(|p| sups.contains(p)).collect();
        for s in spared.clone() {
            spared.extend(crate::infra::procs::descendants(s));
        }
        spared
    } else {
        Vec::new()
    };
    let sid = st.pgid.unwrap_or(0);
    tree.into_iter()
        .filter(|p| !spared.contains(p))
        .filter(|&p| {
            let in_session = sid > 1 && crate::infra::procs::stat(p).is_some_and(|s| s.sid == sid);
            in_session
                || st.run_id.as_deref().is_some_and(|r| {
                    crate::infra::procs::environ_has(p, crate::infra::procs::RUN_VAR, r)
                })
        })
        .collect()
}

/// SIGKILL to every leftover of `st`'s run; returns their pids.
pub fn kill_leftovers(state: &StateDir, st: &Status) -> Vec<i32> {
    let pids = leftovers(state, st);
    for &p in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids
}

/// Wait until every lock in `agents` is free or `limit` passes; returns the
/// indexes of the agents still running. Each waiter blocks in flock(2) in a
/// thread of its own; the threads that finished are joined before return
/// (so a caller may fork afterwards), the others stay blocked on a lock.
pub fn wait_free(agents: &[AgentDir], limit: Option<std::time::Duration>) -> Vec<usize> {
    use std::sync::mpsc;
    use std::time::Instant;
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let tx = tx.clone();
        let path = a.lock_path().to_path_buf();
        // A thousand waiters: each needs little more than a path.
        let waiter = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                if let Ok(f) = fsutil::open_read(&path) {
                    let _ = f.lock_shared();
                }
                let _ = tx.send(i);
            });
        // No thread to wait with: it counts as still running.
        if let Ok(h) = waiter {
            handles.push(h);
        }
    }
    drop(tx);
    let mut left: Vec<usize> = (0..agents.len()).collect();
    let until = limit.map(|l| Instant::now() + l);
    while !left.is_empty() {
        let got = match until {
            None => rx.recv().ok(),
            Some(t) => rx
                .recv_timeout(t.saturating_duration_since(Instant::now()))
                .ok(),
        };
        match got {
            Some(i) => left.retain(|&j| j != i),
            None => break,
        }
    }
    for (i, h) in handles.into_iter().enumerate() {
        if !left.contains(&i) {
            let _ = h.join();
        }
    }
    left
}

fn signal_group(a: &AgentDir, sig: nix::sys::signal::Signal) {
    if let Ok(Some(st)) = a.read_status()
        && let Some(pgid) = st.pgid
        && pgid > 1
        && a.running().unwrap_or(false)
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig);
    }
}

/// Stop agents: SIGTERM to each running agent's process group (after
/// leaving a stop request naming `by` for its supervisor to record), up to
/// `grace` for them to end, then SIGKILL. Agents found lost have what is
/// left of their session killed. Returns the names still running after
/// SIGKILL (their supervisor did not let go of the lock within 5 seconds).
pub fn stop(
    state: &StateDir,
    agents: &[AgentDir],
    grace: std::time::Duration,
    by: &str,
) -> Result<Vec<String>> {
    stop_with(state, agents, grace, by, false)
}

/// [`stop`], or with `soft` first ask each supervisor to close its agent's
/// stdin (a headless session ends cleanly on end of input) and wait up to
/// `grace` for the agents to exit on their own; those still running then
/// get the usual SIGTERM, `grace`, SIGKILL.
pub fn stop_with(
    state: &StateDir,
    agents: &[AgentDir],
    grace: std::time::Duration,
    by: &str,
    soft: bool,
) -> Result<Vec<String>> {
    use nix::sys::signal::Signal;
    let request = StopRequest {
        at: crate::infra::time::now_stamp(),
        by: by.to_string(),
        grace_ms: grace.as_millis() as u64,
        soft,
    };
    let data = serde_json::to_vec(&request)?;
    let mut live = Vec::new();
    for a in agents {
        // A person has the session on a terminal: theirs to end.
        if let Some(h) = crate::attach::holder(a) {
            crate::exit::warn(format_args!(
                "{} is attached by {} (mt-attach pid {}): not stopped",
                a.name, h.by, h.pid
            ));
            continue;
        }
        if a.running()? {
            // Tell the supervisor why its agent is about to end, then act.
            fsutil::write_atomic(&a.stop_path(), &data, false)?;
            if soft {
                // The doorbell wakes the supervisor, which then reads
                // stop.json and closes the agent's stdin. inbox/new/.stop
                // wakes a supervisor of an older version (inotify); one
                // open, no temp file: nothing of ours appears after the
                // supervisor cleaned up.
                let wake = a.inbox("new").join(SOFT_STOP_WAKE);
                fsutil::options()
                    .write(true)
                    .create(true)
                    .open(&wake)
                    .with_context(|| format!("cannot write {}", wake.display()))?;
                crate::infra::wake::ring(&a.wake_path());
            } else {
                signal_group(a, Signal::SIGTERM);
            }
            live.push(a.clone());
        } else {
            mark_lost(state, a, Some(format!("mt-stop by {by}")))?;
        }
    }
    if soft {
        let left = wait_free(&live, Some(grace));
        live = left.into_iter().map(|i| live[i].clone()).collect();
        for a in &live {
            signal_group(a, Signal::SIGTERM);
        }
    }
    let left = wait_free(&live, Some(grace));
    let live: Vec<AgentDir> = left.into_iter().map(|i| live[i].clone()).collect();
    for a in &live {
        signal_group(a, Signal::SIGKILL);
    }
    let left = wait_free(&live, Some(std::time::Duration::from_secs(5)));
    Ok(left.into_iter().map(|i| live[i].name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_ordered_and_atomic() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let a = AgentDir::new(&st, "york").unwrap();
        a.ensure(&st).unwrap();
        for i in 0..20 {
            a.deliver(&format!("m{i}")).unwrap();
        }
        let got: Vec<String> = a
            .inbox_new()
            .unwrap()
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(got, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
        assert_eq!(fs::read_dir(a.inbox("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn globs() {
        for (p, n) in [
            ("a*", "a"),
            ("a*", "a17"),
            ("*", "york"),
            ("*-1", "w-x-1"),
            ("a?c", "abc"),
            ("w[0-9]", "w7"),
            ("w[!0-9]", "wx"),
            ("w[^a-c]z", "wdz"),
            ("[]x]", "]"),
            ("a[b", "a[b"),
            ("*a*b*", "xxaybzb"),
        ] {
            assert!(glob(p, n), "{p} should match {n}");
        }
        for (p, n) in [
            ("a*", "ba"),
            ("a?c", "ac"),
            ("w[0-9]", "wx"),
            ("w[!0-9]", "w3"),
            ("*-1", "w-12"),
            ("a", "ab"),
            ("*a*b", "xxaybzbc"),
        ] {
            assert!(!glob(p, n), "{p} should not match {n}");
        }
        assert!(is_pattern("a*") && is_pattern("w[1]") && !is_pattern("york"));
    }

    #[test]
    fn select_by_names_and_patterns() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        for n in ["a1", "a2", "b1"] {
            let a = AgentDir::new(&st, n).unwrap();
            a.ensure(&st).unwrap();
            a.write_meta(&Meta::default()).unwrap();
        }
        let args: Vec<String> = ["b1", "a*", "a1", "c*", "zz"].map(String::from).into();
        let (agents, missing) = select(&st, &args).unwrap();
        let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["b1", "a1", "a2"]);
        assert_eq!(missing, ["c*", "zz"]);
        let infos = infos(&st, &["a2".into(), "zz".into()]).unwrap();
        assert_eq!(infos[0].as_ref().unwrap().shown, "unknown");
        assert!(infos[1].is_none());
    }

    #[test]
    fn status_round_trip_and_unknown_state() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let a = AgentDir::new(&st, "york").unwrap();
        a.ensure(&st).unwrap();
        let s = Status {
            name: "york".into(),
            state: State::Idle,
            cost_usd: 0.25,
            ..Status::default()
        };
        a.write_status(&s).unwrap();
        assert_eq!(a.read_status().unwrap().unwrap(), s);
        // A live state without a supervisor is shown as lost.
        assert_eq!(a.shown_state(Some(&s)).unwrap(), "lost");
        fs::write(a.status_path(), r#"{"state":"dreaming","extra":1}"#).unwrap();
        assert_eq!(a.read_status().unwrap().unwrap().state, State::Unknown);
        assert!(AgentDir::new(&st, "../x").is_err());
        assert_eq!(list(&st).unwrap(), vec!["york".to_string()]);
    }
}
