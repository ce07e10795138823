//! mt-lead: start the lead's interactive Claude Code session for a team.

use anyhow::{Context, Result};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Common, Tool};
use crate::config::Settings;
use crate::exit::{UNAVAILABLE, fail};
use crate::prompts::{self, Role};
use crate::watch::starter::{self, Started};

/// Start a team session: the lead's Claude Code, with mt wired in
///
/// Runs the lead's interactive Claude Code session in the current
/// repository and is then gone (it execs). Before that it makes sure the
/// team can work: the state directory exists, a watcher runs for it (the
/// installed systemd user unit mt-watch.service when it watches this
/// repository, else a detached mt-watch; the default rules are written
/// once), and the session gets mt's hooks and environment through
/// --settings on its command line, so nothing is written into the user's
/// or the project's Claude Code settings (mt-hooks install does that, when
/// asked). The session shares the project's task list with every coworker,
/// and its system prompt gets the lead prompt appended: a built-in text on
/// how a team works through mt, then LEAD.md from the config home and from
/// the project's .mt directory. Arguments after -- go to claude.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The lead's name on the channel
    #[arg(long, default_value = "lead", value_name = "NAME")]
    pub name: String,

    /// Channel (default: the settings' channel, else general)
    #[arg(short, long, env = "MT_CHANNEL", value_name = "NAME")]
    pub channel: Option<String>,

    /// Also give the session the repository at DIR (--add-dir; repeatable)
    #[arg(long = "add-repo", value_name = "DIR")]
    pub add_repo: Vec<PathBuf>,

    /// Auth profile for the lead's session (default: the settings'
    /// profile; see mt-profile)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Start no watcher
    #[arg(long)]
    pub no_watch: bool,

    /// Without the lead prompt (the built-in text and the LEAD.md files)
    #[arg(long)]
    pub no_lead_prompt: bool,

    /// Print the command line and the variables the session would get,
    /// one per line, and start nothing (no watcher either)
    #[arg(long)]
    pub print: bool,

    #[command(flatten)]
    pub common: Common,

    /// Arguments for claude, after --
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub extra: Vec<String>,
}

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-lead",
        &[
            (
                "FILES",
                "$MT_CONFIG_HOME/LEAD.md\tthe person's own lead prompt, for every project (MT_CONFIG_HOME defaults to ~/.config/mt)
.mt/LEAD.md\tthe project's lead prompt, at the top of the main working tree
$MT_CONFIG_HOME/config.toml, .mt/config.toml\tthe settings (see mt-config(1)): lead-cmd, channel, rules, profile
watch/rules\tthe watcher's rules in the state directory (or the settings' rules); written from the example when missing
watch/log\tthe detached watcher's output",
            ),
            (
                "ENVIRONMENT",
                "The session gets MT_AGENT (the lead's name), MT_DIR, MT_CHANNEL, CLAUDE_CODE_TASK_LIST_ID (the project's list, shared with the coworkers) and CLAUDE_CODE_ENABLE_TODO_TOOLS=1, both in its environment and in the env of its --settings, and loses the variables of a Claude Code session it may have been started from.",
            ),
            (
                "EXAMPLES",
                "Start the team's day:
  $ cd ~/src/project && mt-lead
With a second repository and a model for the lead:
  $ mt-lead --add-repo ../docs -- --model opus
What would run:
  $ mt-lead --print",
            ),
            (
                "EXIT STATUS",
                "None of its own once the session starts: the exit status is claude's.
69\tthe lead program, mt-hook or mt-watch is missing, or the watcher did not start
78\ta settings file, LEAD.md or variable is unreadable or invalid",
            ),
            ("", super::EXIT_COMMON),
            (
                "SEE ALSO",
                "mt-config(1), mt-sling(1), mt-status(1), mt-watch(1), mt-hooks(1), mt(7)",
            ),
        ],
    )
}

pub fn main() -> ExitCode {
    tool().main(run)
}

pub fn run(args: Args) -> Result<u8> {
    crate::names::check("agent", &args.name)?;
    let settings = Settings::load()?;
    let channel = super::TeamChannelArg {
        channel: args.channel.clone(),
    }
    .resolve(&settings)?;
    let state = args.common.state()?;
    state.ensure()?;
    let root = std::fs::canonicalize(state.root())
        .with_context(|| format!("cannot resolve {}", state.root().display()))?;
    let state = crate::statedir::StateDir::at(root);
    let cwd = std::env::current_dir().context("cannot read the current directory")?;

    let program = settings.text("lead-cmd").unwrap_or_else(|| "claude".into());
    let program_path = crate::spawn::find_program(&program).ok_or_else(|| {
        fail(
            UNAVAILABLE,
            format!("cannot find the lead program {program:?} (install Claude Code, or set lead-cmd with mt-config)"),
        )
    })?;
    let mt_hook = crate::spawn::mt_hook_program()?;
    let list = crate::tasks::list_name(None, Some(&state))?;

    let env: Vec<(String, OsString)> = vec![
        ("MT_AGENT".into(), args.name.clone().into()),
        ("MT_DIR".into(), state.root().as_os_str().to_owned()),
        ("MT_CHANNEL".into(), channel.clone().into()),
        ("CLAUDE_CODE_TASK_LIST_ID".into(), list.into()),
        ("CLAUDE_CODE_ENABLE_TODO_TOOLS".into(), "1".into()),
    ];
    let mut session = crate::claude_settings::hooks_for_lead(&mt_hook);
    session["env"] = crate::claude_settings::env_object(&env);

    let mut argv: Vec<OsString> = vec!["--settings".into(), session.to_string().into()];
    if !args.no_lead_prompt {
        let project = crate::config::project_dir(&cwd);
        argv.push("--append-system-prompt".into());
        argv.push(prompts::compose(Role::Lead, project.as_deref())?.into());
    }
    for dir in &args.add_repo {
        let d = std::fs::canonicalize(dir).map_err(|e| {
            fail(
                crate::exit::DATAERR,
                format!("--add-repo {}: {e}", dir.display()),
            )
        })?;
        argv.push("--add-dir".into());
        argv.push(d.into());
    }
    argv.extend(args.extra.iter().map(OsString::from));
    let profile = args.profile.clone().or_else(|| settings.text("profile"));
    let auth = crate::profile::AgentAuth::of(profile.as_deref())?;

    if args.print {
        println!("{}", program_path.display());
        for a in &argv {
            println!("{}", a.to_string_lossy());
        }
        for (k, v) in &env {
            println!("{k}={}", v.to_string_lossy());
        }
        for (k, v) in auth.shown() {
            println!("{k}={v}");
        }
        return Ok(0);
    }

    if !args.no_watch {
        let rules = settings
            .path("rules")
            .unwrap_or_else(|| state.watch().join("rules"));
        match starter::ensure(&state, &rules, &channel)? {
            Started::Running(_) => {}
            Started::Detached(pid) => eprintln!("mt-lead: started the watcher (pid {pid})"),
            Started::Systemd(unit) => eprintln!("mt-lead: started the watcher ({unit})"),
        }
    }

    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(&program_path);
    c.args(&argv);
    for k in crate::spawn::CLEANED_ENV {
        c.env_remove(k);
    }
    for (k, v) in &env {
        c.env(k, v);
    }
    auth.apply(&mut c);
    let e = c.exec();
    Err(fail(
        UNAVAILABLE,
        format!("cannot run {}: {e}", program_path.display()),
    ))
}
