//! What the service keeps per client between requests: report results keyed by report,
//! canonical query and data version, and the pages and workbooks rendered from them.
//! Bounded by entries and by bytes, the least recently used leaving first. A refresh
//! bumps the data version and clears both.

use std::collections::VecDeque;

use arrow::record_batch::RecordBatch;
use svodka_report::ReportResult;

pub struct Cache<T> {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    entries: VecDeque<(String, T, usize)>,
}

/// The memory a result holds: its batches' buffers.
pub fn result_bytes(r: &ReportResult) -> usize {
    let previous = r
        .blocks
        .iter()
        .flat_map(|b| b.previous.iter().map(|p| &p.row));
    shown_batches(r)
        .chain(previous)
        .map(|b| b.get_array_memory_size())
        .sum()
}

/// The batches a result's tables show: every block's rows, totals and child rows.
pub fn shown_batches(r: &ReportResult) -> impl Iterator<Item = &RecordBatch> {
    r.blocks.iter().flat_map(|b| {
        b.batches
            .iter()
            .chain(b.totals.iter())
            .chain(b.children.iter().flat_map(|c| c.batches.iter()))
    })
}

impl<T: Clone> Cache<T> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Cache<T> {
        Cache {
            max_entries,
            max_bytes,
            bytes: 0,
            entries: VecDeque::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<T> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        // Recently used entries move to the back, so the least used leave first.
        let entry = self.entries.remove(i)?;
        let value = entry.1.clone();
        self.entries.push_back(entry);
        Some(value)
    }

    /// Keeps a value of `size` bytes, unless it alone is larger than the whole cache.
    pub fn put(&mut self, key: String, value: T, size: usize) {
        if let Some(i) = self.entries.iter().position(|(k, _, _)| *k == key)
            && let Some((_, _, old)) = self.entries.remove(i)
        {
            self.bytes -= old;
        }
        if size > self.max_bytes {
            return;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes)
        {
            if let Some((_, _, old)) = self.entries.pop_front() {
                self.bytes -= old;
            }
        }
        self.bytes += size;
        self.entries.push_back((key, value, size));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    use svodka_report::{BlockKind, BlockResult, RunParams};

    fn result(rows: usize) -> Arc<ReportResult> {
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1i64; rows])) as _)])
                .unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let params = RunParams::resolve(Some(day), None, None, day, chrono_tz::UTC).unwrap();
        let block = BlockResult::of_rows("b", "B", BlockKind::Table, vec![], vec![batch]);
        Arc::new(ReportResult::of_blocks("r", params.info(), vec![block]))
    }

    #[test]
    fn bounded_by_entries_and_bytes_least_recently_used_first() {
        let one = result_bytes(&result(1000));
        assert!(one >= 8000, "{one}");
        let mut c = Cache::new(3, one * 2 + one / 2);
        c.put("a".into(), result(1000), one);
        c.put("b".into(), result(1000), one);
        assert!(c.get("a").is_some()); // a is now the most recent
        c.put("c".into(), result(1000), one); // over the bytes: b leaves
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        assert_eq!(c.usage(), (2, 2 * one));
        // A result larger than the whole cache is not kept, and evicts nothing.
        c.put("huge".into(), result(10_000), result_bytes(&result(10_000)));
        assert!(c.get("huge").is_none());
        assert_eq!(c.usage().0, 2);
        c.clear();
        assert_eq!(c.usage(), (0, 0));
    }
}
