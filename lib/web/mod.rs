//! mt-web: the team in a browser, served from the state directory's files.
//!
//! The server keeps nothing of its own beyond its access secrets: every
//! answer is read from the files at the time of the request, every post or
//! action goes through the same library calls as the command-line tools,
//! so it can be stopped at any moment and nothing depends on it running.
//! Only mt-web's code path reaches this module, so the HTTP parser is not
//! linked into the hot-path tools.
//!
//! One thread per connection (a few connections at a time are the rule,
//! tens at most): a live page is a thread asleep on a condition variable,
//! which costs no CPU while nothing happens.

pub mod http;
pub mod hub;
pub mod pages;
pub mod routes;
pub mod security;
pub mod sse;

use anyhow::{Context, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::statedir::StateDir;

/// Connections served at once; more are answered 503 at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Everything a request handler may use, shared by all threads.
pub struct Ctx {
    pub state: StateDir,
    /// Who the person is on the channels.
    pub person: String,
    pub guard: security::Guard,
    /// Records in a channel's first view.
    pub page_records: usize,
    pub task_list: Option<String>,
    pub claude_dir: Option<PathBuf>,
    /// Posts to any channel.
    pub channels: &'static hub::Changes,
    /// Agents' status files and the task list.
    pub team: &'static hub::Changes,
    open: AtomicUsize,
}

/// How to start a server.
pub struct Options {
    pub state: StateDir,
    pub person: String,
    pub listen: SocketAddr,
    pub require_token: bool,
    pub task_list: Option<String>,
    pub claude_dir: Option<PathBuf>,
}

/// A bound, not yet serving server.
pub struct Server {
    listener: TcpListener,
    ctx: &'static Ctx,
    /// The token, when it was made by this start (to be shown once).
    pub new_token: Option<String>,
}

impl Server {
    pub fn bind(opts: Options) -> Result<Server> {
        let listener = TcpListener::bind(opts.listen).map_err(|e| {
            crate::exit::fail(
                crate::exit::UNAVAILABLE,
                format!("cannot listen on {}: {e}", opts.listen),
            )
        })?;
        let addr = listener.local_addr()?;
        opts.state.ensure()?;
        let need_token = opts.require_token || !addr.ip().is_loopback();
        let (token, new_token) = if need_token {
            let (t, made) = security::secret(&opts.state, "token")?;
            (Some(t.clone()), made.then_some(t))
        } else {
            (None, None)
        };
        let (csrf, _) = security::secret(&opts.state, "csrf")?;
        let port = addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            addr.to_string(),
        ];
        hosts.dedup();
        let channels: &'static hub::Changes = Box::leak(Box::default());
        let team: &'static hub::Changes = Box::leak(Box::default());
        let ctx: &'static Ctx = Box::leak(Box::new(Ctx {
            state: opts.state,
            person: opts.person,
            guard: security::Guard { token, csrf, hosts },
            page_records: 200,
            task_list: opts.task_list,
            claude_dir: opts.claude_dir,
            channels,
            team,
            open: AtomicUsize::new(0),
        }));
        hub::follow(channels, vec![ctx.state.channels()], Vec::new);
        hub::follow(team, vec![ctx.state.agents()], move || {
            routes::task_list(ctx)
                .map(|l| vec![l.dir().to_path_buf()])
                .unwrap_or_default()
        });
        Ok(Server {
            listener,
            ctx,
            new_token,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().context("no local address")
    }

    pub fn token(&self) -> Option<&str> {
        self.ctx.guard.token.as_deref()
    }

    /// Serve until the process ends.
    pub fn serve(self) -> Result<()> {
        for conn in self.listener.incoming() {
            let Ok(stream) = conn else { continue };
            let ctx = self.ctx;
            if ctx.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                ctx.open.fetch_sub(1, Ordering::SeqCst);
                refuse_busy(stream);
                continue;
            }
            let spawned = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    routes::serve_connection(ctx, stream);
                    ctx.open.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                ctx.open.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

fn refuse_busy(mut stream: TcpStream) {
    let _ = http::write_response(
        &mut stream,
        &http::Response::error(503, "too many connections"),
    );
}
