//! Values as 1C writes them: naive datetimes in the server's time zone (`0001-01-01T00:00:00`
//! for none), GUIDs (all zeros for none), Int64 as strings, Double as JSON numbers,
//! booleans; and as people type them in exported files (`1 234,56`, `15.12.2024`).

use serde_json::Value;

/// The empty reference.
pub const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Text, with numbers written out; empty, the zero GUID and the empty date are `None`.
pub fn text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s != ZERO_GUID && !s.starts_with("0001-01-01")).then_some(s)
}

/// A reference (`…_Key`): `None` for the zero GUID.
pub fn guid(v: &Value) -> Option<String> {
    text(v).map(|s| s.to_ascii_lowercase())
}

/// A naive 1C datetime (or a date) in `tz` as microseconds since the epoch, UTC; the
/// empty date is `None`. An explicit offset is honoured.
pub fn micros(v: &Value, tz: chrono_tz::Tz) -> Option<i64> {
    let s = text(v)?;
    parse_time(&s, tz)
}

/// A date-time as 1C writes it (see `svodka_schema::values::local_time`: local in `tz`,
/// or RFC 3339 with its own offset); 1C's empty date `0001-01-01` is `None`.
pub fn parse_time(s: &str, tz: chrono_tz::Tz) -> Option<i64> {
    let s = s.trim();
    if s.starts_with("0001-01-01") || s.starts_with("01.01.0001") {
        return None;
    }
    svodka_schema::values::local_time(s, tz).ok()
}

/// A number: JSON number, or text with spaces and a decimal comma (`1 234,56`).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

pub fn parse_number(s: &str) -> Option<f64> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    if cleaned.is_empty() {
        return None;
    }
    cleaned.parse().ok()
}

/// Money in kopecks. 1C sends `Edm.Double`: exact to the kopeck well beyond any sale;
/// typed amounts (`1 234,56`) are read exactly, rounded only beyond two decimals.
pub fn cents(v: &Value) -> Option<i128> {
    let exact = match v {
        Value::String(s) => svodka_schema::values::money_text(s).ok(),
        _ => None,
    };
    exact.or_else(|| number(v).map(|f| (f * 100.0).round() as i128))
}

/// `true`/`false`, `Да`/`Нет`, `1`/`0`.
pub fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "да" | "1" | "y" | "yes" => Some(true),
            "false" | "нет" | "0" | "n" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_c_values() {
        let tz: chrono_tz::Tz = "Europe/Moscow".parse().unwrap();
        // 19:54:30 in Moscow is 16:54:30 UTC.
        assert_eq!(
            micros(&json!("2024-12-15T19:54:30"), tz),
            Some(1_734_281_670_000_000)
        );
        assert_eq!(micros(&json!("0001-01-01T00:00:00"), tz), None);
        assert_eq!(
            parse_time("15.12.2024 19:54:30", tz),
            Some(1_734_281_670_000_000)
        );
        assert_eq!(guid(&json!(ZERO_GUID)), None);
        assert_eq!(
            guid(&json!("8B9660F6-6332-11EC-AD72-000C29B45B09")).unwrap(),
            "8b9660f6-6332-11ec-ad72-000c29b45b09"
        );
        assert_eq!(cents(&json!(22729.17)), Some(2_272_917));
        assert_eq!(cents(&json!("1 234,56")), Some(123_456));
        assert_eq!(number(&json!("1")), Some(1.0));
        assert_eq!(flag(&json!("Да")), Some(true));
        assert_eq!(text(&json!("")), None);
    }
}
