//! `cargo bench -p svodka-service --bench serve`: the service with two clients (`acme`,
//! `beta`) on the default demo data over loopback — an uncached burst over both, latency
//! of an uncached and a cached `sales_plan`, requests per second at concurrency 32, and
//! the process's peak RSS. Figures, not assertions.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use svodka_service::{Limits, Service};

/// The clients' tokens.
const TOKENS: [&str; 2] = ["bench-acme", "bench-beta"];

/// Two clients over the demo data, each with its own token.
fn two_clients(data: &std::path::Path) -> Service {
    use svodka_service::clients::ClientConfig;
    let client = |id: &str, token: &str| {
        let config = ClientConfig {
            tokens: vec![svodka_service::auth::hash_token(token)],
            ..ClientConfig::over(id, data)
        };
        // No client folder: the shipped definitions.
        let dir = std::path::Path::new("/nonexistent-svodka-client");
        let client = svodka_service::Client::new(id.to_string(), dir, config).expect("client");
        (id.to_string(), Arc::new(client))
    };
    let clients = [client("acme", TOKENS[0]), client("beta", TOKENS[1])];
    Service::new(clients.into_iter().collect(), Limits::default())
}

fn get(addr: SocketAddr, path: &str) -> (u16, usize) {
    get_as(addr, TOKENS[0], path)
}

fn get_as(addr: SocketAddr, token: &str, path: &str) -> (u16, usize) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let status = std::str::from_utf8(&buf[9..12])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (status, buf.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// 64 callers at once over both clients, none cached: 32 distinct requests (each its own
/// run) and 32 identical ones per client pair (one shared run per client), against
/// `Limits::default()`'s run slots and queue.
fn burst(addr: SocketAddr) {
    let started = Instant::now();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let path = if i % 2 == 0 {
                format!(
                    "/api/reports/forgotten?from=2026-10-01&to=2026-10-31&set.deal_forgotten_days={}",
                    i / 2 + 1
                )
            } else {
                "/api/reports/sales_plan?from=2026-10-01&to=2026-10-31".to_string()
            };
            let token = TOKENS[i / 2 % 2];
            std::thread::spawn(move || {
                let t = Instant::now();
                let (status, _) = get_as(addr, token, &path);
                (status, t.elapsed().as_secs_f64() * 1000.0)
            })
        })
        .collect();
    let answers: Vec<(u16, f64)> = threads
        .into_iter()
        .map(|t| t.join().expect("a caller"))
        .collect();
    let mut ok: Vec<f64> = answers.iter().filter(|a| a.0 == 200).map(|a| a.1).collect();
    ok.sort_by(f64::total_cmp);
    let count = |s: u16| answers.iter().filter(|a| a.0 == s).count();
    let other = answers
        .iter()
        .filter(|a| ![200, 429, 503].contains(&a.0))
        .count();
    println!(
        "uncached burst of 64 over two clients (32 distinct, 32 identical): {} ok (p50 {:.0} ms, p99 {:.0} ms), {} busy (429), {} over the limits (503), {} errors, {:.1} s in all",
        ok.len(),
        percentile(&ok, 0.5),
        percentile(&ok, 0.99),
        count(429),
        count(503),
        other,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let data = svodka_sources::demo_dir(&mut |_, _| {}).expect("demo data");
    let started = Instant::now();
    let service = Arc::new(two_clients(&data));
    println!(
        "load: {:.2} s (two clients of 20 000 deals each, every table read and checked)",
        started.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(svodka_service::serve_until(
        service,
        listener,
        std::future::pending(),
    ));

    // Uncached: each request a different period end, so nothing is reused.
    let mut uncached = Vec::new();
    for day in 1..=20 {
        let t = Instant::now();
        let (status, _) = get(
            addr,
            &format!("/api/reports/sales_plan?from=2026-11-01&to=2026-11-{day:02}"),
        );
        assert_eq!(status, 200);
        uncached.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    uncached.sort_by(f64::total_cmp);
    burst(addr);
    let path = "/api/reports/sales_plan";
    let (_, size) = get(addr, path);
    let mut cached = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        get(addr, path);
        cached.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cached.sort_by(f64::total_cmp);
    println!(
        "sales_plan uncached (JSON): p50 {:.0} ms, p99 {:.0} ms over {} runs",
        percentile(&uncached, 0.5),
        percentile(&uncached, 0.99),
        uncached.len()
    );
    println!(
        "sales_plan cached (JSON, {} KB): p50 {:.1} ms, p99 {:.1} ms over {} requests",
        size / 1024,
        percentile(&cached, 0.5),
        percentile(&cached, 0.99),
        cached.len()
    );
    // Rendering: the same cached result as HTML and xlsx (the time is the renderer's).
    for format in ["html", "xlsx"] {
        let path = format!("/api/reports/sales_plan?format={format}");
        let (_, size) = get(addr, &path);
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            get(addr, &path);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "sales_plan cached as {format} ({} KB): p50 {:.1} ms, p99 {:.1} ms",
            size / 1024,
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    for (label, path) in [
        ("cached sales_plan JSON", "/api/reports/sales_plan"),
        (
            "cached forgotten block JSON",
            "/api/reports/forgotten/blocks/totals",
        ),
    ] {
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(10);
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (done, errors) = (done.clone(), errors.clone());
                std::thread::spawn(move || {
                    while Instant::now() < until {
                        let (status, _) = get(addr, path);
                        if status == 200 {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client");
        }
        println!(
            "{label} at concurrency 32: {:.0} requests/s over 10 s, {} errors",
            done.load(Ordering::Relaxed) as f64 / 10.0,
            errors.load(Ordering::Relaxed)
        );
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}
