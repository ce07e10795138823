//! mt-wait: block until agents end.

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::agent;
use crate::exit::{self, NO, TEMPFAIL};

/// Wait for agents to end
///
/// Blocks on each agent's liveness lock (no polling) until every named
/// agent has ended. For one agent, exits with that agent's exit code.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Give up after this long (exit 75)
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub common: Common,

    /// Agents to wait for
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-wait",
        &[
            (
                "EXAMPLES",
                "Start two agents and continue when both are done:
  $ mt-spawn york -d --prompt 'Write the parser' && mt-spawn park -d --prompt 'Write the docs'
  $ mt-wait york park && mt-post 'parser and docs are ready'

Fail a script when an agent fails or takes too long:
  $ mt-wait --timeout 30m york || echo \"york: $?\"",
            ),
            (
                "EXIT STATUS",
                "For one agent: its exit code (128+N when killed by signal N; 1 when it was lost with its supervisor). For several: 0 when all exited with 0, else 1.
1\tan agent does not exist
2\tusage error
75\tthe timeout passed first",
            ),
            ("", super::EXIT_COMMON),
            ("SEE ALSO", "mt-spawn(1), mt-ps(1), mt-stop(1), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let agents = args
        .names
        .iter()
        .map(|n| agent::existing(&state, n))
        .collect::<Result<Vec<_>>>()?;
    let left = crate::agent::wait_free(&agents, args.timeout);
    if !left.is_empty() {
        let names: Vec<&str> = left.iter().map(|&i| agents[i].name.as_str()).collect();
        return Err(exit::fail(
            TEMPFAIL,
            format!("still running after the timeout: {}", names.join(" ")),
        ));
    }
    let codes: Vec<u8> = agents
        .iter()
        .map(|a| {
            let st = a.read_status().ok().flatten();
            match st {
                Some(s) if s.state.is_live() => NO, // lost with its supervisor
                Some(s) => s.exit_code.map(|c| c.clamp(0, 255) as u8).unwrap_or(NO),
                None => NO,
            }
        })
        .collect();
    Ok(match codes.as_slice() {
        [one] => *one,
        all if all.iter().all(|&c| c == 0) => 0,
        _ => NO,
    })
}
