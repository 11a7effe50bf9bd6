//! `forgotten` (reports.md §5) on the hand-made fixture in tests/fixtures/forgotten.
//!
//! Period April 2024, `as_of` 2024-04-30, Europe/Moscow. The fixture's edge cases:
//! deal 1 touched exactly 14 days before `as_of` (forgotten) and has a task completed only
//! after `as_of` (so it still counts as planned); deal 2 touched at 01:00 Moscow on the 17th,
//! which is the 16th in UTC (13 days: not forgotten); deal 3 never had an activity; deal 4
//! closed before `as_of`; deal 5 closed after `as_of` (open then; its stage then was «Новая»),
//! with an activity on its company and one after `as_of`, neither of which counts; deal 6
//! created 00:10 Moscow on April 1 (in the period), its employee without a department;
//! deal 7 created 23:30 Moscow on March 31 (not in the period), touched only by a stage
//! move; deal 8 created after `as_of`; deal 9 lost in the period. Leads likewise: lead 3
//! touched exactly 3 days before, an activity on contact 3 that must not count.

use serde_json::{Value, json};

use crate::util::{block, fails_on_fixture, run_on_fixture};

/// `forgotten` over `from`–`to` on the fixture, with extra arguments.
fn run_period(from: &str, to: &str, extra: &[&str]) -> Value {
    run_on_fixture("forgotten", None, from, to, extra)
}

/// April 2024, `as_of` its last day.
fn run(extra: &[&str]) -> Value {
    run_period("2024-04-01", "2024-04-30", extra)
}

fn rows(report: &Value, id: &str) -> Vec<Value> {
    block(report, id)["rows"].as_array().unwrap().clone()
}

#[test]
fn totals() {
    let r = run(&[]);
    assert_eq!(r["params"]["as_of"], "2024-04-30");
    assert_eq!(
        rows(&r, "totals"),
        vec![json!({
            "leads_created": 3, "deals_created": 3,
            "open_leads": 4, "open_deals": 6,
            "forgotten_leads": 2, "forgotten_deals": 4,
            // deals 1, 3 (no amount: counts as 0), 5, 7
            "forgotten_sum": 4400.5
        })]
    );
}

#[test]
fn by_department() {
    let r = run(&[]);
    assert_eq!(
        rows(&r, "by_department"),
        vec![
            json!({"department_id": 1, "department": "Продажи", "forgotten_leads": 1, "forgotten_deals": 3,
                   "forgotten_sum": 1400.5, "deals_created": 2, "forgotten_share": 50.0}),
            json!({"department_id": 2, "department": "Опт", "forgotten_leads": 1, "forgotten_deals": 1,
                   "forgotten_sum": 3000.0, "deals_created": 0, "forgotten_share": null}),
            // Глеб has no department: his deal 6 lands in the null department.
            json!({"department_id": null, "department": null, "forgotten_leads": 0, "forgotten_deals": 0,
                   "forgotten_sum": 0.0, "deals_created": 1, "forgotten_share": 0.0}),
        ]
    );
}

#[test]
fn by_employee() {
    let r = run(&[]);
    assert_eq!(
        rows(&r, "by_employee"),
        vec![
            json!({"employee_id": 1, "employee": "Анна", "forgotten_leads": 1, "forgotten_deals": 2,
                   "forgotten_sum": 1400.5, "deals_created": 0, "forgotten_share": null}),
            json!({"employee_id": 2, "employee": "Борис", "forgotten_leads": 0, "forgotten_deals": 1,
                   "forgotten_sum": 0.0, "deals_created": 2, "forgotten_share": 50.0}),
            json!({"employee_id": 3, "employee": "Вера", "forgotten_leads": 1, "forgotten_deals": 1,
                   "forgotten_sum": 3000.0, "deals_created": 0, "forgotten_share": null}),
            json!({"employee_id": 4, "employee": "Глеб", "forgotten_leads": 0, "forgotten_deals": 0,
                   "forgotten_sum": 0.0, "deals_created": 1, "forgotten_share": 0.0}),
        ]
    );
}

#[test]
fn forgotten_leads_list() {
    let r = run(&[]);
    assert_eq!(
        rows(&r, "forgotten_leads"),
        vec![
            json!({"id": 1, "title": "Лид один", "employee": "Анна", "stage": "Не обработан", "amount": null,
                   "last_touch_at": "2024-04-25T10:00:00+03:00", "days_since_touch": 5,
                   "last_activity_kind": null, "reason": "no_activity", "no_planned_activity": true,
                   "url": "https://fixture.bitrix24.ru/crm/lead/details/1/"}),
            json!({"id": 3, "title": "Лид три", "employee": "Вера", "stage": "В работе", "amount": 150.0,
                   "last_touch_at": "2024-04-27T10:00:00+03:00", "days_since_touch": 3,
                   "last_activity_kind": "email", "reason": "stale", "no_planned_activity": true,
                   "url": "https://fixture.bitrix24.ru/crm/lead/details/3/"}),
        ]
    );
}

#[test]
fn forgotten_deals_list() {
    let r = run(&[]);
    let got = rows(&r, "forgotten_deals");
    let ids: Vec<i64> = got.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![5, 7, 3, 1], "by days since touch, most first");
    assert_eq!(
        got[0],
        json!({"id": 5, "title": "Сделка пять", "employee": "Вера", "stage": "Новая", "amount": 3000.0,
               "last_touch_at": "2024-04-01T09:00:00+03:00", "days_since_touch": 29,
               "last_activity_kind": "task", "reason": "stale", "no_planned_activity": false,
               "url": "https://fixture.bitrix24.ru/crm/deal/details/5/"})
    );
    assert_eq!(got[1]["reason"], "no_activity");
    assert_eq!(
        got[1]["last_touch_at"], "2024-04-02T10:00:00+03:00",
        "a stage move is a touch"
    );
    assert_eq!(got[2]["amount"], Value::Null);
    assert_eq!(got[2]["days_since_touch"], 20);
    assert_eq!(
        got[3]["days_since_touch"], 14,
        "exactly N days is forgotten"
    );
    assert_eq!(
        got[3]["no_planned_activity"], false,
        "a task completed after as_of was still planned"
    );
}

#[test]
fn employee_filter() {
    let r = run(&["--employee", "2"]);
    assert_eq!(r["params"]["employee"], json!([2]));
    assert_eq!(
        rows(&r, "totals"),
        vec![
            json!({"leads_created": 1, "deals_created": 2, "open_leads": 1, "open_deals": 1,
                    "forgotten_leads": 0, "forgotten_deals": 1, "forgotten_sum": 0.0})
        ]
    );
    assert_eq!(rows(&r, "by_employee").len(), 1);
}

#[test]
fn department_filter() {
    let r = run(&["--department", "2"]);
    assert_eq!(
        rows(&r, "totals"),
        vec![
            json!({"leads_created": 1, "deals_created": 0, "open_leads": 1, "open_deals": 1,
                    "forgotten_leads": 1, "forgotten_deals": 1, "forgotten_sum": 3000.0})
        ]
    );
    let ids: Vec<i64> = rows(&r, "forgotten_deals")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![5]);
}

#[test]
fn setting_override_within_bounds() {
    let r = run(&["--set", "deal_forgotten_days=21"]);
    assert_eq!(r["settings"]["deal_forgotten_days"], 21);
    let t = &rows(&r, "totals")[0];
    assert_eq!(t["forgotten_deals"], 2, "deals 5 (29 days) and 7 (28 days)");
    assert_eq!(t["forgotten_sum"], 3400.5);
    let err = fails_on_fixture("forgotten", &["--set", "deal_forgotten_days=0"]);
    assert!(
        err.contains("setting `deal_forgotten_days`: 0 is below the minimum 1"),
        "{err}"
    );
    let err = fails_on_fixture("forgotten", &["--set", "deal_forgoten_days=5"]);
    assert!(err.contains("did you mean `deal_forgotten_days`"), "{err}");
}

#[test]
fn period_boundary_is_midnight_moscow() {
    // 23:30 and 23:59 Moscow on March 31 belong to March 31, not April 1 (they are
    // 20:30 and 20:59 UTC); 00:10 Moscow on April 1 belongs to April although it is
    // still March 31 in UTC.
    let march31 = run_period("2024-03-31", "2024-03-31", &["--block", "totals"]);
    let t = &rows(&march31, "totals")[0];
    assert_eq!(
        (t["deals_created"].as_i64(), t["leads_created"].as_i64()),
        (Some(1), Some(1))
    );
    let april1 = run_period("2024-04-01", "2024-04-01", &["--block", "totals"]);
    assert_eq!(rows(&april1, "totals")[0]["deals_created"], 1);
}
