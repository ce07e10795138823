//! Routing @mentions: each new record of a channel reaches the agents it
//! names, read with a cursor of its own (reader `mt-route`), so a record is
//! routed once however often routing runs.
//!
//! For each name a record mentions (the sender excepted):
//! 1. a running agent is nudged (its inbox; the supervisor forwards it);
//! 2. else a member of the configured agent team gets the message in its
//!    Claude Code inbox;
//! 3. else a stopped agent is resumed with it (or, without `resume`, the
//!    message waits in its inbox and that is reported);
//! 4. else a channel reader (the lead, or a name with a cursor) needs
//!    nothing: it reads the channel itself;
//! 5. else nobody of that name is known: a `system` record says so.
//!
//! `@all` reaches every running agent but the sender. Records posted by
//! mt-route itself are never routed. The cursor is saved after each record,
//! under the reader's lock: a crash re-routes at most the record in flight.

use anyhow::Result;
use std::collections::BTreeSet;

use crate::agent::{self, AgentDir, Nudged};
use crate::channel::{self, Draft, Reader};
use crate::cursor;
use crate::mailbox::{Mailbox, NewMessage};
use crate::record;
use crate::statedir::StateDir;

/// The reader name of mt-route's cursor, and the sender of its records.
pub const READER: &str = "mt-route";

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
            Outcome::Unknown if self.dry_run => write!(f, "unknown, would report"),
            Outcome::Unknown => write!(f, "unknown, reported"),
        }
    }
}

/// One record, owned.
struct Rec {
    seq: u64,
    from: String,
    content: String,
    mentions: Vec<String>,
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
/// action as it is taken. Returns how many records were read.
pub fn route(state: &StateDir, o: &Options, each: &mut dyn FnMut(&Action)) -> Result<u64> {
    crate::names::check("channel", &o.channel)?;
    if !state.channel(&o.channel).is_dir() {
        return Ok(0);
    }
    let _lock = cursor::lock_agent(state, READER)?;
    let saved = cursor::load(state, READER, &o.channel)?.unwrap_or_default();
    let mut reader = Reader::resume(state, &o.channel, saved)?;
    let mut team = TeamCache::new(o.team.clone());
    let mut n = 0;
    loop {
        // One record at a time, so the cursor can be saved after each.
        let mut next: Option<Rec> = None;
        reader.read_available(&mut |it| {
            let v = &it.view;
            let mut mentions = v.mentions.clone();
            if mentions.is_empty() {
                mentions = record::mentions(&v.content);
            }
            next = Some(Rec {
                seq: v.seq,
                from: v.from.to_string(),
                content: v.content.to_string(),
                mentions,
            });
            Ok(false)
        })?;
        let Some(rec) = next else {
            break;
        };
        n += 1;
        if rec.from != READER {
            route_one(state, o, &mut team, &rec, each)?;
        }
        if !o.dry_run {
            cursor::save(state, READER, &o.channel, reader.position())?;
        }
    }
    Ok(n)
}

/// The names a record reaches, in order, without the sender: `@all`
/// stands for every running agent.
fn targets(state: &StateDir, rec: &Rec) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if n != rec.from && !out.iter().any(|m| m == n) {
            out.push(n.to_string());
        }
    };
    for m in &rec.mentions {
        if m == "all" {
            for i in agent::all(state)? {
                if i.running {
                    push(&i.name);
                }
            }
        } else {
            push(m);
        }
    }
    Ok(out)
}

fn route_one(
    state: &StateDir,
    o: &Options,
    team: &mut TeamCache,
    rec: &Rec,
    each: &mut dyn FnMut(&Action),
) -> Result<()> {
    let text = compact(&o.channel, rec.seq, &rec.from, &rec.content);
    let mut unknown = Vec::new();
    for to in targets(state, rec)? {
        let outcome = deliver(state, o, team, &to, &rec.from, &text)?;
        if outcome == Outcome::Unknown {
            unknown.push(to.clone());
        }
        each(&Action {
            seq: rec.seq,
            from: rec.from.clone(),
            to,
            outcome,
            dry_run: o.dry_run,
        });
    }
    if !unknown.is_empty() && !o.dry_run {
        report_unknown(state, o, rec, &unknown)?;
    }
    Ok(())
}

fn deliver(
    state: &StateDir,
    o: &Options,
    team: &mut TeamCache,
    to: &str,
    from: &str,
    text: &str,
) -> Result<Outcome> {
    let a = AgentDir::new(state, to)?;
    if a.running()? {
        if o.dry_run {
            return Ok(Outcome::Nudged);
        }
        return Ok(match agent::nudge(state, to, text, o.resume)? {
            Nudged::Delivered => Outcome::Nudged,
            Nudged::Resumed => Outcome::Resumed,
            Nudged::Waiting(why) => Outcome::Waiting(why),
        });
    }
    if let Some(t) = team.member(to)? {
        if !o.dry_run {
            let msg = NewMessage {
                from: from.to_string(),
                text: text.to_string(),
                ..NewMessage::default()
            };
            team.mailbox()?.send(&t, to, &msg)?;
        }
        return Ok(Outcome::Team(t));
    }
    if a.exists() {
        if o.dry_run {
            return Ok(if o.resume {
                Outcome::Resumed
            } else {
                Outcome::Waiting(format!("{to} is not running (--no-resume)"))
            });
        }
        return Ok(match agent::nudge(state, to, text, o.resume)? {
            Nudged::Delivered => Outcome::Nudged,
            Nudged::Resumed => Outcome::Resumed,
            Nudged::Waiting(why) if !o.resume => Outcome::Waiting(format!("{why} (--no-resume)")),
            Nudged::Waiting(why) => Outcome::Waiting(why),
        });
    }
    if to == "lead" || (to != READER && state.cursors(to).is_dir()) {
        return Ok(Outcome::Reader);
    }
    Ok(Outcome::Unknown)
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
        assert_eq!(
            compact("general", 42, "park", "@york can you review?"),
            "[general #42] park: @york can you review?"
        );
    }
}
