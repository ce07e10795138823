//! Agent supervisor benchmarks, on the release binaries with the fake agent:
//! - nudge latency: from starting mt-nudge to the agent reading the message
//!   (the fake agent timestamps receipt), against the cost of starting and
//!   waiting for a trivial process (`true`) measured in the same run;
//! - supervisor resident memory (VmRSS), against an idle `sleep`;
//! - supervisor CPU while its agent is idle, over a few seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROUNDS: usize = 60;
const IDLE: Duration = Duration::from_secs(3);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The binaries cargo built for this benchmark (release, with the flags
/// `make bench` gives).
fn release(bin: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-spawn"))
        .parent()
        .expect("bin dir")
        .join(bin)
}

fn receipts(p: &Path) -> Vec<(u128, String)> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["at_ns"].as_str().unwrap().parse().unwrap(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (VmRSS in kB, utime+stime in clock ticks) of a process.
fn usage(pid: i64) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    (rss, ticks)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let rc = tmp.path().join("receipts.jsonl");
    let cmd = |bin: &str| {
        let mut c = Command::new(release(bin));
        c.env("MT_DIR", &state)
            .env("MT_AGENT_CMD", release("mt-fake-agent"))
            .env("MT_FAKE_RECEIPTS", &rc)
            .env_remove("MT_FAKE_MODE")
            .env_remove("MT_FSYNC")
            .current_dir(tmp.path())
            .stdin(Stdio::null());
        c
    };
    let ok = cmd("mt-spawn")
        .args(["bench", "--detach", "--prompt", "start"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mt-spawn failed");
    let wait_receipts = |n: usize| {
        let start = Instant::now();
        loop {
            let r = receipts(&rc);
            if r.len() >= n {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no receipt");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    wait_receipts(1);

    // Nudge latency, with fsync (the default) as a user would run it, then
    // without (MT_FSYNC=0) to show what the disk costs.
    let mut sent = 1;
    let mut nudge = |fsync: bool| {
        let mut lat = Vec::new();
        for i in 0..ROUNDS {
            let text = format!("nudge {fsync} {i}");
            let t0 = now_ns();
            let ok = cmd("mt-nudge")
                .env("MT_FSYNC", if fsync { "1" } else { "0" })
                .args(["bench", &text])
                .status()
                .unwrap()
                .success();
            assert!(ok, "mt-nudge failed");
            sent += 1;
            let r = wait_receipts(sent);
            let (at, got) = &r[sent - 1];
            assert_eq!(got, &text);
            lat.push((*at - t0) as f64 / 1e6);
        }
        median(lat)
    };
    let lat = nudge(true);
    let lat_nosync = nudge(false);
    // Baseline: start and wait for a trivial process.
    let mut base = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        Command::new("true").status().unwrap();
        base.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let base = median(base);
    println!(
        "nudge latency (mt-nudge start -> agent reads it): median {lat:.2} ms, \
         {lat_nosync:.2} ms with MT_FSYNC=0; start+wait of `true`: {base:.2} ms; \
         ratios {:.1}x and {:.1}x",
        lat / base,
        lat_nosync / base
    );

    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(state.join("agents/bench/status.json")).unwrap()).unwrap();
    let sup = status["supervisor_pid"].as_i64().unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (sleep_rss, _) = usage(sleeper.id() as i64);
    let (rss0, ticks0) = usage(sup);
    std::thread::sleep(IDLE);
    let (rss1, ticks1) = usage(sup);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "supervisor RSS: {} kB (an idle `sleep`: {sleep_rss} kB; ratio {:.1}x)",
        rss0.max(rss1),
        rss0.max(rss1) as f64 / sleep_rss.max(1) as f64
    );
    println!(
        "idle supervisor CPU over {}s: {} ticks ({:.0} ms)",
        IDLE.as_secs(),
        ticks1 - ticks0,
        (ticks1 - ticks0) as f64 * 1e3 / hz
    );
    let _ = cmd("mt-stop").args(["--grace", "2s", "bench"]).status();
}
