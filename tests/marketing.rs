//! `marketing` (reports.md §3) on the `forgotten` fixture, April 2024 (as of April 30).
//! Leads received in April: 1 (Звонок, Анна), 2 (Сайт, Борис), 3 (Сайт, Вера, moved on to
//! «В работе» on April 2). Lead 4 (Звонок) was received on March 15 and converted on
//! April 10 — closed in the period although received before it; its deal 4 was won on
//! April 5 (5000). Lead 5 (Звонок) was received at 23:59 on March 31.

use serde_json::{Value, json};

use crate::util::{block, run_on_fixture};

fn run(extra: &[&str]) -> Value {
    run_on_fixture("marketing", None, "2024-04-01", "2024-04-30", extra)
}

#[test]
fn leads_summary() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "leads_summary")["rows"],
        json!([{"received": 3, "closed": 1, "quality": 1, "non_quality": 0, "conversion_pct": 100.0, "new": 2,
                "in_work": 1, "avg_processing_days": 26.0, "sales_count": 1, "sales_sum": 5000.0}])
    );
}

#[test]
fn sources() {
    let r = run(&[]);
    let by_source = block(&r, "by_source")["rows"].as_array().unwrap().clone();
    assert_eq!(by_source[0]["source"], "Сайт");
    assert_eq!(
        (
            by_source[0]["received"].clone(),
            by_source[0]["new"].clone(),
            by_source[0]["in_work"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(by_source[1]["source"], "Звонок");
    assert_eq!(
        (
            by_source[1]["conversion_pct"].clone(),
            by_source[1]["sales_sum"].clone()
        ),
        (json!(100.0), json!(5000.0))
    );
    assert_eq!(
        by_source[0]["children"]["months"][0]["period_start"],
        "2024-04-01"
    );
    assert_eq!(
        block(&r, "source_share")["rows"],
        json!([
            {"source_id": "WEB", "source": "Сайт", "received": 2, "share": 66.67, "quality": 0, "non_quality": 0, "new": 1, "in_work": 1},
            {"source_id": "CALL", "source": "Звонок", "received": 1, "share": 33.33, "quality": 1, "non_quality": 0, "new": 1, "in_work": 0},
        ])
    );
    // The 30 days before April (March 2–31) brought leads 4 and 5, both by phone.
    assert_eq!(
        block(&r, "top_sources")["rows"],
        json!([
            {"source_id": "WEB", "source": "Сайт", "period_start": "2024-04-01", "received": 2, "previous": 0, "change": 2},
            {"source_id": "CALL", "source": "Звонок", "period_start": "2024-04-01", "received": 1, "previous": 2, "change": -1},
        ])
    );
}

#[test]
fn statuses_funnel_and_lists() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "lead_stages")["rows"],
        json!([
            {"status_id": "NEW", "status": "Не обработан", "sort": 10, "reached": 3, "reached_pct": 100.0},
            {"status_id": "IN_PROCESS", "status": "В работе", "sort": 20, "reached": 1, "reached_pct": 33.33},
            {"status_id": "CONVERTED", "status": "Качественный", "sort": 30, "reached": 0, "reached_pct": 0.0},
        ])
    );
    assert_eq!(
        block(&r, "funnel")["rows"],
        json!([
            {"step": "leads_received", "count": 3.0},
            {"step": "converted_to_deal", "count": 0.0},
            {"step": "won", "count": 1.0},
        ])
    );
    let ids: Vec<i64> = block(&r, "leads")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![3, 1, 2, 5],
        "open leads, longest in their status first"
    );
    assert_eq!(block(&r, "leads")["rows"][0]["days_in_status"], 28);
    assert_eq!(
        block(&r, "employee_status")["rows"],
        json!([
            {"employee_id": 1, "employee": "Анна", "status_id": "NEW", "status": "Не обработан", "leads": 1},
            {"employee_id": 2, "employee": "Борис", "status_id": "NEW", "status": "Не обработан", "leads": 1},
            {"employee_id": 3, "employee": "Вера", "status_id": "IN_PROCESS", "status": "В работе", "leads": 1},
        ])
    );
    let dynamics = run(&["--param", "metric=in_work", "--block", "source_dynamics"]);
    let web = block(&dynamics, "source_dynamics")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_id"] == "WEB")
        .unwrap()
        .clone();
    assert_eq!(web["value"], 1);
}
