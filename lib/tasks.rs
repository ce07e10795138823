//! Claude Code's shared task list: `$CLAUDE_CONFIG_DIR/tasks/<list>/`.
//!
//! One pretty-printed JSON file per task (`<id>.json`, ids `"1"`, `"2"` …),
//! `.highwatermark` holding the largest id ever assigned, and Claude Code's
//! lock directories: `.lock.lock` for the whole list (beside the empty file
//! `.lock`), `<id>.json.lock` for one task. Changes that involve several
//! files or depend on other tasks (create, claim, delete) run under the list
//! lock; every rewrite of a task file also holds that task's lock, so
//! Claude Code's per-task updates are excluded too. Files are replaced by
//! atomic rename, keep the fields mt does not know, and a file that does not
//! parse is skipped with a warning and never rewritten. Files are written
//! as Claude Code writes them, `JSON.stringify(task, null, 2)` (see
//! `mailbox` for how serde_json matches it).
//!
//! Other tools use this module directly:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use mt::tasks::{Claim, NewTask, TaskList};
//! let list = TaskList::from_env(Some("demo"))?;
//! let t = list.create(&NewTask::new("Write the parser"))?;
//! match list.claim(t.id, "york")? {
//!     Claim::Won(t) | Claim::AlreadyYours(t) => println!("working on {}", t.subject()),
//!     Claim::Refused(why) => println!("not mine: {why}"),
//! }
//! for t in list.available()? {
//!     println!("{} {}", t.id, t.subject());
//! }
//! # Ok(()) }
//! ```

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::{CANTCREAT, Coded, DATAERR, NO, USAGE, fail};
use crate::infra::dirlock::{self, DEFAULT_WAIT, DirLock};
use crate::infra::fsutil;
use crate::names;

/// A task's status as Claude Code writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    InProgress,
    Completed,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Pending, Status::InProgress, Status::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse a task id given by a user: a decimal number from 1 (exit 65
/// otherwise).
pub fn parse_id(s: &str) -> Result<u64> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(fail(
            DATAERR,
            format!(
                "invalid task id {}: ids are whole numbers from 1, like 3",
                names::quote(s)
            ),
        )),
    }
}

/// An id as found in a file: `"3"` (Claude Code) or `3`.
fn id_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok().filter(|&n| n > 0),
        other => other.as_u64().filter(|&n| n > 0),
    }
}

/// One task: its id and the whole stored object, unknown fields included.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: u64,
    pub doc: Map<String, Value>,
}

impl Task {
    /// The value of `key` when it is a string.
    fn str(&self, key: &str) -> Option<&str> {
        self.doc.get(key).and_then(Value::as_str)
    }

    pub fn subject(&self) -> &str {
        self.str("subject").unwrap_or("")
    }

    pub fn description(&self) -> &str {
        self.str("description").unwrap_or("")
    }

    pub fn active_form(&self) -> Option<&str> {
        self.str("activeForm")
    }

    /// The status string as stored (Claude Code may add new ones).
    pub fn status_str(&self) -> &str {
        self.str("status").unwrap_or("")
    }

    pub fn status(&self) -> Option<Status> {
        Status::parse(self.status_str())
    }

    /// The owner, when there is one (an empty string means none).
    pub fn owner(&self) -> Option<&str> {
        self.str("owner").filter(|s| !s.is_empty())
    }

    pub fn blocks(&self) -> Vec<u64> {
        self.ids("blocks")
    }

    pub fn blocked_by(&self) -> Vec<u64> {
        self.ids("blockedBy")
    }

    fn ids(&self, key: &str) -> Vec<u64> {
        self.doc
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(id_of).collect())
            .unwrap_or_default()
    }

    /// The task as one line of JSON, exactly its stored fields.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.doc).expect("a JSON object serializes")
    }
}

/// What a new task says.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub subject: String,
    pub description: String,
    pub active_form: Option<String>,
    pub owner: Option<String>,
    pub blocked_by: Vec<u64>,
    /// Stored as the task's `metadata` when set (an object).
    pub metadata: Option<Map<String, Value>>,
}

impl NewTask {
    pub fn new(subject: impl Into<String>) -> NewTask {
        NewTask {
            subject: subject.into(),
            ..NewTask::default()
        }
    }

    /// The stored object, fields in Claude Code's order.
    fn doc(&self, id: u64, blocked_by: &[u64]) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("id".into(), json!(id.to_string()));
        o.insert("subject".into(), json!(self.subject));
        o.insert("description".into(), json!(self.description));
        if let Some(f) = &self.active_form {
            o.insert("activeForm".into(), json!(f));
        }
        if let Some(a) = &self.owner {
            o.insert("owner".into(), json!(a));
        }
        o.insert("status".into(), json!(Status::Pending.as_str()));
        o.insert("blocks".into(), json!([]));
        let ids: Vec<String> = blocked_by.iter().map(u64::to_string).collect();
        o.insert("blockedBy".into(), json!(ids));
        if let Some(m) = &self.metadata {
            o.insert("metadata".into(), Value::Object(m.clone()));
        }
        o
    }
}

/// Changes to a task; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    pub status: Option<Status>,
    /// `Some("")` removes the owner.
    pub owner: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub active_form: Option<String>,
}

impl TaskUpdate {
    fn apply(&self, o: &mut Map<String, Value>) {
        let fields = [
            ("subject", self.subject.as_deref()),
            ("description", self.description.as_deref()),
            ("activeForm", self.active_form.as_deref()),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
        match self.owner.as_deref() {
            // shift_remove: a plain remove would move the last key here.
            Some("") => {
                o.shift_remove("owner");
            }
            Some(a) => {
                o.insert("owner".into(), json!(a));
            }
            None => {}
        }
        if let Some(s) = self.status {
            o.insert("status".into(), json!(s.as_str()));
        }
    }
}

/// A task file that was skipped because it does not parse.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipping {}: it does not parse ({})",
            self.path.display(),
            self.why
        )
    }
}

/// Every task of a list, in id order, and the files that were skipped.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub tasks: Vec<Task>,
    pub skipped: Vec<Skipped>,
}

impl Listing {
    pub fn get(&self, id: u64) -> Option<&Task> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.tasks[i])
    }

    /// The blockers of `task` that are not completed (a missing or
    /// unreadable blocker counts as not completed).
    pub fn open_blockers(&self, task: &Task) -> Vec<u64> {
        task.blocked_by()
            .into_iter()
            .filter(|&b| {
                self.get(b)
                    .is_none_or(|t| t.status() != Some(Status::Completed))
            })
            .collect()
    }

    /// Pending, without owner, and no open blocker.
    pub fn is_available(&self, task: &Task) -> bool {
        task.status() == Some(Status::Pending)
            && task.owner().is_none()
            && self.open_blockers(task).is_empty()
    }

    pub fn available(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(|t| self.is_available(t))
    }
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Missing,
    Unreadable(String),
    Completed,
    Claimed { owner: String },
    InProgress,
    Blocked { by: Vec<u64> },
    Status(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing => f.write_str("there is no such task"),
            Refusal::Unreadable(why) => write!(f, "its file does not parse ({why})"),
            Refusal::Completed => f.write_str("it is already completed"),
            Refusal::Claimed { owner } => {
                write!(f, "it is already claimed by {}", names::printable(owner))
            }
            Refusal::InProgress => f.write_str("it is already in progress"),
            Refusal::Blocked { by } => {
                let ids: Vec<String> = by.iter().map(u64::to_string).collect();
                let s = if by.len() == 1 { "" } else { "s" };
                write!(
                    f,
                    "it is blocked by task{s} {} (not completed)",
                    ids.join(", ")
                )
            }
            Refusal::Status(s) => write!(f, "its status is {}", names::quote(s)),
        }
    }
}

/// The result of a claim.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The task is now ours: owner set, status in_progress.
    Won(Task),
    /// It already was ours and in progress; nothing changed.
    AlreadyYours(Task),
    Refused(Refusal),
}

/// What a claim of a task would do.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Take,
    AlreadyYours,
    Refuse(Refusal),
}

/// Whether `owner` may claim `t`, whose blockers `open` are not completed:
/// a pending task with no other owner and no open blocker.
pub fn judge_claim(t: &Task, owner: &str, open: &[u64]) -> Verdict {
    match (t.status(), t.owner()) {
        (Some(Status::InProgress), Some(a)) if a == owner => Verdict::AlreadyYours,
        (Some(Status::Completed), _) => Verdict::Refuse(Refusal::Completed),
        (_, Some(a)) if a != owner => Verdict::Refuse(Refusal::Claimed {
            owner: a.to_string(),
        }),
        (Some(Status::InProgress), _) => Verdict::Refuse(Refusal::InProgress),
        (Some(Status::Pending), _) if !open.is_empty() => {
            Verdict::Refuse(Refusal::Blocked { by: open.to_vec() })
        }
        (Some(Status::Pending), _) => Verdict::Take,
        (None, _) => Verdict::Refuse(Refusal::Status(t.status_str().to_string())),
    }
}

/// Make a task `owner`'s and in progress.
pub fn take(o: &mut Map<String, Value>, owner: &str) {
    o.insert("owner".into(), json!(owner));
    o.insert("status".into(), json!(Status::InProgress.as_str()));
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub task: Option<Task>,
    /// Other tasks whose `blocks`/`blockedBy` lost the id.
    pub updated: Vec<u64>,
    pub skipped: Vec<Skipped>,
}

/// One task list.
#[derive(Debug, Clone)]
pub struct TaskList {
    name: String,
    dir: PathBuf,
    wait: Duration,
    durable: bool,
}

impl TaskList {
    /// The list `name` under Claude Code's directory `config_dir`.
    pub fn new(config_dir: &Path, name: &str) -> Result<TaskList> {
        names::check_claude("task list", name)?;
        Ok(TaskList {
            name: name.to_string(),
            dir: config_dir.join("tasks").join(name),
            wait: DEFAULT_WAIT,
            durable: fsutil::fsync_enabled(),
        })
    }

    /// The list `name`, else `$CLAUDE_CODE_TASK_LIST_ID`, under
    /// `$CLAUDE_CONFIG_DIR` (else `~/.claude`).
    pub fn from_env(name: Option<&str>) -> Result<TaskList> {
        let name = match name {
            Some(n) => n.to_string(),
            None => list_from_env()?,
        };
        TaskList::new(&crate::statedir::claude_config_dir()?, &name)
    }

    /// How long a writer waits for a busy lock before exit 75.
    pub fn with_wait(mut self, wait: Duration) -> TaskList {
        self.wait = wait;
        self
    }

    /// Whether replaced files are synced (default: unless MT_FSYNC=0).
    pub fn with_durable(mut self, durable: bool) -> TaskList {
        self.durable = durable;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<id>.json`.
    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn hwm_path(&self) -> PathBuf {
        self.dir.join(".highwatermark")
    }

    /// One task; `None` when it does not exist, exit 65 when its file does
    /// not parse.
    pub fn load(&self, id: u64) -> Result<Option<Task>> {
        let path = self.path(id);
        match read_task(&path, id)? {
            None => Ok(None),
            Some(Ok(t)) => Ok(Some(t)),
            Some(Err(why)) => Err(fail(
                DATAERR,
                format!("task {id}: {} does not parse ({why})", path.display()),
            )),
        }
    }

    /// Like `load`, but a missing task is an error (exit 1).
    pub fn get(&self, id: u64) -> Result<Task> {
        self.load(id)?.ok_or_else(|| self.missing(id))
    }

    fn missing(&self, id: u64) -> anyhow::Error {
        fail(NO, format!("no task {id} in task list {}", self.name))
    }

    /// Every task, in id order. No lock: files are replaced whole.
    pub fn list(&self) -> Result<Listing> {
        let mut out = Listing::default();
        for id in self.ids()? {
            let path = self.path(id);
            match read_task(&path, id)? {
                None => {}
                Some(Ok(t)) => out.tasks.push(t),
                Some(Err(why)) => out.skipped.push(Skipped { path, why }),
            }
        }
        Ok(out)
    }

    /// Tasks anyone may claim now.
    pub fn available(&self) -> Result<Vec<Task>> {
        let l = self.list()?;
        Ok(l.available().cloned().collect())
    }

    /// The ids of the task files present, sorted.
    pub fn ids(&self) -> Result<Vec<u64>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.dir.display()));
            }
        };
        let mut ids = Vec::new();
        for ent in rd {
            let ent = ent.with_context(|| format!("cannot list {}", self.dir.display()))?;
            let name = ent.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            // Only names Claude Code writes: "3.json", not "03.json".
            if let Ok(n) = stem.parse::<u64>()
                && n > 0
                && n.to_string() == stem
            {
                ids.push(n);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The high-water mark: the largest id ever assigned, as recorded.
    pub fn high_water_mark(&self) -> Result<u64> {
        let path = self.hwm_path();
        let bad = |why: String| {
            fail(
                DATAERR,
                format!("{} {why}; fix it or remove it", path.display()),
            )
        };
        match fsutil::read_regular(&path) {
            Ok(b) => {
                let s = String::from_utf8_lossy(&b);
                s.trim().parse::<u64>().map_err(|_| {
                    bad(format!(
                        "does not hold a number ({})",
                        names::quote(s.trim())
                    ))
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                Err(bad(format!("is unusable: {e}")))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Take the list lock, creating the directory and `.lock` as needed.
    pub fn lock(&self) -> Result<DirLock> {
        // No directory below Claude Code's may be a symlink: it would take
        // the lock and every file of the list somewhere else.
        let config = self
            .dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.dir);
        fsutil::ensure_dir(config)?;
        fsutil::ensure_subdirs(config, &self.dir)?;
        let marker = self.dir.join(".lock");
        // Non-blocking: a FIFO planted as the marker must not hang us.
        use std::os::unix::fs::OpenOptionsExt;
        fsutil::options()
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&marker)
            .with_context(|| format!("cannot create {}", marker.display()))
            .code(CANTCREAT)?;
        dirlock::acquire(&dirlock::lock_path(&marker), self.wait)
            .with_context(|| format!("cannot lock task list {}", self.name))
    }

    /// Create a task; its id is one more than both the largest task file id
    /// and the high-water mark. Blockers must exist and are told that the
    /// new task waits for them (their `blocks`).
    pub fn create(&self, new: &NewTask) -> Result<Task> {
        check_text("subject", &new.subject, false)?;
        check_text("description", &new.description, true)?;
        if let Some(a) = &new.owner {
            names::check_claude("owner", a)?;
        }
        let blockers: Vec<u64> = new
            .blocked_by
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lock = self.lock()?;
        for &b in &blockers {
            self.get(b)
                .with_context(|| format!("cannot make the new task wait for task {b}"))
                .map_err(|e| coded_as(e, DATAERR))?;
        }
        let largest_file = self.ids()?.last().copied().unwrap_or(0);
        let id = largest_file.max(self.high_water_mark()?) + 1;
        let task = Task {
            id,
            doc: new.doc(id, &blockers),
        };
        lock.verify()?;
        self.write(&self.path(id), &task.doc)?;
        fsutil::write_atomic(&self.hwm_path(), id.to_string().as_bytes(), self.durable)?;
        for &b in &blockers {
            self.rewrite(b, |o| Ok(add_id(o, "blocks", id)))?;
        }
        lock.release()?;
        Ok(task)
    }

    /// Claim a task for `owner`, atomically under the list lock: a pending
    /// task with no owner (or owned by `owner`) and no open blocker becomes
    /// `in_progress` with that owner.
    pub fn claim(&self, id: u64, owner: &str) -> Result<Claim> {
        names::check_claude("owner", owner)?;
        let lock = self.lock()?;
        let current = match read_task(&self.path(id), id)? {
            None => return Ok(Claim::Refused(Refusal::Missing)),
            Some(Err(why)) => return Ok(Claim::Refused(Refusal::Unreadable(why))),
            Some(Ok(t)) => t,
        };
        let open = self.open_blockers(&current)?;
        let mut outcome = None;
        let written = self.rewrite(id, |o| {
            let t = Task { id, doc: o.clone() };
            match judge_claim(&t, owner, &open) {
                Verdict::Take => {}
                Verdict::AlreadyYours => {
                    outcome = Some(Claim::AlreadyYours(t));
                    return Ok(false);
                }
                Verdict::Refuse(r) => {
                    outcome = Some(Claim::Refused(r));
                    return Ok(false);
                }
            }
            take(o, owner);
            Ok(true)
        })?;
        lock.release()?;
        Ok(match (outcome, written) {
            (Some(c), _) => c,
            (None, Some(t)) => Claim::Won(t),
            (None, None) => Claim::Refused(Refusal::Missing),
        })
    }

    /// The ids among `task`'s blockers that are not completed here.
    pub fn open_blockers(&self, task: &Task) -> Result<Vec<u64>> {
        let mut open = Vec::new();
        for b in task.blocked_by() {
            let done = matches!(read_task(&self.path(b), b)?,
                Some(Ok(t)) if t.status() == Some(Status::Completed));
            if !done {
                open.push(b);
            }
        }
        Ok(open)
    }

    /// Set a task's status.
    pub fn set_status(&self, id: u64, status: Status) -> Result<Task> {
        self.update(
            id,
            &TaskUpdate {
                status: Some(status),
                ..TaskUpdate::default()
            },
        )
    }

    /// Mark a task completed.
    pub fn complete(&self, id: u64) -> Result<Task> {
        self.set_status(id, Status::Completed)
    }

    /// Change a task's fields (exit 1 when it does not exist).
    pub fn update(&self, id: u64, u: &TaskUpdate) -> Result<Task> {
        if let Some(s) = &u.subject {
            check_text("subject", s, false)?;
        }
        if let Some(d) = &u.description {
            check_text("description", d, true)?;
        }
        if let Some(f) = &u.active_form {
            check_text("active form", f, true)?;
        }
        if let Some(a) = u.owner.as_deref().filter(|a| !a.is_empty()) {
            names::check_claude("owner", a)?;
        }
        let lock = self.lock()?;
        let t = self.rewrite(id, |o| {
            let before = o.clone();
            u.apply(o);
            Ok(*o != before)
        })?;
        lock.release()?;
        t.ok_or_else(|| self.missing(id))
    }

    /// Delete a task and remove its id from other tasks' `blocks` and
    /// `blockedBy`. The high-water mark keeps the id from being reused.
    pub fn delete(&self, id: u64) -> Result<Deleted> {
        self.delete_with(id, |p| fs::remove_file(p))
    }

    /// `delete`, removing the task's file with `remove`. The high-water mark
    /// is raised first: a crash between the two leaves a task whose id is
    /// already retired, never a free id that a new task could take twice.
    fn delete_with(
        &self,
        id: u64,
        remove: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<Deleted> {
        let lock = self.lock()?;
        let path = self.path(id);
        let task_lock = self.task_lock(id)?;
        let task = match read_task(&path, id)? {
            None => return Err(self.missing(id)),
            Some(t) => t.ok(),
        };
        task_lock.verify()?;
        if id > self.high_water_mark().unwrap_or(0) {
            fsutil::write_atomic(&self.hwm_path(), id.to_string().as_bytes(), self.durable)?;
        }
        remove(&path)
            .with_context(|| format!("cannot delete {}", path.display()))
            .code(CANTCREAT)?;
        task_lock.release()?;
        let listing = self.list()?;
        let mut updated = Vec::new();
        for t in &listing.tasks {
            if !(t.blocks().contains(&id) || t.blocked_by().contains(&id)) {
                continue;
            }
            let changed = self.rewrite(t.id, |o| {
                let a = remove_id(o, "blocks", id);
                let b = remove_id(o, "blockedBy", id);
                Ok(a || b)
            });
            match changed {
                Ok(Some(_)) => updated.push(t.id),
                Ok(None) => {}
                // A task that stopped parsing meanwhile is left as it is.
                Err(e) if crate::exit::code_of(&e) == DATAERR => {}
                Err(e) => return Err(e),
            }
        }
        lock.release()?;
        Ok(Deleted {
            task,
            updated,
            skipped: listing.skipped,
        })
    }

    /// The bytes of a task's file as stored; `None` when there is none.
    pub fn raw(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path(id);
        match fsutil::read_regular(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Compare and swap one task's file under the list and task locks:
    /// when it still holds `expected` (`None`: no file), write `new`
    /// (`None`: remove it) and return the bytes now stored; otherwise
    /// change nothing and return `None`. The high-water mark is raised to
    /// the id, so Claude Code never hands it out again (mt-sync).
    pub fn swap(
        &self,
        id: u64,
        expected: Option<&[u8]>,
        new: Option<&Map<String, Value>>,
    ) -> Result<Option<Vec<u8>>> {
        let lock = self.lock()?;
        let task_lock = self.task_lock(id)?;
        if self.raw(id)?.as_deref() != expected {
            return Ok(None);
        }
        if id > self.high_water_mark().unwrap_or(0) {
            fsutil::write_atomic(&self.hwm_path(), id.to_string().as_bytes(), self.durable)?;
        }
        task_lock.verify()?;
        let stored = match new {
            Some(doc) => {
                let bytes = serde_json::to_vec_pretty(doc)?;
                fsutil::write_atomic(&self.path(id), &bytes, self.durable)?;
                bytes
            }
            None => {
                match fs::remove_file(self.path(id)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("cannot delete task {id}"))
                            .code(CANTCREAT);
                    }
                }
                Vec::new()
            }
        };
        task_lock.release()?;
        lock.release()?;
        Ok(Some(stored))
    }

    /// Move the task `from` (when its file still holds `expected`) to a new
    /// id above `floor`, every local id and the high-water mark; tasks for
    /// which `fix` says so have their `blocks`/`blockedBy` follow. Returns
    /// the new id (mt-sync, when another host took the id first).
    pub fn renumber(
        &self,
        from: u64,
        expected: &[u8],
        floor: u64,
        fix: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>> {
        let lock = self.lock()?;
        if self.raw(from)?.as_deref() != Some(expected) {
            return Ok(None);
        }
        let Some(Ok(mut task)) = read_task(&self.path(from), from)? else {
            return Ok(None);
        };
        let largest = self.ids()?.last().copied().unwrap_or(0);
        let to = largest.max(self.high_water_mark()?).max(floor) + 1;
        task.doc.insert("id".into(), json!(to.to_string()));
        fsutil::write_atomic(&self.hwm_path(), to.to_string().as_bytes(), self.durable)?;
        self.write(&self.path(to), &task.doc)?;
        fs::remove_file(self.path(from))
            .with_context(|| format!("cannot move task {from}"))
            .code(CANTCREAT)?;
        for id in self.ids()? {
            if id == to || !fix(id) {
                continue;
            }
            let _ = self.rewrite(id, |o| {
                let a = remove_id(o, "blocks", from) && add_id(o, "blocks", to);
                let b = remove_id(o, "blockedBy", from) && add_id(o, "blockedBy", to);
                Ok(a || b)
            });
        }
        lock.release()?;
        Ok(Some(to))
    }

    fn task_lock(&self, id: u64) -> Result<DirLock> {
        dirlock::acquire(&dirlock::lock_path(&self.path(id)), self.wait)
            .with_context(|| format!("cannot lock task {id} of list {}", self.name))
    }

    /// Under the task's own lock: re-read it, let `change` edit it, write it
    /// back when it reports a change. `None` when the task does not exist;
    /// exit 65 (and no write) when its file does not parse.
    fn rewrite(
        &self,
        id: u64,
        change: impl FnOnce(&mut Map<String, Value>) -> Result<bool>,
    ) -> Result<Option<Task>> {
        let path = self.path(id);
        let lock = self.task_lock(id)?;
        let mut t = match read_task(&path, id)? {
            None => return Ok(None),
            Some(Ok(t)) => t,
            Some(Err(why)) => {
                return Err(fail(
                    DATAERR,
                    format!(
                        "task {id}: {} does not parse ({why}); left as it is",
                        path.display()
                    ),
                ));
            }
        };
        if change(&mut t.doc)? {
            lock.verify()?;
            self.write(&path, &t.doc)?;
        }
        lock.release()?;
        Ok(Some(t))
    }

    fn write(&self, path: &Path, doc: &Map<String, Value>) -> Result<()> {
        fsutil::write_atomic(path, &serde_json::to_vec_pretty(doc)?, self.durable)
    }
}

/// `list_name(None, …)` with the state directory of the environment
/// (`$MT_DIR`, else the repository around the current directory).
pub fn list_from_env() -> Result<String> {
    list_name(None, crate::statedir::StateDir::resolve(None).ok().as_ref())
}

/// The task list every mt tool uses: `given` (a `--list` flag), else
/// `$CLAUDE_CODE_TASK_LIST_ID`, else `default_list(state)`; a usage error
/// when there is none of the three.
pub fn list_name(given: Option<&str>, state: Option<&crate::statedir::StateDir>) -> Result<String> {
    if let Some(g) = given.filter(|s| !s.is_empty()) {
        return Ok(g.to_string());
    }
    if let Some(e) = std::env::var("CLAUDE_CODE_TASK_LIST_ID")
        .ok()
        .filter(|s| !s.is_empty())
    {
        return Ok(e);
    }
    state.map(default_list).ok_or_else(|| {
        fail(
            USAGE,
            "no task list: give --list NAME or set CLAUDE_CODE_TASK_LIST_ID",
        )
    })
}

/// The task list of a state directory when none is named: `mt-PROJECT`,
/// PROJECT being the name of the directory that holds the state directory,
/// skipping `.git` (so `<repo>/.git/mt` gives `mt-<repo>`: one list per
/// repository, shared by all its worktrees). Characters Claude Code does
/// not keep in a list name become `-`.
pub fn default_list(state: &crate::statedir::StateDir) -> String {
    let root = fs::canonicalize(state.root()).unwrap_or_else(|_| state.root().to_path_buf());
    let project = root
        .ancestors()
        .skip(1)
        .filter_map(Path::file_name)
        .map(|n| n.to_string_lossy())
        .find(|n| n != ".git")
        .map(|n| names::claude_sanitize(&n))
        .unwrap_or_default();
    let project = project.trim_matches('-');
    let mut name = format!("mt-{project}");
    name.truncate(names::CLAUDE_MAX_LEN);
    if project.is_empty() || names::claude_problem(&name).is_some() {
        return "mt".into();
    }
    name
}

/// Give an error a different exit code, keeping its message and causes.
fn coded_as(e: anyhow::Error, code: u8) -> anyhow::Error {
    Err::<(), _>(e).code(code).unwrap_err()
}

fn check_text(what: &str, s: &str, empty_ok: bool) -> Result<()> {
    if !empty_ok && s.trim().is_empty() {
        return Err(fail(DATAERR, format!("the {what} is empty")));
    }
    if s.len() > crate::channel::DEFAULT_MAX_MESSAGE {
        return Err(fail(DATAERR, format!("the {what} is longer than 1 MiB")));
    }
    Ok(())
}

fn add_id(o: &mut Map<String, Value>, key: &str, id: u64) -> bool {
    let v = o.entry(key).or_insert_with(|| json!([]));
    if !v.is_array() {
        *v = json!([]);
    }
    let a = v.as_array_mut().expect("array");
    if a.iter().any(|v| id_of(v) == Some(id)) {
        return false;
    }
    a.push(json!(id.to_string()));
    true
}

fn remove_id(o: &mut Map<String, Value>, key: &str, id: u64) -> bool {
    let Some(a) = o.get_mut(key).and_then(Value::as_array_mut) else {
        return false;
    };
    let before = a.len();
    a.retain(|v| id_of(v) != Some(id));
    a.len() != before
}

/// Read one task file: `None` when missing, `Some(Err(why))` when it does
/// not parse as a task object.
fn read_task(path: &Path, id: u64) -> Result<Option<std::result::Result<Task, String>>> {
    let bytes = match fsutil::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A symlink, directory or FIFO in a task's place is skipped like a
        // file that does not parse, never followed or waited on.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(Some(Err(e.to_string()))),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(Some(match serde_json::from_slice(&bytes) {
        Ok(Value::Object(doc)) => Ok(Task { id, doc }),
        Ok(other) => Err(format!(
            "it holds {}, not an object",
            crate::mailbox::kind(&other)
        )),
        Err(e) => Err(e.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> (tempfile::TempDir, TaskList) {
        let d = tempfile::tempdir().unwrap();
        let l = TaskList::new(d.path(), "demo").unwrap().with_durable(false);
        (d, l)
    }

    #[test]
    fn ids_follow_the_high_water_mark() {
        let (_d, l) = list();
        assert_eq!(l.create(&NewTask::new("a")).unwrap().id, 1);
        assert_eq!(l.create(&NewTask::new("b")).unwrap().id, 2);
        l.delete(2).unwrap();
        assert_eq!(l.high_water_mark().unwrap(), 2);
        assert_eq!(l.create(&NewTask::new("c")).unwrap().id, 3);
        fs::write(l.path(9), r#"{"id":"9"}"#).unwrap();
        assert_eq!(l.create(&NewTask::new("d")).unwrap().id, 10);
    }

    #[test]
    fn claim_respects_blockers_and_owners() {
        let (_d, l) = list();
        let a = l.create(&NewTask::new("a")).unwrap();
        let mut nb = NewTask::new("b");
        nb.blocked_by = vec![a.id];
        let b = l.create(&nb).unwrap();
        assert_eq!(l.get(a.id).unwrap().blocks(), [b.id]);
        assert!(matches!(l.claim(b.id, "york").unwrap(),
            Claim::Refused(Refusal::Blocked { by }) if by == [a.id]));
        assert!(matches!(l.claim(a.id, "york").unwrap(), Claim::Won(_)));
        assert!(matches!(
            l.claim(a.id, "york").unwrap(),
            Claim::AlreadyYours(_)
        ));
        assert!(matches!(l.claim(a.id, "park").unwrap(),
            Claim::Refused(Refusal::Claimed { owner }) if owner == "york"));
        l.complete(a.id).unwrap();
        assert!(matches!(
            l.claim(a.id, "park").unwrap(),
            Claim::Refused(Refusal::Completed)
        ));
        let won = match l.claim(b.id, "park").unwrap() {
            Claim::Won(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (won.owner(), won.status()),
            (Some("park"), Some(Status::InProgress))
        );
        assert!(matches!(
            l.claim(99, "park").unwrap(),
            Claim::Refused(Refusal::Missing)
        ));
    }

    #[test]
    fn a_crash_right_after_removing_a_task_does_not_free_its_id() {
        let (_d, l) = list();
        l.create(&NewTask::new("a")).unwrap();
        let b = l.create(&NewTask::new("b")).unwrap();
        // The file goes, then the process dies before anything else.
        let crash = l.delete_with(b.id, |p| {
            fs::remove_file(p)?;
            Err(io::Error::other("crash"))
        });
        assert!(crash.is_err());
        assert!(l.get(b.id).is_err());
        let c = l.create(&NewTask::new("c")).unwrap();
        assert!(c.id > b.id, "id {} used twice", c.id);
    }

    #[test]
    fn delete_cleans_links_and_keeps_unknown_fields() {
        let (_d, l) = list();
        let a = l.create(&NewTask::new("a")).unwrap();
        let mut nb = NewTask::new("b");
        nb.blocked_by = vec![a.id];
        let b = l.create(&nb).unwrap();
        let text = fs::read_to_string(l.path(b.id)).unwrap();
        let text = text.replacen("{", "{\n  \"x-extra\": [1, {\"k\": true}],", 1);
        fs::write(l.path(b.id), text).unwrap();
        let d = l.delete(a.id).unwrap();
        assert_eq!(d.updated, [b.id]);
        let b2 = l.get(b.id).unwrap();
        assert!(b2.blocked_by().is_empty());
        assert_eq!(b2.doc.iter().next().unwrap().0, "x-extra");
        assert!(l.list().unwrap().available().any(|t| t.id == b.id));
    }

    #[test]
    fn removing_the_owner_keeps_key_order() {
        let (_d, l) = list();
        let mut n = NewTask::new("a");
        n.owner = Some("york".into());
        let t = l.create(&n).unwrap();
        let unassign = TaskUpdate {
            owner: Some(String::new()),
            ..TaskUpdate::default()
        };
        let t = l.update(t.id, &unassign).unwrap();
        let keys: Vec<&str> = t.doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "subject",
                "description",
                "status",
                "blocks",
                "blockedBy"
            ]
        );
        assert_eq!(l.get(t.id).unwrap(), t);
    }

    #[test]
    fn default_list_names_the_repository() {
        use crate::statedir::StateDir;
        let d = tempfile::tempdir().unwrap();
        let git = d.path().join("My Repo").join(".git");
        fs::create_dir_all(&git).unwrap();
        assert_eq!(default_list(&StateDir::at(git.join("mt"))), "mt-My-Repo");
        assert_eq!(default_list(&StateDir::at("/x.y/state")), "mt-x-y");
        assert_eq!(default_list(&StateDir::at("/mt")), "mt");
        assert_eq!(list_name(Some("given"), None).unwrap(), "given");
    }

    #[test]
    fn bad_ids_are_refused() {
        for s in [
            "",
            "0",
            "x",
            "-1",
            "+1",
            "1.5",
            " 1",
            "99999999999999999999999",
        ] {
            assert!(parse_id(s).is_err(), "{s:?}");
        }
        assert_eq!(parse_id("42").unwrap(), 42);
    }
}
