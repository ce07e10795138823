//! Fault injection for the channel log: killed writers, a full disk,
//! permission errors, locks held by dead or foreign processes.
//!
//! The long variants run with `MT_LONG_TESTS=1` (`make check-long`).

use crate::support::{Rng, Tmpfs, long};
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// `tool` with the state directory `dir` (a scratch root's `state`).
fn mt(tool: &str, dir: &Path) -> Command {
    assert!(dir.ends_with("state"), "{}", dir.display());
    crate::support::tool(tool, dir.parent().unwrap())
}

fn read_all(dir: &Path) -> (Vec<serde_json::Value>, String) {
    let o = mt("mt-read", dir)
        .args(["--all", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("no torn record is ever visible"))
        .collect();
    (recs, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn writers_killed_at_random_points_lose_no_acknowledged_post() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().join("state"));
    let iterations = if long() { 2000 } else { 200 };
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));

    // Steady writers whose acknowledged posts must all survive.
    let steady: Vec<_> = (0..2)
        .map(|w| {
            let (dir, acked) = (Arc::clone(&dir), Arc::clone(&acked));
            thread::spawn(move || {
                for k in 0..iterations / 2 {
                    let body = format!("steady{w} {k}");
                    let o = mt("mt-post", &dir)
                        .args(["--json", &body])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push((v["seq"].as_u64().unwrap(), body));
                }
            })
        })
        .collect();

    // Victims: large posts killed after a random delay, anywhere from before
    // the lock to after the write.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let big = "z".repeat(900_000);
    let mut killed = 0;
    for i in 0..iterations {
        let mut child = mt("mt-post", &dir)
            .args(["--json", "--from", "victim"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("victim {i} {big}").as_bytes());
        drop(stdin);
        thread::sleep(Duration::from_micros(rng.next() % 3000));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let content = v["content"].as_str().unwrap().to_string();
            acked
                .lock()
                .unwrap()
                .push((v["seq"].as_u64().unwrap(), content));
        } else {
            killed += 1;
        }
    }
    for h in steady {
        h.join().unwrap();
    }
    assert!(killed > 0, "some writers must actually have been killed");

    let (recs, _warnings) = read_all(&dir);
    let seqs: Vec<u64> = recs.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=recs.len() as u64).collect::<Vec<_>>(),
        "seq gapless"
    );
    let stored: HashSet<(u64, String)> = recs
        .iter()
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                v["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for a in acked.lock().unwrap().iter() {
        assert!(stored.contains(a), "acknowledged post {} lost", a.0);
    }
}

#[test]
fn full_disk_gives_a_clean_error_and_a_readable_log() {
    let Some(fsys) = Tmpfs::mount("256k") else {
        return;
    };
    let dir = fsys.0.join("state");
    // Room to give back once the disk is full.
    let filler = fsys.0.join("filler");
    fs::write(&filler, vec![0u8; 64 << 10]).unwrap();
    let mut posted = 0u64;
    let mut failure: Option<Output> = None;
    let msg = "m".repeat(3000);
    for _ in 0..200 {
        let o = mt("mt-post", &dir).arg(&msg).output().unwrap();
        if o.status.success() {
            posted += 1;
        } else {
            failure = Some(o);
            break;
        }
    }
    let o = failure.expect("the disk filled up");
    assert_eq!(o.status.code(), Some(73));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("mt-post: cannot append to channel general"),
        "{err}"
    );
    assert!(err.contains("No space left"), "{err}");
    // The log holds exactly the acknowledged posts, each whole.
    let (recs, warnings) = read_all(&dir);
    assert_eq!(recs.len() as u64, posted);
    assert!(
        warnings.is_empty(),
        "no partial record left behind: {warnings}"
    );
    // Once space is back, posting goes on with the next seq.
    fs::remove_file(&filler).unwrap();
    let o = mt("mt-post", &dir).arg("after").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (recs, _) = read_all(&dir);
    assert_eq!(recs.last().unwrap()["seq"].as_u64().unwrap(), posted + 1);
}

fn setpriv_nobody(cmd: &mut Command) -> Option<Command> {
    if !Path::new("/usr/bin/setpriv").exists() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root and setpriv to act as another user");
        return None;
    }
    let mut c = Command::new("/usr/bin/setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Some(c)
}

#[test]
fn state_directory_of_another_user_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("state");
    let o = mt("mt-post", &dir).arg("mine").output().unwrap();
    assert!(o.status.success());
    // The directory belongs to root; nobody may not use it.
    let Some(mut c) = setpriv_nobody(mt("mt-post", &dir).arg("theirs")) else {
        return;
    };
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(73));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("belongs to uid 0"), "{err}");
}

#[test]
fn permission_errors_are_reported_with_exit_73() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("state");
    fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(65534.into()), Some(65534.into())).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    let Some(mut c) = setpriv_nobody(mt("mt-post", &dir).arg("hi")) else {
        return;
    };
    let o = c.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mt-post: cannot create directory"), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn a_lock_held_by_a_dead_process_does_not_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    assert!(mt("mt-post", &dir).arg("first").status().unwrap().success());
    let lock = dir.join("channels/general/LOCK");
    // A shell script holding the append lock with flock(1) ...
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9>>'{}'; flock 9; exec sleep 600",
            lock.display()
        ))
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut blocked = mt("mt-post", &dir).arg("second").spawn().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(
        blocked.try_wait().unwrap().is_none(),
        "a live holder excludes writers"
    );
    // ... dies without unlocking: the kernel drops the lock.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let st = blocked.wait().unwrap();
    assert!(st.success());
    let (recs, _) = read_all(&dir);
    assert_eq!(recs.len(), 2);
}
