//! Data folders as the CLI opens them (notes and progress on standard error), the plans
//! template's directory, and progress output for long commands.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use svodka_config::DatasetInfo;
use svodka_report::LazyTables;

/// Departments, active employees and pipelines of a data folder (a store or CSV), for the
/// plans template.
pub fn directory(dir: &Path) -> Result<(svodka_plans_xlsx::Directory, Option<DatasetInfo>)> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let read = |table: &str| {
        svodka_sources::read_data_table(dir, table, |note| eprintln!("note: {note}"))
            .with_context(|| format!("reading {table} from {}", dir.display()))
    };
    let ids_names = |t: &svodka_report::Loaded| -> Vec<(i64, String)> {
        t.batches
            .iter()
            .flat_map(|b| {
                let id = b
                    .column_by_name("id")
                    .expect("canonical")
                    .as_primitive::<Int64Type>()
                    .clone();
                let name = b
                    .column_by_name("name")
                    .expect("canonical")
                    .as_string::<i32>()
                    .clone();
                (0..b.num_rows()).map(move |i| (id.value(i), name.value(i).to_string()))
            })
            .collect()
    };
    let (users, info) = read("users")?;
    let mut employees = Vec::new();
    for b in &users.batches {
        let id = b
            .column_by_name("id")
            .expect("canonical")
            .as_primitive::<Int64Type>();
        let name = b
            .column_by_name("name")
            .expect("canonical")
            .as_string::<i32>();
        let department = b
            .column_by_name("department_id")
            .expect("canonical")
            .as_primitive::<Int64Type>();
        let active = b.column_by_name("active").expect("canonical").as_boolean();
        for i in 0..b.num_rows() {
            if active.value(i) {
                let d = (!department.is_null(i)).then(|| department.value(i));
                employees.push((id.value(i), name.value(i).to_string(), d));
            }
        }
    }
    Ok((
        svodka_plans_xlsx::Directory {
            departments: ids_names(&read("departments")?.0),
            employees,
            pipelines: ids_names(&read("pipelines")?.0),
        },
        info,
    ))
}

/// The default demo data set, generated into the temp folder on first use (with progress).
pub fn demo_dir() -> Result<std::path::PathBuf> {
    let mut progress: Option<Progress> = None;
    let dir = svodka_sources::demo_dir(&mut |done, total| {
        progress
            .get_or_insert_with(|| {
                eprintln!("generating the demo data set into the temp folder …");
                Progress::new("demo")
            })
            .update(done, total)
    })?;
    if let Some(p) = progress {
        p.finish();
    }
    Ok(dir)
}

/// Runs over `tables` allocate from mimalloc from now on when they hold small data
/// (`svodka_report::tables::SMALL_DATA_ROWS`; see `alloc`).
pub fn choose_allocator(tables: &dyn svodka_report::tables::TableSet) {
    if tables.holds_small_data() {
        crate::alloc::prefer_mimalloc();
    }
}

/// A data folder as engine tables, with notes of absent or empty tables on standard error.
/// A run's allocator is chosen by its size.
pub fn open(dir: &Path) -> Result<(LazyTables, Option<DatasetInfo>)> {
    let (tables, info) = svodka_sources::open_data(dir, |note| eprintln!("note: {note}"))?;
    choose_allocator(&tables);
    Ok((tables, info))
}

/// A progress line on a terminal (rewritten in place), plain lines every 10% otherwise.
pub struct Progress {
    what: String,
    started: Instant,
    terminal: bool,
    last_decile: u64,
}

impl Progress {
    pub fn new(what: impl Into<String>) -> Self {
        Progress {
            what: what.into(),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_decile: 0,
        }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        let total = total.max(1);
        let pct = done * 100 / total;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if done > 0 {
            elapsed * (total - done.min(total)) as f64 / done as f64
        } else {
            0.0
        };
        let rate = done as f64 / elapsed.max(0.001);
        if self.terminal {
            eprint!(
                "\r{}: {pct:>3}% ({done}/{total}, {rate:.0}/s), {elapsed:.0}s elapsed, ETA {eta:.0}s   ",
                self.what
            );
        } else if pct / 10 > self.last_decile {
            self.last_decile = pct / 10;
            eprintln!(
                "{}: {pct}% ({done}/{total}, {rate:.0}/s), {elapsed:.0}s elapsed",
                self.what
            );
        }
    }

    pub fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
