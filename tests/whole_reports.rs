//! Every shipped report, whole, on the fixture: its JSON equals its golden file
//! (`tests/golden/REPORT.json`; `UPDATE_GOLDEN=1` rewrites them after a checked change).

use crate::util::{REPORTS, golden, run_on_fixture};

#[test]
fn every_shipped_report_matches_its_golden_file() {
    for report in REPORTS {
        let json = run_on_fixture(report, None, "2024-04-01", "2024-04-30", &[]);
        golden(
            &format!("{report}.json"),
            &(serde_json::to_string_pretty(&json).unwrap() + "\n"),
        );
    }
}
