//! flock(2) locks on files that are never replaced by rename. The kernel drops
//! a lock when its holder dies, so a dead process never holds one.

use anyhow::{Context, Result};
use std::fs::{File, TryLockError};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::exit::{CANTCREAT, Coded, TEMPFAIL, fail};
use crate::infra::fsutil;

fn open(path: &Path) -> Result<File> {
    fsutil::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open lock {}", path.display()))
        .code(CANTCREAT)
}

/// Block until an exclusive lock on `path` is ours.
pub fn exclusive(path: &Path) -> Result<File> {
    let f = open(path)?;
    f.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

/// Take an exclusive lock if it is free right now.
pub fn try_exclusive(path: &Path) -> Result<Option<File>> {
    let f = open(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Wait up to `timeout` for an exclusive lock; exit 75 when it stays busy.
pub fn exclusive_within(path: &Path, timeout: Duration) -> Result<File> {
    let f = open(path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(fail(
                    TEMPFAIL,
                    format!("{} is still locked after {:?}", path.display(), timeout),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}

/// Whether some process holds an exclusive lock on `path` (a liveness test):
/// a shared lock that cannot be had means yes. A missing file means no.
pub fn is_held(path: &Path) -> Result<bool> {
    let f = match fsutil::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot test lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("LOCK");
        assert!(!is_held(&p).unwrap());
        let held = exclusive(&p).unwrap();
        assert!(is_held(&p).unwrap());
        assert!(try_exclusive(&p).unwrap().is_none());
        let e = exclusive_within(&p, Duration::from_millis(20)).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), TEMPFAIL);
        drop(held);
        assert!(!is_held(&p).unwrap());
        assert!(try_exclusive(&p).unwrap().is_some());
    }
}
