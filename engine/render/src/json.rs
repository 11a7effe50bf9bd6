//! The JSON contract of reports.md: `{report, title, params, settings, blocks: [{id,
//! title, columns: [{name, label, type}], rows: [{column: value…}], totals?}]}`.
//!
//! Written straight from the blocks' cells (`ReportJson` is `Serialize`): a list of a
//! million rows is never a tree of JSON values in memory.

use chrono::SecondsFormat;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use svodka_results::{BlockResult, ColumnMeta, ReportResult};

use crate::RenderError;
use crate::table::{Row, Table, rows_of, table, table_without_rows};
use crate::values::Cell;

/// The whole report, ready to serialize (`serde_json::to_writer_pretty`, axum's `Json`).
pub struct ReportJson<'a> {
    result: &'a ReportResult,
    params: Map<String, Value>,
    settings: Map<String, Value>,
    blocks: Vec<BlockJson<'a>>,
}

impl<'a> ReportJson<'a> {
    /// Lays the report's blocks out as cells (the one step that can fail).
    pub fn new(result: &'a ReportResult) -> Result<Self, RenderError> {
        let p = &result.params;
        let mut params = Map::new();
        params.insert("from".into(), p.from.to_string().into());
        params.insert("to".into(), p.to.to_string().into());
        params.insert("as_of".into(), p.as_of.to_string().into());
        params.insert("timezone".into(), p.timezone.name().into());
        for (name, value) in &result.parameters {
            params.insert(name.clone(), value.to_json());
        }
        for (name, values) in &p.filters {
            params.insert(
                name.clone(),
                Value::Array(values.iter().map(|v| v.to_json()).collect()),
            );
        }
        let settings = result
            .settings
            .iter()
            .map(|(n, v)| (n.clone(), v.to_json()))
            .collect();
        let blocks = result
            .blocks
            .iter()
            .map(|b| BlockJson::new(b, p.timezone))
            .collect::<Result<_, _>>()?;
        Ok(ReportJson {
            result,
            params,
            settings,
            blocks,
        })
    }
}

impl Serialize for ReportJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("report", &self.result.report)?;
        m.serialize_entry("title", &self.result.title)?;
        m.serialize_entry("params", &self.params)?;
        m.serialize_entry("settings", &self.settings)?;
        m.serialize_entry("blocks", &self.blocks)?;
        m.end()
    }
}

/// One block, ready to serialize.
pub struct BlockJson<'a> {
    block: &'a BlockResult,
    table: Table,
    /// The zone its rows are laid out in as they are written, batch by batch (a block
    /// without child levels: a list of a million rows never waits whole as cells); none
    /// when `table` holds them.
    streamed: Option<chrono_tz::Tz>,
}

impl<'a> BlockJson<'a> {
    pub fn new(block: &'a BlockResult, tz: chrono_tz::Tz) -> Result<Self, RenderError> {
        Ok(match table_without_rows(block, tz)? {
            Some(table) => BlockJson {
                block,
                table,
                streamed: Some(tz),
            },
            None => BlockJson {
                block,
                table: table(block, tz)?,
                streamed: None,
            },
        })
    }
}

impl Serialize for BlockJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &self.table;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.block.id)?;
        m.serialize_entry("title", &self.block.title)?;
        m.serialize_entry("columns", &Columns(&t.columns))?;
        match self.streamed {
            Some(tz) => m.serialize_entry("rows", &BatchRows(self.block, tz))?,
            None => m.serialize_entry("rows", &Rows(t))?,
        }
        if let Some(totals) = &t.totals {
            m.serialize_entry("totals", &Object(&t.columns, totals))?;
        }
        if let (Some(prev), Some(row)) = (&self.block.previous, &t.previous) {
            // The same row over the comparison period, and that period.
            m.serialize_entry(
                "previous",
                &Previous {
                    from: prev.params.from.to_string(),
                    to: prev.params.to.to_string(),
                    row: Object(&t.columns, row),
                },
            )?;
        }
        if !t.levels.is_empty() {
            let levels: Vec<LevelJson> = t
                .levels
                .iter()
                .map(|l| LevelJson {
                    id: &l.id,
                    title: &l.title,
                    columns: Columns(&l.columns),
                })
                .collect();
            m.serialize_entry("children", &levels)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Previous<'a> {
    from: String,
    to: String,
    row: Object<'a>,
}

#[derive(Serialize)]
struct LevelJson<'a> {
    id: &'a str,
    title: &'a Option<String>,
    columns: Columns<'a>,
}

/// Column metadata: name, label, type, definition (and description).
struct Columns<'a>(&'a [ColumnMeta]);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&ColumnJson(c))?;
        }
        seq.end()
    }
}

struct ColumnJson<'a>(&'a ColumnMeta);

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &c.name)?;
        m.serialize_entry("label", &c.label)?;
        m.serialize_entry("type", c.ty.name())?;
        m.serialize_entry("definition", &c.definition)?;
        if let Some(d) = &c.description {
            m.serialize_entry("description", d)?;
        }
        m.end()
    }
}

/// A block's rows, each with its children rows per level.
struct Rows<'a>(&'a Table);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut seq = s.serialize_seq(Some(t.rows.len()))?;
        for row in &t.rows {
            seq.serialize_element(&RowJson(t, row))?;
        }
        seq.end()
    }
}

/// A block's rows laid out batch by batch while written (`BlockJson::streamed`).
struct BatchRows<'a>(&'a BlockResult, chrono_tz::Tz);

impl Serialize for BatchRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (block, tz) = (self.0, self.1);
        let mut seq = s.serialize_seq(Some(block.row_count()))?;
        for batch in &block.batches {
            // Checked by `table_without_rows`: a refusal here would be a broken invariant,
            // reported as a write error rather than a panic.
            let rows =
                rows_of(&block.id, &block.columns, batch, tz).map_err(serde::ser::Error::custom)?;
            for cells in &rows {
                seq.serialize_element(&Object(&block.columns, cells))?;
            }
        }
        seq.end()
    }
}

struct RowJson<'a>(&'a Table, &'a Row);

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (t, row) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        for (c, v) in t.columns.iter().zip(&row.cells) {
            m.serialize_entry(&c.name, &CellJson(v))?;
        }
        if !t.levels.is_empty() {
            m.serialize_entry("children", &Children(t, row))?;
        }
        m.end()
    }
}

struct Children<'a>(&'a Table, &'a Row);

impl Serialize for Children<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.levels.len()))?;
        for (level, rows) in self.0.levels.iter().zip(&self.1.children) {
            let rows: Vec<Object> = rows.iter().map(|r| Object(&level.columns, r)).collect();
            m.serialize_entry(&level.id, &rows)?;
        }
        m.end()
    }
}

/// Cells as an object keyed by their columns' names.
struct Object<'a>(&'a [ColumnMeta], &'a [Cell]);

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (c, v) in self.0.iter().zip(self.1) {
            m.serialize_entry(&c.name, &CellJson(v))?;
        }
        m.end()
    }
}

/// A cell: numbers as numbers (null when not finite), dates `YYYY-MM-DD`, timestamps
/// ISO 8601 with the client's offset.
struct CellJson<'a>(&'a Cell);

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Cell::Null => s.serialize_unit(),
            Cell::Int(v) => s.serialize_i64(*v),
            Cell::Number(v) if v.is_finite() => s.serialize_f64(*v),
            Cell::Number(_) => s.serialize_unit(),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Bool(b) => s.serialize_bool(*b),
            Cell::Date(d) => s.collect_str(d),
            Cell::Timestamp(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        }
    }
}
