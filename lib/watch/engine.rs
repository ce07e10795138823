//! The watcher's loop: decide what is due, run it with `sh -c`, log its
//! output, remember the outcome.
//!
//! One thread, one `poll`: on the signal descriptor (child exits, stop and
//! reload requests), on the inotify descriptor (which only says "rescan"),
//! and on each running command's output pipe. The timeout is the nearest
//! timer deadline, capped by the rescan period; nothing polls in a loop.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::rules::{self, Context as RulesContext, Rule, Trigger};
use super::scan;
use super::state::{RuleState, StateFile};
use crate::channel::{self, Draft};
use crate::exit::{TEMPFAIL, UNAVAILABLE, fail};
use crate::infra::time;
use crate::infra::wake::Waker;
use crate::statedir::StateDir;
use crate::{infra::fsutil, infra::lock};

/// How the watcher was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub rules_path: PathBuf,
    /// Run what is due now, wait for it, exit.
    pub once: bool,
    /// Print what is due, run nothing, change nothing.
    pub dry_run: bool,
    /// How often everything watched is rescanned regardless of
    /// notifications.
    pub rescan: Duration,
    /// Use inotify to wake early (off: rescans only).
    pub notify: bool,
    /// Where failures are posted; also given to commands as MT_CHANNEL.
    pub channel: String,
}

/// The log is started afresh (the old one kept as `log.1`) past this size.
const LOG_MAX: u64 = 4 << 20;
/// How long the rules file must stay unchanged before it is reloaded.
const RULES_SETTLE: Duration = Duration::from_millis(100);
/// Lines of a failing command's output quoted in its error record.
const TAIL_LINES: usize = 5;

/// Whether a rule should run now, and why; or when it next might.
#[derive(Debug, PartialEq)]
pub enum Due {
    Now {
        why: String,
        changed: String,
    },
    /// Not due; the time it next becomes due, for timer rules.
    Later(Option<DateTime<Utc>>),
}

/// Decide from a rule's saved state, the current fingerprint of what it
/// watches, and the time.
pub fn due(rule: &Rule, rs: &RuleState, fp: Option<&str>, now: DateTime<Utc>) -> Due {
    // A period that starts in the future means the clock was set back:
    // count from now rather than wait for the old time to come round.
    let since = rs
        .since
        .as_deref()
        .and_then(time::parse_stamp)
        .map(|t| t.min(now));
    match &rule.trigger {
        Trigger::Every(iv) => {
            let Some(since) = since else {
                return Due::Now {
                    why: "first run".into(),
                    changed: String::new(),
                };
            };
            let at = since + chrono::Duration::from_std(*iv).unwrap_or(chrono::Duration::MAX);
            if at <= now {
                Due::Now {
                    why: rule.spec.clone(),
                    changed: String::new(),
                }
            } else {
                Due::Later(Some(at))
            }
        }
        Trigger::Cron(cron) => {
            // A cron rule first seen now waits for its next slot.
            let Some(since) = since else {
                return Due::Later(rules::next_cron(cron, now));
            };
            match rules::next_cron(cron, since) {
                Some(at) if at <= now => Due::Now {
                    why: format!("scheduled for {}", time::stamp(at)),
                    changed: String::new(),
                },
                at => Due::Later(at),
            }
        }
        Trigger::Change(target) => match fp {
            Some(fp) if rs.fingerprint.as_deref() != Some(fp) => Due::Now {
                why: if rs.fingerprint.is_none() {
                    format!("first scan of {target}")
                } else {
                    format!("{target} changed")
                },
                changed: target.to_string(),
            },
            _ => Due::Later(None),
        },
    }
}

/// Read and parse a rules file.
pub fn load_rules(path: &Path, state: &StateDir, base: &Path) -> Result<Vec<Rule>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(fail(
                UNAVAILABLE,
                format!(
                    "no rules file at {}: write one with mt-watch --init, or pass --rules FILE",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let ctx = RulesContext {
        state,
        base,
        task_list: crate::tasks::list_name(None, Some(state)).ok(),
    };
    rules::parse_rules(&text, path, &ctx)
}

/// Where commands run: the top of the repository around the current
/// directory, else the current directory.
pub fn command_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(crate::statedir::discover_git(&cwd)
        .map(|g| g.top)
        .unwrap_or(cwd))
}

/// Run the watcher (or one pass of it) until done or stopped.
pub fn run(state: &StateDir, opts: Options) -> Result<u8> {
    state.ensure()?;
    let state = StateDir::at(std::fs::canonicalize(state.root())?);
    let root = command_root()?;
    let rules = load_rules(&opts.rules_path, &state, &root)?;
    if opts.dry_run {
        return dry_run(&state, &rules);
    }
    fsutil::ensure_subdir(&state.watch())?;
    let _lock = take_lock(&state)?;
    let mut eng = Engine::new(state, opts, root, rules)?;
    eng.main_loop()
}

/// The pid of the watcher running for `state`, if one holds its lock (0
/// when the holder has not written its pid yet).
pub fn running(state: &StateDir) -> Result<Option<u32>> {
    let path = state.watch().join("LOCK");
    if !lock::is_held(&path)? {
        return Ok(None);
    }
    let pid = std::fs::read_to_string(&path).unwrap_or_default();
    Ok(Some(pid.trim().parse().unwrap_or(0)))
}

/// One watcher per state directory: the lock is held for the whole run.
fn take_lock(state: &StateDir) -> Result<File> {
    let path = state.watch().join("LOCK");
    match lock::try_exclusive(&path)? {
        Some(mut f) => {
            // Who holds it, for the message a second watcher prints.
            let _ = f.set_len(0);
            let _ = writeln!(f, "{}", std::process::id());
            Ok(f)
        }
        None => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            let who = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            Err(fail(
                TEMPFAIL,
                format!(
                    "another mt-watch{who} is already running for {}; only one runs per state directory",
                    state.root().display()
                ),
            ))
        }
    }
}

fn dry_run(state: &StateDir, rules: &[Rule]) -> Result<u8> {
    let mut st = StateFile::load(&state.watch().join("state.json"))?;
    let now = super::now();
    let w = rules.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = io::BufWriter::new(io::stdout().lock());
    for r in rules {
        let fp = match &r.trigger {
            Trigger::Change(t) => Some(scan::fingerprint(t, state)),
            _ => None,
        };
        let rs = st.entry(&r.name, &r.key());
        let when = match due(r, rs, fp.as_deref(), now) {
            Due::Now { why, .. } => format!("run   {:<w$}  ({why})", r.name),
            Due::Later(Some(t)) => format!("wait  {:<w$}  (next {})", r.name, time::stamp(t)),
            Due::Later(None) => format!("wait  {:<w$}  (until {} changes)", r.name, r.spec),
        };
        writeln!(out, "{when}  {}", r.command)?;
    }
    out.flush()?;
    Ok(0)
}

/// `watch/log`: one line per event or line of output, written whole.
struct Log {
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl Log {
    fn open(path: PathBuf) -> Log {
        let file = fsutil::open_append(&path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Log { path, file, size }
    }

    fn line(&mut self, who: &str, text: &str) {
        let line = format!("{} {who}: {text}\n", time::now_stamp());
        if self.size + line.len() as u64 > LOG_MAX {
            let _ = std::fs::rename(&self.path, self.path.with_extension("1"));
            *self = Log::open(self.path.clone());
        }
        match self.file.as_mut().map(|f| f.write_all(line.as_bytes())) {
            Some(Ok(())) => self.size += line.len() as u64,
            // The log is a convenience: losing it must not stop the rules.
            _ => eprintln!("mt-watch: (log unavailable) {who}: {text}"),
        }
    }
}

/// A command's combined stdout and stderr, read as it comes.
struct Output {
    rule: String,
    pipe: File,
    partial: Vec<u8>,
    tail: VecDeque<String>,
    eof: bool,
}

impl Output {
    /// Read what is available, logging each complete line.
    fn pump(&mut self, log: &mut Log) {
        let mut buf = [0u8; 16 << 10];
        // Bounded, so one chatty command cannot starve the others.
        for _ in 0..16 {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    if !self.partial.is_empty() {
                        let rest = std::mem::take(&mut self.partial);
                        self.emit(&rest, log);
                    }
                    return;
                }
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = self.partial.drain(..=i).collect();
                        self.emit(&line[..i], log);
                    }
                    if self.partial.len() > 64 << 10 {
                        let long = std::mem::take(&mut self.partial);
                        self.emit(&long, log);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }

    fn emit(&mut self, line: &[u8], log: &mut Log) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        log.line(&self.rule, text);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.chars().take(500).collect());
    }
}

struct Running {
    child: Child,
    out: Output,
    started: Instant,
    command: String,
}

struct Engine {
    state: StateDir,
    opts: Options,
    root: PathBuf,
    rules: Vec<Rule>,
    rules_fp: String,
    st: StateFile,
    st_path: PathBuf,
    dirty: bool,
    /// Current fingerprints of the change rules' targets, by rule name.
    fps: HashMap<String, String>,
    running: BTreeMap<String, Running>,
    /// Output of finished commands whose pipe a background child still
    /// holds open.
    drains: Vec<Output>,
    /// The fingerprint a change rule was last skipped for, so one pending
    /// change counts as one skipped run.
    skipped_for: HashMap<String, String>,
    log: Log,
    waker: Option<Waker>,
    signals: SignalFd,
    stopping: u8,
    /// Rescan on the next turn (the rules were reloaded).
    force_scan: bool,
    /// When to reload the rules file, which changed.
    reload_at: Option<Instant>,
}

/// inotify for the watcher; without it (the per-user limit reached, or
/// MT_INOTIFY=0) the watcher still works, rescanning at least every
/// second, with a warning.
fn start_notify(opts: &mut Options, log: &mut Log) -> Option<Waker> {
    match Waker::new() {
        Ok(w) => Some(w),
        Err(e) => {
            opts.rescan = opts.rescan.min(crate::infra::wake::DEGRADED);
            let msg = format!(
                "{e:#}; rescanning every {}",
                crate::infra::time::format_duration(opts.rescan)
            );
            if !crate::infra::wake::inotify_off() {
                eprintln!("mt-watch: {msg}");
            }
            log.line("mt-watch", &msg);
            None
        }
    }
}

impl Engine {
    fn new(state: StateDir, opts: Options, root: PathBuf, rules: Vec<Rule>) -> Result<Engine> {
        let st_path = state.watch().join("state.json");
        let st = StateFile::load(&st_path)?;
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        // Blocked here, delivered through the descriptor; std resets the
        // mask in the children it starts.
        mask.thread_block().context("cannot block signals")?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("cannot create a signal descriptor")?;
        let mut log = Log::open(state.watch().join("log"));
        let mut opts = opts;
        // A single pass (--once) evaluates once and never waits for a change.
        let waker = if opts.notify && !opts.once {
            start_notify(&mut opts, &mut log)
        } else {
            None
        };
        let rules_fp = rules_fingerprint(&opts.rules_path);
        Ok(Engine {
            state,
            opts,
            root,
            rules,
            rules_fp,
            st,
            st_path,
            dirty: false,
            fps: HashMap::new(),
            running: BTreeMap::new(),
            drains: Vec::new(),
            skipped_for: HashMap::new(),
            log,
            waker,
            signals,
            stopping: 0,
            force_scan: false,
            reload_at: None,
        })
    }

    fn main_loop(&mut self) -> Result<u8> {
        // A pass of --once every minute would fill the log with these.
        if !self.opts.once {
            self.log.line(
                "mt-watch",
                &format!(
                    "watching: {} rules from {} (pid {})",
                    self.rules.len(),
                    self.opts.rules_path.display(),
                    std::process::id()
                ),
            );
        }
        let mut last_scan: Option<Instant> = None;
        let mut woken = false;
        let mut first = true;
        loop {
            if woken || self.force_scan || last_scan.is_none_or(|t| t.elapsed() >= self.opts.rescan)
            {
                self.force_scan = false;
                self.rescan();
                last_scan = Some(Instant::now());
                woken = false;
            }
            if self.reload_at.is_some_and(|t| t <= Instant::now()) {
                self.reload_at = None;
                self.reload();
                continue;
            }
            self.reap();
            let mut next = None;
            if self.stopping == 0 && (first || !self.opts.once) {
                next = self.evaluate(super::now());
            }
            first = false;
            if self.dirty {
                self.save();
            }
            if self.running.is_empty() && (self.opts.once || self.stopping > 0) {
                break;
            }

            let mut timeout = self
                .opts
                .rescan
                .saturating_sub(last_scan.map_or(Duration::ZERO, |t| t.elapsed()));
            if let Some(t) = next {
                let wait = (t - super::now()).to_std().unwrap_or(Duration::ZERO);
                timeout = timeout.min(wait);
            }
            if let Some(t) = self.reload_at {
                timeout = timeout.min(t.saturating_duration_since(Instant::now()));
            }
            let ready = self.wait(timeout)?;
            if ready.signals {
                self.handle_signals();
            }
            if ready.notified {
                if let Some(w) = &self.waker {
                    w.drain();
                }
                woken = true;
            }
            for name in ready.outputs {
                if let Some(r) = self.running.get_mut(&name) {
                    r.out.pump(&mut self.log);
                }
            }
            for i in ready.drains.into_iter().rev() {
                self.drains[i].pump(&mut self.log);
                if self.drains[i].eof {
                    self.drains.swap_remove(i);
                }
            }
        }
        self.save();
        if !self.opts.once || self.stopping > 0 {
            self.log.line("mt-watch", "stopped");
        }
        Ok(0)
    }

    /// Block in poll until something is ready or `timeout` passes.
    fn wait(&self, timeout: Duration) -> Result<Ready> {
        // Round up, so we never wake a little early and spin until due.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        if let Some(w) = &self.waker {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
        }
        let outs: Vec<&String> = self
            .running
            .iter()
            .filter(|(_, r)| !r.out.eof)
            .map(|(n, _)| n)
            .collect();
        for n in &outs {
            fds.push(PollFd::new(
                self.running[*n].out.pipe.as_fd(),
                PollFlags::POLLIN,
            ));
        }
        for d in &self.drains {
            fds.push(PollFd::new(d.pipe.as_fd(), PollFlags::POLLIN));
        }
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => return Err(e).context("poll failed"),
        }
        let hit = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let mut ready = Ready {
            signals: hit(&fds[0]),
            ..Ready::default()
        };
        let mut i = 1;
        if self.waker.is_some() {
            ready.notified = hit(&fds[1]);
            i = 2;
        }
        for n in outs {
            if hit(&fds[i]) {
                ready.outputs.push(n.clone());
            }
            i += 1;
        }
        for d in 0..self.drains.len() {
            if hit(&fds[i]) {
                ready.drains.push(d);
            }
            i += 1;
        }
        Ok(ready)
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => {
                    self.stopping += 1;
                    let sig = if self.stopping == 1 {
                        Signal::SIGTERM
                    } else {
                        Signal::SIGKILL
                    };
                    self.log.line(
                        "mt-watch",
                        &format!(
                            "stopping: sending {sig} to {} running commands",
                            self.running.len()
                        ),
                    );
                    for r in self.running.values() {
                        let _ = killpg(Pid::from_raw(r.child.id() as i32), sig);
                    }
                }
                Ok(Signal::SIGHUP) => self.reload(),
                _ => {} // SIGCHLD: reap() runs on every turn of the loop.
            }
        }
    }

    /// Recompute the fingerprints of everything watched, renew the
    /// notification watches, and reload the rules if their file changed.
    fn rescan(&mut self) {
        let fp = rules_fingerprint(&self.opts.rules_path);
        if fp != self.rules_fp {
            // Editors write in steps: reload once the file has been quiet
            // for a moment, not on a half-written version.
            self.rules_fp = fp;
            self.reload_at = Some(Instant::now() + RULES_SETTLE);
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for r in &self.rules {
            if let Trigger::Change(t) = &r.trigger {
                self.fps
                    .insert(r.name.clone(), scan::fingerprint(t, &self.state));
                dirs.extend(scan::notify_dir(&scan::target_path(t, &self.state)));
            }
        }
        if let Some(w) = &self.waker {
            dirs.extend(scan::notify_dir(&self.opts.rules_path));
            dirs.sort();
            dirs.dedup();
            // Renewed on every scan: a directory created or replaced since
            // the last one gets its watch here.
            for d in dirs {
                let _ = w.watch_dir(&d);
            }
        }
    }

    fn reload(&mut self) {
        match load_rules(&self.opts.rules_path, &self.state, &self.root) {
            Ok(rules) => {
                self.log.line(
                    "mt-watch",
                    &format!("rules reloaded: {} rules", rules.len()),
                );
                self.rules = rules;
                self.fps.clear();
                self.force_scan = true;
                self.dirty = true;
            }
            Err(e) => {
                let msg = format!("rules not reloaded, keeping the old ones: {e:#}");
                self.log.line("mt-watch", &msg);
                self.post_error(&msg, serde_json::json!({"rules": self.opts.rules_path}));
            }
        }
    }

    /// Start what is due; return the nearest future deadline.
    fn evaluate(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            let fp = self.fps.get(&rule.name).cloned();
            let rs = self.st.entry(&rule.name, &rule.key());
            if matches!(rule.trigger, Trigger::Cron(_)) && rs.since.is_none() {
                rs.since = Some(time::stamp(now));
                self.dirty = true;
            }
            if let Due::Now { why, changed } = due(&rule, rs, fp.as_deref(), now) {
                if self.running.contains_key(&rule.name) {
                    self.skip(&rule, fp.clone(), now);
                } else {
                    self.start(&rule, &why, &changed, fp.clone(), now);
                }
            }
            let rs = self.st.entry(&rule.name, &rule.key());
            if let Due::Later(Some(t)) = due(&rule, rs, fp.as_deref(), now) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// A due rule whose last run is still going: not started again.
    fn skip(&mut self, rule: &Rule, fp: Option<String>, now: DateTime<Utc>) {
        let rs = self.st.entry(&rule.name, &rule.key());
        match &rule.trigger {
            // A change stays pending and runs when the current run ends;
            // count it once.
            Trigger::Change(_) => {
                let fp = fp.unwrap_or_default();
                if self.skipped_for.get(&rule.name) == Some(&fp) {
                    return;
                }
                self.skipped_for.insert(rule.name.clone(), fp);
            }
            // A timer slot that passes during a run is dropped.
            _ => rs.since = Some(time::stamp(now)),
        }
        rs.skipped += 1;
        self.dirty = true;
        self.log
            .line(&rule.name, "still running; this run is skipped");
    }

    fn start(
        &mut self,
        rule: &Rule,
        why: &str,
        changed: &str,
        fp: Option<String>,
        now: DateTime<Utc>,
    ) {
        let rs = self.st.entry(&rule.name, &rule.key());
        match &rule.trigger {
            Trigger::Change(_) => rs.fingerprint = fp,
            _ => rs.since = Some(time::stamp(now)),
        }
        rs.last_start = Some(time::now_stamp());
        rs.runs += 1;
        self.dirty = true;
        self.skipped_for.remove(&rule.name);
        self.log
            .line(&rule.name, &format!("start ({why}): {}", rule.command));
        match self.spawn(rule, changed) {
            Ok((child, pipe)) => {
                let rs = self.st.entry(&rule.name, &rule.key());
                rs.pid = Some(child.id());
                self.running.insert(
                    rule.name.clone(),
                    Running {
                        child,
                        out: Output {
                            rule: rule.name.clone(),
                            pipe,
                            partial: Vec::new(),
                            tail: VecDeque::new(),
                            eof: false,
                        },
                        started: Instant::now(),
                        command: rule.command.clone(),
                    },
                );
            }
            Err(e) => {
                let tail = vec![format!("cannot start sh: {e}")];
                self.finished(&rule.name, &rule.command, 127, Duration::ZERO, &tail);
            }
        }
    }

    fn spawn(&self, rule: &Rule, changed: &str) -> io::Result<(Child, File)> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let w2 = w.try_clone()?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(&rule.command)
            .current_dir(&self.root)
            .env("MT_DIR", self.state.root())
            .env("MT_CHANNEL", &self.opts.channel)
            .env("MT_RULE", &rule.name)
            .env("MT_CHANGED", changed)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2))
            // Its own process group, so stopping reaches its children.
            .process_group(0)
            .spawn()?;
        Ok((child, File::from(r)))
    }

    /// Collect commands that have exited.
    fn reap(&mut self) {
        let done: Vec<(String, ExitStatus)> = self
            .running
            .iter_mut()
            .filter_map(|(n, r)| match r.child.try_wait() {
                Ok(Some(s)) => Some((n.clone(), s)),
                _ => None,
            })
            .collect();
        for (name, status) in done {
            let Some(mut r) = self.running.remove(&name) else {
                continue;
            };
            r.out.pump(&mut self.log);
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            let tail: Vec<String> = r.out.tail.iter().cloned().collect();
            self.finished(&name, &r.command, code, r.started.elapsed(), &tail);
            if !r.out.eof {
                self.drains.push(r.out);
            }
        }
    }

    fn finished(&mut self, name: &str, command: &str, code: i32, took: Duration, tail: &[String]) {
        self.log.line(
            name,
            &format!("exit {code} after {}", time::format_duration(took)),
        );
        let mut first_failure = false;
        if let Some(rs) = self.st.rules.get_mut(name) {
            rs.pid = None;
            rs.last_end = Some(time::now_stamp());
            rs.last_exit = Some(code);
            rs.last_duration_ms = Some(took.as_millis() as u64);
            if code == 0 {
                rs.fail_streak = 0;
            } else {
                rs.failures += 1;
                rs.fail_streak += 1;
                first_failure = rs.fail_streak == 1;
            }
            self.dirty = true;
        }
        // One record per streak of failures: a rule that keeps failing, or
        // that watches the channel it reports to, cannot flood it.
        if first_failure {
            let mut msg = format!("rule {name} failed with exit {code}: {command}");
            for l in tail {
                msg.push_str("\n  ");
                msg.push_str(l);
            }
            let meta = serde_json::json!({"rule": name, "exit": code, "command": command});
            self.post_error(&msg, meta);
        }
    }

    fn post_error(&mut self, content: &str, meta: serde_json::Value) {
        let draft = Draft {
            from: "mt-watch".into(),
            kind: "error".into(),
            content: content.to_string(),
            meta: Some(meta),
            ..Draft::default()
        };
        if let Err(e) = channel::post(&self.state, &self.opts.channel, &draft) {
            self.log.line(
                "mt-watch",
                &format!("cannot post to channel {}: {e:#}", self.opts.channel),
            );
        }
    }

    /// Write the state. Entries of rules no longer in the file are kept:
    /// a rule put back (or a file caught half-written) finds its state.
    fn save(&mut self) {
        match self.st.save(&self.st_path) {
            Ok(()) => self.dirty = false,
            Err(e) => self
                .log
                .line("mt-watch", &format!("cannot save state: {e:#}")),
        }
    }
}

#[derive(Default)]
struct Ready {
    signals: bool,
    notified: bool,
    outputs: Vec<String>,
    drains: Vec<usize>,
}

/// The rules file's own fingerprint, to notice edits.
fn rules_fingerprint(path: &Path) -> String {
    scan::fingerprint(&rules::Target::Path(path.to_path_buf()), &StateDir::at("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::rules::Target;

    fn rule(spec: &str) -> Rule {
        let state = StateDir::at("/nonexistent");
        let ctx = RulesContext {
            state: &state,
            base: Path::new("/"),
            task_list: None,
        };
        rules::parse_rules(&format!("{spec} true"), Path::new("r"), &ctx)
            .unwrap()
            .remove(0)
    }

    fn at(s: &str) -> DateTime<Utc> {
        time::parse_stamp(s).unwrap()
    }

    #[test]
    fn clock_set_back_does_not_stall_timers() {
        let r = rule("@every 10m");
        let rs = RuleState {
            since: Some("2030-01-01T00:00:00.000Z".into()),
            ..RuleState::default()
        };
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            due(&r, &rs, None, now),
            Due::Later(Some(at("2026-01-01T00:10:00Z")))
        );
    }

    #[test]
    fn interval_due() {
        let r = rule("@every 10m");
        let mut rs = RuleState::default();
        assert!(matches!(
            due(&r, &rs, None, at("2026-01-01T00:00:00Z")),
            Due::Now { .. }
        ));
        rs.since = Some("2026-01-01T00:00:00.000Z".into());
        assert_eq!(
            due(&r, &rs, None, at("2026-01-01T00:09:59Z")),
            Due::Later(Some(at("2026-01-01T00:10:00Z")))
        );
        assert!(matches!(
            due(&r, &rs, None, at("2026-01-01T00:10:00Z")),
            Due::Now { .. }
        ));
    }

    #[test]
    fn cron_due_once_per_slot() {
        let r = rule("*/5 * * * *");
        let mut rs = RuleState::default();
        assert!(matches!(
            due(&r, &rs, None, at("2026-01-01T00:00:00Z")),
            Due::Later(Some(_))
        ));
        rs.since = Some("2000-01-01T00:00:00.000Z".into());
        assert!(matches!(
            due(&r, &rs, None, at("2026-01-01T00:00:00Z")),
            Due::Now { .. }
        ));
        rs.since = Some("2026-01-01T00:00:00.000Z".into());
        assert!(matches!(
            due(&r, &rs, None, at("2026-01-01T00:00:30Z")),
            Due::Later(Some(_))
        ));
    }

    #[test]
    fn change_due_when_fingerprint_moves() {
        let r = rule("@change channel:x");
        assert!(matches!(r.trigger, Trigger::Change(Target::Channel(_))));
        let mut rs = RuleState::default();
        let now = at("2026-01-01T00:00:00Z");
        assert!(matches!(due(&r, &rs, Some("a"), now), Due::Now { .. }));
        rs.fingerprint = Some("a".into());
        assert_eq!(due(&r, &rs, Some("a"), now), Due::Later(None));
        match due(&r, &rs, Some("b"), now) {
            Due::Now { changed, .. } => assert_eq!(changed, "channel:x"),
            d => panic!("{d:?}"),
        }
    }
}
