//! Finding the state directory: `$MT_DIR`, else `<git common dir>/mt` of the
//! repository around the current directory. The repository is found by
//! reading `.git` files directly, never by starting `git`, so every worktree
//! of a repository shares one state directory.

use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::exit::{CANTCREAT, Coded, UNAVAILABLE, fail};
use crate::infra::fsutil;
use crate::names;

/// Where a repository keeps its parts, as seen from one working tree.
#[derive(Debug, Clone)]
pub struct GitDirs {
    /// The top of the working tree that contains the starting directory.
    pub top: PathBuf,
    /// This working tree's git directory (`.git`, or `.git/worktrees/<n>`).
    pub git_dir: PathBuf,
    /// The repository's common directory, shared by all its worktrees.
    pub common_dir: PathBuf,
}

/// Walk up from `start` to the nearest `.git` and resolve its directories.
pub fn discover_git(start: &Path) -> Option<GitDirs> {
    let mut dir = start.to_path_buf();
    loop {
        let dotgit = dir.join(".git");
        if let Ok(meta) = fs::metadata(&dotgit) {
            let git_dir = if meta.is_dir() {
                dotgit
            } else {
                let text = fs::read_to_string(&dotgit).ok()?;
                let target = text.strip_prefix("gitdir:")?.trim();
                dir.join(target)
            };
            let common_dir = match fs::read_to_string(git_dir.join("commondir")) {
                Ok(c) => git_dir.join(c.trim()),
                Err(_) => git_dir.clone(),
            };
            let canon = |p: PathBuf| fs::canonicalize(&p).unwrap_or(p);
            return Some(GitDirs {
                top: canon(dir),
                git_dir: canon(git_dir),
                common_dir: canon(common_dir),
            });
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// The state directory and the paths inside it.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at an explicit path.
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Resolve from an explicit path, `$MT_DIR`, or the repository around the
    /// current directory. Nothing is created.
    pub fn resolve(explicit: Option<&Path>) -> Result<StateDir> {
        if let Some(p) = explicit {
            return Ok(StateDir::at(p));
        }
        if let Some(p) = std::env::var_os("MT_DIR").filter(|p| !p.is_empty()) {
            return Ok(StateDir::at(PathBuf::from(p)));
        }
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        match discover_git(&cwd) {
            Some(g) => Ok(StateDir::at(g.common_dir.join("mt"))),
            None => Err(fail(
                UNAVAILABLE,
                format!(
                    "no state directory: {} is not inside a git repository and MT_DIR is not set",
                    cwd.display()
                ),
            )),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the root (mode 0700) if needed and refuse one that belongs to
    /// another user: its owner could redirect what we write.
    pub fn ensure(&self) -> Result<()> {
        fsutil::ensure_dir(&self.root)?;
        self.check_owner()
    }

    /// Refuse a state directory owned by someone else.
    pub fn check_owner(&self) -> Result<()> {
        let meta = fs::metadata(&self.root)
            .with_context(|| format!("cannot read state directory {}", self.root.display()))
            .code(CANTCREAT)?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(fail(
                CANTCREAT,
                format!(
                    "state directory {} belongs to uid {}, not to you (uid {me}); refusing to use it",
                    self.root.display(),
                    meta.uid()
                ),
            ));
        }
        Ok(())
    }

    /// Whether the root exists at all (readers need not create it).
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    pub fn channels(&self) -> PathBuf {
        self.root.join("channels")
    }

    /// `channels/<name>`; the name must already be checked.
    pub fn channel(&self, name: &str) -> PathBuf {
        debug_assert!(names::is_valid(name));
        self.channels().join(name)
    }

    /// `cursors/<agent>`.
    pub fn cursors(&self, agent: &str) -> PathBuf {
        debug_assert!(names::is_valid(agent));
        self.root.join("cursors").join(agent)
    }

    /// `agents/<name>`.
    pub fn agent(&self, name: &str) -> PathBuf {
        debug_assert!(names::is_valid(name));
        self.root.join("agents").join(name)
    }

    /// The agent's liveness lock: its supervisor holds an exclusive lock on
    /// this file for exactly as long as the agent runs.
    pub fn agent_lock(&self, name: &str) -> PathBuf {
        self.agent(name).join("running.lock")
    }

    /// Whether the agent's supervisor is alive (its liveness lock is held).
    pub fn agent_running(&self, name: &str) -> Result<bool> {
        crate::infra::lock::is_held(&self.agent_lock(name))
    }

    pub fn agents(&self) -> PathBuf {
        self.root.join("agents")
    }

    pub fn watch(&self) -> PathBuf {
        self.root.join("watch")
    }

    pub fn reminders(&self) -> PathBuf {
        self.root.join("reminders")
    }
}

/// The default channel: `$MT_CHANNEL`, else `general`.
pub fn default_channel() -> String {
    std::env::var("MT_CHANNEL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "general".into())
}

/// Claude Code's configuration directory: `$CLAUDE_CONFIG_DIR`, else
/// `~/.claude`.
pub fn claude_config_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".claude")),
        None => Err(fail(
            UNAVAILABLE,
            "cannot find Claude Code's directory: neither CLAUDE_CONFIG_DIR nor HOME is set",
        )),
    }
}

/// Who is speaking: `$MT_AGENT`, else `None`.
pub fn env_agent() -> Option<String> {
    std::env::var("MT_AGENT").ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_common_dir_through_gitdir_file() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("repo");
        let common = main.join(".git");
        let wt_git = common.join("worktrees").join("w1");
        fs::create_dir_all(&wt_git).unwrap();
        fs::write(wt_git.join("commondir"), "../..\n").unwrap();
        let wt = d.path().join("w1");
        fs::create_dir_all(wt.join("sub")).unwrap();
        fs::write(wt.join(".git"), format!("gitdir: {}\n", wt_git.display())).unwrap();

        let from_main = discover_git(&main).unwrap();
        let from_wt = discover_git(&wt.join("sub")).unwrap();
        assert_eq!(from_main.common_dir, from_wt.common_dir);
        assert_eq!(from_wt.top, fs::canonicalize(&wt).unwrap());
        assert_eq!(from_wt.git_dir, fs::canonicalize(&wt_git).unwrap());
    }
}
