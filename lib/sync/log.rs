//! Channel records between hosts.
//!
//! Each host publishes the records it wrote (those without `origin`) as a
//! chain of commits on `refs/mt/log/<host>`, one commit per exchange. A
//! commit's tree holds `host` (the publisher's identity), `heads` (per
//! channel, the largest seq published so far) and `records/<channel>` (the
//! records of this commit, JSON Lines, each with `origin` and
//! `origin_seq`). Only that host ever moves its ref, always forward.
//!
//! Importing walks every other host's chain from the last commit it
//! finished and appends the records to the local channel with their id,
//! time and origin kept and a local seq. `seen` (per channel and host, the
//! largest origin seq imported) keeps a record from being appended twice;
//! after a crash between an append and saving `seen`, the records appended
//! since the last save are read back from the channel to bring `seen` up.

use anyhow::{Context, Result};
use git2::{Oid, Repository, Sort};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::Identity;
use super::remote::{self, Update};
use super::state::{Channels, Pos};
use crate::channel::{self, Appender, Reader, WriteOptions};
use crate::exit::{CONFIG, fail};
use crate::record::Record;
use crate::statedir::StateDir;

pub const PREFIX: &str = "refs/mt/log/";

/// The most records of one channel one exchange publishes.
const BATCH: u64 = 50_000;

pub fn refname(host: &str) -> String {
    format!("{PREFIX}{host}")
}

/// What the tip of a host's log says about it.
#[derive(Debug, Default)]
pub struct Tip {
    pub commit: Option<Oid>,
    pub identity: Option<Identity>,
    pub heads: BTreeMap<String, u64>,
}

/// Read the tip of `host`'s log as last fetched.
pub fn tip(repo: &Repository, host: &str) -> Result<Tip> {
    let Some(commit) = remote::local_ref(repo, &refname(host))? else {
        return Ok(Tip::default());
    };
    let tree = repo.find_commit(commit)?.tree()?;
    let identity = blob_json(repo, &tree, "host")?;
    let heads = blob_json(repo, &tree, "heads")?.unwrap_or_default();
    Ok(Tip {
        commit: Some(commit),
        identity,
        heads,
    })
}

fn blob_json<T: for<'de> Deserialize<'de>>(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    name: &str,
) -> Result<Option<T>> {
    let Some(entry) = tree.get_name(name) else {
        return Ok(None);
    };
    let blob = repo.find_blob(entry.id())?;
    serde_json::from_slice(blob.content())
        .map(Some)
        .with_context(|| format!("the published {name} does not parse"))
}

/// Refuse to publish under a name another machine's state directory uses.
pub fn check_owner(me: &Identity, tip: &Tip) -> Result<()> {
    match &tip.identity {
        Some(them) if them.instance != me.instance => Err(fail(
            CONFIG,
            format!(
                "host name {} is already used by another machine (or an older copy of this repository); give this one its own name: mt-config set --global host NAME",
                me.host
            ),
        )),
        _ => Ok(()),
    }
}

/// Every channel, archived ones too: what was written in one before it
/// was archived still goes out.
fn channel_names(state: &StateDir) -> Result<Vec<String>> {
    channel::list_channels_by(state, channel::Listing::All)
}

#[derive(Deserialize)]
struct Origin<'a> {
    #[serde(default, borrow)]
    origin: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    origin_seq: Option<u64>,
}

/// Bring `seen` up to date with what the channels hold: records imported
/// after the last saved position (an exchange killed before it saved).
pub fn catch_up_seen(state: &StateDir, st: &mut Channels) -> Result<()> {
    for name in channel_names(state)? {
        let cs = st.channels.entry(name.clone()).or_default();
        let mut reader = Reader::resume(state, &name, cs.import.into())?;
        reader.read_available(&mut |item| {
            if let Ok(o) = serde_json::from_slice::<Origin<'_>>(item.line)
                && let (Some(h), Some(s)) = (o.origin, o.origin_seq)
            {
                let e = cs.seen.entry(h.into_owned()).or_insert(0);
                *e = (*e).max(s);
            }
            Ok(true)
        })?;
        cs.import = reader.position().into();
    }
    Ok(())
}

/// Records this host wrote and has not published, per channel.
pub struct Outgoing {
    pub per_channel: BTreeMap<String, (Vec<u8>, u64, Pos)>,
    pub count: u64,
}

/// Collect this host's unpublished records: read each channel from its
/// export position, keep records without an origin whose seq is above
/// what the log's tip says was published.
pub fn outgoing(
    state: &StateDir,
    st: &mut Channels,
    me: &Identity,
    heads: &BTreeMap<String, u64>,
) -> Result<Outgoing> {
    let mut out = Outgoing {
        per_channel: BTreeMap::new(),
        count: 0,
    };
    for name in channel_names(state)? {
        let cs = st.channels.entry(name.clone()).or_default();
        let published = heads.get(&name).copied().unwrap_or(0);
        let mut reader = if published < cs.published {
            // The remote lost what it had taken (restored from a backup):
            // publish again from what it still has.
            cs.published = published;
            Reader::after_seq(state, &name, published)?
        } else {
            Reader::resume(state, &name, cs.export.into())?
        };
        let mut lines = Vec::new();
        let mut last = published;
        let mut n = 0;
        reader.read_available(&mut |item| {
            if item.view.seq <= published {
                return Ok(true);
            }
            let Ok(mut rec) = serde_json::from_slice::<Record>(item.line) else {
                return Ok(true);
            };
            if rec.origin.is_some() {
                return Ok(true);
            }
            rec.origin = Some(me.host.clone());
            rec.origin_seq = Some(rec.seq);
            serde_json::to_writer(&mut lines, &rec)?;
            lines.push(b'\n');
            last = rec.seq;
            n += 1;
            // A long backlog (sync turned on for an old channel) goes out
            // over several exchanges, in bounded commits.
            Ok(n < BATCH)
        })?;
        let end: Pos = reader.position().into();
        if n == 0 {
            // Nothing of ours: the position can move on now.
            cs.export = end;
            continue;
        }
        out.count += n;
        out.per_channel.insert(name, (lines, last, end));
    }
    Ok(out)
}

/// A commit publishing `out` on top of `tip`; the update that pushes it.
pub fn publish(repo: &Repository, me: &Identity, tip: &Tip, out: &Outgoing) -> Result<Update> {
    let mut heads = tip.heads.clone();
    let mut records = repo.treebuilder(None)?;
    for (name, (lines, last, _)) in &out.per_channel {
        records.insert(name, repo.blob(lines)?, 0o100644)?;
        heads.insert(name.clone(), *last);
    }
    let mut root = repo.treebuilder(None)?;
    root.insert("host", repo.blob(&serde_json::to_vec(me)?)?, 0o100644)?;
    root.insert("heads", repo.blob(&serde_json::to_vec(&heads)?)?, 0o100644)?;
    root.insert("records", records.write()?, 0o040000)?;
    let tree = root.write()?;
    let msg = format!("mt-sync: {} publishes {} records", me.host, out.count);
    let new = super::commit(repo, &me.host, tip.commit, tree, &msg)?;
    Ok(Update {
        refname: refname(&me.host),
        old: tip.commit,
        new,
    })
}

/// After the push took `out`: the export positions move past it.
pub fn published(st: &mut Channels, out: &Outgoing) {
    for (name, (_, last, end)) in &out.per_channel {
        let cs = st.channels.entry(name.clone()).or_default();
        cs.export = *end;
        cs.published = *last;
    }
}

/// What an import brought.
#[derive(Debug, Default)]
pub struct Imported {
    pub per_host: BTreeMap<String, u64>,
    pub malformed: u64,
}

/// Append every other host's new records to the local channels.
pub fn import(
    repo: &Repository,
    state: &StateDir,
    st: &mut Channels,
    me: &Identity,
) -> Result<Imported> {
    let mut got = Imported::default();
    // Per channel, in order: (host, record).
    let mut incoming: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut new_tips = Vec::new();
    for r in repo.references_glob(&format!("{PREFIX}*"))? {
        let r = r?;
        let Some(host) = r.name().ok().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if host == me.host || !crate::names::is_valid(host) {
            continue;
        }
        let host = host.to_string();
        let Some(tip) = r.target() else { continue };
        let done = st.hosts.get(&host).and_then(|s| Oid::from_str(s).ok());
        if done == Some(tip) {
            continue;
        }
        let mut walk = repo.revwalk()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        walk.push(tip)?;
        if let Some(d) = done {
            // A start the repository no longer has means: walk it all.
            let _ = walk.hide(d);
        }
        let mut marks: BTreeMap<String, u64> = BTreeMap::new();
        for oid in walk {
            let tree = repo.find_commit(oid?)?.tree()?;
            let Some(entry) = tree.get_name("records") else {
                continue;
            };
            let Ok(records) = repo.find_tree(entry.id()) else {
                got.malformed += 1;
                continue;
            };
            for e in records.iter() {
                let Some(chan) = e.name().ok().filter(|n| crate::names::is_valid(n)) else {
                    got.malformed += 1;
                    continue;
                };
                let Ok(blob) = repo.find_blob(e.id()) else {
                    got.malformed += 1;
                    continue;
                };
                let seen = st
                    .channels
                    .get(chan)
                    .and_then(|c| c.seen.get(&host))
                    .copied()
                    .unwrap_or(0);
                let mark = marks.entry(chan.to_string()).or_insert(seen);
                for line in blob.content().split(|&b| b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    let rec = match serde_json::from_slice::<Record>(line) {
                        Ok(r) if r.origin.as_deref() == Some(host.as_str()) => r,
                        _ => {
                            got.malformed += 1;
                            continue;
                        }
                    };
                    let Some(oseq) = rec.origin_seq else {
                        got.malformed += 1;
                        continue;
                    };
                    if oseq <= *mark {
                        continue;
                    }
                    *mark = oseq;
                    incoming.entry(chan.to_string()).or_default().push(rec);
                    *got.per_host.entry(host.clone()).or_insert(0) += 1;
                }
            }
        }
        new_tips.push((host, tip));
    }
    let opts = WriteOptions::from_env()?;
    for (chan, recs) in incoming {
        let mut app = Appender::open_importing(state, &chan, opts.clone())?;
        for rec in &recs {
            app.append_record(rec)?;
        }
        app.commit()?;
        let cs = st.channels.entry(chan.clone()).or_default();
        for rec in &recs {
            let h = rec.origin.clone().unwrap_or_default();
            let e = cs.seen.entry(h).or_insert(0);
            *e = (*e).max(rec.origin_seq.unwrap_or(0));
        }
        // What was just appended is accounted for.
        cs.import = channel::end_position(state, &chan)?.into();
    }
    for (host, tip) in new_tips {
        st.hosts.insert(host, tip.to_string());
    }
    if got.malformed > 0 {
        crate::exit::warn(format_args!(
            "{} published records or entries did not parse and were left out",
            got.malformed
        ));
    }
    Ok(got)
}
