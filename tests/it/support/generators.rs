//! Generators: JSON values and almost-JSON bytes for the property tests,
//! the proptest configuration (a printed seed that can be set, failures
//! kept in regression files beside the tests), and a deterministic random
//! source for the fault-injection tests.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};
use serde_json::Value;
use std::io::Write;
use std::sync::OnceLock;

/// Whether the long variants were asked for (`make check-long`).
pub fn long() -> bool {
    std::env::var_os("MT_LONG_TESTS").is_some()
}

/// Cases per property: a few dozen normally, many more for the long run.
pub fn cases(normal: u32) -> u32 {
    if long() { normal * 20 } else { normal }
}

/// The seed of this run's property tests: `PROPTEST_RNG_SEED` when set
/// (proptest's own variable), otherwise a fresh one. Printed once per run,
/// and again in the output of every property test that fails, so that
/// `PROPTEST_RNG_SEED=<seed> cargo test --test it props` repeats the run.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = match std::env::var("PROPTEST_RNG_SEED") {
            Ok(s) => s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("PROPTEST_RNG_SEED={s:?} is not a number")),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
            }
        };
        // Straight to the standard error, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "property tests: seed {seed} (PROPTEST_RNG_SEED={seed} repeats this run)"
        );
        seed
    })
}

/// The configuration of every property test: `cases` cases, this run's
/// seed, and failing cases kept in `<test file>.proptest-regressions`
/// beside the test's source (tests/it/), which later runs try first.
pub fn config(cases: u32) -> Config {
    let seed = seed();
    eprintln!("property tests: seed {seed} (PROPTEST_RNG_SEED={seed} repeats this run)");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // Not proptest's default (SourceParallel), which would look for
        // tests/proptest-regressions/ now that tests/it/ holds a main.rs.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// A tiny deterministic generator, so a failing run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Keys the parsers look for, mixed with arbitrary ones.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "seq", "segment", "offset", "updated_at", "from", "text", "read",
            "timestamp", "owner", "status", "subject", "description", "blocks",
            "blockedBy", "hooks", "command", "type", "matcher", "taskId", "tool_name",
            "tool_input", "tool_response", "task", "success", "is_error", "error",
            "session_id", "stop_hook_active", "notification_type", "message",
        ])
        .prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "1",
            "3",
            "../x",
            "a/b",
            "York",
            "york",
            "team-lead",
            "in_progress",
            "completed",
            "pending",
            "TaskCreate",
            "TaskUpdate",
            "idle_prompt",
            "Task #12 created",
            "\u{1b}[31m",
            "$(touch pwned)",
            "`id`",
            "a\nb",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Any JSON object.
pub fn json_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    prop::collection::vec((key(), json()), 0..8).prop_map(|kv| kv.into_iter().collect())
}

/// Bytes that are often almost JSON: real JSON, JSON cut short, JSON with
/// a byte changed, or noise.
pub fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        (json(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            let cut = i.index(s.len() + 1);
            s[..cut].to_vec()
        }),
        (json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            if !s.is_empty() {
                let at = i.index(s.len());
                s[at] = b;
            }
            s
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}
