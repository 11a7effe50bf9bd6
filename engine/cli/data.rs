//! Opening a data folder for the engine, and progress output for long commands.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use svodka_csv::DatasetInfo;
use svodka_report::{Loaded, MemoryTables};

/// The file in a data folder that holds plans and bonus tiers, when the client keeps them
/// in a workbook.
pub const PLANS_WORKBOOK: &str = "plans.xlsx";

/// Departments, active employees and pipelines of a data folder, for the plans template.
pub fn directory(dir: &Path) -> Result<(svodka_plans_xlsx::Directory, Option<DatasetInfo>)> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let info = DatasetInfo::read(dir).with_context(|| format!("reading {}", dir.display()))?;
    let read = |table: &str| {
        svodka_csv::read_table(dir, table)
            .with_context(|| format!("reading {table} from {}", dir.display()))
    };
    let ids_names = |t: &svodka_csv::LoadedTable| -> Vec<(i64, String)> {
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
    let users = read("users")?;
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
            departments: ids_names(&read("departments")?),
            employees,
            pipelines: ids_names(&read("pipelines")?),
        },
        info,
    ))
}

/// A CSV folder as engine tables (each read on first use), with its description.
pub fn open(dir: &Path) -> Result<(MemoryTables, Option<DatasetInfo>)> {
    if !dir.is_dir() {
        bail!(
            "{}: not a folder (make one with `svodka demo --out {}`)",
            dir.display(),
            dir.display()
        );
    }
    let info = DatasetInfo::read(dir).with_context(|| format!("reading {}", dir.display()))?;
    let owned = dir.to_path_buf();
    let partitions = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let tables = MemoryTables::new(partitions, move |name| {
        // A plans workbook, when present, is where plans and bonus tiers come from.
        let workbook = owned.join(PLANS_WORKBOOK);
        if matches!(name, "plans" | "bonus_tiers") && workbook.exists() {
            let (plans, tiers) = svodka_plans_xlsx::read(&workbook).map_err(|e| e.to_string())?;
            let batch = if name == "plans" { plans } else { tiers };
            return Ok(Loaded {
                schema: batch.schema(),
                batches: vec![batch],
            });
        }
        let t = svodka_csv::read_table(&owned, name).map_err(|e| e.to_string())?;
        if !t.present {
            eprintln!(
                "note: {} is absent; table `{name}` is empty",
                svodka_csv::table_path(&owned, name).display()
            );
        }
        Ok(Loaded {
            schema: t.schema,
            batches: t.batches,
        })
    });
    Ok((tables, info))
}

/// Which data a report was computed from, as shown on its page and workbook.
pub fn version(info: &DatasetInfo) -> String {
    let mut v = format!("{}, snapshot {}", info.name, info.snapshot_date);
    if let Some(origin) = &info.origin {
        v.push_str(&format!(" ({origin})"));
    }
    v
}

/// The default demo data set, generated into the temp folder on first use.
pub fn demo_dir() -> Result<std::path::PathBuf> {
    let config = svodka_demo::DemoConfig {
        deals: svodka_demo::DEFAULT_DEALS,
        seed: 42,
    };
    let dir = std::env::temp_dir().join(format!(
        "svodka-demo-{}-{}-v{}",
        config.deals,
        config.seed,
        env!("CARGO_PKG_VERSION")
    ));
    if !dir.join(svodka_csv::DATASET_FILE).exists() {
        eprintln!("generating the demo data set into {} …", dir.display());
        // Written beside, then renamed, so that an interrupted run leaves no half set.
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        let mut progress = Progress::new("demo");
        svodka_demo::generate(&config, &partial, &mut |d, t| progress.update(d, t))
            .with_context(|| format!("writing {}", partial.display()))?;
        progress.finish();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir)
            .with_context(|| format!("moving into {}", dir.display()))?;
    }
    Ok(dir)
}

/// A progress line on a terminal (rewritten in place), plain lines every 10% otherwise.
pub struct Progress {
    what: &'static str,
    started: Instant,
    terminal: bool,
    last_decile: u64,
}

impl Progress {
    pub fn new(what: &'static str) -> Self {
        Progress {
            what,
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
        if self.terminal {
            eprint!(
                "\r{}: {pct:>3}% ({done}/{total}), {elapsed:.0}s elapsed, ETA {eta:.0}s   ",
                self.what
            );
        } else if pct / 10 > self.last_decile {
            self.last_decile = pct / 10;
            eprintln!(
                "{}: {pct}% ({done}/{total}), {elapsed:.0}s elapsed",
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
