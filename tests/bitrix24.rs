//! The Bitrix24 connector end to end against the emulated portal
//! (`tests/emulators/bitrix24`): a full sync gives the generator's tables and the same
//! report JSON as the CSV; an incremental sync reads what changed and sweeps what was
//! deleted; every injected fault is recovered from; a killed sync leaves the old snapshot
//! and the next one resumes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use svodka_bitrix24::pace::Limit;
use svodka_bitrix24::portal::{Auth, Portal};
use svodka_bitrix24::sync::{SyncOptions, TABLES, sync};
use svodka_emulator_bitrix24::{Change, Emulator, Fault, Faults};
use svodka_store::Store;

use crate::util::{REPORTS, csv_lines, fails, ok, store_lines, svodka};

/// A limit the tests never wait for.
const FAST: &str = "1000/1000";

/// A small demo data set (and its folder).
fn demo(deals: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--out",
        dir.path().to_str().unwrap(),
        "--deals",
        deals,
        "--seed",
        "11",
    ]);
    dir
}

/// Every CRM table of the store equals the portal's records.
fn assert_synced(store: &Path, portal: &Emulator) {
    let expected = tempfile::tempdir().unwrap();
    portal.write_csv(expected.path()).unwrap();
    for table in TABLES {
        let (got, want) = (store_lines(store, table), csv_lines(expected.path(), table));
        assert_eq!(got.len(), want.len(), "{table}: rows");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{table}: first difference\n got: {}\nwant: {}",
                got[i], want[i]
            );
        }
    }
}

fn options() -> SyncOptions {
    let mut o = SyncOptions::new("emulator");
    o.comments = true;
    o
}

#[test]
fn a_full_sync_gives_the_generator_tables_and_the_same_reports() {
    let data = demo("150");
    let d = data.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    // Plans and 1C come from the CSV folder; the sync replaces the CRM tables.
    ok(&["store", "import", "--data", d, "--store", s]);
    let portal = Emulator::start(data.path()).unwrap();
    let out = ok(&[
        "sync",
        "--data",
        s,
        "--bitrix24",
        &portal.webhook(),
        "--comments",
        "--rate-limit",
        FAST,
    ]);
    assert!(out.starts_with("snapshot 000002 (full sync): "), "{out}");
    assert!(out.contains("  plans: "), "plans carried over: {out}");
    assert!(
        out.contains("unmapped: activities.kind \"TYPE_ID 6 REST_APP\": "),
        "activities of unknown providers are counted as other: {out}"
    );
    assert_synced(store.path(), &portal);
    // The generator's own tables, but for comments' ids (negative: an id space of their own).
    for table in [
        "deals",
        "leads",
        "stage_history",
        "companies",
        "users",
        "stages",
    ] {
        assert_eq!(
            store_lines(store.path(), table),
            csv_lines(data.path(), table),
            "{table}"
        );
    }
    for report in REPORTS {
        let run = |data: &str| {
            ok(&[
                "run",
                report,
                "--data",
                data,
                "--from",
                "2026-06-01",
                "--to",
                "2026-11-30",
                "--as-of",
                "2026-11-25",
            ])
        };
        assert_eq!(run(s), run(d), "{report}");
    }
    // One request counts the lists; every list then takes a batch per 2 500 rows.
    let (requests, refused) = portal.requests();
    assert_eq!(refused, 0);
    assert!(requests < 40, "{requests} requests");
    let log = portal.log();
    assert!(log.iter().all(|m| m.starts_with("batch:")), "{log:?}");
}

#[test]
fn an_incremental_sync_reads_what_changed_and_sweeps_deletions() {
    let data = demo("120");
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    let webhook = portal.webhook();
    let sync_args = |extra: &[&str]| {
        let mut a = vec![
            "sync",
            "--data",
            s,
            "--bitrix24",
            &webhook,
            "--comments",
            "--rate-limit",
            FAST,
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = sync_args(extra);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let first = run(&[]);
    // Nothing changed: nothing read but the small lists.
    let out = run(&[]);
    assert!(out.contains("(incremental sync): "), "{out}");
    assert!(out.contains("  deals: 120 (0 new or changed)"), "{out}");
    // A day in the CRM.
    let (deal, lead) = (7, 9);
    portal.with(|p| {
        p.edit("deals", 3, "title", Some("Переименованная сделка"));
        p.move_deal(deal, "WON", "success");
        p.delete("leads", lead);
        p.delete("deals", 11);
        p.edit("companies", 2, "inn", Some("7700000002"));
        p.edit("contacts", 4, "name", Some("Ирина Новикова"));
        p.add_call("deal", deal, 1);
    });
    let before = portal.requests().0;
    let out = run(&["--sweep"]);
    assert!(out.contains("(incremental sync, ids swept)"), "{out}");
    assert!(
        out.contains("  deals: 119 (2 new or changed, 1 removed)"),
        "{out}"
    );
    let leads = csv_lines(data.path(), "leads").len();
    assert!(
        out.contains(&format!(
            "  leads: {} (0 new or changed, 1 removed)",
            leads - 1
        )),
        "{out}"
    );
    assert!(
        out.contains("  companies: ") && out.contains("  stage_history: "),
        "{out}"
    );
    // The edited company, the renamed contact; the new call and, as the sweep reads every
    // item's comments again, all the portal's comments; the moved deal's new stage.
    let expected = tempfile::tempdir().unwrap();
    portal.write_csv(expected.path()).unwrap();
    let comments = csv_lines(expected.path(), "activities")
        .iter()
        .filter(|l| l.contains("|comment|"))
        .count();
    let activities = format!(
        "  activities: {} ({} new or changed, ",
        csv_lines(expected.path(), "activities").len(),
        comments + 1
    );
    for line in [
        "  companies: 90 (1 new or changed)",
        "  contacts: 135 (1 new or changed)",
        activities.as_str(),
        "(1 new or changed)\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert_synced(store.path(), &portal);
    assert!(portal.requests().0 > before);
    assert!(first.contains("(full sync)"), "{first}");
}

#[test]
fn comments_on_companies_and_contacts_credit_their_author() {
    let data = demo("120");
    // An employee whose only work is a comment on a company and one on a contact.
    let users = data.path().join("users.csv");
    let text = std::fs::read_to_string(&users).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let first: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    let row: Vec<&str> = header
        .iter()
        .zip(&first)
        .map(|(column, value)| match *column {
            "id" => "900",
            "name" => "Ирина Комментаторова",
            "department_id" => value,
            "active" => "true",
            _ => "",
        })
        .collect();
    std::fs::write(&users, format!("{text}{}\n", row.join(","))).unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    let webhook = portal.webhook();
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "--data", s, "--bitrix24", &webhook, "--comments"];
        args.extend_from_slice(&["--rate-limit", FAST]);
        args.extend_from_slice(extra);
        ok(&args)
    };
    sync(&[]);
    // 2026-11-20 10:00 Moscow: inside the report's period below.
    portal.with(|p| {
        p.clock = Some(1_795_158_000);
        p.add_comment("company", 2, 900);
        p.add_comment("contact", 4, 900);
        p.clock = None;
    });
    let comment_requests = |since: usize| {
        portal.log()[since..]
            .iter()
            .filter(|m| *m == "batch:crm.timeline.comment.list")
            .count()
    };
    // A comment leaves its item unmodified: an incremental sync reads no comments…
    let before = portal.log().len();
    sync(&[]);
    assert_eq!(comment_requests(before), 0);
    // Activities' sixth column is `responsible_id`.
    let authored = |store: &Path| {
        store_lines(store, "activities")
            .iter()
            .filter(|l| l.split('|').nth(5) == Some("900"))
            .count()
    };
    assert_eq!(authored(store.path()), 0);
    // …the daily sweep reads every item's, 50 items a request.
    let before = portal.log().len();
    let out = sync(&["--sweep"]);
    assert!(out.contains("(incremental sync, ids swept)"), "{out}");
    let items: usize = portal.with(|p| {
        ["companies", "contacts", "leads", "deals"]
            .iter()
            .map(|t| p.count(t))
            .sum()
    });
    assert_eq!(comment_requests(before), items.div_ceil(50));
    assert_synced(store.path(), &portal);
    assert_eq!(authored(store.path()), 2);
    // The same reports as from the portal's records written as CSV.
    let csv = tempfile::tempdir().unwrap();
    portal.write_csv(csv.path()).unwrap();
    std::fs::copy(
        data.path().join("dataset.yaml"),
        csv.path().join("dataset.yaml"),
    )
    .unwrap();
    let run = |data: &Path| {
        crate::util::json(&[
            "run",
            "manager_efficiency",
            "--data",
            data.to_str().unwrap(),
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--as-of",
            "2026-11-25",
            "--format",
            "json",
        ])
    };
    let report = run(store.path());
    assert_eq!(report, run(csv.path()));
    let rows = crate::util::block(&report, "activity_index")["rows"]
        .as_array()
        .unwrap()
        .clone();
    let irina = rows
        .iter()
        .find(|r| r["employee"] == "Ирина Комментаторова")
        .expect("the commenting employee has a row");
    assert_eq!(irina["comments"], 2, "{irina}");
    assert_eq!(irina["calls"], 0, "{irina}");
    let points: f64 = rows.iter().map(|r| r["points"].as_f64().unwrap()).sum();
    let index = irina["activity_index"].as_f64().unwrap();
    assert!(
        (index - 100.0 * 2.0 / points).abs() < 0.01,
        "{index} of {points}"
    );
}

#[test]
fn every_fault_is_recovered_from_with_nothing_lost_or_duplicated() {
    let data = demo("150");
    let store = tempfile::tempdir().unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    let (endpoint, access, refresh, token_url) = portal.oauth();
    let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = stored.clone();
    let mut c = Portal::new(
        Auth::OAuth {
            endpoint,
            access_token: access,
            refresh_token: refresh,
            client_id: svodka_emulator_bitrix24::CLIENT_ID.into(),
            client_secret: svodka_emulator_bitrix24::CLIENT_SECRET.into(),
            token_url,
        },
        Limit {
            rate: 1000.0,
            burst: 1000.0,
        },
    )
    .timeout(Duration::from_millis(1500))
    .on_refresh(move |a, r| keep.lock().unwrap().push((a.to_string(), r.to_string())));
    let faults = Faults {
        at: BTreeMap::from([
            (2, Fault::RateLimited),
            (3, Fault::RateLimited),
            (4, Fault::TimeLimited),
            (5, Fault::Truncated),
            (6, Fault::ExpiredToken),
            (8, Fault::ServerError),
            (9, Fault::Slow(Duration::from_secs(3))),
            (11, Fault::SubqueryRateLimited),
            (13, Fault::Slow(Duration::from_millis(300))),
        ]),
        // Between pages of the activities: one edited, one deleted, a deal moved.
        changes: BTreeMap::from([(
            12,
            vec![
                Change::Edit {
                    table: "deals".into(),
                    id: 2,
                    column: "title".into(),
                    value: Some("Изменена во время выгрузки".into()),
                },
                Change::Delete {
                    table: "activities".into(),
                    id: 40,
                },
                Change::MoveDeal {
                    id: 5,
                    stage: "LOSE".into(),
                    semantic: "failure".into(),
                },
            ],
        )]),
        limit: None,
    };
    portal.set_faults(faults);
    let mut o = options();
    o.pages_per_batch = 2;
    let full = sync(&mut c, &Store::new(store.path()), &o, &mut |_| {}).unwrap();
    assert!(full.full);
    assert_eq!(
        stored.lock().unwrap().as_slice(),
        [("access2".to_string(), "refresh2".to_string())],
        "the refreshed pair is handed over to be stored"
    );
    assert_eq!(portal.requests().1, 2, "two refusals for the rate");
    // What changed behind the read cursor is read by the next sync.
    o.sweep_every = Duration::ZERO;
    let next = sync(&mut c, &Store::new(store.path()), &o, &mut |_| {}).unwrap();
    assert!(!next.full && next.swept);
    assert_synced(store.path(), &portal);
}

#[test]
fn the_leaky_bucket_is_kept_and_refusals_are_waited_out() {
    let data = demo("60");
    let store = tempfile::tempdir().unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    // The portal holds 4 requests and drains 10 a second; the client believes it may send
    // 40 at once: the portal refuses, the client backs off and completes.
    portal.set_faults(Faults {
        limit: Some((10.0, 4.0)),
        ..Default::default()
    });
    let mut c = Portal::new(
        Auth::Webhook {
            url: portal.webhook(),
        },
        Limit {
            rate: 10.0,
            burst: 40.0,
        },
    );
    let mut o = options();
    o.pages_per_batch = 1;
    sync(&mut c, &Store::new(store.path()), &o, &mut |_| {}).unwrap();
    let (requests, refused) = portal.requests();
    assert!(refused > 0, "{requests} requests, none refused");
    assert_synced(store.path(), &portal);
    // Kept to the portal's own limit, nothing is refused.
    let calm = Emulator::start(data.path()).unwrap();
    calm.set_faults(Faults {
        limit: Some((10.0, 4.0)),
        ..Default::default()
    });
    let mut c = Portal::new(
        Auth::Webhook {
            url: calm.webhook(),
        },
        Limit {
            rate: 10.0,
            burst: 4.0,
        },
    );
    let other = tempfile::tempdir().unwrap();
    sync(&mut c, &Store::new(other.path()), &o, &mut |_| {}).unwrap();
    assert_eq!(calm.requests().1, 0);
}

#[test]
fn a_killed_sync_leaves_the_old_snapshot_and_the_next_resumes() {
    let data = demo("150");
    let d = data.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
    let portal = Emulator::start(data.path()).unwrap();
    // Slow answers, so that the kill comes midway.
    portal.set_faults(Faults {
        at: (1..400)
            .map(|n| (n, Fault::Slow(Duration::from_millis(150))))
            .collect(),
        ..Default::default()
    });
    let mut child = crate::util::svodka_command()
        .args([
            "sync",
            "--data",
            s,
            "--bitrix24",
            &portal.webhook(),
            "--rate-limit",
            FAST,
            "--batch-pages",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = store.path().join("bitrix24.sync/state.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.contains("\"rows\": 100") || text.contains("\"rows\": 150") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync made no progress: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The old snapshot is current and whole.
    let shown = ok(&["store", "show", "--store", s]);
    assert!(shown.starts_with("snapshot 000001 (csv import)"), "{shown}");
    assert_eq!(
        store_lines(store.path(), "deals"),
        csv_lines(data.path(), "deals")
    );
    ok(&["run", "forgotten", "--data", s]);
    // The next run goes on from the spool.
    portal.set_faults(Faults::default());
    let before = portal.requests().0;
    let out = ok(&[
        "sync",
        "--data",
        s,
        "--bitrix24",
        &portal.webhook(),
        "--rate-limit",
        FAST,
    ]);
    assert!(out.contains("resumed after "), "{out}");
    assert!(out.starts_with("snapshot 000002 (full sync)"), "{out}");
    assert!(
        !store.path().join("bitrix24.sync").exists(),
        "the spool is removed"
    );
    let resumed = portal.requests().0 - before;
    let fresh = tempfile::tempdir().unwrap();
    let before = portal.requests().0;
    ok(&[
        "sync",
        "--data",
        fresh.path().to_str().unwrap(),
        "--bitrix24",
        &portal.webhook(),
        "--rate-limit",
        FAST,
        "--batch-pages",
        "1",
    ]);
    assert!(
        resumed < portal.requests().0 - before,
        "resumed {resumed} requests"
    );
    // Comments were not asked for: the portal's activities but its comments.
    let expected = tempfile::tempdir().unwrap();
    portal.write_csv(expected.path()).unwrap();
    let want: Vec<String> = csv_lines(expected.path(), "activities")
        .into_iter()
        .filter(|l| !l.contains("|comment|"))
        .collect();
    assert_eq!(store_lines(store.path(), "activities"), want);
    assert_eq!(
        store_lines(store.path(), "deals"),
        csv_lines(data.path(), "deals")
    );
}

#[test]
fn custom_fields_become_columns_and_retention_trims_history() {
    let data = demo("80");
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    ok(&[
        "sync",
        "--data",
        s,
        "--bitrix24",
        &portal.webhook(),
        "--rate-limit",
        FAST,
        "--field",
        "deals.UF_CRM_1700000001=region",
        "--field",
        "deals.UF_CRM_1700000002=tags",
        "--retention-months",
        "6",
    ]);
    let snap = Store::new(store.path()).current().unwrap();
    let (_, deals) = snap.read("deals").unwrap();
    let deals = arrow::compute::concat_batches(&deals[0].schema(), &deals).unwrap();
    let ids = deals.column_by_name("id").unwrap();
    let ids = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(ids.as_ref());
    let region =
        arrow::array::AsArray::as_string::<i32>(deals.column_by_name("region").unwrap().as_ref());
    let tags =
        arrow::array::AsArray::as_string::<i32>(deals.column_by_name("tags").unwrap().as_ref());
    for i in 0..deals.num_rows() {
        let (r, t) = svodka_emulator_bitrix24::portal::deal_custom_fields(ids.value(i));
        assert_eq!(region.value(i), r);
        let t = t.join(", ");
        assert_eq!(
            arrow::array::Array::is_null(tags, i),
            t.is_empty(),
            "empty multiple field is null"
        );
        if !t.is_empty() {
            assert_eq!(tags.value(i), t);
        }
    }
    // A report groups by the new column with no Rust: a custom model over deals.
    let reports = tempfile::tempdir().unwrap();
    crate::util::write(
        reports.path(),
        "region_deals.yaml",
        "model: region_deals\nlabel: Сделки по регионам\nfrom: deals\nmeasures:\n  count: { expr: count(*), label: Сделок }\n",
    );
    crate::util::write(
        reports.path(),
        "by_region.yaml",
        "report: by_region\ntitle: Сделки по регионам\nblocks:\n  - id: regions\n    title: Регионы\n    from: region_deals\n    by: [region]\n    measures: [count]\n    sort: [region]\n",
    );
    let out = svodka(&[
        "run",
        "by_region",
        "--data",
        s,
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Север") && text.contains("Восток"), "{text}");
    // Six months of activities and stage history before the (pinned) day of the sync;
    // deals and leads are kept whole.
    let cutoff = crate::util::clock()
        .today(&chrono_tz::Europe::Moscow)
        .checked_sub_months(chrono::Months::new(6))
        .unwrap()
        .to_string();
    assert_eq!(cutoff, "2026-05-27");
    let cutoff = cutoff.as_str();
    let expected = tempfile::tempdir().unwrap();
    portal.write_csv(expected.path()).unwrap();
    let since = |table: &str, column: usize| -> Vec<String> {
        csv_lines(expected.path(), table)
            .into_iter()
            .filter(|l| l.split('|').nth(column).unwrap() >= cutoff)
            .filter(|l| !l.contains("|comment|"))
            .collect()
    };
    assert_eq!(
        store_lines(store.path(), "activities"),
        since("activities", 6)
    );
    assert_eq!(
        store_lines(store.path(), "stage_history"),
        since("stage_history", 5)
    );
    assert_eq!(
        store_lines(store.path(), "leads").len(),
        csv_lines(data.path(), "leads").len()
    );
}

#[test]
fn a_refused_webhook_is_named_and_the_store_is_untouched() {
    let data = demo("40");
    let d = data.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
    let portal = Emulator::start(data.path()).unwrap();
    let wrong = portal.webhook().replace("k3y5ecret", "wrong");
    let err = fails(&["sync", "--data", s, "--bitrix24", &wrong]);
    assert!(
        err.contains("Bitrix24 batch: HTTP 401 NO_AUTH_FOUND: Wrong authorization data"),
        "{err}"
    );
    assert!(ok(&["store", "show", "--store", s]).starts_with("snapshot 000001"));
    let webhook = portal.webhook();
    let refused = |extra: &[&str]| {
        let mut args = vec!["sync", "--data", s, "--bitrix24", &webhook];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let err = refused(&["--field", "deals.TITLE=name"]);
    assert!(err.contains("custom fields start with UF_"), "{err}");
    let err = refused(&["--field", "deals.UF_X=title"]);
    assert!(err.contains("`title` must be a new column"), "{err}");
    let err = refused(&["--rate-limit", "fast"]);
    assert!(err.contains("--rate-limit: expected RATE/BURST"), "{err}");
}

#[test]
fn a_client_syncs_with_its_oauth_app_and_keeps_the_refreshed_token() {
    let data = demo("40");
    let portal = Emulator::start(data.path()).unwrap();
    let (endpoint, access, refresh, token_url) = portal.oauth();
    let config = tempfile::tempdir().unwrap();
    let client = config.path().join("clients/acme");
    std::fs::create_dir_all(&client).unwrap();
    crate::util::write(
        &client,
        "client.yaml",
        &format!(
            "name: ООО «Акме»\ntimezone: Europe/Moscow\ndata: {{ folder: store }}\nretention_months: 120\n\
             bitrix24:\n  oauth: {{ endpoint: \"{endpoint}\", tokens: bitrix24-tokens.json, token_url: \"{token_url}\" }}\n  comments: true\n"
        ),
    );
    crate::util::write(
        &client,
        "bitrix24-tokens.json",
        &format!(
            "{{\"client_id\": \"{}\", \"client_secret\": \"{}\", \"access_token\": \"{access}\", \"refresh_token\": \"{refresh}\"}}",
            svodka_emulator_bitrix24::CLIENT_ID,
            svodka_emulator_bitrix24::CLIENT_SECRET
        ),
    );
    portal.set_faults(Faults {
        at: BTreeMap::from([(2, Fault::ExpiredToken)]),
        ..Default::default()
    });
    let c = config.path().to_str().unwrap();
    let out = ok(&[
        "sync",
        "--client",
        "acme",
        "--config",
        c,
        "--rate-limit",
        FAST,
    ]);
    assert!(out.starts_with("snapshot 000001 (full sync)"), "{out}");
    let tokens = std::fs::read_to_string(client.join("bitrix24-tokens.json")).unwrap();
    assert!(
        tokens.contains("\"access_token\": \"access2\"")
            && tokens.contains("\"refresh_token\": \"refresh2\""),
        "the new pair is stored: {tokens}"
    );
    assert_synced(&client.join("store"), &portal);
    // The client's reports run on what was synced.
    let info = Store::new(client.join("store"))
        .current()
        .unwrap()
        .info
        .unwrap();
    assert_eq!(info.name, "ООО «Акме»");
    ok(&["check", "--client", "acme", "--config", c]);
    // A client without the section is told so.
    let other = config.path().join("clients/beta");
    std::fs::create_dir_all(&other).unwrap();
    crate::util::write(
        &other,
        "client.yaml",
        "name: Бета\ndata: { folder: store }\n",
    );
    let err = fails(&["sync", "--client", "beta", "--config", c]);
    assert!(err.contains("client.yaml: no `bitrix24:` section"), "{err}");
}
