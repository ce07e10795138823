//! Waiting for files to change without polling: inotify on a directory,
//! with a timeout so a missed event costs latency, never correctness.

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

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

pub struct Waker {
    inotify: Inotify,
}

impl Waker {
    pub fn new() -> Result<Waker> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .context("cannot start inotify")?;
        Ok(Waker { inotify })
    }

    /// Watch a directory for new, changed, moved or removed entries.
    pub fn watch_dir(&self, dir: &Path) -> Result<()> {
        self.inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_ATTRIB,
            )
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        Ok(())
    }

    /// Watch one file for writes (it must exist).
    pub fn watch_file(&self, file: &Path) -> Result<()> {
        self.inotify
            .add_watch(
                file,
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_ATTRIB,
            )
            .with_context(|| format!("cannot watch {}", file.display()))?;
        Ok(())
    }

    /// Block until a change, the timeout, or (when `output` is given) the
    /// reader of that pipe going away.
    pub fn wait(&self, timeout: Duration, output: Option<BorrowedFd<'_>>) -> Result<Woke> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = vec![PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        if let Some(fd) = output {
            fds.push(PollFd::new(fd, PollFlags::empty()));
        }
        let n = match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => return Ok(Woke::Timeout),
            Err(e) => return Err(e).context("poll failed"),
        };
        if n == 0 {
            return Ok(Woke::Timeout);
        }
        if let Some(out) = fds.get(1)
            && out
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
        {
            return Ok(Woke::OutputClosed);
        }
        self.drain();
        Ok(Woke::Changed)
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
/// descriptors (the watcher, the agent supervisor); call `drain` when it is
/// readable.
impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
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
}
