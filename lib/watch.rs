//! The watcher: a small cron-like runner for the coordination commands.
//!
//! A rules file says what to run and when: on an interval, on a cron
//! schedule, or when a file, directory, channel or task list changes.
//! File notifications only wake the watcher; a cheap rescan of sizes,
//! mtimes and inodes decides what changed, and a periodic rescan catches
//! what notifications missed, so a lost event costs latency, not a run.
//!
//! ```text
//! watch/rules        the rules file (default location)
//! watch/LOCK         held by the one watcher of this state directory
//! watch/state.json   per-rule state: last run, exit, fingerprint, counters
//! watch/start.lock   taken by mt-lead while it checks for and starts a watcher
//! watch/log          command output and watcher events, one line each
//! ```

pub mod engine;
pub mod rules;
pub mod scan;
pub mod starter;
pub mod state;

use chrono::{DateTime, Utc};

pub use rules::{Rule, Target, Trigger, parse_rules};

/// The test-only clock: `MT_WATCH_NOW` (RFC 3339) fixes what the watcher
/// thinks the time is, so schedules can be tested without waiting.
pub const NOW_VAR: &str = "MT_WATCH_NOW";

/// The current time, or the fixed time of `MT_WATCH_NOW`.
pub fn now() -> DateTime<Utc> {
    std::env::var(NOW_VAR)
        .ok()
        .and_then(|s| crate::infra::time::parse_stamp(&s))
        .unwrap_or_else(Utc::now)
}
