//! mt-remind: reminders that fire once, at a time or when the tasks are done.

use anyhow::Result;
use clap::{ArgGroup, Parser, Subcommand};
use std::io::{self, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::coord::remind::{self, NewReminder, Stage, Store, When};
use crate::exit::{DATAERR, TEMPFAIL, fail};
use crate::infra::time;
use crate::names;
use crate::statedir::StateDir;

/// Set, list, cancel and fire reminders
///
/// A reminder is a message that, once due, is posted to a channel as a
/// system record and sent as a nudge to the lead (as mt-nudge does: a
/// running agent gets it at once, a stopped one is resumed with it; a name
/// that is no agent gets only the record). It is due at a
/// time, after a delay, when every task of a Claude Code task list is
/// completed, or when, besides, all the coworkers' pull requests are
/// merged. mt-remind check fires what is due; a rule of mt-watch runs it.
/// A reminder fires exactly once, however many checks run at the same time.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Set a reminder; prints its id
    Add(AddArgs),
    /// List pending reminders (with --all, fired and cancelled ones too)
    List {
        /// One JSON object per reminder
        #[arg(long)]
        json: bool,
        /// Include reminders that fired or were cancelled
        #[arg(long)]
        all: bool,
    },
    /// Cancel a pending reminder
    Cancel {
        /// The reminder's id, as printed by add
        id: String,
    },
    /// Fire the reminders that are due; prints each one fired
    Check {
        /// Print nothing
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("due").required(true).args(["when", "at", "after"])))]
pub struct AddArgs {
    /// Fire when a condition holds: all-tasks-done (the task list has tasks
    /// and every one is completed) or all-work-merged (that, and every
    /// coworker's pull request merged, as mt-pr sync saw it)
    #[arg(long, value_name = "CONDITION", value_parser = ["all-tasks-done", "all-work-merged"])]
    pub when: Option<String>,

    /// Fire at this time: RFC 3339, or HH:MM today in local time
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Fire after this long: 30s, 10m, 2h, 1d
    #[arg(long, value_name = "DURATION")]
    pub after: Option<String>,

    /// Task list for --when all-tasks-done and all-work-merged
    #[arg(long, env = "CLAUDE_CODE_TASK_LIST_ID", value_name = "LIST")]
    pub task_list: Option<String>,

    #[command(flatten)]
    pub channel: super::ChannelArg,

    /// Agent that gets the nudge
    #[arg(long, default_value = "lead", value_name = "NAME")]
    pub to: String,

    /// Who sets the reminder
    #[arg(long, env = "MT_AGENT", default_value = "lead", value_name = "NAME")]
    pub from: String,

    /// The message
    #[arg(value_name = "MESSAGE", required = true)]
    pub message: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-remind",
        &[
            (
                "COMMANDS",
                "mt-remind add (--at TIME | --after DURATION | --when all-tasks-done | --when all-work-merged) [-c CHANNEL] [--to NAME] [--from NAME] [--task-list LIST] MESSAGE...\tset a reminder and print its id (ids are 1, 2, 3 ... and never reused). TIME is RFC 3339 or HH:MM (today, local time); DURATION is 30s, 10m, 2h, 1d, counted from now; all-tasks-done is due when the task list (--task-list, else $CLAUDE_CODE_TASK_LIST_ID, else the state directory's list mt-PROJECT as in mt-task(1)) has at least one task and all of them are completed. all-work-merged is due when, besides, by what the last mt-pr sync saw, no pull request from a coworker's branch (mt/NAME) is open, at least one is merged, and every completed task owned by a coworker that worked in a worktree has a merged pull request from that coworker's branch made for it (see mt-pr(1)): a coworker that finished a task without a pull request of its own holds it back. The record goes to CHANNEL ($MT_CHANNEL, general), the nudge to NAME (lead).
mt-remind list [--all] [--json]\tpending reminders, or all of them with --all: id, state (pending, firing, fired, cancelled), when, message; --json prints one object per line, with a stage field.
mt-remind cancel ID\tcancel a pending reminder.
mt-remind check [-q]\tfire every due reminder and print fired ID: MESSAGE for each; -q prints nothing.",
            ),
            (
                "FIRING",
                "A due reminder fires once: a record of type system from mt-remind on its channel, naming the reminder (meta.reminder holds its id), and, when the directory agents/NAME/inbox/new of the state directory exists, a message file for NAME (the lead unless add --to said otherwise), written in inbox/tmp and renamed into inbox/new.

Reminders live in reminders/pending, firing, fired and cancelled of the state directory, one JSON file each. A check claims a due reminder by locking its file and renaming it from pending to firing: one process wins the rename, so concurrent checks fire it once. cancel is the same rename into cancelled, so a reminder is either cancelled or fired, never both.

If a check dies after claiming, the next check takes the reminder over from firing (its lock is free) and delivers it, unless its record is already on the channel: the record is posted once, the nudge at least once. A reminder is never lost.",
            ),
            (
                "EXAMPLES",
                "Remind the lead to review in two hours, and when the team's tasks are done:
  $ mt-remind add --after 2h 'review the parser branch'
  $ CLAUDE_CODE_TASK_LIST_ID=team mt-remind add --when all-tasks-done 'merge and release'
  $ mt-remind add --when all-work-merged 'everything is merged: tag the release'

What is pending, and cancel one:
  $ mt-remind list
  $ mt-remind cancel 3

Fire what is due every 30 seconds, and as soon as a task changes (mt-watch rules):
  @every 30s    mt-remind check
  @change tasks mt-remind check",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tcancel: the reminder already fired or was cancelled
2\tusage error
65\tbad input: an invalid name, id, time or duration, an empty message, no task list for --when all-tasks-done or all-work-merged, cancel of an unknown id, a reminder file that does not parse
69\tno state directory
70\tinternal error
73\tcannot create or write a file (permissions, full disk)
75\tthe id lock stayed busy (add), or a reminder could not be delivered now (check): it stays due and the next check retries it",
            ),
            (
                "ENVIRONMENT",
                "CLAUDE_CONFIG_DIR\tClaude Code's directory, holding tasks/ (~/.claude)
MT_REMIND_NOW\tfor tests only: an RFC 3339 time taken as the current time",
            ),
            (
                "SEE ALSO",
                "mt-watch(1), mt-post(1), mt-pr(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let store = Store::new(&state);
    match args.cmd {
        Cmd::Add(a) => add(&state, &store, a),
        Cmd::List { json, all } => list(&store, json, all),
        Cmd::Cancel { id } => {
            let outcome = store.cancel(&id)?;
            remind::cancel_outcome(&id, outcome)
        }
        Cmd::Check { quiet } => {
            let report = store.check()?;
            let mut out = io::stdout().lock();
            if !quiet {
                for r in &report.fired {
                    writeln!(
                        out,
                        "fired {}: {}",
                        r.id,
                        crate::names::printable(&r.message)
                    )?;
                }
            }
            out.flush()?;
            let n = report.errors.len();
            for e in &report.errors {
                eprintln!("mt-remind: {e:#}");
            }
            if n > 0 {
                return Err(fail(
                    TEMPFAIL,
                    format!("{n} reminders could not be delivered; they stay due"),
                ));
            }
            Ok(0)
        }
    }
}

fn add(state: &StateDir, store: &Store, a: AddArgs) -> Result<u8> {
    names::check("channel", &a.channel.channel)?;
    names::check("agent", &a.to)?;
    names::check("sender", &a.from)?;
    let message = a.message.join(" ");
    if message.trim().is_empty() {
        return Err(fail(DATAERR, "refusing an empty message"));
    }
    let when = if let Some(t) = &a.at {
        When::At(time::stamp(
            time::parse_time(t).map_err(|e| fail(DATAERR, format!("--at: {e}")))?,
        ))
    } else if let Some(d) = &a.after {
        let d = time::parse_duration(d).map_err(|e| fail(DATAERR, format!("--after: {e}")))?;
        let d = chrono::Duration::from_std(d).map_err(|_| fail(DATAERR, "--after: too long"))?;
        When::At(time::stamp(remind::now() + d))
    } else {
        let list = crate::tasks::list_name(a.task_list.as_deref(), Some(state))?;
        let dir = crate::tasks::TaskList::new(&crate::statedir::claude_config_dir()?, &list)?
            .dir()
            .to_path_buf();
        match a.when.as_deref() {
            Some("all-work-merged") => When::AllWorkMerged { list, dir },
            _ => When::AllTasksDone { list, dir },
        }
    };
    let r = store.add(NewReminder {
        message,
        when,
        channel: a.channel.channel,
        to: a.to,
        from: a.from,
    })?;
    println!("{}", r.id);
    Ok(0)
}

#[derive(serde::Serialize)]
struct Row<'a> {
    stage: Stage,
    #[serde(flatten)]
    reminder: &'a remind::Reminder,
}

fn list(store: &Store, json: bool, all: bool) -> Result<u8> {
    let stages: &[Stage] = if all {
        &Stage::ALL
    } else {
        &[Stage::Pending, Stage::Firing]
    };
    let items = store.list(stages)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        for (stage, r) in &items {
            serde_json::to_writer(
                &mut out,
                &Row {
                    stage: *stage,
                    reminder: r,
                },
            )?;
            out.write_all(b"\n")?;
        }
    } else if !items.is_empty() {
        use super::Column;
        let cols = [
            Column::left("ID", 2),
            Column::left("STATE", 9),
            Column::left("WHEN", 4),
            Column::left("MESSAGE", 0),
        ];
        let cells: Vec<Vec<String>> = items
            .iter()
            .map(|(stage, r)| {
                vec![
                    r.id.clone(),
                    stage.dir().to_string(),
                    r.when.to_string(),
                    crate::names::printable(&r.message).into_owned(),
                ]
            })
            .collect();
        super::write_table(&mut out, &cols, &cells)?;
    }
    out.flush()?;
    Ok(0)
}
