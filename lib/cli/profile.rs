//! mt-profile: the auth profiles agents can be started with.

use anyhow::Result;
use clap::{ArgGroup, Parser, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Column, Common, Tool};
use crate::exit::{NO, fail};
use crate::profile::{self, Auth};

/// Manage auth profiles: which account or endpoint agents use
///
/// A profile is either a Claude Code configuration directory, logged in to
/// an account of its own (the agent gets CLAUDE_CONFIG_DIR), or an API key
/// with an optional base URL for an Anthropic-compatible endpoint (the
/// agent gets ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL). mt-spawn,
/// mt-sling and mt-dispatch start agents with one; the agent keeps it when
/// resumed. Profiles belong to the user, not to a repository, and no tool
/// ever prints a key.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a profile: a Claude Code directory, or an API key read from
    /// standard input
    #[command(group(ArgGroup::new("auth").required(true).args(["config_dir", "api_key_stdin"])))]
    Add {
        /// Profile name (a-z 0-9 . _ -)
        #[arg(value_name = "NAME")]
        name: String,
        /// A Claude Code configuration directory (log in with
        /// CLAUDE_CONFIG_DIR=DIR claude first)
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Read the API key from the first line of standard input
        #[arg(long)]
        api_key_stdin: bool,
        /// Base URL of an Anthropic-compatible endpoint, for an API key
        #[arg(long, value_name = "URL", conflicts_with = "config_dir")]
        base_url: Option<String>,
        /// Replace a profile of that name (to rotate a key)
        #[arg(long)]
        force: bool,
    },
    /// List profiles: name, kind, directory or base URL, agents, default
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Make NAME the default profile of new agents (the profile setting of
    /// the global settings file)
    Use {
        #[arg(value_name = "NAME", required_unless_present = "none")]
        name: Option<String>,
        /// Clear the default: new agents use the caller's own login
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Remove a profile; refused while an agent using it runs
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
        /// Remove it even though agents use it (they cannot be resumed
        /// until a profile of that name is added again)
        #[arg(long)]
        force: bool,
    },
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-profile",
        &[
            (
                "COMMANDS",
                "add NAME (--config-dir DIR | --api-key-stdin [--base-url URL]) [--force]\tStore a profile. --config-dir takes an existing Claude Code directory (made absolute); log in to it first with CLAUDE_CONFIG_DIR=DIR claude. --api-key-stdin reads the key from the first line of standard input, so it never appears in a command line or in the shell's history; --base-url names an Anthropic-compatible endpoint. A profile of that name is refused (exit 1) unless --force, which replaces it: agents read their profile at every start, so this rotates a key for every agent using it.
list [--json]\tOne line per profile: NAME, KIND (config-dir or api-key), WHERE (the directory, the base URL, or default endpoint), AGENTS (agents of the state directory started with it, and how many run) and DEFAULT (for the profile a new agent gets now: where the profile setting comes from, global, project or env for $MT_PROFILE). With --json one object per line: name, kind, config_dir, base_url, default (true for the profile a new agent gets), from (global, project, env or null), agents, running. Never a key.
use NAME | use --none\tMake NAME the default profile of new agents, or clear the default: the profile key of the global settings file (as mt-config set --global profile NAME). A warning says so when $MT_PROFILE or the project's settings name another profile, which then wins.
remove NAME [--force]\tDelete the profile (and the global default, if it was that). Refused (exit 1) while an agent of the state directory that uses it runs, since its next resume would fail; --force removes it anyway.",
            ),
            (
                "PROFILES AND AGENTS",
                "mt-spawn --profile NAME, mt-sling --profile NAME and mt-dispatch --profiles A,B,C start agents with a profile; without one, a new agent gets the profile setting ($MT_PROFILE, else the project's settings, else the global ones; see mt-config(1)), else none (the caller's own environment). The agent's meta.json records the profile's name only. At every start, resumes included, the supervisor reads the profile file and sets the agent's process environment: CLAUDE_CONFIG_DIR=DIR for a directory; ANTHROPIC_API_KEY and, when given, ANTHROPIC_BASE_URL for a key. The caller's ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL, CLAUDE_CODE_OAUTH_TOKEN, CLAUDE_CODE_USE_BEDROCK, CLAUDE_CODE_USE_VERTEX and CLAUDE_CODE_USE_FOUNDRY are removed first, so nothing of another account wins over the profile. The key never goes into the agent's settings.json, its command line or anything else under the state directory. The agent also gets MT_PROFILE=NAME, so agents it starts use the same profile.

A resumed agent keeps its profile unless mt-spawn --resume --profile names another. A session lives in its Claude Code directory: an agent moved to a profile with another directory cannot resume its session there. Claude Code also keeps its task lists and team inboxes in that directory, so agents with a config-dir profile do not share the task list of agents without one.

mt-dispatch --profiles spreads agents over profiles, leaving out a profile while one of its agents reports a rejected rate limit that has not reset yet (see mt-dispatch(1)); mt-reap --restart resumes agents stopped by a usage limit once it resets (see mt-reap(1)).",
            ),
            (
                "FILES",
                "CONFIG/profiles/NAME.toml\tone profile: config_dir = \"DIR\", or api_key = \"KEY\" and optionally base_url = \"URL\"; directory 0700, files 0600, written to a temporary file created 0600 and renamed into place
CONFIG/config.toml\tthe global settings, whose profile key is the default profile (see mt-config(1))

CONFIG is $MT_CONFIG_HOME, else $XDG_CONFIG_HOME/mt, else ~/.config/mt. See mt-files(5).",
            ),
            (
                "EXAMPLES",
                "A second subscription account, logged in once in its own directory:
  $ CLAUDE_CONFIG_DIR=~/.claude-work claude    # log in, then quit
  $ mt-profile add work --config-dir ~/.claude-work
  $ mt-spawn york -d --profile work --prompt 'Fix the parser'

An API key for a compatible endpoint, made the default:
  $ pass show llm/gateway | mt-profile add gw --api-key-stdin --base-url https://llm.example.com
  $ mt-profile use gw

Rotate a key; running agents pick it up at their next start:
  $ pass show llm/gateway | mt-profile add gw --api-key-stdin --base-url https://llm.example.com --force

Which profiles exist and who uses them:
  $ mt-profile list
  NAME  KIND        WHERE                    AGENTS         DEFAULT
  gw    api-key     https://llm.example.com  2 (1 running)  global
  work  config-dir  /home/me/.claude-work    1 (1 running)",
            ),
            (
                "EXIT STATUS",
                "0\tsuccess
1\tadd: a profile of that name exists (no --force); remove: an agent using it runs (no --force)
2\tusage error",
            ),
            ("", super::EXIT_COMMON),
            (
                "",
                "Exit 65 also for an unknown profile (here and in mt-spawn, mt-sling, mt-dispatch), a profile file that does not parse, an empty key, a base URL that is not http:// or https://, and a --config-dir that is not a directory. Exit 78 for settings files that do not parse (see mt-config(1)).",
            ),
            (
                "ENVIRONMENT",
                "MT_CONFIG_HOME\tmt's configuration directory (default: $XDG_CONFIG_HOME/mt, else ~/.config/mt)
XDG_CONFIG_HOME\tsee MT_CONFIG_HOME
MT_PROFILE\tthe profile new agents get, before the settings files; list marks it",
            ),
            (
                "SEE ALSO",
                "mt-config(1), mt-spawn(1), mt-dispatch(1), mt-reap(1), mt-files(5), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    match args.cmd {
        Cmd::Add {
            name,
            config_dir,
            api_key_stdin,
            base_url,
            force,
        } => {
            crate::names::check("profile", &name)?;
            let auth = match config_dir {
                Some(d) => Auth::ConfigDir(profile::config_dir_arg(&d)?),
                None => {
                    debug_assert!(api_key_stdin);
                    if let Some(u) = &base_url {
                        profile::check_url(u)?;
                    }
                    Auth::ApiKey {
                        key: profile::read_key(std::io::stdin().lock())?,
                        base_url,
                    }
                }
            };
            if !force && profile::exists(&name)? {
                return Err(fail(
                    NO,
                    format!("profile {name} exists (--force replaces it)"),
                ));
            }
            profile::save(&name, &auth)?;
            Ok(0)
        }
        Cmd::List { json } => list(&args.common, json),
        Cmd::Use { name, none } => {
            let name = name.filter(|_| !none);
            if let Some(n) = &name {
                profile::load(n)?;
            }
            profile::set_default(name.as_deref())?;
            // Say when something above the global file decides instead.
            if let Some((p, from)) = profile::in_force()?
                && from != "global"
                && name.as_deref() != Some(p.as_str())
            {
                let by = if from == "env" {
                    "$MT_PROFILE names"
                } else {
                    "the project's settings name"
                };
                crate::exit::warn(format_args!(
                    "{by} profile {p}, which new agents get instead"
                ));
            }
            Ok(0)
        }
        Cmd::Remove { name, force } => {
            crate::names::check("profile", &name)?;
            if !profile::exists(&name)? {
                profile::load(&name)?; // the unknown-profile error
            }
            let running: Vec<String> = users(&args.common)
                .into_iter()
                .filter(|(p, _, running)| *p == name && *running)
                .map(|(_, n, _)| n)
                .collect();
            if !running.is_empty() && !force {
                return Err(fail(
                    NO,
                    format!(
                        "profile {name} is used by running agents: {} (--force removes it anyway)",
                        running.join(" ")
                    ),
                ));
            }
            profile::remove(&name)?;
            Ok(0)
        }
    }
}

/// (profile, agent, running) for every agent of the state directory that
/// records a profile; none when there is no state directory.
fn users(common: &Common) -> Vec<(String, String, bool)> {
    let Ok(state) = common.state() else {
        return vec![];
    };
    let Ok(all) = crate::agent::all(&state) else {
        return vec![];
    };
    all.into_iter()
        .filter_map(|i| {
            let p = i.meta.as_ref()?.profile.clone()?;
            Some((p, i.name, i.running))
        })
        .collect()
}

fn list(common: &Common, json: bool) -> Result<u8> {
    let names = profile::names()?;
    let chosen = profile::in_force()?;
    let users = users(common);
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for n in names {
        // A profile that does not parse is listed, with why.
        let (kind, dir, url, place) = match profile::load(&n) {
            Ok(Auth::ConfigDir(d)) => {
                let shown = d.display().to_string();
                ("config-dir", Some(shown.clone()), None, shown)
            }
            Ok(Auth::ApiKey { base_url, .. }) => {
                let place = base_url
                    .clone()
                    .unwrap_or_else(|| "default endpoint".into());
                ("api-key", None, base_url, place)
            }
            Err(e) => {
                crate::exit::warn(format_args!("{e:#}"));
                ("invalid", None, None, "-".into())
            }
        };
        let agents: Vec<&str> = users
            .iter()
            .filter(|(p, _, _)| *p == n)
            .map(|(_, a, _)| a.as_str())
            .collect();
        let running = users.iter().filter(|(p, _, r)| *p == n && *r).count();
        let from = chosen
            .as_ref()
            .filter(|(p, _)| *p == n)
            .map(|(_, from)| *from);
        if json {
            let v = json!({
                "name": n, "kind": kind, "config_dir": dir, "base_url": url,
                "default": from.is_some(), "from": from,
                "agents": agents, "running": running,
            });
            writeln!(out, "{v}")?;
            continue;
        }
        let mark = from.unwrap_or("");
        let used = match (agents.len(), running) {
            (0, _) => "-".to_string(),
            (k, 0) => k.to_string(),
            (k, r) => format!("{k} ({r} running)"),
        };
        rows.push(vec![
            n.clone(),
            kind.to_string(),
            crate::names::printable(&place).into_owned(),
            used,
            mark.to_string(),
        ]);
    }
    if !json && !rows.is_empty() {
        super::write_table(
            &mut out,
            &[
                Column::left("NAME", 0),
                Column::left("KIND", 0),
                Column::left("WHERE", 0),
                Column::left("AGENTS", 0),
                Column::left("DEFAULT", 0),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(0)
}
