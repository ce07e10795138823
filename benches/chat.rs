//! mt-chat benchmarks: the first screen of a channel of 1,000,000 records
//! (target: under 100 ms), a post reaching the screen (target: within a
//! second), and CPU while idle (target: none).
//!
//! `cargo bench --bench chat`; `MT_BENCH_QUICK=1` uses 100,000 records.
//! The first screen is timed twice: in-process (reading the channel's end
//! and drawing one frame into a buffer) and end to end in tmux (start of
//! the process to the newest record on the pane, polled with
//! `capture-pane`, so an upper bound). Without tmux only the first runs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mt::chat::{app::App, render};
use mt::statedir::StateDir;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const POST: &str = env!("CARGO_BIN_EXE_mt-post");
const CHAT: &str = env!("CARGO_BIN_EXE_mt-chat");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn post_lines(dir: &Path, n: usize) {
    let mut child = Command::new(POST)
        .env("MT_DIR", dir)
        .env("MT_FSYNC", "0")
        .args(["--lines", "--from", "bench"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        for i in 0..n {
            writeln!(
                w,
                "message {i} with some words to make it the size of a real one"
            )
            .unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

fn post(dir: &Path, text: &str) {
    let st = Command::new(POST)
        .env("MT_DIR", dir)
        .env("MT_FSYNC", "0")
        .args(["--from", "york", text])
        .status()
        .unwrap();
    assert!(st.success());
}

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn wait(&self, text: &str) -> Duration {
        let t = Instant::now();
        while !self.run(&["capture-pane", "-p"]).contains(text) {
            assert!(t.elapsed() < Duration::from_secs(30), "never saw {text}");
            std::thread::sleep(Duration::from_millis(2));
        }
        t.elapsed()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn cpu_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn main() {
    let n = if std::env::var_os("MT_BENCH_QUICK").is_some() {
        100_000
    } else {
        1_000_000
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let t = Instant::now();
    post_lines(&dir, n);
    println!(
        "chat: {n} records written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let state = StateDir::at(&dir);
    let last = format!("message {}", n - 1);

    // In-process: read the end of the channel, draw one 120 x 40 frame.
    let mut runs = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut app = App::new(state.clone(), "reader".into(), "general".into(), true).unwrap();
        let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
        term.draw(|f| {
            render::draw(f, &mut app);
        })
        .unwrap();
        runs.push(t.elapsed());
        let shown: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(shown.contains(&last));
    }
    println!(
        "chat: first screen, {n} records, in-process: median {} (target < 100 ms)",
        ms(median(runs))
    );

    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("chat: no tmux, end-to-end timings skipped");
        return;
    }
    let mut runs = Vec::new();
    for i in 0..5 {
        let tm = Tmux(format!("mt-bench-chat-{}-{i}", std::process::id()));
        let cmd = format!(
            "env MT_DIR={} MT_FSYNC=0 TERM=screen {CHAT} --as reader{i}",
            dir.display()
        );
        let t = Instant::now();
        tm.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            &cmd,
        ]);
        let _ = t;
        runs.push(tm.wait(&last));
    }
    println!(
        "chat: first screen, {n} records, end to end in tmux (polled): median {}",
        ms(median(runs))
    );

    // A post reaching the screen, then CPU while idle.
    let tm = Tmux(format!("mt-bench-chat-{}-live", std::process::id()));
    let cmd = format!(
        "env MT_DIR={} MT_FSYNC=0 TERM=screen {CHAT} --as live",
        dir.display()
    );
    tm.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        &cmd,
    ]);
    tm.wait(&last);
    let mut lat = Vec::new();
    for i in 0..20 {
        let text = format!("live post {i} ");
        let t = Instant::now();
        post(&dir, &text);
        tm.wait(&text);
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "chat: post to screen (polled): median {}, max {} (target < 1 s)",
        ms(lat[lat.len() / 2]),
        ms(*lat.last().unwrap())
    );
    let pid = tm.run(&["display-message", "-p", "#{pane_pid}"]);
    let pid = pid.trim();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu_ticks(pid) - before;
    println!("chat: CPU while idle for 5 s: {used} ticks (1 tick = 10 ms; target 0)");
}
