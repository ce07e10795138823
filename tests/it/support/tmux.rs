//! A program in a terminal: a tmux server of its own (its own socket, no
//! configuration) with one pane, typed into with `send-keys` and read with
//! `capture-pane`. The server is killed when the `Tmux` is dropped, also
//! when the test panics.

use super::{PATIENCE, wait_for_within};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Tmux {
    socket: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether tmux is installed (CI installs it, see .ci/run).
pub fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `s` quoted for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Tmux {
    /// Run `command` (for sh) in a `cols` x `rows` pane with exactly the
    /// variables `env`, from directory `dir`. When the command ends, the
    /// pane shows `EXITED <code>` and stays.
    pub fn start(dir: &Path, env: &[(&str, String)], command: &str, cols: u16, rows: u16) -> Tmux {
        let socket = format!(
            "mt-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let t = Tmux { socket };
        let vars: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", sh_quote(v)))
            .collect();
        let line = format!(
            "cd {} && env -i {} {command}; echo EXITED $?; exec sleep 600",
            sh_quote(&dir.display().to_string()),
            vars.join(" ")
        );
        let o = t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            &line,
        ]);
        assert!(
            o.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    /// The pane as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// The pane with its colours and attributes as escape sequences.
    pub fn screen_styled(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-e"]).stdout).into_owned()
    }

    /// Keys by tmux name (`Enter`, `C-k`, `Tab`, `PPage`).
    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "0"];
        a.extend(keys);
        assert!(self.tmux(&a).status.success());
    }

    /// Text typed as it is.
    pub fn type_text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "0", "-l", text])
                .status
                .success()
        );
    }

    /// Wait until the screen passes `f`; the screen then.
    pub fn wait_screen(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let start = std::time::Instant::now();
        while start.elapsed() < PATIENCE {
            last = self.screen();
            if f(&last) {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; the screen:\n{last}");
    }

    /// Wait until `text` is on screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_screen(text, |s| s.contains(text))
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let o = self.tmux(&[
            "resize-window",
            "-t",
            "0",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// A format of the pane, e.g. `#{pane_title}`.
    pub fn display(&self, format: &str) -> String {
        let o = self.tmux(&["display-message", "-p", "-t", "0", format]);
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// The pid of the program the pane's shell runs (its first child named
    /// `name`), waiting for it to start.
    pub fn child_pid(&self, name: &str) -> u32 {
        let shell: u32 = self.display("#{pane_pid}").parse().unwrap();
        let mut found = None;
        wait_for_within(PATIENCE, name, || {
            found = children(shell).into_iter().find(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name)
            });
            found.is_some()
        });
        found.unwrap()
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
