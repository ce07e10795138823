//! Delivery into a Claude Code session at its hook events: what mt reads
//! from a hook's standard input, what it prints back, and which channel
//! messages it hands to an agent when. This is the library of `mt-hook`,
//! which Claude Code runs at each event.
//!
//! Three modules touch hooks; their names say which side they are on:
//! `delivery` (this one) runs *inside* a hook and delivers messages;
//! `claude_settings` edits Claude Code's settings.json files, where hook
//! entries are registered; `cli::hooks` is `mt-hooks`, the command that
//! installs or removes those entries.
//!
//! Delivery shares the reader cursor of mt-read (`cursors/<agent>/<channel>.json`)
//! under the same per-agent lock, so a message that one hook (or mt-read)
//! delivered is not delivered again by the next. The agent's own records are
//! never delivered back to it; the cursor simply moves past them.
//!
//! The Stop hook, in the default `mentions` wake policy, delivers only the
//! records that mention the agent (or `@all`) and leaves the others unread for
//! the next prompt. One cursor cannot mark "read" a record that comes after an
//! unread one, so the Stop hook keeps a small state file beside the cursor,
//! `cursors/<agent>/<channel>.stop`:
//!
//! ```json
//! {"seq":57,"segment":1,"offset":9120,"blocked_through":58,"updated_at":"…"}
//! ```
//!
//! - `seq`/`segment`/`offset` (the *scan mark*): every record up to this
//!   position that mentions the agent has been delivered. The Stop hook scans
//!   from here (never twice over the same chatter), and the prompt hooks skip
//!   mentions at or below it, since the agent already saw them.
//! - `blocked_through`: the channel's last seq when the Stop hook last
//!   blocked. With `stop_hook_active` (the agent is running because of that
//!   block), the hook blocks again only for a wanted record newer than this;
//!   otherwise the agent may stop, which breaks continuation loops.
//! - `blocks`: the blocks Claude Code has counted toward its cap if the Stop
//!   hook runs again before a tool does (see below).
//!
//! Claude Code ends a turn after `CLAUDE_CODE_STOP_HOOK_BLOCK_CAP` (default 8)
//! consecutive Stop blocks with no tool call in between, overriding the next
//! block: the model never reads its reason. So a message is marked delivered
//! only when the block that carries it will be honoured. `blocks` counts the
//! Stop calls since the turn began (`stop_hook_active` false) or a tool last
//! ran (the PostToolUse hook zeroes it): each Stop call that is followed by
//! another in the same run was blocked, by mt or by another Stop hook, and
//! Claude Code counts both. At the cap the hook does not block and leaves the
//! messages unread for the next prompt, session start or nudge. Where the
//! PostToolUse hook does not run for every tool (an older install), the count
//! only grows too fast, which costs blocks, never messages.
//!
//! The file is otherwise only an optimisation of the cursor: deleting it
//! re-delivers at most the mentions since the cursor (and forgets the count).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::channel::{Position, Reader};
use crate::cursor;
use crate::exit::{DATAERR, fail};
use crate::infra::fsutil;
use crate::infra::time;
use crate::names;
use crate::record::View;
use crate::statedir::StateDir;

// ---------------------------------------------------------------------------
// Input

/// One hook's standard input: a JSON object. Fields are read by name and
/// type-checked one at a time, so unknown fields and unexpected types of
/// fields mt does not use never make a payload unreadable.
#[derive(Debug, Clone, Default)]
pub struct Payload(Map<String, Value>);

impl Payload {
    pub fn parse(input: &[u8]) -> Result<Payload> {
        if input.iter().all(u8::is_ascii_whitespace) {
            return Err(fail(
                DATAERR,
                "empty input: expected the hook's JSON object on standard input",
            ));
        }
        match serde_json::from_slice::<Value>(input) {
            Ok(Value::Object(m)) => Ok(Payload(m)),
            Ok(_) => Err(fail(DATAERR, "the hook input is JSON but not an object")),
            Err(e) => Err(fail(DATAERR, format!("the hook input is not JSON: {e}"))),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A string field; absent or not a string is `None`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// A boolean field; anything but `true` is false.
    pub fn flag(&self, key: &str) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The session id, when it looks like one (it is stored in records).
    pub fn session_id(&self) -> Option<String> {
        self.str("session_id")
            .filter(|s| !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control))
            .map(str::to_string)
    }
}

// ---------------------------------------------------------------------------
// Output, exactly as Claude Code reads it

/// `{"hookSpecificOutput":{"hookEventName":…,"additionalContext":…}}`, for
/// SessionStart and UserPromptSubmit.
pub fn context_output(event: &str, text: &str) -> String {
    json!({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}).to_string()
}

/// `{"decision":"block","reason":…}`: the Stop hook keeps the agent working,
/// and `reason` is what it reads.
pub fn block_output(reason: &str) -> String {
    json!({"decision": "block", "reason": reason}).to_string()
}

// ---------------------------------------------------------------------------
// Delivery

/// Which records wake an agent from its Stop hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wake {
    /// Records that mention the agent or @all
    Mentions,
    /// Every record from someone else
    All,
}

/// Default bounds of one delivery: messages, and bytes of message text.
pub const MAX_MESSAGES: usize = 20;
pub const MAX_BYTES: usize = 4096;

/// How much one hook hands over at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
}

/// What one hook delivers: rendered messages, and how many wanted records
/// did not fit.
#[derive(Debug, Default)]
pub struct Batch {
    pub lines: Vec<String>,
    pub more: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The messages, one per line, and a note on what did not fit.
    pub fn render(&self, channel: &str) -> String {
        let mut s = self.lines.join("\n");
        if self.more > 0 {
            let what = if self.more == 1 {
                "message is"
            } else {
                "messages are"
            };
            s.push_str(&format!(
                "\n{} more unread {what} not shown here; `mt-read -c {channel}` prints them.",
                self.more
            ));
        }
        s
    }
}

/// Claude Code's default for `CLAUDE_CODE_STOP_HOOK_BLOCK_CAP`.
pub const BLOCK_CAP: u32 = 8;

/// The Stop block cap Claude Code applies, given the value of
/// `CLAUDE_CODE_STOP_HOOK_BLOCK_CAP` (hooks inherit its environment): `None`
/// for no cap (it reads 0 or less so). A value that is not a plain integer
/// counts as the default, or as its leading number when that is smaller, so
/// mt never counts on more blocks than Claude Code allows.
pub fn block_cap(var: Option<&str>) -> Option<u32> {
    let Some(v) = var.map(str::trim).filter(|v| !v.is_empty()) else {
        return Some(BLOCK_CAP);
    };
    if let Ok(n) = v.parse::<i64>() {
        return (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
    }
    let unsigned = v.strip_prefix('+').unwrap_or(v);
    let end = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    match unsigned[..end].parse::<u32>() {
        Ok(n) if n > 0 => Some(n.min(BLOCK_CAP)),
        _ => Some(BLOCK_CAP),
    }
}

/// Tools that leave Claude Code's count of Stop blocks as it is (a reply
/// calling only these still counts as consecutive).
const UNCOUNTED_TOOLS: &[&str] = &["SetGoal", "ProposeGoal", "PauseGoal", "GetGoal"];

/// The PostToolUse hook's part in the block count: a tool ran, so Claude
/// Code starts counting consecutive Stop blocks afresh. Not so for a tool a
/// subagent ran (`agent_id` set): the session's own loop did not call it.
/// Runs after every tool call, so it only reads the small state file, and
/// writes (under the agent's lock) only when the count is not zero already.
pub fn tool_ran(state: &StateDir, agent: &str, channel: &str, p: &Payload) -> Result<()> {
    let tool = p.str("tool_name").unwrap_or("");
    let subagent = p.str("agent_id").is_some_and(|a| !a.is_empty());
    if subagent || UNCOUNTED_TOOLS.contains(&tool) {
        return Ok(());
    }
    let path = stop_path(state, agent, channel);
    if load_stop(&path)?.blocks == 0 {
        return Ok(());
    }
    let _lock = cursor::lock_agent(state, agent)?;
    let mut st = load_stop(&path)?;
    if st.blocks == 0 {
        return Ok(());
    }
    st.blocks = 0;
    save_stop(&path, &mut st)
}

/// Who reads what: the agent, its channel, and the limits of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Inbox<'a> {
    pub state: &'a StateDir,
    pub agent: &'a str,
    pub channel: &'a str,
    pub limits: Limits,
}

/// One call of the Stop hook: its `stop_hook_active`, and Claude Code's
/// block cap (`None`: no cap).
#[derive(Debug, Clone, Copy)]
struct StopCall {
    active: bool,
    cap: Option<u32>,
}

/// The Stop hook's state, beside the cursor (see the module docs).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct StopState {
    seq: u64,
    segment: u64,
    offset: u64,
    #[serde(default)]
    blocked_through: u64,
    #[serde(default)]
    blocks: u32,
    #[serde(default)]
    updated_at: String,
}

impl StopState {
    fn mark(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset,
            seq: self.seq,
        }
    }
}

fn stop_path(state: &StateDir, agent: &str, channel: &str) -> PathBuf {
    state.cursors(agent).join(format!("{channel}.stop"))
}

/// The saved Stop state; a file that does not parse counts as none (it is
/// only an optimisation of the cursor).
fn load_stop(path: &Path) -> Result<StopState> {
    match fsutil::read_regular(path) {
        Ok(t) => Ok(serde_json::from_slice(&t).unwrap_or_else(|e| {
            crate::exit::warn(format_args!("ignoring {} ({e})", path.display()));
            StopState::default()
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StopState::default()),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            crate::exit::warn(format_args!("ignoring {} ({e})", path.display()));
            Ok(StopState::default())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_stop(path: &Path, st: &mut StopState) -> Result<()> {
    st.updated_at = time::now_stamp();
    let mut data = serde_json::to_vec(st)?;
    data.push(b'\n');
    fsutil::write_atomic(path, &data, false)
}

/// The position just past the record `seq`, scanning from `from`.
fn position_after(state: &StateDir, channel: &str, from: Position, seq: u64) -> Result<Position> {
    let mut r = Reader::resume(state, channel, from)?;
    r.read_available(&mut |it| Ok(it.view.seq < seq))?;
    Ok(r.position())
}

/// One message as a hook shows it: `#41 park: text`, with the type in
/// brackets unless it is text, further lines indented, cut to `budget` bytes.
pub fn render(v: &View<'_>, channel: &str, budget: usize) -> String {
    let mut s = format!("#{} {}", v.seq, v.from);
    if !v.kind.is_empty() && v.kind != "text" {
        s.push_str(&format!(" [{}]", v.kind));
    }
    s.push_str(": ");
    let content = v.content.replace('\n', "\n    ");
    let room = budget.saturating_sub(s.len());
    if content.len() <= room {
        s.push_str(&content);
    } else {
        let note = format!(
            " … [cut; `mt-read -c {channel} --since {}` shows it whole]",
            v.seq.saturating_sub(1)
        );
        let mut cut = room.saturating_sub(note.len());
        while !content.is_char_boundary(cut) {
            cut -= 1;
        }
        s.push_str(&content[..cut]);
        s.push_str(&note);
    }
    s
}

/// What one pass over the unread records found.
#[derive(Default)]
struct Scan {
    batch: Batch,
    bytes: usize,
    /// Seq of the last delivered record.
    last_delivered: u64,
    /// Highest seq of a record this delivery wanted, delivered or not.
    newest_wanted: u64,
    /// Seq of the last record of the leading run of records that need no
    /// further delivery: the cursor may move past it.
    settled_through: u64,
    /// A record that still needs delivery was met; later ones cannot move
    /// the cursor.
    gap: bool,
}

/// What a hook is about to deliver, with the agent's lock held. The caller
/// writes the output, then calls `commit`, so a message lost on the way out
/// is not marked delivered (at-least-once, like mt-read).
#[must_use = "nothing is marked delivered until commit"]
pub struct Pending<'a> {
    /// What to deliver; `None` when there is nothing to say (the Stop hook
    /// lets the agent stop).
    pub batch: Option<Batch>,
    inbox: &'a Inbox<'a>,
    cursor: Option<Position>,
    stop: Option<StopState>,
    _lock: Option<File>,
}

impl Pending<'_> {
    /// Mark what was delivered: move the cursor, save the Stop state.
    pub fn commit(self) -> Result<()> {
        let Inbox {
            state,
            agent,
            channel,
            ..
        } = *self.inbox;
        if let Some(pos) = self.cursor {
            cursor::save(state, agent, channel, pos)?;
        }
        if let Some(mut st) = self.stop {
            save_stop(&stop_path(state, agent, channel), &mut st)?;
        }
        Ok(())
    }
}

impl<'a> Inbox<'a> {
    /// Unread records from others, bounded (SessionStart, UserPromptSubmit).
    pub fn unread(&'a self) -> Result<Pending<'a>> {
        self.take(Wake::All, None)
    }

    /// The Stop hook: a batch when the agent should keep working on it, none
    /// when it may stop. `cap` is Claude Code's block cap (see `block_cap`):
    /// a batch that Claude Code would override is not taken.
    pub fn stop(
        &'a self,
        wake: Wake,
        stop_hook_active: bool,
        cap: Option<u32>,
    ) -> Result<Pending<'a>> {
        self.take(
            wake,
            Some(StopCall {
                active: stop_hook_active,
                cap,
            }),
        )
    }

    /// `stop` is `None` for the prompt hooks.
    fn take(&'a self, wake: Wake, stop: Option<StopCall>) -> Result<Pending<'a>> {
        let (state, agent, channel) = (self.state, self.agent, self.channel);
        let mut pending = Pending {
            batch: None,
            inbox: self,
            cursor: None,
            stop: None,
            _lock: None,
        };
        if !state.channel(channel).is_dir() {
            // Nothing was ever posted here; create nothing.
            return Ok(pending);
        }
        let lock = cursor::lock_agent(state, agent)?;
        let cur = cursor::load(state, agent, channel)?.unwrap_or_default();
        let spath = stop_path(state, agent, channel);
        let mut st = load_stop(&spath)?;
        let loaded = st.clone();
        // The blocks Claude Code has counted before this call; this call
        // counts as one more if another Stop follows without a tool call.
        let counted = stop.map(|s| if s.active { st.blocks } else { 0 });
        if let Some(c) = counted {
            st.blocks = c.saturating_add(1);
        }
        let scan_mark = if st.seq > cur.seq { st.mark() } else { cur };
        // The Stop hook waking on mentions only looks past its scan mark.
        let start = if wake == Wake::Mentions && stop.is_some() {
            scan_mark
        } else {
            cur
        };

        let mut reader = Reader::resume(state, channel, start)?;
        let scan = self.scan(&mut reader, wake, scan_mark)?;
        let end = reader.position();
        if end.seq < st.seq.max(st.blocked_through) {
            // The channel was reset under the Stop state: drop the marks
            // (keeping the count, which is about the session) and retry.
            let mut fresh = StopState {
                blocks: loaded.blocks,
                ..StopState::default()
            };
            save_stop(&spath, &mut fresh)?;
            drop(lock);
            return self.take(wake, stop);
        }
        pending._lock = Some(lock);

        let active = stop.is_some_and(|s| s.active);
        if active && scan.newest_wanted <= st.blocked_through {
            // Running because of our last block, and nothing new since: let
            // the agent stop, and change nothing but the count.
            pending.stop = (st != loaded).then_some(st);
            return Ok(pending);
        }
        let capped = stop
            .and_then(|s| s.cap)
            .zip(counted)
            .is_some_and(|(cap, c)| c >= cap);
        if capped && !scan.batch.is_empty() {
            // Claude Code would override this block and the model would
            // never read it: leave everything unread for the next prompt.
            pending.stop = (st != loaded).then_some(st);
            return Ok(pending);
        }

        // Move the cursor past the leading records that need nothing more.
        let mut new_cursor = cur.seq;
        if start == cur && scan.settled_through > cur.seq {
            let pos = if scan.gap {
                position_after(state, channel, cur, scan.settled_through)?
            } else {
                end
            };
            pending.cursor = Some(pos);
            new_cursor = pos.seq;
        }

        // The Stop hook on mentions: every mention up to the new mark is
        // delivered (vacuously so for a pass that found none).
        if wake == Wake::Mentions
            && stop.is_some()
            && let Some(mark) =
                self.mention_mark(&scan, start, end, scan_mark.seq.max(new_cursor))?
        {
            (st.seq, st.segment, st.offset) = (mark.seq, mark.segment, mark.offset);
        }
        let deliver = !scan.batch.is_empty();
        if stop.is_some() {
            if deliver {
                st.blocked_through = end.seq;
            }
            pending.stop = (st != loaded).then_some(st);
        }
        pending.batch = deliver.then_some(scan.batch);
        Ok(pending)
    }

    /// Read what is new from `reader`: which records to deliver now (within
    /// the limits), and how far the records need nothing more.
    fn scan(&self, reader: &mut Reader, wake: Wake, scan_mark: Position) -> Result<Scan> {
        let (agent, channel) = (self.agent, self.channel);
        let mut scan = Scan::default();
        reader.read_available(&mut |it| {
            let v = &it.view;
            let own = v.from == agent;
            let mentioned = v.mentions_name(agent);
            let seen = mentioned && v.seq <= scan_mark.seq;
            let wanted = !own && !seen && (wake == Wake::All || mentioned);
            let mut settled = own || seen;
            if wanted {
                scan.newest_wanted = v.seq;
                let b = &mut scan.batch;
                let line = (b.more == 0 && b.lines.len() < self.limits.messages)
                    .then(|| render(v, channel, self.limits.bytes));
                match line {
                    // The first message always goes (cut if need be), so a
                    // huge one cannot hold up everything behind it.
                    Some(line)
                        if b.lines.is_empty() || scan.bytes + line.len() <= self.limits.bytes =>
                    {
                        scan.bytes += line.len() + 1;
                        b.lines.push(line);
                        scan.last_delivered = v.seq;
                        settled = true;
                    }
                    _ => b.more += 1,
                }
            }
            if settled && !scan.gap {
                scan.settled_through = v.seq;
            } else if !settled {
                scan.gap = true;
            }
            Ok(true)
        })?;
        Ok(scan)
    }

    /// The Stop hook's new scan mark on mentions, when it moves past
    /// `floor`: every mention up to it is delivered (vacuously so for a pass
    /// that found none); when the batch was cut short, only up to the last
    /// record delivered.
    fn mention_mark(
        &self,
        scan: &Scan,
        start: Position,
        end: Position,
        floor: u64,
    ) -> Result<Option<Position>> {
        let (mark_seq, bounded) = if scan.batch.more > 0 {
            (scan.last_delivered, true)
        } else {
            (end.seq, false)
        };
        if mark_seq <= floor {
            return Ok(None);
        }
        Ok(Some(if bounded {
            position_after(self.state, self.channel, start, mark_seq)?
        } else {
            end
        }))
    }
}

// ---------------------------------------------------------------------------
// What the hooks say

/// Identity and the facts an agent needs at the start of a session.
pub struct Intro<'a> {
    pub agent: &'a str,
    pub channel: &'a str,
    pub wake: Wake,
    /// The assigned task, already rendered (see `task_summary`).
    pub task: Option<String>,
}

/// The SessionStart context: who the agent is, its channel, how to post and
/// read, its task, and what is unread.
pub fn session_context(intro: &Intro<'_>, unread: Option<&Batch>) -> String {
    let (agent, channel) = (intro.agent, intro.channel);
    let waking = match intro.wake {
        Wake::Mentions => format!("messages that mention {agent} or @all"),
        Wake::All => "messages from others".to_string(),
    };
    let role = if agent == "lead" {
        "the lead of this repository's mt team".to_string()
    } else {
        format!("the mt agent \"{agent}\", one coworker of a team led by \"lead\"")
    };
    let mut s = format!(
        "mt: this session is {role}. Its channel is #{channel}.\n\
         - `mt-post 'text'` posts to #{channel}; @name in the text mentions someone, @all everyone.\n\
         - `mt-read` prints the messages of #{channel} not read yet. New messages also arrive here \
         with each prompt, and {waking} arrive when the session stops.\n"
    );
    if let Some(t) = &intro.task {
        s.push_str(t);
        s.push('\n');
    }
    match unread {
        Some(b) if !b.is_empty() => {
            s.push_str(&format!("Unread on #{channel}:\n{}", b.render(channel)))
        }
        _ => s.push_str(&format!("Nothing unread on #{channel}.")),
    }
    s
}

/// The UserPromptSubmit context.
pub fn prompt_context(channel: &str, unread: &Batch) -> String {
    format!(
        "mt: new on #{channel} since the last delivery:\n{}",
        unread.render(channel)
    )
}

/// The Stop hook's reason.
pub fn stop_reason(agent: &str, channel: &str, wake: Wake, batch: &Batch) -> String {
    let head = match wake {
        Wake::Mentions => format!("mt: messages on #{channel} that mention {agent} arrived:"),
        Wake::All => format!("mt: messages on #{channel} arrived:"),
    };
    format!("{head}\n{}", batch.render(channel))
}

// ---------------------------------------------------------------------------
// The assigned task

/// The fields of a Claude Code task file the session context shows.
#[derive(Debug, Default, Deserialize)]
pub struct TaskInfo {
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub description: String,
}

/// Task `id` of list `list` under Claude Code's directory, through the
/// task library; `None` when it does not exist.
pub fn read_task(claude_dir: &Path, list: &str, id: &str) -> Result<Option<TaskInfo>> {
    let list = crate::tasks::TaskList::new(claude_dir, list)?;
    let id = crate::tasks::parse_id(id)?;
    Ok(list.load(id)?.map(|t| TaskInfo {
        subject: t.subject().to_string(),
        status: t.status_str().to_string(),
        description: t.description().to_string(),
    }))
}

/// One paragraph about the assigned task: `Assigned task 3 (in_progress): Add
/// login`, then its description, cut to about 1000 bytes.
pub fn task_summary(id: &str, list: Option<&str>, info: Option<&TaskInfo>) -> String {
    let Some(t) = info else {
        return match list {
            Some(l) => format!("Assigned task {id}; task list {l} has no file for it."),
            None => format!("Assigned task {id}."),
        };
    };
    let mut s = format!("Assigned task {id}");
    if !t.status.is_empty() {
        s.push_str(&format!(" ({})", t.status));
    }
    s.push_str(&format!(": {}", t.subject));
    let d = t.description.trim();
    if !d.is_empty() {
        let mut cut = d.len().min(1000);
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        s.push_str("\n  ");
        s.push_str(&d[..cut].replace('\n', "\n  "));
        if cut < d.len() {
            s.push_str(" …");
        }
    }
    s
}

// ---------------------------------------------------------------------------
// PostToolUse and Notification: what an agent did, as records

/// A value that should name a task: a string or a number.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The task number in a text answer such as "Task #4 created successfully".
fn id_in_text(text: &str) -> Option<String> {
    let rest = &text[text.find("Task #")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// A tool response as text, when it is a string or a list of text blocks.
fn response_text(resp: &Value) -> String {
    match resp {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Object(o) => o.get("content").map(response_text).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Whether a tool response says the call failed.
fn failed(resp: &Value) -> bool {
    resp.get("success").and_then(Value::as_bool) == Some(false)
        || resp.get("is_error").and_then(Value::as_bool) == Some(true)
        || resp.get("error").is_some_and(|e| !e.is_null())
}

fn checked_id(id: String) -> Result<String> {
    names::check("task id", &id)?;
    Ok(id)
}

/// The `action` record for a TaskCreate or TaskUpdate call, or `None` for
/// other tools and for calls that say nothing worth posting. Fields are
/// looked up where Claude Code versions put them; names found in them are
/// checked like command-line names.
pub fn task_action(tool: &str, input: &Value, resp: &Value, agent: &str) -> Result<Option<String>> {
    if failed(resp) {
        return Ok(None);
    }
    match tool {
        "TaskCreate" => {
            let task = resp.get("task");
            let id = id_of(task.and_then(|t| t.get("id")))
                .or_else(|| id_of(resp.get("id")))
                .or_else(|| id_of(resp.get("taskId")))
                .or_else(|| id_in_text(&response_text(resp)));
            let subject = text_of(input.get("subject"))
                .or_else(|| text_of(task.and_then(|t| t.get("subject"))));
            let mut s = match id {
                Some(id) => format!("created task {}", checked_id(id)?),
                None => "created a task".to_string(),
            };
            if let Some(subj) = subject {
                s.push_str(": ");
                s.push_str(subj.lines().next().unwrap_or(""));
            }
            Ok(Some(s))
        }
        "TaskUpdate" => {
            let Some(id) = id_of(input.get("taskId"))
                .or_else(|| id_of(input.get("id")))
                .or_else(|| id_of(resp.get("taskId")))
            else {
                return Ok(None);
            };
            let id = checked_id(id)?;
            // Owners are Claude Code names, checked as mt-task checks them.
            let owner = match text_of(input.get("owner")) {
                Some(o) => Some(names::check_claude("owner", o)?),
                None => None,
            };
            let status = text_of(input.get("status"));
            let subject = text_of(input.get("subject"));
            let s = match (status, owner) {
                (Some("completed"), _) => format!("completed task {id}"),
                (Some("deleted"), _) => format!("deleted task {id}"),
                (_, Some(o)) if o != agent => format!("assigned task {id} to {o}"),
                (_, Some(_)) => format!("claimed task {id}"),
                (Some("in_progress"), None) => format!("started task {id}"),
                (Some("pending"), None) => format!("reopened task {id}"),
                (Some(other), None) => format!("set task {id} to {other}"),
                (None, None) => match subject {
                    Some(subj) => {
                        format!("renamed task {id}: {}", subj.lines().next().unwrap_or(""))
                    }
                    None => format!("updated task {id}"),
                },
            };
            Ok(Some(s))
        }
        _ => Ok(None),
    }
}

/// The `status` record for a Notification, or `None`: only the idle prompt
/// (Claude Code waiting for its user) is worth telling the team.
pub fn notification_status(p: &Payload) -> Option<&'static str> {
    let idle = match p.str("notification_type") {
        Some(t) => t == "idle_prompt",
        // Older versions send only the message.
        None => p
            .str("message")
            .is_some_and(|m| m.contains("waiting for your input")),
    };
    idle.then_some("waiting for input")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(line: &str) -> View<'_> {
        crate::record::parse(line.as_bytes()).unwrap()
    }

    #[test]
    fn payload_tolerates_odd_fields() {
        let p = Payload::parse(
            br#"{"session_id":5,"stop_hook_active":"yes","x":{"y":[1]},"prompt":"hi"}"#,
        )
        .unwrap();
        assert_eq!(p.session_id(), None);
        assert!(!p.flag("stop_hook_active"));
        assert_eq!(p.str("prompt"), Some("hi"));
        for bad in [&b""[..], b"  \n", b"{", b"[1]", b"null"] {
            let e = Payload::parse(bad).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), DATAERR);
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn block_cap_reads_the_variable_as_claude_code_does_or_lower() {
        assert_eq!(block_cap(None), Some(8));
        assert_eq!(block_cap(Some("")), Some(8));
        assert_eq!(block_cap(Some(" 12 ")), Some(12));
        assert_eq!(block_cap(Some("+3")), Some(3));
        // Claude Code: no cap at 0 or below.
        assert_eq!(block_cap(Some("0")), None);
        assert_eq!(block_cap(Some("-4")), None);
        assert_eq!(block_cap(Some("99999999999")), Some(u32::MAX));
        // Not a plain integer: never more than Claude Code could allow.
        assert_eq!(block_cap(Some("3abc")), Some(3));
        assert_eq!(block_cap(Some("12abc")), Some(8));
        assert_eq!(block_cap(Some("1.5")), Some(1));
        assert_eq!(block_cap(Some("-1x")), Some(8));
        assert_eq!(block_cap(Some("lots")), Some(8));
    }

    #[test]
    fn outputs_match_claude_code() {
        assert_eq!(
            context_output("SessionStart", "a\"b"),
            r#"{"hookSpecificOutput":{"hookEventName":"SessionStart","additionalContext":"a\"b"}}"#
        );
        assert_eq!(block_output("r"), r#"{"decision":"block","reason":"r"}"#);
    }

    #[test]
    fn render_cuts_long_messages_on_char_boundaries() {
        let v = view(r#"{"seq":9,"from":"park","type":"status","content":"a\nb"}"#);
        assert_eq!(render(&v, "general", 4096), "#9 park [status]: a\n    b");
        let long = format!(
            r#"{{"seq":9,"from":"park","content":"{}"}}"#,
            "é".repeat(3000)
        );
        let r = render(&view(&long), "general", 200);
        assert!(r.len() <= 200, "{}", r.len());
        assert!(
            r.ends_with("`mt-read -c general --since 8` shows it whole]"),
            "{r}"
        );
    }

    #[test]
    fn task_actions() {
        let a = |tool, i: Value, r: Value| task_action(tool, &i, &r, "york").unwrap();
        assert_eq!(
            a(
                "TaskCreate",
                json!({"subject":"Add login"}),
                json!({"task":{"id":"3","subject":"Add login"}})
            ),
            Some("created task 3: Add login".into())
        );
        assert_eq!(
            a(
                "TaskCreate",
                json!({"subject":"X"}),
                json!("Task #12 created successfully: X")
            ),
            Some("created task 12: X".into())
        );
        assert_eq!(
            a(
                "TaskUpdate",
                json!({"taskId":"3","status":"in_progress","owner":"york"}),
                json!({})
            ),
            Some("claimed task 3".into())
        );
        assert_eq!(
            a("TaskUpdate", json!({"taskId":3,"owner":"park"}), json!({})),
            Some("assigned task 3 to park".into())
        );
        assert_eq!(
            a(
                "TaskUpdate",
                json!({"taskId":"3","status":"completed"}),
                json!({"success":true})
            ),
            Some("completed task 3".into())
        );
        assert_eq!(
            a(
                "TaskUpdate",
                json!({"taskId":"3","status":"completed"}),
                json!({"success":false})
            ),
            None
        );
        assert_eq!(
            a("TaskUpdate", json!({"status":"completed"}), json!({})),
            None
        );
        assert_eq!(a("Bash", json!({}), json!({})), None);
        let e =
            task_action("TaskUpdate", &json!({"taskId":"../x"}), &json!({}), "york").unwrap_err();
        assert_eq!(crate::exit::code_of(&e), DATAERR);
        let e = task_action(
            "TaskUpdate",
            &json!({"taskId":"1","owner":"A B"}),
            &json!({}),
            "york",
        )
        .unwrap_err();
        assert_eq!(crate::exit::code_of(&e), DATAERR);
    }
}
