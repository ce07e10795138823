//! The whole team at a glance: agents, tasks, unread messages, worktrees
//! with unmerged work, the watcher and reminders, gathered into one
//! serializable [`Overview`] for any view to show (`mt-status` prints it
//! for a terminal or as JSON).
//!
//! Gathering only reads: no cursor moves, no lock is taken for long, no
//! file is created, and no process is started (worktrees are read with
//! libgit2). A state directory that does not exist yet is an empty team.
//! A section that cannot be read is left empty and named in `errors`, so
//! one broken file does not hide the rest of the team.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::agent::{self, RateLimit};
use crate::channel;
use crate::coord::remind::{self, Reminder, Stage, Store};
use crate::cursor;
use crate::exit::{self, UNAVAILABLE};
use crate::infra::time;
use crate::statedir::StateDir;
use crate::tasks::{self, TaskList};
use crate::worktree;

/// What to gather, and for whom.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Whose unread messages to count.
    pub reader: String,
    /// Also list channels with nothing unread.
    pub all_channels: bool,
    /// Task list name (default: as `tasks::list_name` picks it).
    pub task_list: Option<String>,
    /// Claude Code's directory (default: `statedir::claude_config_dir`).
    pub claude_dir: Option<PathBuf>,
    /// A directory inside the repository whose worktrees to look at
    /// (default: the current directory's, else the state directory's).
    pub repo: Option<PathBuf>,
}

/// Everything `mt-status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub state_dir: PathBuf,
    /// When this was gathered.
    pub at: String,
    pub agents: Vec<Agent>,
    pub totals: Totals,
    /// `None` when the task list could not be read.
    pub tasks: Option<Tasks>,
    /// The reader whose unread messages `channels` counts.
    pub reader: String,
    pub channels: Vec<Unread>,
    /// `None` outside a git repository, or when it could not be read.
    pub worktrees: Option<Worktrees>,
    pub watcher: Watcher,
    /// `None` when the reminders could not be read.
    pub reminders: Option<Reminders>,
    /// The sections that could not be read, and why.
    pub errors: Vec<Problem>,
}

/// One agent, as mt-ps shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub name: String,
    /// starting, working, idle, exited, failed, lost or unknown.
    pub state: &'static str,
    pub running: bool,
    pub task: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// The last event, else the start.
    pub last_event_at: Option<String>,
    /// The last rate limit, when it was a rejection not yet reset.
    pub rate_limit: Option<RateLimit>,
    /// Why a failed agent failed (`exit`, `signal`, `lost`, ...).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub agents: usize,
    /// Agents whose supervisor runs.
    pub running: usize,
    /// How many agents are in each shown state.
    pub states: BTreeMap<&'static str, usize>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Agents held back by a rejected rate limit.
    pub rate_limited: usize,
}

/// The task list, counted by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tasks {
    pub list: String,
    pub pending: usize,
    pub in_progress: usize,
    pub completed: usize,
    /// Tasks with a status mt does not know.
    pub other: usize,
    /// Task files that do not parse (perhaps being written).
    pub skipped: usize,
    /// The tasks in progress.
    pub active: Vec<TaskRow>,
    /// Pending tasks waiting for another task to be completed.
    pub blocked: Vec<TaskRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub id: u64,
    pub subject: String,
    pub owner: Option<String>,
    /// Blockers not completed yet.
    pub blocked_by: Vec<u64>,
}

/// A channel with records the reader has not read.
#[derive(Debug, Clone, Serialize)]
pub struct Unread {
    pub name: String,
    pub unread: u64,
    pub last_seq: u64,
    pub last_activity: Option<String>,
}

/// Work not in the base yet: worktrees with commits not in their base or
/// with uncommitted changes, and mt branches left without a worktree that
/// still hold commits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Worktrees {
    /// As `mt-worktree list --json` shows them.
    pub unmerged: Vec<worktree::Status>,
    pub branches: Vec<worktree::LooseBranch>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Watcher {
    pub running: bool,
    /// The watcher's pid, when it wrote one.
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reminders {
    /// Reminders that have not fired yet (due or not).
    pub pending: usize,
    /// Those due now or overdue, and those being delivered.
    pub due: Vec<Due>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Due {
    pub stage: Stage,
    #[serde(flatten)]
    pub reminder: Reminder,
}

/// A section that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub section: &'static str,
    pub error: String,
    /// The exit code the error carries (see mt(7)).
    pub code: u8,
}

impl Problem {
    fn new(section: &'static str, e: &anyhow::Error) -> Problem {
        Problem {
            section,
            error: format!("{e:#}"),
            code: exit::code_of(e),
        }
    }
}

/// Gather the overview of `state`. Sections are read side by side: the
/// worktrees (libgit2) and the task list (one file per task) in threads
/// of their own.
pub fn gather(state: &StateDir, opts: &Options) -> Overview {
    let now = Utc::now();
    let mut errors = Vec::new();
    let (tasks, worktrees, rest) = std::thread::scope(|s| {
        let worktrees = s.spawn(|| gather_worktrees(state, opts));
        let rest = s.spawn(|| {
            Ok((
                gather_agents(state, now),
                gather_channels(state, opts),
                gather_reminders(state),
                crate::watch::engine::running(state),
            ))
        });
        // The task list, the most allocations by far, on the main thread:
        // a thread's own malloc arena grows in many more system calls.
        let tasks = gather_tasks(state, opts);
        (tasks, joined(worktrees.join()), joined(rest.join()))
    });
    fn failed<T>(e: &anyhow::Error) -> Result<T> {
        Err(anyhow::anyhow!("{e:#}"))
    }
    let rest = rest.unwrap_or_else(|e| (failed(&e), failed(&e), failed(&e), failed(&e)));
    let (agents, channels, reminders, watcher) = rest;
    fn section<T>(errors: &mut Vec<Problem>, name: &'static str, r: Result<T>) -> Option<T> {
        r.map_err(|e| errors.push(Problem::new(name, &e))).ok()
    }
    let e = &mut errors;
    let agents = section(e, "agents", agents).unwrap_or_default();
    let tasks = section(e, "tasks", tasks);
    let (channels, unreadable) = section(e, "channels", channels).unwrap_or_default();
    let worktrees = section(e, "worktrees", worktrees).flatten();
    let reminders = section(e, "reminders", reminders);
    let watcher = section(e, "watcher", watcher)
        .flatten()
        .map(|pid| Watcher {
            running: true,
            pid: Some(pid).filter(|&p| p > 0),
        })
        .unwrap_or_default();
    errors.extend(unreadable);
    Overview {
        state_dir: state.root().to_path_buf(),
        at: time::stamp(now),
        totals: totals(&agents),
        agents,
        tasks,
        reader: opts.reader.clone(),
        channels,
        worktrees,
        watcher,
        reminders,
        errors,
    }
}

/// A section's thread's outcome, a panic as an error.
fn joined<T>(r: std::thread::Result<Result<T>>) -> Result<T> {
    r.unwrap_or_else(|_| Err(anyhow::anyhow!("reading this section failed")))
}

fn gather_agents(state: &StateDir, now: DateTime<Utc>) -> Result<Vec<Agent>> {
    Ok(agent::all(state)?
        .into_iter()
        .map(|i| {
            let st = i.status.unwrap_or_default();
            let rate_limit = st.rate_limit.filter(|rl| {
                rl.status == "rejected"
                    && rl
                        .resets_at
                        .as_deref()
                        .and_then(time::parse_stamp)
                        .is_none_or(|t| t > now)
            });
            Agent {
                state: i.shown,
                running: i.running,
                task: i.meta.and_then(|m| m.task),
                input_tokens: st.input_tokens,
                output_tokens: st.output_tokens,
                cost_usd: st.cost_usd,
                last_event_at: st.last_event_at.or(st.started_at),
                rate_limit,
                error: st
                    .error
                    .filter(|_| i.shown == "failed" || i.shown == "lost"),
                name: i.name,
            }
        })
        .collect())
}

fn totals(agents: &[Agent]) -> Totals {
    let mut t = Totals {
        agents: agents.len(),
        ..Totals::default()
    };
    for a in agents {
        *t.states.entry(a.state).or_default() += 1;
        t.running += usize::from(a.running);
        t.rate_limited += usize::from(a.rate_limit.is_some());
        t.input_tokens += a.input_tokens;
        t.output_tokens += a.output_tokens;
        t.cost_usd += a.cost_usd;
    }
    t
}

/// The task list, read without its lock (files are replaced whole).
fn gather_tasks(state: &StateDir, opts: &Options) -> Result<Tasks> {
    let name = tasks::list_name(opts.task_list.as_deref(), Some(state))?;
    let config = match &opts.claude_dir {
        Some(d) => d.clone(),
        None => crate::statedir::claude_config_dir()?,
    };
    let listing = TaskList::new(&config, &name)?.list()?;
    let mut out = Tasks {
        list: name,
        skipped: listing.skipped.len(),
        ..Tasks::default()
    };
    for t in &listing.tasks {
        let row = || TaskRow {
            id: t.id,
            subject: t.subject().to_string(),
            owner: t.owner().map(str::to_string),
            blocked_by: listing.open_blockers(t),
        };
        match t.status() {
            Some(tasks::Status::Pending) => {
                out.pending += 1;
                if !t.blocked_by().is_empty() {
                    let r = row();
                    if !r.blocked_by.is_empty() {
                        out.blocked.push(r);
                    }
                }
            }
            Some(tasks::Status::InProgress) => {
                out.in_progress += 1;
                out.active.push(row());
            }
            Some(tasks::Status::Completed) => out.completed += 1,
            None => out.other += 1,
        }
    }
    Ok(out)
}

/// Unread counts from the reader's cursors, which are only read, on the
/// channels that are not archived. Returns the channels, and the ones
/// whose cursor could not be read.
fn gather_channels(state: &StateDir, opts: &Options) -> Result<(Vec<Unread>, Vec<Problem>)> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for name in channel::list_channels(state)? {
        let counted = (|| -> Result<Unread> {
            let summary = channel::summarize(state, &name)?;
            let seen = cursor::load(state, &opts.reader, &name)?.map_or(0, |p| p.seq);
            Ok(Unread {
                unread: summary.last_seq.saturating_sub(seen),
                last_seq: summary.last_seq,
                last_activity: summary.last_activity,
                name: name.clone(),
            })
        })();
        match counted {
            Ok(u) if u.unread > 0 || opts.all_channels => out.push(u),
            Ok(_) => {}
            Err(e) => problems.push(Problem::new("channels", &e.context(format!("#{name}")))),
        }
    }
    Ok((out, problems))
}

/// The repository to look at: the one given, else the current
/// directory's, else the one holding the state directory; `None` when
/// there is none (not an error: the state directory may live anywhere).
fn gather_worktrees(state: &StateDir, opts: &Options) -> Result<Option<Worktrees>> {
    let dir = Some(state.root());
    let list = match &opts.repo {
        Some(r) => worktree::list(Some(r), dir).map(|l| (Some(r.clone()), l)),
        None => match worktree::list(None, dir) {
            Err(e) if exit::code_of(&e) == UNAVAILABLE && state.exists() => {
                worktree::list(Some(state.root()), dir).map(|l| (Some(state.root().into()), l))
            }
            other => other.map(|l| (None, l)),
        },
    };
    let (repo, list) = match list {
        Ok(v) => v,
        Err(e) if opts.repo.is_none() && exit::code_of(&e) == UNAVAILABLE => return Ok(None),
        Err(e) => return Err(e),
    };
    let branches = worktree::loose_branches(repo.as_deref().map(Path::new))?
        .into_iter()
        .filter(|b| b.unmerged != Some(0))
        .collect();
    Ok(Some(Worktrees {
        unmerged: list
            .into_iter()
            .filter(|w| w.ahead != Some(0) || w.dirty)
            .collect(),
        branches,
    }))
}

fn gather_reminders(state: &StateDir) -> Result<Reminders> {
    let now = remind::now();
    let store = Store::new(state);
    let mut out = Reminders::default();
    for (stage, r) in store.list(&[Stage::Pending, Stage::Firing])? {
        out.pending += 1;
        // A condition that cannot be checked now is not due.
        if stage == Stage::Firing || remind::is_due(state, &r, now).unwrap_or(false) {
            out.due.push(Due { stage, reminder: r });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_state_directory_is_an_empty_team() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::at(d.path().join("mt"));
        let o = gather(
            &state,
            &Options {
                reader: "lead".into(),
                task_list: Some("t".into()),
                claude_dir: Some(d.path().join("claude")),
                repo: None,
                all_channels: true,
            },
        );
        assert!(o.agents.is_empty() && o.channels.is_empty());
        assert_eq!(o.tasks.unwrap().pending, 0);
        assert!(!o.watcher.running);
        assert_eq!(o.reminders.unwrap().pending, 0);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert!(!state.exists(), "gathering created the state directory");
    }
}
