//! mt-worktree: one git worktree per agent, created and cleaned up without
//! losing work.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::worktree::{self, AddOptions, GcAction, GcOptions, RmOptions, short_ref};

/// Manage one git worktree per agent
///
/// Each agent works in its own worktree, on its own branch (mt/NAME by
/// default), started from a base (the main checkout's HEAD by default). rm
/// and gc never lose work: they refuse to remove a worktree with uncommitted
/// changes or untracked files, with commits that are not in its base, or
/// whose agent is running. Merged means every commit is in the base's current
/// tip, whether it got there by fast-forward or by a merge commit.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Repository to manage: any directory inside it, a linked worktree
    /// included (default: the current directory)
    #[arg(long, value_name = "DIR", global = true)]
    pub repo: Option<PathBuf>,

    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the worktree NAME on a new branch and print its path
    ///
    /// Idempotent: an existing worktree NAME prints its path; one whose
    /// directory was deleted is pruned and created again on its existing
    /// branch. An existing branch is reused as it is, never reset.
    Add {
        /// Worktree name (also the agent's name)
        #[arg(value_name = "NAME")]
        name: String,
        /// Start the branch here: a branch, tag or commit (default: the main
        /// checkout's HEAD). A branch is recorded by name, so merged means
        /// merged into its current tip.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// Branch name (default: mt/NAME)
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
        /// Directory of the worktree (default: WORKTREES/NAME)
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Directory that holds the worktrees (default: <checkout>.worktrees
        /// beside the main checkout)
        #[arg(long, env = worktree::ENV_ROOT, value_name = "DIR")]
        worktrees: Option<PathBuf>,
        /// Replace a stray file or directory in the way (it is deleted)
        #[arg(long)]
        force: bool,
    },
    /// List worktrees: branch, head, base, commits ahead, dirty, merged,
    /// agent running, locked
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Remove a worktree and its branch, only if no work would be lost
    Rm {
        #[arg(value_name = "NAME")]
        name: String,
        /// Remove anyway, discarding changes and commits (each is reported)
        #[arg(long)]
        force: bool,
        /// Keep the branch: its commits are then safe and do not block
        #[arg(long)]
        keep_branch: bool,
    },
    /// Prune stale metadata, remove what rm would remove without --force,
    /// delete merged mt branches without a worktree
    Gc {
        /// Report what would be done; change nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Keep worktrees with git activity (commit, index update) more
        /// recent than this, e.g. one just added for an agent about to start
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = super::duration)]
        min_age: std::time::Duration,
    },
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-worktree",
        &[
            (
                "COMMANDS",
                "add NAME [--base REV] [--branch BRANCH] [--path DIR] [--worktrees DIR] [--force]\tCreate the worktree NAME on branch BRANCH (mt/NAME) started at REV (the main checkout's HEAD) and print its path. A branch or tag is recorded by name, anything else as a commit. Run again, it prints the existing worktree's path; if the directory was deleted, the stale metadata is pruned and the worktree created again on its existing branch, which is never reset. Anything else already at the path is an error (73) unless --force, which deletes it loudly; the repository and other worktrees are never deleted.
list [--json]\tOne line (or JSON object) per linked worktree: name, path, branch, head, base, ahead (commits not in the base's current tip), dirty (uncommitted changes or untracked files; ignored files do not count), merged (ahead is 0), running (the agent NAME holds its liveness lock), locked (git worktree lock); JSON adds lock_reason, missing (directory deleted), managed (created by mt-worktree) and changes (as in git status --porcelain).
rm NAME [--force] [--keep-branch]\tRemove the worktree and delete its branch, only if it is clean, its agent is not running, it is not locked, and the branch has no commit outside the base. Otherwise exit 1 and list every reason: the files, the number of commits. --keep-branch keeps the branch, so its commits no longer block. --force removes anyway and reports on standard error each check it overrode and how to recover deleted commits. Without a worktree, rm NAME deletes the branch left by rm --keep-branch under the same rule.
gc [--dry-run] [--min-age DURATION]\tPrune the metadata of worktrees whose directory is gone, remove every managed worktree that rm would remove without --force, delete merged mt branches that no worktree has checked out, and print one line per worktree or mt branch: removed, pruned, deleted branch, kept or kept branch, with the reason. --dry-run changes nothing and prints the same lines, with would remove, would prune and would delete branch. --min-age keeps worktrees with git activity more recent than DURATION.",
            ),
            (
                "FILES",
                "Worktrees go to <parent>/<checkout>.worktrees/NAME, beside the main checkout (<parent>/<checkout>); MT_WORKTREES or --worktrees names another directory, --path one worktree's exact place. A sibling directory, rather than one inside the checkout or inside .git, never shows up in git status without any ignore rule, has no .git path component (which editors, search tools and Claude Code treat specially), cannot be deleted along with the state directory, and stays on the repository's filesystem in plain sight.

The base of each branch is recorded in the repository config as branch.<branch>.mtbase (a full ref name, or a commit id when the base was not a ref), and the worktree it belongs to as branch.<branch>.mtworktree. Branches with mtbase are mt branches; gc only ever deletes those, and only worktrees on them. Deleting a branch deletes its config section too.

<git common dir>/mt/worktree.lock serialises mt-worktree runs on one repository.",
            ),
            (
                "EXAMPLES",
                "Give the agent park a worktree and start there:
  $ cd \"$(mt-worktree add park)\"

Branch from another base, in another repository:
  $ mt-worktree --repo ~/src/api add york --base origin/main

What is unmerged, and where agents are still running:
  $ mt-worktree list --json | jq -r 'select(.merged | not) | \"\\(.name) \\(.ahead)\"'

Remove a finished worktree but keep its branch for review:
  $ mt-worktree rm park --keep-branch

See what gc would do, then do it (a watcher rule might run the second line):
  $ mt-worktree gc --dry-run
  $ mt-worktree gc --min-age 10m",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\trm refused: uncommitted changes, untracked files, commits not in the base, a running agent or a lock (the message says which); or there is no worktree of that name
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            ("SEE ALSO", "git-worktree(1), mt-spawn(1), mt-watch(1), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let repo = args.repo.clone();
    let dir = args.common.dir.clone();
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.cmd {
        Cmd::Add {
            name,
            base,
            branch,
            path,
            worktrees,
            force,
        } => {
            let wt = worktree::add(&AddOptions {
                repo,
                name,
                base,
                branch,
                path,
                root: worktrees,
                force,
            })?;
            writeln!(out, "{}", wt.path.display())?;
        }
        Cmd::List { json } => {
            let rows = worktree::list(repo.as_deref(), dir.as_deref())?;
            if json {
                for r in &rows {
                    serde_json::to_writer(&mut out, r)?;
                    out.write_all(b"\n")?;
                }
            } else {
                print_table(&mut out, &rows)?;
            }
        }
        Cmd::Rm {
            name,
            force,
            keep_branch,
        } => {
            let r = worktree::rm(&RmOptions {
                repo,
                dir,
                name,
                force,
                keep_branch,
            })?;
            // --force is loud: every overridden safety check, on stderr.
            for b in &r.forced {
                eprintln!("mt-worktree: --force: removing {} although {b}", r.name);
            }
            if let Some(p) = &r.path {
                writeln!(out, "removed worktree {} ({})", r.name, p.display())?;
            }
            if let Some((b, tip)) = &r.deleted_branch {
                writeln!(out, "deleted branch {b} (was {tip})")?;
                if r.forced
                    .iter()
                    .any(|f| matches!(f, worktree::Blocker::Commits { .. }))
                {
                    eprintln!("mt-worktree: --force: to recover the commits: git branch {b} {tip}");
                }
            }
            if let Some((b, why)) = &r.kept_branch {
                writeln!(out, "kept branch {b} ({why})")?;
            }
            for n in &r.notes {
                eprintln!("mt-worktree: {n}");
            }
        }
        Cmd::Gc { dry_run, min_age } => {
            let items = worktree::gc(&GcOptions {
                repo,
                dir,
                dry_run,
                min_age,
            })?;
            for it in &items {
                let verb = match (it.action, dry_run) {
                    (GcAction::Pruned, false) => "pruned",
                    (GcAction::Pruned, true) => "would prune",
                    (GcAction::Removed, false) => "removed",
                    (GcAction::Removed, true) => "would remove",
                    (GcAction::DeletedBranch, false) => "deleted branch",
                    (GcAction::DeletedBranch, true) => "would delete branch",
                    (GcAction::Kept, _) => "kept",
                    (GcAction::KeptBranch, _) => "kept branch",
                };
                write!(out, "{verb} {}", it.name)?;
                if let Some(p) = &it.path {
                    write!(out, " ({})", p.display())?;
                }
                writeln!(out, ": {}", it.why)?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

fn print_table(out: &mut impl Write, rows: &[worktree::Status]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.branch.clone().unwrap_or_else(|| "(detached)".into()),
                r.head
                    .as_deref()
                    .map(|h| h[..h.len().min(10)].to_string())
                    .unwrap_or("-".into()),
                r.base.as_deref().map(short_ref).unwrap_or("-".into()),
                r.ahead.map(|a| a.to_string()).unwrap_or("?".into()),
                if r.missing {
                    "missing".into()
                } else if r.dirty {
                    format!("dirty({})", r.changes.len())
                } else {
                    "clean".into()
                },
                if r.merged { "merged" } else { "-" }.into(),
                if r.running { "running" } else { "-" }.into(),
                if r.locked { "locked" } else { "-" }.into(),
            ]
        })
        .collect();
    let head = [
        "NAME", "BRANCH", "HEAD", "BASE", "AHEAD", "STATE", "MERGED", "AGENT", "LOCKED",
    ];
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |out: &mut dyn Write, c: &[&str], path: &str| -> io::Result<()> {
        for (i, s) in c.iter().enumerate() {
            write!(out, "{s:<width$}  ", width = w[i])?;
        }
        writeln!(out, "{path}")
    };
    line(out, &head, "PATH")?;
    for (c, r) in cells.iter().zip(rows) {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        line(out, &refs, &r.path.display().to_string())?;
    }
    Ok(())
}
