//! Which GitHub repository the pull requests belong to: `--repo` (or
//! `$GH_REPO`, gh's own variable), else the repository's remote that points
//! at github.com, read from its configuration with libgit2 (no `git`
//! process).

use anyhow::Result;
use std::path::Path;

use crate::exit::{DATAERR, fail};

/// `OWNER/NAME` or `HOST/OWNER/NAME`, as gh's `--repo` takes it.
pub fn check_repo(s: &str) -> Result<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = matches!(parts.len(), 2 | 3)
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if !ok {
        return Err(fail(
            DATAERR,
            format!(
                "--repo {}: not OWNER/NAME (or HOST/OWNER/NAME)",
                crate::names::quote(s)
            ),
        ));
    }
    Ok(s.to_string())
}

/// `OWNER/NAME` when `url` is a github.com repository URL: https, ssh,
/// git or scp-like (`git@github.com:OWNER/NAME.git`).
pub fn github_repo_of(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git" | "git+ssh") {
            return None;
        }
        let (host, path) = rest.split_once('/')?;
        let host = host.rsplit('@').next()?;
        let host = host.split(':').next()?;
        is_github(host).then_some(path)?
    } else {
        // scp-like: [user@]host:path
        let (host, path) = url.split_once(':')?;
        if host.contains('/') {
            return None;
        }
        let host = host.rsplit('@').next()?;
        is_github(host).then_some(path)?
    };
    let rest = rest.trim_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let mut it = rest.split('/');
    let (owner, name) = (it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    check_repo(&format!("{owner}/{name}")).ok()
}

fn is_github(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    matches!(
        h.as_str(),
        "github.com" | "www.github.com" | "ssh.github.com"
    )
}

/// The GitHub repository of the git repository around `dir`: its remote
/// `origin` if that points at github.com, else `upstream`, else the first
/// other such remote by name. `None` outside a repository or when no
/// remote points at github.com. The URLs are read as configured, before
/// any `url.*.insteadOf` rewriting, which is what names the repository.
pub fn github_repo(dir: &Path) -> Result<Option<String>> {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return Ok(None);
    };
    let cfg = repo
        .config()
        .map_err(|e| anyhow::anyhow!("cannot read the git configuration: {e}"))?;
    let mut names: Vec<String> = repo
        .remotes()
        .map(|r| r.iter().flatten().flatten().map(str::to_string).collect())
        .unwrap_or_default();
    let rank = |n: &str| match n {
        "origin" => 0,
        "upstream" => 1,
        _ => 2,
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    for n in names {
        if let Ok(url) = cfg.get_string(&format!("remote.{n}.url"))
            && let Some(r) = github_repo_of(&url)
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_urls_in_every_form() {
        for url in [
            "https://github.com/acme/widgets.git",
            "https://github.com/acme/widgets",
            "https://user@github.com/acme/widgets/",
            "git@github.com:acme/widgets.git",
            "ssh://git@github.com/acme/widgets.git",
            "ssh://git@ssh.github.com:443/acme/widgets.git",
            "git://github.com/acme/widgets",
        ] {
            assert_eq!(
                github_repo_of(url).as_deref(),
                Some("acme/widgets"),
                "{url}"
            );
        }
        for url in [
            "https://gitlab.com/acme/widgets.git",
            "/srv/git/widgets.git",
            "../widgets",
            "file:///srv/github.com/acme/w",
            "https://github.com/acme",
            "https://github.com/acme/w/x",
            "git@github.com:../x",
        ] {
            assert_eq!(github_repo_of(url), None, "{url}");
        }
    }

    #[test]
    fn repo_arguments() {
        assert!(check_repo("acme/widgets").is_ok());
        assert!(check_repo("ghe.example.com/acme/widgets").is_ok());
        for bad in ["acme", "a/b/c/d", "a//b", "../b", "a/b c", ""] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
    }
}
