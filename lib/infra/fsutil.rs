//! File creation with mt's rules: directories 0700, files 0600 (the umask may
//! narrow both), no following of symlinks where a write could be redirected,
//! and whole-file replacement by atomic rename.

use anyhow::{Context, Result};
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::exit::{CANTCREAT, Coded, fail};

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

/// Create `dir` (0700) below `root`, checking every directory from `root`
/// down with `ensure_subdir`: a symlink planted anywhere below `root`
/// cannot redirect where `dir` is. `root` itself is the caller's to trust.
pub fn ensure_subdirs(root: &Path, dir: &Path) -> Result<()> {
    let mut p = root.to_path_buf();
    for c in below(root, dir)?.components() {
        p.push(c);
        ensure_subdir(&p)?;
    }
    Ok(())
}

/// Whether `dir` exists below `root` as directories all the way down, with
/// no symlink on the way (nothing is created).
pub fn is_subdir(root: &Path, dir: &Path) -> bool {
    let Ok(rel) = below(root, dir) else {
        return false;
    };
    let mut p = root.to_path_buf();
    rel.components().all(|c| {
        p.push(c);
        fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir())
    })
}

/// `dir` relative to `root`, made of plain names only.
fn below<'a>(root: &Path, dir: &'a Path) -> Result<&'a Path> {
    match dir.strip_prefix(root) {
        Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => Ok(rel),
        _ => Err(fail(
            CANTCREAT,
            format!(
                "{} is not a directory below {}",
                dir.display(),
                root.display()
            ),
        )),
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

/// Read a whole file, refusing a symlink in its last component and
/// anything but a regular file (a FIFO would block, a directory cannot be
/// read); both are reported as `InvalidInput`.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK;
    let mut f = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symlink, which mt does not follow here",
            ));
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut buf)?;
    Ok(buf)
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

/// Create a file under a fresh temporary name next to `path` with
/// `create` (which must fail with `AlreadyExists` rather than open an
/// existing file). A name may be taken by the leftover of a killed writer
/// that had the same process id; the next name is tried then.
pub fn create_temp<T>(
    path: &Path,
    mut create: impl FnMut(&Path) -> io::Result<T>,
) -> io::Result<(T, PathBuf)> {
    let mut tries = 0;
    loop {
        let tmp = temp_name(path);
        match create(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            res => return res.map(|t| (t, tmp)),
        }
    }
}

/// Replace `path` with `data` atomically: write a temporary file in the same
/// directory, sync it, rename it over `path`. Readers see the old or the new
/// content, never a mix. With `durable`, the directory is synced too.
///
/// The directory is opened once, without following a symlink, and the
/// temporary file is created and renamed relative to that handle: a symlink
/// in place of the directory is refused, one in place of `path` is replaced
/// (rename never follows it), and swapping the directory meanwhile cannot
/// move the write elsewhere.
/// A JSON state file: `None` when it does not exist, exit 65 naming the
/// file and `hint` (what to do about it) when it does not parse.
pub fn read_json<T: for<'de> serde::Deserialize<'de>>(
    path: &Path,
    hint: &str,
) -> Result<Option<T>> {
    match read_regular(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            fail(
                crate::exit::DATAERR,
                format!("{} does not parse ({e}); {hint}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `v` as a JSON state file: pretty, one final newline, replaced whole
/// (synced unless `MT_FSYNC=0`).
pub fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    write_atomic(path, &json_bytes(v)?, fsync_enabled())
}

/// What `write_json` writes.
pub fn json_bytes<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(v).context("cannot encode JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default();
    let res = (|| -> io::Result<()> {
        let dirfd = open_dir(dir)?;
        let (fd, tmp) = create_temp(Path::new(name), |tmp| {
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            Ok(openat(
                &dirfd,
                tmp,
                flags,
                Mode::from_bits_truncate(FILE_MODE),
            )?)
        })?;
        let written = (|| -> io::Result<()> {
            let mut f = File::from(fd);
            f.write_all(data)?;
            if durable {
                f.sync_data()?;
            }
            renameat(&dirfd, &tmp, &dirfd, name)?;
            if durable {
                File::from(dirfd.try_clone()?).sync_all()?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = unlinkat(&dirfd, &tmp, UnlinkatFlags::NoRemoveDir);
        }
        written
    })();
    res.with_context(|| format!("cannot write {}", path.display()))
        .code(CANTCREAT)
}

/// Open a directory for `*at` calls, refusing a symlink in its place.
fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(dir, flags, Mode::empty()).map_err(|e| {
        if e == nix::errno::Errno::ELOOP || e == nix::errno::Errno::ENOTDIR {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a symlink or not a directory", dir.display()),
            )
        } else {
            e.into()
        }
    })
}

/// fsync a directory so a rename or creation in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether data syncs are wanted (`MT_FSYNC=0` turns them off).
pub fn fsync_enabled() -> bool {
    std::env::var_os("MT_FSYNC").is_none_or(|v| v != "0")
}

/// Sync the whole file system holding `path` with one syncfs(2) (unless
/// `MT_FSYNC=0`): the data and names of many small files written without a
/// sync of their own, at the cost of one call.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    if !fsync_enabled() {
        return Ok(());
    }
    let f = File::open(path)?;
    nix::unistd::syncfs(&f).map_err(io::Error::from)
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
    fn atomic_write_replaces_a_symlink_and_refuses_a_symlinked_dir() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), b"theirs").unwrap();
        let inside = d.path().join("inside");
        fs::create_dir(&inside).unwrap();
        // A symlink in place of the file is replaced, its target untouched.
        std::os::unix::fs::symlink(outside.join("f"), inside.join("f")).unwrap();
        write_atomic(&inside.join("f"), b"ours", false).unwrap();
        assert!(fs::symlink_metadata(inside.join("f")).unwrap().is_file());
        assert_eq!(fs::read(outside.join("f")).unwrap(), b"theirs");
        // A symlink in place of the directory is refused.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let e = write_atomic(&link.join("f"), b"ours", true).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), CANTCREAT);
        assert!(format!("{e:#}").contains("is a symlink"), "{e:#}");
        assert_eq!(fs::read(outside.join("f")).unwrap(), b"theirs");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "no temp file");
    }

    #[test]
    fn leftovers_of_a_killed_writer_with_our_pid_are_stepped_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        // What dead writers that had this process id left behind.
        let next = TMP_COUNTER.load(Ordering::Relaxed);
        for n in next..next + 8 {
            let name = format!(".f.json.tmp.{}.{n}", std::process::id());
            fs::write(d.path().join(name), b"torn").unwrap();
        }
        write_atomic(&p, b"whole", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn subdirs_refuse_a_symlink_anywhere_below_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let elsewhere = d.path().join("elsewhere");
        fs::create_dir_all(elsewhere.join("b")).unwrap();
        ensure_dir(&root).unwrap();
        ensure_subdirs(&root, &root.join("x/y")).unwrap();
        assert!(is_subdir(&root, &root.join("x/y")));
        std::os::unix::fs::symlink(&elsewhere, root.join("a")).unwrap();
        assert!(ensure_subdirs(&root, &root.join("a/b/c")).is_err());
        assert!(!elsewhere.join("b/c").exists());
        assert!(!is_subdir(&root, &root.join("a/b")));
        assert!(ensure_subdirs(&root, &root.join("x/../../up")).is_err());
        assert!(ensure_subdirs(&root, &d.path().join("other")).is_err());
    }

    #[test]
    fn read_regular_refuses_symlinks_fifos_and_dirs() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, b"x").unwrap();
        assert_eq!(read_regular(&f).unwrap(), b"x");
        std::os::unix::fs::symlink(&f, d.path().join("l")).unwrap();
        nix::unistd::mkfifo(&d.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        for bad in ["l", "p", "."] {
            let e = read_regular(&d.path().join(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        assert_eq!(
            read_regular(&d.path().join("none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
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
