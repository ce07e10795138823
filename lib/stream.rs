//! Claude Code's stream-json events: parsing that tolerates unknown event
//! types, unknown fields and malformed lines; the status derived from them;
//! and a readable transcript.
//!
//! Lines the supervisor adds to events.jsonl have `"type":"mt"` and a
//! `subtype` of `start`, `input`, `exit` or `note`.

use serde_json::{Value, json};
use std::fmt::Write as _;

use crate::agent::{RateLimit, State, Status};

/// What kind of event a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Init,
    Assistant,
    User,
    Result,
    RateLimit,
    /// Another `system` subtype (`api_retry`, `hook_response`, ...).
    System(String),
    /// A line written by the supervisor.
    Mt(String),
    /// A JSON object of a type we do not know.
    Other(String),
    /// Not a JSON object.
    Malformed,
}

/// Parse one line into a JSON object, or `None` for a malformed line.
pub fn parse(line: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(line) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

pub fn kind(v: &Value) -> Kind {
    let t = v.get("type").and_then(Value::as_str).unwrap_or("");
    let sub = || {
        v.get("subtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match t {
        "system" if sub() == "init" => Kind::Init,
        "system" => Kind::System(sub()),
        "assistant" => Kind::Assistant,
        "user" => Kind::User,
        "result" => Kind::Result,
        "rate_limit_event" => Kind::RateLimit,
        "mt" => Kind::Mt(sub()),
        other => Kind::Other(other.to_string()),
    }
}

/// The stream-json line that gives the agent one user turn.
pub fn user_message(text: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": null,
        "session_id": "",
    }))
    .expect("json");
    line.push(b'\n');
    line
}

/// A supervisor line for events.jsonl.
pub fn mt_line(subtype: &str, at: &str, mut fields: Value) -> Vec<u8> {
    if let Value::Object(m) = &mut fields {
        m.insert("type".into(), "mt".into());
        m.insert("subtype".into(), subtype.into());
        m.insert("timestamp".into(), at.into());
    }
    let mut line = serde_json::to_vec(&fields).expect("json");
    line.push(b'\n');
    line
}

/// Something worth telling the channel about.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The rate-limit status changed.
    RateLimit(RateLimit),
}

/// Token and cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
    cost: f64,
}

/// Derives `Status` from the events of one run, on top of the totals of
/// earlier runs of the same session.
///
/// Claude Code's `modelUsage` and `total_cost_usd` are cumulative over the
/// whole session, and `--resume` restores them from the earlier runs: when a
/// result carries them they *are* the session's totals. Only a result
/// without `modelUsage` (an older CLI, a replayed capture) is counted by
/// adding its per-turn `usage` to the totals so far.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub status: Status,
    /// Turns and totals of earlier runs.
    base_turns: u64,
    base: Totals,
    /// Turns of this run, and per-turn usage added up in this run.
    turns: u64,
    added: Totals,
    /// The session's cumulative totals, from the latest result that had them.
    session: Option<Totals>,
    /// The session's cumulative cost, from a result without `modelUsage`.
    cost: Option<f64>,
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Tracker {
    /// Start a run from `status`; with `keep_totals` its turns, tokens and
    /// cost carry over (a resumed session), else they start at zero.
    pub fn new(mut status: Status, keep_totals: bool) -> Tracker {
        let (base_turns, base) = if keep_totals {
            let base = Totals {
                input: status.input_tokens,
                output: status.output_tokens,
                cache_read: status.cache_read_tokens,
                cache_creation: status.cache_creation_tokens,
                cost: status.cost_usd,
            };
            (status.turns, base)
        } else {
            (0, Totals::default())
        };
        status.pending = 0;
        status.open_tool_calls.clear();
        status.background_tasks = 0;
        let mut t = Tracker {
            status,
            base_turns,
            base,
            turns: 0,
            added: Totals::default(),
            session: None,
            cost: None,
        };
        t.apply_totals();
        t
    }

    fn apply_totals(&mut self) {
        let (b, a) = (self.base, self.added);
        let t = self.session.unwrap_or(Totals {
            input: b.input + a.input,
            output: b.output + a.output,
            cache_read: b.cache_read + a.cache_read,
            cache_creation: b.cache_creation + a.cache_creation,
            cost: self.cost.unwrap_or(b.cost + a.cost),
        });
        let st = &mut self.status;
        st.turns = self.base_turns + self.turns;
        st.input_tokens = t.input;
        st.output_tokens = t.output;
        st.cache_read_tokens = t.cache_read;
        st.cache_creation_tokens = t.cache_creation;
        st.cost_usd = t.cost;
    }

    /// A user message was written to the agent's stdin.
    pub fn on_input(&mut self) {
        self.status.pending += 1;
        self.status.inputs += 1;
        self.status.state = State::Working;
    }

    /// One line from the agent's stdout, received at `now`.
    pub fn on_line(&mut self, line: &[u8], now: &str) -> Vec<Notice> {
        let mut notices = Vec::new();
        let st = &mut self.status;
        st.events += 1;
        st.last_event_at = Some(now.to_string());
        let Some(v) = parse(line) else {
            st.malformed += 1;
            st.last_event_type = Some("malformed".into());
            return notices;
        };
        let k = kind(&v);
        st.last_event_type = Some(match &k {
            Kind::System(sub) if !sub.is_empty() => format!("system/{sub}"),
            _ => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        });
        if let Some(id) = s(&v, "session_id") {
            st.session_id = Some(id);
        }
        match k {
            Kind::Init => {
                if let Some(m) = s(&v, "model") {
                    st.model = Some(m);
                }
                self.settle();
            }
            Kind::Assistant => {
                if let Some(m) = v.get("message").and_then(|m| s(m, "model")) {
                    st.model = Some(m);
                }
                for id in blocks_of(&v, "tool_use", "id") {
                    if st.open_tool_calls.len() < MAX_OPEN_TOOL_CALLS
                        && !st.open_tool_calls.contains(&id)
                    {
                        st.open_tool_calls.push(id);
                    }
                }
                st.state = State::Working;
            }
            Kind::User => {
                let done = blocks_of(&v, "tool_result", "tool_use_id");
                st.open_tool_calls.retain(|id| !done.contains(id));
                st.state = State::Working;
            }
            Kind::Result => {
                self.on_result(&v);
            }
            Kind::RateLimit => {
                let info = v.get("rate_limit_info").unwrap_or(&Value::Null);
                let rl = RateLimit {
                    status: s(info, "status").unwrap_or_else(|| "unknown".into()),
                    resets_at: info
                        .get("resetsAt")
                        .and_then(Value::as_i64)
                        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                        .map(crate::infra::time::stamp),
                    kind: s(info, "rateLimitType"),
                    at: now.to_string(),
                };
                let changed = st
                    .rate_limit
                    .as_ref()
                    .is_none_or(|old| old.status != rl.status);
                st.rate_limit = Some(rl.clone());
                if changed {
                    notices.push(Notice::RateLimit(rl));
                }
            }
            Kind::System(sub) if sub == "background_tasks_changed" => {
                // The whole list each time: a task that runs on after the
                // turn ended means the session is not idle.
                st.background_tasks = v
                    .get("tasks")
                    .and_then(Value::as_array)
                    .map_or(0, |t| t.len() as u64);
                if st.state == State::Starting {
                    self.settle();
                }
            }
            Kind::System(_) | Kind::Mt(_) | Kind::Other(_) | Kind::Malformed => {
                if st.state == State::Starting {
                    self.settle();
                }
            }
        }
        notices
    }

    /// After a system event or a turn's end: working while turns are owed.
    fn settle(&mut self) {
        let st = &mut self.status;
        st.state = if st.pending > 0 {
            State::Working
        } else {
            State::Idle
        };
    }

    fn on_result(&mut self, v: &Value) {
        // A result that answers none of our inputs (Claude Code started the
        // turn itself, e.g. for a finished background task) is no turn of
        // ours, and the inputs waiting for an answer still wait.
        let answers_input = answers_input(v);
        if answers_input {
            self.turns += 1;
        }
        match session_totals(v) {
            Some(t) => {
                self.session = Some(t);
                self.cost = None;
            }
            None => {
                // Per-turn usage: add it, on top of the session's totals when
                // an earlier result gave them.
                let us = v.get("usage").unwrap_or(&Value::Null);
                let t = self.session.as_mut().unwrap_or(&mut self.added);
                t.input += u(us, "input_tokens");
                t.output += u(us, "output_tokens");
                t.cache_read += u(us, "cache_read_input_tokens");
                t.cache_creation += u(us, "cache_creation_input_tokens");
                if let Some(c) = v.get("total_cost_usd").and_then(Value::as_f64) {
                    // Cumulative over the session, like modelUsage.
                    match &mut self.session {
                        Some(t) => t.cost = c,
                        None => self.cost = Some(c),
                    }
                }
            }
        }
        self.apply_totals();
        let st = &mut self.status;
        if answers_input {
            st.num_turns = v.get("num_turns").and_then(Value::as_u64);
        }
        let sub = s(v, "subtype").unwrap_or_else(|| "success".into());
        let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false);
        if is_error || sub != "success" {
            st.error = Some(if sub == "success" {
                "error".into()
            } else {
                sub
            });
            st.error_detail = s(v, "result").map(|r| clip(&r, 300));
        }
        if answers_input {
            // Claude Code folds a message sent mid-turn into the running
            // turn, so one result may answer several inputs: it says how many
            // turns are still queued.
            let left = st.pending.saturating_sub(1);
            st.pending = match v.get("queued_turn_count").and_then(Value::as_u64) {
                Some(q) => q.min(left),
                None => left,
            };
        }
        // A turn that ended has no tool call left open.
        st.open_tool_calls.clear();
        self.settle();
    }
}

/// Whether a result answers an input: Claude Code marks the turns it starts
/// by itself with an `origin` (`task-notification`, ...), and a result with
/// `num_turns: 0` made no model call for anyone.
fn answers_input(v: &Value) -> bool {
    let own_origin = v
        .get("origin")
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
        .is_some_and(|k| k != "user");
    let no_turn = v.get("num_turns").and_then(Value::as_u64) == Some(0);
    !own_origin && !no_turn
}

/// The session's cumulative totals, when the result carries `modelUsage`.
fn session_totals(v: &Value) -> Option<Totals> {
    let models = v.get("modelUsage").and_then(Value::as_object)?;
    if models.is_empty() {
        return None;
    }
    let mut t = Totals::default();
    let mut model_cost = 0.0;
    for m in models.values() {
        t.input += u(m, "inputTokens");
        t.output += u(m, "outputTokens");
        t.cache_read += u(m, "cacheReadInputTokens");
        t.cache_creation += u(m, "cacheCreationInputTokens");
        model_cost += m.get("costUSD").and_then(Value::as_f64).unwrap_or(0.0);
    }
    t.cost = v
        .get("total_cost_usd")
        .and_then(Value::as_f64)
        .unwrap_or(model_cost);
    Some(t)
}

/// How many open tool calls status.json lists at most (parallel calls and
/// subagents stay far below; the bound only keeps a broken stream small).
const MAX_OPEN_TOOL_CALLS: usize = 64;

/// The `key` strings of the content blocks of type `kind` in a message.
fn blocks_of(v: &Value, kind: &str, key: &str) -> Vec<String> {
    let Some(Value::Array(blocks)) = v.get("message").and_then(|m| m.get("content")) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|b| s(b, key))
        .collect()
}

/// At most `n` characters of `s`, on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one = one.trim();
    if one.chars().count() <= n {
        one.to_string()
    } else {
        let mut t: String = one.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `1 turn`, `3 turns`.
pub fn turns(n: u64) -> String {
    format!("{n} turn{}", if n == 1 { "" } else { "s" })
}

fn tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Token counts as shown by the tools: `1.2k/340`.
pub fn tokens_pair(input: u64, output: u64) -> String {
    format!("{}/{}", tokens(input), tokens(output))
}

/// One event as transcript lines (each ending in `\n`); nothing for events
/// a reader does not need (hooks, partial messages, ...).
pub fn render(line: &[u8]) -> String {
    let mut out = String::new();
    let Some(v) = parse(line) else {
        let _ = writeln!(out, "?? {}", clip(&String::from_utf8_lossy(line), 200));
        return out;
    };
    match kind(&v) {
        Kind::Init => {
            let _ = writeln!(
                out,
                "── session {} · {} · {}",
                s(&v, "session_id").unwrap_or_else(|| "?".into()),
                s(&v, "model").unwrap_or_else(|| "?".into()),
                s(&v, "cwd").unwrap_or_default()
            );
        }
        Kind::Assistant | Kind::User => {
            let assistant = kind(&v) == Kind::Assistant;
            let content = v.get("message").and_then(|m| m.get("content"));
            match content {
                Some(Value::String(t)) if !assistant => {
                    let _ = writeln!(out, "> {}", t.trim_end());
                }
                Some(Value::String(t)) => {
                    let _ = writeln!(out, "{}", t.trim_end());
                }
                Some(Value::Array(blocks)) => {
                    for b in blocks {
                        render_block(b, assistant, &mut out);
                    }
                }
                _ => {}
            }
        }
        Kind::Result => {
            let us = v.get("usage").unwrap_or(&Value::Null);
            let mut line = format!(
                "── {} · {} · {} tokens",
                s(&v, "subtype").unwrap_or_else(|| "result".into()),
                turns(u(&v, "num_turns")),
                tokens_pair(u(us, "input_tokens"), u(us, "output_tokens"))
            );
            if let Some(c) = v.get("total_cost_usd").and_then(Value::as_f64) {
                let _ = write!(line, " · ${c:.4}");
            }
            if let Some(ms) = v.get("duration_ms").and_then(Value::as_u64) {
                let _ = write!(line, " · {:.1}s", ms as f64 / 1000.0);
            }
            let _ = writeln!(out, "{line}");
        }
        Kind::RateLimit => {
            let info = v.get("rate_limit_info").unwrap_or(&Value::Null);
            let _ = writeln!(
                out,
                "── rate limit {} ({}){}",
                s(info, "status").unwrap_or_else(|| "?".into()),
                s(info, "rateLimitType").unwrap_or_else(|| "?".into()),
                info.get("resetsAt")
                    .and_then(Value::as_i64)
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(|t| format!(", resets {}", crate::infra::time::stamp(t)))
                    .unwrap_or_default()
            );
        }
        Kind::System(sub) if sub == "api_retry" || sub == "compact_boundary" => {
            let _ = writeln!(out, "── {sub}");
        }
        Kind::Mt(sub) => match sub.as_str() {
            "input" => {
                for (i, l) in s(&v, "text").unwrap_or_default().lines().enumerate() {
                    let _ = writeln!(out, "{} {l}", if i == 0 { ">>" } else { "  " });
                }
            }
            "start" => {
                let _ = writeln!(
                    out,
                    "── started pid {} · {}",
                    u(&v, "pid"),
                    s(&v, "timestamp").unwrap_or_default()
                );
            }
            "exit" => {
                let _ = writeln!(
                    out,
                    "── {} · {}",
                    s(&v, "text").unwrap_or_else(|| "exited".into()),
                    s(&v, "timestamp").unwrap_or_default()
                );
            }
            _ => {
                if let Some(t) = s(&v, "text") {
                    let _ = writeln!(out, "── {t}");
                }
            }
        },
        Kind::System(_) | Kind::Other(_) | Kind::Malformed => {}
    }
    out
}

fn render_block(b: &Value, assistant: bool, out: &mut String) {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => {
            let t = b.get("text").and_then(Value::as_str).unwrap_or("");
            if assistant {
                let _ = writeln!(out, "{}", t.trim_end());
            } else {
                let _ = writeln!(out, "> {}", clip(t, 200));
            }
        }
        Some("tool_use") => {
            let input = b.get("input").map(|i| i.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "→ {} {}",
                s(b, "name").unwrap_or_else(|| "?".into()),
                clip(&input, 160)
            );
        }
        Some("tool_result") => {
            let text = match b.get("content") {
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            };
            let err = b.get("is_error").and_then(Value::as_bool).unwrap_or(false);
            let _ = writeln!(
                out,
                "← {}{}",
                if err { "error: " } else { "" },
                clip(&text, 160)
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Tracker, lines: &[&str]) -> Vec<Notice> {
        let mut n = Vec::new();
        for l in lines {
            n.extend(t.on_line(l.as_bytes(), "2026-01-01T00:00:00.000Z"));
        }
        n
    }

    #[test]
    fn states_follow_turns() {
        let mut t = Tracker::new(Status::default(), false);
        assert_eq!(t.status.state, State::Starting);
        t.on_input();
        feed(
            &mut t,
            &[r#"{"type":"system","subtype":"init","session_id":"s1","model":"m1"}"#],
        );
        assert_eq!(t.status.state, State::Working);
        assert_eq!(t.status.session_id.as_deref(), Some("s1"));
        feed(
            &mut t,
            &[
                r#"{"type":"result","subtype":"success","num_turns":2,"total_cost_usd":0.5,"usage":{"input_tokens":10,"output_tokens":3}}"#,
            ],
        );
        assert_eq!(t.status.state, State::Idle);
        t.on_input();
        feed(
            &mut t,
            &[
                r#"{"type":"result","subtype":"error_max_turns","is_error":true,"total_cost_usd":0.75,"usage":{"input_tokens":1,"output_tokens":1}}"#,
            ],
        );
        let st = &t.status;
        assert_eq!((st.turns, st.input_tokens, st.output_tokens), (2, 11, 4));
        assert_eq!(st.cost_usd, 0.75, "cost is cumulative: the latest wins");
        assert_eq!(st.error.as_deref(), Some("error_max_turns"));
        assert_eq!(st.state, State::Idle);
    }

    #[test]
    fn open_tool_calls_follow_uses_and_results() {
        let mut t = Tracker::new(Status::default(), false);
        t.on_input();
        feed(
            &mut t,
            &[
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"a","name":"Bash"},{"type":"tool_use","id":"b","name":"Task"}]}}"#,
                r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"a"}]}}"#,
            ],
        );
        assert_eq!(t.status.open_tool_calls, ["b"]);
        // A subagent's own calls open and close inside the parent's.
        feed(
            &mut t,
            &[
                r#"{"type":"assistant","parent_tool_use_id":"b","message":{"content":[{"type":"tool_use","id":"c"}]}}"#,
                r#"{"type":"user","parent_tool_use_id":"b","message":{"content":[{"type":"tool_result","tool_use_id":"c"}]}}"#,
            ],
        );
        assert_eq!(t.status.open_tool_calls, ["b"]);
        feed(&mut t, &[r#"{"type":"result","subtype":"success"}"#]);
        assert!(t.status.open_tool_calls.is_empty());
    }

    #[test]
    fn model_usage_is_the_session_total_across_resumes() {
        // A resumed session: Claude Code restores its cumulative figures, so
        // the first result of this run already includes the earlier runs.
        let mut t = Tracker::new(
            Status {
                turns: 5,
                cost_usd: 1.0,
                input_tokens: 100,
                ..Status::default()
            },
            true,
        );
        assert_eq!((t.status.turns, t.status.input_tokens), (5, 100));
        for (c, n) in [(1.1, 120), (1.2, 125)] {
            t.on_input();
            feed(
                &mut t,
                &[&format!(
                    r#"{{"type":"result","num_turns":1,"total_cost_usd":{c},"usage":{{"input_tokens":7}},"modelUsage":{{"a":{{"inputTokens":{},"outputTokens":2}},"b":{{"inputTokens":5}}}}}}"#,
                    n - 5
                )],
            );
            assert_eq!(
                t.status.input_tokens, n,
                "modelUsage is the total, not added"
            );
        }
        assert_eq!(t.status.turns, 7);
        assert_eq!(t.status.output_tokens, 2);
        assert!((t.status.cost_usd - 1.2).abs() < 1e-9);
        // Without modelUsage, per-turn usage adds to what came before.
        feed(
            &mut t,
            &[r#"{"type":"result","num_turns":1,"usage":{"input_tokens":7}}"#],
        );
        assert_eq!(t.status.input_tokens, 132);
    }

    #[test]
    fn results_claude_code_started_itself_are_not_turns() {
        let mut t = Tracker::new(Status::default(), false);
        t.on_input();
        feed(
            &mut t,
            &[
                r#"{"type":"system","subtype":"init","session_id":"s"}"#,
                r#"{"type":"system","subtype":"background_tasks_changed","tasks":[{"task_id":"x"}]}"#,
                r#"{"type":"assistant","message":{"content":[{"type":"text","text":"hm"}]}}"#,
                // A background task ended while our input's turn runs.
                r#"{"type":"result","num_turns":0,"origin":{"kind":"task-notification"},"modelUsage":{"m":{"inputTokens":3}}}"#,
            ],
        );
        assert_eq!(t.status.state, State::Working, "our input is still owed");
        assert_eq!((t.status.turns, t.status.pending), (0, 1));
        assert_eq!(t.status.background_tasks, 1);
        feed(
            &mut t,
            &[
                r#"{"type":"system","subtype":"background_tasks_changed","tasks":[]}"#,
                r#"{"type":"result","num_turns":2,"modelUsage":{"m":{"inputTokens":9}}}"#,
                r#"{"type":"system","subtype":"init","session_id":"s"}"#,
                r#"{"type":"result","num_turns":1,"origin":{"kind":"task-notification"},"modelUsage":{"m":{"inputTokens":12}}}"#,
            ],
        );
        let st = &t.status;
        assert_eq!((st.turns, st.pending, st.state), (1, 0, State::Idle));
        assert_eq!((st.input_tokens, st.background_tasks), (12, 0));
        assert_eq!(st.num_turns, Some(2), "num_turns of the last answer");
    }

    /// The real CLI's output (captured by this project's harness): a
    /// background task's own turn, then a resume whose figures include the
    /// first run's.
    #[test]
    fn a_captured_resume_keeps_claude_codes_totals() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude/stream-json");
        let run = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let mut t = Tracker::new(Status::default(), false);
        t.on_input();
        for l in run("background_task_then_resume.run1.jsonl").lines() {
            t.on_line(l.as_bytes(), "2026-01-01T00:00:00.000Z");
        }
        assert_eq!((t.status.turns, t.status.pending), (1, 0));
        assert_eq!(
            (t.status.state, t.status.background_tasks),
            (State::Idle, 0)
        );
        let mut t = Tracker::new(t.status, true);
        t.on_input();
        let second = run("background_task_then_resume.run2.jsonl");
        for l in second.lines() {
            t.on_line(l.as_bytes(), "2026-01-01T00:00:00.000Z");
        }
        let last: Value = second
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .rfind(|v| v["type"] == "result")
            .unwrap();
        let mu = last["modelUsage"].as_object().unwrap();
        let input: u64 = mu.values().map(|m| u(m, "inputTokens")).sum();
        assert_eq!(t.status.input_tokens, input);
        assert_eq!(Some(t.status.cost_usd), last["total_cost_usd"].as_f64());
        assert_eq!((t.status.turns, t.status.runs), (2, 0));
    }

    #[test]
    fn tolerant_of_junk_and_reports_rate_limits_once() {
        let mut t = Tracker::new(Status::default(), false);
        let n = feed(
            &mut t,
            &[
                "not json",
                "[1,2]",
                r#"{"type":"brand_new","x":{}}"#,
                r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1700000000,"rateLimitType":"five_hour"}}"#,
                r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1700000000,"rateLimitType":"five_hour"}}"#,
            ],
        );
        assert_eq!(t.status.malformed, 2);
        assert_eq!(t.status.events, 5);
        assert_eq!(n.len(), 1);
        let rl = t.status.rate_limit.clone().unwrap();
        assert_eq!(rl.status, "rejected");
        assert_eq!(rl.resets_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    }

    #[test]
    fn fixtures_parse_and_render() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude/stream-json");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for f in rd {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            let mut t = Tracker::new(Status::default(), false);
            for line in text.lines() {
                assert!(parse(line.as_bytes()).is_some(), "{line}");
                t.on_line(line.as_bytes(), "x");
                let _ = render(line.as_bytes());
            }
            assert_eq!(t.status.malformed, 0);
        }
    }

    #[test]
    fn renders_tools_and_results() {
        let r = render(
            br#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"},{"type":"tool_use","name":"Bash","input":{"command":"ls"}}]}}"#,
        );
        assert_eq!(r, "hi\n→ Bash {\"command\":\"ls\"}\n");
        let r = render(
            br#"{"type":"user","message":{"content":[{"type":"tool_result","content":"nope","is_error":true}]}}"#,
        );
        assert_eq!(r, "← error: nope\n");
        let r = render(
            br#"{"type":"result","subtype":"success","num_turns":4,"total_cost_usd":0.17,"usage":{"input_tokens":11,"output_tokens":207},"duration_ms":10699}"#,
        );
        assert_eq!(
            r,
            "── success · 4 turns · 11/207 tokens · $0.1700 · 10.7s\n"
        );
        assert!(render(&user_message("x")).starts_with("> x"));
    }
}
