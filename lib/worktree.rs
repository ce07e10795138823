//! One git worktree per agent: created from a base, listed with what would
//! be lost by removing it, removed only when nothing would be, and garbage
//! collected on the same rule.
//!
//! This is the only module that links libgit2; nothing here starts `git`.
//!
//! What mt records, all in the repository's own config so that `git` shows
//! it and `git branch -D` cleans it up:
//! - `branch.<branch>.mtbase`: the base the branch was made from, as a full
//!   ref name (`refs/heads/main`) when the base was a ref, else a commit id.
//!   "Ahead" and "merged" compare against that ref's *current* tip, so a
//!   branch merged into main (fast-forward or merge commit) counts as merged.
//! - `branch.<branch>.mtworktree`: the worktree name the branch belongs to.
//!
//! A branch with `mtbase` is an *mt branch*; a worktree whose branch is one is
//! *managed*. `gc` only ever removes managed worktrees and mt branches.
//!
//! Default location: `<parent of the main checkout>/<checkout name>.worktrees/NAME`
//! (`$MT_WORKTREES/NAME` or `--worktrees` to change it). A sibling directory,
//! not a directory inside the checkout or inside `.git`, because:
//! - outside the working tree it never shows up in `git status`, with no
//!   `.gitignore` or `info/exclude` entry to maintain;
//! - no path component is `.git`, which editors, search tools and Claude
//!   Code's protected-path checks treat specially;
//! - deleting the state directory (`.git/mt`) can never delete work;
//! - it stays on the same filesystem as the repository and in plain sight.

use anyhow::{Context, Result};
use git2::{
    BranchType, ErrorCode, Oid, Repository, Status as Git, StatusOptions, WorktreeAddOptions,
    WorktreeLockStatus, WorktreePruneOptions,
};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::exit::{CANTCREAT, Coded, DATAERR, NO, SOFTWARE, UNAVAILABLE, fail};
use crate::infra::fsutil;
use crate::infra::lock;
use crate::names;
use crate::statedir::StateDir;

/// Prefix of the default branch name: `mt/NAME`.
pub const BRANCH_PREFIX: &str = "mt/";
/// Environment variable naming the directory that holds new worktrees.
pub const ENV_ROOT: &str = "MT_WORKTREES";
const KEY_BASE: &str = "mtbase";
const KEY_WORKTREE: &str = "mtworktree";
/// How long to wait for another mt-worktree working on the same repository.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// What `add` should create.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// A directory inside the repository (default: the current directory).
    pub repo: Option<PathBuf>,
    /// Worktree (and agent) name, checked with `names::check`.
    pub name: String,
    /// Revision to start a new branch from (default: the main checkout's HEAD).
    pub base: Option<String>,
    /// Branch name (default: `mt/NAME`).
    pub branch: Option<String>,
    /// Exact directory for the worktree (default: `default_root()/NAME`).
    pub path: Option<PathBuf>,
    /// Directory holding worktrees, when `path` is not given (default:
    /// `$MT_WORKTREES`, else the sibling `<checkout>.worktrees`).
    pub root: Option<PathBuf>,
    /// Replace a stray file or directory that is in the way.
    pub force: bool,
}

/// A worktree as `add` left it.
#[derive(Debug, Clone, Serialize)]
pub struct Worktree {
    pub name: String,
    pub path: PathBuf,
    /// Short branch name, `mt/NAME` by default.
    pub branch: Option<String>,
    /// Recorded base (full ref name or commit id).
    pub base: Option<String>,
    /// False when the worktree already existed and was returned as it is.
    pub created: bool,
}

/// What `list` and `status` report about one linked worktree.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub path: PathBuf,
    /// Checked-out branch (short name); `None` when HEAD is detached.
    pub branch: Option<String>,
    /// HEAD commit id; `None` on an unborn branch.
    pub head: Option<String>,
    /// Base the commits are compared with: the recorded one, else the main
    /// checkout's current branch.
    pub base: Option<String>,
    /// Commits in HEAD that are not in the base's current tip; `None` when
    /// the base does not resolve.
    pub ahead: Option<usize>,
    /// Uncommitted changes or untracked (not ignored) files.
    pub dirty: bool,
    /// Every commit of HEAD is in the base (fast-forward or merge commit).
    pub merged: bool,
    /// The agent of the same name holds its liveness lock.
    pub running: bool,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_reason: Option<String>,
    /// The directory is gone; only git's metadata is left.
    pub missing: bool,
    /// Created by mt-worktree (its branch carries `mtbase`).
    pub managed: bool,
    /// Changed paths as `XY path`, like `git status --porcelain`.
    pub changes: Vec<String>,
    /// The branch `rm` would delete (`mtworktree` owner, else the checked-out
    /// branch).
    #[serde(skip)]
    pub own_branch: Option<String>,
    /// Commits `rm` would lose: with the branch deleted, and with it kept.
    #[serde(skip)]
    pub unmerged: Option<usize>,
    #[serde(skip)]
    pub unmerged_keep: Option<usize>,
    #[serde(skip)]
    admin: PathBuf,
}

/// Why a worktree may not be removed without `--force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    Locked(Option<String>),
    AgentRunning(String),
    Changes(Vec<String>),
    Commits {
        count: usize,
        branch: Option<String>,
        base: String,
    },
    BaseUnknown(Option<String>),
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Locked(Some(r)) => write!(f, "it is locked ({r})"),
            Blocker::Locked(None) => write!(f, "it is locked"),
            Blocker::AgentRunning(a) => write!(f, "agent {a} is running"),
            Blocker::Changes(c) => {
                let n = c.len();
                let shown: Vec<&str> = c.iter().take(20).map(String::as_str).collect();
                write!(
                    f,
                    "{n} uncommitted change{}: {}",
                    plural(n),
                    shown.join(", ")
                )?;
                if n > shown.len() {
                    write!(f, ", and {} more", n - shown.len())?;
                }
                Ok(())
            }
            Blocker::Commits {
                count,
                branch,
                base,
            } => {
                let on = branch
                    .as_deref()
                    .map(|b| format!(" on {b}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "{count} commit{}{on} not in {}",
                    plural(*count),
                    short_ref(base)
                )
            }
            Blocker::BaseUnknown(Some(b)) => {
                write!(
                    f,
                    "its base {} does not resolve, so merged commits cannot be told apart",
                    short_ref(b)
                )
            }
            Blocker::BaseUnknown(None) => write!(f, "it has no base to compare commits with"),
        }
    }
}

impl Status {
    /// What keeps `rm` (without `--force`) from removing this worktree.
    pub fn blockers(&self, keep_branch: bool) -> Vec<Blocker> {
        let mut out = Vec::new();
        if self.locked {
            out.push(Blocker::Locked(self.lock_reason.clone()));
        }
        if self.running {
            out.push(Blocker::AgentRunning(self.name.clone()));
        }
        if !self.changes.is_empty() {
            out.push(Blocker::Changes(self.changes.clone()));
        }
        let lost = if keep_branch {
            self.unmerged_keep
        } else {
            self.unmerged
        };
        match (lost, &self.base) {
            (Some(0), _) => {}
            (Some(count), Some(base)) => out.push(Blocker::Commits {
                count,
                branch: self.branch.clone().or_else(|| {
                    self.head
                        .as_deref()
                        .map(|h| format!("detached HEAD {}", short_id(h)))
                }),
                base: base.clone(),
            }),
            _ => out.push(Blocker::BaseUnknown(self.base.clone())),
        }
        out
    }
}

/// What `rm` should remove.
#[derive(Debug, Clone, Default)]
pub struct RmOptions {
    pub repo: Option<PathBuf>,
    /// State directory for the agent liveness check (default: `$MT_DIR`,
    /// else `<git common dir>/mt`).
    pub dir: Option<PathBuf>,
    pub name: String,
    /// Remove even with changes, unmerged commits, a running agent or a lock.
    pub force: bool,
    /// Keep the branch (its commits are then not lost, so they do not block).
    pub keep_branch: bool,
}

/// What `rm` did.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub name: String,
    /// The directory removed, if there was one.
    pub path: Option<PathBuf>,
    /// The branch deleted and the commit it pointed at (for recovery).
    pub deleted_branch: Option<(String, String)>,
    /// The branch left in place, and why.
    pub kept_branch: Option<(String, String)>,
    /// What `--force` overrode; empty without force.
    pub forced: Vec<Blocker>,
    /// Anything else worth telling.
    pub notes: Vec<String>,
}

/// What `gc` should do.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    pub repo: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// Keep worktrees whose git metadata changed more recently than this
    /// (protects one that was just added for an agent not yet started).
    pub min_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcAction {
    /// Stale metadata of a worktree whose directory is gone.
    Pruned,
    /// A worktree (and its branch) removed.
    Removed,
    /// A merged mt branch without a worktree deleted.
    DeletedBranch,
    /// A worktree left alone.
    Kept,
    /// An mt branch left alone.
    KeptBranch,
}

/// One line of gc's report.
#[derive(Debug, Clone, Serialize)]
pub struct GcItem {
    pub action: GcAction,
    /// Worktree or branch name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub why: String,
}

/// An opened repository: the main checkout, whichever worktree it was
/// found from.
struct Repo {
    git: Repository,
    common: PathBuf,
    workdir: Option<PathBuf>,
}

fn git_err(what: impl fmt::Display) -> impl FnOnce(git2::Error) -> anyhow::Error {
    move |e| fail(SOFTWARE, format!("{what}: {}", e.message()))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `refs/heads/main` → `main`; a commit id → its first 10 digits.
pub fn short_ref(r: &str) -> String {
    for p in ["refs/heads/", "refs/remotes/", "refs/tags/"] {
        if let Some(s) = r.strip_prefix(p) {
            return s.to_string();
        }
    }
    if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return short_id(r).to_string();
    }
    r.to_string()
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(10)]
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// Canonical form of a path that may not exist yet: its nearest existing
/// ancestor resolved, the rest appended.
fn canonical_lenient(p: &Path) -> PathBuf {
    if let Ok(c) = fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => canonical_lenient(parent).join(name),
        _ => p.to_path_buf(),
    }
}

impl Repo {
    fn open(dir: Option<&Path>) -> Result<Repo> {
        let start = match dir {
            Some(d) => {
                if !d.exists() {
                    return Err(fail(
                        UNAVAILABLE,
                        format!("repository {} does not exist", d.display()),
                    ));
                }
                d.to_path_buf()
            }
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        let found = Repository::discover(&start).map_err(|_| {
            fail(
                UNAVAILABLE,
                format!("{} is not inside a git repository", start.display()),
            )
        })?;
        // Called from inside a linked worktree: manage the repository as a
        // whole, from its main checkout.
        let git = if found.is_worktree() {
            Repository::open(found.commondir()).map_err(git_err(format_args!(
                "cannot open {}",
                found.commondir().display()
            )))?
        } else {
            found
        };
        let common = fs::canonicalize(git.commondir()).unwrap_or_else(|_| git.commondir().into());
        let workdir = git
            .workdir()
            .map(|w| fs::canonicalize(w).unwrap_or_else(|_| w.into()));
        Ok(Repo {
            git,
            common,
            workdir,
        })
    }

    /// `--dir`, else `$MT_DIR`, else this repository's `<common dir>/mt`.
    fn state(&self, explicit: Option<&Path>) -> StateDir {
        if let Some(d) = explicit {
            return StateDir::at(d);
        }
        match std::env::var_os("MT_DIR").filter(|v| !v.is_empty()) {
            Some(d) => StateDir::at(PathBuf::from(d)),
            None => StateDir::at(self.common.join("mt")),
        }
    }

    /// Serialise mt-worktree runs on one repository: the lock lives in the
    /// repository, whatever state directory is in use.
    fn lock(&self) -> Result<fs::File> {
        let dir = self.common.join("mt");
        fsutil::ensure_subdir(&dir)?;
        lock::exclusive_within(&dir.join("worktree.lock"), LOCK_WAIT)
    }

    fn root(&self, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(r) = explicit {
            return absolute(r);
        }
        if let Some(r) = std::env::var_os(ENV_ROOT).filter(|v| !v.is_empty()) {
            return absolute(Path::new(&r));
        }
        let anchor = self.workdir.as_ref().unwrap_or(&self.common);
        let (Some(parent), Some(stem)) = (anchor.parent(), anchor.file_name()) else {
            return Err(fail(
                CANTCREAT,
                format!(
                    "{} has no parent directory to hold worktrees; set {ENV_ROOT} or use --path",
                    anchor.display()
                ),
            ));
        };
        let stem = stem.to_string_lossy();
        let stem = stem
            .strip_suffix(".git")
            .filter(|s| !s.is_empty())
            .unwrap_or(&stem);
        Ok(parent.join(format!("{stem}.worktrees")))
    }

    fn admin(&self, name: &str) -> PathBuf {
        self.common.join("worktrees").join(name)
    }

    fn worktree_names(&self) -> Result<Vec<String>> {
        let arr = self
            .git
            .worktrees()
            .map_err(git_err("cannot list worktrees"))?;
        let mut v: Vec<String> = arr
            .iter()
            .filter_map(|n| n.ok().flatten())
            .map(str::to_string)
            .collect();
        v.sort();
        Ok(v)
    }

    fn config_get(&self, branch: &str, key: &str) -> Option<String> {
        let cfg = self.git.config().ok()?;
        cfg.get_string(&format!("branch.{branch}.{key}")).ok()
    }

    fn config_set(&self, branch: &str, key: &str, value: &str) -> Result<()> {
        let mut cfg = self.git.config().map_err(git_err("cannot open config"))?;
        cfg.set_str(&format!("branch.{branch}.{key}"), value)
            .map_err(git_err(format_args!("cannot record {key} of {branch}")))
    }

    /// The branch whose `mtworktree` is `name`, if it still exists.
    fn owned_branch(&self, name: &str) -> Option<String> {
        let cfg = self.git.config().ok()?.snapshot().ok()?;
        let mut entries = cfg.entries(Some(r"^branch\..*\.mtworktree$")).ok()?;
        while let Some(Ok(e)) = entries.next() {
            if e.value().ok() != Some(name) {
                continue;
            }
            let key = e.name().ok()?;
            let b = key.strip_prefix("branch.")?.strip_suffix(".mtworktree")?;
            if self.git.find_branch(b, BranchType::Local).is_ok() {
                return Some(b.to_string());
            }
        }
        None
    }

    fn branch_tip(&self, branch: &str) -> Option<Oid> {
        self.git
            .find_branch(branch, BranchType::Local)
            .ok()?
            .get()
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }

    /// The tip a base currently points at.
    fn resolve_base(&self, base: &str) -> Option<Oid> {
        if let Ok(oid) = Oid::from_str(base)
            && base.len() == 40
        {
            return self.git.find_commit(oid).ok().map(|c| c.id());
        }
        self.git
            .revparse_single(base)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }

    /// The main checkout's HEAD as a base: its branch, or the commit when
    /// HEAD is detached.
    fn head_base(&self) -> Result<(String, Oid)> {
        let head = self.git.head().map_err(|e| {
            if e.code() == ErrorCode::UnbornBranch {
                fail(
                    DATAERR,
                    "the main checkout has no commit yet; nothing to base a worktree on",
                )
            } else {
                git_err("cannot read HEAD")(e)
            }
        })?;
        let oid = head
            .peel_to_commit()
            .map_err(git_err("HEAD is not a commit"))?
            .id();
        match head.name() {
            Ok(n) if head.is_branch() => Ok((n.to_string(), oid)),
            _ => Ok((oid.to_string(), oid)),
        }
    }

    /// Resolve a user's `--base`: a ref keeps its name (so "merged" follows
    /// its tip), anything else becomes a fixed commit.
    fn parse_base(&self, rev: &str) -> Result<(String, Oid)> {
        let bad = |why: String| fail(DATAERR, format!("base {} {why}", names::quote(rev)));
        let (obj, reference) = self
            .git
            .revparse_ext(rev)
            .map_err(|e| bad(format!("does not resolve: {}", e.message())))?;
        let commit = obj
            .peel_to_commit()
            .map_err(|_| bad("is not a commit".into()))?;
        let name = match reference {
            Some(r) => {
                let r = r.resolve().unwrap_or(r);
                match r.name() {
                    Ok(n) if n.starts_with("refs/") => n.to_string(),
                    _ => commit.id().to_string(),
                }
            }
            None => commit.id().to_string(),
        };
        Ok((name, commit.id()))
    }

    /// Branch checked out by each worktree, main checkout included, keyed by
    /// worktree name (`None` for the main checkout).
    fn checked_out(&self) -> Result<Vec<(Option<String>, String)>> {
        let mut out = Vec::new();
        if let Some(b) = head_branch(&self.git) {
            out.push((None, b));
        }
        for n in self.worktree_names()? {
            if let Ok(r) = Repository::open(self.admin(&n))
                && let Some(b) = head_branch(&r)
            {
                out.push((Some(n), b));
            }
        }
        Ok(out)
    }

    /// Where branch `b` is checked out, other than in worktree `except`.
    fn checked_out_elsewhere(&self, b: &str, except: &str) -> Result<Option<String>> {
        Ok(self
            .checked_out()?
            .into_iter()
            .find(|(w, br)| br == b && w.as_deref() != Some(except))
            .map(|(w, _)| match w {
                None => "checked out in the main checkout".to_string(),
                Some(w) => format!("checked out in worktree {w}"),
            }))
    }

    fn count_unique(&self, push: &[Oid], hide: &[Oid]) -> Result<usize> {
        if push.is_empty() {
            return Ok(0);
        }
        let mut walk = self.git.revwalk().map_err(git_err("cannot walk history"))?;
        for p in push {
            walk.push(*p).map_err(git_err("cannot walk history"))?;
        }
        for h in hide {
            walk.hide(*h).map_err(git_err("cannot walk history"))?;
        }
        let mut n = 0;
        for r in walk {
            r.map_err(git_err("cannot walk history"))?;
            n += 1;
        }
        Ok(n)
    }

    fn status(&self, name: &str, state: &StateDir) -> Result<Status> {
        let wt = self
            .git
            .find_worktree(name)
            .map_err(git_err(format_args!("cannot open worktree {name}")))?;
        let path = wt.path().to_path_buf();
        let missing = wt.validate().is_err();
        let lock_reason;
        let locked = match wt
            .is_locked()
            .map_err(git_err("cannot read worktree lock"))?
        {
            WorktreeLockStatus::Locked(r) => {
                lock_reason = r
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().to_string());
                true
            }
            WorktreeLockStatus::Unlocked => {
                lock_reason = None;
                false
            }
        };
        let admin = self.admin(name);
        let wrepo = Repository::open(&admin)
            .map_err(git_err(format_args!("cannot open worktree {name}")))?;
        let branch = head_branch(&wrepo);
        let head = wrepo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .map(|c| c.id());
        let own_branch = self.owned_branch(name).or_else(|| branch.clone());
        let recorded = own_branch
            .as_deref()
            .and_then(|b| self.config_get(b, KEY_BASE))
            .or_else(|| branch.as_deref().and_then(|b| self.config_get(b, KEY_BASE)));
        let managed = recorded.is_some();
        let base = match recorded {
            Some(b) => Some(b),
            None => self.head_base().ok().map(|(b, _)| b),
        };
        let base_tip = base.as_deref().and_then(|b| self.resolve_base(b));

        let (ahead, merged) = match (head, base_tip) {
            (Some(h), Some(b)) => {
                let (a, _) = self
                    .git
                    .graph_ahead_behind(h, b)
                    .map_err(git_err("cannot compare with the base"))?;
                (Some(a), a == 0)
            }
            (None, Some(_)) => (Some(0), true),
            _ => (None, false),
        };

        // What removal would lose: commits reachable from the branch rm
        // deletes, or from a detached HEAD, and from nothing kept.
        let (unmerged, unmerged_keep) = match base_tip {
            None => (None, None),
            Some(b) => {
                let own_tip = own_branch.as_deref().and_then(|o| self.branch_tip(o));
                let elsewhere = match &own_branch {
                    Some(o) => self.checked_out_elsewhere(o, name)?.is_some(),
                    None => false,
                };
                let head_at_risk = match (&branch, head) {
                    (None, Some(h)) => Some(h),
                    (Some(br), Some(h)) if Some(br) == own_branch.as_ref() => Some(h),
                    _ => None,
                };
                let mut push: Vec<Oid> = head_at_risk.into_iter().collect();
                let mut hide = vec![b];
                match own_tip {
                    Some(t) if !elsewhere => push.push(t),
                    Some(t) => hide.push(t),
                    None => {}
                }
                let del = self.count_unique(&push, &hide)?;
                hide.extend(own_tip);
                let keep = self.count_unique(&push, &hide)?;
                (Some(del), Some(keep))
            }
        };

        let changes = if missing {
            Vec::new()
        } else {
            changes(&wrepo)
                .with_context(|| format!("cannot read the status of {}", path.display()))?
        };
        let running = names::is_valid(name) && state.agent_running(name)?;

        Ok(Status {
            name: name.to_string(),
            path,
            branch,
            head: head.map(|h| h.to_string()),
            base,
            ahead,
            dirty: !changes.is_empty(),
            merged,
            running,
            locked,
            lock_reason,
            missing,
            managed,
            changes,
            own_branch,
            unmerged,
            unmerged_keep,
            admin,
        })
    }

    /// Remove a worktree whose blockers were checked (or forced): directory
    /// first, then git's metadata, then the branch, as `git worktree remove`
    /// does, so an interruption leaves a registered worktree to retry on.
    fn remove(&self, st: &Status, keep_branch: bool, out: &mut Removed) -> Result<()> {
        if !st.missing {
            if points_back(&st.path, &st.admin) {
                fs::remove_dir_all(&st.path)
                    .with_context(|| format!("cannot remove {}", st.path.display()))
                    .code(CANTCREAT)?;
                out.path = Some(st.path.clone());
            } else {
                out.notes.push(format!(
                    "left {} in place: its .git does not point at worktree {}",
                    st.path.display(),
                    st.name
                ));
            }
        }
        let wt = self
            .git
            .find_worktree(&st.name)
            .map_err(git_err(format_args!("cannot open worktree {}", st.name)))?;
        let mut po = WorktreePruneOptions::new();
        po.valid(true).locked(true).working_tree(false);
        wt.prune(Some(&mut po)).map_err(git_err(format_args!(
            "cannot remove the metadata of {}",
            st.name
        )))?;

        if let Some(b) = &st.own_branch {
            if keep_branch {
                out.kept_branch = Some((b.clone(), "--keep-branch".into()));
            } else {
                self.delete_branch(b, out)?;
            }
        }
        Ok(())
    }

    /// Delete a branch unless some worktree still has it checked out.
    fn delete_branch(&self, b: &str, out: &mut Removed) -> Result<()> {
        if let Some(at) = self.checked_out_elsewhere(b, "")? {
            out.kept_branch = Some((b.to_string(), at));
            return Ok(());
        }
        let Ok(mut br) = self.git.find_branch(b, BranchType::Local) else {
            return Ok(());
        };
        let tip = br.get().target().map(|o| o.to_string()).unwrap_or_default();
        br.delete()
            .map_err(git_err(format_args!("cannot delete branch {b}")))?;
        out.deleted_branch = Some((b.to_string(), tip));
        Ok(())
    }
}

/// The short name of the branch HEAD points at (even an unborn one).
fn head_branch(r: &Repository) -> Option<String> {
    let head = r.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// Whether `dir/.git` is a gitdir file pointing at `admin`: the directory
/// really is that worktree, so deleting it deletes nothing else.
fn points_back(dir: &Path, admin: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(".git")) else {
        return false;
    };
    let Some(target) = text.strip_prefix("gitdir:") else {
        return false;
    };
    let target = dir.join(target.trim());
    match (fs::canonicalize(target), fs::canonicalize(admin)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Uncommitted changes and untracked files, as `XY path`. Ignored files do
/// not count: build output must not keep a worktree alive.
fn changes(r: &Repository) -> Result<Vec<String>> {
    let mut so = StatusOptions::new();
    so.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(false);
    let st = r
        .statuses(Some(&mut so))
        .map_err(git_err("cannot read status"))?;
    let mut out = Vec::new();
    for e in st.iter() {
        let s = e.status();
        if s.contains(Git::IGNORED) || s.is_empty() {
            continue;
        }
        let code = if s.contains(Git::WT_NEW) && !s.intersects(index_bits()) {
            "??".to_string()
        } else {
            format!("{}{}", index_letter(s), worktree_letter(s))
        };
        let path = String::from_utf8_lossy(e.path_bytes()).into_owned();
        out.push(format!("{code} {path}"));
    }
    Ok(out)
}

fn index_bits() -> Git {
    Git::INDEX_NEW
        | Git::INDEX_MODIFIED
        | Git::INDEX_DELETED
        | Git::INDEX_RENAMED
        | Git::INDEX_TYPECHANGE
}

fn index_letter(s: Git) -> char {
    if s.contains(Git::CONFLICTED) {
        'U'
    } else if s.contains(Git::INDEX_NEW) {
        'A'
    } else if s.contains(Git::INDEX_MODIFIED) {
        'M'
    } else if s.contains(Git::INDEX_DELETED) {
        'D'
    } else if s.contains(Git::INDEX_RENAMED) {
        'R'
    } else if s.contains(Git::INDEX_TYPECHANGE) {
        'T'
    } else {
        ' '
    }
}

fn worktree_letter(s: Git) -> char {
    if s.contains(Git::CONFLICTED) {
        'U'
    } else if s.contains(Git::WT_MODIFIED) {
        'M'
    } else if s.contains(Git::WT_DELETED) {
        'D'
    } else if s.contains(Git::WT_RENAMED) {
        'R'
    } else if s.contains(Git::WT_TYPECHANGE) {
        'T'
    } else if s.contains(Git::WT_NEW) {
        '?'
    } else {
        ' '
    }
}

/// Remove whatever is at `path` (a stray in the way of `add --force`),
/// refusing anything that holds the repository or another worktree.
fn remove_stray(repo: &Repo, path: &Path) -> Result<()> {
    let canon = canonical_lenient(path);
    let mut protected: Vec<PathBuf> = vec![repo.common.clone()];
    protected.extend(repo.workdir.clone());
    for n in repo.worktree_names()? {
        if let Ok(wt) = repo.git.find_worktree(&n) {
            protected.push(canonical_lenient(wt.path()));
        }
    }
    if let Some(p) = protected.iter().find(|p| p.starts_with(&canon)) {
        return Err(fail(
            CANTCREAT,
            format!(
                "refusing to replace {}: it holds {}, part of this repository",
                path.display(),
                p.display()
            ),
        ));
    }
    let meta = fs::symlink_metadata(path)?;
    let res = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    res.with_context(|| format!("cannot remove {}", path.display()))
        .code(CANTCREAT)
}

/// Where `add` puts a worktree named `name` when no path is given.
pub fn default_path(repo: Option<&Path>, root: Option<&Path>, name: &str) -> Result<PathBuf> {
    names::check("worktree", name)?;
    Ok(Repo::open(repo)?.root(root)?.join(name))
}

/// Create the worktree for `opts.name`, or return it if it exists.
///
/// A registered worktree whose directory was deleted is pruned and created
/// again on its existing branch (which is never reset: it may hold work).
/// Anything else already at the path is an error (exit 73) unless `force`.
pub fn add(opts: &AddOptions) -> Result<Worktree> {
    let name = names::check("worktree", &opts.name)?;
    let branch = opts
        .branch
        .clone()
        .unwrap_or_else(|| format!("{BRANCH_PREFIX}{name}"));
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(fail(
            DATAERR,
            format!("invalid branch name {}", names::quote(&branch)),
        ));
    }
    let repo = Repo::open(opts.repo.as_deref())?;
    // Resolve everything that can fail on bad input before touching anything.
    let (base, base_tip) = match &opts.base {
        Some(rev) => repo.parse_base(rev)?,
        None => repo.head_base()?,
    };
    let path = match &opts.path {
        Some(p) => absolute(p)?,
        None => repo.root(opts.root.as_deref())?.join(name),
    };
    let _lock = repo.lock()?;

    let admin = repo.admin(name);
    if let Some(wt) = existing(&repo, opts, name, &path, &admin)? {
        return Ok(wt);
    }
    clear_path(&repo, opts, name, &path)?;
    if let Some(parent) = path.parent() {
        fsutil::ensure_dir(parent)?;
    }

    // Reuse an existing branch as it is; otherwise start it at the base.
    let (reference, created_branch) = branch_for(&repo, &branch, name, base_tip)?;
    let recorded = match repo.config_get(&branch, KEY_BASE) {
        Some(b) => b,
        None => {
            repo.config_set(&branch, KEY_BASE, &base)?;
            base.clone()
        }
    };
    repo.config_set(&branch, KEY_WORKTREE, name)?;

    let mut wo = WorktreeAddOptions::new();
    wo.reference(Some(&reference));
    match repo.git.worktree(name, &path, Some(&wo)) {
        Ok(wt) => Ok(Worktree {
            name: name.to_string(),
            path: wt.path().to_path_buf(),
            branch: Some(branch),
            base: Some(recorded),
            created: true,
        }),
        Err(e) => {
            // Nothing was at either place before: what is there now is ours.
            let _ = fs::remove_dir_all(&admin);
            let _ = fs::remove_dir_all(&path);
            if created_branch && let Ok(mut b) = repo.git.find_branch(&branch, BranchType::Local) {
                let _ = b.delete();
            }
            Err(fail(
                CANTCREAT,
                format!(
                    "cannot create worktree {name} at {}: {}",
                    path.display(),
                    e.message()
                ),
            ))
        }
    }
}

/// The worktree `name` when it is registered and valid (at `path`, if one
/// was asked for). A registered worktree whose directory is gone is pruned;
/// stray metadata at `admin` is removed with `force`, else refused.
fn existing(
    repo: &Repo,
    opts: &AddOptions,
    name: &str,
    path: &Path,
    admin: &Path,
) -> Result<Option<Worktree>> {
    if let Ok(wt) = repo.git.find_worktree(name) {
        if wt.validate().is_ok() {
            let at = canonical_lenient(wt.path());
            if opts.path.is_some() && at != canonical_lenient(path) {
                return Err(fail(
                    CANTCREAT,
                    format!(
                        "worktree {name} already exists at {}, not at {}",
                        at.display(),
                        path.display()
                    ),
                ));
            }
            let wrepo = Repository::open(admin).ok();
            let cur = wrepo.as_ref().and_then(head_branch);
            let base = cur.as_deref().and_then(|b| repo.config_get(b, KEY_BASE));
            return Ok(Some(Worktree {
                name: name.to_string(),
                path: wt.path().to_path_buf(),
                branch: cur,
                base,
                created: false,
            }));
        }
        if let Ok(WorktreeLockStatus::Locked(_)) = wt.is_locked() {
            return Err(fail(
                CANTCREAT,
                format!(
                    "worktree {name} is locked and its directory {} is missing (on removable media?); unlock it with `git worktree unlock {name}` first",
                    wt.path().display()
                ),
            ));
        }
        wt.prune(None).map_err(git_err(format_args!(
            "cannot prune the stale worktree {name}"
        )))?;
    } else if fs::symlink_metadata(admin).is_ok() {
        // Unreadable leftovers of an interrupted add by some other tool.
        if !opts.force {
            return Err(fail(
                CANTCREAT,
                format!(
                    "{} exists but is not a valid worktree; use --force to replace it",
                    admin.display()
                ),
            ));
        }
        crate::exit::warn(format_args!(
            "--force: removing stray worktree metadata {}",
            admin.display()
        ));
        fs::remove_dir_all(admin)
            .with_context(|| format!("cannot remove {}", admin.display()))
            .code(CANTCREAT)?;
    }
    Ok(None)
}

/// Make room at `path` for worktree `name`: refused when anything is there,
/// unless `force`, which deletes it.
fn clear_path(repo: &Repo, opts: &AddOptions, name: &str, path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        if !opts.force {
            return Err(fail(
                CANTCREAT,
                format!(
                    "{} already exists and is not the worktree {name}; move it away or use --force to replace it",
                    path.display()
                ),
            ));
        }
        crate::exit::warn(format_args!(
            "--force: deleting {} to make room for worktree {name}",
            path.display()
        ));
        remove_stray(repo, path)?;
    }
    Ok(())
}

/// The branch for worktree `name`: an existing one as it is (unless it is
/// checked out elsewhere), else a new one at `base_tip`; and whether it was
/// created.
fn branch_for<'r>(
    repo: &'r Repo,
    branch: &str,
    name: &str,
    base_tip: git2::Oid,
) -> Result<(git2::Reference<'r>, bool)> {
    Ok(match repo.git.find_branch(branch, BranchType::Local) {
        Ok(b) => {
            if let Some(at) = repo.checked_out_elsewhere(branch, name)? {
                return Err(fail(
                    CANTCREAT,
                    format!("cannot use branch {branch}: it is {at}"),
                ));
            }
            (b.into_reference(), false)
        }
        Err(_) => {
            let commit = repo
                .git
                .find_commit(base_tip)
                .map_err(git_err("cannot read the base commit"))?;
            let b = repo.git.branch(branch, &commit, false).map_err(|e| {
                fail(
                    CANTCREAT,
                    format!("cannot create branch {branch}: {}", e.message()),
                )
            })?;
            (b.into_reference(), true)
        }
    })
}

/// Every linked worktree of the repository (managed or not), by name.
pub fn list(repo: Option<&Path>, dir: Option<&Path>) -> Result<Vec<Status>> {
    let repo = Repo::open(repo)?;
    let state = repo.state(dir);
    repo.worktree_names()?
        .iter()
        .map(|n| repo.status(n, &state))
        .collect()
}

/// One worktree's status; exit 1 when there is no such worktree.
pub fn status(repo: Option<&Path>, dir: Option<&Path>, name: &str) -> Result<Status> {
    names::check("worktree", name)?;
    let repo = Repo::open(repo)?;
    if repo.git.find_worktree(name).is_err() {
        return Err(fail(NO, format!("no worktree named {name}")));
    }
    repo.status(name, &repo.state(dir))
}

/// An mt branch that no worktree has checked out.
#[derive(Debug, Clone, Serialize)]
pub struct LooseBranch {
    pub name: String,
    /// The recorded base (full ref name or commit id).
    pub base: String,
    /// Commits not in the base's current tip; `None` when the base or the
    /// branch does not resolve.
    pub unmerged: Option<usize>,
}

/// The mt branches no worktree has checked out, as `gc` judges them: it
/// deletes the ones with nothing unmerged and keeps the others. Reads only.
pub fn loose_branches(repo: Option<&Path>) -> Result<Vec<LooseBranch>> {
    let repo = Repo::open(repo)?;
    let checked: BTreeSet<String> = repo.checked_out()?.into_iter().map(|(_, b)| b).collect();
    let mut out = Vec::new();
    let branches = repo
        .git
        .branches(Some(BranchType::Local))
        .map_err(git_err("cannot list branches"))?;
    for b in branches {
        let (b, _) = b.map_err(git_err("cannot list branches"))?;
        let Ok(Some(name)) = b.name() else { continue };
        if checked.contains(name) {
            continue;
        }
        let Some(base) = repo.config_get(name, KEY_BASE) else {
            continue;
        };
        let unmerged = match (repo.resolve_base(&base), repo.branch_tip(name)) {
            (Some(bt), Some(t)) => Some(repo.count_unique(&[t], &[bt])?),
            _ => None,
        };
        out.push(LooseBranch {
            name: name.to_string(),
            base,
            unmerged,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove a worktree and its branch, or refuse (exit 1, saying why) when
/// that would lose uncommitted changes or commits not in the base, or pull
/// the directory from under a running agent. With `force`, the blockers
/// overridden are returned in `Removed::forced` for the caller to report.
pub fn rm(opts: &RmOptions) -> Result<Removed> {
    let name = names::check("worktree", &opts.name)?;
    let repo = Repo::open(opts.repo.as_deref())?;
    let state = repo.state(opts.dir.as_deref());
    let _lock = repo.lock()?;
    let mut out = Removed {
        name: name.to_string(),
        ..Removed::default()
    };

    if repo.git.find_worktree(name).is_err() {
        // No worktree: a branch left behind by `rm --keep-branch` or by a
        // deleted worktree may still be ours to delete.
        let Some(b) = repo.owned_branch(name) else {
            return Err(fail(NO, format!("no worktree named {name}")));
        };
        let base = repo.config_get(&b, KEY_BASE);
        let lost = match (
            base.as_deref().and_then(|x| repo.resolve_base(x)),
            repo.branch_tip(&b),
        ) {
            (Some(bt), Some(t)) => Some(repo.count_unique(&[t], &[bt])?),
            (_, None) => Some(0),
            _ => None,
        };
        let blocker = match (lost, &base) {
            (Some(0), _) => None,
            (Some(count), Some(base)) => Some(Blocker::Commits {
                count,
                branch: Some(b.clone()),
                base: base.clone(),
            }),
            _ => Some(Blocker::BaseUnknown(base.clone())),
        };
        if opts.keep_branch {
            return Err(fail(
                NO,
                format!("no worktree named {name} (its branch {b} is kept)"),
            ));
        }
        if let Some(bl) = blocker {
            if !opts.force {
                return Err(fail(
                    NO,
                    format!("refusing to delete branch {b} of {name}: {bl}"),
                ));
            }
            out.forced.push(bl);
        }
        repo.delete_branch(&b, &mut out)?;
        return Ok(out);
    }

    let st = repo.status(name, &state)?;
    let blockers = st.blockers(opts.keep_branch);
    if !blockers.is_empty() {
        if !opts.force {
            let why: Vec<String> = blockers.iter().map(ToString::to_string).collect();
            let hint = if blockers
                .iter()
                .any(|b| matches!(b, Blocker::Commits { .. }))
                && !opts.keep_branch
            {
                " (--keep-branch keeps the commits and removes only the directory; --force discards)"
            } else {
                " (--force discards)"
            };
            return Err(fail(
                NO,
                format!(
                    "refusing to remove worktree {name}: {}{hint}",
                    why.join("; ")
                ),
            ));
        }
        out.forced = blockers;
    }
    repo.remove(&st, opts.keep_branch, &mut out)?;
    Ok(out)
}

fn age(admin: &Path) -> Option<Duration> {
    let m = fs::metadata(admin).ok()?.modified().ok()?;
    SystemTime::now().duration_since(m).ok()
}

/// Prune stale metadata, remove every managed worktree that `rm` would
/// remove without force, delete merged mt branches no worktree has checked
/// out; report each decision.
pub fn gc(opts: &GcOptions) -> Result<Vec<GcItem>> {
    let repo = Repo::open(opts.repo.as_deref())?;
    let state = repo.state(opts.dir.as_deref());
    let _lock = repo.lock()?;
    let mut items = Vec::new();
    // Worktrees gone by the end of this run (or that would be, in a dry run).
    let mut gone: BTreeSet<String> = BTreeSet::new();
    // Branches deleted along with their worktree (reported there).
    let mut removed_branches: BTreeSet<String> = BTreeSet::new();

    for n in repo.worktree_names()? {
        if let Some(item) = gc_worktree(&repo, &state, opts, &n, &mut gone, &mut removed_branches)?
        {
            items.push(item);
        }
    }
    gc_branches(&repo, opts, &gone, &removed_branches, &mut items)?;
    Ok(items)
}

/// gc of one worktree: pruned when its directory is gone, removed when
/// nothing would be lost, else kept; what was done, with the reason.
/// `gone` and `removed_branches` collect what no longer exists.
fn gc_worktree(
    repo: &Repo,
    state: &StateDir,
    opts: &GcOptions,
    n: &str,
    gone: &mut BTreeSet<String>,
    removed_branches: &mut BTreeSet<String>,
) -> Result<Option<GcItem>> {
    let Ok(wt) = repo.git.find_worktree(n) else {
        return Ok(None);
    };
    let item = |action, why: String| GcItem {
        action,
        name: n.to_string(),
        path: Some(wt.path().to_path_buf()),
        why,
    };
    if wt.validate().is_err() {
        if let Ok(WorktreeLockStatus::Locked(_)) = wt.is_locked() {
            return Ok(Some(item(
                GcAction::Kept,
                "directory missing, but the worktree is locked".into(),
            )));
        }
        if !opts.dry_run {
            wt.prune(None)
                .map_err(git_err(format_args!("cannot prune worktree {n}")))?;
        }
        gone.insert(n.to_string());
        return Ok(Some(item(
            GcAction::Pruned,
            "directory is gone; stale metadata".into(),
        )));
    }
    let st = repo.status(n, state)?;
    let mut why: Vec<String> = st.blockers(false).iter().map(ToString::to_string).collect();
    if !st.managed {
        why.insert(0, "not created by mt-worktree".into());
    }
    if !opts.min_age.is_zero()
        && let Some(a) = age(&st.admin)
        && a < opts.min_age
    {
        why.push(format!(
            "active {} ago (--min-age {})",
            crate::infra::time::format_duration(a),
            crate::infra::time::format_duration(opts.min_age)
        ));
    }
    if !why.is_empty() {
        return Ok(Some(item(GcAction::Kept, why.join("; "))));
    }
    let mut removed = Removed::default();
    if opts.dry_run {
        if let Some(b) = &st.own_branch {
            match repo.checked_out_elsewhere(b, n)? {
                Some(at) => removed.kept_branch = Some((b.clone(), at)),
                None => removed.deleted_branch = Some((b.clone(), String::new())),
            }
        }
    } else {
        repo.remove(&st, false, &mut removed)?;
    }
    let mut why = String::from("clean, nothing unmerged");
    if let Some((b, _)) = &removed.deleted_branch {
        why.push_str(&format!("; branch {b} deleted"));
        removed_branches.insert(b.clone());
    }
    if let Some((b, k)) = &removed.kept_branch {
        why.push_str(&format!("; branch {b} kept: {k}"));
    }
    for note in removed.notes {
        why.push_str(&format!("; {note}"));
    }
    gone.insert(n.to_string());
    Ok(Some(item(GcAction::Removed, why)))
}

/// gc of mt's branches left without a worktree: deleted when merged into
/// their recorded base, else kept.
fn gc_branches(
    repo: &Repo,
    opts: &GcOptions,
    gone: &BTreeSet<String>,
    removed_branches: &BTreeSet<String>,
    items: &mut Vec<GcItem>,
) -> Result<()> {
    // mt branches left without a worktree.
    let checked: BTreeSet<String> = repo
        .checked_out()?
        .into_iter()
        .filter(|(w, _)| w.as_ref().is_none_or(|w| !gone.contains(w)))
        .map(|(_, b)| b)
        .collect();
    let branches = repo
        .git
        .branches(Some(BranchType::Local))
        .map_err(git_err("cannot list branches"))?;
    let mut names_: Vec<String> = Vec::new();
    for b in branches {
        let (b, _) = b.map_err(git_err("cannot list branches"))?;
        if let Ok(Some(n)) = b.name() {
            names_.push(n.to_string());
        }
    }
    names_.sort();
    for b in names_ {
        let Some(base) = repo.config_get(&b, KEY_BASE) else {
            continue;
        };
        if checked.contains(&b) || removed_branches.contains(&b) {
            continue;
        }
        let item = |action, why: String| GcItem {
            action,
            name: b.clone(),
            path: None,
            why,
        };
        let (Some(bt), Some(t)) = (repo.resolve_base(&base), repo.branch_tip(&b)) else {
            items.push(item(
                GcAction::KeptBranch,
                Blocker::BaseUnknown(Some(base.clone())).to_string(),
            ));
            continue;
        };
        let lost = repo.count_unique(&[t], &[bt])?;
        if lost > 0 {
            let bl = Blocker::Commits {
                count: lost,
                branch: None,
                base,
            };
            items.push(item(GcAction::KeptBranch, bl.to_string()));
            continue;
        }
        if !opts.dry_run {
            let mut r = Removed::default();
            repo.delete_branch(&b, &mut r)?;
        }
        items.push(item(
            GcAction::DeletedBranch,
            format!(
                "merged into {}, no worktree (was {})",
                short_ref(&base),
                short_id(&t.to_string())
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_ref("refs/heads/main"), "main");
        assert_eq!(short_ref("refs/remotes/origin/main"), "origin/main");
        assert_eq!(short_ref(&"a".repeat(40)), "a".repeat(10));
        assert_eq!(short_ref("weird"), "weird");
    }

    #[test]
    fn blocker_lists_files_and_counts() {
        let b = Blocker::Changes(vec!["?? new.txt".into(), " M a.txt".into()]);
        assert_eq!(b.to_string(), "2 uncommitted changes: ?? new.txt,  M a.txt");
        let c = Blocker::Commits {
            count: 1,
            branch: Some("mt/x".into()),
            base: "refs/heads/main".into(),
        };
        assert_eq!(c.to_string(), "1 commit on mt/x not in main");
    }
}
