//! A fleet of coworkers, on the release binaries with the fake agent
//! (`MT_FLEET` agents, 1,000 by default; `MT_FSYNC=0`, to measure mt rather
//! than the disk):
//! - starting them (`mt-spawn --detach`, four at a time), nudging each once,
//!   stopping them all with one `mt-stop --all`; per agent, against the start
//!   and wait of `true` measured in the same run;
//! - supervisor memory per agent (VmRSS and its private part, RssAnon),
//!   against an idle `sleep`;
//! - `mt-ps` and `mt-ps --json` with all of them running, against `true`;
//! - CPU of every idle supervisor over a few seconds (clock ticks).
//!
//! None of the supervisors takes an inotify instance: the fleet runs under
//! the default per-user limit of 128, and the bench checks one is left.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_secs(3);
const ROUNDS: usize = 20;
const PATIENCE: Duration = Duration::from_secs(600);

fn release(bin: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-spawn"))
        .parent()
        .expect("bin dir")
        .join(bin)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median wall time of `cmd` in milliseconds, output discarded.
fn time_ms(mut cmd: impl FnMut() -> Command) -> f64 {
    median(
        (0..ROUNDS)
            .map(|_| {
                let t0 = Instant::now();
                let ok = cmd().stdout(Stdio::null()).status().unwrap().success();
                assert!(ok);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// A field of /proc/PID/status, in kB.
fn status_kb(pid: i64, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime in clock ticks.
fn ticks(pid: i64) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}

struct Bench {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    receipts: PathBuf,
}

impl Bench {
    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(release(bin));
        c.env("MT_DIR", &self.state)
            .env("MT_AGENT_CMD", release("mt-fake-agent"))
            .env("MT_FAKE_RECEIPTS", &self.receipts)
            .env("MT_FSYNC", "0")
            .env_remove("MT_FAKE_MODE")
            .env_remove("MT_INOTIFY")
            .env_remove("MT_AGENT")
            .current_dir(self._tmp.path())
            .stdin(Stdio::null());
        c
    }

    fn received(&self) -> HashSet<String> {
        fs::read_to_string(&self.receipts)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["text"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn wait_received(&self, texts: &[String]) {
        let start = Instant::now();
        loop {
            let got = self.received();
            if texts.iter().all(|t| got.contains(t)) {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "messages not received");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn supervisors(&self, names: &[String]) -> Vec<i64> {
        names
            .iter()
            .map(|n| {
                let p = self.state.join("agents").join(n).join("status.json");
                let v: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
                v["supervisor_pid"].as_i64().unwrap()
            })
            .collect()
    }
}

fn main() {
    let n: usize = std::env::var("MT_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let b = Bench {
        state: tmp.path().join("state"),
        receipts: tmp.path().join("receipts.jsonl"),
        _tmp: tmp,
    };
    let names: Vec<String> = (0..n).map(|i| format!("a{i:04}")).collect();
    let limit = fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").unwrap_or_default();
    let base = time_ms(|| Command::new("true"));

    // Start.
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for part in names.chunks(n.div_ceil(4)) {
            let b = &b;
            s.spawn(move || {
                for name in part {
                    let out = b
                        .cmd("mt-spawn")
                        .args([name, "--detach", "--prompt", &format!("hello {name}")])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{name}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            });
        }
    });
    let hellos: Vec<String> = names.iter().map(|n| format!("hello {n}")).collect();
    b.wait_received(&hellos);
    let start = t0.elapsed().as_secs_f64();
    println!(
        "{n} agents started (four mt-spawn at a time) and reading their prompt: {start:.2} s, \
         {:.2} ms per agent; start+wait of `true`: {base:.2} ms; inotify instance limit {}",
        start * 1e3 / n as f64,
        limit.trim()
    );
    let inotify_left =
        nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC).is_ok();
    println!("an inotify instance is still available with {n} agents running: {inotify_left}");

    // Nudge each once.
    let t0 = Instant::now();
    for name in &names {
        let ok = b
            .cmd("mt-nudge")
            .args([name.as_str(), &format!("nudge {name}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mt-nudge {name}");
    }
    let nudges: Vec<String> = names.iter().map(|n| format!("nudge {n}")).collect();
    b.wait_received(&nudges);
    let nudge = t0.elapsed().as_secs_f64();
    println!(
        "{n} nudges, one after another, all read: {nudge:.2} s, {:.2} ms per nudge ({:.1}x `true`)",
        nudge * 1e3 / n as f64,
        nudge * 1e3 / n as f64 / base
    );

    // Memory and idle CPU of the supervisors.
    let sups = b.supervisors(&names);
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let sleep_rss = status_kb(sleeper.id() as i64, "VmRSS:");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let rss: u64 = sups.iter().map(|&p| status_kb(p, "VmRSS:")).sum();
    let anon: u64 = sups.iter().map(|&p| status_kb(p, "RssAnon:")).sum();
    println!(
        "supervisor memory per agent: VmRSS {:.0} kB, of which private (RssAnon) {:.0} kB; \
         an idle `sleep`: {sleep_rss} kB",
        rss as f64 / n as f64,
        anon as f64 / n as f64
    );
    // Let the last status writes settle, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let before: u64 = sups.iter().map(|&p| ticks(p)).sum();
    std::thread::sleep(IDLE);
    let after: u64 = sups.iter().map(|&p| ticks(p)).sum();
    println!(
        "CPU of all {n} idle supervisors over {}s: {} ticks",
        IDLE.as_secs(),
        after - before
    );

    // mt-ps.
    let ps = time_ms(|| b.cmd("mt-ps"));
    let ps_json = time_ms(|| {
        let mut c = b.cmd("mt-ps");
        c.arg("--json");
        c
    });
    // What reading the same files costs a shell and cat(1).
    let cat = time_ms(|| {
        let mut c = Command::new("sh");
        c.current_dir(b.state.join("agents"))
            .args(["-c", "cat */status.json */meta.json"]);
        c
    });
    let out = b.cmd("mt-ps").arg("--json").output().unwrap();
    let rows = out.stdout.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(rows, n, "mt-ps shows every agent");
    println!(
        "mt-ps with {n} agents (median of {ROUNDS}): {ps:.2} ms, --json {ps_json:.2} ms; \
         `sh -c 'cat */status.json */meta.json'`: {cat:.2} ms ({:.2}x); start+wait of `true`: \
         {base:.2} ms",
        ps / cat
    );

    // Stop: the last 50 one at a time (the baseline), the first 200 with
    // one pattern, the rest with --all.
    let stop = |args: &[&str]| {
        let t0 = Instant::now();
        let out = b.cmd("mt-stop").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t0.elapsed().as_secs_f64()
    };
    let (one, rest) = names.split_at(n - n.min(50));
    let t0 = Instant::now();
    for name in rest {
        stop(&["--grace", "30s", name]);
    }
    let single = t0.elapsed().as_secs_f64() * 1e3 / rest.len() as f64;
    let first = one
        .iter()
        .filter(|x| x.starts_with("a00") || x.starts_with("a01"))
        .count();
    let pattern = stop(&["--grace", "30s", "a00*", "a01*"]);
    let all = stop(&["--grace", "30s", "--all"]);
    println!(
        "mt-stop, {} agents one at a time: {single:.1} ms per agent; {first} with one pattern: \
         {pattern:.2} s ({:.1} ms per agent, {:.1}x faster); the other {} with --all: {all:.2} s \
         ({:.1} ms per agent)",
        rest.len(),
        pattern * 1e3 / first as f64,
        single / (pattern * 1e3 / first as f64),
        one.len() - first,
        all * 1e3 / (one.len() - first).max(1) as f64
    );
    let t0 = Instant::now();
    while sups
        .iter()
        .any(|&p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(t0.elapsed() < PATIENCE, "supervisors left");
        std::thread::sleep(Duration::from_millis(20));
    }
}
