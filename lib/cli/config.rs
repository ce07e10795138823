//! mt-config: show the settings in force and where each came from; set and
//! unset them in the global or the project file.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

use super::{Column, Tool, write_table};
use crate::config::{self, KEYS, Settings};
use crate::exit::{CONFIG, NO, fail};

/// Show and change mt's settings
///
/// Settings say what a team starts with: the agent program, model,
/// permission mode, names, how many coworkers at once, the channel, the
/// watcher's rules, the auth profile. They live in a global file and a
/// project file; a value comes from the first of the tool's flag, its
/// environment variable, the project file, the global file, the built-in
/// default. Without a command, mt-config prints every setting in force with
/// where it came from.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// With no command: one JSON object per setting (key, value, from,
    /// layer)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a setting's value in force (exit 1 when it has none)
    Get {
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Set a setting in the project file (or the global one); the file
    /// keeps its comments and layout
    Set {
        #[arg(value_name = "KEY")]
        key: String,
        /// The value; a list takes several (pool, allow)
        #[arg(value_name = "VALUE", required = true, num_args = 1..)]
        value: Vec<String>,
        /// Write the global file instead of the project's
        #[arg(long)]
        global: bool,
    },
    /// Remove a setting from the project file (or the global one)
    Unset {
        #[arg(value_name = "KEY")]
        key: String,
        /// Change the global file instead of the project's
        #[arg(long)]
        global: bool,
    },
    /// Print the paths of the global and the project file, existing or not
    Path,
}

pub fn tool() -> Tool {
    let keys: Vec<String> = KEYS
        .iter()
        .map(|k| {
            let env = k.env.map(|e| format!(" (${e})")).unwrap_or_default();
            let default = k
                .default
                .map(|d| format!("; default {d}"))
                .unwrap_or_default();
            format!("{}{env}\t{}{default}", k.name, k.help)
        })
        .collect();
    let keys: &'static str = Box::leak(keys.join("\n").into_boxed_str());
    // The key table comes from `KEYS`; the tool is described once per run.
    let sections: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
            ("SETTINGS", keys),
            (
                "FILES",
                "$MT_CONFIG_HOME/config.toml\tthe global settings; MT_CONFIG_HOME defaults to $XDG_CONFIG_HOME/mt, else ~/.config/mt
.mt/config.toml\tthe project's settings, at the top of the repository's main working tree (shared by its worktrees; commit it to share it with the team)

Both are TOML, keys as above, e.g.:
  model = \"sonnet\"
  pool = [\"ada\", \"bo\", \"cy\"]
  max-agents = 3
  allow = [\"Bash(npm test:*)\"]

Relative paths (permissions, rules) are taken from the directory of the file that names them. An unknown key, a value of the wrong kind or a file that cannot be read is an error naming the file and line, for every tool that reads the settings.",
            ),
            (
                "EXAMPLES",
                "What is in force, and why:
  $ mt-config
A team-wide model, and a personal profile:
  $ mt-config set model sonnet
  $ mt-config set --global profile work
Scripts read one value:
  $ mt-config get max-agents",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tget: the setting has no value
2\tusage error
78\ta settings file or variable is unreadable or invalid, an unknown key, or no project file to write outside a repository",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-lead(1), mt-profile(1), mt-spawn(1), mt-sling(1), mt-dispatch(1), mt-watch(1), mt(7)",
            ),
    ]));
    Tool::of::<Args>("mt-config", sections)
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    match args.command {
        None => show(args.json),
        Some(Command::Get { key }) => {
            config::key(&key).ok_or_else(|| config::unknown_key(&key))?;
            let s = Settings::load()?;
            match &s.entry(&key).value {
                Some(v) => {
                    println!("{v}");
                    Ok(0)
                }
                None => Ok(NO),
            }
        }
        Some(Command::Set { key, value, global }) => {
            let k = config::key(&key).ok_or_else(|| config::unknown_key(&key))?;
            if value.len() > 1 && k.kind != config::Kind::List {
                return Err(fail(CONFIG, format!("{key} takes one value")));
            }
            config::write_key(&file(global)?, &key, Some(&value.join("\n")))?;
            Ok(0)
        }
        Some(Command::Unset { key, global }) => {
            config::write_key(&file(global)?, &key, None)?;
            Ok(0)
        }
        Some(Command::Path) => {
            let s = Settings::load()?;
            let show = |p: &Option<std::path::PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into())
            };
            println!("global\t{}", show(&s.global_file));
            println!("project\t{}", show(&s.project_file));
            Ok(0)
        }
    }
}

/// The file `set` and `unset` change.
fn file(global: bool) -> Result<std::path::PathBuf> {
    if global {
        return Ok(config::config_home()?.join("config.toml"));
    }
    let cwd = std::env::current_dir()?;
    config::project_dir(&cwd)
        .map(|d| d.join("config.toml"))
        .ok_or_else(|| {
            fail(
                CONFIG,
                "not inside a git repository with a working tree: no project file (use --global)",
            )
        })
}

fn show(json: bool) -> Result<u8> {
    let s = Settings::load()?;
    let mut out = std::io::stdout().lock();
    if json {
        for e in s.entries() {
            let v = serde_json::json!({
                "key": e.key.name,
                "value": e.value.as_ref().map(config::Value::to_json),
                "from": e.source.to_string(),
                "layer": e.source.layer(),
            });
            writeln!(out, "{v}")?;
        }
    } else {
        let rows: Vec<Vec<String>> = s
            .entries()
            .iter()
            .map(|e| {
                vec![
                    e.key.name.to_string(),
                    e.value
                        .as_ref()
                        .map(|v| crate::names::printable(&v.to_string()).into_owned())
                        .unwrap_or_else(|| "-".into()),
                    e.source.to_string(),
                ]
            })
            .collect();
        write_table(
            &mut out,
            &[
                Column::left("KEY", 0),
                Column::left("VALUE", 0),
                Column::left("FROM", 0),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(0)
}
