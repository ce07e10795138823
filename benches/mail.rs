//! Benchmarks of mt-mail and mt-task as a user runs them: one process per
//! call, against an inbox of 1,000 messages and a task list of 1,000 tasks.
//! Medians are printed beside baselines measured in the same run: starting a
//! process that does nothing, and a shell appending a line to a file.
//!
//! Run with `cargo bench --bench mail` (the binaries are built with the
//! bench profile, which is the release profile).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MAIL: &str = env!("CARGO_BIN_EXE_mt-mail");
const TASK: &str = env!("CARGO_BIN_EXE_mt-task");
const RUNS: usize = 200;
const SIZE: usize = 1000;

#[path = "support/timing.rs"]
mod timing;

use timing::{Stats, median};

/// Time `RUNS` runs of a command; `reset` runs untimed before each one.
fn bench(make: impl FnMut() -> Command, mut reset: impl FnMut()) -> Stats {
    timing::bench(RUNS, make, |_| reset())
}

fn inbox_text(n: usize) -> String {
    let msgs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "  {{\n    \"from\": \"team-lead\",\n    \"text\": \"message number {i}: please look at the parser change and tell me what you think of it\",\n    \"timestamp\": \"2026-03-04T05:32:26.455Z\",\n    \"read\": {},\n    \"summary\": \"parser review request\"\n  }}",
                i % 2 == 0
            )
        })
        .collect();
    format!("[\n{}\n]", msgs.join(",\n"))
}

fn fill_tasks(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 1..=n {
        let status = if i % 3 == 0 { "completed" } else { "pending" };
        fs::write(
            dir.join(format!("{i}.json")),
            format!(
                "{{\n  \"id\": \"{i}\",\n  \"subject\": \"Task {i}\",\n  \"description\": \"Do part {i} of the work\",\n  \"status\": \"{status}\",\n  \"blocks\": [],\n  \"blockedBy\": []\n}}"
            ),
        )
        .unwrap();
    }
    fs::write(dir.join(".highwatermark"), n.to_string()).unwrap();
}

fn main() {
    // By default a directory on the build disk, not a tmpfs, so file system
    // work and syncs cost what they cost; MT_BENCH_DIR picks another place
    // (a tmpfs shows what mt itself costs).
    let base = std::env::var_os("MT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let tmp = tempfile::tempdir_in(&base).unwrap();
    println!("benchmark directory: {}", base.display());
    let claude = tmp.path().join("claude");
    let inbox = claude.join("teams/bench/inboxes/york.json");
    fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    let inbox_1000 = inbox_text(SIZE);
    let list_dir = claude.join("tasks/bench");
    fill_tasks(&list_dir, SIZE);

    let env = |c: &mut Command, fsync: bool| {
        c.env("CLAUDE_CONFIG_DIR", &claude)
            .env("MT_DIR", tmp.path().join("mt"))
            .env("CLAUDE_CODE_TASK_LIST_ID", "bench")
            .env("MT_FSYNC", if fsync { "1" } else { "0" });
    };

    let mut rows: Vec<(String, Stats)> = Vec::new();
    rows.push((
        "baseline: sh -c true".into(),
        bench(
            || {
                let mut c = Command::new("sh");
                c.args(["-c", "true"]);
                c
            },
            || {},
        ),
    ));
    let log = tmp.path().join("append.log");
    rows.push((
        "baseline: sh appending a line".into(),
        bench(
            || {
                let mut c = Command::new("sh");
                c.args(["-c", "printf '%s\\n' \"$1\" >> \"$2\"", "sh", "hello"])
                    .arg(&log);
                c
            },
            || {},
        ),
    ));
    // What the file system alone costs for one send, measured in this
    // process (no process start): lock directory, read, replace, unlock.
    {
        let mut wall = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            fs::write(&inbox, &inbox_1000).unwrap();
            let t = Instant::now();
            let lock =
                mt::infra::dirlock::acquire(&mt::infra::dirlock::lock_path(&inbox), Duration::ZERO)
                    .unwrap();
            let mut bytes = fs::read(&inbox).unwrap();
            bytes.extend_from_slice(b" ");
            mt::infra::fsutil::write_atomic(&inbox, &bytes, false).unwrap();
            lock.release().unwrap();
            wall.push(t.elapsed());
        }
        let wall = median(wall);
        rows.push((
            "baseline: in-process lock+read+replace".into(),
            Stats { wall, cpu: wall },
        ));
    }
    for fsync in [false, true] {
        let tag = if fsync { "synced" } else { "MT_FSYNC=0" };
        rows.push((
            format!("mt-mail send, 1,000 messages ({tag})"),
            bench(
                || {
                    let mut c = Command::new(MAIL);
                    c.args([
                        "send",
                        "--team",
                        "bench",
                        "--to",
                        "york",
                        "--summary",
                        "status",
                        "the parser is ready for review",
                    ]);
                    env(&mut c, fsync);
                    c
                },
                || fs::write(&inbox, &inbox_1000).unwrap(),
            ),
        ));
    }
    rows.push((
        "mt-mail read --unread, 1,000 messages".into(),
        bench(
            || {
                let mut c = Command::new(MAIL);
                c.args(["read", "--team", "bench", "--as", "york", "--unread"]);
                env(&mut c, false);
                c
            },
            || fs::write(&inbox, &inbox_1000).unwrap(),
        ),
    ));
    for fsync in [false, true] {
        let tag = if fsync { "synced" } else { "MT_FSYNC=0" };
        rows.push((
            format!("mt-task create, 1,000 tasks ({tag})"),
            bench(
                || {
                    let mut c = Command::new(TASK);
                    c.args(["create", "Benchmark task", "--description", "measure it"]);
                    env(&mut c, fsync);
                    c
                },
                // Keep the list at 1,000 tasks: drop the one made last time.
                || {
                    let last = fs::read_to_string(list_dir.join(".highwatermark")).unwrap();
                    if last.trim().parse::<usize>().unwrap() > SIZE {
                        fs::remove_file(list_dir.join(format!("{}.json", last.trim()))).unwrap();
                    }
                },
            ),
        ));
    }
    rows.push((
        "mt-task list --available, 1,000 tasks".into(),
        bench(
            || {
                let mut c = Command::new(TASK);
                c.args(["list", "--available"]);
                env(&mut c, false);
                c
            },
            || {},
        ),
    ));

    let (base_wall, base_cpu) = (rows[0].1.wall.as_secs_f64(), rows[0].1.cpu.as_secs_f64());
    println!(
        "{:<42} {:>9} {:>7} {:>9} {:>7}",
        "median of 200 runs", "wall ms", "ratio", "cpu ms", "ratio"
    );
    for (name, st) in &rows {
        let (w, c) = (st.wall.as_secs_f64(), st.cpu.as_secs_f64());
        println!(
            "{name:<42} {:>9.3} {:>7.2} {:>9.3} {:>7.2}",
            w * 1e3,
            w / base_wall,
            c * 1e3,
            c / base_cpu.max(1e-6)
        );
    }
    println!("(ratios against `sh -c true`; cpu = user + system time of the process;");
    println!(" the in-process row shows wall time in both columns)");
}
