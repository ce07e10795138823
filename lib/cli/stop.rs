//! mt-stop: stop agents by their process group.

use anyhow::Result;
use clap::Parser;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Common, Tool};
use crate::agent::{self, AgentDir, State, StopRequest};
use crate::exit::{self, NO, TEMPFAIL, fail};
use crate::procs;
use crate::statedir::StateDir;
use crate::time;

/// Stop agents
///
/// Sends SIGTERM to each agent's process group, waits up to the grace for
/// it to end, then sends SIGKILL. The supervisor records the stop in
/// status.json and posts it to the channel. Processes are found through the
/// agent's status and liveness lock, never by name. An agent whose
/// supervisor died (state lost) has what is left of its session killed.
#[derive(Debug, Parser)]
#[command(name = "mt-stop", version)]
pub struct Args {
    /// Time between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    #[command(flatten)]
    pub common: Common,

    /// Agents to stop
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    time::parse_duration(s).map_err(|e| e.to_string())
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-stop",
        &[
            (
                "EXAMPLES",
                "Stop one agent, giving it a minute to finish writing:
  $ mt-stop --grace 1m york

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
                "MT_DIR\tstate directory\nMT_AGENT\twho is stopping (recorded in the status)",
            ),
            (
                "SEE ALSO",
                "mt-spawn(1), mt-ps(1), mt-wait(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    exit::main("mt-stop", || run(args))
}

/// Wait until every lock in `agents` is free or `limit` passes; returns the
/// agents still running. Each waiter blocks in flock(2) in its own thread.
pub fn wait_free(agents: &[AgentDir], limit: Option<Duration>) -> Vec<usize> {
    let (tx, rx) = mpsc::channel();
    for (i, a) in agents.iter().enumerate() {
        let tx = tx.clone();
        let path = a.lock_path().to_path_buf();
        std::thread::spawn(move || {
            if let Ok(f) = crate::fsutil::open_read(&path) {
                let _ = f.lock_shared();
            }
            let _ = tx.send(i);
        });
    }
    drop(tx);
    let mut left: Vec<usize> = (0..agents.len()).collect();
    let until = limit.map(|l| Instant::now() + l);
    while !left.is_empty() {
        let got = match until {
            None => rx.recv().ok(),
            Some(t) => rx
                .recv_timeout(t.saturating_duration_since(Instant::now()))
                .ok(),
        };
        match got {
            Some(i) => left.retain(|&j| j != i),
            None => break,
        }
    }
    left
}

fn signal_group(a: &AgentDir, sig: Signal) {
    if let Ok(Some(st)) = a.read_status()
        && let Some(pgid) = st.pgid
        && pgid > 1
        && a.running().unwrap_or(false)
    {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

/// An agent whose supervisor died: kill what is left of its session (while
/// holding its lock, so no new run can start meanwhile) and record it.
fn clean_lost(state: &StateDir, a: &AgentDir) -> Result<()> {
    let Some(_held) = crate::lock::try_exclusive(a.lock_path())? else {
        return Ok(());
    };
    let Some(mut st) = a.read_status()? else {
        return Ok(());
    };
    if !st.state.is_live() {
        return Ok(());
    }
    if let Some(sid) = st.pgid {
        let root = state.root().to_string_lossy().into_owned();
        for p in procs::leftovers(sid, &a.name, &root) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
    st.state = State::Failed;
    st.error = Some("lost".into());
    st.error_detail = Some("the supervisor ended without recording the agent's end".into());
    st.stopped = true;
    st.stopped_by = Some(format!("mt-stop by {}", who()));
    st.ended_at = Some(time::now_stamp());
    st.updated_at = st.ended_at.clone();
    a.write_status(&st)
}

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
    let request = StopRequest {
        at: time::now_stamp(),
        by: who(),
        grace_ms: args.grace.as_millis() as u64,
    };
    let mut live = Vec::new();
    for a in agents {
        if a.running()? {
            // Tell the supervisor why its agent is about to die, then signal.
            let data = serde_json::to_vec(&request)?;
            crate::fsutil::write_atomic(&a.stop_path(), &data, false)?;
            signal_group(&a, Signal::SIGTERM);
            live.push(a);
        } else {
            clean_lost(&state, &a)?;
        }
    }
    let left = wait_free(&live, Some(args.grace));
    let live: Vec<AgentDir> = left.into_iter().map(|i| live[i].clone()).collect();
    for a in &live {
        signal_group(a, Signal::SIGKILL);
    }
    let left = wait_free(&live, Some(Duration::from_secs(5)));
    for &i in &left {
        eprintln!("mt-stop: {}: still running after SIGKILL", live[i].name);
    }
    if !left.is_empty() {
        return Err(fail(TEMPFAIL, "some agents did not stop"));
    }
    Ok(code)
}
