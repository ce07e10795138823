//! mt-watch benchmarks, on the release binaries:
//!
//! 1. latency from a channel post to the start of the rule's command
//!    (median; the command writes a timestamp), against the baseline of the
//!    bench starting the same command itself;
//! 2. an idle watcher's CPU time (utime + stime from /proc) and wake-ups
//!    (context switches) over a few rescan periods.
//!
//! Run with `cargo bench --bench watch`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const POSTS: usize = 40;
const IDLE: Duration = Duration::from_secs(6);
const RESCAN: &str = "2s";

/// The binaries cargo built for this benchmark (release, with the flags
/// `make bench` gives).
fn build() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-watch"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The timestamps (ns) the command wrote so far.
fn stamps(path: &Path) -> Vec<u128> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_stamps(path: &Path, n: usize) -> u128 {
    let start = Instant::now();
    loop {
        let s = stamps(path);
        if s.len() >= n {
            return s[n - 1];
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no run after a post"
        );
        sleep(Duration::from_micros(200));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn proc_switches(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn main() {
    let bin = build();
    let tmp = tempfile::tempdir().unwrap();
    let mt = tmp.path().join("mt");
    let out = tmp.path().join("stamps");
    let cmd_line = format!("date +%s%N >> {}", out.display());
    fs::write(
        tmp.path().join("rules"),
        format!("name=lat @change channel:bench {cmd_line}\n"),
    )
    .unwrap();
    let env = |c: &mut Command| {
        c.current_dir(tmp.path())
            .env("MT_DIR", &mt)
            .env("MT_FSYNC", "0")
            .env("HOME", tmp.path())
            .env_remove("CLAUDE_CODE_TASK_LIST_ID")
            .stdin(Stdio::null());
    };

    // Baseline: the bench starts the same command itself.
    let base_out = tmp.path().join("base");
    let base_line = format!("date +%s%N >> {}", base_out.display());
    let mut base = Vec::new();
    for i in 1..=POSTS {
        let t0 = now_ns();
        Command::new("sh")
            .args(["-c", &base_line])
            .status()
            .unwrap();
        let t = wait_stamps(&base_out, i);
        base.push((t - t0) as f64 / 1e6);
    }

    let mut c = Command::new(bin.join("mt-watch"));
    env(&mut c);
    let watcher = Killed(
        c.args(["--rules", "rules", "--rescan", RESCAN])
            .spawn()
            .unwrap(),
    );
    // The first scan runs the rule once.
    wait_stamps(&out, 1);
    sleep(Duration::from_millis(100));

    let mut from_start = Vec::new();
    let mut from_commit = Vec::new();
    for i in 0..POSTS {
        let n = stamps(&out).len();
        let t0 = now_ns();
        let mut p = Command::new(bin.join("mt-post"));
        env(&mut p);
        let st = p
            .args(["-c", "bench", &format!("message {i}")])
            .status()
            .unwrap();
        assert!(st.success());
        let t1 = now_ns();
        let t = wait_stamps(&out, n + 1);
        from_start.push((t - t0) as f64 / 1e6);
        from_commit.push((t.saturating_sub(t1)) as f64 / 1e6);
        sleep(Duration::from_millis(20));
    }
    let base_med = median(&mut base);
    let start_med = median(&mut from_start);
    let commit_med = median(&mut from_commit);
    println!("post to command start ({POSTS} posts, median):");
    println!("  mt-post started -> command running: {start_med:7.2} ms");
    println!("  mt-post returned -> command running: {commit_med:7.2} ms  (target < 100 ms)");
    println!("  baseline, bench starts the command: {base_med:7.2} ms");
    println!(
        "  ratio post->start / baseline:       {:7.2}",
        start_med / base_med
    );

    // Idle: nothing changes for a few rescan periods.
    let pid = watcher.0.id();
    sleep(Duration::from_millis(300));
    let (cpu0, sw0) = (proc_cpu_ticks(pid), proc_switches(pid));
    sleep(IDLE);
    let (cpu1, sw1) = (proc_cpu_ticks(pid), proc_switches(pid));
    let tick_ms = 1000.0 / nix_clock_ticks() as f64;
    let periods = IDLE.as_secs_f64()
        / mt::infra::time::parse_duration(RESCAN)
            .unwrap()
            .as_secs_f64();
    println!(
        "idle watcher over {:?} (rescan {RESCAN}, {periods:.0} periods):",
        IDLE
    );
    println!(
        "  CPU time: {} ticks = {:.1} ms ({:.3}% of one core)",
        cpu1 - cpu0,
        (cpu1 - cpu0) as f64 * tick_ms,
        (cpu1 - cpu0) as f64 * tick_ms / IDLE.as_millis() as f64 * 100.0
    );
    println!(
        "  wake-ups (context switches): {} = {:.2} per rescan period",
        sw1 - sw0,
        (sw1 - sw0) as f64 / periods
    );
}

fn nix_clock_ticks() -> i64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
}
