//! mt-web: the team in a browser.

use anyhow::Result;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Common, ListArg, Tool};
use crate::exit::{self, DATAERR};

/// Serve the team's channels, coworkers and tasks to a browser
///
/// One small HTTP server for one state directory. Every page is read from
/// the state directory's files when it is asked for, and every post or
/// action writes them as the other tools do: the server keeps nothing of
/// its own, can be stopped at any moment, and nothing depends on it. A
/// channel's page follows new messages live and resumes after a reconnect
/// without missing or repeating one.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address and port to listen on; any address that is not loopback
    /// requires the access token
    #[arg(
        short,
        long,
        env = "MT_WEB_LISTEN",
        default_value = "127.0.0.1:8017",
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,

    /// The person's name on the channels (default: $MT_USER, else the
    /// login name); never the lead agent's, so reading in the browser takes
    /// no message from the lead's hooks
    #[arg(long = "as", env = "MT_USER", value_name = "NAME")]
    pub person: Option<String>,

    /// Require the access token on a loopback address too (other local
    /// users can reach loopback)
    #[arg(long)]
    pub require_token: bool,

    /// Print the address the server listens on, then serve
    #[arg(long)]
    pub print_address: bool,

    #[command(flatten)]
    pub list: ListArg,

    /// Claude Code's directory, where task lists are (default:
    /// $CLAUDE_CONFIG_DIR, else ~/.claude)
    #[arg(long, value_name = "DIR", hide = true)]
    pub claude_dir: Option<PathBuf>,

    #[command(flatten)]
    pub common: Common,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-web",
        &[
            (
                "PAGES",
                "/\tchannels, with the person's unread counts
/c/NAME\ta channel, live, with a box to post as the person; mentions of the person are highlighted and can raise a browser notification
/team\tcoworkers: state, task, tokens, cost, last event, rate limit; nudge and stop
/tasks\tthe task board (pending, in progress, completed; owners, blockers); create a task
/worktrees\tworktrees and branches with work not merged",
            ),
            (
                "SECURITY",
                "By default the server listens on 127.0.0.1 only and accepts only requests whose Host names it (a page elsewhere cannot reach it by a rebound DNS name).
On any other address, or with --require-token, every request must carry the access token: it is made on first need, kept in STATE/web/token (mode 0600) and printed once, as an address to open; the page then keeps it in a cookie. Without it every request is refused (401).
Every request that changes something (post, read mark, nudge, stop, new task) must come from the page itself: its Origin must name the server and it must carry the anti-forgery token kept in STATE/web/csrf; a cross-site form or script is refused (403).
Message text reaches the page as text only: no markup, no links but to channels and tasks, control characters shown as symbols. Requests are bounded (16 KiB of head, 256 KiB of body, 10 seconds to send them); a client that does not take what is sent within 10 seconds is dropped; at most 512 connections at once.",
            ),
            (
                "EXIT STATUS",
                "The server runs until stopped (SIGINT, SIGTERM).
2\tusage error (an address that does not parse)",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_WEB_LISTEN\tthe address, as --listen
MT_USER\tthe person's name, as --as
MT_DIR\tthe state directory
CLAUDE_CODE_TASK_LIST_ID\tthe task list, as --list",
            ),
            (
                "FILES",
                "STATE/web/token\tthe access token (0600), made when first needed
STATE/web/csrf\tthe anti-forgery token (0600)
STATE/cursors/PERSON/CHANNEL.json\tthe person's read position, moved only past what the page has shown",
            ),
            (
                "EXAMPLES",
                "Open the team on this machine:
  $ mt-web & xdg-open http://127.0.0.1:8017/

Reach it from a phone on the local network (prints the address with the token once):
  $ mt-web --listen 0.0.0.0:8017

As someone else than the login name, on another port:
  $ MT_USER=ana mt-web -l 127.0.0.1:9000",
            ),
            (
                "SEE ALSO",
                "mt-post(1), mt-read(1), mt-channels(1), mt-status(1), mt-ps(1), mt-task(1), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// The person: `--as`, `$MT_USER`, else the login name; never `$MT_AGENT`.
fn person(given: Option<String>) -> Result<String> {
    let name = match given.filter(|s| !s.is_empty()) {
        Some(n) => n,
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or_else(|| exit::fail(DATAERR, "no login name for this user: give --as NAME"))?,
    };
    crate::names::check("person", &name)?;
    if name == "lead" {
        return Err(exit::fail(
            DATAERR,
            "the person cannot be 'lead': the browser would take the lead agent's messages; give --as NAME",
        ));
    }
    Ok(name)
}

pub fn run(args: Args) -> Result<u8> {
    let state = args.common.state()?;
    let server = crate::web::Server::bind(crate::web::Options {
        state,
        person: person(args.person)?,
        listen: args.listen,
        require_token: args.require_token,
        task_list: args.list.list,
        claude_dir: args.claude_dir,
    })?;
    let addr = server.local_addr()?;
    if args.print_address {
        println!("http://{addr}/");
    }
    if let Some(t) = &server.new_token {
        eprintln!(
            "mt-web: open http://{addr}/?token={t} once (the token is kept in the state directory's web/token)"
        );
    } else if server.token().is_some() {
        eprintln!("mt-web: serving http://{addr}/ (token in the state directory's web/token)");
    } else {
        eprintln!("mt-web: serving http://{addr}/");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server.serve()?;
    Ok(exit::OK)
}
