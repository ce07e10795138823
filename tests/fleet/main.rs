//! A fleet of coworkers: hundreds of agents at once (tests/fleet/fleet.rs).
//! A binary of its own, run when no other test runs: its scenarios start
//! some 600 processes, and where no user namespace can be made they run
//! under the host's own per-user inotify limit, which tests beside them
//! (watchers, followers) would share.

#[path = "../it/support/mod.rs"]
mod support;

mod fleet;
