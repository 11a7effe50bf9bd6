//! The JSON contract of reports.md: `{report, title, params, settings, blocks: [{id,
//! title, columns: [{name, label, type}], rows: [{column: value…}], totals?}]}`.

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use svodka_report::{BlockResult, ColumnMeta, ReportResult};

use crate::RenderError;
use crate::table::table;
use crate::values::Cell;

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
    let t = table(block, tz)?;
    let object = |columns: &[ColumnMeta], cells: &[Cell]| -> Map<String, Value> {
        columns
            .iter()
            .zip(cells)
            .map(|(c, v)| (c.name.clone(), cell_json(v)))
            .collect()
    };
    let rows: Vec<Value> = t
        .rows
        .iter()
        .map(|row| {
            let mut m = object(&t.columns, &row.cells);
            if !t.levels.is_empty() {
                let levels: Map<String, Value> = t
                    .levels
                    .iter()
                    .zip(&row.children)
                    .map(|(level, rows)| {
                        let rows = rows
                            .iter()
                            .map(|r| Value::Object(object(&level.columns, r)))
                            .collect();
                        (level.id.clone(), Value::Array(rows))
                    })
                    .collect();
                m.insert("children".into(), Value::Object(levels));
            }
            Value::Object(m)
        })
        .collect();
    let mut out = Map::new();
    out.insert("id".into(), block.id.clone().into());
    out.insert("title".into(), block.title.clone().into());
    out.insert(
        "columns".into(),
        Value::Array(t.columns.iter().map(column_json).collect()),
    );
    out.insert("rows".into(), Value::Array(rows));
    if let Some(totals) = &t.totals {
        out.insert("totals".into(), Value::Object(object(&t.columns, totals)));
    }
    if let (Some(prev), Some(row)) = (&block.previous, &t.previous) {
        // The same row over the comparison period, and that period.
        out.insert(
            "previous".into(),
            json!({
                "from": prev.params.from.to_string(),
                "to": prev.params.to.to_string(),
                "row": object(&t.columns, row),
            }),
        );
    }
    if !t.levels.is_empty() {
        let levels = t
            .levels
            .iter()
            .map(|l| {
                let columns: Vec<Value> = l.columns.iter().map(column_json).collect();
                json!({"id": l.id, "title": l.title, "columns": columns})
            })
            .collect();
        out.insert("children".into(), Value::Array(levels));
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
