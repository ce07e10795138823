//! mt-status: one screen for the whole team.

use anyhow::Result;
use clap::Parser;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::ps::age;
use super::{Column, Common, Tool};
use crate::coord::remind::{Stage, When};
use crate::exit::{self, OK};
use crate::names;
use crate::status::{self, Overview};
use crate::stream;
use crate::worktree::short_ref;

/// Show the whole team on one screen
///
/// Agents with their state, task, tokens, cost and last event; the task
/// list by status, with the tasks in progress and the blocked ones;
/// unread messages per channel; worktrees holding work not in their base;
/// whether the watcher runs; reminders due. Reads only: no cursor moves
/// and nothing is written, so it can run as often as wanted (watch -n 2
/// mt-status). Fits an 80-column terminal; --json gives everything.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Count unread messages for this reader
    #[arg(
        long = "as",
        env = "MT_AGENT",
        default_value = "lead",
        value_name = "NAME"
    )]
    pub reader: String,

    /// Also list channels with nothing unread
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub list: super::ListArg,

    /// Claude Code's directory, which holds the task list (default:
    /// ~/.claude)
    #[arg(long, env = "CLAUDE_CONFIG_DIR", value_name = "DIR")]
    pub claude_dir: Option<PathBuf>,

    /// Repository whose worktrees to show: any directory inside it
    /// (default: the current directory's, else the state directory's)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Show at most N rows per table (0: all); the rest are counted
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// Print one JSON object with everything, no row left out
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-status",
        &[
            (
                "SCREEN",
                "AGENTS\tevery agent that was ever started, by name: state as mt-ps(1) shows it, task, age of the last event, tokens in/out, cost, and a note: the rejected rate limit holding it back and when it resets, or why it failed. A total line sums tokens and cost.
TASKS\tthe task list (see TASK LIST): how many tasks are pending, in progress and completed, then the tasks in progress and the pending ones blocked by tasks not completed, with owners and open blockers.
MESSAGES\tper channel, how many records the reader (--as, else $MT_AGENT, else lead) has not read, and how long ago the last one came; channels with nothing unread only with --all; archived channels never. The reader's cursors are read, never moved: mt-read shows the same messages afterwards.
WORKTREES\tlinked worktrees with commits not in their base or with uncommitted changes, and mt branches no worktree has checked out that still hold commits not in their base: what mt-worktree gc would keep. Outside a git repository the section is left out.
WATCHER\twhether an mt-watch(1) runs for the state directory, with its pid.
REMINDERS\thow many reminders have not fired, and the ones due now or overdue (or being delivered), which the next mt-remind check fires.

A state directory that does not exist yet is a team with nothing started: every section is empty and the exit status is 0.",
            ),
            ("TASK LIST", super::task::TASK_LIST_DEFAULT),
            (
                "OUTPUT",
                "With --json, one object on one line, with every row (--limit does not apply):
state_dir, at\tthe state directory, and when the overview was gathered (RFC 3339).
agents\tone object per agent: name, state (as mt-ps shows it), running (its supervisor holds the liveness lock), task, input_tokens, output_tokens, cost_usd, last_event_at (else the start), rate_limit (null, or the rejection not yet reset: status, resets_at, kind, at) and error (why a failed or lost agent failed, else null).
totals\tagents, running, states (how many agents in each state), input_tokens, output_tokens, cost_usd, rate_limited.
tasks\tlist, and how many tasks are pending, in_progress, completed, other (a status mt does not know) and skipped (a file that does not parse); active (in progress) and blocked (pending, with a blocker not completed), each task with id, subject, owner and blocked_by (its blockers not completed). Null when the list could not be read.
reader, channels\tthe reader, and per channel not archived with something unread (every one with --all): name, unread, last_seq, last_activity.
worktrees\tunmerged: the worktrees with commits not in their base or uncommitted changes, as mt-worktree list --json shows them; branches: mt branches without a worktree holding commits not in their base, with name, base and unmerged (null when the base does not resolve). Null outside a git repository.
watcher\trunning, and pid (null when not running).
reminders\tpending (how many have not fired) and due (each as mt-remind list --json shows it, with its stage). Null when they could not be read.
errors\tthe sections that could not be read: section, error, code (the exit code it carries).",
            ),
            (
                "FILES",
                "Everything is read, nothing is written; no lock is waited for.
agents/NAME/\tstatus.json, meta.json and the liveness lock running.lock, as mt-ps(1) reads them.
channels/, cursors/READER/\tthe newest record of each channel and the reader's cursors.
watch/LOCK\theld by the running mt-watch, which writes its pid in it.
reminders/pending/, reminders/firing/\tthe reminders not fired yet.
$CLAUDE_CONFIG_DIR/tasks/LIST/\tthe task list.",
            ),
            (
                "EXAMPLES",
                "The team at a glance, refreshed every two seconds:
  $ watch -n 2 mt-status
  AGENTS     3: 1 failed, 2 idle
  NAME   STATE   TASK  LAST     TOKENS     COST  NOTE
  park   idle    -       1m   1.2k/340  $0.1211  rate limited until 14:05
  quinn  failed  7       2h       10/5  $0.0100  exit
  york   idle    12      3s   2.5k/800  $0.2400
  total                      3.7k/1.1k  $0.3711  2 running, 1 rate limited

  TASKS      mt-repo: 1 pending, 1 in progress, 1 completed
  ID  STATE        OWNER  BLOCKED BY  SUBJECT
  12  in progress  york   -           Write the parser
  13  blocked      -      12          Review the parser

  MESSAGES   3 unread for lead
  UNREAD  LAST  CHANNEL
       3    1m  general

  WORKTREES  1 with work not in their base
  NAME  BRANCH   AHEAD  CHANGES  AGENT  BASE
  york  mt/york      2        1  -      main

  WATCHER    not running (start it with mt-watch; --init writes rules)

  REMINDERS  none pending

Who is held back by a rate limit, and what the team has cost so far:
  $ mt-status --json | jq -r '.agents[] | select(.rate_limit) | .name'
  $ mt-status --json | jq .totals.cost_usd

In a script, start the watcher when it is not running:
  $ mt-status --json | jq -e .watcher.running >/dev/null || mt-watch &",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess, also for a state directory that does not exist yet
2\tusage error

When a section cannot be read, the others are still shown, the section is named on standard error (mt-status: SECTION: why) and in errors, and the exit status is that of its error, as below (65 for a file that does not parse).",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-ps(1), mt-task(1), mt-channels(1), mt-worktree(1), mt-watch(1), mt-remind(1), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    names::check("reader", &args.reader)?;
    let state = args.common.state()?;
    let opts = status::Options {
        reader: args.reader,
        all_channels: args.all,
        task_list: args.list.list,
        claude_dir: args.claude_dir.filter(|p| !p.as_os_str().is_empty()),
        repo: args.repo,
    };
    let o = status::gather(&state, &opts);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &o)?;
        out.write_all(b"\n")?;
    } else {
        Screen {
            out: &mut out,
            limit: args.limit,
        }
        .show(&o)?;
    }
    out.flush()?;
    for p in &o.errors {
        exit::warn(format_args!("{}: {}", p.section, p.error));
    }
    Ok(o.errors.first().map_or(OK, |p| p.code))
}

/// The width the screen fits in.
const WIDTH: usize = 80;
/// The widest a column other than the last grows.
const NAME_MAX: usize = 20;
/// The least room the last column (notes, subjects, messages) is left.
const LAST_MIN: usize = 16;

struct Screen<'a> {
    out: &'a mut dyn Write,
    limit: usize,
}

impl Screen<'_> {
    fn show(&mut self, o: &Overview) -> io::Result<()> {
        self.agents(o)?;
        self.tasks(o)?;
        self.unread(o)?;
        self.worktrees(o)?;
        self.watcher(o)?;
        self.reminders(o)
    }

    fn heading(&mut self, title: &str, summary: &str) -> io::Result<()> {
        writeln!(
            self.out,
            "{}",
            fit(&format!("{title:<10} {summary}"), WIDTH)
        )
    }

    /// A table fitted to the screen: every column as wide as its widest
    /// cell (names at most `NAME_MAX`), the last one clipped to what is
    /// left; at most `limit` rows, the others counted on a last line.
    fn table(
        &mut self,
        cols: &[Column],
        rows: Vec<Vec<String>>,
        footer: Option<Vec<String>>,
    ) -> io::Result<()> {
        let total = rows.len();
        let shown = if self.limit == 0 {
            total
        } else {
            total.min(self.limit)
        };
        let mut rows: Vec<Vec<String>> = rows.into_iter().take(shown).collect();
        rows.extend(footer);
        let last = cols.len() - 1;
        let mut widths: Vec<usize> = (0..last)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([cols[i].title.len()])
                    .max()
                    .unwrap_or(0)
                    .min(NAME_MAX)
            })
            .collect();
        // Leave the last column some room: narrow the widest others.
        let used = |w: &[usize]| w.iter().map(|w| w + 2).sum::<usize>();
        while used(&widths) + LAST_MIN > WIDTH {
            let Some((i, _)) = widths
                .iter()
                .enumerate()
                .filter(|(i, w)| **w > cols[*i].title.len().max(4))
                .max_by_key(|(_, w)| **w)
            else {
                break;
            };
            widths[i] -= 1;
        }
        let room = WIDTH.saturating_sub(used(&widths));
        for r in rows.iter_mut() {
            for (i, w) in widths.iter().enumerate() {
                r[i] = fit(&r[i], *w);
            }
            r[last] = fit(&r[last], room);
        }
        // An empty last cell would leave the separator behind.
        let mut buf = Vec::new();
        super::write_table(&mut buf, cols, &rows)?;
        for line in String::from_utf8_lossy(&buf).lines() {
            writeln!(self.out, "{}", line.trim_end())?;
        }
        if shown < total {
            writeln!(
                self.out,
                "… and {} more (--limit 0 shows all)",
                total - shown
            )?;
        }
        Ok(())
    }

    fn agents(&mut self, o: &Overview) -> io::Result<()> {
        let t = &o.totals;
        if o.agents.is_empty() {
            return self.heading(
                "AGENTS",
                "none yet (mt-spawn NAME --prompt TEXT starts one)",
            );
        }
        let states: Vec<String> = t.states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        self.heading("AGENTS", &format!("{}: {}", t.agents, states.join(", ")))?;
        let cols = [
            Column::left("NAME", 0),
            Column::left("STATE", 0),
            Column::left("TASK", 0),
            Column::right("LAST", 0),
            Column::right("TOKENS", 0),
            Column::right("COST", 0),
            Column::left("NOTE", 0),
        ];
        let rows = o
            .agents
            .iter()
            .map(|a| {
                let note = match (&a.rate_limit, &a.error) {
                    (Some(rl), _) => {
                        let until = rl
                            .resets_at
                            .as_deref()
                            .and_then(crate::infra::time::parse_stamp)
                            .map(|t| {
                                let local = t.with_timezone(&chrono::Local);
                                format!(" until {}", local.format("%H:%M"))
                            })
                            .unwrap_or_default();
                        format!("rate limited{until}")
                    }
                    (None, Some(e)) => e.clone(),
                    (None, None) => String::new(),
                };
                vec![
                    a.name.clone(),
                    a.state.to_string(),
                    a.task.as_deref().map_or("-".into(), text),
                    age(a.last_event_at.as_deref()),
                    stream::tokens_pair(a.input_tokens, a.output_tokens),
                    format!("${:.4}", a.cost_usd),
                    note,
                ]
            })
            .collect();
        let mut running = format!("{} running", t.running);
        if t.rate_limited > 0 {
            running.push_str(&format!(", {} rate limited", t.rate_limited));
        }
        let footer = vec![
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            stream::tokens_pair(t.input_tokens, t.output_tokens),
            format!("${:.4}", t.cost_usd),
            running,
        ];
        self.table(&cols, rows, Some(footer))
    }

    fn tasks(&mut self, o: &Overview) -> io::Result<()> {
        writeln!(self.out)?;
        let Some(t) = &o.tasks else {
            return self.heading("TASKS", "could not be read");
        };
        let list = text(&t.list);
        if t.pending + t.in_progress + t.completed + t.other + t.skipped == 0 {
            return self.heading("TASKS", &format!("{list}: none (mt-task create SUBJECT)"));
        }
        let mut summary = format!(
            "{list}: {} pending, {} in progress, {} completed",
            t.pending, t.in_progress, t.completed
        );
        if t.other > 0 {
            summary.push_str(&format!(", {} other", t.other));
        }
        if t.skipped > 0 {
            summary.push_str(&format!(", {} unreadable", t.skipped));
        }
        self.heading("TASKS", &summary)?;
        if t.active.is_empty() && t.blocked.is_empty() {
            return Ok(());
        }
        let cols = [
            Column::right("ID", 0),
            Column::left("STATE", 0),
            Column::left("OWNER", 0),
            Column::left("BLOCKED BY", 0),
            Column::left("SUBJECT", 0),
        ];
        let row = |state: &str, r: &status::TaskRow| {
            let by: Vec<String> = r.blocked_by.iter().map(u64::to_string).collect();
            vec![
                r.id.to_string(),
                state.to_string(),
                r.owner.as_deref().map_or("-".into(), text),
                if by.is_empty() {
                    "-".into()
                } else {
                    fit(&by.join(","), 12)
                },
                text(&r.subject),
            ]
        };
        let rows = t
            .active
            .iter()
            .map(|r| row("in progress", r))
            .chain(t.blocked.iter().map(|r| row("blocked", r)))
            .collect();
        self.table(&cols, rows, None)
    }

    fn unread(&mut self, o: &Overview) -> io::Result<()> {
        writeln!(self.out)?;
        let reader = text(&o.reader);
        let unread: u64 = o.channels.iter().map(|c| c.unread).sum();
        if o.channels.is_empty() {
            return self.heading("MESSAGES", &format!("nothing unread for {reader}"));
        }
        self.heading("MESSAGES", &format!("{unread} unread for {reader}"))?;
        let cols = [
            Column::right("UNREAD", 0),
            Column::right("LAST", 0),
            Column::left("CHANNEL", 0),
        ];
        let rows = o
            .channels
            .iter()
            .map(|c| {
                vec![
                    c.unread.to_string(),
                    age(c.last_activity.as_deref()),
                    c.name.clone(),
                ]
            })
            .collect();
        self.table(&cols, rows, None)
    }

    fn worktrees(&mut self, o: &Overview) -> io::Result<()> {
        let Some(w) = &o.worktrees else {
            return Ok(());
        };
        writeln!(self.out)?;
        if w.unmerged.is_empty() && w.branches.is_empty() {
            return self.heading("WORKTREES", "no work outside the base branches");
        }
        self.heading(
            "WORKTREES",
            &format!(
                "{} with work not in their base{}",
                w.unmerged.len(),
                match w.branches.len() {
                    0 => String::new(),
                    n => format!(", {n} branch{} without worktree", plural_es(n)),
                }
            ),
        )?;
        let cols = [
            Column::left("NAME", 0),
            Column::left("BRANCH", 0),
            Column::right("AHEAD", 0),
            Column::right("CHANGES", 0),
            Column::left("AGENT", 0),
            Column::left("BASE", 0),
        ];
        let count = |n: Option<usize>| n.map_or("?".into(), |n| n.to_string());
        let rows = w
            .unmerged
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.branch.as_deref().map_or("(detached)".into(), text),
                    count(s.ahead),
                    if s.missing {
                        "missing".into()
                    } else {
                        s.changes.len().to_string()
                    },
                    if s.running { "running" } else { "-" }.into(),
                    s.base.as_deref().map_or("-".into(), short_ref),
                ]
            })
            .chain(w.branches.iter().map(|b| {
                vec![
                    "-".into(),
                    text(&b.name),
                    count(b.unmerged),
                    "-".into(),
                    "-".into(),
                    short_ref(&b.base),
                ]
            }))
            .collect();
        self.table(&cols, rows, None)
    }

    fn watcher(&mut self, o: &Overview) -> io::Result<()> {
        writeln!(self.out)?;
        let w = &o.watcher;
        let line = match (w.running, w.pid) {
            (true, Some(pid)) => format!("running (pid {pid})"),
            (true, None) => "running".into(),
            (false, _) => "not running (start it with mt-watch; --init writes rules)".into(),
        };
        self.heading("WATCHER", &line)
    }

    fn reminders(&mut self, o: &Overview) -> io::Result<()> {
        writeln!(self.out)?;
        let Some(r) = &o.reminders else {
            return self.heading("REMINDERS", "could not be read");
        };
        if r.pending == 0 {
            return self.heading("REMINDERS", "none pending");
        }
        self.heading(
            "REMINDERS",
            &format!("{} due, {} pending", r.due.len(), r.pending),
        )?;
        if r.due.is_empty() {
            return Ok(());
        }
        let cols = [
            Column::right("ID", 0),
            Column::left("DUE", 0),
            Column::left("TO", 0),
            Column::left("MESSAGE", 0),
        ];
        let rows = r
            .due
            .iter()
            .map(|d| {
                let due = match (&d.stage, &d.reminder.when) {
                    (Stage::Firing, _) => "firing".into(),
                    (_, When::At(t)) => format!("{} ago", age(Some(t))),
                    (_, When::AllTasksDone { .. }) => "tasks done".into(),
                    (_, When::AllWorkMerged { .. }) => "work merged".into(),
                };
                vec![
                    d.reminder.id.clone(),
                    due,
                    text(&d.reminder.to),
                    text(&d.reminder.message),
                ]
            })
            .collect();
        self.table(&cols, rows, None)
    }
}

/// Text from a file, safe for the terminal and on one line.
fn text(s: &str) -> String {
    stream::clip(&names::printable(s), usize::MAX)
}

/// At most `n` characters of `s` (clipped with `…`).
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        stream::clip(s, n)
    }
}

fn plural_es(n: usize) -> &'static str {
    if n == 1 { "" } else { "es" }
}
