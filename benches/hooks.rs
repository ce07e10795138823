//! The Stop hook with nothing unread, as Claude Code runs it: `sh` starting
//! hooks/stop, which runs the release mt-hook with the hook's JSON on stdin.
//! Printed beside the cost of starting `sh -c true` alone, measured in the
//! same run. Target: median at most 3 ms.
//!
//! Run with `cargo bench --bench hooks` (it builds the release binaries).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 400;
const STOP: &[u8] = br#"{"session_id":"7f3c9e1a-2b4d-4c6e-8f0a-1b2c3d4e5f60","transcript_path":"/tmp/x.jsonl","cwd":"/tmp","permission_mode":"default","hook_event_name":"Stop","stop_hook_active":false,"last_assistant_message":"Done."}"#;

/// The binaries cargo built for this benchmark (release, with the flags
/// `make bench` gives).
fn release_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-hook"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// Spawn, feed stdin, wait; the wall time of the whole process.
fn time_once(mk: &dyn Fn() -> Command) -> Duration {
    let start = Instant::now();
    let mut child = mk()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let _ = child.stdin.take().unwrap().write_all(STOP);
    let out = child.wait_with_output().expect("wait");
    let took = start.elapsed();
    assert!(out.status.success(), "status {:?}", out.status);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    took
}

fn median(mk: &dyn Fn() -> Command) -> Duration {
    for _ in 0..20 {
        time_once(mk);
    }
    let mut v: Vec<Duration> = (0..RUNS).map(|_| time_once(mk)).collect();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let bin = release_dir();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let env = |c: &mut Command| {
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MT_BIN", &bin)
            .env("MT_DIR", &state)
            .env("MT_AGENT", "york")
            .current_dir(tmp.path());
    };

    // A channel with history, all of it read by york: nothing unread.
    let mut post = Command::new(bin.join("mt-post"));
    env(&mut post);
    let mut child = post
        .args(["--lines", "--from", "lead"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (0..2000)
        .map(|i| format!("@york message {i} with some text\n"))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut read = Command::new(bin.join("mt-read"));
    env(&mut read);
    assert!(read.stdout(Stdio::null()).status().unwrap().success());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/stop");
    let hook = || {
        let mut c = Command::new("sh");
        c.arg(&script);
        env(&mut c);
        c
    };
    let bare = || {
        let mut c = Command::new(bin.join("mt-hook"));
        c.arg("stop");
        env(&mut c);
        c
    };
    let sh = || {
        let mut c = Command::new("sh");
        c.args(["-c", "true"]);
        env(&mut c);
        c
    };

    let m_sh = median(&sh);
    let m_hook = median(&hook);
    let m_bare = median(&bare);
    println!("stop hook, nothing unread ({RUNS} runs each, medians):");
    println!("  sh hooks/stop (whole hook)   {:7.3} ms", ms(m_hook));
    println!("  mt-hook stop alone           {:7.3} ms", ms(m_bare));
    println!("  sh -c true (baseline)        {:7.3} ms", ms(m_sh));
    println!(
        "  hook / sh                    {:7.2}x   (hook - sh: {:.3} ms; target: hook <= 3 ms: {})",
        m_hook.as_secs_f64() / m_sh.as_secs_f64(),
        ms(m_hook.saturating_sub(m_sh)),
        if m_hook <= Duration::from_millis(3) {
            "met"
        } else {
            "MISSED"
        }
    );
}
