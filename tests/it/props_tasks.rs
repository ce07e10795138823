//! Property tests for Claude Code task lists: whatever files are in a list
//! directory, listing and creating never panic, ids follow the
//! high-water-mark rule, and a claim changes only owner and status.

use crate::support::{cases, json_ish_bytes, json_object};
use mt::exit::{DATAERR, code_of};
use mt::tasks::{Claim, NewTask, Status, TaskList};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn list(root: &Path) -> TaskList {
    TaskList::new(&root.join("claude"), "demo")
        .unwrap()
        .with_durable(false)
        .with_wait(std::time::Duration::from_millis(200))
}

/// What can sit in a list directory.
#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Link,
    Fifo,
}

fn entry_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..12).prop_map(|n| format!("{n}.json")),
        prop::sample::select(vec![
            "0.json",
            "01.json",
            "-1.json",
            "+2.json",
            "1.5.json",
            "x.json",
            ".json",
            "18446744073709551616.json",
            "99999999999999999999.json",
            ".highwatermark",
            ".lock",
            "3.json.lock",
            ".lock.lock",
            "3.json.tmp",
            "README",
        ])
        .prop_map(str::to_string),
        "[a-z0-9.]{1,10}",
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => json_ish_bytes().prop_map(Kind::File),
        2 => json_object().prop_map(|o| Kind::File(Value::Object(o).to_string().into_bytes())),
        1 => (0u64..30).prop_map(|n| Kind::File(format!("{n}\n").into_bytes())),
        1 => Just(Kind::Dir),
        1 => Just(Kind::Link),
        1 => Just(Kind::Fifo),
    ]
}

/// The id a file name stands for, the way Claude Code names task files.
fn canonical_id(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    let n: u64 = stem.parse().ok()?;
    (n > 0 && n.to_string() == stem).then_some(n)
}

fn plant(root: &Path, entries: &[(String, Kind)]) -> Vec<u8> {
    let dir = root.join("claude/tasks/demo");
    fs::create_dir_all(&dir).unwrap();
    let outside = root.join("outside");
    let secret = b"not a task list's file\n".to_vec();
    fs::write(&outside, &secret).unwrap();
    for (name, k) in entries {
        let p = dir.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match k {
            Kind::File(b) => fs::write(&p, b).unwrap(),
            Kind::Dir => fs::create_dir(&p).unwrap(),
            Kind::Link => std::os::unix::fs::symlink(&outside, &p).unwrap(),
            Kind::Fifo => {
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
            }
        }
    }
    secret
}

proptest! {
    #![proptest_config(crate::support::config(cases(64)))]

    /// Any mix of files, directories and symlinks in a list directory:
    /// listing never fails, shows exactly the task files that parse as
    /// objects and skips the other task files, and a create takes the id
    /// after both the largest task file and the high-water mark.
    #[test]
    fn any_list_directory_lists_and_creates_by_the_high_water_mark(
        entries in prop::collection::vec((entry_name(), kind()), 0..12),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let secret = plant(root, &entries);
        let l = list(root);
        let dir = l.dir().to_path_buf();

        let listing = l.list().unwrap();
        let mut want_ok = BTreeSet::new();
        let mut want_skipped = BTreeSet::new();
        let mut largest = 0;
        for e in fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let Some(id) = canonical_id(&name) else { continue };
            largest = largest.max(id);
            let p = dir.join(&name);
            let m = fs::symlink_metadata(&p).unwrap();
            let parses = m.is_file()
                && matches!(serde_json::from_slice::<Value>(&fs::read(&p).unwrap()), Ok(Value::Object(_)));
            if parses { want_ok.insert(id); } else { want_skipped.insert(id); }
        }
        let got_ok: BTreeSet<u64> = listing.tasks.iter().map(|t| t.id).collect();
        let got_skipped: BTreeSet<u64> = listing.skipped.iter()
            .map(|s| canonical_id(&s.path.file_name().unwrap().to_string_lossy()).unwrap())
            .collect();
        prop_assert_eq!(got_ok, want_ok);
        prop_assert_eq!(got_skipped, want_skipped);
        // Field access on whatever the files hold never panics.
        for t in &listing.tasks {
            let _ = (t.subject(), t.owner(), t.status(), t.blocks(), t.blocked_by(), t.to_json());
            let _ = listing.is_available(t);
        }

        let hwm_path = dir.join(".highwatermark");
        let hwm = match fs::symlink_metadata(&hwm_path) {
            Err(_) => Some(0),
            Ok(m) if m.is_file() => fs::read_to_string(&hwm_path).ok()
                .and_then(|s| s.trim().parse::<u64>().ok()),
            Ok(_) => None,
        };
        match (l.create(&NewTask::new("new")), hwm) {
            (Ok(t), Some(h)) => {
                prop_assert_eq!(t.id, largest.max(h) + 1);
                prop_assert!(fs::symlink_metadata(l.path(t.id)).unwrap().is_file());
                prop_assert_eq!(l.high_water_mark().unwrap(), t.id);
            }
            (Ok(t), None) => prop_assert!(false, "created {} past an unreadable high-water mark", t.id),
            (Err(e), None) => prop_assert!(code_of(&e) != 0, "{:#}", e),
            (Err(e), Some(_)) => {
                // Only a task list lock in the way may stop it.
                let msg = format!("{e:#}");
                prop_assert!(msg.contains("lock"), "{}", msg);
            }
        }
        prop_assert_eq!(fs::read(root.join("outside")).unwrap(), secret, "a symlink redirected a write");
    }

    /// Creates and deletes in any order: ids only grow and are never
    /// reused, the high-water mark is the largest id given, every file
    /// left parses.
    #[test]
    fn ids_are_never_reused(ops in prop::collection::vec(prop_oneof![
        3 => Just(None),
        2 => (0usize..20).prop_map(Some),
    ], 1..25)) {
        let tmp = tempfile::tempdir().unwrap();
        let l = list(tmp.path());
        let mut live: Vec<u64> = Vec::new();
        let mut given = 0u64;
        for op in ops {
            match op {
                None => {
                    let t = l.create(&NewTask::new("t")).unwrap();
                    prop_assert!(t.id > given);
                    given = t.id;
                    live.push(t.id);
                }
                Some(i) if !live.is_empty() => {
                    let id = live.remove(i % live.len());
                    l.delete(id).unwrap();
                }
                Some(_) => {}
            }
        }
        prop_assert_eq!(l.high_water_mark().unwrap(), given);
        let listing = l.list().unwrap();
        prop_assert!(listing.skipped.is_empty());
        prop_assert_eq!(listing.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), live);
    }

    /// A claim of any task object either wins, setting exactly owner and
    /// status and keeping every other field in place, or changes nothing.
    #[test]
    fn a_claim_changes_only_owner_and_status(doc in json_object(), blocked in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let l = list(tmp.path());
        fs::create_dir_all(l.dir()).unwrap();
        let mut doc = doc;
        if !blocked { doc.remove("blockedBy"); }
        let text = serde_json::to_vec_pretty(&Value::Object(doc.clone())).unwrap();
        fs::write(l.path(1), &text).unwrap();
        match l.claim(1, "york").unwrap() {
            Claim::Won(t) => {
                prop_assert_eq!(t.owner(), Some("york"));
                prop_assert_eq!(t.status(), Some(Status::InProgress));
                let after: serde_json::Map<String, Value> =
                    serde_json::from_slice(&fs::read(l.path(1)).unwrap()).unwrap();
                for (k, v) in &doc {
                    if k != "owner" && k != "status" {
                        prop_assert_eq!(after.get(k), Some(v), "{}", k);
                    }
                }
                let keys: Vec<&String> = after.keys().filter(|k| *k != "owner" && *k != "status").collect();
                let before: Vec<&String> = doc.keys().filter(|k| *k != "owner" && *k != "status").collect();
                prop_assert_eq!(keys, before, "field order kept");
            }
            Claim::AlreadyYours(_) | Claim::Refused(_) => {
                prop_assert_eq!(fs::read(l.path(1)).unwrap(), text);
            }
        }
    }

    /// Text fields are stored and read back exactly, whatever they hold.
    #[test]
    fn text_fields_round_trip(subject in "\\PC{1,40}", description in "(\\PC|\n){0,80}") {
        let tmp = tempfile::tempdir().unwrap();
        let l = list(tmp.path());
        let mut n = NewTask::new(subject.clone());
        n.description = description.clone();
        match l.create(&n) {
            Ok(t) => {
                let back = l.get(t.id).unwrap();
                prop_assert_eq!(back.subject(), subject.as_str());
                prop_assert_eq!(back.description(), description.as_str());
            }
            Err(e) => {
                prop_assert!(subject.trim().is_empty());
                prop_assert_eq!(code_of(&e), DATAERR);
            }
        }
    }

    #[test]
    fn task_ids_from_users_are_plain_numbers(s in "\\PC{0,24}") {
        match mt::tasks::parse_id(&s) {
            Ok(n) => prop_assert!(n > 0 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())),
            Err(e) => {
                prop_assert_eq!(code_of(&e), DATAERR);
                prop_assert!(s.parse::<u64>().map_or(true, |n| n == 0) || !s.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
