//! What the other hosts' coworkers look like here after mt-sync: mt-ps
//! --all-hosts shows them read-only, and mt-route leaves a mention of one
//! to its own host instead of reporting an unknown name.

use crate::support::{Env, jsonl, text};
use std::path::Path;
use std::process::Command;

/// Two hosts, each an `Env` with its own repository, sharing one bare
/// remote.
fn two_hosts() -> (Env, Env) {
    let a = Env::with_repo();
    let b = Env::with_repo();
    let remote = a.root.join("remote.git");
    a.git(&a.root, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    for e in [&a, &b] {
        e.git(
            &e.repo,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
    }
    (a, b)
}

fn on(e: &Env, host: &str, tool: &str) -> Command {
    let mut c = e.cmd(tool);
    c.env("MT_HOST", host);
    c
}

fn sync(e: &Env, host: &str) {
    let o = on(e, host, "mt-sync").output().unwrap();
    assert!(o.status.success(), "mt-sync on {host}: {}", text(&o.stderr));
}

fn records(state: &Path) -> Vec<serde_json::Value> {
    let dir = state.join("channels/general");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut segs: Vec<_> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    segs.sort();
    segs.iter().flat_map(|p| jsonl(p)).collect()
}

#[test]
fn other_hosts_coworkers_show_in_mt_ps_and_mentions_of_them_go_there() {
    let (a, b) = two_hosts();
    b.spawn("york", "echo", &[]);
    b.wait_idle("york");
    sync(&b, "hostb");
    sync(&a, "hosta");

    // Without --all-hosts, nothing of the other host.
    let plain = on(&a, "hosta", "mt-ps").output().unwrap();
    assert!(
        !text(&plain.stdout).contains("york"),
        "{}",
        text(&plain.stdout)
    );

    let all = on(&a, "hosta", "mt-ps")
        .arg("--all-hosts")
        .output()
        .unwrap();
    let out = text(&all.stdout);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let head = out.lines().next().unwrap_or("");
    assert!(head.starts_with("HOST"), "{out}");
    let row = out.lines().find(|l| l.contains("york")).expect(&out);
    assert!(row.starts_with("hostb"), "{row}");
    assert!(row.contains("idle"), "{row}");

    let json = on(&a, "hosta", "mt-ps")
        .args(["--all-hosts", "--json"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r["name"] == "york" && r["host"] == "hostb"),
        "{rows:?}"
    );

    // A mention of york on host a is not "unknown" there, and host b's
    // mt-route delivers it once it arrives.
    on(&a, "hosta", "mt-post")
        .arg("@york please look at the parser")
        .output()
        .unwrap();
    let routed = on(&a, "hosta", "mt-route").output().unwrap();
    assert!(
        text(&routed.stdout).contains("another host"),
        "{}",
        text(&routed.stdout)
    );
    assert!(
        !records(&a.state).iter().any(|r| r["content"]
            .as_str()
            .unwrap_or("")
            .contains("was not delivered")),
        "host a reported york as unknown"
    );
    sync(&a, "hosta");
    sync(&b, "hostb");
    let routed = on(&b, "hostb", "mt-route").output().unwrap();
    assert!(
        text(&routed.stdout).contains("york: nudged"),
        "{}",
        text(&routed.stdout)
    );
    // The imported record keeps where it came from.
    let got = records(&b.state);
    let m = got
        .iter()
        .find(|r| r["content"] == "@york please look at the parser")
        .unwrap();
    assert_eq!(m["origin"], "hosta");
    // mt-read's text form tells remote records by their host.
    let read = on(&b, "hostb", "mt-read")
        .args(["--as", "someone"])
        .output()
        .unwrap();
    let shown = text(&read.stdout);
    assert!(
        shown.contains("lead@hosta: @york please look at the parser"),
        "{shown}"
    );
    assert!(shown.contains(" york [status]: started"), "{shown}");
}

#[test]
fn an_unknown_name_in_an_imported_record_is_reported_by_its_own_host_only() {
    let (a, b) = two_hosts();
    on(&a, "hosta", "mt-post")
        .arg("@nobody hello")
        .output()
        .unwrap();
    on(&a, "hosta", "mt-route").output().unwrap();
    sync(&a, "hosta");
    sync(&b, "hostb");
    let routed = on(&b, "hostb", "mt-route").output().unwrap();
    assert!(
        text(&routed.stdout).contains("nobody: unknown here; the record's own host reports it"),
        "{}",
        text(&routed.stdout)
    );
    let unknown = |state: &Path| {
        records(state)
            .iter()
            .filter(|r| {
                r["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("was not delivered")
                    && r["origin"].is_null()
            })
            .count()
    };
    assert_eq!(unknown(&a.state), 1, "host a reports it once");
    assert_eq!(unknown(&b.state), 0, "host b reports nothing of its own");
}

/// The hot-path tools link neither libgit2's transport nor TLS or ssh:
/// none of their functions is in the symbol tables of mt-post, mt-read and
/// mt-hook (`nm`), while mt-sync's has them.
#[test]
fn the_hot_path_tools_do_not_link_git_transports_tls_or_ssh() {
    use crate::support::symbols;
    let transport = [
        "git_remote_push",
        "git_remote_fetch",
        "SSL_new",
        "libssh2_session_init_ex",
    ];
    let sync = symbols("mt-sync");
    for f in transport {
        assert!(sync.contains(f), "mt-sync lacks {f}");
    }
    for bin in ["mt-post", "mt-read", "mt-hook"] {
        let s = symbols(bin);
        for f in transport {
            assert!(!s.contains(f), "{bin} links {f}");
        }
        assert!(!s.contains("4sync6remote"), "{bin} links mt::sync::remote");
    }
}

/// A remote restored from an older copy has lost records it had taken:
/// the host that wrote them publishes them again, and nobody gets one
/// twice.
#[test]
fn a_remote_restored_from_a_backup_gets_the_lost_records_again() {
    let (a, b) = two_hosts();
    let remote = a.root.join("remote.git");
    let backup = a.root.join("backup.git");
    let post = |msg: &str| {
        let o = on(&a, "hosta", "mt-post").arg(msg).output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    post("before the backup");
    sync(&a, "hosta");
    let cp = Command::new("cp")
        .args(["-a", remote.to_str().unwrap(), backup.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    post("after the backup");
    sync(&a, "hosta");
    std::fs::remove_dir_all(&remote).unwrap();
    std::fs::rename(&backup, &remote).unwrap();
    sync(&b, "hostb");
    sync(&a, "hosta");
    sync(&b, "hostb");
    let got: Vec<String> = records(&b.state)
        .iter()
        .filter(|r| r["origin"] == "hosta")
        .map(|r| r["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, ["before the backup", "after the backup"]);
}

/// An exchange with nothing new makes one fetch, no push, and writes
/// none of its state files.
#[test]
fn an_idle_exchange_fetches_once_pushes_nothing_and_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = two_hosts();
    on(&a, "hosta", "mt-post").arg("hello").output().unwrap();
    on(&a, "hosta", "mt-task")
        .args(["create", "a task"])
        .output()
        .unwrap();
    for _ in 0..2 {
        sync(&a, "hosta");
        sync(&b, "hostb");
    }
    let files = |e: &Env| {
        let dir = e.state.join("sync");
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap())
            .filter(|f| f.file_name().to_string_lossy().ends_with(".json"))
            .map(|f| {
                (
                    f.file_name().to_string_lossy().into_owned(),
                    f.metadata().unwrap().ino(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&b);
    assert!(before.len() >= 3, "{before:?}");
    let o = on(&b, "hostb", "mt-sync").arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["fetches"].as_u64(), r["pushes"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    assert_eq!(files(&b), before, "an idle exchange replaced a state file");
}

/// A task whose create reached the remote while the exchange died before
/// it heard so, then edited here: still this host's task, under its id,
/// and the edit is published on top.
#[test]
fn a_task_created_by_an_exchange_that_died_stays_ours() {
    let (a, b) = two_hosts();
    let id = text(
        &on(&a, "hosta", "mt-task")
            .args(["create", "first words"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    sync(&a, "hosta");
    on(&a, "hosta", "mt-task")
        .args(["create", "second task"])
        .output()
        .unwrap();
    let died = on(&a, "hosta", "mt-sync")
        .env("MT_SYNC_CRASH", "pushed")
        .output()
        .unwrap();
    assert!(!died.status.success());
    let o = on(&a, "hosta", "mt-task")
        .args(["update", "2", "--subject", "second task, edited"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    sync(&a, "hosta");
    sync(&b, "hostb");
    let list = |e: &Env| {
        let o = on(
            e,
            if e.state == a.state { "hosta" } else { "hostb" },
            "mt-task",
        )
        .arg("list")
        .output()
        .unwrap();
        text(&o.stdout)
    };
    for e in [&a, &b] {
        let l = list(e);
        assert!(l.contains("second task, edited"), "{l}");
        assert_eq!(l.lines().count(), 2, "{l}");
    }
    assert_eq!(id, "1");
    assert!(
        !records(&a.state)
            .iter()
            .any(|r| r["content"].as_str().unwrap_or("").contains("is now task")),
        "host a moved its own task"
    );
}

/// A long backlog (sync turned on for a channel with a history) goes out
/// in bounded commits over a few exchanges, and arrives whole and once.
#[test]
fn a_long_backlog_is_published_in_bounded_commits() {
    let (a, b) = two_hosts();
    let n = 120_000;
    let lines: String = (1..=n).map(|i| format!("backlog {i}\n")).collect();
    let mut post = on(&a, "hosta", "mt-post")
        .arg("--lines")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    post.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(post.wait().unwrap().success());
    let mut published = Vec::new();
    for _ in 0..5 {
        let o = on(&a, "hosta", "mt-sync").arg("--json").output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        published.push(r["published"].as_u64().unwrap());
    }
    assert_eq!(published, [50_000, 50_000, 20_000, 0, 0]);
    for _ in 0..3 {
        sync(&b, "hostb");
    }
    let got = records(&b.state);
    assert_eq!(got.len(), n);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["origin_seq"], i as u64 + 1);
        assert_eq!(r["seq"], i as u64 + 1);
    }
}

/// With --no-status a host keeps its coworkers to itself: the others'
/// mt-ps --all-hosts does not list them, and no status ref is published.
#[test]
fn no_status_publishes_no_coworkers() {
    let (a, b) = two_hosts();
    b.spawn("york", "echo", &[]);
    b.wait_idle("york");
    let o = on(&b, "hostb", "mt-sync")
        .arg("--no-status")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    sync(&a, "hosta");
    let all = on(&a, "hosta", "mt-ps")
        .arg("--all-hosts")
        .output()
        .unwrap();
    assert!(!text(&all.stdout).contains("york"), "{}", text(&all.stdout));
    let refs = a.git(
        &a.root.join("remote.git"),
        &["for-each-ref", "refs/mt/status/"],
    );
    assert!(!refs.contains("hostb"), "{refs}");
    assert!(refs.contains("hosta"), "{refs}");
}
