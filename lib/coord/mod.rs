//! The coordination commands' libraries: what `mt-route` (deliver
//! @mentions), `mt-reap` (end dead or stuck agents), `mt-dispatch` (start
//! agents for pending tasks) and `mt-remind` (fire reminders) do. Each is a
//! small, one-shot pass over the files, meant to be run by a watcher rule
//! (`mt-watch`) or by hand; none keeps state in memory between runs.

pub mod dispatch;
pub mod reap;
pub mod remind;
pub mod route;
