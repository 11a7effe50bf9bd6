//! How a portal reads a list call's parameters: PHP-style query strings
//! (`filter[>ID]=5&select[0]=ID`) or a JSON body, filters with their prefixes compared as
//! numbers, datetimes or text, `select` with `*` and `UF_*`, ID order, and pages of 50
//! (`start=-1` for no counting).

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Rows per page.
pub const PAGE: usize = 50;

/// An error reply: HTTP status, code, description.
pub type Refusal = (u16, String, String);

pub fn refuse(status: u16, code: &str, description: impl Into<String>) -> Refusal {
    (status, code.to_string(), description.into())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a[b][c]=v` pairs into nested JSON objects, as PHP reads them.
pub fn parse_query(query: &str) -> Map<String, Value> {
    let mut root = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        let mut path: Vec<String> = Vec::new();
        match k.find('[') {
            Some(at) => {
                path.push(k[..at].to_string());
                let mut rest = &k[at..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let Some(end) = stripped.find(']') else { break };
                    path.push(stripped[..end].to_string());
                    rest = &stripped[end + 1..];
                }
            }
            None => path.push(k),
        }
        let mut node = &mut root;
        for (i, key) in path.iter().enumerate() {
            let key = if key.is_empty() {
                node.len().to_string()
            } else {
                key.clone()
            };
            if i + 1 == path.len() {
                node.insert(key, Value::String(v.clone()));
            } else {
                let next = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                node = next.as_object_mut().expect("made an object");
            }
        }
    }
    root
}

/// A parameter by any of its spellings (`filter`/`FILTER`, `start`/`START`).
pub fn param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// An object's values in key order when the keys are 0, 1, 2… (a PHP list), or an array.
fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => {
            let mut items: Vec<(usize, Value)> = o
                .iter()
                .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v.clone())))
                .collect();
            items.sort_by_key(|(i, _)| *i);
            items.into_iter().map(|(_, v)| v).collect()
        }
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "Y" } else { "N" }.to_string()),
        _ => None,
    }
}

/// Compares a record's value with a filter value: as numbers, as datetimes, else as text.
fn compare(record: &Value, wanted: &Value) -> Option<Ordering> {
    let (a, b) = (text(record)?, text(wanted)?);
    if let (Ok(x), Ok(y)) = (a.parse::<i64>(), b.parse::<i64>()) {
        return Some(x.cmp(&y));
    }
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return x.partial_cmp(&y);
    }
    let when = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .expect("midnight")
                            .and_utc()
                            .timestamp()
                    })
            })
    };
    if let (Some(x), Some(y)) = (when(&a), when(&b)) {
        return Some(x.cmp(&y));
    }
    Some(a.cmp(&b))
}

/// One filter condition.
#[derive(Debug, Clone)]
pub struct Condition {
    op: &'static str,
    pub field: String,
    pub value: Value,
}

/// The `filter` parameter's conditions; a field the records lack is refused, as the
/// portal refuses it.
pub fn conditions(
    params: &Map<String, Value>,
    known: &dyn Fn(&str) -> bool,
) -> Result<Vec<Condition>, Refusal> {
    let Some(filter) = param(params, "filter") else {
        return Ok(vec![]);
    };
    let Some(filter) = filter.as_object() else {
        if filter.as_array().is_some_and(|a| a.is_empty()) {
            return Ok(vec![]);
        }
        return Err(refuse(400, "", "Parameter 'filter' must be array."));
    };
    let mut out = Vec::new();
    for (key, value) in filter {
        let op = ["!@", ">=", "<=", "!=", ">", "<", "@", "=", "!"]
            .into_iter()
            .find(|p| key.starts_with(p))
            .unwrap_or("");
        let field = key[op.len()..].to_string();
        if !known(&field) {
            return Err(refuse(
                400,
                "INVALID_ARG_VALUE",
                format!("Invalid filter: field '{field}' is not allowed in filter"),
            ));
        }
        out.push(Condition {
            op,
            field,
            value: value.clone(),
        });
    }
    Ok(out)
}

/// Whether a record meets every condition. An empty filter value (a batch link to a row
/// that does not exist) matches everything, as it does on the portal.
pub fn matches(record: &Map<String, Value>, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        if c.value.as_str() == Some("") {
            return true;
        }
        let v = record.get(&c.field).unwrap_or(&Value::Null);
        let ord = compare(v, &c.value);
        match c.op {
            ">=" => ord.is_some_and(|o| o != Ordering::Less),
            ">" => ord == Some(Ordering::Greater),
            "<=" => ord.is_some_and(|o| o != Ordering::Greater),
            "<" => ord == Some(Ordering::Less),
            "@" => as_list(&c.value)
                .iter()
                .any(|w| compare(v, w) == Some(Ordering::Equal)),
            "!@" => !as_list(&c.value)
                .iter()
                .any(|w| compare(v, w) == Some(Ordering::Equal)),
            "!=" | "!" => ord != Some(Ordering::Equal),
            _ => ord == Some(Ordering::Equal),
        }
    })
}

/// The lowest id a `>ID`/`>=ID` condition lets through (to skip ahead in id order).
pub fn id_floor(conditions: &[Condition]) -> Option<i64> {
    conditions
        .iter()
        .filter(|c| c.field == "ID")
        .filter_map(|c| {
            let v: i64 = text(&c.value)?.parse().ok()?;
            match c.op {
                ">" => Some(v + 1),
                ">=" => Some(v),
                _ => None,
            }
        })
        .max()
}

/// Descending order asked for (`order[ID]=DESC`); only ID order is kept by the emulator.
pub fn descending(params: &Map<String, Value>) -> Result<bool, Refusal> {
    let Some(order) = param(params, "order") else {
        return Ok(false);
    };
    match order {
        Value::Object(o) => {
            let Some((field, dir)) = o.iter().next() else {
                return Ok(false);
            };
            if !field.eq_ignore_ascii_case("ID") {
                return Err(refuse(
                    400,
                    "INVALID_ARG_VALUE",
                    format!("the emulator orders by ID only, not by '{field}'"),
                ));
            }
            Ok(text(dir).is_some_and(|d| d.eq_ignore_ascii_case("DESC")))
        }
        // user.get's `order=ASC` with `sort=ID`.
        Value::String(s) => Ok(s.eq_ignore_ascii_case("DESC")),
        _ => Err(refuse(400, "", "Parameter 'order' must be array.")),
    }
}

/// Keeps the selected fields (`*` all plain ones, `UF_*` the custom ones); no `select`
/// keeps everything.
pub fn select(record: Map<String, Value>, params: &Map<String, Value>) -> Map<String, Value> {
    let Some(select) = param(params, "select") else {
        return record;
    };
    let fields: Vec<String> = as_list(select).iter().filter_map(text).collect();
    if fields.is_empty() {
        return record;
    }
    let star = fields.iter().any(|f| f == "*");
    let uf = fields.iter().any(|f| f == "UF_*");
    record
        .into_iter()
        .filter(|(k, _)| {
            fields.contains(k) || (star && !k.starts_with("UF_")) || (uf && k.starts_with("UF_"))
        })
        .collect()
}

/// The `start` parameter: `None` for `-1` (no counting), else the offset.
pub fn start(params: &Map<String, Value>) -> Result<Option<usize>, Refusal> {
    match param(params, "start") {
        None => Ok(Some(0)),
        Some(v) => match text(v).and_then(|t| t.trim().parse::<i64>().ok()) {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n as usize)),
            _ => Err(refuse(
                400,
                "INVALID_ARG_VALUE",
                "Parameter 'start' must be a number.",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn php_style_queries() {
        let q = parse_query(
            "entityTypeId=2&order[ID]=ASC&filter[%3EID]=120&filter[%3E%3DDATE_MODIFY]=2026-11-01T00%3A00%3A00%2B03%3A00&start=-1&select[0]=ID&select[1]=TITLE",
        );
        assert_eq!(
            Value::Object(q.clone()),
            json!({"entityTypeId": "2", "order": {"ID": "ASC"},
                   "filter": {">ID": "120", ">=DATE_MODIFY": "2026-11-01T00:00:00+03:00"},
                   "start": "-1", "select": {"0": "ID", "1": "TITLE"}})
        );
        let c = conditions(&q, &|_| true).unwrap();
        assert_eq!(id_floor(&c), Some(121));
        let row = json!({"ID": "121", "DATE_MODIFY": "2026-11-01T01:00:00+04:00", "TITLE": "x"});
        // 01:00+04:00 is 00:00+03:00: at the watermark, so in.
        assert!(matches(row.as_object().unwrap(), &c));
        let selected = select(row.as_object().unwrap().clone(), &q);
        assert_eq!(selected.len(), 2);
        assert_eq!(start(&q).unwrap(), None);
    }
}
