//! mt-pr against a stand-in `gh` (first on PATH, answering in the shapes
//! `gh pr list --json` and `gh pr view --json` document, from files each
//! test rewrites between passes) and a real bare remote, reached through
//! a github.com URL that git rewrites to it, that coworkers push to.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const REPO: &str = "acme/widgets";
const URL: &str = "https://github.com/acme/widgets.git";

/// A repository with a GitHub remote, a bare repository standing in for
/// it, and a stand-in gh.
struct Hub {
    e: Env,
    /// The stand-in's answers and its record of calls.
    gh: PathBuf,
    bare: PathBuf,
}

impl std::ops::Deref for Hub {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.e
    }
}

/// The stand-in gh: records each call, sleeps and fails on request,
/// answers `pr list`, `pr view` and `pr diff` from files.
fn stand_in(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let d = dir.display();
    let script = format!(
        r#"#!/bin/sh
d='{d}'
printf '%s\n' "$*" >> "$d/calls"
if [ -f "$d/sleep" ]; then sleep "$(cat "$d/sleep")"; fi
if [ -f "$d/exit" ]; then cat "$d/stderr" >&2; exit "$(cat "$d/exit")"; fi
case "$1 $2" in
"pr list") exec cat "$d/list.json" ;;
"pr view") exec cat "$d/view.json" ;;
"pr diff") exec cat "$d/diff" ;;
"pr review") exit 0 ;;
*) echo "stand-in gh: unknown command: $*" >&2; exit 1 ;;
esac
"#
    );
    let gh = bin.join("gh");
    fs::write(&gh, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&gh, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

impl Hub {
    fn new() -> Hub {
        let e = Env::with_repo();
        let bare = e.root.join("remote.git");
        e.git(
            &e.root,
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        e.git(&e.repo, &["remote", "add", "origin", URL]);
        let rewrite = format!("url.{}.insteadOf", bare.display());
        e.git(&e.repo, &["config", &rewrite, URL]);
        e.git(&e.repo, &["push", "-q", "origin", "main"]);
        let gh = e.root.join("gh");
        fs::create_dir_all(&gh).unwrap();
        stand_in(&gh);
        fs::create_dir_all(e.claude()).unwrap();
        let h = Hub { e, gh, bare };
        h.answer(&[]);
        h
    }

    fn path(&self) -> String {
        format!(
            "{}:{}:/usr/bin:/bin",
            self.gh.join("bin").display(),
            bin_dir().display()
        )
    }

    /// A tool with the stand-in gh first on PATH.
    fn tool(&self, name: &str) -> Command {
        let mut c = self.e.cmd(name);
        c.env("PATH", self.path()).env_remove("GH_REPO");
        for (k, v) in GIT_ID {
            c.env(k, v);
        }
        c
    }

    fn pr(&self, args: &[&str]) -> Output {
        self.tool("mt-pr").args(args).output().unwrap()
    }

    /// One pass that must succeed; its standard output.
    fn sync(&self) -> String {
        let o = self.pr(&["sync"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        text(&o.stdout)
    }

    /// What `gh pr list` answers from now on (replaced whole, by rename).
    fn answer(&self, pulls: &[Value]) {
        self.answer_raw(&serde_json::to_string(pulls).unwrap());
    }

    fn answer_raw(&self, body: &str) {
        let tmp = self.gh.join("list.tmp");
        fs::write(&tmp, body).unwrap();
        fs::rename(&tmp, self.gh.join("list.json")).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.gh.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// mt-pr's records on #general, as (number, change).
    fn changes(&self) -> Vec<(u64, String)> {
        self.records()
            .iter()
            .map(|r| {
                (
                    r["meta"]["pr"]["number"].as_u64().unwrap(),
                    r["meta"]["pr"]["change"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn records(&self) -> Vec<Value> {
        self.channel("general")
            .into_iter()
            .filter(|r| r["from"] == "mt-pr")
            .collect()
    }

    /// Start a coworker in its own worktree (branch mt/NAME) and push a
    /// commit of its branch to the remote; returns the commit.
    fn coworker(&self, name: &str, run: &str) -> String {
        let o = self
            .tool("mt-spawn")
            .env("MT_FAKE_RUN", run)
            .args([name, "--worktree", "--detach", "--prompt", "go"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        self.wait_idle(name);
        let wt = self.worktree(name);
        fs::write(wt.join(format!("{name}.txt")), "work\n").unwrap();
        self.git(&wt, &["add", "."]);
        self.git(&wt, &["commit", "-qm", "work"]);
        self.git(&wt, &["push", "-q", "origin", &format!("mt/{name}")]);
        self.head(name)
    }

    fn worktree(&self, name: &str) -> PathBuf {
        PathBuf::from(self.meta(name)["worktree"].as_str().unwrap())
    }

    /// The commit of branch mt/NAME on the remote.
    fn head(&self, name: &str) -> String {
        self.git(&self.bare, &["rev-parse", &format!("refs/heads/mt/{name}")])
            .trim()
            .to_string()
    }

    fn state_files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for p in walk(&self.state) {
            if p.is_file() && !p.ends_with("LOCK") {
                out.insert(p.display().to_string(), fs::read(&p).unwrap());
            }
        }
        out
    }
}

const GIT_ID: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "t"),
    ("GIT_AUTHOR_EMAIL", "t@example.com"),
    ("GIT_COMMITTER_NAME", "t"),
    ("GIT_COMMITTER_EMAIL", "t@example.com"),
];

/// An open pull request in the shape of `gh pr list --json FIELDS`: no
/// checks, no reviews, mergeable.
fn pull(n: u64, branch: &str, sha: &str) -> Value {
    json!({
        "number": n,
        "title": format!("Change {n}"),
        "url": format!("https://github.com/{REPO}/pull/{n}"),
        "state": "OPEN",
        "isDraft": false,
        "headRefName": branch,
        "headRefOid": sha,
        "baseRefName": "main",
        "author": {"login": "mt-bot"},
        "mergeable": "MERGEABLE",
        "mergeStateStatus": "CLEAN",
        "reviewDecision": "",
        "latestReviews": [],
        "reviewRequests": [],
        "statusCheckRollup": [],
        "updatedAt": "2030-01-01T00:00:00Z",
        "closedAt": null,
        "mergedAt": null
    })
}

/// A check run as gh exports it: status QUEUED, IN_PROGRESS or COMPLETED,
/// conclusion empty until completed.
fn run(name: &str, status: &str, conclusion: &str) -> Value {
    json!({
        "__typename": "CheckRun", "name": name, "workflowName": "CI",
        "status": status, "conclusion": conclusion,
        "startedAt": "2030-01-01T00:00:00Z", "completedAt": "2030-01-01T00:01:00Z",
        "detailsUrl": format!("https://github.com/{REPO}/actions/runs/1/job/{name}")
    })
}

/// A commit status as gh exports it.
fn status(context: &str, state: &str) -> Value {
    json!({"__typename": "StatusContext", "context": context, "state": state,
           "targetUrl": "https://ci.example.com/1", "startedAt": "2030-01-01T00:00:00Z"})
}

fn review(id: &str, who: &str, state: &str, body: &str) -> Value {
    json!({"id": id, "author": {"login": who}, "authorAssociation": "MEMBER",
           "body": body, "submittedAt": "2030-01-01T00:02:00Z",
           "includesCreatedEdit": false, "reactionGroups": [], "state": state,
           "commit": {"oid": "x"}})
}

fn with(mut p: Value, key: &str, v: Value) -> Value {
    p[key] = v;
    p
}

fn merged(p: Value) -> Value {
    let p = with(p, "state", json!("MERGED"));
    let p = with(p, "mergedAt", json!("2030-01-02T00:00:00Z"));
    with(p, "closedAt", json!("2030-01-02T00:00:00Z"))
}

fn closed(p: Value) -> Value {
    let p = with(p, "state", json!("CLOSED"));
    with(p, "closedAt", json!("2030-01-02T00:00:00Z"))
}

fn count(v: &[(u64, String)], n: u64, change: &str) -> usize {
    v.iter().filter(|(m, c)| *m == n && c == change).count()
}

/// Nudges ever put in an agent's inbox that contain `needle`.
fn nudges(e: &Env, name: &str, needle: &str) -> usize {
    e.inbox(name).iter().filter(|t| t.contains(needle)).count()
}

#[test]
fn each_change_is_posted_once_and_the_owner_nudged_with_what_to_do() {
    let h = Hub::new();
    // york runs, and pushes a fix when told that CI failed.
    let fix = "case \"$MT_FAKE_TEXT\" in *'CI failed'*) echo fix >> york.txt && git commit -qam fix && git push -q origin HEAD ;; esac";
    let y1 = h.coworker("york", fix);
    let p1 = h.coworker("park", "");
    h.ok("mt-stop", &["park"]);

    let york = pull(1, "mt/york", &y1);
    let park = pull(2, "mt/park", &p1);
    let other = pull(3, "feature-x", "f00");
    h.answer(&[
        with(
            york.clone(),
            "statusCheckRollup",
            json!([run("test", "IN_PROGRESS", "")]),
        ),
        park.clone(),
        other.clone(),
    ]);
    let out = h.sync();
    assert_eq!(
        h.changes(),
        [
            (1, "opened".into()),
            (2, "opened".into()),
            (3, "opened".into())
        ]
    );
    assert!(
        out.contains("#1 opened (york) by mt-bot: Change 1"),
        "{out}"
    );
    assert_eq!(h.sync(), "", "a second pass posts nothing");
    assert_eq!(h.calls().len(), 2, "one gh call per pass");
    assert!(h.calls()[0].starts_with("pr list --state all --limit 200 --json number,title,url,state,isDraft,headRefName,headRefOid,baseRefName,author,mergeable,mergeStateStatus,reviewDecision,latestReviews,reviewRequests,statusCheckRollup,updatedAt,closedAt,mergedAt --repo acme/widgets"), "{:?}", h.calls());

    // CI fails for york, park's no longer merges, a review is asked for.
    h.answer(&[
        with(
            york.clone(),
            "statusCheckRollup",
            json!([run("test", "COMPLETED", "FAILURE"), run("lint", "COMPLETED", "SUCCESS"), status("ci/docs", "ERROR")]),
        ),
        with(park.clone(), "mergeable", json!("CONFLICTING")),
        with(other.clone(), "reviewRequests", json!([{"__typename": "User", "login": "octocat"}, {"__typename": "Team", "name": "Core", "slug": "core"}])),
    ]);
    let out = h.sync();
    assert!(out.contains("#1 CI failed (york): ci/docs, test"), "{out}");
    assert!(out.contains("york: nudged"), "{out}");
    assert!(out.contains("park: resumed"), "{out}");
    for _ in 0..2 {
        assert_eq!(h.sync(), "");
    }
    let c = h.changes();
    assert_eq!(count(&c, 1, "ci-failed"), 1);
    assert_eq!(count(&c, 2, "conflict"), 1);
    assert_eq!(count(&c, 3, "review-requested"), 2);
    // The right coworker, once, told what to do; the stopped one resumed.
    assert_eq!(
        nudges(
            &h,
            "york",
            "CI failed on your pull request #1 (checks: ci/docs, test). Look at `gh pr checks 1`, fix it on your branch and push."
        ),
        1
    );
    assert_eq!(h.inbox("york").len(), 1);
    assert_eq!(nudges(&h, "park", "no longer merges into main"), 1);
    assert_eq!(h.inbox("park").len(), 1);
    assert!(h.running("park"));
    wait_for("park to read its nudge", || {
        h.inputs("park")
            .iter()
            .any(|t| t.contains("Merge main into your branch"))
    });
    // york pushed a fix to the real remote.
    wait_for("york's fix on the remote", || h.head("york") != y1);
    let y2 = h.head("york");

    // The fix passes CI; a change request with a mention in it; an approval.
    h.answer(&[
        with(
            with(york.clone(), "headRefOid", json!(y2)),
            "statusCheckRollup",
            json!([
                run("test", "COMPLETED", "SUCCESS"),
                run("lint", "COMPLETED", "SKIPPED"),
                status("ci/docs", "SUCCESS")
            ]),
        ),
        with(
            with(park.clone(), "mergeable", json!("UNKNOWN")),
            "latestReviews",
            json!([review(
                "PRR_1",
                "octocat",
                "CHANGES_REQUESTED",
                "@york and @park:\nplease rename `x`"
            )]),
        ),
        with(
            other.clone(),
            "latestReviews",
            json!([
                review("PRR_2", "octocat", "APPROVED", "ok"),
                review("PRR_3", "hubot", "COMMENTED", "hm")
            ]),
        ),
    ]);
    let out = h.sync();
    assert!(out.contains("#1 CI passed (york)"), "{out}");
    assert!(
        out.contains(
            "#2 changes requested by octocat (park): \"york and park: please rename `x`\""
        ),
        "{out}"
    );
    assert!(
        out.contains("#3 approved by octocat (branch feature-x)"),
        "{out}"
    );
    assert_eq!(h.sync(), "");
    assert_eq!(
        nudges(
            &h,
            "park",
            "octocat requested changes on your pull request #2"
        ),
        1
    );
    // GitHub knows again that it conflicts: not news.
    let mut again = h.calls().len();
    let list: Value = serde_json::from_slice(&fs::read(h.gh.join("list.json")).unwrap()).unwrap();
    let mut list = list.as_array().unwrap().clone();
    list[1]["mergeable"] = json!("CONFLICTING");
    h.answer(&list);
    assert_eq!(h.sync(), "");
    again += 1;
    assert_eq!(h.calls().len(), again);
    assert_eq!(h.inbox("york").len(), 1, "CI passing asks nothing of york");

    // Merged and closed; then nothing more.
    h.answer(&[
        merged(york.clone()),
        closed(park.clone()),
        merged(other.clone()),
    ]);
    h.sync();
    assert_eq!(h.sync(), "");
    let c = h.changes();
    let want = [
        (1, "opened"),
        (2, "opened"),
        (3, "opened"),
        (1, "ci-failed"),
        (2, "conflict"),
        (3, "review-requested"),
        (3, "review-requested"),
        (1, "ci-passed"),
        (2, "changes-requested"),
        (3, "approved"),
        (1, "merged"),
        (2, "closed"),
        (3, "merged"),
    ];
    let want: Vec<(u64, String)> = want.iter().map(|(n, c)| (*n, c.to_string())).collect();
    assert_eq!(c, want);
    // No record of mt-pr mentions anyone, so mt-route never acts on one.
    for r in h.records() {
        assert_eq!(r["mentions"], json!([]), "{r}");
        assert_eq!(r["type"], "status");
    }
    let r = &h.records()[3];
    assert_eq!(r["meta"]["pr"]["agent"], "york");
    assert_eq!(r["meta"]["pr"]["head"], y1);
    assert_eq!(r["meta"]["pr"]["checks"], json!(["ci/docs", "test"]));
    assert_eq!(
        r["meta"]["pr"]["url"],
        "https://github.com/acme/widgets/pull/1"
    );
    assert_eq!(h.inbox("york").len(), 1);
    assert_eq!(h.inbox("park").len(), 2);
    assert_eq!(h.calls().len(), 10, "one gh call per pass: {:?}", h.calls());
}

#[test]
fn a_pull_request_is_matched_to_its_coworker_and_task() {
    let h = Hub::new();
    let o = h
        .tool("mt-sling")
        .args(["--name", "york", "Write the parser"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    h.wait_idle("york");
    h.answer(&[pull(4, "mt/york", "abc")]);
    let out = h.sync();
    assert!(out.contains("#4 opened (york, task 1)"), "{out}");
    let r = &h.records()[0];
    assert_eq!(r["meta"]["pr"]["task"], "1");
    let state = read_json(&h.state.join("pr/state.json"));
    assert_eq!(state["prs"]["4"]["agent"], "york");
    assert_eq!(state["prs"]["4"]["task"], "1");
    assert_eq!(state["prs"]["4"]["task_list"], json!(h.default_list()));
    assert_eq!(state["repo"], REPO);
    // A coworker may open and follow its pull request, not review one.
    let allow = h.meta("york")["permissions"]["allow"].clone();
    assert!(
        allow
            .as_array()
            .unwrap()
            .contains(&json!("Bash(gh pr create:*)")),
        "{allow}"
    );
    assert!(
        !allow
            .as_array()
            .unwrap()
            .contains(&json!("Bash(gh pr review:*)")),
        "{allow}"
    );
}

#[test]
fn what_closed_before_mt_pr_followed_the_repository_is_history() {
    let h = Hub::new();
    let old = with(
        merged(pull(1, "mt/york", "a")),
        "mergedAt",
        json!("2001-01-01T00:00:00Z"),
    );
    let old = with(old, "closedAt", json!("2001-01-01T00:00:00Z"));
    h.answer(&[old.clone(), closed(pull(2, "b", "b")), pull(3, "c", "c")]);
    h.sync();
    assert_eq!(h.changes(), [(3, "opened".to_string())]);
    // Seen later for the first time: closed since, news; closed before, not.
    let older = with(
        closed(pull(5, "e", "e")),
        "closedAt",
        json!("2001-01-01T00:00:00Z"),
    );
    h.answer(&[
        old,
        closed(pull(2, "b", "b")),
        pull(3, "c", "c"),
        merged(pull(4, "d", "d")),
        older,
    ]);
    h.sync();
    assert_eq!(
        h.changes(),
        [(3, "opened".to_string()), (4, "merged".to_string())]
    );
}

/// Twelve pull requests through four steps; the changes each step makes.
fn steps() -> Vec<(Vec<Value>, Vec<&'static str>)> {
    let n = 12;
    let base: Vec<Value> = (1..=n)
        .map(|i| pull(i, &format!("mt/w{i}"), &format!("a{i}")))
        .collect();
    let each = |f: &dyn Fn(Value) -> Value| base.iter().cloned().map(f).collect::<Vec<_>>();
    vec![
        (
            each(&|p| with(p, "statusCheckRollup", json!([run("test", "QUEUED", "")]))),
            vec!["opened"],
        ),
        (
            each(&|p| {
                with(
                    p,
                    "statusCheckRollup",
                    json!([run("test", "COMPLETED", "FAILURE")]),
                )
            }),
            vec!["ci-failed"],
        ),
        (
            each(&|p| {
                let sha = format!("b{}", p["number"]);
                let p = with(p, "headRefOid", json!(sha));
                let p = with(p, "reviewRequests", json!([{"login": "octocat"}]));
                with(
                    p,
                    "statusCheckRollup",
                    json!([run("test", "COMPLETED", "SUCCESS")]),
                )
            }),
            vec!["ci-passed", "review-requested"],
        ),
        (each(&merged), vec!["merged"]),
    ]
}

fn assert_exactly(h: &Hub, steps_done: usize) {
    let c = h.changes();
    for (pulls, kinds) in steps().iter().take(steps_done) {
        for p in pulls {
            let n = p["number"].as_u64().unwrap();
            for k in kinds {
                assert_eq!(count(&c, n, k), 1, "#{n} {k}: {c:?}");
            }
        }
    }
    let want: usize = steps()
        .iter()
        .take(steps_done)
        .map(|(p, k)| p.len() * k.len())
        .sum();
    assert_eq!(c.len(), want, "{c:?}");
}

#[test]
fn concurrent_passes_post_each_change_once() {
    let h = Hub::new();
    fs::write(h.gh.join("sleep"), "0.05").unwrap();
    for (i, (pulls, _)) in steps().into_iter().enumerate() {
        h.answer(&pulls);
        let kids: Vec<_> = (0..4)
            .map(|_| {
                h.tool("mt-pr")
                    .arg("sync")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut k in kids {
            assert!(k.wait().unwrap().success());
        }
        assert_exactly(&h, i + 1);
    }
}

#[test]
fn passes_killed_at_random_points_post_each_change_once() {
    let h = Hub::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill delays: seed {seed}");
    let mut rng = Rng(seed);
    let kills = if long() { 40 } else { 12 };
    let mut finished = 0;
    for (i, (pulls, _)) in steps().into_iter().enumerate() {
        h.answer(&pulls);
        for _ in 0..kills {
            // Sometimes while gh answers, sometimes while posting or saving
            // (synced, which widens those windows).
            let pause = rng.below(30) as f64 / 1000.0;
            fs::write(h.gh.join("sleep"), format!("{pause:.3}")).unwrap();
            let k = h
                .tool("mt-pr")
                .arg("sync")
                .env("MT_FSYNC", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(rng.below(70_000)));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(k.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let o = k.wait_with_output().unwrap();
            finished += text(&o.stderr)
                .matches("finished a pass that was interrupted")
                .count();
        }
        let _ = fs::remove_file(h.gh.join("sleep"));
        let o = h.pr(&["sync"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        finished += text(&o.stderr)
            .matches("finished a pass that was interrupted")
            .count();
        assert!(!h.state.join("pr/intent.json").exists());
        assert_exactly(&h, i + 1);
    }
    eprintln!("passes that finished an interrupted one: {finished}");
}

#[test]
fn a_pass_killed_at_each_point_is_finished_by_the_next_exactly_once() {
    for point in ["intent", "posting", "posted", "nudged", "saved"] {
        let h = Hub::new();
        let y = h.coworker("york", "");
        let york = pull(1, "mt/york", &y);
        let other = pull(2, "feature-x", "f00");
        h.answer(&[york.clone(), other.clone()]);
        h.sync();
        let before = h.state_files();
        h.answer(&[
            with(
                york,
                "statusCheckRollup",
                json!([run("test", "COMPLETED", "FAILURE")]),
            ),
            with(other, "mergeable", json!("CONFLICTING")),
        ]);
        let o = h
            .tool("mt-pr")
            .arg("sync")
            .env("MT_PR_CRASH", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}: {}", text(&o.stderr));
        assert!(h.state.join("pr/intent.json").exists(), "{point}");
        let saved = fs::read(h.state.join("pr/state.json")).unwrap();
        let key = h.state.join("pr/state.json").display().to_string();
        if point == "saved" {
            assert_ne!(saved, before[&key], "{point}");
        } else {
            assert_eq!(saved, before[&key], "{point}: state saved too early");
        }
        let o = h.pr(&["sync"]);
        assert_eq!(o.status.code(), Some(0), "{point}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("finished a pass that was interrupted"),
            "{point}: {}",
            text(&o.stderr)
        );
        assert_eq!(h.sync(), "", "{point}");
        let c = h.changes();
        assert_eq!(c.len(), 4, "{point}: {c:?}");
        assert_eq!(count(&c, 1, "ci-failed"), 1, "{point}");
        assert_eq!(count(&c, 2, "conflict"), 1, "{point}");
        assert_eq!(
            nudges(&h, "york", "CI failed on your pull request #1"),
            1,
            "{point}"
        );
        assert!(!h.state.join("pr/intent.json").exists(), "{point}");
    }
}

#[test]
fn malformed_or_partial_answers_are_refused_and_change_nothing() {
    let h = Hub::new();
    h.answer(&[pull(1, "mt/york", "a1"), pull(2, "b", "b2")]);
    h.sync();
    let before = h.state_files();
    let mut partial = pull(3, "c", "c3");
    partial.as_object_mut().unwrap().remove("statusCheckRollup");
    let mut no_number = pull(4, "d", "d4");
    no_number.as_object_mut().unwrap().remove("number");
    let bad = [
        ("not JSON".to_string(), "the answer is not JSON"),
        ("[{\"number\": 1,".to_string(), "the answer is not JSON"),
        ("{\"number\": 1}".to_string(), "not a JSON list"),
        (
            json!([pull(1, "mt/york", "a1"), partial]).to_string(),
            "pull request #3 has no statusCheckRollup (a partial answer)",
        ),
        (json!([no_number]).to_string(), "item 1 has no number"),
        (
            json!([with(pull(1, "x", "y"), "isDraft", json!("no"))]).to_string(),
            "pull request #1",
        ),
        (
            json!([with(pull(1, "x", "y"), "state", json!("GONE"))]).to_string(),
            "unknown state",
        ),
        (
            json!([with(
                pull(1, "x", "y"),
                "statusCheckRollup",
                json!([{"name": 3}])
            )])
            .to_string(),
            "pull request #1",
        ),
        (
            json!([pull(1, "x", "y"), pull(1, "x", "y")]).to_string(),
            "listed twice",
        ),
        (json!([1]).to_string(), "item 1 is not a JSON object"),
    ];
    for (body, says) in bad {
        h.answer_raw(&body);
        let o = h.pr(&["sync"]);
        assert_eq!(o.status.code(), Some(65), "{body}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("mt-pr: gh pr list: "), "{err}");
        assert!(err.contains(says), "{body}: {err}");
        assert_eq!(h.state_files(), before, "{body}: state changed");
        assert!(o.stdout.is_empty());
    }
    assert_eq!(h.changes().len(), 2);
}

#[test]
fn without_gh_or_its_login_one_line_and_exit_69() {
    let h = Hub::new();
    // mt-pr runs nothing but gh: a PATH of mt's tools alone will do.
    let o = h
        .tool("mt-pr")
        .arg("sync")
        .env("PATH", bin_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        text(&o.stderr),
        "mt-pr: gh, GitHub's command-line tool, is not installed or not in PATH (https://cli.github.com)\n"
    );
    fs::write(h.gh.join("exit"), "4").unwrap();
    fs::write(
        h.gh.join("stderr"),
        "To get started with GitHub CLI, please run:  gh auth login\n",
    )
    .unwrap();
    let o = h.pr(&["sync"]);
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        text(&o.stderr),
        "mt-pr: gh is not logged in to GitHub: run gh auth login\n"
    );
    fs::write(h.gh.join("exit"), "1").unwrap();
    fs::write(
        h.gh.join("stderr"),
        "\nerror connecting to api.github.com\n",
    )
    .unwrap();
    let o = h.pr(&["sync"]);
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        text(&o.stderr),
        "mt-pr: gh pr list failed (exit 1): error connecting to api.github.com\n"
    );
    assert!(!h.state.join("pr/state.json").exists());
    assert!(h.changes().is_empty());

    // In the watcher, the failure is posted once per streak.
    let rules = h.root.join("rules");
    fs::write(&rules, "name=pr @every 1m mt-pr sync\n").unwrap();
    let once = |t: &str| {
        let o = h
            .tool("mt-watch")
            .args(["--rules", rules.to_str().unwrap(), "--once"])
            .env("MT_WATCH_NOW", t)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    let errors = || {
        h.channel("general")
            .iter()
            .filter(|r| r["type"] == "error")
            .count()
    };
    fs::write(h.gh.join("exit"), "4").unwrap();
    once("2030-01-01T00:00:00Z");
    once("2030-01-01T00:02:00Z");
    once("2030-01-01T00:04:00Z");
    assert_eq!(errors(), 1);
    let err = h
        .channel("general")
        .into_iter()
        .find(|r| r["type"] == "error")
        .unwrap();
    assert!(
        err["content"]
            .as_str()
            .unwrap()
            .contains("gh is not logged in"),
        "{err}"
    );
    fs::remove_file(h.gh.join("exit")).unwrap();
    once("2030-01-01T00:06:00Z");
    fs::write(h.gh.join("exit"), "4").unwrap();
    once("2030-01-01T00:08:00Z");
    assert_eq!(errors(), 2, "a new streak is posted again");
}

#[test]
fn a_gh_that_does_not_answer_is_given_up_on() {
    let h = Hub::new();
    h.answer(&[pull(1, "x", "y")]);
    fs::write(h.gh.join("sleep"), "30").unwrap();
    let t = std::time::Instant::now();
    let o = h.pr(&["sync", "--timeout", "300ms"]);
    assert_eq!(o.status.code(), Some(75), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "mt-pr: gh pr list did not answer within 300ms\n"
    );
    assert!(t.elapsed() < PATIENCE / 4, "it waited for gh");
    assert!(!h.state.join("pr/state.json").exists());
    assert!(h.changes().is_empty());
}

#[test]
fn without_a_github_remote_sync_does_nothing_unless_told_the_repository() {
    let h = Hub::new();
    h.git(
        &h.repo,
        &[
            "remote",
            "set-url",
            "origin",
            "https://gitlab.com/acme/widgets.git",
        ],
    );
    h.answer(&[pull(1, "x", "y")]);
    let o = h.pr(&["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert!(h.calls().is_empty(), "gh was called");
    assert!(!h.state.join("pr").exists());
    // list and review need a repository.
    let o = h.pr(&["list"]);
    assert_eq!(o.status.code(), Some(69));
    assert!(text(&o.stderr).contains("give --repo OWNER/NAME"));
    // --repo, or gh's own GH_REPO, names one.
    let o = h.pr(&["sync", "--repo", "acme/other"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        h.calls()[0].ends_with("--repo acme/other"),
        "{:?}",
        h.calls()
    );
    let o = h
        .tool("mt-pr")
        .arg("sync")
        .env("GH_REPO", "acme/third")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(h.calls()[1].ends_with("--repo acme/third"));
    let o = h.pr(&["sync", "--repo", "../etc"]);
    assert_eq!(o.status.code(), Some(65));
    // An ssh remote of github.com is found, upstream when origin is not.
    h.git(
        &h.repo,
        &["remote", "add", "upstream", "git@github.com:acme/up.git"],
    );
    h.sync();
    assert!(h.calls()[2].ends_with("--repo acme/up"), "{:?}", h.calls());
}

#[test]
fn list_shows_coworker_task_ci_review_and_merge_state() {
    let h = Hub::new();
    h.answer(&[
        with(
            with(
                pull(7, "mt/york", "a"),
                "statusCheckRollup",
                json!([run("test", "COMPLETED", "FAILURE")]),
            ),
            "reviewDecision",
            json!("CHANGES_REQUESTED"),
        ),
        with(pull(8, "feature-y", "b"), "mergeable", json!("CONFLICTING")),
        with(pull(9, "mt/park", "c"), "isDraft", json!(true)),
        merged(pull(6, "mt/old", "d")),
    ]);
    let out = text(&h.pr(&["list"]).stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("PR  COWORKER  TASK  CI"), "{out}");
    assert!(
        lines[1].contains("#7  york")
            && lines[1].contains("failed: test")
            && lines[1].contains("changes requested"),
        "{out}"
    );
    assert!(lines[2].contains("conflict"), "{out}");
    assert!(lines[3].contains("draft"), "{out}");
    let out = text(&h.pr(&["list", "--all", "--json"]).stdout);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["coworker"], "york");
    assert_eq!(rows[0]["ci"], "failed");
    assert_eq!(rows[0]["failing"], json!(["test"]));
    assert_eq!(rows[3]["state"], "MERGED");
    assert_eq!(rows[1]["coworker"], Value::Null);
    // Listing keeps nothing and posts nothing.
    assert!(!h.state.join("pr").exists());
    assert!(h.changes().is_empty());
}

#[test]
fn review_starts_a_reviewer_whose_verdict_goes_through_gh() {
    let h = Hub::new();
    let view = json!({
        "number": 7, "title": "Add the parser", "body": "Parses the input.\nTested with cargo test.",
        "url": "https://github.com/acme/widgets/pull/7", "state": "OPEN", "isDraft": false,
        "headRefName": "mt/york", "baseRefName": "main", "author": {"login": "mt-bot"}
    });
    fs::write(h.gh.join("view.json"), view.to_string()).unwrap();
    fs::write(
        h.gh.join("diff"),
        "diff --git a/p.rs b/p.rs\n+fn parse() {}\n",
    )
    .unwrap();
    let prompt = h.root.join("prompt.txt");
    let run = format!(
        "printf '%s' \"$MT_FAKE_TEXT\" > {} && gh pr review 7 --approve --body 'looks right'",
        prompt.display()
    );
    let o = h
        .tool("mt-pr")
        .args(["review", "7", "--pool", "park,reed"])
        .env("MT_FAKE_RUN", &run)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "park\n");
    wait_for("the verdict", || {
        h.calls().iter().any(|c| c.starts_with("pr review"))
    });
    let calls = h.calls();
    assert!(calls.iter().any(|c| c == "pr view 7 --json number,title,body,url,state,isDraft,headRefName,baseRefName,author --repo acme/widgets"), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c == "pr diff 7 --color never --repo acme/widgets"),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == "pr review 7 --approve --body looks right"),
        "{calls:?}"
    );
    let p = fs::read_to_string(&prompt).unwrap();
    for want in [
        "Review pull request #7 of acme/widgets: Add the parser",
        "Parses the input.\nTested with cargo test.",
        "+fn parse() {}",
        "gh pr review 7 --approve",
        "gh pr review 7 --request-changes",
    ] {
        assert!(p.contains(want), "{want}: {p}");
    }
    // In its own worktree, allowed to use gh for the review.
    let meta = h.meta("park");
    assert!(meta["worktree"].as_str().unwrap().ends_with("park"));
    let allow = meta["permissions"]["allow"].as_array().unwrap();
    assert!(
        allow.iter().any(|r| r == "Bash(gh pr review:*)"),
        "{allow:?}"
    );
    assert!(allow.iter().any(|r| r == "Bash(git:*)"), "{allow:?}");
    let r = h.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["content"], "park reviews #7: Add the parser");
    assert_eq!(r[0]["meta"]["pr"]["agent"], "park");

    // A merged pull request is not reviewed.
    fs::write(
        h.gh.join("view.json"),
        with(view, "state", json!("MERGED")).to_string(),
    )
    .unwrap();
    let o = h.pr(&["review", "7", "--name", "reed"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "mt-pr: pull request #7 is merged; there is nothing to review\n"
    );
    assert!(!h.agent("reed").join("meta.json").exists());
}

#[test]
fn all_work_merged_fires_once_only_when_tasks_are_done_and_work_merged() {
    let h = Hub::new();
    for (name, title) in [("york", "Write the parser"), ("park", "Write the docs")] {
        let o = h
            .tool("mt-sling")
            .args(["--name", name, title])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        h.wait_idle(name);
    }
    let remind = |args: &[&str]| {
        let o = h.tool("mt-remind").args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    remind(&["add", "--when", "all-work-merged", "all merged"]);
    let fired = || {
        h.channel("general")
            .iter()
            .filter(|r| r["from"] == "mt-remind")
            .count()
    };
    let york = pull(1, "mt/york", "a");
    let park = pull(2, "mt/park", "b");
    h.answer(&[york.clone(), park.clone()]);
    h.sync();
    assert_eq!(remind(&["check"]), "");
    // Tasks done, work not merged.
    h.ok("mt-task", &["done", "1"]);
    h.ok("mt-task", &["done", "2"]);
    assert_eq!(remind(&["check"]), "");
    h.answer(&[merged(york.clone()), park.clone()]);
    h.sync();
    assert_eq!(remind(&["check"]), "");
    // An open pull request of another coworker holds it back...
    h.answer(&[
        merged(york.clone()),
        merged(park.clone()),
        pull(6, "mt/zed", "z"),
    ]);
    h.sync();
    assert_eq!(remind(&["check"]), "");
    // ...one of someone else's does not.
    h.answer(&[
        merged(york.clone()),
        merged(park.clone()),
        closed(pull(6, "mt/zed", "z")),
        pull(3, "feature", "c"),
    ]);
    h.sync();
    let kids: Vec<_> = (0..4)
        .map(|_| {
            h.tool("mt-remind")
                .arg("check")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = kids
        .into_iter()
        .map(|k| text(&k.wait_with_output().unwrap().stdout))
        .collect();
    assert_eq!(
        outs.iter()
            .filter(|o| *o == "fired 1: all merged\n")
            .count(),
        1,
        "{outs:?}"
    );
    assert_eq!(remind(&["check"]), "");
    assert_eq!(fired(), 1);

    // Work merged, tasks not done: a new task holds a second reminder back.
    h.ok("mt-task", &["create", "Release"]);
    remind(&["add", "--when", "all-work-merged", "again"]);
    assert_eq!(remind(&["check"]), "");
    h.ok("mt-task", &["done", "3"]);
    assert_eq!(remind(&["check"]), "fired 2: again\n");
    assert_eq!(remind(&["check"]), "");
    assert_eq!(fired(), 2);

    // A coworker that finished a task without a pull request holds it back.
    let o = h
        .tool("mt-sling")
        .args(["--name", "reed", "Tidy up"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    h.ok("mt-task", &["done", "4"]);
    remind(&["add", "--when", "all-work-merged", "third"]);
    assert_eq!(remind(&["check"]), "");
    h.answer(&[merged(york), merged(park), merged(pull(5, "mt/reed", "d"))]);
    h.sync();
    assert_eq!(remind(&["check"]), "fired 3: third\n");
}

#[test]
fn the_default_rules_follow_pull_requests_harmlessly() {
    let rules = fs::read_to_string(repo().join("share/examples/rules")).unwrap();
    let rule = rules
        .lines()
        .find(|l| l.starts_with("name=pr "))
        .expect("a pr rule");
    assert!(rule.ends_with("mt-pr sync"), "{rule}");
    let prompt = fs::read_to_string(repo().join("share/prompts/coworker.md")).unwrap();
    assert!(prompt.contains("gh pr create"), "{prompt}");
    // In a repository without a GitHub remote, the default rules run clean.
    let e = Env::with_repo();
    let o = e.run("mt-watch", &["--init"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = e
        .cmd("mt-watch")
        .arg("--once")
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        !e.channel("general").iter().any(|r| r["type"] == "error"),
        "{:?}",
        e.channel("general")
    );
    let log = fs::read_to_string(e.state.join("watch/log")).unwrap_or_default();
    assert!(!log.contains("mt-pr:"), "{log}");
}
