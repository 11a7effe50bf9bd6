//! A full sync of the default demo data (20 000 deals) from the emulated portal at the
//! real rate limit (2 requests/s, 50 at once), against the ceiling of 2 × 50 × 50 rows a
//! second; then an incremental sync after 1% of the records changed, without and with the
//! sweep for deletions; then what reading timeline comments costs.
//!
//! `cargo bench -p svodka-emulator-bitrix24` (SVODKA_BENCH_DEALS to change the size).

use std::time::{Duration, Instant};

use svodka_bitrix24::pace::Limit;
use svodka_bitrix24::portal::{Auth, Portal};
use svodka_bitrix24::sync::{Outcome, SyncOptions, sync};
use svodka_emulator_bitrix24::{Emulator, Faults};
use svodka_store::Store;

fn report(what: &str, o: &Outcome, requests: u64) {
    println!(
        "{what}: {} rows in {:.1} s = {:.0} rows/s; {} HTTP requests ({} counted by the portal)",
        o.rows_read,
        o.seconds,
        o.rows_read as f64 / o.seconds,
        o.requests,
        requests
    );
}

fn main() {
    let deals: usize = std::env::var("SVODKA_BENCH_DEALS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(20_000);
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    svodka_demo::generate(
        &svodka_demo::DemoConfig { deals, seed: 42 },
        data.path(),
        &mut |_, _| {},
    )
    .unwrap();
    println!(
        "demo data ({deals} deals) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let portal = Emulator::start(data.path()).unwrap();
    let records: usize = [
        "companies",
        "contacts",
        "leads",
        "deals",
        "activities",
        "stage_history",
    ]
    .iter()
    .map(|t| portal.with(|p| p.count(t)))
    .sum();
    println!("portal records: {records}");
    portal.set_faults(Faults {
        limit: Some((2.0, 50.0)),
        ..Default::default()
    });
    let store = tempfile::tempdir().unwrap();
    let store = Store::new(store.path());
    let mut client = Portal::new(
        Auth::Webhook {
            url: portal.webhook(),
        },
        Limit::STANDARD,
    );
    let options = SyncOptions::new("emulator");
    let full = sync(&mut client, &store, &options, &mut |_| {}).unwrap();
    let (requests, refused) = portal.requests();
    report("full sync", &full, requests);
    println!(
        "  ceiling 2 req/s × 50 × 50 = 5000 rows/s sustained; {refused} requests refused for the rate"
    );

    // 1% of the records changed.
    let changed = portal.with(|p| {
        let mut n = 0;
        for (table, column) in [
            ("deals", "title"),
            ("leads", "title"),
            ("companies", "title"),
            ("contacts", "name"),
            ("activities", "completed"),
        ] {
            let ids: Vec<i64> = p.tables[table].rows.iter().map(|r| r.wire_id).collect();
            for id in ids.iter().step_by(100) {
                let value = if column == "completed" {
                    "true"
                } else {
                    "Изменено"
                };
                p.edit(table, *id, column, Some(value));
                n += 1;
            }
        }
        n
    });
    println!("changed {changed} records (1%)");
    std::thread::sleep(Duration::from_secs(30)); // the bucket drains
    let before = portal.requests().0;
    let incremental = sync(&mut client, &store, &options, &mut |_| {}).unwrap();
    report(
        "incremental sync",
        &incremental,
        portal.requests().0 - before,
    );
    std::thread::sleep(Duration::from_secs(30));
    let mut sweeping = options.clone();
    sweeping.sweep_every = Duration::ZERO;
    let before = portal.requests().0;
    let swept = sync(&mut client, &store, &sweeping, &mut |_| {}).unwrap();
    report(
        "incremental sync with the id sweep",
        &swept,
        portal.requests().0 - before,
    );

    // Timeline comments: one subquery per company, contact, lead and deal. Measured on a
    // small data set without the limit (the emulator scans activities per subquery), in
    // requests.
    let small = tempfile::tempdir().unwrap();
    svodka_demo::generate(
        &svodka_demo::DemoConfig {
            deals: 1_000,
            seed: 42,
        },
        small.path(),
        &mut |_, _| {},
    )
    .unwrap();
    let portal = Emulator::start(small.path()).unwrap();
    let items = portal.with(|p| {
        ["companies", "contacts", "leads", "deals"]
            .iter()
            .map(|t| p.count(t))
            .sum::<usize>()
    });
    let fast = || {
        Portal::new(
            Auth::Webhook {
                url: portal.webhook(),
            },
            Limit {
                rate: 1000.0,
                burst: 1000.0,
            },
        )
    };
    let without = {
        let dir = tempfile::tempdir().unwrap();
        sync(&mut fast(), &Store::new(dir.path()), &options, &mut |_| {})
            .unwrap()
            .requests
    };
    let mut with_comments = options.clone();
    with_comments.comments = true;
    let with = {
        let dir = tempfile::tempdir().unwrap();
        sync(
            &mut fast(),
            &Store::new(dir.path()),
            &with_comments,
            &mut |_| {},
        )
        .unwrap()
        .requests
    };
    println!(
        "comments: {items} companies, contacts, leads and deals cost {} more requests ({without} → {with}): {:.3} per item, {:.0} s more at 2 requests/s",
        with - without,
        (with - without) as f64 / items as f64,
        (with - without) as f64 / 2.0
    );
}
