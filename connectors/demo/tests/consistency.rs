//! The demo data set is consistent with itself: every reference resolves, stage history
//! agrees with current stages, and the story it is meant to tell is there.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use svodka_demo::{DemoConfig, generate};

/// One column of a generated table, as Rust values (None for null).
fn column<T>(
    dir: &Path,
    table: &str,
    column: &str,
    get: impl Fn(&dyn Array, usize) -> T,
) -> Vec<Option<T>> {
    let t = svodka_csv::read_table(dir, table).unwrap();
    t.batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(column).unwrap().clone();
            (0..a.len())
                .map(|i| (!a.is_null(i)).then(|| get(a.as_ref(), i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ids(dir: &Path, table: &str, name: &str) -> Vec<Option<i64>> {
    column(dir, table, name, |a, i| {
        a.as_primitive::<Int64Type>().value(i)
    })
}

fn texts(dir: &Path, table: &str, name: &str) -> Vec<Option<String>> {
    column(dir, table, name, |a, i| {
        a.as_string::<i32>().value(i).to_string()
    })
}

fn times(dir: &Path, table: &str, name: &str) -> Vec<Option<i64>> {
    column(dir, table, name, |a, i| {
        a.as_primitive::<TimestampMicrosecondType>().value(i)
    })
}

#[test]
fn references_resolve_and_history_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(
        &DemoConfig {
            deals: 3000,
            seed: 11,
        },
        dir.path(),
        &mut |_, _| {},
    )
    .unwrap();
    let d = dir.path();
    let count = |t: &str| summary.tables.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!(count("deals"), 3000);
    for t in svodka_schema::TABLES {
        assert!(count(t.name) > 0, "{} is empty", t.name);
    }

    let users: HashSet<i64> = ids(d, "users", "id").into_iter().flatten().collect();
    assert!((20..=60).contains(&users.len()));
    let active: Vec<bool> = {
        let t = svodka_csv::read_table(d, "users").unwrap();
        t.batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("active")
                    .unwrap()
                    .as_boolean()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(active.iter().any(|a| !a), "some employees are dismissed");

    let companies: HashSet<i64> = ids(d, "companies", "id").into_iter().flatten().collect();
    let leads: HashSet<i64> = ids(d, "leads", "id").into_iter().flatten().collect();
    let deal_ids = ids(d, "deals", "id");
    let deals: HashSet<i64> = deal_ids.iter().flatten().copied().collect();
    for u in ids(d, "deals", "assigned_id") {
        assert!(users.contains(&u.unwrap()));
    }
    for c in ids(d, "deals", "company_id").into_iter().flatten() {
        assert!(companies.contains(&c));
    }
    let lead_refs: Vec<i64> = ids(d, "deals", "lead_id").into_iter().flatten().collect();
    assert!(!lead_refs.is_empty());
    for l in &lead_refs {
        assert!(leads.contains(l));
    }

    // Activities belong to existing entities.
    let owner_types = texts(d, "activities", "owner_type");
    let owners = ids(d, "activities", "owner_id");
    for (t, o) in owner_types.iter().zip(&owners) {
        let (t, o) = (t.as_deref().unwrap(), o.unwrap());
        match t {
            "deal" => assert!(deals.contains(&o)),
            "lead" => assert!(leads.contains(&o)),
            "company" => assert!(companies.contains(&o)),
            other => panic!("unexpected owner type {other}"),
        }
    }

    // The last stage-history row of each deal is its current stage.
    let entity = texts(d, "stage_history", "entity");
    let entity_id = ids(d, "stage_history", "entity_id");
    let stage = texts(d, "stage_history", "stage_id");
    let changed = times(d, "stage_history", "changed_at");
    let kinds = texts(d, "stage_history", "kind");
    let mut last: HashMap<(String, i64), (i64, String)> = HashMap::new();
    for i in 0..entity.len() {
        let key = (entity[i].clone().unwrap(), entity_id[i].unwrap());
        let at = changed[i].unwrap();
        let e = last.entry(key).or_insert((i64::MIN, String::new()));
        if at >= e.0 {
            *e = (at, stage[i].clone().unwrap());
        }
    }
    let deal_stage = texts(d, "deals", "stage_id");
    for (id, s) in deal_ids.iter().zip(&deal_stage) {
        let (_, hist) = &last[&("deal".to_string(), id.unwrap())];
        assert_eq!(hist, s.as_ref().unwrap(), "deal {id:?}");
    }
    let lead_ids = ids(d, "leads", "id");
    let lead_status = texts(d, "leads", "status_id");
    for (id, s) in lead_ids.iter().zip(&lead_status) {
        let (_, hist) = &last[&("lead".to_string(), id.unwrap())];
        assert_eq!(hist, s.as_ref().unwrap(), "lead {id:?}");
    }
    assert!(
        kinds
            .iter()
            .any(|k| k.as_deref() == Some("pipeline_changed"))
            || count("deals") < 5000
    );

    // Reopened deals: a process stage after a failure stage.
    let mut seq: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for i in 0..entity.len() {
        if entity[i].as_deref() == Some("deal") {
            seq.entry(entity_id[i].unwrap())
                .or_default()
                .push((changed[i].unwrap(), stage[i].clone().unwrap()));
        }
    }
    let reopened = seq
        .values()
        .filter(|v| {
            let mut v = (*v).clone();
            v.sort();
            v.windows(2).any(|w| {
                w[0].1.ends_with("LOSE") && !w[1].1.ends_with("LOSE") && !w[1].1.ends_with("WON")
            })
        })
        .count();
    assert!(reopened > 0, "some deals are reopened");

    // Closed deals have closed_at; open ones do not.
    let semantic = texts(d, "deals", "semantic");
    let closed = times(d, "deals", "closed_at");
    for (s, c) in semantic.iter().zip(&closed) {
        assert_eq!(s.as_deref() == Some("process"), c.is_none());
    }

    // 1C: sales reference counterparties; some INNs match CRM companies, some do not.
    let cps: HashSet<String> = texts(d, "onec_counterparties", "id")
        .into_iter()
        .flatten()
        .collect();
    for c in texts(d, "onec_sales", "counterparty_id")
        .into_iter()
        .flatten()
    {
        assert!(cps.contains(&c));
    }
    let crm_inns: HashSet<String> = texts(d, "companies", "inn").into_iter().flatten().collect();
    let onec_inns: Vec<String> = texts(d, "onec_counterparties", "inn")
        .into_iter()
        .flatten()
        .map(|i| i.chars().filter(|c| c.is_ascii_digit()).collect())
        .collect();
    assert!(onec_inns.iter().any(|i| crm_inns.contains(i)));
    assert!(onec_inns.iter().any(|i| !crm_inns.contains(i)));
}
