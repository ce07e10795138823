//! Support for the tests that drive the real Claude Code CLI: a stand-in
//! Messages API on loopback (`api`) and an environment that runs mt's tools
//! and `claude` against it (`claude`).
#![allow(dead_code)]

pub mod api;
pub mod claude;
