//! Claude Code's lock-directory scheme, for the files mt shares with it
//! (agent-teams inboxes, team config, task lists).
//!
//! A writer of `F` holds the lock while the directory `F.lock` exists and is
//! its own: it is taken with `mkdir` (atomic: one winner) and released with
//! `rmdir`. A lock directory whose mtime is more than 10 s old belongs to a
//! writer that died, and may be broken; a holder therefore touches it every
//! 5 s for as long as it holds it. Waiting is bounded: after the wait a
//! caller gets exit 75 (try again) and nothing is written.
//!
//! flock(2) would be simpler, but Claude Code does not use it, and only the
//! same scheme excludes its writers.
//!
//! Breaking a stale lock is done so that two breakers cannot both win: the
//! stale directory is renamed aside first (only one rename of it succeeds),
//! and the breaker checks that what it moved is the very directory it judged
//! stale before removing it; if a live lock was moved by mistake (it replaced
//! the stale one in between), it is put back.

use anyhow::{Context, Result};
use std::fs::{self, DirBuilder, File, FileTimes};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::exit::{CANTCREAT, Coded, TEMPFAIL, fail};
use crate::infra::time::format_duration;

/// A lock directory older than this (by mtime) is stale.
pub const STALE: Duration = Duration::from_secs(10);
/// How often a holder touches its lock directory.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How long a writer waits for a busy lock by default. Shorter than `STALE`,
/// so a lock that goes stale while we wait was already old when we came.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The lock directory for `file`: `file` + `.lock`.
pub fn lock_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A held lock directory. Dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    mark: Arc<Mutex<Mark>>,
    keeper: Option<Keeper>,
}

/// What identifies our lock directory: device, inode, and the mtime we last
/// gave it (an inode number alone may be reused by a new directory).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    dev: u64,
    ino: u64,
    mtime: Option<SystemTime>,
}

impl Mark {
    fn of(m: &fs::Metadata) -> Mark {
        Mark {
            dev: m.dev(),
            ino: m.ino(),
            mtime: m.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Keeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
}

/// Take the lock directory `path`, waiting up to `wait` while another
/// writer holds it (exit 75 after that). The parent directory must exist.
pub fn acquire(path: &Path, wait: Duration) -> Result<DirLock> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut rng = seed();
    loop {
        if let Some(lock) = try_acquire(path)? {
            return Ok(lock);
        }
        let elapsed = start.elapsed();
        if elapsed >= wait {
            return Err(fail(
                TEMPFAIL,
                format!(
                    "{} is held by another writer; gave up after {} (a lock not refreshed for {} is broken as stale)",
                    path.display(),
                    format_duration(wait),
                    format_duration(STALE),
                ),
            ));
        }
        // Jitter keeps waiting writers from retrying in step.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let jittered = pause / 2 + pause.mul_f64((rng % 1000) as f64 / 1000.0);
        thread::sleep(jittered.min(wait - elapsed));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One attempt: take the lock if it is free or stale, else `None`.
pub fn try_acquire(path: &Path) -> Result<Option<DirLock>> {
    try_acquire_every(path, REFRESH)
}

fn try_acquire_every(path: &Path, every: Duration) -> Result<Option<DirLock>> {
    // A few rounds cover losing a race right after a lock was released or
    // broken; a lock that is simply held ends the attempt.
    for _ in 0..3 {
        match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => return DirLock::held(path, every).map(Some),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create lock directory {}", path.display()))
                    .code(CANTCREAT);
            }
        }
        match fs::symlink_metadata(path) {
            Ok(m) if is_stale(&m) => break_stale(path, &m)?,
            Ok(_) => return Ok(None),
            // Released between our mkdir and stat: try again at once.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot inspect lock {}", path.display()))
                    .code(CANTCREAT);
            }
        }
    }
    Ok(None)
}

fn is_stale(m: &fs::Metadata) -> bool {
    m.modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE)
}

static ASIDE: AtomicU32 = AtomicU32::new(0);

/// Remove the stale lock directory `path` whose metadata was `seen`.
fn break_stale(path: &Path, seen: &fs::Metadata) -> Result<()> {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let n = ASIDE.fetch_add(1, Ordering::Relaxed);
    let aside = path.with_file_name(format!(".{name}.stale.{}.{n}", std::process::id()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        // Someone else broke or released it first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot break stale lock {}", path.display()))
                .code(CANTCREAT);
        }
    }
    let moved = fs::symlink_metadata(&aside).ok();
    // A fresh directory may reuse the inode number, never the old mtime.
    let same = moved
        .as_ref()
        .is_some_and(|m| (m.dev(), m.ino()) == (seen.dev(), seen.ino()) && is_stale(m));
    if !same {
        // Between our look and our rename, the stale lock was broken and
        // taken by another writer: give that writer its lock back.
        put_back(&aside, path);
    }
    // A lock directory is empty; if it is not, it is not ours to delete.
    let _ = fs::remove_dir(&aside);
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn put_back(aside: &Path, path: &Path) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    // Same directory, same inode: its holder's checks still pass. Never
    // replace a lock someone took meanwhile.
    if renameat2(
        AT_FDCWD,
        aside,
        AT_FDCWD,
        path,
        RenameFlags::RENAME_NOREPLACE,
    )
    .is_err()
    {
        let _ = DirBuilder::new().mode(0o700).create(path);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn put_back(_aside: &Path, path: &Path) {
    // Without an atomic no-replace rename, recreate it: the lock is held
    // again, and its holder's `verify` reports the change rather than
    // writing without it.
    let _ = DirBuilder::new().mode(0o700).create(path);
}

fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_times(FileTimes::new().set_modified(SystemTime::now()))
}

/// Whether the lock directory at `path` is still the one we created.
fn still_ours(path: &Path, mark: &Mutex<Mark>) -> bool {
    let want = *mark.lock().unwrap_or_else(|e| e.into_inner());
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && Mark::of(&m) == want)
}

/// Touch our lock directory and remember its new mtime.
fn refresh(path: &Path, mark: &Mutex<Mark>) {
    // Hold the mark while touching, so `verify` never sees a half-done refresh.
    let mut want = mark.lock().unwrap_or_else(|e| e.into_inner());
    let ours = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && Mark::of(&m) == *want);
    if ours
        && touch(path).is_ok()
        && let Ok(m) = fs::symlink_metadata(path)
    {
        *want = Mark::of(&m);
    }
}

impl DirLock {
    fn held(path: &Path, every: Duration) -> Result<DirLock> {
        let m = fs::symlink_metadata(path)
            .with_context(|| format!("cannot inspect lock {}", path.display()))
            .code(CANTCREAT)?;
        let mut lock = DirLock {
            path: path.to_path_buf(),
            mark: Arc::new(Mutex::new(Mark::of(&m))),
            keeper: None,
        };
        lock.keeper = Some(lock.keep_fresh(every));
        Ok(lock)
    }

    /// Touch the directory every `every` so that others do not take a
    /// long-held lock for a dead one.
    fn keep_fresh(&self, every: Duration) -> Keeper {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (path, mark, stop2) = (self.path.clone(), self.mark.clone(), stop.clone());
        // Detached: see `unlock`. Without a thread (none could be made) the
        // lock still works; it is only not refreshed.
        let _ = thread::Builder::new()
            .name("dirlock".into())
            .spawn(move || {
                let (flag, cv) = &*stop2;
                let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                // The flag is checked before each wait: a stop sent before this
                // thread first ran must not be missed.
                while !*stopped {
                    let (g, timeout) = cv
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = g;
                    if timeout.timed_out() && !*stopped {
                        refresh(&path, &mark);
                    }
                }
            });
        Keeper { stop }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Check, just before writing, that the lock is still ours (no one broke
    /// it as stale while we held it); exit 75 when it is not.
    pub fn verify(&self) -> Result<()> {
        if still_ours(&self.path, &self.mark) {
            Ok(())
        } else {
            Err(fail(
                TEMPFAIL,
                format!(
                    "lost the lock {} (another writer broke it as stale); nothing was written",
                    self.path.display()
                ),
            ))
        }
    }

    /// Release the lock now, reporting a failure to remove it.
    pub fn release(mut self) -> Result<()> {
        self.unlock()
            .with_context(|| format!("cannot remove lock directory {}", self.path.display()))
            .code(CANTCREAT)
    }

    fn unlock(&mut self) -> io::Result<()> {
        let Some(k) = self.keeper.take() else {
            return Ok(());
        };
        {
            // The keeper refreshes only while holding this mutex with the
            // flag unset, so once the flag is set no refresh is under way or
            // can start. It is not joined: waiting for it to be scheduled
            // would cost a context switch; it ends on its own.
            let (flag, cv) = &*k.stop;
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_one();
        }
        // Never remove a lock that another writer holds now.
        if still_ours(&self.path, &self.mark) {
            fs::remove_dir(&self.path)?;
        }
        Ok(())
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.unlock();
    }
}

fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (t ^ ((std::process::id() as u64) << 32)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::code_of;

    fn age(path: &Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        File::open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(t))
            .unwrap();
    }

    #[test]
    fn excludes_and_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = lock_path(&d.path().join("f.json"));
        assert!(p.ends_with("f.json.lock"));
        let held = acquire(&p, Duration::ZERO).unwrap();
        assert!(p.is_dir());
        assert!(try_acquire(&p).unwrap().is_none());
        let e = acquire(&p, Duration::from_millis(30)).unwrap_err();
        assert_eq!(code_of(&e), TEMPFAIL);
        held.verify().unwrap();
        drop(held);
        assert!(!p.exists());
        acquire(&p, Duration::ZERO).unwrap().release().unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn breaks_stale_lock_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.lock");
        fs::create_dir(&p).unwrap();
        age(&p, 5);
        assert!(try_acquire(&p).unwrap().is_none(), "5 s old is still fresh");
        age(&p, 11);
        let l = try_acquire(&p).unwrap().expect("stale lock broken");
        l.verify().unwrap();
        drop(l);
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty(), "nothing left aside: {left:?}");
    }

    #[test]
    fn holder_keeps_its_lock_fresh() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.lock");
        let l = try_acquire_every(&p, Duration::from_millis(10))
            .unwrap()
            .unwrap();
        let first = fs::metadata(&p).unwrap().modified().unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while fs::metadata(&p).unwrap().modified().unwrap() == first {
            assert!(Instant::now() < give_up, "lock never refreshed");
            thread::sleep(Duration::from_millis(5));
        }
        l.verify().unwrap();
        l.release().unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn verify_notices_a_broken_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.lock");
        let l = acquire(&p, Duration::ZERO).unwrap();
        fs::remove_dir(&p).unwrap();
        fs::create_dir(&p).unwrap();
        assert_eq!(code_of(&l.verify().unwrap_err()), TEMPFAIL);
        drop(l);
        assert!(p.is_dir(), "another writer's lock is left alone");
    }
}
