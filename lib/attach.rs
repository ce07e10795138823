//! A person takes over a coworker's session and hands it back.
//!
//! The agent's supervisor lets go softly (as `mt-stop --soft`: stdin
//! closes, the turn in progress ends, nothing is cut); then the person
//! holds the agent's liveness lock, so nothing resumes it meanwhile, and
//! runs the agent program interactively on this terminal with `--resume
//! SESSION`, the agent's settings file, model, role, extra arguments and
//! environment. When the program exits, a detached supervisor resumes the
//! same session headless, still under the same lock: no other start can
//! slip in between, and nudges that waited are delivered first.
//!
//! `agents/<name>/attached.json` says who holds the session. It counts only
//! while the liveness lock is held and no supervisor runs (the status is not
//! live): a marker left by a killed mt-attach means nothing.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::{Pid, getpid, getppid};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs::{self, File};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::agent::{self, AgentDir, Meta, StopRequest};
use crate::channel::{self, Draft};
use crate::exit::{self, DATAERR, NO, SOFTWARE, TEMPFAIL, UNAVAILABLE, fail};
use crate::infra::{fsutil, id, lock, procs, time};
use crate::statedir::StateDir;
use crate::{names, spawn};

/// Who holds an agent's session: `agents/<name>/attached.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Attached {
    /// The person.
    pub by: String,
    /// The mt-attach process holding the liveness lock.
    pub pid: i32,
    /// The interactive agent program, once started.
    pub program_pid: Option<i32>,
    pub session_id: String,
    /// The `MT_RUN` marker of the interactive run's processes.
    pub run_id: String,
    pub at: String,
}

/// The person attached to agent `a` right now, if any.
pub fn holder(a: &AgentDir) -> Option<Attached> {
    let data = fs::read(a.attached_path()).ok()?;
    let att: Attached = serde_json::from_slice(&data).ok()?;
    let supervised = a
        .read_status()
        .ok()
        .flatten()
        .is_some_and(|s| s.state.is_live());
    (!supervised && a.running().unwrap_or(false)).then_some(att)
}

/// What to attach to, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    /// The person attaching (recorded on the channel and in the marker).
    pub person: String,
    /// How long a running agent's turn may take to end.
    pub timeout: Duration,
    /// Start a headless supervisor again when the program exits.
    pub hand_back: bool,
    /// The agent program; `None`: the one the agent was started with.
    pub agent_cmd: Option<String>,
}

/// How an attachment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The program's exit code (128+N for signal N).
    pub code: u8,
    /// The headless agent's pid, when handed back.
    pub handed_back: Option<i32>,
}

/// The interactive command line after the program name: the headless
/// resume's (settings, model, prompts, directories, extra arguments)
/// without what comes before the session, print mode and stream-json.
pub fn program_args(meta: &Meta, session: &str, settings: &Path) -> Vec<String> {
    let m = Meta {
        session_id: session.to_string(),
        ..meta.clone()
    };
    let mut a = spawn::agent_args(&m, true, settings);
    let at = a.iter().position(|x| x == "--resume").unwrap_or(0);
    a.drain(..at);
    a
}

/// Attach `o.person` to agent `o.name`: stop it softly, run the program on
/// this terminal, hand the session back. `say` is told what is going on.
pub fn attach(state: &StateDir, o: &Options, say: &mut dyn FnMut(&str)) -> Result<Outcome> {
    names::check("person", &o.person)?;
    let a = agent::existing(state, &o.name)?;
    // Paths handed to the program must not depend on our cwd.
    let root = fs::canonicalize(state.root())
        .with_context(|| format!("cannot resolve {}", state.root().display()))?;
    let state = StateDir::at(root);
    if let Some(h) = holder(&a) {
        return Err(already(&o.name, &h));
    }
    let meta = a.read_meta()?.ok_or_else(|| no_session(&o.name))?;
    // Everything that can be refused is refused before the agent stops.
    let program = Program {
        path: program_of(o, &meta)?,
        bwrap: bwrap_of(&meta)?,
    };
    if !a.running()? {
        session_of(&a, &meta)?;
    }
    agent::mark_lost(&state, &a, None)?;
    let held = stop_and_lock(&state, &a, o, say)?;
    // Signals queue from here on (see `run_program`): whatever happens to
    // the program, the marker goes and the session is handed back.
    let mask = Mask::block()?;
    let _ = fs::remove_file(a.stop_path());
    let _ = fs::remove_file(a.inbox("new").join(agent::SOFT_STOP_WAKE));
    let meta = a.read_meta()?.ok_or_else(|| no_session(&o.name))?;
    let session = session_of(&a, &meta)?;
    let mut marker = Attached {
        by: o.person.clone(),
        pid: std::process::id() as i32,
        program_pid: None,
        session_id: session.clone(),
        run_id: id::new_uuid(),
        at: time::now_stamp(),
    };
    if let Err(e) = write_marker(&a, &marker) {
        if o.hand_back {
            hand_back(&state, &o.name, held)?;
        }
        return Err(e);
    }
    let post = |event: &str, content: String, extra: serde_json::Value| {
        post_record(&state, &meta, &o.person, &session, event, content, extra)
    };
    post(
        "attach",
        format!("{} attached to {} (session {session})", o.person, o.name),
        json!({}),
    );
    say(&format!(
        "attached to {} (session {session}); leave the program to hand it back",
        o.name
    ));

    let run_id = marker.run_id.clone();
    let ran = run_program(
        &state,
        &meta,
        &program,
        &session,
        &run_id,
        &mask,
        &mut |pid| {
            marker.program_pid = Some(pid);
            let _ = write_marker(&a, &marker);
        },
    );
    end_leftovers(&marker.run_id);
    let _ = fs::remove_file(a.attached_path());
    let code = ran.as_ref().map_or_else(exit::code_of, |c| *c);
    if !o.hand_back {
        post(
            "detach",
            format!("{} detached from {}; it stays stopped", o.person, o.name),
            json!({"exit_code": code}),
        );
        drop(held);
        return ran.map(|code| Outcome {
            code,
            handed_back: None,
        });
    }
    post(
        "hand-back",
        format!("{} handed {} back (session {session})", o.person, o.name),
        json!({"exit_code": code}),
    );
    let pid = hand_back(&state, &o.name, held)?;
    ran.map(|code| Outcome {
        code,
        handed_back: Some(pid),
    })
}

/// Start a detached supervisor resuming the session, as `mt-spawn --resume`
/// does, with the liveness lock `held` passed on (no other start can come
/// in between). Nudges that waited are delivered first.
fn hand_back(state: &StateDir, name: &str, held: File) -> Result<i32> {
    let resume = spawn::Options {
        name: name.to_string(),
        resume: true,
        ..spawn::Options::default()
    };
    spawn::prepare_locked(state, resume, held)
        .and_then(|(plan, held)| spawn::run_detached(plan, held))
        .with_context(|| format!("cannot hand {name} back"))
}

fn already(name: &str, h: &Attached) -> anyhow::Error {
    fail(
        TEMPFAIL,
        format!(
            "{name} is already attached by {} (mt-attach pid {})",
            h.by, h.pid
        ),
    )
}

fn no_session(name: &str) -> anyhow::Error {
    fail(
        DATAERR,
        format!("{name} has no session yet: its agent program never started one"),
    )
}

/// The session to resume: the one the agent reported, else the one it was
/// started with; an agent that never printed an event has none.
fn session_of(a: &AgentDir, meta: &Meta) -> Result<String> {
    let st = a.read_status().ok().flatten().unwrap_or_default();
    let id = st
        .session_id
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| meta.session_id.clone());
    if st.events == 0 || id.is_empty() {
        return Err(no_session(&a.name));
    }
    Ok(id)
}

/// The agent program, found: `o.agent_cmd`, else the agent's own.
fn program_of(o: &Options, meta: &Meta) -> Result<String> {
    let program = o
        .agent_cmd
        .clone()
        .filter(|p| !p.is_empty())
        .or(Some(meta.agent_cmd.clone()).filter(|p| !p.is_empty()))
        .unwrap_or_else(|| spawn::DEFAULT_AGENT_CMD.into());
    match spawn::find_program(&program) {
        Some(p) if program.contains('/') => Ok(p.to_string_lossy().into_owned()),
        Some(_) => Ok(program),
        None => Err(fail(
            UNAVAILABLE,
            format!("cannot find the agent program {program:?} (set MT_AGENT_CMD or --agent-cmd)"),
        )),
    }
}

fn bwrap_of(meta: &Meta) -> Result<Option<PathBuf>> {
    if !meta.sandbox {
        return Ok(None);
    }
    spawn::find_program("bwrap").map(Some).ok_or_else(|| {
        fail(
            UNAVAILABLE,
            format!(
                "{} runs sandboxed, which needs bubblewrap (bwrap), not installed or not in PATH",
                meta.name
            ),
        )
    })
}

/// Take the agent's liveness lock; while its supervisor holds it, ask for
/// a soft stop (again whenever the request is gone: a start in between
/// drops it) and wait up to `o.timeout`.
fn stop_and_lock(
    state: &StateDir,
    a: &AgentDir,
    o: &Options,
    say: &mut dyn FnMut(&str),
) -> Result<File> {
    let start = Instant::now();
    let by = format!("{} (mt-attach)", o.person);
    let mut told = false;
    loop {
        match spawn::take_lock(a) {
            Ok(f) => return Ok(f),
            Err(e) if exit::code_of(&e) == NO => {}
            Err(e) => return Err(e),
        }
        if let Some(h) = holder(a) {
            return Err(already(&o.name, &h));
        }
        if !a.stop_path().exists() {
            ask_soft_stop(state, a, &by, o.timeout)?;
        }
        if !told {
            say(&format!(
                "{} is running: it stops once its current turn ends (waiting up to {}; Ctrl-C gives up)",
                o.name,
                time::format_duration(o.timeout)
            ));
            told = true;
        }
        let left = o.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(fail(
                TEMPFAIL,
                format!(
                    "{} is still running after {}: its turn has not ended; it stops when it does \
                     (run mt-attach again then, or end it with mt-stop)",
                    o.name,
                    time::format_duration(o.timeout)
                ),
            ));
        }
        match lock::exclusive_within(a.lock_path(), left.min(Duration::from_secs(1))) {
            Ok(f) => return Ok(f),
            Err(e) if exit::code_of(&e) == TEMPFAIL => {}
            Err(e) => return Err(e),
        }
    }
}

/// What `mt-stop --soft` asks of a supervisor, without the signals after
/// the grace: stop.json, then the doorbell.
fn ask_soft_stop(state: &StateDir, a: &AgentDir, by: &str, grace: Duration) -> Result<()> {
    let request = StopRequest {
        at: time::now_stamp(),
        by: by.to_string(),
        grace_ms: grace.as_millis() as u64,
        soft: true,
    };
    a.ensure(state)?;
    fsutil::write_atomic(&a.stop_path(), &serde_json::to_vec(&request)?, false)?;
    let wake = a.inbox("new").join(agent::SOFT_STOP_WAKE);
    fsutil::options()
        .write(true)
        .create(true)
        .open(&wake)
        .with_context(|| format!("cannot write {}", wake.display()))?;
    crate::infra::wake::ring(&a.wake_path());
    Ok(())
}

fn write_marker(a: &AgentDir, m: &Attached) -> Result<()> {
    let mut data = serde_json::to_vec_pretty(m)?;
    data.push(b'\n');
    fsutil::write_atomic(&a.attached_path(), &data, false)
}

/// A record from the person about the agent, on the agent's channel; a
/// failure is a warning (the session matters more).
fn post_record(
    state: &StateDir,
    meta: &Meta,
    person: &str,
    session: &str,
    event: &str,
    content: String,
    mut extra: serde_json::Value,
) {
    if let serde_json::Value::Object(m) = &mut extra {
        m.insert("event".into(), event.into());
        m.insert("agent".into(), meta.name.clone().into());
    }
    let draft = Draft {
        from: person.to_string(),
        kind: "status".into(),
        content,
        session_id: Some(session.to_string()),
        meta: Some(extra),
        ..Draft::default()
    };
    if let Err(e) = channel::post(state, &meta.channel, &draft) {
        exit::warn(format_args!("cannot post to {}: {e:#}", meta.channel));
    }
}

/// The agent program, and bubblewrap for a sandboxed agent.
struct Program {
    path: String,
    bwrap: Option<PathBuf>,
}

/// The signals mt-attach handles itself while the person works: blocked
/// (so they queue for `sigwait`) until the attachment is over.
struct Mask {
    set: SigSet,
    old: SigSet,
}

impl Mask {
    fn block() -> Result<Mask> {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGCHLD,
        ] {
            set.add(s);
        }
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).context("sigprocmask")?;
        Ok(Mask { set, old })
    }
}

impl Drop for Mask {
    /// Drop what queued meanwhile, as a shell does (a Ctrl-C meant for the
    /// program must not end us now), then restore the mask.
    fn drop(&mut self) {
        while self.set.iter().any(pending) {
            let _ = self.set.wait();
        }
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// Whether `sig` waits to be delivered to this process.
fn pending(sig: Signal) -> bool {
    let mut set = std::mem::MaybeUninit::<nix::libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; sigismember reads it.
    unsafe {
        nix::libc::sigpending(set.as_mut_ptr()) == 0
            && nix::libc::sigismember(set.as_ptr(), sig as i32) == 1
    }
}

/// Run the program on this terminal until it exits; its exit code.
///
/// Like a shell running a command: the program is in our process group (the
/// terminal's foreground), so Ctrl-C and Ctrl-\ reach it, and we ignore
/// them. SIGTERM or SIGHUP to us becomes SIGTERM to the program (Claude Code
/// ignores SIGHUP), which then exits and is handed back. Should we die
/// anyway, the program gets SIGTERM (parent-death signal): it never runs
/// without the lock held.
fn run_program(
    state: &StateDir,
    meta: &Meta,
    program: &Program,
    session: &str,
    run_id: &str,
    mask: &Mask,
    started: &mut dyn FnMut(i32),
) -> Result<u8> {
    let args = program_args(meta, session, &spawn_settings(state, meta)?);
    // The account of the agent's auth profile, as its supervisor gives it.
    let auth = crate::profile::AgentAuth::of(meta.profile.as_deref())?;
    let mut cmd = match &program.bwrap {
        Some(b) => {
            let mut writable = spawn::sandbox_writable(&meta.cwd, &meta.add_dirs, state.root());
            writable.extend(auth.config_dir.clone());
            let mut c = Command::new(b);
            c.args(spawn::bwrap_args(
                &meta.cwd,
                &writable,
                &program.path,
                &args,
            ));
            c
        }
        None => {
            let mut c = Command::new(&program.path);
            c.args(&args);
            c
        }
    };
    cmd.current_dir(&meta.cwd);
    for k in spawn::CLEANED_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in spawn::agent_env(meta, state.root()) {
        cmd.env(k, v);
    }
    auth.apply(&mut cmd);
    cmd.env(procs::RUN_VAR, run_id);
    let parent = getpid();
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            if getppid() != parent {
                return Err(std::io::Error::other("mt-attach gone"));
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => UNAVAILABLE,
            _ => SOFTWARE,
        };
        fail(
            code,
            format!("cannot run the agent program {:?}: {e}", program.path),
        )
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    started(pid.as_raw());
    let status = loop {
        match mask.set.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(st) = child.try_wait().context("cannot wait for the program")? {
                    break st;
                }
            }
            Ok(Signal::SIGTERM | Signal::SIGHUP) => {
                let _ = kill(pid, Signal::SIGTERM);
            }
            // SIGINT, SIGQUIT: the program has them from the terminal.
            _ => {}
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        (None, None) => SOFTWARE,
    })
}

/// The agent's settings file (written at each start); made again from
/// meta.json when missing.
fn spawn_settings(state: &StateDir, meta: &Meta) -> Result<PathBuf> {
    let a = AgentDir::new(state, &meta.name)?;
    let path = a.settings_path();
    if !path.is_file() {
        let s = spawn::agent_settings(meta, state.root(), &spawn::mt_hook_program()?);
        let mut data = serde_json::to_vec_pretty(&s)?;
        data.push(b'\n');
        fsutil::write_atomic(&path, &data, false)?;
    }
    Ok(path)
}

/// End what the interactive run left running (its tools' background
/// commands), as a supervisor does when a headless run ends.
fn end_leftovers(run_id: &str) {
    for p in procs::marked(run_id) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interactive_command_line_is_the_headless_one_without_print_mode() {
        let meta = Meta {
            name: "york".into(),
            session_id: "FIRST".into(),
            model: Some("opus".into()),
            role: Some("reviewer".into()),
            add_dirs: vec!["/w/docs".into()],
            extra_args: vec!["--debug".into()],
            ..Meta::default()
        };
        let settings = Path::new("/a/settings.json");
        assert_eq!(
            program_args(&meta, "S", settings).join(" "),
            "--resume S --settings /a/settings.json --model opus \
             --append-system-prompt reviewer --add-dir /w/docs --debug"
        );
    }

    /// Attached: the marker, the lock held, no supervisor running. Every
    /// way of reading an agent agrees.
    #[test]
    fn attached_only_while_the_lock_is_held_and_no_supervisor_runs() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let a = AgentDir::new(&st, "york").unwrap();
        a.ensure(&st).unwrap();
        let mut status = agent::Status {
            name: "york".into(),
            state: agent::State::Exited,
            ..Default::default()
        };
        a.write_status(&status).unwrap();
        let shown = |a: &AgentDir| {
            let one = agent::info(&st, "york").unwrap().shown;
            let many = agent::infos(&st, &["york".into()]).unwrap()[0]
                .as_ref()
                .unwrap()
                .shown;
            assert_eq!(one, many);
            assert_eq!(
                one,
                a.shown_state(a.read_status().unwrap().as_ref()).unwrap()
            );
            (one, holder(a).map(|h| h.by))
        };
        write_marker(
            &a,
            &Attached {
                by: "alice".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(shown(&a), ("exited", None), "a marker without the lock");
        let held = lock::exclusive(a.lock_path()).unwrap();
        assert_eq!(shown(&a), ("attached", Some("alice".into())));
        status.state = agent::State::Idle;
        a.write_status(&status).unwrap();
        assert_eq!(shown(&a), ("idle", None), "a supervisor runs");
        fs::remove_file(a.attached_path()).unwrap();
        status.state = agent::State::Exited;
        a.write_status(&status).unwrap();
        assert_eq!(shown(&a), ("exited", None), "the lock without a marker");
        drop(held);
    }
}
