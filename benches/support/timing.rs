//! Timing shared by the benchmarks that run a tool as a whole process:
//! wall time and the CPU time of the child, medians of many runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time (user + system) used so far by waited-for children. On a busy
/// machine wall time mostly measures the other processes; this does not.
pub fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    d(u.user_time()) + d(u.system_time())
}

/// Medians of a command's wall and CPU time.
#[derive(Clone, Copy)]
pub struct Stats {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Time `runs` runs of a command; `reset(i)` runs untimed before run `i`.
pub fn bench(
    runs: usize,
    mut make: impl FnMut() -> Command,
    mut reset: impl FnMut(usize),
) -> Stats {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for i in 0..runs {
        reset(i);
        let mut c = make();
        c.stdout(Stdio::null()).stderr(Stdio::inherit());
        let (t, c0) = (Instant::now(), children_cpu());
        let st = c.status().expect("run");
        wall.push(t.elapsed());
        cpu.push(children_cpu().saturating_sub(c0));
        assert!(st.success(), "{c:?} failed");
    }
    Stats {
        wall: median(wall),
        cpu: median(cpu),
    }
}
