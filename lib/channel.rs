//! A channel: a directory of append-only JSON Lines segments.
//!
//! ```text
//! channels/<name>/LOCK                 flock target for appends, never renamed
//! channels/<name>/<first-seq>.jsonl    segments, 20-digit zero-padded first seq
//! ```
//!
//! Writers append under an exclusive lock, one `write` per record (or per
//! batch of whole records), and sync before they report success. Readers take
//! no lock: they consume only up to the last newline, so a record still being
//! written is invisible, and a fragment left by a killed writer is sealed by
//! the next writer into one malformed line that readers skip.
//!
//! A channel may be archived whole (`archive`): a marker file, under the
//! same lock, after which writers are refused until it is unarchived.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::exit::{CANTCREAT, Coded, DATAERR, fail};
use crate::infra::fsutil;
use crate::infra::lock;
use crate::infra::time;
use crate::record::{self, Record, View};
use crate::statedir::StateDir;

pub mod archive;
pub use archive::is_archived;

/// Default segment roll-over size (`MT_SEGMENT_BYTES`).
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 << 20;
/// Default largest message content (`MT_MAX_MESSAGE_BYTES`).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

const READ_CHUNK: usize = 256 << 10;

pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.jsonl")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first seqs of a channel's segments, oldest first. A missing channel
/// has none.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        if let Some(n) = ent.file_name().to_str().and_then(parse_segment_name) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Open segment `seg` of the channel in `dir` for reading. A segment that
/// was listed but is gone by now was removed by retention: `None`, and the
/// caller goes on with the next one. Every reader opens segments here, so
/// they all treat a vanished segment the same way.
fn open_segment(dir: &Path, seg: u64) -> io::Result<Option<File>> {
    match fsutil::open_read(&dir.join(segment_file_name(seg))) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a new record says; the appender adds seq, id, time and channel.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub from: String,
    pub kind: String,
    pub content: String,
    pub reply_to: Option<String>,
    pub session_id: Option<String>,
    pub meta: Option<serde_json::Value>,
}

/// Settings for writers, from the environment unless set otherwise.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub fsync: bool,
    pub segment_bytes: u64,
}

impl WriteOptions {
    pub fn from_env() -> Result<WriteOptions> {
        let segment_bytes = match std::env::var("MT_SEGMENT_BYTES") {
            Ok(v) if !v.is_empty() => parse_segment_bytes(&v)?,
            _ => DEFAULT_SEGMENT_BYTES,
        };
        Ok(WriteOptions {
            fsync: fsutil::fsync_enabled(),
            segment_bytes,
        })
    }
}

/// The one parser of a segment roll-over size (`MT_SEGMENT_BYTES`, mt-post's
/// `--segment-bytes`): a positive number of bytes, else exit 65.
pub fn parse_segment_bytes(v: &str) -> Result<u64> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            fail(
                DATAERR,
                format!(
                    "MT_SEGMENT_BYTES or --segment-bytes {v:?} is not a positive number of bytes"
                ),
            )
        })
}

/// An open channel whose append lock we hold. Records are buffered and
/// written whole; `commit` writes what is pending and syncs.
pub struct Appender {
    name: String,
    dir: PathBuf,
    opts: WriteOptions,
    _lock: File,
    file: File,
    /// Length of the current segment as written (not counting `pending`).
    len: u64,
    pending: Vec<u8>,
    next_seq: u64,
}

impl Appender {
    /// Lock the channel for appending, creating it on first use.
    pub fn open(state: &StateDir, name: &str, opts: WriteOptions) -> Result<Appender> {
        Appender::open_with(state, name, opts, true)
    }

    /// `open` for mt-sync's import: records other hosts wrote still land
    /// in a channel archived here (archiving is this host's view; what
    /// others posted is not lost).
    pub fn open_importing(state: &StateDir, name: &str, opts: WriteOptions) -> Result<Appender> {
        Appender::open_with(state, name, opts, false)
    }

    fn open_with(
        state: &StateDir,
        name: &str,
        opts: WriteOptions,
        refuse_archived: bool,
    ) -> Result<Appender> {
        // Names may come from files (reminders, hook payloads): the check is
        // here, where the name becomes a directory.
        crate::names::check("channel", name)?;
        state.ensure()?;
        fsutil::ensure_subdir(&state.channels())?;
        let dir = state.channel(name);
        fsutil::ensure_subdir(&dir)?;
        let lock = lock::exclusive(&dir.join("LOCK"))?;
        // Checked under the lock that archiving takes: a post lands before
        // the archive or is refused after it.
        if refuse_archived && archive::marked(&dir) {
            return Err(archive::refusal(name));
        }
        let segs = list_segments(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        let first = match segs.last() {
            Some(&n) => n,
            None => {
                create_segment(&dir, 1)?;
                1
            }
        };
        let path = dir.join(segment_file_name(first));
        let file = fsutil::open_append(&path)
            .with_context(|| format!("cannot open {}", path.display()))
            .code(CANTCREAT)?;
        let mut len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                // A writer died mid-record: seal the fragment into one bad line.
                (&file)
                    .write_all(b"\n")
                    .with_context(|| format!("cannot write {}", path.display()))
                    .code(CANTCREAT)?;
                len += 1;
            }
        }
        let next_seq = match last_seq_in(&file, len)? {
            Some(s) => s + 1,
            None => first,
        };
        Ok(Appender {
            name: name.to_string(),
            dir,
            opts,
            _lock: lock,
            file,
            len,
            pending: Vec::new(),
            next_seq,
        })
    }

    /// The seq the next staged record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Stage one record; it is written by a later `flush` or `commit`.
    /// Returns the stored line (without newline).
    pub fn append(&mut self, d: &Draft) -> Result<String> {
        // One clock read: the id's time and the timestamp agree.
        let now = chrono::Utc::now();
        let rec = Record {
            seq: 0,
            id: crate::infra::id::new_id(now.timestamp_millis().max(0) as u64),
            timestamp: time::stamp(now),
            from: d.from.clone(),
            kind: d.kind.clone(),
            content: d.content.clone(),
            channel: String::new(),
            mentions: record::mentions(&d.content),
            reply_to: d.reply_to.clone(),
            session_id: d.session_id.clone(),
            meta: d.meta.clone(),
            origin: None,
            origin_seq: None,
        };
        self.stage(rec)
    }

    /// Stage a record written elsewhere (mt-sync's import): its id, time,
    /// sender and origin are kept; it gets this channel's next seq.
    pub fn append_record(&mut self, rec: &Record) -> Result<String> {
        self.stage(rec.clone())
    }

    fn stage(&mut self, mut rec: Record) -> Result<String> {
        let size = self.len + self.pending.len() as u64;
        if size > 0 && size >= self.opts.segment_bytes {
            self.roll()?;
        }
        rec.seq = self.next_seq;
        rec.channel.clone_from(&self.name);
        let line = serde_json::to_string(&rec).context("cannot encode record")?;
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.next_seq += 1;
        if self.pending.len() >= READ_CHUNK * 4 {
            self.flush()?;
        }
        Ok(line)
    }

    /// Write the staged records with one `write`. On failure (a full disk)
    /// the segment is cut back to its previous length, so no partial record
    /// stays behind.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&self.file).write_all(&self.pending) {
            let _ = self.file.set_len(self.len);
            return Err(e)
                .with_context(|| format!("cannot append to channel {}", self.name))
                .code(CANTCREAT);
        }
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Write everything staged and make it durable (unless `MT_FSYNC=0`).
    pub fn commit(mut self) -> Result<()> {
        self.flush()?;
        if self.opts.fsync {
            self.file
                .sync_data()
                .with_context(|| format!("cannot sync channel {}", self.name))
                .code(CANTCREAT)?;
        }
        Ok(())
    }

    /// Start a new segment whose first record is the next seq. The old one is
    /// synced first, so a segment is complete once a newer one exists.
    fn roll(&mut self) -> Result<()> {
        self.flush()?;
        if self.opts.fsync {
            self.file.sync_data()?;
        }
        let path = create_segment(&self.dir, self.next_seq)?;
        self.file = fsutil::open_append(&path)
            .with_context(|| format!("cannot open {}", path.display()))
            .code(CANTCREAT)?;
        self.len = 0;
        Ok(())
    }
}

/// Create an empty segment by temporary name and rename, then sync the
/// directory so the new name survives a crash.
fn create_segment(dir: &Path, first: u64) -> Result<PathBuf> {
    let path = dir.join(segment_file_name(first));
    fsutil::create_temp(&path, |tmp| {
        fsutil::options().write(true).create_new(true).open(tmp)
    })
    .and_then(|(_, tmp)| fs::rename(&tmp, &path))
    .and_then(|_| fsutil::sync_dir(dir))
    .with_context(|| format!("cannot create segment {}", path.display()))
    .code(CANTCREAT)?;
    Ok(path)
}

/// The seq of the last record in the first `len` bytes of `file` that
/// parses, scanning backwards.
fn last_seq_in(file: &File, len: u64) -> Result<Option<u64>> {
    let mut lines = RevLines::new(file, len);
    while let Some(line) = lines.next_line()? {
        if let Some(seq) = record::parse_seq(&line) {
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

/// Complete lines of a file read from the end backwards. Bytes after the
/// last newline before `end` are ignored (an unfinished record).
pub struct RevLines<'f> {
    file: &'f File,
    /// File offset of `buf[0]`.
    pos: u64,
    buf: Vec<u8>,
    started: bool,
}

impl<'f> RevLines<'f> {
    pub fn new(file: &'f File, end: u64) -> RevLines<'f> {
        RevLines {
            file,
            pos: end,
            buf: Vec::new(),
            started: false,
        }
    }

    fn read_before(&mut self) -> io::Result<bool> {
        if self.pos == 0 {
            return Ok(false);
        }
        // Start small (a cursor check needs one line) and double as lines
        // turn out longer.
        let want = (self.buf.len() as u64).clamp(8 << 10, READ_CHUNK as u64 * 4);
        let want = want.min(self.pos);
        let start = self.pos - want;
        let mut chunk = vec![0u8; want as usize];
        self.file.read_exact_at(&mut chunk, start)?;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        self.pos = start;
        Ok(true)
    }

    /// The next line (without newline) going backwards, with the file offset
    /// just past its newline.
    pub fn next_with_end(&mut self) -> io::Result<Option<(Vec<u8>, u64)>> {
        if !self.started {
            self.started = true;
            // Drop the unfinished tail: keep bytes up to the last newline.
            loop {
                if let Some(i) = self.buf.iter().rposition(|&b| b == b'\n') {
                    self.buf.truncate(i + 1);
                    break;
                }
                if !self.read_before()? {
                    self.buf.clear();
                    break;
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let end = self.pos + self.buf.len() as u64;
        loop {
            let body = &self.buf[..self.buf.len() - 1];
            if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                let line = body[i + 1..].to_vec();
                self.buf.truncate(i + 1);
                return Ok(Some((line, end)));
            }
            if self.pos == 0 {
                let line = body.to_vec();
                self.buf.clear();
                return Ok(Some((line, end)));
            }
            self.read_before()?;
        }
    }

    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.next_with_end()?.map(|(l, _)| l))
    }
}

/// A position in a channel: the byte offset just past the last consumed
/// record of a segment, and that record's seq (0 before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    pub seq: u64,
}

/// A lock-free forward reader over a channel's segments.
pub struct Reader {
    dir: PathBuf,
    label: String,
    pos: Position,
    file: Option<File>,
    /// Bytes read past `pos.offset` that do not yet end with a newline.
    carry: Vec<u8>,
    /// Records with seq at or below this are skipped (for `--since` and
    /// cursor recovery).
    skip_through: u64,
    /// Until a record written at or after this time is met, records are
    /// skipped (`--since` a time); from that record on, all are delivered.
    skip_before: Option<DateTime<Utc>>,
    pub malformed: u64,
}

/// What a reader hands to its consumer for each record.
pub struct Item<'a> {
    pub line: &'a [u8],
    pub view: View<'a>,
}

impl Reader {
    /// A reader positioned at the very start of the channel.
    pub fn from_start(state: &StateDir, name: &str) -> Result<Reader> {
        let dir = state.channel(name);
        let segs = list_segments(&dir)?;
        let first = segs.first().copied().unwrap_or(1);
        Ok(Reader::at(
            &dir,
            name,
            Position {
                segment: first,
                offset: 0,
                seq: 0,
            },
        ))
    }

    fn at(dir: &Path, name: &str, pos: Position) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            label: name.to_string(),
            pos,
            file: None,
            carry: Vec::new(),
            skip_through: pos.seq,
            skip_before: None,
            malformed: 0,
        }
    }

    /// A reader that will deliver records with seq greater than `seq`,
    /// starting its scan in the segment that holds `seq + 1`.
    pub fn after_seq(state: &StateDir, name: &str, seq: u64) -> Result<Reader> {
        let dir = state.channel(name);
        let segs = list_segments(&dir)?;
        let seg = segs
            .iter()
            .rev()
            .find(|&&s| s <= seq.saturating_add(1))
            .or(segs.first())
            .copied()
            .unwrap_or(1);
        let mut r = Reader::at(
            &dir,
            name,
            Position {
                segment: seg,
                offset: 0,
                seq,
            },
        );
        r.skip_through = seq;
        let path = dir.join(segment_file_name(seg));
        // Gone meanwhile (retention): the reader moves on by itself.
        if let Some(mut f) =
            open_segment(&dir, seg).with_context(|| format!("cannot open {}", path.display()))?
        {
            let len = f.metadata()?.len();
            let start = seek_after(&f, len, seq)
                .with_context(|| format!("cannot read {}", path.display()))?;
            f.seek(SeekFrom::Start(start))?;
            r.pos.offset = start;
            r.file = Some(f);
        }
        Ok(r)
    }

    /// A reader that delivers the first record written at or after `t` and
    /// every record after it, whatever their times. Records are appended in
    /// time order unless a clock went back, so the start is found without
    /// reading the channel: the newest segment whose first record is older
    /// than `t`, then bisection by time within it, then a short scan. Where
    /// a clock went back, the start is the first record at or after `t`
    /// that this search meets: near it, records may be shown whose time is
    /// before `t`, or left out though theirs is after it.
    pub fn since_time(state: &StateDir, name: &str, t: DateTime<Utc>) -> Result<Reader> {
        let dir = state.channel(name);
        let segs = list_segments(&dir)?;
        let before = |line: &[u8]| record::parse_time(line).map(|(_, ts)| ts < t);
        let mut start = None;
        for &seg in segs.iter().rev() {
            let path = dir.join(segment_file_name(seg));
            let Some(f) = open_segment(&dir, seg)
                .with_context(|| format!("cannot open {}", path.display()))?
            else {
                continue;
            };
            let len = f.metadata()?.len();
            let first = probe(&f, 0, len, len, &before)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if let (_, Some(found)) = first
                && found.before
            {
                let at = seek_to(&f, len, &before)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                start = Some((seg, f, at));
                break;
            }
        }
        let (seg, file, offset) = match start {
            Some((seg, mut f, at)) => {
                f.seek(SeekFrom::Start(at))?;
                (seg, Some(f), at)
            }
            // Every record is at or after `t` (or there are none).
            None => (segs.first().copied().unwrap_or(1), None, 0),
        };
        let mut r = Reader::at(
            &dir,
            name,
            Position {
                segment: seg,
                offset,
                seq: 0,
            },
        );
        r.file = file;
        r.skip_before = Some(t);
        Ok(r)
    }

    /// A reader resuming from a saved position. The position is trusted only
    /// if its segment still exists, is long enough, and the record ending at
    /// its offset has its seq; otherwise (compaction, reset) the reader falls
    /// back to scanning for seq > `pos.seq`, and when the channel holds no
    /// such seq at all but is shorter than the cursor, it was reset and is
    /// read from the start.
    pub fn resume(state: &StateDir, name: &str, pos: Position) -> Result<Reader> {
        let dir = state.channel(name);
        if pos.seq == 0 && pos.offset == 0 {
            return Reader::from_start(state, name);
        }
        let path = dir.join(segment_file_name(pos.segment));
        if let Some(mut f) = open_segment(&dir, pos.segment)
            .with_context(|| format!("cannot open {}", path.display()))?
        {
            let len = f.metadata()?.len();
            let valid = (pos.offset <= len && seq_ending_at(&f, pos.offset)? == Some(pos.seq))
                || (pos.offset == 0 && pos.segment == pos.seq + 1);
            if valid {
                f.seek(SeekFrom::Start(pos.offset))?;
                let mut r = Reader::at(&dir, name, pos);
                r.file = Some(f);
                return Ok(r);
            }
        }
        match last_seq(state, name)? {
            Some(last) if last < pos.seq => {
                crate::exit::warn(format_args!(
                    "channel {name} has fewer records ({last}) than this reader's cursor ({}); it was reset, reading it from the start",
                    pos.seq
                ));
                Reader::from_start(state, name)
            }
            _ => Reader::after_seq(state, name, pos.seq),
        }
    }

    pub fn position(&self) -> Position {
        self.pos
    }

    fn open_current(&mut self) -> Result<bool> {
        if self.file.is_some() {
            return Ok(true);
        }
        let path = self.dir.join(segment_file_name(self.pos.segment));
        match open_segment(&self.dir, self.pos.segment)
            .with_context(|| format!("cannot open {}", path.display()))?
        {
            Some(mut f) => {
                f.seek(SeekFrom::Start(self.pos.offset))?;
                self.file = Some(f);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The segment after the current one, if a writer has started it.
    fn next_segment(&self) -> Result<Option<u64>> {
        let segs = list_segments(&self.dir)?;
        Ok(segs.into_iter().find(|&s| s > self.pos.segment))
    }

    /// Deliver every complete record available now, in order, to `each`.
    /// `each` returns `false` to stop early. Returns how many were delivered.
    /// The position advances past each record as it is delivered.
    pub fn read_available(
        &mut self,
        each: &mut dyn FnMut(&Item<'_>) -> Result<bool>,
    ) -> Result<u64> {
        let mut n = 0;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if !self.open_current()? {
                // The segment we expected is gone (retention) or not there yet.
                match self.next_segment()? {
                    Some(s) => {
                        self.switch_to(s);
                        continue;
                    }
                    None => return Ok(n),
                }
            }
            let got = self.file.as_mut().expect("open").read(&mut chunk)?;
            if got == 0 {
                // End of this segment. A newer segment means this one is
                // final: read it once more to its end, then move on.
                let Some(next) = self.next_segment()? else {
                    return Ok(n);
                };
                let more = self.file.as_mut().expect("open").read(&mut chunk)?;
                if more > 0 {
                    if !self.consume(&chunk[..more], each, &mut n)? {
                        return Ok(n);
                    }
                    continue;
                }
                if !self.carry.is_empty() {
                    crate::exit::warn(format_args!(
                        "{}: ignoring {} bytes of an unfinished record at the end of segment {}",
                        self.label,
                        self.carry.len(),
                        self.pos.segment
                    ));
                    self.malformed += 1;
                }
                self.switch_to(next);
                continue;
            }
            if !self.consume(&chunk[..got], each, &mut n)? {
                return Ok(n);
            }
        }
    }

    fn switch_to(&mut self, segment: u64) {
        self.pos.segment = segment;
        self.pos.offset = 0;
        self.file = None;
        self.carry.clear();
    }

    /// Split new bytes into lines and deliver the complete ones. On an early
    /// stop, the file is repositioned just past the last delivered record.
    fn consume(
        &mut self,
        bytes: &[u8],
        each: &mut dyn FnMut(&Item<'_>) -> Result<bool>,
        n: &mut u64,
    ) -> Result<bool> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = data[start..].iter().position(|&b| b == b'\n') {
            let line = &data[start..start + i];
            let line_end = self.pos.offset + (i + 1) as u64;
            start += i + 1;
            match record::parse(line) {
                Some(view) if view.seq <= self.skip_through => {}
                Some(view) if self.skip_before.is_some_and(|t| is_before(&view, t)) => {}
                Some(view) => {
                    self.skip_before = None;
                    let seq = view.seq;
                    let go_on = each(&Item { line, view })?;
                    *n += 1;
                    self.pos.seq = seq;
                    self.pos.offset = line_end;
                    if !go_on {
                        let off = self.pos.offset;
                        if let Some(f) = self.file.as_mut() {
                            f.seek(SeekFrom::Start(off))?;
                        }
                        return Ok(false);
                    }
                    continue;
                }
                None if line.iter().all(|b| b.is_ascii_whitespace()) => {}
                None => {
                    self.malformed += 1;
                    crate::exit::warn(format_args!(
                        "{}: skipping a malformed line at byte {} of segment {}",
                        self.label, self.pos.offset, self.pos.segment
                    ));
                }
            }
            self.pos.offset = line_end;
        }
        self.carry = data[start..].to_vec();
        Ok(true)
    }
}

/// Below this many bytes, bisecting a segment stops and the reader scans.
const SCAN_SPAN: u64 = 16 << 10;
/// How much a probe reads at once; a longer line is read on.
const PROBE_CHUNK: u64 = 8 << 10;

/// A line start in the first `end` bytes of a segment from which a forward
/// scan for the records after `seq` loses none: every record that starts
/// before it has a seq at or below `seq`. Found by bisecting byte offsets
/// (seqs grow along a segment): each probe resyncs to the next line start
/// and reads the seq of the first line there that parses, passing over
/// malformed ones. The reader still skips seqs up to `seq`, so the answer
/// needs to be early, never exact; a few probes replace a scan of up to a
/// whole segment.
fn seek_after(file: &File, end: u64, seq: u64) -> io::Result<u64> {
    seek_to(file, end, &|line| record::parse_seq(line).map(|s| s <= seq))
}

/// Whether a record comes before the time a reader starts at; one without
/// a readable time does too (it cannot be shown as written since then).
fn is_before(v: &View<'_>, t: DateTime<Utc>) -> bool {
    time::parse_stamp(&v.timestamp).is_none_or(|ts| ts < t)
}

/// As `seek_after`, for any order along the segment: `before` says whether
/// a line is a record before the wanted ones (`None`: not a record).
fn seek_to(file: &File, end: u64, before: &dyn Fn(&[u8]) -> Option<bool>) -> io::Result<u64> {
    let (mut lo, mut hi) = (0, end);
    while hi.saturating_sub(lo) > SCAN_SPAN {
        let mid = lo + (hi - lo) / 2;
        match probe(file, mid, hi, end, before)? {
            // The line holding `mid` runs to `hi` or past it.
            (first, _) if first >= hi => hi = mid,
            (_, Some(found)) if found.before => lo = found.end,
            (first, _) => hi = first,
        }
    }
    Ok(lo)
}

/// A complete line that is a record, and which side of the search it is on.
struct Found {
    end: u64,
    before: bool,
}

/// The first line start at or after `at`, and the first line from there
/// that starts before `hi` and is a record by `before`. Lines end at a
/// newline before `end`; what follows the last one is unfinished and
/// ignored.
fn probe(
    file: &File,
    at: u64,
    hi: u64,
    end: u64,
    before: &dyn Fn(&[u8]) -> Option<bool>,
) -> io::Result<(u64, Option<Found>)> {
    // Start one byte early: a newline there means `at` starts a line.
    let base = at.saturating_sub(1);
    let mut w = Window {
        file,
        base,
        limit: end,
        buf: Vec::new(),
    };
    let mut i = match at {
        0 => 0,
        _ => match w.newline_from(0)? {
            Some(k) => k + 1,
            None => return Ok((end, None)),
        },
    };
    let first = base + i as u64;
    while base + (i as u64) < hi {
        let Some(nl) = w.newline_from(i)? else {
            break;
        };
        if let Some(b) = before(&w.buf[i..nl]) {
            let line_end = base + nl as u64 + 1;
            return Ok((
                first,
                Some(Found {
                    end: line_end,
                    before: b,
                }),
            ));
        }
        i = nl + 1;
    }
    Ok((first, None))
}

/// Bytes of a file from `base` on, read in growing chunks up to `limit`.
struct Window<'f> {
    file: &'f File,
    base: u64,
    limit: u64,
    buf: Vec<u8>,
}

impl Window<'_> {
    /// The index of the first newline at or after index `from`.
    fn newline_from(&mut self, from: usize) -> io::Result<Option<usize>> {
        let mut i = from;
        loop {
            if let Some(k) = self.buf[i..].iter().position(|&b| b == b'\n') {
                return Ok(Some(i + k));
            }
            i = self.buf.len();
            if !self.read_more()? {
                return Ok(None);
            }
        }
    }

    fn read_more(&mut self) -> io::Result<bool> {
        let have = self.base + self.buf.len() as u64;
        if have >= self.limit {
            return Ok(false);
        }
        let want = PROBE_CHUNK
            .max(self.buf.len() as u64)
            .min(self.limit - have);
        let old = self.buf.len();
        self.buf.resize(old + want as usize, 0);
        self.file.read_exact_at(&mut self.buf[old..], have)?;
        Ok(true)
    }
}

/// The seq of the record whose newline ends just before `offset`.
fn seq_ending_at(file: &File, offset: u64) -> Result<Option<u64>> {
    if offset == 0 {
        return Ok(None);
    }
    let mut lines = RevLines::new(file, offset);
    Ok(match lines.next_with_end()? {
        Some((line, end)) if end == offset => record::parse_seq(&line),
        _ => None,
    })
}

/// The highest seq in a channel, from the end of its newest segments.
pub fn last_seq(state: &StateDir, name: &str) -> Result<Option<u64>> {
    let dir = state.channel(name);
    for seg in list_segments(&dir)?.into_iter().rev() {
        let Some(f) = open_segment(&dir, seg)? else {
            continue;
        };
        let len = f.metadata()?.len();
        if let Some(s) = last_seq_in(&f, len)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The last `n` complete, parsable lines of a channel, oldest first.
pub fn tail(state: &StateDir, name: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let dir = state.channel(name);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in list_segments(&dir)?.into_iter().rev() {
        if out.len() >= n {
            break;
        }
        let Some(f) = open_segment(&dir, seg)? else {
            continue;
        };
        let len = f.metadata()?.len();
        let mut lines = RevLines::new(&f, len);
        while out.len() < n {
            let Some(line) = lines.next_line()? else {
                break;
            };
            if record::parse_seq(&line).is_some() {
                out.push(line);
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// The position just past the newest record: where a reader that wants only
/// what comes next starts.
pub fn end_position(state: &StateDir, name: &str) -> Result<Position> {
    let dir = state.channel(name);
    end_position_in(&dir, &list_segments(&dir)?)
}

/// `end_position` over the segments `segs` listed in `dir`, newest last;
/// those removed since the listing are passed over.
fn end_position_in(dir: &Path, segs: &[u64]) -> Result<Position> {
    let Some(&newest) = segs.last() else {
        return Ok(Position {
            segment: 1,
            offset: 0,
            seq: 0,
        });
    };
    for &seg in segs.iter().rev() {
        let Some(f) = open_segment(dir, seg)? else {
            continue;
        };
        let len = f.metadata()?.len();
        let mut lines = RevLines::new(&f, len);
        while let Some((line, end)) = lines.next_with_end()? {
            if let Some(seq) = record::parse_seq(&line) {
                return Ok(Position {
                    segment: seg,
                    offset: end,
                    seq,
                });
            }
        }
        return Ok(Position {
            segment: seg,
            offset: 0,
            seq: seg.saturating_sub(1),
        });
    }
    Ok(Position {
        segment: newest,
        offset: 0,
        seq: newest.saturating_sub(1),
    })
}

/// A summary of one channel for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub name: String,
    pub records: u64,
    pub last_seq: u64,
    pub last_activity: Option<String>,
    pub archived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
}

/// Summarise a channel from its newest record (no full scan).
pub fn summarize(state: &StateDir, name: &str) -> Result<Summary> {
    let dir = state.channel(name);
    let segs = list_segments(&dir)?;
    let lines = tail(state, name, 1)?;
    let (last_seq, last_activity) = match lines.first().and_then(|l| record::parse(l)) {
        Some(v) => (v.seq, Some(v.timestamp.into_owned())),
        None => (0, None),
    };
    let first = segs.first().copied().unwrap_or(1);
    let records = if last_seq >= first {
        last_seq - first + 1
    } else {
        0
    };
    let mark = archive::mark(state, name)?;
    Ok(Summary {
        name: name.to_string(),
        records,
        last_seq,
        last_activity,
        archived: mark.is_some(),
        archived_at: mark.map(|m| m.archived_at).filter(|t| !t.is_empty()),
    })
}

/// Which channels a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The channels that are not archived: what listings show by default.
    Active,
    Archived,
    All,
}

/// Names of the channels that exist and are not archived, sorted: what a
/// listing or a view shows unless asked for archived ones.
pub fn list_channels(state: &StateDir) -> Result<Vec<String>> {
    list_channels_by(state, Listing::Active)
}

/// Names of the channels of one kind, sorted (one stat per channel to
/// tell archived ones).
pub fn list_channels_by(state: &StateDir, which: Listing) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(state.channels()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for ent in rd {
        let ent = ent?;
        if let Some(n) = ent.file_name().to_str()
            && crate::names::is_valid(n)
            && ent.file_type()?.is_dir()
        {
            let keep = match which {
                Listing::All => true,
                Listing::Active => !archive::marked(&ent.path()),
                Listing::Archived => archive::marked(&ent.path()),
            };
            if keep {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Post one message: lock, append, sync. Returns the stored line.
pub fn post(state: &StateDir, channel: &str, draft: &Draft) -> Result<String> {
    let mut app = Appender::open(state, channel, WriteOptions::from_env()?)?;
    let line = app.append(draft)?;
    app.commit()?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(content: &str) -> Draft {
        Draft {
            from: "lead".into(),
            kind: "text".into(),
            content: content.into(),
            ..Draft::default()
        }
    }

    fn opts(seg: u64) -> WriteOptions {
        WriteOptions {
            fsync: false,
            segment_bytes: seg,
        }
    }

    fn read_all(state: &StateDir, name: &str) -> Vec<u64> {
        let mut r = Reader::from_start(state, name).unwrap();
        let mut seqs = Vec::new();
        r.read_available(&mut |it| {
            seqs.push(it.view.seq);
            Ok(true)
        })
        .unwrap();
        seqs
    }

    #[test]
    fn id_and_timestamp_tell_the_same_time() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().to_path_buf());
        let mut a = Appender::open(&st, "g", opts(64 << 20)).unwrap();
        // Enough records to cross many millisecond boundaries.
        for _ in 0..20_000 {
            let line = a.append(&draft("m")).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let t = time::parse_stamp(v["timestamp"].as_str().unwrap()).unwrap();
            let id_ms = crate::infra::id::millis_of(v["id"].as_str().unwrap()).unwrap();
            assert_eq!(id_ms, t.timestamp_millis() as u64, "{line}");
        }
    }

    #[test]
    fn segment_bytes_parse_one_way() {
        assert_eq!(parse_segment_bytes("2048").unwrap(), 2048);
        for bad in ["0", "-1", "x", ""] {
            let e = parse_segment_bytes(bad).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), DATAERR, "{bad}");
        }
    }

    #[test]
    fn a_segment_removed_after_listing_is_passed_over() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().to_path_buf());
        {
            let mut a = Appender::open(&st, "g", opts(300)).unwrap();
            for i in 0..20 {
                a.append(&draft(&format!("m{i}"))).unwrap();
            }
            a.commit().unwrap();
        }
        let dir = st.channel("g");
        let mut segs = list_segments(&dir).unwrap();
        assert!(segs.len() > 1);
        let end = end_position(&st, "g").unwrap();
        // A newer segment listed, then removed before it was opened.
        segs.push(end.seq + 1000);
        assert_eq!(end_position_in(&dir, &segs).unwrap(), end);
        assert!(open_segment(&dir, end.seq + 1000).unwrap().is_none());
    }

    #[test]
    fn append_and_read_across_segments() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        for i in 0..50 {
            let mut a = Appender::open(&st, "g", opts(300)).unwrap();
            a.append(&draft(&format!("message {i}"))).unwrap();
            a.commit().unwrap();
        }
        assert!(list_segments(&st.channel("g")).unwrap().len() > 5);
        assert_eq!(read_all(&st, "g"), (1..=50).collect::<Vec<_>>());
        assert_eq!(last_seq(&st, "g").unwrap(), Some(50));
        let lines = tail(&st, "g", 3).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(end_position(&st, "g").unwrap().seq, 50);
        assert_eq!(record::parse_seq(&lines[0]), Some(48));
    }

    #[test]
    fn torn_tail_is_sealed_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        post(&st, "g", &draft("one")).unwrap();
        let seg = st.channel("g").join(segment_file_name(1));
        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(br#"{"seq":2,"id":"x","cont"#).unwrap();
        assert_eq!(read_all(&st, "g"), vec![1], "fragment invisible");
        post(&st, "g", &draft("two")).unwrap();
        let mut r = Reader::from_start(&st, "g").unwrap();
        let mut seqs = vec![];
        r.read_available(&mut |it| {
            seqs.push(it.view.seq);
            Ok(true)
        })
        .unwrap();
        assert_eq!(seqs, vec![1, 2]);
        assert_eq!(r.malformed, 1);
    }

    /// Every answer of `seek_after` must lose no record after `n` and
    /// skip every record that starts SCAN_SPAN or more before the first one.
    #[test]
    fn seek_after_finds_an_early_enough_line_start() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("seg");
        let mut data = Vec::new();
        // (start, seq) of each record, with malformed and long lines between.
        let mut recs = Vec::new();
        for seq in 10..3000u64 {
            if seq % 97 == 0 {
                data.extend_from_slice(b"not json at all\n\n");
            }
            if seq % 501 == 0 {
                data.extend_from_slice(br#"{"seq":"#);
                data.extend_from_slice(b"\n");
            }
            recs.push((data.len() as u64, seq));
            let pad = "x".repeat(if seq % 333 == 0 {
                40_000
            } else {
                (seq % 50) as usize
            });
            let line = format!(r#"{{"seq":{seq},"content":"{pad}"}}"#);
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
        }
        data.extend_from_slice(br#"{"seq":3000,"unfinished"#);
        fs::write(&path, &data).unwrap();
        let f = File::open(&path).unwrap();
        let len = data.len() as u64;
        for n in (0..=3001).chain([5000, u64::MAX]) {
            let at = seek_after(&f, len, n).unwrap();
            let next = recs.iter().find(|r| r.1 > n).map(|r| r.0).unwrap_or(len);
            assert!(at <= next, "n={n}: {at} is past the record at {next}");
            assert!(
                at == 0 || data[at as usize - 1] == b'\n',
                "n={n}: {at} starts no line"
            );
            assert!(
                next - at <= SCAN_SPAN + 40_100,
                "n={n}: {at} is far before {next}"
            );
        }
    }

    #[test]
    fn after_seq_reads_exactly_what_follows() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let mut a = Appender::open(&st, "g", opts(64 << 10)).unwrap();
        for i in 0..3000 {
            a.append(&draft(&format!("message {i} {}", "y".repeat(i % 90))))
                .unwrap();
        }
        a.commit().unwrap();
        assert!(list_segments(&st.channel("g")).unwrap().len() > 3);
        for n in [0, 1, 2, 700, 1500, 2999, 3000, 3001] {
            let mut r = Reader::after_seq(&st, "g", n).unwrap();
            let mut seqs = Vec::new();
            r.read_available(&mut |it| {
                seqs.push(it.view.seq);
                Ok(true)
            })
            .unwrap();
            assert_eq!(seqs, (n + 1..=3000).collect::<Vec<_>>(), "n={n}");
        }
    }

    #[test]
    fn resume_validates_position() {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        for i in 0..5 {
            post(&st, "g", &draft(&format!("m{i}"))).unwrap();
        }
        let mut r = Reader::from_start(&st, "g").unwrap();
        let mut k = 0;
        r.read_available(&mut |_| {
            k += 1;
            Ok(k < 3)
        })
        .unwrap();
        let pos = r.position();
        assert_eq!(pos.seq, 3);
        let seqs = |mut r: Reader| {
            let mut v = vec![];
            r.read_available(&mut |it| {
                v.push(it.view.seq);
                Ok(true)
            })
            .unwrap();
            v
        };
        assert_eq!(seqs(Reader::resume(&st, "g", pos).unwrap()), vec![4, 5]);
        // Resuming reads only what follows the offset, and ends at the file's end.
        let mut r = Reader::resume(&st, "g", pos).unwrap();
        r.read_available(&mut |_| Ok(true)).unwrap();
        let len = fs::metadata(st.channel("g").join(segment_file_name(1)))
            .unwrap()
            .len();
        assert_eq!(
            r.position(),
            Position {
                segment: 1,
                offset: len,
                seq: 5
            }
        );
        // A wrong offset falls back to the seq.
        let bad = Position {
            offset: pos.offset - 3,
            ..pos
        };
        assert_eq!(seqs(Reader::resume(&st, "g", bad).unwrap()), vec![4, 5]);
        // A missing segment falls back too.
        let gone = Position { segment: 99, ..pos };
        assert_eq!(seqs(Reader::resume(&st, "g", gone).unwrap()), vec![4, 5]);
    }
}
