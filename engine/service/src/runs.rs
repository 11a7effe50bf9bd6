//! Report runs for requests, bounded: identical concurrent requests share one run, at most
//! `Limits::runs` run at once, at most `Limits::queued` wait (429 with `Retry-After`
//! beyond), and waiting, running and rendering together stay within `Limits::timeout`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use svodka_report::{Catalog, ReportError, ReportResult, RunRequest};

use crate::clients::Data;
use crate::{Client, Service};

/// What a run gave a request: the result, or the answer that replaces it.
pub(crate) type Outcome = Result<Arc<ReportResult>, Refusal>;

/// A request answered without a report: status, message and, when the service is busy,
/// the seconds after which to ask again.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The request's time ran out (while waiting, running or rendering).
    pub fn too_slow(limit: Duration) -> Refusal {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the report took longer than {} s; narrow the period or the filters",
                limit.as_secs()
            ),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = crate::routes::error(self.status, self.message);
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// What a request's run reads: the client's definitions and data as the request found
/// them (the cache key names this data version, so the run must not take a newer one).
pub(crate) struct Sources<'a> {
    pub client: &'a Client,
    pub catalog: &'a Catalog,
    pub data: &'a Data,
}

/// The result for cache key `key`: from an identical request's run in progress, else
/// from a run of `request` over `from` (then kept in the client's cache).
pub(crate) async fn shared_run(
    s: &Service,
    from: Sources<'_>,
    key: &str,
    deadline: Instant,
    request: impl FnOnce() -> Result<RunRequest, ReportError>,
) -> Outcome {
    let flight = s
        .in_flight
        .lock()
        .expect("in-flight runs")
        .entry(key.to_string())
        .or_default()
        .clone();
    let mut ran = false;
    let outcome = flight
        .get_or_init(|| {
            ran = true;
            async {
                s.metrics.cache_misses.fetch_add(1, Relaxed);
                let outcome = run(s, &from, deadline, request).await;
                if let Ok(result) = &outcome {
                    let size = crate::cache::result_bytes(result);
                    let mut cache = from.client.cache.lock().expect("cache");
                    cache.put(key.to_string(), result.clone(), size);
                }
                outcome
            }
        })
        .await
        .clone();
    if !ran {
        s.metrics.coalesced.fetch_add(1, Relaxed);
    }
    // The outcome is in the cache (or was an error): later requests start afresh.
    let mut in_flight = s.in_flight.lock().expect("in-flight runs");
    if in_flight.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
        in_flight.remove(key);
    }
    outcome
}

/// One run: a slot (or a place in the queue), then the query, all before `deadline`.
async fn run(
    s: &Service,
    from: &Sources<'_>,
    deadline: Instant,
    request: impl FnOnce() -> Result<RunRequest, ReportError>,
) -> Outcome {
    let req = request().map_err(|e| refusal_of(s, e))?;
    let _slot = slot(s, deadline).await?;
    s.metrics.runs.fetch_add(1, Relaxed);
    let started = Instant::now();
    let run = svodka_report::run(from.catalog, &from.data.tables, &req);
    let outcome = match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(Ok(r)) => Ok(Arc::new(r)),
        Ok(Err(e)) => Err(refusal_of(s, e)),
        Err(_) => {
            s.metrics.rejected_heavy.fetch_add(1, Relaxed);
            Err(Refusal::too_slow(s.limits.timeout))
        }
    };
    let micros = started.elapsed().as_micros() as u64;
    s.metrics.run_micros.fetch_add(micros, Relaxed);
    outcome
}

/// A run slot: at once when one is free, else after waiting in the queue; refused when
/// the queue is full (429) or the deadline passes first (503).
async fn slot(
    s: &Service,
    deadline: Instant,
) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
    if let Ok(p) = s.run_slots.clone().try_acquire_owned() {
        return Ok(p);
    }
    /// A place in the queue, given back however the wait ends (a caller may leave).
    struct Place<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Place<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Relaxed);
        }
    }
    let ahead = s.waiting.fetch_add(1, Relaxed);
    let _place = Place(&s.waiting);
    if ahead >= s.limits.queued {
        s.metrics.rejected_busy.fetch_add(1, Relaxed);
        let retry_after = retry_after(s, ahead);
        return Err(Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "busy: {} report runs are running and {ahead} waiting; ask again in {retry_after} s",
                s.limits.runs
            ),
            retry_after: Some(retry_after),
        });
    }
    match tokio::time::timeout_at(deadline.into(), s.run_slots.clone().acquire_owned()).await {
        Ok(p) => Ok(p.expect("the run slots are never closed")),
        Err(_) => {
            s.metrics.rejected_heavy.fetch_add(1, Relaxed);
            Err(Refusal::too_slow(s.limits.timeout))
        }
    }
}

/// Seconds until the queue in front of a caller has likely drained: the average run so
/// far times the runs ahead per slot, at least one second.
fn retry_after(s: &Service, ahead: usize) -> u64 {
    let runs = s.metrics.runs.load(Relaxed).max(1);
    let average = s.metrics.run_micros.load(Relaxed) as f64 / runs as f64 / 1e6;
    let rounds = (ahead + 1) as f64 / s.limits.runs.max(1) as f64;
    ((average * rounds).ceil() as u64).max(1)
}

/// The answer for a run's error.
pub(crate) fn refusal_of(s: &Service, e: ReportError) -> Refusal {
    use datafusion::error::DataFusionError;
    match &e {
        ReportError::BadInput { .. } => Refusal::new(StatusCode::BAD_REQUEST, e.to_string()),
        ReportError::UnknownBlock { .. } | ReportError::UnknownReport { .. } => {
            Refusal::new(StatusCode::NOT_FOUND, e.to_string())
        }
        ReportError::Execution { source, .. }
            if matches!(source.find_root(), DataFusionError::ResourcesExhausted(_)) =>
        {
            s.metrics.rejected_heavy.fetch_add(1, Relaxed);
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the report needs more memory than a request may take: {e}"),
            )
        }
        ReportError::Remote { .. } => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        _ => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Runs `render` on a blocking thread, answering 503 if `deadline` passes first (the
/// rendering then finishes unseen and its memory is freed).
pub(crate) async fn render<T: Send + 'static>(
    s: &Service,
    deadline: Instant,
    render: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    match tokio::time::timeout_at(deadline.into(), tokio::task::spawn_blocking(render)).await {
        Ok(Ok(rendered)) => rendered,
        Ok(Err(panicked)) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering failed: {panicked}"),
        )),
        Err(_) => {
            s.metrics.rejected_heavy.fetch_add(1, Relaxed);
            Err(Refusal::too_slow(s.limits.timeout))
        }
    }
}

/// The report as JSON, refused once the text would pass `limit` bytes.
pub(crate) fn json_within(result: &ReportResult, limit: usize) -> Result<Vec<u8>, Refusal> {
    let json = svodka_render::json::ReportJson::new(result)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut out = Capped {
        bytes: Vec::new(),
        limit,
    };
    match serde_json::to_writer(&mut out, &json) {
        Ok(()) => Ok(out.bytes),
        Err(e) if e.is_io() => Err(too_big(limit)),
        Err(e) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// Bytes a page or workbook takes per cell while it is built, with a margin: the
/// formatted text, its markup or XML, and the writer's own record of the cell. Measured
/// on the demo data's `clients` report (230 000 cells), peak RSS over the run's grew by
/// about 110 bytes a cell for the page and 190 for the workbook.
const RENDER_BYTES_PER_CELL: usize = 256;

/// Refuses a result whose page or workbook would take more than `limit` bytes to build.
pub(crate) fn fits_to_render(result: &ReportResult, limit: usize) -> Result<(), Refusal> {
    let cells: usize = crate::cache::shown_batches(result)
        .map(|batch| batch.num_rows() * batch.num_columns())
        .sum();
    if cells.saturating_mul(RENDER_BYTES_PER_CELL) > limit {
        return Err(too_big(limit));
    }
    Ok(())
}

fn too_big(limit: usize) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the answer needs more memory than a request may take ({}); narrow the period or the filters, or ask for one block",
            if limit >= 1 << 20 {
                format!("{} MiB", limit >> 20)
            } else {
                format!("{} KiB", limit >> 10)
            }
        ),
    )
}

/// A buffer that refuses to grow past its limit.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("over the memory limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rendering_past_the_deadline_answers_503() {
        let s = Service::new(Default::default(), crate::Limits::default());
        let slow = || {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        };
        let r = render(&s, Instant::now() + Duration::from_millis(20), slow).await;
        let refusal = r.expect_err("the deadline passed");
        assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refusal.message.starts_with("the report took longer than"));
        let quick = render(&s, Instant::now() + Duration::from_secs(60), || Ok(7)).await;
        assert_eq!(quick.expect("in time"), 7);
    }

    #[test]
    fn a_capped_buffer_refuses_to_grow_past_its_limit() {
        use std::io::Write;
        let mut b = Capped {
            bytes: Vec::new(),
            limit: 5,
        };
        b.write_all(b"abc").unwrap();
        assert!(b.write_all(b"def").is_err());
        assert_eq!(b.bytes, b"abc");
    }
}
