//! mt-sync: channels and tasks carried between hosts by the repository's
//! git remote, under `refs/mt/` (no branch, no working tree touched).
//!
//! One exchange: fetch `refs/mt/*` (one fetch); import the other hosts'
//! new records; publish this host's new records, task changes and
//! coworker status in one push of compare-and-swap updates; repeat the
//! task part (fetch, plan, push) for updates another host beat us to.
//! An exchange that finds nothing to publish pushes nothing.
//!
//! Consistency: channels are eventually consistent (every host gets every
//! record exactly once, each host's own records in their order); task
//! changes are linearizable through the remote's ref updates, and a claim
//! made with `mt-task claim` or mt-dispatch is acknowledged only after the
//! remote took it.

pub mod log;
pub mod remote;
pub mod state;
pub mod status;
pub mod tasks;

use anyhow::{Context, Result};
use git2::{Oid, Repository};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Settings;
use crate::exit::{Coded, TEMPFAIL, UNAVAILABLE, fail};
use crate::statedir::StateDir;
pub use remote::{Outcome, Remote, Update};
pub use state::Identity;

/// How an exchange runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub remote: String,
    pub host: String,
    pub timeout: Duration,
    /// Publish this host's coworkers for `mt-ps --all-hosts`.
    pub status: bool,
    /// The task list to carry (the team's list).
    pub list: String,
}

impl Options {
    /// Host and remote from the settings (`host`, `sync-remote`); the
    /// default host name is this machine's.
    pub fn from_settings(settings: &Settings, state: &StateDir) -> Result<Options> {
        let host = match settings.text("host") {
            Some(h) => h,
            None => default_host()?,
        };
        Ok(Options {
            remote: settings
                .text("sync-remote")
                .unwrap_or_else(|| "origin".into()),
            host,
            timeout: Duration::from_secs(30),
            status: true,
            list: crate::tasks::list_name(None, Some(state))?,
        })
    }
}

/// The hostname as a host name: lower case, other characters as `-`.
pub fn default_host() -> Result<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let mut name: String = raw
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    name = name.trim_start_matches(['.', '_', '-']).to_string();
    if !crate::names::is_valid(&name) {
        return Err(fail(
            crate::exit::CONFIG,
            "this machine has no usable hostname; name it: mt-config set --global host NAME",
        ));
    }
    Ok(name)
}

/// The repository whose remote is used: the one around the current
/// directory (any of its worktrees).
pub fn open_repo() -> Result<Repository> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Repository::discover(&cwd).map_err(|_| {
        fail(
            UNAVAILABLE,
            format!("{} is not inside a git repository", cwd.display()),
        )
    })
}

/// What one exchange did.
#[derive(Debug, Default)]
pub struct Report {
    pub imported: BTreeMap<String, u64>,
    pub published: u64,
    pub tasks: tasks::Report,
    pub status_published: bool,
    pub fetches: u32,
    pub pushes: u32,
}

/// One exchange with the remote (see the module comment).
pub fn exchange(state: &StateDir, repo: &Repository, opts: &Options) -> Result<Report> {
    let _lock = state::lock(state)?;
    remote::clear_stale_locks(repo);
    // The remote first: a repository without one does not become a synced
    // one (claims would then wait for a remote that is not there).
    let remote = Remote::open(repo, &opts.remote, opts.timeout)?;
    let me = Identity::establish(state, &opts.host)?;
    remote.fetch(&["refs/mt/*"])?;
    crash_point("fetched");
    let tip = log::tip(repo, &me.host)?;
    log::check_owner(&me, &tip)?;
    state::save_hosts(
        state,
        &status::others(repo, Some(&me.host))?.into_iter().collect(),
    )?;

    let mut report = Report {
        fetches: 1,
        ..Report::default()
    };
    let mut chans = state::Channels::load(state)?;
    log::catch_up_seen(state, &mut chans)?;
    let got = log::import(repo, state, &mut chans, &me)?;
    report.imported = got.per_host;
    chans.save(state)?;
    crash_point("imported");

    let out = log::outgoing(state, &mut chans, &me, &tip.heads)?;
    let mut updates = Vec::new();
    // The first exchange publishes the log even with no records: the
    // name is taken then, and another machine given it is refused.
    let publishes_log = out.count > 0 || tip.commit.is_none();
    if publishes_log {
        updates.push(log::publish(repo, &me, &tip, &out)?);
    }
    if opts.status
        && let Some(u) = status::publish(repo, state, &me)?
    {
        updates.push(u);
    }
    let fixed = updates.len();
    let list = crate::tasks::TaskList::from_env(Some(&opts.list))?;
    let mut bases = state::Tasks::load(state)?;
    let side = tasks::Side {
        repo,
        state,
        list: &list,
        me: &me,
    };
    let plan = tasks::plan(&side, &mut bases, &mut report.tasks)?;
    updates.extend(plan.updates.iter().cloned());

    let mut outcomes = Vec::new();
    if !updates.is_empty() {
        crash_point("pushing");
        // The task files already took the remote's versions: what was
        // agreed is kept even when the push fails.
        outcomes = remote.push(&updates).inspect_err(|_| {
            let _ = bases.save(state);
        })?;
        report.pushes += 1;
        crash_point("pushed");
    }
    for (u, o) in updates.iter().zip(&outcomes).take(fixed) {
        if *o == Outcome::Done {
            remote::set_local_ref(repo, &u.refname, u.new)?;
        }
    }
    let log_refused = match outcomes.first() {
        Some(Outcome::Refused(why)) if publishes_log => Some(why.clone()),
        Some(Outcome::Done) if publishes_log => {
            log::published(&mut chans, &out);
            report.published = out.count;
            None
        }
        _ => None,
    };
    report.status_published =
        fixed > usize::from(publishes_log) && outcomes.get(fixed - 1) == Some(&Outcome::Done);
    chans.save(state)?;

    let task_outcomes = outcomes.split_off(fixed.min(outcomes.len()));
    let rounds = task_rounds(&side, &remote, &mut bases, plan, task_outcomes, &mut report);
    bases.save(state)?;
    rounds?;
    if let Some(why) = log_refused {
        return Err(fail(
            TEMPFAIL,
            format!(
                "the remote refused this host's records ({why}); nothing is lost, the next exchange publishes them"
            ),
        ));
    }
    Ok(report)
}

/// Settle the first push's task updates; what another host beat us to is
/// planned again on its newer version, a few rounds at most, and the rest
/// waits for the next exchange.
fn task_rounds(
    side: &tasks::Side<'_>,
    remote: &Remote<'_>,
    bases: &mut state::Tasks,
    mut plan: tasks::Plan,
    mut outcomes: Vec<Outcome>,
    report: &mut Report,
) -> Result<()> {
    for round in 0..4 {
        let refused = tasks::apply(side, bases, &plan, &outcomes, &mut report.tasks)?;
        if refused == 0 || round == 3 {
            break;
        }
        remote.fetch(&[&format!("{}*", tasks::PREFIX)])?;
        report.fetches += 1;
        plan = tasks::plan(side, bases, &mut report.tasks)?;
        if plan.updates.is_empty() {
            break;
        }
        outcomes = remote.push(&plan.updates)?;
        report.pushes += 1;
    }
    Ok(())
}

/// A commit by mt-sync for `host`.
pub(crate) fn commit(
    repo: &Repository,
    host: &str,
    parent: Option<Oid>,
    tree: Oid,
    msg: &str,
) -> Result<Oid> {
    let sig = git2::Signature::now("mt-sync", &format!("mt-sync@{host}"))?;
    let tree = repo.find_tree(tree)?;
    let parents = parent
        .map(|p| repo.find_commit(p))
        .transpose()?
        .into_iter()
        .collect::<Vec<_>>();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &sig, &sig, msg, &tree, &refs)
        .context("cannot write a commit")
        .code(crate::exit::CANTCREAT)
}

/// The host that made a commit (its committer e-mail).
pub(crate) fn commit_host(repo: &Repository, id: Oid) -> Option<String> {
    let c = repo.find_commit(id).ok()?;
    let email = c.committer().email().ok()?.to_string();
    email.strip_prefix("mt-sync@").map(str::to_string)
}

/// Tests stop an exchange at a named point (`MT_SYNC_CRASH=point`) to
/// check that the next one repairs what it left.
fn crash_point(name: &str) {
    if std::env::var("MT_SYNC_CRASH").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// A system record from mt-sync on the team's channel; a failure to post
/// is only warned about (the exchange itself went through).
pub(crate) fn announce(state: &StateDir, text: &str) {
    let draft = crate::channel::Draft {
        from: "mt-sync".into(),
        kind: "system".into(),
        content: text.into(),
        ..Default::default()
    };
    if let Err(e) = crate::channel::post(state, &crate::statedir::default_channel(), &draft) {
        crate::exit::warn(format_args!("cannot post to the channel: {e:#}"));
    }
}
