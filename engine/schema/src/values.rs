//! Values as exports and people write them, made canonical — for every connector, the
//! SDK's plugins among them: exact money from amounts typed with spaces and a decimal
//! comma (`1 234,50`), and local date-times in a client's zone as UTC microseconds.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone};

use crate::{MONEY_PRECISION, MONEY_SCALE};

pub use chrono_tz::Tz;

/// The zone of a client, a data set or a connector that names none: Svodka's users are
/// mostly in Moscow time. Every default zone is this one.
pub const DEFAULT_TIMEZONE: &str = "Europe/Moscow";

/// [`DEFAULT_TIMEZONE`] as a zone.
pub fn default_zone() -> Tz {
    DEFAULT_TIMEZONE
        .parse()
        .expect("the default zone is an IANA name")
}

/// Exact money in kopecks: `1234.5` → 123450. At most two significant decimals (trailing
/// zeros beyond are allowed); no exponent, no thousands separators.
pub fn parse_money(text: &str) -> Result<i128, String> {
    let bad = || "expected an amount like 1234.56".to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let max_whole = (MONEY_PRECISION - MONEY_SCALE as u8) as usize;
    if whole.trim_start_matches('0').len() > max_whole {
        return Err(format!("amount exceeds {max_whole} whole digits"));
    }
    let (kept, rest) = fraction.split_at(fraction.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return Err("more than two decimal places".into());
    }
    let mut value: i128 = 0;
    for b in whole.bytes() {
        value = value * 10 + i128::from(b - b'0');
    }
    for i in 0..2 {
        let digit = kept.as_bytes().get(i).map_or(0, |b| i128::from(b - b'0'));
        value = value * 10 + digit;
    }
    Ok(if negative { -value } else { value })
}

/// Kopecks of an amount as people type it: `1 234,50`, `1 500 000`, `-12.3`, `1234567.50`.
/// Spaces — also no-break and thin ones — group thousands; `,` or `.` is the decimal
/// mark. Exact (no floating point), as strict as [`parse_money`] otherwise.
pub fn money_text(text: &str) -> Result<i128, String> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}'))
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    parse_money(&cleaned).map_err(|e| format!("{e}: {text:?}"))
}

/// A time zone by its IANA name (`Europe/Moscow`).
pub fn zone(name: &str) -> Result<Tz, String> {
    name.parse()
        .map_err(|_| format!("unknown time zone `{name}` (an IANA name, e.g. Europe/Moscow)"))
}

/// Microseconds since the epoch, UTC, of a wall-clock time in `tz`. A time the clocks
/// passed twice (autumn) is the earlier; one they skipped (spring) is refused.
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> Result<i64, String> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_micros())
        .ok_or_else(|| format!("{local} does not exist in {tz} (the clocks skipped it)"))
}

/// Local date-times as exports write them; a date alone is its midnight.
const LOCAL_FORMATS: [&str; 5] = [
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%d %H:%M",
];
const DATE_FORMATS: [&str; 2] = ["%Y-%m-%d", "%d.%m.%Y"];

/// Microseconds since the epoch, UTC, of a date-time as exports write it: wall-clock time
/// in `tz` (`2024-12-15T19:54:30`, `2024-12-15 19:54[:30]`, `15.12.2024 19:54[:30]`, or a
/// date alone at its midnight, `15.12.2024`), or RFC 3339 whose own offset is honoured.
pub fn local_time(text: &str, tz: Tz) -> Result<i64, String> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    let local = LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            format!(
                "expected a date-time like 15.12.2024 19:54 or 2024-12-15T19:54:30, found {text:?}"
            )
        })?;
    local_to_utc(local, tz)
}

/// Days since 1970-01-01 (Arrow Date32).
pub fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// The date of Arrow Date32 `days`.
pub fn date_from_days(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(i64::from(days))
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
}

/// The first day of `date`'s month.
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("day 1 exists")
}

/// The last day of `date`'s month.
pub fn month_end(date: NaiveDate) -> NaiveDate {
    let next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    };
    next.expect("valid month") - chrono::Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_typed() {
        assert_eq!(money_text("1 234,50"), Ok(123_450));
        assert_eq!(money_text("1\u{a0}500\u{a0}000"), Ok(150_000_000));
        assert_eq!(money_text("250000,5"), Ok(25_000_050));
        assert_eq!(money_text(" -12.30 "), Ok(-1_230));
        assert!(money_text("1,234.50").is_err(), "two decimal marks");
        assert!(money_text("12,345").is_err(), "three decimals");
        assert!(money_text("abc").unwrap_err().contains("\"abc\""));
    }

    #[test]
    fn local_times_in_a_zone() {
        let moscow = zone("Europe/Moscow").unwrap();
        // 2026-10-15 12:30 in Moscow (UTC+3) is 09:30 UTC.
        let want = 1_792_056_600_000_000;
        for text in [
            "15.10.2026 12:30",
            "15.10.2026 12:30:00",
            "2026-10-15T12:30:00",
            "2026-10-15 12:30",
            "2026-10-15T09:30:00Z",
        ] {
            assert_eq!(local_time(text, moscow), Ok(want), "{text}");
        }
        assert_eq!(
            local_time("15.10.2026", moscow),
            Ok(want - 12 * 3_600_000_000 - 1_800_000_000)
        );
        assert!(local_time("31.02.2026", moscow).is_err());
        // Berlin skipped 02:00–03:00 on 2026-03-29 and passed 02:00–03:00 twice on 10-25.
        let berlin = zone("Europe/Berlin").unwrap();
        assert!(
            local_time("29.03.2026 02:30", berlin)
                .unwrap_err()
                .contains("skipped")
        );
        assert_eq!(
            local_time("25.10.2026 02:30", berlin),
            local_time("2026-10-25T02:30:00+02:00", berlin)
        );
        assert!(zone("Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
    }
}
