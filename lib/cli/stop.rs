//! mt-stop: stop agents by their process group.

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::agent;
use crate::exit::{self, NO, TEMPFAIL, fail};

/// Stop agents
///
/// Sends SIGTERM to each agent's process group, waits up to the grace for
/// it to end, then sends SIGKILL. The supervisor records the stop in
/// status.json and posts it to the channel. Processes are found through the
/// agent's status and liveness lock, never by name. An agent whose
/// supervisor died (state lost) has what is left of its session killed.
///
/// With --soft the supervisor first closes the agent's standard input, which
/// ends a headless session cleanly (exit code 0); an agent still running
/// after the grace gets SIGTERM, then SIGKILL after a second grace.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Time between SIGTERM and SIGKILL (with --soft, also between closing
    /// stdin and SIGTERM)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::duration)]
    pub grace: Duration,

    /// Close the agent's stdin first and let it exit on its own
    #[arg(long)]
    pub soft: bool,

    #[command(flatten)]
    pub common: Common,

    /// Agents to stop
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-stop",
        &[
            (
                "EXAMPLES",
                "Stop one agent, giving it a minute to finish writing:
  $ mt-stop --grace 1m york

End an idle agent's session cleanly, signalling it only if it has not
exited 5 seconds after its stdin closed:
  $ mt-stop --soft --grace 5s york

Stop every agent that is running:
  $ mt-ps --json | jq -r 'select(.running) | .name' | xargs -r mt-stop",
            ),
            (
                "EXIT STATUS",
                "0\tthe agents are stopped (or were not running)
1\tan agent does not exist
2\tusage error
75\tan agent's supervisor still holds its lock after SIGKILL",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_AGENT\twho is stopping (recorded in the status)",
            ),
            (
                "SEE ALSO",
                "mt-spawn(1), mt-ps(1), mt-wait(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// Who is stopping: `$MT_AGENT`, else `lead`.
fn who() -> String {
    crate::statedir::env_agent().unwrap_or_else(|| "lead".into())
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let mut agents = Vec::new();
    let mut code = 0;
    for n in &args.names {
        match agent::existing(&state, n) {
            Ok(a) => agents.push(a),
            Err(e) if exit::code_of(&e) == NO => {
                eprintln!("mt-stop: {e}");
                code = NO;
            }
            Err(e) => return Err(e),
        }
    }
    let left = agent::stop_with(&state, &agents, args.grace, &who(), args.soft)?;
    for n in &left {
        eprintln!("mt-stop: {n}: still running after SIGKILL");
    }
    if !left.is_empty() {
        return Err(fail(TEMPFAIL, "some agents did not stop"));
    }
    Ok(code)
}
