//! Fast export in `batch` calls: up to 50 list pages per HTTP request, each page asking
//! for the 50 rows after the previous page's last id (`filter[>ID]` linked with
//! `$result[…]`, `start=-1`, no counting), read back in order until the first short page.

use serde_json::{Map, Value, json};

use crate::wire::{self, ApiError, ErrorKind};

/// Rows per list page: fixed by Bitrix24.
pub const PAGE: usize = 50;
/// Subqueries per batch: more are refused (`ERROR_BATCH_LENGTH_EXCEEDED`).
pub const MAX_COMMANDS: usize = 50;

/// A list method read in id order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListCall {
    pub method: String,
    /// Plain parameters (`entityTypeId=2`), values in wire form.
    pub params: Vec<(String, String)>,
    /// Fields to select (`ID` first is not required; it is always added).
    pub select: Vec<String>,
    /// Extra filter pairs (`>=DATE_MODIFY` → a watermark), values already in wire form.
    pub filter: Vec<(String, String)>,
    /// Where the method nests its rows in its result (`items` for
    /// `crm.stagehistory.list`), for `$result` links to reach them.
    pub nested: Option<String>,
}

/// Percent-encodes a query key or value (the `$result[...]` links stay as they are).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'[' | b']') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ListCall {
    /// The command with `paging` parameters first, then the call's own; the selection
    /// (with `ID`) when there is one or `id_selected`.
    fn with(&self, paging: Vec<String>, id_selected: bool) -> String {
        let mut q: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        q.extend(paging);
        for (k, v) in &self.filter {
            q.push(format!("filter[{}]={}", enc(k), enc(v)));
        }
        let mut select = vec!["ID".to_string()];
        select.extend(self.select.iter().filter(|s| *s != "ID").cloned());
        if id_selected || !self.select.is_empty() {
            for (i, s) in select.iter().enumerate() {
                q.push(format!("select[{i}]={}", enc(s)));
            }
        }
        format!("{}?{}", self.method, q.join("&"))
    }

    /// One page's command: rows with an id above `after` (a number, or a `$result` link).
    fn command(&self, after: &str) -> String {
        self.with(
            vec![
                "order[ID]=ASC".to_string(),
                format!("filter[{}]={after}", enc(">ID")),
                "start=-1".to_string(),
            ],
            true,
        )
    }

    /// The command reading the page at offset `start` in the method's own order, for the
    /// small lists read by offset (`user.get`, `department.get` — which spells it `START`
    /// —, the dictionaries). With no `select`, every field comes.
    pub fn page(&self, start_key: &str, start: u64) -> String {
        self.with(vec![format!("{start_key}={start}")], false)
    }

    /// The body of a `batch` call reading `pages` pages after id `after`.
    pub fn batch(&self, after: i64, pages: usize) -> Value {
        let pages = pages.clamp(1, MAX_COMMANDS);
        let mut cmd = Map::new();
        for k in 0..pages {
            let after = match (k, &self.nested) {
                (0, _) => after.to_string(),
                (_, None) => format!("$result[p{}][{}][ID]", k - 1, PAGE - 1),
                (_, Some(n)) => format!("$result[p{}][{n}][{}][ID]", k - 1, PAGE - 1),
            };
            cmd.insert(format!("p{k}"), Value::String(self.command(&after)));
        }
        json!({"halt": 0, "cmd": cmd})
    }
}

/// What one batch of an export gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Pages {
    /// The rows, ids strictly increasing, none at or below the id the batch started after.
    pub rows: Vec<Value>,
    /// The id to continue after, or `None` when the list is exhausted.
    pub next_after: Option<i64>,
}

/// A failed subquery of a batch, classified as a whole call's error would be.
fn subquery_error(errors: &Map<String, Value>, key: &str) -> Option<ApiError> {
    let e = errors.get(key)?;
    let code = wire::text(&e["error"]).unwrap_or_default();
    let kind = match code.as_str() {
        "QUERY_LIMIT_EXCEEDED" => ErrorKind::RateLimited,
        "OPERATION_TIME_LIMIT" => ErrorKind::TimeLimited,
        "expired_token" => ErrorKind::ExpiredToken,
        _ => ErrorKind::Fatal,
    };
    Some(ApiError {
        method: format!("batch {key}"),
        status: 200,
        code,
        description: wire::text(&e["error_description"]).unwrap_or_default(),
        kind,
        reset_at: None,
    })
}

/// The rows of one subquery's page. Most list methods answer an array;
/// `crm.stagehistory.list` nests it in `items`, `crm.category.list` in `categories`.
fn page_rows(results: &Map<String, Value>, key: &str) -> Vec<Value> {
    match results.get(key) {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) => o
            .values()
            .find_map(|v| v.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// One subquery's page of a `batch` reply and the list's total (`result_total`), or the
/// subquery's error.
pub fn read_page(reply: &wire::Reply, key: &str) -> Result<(Vec<Value>, Option<u64>), ApiError> {
    let errors = wire::object(reply.result.get("result_error").unwrap_or(&Value::Null));
    if let Some(e) = subquery_error(&errors, key) {
        return Err(e);
    }
    let results = wire::object(reply.result.get("result").unwrap_or(&Value::Null));
    let totals = wire::object(reply.result.get("result_total").unwrap_or(&Value::Null));
    let total = totals
        .get(key)
        .and_then(wire::id)
        .and_then(|t| u64::try_from(t).ok());
    Ok((page_rows(&results, key), total))
}

/// Reads a `batch` reply of `ListCall::batch(after, pages)`: the pages in order up to the
/// first short one (later pages were linked to a row that did not exist and are
/// discarded); a failed subquery fails the batch with its classified error.
pub fn read_pages(reply: &wire::Reply, after: i64, pages: usize) -> Result<Pages, ApiError> {
    let results = wire::object(reply.result.get("result").unwrap_or(&Value::Null));
    let errors = wire::object(reply.result.get("result_error").unwrap_or(&Value::Null));
    let mut rows = Vec::new();
    let mut last = after;
    for k in 0..pages.clamp(1, MAX_COMMANDS) {
        let key = format!("p{k}");
        if let Some(e) = subquery_error(&errors, &key) {
            return Err(e);
        }
        let page = page_rows(&results, &key);
        let full = page.len() >= PAGE;
        for row in page {
            // Guard against a shifted selection: ids only go up.
            match wire::id(&row["ID"]) {
                Some(id) if id > last => {
                    last = id;
                    rows.push(row);
                }
                _ => {}
            }
        }
        if !full {
            return Ok(Pages {
                rows,
                next_after: None,
            });
        }
    }
    Ok(Pages {
        rows,
        next_after: Some(last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> ListCall {
        ListCall {
            method: "crm.deal.list".into(),
            select: vec!["TITLE".into(), "OPPORTUNITY".into()],
            filter: vec![(">=DATE_MODIFY".into(), "2026-11-01T00:00:00+03:00".into())],
            ..Default::default()
        }
    }

    #[test]
    fn pages_link_to_the_previous_page_last_id() {
        let b = call().batch(120, 3);
        assert_eq!(b["halt"], 0);
        assert_eq!(
            b["cmd"]["p0"],
            "crm.deal.list?order[ID]=ASC&filter[%3EID]=120&start=-1&filter[%3E%3DDATE_MODIFY]=2026-11-01T00%3A00%3A00%2B03%3A00&select[0]=ID&select[1]=TITLE&select[2]=OPPORTUNITY"
        );
        assert!(
            b["cmd"]["p2"]
                .as_str()
                .unwrap()
                .contains("filter[%3EID]=$result[p1][49][ID]&")
        );
        assert_eq!(
            call().batch(0, 80)["cmd"].as_object().unwrap().len(),
            MAX_COMMANDS
        );
    }

    fn reply(result: Value) -> wire::Reply {
        wire::Reply {
            result,
            total: None,
            next: None,
            started: None,
        }
    }

    fn rows(ids: std::ops::RangeInclusive<i64>) -> Value {
        Value::Array(ids.map(|i| json!({"ID": i.to_string()})).collect())
    }

    #[test]
    fn reading_stops_at_the_first_short_page() {
        // p0 full (1..=50), p1 short (51..=60); p2 was linked to a missing row and came
        // back with rows from the start: discarded.
        let r = reply(
            json!({"result": {"p0": rows(1..=50), "p1": rows(51..=60), "p2": rows(1..=50)},
                           "result_error": [], "result_total": [], "result_next": []}),
        );
        let p = read_pages(&r, 0, 3).unwrap();
        assert_eq!(p.rows.len(), 60);
        assert_eq!(p.next_after, None);
        let all_full = reply(json!({"result": {"p0": rows(101..=150), "p1": rows(151..=200)}}));
        let p = read_pages(&all_full, 100, 2).unwrap();
        assert_eq!((p.rows.len(), p.next_after), (100, Some(200)));
        // A row edited between pages reappearing with a lower id is not taken twice.
        let shifted = reply(json!({"result": {"p0": rows(1..=50), "p1": Value::Array(
                std::iter::once(json!({"ID": "50"})).chain((51..=60).map(|i| json!({"ID": i}))).collect())}}));
        assert_eq!(read_pages(&shifted, 0, 2).unwrap().rows.len(), 60);
    }

    #[test]
    fn pages_nested_in_items_are_read_too() {
        let r = reply(
            json!({"result": {"p0": {"items": [{"ID": 35, "TYPE_ID": 1}, {"ID": 36, "TYPE_ID": 2}]}}}),
        );
        let p = read_pages(&r, 0, 1).unwrap();
        assert_eq!((p.rows.len(), p.next_after), (2, None));
    }

    #[test]
    fn a_failed_subquery_fails_the_batch() {
        let r = reply(json!({"result": {"p0": rows(1..=50)},
                           "result_error": {"p1": {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}}}));
        let e = read_pages(&r, 0, 2).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.method, "batch p1");
    }
}
