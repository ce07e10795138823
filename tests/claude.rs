//! mt against the real Claude Code CLI (the pinned version that `make
//! claude-code` installs), talking to the stand-in Messages API on
//! 127.0.0.1. Each test skips with one loud line when the CLI is missing,
//! and fails instead under `MT_REQUIRE_CLAUDE=1` (CI).

mod support;

use support::api::{Script, Step};
use support::claude::{Team, wait_for};

/// A spawned agent answers its prompt through the real CLI, and its status
/// shows the session Claude Code reported.
#[test]
fn spawn_answers_the_prompt() {
    let script = Script::new().on("hello there", vec![Step::text("hi back")]);
    let Some(t) = Team::new("spawn_answers_the_prompt", script) else {
        return;
    };
    t.spawn("york", &["--prompt", "hello there"]);
    wait_for("a result", || !t.results("york").is_empty());
    let r = &t.results("york")[0];
    assert_eq!(r["result"], "hi back");
    let st = t.status("york");
    assert_eq!(st["session_id"], r["session_id"]);
    assert_eq!(st["state"], "idle");
    // The request carried the session mt chose for the agent.
    let req = t
        .api
        .wait_for("the turn", support::claude::PATIENCE, |q| q.is_turn());
    assert_eq!(req.session.as_deref(), st["session_id"].as_str());
    assert!(req.sees("hello there"));
}
