//! One pass of `mt-pr sync`: what changed on the repository's pull requests
//! since the last pass, posted once to the channel, with a nudge for the
//! coworker who must act.
//!
//! Under `pr/LOCK` (passes take turns):
//! 1. one `gh pr list` call, checked whole (a bad answer changes nothing);
//! 2. a plan a pass that died left in `pr/intent.json` is finished first
//!    (below);
//! 3. the answer is compared with `pr/state.json`, giving the changes;
//! 4. the plan — every record with a key of its own, every nudge, and the
//!    state to save — is written to `pr/intent.json`;
//! 5. the records are appended to the channel under one lock, with one
//!    sync; the nudges are sent, each noted in `pr/nudged` once sent;
//! 6. `pr/state.json` is replaced, then the plan removed.
//!
//! A pass killed anywhere leaves either no plan (nothing was posted: the
//! next pass sees the same changes) or a plan, which the next pass
//! finishes: it reads the channel after the seq the plan noted, posts only
//! the records whose key is not there, sends the nudges not noted as sent,
//! and saves the plan's state. So every change is posted exactly once; a
//! nudge is sent again only when a pass died between sending it and noting
//! it.

use anyhow::Result;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::changes::{self, Change, Entry};
use super::gh::{Gh, Pull};
use super::store::{Intent, Kept, Planned, PlannedNudge, Store};
use crate::agent::{self, AgentDir, Durability, Nudged};
use crate::channel::{self, Appender, Draft, Reader, WriteOptions};
use crate::exit;
use crate::infra::time;
use crate::statedir::StateDir;

/// The sender of mt-pr's records.
pub const FROM: &str = "mt-pr";

/// For tests only: points (comma separated) at which a pass kills itself
/// with SIGKILL: `intent` (plan written), `posting` (the first record
/// written, the others not), `posted`, `nudged` (after the first nudge),
/// `saved` (state saved, plan not yet removed).
pub const CRASH_VAR: &str = "MT_PR_CRASH";

fn crash_at(point: &str) {
    let Ok(v) = std::env::var(CRASH_VAR) else {
        return;
    };
    if v.split(',').any(|p| p.trim() == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The GitHub repository, `[HOST/]OWNER/NAME`.
    pub repo: String,
    pub channel: String,
    /// How many pull requests to ask for (the newest, open or closed).
    pub limit: usize,
    /// How long to wait for another pass to finish.
    pub wait: Duration,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records posted (by this pass, and finishing an earlier one).
    pub posted: usize,
    pub nudged: usize,
    /// An interrupted pass was finished: records it had already posted,
    /// records posted for it now.
    pub recovered: Option<(usize, usize)>,
    /// The exit status of the first nudge that failed.
    pub failure_code: Option<u8>,
}

/// Run one pass. `each` is told every line worth printing.
pub fn sync(state: &StateDir, gh: &Gh, o: &Options, each: &mut dyn FnMut(&str)) -> Result<Summary> {
    crate::names::check("channel", &o.channel)?;
    let store = Store::new(state);
    let _lock = store.lock(state, o.wait)?;
    let pulls = gh.list(o.limit)?;
    let mut summary = Summary::default();
    if let Some(intent) = store.intent()? {
        let found = keys_after(state, &intent.channel, intent.after_seq)?;
        let already = intent
            .records
            .iter()
            .filter(|r| found.contains(&r.key))
            .count();
        let posted = execute(state, &store, &intent, &found, &mut summary, each)?;
        summary.recovered = Some((already, posted));
        exit::warn(format_args!(
            "finished a pass that was interrupted: {already} of its records were on the channel, {posted} posted now"
        ));
    }
    let kept = store.load()?;
    let (new, changes) = plan(state, kept.as_ref(), &pulls, &o.repo)?;
    if changes.is_empty() {
        if kept.as_ref() != Some(&new) {
            store.save(&new)?;
        }
        return Ok(summary);
    }
    let intent = intent_of(state, o, new, changes)?;
    // Left by a pass that died after removing its plan: not this plan's.
    store.clear_nudged()?;
    store.write_intent(&intent)?;
    crash_at("intent");
    execute(state, &store, &intent, &HashSet::new(), &mut summary, each)?;
    Ok(summary)
}

/// Compare gh's answer with what was kept: the state to keep now, and the
/// changes in order of pull request number.
pub fn plan(
    state: &StateDir,
    kept: Option<&Kept>,
    pulls: &[Pull],
    repo: &str,
) -> Result<(Kept, Vec<Change>)> {
    // The first pass for a repository: closed pull requests are history.
    let old = kept.filter(|k| k.repo == repo);
    let since = old.map(|k| k.since.clone()).unwrap_or_else(time::now_stamp);
    let since_t = time::parse_stamp(&since);
    let empty = BTreeMap::new();
    let old_prs = old.map(|k| &k.prs).unwrap_or(&empty);
    let mut new = Kept {
        repo: repo.to_string(),
        since,
        synced_at: time::now_stamp(),
        prs: BTreeMap::new(),
    };
    let mut tasks: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut order: Vec<&Pull> = pulls.iter().collect();
    order.sort_by_key(|p| p.number);
    for p in order {
        let prev = old_prs.get(&p.number);
        let task = match changes::agent_of(&p.head_ref_name) {
            Some(a) if p.state == "OPEN" || prev.is_none() => {
                if !tasks.contains_key(&a) {
                    let t = task_of(state, &a);
                    tasks.insert(a.clone(), t);
                }
                tasks[&a].clone()
            }
            _ => (None, None),
        };
        let mut e = changes::entry_of(p, prev, task);
        let closed = [&p.merged_at, &p.closed_at]
            .into_iter()
            .flatten()
            .find_map(|s| time::parse_stamp(s))
            .or_else(|| time::parse_stamp(&p.updated_at));
        let announce = old.is_some() && closed.zip(since_t).is_some_and(|(c, s)| c >= s);
        changes.extend(changes::diff(prev, &mut e, p, announce));
        new.prs.insert(p.number, e);
    }
    // Not in this answer (older than the newest `limit`): open ones and
    // coworkers' ones are kept as they were; other closed ones are dropped.
    for (n, e) in old_prs {
        if !new.prs.contains_key(n) && (e.is_open() || e.agent.is_some()) {
            new.prs.insert(*n, e.clone());
        }
    }
    if changes.is_empty() && old.is_some_and(|k| same_but_time(k, &new)) {
        new.synced_at = old.map(|k| k.synced_at.clone()).unwrap_or_default();
    }
    Ok((new, changes))
}

fn same_but_time(a: &Kept, b: &Kept) -> bool {
    a.repo == b.repo && a.since == b.since && a.prs == b.prs
}

/// A coworker's task and task list, from its meta.json.
fn task_of(state: &StateDir, name: &str) -> (Option<String>, Option<String>) {
    AgentDir::new(state, name)
        .ok()
        .and_then(|a| a.read_meta().ok().flatten())
        .map(|m| (m.task, m.task_list))
        .unwrap_or_default()
}

fn intent_of(state: &StateDir, o: &Options, kept: Kept, changes: Vec<Change>) -> Result<Intent> {
    let now = chrono::Utc::now();
    let id = crate::infra::id::new_id(now.timestamp_millis().max(0) as u64);
    let after_seq = if state.channel(&o.channel).is_dir() {
        channel::last_seq(state, &o.channel)?.unwrap_or(0)
    } else {
        0
    };
    let mut records = Vec::new();
    let mut nudges = Vec::new();
    for (i, c) in changes.into_iter().enumerate() {
        let key = format!("{id}.{i}");
        let e: Option<&Entry> = kept.prs.get(&c.number);
        let mut pr = json!({
            "number": c.number,
            "change": c.kind.as_str(),
            "key": key,
        });
        if let Some(e) = e {
            pr["url"] = json!(e.url);
            pr["branch"] = json!(e.branch);
            pr["agent"] = json!(e.agent);
            pr["task"] = json!(e.task);
        }
        if let Value::Object(extra) = c.meta {
            for (k, v) in extra {
                pr[k] = v;
            }
        }
        // Only agents of this state directory (or with an inbox) can be
        // nudged; for the others the record is enough.
        if let Some((to, text)) = c.nudge
            && AgentDir::new(state, &to).is_ok_and(|a| a.exists() || a.inbox("new").is_dir())
        {
            nudges.push(PlannedNudge {
                to,
                text,
                key: key.clone(),
            });
        }
        records.push(Planned {
            key,
            kind: "status".into(),
            content: c.content,
            meta: json!({ "pr": pr }),
        });
    }
    Ok(Intent {
        id,
        channel: o.channel.clone(),
        after_seq,
        records,
        nudges,
        kept,
    })
}

/// The keys of mt-pr's records on `channel` after `seq`.
fn keys_after(state: &StateDir, channel: &str, seq: u64) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    if crate::names::problem(channel).is_some() || !state.channel(channel).is_dir() {
        return Ok(found);
    }
    let mut r = Reader::after_seq(state, channel, seq)?;
    r.read_available(&mut |it| {
        if it.view.from == FROM
            && let Ok(v) = serde_json::from_slice::<Value>(it.line)
            && let Some(k) = v["meta"]["pr"]["key"].as_str()
        {
            found.insert(k.to_string());
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Carry out a plan: post its records not in `found`, send its nudges not
/// noted as sent, save its state, remove it. Returns how many records it
/// posted.
fn execute(
    state: &StateDir,
    store: &Store,
    intent: &Intent,
    found: &HashSet<String>,
    summary: &mut Summary,
    each: &mut dyn FnMut(&str),
) -> Result<usize> {
    let todo: Vec<&Planned> = intent
        .records
        .iter()
        .filter(|r| !found.contains(&r.key))
        .collect();
    if !todo.is_empty() {
        // One lock and one sync for the lot.
        let mut app = Appender::open(state, &intent.channel, WriteOptions::from_env()?)?;
        for (i, r) in todo.iter().enumerate() {
            app.append(&Draft {
                from: FROM.into(),
                kind: r.kind.clone(),
                content: r.content.clone(),
                meta: Some(r.meta.clone()),
                ..Draft::default()
            })?;
            if i == 0 && todo.len() > 1 && std::env::var_os(CRASH_VAR).is_some() {
                app.flush()?;
                crash_at("posting");
            }
        }
        app.commit()?;
        for r in &todo {
            each(&r.content);
        }
    }
    let posted = todo.len();
    summary.posted += posted;
    crash_at("posted");
    let sent = store.nudged()?;
    for n in &intent.nudges {
        if sent.contains(&n.key) {
            continue;
        }
        match agent::nudge_as(state, &n.to, &n.text, true, Durability::Synced) {
            Ok(how) => {
                summary.nudged += 1;
                each(&match how {
                    Nudged::Delivered => format!("{}: nudged", n.to),
                    Nudged::Resumed => format!("{}: resumed", n.to),
                    Nudged::Waiting(why) => {
                        format!("{}: {why}; the message waits in its inbox", n.to)
                    }
                });
            }
            // Not an agent of this state directory: the record is enough.
            Err(e) if exit::code_of(&e) == exit::NO => {}
            Err(e) => {
                exit::warn(format_args!("cannot nudge {}: {e:#}", n.to));
                let code = match exit::code_of(&e) {
                    c if c > exit::USAGE => c,
                    _ => exit::SOFTWARE,
                };
                summary.failure_code.get_or_insert(code);
            }
        }
        store.note_nudged(&n.key)?;
        crash_at("nudged");
    }
    store.save(&intent.kept)?;
    crash_at("saved");
    store.remove_intent()?;
    store.clear_nudged()?;
    Ok(posted)
}
