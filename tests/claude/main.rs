//! The tests that drive the real Claude Code CLI (`make claude-code`
//! installs the pinned version) against the stand-in Messages API of the
//! support module. A binary of its own: each test runs Node.js sessions
//! for seconds, so they run after the other areas instead of beside their
//! timing-bounded tests, and `cargo test --test it` leaves them out.
//! Without the CLI they skip (fail with `MT_REQUIRE_CLAUDE=1`).

#[path = "../it/support/mod.rs"]
mod support;

mod attach;
mod claude;
mod claude_hooks;
mod claude_profile;
mod lead;
