//! The supervisor: one small process per agent, holding its liveness lock
//! while the agent runs. It waits in poll(2) on the agent's stdout and
//! stderr, the inbox's doorbell and a signalfd (SIGCHLD and termination
//! signals) — it never polls on a timer, so an idle agent costs no CPU.
//! The doorbell is a FIFO that nudgers write a byte to after delivering
//! (see wake.rs): no inotify instance per agent, whose per-user limit would
//! stop the 128th; without a FIFO the inbox is rescanned every second.
//!
//! - every stdout line goes to events.jsonl, and updates status.json;
//! - stderr goes to stderr.log;
//! - each file arriving in inbox/new is written to the agent's stdin as one
//!   stream-json user message, then moved to inbox/cur (delivered once);
//! - `--idle-exit` closes stdin after that long without activity;
//! - the agent runs in a session (and process group) of its own, with
//!   PR_SET_PDEATHSIG=SIGKILL, so it dies with the supervisor even when the
//!   supervisor is killed with SIGKILL; SIGTERM, SIGINT or SIGHUP to the
//!   supervisor stop the agent's group first;
//! - when the agent ends, whatever is left of its session is killed, and
//!   every child (the supervisor is a child subreaper) is reaped;
//! - start, exit, failure and rate limits are posted to the channel.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{Pid, getpid, getppid, setsid};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::State;
use crate::channel::{self, Draft};
use crate::exit::{SOFTWARE, UNAVAILABLE, fail};
use crate::infra::time;
use crate::infra::wake::{DEGRADED, Doorbell};
use crate::spawn::{self, Plan};
use crate::stream::{self, Notice, Tracker};
use crate::{infra::fsutil, infra::procs};

/// How long the agent gets between SIGTERM and SIGKILL when the supervisor
/// itself is told to stop.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to keep reading the agent's output after it exited (a process
/// that escaped its session may hold the pipe).
const DRAIN: Duration = Duration::from_secs(2);
/// A stdout line longer than this is stored in pieces.
const MAX_LINE: usize = 32 << 20;

/// Supervise `plan` until the agent ends for good; returns its exit code
/// (128+N for signal N). `held` is the liveness lock, released on return.
/// `handshake`, when detached, is told `ok <pid>` or `err <code> <msg>`.
pub fn supervise(mut plan: Plan, held: File, mut handshake: Option<File>) -> Result<u8> {
    let result = supervise_runs(&mut plan, &mut handshake);
    if let Err(e) = &result {
        // Still under the lock: no other start can be overwritten.
        record_failed_start(&plan, e);
    }
    drop(held);
    // Failed before the agent started: the one error mt-spawn reports, once
    // the lock is free (so mt-spawn's caller never sees it still held).
    if let (Err(e), Some(mut h)) = (&result, handshake.take()) {
        let msg = format!("{e:#}").replace('\n', " ");
        let _ = writeln!(h, "err {} {msg}", crate::exit::code_of(e));
    }
    result
}

/// A start that failed before the agent ran (no descriptor, no process
/// left): record why, so the agent shows failed rather than lost.
fn record_failed_start(plan: &Plan, e: &anyhow::Error) {
    let Ok(Some(mut st)) = plan.agent.read_status() else {
        return;
    };
    if st.state != State::Starting || st.pid.is_some() {
        return;
    }
    let now = time::now_stamp();
    st.state = State::Failed;
    st.error = Some("spawn".into());
    st.error_detail = Some(format!("{e:#}"));
    st.ended_at = Some(now.clone());
    st.updated_at = Some(now);
    let _ = plan.agent.write_status(&st);
}

fn supervise_runs(plan: &mut Plan, handshake: &mut Option<File>) -> Result<u8> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    // Blocked signals queue for the signalfd; the agent gets a clean mask.
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).context("sigprocmask")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("cannot create a signalfd")?;
    // Orphans of the agent's tree become our children, so we reap them.
    let _ = prctl::set_child_subreaper(true);

    let mut resumes = Resumes::default();
    let result = loop {
        let started = Instant::now();
        let outcome = match Run::start(plan, &sfd, handshake) {
            Ok(run) => run.supervise(),
            Err(e) => break Err(e),
        };
        match outcome {
            Ok(Outcome::Resume(status)) => {
                match resumes.next(started.elapsed()) {
                    Some(pause) if pause_for(plan, &sfd, pause) => {}
                    Some(_) => break Ok(0),
                    None => {
                        post_record(
                            plan,
                            "system",
                            &format!(
                                "not resumed: it ended {} times in a row soon after a resume \
                                 while nudges waited; they stay in its inbox",
                                resumes.quick
                            ),
                            json!({"event": "resume-limit", "resumes": resumes.quick}),
                        );
                        break Ok(0);
                    }
                }
                // Nudges arrived after stdin closed: resume the session
                // with them, still holding the lock.
                plan.meta.session_id = status
                    .session_id
                    .clone()
                    .unwrap_or_else(|| plan.meta.session_id.clone());
                plan.resume = true;
                plan.prompt = None;
                plan.status = *status;
                plan.status.state = State::Starting;
                let _ = plan.agent.write_meta(&plan.meta);
            }
            Ok(Outcome::Done(code)) => break Ok(code),
            Err(e) => break Err(e),
        }
    };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// At most this many resumes in a row of runs that each ended within
/// `QUICK_RUN`, with a back-off doubling from `RESUME_PAUSE` between them.
const QUICK_RESUMES: u32 = 4;
const QUICK_RUN: Duration = Duration::from_secs(30);
const RESUME_PAUSE: Duration = Duration::from_millis(250);

/// Counts quick resumes: an agent that ends at once whenever it is resumed
/// with nudges waiting must not be restarted in a tight loop.
#[derive(Default)]
struct Resumes {
    quick: u32,
}

impl Resumes {
    /// After a run that lasted `ran`: the pause before resuming, or `None`
    /// to give up.
    fn next(&mut self, ran: Duration) -> Option<Duration> {
        if ran >= QUICK_RUN {
            self.quick = 0;
        }
        if self.quick >= QUICK_RESUMES {
            return None;
        }
        let pause = RESUME_PAUSE * 2u32.pow(self.quick);
        self.quick += 1;
        Some(pause)
    }
}

/// Wait `pause` before a resume, still answering signals: false when told
/// to stop meanwhile (a signal or an mt-stop request).
fn pause_for(plan: &Plan, sfd: &SignalFd, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    loop {
        if plan.agent.read_stop().is_some() {
            let _ = fs::remove_file(plan.agent.stop_path());
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let mut pfds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let ms = (left.as_millis().min(i32::MAX as u128) as i32).max(1);
        let _ = poll(
            &mut pfds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        while let Ok(Some(si)) = sfd.read_signal() {
            if si.ssi_signo != Signal::SIGCHLD as u32 {
                return false;
            }
            while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                if s == WaitStatus::StillAlive {
                    break;
                }
            }
        }
    }
}

enum Outcome {
    Done(u8),
    Resume(Box<crate::agent::Status>),
}

/// A message on its way to the agent's stdin.
struct Outgoing {
    bytes: Vec<u8>,
    written: usize,
    /// The inbox file to move to cur/ once written (none for the prompt).
    file: Option<PathBuf>,
    text: String,
}

/// One run of the agent process.
struct Run<'a> {
    plan: &'a Plan,
    sfd: &'a SignalFd,
    tracker: Tracker,
    events: File,
    stderr_log: File,
    /// Rung by nudgers; none when no FIFO could be made.
    bell: Option<Doorbell>,
    /// Without a doorbell: when to rescan the inbox next.
    rescan_at: Option<Instant>,
    pid: Pid,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    outq: VecDeque<Outgoing>,
    queued: HashSet<PathBuf>,
    line: Vec<u8>,
    last_stderr: String,
    exit: Option<(i32, Option<Signal>)>,
    session_killed: bool,
    /// Processes of the agent's session we killed, to see gone before we
    /// leave.
    killed: Vec<i32>,
    last_activity: Instant,
    kill_at: Option<Instant>,
    drain_until: Option<Instant>,
    stopped_by: Option<String>,
    dirty: bool,
}

fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The command that runs the agent: its own session and process group, a
/// parent-death signal, a clean signal mask, a cleaned environment, and the
/// run's marker (`MT_RUN`) that every descendant inherits.
fn command(plan: &Plan, run_id: &str) -> Command {
    let meta = &plan.meta;
    let args = spawn::agent_args(meta, plan.resume, &plan.agent.settings_path());
    let mut cmd = match &plan.bwrap {
        Some(bwrap) => {
            let mut writable =
                spawn::sandbox_writable(&meta.cwd, &meta.add_dirs, plan.state.root());
            writable.extend(plan.auth.config_dir.clone());
            let mut c = Command::new(bwrap);
            c.args(spawn::bwrap_args(
                &meta.cwd,
                &writable,
                &meta.agent_cmd,
                &args,
            ));
            c
        }
        None => {
            let mut c = Command::new(&meta.agent_cmd);
            c.args(&args);
            c
        }
    };
    cmd.current_dir(&meta.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in spawn::CLEANED_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in spawn::agent_env(meta, plan.state.root()) {
        cmd.env(k, v);
    }
    plan.auth.apply(&mut cmd);
    cmd.env(procs::RUN_VAR, run_id);
    let parent = getpid();
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            setsid()?;
            // The parent-death signal follows the thread that forked us: the
            // supervisor spawns from its only thread.
            prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != parent {
                // The supervisor died before the line above took effect.
                return Err(io::Error::other("supervisor gone"));
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            // Descriptors a caller left inheritable (a shell's `flock 9`)
            // must not live as long as the agent. Best effort: needs 5.11.
            nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                nix::libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    cmd
}

impl<'a> Run<'a> {
    fn start(plan: &'a Plan, sfd: &'a SignalFd, handshake: &mut Option<File>) -> Result<Run<'a>> {
        let agent = &plan.agent;
        let events = fsutil::open_append(&agent.events_path())
            .with_context(|| format!("cannot open {}", agent.events_path().display()))?;
        let stderr_log = fsutil::open_append(&agent.stderr_path())
            .with_context(|| format!("cannot open {}", agent.stderr_path().display()))?;
        let bell = open_doorbell(agent);
        let now = time::now_stamp();
        let mut tracker = fresh_tracker(plan, &now);

        let run_id = crate::infra::id::new_uuid();
        tracker.status.run_id = Some(run_id.clone());
        let mut cmd = command(plan, &run_id);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(spawn_failed(plan, &mut tracker, &events, &now, e)),
        };
        let pid = Pid::from_raw(child.id() as i32);
        let stdin: OwnedFd = child.stdin.take().expect("piped").into();
        let stdout: OwnedFd = child.stdout.take().expect("piped").into();
        let stderr: OwnedFd = child.stderr.take().expect("piped").into();
        // We reap the agent ourselves; the Child handle is not used again.
        drop(child);
        for fd in [&stdin, &stdout, &stderr] {
            nonblocking(fd).context("cannot make a pipe non-blocking")?;
        }
        {
            let st = &mut tracker.status;
            st.pid = Some(pid.as_raw());
            st.pgid = Some(pid.as_raw());
            st.updated_at = Some(now.clone());
        }
        agent.write_status(&tracker.status)?;
        let program = plan
            .bwrap
            .as_ref()
            .map(|b| b.display().to_string())
            .unwrap_or_else(|| plan.meta.agent_cmd.clone());
        let mut run = Run {
            plan,
            sfd,
            tracker,
            events,
            stderr_log,
            rescan_at: bell.is_none().then(|| Instant::now() + DEGRADED),
            bell,
            pid,
            stdin: Some(stdin),
            stdout: Some(stdout),
            stderr: Some(stderr),
            outq: VecDeque::new(),
            queued: HashSet::new(),
            line: Vec::new(),
            last_stderr: String::new(),
            exit: None,
            session_killed: false,
            killed: Vec::new(),
            last_activity: Instant::now(),
            kill_at: None,
            drain_until: None,
            stopped_by: None,
            dirty: false,
        };
        run.announce(&now, program, handshake);
        run.first_steps();
        Ok(run)
    }

    /// Say the run started: the events file, the channel, and the caller
    /// waiting on the handshake.
    fn announce(&mut self, now: &str, program: String, handshake: &mut Option<File>) {
        self.append_event(&stream::mt_line(
            "start",
            now,
            json!({
                "pid": self.pid.as_raw(),
                "session_id": self.plan.meta.session_id,
                "resume": self.plan.resume,
                "program": program,
                "cwd": self.plan.meta.cwd,
            }),
        ));
        let mut what = format!(
            "started (pid {}, session {}",
            self.pid, self.plan.meta.session_id
        );
        if let Some(t) = &self.plan.meta.task {
            what.push_str(&format!(", task {t}"));
        }
        what.push(')');
        if self.plan.resume {
            what = what.replacen("started", "resumed", 1);
        }
        self.post(
            "status",
            &what,
            json!({"event": "start", "pid": self.pid.as_raw()}),
        );
        if let Some(mut h) = handshake.take() {
            let _ = writeln!(h, "ok {}", self.pid);
        }
    }

    /// What a run does first: act on a stop request that came before the
    /// pid was known, queue the prompt, deliver what waits in the inbox.
    fn first_steps(&mut self) {
        // An mt-stop that came before the pid was recorded could not signal
        // the group; it left its request, so act on it now.
        match self.plan.agent.read_stop() {
            Some(r) if r.soft => self.soft_stop(),
            Some(_) => self.terminate(Signal::SIGTERM),
            None if self.plan.agent.stop_path().exists() => self.terminate(Signal::SIGTERM),
            None => {}
        }
        if let Some(p) = self.plan.prompt.as_ref().filter(|_| self.stdin.is_some()) {
            self.outq.push_back(Outgoing {
                bytes: stream::user_message(p),
                written: 0,
                file: None,
                text: p.clone(),
            });
        }
        self.scan_inbox();
    }

    fn post(&self, kind: &str, content: &str, meta: serde_json::Value) {
        post_record(self.plan, kind, content, meta);
    }

    fn append_event(&mut self, line: &[u8]) {
        if let Err(e) = self.events.write_all(line) {
            eprintln!(
                "mt-spawn: {}: cannot append to events.jsonl: {e}",
                self.plan.agent.name
            );
        }
    }

    fn supervise(mut self) -> Result<Outcome> {
        self.flush_stdin();
        self.save();
        while !self.done() {
            self.step()?;
            if self.dirty {
                self.save();
            }
        }
        self.finish()
    }

    fn done(&self) -> bool {
        self.exit.is_some() && self.stdout.is_none() && self.stderr.is_none()
    }

    fn save(&mut self) {
        self.dirty = false;
        self.tracker.status.updated_at = Some(time::now_stamp());
        if let Err(e) = self.plan.agent.write_status(&self.tracker.status) {
            eprintln!("mt-spawn: {}: {e:#}", self.plan.agent.name);
        }
    }

    /// The next moment a timer fires, if any.
    fn deadline(&self) -> Option<Instant> {
        let idle = match (self.plan.idle_exit, &self.stdin) {
            (Some(d), Some(_)) if self.outq.is_empty() && self.exit.is_none() => {
                Some(self.last_activity + d)
            }
            _ => None,
        };
        let rescan = self.rescan_at.filter(|_| self.stdin.is_some());
        [idle, self.kill_at, self.drain_until, rescan]
            .into_iter()
            .flatten()
            .min()
    }

    /// Wait for the next thing to happen and handle it.
    fn step(&mut self) -> Result<()> {
        let timeout = match self.deadline() {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        // Which descriptors were ready: signal, doorbell, stdout, stderr, stdin.
        let mut ready = [false; 5];
        {
            let mut fds = Vec::with_capacity(5);
            let mut slot = Vec::with_capacity(5);
            fds.push(PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN));
            slot.push(0);
            if let Some(bell) = self.bell.as_ref().filter(|_| self.stdin.is_some()) {
                fds.push(PollFd::new(bell.as_fd(), PollFlags::POLLIN));
                slot.push(1);
            }
            if let Some(fd) = &self.stdout {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                slot.push(2);
            }
            if let Some(fd) = &self.stderr {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                slot.push(3);
            }
            if let Some(fd) = &self.stdin
                && !self.outq.is_empty()
            {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
                slot.push(4);
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll failed"),
            }
            for (fd, &i) in fds.iter().zip(&slot) {
                ready[i] = fd.revents().is_some_and(|r| !r.is_empty());
            }
        }
        if ready[0] {
            self.signals();
        }
        if ready[2] {
            self.read_stdout();
        }
        if ready[3] {
            self.read_stderr();
        }
        if ready[1] {
            self.check_inbox();
        }
        if ready[4] {
            self.flush_stdin();
        }
        self.timers();
        Ok(())
    }

    fn signals(&mut self) {
        while let Ok(Some(info)) = self.sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(sig) => self.terminate(sig),
                Err(_) => {}
            }
        }
        // Signals coalesce: reap whatever is there even without SIGCHLD.
        self.reap();
    }

    /// Reap every child that ended. When the agent ends, first kill what is
    /// left of its session while it is still a zombie, so its pid (our
    /// pgid and sid) cannot have been reused.
    fn reap(&mut self) {
        if self.exit.is_none()
            && matches!(
                waitid(
                    Id::Pid(self.pid),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
                ),
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
            )
        {
            self.kill_session();
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(ws) => {
                    if ws.pid() == Some(self.pid) {
                        let ended = match ws {
                            WaitStatus::Exited(_, c) => Some((c, None)),
                            WaitStatus::Signaled(_, s, _) => Some((128 + s as i32, Some(s))),
                            _ => None,
                        };
                        if let Some(e) = ended {
                            self.kill_session();
                            self.on_exit(e);
                        }
                    }
                }
            }
        }
    }

    /// SIGKILL to the agent's process group, every other member of its
    /// session, and every process carrying its run's marker (the sessions
    /// its tools made): nothing of an ended agent keeps running.
    fn kill_session(&mut self) {
        if self.session_killed {
            return;
        }
        self.session_killed = true;
        let _ = killpg(self.pid, Signal::SIGKILL);
        let st = &self.tracker.status;
        for p in crate::agent::tree_leftovers(&self.plan.state, st) {
            if p != self.pid.as_raw() {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                self.killed.push(p);
            }
        }
    }

    fn on_exit(&mut self, e: (i32, Option<Signal>)) {
        self.exit = Some(e);
        self.close_stdin();
        self.drain_until = Some(Instant::now() + DRAIN);
        self.kill_at = None;
    }

    /// The supervisor was told to stop: stop the agent, SIGKILL after a
    /// grace (at once on a second signal).
    fn terminate(&mut self, sig: Signal) {
        if self.exit.is_some() {
            return;
        }
        if self.stopped_by.is_some() {
            let _ = killpg(self.pid, Signal::SIGKILL);
            return;
        }
        self.stopped_by = Some(format!("{sig} to the supervisor"));
        self.close_stdin();
        let _ = killpg(self.pid, Signal::SIGTERM);
        self.kill_at = Some(Instant::now() + TERM_GRACE);
    }

    /// The inbox may have changed: empty the doorbell first (a ring during
    /// the scan wakes us again), act on a soft stop, forward new messages.
    fn check_inbox(&mut self) {
        if let Some(bell) = &self.bell {
            bell.drain();
        }
        if self.plan.agent.read_stop().is_some_and(|r| r.soft) {
            self.soft_stop();
        }
        self.scan_inbox();
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if self.rescan_at.is_some_and(|t| now >= t) {
            self.rescan_at = Some(now + DEGRADED);
            self.check_inbox();
        }
        if self.kill_at.is_some_and(|t| now >= t) {
            self.kill_at = None;
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
        if self.drain_until.is_some_and(|t| now >= t) {
            // Something outside the session holds the pipes: stop reading.
            self.drain_until = None;
            self.read_stdout();
            self.read_stderr();
            self.flush_partial_line();
            self.stdout = None;
            self.stderr = None;
        }
        if let (Some(d), Some(_)) = (self.plan.idle_exit, &self.stdin)
            && self.outq.is_empty()
            && self.exit.is_none()
            && now >= self.last_activity + d
        {
            self.tracker.status.stdin_closed = true;
            self.dirty = true;
            let text = format!(
                "no activity for {}: closing stdin",
                time::format_duration(d)
            );
            self.append_event(&stream::mt_line(
                "note",
                &time::now_stamp(),
                json!({"text": text}),
            ));
            self.close_stdin();
        }
    }

    /// `mt-stop --soft` asked (stop.json with `soft`, woken through the
    /// doorbell): close the agent's stdin so it ends on its own;
    /// mt-stop signals it if it has not after the grace.
    fn soft_stop(&mut self) {
        if self.stdin.is_none() || self.exit.is_some() {
            return;
        }
        self.tracker.status.stdin_closed = true;
        self.dirty = true;
        self.append_event(&stream::mt_line(
            "note",
            &time::now_stamp(),
            json!({"text": "mt-stop --soft: closing stdin"}),
        ));
        self.close_stdin();
    }

    /// Close the agent's stdin. Queued nudges stay in inbox/new.
    fn close_stdin(&mut self) {
        self.stdin = None;
        self.outq.clear();
        self.queued.clear();
    }

    fn read_stdout(&mut self) {
        let mut buf = [0u8; 64 << 10];
        loop {
            let Some(fd) = &self.stdout else { return };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    self.flush_partial_line();
                    self.stdout = None;
                    return;
                }
                Ok(n) => {
                    self.last_activity = Instant::now();
                    let mut rest = &buf[..n];
                    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                        self.line.extend_from_slice(&rest[..i]);
                        rest = &rest[i + 1..];
                        let line = std::mem::take(&mut self.line);
                        self.on_line(&line);
                    }
                    self.line.extend_from_slice(rest);
                    if self.line.len() > MAX_LINE {
                        self.flush_partial_line();
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    eprintln!(
                        "mt-spawn: {}: reading the agent's output: {e}",
                        self.plan.agent.name
                    );
                    self.stdout = None;
                    return;
                }
            }
        }
    }

    fn flush_partial_line(&mut self) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line);
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let mut rec = Vec::with_capacity(line.len() + 1);
        rec.extend_from_slice(line);
        rec.push(b'\n');
        self.append_event(&rec);
        let notices = self.tracker.on_line(line, &time::now_stamp());
        self.dirty = true;
        for n in notices {
            match n {
                Notice::RateLimit(rl) => {
                    let mut text = format!("rate limit: {}", rl.status);
                    if let Some(k) = &rl.kind {
                        text.push_str(&format!(" ({k})"));
                    }
                    if let Some(r) = &rl.resets_at {
                        text.push_str(&format!(", resets at {r}"));
                    }
                    self.post(
                        "system",
                        &text,
                        json!({"event": "rate_limit", "rate_limit": rl.status, "resets_at": rl.resets_at}),
                    );
                }
            }
        }
    }

    fn read_stderr(&mut self) {
        let mut buf = [0u8; 16 << 10];
        loop {
            let Some(fd) = &self.stderr else { return };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    self.stderr = None;
                    return;
                }
                Ok(n) => {
                    self.last_activity = Instant::now();
                    let _ = self.stderr_log.write_all(&buf[..n]);
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if let Some(l) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                        self.last_stderr = stream::clip(l, 200);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.stderr = None;
                    return;
                }
            }
        }
    }

    /// Queue every inbox message not queued yet.
    fn scan_inbox(&mut self) {
        if self.stdin.is_none() {
            return;
        }
        let files = match self.plan.agent.inbox_new() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("mt-spawn: {}: {e:#}", self.plan.agent.name);
                return;
            }
        };
        for f in files {
            if self.queued.contains(&f) {
                continue;
            }
            let Ok(data) = fs::read(&f) else { continue };
            let text = String::from_utf8_lossy(&data).into_owned();
            if text.trim().is_empty() {
                self.move_to_cur(&f);
                continue;
            }
            self.queued.insert(f.clone());
            self.outq.push_back(Outgoing {
                bytes: stream::user_message(&text),
                written: 0,
                file: Some(f),
                text,
            });
        }
        self.flush_stdin();
    }

    fn move_to_cur(&self, f: &std::path::Path) {
        if let Some(n) = f.file_name() {
            let _ = fs::rename(f, self.plan.agent.inbox("cur").join(n));
        }
    }

    /// Write queued messages as far as the pipe takes them; a message is
    /// delivered (moved to cur/) once all of it is in the pipe.
    fn flush_stdin(&mut self) {
        loop {
            let Some(fd) = &self.stdin else { return };
            let Some(front) = self.outq.front_mut() else {
                return;
            };
            match nix::unistd::write(fd, &front.bytes[front.written..]) {
                Ok(n) => {
                    front.written += n;
                    if front.written < front.bytes.len() {
                        continue;
                    }
                    let done = self.outq.pop_front().expect("front");
                    if let Some(f) = &done.file {
                        self.move_to_cur(f);
                        self.queued.remove(f);
                    }
                    let line =
                        stream::mt_line("input", &time::now_stamp(), json!({"text": done.text}));
                    self.append_event(&line);
                    self.tracker.on_input();
                    self.last_activity = Instant::now();
                    self.dirty = true;
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    // The agent closed its stdin or died: keep the rest in new/.
                    self.close_stdin();
                    return;
                }
            }
        }
    }

    /// Record the end, tell the channel, reap what we killed.
    fn finish(mut self) -> Result<Outcome> {
        let (code, sig) = self.exit.expect("exited");
        let agent = &self.plan.agent;
        let request = agent.read_stop();
        let _ = fs::remove_file(agent.stop_path());
        let _ = fs::remove_file(agent.inbox("new").join(crate::agent::SOFT_STOP_WAKE));
        let stopped_by = match request {
            Some(r) => Some(format!(
                "mt-stop by {}",
                if r.by.is_empty() { "?" } else { &r.by }
            )),
            None => self.stopped_by.clone(),
        };
        let now = time::now_stamp();
        let st = &mut self.tracker.status;
        st.exit_code = Some(code);
        st.signal = sig.map(|s| s.to_string());
        st.ended_at = Some(now.clone());
        st.pending = 0;
        st.open_tool_calls.clear();
        st.stopped = stopped_by.is_some();
        st.stopped_by = stopped_by.clone();
        let how = match sig {
            Some(s) => format!("killed by {s}"),
            None => format!("exit code {code}"),
        };
        let summary = format!(
            "{}, {} tokens, ${:.4}",
            stream::turns(st.turns),
            stream::tokens_pair(st.input_tokens, st.output_tokens),
            st.cost_usd
        );
        let (kind, text, event) = if let Some(by) = &stopped_by {
            st.state = State::Exited;
            (
                "status",
                format!("stopped by {by}, {how} ({summary})"),
                "stop",
            )
        } else if code == 0 {
            st.state = State::Exited;
            ("status", format!("exited ({summary})"), "exit")
        } else {
            st.state = State::Failed;
            st.error = Some(if sig.is_some() { "signal" } else { "exit" }.into());
            st.error_detail = Some(if self.last_stderr.is_empty() {
                how.clone()
            } else {
                format!("{how}: {}", self.last_stderr)
            });
            let mut t = format!("failed: {how} ({summary})");
            if !self.last_stderr.is_empty() {
                t.push_str(&format!("; stderr: {}", self.last_stderr));
            }
            ("system", t, "fail")
        };
        let status = self.tracker.status.clone();
        self.save();
        let line = stream::mt_line(
            "exit",
            &now,
            json!({"text": text, "code": code, "signal": status.signal}),
        );
        self.append_event(&line);
        self.post(
            kind,
            &text,
            json!({"event": event, "exit_code": code, "signal": status.signal}),
        );
        self.reap_killed();

        let pending = self
            .plan
            .agent
            .inbox_new()
            .map(|v| !v.is_empty())
            .unwrap_or(false);
        if code == 0 && stopped_by.is_none() && pending {
            return Ok(Outcome::Resume(Box::new(status)));
        }
        Ok(Outcome::Done(code.clamp(0, 255) as u8))
    }

    /// Wait (up to a bound) until every process we killed is gone and every
    /// one of them that became our child is reaped: nothing is left behind
    /// when the supervisor returns. Exits are seen through pidfds and the
    /// signalfd, not by polling.
    fn reap_killed(&mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        let me = getpid().as_raw();
        let fds: Vec<(i32, OwnedFd)> = self
            .killed
            .iter()
            .filter_map(|&p| pidfd_open(p).map(|fd| (p, fd)))
            .collect();
        loop {
            self.reap();
            // Still running, or a zombie of ours not reaped yet.
            let waiting: Vec<&OwnedFd> = fds
                .iter()
                .filter(|(p, _)| procs::stat(*p).is_some_and(|s| s.state != 'Z' || s.ppid == me))
                .map(|(_, fd)| fd)
                .collect();
            let left = until.saturating_duration_since(Instant::now());
            if waiting.is_empty() || left.is_zero() {
                return;
            }
            let mut pfds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            // Our own zombies were reaped above; the rest are still running.
            for fd in &waiting {
                pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let ms = (left.as_millis().min(i32::MAX as u128) as i32).max(1);
            let _ = poll(
                &mut pfds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
            while let Ok(Some(_)) = self.sfd.read_signal() {}
        }
    }
}

/// The inbox's doorbell, or none (the inbox is then rescanned every
/// `DEGRADED`), said once on stderr.
fn open_doorbell(agent: &crate::agent::AgentDir) -> Option<Doorbell> {
    match Doorbell::open(&agent.wake_path()) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!(
                "mt-spawn: {}: cannot make the inbox doorbell {}: {e}; \
                 checking the inbox every {}s instead",
                agent.name,
                agent.wake_path().display(),
                DEGRADED.as_secs()
            );
            None
        }
    }
}

/// A tracker for a new run: the plan's status (totals of earlier runs),
/// reset to `starting` by this supervisor.
fn fresh_tracker(plan: &Plan, now: &str) -> Tracker {
    let agent = &plan.agent;
    let mut tracker = Tracker::new(plan.status.clone(), plan.resume);
    {
        let st = &mut tracker.status;
        st.name = agent.name.clone();
        st.state = State::Starting;
        st.supervisor_pid = Some(getpid().as_raw());
        st.started_at = Some(now.to_string());
        st.runs += 1;
        for f in [
            &mut st.ended_at,
            &mut st.error,
            &mut st.error_detail,
            &mut st.signal,
        ] {
            *f = None;
        }
        st.exit_code = None;
        st.stopped = false;
        st.stopped_by = None;
        st.stdin_closed = false;
    }
    tracker
}

/// The agent program could not be started: record and report it; the
/// error to return.
fn spawn_failed(
    plan: &Plan,
    tracker: &mut Tracker,
    events: &File,
    now: &str,
    e: io::Error,
) -> anyhow::Error {
    let agent = &plan.agent;
    let code = match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => UNAVAILABLE,
        _ => SOFTWARE,
    };
    let prog = plan
        .bwrap
        .as_ref()
        .map(|b| b.display().to_string())
        .unwrap_or_else(|| plan.meta.agent_cmd.clone());
    let msg =
        format!("cannot run the agent program {prog:?}: {e} (set MT_AGENT_CMD or --agent-cmd)");
    let st = &mut tracker.status;
    st.state = State::Failed;
    st.error = Some("spawn".into());
    st.error_detail = Some(msg.clone());
    st.ended_at = Some(now.to_string());
    st.updated_at = Some(now.to_string());
    let _ = agent.write_status(st);
    let mut ev = events;
    let _ = ev.write_all(&stream::mt_line(
        "exit",
        now,
        json!({"text": format!("failed to start: {msg}")}),
    ));
    post_record(
        plan,
        "system",
        &format!("failed to start: {msg}"),
        json!({"event": "fail", "error": "spawn"}),
    );
    fail(code, msg)
}

/// A descriptor that becomes readable when process `pid` ends.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Post a record about the agent to its channel; a failure is logged, not
/// fatal (the agent matters more than the announcement).
fn post_record(plan: &Plan, kind: &str, content: &str, mut meta: serde_json::Value) {
    if let serde_json::Value::Object(m) = &mut meta {
        m.insert("agent".into(), plan.agent.name.clone().into());
    }
    let draft = Draft {
        from: plan.agent.name.clone(),
        kind: kind.into(),
        content: content.to_string(),
        session_id: Some(plan.meta.session_id.clone()),
        meta: Some(meta),
        ..Draft::default()
    };
    if let Err(e) = channel::post(&plan.state, &plan.meta.channel, &draft) {
        eprintln!(
            "mt-spawn: {}: cannot post to {}: {e:#}",
            plan.agent.name, plan.meta.channel
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_resumes_back_off_then_stop() {
        let mut r = Resumes::default();
        let quick = Duration::from_millis(10);
        let pauses: Vec<_> = std::iter::from_fn(|| r.next(quick)).take(10).collect();
        assert_eq!(pauses.len(), QUICK_RESUMES as usize);
        assert_eq!(pauses[0], RESUME_PAUSE);
        assert!(pauses.windows(2).all(|w| w[1] == w[0] * 2));
        // A long run starts the count again.
        assert_eq!(r.next(QUICK_RUN), Some(RESUME_PAUSE));
    }
}
