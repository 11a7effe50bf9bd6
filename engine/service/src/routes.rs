//! The HTTP surface: API routes (bearer token or session cookie), pages (session cookie),
//! health and metrics. Every handler resolves the caller to one client first; anything of
//! another client is a 404.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Form, FromRequestParts, MatchedPath, Path, Query as RawPairs, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::query::{Format, Query};
use crate::runs::{self, Refusal};
use crate::{Client, Service};

type Shared = Arc<Service>;
type Pairs = RawPairs<Vec<(String, String)>>;

const SESSION_COOKIE: &str = "svodka_session";

/// All routes over the shared service state.
pub fn router(service: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/reports", get(list_reports))
        .route("/api/reports/{id}", get(report_api))
        .route("/api/reports/{id}/blocks/{block}", get(block_api))
        .route("/api/refresh", post(refresh))
        .route("/api/jobs/{id}", get(job))
        .route("/", get(index))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/reports/{id}", get(report_page))
        .layer(from_fn(refuse_posts_from_other_sites))
        .layer(from_fn(security_headers))
        .layer(from_fn_with_state(service.clone(), record))
        .with_state(service)
}

/// The service is up (200) while it runs; the body says "ok" and then, a line each, the
/// clients that cannot serve and why.
async fn healthz(State(s): State<Shared>) -> String {
    let mut out = String::from("ok\n");
    for p in s.problems() {
        out.push_str(&p.replace('\n', " "));
        out.push('\n');
    }
    out
}

/// What a browser may do with any answer: pages run only their own inline script and
/// style and talk only to this service; nothing is framed, sniffed, sent as a referrer or
/// kept in a cache (answers hold a client's figures).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ] {
        headers.insert(name, value);
    }
    response
}

async fn record(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    crate::count(
        &s.metrics,
        &route,
        response.status().as_u16(),
        started.elapsed().as_micros() as u64,
    );
    response
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Why a request is answered without what it asked for.
pub(crate) enum ApiError {
    /// No credentials that open a client, on the API: 401 asking for a bearer token.
    Unauthorized,
    /// No session, on a page: to the login form.
    Login,
    /// The caller's client cannot serve (its files failed to load): 503 with why.
    Unavailable { client: String, problem: String },
    /// Nothing of that name for this caller (another client's is never told apart): 404.
    NotFound,
    /// A query parameter that does not check: 400 naming it.
    BadQuery { name: String, message: String },
    /// A run or its rendering refused: its status, words and `Retry-After`.
    Refused(Refusal),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::Refused(r)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized => {
                let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            ApiError::Login => Redirect::to("/login").into_response(),
            ApiError::Unavailable { client, problem } => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("client {client} is unavailable: {problem}; fix it and POST /api/refresh"),
            ),
            ApiError::NotFound => error(StatusCode::NOT_FOUND, "not found"),
            ApiError::BadQuery { name, message } => {
                error(StatusCode::BAD_REQUEST, format!("{name}: {message}"))
            }
            ApiError::Refused(r) => r.into_response(),
        }
    }
}

/// The caller's client: the open demo client, a bearer token, or a session cookie.
fn caller(s: &Service, headers: &HeaderMap) -> Option<Arc<Client>> {
    if let Some(c) = s.open_client() {
        return Some(c);
    }
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
    {
        return s.client_of_token(token);
    }
    s.session_client(session_id(headers)?)
}

/// The session id in the request's cookie.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| crate::auth::cookie(c, SESSION_COOKIE))
}

/// `client`, when it can serve.
fn serving(client: Arc<Client>) -> Result<Arc<Client>, ApiError> {
    match client.problem() {
        Some(problem) => Err(ApiError::Unavailable {
            client: client.id.clone(),
            problem,
        }),
        None => Ok(client),
    }
}

/// The caller's client, able to serve: what an API route answers for.
struct ApiCaller(Arc<Client>);

/// The caller's client whether or not it can serve (a refresh is what repairs it).
struct AnyCaller(Arc<Client>);

/// The caller's client, able to serve, on a page (no session: the login form).
struct PageCaller(Arc<Client>);

impl FromRequestParts<Shared> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let client = caller(s, &parts.headers).ok_or(ApiError::Unauthorized)?;
        serving(client).map(ApiCaller)
    }
}

impl FromRequestParts<Shared> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        caller(s, &parts.headers)
            .map(AnyCaller)
            .ok_or(ApiError::Unauthorized)
    }
}

impl FromRequestParts<Shared> for PageCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let client = caller(s, &parts.headers).ok_or(ApiError::Login)?;
        serving(client).map(PageCaller)
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let m = &s.metrics;
    let mut out = String::from(
        "# HELP svodka_requests_total HTTP requests by route and status.\n# TYPE svodka_requests_total counter\n",
    );
    let mut rows: Vec<_> = m
        .requests
        .lock()
        .expect("metrics")
        .clone()
        .into_iter()
        .collect();
    rows.sort();
    for ((route, status), n) in rows {
        let _ = writeln!(
            out,
            "svodka_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            route.replace('"', "'")
        );
    }
    let mut cached = (0usize, 0usize);
    for c in s.clients.values() {
        let (n, b) = c.cache.lock().expect("cache").usage();
        let (pn, pb) = c.pages.lock().expect("pages").usage();
        cached = (cached.0 + n + pn, cached.1 + b + pb);
    }
    let _ = writeln!(
        out,
        "# HELP svodka_cache_entries Report results and rendered pages held in the caches.\n# TYPE svodka_cache_entries gauge\nsvodka_cache_entries {}\n# HELP svodka_cache_bytes Bytes held in the caches (results' Arrow buffers, pages).\n# TYPE svodka_cache_bytes gauge\nsvodka_cache_bytes {}",
        cached.0, cached.1
    );
    for (name, help, v) in [
        (
            "svodka_request_seconds_sum",
            "Time spent answering requests.",
            m.duration_micros.load(Relaxed) as f64 / 1e6,
        ),
        (
            "svodka_cache_hits_total",
            "Report results served from the cache.",
            m.cache_hits.load(Relaxed) as f64,
        ),
        (
            "svodka_cache_misses_total",
            "Report results computed.",
            m.cache_misses.load(Relaxed) as f64,
        ),
        (
            "svodka_report_runs_total",
            "Report runs started.",
            m.runs.load(Relaxed) as f64,
        ),
        (
            "svodka_rejected_heavy_total",
            "Requests stopped by the time or memory limit (waiting, running or rendering).",
            m.rejected_heavy.load(Relaxed) as f64,
        ),
        (
            "svodka_rejected_busy_total",
            "Requests refused with 429: the run queue was full.",
            m.rejected_busy.load(Relaxed) as f64,
        ),
        (
            "svodka_coalesced_total",
            "Requests answered by an identical request's run.",
            m.coalesced.load(Relaxed) as f64,
        ),
        (
            "svodka_run_seconds_sum",
            "Time spent in report runs.",
            m.run_micros.load(Relaxed) as f64 / 1e6,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn list_reports(ApiCaller(client): ApiCaller) -> Json<serde_json::Value> {
    let catalog = client.catalog();
    let reports: Vec<_> = catalog
        .reports
        .iter()
        .map(|(id, r)| {
            let blocks: Vec<_> = r
                .spec
                .blocks
                .iter()
                .map(|b| json!({"id": b.id, "title": b.title}))
                .collect();
            json!({"id": id, "title": r.spec.title, "blocks": blocks})
        })
        .collect();
    Json(json!({"client": client.id, "reports": reports}))
}

async fn report_api(
    State(s): State<Shared>,
    ApiCaller(client): ApiCaller,
    Path(id): Path<String>,
    RawPairs(pairs): Pairs,
) -> Result<Response, ApiError> {
    let ask = Ask::new(&client, id, None, &pairs, Format::Json, false)?;
    answer(&s, &client, ask).await
}

async fn block_api(
    State(s): State<Shared>,
    ApiCaller(client): ApiCaller,
    Path((id, block)): Path<(String, String)>,
    RawPairs(pairs): Pairs,
) -> Result<Response, ApiError> {
    let ask = Ask::new(&client, id, Some(block), &pairs, Format::Json, false)?;
    answer(&s, &client, ask).await
}

async fn report_page(
    State(s): State<Shared>,
    PageCaller(client): PageCaller,
    Path(id): Path<String>,
    RawPairs(pairs): Pairs,
) -> Result<Response, ApiError> {
    let ask = Ask::new(&client, id, None, &pairs, Format::Html, true)?;
    answer(&s, &client, ask).await
}

/// What a report request asks of its client: which result (by its cache key) and how to
/// write it.
struct Ask {
    report: String,
    block: Option<String>,
    query: Query,
    /// The query in its canonical order, as cache keys and live pages' links hold it.
    canonical: String,
    /// The result's cache key: report, block, canonical query, data version.
    key: String,
    data: Arc<crate::clients::Data>,
    format: Format,
    /// A live page (it calls back for refreshes).
    live: bool,
}

impl Ask {
    /// Checks the report's name and the query; `default` is the format when the query
    /// names none.
    fn new(
        client: &Client,
        report: String,
        block: Option<String>,
        pairs: &[(String, String)],
        default: Format,
        live: bool,
    ) -> Result<Ask, ApiError> {
        if !client.catalog().reports.contains_key(&report) {
            return Err(ApiError::NotFound);
        }
        let query = Query::parse(pairs).map_err(|e| ApiError::BadQuery {
            name: e.name,
            message: e.message,
        })?;
        let data = client.data();
        let canonical = query.canonical();
        let key = format!(
            "{report}|{}|{canonical}|v{}",
            block.as_deref().unwrap_or(""),
            data.version
        );
        Ok(Ask {
            format: query.format.unwrap_or(default),
            report,
            block,
            query,
            canonical,
            key,
            data,
            live,
        })
    }
}

/// Runs (or finds in the cache) the asked report and writes it in the asked format.
async fn answer(s: &Service, client: &Client, ask: Ask) -> Result<Response, ApiError> {
    let deadline = Instant::now() + s.limits.timeout;
    let result = report_result(s, client, &ask, deadline).await?;
    if ask.format == Format::Json {
        // Written as it is serialized, from the cached batches: fast without a copy.
        let memory = s.limits.memory;
        let body = runs::render(s, deadline, move || runs::json_within(&result, memory)).await?;
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let bytes = rendered(s, client, &ask, result, deadline).await?;
    if ask.format == Format::Html {
        let html = "text/html; charset=utf-8";
        return Ok(([(header::CONTENT_TYPE, html)], bytes).into_response());
    }
    let name = match &ask.block {
        Some(b) => format!("{}-{b}.xlsx", ask.report),
        None => format!("{}.xlsx", ask.report),
    };
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, xlsx.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The asked result: from the client's cache, or run (identical requests share one run).
async fn report_result(
    s: &Service,
    client: &Client,
    ask: &Ask,
    deadline: Instant,
) -> Result<Arc<svodka_report::ReportResult>, ApiError> {
    if let Some(r) = client.cache.lock().expect("cache").get(&ask.key) {
        s.metrics
            .cache_hits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(r);
    }
    let engine = client.engine.clone().unwrap_or_else(|| s.engine.clone());
    let request = || {
        let memory = Some(s.limits.memory);
        let block = ask.block.clone();
        ask.query
            .request(client, &ask.report, block, memory, s.clock, engine)
    };
    let catalog = client.catalog();
    let from = runs::Sources {
        client,
        catalog: &catalog,
        data: &ask.data,
    };
    Ok(runs::shared_run(s, from, &ask.key, deadline, request).await?)
}

/// The result as a page or a workbook: rendered once per result, locale and liveness,
/// since it takes longer to render than to send.
async fn rendered(
    s: &Service,
    client: &Client,
    ask: &Ask,
    result: Arc<svodka_report::ReportResult>,
    deadline: Instant,
) -> Result<axum::body::Bytes, ApiError> {
    let locale = ask
        .query
        .locale
        .or_else(|| client.config.locale.as_deref().and_then(|l| l.parse().ok()))
        .unwrap_or_default();
    let page_key = format!("{}|{:?}|{locale:?}|{}", ask.key, ask.format, ask.live);
    if let Some(bytes) = client.pages.lock().expect("pages").get(&page_key) {
        return Ok(bytes);
    }
    runs::fits_to_render(&result, s.limits.memory)?;
    let options = svodka_render::RenderOptions {
        locale,
        data_version: ask.data.info.as_ref().map(svodka_sources::data_version),
        live: ask.live.then(|| svodka_render::LivePage {
            query: ask.canonical.clone(),
            export: format!("/api/reports/{}", ask.report),
            block_export: format!("/api/reports/{}/blocks/", ask.report),
            refresh: "/api/refresh".into(),
            jobs: "/api/jobs/".into(),
        }),
        generated_at: s.clock.now(),
        ..Default::default()
    };
    let format = ask.format;
    let render = move || {
        let rendered = match format {
            Format::Html => svodka_render::html::report_html(&result, &options)
                .map(|h| axum::body::Bytes::from(h.into_bytes())),
            _ => svodka_render::xlsx::report_xlsx(&result, &options).map(Into::into),
        };
        rendered.map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    };
    let bytes = runs::render(s, deadline, render).await?;
    let size = bytes.len();
    client
        .pages
        .lock()
        .expect("pages")
        .put(page_key, bytes.clone(), size);
    Ok(bytes)
}

/// A browser's POST from another site carries that site's `Origin`: refused, since the
/// session cookie would otherwise act for it. No `Origin` (an API client): allowed.
fn from_another_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// Every POST (a refresh, a login) must come from this service's own pages or from an API
/// client: one from another site gets 403 before any handler runs.
async fn refuse_posts_from_other_sites(req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST && from_another_site(req.headers()) {
        return error(
            StatusCode::FORBIDDEN,
            "a request from another site is refused (its Origin is not this service)",
        );
    }
    next.run(req).await
}

async fn refresh(State(s): State<Shared>, AnyCaller(client): AnyCaller) -> impl IntoResponse {
    let id = s.start_refresh(client);
    (StatusCode::ACCEPTED, Json(json!({"job": id})))
}

async fn job(
    State(s): State<Shared>,
    AnyCaller(client): AnyCaller,
    Path(id): Path<String>,
) -> Result<Json<crate::Job>, ApiError> {
    let job = s.jobs.lock().expect("jobs").get(&id).cloned();
    match job {
        Some(j) if j.client == client.id => Ok(Json(j)),
        _ => Err(ApiError::NotFound),
    }
}

fn escape(s: &str) -> String {
    svodka_render::chart::xml_escape(s)
}

const PAGE_STYLE: &str = "body{font:15px system-ui,sans-serif;margin:40px auto;max-width:720px;color:#1d2433}a{color:#2f6fde}li{margin:6px 0}input{font:inherit;padding:6px;width:420px}button{font:inherit;padding:6px 14px}";

async fn index(PageCaller(client): PageCaller) -> Html<String> {
    let catalog = client.catalog();
    let mut items = String::new();
    for (id, r) in &catalog.reports {
        items.push_str(&format!(
            "<li><a href=\"/reports/{}\">{}</a></li>",
            escape(id),
            escape(&r.spec.title)
        ));
    }
    Html(format!(
        "<!DOCTYPE html><html lang=\"ru\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>Svodka — {name}</title><style>{PAGE_STYLE}</style></head><body><h1>{name}</h1><ul>{items}</ul><form method=\"post\" action=\"/logout\"><button type=\"submit\">Выйти</button></form></body></html>",
        name = escape(&client.config.name)
    ))
}

async fn login_page() -> Response {
    Html(format!(
        "<!DOCTYPE html><html lang=\"ru\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>Svodka — вход</title><style>{PAGE_STYLE}</style></head><body><h1>Вход</h1><form method=\"post\" action=\"/login\"><p><input type=\"password\" name=\"token\" placeholder=\"Токен доступа\" autofocus required></p><button type=\"submit\">Войти</button></form></body></html>"
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(client) = s.client_of_token(&form.token) else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                "<!DOCTYPE html><p>Неверный токен. <a href=\"/login\">Ещё раз</a></p>".to_string(),
            ),
        )
            .into_response();
    };
    let session = s.start_session(&client.id);
    let mut r = Redirect::to("/").into_response();
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}"
        ))
        .expect("an ASCII cookie"),
    );
    r
}

/// Ends the caller's page session (if any) and sends the browser to the login page.
async fn logout(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        s.end_session(id);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        ))
        .expect("an ASCII cookie"),
    );
    r
}

/// The request reached a proxy over HTTPS (`X-Forwarded-Proto: https` or `Forwarded:
/// proto=https`): the session cookie is then sent over HTTPS only.
fn behind_tls(headers: &HeaderMap) -> bool {
    let is = |name: &str, test: &dyn Fn(&str) -> bool| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(test)
    };
    is("x-forwarded-proto", &|v| {
        v.split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }) || is("forwarded", &|v| {
        v.split([';', ','])
            .any(|kv| kv.trim().eq_ignore_ascii_case("proto=https"))
    })
}
