//! A stand-in for the Anthropic Messages API on 127.0.0.1, so the real
//! Claude Code CLI can run whole sessions with no account and no traffic
//! beyond loopback.
//!
//! - `POST /v1/messages` answers with Server-Sent Events when the request
//!   asks for `"stream": true`, else with one JSON message;
//! - `POST /v1/messages/count_tokens` answers a rough count;
//! - anything else is a 404 in the API's error shape.
//!
//! What the "model" says comes from a `Script`: rules that match text in
//! the conversation and give a list of steps (text, a tool call, a pause).
//! The step to take is derived from the request alone (how many assistant
//! messages follow the message that triggered the rule), so a resumed
//! session continues where the transcript left off. Every request is
//! recorded for the test to inspect.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Token counts reported for every reply, so totals can be checked.
pub const INPUT_TOKENS: u64 = 100;
pub const OUTPUT_TOKENS: u64 = 10;
/// Longest request body accepted.
const MAX_BODY: usize = 64 << 20;

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// `x-claude-code-session-id`, when sent.
    pub session: Option<String>,
    /// `x-api-key`, when sent.
    pub api_key: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl Request {
    pub fn messages(&self) -> &[Value] {
        self.body["messages"].as_array().map_or(&[], Vec::as_slice)
    }

    /// A request of the main loop (it offers tools), not a side call.
    pub fn is_turn(&self) -> bool {
        self.path.starts_with("/v1/messages")
            && !self.path.contains("count_tokens")
            && self.body["tools"].as_array().is_some_and(|t| !t.is_empty())
    }

    /// Every piece of text the model would read: system prompt and messages,
    /// tool results included.
    pub fn all_text(&self) -> String {
        let mut s = String::new();
        collect_text(&self.body["system"], &mut s);
        for m in self.messages() {
            collect_text(&m["content"], &mut s);
        }
        s
    }

    /// Whether the model would read `needle` in this request.
    pub fn sees(&self, needle: &str) -> bool {
        self.all_text().contains(needle)
    }

    /// Names of the tools offered.
    pub fn tools(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Text of the last message (what this request answers).
    pub fn last_text(&self) -> String {
        let mut s = String::new();
        if let Some(m) = self.messages().last() {
            collect_text(&m["content"], &mut s);
        }
        s
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::String(t) => {
            out.push_str(t);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Object(o) => {
            for k in ["text", "content"] {
                if let Some(x) = o.get(k) {
                    collect_text(x, out);
                }
            }
        }
        _ => {}
    }
}

/// One thing the model does in a reply.
#[derive(Debug, Clone)]
pub enum Step {
    Text(String),
    /// A tool call: name and input.
    Tool(String, Value),
    /// Wait this long before answering with the next step (a slow model).
    Pause(Duration, Box<Step>),
}

impl Step {
    pub fn text(t: impl Into<String>) -> Step {
        Step::Text(t.into())
    }

    /// A Bash tool call running `command`.
    pub fn bash(command: impl Into<String>) -> Step {
        Step::Tool(
            "Bash".into(),
            json!({"command": command.into(), "description": "run a command"}),
        )
    }

    pub fn tool(name: &str, input: Value) -> Step {
        Step::Tool(name.into(), input)
    }

    pub fn after(self, d: Duration) -> Step {
        Step::Pause(d, Box::new(self))
    }
}

/// The steps of a rule, made from the request and the text of the message
/// that triggered the rule.
pub type Steps = Arc<dyn Fn(&Request, &str) -> Vec<Step> + Send + Sync>;

/// When a rule applies, and what the model then does, one step per reply.
#[derive(Clone)]
pub struct Rule {
    pub when: String,
    pub steps: Steps,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({:?})", self.when)
    }
}

/// The model's behaviour: the rule whose trigger text appears in the latest
/// user message wins (prompts, nudges, tool results, Stop hook feedback;
/// not `system` messages, which carry hook context and messages sent
/// mid-turn); with none, the model answers `"ok"`.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub rules: Vec<Rule>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// When a user message holds `when`, take `steps` one reply at a time.
    pub fn on(self, when: &str, steps: Vec<Step>) -> Script {
        self.on_with(when, move |_, _| steps.clone())
    }

    /// Like `on`, with steps made from the request and the triggering
    /// message's text (a model reads the task number out of its prompt, or
    /// answers a question it was sent mid-turn). The steps before the one
    /// to take must not change from one request to the next.
    pub fn on_with(
        mut self,
        when: &str,
        steps: impl Fn(&Request, &str) -> Vec<Step> + Send + Sync + 'static,
    ) -> Script {
        self.rules.push(Rule {
            when: when.into(),
            steps: Arc::new(steps),
        });
        self
    }

    /// The reply to `req`.
    pub fn reply(&self, req: &Request) -> Step {
        let msgs = req.messages();
        // The latest non-assistant message holding a trigger, and the rule.
        let mut best: Option<(usize, &Rule, String)> = None;
        for (i, m) in msgs.iter().enumerate() {
            if m["role"] == "assistant" {
                continue;
            }
            let mut t = String::new();
            collect_text(&m["content"], &mut t);
            if m["role"] == "system" {
                // Hook context and messages sent mid-turn: background a
                // rule's steps may look at, never a trigger.
                continue;
            }
            for r in &self.rules {
                if t.contains(&r.when) && best.as_ref().is_none_or(|(j, ..)| i >= *j) {
                    best = Some((i, r, t.clone()));
                }
            }
        }
        let Some((at, rule, trigger)) = best else {
            return Step::text("ok");
        };
        let done = msgs[at..]
            .iter()
            .filter(|m| m["role"] == "assistant")
            .count();
        (rule.steps)(req, &trigger)
            .get(done)
            .cloned()
            .unwrap_or_else(|| Step::text("ok"))
    }
}

struct Shared {
    script: Mutex<Script>,
    log: Mutex<Vec<Request>>,
    changed: Condvar,
    stop: AtomicBool,
    ids: AtomicU64,
}

/// The running stand-in; stops (and closes every connection) when dropped.
pub struct Api {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Api {
    pub fn start(script: Script) -> Api {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            log: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            ids: AtomicU64::new(1),
        });
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (sh, cs) = (shared.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                if let Ok(c) = s.try_clone() {
                    cs.lock().unwrap().push(c);
                }
                let sh = sh.clone();
                std::thread::spawn(move || serve(s, &sh));
            }
        });
        Api {
            addr,
            shared,
            accept: Some(accept),
            conns,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the script (for sessions started from now on, and the next
    /// reply of running ones).
    pub fn set_script(&self, s: Script) {
        *self.shared.script.lock().unwrap() = s;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The main-loop requests so far.
    pub fn turns(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_turn())
            .collect()
    }

    /// Wait until some request satisfies `f`; returns it.
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&Request) -> bool) -> Request {
        let until = Instant::now() + limit;
        let mut log = self.shared.log.lock().unwrap();
        loop {
            if let Some(r) = log.iter().find(|r| f(r)) {
                return r.clone();
            }
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for a request: {what}");
            log = self.shared.changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Whether any main-loop request showed the model `needle`.
    pub fn model_saw(&self, needle: &str) -> bool {
        self.turns().iter().any(|r| r.sees(needle))
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serve one connection: HTTP/1.1 requests with keep-alive.
fn serve(stream: TcpStream, sh: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut rd = BufReader::new(stream);
    while !sh.stop.load(Ordering::SeqCst) {
        let Some((method, path, headers)) = read_head(&mut rd) else {
            return;
        };
        let Some(body) = read_body(&mut rd, &headers) else {
            let _ = respond(&mut out, 400, "application/json", br#"{"type":"error"}"#);
            return;
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let header = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let req = Request {
            path: path.clone(),
            session: header("x-claude-code-session-id"),
            api_key: header("x-api-key"),
            body,
            at: Instant::now(),
        };
        let ok = if method != "POST" {
            respond(&mut out, 404, "application/json", &not_found())
        } else if path.starts_with("/v1/messages/count_tokens") {
            let n = req.all_text().len() as u64 / 4 + 1;
            let b = serde_json::to_vec(&json!({"input_tokens": n})).unwrap();
            respond(&mut out, 200, "application/json", &b)
        } else if path.starts_with("/v1/messages") {
            let step = sh.script.lock().unwrap().reply(&req);
            record(sh, req.clone());
            answer(&mut out, sh, &req, step)
        } else {
            respond(&mut out, 404, "application/json", &not_found())
        };
        if path.starts_with("/v1/messages/count_tokens") || method != "POST" {
            record(sh, req);
        }
        if !ok {
            return;
        }
    }
}

fn record(sh: &Shared, req: Request) {
    sh.log.lock().unwrap().push(req);
    sh.changed.notify_all();
}

fn not_found() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"type":"error","error":{"type":"not_found_error","message":"not here"}}),
    )
    .unwrap()
}

type Headers = Vec<(String, String)>;

fn read_head(rd: &mut BufReader<TcpStream>) -> Option<(String, String, Headers)> {
    let mut line = String::new();
    if rd.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((method, path, headers))
}

fn read_body(rd: &mut BufReader<TcpStream>, headers: &Headers) -> Option<Vec<u8>> {
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            rd.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if body.len() + n > MAX_BODY {
                return None;
            }
            let mut chunk = vec![0; n + 2];
            rd.read_exact(&mut chunk).ok()?;
            if n == 0 {
                return Some(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let n: usize = get("content-length").map_or(Some(0), |v| v.parse().ok())?;
    if n > MAX_BODY {
        return None;
    }
    let mut body = vec![0; n];
    rd.read_exact(&mut body).ok()?;
    Some(body)
}

fn respond(out: &mut TcpStream, code: u16, ctype: &str, body: &[u8]) -> bool {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
         request-id: req_standin\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())
        .and_then(|_| out.write_all(body))
        .and_then(|_| out.flush())
        .is_ok()
}

/// Answer a Messages request with `step`, streamed or whole.
fn answer(out: &mut TcpStream, sh: &Shared, req: &Request, step: Step) -> bool {
    let mut step = step;
    while let Step::Pause(d, next) = step {
        std::thread::sleep(d);
        step = *next;
    }
    let n = sh.ids.fetch_add(1, Ordering::SeqCst);
    let model = req.body["model"].as_str().unwrap_or("claude-standin");
    let (block, stop_reason) = match &step {
        Step::Text(t) => (json!({"type": "text", "text": t}), "end_turn"),
        Step::Tool(name, input) => (
            json!({"type": "tool_use", "id": format!("toolu_standin_{n}"), "name": name, "input": input}),
            "tool_use",
        ),
        Step::Pause(..) => unreachable!(),
    };
    let usage = json!({"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let id = format!("msg_standin_{n}");
    if req.body["stream"] != true {
        let msg = json!({"id": id, "type": "message", "role": "assistant", "model": model,
                         "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
                         "usage": usage});
        return respond(
            out,
            200,
            "application/json",
            &serde_json::to_vec(&msg).unwrap(),
        );
    }
    let (start, delta) = match &step {
        Step::Text(t) => (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": t}),
        ),
        Step::Tool(..) => {
            let mut b = block.clone();
            b["input"] = json!({});
            (
                b,
                json!({"type": "input_json_delta",
                       "partial_json": serde_json::to_string(&block["input"]).unwrap()}),
            )
        }
        Step::Pause(..) => unreachable!(),
    };
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message",
                   "role": "assistant", "model": model, "content": [], "stop_reason": null,
                   "stop_sequence": null,
                   "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": start}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason,
                   "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut body = Vec::new();
    for (name, data) in events {
        body.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    }
    respond(out, 200, "text/event-stream", &body)
}
