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

impl ReportJson<'_> {
    /// Writes the report as `serde_json::to_writer_pretty` would, byte for byte, but with
    /// the rows of each block without child levels laid out and serialized on every core,
    /// a few thousand rows per core at a time, written in order as they are done (a list
    /// of a million rows still never waits whole in memory). The rest of the report is
    /// serialized first with a marker in place of those rows: a string no value can
    /// hold, as it carries a number drawn for this call.
    pub fn write_pretty(mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        use std::hash::{BuildHasher, Hasher};
        let drawn = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut marked = Vec::new();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            if b.streamed.is_some() {
                let marker = format!("\u{0}svodka-rows-{drawn:016x}-{i}");
                // As the serializer writes it (the NUL escaped).
                let written = serde_json::to_string(&marker)?;
                b.marker = Some(marker);
                marked.push((i, written));
            }
        }
        let skeleton = serde_json::to_vec_pretty(&self)?;
        let mut rest = &skeleton[..];
        // Asked once: each answer reads the process's cgroup files.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (i, written) in &marked {
            let at = rest
                .windows(written.len())
                .position(|w| w == written.as_bytes())
                .ok_or_else(|| std::io::Error::other("a block's rows marker went missing"))?;
            out.write_all(&rest[..at])?;
            let b = &self.blocks[*i];
            let tz = b.streamed.expect("marked blocks stream their rows");
            write_rows_pretty(b.block, tz, cores, out)?;
            rest = &rest[at + written.len()..];
        }
        out.write_all(rest)
    }
}

/// Rows laid out and serialized per core at a time.
const ROWS_PER_CHUNK: usize = 4096;

/// A block's rows as `to_writer_pretty` writes the value of its `rows` key (at the depth
/// of a block of the report), chunks of rows serialized side by side on the `cores`.
fn write_rows_pretty(
    block: &BlockResult,
    tz: chrono_tz::Tz,
    cores: usize,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if block.row_count() == 0 {
        return out.write_all(b"[]");
    }
    let mut chunks = Vec::new();
    let mut first = 0;
    for batch in &block.batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = ROWS_PER_CHUNK.min(batch.num_rows() - offset);
            chunks.push((first, batch.slice(offset, len)));
            first += len;
            offset += len;
        }
    }
    // Each key as the serializer writes it, with the `": "` after it: once per block,
    // not once per cell.
    let keys: &[Vec<u8>] = &block
        .columns
        .iter()
        .map(|c| {
            let mut key = serde_json::to_vec(&c.name)?;
            key.extend_from_slice(b": ");
            Ok(key)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    out.write_all(b"[")?;
    for window in chunks.chunks(cores) {
        let written: Vec<std::io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            // The first chunk on this thread, which would otherwise only wait: a block of
            // one chunk (most blocks) starts no thread.
            let (here, others) = window.split_first().expect("chunks() gives none empty");
            let others: Vec<_> = others
                .iter()
                .map(|(first, batch)| {
                    scope.spawn(move || chunk_pretty(block, keys, *first, batch, tz))
                })
                .collect();
            let mut written = vec![chunk_pretty(block, keys, here.0, &here.1, tz)];
            written.extend(
                others
                    .into_iter()
                    .map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            written
        });
        for bytes in written {
            out.write_all(&bytes?)?;
        }
    }
    out.write_all(b"\n")?;
    out.write_all(&ROW_INDENT[2..])?;
    out.write_all(b"]")
}

/// The indent of a row of a block's `rows`: the rows are the elements of an array four
/// levels in (report, blocks, block, rows), two spaces a level, as `PrettyFormatter`
/// indents.
const ROW_INDENT: [u8; 8] = [b' '; 8];

/// Rows `first`… of `block` (`batch`, a chunk of its rows) as they stand in its `rows`
/// array: each after its separator and indent, with `keys` as the serializer writes them.
fn chunk_pretty(
    block: &BlockResult,
    keys: &[Vec<u8>],
    first: usize,
    batch: &arrow::record_batch::RecordBatch,
    tz: chrono_tz::Tz,
) -> std::io::Result<Vec<u8>> {
    let rows = rows_of(&block.id, &block.columns, batch, tz).map_err(std::io::Error::other)?;
    let mut bytes = Vec::new();
    for (k, cells) in rows.iter().enumerate() {
        let lead: &[u8] = if first + k == 0 { b"\n" } else { b",\n" };
        bytes.extend_from_slice(lead);
        bytes.extend_from_slice(&ROW_INDENT);
        row_pretty(keys, cells, &mut bytes)?;
        // The first row tells about how long the others are.
        if k == 0 {
            bytes.reserve(bytes.len() * rows.len());
        }
    }
    Ok(bytes)
}

/// One row as `to_writer_pretty` writes an object at the depth of `ROW_INDENT`: each
/// entry on a line of its own one level deeper, the closing brace at the row's indent.
/// `keys` are the columns' names serialized, each with its `": "`.
fn row_pretty(keys: &[Vec<u8>], cells: &[Cell], bytes: &mut Vec<u8>) -> std::io::Result<()> {
    if keys.is_empty() {
        bytes.extend_from_slice(b"{}");
        return Ok(());
    }
    bytes.push(b'{');
    for (i, (key, cell)) in keys.iter().zip(cells).enumerate() {
        bytes.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        bytes.extend_from_slice(&ROW_INDENT);
        bytes.extend_from_slice(b"  ");
        bytes.extend_from_slice(key);
        serde_json::to_writer(&mut *bytes, &CellJson(cell))?;
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(&ROW_INDENT);
    bytes.push(b'}');
    Ok(())
}

/// One block, ready to serialize.
pub struct BlockJson<'a> {
    block: &'a BlockResult,
    table: Table,
    /// The zone its rows are laid out in as they are written, batch by batch (a block
    /// without child levels: a list of a million rows never waits whole as cells); none
    /// when `table` holds them.
    streamed: Option<chrono_tz::Tz>,
    /// Written in place of the rows, for `ReportJson::write_pretty` to find.
    marker: Option<String>,
}

impl<'a> BlockJson<'a> {
    pub fn new(block: &'a BlockResult, tz: chrono_tz::Tz) -> Result<Self, RenderError> {
        Ok(match table_without_rows(block, tz)? {
            Some(table) => BlockJson {
                block,
                table,
                streamed: Some(tz),
                marker: None,
            },
            None => BlockJson {
                block,
                table: table(block, tz)?,
                streamed: None,
                marker: None,
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
        match (&self.marker, self.streamed) {
            (Some(marker), _) => m.serialize_entry("rows", marker)?,
            (None, Some(tz)) => m.serialize_entry("rows", &BatchRows(self.block, tz))?,
            (None, None) => m.serialize_entry("rows", &Rows(t))?,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;
    use svodka_results::{
        BlockKind, BlockResult, ChildResult, ColumnMeta, ReportResult, RunInfo, ValueType,
    };

    use super::*;

    fn column(name: &str, ty: ValueType, dimension: bool) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            label: name.into(),
            ty,
            definition: format!("{name} = …"),
            description: None,
            dimension,
            lower_is_better: false,
            value_labels: vec![],
        }
    }

    /// Rows `from..to`: an id, a name with characters JSON escapes, an amount (some
    /// missing, one not finite), an instant.
    fn rows(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let ids: Vec<i64> = (from..to).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter(ids.iter().map(|i| {
                (i % 7 != 0).then(|| format!("«Клиент» \"{i}\"\t\u{0}\\"))
            }))),
            Arc::new(Float64Array::from_iter(ids.iter().map(|i| match i % 5 {
                0 => None,
                1 => Some(f64::NAN),
                _ => Some(*i as f64 * 1.005),
            }))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    ids.iter()
                        .map(|i| (i % 3 != 0).then_some(1_790_000_000_000_000 + i)),
                )
                .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn columns() -> Vec<ColumnMeta> {
        vec![
            column("id", ValueType::Id, true),
            column("name", ValueType::Text, true),
            column("amount", ValueType::Money, false),
            column("at", ValueType::Timestamp, false),
        ]
    }

    #[test]
    fn written_pretty_is_what_serde_json_writes_pretty() {
        // More rows than a chunk, in batches of uneven sizes (one empty), so that chunks
        // are serialized side by side; a block of no rows; a block with a child level
        // (written whole); a title that looks like a marker; column names JSON escapes.
        let mut big = BlockResult::of_rows(
            "big",
            "\u{0}svodka-rows-0000000000000000-0",
            BlockKind::Table,
            columns(),
            vec![rows(0, 10_000), rows(10_000, 10_000), rows(10_000, 10_003)],
        );
        big.totals = Some(rows(99, 100));
        let empty = BlockResult::of_rows("empty", "Пусто", BlockKind::List, columns(), vec![]);
        let mut nested = BlockResult::of_rows(
            "nested",
            "Вложенные",
            BlockKind::Table,
            columns(),
            vec![rows(0, 3)],
        );
        nested.children.push(ChildResult {
            id: "more".into(),
            title: None,
            parent_keys: vec!["id".into()],
            columns: columns(),
            batches: vec![rows(1, 3)],
        });
        let info = RunInfo {
            from: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            to: chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            timezone: chrono_tz::Europe::Moscow,
            filters: Default::default(),
            portal_url: None,
            links: Default::default(),
        };
        // Keys JSON escapes, written once per block.
        let odd = "na\"me\u{1}";
        let batch = rows(0, 5);
        let renamed = |f: &Arc<Field>| match f.name() == "name" {
            true => f.as_ref().clone().with_name(odd),
            false => f.as_ref().clone(),
        };
        let fields: Vec<Field> = batch.schema().fields().iter().map(renamed).collect();
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).unwrap();
        let mut odd_columns = columns();
        odd_columns[1].name = odd.into();
        let keys = BlockResult::of_rows("keys", "Ключи", BlockKind::List, odd_columns, vec![batch]);
        let result = ReportResult::of_blocks("r", info, vec![big, empty, nested, keys]);
        let expected = serde_json::to_vec_pretty(&ReportJson::new(&result).unwrap()).unwrap();
        let mut written = Vec::new();
        ReportJson::new(&result)
            .unwrap()
            .write_pretty(&mut written)
            .unwrap();
        assert!(expected.len() > 10_000 * 100, "{}", expected.len());
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
