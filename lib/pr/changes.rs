//! What mt-pr keeps of each pull request (`Entry`), and the changes between
//! what it kept and what gh says now, each one a record for the channel and,
//! for the changes its owner must act on, a nudge saying what to do.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::gh::{Outcome, Pull};

/// Where a pull request's checks stand, for its head commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CiStatus {
    /// No checks.
    #[default]
    None,
    Pending,
    Failed,
    Passed,
}

impl CiStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CiStatus::None => "none",
            CiStatus::Pending => "pending",
            CiStatus::Failed => "failed",
            CiStatus::Passed => "passed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ci {
    pub status: CiStatus,
    /// The head commit the status is for.
    pub sha: String,
    /// The failing checks' names, sorted.
    pub failing: Vec<String>,
}

/// The rollup of a pull request's checks: failed as soon as one failed,
/// else pending while one runs, else passed (none when there are none).
pub fn ci_of(p: &Pull) -> Ci {
    let checks = p.status_check_rollup.as_deref().unwrap_or_default();
    let mut failing: Vec<String> = Vec::new();
    let mut pending = false;
    for c in checks {
        match c.outcome() {
            Outcome::Failed => failing.push(c.label()),
            Outcome::Pending => pending = true,
            Outcome::Passed => {}
        }
    }
    failing.sort();
    failing.dedup();
    let status = if !failing.is_empty() {
        CiStatus::Failed
    } else if pending {
        CiStatus::Pending
    } else if checks.is_empty() {
        CiStatus::None
    } else {
        CiStatus::Passed
    };
    Ci {
        status,
        sha: p.head_ref_oid.clone(),
        failing,
    }
}

/// What is kept of one pull request between passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Entry {
    pub number: u64,
    pub title: String,
    pub url: String,
    pub branch: String,
    pub base: String,
    pub author: String,
    /// The coworker whose branch (`mt/NAME`) it is from.
    pub agent: Option<String>,
    /// The coworker's task and task list when the pull request was last
    /// seen open (from its agent's meta.json).
    pub task: Option<String>,
    pub task_list: Option<String>,
    /// OPEN, CLOSED or MERGED.
    pub state: String,
    pub draft: bool,
    pub head: String,
    pub ci: Ci,
    /// It does not merge into its base.
    pub conflict: bool,
    pub mergeable: String,
    pub merge_state: String,
    pub review_decision: String,
    /// Reviewer -> the last approval or change request of theirs that was
    /// posted.
    pub reviews: BTreeMap<String, String>,
    /// Reviewers asked for and not yet answered, as posted.
    pub requested: Vec<String>,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
}

impl Entry {
    pub fn is_open(&self) -> bool {
        self.state == "OPEN"
    }
    pub fn is_merged(&self) -> bool {
        self.state == "MERGED"
    }
}

/// The coworker a branch belongs to: `mt/NAME` with a valid agent name.
pub fn agent_of(branch: &str) -> Option<String> {
    branch
        .strip_prefix("mt/")
        .filter(|n| crate::names::is_valid(n))
        .map(str::to_string)
}

/// The entry for `p` now. `old` is what was kept; `task` the coworker's
/// task and list, when it has an agent directory.
pub fn entry_of(p: &Pull, old: Option<&Entry>, task: (Option<String>, Option<String>)) -> Entry {
    let agent = agent_of(&p.head_ref_name);
    // UNKNOWN means GitHub is still computing it: keep what was known.
    let conflict = match p.mergeable.as_str() {
        "CONFLICTING" => true,
        "MERGEABLE" => p.merge_state_status == "DIRTY",
        _ => old.is_some_and(|o| o.conflict) || p.merge_state_status == "DIRTY",
    };
    let requested: Vec<String> = p
        .review_requests
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.who())
        .collect();
    let (task, task_list) = match (p.state.as_str(), old) {
        // A closed pull request keeps the task it was for.
        ("OPEN", _) | (_, None) => task,
        (_, Some(o)) => (o.task.clone(), o.task_list.clone()),
    };
    Entry {
        number: p.number,
        title: p.title.clone(),
        url: p.url.clone(),
        branch: p.head_ref_name.clone(),
        base: p.base_ref_name.clone(),
        author: p.author().to_string(),
        agent,
        task,
        task_list,
        state: p.state.clone(),
        draft: p.is_draft,
        head: p.head_ref_oid.clone(),
        ci: ci_of(p),
        conflict,
        mergeable: p.mergeable.clone(),
        merge_state: p.merge_state_status.clone(),
        review_decision: p.review_decision.clone().unwrap_or_default(),
        reviews: old.map(|o| o.reviews.clone()).unwrap_or_default(),
        requested,
        updated_at: p.updated_at.clone(),
        closed_at: p.closed_at.clone(),
        merged_at: p.merged_at.clone(),
    }
}

/// The kinds of change a pass posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Opened,
    Reopened,
    CiFailed,
    CiPassed,
    ReviewRequested,
    ChangesRequested,
    Approved,
    Conflict,
    Merged,
    Closed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Opened => "opened",
            Kind::Reopened => "reopened",
            Kind::CiFailed => "ci-failed",
            Kind::CiPassed => "ci-passed",
            Kind::ReviewRequested => "review-requested",
            Kind::ChangesRequested => "changes-requested",
            Kind::Approved => "approved",
            Kind::Conflict => "conflict",
            Kind::Merged => "merged",
            Kind::Closed => "closed",
        }
    }
}

/// One change: the record's text and meta, and the nudge for the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub number: u64,
    pub content: String,
    /// What the record's `meta.pr` holds besides number, change and key.
    pub meta: Value,
    /// (coworker, text) for the changes its owner must act on.
    pub nudge: Option<(String, String)>,
}

/// How long a review excerpt may be, in characters.
const EXCERPT: usize = 160;

/// Text from GitHub made safe for the channel: no `@name` in it would
/// mention anyone (mt-route would act on it), and it is one line.
pub fn quiet(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_word = false;
    for c in s.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c == '@' && !prev_word {
            prev_word = false;
            continue;
        }
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        prev_word = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        out.push(c);
    }
    out.trim().to_string()
}

/// A review's first words, quiet, at most `EXCERPT` characters.
pub fn excerpt(body: &str) -> String {
    let q = quiet(body);
    if q.chars().count() <= EXCERPT {
        return q;
    }
    let mut s: String = q.chars().take(EXCERPT - 1).collect();
    s.push('…');
    s
}

/// Who a pull request is about, for the records: `york, task 3` or
/// `branch fix-x`.
fn owner(e: &Entry) -> String {
    match (&e.agent, &e.task) {
        (Some(a), Some(t)) => format!("{a}, task {t}"),
        (Some(a), None) => a.clone(),
        (None, _) => format!("branch {}", quiet(&e.branch)),
    }
}

/// The changes from `old` to `new` (`p` is gh's answer `new` was made
/// from). `announce` says whether a pull request seen for the first time
/// already closed is worth a record (it closed since mt-pr began following
/// the repository); an open one always is.
pub fn diff(old: Option<&Entry>, new: &mut Entry, p: &Pull, announce: bool) -> Vec<Change> {
    let mut out = Vec::new();
    let who = owner(new);
    let n = new.number;
    let title = quiet(&new.title);
    let mk = |kind: Kind, content: String, meta: Value| Change {
        kind,
        number: n,
        content,
        meta,
        nudge: None,
    };
    let was_open = old.is_some_and(Entry::is_open);
    match new.state.as_str() {
        "MERGED" | "CLOSED" => {
            let first = old.is_none();
            if (first && announce) || was_open {
                if new.is_merged() {
                    out.push(mk(
                        Kind::Merged,
                        format!("#{n} merged ({who}): {title}"),
                        json!({}),
                    ));
                } else {
                    out.push(mk(
                        Kind::Closed,
                        format!("#{n} closed without merging ({who}): {title}"),
                        json!({}),
                    ));
                }
            }
            return out;
        }
        _ => {}
    }
    match old {
        None => {
            let draft = if new.draft { "draft " } else { "" };
            out.push(mk(
                Kind::Opened,
                format!(
                    "{draft}#{n} opened ({who}) by {}: {title} {}",
                    quiet(&new.author),
                    new.url
                ),
                json!({"draft": new.draft}),
            ));
        }
        Some(o) if !o.is_open() => {
            out.push(mk(
                Kind::Reopened,
                format!("#{n} reopened ({who}): {title}"),
                json!({}),
            ));
        }
        Some(_) => {}
    }
    // CI, for the head commit: a new status, or the same on a new commit.
    let old_ci = old.map(|o| &o.ci);
    let same = |s: CiStatus| old_ci.is_some_and(|c| c.status == s && c.sha == new.ci.sha);
    match new.ci.status {
        CiStatus::Failed if !same(CiStatus::Failed) => {
            let checks = new
                .ci
                .failing
                .iter()
                .map(|c| quiet(c))
                .collect::<Vec<_>>()
                .join(", ");
            let mut c = mk(
                Kind::CiFailed,
                format!("#{n} CI failed ({who}): {checks}"),
                json!({"head": new.ci.sha, "checks": new.ci.failing}),
            );
            c.nudge = new.agent.clone().map(|a| {
                (
                    a,
                    format!(
                        "CI failed on your pull request #{n} (checks: {checks}). Look at `gh pr checks {n}`, fix it on your branch and push."
                    ),
                )
            });
            out.push(c);
        }
        CiStatus::Passed if !same(CiStatus::Passed) => {
            out.push(mk(
                Kind::CiPassed,
                format!("#{n} CI passed ({who})"),
                json!({"head": new.ci.sha}),
            ));
        }
        _ => {}
    }
    // Reviewers newly asked for.
    let before: &[String] = old.map(|o| o.requested.as_slice()).unwrap_or_default();
    for r in &new.requested {
        if !before.contains(r) {
            out.push(mk(
                Kind::ReviewRequested,
                format!("#{n} review requested from {} ({who})", quiet(r)),
                json!({"reviewer": r}),
            ));
        }
    }
    // Approvals and change requests not posted yet, one per reviewer.
    let mut reviews: Vec<&super::gh::Review> = p
        .latest_reviews
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|r| matches!(r.state.as_str(), "APPROVED" | "CHANGES_REQUESTED"))
        .collect();
    reviews.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at));
    for r in reviews {
        let id = r.identity();
        let who_r = r.who().to_string();
        if new.reviews.get(&who_r) == Some(&id) {
            continue;
        }
        new.reviews.insert(who_r.clone(), id.clone());
        let by = quiet(&who_r);
        if r.state == "APPROVED" {
            out.push(mk(
                Kind::Approved,
                format!("#{n} approved by {by} ({who})"),
                json!({"reviewer": who_r, "review": id}),
            ));
        } else {
            let ex = excerpt(&r.body);
            let said = if ex.is_empty() {
                String::new()
            } else {
                format!(": \"{ex}\"")
            };
            let mut c = mk(
                Kind::ChangesRequested,
                format!("#{n} changes requested by {by} ({who}){said}"),
                json!({"reviewer": who_r, "review": id}),
            );
            c.nudge = new.agent.clone().map(|a| {
                (
                    a,
                    format!(
                        "{by} requested changes on your pull request #{n}{said}. Read the review with `gh pr view {n} --comments`, address it on your branch, push, and answer on the pull request."
                    ),
                )
            });
            out.push(c);
        }
    }
    // A conflict with the base, when it starts.
    if new.conflict && !old.is_some_and(|o| o.conflict && o.is_open()) {
        let base = quiet(&new.base);
        let mut c = mk(
            Kind::Conflict,
            format!("#{n} no longer merges into {base} ({who}): conflicts"),
            json!({"head": new.head, "base": new.base}),
        );
        c.nudge = new.agent.clone().map(|a| {
            (
                a,
                format!(
                    "Your pull request #{n} no longer merges into {base}: it has conflicts. Merge {base} into your branch (git fetch origin && git merge origin/{base}), resolve the conflicts, run the tests, commit and push."
                ),
            )
        });
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_text_mentions_nobody() {
        assert_eq!(quiet("thanks @york, see\n@all"), "thanks york, see all");
        assert_eq!(quiet("mail x@y.com"), "mail x@y.com");
        assert!(crate::record::mentions(&quiet("@a @b-c (@d)")).is_empty());
        let long = "word ".repeat(100);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT);
    }

    #[test]
    fn branches_name_coworkers() {
        assert_eq!(agent_of("mt/york").as_deref(), Some("york"));
        assert_eq!(agent_of("mt/../x"), None);
        assert_eq!(agent_of("feature/x"), None);
    }
}
