//! Strict parsers for the CSV layout's value formats, feeding the canonical column builders.

use chrono::{DateTime, NaiveDate};
use svodka_schema::values::parse_money;
use svodka_schema::{ColumnBuilder, ColumnType, Value};

/// Parses a raw field of a column of type `ty` into the builder, or says what is wrong.
pub(crate) fn push(b: &mut ColumnBuilder, raw: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".to_string())?;
    if text.is_empty() {
        return b.append(Value::Null);
    }
    let value = match b.ty() {
        ColumnType::Id | ColumnType::Int => Value::Int(parse_int(text)?),
        ColumnType::Float => Value::Float(parse_float(text)?),
        ColumnType::Money => Value::Money(parse_money(text)?),
        ColumnType::Text => Value::Text(text),
        ColumnType::Bool => Value::Bool(parse_bool(text)?),
        ColumnType::Date => Value::Date(parse_date(text)?),
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text)?),
    };
    b.append(value)
}

/// A whole number, e.g. `42` or `-7`.
pub fn parse_int(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| "expected a whole number".to_string())
}

/// A finite decimal number, e.g. `12.5`.
pub fn parse_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("expected a number".into()),
    }
}

/// `true` or `false` (any letter case).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    if text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("expected true or false".into())
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Result<i32, String> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| "expected a date YYYY-MM-DD".to_string())?;
    Ok(date
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
        .num_days() as i32)
}

/// Microseconds since the epoch, UTC, of an ISO 8601 timestamp with an offset or `Z`.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    // The common shape is parsed by hand (the 1 000 000-deal demo has 30 million
    // timestamps); anything else goes to chrono, which stays the authority.
    if let Some(micros) = fast_timestamp(text.as_bytes()) {
        return Ok(micros);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            "expected an ISO 8601 timestamp with an offset, e.g. 2024-03-05T12:34:56+03:00"
                .to_string()
        })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)` with valid fields → µs UTC; None otherwise.
fn fast_timestamp(b: &[u8]) -> Option<i64> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let date = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        let digits = &b[start..end.min(start + 6)];
        micros = num(digits)? * 10i64.pow(6 - digits.len() as u32);
        i = end;
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2])?;
            let m = num(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = (h * 60 + m) * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = i64::from(
        date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
            .num_days() as i32,
    );
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand parser agrees with chrono wherever it answers, and answers the usual shapes.
    #[test]
    fn fast_timestamps_agree_with_chrono() {
        let samples = [
            "2024-03-05T12:34:56+03:00",
            "2024-03-05T12:34:56Z",
            "2024-02-29T23:59:59.123456-05:30",
            "1969-12-31T23:59:59.5Z",
            "2024-12-31 00:00:00+00:00",
            "2024-03-05T12:34:56.123456789+01:00",
        ];
        for s in samples {
            let fast = fast_timestamp(s.as_bytes()).unwrap_or_else(|| panic!("{s}"));
            let slow = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(fast, slow, "{s}");
        }
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-03-05T24:00:00Z",
            "2024-03-05T12:34:56",
            "2024-03-05T12:34:56+3:00",
        ] {
            assert!(fast_timestamp(bad.as_bytes()).is_none(), "{bad}");
            assert_eq!(
                parse_timestamp(bad).is_ok(),
                DateTime::parse_from_rfc3339(bad).is_ok(),
                "{bad}"
            );
        }
    }
}
