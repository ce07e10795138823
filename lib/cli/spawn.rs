//! mt-spawn: start a headless agent and supervise it.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Common, PermissionArgs, Tool};
use crate::exit::{self, DATAERR, fail};
use crate::names;
use crate::spawn::{self, Options};

/// Start a headless agent and supervise it
///
/// Runs the agent program (Claude Code by default) with a stream-json
/// command line and stays as its supervisor: the agent's events go to
/// agents/NAME/events.jsonl, its state to agents/NAME/status.json, and nudges
/// (mt-nudge) to its standard input. Without --detach, mt-spawn waits for the
/// agent and exits with its exit code. The prompt is --prompt, or standard
/// input when --prompt is absent.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Agent name (a-z 0-9 . _ -)
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The first message (default: standard input)
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,

    /// Run in the agent's own git worktree (created when missing)
    #[arg(long, conflicts_with = "cwd")]
    pub worktree: bool,

    /// Working directory (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Task the agent works on (given to it as MT_TASK)
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,

    /// Claude Code task list (given to it as CLAUDE_CODE_TASK_LIST_ID)
    #[arg(long, env = "CLAUDE_CODE_TASK_LIST_ID", value_name = "LIST")]
    pub task_list: Option<String>,

    /// Model (passed as --model)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// Role text appended to the system prompt (--append-system-prompt)
    #[arg(long, value_name = "TEXT")]
    pub role: Option<String>,

    /// Resume the agent's saved session instead of starting a new one;
    /// options not given are taken from the last start
    #[arg(long)]
    pub resume: bool,

    /// Return once the agent has started; the supervisor keeps running
    #[arg(short, long)]
    pub detach: bool,

    /// Close the agent's stdin (letting it end) after this long without
    /// activity, e.g. 10m
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub idle_exit: Option<std::time::Duration>,

    /// Run the agent under bubblewrap: only its working directory, the git
    /// and state directories, Claude Code's directory and /tmp are writable
    #[arg(long)]
    pub sandbox: bool,

    /// Channel for the agent's status records (given to it as MT_CHANNEL)
    #[arg(short, long, env = "MT_CHANNEL", value_name = "NAME")]
    pub channel: Option<String>,

    /// Agent program: a program name or path, without arguments (use a
    /// wrapper script to add some)
    #[arg(long, env = "MT_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    #[command(flatten)]
    pub permissions: PermissionArgs,

    /// Auth profile (see mt-profile(1); default: the profile setting,
    /// $MT_PROFILE or the settings files). On --resume the agent keeps its
    /// own unless this is given
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Also work in the repository around DIR: the agent gets a worktree
    /// there too (branch mt/NAME), given to it with --add-dir (repeatable)
    #[arg(long = "add-repo", value_name = "DIR")]
    pub add_repo: Vec<PathBuf>,

    /// Start without the coworker prompt (the built-in text and the
    /// COWORKER.md files); --role still applies
    #[arg(long)]
    pub no_coworker_prompt: bool,

    #[command(flatten)]
    pub common: Common,

    /// Further arguments for the agent program, after --
    #[arg(last = true, value_name = "EXTRA_ARGS")]
    pub extra: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-spawn",
        &[
            (
                "SETTINGS AND PROMPT",
                "A new agent takes what its options and variables leave open from the settings files (see mt-config(1)): agent-cmd, model, channel, and permission-mode, allow and permissions together (when none of --permission-mode, --allow, --permissions is given), and profile. A resume takes them from meta.json instead, so editing the settings never changes a running team's agents.

Every new agent gets the coworker prompt appended to its system prompt: a built-in text on how a coworker works through mt, then COWORKER.md from the config home ($MT_CONFIG_HOME, else ~/.config/mt) and from the project's .mt directory; --role comes after it. The text is composed at the first start and kept in meta.json (system_prompt) for resumes. --no-coworker-prompt leaves it out.",
            ),
            (
                "EXAMPLES",
                "Start a coworker in the background on a task, in its own worktree:
  $ mt-spawn york --detach --worktree --task 12 --prompt 'Fix the parser bug in #12'

Start one from a prompt file, with a role and a model, and wait for it:
  $ mt-spawn park --model sonnet --role 'You review code.' < review.md

Let an agent end on its own after ten quiet minutes:
  $ mt-spawn york -d --idle-exit 10m --prompt 'Watch the CI and report'

Start one on a second account (see mt-profile(1)):
  $ mt-spawn kent -d --profile work --prompt 'Write the docs'

Continue a stopped agent's session:
  $ mt-spawn york --resume -d --prompt 'Carry on with the tests'",
            ),
            (
                "FILES",
                "agents/NAME/meta.json\thow the agent was started
agents/NAME/status.json\tstate, pid, session, turns, tokens, cost, exit code
agents/NAME/events.jsonl\tthe agent's stream-json events
agents/NAME/stderr.log\tthe agent's standard error
agents/NAME/inbox/\tnudges (maildir: tmp, new, cur)
agents/NAME/running.lock\theld by the supervisor while the agent runs",
            ),
            (
                "EXIT STATUS",
                "Without --detach, the agent's exit code (128+N when killed by signal N). With --detach:
0\tthe agent has started
1\tthe agent is already running
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "",
                "Exit 65 also for an unknown auth profile or one that does not parse; nothing is started then.",
            ),
            (
                "ENVIRONMENT",
                "The agent's environment is the caller's without the variables a parent Claude Code session sets for its tools (CLAUDECODE, CLAUDE_CODE_SESSION_ID, CLAUDE_CODE_ENTRYPOINT, CLAUDE_CODE_MESSAGING_SOCKET, CLAUDE_CODE_MESSAGING_TOKEN, CLAUDE_CODE_CHILD_SESSION, CLAUDE_CODE_CHILD_NOTES_DIR, CLAUDE_CODE_SESSION_ATTENDED, CLAUDE_CODE_EXECPATH, CLAUDE_PID, CLAUDE_EFFORT, CLAUDE_ENV_FILE, CLAUDE_PROJECT_DIR, AI_AGENT), plus MT_AGENT, MT_DIR, MT_CHANNEL, MT_RUN, CLAUDE_CODE_ENABLE_TODO_TOOLS=1, CLAUDE_CODE_TASK_LIST_ID (the given list, else the state directory's, mt-PROJECT) and MT_TASK when given. The user's own configuration (ANTHROPIC_*, CLAUDE_CONFIG_DIR, proxies, other CLAUDE_CODE_* settings) is kept, unless the agent has an auth profile.

MT_PROFILE\tthe auth profile of a new agent when --profile is not given, before the profile key of the settings files (see mt-config(1)). With a profile, the caller's ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL, CLAUDE_CODE_OAUTH_TOKEN and CLAUDE_CODE_USE_* are removed and the profile's CLAUDE_CONFIG_DIR, or ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL, set in the agent's process environment only (never in settings.json); the agent gets MT_PROFILE=NAME. The profile is read at every start, resumes included. See mt-profile(1).",
            ),
            (
                "SETTINGS AND PERMISSIONS",
                "The agent is started with --settings agents/NAME/settings.json: mt's hooks (mt-hook for SessionStart, UserPromptSubmit, Stop and PostToolUse), the environment above and a permissions object. They merge with the user's and the project's settings, so an agent in a fresh worktree, which has no project settings, still gets mt's hooks.

In claude -p nobody answers a permission prompt: a tool call that is not allowed is denied. The default profile has mode acceptEdits (edits in the working directory need no permission) and allows git, mt-post, mt-read, mt-channels, mt-task, mt-mail, mt-ps, mt-log, mt-wait, mt-nudge, mt-remind, mt-status, Claude Code's task tools, and the build tools the working directory shows (make for a Makefile, cargo for Cargo.toml, npm and npx for package.json, go, python and pytest, cmake, meson, mvn, gradle, just). --permission-mode changes the mode, --allow adds rules, --permissions takes the whole object from a file. A resume keeps what was chosen unless these options are given again. bypassPermissions as root is refused without --sandbox, since Claude Code refuses it there; under --sandbox mt sets IS_SANDBOX=1.",
            ),
            (
                "PROCESSES",
                "The agent runs in a session and process group of its own, with a parent-death signal; every process it starts inherits MT_RUN, a marker unique to the run. When the agent ends, the supervisor kills its session and every process carrying the marker, including commands Claude Code's Bash tool ran in sessions of their own. When the supervisor was killed, mt-stop(1), mt-reap(1) and the next start of the agent do the same.",
            ),
            (
                "SEE ALSO",
                "mt-ps(1), mt-nudge(1), mt-stop(1), mt-log(1), mt-wait(1), mt-profile(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == spawn::DETACHED_FLAG) {
        exit::set_tool("mt-spawn");
        return ExitCode::from(spawn::detached_main(&argv[2..]));
    }
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    names::check("agent", &args.name)?;
    if let Some(c) = &args.channel {
        names::check("channel", c)?;
    }
    let prompt = match args.prompt {
        Some(p) => p,
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("cannot read the prompt from standard input")?;
            String::from_utf8(buf).map_err(|_| fail(DATAERR, "the prompt is not valid UTF-8"))?
        }
    };
    if prompt.trim().is_empty() && !args.resume {
        return Err(fail(DATAERR, "the prompt is empty"));
    }
    let state = args.common.state()?;
    let opts = Options {
        name: args.name,
        prompt: Some(prompt),
        cwd: args.cwd,
        worktree: args.worktree,
        task: args.task,
        task_list: args.task_list.filter(|s| !s.is_empty()),
        model: args.model,
        role: args.role,
        channel: args.channel,
        resume: args.resume,
        idle_exit: args.idle_exit,
        sandbox: args.sandbox,
        extra_args: args.extra,
        agent_cmd: args.agent_cmd.filter(|s| !s.is_empty()),
        permissions: args.permissions.choice(),
        profile: args.profile,
        add_repos: args.add_repo,
        no_coworker_prompt: args.no_coworker_prompt,
    };
    if args.detach {
        spawn::spawn_detached(&state, opts)?;
        return Ok(0);
    }
    let (plan, held) = spawn::prepare(&state, opts)?;
    spawn::run_foreground(plan, held)
}
