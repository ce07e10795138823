//! mt-log: an agent's transcript, from its events.

use anyhow::{Context, Result};
use clap::Parser;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::agent::{self, AgentDir};
use crate::infra::wake::{Follow, Woke};
use crate::stream;

/// Show an agent's transcript
///
/// Prints the agent's events as a readable transcript: assistant text as
/// is, one line per tool call (→) and tool result (←), one line per turn
/// result with tokens and cost, messages sent to the agent (>>), and the
/// supervisor's start and exit lines, on lines of their own.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Keep printing new events until the agent ends
    #[arg(short, long)]
    pub follow: bool,

    /// Print the events as stored (JSON Lines)
    #[arg(long)]
    pub raw: bool,

    #[command(flatten)]
    pub common: Common,

    /// Agent name
    #[arg(value_name = "NAME")]
    pub name: String,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-log",
        &[
            (
                "EXAMPLES",
                "Watch an agent work:
  $ mt-log -f york

Its tool calls only:
  $ mt-log york | grep '^→'

Cost of every turn, with jq:
  $ mt-log --raw york | jq -r 'select(.type == \"result\") | .total_cost_usd'",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tthe agent does not exist
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            ("SEE ALSO", "mt-spawn(1), mt-ps(1), mt-files(5), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// How often a follower looks again without a change notification.
const RESCAN: Duration = Duration::from_secs(1);

struct Tail {
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Hand every complete new line to `f`.
    fn read(&mut self, a: &AgentDir, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<()> {
        if self.file.is_none() {
            match crate::infra::fsutil::open_read(&a.events_path()) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).context("cannot open events.jsonl"),
            }
        }
        let file = self.file.as_mut().expect("open");
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        for line in done.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            f(line)?;
        }
        Ok(())
    }
}

fn emit(out: &mut impl Write, raw: bool, line: &[u8]) -> io::Result<()> {
    if raw {
        out.write_all(line)?;
        out.write_all(b"\n")
    } else {
        out.write_all(stream::render(line).as_bytes())
    }
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let a = agent::existing(&state, &args.name)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let raw = args.raw;
    let mut tail = Tail {
        file: None,
        offset: 0,
        partial: Vec::new(),
    };
    tail.read(&a, &mut |l| emit(&mut out, raw, l))?;
    out.flush()?;
    if !args.follow {
        return Ok(0);
    }
    let waker = Follow::new("mt-log");
    waker.watch_dir(&a.dir)?;
    let stdout = io::stdout();
    loop {
        // Test liveness before reading, so nothing written before the end
        // is missed.
        let running = a.running()?;
        tail.read(&a, &mut |l| emit(&mut out, raw, l))?;
        out.flush()?;
        if !running {
            return Ok(0);
        }
        if waker.wait(RESCAN, Some(stdout.as_fd()))? == Woke::OutputClosed {
            return Ok(0);
        }
    }
}
