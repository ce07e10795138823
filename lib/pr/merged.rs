//! The `all-work-merged` condition of reminders: every task of the list is
//! completed and every coworker's work is merged through a pull request.

use anyhow::Result;

use super::store::Store;
use crate::agent::AgentDir;
use crate::statedir::StateDir;
use crate::tasks::TaskList;

/// Whether, by what the last `mt-pr sync` saw:
/// - the task list has tasks and every one is completed;
/// - no pull request from a coworker's branch (`mt/NAME`) is open, and at
///   least one is merged;
/// - every completed task owned by a coworker that worked in a worktree
///   has a merged pull request from that coworker's branch, made for that
///   task (or for no known task).
///
/// A coworker that finished a task without a pull request of its own
/// holds the condition back.
pub fn all_work_merged(state: &StateDir, list: &TaskList) -> Result<bool> {
    if !crate::coord::remind::all_tasks_done(list)? {
        return Ok(false);
    }
    let Some(kept) = Store::new(state).load()? else {
        return Ok(false);
    };
    let theirs: Vec<_> = kept.prs.values().filter(|e| e.agent.is_some()).collect();
    if theirs.iter().any(|e| e.is_open()) || !theirs.iter().any(|e| e.is_merged()) {
        return Ok(false);
    }
    for t in list.list()?.tasks {
        let Some(owner) = t.owner() else {
            continue;
        };
        let Ok(a) = AgentDir::new(state, owner) else {
            continue;
        };
        let worked = a
            .read_meta()
            .ok()
            .flatten()
            .is_some_and(|m| m.worktree.is_some());
        if !worked {
            continue;
        }
        let id = t.id.to_string();
        let merged = theirs.iter().any(|e| {
            e.agent.as_deref() == Some(owner)
                && e.is_merged()
                && e.task.as_deref().is_none_or(|x| x == id)
                && e.task_list.as_deref().is_none_or(|l| l == list.name())
        });
        if !merged {
            return Ok(false);
        }
    }
    Ok(true)
}
