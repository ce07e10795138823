//! What a coworker may do without asking: the `permissions` object of the
//! Claude Code settings mt gives every agent it starts.
//!
//! In `claude -p` nobody answers a permission prompt: a tool call that needs
//! permission and is not allowed by settings or flags is denied. An agent
//! that must work unattended therefore gets its allowances up front. The
//! default profile lets it edit files in its working directory
//! (`acceptEdits`, which Claude Code limits to the working directories), run
//! git, the project's build and test tools, and mt's messaging and task
//! tools; nothing else is allowed without asking, so anything else is
//! denied.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::exit::{DATAERR, USAGE, fail};

/// Claude Code's permission modes (2.1.328; `default` is the older name of
/// `manual`).
pub const MODES: &[&str] = &[
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "manual",
    "dontAsk",
    "plan",
    "default",
];

/// The mode of the default profile.
pub const DEFAULT_MODE: &str = "acceptEdits";

/// mt's tools a coworker may run: talking, reading, tasks, its own state.
/// Starting, stopping and routing agents stay with the lead.
const MT_TOOLS: &[&str] = &[
    "mt-post",
    "mt-read",
    "mt-channels",
    "mt-task",
    "mt-mail",
    "mt-ps",
    "mt-log",
    "mt-wait",
    "mt-nudge",
    "mt-remind",
    "mt-status",
];

/// What a coworker may do with gh: open its pull request and follow it
/// (see the coworker prompt); reviewing stays with reviewers (`mt-pr review`).
const GH_RULES: &[&str] = &[
    "Bash(gh pr create:*)",
    "Bash(gh pr view:*)",
    "Bash(gh pr checks:*)",
    "Bash(gh pr diff:*)",
];

/// Claude Code's task tools (they need `CLAUDE_CODE_ENABLE_TODO_TOOLS=1`).
const TASK_TOOLS: &[&str] = &["TaskCreate", "TaskGet", "TaskList", "TaskUpdate"];

/// Build and test programs, by the file that shows a project uses them.
const BUILD_TOOLS: &[(&str, &[&str])] = &[
    ("Makefile", &["make"]),
    ("makefile", &["make"]),
    ("GNUmakefile", &["make"]),
    ("Cargo.toml", &["cargo"]),
    ("package.json", &["npm", "npx"]),
    ("go.mod", &["go"]),
    ("pyproject.toml", &["python", "python3", "pytest"]),
    ("setup.py", &["python", "python3", "pytest"]),
    ("CMakeLists.txt", &["cmake", "ctest"]),
    ("meson.build", &["meson", "ninja"]),
    ("pom.xml", &["mvn"]),
    ("build.gradle", &["./gradlew", "gradle"]),
    ("build.gradle.kts", &["./gradlew", "gradle"]),
    ("justfile", &["just"]),
];

/// How the permissions of a start were chosen on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// `--permission-mode`.
    pub mode: Option<String>,
    /// `--allow RULE`, added to the profile's allow list.
    pub allow: Vec<String>,
    /// `--permissions FILE`: a permissions object replacing the default
    /// profile.
    pub file: Option<PathBuf>,
}

impl Choice {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.allow.is_empty() && self.file.is_none()
    }
}

fn bash(program: &str) -> String {
    format!("Bash({program}:*)")
}

/// The default profile for an agent working in `cwd`.
pub fn default_profile(cwd: &Path) -> Value {
    let mut allow: Vec<String> = TASK_TOOLS.iter().map(|t| t.to_string()).collect();
    allow.push(bash("git"));
    allow.extend(MT_TOOLS.iter().map(|t| bash(t)));
    allow.extend(GH_RULES.iter().map(|r| r.to_string()));
    for (file, programs) in BUILD_TOOLS {
        if cwd.join(file).is_file() {
            for p in *programs {
                let rule = bash(p);
                if !allow.contains(&rule) {
                    allow.push(rule);
                }
            }
        }
    }
    json!({"defaultMode": DEFAULT_MODE, "allow": allow})
}

/// Check a mode name.
pub fn check_mode(mode: &str) -> Result<()> {
    if MODES.contains(&mode) {
        return Ok(());
    }
    Err(fail(
        USAGE,
        format!(
            "unknown permission mode {mode:?} (one of: {})",
            MODES.join(", ")
        ),
    ))
}

/// Read a permissions file: a JSON object in Claude Code's `permissions`
/// shape (`allow`, `deny`, `ask`, `defaultMode`, `additionalDirectories`),
/// or a whole settings object whose `permissions` is taken.
pub fn read_file(path: &Path) -> Result<Value> {
    let data = std::fs::read(path)
        .with_context(|| format!("cannot read permissions file {}", path.display()))?;
    let v: Value = serde_json::from_slice(&data)
        .map_err(|e| fail(DATAERR, format!("permissions file {}: {e}", path.display())))?;
    let v = match v.get("permissions") {
        Some(p) => p.clone(),
        None => v,
    };
    if !v.is_object() {
        return Err(fail(
            DATAERR,
            format!("permissions file {}: not a JSON object", path.display()),
        ));
    }
    if let Some(m) = v.get("defaultMode").and_then(Value::as_str) {
        check_mode(m)?;
    }
    Ok(v)
}

/// The permissions of a start: the file's or (with no choice at all, on a
/// resume) the stored ones or the default profile, then `--permission-mode`
/// and `--allow` on top.
pub fn resolve(choice: &Choice, stored: Option<&Value>, cwd: &Path) -> Result<Value> {
    let mut p = match (&choice.file, stored) {
        (Some(f), _) => read_file(f)?,
        (None, Some(s)) => s.clone(),
        (None, None) => default_profile(cwd),
    };
    if let Some(m) = &choice.mode {
        check_mode(m)?;
        p["defaultMode"] = Value::String(m.clone());
    }
    if !choice.allow.is_empty() {
        if !p.get("allow").is_some_and(Value::is_array) {
            p["allow"] = json!([]);
        }
        let list = p["allow"].as_array_mut().expect("array");
        for rule in &choice.allow {
            if rule.trim().is_empty() {
                return Err(fail(USAGE, "--allow needs a rule, e.g. 'Bash(npm test:*)'"));
            }
            if !list.iter().any(|r| r == rule) {
                list.push(Value::String(rule.clone()));
            }
        }
    }
    Ok(p)
}

/// The permission mode `p` sets, if any.
pub fn mode(p: &Value) -> Option<&str> {
    p.get("defaultMode").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_follows_the_project() {
        let d = tempfile::tempdir().unwrap();
        let p = default_profile(d.path());
        assert_eq!(mode(&p), Some("acceptEdits"));
        let allow: Vec<&str> = p["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(allow.contains(&"Bash(git:*)"));
        assert!(allow.contains(&"Bash(mt-post:*)"));
        assert!(allow.contains(&"TaskUpdate"));
        assert!(!allow.contains(&"Bash(mt-spawn:*)"));
        assert!(!allow.contains(&"Bash(cargo:*)"));
        std::fs::write(d.path().join("Cargo.toml"), "").unwrap();
        std::fs::write(d.path().join("Makefile"), "").unwrap();
        let p = default_profile(d.path());
        let allow = p["allow"].as_array().unwrap();
        assert!(allow.iter().any(|r| r == "Bash(cargo:*)"));
        assert_eq!(allow.iter().filter(|r| *r == "Bash(make:*)").count(), 1);
    }

    #[test]
    fn choices_apply_in_order() {
        let d = tempfile::tempdir().unwrap();
        let stored = json!({"defaultMode": "plan", "allow": ["Read"]});
        // No choice: what was stored.
        let p = resolve(&Choice::default(), Some(&stored), d.path()).unwrap();
        assert_eq!(p, stored);
        let c = Choice {
            mode: Some("dontAsk".into()),
            allow: vec!["Bash(npm test:*)".into(), "Read".into()],
            file: None,
        };
        let p = resolve(&c, Some(&stored), d.path()).unwrap();
        assert_eq!(
            p,
            json!({"defaultMode": "dontAsk", "allow": ["Read", "Bash(npm test:*)"]})
        );
        let f = d.path().join("p.json");
        std::fs::write(&f, r#"{"permissions":{"deny":["WebFetch"]}}"#).unwrap();
        let c = Choice {
            file: Some(f.clone()),
            allow: vec!["Read".into()],
            ..Choice::default()
        };
        let p = resolve(&c, Some(&stored), d.path()).unwrap();
        assert_eq!(p, json!({"deny": ["WebFetch"], "allow": ["Read"]}));
        let bad = Choice {
            mode: Some("yolo".into()),
            ..Choice::default()
        };
        assert!(resolve(&bad, None, d.path()).is_err());
        std::fs::write(&f, "[1]").unwrap();
        let c = Choice {
            file: Some(f),
            ..Choice::default()
        };
        assert_eq!(
            crate::exit::code_of(&resolve(&c, None, d.path()).unwrap_err()),
            DATAERR
        );
    }
}
