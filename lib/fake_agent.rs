//! The fake agent: a stand-in for `claude -p` that speaks stream-json, for
//! tests, benchmarks and demos (MT_AGENT_CMD=mt-fake-agent). Not part of
//! coordination itself, hence outside `cli`; `cli::fake_agent` is only the
//! `mt-fake-agent` front end.

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::stream;

/// A fake headless agent speaking stream-json
///
/// Accepts Claude Code's headless command line (unknown options are
/// ignored), prints a system/init event with the session id it was given
/// (--session-id or --resume), and answers each user message read from
/// standard input with an assistant event and a result event carrying the
/// session id, per-turn usage, and cumulative modelUsage and total_cost_usd
/// (restored on --resume, as Claude Code does). It ends when its
/// standard input closes. Its behaviour can be changed with the options
/// below or the matching MT_FAKE_* variables.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Replay this stream-json capture (verbatim, as the answer to the
    /// first message) instead of the built-in answer
    #[arg(long, env = "MT_FAKE_SCRIPT", value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Comma-separated: hang, hang-first:NAME, crash, exit:N, grandchild,
    /// job, orphan, setsid, rate-limit, tool-wait, linger:MS, ignore-term
    #[arg(long, env = "MT_FAKE_MODE", value_name = "MODES")]
    pub mode: Option<String>,

    /// Append one JSON line with argv, environment, cwd and pids per start
    #[arg(long, env = "MT_FAKE_RECORD", value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Append one JSON line {"at_ns","text"} per message received
    #[arg(long, env = "MT_FAKE_RECEIPTS", value_name = "FILE")]
    pub receipts: Option<PathBuf>,

    /// Run this shell command for each message (MT_FAKE_TEXT holds the
    /// message, MT_FAKE_TURN its number) and answer with its output
    #[arg(long = "run", env = "MT_FAKE_RUN", value_name = "COMMAND")]
    pub run_cmd: Option<String>,

    /// Pause this many milliseconds before each event
    #[arg(long, env = "MT_FAKE_DELAY", value_name = "MS")]
    pub delay: Option<u64>,

    /// With mode rate-limit: the limit resets this many seconds after it
    /// is reported (default 3600)
    #[arg(long, env = "MT_FAKE_RESETS_IN", value_name = "SECONDS")]
    pub resets_in: Option<u64>,

    /// Session id to report
    #[arg(long, value_name = "UUID")]
    pub session_id: Option<String>,

    /// Session to resume (reported as the session id)
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,

    /// Model to report
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
}

/// Options that take a value in Claude Code's command line (and ours).
const WITH_VALUE: &[&str] = &[
    "--output-format",
    "--input-format",
    "--session-id",
    "--resume",
    "--model",
    "--append-system-prompt",
    "--permission-mode",
    "--add-dir",
    "--max-turns",
    "--max-budget-usd",
    "--settings",
    "--script",
    "--mode",
    "--record",
    "--receipts",
    "--run",
    "--delay",
    "--resets-in",
];

/// Lenient parsing: known options are read, anything else is ignored.
fn parse_args(argv: &[String]) -> Args {
    let mut flags: BTreeMap<&str, String> = BTreeMap::new();
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if let Some((k, v)) = a.split_once('=').filter(|(k, _)| WITH_VALUE.contains(k)) {
            flags.insert(
                WITH_VALUE.iter().find(|w| **w == k).expect("known"),
                v.into(),
            );
        } else if let Some(k) = WITH_VALUE.iter().find(|w| **w == a)
            && i + 1 < argv.len()
        {
            flags.insert(k, argv[i + 1].clone());
            i += 1;
        }
        i += 1;
    }
    let get = |flag: &str, env: &str| {
        flags
            .get(flag)
            .cloned()
            .or_else(|| std::env::var(env).ok().filter(|s| !s.is_empty()))
    };
    Args {
        script: get("--script", "MT_FAKE_SCRIPT").map(PathBuf::from),
        mode: get("--mode", "MT_FAKE_MODE"),
        record: get("--record", "MT_FAKE_RECORD").map(PathBuf::from),
        receipts: get("--receipts", "MT_FAKE_RECEIPTS").map(PathBuf::from),
        run_cmd: get("--run", "MT_FAKE_RUN"),
        delay: get("--delay", "MT_FAKE_DELAY").and_then(|d| d.parse().ok()),
        resets_in: get("--resets-in", "MT_FAKE_RESETS_IN").and_then(|d| d.parse().ok()),
        session_id: flags.get("--session-id").cloned(),
        resume: flags.get("--resume").cloned(),
        model: flags.get("--model").cloned(),
    }
}

/// Run as the fake agent with this command line (program name first).
pub fn run(argv: Vec<String>) -> Result<u8> {
    let args = parse_args(&argv);
    Fake::new(args, argv).run()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn append_line(path: &PathBuf, v: &Value) -> Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(&line)?;
    Ok(())
}

/// The text of a user message: a string, or the text blocks of an array.
fn message_text(v: &Value) -> String {
    match v.get("message").and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

struct Fake {
    args: Args,
    argv: Vec<String>,
    modes: Vec<String>,
    session: String,
    model: String,
    turns: u64,
    /// The session's cumulative figures, kept across resumes.
    totals: Totals,
    children: Vec<std::process::Child>,
}

/// What the fake keeps of a session, like Claude Code restoring its cost
/// on `--resume`: `CONFIG/mt-fake-agent/SESSION.json`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Totals {
    input: u64,
    output: u64,
    cost: f64,
}

fn totals_path(session: &str) -> Option<PathBuf> {
    crate::names::check("session", session).ok()?;
    let dir = crate::statedir::claude_config_dir().ok()?;
    Some(dir.join("mt-fake-agent").join(format!("{session}.json")))
}

impl Totals {
    fn load(session: &str) -> Totals {
        totals_path(session)
            .and_then(|p| fs::read(p).ok())
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    fn save(&self, session: &str) {
        if let Some(p) = totals_path(session) {
            let _ = p.parent().map(fs::create_dir_all);
            let _ = fs::write(p, serde_json::to_vec(self).unwrap_or_default());
        }
    }
}

impl Fake {
    fn new(args: Args, argv: Vec<String>) -> Fake {
        let modes = args
            .mode
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let session = args
            .resume
            .clone()
            .or(args.session_id.clone())
            .unwrap_or_else(crate::infra::id::new_uuid);
        let model = args.model.clone().unwrap_or_else(|| "fake-model".into());
        let totals = if args.resume.is_some() {
            Totals::load(&session)
        } else {
            Totals::default()
        };
        Fake {
            args,
            argv,
            modes,
            session,
            model,
            turns: 0,
            totals,
            children: Vec::new(),
        }
    }

    fn has(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    fn exit_code(&self) -> Option<i32> {
        self.modes
            .iter()
            .find_map(|m| m.strip_prefix("exit:")?.parse().ok())
    }

    fn emit(&self, v: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.emit_raw(&line)
    }

    fn emit_raw(&self, line: &[u8]) -> Result<()> {
        if let Some(ms) = self.args.delay {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let mut out = io::stdout().lock();
        out.write_all(line)?;
        out.flush()?;
        Ok(())
    }

    fn sleep_forever(&self) -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    fn start_children(&mut self) -> Result<[Option<u32>; 4]> {
        let mut grandchild = None;
        let mut job = None;
        let mut orphan = None;
        let mut setsid = None;
        if self.has("grandchild") {
            let c = Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start sleep")?;
            grandchild = Some(c.id());
            self.children.push(c);
        }
        if self.has("job") {
            // Like a shell job: its own process group, same session.
            use std::os::unix::process::CommandExt;
            let c = Command::new("sleep")
                .arg("1000")
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start sleep")?;
            job = Some(c.id());
            self.children.push(c);
        }
        if self.has("setsid") {
            // Like Claude Code's Bash tool: a session of its own, outside the
            // agent's process group and session.
            use std::os::unix::process::CommandExt;
            let mut c = Command::new("sleep");
            c.arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                c.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
            }
            let c = c.spawn().context("cannot start sleep")?;
            setsid = Some(c.id());
            self.children.push(c);
        }
        if self.has("orphan") {
            let out = Command::new("sh")
                .arg("-c")
                .arg("sleep 0.5 </dev/null >/dev/null 2>&1 & echo $!")
                .stdin(Stdio::null())
                .output()
                .context("cannot start sh")?;
            orphan = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        }
        Ok([grandchild, job, orphan, setsid])
    }

    fn record(&self, [grandchild, job, orphan, setsid]: [Option<u32>; 4]) -> Result<()> {
        let Some(path) = &self.args.record else {
            return Ok(());
        };
        let env: BTreeMap<String, String> = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let me = std::process::id() as i32;
        let p = crate::infra::procs::stat(me);
        append_line(
            path,
            &json!({
                "pid": me,
                "ppid": p.map(|p| p.ppid),
                "pgid": p.map(|p| p.pgid),
                "sid": p.map(|p| p.sid),
                "argv": self.argv,
                "env": env,
                "cwd": std::env::current_dir().ok(),
                "grandchild": grandchild,
                "job": job,
                "orphan": orphan,
                "setsid": setsid,
            }),
        )
    }

    fn init(&self) -> Result<()> {
        self.emit(&json!({
            "type": "system", "subtype": "init",
            "cwd": std::env::current_dir().ok(),
            "session_id": self.session,
            "tools": ["Bash", "Read", "Edit"],
            "mcp_servers": [],
            "model": self.model,
            "permissionMode": "default",
            "apiKeySource": "none",
        }))
    }

    fn assistant(&self, content: Value) -> Result<()> {
        self.emit(&json!({
            "type": "assistant",
            "message": {
                "id": format!("msg_fake_{}", self.turns),
                "type": "message", "role": "assistant", "model": self.model,
                "content": content,
                "stop_reason": null,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
            "parent_tool_use_id": null,
            "session_id": self.session,
        }))
    }

    /// `hang-first:NAME`: the agent named NAME (`MT_AGENT`) goes silent on a
    /// fresh start and behaves normally once resumed, like a session that
    /// stalled and was restarted.
    fn hangs_on_first_start(&self) -> bool {
        let me = std::env::var("MT_AGENT").unwrap_or_default();
        self.args.resume.is_none()
            && self
                .modes
                .iter()
                .any(|m| m.strip_prefix("hang-first:") == Some(me.as_str()))
    }

    fn run(mut self) -> Result<u8> {
        if self.has("ignore-term") {
            // SAFETY: setting a disposition to SIG_IGN installs no handler code.
            unsafe {
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGTERM,
                    nix::sys::signal::SigHandler::SigIgn,
                )?;
            }
        }
        let kids = self.start_children()?;
        self.record(kids)?;
        let scripted = self.args.script.is_some();
        if !scripted {
            self.init()?;
        }
        if self.has("crash") {
            std::process::abort();
        }
        if self.has("hang") || self.hangs_on_first_start() {
            self.sleep_forever();
        }
        let stdin = io::stdin();
        for line in stdin.lock().split(b'\n') {
            let line = line.context("cannot read standard input")?;
            let Some(v) = stream::parse(&line) else {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    eprintln!("mt-fake-agent: ignoring a line that is not JSON");
                }
                continue;
            };
            if v.get("type").and_then(Value::as_str) != Some("user") {
                continue;
            }
            let text = message_text(&v);
            if let Some(r) = &self.args.receipts {
                append_line(r, &json!({"at_ns": now_ns().to_string(), "text": text}))?;
            }
            self.turns += 1;
            self.turn(&text)?;
            if self.turns == 1
                && let Some(code) = self.exit_code()
            {
                return Ok(code.clamp(0, 255) as u8);
            }
        }
        if let Some(ms) = self
            .modes
            .iter()
            .find_map(|m| m.strip_prefix("linger:")?.parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(self.exit_code().unwrap_or(0).clamp(0, 255) as u8)
    }

    fn turn(&mut self, text: &str) -> Result<()> {
        if self.turns == 1 {
            if let Some(path) = &self.args.script {
                let data =
                    fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                for line in data.split_inclusive(|&b| b == b'\n') {
                    self.emit_raw(line)?;
                }
                if !data.ends_with(b"\n") && !data.is_empty() {
                    self.emit_raw(b"\n")?;
                }
                return Ok(());
            }
            if self.has("rate-limit") {
                let resets = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() + self.args.resets_in.unwrap_or(3600))
                    .unwrap_or(0);
                self.emit(&json!({
                    "type": "rate_limit_event",
                    "rate_limit_info": {"status": "rejected", "resetsAt": resets, "rateLimitType": "five_hour"},
                    "session_id": self.session,
                }))?;
            }
            if self.has("tool-wait") {
                self.assistant(
                    json!([{"type": "tool_use", "id": "toolu_fake_wait", "name": "Bash",
                    "input": {"command": "sleep 1000"}}]),
                )?;
                self.sleep_forever();
            }
        }
        let answer = match &self.args.run_cmd {
            Some(cmd) => {
                let id = format!("toolu_fake_{}", self.turns);
                self.assistant(json!([{"type": "tool_use", "id": id, "name": "Bash",
                    "input": {"command": cmd}}]))?;
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .env("MT_FAKE_TEXT", text)
                    .env("MT_FAKE_TURN", self.turns.to_string())
                    .stdin(Stdio::null())
                    .output();
                let (content, is_error) = match out {
                    Ok(o) => {
                        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                        s.push_str(&String::from_utf8_lossy(&o.stderr));
                        (s.trim_end().to_string(), !o.status.success())
                    }
                    Err(e) => (e.to_string(), true),
                };
                self.emit(&json!({
                    "type": "user",
                    "message": {"role": "user", "content": [{"type": "tool_result",
                        "tool_use_id": id, "content": content, "is_error": is_error}]},
                    "parent_tool_use_id": null,
                    "session_id": self.session,
                }))?;
                format!("ran it: {}", stream::clip(&content, 200))
            }
            None => format!("ok: {}", stream::clip(text, 200)),
        };
        self.assistant(json!([{"type": "text", "text": answer}]))?;
        let t = &mut self.totals;
        t.input += 10;
        t.output += 5;
        t.cost = ((t.cost + 0.01) * 100.0).round() / 100.0;
        let t = *t;
        t.save(&self.session);
        self.emit(&json!({
            "type": "result", "subtype": "success", "is_error": false,
            "duration_ms": 1, "duration_api_ms": 1, "num_turns": 1,
            "result": answer,
            "session_id": self.session,
            "total_cost_usd": t.cost,
            "usage": {"input_tokens": 10, "output_tokens": 5,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "modelUsage": {self.model.clone(): {"inputTokens": t.input, "outputTokens": t.output,
                      "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0, "costUSD": t.cost}},
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_arguments() {
        let argv: Vec<String> = "fake -p --verbose --output-format stream-json --weird \
             --session-id S --model=opus --max-turns 3 extra"
            .split_whitespace()
            .map(String::from)
            .collect();
        let a = parse_args(&argv);
        assert_eq!(a.session_id.as_deref(), Some("S"));
        assert_eq!(a.model.as_deref(), Some("opus"));
        assert!(a.resume.is_none());
    }
}
