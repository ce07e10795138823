//! GitHub's command-line tool, `gh`: the one program mt-pr runs, and its
//! answers as mt-pr reads them.
//!
//! A pass asks once, `gh pr list --state all --json FIELDS`, for every field
//! it needs. An answer is checked whole before anything is written: JSON
//! that does not parse, an object without one of the fields asked for (a
//! partial answer) or a value of the wrong kind is exit 65 and changes
//! nothing.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exit::{DATAERR, TEMPFAIL, UNAVAILABLE, fail};

/// The fields of `gh pr list --json` a pass reads, in the names gh
/// documents.
pub const LIST_FIELDS: &[&str] = &[
    "number",
    "title",
    "url",
    "state",
    "isDraft",
    "headRefName",
    "headRefOid",
    "baseRefName",
    "author",
    "mergeable",
    "mergeStateStatus",
    "reviewDecision",
    "latestReviews",
    "reviewRequests",
    "statusCheckRollup",
    "updatedAt",
    "closedAt",
    "mergedAt",
];

/// The fields of `gh pr view --json` a reviewer's prompt is made of.
pub const VIEW_FIELDS: &[&str] = &[
    "number",
    "title",
    "body",
    "url",
    "state",
    "isDraft",
    "headRefName",
    "baseRefName",
    "author",
];

/// gh's exit status when it has no login (see gh help exit-codes).
const GH_NO_AUTH: i32 = 4;

/// A user or bot, as gh gives it (`null` for a deleted account).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Login {
    #[serde(default)]
    pub login: String,
}

/// One latest review per reviewer (`latestReviews`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Newer gh versions give the review's node id; older ones do not.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub author: Option<Login>,
    #[serde(default)]
    pub body: String,
    /// APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING.
    pub state: String,
    #[serde(default)]
    pub submitted_at: Option<String>,
}

impl Review {
    pub fn who(&self) -> &str {
        self.author
            .as_ref()
            .map(|a| a.login.as_str())
            .filter(|l| !l.is_empty())
            .unwrap_or("ghost")
    }

    /// What tells this review from the reviewer's next one.
    pub fn identity(&self) -> String {
        match self.id.as_deref().filter(|i| !i.is_empty()) {
            Some(id) => id.to_string(),
            None => format!(
                "{}@{}",
                self.who(),
                self.submitted_at.as_deref().unwrap_or("")
            ),
        }
    }
}

/// A requested reviewer: a user (`login`) or a team (`name`, `slug`).
#[derive(Debug, Clone, Deserialize)]
pub struct Requested {
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Requested {
    pub fn who(&self) -> Option<String> {
        [&self.login, &self.slug, &self.name]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .cloned()
    }
}

/// One entry of `statusCheckRollup`: a check run (`name`, `status`,
/// `conclusion`) or a commit status (`context`, `state`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    #[serde(rename = "__typename", default)]
    pub typename: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Passed,
    Failed,
}

impl Check {
    pub fn label(&self) -> String {
        [&self.name, &self.context]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "unnamed check".into())
    }

    pub fn outcome(&self) -> Outcome {
        let up = |s: &Option<String>| s.as_deref().unwrap_or("").to_ascii_uppercase();
        if self.typename == "StatusContext" || (self.status.is_none() && self.state.is_some()) {
            return match up(&self.state).as_str() {
                "SUCCESS" => Outcome::Passed,
                "FAILURE" | "ERROR" => Outcome::Failed,
                _ => Outcome::Pending,
            };
        }
        if up(&self.status) != "COMPLETED" {
            return Outcome::Pending;
        }
        match up(&self.conclusion).as_str() {
            "SUCCESS" | "NEUTRAL" | "SKIPPED" => Outcome::Passed,
            "" => Outcome::Pending,
            _ => Outcome::Failed,
        }
    }
}

/// One pull request of `gh pr list --json LIST_FIELDS`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub url: String,
    /// OPEN, CLOSED or MERGED.
    pub state: String,
    pub is_draft: bool,
    pub head_ref_name: String,
    pub head_ref_oid: String,
    pub base_ref_name: String,
    pub author: Option<Login>,
    /// MERGEABLE, CONFLICTING or UNKNOWN (GitHub still computing).
    pub mergeable: String,
    pub merge_state_status: String,
    /// APPROVED, CHANGES_REQUESTED, REVIEW_REQUIRED or empty.
    pub review_decision: Option<String>,
    pub latest_reviews: Option<Vec<Review>>,
    pub review_requests: Option<Vec<Requested>>,
    pub status_check_rollup: Option<Vec<Check>>,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
}

impl Pull {
    pub fn author(&self) -> &str {
        self.author
            .as_ref()
            .map(|a| a.login.as_str())
            .filter(|l| !l.is_empty())
            .unwrap_or("ghost")
    }
}

/// A pull request as `gh pr view --json VIEW_FIELDS` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Viewed {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub url: String,
    pub state: String,
    pub is_draft: bool,
    pub head_ref_name: String,
    pub base_ref_name: String,
    pub author: Option<Login>,
}

/// Check that every item of `list` is an object holding every field of
/// `fields`; `what` names the command in the error.
fn check_fields(what: &str, items: &[Value], fields: &[&str]) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(fail(
                DATAERR,
                format!("{what}: item {} is not a JSON object", i + 1),
            ));
        };
        let missing: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| !obj.contains_key(*f))
            .collect();
        if !missing.is_empty() {
            let which = match obj.get("number").and_then(Value::as_u64) {
                Some(n) => format!("pull request #{n}"),
                None => format!("item {}", i + 1),
            };
            return Err(fail(
                DATAERR,
                format!(
                    "{what}: {which} has no {} (a partial answer)",
                    missing.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Read the answer of `gh pr list --json LIST_FIELDS`.
pub fn parse_list(bytes: &[u8]) -> Result<Vec<Pull>> {
    const WHAT: &str = "gh pr list";
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| fail(DATAERR, format!("{WHAT}: the answer is not JSON ({e})")))?;
    let Value::Array(items) = v else {
        return Err(fail(
            DATAERR,
            format!("{WHAT}: the answer is not a JSON list"),
        ));
    };
    check_fields(WHAT, &items, LIST_FIELDS)?;
    let mut out: Vec<Pull> = Vec::with_capacity(items.len());
    for item in items {
        let n = item.get("number").and_then(Value::as_u64).unwrap_or(0);
        let p: Pull = serde_json::from_value(item)
            .map_err(|e| fail(DATAERR, format!("{WHAT}: pull request #{n}: {e}")))?;
        check_pull(&p)?;
        if out.iter().any(|o| o.number == p.number) {
            return Err(fail(
                DATAERR,
                format!("{WHAT}: pull request #{} is listed twice", p.number),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

fn check_pull(p: &Pull) -> Result<()> {
    let bad = |why: String| Err(fail(DATAERR, format!("gh pr list: {why}")));
    if p.number == 0 {
        return bad("a pull request numbered 0".into());
    }
    if !matches!(p.state.as_str(), "OPEN" | "CLOSED" | "MERGED") {
        return bad(format!(
            "pull request #{} has an unknown state {:?}",
            p.number, p.state
        ));
    }
    if p.head_ref_name.is_empty() {
        return bad(format!("pull request #{} has no head branch", p.number));
    }
    Ok(())
}

/// Read the answer of `gh pr view N --json VIEW_FIELDS`.
pub fn parse_view(bytes: &[u8]) -> Result<Viewed> {
    const WHAT: &str = "gh pr view";
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| fail(DATAERR, format!("{WHAT}: the answer is not JSON ({e})")))?;
    check_fields(WHAT, std::slice::from_ref(&v), VIEW_FIELDS)?;
    serde_json::from_value(v).map_err(|e| fail(DATAERR, format!("{WHAT}: {e}")))
}

/// How to run gh for one repository.
#[derive(Debug, Clone)]
pub struct Gh {
    pub program: PathBuf,
    /// `[HOST/]OWNER/NAME`, passed as `--repo`.
    pub repo: String,
    /// Give up on an answer after this long (exit 75).
    pub timeout: Duration,
}

impl Gh {
    /// gh from PATH; exit 69 when there is none.
    pub fn find(repo: &str, timeout: Duration) -> Result<Gh> {
        let program = crate::spawn::find_program("gh").ok_or_else(|| {
            fail(
                UNAVAILABLE,
                "gh, GitHub's command-line tool, is not installed or not in PATH (https://cli.github.com)",
            )
        })?;
        Ok(Gh {
            program,
            repo: repo.to_string(),
            timeout,
        })
    }

    /// Run `gh ARGS --repo REPO` and return its standard output. Exit 69
    /// when gh has no login or fails, 75 when it does not answer in time.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let shown = format!(
            "gh {}",
            args.iter().take(2).copied().collect::<Vec<_>>().join(" ")
        );
        let mut child = Command::new(&self.program)
            .args(args)
            .arg("--repo")
            .arg(&self.repo)
            // gh must not stop to ask anything: nobody answers.
            .env("GH_PROMPT_DISABLED", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(
                    UNAVAILABLE,
                    format!("cannot run {}: {e}", self.program.display()),
                )
            })?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            out.read_to_end(&mut b).map(|_| b)
        });
        let err_reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        // A thread waits (no polling); the pid stays gh's until it is
        // reaped there, so killing it by pid on a timeout is safe.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let r = child.wait();
            let _ = tx.send(());
            r
        });
        if rx.recv_timeout(self.timeout).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.join();
            return Err(fail(
                TEMPFAIL,
                format!(
                    "{shown} did not answer within {}",
                    crate::infra::time::format_duration(self.timeout)
                ),
            ));
        };
        let status = waiter
            .join()
            .map_err(|_| anyhow::anyhow!("waiting for {shown}"))?
            .context("cannot wait for gh")?;
        let stdout = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reading {shown}"))?
            .with_context(|| format!("cannot read the answer of {shown}"))?;
        let stderr = err_reader.join().unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        if status.code() == Some(GH_NO_AUTH) {
            return Err(fail(
                UNAVAILABLE,
                "gh is not logged in to GitHub: run gh auth login",
            ));
        }
        let said = String::from_utf8_lossy(&stderr);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let how = match status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed".to_string(),
        };
        Err(fail(
            UNAVAILABLE,
            format!(
                "{shown} failed ({how}){}{}",
                if said.is_empty() { "" } else { ": " },
                crate::names::printable(said.trim())
            ),
        ))
    }

    /// Open and recently closed pull requests: the newest `limit`, in one
    /// call.
    pub fn list(&self, limit: usize) -> Result<Vec<Pull>> {
        let fields = LIST_FIELDS.join(",");
        let limit = limit.to_string();
        let out = self.run(&[
            "pr", "list", "--state", "all", "--limit", &limit, "--json", &fields,
        ])?;
        parse_list(&out)
    }

    pub fn view(&self, number: u64) -> Result<Viewed> {
        let fields = VIEW_FIELDS.join(",");
        let n = number.to_string();
        let v = parse_view(&self.run(&["pr", "view", &n, "--json", &fields])?)?;
        if v.number != number {
            return Err(fail(
                DATAERR,
                format!("gh pr view {number} answered for #{}", v.number),
            ));
        }
        Ok(v)
    }

    pub fn diff(&self, number: u64) -> Result<String> {
        let n = number.to_string();
        let out = self.run(&["pr", "diff", &n, "--color", "never"])?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pull() -> Value {
        json!({
            "number": 12, "title": "Add the parser", "url": "https://github.com/a/b/pull/12",
            "state": "OPEN", "isDraft": false, "headRefName": "mt/york",
            "headRefOid": "abc", "baseRefName": "main", "author": {"login": "york-bot"},
            "mergeable": "MERGEABLE", "mergeStateStatus": "CLEAN", "reviewDecision": "",
            "latestReviews": [], "reviewRequests": [],
            "statusCheckRollup": [
                {"__typename": "CheckRun", "name": "test", "status": "COMPLETED",
                 "conclusion": "FAILURE", "workflowName": "CI"},
                {"__typename": "StatusContext", "context": "ci/lint", "state": "PENDING"}
            ],
            "updatedAt": "2026-01-01T00:00:00Z", "closedAt": null, "mergedAt": null
        })
    }

    #[test]
    fn a_whole_answer_reads() {
        let l = parse_list(json!([pull()]).to_string().as_bytes()).unwrap();
        assert_eq!(l[0].number, 12);
        let checks = l[0].status_check_rollup.as_ref().unwrap();
        assert_eq!(checks[0].outcome(), Outcome::Failed);
        assert_eq!(checks[1].outcome(), Outcome::Pending);
        assert_eq!(checks[1].label(), "ci/lint");
    }

    #[test]
    fn partial_or_malformed_answers_are_refused() {
        let mut p = pull();
        p.as_object_mut().unwrap().remove("statusCheckRollup");
        let e = parse_list(json!([p]).to_string().as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("#12 has no statusCheckRollup"),
            "{e}"
        );
        assert_eq!(crate::exit::code_of(&e), DATAERR);
        for bad in ["", "[", "{}", "[1]", r#"[{"number": 12}]"#] {
            let e = parse_list(bad.as_bytes()).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), DATAERR, "{bad}: {e}");
        }
        let mut p = pull();
        p["state"] = json!("WEIRD");
        assert!(parse_list(json!([p]).to_string().as_bytes()).is_err());
        let mut p = pull();
        p["isDraft"] = json!("no");
        assert!(parse_list(json!([p]).to_string().as_bytes()).is_err());
        assert!(parse_list(json!([pull(), pull()]).to_string().as_bytes()).is_err());
    }
}
