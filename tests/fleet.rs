//! A fleet of coworkers, driven through the real binaries with the fake
//! agent: hundreds of agents under the kernel's inotify limit, each nudged
//! once, listed by mt-ps, stopped by pattern, and nothing left behind.
//!
//! The inotify limit is made real without touching the machine: those
//! scenarios run in a user namespace of their own (an ignored test of this
//! binary, started by the outer test), whose `user.max_inotify_instances`
//! limits what runs inside it and nothing else, so tests running meanwhile
//! keep their instances. Where no user namespace can be made, they run
//! under the host's own limit (128 by default), and the scenario without
//! any instance forces that path with MT_INOTIFY=0.

use nix::sys::inotify::{InitFlags, Inotify};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FAKE: &str = env!("CARGO_BIN_EXE_mt-fake-agent");
/// Liveness bound only: no assertion depends on how fast things are.
const PATIENCE: Duration = Duration::from_secs(120);
/// Set (to the limit) for the scenarios run inside a user namespace.
const NS_LIMIT: &str = "MT_TEST_NS_INOTIFY_LIMIT";

fn bin(name: &str) -> PathBuf {
    match name {
        "mt-spawn" => env!("CARGO_BIN_EXE_mt-spawn"),
        "mt-ps" => env!("CARGO_BIN_EXE_mt-ps"),
        "mt-nudge" => env!("CARGO_BIN_EXE_mt-nudge"),
        "mt-stop" => env!("CARGO_BIN_EXE_mt-stop"),
        "mt-log" => env!("CARGO_BIN_EXE_mt-log"),
        "mt-read" => env!("CARGO_BIN_EXE_mt-read"),
        "mt-post" => env!("CARGO_BIN_EXE_mt-post"),
        "mt-watch" => env!("CARGO_BIN_EXE_mt-watch"),
        other => panic!("unknown binary {other}"),
    }
    .into()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A state directory and working directory of our own; agents still
/// running when a test ends are stopped.
struct Fleet {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    cwd: PathBuf,
    receipts: PathBuf,
    /// Run every tool with MT_INOTIFY=0.
    no_inotify: bool,
}

impl Fleet {
    fn new(no_inotify: bool) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let f = Fleet {
            state: root.join("state"),
            cwd: root.join("work"),
            receipts: root.join("receipts.jsonl"),
            no_inotify,
            _tmp: tmp,
        };
        fs::create_dir_all(&f.cwd).unwrap();
        fs::create_dir_all(root.join("home")).unwrap();
        f
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        let home = self.cwd.parent().unwrap().join("home");
        c.current_dir(&self.cwd)
            .env("MT_DIR", &self.state)
            .env("HOME", &home)
            .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
            .env("MT_AGENT_CMD", FAKE)
            .env("MT_FSYNC", "0")
            .env("MT_FAKE_RECEIPTS", &self.receipts)
            .stdin(Stdio::null());
        for k in [
            "MT_AGENT",
            "MT_CHANNEL",
            "MT_TASK",
            "MT_FAKE_MODE",
            "MT_FAKE_SCRIPT",
            "MT_FAKE_RUN",
            "MT_FAKE_DELAY",
            "MT_FAKE_RECORD",
            "MT_INOTIFY",
            "CLAUDE_CODE_TASK_LIST_ID",
        ] {
            c.env_remove(k);
        }
        if self.no_inotify {
            c.env("MT_INOTIFY", "0");
        }
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().unwrap()
    }

    /// Start detached agents, a few at a time, each with the prompt
    /// `hello NAME`.
    fn spawn(&self, names: &[String]) {
        let chunk = names.len().div_ceil(4).max(1);
        std::thread::scope(|s| {
            for part in names.chunks(chunk) {
                s.spawn(move || {
                    for n in part {
                        let out = self.run(
                            "mt-spawn",
                            &[n, "--detach", "--prompt", &format!("hello {n}")],
                        );
                        assert_eq!(out.status.code(), Some(0), "{n}: {}", text(&out.stderr));
                        assert_eq!(text(&out.stderr), "", "{n}");
                    }
                });
            }
        });
    }

    fn nudge(&self, name: &str, msg: &str) {
        let out = self.run("mt-nudge", &[name, msg]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
    }

    /// How often each message reached an agent, by text.
    fn receipts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for l in fs::read_to_string(&self.receipts)
            .unwrap_or_default()
            .lines()
        {
            let v: Value = serde_json::from_str(l).unwrap();
            *out.entry(v["text"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        out
    }

    fn wait_received(&self, texts: &[String]) {
        wait_for("the agents to read their messages", || {
            let got = self.receipts();
            texts.iter().all(|t| got.contains_key(t))
        });
    }

    fn ps(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run("mt-ps", &[&["--json"], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn file_json(&self, name: &str, file: &str) -> Value {
        let p = self.state.join("agents").join(name).join(file);
        serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
    }

    fn inbox(&self, name: &str, sub: &str) -> usize {
        fs::read_dir(self.state.join("agents").join(name).join("inbox").join(sub))
            .unwrap()
            .count()
    }

    /// Live processes of this state directory, with their MT_AGENT if any.
    fn processes(&self) -> Vec<(i32, Option<String>)> {
        let dir = format!("MT_DIR={}", self.state.display());
        let mut out = Vec::new();
        for ent in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
            if !vars.contains(&dir.as_bytes()) || !alive(pid) {
                continue;
            }
            let agent = vars
                .iter()
                .find_map(|v| v.strip_prefix(b"MT_AGENT="))
                .map(text);
            out.push((pid, agent));
        }
        out
    }

    /// Processes still carrying one of `names` as MT_AGENT.
    fn leftovers(&self, names: &[String]) -> Vec<(i32, String)> {
        let names: HashSet<&String> = names.iter().collect();
        self.processes()
            .into_iter()
            .filter_map(|(p, a)| a.filter(|a| names.contains(a)).map(|a| (p, a)))
            .collect()
    }

    /// Wait until no process of this state directory is left (supervisors
    /// exit just after they let go of their lock).
    fn wait_all_gone(&self) {
        wait_for("every process of the fleet to end", || {
            self.processes().is_empty()
        });
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.state.join("agents").is_dir() {
            let _ = self.run("mt-stop", &["--grace", "1s", "--all"]);
        }
    }
}

fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s[s.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

/// A long-running tool whose output lines are collected as they come.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(mut cmd: Command) -> Follower {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Follower { child, lines }
    }

    /// Whether it printed a line holding `s`; it must not have failed.
    fn saw(&mut self, s: &str) -> bool {
        let seen = self.lines.lock().unwrap().iter().any(|l| l.contains(s));
        if !seen {
            self.check();
        }
        seen
    }

    /// Panic (with its stderr) if it ended with a failure.
    fn check(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait()
            && !st.success()
        {
            let mut err = String::new();
            let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("it ended with {st}: {err}");
        }
    }

    /// End it (SIGTERM unless it ended by itself) and return its stderr.
    fn finish(mut self) -> String {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process can still get an inotify instance.
fn inotify_available() -> bool {
    Inotify::init(InitFlags::IN_CLOEXEC).is_ok()
}

// ---------------------------------------------------------------------------
// Running a scenario in a user namespace with an inotify limit of its own.

/// Run the ignored test `inner` of this binary in a new user namespace
/// (mapping our uid and gid to root there), where it sets the namespace's
/// inotify instance limit to `limit`. `None` when no user namespace can be
/// made here.
fn in_user_ns(inner: &str, limit: u32) -> Option<Output> {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    let uid = CString::new(format!("0 {} 1", nix::unistd::getuid())).unwrap();
    let gid = CString::new(format!("0 {} 1", nix::unistd::getgid())).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        inner,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(NS_LIMIT, limit.to_string())
    .stdin(Stdio::null());
    // SAFETY: between fork and exec only unshare, open, write and close,
    // on buffers made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::unshare(nix::libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Absent on old kernels, which do not need it.
            let _ = write_proc(c"/proc/self/setgroups", b"deny");
            write_proc(c"/proc/self/uid_map", uid.as_bytes())?;
            write_proc(c"/proc/self/gid_map", gid.as_bytes())
        });
    }
    match cmd.output() {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("no user namespace here ({e}): running under the host's limits");
            None
        }
    }
}

/// open + write + close, for use between fork and exec.
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: plain system calls on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if n != data.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Inside the namespace: apply the limit. `None` outside (the ignored test
/// then does nothing).
fn apply_ns_limit() -> Option<u32> {
    let limit: u32 = std::env::var(NS_LIMIT).ok()?.parse().unwrap();
    let p = "/proc/sys/user/max_inotify_instances";
    fs::write(p, limit.to_string()).unwrap();
    assert_eq!(fs::read_to_string(p).unwrap().trim(), limit.to_string());
    Some(limit)
}

fn assert_inner_passed(out: &Output) {
    let so = text(&out.stdout);
    assert!(
        out.status.success() && so.contains("1 passed"),
        "in the user namespace:\n{so}\n{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// 300 coworkers under a limit of 128 inotify instances.

#[test]
fn fleet_of_300_under_an_inotify_limit_of_128() {
    match in_user_ns("ns_fleet_of_300", 128) {
        Some(out) => assert_inner_passed(&out),
        None => fleet_of_300(),
    }
}

#[test]
#[ignore = "run by fleet_of_300_under_an_inotify_limit_of_128 in a user namespace"]
fn ns_fleet_of_300() {
    if apply_ns_limit().is_some() {
        fleet_of_300();
    }
}

fn fleet_of_300() {
    let f = Fleet::new(false);
    let all = names("f", 300);
    f.spawn(&all);
    let hellos: Vec<String> = all.iter().map(|n| format!("hello {n}")).collect();
    f.wait_received(&hellos);
    // The supervisors took no inotify instance: the watcher and the
    // followers still get theirs.
    assert!(inotify_available(), "300 supervisors used up inotify");

    let nudges: Vec<String> = all.iter().map(|n| format!("nudge {n}")).collect();
    for (n, m) in all.iter().zip(&nudges) {
        f.nudge(n, m);
    }
    f.wait_received(&nudges);

    // mt-ps shows every agent, as its files say.
    wait_for("every status to record both inputs", || {
        f.ps(&[])
            .iter()
            .all(|r| r["inputs"] == 2 && r["state"] == "idle")
    });
    let rows = f.ps(&[]);
    let shown: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(shown, all.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &rows {
        let n = r["name"].as_str().unwrap();
        assert_eq!(r["running"], true, "{n}");
        assert_eq!(r["pid"], f.file_json(n, "status.json")["pid"], "{n}");
        assert_eq!(r["session_id"], f.file_json(n, "meta.json")["session_id"]);
    }
    let table = f.run("mt-ps", &[]);
    let lines: Vec<String> = text(&table.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 301);
    for (l, n) in lines[1..].iter().zip(&all) {
        assert!(l.starts_with(&format!("{n}  idle")), "{l}");
    }

    // One mt-stop with a pattern stops them all, together.
    let out = f.run("mt-stop", &["--grace", "10s", "f*"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(f.leftovers(&all), vec![]);
    for r in f.ps(&[]) {
        assert_eq!(r["running"], false);
        assert_eq!(r["state"], "exited", "{r}");
        assert_eq!(r["stopped"], true);
    }
    // Each message reached its agent exactly once.
    let got = f.receipts();
    for t in hellos.iter().chain(&nudges) {
        assert_eq!(got.get(t), Some(&1), "{t}");
    }
    assert_eq!(got.len(), 600);
    for n in &all {
        assert_eq!((f.inbox(n, "new"), f.inbox(n, "cur")), (0, 1), "{n}");
    }
    f.wait_all_gone();
}

// ---------------------------------------------------------------------------
// Not a single inotify instance left.

#[test]
fn without_any_inotify_instance_every_tool_still_works() {
    match in_user_ns("ns_without_inotify", 0) {
        Some(out) => assert_inner_passed(&out),
        None => without_inotify(true),
    }
}

#[test]
#[ignore = "run by without_any_inotify_instance_every_tool_still_works in a user namespace"]
fn ns_without_inotify() {
    if apply_ns_limit().is_some() {
        let e = Inotify::init(InitFlags::IN_CLOEXEC).err();
        assert_eq!(e, Some(nix::errno::Errno::EMFILE), "the limit is not real");
        without_inotify(false);
    }
}

/// Every tool that waits for changes, without inotify: supervisors need
/// none, followers and the watcher rescan with at most a warning.
/// `forced`: MT_INOTIFY=0 stands in for the kernel's limit (no warning).
fn without_inotify(forced: bool) {
    let f = Fleet::new(forced);
    let all = names("g", 3);
    f.spawn(&all);
    f.wait_received(&all.iter().map(|n| format!("hello {n}")).collect::<Vec<_>>());

    f.run("mt-post", &["--", "before the followers"]);
    let mut read = f.cmd("mt-read");
    read.args(["--follow", "--all"]);
    let mut read = Follower::start(read);
    let mut log = f.cmd("mt-log");
    log.args(["--follow", "g000"]);
    let mut log = Follower::start(log);
    fs::write(
        f.cwd.join("rules"),
        "name=ch @change channel:general echo run >> ch.out\n",
    )
    .unwrap();
    let mut watch = f.cmd("mt-watch");
    watch.args(["--rules", "rules"]);
    let mut watch = Follower::start(watch);
    let runs = || {
        fs::read_to_string(f.cwd.join("ch.out"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("the followers to catch up", || {
        watch.check();
        read.saw("before the followers") && log.saw("hello g000") && runs() >= 1
    });

    let before = runs();
    f.run("mt-post", &["--", "while following"]);
    for n in &all {
        f.nudge(n, &format!("nudge {n}"));
    }
    wait_for("mt-read -f to print the new record", || {
        read.saw("while following")
    });
    wait_for("mt-log -f to print the nudge", || log.saw("nudge g000"));
    wait_for("mt-watch to run the rule again", || runs() > before);
    f.wait_received(&all.iter().map(|n| format!("nudge {n}")).collect::<Vec<_>>());

    let out = f.run("mt-stop", &["--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(f.leftovers(&all), vec![]);
    for (what, err) in [
        ("mt-read", read.finish()),
        ("mt-log", log.finish()),
        ("mt-watch", watch.finish()),
    ] {
        let warnings = err.lines().filter(|l| l.contains("inotify")).count();
        let expected = if forced { 0 } else { 1 };
        assert_eq!(warnings, expected, "{what}: {err}");
        assert_eq!(err.lines().count(), warnings, "{what}: {err}");
    }
    for n in &all {
        let log = fs::read_to_string(f.state.join("agents").join(n).join("stderr.log")).unwrap();
        assert_eq!(log, "", "{n}'s supervisor needed no wake-up help");
    }
    let got = f.receipts();
    assert!(got.values().all(|&c| c == 1), "{got:?}");
    f.wait_all_gone();
}

// ---------------------------------------------------------------------------
// mt-stop with several names, patterns and --all.

#[test]
fn stop_by_names_patterns_and_all_leaves_nothing_running() {
    let f = Fleet::new(false);
    let ws = names("w", 5);
    let xs = names("x", 2);
    let every = [ws.clone(), xs.clone()].concat();
    f.spawn(&every);
    f.wait_received(
        &every
            .iter()
            .map(|n| format!("hello {n}"))
            .collect::<Vec<_>>(),
    );
    let running = |n: &str| f.ps(&[n])[0]["running"] == true;

    let out = f.run("mt-stop", &["w00[0-2]", "x000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stopped = [&ws[..3], &xs[..1]].concat();
    assert_eq!(f.leftovers(&stopped), vec![]);
    for n in &every {
        assert_eq!(running(n), !stopped.contains(n), "{n}");
    }

    // A pattern that matches nothing is reported; the rest are stopped.
    let out = f.run("mt-stop", &["nomatch*", "w*"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "mt-stop: no agent matches nomatch*\n");
    assert_eq!(f.leftovers(&ws), vec![]);
    assert!(running("x001"));

    for bad in [&["--all", "x001"][..], &[][..]] {
        assert_eq!(f.run("mt-stop", bad).status.code(), Some(2), "{bad:?}");
    }
    let out = f.run("mt-stop", &["--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(f.leftovers(&every), vec![]);
    for r in f.ps(&[]) {
        assert_eq!(
            (&r["state"], &r["stopped"]),
            (&"exited".into(), &true.into())
        );
    }
    f.wait_all_gone();
}

// ---------------------------------------------------------------------------
// mt-ps with many agents in every state.

#[test]
fn ps_shows_many_agents_in_every_state() {
    let f = Fleet::new(false);
    let all = names("p", 70);
    f.spawn(&all);
    f.wait_received(&all.iter().map(|n| format!("hello {n}")).collect::<Vec<_>>());
    let out = f.run("mt-stop", &["p06*"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A supervisor killed outright: its agent is shown lost.
    let sup = f.file_json("p059", "status.json")["supervisor_pid"]
        .as_i64()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("p059 to be lost", || f.ps(&["p059"])[0]["state"] == "lost");
    // Not agents: never started, an invalid name, a plain file.
    let agents = f.state.join("agents");
    fs::create_dir_all(agents.join("inboxonly/inbox/new")).unwrap();
    fs::create_dir_all(agents.join("Bad")).unwrap();
    fs::write(agents.join("file"), "").unwrap();

    wait_for("the live agents to be idle", || {
        f.ps(&[]).iter().take(59).all(|r| r["state"] == "idle")
    });
    let rows = f.ps(&[]);
    assert_eq!(rows.len(), 70);
    for (r, n) in rows.iter().zip(&all) {
        let i: usize = n[1..].parse().unwrap();
        let (state, running) = match i {
            0..59 => ("idle", true),
            59 => ("lost", false),
            _ => ("exited", false),
        };
        assert_eq!(r["name"], n.as_str());
        assert_eq!(
            (r["state"].as_str(), r["running"].as_bool()),
            (Some(state), Some(running)),
            "{n}"
        );
        let st = f.file_json(n, "status.json");
        for k in [
            "pid",
            "supervisor_pid",
            "inputs",
            "turns",
            "stopped",
            "exit_code",
        ] {
            assert_eq!(r[k], st[k], "{n} {k}");
        }
        assert_eq!(r["channel"], "general");
    }
    let table = f.run("mt-ps", &[]);
    assert_eq!(text(&table.stdout).lines().count(), 71);

    // Named agents, one of which does not exist.
    let out = f.run("mt-ps", &["--json", "p005", "nope", "p069"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "mt-ps: no agent named nope\n");
    let named: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(named.len(), 2);
    assert_eq!(
        (&named[0]["name"], &named[1]["name"]),
        (&"p005".into(), &"p069".into())
    );
    drop(f);
}

// ---------------------------------------------------------------------------
// A supervisor that cannot make its doorbell.

#[test]
fn without_a_doorbell_the_supervisor_rescans_its_inbox() {
    let f = Fleet::new(false);
    let n = "d000".to_string();
    // A directory where the FIFO belongs cannot be replaced.
    fs::create_dir_all(f.state.join("agents/d000/inbox/wake")).unwrap();
    f.spawn(std::slice::from_ref(&n));
    f.wait_received(&["hello d000".into()]);
    let log = fs::read_to_string(f.state.join("agents/d000/stderr.log")).unwrap();
    assert!(log.contains("doorbell"), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
    for i in 0..3 {
        f.nudge(&n, &format!("late {i}"));
    }
    f.wait_received(&(0..3).map(|i| format!("late {i}")).collect::<Vec<_>>());
    let out = f.run("mt-stop", &[&n]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(f.receipts().values().all(|&c| c == 1));
    assert_eq!(f.leftovers(&[n]), vec![]);
}

/// A nudge for a stopped agent waits in its maildir (nobody holds the
/// doorbell); the resumed supervisor finds it without a ring.
#[test]
fn a_nudge_without_a_supervisor_leaves_the_message_waiting() {
    let f = Fleet::new(false);
    let n = "s000".to_string();
    f.spawn(std::slice::from_ref(&n));
    f.wait_received(&["hello s000".into()]);
    let out = f.run("mt-stop", &[&n]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = f.run("mt-nudge", &["--no-resume", &n, "wait for me"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(f.inbox(&n, "new"), 1);
    f.nudge(&n, "and me");
    f.wait_received(&["wait for me".into(), "and me".into()]);
    assert!(f.receipts().values().all(|&c| c == 1));
}

// ---------------------------------------------------------------------------
// A start that fails.

/// Whatever fails while an agent starts (here a directory where its event
/// log goes, then a descriptor limit) is one clear error from mt-spawn, the
/// agent shows failed, and a running agent is not disturbed.
#[test]
fn a_failed_start_is_one_clear_error_and_harms_no_other_agent() {
    use std::os::unix::process::CommandExt;
    let f = Fleet::new(false);
    f.spawn(&["h000".to_string()]);
    f.wait_received(&["hello h000".into()]);

    fs::create_dir_all(f.state.join("agents/h001/events.jsonl")).unwrap();
    let out = f.run("mt-spawn", &["h001", "--detach", "--prompt", "hi"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mt-spawn: ") && err.contains("events.jsonl"),
        "{err}"
    );
    let row = &f.ps(&["h001"])[0];
    assert_eq!(
        (&row["state"], &row["error"]),
        (&"failed".into(), &"spawn".into())
    );
    assert!(
        row["error_detail"]
            .as_str()
            .unwrap()
            .contains("events.jsonl")
    );

    for limit in [6u64, 9, 12] {
        let name = format!("h1{limit:02}");
        let mut cmd = f.cmd("mt-spawn");
        cmd.args([&name, "--detach", "--prompt", "hi"]);
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    limit,
                    limit,
                )
                .map_err(std::io::Error::from)
            });
        }
        let out = cmd.output().unwrap();
        let err = text(&out.stderr);
        if out.status.success() {
            continue;
        }
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("mt-spawn: "), "{name}: {err}");
        assert_eq!(f.ps(&[&name])[0]["running"], false, "{name}");
    }
    f.nudge("h000", "still here");
    f.wait_received(&["still here".into()]);
    assert_eq!(f.ps(&["h000"])[0]["running"], true);
}
