//! One coworker's directory, `agents/<name>/`:
//!
//! ```text
//! meta.json      how the agent was started (replaced atomically)
//! status.json    what it is doing, derived from its events (replaced atomically)
//! events.jsonl   every line the agent printed, plus `{"type":"mt",…}` lines
//! stderr.log     the agent's standard error (and a detached supervisor's)
//! stop.json      present while an `mt-stop` is in progress
//! running.lock   the liveness lock, held by the supervisor while the agent runs
//! inbox/{tmp,new,cur}/   nudges, maildir style
//! ```

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::fsutil;
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
    pub created: String,
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
    /// Cost in USD as reported (`total_cost_usd`, cumulative per run).
    pub cost_usd: f64,
    /// Lines read from the agent's stdout, and how many did not parse.
    pub events: u64,
    pub malformed: u64,
    /// Messages written to the agent's stdin whose turn has not ended.
    pub pending: u64,
    /// Messages delivered to the agent's stdin (prompt and nudges).
    pub inputs: u64,
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
}

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
    pub fn lock_path(&self) -> &Path {
        &self.lock
    }
    pub fn inbox(&self, sub: &str) -> PathBuf {
        self.dir.join("inbox").join(sub)
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
        crate::lock::is_held(&self.lock)
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
        Ok(match status {
            None if running => "starting",
            None => "unknown",
            Some(s) if s.state.is_live() && !running => "lost",
            Some(s) => s.state.as_str(),
        })
    }

    /// Put a nudge in the inbox: write it under `tmp/`, then rename it into
    /// `new/`, so the supervisor never sees half a message. Returns its path.
    pub fn deliver(&self, text: &str) -> Result<PathBuf> {
        let name = inbox_name();
        let tmp = self.inbox("tmp").join(&name);
        let new = self.inbox("new").join(&name);
        let res = (|| -> io::Result<()> {
            let mut f = fsutil::options().write(true).create_new(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            if fsutil::fsync_enabled() {
                f.sync_data()?;
            }
            fs::rename(&tmp, &new)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.with_context(|| format!("cannot write to the inbox of {}", self.name))
            .code(CANTCREAT)?;
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

/// An agent that must exist (exit 1 when it was never started).
pub fn existing(state: &StateDir, name: &str) -> Result<AgentDir> {
    let a = AgentDir::new(state, name)?;
    if !a.exists() {
        return Err(fail(crate::exit::NO, format!("no agent named {name}")));
    }
    Ok(a)
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
