//! mt-route: deliver the @mentions of new channel records.

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::coord::route::{self, Options};
use crate::names;

/// Deliver @mentions to the agents they name
///
/// Reads the records added to a channel since its last run (with a cursor
/// of its own, reader mt-route) and, for each name a record mentions other
/// than its sender: nudges an agent mt supervises (agents/NAME/ in the
/// state directory), through its inbox if it runs, else by resuming it
/// with the message (unless --no-resume, which leaves the message in its
/// inbox); else writes to the Claude Code inbox of a member of the agent
/// team (--team); else, for the lead or another reader of the channel, does
/// nothing (they read the channel themselves); else posts a system record
/// saying that nobody of that name is known. An agent mt supervises never
/// gets a team inbox message, even when it is a member of the team: a
/// headless claude -p session never reads its team inbox. Team inboxes are
/// for interactive sessions only. @all reaches every running agent but the
/// sender. One line per action on standard output.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub channel: super::ChannelArg,

    /// Resume a mentioned agent that is stopped (the default)
    #[arg(long, overrides_with = "no_resume")]
    pub resume: bool,

    /// Leave the message in a stopped agent's inbox instead of resuming it
    #[arg(long, overrides_with = "resume")]
    pub no_resume: bool,

    /// Claude Code agent team whose members get mentions in their inboxes
    #[arg(long, env = "MT_TEAM", value_name = "TEAM")]
    pub team: Option<String>,

    /// Print what would be done; deliver nothing, keep the cursor
    #[arg(long)]
    pub dry_run: bool,

    /// Route nothing: move the cursor past every record now in the channel
    /// (to start routing a channel with a history from now on)
    #[arg(long, conflicts_with = "dry_run")]
    pub skip_existing: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-route",
        &[
            (
                "OUTPUT",
                "One line per mention handled, #SEQ SENDER -> NAME: WHAT, where WHAT is one of:
nudged\ta running agent got the message on its standard input (through its inbox)
resumed\ta stopped agent was resumed in the background and reads the message first
NAME is not running (--no-resume); left in its inbox\tas said; it reads it when it next runs
NAME has never been started; left in its inbox\tagents/NAME/inbox/ exists but no agent of that name ever ran
written to its inbox in team TEAM\ta member of the agent team, not an mt agent, got the message in ~/.claude/teams/TEAM/inboxes/NAME.json
reads the channel itself\tthe lead, or a name with a cursor (cursors/NAME/)
unknown, reported\tnobody of that name: a system record from mt-route says the record was not delivered to it
a coworker on another host; mt-sync carries it\tthe name is a coworker of another host (mt-sync(1)): that host's mt-route delivers the record once it arrives there
unknown here; the record's own host reports it\ta record mt-sync brought from another host names nobody here; not reported again
failed: ERROR; reported\tthe delivery failed (the agent did not start, its inbox could not be written, ...): the error is also on standard error and in a system record from mt-route, once per name and run. Routing goes on with the next mention. A later mention of an agent whose delivery failed is not tried again in the same run: the message is put in its inbox (delivery to NAME failed earlier in this run; left in its inbox), or fails again without a new report

With --dry-run the same lines say what would be done (would nudge, would resume, ...).

The message an agent gets is [CHANNEL #SEQ] SENDER: CONTENT.",
            ),
            (
                "DELIVERY",
                "One pass over what is new: each mention is delivered as its record is read, and the cursor cursors/mt-route/CHANNEL.json is saved after each batch of records (at most 1024 records or about 128 mentions), once every mention in the batch was handled and, unless MT_FSYNC=0, made durable by one syncfs(2) for the whole batch, under the reader lock cursors/mt-route/LOCK (two mt-route runs take turns). Running mt-route again routes nothing twice. Delivery is at least once: a run that dies routes the batch it was in again on the next run, so some nudges may arrive twice; none is lost. A mention that cannot be delivered is reported, not retried by the next run (a stopped agent whose resume failed still has the message in its inbox and reads it when it next starts). On its first run mt-route reads the channel from the start (nothing posted before the watcher started is lost); mt-route --skip-existing, run once, starts it at the end of a channel with a long history instead. Records whose sender is mt-route are skipped, so its reports never loop. Resuming is the default because a mention is a request for the agent's attention; --no-resume keeps stopped agents stopped (the message waits in their inbox, and the line says so).",
            ),
            (
                "EXAMPLES",
                "Route after every new record, from mt-watch's rules file:
  name=route  @change channel:general  mt-route

See what a run would do:
  $ mt-post '@york can you review?'
  $ mt-route --dry-run
  #1 lead -> york: would nudge

Also reach the members of a Claude Code agent team:
  $ MT_TEAM=backend mt-route --no-resume",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess (also when there was nothing new, or a name was unknown and reported)
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "",
                "A failed delivery does not stop the run: every record is routed, then mt-route exits with the status of the first delivery that failed (69 when an agent program cannot be started, 73 when an inbox cannot be written, 75 when a lock stayed busy). Each failure is on standard error and in a system record; the cursor has moved past it, and running mt-route again does not retry it.",
            ),
            (
                "ENVIRONMENT",
                "CLAUDE_CONFIG_DIR\tClaude Code's directory, for team inboxes (~/.claude)
MT_AGENT_CMD\tnot read: a resumed agent runs the program it was started with",
            ),
            (
                "SEE ALSO",
                "mt-watch(1), mt-nudge(1), mt-post(1), mt-read(1), mt-mail(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel.channel)?;
    let team = args.team.filter(|t| !t.is_empty());
    if let Some(t) = &team {
        names::check_claude("team", t)?;
    }
    let state = args.common.state()?;
    if args.skip_existing {
        let seq = route::skip_existing(&state, &args.channel.channel)?;
        println!("skipped through #{seq}");
        return Ok(0);
    }
    let opts = Options {
        channel: args.channel.channel,
        resume: !args.no_resume,
        team,
        dry_run: args.dry_run,
    };
    // Not locked for the whole run: a resumed agent's supervisor is forked
    // from here.
    let done = super::print_as_it_goes(|each| route::route(&state, &opts, each))?;
    Ok(done.failure_code.unwrap_or(0))
}
