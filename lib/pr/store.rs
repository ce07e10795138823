//! mt-pr's files in the state directory:
//!
//! ```text
//! pr/LOCK         one pass at a time (flock; never replaced)
//! pr/state.json   what the last finished pass saw of each pull request
//! pr/intent.json  a pass's plan, written before it posts anything:
//!                 its records (each with a key), nudges and the state to
//!                 save; present only while a pass runs or after one died
//! pr/nudged       the keys of the plan's nudges sent so far, one a line
//!                 (appended: a whole plan is not rewritten per nudge)
//! ```
//!
//! Both JSON files are replaced whole by rename, so each is either the old
//! or the new content.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::changes::Entry;
use crate::exit::{CANTCREAT, Coded};
use crate::infra::{fsutil, lock};
use crate::statedir::StateDir;

/// What is kept between passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kept {
    /// The GitHub repository followed, `[HOST/]OWNER/NAME`.
    pub repo: String,
    /// When mt-pr began following it: pull requests that closed before are
    /// history, not news.
    pub since: String,
    /// When the last pass that saw a change finished.
    pub synced_at: String,
    /// By number.
    pub prs: BTreeMap<u64, Entry>,
}

/// A record a pass is about to post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Unique to this record; also in its `meta.pr.key`.
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    pub meta: Value,
}

/// A nudge a pass is about to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedNudge {
    pub to: String,
    pub text: String,
    /// The record (key) it goes with; noted in `pr/nudged` once sent.
    pub key: String,
}

/// A pass's plan, written before it posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub channel: String,
    /// The channel's last seq before the first record was posted: a record
    /// of this plan is after it, if it is anywhere.
    pub after_seq: u64,
    pub records: Vec<Planned>,
    pub nudges: Vec<PlannedNudge>,
    /// What to save once everything is posted.
    pub kept: Kept,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(state: &StateDir) -> Store {
        Store {
            dir: state.root().join("pr"),
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn intent_path(&self) -> PathBuf {
        self.dir.join("intent.json")
    }

    /// Take the pass lock, waiting up to `wait` (then exit 75).
    pub fn lock(&self, state: &StateDir, wait: Duration) -> Result<std::fs::File> {
        state.ensure()?;
        fsutil::ensure_subdir(&self.dir)?;
        lock::exclusive_within(&self.dir.join("LOCK"), wait)
    }

    /// What the last pass kept; `None` before the first.
    pub fn load(&self) -> Result<Option<Kept>> {
        read_json(&self.state_path())
    }

    pub fn save(&self, k: &Kept) -> Result<()> {
        fsutil::write_json(&self.state_path(), k)
    }

    pub fn intent(&self) -> Result<Option<Intent>> {
        read_json(&self.intent_path())
    }

    pub fn write_intent(&self, i: &Intent) -> Result<()> {
        let mut text = serde_json::to_vec(i)?;
        text.push(b'\n');
        fsutil::write_atomic(&self.intent_path(), &text, fsutil::fsync_enabled())
    }

    fn nudged_path(&self) -> PathBuf {
        self.dir.join("nudged")
    }

    /// The keys of the nudges sent for the current plan.
    pub fn nudged(&self) -> Result<std::collections::HashSet<String>> {
        match fsutil::read_regular(&self.nudged_path()) {
            Ok(b) => Ok(String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("cannot read {}", self.nudged_path().display()))),
        }
    }

    /// Note that the nudge of record `key` was sent: one appended line. Not
    /// synced: the nudge itself was, so a note lost to a crash only sends
    /// it again.
    pub fn note_nudged(&self, key: &str) -> Result<()> {
        use std::io::Write;
        let path = self.nudged_path();
        let res = (|| -> io::Result<()> {
            let mut f = fsutil::open_append(&path)?;
            f.write_all(format!("{key}\n").as_bytes())
        })();
        res.with_context(|| format!("cannot write {}", path.display()))
            .code(CANTCREAT)
    }

    pub fn clear_nudged(&self) -> Result<()> {
        remove(&self.nudged_path())
    }

    pub fn remove_intent(&self) -> Result<()> {
        remove(&self.intent_path())
    }
}

fn remove(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove {}", path.display()))),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Result<Option<T>> {
    fsutil::read_json(path, "move it aside to start afresh")
}
