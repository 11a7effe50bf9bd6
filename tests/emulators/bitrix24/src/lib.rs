//! A Bitrix24 portal for tests and benchmarks: a real HTTP server speaking the REST wire
//! format (`../shared/docs/bitrix24-api.md`) over a canonical CSV data set — incoming
//! webhook and OAuth with token refresh, list methods with filters and paging,
//! `start=-1`, `batch` with `$result` links — under the portal's leaky-bucket limit, with
//! faults injected by request number: 503 and 429 refusals, slow answers, truncated
//! bodies, an expiring token, a failing subquery, and records edited or deleted between
//! pages.

pub mod portal;
pub mod query;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub use portal::Portal;
use query::Refusal;

/// What the portal answers instead of the request's own answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 503 `QUERY_LIMIT_EXCEEDED`.
    RateLimited,
    /// 429 `OPERATION_TIME_LIMIT`, reset a second later.
    TimeLimited,
    /// The answer, after a wait (longer than the client's timeout: a timeout).
    Slow(Duration),
    /// The first half of the answer's body.
    Truncated,
    /// 401 `expired_token`: the access token expires now.
    ExpiredToken,
    /// 500 `INTERNAL_SERVER_ERROR`.
    ServerError,
    /// A `batch` whose second subquery is refused for the rate (HTTP 200).
    SubqueryRateLimited,
}

/// A change to the portal's records.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Edit {
        table: String,
        id: i64,
        column: String,
        value: Option<String>,
    },
    Delete {
        table: String,
        id: i64,
    },
    MoveDeal {
        id: i64,
        stage: String,
        semantic: String,
    },
}

/// Faults and changes by request number (1-based, every call under `/rest/`).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub at: BTreeMap<u64, Fault>,
    /// Made just before request `n` is answered.
    pub changes: BTreeMap<u64, Vec<Change>>,
    /// The leaky bucket (requests drained per second, requests held); `None`: no limit.
    pub limit: Option<(f64, f64)>,
}

struct State {
    portal: Portal,
    faults: Faults,
    requests: u64,
    refused: u64,
    level: f64,
    at: Instant,
    secret: String,
    access: String,
    refresh: String,
    expired: Vec<String>,
    /// Methods called, batches as `batch:<first subquery's method>`.
    log: Vec<String>,
    /// `http://127.0.0.1:port`.
    base: String,
    /// Token pairs issued so far.
    issued: u32,
}

/// A running portal.
pub struct Emulator {
    pub base: String,
    state: Arc<Mutex<State>>,
}

const SECRET: &str = "k3y5ecret";
pub const CLIENT_ID: &str = "local.svodka";
pub const CLIENT_SECRET: &str = "app-secret";

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn time_object(tz: chrono_tz::Tz, start: f64) -> Value {
    use chrono::TimeZone;
    let date = |t: f64| {
        tz.timestamp_opt(t as i64, 0)
            .single()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
            .unwrap_or_default()
    };
    let finish = unix_now();
    json!({
        "start": start, "finish": finish, "duration": finish - start, "processing": finish - start,
        "date_start": date(start), "date_finish": date(finish),
        "operating_reset_at": start as i64 + 600, "operating": 0,
    })
}

fn refusal_body(r: &Refusal) -> Value {
    json!({"error": r.1, "error_description": r.2})
}

/// A map, or `[]` when empty (as the portal writes an empty one).
fn map_or_list(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

impl State {
    /// A method other than `batch`.
    fn method(
        &self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<(Value, Option<u64>, Option<u64>), Refusal> {
        match method {
            "user.current" => Ok((
                json!({"ID": "1", "ACTIVE": true, "NAME": "Администратор"}),
                None,
                None,
            )),
            "batch" => Err(query::refuse(
                405,
                "ERROR_BATCH_METHOD_NOT_ALLOWED",
                "Method is not allowed for batch usage",
            )),
            _ => self.portal.list(method, params),
        }
    }

    /// Resolves `$result[key][i][FIELD]` links against earlier subqueries' results; a
    /// link to nothing becomes empty.
    fn link(text: &str, results: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("$result[") {
            out.push_str(&rest[..at]);
            let mut path = Vec::new();
            let mut tail = &rest[at + "$result".len()..];
            while let Some(inner) = tail.strip_prefix('[') {
                let Some(end) = inner.find(']') else { break };
                path.push(inner[..end].to_string());
                tail = &inner[end + 1..];
            }
            let mut node = path.first().and_then(|k| results.get(k));
            for step in path.iter().skip(1) {
                node = node.and_then(|n| match n {
                    Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get(i)),
                    Value::Object(o) => o.get(step),
                    _ => None,
                });
            }
            match node {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Number(n)) => out.push_str(&n.to_string()),
                _ => {}
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }

    fn batch(&self, body: &Map<String, Value>, fault: Option<&Fault>) -> Result<Value, Refusal> {
        let cmd = match body.get("cmd") {
            Some(Value::Object(c)) => c.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
            _ => {
                return Err(query::refuse(
                    400,
                    "INVALID_ARG_VALUE",
                    "Parameter 'cmd' is required",
                ));
            }
        };
        if cmd.len() > 50 {
            return Err(query::refuse(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            ));
        }
        let halt = matches!(body.get("halt"), Some(Value::Number(n)) if n.as_i64() == Some(1))
            || body.get("halt").and_then(Value::as_str) == Some("1");
        let (mut results, mut errors, mut totals, mut nexts, mut times) =
            (Map::new(), Map::new(), Map::new(), Map::new(), Map::new());
        for (k, (key, command)) in cmd.iter().enumerate() {
            let start = unix_now();
            let command = Self::link(command.as_str().unwrap_or_default(), &results);
            let (method, q) = command.split_once('?').unwrap_or((&command, ""));
            let params = query::parse_query(q);
            let answer = if k == 1 && fault == Some(&Fault::SubqueryRateLimited) {
                Err(query::refuse(
                    503,
                    "QUERY_LIMIT_EXCEEDED",
                    "Too many requests",
                ))
            } else {
                self.method(method.trim_end_matches(".json"), &params)
            };
            match answer {
                Ok((result, total, next)) => {
                    results.insert(key.clone(), result);
                    if let Some(t) = total {
                        totals.insert(key.clone(), json!(t));
                    }
                    if let Some(n) = next {
                        nexts.insert(key.clone(), json!(n));
                    }
                }
                Err(r) => {
                    errors.insert(key.clone(), refusal_body(&r));
                    if halt {
                        break;
                    }
                }
            }
            times.insert(key.clone(), time_object(self.portal.tz, start));
        }
        Ok(json!({
            "result": map_or_list(results), "result_error": map_or_list(errors),
            "result_total": map_or_list(totals), "result_next": map_or_list(nexts),
            "result_time": map_or_list(times),
        }))
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Edit {
                    table,
                    id,
                    column,
                    value,
                } => {
                    self.portal.edit(&table, id, &column, value.as_deref());
                }
                Change::Delete { table, id } => self.portal.delete(&table, id),
                Change::MoveDeal {
                    id,
                    stage,
                    semantic,
                } => {
                    self.portal.move_deal(id, &stage, &semantic);
                }
            }
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(Shared(state): Shared<Arc<Mutex<State>>>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query = query::parse_query(uri.query().unwrap_or_default());
    if path.starts_with("/oauth/token") {
        let mut s = state.lock().expect("emulator state");
        let ok = query::param(&query, "grant_type").and_then(Value::as_str)
            == Some("refresh_token")
            && query::param(&query, "client_id").and_then(Value::as_str) == Some(CLIENT_ID)
            && query::param(&query, "client_secret").and_then(Value::as_str) == Some(CLIENT_SECRET)
            && query::param(&query, "refresh_token").and_then(Value::as_str)
                == Some(s.refresh.as_str());
        if !ok {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant", "error_description": "Invalid refresh token"}),
            );
        }
        s.issued += 1;
        let n = s.issued;
        s.access = format!("access{n}");
        s.refresh = format!("refresh{n}");
        return reply(
            StatusCode::OK,
            json!({
                "access_token": s.access, "refresh_token": s.refresh, "expires_in": 3600,
                "client_endpoint": format!("{}/rest/", s.base),
                "member_id": "svodka-emulator", "status": "L", "user_id": 1, "scope": "crm,user,department",
            }),
        );
    }
    let Some(rest) = path.strip_prefix("/rest/") else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "NOT_FOUND", "error_description": "Not found"}),
        );
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let mut params: Map<String, Value> = query.clone();
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(b)) => params.extend(b),
            _ => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "INVALID_REQUEST", "error_description": "Request body is not JSON"}),
                );
            }
        }
    }
    let started = unix_now();
    let (answer, delay, truncate) = {
        let mut s = state.lock().expect("emulator state");
        s.requests += 1;
        let n = s.requests;
        let fault = s.faults.at.get(&n).cloned();
        if let Some(changes) = s.faults.changes.remove(&n) {
            s.apply(changes);
        }
        // The leaky bucket: refused requests do not fill it.
        if let Some((rate, burst)) = s.faults.limit {
            let now = Instant::now();
            let drained = now.duration_since(s.at).as_secs_f64() * rate;
            s.level = (s.level - drained).max(0.0);
            s.at = now;
            if s.level + 1.0 > burst + 1e-9 {
                s.refused += 1;
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
                );
            }
            s.level += 1.0;
        }
        let method = match parts.as_slice() {
            [_, secret, method] => {
                if *secret != s.secret {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}),
                    );
                }
                method.to_string()
            }
            [method] => {
                let token = query::param(&params, "auth")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if fault == Some(Fault::ExpiredToken) && token == s.access {
                    let old = s.access.clone();
                    s.expired.push(old);
                }
                if s.expired.contains(&token) {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "expired_token", "error_description": "The access token provided has expired."}),
                    );
                }
                if token != s.access {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}),
                    );
                }
                method.to_string()
            }
            _ => {
                return reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found"}),
                );
            }
        };
        let method = method.trim_end_matches(".json").to_string();
        match &fault {
            Some(Fault::RateLimited) => {
                s.refused += 1;
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
                );
            }
            Some(Fault::TimeLimited) => {
                return reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": "OPERATION_TIME_LIMIT",
                    "error_description": "Method is blocked due to operation time limit.",
                    "time": {"operating_reset_at": unix_now() as i64 + 1}}),
                );
            }
            Some(Fault::ServerError) => {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}),
                );
            }
            _ => {}
        }
        let logged = if method == "batch" {
            let first = params
                .get("cmd")
                .and_then(Value::as_object)
                .and_then(|c| c.values().next())
                .and_then(Value::as_str)
                .map(|c| c.split('?').next().unwrap_or_default().to_string())
                .unwrap_or_default();
            format!("batch:{first}")
        } else {
            method.clone()
        };
        s.log.push(logged);
        let answer = if method == "batch" {
            s.batch(&params, fault.as_ref()).map(|r| (r, None, None))
        } else {
            s.method(&method, &params)
        };
        let tz = s.portal.tz;
        let answer = match answer {
            Ok((result, total, next)) => {
                let mut body = json!({"result": result, "time": time_object(tz, started)});
                if let Some(t) = total {
                    body["total"] = json!(t);
                }
                if let Some(n) = next {
                    body["next"] = json!(n);
                }
                (StatusCode::OK, body)
            }
            Err(r) => (
                StatusCode::from_u16(r.0).unwrap_or(StatusCode::BAD_REQUEST),
                refusal_body(&r),
            ),
        };
        let delay = match fault {
            Some(Fault::Slow(d)) => Some(d),
            _ => None,
        };
        (answer, delay, fault == Some(Fault::Truncated))
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let (status, body) = answer;
    let mut text = body.to_string();
    if truncate {
        let mut cut = text.len() / 2;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    (status, [("content-type", "application/json")], text).into_response()
}

/// The time zone of a data folder's `dataset.yaml` (`timezone: Europe/Moscow`).
fn folder_timezone(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("dataset.yaml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("timezone:")
                    .map(|z| z.trim().trim_matches('\'').to_string())
            })
        })
        .unwrap_or_else(|| "Europe/Moscow".to_string())
}

impl Emulator {
    /// Serves the CRM tables of a canonical CSV folder on a free loopback port.
    pub fn start(dir: &Path) -> Result<Emulator, String> {
        let portal = Portal::load(dir, &folder_timezone(dir))?;
        let state = Arc::new(Mutex::new(State {
            portal,
            faults: Faults::default(),
            requests: 0,
            refused: 0,
            level: 0.0,
            at: Instant::now(),
            secret: SECRET.to_string(),
            access: "access1".to_string(),
            refresh: "refresh1".to_string(),
            expired: vec![],
            log: vec![],
            base: String::new(),
            issued: 1,
        }));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let app = Router::new().fallback(handle).with_state(shared);
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(listener.local_addr().expect("bound")));
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx.recv().map_err(|e| e.to_string())??;
        state.lock().expect("emulator state").base = format!("http://{addr}");
        Ok(Emulator {
            base: format!("http://{addr}"),
            state,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("emulator state")
    }

    /// The incoming-webhook URL (`…/rest/1/<secret>/`).
    pub fn webhook(&self) -> String {
        format!("{}/rest/1/{SECRET}/", self.base)
    }

    /// The OAuth endpoint (`…/rest/`), the current token pair and the token URL.
    pub fn oauth(&self) -> (String, String, String, String) {
        let s = self.state();
        (
            format!("{}/rest/", self.base),
            s.access.clone(),
            s.refresh.clone(),
            format!("{}/oauth/token/", self.base),
        )
    }

    /// Faults and changes from now on; request numbers count from the next request as 1.
    pub fn set_faults(&self, mut faults: Faults) {
        let mut s = self.state();
        let base = s.requests;
        faults.at = faults.at.into_iter().map(|(n, f)| (n + base, f)).collect();
        faults.changes = faults
            .changes
            .into_iter()
            .map(|(n, c)| (n + base, c))
            .collect();
        s.faults = faults;
        s.level = 0.0;
        s.at = Instant::now();
    }

    /// Changes the records now.
    pub fn with<R>(&self, f: impl FnOnce(&mut Portal) -> R) -> R {
        f(&mut self.state().portal)
    }

    /// Requests answered or refused so far, and refusals for the rate.
    pub fn requests(&self) -> (u64, u64) {
        let s = self.state();
        (s.requests, s.refused)
    }

    /// Methods called so far (batches as `batch:<first subquery's method>`).
    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// The records as the canonical CSV files a sync should produce.
    pub fn write_csv(&self, dir: &Path) -> Result<(), String> {
        self.state().portal.write_csv(dir)
    }
}
