//! `mt-worktree add` + `rm` on a repository with 10,000 files, beside
//! `git worktree add` + `git worktree remove` measured in the same run (runs
//! interleaved, so both see the same machine load). Prints medians.
//!
//! `cargo bench --bench worktree`; MT_BENCH_RUNS sets the number of rounds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 10_000;

/// The binaries cargo built for this benchmark (release, with the flags
/// `make bench` gives).
fn build() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mt-worktree"))
}

/// A command with a private, empty git configuration.
fn cmd(prog: impl AsRef<std::ffi::OsStr>, home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(prog);
    c.current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("MT_DIR", home.join("state"))
        .env_remove("MT_WORKTREES");
    c
}

fn run(c: &mut Command) {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn timed(c: &mut Command) -> Duration {
    let t = Instant::now();
    run(c);
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let bin = build();
    let runs: usize = std::env::var("MT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(tmp.path()).unwrap();
    let home = root.join("home");
    let repo = root.join("repo");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&repo).unwrap();

    // 10,000 small files in 100 directories, one commit.
    for d in 0..100 {
        let dir = repo.join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..FILES / 100 {
            fs::write(dir.join(format!("f{f:03}.txt")), format!("file {d} {f}\n")).unwrap();
        }
    }
    run(cmd("git", &home, &repo).args(["init", "-q", "-b", "main"]));
    run(cmd("git", &home, &repo).args(["add", "-A"]));
    run(cmd("git", &home, &repo).args(["commit", "-q", "-m", "10k files"]));

    let git_wt = root.join("git-wt");
    let mut mt_add = Vec::new();
    let mut mt_rm = Vec::new();
    let mut git_add = Vec::new();
    let mut git_rm = Vec::new();
    let mut git_branch = Vec::new();
    let git_wt_s = git_wt.to_str().unwrap();
    let mt = |args: &[&str]| {
        let mut c = cmd(&bin, &home, &repo);
        c.args(args);
        c
    };
    let git = |args: &[&str]| {
        let mut c = cmd("git", &home, &repo);
        c.args(args);
        c
    };
    // Round 0 is untimed: it warms the page cache.
    for round in 0..=runs {
        let a = timed(&mut mt(&["add", "bench"]));
        let r = timed(&mut mt(&["rm", "bench"]));
        let ga = timed(&mut git(&[
            "worktree", "add", "-q", "-b", "gbench", git_wt_s,
        ]));
        let gr = timed(&mut git(&["worktree", "remove", git_wt_s]));
        let gb = timed(&mut git(&["branch", "-q", "-D", "gbench"]));
        if round > 0 {
            mt_add.push(a);
            mt_rm.push(r);
            git_add.push(ga);
            git_rm.push(gr);
            git_branch.push(gb);
        }
    }
    let mt_total: Vec<Duration> = mt_add.iter().zip(&mt_rm).map(|(a, b)| *a + *b).collect();
    let git_total: Vec<Duration> = git_add.iter().zip(&git_rm).map(|(a, b)| *a + *b).collect();
    let git_full: Vec<Duration> = git_total
        .iter()
        .zip(&git_branch)
        .map(|(a, b)| *a + *b)
        .collect();
    let (m, g, gf) = (median(mt_total), median(git_total), median(git_full));

    println!("worktree add + rm, {FILES} files, median of {runs} interleaved rounds");
    println!("  mt-worktree add               {}", ms(median(mt_add)));
    println!("  mt-worktree rm (+ branch)     {}", ms(median(mt_rm)));
    println!("  git worktree add -b           {}", ms(median(git_add)));
    println!("  git worktree remove           {}", ms(median(git_rm)));
    println!("  git branch -D                 {}", ms(median(git_branch)));
    println!("  mt-worktree add + rm          {}", ms(m));
    println!("  git worktree add + remove     {}", ms(g));
    println!("  ... + git branch -D           {}", ms(gf));
    println!(
        "  ratio mt / git: {:.2} (with branch -D: {:.2})",
        m.as_secs_f64() / g.as_secs_f64(),
        m.as_secs_f64() / gf.as_secs_f64()
    );
}
