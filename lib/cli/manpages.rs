//! Man pages and shell completions, generated from the clap definitions.

use anyhow::{Context, Result};
use clap::ValueEnum;
use std::fs;
use std::path::Path;

use super::tools;

/// Turn the light markup used for extra sections into roff:
/// paragraphs are separated by blank lines; a line `TERM<TAB>text` is a
/// tagged item; lines indented by two spaces are shown verbatim.
pub fn roff(text: &str) -> String {
    let mut out = String::new();
    let mut verbatim = false;
    let mut para_open = false;
    for line in text.lines() {
        if let Some(code) = line.strip_prefix("  ") {
            if !verbatim {
                out.push_str(".PP\n.nf\n.RS 4\n");
                verbatim = true;
            }
            out.push_str(&escape(code));
            out.push('\n');
            continue;
        }
        if verbatim {
            out.push_str(".RE\n.fi\n");
            verbatim = false;
            para_open = false;
        }
        if line.trim().is_empty() {
            para_open = false;
        } else if let Some((term, body)) = line.split_once('\t') {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(term),
                escape(body)
            ));
            para_open = true;
        } else {
            if !para_open {
                out.push_str(".PP\n");
                para_open = true;
            }
            out.push_str(&escape(line));
            out.push('\n');
        }
    }
    if verbatim {
        out.push_str(".RE\n.fi\n");
    }
    out
}

fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Write `<name>.1` for every tool into `dir`, and `<tool>-<sub>.1` for
/// each of its subcommands (the pages its SUBCOMMANDS section names).
pub fn man_pages(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for tool in tools() {
        // No `help` subcommand in the pages: --help covers it, and a page
        // for it would say nothing.
        let mut cmd = (tool.command)()
            .name(tool.name)
            .disable_help_subcommand(true);
        // Building names the subcommands: `mt-task-claim` (display name:
        // page title) and `mt-task claim` (bin name: synopsis).
        cmd.build();
        let mut text = page(&cmd)?;
        let env = env_lines(&cmd);
        let mut env_done = env.is_empty();
        for (title, body) in tool.sections {
            if !env_done && matches!(*title, "ENVIRONMENT" | "SEE ALSO") {
                text.push_str(".SH \"ENVIRONMENT\"\n");
                text.push_str(&roff(&environment(
                    &env,
                    body_of(tool.sections, "ENVIRONMENT"),
                )));
                env_done = true;
            }
            if *title == "ENVIRONMENT" {
                continue;
            }
            // An empty title continues the previous section.
            if !title.is_empty() {
                text.push_str(&format!(".SH \"{title}\"\n"));
            }
            text.push_str(&roff(body));
        }
        if !env_done {
            text.push_str(".SH \"ENVIRONMENT\"\n");
            text.push_str(&roff(&environment(&env, "")));
        }
        write_page(dir, tool.name, &text)?;
        sub_pages(dir, &cmd)?;
    }
    Ok(())
}

/// The hand-written text of section `title`, if any.
fn body_of(sections: &[(&str, &'static str)], title: &str) -> &'static str {
    sections
        .iter()
        .find(|(t, _)| *t == title)
        .map(|(_, b)| *b)
        .unwrap_or("")
}

/// One ENVIRONMENT line per variable an option of `cmd` or of its
/// subcommands reads (clap's `env`), made from the option's definition:
/// (variable, text). The man pages list these, so no page repeats them by
/// hand.
pub fn env_lines(cmd: &clap::Command) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut visit = vec![cmd];
    while let Some(c) = visit.pop() {
        for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(var) = a.get_env().map(|v| v.to_string_lossy().into_owned()) else {
                continue;
            };
            if out.iter().any(|(v, _)| *v == var) {
                continue;
            }
            let flag = match (a.get_short(), a.get_long()) {
                (Some(s), Some(l)) => format!("-{s}/--{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => a.get_id().to_string(),
            };
            let help = a
                .get_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let mut text = format!("as {flag}");
            if !help.is_empty() {
                text.push_str(&format!(": {help}"));
            }
            if !default.is_empty() {
                text.push_str(&format!(" (default {})", default.join(",")));
            }
            out.push((var, text));
        }
        visit.extend(c.get_subcommands());
    }
    out
}

/// The ENVIRONMENT section: the options' variables, then what the tool's
/// own text adds (variables without an option, notes); a hand-written line
/// for a variable an option already names is left out.
fn environment(env: &[(String, String)], extra: &str) -> String {
    let mut text: String = env.iter().map(|(v, t)| format!("{v}\t{t}\n")).collect();
    for line in extra.lines() {
        let term = line.split_once('\t').map(|(t, _)| t);
        if term.is_some_and(|t| env.iter().any(|(v, _)| v == t)) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The pages of `parent`'s visible subcommands, and of theirs.
fn sub_pages(dir: &Path, parent: &clap::Command) -> Result<()> {
    let parent_name = parent.get_display_name().unwrap_or(parent.get_name());
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_display_name().expect("built commands have one");
        let mut text = page(sub)?;
        text.push_str(".SH \"SEE ALSO\"\n");
        text.push_str(&roff(&format!("{parent_name}(1)")));
        write_page(dir, name, &text)?;
        sub_pages(dir, sub)?;
    }
    Ok(())
}

/// The sections clap_mangen renders for `cmd`.
fn page(cmd: &clap::Command) -> Result<String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .source(format!("mt {}", env!("CARGO_PKG_VERSION")))
        .manual("mt manual");
    let mut buf: Vec<u8> = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut buf)?;
    }
    Ok(String::from_utf8(buf)?)
}

/// Write `dir/<name>.1`, characters beyond ASCII as roff escapes so that
/// any troff reads it, whatever its input encoding.
fn write_page(dir: &Path, name: &str, text: &str) -> Result<()> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// Write completions for bash, zsh and fish into `dir/<shell>/`.
pub fn completions(dir: &Path) -> Result<()> {
    use clap_complete::Shell;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let sub = dir.join(shell.to_possible_value().expect("shell").get_name());
        fs::create_dir_all(&sub)?;
        for tool in tools() {
            let mut cmd = (tool.command)().name(tool.name);
            clap_complete::generate_to(shell, &mut cmd, tool.name, &sub)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_markup() {
        let r = roff("First line.\nsame para\n\n0\tok\n  $ mt-post hi\n.dot");
        assert!(r.starts_with(".PP\nFirst line.\nsame para\n.TP\n\\fB0\\fR\nok\n"));
        assert!(r.contains(".nf\n.RS 4\n$ mt\\-post hi\n.RE\n.fi\n"));
        assert!(r.contains("\\&.dot"));
    }

    #[test]
    fn environment_comes_from_the_options() {
        let post = tools().into_iter().find(|t| t.name == "mt-post").unwrap();
        let env = env_lines(&post.command());
        for var in ["MT_DIR", "MT_CHANNEL", "MT_AGENT", "MT_SEGMENT_BYTES"] {
            assert!(env.iter().any(|(v, _)| v == var), "{var}: {env:?}");
        }
        let chan = &env.iter().find(|(v, _)| v == "MT_CHANNEL").unwrap().1;
        assert!(
            chan.contains("-c/--channel") && chan.contains("general"),
            "{chan}"
        );
        // Hand-written text keeps what no option says, never a repeat.
        let text = environment(&env, "MT_CHANNEL\trepeated\nMT_FSYNC\t0 skips the sync");
        assert!(!text.contains("repeated"));
        assert!(text.contains("MT_FSYNC\t0 skips the sync"));
    }

    #[test]
    fn pages_are_ascii() {
        let d = tempfile::tempdir().unwrap();
        write_page(d.path(), "x", "a \u{2026} \u{1F600}\n").unwrap();
        let text = fs::read_to_string(d.path().join("x.1")).unwrap();
        assert_eq!(text, "a \\[u2026] \\[u1F600]\n");
    }
}
