//! mt-hooks: wire mt's hook scripts into Claude Code's settings.

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Parser, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Tool;
use crate::exit::{self, UNAVAILABLE, fail};
use crate::settings;
use crate::statedir;

/// Install mt's hooks into Claude Code settings
///
/// install merges mt's entries into a settings file (creating it if needed)
/// and keeps every other key and entry as it is; running it twice changes
/// nothing. uninstall removes only mt's entries. print shows the entries.
#[derive(Debug, Parser)]
#[command(name = "mt-hooks", version)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Add mt's hooks to a settings file
    Install(Target),
    /// Remove mt's hooks from a settings file
    Uninstall(Target),
    /// Print mt's hooks as a settings snippet
    Print(HooksDir),
}

#[derive(Debug, Clone, ClapArgs)]
pub struct HooksDir {
    /// Where the hook scripts are (default: PREFIX/share/mt/hooks beside this
    /// program's PREFIX/bin)
    #[arg(long, env = "MT_HOOKS_DIR", value_name = "DIR")]
    pub hooks_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct Target {
    /// The project's .claude/settings.json (default: the repository around
    /// the current directory)
    #[arg(long, value_name = "DIR", group = "where")]
    pub project: Option<PathBuf>,

    /// The user's settings.json in Claude Code's directory
    #[arg(long, group = "where")]
    pub user: bool,

    /// This settings file
    #[arg(long, value_name = "FILE", group = "where")]
    pub settings: Option<PathBuf>,

    #[command(flatten)]
    pub hooks: HooksDir,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-hooks",
        &[
            (
                "EXAMPLES",
                "Install the hooks for the repository you are in, then for every project:
  $ mt-hooks install
  $ mt-hooks install --user

Give a headless agent its own settings file:
  $ mt-hooks install --settings /tmp/york.json && claude -p --settings /tmp/york.json …

See what would be added:
  $ mt-hooks print | jq .hooks.Stop",
            ),
            (
                "FILES",
                "PREFIX/share/mt/hooks/\tthe hook scripts: session-start, user-prompt-submit, stop, post-tool-use, notification. Each finds mt-hook in $MT_BIN, then in its own PREFIX/bin, then on PATH.
DIR/.claude/settings.json\t--project
$CLAUDE_CONFIG_DIR/settings.json\t--user (~/.claude/settings.json)

mt's entries are recognised by their command: one of the script names above, in the hooks directory or in any directory ending in mt/hooks. The file is replaced atomically; a symlinked file is updated where it points.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess, including nothing to change
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "MT_HOOKS_DIR\tthe hook scripts' directory
CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)",
            ),
            ("SEE ALSO", "mt-hook(1), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    exit::main("mt-hooks", || run(args))
}

/// The hook scripts' directory, absolute: the flag, else PREFIX/share/mt/hooks
/// for the PREFIX/bin this program runs from.
fn hooks_dir(h: &HooksDir) -> Result<PathBuf> {
    let dir = match &h.hooks_dir {
        Some(d) if !d.as_os_str().is_empty() => std::path::absolute(d)?,
        _ => {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let prefix = exe
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"));
            prefix.join("share/mt/hooks")
        }
    };
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// Refuse to point Claude Code at scripts that are not there.
fn check_scripts(dir: &Path) -> Result<()> {
    for e in settings::ENTRIES {
        if !dir.join(e.script).is_file() {
            return Err(fail(
                UNAVAILABLE,
                format!(
                    "no hook script {} (install mt with `make install`, or give --hooks-dir)",
                    dir.join(e.script).display()
                ),
            ));
        }
    }
    Ok(())
}

fn settings_path(t: &Target) -> Result<PathBuf> {
    if let Some(f) = &t.settings {
        return Ok(f.clone());
    }
    if t.user {
        return Ok(statedir::claude_config_dir()?.join("settings.json"));
    }
    let project = match &t.project {
        Some(p) => p.clone(),
        None => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            statedir::discover_git(&cwd).map(|g| g.top).unwrap_or(cwd)
        }
    };
    Ok(project.join(".claude").join("settings.json"))
}

pub fn run(args: Args) -> Result<u8> {
    let mut out = io::stdout().lock();
    match args.action {
        Action::Print(h) => {
            let dir = hooks_dir(&h)?;
            serde_json::to_writer_pretty(&mut out, &settings::snippet(&dir))?;
            out.write_all(b"\n")?;
        }
        Action::Install(t) => {
            let dir = hooks_dir(&t.hooks)?;
            check_scripts(&dir)?;
            let path = settings_path(&t)?;
            let mut s = settings::load(&path)?;
            if settings::install(&mut s, &dir)? {
                settings::save(&path, &s)?;
                writeln!(
                    out,
                    "installed mt's hooks ({}) in {}",
                    dir.display(),
                    path.display()
                )?;
            } else {
                writeln!(
                    out,
                    "mt's hooks are already installed in {}",
                    path.display()
                )?;
            }
        }
        Action::Uninstall(t) => {
            let dir = hooks_dir(&t.hooks)?;
            let path = settings_path(&t)?;
            let mut s = settings::load(&path)?;
            if settings::uninstall(&mut s, &dir)? {
                settings::save(&path, &s)?;
                writeln!(out, "removed mt's hooks from {}", path.display())?;
            } else {
                writeln!(out, "no mt hooks in {}", path.display())?;
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
