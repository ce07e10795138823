//! mt-attach: a person takes over a coworker's session, then hands it back.

use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::attach::{self, Options};
use crate::exit::{DATAERR, fail};

/// Take over an agent's session on this terminal, then hand it back
///
/// If the agent is running, its supervisor lets go softly, as with mt-stop
/// --soft: the turn in progress ends, nothing is cut. mt-attach waits for
/// that (up to --timeout), then holds the agent's liveness lock, so that
/// nothing resumes it meanwhile (mt-nudge and mt-route leave messages in its
/// inbox), marks it attached (mt-ps shows state attached) and says so on the
/// agent's channel.
///
/// It then runs the agent program interactively on this terminal in the
/// agent's working directory, resuming its session (--resume SESSION) with
/// the agent's settings file (mt's hooks), model, role and extra arguments,
/// in the agent's environment. While it runs, mt-attach ignores Ctrl-C and Ctrl-\ (the
/// program handles them).
///
/// When the program exits, mt-attach says on the channel that the session is
/// handed back and starts a headless supervisor on the same session again,
/// as mt-spawn --resume does, without a prompt: messages that waited in the
/// inbox are delivered first. With --no-hand-back the agent stays stopped.
///
/// While attached, mt-stop leaves the agent alone (with a warning): the
/// person ends the session.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Who is attaching, a name of a-z 0-9 . _ - (default: $MT_USER, else
    /// the login name); not the lead agent's $MT_AGENT
    #[arg(long = "as", env = "MT_USER", value_name = "PERSON")]
    pub person: Option<String>,

    /// How long to wait for a running agent's turn to end
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::duration)]
    pub timeout: Duration,

    /// Leave the agent stopped when the program exits
    #[arg(long)]
    pub no_hand_back: bool,

    /// Agent program (default: the one the agent was started with)
    #[arg(long, env = "MT_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    #[command(flatten)]
    pub common: Common,

    /// The agent to take over
    #[arg(value_name = "NAME")]
    pub name: String,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-attach",
        &[
            (
                "EXAMPLES",
                "Look over a coworker's shoulder, then let it carry on:
  $ mt-attach york
  mt-attach: york is running: it stops once its current turn ends (waiting up to 10m; Ctrl-C gives up)
  mt-attach: attached to york (session 5e3bd3ed-...); leave the program to hand it back
  ... Claude Code, on this terminal; /exit when done ...
  mt-attach: handed york back (pid 41235)

Take over for good, as someone else than the login name:
  $ mt-attach --as lisa --no-hand-back york

Wait at most a minute for a busy agent:
  $ mt-attach --timeout 1m york || echo 'york is still busy'",
            ),
            (
                "FILES",
                "agents/NAME/attached.json\tpresent while a person has the session: by, pid, program_pid, session_id, run_id, at (see mt-files(5))
agents/NAME/running.lock\theld by mt-attach while the person works, then passed to the new supervisor
agents/NAME/stop.json\tthe soft stop request left for a running agent's supervisor
agents/NAME/settings.json\tthe Claude Code settings the program is started with",
            ),
            (
                "EXIT STATUS",
                "The program's exit code (128+N when killed by signal N), once the session is handed back (or, with --no-hand-back, left stopped). Otherwise:
1\tno agent of that name
2\tusage error
65\tthe agent has no session yet, or the person's name is not valid
69\tthe agent program (or, for a sandboxed agent, bwrap) cannot be found or run
75\tthe agent is already attached, or its turn did not end within --timeout (it still stops when it does)",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "\nThe program gets the agent's environment, as mt-spawn(1) gives it: the caller's without the variables of a parent Claude Code session, plus MT_AGENT (the agent's name: mt's hooks act for the agent), MT_DIR, MT_CHANNEL, CLAUDE_CODE_ENABLE_TODO_TOOLS, CLAUDE_CODE_TASK_LIST_ID, MT_TASK, and MT_RUN, a marker of this interactive run: whatever the program leaves running when it exits is ended, as when a headless run ends.",
            ),
            (
                "SIGNALS",
                "SIGINT and SIGQUIT are ignored while the program runs (it is in the terminal's foreground and gets them itself). SIGTERM or SIGHUP to mt-attach end the program with SIGTERM, then the session is handed back. Before the agent has stopped, Ctrl-C gives up waiting; the agent still stops at the end of its turn.",
            ),
            (
                "SEE ALSO",
                "mt-spawn(1), mt-stop(1), mt-ps(1), mt-nudge(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// The person: `--as` or `$MT_USER`, else the login name.
fn person(given: Option<String>) -> Result<String> {
    let login = || {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .or_else(|| std::env::var("LOGNAME").ok())
            .or_else(|| std::env::var("USER").ok())
    };
    given
        .filter(|p| !p.is_empty())
        .or_else(login)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            fail(
                DATAERR,
                "cannot tell who is attaching: give --as NAME or set MT_USER",
            )
        })
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let o = Options {
        person: person(args.person)?,
        name: args.name,
        timeout: args.timeout,
        hand_back: !args.no_hand_back,
        agent_cmd: args.agent_cmd,
    };
    // The terminal may be gone (a hangup): messages are best effort.
    let mut say = |m: &str| {
        let _ = writeln!(std::io::stderr(), "mt-attach: {m}");
    };
    let out = attach::attach(&state, &o, &mut say)?;
    if let Some(pid) = out.handed_back {
        say(&format!("handed {} back (pid {pid})", o.name));
    } else {
        say(&format!("left {} stopped", o.name));
    }
    Ok(out.code)
}
