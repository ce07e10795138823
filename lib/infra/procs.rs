//! Reading processes from /proc: enough to find what is left of an agent
//! after it died, without trusting pids found by name.
//!
//! Every process of an agent's run carries `MT_RUN=<run id>` in its
//! environment (the supervisor sets it; children inherit it). That finds
//! them wherever they went: Claude Code's Bash tool runs each command in a
//! session of its own, so neither the agent's process group nor its session
//! holds them, and once the supervisor is gone they are init's children.

use std::fs;

/// One process as /proc/<pid>/stat describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    /// R, S, D, Z, T, ...
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Clock ticks spent in user and kernel mode.
    pub utime: u64,
    pub stime: u64,
}

/// Parse the text of /proc/<pid>/stat. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(pid: i32, text: &str) -> Option<Proc> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) session(6) ... utime(14) stime(15).
    Some(Proc {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// The process `pid`, if it exists.
pub fn stat(pid: i32) -> Option<Proc> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Every process we can see.
pub fn all() -> Vec<Proc> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Whether `pid`'s environment holds `key=value` (false when unreadable).
pub fn environ_has(pid: i32, key: &str, value: &str) -> bool {
    let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{key}={value}");
    env.split(|&b| b == 0).any(|kv| kv == want.as_bytes())
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|p| p.state != 'Z' && p.state != 'X')
}

/// The variable that marks every process of an agent's run.
pub const RUN_VAR: &str = "MT_RUN";

/// Every live process other than ourselves whose environment holds
/// `MT_RUN=run`. A process that emptied its environment escapes this; only
/// processes we may read (our own user's) are seen.
pub fn marked(run: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    all()
        .into_iter()
        .filter(|p| p.pid != me && p.state != 'Z' && p.state != 'X')
        .filter(|p| environ_has(p.pid, RUN_VAR, run))
        .map(|p| p.pid)
        .collect()
}

/// The children of `pid`, from `/proc/PID/task/*/children`; `None` where
/// the kernel does not offer that file.
fn children(pid: i32) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut seen_file = false;
    for t in tasks.flatten() {
        let Ok(text) = fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        seen_file = true;
        out.extend(
            text.split_whitespace()
                .filter_map(|w| w.parse::<i32>().ok()),
        );
    }
    (seen_file || !std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(out)
}

/// Every live descendant of `root` (not `root` itself). Walks the
/// children files, which costs in proportion to the tree, not to the
/// machine; falls back to one scan of /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        let Some(kids) = children(p) else {
            return descendants_by_scan(root);
        };
        for k in kids {
            if !out.contains(&k) && k != root {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out.retain(|&p| alive(p));
    out
}

fn descendants_by_scan(root: i32) -> Vec<i32> {
    let procs = all();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for q in procs.iter().filter(|q| q.ppid == p && q.state != 'Z') {
            if !out.contains(&q.pid) {
                out.push(q.pid);
                todo.push(q.pid);
            }
        }
    }
    out
}

/// The name of the program `pid` runs (the file name of argv\[0\]).
pub fn program(pid: i32) -> Option<String> {
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmd.split(|&b| b == 0).next()?;
    let name = argv0.rsplit(|&b| b == b'/').next()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The live members of session `sid` other than ourselves: an agent calls
/// setsid, so its whole tree shares its pid as session id unless a
/// descendant made a session of its own.
pub fn session_members(sid: i32) -> Vec<i32> {
    let me = std::process::id() as i32;
    all()
        .into_iter()
        .filter(|p| p.sid == sid && p.pid != me && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// What is left of agent `name`'s session `sid` once its leader is gone:
/// members that still carry `MT_AGENT=name` and `MT_DIR=dir` in their
/// environment, so a reused session id can never name a stranger.
pub fn leftovers(sid: i32, name: &str, mt_dir: &str) -> Vec<i32> {
    session_members(sid)
        .into_iter()
        .filter(|&pid| environ_has(pid, "MT_AGENT", name) && environ_has(pid, "MT_DIR", mt_dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_odd_names() {
        let p = parse_stat(
            7,
            "7 (a) b (c)) S 1 7 7 0 -1 4194560 100 0 0 0 12 34 0 0 20 0 1 0 5 100 10",
        )
        .unwrap();
        assert_eq!((p.state, p.ppid, p.pgid, p.sid), ('S', 1, 7, 7));
        assert_eq!((p.utime, p.stime), (12, 34));
    }

    #[test]
    fn finds_descendants_through_the_tree() {
        use std::process::{Command, Stdio};
        // A shell with a child of its own: both are our descendants.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let sh_pid = sh.id() as i32;
        let mut found = Vec::new();
        for _ in 0..200 {
            found = descendants(me);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(found.contains(&sh_pid), "{found:?}");
        assert!(
            found
                .iter()
                .any(|&p| stat(p).is_some_and(|s| s.ppid == sh_pid))
        );
        assert_eq!(program(sh_pid).as_deref(), Some("sh"));
        let by_scan = descendants_by_scan(me);
        assert!(by_scan.contains(&sh_pid));
        for p in found.iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = sh.wait();
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id() as i32;
        let p = stat(me).unwrap();
        assert_eq!(p.pid, me);
        assert!(alive(me));
        assert!(all().iter().any(|q| q.pid == me));
    }
}
