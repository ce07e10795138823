//! mt-pr: follow the repository's pull requests on GitHub through gh.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::coord::dispatch;
use crate::exit::{UNAVAILABLE, fail};
use crate::pr::changes::{self, CiStatus};
use crate::pr::gh::{Gh, Pull};
use crate::pr::{remote, review, sync};
use crate::statedir::{StateDir, claude_config_dir};
use crate::tasks::{self, TaskList};

/// Follow the repository's pull requests on GitHub
///
/// mt-pr sync, run by a watcher rule every minute or two, asks GitHub's
/// command-line tool gh for the repository's pull requests in one call and
/// posts every change since the last pass to the channel, once: opened, CI
/// failed (with the failing checks), CI passed, review requested, changes
/// requested (with the reviewer and an excerpt), approved, conflict,
/// merged, closed. A pull request from a coworker's branch mt/NAME belongs
/// to that coworker and its task; the coworker is nudged, with what to do
/// next, when CI fails, a reviewer asks for changes, or the pull request no
/// longer merges (a stopped coworker is resumed). mt-pr list shows the pull
/// requests; mt-pr review N starts a reviewer coworker for one.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Post what changed on the pull requests since the last pass, once
    Sync(SyncArgs),
    /// Pull requests with their coworker, task, CI, review and merge state
    List(ListArgs),
    /// Start a reviewer coworker for a pull request; prints its name
    Review(ReviewArgs),
}

/// Which repository, and how long gh may take.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    /// The GitHub repository, OWNER/NAME or HOST/OWNER/NAME (default: the
    /// repository's remote that points at github.com)
    #[arg(long, env = "GH_REPO", value_name = "OWNER/NAME")]
    pub repo: Option<String>,

    /// Give up on gh after this long (exit 75)
    #[arg(long, value_name = "DURATION", value_parser = super::duration, default_value = "2m")]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub channel: super::TeamChannelArg,

    /// Ask for the newest N pull requests, open or closed
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub limit: u64,

    /// Print nothing
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Also the closed and merged ones among the newest N
    #[arg(long)]
    pub all: bool,

    /// Ask for the newest N pull requests
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub limit: u64,

    /// One JSON object per pull request
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The pull request's number
    #[arg(value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub number: u64,

    #[command(flatten)]
    pub repo: RepoArgs,

    /// Use this agent name instead of one from the pool
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Agent names to pick from, comma separated (default: the settings'
    /// pool, else the file pool in the state directory, else a built-in
    /// pool)
    #[arg(long, env = "MT_POOL", value_name = "NAMES")]
    pub pool: Option<String>,

    /// Model for the reviewer (passed as --model)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    #[command(flatten)]
    pub list: super::ListArg,

    #[command(flatten)]
    pub channel: super::TeamChannelArg,

    /// Agent program (default: claude)
    #[arg(long, env = "MT_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    #[command(flatten)]
    pub permissions: super::PermissionArgs,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-pr",
        &[
            (
                "COMMANDS",
                "mt-pr sync [--repo OWNER/NAME] [-c CHANNEL] [--limit N] [-q]\tone pass: one call of gh pr list --state all --limit N --json FIELDS (N is 200 unless given; the newest N pull requests, open or closed), compared with what the last pass kept; one record per change on CHANNEL, one line per record and per nudge on standard output. When the repository has no remote pointing at github.com and no --repo is given, it does nothing and exits 0, so the rule is harmless in every repository.
mt-pr list [--repo OWNER/NAME] [--all] [--json] [--limit N]\tthe open pull requests (--all: also the closed and merged ones among the newest N) as gh shows them now, with coworker, task, CI, review and merge state; changes nothing. --json prints one object per line.
mt-pr review N [--name NAME] [--pool NAMES] [--model MODEL] [--agent-cmd PROGRAM] [permission options]\tstart a reviewer coworker for open pull request N, as mt-sling starts one: a free name from the pool, its own worktree, the coworker settings (agent program, model, permissions, see mt-config(1)). Its prompt holds the pull request's description (gh pr view N) and diff (gh pr diff N, at most 60 KiB) and tells it to give its verdict with gh pr review N --approve or --request-changes; it may also run gh pr view, diff and checks. An action record NAME reviews #N: TITLE goes to the channel, and the name is printed.",
            ),
            (
                "RECORDS",
                "Records are of type status from mt-pr; meta.pr holds number, change, key, url, branch, agent and task, and per change head, checks, reviewer, review or base. The changes, in the order a pass posts them for one pull request:
opened\tfirst seen open (draft noted); on the first pass every open pull request
reopened\topen again after it was closed
ci-failed\ta check failed on the head commit (the failing checks named); posted once per head commit and failure, again when a re-run fails again
ci-passed\tevery check passed on the head commit
review-requested\ta reviewer (user or team) newly asked for
changes-requested\ta reviewer's new change request, with an excerpt of it
approved\ta reviewer's new approval
conflict\tit no longer merges into its base (mergeable CONFLICTING or merge state DIRTY; UNKNOWN, while GitHub computes it, changes nothing)
merged, closed\tas said; a pull request that was already closed when mt-pr first saw it is history and gets no record

No text from GitHub mentions anyone: an @ that would start a mention is left out, so mt-route never acts on a record of mt-pr.

The owner of a pull request from branch mt/NAME is coworker NAME, its task the one in agents/NAME/meta.json while the pull request is open. On ci-failed, changes-requested and conflict the owner is nudged as mt-nudge does (a running coworker at once, a stopped one resumed) with what to do next, for example: CI failed on your pull request #12 (checks: test, lint). Look at `gh pr checks 12`, fix it on your branch and push.",
            ),
            (
                "EXACTLY ONCE",
                "Passes take turns through pr/LOCK (a second one waits up to 3 minutes, then exits 75). A pass checks gh's whole answer before it writes anything, then writes its plan, pr/intent.json: every record with a key of its own (meta.pr.key), every nudge, and the state to keep. It posts the records under one channel lock with one sync, sends the nudges (each synced), noting each in pr/nudged, saves pr/state.json and removes the plan. The next pass finishes a plan that a killed pass left: it posts only the records whose key is not on the channel after the seq the plan noted, sends the nudges not noted as sent, and saves the plan's state. So each change is posted exactly once, also when passes run at the same time or one is killed; a nudge comes twice only when a pass died between sending it and noting it. The records an interrupted pass left are counted on standard error.",
            ),
            (
                "EXAMPLES",
                "Follow the pull requests every two minutes (mt-watch rules; the default rules have it):
  name=pr  @every 2m  mt-pr sync

One pass by hand, and what is open:
  $ mt-pr sync
  #12 CI failed (york, task 3): test
  york: nudged
  $ mt-pr list
  PR   COWORKER  TASK  CI            REVIEW             MERGE     TITLE
  #12  york      3     failed: test  changes requested  conflict  Add the parser

Open pull requests whose CI failed, as JSON:
  $ mt-pr list --json | jq -r 'select(.ci == \"failed\") | .url'

A reviewer for pull request 12:
  $ mt-pr review 12
  park

Tell the lead when every task is done and all of it is merged:
  $ mt-remind add --when all-work-merged 'all merged: tag the release'",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess (sync: also when the repository has no GitHub remote)
1\treview: the pull request is not open, or no name of the pool (or --name) is free
2\tusage error
65\tgh's answer is not JSON, lacks a field asked for (a partial answer) or holds a value of the wrong kind; nothing was changed. Also an invalid --repo, or pr/state.json that does not parse
69\tgh is not installed, not logged in (gh auth login), or failed; no remote points at github.com (list, review, without --repo); or there is no state directory
70\tinternal error
73\tcannot create or write a file (permissions, full disk)
75\tanother pass held pr/LOCK for 3 minutes, or gh did not answer within --timeout; the next pass does the work",
            ),
            (
                "",
                "A nudge that cannot be delivered does not stop the pass: its record is posted, the error is on standard error, and sync exits with its status (69 when a coworker cannot be resumed). Within mt-watch, a failing rule posts one error record per streak of failures, so a missing gh or login is said once, not every two minutes.",
            ),
            (
                "ENVIRONMENT",
                "PATH\twhere gh is found
GH_REPO\tthe GitHub repository, as --repo (gh's own variable)
MT_PR_CRASH\tfor tests only: points at which a pass kills itself (intent, posting, posted, nudged, saved)",
            ),
            (
                "FILES",
                "pr/LOCK\tin the state directory: one pass at a time
pr/state.json\twhat the last pass kept of each pull request: number, title, url, branch, base, agent, task, state, CI (status, head, failing checks), conflict, reviews posted, reviewers asked for, times
pr/intent.json\tthe plan of a pass in progress, or of one that died (see EXACTLY ONCE)
pr/nudged\tthe keys of the plan's nudges sent so far, one a line",
            ),
            (
                "SEE ALSO",
                "gh(1), gh-pr-list(1), mt-watch(1), mt-remind(1), mt-sling(1), mt-nudge(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// How long a pass waits for another to finish.
const LOCK_WAIT: Duration = Duration::from_secs(180);

pub fn run(args: Args) -> Result<u8> {
    match args.cmd {
        Cmd::Sync(a) => run_sync(&args.common, a),
        Cmd::List(a) => run_list(&args.common, a),
        Cmd::Review(a) => run_review(&args.common, a),
    }
}

/// The repository: `--repo`, else the GitHub remote; `None` without one.
fn repo_of(r: &RepoArgs) -> Result<Option<String>> {
    match r.repo.as_deref().filter(|s| !s.is_empty()) {
        Some(given) => remote::check_repo(given).map(Some),
        None => remote::github_repo(&std::env::current_dir()?),
    }
}

fn need_repo(r: &RepoArgs) -> Result<String> {
    repo_of(r)?.ok_or_else(|| {
        fail(
            UNAVAILABLE,
            "no remote of this repository points at github.com; give --repo OWNER/NAME",
        )
    })
}

fn run_sync(common: &Common, a: SyncArgs) -> Result<u8> {
    let settings = crate::config::Settings::load()?;
    let channel = a.channel.resolve(&settings)?;
    let Some(repo) = repo_of(&a.repo)? else {
        return Ok(0);
    };
    let state = common.state()?;
    let gh = Gh::find(&repo, a.repo.timeout)?;
    let o = sync::Options {
        repo,
        channel,
        limit: a.limit as usize,
        wait: LOCK_WAIT,
    };
    let quiet = a.quiet;
    let s = super::print_as_it_goes(|each| {
        sync::sync(&state, &gh, &o, &mut |line: &str| {
            if !quiet {
                each(crate::names::printable(line).as_ref());
            }
        })
    })?;
    if let Some(code) = s.failure_code {
        return Err(fail(
            code,
            "a nudge could not be delivered; its record is posted",
        ));
    }
    Ok(0)
}

/// One line of `mt-pr list`.
#[derive(serde::Serialize)]
struct Row {
    number: u64,
    title: String,
    url: String,
    state: String,
    draft: bool,
    branch: String,
    coworker: Option<String>,
    task: Option<String>,
    ci: &'static str,
    failing: Vec<String>,
    review: String,
    mergeable: String,
    merge_state: String,
    conflict: bool,
}

fn row_of(state: Option<&StateDir>, p: &Pull) -> Row {
    let task = changes::agent_of(&p.head_ref_name)
        .zip(state)
        .and_then(|(a, s)| crate::agent::AgentDir::new(s, &a).ok())
        .and_then(|a| a.read_meta().ok().flatten())
        .map(|m| (m.task, m.task_list))
        .unwrap_or_default();
    let e = changes::entry_of(p, None, task);
    Row {
        number: e.number,
        title: e.title,
        url: e.url,
        state: e.state,
        draft: e.draft,
        branch: e.branch,
        coworker: e.agent,
        task: e.task,
        ci: e.ci.status.as_str(),
        failing: e.ci.failing,
        review: e.review_decision,
        mergeable: e.mergeable,
        merge_state: e.merge_state,
        conflict: e.conflict,
    }
}

fn run_list(common: &Common, a: ListArgs) -> Result<u8> {
    let repo = need_repo(&a.repo)?;
    let state = common.state().ok();
    let gh = Gh::find(&repo, a.repo.timeout)?;
    let pulls = gh.list(a.limit as usize)?;
    let rows: Vec<Row> = pulls
        .iter()
        .filter(|p| a.all || p.state == "OPEN")
        .map(|p| row_of(state.as_ref(), p))
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        for r in &rows {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
    } else if !rows.is_empty() {
        use super::Column;
        let cols = [
            Column::left("PR", 0),
            Column::left("COWORKER", 0),
            Column::left("TASK", 0),
            Column::left("CI", 0),
            Column::left("REVIEW", 0),
            Column::left("MERGE", 0),
            Column::left("TITLE", 0),
        ];
        let p = |s: &str| crate::names::printable(s).into_owned();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let ci = match r.ci {
                    "failed" => format!("failed: {}", r.failing.join(", ")),
                    s if s == CiStatus::None.as_str() => "-".into(),
                    s => s.to_string(),
                };
                let review = match r.review.as_str() {
                    "" => "-".to_string(),
                    s => s.to_lowercase().replace('_', " "),
                };
                let merge = match (r.state.as_str(), r.draft, r.conflict) {
                    ("MERGED", ..) => "merged".to_string(),
                    ("CLOSED", ..) => "closed".to_string(),
                    (_, true, _) => "draft".to_string(),
                    (_, _, true) => "conflict".to_string(),
                    _ => r.merge_state.to_lowercase().replace('_', " "),
                };
                vec![
                    format!("#{}", r.number),
                    r.coworker.clone().unwrap_or_else(|| "-".into()),
                    r.task.clone().unwrap_or_else(|| "-".into()),
                    p(&ci),
                    review,
                    p(&merge),
                    p(&r.title),
                ]
            })
            .collect();
        super::write_table(&mut out, &cols, &cells)?;
    }
    out.flush()?;
    Ok(0)
}

fn run_review(common: &Common, a: ReviewArgs) -> Result<u8> {
    let settings = crate::config::Settings::load()?;
    let channel = a.channel.resolve(&settings)?;
    let repo = need_repo(&a.repo)?;
    let state = common.state()?;
    dispatch::check_repo()?;
    let pool = match &a.name {
        Some(n) => dispatch::pool(&state, Some(n))?,
        None => dispatch::pool(
            &state,
            a.pool
                .clone()
                .or_else(|| super::settings_pool(&settings))
                .as_deref(),
        )?,
    };
    let list_name = tasks::list_name(a.list.list.as_deref(), Some(&state))?;
    let list = TaskList::new(&claude_config_dir()?, &list_name)?;
    // The reviewer's gh rules come on top of the profile a coworker gets:
    // the flags', else the settings'.
    let mut permissions = a.permissions.choice();
    if permissions.is_empty() {
        let mode = "permission-mode";
        permissions.mode = settings.is_set(mode).then(|| settings.text(mode)).flatten();
        permissions.allow = settings.list("allow");
        permissions.file = settings.path("permissions");
    }
    let gh = Gh::find(&repo, a.repo.timeout)?;
    let name = review::start(
        &state,
        &gh,
        &review::Options {
            number: a.number,
            pool,
            list,
            channel,
            model: a.model,
            agent_cmd: a.agent_cmd.filter(|s| !s.is_empty()),
            permissions,
        },
    )?;
    println!("{name}");
    Ok(0)
}
