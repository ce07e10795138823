//! mt-web under load, the release binary as a whole process:
//! - the first view of a channel of 1,000,000 records (`GET
//!   /api/channel/NAME`, what a page asks first), median of 20;
//! - one `mt-post` reaching 50 connected live pages (SSE streams): the
//!   time until the last of them has the record, median of 20 posts;
//! - the server's memory (VmRSS) with those 50 pages connected, and the
//!   CPU time it uses over 5 seconds while nothing happens.
//!
//! `cargo bench --bench web` (or `make bench`). `MT_BENCH_QUICK=1` uses
//! 100,000 records.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use mt::channel::{Appender, Draft, WriteOptions};
use mt::statedir::StateDir;

const PAGES: usize = 50;
const ROUNDS: usize = 20;

fn release(bin: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-web"))
        .parent()
        .expect("bin dir")
        .join(bin)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        &out[..out.len().min(200)]
    );
    out
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let quick = std::env::var("MT_BENCH_QUICK").as_deref() == Ok("1");
    let records: u64 = if quick { 100_000 } else { 1_000_000 };
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::at(tmp.path().join("state"));
    let t = Instant::now();
    let mut app = Appender::open(
        &state,
        "big",
        WriteOptions {
            fsync: false,
            segment_bytes: 64 << 20,
        },
    )
    .unwrap();
    for i in 0..records {
        app.append(&Draft {
            from: if i % 3 == 0 {
                "york".into()
            } else {
                "lead".into()
            },
            kind: "text".into(),
            content: format!(
                "message {i}: @york the parser passes #review task #{}",
                i % 50
            ),
            ..Draft::default()
        })
        .unwrap();
    }
    app.commit().unwrap();
    eprintln!(
        "wrote {records} records in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let mut server = Command::new(release("mt-web"))
        .args(["--as", "ana", "-l", "127.0.0.1:0", "--print-address"])
        .env("MT_DIR", state.root())
        .env("MT_FSYNC", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    let first: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            get(&addr, "/api/channel/big");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "first view of a channel of {records} records: median {:.2} ms (limit 50 ms)",
        median(first)
    );

    // 50 live pages, each a thread reading its stream and reporting each
    // record's seq.
    let (tx, rx) = channel::<(usize, u64, Instant)>();
    for p in 0..PAGES {
        let tx = tx.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(
                s,
                "GET /events/big?after={records} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            )
            .unwrap();
            let r = BufReader::new(s);
            for l in r.lines() {
                let Ok(l) = l else { return };
                if let Some(id) = l.strip_prefix("id: ") {
                    let _ = tx.send((p, id.parse().unwrap(), Instant::now()));
                }
            }
        });
    }
    // Let them connect and settle.
    std::thread::sleep(Duration::from_secs(1));
    let kib = rss_kib(pid);
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(5));
    let idle = cpu_ticks(pid) - ticks;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    println!(
        "{PAGES} connected pages: {:.1} MiB resident (limit 50 MB), {:.0} ms CPU over 5 s idle",
        kib as f64 / 1024.0,
        idle as f64 * 1e3 / hz
    );

    let mut fanout = Vec::new();
    for round in 1..=ROUNDS as u64 {
        let seq = records + round;
        let t = Instant::now();
        let st = Command::new(release("mt-post"))
            .args(["-c", "big", "fan-out"])
            .env("MT_DIR", state.root())
            .env("MT_FSYNC", "0")
            .env_remove("MT_AGENT")
            .status()
            .unwrap();
        assert!(st.success());
        let mut got = 0;
        let mut last = t;
        while got < PAGES {
            let (_, s, at) = rx.recv_timeout(Duration::from_secs(30)).expect("a page");
            if s == seq {
                got += 1;
                last = at;
            }
        }
        fanout.push((last - t).as_secs_f64() * 1e3);
    }
    println!(
        "a post (mt-post included) reaches {PAGES} pages: median {:.1} ms (limit 200 ms)",
        median(fanout)
    );
    let _ = server.kill();
    let _ = server.wait();
}
