//! mt against the real Claude Code CLI (the pinned version that `make
//! claude-code` installs), talking to the stand-in Messages API on
//! 127.0.0.1. Each test skips with one loud line when the CLI is missing,
//! and fails instead under `MT_REQUIRE_CLAUDE=1` (CI).

use crate::support::api::{Script, Step};
use crate::support::claude::{Team, wait_for};

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
    // The event is in events.jsonl a moment before status.json says idle.
    wait_for("idle", || t.status("york")["state"] == "idle");
    let st = t.status("york");
    assert_eq!(st["session_id"], r["session_id"]);
    // The request carried the session mt chose for the agent.
    let req = t
        .api
        .wait_for("the turn", crate::support::claude::PATIENCE, |q| {
            q.is_turn()
        });
    assert_eq!(req.session.as_deref(), st["session_id"].as_str());
    assert!(req.sees("hello there"));
}

/// The request that answers `prompt` (the first turn that shows it).
fn turn_with(t: &Team, what: &str) -> crate::support::api::Request {
    let needle = what.to_string();
    t.api
        .wait_for(what, crate::support::claude::PATIENCE, move |q| {
            q.is_turn() && q.sees(&needle)
        })
}

/// An agent in a fresh worktree has no project settings, yet gets mt's
/// hooks through its own settings file: the first request shows the
/// SessionStart context (who it is, its channel, what is unread).
#[test]
fn agent_in_a_worktree_gets_mt_hooks() {
    let Some(t) = Team::new("agent_in_a_worktree_gets_mt_hooks", Script::new()) else {
        return;
    };
    // The main checkout has project hooks that a worktree does not see.
    t.post("lead", "@york the build is red, have a look");
    t.spawn("york", &["--worktree", "--prompt", "start"]);
    let q = turn_with(&t, "the build is red");
    assert!(q.sees("york"), "identity in the context");
    let wt = t.meta("york")["worktree"].as_str().unwrap().to_string();
    assert!(!std::path::Path::new(&wt).join(".claude").exists());
    // Delivered by the hook: nothing unread is left for york.
    let o = t.run("mt-read", &["--as", "york", "-q"]);
    assert_eq!(o.status.code(), Some(1), "nothing new for york");
}

/// What a coworker may do with the default profile in `claude -p`, where
/// nobody answers a permission prompt: edit in its worktree, run git and
/// mt's tools; anything else is denied.
#[test]
fn default_profile_lets_a_coworker_work_unattended() {
    let Some(t) = Team::new(
        "default_profile_lets_a_coworker_work_unattended",
        Script::new(),
    ) else {
        return;
    };
    let wt = t.root.join("repo.worktrees/york");
    t.api.set_script(Script::new().on(
        "do the work",
        vec![
            Step::tool(
                "Write",
                serde_json::json!({"file_path": wt.join("notes.txt"), "content": "done\n"}),
            ),
            Step::bash("git add notes.txt && git commit -qm 'add notes'"),
            Step::bash("mt-post 'committed the notes'"),
            Step::bash("curl -s http://127.0.0.1:9/"),
            Step::text("all done"),
        ],
    ));
    t.spawn("york", &["--worktree", "--prompt", "do the work"]);
    wait_for("the turn to end", || !t.results("york").is_empty());
    let r = &t.results("york")[0];
    assert_eq!(r["result"], "all done");
    assert_eq!(
        std::fs::read_to_string(wt.join("notes.txt")).unwrap(),
        "done\n"
    );
    let log = t.git(&["log", "--format=%s", "mt/york"]);
    assert!(log.contains("add notes"), "{log}");
    assert!(
        t.channel("general")
            .iter()
            .any(|m| m["from"] == "york" && m["content"] == "committed the notes")
    );
    let denied: Vec<String> = r["permission_denials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["tool_input"]["command"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(denied, ["curl -s http://127.0.0.1:9/"]);
    // The profile is stored with the agent.
    assert_eq!(t.meta("york")["permissions"]["defaultMode"], "acceptEdits");
}

/// Claude Code's task tools and mt-task work on one list: each sees the
/// other's tasks, ids and claims.
#[test]
fn task_tools_and_mt_task_share_one_list() {
    let script = Script::new()
        .on(
            "plan it",
            vec![
                Step::tool(
                    "TaskCreate",
                    serde_json::json!({"subject": "write the parser", "description": "from claude", "activeForm": "writing the parser"}),
                ),
                Step::tool("TaskList", serde_json::json!({})),
                Step::text("planned"),
            ],
        )
        .on(
            "take task 1",
            vec![
                Step::tool(
                    "TaskUpdate",
                    serde_json::json!({"taskId": "1", "status": "in_progress", "owner": "york"}),
                ),
                Step::text("taken"),
            ],
        );
    let Some(t) = Team::new("task_tools_and_mt_task_share_one_list", script) else {
        return;
    };
    t.ok(
        "mt-task",
        &["create", "from mt", "--description", "made by mt-task"],
    );
    t.spawn("york", &["--prompt", "plan it"]);
    wait_for("the first turn", || !t.results("york").is_empty());
    // The agent's TaskList saw mt's task (id 1); its own got the next id.
    let listed = t.api.turns().into_iter().any(|q| {
        let l = q.last_text();
        l.contains("from mt") && l.contains("write the parser")
    });
    assert!(listed, "TaskList showed both tasks");
    let listed = t.ok("mt-task", &["list", "--json"]);
    let subjects: Vec<(String, String)> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_string(),
                x["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            ("1".to_string(), "from mt".to_string()),
            ("2".to_string(), "write the parser".to_string())
        ]
    );
    // A claim made with the task tool is the claim mt-task sees.
    t.ok("mt-nudge", &["york", "take task 1"]);
    wait_for("the second turn", || t.results("york").len() >= 2);
    let one: serde_json::Value =
        serde_json::from_str(&t.ok("mt-task", &["show", "1", "--json"])).unwrap();
    assert_eq!(one["owner"], "york");
    assert_eq!(one["status"], "in_progress");
    let o = t.run("mt-task", &["claim", "1", "--as", "park"]);
    assert_ne!(o.status.code(), Some(0), "york holds task 1");
}

/// The main-loop requests of one session, as the stand-in saw them.
fn session_turns(t: &Team, session: &str) -> usize {
    t.api
        .turns()
        .iter()
        .filter(|q| q.session.as_deref() == Some(session))
        .count()
}

/// mt-ps shows the tokens and cost Claude Code itself reports, across two
/// resumes: the figures of its last result, which match what the stand-in
/// billed for every request of the session.
#[test]
fn totals_across_two_resumes_are_claude_codes_own() {
    let Some(t) = Team::new("totals_across_two_resumes", Script::new()) else {
        return;
    };
    t.spawn("york", &["--prompt", "first"]);
    wait_for("the first result", || t.results("york").len() == 1);
    for (n, text) in [(2, "second"), (3, "third")] {
        t.ok("mt-stop", &["york"]);
        assert_eq!(t.status("york")["state"], "exited");
        // A nudge to a stopped agent resumes its session.
        t.ok("mt-nudge", &["york", text]);
        wait_for("the next result", || t.results("york").len() == n);
        wait_for("idle", || t.status("york")["state"] == "idle");
    }
    let last = t.results("york").pop().unwrap();
    let usage = last["modelUsage"].as_object().unwrap();
    let sum = |k: &str| usage.values().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    let ps = t.ps("york");
    let session = ps["session_id"].as_str().unwrap().to_string();
    assert_eq!(ps["input_tokens"].as_u64(), Some(sum("inputTokens")));
    assert_eq!(ps["output_tokens"].as_u64(), Some(sum("outputTokens")));
    assert_eq!(ps["cost_usd"].as_f64(), last["total_cost_usd"].as_f64());
    let billed = session_turns(&t, &session) as u64;
    assert_eq!(
        ps["input_tokens"].as_u64(),
        Some(billed * crate::support::api::INPUT_TOKENS),
        "every request of the session counted once"
    );
    assert_eq!(
        (ps["turns"].as_u64(), ps["runs"].as_u64()),
        (Some(3), Some(3))
    );
    // The text table says the same.
    let table = t.ok("mt-ps", &["york"]);
    assert!(
        table.contains(&format!("{:.4}", ps["cost_usd"].as_f64().unwrap())),
        "{table}"
    );
}

/// mt-nudge reaches a running agent within its session, and resumes a
/// stopped one in the same session; mt-log shows the transcript; mt-wait
/// returns once the agent ended.
#[test]
fn nudge_running_and_stopped_agents_log_and_wait() {
    let Some(t) = Team::new("nudge_running_and_stopped", Script::new()) else {
        return;
    };
    let start = std::time::Instant::now();
    t.spawn("york", &["--prompt", "hello"]);
    let first = turn_with(&t, "hello");
    let to_first = start.elapsed();
    let session = first.session.clone().unwrap();
    wait_for("idle", || t.status("york")["state"] == "idle");
    let sent = std::time::Instant::now();
    t.ok("mt-nudge", &["york", "ping one"]);
    let q = turn_with(&t, "ping one");
    let latency = q.at.duration_since(sent);
    assert_eq!(q.session.as_deref(), Some(session.as_str()));
    eprintln!(
        "figures: spawn to first request {:.0} ms, nudge to request {:.0} ms",
        to_first.as_secs_f64() * 1e3,
        latency.as_secs_f64() * 1e3
    );
    wait_for("idle", || t.status("york")["state"] == "idle");
    t.ok("mt-stop", &["york"]);
    t.ok("mt-nudge", &["york", "ping two"]);
    let q = turn_with(&t, "ping two");
    assert_eq!(q.session.as_deref(), Some(session.as_str()), "same session");
    assert!(q.sees("ping one"), "the resumed session has its history");
    wait_for("idle", || t.status("york")["state"] == "idle");
    let log = t.ok("mt-log", &["york"]);
    assert!(log.contains("ping two"), "{log}");
    // A soft stop lets the session end on its own; mt-wait sees it end.
    t.ok("mt-stop", &["--soft", "york"]);
    let o = t.run("mt-wait", &["--timeout", "30s", "york"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        crate::support::claude::text(&o.stderr)
    );
    assert!(!t.running("york"));
    assert_eq!(t.status("york")["exit_code"], 0);
}

/// The processes of `t`'s team running `program`.
fn running_program(t: &Team, program: &str) -> Vec<i32> {
    t.processes()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(|a| a == program.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Claude Code's Bash tool runs each command in a session of its own: a
/// SIGKILL of the supervisor ends `claude` (parent-death signal) but not
/// the command. `how` (mt-stop, or mt-reap) must end it.
fn killed_supervisor_leaves_nothing(test: &str, how: &[&str]) {
    let Some(t) = Team::new(test, Script::new()) else {
        return;
    };
    // A command that runs until killed, like a dev server.
    let log = t.repo.join("server.log");
    std::fs::write(&log, "").unwrap();
    let server = "tail -f server.log";
    t.api.set_script(Script::new().on(
        "run the server",
        vec![Step::bash(server), Step::text("done")],
    ));
    t.spawn(
        "york",
        &["--prompt", "run the server", "--allow", "Bash(tail:*)"],
    );
    let log = "server.log".to_string();
    t.wait("york", "the long command", || {
        !running_program(&t, &log).is_empty()
    });
    let sleep = running_program(&t, &log)[0];
    let claude = t.status("york")["pid"].as_i64().unwrap() as i32;
    let sid = |p: i32| {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .nth(3)
            .map(String::from)
    };
    assert_ne!(
        sid(sleep),
        sid(claude),
        "the command runs in a session of its own"
    );
    let sup = t.status("york")["supervisor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("claude to die with its supervisor", || {
        !std::path::Path::new(&format!("/proc/{claude}")).exists()
            || std::fs::read_to_string(format!("/proc/{claude}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
    });
    assert!(
        running_program(&t, &log).contains(&sleep),
        "the command outlived the agent"
    );
    t.ok(how[0], &how[1..]);
    wait_for("nothing of york left", || t.processes().is_empty());
    assert_eq!(t.ps("york")["state"], "failed");
}

#[test]
fn mt_stop_ends_what_a_killed_agent_left() {
    killed_supervisor_leaves_nothing(
        "mt_stop_ends_what_a_killed_agent_left",
        &["mt-stop", "york"],
    );
}

#[test]
fn mt_reap_ends_what_a_killed_agent_left() {
    killed_supervisor_leaves_nothing("mt_reap_ends_what_a_killed_agent_left", &["mt-reap"]);
}

/// An agent started from inside a Claude Code session (the lead's Bash
/// tool) gets none of that session's variables, and keeps the user's
/// configuration.
#[test]
fn parent_session_variables_do_not_reach_the_agent() {
    let Some(t) = Team::new("parent_session_variables", Script::new()) else {
        return;
    };
    let envfile = t.repo.join("agent-env.txt");
    t.api.set_script(Script::new().on(
        "show your environment",
        vec![Step::bash("env > agent-env.txt"), Step::text("shown")],
    ));
    let parent = [
        ("CLAUDECODE", "parent-1"),
        ("CLAUDE_CODE_SESSION_ID", "parent-session"),
        ("CLAUDE_CODE_ENTRYPOINT", "parent-entrypoint"),
        ("CLAUDE_CODE_CHILD_SESSION", "parent-child"),
        ("CLAUDE_CODE_CHILD_NOTES_DIR", "/parent/notes"),
        ("CLAUDE_CODE_SESSION_ATTENDED", "parent-attended"),
        ("CLAUDE_CODE_EXECPATH", "/parent/claude"),
        ("CLAUDE_PID", "999999"),
        ("CLAUDE_EFFORT", "parent-effort"),
        ("AI_AGENT", "parent-agent"),
        ("CLAUDE_CODE_MESSAGING_SOCKET", "/parent/sock"),
        ("CLAUDE_CODE_MESSAGING_TOKEN", "parent-token"),
    ];
    let mut c = t.cmd("mt-spawn");
    c.args(["york", "--detach", "--prompt", "show your environment"])
        .args(["--allow", "Bash(env:*)"])
        .env("HTTPS_PROXY", "http://127.0.0.1:1")
        .env("NO_PROXY", "127.0.0.1");
    for (k, v) in parent {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{}",
        crate::support::claude::text(&o.stderr)
    );
    t.wait("york", "the environment", || !t.results("york").is_empty());
    let env = std::fs::read_to_string(&envfile).unwrap();
    for (k, v) in parent {
        assert!(!env.contains(&format!("{k}={v}\n")), "{k}={v} leaked");
    }
    for want in [
        "MT_AGENT=york\n",
        "CLAUDE_CODE_ENABLE_TODO_TOOLS=1\n",
        "HTTPS_PROXY=http://127.0.0.1:1\n",
        &format!("ANTHROPIC_BASE_URL={}\n", t.api.url()),
    ] {
        assert!(env.contains(want), "{want} missing");
    }
}

/// mt-route hands a mention to the headless agent it names with a nudge,
/// never through an agent-teams inbox (`claude -p` never reads one), also
/// when the agent is stopped and a member of the team: it is resumed.
#[test]
fn route_delivers_a_mention_to_a_headless_agent() {
    let Some(t) = Team::new("route_delivers_a_mention", Script::new()) else {
        return;
    };
    t.spawn("york", &["--prompt", "hello"]);
    wait_for("idle", || t.status("york")["state"] == "idle");
    let team = t.config.join("teams/crew");
    std::fs::create_dir_all(team.join("inboxes")).unwrap();
    std::fs::write(
        team.join("config.json"),
        r#"{"name":"crew","members":[{"agentId":"york@crew","name":"york"}]}"#,
    )
    .unwrap();
    std::fs::write(team.join("inboxes/york.json"), "[]").unwrap();
    t.post("lead", "@york please rebase on main");
    t.ok("mt-route", &["--team", "crew"]);
    turn_with(&t, "please rebase on main");
    wait_for("idle", || t.status("york")["state"] == "idle");
    // Stopped, it is resumed with the message.
    t.ok("mt-stop", &["york"]);
    t.post("lead", "@york and run the tests");
    t.ok("mt-route", &["--team", "crew"]);
    turn_with(&t, "and run the tests");
    let inbox = std::fs::read_to_string(team.join("inboxes/york.json")).unwrap();
    assert_eq!(inbox, "[]");
}

/// `MT_DEMO_AGENT=claude make demo`, against the stand-in: the real CLI
/// does every coworker's turns, through mt's hooks and default profile.
#[test]
fn the_demo_with_the_real_cli() {
    // A model reads its task number out of the prompt, and answers a
    // question for it that arrived while it worked.
    fn work(req: &crate::support::api::Request, prompt: &str, ask: bool) -> Vec<Step> {
        let n: String = prompt
            .split("This is task ")
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let mut steps = vec![
            Step::bash(format!("mt-post --type status 'working on task {n}'")),
            Step::bash(format!("git commit --allow-empty -qm 'task {n}'")),
        ];
        if ask {
            steps.push(Step::bash(
                "mt-post '@ash does parse() return a list of tokens? the docs say so'",
            ));
        }
        steps.extend([
            Step::bash(format!("mt-task done {n}")),
            Step::bash(format!("mt-post 'finished task {n}'")),
        ]);
        if req.sees("mt agent \"ash\"")
            && req.sees("does parse() return a list")
            && !req.sees("yes, parse() returns")
        {
            steps.push(Step::bash(ANSWER));
        }
        steps.push(Step::text("done"));
        steps
    }
    const ANSWER: &str = "mt-post 'yes, parse() returns a list of tokens'";
    let script = Script::new()
        .on_with("When it is done, mark it done", |q, p| work(q, p, false))
        .on_with("Document the parser", |q, p| work(q, p, true))
        .on(
            "does parse() return a list",
            vec![Step::bash(ANSWER), Step::text("answered")],
        );
    let Some(t) = Team::new("the_demo_with_the_real_cli", script) else {
        return;
    };
    let bin = t.root.join("claude-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&t.claude, bin.join("claude")).unwrap();
    let top = t.root.join("demo");
    let path = std::env::join_paths(
        [bin, t.bindir.clone()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut c = std::process::Command::new("sh");
    c.arg(crate::support::repo().join("demo/mt-demo"));
    let mut setup = t.cmd("mt-post");
    // The team's environment, without its state directory and agent program.
    for (k, v) in setup.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let _ = &mut setup;
    c.env("PATH", path)
        .env("MT_DEMO_AGENT", "claude")
        .env("MT_DEMO_DIR", &top)
        .env("MT_DEMO_TIMEOUT", "60")
        .env_remove("MT_DIR")
        .env_remove("MT_AGENT_CMD")
        .env_remove("CLAUDE_CONFIG_DIR")
        .current_dir(&t.root);
    let out = c.output().unwrap();
    let stdout = crate::support::claude::text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed\n{stdout}\n{}",
        crate::support::claude::text(&out.stderr)
    );
    let recs = {
        let mut c = t.cmd("mt-read");
        c.args(["--all", "--json"])
            .env("MT_DIR", top.join("repo/.git/mt"));
        crate::support::claude::text(&c.output().unwrap().stdout)
    };
    for n in 1..=3 {
        assert!(
            recs.contains(&format!("finished task {n}")),
            "task {n}\n{recs}"
        );
    }
    assert!(recs.contains("does parse() return a list of tokens"));
    assert!(recs.contains("yes, parse() returns a list of tokens"));
    assert_eq!(recs.matches("\"from\":\"mt-remind\"").count(), 1, "{recs}");
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s"])
        .current_dir(top.join("repo"))
        .output()
        .unwrap();
    let log = crate::support::claude::text(&log.stdout);
    for n in 1..=3 {
        assert!(log.contains(&format!("task {n}")), "{log}");
    }
}

/// A command the agent runs in the background keeps it from counting as
/// idle for mt-reap --idle-stop (Claude Code starts a turn of its own when
/// it ends); stopping the agent ends the command too.
#[test]
fn a_background_task_keeps_an_idle_agent_running() {
    let Some(t) = Team::new("a_background_task_keeps_an_idle_agent", Script::new()) else {
        return;
    };
    std::fs::write(t.repo.join("server.log"), "").unwrap();
    t.api.set_script(Script::new().on(
        "start the server",
        vec![
            Step::tool(
                "Bash",
                serde_json::json!({"command": "tail -f server.log", "description": "serve",
                                   "run_in_background": true}),
            ),
            Step::text("started"),
        ],
    ));
    t.spawn(
        "york",
        &["--prompt", "start the server", "--allow", "Bash(tail:*)"],
    );
    t.wait("york", "idle with a background task", || {
        let st = t.status("york");
        st["state"] == "idle" && st["background_tasks"] == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = t.run("mt-reap", &["--idle-stop", "100ms"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        crate::support::claude::text(&o.stderr)
    );
    assert!(t.running("york"), "not stopped while its server runs");
    assert!(!running_program(&t, "server.log").is_empty());
    t.ok("mt-stop", &["york"]);
    wait_for("nothing of york left", || t.processes().is_empty());
}

/// Interactive sessions are where Claude Code's team inboxes and its
/// Notification hook reach (never `claude -p`): a message mt-mail writes to
/// a teammate's inbox is injected into its session, and mt's Notification
/// hook posts that the session waits for input.
#[test]
fn an_interactive_session_reads_mt_mail_and_reports_waiting() {
    let Some(t) = Team::new("an_interactive_session_reads_mt_mail", Script::new()) else {
        return;
    };
    let settings = t.root.join("york-settings.json");
    t.ok(
        "mt-hooks",
        &[
            "install",
            "--settings",
            settings.to_str().unwrap(),
            "--form",
            "direct",
        ],
    );
    let team = t.config.join("teams/crew");
    std::fs::create_dir_all(team.join("inboxes")).unwrap();
    std::fs::write(
        team.join("config.json"),
        r#"{"name":"crew","leadAgentId":"team-lead@crew","members":[{"agentId":"york@crew","name":"york"}]}"#,
    )
    .unwrap();
    std::fs::write(team.join("inboxes/york.json"), "[]").unwrap();
    let mut pty = t.interactive(
        &[
            "--settings",
            settings.to_str().unwrap(),
            "--agent-id",
            "york@crew",
            "--agent-name",
            "york",
            "--team-name",
            "crew",
        ],
        &[
            ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
            ("MT_AGENT", "york"),
        ],
    );
    pty.wait_for("Claude Code v2.1.328");
    pty.type_text("hello");
    std::thread::sleep(std::time::Duration::from_millis(300));
    pty.type_text("\r");
    turn_with(&t, "hello");
    t.ok(
        "mt-mail",
        &[
            "send",
            "--team",
            "crew",
            "--to",
            "york",
            "--from",
            "lead",
            "inbox ping 42",
        ],
    );
    let q = t.api.wait_for(
        "the teammate message",
        crate::support::claude::PATIENCE,
        |q| q.is_turn() && q.sees("inbox ping 42"),
    );
    assert!(q.sees("teammate-message"), "{}", q.all_text());
    // Claude Code's reader prunes what it delivered.
    wait_for("the inbox pruned", || {
        std::fs::read_to_string(team.join("inboxes/york.json"))
            .is_ok_and(|s| !s.contains("inbox ping"))
    });
    wait_for("the waiting-for-input record", || {
        t.channel("general")
            .iter()
            .any(|m| m["from"] == "york" && m["content"] == "waiting for input")
    });
}
