//! mt: coordination for a lead and a team of coding agents on one git
//! repository, through plain files and small programs, with no daemon.
//!
//! Each module holds one noun of the design; the binaries in `bin/` only
//! parse arguments and call into `cli`. `infra` holds what the nouns stand
//! on (files, locks, wake-ups, processes, ids, time); `coord` the
//! coordination commands' passes. ARCHITECTURE.md draws the data flows.

pub mod agent;
pub mod attach;
pub mod channel;
pub mod chat;
pub mod claude_settings;
pub mod cli;
pub mod config;
pub mod coord;
pub mod cursor;
pub mod delivery;
pub mod exit;
pub mod fake_agent;
pub mod infra;
pub mod mailbox;
pub mod names;
pub mod permissions;
pub mod pr;
pub mod profile;
pub mod prompts;
pub mod record;
pub mod spawn;
pub mod statedir;
pub mod status;
pub mod stream;
pub mod supervise;
pub mod sync;
pub mod tasks;
pub mod watch;
pub mod web;
pub mod worktree;
