//! Tools run as real processes in a clean environment, and the files they
//! leave: the built binaries, a tool rooted in a scratch directory, a
//! child umask, a directory walk and a small tmpfs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A built binary of this package, by name (`mt-post`, `mt-fake-agent`...).
/// All of them are in one directory: the one Cargo names for mt-post.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "no binary {}", p.display());
    p
}

/// The defined symbols of a built tool (`nm --defined-only`; nm comes with
/// the linker cargo uses), for the checks of what a tool links.
pub fn symbols(name: &str) -> String {
    let o = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(bin(name))
        .output()
        .expect("nm");
    assert!(
        o.status.success(),
        "nm {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-post"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool with a clean environment rooted in `root`: state in
/// `root/state`, Claude Code's directory in `root/claude`, HOME in
/// `root/home`, no data syncs; the layout of `Env`, whose `clean` this is.
pub fn tool(name: &str, root: &Path) -> Command {
    clean_command(bin(name), root)
}

/// Any program in the environment of `tool`.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, root: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .env("HOME", root.join("home"))
        .env("MT_DIR", root.join("state"))
        .env("CLAUDE_CONFIG_DIR", root.join("claude"))
        .env("MT_FSYNC", "0")
        .current_dir(root)
        .stdin(Stdio::null());
    c
}

/// Run the child with this umask.
pub fn with_umask(c: &mut Command, mask: u32) -> &mut Command {
    // SAFETY: umask(2) is async-signal-safe and touches no memory.
    unsafe {
        c.pre_exec(move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
            Ok(())
        });
    }
    c
}

/// Every path below `dir` (not `dir` itself), depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// A small tmpfs, unmounted on drop; `None` (with a message) where one
/// cannot be mounted.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            let _ = fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}
