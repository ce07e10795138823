//! Waking up without polling, within the kernel's limits.
//!
//! Followers of files (`mt-read -f`, `mt-log -f`, `mt-watch`) wait with
//! inotify on directories, with a timeout so a missed event costs latency,
//! never correctness. inotify instances are limited per user
//! (`fs.inotify.max_user_instances`, 128 by default), so a follower that
//! gets none does not fail: [`Follow`] then only times out, at most every
//! [`DEGRADED`], and the caller's rescan finds what changed; one warning
//! says so. `MT_INOTIFY=0` asks for that mode.
//!
//! A supervisor takes no inotify instance at all, so a thousand agents
//! leave every instance to the followers. Its inbox has a [`Doorbell`]: a
//! FIFO `agents/<name>/inbox/wake` the supervisor holds open while its agent
//! runs. A nudger renames its message into `inbox/new`, then [`ring`]s it:
//! one byte, written without blocking. The byte carries nothing: the
//! supervisor empties the FIFO, then rescans `inbox/new`, which stays the
//! source of truth. Rings that coalesce, find the FIFO full, or come before
//! the supervisor opened it (it scans once right after) lose no message.
//!
//! Why a FIFO: opening one for writing fails (ENXIO) while nobody holds it
//! for reading, so a ring never reaches anything but a live supervisor,
//! whereas a signal to a recorded pid may reach a stranger that reused it;
//! a unix socket's path is limited to 108 bytes, a state directory's is
//! not; a timer costs every idle agent CPU. Where no FIFO can be made, the
//! supervisor rescans its inbox every [`DEGRADED`] instead, and says so.

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;
use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// The longest a tool that could not get a wake-up mechanism waits between
/// two rescans.
pub const DEGRADED: Duration = Duration::from_secs(1);

/// Why `Waker::wait` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Woke {
    /// Something in a watched directory changed.
    Changed,
    /// The timeout passed.
    Timeout,
    /// The watched output (our stdout pipe) was closed by its reader.
    OutputClosed,
}

/// An inotify instance.
pub struct Waker {
    inotify: Inotify,
}

/// Whether inotify was turned off with `MT_INOTIFY=0` (then nobody warns
/// about doing without it).
pub fn inotify_off() -> bool {
    std::env::var_os("MT_INOTIFY").is_some_and(|v| v == "0")
}

/// What an inotify error means for the user.
fn explain(e: Errno) -> String {
    match e {
        Errno::EMFILE => format!(
            "{e} (the per-user limit fs.inotify.max_user_instances is reached, \
             or this process has too many open files)"
        ),
        Errno::ENOSPC => format!("{e} (the per-user limit fs.inotify.max_user_watches is reached)"),
        _ => e.to_string(),
    }
}

impl Waker {
    /// A new inotify instance; an error when the kernel has none to give
    /// or `MT_INOTIFY=0`.
    pub fn new() -> Result<Waker> {
        if inotify_off() {
            return Err(anyhow!("cannot start inotify: turned off by MT_INOTIFY=0"));
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| anyhow!("cannot start inotify: {}", explain(e)))?;
        Ok(Waker { inotify })
    }

    /// Watch a directory for new, changed, moved or removed entries.
    pub fn watch_dir(&self, dir: &Path) -> Result<()> {
        self.add(dir, DIR_EVENTS)
    }

    /// Watch one file for writes (it must exist).
    pub fn watch_file(&self, file: &Path) -> Result<()> {
        self.add(
            file,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_ATTRIB,
        )
    }

    fn add(&self, path: &Path, flags: AddWatchFlags) -> Result<()> {
        self.inotify
            .add_watch(path, flags)
            .map(drop)
            .map_err(|e| watch_error(path, e))
    }

    /// Block until a change, the timeout, or (when `output` is given) the
    /// reader of that pipe going away.
    pub fn wait(&self, timeout: Duration, output: Option<BorrowedFd<'_>>) -> Result<Woke> {
        wait_on(Some(self.inotify.as_fd()), timeout, output).inspect(|w| {
            if *w == Woke::Changed {
                self.drain();
            }
        })
    }

    /// Discard queued events: callers rescan, so the events themselves do
    /// not matter.
    pub fn drain(&self) {
        while let Ok(ev) = self.inotify.read_events() {
            if ev.is_empty() {
                break;
            }
        }
    }
}

/// The inotify descriptor, for callers that poll it together with other
/// descriptors (the watcher); call `drain` when it is readable.
impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

fn watch_error(path: &Path, e: Errno) -> anyhow::Error {
    anyhow!("cannot watch {}: {}", path.display(), explain(e))
}

/// Flags for a watched directory: new, changed, moved or removed entries.
const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_ATTRIB);

/// Poll `wake` (readable) and `output` (closed by its reader) for up to
/// `timeout`.
fn wait_on(
    wake: Option<BorrowedFd<'_>>,
    timeout: Duration,
    output: Option<BorrowedFd<'_>>,
) -> Result<Woke> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = Vec::with_capacity(2);
    if let Some(fd) = wake {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }
    if let Some(fd) = output {
        fds.push(PollFd::new(fd, PollFlags::empty()));
    }
    let n = match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(n) => n,
        Err(Errno::EINTR) => return Ok(Woke::Timeout),
        Err(e) => return Err(e).context("poll failed"),
    };
    if n == 0 {
        return Ok(Woke::Timeout);
    }
    let out = if wake.is_some() {
        fds.get(1)
    } else {
        fds.first()
    };
    if out.is_some_and(|o| {
        o.revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
    }) {
        return Ok(Woke::OutputClosed);
    }
    Ok(if wake.is_some() {
        Woke::Changed
    } else {
        Woke::Timeout
    })
}

/// A long-running follower's wake-up: inotify when the kernel gives it,
/// otherwise a timeout of at most [`DEGRADED`] (the caller rescans either
/// way). Never fails for lack of inotify; warns once on stderr.
pub struct Follow {
    tool: &'static str,
    waker: Option<Waker>,
    /// Some watch could not be added: inotify alone would miss changes.
    partial: Cell<bool>,
}

impl Follow {
    /// For tool `tool` (named in the warning).
    pub fn new(tool: &'static str) -> Follow {
        let waker = match Waker::new() {
            Ok(w) => Some(w),
            Err(e) => {
                if !inotify_off() {
                    warn(tool, &format!("{e:#}"));
                }
                None
            }
        };
        Follow {
            tool,
            waker,
            partial: Cell::new(false),
        }
    }

    /// Whether changes are seen only by rescanning.
    pub fn degraded(&self) -> bool {
        self.waker.is_none() || self.partial.get()
    }

    /// Watch a directory; a watch the kernel refuses for lack of resources
    /// degrades to rescanning (with a warning), other errors are errors.
    pub fn watch_dir(&self, dir: &Path) -> Result<()> {
        let Some(w) = &self.waker else { return Ok(()) };
        match w.inotify.add_watch(dir, DIR_EVENTS) {
            Ok(_) => Ok(()),
            Err(e @ (Errno::ENOSPC | Errno::ENOMEM)) => {
                if !self.partial.replace(true) {
                    warn(self.tool, &format!("{:#}", watch_error(dir, e)));
                }
                Ok(())
            }
            Err(e) => Err(watch_error(dir, e)),
        }
    }

    /// As [`Waker::wait`], waiting at most [`DEGRADED`] when degraded.
    pub fn wait(&self, timeout: Duration, output: Option<BorrowedFd<'_>>) -> Result<Woke> {
        let timeout = if self.degraded() {
            timeout.min(DEGRADED)
        } else {
            timeout
        };
        match &self.waker {
            Some(w) => w.wait(timeout, output),
            None => wait_on(None, timeout, output),
        }
    }
}

fn warn(tool: &str, what: &str) {
    eprintln!(
        "{tool}: {what}; checking for changes every {}s instead",
        DEGRADED.as_secs()
    );
}

/// A supervisor's end of its inbox FIFO (see the module comment).
pub struct Doorbell {
    fifo: File,
}

impl Doorbell {
    /// Make the FIFO at `path` (replacing a file or symlink left there,
    /// reusing a FIFO) and hold it open for reading and writing: so it never
    /// reads as end of file, and a ring never blocks while we hold it.
    pub fn open(path: &Path) -> io::Result<Doorbell> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(m) if m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a directory", path.display()),
                ));
            }
            Ok(_) => {
                fs::remove_file(path)?;
                mkfifo(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => mkfifo(path)?,
            Err(e) => return Err(e),
        }
        let fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)?;
        if !fifo.metadata()?.file_type().is_fifo() {
            return Err(io::Error::other(format!(
                "{} is not a FIFO",
                path.display()
            )));
        }
        Ok(Doorbell { fifo })
    }

    /// Empty the FIFO. Call it before rescanning, so a ring that comes
    /// during the scan wakes us again.
    pub fn drain(&self) {
        let mut buf = [0u8; 512];
        while let Ok(n) = (&self.fifo).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fifo.as_fd()
    }
}

fn mkfifo(path: &Path) -> io::Result<()> {
    match nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Ring the doorbell at `path`: one byte, never blocking. Returns whether
/// a supervisor holds it. Nobody listening (no FIFO, or no reader) is not
/// an error: the message waits in the maildir.
pub fn ring(path: &Path) -> bool {
    let Ok(mut f) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    // Opening a regular file for writing does not change it; writing would.
    if !f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        return false;
    }
    // One byte is written whole or not at all.
    match f.write_all(b"\n") {
        Ok(()) => true,
        // Full: rings are pending already.
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_on_change_and_times_out() {
        let d = tempfile::tempdir().unwrap();
        let w = Waker::new().unwrap();
        w.watch_dir(d.path()).unwrap();
        assert_eq!(
            w.wait(Duration::from_millis(10), None).unwrap(),
            Woke::Timeout
        );
        std::fs::write(d.path().join("x"), b"1").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5), None).unwrap(), Woke::Changed);
    }

    fn readable(fd: BorrowedFd<'_>) -> bool {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn a_ring_reaches_only_a_held_doorbell() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("wake");
        assert!(!ring(&p), "no FIFO yet");
        // A plain file in the way is replaced, and never written by a ring.
        fs::write(&p, b"").unwrap();
        assert!(!ring(&p));
        assert_eq!(fs::read(&p).unwrap(), b"");
        let bell = Doorbell::open(&p).unwrap();
        assert!(!readable(bell.as_fd()));
        assert!(ring(&p));
        assert!(ring(&p));
        assert!(readable(bell.as_fd()));
        bell.drain();
        assert!(!readable(bell.as_fd()));
        // A full FIFO still counts as rung, without blocking.
        for _ in 0..66_000 {
            assert!(ring(&p));
        }
        bell.drain();
        assert!(!readable(bell.as_fd()));
        drop(bell);
        assert!(!ring(&p), "nobody holds it");
        // The FIFO left behind is reused.
        let again = Doorbell::open(&p).unwrap();
        assert!(ring(&p));
        assert!(readable(again.as_fd()));
    }

    #[test]
    fn a_directory_in_the_way_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("wake");
        fs::create_dir(&p).unwrap();
        assert!(Doorbell::open(&p).is_err());
        assert!(!ring(&p));
    }

    #[test]
    fn a_follower_without_inotify_times_out() {
        let f = Follow {
            tool: "test",
            waker: None,
            partial: Cell::new(false),
        };
        assert!(f.degraded());
        f.watch_dir(Path::new("/nonexistent")).unwrap();
        assert_eq!(
            f.wait(Duration::from_millis(5), None).unwrap(),
            Woke::Timeout
        );
    }
}
