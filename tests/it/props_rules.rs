//! Property tests for mt-watch's rules parser: any text is parsed or
//! refused with line numbers (never a panic), and rules written by a
//! generator come back exactly as written.

use crate::support::cases;
use mt::exit::{DATAERR, code_of};
use mt::statedir::StateDir;
use mt::watch::rules::{Context, Target, Trigger, parse_rules};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::Path;

fn parse(text: &str) -> anyhow::Result<Vec<mt::watch::Rule>> {
    let state = StateDir::at("/nonexistent/mt");
    let ctx = Context {
        state: &state,
        base: Path::new("/repo"),
        task_list: Some("team".into()),
    };
    parse_rules(text, Path::new("rules"), &ctx)
}

/// Line numbers (from 1) of the lines that hold a rule.
fn rule_lines(text: &str) -> HashSet<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect()
}

/// One valid rule: optional name, trigger as written, command.
#[derive(Debug, Clone)]
struct Spec {
    name: Option<String>,
    trigger: String,
    command: String,
}

fn trigger() -> impl Strategy<Value = String> {
    let field = |opts: &'static [&'static str]| prop::sample::select(opts.to_vec());
    prop_oneof![
        (1u64..10_000_000).prop_map(|ms| format!(
            "@every {}",
            mt::infra::time::format_duration(std::time::Duration::from_millis(ms))
        )),
        prop::sample::select(vec![
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually"
        ])
        .prop_map(str::to_string),
        (
            field(&["*", "0", "*/5", "1-10", "0,30"]),
            field(&["*", "3", "*/2", "9-17"]),
            field(&["*", "1", "15"]),
            field(&["*", "1", "6-8"]),
            field(&["*", "1-5", "0"]),
        )
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
        "[a-z0-9][a-z0-9._-]{0,20}".prop_map(|n| format!("@change channel:{n}")),
        "[a-zA-Z0-9_-]{1,12}".prop_map(|n| format!("@change tasks:{n}")),
        "[a-z]{1,8}(/[a-z.]{1,8}){0,2}".prop_map(|p| format!("@change {p}")),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of("[a-z0-9][a-z0-9._-]{0,15}"),
        trigger(),
        "[a-zA-Z./$-][a-zA-Z0-9 ./'\"$|&;<>-]{0,30}",
    )
        .prop_map(|(name, trigger, command)| Spec {
            name,
            trigger,
            command: command.trim().to_string(),
        })
        .prop_filter("a command", |s| !s.command.is_empty())
}

fn spaces() -> impl Strategy<Value = String> {
    prop::sample::select(vec![" ", "  ", "\t", " \t "]).prop_map(str::to_string)
}

/// Text that is often almost a rules file.
fn rules_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        spec().prop_map(|s| format!("{} {}", s.trigger, s.command)),
        trigger(),
        "name=\\PC{0,10} \\PC{0,20}",
        "@\\PC{0,10} \\PC{0,10}",
        "[0-9*/,-]{1,4}( [0-9*/,A-Za-z-]{1,4}){0,6}",
        "#\\PC{0,20}",
        "\\PC{0,40}",
        Just(String::new()),
    ];
    (
        prop::collection::vec(line, 0..10),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(ls, sep)| ls.join(sep))
}

proptest! {
    #![proptest_config(crate::support::config(cases(256)))]

    /// Any text: a list of rules from rule lines, or exit 65 with one
    /// `rules:LINE: problem` per bad line, each naming a rule line.
    #[test]
    fn any_text_parses_or_reports_line_numbers(text in rules_text()) {
        let lines = rule_lines(&text);
        match parse(&text) {
            Ok(rules) => {
                let mut names = HashSet::new();
                for r in &rules {
                    prop_assert!(lines.contains(&r.line));
                    prop_assert!(mt::names::is_valid(&r.name), "{:?}", r.name);
                    prop_assert!(names.insert(r.name.clone()), "name {} twice", r.name);
                    prop_assert!(!r.command.is_empty() && r.command.trim() == r.command);
                }
                prop_assert_eq!(rules.len(), lines.len());
            }
            Err(e) => {
                prop_assert_eq!(code_of(&e), DATAERR);
                let msg = e.to_string();
                for l in msg.lines() {
                    let n: usize = l.strip_prefix("rules:")
                        .and_then(|r| r.split(':').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("no line number in {l:?}"));
                    prop_assert!(lines.contains(&n), "line {} is not a rule line: {}", n, l);
                }
            }
        }
    }

    /// Valid rules, with comments, blank lines and odd spacing around
    /// them, come back with their names, triggers, commands and lines.
    #[test]
    fn generated_rules_round_trip(
        specs in prop::collection::vec((spec(), spaces(), spaces(), any::<bool>()), 1..8),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        let mut used = HashSet::new();
        let mut line = 0;
        for (s, sp1, sp2, comment) in &specs {
            if *comment {
                text.push_str("# a comment\n\n");
                line += 2;
            }
            let name = s.name.clone().filter(|n| used.insert(n.clone()));
            let mut l = String::new();
            if let Some(n) = &name {
                l.push_str(&format!("name={n}{sp1}"));
            }
            l.push_str(&s.trigger.replace(' ', sp1));
            l.push_str(sp2);
            l.push_str(&s.command);
            text.push_str(&format!("{sp2}{l}{sp1}\n"));
            line += 1;
            want.push((name, s.clone(), line));
        }
        let rules = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(rules.len(), want.len());
        let mut names = HashSet::new();
        for (r, (name, s, line)) in rules.iter().zip(&want) {
            prop_assert_eq!(r.line, *line);
            prop_assert_eq!(&r.spec, &s.trigger);
            prop_assert_eq!(&r.command, &s.command);
            if let Some(n) = name {
                prop_assert_eq!(&r.name, n);
            }
            prop_assert!(mt::names::is_valid(&r.name) && names.insert(r.name.clone()));
            let kind_ok = match &r.trigger {
                Trigger::Every(d) => s.trigger.starts_with("@every") && !d.is_zero(),
                Trigger::Cron(_) => !s.trigger.starts_with("@every") && !s.trigger.starts_with("@change"),
                Trigger::Change(Target::Channel(c)) => s.trigger == format!("@change channel:{c}"),
                Trigger::Change(Target::Tasks { list, .. }) => s.trigger == format!("@change tasks:{list}"),
                Trigger::Change(Target::Path(p)) => Path::new("/repo").join(&s.trigger[8..]) == *p,
            };
            prop_assert!(kind_ok, "{:?} from {:?}", r.trigger, s.trigger);
        }
    }
}
