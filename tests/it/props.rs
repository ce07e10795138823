//! Property tests for the parsers of outside input in the channel layer:
//! names, records, mentions, durations, and the backward line reader that
//! finds the last record.

use mt::channel::{self, Appender, Draft, Reader, RevLines, WriteOptions};
use mt::statedir::StateDir;
use proptest::prelude::*;
use std::io::Write;

proptest! {
    #![proptest_config(crate::support::config(256))]

    #[test]
    fn names_accept_exactly_the_documented_alphabet(s in "\\PC{0,70}") {
        let expected = !s.is_empty()
            && s.len() <= 64
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        prop_assert_eq!(mt::names::is_valid(&s), expected);
        // A valid name never escapes its directory.
        if expected {
            prop_assert!(!s.contains('/') && s != "." && s != "..");
        }
    }

    #[test]
    fn record_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = mt::record::parse(&bytes);
        let _ = mt::record::parse_seq(&bytes);
    }

    #[test]
    fn mentions_are_valid_names_found_in_the_text(s in "[ @a-zA-Z0-9._,!-]{0,80}") {
        let m = mt::record::mentions(&s);
        for name in &m {
            prop_assert!(mt::names::is_valid(name));
            let needle = format!("@{}", name);
            prop_assert!(s.contains(&needle));
        }
        let mut dedup = m.clone();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), m.len());
    }

    #[test]
    fn durations_round_trip(ms in 0u64..10_000_000_000) {
        let d = std::time::Duration::from_millis(ms);
        let text = mt::infra::time::format_duration(d);
        prop_assert_eq!(mt::infra::time::parse_duration(&text).unwrap(), d, "{}", text);
    }

    #[test]
    fn duration_parser_never_panics(s in "\\PC{0,12}") {
        let _ = mt::infra::time::parse_duration(&s);
    }

    #[test]
    fn backward_lines_match_forward_lines(
        lines in proptest::collection::vec("[a-z{}\":0-9]{0,40}", 0..40),
        tail in "[a-z]{0,10}",
    ) {
        let mut f = tempfile::tempfile().unwrap();
        let mut data = String::new();
        for l in &lines {
            data.push_str(l);
            data.push('\n');
        }
        data.push_str(&tail);
        f.write_all(data.as_bytes()).unwrap();
        let mut rev = RevLines::new(&f, data.len() as u64);
        let mut got = Vec::new();
        while let Some(l) = rev.next_line().unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        got.reverse();
        prop_assert_eq!(got, lines);
    }

    #[test]
    fn any_interleaving_of_posts_and_garbage_reads_back_in_order(
        ops in proptest::collection::vec(prop_oneof![
            "[a-z ]{1,30}".prop_map(Ok),
            "[^\n]{0,20}".prop_map(Err),
        ], 1..30),
        seg in 64u64..2048,
    ) {
        let d = tempfile::tempdir().unwrap();
        let st = StateDir::at(d.path().join("mt"));
        let mut posted = Vec::new();
        for op in &ops {
            match op {
                Ok(text) if !text.trim().is_empty() => {
                    let mut a = Appender::open(&st, "p", WriteOptions { fsync: false, segment_bytes: seg }).unwrap();
                    a.append(&Draft { from: "x".into(), kind: "text".into(), content: text.clone(), ..Draft::default() }).unwrap();
                    a.commit().unwrap();
                    posted.push(text.clone());
                }
                Ok(_) => {}
                Err(junk) => {
                    // A torn or foreign fragment appended to the newest segment.
                    let segs = channel::list_segments(&st.channel("p")).unwrap();
                    if let Some(last) = segs.last() {
                        let p = st.channel("p").join(channel::segment_file_name(*last));
                        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
                        f.write_all(junk.as_bytes()).unwrap();
                    }
                }
            }
        }
        if st.channel("p").is_dir() {
            let mut r = Reader::from_start(&st, "p").unwrap();
            let mut got = Vec::new();
            r.read_available(&mut |it| { got.push((it.view.seq, it.view.content.to_string())); Ok(true) }).unwrap();
            let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
            prop_assert_eq!(seqs, (1..=posted.len() as u64).collect::<Vec<_>>());
            let texts: Vec<String> = got.into_iter().map(|g| g.1).collect();
            prop_assert_eq!(texts, posted);
        }
    }
}
