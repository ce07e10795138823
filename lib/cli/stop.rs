//! mt-stop: stop agents by their process group.

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::agent;
use crate::exit::{NO, TEMPFAIL, fail};

/// Stop agents
///
/// Sends SIGTERM to each agent's process group, waits up to the grace for
/// it to end, then sends SIGKILL. The supervisor records the stop in
/// status.json and posts it to the channel. Processes are found through the
/// agent's status and liveness lock, never by name. An agent whose
/// supervisor died (state lost) has what is left of its session killed.
///
/// Several agents are stopped together: all are signalled first, then all
/// are waited for within one grace, so stopping a hundred takes about as
/// long as stopping one. A NAME holding *, ? or [ is a shell-style pattern
/// matched against the agents' names (quote it); --all names every agent.
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

    /// Stop every agent
    #[arg(long, conflicts_with = "names")]
    pub all: bool,

    #[command(flatten)]
    pub common: Common,

    /// Agents to stop: names, or patterns such as 'w*' or 'w[0-9]'
    #[arg(value_name = "NAME", required_unless_present = "all")]
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

Stop every agent whose name starts with w, and then all the others:
  $ mt-stop 'w*'
  $ mt-stop --all",
            ),
            (
                "EXIT STATUS",
                "0\tthe agents are stopped (or were not running)
1\tan agent does not exist, or a pattern matches none (the others are stopped)
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
    let mut code = 0;
    let agents = if args.all {
        agent::list(&state)?
            .iter()
            .map(|n| agent::AgentDir::new(&state, n))
            .collect::<Result<Vec<_>>>()?
    } else {
        let (agents, missing) = agent::select(&state, &args.names)?;
        for m in &missing {
            if agent::is_pattern(m) {
                eprintln!("mt-stop: no agent matches {m}");
            } else {
                eprintln!("mt-stop: no agent named {m}");
            }
            code = NO;
        }
        agents
    };
    let left = agent::stop_with(&state, &agents, args.grace, &who(), args.soft)?;
    for n in &left {
        eprintln!("mt-stop: {n}: still running after SIGKILL");
    }
    if !left.is_empty() {
        return Err(fail(TEMPFAIL, "some agents did not stop"));
    }
    Ok(code)
}
