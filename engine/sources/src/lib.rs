//! Where a run's definitions and data come from, for the CLI and the service alike: the
//! shipped reports (embedded at build time) with overlay folders over them, data folders
//! (a snapshot store, or CSV with a plans workbook) as engine tables, and the demo data set.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use chrono_tz::Tz;
use svodka_config::{Clock, DATASET_FILE, DatasetInfo};
use svodka_report::catalog::{read_dir, read_file};
use svodka_report::{Catalog, DefinitionFile, LazyTables, Loaded, Opened};
use svodka_report::{ReportError, RunParams};

include!(concat!(env!("OUT_DIR"), "/builtin_reports.rs"));

/// The file in a data folder that holds plans and bonus tiers, when the client keeps them
/// in a workbook.
pub const PLANS_WORKBOOK: &str = "plans.xlsx";

/// What went wrong finding definitions or data.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// A definition file or folder is unreadable or invalid.
    #[error(transparent)]
    Report(#[from] svodka_report::ReportError),
    /// A data folder's `dataset.yaml` is unreadable or invalid.
    #[error(transparent)]
    Dataset(#[from] svodka_config::ConfigError),
    /// A CSV data file is unreadable or malformed.
    #[error(transparent)]
    Csv(#[from] svodka_csv::CsvError),
    /// The plans workbook is unreadable or malformed.
    #[error(transparent)]
    Plans(#[from] svodka_plans_xlsx::PlansError),
    /// The snapshot store could not be read or written.
    #[error(transparent)]
    Store(#[from] svodka_store::StoreError),
    /// The demo data set could not be written.
    #[error("writing the demo data set to {path}: {source}")]
    Demo {
        path: PathBuf,
        source: svodka_demo::DemoError,
    },
    /// A table read whole could not be completed to its canonical schema.
    #[error("table `{table}`: {message}")]
    Table { table: String, message: String },
    /// A data folder does not exist.
    #[error("{0}: not a folder (make one with `svodka demo --out {0}`)")]
    NotAFolder(PathBuf),
    /// A file-system step failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Shipped definitions, then each path (folder or file) in order; later ids replace earlier.
pub fn catalog(paths: &[PathBuf]) -> Result<Catalog, SourcesError> {
    Ok(Catalog::from_sources(definition_files(paths)?)?)
}

/// The files `catalog` reads.
pub fn definition_files(paths: &[PathBuf]) -> Result<Vec<DefinitionFile>, SourcesError> {
    let mut files: Vec<DefinitionFile> = BUILTIN_FILES
        .iter()
        .map(|(name, text)| DefinitionFile::new(*name, *text))
        .collect();
    for p in paths {
        if p.is_dir() {
            files.extend(read_dir(p)?);
        } else {
            files.push(read_file(p)?);
        }
    }
    Ok(files)
}

/// A CSV file this large gets a note (once a run) that a snapshot store is faster.
pub const BIG_CSV_BYTES: u64 = 100 << 20;

/// Bytes of CSV per row, about, in the canonical tables (the demo's: 46 MB for 476 000
/// rows); for telling a folder's size in rows without reading it.
const CSV_BYTES_PER_ROW: u64 = 100;

/// About how many rows the CSV files of `dir` hold, told from their sizes.
fn csv_rows(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let bytes: u64 = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes / CSV_BYTES_PER_ROW
}

/// True when a data location names a store in a bucket (`s3://…`) rather than a folder.
pub fn in_bucket(location: &Path) -> bool {
    svodka_store::bucket::is_address(location)
}

/// Where a client's data is: its `data.folder` as written when a bucket's address or an
/// absolute path, else relative to the client's folder.
pub fn client_data(client_dir: &Path, folder: &Path) -> PathBuf {
    if in_bucket(folder) {
        folder.to_path_buf()
    } else {
        client_dir.join(folder)
    }
}

/// A data folder as engine tables (each read on first use), with its description: a
/// snapshot store (its current snapshot; in a folder or a bucket) or a CSV folder (with
/// its plans workbook). `note` hears, once a table, of each canonical table a run reads
/// that is absent or empty (it reads as empty, so a report's figures would otherwise drop
/// without a word).
pub fn open_data(
    dir: &Path,
    note: fn(&str),
) -> Result<(LazyTables, Option<DatasetInfo>), SourcesError> {
    if !in_bucket(dir) && !dir.is_dir() {
        return Err(SourcesError::NotAFolder(dir.to_path_buf()));
    }
    let partitions = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    if svodka_store::Store::is_store(dir) {
        let snapshot = svodka_store::Store::new(dir).current()?;
        let rows = snapshot.manifest.tables.iter().map(|(_, rows)| rows).sum();
        let info = snapshot.info.clone();
        let bucket = snapshot.bucket().map(svodka_store::Bucket::registration);
        let store_dir = dir.to_path_buf();
        // Parquet is scanned: a plan reads only its columns and the row groups its
        // filters allow. A table that needs completing (a plugin's, missing nullable
        // columns) or is absent is read into memory instead.
        let tables = LazyTables::new(partitions, move |name| {
            if let Some(problem) = missing_from(&snapshot, &store_dir, name) {
                note(&problem);
            }
            if let Some(scan) = snapshot.scan(name).map_err(|e| e.to_string())? {
                return Ok(Opened::Scan(scan));
            }
            let (schema, batches) = snapshot.read(name).map_err(|e| e.to_string())?;
            Ok(Opened::Loaded(Loaded { schema, batches }))
        })
        .with_rows(rows);
        let tables = match bucket {
            Some(at) => tables.with_object_store(at),
            None => tables,
        };
        return Ok((tables, info));
    }
    let info = DatasetInfo::read(dir)?;
    let owned = dir.to_path_buf();
    let hinted = std::sync::atomic::AtomicBool::new(false);
    let tables = LazyTables::new(partitions, move |name| {
        let path = svodka_csv::table_path(&owned, name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size >= BIG_CSV_BYTES && !hinted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            note(&format!(
                "{} is {} MB: CSV is read whole on every run; a snapshot store reads only \
                 what a report needs (`svodka store import --data {} --store STORE`, then \
                 `--data STORE`)",
                path.display(),
                size >> 20,
                owned.display()
            ));
        }
        read_folder_table(&owned, name, note)
            .map(Opened::Loaded)
            .map_err(|e| e.to_string())
    })
    .with_rows(csv_rows(dir));
    Ok((tables, info))
}

/// Why a canonical table of a snapshot reads as empty, if it does: the snapshot has no
/// such table (its connector delivered none), or the table has no rows.
fn missing_from(snapshot: &svodka_store::Snapshot, store: &Path, name: &str) -> Option<String> {
    svodka_schema::table(name)?;
    let origin = &snapshot.manifest.origin;
    match snapshot.manifest.tables.iter().find(|(t, _)| t == name) {
        None => Some(format!(
            "{}: snapshot {} ({origin}) has no table `{name}`; it reads as empty",
            store.display(),
            snapshot.name
        )),
        Some((_, 0)) => Some(format!(
            "{}: table `{name}` of snapshot {} ({origin}) is empty",
            store.display(),
            snapshot.name
        )),
        Some(_) => None,
    }
}

/// One table of a data folder, whole, as delivered, with the folder's description: from a
/// store's current snapshot, or a CSV folder (plans and bonus tiers from its workbook when
/// it has one). For commands that read a table outside a report (the plans template).
pub fn read_data_table(
    dir: &Path,
    name: &str,
    note: fn(&str),
) -> Result<(Loaded, Option<DatasetInfo>), SourcesError> {
    if !in_bucket(dir) && !dir.is_dir() {
        return Err(SourcesError::NotAFolder(dir.to_path_buf()));
    }
    if svodka_store::Store::is_store(dir) {
        let snapshot = svodka_store::Store::new(dir).current()?;
        if let Some(problem) = missing_from(&snapshot, dir, name) {
            note(&problem);
        }
        let (schema, batches) = snapshot.read(name)?;
        return Ok((completed(name, schema, batches)?, snapshot.info));
    }
    let info = DatasetInfo::read(dir)?;
    let t = read_folder_table(dir, name, note)?;
    Ok((completed(name, t.schema, t.batches)?, info))
}

/// A canonical table with the nullable columns its connector left out added as nulls.
fn completed(
    name: &str,
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<arrow::record_batch::RecordBatch>,
) -> Result<Loaded, SourcesError> {
    let (schema, batches) =
        svodka_schema::complete(name, schema, batches).map_err(|e| SourcesError::Table {
            table: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(Loaded { schema, batches })
}

/// The canonical tables a CSV folder has no file for (read as empty); none for a store.
pub fn absent_tables(dir: &Path) -> Vec<String> {
    if svodka_store::Store::is_store(dir) {
        return Vec::new();
    }
    let workbook = dir.join(PLANS_WORKBOOK).exists();
    svodka_schema::TABLES
        .iter()
        .filter(|t| !(workbook && matches!(t.name, "plans" | "bonus_tiers")))
        .filter(|t| {
            // A place that cannot be looked at is not "absent": its read fails loudly.
            matches!(svodka_csv::table_path(dir, t.name).try_exists(), Ok(false))
        })
        .map(|t| t.name.to_string())
        .collect()
}

/// One table of a CSV folder: from its plans workbook for plans and bonus tiers when the
/// folder has one, else from its CSV file (absent: empty, and `note` hears of it).
pub fn read_folder_table(dir: &Path, name: &str, note: fn(&str)) -> Result<Loaded, SourcesError> {
    let workbook = dir.join(PLANS_WORKBOOK);
    if matches!(name, "plans" | "bonus_tiers") && workbook.exists() {
        let (plans, tiers) = svodka_plans_xlsx::read(&workbook)?;
        let batch = if name == "plans" { plans } else { tiers };
        return Ok(Loaded {
            schema: batch.schema(),
            batches: vec![batch],
        });
    }
    let t = svodka_csv::read_table(dir, name)?;
    let path = svodka_csv::table_path(dir, name);
    if !t.present {
        note(&format!(
            "{} is absent; table `{name}` is empty",
            path.display()
        ));
    } else if t.batches.iter().all(|b| b.num_rows() == 0) {
        note(&format!(
            "{} has no rows; table `{name}` is empty",
            path.display()
        ));
    }
    Ok(Loaded {
        schema: t.schema,
        batches: t.batches,
    })
}

/// Writes every canonical table of a CSV folder into a new snapshot of `store`, keeping
/// the newest `keep` snapshots. `progress` hears each table and its rows.
pub fn import_folder(
    folder: &Path,
    store: &Path,
    keep: usize,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<svodka_store::Snapshot, SourcesError> {
    if !folder.is_dir() {
        return Err(SourcesError::NotAFolder(folder.to_path_buf()));
    }
    let info = DatasetInfo::read(folder)?;
    let mut writer = svodka_store::Store::new(store).begin("csv import")?;
    for t in svodka_schema::TABLES {
        let loaded = read_folder_table(folder, t.name, |_| {})?;
        let rows = writer.table(t.name, loaded.schema, &loaded.batches)?;
        progress(t.name, rows);
    }
    Ok(writer.commit(info.as_ref(), keep)?)
}

/// A run's period, zone and portal over a data set — the rules every caller shares (the
/// CLI, `svodka test`, the service): the zone given (`--tz`, a client's `timezone`), else
/// the data set's, else the default; "today" the data set's snapshot day, else the
/// clock's in that zone; `from`, `to` and `as_of` by `RunParams::resolve`; the portal
/// given, else the data set's; the pages of CRM entities from the data set's `links`.
pub fn run_params(
    (from, to, as_of): (Option<NaiveDate>, Option<NaiveDate>, Option<NaiveDate>),
    zone: Option<Tz>,
    portal_url: Option<String>,
    info: Option<&DatasetInfo>,
    clock: Clock,
) -> Result<RunParams, ReportError> {
    let zone = match (zone, info) {
        (Some(zone), _) => zone,
        (None, Some(info)) => svodka_schema::values::zone(&info.timezone)
            .map_err(|e| ReportError::bad_input("timezone", format!("{DATASET_FILE}: {e}")))?,
        (None, None) => svodka_schema::values::default_zone(),
    };
    let today = clock.data_today(info, &zone);
    let mut params = RunParams::resolve(from, to, as_of, today, zone)?;
    params.portal_url = portal_url.or_else(|| info.and_then(|i| i.portal_url.clone()));
    if let Some(info) = info {
        params.set_links(&info.links);
    }
    Ok(params)
}

/// Which data a report was computed from, as shown on its page and workbook.
pub fn data_version(info: &DatasetInfo) -> String {
    let mut v = format!("{}, snapshot {}", info.name, info.snapshot_date);
    if let Some(origin) = &info.origin {
        v.push_str(&format!(" ({origin})"));
    }
    v
}

/// The default demo data set, generated into the temp folder on first use; `progress`
/// hears (done, total) while it is written.
pub fn demo_dir(progress: &mut dyn FnMut(u64, u64)) -> Result<PathBuf, SourcesError> {
    let config = svodka_demo::DemoConfig {
        deals: svodka_demo::DEFAULT_DEALS,
        seed: 42,
    };
    let dir = std::env::temp_dir().join(format!(
        "svodka-demo-{}-{}-v{}-{}",
        config.deals,
        config.seed,
        env!("CARGO_PKG_VERSION"),
        svodka_demo::LAYOUT
    ));
    if !dir.join(svodka_config::DATASET_FILE).exists() {
        // Written beside, then renamed, so that an interrupted run leaves no half set.
        let partial = dir.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        svodka_demo::generate(&config, &partial, progress).map_err(|source| {
            SourcesError::Demo {
                path: partial.clone(),
                source,
            }
        })?;
        if !dir.join(svodka_config::DATASET_FILE).exists() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&partial, &dir).map_err(|source| SourcesError::Io {
                what: "moving the demo data into",
                path: dir.clone(),
                source,
            })?;
        } else {
            // Another process finished first.
            let _ = std::fs::remove_dir_all(&partial);
        }
    }
    Ok(dir)
}
