//! mt-attach with agents spawned on the fake agent: the interactive step
//! runs a stand-in program (a shell script recording its arguments,
//! environment and working directory), since the fake cannot be
//! interactive. The real CLI on a terminal is in tests/claude/attach.rs.

use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{Env, jsonl, read_json, text, wait_for};

/// A stand-in for the interactive program, writing into `dir`: `env`,
/// `cwd`, `pid`, and last `args` (each ended by a NUL); then `body` (shell),
/// then exit 0.
fn stand_in(e: &Env, body: &str) -> (PathBuf, PathBuf) {
    let dir = e.root.join("program");
    fs::create_dir_all(&dir).unwrap();
    let script = e.root.join("interactive");
    let d = dir.display();
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {d}/env\npwd > {d}/cwd\necho $$ > {d}/pid\n\
             printf '%s\\0' \"$@\" > {d}/args.tmp && mv {d}/args.tmp {d}/args\n{body}\nexit 0\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, dir)
}

/// Hold the stand-in until the test creates `dir/go`.
fn hold(dir: &Path) -> String {
    format!("while [ ! -f {0}/go ]; do sleep 0.02; done", dir.display())
}

/// mt-attach as `alice` with `program` as the agent program.
fn attach_cmd(e: &Env, program: &Path, args: &[&str]) -> Command {
    let mut c = e.cmd("mt-attach");
    c.env("MT_AGENT_CMD", program)
        .env("MT_USER", "alice")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn attach(e: &Env, program: &Path, args: &[&str]) -> Output {
    attach_cmd(e, program, args).output().unwrap()
}

fn started(e: &Env, program: &Path, args: &[&str]) -> Child {
    attach_cmd(e, program, args).spawn().unwrap()
}

/// A spawned agent, idle after its first turn; its session.
fn idle_agent(e: &Env, name: &str) -> String {
    e.spawn(name, "", &[]);
    e.wait_idle(name);
    e.status(name)["session_id"].as_str().unwrap().to_string()
}

fn ps(e: &Env, name: &str) -> Value {
    let o = e.run("mt-ps", &["--json", name]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn args_of(p: &Path) -> Vec<String> {
    let data = fs::read_to_string(p).unwrap();
    data.split_terminator('\0').map(String::from).collect()
}

/// The records about agent `name` with this `meta.event`.
fn events(e: &Env, event: &str) -> Vec<Value> {
    e.channel("general")
        .into_iter()
        .filter(|r| r["meta"]["event"] == event)
        .collect()
}

/// Wait (bounded) for mt-attach to exit; killed when it does not.
fn finish(mut child: Child) -> Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > crate::support::PATIENCE {
            let _ = child.kill();
            panic!("mt-attach did not exit: {:?}", child.wait_with_output());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn attach_runs_the_session_interactively_and_hands_it_back() {
    let e = Env::new();
    e.spawn(
        "york",
        "",
        &["--model", "opus", "--role", "You review.", "--", "--debug"],
    );
    e.wait_idle("york");
    let session = e.status("york")["session_id"].as_str().unwrap().to_string();
    let (program, dir) = stand_in(&e, &hold(&e.root.join("program")));
    let child = attach_cmd(&e, &program, &["york"])
        .env("CLAUDECODE", "1")
        .env("CLAUDE_CODE_SESSION_ID", "parent-session")
        .spawn()
        .unwrap();
    wait_for("the program", || dir.join("args").is_file());

    // The interactive command line: the headless one from the session on
    // (settings, model, prompts, extra arguments), resuming it, without
    // print mode and stream-json.
    let args = args_of(&dir.join("args"));
    let first = e.starts()[0]["argv"].as_array().unwrap().clone();
    let headless: Vec<&str> = first.iter().map(|a| a.as_str().unwrap()).collect();
    let from = headless.iter().position(|a| *a == "--session-id").unwrap();
    let mut want = vec!["--resume"];
    want.extend(&headless[from + 1..]);
    assert_eq!(args, want);
    let settings = e.agent("york").join("settings.json");
    assert_eq!(
        args[..4],
        [
            "--resume",
            session.as_str(),
            "--settings",
            settings.to_str().unwrap()
        ]
    );
    for part in ["--model", "opus", "--debug"] {
        assert!(args.iter().any(|a| a == part), "{part} in {args:?}");
    }
    assert!(args.iter().any(|a| a.ends_with("You review.")), "{args:?}");
    assert!(!args.iter().any(|a| a == "-p" || a == "stream-json"));
    // The agent's environment and working directory.
    let env = fs::read_to_string(dir.join("env")).unwrap();
    assert!(env.contains("MT_AGENT=york\n"), "{env}");
    assert!(env.contains(&format!("MT_DIR={}\n", e.state.display())));
    assert!(env.contains("MT_RUN="));
    assert!(!env.contains("CLAUDECODE=") && !env.contains("parent-session"));
    assert_eq!(
        fs::read_to_string(dir.join("cwd")).unwrap().trim(),
        e.meta("york")["cwd"].as_str().unwrap()
    );

    // Marked attached, with the person, mt-attach and the program.
    let marker = read_json(&e.agent("york").join("attached.json"));
    assert_eq!(marker["by"], "alice");
    assert_eq!(marker["pid"], child.id());
    assert_eq!(marker["session_id"], session.as_str());
    let program_pid: i64 = fs::read_to_string(dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the program's pid", || {
        read_json(&e.agent("york").join("attached.json"))["program_pid"] == program_pid
    });
    let shown = ps(&e, "york");
    assert_eq!(
        (shown["state"].as_str(), shown["running"].as_bool()),
        (Some("attached"), Some(true))
    );
    assert!(e.ok("mt-ps", &[]).contains("attached"));
    let rec = &events(&e, "attach")[0];
    assert_eq!(rec["from"], "alice");
    assert_eq!(rec["session_id"], session.as_str());

    // Nothing else starts it meanwhile: a resume finds the lock taken, a
    // nudge and a routed mention wait in the inbox.
    let starts = e.starts().len();
    let o = e.run(
        "mt-spawn",
        &["york", "--resume", "--detach", "--prompt", "x"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let o = e.run("mt-nudge", &["york", "while you were away"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("york is attached by alice"),
        "{}",
        text(&o.stderr)
    );
    e.post("lead", "@york ping from the lead");
    let routed = e.ok("mt-route", &[]);
    assert!(
        routed.contains("attached by alice; left in its inbox"),
        "{routed}"
    );
    assert_eq!(e.starts().len(), starts, "not resumed while attached");
    let waiting = fs::read_dir(e.agent("york").join("inbox/new"))
        .unwrap()
        .count();
    assert_eq!(waiting, 2);
    // mt-stop leaves the person's session alone.
    let o = e.run("mt-stop", &["--grace", "1s", "york"]);
    assert!(
        text(&o.stderr).contains("york is attached by alice (mt-attach pid"),
        "{}",
        text(&o.stderr)
    );
    assert!(std::path::Path::new(&format!("/proc/{program_pid}")).exists());
    assert_eq!(ps(&e, "york")["state"], "attached");
    assert!(!e.agent("york").join("stop.json").exists());
    // One person at a time.
    let o = attach(&e, &program, &["--as", "bob", "york"]);
    assert_eq!(o.status.code(), Some(75));
    assert!(
        text(&o.stderr).contains("already attached by alice"),
        "{}",
        text(&o.stderr)
    );

    // The person leaves: marker gone, handed back, nudges delivered, same
    // session.
    fs::write(dir.join("go"), "").unwrap();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("handed york back"),
        "{}",
        text(&out.stderr)
    );
    assert!(!e.agent("york").join("attached.json").exists());
    assert!(e.running("york"));
    let back = &events(&e, "hand-back")[0];
    assert_eq!(back["from"], "alice");
    assert!(back["seq"].as_u64() > rec["seq"].as_u64());
    wait_for("the waiting messages", || e.inputs("york").len() == 3);
    let inputs = e.inputs("york");
    assert_eq!(inputs[1], "while you were away");
    assert!(
        inputs[2].ends_with("lead: @york ping from the lead"),
        "{inputs:?}"
    );
    let last = e.starts().pop().unwrap();
    let argv: Vec<&str> = last["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        argv.windows(2).any(|w| w == ["--resume", session.as_str()]),
        "{argv:?}"
    );
    assert!(argv.contains(&"-p"));
    e.wait_idle("york");
    assert_eq!(e.status("york")["session_id"], session.as_str());
    assert_eq!(ps(&e, "york")["state"], "idle");
}

#[test]
fn a_busy_agent_finishes_its_turn_before_the_person_attaches() {
    let e = Env::new();
    let gate = e.root.join("gate");
    let o = e
        .cmd("mt-spawn")
        .env(
            "MT_FAKE_RUN",
            format!(
                "while [ ! -f {} ]; do sleep 0.02; done; echo turn done",
                gate.display()
            ),
        )
        .args(["york", "--detach", "--prompt", "work"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("the turn", || e.status("york")["state"] == "working");
    let (program, dir) = stand_in(&e, "");
    let child = started(&e, &program, &["york"]);
    // A soft stop is asked for; the turn goes on, the program waits.
    wait_for("the stop request", || {
        e.agent("york").join("stop.json").is_file()
    });
    let req = read_json(&e.agent("york").join("stop.json"));
    assert_eq!(
        (req["soft"].as_bool(), req["by"].as_str()),
        (Some(true), Some("alice (mt-attach)"))
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!dir.join("args").exists(), "attached before the turn ended");
    assert_eq!(e.status("york")["state"], "working");
    fs::write(&gate, "").unwrap();
    let out = finish(child);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("york is running: it stops once its current turn ends"),
        "{err}"
    );
    assert!(dir.join("args").is_file());
    // The turn ended with its result before the agent stopped, cleanly.
    let evs = jsonl(&e.agent("york").join("events.jsonl"));
    let result = evs.iter().position(|v| v["type"] == "result").unwrap();
    let exit = evs.iter().position(|v| v["subtype"] == "exit").unwrap();
    assert!(result < exit);
    assert!(
        evs[result]["result"]
            .as_str()
            .unwrap()
            .ends_with("turn done")
    );
    assert_eq!(evs[exit]["code"], 0);
    let stop = e
        .channel("general")
        .into_iter()
        .find(|r| r["meta"]["event"] == "stop")
        .unwrap();
    assert!(
        stop["content"]
            .as_str()
            .unwrap()
            .contains("alice (mt-attach)"),
        "{stop}"
    );
    assert!(!e.agent("york").join("stop.json").exists());
}

#[test]
fn a_turn_that_does_not_end_in_time_leaves_the_agent_running() {
    let e = Env::new();
    e.spawn("york", "tool-wait", &[]);
    wait_for("the turn", || e.status("york")["state"] == "working");
    let (program, dir) = stand_in(&e, "");
    let o = attach(&e, &program, &["--timeout", "500ms", "york"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains("york is still running after 500ms"), "{err}");
    assert!(!dir.join("args").exists());
    assert!(!e.agent("york").join("attached.json").exists());
    assert!(e.running("york"));
    assert!(events(&e, "attach").is_empty());
}

#[test]
fn a_stopped_agent_is_attached_at_once_and_left_stopped_on_request() {
    let e = Env::new();
    let session = idle_agent(&e, "york");
    e.ok("mt-stop", &["york"]);
    // Settings lost meanwhile are made again from meta.json.
    let settings = e.agent("york").join("settings.json");
    fs::remove_file(&settings).unwrap();
    let (program, dir) = stand_in(&e, "");
    let o = attach(&e, &program, &["--no-hand-back", "york"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("stops once"), "{err}");
    assert!(err.contains("left york stopped"), "{err}");
    assert_eq!(
        args_of(&dir.join("args"))[..4],
        [
            "--resume",
            session.as_str(),
            "--settings",
            settings.to_str().unwrap()
        ]
    );
    assert!(read_json(&settings)["hooks"]["Stop"].is_array());
    assert!(!e.running("york"));
    assert_eq!(ps(&e, "york")["state"], "exited");
    assert!(events(&e, "hand-back").is_empty());
    assert_eq!(events(&e, "detach")[0]["from"], "alice");
    assert!(!e.agent("york").join("attached.json").exists());
}

#[test]
fn what_cannot_be_attached_is_refused_before_anything_stops() {
    let e = Env::new();
    let (program, dir) = stand_in(&e, "");
    let o = attach(&e, &program, &["ghost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr), "mt-attach: no agent named ghost\n");

    // Never started a session: its program could not run.
    let o = e
        .cmd("mt-spawn")
        .env("MT_AGENT_CMD", e.root.join("missing"))
        .args(["empty", "--detach", "--prompt", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69), "{}", text(&o.stderr));
    let o = attach(&e, &program, &["empty"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        text(&o.stderr).contains("empty has no session yet"),
        "{}",
        text(&o.stderr)
    );

    idle_agent(&e, "york");
    let o = attach(&e, &program, &["--as", "Alice Smith", "york"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        text(&o.stderr).contains("invalid person name"),
        "{}",
        text(&o.stderr)
    );
    let o = attach(&e, &e.root.join("no-such-program"), &["york"]);
    assert_eq!(o.status.code(), Some(69));
    assert!(
        text(&o.stderr).contains("cannot find the agent program"),
        "{}",
        text(&o.stderr)
    );
    // None of that touched york.
    assert!(!dir.join("args").exists());
    assert_eq!(ps(&e, "york")["state"], "idle");
    assert!(!e.agent("york").join("stop.json").exists());
}

#[test]
fn a_sandboxed_agent_needs_bubblewrap_to_be_attached() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d.join("bwrap").is_file()) {
        eprintln!("skipping: bwrap is installed");
        return;
    }
    let e = Env::new();
    idle_agent(&e, "york");
    e.ok("mt-stop", &["york"]);
    let meta = e.agent("york").join("meta.json");
    let mut m = read_json(&meta);
    m["sandbox"] = true.into();
    fs::write(&meta, m.to_string()).unwrap();
    let (program, dir) = stand_in(&e, "");
    let o = attach(&e, &program, &["york"]);
    assert_eq!(o.status.code(), Some(69));
    assert!(text(&o.stderr).contains("bwrap"), "{}", text(&o.stderr));
    assert!(!dir.join("args").exists());
}

#[test]
fn ctrl_c_reaches_the_program_not_mt_attach_and_its_exit_code_is_kept() {
    let e = Env::new();
    idle_agent(&e, "york");
    let d = e.root.join("program");
    // The program ignores SIGINT itself and sends it to its whole process
    // group, as a terminal does with Ctrl-C, then exits 3.
    let (program, dir) = stand_in(
        &e,
        &format!(
            "trap 'echo int >> {0}/int' INT\nkill -INT 0\nsleep 0.2\nexit 3",
            d.display()
        ),
    );
    let out = attach_cmd(&e, &program, &["york"])
        .process_group(0)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(dir.join("int").is_file(), "the program got the signal");
    assert!(err.contains("handed york back"), "{err}");
    assert_eq!(events(&e, "hand-back")[0]["meta"]["exit_code"], 3);
    assert!(e.running("york"));
}

/// SIGTERM or a hangup (the terminal closed) ends the program with SIGTERM
/// (Claude Code ignores SIGHUP); the session is handed back.
#[test]
fn sigterm_or_sighup_ends_the_program_and_the_session_is_handed_back() {
    use nix::sys::signal::Signal;
    let e = Env::new();
    idle_agent(&e, "york");
    let d = e.root.join("program");
    let (program, dir) = stand_in(
        &e,
        &format!(
            "trap '' HUP\ntrap 'echo term > {0}/term; exit 7' TERM\ntouch {0}/ready\n\
             while :; do sleep 0.02; done",
            d.display()
        ),
    );
    for sig in [Signal::SIGTERM, Signal::SIGHUP] {
        let _ = fs::remove_file(dir.join("ready"));
        let _ = fs::remove_file(dir.join("term"));
        let child = started(&e, &program, &["york"]);
        wait_for("the program", || dir.join("ready").is_file());
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let out = finish(child);
        assert_eq!(out.status.code(), Some(7), "{sig}: {}", text(&out.stderr));
        assert!(dir.join("term").is_file());
        assert!(e.running("york"));
        assert!(!e.agent("york").join("attached.json").exists());
        e.wait_idle("york");
    }
}

#[test]
fn a_killed_mt_attach_ends_the_program_and_its_marker_means_nothing() {
    let e = Env::new();
    idle_agent(&e, "york");
    let d = e.root.join("program");
    let (program, dir) = stand_in(
        &e,
        &format!(
            "trap 'echo term > {0}/term; exit 0' TERM\ntouch {0}/ready\n\
             while :; do sleep 0.02; done",
            d.display()
        ),
    );
    let mut child = started(&e, &program, &["york"]);
    wait_for("the program", || dir.join("ready").is_file());
    child.kill().unwrap();
    child.wait().unwrap();
    // The program never runs without the lock held.
    wait_for("the program to end", || dir.join("term").is_file());
    assert!(e.agent("york").join("attached.json").is_file());
    assert_eq!(ps(&e, "york")["state"], "exited");
    // A nudge resumes it as usual, and once running it is not attached.
    e.ok("mt-nudge", &["york", "carry on"]);
    wait_for("the nudge", || {
        e.inputs("york").iter().any(|i| i == "carry on")
    });
    e.wait_idle("york");
    assert_eq!(ps(&e, "york")["state"], "idle");
    e.ok("mt-nudge", &["york", "and more"]);
    wait_for("the second nudge", || {
        e.inputs("york").iter().any(|i| i == "and more")
    });
}

#[test]
fn what_the_interactive_run_left_running_is_ended() {
    let e = Env::new();
    idle_agent(&e, "york");
    let d = e.root.join("program");
    let (program, _) = stand_in(
        &e,
        &format!(
            "sleep 1000 >/dev/null 2>&1 &\necho $! > {0}/server",
            d.display()
        ),
    );
    let o = attach(&e, &program, &["york"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let pid: i32 = fs::read_to_string(d.join("server"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the leftover to end", || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                matches!(
                    s[s.rfind(')').unwrap() + 2..].chars().next(),
                    Some('Z' | 'X')
                )
            })
            .unwrap_or(true)
    });
}
