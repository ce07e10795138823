//! Cheap fingerprints of what change rules watch: sizes, mtimes and inodes,
//! never contents. Two scans give the same fingerprint exactly when nothing
//! that matters changed.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::rules::Target;
use crate::channel;
use crate::statedir::StateDir;

/// FNV-1a, 64 bits: stable across processes and versions, unlike std's
/// hasher, so fingerprints can be saved.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn num(&mut self, n: i64) {
        self.bytes(&n.to_le_bytes());
    }
    fn stat(&mut self, m: &Metadata) {
        for n in [
            m.dev() as i64,
            m.ino() as i64,
            m.len() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ] {
            self.num(n);
        }
    }
}

/// The file or directory a target lives in.
pub fn target_path(t: &Target, state: &StateDir) -> PathBuf {
    match t {
        Target::Channel(n) => state.channel(n),
        Target::Tasks { dir, .. } => dir.clone(),
        Target::Path(p) => p.clone(),
    }
}

/// The fingerprint of a target now. A missing target has the fingerprint
/// `absent`.
pub fn fingerprint(t: &Target, state: &StateDir) -> String {
    let path = target_path(t, state);
    let mut h = Fnv::new();
    let found = match t {
        Target::Channel(_) => channel_fp(&path, &mut h),
        Target::Tasks { .. } => dir_fp(&path, &mut h, |n| {
            n.ends_with(".json") || n == ".highwatermark"
        }),
        Target::Path(_) => match fs::metadata(&path) {
            Ok(m) if m.is_dir() => dir_fp(&path, &mut h, |_| true),
            Ok(m) => {
                h.stat(&m);
                Ok(true)
            }
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(true) => format!("{:016x}", h.0),
        _ => "absent".into(),
    }
}

/// A channel changes when its newest segment grows or a new one appears.
fn channel_fp(dir: &Path, h: &mut Fnv) -> io::Result<bool> {
    let Some(&seg) = channel::list_segments(dir)?.last() else {
        return Ok(false);
    };
    let m = fs::metadata(dir.join(channel::segment_file_name(seg)))?;
    h.num(seg as i64);
    h.stat(&m);
    Ok(true)
}

/// A directory's direct entries that `keep` accepts, by name and stat. A
/// subdirectory counts by name and inode only, so activity deeper down does
/// not show.
fn dir_fp(dir: &Path, h: &mut Fnv, keep: impl Fn(&str) -> bool) -> io::Result<bool> {
    let mut entries: Vec<(Vec<u8>, Option<Metadata>)> = Vec::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        let name = ent.file_name();
        if !keep(&name.to_string_lossy()) {
            continue;
        }
        // An entry removed between listing and stat is simply left out.
        let meta = ent.metadata().ok();
        entries.push((name.into_encoded_bytes(), meta));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, meta) in entries {
        h.bytes(&name);
        h.bytes(b"\0");
        match meta {
            Some(m) if m.is_dir() => {
                h.bytes(b"d");
                h.num(m.ino() as i64);
            }
            Some(m) => h.stat(&m),
            None => h.bytes(b"?"),
        }
    }
    Ok(true)
}

/// The directory to ask for notifications about `path`: the path itself
/// when it is a directory, else its parent, else the nearest ancestor that
/// exists (so the creation of what is missing wakes us too).
pub fn notify_dir(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return Some(path.to_path_buf());
    }
    let mut p = path.parent()?;
    loop {
        if p.is_dir() {
            return Some(p.to_path_buf());
        }
        p = p.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_dir_fingerprints_move_with_changes() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::at(d.path().join("mt"));
        let f = Target::Path(d.path().join("f"));
        let dir = Target::Path(d.path().join("sub"));
        assert_eq!(fingerprint(&f, &state), "absent");
        fs::write(d.path().join("f"), "1").unwrap();
        let a = fingerprint(&f, &state);
        assert_ne!(a, "absent");
        assert_eq!(a, fingerprint(&f, &state));
        fs::write(d.path().join("f"), "22").unwrap();
        assert_ne!(a, fingerprint(&f, &state));

        fs::create_dir(d.path().join("sub")).unwrap();
        let e = fingerprint(&dir, &state);
        fs::write(d.path().join("sub/x"), "1").unwrap();
        let x = fingerprint(&dir, &state);
        assert_ne!(e, x);
        fs::create_dir(d.path().join("sub/deep")).unwrap();
        let y = fingerprint(&dir, &state);
        fs::write(d.path().join("sub/deep/z"), "1").unwrap();
        assert_eq!(y, fingerprint(&dir, &state), "deeper levels do not count");
        assert_eq!(
            notify_dir(&d.path().join("sub/nope/x")).unwrap(),
            d.path().join("sub")
        );
    }
}
