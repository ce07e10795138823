//! mt-sync's files in the state directory (`sync/`, see mt-files(5)):
//! `LOCK` (one exchange at a time), `host.json` (which host this state
//! directory is), `channels.json` (how far each channel was exported and
//! imported), `tasks.json` (the last agreed version of each task).
//! Each is replaced atomically, so a killed exchange leaves the previous
//! version, and every step is arranged so that an old version only makes
//! the next exchange look again, never apply anything twice.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::channel::Position;
use crate::exit::{CONFIG, fail};
use crate::infra::{fsutil, lock};
use crate::statedir::StateDir;

pub fn dir(state: &StateDir) -> PathBuf {
    state.root().join("sync")
}

/// Whether this state directory takes part in mt-sync (an exchange has
/// run here): claims then go through the remote.
pub fn enabled(state: &StateDir) -> bool {
    dir(state).join("host.json").is_file()
}

/// Hold the exchange lock; it is released when the file is dropped.
pub fn lock(state: &StateDir) -> Result<File> {
    state.ensure()?;
    fsutil::ensure_subdir(&dir(state))?;
    lock::exclusive(&dir(state).join("LOCK"))
}

/// Which host this state directory is. The instance tells two machines
/// that were given the same name apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub host: String,
    pub instance: String,
}

impl Identity {
    /// The identity recorded here, or a new one for `host` on first use.
    /// A state directory keeps its name: a different one later would
    /// publish its records a second time under the new name.
    pub fn establish(state: &StateDir, host: &str) -> Result<Identity> {
        let path = dir(state).join("host.json");
        if let Some(me) = read_json::<Identity>(&path)? {
            if me.host != host {
                return Err(fail(
                    CONFIG,
                    format!(
                        "this repository syncs as host {} (see {}), but the settings say {}; a host keeps its name (set host back, or use a new clone for a new name)",
                        me.host,
                        path.display(),
                        host
                    ),
                ));
            }
            return Ok(me);
        }
        let me = Identity {
            host: host.to_string(),
            instance: crate::infra::id::new_id(chrono::Utc::now().timestamp_millis().max(0) as u64),
        };
        fsutil::write_json(&path, &me)?;
        Ok(me)
    }

    pub fn load(state: &StateDir) -> Result<Option<Identity>> {
        read_json(&dir(state).join("host.json"))
    }
}

/// A channel position as stored.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
    pub seq: u64,
}

impl From<Position> for Pos {
    fn from(p: Position) -> Pos {
        Pos {
            segment: p.segment,
            offset: p.offset,
            seq: p.seq,
        }
    }
}

impl From<Pos> for Position {
    fn from(p: Pos) -> Position {
        Position {
            segment: p.segment,
            offset: p.offset,
            seq: p.seq,
        }
    }
}

/// How far one channel was exchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelState {
    /// Every record of this host before here is published.
    #[serde(default)]
    pub export: Pos,
    /// `seen` accounts for every imported record before here.
    #[serde(default)]
    pub import: Pos,
    /// Per host, the largest origin seq imported into this channel.
    #[serde(default)]
    pub seen: BTreeMap<String, u64>,
    /// The largest seq of this host's that the remote took: a published
    /// log that says less went back (a restored remote), and publishing
    /// starts again from there.
    #[serde(default)]
    pub published: u64,
}

/// `channels.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Channels {
    /// Per host, the newest commit of its log whose records are all
    /// imported (a starting point; `seen` is what prevents doubles).
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelState>,
}

impl Channels {
    pub fn load(state: &StateDir) -> Result<Channels> {
        Ok(read_json(&dir(state).join("channels.json"))?.unwrap_or_default())
    }

    /// Write `channels.json` unless it holds this already (an idle
    /// exchange writes nothing).
    pub fn save(&self, state: &StateDir) -> Result<()> {
        write_if_changed(&dir(state).join("channels.json"), self)
    }
}

/// One task as last agreed with the remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskBase {
    /// The remote commit of that version.
    pub commit: String,
    /// A hash of the local file as it was then: a different file was
    /// changed here since.
    pub hash: String,
}

/// `tasks.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    #[serde(default)]
    pub tasks: BTreeMap<u64, TaskBase>,
}

impl Tasks {
    pub fn load(state: &StateDir) -> Result<Tasks> {
        Ok(read_json(&dir(state).join("tasks.json"))?.unwrap_or_default())
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        write_if_changed(&dir(state).join("tasks.json"), self)
    }
}

/// `hosts.json`: the other hosts' coworkers as last fetched, for mt-ps
/// --all-hosts and mt-route, which read it without touching git.
pub type Hosts = BTreeMap<String, Vec<super::status::Row>>;

pub fn load_hosts(state: &StateDir) -> Result<Hosts> {
    Ok(read_json(&dir(state).join("hosts.json"))?.unwrap_or_default())
}

/// Write `hosts.json` when it changed.
pub fn save_hosts(state: &StateDir, hosts: &Hosts) -> Result<()> {
    write_if_changed(&dir(state).join("hosts.json"), hosts)
}

/// Whether `name` is a coworker on another host, as last synced.
pub fn is_remote_agent(state: &StateDir, name: &str) -> bool {
    load_hosts(state)
        .map(|h| h.values().flatten().any(|r| r.name == name))
        .unwrap_or(false)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    fsutil::read_json(path, "move it away and mt-sync starts that part over")
}

fn write_if_changed<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = fsutil::json_bytes(v)?;
    if fsutil::read_regular(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    fsutil::write_atomic(path, &bytes, fsutil::fsync_enabled())
}
