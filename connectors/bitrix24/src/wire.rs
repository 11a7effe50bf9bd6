//! Values as Bitrix24 sends them — ids and amounts as strings or numbers, `Y`/`N`
//! booleans, datetimes with the portal's offset, `[]` for an empty object — and the reply
//! envelope with its errors, judged by HTTP status as much as by the code (legacy CRM
//! methods answer `"error": ""`).

use chrono::DateTime;
use serde_json::{Map, Value};

/// An id: `"37"` or `37`; empty, `"0"`-less nulls and junk are `None`.
pub fn id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Money in hundredths: `"19999.99"`, `19999.99`, `"20000"` or `20000` (more than two
/// decimals are rounded half away from zero).
pub fn cents(v: &Value) -> Option<i128> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_digits: Vec<u32> = frac.chars().filter_map(|c| c.to_digit(10)).collect();
    frac_digits.resize(3, 0);
    let mut hundredths = int * 100 + (frac_digits[0] * 10 + frac_digits[1]) as i128;
    if frac_digits[2] >= 5 {
        hundredths += 1;
    }
    Some(if negative { -hundredths } else { hundredths })
}

/// A datetime with its offset (`2024-09-02T18:37:18+02:00`) as microseconds since the
/// epoch, UTC; empty or malformed is `None`.
pub fn micros(v: &Value) -> Option<i64> {
    let s = v.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `Y`/`N`, `1`/`0`, `true`/`false`, as string, number or boolean.
pub fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim() {
            "Y" | "y" | "1" | "true" | "TRUE" => Some(true),
            "N" | "n" | "0" | "false" | "FALSE" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Text, with numbers written out and empty strings as `None`.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An object, where Bitrix24 sends `[]` for an empty one.
pub fn object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Too many requests (503 `QUERY_LIMIT_EXCEEDED`): slow down and retry.
    RateLimited,
    /// A method's time budget is spent (429 `OPERATION_TIME_LIMIT`): wait until the
    /// reset, then retry.
    TimeLimited,
    /// The OAuth access token expired (401 `expired_token`): refresh it and retry.
    ExpiredToken,
    /// A server-side failure worth retrying (500, 502, 504, an unreadable body).
    Transient,
    /// The request itself is wrong, or access is denied: retrying will not help.
    Fatal,
}

/// An error reply, classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Bitrix24 {method}: HTTP {status} {code}: {description}")]
pub struct ApiError {
    pub method: String,
    pub status: u16,
    /// The `error` field as sent (may be empty or a number on legacy methods).
    pub code: String,
    pub description: String,
    pub kind: ErrorKind,
    /// For `TimeLimited`: when the budget resets (unix seconds), if the reply said.
    pub reset_at: Option<i64>,
}

/// A successful reply of a list method.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
    /// When the portal began the request (`time.start`, unix seconds): the portal's
    /// clock, which a sync's watermark is read from.
    pub started: Option<f64>,
}

/// Reads a reply: its HTTP status and body. Errors are classified by status and code
/// together, never by the code alone.
pub fn reply(method: &str, status: u16, body: &[u8]) -> Result<Reply, ApiError> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let err =
        |code: String, description: String, kind: ErrorKind, reset_at: Option<i64>| ApiError {
            method: method.to_string(),
            status,
            code,
            description,
            kind,
            reset_at,
        };
    let v = match parsed {
        Ok(v) => v,
        Err(e) => {
            // A truncated or HTML body: the server or a proxy failed midway.
            let kind = if status == 200 || status >= 500 {
                ErrorKind::Transient
            } else {
                ErrorKind::Fatal
            };
            return Err(err(
                String::new(),
                format!("unreadable reply: {e}"),
                kind,
                None,
            ));
        }
    };
    let code = match v.get("error") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let failed = status >= 400 || code.as_deref().is_some_and(|c| !c.is_empty() && c != "0");
    if !failed {
        return Ok(Reply {
            result: v.get("result").cloned().unwrap_or(Value::Null),
            total: v
                .get("total")
                .and_then(id)
                .and_then(|t| u64::try_from(t).ok()),
            next: v
                .get("next")
                .and_then(id)
                .and_then(|t| u64::try_from(t).ok()),
            started: v.pointer("/time/start").and_then(Value::as_f64),
        });
    }
    let code = code.unwrap_or_default();
    let description = v
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let reset_at = v
        .pointer("/time/operating_reset_at")
        .and_then(|t| id(t).or_else(|| micros(t).map(|m| m / 1_000_000)));
    let kind = match (status, code.as_str()) {
        (_, "QUERY_LIMIT_EXCEEDED") => ErrorKind::RateLimited,
        (_, "OPERATION_TIME_LIMIT") | (429, _) => ErrorKind::TimeLimited,
        (_, "expired_token") => ErrorKind::ExpiredToken,
        (503, "OVERLOAD_LIMIT") => ErrorKind::Fatal,
        (500 | 502 | 503 | 504, "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" | "") => {
            ErrorKind::Transient
        }
        (502 | 504, _) => ErrorKind::Transient,
        _ => ErrorKind::Fatal,
    };
    Err(err(code, description, kind, reset_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_as_they_come() {
        assert_eq!(id(&json!("37")), Some(37));
        assert_eq!(id(&json!(35)), Some(35));
        assert_eq!(id(&json!("")), None);
        assert_eq!(id(&json!(null)), None);
        assert_eq!(cents(&json!("19999.99")), Some(1_999_999));
        assert_eq!(cents(&json!("20000.00")), Some(2_000_000));
        assert_eq!(cents(&json!(19000)), Some(1_900_000));
        assert_eq!(cents(&json!(0.1)), Some(10));
        assert_eq!(cents(&json!("1.005")), Some(101));
        assert_eq!(cents(&json!("-5.5")), Some(-550));
        assert_eq!(cents(&json!("")), None);
        assert_eq!(cents(&json!("12a")), None);
        assert_eq!(
            micros(&json!("2024-09-02T18:37:18+02:00")),
            Some(1_725_295_038_000_000)
        );
        assert_eq!(micros(&json!("")), None);
        assert_eq!(micros(&json!("02.09.2024")), None);
        assert_eq!(flag(&json!("Y")), Some(true));
        assert_eq!(flag(&json!("N")), Some(false));
        assert_eq!(flag(&json!(1)), Some(true));
        assert_eq!(flag(&json!(true)), Some(true));
        assert_eq!(text(&json!(500)), Some("500".into()));
        assert!(object(&json!([])).is_empty());
    }

    #[test]
    fn replies_and_errors() {
        let ok = reply(
            "crm.deal.list",
            200,
            br#"{"result":[{"ID":"1"}],"total":654,"next":50,"time":{}}"#,
        )
        .unwrap();
        assert_eq!((ok.total, ok.next), (Some(654), Some(50)));
        // Legacy list methods: an empty code with a 400.
        let e = reply(
            "crm.deal.list",
            400,
            br#"{"error":"","error_description":"Parameter 'filter' must be array."}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Fatal);
        assert_eq!(
            e.to_string(),
            "Bitrix24 crm.deal.list: HTTP 400 : Parameter 'filter' must be array."
        );
        // `"error": 0` on a 200 is success (crm.stagehistory.list).
        assert!(
            reply(
                "crm.stagehistory.list",
                200,
                br#"{"result":{"items":[]},"error":0}"#
            )
            .is_ok()
        );
        let rate = reply(
            "batch",
            503,
            br#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#,
        )
        .unwrap_err();
        assert_eq!(rate.kind, ErrorKind::RateLimited);
        let time = reply(
            "crm.activity.list",
            429,
            br#"{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit.","time":{"operating_reset_at":1757425271}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (time.kind, time.reset_at),
            (ErrorKind::TimeLimited, Some(1_757_425_271))
        );
        let expired = reply(
            "crm.lead.list",
            401,
            br#"{"error":"expired_token","error_description":"The access token provided has expired."}"#,
        )
        .unwrap_err();
        assert_eq!(expired.kind, ErrorKind::ExpiredToken);
        let truncated = reply("crm.deal.list", 200, br#"{"result":[{"ID":"1"},{"ID""#).unwrap_err();
        assert_eq!(truncated.kind, ErrorKind::Transient);
        let html = reply("crm.deal.list", 502, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(html.kind, ErrorKind::Transient);
        let denied = reply(
            "crm.deal.list",
            403,
            br#"{"error":"insufficient_scope","error_description":""}"#,
        )
        .unwrap_err();
        assert_eq!(denied.kind, ErrorKind::Fatal);
    }
}
