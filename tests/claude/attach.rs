//! mt-attach with the real Claude Code CLI on a pseudo-terminal: a person
//! takes over a headless coworker's session, talks to it, leaves, and the
//! coworker carries on headless in the same session.

use crate::support::api::{Script, Step};
use crate::support::claude::{PATIENCE, Team, wait_for};
use std::path::PathBuf;
use std::time::Duration;

/// Claude Code's transcript of `session`, wherever under `projects/` it
/// keeps the agent's working directory.
fn transcript(t: &Team, session: &str) -> Option<PathBuf> {
    std::fs::read_dir(t.config.join("projects"))
        .ok()?
        .flatten()
        .map(|d| d.path().join(format!("{session}.jsonl")))
        .find(|p| p.is_file())
}

/// Type a line into the terminal: the text, a moment, then Enter.
fn type_line(pty: &mut crate::support::claude::Pty, line: &str) {
    pty.type_text(line);
    std::thread::sleep(Duration::from_millis(300));
    pty.type_text("\r");
}

#[test]
fn attach_takes_over_a_headless_session_and_hands_it_back() {
    let script = Script::new()
        .on(
            "review the parser",
            vec![Step::text("first reply: parser reviewed")],
        )
        .on("typed by alice", vec![Step::text("answer for alice")])
        .on("after the hand back", vec![Step::text("back at work")]);
    let Some(t) = Team::new("attach_takes_over_a_headless_session", script) else {
        return;
    };
    // The headless session writes Claude Code's configuration back when it
    // stops: the answers must be in it already.
    t.answer_first_run();
    t.spawn("york", &["--prompt", "review the parser"]);
    t.wait("york", "the first result", || !t.results("york").is_empty());
    t.wait("york", "idle", || t.status("york")["state"] == "idle");
    let session = t.status("york")["session_id"].as_str().unwrap().to_string();

    let mut attach = t.cmd("mt-attach");
    attach.arg("york").env("MT_USER", "alice");
    let mut pty = t.in_pty(attach);
    pty.wait_for("attached to york");
    pty.wait_for("Claude Code v2.1.328");
    wait_for("the state attached", || t.ps("york")["state"] == "attached");
    type_line(&mut pty, "typed by alice");
    pty.wait_for("answer for alice");
    type_line(&mut pty, "/exit");
    let st = pty.wait_exit();
    assert!(st.success(), "{st:?}\n{}", pty.text());
    pty.wait_for("handed york back");

    // One session throughout: every request carried it, and status says so.
    let turns: Vec<_> = t.api.turns();
    assert!(turns.iter().any(|q| q.sees("typed by alice")));
    for q in &turns {
        assert_eq!(q.session.as_deref(), Some(session.as_str()), "{}", q.path);
    }
    assert_eq!(t.status("york")["session_id"], session.as_str());
    // Claude Code's transcript holds both the headless and the interactive
    // turns.
    let file = transcript(&t, &session).expect("the session's transcript");
    let log = std::fs::read_to_string(&file).unwrap();
    for part in [
        "review the parser",
        "first reply: parser reviewed",
        "typed by alice",
        "answer for alice",
    ] {
        assert!(log.contains(part), "{part} missing from {}", file.display());
    }
    // The channel says who attached and that the session was handed back.
    let recs = t.channel("general");
    let seq_of = |event: &str| {
        recs.iter()
            .find(|r| r["meta"]["event"] == event && r["from"] == "alice")
            .and_then(|r| r["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {event} record"))
    };
    assert!(seq_of("attach") < seq_of("hand-back"));

    // Headless again, and a nudge is answered in the same session, with
    // what was said on the terminal in its history.
    t.wait("york", "headless and idle", || {
        let ps = t.ps("york");
        ps["running"] == true && ps["state"] == "idle"
    });
    t.ok("mt-nudge", &["york", "after the hand back"]);
    let q = t.api.wait_for("the nudge", PATIENCE, |q| {
        q.is_turn() && q.sees("after the hand back")
    });
    assert_eq!(q.session.as_deref(), Some(session.as_str()));
    assert!(
        q.sees("answer for alice"),
        "the history of the interactive turn"
    );
    t.wait("york", "the answer", || {
        t.results("york")
            .iter()
            .any(|r| r["result"] == "back at work")
    });
}
