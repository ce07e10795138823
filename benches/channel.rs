//! Channel benchmarks: whole-process timings of the release binaries, each
//! beside a baseline measured in the same run.
//!
//! `cargo bench --bench channel` (or `make bench`); `-- since` runs only
//! the benchmarks named with that word. `MT_BENCH_QUICK=1` uses smaller
//! sizes; `MT_BENCH_GIB` sets the size of the streaming test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POST: &str = env!("CARGO_BIN_EXE_mt-post");
const READ: &str = env!("CARGO_BIN_EXE_mt-read");

fn quick() -> bool {
    std::env::var_os("MT_BENCH_QUICK").is_some()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn time_runs(n: usize, mut f: impl FnMut() -> Command) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let mut c = f();
            c.stdout(Stdio::null());
            let t = Instant::now();
            let st = c.status().expect("run");
            let d = t.elapsed();
            assert!(st.success(), "{c:?} failed");
            d
        })
        .collect()
}

fn post_lines(dir: &Path, n: usize, width: usize) {
    let mut c = Command::new(POST);
    c.env("MT_DIR", dir)
        .env("MT_FSYNC", "0")
        .args(["--lines", "--from", "bench"])
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        let pad = "x".repeat(width);
        for i in 0..n {
            writeln!(w, "message {i} {pad}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

fn bench_post(tmp: &Path) {
    let n = if quick() { 100 } else { 500 };
    let dir = tmp.join("post");
    let mt = time_runs(n, || {
        let mut c = Command::new(POST);
        c.env("MT_DIR", &dir)
            .args(["--from", "bench", "hello @york, a short message"]);
        c
    });
    let chan = dir.join("channels/general");
    let lock = chan.join("LOCK");
    let file = chan.join("baseline.jsonl");
    let base = time_runs(n, || {
        let mut c = Command::new("flock");
        c.arg(&lock).args(["sh", "-c"]).arg(format!(
            "printf '%s\\n' '{{\"seq\":1,\"from\":\"bench\",\"content\":\"hello\"}}' >> {}",
            file.display()
        ));
        c
    });
    let (m, b) = (median(mt.clone()), median(base.clone()));
    println!("mt-post, one message, data sync on ({n} runs)");
    println!(
        "  mt-post                     median {}  p90 {}",
        ms(m),
        ms(pct(mt, 0.9))
    );
    println!(
        "  flock + sh printf >> (no sync) median {}  p90 {}",
        ms(b),
        ms(pct(base, 0.9))
    );
    println!(
        "  ratio mt-post / baseline    {:.2}x",
        m.as_secs_f64() / b.as_secs_f64()
    );
}

fn bench_read_cursor(tmp: &Path) {
    let sizes: [usize; 2] = if quick() {
        [1_000, 100_000]
    } else {
        [1_000, 1_000_000]
    };
    let runs = if quick() { 50 } else { 300 };
    let dirs: Vec<PathBuf> = sizes
        .iter()
        .map(|size| {
            let dir = tmp.join(format!("read-{size}"));
            post_lines(&dir, *size, 100);
            dir
        })
        .collect();
    let read = |dir: &Path| {
        let mut c = Command::new(READ);
        c.env("MT_DIR", dir).args(["--as", "bench", "--json"]);
        c
    };
    // Catch the reader up, then time reads of 10 new records each, taking
    // the two sizes in turns so load on the machine hits both alike.
    let mut times = [Vec::new(), Vec::new()];
    for dir in &dirs {
        time_runs(1, || read(dir));
    }
    for _ in 0..runs {
        for (i, dir) in dirs.iter().enumerate() {
            post_lines(dir, 10, 100);
            times[i].extend(time_runs(1, || read(dir)));
        }
    }
    let [a, b] = times;
    let (ma, mb) = (median(a), median(b));
    println!("mt-read --as, 10 new records ({runs} runs each)");
    println!("  {:>9} records of history: median {}", sizes[0], ms(ma));
    println!("  {:>9} records of history: median {}", sizes[1], ms(mb));
    println!(
        "  ratio: {:.2}x (target at most 1.2x)",
        mb.as_secs_f64() / ma.as_secs_f64()
    );
}

fn bench_ingest(tmp: &Path) {
    let n = if quick() { 100_000 } else { 1_000_000 };
    let dir = tmp.join("ingest");
    let input: String = (0..n)
        .map(|i| format!("record number {i} @york\n"))
        .collect();
    let run = |sync: bool| {
        let mut c = Command::new(POST);
        c.env("MT_DIR", &dir)
            .arg("--lines")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if !sync {
            c.env("MT_FSYNC", "0");
        }
        let t = Instant::now();
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        t.elapsed()
    };
    let d = run(true);
    println!(
        "mt-post --lines: {n} records in {} = {:.0} records/s (target 200,000/s)",
        ms(d),
        n as f64 / d.as_secs_f64()
    );
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("cat > {}", tmp.join("cat-baseline").display()))
        .stdin(Stdio::piped());
    let t = Instant::now();
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait().unwrap();
    println!(
        "  baseline: cat of the same input to a file: {}",
        ms(t.elapsed())
    );
}

/// Write a channel of `n` records spread evenly over the last 30 days
/// straight into segments of 32 MiB, as mt-post would have over a month.
fn write_month(dir: &Path, n: usize) -> usize {
    let chan = dir.join("channels/general");
    std::fs::create_dir_all(&chan).unwrap();
    let now = chrono::Utc::now();
    let span = chrono::Duration::days(30);
    let step = span / n as i32;
    let pad = "x".repeat(100);
    let mut recent = 0;
    let mut seg: Option<(std::io::BufWriter<std::fs::File>, u64)> = None;
    for i in 0..n {
        let seq = i as u64 + 1;
        let t = now - span + step * i as i32;
        if t >= now - chrono::Duration::hours(1) {
            recent += 1;
        }
        if seg.as_ref().is_none_or(|(_, len)| *len >= 32 << 20) {
            let f = std::fs::File::create(chan.join(format!("{seq:020}.jsonl"))).unwrap();
            seg = Some((std::io::BufWriter::new(f), 0));
        }
        let (w, len) = seg.as_mut().unwrap();
        let line = format!(
            "{{\"seq\":{seq},\"id\":\"B{seq}\",\"timestamp\":\"{}\",\"from\":\"bench\",\"type\":\"text\",\"content\":\"message {i} {pad}\",\"channel\":\"general\",\"mentions\":[]}}\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        w.write_all(line.as_bytes()).unwrap();
        *len += line.len() as u64;
    }
    recent
}

/// `--since 1h` on a month of records finds its start by segment and by
/// bisection: it should cost what printing the same records by count does.
fn bench_since_time(tmp: &Path) {
    let n = if quick() { 100_000 } else { 1_000_000 };
    let runs = if quick() { 30 } else { 100 };
    let dir = tmp.join("since-time");
    let recent = write_month(&dir, n);
    let read = |args: &[&str]| {
        let mut c = Command::new(READ);
        c.env("MT_DIR", &dir).arg("--json").args(args);
        c
    };
    let last = recent.to_string();
    let (mut since, mut by_count) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        since.extend(time_runs(1, || read(&["--since", "1h"])));
        by_count.extend(time_runs(1, || read(&["--last", &last])));
    }
    let (ms_since, ms_last) = (median(since), median(by_count));
    println!(
        "mt-read --since 1h, {n} records over 30 days ({recent} in the last hour, {runs} runs)"
    );
    println!("  mt-read --since 1h          median {}", ms(ms_since));
    println!("  mt-read --last {recent:<12} median {}", ms(ms_last));
    println!(
        "  ratio: {:.2}x (target within 1.2x)",
        ms_since.as_secs_f64() / ms_last.as_secs_f64()
    );
}

/// Run a command as our own child in a fresh process, so RUSAGE_CHILDREN
/// reports its peak memory alone.
fn max_rss_kib(cmd: &[&str], env: &[(&str, &Path)]) -> (i64, Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.arg("--rss-child").args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    let d = t.elapsed();
    let s = String::from_utf8_lossy(&out.stdout);
    (s.trim().parse().unwrap_or(-1), d)
}

fn rss_child(cmd: &[String]) {
    let st = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    println!("{}", ru.max_rss());
}

fn bench_stream(tmp: &Path) {
    let gib: f64 = std::env::var("MT_BENCH_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick() { 0.1 } else { 1.0 });
    let dir = tmp.join("stream");
    let width = 1000;
    let n = ((gib * (1u64 << 30) as f64) / (width as f64 + 200.0)) as usize;
    // Write in slices so the writer itself stays small.
    let step = 200_000;
    let mut done = 0;
    while done < n {
        let k = step.min(n - done);
        post_lines(&dir, k, width);
        done += k;
    }
    let bytes: u64 = std::fs::read_dir(dir.join("channels/general"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let (rss, d) = max_rss_kib(&[READ, "--all", "--json"], &[("MT_DIR", &dir)]);
    println!(
        "mt-read --all of {:.2} GiB ({n} records): {} ({:.0} MiB/s), peak RSS {:.1} MB (target under 20 MB)",
        bytes as f64 / (1u64 << 30) as f64,
        ms(d),
        bytes as f64 / (1 << 20) as f64 / d.as_secs_f64(),
        rss as f64 / 1024.0
    );
    let (rss, _) = max_rss_kib(&[READ, "--all"], &[("MT_DIR", &dir)]);
    println!("  text form: peak RSS {:.1} MB", rss as f64 / 1024.0);
    let (rss, _) = max_rss_kib(&["cat", "/dev/null"], &[]);
    println!("  baseline: peak RSS of cat: {:.1} MB", rss as f64 / 1024.0);
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
    println!("== channel benchmarks (release build) ==");
    // `cargo bench --bench channel -- since` runs the benchmarks whose
    // names hold a given word.
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    type Bench = (&'static str, fn(&Path));
    let benches: [Bench; 5] = [
        ("post", bench_post),
        ("read_cursor", bench_read_cursor),
        ("since_time", bench_since_time),
        ("ingest", bench_ingest),
        ("stream", bench_stream),
    ];
    for (name, run) in benches {
        if words.is_empty() || words.iter().any(|w| name.contains(w.as_str())) {
            run(tmp.path());
        }
    }
}
