//! The benchmark's check at 20 000 deals: every report that has an independent DuckDB
//! implementation (`bench/sql/`) gives the same values in Svodka, block by block, on the
//! same Parquet files. Values only: timings are for `bench/bench.py` run by hand.

use crate::util::{NOW, root};

#[test]
fn reports_equal_an_independent_duckdb_implementation_on_the_demo_store() {
    let work = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(root().join("bench/bench.py"))
        .args(["--deals", "20000", "--check", "--work"])
        .arg(work.path())
        .arg("--svodka")
        .arg(env!("CARGO_BIN_EXE_svodka"))
        .env(svodka_config::Clock::ENV, NOW)
        .output()
        .expect("python3 runs (the bench harness needs Python 3 and `pip install duckdb`)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("forgotten") && text.contains("equal"),
        "{text}"
    );
    assert!(!text.contains("differences"), "{text}");
}
