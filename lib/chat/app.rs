//! What mt-chat shows, held in memory only: the channels and their unread
//! counts, the records of the current channel, the input line, the
//! switcher and the team overview. Everything here is read again from the
//! files; the one thing written back is the person's reader cursor.

use anyhow::Result;
use std::collections::VecDeque;

use super::feed::{self, Forward, Msg};
use crate::channel::{self, Position};
use crate::cursor;
use crate::statedir::StateDir;
use crate::status::Overview;

/// Records read for a first screen, and per page when scrolling back.
pub const WINDOW: usize = 400;
/// Records held at most; the oldest are let go (and read again on demand).
const HELD: usize = 20_000;

#[derive(Debug, Clone)]
pub struct Chan {
    pub name: String,
    pub last_seq: u64,
    /// The person's cursor on it (seq), if any.
    pub read: Option<u64>,
}

impl Chan {
    pub fn unread(&self) -> u64 {
        self.last_seq.saturating_sub(self.read.unwrap_or(0))
    }
}

/// Where the view starts: `None` follows the newest record; otherwise the
/// record (index into `msgs`) and the wrapped line within it at the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    pub index: usize,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct Switcher {
    pub filter: String,
    pub selected: usize,
}

pub struct App {
    pub state: StateDir,
    pub me: String,
    pub color: bool,
    pub channels: Vec<Chan>,
    pub current: String,
    pub msgs: VecDeque<Msg>,
    /// Older records may exist before `msgs`.
    pub more_before: bool,
    fwd: Forward,
    /// Records at or below this seq are not owed to the person: the cursor,
    /// or for a first visit the record before the first one shown.
    owed_after: u64,
    /// The first visit of this channel: what the first frame draws is
    /// where the person starts.
    fresh: bool,
    pub top: Option<Top>,
    /// Put this seq at the top of the next frame (the first unread record).
    pub anchor: Option<u64>,
    pub input: String,
    /// Caret, in chars.
    pub caret: usize,
    pub switcher: Option<Switcher>,
    pub overview: Option<Overview>,
    /// A line for what went wrong (a failed post), shown until the next key.
    pub notice: Option<String>,
    pub quit: bool,
}

impl App {
    pub fn new(state: StateDir, me: String, channel: String, color: bool) -> Result<App> {
        let fwd = Forward::at(&state, &channel, Position::default());
        let mut app = App {
            state,
            me,
            color,
            channels: Vec::new(),
            current: channel.clone(),
            msgs: VecDeque::new(),
            more_before: false,
            fwd,
            owed_after: 0,
            fresh: false,
            top: None,
            anchor: None,
            input: String::new(),
            caret: 0,
            switcher: None,
            overview: None,
            notice: None,
            quit: false,
        };
        app.refresh_channels()?;
        app.open(&channel)?;
        Ok(app)
    }

    /// Read the channel list and each channel's newest seq and cursor.
    pub fn refresh_channels(&mut self) -> Result<()> {
        let mut names = channel::list_channels(&self.state)?;
        names.retain(|n| n == &self.current || !channel::archive::is_archived(&self.state, n));
        if !names.contains(&self.current) {
            names.push(self.current.clone());
            names.sort();
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let last_seq = channel::last_seq(&self.state, &name)?.unwrap_or(0);
            let read = cursor::load(&self.state, &self.me, &name)?.map(|p| p.seq);
            out.push(Chan {
                name,
                last_seq,
                read,
            });
        }
        self.channels = out;
        self.fix_current_unread();
        Ok(())
    }

    /// The current channel counts as read up to what is owed, whatever
    /// the cursor file says.
    fn fix_current_unread(&mut self) {
        let owed = self.owed_after;
        if let Some(c) = self.channels.iter_mut().find(|c| c.name == self.current) {
            c.read = Some(c.read.unwrap_or(0).max(owed));
        }
    }

    /// Show channel `name`: the first unread record at the top when there
    /// is one, otherwise the newest records.
    pub fn open(&mut self, name: &str) -> Result<()> {
        crate::names::check("channel", name)?;
        let saved = cursor::load(&self.state, &self.me, name)?;
        let last = channel::last_seq(&self.state, name)?.unwrap_or(0);
        self.current = name.to_string();
        self.top = None;
        self.anchor = None;
        self.msgs.clear();
        self.fresh = saved.is_none();
        let far_behind = saved.filter(|c| {
            last.saturating_sub(c.seq) > WINDOW as u64
                && feed::valid(&self.state, name, *c).unwrap_or(false)
        });
        if let Some(c) = far_behind {
            // Read on from the cursor, never the whole channel.
            self.fwd = Forward::at(&self.state, name, c);
            self.msgs.extend(self.fwd.read(WINDOW, &self.me)?);
            self.more_before = true;
            self.owed_after = c.seq;
        } else {
            let tail = feed::tail(&self.state, name, WINDOW, &self.me)?;
            self.more_before = tail.len() == WINDOW;
            let end = tail
                .last()
                .map(|m| m.end)
                .map_or_else(|| channel::end_position(&self.state, name), Ok)?;
            self.fwd = Forward::at(&self.state, name, end);
            self.owed_after = match saved {
                Some(c) => c.seq,
                // A first visit owes only what is on screen now.
                None => tail.first().map_or(last, |m| m.seq.saturating_sub(1)),
            };
            self.msgs.extend(tail);
        }
        if !self.fresh {
            self.anchor = self
                .msgs
                .iter()
                .find(|m| m.seq > self.owed_after)
                .map(|m| m.seq);
        }
        if !self.channels.iter().any(|c| c.name == name) {
            self.refresh_channels()?;
        }
        self.fix_current_unread();
        Ok(())
    }

    /// Read what was appended to the current channel since.
    pub fn pull(&mut self) -> Result<usize> {
        let new = self.fwd.read(WINDOW * 4, &self.me)?;
        let n = new.len();
        self.msgs.extend(new);
        while self.msgs.len() > HELD {
            self.msgs.pop_front();
            self.more_before = true;
            if let Some(t) = &mut self.top {
                t.index = t.index.saturating_sub(1);
            }
        }
        Ok(n)
    }

    /// Read a page of records before the oldest held; how many.
    pub fn pull_older(&mut self) -> Result<usize> {
        let Some(first) = self.msgs.front() else {
            return Ok(0);
        };
        if !self.more_before {
            return Ok(0);
        }
        let older = feed::before(
            &self.state,
            &self.current,
            Some((first.end.segment, first.start)),
            WINDOW,
            &self.me,
        )?;
        let n = older.len();
        self.more_before = n == WINDOW;
        for m in older.into_iter().rev() {
            self.msgs.push_front(m);
        }
        if let Some(t) = &mut self.top {
            t.index += n;
        }
        Ok(n)
    }

    /// Records `lo..=hi` (indices into `msgs`) were drawn: move the cursor
    /// to the newest of them when nothing owed lies before them unseen.
    pub fn drawn(&mut self, lo: usize, hi: usize) -> Result<bool> {
        let (Some(first), Some(last)) = (self.msgs.get(lo), self.msgs.get(hi)) else {
            return Ok(false);
        };
        if std::mem::take(&mut self.fresh) {
            self.owed_after = self.owed_after.max(first.seq.saturating_sub(1));
        }
        let nothing_skipped = first.seq <= self.owed_after + 1
            || match lo.checked_sub(1) {
                Some(i) => self.msgs[i].seq <= self.owed_after,
                None => !self.more_before,
            };
        if !nothing_skipped || last.seq <= self.owed_after {
            return Ok(false);
        }
        let end = last.end;
        let _lock = cursor::lock_agent(&self.state, &self.me)?;
        // Another reader as the same person may have gone further.
        if cursor::load(&self.state, &self.me, &self.current)?.is_some_and(|c| c.seq >= end.seq) {
            self.owed_after = self.owed_after.max(end.seq);
        } else {
            cursor::save(&self.state, &self.me, &self.current, end)?;
            self.owed_after = end.seq;
        }
        if let Some(c) = self.channels.iter_mut().find(|c| c.name == self.current) {
            c.read = Some(self.owed_after);
            c.last_seq = c.last_seq.max(end.seq);
        }
        Ok(true)
    }

    /// Post the input line as the person.
    pub fn send(&mut self) -> Result<()> {
        let content = self.input.trim_end().to_string();
        if content.trim().is_empty() {
            return Ok(());
        }
        let draft = channel::Draft {
            from: self.me.clone(),
            kind: "text".into(),
            content,
            ..channel::Draft::default()
        };
        channel::post(&self.state, &self.current, &draft)?;
        self.input.clear();
        self.caret = 0;
        self.top = None;
        Ok(())
    }

    /// Names `@` completes: the agents, then the person.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .overview
            .as_ref()
            .map(|o| o.agents.iter().map(|a| a.name.clone()).collect())
            .unwrap_or_else(|| crate::agent::list(&self.state).unwrap_or_default());
        v.push("all".into());
        v.sort();
        v.dedup();
        v
    }

    /// Channels the switcher offers for its filter (substring match, those
    /// starting with the filter first).
    pub fn matches(&self, filter: &str) -> Vec<String> {
        let f = filter.to_lowercase();
        let mut v: Vec<&Chan> = self
            .channels
            .iter()
            .filter(|c| c.name.contains(&f))
            .collect();
        v.sort_by_key(|c| (!c.name.starts_with(&f), c.name.clone()));
        v.into_iter().map(|c| c.name.clone()).collect()
    }

    /// Move to the next (or previous) channel in the list.
    pub fn cycle(&mut self, step: isize) -> Result<()> {
        let n = self.channels.len() as isize;
        if n == 0 {
            return Ok(());
        }
        let i = self
            .channels
            .iter()
            .position(|c| c.name == self.current)
            .unwrap_or(0) as isize;
        let next = self.channels[((i + step).rem_euclid(n)) as usize]
            .name
            .clone();
        self.open(&next)
    }
}
