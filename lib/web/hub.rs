//! Change notification for the live pages: one thread per kind of change
//! follows directories with inotify (`infra::wake::Follow`) and bumps a
//! counter; every live connection waits on that counter and then rescans
//! the files itself. Nothing runs while nothing changes but a keep-alive
//! now and then.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::infra::wake::{Follow, Woke};

/// A counter of changes, and a way to wait for the next one.
#[derive(Default)]
pub struct Changes {
    count: Mutex<u64>,
    cv: Condvar,
}

impl Changes {
    pub fn now(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
    }

    /// Wait until the counter is past `seen`, or `timeout`; the count then.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |c| *c == seen)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// Follow `roots` and every directory directly inside them (channels,
/// agents), with the extra directories `extra` lists; bump `changes` on
/// each change. Runs for the life of the server.
pub fn follow(
    changes: &'static Changes,
    roots: Vec<PathBuf>,
    extra: impl Fn() -> Vec<PathBuf> + Send + 'static,
) {
    std::thread::spawn(move || {
        let f = Follow::new("mt-web");
        loop {
            for r in &roots {
                let _ = std::fs::create_dir_all(r);
                let _ = f.watch_dir(r);
                if let Ok(rd) = std::fs::read_dir(r) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            let _ = f.watch_dir(&e.path());
                        }
                    }
                }
            }
            for d in extra() {
                if d.is_dir() {
                    let _ = f.watch_dir(&d);
                }
            }
            match f.wait(Duration::from_secs(3600), None) {
                Ok(Woke::Timeout) if !f.degraded() => {}
                Ok(_) => changes.bump(),
                Err(_) => std::thread::sleep(crate::infra::wake::DEGRADED),
            }
        }
    });
}
