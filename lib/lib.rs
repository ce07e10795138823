//! mt: coordination for a lead and a team of coding agents on one git
//! repository, through plain files and small programs, with no daemon.
//!
//! Each module holds one noun of the design; the binaries in `bin/` only
//! parse arguments and call into `cli`.

pub mod agent;
pub mod channel;
pub mod cli;
pub mod cursor;
pub mod dirlock;
pub mod dispatch;
pub mod exit;
pub mod fsutil;
pub mod hook;
pub mod id;
pub mod lock;
pub mod mailbox;
pub mod names;
pub mod permissions;
pub mod procs;
pub mod reap;
pub mod record;
pub mod remind;
pub mod route;
pub mod settings;
pub mod spawn;
pub mod statedir;
pub mod stream;
pub mod supervise;
pub mod tasks;
pub mod time;
pub mod wake;
pub mod watch;
pub mod worktree;
