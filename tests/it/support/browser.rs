//! A real headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended by a
//! NUL byte, commands on the browser's fd 3, answers and events on its
//! fd 4), so no websocket client is needed. One fresh profile per browser;
//! the browser is killed when the handle is dropped.
//!
//! Without Chromium a test skips with one line, and fails instead under
//! `MT_REQUIRE_BROWSER=1` or `MT_CI=1` (CI).

use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::PATIENCE;

const CANDIDATES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for c in CANDIDATES {
            let p = dir.join(c);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Whether a missing browser fails the test rather than skipping it.
fn required() -> bool {
    let set = |k: &str| std::env::var(k).as_deref() == Ok("1");
    set("MT_REQUIRE_BROWSER") || set("MT_CI")
}

pub struct Browser {
    child: Child,
    to: File,
    from: Receiver<Value>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe whose two ends are above the descriptors the child gets (3, 4)
/// and close on exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let high = |fd: OwnedFd| {
        let n = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).unwrap();
        // SAFETY: a descriptor fcntl just made, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(n) }
    };
    (high(r), high(w))
}

impl Browser {
    /// A browser with one blank page, or `None` after saying the test
    /// `test` is skipped.
    pub fn launch(test: &str) -> Option<Browser> {
        let Some(exe) = find() else {
            let why = "chromium not installed";
            assert!(
                !required(),
                "{test}: {why}; MT_REQUIRE_BROWSER=1 or MT_CI=1 forbids skipping"
            );
            eprintln!("SKIPPED {test}: {why}");
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (res_r, res_w) = pipe();
        let (a, b) = (cmd_r.as_raw_fd(), res_w.as_raw_fd());
        let mut c = Command::new(exe);
        c.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-component-update",
            "--mute-audio",
            "--hide-scrollbars",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: dup2 only, which is async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                nix::libc::dup2(a, 3);
                nix::libc::dup2(b, 4);
                Ok(())
            });
        }
        let child = c.spawn().expect("start chromium");
        drop(cmd_r);
        drop(res_w);
        // SAFETY: the descriptors are ours alone from here on.
        let to = unsafe { File::from_raw_fd(cmd_w.into_raw_fd()) };
        let mut from_file = unsafe { File::from_raw_fd(res_r.into_raw_fd()) };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match from_file.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.iter().position(|&c| c == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut br = Browser {
            child,
            to,
            from: rx,
            next: 0,
            session: String::new(),
            _profile: profile,
        };
        let t = br.call_browser("Target.createTarget", json!({ "url": "about:blank" }));
        let target = t["targetId"].as_str().unwrap().to_string();
        let s = br.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        br.session = s["sessionId"].as_str().unwrap().to_string();
        br.call("Page.enable", json!({}));
        Some(br)
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if session {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer from chromium to {method}"));
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of a JavaScript expression in the page (promises awaited);
    /// a thrown exception fails the test.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Wait until `expr` is true in the page.
    pub fn wait_until(&mut self, what: &str, expr: &str) {
        let start = Instant::now();
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            );
            if r["result"]["value"] == json!(true) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for {what} ({expr})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The viewport: a phone (touch, narrow) or a desktop.
    pub fn size(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        );
    }

    /// Save a PNG of the viewport as DIR/NAME-WxH.png, DIR being
    /// `$MT_SCREENSHOTS`, else target/screenshots; returns its path.
    pub fn screenshot(&mut self, name: &str, width: u32, height: u32) -> PathBuf {
        self.size(width, height);
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64(r["data"].as_str().unwrap());
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{name}-{width}x{height}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }
}

pub fn screenshots() -> PathBuf {
    match std::env::var_os("MT_SCREENSHOTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots"),
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s.as_bytes().iter().filter(|&&c| c != b'=') {
        acc = (acc << 6) | val(c) as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
