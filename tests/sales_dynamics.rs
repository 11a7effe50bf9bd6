//! `sales_dynamics` (reports.md §4) on the `forgotten` fixture, April 2024 unless said.
//! Won in April: deal 4 (Борис, 5000, created Feb 1: 64 days), the first won deal of
//! company 1; lost: deal 9 (Борис, 100). Deal 5 (company 1, 3000) is won on May 3, after
//! `as_of`. Created in April: deals 3, 6, 9; leads 1, 2, 3.

use serde_json::{Value, json};

use crate::util::{block, run_on_fixture};

fn run(extra: &[&str]) -> Value {
    run_on_fixture("sales_dynamics", None, "2024-04-01", "2024-04-30", extra)
}

#[test]
fn summary_blocks() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "leads")["rows"],
        json!([{"received": 3, "forgotten": 2}])
    );
    assert_eq!(
        block(&r, "deals")["rows"],
        json!([{"created": 3, "won_count": 1, "won_sum": 5000.0, "avg_check": 5000.0, "cycle_days": 64.0, "forgotten": 4}])
    );
    assert_eq!(
        block(&r, "sales")["rows"],
        json!([{"new_count": 1, "repeat_count": 0, "repeat_share": 0.0}])
    );
}

#[test]
fn dynamics_beside_the_previous_year() {
    let r = run(&[]);
    assert_eq!(
        block(&r, "dynamics")["rows"],
        json!([{"period_start": "2024-04-01", "won_count": 1, "won_sum": 5000.0, "prev_year_won_count": 0, "prev_year_won_sum": 0.0}])
    );
    // 2025 by quarter, as of its end: last year's Q2 had deals 4 and 5 won.
    let r = run_on_fixture(
        "sales_dynamics",
        None,
        "2025-01-01",
        "2025-12-31",
        &[
            "--as-of",
            "2025-12-31",
            "--param",
            "grain=quarter",
            "--block",
            "dynamics",
        ],
    );
    let prev: Vec<(String, i64)> = block(&r, "dynamics")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["period_start"].as_str().unwrap().to_string(),
                row["prev_year_won_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        prev,
        vec![
            ("2025-01-01".into(), 0),
            ("2025-04-01".into(), 2),
            ("2025-07-01".into(), 0),
            ("2025-10-01".into(), 0)
        ]
    );
}

#[test]
fn by_employee() {
    let r = run(&[]);
    let b = block(&r, "by_employee");
    assert_eq!(
        b["rows"],
        json!([
            {"employee_id": 2, "employee": "Борис", "created": 2, "won_count": 1, "won_sum": 5000.0, "avg_check": 5000.0,
             "cycle_days": 64.0, "forgotten": 1, "new_count": 1, "repeat_count": 0, "repeat_share": 0.0},
            {"employee_id": 1, "employee": "Анна", "created": 0, "won_count": 0, "won_sum": 0.0, "avg_check": null,
             "cycle_days": null, "forgotten": 2, "new_count": 0, "repeat_count": 0, "repeat_share": null},
            {"employee_id": 3, "employee": "Вера", "created": 0, "won_count": 0, "won_sum": 0.0, "avg_check": null,
             "cycle_days": null, "forgotten": 1, "new_count": 0, "repeat_count": 0, "repeat_share": null},
            {"employee_id": 4, "employee": "Глеб", "created": 1, "won_count": 0, "won_sum": 0.0, "avg_check": null,
             "cycle_days": null, "forgotten": 0, "new_count": 0, "repeat_count": 0, "repeat_share": null},
        ])
    );
    assert_eq!(b["totals"]["created"], 3);
    assert_eq!(b["totals"]["repeat_share"], 0.0);
}

#[test]
fn employee_dynamics() {
    let r = run(&["--param", "metric=won_count"]);
    assert_eq!(
        block(&r, "employee_dynamics")["rows"],
        json!([{"employee_id": 2, "employee": "Борис", "period_start": "2024-04-01", "value": 1.0}])
    );
}

#[test]
fn deals_created_or_closed_in_the_period() {
    let r = run(&[]);
    let rows = block(&r, "deals_list")["rows"].as_array().unwrap().clone();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![9, 3, 6, 4]);
    assert_eq!(
        rows[0],
        json!({"id": 9, "title": "Сделка девять", "employee": "Борис", "pipeline": "Общая", "stage": "Провалена",
               "semantic": "failure", "amount": 100.0, "created_at": "2024-04-20T10:00:00+03:00",
               "closed_at": "2024-04-22T10:00:00+03:00", "cycle_days": 2.0,
               "url": "https://fixture.bitrix24.ru/crm/deal/details/9/"})
    );
}

#[test]
fn time_in_stage_per_visit_with_a_row_per_stage() {
    // Visits to process stages beginning in April; a visit with no next change lasts to the
    // end of April 30 (Moscow). Deal 3: NEW from 04-10 10:00, 20 d 14 h; deal 9: NEW 2 d;
    // deal 6: NEW from 04-01 00:10 to 04-25 15:00 (24 d 14 h 50 min), then WORK 5 d 9 h;
    // deal 7: WORK from 04-02 10:00, 28 d 14 h. Leads: 1 NEW 5 d 14 h; 2 NEW 2 d 14 h;
    // 3 NEW 1 d then IN_PROCESS 28 d 14 h; 5 IN_PROCESS 1 d 14 h. Lost and won stages
    // are not process stages; deal 5's win on May 3 is after `as_of`.
    let r = run(&[]);
    let rows: Vec<(String, String, Option<i64>, f64, i64)> = block(&r, "time_in_stage")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["entity"].as_str().unwrap().to_string(),
                r["stage_id"].as_str().unwrap().to_string(),
                r["employee_id"].as_i64(),
                r["avg_days"].as_f64().unwrap(),
                r["entries"].as_i64().unwrap(),
            )
        })
        .collect();
    let row = |e: &str, s: &str, emp: Option<i64>, d: f64, n: i64| {
        (e.to_string(), s.to_string(), emp, d, n)
    };
    assert_eq!(
        rows,
        vec![
            row("deal", "NEW", None, 15.73, 3),
            row("deal", "NEW", Some(2), 11.29, 2),
            row("deal", "NEW", Some(4), 24.62, 1),
            row("deal", "WORK", None, 16.98, 2),
            row("deal", "WORK", Some(1), 28.58, 1),
            row("deal", "WORK", Some(4), 5.38, 1),
            row("lead", "IN_PROCESS", None, 15.08, 2),
            row("lead", "IN_PROCESS", Some(1), 1.58, 1),
            row("lead", "IN_PROCESS", Some(3), 28.58, 1),
            row("lead", "NEW", None, 3.06, 3),
            row("lead", "NEW", Some(1), 5.58, 1),
            row("lead", "NEW", Some(2), 2.58, 1),
            row("lead", "NEW", Some(3), 1.0, 1),
        ]
    );
    let first = &block(&r, "time_in_stage")["rows"][1];
    assert_eq!(first["stage"], "Новая");
    assert_eq!(first["pipeline_id"], 0);
    assert_eq!(first["employee"], "Борис");
}

/// The `edges` fixture: deals 1 and 2 of company 10 won at the same instant (the tie goes
/// to the lower id), deal 3 taken back into work after being lost.
fn run_edges(block_id: &str) -> Value {
    edges_april("sales_dynamics", &["--block", block_id])
}

/// `report` run over the `edges` fixture for April 2024, with `extra` arguments.
fn edges_april(report: &str, extra: &[&str]) -> Value {
    let data = crate::util::fixture("edges");
    let mut args = crate::util::run_args(report, &data, "2024-04-01", "2024-04-30");
    args.extend(extra.iter().map(|s| s.to_string()));
    crate::util::json(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn repeat_sale_tie_is_broken_by_id() {
    let r = run_edges("sales");
    assert_eq!(
        block(&r, "sales")["rows"],
        json!([{"new_count": 1, "repeat_count": 1, "repeat_share": 50.0}])
    );
}

#[test]
fn a_reopened_deal_visits_a_stage_twice() {
    // Deal 3: NEW April 1–3 (2 days), WORK April 3–5 (2 days), lost, WORK again from
    // April 8 to the end of April 30 (22 days 14 hours).
    let r = run_edges("time_in_stage");
    let deal_rows: Vec<(String, Option<i64>, f64, i64)> = block(&r, "time_in_stage")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage_id"].as_str().unwrap().to_string(),
                r["employee_id"].as_i64(),
                r["avg_days"].as_f64().unwrap(),
                r["entries"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        deal_rows,
        vec![
            ("NEW".to_string(), None, 2.0, 1),
            ("NEW".to_string(), Some(1), 2.0, 1),
            ("WORK".to_string(), None, 12.29, 2),
            ("WORK".to_string(), Some(1), 12.29, 2),
        ]
    );
}

/// The rank (`deal_won_ranks.won_rank`) and the first win (`client_first_wins`) agree on
/// the `edges` fixture's tie, read by a report of its own: deals 1 and 2 of company 10
/// (client 20) were won at the same instant, deal 3 is open.
#[test]
fn the_first_win_and_the_rank_break_a_tie_by_id() {
    let dir = tempfile::tempdir().unwrap();
    crate::util::write(
        dir.path(),
        "wins.yaml",
        r#"report: wins
title: Wins
blocks:
  - id: ranks
    title: Ranks
    from: deal_won_ranks
    by: [id, repeat_client, won_by_as_of]
    measures:
      rank: max(won_rank)
    sort: [id]
  - id: first
    title: First
    from: client_first_wins
    by: [repeat_client]
    measures:
      first: max(first_won_id)
"#,
    );
    let out = edges_april("wins", &["--reports", dir.path().to_str().unwrap()]);
    assert_eq!(
        block(&out, "ranks")["rows"],
        json!([
            {"id": 1, "repeat_client": 20, "won_by_as_of": true, "rank": 1},
            {"id": 2, "repeat_client": 20, "won_by_as_of": true, "rank": 2},
            {"id": 3, "repeat_client": 40, "won_by_as_of": false, "rank": 1},
        ])
    );
    assert_eq!(
        block(&out, "first")["rows"],
        json!([{"repeat_client": 20, "first": 1}])
    );
}
