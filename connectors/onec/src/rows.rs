//! Counterparties and sales as every source gives them, and as canonical batches
//! (`onec_counterparties`, `onec_sales`).

use arrow::record_batch::RecordBatch;
use svodka_schema::{TableBuilder, Value};

use crate::Error;

/// A counterparty (`Ref_Key`, name, INN as typed, KPP).
#[derive(Debug, Clone, PartialEq)]
pub struct Counterparty {
    pub id: String,
    pub name: String,
    pub inn: Option<String>,
    pub kpp: Option<String>,
}

/// A sales document.
#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    pub id: String,
    /// Its version (`DataVersion`), to tell an edited document from an unchanged one.
    pub version: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub date: i64,
    pub counterparty_id: String,
    pub contract: Option<String>,
    /// Kopecks.
    pub amount: i128,
    pub quantity: Option<f64>,
    pub volume: Option<f64>,
    pub posted: bool,
}

fn table(name: &str) -> &'static svodka_schema::Table {
    svodka_schema::table(name).expect("a canonical table")
}

fn opt(s: &Option<String>) -> Value<'_> {
    s.as_deref().map(Value::Text).unwrap_or(Value::Null)
}

pub fn counterparties_batch(rows: &[Counterparty]) -> Result<RecordBatch, Error> {
    let mut b = TableBuilder::new(table("onec_counterparties"));
    for r in rows {
        b.push_named(&[
            ("id", Value::Text(&r.id)),
            ("name", Value::Text(&r.name)),
            ("inn", opt(&r.inn)),
            ("kpp", opt(&r.kpp)),
        ])
        .map_err(|message| Error::Map {
            table: "onec_counterparties".into(),
            message: format!("{}: {message}", r.id),
        })?;
    }
    Ok(b.finish())
}

pub fn sales_batch(rows: &[Sale]) -> Result<RecordBatch, Error> {
    let mut b = TableBuilder::new(table("onec_sales"));
    let float = |f: Option<f64>| f.map(Value::Float).unwrap_or(Value::Null);
    for r in rows {
        b.push_named(&[
            ("id", Value::Text(&r.id)),
            ("date", Value::Timestamp(r.date)),
            ("counterparty_id", Value::Text(&r.counterparty_id)),
            ("contract", opt(&r.contract)),
            ("amount", Value::Money(r.amount)),
            ("quantity", float(r.quantity)),
            ("volume", float(r.volume)),
            ("posted", Value::Bool(r.posted)),
        ])
        .map_err(|message| Error::Map {
            table: "onec_sales".into(),
            message: format!("{}: {message}", r.id),
        })?;
    }
    Ok(b.finish())
}

/// A sum of table-part rows, with the float noise of adding decimals taken off.
pub fn rounded(sum: f64) -> f64 {
    (sum * 1e6).round() / 1e6
}
