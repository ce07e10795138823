//! mt-mail: send and read Claude Code agent-teams messages, and manage the
//! members of a team.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Tool;
use crate::exit::{DATAERR, NO, OK, USAGE, fail};
use crate::mailbox::{Mailbox, MemberUpdate, NewMessage};

/// Send and read Claude Code agent-teams messages
///
/// Each agent of a Claude Code team has an inbox file,
/// teams/TEAM/inboxes/AGENT.json under Claude Code's directory. mt-mail
/// appends to it and reads it with the same lock directory Claude Code uses,
/// so messages written at the same time by mt and by Claude Code are all
/// kept. It also adds members to the team's config.json and lists them.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Team name
    #[arg(long, env = "MT_TEAM", value_name = "TEAM", global = true)]
    pub team: Option<String>,

    #[command(flatten)]
    pub claude: ClaudeArgs,
}

/// Options for tools that write in Claude Code's directory.
#[derive(Debug, Clone, clap::Args)]
pub struct ClaudeArgs {
    /// Claude Code's directory (default: ~/.claude)
    #[arg(long, env = "CLAUDE_CONFIG_DIR", value_name = "DIR", global = true)]
    pub claude_dir: Option<PathBuf>,

    /// Longest wait for a lock held by another writer, then exit 75
    #[arg(long, env = "MT_LOCK_WAIT", value_name = "DURATION", default_value = "5s",
          value_parser = parse_wait, global = true)]
    pub wait: Duration,
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    crate::infra::time::parse_duration(s).map_err(|e| e.to_string())
}

impl ClaudeArgs {
    /// Claude Code's directory: --claude-dir, $CLAUDE_CONFIG_DIR, ~/.claude.
    pub fn dir(&self) -> Result<PathBuf> {
        match self
            .claude_dir
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(p) => Ok(p.clone()),
            None => crate::statedir::claude_config_dir(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Append a message to an agent's inbox
    ///
    /// The message is the arguments joined by single spaces; with none, all
    /// of standard input (one trailing newline dropped).
    Send(SendArgs),
    /// Print the messages of an inbox
    Read(ReadArgs),
    /// Add a member to the team's config, or update the member of that name
    Member(MemberArgs),
    /// List the members of the team
    Members(MembersArgs),
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Recipient (the inbox to append to)
    #[arg(long, value_name = "AGENT")]
    pub to: String,

    /// Sender name, which is where a reply goes
    #[arg(long, env = "MT_AGENT", default_value = "lead", value_name = "NAME")]
    pub from: String,

    /// A short preview of the message (5 to 10 words)
    #[arg(long, value_name = "TEXT")]
    pub summary: Option<String>,

    /// Color the recipient shows the sender in (blue, green, …)
    #[arg(long, value_name = "COLOR")]
    pub color: Option<String>,

    /// Print the stored message as one JSON line
    #[arg(long)]
    pub json: bool,

    /// The message; standard input when absent
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Whose inbox to read
    #[arg(long = "as", env = "MT_AGENT", value_name = "AGENT")]
    pub agent: Option<String>,

    /// Only messages not yet marked read
    #[arg(long)]
    pub unread: bool,

    /// Mark the printed messages read (under the inbox lock, after printing)
    #[arg(long, conflicts_with = "quiet")]
    pub mark_read: bool,

    /// Print messages exactly as stored, one JSON object per line
    #[arg(long)]
    pub json: bool,

    /// Print nothing; exit 0 when a message is selected, 1 when none is
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// Member name (its agentId becomes NAME@TEAM)
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Agent type (general-purpose for a new member unless given)
    #[arg(long, value_name = "TYPE")]
    pub agent_type: Option<String>,

    /// Model
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// Color
    #[arg(long, value_name = "COLOR")]
    pub color: Option<String>,

    /// Working directory
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,

    /// Print the stored member as one JSON line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// One JSON object per member, exactly as stored
    #[arg(long)]
    pub json: bool,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-mail",
        &[
            (
                "COMMANDS",
                "send --to AGENT [--from NAME] [--summary TEXT] [--color COLOR] [--json] [TEXT...]\tAppend one message to AGENT's inbox. The message is TEXT joined by spaces, or all of standard input. --from (default $MT_AGENT, else lead) is the name a reply goes to; --summary is a short preview; --json prints the stored message.
read [--as AGENT] [--unread] [--mark-read] [--json] [-q]\tPrint the messages of AGENT's inbox (default $MT_AGENT), oldest first; unread ones are marked with *. --unread selects the unread ones; --mark-read marks what was printed as read, under the inbox lock and only once it is printed; -q prints nothing and exits 0 when a message is selected, 1 when none is. Without --mark-read nothing is locked or written.
member NAME [--agent-type TYPE] [--model MODEL] [--color COLOR] [--cwd DIR] [--json]\tAdd NAME to the team's config.json (agentId NAME@TEAM), or update the given fields of the member of that name; other fields are kept. A missing config is created.
members [--json]\tList the team's members: name, agent type, model, color, working directory; with --json, each as stored.",
            ),
            (
                "EXAMPLES",
                "Tell a teammate of team demo about a review, then read the answers:
  $ mt-mail send --team demo --to york --summary 'parser review' 'please review the parser'
  $ mt-mail read --team demo --as lead --unread --mark-read

Send a build log from standard input:
  $ make 2>&1 | mt-mail send --team demo --to york

Register a member, list the team:
  $ mt-mail member --team demo york --model sonnet --color blue
  $ mt-mail members --team demo --json | jq -r .name

In a script, act only when something is unread:
  $ mt-mail read --team demo --as lead --unread -q && echo 'new mail'",
            ),
            (
                "FILES",
                "$CLAUDE_CONFIG_DIR/teams/TEAM/inboxes/AGENT.json\tthe inbox: a JSON array of {from, text, timestamp, read, color, summary}, written as JSON.stringify(list, null, 2)
AGENT.json.lock/\tthe lock directory held by whoever writes the inbox (mt or Claude Code); older than 10 s, it is stale and is broken
AGENT.json.corrupt-TIME\tan inbox that did not parse, moved aside by the next change so that nothing in it is lost
$CLAUDE_CONFIG_DIR/teams/TEAM/config.json\tthe team config and its members

Team and agent names are 1 to 128 characters of A-Z a-z 0-9 _ -: the names Claude Code uses unchanged as file names. Others are refused, with the name Claude Code would use.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess; with read -q, a message is selected
1\twith read -q, no message is selected
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_FSYNC\t0 skips syncing replaced files",
            ),
            ("SEE ALSO", "mt-task(1), mt-post(1), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    let Some(team) = args.team.clone().filter(|t| !t.is_empty()) else {
        return Err(fail(USAGE, "no team: give --team TEAM or set MT_TEAM"));
    };
    let mb = Mailbox::new(args.claude.dir()?).with_wait(args.claude.wait);
    match args.cmd {
        Cmd::Send(a) => send(&mb, &team, a),
        Cmd::Read(a) => read(&mb, &team, a),
        Cmd::Member(a) => member(&mb, &team, a),
        Cmd::Members(a) => members(&mb, &team, a),
    }
}

fn read_stdin() -> Result<String> {
    let mut buf = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    String::from_utf8(buf).map_err(|_| fail(DATAERR, "standard input is not valid UTF-8"))
}

fn warn_quarantine(q: &Option<PathBuf>, path: &std::path::Path) {
    if let Some(q) = q {
        eprintln!(
            "mt-mail: warning: inbox {} did not parse; moved it to {} (nothing in it was lost) and started a new inbox",
            path.display(),
            q.display()
        );
    }
}

fn send(mb: &Mailbox, team: &str, a: SendArgs) -> Result<u8> {
    let text = if a.text.is_empty() {
        let mut s = read_stdin()?;
        if s.ends_with('\n') {
            s.pop();
        }
        s
    } else {
        a.text.join(" ")
    };
    let msg = NewMessage {
        from: a.from,
        text,
        summary: a.summary,
        color: a.color,
    };
    let path = mb.inbox_path(team, &a.to)?;
    let (out, entry) = mb.send(team, &a.to, &msg)?;
    warn_quarantine(&out.quarantined, &path);
    if a.json {
        println!("{entry}");
    }
    Ok(OK)
}

fn render(e: &Value, out: &mut impl Write) -> io::Result<()> {
    // Anyone may write an inbox: nothing in it may drive the terminal.
    let p = crate::names::printable;
    if !e.is_object() {
        return writeln!(out, "? {}", p(&e.to_string()));
    }
    let mark = if is_unread(e) { '*' } else { ' ' };
    let ts = p(e["timestamp"].as_str().unwrap_or("-"));
    let from = p(e["from"].as_str().unwrap_or("?"));
    let text = p(e["text"].as_str().unwrap_or(""));
    let mut lines = text.lines();
    writeln!(out, "{mark} {ts} {from}: {}", lines.next().unwrap_or(""))?;
    for l in lines {
        writeln!(out, "    {l}")?;
    }
    Ok(())
}

fn is_unread(e: &Value) -> bool {
    e.is_object() && e["read"] != true
}

fn read(mb: &Mailbox, team: &str, a: ReadArgs) -> Result<u8> {
    let Some(agent) = a.agent.clone().filter(|s| !s.is_empty()) else {
        return Err(fail(USAGE, "whose inbox? give --as AGENT or set MT_AGENT"));
    };
    let path = mb.inbox_path(team, &agent)?;
    let select = |e: &Value| !a.unread || is_unread(e);
    let print = |picked: &[&Value]| -> Result<()> {
        let mut out = BufWriter::new(io::stdout().lock());
        for e in picked {
            if a.json {
                writeln!(out, "{e}")?;
            } else {
                render(e, &mut out)?;
            }
        }
        out.flush()?;
        Ok(())
    };
    if a.mark_read {
        let (out, _) = mb.take(team, &agent, select, print)?;
        warn_quarantine(&out.quarantined, &path);
        return Ok(OK);
    }
    let list = mb.read(team, &agent)?;
    let picked: Vec<&Value> = list.iter().filter(|e| select(e)).collect();
    if a.quiet {
        return Ok(if picked.is_empty() { NO } else { OK });
    }
    print(&picked)?;
    Ok(OK)
}

fn member(mb: &Mailbox, team: &str, a: MemberArgs) -> Result<u8> {
    for (what, v) in [
        ("agent type", &a.agent_type),
        ("model", &a.model),
        ("color", &a.color),
        ("cwd", &a.cwd),
    ] {
        if let Some(v) = v
            && v.chars().any(char::is_control)
        {
            return Err(fail(
                DATAERR,
                format!("the {what} must be one line of text"),
            ));
        }
    }
    let up = MemberUpdate {
        name: a.name.clone(),
        agent_type: a.agent_type,
        model: a.model,
        color: a.color,
        cwd: a.cwd,
    };
    let (entry, created) = mb.upsert_member(team, &up)?;
    if a.json {
        println!("{entry}");
    } else {
        let verb = if created { "added" } else { "updated" };
        println!("{verb} {} in team {team}", a.name);
    }
    Ok(OK)
}

fn members(mb: &Mailbox, team: &str, a: MembersArgs) -> Result<u8> {
    let list = mb.members(team)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for m in &list {
        if a.json {
            writeln!(out, "{m}")?;
        } else {
            writeln!(out, "{}", member_line(m))?;
        }
    }
    out.flush()?;
    Ok(OK)
}

fn member_line(m: &Value) -> String {
    let f = |k: &str| {
        crate::names::printable(m[k].as_str().filter(|s| !s.is_empty()).unwrap_or("-")).into_owned()
    };
    format!(
        "{:<20} {:<18} {:<10} {:<8} {}",
        f("name"),
        f("agentType"),
        f("model"),
        f("color"),
        f("cwd")
    )
}
