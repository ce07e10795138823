//! Routing @mentions: each new record of a channel reaches the agents it
//! names, read with a cursor of its own (reader `mt-route`), so a record is
//! routed once however often routing runs.
//!
//! For each name a record mentions (the sender excepted):
//! 1. an agent mt supervises (`agents/<name>/` with its meta, status or
//!    inbox) is nudged through its inbox: a running one at once, a stopped
//!    one by resuming it (or, without `resume`, the message waits in its
//!    inbox and that is reported). Never through a Claude Code team inbox:
//!    a headless session does not read one;
//! 2. else a member of the configured agent team gets the message in its
//!    Claude Code inbox (an interactive session);
//! 3. else a channel reader (the lead, or a name with a cursor) needs
//!    nothing: it reads the channel itself;
//! 4. else nobody of that name is known: a `system` record says so.
//!
//! `@all` reaches every running agent but the sender. Records posted by
//! mt-route itself are never routed.
//!
//! One pass over what is new: records are read in batches, each mention is
//! delivered as its record comes, and the cursor is saved after each batch,
//! under the reader's lock, once every mention in it was handled. The
//! batch's nudges are written without a sync each and made durable by one
//! syncfs(2) just before the cursor moves. A crash re-routes at most the
//! batch in flight (at-least-once, never lost). A
//! mention that cannot be delivered (its agent does not start, its inbox
//! cannot be written) is reported on stderr and, once per name and run, in
//! a `system` record; routing goes on with the next one.

use anyhow::{Context, Result};
use std::collections::BTreeSet;

use crate::agent::{self, AgentDir, Durability, Nudged};
use crate::channel::{self, Draft, Reader};
use crate::cursor;
use crate::exit::{self, Coded};
use crate::infra::fsutil;
use crate::mailbox::{Mailbox, NewMessage};
use crate::record::{self, View};
use crate::statedir::StateDir;

/// The reader name of mt-route's cursor, and the sender of its records.
pub const READER: &str = "mt-route";

/// At most this many records are routed between two saves of the cursor...
const BATCH_RECORDS: usize = 1024;
/// ...and at most about this many mentions, which bounds what a crash
/// delivers twice.
const BATCH_MENTIONS: usize = 128;

/// What a run should do.
#[derive(Debug, Clone)]
pub struct Options {
    pub channel: String,
    /// Resume a stopped agent that is mentioned.
    pub resume: bool,
    /// Claude Code agent team whose members get messages in their inboxes.
    pub team: Option<String>,
    /// Decide and report, deliver nothing, keep the cursor.
    pub dry_run: bool,
}

/// What happened to one mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A running agent was nudged.
    Nudged,
    /// A stopped agent was resumed with the message.
    Resumed,
    /// The message waits in a stopped agent's inbox; why it was not resumed.
    Waiting(String),
    /// Written to the inbox of a member of this team.
    Team(String),
    /// A reader of the channel: nothing to deliver.
    Reader,
    /// Nobody of that name; reported on the channel.
    Unknown,
    /// A coworker of another host (mt-sync's hosts.json).
    Elsewhere,
    /// Nobody of that name here, in a record from another host: that
    /// host reports it.
    UnknownHere,
    /// Delivery failed with this error; `reported` when this mention is the
    /// one reported on the channel for its name.
    Failed { error: String, reported: bool },
}

/// One routing action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub seq: u64,
    pub from: String,
    pub to: String,
    pub outcome: Outcome,
    pub dry_run: bool,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} {} -> {}: ", self.seq, self.from, self.to)?;
        match &self.outcome {
            Outcome::Nudged if self.dry_run => write!(f, "would nudge"),
            Outcome::Nudged => write!(f, "nudged"),
            Outcome::Resumed if self.dry_run => write!(f, "would resume"),
            Outcome::Resumed => write!(f, "resumed"),
            Outcome::Waiting(why) if self.dry_run => {
                write!(f, "{why}; would leave it in its inbox")
            }
            Outcome::Waiting(why) => write!(f, "{why}; left in its inbox"),
            Outcome::Team(t) if self.dry_run => write!(f, "would write to its inbox in team {t}"),
            Outcome::Team(t) => write!(f, "written to its inbox in team {t}"),
            Outcome::Reader => write!(f, "reads the channel itself"),
            Outcome::Elsewhere => write!(f, "a coworker on another host; mt-sync carries it"),
            Outcome::UnknownHere => write!(f, "unknown here; the record's own host reports it"),
            Outcome::Unknown if self.dry_run => write!(f, "unknown, would report"),
            Outcome::Unknown => write!(f, "unknown, reported"),
            Outcome::Failed { error, reported } => {
                write!(f, "failed: {error}")?;
                if *reported {
                    write!(f, "; reported")?;
                }
                Ok(())
            }
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// Mentions whose delivery failed.
    pub failed: u64,
    /// The exit status of the first failed delivery (never 0, 1 or 2).
    pub failure_code: Option<u8>,
}

/// One record, owned; only what routing needs.
struct Rec {
    seq: u64,
    from: String,
    content: String,
    mentions: Vec<String>,
    /// Written on another host (mt-sync): that host reports names it
    /// does not know, not this one.
    imported: bool,
}

impl Rec {
    fn of(v: &View<'_>) -> Rec {
        // mt-route's own reports are never routed: keep nothing of them.
        let mut mentions = Vec::new();
        if v.from != READER {
            mentions = v.mentions.clone();
            if mentions.is_empty() {
                mentions = record::mentions(&v.content);
            }
        }
        let content = match mentions.is_empty() {
            true => String::new(),
            false => v.content.to_string(),
        };
        Rec {
            seq: v.seq,
            from: v.from.to_string(),
            content,
            mentions,
            imported: v.origin.is_some(),
        }
    }
}

/// The text an agent gets: `[general #42] park: @york can you review?`.
pub fn compact(channel: &str, seq: u64, from: &str, content: &str) -> String {
    format!("[{channel} #{seq}] {from}: {content}")
}

/// Move the cursor past every record now in the channel, routing none (to
/// start routing a channel with a history from now on). Returns the seq
/// the cursor now stands at.
pub fn skip_existing(state: &StateDir, channel: &str) -> Result<u64> {
    crate::names::check("channel", channel)?;
    let _lock = cursor::lock_agent(state, READER)?;
    let end = channel::end_position(state, channel)?;
    cursor::save(state, READER, channel, end)?;
    Ok(end.seq)
}

/// Route every record added since the last run; `each` is told every
/// action as it is taken.
pub fn route(state: &StateDir, o: &Options, each: &mut dyn FnMut(&Action)) -> Result<Summary> {
    crate::names::check("channel", &o.channel)?;
    if !state.channel(&o.channel).is_dir() {
        return Ok(Summary::default());
    }
    let _lock = cursor::lock_agent(state, READER)?;
    let saved = cursor::load(state, READER, &o.channel)?.unwrap_or_default();
    let mut reader = Reader::resume(state, &o.channel, saved)?;
    let mut run = Run {
        state,
        o,
        team: TeamCache::new(o.team.clone()),
        running: None,
        failed: BTreeSet::new(),
        summary: Summary::default(),
        unsynced: false,
    };
    loop {
        let batch = next_batch(&mut reader)?;
        if batch.is_empty() {
            break;
        }
        // Who runs now, for @all, is looked up again for each batch.
        run.running = None;
        for rec in &batch {
            run.record(rec, each)?;
        }
        run.summary.records += batch.len() as u64;
        if !o.dry_run {
            if std::mem::take(&mut run.unsynced) {
                // The batch's nudges were written unsynced: one sync for all
                // of them before the cursor moves past their records.
                fsutil::sync_filesystem(state.root())
                    .with_context(|| format!("cannot sync {}", state.root().display()))
                    .code(exit::CANTCREAT)?;
            }
            cursor::save(state, READER, &o.channel, reader.position())?;
        }
    }
    Ok(run.summary)
}

/// The next records, up to a batch's worth, in order.
fn next_batch(reader: &mut Reader) -> Result<Vec<Rec>> {
    let mut batch = Vec::new();
    let mut mentions = 0;
    reader.read_available(&mut |it| {
        let rec = Rec::of(&it.view);
        mentions += rec.mentions.len();
        batch.push(rec);
        Ok(batch.len() < BATCH_RECORDS && mentions < BATCH_MENTIONS)
    })?;
    Ok(batch)
}

/// The state of one run.
struct Run<'a> {
    state: &'a StateDir,
    o: &'a Options,
    team: TeamCache,
    /// The running agents, for @all; `None` until needed.
    running: Option<Vec<String>>,
    /// Names whose delivery failed in this run.
    failed: BTreeSet<String>,
    summary: Summary,
    /// Nudges of the current batch were written without a sync.
    unsynced: bool,
}

impl Run<'_> {
    fn record(&mut self, rec: &Rec, each: &mut dyn FnMut(&Action)) -> Result<()> {
        if rec.mentions.is_empty() {
            return Ok(());
        }
        let text = compact(&self.o.channel, rec.seq, &rec.from, &rec.content);
        let mut unknown = Vec::new();
        for to in self.targets(rec)? {
            let mut outcome = match self.deliver(&to, &rec.from, &text) {
                Ok(o) => o,
                Err(e) => self.failed(rec, &to, &e)?,
            };
            if outcome == Outcome::Unknown {
                // A coworker on another host gets it there (mt-sync
                // carries the record); an imported record's unknown names
                // are its own host's to report.
                if crate::sync::state::is_remote_agent(self.state, &to) {
                    outcome = Outcome::Elsewhere;
                } else if rec.imported {
                    outcome = Outcome::UnknownHere;
                } else {
                    unknown.push(to.clone());
                }
            }
            each(&Action {
                seq: rec.seq,
                from: rec.from.clone(),
                to,
                outcome,
                dry_run: self.o.dry_run,
            });
        }
        if !unknown.is_empty() && !self.o.dry_run {
            report_unknown(self.state, self.o, rec, &unknown)?;
        }
        Ok(())
    }

    /// The names a record reaches, in order, without the sender: `@all`
    /// stands for every running agent.
    fn targets(&mut self, rec: &Rec) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        for m in &rec.mentions {
            let names = match m.as_str() {
                "all" => self.running()?.to_vec(),
                _ => vec![m.clone()],
            };
            for n in names {
                if n != rec.from && seen.insert(n.clone()) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    fn running(&mut self) -> Result<&[String]> {
        if self.running.is_none() {
            let mut names = Vec::new();
            for n in agent::list(self.state)? {
                if AgentDir::new(self.state, &n)?.running()? {
                    names.push(n);
                }
            }
            self.running = Some(names);
        }
        Ok(self.running.as_deref().unwrap_or_default())
    }

    fn deliver(&mut self, to: &str, from: &str, text: &str) -> Result<Outcome> {
        let a = AgentDir::new(self.state, to)?;
        if a.exists() || a.inbox("new").is_dir() {
            return self.nudge(&a, text);
        }
        if let Some(t) = self.team.member(to)? {
            if !self.o.dry_run {
                let msg = NewMessage {
                    from: from.to_string(),
                    text: text.to_string(),
                    ..NewMessage::default()
                };
                self.team.mailbox()?.send(&t, to, &msg)?;
            }
            return Ok(Outcome::Team(t));
        }
        if to == "lead" || (to != READER && self.state.cursors(to).is_dir()) {
            return Ok(Outcome::Reader);
        }
        Ok(Outcome::Unknown)
    }

    /// Nudge an agent mt supervises.
    fn nudge(&mut self, a: &AgentDir, text: &str) -> Result<Outcome> {
        if self.failed.contains(&a.name) {
            // Not tried again in this run (a start that failed would fail
            // again); its supervisor, when one runs, finds it in the inbox.
            if !self.o.dry_run {
                a.ensure(self.state)?;
                a.deliver_as(text, Durability::Deferred)?;
                self.unsynced = true;
            }
            let why = format!("delivery to {} failed earlier in this run", a.name);
            return Ok(Outcome::Waiting(why));
        }
        let resume = self.o.resume;
        if self.o.dry_run {
            return Ok(if a.running()? {
                Outcome::Nudged
            } else if !a.exists() {
                Outcome::Waiting(format!("{} has never been started", a.name))
            } else if resume {
                Outcome::Resumed
            } else {
                Outcome::Waiting(format!("{} is not running (--no-resume)", a.name))
            });
        }
        self.unsynced = true;
        Ok(
            match agent::nudge_as(self.state, &a.name, text, resume, Durability::Deferred)? {
                Nudged::Delivered => Outcome::Nudged,
                Nudged::Resumed => Outcome::Resumed,
                Nudged::Waiting(why) if !resume && a.exists() => {
                    Outcome::Waiting(format!("{why} (--no-resume)"))
                }
                Nudged::Waiting(why) => Outcome::Waiting(why),
            },
        )
    }

    /// A delivery failed: say so on stderr, and on the channel the first
    /// time for this name in this run; routing goes on.
    fn failed(&mut self, rec: &Rec, to: &str, e: &anyhow::Error) -> Result<Outcome> {
        let error = format!("{e:#}");
        crate::exit::warn(format_args!("#{} {} -> {to}: {error}", rec.seq, rec.from));
        self.summary.failed += 1;
        let code = match exit::code_of(e) {
            c if c > exit::USAGE => c,
            _ => exit::SOFTWARE,
        };
        self.summary.failure_code.get_or_insert(code);
        let first = self.failed.insert(to.to_string()) && !self.o.dry_run;
        if first {
            report_failed(self.state, self.o, rec, to, &error)?;
        }
        Ok(Outcome::Failed {
            error,
            reported: first,
        })
    }
}

/// Say on the channel that a record named nobody known, without `@` (the
/// report must not mention anyone itself).
fn report_unknown(state: &StateDir, o: &Options, rec: &Rec, unknown: &[String]) -> Result<()> {
    let who = unknown.join(", ");
    let team = o
        .team
        .as_deref()
        .map(|t| format!(", nor a member of team {t}"))
        .unwrap_or_default();
    let draft = Draft {
        from: READER.into(),
        kind: "system".into(),
        content: format!(
            "#{} from {} was not delivered to {who}: not a running or stopped agent{team}, nor a reader of the channel",
            rec.seq, rec.from
        ),
        meta: Some(serde_json::json!({"route": {"seq": rec.seq, "unknown": unknown}})),
        ..Draft::default()
    };
    channel::post(state, &o.channel, &draft).map(drop)
}

/// Say on the channel that delivering a record to `to` failed.
fn report_failed(state: &StateDir, o: &Options, rec: &Rec, to: &str, error: &str) -> Result<()> {
    let draft = Draft {
        from: READER.into(),
        kind: "system".into(),
        content: format!(
            "#{} from {} could not be delivered to {to}: {error}",
            rec.seq, rec.from
        ),
        meta: Some(serde_json::json!({"route": {"seq": rec.seq, "failed": [to], "error": error}})),
        ..Draft::default()
    };
    channel::post(state, &o.channel, &draft).map(drop)
}

/// The members of the configured team, read once per run.
struct TeamCache {
    team: Option<String>,
    members: Option<BTreeSet<String>>,
    mailbox: Option<Mailbox>,
}

impl TeamCache {
    fn new(team: Option<String>) -> TeamCache {
        TeamCache {
            team,
            members: None,
            mailbox: None,
        }
    }

    fn mailbox(&mut self) -> Result<&Mailbox> {
        if self.mailbox.is_none() {
            self.mailbox = Some(Mailbox::from_env()?);
        }
        Ok(self.mailbox.as_ref().expect("set"))
    }

    /// The team, when `name` is one of its members.
    fn member(&mut self, name: &str) -> Result<Option<String>> {
        let Some(team) = self.team.clone() else {
            return Ok(None);
        };
        if self.members.is_none() {
            let list = self.mailbox()?.members(&team)?;
            self.members = Some(
                list.iter()
                    .filter_map(|m| m.get("name").and_then(|v| v.as_str()))
                    .map(str::to_string)
                    .collect(),
            );
        }
        let found = self.members.as_ref().is_some_and(|m| m.contains(name));
        Ok(found.then_some(team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_well() {
        let a = Action {
            seq: 42,
            from: "park".into(),
            to: "york".into(),
            outcome: Outcome::Nudged,
            dry_run: false,
        };
        assert_eq!(a.to_string(), "#42 park -> york: nudged");
        let w = Action {
            outcome: Outcome::Waiting("york is not running (--no-resume)".into()),
            ..a.clone()
        };
        assert_eq!(
            w.to_string(),
            "#42 park -> york: york is not running (--no-resume); left in its inbox"
        );
        let f = Action {
            outcome: Outcome::Failed {
                error: "cannot start x".into(),
                reported: true,
            },
            ..a.clone()
        };
        assert_eq!(
            f.to_string(),
            "#42 park -> york: failed: cannot start x; reported"
        );
        assert_eq!(
            compact("general", 42, "park", "@york can you review?"),
            "[general #42] park: @york can you review?"
        );
    }
}
