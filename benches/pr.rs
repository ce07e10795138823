//! Benchmark of one `mt-pr sync` pass over 50 open pull requests, as the
//! watcher runs it: one process, against a stand-in gh that answers from a
//! file. The stand-in alone is measured in the same run, with the same
//! arguments, and its time taken off: what is left is mt-pr's own. Two
//! passes are measured: the common one, when nothing changed, and one where
//! every pull request changed (50 records, the state and the plan written).
//! The number of gh calls is counted for 5 and for 50 pull requests.
//!
//! Run with `cargo bench --bench pr` (release profile). MT_BENCH_DIR picks
//! the directory (default: on the build disk, so syncs cost what they cost).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PR: &str = env!("CARGO_BIN_EXE_mt-pr");
const POST: &str = env!("CARGO_BIN_EXE_mt-post");
const RUNS: usize = 40;
const PULLS: u64 = 50;

#[path = "support/timing.rs"]
mod timing;

use timing::Stats;

/// Time `RUNS` runs of a command; `reset` runs untimed before each one.
fn bench(make: impl FnMut() -> Command, reset: impl FnMut(usize)) -> Stats {
    timing::bench(RUNS, make, reset)
}

/// `n` open pull requests as `gh pr list --json` gives them; `round`
/// changes every one's head commit and flips its CI between failed and
/// passed, so each round is a change for each.
fn answer(n: u64, round: usize) -> String {
    let failed = round % 2 == 1;
    let pulls: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            serde_json::json!({
                "number": i, "title": format!("Change number {i}"),
                "url": format!("https://github.com/acme/bench/pull/{i}"),
                "state": "OPEN", "isDraft": false, "headRefName": format!("mt/w{i}"),
                "headRefOid": format!("{round:08}{i:032}"), "baseRefName": "main",
                "author": {"login": "mt-bot"}, "mergeable": "MERGEABLE",
                "mergeStateStatus": "CLEAN", "reviewDecision": "REVIEW_REQUIRED",
                "latestReviews": [{"id": format!("PRR_{i}"), "author": {"login": "octocat"},
                    "body": "looks fine", "state": "COMMENTED",
                    "submittedAt": "2030-01-01T00:00:00Z"}],
                "reviewRequests": [{"__typename": "User", "login": "octocat"}],
                "statusCheckRollup": [
                    {"__typename": "CheckRun", "name": "test", "workflowName": "CI",
                     "status": "COMPLETED", "conclusion": if failed { "FAILURE" } else { "SUCCESS" },
                     "startedAt": "2030-01-01T00:00:00Z", "completedAt": "2030-01-01T00:05:00Z",
                     "detailsUrl": "https://github.com/acme/bench/actions/runs/1/job/2"},
                    {"__typename": "CheckRun", "name": "lint", "workflowName": "CI",
                     "status": "COMPLETED", "conclusion": "SUCCESS",
                     "startedAt": "2030-01-01T00:00:00Z", "completedAt": "2030-01-01T00:01:00Z",
                     "detailsUrl": "https://github.com/acme/bench/actions/runs/1/job/3"},
                    {"__typename": "StatusContext", "context": "ci/docs", "state": "SUCCESS",
                     "targetUrl": "https://ci.example.com/1", "startedAt": "2030-01-01T00:00:00Z"}
                ],
                "updatedAt": format!("2030-01-01T00:{:02}:00Z", round % 60),
                "closedAt": null, "mergedAt": null
            })
        })
        .collect();
    serde_json::to_string(&pulls).unwrap()
}

struct Place {
    root: PathBuf,
    repo: PathBuf,
    bin: PathBuf,
}

impl Place {
    fn new(base: &Path, name: &str) -> Place {
        let root = base.join(name);
        let repo = root.join("repo");
        let bin = root.join("bin");
        fs::create_dir_all(&repo).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let r = git2::Repository::init(&repo).unwrap();
        r.remote("origin", "https://github.com/acme/bench.git")
            .unwrap();
        // The cheapest stand-in a shell gives: count the call, print the file.
        let gh = bin.join("gh");
        fs::write(
            &gh,
            format!(
                "#!/bin/sh\nprintf x >> '{0}/calls'\nexec cat '{0}/list.json'\n",
                root.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&gh, fs::Permissions::from_mode(0o755)).unwrap();
        Place { root, repo, bin }
    }

    fn answer(&self, body: &str) {
        fs::write(self.root.join("list.json"), body).unwrap();
    }

    fn calls(&self) -> usize {
        fs::read(self.root.join("calls"))
            .map(|b| b.len())
            .unwrap_or(0)
    }

    fn sync(&self) -> Command {
        let mut c = Command::new(PR);
        c.arg("sync")
            .current_dir(&self.repo)
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("MT_DIR", self.root.join("state"))
            .env_remove("GH_REPO")
            .env_remove("MT_CHANNEL");
        c
    }

    /// The stand-in alone, called as mt-pr calls it.
    fn gh_alone(&self) -> Command {
        let mut c = Command::new(self.bin.join("gh"));
        c.args(["pr", "list", "--state", "all", "--limit", "200", "--json"])
            .arg(mt::pr::gh::LIST_FIELDS.join(","))
            .args(["--repo", "acme/bench"]);
        c
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let base = std::env::var_os("MT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let tmp = tempfile::tempdir_in(&base).unwrap();
    println!("benchmark directory: {}", base.display());

    // gh calls per pass: the same for 5 and for 50 pull requests.
    let mut calls = Vec::new();
    for n in [5, PULLS] {
        let p = Place::new(tmp.path(), &format!("calls{n}"));
        for round in 0..3 {
            p.answer(&answer(n, round));
            assert!(p.sync().stdout(Stdio::null()).status().unwrap().success());
        }
        calls.push((n, p.calls() as f64 / 3.0));
    }
    for (n, c) in &calls {
        println!("gh calls per pass, {n} pull requests: {c}");
    }
    assert_eq!(calls[0].1, calls[1].1, "gh calls grow with pull requests");

    let p = Place::new(tmp.path(), "bench");
    let still = answer(PULLS, 0);
    p.answer(&still);
    assert!(p.sync().stdout(Stdio::null()).status().unwrap().success());
    let gh = bench(|| p.gh_alone(), |_| {});
    let steady = bench(|| p.sync(), |_| {});
    let mut rows: Vec<(String, Stats, Option<Stats>)> = vec![
        ("baseline: the stand-in gh alone".into(), gh, None),
        (
            format!("mt-pr sync, {PULLS} pull requests, nothing changed"),
            steady,
            Some(gh),
        ),
    ];
    let answers: Vec<String> = (1..=RUNS + 1).map(|r| answer(PULLS, r)).collect();
    for fsync in ["0", "1"] {
        let changed = bench(
            || {
                let mut c = p.sync();
                c.env("MT_FSYNC", fsync);
                c
            },
            |i| p.answer(&answers[i]),
        );
        let tag = if fsync == "1" { "synced" } else { "MT_FSYNC=0" };
        rows.push((
            format!("mt-pr sync, {PULLS} pull requests, each changed: {PULLS} records ({tag})"),
            changed,
            Some(gh),
        ));
        // The same records written by mt-post, as the simplest way to post them.
        let lines: String = (0..PULLS)
            .map(|i| format!("#{i} CI failed (w{i}, task 1): test\n"))
            .collect();
        let input = p.root.join("lines");
        fs::write(&input, lines).unwrap();
        let post = bench(
            || {
                let mut c = Command::new(POST);
                c.args(["--lines", "--from", "mt-pr", "--type", "status"])
                    .env("MT_DIR", p.root.join("state"))
                    .env("MT_FSYNC", fsync)
                    .stdin(fs::File::open(&input).unwrap());
                c
            },
            |_| {},
        );
        rows.push((
            format!("baseline: mt-post --lines of {PULLS} records ({tag})"),
            post,
            None,
        ));
    }
    println!(
        "{:<72} {:>10} {:>10} {:>14}",
        "median of runs", "wall", "cpu", "without gh"
    );
    for (name, s, less) in &rows {
        let own = less
            .map(|g| ms(s.wall.saturating_sub(g.wall)))
            .unwrap_or_default();
        println!("{name:<72} {:>10} {:>10} {own:>14}", ms(s.wall), ms(s.cpu));
    }
    let own = |s: &Stats| s.wall.saturating_sub(gh.wall);
    let changed = rows[2].1;
    let posted = rows[3].1;
    println!(
        "a changed pass without gh: {} (target under 20 ms); against mt-post --lines of its records: {:.2}x",
        ms(own(&changed)),
        own(&changed).as_secs_f64() / posted.wall.as_secs_f64()
    );
    println!(
        "a quiet pass without gh: {} (target under 20 ms)",
        ms(own(&steady))
    );
}
