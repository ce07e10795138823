//! What each address answers. Reads go to the files at the time of the
//! request; posts and actions go through the library calls the command-line
//! tools use, as the person.
//!
//! GET  /                         the page (also /c/NAME, /team, /tasks)
//! GET  /app.js /app.css /manifest.webmanifest /icon.svg
//! GET  /api/session              the person and the anti-forgery token
//! GET  /api/channels             channels with the person's unread counts
//! GET  /api/channel/NAME         the newest records, the person's cursor
//! GET  /events/NAME              the channel live (SSE)
//! GET  /events/team              agents or tasks changed (SSE)
//! GET  /api/team                 the overview (agents, worktrees, ...)
//! GET  /api/tasks                the task list
//! POST /api/post                 {channel, text}
//! POST /api/seen                 {channel, seq}: the page showed up to seq
//! POST /api/nudge                {name, text}
//! POST /api/stop                 {name}
//! POST /api/tasks                {subject, description, blocked_by}

use serde::Deserialize;
use serde_json::json;
use std::net::TcpStream;

use super::Ctx;
use super::http::{self, BadRequest, Request, Response};
use super::pages;
use super::security::{Access, TOKEN_COOKIE};
use crate::channel::{self, Draft, Reader};
use crate::cursor;
use crate::tasks::{self, TaskList};

pub fn serve_connection(ctx: &Ctx, mut stream: TcpStream) {
    let req = match http::read_request(&mut stream) {
        Ok(r) => r,
        Err(BadRequest::Gone) => return,
        Err(BadRequest::Status(code, what)) => {
            let _ = http::write_response(&mut stream, &Response::error(code, what));
            return;
        }
    };
    match ctx.guard.check(&req) {
        Access::Allowed => {}
        Access::SetCookie => {
            let r = Response::new(303, "text/plain", "")
                .with("Location", req.path.clone())
                .with(
                    "Set-Cookie",
                    format!(
                        "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
                        ctx.guard.token.as_deref().unwrap_or("")
                    ),
                );
            let _ = http::write_response(&mut stream, &r);
            return;
        }
        Access::Refused(r) => {
            let _ = http::write_response(&mut stream, &r);
            return;
        }
    }
    if req.method == "GET"
        && let Some(rest) = req.path.strip_prefix("/events/")
    {
        if rest == "team" {
            return super::sse::team(ctx, stream);
        }
        if crate::names::is_valid(rest) {
            let after = super::sse::resume_after(&req);
            return super::sse::channel(ctx, stream, rest, after);
        }
    }
    let resp = if req.method == "POST" {
        match ctx.guard.check_post(&req) {
            Ok(()) => post(ctx, &req),
            Err(r) => r,
        }
    } else if req.method == "GET" || req.method == "HEAD" {
        get(ctx, &req)
    } else {
        Response::error(405, "method not allowed")
    };
    let _ = http::write_response(&mut stream, &resp);
}

fn get(ctx: &Ctx, req: &Request) -> Response {
    let path = req.path.as_str();
    if let Some(r) = pages::asset(path) {
        return r;
    }
    let r = match path {
        "/api/session" => Ok(Response::json(
            json!({ "person": ctx.person, "csrf": ctx.guard.csrf }).to_string(),
        )),
        "/api/channels" => channels(ctx),
        "/api/team" => Ok(team(ctx)),
        "/api/tasks" => task_board(ctx),
        _ => match path.strip_prefix("/api/channel/") {
            Some(name) if crate::names::is_valid(name) => first_view(ctx, name),
            _ => return Response::error(404, "not found"),
        },
    };
    r.unwrap_or_else(failure)
}

fn failure(e: anyhow::Error) -> Response {
    let code = crate::exit::code_of(&e);
    let status = match code {
        crate::exit::DATAERR | crate::exit::USAGE => 400,
        crate::exit::NO => 404,
        crate::exit::UNAVAILABLE => 409,
        crate::exit::TEMPFAIL => 503,
        _ => 500,
    };
    Response::error(status, &format!("{e:#}"))
}

fn channels(ctx: &Ctx) -> anyhow::Result<Response> {
    let mut out = Vec::new();
    for name in channel::list_channels(&ctx.state)? {
        // An archived channel leaves the listings, as in mt-channels.
        if channel::is_archived(&ctx.state, &name) {
            continue;
        }
        let s = channel::summarize(&ctx.state, &name)?;
        let read = cursor::load(&ctx.state, &ctx.person, &name)
            .ok()
            .flatten()
            .map(|p| p.seq)
            .unwrap_or(s.last_seq.saturating_sub(s.records));
        out.push(json!({
            "name": name,
            "records": s.records,
            "last_seq": s.last_seq,
            "last_activity": s.last_activity,
            "unread": s.last_seq.saturating_sub(read),
        }));
    }
    Ok(Response::json(serde_json::to_vec(&out)?))
}

/// The newest records as stored (each line is already JSON), and where
/// the person's cursor stands: read from the end, whatever the length.
fn first_view(ctx: &Ctx, name: &str) -> anyhow::Result<Response> {
    let lines = channel::tail(&ctx.state, name, ctx.page_records)?;
    let read = cursor::load(&ctx.state, &ctx.person, name)?
        .map(|p| p.seq)
        .unwrap_or(0);
    let last = lines
        .last()
        .and_then(|l| crate::record::parse_seq(l))
        .unwrap_or(0);
    let mut body =
        format!("{{\"channel\":\"{name}\",\"read\":{read},\"last_seq\":{last},\"records\":[")
            .into_bytes();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(l);
    }
    body.extend_from_slice(b"]}");
    Ok(Response::json(body))
}

pub fn task_list(ctx: &Ctx) -> anyhow::Result<TaskList> {
    let name = tasks::list_name(ctx.task_list.as_deref(), Some(&ctx.state))?;
    let dir = match &ctx.claude_dir {
        Some(d) => d.clone(),
        None => crate::statedir::claude_config_dir()?,
    };
    TaskList::new(&dir, &name)
}

fn task_board(ctx: &Ctx) -> anyhow::Result<Response> {
    let list = task_list(ctx)?;
    let l = list.list()?;
    let rows: Vec<_> = l
        .tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "subject": t.subject(),
                "description": t.description(),
                "status": t.status_str(),
                "owner": t.owner(),
                "blocked_by": l.open_blockers(t),
            })
        })
        .collect();
    Ok(Response::json(
        json!({ "list": list.name(), "tasks": rows }).to_string(),
    ))
}

fn team(ctx: &Ctx) -> Response {
    let opts = crate::status::Options {
        reader: ctx.person.clone(),
        all_channels: true,
        task_list: ctx.task_list.clone(),
        claude_dir: ctx.claude_dir.clone(),
        repo: None,
    };
    let o = crate::status::gather(&ctx.state, &opts);
    match serde_json::to_vec(&o) {
        Ok(b) => Response::json(b),
        Err(e) => Response::error(500, &e.to_string()),
    }
}

fn post(ctx: &Ctx, req: &Request) -> Response {
    let r = match req.path.as_str() {
        "/api/post" => parse(req).and_then(|b| say(ctx, b)),
        "/api/seen" => parse(req).and_then(|b| seen(ctx, b)),
        "/api/nudge" => parse(req).and_then(|b| nudge(ctx, b)),
        "/api/stop" => parse(req).and_then(|b| stop(ctx, b)),
        "/api/tasks" => parse(req).and_then(|b| create_task(ctx, b)),
        _ => return Response::error(404, "not found"),
    };
    r.unwrap_or_else(failure)
}

fn parse<T: for<'a> Deserialize<'a>>(req: &Request) -> anyhow::Result<T> {
    serde_json::from_slice(&req.body)
        .map_err(|e| crate::exit::fail(crate::exit::DATAERR, format!("bad request body: {e}")))
}

#[derive(Deserialize)]
struct Say {
    channel: String,
    text: String,
}

fn say(ctx: &Ctx, b: Say) -> anyhow::Result<Response> {
    crate::names::check("channel", &b.channel)?;
    if b.text.trim().is_empty() {
        return Err(crate::exit::fail(
            crate::exit::DATAERR,
            "refusing an empty message",
        ));
    }
    let d = Draft {
        from: ctx.person.clone(),
        kind: "text".into(),
        content: b.text,
        ..Draft::default()
    };
    let line = channel::post(&ctx.state, &b.channel, &d)?;
    Ok(Response::json(line))
}

#[derive(Deserialize)]
struct Seen {
    channel: String,
    seq: u64,
}

/// Move the person's cursor to just past record `seq`, never back: the
/// page acknowledges only what it has shown.
fn seen(ctx: &Ctx, b: Seen) -> anyhow::Result<Response> {
    crate::names::check("channel", &b.channel)?;
    let _lock = cursor::lock_agent(&ctx.state, &ctx.person)?;
    let cur = cursor::load(&ctx.state, &ctx.person, &b.channel)?
        .map(|p| p.seq)
        .unwrap_or(0);
    if b.seq > cur {
        let mut r = Reader::after_seq(&ctx.state, &b.channel, b.seq - 1)?;
        let mut found = false;
        r.read_available(&mut |it| {
            found = it.view.seq == b.seq;
            Ok(false)
        })?;
        if found {
            cursor::save(&ctx.state, &ctx.person, &b.channel, r.position())?;
        }
    }
    Ok(Response::json("{}"))
}

#[derive(Deserialize)]
struct Nudge {
    name: String,
    text: String,
}

fn nudge(ctx: &Ctx, b: Nudge) -> anyhow::Result<Response> {
    crate::names::check("agent", &b.name)?;
    let n = crate::agent::nudge(&ctx.state, &b.name, &b.text, true)?;
    let what = match n {
        crate::agent::Nudged::Delivered => "delivered".to_string(),
        crate::agent::Nudged::Resumed => "resumed".to_string(),
        crate::agent::Nudged::Waiting(why) => why,
    };
    Ok(Response::json(json!({ "result": what }).to_string()))
}

#[derive(Deserialize)]
struct Stop {
    name: String,
}

fn stop(ctx: &Ctx, b: Stop) -> anyhow::Result<Response> {
    let a = crate::agent::existing(&ctx.state, &b.name)?;
    let left = crate::agent::stop(
        &ctx.state,
        &[a],
        std::time::Duration::from_secs(5),
        &ctx.person,
    )?;
    Ok(Response::json(json!({ "still_running": left }).to_string()))
}

#[derive(Deserialize)]
struct NewTask {
    subject: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    blocked_by: Vec<u64>,
}

fn create_task(ctx: &Ctx, b: NewTask) -> anyhow::Result<Response> {
    if b.subject.trim().is_empty() {
        return Err(crate::exit::fail(
            crate::exit::DATAERR,
            "a task needs a subject",
        ));
    }
    let list = task_list(ctx)?;
    let mut t = tasks::NewTask::new(b.subject);
    t.description = b.description;
    t.blocked_by = b.blocked_by;
    let made = list.create(&t)?;
    Ok(Response::json(made.to_json()))
}
