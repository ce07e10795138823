//! The generated man pages: every page a SUBCOMMANDS section names exists,
//! and groff reads every page without a warning.

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

/// Run `mt-gen man` into a fresh directory; returns it and the pages.
fn generate() -> (tempfile::TempDir, Vec<PathBuf>) {
    let d = tempfile::tempdir().unwrap();
    Command::new(crate::support::bin("mt-gen"))
        .arg("man")
        .arg(d.path())
        .assert()
        .success();
    let pages = files_under(d.path());
    (d, pages)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir).unwrap() {
        let path = ent.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The `name(1)` references in a page's section `title`, unescaped.
fn references(page: &str, title: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut inside = false;
    for line in page.lines() {
        if let Some(t) = line.strip_prefix(".SH ") {
            inside = t.trim_matches('"') == title;
            continue;
        }
        if inside {
            for word in line.split([' ', ',']) {
                if let Some(name) = word.strip_suffix("(1)") {
                    refs.push(name.replace("\\-", "-"));
                }
            }
        }
    }
    refs
}

#[test]
fn every_listed_subcommand_has_a_page() {
    let (d, pages) = generate();
    let mut seen = 0;
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        for name in references(&text, "SUBCOMMANDS") {
            seen += 1;
            let want = d.path().join(format!("{name}.1"));
            assert!(
                want.exists(),
                "{} lists {name}(1), but {} was not generated",
                page.display(),
                want.display()
            );
        }
    }
    assert!(seen >= 4, "only {seen} subcommand references found");

    // A subcommand page is named after it, shows how to type it, and
    // points back to its tool.
    let claim = fs::read_to_string(d.path().join("mt-task-claim.1")).unwrap();
    assert!(claim.contains(".TH mt-task-claim 1"), "{claim}");
    assert!(claim.contains("\\fBmt\\-task claim\\fR"), "{claim}");
    assert_eq!(references(&claim, "SEE ALSO"), ["mt-task"]);
    assert!(!d.path().join("mt-task-help.1").exists());
}

#[test]
fn groff_reads_every_page_without_warnings() {
    if std::process::Command::new("groff")
        .arg("-v")
        .output()
        .is_err()
    {
        crate::support::skip("groff is not installed (apt-get install groff-base)");
        return;
    }
    let (_d, mut pages) = generate();
    pages.extend(files_under(&crate::support::repo().join("share/man")));
    let mut complaints = String::new();
    for page in &pages {
        let out = std::process::Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap();
        assert!(out.status.success(), "groff failed on {}", page.display());
        complaints.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(complaints.is_empty(), "groff warnings:\n{complaints}");
}

/// The tools `make install` installs: every [[bin]] of Cargo.toml but the
/// build-time generator.
fn installed_tools() -> Vec<String> {
    let manifest = fs::read_to_string(crate::support::repo().join("Cargo.toml")).unwrap();
    let tools: Vec<String> = manifest
        .split("\n[[bin]]\n")
        .skip(1)
        .filter_map(|b| b.lines().next()?.strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_string())
        .filter(|n| n != "mt-gen")
        .collect();
    assert!(tools.len() > 15, "{tools:?}");
    tools
}

/// Every installed tool has a page, and bash, zsh and fish completions;
/// the bash ones are valid shell (`bash -n`).
#[test]
fn every_tool_has_a_page_and_completions_for_three_shells() {
    let (d, _pages) = generate();
    let c = tempfile::tempdir().unwrap();
    Command::new(crate::support::bin("mt-gen"))
        .arg("completions")
        .arg(c.path())
        .assert()
        .success();
    for t in installed_tools() {
        assert!(d.path().join(format!("{t}.1")).is_file(), "no page for {t}");
        for f in [
            format!("bash/{t}.bash"),
            format!("zsh/_{t}"),
            format!("fish/{t}.fish"),
        ] {
            let p = c.path().join(&f);
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(text.contains(&t), "{f} does not name {t}");
        }
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(c.path().join(format!("bash/{t}.bash")))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bash -n {t}.bash: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
