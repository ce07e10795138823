//! Settings: what a team starts with, written once.
//!
//! Two TOML files hold them, the global one in the config home
//! (`$MT_CONFIG_HOME`, else `$XDG_CONFIG_HOME/mt`, else `~/.config/mt`) and
//! the project's, `.mt/config.toml` at the top of the repository's main
//! working tree, shared by every worktree. A value comes from the first of:
//! the tool's flag, its environment variable, the project file, the global
//! file, the built-in default. Flags and variables are the tools' own (clap
//! reads both); this module adds the files under them and says, for
//! `mt-config`, where each value came from.
//!
//! A file that cannot be read or does not parse, an unknown key or a value
//! of the wrong kind is an error naming the file and line: a typo must not
//! quietly become a default.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::exit::{CONFIG, fail};

/// The kind of value a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A list of strings; in the environment, comma or space separated.
    List,
    Count,
    /// A path; relative ones are taken from the directory of the file that
    /// names them.
    Path,
}

/// One setting: its key in the files, the variable that overrides them,
/// its default and what it is for.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// Every setting, in the order `mt-config` shows them.
pub const KEYS: &[Key] = &[
    Key {
        name: "agent-cmd",
        env: Some("MT_AGENT_CMD"),
        kind: Kind::Text,
        default: Some("claude"),
        help: "the program coworkers run (mt-spawn, mt-sling, mt-dispatch)",
    },
    Key {
        name: "lead-cmd",
        env: Some("MT_LEAD_CMD"),
        kind: Kind::Text,
        default: Some("claude"),
        help: "the program mt-lead runs for the lead's interactive session",
    },
    Key {
        name: "model",
        env: Some("MT_MODEL"),
        kind: Kind::Text,
        default: None,
        help: "the coworkers' model (--model); unset: Claude Code's default",
    },
    Key {
        name: "permission-mode",
        env: Some("MT_PERMISSION_MODE"),
        kind: Kind::Text,
        default: Some("acceptEdits"),
        help: "the coworkers' Claude Code permission mode",
    },
    Key {
        name: "allow",
        env: None,
        kind: Kind::List,
        default: None,
        help: "more Claude Code permission rules coworkers may use unasked",
    },
    Key {
        name: "permissions",
        env: Some("MT_PERMISSIONS"),
        kind: Kind::Path,
        default: None,
        help: "a JSON file with the coworkers' whole permissions object",
    },
    Key {
        name: "pool",
        env: Some("MT_POOL"),
        kind: Kind::List,
        default: None,
        help: "coworker names mt-sling and mt-dispatch pick from",
    },
    Key {
        name: "max-agents",
        env: Some("MT_MAX_AGENTS"),
        kind: Kind::Count,
        default: Some("4"),
        help: "the most coworkers mt-dispatch keeps running",
    },
    Key {
        name: "channel",
        env: Some("MT_CHANNEL"),
        kind: Kind::Text,
        default: Some("general"),
        help: "the team's channel: the lead's and every coworker's MT_CHANNEL",
    },
    Key {
        name: "rules",
        env: Some("MT_RULES"),
        kind: Kind::Path,
        default: None,
        help: "the watcher's rules file; unset: watch/rules in the state directory",
    },
    Key {
        name: "profile",
        env: Some("MT_PROFILE"),
        kind: Kind::Text,
        default: None,
        help: "the auth profile agents start with (see mt-profile)",
    },
    Key {
        name: "host",
        env: Some("MT_HOST"),
        kind: Kind::Text,
        default: None,
        help: "this machine's name in mt-sync (set it globally, not in the project file); unset: the hostname",
    },
    Key {
        name: "sync-remote",
        env: Some("MT_SYNC_REMOTE"),
        kind: Kind::Text,
        default: Some("origin"),
        help: "the git remote mt-sync exchanges channels and tasks through",
    },
];

/// A key by name.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// A value in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
    Count(u64),
    Path(PathBuf),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::List(l) => f.write_str(&l.join(",")),
            Value::Count(n) => write!(f, "{n}"),
            Value::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Value {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) => s.clone().into(),
            Value::List(l) => l.clone().into(),
            Value::Count(n) => (*n).into(),
            Value::Path(p) => p.to_string_lossy().into_owned().into(),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    Global { file: PathBuf, line: usize },
    Project { file: PathBuf, line: usize },
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Global { file, line } | Source::Project { file, line } => {
                write!(f, "{}:{line}", file.display())
            }
            Source::Env(v) => write!(f, "${v}"),
        }
    }
}

impl Source {
    /// A short word for the layer: default, global, project, env.
    pub fn layer(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Global { .. } => "global",
            Source::Project { .. } => "project",
            Source::Env(_) => "env",
        }
    }
}

/// One key's value in force (none: unset everywhere, no default).
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: &'static Key,
    pub value: Option<Value>,
    pub source: Source,
}

/// The settings in force for the repository around a directory.
#[derive(Debug, Clone)]
pub struct Settings {
    entries: Vec<Entry>,
    pub global_file: Option<PathBuf>,
    pub project_file: Option<PathBuf>,
}

/// The global config home: `$MT_CONFIG_HOME`, else `$XDG_CONFIG_HOME/mt`,
/// else `$HOME/.config/mt`.
pub fn config_home() -> Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("MT_CONFIG_HOME") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("mt"));
    }
    match var("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".config/mt")),
        None => Err(fail(
            CONFIG,
            "cannot find the config home: none of MT_CONFIG_HOME, XDG_CONFIG_HOME, HOME is set",
        )),
    }
}

/// The project's directory of mt files, `.mt` at the top of the main
/// working tree of the repository around `dir` (none outside a repository
/// or in a bare one).
pub fn project_dir(dir: &Path) -> Option<PathBuf> {
    let g = crate::statedir::discover_git(dir)?;
    let top = if g.common_dir.file_name().is_some_and(|n| n == ".git") {
        g.common_dir.parent()?.to_path_buf()
    } else if g.git_dir == g.common_dir {
        g.top
    } else {
        return None;
    };
    Some(top.join(".mt"))
}

impl Settings {
    /// The settings for the repository around the current directory.
    pub fn load() -> Result<Settings> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Settings::load_for(&cwd)
    }

    /// The settings for the repository around `dir`, with the environment.
    pub fn load_for(dir: &Path) -> Result<Settings> {
        let global = config_home().ok().map(|h| h.join("config.toml"));
        let project = project_dir(dir).map(|d| d.join("config.toml"));
        Settings::from_files(global.as_deref(), project.as_deref(), &|k| {
            std::env::var(k).ok()
        })
    }

    /// The settings from these files and this environment.
    pub fn from_files(
        global: Option<&Path>,
        project: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let g = match global {
            Some(p) => read_file(p)?,
            None => Vec::new(),
        };
        let p = match project {
            Some(p) => read_file(p)?,
            None => Vec::new(),
        };
        let mut entries = Vec::new();
        for key in KEYS {
            let from_env = key
                .env
                .and_then(|v| env(v).filter(|s| !s.trim().is_empty()).map(|s| (v, s)));
            let entry = if let Some((var, text)) = from_env {
                let value =
                    parse_env(key, &text).map_err(|e| fail(CONFIG, format!("${var}: {e}")))?;
                Entry {
                    key,
                    value: Some(value),
                    source: Source::Env(var),
                }
            } else if let Some((v, line)) = find(&p, key.name) {
                Entry {
                    key,
                    value: Some(v),
                    source: Source::Project {
                        file: project.unwrap().to_path_buf(),
                        line,
                    },
                }
            } else if let Some((v, line)) = find(&g, key.name) {
                Entry {
                    key,
                    value: Some(v),
                    source: Source::Global {
                        file: global.unwrap().to_path_buf(),
                        line,
                    },
                }
            } else {
                Entry {
                    key,
                    value: key
                        .default
                        .map(|d| parse_env(key, d).expect("valid default")),
                    source: Source::Default,
                }
            };
            entries.push(entry);
        }
        Ok(Settings {
            entries,
            global_file: global.map(Path::to_path_buf),
            project_file: project.map(Path::to_path_buf),
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entry(&self, name: &str) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.key.name == name)
            .unwrap_or_else(|| panic!("no setting {name}"))
    }

    /// A text or path setting, as text.
    pub fn text(&self, name: &str) -> Option<String> {
        match &self.entry(name).value {
            Some(Value::Text(s)) => Some(s.clone()),
            Some(Value::Path(p)) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        }
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match &self.entry(name).value {
            Some(Value::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    pub fn count(&self, name: &str) -> Option<u64> {
        match &self.entry(name).value {
            Some(Value::Count(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        match &self.entry(name).value {
            Some(Value::Path(p)) => Some(p.clone()),
            _ => None,
        }
    }

    /// Whether a value was set anywhere (not only defaulted).
    pub fn is_set(&self, name: &str) -> bool {
        self.entry(name).source != Source::Default
    }
}

/// The keys a settings file may hold, each with where its value starts.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileKeys {
    agent_cmd: Option<toml::Spanned<String>>,
    lead_cmd: Option<toml::Spanned<String>>,
    model: Option<toml::Spanned<String>>,
    permission_mode: Option<toml::Spanned<String>>,
    allow: Option<toml::Spanned<Vec<String>>>,
    permissions: Option<toml::Spanned<String>>,
    pool: Option<toml::Spanned<Vec<String>>>,
    max_agents: Option<toml::Spanned<i64>>,
    channel: Option<toml::Spanned<String>>,
    rules: Option<toml::Spanned<String>>,
    profile: Option<toml::Spanned<String>>,
}

/// A file's values with their lines; a missing file has none.
fn read_file(path: &Path) -> Result<Vec<(&'static str, Value, usize)>> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map_err(|_| fail(CONFIG, format!("{}: not UTF-8 text", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(CONFIG, format!("cannot read {}: {e}", path.display()))),
    };
    parse(path, &text)
}

/// Parse a settings file's text; errors name `path` and the line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(&'static str, Value, usize)>> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let keys: FileKeys = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(s.start)).unwrap_or(1);
        let msg = e
            .message()
            .trim_end_matches('.')
            .replace('\n', " ")
            .replace("unknown field", "unknown key")
            .replace("i64", "a whole number")
            .replace("a sequence", "a list");
        // A value of the wrong kind: say whose.
        let key = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| KEYS.iter().any(|x| x.name == *k) && msg.starts_with("invalid"));
        match key {
            Some(k) => fail(CONFIG, format!("{}:{line}: {k}: {msg}", path.display())),
            None => fail(CONFIG, format!("{}:{line}: {msg}", path.display())),
        }
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut add = |name: &'static str, span: std::ops::Range<usize>, v: Result<Value, String>| {
        let line = line_of(span.start);
        match v {
            Ok(v) => {
                out.push((name, v, line));
                Ok(())
            }
            Err(e) => Err(fail(
                CONFIG,
                format!("{}:{line}: {name}: {e}", path.display()),
            )),
        }
    };
    let text_key = |name: &'static str, s: &str| check(key(name).unwrap(), s).map(Value::Text);
    macro_rules! text {
        ($field:ident, $name:literal) => {
            if let Some(s) = keys.$field {
                add($name, s.span(), text_key($name, s.get_ref()))?;
            }
        };
    }
    text!(agent_cmd, "agent-cmd");
    text!(lead_cmd, "lead-cmd");
    text!(model, "model");
    text!(permission_mode, "permission-mode");
    text!(channel, "channel");
    text!(profile, "profile");
    if let Some(l) = keys.allow {
        let v = l.get_ref().clone();
        add("allow", l.span(), Ok(Value::List(v)))?;
    }
    if let Some(l) = keys.pool {
        let v = check_names(l.get_ref());
        add("pool", l.span(), v)?;
    }
    if let Some(n) = keys.max_agents {
        let v = match u64::try_from(*n.get_ref()) {
            Ok(c) if c > 0 => Ok(Value::Count(c)),
            _ => Err("must be a whole number above 0".to_string()),
        };
        add("max-agents", n.span(), v)?;
    }
    for (field, name) in [(keys.permissions, "permissions"), (keys.rules, "rules")] {
        if let Some(p) = field {
            let v = if p.get_ref().is_empty() {
                Err("must not be empty".to_string())
            } else {
                Ok(Value::Path(dir.join(p.get_ref())))
            };
            add(name, p.span(), v)?;
        }
    }
    Ok(out)
}

fn find(values: &[(&'static str, Value, usize)], name: &str) -> Option<(Value, usize)> {
    values
        .iter()
        .find(|(k, _, _)| *k == name)
        .map(|(_, v, l)| (v.clone(), *l))
}

/// A value from the environment (or a default), checked like a file's.
pub fn parse_env(key: &Key, text: &str) -> Result<Value, String> {
    match key.kind {
        Kind::Text => check(key, text.trim()).map(Value::Text),
        Kind::Path => Ok(Value::Path(PathBuf::from(text))),
        // Names split at commas and spaces; permission rules hold spaces, so
        // one rule per line.
        Kind::List if key.name == "pool" => check_names(
            &text
                .split([',', ' ', '\n'])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
        ),
        Kind::List => Ok(Value::List(
            text.lines()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )),
        Kind::Count => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Value::Count(n)),
            _ => Err(format!(
                "{}: {text:?} is not a whole number above 0",
                key.name
            )),
        },
    }
}

/// The checks a text value gets, so a bad one fails where it is written.
fn check(key: &Key, s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    match key.name {
        "permission-mode" if !crate::permissions::MODES.contains(&s) => Err(format!(
            "{s:?} is not a permission mode (one of {})",
            crate::permissions::MODES.join(", ")
        )),
        "channel" => crate::names::check("channel", s)
            .map(|_| s.to_string())
            .map_err(|e| e.to_string()),
        "profile" | "host" => crate::names::check(key.name, s)
            .map(|_| s.to_string())
            .map_err(|e| e.to_string()),
        _ => Ok(s.to_string()),
    }
}

fn check_names(names: &[String]) -> Result<Value, String> {
    if names.is_empty() {
        return Err("must name at least one agent".into());
    }
    for n in names {
        crate::names::check("agent", n).map_err(|e| e.to_string())?;
    }
    Ok(Value::List(names.to_vec()))
}

/// Set `name = value` in the settings file at `path` (created when
/// missing), keeping its comments and layout; `None` removes the key.
pub fn write_key(path: &Path, name: &str, value: Option<&str>) -> Result<()> {
    let key = key(name).ok_or_else(|| unknown_key(name))?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fail(CONFIG, format!("cannot read {}: {e}", path.display()))),
    };
    // The file must be valid before and after: never write over a broken one.
    parse(path, &text)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| fail(CONFIG, format!("{}: {e}", path.display())))?;
    match value {
        None => remove_keeping_comments(doc.as_table_mut(), name),
        Some(v) => {
            let parsed = parse_env(key, v).map_err(|e| fail(CONFIG, format!("{name}: {e}")))?;
            doc[name] = match parsed {
                Value::Text(s) => toml_edit::value(s),
                Value::Path(_) => toml_edit::value(v),
                Value::Count(n) => toml_edit::value(n as i64),
                Value::List(l) => {
                    let mut a = toml_edit::Array::new();
                    for s in l {
                        a.push(s);
                    }
                    toml_edit::value(a)
                }
            };
        }
    }
    let out = doc.to_string();
    parse(path, &out)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(CONFIG, format!("cannot create {}: {e}", dir.display())))?;
    }
    use std::os::unix::fs::PermissionsExt;
    // A settings file is shared like any other file of a project; keep the
    // mode it had.
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    crate::infra::fsutil::write_atomic(path, out.as_bytes(), true)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// Remove `name`, handing the comments above it to the key after it: a
/// comment above the first key is as often the file's as the key's.
fn remove_keeping_comments(table: &mut toml_edit::Table, name: &str) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    let Some(pos) = keys.iter().position(|k| k == name) else {
        return;
    };
    let prefix = |t: &toml_edit::Table, k: &str| -> String {
        t.key(k)
            .and_then(|k| k.leaf_decor().prefix())
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string()
    };
    let comments = prefix(table, name);
    table.remove(name);
    if comments.trim().is_empty() {
        return;
    }
    if let Some(next) = keys.get(pos + 1) {
        let joined = comments + &prefix(table, next);
        if let Some(mut k) = table.key_mut(next) {
            k.leaf_decor_mut().set_prefix(joined);
        }
    } else {
        let trailing = table
            .decor()
            .suffix()
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        table.decor_mut().set_suffix(comments + &trailing);
    }
}

pub fn unknown_key(name: &str) -> anyhow::Error {
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    fail(
        CONFIG,
        format!("no setting {name:?} (settings: {})", names.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<(&'static str, Value, usize)>> {
        parse(Path::new("/x/config.toml"), text)
    }

    #[test]
    fn values_and_their_lines() {
        let v = p(
            "# team\nmodel = \"opus\"\n\npool = [\"ada\", \"bo\"]\nmax-agents = 3\nrules = \"r\"\n",
        )
        .unwrap();
        assert_eq!(v[0], ("model", Value::Text("opus".into()), 2));
        assert_eq!(
            v[1],
            ("pool", Value::List(vec!["ada".into(), "bo".into()]), 4)
        );
        assert_eq!(v[2], ("max-agents", Value::Count(3), 5));
        assert_eq!(v[3], ("rules", Value::Path("/x/r".into()), 6));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = p("model = \"a\"\nmodle = \"b\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/x/config.toml:2:"), "{e}");
        assert!(e.contains("modle"), "{e}");
        let e = p("model = \"a\"\n\nmax-agents = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/x/config.toml:3:"), "{e}");
        let e = p("permission-mode = \"yolo\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/x/config.toml:1: permission-mode:"), "{e}");
        let e = p("channel = \"Bad Name\"").unwrap_err().to_string();
        assert!(e.contains(":1: channel"), "{e}");
        let e = p("max-agents = 0").unwrap_err().to_string();
        assert!(e.contains(":1: max-agents"), "{e}");
        let e = p("model = [").unwrap_err().to_string();
        assert!(e.starts_with("/x/config.toml:1:"), "{e}");
    }

    #[test]
    fn precedence_env_project_global_default() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("g.toml");
        let pr = d.path().join("p.toml");
        std::fs::write(&g, "model = \"g\"\nchannel = \"gc\"\nprofile = \"gp\"\n").unwrap();
        std::fs::write(&pr, "model = \"p\"\nchannel = \"pc\"\n").unwrap();
        let env = |k: &str| (k == "MT_CHANNEL").then(|| "ec".to_string());
        let s = Settings::from_files(Some(&g), Some(&pr), &env).unwrap();
        assert_eq!(s.text("model").as_deref(), Some("p"));
        assert_eq!(s.entry("model").source.layer(), "project");
        assert_eq!(s.text("channel").as_deref(), Some("ec"));
        assert_eq!(s.entry("channel").source, Source::Env("MT_CHANNEL"));
        assert_eq!(s.text("profile").as_deref(), Some("gp"));
        assert_eq!(
            s.entry("profile").source.to_string(),
            format!("{}:3", g.display())
        );
        assert_eq!(s.text("agent-cmd").as_deref(), Some("claude"));
        assert_eq!(s.entry("agent-cmd").source, Source::Default);
        assert_eq!(s.text("model"), Some("p".into()));
        assert!(s.text("rules").is_none());
    }

    #[test]
    fn write_key_keeps_comments_and_refuses_bad_values() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/config.toml");
        write_key(&f, "model", Some("opus")).unwrap();
        let mut t = std::fs::read_to_string(&f).unwrap();
        t.insert_str(0, "# mine\n");
        std::fs::write(&f, &t).unwrap();
        write_key(&f, "pool", Some("ada,bo")).unwrap();
        write_key(&f, "max-agents", Some("2")).unwrap();
        let t = std::fs::read_to_string(&f).unwrap();
        assert!(t.starts_with("# mine\nmodel = \"opus\"\n"), "{t}");
        assert!(t.contains("pool = [\"ada\", \"bo\"]"), "{t}");
        assert!(write_key(&f, "max-agents", Some("none")).is_err());
        assert!(write_key(&f, "nope", Some("x")).is_err());
        write_key(&f, "model", None).unwrap();
        let t = std::fs::read_to_string(&f).unwrap();
        assert!(!t.contains("opus") && t.contains("max-agents = 2"), "{t}");
    }
}
