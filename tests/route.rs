//! mt-route with the fake agent: who gets a mention, exactly once.

mod coord_util;

use coord_util::*;
use std::fs;

#[test]
fn running_agent_is_nudged_once_and_a_rerun_routes_nothing() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    e.post("park", "@york can you review?");
    let out = e.ok("mt-route", &[]);
    assert_eq!(out, "#2 park -> york: nudged\n");
    let want = "[general #2] park: @york can you review?";
    assert_eq!(e.inbox("york"), [want]);
    wait_for("the nudge on york's stdin", || {
        e.inputs("york").iter().any(|t| t == want)
    });
    assert_eq!(e.ok("mt-route", &[]), "");
    e.post("park", "no mention here");
    assert_eq!(e.ok("mt-route", &[]), "");
    assert_eq!(e.inbox("york").len(), 1);
    assert_eq!(e.inputs("york").iter().filter(|t| *t == want).count(), 1);
}

#[test]
fn stopped_agent_is_resumed_unless_no_resume() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    e.ok("mt-stop", &["york"]);
    e.post("lead", "@york first");
    let out = e.ok("mt-route", &["--no-resume"]);
    assert_eq!(
        out,
        "#3 lead -> york: york is not running (--no-resume); left in its inbox\n"
    );
    assert!(!e.running("york"));
    assert_eq!(e.inbox("york"), ["[general #3] lead: @york first"]);

    e.post("lead", "@york second");
    assert_eq!(e.ok("mt-route", &[]), "#4 lead -> york: resumed\n");
    // The resumed session reads what waited, then the new message.
    wait_for("both messages on york's stdin", || {
        e.inputs("york").len() == 3
    });
    assert_eq!(
        e.inputs("york")[1..],
        [
            "[general #3] lead: @york first",
            "[general #4] lead: @york second"
        ]
    );
    assert!(e.running("york"));
}

#[test]
fn team_member_gets_an_inbox_message() {
    let e = Env::new();
    let team = e.claude().join("teams/backend");
    fs::create_dir_all(&team).unwrap();
    fs::write(
        team.join("config.json"),
        r#"{"name":"backend","members":[{"name":"kim","agentType":"general-purpose"}]}"#,
    )
    .unwrap();
    e.post("lead", "@kim please look at the schema");
    let out = e.ok("mt-route", &["--team", "backend"]);
    assert_eq!(
        out,
        "#1 lead -> kim: written to its inbox in team backend\n"
    );
    let inbox = read_json(&team.join("inboxes/kim.json"));
    let msgs = inbox.as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["from"], "lead");
    assert_eq!(
        msgs[0]["text"],
        "[general #1] lead: @kim please look at the schema"
    );
    assert_eq!(msgs[0]["read"], false);
    // Without the team, kim is nobody.
    e.post("lead", "@kim again");
    let out = e.ok("mt-route", &[]);
    assert_eq!(out, "#2 lead -> kim: unknown, reported\n");
}

#[test]
fn unknown_name_is_reported_never_dropped() {
    let e = Env::new();
    e.post("park", "@ghost and @lead: hello");
    let out = e.ok("mt-route", &[]);
    assert_eq!(
        lines(&out),
        [
            "#1 park -> ghost: unknown, reported",
            "#1 park -> lead: reads the channel itself"
        ]
    );
    let recs = e.channel("general");
    assert_eq!(recs.len(), 2);
    let r = &recs[1];
    assert_eq!(
        (r["from"].as_str(), r["type"].as_str()),
        (Some("mt-route"), Some("system"))
    );
    assert!(r["content"].as_str().unwrap().contains("#1 from park"));
    assert!(r["content"].as_str().unwrap().contains("ghost"));
    assert_eq!(r["meta"]["route"]["unknown"], serde_json::json!(["ghost"]));
    assert_eq!(r["mentions"], serde_json::json!([]));
    // Its own report is not routed again: no loop.
    assert_eq!(e.ok("mt-route", &[]), "");
    assert_eq!(e.channel("general").len(), 2);
}

#[test]
fn all_reaches_every_running_agent_but_the_sender() {
    let e = Env::new();
    for n in ["york", "park", "kent"] {
        e.spawn(n, "", &[]);
        e.wait_idle(n);
    }
    e.ok("mt-stop", &["kent"]);
    e.post("york", "@all standup in five, @park first");
    let out = e.ok("mt-route", &[]);
    let last = e.channel("general").last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(out, format!("#{last} york -> park: nudged\n"));
    assert_eq!(e.inbox("park").len(), 1);
    assert!(e.inbox("york").is_empty());
    assert!(e.inbox("kent").is_empty());
    assert!(!e.running("kent"));
}

#[test]
fn dry_run_delivers_nothing_and_keeps_the_cursor() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    e.post("lead", "@york ping @nobody");
    let out = e.ok("mt-route", &["--dry-run"]);
    assert_eq!(
        lines(&out),
        [
            "#2 lead -> york: would nudge",
            "#2 lead -> nobody: unknown, would report"
        ]
    );
    assert!(e.inbox("york").is_empty());
    assert_eq!(e.channel("general").len(), 2);
    assert_eq!(
        lines(&e.ok("mt-route", &[])),
        [
            "#2 lead -> york: nudged",
            "#2 lead -> nobody: unknown, reported"
        ]
    );
}

#[test]
fn concurrent_routers_route_each_record_once() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    for i in 0..20 {
        e.post("lead", &format!("@york n{i}"));
    }
    let kids: Vec<_> = (0..4)
        .map(|_| {
            e.cmd("mt-route")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut routed = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success());
        routed += text(&o.stdout).lines().count();
    }
    assert_eq!(routed, 20);
    assert_eq!(e.inbox("york").len(), 20);
}

#[test]
fn skip_existing_starts_routing_from_now_on() {
    let e = Env::new();
    e.post("lead", "@ghost old news");
    assert_eq!(
        e.ok("mt-route", &["--skip-existing"]),
        "skipped through #1\n"
    );
    e.post("lead", "@ghost fresh");
    assert_eq!(
        e.ok("mt-route", &[]),
        "#2 lead -> ghost: unknown, reported\n"
    );
}

#[test]
fn a_reminder_nudges_through_the_agent_library() {
    let e = Env::new();
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    e.ok(
        "mt-remind",
        &[
            "add",
            "--at",
            "2000-01-01T00:00:00Z",
            "--to",
            "york",
            "ship",
            "it",
        ],
    );
    assert_eq!(e.ok("mt-remind", &["check"]), "fired 1: ship it\n");
    wait_for("the reminder on york's stdin", || {
        e.inputs("york").iter().any(|t| t == "Reminder 1: ship it")
    });
    // A stopped agent is resumed with it.
    e.ok("mt-stop", &["york"]);
    e.ok(
        "mt-remind",
        &[
            "add",
            "--at",
            "2000-01-01T00:00:00Z",
            "--to",
            "york",
            "again",
        ],
    );
    e.ok("mt-remind", &["check"]);
    wait_for("the resumed york", || {
        e.inputs("york").iter().any(|t| t == "Reminder 2: again")
    });
    assert!(e.running("york"));
}
