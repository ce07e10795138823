//! Property tests for reader cursors: the cursor file parser, save/load,
//! and resuming from any position, valid or not.

use crate::support::{cases, json_ish_bytes, json_object};
use mt::channel::{Appender, Draft, Position, Reader, WriteOptions};
use mt::cursor;
use mt::exit::{DATAERR, code_of};
use mt::statedir::StateDir;
use proptest::prelude::*;
use serde_json::Value;

fn state() -> (tempfile::TempDir, StateDir) {
    let d = tempfile::tempdir().unwrap();
    let st = StateDir::at(d.path().join("mt"));
    (d, st)
}

/// A channel `c` holding records 1..=n, in segments of about `seg` bytes.
fn channel(st: &StateDir, n: u64, seg: u64) {
    for i in 0..n {
        let opts = WriteOptions {
            fsync: false,
            segment_bytes: seg,
        };
        let mut a = Appender::open(st, "c", opts).unwrap();
        a.append(&Draft {
            from: "x".into(),
            kind: "text".into(),
            content: format!("record {}", i + 1),
            ..Draft::default()
        })
        .unwrap();
        a.commit().unwrap();
    }
}

fn seqs_after(st: &StateDir, pos: Position) -> Vec<u64> {
    let mut r = Reader::resume(st, "c", pos).unwrap();
    let mut got = Vec::new();
    r.read_available(&mut |it| {
        got.push(it.view.seq);
        Ok(true)
    })
    .unwrap();
    got
}

/// What a cursor object must hold to be accepted: three whole numbers,
/// and a string (if anything) as `updated_at`.
fn acceptable(o: &serde_json::Map<String, Value>) -> bool {
    ["seq", "segment", "offset"]
        .iter()
        .all(|k| o.get(*k).is_some_and(|v| v.as_u64().is_some()))
        && o.get("updated_at").is_none_or(Value::is_string)
}

proptest! {
    #![proptest_config(crate::support::config(cases(64)))]

    #[test]
    fn cursor_file_of_any_bytes_loads_or_is_refused_with_65(bytes in json_ish_bytes()) {
        let (_d, st) = state();
        let _l = cursor::lock_agent(&st, "york").unwrap();
        std::fs::write(cursor::path(&st, "york", "c"), &bytes).unwrap();
        match cursor::load(&st, "york", "c") {
            Ok(pos) => prop_assert!(pos.is_some()),
            Err(e) => prop_assert_eq!(code_of(&e), DATAERR, "{:#}", e),
        }
    }

    #[test]
    fn cursor_objects_are_accepted_exactly_when_well_typed(
        mut o in json_object(),
        fill in any::<bool>(),
        (seq, segment, offset) in (any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        if fill {
            o.insert("seq".into(), seq.into());
            o.insert("segment".into(), segment.into());
            o.insert("offset".into(), offset.into());
        }
        let (_d, st) = state();
        let _l = cursor::lock_agent(&st, "york").unwrap();
        std::fs::write(cursor::path(&st, "york", "c"), Value::Object(o.clone()).to_string()).unwrap();
        let got = cursor::load(&st, "york", "c");
        prop_assert_eq!(got.is_ok(), acceptable(&o), "{:?}", got);
        if let Ok(Some(p)) = got {
            prop_assert_eq!(p.seq, o["seq"].as_u64().unwrap());
            prop_assert_eq!(p.segment, o["segment"].as_u64().unwrap());
            prop_assert_eq!(p.offset, o["offset"].as_u64().unwrap());
        }
    }

    #[test]
    fn save_then_load_round_trips(seq in any::<u64>(), segment in any::<u64>(), offset in any::<u64>()) {
        let (_d, st) = state();
        let _l = cursor::lock_agent(&st, "york").unwrap();
        let pos = Position { segment, offset, seq };
        cursor::save(&st, "york", "c", pos).unwrap();
        prop_assert_eq!(cursor::load(&st, "york", "c").unwrap(), Some(pos));
        // Nothing but the lock and the cursor is left in the directory.
        let mut names: Vec<String> = std::fs::read_dir(st.cursors("york")).unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        prop_assert_eq!(names, ["LOCK", "c.json"]);
    }

    /// Whatever a cursor says, resuming from it never re-delivers a record
    /// at or below its seq and never skips one above it; a cursor past the
    /// end (the channel was reset) reads the channel from the start.
    #[test]
    fn resuming_from_any_cursor_neither_redelivers_nor_skips(
        n in 0u64..30,
        seg in 150u64..1500,
        seq in 0u64..40,
        segment in prop_oneof![0u64..40, any::<u64>()],
        offset in prop_oneof![0u64..3000, any::<u64>()],
    ) {
        let (_d, st) = state();
        channel(&st, n.max(1), seg);
        let n = n.max(1);
        let got = seqs_after(&st, Position { segment, offset, seq });
        let want: Vec<u64> = if seq > n { (1..=n).collect() } else { (seq + 1..=n).collect() };
        prop_assert_eq!(got, want);
    }

    /// A cursor saved at a real position resumes exactly there.
    #[test]
    fn resuming_from_a_real_position_continues_after_it(n in 1u64..30, seg in 150u64..1500, k in 0u64..30) {
        let (_d, st) = state();
        channel(&st, n, seg);
        let k = k.min(n);
        let mut r = Reader::from_start(&st, "c").unwrap();
        let mut left = k;
        if k > 0 {
            r.read_available(&mut |_| { left -= 1; Ok(left > 0) }).unwrap();
        }
        let pos = if k == 0 { Position::default() } else { r.position() };
        prop_assert_eq!(pos.seq, k);
        prop_assert_eq!(seqs_after(&st, pos), (k + 1..=n).collect::<Vec<_>>());
    }
}
