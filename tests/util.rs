//! Helpers: run the binary, read JSON, find fixtures, compare golden files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The moment every test runs at: no test reads the wall clock, so the suite passes on
/// any day and in any time zone.
pub const NOW: &str = "2026-11-27T12:00:00+03:00";

/// The pinned clock, for tests that build the service in-process.
pub fn clock() -> svodka_config::Clock {
    svodka_config::Clock::parse(NOW).expect("a valid moment")
}

/// The `svodka` binary with the pinned clock, run from the repository root.
pub fn svodka_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.env(svodka_config::Clock::ENV, NOW).current_dir(root());
    cmd
}

/// Runs `svodka` with `args`; returns its output whatever the exit status.
pub fn svodka(args: &[&str]) -> Output {
    svodka_command().args(args).output().expect("svodka runs")
}

/// Runs `svodka`, asserts success, returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = svodka(args);
    assert!(
        out.status.success(),
        "svodka {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `svodka`, asserts failure, returns standard error.
pub fn fails(args: &[&str]) -> String {
    let out = svodka(args);
    assert!(
        !out.status.success(),
        "svodka {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("UTF-8 errors")
}

pub fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).expect("valid JSON")
}

/// The block `id` of a report's JSON.
pub fn block<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("no block {id}"))
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected != actual {
        let diff_at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{} differs from the output at line {}:\nexpected: {}\nactual:   {}\n(run with UPDATE_GOLDEN=1 after checking the change)",
            path.display(),
            diff_at + 1,
            expected.lines().nth(diff_at).unwrap_or(""),
            actual.lines().nth(diff_at).unwrap_or("")
        );
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The shipped reports of reports.md.
pub const REPORTS: [&str; 6] = [
    "forgotten",
    "manager_efficiency",
    "sales_plan",
    "marketing",
    "sales_dynamics",
    "clients",
];

/// A writable copy of a fixture folder, to break or extend.
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// `svodka run REPORT` on the `forgotten` fixture over `from`–`to`, with definitions from
/// `reports` layered over the shipped ones, and extra arguments.
pub fn run_on_fixture(
    report: &str,
    reports: Option<&Path>,
    from: &str,
    to: &str,
    extra: &[&str],
) -> Value {
    let mut args = run_args(report, &fixture("forgotten"), from, to);
    if let Some(dir) = reports {
        args.extend(["--reports".to_string(), dir.to_str().unwrap().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    json(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `run REPORT --data DATA --from FROM --to TO`, to extend with more arguments.
pub fn run_args(report: &str, data: &Path, from: &str, to: &str) -> Vec<String> {
    [
        "run",
        report,
        "--data",
        data.to_str().unwrap(),
        "--from",
        from,
        "--to",
        to,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `svodka run REPORT` on the `forgotten` fixture with `extra` arguments, expected to
/// fail; returns standard error.
pub fn fails_on_fixture(report: &str, extra: &[&str]) -> String {
    let data = fixture("forgotten");
    let mut args = vec!["run", report, "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    fails(&args)
}

/// A table's rows as sorted text lines.
pub fn lines(batches: &[arrow::record_batch::RecordBatch]) -> Vec<String> {
    let opts = arrow::util::display::FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<arrow::util::display::ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| c.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}

/// A CSV folder's table as sorted text lines.
pub fn csv_lines(dir: &Path, table: &str) -> Vec<String> {
    lines(&svodka_csv::read_table(dir, table).unwrap().batches)
}

/// A store's current table as sorted text lines.
pub fn store_lines(store: &Path, table: &str) -> Vec<String> {
    lines(
        &svodka_store::Store::new(store)
            .current()
            .unwrap()
            .read(table)
            .unwrap()
            .1,
    )
}

/// The demo data set of `deals` deals and a store imported from it (both kept while the
/// returned folders live).
pub fn demo_and_store(deals: &str) -> (tempfile::TempDir, tempfile::TempDir) {
    let demo = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--out",
        demo.path().to_str().unwrap(),
        "--deals",
        deals,
    ]);
    let store = import_store(demo.path());
    (demo, store)
}

/// A new store with the tables of the data folder `data` imported.
pub fn import_store(data: &Path) -> tempfile::TempDir {
    let store = tempfile::tempdir().unwrap();
    ok(&[
        "store",
        "import",
        "--data",
        data.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
    ]);
    store
}

/// Starts `svodka serve --addr 127.0.0.1:0 --config CONFIG` from `cmd` (the binary with
/// its environment) and reads the address it listens on from its first line.
pub fn serve_process(
    mut cmd: Command,
    config: &Path,
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = cmd
        .args(["serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("svodka serve starts");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("its first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}
