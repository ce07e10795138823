//! mt-nudge: send a message to an agent's standard input, resuming its
//! session when it is not running.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::Read;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::agent::{self, Nudged};
use crate::exit::{DATAERR, NO, fail};

/// Send a message to an agent
///
/// The message (the arguments joined by spaces, or standard input) goes to
/// the agent's inbox. A running agent's supervisor writes it to the agent's
/// standard input as a user turn at once; the agent reads it when its
/// current turn ends. A stopped agent with a saved session is resumed in
/// the background (as mt-spawn NAME --resume --detach would) and gets the
/// message first.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Agent name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Leave the message in the inbox of a stopped agent without resuming it
    #[arg(long)]
    pub no_resume: bool,

    #[command(flatten)]
    pub common: Common,

    /// The message; standard input when absent
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-nudge",
        &[
            (
                "EXAMPLES",
                "Tell a working agent something:
  $ mt-nudge york 'The API changed: use fetch_v2 from now on.'

Hand a stopped agent the CI log; it resumes its session to read it:
  $ make test 2>&1 | tail -50 | mt-nudge york",
            ),
            (
                "EXIT STATUS",
                "0\tdelivered to a running agent, or the agent was resumed with it
1\tthe agent does not exist, or is stopped and was not resumed (no saved session, or --no-resume); the message waits in its inbox
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-spawn(1), mt-ps(1), mt-log(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let a = agent::existing(&state, &args.name)?;
    let text = if args.text.is_empty() {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        let mut s =
            String::from_utf8(buf).map_err(|_| fail(DATAERR, "the message is not valid UTF-8"))?;
        if s.ends_with('\n') {
            s.pop();
        }
        s
    } else {
        args.text.join(" ")
    };
    if text.trim().is_empty() {
        return Err(fail(DATAERR, "refusing an empty message"));
    }
    match agent::nudge(&state, &a.name, &text, !args.no_resume)? {
        Nudged::Delivered | Nudged::Resumed => Ok(0),
        Nudged::Waiting(why) => {
            eprintln!("mt-nudge: {why}; the message waits in its inbox");
            Ok(NO)
        }
    }
}
