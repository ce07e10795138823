//! Helpers shared by the hardening suites (props_*, security, faults_*):
//! JSON generators, a deterministic random source, clean tool commands, a
//! small tmpfs, and a child umask.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether the long variants were asked for (`make check-long`).
pub fn long() -> bool {
    std::env::var_os("MT_LONG_TESTS").is_some()
}

/// Cases per property: a few dozen normally, many more for the long run.
pub fn cases(normal: u32) -> u32 {
    if long() { normal * 20 } else { normal }
}

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mt-post"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool with a clean environment rooted in `root`: state in
/// `root/state`, Claude Code's directory in `root/claude`, HOME in
/// `root/home`, no data syncs.
pub fn tool(name: &str, root: &Path) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .env("HOME", root.join("home"))
        .env("MT_DIR", root.join("state"))
        .env("CLAUDE_CONFIG_DIR", root.join("claude"))
        .env("MT_FSYNC", "0")
        .current_dir(root)
        .stdin(Stdio::null());
    c
}

/// Run the child with this umask.
pub fn with_umask(c: &mut Command, mask: u32) -> &mut Command {
    // SAFETY: umask(2) is async-signal-safe and touches no memory.
    unsafe {
        c.pre_exec(move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
            Ok(())
        });
    }
    c
}

/// A tiny deterministic generator, so a failing run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Keys the parsers look for, mixed with arbitrary ones.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "seq", "segment", "offset", "updated_at", "from", "text", "read",
            "timestamp", "owner", "status", "subject", "description", "blocks",
            "blockedBy", "hooks", "command", "type", "matcher", "taskId", "tool_name",
            "tool_input", "tool_response", "task", "success", "is_error", "error",
            "session_id", "stop_hook_active", "notification_type", "message",
        ])
        .prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "1",
            "3",
            "../x",
            "a/b",
            "York",
            "york",
            "team-lead",
            "in_progress",
            "completed",
            "pending",
            "TaskCreate",
            "TaskUpdate",
            "idle_prompt",
            "Task #12 created",
            "\u{1b}[31m",
            "$(touch pwned)",
            "`id`",
            "a\nb",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Any JSON object.
pub fn json_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    prop::collection::vec((key(), json()), 0..8).prop_map(|kv| kv.into_iter().collect())
}

/// Bytes that are often almost JSON: real JSON, JSON cut short, JSON with
/// a byte changed, or noise.
pub fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        (json(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            let cut = i.index(s.len() + 1);
            s[..cut].to_vec()
        }),
        (json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            if !s.is_empty() {
                let at = i.index(s.len());
                s[at] = b;
            }
            s
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Every path below `dir` (not `dir` itself), depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// A small tmpfs, unmounted on drop; `None` (with a message) where one
/// cannot be mounted.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            let _ = fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}
