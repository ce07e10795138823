//! Benchmark of mt-sync against the targets of its issue: importing 10,000
//! new records takes under a second; an idle exchange makes one fetch and
//! no push; with a one-second sync rule, a post on one host is readable on
//! another within 2.5 seconds.
//!
//! Every host is a `git clone` of one bare repository, with its own
//! environment (MT_HOST, CLAUDE_CONFIG_DIR, MT_CONFIG_HOME, HOME), run from
//! its clone as a user runs it. Baselines are measured in the same run:
//! `mt-post --lines` of the same 10,000 records into a fresh channel (what
//! appending alone costs), and a no-op `git fetch` of refs/mt/* (what asking
//! the remote costs). The import is also taken apart in this process with
//! the library's own steps (fetch, import, save), so the step that
//! dominates shows. If `git daemon` is available, the idle exchange is also
//! measured over git://.
//!
//! Run with `cargo bench --bench sync` (release profile). MT_BENCH_DIR picks
//! the directory (default: on the build disk, so syncs cost what they cost).

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POST: &str = env!("CARGO_BIN_EXE_mt-post");
const SYNC: &str = env!("CARGO_BIN_EXE_mt-sync");
const RECORDS: usize = 10_000;
/// Runs of the import (each on a fresh clone) and of the baseline.
const IMPORT_RUNS: usize = 5;
/// Publications of the 10,000 records (each on a fresh remote).
const PUBLISH_RUNS: usize = 3;
const IDLE_RUNS: usize = 20;
const PROBES: usize = 20;
const IMPORT_TARGET: Duration = Duration::from_millis(1000);
const LATENCY_TARGET: Duration = Duration::from_millis(2500);

#[path = "support/timing.rs"]
mod timing;

use timing::{Stats, children_cpu, median};

/// Background processes, killed when dropped (also on a panic).
struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The benchmark directory and the git every host shares.
struct World {
    dir: PathBuf,
}

/// One host: a clone of the remote and its own environment.
struct Host {
    name: String,
    clone: PathBuf,
    home: PathBuf,
}

impl World {
    /// `git` with an identity and no user or system configuration.
    fn git(&self) -> Command {
        let mut c = Command::new("git");
        c.env("HOME", self.dir.join("git-home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
            ]);
        c
    }

    fn run_git(&self, args: &[&str], cwd: &Path) {
        let out = self
            .git()
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new bare repository with one commit on main, as a project has.
    fn remote(&self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.git"));
        let p = path.to_str().unwrap();
        self.run_git(&["init", "-q", "--bare", "-b", "main", p], &self.dir);
        let seed = self.dir.join(format!("{name}-seed"));
        let s = seed.to_str().unwrap();
        self.run_git(&["clone", "-q", p, s], &self.dir);
        fs::write(seed.join("README"), "bench\n").unwrap();
        self.run_git(&["add", "README"], &seed);
        self.run_git(&["commit", "-q", "-m", "seed"], &seed);
        self.run_git(&["push", "-q", "origin", "HEAD:main"], &seed);
        fs::remove_dir_all(&seed).unwrap();
        path
    }

    /// Host `name`: a fresh clone of `url` and fresh configuration.
    fn host(&self, name: &str, url: &str) -> Host {
        let clone = self.dir.join(format!("clone-{name}"));
        let home = self.dir.join(format!("home-{name}"));
        self.run_git(&["clone", "-q", url, clone.to_str().unwrap()], &self.dir);
        for d in ["claude", "cfg", ".config"] {
            fs::create_dir_all(home.join(d)).unwrap();
        }
        Host {
            name: name.to_string(),
            clone,
            home,
        }
    }
}

impl Host {
    /// `bin` as run on this host, from its clone.
    fn cmd(&self, bin: &str, fsync: bool) -> Command {
        let mut c = Command::new(bin);
        for v in [
            "MT_DIR",
            "MT_CHANNEL",
            "MT_AGENT",
            "MT_SEGMENT_BYTES",
            "MT_SYNC_CRASH",
            "MT_SYNC_TOKEN",
            "GIT_DIR",
            "GIT_WORK_TREE",
        ] {
            c.env_remove(v);
        }
        c.current_dir(&self.clone)
            .env("MT_HOST", &self.name)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("MT_CONFIG_HOME", self.home.join("cfg"))
            .env("CLAUDE_CONFIG_DIR", self.home.join("claude"))
            .env("CLAUDE_CODE_TASK_LIST_ID", "bench")
            .env("MT_FSYNC", if fsync { "1" } else { "0" })
            .stdin(Stdio::null());
        c
    }

    /// `mt-post --lines -c CHANNEL < file`.
    fn post_lines(&self, channel: &str, file: &Path, fsync: bool) -> Command {
        let mut c = self.cmd(POST, fsync);
        c.args(["--lines", "-c", channel])
            .stdin(fs::File::open(file).unwrap());
        c
    }

    fn run(&self, mut c: Command) {
        let out = c.output().expect("run");
        assert!(
            out.status.success(),
            "{c:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One `mt-sync --json`: wall time, CPU time and its report.
    fn sync(&self, fsync: bool, extra: &[&str]) -> (Duration, Duration, serde_json::Value) {
        let mut c = self.cmd(SYNC, fsync);
        c.arg("--json").args(extra);
        let (t, c0) = (Instant::now(), children_cpu());
        let out = c.output().expect("run mt-sync");
        let wall = t.elapsed();
        let cpu = children_cpu().saturating_sub(c0);
        assert!(
            out.status.success(),
            "mt-sync on {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let report = serde_json::from_slice(&out.stdout).expect("mt-sync --json prints JSON");
        (wall, cpu, report)
    }

    fn state(&self) -> PathBuf {
        self.clone.join(".git/mt")
    }

    fn channel_dir(&self, channel: &str) -> PathBuf {
        self.state().join("channels").join(channel)
    }

    /// The records of a channel (lines of all its segments).
    fn count_records(&self, channel: &str) -> usize {
        let mut n = 0;
        for e in fs::read_dir(self.channel_dir(channel)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                n += fs::read(&p).unwrap().split(|&b| b == b'\n').count() - 1;
            }
        }
        n
    }

    fn remove(self) {
        let _ = fs::remove_dir_all(&self.clone);
        let _ = fs::remove_dir_all(&self.home);
    }
}

fn imported(report: &serde_json::Value) -> u64 {
    report["imported"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A small generator for the moments of the latency posts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.next() % max.as_micros() as u64)
    }
}

/// The nearest-rank percentile `p` (0-100) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A free TCP port on 127.0.0.1 (free when this returns; git daemon
/// takes it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `git daemon` is there to start.
fn have_git_daemon(world: &World) -> bool {
    world
        .git()
        .args(["daemon", "-h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("usage: git daemon"))
}

/// The text of the newest segment of a channel, if any.
fn newest_segment(dir: &Path) -> Option<Vec<u8>> {
    let newest = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .max()?;
    let mut buf = Vec::new();
    fs::File::open(newest).ok()?.read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Median wall, CPU and reported ms of `runs` idle exchanges on `host`,
/// and the largest fetch and push counts any of them reported.
struct Idle {
    wall: Duration,
    cpu: Duration,
    reported: Duration,
    fetches: (u64, u64),
    pushes: (u64, u64),
}

fn idle(host: &Host, runs: usize, fsync: bool) -> Idle {
    let (mut wall, mut cpu, mut reported) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fetches, mut pushes) = ((u64::MAX, 0), (u64::MAX, 0));
    for _ in 0..runs {
        let (w, c, r) = host.sync(fsync, &[]);
        assert_eq!(imported(&r), 0, "an idle exchange imported records: {r}");
        let f = r["fetches"].as_u64().unwrap();
        let p = r["pushes"].as_u64().unwrap();
        fetches = (fetches.0.min(f), fetches.1.max(f));
        pushes = (pushes.0.min(p), pushes.1.max(p));
        wall.push(w);
        cpu.push(c);
        reported.push(Duration::from_millis(r["ms"].as_u64().unwrap()));
    }
    Idle {
        wall: median(wall),
        cpu: median(cpu),
        reported: median(reported),
        fetches,
        pushes,
    }
}

fn range(r: (u64, u64)) -> String {
    if r.0 == r.1 {
        r.0.to_string()
    } else {
        format!("{}-{}", r.0, r.1)
    }
}

/// A no-op `git fetch` of refs/mt/* from the host's clone: the baseline of
/// an idle exchange.
fn git_fetch_baseline(world: &World, host: &Host, runs: usize) -> Stats {
    timing::bench(
        runs,
        || {
            let mut c = world.git();
            c.args(["fetch", "-q", "origin", "+refs/mt/*:refs/mt/*"])
                .current_dir(&host.clone);
            c
        },
        |_| {},
    )
}

/// The import taken apart in this process, with the library's own steps,
/// on a fresh clone of `remote`: fetch, import (walk, parse, append, sync
/// the channel), save the state; beside them the parse and the append
/// alone, on the same records.
fn breakdown(world: &World, remote: &Path, runs: usize) -> Vec<(String, Duration)> {
    use mt::channel::{Appender, WriteOptions};
    use mt::record::Record;
    use mt::statedir::StateDir;
    use mt::sync::{Identity, Remote, log, state};

    let mut steps: Vec<(&str, Vec<Duration>)> = vec![
        ("open, lock, identity", Vec::new()),
        ("fetch refs/mt/*", Vec::new()),
        ("catch_up_seen", Vec::new()),
        ("import (walk, parse, append, sync)", Vec::new()),
        ("save channels.json", Vec::new()),
        ("  of which: read the published blob", Vec::new()),
        ("  of which: parse 10,000 records", Vec::new()),
        ("  of which: append 10,000 records", Vec::new()),
    ];
    for i in 0..runs {
        let host = world.host(&format!("x{i}"), remote.to_str().unwrap());
        let t = Instant::now();
        let repo = git2::Repository::open(&host.clone).unwrap();
        let st = StateDir::at(host.state());
        let lock = state::lock(&st).unwrap();
        let me = Identity::establish(&st, &host.name).unwrap();
        let rem = Remote::open(&repo, "origin", Duration::from_secs(30)).unwrap();
        steps[0].1.push(t.elapsed());
        let t = Instant::now();
        rem.fetch(&["refs/mt/*"]).unwrap();
        steps[1].1.push(t.elapsed());
        let t = Instant::now();
        let mut chans = state::Channels::load(&st).unwrap();
        log::catch_up_seen(&st, &mut chans).unwrap();
        steps[2].1.push(t.elapsed());
        let t = Instant::now();
        let got = log::import(&repo, &st, &mut chans, &me).unwrap();
        steps[3].1.push(t.elapsed());
        assert_eq!(got.per_host.values().sum::<u64>(), RECORDS as u64);
        let t = Instant::now();
        chans.save(&st).unwrap();
        steps[4].1.push(t.elapsed());
        drop(lock);

        // The same records again: parse alone, then append alone into a
        // channel of their own.
        let t = Instant::now();
        let blobs: Vec<Vec<u8>> = {
            let repo = git2::Repository::open(&host.clone).unwrap();
            let tip = repo.refname_to_id("refs/mt/log/a").unwrap();
            let tree = repo.find_commit(tip).unwrap().tree().unwrap();
            let recs = tree.get_name("records").unwrap().to_object(&repo).unwrap();
            let recs = recs.peel_to_tree().unwrap();
            recs.iter()
                .map(|e| repo.find_blob(e.id()).unwrap().content().to_vec())
                .collect()
        };
        steps[5].1.push(t.elapsed());
        let t = Instant::now();
        let mut parsed = Vec::with_capacity(RECORDS);
        for b in &blobs {
            for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                parsed.push(serde_json::from_slice::<Record>(line).unwrap());
            }
        }
        steps[6].1.push(t.elapsed());
        let t = Instant::now();
        let opts = WriteOptions::from_env().unwrap();
        let mut app = Appender::open_importing(&st, "again", opts).unwrap();
        for r in &parsed {
            app.append_record(r).unwrap();
        }
        app.commit().unwrap();
        steps[7].1.push(t.elapsed());
        host.remove();
    }
    steps
        .into_iter()
        .map(|(n, v)| (n.to_string(), median(v)))
        .collect()
}

fn main() {
    let base = std::env::var_os("MT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let tmp = tempfile::tempdir_in(&base).unwrap();
    println!("benchmark directory: {}", base.display());
    let world = World {
        dir: tmp.path().to_path_buf(),
    };
    fs::create_dir_all(world.dir.join("git-home")).unwrap();

    // 10,000 records of a busy channel.
    let lines = world.dir.join("records.txt");
    let text: String = (0..RECORDS)
        .map(|i| {
            format!(
                "record {i}: @york the parser change is ready for review; tests pass on linux and macos\n"
            )
        })
        .collect();
    fs::write(&lines, &text).unwrap();

    // Summary rows: (what, measured, target, met).
    let mut summary: Vec<(String, String, String, &str)> = Vec::new();
    let yes = |b: bool| if b { "yes" } else { "NO" };

    // 1. Import.
    println!();
    println!("1. import of {RECORDS} records: host a posts and publishes them, host b imports");
    println!(
        "   (medians; publish: {PUBLISH_RUNS} runs, each on a fresh remote; import and baseline: {IMPORT_RUNS} runs, each import on a fresh clone)"
    );
    println!("{:<50} {:>9} {:>9} {:>7}", "", "wall ms", "cpu ms", "ratio");
    let mut kept_remote = None;
    let mut kept_b = None;
    let mut import_synced = Duration::ZERO;
    for fsync in [true, false] {
        let tag = if fsync { "synced" } else { "MT_FSYNC=0" };
        let poster_remote = world.remote(&format!("baseline-{}", u8::from(fsync)));
        let poster = world.host(
            &format!("p{}", u8::from(fsync)),
            poster_remote.to_str().unwrap(),
        );
        let baseline = timing::bench(
            IMPORT_RUNS,
            || poster.post_lines("fresh", &lines, fsync),
            |_| {
                let _ = fs::remove_dir_all(poster.channel_dir("fresh"));
            },
        );
        poster.remove();
        fs::remove_dir_all(&poster_remote).unwrap();

        let mut publish = (Vec::new(), Vec::new());
        let mut post_a = (Vec::new(), Vec::new());
        let mut remote = None;
        let mut host_a = None;
        for r in 0..PUBLISH_RUNS {
            let path = world.remote(&format!("remote-{}-{r}", u8::from(fsync)));
            let a = world.host(
                &format!("a-{}-{r}", u8::from(fsync)),
                path.to_str().unwrap(),
            );
            // Host a is called `a` on every remote (its clone is not).
            let a = Host {
                name: "a".into(),
                ..a
            };
            let (t, c0) = (Instant::now(), children_cpu());
            a.run(a.post_lines("general", &lines, fsync));
            post_a.0.push(t.elapsed());
            post_a.1.push(children_cpu().saturating_sub(c0));
            let (w, c, rep) = a.sync(fsync, &[]);
            assert_eq!(rep["published"].as_u64(), Some(RECORDS as u64), "{rep}");
            publish.0.push(w);
            publish.1.push(c);
            if r == 0 {
                remote = Some(path);
                host_a = Some(a);
            } else {
                a.remove();
                fs::remove_dir_all(&path).unwrap();
            }
        }
        let remote = remote.unwrap();
        let mut import = (Vec::new(), Vec::new());
        let mut reports = Vec::new();
        for i in 0..IMPORT_RUNS {
            let b = world.host(
                &format!("b{}-{i}", u8::from(fsync)),
                remote.to_str().unwrap(),
            );
            let (w, c, rep) = b.sync(fsync, &[]);
            assert_eq!(imported(&rep), RECORDS as u64, "{rep}");
            assert_eq!(b.count_records("general"), RECORDS);
            import.0.push(w);
            import.1.push(c);
            reports.push(rep);
            if fsync && i == IMPORT_RUNS - 1 {
                kept_b = Some(b);
            } else {
                b.remove();
            }
        }
        let (bw, bc) = (baseline.wall, baseline.cpu);
        let im = median(import.0);
        let rows = [
            ("baseline: mt-post --lines into a fresh channel", bw, bc),
            (
                "mt-post --lines on a (same, before publishing)",
                median(post_a.0),
                median(post_a.1),
            ),
            (
                "mt-sync on a: publish",
                median(publish.0),
                median(publish.1),
            ),
            ("mt-sync on b: import", im, median(import.1)),
        ];
        println!("  {tag}:");
        for (name, w, c) in rows {
            println!(
                "  {name:<48} {:>9.1} {:>9.1} {:>7.2}",
                ms(w),
                ms(c),
                w.as_secs_f64() / bw.as_secs_f64()
            );
        }
        let f: Vec<String> = reports
            .iter()
            .map(|r| format!("{}/{}/{}ms", r["fetches"], r["pushes"], r["ms"]))
            .collect();
        println!(
            "  b's reports, fetches/pushes/ms: {} (a new host's first exchange also publishes its status)",
            f.join(" ")
        );
        summary.push((
            format!("import {RECORDS} records, b's mt-sync ({tag})"),
            format!("{:.0} ms", ms(im)),
            format!("< {} ms", IMPORT_TARGET.as_millis()),
            yes(im < IMPORT_TARGET),
        ));
        if fsync {
            import_synced = im;
            kept_remote = Some((remote, host_a.unwrap()));
        } else {
            host_a.unwrap().remove();
            fs::remove_dir_all(&remote).unwrap();
        }
    }
    let (remote, host_a) = kept_remote.unwrap();
    let host_b = kept_b.unwrap();

    // Where the import's time goes, step by step in this process.
    println!();
    println!(
        "   the import of b taken apart in this process (library steps, MT_FSYNC as in this environment: {}), medians of {IMPORT_RUNS}:",
        if mt::infra::fsutil::fsync_enabled() {
            "synced"
        } else {
            "0"
        }
    );
    let steps = breakdown(&world, &remote, IMPORT_RUNS);
    let sum: Duration = steps.iter().take(5).map(|s| s.1).sum();
    for (name, d) in &steps {
        println!(
            "  {name:<48} {:>9.1} {:>6.0}%",
            ms(*d),
            100.0 * d.as_secs_f64() / sum.as_secs_f64()
        );
    }
    println!(
        "  {:<48} {:>9.1}   (mt-sync as a process: {:.1})",
        "sum of the steps",
        ms(sum),
        ms(import_synced)
    );

    // 2. Idle.
    println!();
    println!("2. idle exchange: nothing new anywhere, {IDLE_RUNS} runs (medians)");
    println!(
        "{:<50} {:>9} {:>9} {:>7} {:>8} {:>7}",
        "", "wall ms", "cpu ms", "ratio", "fetches", "pushes"
    );
    let _ = host_a.sync(true, &[]);
    let _ = host_b.sync(true, &[]);
    let git_base = git_fetch_baseline(&world, &host_b, IDLE_RUNS);
    let idle_b = idle(&host_b, IDLE_RUNS, true);
    let idle_b_nosync = idle(&host_b, IDLE_RUNS, false);
    let idle_a = idle(&host_a, IDLE_RUNS, true);
    let gw = git_base.wall.as_secs_f64();
    println!(
        "  {:<48} {:>9.1} {:>9.1} {:>7.2}",
        "baseline: git fetch refs/mt/* (nothing new), path",
        ms(git_base.wall),
        ms(git_base.cpu),
        1.0
    );
    let print_idle = |name: &str, i: &Idle, base: f64| {
        println!(
            "  {name:<48} {:>9.1} {:>9.1} {:>7.2} {:>8} {:>7}   (reported ms {:.0})",
            ms(i.wall),
            ms(i.cpu),
            i.wall.as_secs_f64() / base,
            range(i.fetches),
            range(i.pushes),
            ms(i.reported)
        );
    };
    print_idle("mt-sync on b (10,000 imported records), path", &idle_b, gw);
    print_idle("mt-sync on b, MT_FSYNC=0, path", &idle_b_nosync, gw);
    print_idle("mt-sync on a (10,000 own records), path", &idle_a, gw);
    let mut idle_ok = idle_b.fetches == (1, 1)
        && idle_b.pushes == (0, 0)
        && idle_a.fetches == (1, 1)
        && idle_a.pushes == (0, 0);
    let mut idle_git = None;
    if have_git_daemon(&world) {
        let port = free_port();
        let daemon = world
            .git()
            .args([
                "daemon",
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
            ])
            .arg(format!("--base-path={}", world.dir.display()))
            .args(["--listen=127.0.0.1", &format!("--port={port}")])
            .arg(&world.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let _daemon = Background(vec![daemon]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = format!(
            "git://127.0.0.1:{port}/{}",
            remote.file_name().unwrap().to_str().unwrap()
        );
        let host_c = world.host("c", &url);
        let (w, _, rep) = host_c.sync(true, &[]);
        assert_eq!(imported(&rep), RECORDS as u64, "{rep}");
        println!(
            "  {:<48} {:>9.1}   (first exchange of c: import over git://, {}/{} fetches/pushes)",
            "mt-sync on c over git://: import",
            ms(w),
            rep["fetches"],
            rep["pushes"]
        );
        let _ = host_c.sync(true, &[]);
        let git_base = git_fetch_baseline(&world, &host_c, IDLE_RUNS);
        let idle_c = idle(&host_c, IDLE_RUNS, true);
        println!(
            "  {:<48} {:>9.1} {:>9.1} {:>7.2}",
            "baseline: git fetch refs/mt/*, git://",
            ms(git_base.wall),
            ms(git_base.cpu),
            1.0
        );
        print_idle("mt-sync on c, git://", &idle_c, git_base.wall.as_secs_f64());
        idle_ok &= idle_c.fetches == (1, 1) && idle_c.pushes == (0, 0);
        idle_git = Some(idle_c.wall);
        host_c.remove();
    } else {
        println!("  (git daemon is not available: no git:// measurement)");
    }
    summary.push((
        "idle exchange: fetches / pushes".into(),
        format!("{} / {}", range(idle_b.fetches), range(idle_b.pushes)),
        "1 / 0".into(),
        yes(idle_ok),
    ));
    summary.push((
        "idle exchange time, path".into(),
        format!("{:.1} ms", ms(idle_b.wall)),
        "-".into(),
        "-",
    ));
    summary.push((
        "idle exchange time, path, MT_FSYNC=0".into(),
        format!("{:.1} ms", ms(idle_b_nosync.wall)),
        "-".into(),
        "-",
    ));
    if let Some(w) = idle_git {
        summary.push((
            "idle exchange time, git://".into(),
            format!("{:.1} ms", ms(w)),
            "-".into(),
            "-",
        ));
    }
    host_a.remove();
    host_b.remove();
    fs::remove_dir_all(&remote).unwrap();

    // 3. Latency.
    println!();
    println!(
        "3. latency: hosts a and b run mt-sync --watch --every 1s; {PROBES} posts on a at random moments"
    );
    let remote = world.remote("latency");
    let a = world.host("la", remote.to_str().unwrap());
    let b = world.host("lb", remote.to_str().unwrap());
    for h in [&a, &b] {
        h.sync(true, &[]);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    // The two hosts' timers run at a random phase to each other, as on
    // hosts started independently: b's watcher starts 0-1 s after a's.
    let phase = rng.below(Duration::from_millis(1000));
    let mut watchers = Background(Vec::new());
    for h in [&a, &b] {
        if h.name == b.name {
            std::thread::sleep(phase);
        }
        let err = fs::File::create(world.dir.join(format!("watch-{}.err", h.name))).unwrap();
        let mut c = h.cmd(SYNC, true);
        c.args(["--watch", "--every", "1s", "-q"])
            .stdout(Stdio::null())
            .stderr(err);
        watchers.0.push(c.spawn().expect("start mt-sync --watch"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let chan = b.channel_dir("general");
    let mut lat = Vec::new();
    let mut missed = 0;
    for k in 0..PROBES {
        std::thread::sleep(rng.below(Duration::from_millis(1300)));
        let content = format!("latency probe {k} of run {seed:x}");
        let t = Instant::now();
        let mut c = a.cmd(POST, true);
        c.args(["-c", "general", &content]);
        a.run(c);
        let deadline = t + Duration::from_secs(10);
        loop {
            if newest_segment(&chan).is_some_and(|s| contains(&s, content.as_bytes())) {
                lat.push(t.elapsed());
                break;
            }
            if Instant::now() > deadline {
                missed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(watchers);
    for h in [&a, &b] {
        let err = fs::read_to_string(world.dir.join(format!("watch-{}.err", h.name))).unwrap();
        if !err.is_empty() {
            println!("  mt-sync --watch on {} said: {}", h.name, err.trim());
        }
    }
    lat.sort();
    let show: Vec<String> = lat
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect();
    println!(
        "  seed {seed:x}; b's watcher started {:.2} s after a's; seconds from mt-post on a to the record in b's channel, sorted:",
        phase.as_secs_f64()
    );
    println!("  {}", show.join(" "));
    if lat.is_empty() {
        println!("  no post arrived within 10 s");
    } else {
        let (med, p90, max) = (
            percentile(&lat, 50),
            percentile(&lat, 90),
            lat[lat.len() - 1],
        );
        println!(
            "  median {:.2} s, p90 {:.2} s, max {:.2} s, missed (over 10 s) {missed}; target {:.1} s",
            med.as_secs_f64(),
            p90.as_secs_f64(),
            max.as_secs_f64(),
            LATENCY_TARGET.as_secs_f64()
        );
        summary.push((
            "post to readable elsewhere, 1 s rule: median".into(),
            format!("{:.2} s", med.as_secs_f64()),
            format!("< {:.1} s", LATENCY_TARGET.as_secs_f64()),
            yes(med < LATENCY_TARGET),
        ));
        summary.push((
            "  p90 / max".into(),
            format!("{:.2} / {:.2} s", p90.as_secs_f64(), max.as_secs_f64()),
            format!("< {:.1} s", LATENCY_TARGET.as_secs_f64()),
            yes(max < LATENCY_TARGET && missed == 0),
        ));
    }
    a.remove();
    b.remove();

    println!();
    println!("summary");
    println!(
        "{:<50} {:>16} {:>12} {:>5}",
        "", "measured", "target", "met"
    );
    for (what, got, target, met) in &summary {
        println!("{what:<50} {got:>16} {target:>12} {met:>5}");
    }
}
