//! mt-chat driven in a real terminal (tmux): live messages, posting as the
//! person, unread counts, switching, completion, resizing, hostile text,
//! no CPU while idle, and the person's cursor kept apart from the lead's.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// tmux is needed; CI installs it.
fn tmux_or_skip() -> bool {
    if have_tmux() {
        return true;
    }
    skip("tmux is not installed");
    false
}

/// The variables mt-chat runs with in `e`, plus `extra`.
fn vars(e: &Env, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&str, String)> = vec![
        ("PATH", format!("{}:/usr/bin:/bin", bin_dir().display())),
        ("HOME", e.home.display().to_string()),
        ("MT_DIR", e.state.display().to_string()),
        ("CLAUDE_CONFIG_DIR", e.claude().display().to_string()),
        ("MT_FSYNC", "0".into()),
        ("TERM", "screen".into()),
    ];
    for (k, val) in extra {
        v.retain(|(k2, _)| k2 != k);
        v.push((k, val.to_string()));
    }
    v
}

/// mt-chat as alice in a 120 x 40 terminal, with `args`.
fn chat(e: &Env, args: &str, extra: &[(&'static str, &str)]) -> Tmux {
    let t = Tmux::start(
        &e.repo,
        &vars(e, extra),
        &format!("{} --as alice {args}", bin("mt-chat").display()),
        120,
        40,
    );
    t.wait_for("> ");
    t
}

fn post(e: &Env, from: &str, channel: &str, text: &str) {
    e.ok("mt-post", &["--from", from, "-c", channel, text]);
}

fn cursor_seq(e: &Env, who: &str, channel: &str) -> Option<u64> {
    let p = e
        .state
        .join("cursors")
        .join(who)
        .join(format!("{channel}.json"));
    p.is_file().then(|| read_json(&p)["seq"].as_u64().unwrap())
}

/// The screen's line that holds `text`.
fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?} in:\n{screen}"))
}

// The 1 s target for a post to show is measured by benches/chat.rs; here
// the wait is bounded only by the tests' patience.
#[test]
fn a_post_from_elsewhere_shows_and_a_typed_one_is_posted_as_the_person() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    post(&e, "york", "general", "before the start");
    let t = chat(&e, "", &[]);
    t.wait_for("york: before the start");
    post(&e, "york", "general", "posted elsewhere");
    t.wait_for("york: posted elsewhere");

    t.type_text("hello from the terminal");
    t.keys(&["Enter"]);
    t.wait_for("alice: hello from the terminal");
    let out = e.ok("mt-read", &["--last", "1", "--json"]);
    let rec: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rec["from"], "alice");
    assert_eq!(rec["content"], "hello from the terminal");
    // The input line is empty again.
    let s = t.screen();
    assert!(
        line_with(&s, "│> ")[..]
            .split("│> ")
            .nth(1)
            .unwrap()
            .trim_end()
            .trim_end_matches('│')
            .trim()
            .is_empty(),
        "{s}"
    );
}

#[test]
fn unread_counts_go_to_zero_on_view_and_the_switcher_filters() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    post(&e, "york", "general", "in general");
    for i in 1..=3 {
        post(&e, "park", "review", &format!("review note {i}"));
    }
    post(&e, "park", "design", "a design note");
    let t = chat(&e, "", &[]);
    let s = t.wait_for("#review");
    assert!(line_with(&s, "#review").contains(" 3"), "{s}");
    assert!(line_with(&s, "#design").contains(" 1"), "{s}");
    // The channel on screen has nothing unread: its cursor is at its end.
    assert_eq!(cursor_seq(&e, "alice", "general"), Some(1));

    // Ctrl+K, type to filter: only the matching channels are offered.
    t.keys(&["C-k"]);
    t.wait_for("go to channel");
    t.type_text("rev");
    let s = t.wait_screen("the filtered list", |s| {
        s.contains("#rev") && !s.contains("#design 1│") && !line_with(s, "go to channel").is_empty()
    });
    assert!(s.contains("#review 3"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for("#review as alice");
    t.wait_for("park: review note 3");
    let s = t.wait_screen("review read", |s| !line_with(s, "#review ").contains('3'));
    assert!(line_with(&s, "#design").contains(" 1"), "{s}");
    assert_eq!(cursor_seq(&e, "alice", "review"), Some(3));
    // What was shown is read: mt-read as the person has nothing left there.
    assert_eq!(e.ok("mt-read", &["--as", "alice", "-c", "review"]), "");

    // A message to the channel on screen is read as it shows; one to
    // another channel counts there.
    post(&e, "york", "review", "review note 4");
    t.wait_for("york: review note 4");
    wait_for("the cursor to follow", || {
        cursor_seq(&e, "alice", "review") == Some(4)
    });
    post(&e, "york", "general", "back in general");
    t.wait_screen("general's count", |s| {
        line_with(s, "#general").contains(" 1")
    });
    // Ctrl+N goes on to the next channel in the list.
    t.keys(&["C-p"]);
    t.wait_for("#general as alice");
    t.wait_for("york: back in general");
    t.wait_screen("general read", |s| !line_with(s, "#general ").contains('1'));
}

#[test]
fn tab_completes_agent_names() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    e.spawn("yorick", "", &[]);
    e.spawn("parker", "", &[]);
    let t = chat(&e, "", &[]);
    // The side panel lists the coworkers.
    t.wait_for("yorick");
    t.type_text("ping @yo");
    t.keys(&["Tab"]);
    t.wait_for("> ping @yorick ");
    t.type_text("and @p");
    t.keys(&["Tab"]);
    t.wait_for("> ping @yorick and @parker ");
    t.keys(&["Enter"]);
    t.wait_for("alice: ping @yorick and @parker");
    let last: Value =
        serde_json::from_str(e.ok("mt-read", &["--last", "1", "--json"]).trim()).unwrap();
    assert_eq!(last["mentions"], serde_json::json!(["yorick", "parker"]));
}

#[test]
fn a_narrow_terminal_hides_the_panels_and_still_works() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    e.spawn("yorick", "", &[]);
    post(
        &e,
        "york",
        "general",
        "a message long enough to need wrapping at forty columns for sure",
    );
    post(&e, "park", "review", "elsewhere");
    let t = chat(&e, "", &[]);
    t.wait_for("coworkers");
    t.wait_for("channels");
    t.resize(40, 20);
    let s = t.wait_for("#general as alice (1 unread)");
    assert!(!s.contains("coworkers") && !s.contains("#review"), "{s}");
    for l in s.lines() {
        assert!(l.chars().count() <= 40, "{l:?}");
    }
    // The message wraps, the hidden list's unread count is in the title.
    assert!(s.contains("york: a message"), "{s}");
    t.type_text("narrow works");
    t.keys(&["Enter"]);
    t.wait_for("alice: narrow works");
    t.resize(120, 40);
    t.wait_for("coworkers");
}

#[test]
fn hostile_text_is_shown_as_text() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    post(&e, "york", "general", "a calm first message");
    let t = chat(&e, "", &[]);
    t.wait_for("york: a calm first message");
    let title = t.display("#{pane_title}");
    let long = "x".repeat(1000);
    post(
        &e,
        "york",
        "general",
        &format!(
            "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mred\u{1b}]52;c;Y2xpcA==\u{7} \u{202e}desrever {long}"
        ),
    );
    // A writer other than mt-post may put anything in a sender or type.
    let seg = e.state.join("channels/general/00000000000000000001.jsonl");
    let rec = serde_json::json!({
        "seq": 3, "id": "x", "timestamp": "2026-01-01T00:00:00Z",
        "from": "\u{1b}]0;EVIL\u{7}mallory", "type": "\u{1b}[5mblink",
        "content": "\u{9b}31mcsi", "channel": "general", "mentions": []
    });
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, format!("{rec}\n").as_bytes()).unwrap();
    t.wait_for("^[]0;PWNED^G^[[2J^[[31mred");
    let s = t.wait_for("^[]0;EVIL^Gmallory [^[[5mblink]: \\u{9b}31mcsi");
    assert!(s.contains("^[]52;c;Y2xpcA==^G"), "{s}");
    assert!(s.contains("\\u{202e}desrever"), "{s}");
    // The screen was not cleared, the title not set.
    assert!(s.contains("york: a calm first message"), "{s}");
    assert_eq!(t.display("#{pane_title}"), title);
    // The long line is wrapped, all of it on screen, inside the view.
    assert_eq!(s.matches('x').count(), 1000 + 1, "{s}");
    for l in s.lines() {
        assert!(l.chars().count() <= 120, "{l:?}");
    }
}

#[test]
fn idle_uses_no_cpu() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    e.spawn("yorick", "", &[]);
    post(&e, "york", "general", "hello");
    let t = chat(&e, "", &[]);
    t.wait_for("york: hello");
    t.wait_for("yorick");
    let pid = t.child_pid("mt-chat");
    // utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
    let ticks = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = ticks();
    std::thread::sleep(Duration::from_secs(2));
    // No timer runs: at most a tick of rounding, where polling every few
    // milliseconds would take many.
    assert!(ticks() - before <= 1, "mt-chat used CPU while idle");
    // And it is still awake for what comes.
    post(&e, "york", "general", "after the quiet");
    t.wait_for("york: after the quiet");
}

#[test]
fn the_person_reads_apart_from_the_lead_and_quitting_leaves_all_as_it_was() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    for i in 1..=3 {
        post(&e, "york", "general", &format!("note {i}"));
    }
    // The person by $MT_USER, beside the lead agent's $MT_AGENT.
    let t = Tmux::start(
        &e.repo,
        &vars(&e, &[("MT_USER", "alice"), ("MT_AGENT", "lead")]),
        &bin("mt-chat").display().to_string(),
        100,
        30,
    );
    t.wait_for("york: note 3");
    wait_for("alice's cursor", || {
        cursor_seq(&e, "alice", "general") == Some(3)
    });
    t.keys(&["C-c"]);
    let s = t.wait_for("EXITED 0");
    // The terminal is back: no alternate screen, the shell's line shows.
    assert!(!s.contains("as alice"), "{s}");
    assert_eq!(cursor_seq(&e, "lead", "general"), None);
    let lead = e.ok("mt-read", &["--as", "lead"]);
    assert_eq!(lead.lines().count(), 3, "{lead}");
    // Nothing of mt-chat's own was left in the state directory.
    let mut files: Vec<String> = walk(&e.state)
        .iter()
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix(&e.state).unwrap().display().to_string())
        .filter(|p| !p.starts_with("channels"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "cursors/alice/LOCK",
            "cursors/alice/general.json",
            "cursors/lead/LOCK",
            "cursors/lead/general.json"
        ]
    );
}

#[test]
fn a_killed_terminal_leaves_the_files_as_they_were() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    post(&e, "york", "general", "one");
    let t = chat(&e, "", &[]);
    t.wait_for("york: one");
    let pid = t.child_pid("mt-chat");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    t.wait_for("EXITED 0");
    drop(t);
    post(&e, "york", "general", "two");
    assert_eq!(e.ok("mt-read", &["--as", "alice"]).lines().count(), 1);
}

#[test]
fn no_colour_still_works() {
    if !tmux_or_skip() {
        return;
    }
    for extra in [("NO_COLOR", "1"), ("TERM", "dumb")] {
        let e = Env::new();
        post(&e, "york", "general", "plain @alice");
        let t = chat(&e, "", &[extra]);
        t.wait_for("york: plain @alice");
        let styled = t.screen_styled();
        // Attributes (bold, reverse) but no colour: no SGR 30-38, 40-48,
        // 90-97.
        for seq in styled.split('\u{1b}').skip(1) {
            let Some(params) = seq
                .strip_prefix('[')
                .and_then(|p| p.split_once('m'))
                .map(|p| p.0)
            else {
                continue;
            };
            for n in params.split(';').filter_map(|n| n.parse::<u32>().ok()) {
                assert!(
                    !(30..=38).contains(&n) && !(40..=48).contains(&n) && !(90..=97).contains(&n),
                    "{extra:?}: colour {n} in {params:?}"
                );
            }
        }
        t.type_text("still usable");
        t.keys(&["Enter"]);
        t.wait_for("alice: still usable");
    }
}

#[test]
fn scrolling_reads_back_and_the_cursor_moves_only_over_what_was_shown() {
    if !tmux_or_skip() {
        return;
    }
    let e = Env::new();
    post(&e, "york", "general", "seen before");
    // alice has read the first record, then 100 more come.
    e.ok("mt-read", &["--as", "alice"]);
    let mut batch = String::new();
    for i in 1..=100 {
        batch.push_str(&format!("line {i}\n"));
    }
    let o = e
        .cmd("mt-post")
        .args(["--from", "york", "--lines"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(batch.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success());
    let t = chat(&e, "", &[]);
    // The first unread message is at the top, and the cursor is at the
    // last one drawn, not at the end.
    let s = t.wait_for("york: line 1 ");
    assert!(!s.contains("line 100"), "{s}");
    let seen = cursor_seq(&e, "alice", "general").unwrap();
    assert!(seen > 2 && seen < 101, "cursor at {seen}");
    // Jumping to the newest skips records never drawn: the cursor stays.
    t.keys(&["Escape"]);
    t.wait_for("york: line 100 ");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cursor_seq(&e, "alice", "general"), Some(seen));
    // Back up past the first unread, then down page by page: each page
    // drawn moves the cursor, to the end.
    while !t.screen().contains("york: seen before") {
        t.keys(&["PPage"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    t.wait_for("york: seen before");
    while !t.screen().contains("york: line 100 ") {
        t.keys(&["NPage"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for("the cursor at the end", || {
        cursor_seq(&e, "alice", "general") == Some(101)
    });
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let e = Env::new();
    std::fs::create_dir_all(e.state.join("agents/york")).unwrap();
    std::fs::write(e.state.join("agents/york/meta.json"), "{}").unwrap();
    let o = e.cmd("mt-chat").env("MT_USER", "york").output().unwrap();
    assert_eq!(o.status.code(), Some(65));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("mt-chat: york is an agent of this team"),
        "{err}"
    );
    let o = e
        .cmd("mt-chat")
        .args(["--as", "bad/name"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with("mt-chat: invalid person name"));
    // Not in a terminal.
    let o = e.cmd("mt-chat").args(["--as", "york"]).output().unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert!(text(&o.stderr).contains("mt-chat: standard input and output must be a terminal"));
}
