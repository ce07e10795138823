//! mt-sync: exchange channels and tasks with other hosts through the git
//! remote.

use anyhow::{Context, Result};
use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::json;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{Common, Tool};
use crate::config::Settings;
use crate::exit::{self, OK, TEMPFAIL};
use crate::sync::{self, Options, Report};

/// Exchange channels and tasks with other hosts through the git remote
///
/// One exchange: fetch mt's refs (refs/mt/*) from the remote; append the
/// other hosts' new channel records to the local channels; publish this
/// host's new records, its task changes and its coworkers' status in one
/// push; bring the local task list up to the remote's. No branch, tag or
/// working tree is touched, and no git program is run (libgit2). An
/// exchange with nothing to publish pushes nothing. Run it from a watcher
/// rule (`name=sync @every 5s mt-sync`), a timer, or with --watch.
///
/// Every host publishes only what it wrote, so channel records are never in
/// conflict: each host ends up with every record exactly once, each host's
/// own records in their order, with `origin` and `origin_seq` telling where
/// they came from. Task changes are compare-and-swap updates of one ref
/// per task, so of two hosts changing the same version of a task exactly
/// one wins; a claim through mt-task or mt-dispatch is acknowledged only
/// once the remote took it. The team's task list (--list) is carried;
/// reminders and agents stay on their host.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Keep exchanging, every --every, until SIGTERM, SIGINT or SIGHUP
    /// (which let the exchange under way finish)
    #[arg(long)]
    pub watch: bool,

    /// Time between exchanges with --watch
    #[arg(long, value_name = "DURATION", value_parser = super::duration, default_value = "5s")]
    pub every: Duration,

    /// The remote to exchange through (default: the sync-remote setting,
    /// else origin)
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,

    /// Give up on a remote that does not answer for this long (exit 75)
    #[arg(long, value_name = "DURATION", value_parser = super::duration, default_value = "30s")]
    pub timeout: Duration,

    /// Do not publish this host's coworkers for mt-ps --all-hosts
    #[arg(long)]
    pub no_status: bool,

    #[command(flatten)]
    pub list: super::ListArg,

    /// Print what each exchange did as one JSON object
    #[arg(long)]
    pub json: bool,

    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-sync",
        &[
            (
                "SETTINGS",
                "host\tthis machine's name among the hosts (default: the hostname, lower case). A state directory keeps the name of its first exchange; set it in the global settings file, not the project's, which other hosts may share.
sync-remote\tthe remote (default origin); --remote overrides it.",
            ),
            (
                "REFS",
                "refs/mt/log/HOST\tthe records HOST wrote: one commit per exchange that had any, holding host, heads (the largest seq published per channel) and records/CHANNEL (JSON Lines); at most 50,000 records of a channel per exchange, so a long backlog goes out over a few.
refs/mt/tasks/ID\tthe versions of task ID: task.json, or deleted.
refs/mt/status/HOST\tHOST's coworkers (agents, a JSON array) for mt-ps --all-hosts.",
            ),
            (
                "CONSISTENCY",
                "Channels are eventually consistent: after an exchange on every host with no new posts, every host holds every record exactly once, and the records of each host appear in the order that host wrote them; records of different hosts interleave in the order they arrived. seq stays local and gapless; mt-read, cursors and hooks work as on one machine. Task changes are linearizable through the remote: each is a compare-and-swap on the task's ref. A claim with mt-task claim or mt-dispatch is made on the remote first and acknowledged only when it took; a claim written straight into a task file (Claude Code's own tools) is published by the next exchange, and if another host's claim got there first, the local file takes the winner's and mt-sync says so on the team's channel, mentioning the loser. Where both hosts changed other fields, the remote's change wins that field; a deletion wins over an edit; a task id two hosts created is kept by the first to publish, the other task moves to a new id (said on the channel).",
            ),
            (
                "FAULTS",
                "Nothing is lost and nothing is applied twice when an exchange is killed at any point, the remote is unreachable, or a push is refused: records are published from the position of the last successful push, and an import is checked against the largest origin seq already in the channel, which is read back from the channel itself after a crash. The state lives in sync/ in the state directory (see mt-files(5)).",
            ),
            (
                "OUTPUT",
                "Without --json, one line per exchange that did something (records imported per host, records and task changes published, task versions taken, tasks moved, claims lost), nothing for an exchange that found nothing to do. With --json, one object per exchange: imported (per host, records appended), published (records), tasks (published, applied, renumbered as [old, new] pairs, lost as {task, loser, winner, host}, refused: task changes another host beat this one to in the last round, planned again next exchange), status_published, fetches and pushes (round trips to the remote: an exchange with nothing to publish makes one fetch and no push), ms.",
            ),
            (
                "EXAMPLES",
                "Name this machine and sync every 5 seconds from the watcher (the default rules carry this rule commented out):
  $ mt-config set --global host laptop
  $ sed -i 's/^# name=sync /name=sync /' \"$(git rev-parse --git-common-dir)/mt/watch/rules\"

Everyone's coworkers, on every host:
  $ mt-ps --all-hosts

Keep exchanging every second in a terminal:
  $ mt-sync --watch --every 1s",
            ),
            (
                "EXIT STATUS",
                "0\tthe exchange went through
69\tno such remote, not in a git repository, or the remote refused our credentials
75\tthe remote did not answer or refused this host's records; nothing is lost, try again
78\tthe host name is used by another machine, differs from the one this repository syncs as, or a settings file is invalid",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_HOST, MT_SYNC_REMOTE\tthe host and sync-remote settings
MT_SYNC_TOKEN\tthe password (a token) given to an https remote that asks for one; ssh remotes use the ssh agent ($SSH_AUTH_SOCK). No git credential helper is run.
MT_FSYNC\t0 skips syncing the channels and state files written",
            ),
            (
                "SEE ALSO",
                "mt-task(1), mt-ps(1), mt-watch(1), mt-config(1), mt-files(5), mt-guarantees(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let settings = Settings::load()?;
    let mut opts = Options::from_settings(&settings, &state)?;
    if let Some(r) = &args.remote {
        opts.remote = r.clone();
    }
    if let Some(l) = &args.list.list {
        opts.list = crate::tasks::list_name(Some(l), Some(&state))?;
    }
    opts.timeout = args.timeout;
    opts.status = !args.no_status;
    let repo = sync::open_repo()?;
    if !args.watch {
        let started = Instant::now();
        let report = sync::exchange(&state, &repo, &opts)?;
        show(&args, &report, started.elapsed())?;
        return Ok(OK);
    }
    // SIGTERM, SIGINT and SIGHUP wait for the exchange under way to end:
    // blocked, and read from a descriptor between exchanges.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().context("cannot block signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("cannot create a signal descriptor")?;
    loop {
        let started = Instant::now();
        match sync::exchange(&state, &repo, &opts) {
            Ok(report) => show(&args, &report, started.elapsed())?,
            // Try again next round; anything else ends the watch.
            Err(e) if exit::code_of(&e) == TEMPFAIL => exit::warn(format_args!("{e:#}")),
            Err(e) => return Err(e),
        }
        if stop_within(&signals, args.every.saturating_sub(started.elapsed()))? {
            return Ok(OK);
        }
    }
}

/// Wait `wait` for a signal on `signals`; whether one came.
fn stop_within(signals: &SignalFd, wait: Duration) -> Result<bool> {
    let deadline = Instant::now() + wait;
    loop {
        if signals.read_signal().ok().flatten().is_some() {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("cannot wait"),
        }
    }
}

fn show(args: &Args, r: &Report, took: Duration) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = json!({
            "imported": r.imported,
            "published": r.published,
            "tasks": {
                "published": r.tasks.published,
                "applied": r.tasks.applied,
                "renumbered": r.tasks.renumbered,
                "lost": r.tasks.lost.iter().map(|(id, loser, winner, host)| json!({
                    "task": id, "loser": loser, "winner": winner, "host": host,
                })).collect::<Vec<_>>(),
                "refused": r.tasks.refused,
            },
            "status_published": r.status_published,
            "fetches": r.fetches,
            "pushes": r.pushes,
            "ms": took.as_millis() as u64,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    let mut parts = Vec::new();
    let n: u64 = r.imported.values().sum();
    if n > 0 {
        let from: Vec<String> = r.imported.iter().map(|(h, c)| format!("{h} {c}")).collect();
        parts.push(format!(
            "imported {} ({})",
            count(n, "record"),
            from.join(", ")
        ));
    }
    if r.published > 0 {
        parts.push(format!("published {}", count(r.published, "record")));
    }
    if r.tasks.published > 0 {
        parts.push(format!(
            "published {}",
            count(r.tasks.published, "task change")
        ));
    }
    if r.tasks.applied > 0 {
        parts.push(format!("took {}", count(r.tasks.applied, "task change")));
    }
    for (old, new) in &r.tasks.renumbered {
        parts.push(format!("task {old} moved to {new}"));
    }
    for (id, loser, winner, host) in &r.tasks.lost {
        parts.push(format!(
            "task {id}: {loser}'s claim lost to {winner} on host {host}"
        ));
    }
    if r.tasks.refused > 0 {
        parts.push(format!(
            "{} task changes wait for the next exchange",
            r.tasks.refused
        ));
    }
    if !parts.is_empty() {
        writeln!(out, "{}", parts.join("; "))?;
    }
    Ok(())
}

fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
