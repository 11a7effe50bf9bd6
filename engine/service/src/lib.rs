//! `svodka serve`: the engine as an HTTP service for many client companies — the JSON,
//! HTML and xlsx of every report, live dashboards, bearer tokens and login sessions,
//! refresh jobs, a result cache, per-request time and memory limits, metrics.

pub mod auth;
pub mod cache;
pub mod clients;
pub mod query;
mod routes;
mod runs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use clients::{Client, ClientConfig};
pub use routes::router;

/// What went wrong starting or configuring the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A client's `client.yaml` does not fit the reports or the machine (a setting, a
    /// cluster address).
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },
    /// A client's `client.yaml` or its data set's `dataset.yaml` is unreadable or invalid.
    #[error(transparent)]
    ConfigFile(#[from] svodka_config::ConfigError),
    /// A client's setting overrides do not fit its reports: every problem, each at its
    /// `file:line:column`.
    #[error("{}", problems.join("\n"))]
    Settings { problems: Vec<String> },
    /// A client's report or model files are invalid.
    #[error("client {client}: definitions: {message}")]
    Definitions { client: String, message: String },
    /// A client's data could not be loaded.
    #[error("client {client}: data: {message}")]
    Data { client: String, message: String },
    /// The clients folder is unreadable or empty.
    #[error("{path}: {message}")]
    Clients { path: PathBuf, message: String },
    /// A client that needs no token (`open: true`) would be served beyond this machine.
    #[error(
        "client {client} needs no token (`open: true`): anyone who reaches {addr} would read its reports. Listen on a loopback address (127.0.0.1, [::1]), or remove `open` and give the client tokens"
    )]
    Exposed {
        client: String,
        addr: std::net::SocketAddr,
    },
}

/// Bounds on what one request, and the whole service, may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request whose report takes longer than this — waiting for a run slot, running
    /// and rendering — answers 503.
    pub timeout: Duration,
    /// Bytes a run's sorts, joins and aggregates may hold; the rendered answer (JSON,
    /// page, workbook) is held to the same bound.
    pub memory: usize,
    /// Report runs at once, over every client; more wait for a slot.
    pub runs: usize,
    /// Report runs that may wait for a slot; beyond them a request answers 429 with
    /// `Retry-After`.
    pub queued: usize,
    /// Time a connection has to send a request's headers (and an idle kept-alive
    /// connection its next request's) before it is closed.
    pub header_timeout: Duration,
    /// Connections held at once; further ones wait in the listen queue until one closes.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(120),
            memory: 4 << 30,
            runs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queued: 32,
            header_timeout: Duration::from_secs(10),
            connections: 512,
        }
    }
}

/// A refresh job's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Job {
    pub id: String,
    pub client: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// 0–100.
    pub progress: u8,
    pub message: String,
    pub data_version: Option<u64>,
    /// When it finished: a finished job is forgotten `JOB_KEPT` later.
    #[serde(skip)]
    pub finished: Option<std::time::Instant>,
}

/// How long a finished refresh job can still be asked about.
pub const JOB_KEPT: Duration = Duration::from_secs(3600);

/// Finished refresh jobs kept per client: past it the oldest is forgotten first, so a
/// client that refreshes in a loop holds bounded memory.
pub const JOBS_KEPT: usize = 32;

/// How long a page session lasts without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Page sessions per client: a new one past it ends the one used longest ago, so logins
/// in a loop hold bounded memory.
pub const SESSIONS_PER_CLIENT: usize = 256;

/// A page session: whose it is and when it was last used.
#[derive(Debug, Clone)]
pub struct Session {
    pub client: String,
    pub last_used: std::time::Instant,
}

impl Session {
    /// Unused for `SESSION_IDLE` or longer by `now`.
    fn expired(&self, now: std::time::Instant) -> bool {
        now.duration_since(self.last_used) >= SESSION_IDLE
    }
}

/// The ids of `stamped` (last use or end, id) beyond the `keep` most recent: what goes
/// so that a per-client bound holds.
fn oldest_beyond(
    stamped: impl Iterator<Item = (std::time::Instant, String)>,
    keep: usize,
) -> Vec<String> {
    let mut stamped: Vec<_> = stamped.collect();
    stamped.sort();
    let over = stamped.len().saturating_sub(keep);
    stamped.into_iter().take(over).map(|(_, id)| id).collect()
}

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub requests: Mutex<HashMap<(String, u16), u64>>,
    pub duration_micros: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub runs: AtomicU64,
    /// Microseconds spent in report runs, for the average a `Retry-After` is taken from.
    pub run_micros: AtomicU64,
    /// Requests that waited for an identical request's run instead of running again.
    pub coalesced: AtomicU64,
    pub rejected_heavy: AtomicU64,
    /// Requests refused with 429 because the run queue was full.
    pub rejected_busy: AtomicU64,
}

/// The whole service state, shared by every request.
pub struct Service {
    pub clients: HashMap<String, Arc<Client>>,
    pub limits: Limits,
    pub jobs: Mutex<HashMap<String, Job>>,
    /// Session id → its client (pages); idle ones expire after `SESSION_IDLE`.
    pub sessions: Mutex<HashMap<String, Session>>,
    pub metrics: Metrics,
    /// "Now": the default period of a data set without a snapshot day, a page's time of
    /// generation.
    pub clock: svodka_config::Clock,
    /// Where reports run: in this process, or on a cluster (`serve --cluster`).
    pub engine: svodka_report::Engine,
    /// Client folders left out because their `client.yaml` could not be read: the error.
    pub unloaded: Vec<String>,
    /// Run slots (`Limits::runs`) and the runs waiting for one.
    pub(crate) run_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
    /// Runs in progress by cache key: an identical request waits for the same outcome.
    pub(crate) in_flight: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<runs::Outcome>>>>,
}

impl Service {
    /// Every `clients/<name>/client.yaml` under `config_dir`.
    pub fn load(config_dir: &Path, limits: Limits) -> Result<Service, ServiceError> {
        let clients_dir = config_dir.join("clients");
        let entries = std::fs::read_dir(&clients_dir).map_err(|e| ServiceError::Clients {
            path: clients_dir.clone(),
            message: e.to_string(),
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("client.yaml").is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(ServiceError::Clients {
                path: clients_dir,
                message: "no client folder with a client.yaml".into(),
            });
        }
        // One client's bad files never stop the others: a client whose definitions or
        // data fail is held with its problem (503 until a refresh repairs it); one whose
        // client.yaml fails is left out. Only when no client loads does the service fail.
        let mut clients = HashMap::new();
        let mut unloaded = Vec::new();
        let mut first_error = None;
        for d in &dirs {
            match Client::load_or_hold(d) {
                Ok(c) => {
                    clients.insert(c.id.clone(), Arc::new(c));
                }
                Err(e) => {
                    unloaded.push(e.to_string());
                    first_error.get_or_insert(e);
                }
            }
        }
        if clients.is_empty()
            && let Some(e) = first_error
        {
            return Err(e);
        }
        let mut service = Service::new(clients, limits);
        service.unloaded = unloaded;
        Ok(service)
    }

    /// What keeps clients from serving: one line per client left out or held.
    pub fn problems(&self) -> Vec<String> {
        let mut held: Vec<String> = self
            .clients
            .values()
            .filter_map(|c| {
                c.problem()
                    .map(|p| format!("client {} unavailable: {p}", c.id))
            })
            .collect();
        held.sort();
        let mut out: Vec<String> = self
            .unloaded
            .iter()
            .map(|e| format!("client left out: {e}"))
            .collect();
        out.extend(held);
        out
    }

    /// One open client (no token) over a data folder: the demo.
    pub fn demo(data: &Path, limits: Limits) -> Result<Service, ServiceError> {
        let config = ClientConfig {
            open: true,
            ..ClientConfig::over("Демо", data)
        };
        // No client folder: definitions are the shipped ones.
        let client = Client::new(
            "demo".into(),
            Path::new("/nonexistent-svodka-client"),
            config,
        )?;
        Ok(Service::new(
            HashMap::from([("demo".to_string(), Arc::new(client))]),
            limits,
        ))
    }

    pub fn new(clients: HashMap<String, Arc<Client>>, limits: Limits) -> Service {
        Service {
            clients,
            limits,
            jobs: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            clock: svodka_config::Clock::System,
            engine: svodka_report::Engine::Local,
            unloaded: Vec::new(),
            run_slots: Arc::new(tokio::sync::Semaphore::new(limits.runs.max(1))),
            waiting: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// The client a token belongs to. Every stored hash is compared, whatever matches.
    pub fn client_of_token(&self, token: &str) -> Option<Arc<Client>> {
        let hash = auth::hash_token(token);
        let mut found = None;
        for c in self.clients.values() {
            for t in &c.config.tokens {
                if auth::constant_time_eq(&hash, &t.to_ascii_lowercase()) && found.is_none() {
                    found = Some(c.clone());
                }
            }
        }
        found
    }

    /// Refuses an address beyond this machine while a client needs no token (`open: true`,
    /// the demo).
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> Result<(), ServiceError> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        let mut open: Vec<&String> = self
            .clients
            .values()
            .filter(|c| c.config.open)
            .map(|c| &c.id)
            .collect();
        open.sort();
        match open.first() {
            Some(client) => Err(ServiceError::Exposed {
                client: client.to_string(),
                addr,
            }),
            None => Ok(()),
        }
    }

    /// The only client, when it is open (the demo): no token needed.
    pub fn open_client(&self) -> Option<Arc<Client>> {
        match self.clients.values().collect::<Vec<_>>().as_slice() {
            [only] if only.config.open => Some((*only).clone()),
            _ => None,
        }
    }

    /// Starts a page session for `client`; returns its id. Expired sessions leave.
    pub fn start_session(&self, client: &str) -> String {
        let id = auth::random_id();
        let now = std::time::Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions");
        sessions.retain(|_, s| !s.expired(now));
        let own = sessions
            .iter()
            .filter(|(_, s)| s.client == client)
            .map(|(id, s)| (s.last_used, id.clone()));
        for id in oldest_beyond(own, SESSIONS_PER_CLIENT - 1) {
            sessions.remove(&id);
        }
        sessions.insert(
            id.clone(),
            Session {
                client: client.to_string(),
                last_used: now,
            },
        );
        id
    }

    /// Ends a page session: its cookie no longer opens pages.
    pub fn end_session(&self, id: &str) {
        self.sessions.lock().expect("sessions").remove(id);
    }

    /// The client of a live session, which counts as used now.
    pub fn session_client(&self, id: &str) -> Option<Arc<Client>> {
        let now = std::time::Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions");
        let session = sessions.get_mut(id)?;
        if session.expired(now) {
            sessions.remove(id);
            return None;
        }
        session.last_used = now;
        self.clients.get(&session.client).cloned()
    }

    /// Reloads a client's definitions and data in the background; returns the job id.
    /// Invalid definitions or data leave the last good ones serving. While a refresh of
    /// the client runs, asking again returns that job: one refresh per client at a time.
    pub fn start_refresh(self: &Arc<Self>, client: Arc<Client>) -> String {
        let id = auth::random_id()[..16].to_string();
        {
            let mut jobs = self.jobs.lock().expect("jobs");
            let now = std::time::Instant::now();
            jobs.retain(|_, j| j.finished.is_none_or(|t| now.duration_since(t) < JOB_KEPT));
            let finished = jobs
                .values()
                .filter(|j| j.client == client.id)
                .filter_map(|j| Some((j.finished?, j.id.clone())));
            for id in oldest_beyond(finished, JOBS_KEPT - 1) {
                jobs.remove(&id);
            }
            if let Some(running) = jobs
                .values()
                .find(|j| j.client == client.id && j.state == "running")
            {
                return running.id.clone();
            }
            let job = Job {
                id: id.clone(),
                client: client.id.clone(),
                state: "running",
                progress: 0,
                message: "reloading definitions".into(),
                data_version: None,
                finished: None,
            };
            jobs.insert(id.clone(), job);
        }
        let service = self.clone();
        let job_id = id.clone();
        tokio::task::spawn_blocking(move || {
            let update = |f: &dyn Fn(&mut Job)| {
                if let Some(j) = service.jobs.lock().expect("jobs").get_mut(&job_id) {
                    f(j);
                }
            };
            let catalog = clients::load_definitions(&client.dir, &client.config);
            update(&|j| {
                j.progress = 30;
                j.message = "loading data".into();
            });
            let serving = client.data();
            let next = serving.version + 1;
            let data = clients::load_data(&client.dir, &client.config, next).and_then(|d| {
                // Held clients have nothing to lose yet: whatever loads is an improvement.
                if client.problem().is_none() {
                    serving
                        .check_successor(&d)
                        .map_err(|message| ServiceError::Data {
                            client: client.id.clone(),
                            message,
                        })?;
                }
                Ok(d)
            });
            match (catalog, data) {
                (Ok(catalog), Ok(data)) => {
                    *client.catalog.write().expect("catalog lock") = Arc::new(catalog);
                    *client.data.write().expect("data lock") = Arc::new(data);
                    client.cache.lock().expect("cache").clear();
                    client.pages.lock().expect("pages").clear();
                    *client.problem.write().expect("problem lock") = None;
                    update(&|j| {
                        j.state = "done";
                        j.finished = Some(std::time::Instant::now());
                        j.progress = 100;
                        j.message = "refreshed".into();
                        j.data_version = Some(next);
                    });
                }
                (Err(e), _) | (_, Err(e)) => {
                    let mut problem = client.problem.write().expect("problem lock");
                    let message = if problem.is_some() {
                        // Nothing loaded yet: the client stays unavailable, for this reason.
                        *problem = Some(e.to_string());
                        format!("{e}; the client stays unavailable until a refresh succeeds")
                    } else {
                        format!("{e}; the previous version keeps serving")
                    };
                    drop(problem);
                    update(&|j| {
                        j.state = "failed";
                        j.finished = Some(std::time::Instant::now());
                        j.progress = 100;
                        j.message = message.clone();
                    });
                }
            }
        });
        id
    }
}

/// Serves until Ctrl-C (or SIGTERM), then finishes the requests in flight.
///
/// Connections are served here rather than by `axum::serve` for two limits it lacks: at
/// most `Limits::connections` at once, and `Limits::header_timeout` to send headers, so
/// that callers who open connections and send nothing (or a byte at a time) cannot hold
/// the service.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    service
        .check_listen(listener.local_addr()?)
        .map_err(std::io::Error::other)?;
    serve_until(service, listener, shutdown_signal()).await
}

/// Serves until `stop` completes, then finishes the requests in flight.
pub async fn serve_until(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = service.limits;
    let app = router(service);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections.max(1)));
    let (closing, closed) = tokio::sync::watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, or the peer left before the accept: the
                    // listener itself is fine, try again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http.serve_connection(TokioIo::new(stream), app);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closed.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(());
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Counts a finished request.
pub(crate) fn count(metrics: &Metrics, route: &str, status: u16, micros: u64) {
    *metrics
        .requests
        .lock()
        .expect("metrics")
        .entry((route.to_string(), status))
        .or_default() += 1;
    metrics.duration_micros.fetch_add(micros, Ordering::Relaxed);
}
