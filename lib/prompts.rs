//! The texts appended to the system prompt of the lead (`mt-lead`) and of
//! every coworker (`mt-spawn`, `mt-sling`, `mt-dispatch`): a built-in one on
//! how a team works through mt, then the user's own, global and per project
//! (`LEAD.md`, `COWORKER.md` in the config home and in the project's `.mt/`).

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::exit::{CONFIG, fail};

/// Whose prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Lead,
    Coworker,
}

impl Role {
    /// The built-in text.
    pub fn builtin(self) -> &'static str {
        match self {
            Role::Lead => include_str!("../share/prompts/lead.md"),
            Role::Coworker => include_str!("../share/prompts/coworker.md"),
        }
    }

    /// The user's file name for this role.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Lead => "LEAD.md",
            Role::Coworker => "COWORKER.md",
        }
    }
}

/// A command line argument holds at most 128 KiB on Linux; the prompt
/// travels in one.
pub const MAX_PROMPT_BYTES: usize = 100 * 1024;

/// The user's files for `role` that exist, global first.
pub fn user_files(role: Role, project_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(h) = crate::config::config_home() {
        v.push(h.join(role.file_name()));
    }
    if let Some(p) = project_dir {
        v.push(p.join(role.file_name()));
    }
    v.retain(|p| p.exists());
    v
}

/// The whole text for `role`: built in, then global, then the project's.
pub fn compose(role: Role, project_dir: Option<&Path>) -> Result<String> {
    let mut text = role.builtin().trim_end().to_string();
    for f in user_files(role, project_dir) {
        let own = std::fs::read(&f)
            .map_err(|e| fail(CONFIG, format!("cannot read {}: {e}", f.display())))?;
        let own = String::from_utf8(own)
            .map_err(|_| fail(CONFIG, format!("{}: not UTF-8 text", f.display())))?;
        if !own.trim().is_empty() {
            text.push_str("\n\n");
            text.push_str(own.trim_end());
        }
    }
    if text.len() > MAX_PROMPT_BYTES {
        return Err(fail(
            CONFIG,
            format!(
                "the {} prompt is {} bytes with {}; at most {MAX_PROMPT_BYTES} fit on a command line",
                if role == Role::Lead {
                    "lead"
                } else {
                    "coworker"
                },
                text.len(),
                role.file_name()
            ),
        ));
    }
    text.push('\n');
    Ok(text)
}
