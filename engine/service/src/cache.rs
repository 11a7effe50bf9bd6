//! Report results kept per client, keyed by report, canonical query and data version; the
//! oldest entry leaves first. A refresh bumps the data version and clears the cache.

use std::collections::VecDeque;
use std::sync::Arc;

use svodka_report::ReportResult;

pub struct Cache {
    capacity: usize,
    entries: VecDeque<(String, Arc<ReportResult>)>,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            entries: VecDeque::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<Arc<ReportResult>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        // Recently used entries move to the back, so the least used leave first.
        let entry = self.entries.remove(i)?;
        let value = entry.1.clone();
        self.entries.push_back(entry);
        Some(value)
    }

    pub fn put(&mut self, key: String, value: Arc<ReportResult>) {
        self.entries.retain(|(k, _)| *k != key);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((key, value));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
