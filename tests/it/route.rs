//! mt-route with the fake agent: who gets a mention, exactly once.

use crate::support::*;
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

/// Every nudge ever put in an agent's inbox, by file name, read safely
/// while a supervisor moves files from `new/` to `cur/`.
fn inbox_files(e: &Env, name: &str) -> Vec<String> {
    let inbox = e.agent(name).join("inbox");
    let mut seen = std::collections::BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = fs::read_dir(inbox.join(sub)) else {
            continue;
        };
        for ent in rd.flatten() {
            let n = ent.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') || seen.contains_key(&n) {
                continue;
            }
            let body = fs::read_to_string(inbox.join("new").join(&n))
                .or_else(|_| fs::read_to_string(inbox.join("cur").join(&n)))
                .unwrap();
            seen.insert(n, body);
        }
    }
    let mut out: Vec<String> = seen.into_values().collect();
    out.sort();
    out
}

/// An agent mt knows only by its inbox (made by hand, or left by a first
/// start that failed before it ran).
fn inbox_only(e: &Env, name: &str) {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(e.agent(name).join("inbox").join(sub)).unwrap();
    }
}

fn last_seq(e: &Env) -> u64 {
    e.channel("general")
        .last()
        .map(|r| r["seq"].as_u64().unwrap())
        .unwrap_or(0)
}

fn post_lines(e: &Env, from: &str, input: &str) {
    use std::io::Write;
    let mut child = e
        .cmd("mt-post")
        .args(["--lines", "--from", from])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_burst_reaches_fifty_agents_once_each_and_a_failed_start_is_reported_once() {
    let e = Env::new();
    // Two running agents, one whose resume fails (its program is gone), and
    // 47 known by their inbox only.
    for n in ["york", "park", "bad"] {
        e.spawn(n, "", &[]);
        e.wait_idle(n);
    }
    e.ok("mt-stop", &["bad"]);
    let meta = e.agent("bad").join("meta.json");
    let mut m = read_json(&meta);
    m["agent_cmd"] = "/nonexistent/agent-program".into();
    fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
    let mut names: Vec<String> = ["york", "park", "bad"].map(String::from).to_vec();
    for i in 0..47 {
        let n = format!("a{i:02}");
        inbox_only(&e, &n);
        names.push(n);
    }
    let base = last_seq(&e);
    let total = 10_000;
    let input: String = (0..total)
        .map(|i| format!("@{} task {i}\n", names[i % names.len()]))
        .collect();
    post_lines(&e, "lead", &input);
    let want = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = (0..total)
            .filter(|i| names[i % names.len()] == name)
            .map(|i| {
                let seq = base + 1 + i as u64;
                format!("[general #{seq}] lead: @{name} task {i}")
            })
            .collect();
        v.sort();
        v
    };

    let o = e.run("mt-route", &[]);
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{err}");
    assert_eq!(out.lines().count(), total, "one line per mention");
    let bad_seq = base + 1 + names.iter().position(|n| n == "bad").unwrap() as u64;
    let failed: Vec<&str> = out.lines().filter(|l| l.contains(": failed: ")).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with(&format!("#{bad_seq} lead -> bad: failed: "))
            && failed[0].ends_with("; reported"),
        "{}",
        failed[0]
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("-> bad")).count(),
        1,
        "{err}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(
                "lead -> bad: delivery to bad failed earlier in this run; left in its inbox"
            ))
            .count(),
        total / names.len() - 1
    );

    // Every mention is in its agent's inbox exactly once, the failed one's too.
    for n in &names[2..] {
        assert_eq!(inbox_files(&e, n), want(n), "inbox of {n}");
    }
    for n in ["york", "park"] {
        assert_eq!(inbox_files(&e, n), want(n), "inbox of {n}");
        assert!(out.contains(&format!("lead -> {n}: nudged")));
    }
    let reports: Vec<_> = e
        .channel("general")
        .into_iter()
        .filter(|r| r["from"] == "mt-route")
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["type"], "system");
    assert_eq!(
        reports[0]["meta"]["route"]["failed"],
        serde_json::json!(["bad"])
    );
    assert_eq!(reports[0]["meta"]["route"]["seq"], bad_seq);
    assert!(!e.running("bad"));

    // Nothing is routed twice, the failure is not retried.
    let records = e.channel("general").len();
    assert_eq!(e.ok("mt-route", &[]), "");
    assert_eq!(e.channel("general").len(), records);
    for n in &names[2..] {
        assert_eq!(inbox_files(&e, n).len(), want(n).len());
    }
}

#[test]
fn a_failed_delivery_is_reported_once_and_routing_goes_on() {
    let e = Env::new();
    inbox_only(&e, "york");
    // kent is a stopped agent whose inbox cannot be written.
    inbox_only(&e, "kent");
    fs::write(e.agent("kent").join("meta.json"), r#"{"name":"kent"}"#).unwrap();
    let tmp = e.agent("kent").join("inbox/tmp");
    fs::remove_dir(&tmp).unwrap();
    fs::write(&tmp, "in the way").unwrap();
    for m in ["@kent one", "@york two", "@kent three @york", "@ghost four"] {
        e.post("lead", m);
    }
    let o = e.run("mt-route", &["--no-resume"]);
    assert_eq!(o.status.code(), Some(73), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let l = lines(&out);
    assert_eq!(l.len(), 5, "{out}");
    assert!(l[0].starts_with("#1 lead -> kent: failed: ") && l[0].ends_with("; reported"));
    assert_eq!(
        l[1],
        "#2 lead -> york: york has never been started; left in its inbox"
    );
    assert!(l[2].starts_with("#3 lead -> kent: failed: ") && !l[2].ends_with("reported"));
    assert!(l[2].contains("not a directory"), "{}", l[2]);
    assert_eq!(
        l[3],
        "#3 lead -> york: york has never been started; left in its inbox"
    );
    assert_eq!(l[4], "#4 lead -> ghost: unknown, reported");
    let err = text(&o.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("mt-route: #")).count(),
        2,
        "{err}"
    );
    assert_eq!(inbox_files(&e, "york").len(), 2);
    let recs = e.channel("general");
    let reports: Vec<_> = recs.iter().filter(|r| r["from"] == "mt-route").collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports[0]["meta"]["route"]["failed"],
        serde_json::json!(["kent"])
    );
    assert!(
        reports[0]["content"]
            .as_str()
            .unwrap()
            .contains("#1 from lead")
    );
    assert_eq!(
        reports[1]["meta"]["route"]["unknown"],
        serde_json::json!(["ghost"])
    );
    // The cursor moved past the failure: a rerun routes nothing.
    assert_eq!(e.ok("mt-route", &["--no-resume"]), "");
    e.post("lead", "@york five");
    assert_eq!(
        e.ok("mt-route", &["--no-resume"]),
        "#7 lead -> york: york has never been started; left in its inbox\n"
    );
}

#[test]
fn a_supervised_agent_never_gets_a_team_inbox_message() {
    let e = Env::new();
    let team = e.claude().join("teams/backend");
    fs::create_dir_all(team.join("inboxes")).unwrap();
    fs::write(
        team.join("config.json"),
        r#"{"name":"backend","members":[{"name":"kim"},{"name":"york"},{"name":"ash"}]}"#,
    )
    .unwrap();
    // Team inboxes that exist already, as Claude Code makes them.
    for n in ["york", "ash"] {
        fs::write(team.join(format!("inboxes/{n}.json")), "[]").unwrap();
    }
    e.spawn("york", "", &[]);
    e.wait_idle("york");
    inbox_only(&e, "ash");
    e.post("lead", "@york @kim @ash hello");
    let seq = last_seq(&e);
    assert_eq!(
        lines(&e.ok("mt-route", &["--team", "backend", "--no-resume"])),
        [
            format!("#{seq} lead -> york: nudged"),
            format!("#{seq} lead -> kim: written to its inbox in team backend"),
            format!("#{seq} lead -> ash: ash has never been started; left in its inbox"),
        ]
    );
    // Stopped, it still gets a nudge, never the team inbox.
    e.ok("mt-stop", &["york"]);
    e.post("lead", "@york again");
    let seq = last_seq(&e);
    assert_eq!(
        e.ok("mt-route", &["--team", "backend", "--no-resume"]),
        format!("#{seq} lead -> york: york is not running (--no-resume); left in its inbox\n")
    );
    assert_eq!(e.ok("mt-route", &["--team", "backend", "--dry-run"]), "");
    for n in ["york", "ash"] {
        assert_eq!(
            fs::read_to_string(team.join(format!("inboxes/{n}.json"))).unwrap(),
            "[]",
            "{n}'s team inbox is untouched"
        );
    }
    assert_eq!(inbox_files(&e, "york").len(), 2);
    assert_eq!(inbox_files(&e, "ash").len(), 1);
    let kim = read_json(&team.join("inboxes/kim.json"));
    assert_eq!(kim.as_array().unwrap().len(), 1);
}

/// The nudges of a batch are written without a sync each and synced with
/// one syncfs(2) before the cursor moves past their records; MT_FSYNC=0
/// syncs nothing.
#[test]
fn a_batch_of_nudges_is_synced_once_before_the_cursor_moves() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("MT_REQUIRE_CLAUDE").is_none(),
            "strace is required in CI"
        );
        eprintln!("SKIPPED: strace is not installed");
        return;
    }
    let e = Env::new();
    let names: Vec<String> = (0..6).map(|i| format!("w{i}")).collect();
    for n in &names {
        inbox_only(&e, n);
        e.post("park", &format!("@{n} a job for you"));
    }
    let trace = |fsync: Option<&str>| {
        let log = e.root.join("route.strace");
        let route = e.cmd("mt-route");
        let mut s = std::process::Command::new("strace");
        s.args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(route.get_program())
        .current_dir(&e.repo);
        for (k, v) in route.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        match fsync {
            Some(v) => s.env("MT_FSYNC", v),
            None => s.env_remove("MT_FSYNC"),
        };
        let o = s.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        fs::read_to_string(&log).unwrap()
    };
    let log = trace(None);
    let calls: Vec<&str> = log.lines().collect();
    let syncfs: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].contains("syncfs("))
        .collect();
    assert_eq!(syncfs.len(), 1, "one syncfs for the batch:\n{log}");
    let per_file = calls
        .iter()
        .filter(|l| l.contains("fdatasync(") || l.contains("fsync("))
        .count();
    assert!(per_file < names.len(), "a sync per nudge:\n{log}");
    // The cursor's rename comes after the sync.
    let cursor = (0..calls.len())
        .rfind(|&i| calls[i].contains("rename") && calls[i].contains("\"general.json\""))
        .unwrap_or_else(|| panic!("the cursor was saved:\n{log}"));
    assert!(syncfs[0] < cursor, "{log}");
    for n in &names {
        assert_eq!(e.inbox(n).len(), 1, "{n}");
    }
    // With MT_FSYNC=0, nothing is synced.
    for n in &names {
        e.post("park", &format!("@{n} another"));
    }
    let log = trace(Some("0"));
    assert!(!log.contains("sync"), "{log}");
}
