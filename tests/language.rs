//! Features of the report language, each on the `forgotten` fixture with hand-computed
//! values: time dimensions with every period present, grains chosen by a parameter,
//! window functions for shares of the total and for "nth deal of the company".
//!
//! Deals of the fixture, by creation date (Moscow): 1 and 2 on 2024-03-01 (Анна),
//! 3 on 04-10 (Борис), 4 on 02-01 (Борис), 5 on 02-01 (Вера), 6 on 04-01 00:10 (Глеб),
//! 7 on 03-31 23:30 (Анна), 8 on 05-02 (Вера), 9 on 04-20 (Борис). Deals 1, 2, 4, 5 are
//! of company 1.

use serde_json::{Value, json};

use crate::util::{block, fails_on_fixture, fixture, json, ok, run_on_fixture, write};

/// Runs report `report`, defined by `yaml` in a fresh folder, on the fixture.
fn run_yaml(report: &str, yaml: &str, from: &str, to: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &format!("{report}.yaml"), yaml);
    run_on_fixture(report, Some(dir.path()), from, to, extra)
}

const DYNAMICS: &str = r#"report: dyn
title: Динамика
parameters:
  grain: { type: enum, values: [month, quarter, year], default: month }
blocks:
  - id: total
    title: Всего
    from: deals
    by:
      - period_start: { time: created_at, grain: $grain }
    measures:
      n: count(*)
      amount: sum(amount)
      avg_amount: avg(amount)
    totals: true
    sort: [period_start]
  - id: by_employee
    title: По сотрудникам
    from: deals
    by:
      - employee
      - period_start: { time: created_at, grain: $grain }
    measures:
      n: count(*)
    sort: [employee, period_start]
  - id: share
    title: Доли
    from: deals
    by: [employee]
    measures:
      n: count(*)
      share: { expr: "100.0 * n / sum(n) over ()", type: percent }
    totals: true
    sort: [employee]
"#;

fn run(from: &str, to: &str, extra: &[&str]) -> Value {
    run_yaml("dyn", DYNAMICS, from, to, extra)
}

#[test]
fn every_period_is_present_and_empty_ones_are_zero() {
    let r = run("2024-01-01", "2024-05-31", &[]);
    assert_eq!(
        block(&r, "total")["rows"],
        json!([
            {"period_start": "2024-01-01", "n": 0, "amount": 0.0, "avg_amount": null},
            {"period_start": "2024-02-01", "n": 2, "amount": 8000.0, "avg_amount": 4000.0},
            {"period_start": "2024-03-01", "n": 3, "amount": 3400.5, "avg_amount": 1133.5},
            {"period_start": "2024-04-01", "n": 3, "amount": 800.0, "avg_amount": 400.0},
            {"period_start": "2024-05-01", "n": 1, "amount": 900.0, "avg_amount": 900.0},
        ])
    );
    // Deal 3 has no amount: avg over April is (700 + 100) / 2.
    assert_eq!(block(&r, "total")["totals"]["n"], 9);
}

/// A week that began before the run's first day is labelled by the first day it counts,
/// and the weeks that begin after `as_of` — nothing to count yet — are not rows of zeros.
#[test]
fn periods_are_labelled_by_the_days_they_count_and_none_begin_after_as_of() {
    let yaml = DYNAMICS.replace(
        "values: [month, quarter, year], default: month",
        "values: [week], default: week",
    );
    // 2024-04-03 is a Wednesday; weeks begin on Mondays: 04-01, 04-08, 04-15, 04-22, 04-29.
    let r = run_yaml(
        "dyn",
        &yaml,
        "2024-04-03",
        "2024-04-30",
        &["--as-of", "2024-04-20"],
    );
    assert_eq!(
        block(&r, "total")["rows"],
        json!([
            {"period_start": "2024-04-03", "n": 0, "amount": 0.0, "avg_amount": null},
            {"period_start": "2024-04-08", "n": 1, "amount": 0.0, "avg_amount": null},
            {"period_start": "2024-04-15", "n": 1, "amount": 100.0, "avg_amount": 100.0},
        ]),
        "deal 6 (04-01) is before the period; deal 3 (04-10), deal 9 (04-20)"
    );
    // Every other dimension gets the same periods.
    let rows = block(&r, "by_employee")["rows"].as_array().unwrap().clone();
    let weeks: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["period_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        weeks.into_iter().collect::<Vec<_>>(),
        ["2024-04-03", "2024-04-08", "2024-04-15"]
    );
}

#[test]
fn grain_is_a_parameter() {
    let r = run("2024-01-01", "2024-06-30", &["--param", "grain=quarter"]);
    let rows = &block(&r, "total")["rows"];
    assert_eq!(rows[0]["period_start"], "2024-01-01");
    assert_eq!(rows[0]["n"], 5);
    assert_eq!(rows[1]["period_start"], "2024-04-01");
    assert_eq!(rows[1]["n"], 4);
    assert_eq!(rows.as_array().unwrap().len(), 2);
}

#[test]
fn other_dimensions_get_every_period_too() {
    let r = run("2024-02-01", "2024-04-30", &[]);
    let rows = block(&r, "by_employee")["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 12, "4 employees × 3 months");
    let n = |e: &str, p: &str| {
        rows.iter()
            .find(|r| r["employee"] == e && r["period_start"] == p)
            .unwrap_or_else(|| panic!("{e} {p}"))["n"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        [
            n("Анна", "2024-02-01"),
            n("Анна", "2024-03-01"),
            n("Анна", "2024-04-01")
        ],
        [0, 3, 0]
    );
    assert_eq!([n("Борис", "2024-02-01"), n("Борис", "2024-04-01")], [1, 2]);
    assert_eq!(
        n("Глеб", "2024-04-01"),
        1,
        "00:10 Moscow on April 1 is April"
    );
}

#[test]
fn share_of_total_is_a_window_over_the_groups() {
    let r = run("2024-01-01", "2024-12-31", &[]);
    let b = block(&r, "share");
    let shares: Vec<f64> = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["share"].as_f64().unwrap())
        .collect();
    assert_eq!(shares, vec![33.33, 33.33, 22.22, 11.11]);
    assert_eq!(b["totals"]["share"], 100.0);
}

#[test]
fn window_columns_in_models() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "models/ranked.yaml",
        "model: ranked_deals\nfrom: deals\nfilters: { employee: assigned_id }\ncolumns:\n  nth_of_company: row_number() over (partition by company_id order by created_at, id)\n  is_later_deal: company_id is not null and nth_of_company > 1\nmeasures:\n  repeat: count(*) filter (where is_later_deal)\n",
    );
    write(
        dir.path(),
        "rep.yaml",
        "report: rep\ntitle: Повторные\nblocks:\n  - id: t\n    title: T\n    from: ranked_deals\n    measures: [repeat]\n",
    );
    let data = fixture("forgotten");
    // Company 1: deals 4, 5 (Feb 1, tie broken by id), 1, 2 → three after the first.
    let r = json(&[
        "run",
        "rep",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(block(&r, "t")["rows"], json!([{"repeat": 3}]));
    // A filter narrows rows after windows are computed: Анна's deals 1 and 2 are still
    // the 3rd and 4th of their company.
    let r = json(&[
        "run",
        "rep",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--employee",
        "1",
    ]);
    assert_eq!(block(&r, "t")["rows"], json!([{"repeat": 2}]));
}

/// A model that fails as it is computed (its rows shared by two blocks) is named in the
/// error, the run stops with it, and the blocks that read it never run on half its rows.
#[test]
fn a_model_that_fails_as_it_is_computed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "models/broken.yaml",
        "model: broken\nfrom: deals\ncolumns:\n  bad: cast(title as int)\nmeasures:\n  bad_sum: sum(bad)\n",
    );
    write(
        dir.path(),
        "rep.yaml",
        "report: rep\ntitle: T\nblocks:\n  - id: a\n    title: A\n    from: broken\n    measures: [bad_sum]\n  - id: b\n    title: B\n    from: broken\n    by: [id]\n    measures: [bad_sum]\n  - id: c\n    title: C\n    from: deals\n    measures: { n: count(*) }\n",
    );
    let err = fails_on_fixture("rep", &["--reports", dir.path().to_str().unwrap()]);
    // Each cause once, though DataFusion's error quotes the Arrow error it wraps.
    let (head, tail) = (
        "error: report `rep`, model `broken`: Arrow error: Cast error: Cannot cast string '",
        "' to value of Int32 type\n",
    );
    assert!(err.starts_with(head) && err.ends_with(tail), "{err}");
    assert_eq!(err.matches("Cannot cast").count(), 1, "{err}");
}

const COMPARE: &str = r#"report: cmp
title: Сравнение
blocks:
  - id: dynamics
    title: По месяцам
    from: deals
    by:
      - period_start: { time: created_at, grain: month }
    measures:
      n: count(*)
      prev_year_n: { expr: count(*), shift: previous_year }
    sort: [period_start]
  - id: vs_previous
    title: С прошлым периодом
    from: deals
    measures:
      created: created
      previous: { expr: created, shift: previous_period }
      change: created - previous
"#;

fn compare(from: &str, to: &str) -> Value {
    run_yaml("cmp", COMPARE, from, to, &[])
}

#[test]
fn same_period_last_year_is_shifted_by_the_calendar() {
    let r = compare("2025-02-01", "2025-05-31");
    assert_eq!(
        block(&r, "dynamics")["rows"],
        json!([
            {"period_start": "2025-02-01", "n": 0, "prev_year_n": 2},
            {"period_start": "2025-03-01", "n": 0, "prev_year_n": 3},
            {"period_start": "2025-04-01", "n": 0, "prev_year_n": 3},
            {"period_start": "2025-05-01", "n": 0, "prev_year_n": 1},
        ])
    );
}

#[test]
fn previous_period_of_whole_months_is_the_months_before() {
    // April 2024 → March 2024, whole: deals 1 and 2 (March 1) and 7 (March 31, 23:30
    // Moscow).
    let r = compare("2024-04-01", "2024-04-30");
    assert_eq!(
        block(&r, "vs_previous")["rows"],
        json!([{"created": 3, "previous": 3, "change": 0}])
    );
}

#[test]
fn previous_period_of_days_is_as_many_days_before() {
    // April 2–30 is 29 days (deals 3 and 9); the 29 days before are March 4 – April 1:
    // deal 7 (March 31) and deal 6 (April 1, 00:10 Moscow).
    let r = compare("2024-04-02", "2024-04-30");
    assert_eq!(
        block(&r, "vs_previous")["rows"],
        json!([{"created": 2, "previous": 2, "change": 0}])
    );
}

#[test]
fn map_setting_is_a_table_to_join() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "models/weighted.yaml",
        r#"model: weighted_activities
from: activities
where: created_at >= $period_start and created_at < $period_end
settings:
  activity_weights:
    type: map
    value: number
    min: 0
    default: { meeting: 5, call: 2, email: 1, task: 1, comment: 1, other: 1 }
joins:
  - from: users
    on: { responsible_id: id }
    take: { employee: name }
  - from: $activity_weights
    on: { kind: key }
    take: { weight: value }
filters: { employee: responsible_id }
measures:
  calls: count(*) filter (where kind = 'call')
  points: sum(coalesce(weight, 0))
"#,
    );
    write(
        dir.path(),
        "act.yaml",
        r#"report: act
title: Активность
blocks:
  - id: by_employee
    title: По сотрудникам
    from: weighted_activities
    by: [employee]
    measures:
      calls: calls
      points: points
      activity_index: { expr: "100.0 * points / nullif(sum(points) over (), 0)", type: percent }
    totals: true
    sort: [employee]
"#,
    );
    let run = |extra: &[&str]| {
        crate::util::run_on_fixture("act", Some(dir.path()), "2024-04-01", "2024-04-30", extra)
    };
    // April: Анна a call, an email (01:00 Moscow on the 17th) and a task = 2+1+1; Борис a
    // call = 2; Вера a task, two calls (one on a company, one on a contact) and an email = 6.
    let r = run(&[]);
    assert_eq!(r["settings"]["activity_weights"]["meeting"], 5.0);
    let b = block(&r, "by_employee");
    assert_eq!(
        b["rows"],
        json!([
            {"employee": "Анна", "calls": 1, "points": 4.0, "activity_index": 33.33},
            {"employee": "Борис", "calls": 1, "points": 2.0, "activity_index": 16.67},
            {"employee": "Вера", "calls": 2, "points": 6.0, "activity_index": 50.0},
        ])
    );
    assert_eq!(
        b["totals"],
        json!({"employee": null, "calls": 4, "points": 12.0, "activity_index": 100.0})
    );
    // Only calls weigh now.
    let r = run(&["--set", "activity_weights={call: 10}"]);
    let idx: Vec<f64> = block(&r, "by_employee")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["activity_index"].as_f64().unwrap())
        .collect();
    assert_eq!(idx, vec![25.0, 25.0, 50.0]);
    let err = crate::util::fails(&[
        "run",
        "act",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        fixture("forgotten").to_str().unwrap(),
        "--set",
        "activity_weights={call: -1}",
    ]);
    assert!(
        err.contains("setting `activity_weights`: `call`: -1 is below the minimum 0"),
        "{err}"
    );
}

const SALES: &str = r#"report: sales
title: Продажи
blocks:
  - id: sales
    title: Продажи
    from: deals
    measures: [won_count, won_sum, new_count, new_sum, repeat_count, repeat_sum, repeat_share]
"#;

fn sales(from: &str, to: &str, extra: &[&str]) -> Value {
    run_yaml("sales", SALES, from, to, extra)
}

#[test]
fn repeat_sale_is_the_customers_second_won_deal() {
    // April: deal 4 (company 1, 5000) is the company's first won deal: new.
    let r = sales("2024-04-01", "2024-04-30", &[]);
    assert_eq!(
        block(&r, "sales")["rows"],
        json!([{"won_count": 1, "won_sum": 5000.0, "new_count": 1, "new_sum": 5000.0,
                "repeat_count": 0, "repeat_sum": 0.0, "repeat_share": 0.0}])
    );
    // May: deal 5 (company 1, 3000, closed May 3) follows deal 4: a repeat sale.
    let r = sales("2024-05-01", "2024-05-31", &[]);
    assert_eq!(
        block(&r, "sales")["rows"],
        json!([{"won_count": 1, "won_sum": 3000.0, "new_count": 0, "new_sum": 0.0,
                "repeat_count": 1, "repeat_sum": 3000.0, "repeat_share": 100.0}])
    );
    // By contact: neither deal has one, so neither is a repeat.
    let r = sales("2024-05-01", "2024-05-31", &["--set", "repeat_by=contact"]);
    assert_eq!(block(&r, "sales")["rows"][0]["repeat_count"], 0);
}

const TREE: &str = r#"report: tree
title: Дерево
blocks:
  - id: by_department
    title: По отделам
    from: deals
    by: [department_id, department]
    measures:
      open_count: open
      open_sum: open_sum
    children:
      - id: employees
        title: Сотрудники
        by: [employee_id, employee]
    sort: [department_id nulls last]
"#;

#[test]
fn children_rows_nest_under_their_parent() {
    // Open at April 30: Анна's deals 1, 2, 7 and Борис's deal 3 (no amount) in Продажи,
    // Вера's deal 5 in Опт, Глеб's deal 6 in no department.
    let r = run_yaml("tree", TREE, "2024-04-01", "2024-04-30", &[]);
    let b = block(&r, "by_department");
    assert_eq!(
        b["rows"],
        json!([
            {"department_id": 1, "department": "Продажи", "open_count": 4, "open_sum": 3400.5,
             "children": {"employees": [
                 {"employee_id": 1, "employee": "Анна", "open_count": 3, "open_sum": 3400.5},
                 {"employee_id": 2, "employee": "Борис", "open_count": 1, "open_sum": 0.0}]}},
            {"department_id": 2, "department": "Опт", "open_count": 1, "open_sum": 3000.0,
             "children": {"employees": [{"employee_id": 3, "employee": "Вера", "open_count": 1, "open_sum": 3000.0}]}},
            {"department_id": null, "department": null, "open_count": 1, "open_sum": 700.0,
             "children": {"employees": [{"employee_id": 4, "employee": "Глеб", "open_count": 1, "open_sum": 700.0}]}},
        ])
    );
    assert_eq!(b["children"][0]["id"], "employees");
    let names: Vec<&str> = b["children"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["employee_id", "employee", "open_count", "open_sum"]
    );
}

const PLAN: &str = r#"report: plan
title: План
blocks:
  - id: by_employee
    title: По сотрудникам
    from: plans
    by: [employee_id]
    measures: [plan]
    sort: [employee_id nulls last]
  - id: by_department
    title: По отделам
    from: plans
    by: [department_id, department]
    measures: [plan, plan_deals]
    totals: true
    sort: [department_id]
"#;

#[test]
fn plans_are_prorated_by_days_of_the_months_touched() {
    // March 17 – April 15: 15 of March's 31 days, 15 of April's 30. Анна: 3100 × 15/31 +
    // 3000 × 1/2 = 3000; Борис: 6000 / 2; department Опт (a department-only row): 9000 / 2.
    // Борис's May plan is outside.
    let r = run_yaml("plan", PLAN, "2024-03-17", "2024-04-15", &[]);
    assert_eq!(
        block(&r, "by_employee")["rows"],
        json!([
            {"employee_id": 1, "plan": 3000.0},
            {"employee_id": 2, "plan": 3000.0},
            {"employee_id": null, "plan": 4500.0},
        ])
    );
    // An employee's plan counts for their department (Анна and Борис: Продажи). Deals
    // planned: Анна 3 × 15/31 + 3 / 2, Борис 2 / 2 = 3.95; Опт has no count.
    let b = block(&r, "by_department");
    assert_eq!(
        b["rows"],
        json!([
            {"department_id": 1, "department": "Продажи", "plan": 6000.0, "plan_deals": 3.95},
            {"department_id": 2, "department": "Опт", "plan": 4500.0, "plan_deals": 0.0},
        ])
    );
    assert_eq!(b["totals"]["plan"], 10500.0);
    // Without pro-rating, every month the period touches counts whole.
    let r = run_yaml(
        "plan",
        PLAN,
        "2024-03-17",
        "2024-04-15",
        &["--set", "plan_prorate=false"],
    );
    assert_eq!(
        block(&r, "by_department")["totals"]["plan"],
        21100.0,
        "3100 + 3000 + 6000 + 9000"
    );
}

const BONUS: &str = r#"report: bonus
title: Бонусы
settings:
  bonus_min_completion_pct: { type: number, default: 80, min: 0, max: 1000 }
blocks:
  - id: bonus
    title: Бонусы
    by: [employee_id]
    measures:
      plan: plans.plan
      fact: deals.won_sum
      won_count: deals.won_count
      completion_pct: { expr: "100.0 * fact / nullif(plan, 0)", type: percent }
      tier: tier_reached
      bonus:
        expr: "case when completion_pct >= $bonus_min_completion_pct then coalesce(tier_bonus, 0) else 0 end"
        type: money
    lookups:
      - from: tables.bonus_tiers
        key: won_count
        at_most: min_won_count
        take: { tier_reached: min_won_count, tier_bonus: bonus }
    sort: [employee_id]
"#;

#[test]
fn lookup_finds_the_highest_tier_reached() {
    // April: Борис won 1 deal (5000) against a plan of 6000: 83.33 % ≥ 80 % → tier 1,
    // bonus 1000. Nobody else won anything; Вера and Глеб have no plan (null %).
    let r = run_yaml("bonus", BONUS, "2024-04-01", "2024-04-30", &[]);
    assert_eq!(
        block(&r, "bonus")["rows"],
        json!([
            {"employee_id": 1, "plan": 3000.0, "fact": 0.0, "won_count": 0, "completion_pct": 0.0, "tier": null, "bonus": 0.0},
            {"employee_id": 2, "plan": 6000.0, "fact": 5000.0, "won_count": 1, "completion_pct": 83.33, "tier": 1, "bonus": 1000.0},
            {"employee_id": 3, "plan": 0.0, "fact": 0.0, "won_count": 0, "completion_pct": null, "tier": null, "bonus": 0.0},
            {"employee_id": 4, "plan": 0.0, "fact": 0.0, "won_count": 0, "completion_pct": null, "tier": null, "bonus": 0.0},
            {"employee_id": null, "plan": 9000.0, "fact": 0.0, "won_count": 0, "completion_pct": 0.0, "tier": null, "bonus": 0.0},
        ])
    );
    // Just below the minimum completion: no bonus, the tier is still shown.
    let r = run_yaml(
        "bonus",
        BONUS,
        "2024-04-01",
        "2024-04-30",
        &["--set", "bonus_min_completion_pct=83.34"],
    );
    let boris = &block(&r, "bonus")["rows"][1];
    assert_eq!(
        (boris["tier"].clone(), boris["bonus"].clone()),
        (json!(1), json!(0.0))
    );
}

const SUMS: &str = r#"report: sums
title: Суммы
blocks:
  - id: by_employee
    title: По сотрудникам
    from: deals
    by: [employee]
    measures:
      n: { expr: count(*), total: sum }
      amount: { expr: sum(amount), total: sum }
      avg_amount: { expr: avg(amount), total: sum }
      big: { expr: "max(case when amount > 100000 then amount end)", total: sum }
      share: { expr: "100.0 * n / sum(n) over ()", total: none }
      max_amount: max(amount)
    totals: true
    sort: [employee]
  - id: top
    title: Лучший
    from: deals
    by: [employee]
    measures:
      amount: { expr: sum(amount), total: sum }
    totals: true
    sort: [amount desc]
    limit: 1
  - id: by_department
    title: По отделам
    from: deals
    by: [department, employee]
    subtotals: [department]
    measures:
      n: { expr: count(*), total: sum }
    totals: true
"#;

#[test]
fn a_totals_row_sums_the_rows_where_asked() {
    // Анна: deals 1, 2, 7 (1000 + 2000 + 400.50); Борис: 3 (no amount), 4 (5000), 9 (100);
    // Вера: 5 (3000), 8 (900); Глеб: 6 (700).
    let r = run_yaml("sums", SUMS, "2024-01-01", "2024-05-31", &[]);
    let b = block(&r, "by_employee");
    assert_eq!(
        b["rows"][1],
        json!({"employee": "Борис", "n": 3, "amount": 5100.0, "avg_amount": 2550.0, "big": null, "share": 33.33, "max_amount": 5000.0})
    );
    // Summed: the counts, the amounts, even the averages (1133.5 + 2550 + 1950 + 700);
    // none of `big` is there, so its sum is empty; `share` has no total; `max_amount` is
    // the measure over all rows.
    assert_eq!(
        b["totals"],
        json!({"employee": null, "n": 9, "amount": 13100.5, "avg_amount": 6333.5, "big": null, "share": null, "max_amount": 5000.0})
    );
    // A block that shows its first row only still sums all of them.
    let top = block(&r, "top");
    assert_eq!(
        top["rows"],
        json!([{"employee": "Борис", "amount": 5100.0}])
    );
    assert_eq!(top["totals"]["amount"], json!(13100.5));
    // Subtotal rows are not counted again.
    let by_department = block(&r, "by_department");
    assert_eq!(by_department["totals"]["n"], json!(9));
}

#[test]
fn a_totals_row_cannot_sum_text() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sums.yaml",
        &SUMS.replace(
            "max_amount: max(amount)",
            "who: { expr: max(employee), total: sum }",
        ),
    );
    let err = fails_on_fixture("sums", &["--reports", dir.path().to_str().unwrap()]);
    assert!(err.contains("sums.yaml"), "{err}");
    assert!(err.contains("by_employee"), "{err}");
    assert!(err.contains("no function matches 'sum(Utf8)'"), "{err}");
}

const FUNNEL_BY: &str = r#"report: funnel
title: Воронка
blocks:
  - id: steps
    title: Шаги
    from: deals
    by: [employee]
    measures:
      created: count(*)
      won: "count(*) filter (where semantic = 'success')"
    unpivot:
      name: step
      rows: [created, won]
      columns: { count: "{}" }
"#;

#[test]
fn unpivot_rows_come_item_by_item_then_by_dimension() {
    // Deals by employee: Анна 3 (none won), Борис 3 (deal 4 won), Вера 2 (deal 5 won),
    // Глеб 1.
    let r = run_yaml("funnel", FUNNEL_BY, "2024-01-01", "2024-05-31", &[]);
    assert_eq!(
        block(&r, "steps")["rows"],
        json!([
            {"employee": "Анна", "step": "created", "count": 3.0},
            {"employee": "Борис", "step": "created", "count": 3.0},
            {"employee": "Вера", "step": "created", "count": 2.0},
            {"employee": "Глеб", "step": "created", "count": 1.0},
            {"employee": "Анна", "step": "won", "count": 0.0},
            {"employee": "Борис", "step": "won", "count": 1.0},
            {"employee": "Вера", "step": "won", "count": 1.0},
            {"employee": "Глеб", "step": "won", "count": 0.0},
        ])
    );
}

#[test]
fn unpivot_without_columns_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "funnel.yaml",
        &FUNNEL_BY.replace("columns: { count: \"{}\" }", "columns: {}"),
    );
    let err = fails_on_fixture("funnel", &["--reports", dir.path().to_str().unwrap()]);
    assert!(err.contains("funnel.yaml:"), "{err}");
    assert!(err.contains("block `steps`"), "{err}");
    assert!(err.contains("`unpivot` needs `columns`"), "{err}");
}

/// A measure no output reads still names columns of its model: the run, which computes
/// the model with only the columns read, must not then miss them.
#[test]
fn a_hidden_measure_nothing_reads_does_not_break_the_block() {
    let yaml = r#"report: hid
title: Скрытое
blocks:
  - id: steps
    title: Шаги
    from: deals
    by: [employee]
    measures:
      won: { expr: "count(*) filter (where semantic = 'success')", hidden: true }
"#;
    let r = run_yaml("hid", yaml, "2024-01-01", "2024-05-31", &[]);
    assert_eq!(
        block(&r, "steps")["rows"],
        json!([{"employee": "Анна"}, {"employee": "Борис"}, {"employee": "Вера"}, {"employee": "Глеб"}])
    );
}

const MONTH_VS_PREVIOUS: &str = r#"report: mvp
title: Месяц к предыдущему
blocks:
  - id: month_vs_previous
    title: Месяц к предыдущему
    from: deals
    period: as_of_month
    measures:
      won_sum: won_sum
      won_sum_previous: { expr: won_sum, shift: previous_month }
      won_sum_change: won_sum - won_sum_previous
      won_sum_change_pct: "100.0 * (won_sum - won_sum_previous) / nullif(won_sum_previous, 0)"
      won_count: won_count
      won_count_previous: { expr: won_count, shift: previous_month }
      won_count_change: won_count - won_count_previous
      won_count_change_pct: "100.0 * (won_count - won_count_previous) / nullif(won_count_previous, 0)"
      avg_check: avg_check
      avg_check_previous: won_sum_previous / nullif(won_count_previous, 0)
      avg_check_change: avg_check - avg_check_previous
      avg_check_change_pct: "100.0 * (avg_check - avg_check_previous) / nullif(avg_check_previous, 0)"
    unpivot:
      name: metric
      rows: [won_sum, won_count, avg_check]
      columns:
        current: "{}"
        previous: "{}_previous"
        change: "{}_change"
        change_pct: "{}_change_pct"
"#;

#[test]
fn the_month_of_as_of_against_the_month_before_as_rows() {
    // The run covers the whole spring; the block looks at May (the month of `as_of`)
    // against April: deal 5 won on May 3 (3000) against deal 4 on April 5 (5000).
    let r = run_yaml(
        "mvp",
        MONTH_VS_PREVIOUS,
        "2024-03-01",
        "2024-05-31",
        &["--as-of", "2024-05-31"],
    );
    assert_eq!(
        block(&r, "month_vs_previous")["rows"],
        json!([
            {"metric": "won_sum", "current": 3000.0, "previous": 5000.0, "change": -2000.0, "change_pct": -40.0},
            {"metric": "won_count", "current": 1.0, "previous": 1.0, "change": 0.0, "change_pct": 0.0},
            {"metric": "avg_check", "current": 3000.0, "previous": 5000.0, "change": -2000.0, "change_pct": -40.0},
        ])
    );
    // April against March, when nothing was won: previous 0, change_pct null.
    let r = run_yaml("mvp", MONTH_VS_PREVIOUS, "2024-03-01", "2024-04-30", &[]);
    let rows = &block(&r, "month_vs_previous")["rows"];
    assert_eq!(
        rows[0],
        json!({"metric": "won_sum", "current": 5000.0, "previous": 0.0, "change": 5000.0, "change_pct": null})
    );
    assert_eq!(rows[2]["previous"], serde_json::Value::Null);
}

const CYCLES: &str = r#"report: cycles
title: Циклы
settings:
  cycle_buckets: { type: list, item: int, min: 1, default: [30, 90, 180] }
blocks:
  - id: cycle_distribution
    title: Распределение циклов
    from: deals
    where: is_won
    by:
      - bucket: "bucket(deal_cycle_days, $cycle_buckets)"
      - bucket_index: "bucket_index(deal_cycle_days, $cycle_buckets)"
    measures:
      won_count: won_count
      share: { expr: "100.0 * won_count / nullif(sum(won_count) over (), 0)", type: percent }
    sort: [bucket_index]
"#;

#[test]
fn cycle_buckets_from_a_list_setting() {
    // Won February–May (as of May 31): deal 4 after 64 days, deal 5 after 92.
    let r = run_yaml(
        "cycles",
        CYCLES,
        "2024-02-01",
        "2024-05-31",
        &["--as-of", "2024-05-31"],
    );
    assert_eq!(
        block(&r, "cycle_distribution")["rows"],
        json!([
            {"bucket": "31–90", "bucket_index": 1, "won_count": 1, "share": 50.0},
            {"bucket": "91–180", "bucket_index": 2, "won_count": 1, "share": 50.0},
        ])
    );
    let r = run_yaml(
        "cycles",
        CYCLES,
        "2024-02-01",
        "2024-05-31",
        &["--as-of", "2024-05-31", "--set", "cycle_buckets=[60, 90]"],
    );
    let labels: Vec<&str> = block(&r, "cycle_distribution")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["61–90", ">90"]);
}

#[test]
fn having_filters_output_rows() {
    let yaml = r#"report: hv
title: Having
blocks:
  - id: busy
    title: Занятые
    from: deals
    by: [employee]
    measures:
      open_count: open
    having: open_count >= 2
    sort: [employee]
"#;
    // Open at April 30: Анна 3, Борис 1, Вера 1, Глеб 1 — only Анна has two or more.
    let r = run_yaml("hv", yaml, "2024-04-01", "2024-04-30", &[]);
    assert_eq!(
        block(&r, "busy")["rows"],
        json!([{"employee": "Анна", "open_count": 3}])
    );
}

/// `hidden: true` on a dimension groups by it without showing it; on a measure, computes
/// it for `sort` (and other measures) without showing it — on tables and lists alike.
#[test]
fn hidden_dimensions_and_measures_sort_but_do_not_show() {
    let yaml = r#"report: hid
title: Скрытое
blocks:
  - id: by_employee
    title: По сотрудникам
    from: deals
    by:
      - assigned_id: { hidden: true }
      - employee
    measures:
      n: count(*)
      amount: { expr: sum(amount), hidden: true }
    totals: true
    sort: [amount desc nulls last]
  - id: deals
    title: Сделки
    from: deals
    columns:
      id: id
      title: title
      amount: { expr: amount, hidden: true }
    sort: [amount desc nulls last, id]
    limit: 3
"#;
    let r = run_yaml("hid", yaml, "2024-01-01", "2024-05-31", &[]);
    let b = block(&r, "by_employee");
    let names: Vec<&str> = b["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["employee", "n"]);
    // Sums of amounts: Борис 5 000 + 100, Вера 3 000 + 900, Анна 1 000 + 2 000 + 400.5,
    // Глеб 700.
    assert_eq!(
        b["rows"],
        json!([
            {"employee": "Борис", "n": 3},
            {"employee": "Вера", "n": 2},
            {"employee": "Анна", "n": 3},
            {"employee": "Глеб", "n": 1},
        ])
    );
    assert_eq!(b["totals"], json!({"employee": null, "n": 9}));
    let l = block(&r, "deals");
    assert_eq!(
        l["rows"],
        json!([
            {"id": 4, "title": "Сделка четыре"},
            {"id": 5, "title": "Сделка пять"},
            {"id": 2, "title": "Сделка два"},
        ])
    );
}

/// `case $param when … end` takes its branch when the run is planned: the rows are the
/// branch's, and what only the other branches read (here a window over every row) is not
/// in the plan at all.
#[test]
fn a_case_over_a_parameter_plans_only_the_branch_taken() {
    let yaml = r#"report: pick
title: Выбор
parameters:
  metric: { type: enum, values: [n, everyone], default: n }
blocks:
  - id: by_employee
    title: По сотрудникам
    from: deals
    by: [employee]
    measures:
      n: { expr: count(*), hidden: true }
      everyone: { expr: "sum(n) over ()", hidden: true }
      value: "case $metric when 'n' then n when 'everyone' then everyone end"
    sort: [employee]
"#;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pick.yaml", yaml);
    let values = |metric: &str| {
        let param = format!("metric={metric}");
        let r = run_on_fixture(
            "pick",
            Some(dir.path()),
            "2024-01-01",
            "2024-05-31",
            &["--param", &param],
        );
        block(&r, "by_employee")["rows"].clone()
    };
    // Deals per employee: Анна 1, 2, 7; Борис 3, 4, 9; Вера 5, 8; Глеб 6 — nine in all.
    assert_eq!(
        values("n"),
        json!([
            {"employee": "Анна", "value": 3},
            {"employee": "Борис", "value": 3},
            {"employee": "Вера", "value": 2},
            {"employee": "Глеб", "value": 1},
        ])
    );
    assert_eq!(
        values("everyone"),
        json!([
            {"employee": "Анна", "value": 9},
            {"employee": "Борис", "value": 9},
            {"employee": "Вера", "value": 9},
            {"employee": "Глеб", "value": 9},
        ])
    );
    let data = fixture("forgotten");
    let plan = |metric: &str| {
        let param = format!("metric={metric}");
        ok(&[
            "explain",
            "pick",
            "--reports",
            dir.path().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--param",
            &param,
        ])
    };
    let taken = plan("n");
    assert!(!taken.contains("WindowAggr"), "{taken}");
    assert!(plan("everyone").contains("WindowAggr"));
}

/// `iso_week(ts)` labels a row by its ISO week in the client's zone, as text that sorts in
/// time order: deal 7 (Sunday 31 March, 23:30 Moscow) is in week 13, deal 6 (Monday 1 April,
/// 00:10 Moscow — still Sunday in UTC) in week 14.
#[test]
fn iso_weeks_in_the_clients_zone() {
    let yaml = r#"report: weeks
title: Недели
blocks:
  - id: by_week
    title: По неделям
    from: deals
    by: { week: "iso_week(created_at)" }
    measures:
      n: count(*)
      ids: "string_agg(cast(id as varchar), ',' order by id)"
    sort: [week]
"#;
    let r = run_yaml("weeks", yaml, "2024-01-01", "2024-05-31", &[]);
    assert_eq!(
        block(&r, "by_week")["rows"],
        json!([
            {"week": "2024-W05", "n": 2, "ids": "4,5"},
            {"week": "2024-W09", "n": 2, "ids": "1,2"},
            {"week": "2024-W13", "n": 1, "ids": "7"},
            {"week": "2024-W14", "n": 1, "ids": "6"},
            {"week": "2024-W15", "n": 1, "ids": "3"},
            {"week": "2024-W16", "n": 1, "ids": "9"},
            {"week": "2024-W18", "n": 1, "ids": "8"},
        ])
    );
}

/// `all_values` lists every value of a dictionary as a row, those with nothing to count
/// included: open deals by stage shows the won and lost stages too, with 0.
#[test]
fn a_dimension_takes_every_value_of_its_dictionary() {
    let yaml = r#"report: stages
title: Этапы
blocks:
  - id: by_stage
    title: Открытые сделки по этапам
    from: deals
    where: semantic = 'process'
    by:
      - stage_id: { all_values: { from: stages, column: stage_id, where: "entity = 'deal'" } }
    measures:
      n: count(*)
      amount: sum(amount)
    totals: true
    sort: [stage_id]
"#;
    let r = run_yaml("stages", yaml, "2024-01-01", "2024-05-31", &[]);
    let b = block(&r, "by_stage");
    assert_eq!(
        b["rows"],
        json!([
            {"stage_id": "LOSE", "n": 0, "amount": 0.0},
            {"stage_id": "NEW", "n": 2, "amount": 900.0},
            {"stage_id": "WON", "n": 0, "amount": 0.0},
            {"stage_id": "WORK", "n": 4, "amount": 4100.5},
        ]),
        "open: deals 3, 8 (new) and 1, 2, 6, 7 (in work)"
    );
    assert_eq!(b["totals"]["n"], 6);
    // Without it, the stages nobody is in are not rows.
    let plain = yaml.replace(
        "      - stage_id: { all_values: { from: stages, column: stage_id, where: \"entity = 'deal'\" } }\n",
        "      - stage_id\n",
    );
    let r = run_yaml("stages", &plain, "2024-01-01", "2024-05-31", &[]);
    assert_eq!(block(&r, "by_stage")["rows"].as_array().unwrap().len(), 2);
}

/// A model's derived columns see each other in dependency order, whatever the order they
/// are written in and however they are grouped into plan steps: a column that replaces a
/// source column is what the columns over it read, a column over another waits for it,
/// and a window function's column is read by the columns after it. Company 1's deals:
/// 1 (1 000), 2 (2 000), 4 (5 000), 5 (3 000); ranked by id, last first.
#[test]
fn derived_columns_read_each_other_in_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "chained.yaml",
        r#"model: chained
from: tables.deals
where: company_id = 1
columns:
  after_rank: rank_in_company * 10 + quad
  quad: double * 2
  double: amount * 2
  amount: { expr: amount + 1, replace: true }
  rank_in_company: row_number() over (partition by company_id order by id desc)
  title_length: character_length(title)
"#,
    );
    write(
        dir.path(),
        "chain.yaml",
        r#"report: chain
title: Chain
blocks:
  - id: deals
    title: Deals
    from: chained
    by: [id]
    measures:
      amount: max(amount)
      double: max(double)
      quad: max(quad)
      rank: max(rank_in_company)
      after_rank: max(after_rank)
    sort: [id]
"#,
    );
    let out = run_on_fixture("chain", Some(dir.path()), "2024-04-01", "2024-04-30", &[]);
    let rows: Vec<Vec<f64>> = block(&out, "deals")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ["id", "amount", "double", "quad", "rank", "after_rank"]
                .iter()
                .map(|c| r[c].as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![1.0, 1001.0, 2002.0, 4004.0, 4.0, 4044.0],
            vec![2.0, 2001.0, 4002.0, 8004.0, 3.0, 8034.0],
            vec![4.0, 5001.0, 10002.0, 20004.0, 2.0, 20024.0],
            vec![5.0, 3001.0, 6002.0, 12004.0, 1.0, 12014.0],
        ]
    );
}
