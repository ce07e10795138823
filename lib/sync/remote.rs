//! The git remote the hosts share, reached through libgit2 only (no `git`
//! process).
//!
//! Everything mt-sync publishes lives under `refs/mt/` on the remote and is
//! mirrored into the same names locally by a fetch. Updates are
//! compare-and-swap: each names the value it expects the remote's ref to
//! hold (`None`: the ref must not exist) and is refused when the ref holds
//! anything else. Over the network the git server does the comparison:
//! libgit2 sends the value the server advertised as the command's old
//! value, receive-pack updates the ref only if it still holds it, and mt
//! checks that the advertised value is the one expected before anything is
//! sent. libgit2's own push to a path on disk overwrites without comparing,
//! so for those remotes mt writes the objects and updates the ref itself
//! with libgit2's compare-and-swap on the remote repository.

use anyhow::{Context, Result};
use git2::{
    CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, Oid, PushOptions,
    RemoteCallbacks, Repository,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::{CONFIG, Coded, TEMPFAIL, UNAVAILABLE, fail};

/// The namespace mt-sync owns, on the remote and in the local repository.
pub const NAMESPACE: &str = "refs/mt/";
/// Where new commits wait while they are pushed (network remotes only).
const OUTBOX: &str = "refs/mt-push/";

/// One compare-and-swap on the remote.
#[derive(Debug, Clone)]
pub struct Update {
    pub refname: String,
    /// The value the remote's ref must hold; `None`: it must not exist.
    pub old: Option<Oid>,
    pub new: Oid,
}

/// What became of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The remote's ref was not at the expected value (another host got
    /// there first) or the remote refused it for another reason.
    Refused(String),
}

/// A remote of the local repository.
pub struct Remote<'r> {
    repo: &'r Repository,
    name: String,
    url: String,
    /// The path of a remote on this machine's file system.
    local: Option<PathBuf>,
    timeout: Duration,
}

impl<'r> Remote<'r> {
    /// The remote `name` of `repo`; exit 69 when there is none.
    pub fn open(repo: &'r Repository, name: &str, timeout: Duration) -> Result<Remote<'r>> {
        let remote = repo.find_remote(name).map_err(|_| {
            fail(
                UNAVAILABLE,
                format!(
                    "this repository has no remote {}; mt-sync exchanges through a remote every host shares (git remote add {name} URL, or set sync-remote)",
                    crate::names::quote(name)
                ),
            )
        })?;
        let url = remote
            .url()
            .map_err(|_| fail(CONFIG, format!("the URL of remote {name} is not UTF-8")))?
            .to_string();
        let local = local_path(repo, &url);
        set_timeouts(timeout);
        Ok(Remote {
            repo,
            name: name.to_string(),
            url,
            local,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Mirror the remote's refs matching `patterns` (each under
    /// `refs/mt/`, `*` allowed) into the same local names.
    pub fn fetch(&self, patterns: &[&str]) -> Result<()> {
        if let Some(path) = &self.local {
            return self.fetch_local(path, patterns);
        }
        let specs: Vec<String> = patterns.iter().map(|p| format!("+{p}:{p}")).collect();
        let mut remote = self.repo.find_remote(&self.name)?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks());
        // Tags, FETCH_HEAD and the remote's HEAD are none of mt's business.
        opts.download_tags(git2::AutotagOption::None);
        opts.update_fetchhead(false);
        remote
            .fetch(&specs, Some(&mut opts), Some("mt-sync: fetch"))
            .map_err(|e| self.failure("fetch from", e))
    }

    /// A remote on this file system is read directly: the new objects are
    /// copied loose (libgit2's local transport would write one pack per
    /// fetch, and nothing here ever repacks them), then the refs are set.
    fn fetch_local(&self, path: &Path, patterns: &[&str]) -> Result<()> {
        let there = Repository::open(path).map_err(|e| self.failure("open", e))?;
        for pattern in patterns {
            for r in there
                .references_glob(pattern)
                .map_err(|e| self.failure("list the refs of", e))?
            {
                let r = r.map_err(|e| self.failure("read a ref of", e))?;
                let (Ok(name), Some(id)) = (r.name(), r.target()) else {
                    continue;
                };
                if local_ref(self.repo, name)? == Some(id) {
                    continue;
                }
                copy_objects(&there, self.repo, id)
                    .map_err(|e| self.failure("copy objects from", e))?;
                set_local_ref(self.repo, name, id)?;
            }
        }
        Ok(())
    }

    /// Apply `updates` on the remote, each a compare-and-swap of its own.
    pub fn push(&self, updates: &[Update]) -> Result<Vec<Outcome>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        match &self.local {
            Some(path) => self.push_local(path, updates),
            None => self.push_network(updates),
        }
    }

    fn push_local(&self, path: &Path, updates: &[Update]) -> Result<Vec<Outcome>> {
        let there = Repository::open(path).map_err(|e| self.failure("open", e))?;
        for u in updates {
            clear_remote_lock(&there, &u.refname);
        }
        for u in updates {
            copy_objects(self.repo, &there, u.new)
                .map_err(|e| self.failure("write objects to", e))?;
        }
        let mut out = Vec::with_capacity(updates.len());
        for u in updates {
            let done = match u.old {
                Some(old) => there.reference_matching(&u.refname, u.new, true, old, "mt-sync"),
                None => there.reference(&u.refname, u.new, false, "mt-sync"),
            };
            out.push(match done {
                Ok(_) => Outcome::Done,
                Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists) => {
                    Outcome::Refused("the remote's ref moved".into())
                }
                Err(e) if e.code() == ErrorCode::Locked => {
                    Outcome::Refused("the remote's ref is being updated".into())
                }
                Err(e) => return Err(self.failure("update a ref of", e)),
            });
        }
        Ok(out)
    }

    fn push_network(&self, updates: &[Update]) -> Result<Vec<Outcome>> {
        for (i, u) in updates.iter().enumerate() {
            self.repo
                .reference(&format!("{OUTBOX}{i}"), u.new, true, "mt-sync: to push")?;
        }
        let result = self.push_network_staged(updates);
        for i in 0..updates.len() {
            if let Ok(mut r) = self.repo.find_reference(&format!("{OUTBOX}{i}")) {
                let _ = r.delete();
            }
        }
        result
    }

    fn push_network_staged(&self, updates: &[Update]) -> Result<Vec<Outcome>> {
        let mut remote = self.repo.find_remote(&self.name)?;
        let mut conn = remote
            .connect_auth(Direction::Push, Some(callbacks()), None)
            .map_err(|e| self.failure("connect to", e))?;
        let advertised: HashMap<String, Oid> = conn
            .list()
            .map_err(|e| self.failure("list the refs of", e))?
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect();
        let mut out = vec![Outcome::Done; updates.len()];
        let mut specs = Vec::new();
        let mut expected: HashMap<String, Oid> = HashMap::new();
        for (i, u) in updates.iter().enumerate() {
            let now = advertised.get(&u.refname).copied();
            if now != u.old {
                out[i] = Outcome::Refused("the remote's ref moved".into());
                continue;
            }
            // Forced on our side: the server's check against the old value
            // is the one that counts, and it is the value expected.
            specs.push(format!("+{OUTBOX}{i}:{}", u.refname));
            expected.insert(u.refname.clone(), u.old.unwrap_or(Oid::ZERO_SHA1));
        }
        if specs.is_empty() {
            return Ok(out);
        }
        let refused: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        let mut cbs = callbacks();
        cbs.push_negotiation(|ups| {
            for up in ups {
                let dst = up.dst_refname().unwrap_or("");
                if expected.get(dst) != Some(&up.src()) {
                    return Err(git2::Error::from_str("the remote's refs moved"));
                }
            }
            Ok(())
        });
        cbs.push_update_reference(|name, status| {
            if let Some(why) = status {
                refused
                    .borrow_mut()
                    .insert(name.to_string(), why.to_string());
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cbs);
        let pushed = conn.remote().push(&specs, Some(&mut opts));
        drop(opts);
        if let Err(e) = pushed {
            if e.message().contains("refs moved") {
                for (i, u) in updates.iter().enumerate() {
                    if expected.contains_key(&u.refname) {
                        out[i] = Outcome::Refused("the remote's ref moved".into());
                    }
                }
                return Ok(out);
            }
            return Err(self.failure("push to", e));
        }
        let refused = refused.into_inner();
        for (i, u) in updates.iter().enumerate() {
            if let Some(why) = refused.get(&u.refname) {
                out[i] = Outcome::Refused(why.clone());
            }
        }
        Ok(out)
    }

    /// A libgit2 error as mt-sync reports it: 75 (try again) for anything
    /// that may pass (network, time-outs, locks), 69 when the remote
    /// refused our credentials.
    fn failure(&self, what: &str, e: git2::Error) -> anyhow::Error {
        let unsupported = e.message().contains("unsupported URL protocol");
        let code = if unsupported || e.code() == ErrorCode::Auth || e.class() == ErrorClass::Ssh {
            UNAVAILABLE
        } else {
            TEMPFAIL
        };
        let msg = format!(
            "cannot {what} remote {} ({}): {}",
            self.name,
            self.url,
            e.message().trim()
        );
        let hint = if code == TEMPFAIL {
            format!("; try again (time-out {}s)", self.timeout.as_secs())
        } else {
            String::new()
        };
        fail(code, format!("{msg}{hint}"))
    }
}

/// How old a lock file of a shared ref must be to count as left by a
/// killed writer: a ref update takes milliseconds.
const STALE: Duration = Duration::from_secs(60);

/// Remove the lock files an exchange killed half way may have left in the
/// local repository. Only mt-sync, holding sync/LOCK as the caller does,
/// writes refs under refs/mt/ and refs/mt-push/ here, so any lock file
/// there is stale; `shallow.lock` (libgit2's fetch takes it) only when the
/// repository is not shallow and the lock is old.
pub fn clear_stale_locks(repo: &Repository) {
    let common = repo.commondir();
    for sub in ["refs/mt", "refs/mt-push"] {
        remove_locks(&common.join(sub), None);
    }
    // A fetch killed while indexing a pack it received.
    remove_locks(&common.join("objects/pack"), Some(STALE));
    let shallow = common.join("shallow.lock");
    if !repo.is_shallow() && is_older(&shallow, STALE) {
        let _ = std::fs::remove_file(shallow);
    }
}

/// Remove the lock file of `refname` on a remote on this file system when
/// a killed writer left it: at once for this host's own refs would need
/// knowing the host here, so by age for every ref.
fn clear_remote_lock(there: &Repository, refname: &str) {
    let lock = there.commondir().join(format!("{refname}.lock"));
    if is_older(&lock, STALE) {
        let _ = std::fs::remove_file(lock);
    }
}

fn is_older(path: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e >= age)
}

/// Every `*.lock` file under `dir` (older than `age`, when given).
fn remove_locks(dir: &Path, age: Option<Duration>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => remove_locks(&p, age),
            Ok(t)
                if t.is_file()
                    && p.extension().is_some_and(|x| x == "lock")
                    && age.is_none_or(|a| is_older(&p, a)) =>
            {
                let _ = std::fs::remove_file(&p);
            }
            _ => {}
        }
    }
}

/// Copy the commit `tip` and whatever it needs that `to` lacks, loose.
/// Commits are written oldest first, each after its tree, so a commit in
/// `to` always has its whole history there, even after a crash.
fn copy_objects(from: &Repository, to: &Repository, tip: Oid) -> Result<(), git2::Error> {
    let (src, dst) = (from.odb()?, to.odb()?);
    let mut commits = Vec::new();
    let mut met = std::collections::HashSet::new();
    let mut stack = vec![tip];
    while let Some(c) = stack.pop() {
        if !met.insert(c) || dst.exists(c) {
            continue;
        }
        commits.push(c);
        stack.extend(from.find_commit(c)?.parent_ids());
    }
    for &c in commits.iter().rev() {
        copy_tree(from, &src, &dst, from.find_commit(c)?.tree_id())?;
        let obj = src.read(c)?;
        dst.write(obj.kind(), obj.data())?;
    }
    Ok(())
}

fn copy_tree(
    from: &Repository,
    src: &git2::Odb<'_>,
    dst: &git2::Odb<'_>,
    tree: Oid,
) -> Result<(), git2::Error> {
    if dst.exists(tree) {
        return Ok(());
    }
    for e in from.find_tree(tree)?.iter() {
        match e.kind() {
            Some(git2::ObjectType::Tree) => copy_tree(from, src, dst, e.id())?,
            _ if dst.exists(e.id()) => {}
            _ => {
                let obj = src.read(e.id())?;
                dst.write(obj.kind(), obj.data())?;
            }
        }
    }
    let obj = src.read(tree)?;
    dst.write(obj.kind(), obj.data())?;
    Ok(())
}

/// The file system path of a remote URL that names one (a path, or
/// `file://`); `None` for network URLs (`host:path` included).
fn local_path(repo: &Repository, url: &str) -> Option<PathBuf> {
    let path = if let Some(p) = url.strip_prefix("file://") {
        PathBuf::from(p)
    } else if url.contains("://") {
        return None;
    } else {
        // scp-like `host:path`: a colon before any slash.
        let colon = url.find(':');
        let slash = url.find('/');
        if let Some(c) = colon
            && slash.is_none_or(|s| c < s)
        {
            return None;
        }
        PathBuf::from(url)
    };
    if path.is_absolute() {
        return Some(path);
    }
    // Relative to the working tree, as git takes it.
    let base = repo
        .workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.path().to_path_buf());
    Some(base.join(path))
}

/// Credentials without starting a program: ssh-agent for ssh,
/// `$MT_SYNC_TOKEN` as the password for https.
fn callbacks<'a>() -> RemoteCallbacks<'a> {
    let mut cbs = RemoteCallbacks::new();
    let mut tries = 0;
    cbs.credentials(move |url, user, allowed| {
        tries += 1;
        if tries > 3 {
            return Err(git2::Error::from_str("no credentials the remote accepts"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return git2::Cred::ssh_key_from_agent(user.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Ok(token) = std::env::var("MT_SYNC_TOKEN")
        {
            return git2::Cred::userpass_plaintext(user.unwrap_or("x-access-token"), &token);
        }
        let _ = url;
        git2::Cred::default()
    });
    cbs
}

/// libgit2's time-outs are process-wide; every mt-sync call sets the same.
fn set_timeouts(t: Duration) {
    let ms = t.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: these only store an integer in libgit2's global settings;
    // mt-sync sets them before any transfer starts.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

/// The commit a local ref points at, if it exists.
pub fn local_ref(repo: &Repository, name: &str) -> Result<Option<Oid>> {
    match repo.refname_to_id(name) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read ref {name}")),
    }
}

/// Point a local ref at `id` after the remote took it, so the mirror is
/// current before the next fetch.
pub fn set_local_ref(repo: &Repository, name: &str, id: Oid) -> Result<()> {
    repo.reference(name, id, true, "mt-sync: pushed")
        .with_context(|| format!("cannot update ref {name}"))
        .code(crate::exit::CANTCREAT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_urls_name_a_path_here() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let top = repo.workdir().unwrap().to_path_buf();
        assert_eq!(
            local_path(&repo, "/srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        assert_eq!(
            local_path(&repo, "file:///srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        assert_eq!(local_path(&repo, "../x.git"), Some(top.join("../x.git")));
        for net in [
            "git@github.com:o/r.git",
            "https://github.com/o/r.git",
            "ssh://git@host/r.git",
            "git://127.0.0.1:9418/r.git",
            "host:r.git",
        ] {
            assert_eq!(local_path(&repo, net), None, "{net}");
        }
    }

    #[test]
    fn only_lock_files_are_removed_and_shared_ones_only_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let refs = repo.commondir().join("refs/mt/log");
        std::fs::create_dir_all(&refs).unwrap();
        std::fs::write(refs.join("a.lock"), "").unwrap();
        std::fs::write(refs.join("a"), "").unwrap();
        let pack = repo.commondir().join("objects/pack");
        std::fs::create_dir_all(&pack).unwrap();
        std::fs::write(pack.join("new.idx.lock"), "").unwrap();
        clear_stale_locks(&repo);
        assert!(!refs.join("a.lock").exists());
        assert!(refs.join("a").exists());
        assert!(
            pack.join("new.idx.lock").exists(),
            "a fresh pack lock is kept"
        );
    }
}
