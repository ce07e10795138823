//! Claude Code settings files (settings.json): adding and removing mt's hook
//! entries, and the settings mt gives an agent it starts. Named after the
//! file it edits, not after hooks: the hook handler is `delivery`, the
//! installer command `cli::hooks` (mt-hooks).
//!
//! A settings file is a JSON object; its `hooks` object maps an event name to
//! a list of matcher groups, each with a list of handlers:
//!
//! ```json
//! {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/usr/local/share/mt/hooks/stop", "timeout": 10}]}]}}
//! ```
//!
//! A handler runs mt's hook in one of two forms (`Source`): one of the sh
//! scripts that `make install` puts in PREFIX/share/mt/hooks, or the `mt-hook`
//! binary itself with the event as its argument (`/path/to/mt-hook stop`),
//! which needs nothing installed beside the binary.
//!
//! mt's handlers are recognised by their command: the path of one of mt's hook
//! scripts, either in the hooks directory being installed or in any
//! `…/mt/hooks/` directory (an install from another prefix), or an absolute
//! path to a binary named `mt-hook` followed by one of mt's events and nothing
//! else. Everything else in the file — other keys, other events, other groups
//! and handlers, their order — is kept as it is.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::fsutil;

/// One hook mt installs.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Claude Code's name of the event.
    pub event: &'static str,
    /// The script's name, and mt-hook's name of the event.
    pub script: &'static str,
    pub matcher: Option<&'static str>,
    /// Whether a headless agent needs it (`hooks_for_agent`).
    pub headless: bool,
}

/// mt's hooks, in the order they are written.
pub const ENTRIES: &[Entry] = &[
    Entry {
        event: "SessionStart",
        script: "session-start",
        matcher: None,
        headless: true,
    },
    Entry {
        event: "UserPromptSubmit",
        script: "user-prompt-submit",
        matcher: None,
        headless: true,
    },
    Entry {
        event: "Stop",
        script: "stop",
        matcher: None,
        headless: true,
    },
    Entry {
        event: "PostToolUse",
        script: "post-tool-use",
        // Every tool: a tool call restarts the Stop block count (mt-hook(1)).
        matcher: Some("*"),
        headless: true,
    },
    Entry {
        event: "Notification",
        script: "notification",
        matcher: Some("idle_prompt"),
        // Claude Code sends Notification to interactive sessions only.
        headless: false,
    },
];

/// Seconds Claude Code waits for one of our hooks (they take milliseconds;
/// this only bounds a hook stuck on a lock).
pub const TIMEOUT: u64 = 10;

/// A path as a shell word: bare when it is plain, else single-quoted.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The inverse of `shell_word` for what it produces; other commands are
/// returned as they are.
fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        t[1..t.len() - 1].replace(r"'\''", "'")
    } else {
        t.to_string()
    }
}

/// What a handler of mt's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The hook scripts in this directory: `DIR/stop`.
    Scripts(&'a Path),
    /// This mt-hook binary, with the event as its argument: `BIN stop`.
    Binary(&'a Path),
}

impl<'a> From<&'a Path> for Source<'a> {
    /// A bare path is a hooks directory.
    fn from(dir: &'a Path) -> Source<'a> {
        Source::Scripts(dir)
    }
}

impl<'a> From<&'a PathBuf> for Source<'a> {
    fn from(dir: &'a PathBuf) -> Source<'a> {
        Source::Scripts(dir)
    }
}

fn command(src: Source<'_>, e: &Entry) -> String {
    match src {
        Source::Scripts(dir) => shell_word(&dir.join(e.script).to_string_lossy()),
        Source::Binary(bin) => format!("{} {}", shell_word(&bin.to_string_lossy()), e.script),
    }
}

/// The group mt adds for one entry.
fn group(src: Source<'_>, e: &Entry) -> Value {
    let handler = json!({"type": "command", "command": command(src, e), "timeout": TIMEOUT});
    let mut g = Map::new();
    if let Some(m) = e.matcher {
        g.insert("matcher".into(), Value::String(m.into()));
    }
    g.insert("hooks".into(), Value::Array(vec![handler]));
    Value::Object(g)
}

fn hooks_object<'e>(src: Source<'_>, entries: impl Iterator<Item = &'e Entry>) -> Value {
    let mut hooks = Map::new();
    for e in entries {
        hooks.insert(e.event.into(), Value::Array(vec![group(src, e)]));
    }
    json!({ "hooks": hooks })
}

/// `{"hooks": {...}}` with every mt entry: what `mt-hooks print` shows.
pub fn snippet<'a>(src: impl Into<Source<'a>>) -> Value {
    hooks_object(src.into(), ENTRIES.iter())
}

/// `{"hooks": {...}}` for one headless agent (`claude -p --settings FILE`):
/// SessionStart, UserPromptSubmit, Stop, and PostToolUse for every tool, each
/// running `mt_hook EVENT` directly, so no hook script need be installed.
/// `mt_hook` should be absolute: Claude Code runs hooks in the session's
/// directory. The agent's identity comes from the hook's environment
/// (MT_AGENT, MT_CHANNEL, MT_DIR, ...), which Claude Code passes on.
pub fn hooks_for_agent(mt_hook: &Path) -> Value {
    hooks_object(
        Source::Binary(mt_hook),
        ENTRIES.iter().filter(|e| e.headless),
    )
}

/// Settings' `env` object: variables Claude Code sets for the session's
/// tools and hooks.
pub fn env_object(vars: &[(String, std::ffi::OsString)]) -> Value {
    let env: serde_json::Map<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned().into()))
        .collect();
    Value::Object(env)
}

/// The hooks `mt-lead` gives the lead's interactive session: the agent's,
/// and Notification, which only interactive sessions raise.
pub fn hooks_for_lead(mt_hook: &Path) -> Value {
    hooks_object(Source::Binary(mt_hook), ENTRIES.iter())
}

/// Whether a command is `BIN EVENT` as `command` writes it, for an absolute
/// BIN named mt-hook and one of mt's events.
fn is_direct(cmd: &str) -> bool {
    let Some((word, event)) = cmd.trim().rsplit_once(' ') else {
        return false;
    };
    if !ENTRIES.iter().any(|e| e.script == event) {
        return false;
    }
    let bin = unquote(word);
    let path = Path::new(&bin);
    shell_word(&bin) == word
        && path.is_absolute()
        && path.file_name().is_some_and(|n| n == "mt-hook")
}

/// Whether a handler runs one of mt's hook scripts, or mt-hook directly.
fn is_ours(handler: &Value, src: Source<'_>) -> bool {
    let Some(cmd) = handler.get("command").and_then(Value::as_str) else {
        return false;
    };
    if is_direct(cmd) {
        return true;
    }
    let path = PathBuf::from(unquote(cmd));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !ENTRIES.iter().any(|e| e.script == name) {
        return false;
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    Source::Scripts(dir) == src || dir.ends_with("mt/hooks")
}

fn group_has_ours(g: &Value, src: Source<'_>) -> bool {
    g.get("hooks")
        .and_then(Value::as_array)
        .is_some_and(|hs| hs.iter().any(|h| is_ours(h, src)))
}

/// The `hooks` object of a settings object, created when `create`.
fn hooks_of(settings: &mut Value, create: bool) -> Result<Option<&mut Map<String, Value>>> {
    let Value::Object(root) = settings else {
        return Err(fail(
            DATAERR,
            "the settings file does not hold a JSON object",
        ));
    };
    if !root.contains_key("hooks") {
        if !create {
            return Ok(None);
        }
        root.insert("hooks".into(), Value::Object(Map::new()));
    }
    match root.get_mut("hooks") {
        Some(Value::Object(h)) => Ok(Some(h)),
        _ => Err(fail(
            DATAERR,
            "\"hooks\" in the settings file is not a JSON object",
        )),
    }
}

/// Remove mt's handlers from one event's groups. A group left with no
/// handler by this is removed; groups that were empty before stay.
fn strip(groups: &mut Vec<Value>, src: Source<'_>) -> bool {
    let before = groups.clone();
    groups.retain_mut(|g| {
        if !group_has_ours(g, src) {
            return true;
        }
        let hs = g
            .get_mut("hooks")
            .and_then(Value::as_array_mut)
            .expect("checked");
        hs.retain(|h| !is_ours(h, src));
        !hs.is_empty()
    });
    *groups != before
}

/// Add mt's entries. An event that already holds exactly our group, and no
/// other handler of ours, is left alone, so a second install changes
/// nothing; stale handlers of ours (another prefix, the other form, an older
/// matcher) are replaced. Returns whether anything changed.
pub fn install<'a>(settings: &mut Value, src: impl Into<Source<'a>>) -> Result<bool> {
    let src = src.into();
    let hooks = hooks_of(settings, true)?.expect("created");
    let mut changed = false;
    for e in ENTRIES {
        let want = group(src, e);
        if !hooks.contains_key(e.event) {
            hooks.insert(e.event.into(), Value::Array(Vec::new()));
        }
        let Some(Value::Array(groups)) = hooks.get_mut(e.event) else {
            return Err(fail(
                DATAERR,
                format!("hooks.{} in the settings file is not a list", e.event),
            ));
        };
        let ours: Vec<&Value> = groups.iter().filter(|g| group_has_ours(g, src)).collect();
        if ours.len() == 1 && *ours[0] == want {
            continue;
        }
        strip(groups, src);
        groups.push(want);
        changed = true;
    }
    Ok(changed)
}

/// Remove mt's handlers everywhere in `hooks`, and the groups, event lists
/// and `hooks` object that this leaves empty. Returns whether anything
/// changed.
pub fn uninstall<'a>(settings: &mut Value, src: impl Into<Source<'a>>) -> Result<bool> {
    let src = src.into();
    let Some(hooks) = hooks_of(settings, false)? else {
        return Ok(false);
    };
    let mut changed = false;
    let mut emptied = Vec::new();
    for (event, groups) in hooks.iter_mut() {
        if let Value::Array(groups) = groups
            && strip(groups, src)
        {
            changed = true;
            if groups.is_empty() {
                emptied.push(event.clone());
            }
        }
    }
    for event in &emptied {
        hooks.shift_remove(event);
    }
    if !emptied.is_empty()
        && hooks.is_empty()
        && let Value::Object(root) = settings
    {
        root.shift_remove("hooks");
    }
    Ok(changed)
}

/// Read a settings file: a missing or empty file is `{}`; one that does not
/// parse is an error (and is left untouched).
pub fn load(path: &Path) -> Result<Value> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(json!({})),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        fail(
            DATAERR,
            format!(
                "{} is not valid JSON ({e}); leaving it alone",
                path.display()
            ),
        )
    })?;
    if !v.is_object() {
        return Err(fail(
            DATAERR,
            format!("{} does not hold a JSON object", path.display()),
        ));
    }
    Ok(v)
}

/// Replace a settings file atomically, written as Claude Code writes it
/// (two-space indentation). A symlink is followed, so the file it points to
/// is the one replaced; an existing file keeps its mode, a new one is 0600
/// like every file mt creates (settings may come to hold secrets in `env`).
pub fn save(path: &Path, settings: &Value) -> Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        Err(_) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            fsutil::ensure_dir(dir)?;
            // The directory may be a symlink too (dotfiles): write where it
            // points, since the atomic write refuses a symlinked directory.
            let name = path.file_name().unwrap_or_default();
            fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| path.to_path_buf())
        }
    };
    let mode = fs::metadata(&target)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(fsutil::FILE_MODE);
    let mut data = serde_json::to_vec_pretty(settings)?;
    data.push(b'\n');
    fsutil::write_atomic(&target, &data, true)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", target.display()))
        .code(CANTCREAT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_follows_a_symlinked_file_or_directory() {
        let d = tempfile::tempdir().unwrap();
        let dotfiles = d.path().join("dotfiles");
        fs::create_dir(&dotfiles).unwrap();
        std::os::unix::fs::symlink(&dotfiles, d.path().join(".claude")).unwrap();
        let p = d.path().join(".claude/settings.json");
        save(&p, &json!({"a": 1})).unwrap();
        assert!(
            fs::symlink_metadata(dotfiles.join("settings.json"))
                .unwrap()
                .is_file()
        );
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::os::unix::fs::symlink(dotfiles.join("settings.json"), d.path().join("s.json"))
            .unwrap();
        save(&d.path().join("s.json"), &json!({"b": 2})).unwrap();
        assert!(
            fs::symlink_metadata(d.path().join("s.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(load(&p).unwrap(), json!({"b": 2}));
    }

    #[test]
    fn shell_words_round_trip() {
        assert_eq!(
            shell_word("/usr/local/share/mt/hooks/stop"),
            "/usr/local/share/mt/hooks/stop"
        );
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(unquote(&shell_word("/a b/it's")), "/a b/it's");
    }

    #[test]
    fn recognises_our_handlers_only() {
        let dir = Path::new("/opt/x/hooks");
        let h = |c: &str| json!({"type": "command", "command": c});
        let src = Source::Scripts(dir);
        assert!(is_ours(&h("/opt/x/hooks/stop"), src));
        assert!(is_ours(&h("/usr/share/mt/hooks/post-tool-use"), src));
        assert!(is_ours(&h("'/home/a b/.local/share/mt/hooks/stop'"), src));
        assert!(!is_ours(&h("/opt/x/hooks/other"), src));
        assert!(!is_ours(&h("/usr/bin/stop"), src));
        assert!(!is_ours(&h("/opt/x/hooks/stop --flag"), src));
        assert!(!is_ours(&json!({"type": "command"}), src));
    }

    #[test]
    fn recognises_mt_hook_run_directly() {
        let dir = Path::new("/opt/x/hooks");
        let h = |c: &str| json!({"type": "command", "command": c});
        assert!(is_ours(&h("/usr/local/bin/mt-hook stop"), dir.into()));
        assert!(is_ours(
            &h("'/home/a b/bin/mt-hook' post-tool-use"),
            dir.into()
        ));
        assert!(!is_ours(&h("mt-hook stop"), dir.into()));
        assert!(!is_ours(&h("/usr/bin/mt-hook stop --wake all"), dir.into()));
        assert!(!is_ours(&h("/usr/bin/mt-hook other"), dir.into()));
        assert!(!is_ours(&h("/usr/bin/mt-hooks stop"), dir.into()));
        assert!(!is_ours(&h("/a b/mt-hook stop"), dir.into()));
        let bin = Path::new("/a b/it's/mt-hook");
        for e in ENTRIES {
            assert!(is_ours(&h(&command(Source::Binary(bin), e)), dir.into()));
        }
    }

    #[test]
    fn hooks_for_agent_runs_mt_hook_for_the_headless_events() {
        let v = hooks_for_agent(Path::new("/p/bin/mt-hook"));
        assert_eq!(
            v,
            json!({"hooks": {
                "SessionStart": [{"hooks": [{"type": "command", "command": "/p/bin/mt-hook session-start", "timeout": 10}]}],
                "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "/p/bin/mt-hook user-prompt-submit", "timeout": 10}]}],
                "Stop": [{"hooks": [{"type": "command", "command": "/p/bin/mt-hook stop", "timeout": 10}]}],
                "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "/p/bin/mt-hook post-tool-use", "timeout": 10}]}]
            }})
        );
    }

    #[test]
    fn install_is_idempotent_and_uninstall_restores() {
        let dir = Path::new("/p/share/mt/hooks");
        let orig = json!({"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}, "z": 1});
        let mut s = orig.clone();
        assert!(install(&mut s, dir).unwrap());
        let once = s.clone();
        assert!(!install(&mut s, dir).unwrap());
        assert_eq!(s, once);
        assert_eq!(s["hooks"]["Stop"].as_array().unwrap().len(), 2);
        // Another prefix replaces ours instead of adding a second set.
        assert!(install(&mut s, Path::new("/q/share/mt/hooks")).unwrap());
        assert_eq!(s["hooks"]["Stop"].as_array().unwrap().len(), 2);
        assert!(uninstall(&mut s, dir).unwrap());
        assert_eq!(s, orig);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            serde_json::to_string(&orig).unwrap()
        );
        assert!(!uninstall(&mut s, dir).unwrap());
    }
}
