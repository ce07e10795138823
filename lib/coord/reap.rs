//! Reaping: agents that died without a word, agents that went silent, and
//! idle agents with nothing left to do. Every rule is conservative:
//!
//! - *lost*: the status says running (starting, working, idle) but no
//!   supervisor holds the liveness lock. The kernel drops a lock only when
//!   its holder dies, so this is certain. It is recorded in status.json
//!   (`failed`, error `lost`, under the liveness lock, so exactly one
//!   reaper or mt-stop records it) and reported once on the channel.
//! - *stuck*: running, starting or working, no sign of life (event, input,
//!   start) for longer than the threshold, no tool call or subagent open,
//!   and no rejected rate limit still to reset. Reported once per silence
//!   episode (`agents/NAME/reap.json` remembers the episode). A restart
//!   needs a second look: only a later run that finds the same silence
//!   stops and resumes the agent.
//! - *idle*: idle for longer than the limit, no task of its own still
//!   open and no background task of Claude Code's still running (it may
//!   start a turn when it ends): stopped softly (stdin closed, then SIGTERM
//!   and SIGKILL after the grace).
//! - *usage limit* (unless `--no-limit-resume`): the status shows a rejected rate
//!   limit whose reset time has passed, and the agent has ended (not on a
//!   person's request) or waits idle: it is resumed, or nudged, with a
//!   note to carry on, exactly once per reset time. The claim on a reset
//!   is a marker file created with O_EXCL (`agents/NAME/limit-resumed.T`),
//!   so two reapers, or a reaper run every second, never act twice.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use crate::agent::{self, AgentDir, Info, State};
use crate::channel::{self, Draft};
use crate::exit::{NO, fail};
use crate::statedir::StateDir;
use crate::tasks::{Status as TaskStatus, TaskList};
use crate::{infra::fsutil, infra::lock, infra::time, spawn};

/// The sender of mt-reap's records.
pub const FROM: &str = "mt-reap";

/// What a run should do.
#[derive(Debug, Clone)]
pub struct Options {
    pub stuck_after: Duration,
    /// Resume lost agents, and stop then resume stuck ones (second look).
    pub restart: bool,
    /// Stop agents idle for longer than this with no open task.
    pub idle_stop: Option<Duration>,
    /// Between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Channel for the reports.
    pub channel: String,
    /// Decide and report; change nothing.
    pub dry_run: bool,
    /// How long after a usage limit's reset time to resume its agent.
    pub after_reset: Duration,
    /// Resume (or nudge) agents stopped by a usage limit once it resets.
    pub limit_resume: bool,
}

/// One thing found, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub agent: String,
    pub what: String,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.agent, self.what)
    }
}

/// `agents/NAME/reap.json`: the silence episode last reported as stuck.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Marker {
    /// The last sign of life before the silence (RFC 3339).
    pub stuck_since: String,
    pub reported_at: String,
}

fn marker_path(a: &AgentDir) -> PathBuf {
    a.dir.join("reap.json")
}

fn read_marker(a: &AgentDir) -> Marker {
    std::fs::read(marker_path(a))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_marker(a: &AgentDir, m: &Marker) -> Result<()> {
    let mut data = serde_json::to_vec(m)?;
    data.push(b'\n');
    fsutil::write_atomic(&marker_path(a), &data, false)
}

fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => {
            let d = (now - t).to_std().unwrap_or_default();
            // Whole seconds are enough, but not when there are none.
            let d = if d.as_secs() > 0 {
                Duration::from_secs(d.as_secs())
            } else {
                Duration::from_millis(d.as_millis() as u64)
            };
            time::format_duration(d)
        }
        None => "?".into(),
    }
}

/// Look at every agent once; `each` is told what was done.
pub fn reap(state: &StateDir, o: &Options, each: &mut dyn FnMut(&Action)) -> Result<()> {
    crate::names::check("channel", &o.channel)?;
    if !state.agents().is_dir() {
        return Ok(());
    }
    // One reaper at a time, so an episode is reported once.
    let _lock = lock::exclusive_within(&state.root().join("reap.lock"), Duration::from_secs(60))?;
    let now = Utc::now();
    for info in agent::all(state)? {
        let a = AgentDir::new(state, &info.name)?;
        let res = check(state, o, &a, &info, now, each);
        if let Err(e) = res {
            // One agent's trouble does not keep the others from a look.
            crate::exit::warn(format_args!("{}: {e:#}", info.name));
        }
    }
    Ok(())
}

fn check(
    state: &StateDir,
    o: &Options,
    a: &AgentDir,
    info: &Info,
    now: DateTime<Utc>,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let Some(st) = &info.status else {
        return Ok(());
    };
    let active = agent::last_activity(st);
    if st.state.is_live() && !info.running {
        return lost(state, o, a, st, now, active, each);
    }
    if o.limit_resume
        && let Some(reset) = rejected_until(st)
        && now >= reset + chrono::Duration::from_std(o.after_reset).unwrap_or_default()
        && (if info.running {
            st.state == State::Idle
        } else {
            !stopped_on_request(st)
        })
    {
        return limit_reset(state, o, a, info, st, reset, each);
    }
    if !info.running {
        return Ok(());
    }
    let silent = active
        .map(|t| (now - t).to_std().unwrap_or_default())
        .unwrap_or_default();
    let seen = Seen {
        info,
        st,
        now,
        active,
        silent,
    };
    match st.state {
        State::Starting | State::Working if silent > o.stuck_after => {
            stuck(state, o, a, &seen, each)
        }
        State::Idle => idle(state, o, a, &seen, each),
        _ => Ok(()),
    }
}

/// What `check` found out about a running agent.
struct Seen<'a> {
    info: &'a Info,
    st: &'a crate::agent::Status,
    now: DateTime<Utc>,
    /// Its last activity, and how long ago that was.
    active: Option<DateTime<Utc>>,
    silent: std::time::Duration,
}

impl Seen<'_> {
    fn say(&self, each: &mut dyn FnMut(&Action), what: String) {
        each(&Action {
            agent: self.info.name.clone(),
            what,
        })
    }
}

/// A working agent silent for longer than `--stuck-after`: report it once,
/// then (with `--restart`) stop and resume it.
fn stuck(
    state: &StateDir,
    o: &Options,
    a: &AgentDir,
    seen: &Seen<'_>,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let Seen {
        info,
        st,
        now,
        active,
        ..
    } = *seen;
    let say = |each: &mut dyn FnMut(&Action), what: String| seen.say(each, what);
    if !st.open_tool_calls.is_empty() {
        return Ok(());
    }
    if rejected_until(st).is_some_and(|r| r > now) {
        return Ok(());
    }
    let since = active.map(time::stamp).unwrap_or_default();
    let quiet = format!(
        "stuck: no event for {} while {}, no tool call open",
        ago(now, active),
        st.state.as_str()
    );
    let marker = read_marker(a);
    if marker.stuck_since != since {
        if o.dry_run {
            say(each, format!("{quiet}; would report"));
            return Ok(());
        }
        post(
            state,
            o,
            &format!(
                "{} looks stuck: no event for {} while {}, and no tool call or subagent open",
                info.name,
                ago(now, active),
                st.state.as_str()
            ),
            "stuck",
            &info.name,
        )?;
        write_marker(
            a,
            &Marker {
                stuck_since: since,
                reported_at: time::stamp(now),
            },
        )?;
        say(each, format!("{quiet}; reported"));
    } else if o.restart {
        if o.dry_run {
            say(each, format!("{quiet}; would restart"));
            return Ok(());
        }
        let left = agent::stop(state, std::slice::from_ref(a), o.grace, FROM)?;
        if !left.is_empty() {
            return Err(fail(
                crate::exit::TEMPFAIL,
                "still running after SIGKILL; not restarted",
            ));
        }
        let _ = std::fs::remove_file(marker_path(a));
        let note = format!(
            "mt-reap: you were silent for {} with no tool call open, so your session was stopped and resumed. Carry on where you left off.",
            ago(now, active)
        );
        resume(state, &info.name, note)?;
        post(
            state,
            o,
            &format!("{} was stuck; stopped and resumed", info.name),
            "restart",
            &info.name,
        )?;
        say(each, format!("{quiet}; restarted"));
    }
    Ok(())
}

/// An idle agent with no open task, silent for longer than `--idle-stop`:
/// stop it softly.
fn idle(
    state: &StateDir,
    o: &Options,
    a: &AgentDir,
    seen: &Seen<'_>,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let Seen {
        info,
        now,
        active,
        silent,
        ..
    } = *seen;
    let say = |each: &mut dyn FnMut(&Action), what: String| seen.say(each, what);
    let Some(limit) = o.idle_stop else {
        return Ok(());
    };
    if silent <= limit {
        return Ok(());
    }
    if open_task(state, &info.name, info.meta.as_ref()).is_some() {
        return Ok(());
    }
    if info.status.as_ref().is_some_and(|s| s.background_tasks > 0) {
        return Ok(());
    }
    let what = format!("idle for {} with no open task", ago(now, active));
    if o.dry_run {
        say(each, format!("{what}; would stop"));
        return Ok(());
    }
    // Soft: an idle session ends cleanly when its stdin closes.
    let left = agent::stop_with(state, std::slice::from_ref(a), o.grace, FROM, true)?;
    if !left.is_empty() {
        return Err(fail(crate::exit::TEMPFAIL, "still running after SIGKILL"));
    }
    say(each, format!("{what}; stopped"));
    Ok(())
}

fn lost(
    state: &StateDir,
    o: &Options,
    a: &AgentDir,
    st: &crate::agent::Status,
    now: DateTime<Utc>,
    active: Option<DateTime<Utc>>,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let what = format!(
        "lost: its supervisor is gone (last sign of life {} ago)",
        ago(now, active)
    );
    let mut say = |what: String| {
        each(&Action {
            agent: a.name.clone(),
            what,
        })
    };
    if o.dry_run {
        let r = if o.restart { " and resume" } else { "" };
        say(format!("{what}; would report{r}"));
        return Ok(());
    }
    // Only the one that records the loss reports it.
    if agent::mark_lost(state, a, None)?.is_none() {
        return Ok(());
    }
    post(
        state,
        o,
        &format!(
            "{} exited unexpectedly: its supervisor is gone (last sign of life {} ago); recorded as failed (lost)",
            a.name,
            ago(now, active)
        ),
        "lost",
        &a.name,
    )?;
    // Resumed now it would only meet its limit again: the usage limit
    // rule resumes it once the limit has reset.
    if (o.restart || o.limit_resume)
        && let Some(reset) = rejected_until(st)
        && now < reset + chrono::Duration::from_std(o.after_reset).unwrap_or_default()
    {
        say(format!(
            "{what}; reported; resumes after its usage limit resets at {}",
            time::stamp(reset)
        ));
        return Ok(());
    }
    if !o.restart {
        say(format!("{what}; reported"));
        return Ok(());
    }
    let note = "mt-reap: your previous run ended unexpectedly (its supervisor was lost), so your session was resumed. Carry on where you left off.".to_string();
    match resume(state, &a.name, note) {
        Ok(()) => say(format!("{what}; reported; resumed")),
        Err(e) => say(format!("{what}; reported; cannot resume: {e:#}")),
    }
    Ok(())
}

/// When the rejected rate limit in `st` resets, if it shows one.
pub fn rejected_until(st: &crate::agent::Status) -> Option<DateTime<Utc>> {
    let rl = st
        .rate_limit
        .as_ref()
        .filter(|rl| rl.status == "rejected")?;
    rl.resets_at.as_deref().and_then(time::parse_stamp)
}

/// Whether the agent's last run was ended by a person or tool other than
/// mt-reap (whose idle stop leaves the work to be resumed).
fn stopped_on_request(st: &crate::agent::Status) -> bool {
    st.stopped && st.stopped_by.as_deref() != Some(&format!("mt-stop by {FROM}"))
}

/// The marker that claims the resume after the limit resetting at `reset`.
pub fn limit_marker(a: &AgentDir, reset: DateTime<Utc>) -> PathBuf {
    a.dir.join(format!("{LIMIT_MARKER}{}", reset.timestamp()))
}

const LIMIT_MARKER: &str = "limit-resumed.";

/// An agent stopped (or idle) on a usage limit that has reset: claim the
/// reset with an O_EXCL marker, then resume or nudge it through its inbox,
/// and say so on the channel. Silent once the reset is claimed.
fn limit_reset(
    state: &StateDir,
    o: &Options,
    a: &AgentDir,
    info: &Info,
    st: &crate::agent::Status,
    reset: DateTime<Utc>,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let marker = limit_marker(a, reset);
    if marker.exists() {
        return Ok(());
    }
    let kind = st
        .rate_limit
        .as_ref()
        .and_then(|r| r.kind.as_deref())
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    let at = time::stamp(reset);
    let what = format!("usage limit{kind} reset at {at}");
    let verb = if info.running { "nudge" } else { "resume" };
    let mut say = |what: String| {
        each(&Action {
            agent: a.name.clone(),
            what,
        })
    };
    if o.dry_run {
        say(format!("{what}; would {verb}"));
        return Ok(());
    }
    let claim = fsutil::options().write(true).create_new(true).open(&marker);
    match claim {
        Ok(mut f) => {
            use std::io::Write;
            let m = serde_json::json!({"resets_at": at, "at": time::stamp(Utc::now()), "by": FROM});
            let _ = writeln!(f, "{m}");
        }
        // Another reaper has it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("cannot create {}", marker.display()))
            );
        }
    }
    forget_older_limits(a, &marker);
    let note = format!(
        "mt-reap: the usage limit{kind} that stopped your work reset at {at}. Carry on where you left off."
    );
    let name = &a.name;
    match agent::nudge_as(state, name, &note, true, agent::Durability::Synced) {
        Ok(agent::Nudged::Waiting(why)) => {
            post(
                state,
                o,
                &format!("cannot resume {name} after its usage limit reset: {why}"),
                "limit-resume-failed",
                name,
            )?;
            say(format!("{what}; cannot resume: {why}"));
        }
        Ok(_) => {
            let how = if info.running { "nudged" } else { "resumed" };
            post(
                state,
                o,
                &format!("{name} {how} after the usage limit reset{kind} at {at}"),
                "limit-resume",
                name,
            )?;
            say(format!("{what}; {how}"));
        }
        Err(e) if crate::exit::code_of(&e) == crate::exit::TEMPFAIL => {
            // Busy, not refused: a later run tries again.
            let _ = std::fs::remove_file(&marker);
            return Err(e);
        }
        Err(e) => {
            post(
                state,
                o,
                &format!("cannot resume {name} after its usage limit reset: {e:#}"),
                "limit-resume-failed",
                name,
            )?;
            say(format!("{what}; cannot resume: {e:#}"));
        }
    }
    Ok(())
}

/// Markers of earlier resets are no longer looked at: the status shows a
/// newer one.
fn forget_older_limits(a: &AgentDir, keep: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(&a.dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p != keep
            && e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(LIMIT_MARKER))
        {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn resume(state: &StateDir, name: &str, note: String) -> Result<()> {
    let opts = spawn::Options {
        name: name.to_string(),
        resume: true,
        prompt: Some(note),
        ..spawn::Options::default()
    };
    match spawn::spawn_detached(state, opts) {
        Ok(_) => Ok(()),
        // Someone started it meanwhile: it runs, which is what we wanted.
        Err(e) if crate::exit::code_of(&e) == NO => Ok(()),
        Err(e) => Err(e),
    }
}

fn post(state: &StateDir, o: &Options, text: &str, event: &str, name: &str) -> Result<()> {
    let d = Draft {
        from: FROM.into(),
        kind: "system".into(),
        content: text.to_string(),
        meta: Some(serde_json::json!({"reap": event, "agent": name})),
        ..Draft::default()
    };
    channel::post(state, &o.channel, &d).map(drop)
}

/// A task agent `name` still has to finish: the one it was started for, or
/// any task of its list it owns that is not completed. Its id, if any. A
/// list or task that cannot be read counts as open (never stop on doubt).
pub fn open_task(state: &StateDir, name: &str, meta: Option<&agent::Meta>) -> Option<String> {
    let list = match crate::tasks::list_name(meta.and_then(|m| m.task_list.as_deref()), Some(state))
    {
        Ok(l) => l,
        Err(_) => return meta.and_then(|m| m.task.clone()),
    };
    let tl = match crate::statedir::claude_config_dir().and_then(|c| TaskList::new(&c, &list)) {
        Ok(t) => t,
        Err(_) => return meta.and_then(|m| m.task.clone()),
    };
    if let Some(id) = meta.and_then(|m| m.task.clone()) {
        match crate::tasks::parse_id(&id).and_then(|n| tl.load(n)) {
            Ok(Some(t)) if t.status() == Some(TaskStatus::Completed) => {}
            Ok(None) => {}
            _ => return Some(id),
        }
    }
    let Ok(listing) = tl.list() else {
        return Some("?".into());
    };
    listing
        .tasks
        .iter()
        .find(|t| t.owner() == Some(name) && t.status() != Some(TaskStatus::Completed))
        .map(|t| t.id.to_string())
}
