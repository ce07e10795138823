//! mt-post: append one message (or one per input line) to a channel.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::channel::{Appender, DEFAULT_MAX_MESSAGE, Draft, WriteOptions};
use crate::exit::{self, DATAERR, fail};
use crate::names;
use crate::record::TYPES;

/// Append a message to a channel
///
/// The message is the arguments joined by single spaces; with no arguments,
/// all of standard input is one message (one trailing newline is dropped).
/// Words written @name become the record's mentions.
#[derive(Debug, Parser)]
#[command(name = "mt-post", version)]
pub struct Args {
    /// Channel to post to (created by its first post)
    #[arg(
        short,
        long,
        env = "MT_CHANNEL",
        default_value = "general",
        value_name = "NAME"
    )]
    pub channel: String,

    /// Sender name
    #[arg(long, env = "MT_AGENT", default_value = "lead", value_name = "NAME")]
    pub from: String,

    /// Record type
    #[arg(long = "type", default_value = "text", value_name = "TYPE",
          value_parser = clap::builder::PossibleValuesParser::new(TYPES))]
    pub kind: String,

    /// Id of the record this one answers
    #[arg(long, value_name = "ID")]
    pub reply_to: Option<String>,

    /// Claude Code session id to store with the record
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,

    /// A JSON object stored as the record's meta field
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,

    /// Every non-empty line of standard input is its own message (one lock,
    /// one sync)
    #[arg(long, conflicts_with = "message")]
    pub lines: bool,

    /// Print each stored record as one JSON line
    #[arg(long)]
    pub json: bool,

    /// Largest message content in bytes
    #[arg(long, env = "MT_MAX_MESSAGE_BYTES", value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE)]
    pub max_bytes: usize,

    /// Segment roll-over size in bytes
    #[arg(long, env = "MT_SEGMENT_BYTES", value_name = "BYTES")]
    pub segment_bytes: Option<u64>,

    /// Do not wait for the data to reach the disk (same as MT_FSYNC=0)
    #[arg(long)]
    pub no_sync: bool,

    #[command(flatten)]
    pub common: Common,

    /// The message; standard input when absent
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-post",
        &[
            (
                "EXAMPLES",
                "Post as the lead to the default channel, then as an agent to another channel:
  $ mt-post '@york can you review the parser?'
  $ MT_AGENT=york mt-post -c review --type status 'reviewing'

Post a build log as one message, and learn its seq:
  $ make 2>&1 | mt-post --json --type error | jq .seq

Import many messages at once:
  $ cut -f2 notes.tsv | mt-post --lines",
            ),
            (
                "EXIT STATUS",
                "0\tthe message is stored (and synced unless MT_FSYNC=0)
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_DIR\tstate directory
MT_CHANNEL\tdefault channel (general)
MT_AGENT\tdefault sender (lead)
MT_FSYNC\t0 skips the data sync
MT_SEGMENT_BYTES\tsegment roll-over size (32 MiB)
MT_MAX_MESSAGE_BYTES\tlargest message (1 MiB)",
            ),
            ("SEE ALSO", "mt-read(1), mt-channels(1), mt-files(5), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    exit::main("mt-post", || run(args))
}

fn check_content(content: &str, max: usize) -> Result<()> {
    if content.trim().is_empty() {
        return Err(fail(DATAERR, "refusing an empty message"));
    }
    if content.len() > max {
        return Err(fail(
            DATAERR,
            format!(
                "message is {} bytes, more than the limit of {max} (--max-bytes, MT_MAX_MESSAGE_BYTES)",
                content.len()
            ),
        ));
    }
    Ok(())
}

fn read_stdin() -> Result<String> {
    let mut buf = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    String::from_utf8(buf).map_err(|_| fail(DATAERR, "standard input is not valid UTF-8"))
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel)?;
    names::check("sender", &args.from)?;
    if let Some(id) = &args.reply_to
        && (id.is_empty()
            || id.len() > 128
            || id.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(fail(
            DATAERR,
            format!("invalid --reply-to id {}", names::quote(id)),
        ));
    }
    let meta = match &args.meta {
        None => None,
        Some(m) => match serde_json::from_str::<serde_json::Value>(m) {
            Ok(v @ serde_json::Value::Object(_)) => Some(v),
            _ => return Err(fail(DATAERR, "--meta must be a JSON object")),
        },
    };

    let contents: Vec<String> = if args.lines {
        read_stdin()?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    } else if args.message.is_empty() {
        let mut s = read_stdin()?;
        if s.ends_with('\n') {
            s.pop();
        }
        vec![s]
    } else {
        vec![args.message.join(" ")]
    };
    if args.lines && contents.is_empty() {
        return Err(fail(DATAERR, "no non-empty lines on standard input"));
    }
    // Check everything before writing anything: a bad line loses nothing.
    for (i, c) in contents.iter().enumerate() {
        check_content(c, args.max_bytes).with_context(|| {
            if args.lines {
                format!("line {} of the input", i + 1)
            } else {
                "the message".into()
            }
        })?;
    }

    let mut opts = WriteOptions::from_env()?;
    if let Some(n) = args.segment_bytes {
        if n == 0 {
            return Err(fail(DATAERR, "--segment-bytes must be positive"));
        }
        opts.segment_bytes = n;
    }
    if args.no_sync {
        opts.fsync = false;
    }
    let state = args.common.state()?;
    let mut app = Appender::open(&state, &args.channel, opts)?;
    let mut draft = Draft {
        from: args.from.clone(),
        kind: args.kind.clone(),
        content: String::new(),
        reply_to: args.reply_to.clone(),
        session_id: args.session_id.clone(),
        meta,
    };
    let mut stored = Vec::new();
    for c in contents {
        draft.content = c;
        let line = app.append(&draft)?;
        if args.json {
            stored.push(line);
        }
    }
    app.commit()?;
    if args.json {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for line in stored {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(0)
}
