//! Archiving a channel whole: a marker file beside its segments.
//!
//! ```text
//! channels/<name>/ARCHIVED    {"archived_at":"2026-11-21T19:40:01.123Z","last_seq":42}
//! ```
//!
//! Nothing else changes: segments, seqs and cursors stay exactly as they
//! were, so every reader's position is as valid after `unarchive` as before
//! `archive`. The marker is written and removed under the channel's append
//! lock, and a writer checks for it (one stat) once it holds that lock, so
//! each post either lands before the archive or is refused after it: none
//! lands in an archived channel unseen, none vanishes.
//!
//! Posting to an archived channel is refused rather than unarchiving it:
//! archiving says the conversation is over, and a stray status record from
//! a script or a supervisor should not quietly reopen it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

use crate::exit::{CANTCREAT, Coded, NO, UNAVAILABLE, fail};
use crate::infra::fsutil;
use crate::infra::lock;
use crate::infra::time;
use crate::statedir::StateDir;

/// The marker's file name in the channel directory.
pub const MARKER: &str = "ARCHIVED";

/// What the marker says; readers only need it to exist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mark {
    /// When the channel was archived.
    pub archived_at: String,
    /// The channel's last seq then; no record has a greater one until it
    /// is unarchived.
    pub last_seq: u64,
}

/// Whether the channel directory `dir` carries the marker: one stat.
pub fn marked(dir: &Path) -> bool {
    dir.join(MARKER).symlink_metadata().is_ok()
}

/// Whether the channel `name` is archived: one stat, for listings and views.
pub fn is_archived(state: &StateDir, name: &str) -> bool {
    marked(&state.channel(name))
}

/// The marker of an archived channel, `None` when it is not archived.
/// A marker that does not parse still means archived, with no details.
pub fn mark(state: &StateDir, name: &str) -> Result<Option<Mark>> {
    let path = state.channel(name).join(MARKER);
    match fsutil::read_regular(&path) {
        Ok(text) => Ok(Some(serde_json::from_slice(&text).unwrap_or(Mark {
            archived_at: String::new(),
            last_seq: 0,
        }))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The error a writer gets for an archived channel (exit 69).
pub fn refusal(name: &str) -> anyhow::Error {
    fail(
        UNAVAILABLE,
        format!("channel {name} is archived; `mt-channels unarchive {name}` to post to it again"),
    )
}

/// An existing channel's directory, or exit 1 naming it.
fn existing(state: &StateDir, name: &str) -> Result<std::path::PathBuf> {
    crate::names::check("channel", name)?;
    let dir = state.channel(name);
    if !dir.is_dir() {
        return Err(fail(NO, format!("no channel {name}")));
    }
    Ok(dir)
}

/// Archive a channel: under its append lock, so no post is half-way. True
/// when it was not archived before (archiving twice changes nothing).
pub fn archive(state: &StateDir, name: &str) -> Result<bool> {
    let dir = existing(state, name)?;
    let _lock = lock::exclusive(&dir.join("LOCK"))?;
    if marked(&dir) {
        return Ok(false);
    }
    let mark = Mark {
        archived_at: time::now_stamp(),
        last_seq: super::end_position(state, name)?.seq,
    };
    let mut data = serde_json::to_vec(&mark)?;
    data.push(b'\n');
    // Durable before the lock goes: a post refused now stays refused after
    // a crash.
    fsutil::write_atomic(&dir.join(MARKER), &data, fsutil::fsync_enabled())
        .with_context(|| format!("cannot archive channel {name}"))
        .code(CANTCREAT)?;
    Ok(true)
}

/// Unarchive a channel: posts are taken again, with the next seq. True when
/// it was archived.
pub fn unarchive(state: &StateDir, name: &str) -> Result<bool> {
    let dir = existing(state, name)?;
    let _lock = lock::exclusive(&dir.join("LOCK"))?;
    match std::fs::remove_file(dir.join(MARKER)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot unarchive channel {name}"))
                .code(CANTCREAT);
        }
    }
    if fsutil::fsync_enabled() {
        fsutil::sync_dir(&dir)
            .with_context(|| format!("cannot sync {}", dir.display()))
            .code(CANTCREAT)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{self, Draft};
    use crate::exit::code_of;

    #[test]
    fn archive_refuses_posts_until_unarchived() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let draft = Draft {
            from: "lead".into(),
            kind: "text".into(),
            content: "hi".into(),
            ..Draft::default()
        };
        assert_eq!(code_of(&archive(&st, "g").unwrap_err()), NO, "no channel");
        channel::post(&st, "g", &draft).unwrap();
        assert!(!is_archived(&st, "g"));
        assert!(archive(&st, "g").unwrap());
        assert!(!archive(&st, "g").unwrap(), "twice is once");
        assert!(is_archived(&st, "g"));
        let m = mark(&st, "g").unwrap().unwrap();
        assert_eq!(m.last_seq, 1);
        let e = channel::post(&st, "g", &draft).unwrap_err();
        assert_eq!(code_of(&e), UNAVAILABLE);
        assert!(e.to_string().contains("mt-channels unarchive g"), "{e}");
        assert!(unarchive(&st, "g").unwrap());
        assert!(!unarchive(&st, "g").unwrap());
        assert_eq!(mark(&st, "g").unwrap(), None);
        let line = channel::post(&st, "g", &draft).unwrap();
        assert!(line.starts_with(r#"{"seq":2,"#), "{line}");
    }
}
