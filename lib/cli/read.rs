//! mt-read: print a channel's messages, from a reader's cursor or by
//! selection, once or following new ones.

use anyhow::Result;
use clap::Parser;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::channel::{self, Item, Position, Reader};
use crate::cursor;
use crate::exit::{NO, OK};
use crate::infra::wake::{Follow, Woke};
use crate::names;
use crate::record;
use crate::statedir::StateDir;

/// Print a channel's messages
///
/// With a reader identity (--as or MT_AGENT), prints what that reader has not
/// read yet on the channel and moves its cursor past it. Without one, prints
/// the whole channel. --all, --last and --since select records without
/// touching any cursor.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub channel: super::ChannelArg,

    #[command(flatten)]
    pub reader: super::AsArg,

    /// Print unread records but leave the cursor where it is
    #[arg(long)]
    pub peek: bool,

    /// Print every record, touching no cursor
    #[arg(long, group = "select")]
    pub all: bool,

    /// Print the last N records, touching no cursor
    #[arg(long, value_name = "N", group = "select")]
    pub last: Option<usize>,

    /// Print the records after seq SEQ, touching no cursor
    #[arg(long, value_name = "SEQ", group = "select")]
    pub since: Option<u64>,

    /// Keep printing new records as they arrive
    #[arg(short, long, conflicts_with = "quiet")]
    pub follow: bool,

    /// Print records exactly as stored, one JSON object per line
    #[arg(long)]
    pub json: bool,

    /// Print nothing; exit 0 when there is something to read, 1 when not
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-read",
        &[
            (
                "EXAMPLES",
                "Read what is new for you, then watch for mentions of you:
  $ MT_AGENT=york mt-read
  $ mt-read --follow --as york | grep --line-buffered @york

Senders of the last 100 messages, with jq:
  $ mt-read --last 100 --json | jq -r .from | sort | uniq -c

In a script, act only when something is unread:
  $ mt-read -q --as lead && notify-send 'mt: new messages'",
            ),
            (
                "OUTPUT",
                "The default form is one line per message: local date and time, #seq, sender, the type in brackets unless it is text, and the content; further lines of the content are indented by four spaces. With --json each record is printed exactly as stored.

Malformed lines are skipped with a warning on standard error. A record still being written is not shown until it is complete.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess; with -q, there is something to read
1\twith -q, there is nothing to read
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            ("SEE ALSO", "mt-post(1), mt-channels(1), mt-files(5), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// How often a follower rescans even without a change notification.
const RESCAN: Duration = Duration::from_secs(1);

struct Printer<W: Write> {
    out: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, it: &Item<'_>) -> io::Result<()> {
        if self.json {
            self.out.write_all(it.line)?;
            self.out.write_all(b"\n")
        } else {
            record::render_text(&it.view, &mut self.out)
        }
    }
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel.channel)?;
    let state = args.common.state()?;
    let selecting = args.all || args.last.is_some() || args.since.is_some();
    let reader = match &args.reader.name {
        Some(r) if !selecting => Some(names::check("reader", r)?.to_string()),
        _ => None,
    };
    let mut p = Printer {
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        json: args.json,
    };
    let chan_dir = state.channel(&args.channel.channel);
    if !chan_dir.is_dir() {
        if !args.follow {
            return Ok(if args.quiet { NO } else { OK });
        }
        if !wait_for_dir(&chan_dir, io::stdout().as_fd()) {
            return Ok(OK);
        }
    }
    match reader {
        Some(agent) => read_cursor(&state, &args, &agent, &mut p),
        None => read_selection(&state, &args, &mut p),
    }
}

/// Poll until a channel exists (inotify cannot watch what is not there),
/// watching `output` meanwhile: false when its reader went away.
fn wait_for_dir(dir: &std::path::Path, output: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    while !dir.is_dir() {
        let mut fds = [PollFd::new(output, PollFlags::empty())];
        let _ = poll(&mut fds, PollTimeout::from(50u8));
        if fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
        {
            return false;
        }
    }
    true
}

fn read_selection<W: Write>(state: &StateDir, args: &Args, p: &mut Printer<W>) -> Result<u8> {
    let name = &args.channel.channel;
    let mut reader = if let Some(n) = args.last {
        let end = channel::end_position(state, name)?;
        if args.quiet {
            return Ok(if n > 0 && end.seq > 0 { OK } else { NO });
        }
        for line in channel::tail(state, name, n)? {
            if let Some(view) = record::parse(&line)
                && view.seq <= end.seq
            {
                p.print(&Item { line: &line, view })?;
            }
        }
        p.out.flush()?;
        Reader::resume(state, name, end)?
    } else if let Some(seq) = args.since {
        Reader::after_seq(state, name, seq)?
    } else {
        Reader::from_start(state, name)?
    };
    if args.quiet {
        let n = reader.read_available(&mut |_| Ok(false))?;
        return Ok(if n > 0 { OK } else { NO });
    }
    reader.read_available(&mut |it| p.print(it).map(|_| true).map_err(Into::into))?;
    p.out.flush()?;
    if args.follow {
        follow(state, name, |_| {
            reader.read_available(&mut |it| p.print(it).map(|_| true).map_err(Into::into))?;
            p.out.flush()?;
            Ok(())
        })?;
    }
    Ok(OK)
}

fn read_cursor<W: Write>(
    state: &StateDir,
    args: &Args,
    agent: &str,
    p: &mut Printer<W>,
) -> Result<u8> {
    let name = &args.channel.channel;
    let mut reader: Option<(Reader, Position)> = None;
    // One batch: under the agent's lock, start from the saved cursor (another
    // reader as the same agent may have moved it), print, flush, then save.
    let mut batch = |p: &mut Printer<W>, quiet: bool| -> Result<u64> {
        let _lock = cursor::lock_agent(state, agent)?;
        let saved = cursor::load(state, agent, name)?.unwrap_or_default();
        let r = match reader.take() {
            Some((r, at)) if at == saved => r,
            _ => Reader::resume(state, name, saved)?,
        };
        let mut r = r;
        let n = if quiet {
            r.read_available(&mut |_| Ok(false))?
        } else {
            let n = r.read_available(&mut |it| p.print(it).map(|_| true).map_err(Into::into))?;
            p.out.flush()?;
            n
        };
        let pos = r.position();
        if n > 0 && !args.peek && !quiet {
            cursor::save(state, agent, name, pos)?;
        }
        reader = Some((r, if args.peek { saved } else { pos }));
        Ok(n)
    };
    if args.quiet {
        return Ok(if batch(p, true)? > 0 { OK } else { NO });
    }
    batch(p, false)?;
    if args.follow {
        follow(state, name, |_| batch(p, false).map(|_| ()))?;
    }
    Ok(OK)
}

/// Call `step` whenever the channel may have grown, until our output is
/// closed or a write to it fails.
fn follow(state: &StateDir, name: &str, mut step: impl FnMut(Woke) -> Result<()>) -> Result<()> {
    let waker = Follow::new("mt-read");
    waker.watch_dir(&state.channel(name))?;
    let stdout = io::stdout();
    loop {
        let woke = waker.wait(RESCAN, Some(stdout.as_fd()))?;
        if woke == Woke::OutputClosed {
            return Ok(());
        }
        step(woke)?;
    }
}
