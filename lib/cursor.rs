//! Reader cursors: `cursors/<agent>/<channel>.json`, one per reader and
//! channel, replaced atomically and only after what they cover was output.
//!
//! ```json
//! {"seq":42,"segment":1,"offset":8812,"updated_at":"2026-11-21T19:40:01.123Z"}
//! ```
//!
//! A per-agent lock (`cursors/<agent>/LOCK`) is held from loading a cursor to
//! saving it, so two readers acting as the same agent never both deliver the
//! same records.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::channel::Position;
use crate::exit::{DATAERR, fail};
use crate::infra::fsutil;
use crate::infra::lock;
use crate::infra::time;
use crate::statedir::StateDir;

#[derive(Debug, Serialize, Deserialize)]
pub struct CursorFile {
    pub seq: u64,
    pub segment: u64,
    pub offset: u64,
    #[serde(default)]
    pub updated_at: String,
}

pub fn path(state: &StateDir, agent: &str, channel: &str) -> PathBuf {
    state.cursors(agent).join(format!("{channel}.json"))
}

/// Take the agent's reader lock, creating its cursor directory if needed.
pub fn lock_agent(state: &StateDir, agent: &str) -> Result<File> {
    state.ensure()?;
    fsutil::ensure_subdir(&state.root().join("cursors"))?;
    let dir = state.cursors(agent);
    fsutil::ensure_subdir(&dir)?;
    lock::exclusive(&dir.join("LOCK"))
}

/// The saved position, or `None` for a reader that has read nothing yet.
pub fn load(state: &StateDir, agent: &str, channel: &str) -> Result<Option<Position>> {
    let p = path(state, agent, channel);
    let text = match fsutil::read_regular(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Err(fail(
                DATAERR,
                format!("cursor {} is unusable: {e}; remove it", p.display()),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read cursor {}", p.display())),
    };
    let c: CursorFile = serde_json::from_slice(&text).map_err(|e| {
        fail(
            DATAERR,
            format!(
                "cursor {} does not parse ({e}); remove it to read the channel from the start",
                p.display()
            ),
        )
    })?;
    Ok(Some(Position {
        segment: c.segment,
        offset: c.offset,
        seq: c.seq,
    }))
}

/// Save a position; the caller holds the agent lock and has flushed output.
pub fn save(state: &StateDir, agent: &str, channel: &str, pos: Position) -> Result<()> {
    let c = CursorFile {
        seq: pos.seq,
        segment: pos.segment,
        offset: pos.offset,
        updated_at: time::now_stamp(),
    };
    let mut data = serde_json::to_vec(&c)?;
    data.push(b'\n');
    fsutil::write_atomic(&path(state, agent, channel), &data, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let _l = lock_agent(&st, "york").unwrap();
        assert_eq!(load(&st, "york", "general").unwrap(), None);
        let pos = Position {
            segment: 1,
            offset: 99,
            seq: 7,
        };
        save(&st, "york", "general", pos).unwrap();
        assert_eq!(load(&st, "york", "general").unwrap(), Some(pos));
        std::fs::write(path(&st, "york", "general"), "{oops").unwrap();
        let e = load(&st, "york", "general").unwrap_err();
        assert_eq!(crate::exit::code_of(&e), DATAERR);
    }
}
