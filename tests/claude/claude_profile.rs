//! Auth profiles with the real Claude Code CLI: an agent started with an
//! API-key profile talks to the profile's endpoint with the profile's key,
//! not to the caller's.

use crate::support::api::{Api, Script, Step};
use crate::support::claude::{PATIENCE, Team, text, wait_for};
use std::io::Write;
use std::process::Stdio;

#[test]
fn an_api_key_profile_sends_the_session_to_its_base_url() {
    let script = || Script::new().on("hello there", vec![Step::text("hi back")]);
    let Some(t) = Team::new(
        "an_api_key_profile_sends_the_session_to_its_base_url",
        script(),
    ) else {
        return;
    };
    // The caller's environment points at t.api; the profile at another.
    let other = Api::start(script());
    let mut add = t
        .cmd("mt-profile")
        .args(["add", "gw", "--api-key-stdin", "--base-url", &other.url()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"sk-profile-gw\n")
        .unwrap();
    let o = add.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    t.spawn("york", &["--profile", "gw", "--prompt", "hello there"]);
    wait_for("a result", || !t.results("york").is_empty());
    assert_eq!(t.results("york")[0]["result"], "hi back");
    let req = other.wait_for("the turn", PATIENCE, |q| {
        q.is_turn() && q.sees("hello there")
    });
    assert_eq!(req.api_key.as_deref(), Some("sk-profile-gw"));
    assert_eq!(
        req.session.as_deref(),
        t.status("york")["session_id"].as_str()
    );
    assert!(
        t.api.requests().is_empty(),
        "the caller's endpoint was asked: {:?}",
        t.api.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        other
            .requests()
            .iter()
            .all(|r| r.api_key.as_deref() == Some("sk-profile-gw")),
        "a request without the profile's key"
    );
}
