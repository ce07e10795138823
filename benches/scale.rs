//! Scale benchmarks: routing a burst, `mt-read --since` deep in a long
//! channel, and the memory of `mt-post --lines` on a large input. Whole
//! processes of the release binaries, each beside a baseline measured in
//! the same run.
//!
//! `cargo bench --bench scale` (or `make bench`). `MT_BENCH_QUICK=1` uses
//! smaller sizes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POST: &str = env!("CARGO_BIN_EXE_mt-post");
const READ: &str = env!("CARGO_BIN_EXE_mt-read");
const ROUTE: &str = env!("CARGO_BIN_EXE_mt-route");

fn quick() -> bool {
    std::env::var_os("MT_BENCH_QUICK").is_some()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Run `c` once with its output thrown away; how long it took.
fn time(mut c: Command) -> Duration {
    c.stdout(Stdio::null());
    let t = Instant::now();
    let st = c.status().expect("run");
    let d = t.elapsed();
    assert!(st.success(), "{c:?} failed: {st}");
    d
}

/// Append `n` records to channel general with one `mt-post --lines`; the
/// line for `i` is `line(i)`.
fn post_lines(dir: &Path, n: usize, line: impl Fn(usize) -> String) {
    let mut c = Command::new(POST);
    c.env("MT_DIR", dir)
        .env("MT_FSYNC", "0")
        .args(["--lines", "--from", "bench"])
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        for i in 0..n {
            writeln!(w, "{}", line(i)).unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

const AGENTS: usize = 20;

/// A channel of `n` records, one in a hundred mentioning one of `AGENTS`
/// stopped agents.
fn routing_channel(dir: &Path, n: usize) {
    for a in 0..AGENTS {
        let agent = dir.join(format!("agents/a{a:02}"));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(agent.join("inbox").join(sub)).unwrap();
        }
        std::fs::write(agent.join("meta.json"), format!(r#"{{"name":"a{a:02}"}}"#)).unwrap();
    }
    let pad = "x".repeat(60);
    post_lines(dir, n, |i| match i % 100 {
        0 => format!("@a{:02} please look at item {i} {pad}", (i / 100) % AGENTS),
        _ => format!("progress on item {i} {pad}"),
    });
}

/// Forget what a routing run did: its cursor and the nudges it left.
fn reset_routing(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("cursors/mt-route/general.json"));
    for a in 0..AGENTS {
        let new = dir.join(format!("agents/a{a:02}/inbox/new"));
        for e in std::fs::read_dir(&new).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
}

fn route_cmd(dir: &Path, sync: bool) -> Command {
    let mut c = Command::new(ROUTE);
    c.env("MT_DIR", dir).arg("--no-resume");
    if !sync {
        c.env("MT_FSYNC", "0");
    }
    c
}

fn bench_route(tmp: &Path) {
    let sizes: [usize; 2] = if quick() {
        [1_000, 10_000]
    } else {
        [10_000, 100_000]
    };
    let runs = if quick() { 3 } else { 5 };
    println!(
        "mt-route over new records, 1% mentioning one of {AGENTS} stopped agents (--no-resume: each mention is a nudge file in its inbox), median of {runs}"
    );
    let mut medians = Vec::new();
    for &n in &sizes {
        let dir = tmp.join(format!("route-{n}"));
        routing_channel(&dir, n);
        let mut times = Vec::new();
        for _ in 0..runs {
            reset_routing(&dir);
            times.push(time(route_cmd(&dir, false)));
        }
        let routed = median(times);
        reset_routing(&dir);
        let synced = time(route_cmd(&dir, true));
        let read = median(
            (0..runs)
                .map(|_| {
                    let mut c = Command::new(READ);
                    c.env("MT_DIR", &dir).args(["--all", "--json"]);
                    time(c)
                })
                .collect(),
        );
        println!(
            "  {n:>7} records, {:>5} mentions: {} ({:.2} us/record); nudges synced: {}; baseline mt-read --all --json of the same records: {}",
            n / 100,
            ms(routed),
            routed.as_secs_f64() * 1e6 / n as f64,
            ms(synced),
            ms(read)
        );
        medians.push(routed);
    }
    println!(
        "  ratio {}x records: {:.2}x time (target at most 11x; {} records in {} against a target of 1 s)",
        sizes[1] / sizes[0],
        medians[1].as_secs_f64() / medians[0].as_secs_f64(),
        sizes[1],
        ms(medians[1])
    );
}

fn bench_since(tmp: &Path) {
    let n: usize = if quick() { 100_000 } else { 1_000_000 };
    let runs = if quick() { 50 } else { 300 };
    let dir = tmp.join("since");
    let pad = "y".repeat(100);
    post_lines(&dir, n, |i| format!("message {i} {pad}"));
    let read = |args: &[&str]| {
        let mut c = Command::new(READ);
        c.env("MT_DIR", &dir).arg("--json").args(args);
        c
    };
    let since = (n - 10).to_string();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(time(read(&["--since", &since])));
        b.push(time(read(&["--last", "10"])));
    }
    let (ma, mb) = (median(a), median(b));
    println!("mt-read of the last 10 of {n} records ({runs} runs each)");
    println!("  --since {since}: median {}", ms(ma));
    println!("  --last 10 (baseline): median {}", ms(mb));
    println!(
        "  ratio: {:.2}x (target at most 1.2x)",
        ma.as_secs_f64() / mb.as_secs_f64()
    );
}

/// Run a command as the child of a fresh process (this binary again), so
/// that its peak memory is its own: Linux carries the peak of the process
/// that starts a program over into the program.
fn max_rss_kib(cmd: &[&str], stdin: &Path, env: &[(&str, &Path)]) -> (i64, Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.arg("--rss-child").arg(stdin).args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    let d = t.elapsed();
    assert!(out.status.success(), "{cmd:?} failed");
    let s = String::from_utf8_lossy(&out.stdout);
    (s.trim().parse().unwrap_or(-1), d)
}

fn rss_child(args: &[String]) {
    let st = Command::new(&args[1])
        .args(&args[2..])
        .stdin(std::fs::File::open(&args[0]).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    println!("{}", ru.max_rss());
}

fn bench_post_rss(tmp: &Path) {
    let n: usize = if quick() { 100_000 } else { 1_000_000 };
    let input = tmp.join("lines");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..n {
            writeln!(w, "record number {i} @york").unwrap();
        }
    }
    let bytes = std::fs::metadata(&input).unwrap().len();
    let dir = tmp.join("post-rss");
    let (rss, d) = max_rss_kib(&[POST, "--lines"], &input, &[("MT_DIR", &dir)]);
    println!(
        "mt-post --lines of {n} lines ({:.1} MB), synced: peak RSS {:.1} MB (target under 20 MB), {} ({:.0} records/s)",
        bytes as f64 / 1e6,
        rss as f64 / 1024.0,
        ms(d),
        n as f64 / d.as_secs_f64()
    );
    let (rss, _) = max_rss_kib(&["cat"], &input, &[]);
    println!(
        "  baseline: peak RSS of cat of the same input: {:.1} MB",
        rss as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--rss-child") {
        return rss_child(&args[1..]);
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let tmp = tempfile::tempdir_in(
        std::env::var_os("MT_BENCH_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    )
    .unwrap();
    println!("== scale benchmarks (release build) ==");
    bench_route(tmp.path());
    bench_since(tmp.path());
    bench_post_rss(tmp.path());
}
