//! Record ids: 26 characters of Crockford base32, a 48-bit millisecond time
//! followed by 80 random bits, so ids sort by creation time and are unique
//! across hosts without coordination (the ULID layout).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 64 unpredictable bits from the standard library's per-process hash keys,
/// mixed with the time, pid and a counter so repeated calls differ.
fn random_u64(salt: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(salt);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A new id for a record created at `millis` since the epoch.
pub fn new_id(millis: u64) -> String {
    let rand = ((random_u64(1) as u128) << 16) ^ (random_u64(2) as u128 & 0xffff);
    let value: u128 = ((millis as u128 & 0xffff_ffff_ffff) << 80) | (rand & ((1u128 << 80) - 1));
    let mut out = [0u8; 26];
    for (i, c) in out.iter_mut().enumerate() {
        let shift = 125 - 5 * i as u32;
        *c = ALPHABET[((value >> shift) & 31) as usize];
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// The creation time (milliseconds since the epoch) an id carries.
pub fn millis_of(id: &str) -> Option<u64> {
    if id.len() != 26 {
        return None;
    }
    let mut v: u64 = 0;
    for c in id.bytes().take(10) {
        let d = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        v = (v << 5) | d as u64;
    }
    // 10 characters hold 50 bits; the time is the low 48.
    Some(v & 0xffff_ffff_ffff)
}

/// A random version-4 UUID, as Claude Code session ids are written.
pub fn new_uuid() -> String {
    let a = random_u64(3);
    let b = random_u64(4);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_unique() {
        let a = new_id(1_000);
        let b = new_id(2_000);
        assert!(a < b);
        let set: std::collections::HashSet<_> = (0..10_000).map(|_| new_id(5)).collect();
        assert_eq!(set.len(), 10_000);
        assert_eq!(a.len(), 26);
    }

    #[test]
    fn time_of_an_id() {
        assert_eq!(millis_of(&new_id(1_234_567)), Some(1_234_567));
        assert_eq!(millis_of("x"), None);
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uuid());
    }
}
