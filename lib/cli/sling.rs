//! mt-sling: create a task and start an agent on it.

use anyhow::Result;
use clap::Parser;
use std::collections::BTreeSet;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::coord::dispatch::{self, Options, Outcome};
use crate::exit::{self, NO, fail};
use crate::statedir::claude_config_dir;
use crate::tasks::{self, NewTask, TaskList};

/// Create a task and start an agent on it
///
/// Creates a task in the task list and, when nothing blocks it, picks a free
/// agent name from the pool, claims the task for it, creates its worktree,
/// starts it in the background with the task as its prompt (MT_TASK and
/// CLAUDE_CODE_TASK_LIST_ID set), posts NAME took task N: TITLE to the
/// channel, and prints the name. A blocked task is created and left pending
/// for mt-dispatch to start once its blockers are done.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// What is to be done (the words are joined by spaces)
    #[arg(value_name = "TITLE", required = true)]
    pub title: Vec<String>,

    /// The task's description, given to the agent after the title
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub body: String,

    /// Model for the agent (passed as --model)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// Ids of tasks that must be completed first, comma separated
    #[arg(long, value_name = "ID,…", value_delimiter = ',')]
    pub blocked_by: Vec<String>,

    #[command(flatten)]
    pub list: super::ListArg,

    /// Use this agent name instead of one from the pool
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Agent names to pick from, comma separated (default: the settings' pool,
    /// else the file pool in the state directory, else a built-in pool)
    #[arg(long, env = "MT_POOL", value_name = "NAMES")]
    pub pool: Option<String>,

    #[command(flatten)]
    pub channel: super::TeamChannelArg,

    /// Agent program (default: claude)
    #[arg(long, env = "MT_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    #[command(flatten)]
    pub permissions: super::PermissionArgs,

    /// Auth profile for the agent (see mt-profile(1); default: the profile
    /// setting, $MT_PROFILE or the settings files)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    #[command(flatten)]
    pub common: Common,
}

/// The pool text shared by mt-sling(1) and mt-dispatch(1).
pub const POOL_TEXT: &str = "Agent names come from --pool or $MT_POOL (comma separated), else from the file pool in the state directory (one name per line, # starts a comment), else from the built-in pool york, park, kent, hale, reed, moss, wren, lark, finn, cole, dale, gray, nash, page, rowe, vale, in that order. Names are a-z 0-9 _ - (no dots: they become task owners). A name is free when no agent of that name runs, no task of the list it owns is unfinished, and it has no worktree with uncommitted changes or commits not merged into its base (nor a locked one, or one mt did not make). A clean, merged worktree of a free name is removed and made again from the current base, on branch mt/NAME. The name is reserved by taking the agent's liveness lock before the task is claimed; the task is claimed under the task list's lock before the agent starts, and given back (no owner, pending) when the start fails. mt-sling and mt-dispatch take turns through dispatch.lock in the state directory.

The agent's prompt is the task's subject, its description, and the line: This is task N of the task list LIST. When it is done, mark it done: mt-task done N";

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-sling",
        &[
            ("AGENTS", POOL_TEXT),
            ("TASK LIST", super::task::TASK_LIST_DEFAULT),
            (
                "OUTPUT",
                "The agent's name, when one was started; nothing otherwise. Notes go to standard error: a blocked task (mt-sling: task N waits for task M ...), no free name in the pool, a claim lost to someone else, or a --profile at its usage limit (an agent of it shows a rejected rate limit that has not reset; see mt-dispatch(1)). In each case the task is created and stays pending, and mt-dispatch starts it later.",
            ),
            (
                "EXAMPLES",
                "Hand out a task and follow the agent:
  $ who=$(mt-sling 'Fix the flaky login test' --body 'See CI run 812.')
  $ mt-log -f \"$who\"

Two tasks, the second after the first:
  $ mt-sling 'Write the parser'
  york
  $ mt-sling 'Review the parser' --blocked-by 1
  mt-sling: task 2 waits for task 1 (not completed); it stays pending for mt-dispatch

A demo without Claude Code:
  $ MT_AGENT_CMD=mt-fake-agent MT_FAKE_RUN='mt-task done $MT_TASK' mt-sling 'Say hello'",
            ),
            (
                "EXIT STATUS",
                "0\tthe task was created (and an agent started, when the name is printed)
1\t--name NAME is not free; the task was created and stays pending
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "",
                "Exit 69 also when the current directory is not inside a git repository (agents work in its worktrees); nothing is created then. When the agent cannot be started, the exit status is mt-spawn(1)'s (69 for a missing agent program), the task is pending again (no owner), and an error record from mt-sling says so.",
            ),
            (
                "ENVIRONMENT",
                "CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)
MT_WORKTREES\twhere worktrees are made (see mt-worktree(1))
MT_PROFILE\tthe auth profile of the agent when --profile is not given, before the settings files (see mt-profile(1))",
            ),
            (
                "SEE ALSO",
                "mt-dispatch(1), mt-profile(1), mt-task(1), mt-spawn(1), mt-worktree(1), mt-ps(1), mt(7)",
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
    let title = args.title.join(" ");
    let blocked_by = args
        .blocked_by
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| tasks::parse_id(s))
        .collect::<Result<Vec<_>>>()?;
    let state = args.common.state()?;
    dispatch::check_repo()?;
    let pool = match &args.name {
        Some(n) => dispatch::pool(&state, Some(n))?,
        None => dispatch::pool(
            &state,
            args.pool
                .clone()
                .or_else(|| super::settings_pool(&settings))
                .as_deref(),
        )?,
    };
    let list_name = tasks::list_name(args.list.list.as_deref(), Some(&state))?;
    let list = TaskList::new(&claude_config_dir()?, &list_name)?;
    if let Some(p) = &args.profile {
        crate::profile::load(p)?;
    }
    let o = Options {
        list,
        pool,
        model: args.model,
        channel,
        agent_cmd: args.agent_cmd.filter(|s| !s.is_empty()),
        permissions: args.permissions.choice(),
        from: "mt-sling".into(),
        dry_run: false,
        profiles: args.profile.into_iter().collect(),
    };
    // Held from creation to start: a dispatcher woken by the new task file
    // waits instead of starting it too.
    let _lock = dispatch::lock(&state)?;
    let task = o.list.create(&NewTask {
        subject: title,
        description: args.body,
        blocked_by,
        ..NewTask::default()
    })?;
    let listing = o.list.list()?;
    let Some(task) = listing.get(task.id).cloned() else {
        return Err(fail(
            exit::SOFTWARE,
            format!("task {} vanished after it was created", task.id),
        ));
    };
    let open = listing.open_blockers(&task);
    if !open.is_empty() {
        let ids: Vec<String> = open.iter().map(u64::to_string).collect();
        let s = if open.len() == 1 { "" } else { "s" };
        eprintln!(
            "mt-sling: task {} waits for task{s} {} (not completed); it stays pending for mt-dispatch",
            task.id,
            ids.join(", ")
        );
        return Ok(0);
    }
    match dispatch::start(&state, &o, &listing, &task, &BTreeSet::new())? {
        Outcome::Started(name) => {
            println!("{name}");
            Ok(0)
        }
        Outcome::NoFreeName if args.name.is_some() => {
            eprintln!(
                "mt-sling: {} is not free (running, owning an unfinished task, or with unmerged work); task {} stays pending",
                o.pool[0], task.id
            );
            Ok(NO)
        }
        Outcome::NoFreeName => {
            eprintln!(
                "mt-sling: no free agent name in the pool; task {} stays pending for mt-dispatch",
                task.id
            );
            Ok(0)
        }
        Outcome::Refused(r) => {
            eprintln!("mt-sling: task {} was not started: {r}", task.id);
            Ok(0)
        }
        Outcome::AllLimited(t) => {
            eprintln!(
                "mt-sling: profile {} is at its usage limit until {t}; task {} stays pending for mt-dispatch",
                o.profiles[0], task.id
            );
            Ok(0)
        }
    }
}
