//! mt-read: print a channel's messages, from a reader's cursor or by
//! selection, once or following new ones.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Parser;
use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::channel::{self, Item, Position, Reader};
use crate::cursor;
use crate::exit::{NO, OK, fail};
use crate::infra::time;
use crate::infra::wake::{Follow, Woke};
use crate::names;
use crate::record;
use crate::statedir::StateDir;

/// Print a channel's messages
///
/// With a reader identity (--as or MT_AGENT), prints what that reader has not
/// read yet on the channel and moves its cursor past it. Without one, prints
/// the whole channel. --all, --last, --since and --thread select records
/// without touching any cursor.
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

    /// Print the records after seq N (a number), or from the first one
    /// written within DURATION (90s, 30m, 2h, 1d) or at or after TIME (RFC
    /// 3339, or HH:MM today), touching no cursor
    #[arg(long, value_name = "N|DURATION|TIME", group = "select", value_parser = since)]
    pub since: Option<Since>,

    /// Print the record ID (or the record with seq N) and its replies, and
    /// theirs, in seq order, touching no cursor
    #[arg(long, value_name = "ID|N", group = "select")]
    pub thread: Option<String>,

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
  $ mt-read -q --as lead && notify-send 'mt: new messages'

What was said in the last two hours, and since nine this morning:
  $ mt-read --since 2h
  $ mt-read -c review --since 09:00

A question and every answer to it (ids are in the JSON form):
  $ mt-read --last 5 --json | jq -r '\"\\(.id) \\(.content)\"'
  $ mt-read --thread 01M7ZW3QYZXVHP102D51VXHDA4",
            ),
            (
                "OUTPUT",
                "The default form is one line per message: local date and time, #seq, sender (sender@host for a record mt-sync brought from another host), the type in brackets unless it is text, and the content; further lines of the content are indented by four spaces. With --json each record is printed exactly as stored.

Malformed lines are skipped with a warning on standard error. A record still being written is not shown until it is complete.",
            ),
            (
                "SELECTING",
                "--since N prints the records with a seq greater than N. --since DURATION or --since TIME prints from the first record whose timestamp is at or after that time (now minus DURATION), then every record after it. The start is found without reading the whole channel: by the first record of each segment, then by bisection within one, since records are appended in time order. If a clock was set back while records were written, that order has exceptions: the start is still a record at or after the time, but near it records written before the time may be shown and records written after it left out; records after the start are all shown, in seq order.

--thread ID prints the record with that id, then every record whose reply_to is the id of a record already printed: the replies, the replies to them, and so on, in seq order (replies are posted with mt-post --reply-to ID). A number instead of an id names the root by its seq. Only the channel read (-c) is searched. With --follow, later replies are printed as they arrive.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess; with -q, there is something to read
1\twith -q, there is nothing to read; with --thread, the channel holds no such record
2\tusage error, including a --since that is neither a seq, a duration nor a time",
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

/// Where `--since` starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Since {
    /// After this seq.
    Seq(u64),
    /// From the first record written at or after this time.
    Time(DateTime<Utc>),
}

/// Parse `--since`: a bare number is a seq (as it always was), then a
/// duration back from now, then a point in time.
pub fn since(s: &str) -> Result<Since, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(Since::Seq)
            .map_err(|_| format!("seq {t} is too large"));
    }
    if let Ok(d) = time::parse_duration(t) {
        let back = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_sub_signed(back)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        return Ok(Since::Time(at));
    }
    time::parse_time(t).map(Since::Time).map_err(|_| {
        format!(
            "{s:?} is not a seq (42), a duration (90s, 30m, 2h, 1d) or a time (RFC 3339, HH:MM)"
        )
    })
}

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
    let selecting =
        args.all || args.last.is_some() || args.since.is_some() || args.thread.is_some();
    if let Some(id) = &args.thread {
        record::check_id("--thread", id)?;
    }
    let reader = match &args.reader.name {
        Some(r) if !selecting => Some(names::check("reader", r)?.to_string()),
        _ => None,
    };
    let mut p = Printer {
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        json: args.json,
    };
    let chan_dir = state.channel(&args.channel.channel);
    // A thread's root must exist, so --thread goes on to say it does not.
    if !chan_dir.is_dir() && args.thread.is_none() {
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
    } else if let Some(Since::Seq(seq)) = args.since {
        Reader::after_seq(state, name, seq)?
    } else if let Some(Since::Time(t)) = args.since {
        Reader::since_time(state, name, t)?
    } else if let Some(id) = &args.thread {
        return read_thread(state, args, id, p);
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

/// Which records belong to a thread, decided in one pass in seq order: the
/// root, then every record that replies to one already taken.
struct Thread {
    root: Root,
    ids: HashSet<String>,
    found: bool,
}

enum Root {
    Id(String),
    Seq(u64),
}

impl Thread {
    fn new(spec: &str) -> Thread {
        let root = match spec.parse() {
            Ok(n) if spec.bytes().all(|b| b.is_ascii_digit()) => Root::Seq(n),
            _ => Root::Id(spec.to_string()),
        };
        Thread {
            root,
            ids: HashSet::new(),
            found: false,
        }
    }

    fn takes(&mut self, v: &record::View<'_>) -> bool {
        let taken = if self.found {
            v.reply_to.as_deref().is_some_and(|r| self.ids.contains(r))
        } else {
            self.found = match &self.root {
                Root::Id(id) => v.id == id.as_str(),
                Root::Seq(n) => v.seq == *n,
            };
            self.found
        };
        if taken && !v.id.is_empty() {
            self.ids.insert(v.id.to_string());
        }
        taken
    }
}

/// `--thread`: start where the root must be (its seq, or the time its id
/// carries), and scan the whole channel only when it is not found there.
fn read_thread<W: Write>(
    state: &StateDir,
    args: &Args,
    spec: &str,
    p: &mut Printer<W>,
) -> Result<u8> {
    let name = &args.channel.channel;
    let mut thread = Thread::new(spec);
    let mut reader = match &thread.root {
        Root::Seq(n) => Reader::after_seq(state, name, n.saturating_sub(1))?,
        Root::Id(id) => match crate::infra::id::millis_of(id)
            .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64))
        {
            Some(t) => Reader::since_time(state, name, t)?,
            None => Reader::from_start(state, name)?,
        },
    };
    let quiet = args.quiet;
    let pass = |reader: &mut Reader, thread: &mut Thread, p: &mut Printer<W>| -> Result<()> {
        reader.read_available(&mut |it| {
            if thread.takes(&it.view) && !quiet {
                p.print(it)?;
            }
            // -q needs the root only.
            Ok(!(quiet && thread.found))
        })?;
        p.out.flush()?;
        Ok(())
    };
    pass(&mut reader, &mut thread, p)?;
    if !thread.found && matches!(thread.root, Root::Id(_)) {
        // Not where its id's time says (a clock went back, or an id mt did
        // not make): look from the start.
        reader = Reader::from_start(state, name)?;
        pass(&mut reader, &mut thread, p)?;
    }
    if !thread.found {
        if quiet {
            return Ok(NO);
        }
        let what = match &thread.root {
            Root::Id(id) => format!("id {id}"),
            Root::Seq(n) => format!("seq {n}"),
        };
        return Err(fail(NO, format!("no record with {what} on channel {name}")));
    }
    if quiet {
        return Ok(OK);
    }
    if args.follow {
        follow(state, name, |_| pass(&mut reader, &mut thread, p))?;
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
