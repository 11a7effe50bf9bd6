//! The snapshot store end to end: a data folder imported into Parquet gives every report
//! the same JSON as the CSV it came from; a broken store is named in the error.

use crate::util::{REPORTS, block, fails, fixture, json, ok};

fn reports_equal(csv: &str, store: &str, from: &str, to: &str) {
    for report in REPORTS {
        let run = |data: &str| ok(&["run", report, "--data", data, "--from", from, "--to", to]);
        assert_eq!(run(store), run(csv), "{report}");
    }
}

#[test]
fn every_report_is_the_same_on_the_store_as_on_csv() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let csv = fixture("forgotten");
    ok(&[
        "store",
        "import",
        "--data",
        csv.to_str().unwrap(),
        "--store",
        s,
    ]);
    let shown = ok(&["store", "show", "--store", s]);
    assert!(
        shown.starts_with("snapshot 000001 (csv import)\n"),
        "{shown}"
    );
    assert!(shown.contains("  deals: 9\n"), "{shown}");
    reports_equal(csv.to_str().unwrap(), s, "2024-04-01", "2024-04-30");
}

/// The store keeps each stage change's and activity's next one (over all history); a run
/// for an earlier `as_of` must still see the history as it stood then. At 2024-04-15:
/// deal 5 was still «Новая» (won on 3 May) with an open task from 1 April and no later
/// activity (the call of 2 May is after); deal 6 had not left «Новая» (moved on 25 April),
/// so its visit lasts to the end of the 15th: 14 d 23 h 50 min; deal 1's activity of
/// 16 April does not count, its task of 10 April does.
#[test]
fn an_earlier_as_of_sees_the_history_as_it_stood_on_the_store_and_on_csv() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let csv = fixture("forgotten");
    let c = csv.to_str().unwrap();
    ok(&["store", "import", "--data", c, "--store", s]);
    let mid_april = |args: &[&str]| {
        json(
            &[
                &["run"],
                args,
                &["--from", "2024-04-01", "--to", "2024-04-15"],
            ]
            .concat(),
        )
    };
    for data in [c, s] {
        let r = mid_april(&["forgotten", "--data", data]);
        let deals: Vec<(i64, &str, i64, &str, bool)> = block(&r, "forgotten_deals")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_i64().unwrap(),
                    d["stage"].as_str().unwrap(),
                    d["days_since_touch"].as_i64().unwrap(),
                    d["reason"].as_str().unwrap(),
                    d["no_planned_activity"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            deals,
            vec![
                (2, "В работе", 41, "no_activity", true),
                (5, "Новая", 14, "stale", false),
                (6, "Новая", 14, "no_activity", true),
            ],
            "{data}"
        );
        assert_eq!(
            block(&r, "totals")["rows"][0]["forgotten_sum"],
            5700.0,
            "{data}"
        );
        let r = mid_april(&["sales_dynamics", "--block", "time_in_stage", "--data", data]);
        let glebs_new = block(&r, "time_in_stage")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["employee_id"] == 4 && row["stage_id"] == "NEW")
            .cloned()
            .unwrap();
        assert_eq!(glebs_new["avg_days"], 14.99, "{data}");
    }
    for as_of in ["2024-04-09", "2024-04-15", "2024-04-24", "2024-05-02"] {
        let run = |data: &str| {
            ok(&[
                "run",
                "sales_dynamics",
                "--data",
                data,
                "--from",
                "2024-04-01",
                "--to",
                "2024-05-31",
                "--as-of",
                as_of,
            ])
        };
        assert_eq!(run(s), run(c), "{as_of}");
    }
}

#[test]
fn demo_data_through_the_store() {
    let (demo, store) = crate::util::demo_and_store("1500");
    let (d, s) = (
        demo.path().to_str().unwrap(),
        store.path().to_str().unwrap(),
    );
    // Twice: the second snapshot replaces the first for readers.
    ok(&["store", "import", "--data", d, "--store", s]);
    assert!(ok(&["store", "show", "--store", s]).starts_with("snapshot 000002"));
    reports_equal(d, s, "2026-09-01", "2026-11-30");
}

#[test]
fn a_broken_store_is_named() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&[
        "store",
        "import",
        "--data",
        fixture("forgotten").to_str().unwrap(),
        "--store",
        s,
    ]);
    std::fs::write(store.path().join("CURRENT"), "000009\n").unwrap();
    let err = fails(&["run", "forgotten", "--data", s]);
    assert!(
        err.contains("snapshots/000009/manifest.json: reading"),
        "{err}"
    );
}

#[test]
fn a_big_csv_folder_says_once_that_a_store_is_faster() {
    let dir = crate::util::fixture_copy("forgotten");
    // Size is all the hint looks at: a sparse file stands in for a big export.
    for table in ["deals", "activities"] {
        let path = dir.path().join(format!("{table}.csv"));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(svodka_sources::BIG_CSV_BYTES + 1)
            .unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let out = crate::util::svodka(&["run", "forgotten", "--data", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("a snapshot store reads only what a report needs")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("MB: CSV is read whole on every run"), "{err}");
    // The padding is no CSV: the run still names the bad place.
    assert!(!out.status.success());
    assert!(err.contains(".csv:"), "{err}");
}

/// A table a report reads that has no rows is named once, on CSV and on the store alike:
/// a figure that is zero for want of data is never silent.
#[test]
fn an_empty_table_a_report_reads_is_named_once() {
    let dir = crate::util::fixture_copy("forgotten");
    let activities = dir.path().join("activities.csv");
    let header = std::fs::read_to_string(&activities).unwrap();
    std::fs::write(&activities, format!("{}\n", header.lines().next().unwrap())).unwrap();
    let d = dir.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
    for (data, note) in [
        (
            d,
            format!(
                "note: {} has no rows; table `activities` is empty\n",
                activities.display()
            ),
        ),
        (
            s,
            format!("note: {s}: table `activities` of snapshot 000001 (csv import) is empty\n"),
        ),
    ] {
        let out = crate::util::svodka(&["run", "forgotten", "--data", data]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches(note.as_str()).count(), 1, "{err}");
        assert_eq!(err.matches("note: ").count(), 1, "only activities: {err}");
    }
}

/// The models that declare a `key` without aggregating keep it on real data: one row per
/// key, on a store (derived columns read from Parquet) and on CSV (derived in memory).
#[test]
fn declared_model_keys_name_one_row_on_demo_data() {
    let (demo, store) = crate::util::demo_and_store("1500");
    let (d, s) = (
        demo.path().to_str().unwrap(),
        store.path().to_str().unwrap(),
    );
    let reports = tempfile::tempdir().unwrap();
    crate::util::write(
        reports.path(),
        "keys.yaml",
        r#"report: keys
title: Keys
blocks:
  - id: stage_change
    title: Stage change
    from: entity_stage_change
    measures:
      rows: count(*)
      keys: count(distinct entity || ':' || cast(entity_id as varchar))
  - id: activity
    title: Activity
    from: entity_activity
    measures:
      rows: count(*)
      keys: count(distinct entity || ':' || cast(entity_id as varchar))
  - id: won_ranks
    title: Won ranks
    from: deal_won_ranks
    measures:
      rows: count(*)
      keys: count(distinct id)
"#,
    );
    let r = reports.path().to_str().unwrap();
    for data in [s, d] {
        for as_of in ["2026-06-30", "2026-11-27"] {
            let out = json(&[
                "run",
                "keys",
                "--reports",
                r,
                "--data",
                data,
                "--from",
                "2026-01-01",
                "--to",
                "2026-11-27",
                "--as-of",
                as_of,
            ]);
            for b in ["stage_change", "activity", "won_ranks"] {
                let row = &block(&out, b)["rows"][0];
                assert!(row["rows"].as_i64().unwrap() > 100, "{b} {row}");
                assert_eq!(row["rows"], row["keys"], "{b} on {data} as of {as_of}");
            }
        }
    }
}

/// The size a run plans and allocates by: a store's rows as its snapshot lists them, a
/// CSV folder's told from its bytes to within a factor of two.
#[test]
fn a_data_folder_tells_about_how_many_rows_it_holds() {
    use svodka_report::tables::TableSet;
    let rows_of = |dir: &std::path::Path| {
        svodka_sources::open_data(dir, |_| {})
            .unwrap()
            .0
            .rows()
            .unwrap()
    };
    let (demo, store) = crate::util::demo_and_store("300");
    let snapshot = svodka_store::Store::new(store.path()).current().unwrap();
    let counted: u64 = snapshot
        .manifest
        .tables
        .iter()
        .map(|(table, _)| {
            let (_, batches) = snapshot.read(table).unwrap();
            batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
        })
        .sum();
    assert!(counted > 1000, "{counted}");
    assert_eq!(rows_of(store.path()), counted);

    let mut lines = 0u64;
    for entry in std::fs::read_dir(demo.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "csv") {
            // Less the header; a quoted value never spans lines in the demo's files.
            lines += std::fs::read_to_string(&path).unwrap().lines().count() as u64 - 1;
        }
    }
    let told = rows_of(demo.path());
    assert!(
        told * 2 > lines && told < lines * 2,
        "{told} rows told for {lines}"
    );
}
