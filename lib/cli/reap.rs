//! mt-reap: report and deal with lost, stuck and idle agents.

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::coord::reap::{self, Options};
use crate::names;

/// Report lost and stuck agents; restart them or stop idle ones on request
///
/// Looks at every agent once. An agent whose status says running but whose
/// supervisor no longer holds its liveness lock is lost: it is recorded as
/// failed (error lost) and reported on the channel, once. An agent starting
/// or working with no event for longer than --stuck-after, no tool call or
/// subagent open and no rejected rate limit still to reset is reported as
/// stuck, once per silence. Agents stopped by a usage limit are resumed
/// once it has reset (once per reset; --no-limit-resume leaves them).
/// --restart resumes lost agents, and stops and resumes stuck ones that a
/// later run finds still silent since the report. --idle-stop stops agents
/// idle for that long with no open task.
/// Prints one line per agent it acted on.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Silence after which a starting or working agent is stuck
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::duration)]
    pub stuck_after: Duration,

    /// Resume lost agents; stop and resume stuck ones (on the run after the
    /// report, if the silence goes on)
    #[arg(long)]
    pub restart: bool,

    /// Leave agents stopped by a usage limit alone after it resets (by
    /// default they are resumed, or nudged when idle, once per reset)
    #[arg(long)]
    pub no_limit_resume: bool,

    /// Stop agents idle for longer than this that have no open task
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub idle_stop: Option<Duration>,

    /// Time between SIGTERM and SIGKILL when stopping an agent (for
    /// --idle-stop, also between closing stdin and SIGTERM)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::duration)]
    pub grace: Duration,

    #[command(flatten)]
    pub channel: super::ChannelArg,

    /// Resume an agent stopped by a usage limit this long after the limit's
    /// reset time
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = super::duration)]
    pub after_reset: Duration,

    /// Print what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-reap",
        &[
            (
                "OUTPUT",
                "One line per agent acted on, NAME: FINDING; WHAT WAS DONE, for example:
  york: lost: its supervisor is gone (last sign of life 3m ago); reported
  york: lost: its supervisor is gone (last sign of life 3m ago); reported; resumed
  park: stuck: no event for 12m while working, no tool call open; reported
  park: stuck: no event for 13m while working, no tool call open; restarted
  kent: idle for 20m with no open task; stopped
  hale: usage limit (five_hour) reset at 2026-11-21T19:00:00.000Z; resumed
  dale: usage limit (five_hour) reset at 2026-11-21T19:00:00.000Z; nudged
  york: lost: its supervisor is gone (last sign of life 3m ago); reported; resumes after its usage limit resets at 2026-11-21T19:00:00.000Z

resumed comes with --restart; restarted with --restart, on a later run in the same silence; stopped with --idle-stop; the usage limit lines unless --no-limit-resume. With --dry-run the lines say would report, would report and resume, would restart, would stop, would resume, would nudge. Agents already reported, with nothing else to do, give no line.",
            ),
            (
                "RULES",
                "Lost\tThe kernel releases the liveness lock (agents/NAME/running.lock) only when the supervisor dies, so a running state with a free lock is certain. mt-reap records it under that lock (status.json: state failed, error lost; what is left of the agent's session is killed), so exactly one reaper (or mt-stop) reports it. Agents whose end their supervisor recorded (exited, failed) are already reported by it and left alone.
Stuck\tSilence is measured from the newest of the last event, the last input and the start. An open tool call or subagent (status.json open_tool_calls: a tool_use without its tool_result) means the agent waits for a tool, however long: never stuck. Idle agents wait for input: never stuck. agents/NAME/reap.json remembers the silence reported, so it is reported once; --restart acts only when a later run sees the same silence again, never on one look.
Idle\tAn agent idle for longer than --idle-stop is stopped softly (its stdin closed, as mt-stop --soft; SIGTERM if still running after --grace, SIGKILL after another) unless it has an open task: the task it was started for (MT_TASK) not completed, or a task of its list it owns that is not completed. A task list that cannot be read counts as an open task.

Usage limit\tUnless --no-limit-resume: an agent whose status.json shows a rate limit with status rejected is left alone until its resets_at has passed by --after-reset (default 1m, as the service's clock and ours may differ by a little), never before. Then, if it has ended (exited, failed or lost, but not stopped by mt-stop or a signal; an --idle-stop of mt-reap's own does not count) it is resumed, and if it still runs and is idle it is nudged, both through its inbox with the note: mt-reap: the usage limit (KIND) that stopped your work reset at T. Carry on where you left off. A system record says NAME resumed (or nudged) after the usage limit reset (KIND) at T. This happens exactly once per reset time: before acting, mt-reap creates agents/NAME/limit-resumed.T (T the reset time in seconds since the epoch) with O_EXCL, and an agent whose marker exists is passed over, however often and however many reapers run; a marker is removed only when a newer one is made. If the resume fails, an error record says why; only a busy lock (exit 75) lets a later run try again. An agent resumed while its account is still limited reports a new rejected rate limit; with the same reset time it is not resumed again. A lost agent whose limit has not reset is reported but not resumed until then.

Runs take turns through the lock reap.lock in the state directory.",
            ),
            (
                "EXAMPLES",
                "From mt-watch's rules file, every 30 seconds:
  name=reap  @every 30s  mt-reap --restart --idle-stop 30m

Resume agents stopped by a usage limit right at the reset, checking every 10 seconds:
  name=limits  @every 10s  mt-reap --after-reset 0s

What would happen with a short threshold:
  $ mt-reap --stuck-after 2m --dry-run",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess (problems with one agent are printed on stderr and do not stop the others)
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "CLAUDE_CODE_TASK_LIST_ID\ttask list for --idle-stop's open task check (default: mt-PROJECT, see mt-task(1)); an agent's own list comes first
CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)",
            ),
            (
                "SEE ALSO",
                "mt-watch(1), mt-ps(1), mt-stop(1), mt-spawn(1), mt-profile(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel.channel)?;
    let state = args.common.state()?;
    let opts = Options {
        stuck_after: args.stuck_after,
        restart: args.restart,
        idle_stop: args.idle_stop,
        grace: args.grace,
        channel: args.channel.channel,
        dry_run: args.dry_run,
        after_reset: args.after_reset,
        limit_resume: !args.no_limit_resume,
    };
    // Not locked for the whole run: resumed supervisors are forked from here.
    super::print_as_it_goes(|each| reap::reap(&state, &opts, each))?;
    Ok(0)
}
