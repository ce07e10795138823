//! mt-worktree against real repositories in temporary directories; every
//! outcome is checked with the real `git` CLI.

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

/// The shared scratch environment, whose `repo` has one commit on
/// `main`, with this area's verbs.
struct Fx(crate::support::Env);

impl std::ops::Deref for Fx {
    type Target = crate::support::Env;
    fn deref(&self) -> &crate::support::Env {
        &self.0
    }
}

impl Fx {
    fn new() -> Fx {
        let fx = Fx(crate::support::Env::new());
        fx.git(&fx.repo, &["init", "-q", "-b", "main"]);
        fs::write(fx.repo.join("README"), "hello\n").unwrap();
        fs::write(fx.repo.join(".gitignore"), "target/\n").unwrap();
        fx.git(&fx.repo, &["add", "."]);
        fx.git(&fx.repo, &["commit", "-qm", "first"]);
        fx
    }

    fn root(&self) -> PathBuf {
        self.0.root.clone()
    }

    fn git_cmd(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        crate::support::git_output(dir, &self.home, args)
    }

    fn mt(&self) -> Command {
        Command::from_std(self.cmd("mt-worktree"))
    }

    fn add(&self, name: &str) -> PathBuf {
        let out = self
            .mt()
            .args(["add", name])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        PathBuf::from(String::from_utf8(out).unwrap().trim_end())
    }

    fn default_path(&self, name: &str) -> PathBuf {
        self.root().join("repo.worktrees").join(name)
    }

    /// `git worktree list --porcelain` as (path, branch or "detached",
    /// prunable) for the linked worktrees.
    fn worktrees(&self) -> Vec<(PathBuf, String, bool)> {
        let text = self.git(&self.repo, &["worktree", "list", "--porcelain"]);
        text.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .skip(1)
            .map(|b| {
                let mut path = PathBuf::new();
                let mut branch = "detached".to_string();
                let mut prunable = false;
                for l in b.lines() {
                    if let Some(p) = l.strip_prefix("worktree ") {
                        path = PathBuf::from(p);
                    } else if let Some(r) = l.strip_prefix("branch refs/heads/") {
                        branch = r.to_string();
                    } else if l.starts_with("prunable") {
                        prunable = true;
                    }
                }
                (path, branch, prunable)
            })
            .collect()
    }

    fn branches(&self) -> Vec<String> {
        self.git(
            &self.repo,
            &["branch", "--list", "--format=%(refname:short)"],
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    fn has_branch(&self, b: &str) -> bool {
        !self
            .git(&self.repo, &["branch", "--list", b])
            .trim()
            .is_empty()
    }

    fn commit(&self, dir: &Path, file: &str, msg: &str) {
        fs::write(dir.join(file), format!("{msg}\n")).unwrap();
        self.git(dir, &["add", file]);
        self.git(dir, &["commit", "-qm", msg]);
    }

    /// Everything git and the filesystem say about the repository, to
    /// prove that something changed nothing.
    fn snapshot(&self) -> String {
        let mut s = self.git(&self.repo, &["worktree", "list", "--porcelain"]);
        s += &self.git(&self.repo, &["for-each-ref"]);
        s += &self.git(&self.repo, &["config", "--local", "--list"]);
        let wts = self.root().join("repo.worktrees");
        if let Ok(rd) = fs::read_dir(&wts) {
            let mut names: Vec<String> = rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect();
            names.sort();
            s += &names.join(",");
        }
        let mut admin: Vec<String> = fs::read_dir(self.repo.join(".git/worktrees"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        admin.sort();
        s += &admin.join(",");
        s
    }

    /// Hold the agent's liveness lock, as its supervisor would.
    fn hold_agent(&self, name: &str) -> fs::File {
        let p = mt::statedir::StateDir::at(&self.state).agent_lock(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = fs::File::create(&p).unwrap();
        f.lock().unwrap();
        f
    }

    fn list_json(&self) -> Vec<serde_json::Value> {
        let out = self
            .mt()
            .args(["list", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn row(&self, name: &str) -> serde_json::Value {
        self.list_json()
            .into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    }
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

// ---- add ----

#[test]
fn add_creates_a_worktree_git_sees_on_a_new_branch() {
    let fx = Fx::new();
    let p = fx.add("park");
    assert_eq!(p, fx.default_path("park"));
    assert_eq!(
        fx.worktrees(),
        vec![(p.clone(), "mt/park".to_string(), false)]
    );
    assert!(fx.has_branch("mt/park"));
    // Based on the main checkout's HEAD, with the base recorded by name.
    let main = fx.git(&fx.repo, &["rev-parse", "main"]);
    assert_eq!(fx.git(&p, &["rev-parse", "HEAD"]), main);
    assert_eq!(
        fx.git(&fx.repo, &["config", "branch.mt/park.mtbase"])
            .trim(),
        "refs/heads/main"
    );
    // Checked out, clean, and invisible from the main checkout.
    assert_eq!(fs::read_to_string(p.join("README")).unwrap(), "hello\n");
    assert_eq!(fx.git(&p, &["status", "--porcelain"]), "");
    assert_eq!(
        fx.git(&fx.repo, &["status", "--porcelain", "--ignored"]),
        ""
    );
}

#[test]
fn add_twice_is_idempotent() {
    let fx = Fx::new();
    let p = fx.add("park");
    fs::write(p.join("work.txt"), "in progress").unwrap();
    let before = fx.snapshot();
    assert_eq!(fx.add("park"), p);
    assert_eq!(fx.snapshot(), before);
    assert_eq!(
        fs::read_to_string(p.join("work.txt")).unwrap(),
        "in progress"
    );
    assert_eq!(fx.worktrees().len(), 1);
}

#[test]
fn add_after_the_directory_was_deleted_recreates_it_on_the_same_branch() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "work");
    let tip = fx.git(&p, &["rev-parse", "HEAD"]);
    fs::remove_dir_all(&p).unwrap();
    assert!(fx.worktrees()[0].2, "git sees it as prunable");

    assert_eq!(fx.add("park"), p);
    assert_eq!(
        fx.worktrees(),
        vec![(p.clone(), "mt/park".to_string(), false)]
    );
    // The branch was reused, not reset to the base: the commit is there.
    assert_eq!(fx.git(&p, &["rev-parse", "HEAD"]), tip);
    assert_eq!(fs::read_to_string(p.join("a.txt")).unwrap(), "work\n");
    assert_eq!(fx.git(&p, &["status", "--porcelain"]), "");
}

#[test]
fn add_refuses_a_stray_directory_unless_forced() {
    let fx = Fx::new();
    let p = fx.default_path("park");
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("precious"), "x").unwrap();
    let a = fx.mt().args(["add", "park"]).assert().code(73);
    assert!(stderr(&a).contains("already exists"), "{}", stderr(&a));
    assert!(p.join("precious").exists());
    assert!(fx.worktrees().is_empty());
    assert!(!fx.has_branch("mt/park"));

    let a = fx.mt().args(["add", "park", "--force"]).assert().success();
    assert!(
        stderr(&a).contains("--force"),
        "force is loud: {}",
        stderr(&a)
    );
    assert_eq!(
        fx.worktrees(),
        vec![(p.clone(), "mt/park".to_string(), false)]
    );
    assert!(!p.join("precious").exists());
}

#[test]
fn add_force_never_deletes_the_repository_or_another_worktree() {
    let fx = Fx::new();
    let york = fx.add("york");
    for target in [&york, &fx.repo, &fx.root()] {
        fx.mt()
            .args(["add", "park", "--force", "--path"])
            .arg(target)
            .assert()
            .code(73);
    }
    assert!(york.join("README").exists());
    assert!(fx.repo.join(".git").exists());
    assert!(!fx.has_branch("mt/park"));
}

#[test]
fn add_with_base_branch_path_and_location_options() {
    let fx = Fx::new();
    fx.git(&fx.repo, &["branch", "dev"]);
    fx.commit(&fx.repo, "later.txt", "later");
    let dev = fx.git(&fx.repo, &["rev-parse", "dev"]);

    let custom = fx.root().join("elsewhere").join("wt");
    let out = fx
        .mt()
        .args([
            "add",
            "york",
            "--base",
            "dev",
            "--branch",
            "feature/york",
            "--path",
        ])
        .arg(&custom)
        .assert()
        .success();
    assert_eq!(stdout(&out).trim(), custom.to_str().unwrap());
    assert_eq!(fx.git(&custom, &["rev-parse", "HEAD"]), dev);
    assert_eq!(
        fx.git(&fx.repo, &["config", "branch.feature/york.mtbase"])
            .trim(),
        "refs/heads/dev"
    );

    // A commit id as base is recorded as that commit.
    fx.mt()
        .args(["add", "zed", "--base", "HEAD~1"])
        .assert()
        .success();
    assert_eq!(fx.git(&fx.repo, &["config", "branch.mt/zed.mtbase"]), dev);

    // The worktrees directory: environment, then flag.
    let env_root = fx.root().join("wts");
    let out = fx
        .mt()
        .env("MT_WORKTREES", &env_root)
        .args(["add", "ann"])
        .assert()
        .success();
    assert_eq!(stdout(&out).trim(), env_root.join("ann").to_str().unwrap());
    let flag_root = fx.root().join("wts2");
    let out = fx
        .mt()
        .env("MT_WORKTREES", &env_root)
        .args(["add", "bob", "--worktrees"])
        .arg(&flag_root)
        .assert()
        .success();
    assert_eq!(stdout(&out).trim(), flag_root.join("bob").to_str().unwrap());
    assert_eq!(fx.worktrees().len(), 4);
}

#[test]
fn bad_input_is_a_clear_error_and_creates_nothing() {
    let fx = Fx::new();
    let before = fx.snapshot();
    for bad in ["../x", "a/b", "Park", "", "-x", "a b"] {
        let a = fx.mt().args(["add", "--", bad]).assert().code(65);
        assert!(
            stderr(&a).starts_with("mt-worktree: invalid worktree name"),
            "{}",
            stderr(&a)
        );
    }
    let a = fx
        .mt()
        .args(["add", "park", "--base", "no-such-branch"])
        .assert()
        .code(65);
    assert!(
        stderr(&a).contains("base \"no-such-branch\" does not resolve"),
        "{}",
        stderr(&a)
    );
    let a = fx
        .mt()
        .args(["add", "park", "--branch", "bad..name"])
        .assert()
        .code(65);
    assert!(stderr(&a).contains("invalid branch name"), "{}", stderr(&a));

    let missing = fx.root().join("no-such-repo");
    let a = fx
        .mt()
        .arg("--repo")
        .arg(&missing)
        .args(["add", "park"])
        .assert()
        .code(69);
    assert!(stderr(&a).contains("does not exist"), "{}", stderr(&a));
    let plain = fx.root().join("plain");
    fs::create_dir(&plain).unwrap();
    let a = fx
        .mt()
        .arg("--repo")
        .arg(&plain)
        .args(["add", "park"])
        .assert()
        .code(69);
    assert!(
        stderr(&a).contains("not inside a git repository"),
        "{}",
        stderr(&a)
    );
    fx.mt()
        .arg("--repo")
        .arg(&missing)
        .arg("list")
        .assert()
        .code(69);
    fx.mt()
        .arg("--repo")
        .arg(&missing)
        .arg("gc")
        .assert()
        .code(69);
    fx.mt()
        .arg("--repo")
        .arg(&missing)
        .args(["rm", "park"])
        .assert()
        .code(69);
    fx.mt().args(["rm", "../x"]).assert().code(65);

    assert!(!missing.exists());
    assert_eq!(fs::read_dir(&plain).unwrap().count(), 0);
    assert_eq!(fx.snapshot(), before);
    assert!(!fx.default_path("park").exists());
    assert!(!fx.root().join("repo.worktrees").exists());
    assert!(!fx.repo.join(".git/mt").exists());
    assert_eq!(fx.branches(), vec!["main"]);
}

#[test]
fn repo_option_and_calls_from_inside_a_worktree() {
    let fx = Fx::new();
    let elsewhere = fx.root().join("home");
    let out = fx
        .mt()
        .current_dir(&elsewhere)
        .arg("--repo")
        .arg(&fx.repo)
        .args(["add", "park"])
        .assert()
        .success();
    let p = PathBuf::from(stdout(&out).trim());
    assert_eq!(p, fx.default_path("park"));
    // From inside a linked worktree, the repository is still managed as a
    // whole: the new worktree is a sibling, not nested.
    let out = fx
        .mt()
        .current_dir(&p)
        .args(["add", "york"])
        .assert()
        .success();
    assert_eq!(
        stdout(&out).trim(),
        fx.default_path("york").to_str().unwrap()
    );
    let rows = fx
        .mt()
        .current_dir(&elsewhere)
        .arg("--repo")
        .arg(p.join("README").parent().unwrap())
        .args(["list", "--json"])
        .assert()
        .success();
    assert_eq!(stdout(&rows).lines().count(), 2);
    fx.mt()
        .current_dir(&elsewhere)
        .args(["--repo"])
        .arg(&fx.repo)
        .args(["rm", "york"])
        .assert()
        .success();
    assert_eq!(fx.worktrees().len(), 1);
}

// ---- list ----

#[test]
fn list_reports_ahead_dirty_merged_running_locked() {
    let fx = Fx::new();
    let park = fx.add("park");
    let york = fx.add("york");
    let zed = fx.add("zed");
    fx.commit(&park, "p.txt", "p1");
    fx.commit(&park, "p2.txt", "p2");
    fs::write(york.join("untracked.txt"), "x").unwrap();
    fx.git(
        &fx.repo,
        &[
            "worktree",
            "lock",
            "--reason",
            "on a usb stick",
            zed.to_str().unwrap(),
        ],
    );
    let _agent = fx.hold_agent("york");

    let p = fx.row("park");
    assert_eq!(p["path"], park.to_str().unwrap());
    assert_eq!(p["branch"], "mt/park");
    assert_eq!(p["head"], fx.git(&park, &["rev-parse", "HEAD"]).trim());
    assert_eq!(p["base"], "refs/heads/main");
    assert_eq!(p["ahead"], 2);
    assert_eq!(p["dirty"], false);
    assert_eq!(p["merged"], false);
    assert_eq!(p["running"], false);
    assert_eq!(p["locked"], false);

    let y = fx.row("york");
    assert_eq!(y["ahead"], 0);
    assert_eq!(y["merged"], true);
    assert_eq!(y["dirty"], true);
    assert_eq!(y["changes"], serde_json::json!(["?? untracked.txt"]));
    assert_eq!(y["running"], true);

    let z = fx.row("zed");
    assert_eq!(z["locked"], true);
    assert_eq!(z["lock_reason"], "on a usb stick");
    assert_eq!(z["dirty"], false);

    // The table has a header and one line per worktree.
    let t = fx.mt().arg("list").assert().success();
    let text = stdout(&t);
    assert!(text.starts_with("NAME"), "{text}");
    assert_eq!(text.lines().count(), 4);
    assert!(
        text.lines()
            .any(|l| l.starts_with("york") && l.contains("dirty(1)") && l.contains("running")),
        "{text}"
    );
}

// ---- rm refuses ----

fn assert_refused(fx: &Fx, name: &str, extra: &[&str], why: &str) {
    let before = fx.snapshot();
    let a = fx.mt().args(["rm", name]).args(extra).assert().code(1);
    let e = stderr(&a);
    assert!(
        e.starts_with(&format!("mt-worktree: refusing to remove worktree {name}")),
        "{e}"
    );
    assert!(e.contains(why), "expected {why:?} in {e}");
    assert_eq!(fx.snapshot(), before, "a refused rm changes nothing");
    assert!(fx.default_path(name).join("README").exists());
}

#[test]
fn rm_refuses_an_uncommitted_change() {
    let fx = Fx::new();
    let p = fx.add("park");
    fs::write(p.join("README"), "changed\n").unwrap();
    assert_refused(&fx, "park", &[], "1 uncommitted change:  M README");
    // Staged counts too.
    fx.git(&p, &["add", "README"]);
    assert_refused(&fx, "park", &[], "M  README");
    // And --keep-branch does not save uncommitted work.
    assert_refused(&fx, "park", &["--keep-branch"], "M  README");
}

#[test]
fn rm_refuses_an_untracked_file_but_not_an_ignored_one() {
    let fx = Fx::new();
    let p = fx.add("park");
    fs::create_dir_all(p.join("target/debug")).unwrap();
    fs::write(p.join("target/debug/big"), "build output").unwrap();
    fs::write(p.join("notes.txt"), "mine").unwrap();
    assert_refused(&fx, "park", &[], "?? notes.txt");
    fs::remove_file(p.join("notes.txt")).unwrap();
    fx.mt().args(["rm", "park"]).assert().success();
    assert!(!p.exists());
    assert!(fx.worktrees().is_empty());
}

#[test]
fn rm_refuses_commits_not_merged_and_says_how_many() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    fx.commit(&p, "b.txt", "two");
    fx.commit(&p, "c.txt", "three");
    assert_refused(&fx, "park", &[], "3 commits on mt/park not in main");
    // Half of it merged: still two commits at stake.
    let first = fx.git(&p, &["rev-parse", "HEAD~2"]);
    fx.git(&fx.repo, &["merge", "-q", "--ff-only", first.trim()]);
    assert_refused(&fx, "park", &[], "2 commits on mt/park not in main");
}

#[test]
fn rm_refuses_while_the_agent_runs() {
    let fx = Fx::new();
    fx.add("park");
    let lock = fx.hold_agent("park");
    assert_refused(&fx, "park", &[], "agent park is running");
    assert_refused(&fx, "park", &["--keep-branch"], "agent park is running");
    drop(lock);
    fx.mt().args(["rm", "park"]).assert().success();
    assert!(fx.worktrees().is_empty());
}

#[test]
fn rm_refuses_a_locked_worktree() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.git(&fx.repo, &["worktree", "lock", p.to_str().unwrap()]);
    assert_refused(&fx, "park", &[], "it is locked");
}

#[test]
fn rm_refusal_lists_every_reason_at_once() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    fs::write(p.join("new.txt"), "x").unwrap();
    let _agent = fx.hold_agent("park");
    let a = fx.mt().args(["rm", "park"]).assert().code(1);
    let e = stderr(&a);
    for why in [
        "agent park is running",
        "?? new.txt",
        "1 commit on mt/park not in main",
    ] {
        assert!(e.contains(why), "{why:?} missing in {e}");
    }
}

// ---- rm succeeds ----

fn assert_removed(fx: &Fx, name: &str, branch: &str) {
    assert!(!fx.default_path(name).exists());
    assert!(fx.worktrees().is_empty(), "{:?}", fx.worktrees());
    assert!(!fx.has_branch(branch));
    assert!(
        fx.git_cmd(&fx.repo, &["config", &format!("branch.{branch}.mtbase")])
            .status
            .code()
            == Some(1)
    );
    assert!(!fx.repo.join(".git/worktrees").join(name).exists());
    assert_eq!(fx.git(&fx.repo, &["status", "--porcelain"]), "");
}

#[test]
fn rm_removes_a_clean_worktree_without_commits() {
    let fx = Fx::new();
    fx.add("park");
    let a = fx.mt().args(["rm", "park"]).assert().success();
    assert!(
        stdout(&a).contains("deleted branch mt/park"),
        "{}",
        stdout(&a)
    );
    assert_eq!(stderr(&a), "");
    assert_removed(&fx, "park", "mt/park");
}

#[test]
fn rm_removes_after_a_fast_forward_merge() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    fx.commit(&p, "b.txt", "two");
    fx.git(&fx.repo, &["merge", "-q", "--ff-only", "mt/park"]);
    fx.mt().args(["rm", "park"]).assert().success();
    assert_removed(&fx, "park", "mt/park");
}

#[test]
fn rm_removes_after_a_merge_commit() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    fx.commit(&fx.repo, "main.txt", "main moved on");
    fx.git(
        &fx.repo,
        &["merge", "-q", "--no-ff", "-m", "merge park", "mt/park"],
    );
    assert_eq!(fx.row("park")["merged"], true);
    fx.mt().args(["rm", "park"]).assert().success();
    assert_removed(&fx, "park", "mt/park");
}

#[test]
fn rm_keep_branch_keeps_the_commits_and_frees_the_directory() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    let tip = fx.git(&p, &["rev-parse", "HEAD"]);
    let a = fx
        .mt()
        .args(["rm", "park", "--keep-branch"])
        .assert()
        .success();
    assert!(stdout(&a).contains("kept branch mt/park"), "{}", stdout(&a));
    assert!(!p.exists());
    assert!(fx.worktrees().is_empty());
    assert_eq!(fx.git(&fx.repo, &["rev-parse", "mt/park"]), tip);
    // The kept branch stays an mt branch, so gc can delete it once merged,
    // and rm by name still refuses while it is unmerged.
    assert_eq!(
        fx.git(&fx.repo, &["config", "branch.mt/park.mtbase"])
            .trim(),
        "refs/heads/main"
    );
    let a = fx.mt().args(["rm", "park"]).assert().code(1);
    assert!(
        stderr(&a).contains("1 commit on mt/park not in main"),
        "{}",
        stderr(&a)
    );
    assert!(fx.has_branch("mt/park"));
    // Recreating the worktree picks the branch up again.
    let p2 = fx.add("park");
    assert_eq!(fx.git(&p2, &["rev-parse", "HEAD"]), tip);
}

#[test]
fn rm_force_discards_loudly_and_tells_how_to_recover() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.commit(&p, "a.txt", "one");
    let tip = fx.git(&p, &["rev-parse", "HEAD"]);
    fs::write(p.join("README"), "changed\n").unwrap();
    let _agent = fx.hold_agent("park");
    let a = fx.mt().args(["rm", "park", "--force"]).assert().success();
    let e = stderr(&a);
    for what in [
        "--force: removing park although agent park is running",
        "M README",
        "1 commit on mt/park not in main",
        &format!("git branch mt/park {}", tip.trim()),
    ] {
        assert!(e.contains(what), "{what:?} missing in {e}");
    }
    assert_removed(&fx, "park", "mt/park");
    // The commit is recoverable as printed.
    fx.git(&fx.repo, &["branch", "mt/park", tip.trim()]);
}

#[test]
fn rm_of_a_worktree_whose_directory_is_gone() {
    let fx = Fx::new();
    let p = fx.add("park");
    fs::remove_dir_all(&p).unwrap();
    fx.mt().args(["rm", "park"]).assert().success();
    assert_removed(&fx, "park", "mt/park");
    let a = fx.mt().args(["rm", "park"]).assert().code(1);
    assert!(
        stderr(&a).contains("no worktree named park"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn rm_keeps_a_branch_checked_out_elsewhere() {
    let fx = Fx::new();
    let p = fx.add("park");
    // The agent switched its worktree to a new branch; mt/park is now
    // checked out by the main checkout.
    fx.git(&p, &["switch", "-q", "-c", "side"]);
    fx.git(&fx.repo, &["switch", "-q", "mt/park"]);
    let a = fx.mt().args(["rm", "park"]).assert().success();
    assert!(
        stdout(&a).contains("kept branch mt/park (checked out in the main checkout)"),
        "{}",
        stdout(&a)
    );
    assert!(fx.has_branch("mt/park"));
    assert!(fx.has_branch("side"));
    assert!(fx.worktrees().is_empty());
}

#[test]
fn rm_refuses_commits_on_a_detached_head() {
    let fx = Fx::new();
    let p = fx.add("park");
    fx.git(&p, &["switch", "-q", "--detach"]);
    fx.commit(&p, "a.txt", "adrift");
    let a = fx
        .mt()
        .args(["rm", "park", "--keep-branch"])
        .assert()
        .code(1);
    assert!(
        stderr(&a).contains("1 commit on detached HEAD"),
        "{}",
        stderr(&a)
    );
}

// ---- gc ----

/// A repository with one worktree or branch in every situation gc meets.
fn gc_scene(fx: &Fx) -> fs::File {
    // Removed: clean with no commits; merged by fast-forward; merged by a
    // merge commit.
    fx.add("clean");
    let ff = fx.add("ff");
    fx.commit(&ff, "ff.txt", "ff");
    fx.git(&fx.repo, &["merge", "-q", "--ff-only", "mt/ff"]);
    let mc = fx.add("mc");
    fx.commit(&mc, "mc.txt", "mc");
    fx.commit(&fx.repo, "main2.txt", "main moves");
    fx.git(
        &fx.repo,
        &["merge", "-q", "--no-ff", "-m", "merge mc", "mt/mc"],
    );
    // Kept: dirty, untracked, unmerged, agent running, locked, not mt's.
    let dirty = fx.add("dirty");
    fs::write(dirty.join("README"), "edited\n").unwrap();
    let untracked = fx.add("untracked");
    fs::write(untracked.join("new.txt"), "x").unwrap();
    let ignored = fx.add("ignored");
    fs::create_dir_all(ignored.join("target")).unwrap();
    fs::write(ignored.join("target/out"), "x").unwrap();
    let unmerged = fx.add("unmerged");
    fx.commit(&unmerged, "u.txt", "u");
    fx.add("busy");
    let locked = fx.add("locked");
    fx.git(&fx.repo, &["worktree", "lock", locked.to_str().unwrap()]);
    fx.git(
        &fx.repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "hand",
            fx.root().join("hand").to_str().unwrap(),
        ],
    );
    // Pruned: directory deleted (its merged branch then goes too).
    let gone = fx.add("gone");
    fs::remove_dir_all(&gone).unwrap();
    // Branches without a worktree: merged (deleted), unmerged (kept), and
    // a merged branch that is not mt's (untouched).
    let old = fx.add("old");
    fx.mt()
        .args(["rm", "old", "--keep-branch"])
        .assert()
        .success();
    drop(old);
    let wip = fx.add("wip");
    fx.commit(&wip, "w.txt", "w");
    fx.mt()
        .args(["rm", "wip", "--keep-branch"])
        .assert()
        .success();
    fx.git(&fx.repo, &["branch", "plain"]);
    fx.hold_agent("busy")
}

#[test]
fn gc_removes_exactly_the_safe_ones() {
    let fx = Fx::new();
    let _busy = gc_scene(&fx);
    let a = fx.mt().arg("gc").assert().success();
    let out = stdout(&a);

    let mut left: Vec<String> = fx
        .worktrees()
        .into_iter()
        .map(|(p, _, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["busy", "dirty", "hand", "locked", "unmerged", "untracked"]
    );
    let mut branches = fx.branches();
    branches.sort();
    assert_eq!(
        branches,
        [
            "hand",
            "main",
            "mt/busy",
            "mt/dirty",
            "mt/locked",
            "mt/unmerged",
            "mt/untracked",
            "mt/wip",
            "plain"
        ]
    );
    for gone in ["clean", "ff", "mc", "ignored", "gone"] {
        assert!(!fx.default_path(gone).exists(), "{gone}");
    }
    assert!(
        fx.git(&fx.repo, &["worktree", "list", "--porcelain"])
            .lines()
            .all(|l| !l.starts_with("prunable"))
    );

    // Every decision is reported with its reason.
    for line in [
        "removed clean (",
        "removed ff (",
        "removed mc (",
        "removed ignored (",
        "pruned gone (",
        "deleted branch mt/gone: merged into main",
        "deleted branch mt/old: merged into main",
        "kept branch mt/wip: 1 commit not in main",
    ] {
        assert!(out.contains(line), "{line:?} missing in\n{out}");
    }
    let kept = |name: &str, why: &str| {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("kept {name} (")) && l.contains(why)),
            "kept {name}: {why:?} missing in\n{out}"
        );
    };
    kept("dirty", " M README");
    kept("untracked", "?? new.txt");
    kept("unmerged", "1 commit on mt/unmerged not in main");
    kept("busy", "agent busy is running");
    kept("locked", "it is locked");
    kept("hand", "not created by mt-worktree");

    // A second run finds nothing more to remove.
    let again = stdout(&fx.mt().arg("gc").assert().success());
    assert!(
        !again.lines().any(|l| l.starts_with("removed")
            || l.starts_with("deleted")
            || l.starts_with("pruned")),
        "{again}"
    );
}

#[test]
fn gc_dry_run_changes_nothing_and_says_the_same() {
    let fx = Fx::new();
    let _busy = gc_scene(&fx);
    let before = fx.snapshot();
    let dry = stdout(&fx.mt().args(["gc", "--dry-run"]).assert().success());
    assert_eq!(fx.snapshot(), before);
    assert!(fx.default_path("clean").join("README").exists());
    let real = stdout(&fx.mt().arg("gc").assert().success());
    // The dry run announces exactly what the real run then does.
    let norm = |s: &str| {
        s.replace("would remove", "removed")
            .replace("would prune", "pruned")
            .replace("would delete", "deleted")
    };
    assert_eq!(norm(&dry), real);
}

#[test]
fn gc_min_age_spares_a_fresh_worktree() {
    let fx = Fx::new();
    fx.add("fresh");
    let out = stdout(&fx.mt().args(["gc", "--min-age", "1h"]).assert().success());
    assert!(
        out.contains("kept fresh (") && out.contains("--min-age 1h"),
        "{out}"
    );
    assert_eq!(fx.worktrees().len(), 1);
}
