//! Settings: the global and the project file under the flags and the
//! variables (mt-config, and the tools that start agents), and the errors
//! of a bad file.

use crate::support::*;
use serde_json::Value;
use std::fs;

fn global(e: &Env) -> std::path::PathBuf {
    // Env sets XDG_CONFIG_HOME to its home.
    e.home.join("mt/config.toml")
}

fn project(e: &Env) -> std::path::PathBuf {
    e.repo.join(".mt/config.toml")
}

fn write(path: &std::path::Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn config_json(e: &Env) -> Vec<Value> {
    e.ok("mt-config", &["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn setting(e: &Env, key: &str) -> Value {
    config_json(e)
        .into_iter()
        .find(|v| v["key"] == key)
        .unwrap()
}

/// Every combination of the four layers for `model`: the highest present
/// wins (flag, variable, project file, global file), both in what mt-config
/// reports and in what an agent is started with.
#[test]
fn precedence_in_every_combination() {
    let e = Env::with_repo();
    for mask in 0u8..16 {
        let (flag, var, proj, glob) = (mask & 8 != 0, mask & 4 != 0, mask & 2 != 0, mask & 1 != 0);
        let _ = fs::remove_file(project(&e));
        let _ = fs::remove_file(global(&e));
        if proj {
            write(&project(&e), "# project\nmodel = \"from-project\"\n");
        }
        if glob {
            write(&global(&e), "model = \"from-global\"\n");
        }
        let expect = if flag {
            Some("from-flag")
        } else if var {
            Some("from-env")
        } else if proj {
            Some("from-project")
        } else if glob {
            Some("from-global")
        } else {
            None
        };
        let name = format!("a{mask}");
        let mut c = e.cmd("mt-spawn");
        c.args([&name, "--detach", "--prompt", "go"]);
        if flag {
            c.args(["--model", "from-flag"]);
        }
        if var {
            c.env("MT_MODEL", "from-env");
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{mask}: {}", text(&o.stderr));
        assert_eq!(
            e.meta(&name)["model"].as_str(),
            expect,
            "combination {mask:04b}"
        );
        e.ok("mt-stop", &[&name]);

        // mt-config has no flag layer: it shows the rest.
        let mut c = e.cmd("mt-config");
        c.arg("--json");
        if var {
            c.env("MT_MODEL", "from-env");
        }
        let o = c.output().unwrap();
        let m: Value = text(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["key"] == "model")
            .unwrap();
        let (value, layer, from) = if var {
            ("from-env", "env", "$MT_MODEL".to_string())
        } else if proj {
            (
                "from-project",
                "project",
                format!("{}:2", project(&e).display()),
            )
        } else if glob {
            (
                "from-global",
                "global",
                format!("{}:1", global(&e).display()),
            )
        } else {
            ("", "default", "default".to_string())
        };
        assert_eq!(m["layer"], layer, "combination {mask:04b}");
        assert_eq!(m["from"], from.as_str(), "combination {mask:04b}");
        if value.is_empty() {
            assert!(m["value"].is_null());
        } else {
            assert_eq!(m["value"], value);
        }
    }
}

/// Keys mix layers: each comes from its own highest layer, and the tools
/// use them: channel, program and pool for mt-sling, max-agents for
/// mt-dispatch, the permission mode for the agent's settings.
#[test]
fn each_key_from_its_own_layer_reaches_the_tools() {
    let e = Env::with_repo();
    write(
        &global(&e),
        "channel = \"from-global\"\npool = [\"gil\"]\npermission-mode = \"plan\"\nmax-agents = 1\n",
    );
    write(&project(&e), "pool = [\"pia\", \"pat\"]\n");
    let out = e.cmd("mt-sling").args(["First", "task"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pia\n", "the project's pool");
    let meta = e.meta("pia");
    assert_eq!(meta["channel"], "from-global");
    assert_eq!(meta["permissions"]["defaultMode"], "plan");
    let took = e.channel("from-global");
    assert!(
        took.iter()
            .any(|r| r["content"] == "pia took task 1: First task"),
        "{took:?}"
    );
    // max-agents = 1: one runs, so the next task waits.
    e.ok("mt-task", &["create", "Second"]);
    let out = e.ok("mt-dispatch", &[]);
    assert!(out.contains("1 agents running (--max 1)"), "{out}");
    // A flag still wins over every file.
    let out = e.ok("mt-dispatch", &["--max", "3"]);
    assert!(out.contains("pat"), "{out}");
    e.ok("mt-stop", &["pia"]);
    e.ok("mt-stop", &["pat"]);
}

/// A bad settings file is an error naming the file and the line, for every
/// tool that reads settings, never a default in its place.
#[test]
fn a_bad_file_names_file_and_line_and_starts_nothing() {
    let e = Env::with_repo();
    let cases: &[(&str, &str, usize)] = &[
        ("model = \"x\"\nmodle = \"y\"\n", "unknown key `modle`", 2),
        ("# c\n\nmax-agents = \"four\"\n", "max-agents", 3),
        ("pool = [\"Bad Name\"]\n", "pool", 1),
        ("permission-mode = \"yolo\"\n", "not a permission mode", 1),
        ("model = [\n", "", 1),
    ];
    for (body, what, line) in cases {
        write(&project(&e), body);
        let want = format!("{}:{line}:", project(&e).display());
        for (tool, args) in [
            ("mt-config", vec![]),
            ("mt-spawn", vec!["york", "--detach", "--prompt", "go"]),
            ("mt-sling", vec!["a", "task"]),
            ("mt-dispatch", vec![]),
            ("mt-lead", vec!["--print"]),
            ("mt-watch", vec!["--dry-run"]),
        ] {
            let o = e.run(tool, &args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(78), "{tool} with {body:?}: {err}");
            assert!(err.starts_with(&format!("{tool}: {want}")), "{tool}: {err}");
            assert!(err.contains(what), "{tool}: {err}");
        }
        assert!(!e.agent("york").join("meta.json").exists());
    }
    // A file that cannot be read (a directory in its place).
    let _ = fs::remove_file(project(&e));
    fs::create_dir_all(project(&e)).unwrap();
    let o = e.run("mt-config", &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(text(&o.stderr).contains(&format!("cannot read {}", project(&e).display())));
    fs::remove_dir(project(&e)).unwrap();
    // A bad variable names the variable.
    let o = e
        .cmd("mt-config")
        .env("MT_MAX_AGENTS", "lots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78));
    assert!(
        text(&o.stderr).contains("$MT_MAX_AGENTS"),
        "{}",
        text(&o.stderr)
    );
}

/// `mt-config set` and `unset` keep the file's comments, refuse what would
/// not parse, and leave a broken file alone.
#[test]
fn set_and_unset_keep_the_file() {
    let e = Env::with_repo();
    write(&project(&e), "# our team\nmodel = \"a\"\n");
    e.ok("mt-config", &["set", "pool", "ada", "bo"]);
    e.ok("mt-config", &["set", "--global", "profile", "work"]);
    let t = fs::read_to_string(project(&e)).unwrap();
    assert!(t.starts_with("# our team\nmodel = \"a\"\n"), "{t}");
    assert!(t.contains("pool = [\"ada\", \"bo\"]"), "{t}");
    assert_eq!(setting(&e, "profile")["value"], "work");
    assert_eq!(e.ok("mt-config", &["get", "pool"]), "ada,bo\n");
    assert_eq!(
        e.run("mt-config", &["get", "model2"]).status.code(),
        Some(78)
    );
    assert_eq!(e.run("mt-config", &["get", "rules"]).status.code(), Some(1));
    let o = e.run("mt-config", &["set", "max-agents", "zero"]);
    assert_eq!(o.status.code(), Some(78));
    e.ok("mt-config", &["unset", "model"]);
    let t = fs::read_to_string(project(&e)).unwrap();
    assert!(!t.contains("model") && t.starts_with("# our team\n"), "{t}");
    // A broken file is not written over.
    write(&project(&e), "model = [\n");
    let o = e.run("mt-config", &["set", "model", "b"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(fs::read_to_string(project(&e)).unwrap(), "model = [\n");
}
