//! The rules file: one rule per line, `[name=NAME] TRIGGER COMMAND`.
//!
//! ```text
//! # comments and blank lines are ignored
//! name=reap   @every 30s               mt-reap
//! name=route  @change channel:general  mt-route
//!             @change tasks            mt-dispatch --max 4
//!             */10 * * * *             mt-worktree gc
//! ```
//!
//! A rule without `name=` is named after its command's first word (without
//! a leading `mt-`), with `.LINE` appended when that name is taken.

use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::{DATAERR, fail};
use crate::names;
use crate::statedir::StateDir;

/// What a rule watches when its trigger is a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `channel:NAME`: a new record on the channel.
    Channel(String),
    /// `tasks` or `tasks:LIST`: a task file of the list.
    Tasks { list: String, dir: PathBuf },
    /// A file, or the direct entries of a directory.
    Path(PathBuf),
}

impl fmt::Display for Target {
    /// The form given to commands in `MT_CHANGED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Channel(n) => write!(f, "channel:{n}"),
            Target::Tasks { list, .. } => write!(f, "tasks:{list}"),
            Target::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Every(Duration),
    Cron(Box<Cron>),
    Change(Target),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Line number in the rules file, from 1.
    pub line: usize,
    /// The trigger as written, normalised to single spaces.
    pub spec: String,
    pub trigger: Trigger,
    pub command: String,
}

impl Rule {
    /// What identifies the rule's saved state: a rule whose trigger or
    /// command changed starts afresh.
    pub fn key(&self) -> String {
        format!("{} {}", self.spec, self.command)
    }
}

/// What relative paths and `tasks` resolve against.
pub struct Context<'a> {
    pub state: &'a StateDir,
    /// Where relative paths start: the directory the commands run in.
    pub base: &'a Path,
    /// The task list of `@change tasks` (`tasks::list_name`).
    pub task_list: Option<String>,
}

/// The next time a cron schedule fires strictly after `after`, in local
/// time as cron does.
pub fn next_cron(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&Local), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

const NICKNAMES: &[&str] = &[
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];

/// The next whitespace-separated word of `s` and what follows it.
fn word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Parse a whole rules file. Every bad line is reported, each as
/// `FILE:LINE: problem`; any bad line fails the whole file (exit 65).
pub fn parse_rules(text: &str, file: &Path, ctx: &Context<'_>) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut errors = Vec::new();
    let mut explicit = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse_line(t, i + 1, ctx) {
            Ok((rule, named)) => {
                if named {
                    if explicit.contains(&rule.name) {
                        errors.push(format!(
                            "{}:{}: rule name {} is used twice",
                            file.display(),
                            i + 1,
                            rule.name
                        ));
                    }
                    explicit.push(rule.name.clone());
                }
                rules.push(rule);
            }
            Err(msg) => errors.push(format!("{}:{}: {msg}", file.display(), i + 1)),
        }
    }
    if !errors.is_empty() {
        return Err(fail(DATAERR, errors.join("\n")));
    }
    // Derived names give way to explicit ones and to each other.
    let mut taken: Vec<String> = explicit;
    for r in rules.iter_mut() {
        if !r.name.is_empty() {
            continue;
        }
        let base = derive_name(&r.command);
        r.name = if taken.contains(&base) {
            format!("{base}.{}", r.line)
        } else {
            base
        };
        taken.push(r.name.clone());
    }
    Ok(rules)
}

/// A rule name from a command: its first word's last path component,
/// without `mt-`, reduced to name characters.
fn derive_name(command: &str) -> String {
    let first = word(command).map(|(w, _)| w).unwrap_or("rule");
    let base = first.rsplit('/').next().unwrap_or(first);
    let base = base.strip_prefix("mt-").unwrap_or(base);
    let mut s: String = base
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if names::is_name_byte(c as u8) && c.is_ascii() {
                c
            } else {
                '-'
            }
        })
        .take(names::MAX_LEN - 8)
        .collect();
    if !names::is_valid(&s) {
        s = "rule".into();
    }
    s
}

/// One rule line (already trimmed, not a comment). Returns the rule and
/// whether it was named explicitly; an unnamed rule has an empty name.
fn parse_line(line: &str, n: usize, ctx: &Context<'_>) -> Result<(Rule, bool), String> {
    let (mut tok, mut rest) = word(line).ok_or("empty rule")?;
    let mut name = String::new();
    let named = if let Some(nm) = tok.strip_prefix("name=") {
        if let Some(why) = names::problem(nm) {
            return Err(format!("invalid rule name {}: {why}", names::quote(nm)));
        }
        name = nm.to_string();
        (tok, rest) = word(rest).ok_or("a trigger and a command must follow the name")?;
        true
    } else {
        false
    };
    let (spec, trigger, rest) = match tok {
        "@every" => {
            let (d, rest) = word(rest).ok_or("@every needs a duration, like @every 30s")?;
            let iv = crate::infra::time::parse_duration(d).map_err(|e| e.to_string())?;
            if iv.is_zero() {
                return Err("@every needs a duration above zero".into());
            }
            (format!("@every {d}"), Trigger::Every(iv), rest)
        }
        "@change" => {
            let (t, rest) = word(rest)
                .ok_or("@change needs what to watch: channel:NAME, tasks, tasks:LIST or a path")?;
            (
                format!("@change {t}"),
                Trigger::Change(parse_target(t, ctx)?),
                rest,
            )
        }
        t if NICKNAMES.contains(&t) => {
            let cron = cron_parser().parse(t).map_err(|e| format!("{t}: {e}"))?;
            (t.to_string(), Trigger::Cron(Box::new(cron)), rest)
        }
        t if t.starts_with('@') => {
            return Err(format!(
                "unknown trigger {t}: expected @every, @change, @hourly, @daily, @weekly, \
                 @monthly, @yearly or five cron fields"
            ));
        }
        first => {
            let mut fields = vec![first];
            let mut rest = rest;
            for _ in 0..4 {
                let (f, r) = word(rest).ok_or(
                    "a schedule needs five cron fields (minute hour day month weekday) and a command",
                )?;
                fields.push(f);
                rest = r;
            }
            let spec = fields.join(" ");
            let cron = cron_parser()
                .parse(&spec)
                .map_err(|e| format!("bad cron schedule {spec:?}: {e}"))?;
            (spec, Trigger::Cron(Box::new(cron)), rest)
        }
    };
    let command = rest.trim();
    if command.is_empty() {
        return Err(format!("no command after {spec}"));
    }
    Ok((
        Rule {
            name,
            line: n,
            spec,
            trigger,
            command: command.to_string(),
        },
        named,
    ))
}

fn parse_target(t: &str, ctx: &Context<'_>) -> Result<Target, String> {
    if let Some(ch) = t.strip_prefix("channel:") {
        if let Some(why) = names::problem(ch) {
            return Err(format!("invalid channel name {}: {why}", names::quote(ch)));
        }
        return Ok(Target::Channel(ch.to_string()));
    }
    let list = if t == "tasks" {
        Some(ctx.task_list.clone().ok_or(
            "@change tasks needs CLAUDE_CODE_TASK_LIST_ID (or name the list: @change tasks:LIST)",
        )?)
    } else {
        t.strip_prefix("tasks:").map(str::to_string)
    };
    if let Some(list) = list {
        let dir = crate::statedir::claude_config_dir()
            .and_then(|c| crate::tasks::TaskList::new(&c, &list))
            .map_err(|e| format!("{e:#}"))?
            .dir()
            .to_path_buf();
        return Ok(Target::Tasks { list, dir });
    }
    let path = ctx.base.join(t);
    // The watcher's own files change on every run: watching them would
    // make a rule trigger itself forever.
    let watch = ctx.state.watch();
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(&path).starts_with(canon(&watch)) {
        return Err(format!(
            "{t} is inside the watcher's own directory {}; its files change on every run",
            watch.display()
        ));
    }
    Ok(Target::Path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Rule>> {
        let state = StateDir::at("/nonexistent/mt");
        let ctx = Context {
            state: &state,
            base: Path::new("/repo"),
            task_list: Some("team".into()),
        };
        parse_rules(text, Path::new("rules"), &ctx)
    }

    #[test]
    fn all_kinds() {
        let rules = parse(
            "# comment\n\n\
             name=reap @every 30s   mt-reap --stuck-after 10m\n\
             @change channel:general  mt-route\n\
             @change tasks mt-dispatch --max 4\n\
             */10 * * * *   mt-worktree gc\n\
             @change src/x.txt  echo  'a  b'\n\
             @daily mt-route\n",
        )
        .unwrap();
        let names: Vec<_> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["reap", "route", "dispatch", "worktree", "echo", "route.8"]
        );
        assert!(matches!(rules[0].trigger, Trigger::Every(d) if d == Duration::from_secs(30)));
        assert_eq!(rules[0].command, "mt-reap --stuck-after 10m");
        assert_eq!(rules[1].spec, "@change channel:general");
        assert!(
            matches!(&rules[2].trigger, Trigger::Change(Target::Tasks { list, .. }) if list == "team")
        );
        assert_eq!(rules[3].spec, "*/10 * * * *");
        assert_eq!(rules[4].command, "echo  'a  b'");
        assert!(
            matches!(&rules[4].trigger, Trigger::Change(Target::Path(p)) if p == Path::new("/repo/src/x.txt"))
        );
    }

    #[test]
    fn cron_next() {
        let rules = parse("0 * * * * hourly").unwrap();
        let Trigger::Cron(c) = &rules[0].trigger else {
            panic!()
        };
        let t0 = crate::infra::time::parse_stamp("2026-01-01T10:30:00Z").unwrap();
        let next = next_cron(c, t0).unwrap();
        assert!(next > t0 && next - t0 <= chrono::Duration::hours(1));
    }

    #[test]
    fn bad_lines_are_reported_with_numbers() {
        let e = parse("@every\n@every 0s x\n@sometimes x\n* * * x\n61 * * * * x\n@every 1s\nname=A/b @every 1s x\n@change channel:../x y\n")
            .unwrap_err();
        assert_eq!(crate::exit::code_of(&e), DATAERR);
        let msg = e.to_string();
        for n in 1..=8 {
            assert!(
                msg.contains(&format!("rules:{n}: ")),
                "line {n} missing in {msg}"
            );
        }
        let e = parse("name=a @every 1s x\nname=a @every 2s y\n").unwrap_err();
        assert!(e.to_string().contains("rules:2: rule name a is used twice"));
    }

    #[test]
    fn tasks_needs_a_list() {
        let state = StateDir::at("/nonexistent/mt");
        let ctx = Context {
            state: &state,
            base: Path::new("/"),
            task_list: None,
        };
        let e = parse_rules("@change tasks x", Path::new("r"), &ctx).unwrap_err();
        assert!(e.to_string().contains("CLAUDE_CODE_TASK_LIST_ID"));
        assert!(parse_rules("@change tasks:abc x", Path::new("r"), &ctx).is_ok());
    }

    #[test]
    fn refuses_watching_own_files() {
        let e = parse("@change /nonexistent/mt/watch/state.json x").unwrap_err();
        assert!(e.to_string().contains("own directory"));
    }
}
