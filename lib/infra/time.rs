//! Timestamps and durations as mt writes and reads them: records store UTC
//! RFC 3339 with milliseconds and `Z`; durations are `500ms`, `30s`, `10m`,
//! `2h`, `1d`; times are RFC 3339 or `HH:MM` (today, local).

use anyhow::{Result, bail};
use chrono::{DateTime, Local, NaiveTime, SecondsFormat, TimeZone, Utc};
use std::time::Duration;

/// Now, as stored in records: `2026-11-21T19:40:01.123Z`.
pub fn now_stamp() -> String {
    stamp(Utc::now())
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parse an RFC 3339 timestamp into UTC.
pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parse `500ms`, `30s`, `10m`, `2h`, `1d`, or a sum such as `1h30m`
/// (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let text = s.trim();
    if text.is_empty() {
        bail!("invalid duration {s:?}: expected a number and a unit, like 30s or 10m");
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_duration(&format!("{text}s"));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let (num, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let Ok(n) = num.parse::<u64>() else {
            bail!("invalid duration {s:?}: expected a number and a unit, like 30s or 10m");
        };
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => bail!("invalid duration {s:?}: the unit must be ms, s, m, h or d"),
        };
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| anyhow::anyhow!("invalid duration {s:?}: too large"))?;
        rest = &rest[digits + unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// A duration in the same short form, largest unit first (`90s` is
/// `1m30s`); `parse_duration` reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Parse a point in time: RFC 3339, or `HH:MM` meaning today in local time.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Some(t) = parse_stamp(s) {
        return Ok(t);
    }
    if let Ok(hm) = NaiveTime::parse_from_str(s, "%H:%M") {
        let today = Local::now().date_naive().and_time(hm);
        if let Some(t) = Local.from_local_datetime(&today).earliest() {
            return Ok(t.with_timezone(&Utc));
        }
    }
    bail!("invalid time {s:?}: use RFC 3339 (2026-11-21T19:40:00Z) or HH:MM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "s", "1x", "-1s", "1.5s", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn stamps_have_millis_and_z() {
        let s = now_stamp();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z'));
        assert!(parse_stamp(&s).is_some());
        assert!(parse_time("12:30").is_ok());
        assert!(parse_time("25:99").is_err());
    }
}
