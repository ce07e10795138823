//! mt-watch: run commands on a schedule or when watched files change.

use anyhow::Result;
use clap::Parser;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::{Common, Tool};
use crate::exit::{CANTCREAT, NO, fail};
use crate::infra::fsutil;
use crate::names;
use crate::statedir::StateDir;
use crate::watch::engine::{self, Options};

/// What `--init` writes: the example shipped in share/examples/rules.
pub const DEFAULT_RULES: &str = include_str!("../../share/examples/rules");

/// Run commands on a schedule or when files change
///
/// Reads a rules file and runs each rule's shell command on an interval, on
/// a cron schedule, or when a file, directory, channel or task list
/// changes. File notifications only wake the watcher: a cheap rescan of
/// sizes, mtimes and inodes decides what changed, and a periodic rescan
/// catches what notifications missed. One watcher runs per state directory,
/// and a rule is never started while its previous run is still going.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Rules file (default: the settings' rules, else <state dir>/watch/rules)
    #[arg(long, env = "MT_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Run the rules that are due now, wait for them, and exit (for cron and
    /// systemd timers)
    #[arg(long)]
    pub once: bool,

    /// Print which rules are due and why; run nothing, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Write a commented default rules file and exit; an existing file is
    /// never overwritten
    #[arg(long, conflicts_with_all = ["once", "dry_run"])]
    pub init: bool,

    /// Rescan everything watched this often, whatever notifications say
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_rescan)]
    pub rescan: Duration,

    /// Use no file notifications: changes are seen at the next rescan
    #[arg(long)]
    pub no_notify: bool,

    #[command(flatten)]
    pub channel: super::ChannelArg,

    #[command(flatten)]
    pub common: Common,
}

fn parse_rescan(s: &str) -> Result<Duration, String> {
    let d = crate::infra::time::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) {
        return Err("the rescan period must be at least 10ms".into());
    }
    Ok(d)
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-watch",
        &[
            (
                "RULES FILE",
                "One rule per line; blank lines and lines starting with # are ignored. A rule is an optional name, a trigger, and a shell command (the rest of the line):
  [name=NAME]  TRIGGER  COMMAND

@every DURATION\truns the command at start and then every DURATION (500ms, 30s, 10m, 2h, 1d), counted from the start of the previous run.
MIN HOUR DOM MON DOW\ta five-field cron schedule in local time, as in crontab(5), also with names (MON, JAN), ranges, lists and steps; @hourly, @daily, @weekly, @monthly and @yearly are short forms. A rule first seen waits for its next slot; slots missed while no watcher ran are caught up by one run.
@change channel:NAME\truns when a record is added to the channel.
@change tasks\truns when a task file of the Claude Code task list changes: $CLAUDE_CODE_TASK_LIST_ID, else the state directory's list mt-PROJECT (see mt-task(1)) (under $CLAUDE_CONFIG_DIR/tasks, ~/.claude/tasks when unset); @change tasks:LIST names the list.
@change PATH\truns when the file changes, or when an entry of the directory is added, removed or changed (direct entries only; a subdirectory counts by name). A relative PATH starts at the top of the repository. PATH may not exist yet. Paths inside the watcher's own directory are refused.

A change rule also runs the first time the watcher sees it, and after a change made while no watcher ran: each run remembers the fingerprint (sizes, mtimes, inodes) it was started for, in watch/state.json. A change that happens during a run makes the rule run once more when it ends. A command that changes what its own rule watches therefore runs once more.

The name, 1 to 64 characters of a-z 0-9 . _ - starting with a letter or digit, labels the rule in the log and in watch/state.json, and is given to the command as MT_RULE. Without name= a rule is named after its command's first word without a leading mt- (mt-reap gives reap), with .LINE appended when that name is taken. Editing a rule's trigger or command forgets its saved state.

A bad line is reported as FILE:LINE: problem, and nothing runs (exit 65). The watcher rereads the file when it changes and on SIGHUP; if the new file is bad, it says so in the log and on the channel, and keeps the old rules.

Commands run with sh -c, in their own process group, at the top of the repository around the current directory (the current directory outside a repository), with standard input from /dev/null and the environment of mt-watch plus:
MT_DIR\tthe state directory (absolute)
MT_CHANNEL\tthe channel of --channel
MT_RULE\tthe rule's name
MT_CHANGED\twhat changed: channel:NAME, tasks:LIST or the absolute path; empty for timer rules

A rule is never started while its previous run is still going: a timer slot that passes meanwhile is skipped and counted in watch/state.json (skipped); a change is kept and runs when the previous run ends. Each line of output goes to watch/log as TIME RULE: LINE, with the start and exit of every run. When a command fails (exit status other than 0), an error record naming the rule, its exit status and its last lines of output is posted to the channel, once per streak of failures: the next record comes after the rule has succeeded again.",
            ),
            (
                "FILES",
                "watch/rules\tthe default rules file (mt-watch --init writes one)
watch/LOCK\tlocked by the running watcher; holds its pid
watch/state.json\tper rule: since (start of the timer period), fingerprint, last_start, last_end, last_exit, last_duration_ms, pid while running, runs, failures, skipped, fail_streak; replaced atomically
watch/log\tcommand output and watcher events; moved to log.1 past 4 MiB",
            ),
            (
                "EXAMPLES",
                "Start with the default rules, check what would run, then watch:
  $ mt-watch --init
  $ mt-watch --dry-run
  $ mt-watch &

Without a long-running process, let cron run what is due every minute:
  * * * * *  cd /path/to/repo && mt-watch --once

Follow what the rules do:
  $ tail -f \"$(git rev-parse --git-common-dir)/mt/watch/log\"

share/systemd, share/cron and share/launchd hold units for both ways.",
            ),
            (
                "EXIT STATUS",
                "0\tdone (--once, --dry-run, --init), or stopped by SIGTERM or SIGINT. Failing commands do not change it; see the log and the channel.
1\t--init: the rules file exists and was left alone
2\tusage error
65\ta bad rules file or channel name, or a state.json that does not parse
69\tno rules file, or no state directory
70\tinternal error
73\tcannot create or write a file (permissions, full disk)
75\tanother mt-watch holds the lock of this state directory. Also with --once, so a timer that fires while a long-running watcher works does nothing; the systemd unit counts 75 as success.",
            ),
            (
                "ENVIRONMENT",
                "CLAUDE_CODE_TASK_LIST_ID\tthe task list of @change tasks (default: mt-PROJECT, see mt-task(1))
CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)
MT_WATCH_NOW\tfor tests only: an RFC 3339 time the watcher takes as the current time when deciding what is due",
            ),
            (
                "SIGNALS",
                "SIGTERM, SIGINT\tstop starting commands, send SIGTERM to the running ones' process groups, wait for them, save the state and exit; a second signal sends SIGKILL
SIGHUP\treread the rules file",
            ),
            ("SEE ALSO", "mt-route(1), mt-reap(1), mt-dispatch(1), mt-remind(1), mt-worktree(1), mt-post(1), crontab(5), mt-files(5), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    names::check("channel", &args.channel.channel)?;
    let state = args.common.state()?;
    let rules = args.rules.clone().filter(|p| !p.as_os_str().is_empty());
    let rules = match rules {
        Some(p) => Some(p),
        None => crate::config::Settings::load()?.path("rules"),
    };
    let rules_path = match &rules {
        Some(p) => std::path::absolute(p)?,
        None => state.watch().join("rules"),
    };
    if args.init {
        return init(&state, &rules_path, rules.is_none());
    }
    engine::run(
        &state,
        Options {
            rules_path,
            once: args.once,
            dry_run: args.dry_run,
            rescan: args.rescan,
            notify: !args.no_notify,
            channel: args.channel.channel,
        },
    )
}

fn init(state: &StateDir, path: &Path, in_state_dir: bool) -> Result<u8> {
    if in_state_dir {
        state.ensure()?;
        fsutil::ensure_subdir(&state.watch())?;
    }
    let file = fsutil::options().write(true).create_new(true).open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(fail(
                NO,
                format!("{} already exists; leaving it alone", path.display()),
            ));
        }
        Err(e) => {
            return Err(fail(
                CANTCREAT,
                format!("cannot create {}: {e}", path.display()),
            ));
        }
    };
    file.write_all(DEFAULT_RULES.as_bytes())
        .map_err(|e| fail(CANTCREAT, format!("cannot write {}: {e}", path.display())))?;
    println!("{}", path.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_parse() {
        let state = StateDir::at("/nonexistent");
        let ctx = crate::watch::rules::Context {
            state: &state,
            base: Path::new("/"),
            // As the watcher gives it: tasks::list_name never fails with a
            // state directory.
            task_list: crate::tasks::list_name(None, Some(&state)).ok(),
        };
        let rules = crate::watch::parse_rules(DEFAULT_RULES, Path::new("rules"), &ctx).unwrap();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "route",
                "reap",
                "dispatch",
                "remind",
                "tasks-done",
                "pr",
                "gc"
            ]
        );
    }
}
