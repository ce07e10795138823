//! mt-lead with the real CLI: the lead's interactive session gets the lead
//! prompt and mt's session context, and one watcher runs for the team.

use crate::support::api::Script;
use crate::support::claude::{PATIENCE, Team};
use crate::support::wait_for;

/// The pid of the watcher holding the state directory's lock, if alive.
fn watcher(t: &Team) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(t.state.join("watch/LOCK"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmd)
        .contains("mt-watch")
        .then_some(pid)
}

/// Every mt-watch process whose command line names this state directory's
/// rules.
fn watchers(t: &Team) -> Vec<i32> {
    let rules = t.state.join("watch/rules");
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("mt-watch") && cmd.contains(rules.to_str().unwrap()) {
                v.push(pid);
            }
        }
    }
    v
}

struct StopWatcher<'a>(&'a Team);

impl Drop for StopWatcher<'_> {
    fn drop(&mut self) {
        for pid in watchers(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[test]
fn mt_lead_starts_the_lead_with_its_prompt_and_one_watcher() {
    let Some(t) = Team::new("mt_lead_starts_the_lead", Script::new()) else {
        return;
    };
    let _stop = StopWatcher(&t);
    let global = t.home.join(".config/mt");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(global.join("LEAD.md"), "Global lead note: GLOBAL-LEAD-7\n").unwrap();
    std::fs::create_dir_all(t.repo.join(".mt")).unwrap();
    std::fs::write(
        t.repo.join(".mt/LEAD.md"),
        "Project lead note: PROJECT-LEAD-9\n",
    )
    .unwrap();
    std::fs::write(t.repo.join(".mt/config.toml"), "channel = \"crew\"\n").unwrap();
    t.post("york", "@lead the parser is ready for review");
    // The channel the settings name, since MT_CHANNEL is not set.
    let o = t
        .cmd("mt-post")
        .args(["--from", "york", "-c", "crew", "@lead crew channel works"])
        .output()
        .unwrap();
    assert!(o.status.success());

    let mut c = t.cmd("mt-lead");
    c.env("MT_LEAD_CMD", &t.claude).env_remove("MT_CHANNEL");
    let mut pty = t.in_pty(c);
    pty.wait_for("Claude Code v2.1.328");
    pty.type_text("plan the day");
    std::thread::sleep(std::time::Duration::from_millis(300));
    pty.type_text("\r");
    let q = t.api.wait_for("the lead's first turn", PATIENCE, |q| {
        q.is_turn() && q.sees("plan the day")
    });
    let text = q.all_text();
    // The lead prompt: built in, then global, then the project's.
    let builtin = text.find("You lead a team of coworkers through mt");
    let g = text.find("GLOBAL-LEAD-7");
    let p = text.find("PROJECT-LEAD-9");
    assert!(
        builtin.is_some() && g.is_some() && p.is_some(),
        "lead prompt missing: {text}"
    );
    assert!(builtin < g && g < p, "order: built in, global, project");
    // mt's session context, through the hooks of --settings, on the
    // settings' channel, with what is unread there.
    assert!(
        text.contains("the lead of this repository's mt team"),
        "{text}"
    );
    assert!(text.contains("#crew"), "{text}");
    assert!(text.contains("crew channel works"), "{text}");
    // Nothing was written into the user's or the project's settings.
    assert!(!t.repo.join(".claude").exists());
    let user = std::fs::read_to_string(t.config.join("settings.json")).unwrap_or_default();
    assert!(!user.contains("mt-hook"), "{user}");

    // A watcher runs afterwards, with the default rules for the channel.
    wait_for("the watcher", || watcher(&t).is_some());
    let first = watcher(&t).unwrap();
    let rules = std::fs::read_to_string(t.state.join("watch/rules")).unwrap();
    assert!(rules.contains("@change channel:crew"), "{rules}");

    // A second mt-lead starts no second watcher.
    let o = t
        .cmd("mt-lead")
        .env("MT_LEAD_CMD", "true")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(watchers(&t), vec![first]);
    pty.type_text("/exit\r");
}

/// A coworker from `mt-sling` given nothing but the settings files (no
/// flags, no variables): the project file names the program, the pool and
/// the channel, the global one the model; the coworker prompt reaches the
/// session, and it edits, commits and marks its task done.
#[test]
fn a_coworker_from_the_settings_files_alone_does_its_task() {
    fn work(wt: &std::path::Path, prompt: &str) -> Vec<crate::support::api::Step> {
        use crate::support::api::Step;
        let n: String = prompt
            .split("This is task ")
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        vec![
            Step::tool(
                "Write",
                serde_json::json!({"file_path": wt.join("widget.txt"), "content": "widget\n"}),
            ),
            Step::bash("git add widget.txt && git commit -qm 'add the widget'"),
            Step::bash(format!("mt-task done {n}")),
            Step::bash("mt-post 'the widget is in'"),
            Step::text("done"),
        ]
    }
    let Some(t) = Team::new("a_coworker_from_the_settings_files_alone", Script::new()) else {
        return;
    };
    let wt = t.root.join("repo.worktrees/quill");
    let w = wt.clone();
    t.api
        .set_script(Script::new().on_with("Build the widget", move |_, p| work(&w, p)));
    std::fs::create_dir_all(t.repo.join(".mt")).unwrap();
    std::fs::write(
        t.repo.join(".mt/config.toml"),
        format!(
            "# the team\nagent-cmd = {:?}\npool = [\"quill\"]\nchannel = \"build\"\n",
            t.claude.to_str().unwrap()
        ),
    )
    .unwrap();
    let global = t.home.join(".config/mt");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(
        global.join("config.toml"),
        "model = \"claude-sonnet-4-5\"\n",
    )
    .unwrap();
    std::fs::write(global.join("COWORKER.md"), "House rule: COWORKER-NOTE-3\n").unwrap();

    let o = t
        .cmd("mt-sling")
        .args(["Build the widget"])
        .env_remove("MT_AGENT_CMD")
        .env_remove("MT_CHANNEL")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "quill");
    let meta = t.meta("quill");
    assert_eq!(meta["agent_cmd"], t.claude.to_str().unwrap());
    assert_eq!(meta["model"], "claude-sonnet-4-5");
    assert_eq!(meta["channel"], "build");

    let q = t.api.wait_for("the coworker's turn", PATIENCE, |q| {
        q.is_turn() && q.sees("Build the widget")
    });
    assert!(
        q.sees("You are a coworker in a team run through mt"),
        "{}",
        q.all_text()
    );
    assert!(q.sees("COWORKER-NOTE-3"), "{}", q.all_text());
    assert_eq!(q.body["model"], "claude-sonnet-4-5");
    wait_for("the task done", || {
        t.ok("mt-task", &["show", "1", "--json"])
            .contains("\"completed\"")
    });
    let log = t.git(&["log", "--format=%s", "mt/quill"]);
    assert!(log.contains("add the widget"), "{log}");
    wait_for("the post on #build", || {
        t.ok("mt-read", &["-c", "build", "--all", "--as", "x"])
            .contains("the widget is in")
    });
}
