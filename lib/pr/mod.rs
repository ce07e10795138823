//! Pull requests on GitHub, followed without webhooks (`mt-pr`): a pass run
//! by a watcher rule asks GitHub's own command-line tool, `gh`, for the
//! repository's pull requests in one call, posts each change once to the
//! channel and nudges the coworker who owns the pull request when it must
//! act; a reviewer coworker can be started for a pull request; and the
//! reminders' `all-work-merged` condition reads what the passes saw.
//!
//! - `gh`: running gh, and its answers checked whole
//! - `remote`: which GitHub repository (`--repo`, else the git remote)
//! - `changes`: what is kept per pull request, and what changed
//! - `store`: `pr/` in the state directory (state, plan, lock)
//! - `sync`: one pass, exactly once across concurrent and killed passes
//! - `review`: a reviewer coworker
//! - `merged`: the `all-work-merged` condition

pub mod changes;
pub mod gh;
pub mod merged;
pub mod remote;
pub mod review;
pub mod store;
pub mod sync;
