//! `svodka serve` through its router (`Router::oneshot`) and over a real socket: tokens,
//! client isolation on every endpoint, formats, parameter checks, cache, refresh jobs,
//! limits, login, and a live page re-filtered by a click in Chromium.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use svodka_service::{Limits, Service, auth::hash_token};
use tower::ServiceExt;

use crate::browser::Browser;
use crate::util::{fixture, write};

const PERIOD: &str = "from=2024-04-01&to=2024-04-30";

/// Two clients on the fixture data: `acme` (token `tok-a`) and `beta` (token `tok-b`,
/// with a report of its own).
fn config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("forgotten");
    for (name, token) in [("acme", "tok-a"), ("beta", "tok-b")] {
        let client = dir.path().join("clients").join(name);
        std::fs::create_dir_all(&client).unwrap();
        write(
            &client,
            "client.yaml",
            &format!(
                "name: {name}\ndata: {{ folder: {} }}\nsettings:\n  forgotten: {{ deal_forgotten_days: 21 }}\ntokens: [{}]\n",
                data.display(),
                hash_token(token)
            ),
        );
    }
    write(
        &dir.path().join("clients/beta/reports"),
        "beta_only.yaml",
        "report: beta_only\ntitle: Только для beta\nblocks:\n  - id: n\n    title: N\n    from: deals\n    measures:\n      n: count(*)\n",
    );
    dir
}

fn service(dir: &Path, limits: Limits) -> Arc<Service> {
    let mut s = Service::load(dir, limits).unwrap();
    s.clock = crate::util::clock();
    Arc::new(s)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn call(s: &Arc<Service>, method: &str, uri: &str, token: Option<&str>) -> Reply {
    call_with(s, method, uri, token, None, Body::empty(), None)
}

fn call_with(
    s: &Arc<Service>,
    method: &str,
    uri: &str,
    token: Option<&str>,
    cookie: Option<&str>,
    body: Body,
    content_type: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let router = svodka_service::router(s.clone());
    rt().block_on(async move {
        let r = router.oneshot(req.body(body).unwrap()).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    })
}

#[test]
fn no_token_no_data() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let r = call(&s, "GET", "/api/reports", None);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(
        call(&s, "GET", "/api/reports", Some("wrong")).status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&s, "GET", &format!("/api/reports/forgotten?{PERIOD}"), None).status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&s, "POST", "/api/refresh", None).status,
        StatusCode::UNAUTHORIZED
    );
    // Pages send the browser to the login form.
    let r = call(&s, "GET", "/reports/forgotten", None);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/login");
    assert_eq!(call(&s, "GET", "/healthz", None).text(), "ok\n");
}

#[test]
fn a_report_in_every_format() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-a");
    let r = call(&s, "GET", &format!("/api/reports/forgotten?{PERIOD}"), tok);
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["report"], "forgotten");
    // The client's setting applies: deals are forgotten after 21 days, not 7.
    assert_eq!(j["settings"]["deal_forgotten_days"], 21);
    let totals = &j["blocks"][0]["rows"][0];
    assert_eq!(
        totals["forgotten_deals"], 2,
        "deals 5 (29 days) and 7 (28 days)"
    );
    // A query setting overrides the client's.
    let j = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}&set.deal_forgotten_days=7"),
        tok,
    )
    .json();
    assert_eq!(j["blocks"][0]["rows"][0]["forgotten_deals"], 5);

    let html = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}&format=html"),
        tok,
    );
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().contains("<h1>Незабудка</h1>"));

    let x = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}&format=xlsx"),
        tok,
    );
    assert_eq!(x.status, StatusCode::OK);
    assert_eq!(
        x.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"forgotten.xlsx\""
    );
    use calamine::Reader;
    let book = calamine::Xlsx::new(std::io::Cursor::new(x.body)).unwrap();
    assert_eq!(book.sheet_names()[0], "Параметры");

    let b = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten/blocks/by_department?{PERIOD}"),
        tok,
    )
    .json();
    assert_eq!(b["blocks"].as_array().unwrap().len(), 1);
    assert_eq!(b["blocks"][0]["id"], "by_department");
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("/api/reports/forgotten/blocks/nope?{PERIOD}"),
            tok
        )
        .status,
        StatusCode::NOT_FOUND
    );
    // A source filter takes a source code.
    let j = call(
        &s,
        "GET",
        &format!("/api/reports/marketing?{PERIOD}&source=WEB"),
        tok,
    )
    .json();
    assert_eq!(j["params"]["source"], json!(["WEB"]));
    let list = call(&s, "GET", "/api/reports", tok).json();
    assert_eq!(list["reports"].as_array().unwrap().len(), 6);
    let spec: Value = call(&s, "GET", "/api/openapi.json", None).json();
    assert_eq!(spec["openapi"], "3.0.3");
    assert!(spec["paths"]["/api/reports/{id}"]["get"].is_object());
}

#[test]
fn a_client_sees_nothing_of_another() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let (a, b) = (Some("tok-a"), Some("tok-b"));
    assert_eq!(
        call(&s, "GET", "/api/reports/beta_only", b).status,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, "GET", "/api/reports/beta_only", a).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&s, "GET", "/api/reports/beta_only/blocks/n", a).status,
        StatusCode::NOT_FOUND
    );
    let ids = |t| -> Vec<String> {
        call(&s, "GET", "/api/reports", t).json()["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ids(b).contains(&"beta_only".to_string()));
    assert!(!ids(a).contains(&"beta_only".to_string()));
    // A job of beta is not found by acme.
    let job = call(&s, "POST", "/api/refresh", b).json()["job"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        call(&s, "GET", &format!("/api/jobs/{job}"), a).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&s, "GET", &format!("/api/jobs/{job}"), b).status,
        StatusCode::OK
    );
    // A session of acme does not open beta's report page.
    let cookie = login(&s, "tok-a");
    let r = call_with(
        &s,
        "GET",
        "/reports/beta_only",
        None,
        Some(&cookie),
        Body::empty(),
        None,
    );
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

fn login(s: &Arc<Service>, token: &str) -> String {
    let r = call_with(
        s,
        "POST",
        "/login",
        None,
        None,
        Body::from(format!("token={token}")),
        Some("application/x-www-form-urlencoded"),
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

#[test]
fn login_then_live_pages() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let bad = call_with(
        &s,
        "POST",
        "/login",
        None,
        None,
        Body::from("token=nope"),
        Some("application/x-www-form-urlencoded"),
    );
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let cookie = login(&s, "tok-a");
    let index = call_with(&s, "GET", "/", None, Some(&cookie), Body::empty(), None);
    assert!(index.text().contains("href=\"/reports/forgotten\""));
    let page = call_with(
        &s,
        "GET",
        &format!("/reports/forgotten?{PERIOD}&department=1"),
        None,
        Some(&cookie),
        Body::empty(),
        None,
    );
    // Attribute values as the browser reads them.
    let html = page.text().replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(html.contains("data-live=\"1\""));
    // Export keeps the query; the applied filter has a link that clears it.
    assert!(
        html.contains(
            "href=\"/api/reports/forgotten?from=2024-04-01&to=2024-04-30&department=1&format=xlsx\""
        ),
        "export link"
    );
    assert!(
        html.contains("href=\"?from=2024-04-01&to=2024-04-30\""),
        "clear link"
    );
    // The session cookie also opens the API (the page's export and refresh buttons).
    let r = call_with(
        &s,
        "GET",
        "/api/reports",
        None,
        Some(&cookie),
        Body::empty(),
        None,
    );
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn bad_parameters_are_refused_with_their_names() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-a");
    for (query, expected) in [
        ("from=2024-13-01", "from: expected a date YYYY-MM-DD"),
        ("from=1900-01-01&to=2024-01-01", "is longer than 25 years"),
        ("employee=1%20or%201%3D1", "employee: expected numeric ids"),
        (
            "employee=1';drop%20table%20deals;--",
            "employee: expected numeric ids",
        ),
        ("format=pdf", "format: expected json, html or xlsx"),
        ("set.deal_forgotten_days=-5", "deal_forgotten_days"),
        ("set.nope=1", "nope"),
        (
            "set.deal_forgotten_days=5&set.deal_forgotten_days=60",
            "set.deal_forgotten_days: given more than once",
        ),
        ("param.x=1&param.x=2", "param.x: given more than once"),
        ("x=1", "x: unknown parameter"),
    ] {
        let r = call(&s, "GET", &format!("/api/reports/forgotten?{query}"), tok);
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(expected), "{query}: {msg}");
    }
    for path in [
        "/api/reports/..%2F..%2Fetc%2Fpasswd",
        "/api/reports/%2e%2e",
        "/api/reports/forgotten%00",
    ] {
        assert_eq!(
            call(&s, "GET", path, tok).status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[test]
fn results_are_cached_until_a_refresh_and_a_broken_definition_keeps_the_last_good() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-b");
    let uri = format!("/api/reports/beta_only?{PERIOD}");
    let first = call(&s, "GET", &uri, tok).json();
    assert_eq!(first["blocks"][0]["rows"][0]["n"], 9);
    call(&s, "GET", &uri, tok);
    let hits = || {
        s.metrics
            .cache_hits
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(hits(), 1);
    // A refresh reloads and clears the cache: the next request runs again.
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["data_version"], 2);
    call(&s, "GET", &uri, tok);
    assert_eq!(hits(), 1);
    // The report file turns invalid: the refresh fails and the last good one serves.
    write(
        &dir.path().join("clients/beta/reports"),
        "beta_only.yaml",
        "report: beta_only\ntitle: X\nblocks:\n  - id: n\n    title: N\n    from: deals\n    measures:\n      n: count(nosuchcolumn)\n",
    );
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "failed");
    assert!(
        job["message"].as_str().unwrap().contains("nosuchcolumn"),
        "{job}"
    );
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("previous version keeps serving")
    );
    let again = call(&s, "GET", &uri, tok);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["blocks"][0]["rows"][0]["n"], 9);
    let metrics = call(&s, "GET", "/metrics", None).text();
    assert!(metrics.contains("svodka_requests_total{route=\"/api/reports/{id}\",status=\"200\"}"));
    // The request after the failed refresh was served from the cache.
    assert!(metrics.contains("svodka_cache_hits_total 2"));
}

/// Every answer tells the browser what it may do: no framing, no sniffing, no referrer,
/// no caching of a client's figures, and pages that run only their own inline code.
#[test]
fn every_answer_carries_the_security_headers() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    for (uri, token) in [
        (format!("/api/reports/beta_only?{PERIOD}"), Some("tok-b")),
        (
            format!("/api/reports/beta_only?{PERIOD}&format=html"),
            Some("tok-b"),
        ),
        ("/login".to_string(), None),
        ("/api/reports".to_string(), None),
        ("/nowhere".to_string(), None),
    ] {
        let r = call(&s, "GET", &uri, token);
        let h = |name: header::HeaderName| {
            r.headers
                .get(&name)
                .unwrap_or_else(|| panic!("{uri}: no {name}"))
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(h(header::X_FRAME_OPTIONS), "DENY", "{uri}");
        assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{uri}");
        assert_eq!(h(header::REFERRER_POLICY), "no-referrer", "{uri}");
        assert_eq!(h(header::CACHE_CONTROL), "no-store", "{uri}");
        let csp = h(header::CONTENT_SECURITY_POLICY);
        assert!(csp.starts_with("default-src 'none';"), "{uri}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{uri}: {csp}");
    }
}

/// A page's session cookie must not act for another site: a POST whose `Origin` is not
/// this service is refused; the service's own pages and API clients (no `Origin`) pass.
#[test]
fn a_refresh_from_another_site_is_refused() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let post = |origin: Option<&str>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/refresh")
            .header(header::HOST, "svodka.example:8080")
            .header(header::AUTHORIZATION, "Bearer tok-b");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        let router = svodka_service::router(s.clone());
        rt().block_on(async move {
            router
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        })
    };
    for foreign in ["https://evil.example", "http://svodka.example:9090", "null"] {
        assert_eq!(post(Some(foreign)), StatusCode::FORBIDDEN, "{foreign}");
    }
    assert_eq!(
        post(Some("http://svodka.example:8080")),
        StatusCode::ACCEPTED
    );
    assert_eq!(post(None), StatusCode::ACCEPTED);
}

/// One refresh per client at a time (a second request gets the running job, so
/// concurrent refreshes neither pile up threads nor race for a data version); finished jobs
/// and idle sessions are forgotten.
#[test]
fn refreshes_coalesce_and_old_jobs_and_idle_sessions_expire() {
    use std::time::Instant;
    use svodka_service::{JOB_KEPT, JOBS_KEPT, Job, SESSION_IDLE, SESSIONS_PER_CLIENT, Session};
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let beta = s.clients["beta"].clone();
    let acme = s.clients["acme"].clone();
    let long_ago = |d: Duration| {
        Instant::now()
            .checked_sub(d + Duration::from_secs(1))
            .unwrap()
    };
    s.jobs.lock().unwrap().insert(
        "old".into(),
        Job {
            id: "old".into(),
            client: "beta".into(),
            state: "done",
            progress: 100,
            message: "refreshed".into(),
            data_version: Some(2),
            finished: Some(long_ago(JOB_KEPT)),
        },
    );
    let (first, second, other) = rt().block_on(async {
        (
            s.start_refresh(beta.clone()),
            s.start_refresh(beta.clone()),
            s.start_refresh(acme.clone()),
        )
    });
    assert_eq!(first, second, "the running refresh is shared");
    assert_ne!(first, other, "another client's refresh is its own");
    assert!(!s.jobs.lock().unwrap().contains_key("old"));
    // Both finish, and the data version moved by one.
    for _ in 0..600 {
        if s.jobs
            .lock()
            .unwrap()
            .values()
            .all(|j| j.state != "running")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = s.jobs.lock().unwrap()[&first].clone();
    assert_eq!((job.state, job.data_version), ("done", Some(2)));
    assert_eq!(beta.data().version, 2);
    // A session idle for longer than SESSION_IDLE no longer opens pages.
    let live = s.start_session("beta");
    assert_eq!(s.session_client(&live).unwrap().id, "beta");
    s.sessions.lock().unwrap().insert(
        "idle".into(),
        Session {
            client: "beta".into(),
            last_used: long_ago(SESSION_IDLE),
        },
    );
    assert!(s.session_client("idle").is_none());
    assert!(!s.sessions.lock().unwrap().contains_key("idle"));
    let r = call_with(
        &s,
        "GET",
        "/reports/beta_only",
        None,
        Some("svodka_session=idle"),
        Body::empty(),
        None,
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "to the login form");

    // Logins in a loop hold at most SESSIONS_PER_CLIENT sessions of a client: the one
    // used longest ago ends first; another client's are untouched.
    let acme_session = s.start_session("acme");
    let oldest = s.start_session("beta");
    s.sessions
        .lock()
        .unwrap()
        .get_mut(&oldest)
        .unwrap()
        .last_used = Instant::now().checked_sub(Duration::from_secs(60)).unwrap();
    for _ in 0..SESSIONS_PER_CLIENT {
        s.start_session("beta");
    }
    let count = |client: &str| {
        let sessions = s.sessions.lock().unwrap();
        sessions.values().filter(|x| x.client == client).count()
    };
    assert_eq!(count("beta"), SESSIONS_PER_CLIENT);
    assert!(s.session_client(&oldest).is_none(), "the oldest ended");
    assert_eq!(s.session_client(&acme_session).unwrap().id, "acme");

    // Finished jobs: at most JOBS_KEPT of a client, the oldest forgotten first.
    for n in 0..JOBS_KEPT + 5 {
        s.jobs.lock().unwrap().insert(
            format!("done{n}"),
            Job {
                id: format!("done{n}"),
                client: "beta".into(),
                state: "done",
                progress: 100,
                message: "refreshed".into(),
                data_version: Some(2),
                finished: Some(Instant::now() - Duration::from_secs(600 - n as u64)),
            },
        );
    }
    let newest = rt().block_on(async { s.start_refresh(beta.clone()) });
    let jobs = s.jobs.lock().unwrap();
    let beta_jobs = jobs.values().filter(|j| j.client == "beta").count();
    assert_eq!(
        beta_jobs, JOBS_KEPT,
        "{JOBS_KEPT} kept, the new one among them"
    );
    assert!(jobs.contains_key(&newest));
    assert!(
        jobs.contains_key(&format!("done{}", JOBS_KEPT + 4)),
        "the latest stays"
    );
    assert!(!jobs.contains_key("done0"), "the oldest goes");
}

/// One client's bad data or definitions never stop another from starting or serving:
/// the bad one answers 503 with the place, `/healthz` names it, and a refresh after the
/// fix brings it in. A client.yaml that cannot be read leaves only that client out.
#[test]
fn one_clients_bad_files_do_not_stop_the_others() {
    let dir = config();
    // beta gets its own copy of the data, with a bad timestamp in deals.csv.
    let data = dir.path().join("beta-data");
    std::fs::create_dir_all(&data).unwrap();
    for entry in std::fs::read_dir(fixture("forgotten")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let deals = data.join("deals.csv");
    let good = std::fs::read_to_string(&deals).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let at = header.iter().position(|c| *c == "created_at").unwrap();
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    cells[at] = "31.02.2024".into();
    lines[1] = cells.join(",");
    std::fs::write(&deals, lines.join("\n") + "\n").unwrap();
    let yaml = dir.path().join("clients/beta/client.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let folder = fixture("forgotten").display().to_string();
    std::fs::write(&yaml, text.replace(&folder, &data.display().to_string())).unwrap();
    // A third client whose client.yaml is broken.
    write(
        &dir.path().join("clients/gamma"),
        "client.yaml",
        "name: [unclosed\n",
    );

    let s = service(dir.path(), Limits::default());
    let acme = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}"),
        Some("tok-a"),
    );
    assert_eq!(acme.status, StatusCode::OK);
    let beta = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}"),
        Some("tok-b"),
    );
    assert_eq!(beta.status, StatusCode::SERVICE_UNAVAILABLE);
    let msg = beta.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("client beta is unavailable"), "{msg}");
    assert!(
        msg.contains("deals.csv:2") && msg.contains("created_at"),
        "{msg}"
    );
    let health = call(&s, "GET", "/healthz", None);
    assert_eq!(health.status, StatusCode::OK);
    let text = health.text();
    assert!(text.starts_with("ok\n"), "{text}");
    assert!(
        text.contains("client beta unavailable") && text.contains("deals.csv:2"),
        "{text}"
    );
    assert!(
        text.contains("client left out") && text.contains("gamma"),
        "{text}"
    );
    // Fixed and refreshed, beta serves.
    std::fs::write(&deals, good).unwrap();
    let job = refresh(&s, Some("tok-b"));
    assert_eq!(job["state"], "done", "{job}");
    let beta = call(
        &s,
        "GET",
        &format!("/api/reports/forgotten?{PERIOD}"),
        Some("tok-b"),
    );
    assert_eq!(beta.status, StatusCode::OK);
    assert!(!call(&s, "GET", "/healthz", None).text().contains("beta"));
}

/// `open: true` (no token) is served on loopback only: on any other address the
/// service refuses to start and names the client.
#[test]
fn a_client_without_tokens_is_never_served_beyond_loopback() {
    let dir = config();
    let yaml = dir.path().join("clients/beta/client.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}open: true\n")).unwrap();
    let s = Service::load(dir.path(), Limits::default()).unwrap();
    for ok in ["127.0.0.1:8080", "[::1]:8080"] {
        assert!(s.check_listen(ok.parse().unwrap()).is_ok(), "{ok}");
    }
    for exposed in ["0.0.0.0:8080", "192.168.1.5:80", "[::]:8080"] {
        let e = s
            .check_listen(exposed.parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("client beta needs no token"), "{e}");
        assert!(e.contains("loopback"), "{e}");
    }
    // Without `open`, any address will do: every request needs a token.
    let closed = Service::load(config().path(), Limits::default()).unwrap();
    assert!(closed.check_listen("0.0.0.0:8080".parse().unwrap()).is_ok());
    // Through the command line, the demo (an open client) the same.
    let out = crate::util::svodka_command()
        .args(["serve", "--demo", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client demo needs no token"), "{err}");
}

/// A page or workbook is rendered once per cached result and locale (rendering took
/// longer than answering from the cache); a refresh drops them with the results.
#[test]
fn pages_and_workbooks_are_rendered_once_per_result_and_dropped_by_a_refresh() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-b");
    let held = || {
        let metrics = call(&s, "GET", "/metrics", None).text();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("svodka_cache_entries "))
            .expect("cache gauge")
            .to_string();
        line["svodka_cache_entries ".len()..]
            .parse::<usize>()
            .unwrap()
    };
    let page = format!("/api/reports/beta_only?{PERIOD}&format=html");
    let first = call(&s, "GET", &page, tok);
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(held(), 2, "the result and its page");
    let again = call(&s, "GET", &page, tok);
    assert_eq!(again.body, first.body);
    assert_eq!(held(), 2);
    // Another locale: the same result, another page.
    let english = call(&s, "GET", &format!("{page}&locale=en"), tok);
    assert_ne!(english.body, first.body);
    assert_eq!(held(), 3);
    let book = format!("/api/reports/beta_only?{PERIOD}&format=xlsx");
    let xlsx = call(&s, "GET", &book, tok);
    assert_eq!(
        xlsx.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"beta_only.xlsx\""
    );
    assert_eq!(call(&s, "GET", &book, tok).body, xlsx.body);
    assert_eq!(held(), 4);
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(held(), 0);
    assert_eq!(call(&s, "GET", &page, tok).status, StatusCode::OK);
    assert_eq!(held(), 2);
}

/// One client's report of ten thousand chained terms used to overflow the stack on
/// refresh and abort the process for every client: now the refresh fails with its place
/// and the previous definitions keep serving.
#[test]
fn a_report_of_ten_thousand_terms_fails_its_refresh_and_the_service_goes_on() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-b");
    let uri = format!("/api/reports/beta_only?{PERIOD}");
    assert_eq!(
        call(&s, "GET", &uri, tok).json()["blocks"][0]["rows"][0]["n"],
        9
    );
    let chain = vec!["amount"; 10_000].join(" + ");
    write(
        &dir.path().join("clients/beta/reports"),
        "beta_only.yaml",
        &format!(
            "report: beta_only\ntitle: X\nblocks:\n  - id: n\n    title: N\n    from: deals\n    measures:\n      n: \"sum({chain})\"\n"
        ),
    );
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains("beta_only.yaml:8:10") && message.contains("9999 operators (at most 256)"),
        "{message}"
    );
    let again = call(&s, "GET", &uri, tok);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["blocks"][0]["rows"][0]["n"], 9);
    assert_eq!(call(&s, "GET", "/healthz", None).status, StatusCode::OK);
}

fn refresh(s: &Arc<Service>, tok: Option<&str>) -> Value {
    let r = call(s, "POST", "/api/refresh", tok);
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json()["job"].as_str().unwrap().to_string();
    for _ in 0..600 {
        let j = call(s, "GET", &format!("/api/jobs/{id}"), tok).json();
        if j["state"] != "running" {
            return j;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the refresh did not finish");
}

#[test]
fn a_report_over_the_limits_answers_503_and_the_service_goes_on() {
    let dir = config();
    let slow = service(
        dir.path(),
        Limits {
            timeout: Duration::from_millis(0),
            ..Limits::default()
        },
    );
    let r = call(
        &slow,
        "GET",
        &format!("/api/reports/sales_plan?{PERIOD}"),
        Some("tok-a"),
    );
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"].as_str().unwrap().contains("longer than"));
    assert_eq!(call(&slow, "GET", "/healthz", None).status, StatusCode::OK);
    let small = service(
        dir.path(),
        Limits {
            memory: 1024,
            ..Limits::default()
        },
    );
    let r = call(
        &small,
        "GET",
        &format!("/api/reports/sales_plan?{PERIOD}"),
        Some("tok-a"),
    );
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("more memory"));
}

/// Serves on a real loopback socket in a background thread; returns the address.
fn serve_on_socket(s: Arc<Service>) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            svodka_service::serve_until(s, listener, std::future::pending())
                .await
                .unwrap();
        })
    });
    rx.recv().unwrap()
}

#[test]
fn over_a_real_socket() {
    use std::io::{Read, Write};
    let dir = config();
    let addr = serve_on_socket(service(dir.path(), Limits::default()));
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /api/reports/forgotten?{PERIOD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok-a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let j: Value = serde_json::from_str(body).unwrap();
    assert_eq!(j["blocks"][0]["id"], "totals");
}

#[test]
fn clicking_an_employee_refilters_the_live_page_and_again_clears_it() {
    let mut s = Service::demo(&fixture("forgotten"), Limits::default()).unwrap();
    s.clock = crate::util::clock();
    let s = Arc::new(s);
    let addr = serve_on_socket(s);
    let mut b = Browser::start();
    b.open_url(&format!("http://{addr}/reports/forgotten?{PERIOD}"));
    assert_eq!(b.errors(), Vec::<String>::new());
    let rows = |b: &mut Browser| {
        b.eval("document.querySelectorAll('#block-by_employee tbody tr.row').length")
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows(&mut b), 4);
    b.click("#block-by_employee td[data-filter=employee][data-value='1'] span");
    b.wait_load();
    let url = b.eval("location.search").as_str().unwrap().to_string();
    assert!(url.contains("employee=1"), "{url}");
    assert_eq!(rows(&mut b), 1);
    let chips = b.eval("document.querySelector('#filters').textContent.trim()");
    assert_eq!(chips, "Сотрудник: Анна (1)");
    // The same value again clears the filter.
    b.click("#block-by_employee td[data-filter=employee][data-value='1'] span");
    b.wait_load();
    let url = b.eval("location.search").as_str().unwrap().to_string();
    assert!(!url.contains("employee"), "{url}");
    assert_eq!(rows(&mut b), 4);
    // The slider makes the period the 3 months ending with April.
    b.eval("(() => { const m = document.getElementById('months'); m.value = 3; m.dispatchEvent(new Event('change', {bubbles: true})); })()");
    b.wait_load();
    let period = b.eval("document.getElementById('period').textContent");
    assert_eq!(period, "01.02.2024 — 30.04.2024");
    // Refresh: the button starts a job, shows its progress and reloads when it is done.
    b.click("#refresh");
    b.wait_load();
    assert_eq!(b.errors(), Vec::<String>::new());
}

#[test]
fn shutdown_finishes_the_requests_in_flight() {
    use std::io::{Read, Write};
    let dir = config();
    let (mut child, addr) = crate::util::serve_process(crate::util::svodka_command(), dir.path());
    let request = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /api/reports/sales_plan?from=2020-01-01&to=2024-12-31&param.grain=month&format=xlsx HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        s.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response[..12]).to_string()
    });
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(request.join().unwrap(), "HTTP/1.1 200");
    assert!(child.wait().unwrap().success());
}

#[test]
fn client_check_and_effective_settings_on_the_command_line() {
    let dir = config();
    let cfg = dir.path().to_str().unwrap();
    let out = crate::util::ok(&["check", "--config", cfg, "--client", "beta"]);
    assert!(out.starts_with("ok: client beta: 7 reports"), "{out}");
    let out = crate::util::ok(&["client", "effective", "acme", "--config", cfg]);
    assert!(out.contains("forgotten\n"), "{out}");
    assert!(
        out.contains("  deal_forgotten_days = 21  (client, this report)\n"),
        "{out}"
    );
    assert!(out.contains("  lead_forgotten_days = 3\n"), "{out}");
    // A setting for every report that has it; a report's own entry wins.
    write(
        &dir.path().join("clients/acme"),
        "client.yaml",
        &format!(
            "name: acme\ndata: {{ folder: {} }}\nsettings:\n  deal_forgotten_days: 30\n  forgotten: {{ deal_forgotten_days: 21 }}\n",
            fixture("forgotten").display()
        ),
    );
    let out = crate::util::ok(&["client", "effective", "acme", "--config", cfg]);
    let report_of = |report: &str| -> String {
        let lines = out.lines().skip_while(|l| *l != report).skip(1);
        lines
            .take_while(|l| l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        report_of("forgotten").contains("  deal_forgotten_days = 21  (client, this report)"),
        "{out}"
    );
    let dynamics = report_of("sales_dynamics");
    assert!(
        dynamics.contains("  deal_forgotten_days = 30  (client, every report)"),
        "{out}"
    );
    // Every bad override at once, each at its place, with what to write.
    write(
        &dir.path().join("clients/acme"),
        "client.yaml",
        &format!(
            "name: acme\ndata: {{ folder: {} }}\nsettings:\n  deal_forgoten_days: 5\n  forgotten: {{ deal_forgotten_days: 0 }}\n  forgoten: {{ lead_forgotten_days: 5 }}\n  marketing: 7\n",
            fixture("forgotten").display()
        ),
    );
    let err = crate::util::fails(&["check", "--config", cfg, "--client", "acme"]);
    for line in [
        "clients/acme/client.yaml:4:3: settings.deal_forgoten_days: `deal_forgoten_days` is neither a report nor a setting of any report, did you mean `deal_forgotten_days`?",
        "clients/acme/client.yaml:5:16: settings.forgotten.deal_forgotten_days: report `forgotten`: setting `deal_forgotten_days`: 0 is below the minimum 1; written like its default: `deal_forgotten_days: 14`",
        "clients/acme/client.yaml:6:3: settings.forgoten: `forgoten` is neither a report nor a setting of any report, did you mean `forgotten`?",
        "clients/acme/client.yaml:7:3: settings.marketing: the settings of report `marketing` are a map: `marketing: {name: value}`",
    ] {
        assert!(err.contains(line), "{line}\n{err}");
    }
    let err = crate::util::fails(&["check", "--config", cfg, "--client", "../x"]);
    assert!(err.contains("a client is named by its folder"), "{err}");
}

#[test]
fn two_hundred_concurrent_mixed_requests_on_loopback() {
    use std::io::{Read, Write};
    let dir = config();
    let addr = serve_on_socket(service(dir.path(), Limits::default()));
    let paths: Vec<(String, &str, u16)> = vec![
        (format!("/api/reports/forgotten?{PERIOD}"), "tok-a", 200),
        (
            format!("/api/reports/sales_plan?{PERIOD}&format=html"),
            "tok-a",
            200,
        ),
        (
            format!("/api/reports/marketing?{PERIOD}&format=xlsx"),
            "tok-b",
            200,
        ),
        (
            format!("/api/reports/forgotten/blocks/by_employee?{PERIOD}"),
            "tok-b",
            200,
        ),
        ("/api/reports".to_string(), "tok-a", 200),
        ("/api/reports/beta_only".to_string(), "tok-a", 404),
        ("/api/reports/forgotten?from=nope".to_string(), "tok-b", 400),
        ("/healthz".to_string(), "", 200),
    ];
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let (path, token, expected) = paths[i % paths.len()].clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(300)))
                    .unwrap();
                write!(
                    stream,
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut response = Vec::new();
                stream.read_to_end(&mut response).unwrap();
                let head = String::from_utf8_lossy(&response[..12.min(response.len())]).to_string();
                (path, expected, head)
            })
        })
        .collect();
    for h in handles {
        let (path, expected, head) = h.join().unwrap();
        assert_eq!(head, format!("HTTP/1.1 {expected}"), "{path}");
    }
}

#[test]
fn a_refresh_checks_the_client_settings_against_the_new_definitions() {
    let dir = config();
    let beta = dir.path().join("clients/beta");
    let report = |max: u32| {
        format!(
            "report: beta_only\ntitle: B\nsettings:\n  n_min: {{ type: int, default: 1, max: {max} }}\nblocks:\n  - id: n\n    title: N\n    from: deals\n    measures:\n      n: count(*) filter (where id >= $n_min)\n"
        )
    };
    write(&beta.join("reports"), "beta_only.yaml", &report(10));
    write(
        &beta,
        "client.yaml",
        &format!(
            "name: beta\ndata: {{ folder: {} }}\nsettings:\n  beta_only: {{ n_min: 5 }}\ntokens: [{}]\n",
            fixture("forgotten").display(),
            hash_token("tok-b")
        ),
    );
    let s = service(dir.path(), Limits::default());
    let uri = format!("/api/reports/beta_only?{PERIOD}");
    assert_eq!(
        call(&s, "GET", &uri, Some("tok-b")).json()["blocks"][0]["rows"][0]["n"],
        5
    );
    // The new definition no longer admits the client's 5: refused, the last good serves.
    write(&beta.join("reports"), "beta_only.yaml", &report(3));
    let job = refresh(&s, Some("tok-b"));
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("client.yaml:4:16: settings.beta_only.n_min: report `beta_only`: setting `n_min`: 5 is above the maximum 3"),
        "{job}"
    );
    assert_eq!(
        call(&s, "GET", &uri, Some("tok-b")).json()["blocks"][0]["rows"][0]["n"],
        5
    );
}

/// The two-client service with one run slot and room for `queued` waiting runs.
fn one_run_slot(dir: &Path, queued: usize) -> Arc<Service> {
    let limits = Limits {
        runs: 1,
        queued,
        ..Limits::default()
    };
    service(dir, limits)
}

/// `uri` asked by `acme` in a thread, returned once its run has started (the service's
/// first).
fn started_in_background(s: &Arc<Service>, uri: &str) -> std::thread::JoinHandle<Reply> {
    use std::sync::atomic::Ordering::SeqCst;
    let handle = {
        let (s, uri) = (s.clone(), uri.to_string());
        std::thread::spawn(move || call(&s, "GET", &uri, Some("tok-a")))
    };
    for _ in 0..30_000 {
        if s.metrics.runs.load(SeqCst) >= 1 {
            return handle;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the run never started");
}

#[test]
fn identical_requests_share_one_run() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = config();
    let s = one_run_slot(dir.path(), 32);
    let uri = format!("/api/reports/sales_plan?{PERIOD}");
    let first = started_in_background(&s, &uri);
    // Asked while the first run is in progress: answered by it.
    let second = call(&s, "GET", &uri, Some("tok-a"));
    let first = first.join().unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
    assert_eq!(s.metrics.runs.load(SeqCst), 1);
    assert_eq!(s.metrics.coalesced.load(SeqCst), 1);
    let metrics = call(&s, "GET", "/metrics", None).text();
    assert!(metrics.contains("svodka_coalesced_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("svodka_report_runs_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn beyond_the_run_slots_and_the_queue_a_request_answers_429_with_retry_after() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = config();
    let s = one_run_slot(dir.path(), 0);
    let first = started_in_background(&s, &format!("/api/reports/sales_plan?{PERIOD}"));
    let uri = format!("/api/reports/forgotten?{PERIOD}");
    let busy = call(&s, "GET", &uri, Some("tok-b"));
    assert_eq!(
        busy.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        busy.text()
    );
    let retry: u64 = busy.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(
        busy.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("busy: 1 report runs are running and 0 waiting; ask again in"),
        "{}",
        busy.text()
    );
    assert_eq!(first.join().unwrap().status, StatusCode::OK);
    assert_eq!(s.metrics.rejected_busy.load(SeqCst), 1);
    // The slot is free again: the same request now runs.
    assert_eq!(call(&s, "GET", &uri, Some("tok-b")).status, StatusCode::OK);
    // With room in the queue, a request waits for the slot instead.
    let s = one_run_slot(dir.path(), 4);
    let first = started_in_background(&s, &format!("/api/reports/sales_plan?{PERIOD}"));
    assert_eq!(call(&s, "GET", &uri, Some("tok-b")).status, StatusCode::OK);
    assert_eq!(first.join().unwrap().status, StatusCode::OK);
    assert_eq!(s.metrics.rejected_busy.load(SeqCst), 0);
}

#[test]
fn an_answer_too_big_to_render_within_the_memory_limit_answers_503() {
    let dir = config();
    let roomy = service(dir.path(), Limits::default());
    // One result for every format (pages are rendered from it on demand).
    let uri = format!("/api/reports/forgotten?{PERIOD}");
    assert_eq!(
        call(&roomy, "GET", &uri, Some("tok-a")).status,
        StatusCode::OK
    );
    // The same clients, results in their caches, under a limit the run fits in but the
    // rendered answers (the forgotten report as JSON is ~10 KB) do not.
    let mut tight = Service::new(
        roomy.clients.clone(),
        Limits {
            memory: 4 << 10,
            ..Limits::default()
        },
    );
    tight.clock = crate::util::clock();
    let tight = Arc::new(tight);
    for format in ["json", "html", "xlsx"] {
        let uri = format!("/api/reports/forgotten?{PERIOD}&format={format}");
        let r = call(&tight, "GET", &uri, Some("tok-a"));
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{format}: {}",
            r.text()
        );
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert_eq!(
            error,
            "the answer needs more memory than a request may take (4 KiB); narrow the period or the filters, or ask for one block",
            "{format}"
        );
    }
    assert_eq!(
        tight
            .metrics
            .cache_hits
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(call(&tight, "GET", "/healthz", None).status, StatusCode::OK);
}

#[test]
fn connections_that_never_finish_their_headers_are_closed_and_do_not_starve_the_rest() {
    use std::io::{Read, Write};
    let dir = config();
    let addr = serve_on_socket(service(
        dir.path(),
        Limits {
            connections: 8,
            header_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
    ));
    // Twice as many half-sent requests as the service holds connections.
    let mut slow: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap();
            c
        })
        .collect();
    let started = std::time::Instant::now();
    let mut probe = std::net::TcpStream::connect(addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The slow ones held it only until their header time ran out (twice over at most).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // A slow connection was closed by the service: its read ends, with no answer to a
    // request it never finished.
    let first = &mut slow[0];
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn logging_out_ends_the_session_and_behind_tls_the_cookie_is_secure() {
    let dir = config();
    let s = service(dir.path(), Limits::default());
    let cookie = login(&s, "tok-a");
    let index = call_with(&s, "GET", "/", None, Some(&cookie), Body::empty(), None);
    assert!(
        index.text().contains("action=\"/logout\""),
        "{}",
        index.text()
    );
    let out = call_with(
        &s,
        "POST",
        "/logout",
        None,
        Some(&cookie),
        Body::empty(),
        None,
    );
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.headers[header::LOCATION], "/login");
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("svodka_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // The old cookie opens nothing any more.
    let after = call_with(&s, "GET", "/", None, Some(&cookie), Body::empty(), None);
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.text());
    assert_eq!(after.headers[header::LOCATION], "/login");

    // Through a proxy that terminated TLS, the cookie travels over HTTPS only.
    for (name, value, secure) in [
        ("x-forwarded-proto", "https", true),
        ("forwarded", "for=10.0.0.1;proto=https", true),
        ("x-forwarded-proto", "http", false),
    ] {
        let req = Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(name, value)
            .body(Body::from("token=tok-a"))
            .unwrap();
        let router = svodka_service::router(s.clone());
        let r = rt().block_on(router.oneshot(req)).unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
        assert_eq!(set.ends_with("; Secure"), secure, "{name}: {value}: {set}");
    }
}

#[test]
fn a_refresh_after_a_table_file_is_deleted_fails_and_the_last_version_serves() {
    // The client's own copy of the data, so that a file can be deleted.
    let dir = config();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(fixture("forgotten")).unwrap().flatten() {
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    let yaml = dir.path().join("clients/beta/client.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let fixture_dir = fixture("forgotten").display().to_string();
    std::fs::write(
        &yaml,
        text.replace(&fixture_dir, &data.display().to_string()),
    )
    .unwrap();
    let s = service(dir.path(), Limits::default());
    let tok = Some("tok-b");
    let uri = format!("/api/reports/beta_only?{PERIOD}");
    assert_eq!(
        call(&s, "GET", &uri, tok).json()["blocks"][0]["rows"][0]["n"],
        9
    );

    std::fs::remove_file(data.join("deals.csv")).unwrap();
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains("deals.csv is gone from the data folder since the version being served; put it back (a table with no rows is a file with only its header line); the previous version keeps serving"),
        "{message}"
    );
    let again = call(&s, "GET", &uri, tok);
    assert_eq!(again.json()["blocks"][0]["rows"][0]["n"], 9);

    // A header-only file is a table with no rows, on purpose: that refresh goes through.
    let header = std::fs::read_to_string(fixture("forgotten").join("deals.csv")).unwrap();
    let header = header.lines().next().unwrap();
    std::fs::write(data.join("deals.csv"), format!("{header}\n")).unwrap();
    let job = refresh(&s, tok);
    assert_eq!(job["state"], "done", "{job}");
    let empty = call(&s, "GET", &uri, tok).json();
    assert_eq!(empty["blocks"][0]["rows"][0]["n"], 0, "{empty}");
}

/// `svodka run --client` runs a report as the service runs it for that client — its
/// settings, overlays and data through the service's own code — so the JSON is the
/// service's, value for value.
#[test]
fn run_with_a_client_on_the_command_line_is_the_services_run() {
    let dir = config();
    let cfg = dir.path().to_str().unwrap();
    let s = service(dir.path(), Limits::default());
    for (client, token, report, query) in [
        (
            "acme",
            "tok-a",
            "forgotten",
            "from=2024-04-01&to=2024-04-30&as_of=2024-04-25",
        ),
        (
            "acme",
            "tok-a",
            "forgotten",
            "from=2024-04-01&to=2024-04-30&set.deal_forgotten_days=7&employee=2",
        ),
        (
            "beta",
            "tok-b",
            "beta_only",
            "from=2024-04-01&to=2024-04-30",
        ),
    ]
    .into_iter()
    // Every shipped report: the command line runs small data unbounded, computing a
    // model one block reads beside the others; the service, bounded in memory, computes
    // it inside that block. The numbers are the same.
    .chain(
        crate::util::REPORTS
            .iter()
            .map(|report| ("acme", "tok-a", *report, "from=2024-04-01&to=2024-04-30")),
    ) {
        let served = call(
            &s,
            "GET",
            &format!("/api/reports/{report}?{query}"),
            Some(token),
        );
        assert_eq!(served.status, StatusCode::OK, "{}", served.text());
        // The same query as command-line options.
        let mut args: Vec<String> = ["run", report, "--client", client, "--config", cfg]
            .map(String::from)
            .to_vec();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            args.extend(match k.strip_prefix("set.") {
                Some(setting) => ["--set".to_string(), format!("{setting}={v}")],
                None => [format!("--{}", k.replace('_', "-")), v.to_string()],
            });
        }
        let ran = crate::util::json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(ran, served.json(), "{client} {report} {query}");
    }
    // The shipped settings would give another answer: the client's 21 days apply.
    let ran = crate::util::json(&[
        "run",
        "forgotten",
        "--client",
        "acme",
        "--config",
        cfg,
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
    ]);
    assert_eq!(ran["settings"]["deal_forgotten_days"], 21);
    let err = crate::util::fails(&[
        "run",
        "forgotten",
        "--client",
        "acme",
        "--config",
        cfg,
        "--data",
        "x",
    ]);
    assert!(err.contains("--client") && err.contains("--data"), "{err}");
    let err = crate::util::fails(&["run", "forgotten", "--client", "nobody", "--config", cfg]);
    assert!(err.contains("clients/nobody"), "{err}");
}
