//! Claude Code agent-teams mailboxes: per-agent inbox files and the team
//! config, under `$CLAUDE_CONFIG_DIR/teams/<team>/` (`~/.claude` when unset).
//!
//! An inbox is a JSON array of messages rewritten whole. Every change here
//! follows Claude Code's own writer, so the two exclude each other: create
//! the file as `[]` if missing (exclusive create), take the lock directory
//! `<agent>.json.lock` (see `dirlock`), re-read, change, replace the file by
//! atomic rename, release. Fields mt does not know are kept. An inbox that
//! does not parse is never rewritten: it is renamed aside to
//! `<agent>.json.corrupt-<time>` under the lock, and the caller is told.
//!
//! Claude Code writes these files with `JSON.stringify(x, null, 2)`, and mt
//! rewrites them the same way: serde_json's `preserve_order` keeps object
//! keys in document order (a changed key stays in place, a new one goes
//! last, a removed one must go with `shift_remove`), and `to_vec_pretty`
//! writes the same bytes as `JSON.stringify(x, null, 2)`: two-space indent,
//! `[]`/`{}` when empty, only `"`, `\` and control characters escaped (as
//! `\n` or lowercase `\u001b`), other text as is, no trailing newline.
//! Only numbers can come out differently, and only unusual ones: integers
//! beyond 64 bits but below 1e21 (JavaScript writes every digit, serde_json
//! an exponent), magnitudes from 1e-6 to 1e-5 (0.000001 against 1e-6), and
//! numbers JavaScript never writes, like `1.0` or `1e3` (JavaScript `1`,
//! `1000`; serde_json `1.0`, `1000.0`). Values are kept exactly
//! (`float_roundtrip`: without it a float could change in its last digit).

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::dirlock::{self, DEFAULT_WAIT};
use crate::infra::fsutil;
use crate::infra::time::now_stamp;
use crate::names;

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub from: String,
    pub text: String,
    pub summary: Option<String>,
    pub color: Option<String>,
}

impl NewMessage {
    /// The stored entry, fields in Claude Code's order.
    pub fn entry(&self, timestamp: &str) -> Value {
        let mut e = json!({
            "from": self.from,
            "text": self.text,
            "timestamp": timestamp,
            "read": false,
        });
        if let Some(c) = &self.color {
            e["color"] = json!(c);
        }
        if let Some(s) = &self.summary {
            e["summary"] = json!(s);
        }
        e
    }
}

/// What a change to an inbox did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages in the inbox afterwards.
    pub count: usize,
    /// Where an unparsable inbox was moved before this change.
    pub quarantined: Option<PathBuf>,
}

/// Claude Code's team directories, and how long writers wait for a lock.
#[derive(Debug, Clone)]
pub struct Mailbox {
    root: PathBuf,
    wait: Duration,
    durable: bool,
}

impl Mailbox {
    /// Teams under `config_dir` (Claude Code's configuration directory).
    pub fn new(config_dir: impl Into<PathBuf>) -> Mailbox {
        Mailbox {
            root: config_dir.into(),
            wait: DEFAULT_WAIT,
            durable: fsutil::fsync_enabled(),
        }
    }

    /// Teams under `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
    pub fn from_env() -> Result<Mailbox> {
        Ok(Mailbox::new(crate::statedir::claude_config_dir()?))
    }

    /// How long a writer waits for a busy lock before exit 75.
    pub fn with_wait(mut self, wait: Duration) -> Mailbox {
        self.wait = wait;
        self
    }

    /// Whether replaced files are synced to disk (default: unless MT_FSYNC=0).
    pub fn with_durable(mut self, durable: bool) -> Mailbox {
        self.durable = durable;
        self
    }

    /// `teams/<team>`, the name checked.
    pub fn team_dir(&self, team: &str) -> Result<PathBuf> {
        names::check_claude("team", team)?;
        Ok(self.root.join("teams").join(team))
    }

    /// `teams/<team>/inboxes/<agent>.json`, both names checked.
    pub fn inbox_path(&self, team: &str, agent: &str) -> Result<PathBuf> {
        let dir = self.team_dir(team)?;
        names::check_claude("agent", agent)?;
        Ok(dir.join("inboxes").join(format!("{agent}.json")))
    }

    /// `teams/<team>/config.json`.
    pub fn config_path(&self, team: &str) -> Result<PathBuf> {
        Ok(self.team_dir(team)?.join("config.json"))
    }

    /// Append one message to `agent`'s inbox in `team`; returns the outcome
    /// and the entry as stored.
    pub fn send(&self, team: &str, to: &str, msg: &NewMessage) -> Result<(Outcome, Value)> {
        let path = self.inbox_path(team, to)?;
        check_message(msg)?;
        let entry = msg.entry(&now_stamp());
        let out = self.edit(&path, |bytes, n| {
            Ok(Edit::Write(append(bytes, n, &entry)?, n + 1))
        })?;
        Ok((out, entry))
    }

    /// The messages of an inbox, without locking (files are replaced whole,
    /// so a reader sees one version or the other). A missing inbox is empty;
    /// one that does not parse is an error (exit 65).
    pub fn read(&self, team: &str, agent: &str) -> Result<Vec<Value>> {
        let path = self.inbox_path(team, agent)?;
        match read_if_exists(&path)? {
            None => Ok(Vec::new()),
            Some(bytes) => parse_inbox(&bytes).map_err(|why| {
                fail(
                    DATAERR,
                    format!(
                        "inbox {} does not parse ({why}); the next change to it moves it aside",
                        path.display()
                    ),
                )
            }),
        }
    }

    /// Under the inbox lock: pick messages with `select`, hand them to
    /// `deliver` (which prints them), and only when it succeeds mark them
    /// read. Returns the outcome and how many were delivered.
    pub fn take(
        &self,
        team: &str,
        agent: &str,
        select: impl Fn(&Value) -> bool,
        deliver: impl FnOnce(&[&Value]) -> Result<()>,
    ) -> Result<(Outcome, usize)> {
        let path = self.inbox_path(team, agent)?;
        // Reading must not create an inbox (nor its team directory).
        if fs::symlink_metadata(&path).is_err() {
            deliver(&[])?;
            return Ok((Outcome::default(), 0));
        }
        let mut taken = 0;
        let out = self.modify(&path, |list| {
            let picked: Vec<usize> = (0..list.len()).filter(|&i| select(&list[i])).collect();
            taken = picked.len();
            deliver(&picked.iter().map(|&i| &list[i]).collect::<Vec<_>>())?;
            let mut changed = false;
            for i in picked {
                if let Some(o) = list[i].as_object_mut()
                    && o.get("read") != Some(&Value::Bool(true))
                {
                    o.insert("read".into(), Value::Bool(true));
                    changed = true;
                }
            }
            Ok(changed)
        })?;
        Ok((out, taken))
    }

    /// Run `change` on an inbox's messages under its lock; write the result
    /// when it reports a change (or when a bad file was moved aside).
    pub fn modify(
        &self,
        path: &Path,
        change: impl FnOnce(&mut Vec<Value>) -> Result<bool>,
    ) -> Result<Outcome> {
        self.edit(path, |bytes, _| {
            let mut list = parse_inbox(&bytes).map_err(|why| fail(DATAERR, why))?;
            if !change(&mut list)? {
                return Ok(Edit::Keep(list.len()));
            }
            Ok(Edit::Write(serde_json::to_vec_pretty(&list)?, list.len()))
        })
    }

    /// The locked read-change-write cycle on raw bytes. `change` gets the
    /// inbox (checked to be an array; a bad one is moved aside first and
    /// `change` sees `[]`) and its length.
    fn edit(
        &self,
        path: &Path,
        change: impl FnOnce(Vec<u8>, usize) -> Result<Edit>,
    ) -> Result<Outcome> {
        let dir = path.parent().expect("inbox path has a parent");
        // Below Claude Code's directory, no symlink may carry the write away.
        fsutil::ensure_dir(&self.root)?;
        fsutil::ensure_subdirs(&self.root, dir)?;
        create_empty(path)?;
        let lock = dirlock::acquire(&dirlock::lock_path(path), self.wait)
            .with_context(|| format!("cannot lock inbox {}", path.display()))?;
        let mut out = Outcome::default();
        let mut bytes = read_if_exists(path)?.unwrap_or_default();
        let len = match count_inbox(&bytes) {
            Ok(n) => n,
            Err(_) => {
                out.quarantined = Some(quarantine(path)?);
                bytes = b"[]".to_vec();
                0
            }
        };
        let new = match change(bytes, len) {
            Ok(Edit::Keep(n)) if out.quarantined.is_some() => Some((b"[]".to_vec(), n)),
            Ok(Edit::Keep(n)) => {
                out.count = n;
                None
            }
            Ok(Edit::Write(b, n)) => Some((b, n)),
            Err(e) => {
                return Err(match &out.quarantined {
                    Some(q) => e.context(format!("the bad inbox was moved to {}", q.display())),
                    None => e,
                });
            }
        };
        if let Some((b, n)) = new {
            out.count = n;
            lock.verify()?;
            fsutil::write_atomic(path, &b, self.durable)?;
        }
        lock.release()?;
        Ok(out)
    }

    /// The members of a team, from its config (none when it has no config):
    /// objects, as stored.
    pub fn members(&self, team: &str) -> Result<Vec<Value>> {
        let path = self.config_path(team)?;
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(Vec::new());
        };
        let config = parse_config(&path, &bytes)?;
        Ok(member_list(&config)
            .iter()
            .filter(|m| m.is_object())
            .cloned()
            .collect())
    }

    /// Add a member to a team's config, or update the one of that name:
    /// given fields are set, others kept. A missing config is created.
    /// Returns the member as stored and whether it is new.
    pub fn upsert_member(&self, team: &str, m: &MemberUpdate) -> Result<(Value, bool)> {
        let path = self.config_path(team)?;
        names::check_claude("agent", &m.name)?;
        fsutil::ensure_dir(&self.root)?;
        fsutil::ensure_subdirs(&self.root, path.parent().expect("team dir"))?;
        let lock = dirlock::acquire(&dirlock::lock_path(&path), self.wait)
            .with_context(|| format!("cannot lock team config {}", path.display()))?;
        let mut config = match read_if_exists(&path)? {
            Some(bytes) => parse_config(&path, &bytes)?,
            None => json!({
                "name": team,
                "description": "",
                "createdAt": now_millis(),
                "members": [],
            }),
        };
        let members = config
            .as_object_mut()
            .expect("config is an object")
            .entry("members")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| {
                fail(
                    DATAERR,
                    format!("{}: \"members\" is not an array", path.display()),
                )
            })?;
        let found = members
            .iter()
            .position(|e| e.is_object() && e["name"] == m.name.as_str());
        let created = found.is_none();
        let i = match found {
            Some(i) => i,
            None => {
                members.push(m.new_entry(team));
                members.len() - 1
            }
        };
        m.apply(&mut members[i]);
        let stored = members[i].clone();
        lock.verify()?;
        fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&config)?, self.durable)?;
        lock.release()?;
        Ok((stored, created))
    }
}

/// Fields to set on a team member.
#[derive(Debug, Clone, Default)]
pub struct MemberUpdate {
    pub name: String,
    pub agent_type: Option<String>,
    pub model: Option<String>,
    pub color: Option<String>,
    pub cwd: Option<String>,
}

impl MemberUpdate {
    /// A new member, fields in Claude Code's order (`apply` then fills in
    /// what was given).
    fn new_entry(&self, team: &str) -> Value {
        let mut e = json!({
            "agentId": format!("{}@{team}", self.name),
            "name": self.name,
            "agentType": "general-purpose",
        });
        if let Some(m) = &self.model {
            e["model"] = json!(m);
        }
        if let Some(c) = &self.color {
            e["color"] = json!(c);
        }
        e["joinedAt"] = json!(now_millis());
        e["tmuxPaneId"] = json!("");
        e["cwd"] = json!("");
        e["subscriptions"] = json!([]);
        e
    }

    /// Set the given fields on a member (an object).
    fn apply(&self, e: &mut Value) {
        let fields = [
            ("agentType", &self.agent_type),
            ("model", &self.model),
            ("color", &self.color),
            ("cwd", &self.cwd),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                e[k] = json!(v);
            }
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn member_list(config: &Value) -> &[Value] {
    config["members"].as_array().map_or(&[], Vec::as_slice)
}

/// A team config: an object.
fn parse_config(path: &Path, bytes: &[u8]) -> Result<Value> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(o) if o.is_object() => Ok(o),
        Ok(other) => Err(fail(
            DATAERR,
            format!(
                "team config {} holds {}, not an object; left as it is",
                path.display(),
                kind(&other)
            ),
        )),
        Err(e) => Err(fail(
            DATAERR,
            format!(
                "team config {} does not parse ({e}); left as it is",
                path.display()
            ),
        )),
    }
}

/// Refuse what Claude Code could not show or answer.
fn check_message(m: &NewMessage) -> Result<()> {
    if m.text.trim().is_empty() {
        return Err(fail(DATAERR, "refusing an empty message"));
    }
    if m.text.len() > crate::channel::DEFAULT_MAX_MESSAGE {
        return Err(fail(
            DATAERR,
            format!(
                "message is {} bytes, more than the limit of {}",
                m.text.len(),
                crate::channel::DEFAULT_MAX_MESSAGE
            ),
        ));
    }
    // The sender is who a reply goes to, so it must be a valid agent name.
    names::check_claude("sender", &m.from)?;
    if let Some(c) = &m.color
        && (c.is_empty()
            || c.len() > 32
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'#'))
    {
        return Err(fail(DATAERR, format!("invalid color {}", names::quote(c))));
    }
    if let Some(s) = &m.summary
        && s.chars().any(char::is_control)
    {
        return Err(fail(DATAERR, "the summary must be one line of text"));
    }
    Ok(())
}

/// What a change to an inbox's bytes decided.
enum Edit {
    /// Leave the file as it is; it holds this many messages.
    Keep(usize),
    /// Replace it with these bytes, holding this many messages.
    Write(Vec<u8>, usize),
}

/// The number of entries of valid inbox bytes, else why they are not an
/// inbox. Cheaper than `parse_inbox`: nothing is built.
fn count_inbox(bytes: &[u8]) -> std::result::Result<usize, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    // Skipping values checks no UTF-8 inside strings: check it first, so
    // an inbox the full parse would refuse is moved aside here too.
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(text)
        .map(|v| v.len())
        .map_err(|e| e.to_string())
}

/// The inbox `bytes` (valid, `n` entries) with `entry` appended, as
/// `JSON.stringify(list, null, 2)` writes it. A file in that very form
/// (what Claude Code and mt write) gets the entry spliced in before its
/// closing bracket, without being parsed; any other form is rewritten
/// whole.
fn append(mut bytes: Vec<u8>, n: usize, entry: &Value) -> Result<Vec<u8>> {
    const HEAD: &[u8] = b"[\n  {";
    const TAIL: &[u8] = b"\n  }\n]";
    if n == 0 {
        return Ok(serde_json::to_vec_pretty(&[entry])?);
    }
    if !(bytes.starts_with(HEAD) && bytes.ends_with(TAIL)) {
        let mut list = parse_inbox(&bytes).map_err(|why| fail(DATAERR, why))?;
        list.push(entry.clone());
        return Ok(serde_json::to_vec_pretty(&list)?);
    }
    // Reuse the buffer just read: no second copy of a large inbox.
    let item = serde_json::to_vec_pretty(entry)?;
    bytes.truncate(bytes.len() - 2);
    bytes.reserve(item.len() + item.len() / 4 + 8);
    bytes.extend_from_slice(b",\n  ");
    // Strings are escaped, so every raw newline is between tokens.
    for &b in &item {
        bytes.push(b);
        if b == b'\n' {
            bytes.extend_from_slice(b"  ");
        }
    }
    bytes.extend_from_slice(b"\n]");
    Ok(bytes)
}

/// Parse inbox bytes: an array (an empty file counts as `[]`: it holds
/// nothing to lose), else the reason it is not one.
pub fn parse_inbox(bytes: &[u8]) -> std::result::Result<Vec<Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(other) => Err(format!("it holds {}, not an array", kind(&other))),
        Err(e) => Err(e.to_string()),
    }
}

/// What kind of JSON value `v` is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Read a whole file, `None` when it does not exist. Symlinks are refused.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut f = match fsutil::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut f, &mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(buf))
}

/// Create an inbox as `[]` unless it exists (exclusive create, as Claude
/// Code does before it locks).
fn create_empty(path: &Path) -> Result<()> {
    match fsutil::options().write(true).create_new(true).open(path) {
        Ok(mut f) => f
            .write_all(b"[]")
            .with_context(|| format!("cannot write {}", path.display()))
            .code(CANTCREAT),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e)
            .with_context(|| format!("cannot create {}", path.display()))
            .code(CANTCREAT),
    }
}

/// Move a bad inbox aside to `<file>.corrupt-<time>` (never overwriting an
/// earlier one) and return the new name. The caller holds the lock.
fn quarantine(path: &Path) -> Result<PathBuf> {
    let stamp = now_stamp().replace(':', "-");
    let base = format!("{}.corrupt-{stamp}", path.display());
    for n in 0.. {
        let aside = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}.{n}"))
        };
        if fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        fs::rename(path, &aside)
            .with_context(|| format!("cannot move bad inbox {} aside", path.display()))
            .code(CANTCREAT)?;
        return Ok(aside);
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> (tempfile::TempDir, Mailbox) {
        let d = tempfile::tempdir().unwrap();
        let m = Mailbox::new(d.path()).with_durable(false);
        (d, m)
    }

    fn msg(text: &str) -> NewMessage {
        NewMessage {
            from: "lead".into(),
            text: text.into(),
            ..NewMessage::default()
        }
    }

    #[test]
    fn send_appends_in_claude_code_format() {
        let (_d, m) = mailbox();
        let path = m.inbox_path("t", "york").unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            r#"[{"from":"x","text":"old","timestamp":"t","read":true,"extra":{"k":1}}]"#,
        )
        .unwrap();
        let mut nm = msg("hi");
        nm.color = Some("blue".into());
        nm.summary = Some("greeting".into());
        assert_eq!(m.send("t", "york", &nm).unwrap().0.count, 2);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[\n  {\n    \"from\": \"x\",\n"), "{text}");
        assert!(
            text.contains("\"extra\": {\n      \"k\": 1\n    }"),
            "{text}"
        );
        let list = m.read("t", "york").unwrap();
        let keys: Vec<&str> = list[1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["from", "text", "timestamp", "read", "color", "summary"]
        );
        assert!(!dirlock::lock_path(&path).exists());
    }

    #[test]
    fn spliced_append_equals_a_full_rewrite() {
        let e1 = msg("one\ntwo \"q\"").entry("t1");
        let e2 = NewMessage {
            color: Some("blue".into()),
            ..msg("three")
        }
        .entry("t2");
        let one = serde_json::to_vec_pretty(&[&e1]).unwrap();
        let two = append(one.clone(), 1, &e2).unwrap();
        assert_eq!(two, serde_json::to_vec_pretty(&[&e1, &e2]).unwrap());
        // A compact file is rewritten in the canonical form.
        let compact = serde_json::to_string(&[&e1]).unwrap();
        assert_eq!(append(compact.into_bytes(), 1, &e2).unwrap(), two);
        assert_eq!(append(b"[]".to_vec(), 0, &e1).unwrap(), one);
    }

    /// Pins the layout of `JSON.stringify(inbox, null, 2)` (bytes written by
    /// hand, checked against node): a compact inbox is rewritten in it, a
    /// message is spliced into it, and it reads back to itself.
    #[test]
    fn layout_is_json_stringify_2() {
        let compact = concat!(
            r#"[{"from":"team-lead","text":"Please review:\n\t- the \"q\" case\n\t- C:\\x\r","#,
            r#""timestamp":"2025-01-02T03:04:05.678Z","read":true,"color":"blue","summary":"review"},"#,
            r#"{"from":"york","text":"caf\u00e9 \u2713 \ud83d\ude00 </b> \u001b[0m \u0000\u007f\b\f","#,
            r#""timestamp":"2025-01-02T03:05:00.000Z","read":false,"x-extra":{"empty":[],"none":{},"#,
            r#""n":[1735787045678,-2,2.5,0.1,0.0076875224756904805,1e+300],"nil":null,"deep":[[],{"k":true}]}}]"#
        );
        let canonical = r#"[
  {
    "from": "team-lead",
    "text": "Please review:\n\t- the \"q\" case\n\t- C:\\x\r",
    "timestamp": "2025-01-02T03:04:05.678Z",
    "read": true,
    "color": "blue",
    "summary": "review"
  },
  {
    "from": "york",
    "text": "café ✓ 😀 </b> \u001b[0m \u0000DEL\b\f",
    "timestamp": "2025-01-02T03:05:00.000Z",
    "read": false,
    "x-extra": {
      "empty": [],
      "none": {},
      "n": [
        1735787045678,
        -2,
        2.5,
        0.1,
        0.0076875224756904805,
        1e+300
      ],
      "nil": null,
      "deep": [
        [],
        {
          "k": true
        }
      ]
    }
  }
]"#
        .replace("DEL", "\u{7f}");
        let list = parse_inbox(compact.as_bytes()).unwrap();
        let pretty = serde_json::to_vec_pretty(&list).unwrap();
        assert_eq!(String::from_utf8(pretty).unwrap(), canonical);
        let again = parse_inbox(canonical.as_bytes()).unwrap();
        assert_eq!(
            serde_json::to_vec_pretty(&again).unwrap(),
            canonical.as_bytes()
        );

        let e = NewMessage {
            summary: Some("ack".into()),
            ..msg("ok")
        }
        .entry("T");
        let spliced = append(canonical.clone().into_bytes(), 2, &e).unwrap();
        let want = format!(
            "{},\n  {{\n    \"from\": \"lead\",\n    \"text\": \"ok\",\n    \"timestamp\": \"T\",\n    \"read\": false,\n    \"summary\": \"ack\"\n  }}\n]",
            &canonical[..canonical.len() - 2]
        );
        assert_eq!(String::from_utf8(spliced).unwrap(), want);
        // As in JSON.parse, a repeated key keeps its first place, last value.
        let dup = parse_inbox(br#"[{"a":1,"b":2,"a":3}]"#).unwrap();
        assert_eq!(serde_json::to_string(&dup).unwrap(), r#"[{"a":3,"b":2}]"#);
    }

    #[test]
    fn bad_inbox_is_moved_aside() {
        let (_d, m) = mailbox();
        let path = m.inbox_path("t", "york").unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "[{\"from\":").unwrap();
        assert_eq!(
            crate::exit::code_of(&m.read("t", "york").unwrap_err()),
            DATAERR
        );
        let (out, _) = m.send("t", "york", &msg("hi")).unwrap();
        let aside = out.quarantined.unwrap();
        assert_eq!(fs::read_to_string(&aside).unwrap(), "[{\"from\":");
        assert_eq!(m.read("t", "york").unwrap().len(), 1);
    }

    #[test]
    fn members_are_added_then_updated() {
        let (_d, m) = mailbox();
        let up = MemberUpdate {
            name: "york".into(),
            model: Some("sonnet".into()),
            ..Default::default()
        };
        let (e, created) = m.upsert_member("t", &up).unwrap();
        assert!(created);
        assert_eq!(e["agentId"], "york@t");
        let up2 = MemberUpdate {
            name: "york".into(),
            color: Some("blue".into()),
            ..Default::default()
        };
        let (e, created) = m.upsert_member("t", &up2).unwrap();
        assert!(!created);
        assert_eq!(
            (&e["model"], &e["color"]),
            (&json!("sonnet"), &json!("blue"))
        );
        assert_eq!(m.members("t").unwrap().len(), 1);
    }
}
