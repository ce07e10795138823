//! mt-chat: the team in a terminal. A full-screen view that keeps nothing
//! of its own: the channels, the team and the task list are read from
//! their files, followed with inotify (no timers), and the only write
//! besides the person's posts is the person's reader cursor, moved over
//! what was drawn. Only mt-chat links this module and the terminal
//! library; the hot paths (mt-post, mt-read, mt-hook) do not.

pub mod app;
pub mod feed;
pub mod input;
pub mod render;

use anyhow::{Context, Result};
use crossterm::event::{self, Event};
use crossterm::{execute, terminal};
use nix::sys::signal::{SigSet, Signal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, Stdout};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use crate::infra::wake::Follow;
use crate::statedir::StateDir;
use crate::status::{self, Overview};
use app::App;

pub struct Options {
    pub state: StateDir,
    /// Who the person is: the sender of posts, the owner of the cursor.
    pub me: String,
    pub channel: String,
    pub color: bool,
    pub mouse: bool,
}

/// What wakes the loop. Each source blocks in a thread of its own; the
/// loop blocks on their channel, so an idle mt-chat uses no CPU.
enum Ev {
    Term(Event),
    /// Something under channels/ changed.
    Channels,
    Team(Box<Overview>),
    /// The terminal went away, or SIGTERM/SIGHUP.
    Quit,
}

/// Long enough to cost nothing; inotify does the waking.
const IDLE: Duration = Duration::from_secs(3600);

pub fn run(o: Options) -> Result<()> {
    let channels_dir = o.state.channels();
    o.state.ensure()?;
    crate::infra::fsutil::ensure_subdirs(o.state.root(), &channels_dir)?;
    let mut app = App::new(o.state.clone(), o.me.clone(), o.channel.clone(), o.color)?;
    // Signals are taken by a thread of their own: blocked here, before any
    // thread starts, so every thread inherits the mask.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.thread_block().context("cannot block signals")?;
    // Followers start before the screen is taken: a warning that inotify
    // is short goes to a plain terminal.
    let chan_follow = Follow::new("mt-chat");
    let team_follow = Follow::new("mt-chat");
    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = signals.wait();
            let _ = tx.send(Ev::Quit);
        });
    }
    {
        let tx = tx.clone();
        let state = o.state.clone();
        std::thread::spawn(move || follow_channels(&state, &chan_follow, &tx));
    }
    {
        let tx = tx.clone();
        let state = o.state.clone();
        let me = o.me.clone();
        std::thread::spawn(move || follow_team(&state, &me, &team_follow, &tx));
    }
    let mut screen = Screen::enter(o.mouse)?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            loop {
                match event::read() {
                    Ok(e) => {
                        if tx.send(Ev::Term(e)).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        let _ = tx.send(Ev::Quit);
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    loop {
        screen.draw(&mut app)?;
        if app.quit {
            break;
        }
        let Ok(first) = rx.recv() else { break };
        let size = screen.term.size()?;
        let view = input::view_of(size.width, size.height);
        let mut changed = false;
        for ev in std::iter::once(first).chain(rx.try_iter()) {
            match ev {
                Ev::Term(e) => input::handle(&mut app, e, view)?,
                Ev::Channels => changed = true,
                Ev::Team(ov) => app.overview = Some(*ov),
                Ev::Quit => app.quit = true,
            }
        }
        if changed {
            app.pull()?;
            app.refresh_channels()?;
        }
    }
    drop(screen);
    Ok(())
}

/// Wake on any change under channels/: new records, new channels,
/// archive marks.
fn follow_channels(state: &StateDir, follow: &Follow, tx: &Sender<Ev>) {
    loop {
        let _ = follow.watch_dir(&state.channels());
        for name in crate::channel::list_channels(state).unwrap_or_default() {
            let _ = follow.watch_dir(&state.channel(&name));
        }
        if follow.wait(IDLE, None).is_err() || tx.send(Ev::Channels).is_err() {
            return;
        }
    }
}

/// Gather the team overview now and on each change of the agents'
/// directories or the task list.
fn follow_team(state: &StateDir, me: &str, follow: &Follow, tx: &Sender<Ev>) {
    let opts = status::Options {
        reader: me.to_string(),
        ..status::Options::default()
    };
    let tasks = crate::tasks::list_name(None, Some(state))
        .ok()
        .and_then(|name| {
            let cfg = crate::statedir::claude_config_dir().ok()?;
            crate::tasks::TaskList::new(&cfg, &name).ok()
        })
        .map(|l| l.dir().to_path_buf());
    loop {
        let _ = follow.watch_dir(state.root());
        let agents = state.agents();
        if follow.watch_dir(&agents).is_ok() {
            for name in crate::agent::list(state).unwrap_or_default() {
                let _ = follow.watch_dir(&state.agent(&name));
            }
        }
        if let Some(dir) = &tasks {
            watch_nearest(follow, dir);
        }
        let ov = status::gather(state, &opts);
        if tx.send(Ev::Team(Box::new(ov))).is_err() {
            return;
        }
        if follow.wait(IDLE, None).is_err() {
            return;
        }
    }
}

/// Watch `dir`, or while it does not exist yet, the nearest parent that does.
fn watch_nearest(follow: &Follow, dir: &Path) {
    let mut d: PathBuf = dir.to_path_buf();
    for _ in 0..3 {
        if d.is_dir() {
            let _ = follow.watch_dir(&d);
            return;
        }
        if !d.pop() {
            return;
        }
    }
}

/// The terminal while mt-chat owns it; given back as it was on every way
/// out: return, error, panic (even with `panic = "abort"`), SIGTERM.
struct Screen {
    term: Terminal<CrosstermBackend<Stdout>>,
    mouse: bool,
}

fn restore(mouse: bool) {
    let _ = terminal::disable_raw_mode();
    let mut out = io::stdout();
    if mouse {
        let _ = execute!(out, event::DisableMouseCapture);
    }
    let _ = execute!(
        out,
        event::DisableBracketedPaste,
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Screen {
    fn enter(mouse: bool) -> Result<Screen> {
        terminal::enable_raw_mode().context("cannot set up the terminal")?;
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore(mouse);
            prev(info);
        }));
        let mut out = io::stdout();
        execute!(
            out,
            terminal::EnterAlternateScreen,
            event::EnableBracketedPaste
        )?;
        if mouse {
            execute!(out, event::EnableMouseCapture)?;
        }
        let term = Terminal::new(CrosstermBackend::new(out))?;
        Ok(Screen { term, mouse })
    }

    /// Draw; when drawing moved the cursor (counts changed), draw again.
    fn draw(&mut self, app: &mut App) -> Result<()> {
        for _ in 0..2 {
            let mut drawn = None;
            self.term.draw(|f| drawn = render::draw(f, app).range)?;
            let Some((lo, hi)) = drawn else { break };
            match app.drawn(lo, hi) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    app.notice = Some(format!("cannot save the cursor: {e:#}"));
                    continue;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore(self.mouse);
    }
}
