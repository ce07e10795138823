//! The demo (demo/mt-demo), a whole team session, checked
//! (tests/demo/demo.rs). A binary of its own, run when no other test runs:
//! its watcher rules fire on one-second timers, its reaper calls a coworker
//! stuck after three seconds, and which coworker takes which task depends on
//! how soon the lead's commands follow each other, so tests running beside
//! it on a loaded machine change its outcome.

#[path = "../it/support/mod.rs"]
mod support;

mod demo;
