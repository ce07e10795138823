//! Auth profiles: which account an agent talks to the model with. A
//! profile is either a Claude Code configuration directory (its own login)
//! or an API key with an optional base URL (an Anthropic-compatible
//! endpoint). Profiles are the user's, not a repository's: they live in
//! `<config home>/profiles/NAME.toml` (directory 0700, files 0600, replaced
//! atomically), and agents record only the name (`meta.json` `profile`), so
//! the key is read from the file at every start and never lands in the
//! state directory.
//!
//! The default profile is the `profile` setting (see `config`): the
//! global settings file's, unless `$MT_PROFILE` or the project's settings
//! name another.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::fsutil;
use crate::names;

/// The variable that picks the profile of new agents, before the default.
pub const ENV: &str = "MT_PROFILE";

/// Variables that choose an account or an endpoint. An agent with a
/// profile gets none of the caller's: a key or token left in the caller's
/// environment would win over the profile's login, and a base URL would
/// send the profile's key elsewhere.
pub const AUTH_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
];

/// The profiles directory, `<config home>/profiles`.
pub fn dir() -> Result<PathBuf> {
    Ok(crate::config::config_home()?.join("profiles"))
}

/// How a profile authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// A Claude Code configuration directory (`CLAUDE_CONFIG_DIR`).
    ConfigDir(PathBuf),
    /// An API key, and the endpoint when not Anthropic's own.
    ApiKey {
        key: String,
        base_url: Option<String>,
    },
}

// Never shows the key, whoever prints a profile.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ConfigDir(d) => f.debug_tuple("ConfigDir").field(d).finish(),
            Auth::ApiKey { base_url, .. } => f
                .debug_struct("ApiKey")
                .field("key", &"<hidden>")
                .field("base_url", base_url)
                .finish(),
        }
    }
}

impl Auth {
    /// `config-dir` or `api-key`.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::ConfigDir(_) => "config-dir",
            Auth::ApiKey { .. } => "api-key",
        }
    }
}

/// A profile file as stored: exactly one of `config_dir` and `api_key`.
/// Unknown keys are ignored (a newer version may add some).
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Stored {
    #[serde(skip_serializing_if = "Option::is_none")]
    config_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
}

const HEADER: &str =
    "# An mt auth profile (see mt-profile(1)). Keep it private: it may hold a key.\n";

/// The file of profile `name` (checked).
pub fn path(name: &str) -> Result<PathBuf> {
    names::check("profile", name)?;
    Ok(dir()?.join(format!("{name}.toml")))
}

fn unknown(name: &str) -> anyhow::Error {
    fail(
        DATAERR,
        format!("no profile named {name} (see mt-profile list)"),
    )
}

/// Profile `name`, read now (exit 65 when there is none or it does not
/// parse). Errors never quote the file: it may hold a key.
pub fn load(name: &str) -> Result<Auth> {
    let p = path(name)?;
    let data = match fsutil::read_regular(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(name)),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read {}", p.display()))
                .code(DATAERR);
        }
    };
    parse(&data).map_err(|why| fail(DATAERR, format!("{}: {why}", p.display())))
}

/// A profile file's content, or why it is not one. The reason names a
/// line, never the text on it.
fn parse(data: &[u8]) -> std::result::Result<Auth, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    let s: Stored = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("does not parse (line {line})")
        }
        None => "does not parse".to_string(),
    })?;
    match (s.config_dir, s.api_key) {
        (Some(d), None) if s.base_url.is_none() => Ok(Auth::ConfigDir(d)),
        (None, Some(key)) => {
            check_key(&key).map_err(|e| e.to_string())?;
            if let Some(u) = &s.base_url {
                check_url(u).map_err(|e| e.to_string())?;
            }
            Ok(Auth::ApiKey {
                key,
                base_url: s.base_url,
            })
        }
        (Some(_), None) => Err("base_url goes with api_key, not config_dir".into()),
        (Some(_), Some(_)) => Err("holds both config_dir and api_key".into()),
        (None, None) => Err("holds neither config_dir nor api_key".into()),
    }
}

/// A key as it may be stored: not empty, one line of printable ASCII.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(fail(DATAERR, "the API key is empty"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail(
            DATAERR,
            "the API key holds spaces, control or non-ASCII characters",
        ));
    }
    Ok(())
}

/// A base URL: http:// or https://, printable, no spaces.
pub fn check_url(url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(fail(
            DATAERR,
            format!(
                "invalid base URL {}: it must start with http:// or https://",
                names::quote(url)
            ),
        ));
    }
    Ok(())
}

/// Create the profiles directory (0700), and narrow it to 0700 when it
/// exists with more.
fn ensure_dir() -> Result<PathBuf> {
    let d = dir()?;
    fsutil::ensure_dir(&d)?;
    let m = std::fs::symlink_metadata(&d)
        .with_context(|| format!("cannot read {}", d.display()))
        .code(CANTCREAT)?;
    if !m.is_dir() {
        return Err(fail(
            CANTCREAT,
            format!("{} is not a directory", d.display()),
        ));
    }
    if m.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(fsutil::DIR_MODE))
            .with_context(|| format!("cannot make {} private", d.display()))
            .code(CANTCREAT)?;
    }
    Ok(d)
}

/// Write profile `name`: a temporary file created 0600, then renamed over
/// the old one, so the key is never readable by others, not even for an
/// instant, and a reader sees the old profile or the new one.
pub fn save(name: &str, auth: &Auth) -> Result<()> {
    let p = path(name)?;
    ensure_dir()?;
    let stored = match auth {
        Auth::ConfigDir(d) => Stored {
            config_dir: Some(d.clone()),
            ..Stored::default()
        },
        Auth::ApiKey { key, base_url } => Stored {
            api_key: Some(key.clone()),
            base_url: base_url.clone(),
            ..Stored::default()
        },
    };
    let body = toml::to_string(&stored).context("cannot encode the profile")?;
    let data = format!("{HEADER}{body}");
    fsutil::write_atomic(&p, data.as_bytes(), fsutil::fsync_enabled())
}

/// Whether profile `name` exists.
pub fn exists(name: &str) -> Result<bool> {
    Ok(path(name)?.is_file())
}

/// Remove profile `name` (exit 65 when there is none); the default is
/// cleared when it named it.
pub fn remove(name: &str) -> Result<()> {
    let p = path(name)?;
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(name)),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove {}", p.display()))
                .code(CANTCREAT);
        }
    }
    if default_name()?.as_deref() == Some(name) {
        set_default(None)?;
    }
    Ok(())
}

/// The names of the stored profiles, sorted.
pub fn names() -> Result<Vec<String>> {
    let d = dir()?;
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", d.display())),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent?;
        let file = ent.file_name();
        if let Some(n) = file.to_str().and_then(|f| f.strip_suffix(".toml"))
            && names::is_valid(n)
            && ent.file_type()?.is_file()
        {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// The global settings file, where `mt-profile use` writes.
fn global_settings() -> Result<PathBuf> {
    Ok(crate::config::config_home()?.join("config.toml"))
}

/// The default profile: the `profile` key of the global settings file.
pub fn default_name() -> Result<Option<String>> {
    let s = crate::config::Settings::from_files(Some(&global_settings()?), None, &|_| None)?;
    Ok(s.text("profile"))
}

/// Set (or with `None` clear) the default profile, in the global
/// settings file.
pub fn set_default(name: Option<&str>) -> Result<()> {
    if let Some(n) = name {
        names::check("profile", n)?;
    }
    crate::config::write_key(&global_settings()?, "profile", name)
}

/// The profile a new agent gets when none is named, and where that comes
/// from (`env`, `project`, `global`): the `profile` setting.
pub fn in_force() -> Result<Option<(String, &'static str)>> {
    let s = crate::config::Settings::load()?;
    let layer = s.entry("profile").source.layer();
    Ok(s.text("profile").map(|n| (n, layer)))
}

/// What an agent's process environment gets from its profile: variables
/// to remove and to set, and a directory the sandbox must leave writable.
/// Built at each start from the profile file; never written anywhere.
#[derive(Clone, Default)]
pub struct AgentAuth {
    remove: Vec<&'static str>,
    set: Vec<(&'static str, OsString)>,
    /// The profile's Claude Code directory, if it has one.
    pub config_dir: Option<PathBuf>,
}

impl fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = self.set.iter().map(|(k, _)| *k).collect();
        f.debug_struct("AgentAuth")
            .field("remove", &self.remove)
            .field("set", &set)
            .field("config_dir", &self.config_dir)
            .finish()
    }
}

impl AgentAuth {
    /// The environment profile `name` gives (nothing without a profile).
    /// A configuration directory must exist: without it Claude Code would
    /// start logged out.
    pub fn of(name: Option<&str>) -> Result<AgentAuth> {
        let Some(name) = name else {
            return Ok(AgentAuth::default());
        };
        let mut a = AgentAuth {
            remove: AUTH_VARS.to_vec(),
            ..AgentAuth::default()
        };
        match load(name)? {
            Auth::ConfigDir(d) => {
                if !d.is_dir() {
                    return Err(fail(
                        DATAERR,
                        format!(
                            "profile {name}: its Claude Code directory {} does not exist",
                            d.display()
                        ),
                    ));
                }
                a.set.push(("CLAUDE_CONFIG_DIR", d.clone().into()));
                a.config_dir = Some(d);
            }
            Auth::ApiKey { key, base_url } => {
                a.set.push(("ANTHROPIC_API_KEY", key.into()));
                if let Some(u) = base_url {
                    a.set.push(("ANTHROPIC_BASE_URL", u.into()));
                }
            }
        }
        Ok(a)
    }

    /// The variables it sets, with the API key's value hidden, for
    /// printing.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        self.set
            .iter()
            .map(|(k, v)| {
                let v = if *k == "ANTHROPIC_API_KEY" {
                    "(hidden)".to_string()
                } else {
                    v.to_string_lossy().into_owned()
                };
                (*k, v)
            })
            .collect()
    }

    /// Put it into the environment of `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        for k in &self.remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.set {
            cmd.env(k, v);
        }
    }
}

/// Read an API key from `r`: its first line, without the line end.
pub fn read_key(r: impl io::Read) -> Result<String> {
    let mut buf = Vec::new();
    r.take(64 << 10)
        .read_to_end(&mut buf)
        .context("cannot read the API key from standard input")?;
    let text = String::from_utf8(buf).map_err(|_| fail(DATAERR, "the API key is not UTF-8"))?;
    let key = text.lines().next().unwrap_or("").trim().to_string();
    if text.trim().lines().count() > 1 {
        return Err(fail(
            DATAERR,
            "expected one line (the API key) on standard input",
        ));
    }
    check_key(&key)?;
    Ok(key)
}

/// A directory as a profile stores it: absolute and existing.
pub fn config_dir_arg(d: &Path) -> Result<PathBuf> {
    let abs =
        std::fs::canonicalize(d).map_err(|e| fail(DATAERR, format!("{}: {e}", d.display())))?;
    if !abs.is_dir() {
        return Err(fail(DATAERR, format!("{} is not a directory", d.display())));
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_quote_the_file() {
        let e = parse(b"api_key = \"sk-secret-123\nbase_url = 1\n").unwrap_err();
        assert!(!e.contains("sk-secret"), "{e}");
        assert!(e.contains("line"), "{e}");
        let e = parse(b"api_key = \"sk secret\"\n").unwrap_err();
        assert!(!e.contains("sk secret"), "{e}");
        assert_eq!(
            parse(b"config_dir = \"/x\"\napi_key = \"k\"\n").unwrap_err(),
            "holds both config_dir and api_key"
        );
        assert!(parse(b"").is_err());
    }

    #[test]
    fn round_trip_and_debug_hides_the_key() {
        let a = Auth::ApiKey {
            key: "sk-abc".into(),
            base_url: Some("http://127.0.0.1:9".into()),
        };
        let s = Stored {
            api_key: Some("sk-abc".into()),
            base_url: Some("http://127.0.0.1:9".into()),
            ..Stored::default()
        };
        let text = toml::to_string(&s).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap(), a);
        assert!(!format!("{a:?}").contains("sk-abc"));
        assert_eq!(
            parse(b"config_dir = \"/c\"\nfuture = 1\n").unwrap(),
            Auth::ConfigDir("/c".into())
        );
    }

    #[test]
    fn keys_and_urls() {
        assert_eq!(read_key(&b"sk-1\n"[..]).unwrap(), "sk-1");
        assert!(read_key(&b"\n"[..]).is_err());
        assert!(read_key(&b"a\nb\n"[..]).is_err());
        assert!(check_url("https://api.example.com/v1").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
    }
}
