//! The JSON contract of reports.md: `{report, title, params, settings, blocks: [{id,
//! title, columns: [{name, label, type}], rows: [{column: value…}], totals?}]}`.

use arrow::record_batch::RecordBatch;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use svodka_report::{BlockResult, ReportResult};

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
    let columns: Vec<Value> = block
        .columns
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("name".into(), c.name.clone().into());
            m.insert("label".into(), c.label.clone().into());
            m.insert("type".into(), c.ty.name().into());
            m.insert("definition".into(), c.definition.clone().into());
            if let Some(d) = &c.description {
                m.insert("description".into(), d.clone().into());
            }
            Value::Object(m)
        })
        .collect();
    let mut rows = Vec::new();
    for batch in &block.batches {
        rows.extend(batch_rows(block, batch, tz)?);
    }
    let mut out = Map::new();
    out.insert("id".into(), block.id.clone().into());
    out.insert("title".into(), block.title.clone().into());
    out.insert("columns".into(), Value::Array(columns));
    out.insert("rows".into(), Value::Array(rows));
    if let Some(t) = &block.totals {
        let mut totals = batch_rows(block, t, tz)?;
        if let Some(row) = totals.pop() {
            out.insert("totals".into(), row);
        }
    }
    Ok(Value::Object(out))
}

fn batch_rows(
    block: &BlockResult,
    batch: &RecordBatch,
    tz: chrono_tz::Tz,
) -> Result<Vec<Value>, RenderError> {
    let mut columns = Vec::new();
    for c in &block.columns {
        let array = batch
            .column_by_name(&c.name)
            .ok_or_else(|| RenderError::MissingColumn {
                block: block.id.clone(),
                column: c.name.clone(),
            })?;
        columns.push(cells(array, c.ty, tz, &block.id, &c.name)?);
    }
    Ok((0..batch.num_rows())
        .map(|r| {
            let row: Map<String, Value> = block
                .columns
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
