//! Command-line front ends. Each tool's module holds its clap definition,
//! its `main`, and the extra man-page sections, so the generator in `manpages`
//! can build man pages and completions from the same definitions.

use clap::CommandFactory;
use std::path::PathBuf;

pub mod attach;
pub mod channels;
pub mod chat;
pub mod config;
pub mod dispatch;
pub mod fake_agent;
pub mod hook;
pub mod hooks;
pub mod lead;
pub mod log;
pub mod mail;
pub mod manpages;
pub mod nudge;
pub mod post;
pub mod pr;
pub mod profile;
pub mod ps;
pub mod read;
pub mod reap;
pub mod remind;
pub mod route;
pub mod sling;
pub mod spawn;
pub mod status;
pub mod stop;
pub mod sync;
pub mod task;
pub mod wait;
pub mod watch;
pub mod web;
pub mod worktree;

/// Options every tool takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// State directory (default: <git common dir>/mt of the current repository)
    #[arg(long, env = "MT_DIR", value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
}

impl Common {
    pub fn state(&self) -> anyhow::Result<crate::statedir::StateDir> {
        crate::statedir::StateDir::resolve(self.dir.as_deref())
    }
}

/// The channel a tool works on (`-c`, `$MT_CHANNEL`, else general).
#[derive(Debug, Clone, clap::Args)]
pub struct ChannelArg {
    /// Channel (a-z 0-9 . _ -)
    #[arg(
        short,
        long,
        env = "MT_CHANNEL",
        default_value = "general",
        value_name = "NAME"
    )]
    pub channel: String,
}

/// The team's channel for the tools that start agents: `-c`, `$MT_CHANNEL`,
/// else the settings' `channel`, else general.
#[derive(Debug, Clone, clap::Args)]
pub struct TeamChannelArg {
    /// Channel (a-z 0-9 . _ -; default: the settings' channel, else general)
    #[arg(short, long, env = "MT_CHANNEL", value_name = "NAME")]
    pub channel: Option<String>,
}

impl TeamChannelArg {
    pub fn resolve(&self, settings: &crate::config::Settings) -> anyhow::Result<String> {
        let c = match &self.channel {
            Some(c) if !c.is_empty() => c.clone(),
            _ => settings.text("channel").unwrap_or_else(|| "general".into()),
        };
        crate::names::check("channel", &c)?;
        Ok(c)
    }
}

/// The settings' pool of agent names, comma separated, when one is set.
pub fn settings_pool(settings: &crate::config::Settings) -> Option<String> {
    let l = settings.list("pool");
    (!l.is_empty()).then(|| l.join(","))
}

/// Who a tool acts as (`--as`, `$MT_AGENT`), when it may act as nobody.
#[derive(Debug, Clone, clap::Args)]
pub struct AsArg {
    /// Act as this reader or agent
    #[arg(long = "as", env = "MT_AGENT", value_name = "NAME")]
    pub name: Option<String>,
}

/// The Claude Code task list (`--list`, `$CLAUDE_CODE_TASK_LIST_ID`; unset:
/// the state directory's, mt-PROJECT).
#[derive(Debug, Clone, clap::Args)]
pub struct ListArg {
    /// Task list (default: mt-PROJECT)
    #[arg(long, env = "CLAUDE_CODE_TASK_LIST_ID", value_name = "LIST")]
    pub list: Option<String>,
}

/// The one `value_parser` for durations: 500ms, 30s, 10m, 2h, 1d.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    crate::infra::time::parse_duration(s).map_err(|e| e.to_string())
}

/// What an agent may do without asking, for the tools that start agents.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PermissionArgs {
    /// Claude Code permission mode for the agent (default acceptEdits: edits
    /// in its working directory need no permission)
    #[arg(long, value_name = "MODE", value_parser = clap::builder::PossibleValuesParser::new(crate::permissions::MODES))]
    pub permission_mode: Option<String>,

    /// Also allow this Claude Code permission rule, e.g. 'Bash(npm test:*)'
    /// (repeatable)
    #[arg(long = "allow", value_name = "RULE")]
    pub allow: Vec<String>,

    /// Take the permissions from this JSON file (a Claude Code permissions
    /// object, or settings holding one) instead of the default profile
    #[arg(long, value_name = "FILE")]
    pub permissions: Option<PathBuf>,
}

impl PermissionArgs {
    pub fn choice(&self) -> crate::permissions::Choice {
        crate::permissions::Choice {
            mode: self.permission_mode.clone(),
            allow: self.allow.clone(),
            file: self.permissions.clone(),
        }
    }
}

/// Run `work`, printing each line it reports on standard output as it
/// happens. A failing standard output (a closed pipe) does not stop the
/// work half-way; it is reported when the work is done.
pub fn print_as_it_goes<T: std::fmt::Display + ?Sized, R>(
    work: impl FnOnce(&mut dyn FnMut(&T)) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    use std::io::Write;
    let mut out = std::io::stdout();
    let mut failed = None;
    let r = work(&mut |line: &T| {
        if failed.is_none()
            && let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush())
        {
            failed = Some(e);
        }
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(r),
    }
}

/// A column of a `Table`: aligned right (numbers) or left, at least `min`
/// wide; the last column of a table is not padded unless `min` asks.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub min: usize,
    pub right: bool,
}

impl Column {
    pub const fn left(title: &'static str, min: usize) -> Column {
        Column {
            title,
            min,
            right: false,
        }
    }
    pub const fn right(title: &'static str, min: usize) -> Column {
        Column {
            title,
            min,
            right: true,
        }
    }
}

/// The tools' table output: a header line, then one line per row, columns
/// two spaces apart, each as wide as its widest cell.
pub fn write_table(
    out: &mut dyn std::io::Write,
    columns: &[Column],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .chain([c.title.len(), c.min])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn std::io::Write, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, c)) in cells.zip(columns).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let last = i + 1 == columns.len();
            let pad = if last && c.min == 0 {
                0
            } else {
                widths[i].saturating_sub(cell.chars().count())
            };
            if c.right {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{text}")
    };
    line(out, &mut columns.iter().map(|c| c.title))?;
    for r in rows {
        line(out, &mut r.iter().map(String::as_str))?;
    }
    Ok(())
}

/// What the generator needs to know about a tool.
pub struct Tool {
    pub name: &'static str,
    pub command: fn() -> clap::Command,
    /// Extra man sections, as (TITLE, text) in the light markup of
    /// `manpages::roff`.
    pub sections: &'static [(&'static str, &'static str)],
}

impl Tool {
    /// The tool's command-line definition, under its name.
    pub fn command(&self) -> clap::Command {
        (self.command)().name(self.name)
    }

    /// Parse this process's arguments with the tool's definition.
    pub fn try_parse<A: clap::FromArgMatches>(&self) -> Result<A, clap::Error> {
        let mut cmd = self.command();
        let m = cmd.try_get_matches_from_mut(std::env::args_os())?;
        A::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))
    }

    /// A tool's whole `main`: name the running tool (for warnings and
    /// errors), parse the arguments (a usage error exits 2), run `body`
    /// and turn its outcome into the exit code (see `exit::main`).
    pub fn main<A: clap::FromArgMatches>(
        &self,
        body: impl FnOnce(A) -> anyhow::Result<u8>,
    ) -> std::process::ExitCode {
        crate::exit::set_tool(self.name);
        let args = self.try_parse::<A>().unwrap_or_else(|e| e.exit());
        crate::exit::main(self.name, || body(args))
    }

    pub fn of<T: CommandFactory>(
        name: &'static str,
        sections: &'static [(&'static str, &'static str)],
    ) -> Tool {
        fn cmd<T: CommandFactory>() -> clap::Command {
            T::command()
        }
        Tool {
            name,
            command: cmd::<T>,
            sections,
        }
    }
}

/// Every tool, in the order mt(7) lists them.
pub fn tools() -> Vec<Tool> {
    vec![
        post::tool(),
        read::tool(),
        channels::tool(),
        hook::tool(),
        hooks::tool(),
        mail::tool(),
        task::tool(),
        worktree::tool(),
        watch::tool(),
        remind::tool(),
        spawn::tool(),
        profile::tool(),
        ps::tool(),
        nudge::tool(),
        stop::tool(),
        log::tool(),
        wait::tool(),
        status::tool(),
        chat::tool(),
        attach::tool(),
        fake_agent::tool(),
        route::tool(),
        reap::tool(),
        sling::tool(),
        dispatch::tool(),
        pr::tool(),
        sync::tool(),
        config::tool(),
        lead::tool(),
        web::tool(),
    ]
}

/// The EXIT STATUS text shared by the tools, with a first line of their own.
pub const EXIT_COMMON: &str = "\
65\tbad input data: an invalid name, an empty or oversized message, a file that does not parse
69\ta needed program or service is unavailable, or there is no state directory
70\tinternal error
73\tcannot create or write a file (permissions, full disk)
75\ttemporary failure: a lock stayed busy; try again";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut out = Vec::new();
        let cols = [
            Column::left("NAME", 0),
            Column::right("N", 3),
            Column::left("NOTE", 0),
        ];
        let rows = vec![
            vec!["york".to_string(), "12".into(), "x".into()],
            vec!["a".to_string(), "1234".into(), "long note".into()],
        ];
        write_table(&mut out, &cols, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME     N  NOTE\nyork    12  x\na     1234  long note\n"
        );
    }
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Cargo.toml's [[bin]]s, `tools()`, bin/*.rs and the man pages name
    /// the same tools, and each bin/mt-x.rs runs `cli::x`: a tool forgotten
    /// in one place fails here.
    #[test]
    fn binaries_tools_and_pages_agree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let not_a_tool = "mt-gen";
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let mut cargo = BTreeSet::new();
        for block in manifest.split("[[bin]]").skip(1) {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .unwrap()
                .trim_matches('"');
            let path = block
                .lines()
                .find_map(|l| l.strip_prefix("path = "))
                .unwrap()
                .trim_matches('"');
            assert_eq!(path, format!("bin/{name}.rs"));
            cargo.insert(name.to_string());
        }
        assert!(cargo.remove(not_a_tool));

        let mut files = BTreeSet::new();
        for e in std::fs::read_dir(root.join("bin")).unwrap() {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            if stem == not_a_tool {
                continue;
            }
            let module = stem.trim_start_matches("mt-").replace('-', "_");
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.contains(&format!("mt::cli::{module}::main()")),
                "{} does not run cli::{module}",
                p.display()
            );
            files.insert(stem);
        }

        let listed: BTreeSet<String> = tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(tools().len(), listed.len(), "a tool listed twice");

        let d = tempfile::tempdir().unwrap();
        manpages::man_pages(d.path()).unwrap();
        let pages: BTreeSet<String> = listed
            .iter()
            .filter(|n| d.path().join(format!("{n}.1")).is_file())
            .cloned()
            .collect();

        assert_eq!(cargo, listed, "Cargo.toml [[bin]] vs cli::tools()");
        assert_eq!(files, listed, "bin/*.rs vs cli::tools()");
        assert_eq!(pages, listed, "man pages vs cli::tools()");
    }
}
