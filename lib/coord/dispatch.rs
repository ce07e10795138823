//! Handing tasks to new agents: pick a free name from a pool, claim the
//! task for it, give it a worktree, start it in the background with the
//! task as its prompt, and say so on the channel.
//!
//! Everything runs under `dispatch.lock` in the state directory, so two
//! dispatchers (mt-sling, mt-dispatch) never pick the same name or count
//! the running agents at the same time. The task itself is claimed under
//! the task list's lock before anything is started, so no task goes to two
//! agents even against Claude Code's own task tools; when the start fails,
//! the claim is given back (no owner, pending).

use anyhow::Result;
use std::collections::BTreeSet;
use std::fs::File;
use std::time::Duration;

use crate::agent::{self, AgentDir};
use crate::channel::{self, Draft};
use crate::exit::{self, DATAERR, NO, fail};
use crate::infra::lock;
use crate::names;
use crate::spawn;
use crate::statedir::StateDir;
use crate::tasks::{Claim, Listing, Refusal, Status as TaskStatus, Task, TaskList, TaskUpdate};
use crate::worktree;

/// The pool when none is configured: short names, in the order they are
/// given out.
pub const DEFAULT_POOL: &[&str] = &[
    "york", "park", "kent", "hale", "reed", "moss", "wren", "lark", "finn", "cole", "dale", "gray",
    "nash", "page", "rowe", "vale",
];

/// The names agents may be given: `given` (`--pool` / `$MT_POOL`, comma
/// separated), else the file `pool` in the state directory (one name per
/// line, `#` comments), else `DEFAULT_POOL`. Every name must be a valid
/// agent name and a valid Claude Code owner name (no dots).
pub fn pool(state: &StateDir, given: Option<&str>) -> Result<Vec<String>> {
    let file = state.root().join("pool");
    let raw: Vec<String> = match given.filter(|s| !s.trim().is_empty()) {
        Some(g) => g.split(',').map(|s| s.trim().to_string()).collect(),
        None => match std::fs::read_to_string(&file) {
            Ok(text) => text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                DEFAULT_POOL.iter().map(|s| s.to_string()).collect()
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display()))
                );
            }
        },
    };
    let mut out: Vec<String> = Vec::new();
    for n in raw.into_iter().filter(|n| !n.is_empty()) {
        names::check("agent", &n)?;
        names::check_claude("agent", &n)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(fail(DATAERR, "the pool of agent names is empty"));
    }
    Ok(out)
}

/// Agents work in worktrees of the repository around the current
/// directory: refuse (exit 69) before anything is written when there is
/// none.
pub fn check_repo() -> Result<()> {
    let cwd = std::env::current_dir()?;
    if crate::statedir::discover_git(&cwd).is_none() {
        return Err(fail(
            exit::UNAVAILABLE,
            format!(
                "{} is not inside a git repository; agents work in its worktrees",
                cwd.display()
            ),
        ));
    }
    Ok(())
}

/// Take the dispatch lock (waits up to a minute, then exit 75).
pub fn lock(state: &StateDir) -> Result<File> {
    state.ensure()?;
    lock::exclusive_within(&state.root().join("dispatch.lock"), Duration::from_secs(60))
}

/// How to start agents.
#[derive(Debug, Clone)]
pub struct Options {
    pub list: TaskList,
    pub pool: Vec<String>,
    pub model: Option<String>,
    /// The agents' channel, and where the records go.
    pub channel: String,
    pub agent_cmd: Option<String>,
    /// What the agents may do without asking.
    pub permissions: crate::permissions::Choice,
    /// The sender of the records (`mt-sling`, `mt-dispatch`).
    pub from: String,
    /// Decide only: claim, create and start nothing.
    pub dry_run: bool,
    /// Auth profiles to spread the agents over (none: mt-spawn's choice,
    /// `$MT_PROFILE` or the default profile).
    pub profiles: Vec<String>,
}

/// What became of one task.
#[derive(Debug)]
pub enum Outcome {
    /// Agent `0` took it (with --dry-run: would take it).
    Started(String),
    /// No name of the pool is free.
    NoFreeName,
    /// The claim was refused (taken meanwhile, blocked, ...).
    Refused(Refusal),
    /// Every profile of `--profiles` is at a usage limit; the first
    /// resets then.
    AllLimited(String),
}

/// The profile for the next agent among `profiles`: of those with no
/// agent reporting a rejected rate limit that has not reset, the one with
/// the fewest running agents (the first given, on a tie). `Err` holds the
/// earliest reset when every profile is limited.
pub fn pick_profile(
    infos: &[agent::Info],
    profiles: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<String, chrono::DateTime<chrono::Utc>> {
    let of =
        |i: &&agent::Info, p: &str| i.meta.as_ref().and_then(|m| m.profile.as_deref()) == Some(p);
    let mut best: Option<(usize, &String)> = None;
    let mut first_reset: Option<chrono::DateTime<chrono::Utc>> = None;
    for p in profiles {
        let limited = infos
            .iter()
            .filter(|i| of(i, p))
            .filter_map(|i| {
                i.status
                    .as_ref()
                    .and_then(crate::coord::reap::rejected_until)
            })
            .filter(|r| *r > now)
            .max();
        if let Some(r) = limited {
            first_reset = Some(first_reset.map_or(r, |f| f.min(r)));
            continue;
        }
        let running = infos.iter().filter(|i| i.running && of(i, p)).count();
        if best.is_none_or(|(n, _)| running < n) {
            best = Some((running, p));
        }
    }
    match best {
        Some((_, p)) => Ok(p.clone()),
        None => Err(first_reset.unwrap_or(now)),
    }
}

/// The prompt of an agent started for `task`.
pub fn prompt(list: &TaskList, task: &Task) -> String {
    let mut p = task.subject().trim().to_string();
    let d = task.description().trim();
    if !d.is_empty() {
        p.push_str("\n\n");
        p.push_str(d);
    }
    p.push_str(&format!(
        "\n\nThis is task {} of the task list {}. When it is done, mark it done: mt-task done {}",
        task.id,
        list.name(),
        task.id
    ));
    p
}

/// Whether `name` is free for a new task in `listing`: no running agent of
/// that name, no task of the list it owns that is not completed, and no
/// worktree of that name with uncommitted changes or commits not merged
/// (nor one locked or not made by mt). Returns the worktree to replace: a
/// clean, merged mt worktree of that name (its base may be old).
fn check_free(state: &StateDir, listing: &Listing, name: &str) -> Result<Option<bool>> {
    if agent::is_running(state, name)? {
        return Ok(None);
    }
    if listing
        .tasks
        .iter()
        .any(|t| t.owner() == Some(name) && t.status() != Some(TaskStatus::Completed))
    {
        return Ok(None);
    }
    match worktree::status(None, Some(state.root()), name) {
        Ok(st) => {
            let busy = !st.managed
                || st.locked
                || !st.changes.is_empty()
                || st.unmerged != Some(0)
                || st.running;
            Ok(if busy { None } else { Some(true) })
        }
        Err(e) if exit::code_of(&e) == NO => Ok(Some(false)),
        Err(e) => Err(e),
    }
}

/// Pick a free name and reserve it by taking its liveness lock (so no
/// mt-spawn or other dispatcher can start it meanwhile). A clean, merged
/// worktree of that name is removed first, to be made again from the
/// current base. `skip` holds names already given out in this run.
pub fn reserve(
    state: &StateDir,
    o: &Options,
    listing: &Listing,
    skip: &BTreeSet<String>,
) -> Result<Option<(String, Option<File>)>> {
    for name in &o.pool {
        if skip.contains(name) {
            continue;
        }
        let Some(replace) = check_free(state, listing, name)? else {
            continue;
        };
        if o.dry_run {
            return Ok(Some((name.clone(), None)));
        }
        if replace {
            let rm = worktree::rm(&worktree::RmOptions {
                name: name.clone(),
                dir: Some(state.root().to_path_buf()),
                ..worktree::RmOptions::default()
            });
            if let Err(e) = rm {
                eprintln!("{}: skipping {name}: {e:#}", o.from);
                continue;
            }
        }
        let a = AgentDir::new(state, name)?;
        a.ensure(state)?;
        if let Some(held) = lock::try_exclusive(a.lock_path())? {
            return Ok(Some((name.clone(), Some(held))));
        }
    }
    Ok(None)
}

/// Give `task` to a free agent: reserve a name, claim the task for it,
/// start it (worktree, prompt, MT_TASK, CLAUDE_CODE_TASK_LIST_ID) and post
/// `NAME took task N: SUBJECT`. The caller holds the dispatch lock. A
/// failed start gives the claim back before the error is returned.
pub fn start(
    state: &StateDir,
    o: &Options,
    listing: &Listing,
    task: &Task,
    skip: &BTreeSet<String>,
) -> Result<Outcome> {
    let profile = if o.profiles.is_empty() {
        None
    } else {
        match pick_profile(&agent::all(state)?, &o.profiles, chrono::Utc::now()) {
            Ok(p) => Some(p),
            Err(reset) => {
                return Ok(Outcome::AllLimited(crate::infra::time::stamp(reset)));
            }
        }
    };
    let Some((name, held)) = reserve(state, o, listing, skip)? else {
        return Ok(Outcome::NoFreeName);
    };
    let Some(held) = held else {
        return Ok(Outcome::Started(name));
    };
    match crate::sync::tasks::claim(state, &o.list, task.id, &name)? {
        Claim::Won(_) | Claim::AlreadyYours(_) => {}
        Claim::Refused(r) => return Ok(Outcome::Refused(r)),
    }
    let opts = spawn::Options {
        name: name.clone(),
        prompt: Some(prompt(&o.list, task)),
        worktree: true,
        task: Some(task.id.to_string()),
        task_list: Some(o.list.name().to_string()),
        model: o.model.clone(),
        channel: Some(o.channel.clone()),
        agent_cmd: o.agent_cmd.clone(),
        permissions: o.permissions.clone(),
        profile,
        ..spawn::Options::default()
    };
    let started = spawn::prepare_locked(state, opts, held)
        .and_then(|(plan, held)| spawn::run_detached(plan, held));
    if let Err(e) = started {
        let released = o.list.update(
            task.id,
            &TaskUpdate {
                owner: Some(String::new()),
                status: Some(TaskStatus::Pending),
                ..TaskUpdate::default()
            },
        );
        let back = match &released {
            Ok(_) => "the task is pending again".to_string(),
            Err(r) => format!("cannot release the claim: {r:#}"),
        };
        let text = format!("cannot start {name} for task {}: {e:#}; {back}", task.id);
        let _ = post(state, o, "error", &text, task.id, &name);
        return Err(fail(exit::code_of(&e), text));
    }
    post(
        state,
        o,
        "action",
        &format!("{name} took task {}: {}", task.id, task.subject()),
        task.id,
        &name,
    )?;
    Ok(Outcome::Started(name))
}

fn post(state: &StateDir, o: &Options, kind: &str, text: &str, id: u64, name: &str) -> Result<()> {
    let d = Draft {
        from: o.from.clone(),
        kind: kind.into(),
        content: text.to_string(),
        meta: Some(serde_json::json!({
            "task": id.to_string(), "agent": name, "task_list": o.list.name()
        })),
        ..Draft::default()
    };
    channel::post(state, &o.channel, &d).map(drop)
}

/// What a dispatch run did, task by task.
#[derive(Debug)]
pub struct Step {
    pub task: Task,
    pub outcome: Outcome,
}

/// Start agents for the available tasks (pending, no owner, no open
/// blocker), oldest first, while fewer than `max` agents run. Returns what
/// became of each task it tried, and the first available task left waiting
/// because `max` agents run, if any.
pub fn dispatch(
    state: &StateDir,
    o: &Options,
    max: usize,
    each: &mut dyn FnMut(&Step),
) -> Result<Option<(u64, usize)>> {
    let _lock = lock(state)?;
    let listing = o.list.list()?;
    for s in &listing.skipped {
        eprintln!("{}: warning: {s}", o.from);
    }
    let mut running = agent::all(state)?.iter().filter(|i| i.running).count();
    let mut given = BTreeSet::new();
    for task in listing.available() {
        if running >= max {
            return Ok(Some((task.id, running)));
        }
        let outcome = start(state, o, &listing, task, &given)?;
        let stop = matches!(outcome, Outcome::NoFreeName | Outcome::AllLimited(_));
        if let Outcome::Started(n) = &outcome {
            given.insert(n.clone());
            running += 1;
        }
        each(&Step {
            task: task.clone(),
            outcome,
        });
        if stop {
            break;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_sources_in_order() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path());
        assert_eq!(pool(&st, None).unwrap()[0], "york");
        std::fs::write(d.path().join("pool"), "# mine\nann\n\nbob # second\nann\n").unwrap();
        assert_eq!(pool(&st, None).unwrap(), ["ann", "bob"]);
        assert_eq!(pool(&st, Some("x, y")).unwrap(), ["x", "y"]);
        assert!(pool(&st, Some("a.b")).is_err());
        assert!(pool(&st, Some("../x")).is_err());
        std::fs::write(d.path().join("pool"), "# none\n").unwrap();
        assert!(pool(&st, None).is_err());
    }
}
