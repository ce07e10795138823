//! Claude Code settings files: adding and removing mt's hook entries.
//!
//! A settings file is a JSON object; its `hooks` object maps an event name to
//! a list of matcher groups, each with a list of handlers:
//!
//! ```json
//! {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/usr/local/share/mt/hooks/stop", "timeout": 10}]}]}}
//! ```
//!
//! mt's handlers are recognised by their command: the path of one of mt's hook
//! scripts, either in the hooks directory being installed or in any
//! `…/mt/hooks/` directory (an install from another prefix). Everything else in
//! the file — other keys, other events, other groups and handlers, their order
//! — is kept as it is.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::fsutil;

/// One hook mt installs.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub event: &'static str,
    pub script: &'static str,
    pub matcher: Option<&'static str>,
}

/// mt's hooks, in the order they are written.
pub const ENTRIES: &[Entry] = &[
    Entry {
        event: "SessionStart",
        script: "session-start",
        matcher: None,
    },
    Entry {
        event: "UserPromptSubmit",
        script: "user-prompt-submit",
        matcher: None,
    },
    Entry {
        event: "Stop",
        script: "stop",
        matcher: None,
    },
    Entry {
        event: "PostToolUse",
        script: "post-tool-use",
        matcher: Some("TaskCreate|TaskUpdate"),
    },
    Entry {
        event: "Notification",
        script: "notification",
        matcher: Some("idle_prompt"),
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

fn command(hooks_dir: &Path, e: &Entry) -> String {
    shell_word(&hooks_dir.join(e.script).to_string_lossy())
}

/// The group mt adds for one entry.
fn group(hooks_dir: &Path, e: &Entry) -> Value {
    let handler = json!({"type": "command", "command": command(hooks_dir, e), "timeout": TIMEOUT});
    let mut g = Map::new();
    if let Some(m) = e.matcher {
        g.insert("matcher".into(), Value::String(m.into()));
    }
    g.insert("hooks".into(), Value::Array(vec![handler]));
    Value::Object(g)
}

/// `{"hooks": {...}}` with every mt entry: what `mt-hooks print` shows.
pub fn snippet(hooks_dir: &Path) -> Value {
    let mut hooks = Map::new();
    for e in ENTRIES {
        hooks.insert(e.event.into(), Value::Array(vec![group(hooks_dir, e)]));
    }
    json!({ "hooks": hooks })
}

/// Whether a handler runs one of mt's hook scripts.
fn is_ours(handler: &Value, hooks_dir: &Path) -> bool {
    let Some(cmd) = handler.get("command").and_then(Value::as_str) else {
        return false;
    };
    let path = PathBuf::from(unquote(cmd));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !ENTRIES.iter().any(|e| e.script == name) {
        return false;
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    dir == hooks_dir || dir.ends_with("mt/hooks")
}

fn group_has_ours(g: &Value, hooks_dir: &Path) -> bool {
    g.get("hooks")
        .and_then(Value::as_array)
        .is_some_and(|hs| hs.iter().any(|h| is_ours(h, hooks_dir)))
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
fn strip(groups: &mut Vec<Value>, hooks_dir: &Path) -> bool {
    let before = groups.clone();
    groups.retain_mut(|g| {
        if !group_has_ours(g, hooks_dir) {
            return true;
        }
        let hs = g
            .get_mut("hooks")
            .and_then(Value::as_array_mut)
            .expect("checked");
        hs.retain(|h| !is_ours(h, hooks_dir));
        !hs.is_empty()
    });
    *groups != before
}

/// Add mt's entries. An event that already holds exactly our group, and no
/// other handler of ours, is left alone, so a second install changes
/// nothing; stale handlers of ours (another prefix) are replaced. Returns
/// whether anything changed.
pub fn install(settings: &mut Value, hooks_dir: &Path) -> Result<bool> {
    let hooks = hooks_of(settings, true)?.expect("created");
    let mut changed = false;
    for e in ENTRIES {
        let want = group(hooks_dir, e);
        if !hooks.contains_key(e.event) {
            hooks.insert(e.event.into(), Value::Array(Vec::new()));
        }
        let Some(Value::Array(groups)) = hooks.get_mut(e.event) else {
            return Err(fail(
                DATAERR,
                format!("hooks.{} in the settings file is not a list", e.event),
            ));
        };
        let ours: Vec<&Value> = groups
            .iter()
            .filter(|g| group_has_ours(g, hooks_dir))
            .collect();
        if ours.len() == 1 && *ours[0] == want {
            continue;
        }
        strip(groups, hooks_dir);
        groups.push(want);
        changed = true;
    }
    Ok(changed)
}

/// Remove mt's handlers everywhere in `hooks`, and the groups, event lists
/// and `hooks` object that this leaves empty. Returns whether anything
/// changed.
pub fn uninstall(settings: &mut Value, hooks_dir: &Path) -> Result<bool> {
    let Some(hooks) = hooks_of(settings, false)? else {
        return Ok(false);
    };
    let mut changed = false;
    let mut emptied = Vec::new();
    for (event, groups) in hooks.iter_mut() {
        if let Value::Array(groups) = groups
            && strip(groups, hooks_dir)
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
        assert!(is_ours(&h("/opt/x/hooks/stop"), dir));
        assert!(is_ours(&h("/usr/share/mt/hooks/post-tool-use"), dir));
        assert!(is_ours(&h("'/home/a b/.local/share/mt/hooks/stop'"), dir));
        assert!(!is_ours(&h("/opt/x/hooks/other"), dir));
        assert!(!is_ours(&h("/usr/bin/stop"), dir));
        assert!(!is_ours(&h("/opt/x/hooks/stop --flag"), dir));
        assert!(!is_ours(&json!({"type": "command"}), dir));
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
