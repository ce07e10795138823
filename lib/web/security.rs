//! Who may talk to the server, and which requests may change anything.
//!
//! - On a loopback address with no token asked for, any local process may
//!   read; the Host header must name the server itself, so a web page on
//!   another site cannot reach it through a rebound DNS name.
//! - Otherwise every request carries the access token: as a cookie the
//!   server set after one visit with `?token=`, or as a bearer header.
//! - Every request that changes something (POST) must come from the page
//!   itself: its Origin names this server, and it carries the anti-forgery
//!   token the page fetched from `/api/session` (a page on another site can
//!   neither read that answer nor set the header without a preflight).

use anyhow::{Context, Result};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::http::{Request, Response};
use crate::statedir::StateDir;

pub const TOKEN_COOKIE: &str = "mt_token";
pub const CSRF_HEADER: &str = "x-mt-csrf";

/// What the server checks, decided once at start.
pub struct Guard {
    /// Required on every request when set.
    pub token: Option<String>,
    /// The anti-forgery token the page sends with each POST.
    pub csrf: String,
    /// Host header values accepted without a token; their `http://` forms
    /// are the accepted Origins.
    pub hosts: Vec<String>,
}

/// 32 random bytes from the kernel, in hex.
pub fn random_hex() -> Result<String> {
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The secret kept in `state/web/NAME` (mode 0600), made on first use.
/// Returns it and whether it was just made.
pub fn secret(state: &StateDir, name: &str) -> Result<(String, bool)> {
    let dir = state.root().join("web");
    crate::infra::fsutil::ensure_subdir(&dir)?;
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok((t.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let value = random_hex()?;
    write_private(&path, &value)?;
    Ok((value, true))
}

fn write_private(path: &Path, value: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    writeln!(f, "{value}")?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Compare without leaking where two secrets differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// How a request stands with the access rules.
pub enum Access {
    Allowed,
    /// A visit with the right `?token=`: set the cookie and go to the page.
    SetCookie,
    Refused(Response),
}

impl Guard {
    pub fn check(&self, req: &Request) -> Access {
        let Some(token) = &self.token else {
            let host = req.header("host").unwrap_or("");
            if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Access::Refused(Response::error(421, "unknown Host"));
            }
            return Access::Allowed;
        };
        let bearer = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        let given = bearer.or_else(|| req.cookie(TOKEN_COOKIE));
        if given.is_some_and(|g| same(g, token)) {
            return Access::Allowed;
        }
        if req.method == "GET" && req.param("token").is_some_and(|g| same(&g, token)) {
            return Access::SetCookie;
        }
        Access::Refused(Response::error(401, "a token is required"))
    }

    /// Whether a request that changes something comes from the page.
    pub fn check_post(&self, req: &Request) -> Result<(), Response> {
        let origin_ok = match (req.header("origin"), req.header("host")) {
            (Some(o), Some(h)) => o.eq_ignore_ascii_case(&format!("http://{h}")),
            _ => false,
        };
        if !origin_ok {
            return Err(Response::error(403, "cross-origin request refused"));
        }
        if !req.header(CSRF_HEADER).is_some_and(|t| same(t, &self.csrf)) {
            return Err(Response::error(403, "missing or wrong anti-forgery token"));
        }
        if !req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return Err(Response::error(415, "send application/json"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_secrets() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
