//! `svodka test [DIR]`: data tests for reports, as dbt has them. Each `*.yaml` of the
//! folder is a case — a report run on a small data folder with its period, settings,
//! parameters and filters, and the rows, totals or row counts some blocks must give — run
//! as `svodka run` runs it; a failure says the block, row and column, expected against
//! got, and the command exits non-zero.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use svodka_report::RunRequest;

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The report's id.
    report: String,
    /// A CSV folder or a snapshot store, relative to the case file.
    data: PathBuf,
    /// Folders or files of definitions over the shipped ones, relative to the case file.
    #[serde(default)]
    reports: Vec<PathBuf>,
    from: NaiveDate,
    to: NaiveDate,
    #[serde(default)]
    as_of: Option<NaiveDate>,
    /// IANA zone; default: the data set's, else Europe/Moscow.
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    settings: IndexMap<String, serde_yaml::Value>,
    #[serde(default)]
    parameters: IndexMap<String, serde_yaml::Value>,
    /// `employee: [1, 2]`…
    #[serde(default)]
    filters: IndexMap<String, Vec<serde_yaml::Value>>,
    /// How far a number may be from the expected one.
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    /// Per block id: what it must give.
    expect: IndexMap<String, Expect>,
}

fn default_tolerance() -> f64 {
    0.005
}

/// What a block must give; each part is optional, and a row names only the columns it
/// checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The block's rows, in order, each with the columns to check.
    #[serde(default)]
    rows: Option<Vec<IndexMap<String, serde_yaml::Value>>>,
    /// The totals row's columns to check.
    #[serde(default)]
    totals: Option<IndexMap<String, serde_yaml::Value>>,
    /// How many rows the block has (when `rows` lists only some).
    #[serde(default)]
    row_count: Option<usize>,
}

/// Runs every case of `dir` (or the one file `dir` names); prints a line per case and the
/// differences of each failed one; fails when any case failed.
pub async fn run_cases(dir: &Path, clock: svodka_config::Clock) -> Result<()> {
    let files: Vec<PathBuf> = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
    };
    if files.is_empty() {
        bail!("{}: no test cases (*.yaml)", dir.display());
    }
    let mut failed = 0;
    for file in &files {
        match run_case(file, clock).await {
            Ok(problems) if problems.is_empty() => outln!("ok    {}", file.display()),
            Ok(problems) => {
                failed += 1;
                outln!("FAIL  {}", file.display());
                for p in problems {
                    outln!("      {p}");
                }
            }
            Err(e) => {
                failed += 1;
                outln!("FAIL  {}: {e:#}", file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} test case(s) failed", files.len());
    }
    outln!("{} test case(s) passed", files.len());
    Ok(())
}

/// One case: its differences from what the report gives (none: it passes).
async fn run_case(file: &Path, clock: svodka_config::Clock) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let case: Case = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {e}", file.display())
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    let overlays: Vec<PathBuf> = case.reports.iter().map(|p| base.join(p)).collect();
    let catalog = svodka_sources::catalog(&overlays)?;
    let (tables, info) = svodka_sources::open_data(&base.join(&case.data), |_| {})?;
    let zone = match &case.timezone {
        Some(name) => Some(
            svodka_schema::values::zone(name)
                .map_err(|e| anyhow::anyhow!("{}: timezone: {e}", file.display()))?,
        ),
        None => None,
    };
    let mut params = svodka_sources::run_params(
        (Some(case.from), Some(case.to), case.as_of),
        zone,
        None,
        info.as_ref(),
        clock,
    )?;
    for (name, values) in &case.filters {
        let values: Vec<String> = values
            .iter()
            .map(svodka_report::settings::setting_text)
            .collect();
        params.add_filter(name, &values)?;
    }
    let text_of = |m: &IndexMap<String, serde_yaml::Value>| -> Vec<(String, String)> {
        m.iter()
            .map(|(k, v)| (k.clone(), svodka_report::settings::setting_text(v)))
            .collect()
    };
    let req = RunRequest {
        settings: text_of(&case.settings),
        parameters: text_of(&case.parameters),
        ..RunRequest::new(&case.report, params)
    };
    let result = svodka_report::run(&catalog, &tables, &req).await?;
    let json = serde_json::to_value(svodka_render::json::ReportJson::new(&result)?)?;
    let mut problems = Vec::new();
    for (id, expect) in &case.expect {
        let Some(block) = json["blocks"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["id"] == id.as_str()))
        else {
            problems.push(format!("block `{id}`: the report has no such block"));
            continue;
        };
        let rows = block["rows"].as_array().cloned().unwrap_or_default();
        if let Some(n) = expect.row_count
            && rows.len() != n
        {
            problems.push(format!("block `{id}`: {} rows, expected {n}", rows.len()));
        }
        if let Some(want) = &expect.rows {
            if rows.len() != want.len() && expect.row_count.is_none() {
                problems.push(format!(
                    "block `{id}`: {} rows, expected {}",
                    rows.len(),
                    want.len()
                ));
            }
            for (k, (w, got)) in want.iter().zip(&rows).enumerate() {
                compare(
                    &format!("block `{id}`, row {}", k + 1),
                    w,
                    got,
                    case.tolerance,
                    &mut problems,
                );
            }
        }
        if let Some(want) = &expect.totals {
            compare(
                &format!("block `{id}`, totals"),
                want,
                &block["totals"],
                case.tolerance,
                &mut problems,
            );
        }
    }
    Ok(problems)
}

/// Each expected column of `want` against the row `got`.
fn compare(
    at: &str,
    want: &IndexMap<String, serde_yaml::Value>,
    got: &Value,
    tolerance: f64,
    problems: &mut Vec<String>,
) {
    for (column, expected) in want {
        let expected = serde_json::to_value(expected).unwrap_or(Value::Null);
        let Some(actual) = got.get(column) else {
            problems.push(format!("{at}: no column `{column}`"));
            continue;
        };
        let same = match (expected.as_f64(), actual.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() <= tolerance,
            _ => expected == *actual,
        };
        if !same {
            problems.push(format!(
                "{at}, column `{column}`: expected {expected}, got {actual}"
            ));
        }
    }
}
