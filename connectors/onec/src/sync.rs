//! A 1C sync: counterparties read whole, sales re-read from a window before the last
//! sync's latest document (documents are back-dated and edited), merged with the stored
//! sales before the window, diffed on id and `DataVersion` for the log, and written as a
//! new snapshot with every other table carried over.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::{concat_batches, filter_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use svodka_config::{Clock, DatasetInfo};
use svodka_store::Store;

use crate::rows::{counterparties_batch, sales_batch};
use crate::{Error, Reader};

/// The sync state kept in each snapshot a 1C sync writes.
pub const STATE_FILE: &str = "onec.json";

/// What the next sync needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Names the source (mode and address): another source means a full sync.
    pub source: String,
    /// The latest sale's date (microseconds, UTC).
    pub latest: Option<i64>,
    /// Sale id → its version, as last read.
    pub versions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Names the source in the state (`odata http://server/base`).
    pub source: String,
    pub full: bool,
    pub overlap_days: u32,
    pub keep: usize,
    /// The data set's name and time zone when the store has none yet.
    pub name: String,
    pub timezone: String,
    /// "Now": the day the snapshot is dated.
    pub clock: Clock,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub snapshot: String,
    pub full: bool,
    pub counterparties: u64,
    /// Sales in the snapshot, and read by this run.
    pub sales: u64,
    pub read: u64,
    /// Of those read: new ones and changed ones (by version); stored ones in the window no
    /// longer there.
    pub new: u64,
    pub changed: u64,
    pub removed: u64,
    pub requests: u64,
    pub skipped: Vec<String>,
    pub seconds: f64,
    pub tables: Vec<(String, u64)>,
}

fn dates(b: &RecordBatch) -> &arrow::array::PrimitiveArray<TimestampMicrosecondType> {
    b.column_by_name("date")
        .expect("canonical onec_sales")
        .as_primitive::<TimestampMicrosecondType>()
}

fn ids(b: &RecordBatch) -> &arrow::array::StringArray {
    b.column_by_name("id")
        .expect("canonical")
        .as_string::<i32>()
}

fn map_err(table: &str) -> impl Fn(arrow::error::ArrowError) -> Error + '_ {
    move |e| Error::Map {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// One sync of `store` from `source`; `progress(list, rows, total)`.
pub fn sync(
    source: &mut dyn Reader,
    store: &Store,
    options: &SyncOptions,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<Outcome, Error> {
    let begun = Instant::now();
    let requests = source.requests();
    let tz = svodka_schema::values::zone(&options.timezone).map_err(Error::Settings)?;
    let current = store.current_if_any()?;
    let base = current
        .as_ref()
        .and_then(|s| s.file(STATE_FILE))
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
        .filter(|b| b.source == options.source && !options.full);
    let since = base
        .as_ref()
        .and_then(|b| b.latest)
        .map(|l| l - options.overlap_days as i64 * 86_400_000_000);

    let counterparties = source.counterparties(&mut |n, t| progress("counterparties", n, t))?;
    let mut read = source.sales(since, &mut |n, t| progress("sales", n, t))?;
    read.sort_by(|a, b| a.id.cmp(&b.id));
    read.dedup_by(|a, b| a.id == b.id);

    // The stored sales before the window stay; the window is what was read now.
    let stored: Vec<RecordBatch> = match (&current, since) {
        (Some(s), Some(_)) => s.read("onec_sales")?.1,
        _ => vec![],
    };
    let cut = since.unwrap_or(i64::MIN);
    let read_ids: HashSet<&str> = read.iter().map(|s| s.id.as_str()).collect();
    let mut removed = 0;
    let mut kept = Vec::new();
    for b in &stored {
        let (d, i) = (dates(b), ids(b));
        let mask: BooleanArray = (0..b.num_rows())
            .map(|r| {
                let before = d.value(r) < cut;
                if !before && !read_ids.contains(i.value(r)) {
                    removed += 1;
                }
                Some(before && !read_ids.contains(i.value(r)))
            })
            .collect();
        kept.push(filter_record_batch(b, &mask).map_err(map_err("onec_sales"))?);
    }
    let versions = base.as_ref().map(|b| &b.versions);
    let (mut new, mut changed) = (0, 0);
    for s in &read {
        match versions.and_then(|v| v.get(&s.id)) {
            None => new += 1,
            Some(v) if Some(v) != s.version.as_ref() => changed += 1,
            Some(_) => {}
        }
    }
    let fresh = sales_batch(&read)?;
    kept.push(fresh.clone());
    let all = concat_batches(&fresh.schema(), &kept).map_err(map_err("onec_sales"))?;
    let order = sort_to_indices(all.column_by_name("id").expect("canonical"), None, None)
        .map_err(map_err("onec_sales"))?;
    let sales = take_record_batch(&all, &order).map_err(map_err("onec_sales"))?;
    let counterparties_b = counterparties_batch(&counterparties)?;

    let mut state = State {
        source: options.source.clone(),
        latest: (0..sales.num_rows()).map(|r| dates(&sales).value(r)).max(),
        versions: base.map(|b| b.versions).unwrap_or_default(),
    };
    for s in &read {
        match &s.version {
            Some(v) => state.versions.insert(s.id.clone(), v.clone()),
            None => state.versions.remove(&s.id),
        };
    }
    let live: HashSet<&str> = (0..sales.num_rows())
        .map(|r| ids(&sales).value(r))
        .collect();
    state.versions.retain(|id, _| live.contains(id.as_str()));

    let mut writer = store.begin(&format!("1c sync {}", options.source))?;
    let mut tables = vec![
        (
            "onec_counterparties".to_string(),
            writer.table(
                "onec_counterparties",
                counterparties_b.schema(),
                &[counterparties_b],
            )?,
        ),
        (
            "onec_sales".to_string(),
            writer.table("onec_sales", sales.schema(), std::slice::from_ref(&sales))?,
        ),
    ];
    tables.extend(writer.carry_rest(current.as_ref())?);
    writer.file(
        STATE_FILE,
        serde_json::to_string(&state)
            .expect("plain struct serialises")
            .as_bytes(),
    )?;
    let day = options.clock.today(&tz);
    let info = svodka_store::synced_info(
        current.as_ref(),
        || DatasetInfo {
            name: options.name.clone(),
            timezone: options.timezone.clone(),
            portal_url: None,
            snapshot_date: day,
            origin: None,
            links: Default::default(),
        },
        day,
        &format!("1c sync {}", options.source),
        &Default::default(),
    );
    let snapshot = writer.commit(Some(&info), options.keep)?;
    Ok(Outcome {
        snapshot: snapshot.name,
        full: since.is_none(),
        counterparties: counterparties.len() as u64,
        sales: sales.num_rows() as u64,
        read: read.len() as u64,
        new,
        changed,
        removed,
        requests: source.requests() - requests,
        skipped: source.skipped(),
        seconds: begun.elapsed().as_secs_f64(),
        tables,
    })
}
