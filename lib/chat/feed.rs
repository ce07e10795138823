//! The channel feed: the records of one channel that mt-chat holds, read
//! from the end backwards for the first screen (never the whole channel)
//! and forwards as writers append. Each record keeps the position just
//! past it, so the person's cursor can be saved exactly at the last record
//! drawn.

use anyhow::Result;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::channel::{self, Position, RevLines};
use crate::infra::fsutil;
use crate::record;
use crate::statedir::StateDir;

/// One record as shown.
#[derive(Debug, Clone)]
pub struct Msg {
    pub seq: u64,
    /// Just past this record: where a cursor that has read it points.
    pub end: Position,
    /// Offset of the record's first byte in its segment.
    pub start: u64,
    pub from: String,
    pub kind: String,
    pub content: String,
    pub timestamp: String,
    /// It mentions the person (by name or `@all`).
    pub to_me: bool,
}

impl Msg {
    fn of(line: &[u8], segment: u64, end: u64, me: &str) -> Option<Msg> {
        let v = record::parse(line)?;
        Some(Msg {
            seq: v.seq,
            end: Position {
                segment,
                offset: end,
                seq: v.seq,
            },
            start: end - line.len() as u64 - 1,
            to_me: v.mentions_name(me),
            // A record from another host says which (mt-sync).
            from: match v.origin {
                Some(host) => format!("{}@{host}", v.from),
                None => v.from.into_owned(),
            },
            kind: v.kind.into_owned(),
            content: v.content.into_owned(),
            timestamp: v.timestamp.into_owned(),
        })
    }
}

fn open(dir: &Path, seg: u64) -> io::Result<Option<File>> {
    match fsutil::open_read(&dir.join(channel::segment_file_name(seg))) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Up to `n` records that end at or before byte `end` of segment `seg`
/// (`None`: the end of the newest segment), oldest first.
pub fn before(
    state: &StateDir,
    name: &str,
    from: Option<(u64, u64)>,
    n: usize,
    me: &str,
) -> Result<Vec<Msg>> {
    let dir = state.channel(name);
    let segs = channel::list_segments(&dir)?;
    let mut out = Vec::new();
    for &seg in segs.iter().rev() {
        if out.len() >= n {
            break;
        }
        let limit = match from {
            Some((s, _)) if seg > s => continue,
            Some((s, off)) if seg == s => Some(off),
            _ => None,
        };
        let Some(f) = open(&dir, seg)? else { continue };
        let end = match limit {
            Some(off) => off,
            None => f.metadata()?.len(),
        };
        let mut lines = RevLines::new(&f, end);
        while out.len() < n {
            let Some((line, end)) = lines.next_with_end()? else {
                break;
            };
            if let Some(m) = Msg::of(&line, seg, end, me) {
                out.push(m);
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// The newest `n` records, oldest first.
pub fn tail(state: &StateDir, name: &str, n: usize, me: &str) -> Result<Vec<Msg>> {
    before(state, name, None, n, me)
}

/// Whether `pos` still points just past the record with its seq (a
/// retention pass or a reset has not moved the ground under it).
pub fn valid(state: &StateDir, name: &str, pos: Position) -> Result<bool> {
    let Some(f) = open(&state.channel(name), pos.segment)? else {
        return Ok(false);
    };
    if pos.offset == 0 || pos.offset > f.metadata()?.len() {
        return Ok(false);
    }
    let mut lines = RevLines::new(&f, pos.offset);
    Ok(match lines.next_with_end()? {
        Some((line, end)) if end == pos.offset => record::parse_seq(&line) == Some(pos.seq),
        _ => false,
    })
}

/// A forward reader from a position, lock-free, handing out each record
/// with the position just past it.
pub struct Forward {
    dir: PathBuf,
    pos: Position,
    file: Option<File>,
}

impl Forward {
    pub fn at(state: &StateDir, name: &str, pos: Position) -> Forward {
        Forward {
            dir: state.channel(name),
            pos,
            file: None,
        }
    }

    pub fn position(&self) -> Position {
        self.pos
    }

    /// Up to `n` complete records written after the position.
    pub fn read(&mut self, n: usize, me: &str) -> Result<Vec<Msg>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while out.len() < n {
            if self.file.is_none() {
                match open(&self.dir, self.pos.segment)? {
                    Some(f) => self.file = Some(f),
                    None => match self.next_segment()? {
                        Some(s) => {
                            self.pos.segment = s;
                            self.pos.offset = 0;
                            continue;
                        }
                        None => break,
                    },
                }
            }
            let f = self.file.as_mut().expect("open");
            f.seek(SeekFrom::Start(self.pos.offset))?;
            buf.clear();
            // Bounded reads: a million records behind costs `n` records.
            f.take(256 << 10).read_to_end(&mut buf)?;
            let mut start = 0;
            let mut got = false;
            while out.len() < n {
                let Some(i) = buf[start..].iter().position(|&b| b == b'\n') else {
                    break;
                };
                let line = &buf[start..start + i];
                start += i + 1;
                got = true;
                let end = self.pos.offset + start as u64;
                if let Some(m) = Msg::of(line, self.pos.segment, end, me)
                    && m.seq > self.pos.seq
                {
                    self.pos.seq = m.seq;
                    out.push(m);
                }
            }
            self.pos.offset += start as u64;
            if !got {
                // The end of this segment, or a record longer than one read.
                if buf.len() >= 256 << 10 {
                    let f = self.file.as_mut().expect("open");
                    f.seek(SeekFrom::Start(self.pos.offset))?;
                    buf.clear();
                    f.read_to_end(&mut buf)?;
                    if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let end = self.pos.offset + i as u64 + 1;
                        if let Some(m) = Msg::of(&buf[..i], self.pos.segment, end, me)
                            && m.seq > self.pos.seq
                        {
                            self.pos.seq = m.seq;
                            out.push(m);
                        }
                        self.pos.offset = end;
                        continue;
                    }
                }
                match self.next_segment()? {
                    // A newer segment means this one is final; what it
                    // holds has been read.
                    Some(s) if buf.is_empty() || !buf.contains(&b'\n') => {
                        self.pos.segment = s;
                        self.pos.offset = 0;
                        self.file = None;
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    fn next_segment(&self) -> Result<Option<u64>> {
        Ok(channel::list_segments(&self.dir)?
            .into_iter()
            .find(|&s| s > self.pos.segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_another_host_names_its_host() {
        let line = br#"{"seq":3,"id":"x","timestamp":"t","from":"york","type":"text","content":"hi","channel":"general","mentions":[],"origin":"build","origin_seq":9}"#;
        let m = Msg::of(line, 1, 200, "me").unwrap();
        assert_eq!(m.from, "york@build");
        let here = br#"{"seq":4,"id":"y","timestamp":"t","from":"york","content":"hi","channel":"general"}"#;
        assert_eq!(Msg::of(here, 1, 300, "me").unwrap().from, "york");
    }
}
