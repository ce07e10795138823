//! `watch/state.json`: what the watcher remembers about each rule between
//! runs, replaced atomically after every change. `--once` decides what is
//! due from it alone.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::exit::{DATAERR, fail};
use crate::infra::fsutil;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuleState {
    /// The rule's trigger and command; state saved for another text is
    /// dropped.
    pub rule: String,
    /// Timer rules: the start of the current period (the last run, or the
    /// last skipped run, or when a cron rule was first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Change rules: the fingerprint the last run was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_end: Option<String>,
    /// Exit status of the last finished run (128 + N for signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    /// Process id while a run is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub failures: u64,
    /// Runs not started because the previous one was still running.
    #[serde(default)]
    pub skipped: u64,
    /// Consecutive failures; an error record is posted when it becomes 1.
    #[serde(default)]
    pub fail_streak: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
}

impl StateFile {
    /// Read the state; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<StateFile> {
        let text = match crate::infra::fsutil::read_regular(path) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateFile::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_str(&text).map_err(|e| {
            fail(
                DATAERR,
                format!("{} does not parse ({e}); fix or remove it", path.display()),
            )
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        fsutil::write_atomic(path, text.as_bytes(), false)
    }

    /// The state of a rule whose key is `key`, fresh if the saved one was
    /// for another rule text.
    pub fn entry(&mut self, name: &str, key: &str) -> &mut RuleState {
        let e = self.rules.entry(name.to_string()).or_default();
        if e.rule != key {
            *e = RuleState {
                rule: key.to_string(),
                ..RuleState::default()
            };
        }
        e
    }
}
