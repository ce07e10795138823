//! mt-lead without the real CLI (`MT_LEAD_CMD` set to a recorder): what the
//! lead's session is given, the watcher started once; the coworker prompt
//! and `--add-repo` of mt-spawn.

use crate::support::*;
use std::fs;

/// A stand-in lead program: records its arguments (one per line, NUL
/// separated) and a few variables, then exits.
fn recorder(e: &Env) -> std::path::PathBuf {
    let p = e.root.join("lead.sh");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > {0}/lead.args\nenv > {0}/lead.env\n",
            e.root.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn args(e: &Env) -> Vec<String> {
    fs::read_to_string(e.root.join("lead.args"))
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn watch_pids(e: &Env) -> Vec<i32> {
    let rules = e.state.join("watch/rules");
    let rules = rules.to_str().unwrap();
    let mut v = Vec::new();
    for d in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = d.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat.contains(") Z ") {
            continue;
        }
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("mt-watch") && cmd.contains(rules) {
                v.push(pid);
            }
        }
    }
    v
}

struct Watchers<'a>(&'a Env);

impl Drop for Watchers<'_> {
    fn drop(&mut self) {
        for pid in watch_pids(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[test]
fn the_lead_gets_hooks_variables_prompt_and_extra_arguments() {
    let e = Env::with_repo();
    let _w = Watchers(&e);
    let lead = recorder(&e);
    fs::create_dir_all(e.home.join("mt")).unwrap();
    fs::write(e.home.join("mt/LEAD.md"), "mine: G-1\n").unwrap();
    fs::create_dir_all(e.repo.join(".mt")).unwrap();
    fs::write(e.repo.join(".mt/LEAD.md"), "ours: P-2\n").unwrap();
    let docs = e.root.join("docs");
    fs::create_dir_all(&docs).unwrap();
    let o = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .env("MT_AGENT", "someone-else")
        .env("CLAUDECODE", "1")
        .args([
            "--add-repo",
            docs.to_str().unwrap(),
            "--",
            "--model",
            "opus",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let a = args(&e);
    let at = |flag: &str| a.iter().position(|x| x == flag).map(|i| a[i + 1].clone());
    let settings: serde_json::Value = serde_json::from_str(&at("--settings").unwrap()).unwrap();
    for event in ["SessionStart", "UserPromptSubmit", "Stop", "Notification"] {
        let cmd = settings["hooks"][event][0]["hooks"][0]["command"]
            .as_str()
            .unwrap();
        assert!(cmd.contains("mt-hook"), "{event}: {cmd}");
    }
    assert_eq!(settings["env"]["MT_AGENT"], "lead");
    let prompt = at("--append-system-prompt").unwrap();
    let (b, g, p) = (
        prompt.find("You lead a team").unwrap(),
        prompt.find("G-1").unwrap(),
        prompt.find("P-2").unwrap(),
    );
    assert!(b < g && g < p, "{prompt}");
    assert_eq!(at("--add-dir").unwrap(), docs.to_str().unwrap());
    assert_eq!(&a[a.len() - 2..], ["--model", "opus"]);
    let env = fs::read_to_string(e.root.join("lead.env")).unwrap();
    assert!(env.contains("\nMT_AGENT=lead\n"), "{env}");
    assert!(env.contains(&format!("MT_DIR={}", e.state.display())));
    let list = e.default_list();
    assert!(env.contains(&format!("CLAUDE_CODE_TASK_LIST_ID={list}")));
    assert!(
        !env.contains("CLAUDECODE="),
        "a parent session's variables are dropped"
    );
}

#[test]
fn one_watcher_however_many_leads_start_at_once() {
    let e = Env::with_repo();
    let _w = Watchers(&e);
    let lead = recorder(&e);
    let kids: Vec<_> = (0..4)
        .map(|_| {
            e.cmd("mt-lead")
                .env("MT_LEAD_CMD", &lead)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut started = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        started += text(&o.stderr).matches("started the watcher").count();
    }
    assert_eq!(started, 1, "one of them started it");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pids = watch_pids(&e);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let rules = fs::read_to_string(e.state.join("watch/rules")).unwrap();
    assert!(rules.contains("mt-dispatch"), "default rules written");
    // Written once: an edited rules file is left alone by the next lead.
    fs::write(e.state.join("watch/rules"), "# mine\n").unwrap();
    let o = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .arg("--no-watch")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = e.cmd("mt-lead").env("MT_LEAD_CMD", &lead).output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        fs::read_to_string(e.state.join("watch/rules")).unwrap(),
        "# mine\n"
    );
    assert_eq!(watch_pids(&e), pids);
    // `--print` starts nothing and prints no secret.
    for pid in &pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
    wait_for("the watcher to stop", || watch_pids(&e).is_empty());
    let out = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .arg("--print")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--append-system-prompt"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(watch_pids(&e).is_empty());
}

#[test]
fn a_missing_lead_program_is_a_clear_error() {
    let e = Env::with_repo();
    let o = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", "no-such-claude")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert!(
        text(&o.stderr).starts_with("mt-lead: cannot find the lead program \"no-such-claude\"")
    );
    assert!(watch_pids(&e).is_empty(), "nothing started");
}

/// Coworkers get the coworker prompt (built in, global, project) appended,
/// kept with the agent for its resumes; `--no-coworker-prompt` leaves it out.
#[test]
fn coworkers_get_the_coworker_prompt_and_keep_it() {
    let e = Env::with_repo();
    fs::create_dir_all(e.repo.join(".mt")).unwrap();
    fs::write(e.repo.join(".mt/COWORKER.md"), "Run make check: C-5\n").unwrap();
    e.spawn("york", "", &["--role", "You review."]);
    wait_for("york's start", || !e.starts().is_empty());
    let argv: Vec<String> = serde_json::from_value(e.starts()[0]["argv"].clone()).unwrap();
    let i = argv
        .iter()
        .position(|a| a == "--append-system-prompt")
        .unwrap();
    let p = &argv[i + 1];
    assert!(
        p.starts_with("# You are a coworker in a team run through mt"),
        "{p}"
    );
    assert!(p.contains("C-5") && p.ends_with("You review."), "{p}");
    assert_eq!(
        e.meta("york")["system_prompt"].as_str().unwrap().trim_end(),
        p[..p.find("\n\nYou review.").unwrap()].trim_end()
    );
    // A later edit of COWORKER.md does not change a resumed agent's prompt.
    fs::write(e.repo.join(".mt/COWORKER.md"), "changed\n").unwrap();
    e.ok("mt-stop", &["york"]);
    e.ok(
        "mt-spawn",
        &["york", "--resume", "--detach", "--prompt", "again"],
    );
    wait_for("the second start", || e.starts().len() == 2);
    let argv2: Vec<String> = serde_json::from_value(e.starts()[1]["argv"].clone()).unwrap();
    assert!(argv2.contains(p), "the same prompt on resume");
    e.ok("mt-stop", &["york"]);

    e.spawn("kent", "", &["--no-coworker-prompt"]);
    wait_for("kent's start", || e.starts().len() == 3);
    let argv3: Vec<String> = serde_json::from_value(e.starts()[2]["argv"].clone()).unwrap();
    assert!(
        !argv3.iter().any(|a| a == "--append-system-prompt"),
        "{argv3:?}"
    );
    e.ok("mt-stop", &["kent"]);
}

/// `--add-repo`: a worktree for the agent in the other repository too, on
/// its branch, given with `--add-dir`, and kept on resume.
#[test]
fn add_repo_gives_a_worktree_in_each_repository() {
    let e = Env::with_repo();
    let other = e.root.join("docs");
    fs::create_dir_all(&other).unwrap();
    e.git(&other, &["init", "-q", "-b", "main"]);
    fs::write(other.join("index.md"), "# docs\n").unwrap();
    e.git(&other, &["add", "."]);
    e.git(&other, &["commit", "-qm", "docs"]);
    e.spawn(
        "york",
        "",
        &["--worktree", "--add-repo", other.to_str().unwrap()],
    );
    wait_for("york's start", || !e.starts().is_empty());
    let wt = e.root.join("docs.worktrees/york");
    assert!(wt.join("index.md").is_file());
    assert_eq!(e.git(&wt, &["branch", "--show-current"]).trim(), "mt/york");
    let argv: Vec<String> = serde_json::from_value(e.starts()[0]["argv"].clone()).unwrap();
    let i = argv.iter().position(|a| a == "--add-dir").unwrap();
    assert_eq!(argv[i + 1], wt.to_str().unwrap());
    assert_eq!(e.meta("york")["add_dirs"][0], wt.to_str().unwrap());
    e.ok("mt-stop", &["york"]);
    e.ok(
        "mt-spawn",
        &["york", "--resume", "--detach", "--prompt", "again"],
    );
    wait_for("the second start", || e.starts().len() == 2);
    let argv: Vec<String> = serde_json::from_value(e.starts()[1]["argv"].clone()).unwrap();
    assert!(argv.contains(&wt.to_str().unwrap().to_string()), "{argv:?}");
    e.ok("mt-stop", &["york"]);
    let o = e.run(
        "mt-spawn",
        &[
            "kent",
            "--add-repo",
            e.root.join("nowhere").to_str().unwrap(),
            "--prompt",
            "x",
        ],
    );
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
}

/// The lead's session runs on the settings' profile (or `--profile`), and
/// `--print` never shows the key.
#[test]
fn the_lead_runs_on_the_profile_and_print_hides_the_key() {
    let e = Env::with_repo();
    let lead = recorder(&e);
    let mut c = e.cmd("mt-profile");
    c.args([
        "add",
        "work",
        "--api-key-stdin",
        "--base-url",
        "http://127.0.0.1:9/api",
    ])
    .stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk-lead-secret-77\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    e.ok("mt-config", &["set", "profile", "work"]);
    let o = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .env("ANTHROPIC_API_KEY", "sk-callers")
        .args(["--no-watch"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let env = fs::read_to_string(e.root.join("lead.env")).unwrap();
    assert!(
        env.contains("\nANTHROPIC_API_KEY=sk-lead-secret-77\n"),
        "{env}"
    );
    assert!(
        env.contains("\nANTHROPIC_BASE_URL=http://127.0.0.1:9/api\n"),
        "{env}"
    );
    let out = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .args(["--print"])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.contains("ANTHROPIC_BASE_URL=http://127.0.0.1:9/api"),
        "{shown}"
    );
    assert!(!shown.contains("sk-lead-secret-77"), "{shown}");
    let o = e
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", &lead)
        .args(["--no-watch", "--profile", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
}
