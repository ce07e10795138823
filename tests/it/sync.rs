//! mt-sync between hosts: each host a clone of one bare repository (the
//! remote) with its own state directory, Claude Code directory, settings
//! and MT_HOST, all driven through the real binaries as concurrent
//! processes. Channels: every record exactly once everywhere, each host's
//! records in their order. Tasks: one winner per claim race, through
//! mt-task or through the files. Faults: crash points, kills, an
//! unreachable or refusing remote. And a repository with no remote stays
//! the single-machine mt it was.

use crate::support::{bin, bin_dir, git, skip, text};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The task list every host uses: the default of a clone named `proj`.
const LIST: &str = "mt-proj";

/// Exit codes of mt-sync (mt-sync(1)).
const UNAVAILABLE: i32 = 69;
const TEMPFAIL: i32 = 75;
const CONFIG: i32 = 78;

/// A bare repository every host clones: the remote.
struct Net {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
}

impl Net {
    fn new() -> Net {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        fs::create_dir_all(&home).unwrap();
        let remote = root.join("remote.git");
        git(
            &root,
            &home,
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let seed = root.join("seed");
        git(&root, &home, &["init", "-q", "-b", "main", "seed"]);
        fs::write(seed.join("README"), "hello\n").unwrap();
        git(&seed, &home, &["add", "."]);
        git(&seed, &home, &["commit", "-qm", "first"]);
        git(
            &seed,
            &home,
            &["push", "-q", remote.to_str().unwrap(), "main"],
        );
        fs::remove_dir_all(&seed).unwrap();
        Net {
            _tmp: tmp,
            root,
            remote,
        }
    }

    /// A new clone of the remote, as a host named `name` (its own
    /// directory `dir`, even when two hosts share a name).
    fn host_in(&self, dir: &str, name: &str) -> Host {
        let base = self.root.join(dir);
        let home = base.join("home");
        fs::create_dir_all(&home).unwrap();
        git(
            &base,
            &home,
            &["clone", "-q", self.remote.to_str().unwrap(), "proj"],
        );
        Host {
            name: name.to_string(),
            repo: base.join("proj"),
            base,
            home,
        }
    }

    fn host(&self, name: &str) -> Host {
        self.host_in(name, name)
    }

    fn hosts(&self, n: usize) -> Vec<Host> {
        (1..=n).map(|i| self.host(&format!("h{i}"))).collect()
    }

    /// The refs under refs/mt/ of the remote, by name.
    fn remote_refs(&self) -> BTreeMap<String, String> {
        let out = git(
            &self.remote,
            &self.root.join("home"),
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/mt/",
            ],
        );
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
}

/// One host: a clone (`repo`, state directory `repo/.git/mt`) with its own
/// home, settings and Claude Code directory, and MT_HOST = `name`.
struct Host {
    name: String,
    base: PathBuf,
    repo: PathBuf,
    home: PathBuf,
}

impl Host {
    fn state(&self) -> PathBuf {
        self.repo.join(".git").join("mt")
    }

    fn claude(&self) -> PathBuf {
        self.base.join("claude")
    }

    /// A tool of this host: nothing of the caller's environment.
    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(bin(tool));
        c.env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("MT_CONFIG_HOME", self.base.join("cfg"))
            .env("CLAUDE_CONFIG_DIR", self.claude())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("MT_HOST", &self.name)
            .env("MT_FSYNC", "0")
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.cmd(tool).args(args).output().unwrap()
    }

    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let o = self.run(tool, args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{} on {}: {tool} {args:?}: {}{}",
            self.name,
            self.name,
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.repo, &self.home, args)
    }

    fn post(&self, from: &str, msg: &str) {
        self.ok("mt-post", &["--from", from, msg]);
    }

    /// One exchange that must go through; what it did.
    fn sync(&self) -> Value {
        let out = self.ok("mt-sync", &["--json"]);
        let line = out.lines().last().unwrap_or_else(|| panic!("no report"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// One exchange that must go through, tried again (three times at
    /// most) while it exits 75.
    fn sync_patiently(&self) -> Value {
        for _ in 0..3 {
            let o = self.run("mt-sync", &["--json"]);
            if o.status.code() != Some(TEMPFAIL) {
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{}: mt-sync: {}",
                    self.name,
                    text(&o.stderr)
                );
                let out = text(&o.stdout);
                let line = out.lines().last().unwrap_or_else(|| panic!("no report"));
                return serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            }
            eprintln!(
                "{}: mt-sync exit 75 ({}); again",
                self.name,
                text(&o.stderr).trim()
            );
            thread::sleep(Duration::from_millis(100));
        }
        self.sync()
    }

    /// Every record of a channel, in order, whoever read what.
    fn records(&self, chan: &str) -> Vec<Value> {
        let o = self.run("mt-read", &["--all", "--json", "-c", chan]);
        assert!(o.status.success(), "mt-read: {}", text(&o.stderr));
        o.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn general(&self) -> Vec<Value> {
        self.records("general")
    }

    fn create_task(&self, subject: &str) -> u64 {
        self.ok("mt-task", &["create", subject])
            .trim()
            .parse()
            .unwrap()
    }

    /// Every task of the team's list, from the files.
    fn tasks(&self) -> Vec<Value> {
        let o = self.run("mt-task", &["list", "--json"]);
        assert!(o.status.success(), "mt-task list: {}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn task_file(&self, id: u64) -> PathBuf {
        self.claude()
            .join("tasks")
            .join(LIST)
            .join(format!("{id}.json"))
    }

    fn task(&self, id: u64) -> Value {
        serde_json::from_slice(&fs::read(self.task_file(id)).unwrap()).unwrap()
    }

    /// `mt-sync --watch` in the background.
    fn watch(&self, every: &str) -> Child {
        self.cmd("mt-sync")
            .args(["--watch", "--every", every, "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// Stop each host's watcher between two exchanges: with the host's
/// exchange lock (sync/LOCK) held here, the watcher is asleep or waiting
/// for the lock, holding no lock file of git's, when it is killed. (A
/// watcher killed in the middle of an exchange may leave one: see
/// `sync_killed_at_random_points`.)
fn stop_watchers(hosts: &[&Host], mut watchers: Kids) {
    assert_eq!(hosts.len(), watchers.0.len());
    for (h, mut c) in hosts.iter().zip(watchers.0.drain(..)) {
        let dir = h.state().join("sync");
        fs::create_dir_all(&dir).unwrap();
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .unwrap();
        lock.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
        drop(lock);
    }
}

/// Children stopped (killed) when the test ends, however it ends.
#[derive(Default)]
struct Kids(Vec<Child>);

impl Kids {
    fn add(&mut self, c: Child) {
        self.0.push(c);
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The sum of the `imported` counts of an exchange report.
fn imported(report: &Value) -> u64 {
    report["imported"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// Plain exchanges on every host, round after round, until a round in
/// which no host imported or published anything (bounded). An exchange
/// that exits 75 ("try again") is tried again a few times: a push of a
/// killed exchange that git daemon's receive-pack still completes after
/// the kill moves a ref under the next exchange, which is refused then.
fn converge(hosts: &[&Host]) {
    for _ in 0..8 {
        let mut moved = 0;
        for h in hosts {
            let r = h.sync_patiently();
            moved += imported(&r) + r["published"].as_u64().unwrap_or(0);
            moved += r["tasks"]["published"].as_u64().unwrap_or(0);
            moved += r["tasks"]["applied"].as_u64().unwrap_or(0);
            // Task changes the remote refused are not agreed yet either.
            moved += r["tasks"]["refused"].as_u64().unwrap_or(0);
        }
        if moved == 0 {
            return;
        }
    }
    panic!("the hosts did not converge in 8 rounds of exchanges");
}

fn content(r: &Value) -> &str {
    r["content"].as_str().unwrap_or("")
}

/// The checks of every host's channel after convergence: local seq
/// gapless from 1; record ids unique; every record in `expected` (by
/// content, each made on the host its `hN-` prefix names) exactly once;
/// own records without origin, imported ones with the origin host and its
/// seq there; each origin's records in the order of their origin seq.
/// Records other than `expected` (mt-sync's own) are allowed but must be
/// consistent too.
fn check_channels(hosts: &[&Host], chan: &str, expected: &BTreeSet<String>) {
    // Per host, its own records by id: their seq there.
    let mut own_seq: HashMap<String, (String, u64)> = HashMap::new();
    let all: Vec<(&Host, Vec<Value>)> = hosts.iter().map(|h| (*h, h.records(chan))).collect();
    for (h, recs) in &all {
        for r in recs {
            if r.get("origin").is_none() {
                own_seq.insert(
                    r["id"].as_str().unwrap().to_string(),
                    (h.name.clone(), r["seq"].as_u64().unwrap()),
                );
            }
        }
    }
    for (h, recs) in &all {
        let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (1..=recs.len() as u64).collect();
        assert_eq!(seqs, want, "{}: local seq not gapless from 1", h.name);
        let mut ids = BTreeSet::new();
        for r in recs {
            let id = r["id"].as_str().unwrap();
            assert!(ids.insert(id), "{}: record {id} twice: {r}", h.name);
        }
        let mut got: BTreeMap<&str, usize> = BTreeMap::new();
        for r in recs {
            *got.entry(content(r)).or_default() += 1;
        }
        for e in expected {
            assert_eq!(
                got.get(e.as_str()).copied().unwrap_or(0),
                1,
                "{}: record {e:?} not exactly once ({} records)",
                h.name,
                recs.len()
            );
        }
        let mut last_origin_seq: BTreeMap<String, u64> = BTreeMap::new();
        for r in recs {
            let id = r["id"].as_str().unwrap();
            let c = content(r);
            let maker = expected
                .contains(c)
                .then(|| c.split('-').next().unwrap().to_string());
            match r.get("origin").and_then(Value::as_str) {
                None => {
                    assert!(
                        r.get("origin_seq").is_none(),
                        "{}: origin_seq without origin: {r}",
                        h.name
                    );
                    if let Some(m) = &maker {
                        assert_eq!(m, &h.name, "{}: {c:?} without origin", h.name);
                    }
                }
                Some(o) => {
                    assert_ne!(o, h.name, "{}: own record with origin: {r}", h.name);
                    if let Some(m) = &maker {
                        assert_eq!(m, o, "{}: {c:?} with origin {o}", h.name);
                    }
                    let os = r["origin_seq"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{}: origin without seq: {r}", h.name));
                    assert_eq!(
                        own_seq.get(id),
                        Some(&(o.to_string(), os)),
                        "{}: {r} is not the record of that seq on {o}",
                        h.name
                    );
                    let last = last_origin_seq.entry(o.to_string()).or_insert(0);
                    assert!(
                        os > *last,
                        "{}: records of {o} out of order (origin_seq {os} after {last})",
                        h.name
                    );
                    *last = os;
                }
            }
        }
    }
}

/// Writers' records `hN-wW-K`, per (host, writer), in the order of K on
/// every host.
fn check_writer_order(hosts: &[&Host], chan: &str) {
    for h in hosts {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for r in h.records(chan) {
            let c = content(&r);
            let Some((who, k)) = c.rsplit_once('-') else {
                continue;
            };
            let Ok(k) = k.parse::<u64>() else { continue };
            let prev = last.entry(who.to_string()).or_insert(0);
            assert_eq!(k, *prev + 1, "{}: {c} after {who}-{prev}", h.name);
            *prev = k;
        }
    }
}

/// Post `n` records `H-wW-K` as `writers` concurrent writer processes per
/// host, on every host at once.
fn write_concurrently(hosts: &[&Host], writers: usize, n: usize) -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    thread::scope(|s| {
        for h in hosts {
            for w in 1..=writers {
                let name = h.name.clone();
                s.spawn(move || {
                    for k in 1..=n {
                        h.post(&format!("w{w}"), &format!("{name}-w{w}-{k}"));
                    }
                });
                for k in 1..=n {
                    expected.insert(format!("{}-w{w}-{k}", h.name));
                }
            }
        }
    });
    expected
}

fn refs(hosts: &[Host]) -> Vec<&Host> {
    hosts.iter().collect()
}

#[test]
fn three_hosts_four_writers_every_record_once_in_order() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let mut kids = Kids::default();
    for h in &hs {
        kids.add(h.watch("200ms"));
    }
    let expected = write_concurrently(&hs, 4, 40);
    assert_eq!(expected.len(), 480);
    stop_watchers(&hs, kids);
    // The watchers exchanged while the writers wrote.
    assert!(
        hs.iter()
            .any(|h| h.general().iter().any(|r| r.get("origin").is_some())),
        "no watcher imported anything"
    );
    converge(&hs);
    check_channels(&hs, "general", &expected);
    check_writer_order(&hs, "general");
    // The remote holds one log per host, nothing else of the channels.
    let logs: Vec<String> = net
        .remote_refs()
        .into_keys()
        .filter(|r| r.starts_with("refs/mt/log/"))
        .collect();
    assert_eq!(logs, ["refs/mt/log/h1", "refs/mt/log/h2", "refs/mt/log/h3"]);
}

/// Host 1 creates `n` tasks; every host gets them.
fn shared_tasks(hosts: &[&Host], n: usize) -> Vec<u64> {
    let ids: Vec<u64> = (1..=n)
        .map(|i| hosts[0].create_task(&format!("shared task {i}")))
        .collect();
    converge(hosts);
    for h in hosts {
        for &id in &ids {
            assert!(h.task_file(id).is_file(), "{}: no task {id}", h.name);
        }
    }
    ids
}

/// Every host claims every task as `agent-<host>`, `procs` claim processes
/// at once per host; per task, each host's (exit code, stdout, stderr).
fn claim_race(hosts: &[&Host], ids: &[u64], procs: usize) -> BTreeMap<u64, Vec<(String, Output)>> {
    let results = std::sync::Mutex::new(BTreeMap::<u64, Vec<(String, Output)>>::new());
    thread::scope(|s| {
        for h in hosts {
            for p in 0..procs {
                let results = &results;
                s.spawn(move || {
                    for &id in ids.iter().skip(p).step_by(procs) {
                        let agent = format!("agent-{}", h.name);
                        let o = h.run("mt-task", &["claim", &id.to_string(), "--as", &agent]);
                        results
                            .lock()
                            .unwrap()
                            .entry(id)
                            .or_default()
                            .push((h.name.clone(), o));
                    }
                });
            }
        }
    });
    results.into_inner().unwrap()
}

/// Exactly one claim per task went through; the others were refused
/// naming the winner and its host. The winner of each task.
fn one_winner_each(races: &BTreeMap<u64, Vec<(String, Output)>>) -> BTreeMap<u64, String> {
    let mut winners = BTreeMap::new();
    for (id, tries) in races {
        let won: Vec<&String> = tries
            .iter()
            .filter(|(_, o)| o.status.code() == Some(0))
            .map(|(h, _)| h)
            .collect();
        assert_eq!(
            won.len(),
            1,
            "task {id}: claims that went through: {won:?}; {:#?}",
            tries
                .iter()
                .map(|(h, o)| (h, o.status.code(), text(&o.stdout), text(&o.stderr)))
                .collect::<Vec<_>>()
        );
        let w = won[0].clone();
        for (h, o) in tries {
            let (out, err) = (text(&o.stdout), text(&o.stderr));
            if h == &w {
                assert!(out.contains(&format!("claimed task {id}")), "{out}");
                continue;
            }
            assert_eq!(o.status.code(), Some(1), "{h} task {id}: {out}{err}");
            let why = format!("already claimed by agent-{w} (host {w})");
            assert!(
                err.contains(&format!("cannot claim task {id}")) && err.contains(&why),
                "{h} task {id}: {err}"
            );
        }
        winners.insert(*id, w);
    }
    winners
}

/// After the race and a round of exchanges, every host's file says the
/// winner owns the task, in progress.
fn files_show_winners(hosts: &[&Host], winners: &BTreeMap<u64, String>) {
    converge(hosts);
    for h in hosts {
        for (id, w) in winners {
            let t = h.task(*id);
            assert_eq!(
                t["owner"],
                format!("agent-{w}"),
                "{} task {id}: {t}",
                h.name
            );
            assert_eq!(t["status"], "in_progress", "{} task {id}: {t}", h.name);
            let shown: Value =
                serde_json::from_str(&h.ok("mt-task", &["show", &id.to_string(), "--json"]))
                    .unwrap();
            assert_eq!(shown["owner"], format!("agent-{w}"), "{}: {shown}", h.name);
        }
    }
}

#[test]
fn three_hosts_claim_the_same_twenty_tasks() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let ids = shared_tasks(&hs, 20);
    let races = claim_race(&hs, &ids, 4);
    let winners = one_winner_each(&races);
    files_show_winners(&hs, &winners);
}

#[test]
fn claims_race_while_watchers_exchange() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let ids = shared_tasks(&hs, 10);
    let mut watchers = Kids::default();
    for h in &hs {
        watchers.add(h.watch("50ms"));
    }
    let races = claim_race(&hs, &ids, 3);
    stop_watchers(&hs, watchers);
    let winners = one_winner_each(&races);
    files_show_winners(&hs, &winners);
}

/// Claude Code's own claim (the file) on one host against `mt-task claim`
/// on the others, with watchers exchanging: one owner everywhere; a
/// refused mt-task claim names the owner and its host.
#[test]
fn file_claims_race_mt_task_claims() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let ids = shared_tasks(&hs, 6);
    let mut watchers = Kids::default();
    for h in &hs {
        watchers.add(h.watch("50ms"));
    }
    let races = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        s.spawn(|| {
            for &id in &ids {
                write_task_file(hs[0], id, |t| {
                    t.insert("owner".into(), "fa-h1".into());
                    t.insert("status".into(), "in_progress".into());
                });
            }
        });
        for h in &hs[1..] {
            let races = &races;
            let ids = &ids;
            s.spawn(move || {
                for &id in ids {
                    let agent = format!("agent-{}", h.name);
                    let o = h.run("mt-task", &["claim", &id.to_string(), "--as", &agent]);
                    races.lock().unwrap().push((id, h.name.clone(), o));
                }
            });
        }
    });
    stop_watchers(&hs, watchers);
    converge(&hs);
    let races = races.into_inner().unwrap();
    for &id in &ids {
        let owner = hs[0].task(id)["owner"].as_str().unwrap().to_string();
        for h in &hs {
            let t = h.task(id);
            assert_eq!(t["owner"], owner.as_str(), "{} task {id}: {t}", h.name);
            assert_eq!(t["status"], "in_progress", "{} task {id}: {t}", h.name);
        }
        let won: Vec<&String> = races
            .iter()
            .filter(|(i, _, o)| *i == id && o.status.code() == Some(0))
            .map(|(_, h, _)| h)
            .collect();
        if owner == "fa-h1" {
            assert!(won.is_empty(), "task {id}: fa-h1 owns it, yet {won:?} won");
        } else {
            assert_eq!(won.len(), 1, "task {id}: owner {owner}, won {won:?}");
            assert_eq!(format!("agent-{}", won[0]), owner, "task {id}");
            // h1's file claim lost: said on h1, to fa-h1.
            let said = hs[0].general().into_iter().any(|r| {
                r["from"] == "mt-sync"
                    && content(&r).contains("@fa-h1")
                    && content(&r).contains(&format!("task {id} "))
            });
            assert!(said, "h1: no mt-sync record for @fa-h1 on task {id}");
        }
        for (i, h, o) in &races {
            if *i != id || o.status.code() == Some(0) {
                continue;
            }
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{h} task {id}: {err}");
            let host = owner
                .strip_prefix("fa-")
                .or(owner.strip_prefix("agent-"))
                .unwrap();
            assert!(
                err.contains(&format!("already claimed by {owner} (host {host})")),
                "{h} task {id}: {err}"
            );
        }
    }
    check_channels(&hs, "general", &BTreeSet::new());
}

/// Concurrent edits of the same task on two hosts merge field by field
/// (the remote's wins a field both changed); a deletion wins over an edit;
/// a completion reaches every host.
#[test]
fn task_edits_merge_and_deletion_wins() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let ids = shared_tasks(&hs, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    // a: different fields on h1 and h2.
    hs[0].ok(
        "mt-task",
        &["update", &a.to_string(), "--subject", "subject by h1"],
    );
    hs[1].ok(
        "mt-task",
        &["update", &a.to_string(), "--description", "described by h2"],
    );
    // b: edited on h1, deleted on h2.
    hs[0].ok(
        "mt-task",
        &["update", &b.to_string(), "--description", "edited by h1"],
    );
    hs[1].ok("mt-task", &["delete", &b.to_string()]);
    // c: completed on h3.
    hs[2].ok("mt-task", &["done", &c.to_string()]);
    thread::scope(|s| {
        for h in &hs {
            s.spawn(move || h.sync());
        }
    });
    converge(&hs);
    for h in &hs {
        let t = h.task(a);
        assert_eq!(t["subject"], "subject by h1", "{}: {t}", h.name);
        assert_eq!(t["description"], "described by h2", "{}: {t}", h.name);
        assert!(!h.task_file(b).exists(), "{}: task {b} still there", h.name);
        assert_eq!(h.task(c)["status"], "completed", "{}", h.name);
        assert_eq!(h.tasks().len(), 2, "{}", h.name);
    }
}

/// Write a task file as Claude Code does: a temporary file renamed over it.
fn write_task_file(h: &Host, id: u64, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let mut t = h.task(id);
    f(t.as_object_mut().unwrap());
    let path = h.task_file(id);
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&t).unwrap()).unwrap();
    fs::rename(&tmp, &path).unwrap();
}

#[test]
fn three_hosts_claim_through_the_files() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let ids = shared_tasks(&hs, 5);
    for h in &hs {
        for &id in &ids {
            write_task_file(h, id, |t| {
                t.insert("owner".into(), format!("fa-{}", h.name).into());
                t.insert("status".into(), "in_progress".into());
            });
        }
    }
    thread::scope(|s| {
        for h in &hs {
            s.spawn(move || {
                for _ in 0..3 {
                    h.sync();
                }
            });
        }
    });
    converge(&hs);
    let mut losers: BTreeSet<String> = BTreeSet::new();
    for &id in &ids {
        let owners: BTreeSet<String> = hs
            .iter()
            .map(|h| h.task(id)["owner"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(owners.len(), 1, "task {id}: owners {owners:?}");
        let owner = owners.into_iter().next().unwrap();
        assert!(owner.starts_with("fa-h"), "task {id}: owner {owner:?}");
        for h in &hs {
            assert_eq!(h.task(id)["status"], "in_progress", "{} task {id}", h.name);
            let me = format!("fa-{}", h.name);
            if me == owner {
                continue;
            }
            losers.insert(me.clone());
            // The loser's host says so on its channel, about this task.
            let said = h.general().into_iter().any(|r| {
                r["from"] == "mt-sync"
                    && r.get("origin").is_none()
                    && content(&r).contains(&format!("@{me}"))
                    && content(&r).contains(&format!("task {id} "))
            });
            assert!(said, "{}: no mt-sync record for @{me} on task {id}", h.name);
        }
    }
    assert!(!losers.is_empty());
    // And those records reach every host once, as any other.
    check_channels(&hs, "general", &BTreeSet::new());
}

#[test]
fn task_id_collision_moves_the_later_task() {
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    assert_eq!(hs[0].create_task("made on h1"), 1);
    assert_eq!(hs[1].create_task("made on h2"), 1);
    // h1 publishes first: it keeps the id.
    hs[0].sync();
    let r = hs[1].sync();
    assert_eq!(
        r["tasks"]["renumbered"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    converge(&hs);
    let mut where_: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for h in &hs {
        let tasks = h.tasks();
        let subjects: Vec<&str> = tasks.iter().filter_map(|t| t["subject"].as_str()).collect();
        for s in ["made on h1", "made on h2"] {
            assert_eq!(
                subjects.iter().filter(|x| **x == s).count(),
                1,
                "{}: {s:?} in {tasks:?}",
                h.name
            );
        }
        for t in &tasks {
            let id: u64 = match &t["id"] {
                Value::String(s) => s.parse().unwrap(),
                v => v.as_u64().unwrap(),
            };
            where_
                .entry(t["subject"].as_str().unwrap().to_string())
                .or_default()
                .insert(id);
        }
    }
    // The same id on every host, the two different.
    assert_eq!(where_["made on h1"], BTreeSet::from([1]), "{where_:?}");
    let moved = &where_["made on h2"];
    assert_eq!(moved.len(), 1, "{where_:?}");
    let to = *moved.iter().next().unwrap();
    assert_ne!(to, 1);
    // h2 said its task moved, on its channel (and so on every channel).
    for h in &hs {
        let said: Vec<Value> = h
            .general()
            .into_iter()
            .filter(|r| {
                r["from"] == "mt-sync"
                    && content(r).contains("task 1 ")
                    && content(r).contains(&format!("now task {to}"))
            })
            .collect();
        assert_eq!(said.len(), 1, "{}: {said:?}", h.name);
        let from_h2 = said[0]
            .get("origin")
            .and_then(Value::as_str)
            .unwrap_or("h2");
        assert_eq!(from_h2, "h2", "{}: {}", h.name, said[0]);
    }
}

/// For each crash point: every host posts (on two channels), the others
/// publish, host 1 creates a task and claims the previous one through its
/// file, and its exchange is aborted at the point; then plain exchanges:
/// every record and task exactly once everywhere, the claim everywhere.
fn crash_points(hs: &[&Host]) {
    let mut expected = BTreeSet::new();
    let mut expected_dev = BTreeSet::new();
    let mut subjects = Vec::new();
    let mut claimed: Vec<(u64, String)> = Vec::new();
    let mut last: Option<u64> = None;
    for (i, point) in ["fetched", "imported", "pushing", "pushed"]
        .into_iter()
        .enumerate()
    {
        // Something to import for the crashing host, and something of its own.
        for h in hs {
            for k in 1..=3 {
                let c = format!("{}-{point}-{k}", h.name);
                h.post("w1", &c);
                expected.insert(c);
            }
            let c = format!("{}-{point}-dev", h.name);
            h.ok("mt-post", &["-c", "dev", "--from", "w2", &c]);
            expected_dev.insert(c);
        }
        hs[1].sync();
        hs[2].sync();
        let subject = format!("task made before {point}");
        let id = hs[0].create_task(&subject);
        subjects.push(subject);
        if let Some(prev) = last {
            let owner = format!("crash-{i}");
            write_task_file(hs[0], prev, |t| {
                t.insert("owner".into(), owner.clone().into());
                t.insert("status".into(), "in_progress".into());
            });
            claimed.push((prev, owner));
        }
        last = Some(id);
        let o = hs[0]
            .cmd("mt-sync")
            .env("MT_SYNC_CRASH", point)
            .output()
            .unwrap();
        // Stopped right there (abort), not by some error on the way.
        assert_eq!(
            o.status.signal(),
            Some(6),
            "{point}: the exchange was not stopped there: {:?} {}",
            o.status,
            text(&o.stderr)
        );
        // Another host goes on meanwhile, then all of them.
        if i % 2 == 0 {
            hs[1].sync();
        }
        converge(hs);
        check_channels(hs, "general", &expected);
        check_channels(hs, "dev", &expected_dev);
        for h in hs {
            let tasks = h.tasks();
            for s in &subjects {
                let n = tasks.iter().filter(|t| t["subject"] == *s).count();
                assert_eq!(n, 1, "{} after {point}: {s:?} in {tasks:?}", h.name);
            }
            assert_eq!(tasks.len(), subjects.len(), "{}: {tasks:?}", h.name);
            for (id, owner) in &claimed {
                let t = h.task(*id);
                assert_eq!(t["owner"], owner.as_str(), "{} after {point}: {t}", h.name);
                assert_eq!(t["status"], "in_progress", "{} after {point}: {t}", h.name);
            }
        }
    }
}

#[test]
fn crash_points_lose_and_double_nothing() {
    let net = Net::new();
    let hosts = net.hosts(3);
    crash_points(&refs(&hosts));
}

#[test]
fn crash_points_over_git_daemon() {
    let net = Net::new();
    let Some(daemon) = Daemon::start(&net) else {
        return;
    };
    let hosts = net.hosts(3);
    for h in &hosts {
        h.git(&["remote", "set-url", "origin", &daemon.url()]);
    }
    crash_points(&refs(&hosts));
}

/// A small PRNG (xorshift64*), seeded from MT_TEST_SEED or the clock.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("MT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("MT_TEST_SEED={seed}");
        Rng(seed.max(1))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The `*.lock` files under `dir` (what a killed git writer leaves).
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    crate::support::walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "lock") && p.is_file())
        .collect()
}

/// Post, create tasks, and kill exchanges at random times (SIGKILL after
/// 0-30 ms), 15 rounds; then plain exchanges: every record and every task
/// exactly once everywhere. With `clear_locks`, the ref lock files a
/// killed exchange left in the repositories are removed after each kill,
/// as a user would after git's "unable to lock" message.
fn killed_at_random_points(clear_locks: bool) {
    let mut rng = Rng::seeded();
    let net = Net::new();
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    let mut expected = BTreeSet::new();
    let mut subjects = Vec::new();
    for i in 0..15 {
        for h in &hs {
            for k in 1..=2 {
                let c = format!("{}-i{i}-{k}", h.name);
                h.post("w1", &c);
                expected.insert(c);
            }
        }
        let h = hs[rng.below(3) as usize];
        if rng.below(3) == 0 {
            let s = format!("task {i} of {}", h.name);
            h.create_task(&s);
            subjects.push(s);
        }
        let mut child = h
            .cmd("mt-sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(rng.below(31)));
        let _ = child.kill();
        let _ = child.wait();
        if clear_locks {
            for p in lock_files(&h.repo.join(".git"))
                .into_iter()
                .chain(lock_files(&net.remote))
            {
                eprintln!("round {i}: removing {}", p.display());
                fs::remove_file(&p).unwrap();
            }
            // And Claude Code's lock directories of the task list (stale
            // only after 10 s, longer than mt-task waits).
            let list = h.claude().join("tasks").join(LIST);
            for e in fs::read_dir(&list).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() && p.extension().is_some_and(|x| x == "lock") {
                    eprintln!("round {i}: removing {}", p.display());
                    fs::remove_dir_all(&p).unwrap();
                }
            }
        }
        // Now and then an exchange elsewhere goes through.
        if rng.below(2) == 0 {
            let other = hs[rng.below(3) as usize];
            if other.name != h.name {
                other.sync();
            }
        }
    }
    converge(&hs);
    check_channels(&hs, "general", &expected);
    for h in &hs {
        let tasks = h.tasks();
        for s in &subjects {
            let n = tasks.iter().filter(|t| t["subject"] == *s).count();
            assert_eq!(n, 1, "{}: {s:?} in {tasks:#?}", h.name);
        }
        assert_eq!(tasks.len(), subjects.len(), "{}: {tasks:#?}", h.name);
    }
}

#[test]
fn sync_killed_at_random_points() {
    killed_at_random_points(false);
}

/// What an exchange killed in the middle of its fetch leaves: the lock
/// file of a ref under refs/mt/ (an hour old). The next exchange, which
/// holds sync/LOCK, should go through.
#[test]
fn stale_ref_lock_of_a_killed_exchange_does_not_stop_the_next() {
    let net = Net::new();
    let hosts = net.hosts(2);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    h1.post("w1", "h1-1");
    h1.sync();
    h2.sync();
    h1.post("w1", "h1-2");
    h1.sync();
    let lock = h2.repo.join(".git/refs/mt/log/h1.lock");
    let f = fs::File::create(&lock).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let o = h2.run("mt-sync", &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    check_channels(
        &[h1, h2],
        "general",
        &BTreeSet::from(["h1-1".to_string(), "h1-2".to_string()]),
    );
}

/// Over the network, an exchange killed while it staged its push leaves
/// the lock of refs/mt-push/0: the next exchange should go through (and
/// not end `mt-sync --watch`, which stops on anything but exit 75).
#[test]
fn stale_outbox_lock_of_a_killed_exchange_does_not_stop_the_next() {
    let net = Net::new();
    let Some(daemon) = Daemon::start(&net) else {
        return;
    };
    let h1 = net.host("h1");
    h1.git(&["remote", "set-url", "origin", &daemon.url()]);
    h1.post("w1", "h1-1");
    h1.sync();
    h1.post("w1", "h1-2");
    let dir = h1.repo.join(".git/refs/mt-push");
    fs::create_dir_all(&dir).unwrap();
    let f = fs::File::create(dir.join("0.lock")).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let o = h1.run("mt-sync", &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let h2 = net.host("h2");
    h2.sync();
    check_channels(
        &[&h1, &h2],
        "general",
        &BTreeSet::from(["h1-1".to_string(), "h1-2".to_string()]),
    );
}

#[test]
fn sync_killed_at_random_points_stale_locks_removed() {
    killed_at_random_points(true);
}

/// A port nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git daemon` serving the net's root, stopped on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    /// None (skipping, unless MT_CI forbids it) where git has no daemon.
    fn start(net: &Net) -> Option<Daemon> {
        let exec = Command::new("git").arg("--exec-path").output().unwrap();
        // The daemon itself, not `git daemon` (which would run it as a
        // child of its own, left behind when `git` is killed), in a
        // process group of its own with the children it forks.
        let program = Path::new(text(&exec.stdout).trim()).join("git-daemon");
        if !program.is_file() {
            skip("git daemon is not installed");
            return None;
        }
        let port = free_port();
        let child = Command::new(&program)
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                "--reuseaddr",
                &format!("--port={port}"),
                &format!("--base-path={}", net.root.display()),
                net.root.to_str().unwrap(),
            ])
            .env("HOME", net.root.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < crate::support::PATIENCE,
                "git daemon did not listen on {port}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(d)
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/remote.git", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon and the upload-pack/receive-pack it forked.
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[test]
fn unreachable_remote_changes_nothing_and_loses_nothing() {
    let net = Net::new();
    let hosts = net.hosts(2);
    let hs = refs(&hosts);
    let (h1, h2) = (hs[0], hs[1]);
    h1.post("w1", "h1-before-1");
    h1.sync();
    let mut expected = BTreeSet::from(["h1-before-1".to_string()]);
    let good = net.remote.to_str().unwrap().to_string();
    let dead_port = free_port();
    for (n, url) in [
        net.root.join("nowhere.git").to_str().unwrap().to_string(),
        format!("git://127.0.0.1:{dead_port}/remote.git"),
    ]
    .iter()
    .enumerate()
    {
        for k in 1..=3 {
            let c = format!("h1-away{n}-{k}");
            h1.post("w1", &c);
            expected.insert(c);
        }
        h1.create_task(&format!("task while away {n}"));
        let before_records = h1.general();
        let sync_dir = h1.state().join("sync");
        let before_state: Vec<(PathBuf, Vec<u8>)> = state_files(&sync_dir);
        let remote_before = net.remote_refs();
        h1.git(&["remote", "set-url", "origin", url]);
        let o = h1.run("mt-sync", &["--json"]);
        assert_eq!(
            o.status.code(),
            Some(TEMPFAIL),
            "{url}: {}",
            text(&o.stderr)
        );
        let err = text(&o.stderr);
        assert!(
            err.contains("origin") && err.contains(url.as_str()),
            "{url}: {err}"
        );
        assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
        assert_eq!(h1.general(), before_records, "{url}");
        assert_eq!(state_files(&sync_dir), before_state, "{url}");
        assert_eq!(net.remote_refs(), remote_before, "{url}");
        h1.git(&["remote", "set-url", "origin", &good]);
        let r = h1.sync();
        assert_eq!(r["published"], 3, "{r}");
        assert_eq!(r["tasks"]["published"], 1, "{r}");
    }
    converge(&hs);
    check_channels(&hs, "general", &expected);
    assert_eq!(h2.tasks().len(), 2);
}

/// The files of a directory (not LOCK), with their bytes.
fn state_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = crate::support::walk(dir)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with("LOCK"))
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn refusing_remote_loses_nothing() {
    let net = Net::new();
    let Some(daemon) = Daemon::start(&net) else {
        return;
    };
    let hosts = net.hosts(2);
    let hs = refs(&hosts);
    for h in &hs {
        h.git(&["remote", "set-url", "origin", &daemon.url()]);
    }
    let (h1, h2) = (hs[0], hs[1]);
    h1.post("w1", "h1-first");
    h1.sync();
    let mut expected = BTreeSet::from(["h1-first".to_string()]);
    // The remote refuses every push now (as root, permissions would not).
    let hook = net.remote.join("hooks").join("pre-receive");
    fs::write(&hook, "#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let remote_before = net.remote_refs();
    for k in 1..=3 {
        let c = format!("h1-refused-{k}");
        h1.post("w1", &c);
        expected.insert(c);
    }
    h1.create_task("task while refused");
    for _ in 0..2 {
        let o = h1.run("mt-sync", &["--json"]);
        assert_eq!(o.status.code(), Some(TEMPFAIL), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("refused"), "{}", text(&o.stderr));
    }
    assert_eq!(net.remote_refs(), remote_before);
    fs::remove_file(&hook).unwrap();
    let r = h1.sync();
    assert_eq!(r["published"], 3, "{r}");
    assert_eq!(r["tasks"]["published"], 1, "{r}");
    converge(&hs);
    check_channels(&hs, "general", &expected);
    let tasks = h2.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["subject"], "task while refused");
}

#[test]
fn over_git_daemon() {
    let net = Net::new();
    let Some(daemon) = Daemon::start(&net) else {
        return;
    };
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    for h in &hs {
        h.git(&["remote", "set-url", "origin", &daemon.url()]);
    }
    let mut kids = Kids::default();
    for h in &hs {
        kids.add(h.watch("200ms"));
    }
    let expected = write_concurrently(&hs, 2, 10);
    stop_watchers(&hs, kids);
    converge(&hs);
    check_channels(&hs, "general", &expected);
    check_writer_order(&hs, "general");

    let ids = shared_tasks(&hs, 6);
    let races = claim_race(&hs, &ids, 2);
    let winners = one_winner_each(&races);
    files_show_winners(&hs, &winners);
    // Nothing went to the remote but under refs/mt/ (and the seed's main).
    let all = git(
        &net.remote,
        &net.root.join("home"),
        &["for-each-ref", "--format=%(refname)"],
    );
    for r in all.lines() {
        assert!(r.starts_with("refs/mt/") || r == "refs/heads/main", "{r}");
    }
}

/// The remote is `origin`, else the sync-remote setting (MT_SYNC_REMOTE),
/// else --remote; a name with no remote exits 69 naming it.
#[test]
fn remote_chosen_by_setting_and_flag() {
    let net = Net::new();
    let hosts = net.hosts(2);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let good = net.remote.to_str().unwrap().to_string();
    h1.git(&[
        "remote",
        "set-url",
        "origin",
        net.root.join("nowhere.git").to_str().unwrap(),
    ]);
    h1.git(&["remote", "add", "team", &good]);
    h1.post("w1", "h1-1");
    let o = h1.run("mt-sync", &[]);
    assert_eq!(o.status.code(), Some(TEMPFAIL), "{}", text(&o.stderr));
    let o = h1
        .cmd("mt-sync")
        .env("MT_SYNC_REMOTE", "team")
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    h1.post("w1", "h1-2");
    let r: Value =
        serde_json::from_str(&h1.ok("mt-sync", &["--json", "--remote", "team"])).unwrap();
    assert_eq!(r["published"], 1, "{r}");
    let o = h1.run("mt-sync", &["--remote", "nope"]);
    assert_eq!(o.status.code(), Some(UNAVAILABLE), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nope"), "{}", text(&o.stderr));
    let r = h2.sync();
    assert_eq!(r["imported"]["h1"], 2, "{r}");
    check_channels(
        &[h1, h2],
        "general",
        &BTreeSet::from(["h1-1".to_string(), "h1-2".to_string()]),
    );
}

/// A repository with no remote, as a host would have it.
fn lone_host(net: &Net) -> Host {
    let base = net.root.join("lone");
    let home = base.join("home");
    fs::create_dir_all(&home).unwrap();
    let repo = base.join("proj");
    git(&base, &home, &["init", "-q", "-b", "main", "proj"]);
    fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &home, &["add", "."]);
    git(&repo, &home, &["commit", "-qm", "first"]);
    Host {
        name: "lone".into(),
        base,
        repo,
        home,
    }
}

#[test]
fn single_machine_unchanged() {
    let net = Net::new();
    let h = lone_host(&net);
    h.post("w1", "one");
    h.post("w2", "two");
    let recs = h.general();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert!(
            r.get("origin").is_none() && r.get("origin_seq").is_none(),
            "{r}"
        );
    }
    let t = h.create_task("alone");
    let out = h.ok("mt-task", &["claim", &t.to_string(), "--as", "ann"]);
    assert!(out.contains(&format!("claimed task {t}")), "{out}");
    let o = h.run("mt-task", &["claim", &t.to_string(), "--as", "bob"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("already claimed by ann"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(h.task(t)["owner"], "ann");
    assert!(
        !h.state().join("sync").exists(),
        "a sync/ directory appeared"
    );
    assert_eq!(h.git(&["for-each-ref", "refs/mt/"]), "");
}

#[test]
fn sync_without_a_remote_exits_69_and_leaves_no_sync_state() {
    let net = Net::new();
    let h = lone_host(&net);
    h.post("w1", "one");
    let t1 = h.create_task("first");
    let t2 = h.create_task("second");
    let o = h.run("mt-sync", &[]);
    assert_eq!(o.status.code(), Some(UNAVAILABLE), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("no remote") && err.contains("origin"), "{err}");
    assert_eq!(h.git(&["for-each-ref", "refs/mt/"]), "");
    // Claims stay local: nothing says this repository syncs.
    assert!(
        !h.state().join("sync").join("host.json").exists(),
        "mt-sync with no remote left sync/host.json: claims now go through a remote that does not exist"
    );
    h.ok("mt-task", &["claim", &t1.to_string(), "--as", "ann"]);
    let o = h.run("mt-task", &["claim", &t2.to_string(), "--as", "bob"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let recs = h.general();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].get("origin").is_none());
}

/// The first exchange under a name claims it, whatever it published (a
/// task here, no record): a second machine with that name is refused.
#[test]
fn host_name_claimed_by_the_first_exchange() {
    let net = Net::new();
    let a = net.host_in("a", "same");
    let b = net.host_in("b", "same");
    a.create_task("task of a");
    let r = a.sync();
    assert_eq!(r["tasks"]["published"], 1, "{r}");
    b.post("w1", "from b");
    let o = b.run("mt-sync", &["--json"]);
    assert_eq!(o.status.code(), Some(CONFIG), "b: {}", text(&o.stderr));
    a.post("w1", "from a");
    let r = a.sync();
    assert_eq!(r["published"], 1, "{r}");
}

#[test]
fn host_name_conflict() {
    let net = Net::new();
    let a = net.host_in("a", "same");
    let b = net.host_in("b", "same");
    a.post("w1", "from a");
    let r = a.sync();
    assert_eq!(r["published"], 1, "{r}");
    let remote_before = net.remote_refs();
    b.post("w1", "from b");
    b.create_task("task of b");
    let o = b.run("mt-sync", &["--json"]);
    assert_eq!(o.status.code(), Some(CONFIG), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("same") && err.contains("already used"),
        "{err}"
    );
    assert_eq!(net.remote_refs(), remote_before, "b published something");
    // Again: still refused, still nothing.
    let o = b.run("mt-sync", &[]);
    assert_eq!(o.status.code(), Some(CONFIG));
    assert_eq!(net.remote_refs(), remote_before);
    // And a third host sees only a's record.
    let c = net.host("h3");
    c.sync();
    let got: Vec<String> = c.general().iter().map(|r| content(r).to_string()).collect();
    assert_eq!(got, ["from a"]);
}

/// A host cut off from the network for a while (its tools run in a
/// network namespace of their own, where the daemon's address leads
/// nowhere) while the others go on: its exchanges exit 75, its claims are
/// refused rather than made blind, its posts wait; back online, one
/// exchange each brings every record everywhere once and the tasks agree.
#[test]
fn a_host_offline_for_a_while_catches_up() {
    let net = Net::new();
    let Some(daemon) = Daemon::start(&net) else {
        return;
    };
    if Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        skip("no network namespaces here (unshare -rn)");
        return;
    }
    let hosts = net.hosts(3);
    let hs = refs(&hosts);
    for h in &hs {
        h.git(&["remote", "set-url", "origin", &daemon.url()]);
    }
    let id = hs[0].create_task("ship it");
    converge(&hs);
    let offline = |h: &Host, tool: &str, args: &[&str]| {
        let inner = h.cmd(tool);
        let mut c = Command::new("unshare");
        c.arg("-rn")
            .arg(inner.get_program())
            .args(args)
            .current_dir(&h.repo)
            .env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.output().unwrap()
    };
    let mut expected = BTreeSet::new();
    for k in 1..=10 {
        for h in &hs {
            let msg = format!("{}-w1-{k}", h.name);
            h.post("w1", &msg);
            expected.insert(msg);
        }
        let o = offline(hs[2], "mt-sync", &["--json"]);
        assert_eq!(o.status.code(), Some(TEMPFAIL), "{}", text(&o.stderr));
        hs[0].sync_patiently();
        hs[1].sync_patiently();
    }
    let claim = offline(
        hs[2],
        "mt-task",
        &["claim", &id.to_string(), "--as", "agent-h3"],
    );
    assert_eq!(
        claim.status.code(),
        Some(TEMPFAIL),
        "{}",
        text(&claim.stderr)
    );
    hs[1].ok("mt-task", &["claim", &id.to_string(), "--as", "agent-h2"]);
    assert_ne!(
        hs[2].task(id)["owner"],
        "agent-h3",
        "an offline claim was made"
    );
    converge(&hs);
    check_channels(&hs, "general", &expected);
    for h in &hs {
        assert_eq!(h.task(id)["owner"], "agent-h2", "on {}", h.name);
    }
}
