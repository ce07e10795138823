//! Reminders: a message for the channel and a nudge for the lead, due at a
//! time, when every task of a list is completed, or when besides all the
//! coworkers' work is merged (`all-work-merged`, by what `mt-pr sync` saw).
//!
//! ```text
//! reminders/LOCK             taken to allocate ids
//! reminders/last-id          the largest id ever given (ids are never reused)
//! reminders/pending/<id>.json
//! reminders/firing/<id>.json claimed, being delivered (locked by the claimer)
//! reminders/fired/<id>.json
//! reminders/cancelled/<id>.json
//! ```
//!
//! A due reminder fires exactly once however many `check`s run at once:
//! a checker locks the pending file (flock) and renames it into `firing/`;
//! the rename succeeds for one process only, and a `cancel` is the same
//! rename into `cancelled/`. The claimer keeps the lock while it delivers,
//! then writes `fired/<id>.json` and removes the `firing/` file.
//!
//! A crash between the claim and the end leaves an unlocked file in
//! `firing/`. The next `check` takes it over and delivers again, but first
//! looks for the reminder's record on the channel (the record carries the
//! reminder id in `meta.reminder`), so the record is still posted once; only
//! the nudge may then come twice. A reminder is never lost to a crash.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::channel::{self, Draft};
use crate::exit::{DATAERR, NO, fail};
use crate::statedir::StateDir;
use crate::tasks::{self, TaskList};
use crate::{agent, infra::fsutil, infra::lock, infra::time};

/// The test-only clock: `MT_REMIND_NOW` (RFC 3339) fixes the time.
pub const NOW_VAR: &str = "MT_REMIND_NOW";

pub fn now() -> DateTime<Utc> {
    std::env::var(NOW_VAR)
        .ok()
        .and_then(|s| time::parse_stamp(&s))
        .unwrap_or_else(Utc::now)
}

/// How many of the channel's newest records a takeover searches for a
/// record it may already have posted.
const RECOVERY_SCAN: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// An RFC 3339 time.
    At(String),
    /// Every task of a list is completed (and there is at least one).
    AllTasksDone { list: String, dir: PathBuf },
    /// As `AllTasksDone`, and every coworker's pull request is merged
    /// (see `pr::merged`).
    AllWorkMerged { list: String, dir: PathBuf },
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            When::At(t) => write!(f, "at {t}"),
            When::AllTasksDone { list, .. } => write!(f, "when all tasks of {list} are done"),
            When::AllWorkMerged { list, .. } => {
                write!(
                    f,
                    "when all tasks of {list} are done and all work is merged"
                )
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reminder {
    pub id: String,
    pub message: String,
    pub when: When,
    /// Where the record goes.
    pub channel: String,
    /// Who gets the nudge.
    pub to: String,
    /// Who set it.
    pub from: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
}

/// Where a reminder is in its life; also its directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Pending,
    Firing,
    Fired,
    Cancelled,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Pending,
        Stage::Firing,
        Stage::Fired,
        Stage::Cancelled,
    ];

    pub fn dir(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Firing => "firing",
            Stage::Fired => "fired",
            Stage::Cancelled => "cancelled",
        }
    }
}

/// What `add` needs besides the id and the time.
pub struct NewReminder {
    pub message: String,
    pub when: When,
    pub channel: String,
    pub to: String,
    pub from: String,
}

/// The outcome of `cancel`.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    Done,
    AlreadyFired,
    AlreadyCancelled,
}

/// What one `check` did.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub fired: Vec<Reminder>,
    pub errors: Vec<anyhow::Error>,
}

pub struct Store {
    state: StateDir,
    root: PathBuf,
}

/// Ids are decimal numbers, so they are safe file names once checked.
pub fn check_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(
            DATAERR,
            format!(
                "invalid reminder id {}: ids are numbers",
                crate::names::quote(id)
            ),
        ));
    }
    Ok(id)
}

impl Store {
    pub fn new(state: &StateDir) -> Store {
        Store {
            state: state.clone(),
            root: state.reminders(),
        }
    }

    fn path(&self, stage: Stage, id: &str) -> PathBuf {
        self.root.join(stage.dir()).join(format!("{id}.json"))
    }

    fn ensure(&self) -> Result<()> {
        self.state.ensure()?;
        fsutil::ensure_subdir(&self.root)?;
        for s in Stage::ALL {
            fsutil::ensure_subdir(&self.root.join(s.dir()))?;
        }
        Ok(())
    }

    /// Store a new reminder under the next id.
    pub fn add(&self, new: NewReminder) -> Result<Reminder> {
        self.ensure()?;
        let _lock = lock::exclusive_within(&self.root.join("LOCK"), Duration::from_secs(10))?;
        let last_path = self.root.join("last-id");
        let last = match fsutil::read_regular(&last_path) {
            Ok(s) => String::from_utf8_lossy(&s)
                .trim()
                .parse::<u64>()
                .unwrap_or(0),
            Err(_) => 0,
        };
        // Also past every id on disk, should last-id be lost.
        let mut max = last;
        for s in Stage::ALL {
            for id in self.ids(s)? {
                max = max.max(id.parse().unwrap_or(0));
            }
        }
        let id = (max + 1).to_string();
        fsutil::write_atomic(&last_path, format!("{id}\n").as_bytes(), true)?;
        let r = Reminder {
            id: id.clone(),
            message: new.message,
            when: new.when,
            channel: new.channel,
            to: new.to,
            from: new.from,
            created_at: time::stamp(now()),
            fired_at: None,
            cancelled_at: None,
        };
        write_reminder(&self.path(Stage::Pending, &id), &r)?;
        Ok(r)
    }

    /// The ids in one stage directory, in numeric order.
    fn ids(&self, stage: Stage) -> Result<Vec<String>> {
        let dir = self.root.join(stage.dir());
        let mut out: Vec<String> = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for ent in rd {
            let name = ent?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && check_id(id).is_ok()
            {
                out.push(id.to_string());
            }
        }
        out.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    /// Reminders in the given stages, by id.
    pub fn list(&self, stages: &[Stage]) -> Result<Vec<(Stage, Reminder)>> {
        let mut out = Vec::new();
        for &s in stages {
            for id in self.ids(s)? {
                // One may move on between listing and reading; skip it.
                if let Some(r) = read_reminder(&self.path(s, &id))? {
                    out.push((s, r));
                }
            }
        }
        out.sort_by_key(|(_, r)| r.id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    /// Cancel a pending reminder: the same rename a checker claims with, so
    /// exactly one of the two wins.
    pub fn cancel(&self, id: &str) -> Result<Cancelled> {
        check_id(id)?;
        let to = self.path(Stage::Cancelled, id);
        match fs::rename(self.path(Stage::Pending, id), &to) {
            Ok(()) => {
                if let Some(mut r) = read_reminder(&to)? {
                    r.cancelled_at = Some(time::now_stamp());
                    write_reminder(&to, &r)?;
                }
                Ok(Cancelled::Done)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.path(Stage::Cancelled, id).exists() {
                    Ok(Cancelled::AlreadyCancelled)
                } else if self.path(Stage::Fired, id).exists()
                    || self.path(Stage::Firing, id).exists()
                {
                    Ok(Cancelled::AlreadyFired)
                } else {
                    Err(fail(DATAERR, format!("no reminder {id}")))
                }
            }
            Err(e) => Err(e).context(format!("cannot cancel reminder {id}")),
        }
    }

    /// Fire every due reminder, and finish deliveries a crashed checker
    /// left half done. One reminder that cannot be delivered does not hold
    /// up the others; it stays where it is for the next check.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        if !self.root.is_dir() {
            return Ok(report);
        }
        self.ensure()?;
        let note = |res: Result<Option<Reminder>>, report: &mut CheckReport| match res {
            Ok(Some(r)) => report.fired.push(r),
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        };
        for id in self.ids(Stage::Firing)? {
            note(self.take_over(&id), &mut report);
        }
        let now = now();
        for id in self.ids(Stage::Pending)? {
            let res = (|| {
                let Some(r) = read_reminder(&self.path(Stage::Pending, &id))? else {
                    return Ok(None);
                };
                if !is_due(&self.state, &r, now)? {
                    return Ok(None);
                }
                self.claim(&id)
            })();
            note(res, &mut report);
        }
        Ok(report)
    }

    /// Lock the pending file, rename it into firing/, deliver.
    fn claim(&self, id: &str) -> Result<Option<Reminder>> {
        let pending = self.path(Stage::Pending, id);
        let Some(file) = open_locked(&pending)? else {
            return Ok(None);
        };
        let firing = self.path(Stage::Firing, id);
        match fs::rename(&pending, &firing) {
            Ok(()) => {}
            // Claimed, or cancelled, by someone else first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context(format!("cannot claim reminder {id}")),
        }
        let Some(r) = read_reminder(&firing)? else {
            return Ok(None);
        };
        self.deliver(r, &file, false).map(Some)
    }

    /// A file in firing/ whose lock is free: its claimer died.
    fn take_over(&self, id: &str) -> Result<Option<Reminder>> {
        let firing = self.path(Stage::Firing, id);
        let Some(file) = open_locked(&firing)? else {
            return Ok(None);
        };
        // The claimer may have finished between our open and our lock.
        let same = fs::metadata(&firing)
            .ok()
            .is_some_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
        if !same {
            return Ok(None);
        }
        let Some(r) = read_reminder(&firing)? else {
            return Ok(None);
        };
        if self.path(Stage::Fired, id).exists() {
            // Only the clean-up was left.
            let _ = fs::remove_file(&firing);
            return Ok(None);
        }
        self.deliver(r, &file, true).map(Some)
    }

    /// Post, nudge, then record as fired. `_lock` is held throughout.
    fn deliver(&self, mut r: Reminder, _lock: &File, recovering: bool) -> Result<Reminder> {
        if !(recovering && self.already_posted(&r)?) {
            post(&self.state, &r)?;
        }
        let text = format!("Reminder {}: {}", r.id, r.message);
        // A running agent gets it now, a stopped one is resumed with it; one
        // that cannot be resumed finds it in its inbox when it next runs.
        match agent::nudge(&self.state, &r.to, &text, true) {
            Ok(_) => {}
            // Nobody of that name (the lead, often): the record is enough.
            Err(e) if crate::exit::code_of(&e) == NO => {}
            // The record is on the channel; a lost nudge is not worth
            // firing twice for.
            Err(e) => crate::exit::warn(format_args!("cannot nudge {}: {e:#}", r.to)),
        }
        r.fired_at = Some(time::now_stamp());
        write_reminder(&self.path(Stage::Fired, &r.id), &r)?;
        let _ = fs::remove_file(self.path(Stage::Firing, &r.id));
        Ok(r)
    }

    fn already_posted(&self, r: &Reminder) -> Result<bool> {
        if crate::names::problem(&r.channel).is_some() {
            return Ok(false);
        }
        let lines = channel::tail(&self.state, &r.channel, RECOVERY_SCAN)?;
        Ok(lines.iter().any(|l| {
            serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| {
                v["from"] == "mt-remind" && v["meta"]["reminder"].as_str() == Some(r.id.as_str())
            })
        }))
    }
}

/// Open a file and take its lock if free right now; `None` when it is gone
/// or someone else holds it.
fn open_locked(path: &Path) -> Result<Option<File>> {
    let f = match fsutil::options().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Read a reminder file. Its names and id become paths and channel
/// names, so they are checked as if typed on the command line, and the id
/// must be the one in the file's name.
fn read_reminder(path: &Path) -> Result<Option<Reminder>> {
    let r: Reminder = match fsutil::read_regular(path) {
        Ok(t) => serde_json::from_slice(&t)
            .map_err(|e| fail(DATAERR, format!("{} does not parse: {e}", path.display())))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let named = path.file_stem().and_then(|s| s.to_str()) == Some(r.id.as_str());
    let checked = check_id(&r.id)
        .and_then(|_| crate::names::check("channel", &r.channel))
        .and_then(|_| crate::names::check("agent", &r.to))
        .and_then(|_| crate::names::check("sender", &r.from));
    match checked {
        Ok(_) if named => Ok(Some(r)),
        Ok(_) => Err(fail(
            DATAERR,
            format!("{} holds reminder id {}", path.display(), r.id),
        )),
        Err(e) => Err(fail(DATAERR, format!("{}: {e}", path.display()))),
    }
}

fn write_reminder(path: &Path, r: &Reminder) -> Result<()> {
    let mut text = serde_json::to_string_pretty(r)?;
    text.push('\n');
    fsutil::write_atomic(path, text.as_bytes(), true)
}

/// Whether a reminder of the state directory `state` is due at `now`.
pub fn is_due(state: &StateDir, r: &Reminder, now: DateTime<Utc>) -> Result<bool> {
    match &r.when {
        When::At(t) => Ok(time::parse_stamp(t).is_some_and(|t| t <= now)),
        When::AllTasksDone { list, dir } => all_tasks_done(&task_list_of(list, dir)?),
        When::AllWorkMerged { list, dir } => {
            crate::pr::merged::all_work_merged(state, &task_list_of(list, dir)?)
        }
    }
}

/// The channel record of a fired reminder.
fn post(state: &StateDir, r: &Reminder) -> Result<()> {
    let draft = Draft {
        from: "mt-remind".into(),
        kind: "system".into(),
        content: format!("reminder {} for {} ({}): {}", r.id, r.to, r.when, r.message),
        meta: Some(serde_json::json!({"reminder": r.id, "to": r.to, "set_by": r.from})),
        ..Draft::default()
    };
    channel::post(state, &r.channel, &draft).map(drop)
}

/// Whether a task list has at least one task and every task is completed.
/// A task file that does not parse (perhaps being written) counts as not
/// completed.
pub fn all_tasks_done(list: &TaskList) -> Result<bool> {
    let l = list.list()?;
    Ok(!l.tasks.is_empty()
        && l.skipped.is_empty()
        && l.tasks
            .iter()
            .all(|t| t.status() == Some(tasks::Status::Completed)))
}

/// The task list a reminder waits for: `dir` is `<claude dir>/tasks/<list>`
/// as recorded when it was set.
fn task_list_of(list: &str, dir: &Path) -> Result<TaskList> {
    let config = dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| fail(DATAERR, format!("{} is not a task list", dir.display())))?;
    TaskList::new(config, list)
}

/// A cancel result as an exit code and message, for the front end.
pub fn cancel_outcome(id: &str, c: Cancelled) -> Result<u8> {
    match c {
        Cancelled::Done => Ok(0),
        Cancelled::AlreadyFired => Err(fail(NO, format!("reminder {id} has already fired"))),
        Cancelled::AlreadyCancelled => {
            Err(fail(NO, format!("reminder {id} was already cancelled")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_done_needs_one_and_all() {
        let d = tempfile::tempdir().unwrap();
        let l = task_list_of("l", &d.path().join("tasks/l")).unwrap();
        assert!(!all_tasks_done(&l).unwrap());
        let dir = l.dir().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        assert!(!all_tasks_done(&l).unwrap());
        fs::write(dir.join(".highwatermark"), "2").unwrap();
        fs::write(dir.join("1.json"), r#"{"id":"1","status":"completed"}"#).unwrap();
        assert!(all_tasks_done(&l).unwrap());
        fs::write(dir.join("2.json"), r#"{"id":"2","status":"in_progress"}"#).unwrap();
        assert!(!all_tasks_done(&l).unwrap());
        fs::write(dir.join("2.json"), "{").unwrap();
        assert!(!all_tasks_done(&l).unwrap());
    }

    #[test]
    fn ids_are_numbers() {
        assert!(check_id("12").is_ok());
        for bad in ["", "../1", "1a", "-1"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
