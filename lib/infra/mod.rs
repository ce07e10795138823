//! Infrastructure every other module stands on, none of it specific to mt's
//! nouns: atomic file replacement and appends (`fsutil`), flock(2) locks
//! (`lock`), Claude Code's lock directories (`dirlock`), inotify wake-ups
//! (`wake`), /proc process inspection (`procs`), record ids (`id`) and
//! times and durations (`time`).

pub mod dirlock;
pub mod fsutil;
pub mod id;
pub mod lock;
pub mod procs;
pub mod time;
pub mod wake;
