//! The JSON contract of reports.md: `{report, title, params, settings, blocks: [{id,
//! title, columns: [{name, label, type}], rows: [{column: value…}], totals?}]}`.

use arrow::record_batch::RecordBatch;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use svodka_report::{BlockResult, ChildResult, ColumnMeta, ReportResult};

use crate::RenderError;
use crate::values::{Cell, cells};

/// The whole report as a JSON value.
pub fn report_json(result: &ReportResult) -> Result<Value, RenderError> {
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
    let settings: Map<String, Value> = result
        .settings
        .iter()
        .map(|(n, v)| (n.clone(), v.to_json()))
        .collect();
    let blocks = result
        .blocks
        .iter()
        .map(|b| block_json(b, p.timezone))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "report": result.report,
        "title": result.title,
        "params": params,
        "settings": settings,
        "blocks": blocks,
    }))
}

/// One block as a JSON value (also the per-block export).
pub fn block_json(block: &BlockResult, tz: chrono_tz::Tz) -> Result<Value, RenderError> {
    let mut rows = Vec::new();
    for batch in &block.batches {
        rows.extend(batch_rows(&block.id, &block.columns, batch, tz)?);
    }
    let mut child_meta = Vec::new();
    for child in &block.children {
        attach_children(&block.id, child, &mut rows, tz)?;
        let columns: Vec<Value> = child
            .columns
            .iter()
            .filter(|c| !child.parent_keys.contains(&c.name))
            .map(column_json)
            .collect();
        child_meta.push(json!({"id": child.id, "title": child.title, "columns": columns}));
    }
    let mut out = Map::new();
    out.insert("id".into(), block.id.clone().into());
    out.insert("title".into(), block.title.clone().into());
    out.insert(
        "columns".into(),
        Value::Array(block.columns.iter().map(column_json).collect()),
    );
    out.insert("rows".into(), Value::Array(rows));
    if let Some(t) = &block.totals {
        let mut totals = batch_rows(&block.id, &block.columns, t, tz)?;
        if let Some(row) = totals.pop() {
            out.insert("totals".into(), row);
        }
    }
    if !child_meta.is_empty() {
        out.insert("children".into(), Value::Array(child_meta));
    }
    Ok(Value::Object(out))
}

/// Column metadata as JSON: name, label, type, definition (and description).
fn column_json(c: &ColumnMeta) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), c.name.clone().into());
    m.insert("label".into(), c.label.clone().into());
    m.insert("type".into(), c.ty.name().into());
    m.insert("definition".into(), c.definition.clone().into());
    if let Some(d) = &c.description {
        m.insert("description".into(), d.clone().into());
    }
    Value::Object(m)
}

/// Puts each child row under `children.<id>` of the row with the same parent keys.
fn attach_children(
    block: &str,
    child: &ChildResult,
    rows: &mut [Value],
    tz: chrono_tz::Tz,
) -> Result<(), RenderError> {
    let key = |row: &Value| -> String {
        let values: Vec<&Value> = child.parent_keys.iter().map(|k| &row[k]).collect();
        serde_json::to_string(&values).unwrap_or_default()
    };
    let mut by_parent: std::collections::HashMap<String, Vec<Value>> =
        std::collections::HashMap::new();
    for batch in &child.batches {
        for mut row in batch_rows(block, &child.columns, batch, tz)? {
            let k = key(&row);
            if let Value::Object(m) = &mut row {
                for p in &child.parent_keys {
                    m.shift_remove(p);
                }
            }
            by_parent.entry(k).or_default().push(row);
        }
    }
    for row in rows.iter_mut() {
        let k = key(row);
        let children = by_parent.remove(&k).unwrap_or_default();
        if let Value::Object(m) = row {
            let slot = m
                .entry("children")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(levels) = slot {
                levels.insert(child.id.clone(), Value::Array(children));
            }
        }
    }
    Ok(())
}

fn batch_rows(
    block: &str,
    columns_meta: &[ColumnMeta],
    batch: &RecordBatch,
    tz: chrono_tz::Tz,
) -> Result<Vec<Value>, RenderError> {
    let mut columns = Vec::new();
    for c in columns_meta {
        let array = batch
            .column_by_name(&c.name)
            .ok_or_else(|| RenderError::MissingColumn {
                block: block.to_string(),
                column: c.name.clone(),
            })?;
        columns.push(cells(array, c.ty, tz, block, &c.name)?);
    }
    Ok((0..batch.num_rows())
        .map(|r| {
            let row: Map<String, Value> = columns_meta
                .iter()
                .zip(&columns)
                .map(|(c, cells)| (c.name.clone(), cell_json(&cells[r])))
                .collect();
            Value::Object(row)
        })
        .collect())
}

/// A cell as JSON: numbers as numbers, dates `YYYY-MM-DD`, timestamps ISO 8601 with the
/// client's offset.
pub fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(v) => (*v).into(),
        Cell::Number(v) => serde_json::Number::from_f64(*v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Cell::Text(s) => s.clone().into(),
        Cell::Bool(b) => (*b).into(),
        Cell::Date(d) => d.to_string().into(),
        Cell::Timestamp(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
    }
}
