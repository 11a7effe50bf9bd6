//! Where the engine's tables come from. The engine does no I/O of its own: a caller hands
//! it a `TableSet` (CSV folder, snapshot store, plugin) that yields DataFusion tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::empty::EmptyTable;

use crate::error::ReportError;

/// Supplies canonical tables by name.
pub trait TableSet: Send + Sync {
    /// The table called `name`, ready to scan.
    fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>, ReportError>;

    /// A hint that these tables will be read: a source may load them ahead, in parallel.
    fn prefetch(&self, _names: &[String]) -> Result<(), ReportError> {
        Ok(())
    }

    /// The object stores its scans read (a bucket's client under `s3://bucket`), which a
    /// run's session must know; none for files and rows in memory.
    fn object_stores(&self) -> Vec<ObjectStoreAt> {
        Vec::new()
    }

    /// About how many rows the set holds in all its tables, when its source tells that
    /// cheaply (a store's snapshot lists them); a run plans differently for small data.
    fn rows(&self) -> Option<u64> {
        None
    }

    /// Whether the set is known to hold fewer than [`SMALL_DATA_ROWS`] rows.
    fn holds_small_data(&self) -> bool {
        self.rows().is_some_and(|rows| rows < SMALL_DATA_ROWS)
    }
}

/// Data of fewer rows than this, in all its tables, is small: ~165 000 deals in the demo's
/// proportions (20 000 deals are 476 000 rows, a million 24 M). A run over small data
/// computes a model one block reads beside the other models instead of inside that
/// block, and the CLI allocates from mimalloc; both cost memory that larger data has not
/// to spare.
pub const SMALL_DATA_ROWS: u64 = 4_000_000;

/// An object store and the address (`s3://bucket`) its tables' scans name.
pub type ObjectStoreAt = (url::Url, Arc<dyn datafusion::object_store::ObjectStore>);

/// A table read into memory: its schema and batches.
pub struct Loaded {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A table as a loader opens it: rows read into memory (a CSV file, a plugin's stream),
/// or a provider that reads only what a plan asks of it (a Parquet file of the store).
pub enum Opened {
    Loaded(Loaded),
    /// Already fits the canonical schema whole (checked by whoever built it).
    Scan(Arc<dyn TableProvider>),
}

type Loader = dyn Fn(&str) -> Result<Opened, String> + Send + Sync;

/// Tables opened on first use through a loader function and kept: rows in memory are
/// spread over `partitions` so that DataFusion scans them in parallel; scans stay scans.
pub struct LazyTables {
    loader: Box<Loader>,
    partitions: usize,
    cache: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
    object_stores: Vec<ObjectStoreAt>,
    rows: Option<u64>,
}

impl LazyTables {
    pub fn new(
        partitions: usize,
        loader: impl Fn(&str) -> Result<Opened, String> + Send + Sync + 'static,
    ) -> Self {
        LazyTables {
            loader: Box::new(loader),
            partitions: partitions.max(1),
            cache: Mutex::new(HashMap::new()),
            object_stores: Vec::new(),
            rows: None,
        }
    }

    /// These tables hold about `rows` rows in all (see [`TableSet::rows`]).
    pub fn with_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// These tables' scans read `store` under `at` (a store in a bucket).
    pub fn with_object_store(mut self, (at, store): ObjectStoreAt) -> Self {
        self.object_stores.push((at, store));
        self
    }

    /// Loads these tables now, in parallel (a report's tables are known before it runs;
    /// loading them one by one as plans ask would use one core). Errors surface here.
    fn load_all(&self, names: &[String]) -> Result<(), ReportError> {
        let missing: Vec<&String> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            names.iter().filter(|n| !cache.contains_key(*n)).collect()
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = missing
                .iter()
                .map(|name| (name, scope.spawn(move || self.table(name).map(|_| ()))))
                .collect();
            handles.into_iter().try_for_each(|(name, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(ReportError::Table {
                        table: name.to_string(),
                        message: "the loader panicked".into(),
                    })
                })
            })
        })
    }

    /// Empty tables of the canonical schema: for checking definitions without data.
    pub fn empty() -> Self {
        LazyTables::new(1, |name| match svodka_schema::table(name) {
            Some(t) => Ok(Opened::Loaded(Loaded {
                schema: t.schema(),
                batches: vec![],
            })),
            None => Err("not a canonical table".into()),
        })
    }
}

impl TableSet for LazyTables {
    fn prefetch(&self, names: &[String]) -> Result<(), ReportError> {
        self.load_all(names)
    }

    fn object_stores(&self) -> Vec<ObjectStoreAt> {
        self.object_stores.clone()
    }

    fn rows(&self) -> Option<u64> {
        self.rows
    }

    fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>, ReportError> {
        if let Some(t) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(t.clone());
        }
        let loaded = match (self.loader)(name).map_err(|message| ReportError::Table {
            table: name.to_string(),
            message,
        })? {
            Opened::Loaded(l) => l,
            Opened::Scan(provider) => {
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), provider.clone());
                return Ok(provider);
            }
        };
        // Whatever the connector, a canonical table must fit the canonical schema.
        svodka_schema::check_table(name, &loaded.schema, &loaded.batches).map_err(|e| {
            ReportError::Table {
                table: name.to_string(),
                message: e.to_string(),
            }
        })?;
        // A connector may leave out nullable columns (a plugin's table, say); the columns
        // derived from a table's rows are computed once here, not by every plan.
        let (schema, batches) = svodka_schema::complete(name, loaded.schema, loaded.batches)
            .and_then(|(schema, batches)| svodka_schema::derive(name, schema, batches))
            .map_err(|e| ReportError::Table {
                table: name.to_string(),
                message: e.to_string(),
            })?;
        // An absent or empty table is a plan that reads nothing, which also goes to a
        // cluster as it is (rows held in memory do not).
        if batches.iter().all(|b| b.num_rows() == 0) {
            let table: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(schema));
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), table.clone());
            return Ok(table);
        }
        let mut partitions = vec![Vec::new(); self.partitions];
        for (i, batch) in batches.into_iter().enumerate() {
            partitions[i % self.partitions].push(batch);
        }
        let table: Arc<dyn TableProvider> = Arc::new(
            MemTable::try_new(schema, partitions).map_err(|e| ReportError::Table {
                table: name.to_string(),
                message: e.to_string(),
            })?,
        );
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), table.clone());
        Ok(table)
    }
}
