//! File creation with mt's rules: directories 0700, files 0600 (the umask may
//! narrow both), no following of symlinks where a write could be redirected,
//! and whole-file replacement by atomic rename.

use anyhow::{Context, Result};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::exit::{CANTCREAT, Coded};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` and its missing parents with mode 0700.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
        .code(CANTCREAT)
}

/// Like `ensure_dir`, for a directory inside the state directory: a symlink
/// planted in its place is refused, so it cannot redirect our writes.
pub fn ensure_subdir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(crate::exit::fail(
            CANTCREAT,
            format!(
                "{} is not a directory (a symlink or file is in the way)",
                dir.display()
            ),
        )),
        Err(_) => {
            ensure_dir(dir)?;
            ensure_subdir_exists(dir)
        }
    }
}

fn ensure_subdir_exists(dir: &Path) -> Result<()> {
    let m = fs::symlink_metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))
        .code(CANTCREAT)?;
    if !m.is_dir() {
        return Err(crate::exit::fail(
            CANTCREAT,
            format!("{} is not a directory", dir.display()),
        ));
    }
    Ok(())
}

/// Options for opening a file we own: mode 0600 on creation, and never
/// through a symlink in the last path component.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
    o
}

/// Open (creating if needed) a file for appending.
pub fn open_append(path: &Path) -> io::Result<File> {
    options().append(true).create(true).read(true).open(path)
}

/// Open an existing file for reading without following a final symlink.
pub fn open_read(path: &Path) -> io::Result<File> {
    options().read(true).open(path)
}

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A temporary name next to `path`, unique within this host.
pub fn temp_name(path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Replace `path` with `data` atomically: write a temporary file in the same
/// directory, sync it, rename it over `path`. Readers see the old or the new
/// content, never a mix. With `durable`, the directory is synced too.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let tmp = temp_name(path);
    let res = (|| -> io::Result<()> {
        let mut f = options().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_data()?;
        }
        fs::rename(&tmp, path)?;
        if durable && let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
        .code(CANTCREAT)
}

/// fsync a directory so a rename or creation in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether data syncs are wanted (`MT_FSYNC=0` turns them off).
pub fn fsync_enabled() -> bool {
    std::env::var_os("MT_FSYNC").is_none_or(|v| v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_atomic(&p, b"one", true).unwrap();
        write_atomic(&p, b"two", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o}");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn append_refuses_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        fs::write(&target, b"").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_append(&link).is_err());
    }
}
