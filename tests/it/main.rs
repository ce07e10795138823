//! The integration tests: one binary, one module per area, each driving
//! the real binaries (or the library) in scratch directories, and one
//! support module. Three groups are binaries of their own, sharing the
//! support module, that run when no other test runs (Cargo.toml says why):
//! the real Claude Code CLI (tests/claude/), a fleet of agents
//! (tests/fleet/) and the demo (tests/demo/).
//!
//! `cargo test --test it channel::` runs one area; the names are
//! `area::test`, as mt-guarantees(7) cites them.

mod support;

mod archive;
mod attach;
mod channel;
mod chat;
mod config;
mod defects;
mod faults;
mod faults_writers;
mod guarantees;
mod hooks;
mod layout;
mod lead;
mod mail;
mod man;
mod pr;
mod profile;
mod props;
mod props_cursor;
mod props_hook;
mod props_mailbox;
mod props_rules;
mod props_settings;
mod props_tasks;
mod ratelimit;
mod reap;
mod remind;
mod route;
mod security;
mod selection;
mod sling;
mod spawn;
mod status;
mod sync;
mod sync_hosts;
mod task;
mod watch;
mod web;
mod worktree;
