//! A sync's pages kept on disk as they arrive, so that a sync killed midway resumes where
//! it stopped instead of starting over: one JSON-lines file per list, and a state file
//! naming, per list, the id to continue after and how much of its file is whole. The
//! state is replaced by a rename after the lines it counts are synced to disk, so a kill
//! at any moment leaves a state that matches whole lines.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

const STATE: &str = "state.json";
/// A spool older than this is not resumed: what it holds is too stale to merge.
const MAX_AGE_SECS: i64 = 24 * 3600;

/// Where one list stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListState {
    /// The id to continue after (fast export) or items done (per-item lists).
    pub after: i64,
    /// Bytes of the list's file that hold whole lines.
    pub bytes: u64,
    /// Rows kept so far.
    pub rows: u64,
    /// The list is read to its end.
    pub done: bool,
}

/// The spool's state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpoolState {
    /// What this sync reads (its kind, base snapshot and options): a spool of another
    /// plan is not resumed.
    pub plan: String,
    /// The portal's clock when the sync began (unix seconds), once known.
    pub started: Option<f64>,
    /// Our clock when the spool was made (unix seconds), to expire it.
    pub created: i64,
    pub lists: BTreeMap<String, ListState>,
    /// HTTP requests spent on this spool, over every run.
    pub requests: u64,
}

/// A spool folder.
pub struct Spool {
    dir: PathBuf,
    pub state: SpoolState,
    /// Rows found in the spool when it was opened: what a resumed sync did not fetch again.
    pub resumed_rows: u64,
}

fn spool_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Spool {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Spool {
    /// Opens the spool in `dir` for `plan`: the one found there when it is of the same plan
    /// and fresh (each list's file cut back to its last whole line), else a new one.
    /// `lists` gives each list's starting point for a new spool.
    pub fn open(dir: &Path, plan: &str, lists: &[(String, i64)]) -> Result<Spool, Error> {
        let path = dir.join(STATE);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(state) = serde_json::from_str::<SpoolState>(&text)
            && state.plan == plan
            && now_secs() - state.created < MAX_AGE_SECS
        {
            let mut spool = Spool {
                dir: dir.to_path_buf(),
                resumed_rows: state.lists.values().map(|l| l.rows).sum(),
                state,
            };
            for (name, l) in &spool.state.lists {
                let file = spool.file(name);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&file)
                    .map_err(|e| spool_err(&file, e))?;
                f.set_len(l.bytes).map_err(|e| spool_err(&file, e))?;
            }
            for (name, after) in lists {
                spool
                    .state
                    .lists
                    .entry(name.clone())
                    .or_insert_with(|| ListState {
                        after: *after,
                        ..Default::default()
                    });
            }
            return Ok(spool);
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| spool_err(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| spool_err(dir, e))?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            state: SpoolState {
                plan: plan.to_string(),
                started: None,
                created: now_secs(),
                lists: lists
                    .iter()
                    .map(|(n, after)| {
                        (
                            n.clone(),
                            ListState {
                                after: *after,
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
                requests: 0,
            },
            resumed_rows: 0,
        };
        spool.save()?;
        Ok(spool)
    }

    fn file(&self, list: &str) -> PathBuf {
        self.dir.join(format!("{list}.jsonl"))
    }

    /// Writes the state file by a rename.
    pub fn save(&self) -> Result<(), Error> {
        let path = self.dir.join(STATE);
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(&self.state).expect("plain struct serialises");
        std::fs::write(&tmp, text).map_err(|e| spool_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| spool_err(&path, e))
    }

    /// Where `list` stands.
    pub fn list(&self, list: &str) -> ListState {
        self.state.lists.get(list).cloned().unwrap_or_default()
    }

    /// Keeps `rows` of `list`, then records that it continues after `after` (and is done).
    pub fn append(
        &mut self,
        list: &str,
        rows: &[Value],
        after: i64,
        done: bool,
    ) -> Result<(), Error> {
        let file = self.file(list);
        let mut bytes = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut bytes, r).map_err(|e| spool_err(&file, e))?;
            bytes.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&file)
            .map_err(|e| spool_err(&file, e))?;
        f.write_all(&bytes).map_err(|e| spool_err(&file, e))?;
        f.sync_data().map_err(|e| spool_err(&file, e))?;
        let l = self.state.lists.entry(list.to_string()).or_default();
        l.bytes += bytes.len() as u64;
        l.rows += rows.len() as u64;
        l.after = after;
        l.done = done;
        self.save()
    }

    /// The rows kept of `list`, in the order they came.
    pub fn rows(&self, list: &str) -> Result<Vec<Value>, Error> {
        let file = self.file(list);
        if !file.exists() {
            return Ok(vec![]);
        }
        let f = std::fs::File::open(&file).map_err(|e| spool_err(&file, e))?;
        let mut out = Vec::new();
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| spool_err(&file, e))?;
            out.push(
                serde_json::from_str(&line)
                    .map_err(|e| spool_err(&file, format!("line {}: {e}", n + 1)))?,
            );
        }
        Ok(out)
    }

    /// Removes the spool: its sync is committed.
    pub fn remove(self) -> Result<(), Error> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| spool_err(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_torn_append_is_cut_back_and_the_list_resumes() {
        let dir = std::env::temp_dir().join(format!("svodka-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lists = [("deals".to_string(), 0), ("history".to_string(), 500)];
        let mut s = Spool::open(&dir, "full", &lists).unwrap();
        assert_eq!(s.list("history").after, 500);
        s.append("deals", &[json!({"ID": "1"}), json!({"ID": "2"})], 2, false)
            .unwrap();
        // A kill while the next page was being written: half a line, state not updated.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("deals.jsonl"))
            .unwrap();
        f.write_all(b"{\"ID\": \"3\", \"TI").unwrap();
        drop(f);
        let mut s = Spool::open(&dir, "full", &lists).unwrap();
        assert_eq!(s.resumed_rows, 2);
        assert_eq!(s.list("deals").after, 2);
        s.append("deals", &[json!({"ID": "3"})], 3, true).unwrap();
        let ids: Vec<Value> = s
            .rows("deals")
            .unwrap()
            .into_iter()
            .map(|r| r["ID"].clone())
            .collect();
        assert_eq!(ids, [json!("1"), json!("2"), json!("3")]);
        assert!(s.list("deals").done);
        // Another plan starts afresh.
        let s = Spool::open(&dir, "incremental from 000003", &lists).unwrap();
        assert_eq!((s.resumed_rows, s.list("deals").rows), (0, 0));
        s.remove().unwrap();
        assert!(!dir.exists());
    }
}
