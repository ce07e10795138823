//! The test suite itself: every test file is part of a test binary.

use crate::support::repo;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The `path` of every `[[test]]` target of Cargo.toml.
fn test_targets(manifest: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for section in manifest.split("\n[").skip(1) {
        if !section.starts_with("[test]]") {
            continue;
        }
        let path = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("path = "))
            .unwrap_or_else(|| panic!("a [[test]] without a path: {section}"));
        out.push(repo().join(path.trim_matches('"')));
    }
    out
}

/// The files of the modules `file` declares (`mod name;`, or
/// `#[path = "..."] mod name;`), and theirs, with `file` itself.
fn module_files(file: &Path, out: &mut BTreeSet<PathBuf>) {
    let file = fs::canonicalize(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if !out.insert(file.clone()) {
        return;
    }
    let text = fs::read_to_string(&file).unwrap();
    let dir = file.parent().unwrap();
    // A mod.rs or main.rs holds its submodules beside it, x.rs in x/.
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let sub = if matches!(stem, "mod" | "main" | "lib") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let mut path_attr: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("#[path = \"") {
            path_attr = Some(p.trim_end_matches("\"]").to_string());
            continue;
        }
        let decl = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
            let child = match path_attr.take() {
                Some(p) => dir.join(p),
                None if sub.join(format!("{name}.rs")).is_file() => sub.join(format!("{name}.rs")),
                None => sub.join(name).join("mod.rs"),
            };
            module_files(&child, out);
        } else if !line.starts_with("#[") {
            path_attr = None;
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(fs::canonicalize(&p).unwrap());
        }
    }
}

/// With `autotests = false`, Cargo builds only the [[test]] targets: a
/// test file no target reaches would never run, silently. Every `.rs`
/// under tests/ must be a target or a module of one.
#[test]
fn every_test_file_is_part_of_a_test_binary() {
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\nautotests = false\n"),
        "Cargo.toml should list its test binaries ([[test]], autotests = false)"
    );
    let targets = test_targets(&manifest);
    assert!(
        targets.iter().any(|t| t.ends_with("tests/it/main.rs")),
        "{targets:?}"
    );
    let mut reached = BTreeSet::new();
    for t in &targets {
        module_files(t, &mut reached);
    }
    let mut all = Vec::new();
    rust_files(&repo().join("tests"), &mut all);
    let stray: Vec<_> = all.iter().filter(|f| !reached.contains(*f)).collect();
    assert!(
        stray.is_empty(),
        "test files no [[test]] target of Cargo.toml compiles (declare them with `mod` in tests/it/main.rs): {stray:#?}"
    );
    // And the checker sees what it should: this file, the support module.
    for f in [
        "tests/it/layout.rs",
        "tests/it/support/env.rs",
        "tests/it/support/api.rs",
    ] {
        assert!(
            reached.contains(&fs::canonicalize(repo().join(f)).unwrap()),
            "{f} not found as a module"
        );
    }
}
