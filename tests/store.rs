//! The snapshot store end to end: a data folder imported into Parquet gives every report
//! the same JSON as the CSV it came from; a broken store is named in the error.

use crate::util::{REPORTS, fails, fixture, ok};

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

#[test]
fn demo_data_through_the_store() {
    let demo = tempfile::tempdir().unwrap();
    let d = demo.path().to_str().unwrap();
    ok(&["demo", "--out", d, "--deals", "1500"]);
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
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
