//! Exported files as a source: a CSV (`;` or `,`, UTF-8) or XLSX file per table, with the
//! columns named in the settings; numbers and dates as people type them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader as _};
use serde_json::Value;

use crate::config::{FileTable, OnecConfig};
use crate::rows::{Counterparty, Sale};
use crate::value;
use crate::{Error, Reader};

pub struct Files {
    counterparties: FileTable,
    sales: FileTable,
    base: PathBuf,
    tz: chrono_tz::Tz,
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// A line of a file (its number) as header → text.
type Line = (usize, HashMap<String, String>);

/// The rows of a file as header → text, with the line (or sheet row) of each.
fn read(path: &Path, sheet: Option<&str>) -> Result<Vec<Line>, Error> {
    let is_xlsx = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    if is_xlsx {
        let mut book = calamine::open_workbook_auto(path).map_err(|e| file_err(path, e))?;
        let name = match sheet {
            Some(s) => s.to_string(),
            None => book
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| file_err(path, "no sheet"))?,
        };
        let range = book
            .worksheet_range(&name)
            .map_err(|e| file_err(path, format!("sheet {name}: {e}")))?;
        let mut rows = range.rows();
        let header: Vec<String> = rows
            .next()
            .map(|r| r.iter().map(|c| c.to_string().trim().to_string()).collect())
            .unwrap_or_default();
        let cell = |c: &Data| match c {
            Data::DateTime(d) => d
                .as_datetime()
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_default(),
            Data::Float(f) => f.to_string(),
            Data::Int(i) => i.to_string(),
            other => other.to_string(),
        };
        return Ok(rows
            .enumerate()
            .map(|(i, r)| {
                (
                    i + 2,
                    header.iter().cloned().zip(r.iter().map(cell)).collect(),
                )
            })
            .collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or_default();
    let delimiter = if first.matches(';').count() > first.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| file_err(path, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| file_err(path, e))?;
        out.push((
            i + 2,
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(|c| c.trim().to_string()))
                .collect(),
        ));
    }
    Ok(out)
}

impl Files {
    /// `base` is the folder relative paths start from (the settings file's).
    pub fn new(config: &OnecConfig, base: &Path) -> Result<Files, Error> {
        let files = config
            .files
            .clone()
            .ok_or_else(|| Error::Settings("no `files:` section".into()))?;
        Ok(Files {
            counterparties: files.counterparties,
            sales: files.sales,
            base: base.to_path_buf(),
            tz: crate::config::zone(config)?,
        })
    }

    /// The rows of a table with its mapped columns; a header the file lacks is named.
    fn table(&self, t: &FileTable, required: &[&str]) -> Result<(PathBuf, Vec<Line>), Error> {
        let path = self.base.join(&t.path);
        for col in required {
            if !t.columns.contains_key(*col) {
                return Err(Error::Settings(format!(
                    "{}: `columns` needs `{col}`",
                    t.path.display()
                )));
            }
        }
        let rows = read(&path, t.sheet.as_deref())?;
        if let Some((_, first)) = rows.first() {
            for (col, header) in &t.columns {
                if !first.contains_key(header) {
                    let mut have: Vec<&String> = first.keys().collect();
                    have.sort();
                    return Err(file_err(
                        &path,
                        format!(
                            "no column `{header}` (for {col}); the file has: {}",
                            have.iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let mapped = rows
            .into_iter()
            .map(|(line, r)| {
                let m = t
                    .columns
                    .iter()
                    .filter_map(|(col, header)| r.get(header).map(|v| (col.clone(), v.clone())))
                    .collect();
                (line, m)
            })
            .collect();
        Ok((path, mapped))
    }
}

fn cell(r: &HashMap<String, String>, col: &str) -> Option<String> {
    r.get(col)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Reader for Files {
    fn counterparties(
        &mut self,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Counterparty>, Error> {
        let (path, rows) = self.table(&self.counterparties.clone(), &["id", "name"])?;
        let mut out = Vec::new();
        for (line, r) in rows {
            let (Some(id), Some(name)) = (cell(&r, "id"), cell(&r, "name")) else {
                return Err(file_err(&path, format!("line {line}: an empty id or name")));
            };
            out.push(Counterparty {
                id,
                name,
                inn: cell(&r, "inn"),
                kpp: cell(&r, "kpp"),
            });
        }
        progress(out.len() as u64, Some(out.len() as u64));
        Ok(out)
    }

    fn sales(
        &mut self,
        since: Option<i64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Sale>, Error> {
        let (path, rows) = self.table(
            &self.sales.clone(),
            &["id", "date", "counterparty_id", "amount"],
        )?;
        let mut out = Vec::new();
        for (line, r) in rows {
            let bad = |col: &str, v: &Option<String>| {
                file_err(
                    &path,
                    format!(
                        "line {line}: column `{col}`: cannot read {:?}",
                        v.clone().unwrap_or_default()
                    ),
                )
            };
            let id = cell(&r, "id").ok_or_else(|| bad("id", &None))?;
            let date_text = cell(&r, "date");
            let date = date_text
                .as_deref()
                .and_then(|d| value::parse_time(d, self.tz))
                .ok_or_else(|| bad("date", &date_text))?;
            let amount_text = cell(&r, "amount");
            let amount = amount_text
                .as_deref()
                .and_then(value::parse_number)
                .ok_or_else(|| bad("amount", &amount_text))?;
            let num = |col: &str| -> Result<Option<f64>, Error> {
                match cell(&r, col) {
                    None => Ok(None),
                    Some(t) => value::parse_number(&t)
                        .map(Some)
                        .ok_or_else(|| bad(col, &Some(t))),
                }
            };
            let sale = Sale {
                id,
                version: None,
                date,
                counterparty_id: cell(&r, "counterparty_id")
                    .ok_or_else(|| bad("counterparty_id", &None))?,
                contract: cell(&r, "contract"),
                amount: (amount * 100.0).round() as i128,
                quantity: num("quantity")?,
                volume: num("volume")?,
                posted: match cell(&r, "posted") {
                    None => true,
                    Some(t) => value::flag(&Value::String(t.clone()))
                        .ok_or_else(|| bad("posted", &Some(t)))?,
                },
            };
            // Every line is checked; the window only selects.
            if since.is_none_or(|s| sale.date >= s) {
                out.push(sale);
            }
        }
        progress(out.len() as u64, Some(out.len() as u64));
        Ok(out)
    }

    fn requests(&self) -> u64 {
        0
    }

    fn skipped(&self) -> Vec<String> {
        vec![]
    }
}
