//! The snapshot store: a client's canonical tables as Parquet files in a folder, one
//! snapshot per sync. A snapshot is written beside the current one and switched to by
//! renames only, so a sync that dies midway leaves the previous snapshot whole and
//! readable; readers never see a half-written table.
//!
//! Layout: `CURRENT` (the current snapshot's name), `snapshots/<000042>/<table>.parquet`,
//! `manifest.json` and `dataset.yaml` in each snapshot; `<name>.partial` while writing.
//! The same layout in a bucket (`s3://bucket/prefix`, `bucket.rs`) is read alike and
//! written by pushing a folder's current snapshot.

pub mod bucket;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use svodka_config::DatasetInfo;

pub use bucket::Bucket;

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The file naming the current snapshot.
pub const CURRENT: &str = "CURRENT";
const SNAPSHOTS: &str = "snapshots";
const MANIFEST: &str = "manifest.json";

/// What went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system step failed.
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// A Parquet file could not be written or read.
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    /// A table does not fit the canonical schema: refused before it reaches the store.
    #[error("table `{table}`: {message}")]
    Schema { table: String, message: String },
    /// The store's bookkeeping (CURRENT, a manifest) is unreadable.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A bucket could not be reached, read or written (or its address is not one).
    #[error("{url}: {message}")]
    Bucket { url: String, message: String },
    /// The folder holds no snapshot yet.
    #[error(
        "{0}: no snapshot yet (write one with `svodka store import` or a sync; into a bucket, \
         with `svodka store push`)"
    )]
    Empty(PathBuf),
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Table → rows.
    pub tables: Vec<(String, u64)>,
    /// Where the data came from (`csv import`, `bitrix24 sync`…).
    pub origin: String,
}

/// One complete snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    /// Its folder; in a bucket, its address (`s3://bucket/prefix/snapshots/000042`).
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub info: Option<DatasetInfo>,
    /// The bucket it is in, if it is in one.
    bucket: Option<Bucket>,
}

impl Snapshot {
    /// The Parquet file of a table (in a bucket: its address).
    pub fn table_path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.parquet"))
    }

    /// The bucket holding the snapshot, if a bucket does.
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    /// A small file of the snapshot's own (a connector's sync state), if it has one.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        match &self.bucket {
            Some(b) => b.get(&self.dir.join(name)).ok().flatten().map(Vec::from),
            None => std::fs::read(self.dir.join(name)).ok(),
        }
    }

    /// Whether the snapshot has a table's file; an unreadable place is an error, never
    /// an absent (empty) table.
    fn has_file(&self, path: &Path) -> Result<bool, StoreError> {
        match &self.bucket {
            Some(b) => b.exists(path),
            None => path.try_exists().map_err(io(path, "looking at")),
        }
    }

    /// A table as a Parquet scan (only the columns and row groups a plan needs are read),
    /// when its file fits the canonical schema whole (`svodka_schema::fits_whole`) with its
    /// derived column (`svodka_schema::has_derived`);
    /// `None` when the snapshot lacks the table or it must be checked and completed in
    /// memory (`read`).
    pub fn scan(
        &self,
        table: &str,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>, StoreError> {
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::listing::{
            ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
        };
        let path = self.table_path(table);
        if !self.has_file(&path)? {
            return Ok(None);
        }
        let parquet = |message: String| StoreError::Parquet {
            path: path.clone(),
            message,
        };
        let schema = match &self.bucket {
            Some(b) => b.parquet_schema(&path)?,
            None => {
                let file = std::fs::File::open(&path).map_err(io(&path, "opening"))?;
                ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| parquet(e.to_string()))?
                    .schema()
                    .clone()
            }
        };
        // Scanned only as the engine reads it: whole, and with its derived column (a
        // snapshot written before there was one is read and derived in memory).
        if !svodka_schema::fits_whole(table, &schema) || !svodka_schema::has_derived(table, &schema)
        {
            return Ok(None);
        }
        let url =
            ListingTableUrl::parse(path.to_string_lossy()).map_err(|e| parquet(e.to_string()))?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::new(scan_schema(table, &schema)));
        let table = ListingTable::try_new(config).map_err(|e| parquet(e.to_string()))?;
        Ok(Some(Arc::new(table)))
    }

    /// A table's schema and batches as delivered (without the columns derived at writing);
    /// a table the snapshot lacks is empty with the canonical schema.
    pub fn read(&self, table: &str) -> Result<(SchemaRef, Vec<RecordBatch>), StoreError> {
        let path = self.table_path(table);
        if !self.has_file(&path)? {
            return match svodka_schema::table(table) {
                Some(t) => Ok((t.schema(), vec![])),
                None => Err(StoreError::Schema {
                    table: table.to_string(),
                    message: format!("not in snapshot {}", self.name),
                }),
            };
        }
        let parquet = |e: datafusion::parquet::errors::ParquetError| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        };
        let reader = match &self.bucket {
            Some(b) => {
                let bytes = b.get(&path)?.ok_or_else(|| StoreError::Bucket {
                    url: path.display().to_string(),
                    message: "gone while being read".into(),
                })?;
                ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|r| r.with_batch_size(64 * 1024).build())
            }
            None => {
                let file = std::fs::File::open(&path).map_err(io(&path, "opening"))?;
                ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|r| r.with_batch_size(64 * 1024).build())
            }
        }
        .map_err(parquet)?;
        let schema = reader.schema();
        let delivered = svodka_schema::derived::delivered_columns(table, &schema);
        let batches = reader
            .map(|b| b.and_then(|b| b.project(&delivered)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok((
            Arc::new(
                schema
                    .project(&delivered)
                    .map_err(|e| StoreError::Parquet {
                        path: path.clone(),
                        message: e.to_string(),
                    })?,
            ),
            batches,
        ))
    }
}

/// The description of a snapshot a sync writes: the current one's (or `fresh` for a new
/// store), dated the day of the sync and naming where it came from; `links`, the pages of
/// the connector's CRM, when the description names none (links written by hand stay).
pub fn synced_info(
    current: Option<&Snapshot>,
    fresh: impl FnOnce() -> DatasetInfo,
    day: chrono::NaiveDate,
    origin: &str,
    links: &std::collections::BTreeMap<String, String>,
) -> DatasetInfo {
    let mut info = current.and_then(|s| s.info.clone()).unwrap_or_else(fresh);
    info.snapshot_date = day;
    info.origin = Some(origin.to_string());
    if info.links.is_empty() {
        info.links = links.clone();
    }
    info
}

/// A store: a folder, or a place in a bucket (`s3://bucket/prefix`, read and pushed to).
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// True when `dir` is a store (it has a `CURRENT`); a bucket's address is taken for
    /// one (reading it says if it is not).
    pub fn is_store(dir: &Path) -> bool {
        bucket::is_address(dir) || dir.join(CURRENT).is_file()
    }

    /// The current snapshot.
    pub fn current(&self) -> Result<Snapshot, StoreError> {
        let bucket = Bucket::of(&self.dir).transpose()?;
        let current = self.dir.join(CURRENT);
        let text = match &bucket {
            Some(b) => match b.get(&current)? {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => return Err(StoreError::Empty(self.dir.clone())),
            },
            None => {
                if !current.exists() {
                    return Err(StoreError::Empty(self.dir.clone()));
                }
                std::fs::read_to_string(&current).map_err(io(&current, "reading"))?
            }
        };
        let name = text.trim().to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_digit()) {
            return Err(StoreError::Corrupt {
                path: current,
                message: format!("expected a snapshot number, found {name:?}"),
            });
        }
        self.snapshot(&name, bucket)
    }

    /// The current snapshot, or `None` for a store with none yet (a first sync).
    pub fn current_if_any(&self) -> Result<Option<Snapshot>, StoreError> {
        match self.current() {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::Empty(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn snapshot(&self, name: &str, bucket: Option<Bucket>) -> Result<Snapshot, StoreError> {
        let dir = self.dir.join(SNAPSHOTS).join(name);
        let path = dir.join(MANIFEST);
        let dataset = dir.join(svodka_config::DATASET_FILE);
        let corrupt = |path: &Path, message: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let (text, info) = match &bucket {
            Some(b) => {
                let manifest = b.get(&path)?.ok_or_else(|| StoreError::Bucket {
                    url: path.display().to_string(),
                    message: "not found: the snapshot CURRENT names is missing".into(),
                })?;
                let info = match b.get(&dataset)? {
                    Some(bytes) => Some(
                        DatasetInfo::parse(&String::from_utf8_lossy(&bytes), &dataset)
                            .map_err(|e| corrupt(&dataset, e.to_string()))?,
                    ),
                    None => None,
                };
                (String::from_utf8_lossy(&manifest).into_owned(), info)
            }
            None => (
                std::fs::read_to_string(&path).map_err(io(&path, "reading"))?,
                DatasetInfo::read(&dir).map_err(|e| corrupt(&dataset, e.to_string()))?,
            ),
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| corrupt(&path, e.to_string()))?;
        Ok(Snapshot {
            name: name.to_string(),
            dir,
            manifest,
            info,
            bucket,
        })
    }

    /// The complete snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<String>, StoreError> {
        self.snapshots_in(Bucket::of(&self.dir).transpose()?.as_ref())
    }

    /// The complete snapshots, oldest first, listed through `bucket` when the store is
    /// in one (opened by the caller).
    fn snapshots_in(&self, bucket: Option<&Bucket>) -> Result<Vec<String>, StoreError> {
        let root = self.dir.join(SNAPSHOTS);
        let mut names: Vec<String> = match bucket {
            Some(b) => b.folders(&root)?,
            None => {
                if !root.exists() {
                    return Ok(vec![]);
                }
                std::fs::read_dir(&root)
                    .map_err(io(&root, "listing"))?
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            }
        };
        names.retain(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        names.sort();
        Ok(names)
    }

    /// Starts a new snapshot beside the current one. Leftovers of a sync that died are
    /// removed first. A store in a bucket is written by `push` only.
    pub fn begin(&self, origin: &str) -> Result<SnapshotWriter, StoreError> {
        if bucket::is_address(&self.dir) {
            return Err(StoreError::Bucket {
                url: self.dir.display().to_string(),
                message: "a snapshot is written into a store folder, then copied to a bucket \
                          with `svodka store push --store FOLDER --to s3://BUCKET/PREFIX`"
                    .into(),
            });
        }
        let made_store = !self.dir.exists();
        let root = self.dir.join(SNAPSHOTS);
        std::fs::create_dir_all(&root).map_err(io(&root, "creating"))?;
        for entry in std::fs::read_dir(&root)
            .map_err(io(&root, "listing"))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let name = next_name(&self.snapshots()?);
        let dir = root.join(format!("{name}.partial"));
        std::fs::create_dir_all(&dir).map_err(io(&dir, "creating"))?;
        Ok(SnapshotWriter {
            store: self.clone(),
            name,
            dir,
            manifest: Manifest {
                tables: vec![],
                origin: origin.to_string(),
            },
            made_store,
        })
    }

    /// Copies this store folder's current snapshot into the store in a bucket at `to`, as
    /// its next snapshot, and makes it current there once every file is in: a run reading
    /// the bucket meanwhile sees the previous snapshot whole. Keeps the newest `keep`
    /// snapshots there. `progress` hears each file and its bytes.
    pub fn push(
        &self,
        to: &Path,
        keep: usize,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<Snapshot, StoreError> {
        let target = Store::new(to);
        let bucket = match Bucket::of(to) {
            Some(b) => b?,
            None => {
                return Err(StoreError::Bucket {
                    url: to.display().to_string(),
                    message: "not a bucket address (write s3://BUCKET/PREFIX)".into(),
                });
            }
        };
        if bucket::is_address(&self.dir) {
            return Err(StoreError::Bucket {
                url: self.dir.display().to_string(),
                message: "pushed from a store folder, not from a bucket".into(),
            });
        }
        let from = self.current()?;
        let name = next_name(&target.snapshots_in(Some(&bucket))?);
        let dir = target.dir.join(SNAPSHOTS).join(&name);
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&from.dir)
            .map_err(io(&from.dir, "listing"))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(|n| (n.to_string(), e.path())))
            .collect();
        // The manifest last: a snapshot folder without one is not complete.
        files.sort_by_key(|(n, _)| (n == MANIFEST, n.clone()));
        for (file, path) in &files {
            let bytes = match bucket.upload(path, &dir.join(file)) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let _ = bucket.delete_all(&dir);
                    return Err(e);
                }
            };
            progress(file, bytes);
        }
        // CURRENT is one object, replaced whole: readers see the old name or the new.
        bucket.put(&target.dir.join(CURRENT), format!("{name}\n").into_bytes())?;
        for old in beyond_keep(target.snapshots_in(Some(&bucket))?, keep) {
            let _ = bucket.delete_all(&target.dir.join(SNAPSHOTS).join(old));
        }
        target.snapshot(&name, Some(bucket))
    }
}

/// The name the snapshot after `names` (oldest first) gets.
fn next_name(names: &[String]) -> String {
    let next = names
        .last()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    format!("{next:06}")
}

/// The snapshots of `names` (oldest first) older than the newest `keep` (one at least).
fn beyond_keep(mut names: Vec<String>, keep: usize) -> Vec<String> {
    names.truncate(names.len().saturating_sub(keep.max(1)));
    names
}

/// A snapshot being written: tables go into a `.partial` folder; `commit` makes it the
/// current snapshot. Dropped without a commit, it leaves the current snapshot untouched
/// and its partial folder is removed (with the store folder, when the writer made it and
/// nothing else is there: a failed first sync leaves no empty store behind).
pub struct SnapshotWriter {
    store: Store,
    name: String,
    dir: PathBuf,
    manifest: Manifest,
    /// The store folder did not exist before this writer.
    made_store: bool,
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // A committed snapshot was renamed away: only an uncommitted one is still here.
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
            if self.made_store {
                // `remove_dir` refuses a folder that is not empty: only what we made goes.
                let _ = std::fs::remove_dir(self.store.dir.join(SNAPSHOTS));
                let _ = std::fs::remove_dir(&self.store.dir);
            }
        }
    }
}

impl SnapshotWriter {
    /// Writes one table. Canonical tables are checked against their schema first.
    pub fn table(
        &mut self,
        name: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64, StoreError> {
        svodka_schema::check_table(name, &schema, batches)
            .and_then(|()| svodka_schema::check_keys(name, batches))
            .map_err(|e| StoreError::Schema {
                table: name.to_string(),
                message: e.to_string(),
            })?;
        // Stored with the columns derived from its rows (and sorted by them),
        // so that runs scan them instead of computing them.
        let (schema, batches) =
            svodka_schema::derive(name, schema, batches.to_vec()).map_err(|e| {
                StoreError::Schema {
                    table: name.to_string(),
                    message: e.to_string(),
                }
            })?;
        let path = self.dir.join(format!("{name}.parquet"));
        let parquet = |e: datafusion::parquet::errors::ParquetError| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        };
        let file = std::fs::File::create(&path).map_err(io(&path, "creating"))?;
        // Row groups of 128 Ki rows: a scan splits a file by row groups, so a big table
        // is read by every core (one group of a million rows would be read by one), and
        // each group's statistics let a filter skip it. LZ4, not zstd: files ~20 % bigger,
        // but pages decode several times faster, and a report decodes every page it reads
        // on every run (1 M deals: 5–26 % less CPU time in the reports measured).
        // Snapshots written with zstd before are read as they are: the codec is recorded
        // per column chunk.
        let props = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(parquet)?;
        let mut rows = 0u64;
        for b in &batches {
            writer.write(b).map_err(parquet)?;
            rows += b.num_rows() as u64;
        }
        let file = writer.into_inner().map_err(parquet)?;
        file.sync_all().map_err(io(&path, "syncing"))?;
        self.manifest.tables.push((name.to_string(), rows));
        Ok(rows)
    }

    /// Takes a table unchanged from another snapshot: a hard link where the file system
    /// allows (snapshot files are never rewritten), else a copy.
    pub fn carry(&mut self, from: &Snapshot, table: &str) -> Result<u64, StoreError> {
        let source = from.table_path(table);
        let path = self.dir.join(format!("{table}.parquet"));
        if std::fs::hard_link(&source, &path).is_err() {
            std::fs::copy(&source, &path).map_err(io(&path, "copying into"))?;
        }
        let rows = from
            .manifest
            .tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, rows)| *rows)
            .unwrap_or(0);
        self.manifest.tables.push((table.to_string(), rows));
        Ok(rows)
    }

    /// Carries every table of `from` this writer has not written (a connector writes the
    /// tables it owns and keeps the rest as they were). Returns them with their rows.
    pub fn carry_rest(
        &mut self,
        from: Option<&Snapshot>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let Some(from) = from else {
            return Ok(vec![]);
        };
        let mut carried = Vec::new();
        for (name, _) in &from.manifest.tables {
            if !self.manifest.tables.iter().any(|(t, _)| t == name) {
                let rows = self.carry(from, name)?;
                carried.push((name.clone(), rows));
            }
        }
        Ok(carried)
    }

    /// Writes a small file of the snapshot's own (a connector's sync state).
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path, "writing"))
    }

    /// Finishes the snapshot and makes it current; keeps the newest `keep` snapshots.
    pub fn commit(self, info: Option<&DatasetInfo>, keep: usize) -> Result<Snapshot, StoreError> {
        if let Some(info) = info {
            info.write(&self.dir).map_err(|e| StoreError::Corrupt {
                path: self.dir.join(svodka_config::DATASET_FILE),
                message: e.to_string(),
            })?;
        }
        let manifest = self.dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&self.manifest).expect("plain struct serialises");
        std::fs::write(&manifest, text).map_err(io(&manifest, "writing"))?;
        let done = self.store.dir.join(SNAPSHOTS).join(&self.name);
        std::fs::rename(&self.dir, &done).map_err(io(&done, "renaming into"))?;
        // CURRENT switches by a rename: readers see the old name or the new, never half.
        let current = self.store.dir.join(CURRENT);
        let tmp = self.store.dir.join("CURRENT.tmp");
        std::fs::write(&tmp, format!("{}\n", self.name)).map_err(io(&tmp, "writing"))?;
        std::fs::rename(&tmp, &current).map_err(io(&current, "renaming into"))?;
        for old in beyond_keep(self.store.snapshots()?, keep) {
            let _ = std::fs::remove_dir_all(self.store.dir.join(SNAPSHOTS).join(old));
        }
        self.store.snapshot(&self.name, None)
    }
}

/// The schema a snapshot's table is scanned with: its text as views into the Parquet pages
/// it is decoded from, which joins, groups and filters move and compare without copying
/// the text; its free text (`svodka_schema::Table::free_text`) as strings of their own, as
/// a view of it would keep its whole page in memory for as long as its row is kept.
fn scan_schema(table: &str, file: &arrow::datatypes::Schema) -> arrow::datatypes::Schema {
    use arrow::datatypes::DataType;
    let free_text = svodka_schema::table(table).map_or(&[][..], |t| t.free_text);
    let fields: Vec<_> = file
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Utf8 && !free_text.contains(&f.name().as_str()) {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View))
            } else {
                f.clone()
            }
        })
        .collect();
    arrow::datatypes::Schema::new_with_metadata(fields, file.metadata().clone())
}

#[cfg(test)]
mod tests;
