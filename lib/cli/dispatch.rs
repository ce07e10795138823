//! mt-dispatch: start agents for the tasks that are ready.

use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::coord::dispatch::{self, Options, Outcome};
use crate::statedir::claude_config_dir;
use crate::tasks::{self, TaskList};

/// Start agents for the tasks that are ready
///
/// For every task that is pending, has no owner and no blocker left
/// (oldest id first), while fewer than --max agents run: picks a free agent
/// name from the pool, claims the task for it, creates its worktree, starts
/// it in the background with the task as its prompt, and posts NAME took
/// task N: TITLE to the channel, as mt-sling does. Prints one line per
/// task it looked at.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Start agents only while fewer than this many agents run (any agent,
    /// however started; default: the settings' max-agents, else 4)
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,

    #[command(flatten)]
    pub list: super::ListArg,

    /// Agent names to pick from, comma separated (default: the settings' pool,
    /// else the file pool in the state directory, else a built-in pool)
    #[arg(long, env = "MT_POOL", value_name = "NAMES")]
    pub pool: Option<String>,

    /// Model for the agents (passed as --model)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    #[command(flatten)]
    pub channel: super::TeamChannelArg,

    /// Agent program (default: claude)
    #[arg(long, env = "MT_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    #[command(flatten)]
    pub permissions: super::PermissionArgs,

    /// Auth profiles to spread the agents over, comma separated: each
    /// agent gets the one with the fewest running agents, leaving out those
    /// at a usage limit (default: the profile setting, $MT_PROFILE or the
    /// settings files)
    #[arg(long, env = "MT_PROFILES", value_name = "NAMES", value_delimiter = ',')]
    pub profiles: Vec<String>,

    /// Print what would be started; claim, create and start nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-dispatch",
        &[
            (
                "OUTPUT",
                "One line per task looked at:
NAME took task N: TITLE\tan agent was started for it (with --dry-run: would give task N to NAME: TITLE)
task N waits: no free agent name in the pool\tand the run ends
task N waits: K agents running (--max M)\tthe first task left for later; the run ends
task N skipped: WHY\tits claim was refused (taken meanwhile, ...)
task N waits: every profile is at its usage limit (the first resets at T)\twith --profiles; the run ends",
            ),
            ("AGENTS", super::sling::POOL_TEXT),
            (
                "PROFILES",
                "With --profiles A,B,C (or $MT_PROFILES) each agent started is given one of these auth profiles (see mt-profile(1)): the one with the fewest running agents of this state directory, the first given on a tie. A profile is left out while any of its agents, running or not, shows in status.json a rate_limit with status rejected and a resets_at still in the future: its account is at a usage limit, which every agent of the profile shares. When all are left out, the task waits and the run ends; a later run starts it once a limit has reset. Without --profiles an agent gets the profile setting ($MT_PROFILE, else the settings files; see mt-config(1)), else none. An unknown profile is an error (65) before anything is claimed.",
            ),
            ("TASK LIST", super::task::TASK_LIST_DEFAULT),
            (
                "EXAMPLES",
                "Start agents whenever the task list changes, from mt-watch's rules file:
  name=dispatch  @change tasks  mt-dispatch --max 4

Spread the agents over two accounts:
  $ mt-dispatch --max 6 --profiles work,gw

Plan, then let dispatch hand out what is ready:
  $ a=$(mt-task create 'Write the parser')
  $ mt-task create 'Document the parser' --blocked-by $a
  $ mt-dispatch --max 2
  york took task 1: Write the parser",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess, whatever was started
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "",
                "Exit 69 also when the current directory is not inside a git repository (agents work in its worktrees). When an agent cannot be started, the run ends with mt-spawn(1)'s exit status (69 for a missing agent program); its task is pending again (no owner), and an error record from mt-dispatch says so.",
            ),
            (
                "ENVIRONMENT",
                "CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)
MT_WORKTREES\twhere worktrees are made (see mt-worktree(1))",
            ),
            (
                "SEE ALSO",
                "mt-sling(1), mt-task(1), mt-watch(1), mt-spawn(1), mt-profile(1), mt-ps(1), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let settings = crate::config::Settings::load()?;
    let channel = args.channel.resolve(&settings)?;
    let max = args
        .max
        .unwrap_or_else(|| settings.count("max-agents").unwrap_or(4) as usize);
    let state = args.common.state()?;
    dispatch::check_repo()?;
    let pool = dispatch::pool(
        &state,
        args.pool
            .clone()
            .or_else(|| super::settings_pool(&settings))
            .as_deref(),
    )?;
    let list_name = tasks::list_name(args.list.list.as_deref(), Some(&state))?;
    let profiles: Vec<String> = args
        .profiles
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    for p in &profiles {
        crate::profile::load(p)?;
    }
    let o = Options {
        list: TaskList::new(&claude_config_dir()?, &list_name)?,
        pool,
        model: args.model,
        channel,
        agent_cmd: args.agent_cmd.filter(|s| !s.is_empty()),
        permissions: args.permissions.choice(),
        from: "mt-dispatch".into(),
        dry_run: args.dry_run,
        profiles,
    };
    // Not locked for the whole run: supervisors are forked from here.
    let mut out = std::io::stdout();
    let mut failed = None;
    let mut say = |line: String| {
        if failed.is_none()
            && let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush())
        {
            failed = Some(e);
        }
    };
    let waiting = dispatch::dispatch(&state, &o, max, &mut |step| {
        let (id, subject) = (step.task.id, step.task.subject());
        say(match &step.outcome {
            Outcome::Started(n) if o.dry_run => format!("would give task {id} to {n}: {subject}"),
            Outcome::Started(n) => format!("{n} took task {id}: {subject}"),
            Outcome::NoFreeName => format!("task {id} waits: no free agent name in the pool"),
            Outcome::Refused(r) => format!("task {id} skipped: {r}"),
            Outcome::AllLimited(t) => format!(
                "task {id} waits: every profile is at its usage limit (the first resets at {t})"
            ),
        })
    })?;
    if let Some((id, running)) = waiting {
        say(format!(
            "task {id} waits: {running} agents running (--max {})",
            max
        ));
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(0)
}
