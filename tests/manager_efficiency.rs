//! `manager_efficiency` (reports.md §1) on the `forgotten` fixture, April 2024.
//!
//! Activities in April (Moscow days): Анна a call (16th), an email (01:00 on the 17th) and
//! a task (10th); Борис a call (28th); Вера a task (1st), a call on a company (29th), an
//! email (27th) and a call on a contact (29th) — an employee's activities count whatever
//! they are attached to. A call of Вера's on May 2 is after `as_of`. Weights: call 2,
//! email 1, task 1 → points Анна 4, Борис 2, Вера 6, of 12.
//! Deals: Борис won deal 4 (5000, created Feb 1, closed Apr 5: 64 days) and lost deal 9
//! (100); deal 5 closed on May 3, after `as_of`, so it was open then.

use serde_json::{Value, json};

use crate::util::{block, run_on_fixture};

fn run_period(from: &str, to: &str, extra: &[&str]) -> Value {
    run_on_fixture("manager_efficiency", None, from, to, extra)
}

/// April 2024.
fn run(extra: &[&str]) -> Value {
    run_period("2024-04-01", "2024-04-30", extra)
}

#[test]
fn activity_index() {
    let r = run(&[]);
    let b = block(&r, "activity_index");
    assert_eq!(
        b["rows"],
        json!([
            {"employee_id": 3, "employee": "Вера", "department": "Опт", "meetings": 0, "calls": 2, "emails": 1,
             "tasks": 1, "comments": 0, "other": 0, "points": 6.0, "activity_index": 50.0},
            {"employee_id": 1, "employee": "Анна", "department": "Продажи", "meetings": 0, "calls": 1, "emails": 1,
             "tasks": 1, "comments": 0, "other": 0, "points": 4.0, "activity_index": 33.33},
            {"employee_id": 2, "employee": "Борис", "department": "Продажи", "meetings": 0, "calls": 1, "emails": 0,
             "tasks": 0, "comments": 0, "other": 0, "points": 2.0, "activity_index": 16.67},
        ])
    );
    assert_eq!(b["totals"]["points"], 12.0);
    assert_eq!(b["totals"]["activity_index"], 100.0);
}

#[test]
fn activity_weights_and_completed_only() {
    // Only completed activities, completed by the end of April: Анна's task was completed
    // on May 5 and Вера's task never was.
    let r = run(&[
        "--set",
        "completed_only=true",
        "--set",
        "activity_weights={call: 3, email: 1, task: 10}",
    ]);
    let rows = block(&r, "activity_index")["rows"].clone();
    let points: Vec<(String, f64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["employee"].as_str().unwrap().to_string(),
                r["points"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            ("Вера".into(), 7.0),
            ("Анна".into(), 4.0),
            ("Борис".into(), 3.0)
        ]
    );
}

#[test]
fn employee_results() {
    let r = run(&[]);
    let b = block(&r, "employee_results");
    assert_eq!(
        b["rows"],
        json!([
            {"employee_id": 2, "employee": "Борис", "activity_index": 16.67, "leads_in_work": 1, "won_count": 1,
             "won_sum": 5000.0, "avg_check": 5000.0, "win_rate": 50.0, "cycle_days": 64.0, "lost_count": 1,
             "lost_sum": 100.0, "open_count": 1, "open_sum": 0.0},
            {"employee_id": 1, "employee": "Анна", "activity_index": 33.33, "leads_in_work": 2, "won_count": 0,
             "won_sum": 0.0, "avg_check": null, "win_rate": null, "cycle_days": null, "lost_count": 0,
             "lost_sum": 0.0, "open_count": 3, "open_sum": 3400.5},
            {"employee_id": 3, "employee": "Вера", "activity_index": 50.0, "leads_in_work": 1, "won_count": 0,
             "won_sum": 0.0, "avg_check": null, "win_rate": null, "cycle_days": null, "lost_count": 0,
             "lost_sum": 0.0, "open_count": 1, "open_sum": 3000.0},
            {"employee_id": 4, "employee": "Глеб", "activity_index": 0.0, "leads_in_work": 0, "won_count": 0,
             "won_sum": 0.0, "avg_check": null, "win_rate": null, "cycle_days": null, "lost_count": 0,
             "lost_sum": 0.0, "open_count": 1, "open_sum": 700.0},
        ])
    );
    assert_eq!(
        b["totals"],
        json!({"employee_id": null, "employee": null, "activity_index": 100.0, "leads_in_work": 4, "won_count": 1,
               "won_sum": 5000.0, "avg_check": 5000.0, "win_rate": 50.0, "cycle_days": 64.0, "lost_count": 1,
               "lost_sum": 100.0, "open_count": 6, "open_sum": 7100.5})
    );
}

#[test]
fn employee_dynamics_follows_the_metric_parameter() {
    let value = |r: &Value, employee: &str| {
        block(r, "employee_dynamics")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["employee"] == employee)
            .unwrap()["value"]
            .clone()
    };
    let r = run(&[]);
    assert_eq!(r["params"]["metric"], "won_sum");
    assert_eq!(value(&r, "Борис"), 5000.0);
    assert_eq!(value(&r, "Анна"), 0.0);
    let r = run(&["--param", "metric=activity_index"]);
    assert_eq!(value(&r, "Вера"), 50.0);
    let r = run(&["--param", "metric=win_rate"]);
    assert_eq!(value(&r, "Борис"), 50.0);
    assert_eq!(value(&r, "Анна"), Value::Null);
    // Quarter grain over the first half-year: Борис won in Q2 only.
    let r = run_period(
        "2024-01-01",
        "2024-06-30",
        &["--param", "grain=quarter", "--param", "metric=won_count"],
    );
    let boris: Vec<(String, f64)> = block(&r, "employee_dynamics")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["employee"] == "Борис")
        .map(|row| {
            (
                row["period_start"].as_str().unwrap().to_string(),
                row["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        boris,
        vec![("2024-01-01".into(), 0.0), ("2024-04-01".into(), 1.0)]
    );
}

#[test]
fn activity_dynamics() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "activity_dynamics")["rows"],
        json!([
            {"employee_id": 1, "employee": "Анна", "period_start": "2024-04-01", "meetings": 0, "calls": 1, "emails": 1, "comments": 0},
            {"employee_id": 2, "employee": "Борис", "period_start": "2024-04-01", "meetings": 0, "calls": 1, "emails": 0, "comments": 0},
            {"employee_id": 3, "employee": "Вера", "period_start": "2024-04-01", "meetings": 0, "calls": 2, "emails": 1, "comments": 0},
        ])
    );
}
