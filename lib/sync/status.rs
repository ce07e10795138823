//! Coworker status published read-only for the other hosts
//! (`refs/mt/status/<host>`: a commit whose tree holds `agents`, a JSON
//! array), shown by `mt-ps --all-hosts`. Only what changes with an agent's
//! state is published (not tokens or event times), so a busy host does
//! not push on every exchange. Agents themselves stay on their host.

use anyhow::Result;
use git2::Repository;
use serde::{Deserialize, Serialize};

use super::Identity;
use super::remote::{self, Update};
use crate::statedir::StateDir;

pub const PREFIX: &str = "refs/mt/status/";

/// One coworker as another host sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// This host's coworkers now.
pub fn snapshot(state: &StateDir) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for a in crate::agent::all(state)? {
        let st = a.status.as_ref();
        let m = a.meta.as_ref();
        rows.push(Row {
            name: a.name.clone(),
            state: a.shown.to_string(),
            task: m.and_then(|m| m.task.clone()),
            worktree: m
                .and_then(|m| m.worktree.as_ref())
                .and_then(|w| w.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            exit_code: st.and_then(|s| s.exit_code),
            started_at: st.and_then(|s| s.started_at.clone()),
        });
    }
    Ok(rows)
}

/// The update that publishes this host's coworkers, when they changed
/// since the last publication.
pub fn publish(repo: &Repository, state: &StateDir, me: &Identity) -> Result<Option<Update>> {
    let refname = format!("{PREFIX}{}", me.host);
    let rows = snapshot(state)?;
    let bytes = serde_json::to_vec(&rows)?;
    let tip = remote::local_ref(repo, &refname)?;
    if let Some(t) = tip
        && let Ok(old) = read(repo, t)
        && old == rows
    {
        return Ok(None);
    }
    let mut tree = repo.treebuilder(None)?;
    tree.insert("agents", repo.blob(&bytes)?, 0o100644)?;
    let tree = tree.write()?;
    // No history is kept: each version replaces the last.
    let new = super::commit(repo, &me.host, None, tree, "mt-sync: coworker status")?;
    Ok(Some(Update {
        refname,
        old: tip,
        new,
    }))
}

fn read(repo: &Repository, commit: git2::Oid) -> Result<Vec<Row>> {
    let tree = repo.find_commit(commit)?.tree()?;
    let entry = tree
        .get_name("agents")
        .ok_or_else(|| anyhow::anyhow!("no agents in the status"))?;
    Ok(serde_json::from_slice(
        repo.find_blob(entry.id())?.content(),
    )?)
}

/// Every other host's coworkers as last fetched, by host name.
pub fn others(repo: &Repository, me: Option<&str>) -> Result<Vec<(String, Vec<Row>)>> {
    let mut out = Vec::new();
    for r in repo.references_glob(&format!("{PREFIX}*"))? {
        let r = r?;
        let Some(host) = r.name().ok().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if Some(host) == me || !crate::names::is_valid(host) {
            continue;
        }
        let Some(id) = r.target() else { continue };
        match read(repo, id) {
            Ok(rows) => out.push((host.to_string(), rows)),
            Err(e) => crate::exit::warn(format_args!(
                "the status host {host} published does not parse: {e:#}"
            )),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
