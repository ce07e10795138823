//! mt-task: Claude Code's shared task list from the shell.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use super::mail::ClaudeArgs;
use super::{Common, Tool};
use crate::channel::{self, Draft};
use crate::exit::{NO, OK, USAGE, fail};
use crate::names;
use crate::tasks::{self, Claim, Listing, NewTask, Status, Task, TaskList, TaskUpdate};

/// Create, list, claim and complete tasks of a Claude Code task list
///
/// The task list is the directory tasks/LIST/ under Claude Code's directory,
/// shared by every Claude Code session started with
/// CLAUDE_CODE_TASK_LIST_ID=LIST. mt-task uses the same files and the same
/// locks, so claiming is atomic against other mt-task processes and against
/// Claude Code's own task tools.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Task list (default: $CLAUDE_CODE_TASK_LIST_ID, else mt-PROJECT, see
    /// TASK LIST)
    #[arg(
        long,
        env = "CLAUDE_CODE_TASK_LIST_ID",
        value_name = "LIST",
        global = true
    )]
    pub list: Option<String>,

    #[command(flatten)]
    pub claude: ClaudeArgs,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a task and print its id
    Create(CreateArgs),
    /// List tasks, in id order
    List(ListArgs),
    /// Show one task
    Show(ShowArgs),
    /// Claim a task: a pending task with no owner and no open blocker becomes yours and in_progress
    Claim(ClaimArgs),
    /// Mark a task completed
    Done(DoneArgs),
    /// Change a task's fields
    Update(UpdateArgs),
    /// Delete a task and remove its id from other tasks' blocks and blockedBy
    Delete(DeleteArgs),
}

/// Posting an action record about a change to an mt channel.
#[derive(Debug, clap::Args)]
pub struct Announce {
    /// Also post an action record about it to an mt channel
    #[arg(long)]
    pub announce: bool,

    /// Channel for --announce
    #[arg(
        long,
        env = "MT_CHANNEL",
        default_value = "general",
        value_name = "NAME"
    )]
    pub channel: String,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What is to be done (the words are joined by spaces)
    #[arg(value_name = "SUBJECT", required = true)]
    pub subject: Vec<String>,

    /// Longer description
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,

    /// Ids of tasks that must be completed first, comma separated
    #[arg(long, value_name = "ID,…", value_delimiter = ',')]
    pub blocked_by: Vec<String>,

    /// Assign the task (it stays pending until claimed)
    #[arg(long, value_name = "AGENT")]
    pub owner: Option<String>,

    /// Present-tense form shown while the task runs ("Writing the parser")
    #[arg(long, value_name = "TEXT")]
    pub active_form: Option<String>,

    /// Who creates it, for --announce
    #[arg(
        long = "as",
        env = "MT_AGENT",
        default_value = "lead",
        value_name = "NAME"
    )]
    pub by: String,

    /// Print the new task as one JSON line instead of its id
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub announce: Announce,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only tasks with this status
    #[arg(long, value_name = "STATUS", value_parser = ["pending", "in_progress", "completed"])]
    pub status: Option<String>,

    /// Only tasks anyone may claim now: pending, no owner, no open blocker
    #[arg(long)]
    pub available: bool,

    /// Only tasks of this owner
    #[arg(long, value_name = "AGENT")]
    pub owner: Option<String>,

    /// One JSON object per task, exactly as stored
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// The task as one JSON line, exactly as stored
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ClaimArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// Who claims it
    #[arg(long = "as", env = "MT_AGENT", value_name = "AGENT")]
    pub owner: Option<String>,

    /// Print the claimed task as one JSON line
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub announce: Announce,
}

#[derive(Debug, clap::Args)]
pub struct DoneArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// Who completes it, for --announce
    #[arg(
        long = "as",
        env = "MT_AGENT",
        default_value = "lead",
        value_name = "NAME"
    )]
    pub by: String,

    #[command(flatten)]
    pub announce: Announce,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// New status
    #[arg(long, value_name = "STATUS", value_parser = ["pending", "in_progress", "completed"])]
    pub status: Option<String>,

    /// New owner; an empty value removes the owner
    #[arg(long, value_name = "AGENT")]
    pub owner: Option<String>,

    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,

    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    #[arg(long, value_name = "TEXT")]
    pub active_form: Option<String>,

    /// Print the task as one JSON line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[arg(value_name = "ID")]
    pub id: String,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-task",
        &[
            (
                "COMMANDS",
                "create SUBJECT... [--description TEXT] [--blocked-by ID,...] [--owner AGENT] [--active-form TEXT] [--json] [--announce]\tCreate a pending task and print its id. Each blocker must exist; its blocks list gains the new id.
list [--status STATUS] [--available] [--owner AGENT] [--json]\tList tasks in id order: id, status, owner, subject and open blockers. --available keeps tasks anyone may claim now: pending, no owner, no open blocker. Files that do not parse are skipped with a warning.
show ID [--json]\tShow one task; --json prints it exactly as stored.
claim ID [--as AGENT] [--json] [--announce]\tUnder the list lock, make a pending task with no owner (or owned by AGENT) and no open blocker AGENT's and in_progress. Otherwise exit 1 saying why: claimed by whom, completed, blocked by which tasks, missing. Claiming again a task one already has succeeds.
done ID [--announce]\tMark a task completed; tasks it blocked may become available.
update ID [--status STATUS] [--owner AGENT] [--subject TEXT] [--description TEXT] [--active-form TEXT] [--json]\tChange the given fields and keep the others. --owner '' removes the owner.
delete ID\tDelete a task and remove its id from the blocks and blockedBy of the others. Its id is not given out again.

--announce posts an action record (\"claimed task 3: ...\") to the mt channel --channel (default $MT_CHANNEL, else general), as --as or $MT_AGENT. If that fails, the change stands and a warning is printed.",
            ),
            (
                "EXAMPLES",
                "Plan two tasks, the second waiting for the first:
  $ export CLAUDE_CODE_TASK_LIST_ID=demo
  $ a=$(mt-task create 'Write the parser')
  $ mt-task create 'Review the parser' --blocked-by $a

An agent takes the next available task and announces it:
  $ id=$(mt-task list --available --json | head -n1 | jq -r .id)
  $ mt-task claim \"$id\" --as york --announce && echo \"working on $id\"

Finish it:
  $ mt-task done \"$id\" --as york --announce",
            ),
            (
                "FILES",
                "$CLAUDE_CONFIG_DIR/tasks/LIST/ID.json\tone task, pretty-printed JSON: id, subject, description, activeForm, owner, status, blocks, blockedBy, metadata; fields mt does not know are kept
.highwatermark\tthe largest id ever assigned; a new id is one more than both it and the largest ID.json
.lock, .lock.lock/\tthe list lock directory (mkdir; stale after 10 s)
ID.json.lock/\tthe lock directory of one task

A task is blocked while a task in its blockedBy is not completed (a missing one counts as not completed). A task file that does not parse is skipped with a warning and never rewritten. List names are 1 to 128 characters of A-Z a-z 0-9 _ -; ids are whole numbers from 1.",
            ),
            ("TASK LIST", TASK_LIST_DEFAULT),
            (
                "SEVERAL HOSTS",
                "In a repository that syncs with other hosts (mt-sync(1) has run), claim asks the remote: the claim is judged on the remote's version of the task and made with a compare-and-swap of the task's ref, and only a claim the remote took is answered with success; another host's claim that got there first is refused, naming the owner and the host. Without the remote there is no claim (exit 75 or 69). Other changes are published by the next exchange.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tclaim refused (the reason is printed: claimed, completed, blocked, missing), or no such task
2\tusage error, or no task list (none named and no state directory)
75\tclaim: the remote did not answer (several hosts)",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_FSYNC\t0 skips syncing replaced files",
            ),
            ("SEE ALSO", "mt-mail(1), mt-post(1), mt-sync(1), mt(7)"),
        ],
    )
}

/// How every mt tool picks its task list; shared by the man pages.
pub const TASK_LIST_DEFAULT: &str = "The task list is --list, else $CLAUDE_CODE_TASK_LIST_ID, else mt-PROJECT, where PROJECT is the name of the directory holding the state directory, skipping .git: for the state directory REPO/.git/mt of a repository REPO, the list is mt-REPO, shared by all its worktrees (characters other than A-Z a-z 0-9 _ - become -). mt-task, mt-sling, mt-dispatch, mt-remind, mt-reap and the @change tasks rules of mt-watch all use this rule; agents started by mt-sling and mt-dispatch get the list as CLAUDE_CODE_TASK_LIST_ID.";

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let name = tasks::list_name(args.list.as_deref(), args.common.state().ok().as_ref())?;
    let list = TaskList::new(&args.claude.dir()?, &name)?.with_wait(args.claude.wait);
    let ctx = Ctx {
        list,
        common: args.common,
    };
    match args.cmd {
        Cmd::Create(a) => ctx.create(a),
        Cmd::List(a) => ctx.ls(a),
        Cmd::Show(a) => ctx.show(a),
        Cmd::Claim(a) => ctx.claim(a),
        Cmd::Done(a) => ctx.done(a),
        Cmd::Update(a) => ctx.update(a),
        Cmd::Delete(a) => ctx.delete(a),
    }
}

struct Ctx {
    list: TaskList,
    common: Common,
}

fn warn_skipped(l: &Listing) {
    for s in &l.skipped {
        eprintln!("mt-task: warning: {s}");
    }
}

impl Ctx {
    fn create(&self, a: CreateArgs) -> Result<u8> {
        let blocked_by = a
            .blocked_by
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| tasks::parse_id(s))
            .collect::<Result<Vec<_>>>()?;
        if a.announce.announce {
            names::check("sender", &a.by)?;
            names::check("channel", &a.announce.channel)?;
        }
        let new = NewTask {
            subject: a.subject.join(" "),
            description: a.description,
            active_form: a.active_form,
            owner: a.owner,
            blocked_by,
            metadata: None,
        };
        let t = self.list.create(&new)?;
        if a.json {
            println!("{}", t.to_json());
        } else {
            println!("{}", t.id);
        }
        self.announce(&a.announce, &a.by, "created", &t);
        Ok(OK)
    }

    fn ls(&self, a: ListArgs) -> Result<u8> {
        if let Some(o) = &a.owner {
            names::check_claude("owner", o)?;
        }
        let l = self.list.list()?;
        warn_skipped(&l);
        let mut out = BufWriter::new(io::stdout().lock());
        for t in &l.tasks {
            if a.status.as_deref().is_some_and(|s| s != t.status_str())
                || (a.available && !l.is_available(t))
                || a.owner.as_deref().is_some_and(|o| t.owner() != Some(o))
            {
                continue;
            }
            if a.json {
                writeln!(out, "{}", t.to_json())?;
            } else {
                writeln!(out, "{}", line(t, &l))?;
            }
        }
        out.flush()?;
        Ok(OK)
    }

    fn show(&self, a: ShowArgs) -> Result<u8> {
        let id = tasks::parse_id(&a.id)?;
        let t = self.list.get(id)?;
        if a.json {
            println!("{}", t.to_json());
            return Ok(OK);
        }
        let mut out = BufWriter::new(io::stdout().lock());
        // Task files are shared: nothing in them may drive the terminal.
        let p = names::printable;
        writeln!(out, "id:          {}", t.id)?;
        writeln!(out, "subject:     {}", p(t.subject()))?;
        writeln!(out, "status:      {}", p(t.status_str()))?;
        writeln!(out, "owner:       {}", p(t.owner().unwrap_or("-")))?;
        if let Some(f) = t.active_form() {
            writeln!(out, "active form: {}", p(f))?;
        }
        let ids = |v: Vec<u64>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            }
        };
        writeln!(out, "blocks:      {}", ids(t.blocks()))?;
        writeln!(out, "blocked by:  {}", ids(t.blocked_by()))?;
        if !t.blocked_by().is_empty() {
            let l = self.list.list()?;
            writeln!(out, "waiting for: {}", ids(l.open_blockers(&t)))?;
        }
        if !t.description().is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", p(t.description()))?;
        }
        out.flush()?;
        Ok(OK)
    }

    fn claim(&self, a: ClaimArgs) -> Result<u8> {
        let id = tasks::parse_id(&a.id)?;
        let Some(owner) = a.owner.filter(|s| !s.is_empty()) else {
            return Err(fail(
                USAGE,
                "who claims it? give --as AGENT or set MT_AGENT",
            ));
        };
        // Through the remote when this repository syncs with other hosts.
        let claimed = match self.common.state() {
            Ok(state) => crate::sync::tasks::claim(&state, &self.list, id, &owner)?,
            Err(_) => self.list.claim(id, &owner)?,
        };
        match claimed {
            Claim::Won(t) => {
                self.print_claimed(&t, a.json, "claimed");
                self.announce(&a.announce, &owner, "claimed", &t);
                Ok(OK)
            }
            Claim::AlreadyYours(t) => {
                self.print_claimed(&t, a.json, "already had");
                Ok(OK)
            }
            Claim::Refused(why) => Err(fail(
                NO,
                format!("cannot claim task {id} of list {}: {why}", self.list.name()),
            )),
        }
    }

    fn print_claimed(&self, t: &Task, json: bool, verb: &str) {
        if json {
            println!("{}", t.to_json());
        } else {
            println!("{verb} task {}: {}", t.id, names::printable(t.subject()));
        }
    }

    fn done(&self, a: DoneArgs) -> Result<u8> {
        let id = tasks::parse_id(&a.id)?;
        let t = self.list.complete(id)?;
        self.announce(&a.announce, &a.by, "completed", &t);
        Ok(OK)
    }

    fn update(&self, a: UpdateArgs) -> Result<u8> {
        let id = tasks::parse_id(&a.id)?;
        let u = TaskUpdate {
            status: a.status.as_deref().and_then(Status::parse),
            owner: a.owner,
            subject: a.subject,
            description: a.description,
            active_form: a.active_form,
        };
        let t = self.list.update(id, &u)?;
        if a.json {
            println!("{}", t.to_json());
        }
        Ok(OK)
    }

    fn delete(&self, a: DeleteArgs) -> Result<u8> {
        let id = tasks::parse_id(&a.id)?;
        let d = self.list.delete(id)?;
        for s in &d.skipped {
            eprintln!("mt-task: warning: {s}; it may still name task {id}");
        }
        if d.task.is_none() {
            eprintln!("mt-task: warning: task {id} did not parse; its file was deleted as asked");
        }
        Ok(OK)
    }

    /// Post an action record about `t`; a failure is a warning, since the
    /// change itself is done and must not be repeated.
    fn announce(&self, a: &Announce, from: &str, verb: &str, t: &Task) {
        if !a.announce {
            return;
        }
        let res = (|| -> Result<()> {
            names::check("sender", from)?;
            names::check("channel", &a.channel)?;
            let state = self.common.state()?;
            let draft = Draft {
                from: from.to_string(),
                kind: "action".into(),
                content: format!("{verb} task {}: {}", t.id, t.subject()),
                meta: Some(serde_json::json!({
                    "task": t.id.to_string(),
                    "list": self.list.name(),
                    "event": verb,
                })),
                ..Draft::default()
            };
            channel::post(&state, &a.channel, &draft)?;
            Ok(())
        })();
        if let Err(e) = res {
            eprintln!(
                "mt-task: warning: task {} was {verb}, but announcing it failed: {e:#}",
                t.id
            );
        }
    }
}

fn line(t: &Task, l: &Listing) -> String {
    let open = l.open_blockers(t);
    let blocked = if open.is_empty() || t.status() == Some(Status::Completed) {
        String::new()
    } else {
        let ids: Vec<String> = open.iter().map(u64::to_string).collect();
        format!("  [blocked by {}]", ids.join(","))
    };
    let p = names::printable;
    format!(
        "{:>4}  {:<11}  {:<16}  {}{blocked}",
        t.id,
        p(t.status_str()),
        p(t.owner().unwrap_or("-")),
        p(t.subject().lines().next().unwrap_or(""))
    )
}
