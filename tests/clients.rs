//! `clients` (reports.md §6) on the `forgotten` fixture, April 2024 (as of April 30).
//! 1C: counterparties A and B share Ромашка's INN (B typed with spaces, another KPP: a
//! branch); C («Лютик») has no CRM company. Posted sales in April: A 1000 (3rd), B 500
//! (20th); B's 700 on the 21st is not posted; A sold 3000 on March 10 (the 30 days before
//! April are March 2–31); C sold 800. CRM: Ромашка won deal 4; a call on the company on
//! the 29th; its deals were last touched at 01:00 on April 17. Василёк has nothing.

use serde_json::{Value, json};

use crate::util::{block, run_on_fixture};

fn run(extra: &[&str]) -> Value {
    run_on_fixture("clients", None, "2024-04-01", "2024-04-30", extra)
}

#[test]
fn by_client_rolls_branches_up_by_inn() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "by_client")["rows"][0],
        json!({"company_id": 1, "company": "ООО «Ромашка»", "inn": "7701234567", "turnover": 1500.0, "orders": 2,
               "volume": 7.5, "plan": 0.0, "completion_pct": null, "deals_won": 1, "calls": 1, "emails": 0,
               "meetings": 0, "last_touch_at": "2024-04-17T01:00:00+03:00", "turnover_prev": 3000.0,
               "turnover_change_pct": -50.0})
    );
    // A company with no 1C match is listed, never dropped.
    assert_eq!(
        block(&r, "by_client")["rows"][1]["company"],
        "ООО «Василёк»"
    );
    assert_eq!(
        block(&r, "client_dynamics")["rows"],
        json!([{"company_id": 1, "company": "ООО «Ромашка»", "period_start": "2024-04-01", "turnover": 1500.0, "orders": 2, "volume": 7.5}])
    );
}

#[test]
fn at_risk_needs_both_a_drop_and_silence() {
    // Turnover fell 50 %, but the last touch was 13 days before as_of (< 30).
    let r = run(&[]);
    assert_eq!(block(&r, "at_risk")["rows"], json!([]));
    let r = run(&["--set", "at_risk_no_touch_days=13"]);
    let rows = block(&r, "at_risk")["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["company"].clone(),
            rows[0]["days_since_touch"].clone()
        ),
        (json!("ООО «Ромашка»"), json!(13))
    );
    let r = run(&[
        "--set",
        "at_risk_no_touch_days=13",
        "--set",
        "at_risk_drop_pct=51",
    ]);
    assert_eq!(block(&r, "at_risk")["rows"], json!([]));
}

#[test]
fn unmatched_on_either_side() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "unmatched")["rows"],
        json!([{"side": "onec", "id": "C", "name": "Лютик", "inn": "5000000001", "turnover": 800.0, "deals_won": 0}])
    );
}

#[test]
fn crm_companies_without_1c_are_listed_too() {
    // The `edges` fixture has no 1C data at all: company 10 won deals 1 and 2 in April.
    let data = crate::util::fixture("edges");
    let r = crate::util::json(&[
        "run",
        "clients",
        "--data",
        data.to_str().unwrap(),
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
        "--block",
        "unmatched",
    ]);
    assert_eq!(
        block(&r, "unmatched")["rows"],
        json!([{"side": "crm", "id": "10", "name": null, "inn": null, "turnover": 0.0, "deals_won": 2}])
    );
}
