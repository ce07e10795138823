//! mt-ps: list agents and what they are doing.

use anyhow::Result;
use clap::Parser;
use serde_json::{Value, json};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use super::{Common, Tool};
use crate::agent;
use crate::exit::{NO, OK};
use crate::infra::time;
use crate::names;
use crate::stream;

/// List agents and what they are doing
///
/// One line per agent: name, state, age of the last event, task, worktree,
/// session, tokens in/out, cost, exit code. The state is starting, working,
/// idle, exited or failed as the supervisor recorded it, lost when the
/// record says running but no supervisor holds the agent's liveness lock, or
/// attached while a person has the session on a terminal (mt-attach).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// One JSON object per agent, with full values
    #[arg(long)]
    pub json: bool,

    /// Also show the coworkers of the other hosts, as the last mt-sync
    /// exchange saw them (read-only), with a HOST column
    #[arg(long)]
    pub all_hosts: bool,

    #[command(flatten)]
    pub common: Common,

    /// Agents to show (default: all)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-ps",
        &[
            (
                "EXAMPLES",
                "What is everyone doing?
  $ mt-ps
  NAME  STATE    LAST  TASK  WORKTREE  SESSION   TOKENS      COST     EXIT
  york  working  3s    12    york      5e3bd3ed  1.2k/340    $0.1211  -

Agents that need attention, with jq:
  $ mt-ps --json | jq -r 'select(.state == \"failed\" or .state == \"lost\") | .name'",
            ),
            (
                "OUTPUT",
                "With --json, each line is status.json merged with the start details of meta.json (cwd, worktree, task, role, channel, created) and the shown state; fields: name, state, running, pid, pgid, supervisor_pid, session_id, model, turns, num_turns, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd, events, malformed, pending, inputs, open_tool_calls, last_event_at, last_event_type, rate_limit, exit_code, signal, error, error_detail, stopped, stopped_by, stdin_closed, runs, started_at, ended_at, updated_at.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\ta named agent does not exist
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-spawn(1), mt-log(1), mt-stop(1), mt-attach(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// One agent as mt-ps shows it.
pub type Row = agent::Info;

/// The JSON form of a row.
pub fn row_json(r: &Row) -> Value {
    let mut v = match &r.status {
        Some(st) => serde_json::to_value(st).unwrap_or(json!({})),
        None => serde_json::to_value(agent::Status::default()).unwrap_or(json!({})),
    };
    let none = agent::Meta::default();
    let m = r.meta.as_ref().unwrap_or(&none);
    if let Value::Object(o) = &mut v {
        o.insert("name".into(), r.name.clone().into());
        o.insert("state".into(), r.shown.into());
        o.insert("running".into(), r.running.into());
        o.insert("cwd".into(), json!(m.cwd));
        o.insert("worktree".into(), json!(m.worktree));
        o.insert("task".into(), json!(m.task));
        o.insert("role".into(), json!(m.role));
        o.insert("channel".into(), json!(m.channel));
        o.insert("created".into(), json!(m.created));
        if o.get("session_id").is_none_or(Value::is_null) && !m.session_id.is_empty() {
            o.insert("session_id".into(), m.session_id.clone().into());
        }
    }
    v
}

/// This host's name and the other hosts' coworkers from mt-sync's
/// `hosts.json`; a repository that never synced is one host, named as
/// mt-sync would name it.
fn hosts(state: &crate::statedir::StateDir) -> Result<(Option<String>, crate::sync::state::Hosts)> {
    let me = match crate::sync::state::Identity::load(state)? {
        Some(me) => me.host,
        None => crate::config::Settings::load()?
            .text("host")
            .map(Ok)
            .unwrap_or_else(crate::sync::default_host)?,
    };
    Ok((Some(me), crate::sync::state::load_hosts(state)?))
}

/// How long ago `stamp` was, in its largest unit (`3s`, `5m`, `2h`); `-`
/// when there is none.
pub fn age(stamp: Option<&str>) -> String {
    let Some(t) = stamp.and_then(time::parse_stamp) else {
        return "-".into();
    };
    let d = (chrono::Utc::now() - t).to_std().unwrap_or_default();
    if d.as_secs() == 0 {
        "0s".into()
    } else {
        // Coarse: the largest unit is enough to judge liveness.
        let s = time::format_duration(std::time::Duration::from_secs(d.as_secs()));
        let end = s
            .char_indices()
            .find(|(i, c)| *i > 0 && c.is_ascii_digit() && !s.as_bytes()[i - 1].is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        s[..end].to_string()
    }
}

fn cells(r: &Row) -> Vec<String> {
    let (no_status, no_meta) = (agent::Status::default(), agent::Meta::default());
    let st = r.status.as_ref().unwrap_or(&no_status);
    let m = r.meta.as_ref().unwrap_or(&no_meta);
    let session = st
        .session_id
        .as_deref()
        .or(Some(m.session_id.as_str()).filter(|s| !s.is_empty()))
        .map(|s| s.chars().take(8).collect())
        .unwrap_or_else(|| "-".into());
    let worktree = m
        .worktree
        .as_ref()
        .and_then(|w| w.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "-".into());
    vec![
        r.name.clone(),
        r.shown.to_string(),
        age(st.last_event_at.as_deref().or(st.started_at.as_deref())),
        m.task.clone().unwrap_or_else(|| "-".into()),
        worktree,
        session,
        stream::tokens_pair(st.input_tokens, st.output_tokens),
        format!("${:.4}", st.cost_usd),
        st.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
    ]
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let mut code = OK;
    let rows = if args.names.is_empty() {
        agent::all(&state)?
    } else {
        let found = agent::infos(&state, &args.names)?;
        let mut rows = Vec::new();
        for (n, info) in args.names.iter().zip(found) {
            match info {
                Some(i) => rows.push(i),
                None => {
                    eprintln!("mt-ps: no agent named {n}");
                    code = NO;
                }
            }
        }
        rows
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let (here, others) = match args.all_hosts {
        true => hosts(&state)?,
        false => (None, Default::default()),
    };
    if args.json {
        for r in &rows {
            let mut v = row_json(r);
            if let (Some(h), Value::Object(o)) = (&here, &mut v) {
                o.insert("host".into(), h.clone().into());
            }
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        }
        for (host, rs) in &others {
            for r in rs {
                let mut v = serde_json::to_value(r)?;
                if let Value::Object(o) = &mut v {
                    o.insert("host".into(), host.clone().into());
                }
                serde_json::to_writer(&mut out, &v)?;
                out.write_all(b"\n")?;
            }
        }
    } else if !rows.is_empty() || others.values().any(|r| !r.is_empty()) {
        let mut head: Vec<String> = [
            "NAME", "STATE", "LAST", "TASK", "WORKTREE", "SESSION", "TOKENS", "COST", "EXIT",
        ]
        .map(String::from)
        .to_vec();
        let mut body: Vec<Vec<String>> = rows.iter().map(cells).collect();
        if let Some(h) = &here {
            head.insert(0, "HOST".into());
            for r in &mut body {
                r.insert(0, h.clone());
            }
            for (host, rs) in &others {
                for r in rs {
                    let dash = || "-".to_string();
                    body.push(vec![
                        names::printable(host).into_owned(),
                        names::printable(&r.name).into_owned(),
                        names::printable(&r.state).into_owned(),
                        dash(),
                        r.task
                            .as_deref()
                            .map(|t| names::printable(t).into_owned())
                            .unwrap_or_else(dash),
                        r.worktree
                            .as_deref()
                            .map(|t| names::printable(t).into_owned())
                            .unwrap_or_else(dash),
                        dash(),
                        dash(),
                        dash(),
                        r.exit_code.map(|c| c.to_string()).unwrap_or_else(dash),
                    ]);
                }
            }
        }
        let table: Vec<Vec<String>> = std::iter::once(head).chain(body).collect();
        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| {
                table
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &table {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    out.flush()?;
    Ok(code)
}
