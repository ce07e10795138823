//! `mt-status` over a big team: 1,000 agents (half of them running, their
//! liveness locks held by this bench), 10,000 tasks, ten channels with
//! unread records, a hundred reminders and a repository with ten
//! worktrees, half of them with uncommitted work. Whole processes of the
//! release binaries, beside `mt-ps`, `mt-task list` and `mt-worktree list`
//! over the same files in the same run.
//!
//! `cargo bench --bench status` (or `make bench`). `MT_BENCH_QUICK=1` uses
//! 100 agents and 1,000 tasks.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const ROUNDS: usize = 20;

fn release(bin: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-status"))
        .parent()
        .expect("bin dir")
        .join(bin)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Team {
    root: PathBuf,
    /// The liveness locks of the running agents, held while the bench runs.
    _locks: Vec<File>,
}

impl Team {
    fn cmd(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(release(bin));
        c.args(args)
            .env("MT_DIR", self.root.join("state"))
            .env("CLAUDE_CONFIG_DIR", self.root.join("claude"))
            .env("CLAUDE_CODE_TASK_LIST_ID", "team")
            .env("MT_FSYNC", "0")
            .env_remove("MT_AGENT")
            .current_dir(self.root.join("repo"))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }

    /// Median wall time and CPU time (user and system) in milliseconds of
    /// `bin args`, which must succeed. On a busy machine the CPU time is
    /// the steadier figure.
    fn time_ms(&self, bin: &str, args: &[&str]) -> (f64, f64) {
        let (wall, cpu): (Vec<f64>, Vec<f64>) = (0..ROUNDS)
            .map(|_| {
                let before = children_cpu_ms();
                let t = Instant::now();
                let st = self.cmd(bin, args).status().unwrap();
                let wall = t.elapsed().as_secs_f64() * 1e3;
                assert!(st.success(), "{bin} {args:?}: {st}");
                (wall, children_cpu_ms() - before)
            })
            .unzip();
        (median(wall), median(cpu))
    }
}

/// CPU time of the children waited for so far, in milliseconds.
fn children_cpu_ms() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    ms(u.user_time()) + ms(u.system_time())
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

fn build(root: &Path, agents: usize, tasks: usize) -> Team {
    let state = root.join("state");
    // Agents as their supervisors leave them: meta.json and status.json.
    let mut locks = Vec::new();
    for i in 0..agents {
        let name = format!("a{i:04}");
        let dir = state.join("agents").join(&name);
        fs::create_dir_all(&dir).unwrap();
        let running = i % 2 == 0;
        let meta = serde_json::json!({
            "name": name, "session_id": format!("s-{i}"), "cwd": "/tmp",
            "task": (i % 3 == 0).then(|| (i + 1).to_string()), "channel": "general",
            "agent_cmd": "claude", "created": "2026-11-21T19:40:01.123Z",
            "permissions": {"allow": ["Bash(git:*)", "Bash(mt-post:*)", "Bash(cargo:*)"]},
        });
        let status = serde_json::json!({
            "name": name, "state": if running { "working" } else { "exited" },
            "pid": 1000 + i, "session_id": format!("s-{i}"), "model": "claude-opus",
            "turns": 12, "input_tokens": 120_000, "output_tokens": 34_000,
            "cache_read_tokens": 1_000_000, "cost_usd": 1.25, "events": 800,
            "last_event_at": "2026-11-21T19:40:01.123Z", "last_event_type": "assistant",
            "rate_limit": (i % 50 == 0).then(|| serde_json::json!({
                "status": "rejected", "resets_at": "2999-01-01T00:00:00.000Z",
                "kind": "five_hour", "at": "2026-11-21T19:40:01.123Z"})),
            "runs": 1, "started_at": "2026-11-21T19:00:00.000Z",
        });
        fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        fs::write(dir.join("status.json"), status.to_string()).unwrap();
        let lock = File::create(dir.join("running.lock")).unwrap();
        if running {
            lock.lock().unwrap();
            locks.push(lock);
        }
    }
    // Tasks as Claude Code writes them: 60% completed, 20% in progress,
    // 20% pending, a quarter of those blocked.
    let list = root.join("claude/tasks/team");
    fs::create_dir_all(&list).unwrap();
    for id in 1..=tasks {
        let (status, owner, blocked_by) = match id % 10 {
            0..=5 => ("completed", String::new(), vec![]),
            6 | 7 => ("in_progress", format!("a{:04}", id % agents), vec![]),
            8 if id % 4 == 0 => ("pending", String::new(), vec![(id - 1).to_string()]),
            _ => ("pending", String::new(), vec![]),
        };
        let t = serde_json::json!({
            "id": id.to_string(), "subject": format!("Task number {id} of the big plan"),
            "description": "x".repeat(200), "activeForm": format!("Working on {id}"),
            "status": status, "owner": owner, "blocks": [], "blockedBy": blocked_by,
        });
        let text = serde_json::to_string_pretty(&t).unwrap();
        fs::write(list.join(format!("{id}.json")), text).unwrap();
    }
    fs::write(list.join(".highwatermark"), tasks.to_string()).unwrap();

    let repo = root.join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    let team = Team {
        root: root.to_path_buf(),
        _locks: locks,
    };
    // Ten worktrees, half of them with a file not committed.
    for w in 0..10 {
        let name = format!("a{w:04}");
        let out = team
            .cmd("mt-worktree", &["add", &name])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success());
        if w % 2 == 0 {
            let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
            fs::write(dir.join("notes.txt"), "draft\n").unwrap();
        }
    }

    // Ten channels of 1,000 records, the lead half way through each.
    for c in 0..10 {
        let ch = format!("c{c}");
        let mut post = team.cmd("mt-post", &["--lines", "-c", &ch, "--from", "a0001"]);
        let mut child = post.stdin(Stdio::piped()).spawn().unwrap();
        {
            let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
            for i in 0..1000 {
                writeln!(w, "progress on item {i} of channel {ch}").unwrap();
            }
        }
        assert!(child.wait().unwrap().success());
        let st = team
            .cmd("mt-read", &["--as", "lead", "-c", &ch, "--last", "1"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    for r in 0..100 {
        let at = if r % 10 == 0 {
            "2020-01-01T00:00:00Z"
        } else {
            "2999-01-01T00:00:00Z"
        };
        let st = team
            .cmd("mt-remind", &["add", "--at", at, &format!("reminder {r}")])
            .status()
            .unwrap();
        assert!(st.success());
    }
    team
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("MT_BENCH_QUICK").is_some();
    let (agents, tasks) = if quick { (100, 1_000) } else { (1_000, 10_000) };
    let tmp = tempfile::tempdir_in(
        std::env::var_os("MT_BENCH_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    )
    .unwrap();
    println!("== mt-status ({agents} agents, {tasks} tasks, release build) ==");
    let team = build(tmp.path(), agents, tasks);

    let out = team
        .cmd("mt-status", &["--json"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["agents"], agents);
    assert_eq!(v["totals"]["running"], agents / 2);
    assert_eq!(v["tasks"]["completed"], tasks * 6 / 10);
    assert_eq!(v["worktrees"]["unmerged"].as_array().unwrap().len(), 5);
    assert_eq!(v["channels"].as_array().unwrap().len(), 10);
    assert_eq!(v["reminders"]["due"].as_array().unwrap().len(), 10);

    let (text, text_cpu) = team.time_ms("mt-status", &[]);
    let (json, json_cpu) = team.time_ms("mt-status", &["--json"]);
    let (ps, ps_cpu) = team.time_ms("mt-ps", &[]);
    let (list, list_cpu) = team.time_ms("mt-task", &["list"]);
    let (wt, wt_cpu) = team.time_ms("mt-worktree", &["list"]);
    println!(
        "mt-status (median of {ROUNDS}): {text:.1} ms wall, {text_cpu:.1} ms CPU; \
         --json {json:.1} ms wall, {json_cpu:.1} ms CPU"
    );
    println!(
        "  baselines in the same run, wall/CPU: mt-ps {ps:.1}/{ps_cpu:.1} ms, \
         mt-task list {list:.1}/{list_cpu:.1} ms, mt-worktree list {wt:.1}/{wt_cpu:.1} ms; \
         mt-status against their sum: {:.2}x wall, {:.2}x CPU",
        text / (ps + list + wt),
        text_cpu / (ps_cpu + list_cpu + wt_cpu)
    );
}
