//! Tasks between hosts: each task is a ref, `refs/mt/tasks/<id>`, whose
//! commits are its versions (`task.json`, the task as Claude Code stores
//! it; a deletion is a version holding `deleted` instead). Every change —
//! create, claim, completion, edit, delete — is a new commit on top of the
//! version it was made from, pushed as a compare-and-swap: of two hosts
//! changing the same version, exactly one wins.
//!
//! Locally, `tasks.json` keeps per task the last version agreed with the
//! remote and a hash of the local file at that time; a file whose hash
//! differs was changed here. A change here and one on the remote are
//! merged field by field; where both changed the same field the remote
//! wins (a claim lost that way is told on the team's channel), and a
//! deletion wins over an edit. Two hosts creating the same id: the one
//! that published first keeps it; the other's task moves to a new id.

use anyhow::{Context, Result};
use git2::{Oid, Repository};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::remote::{self, Outcome, Remote, Update};
use super::state::{self, TaskBase, Tasks};
use super::{Identity, Options};
use crate::exit::{TEMPFAIL, fail};
use crate::statedir::StateDir;
use crate::tasks::{Claim, Refusal, Task, TaskList, Verdict};

pub const PREFIX: &str = "refs/mt/tasks/";

pub fn refname(id: u64) -> String {
    format!("{PREFIX}{id}")
}

/// One version of a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Version {
    Live(Map<String, Value>),
    Deleted,
}

fn read_version(repo: &Repository, commit: Oid) -> Result<Version> {
    let tree = repo.find_commit(commit)?.tree()?;
    if let Some(e) = tree.get_name("task.json") {
        let blob = repo.find_blob(e.id())?;
        return match serde_json::from_slice(blob.content()) {
            Ok(Value::Object(doc)) => Ok(Version::Live(doc)),
            _ => Err(anyhow::anyhow!("task version {commit} does not parse")),
        };
    }
    Ok(Version::Deleted)
}

fn write_version(
    repo: &Repository,
    me: &Identity,
    parent: Option<Oid>,
    id: u64,
    v: &Version,
) -> Result<Oid> {
    let mut tree = repo.treebuilder(None)?;
    let msg = match v {
        Version::Live(doc) => {
            tree.insert("task.json", repo.blob(&serde_json::to_vec(doc)?)?, 0o100644)?;
            let t = Task {
                id,
                doc: doc.clone(),
            };
            match t.owner() {
                Some(o) => format!("task {id}: {} ({o})", t.status_str()),
                None => format!("task {id}: {}", t.status_str()),
            }
        }
        Version::Deleted => {
            tree.insert("deleted", repo.blob(me.host.as_bytes())?, 0o100644)?;
            format!("task {id}: deleted")
        }
    };
    let tree = tree.write()?;
    super::commit(repo, &me.host, parent, tree, &msg)
}

/// A stable hash of a task file's bytes (FNV-1a, 64 bits).
pub fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What the task part of an exchange did.
#[derive(Debug, Default)]
pub struct Report {
    /// Versions pushed and taken.
    pub published: u64,
    /// Remote versions written to local files.
    pub applied: u64,
    /// Local tasks moved because another host had their id: (old, new).
    pub renumbered: Vec<(u64, u64)>,
    /// Claims made here that another host won: (task, loser, winner, host).
    pub lost: Vec<(u64, String, String, String)>,
    /// Updates another host beat us to in the last round.
    pub refused: u64,
}

/// What the task part of an exchange works on: this host's repository,
/// state directory, task list and identity.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub repo: &'a Repository,
    pub state: &'a StateDir,
    pub list: &'a TaskList,
    pub me: &'a Identity,
}

/// One pushed version and what it means locally once taken.
#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    /// The local file when the version was planned.
    local: Option<Vec<u8>>,
    /// What the local file becomes once the remote took the version.
    write: Option<Version>,
}

/// The updates of one round, and what each means locally.
#[derive(Debug, Default)]
pub struct Plan {
    pub updates: Vec<Update>,
    pending: Vec<Pending>,
}

/// Compare every task's local file, agreed version and remote version;
/// write remote changes to the local files now and plan the pushes for
/// local changes.
pub fn plan(cx: &Side<'_>, bases: &mut Tasks, report: &mut Report) -> Result<Plan> {
    let Side {
        repo,
        state,
        list,
        me,
    } = *cx;
    let mut remote_ids: BTreeMap<u64, Oid> = BTreeMap::new();
    for r in repo.references_glob(&format!("{PREFIX}*"))? {
        let r = r?;
        if let (Some(id), Some(oid)) = (
            r.name()
                .ok()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| crate::tasks::parse_id(n).ok()),
            r.target(),
        ) {
            remote_ids.insert(id, oid);
        }
    }
    let floor = remote_ids.keys().next_back().copied().unwrap_or(0);
    let mut ids: BTreeSet<u64> = list.ids()?.into_iter().collect();
    ids.extend(remote_ids.keys());
    ids.extend(bases.tasks.keys());
    let mut plan = Plan::default();
    for id in ids {
        let local = list.raw(id)?;
        let local_v = match &local {
            None => None,
            Some(b) => match serde_json::from_slice(b) {
                Ok(Value::Object(doc)) => Some(Version::Live(doc)),
                _ => {
                    crate::exit::warn(format_args!(
                        "task {id}: {} does not parse; not synced until it does",
                        list.path(id).display()
                    ));
                    continue;
                }
            },
        };
        let r = remote_ids.get(&id).copied();
        let mut base = bases.tasks.get(&id).cloned();
        let mut base_v = match &base {
            Some(b) => Oid::from_str(&b.commit)
                .ok()
                .and_then(|c| read_version(repo, c).ok()),
            None => None,
        };
        if base_v.is_none() {
            base = None;
        }
        // A file with no agreed version that some version of the remote's
        // task matches (a lost tasks.json, an import cut short) is that.
        if base.is_none()
            && let (Some(r), Some(lv)) = (r, &local_v)
            && let Some(c) = find_version(repo, r, lv)?
        {
            base = Some(TaskBase {
                commit: c.to_string(),
                hash: hash(local.as_deref().unwrap_or_default()),
            });
            base_v = Some(lv.clone());
        }
        // A task this host created whose create went through unanswered
        // (the push took, the reply was lost): ours, not a collision.
        if base.is_none()
            && local.is_some()
            && let Some(r) = r
            && creator(repo, r).as_deref() == Some(me.host.as_str())
        {
            base_v = Some(read_version(repo, r)?);
            base = Some(TaskBase {
                commit: r.to_string(),
                hash: String::new(),
            });
        }
        let local_hash = hash(local.as_deref().unwrap_or_default());
        let local_changed = match (&local_v, &base, &base_v) {
            (_, Some(b), _) if b.hash == local_hash && local.is_some() => false,
            (Some(lv), Some(_), Some(bv)) => lv != bv,
            (None, Some(_), Some(bv)) => *bv != Version::Deleted,
            (Some(_), None, _) => true,
            _ => false,
        };
        let base_commit = base.as_ref().and_then(|b| Oid::from_str(&b.commit).ok());
        match (r, base_commit) {
            (None, None) | (None, Some(_)) => {
                // Never published, or the remote lost it: publish ours.
                let Some(lv) = local_v else {
                    bases.tasks.remove(&id);
                    continue;
                };
                let new = write_version(repo, me, None, id, &lv)?;
                plan.push(id, None, new, local, None);
            }
            (Some(r), Some(b)) if r == b => {
                if !local_changed {
                    if let Some(base) = bases.tasks.get_mut(&id) {
                        base.hash = local_hash;
                    }
                    continue;
                }
                let v = local_v.unwrap_or(Version::Deleted);
                let new = write_version(repo, me, Some(r), id, &v)?;
                plan.push(id, Some(r), new, local, None);
            }
            (Some(r), None) => {
                let rv = read_version(repo, r)?;
                if local.is_some() {
                    // Another host published this id first: ours moves.
                    let bytes = local.clone().unwrap_or_default();
                    let unpublished = |t: u64| !bases.tasks.contains_key(&t);
                    if let Some(to) = list.renumber(id, &bytes, floor, unpublished)? {
                        report.renumbered.push((id, to));
                        super::announce(
                            state,
                            &format!(
                                "task {id} made here is now task {to}: host {} published a task {id} first",
                                super::commit_host(repo, r).unwrap_or_else(|| "?".into())
                            ),
                        );
                        apply_local(list, bases, report, id, None, r, &rv)?;
                    }
                    continue;
                }
                apply_local(list, bases, report, id, None, r, &rv)?;
            }
            (Some(r), Some(_)) => {
                let rv = read_version(repo, r)?;
                if !local_changed {
                    apply_local(list, bases, report, id, local.as_deref(), r, &rv)?;
                    continue;
                }
                let (merged, lost) = merge(
                    base_v.as_ref().unwrap_or(&Version::Deleted),
                    local_v.as_ref().unwrap_or(&Version::Deleted),
                    &rv,
                );
                if let Some((loser, winner)) = lost {
                    let host = super::commit_host(repo, r).unwrap_or_else(|| "?".into());
                    super::announce(
                        state,
                        &format!(
                            "@{loser} task {id} is {winner}'s (host {host} claimed it first); your claim here was undone"
                        ),
                    );
                    report.lost.push((id, loser, winner, host));
                }
                if merged == rv {
                    apply_local(list, bases, report, id, local.as_deref(), r, &rv)?;
                } else {
                    let new = write_version(repo, me, Some(r), id, &merged)?;
                    plan.push(id, Some(r), new, local, Some(merged));
                }
            }
        }
    }
    Ok(plan)
}

impl Plan {
    fn push(
        &mut self,
        id: u64,
        old: Option<Oid>,
        new: Oid,
        local: Option<Vec<u8>>,
        write: Option<Version>,
    ) {
        self.updates.push(Update {
            refname: refname(id),
            old,
            new,
        });
        self.pending.push(Pending { id, local, write });
    }
}

/// The host that created the task whose newest version is `tip`.
fn creator(repo: &Repository, tip: Oid) -> Option<String> {
    let mut c = repo.find_commit(tip).ok()?;
    for _ in 0..100_000 {
        match c.parent(0) {
            Ok(p) => c = p,
            Err(_) => return super::commit_host(repo, c.id()),
        }
    }
    None
}

/// The version of the task at `tip` or before it equal to `v`, if any.
fn find_version(repo: &Repository, tip: Oid, v: &Version) -> Result<Option<Oid>> {
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    for c in walk.take(1000) {
        let c = c?;
        if read_version(repo, c).ok().as_ref() == Some(v) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Write the remote's version `rv` (commit `r`) to the local file, if it
/// still holds `local`; it becomes the agreed version.
fn apply_local(
    list: &TaskList,
    bases: &mut Tasks,
    report: &mut Report,
    id: u64,
    local: Option<&[u8]>,
    r: Oid,
    rv: &Version,
) -> Result<()> {
    let doc = match rv {
        Version::Live(d) => Some(d),
        Version::Deleted => None,
    };
    if let Some(stored) = list.swap(id, local, doc)? {
        bases.tasks.insert(
            id,
            TaskBase {
                commit: r.to_string(),
                hash: hash(&stored),
            },
        );
        report.applied += 1;
    }
    // Else the file changed meanwhile: the next exchange looks again.
    Ok(())
}

/// Merge a local change and a remote change of the same base, field by
/// field; the remote wins a field both changed, a deletion wins over an
/// edit. Also returns (loser, winner) when that undid a claim made here.
fn merge(base: &Version, local: &Version, remote: &Version) -> (Version, Option<(String, String)>) {
    let (Version::Live(b), Version::Live(l), Version::Live(r)) = (base, local, remote) else {
        if matches!(local, Version::Deleted) && matches!(base, Version::Live(_)) {
            return (Version::Deleted, None);
        }
        return (remote.clone(), None);
    };
    let mut m = r.clone();
    let mut lost = None;
    let keys: BTreeSet<&String> = b.keys().chain(l.keys()).collect();
    for k in keys {
        let (bv, lv, rv) = (b.get(k), l.get(k), r.get(k));
        if lv == bv {
            continue;
        }
        if rv == bv {
            match lv {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        } else if lv != rv && k == "owner" {
            let name = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
            if !name(lv).is_empty() && !name(rv).is_empty() {
                lost = Some((name(lv), name(rv)));
            }
        }
    }
    (Version::Live(m), lost)
}

/// After a push: record what the remote took, write the merged versions
/// to the local files. Returns how many updates were refused.
pub fn apply(
    cx: &Side<'_>,
    bases: &mut Tasks,
    plan: &Plan,
    outcomes: &[Outcome],
    report: &mut Report,
) -> Result<u64> {
    let Side { repo, list, .. } = *cx;
    let mut refused = 0;
    for ((u, p), o) in plan.updates.iter().zip(&plan.pending).zip(outcomes) {
        if *o != Outcome::Done {
            refused += 1;
            continue;
        }
        remote::set_local_ref(repo, &u.refname, u.new)?;
        report.published += 1;
        let mut stored = p.local.clone().unwrap_or_default();
        if let Some(v) = &p.write {
            let doc = match v {
                Version::Live(d) => Some(d),
                Version::Deleted => None,
            };
            if let Some(s) = list.swap(p.id, p.local.as_deref(), doc)? {
                stored = s;
            }
        }
        bases.tasks.insert(
            p.id,
            TaskBase {
                commit: u.new.to_string(),
                hash: hash(&stored),
            },
        );
    }
    report.refused = refused;
    Ok(refused)
}

/// Claim a task: through the remote when this repository syncs (the
/// claim counts only once the remote took it), else on the local list.
pub fn claim(state: &StateDir, list: &TaskList, id: u64, owner: &str) -> Result<Claim> {
    if !state::enabled(state) {
        return list.claim(id, owner);
    }
    crate::names::check_claude("owner", owner)?;
    let settings = crate::config::Settings::load()?;
    let opts = Options::from_settings(&settings, state)?;
    let repo = super::open_repo()?;
    let _lock = state::lock(state)?;
    remote::clear_stale_locks(&repo);
    let me = Identity::establish(state, &opts.host)?;
    let remote = Remote::open(&repo, &opts.remote, opts.timeout)?;
    let mut bases = Tasks::load(state)?;
    let name = refname(id);
    for _ in 0..8 {
        remote.fetch(&[&name])?;
        let r = remote::local_ref(&repo, &name)?;
        let local = list.raw(id)?;
        let doc = match (r.map(|r| read_version(&repo, r)).transpose()?, &local) {
            (Some(Version::Live(d)), _) => d,
            (Some(Version::Deleted), _) | (None, None) => {
                return Ok(Claim::Refused(Refusal::Missing));
            }
            (None, Some(bytes)) => match serde_json::from_slice(bytes) {
                Ok(Value::Object(d)) => d,
                _ => {
                    return Ok(Claim::Refused(Refusal::Unreadable(
                        "not a task object".into(),
                    )));
                }
            },
        };
        let task = Task { id, doc };
        let open = list.open_blockers(&task)?;
        match crate::tasks::judge_claim(&task, owner, &open) {
            Verdict::Take => {}
            Verdict::AlreadyYours => return Ok(Claim::AlreadyYours(task)),
            Verdict::Refuse(why) => {
                if let Some(r) = r {
                    // Show the winner here too.
                    let _ = apply_local(
                        list,
                        &mut bases,
                        &mut Report::default(),
                        id,
                        local.as_deref(),
                        r,
                        &Version::Live(task.doc.clone()),
                    );
                    bases.save(state)?;
                }
                return Ok(Claim::Refused(match why {
                    Refusal::Claimed { owner: o } => Refusal::Claimed {
                        owner: match r.and_then(|r| super::commit_host(&repo, r)) {
                            Some(h) if h != me.host => format!("{o} (host {h})"),
                            _ => o,
                        },
                    },
                    other => other,
                }));
            }
        }
        let mut doc = task.doc.clone();
        crate::tasks::take(&mut doc, owner);
        let v = Version::Live(doc.clone());
        let new = write_version(&repo, &me, r, id, &v)?;
        let out = remote.push(&[Update {
            refname: name.clone(),
            old: r,
            new,
        }])?;
        if out[0] != Outcome::Done {
            continue;
        }
        remote::set_local_ref(&repo, &name, new)?;
        // The remote's word is the claim; the local file follows, keeping
        // what was changed here and not yet published (the next exchange
        // publishes it on top of the claim).
        let base_v = bases
            .tasks
            .get(&id)
            .and_then(|b| Oid::from_str(&b.commit).ok())
            .and_then(|c| read_version(&repo, c).ok());
        let claimed = Version::Live(doc.clone());
        for _ in 0..8 {
            let now = list.raw(id)?;
            let now_v = match &now {
                None => Version::Deleted,
                Some(b) => match serde_json::from_slice(b) {
                    Ok(Value::Object(d)) => Version::Live(d),
                    _ => claimed.clone(),
                },
            };
            let target = match &base_v {
                Some(bv) if now_v != *bv => merge(bv, &now_v, &claimed).0,
                _ => claimed.clone(),
            };
            let write = match &target {
                Version::Live(d) => Some(d),
                Version::Deleted => None,
            };
            if list.swap(id, now.as_deref(), write)?.is_some() {
                break;
            }
        }
        bases.tasks.insert(
            id,
            TaskBase {
                commit: new.to_string(),
                hash: hash(&serde_json::to_vec_pretty(&doc)?),
            },
        );
        bases.save(state)?;
        return Ok(Claim::Won(Task { id, doc }));
    }
    Err(fail(
        TEMPFAIL,
        format!("task {id}: the remote kept changing under the claim; try again"),
    ))
    .context("claim not made")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(v: Value) -> Version {
        match v {
            Value::Object(m) => Version::Live(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn fields_changed_on_either_side_are_both_kept() {
        let base =
            live(json!({"id": "1", "subject": "a", "description": "d", "status": "pending"}));
        let local =
            live(json!({"id": "1", "subject": "a", "description": "new d", "status": "pending"}));
        let remote =
            live(json!({"id": "1", "subject": "b", "description": "d", "status": "pending"}));
        let (m, lost) = merge(&base, &local, &remote);
        assert_eq!(
            m,
            live(json!({"id": "1", "subject": "b", "description": "new d", "status": "pending"}))
        );
        assert_eq!(lost, None);
    }

    #[test]
    fn a_claim_both_sides_made_goes_to_the_remote_and_names_the_loser() {
        let base = live(json!({"id": "1", "status": "pending"}));
        let local = live(json!({"id": "1", "status": "in_progress", "owner": "york"}));
        let remote = live(json!({"id": "1", "status": "in_progress", "owner": "park"}));
        let (m, lost) = merge(&base, &local, &remote);
        assert_eq!(m, remote);
        assert_eq!(lost, Some(("york".into(), "park".into())));
    }

    #[test]
    fn a_deletion_wins_over_an_edit() {
        let base = live(json!({"id": "1", "subject": "a"}));
        let edited = live(json!({"id": "1", "subject": "b"}));
        assert_eq!(merge(&base, &Version::Deleted, &edited).0, Version::Deleted);
        assert_eq!(merge(&base, &edited, &Version::Deleted).0, Version::Deleted);
    }

    #[test]
    fn a_field_removed_here_stays_removed() {
        let base = live(json!({"id": "1", "owner": "york", "status": "pending"}));
        let local = live(json!({"id": "1", "status": "pending"}));
        let (m, _) = merge(&base, &local, &base);
        assert_eq!(m, local);
    }

    #[test]
    fn the_file_hash_is_stable() {
        // Stored in tasks.json: it must not change between builds.
        assert_eq!(hash(b""), "cbf29ce484222325");
        assert_eq!(hash(b"a"), "af63dc4c8601ec8c");
    }
}
