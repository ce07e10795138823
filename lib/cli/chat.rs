//! mt-chat: the team in a terminal.

use anyhow::Result;
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

use super::{ChannelArg, Common, Tool};
use crate::exit::{self, DATAERR, UNAVAILABLE};

/// The team in a terminal: channels, coworkers, tasks and a line to type into
///
/// A full-screen view of the team's channels that keeps nothing of its own.
/// The current channel's messages follow live; a line at the bottom posts
/// as the person; a list shows each channel's unread count and a side panel
/// the coworkers (state, task, cost) and the task list. It follows the files
/// with inotify, not by polling, and uses no CPU while nothing happens.
///
/// The person reads with a reader cursor of their own (the same cursor
/// `mt-read --as NAME` uses), separate from the lead agent's, so reading
/// here never takes messages from the lead's hooks. The cursor moves only
/// over what was drawn on screen: the first unread message is shown first,
/// and a channel read here for the first time starts at its newest
/// messages (older ones are a PgUp away).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Read and post as NAME (default: $MT_USER, else the login name). A
    /// name that is an agent of the team, or $MT_AGENT (the lead), is
    /// refused unless given here.
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,

    /// Do not take the mouse (the terminal's own selection keeps working)
    #[arg(long)]
    pub no_mouse: bool,

    #[command(flatten)]
    pub channel: ChannelArg,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-chat",
        &[
            (
                "KEYS",
                "Enter\tpost the input line to the current channel
Tab\tcomplete the @name before the caret (agents, all)
Ctrl+K\tthe channel switcher: type to filter, Up/Down to choose, Enter to go, Esc to close
Ctrl+N, Ctrl+P, Alt+Down, Alt+Up\tthe next or previous channel
Up, Down, PgUp, PgDn, mouse wheel\tscroll; scrolling back past the oldest message read reads older ones
Esc, Ctrl+End\tback to the newest messages, following
Left, Right, Home, End, Ctrl+A, Ctrl+E, Backspace, Delete, Ctrl+U, Ctrl+W\tedit the input line
Ctrl+C, Ctrl+D (empty line)\tquit",
            ),
            (
                "EXAMPLES",
                "Chat with the team as yourself, beside the lead in tmux:
  $ tmux split-window -h mt-chat

Watch the review channel as someone else:
  $ mt-chat --as reviewer -c review",
            ),
            (
                "ENVIRONMENT",
                "MT_USER\tthe person's name when --as is not given (else the login name)
MT_AGENT\tthe lead agent's name, refused as the person's unless given with --as
MT_CHANNEL\tthe channel shown first (default general)
MT_DIR\tthe state directory
NO_COLOR\twhen set and not empty, no colours (as with TERM=dumb); everything stays usable
CLAUDE_CONFIG_DIR, CLAUDE_CODE_TASK_LIST_ID\twhere the task list of the side panel is",
            ),
            (
                "FILES",
                "channels/CHANNEL/*.jsonl\tread from the end backwards, then followed
cursors/NAME/CHANNEL.json\tthe person's cursor: moved to the newest message drawn, when nothing unread before it was skipped
agents/, the task list\tthe side panel, read again when they change",
            ),
            (
                "EXIT STATUS",
                "0\tquit with Ctrl+C or Ctrl+D, or ended by SIGTERM or SIGHUP
2\tusage error
65\tan invalid name, or a name that belongs to an agent without --as
69\tstandard input or output is not a terminal",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-read(1), mt-post(1), mt-channels(1), mt-status(1), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// The login name, from the passwd entry of the real user.
fn login_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    crate::names::check("channel", &args.channel.channel)?;
    let (me, explicit) = match args.name {
        Some(n) => (n, true),
        None => match std::env::var("MT_USER").ok().filter(|s| !s.is_empty()) {
            Some(n) => (n, false),
            None => (
                login_name().ok_or_else(|| {
                    exit::fail(DATAERR, "no login name for this user; give --as NAME")
                })?,
                false,
            ),
        },
    };
    crate::names::check("person", &me)?;
    if !explicit {
        let lead = crate::statedir::env_agent();
        if lead.as_deref() == Some(me.as_str()) || state.agent(&me).is_dir() {
            return Err(exit::fail(
                DATAERR,
                format!(
                    "{me} is an agent of this team: reading as it would take its messages; give --as {me} to do so anyway, or --as another name"
                ),
            ));
        }
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(exit::fail(
            UNAVAILABLE,
            "standard input and output must be a terminal",
        ));
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    crate::chat::run(crate::chat::Options {
        state,
        me,
        channel: args.channel.channel,
        color: !no_color,
        mouse: !args.no_mouse,
    })?;
    Ok(0)
}
