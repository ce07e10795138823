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
task N skipped: WHY\tits claim was refused (taken meanwhile, ...)",
            ),
            ("AGENTS", super::sling::POOL_TEXT),
            ("TASK LIST", super::task::TASK_LIST_DEFAULT),
            (
                "EXAMPLES",
                "Start agents whenever the task list changes, from mt-watch's rules file:
  name=dispatch  @change tasks  mt-dispatch --max 4

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
                "mt-sling(1), mt-task(1), mt-watch(1), mt-spawn(1), mt-ps(1), mt(7)",
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
    let o = Options {
        list: TaskList::new(&claude_config_dir()?, &list_name)?,
        pool,
        model: args.model,
        channel,
        agent_cmd: args.agent_cmd.filter(|s| !s.is_empty()),
        permissions: args.permissions.choice(),
        from: "mt-dispatch".into(),
        dry_run: args.dry_run,
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
