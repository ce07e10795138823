//! mt-channels: list channels with their size, last activity and, for a
//! reader, how much is unread; archive and unarchive them.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::channel::{self, Listing};
use crate::cursor;
use crate::exit::{self, NO, OK};
use crate::names;

/// List, archive and unarchive channels
///
/// Without a command: one line per channel that is not archived, with its
/// name, number of records, time of the last record and, with a reader
/// identity, how many records that reader has not read. archive and
/// unarchive take channels out of that listing and put them back.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(flatten)]
    pub reader: super::AsArg,

    /// One JSON object per channel
    #[arg(long)]
    pub json: bool,

    /// List only the archived channels
    #[arg(long, conflicts_with = "all")]
    pub archived: bool,

    /// List every channel, archived ones too
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Archive channels: posts are refused until unarchived; reading, cursors
    /// and seqs are untouched
    Archive {
        /// Channels to archive
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Unarchive channels: posts are taken again, numbered on from the last
    /// seq
    Unarchive {
        /// Channels to unarchive
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-channels",
        &[
            (
                "COMMANDS",
                "archive NAME...\tArchive each channel: under its append lock, write the marker channels/NAME/ARCHIVED. A post that held the lock first is in the channel; every later post is refused (mt-post exits 69) until the channel is unarchived. Nothing else changes: segments, seqs and cursors stay as they are, mt-read -c NAME reads it as before, and agents still get what they had not read. The channel leaves the default listing and its unread count with it. Archiving an archived channel changes nothing.
unarchive NAME...\tRemove the marker, under the same lock: the next post gets the next seq, and every reader's cursor goes on where it was. Unarchiving a channel that is not archived changes nothing.",
            ),
            (
                "EXAMPLES",
                "Channels with something unread for york:
  $ mt-channels --as york --json | jq -r 'select(.unread > 0) | .name'

Put away a finished feature's channel, and look at it later:
  $ mt-channels archive feature-x
  $ mt-channels --archived
  $ mt-read -c feature-x --last 20

Archive every channel quiet for a week (a cron or mt-watch job):
  $ mt-channels --json | jq -r --arg t \"$(date -u -d '7 days ago' +%FT%TZ)\" 'select(.last_activity < $t) | .name' | xargs -r mt-channels archive",
            ),
            (
                "OUTPUT",
                "The table has the columns CHANNEL, RECORDS, LAST (time of the last record), UNREAD with a reader identity, and ARCHIVED (when it was archived, or -) with --archived or --all. Each JSON object has name, records, last_seq, last_activity, archived (true or false), archived_at when archived, and unread with a reader identity.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tarchive or unarchive: a named channel does not exist (the others are done)
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "FILES",
                "channels/NAME/ARCHIVED\tthe marker of an archived channel (see mt-files(5))",
            ),
            ("SEE ALSO", "mt-read(1), mt-post(1), mt-files(5)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    summary: channel::Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    unread: Option<u64>,
}

pub fn run(args: Args) -> Result<u8> {
    match &args.cmd {
        Some(Cmd::Archive { names }) => each(&args, names, channel::archive::archive),
        Some(Cmd::Unarchive { names }) => each(&args, names, channel::archive::unarchive),
        None => list(&args),
    }
}

/// Archive or unarchive every named channel; the names are all checked
/// before any is touched, and a missing channel does not stop the others.
fn each(
    args: &Args,
    list: &[String],
    act: fn(&crate::statedir::StateDir, &str) -> Result<bool>,
) -> Result<u8> {
    for n in list {
        names::check("channel", n)?;
    }
    let state = args.common.state()?;
    let mut code = OK;
    for n in list {
        match act(&state, n) {
            Ok(_) => {}
            Err(e) if exit::code_of(&e) == NO => {
                exit::warn(format_args!("{e:#}"));
                code = NO;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(code)
}

fn list(args: &Args) -> Result<u8> {
    if let Some(r) = &args.reader.name {
        names::check("reader", r)?;
    }
    let which = if args.all {
        Listing::All
    } else if args.archived {
        Listing::Archived
    } else {
        Listing::Active
    };
    let state = args.common.state()?;
    let mut rows = Vec::new();
    for name in channel::list_channels_by(&state, which)? {
        let summary = channel::summarize(&state, &name)?;
        let unread = match &args.reader.name {
            Some(r) => {
                let seen = cursor::load(&state, r, &name)?.map(|p| p.seq).unwrap_or(0);
                Some(summary.last_seq.saturating_sub(seen))
            }
            None => None,
        };
        rows.push(Row { summary, unread });
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        for r in &rows {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
    } else if !rows.is_empty() {
        let mut cols = vec![
            super::Column::left("CHANNEL", 7),
            super::Column::right("RECORDS", 8),
            super::Column::left("LAST", 24),
        ];
        if args.reader.name.is_some() {
            cols.push(super::Column::right("UNREAD", 7));
        }
        let show_archived = which != Listing::Active;
        if show_archived {
            cols.push(super::Column::left("ARCHIVED", 0));
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let s = &r.summary;
                let mut c = vec![
                    s.name.clone(),
                    s.records.to_string(),
                    s.last_activity.clone().unwrap_or_else(|| "-".into()),
                ];
                c.extend(r.unread.map(|u| u.to_string()));
                if show_archived {
                    c.push(match (&s.archived_at, s.archived) {
                        (Some(t), _) => t.clone(),
                        (None, true) => "yes".into(),
                        (None, false) => "-".into(),
                    });
                }
                c
            })
            .collect();
        super::write_table(&mut out, &cols, &cells)?;
    }
    out.flush()?;
    Ok(0)
}
