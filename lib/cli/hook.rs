//! mt-hook: the JSON side of mt's Claude Code hooks. Claude Code runs it as
//! `mt-hook EVENT` with the hook's JSON on standard input, directly or through
//! the scripts in PREFIX/share/mt/hooks. Claude Code reads exit status 2 as
//! "block", so mt-hook never exits 2: usage errors exit 64.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::channel::{self, Draft};
use crate::delivery::{self, Inbox, Intro, Limits, Payload, Wake};
use crate::exit::{self, DATAERR, fail};
use crate::names;
use crate::statedir::{self, StateDir};

/// Answer one Claude Code hook event
///
/// Reads the hook's JSON object on standard input and prints what Claude Code
/// expects for the event on standard output, or nothing. Unread messages are
/// taken from the agent's reader cursor (the one mt-read uses), so each is
/// delivered once: by one hook, or by mt-read.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The hook event
    #[arg(value_enum)]
    pub event: Event,

    /// The agent this session is
    #[arg(
        long = "as",
        env = "MT_AGENT",
        default_value = "lead",
        value_name = "NAME"
    )]
    pub agent: String,

    #[command(flatten)]
    pub channel: super::ChannelArg,

    /// Which unread messages keep the agent working when it stops
    #[arg(long, env = "MT_WAKE", value_enum, default_value = "mentions")]
    pub wake: Wake,

    /// Most messages one hook delivers
    #[arg(long, default_value_t = delivery::MAX_MESSAGES, value_name = "N")]
    pub max_messages: usize,

    /// Most bytes of messages one hook delivers
    #[arg(long, default_value_t = delivery::MAX_BYTES, value_name = "BYTES")]
    pub max_bytes: usize,

    /// The agent's assigned task id (shown at session start)
    #[arg(long, env = "MT_TASK", value_name = "ID")]
    pub task: Option<String>,

    /// The Claude Code task list holding the task
    #[arg(long, env = "CLAUDE_CODE_TASK_LIST_ID", value_name = "LIST")]
    pub task_list: Option<String>,

    /// Claude Code's configuration directory (default ~/.claude)
    #[arg(long, env = "CLAUDE_CONFIG_DIR", value_name = "DIR")]
    pub claude_dir: Option<PathBuf>,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Event {
    /// Context for a new session: identity, channel, task, unread messages
    SessionStart,
    /// Unread messages as context for the prompt
    UserPromptSubmit,
    /// Keep the agent working while messages for it are unread
    Stop,
    /// After every tool: restart the Stop block count; post an action record
    /// for TaskCreate and TaskUpdate
    PostToolUse,
    /// Post a status record when Claude Code waits for input
    Notification,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-hook",
        &[
            (
                "EXAMPLES",
                "What the Stop hook would say to york now (this consumes what it prints):
  $ echo '{\"stop_hook_active\":false}' | MT_AGENT=york mt-hook stop

mt-hook is itself a hook command; mt-hooks(1) writes entries such as:
  {\"type\": \"command\", \"command\": \"/usr/local/bin/mt-hook stop\", \"timeout\": 10}",
            ),
            (
                "OUTPUT",
                "session-start and user-prompt-submit print {\"hookSpecificOutput\":{\"hookEventName\":…,\"additionalContext\":…}}; user-prompt-submit prints nothing when nothing is unread. stop prints {\"decision\":\"block\",\"reason\":…} or nothing. post-tool-use and notification print nothing.

Messages are delivered as facts: at most --max-messages messages and --max-bytes bytes per hook, then a line saying how many more mt-read prints. The agent's own records are never delivered to it.",
            ),
            (
                "STOP HOOK",
                "With --wake mentions (the default), the Stop hook blocks only for unread records that mention the agent or @all, and consumes only those; other records stay unread for the next prompt. With --wake all, any record from someone else blocks.

When Claude Code says stop_hook_active (the session runs on because of an earlier block) and no wanted record arrived since that block, the hook lets the session stop.

Claude Code allows CLAUDE_CODE_STOP_HOOK_BLOCK_CAP (default 8; 0 or less: no limit) consecutive Stop blocks without a tool call in between; it overrides the next one and ends the turn, and the model never reads that block's reason. So mt-hook counts the blocks as Claude Code does, blocks by other Stop hooks included: the count restarts when stop_hook_active is false (a new turn) and when the post-tool-use hook runs for a tool of the session's own (not a subagent's). At the cap the Stop hook does not block and marks nothing delivered: the messages stay unread for the next prompt, session start or nudge. The post-tool-use hook must therefore run for every tool (mt-hooks(1) installs it with the matcher \"*\"); with an older entry limited to the task tools the count restarts less often than Claude Code's, which costs blocks, never messages. (A session started with --max-turns also ends when a block would exceed that limit, and mt-hook cannot see it: keep such limits generous.)

The Stop hook's state, the count included, lives in cursors/AGENT/CHANNEL.stop beside the cursor; see mt-files(5).",
            ),
            (
                "HEADLESS AND INTERACTIVE SESSIONS",
                "SessionStart, UserPromptSubmit, Stop and PostToolUse run in headless sessions (claude -p, as mt-spawn(1) starts agents) and in interactive ones; what SessionStart and UserPromptSubmit print reaches the model as context, and a Stop block's reason reaches it as \"Stop hook feedback\" in the next request. Notification (Claude Code waiting for its user, idle_prompt) fires only in interactive sessions, so the \"waiting for input\" status comes from interactive sessions only. Claude Code's agent-team inboxes, too, reach interactive sessions only: a headless agent learns of messages through these hooks and its nudges.",
            ),
            (
                "HOOK SCRIPTS",
                "PREFIX/share/mt/hooks holds one POSIX sh script per event (session-start, user-prompt-submit, stop, post-tool-use, notification), which `make install` puts there. Each runs mt-hook from $MT_BIN, else from its own PREFIX/bin, else from PATH, and exits 0 when it succeeds and 1 otherwise. Claude Code can as well run mt-hook directly (`/path/to/mt-hook stop`), which needs nothing but the binary; mt-hooks(1) chooses.

Every failure (no mt-hook, empty or malformed input, no state directory) is a non-blocking hook error in Claude Code, with one line on standard error.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
64\tusage error. Never 2, which Claude Code reads as \"block\"; no failure of mt-hook exits 2",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "A state directory that does not exist yet has nothing unread, and reading creates nothing.
CLAUDE_CODE_STOP_HOOK_BLOCK_CAP\tClaude Code's Stop block cap (8), read as Claude Code reads it; a value that is not a plain integer counts as at most 8
MT_FSYNC\t0 skips the data sync of posted records
MT_BIN\tfor the hook scripts: the directory holding mt-hook",
            ),
            ("SEE ALSO", "mt-hooks(1), mt-read(1), mt-post(1), mt-spawn(1), mt-files(5)"),
        ],
    )
}

/// mt-hook's status for a usage error (sysexits' EX_USAGE): Claude Code reads
/// 2, the usual one, as "block".
pub const USAGE: u8 = 64;

pub fn main() -> ExitCode {
    let tool = tool();
    exit::set_tool(tool.name);
    let args = match tool.try_parse::<Args>() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line, as for every other hook failure (a mistyped MT_WAKE
            // ends up here).
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("usage error");
            eprintln!(
                "mt-hook: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            return ExitCode::from(USAGE);
        }
    };
    let code = match run(args) {
        Ok(code) => code,
        Err(e) if exit::is_broken_pipe(&e) => exit::OK,
        Err(e) => {
            eprintln!("mt-hook: {e:#}");
            exit::code_of(&e)
        }
    };
    ExitCode::from(never_block(code))
}

/// A status Claude Code does not read as "block".
fn never_block(code: u8) -> u8 {
    if code == exit::USAGE { USAGE } else { code }
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    Ok(buf)
}

/// Print one line of output and flush it.
fn say(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

pub fn run(mut args: Args) -> Result<u8> {
    // An empty variable means the default, as for an unset one.
    if args.agent.is_empty() {
        args.agent = "lead".into();
    }
    if args.channel.channel.is_empty() {
        args.channel.channel = "general".into();
    }
    names::check("agent", &args.agent)?;
    names::check("channel", &args.channel.channel)?;
    if args.max_messages == 0 || args.max_bytes < 256 {
        return Err(fail(
            DATAERR,
            "--max-messages must be at least 1 and --max-bytes at least 256",
        ));
    }
    let payload = Payload::parse(&read_stdin()?)?;
    let state = args.common.state()?;
    let inbox = Inbox {
        state: &state,
        agent: &args.agent,
        channel: &args.channel.channel,
        limits: Limits {
            messages: args.max_messages,
            bytes: args.max_bytes,
        },
    };
    match args.event {
        Event::SessionStart => {
            let intro = Intro {
                agent: &args.agent,
                channel: &args.channel.channel,
                wake: args.wake,
                task: assigned_task(&args),
            };
            let pending = inbox.unread()?;
            say(&delivery::context_output(
                "SessionStart",
                &delivery::session_context(&intro, pending.batch.as_ref()),
            ))?;
            pending.commit()?;
        }
        Event::UserPromptSubmit => {
            let pending = inbox.unread()?;
            if let Some(b) = &pending.batch {
                say(&delivery::context_output(
                    "UserPromptSubmit",
                    &delivery::prompt_context(&args.channel.channel, b),
                ))?;
            }
            pending.commit()?;
        }
        Event::Stop => {
            let cap = std::env::var("CLAUDE_CODE_STOP_HOOK_BLOCK_CAP").ok();
            let pending = inbox.stop(
                args.wake,
                payload.flag("stop_hook_active"),
                delivery::block_cap(cap.as_deref()),
            )?;
            if let Some(b) = &pending.batch {
                say(&delivery::block_output(&delivery::stop_reason(
                    &args.agent,
                    &args.channel.channel,
                    args.wake,
                    b,
                )))?;
            }
            pending.commit()?;
        }
        Event::PostToolUse => {
            delivery::tool_ran(&state, &args.agent, &args.channel.channel, &payload)?;
            let null = serde_json::Value::Null;
            let action = delivery::task_action(
                payload.str("tool_name").unwrap_or(""),
                payload.get("tool_input").unwrap_or(&null),
                payload.get("tool_response").unwrap_or(&null),
                &args.agent,
            )?;
            if let Some(content) = action {
                post(&state, &args, "action", content, &payload)?;
            }
        }
        Event::Notification => {
            if let Some(status) = delivery::notification_status(&payload) {
                post(&state, &args, "status", status.to_string(), &payload)?;
            }
        }
    }
    Ok(exit::OK)
}

fn post(state: &StateDir, args: &Args, kind: &str, content: String, p: &Payload) -> Result<()> {
    let draft = Draft {
        from: args.agent.clone(),
        kind: kind.to_string(),
        content,
        session_id: p.session_id(),
        ..Draft::default()
    };
    match channel::post(state, &args.channel.channel, &draft) {
        Ok(_) => Ok(()),
        // The hooks' own records are news about the session: a channel
        // archived under a running agent takes none, and the session must
        // not show a hook error for it.
        Err(_) if channel::is_archived(state, &args.channel.channel) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The assigned task as one paragraph, or `None` without MT_TASK. A task
/// that cannot be read is reported on stderr and shown by id only: the
/// session still gets the rest of its context.
fn assigned_task(args: &Args) -> Option<String> {
    let id = args.task.as_deref().filter(|s| !s.is_empty())?;
    if let Err(e) = names::check("task id", id) {
        eprintln!("mt-hook: MT_TASK: {e:#}");
        return None;
    }
    let Some(list) = args.task_list.as_deref().filter(|s| !s.is_empty()) else {
        return Some(delivery::task_summary(id, None, None));
    };
    let dir = match &args.claude_dir {
        Some(d) if !d.as_os_str().is_empty() => Ok(d.clone()),
        _ => statedir::claude_config_dir(),
    };
    match dir.and_then(|d| delivery::read_task(&d, list, id)) {
        Ok(info) => Some(delivery::task_summary(id, Some(list), info.as_ref())),
        Err(e) => {
            eprintln!("mt-hook: task {id}: {e:#}");
            Some(delivery::task_summary(id, None, None))
        }
    }
}
