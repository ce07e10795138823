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
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
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
    on(&b, "hostb", "mt-route").output().unwrap();
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
    let symbols = |bin: &str| {
        let o = Command::new("nm")
            .arg("--defined-only")
            .arg(crate::support::bin(bin))
            .output()
            .expect("nm");
        assert!(o.status.success(), "nm {bin}: {}", text(&o.stderr));
        text(&o.stdout)
    };
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
