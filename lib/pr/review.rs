//! A reviewer coworker for a pull request: a free name from the pool, its
//! own worktree, the pull request's description and diff in its prompt,
//! and the `gh pr review` commands to give its verdict with, started the
//! way mt-sling starts a coworker.

use anyhow::Result;
use std::collections::BTreeSet;

use super::gh::{Gh, Viewed};
use crate::channel::{self, Draft};
use crate::coord::dispatch;
use crate::exit::{NO, fail};
use crate::spawn;
use crate::statedir::StateDir;
use crate::tasks::TaskList;

/// The most of a diff a prompt carries; the reviewer reads the rest with
/// `gh pr diff`.
pub const MAX_DIFF_BYTES: usize = 60 * 1024;

/// What a reviewer may run besides a coworker's default profile.
pub const GH_RULES: &[&str] = &[
    "Bash(gh pr view:*)",
    "Bash(gh pr diff:*)",
    "Bash(gh pr checks:*)",
    "Bash(gh pr review:*)",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub number: u64,
    /// Names to pick from (one, for `--name`).
    pub pool: Vec<String>,
    pub list: TaskList,
    pub channel: String,
    pub model: Option<String>,
    pub agent_cmd: Option<String>,
    pub permissions: crate::permissions::Choice,
}

/// The reviewer's prompt.
pub fn prompt(repo: &str, v: &Viewed, diff: &str) -> String {
    let n = v.number;
    let mut d = diff;
    let mut cut = String::new();
    if d.len() > MAX_DIFF_BYTES {
        let mut end = MAX_DIFF_BYTES;
        while !d.is_char_boundary(end) {
            end -= 1;
        }
        d = &d[..end];
        cut = format!(
            "\n[the diff is cut here, at {MAX_DIFF_BYTES} bytes of {}: read the whole with gh pr diff {n}]",
            diff.len()
        );
    }
    let body = v.body.trim();
    let body = if body.is_empty() {
        "(no description)"
    } else {
        body
    };
    let author = v
        .author
        .as_ref()
        .map(|a| a.login.as_str())
        .unwrap_or("ghost");
    format!(
        "Review pull request #{n} of {repo}: {title}
{url}
From branch {head} into {base}, by {author}.

Its description:

{body}

Its diff (gh pr diff {n}):

```diff
{d}
```{cut}

Read the change carefully: does it do what it says, is it correct, tested and clear? \
To build and test it, fetch it into your worktree without taking its branch: \
git fetch origin pull/{n}/head && git switch --detach FETCH_HEAD. \
Do not push to its branch and do not merge it.

Then give your verdict on the pull request, with exactly one of:
  gh pr review {n} --approve --body 'what you checked'
  gh pr review {n} --request-changes --body 'what must change, and where'
and post one line about it on the channel (mt-post). That is all this task asks.",
        title = v.title.trim(),
        url = v.url,
        head = v.head_ref_name,
        base = v.base_ref_name,
    )
}

/// Start a reviewer for pull request `o.number`; returns its name.
pub fn start(state: &StateDir, gh: &Gh, o: &Options) -> Result<String> {
    let v = gh.view(o.number)?;
    if v.state != "OPEN" {
        return Err(fail(
            NO,
            format!(
                "pull request #{} is {}; there is nothing to review",
                o.number,
                v.state.to_lowercase()
            ),
        ));
    }
    let diff = gh.diff(o.number)?;
    let text = prompt(&gh.repo, &v, &diff);
    let mut permissions = o.permissions.clone();
    for r in GH_RULES {
        if !permissions.allow.iter().any(|a| a == r) {
            permissions.allow.push(r.to_string());
        }
    }
    let d = dispatch::Options {
        list: o.list.clone(),
        pool: o.pool.clone(),
        model: o.model.clone(),
        channel: o.channel.clone(),
        agent_cmd: o.agent_cmd.clone(),
        permissions: permissions.clone(),
        // The reviewer starts as mt-spawn would choose.
        profiles: Vec::new(),
        from: "mt-pr".into(),
        dry_run: false,
    };
    // The same turns as mt-sling and mt-dispatch take to choose names.
    let _lock = dispatch::lock(state)?;
    let listing = o.list.list()?;
    let Some((name, Some(held))) = dispatch::reserve(state, &d, &listing, &BTreeSet::new())? else {
        return Err(fail(
            NO,
            match o.pool.as_slice() {
                [one] => format!(
                    "{one} is not free (running, owning an unfinished task, or with unmerged work)"
                ),
                _ => "no free agent name in the pool for a reviewer".to_string(),
            },
        ));
    };
    let opts = spawn::Options {
        name: name.clone(),
        prompt: Some(text),
        worktree: true,
        task_list: Some(o.list.name().to_string()),
        model: o.model.clone(),
        channel: Some(o.channel.clone()),
        agent_cmd: o.agent_cmd.clone(),
        permissions,
        role: Some(format!(
            "You review pull request #{} of {}; you do not change its code.",
            o.number, gh.repo
        )),
        ..spawn::Options::default()
    };
    spawn::prepare_locked(state, opts, held)
        .and_then(|(plan, held)| spawn::run_detached(plan, held))?;
    let draft = Draft {
        from: super::sync::FROM.into(),
        kind: "action".into(),
        content: format!(
            "{name} reviews #{}: {}",
            o.number,
            super::changes::quiet(&v.title)
        ),
        meta: Some(serde_json::json!({"pr": {
            "number": o.number, "change": "reviewer", "agent": name, "url": v.url
        }})),
        ..Draft::default()
    };
    channel::post(state, &o.channel, &draft)?;
    Ok(name)
}
