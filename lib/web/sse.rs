//! Server-Sent Events: a channel's records as they are posted, each with
//! its seq as the event id, so a browser that reconnects (server restarted,
//! network lost) sends `Last-Event-ID` and gets exactly what came after.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use super::Ctx;
use super::http::{IO_TIMEOUT, Request, SECURITY_HEADERS};
use crate::channel::Reader;

/// A comment line this often tells a dead client from a quiet channel.
const KEEPALIVE: Duration = Duration::from_secs(30);

fn start(stream: &mut TcpStream) -> std::io::Result<()> {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n{SECURITY_HEADERS}\r\nretry: 1000\n\n"
    );
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

/// Where a client resumes: `Last-Event-ID` (set by the browser on a
/// reconnect), else `?after=` (the last seq of the page's first view).
pub fn resume_after(req: &Request) -> u64 {
    req.header("last-event-id")
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| req.param("after").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Stream channel `name` after seq `after` until the client goes away.
/// A client that does not take what is written within `IO_TIMEOUT` is
/// dropped: it holds a thread and a socket buffer, never more.
pub fn channel(ctx: &Ctx, mut stream: TcpStream, name: &str, after: u64) {
    if start(&mut stream).is_err() {
        return;
    }
    let mut reader: Option<Reader> = None;
    let mut seen = ctx.channels.now();
    let mut out = Vec::with_capacity(8192);
    loop {
        if reader.is_none() && ctx.state.channel(name).is_dir() {
            reader = Reader::after_seq(&ctx.state, name, after).ok();
        }
        if let Some(r) = reader.as_mut() {
            out.clear();
            let read = r.read_available(&mut |it| {
                if it.view.seq > after {
                    out.extend_from_slice(format!("id: {}\ndata: ", it.view.seq).as_bytes());
                    out.extend_from_slice(it.line);
                    out.extend_from_slice(b"\n\n");
                }
                // Bounded batches: the rest follows on the next round.
                Ok(out.len() < 1 << 20)
            });
            if read.is_err() {
                return;
            }
            let more = out.len() >= 1 << 20;
            if !out.is_empty() && stream.write_all(&out).and_then(|_| stream.flush()).is_err() {
                return;
            }
            if more {
                continue;
            }
        }
        let now = ctx.channels.wait_past(seen, KEEPALIVE);
        if now == seen && stream.write_all(b": keep-alive\n\n").is_err() {
            return;
        }
        seen = now;
    }
}

/// Tell a team or task page each time agents or tasks change; the page
/// then fetches what it shows.
pub fn team(ctx: &Ctx, mut stream: TcpStream) {
    if start(&mut stream).is_err() || stream.write_all(b"data: change\n\n").is_err() {
        return;
    }
    let mut seen = ctx.team.now();
    loop {
        let now = ctx.team.wait_past(seen, KEEPALIVE);
        let msg: &[u8] = if now == seen {
            b": keep-alive\n\n"
        } else {
            // Changes come in bursts (a status file per event): one
            // notice for the burst.
            std::thread::sleep(Duration::from_millis(100));
            b"data: change\n\n"
        };
        seen = ctx.team.now();
        if stream.write_all(msg).and_then(|_| stream.flush()).is_err() {
            return;
        }
    }
}
