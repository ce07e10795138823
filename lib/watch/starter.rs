//! Making sure a watcher runs for a state directory, for `mt-lead`: the
//! installed systemd user unit when it watches this repository, else a
//! detached `mt-watch` in a session of its own. The default rules are
//! written first when there are none.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::exit::{UNAVAILABLE, fail};
use crate::infra::{fsutil, lock};
use crate::statedir::StateDir;

/// What `ensure` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// A watcher was already running, with this pid.
    Running(u32),
    /// This call started one (pid), detached.
    Detached(u32),
    /// This call started the systemd user unit.
    Systemd(String),
}

/// The systemd user unit `mt-lead` prefers, when installed.
pub const UNIT: &str = "mt-watch.service";

/// Make sure a watcher runs for `state` with the rules at `rules` (the
/// default rules, for `channel`, are written there when it is missing).
pub fn ensure(state: &StateDir, rules: &Path, channel: &str) -> Result<Started> {
    fsutil::ensure_subdir(&state.watch())?;
    // Two leads starting at once: the second waits and finds the first's.
    let _turn = lock::exclusive_within(&state.watch().join("start.lock"), Duration::from_secs(10))?;
    if let Some(pid) = super::engine::running(state)? {
        return Ok(Started::Running(pid));
    }
    write_default_rules(rules, channel)?;
    if let Some(unit) = systemd_unit_for(state) {
        let ok = Command::new("systemctl")
            .args(["--user", "start", &unit])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok && wait_running(state, Duration::from_secs(5))?.is_some() {
            return Ok(Started::Systemd(unit));
        }
    }
    let program = crate::spawn::sibling_program("mt-watch").ok_or_else(|| {
        fail(
            UNAVAILABLE,
            "cannot find mt-watch beside this program or in PATH",
        )
    })?;
    detach(state, &program, rules, channel)?;
    match wait_running(state, Duration::from_secs(5))? {
        Some(pid) => Ok(Started::Detached(pid)),
        None => Err(fail(
            UNAVAILABLE,
            format!(
                "the watcher did not start; see {}",
                state.watch().join("log").display()
            ),
        )),
    }
}

/// Write the example rules, for the team's channel, unless a rules file
/// exists (it is the user's then, and left alone).
fn write_default_rules(rules: &Path, channel: &str) -> Result<()> {
    let text = crate::cli::watch::DEFAULT_RULES
        .replace("channel:general", &format!("channel:{channel}"))
        .replace("#general", &format!("#{channel}"));
    if let Some(dir) = rules.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match fsutil::options().write(true).create_new(true).open(rules) {
        Ok(mut f) => f
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", rules.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", rules.display())),
    }
}

/// Start `mt-watch` in a session of its own, reparented to init (a double
/// fork), so it outlives the lead and is nobody's zombie. Its own messages
/// go to watch/log.
fn detach(state: &StateDir, program: &Path, rules: &Path, channel: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let log = fsutil::options()
        .append(true)
        .create(true)
        .open(state.watch().join("log"))
        .context("cannot open the watcher's log")?;
    let mut c = Command::new(program);
    c.arg("--rules")
        .arg(rules)
        .arg("--channel")
        .arg(channel)
        .env("MT_DIR", state.root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    for k in crate::spawn::CLEANED_ENV {
        c.env_remove(k);
    }
    // SAFETY: only setsid, fork and _exit run between fork and exec, all
    // async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            match nix::unistd::fork().map_err(std::io::Error::from)? {
                nix::unistd::ForkResult::Parent { .. } => nix::libc::_exit(0),
                nix::unistd::ForkResult::Child => Ok(()),
            }
        });
    }
    // The child seen here is the middle process, gone at once.
    let mut mid = c
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let _ = mid.wait();
    Ok(())
}

fn wait_running(state: &StateDir, within: Duration) -> Result<Option<u32>> {
    let until = Instant::now() + within;
    loop {
        if let Some(pid) = super::engine::running(state)? {
            return Ok(Some(pid));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The installed user unit, when it watches this state directory: its
/// `WorkingDirectory=` lies in the same repository (or its `MT_DIR` is
/// this one).
fn systemd_unit_for(state: &StateDir) -> Option<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let conf = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let text = std::fs::read_to_string(conf.join("systemd/user").join(UNIT)).ok()?;
    let here = std::fs::canonicalize(state.root()).ok()?;
    for line in text.lines().map(str::trim) {
        let dir = line
            .strip_prefix("WorkingDirectory=")
            .map(|d| d.replace("%h", &home.to_string_lossy()));
        let env_dir = line
            .strip_prefix("Environment=MT_DIR=")
            .map(|d| d.replace("%h", &home.to_string_lossy()));
        if let Some(d) = env_dir
            && std::fs::canonicalize(d).ok().as_ref() == Some(&here)
        {
            return Some(UNIT.into());
        }
        if let Some(d) = dir
            && let Some(g) = crate::statedir::discover_git(Path::new(&d))
            && std::fs::canonicalize(g.common_dir.join("mt")).ok().as_ref() == Some(&here)
        {
            return Some(UNIT.into());
        }
    }
    None
}
