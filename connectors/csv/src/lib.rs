//! The CSV connector: reads a folder laid out as `schema.md` describes (one `<table>.csv`
//! per canonical table) into Arrow record batches that fit the canonical schema exactly.
//!
//! Every value is parsed strictly; a bad one is an error naming file, line, column and the
//! value. Nothing is skipped silently.

mod parse;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use svodka_schema::{Column, ColumnType, Table};

pub use crate::parse::{parse_bool, parse_date, parse_float, parse_int, parse_timestamp};
use svodka_schema::ColumnBuilder;
pub use svodka_schema::values::parse_money;

/// Rows per record batch: large enough to amortise per-batch work, small enough to let
/// DataFusion spread a big table across partitions.
pub const BATCH_ROWS: usize = 64 * 1024;

/// What went wrong reading a CSV table.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not well-formed CSV (e.g. an unterminated quote, a short row).
    #[error("{file}:{line}: malformed CSV: {message}")]
    Malformed {
        file: PathBuf,
        line: u64,
        message: String,
    },
    /// A required column is absent from the header row.
    #[error("{file}:1: required column `{column}` of table `{table}` is missing from the header")]
    MissingColumn {
        file: PathBuf,
        table: String,
        column: String,
    },
    /// The header names a column twice.
    #[error("{file}:1: column `{column}` appears twice in the header")]
    DuplicateColumn { file: PathBuf, column: String },
    /// A value does not parse as its column's type, or a required value is empty.
    #[error("{file}:{line}: column `{column}`: {problem}: {value:?}")]
    BadValue {
        file: PathBuf,
        line: u64,
        column: String,
        value: String,
        problem: String,
    },
    /// A row repeats the key of an earlier row: it would be counted twice.
    #[error(
        "{file}:{line}: `{key}` {value} appears again (first at line {first}): each row of table `{table}` must appear once"
    )]
    DuplicateKey {
        file: PathBuf,
        line: u64,
        first: u64,
        table: String,
        key: String,
        value: String,
    },
    /// The table name is not canonical.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// Building the Arrow batch failed (should not happen once values parse).
    #[error("{file}: {source}")]
    Arrow {
        file: PathBuf,
        source: arrow::error::ArrowError,
    },
}

/// A canonical table read from CSV.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    /// The canonical columns in canonical order, then extra columns (as text).
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// False when the file was absent and the table is empty.
    pub present: bool,
}

/// The file that holds `table` in the CSV layout.
pub fn table_path(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.csv"))
}

/// Reads canonical table `table` from `dir`. An absent file yields an empty table with
/// `present = false`, so that optional inputs (plans, 1C) may be left out; callers
/// report that to the user.
pub fn read_table(dir: &Path, table: &str) -> Result<LoadedTable, CsvError> {
    let canonical =
        svodka_schema::table(table).ok_or_else(|| CsvError::UnknownTable(table.into()))?;
    let path = table_path(dir, table);
    // Only "nothing there" is an absent table: a place that cannot be looked at (no
    // permission) is an error, so unreadable data never passes for empty data.
    let io = |source| CsvError::Io {
        file: path.clone(),
        source,
    };
    if !path.try_exists().map_err(io)? {
        let schema = canonical.schema();
        return Ok(LoadedTable {
            batches: vec![],
            schema,
            rows: 0,
            present: false,
        });
    }
    let file = File::open(&path).map_err(io)?;
    read_from(file, &path, canonical)
}

/// Reads one table from any reader; `path` is used only in error messages.
pub fn read_from<R: Read>(
    input: R,
    path: &Path,
    canonical: &Table,
) -> Result<LoadedTable, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let malformed = |e: csv::Error| CsvError::Malformed {
        file: path.to_path_buf(),
        line: e.position().map(|p| p.line()).unwrap_or(1),
        message: match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("expected {expected_len} fields, found {len}"),
            csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".into(),
            _ => e.to_string(),
        },
    };
    let header = reader.byte_headers().map_err(malformed)?.clone();
    let header: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(CsvError::DuplicateColumn {
                file: path.to_path_buf(),
                column: name.clone(),
            });
        }
    }
    let plan = ColumnPlan::new(canonical, &header, path)?;
    let mut builders = plan.builders();
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut in_batch = 0usize;
    let mut record = csv::ByteRecord::new();
    let mut keys = Keys::new(canonical, &header);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(malformed(e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        for (slot, builder) in plan.slots.iter().zip(builders.iter_mut()) {
            let raw = match slot.index {
                Some(i) => record.get(i).unwrap_or_default(),
                None => b"",
            };
            parse::push(builder, raw).map_err(|problem| CsvError::BadValue {
                file: path.to_path_buf(),
                line,
                column: slot.name.clone(),
                value: shown_value(raw),
                problem,
            })?;
        }
        keys.check(&record, line)
            .map_err(|(first, value)| CsvError::DuplicateKey {
                file: path.to_path_buf(),
                line,
                first,
                table: canonical.name.to_string(),
                key: canonical.key.join(", "),
                value,
            })?;
        rows += 1;
        in_batch += 1;
        if in_batch == BATCH_ROWS {
            batches.push(plan.finish(&mut builders, path)?);
            in_batch = 0;
        }
    }
    if in_batch > 0 || batches.is_empty() {
        batches.push(plan.finish(&mut builders, path)?);
    }
    Ok(LoadedTable {
        schema: plan.schema.clone(),
        batches,
        rows,
        present: true,
    })
}

/// A bad value as an error shows it: whole when short, else its first 100 characters and
/// its length (a multi-megabyte cell must not become a multi-megabyte message).
fn shown_value(raw: &[u8]) -> String {
    const SHOWN: usize = 100;
    let text = String::from_utf8_lossy(raw);
    let chars = text.chars().count();
    if chars <= SHOWN {
        return text.into_owned();
    }
    let head: String = text.chars().take(SHOWN).collect();
    format!("{head}… ({chars} characters)")
}

/// The keys seen so far in a table with a key, with the line each was on.
enum Keys {
    /// The table has no key, or the file lacks a key column.
    None,
    /// One integer column (ids): compared as numbers, so `7` and `07` are one id.
    Int(usize, std::collections::HashMap<i64, u64>),
    /// Any other key: compared as the text of its columns.
    Text(Vec<usize>, std::collections::HashMap<Vec<u8>, u64>),
}

impl Keys {
    fn new(canonical: &Table, header: &[String]) -> Keys {
        let Some(at) = canonical
            .key
            .iter()
            .map(|k| header.iter().position(|h| h == k))
            .collect::<Option<Vec<usize>>>()
        else {
            return Keys::None;
        };
        let int = |k: &str| {
            canonical
                .column(k)
                .is_some_and(|c| matches!(c.ty, ColumnType::Id | ColumnType::Int))
        };
        match (at.as_slice(), canonical.key) {
            ([], _) => Keys::None,
            ([i], [k]) if int(k) => Keys::Int(*i, Default::default()),
            _ => Keys::Text(at, Default::default()),
        }
    }

    /// Notes the row's key; an earlier row's line and the key's text if it was seen.
    fn check(&mut self, record: &csv::ByteRecord, line: u64) -> Result<(), (u64, String)> {
        let text = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
        match self {
            Keys::None => Ok(()),
            Keys::Int(i, seen) => {
                let raw = record.get(*i).unwrap_or_default();
                // The value parsed already: only an empty one (a nullable key) is skipped.
                let Ok(id) = text(raw).parse::<i64>() else {
                    return Ok(());
                };
                match seen.insert(id, line) {
                    Some(first) => Err((first, id.to_string())),
                    None => Ok(()),
                }
            }
            Keys::Text(at, seen) => {
                let mut key = Vec::new();
                let mut shown = Vec::new();
                for &i in at.iter() {
                    let value = text(record.get(i).unwrap_or_default());
                    key.extend_from_slice(value.as_bytes());
                    key.push(0);
                    shown.push(value);
                }
                match seen.insert(key, line) {
                    Some(first) => Err((first, shown.join(", "))),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Where each output column comes from in the file.
struct Slot {
    name: String,
    /// Index in the CSV row; None for a nullable canonical column absent from the file.
    index: Option<usize>,
    /// None for an extra (non-canonical) column, kept as text.
    column: Option<Column>,
}

struct ColumnPlan {
    slots: Vec<Slot>,
    schema: SchemaRef,
}

impl ColumnPlan {
    fn new(canonical: &Table, header: &[String], path: &Path) -> Result<Self, CsvError> {
        let mut slots = Vec::new();
        for column in canonical.columns {
            let index = header.iter().position(|h| h == column.name);
            if index.is_none() && !column.nullable {
                return Err(CsvError::MissingColumn {
                    file: path.to_path_buf(),
                    table: canonical.name.into(),
                    column: column.name.into(),
                });
            }
            slots.push(Slot {
                name: column.name.into(),
                index,
                column: Some(*column),
            });
        }
        for (i, name) in header.iter().enumerate() {
            if canonical.column(name).is_none() {
                slots.push(Slot {
                    name: name.clone(),
                    index: Some(i),
                    column: None,
                });
            }
        }
        let fields: Vec<Field> = slots
            .iter()
            .map(|s| match &s.column {
                Some(c) => Field::new(&s.name, c.ty.arrow_type(), c.nullable),
                None => Field::new(&s.name, arrow::datatypes::DataType::Utf8, true),
            })
            .collect();
        Ok(ColumnPlan {
            slots,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    fn builders(&self) -> Vec<ColumnBuilder> {
        self.slots
            .iter()
            .map(|s| match &s.column {
                Some(c) => ColumnBuilder::new(c.ty, c.nullable),
                // A non-canonical column, kept as nullable text.
                None => ColumnBuilder::new(svodka_schema::ColumnType::Text, true),
            })
            .collect()
    }

    fn finish(&self, builders: &mut [ColumnBuilder], path: &Path) -> Result<RecordBatch, CsvError> {
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|source| CsvError::Arrow {
            file: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests;
