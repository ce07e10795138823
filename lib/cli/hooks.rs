//! mt-hooks: wire mt's hooks into Claude Code's settings, as the installed
//! hook scripts or as the mt-hook binary itself.

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Tool;
use crate::claude_settings::{self, Source};
use crate::exit::{self, UNAVAILABLE, fail};
use crate::statedir;

/// Install mt's hooks into Claude Code settings
///
/// install merges mt's entries into a settings file (creating it if needed)
/// and keeps every other key and entry as it is; running it twice changes
/// nothing. uninstall removes only mt's entries. print shows the entries.
#[derive(Debug, Parser)]
#[command(version)]
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

    /// How Claude Code runs mt's hooks
    #[arg(long, value_enum, default_value = "auto")]
    pub form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// The scripts when a hooks directory is given or installed, else mt-hook
    Auto,
    /// The hook scripts (`make install`)
    Scripts,
    /// The mt-hook binary beside this program, with the event as argument
    Direct,
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
  $ mt-hooks print | jq .hooks.Stop

After `cargo install`, with no hook scripts installed, the entries run mt-hook itself:
  $ mt-hooks print --form direct | jq -r '.hooks.Stop[0].hooks[0].command'
  /home/me/.cargo/bin/mt-hook stop",
            ),
            (
                "FORMS",
                "An entry runs either one of the hook scripts (PREFIX/share/mt/hooks/stop), which `make install` puts there, or the mt-hook binary with the event as its argument (PREFIX/bin/mt-hook stop), which needs nothing but the binary and, like the scripts, never exits 2. --form auto (the default) writes the scripts when --hooks-dir or MT_HOOKS_DIR is given or PREFIX/share/mt/hooks exists beside this program, and the binary form otherwise; the binary form uses the mt-hook beside this program.

The entries are SessionStart, UserPromptSubmit, Stop, PostToolUse for every tool (matcher \"*\": every tool call restarts the count of Stop blocks, see mt-hook(1)) and Notification for idle_prompt. Notification fires in interactive sessions only.",
            ),
            (
                "FILES",
                "PREFIX/share/mt/hooks/\tthe hook scripts: session-start, user-prompt-submit, stop, post-tool-use, notification. Each finds mt-hook in $MT_BIN, then in its own PREFIX/bin, then on PATH.
DIR/.claude/settings.json\t--project
$CLAUDE_CONFIG_DIR/settings.json\t--user (~/.claude/settings.json)

mt's entries are recognised by their command: one of the script names above, in the hooks directory or in any directory ending in mt/hooks; or an absolute path to a program named mt-hook followed by one of those names and nothing else. Installing replaces mt's entries of either form, so switching forms or prefixes leaves one entry per event. The file is replaced atomically; a symlinked file is updated where it points.",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess, including nothing to change
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "ENVIRONMENT",
                "CLAUDE_CONFIG_DIR\tClaude Code's directory (~/.claude)",
            ),
            ("SEE ALSO", "mt-hook(1), mt(7)"),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

/// This program's directory (PREFIX/bin), through its real path.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    Ok(exe.parent().unwrap_or(Path::new("/")).to_path_buf())
}

/// The hook scripts' directory, absolute: the flag, else PREFIX/share/mt/hooks
/// for the PREFIX/bin this program runs from.
fn hooks_dir(h: &HooksDir) -> Result<PathBuf> {
    let dir = match &h.hooks_dir {
        Some(d) if !d.as_os_str().is_empty() => std::path::absolute(d)?,
        _ => {
            let bin = bin_dir()?;
            bin.parent()
                .unwrap_or(Path::new("/"))
                .join("share/mt/hooks")
        }
    };
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// The mt-hook beside this program, absolute.
fn mt_hook() -> Result<PathBuf> {
    let path = bin_dir()?.join("mt-hook");
    if !path.is_file() {
        return Err(fail(
            UNAVAILABLE,
            format!("no {} beside this program", path.display()),
        ));
    }
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// What the entries run, as chosen by --form.
enum Chosen {
    Scripts(PathBuf),
    Binary(PathBuf),
}

impl Chosen {
    fn source(&self) -> Source<'_> {
        match self {
            Chosen::Scripts(d) => Source::Scripts(d),
            Chosen::Binary(b) => Source::Binary(b),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Chosen::Scripts(p) | Chosen::Binary(p) => p,
        }
    }
}

fn choose(h: &HooksDir) -> Result<Chosen> {
    let given = h
        .hooks_dir
        .as_ref()
        .is_some_and(|d| !d.as_os_str().is_empty());
    Ok(match h.form {
        Form::Scripts => Chosen::Scripts(hooks_dir(h)?),
        Form::Direct => Chosen::Binary(mt_hook()?),
        Form::Auto => {
            let dir = hooks_dir(h)?;
            if given || dir.is_dir() {
                Chosen::Scripts(dir)
            } else {
                Chosen::Binary(mt_hook()?)
            }
        }
    })
}

/// Refuse to point Claude Code at scripts that are not there.
fn check_scripts(dir: &Path) -> Result<()> {
    for e in claude_settings::ENTRIES {
        if !dir.join(e.script).is_file() {
            return Err(fail(
                UNAVAILABLE,
                format!(
                    "no hook script {} (install mt with `make install`, give --hooks-dir, or use --form direct)",
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
            let chosen = choose(&h)?;
            serde_json::to_writer_pretty(&mut out, &claude_settings::snippet(chosen.source()))?;
            out.write_all(b"\n")?;
        }
        Action::Install(t) => {
            let chosen = choose(&t.hooks)?;
            if let Chosen::Scripts(dir) = &chosen {
                check_scripts(dir)?;
            }
            let path = settings_path(&t)?;
            let mut s = claude_settings::load(&path)?;
            if claude_settings::install(&mut s, chosen.source())? {
                claude_settings::save(&path, &s)?;
                writeln!(
                    out,
                    "installed mt's hooks ({}) in {}",
                    chosen.path().display(),
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
            // Entries of either form go; the directory only widens what
            // counts as a script of ours.
            let dir = hooks_dir(&t.hooks)?;
            let path = settings_path(&t)?;
            let mut s = claude_settings::load(&path)?;
            if claude_settings::uninstall(&mut s, &dir)? {
                claude_settings::save(&path, &s)?;
                writeln!(out, "removed mt's hooks from {}", path.display())?;
            } else {
                writeln!(out, "no mt hooks in {}", path.display())?;
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
