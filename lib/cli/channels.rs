//! mt-channels: list channels with their size, last activity and, for a
//! reader, how much is unread.

use anyhow::Result;
use clap::Parser;
use std::io::{self, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::channel;
use crate::cursor;
use crate::names;

/// List channels
///
/// One line per channel: name, number of records, time of the last record
/// and, with a reader identity, how many records that reader has not read.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub reader: super::AsArg,

    /// One JSON object per channel
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-channels",
        &[
            (
                "EXAMPLES",
                "Channels with something unread for york:
  $ mt-channels --as york --json | jq -r 'select(.unread > 0) | .name'",
            ),
            ("EXIT STATUS", "0\tsuccess\n2\tusage error"),
            ("", super::EXIT_COMMON),
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
    if let Some(r) = &args.reader.name {
        names::check("reader", r)?;
    }
    let state = args.common.state()?;
    let mut rows = Vec::new();
    for name in channel::list_channels(&state)? {
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
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut c = vec![
                    r.summary.name.clone(),
                    r.summary.records.to_string(),
                    r.summary
                        .last_activity
                        .clone()
                        .unwrap_or_else(|| "-".into()),
                ];
                c.extend(r.unread.map(|u| u.to_string()));
                c
            })
            .collect();
        super::write_table(&mut out, &cols, &cells)?;
    }
    out.flush()?;
    Ok(0)
}
