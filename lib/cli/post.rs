//! mt-post: append one message (or one per input line) to a channel.

use anyhow::{Context, Result};
use clap::Parser;
use std::fs::{self, File};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::channel::{Appender, DEFAULT_MAX_MESSAGE, Draft, Reader, WriteOptions};
use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::fsutil;
use crate::names;
use crate::record::TYPES;
use crate::statedir::StateDir;

/// Append a message to a channel
///
/// The message is the arguments joined by single spaces; with no arguments,
/// all of standard input is one message (one trailing newline is dropped).
/// Words written @name become the record's mentions.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub channel: super::ChannelArg,

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
    pub segment_bytes: Option<String>,

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
                "LINES",
                "With --lines, every line of standard input is checked before anything is written: when one is too long or the input is not UTF-8, nothing is stored and the error names the line (a line over the limit is refused even when it is blank). A CR before the newline is not part of the message. Memory stays small whatever the size of the input: past 1 MiB it waits in an unlinked temporary file in the state directory. All the lines are then appended under one lock, so their seqs are consecutive, in writes of whole records, and synced once. With --json, the stored records are read back from the channel once synced.",
            ),
            (
                "EXIT STATUS",
                "0\tthe message is stored (and synced unless MT_FSYNC=0)
2\tusage error
69\tthe channel is archived: nothing is stored (mt-channels unarchive NAME takes posts again)",
            ),
            ("", super::EXIT_COMMON),
            ("ENVIRONMENT", "MT_FSYNC\t0 skips the data sync"),
            ("SEE ALSO", "mt-read(1), mt-channels(1), mt-files(5), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
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

fn not_utf8() -> anyhow::Error {
    fail(DATAERR, "standard input is not valid UTF-8")
}

/// Input held in memory before it spills to a temporary file.
const SPOOL_MEMORY: usize = 1 << 20;

/// The messages of `--lines`, checked in full before any is written (a bad
/// line anywhere writes nothing) yet held in constant memory: past
/// `SPOOL_MEMORY` they go to an unlinked temporary file in the state
/// directory, one message per line.
struct Spool {
    mem: Vec<u8>,
    file: Option<io::BufWriter<File>>,
    count: u64,
}

impl Spool {
    /// Read and check every line of `input`.
    fn read(
        input: &mut impl BufRead,
        max: usize,
        state: impl FnOnce() -> Result<StateDir>,
    ) -> Result<Spool> {
        let mut spool = Spool {
            mem: Vec::new(),
            file: None,
            count: 0,
        };
        let mut state = Some(state);
        let mut line = Vec::new();
        let mut number = 0u64;
        while let Some(len) = read_line(input, &mut line, max)? {
            number += 1;
            let content = match check_line(&line, len, max) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => return Err(e.context(format!("line {number} of the input"))),
            };
            spool.push(content.as_bytes(), &mut state)?;
        }
        if spool.count == 0 {
            return Err(fail(DATAERR, "no non-empty lines on standard input"));
        }
        Ok(spool)
    }

    fn push(
        &mut self,
        content: &[u8],
        state: &mut Option<impl FnOnce() -> Result<StateDir>>,
    ) -> Result<()> {
        self.count += 1;
        if self.file.is_none() && self.mem.len() + content.len() >= SPOOL_MEMORY {
            let resolve = state.take().expect("resolved once");
            let mut w = io::BufWriter::with_capacity(64 << 10, spool_file(&resolve()?)?);
            w.write_all(&self.mem)
                .context("cannot write the spool file")
                .code(CANTCREAT)?;
            self.mem = Vec::new();
            self.file = Some(w);
        }
        let out: &mut dyn Write = match &mut self.file {
            Some(w) => w,
            None => &mut self.mem,
        };
        out.write_all(content)
            .and_then(|_| out.write_all(b"\n"))
            .context("cannot write the spool file")
            .code(CANTCREAT)?;
        Ok(())
    }

    /// The messages, in order, one per line.
    fn into_reader(self) -> Result<Box<dyn BufRead>> {
        Ok(match self.file {
            None => Box::new(io::Cursor::new(self.mem)),
            Some(w) => {
                let mut f = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("cannot write the spool file")
                    .code(CANTCREAT)?;
                f.seek(SeekFrom::Start(0))?;
                Box::new(io::BufReader::with_capacity(64 << 10, f))
            }
        })
    }
}

/// A temporary file in the state directory (the disk that will hold the
/// records anyway), unlinked at once so that nothing is left behind.
fn spool_file(state: &StateDir) -> Result<File> {
    state.ensure()?;
    let (f, tmp) = fsutil::create_temp(&state.root().join("post-spool"), |p| {
        fsutil::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(p)
    })
    .context("cannot create a spool file")
    .code(CANTCREAT)?;
    let _ = fs::remove_file(&tmp);
    Ok(f)
}

/// Read one line into `line` (without its newline), keeping at most
/// `max + 2` bytes of it: a longer line is refused anyway. Returns the
/// line's full length, or `None` at the end of the input.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> Result<Option<usize>> {
    line.clear();
    let mut len = 0usize;
    let mut any = false;
    let mut last = 0u8;
    loop {
        let buf = input.fill_buf().context("cannot read standard input")?;
        if buf.is_empty() {
            return Ok(any.then_some(len));
        }
        any = true;
        let (part, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let keep = (max + 2).saturating_sub(line.len()).min(part.len());
        line.extend_from_slice(&part[..keep]);
        len += part.len();
        if let Some(&b) = part.last() {
            last = b;
        }
        let used = part.len() + usize::from(done);
        input.consume(used);
        if done {
            // A CRLF ending is one line ending.
            return Ok(Some(if last == b'\r' { len - 1 } else { len }));
        }
    }
}

/// The message of one input line: `None` for a blank line, an error for
/// one that is too long or not UTF-8.
fn check_line(line: &[u8], len: usize, max: usize) -> Result<Option<&str>> {
    if len > max {
        return Err(fail(
            DATAERR,
            format!(
                "message is {len} bytes, more than the limit of {max} (--max-bytes, MT_MAX_MESSAGE_BYTES)"
            ),
        ));
    }
    let content = std::str::from_utf8(&line[..len]).map_err(|_| not_utf8())?;
    Ok((!content.trim().is_empty()).then_some(content))
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel.channel)?;
    names::check("sender", &args.from)?;
    if let Some(id) = &args.reply_to {
        crate::record::check_id("--reply-to", id)?;
    }
    let meta = match &args.meta {
        None => None,
        Some(m) => match serde_json::from_str::<serde_json::Value>(m) {
            Ok(v @ serde_json::Value::Object(_)) => Some(v),
            _ => return Err(fail(DATAERR, "--meta must be a JSON object")),
        },
    };
    let draft = Draft {
        from: args.from.clone(),
        kind: args.kind.clone(),
        content: String::new(),
        reply_to: args.reply_to.clone(),
        session_id: args.session_id.clone(),
        meta,
    };
    if args.lines {
        return post_lines(&args, draft);
    }

    let content = if args.message.is_empty() {
        let mut s = read_stdin()?;
        if s.ends_with('\n') {
            s.pop();
        }
        s
    } else {
        args.message.join(" ")
    };
    check_content(&content, args.max_bytes).context("the message")?;
    let opts = write_options(&args)?;
    let state = args.common.state()?;
    let mut app = Appender::open(&state, &args.channel.channel, opts)?;
    let line = app.append(&Draft { content, ..draft })?;
    app.commit()?;
    if args.json {
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(0)
}

fn write_options(args: &Args) -> Result<WriteOptions> {
    let mut opts = WriteOptions::from_env()?;
    if let Some(n) = args.segment_bytes.as_deref().filter(|v| !v.is_empty()) {
        opts.segment_bytes = crate::channel::parse_segment_bytes(n)?;
    }
    if args.no_sync {
        opts.fsync = false;
    }
    Ok(opts)
}

/// `--lines`: check every line first (nothing is written when one is bad),
/// then append them all under one lock, in batches of whole records, with
/// one sync at the end. Memory stays constant whatever the input size.
fn post_lines(args: &Args, mut draft: Draft) -> Result<u8> {
    let spool = {
        let mut input = io::BufReader::with_capacity(64 << 10, io::stdin().lock());
        Spool::read(&mut input, args.max_bytes, || args.common.state())?
    };
    let opts = write_options(args)?;
    let state = args.common.state()?;
    let mut app = Appender::open(&state, &args.channel.channel, opts)?;
    let first = app.next_seq();
    let mut messages = spool.into_reader()?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if messages.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line.pop();
        draft.content = String::from_utf8(std::mem::take(&mut line)).map_err(|_| not_utf8())?;
        app.append(&draft)?;
        line = std::mem::take(&mut draft.content).into_bytes();
    }
    let last = app.next_seq() - 1;
    app.commit()?;
    if args.json {
        print_stored(&state, &args.channel.channel, first, last)?;
    }
    Ok(0)
}

/// Print the records `first..=last` as stored, read back from the channel
/// (they were written and synced; holding them all would cost memory).
fn print_stored(state: &StateDir, channel: &str, first: u64, last: u64) -> Result<()> {
    let mut out = io::BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut reader = Reader::after_seq(state, channel, first - 1)?;
    reader.read_available(&mut |it| {
        if it.view.seq > last {
            return Ok(false);
        }
        out.write_all(it.line)?;
        out.write_all(b"\n")?;
        Ok(it.view.seq < last)
    })?;
    out.flush()?;
    Ok(())
}
