//! A column the engine adds to a canonical table when it stores or loads it, computed once
//! from the table's own rows so that no run has to: for each row, when the same entity
//! changed next. A run for any `as_of` reads "the latest row before `as_of`" as a filter
//! (`changed_at < as_of_end and (next_changed_at is null or next_changed_at >= as_of_end)`)
//! instead of sorting the whole history again.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

/// For each row, `of` of the next row of the same `partition` in `order` (rows equal in
/// `order` keep the order they were delivered in); null for the last row of a partition.
#[derive(Debug, Clone, Copy)]
pub struct NextColumn {
    /// The derived column's name.
    pub name: &'static str,
    pub partition: &'static [&'static str],
    pub order: &'static [&'static str],
    /// A timestamp column whose next value is taken.
    pub of: &'static str,
}

/// The derived column of a table, if it has one (the table is stored sorted by it, so a
/// table has at most one).
pub fn derived_column(table: &str) -> Option<&'static NextColumn> {
    match table {
        "stage_history" => Some(&NextColumn {
            name: "next_changed_at",
            partition: &["entity", "entity_id"],
            order: &["changed_at"],
            of: "changed_at",
        }),
        "activities" => Some(&NextColumn {
            name: "next_created_at",
            partition: &["owner_type", "owner_id"],
            order: &["created_at", "id"],
            of: "created_at",
        }),
        _ => None,
    }
}

/// True when a schema carries its table's derived column (or the table has none).
pub fn has_derived(table: &str, schema: &Schema) -> bool {
    derived_column(table).is_none_or(|d| {
        schema
            .field_with_name(d.name)
            .is_ok_and(|f| f.data_type() == &crate::timestamp_type())
    })
}

/// The indices of a schema's columns that are not derived ones: the table as delivered.
pub fn delivered_columns(table: &str, schema: &Schema) -> Vec<usize> {
    let derived = derived_column(table).map(|d| d.name);
    (0..schema.fields().len())
        .filter(|i| Some(schema.field(*i).name().as_str()) != derived)
        .collect()
}

/// Rows per batch of a derived table: several batches, so that a scan of it in memory is
/// spread over every core.
const BATCH_ROWS: usize = 64 * 1024;

/// A checked table with its derived column (re)computed and appended, its rows sorted by
/// that column (the rows of each entity's latest change last, by time), so that the
/// statistics of a Parquet file of it prune a scan for the latest rows before a day.
/// Tables without a derived column come back as they are.
pub fn derive(
    table: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let Some(d) = derived_column(table) else {
        return Ok((schema, batches));
    };
    // A delivered column of the derived name is replaced, never trusted.
    let kept = delivered_columns(table, &schema);
    let all = concat_batches(&schema, &batches)?.project(&kept)?;
    drop(batches);
    // Sorted by partition, then order; a stable sort keeps delivered order on ties.
    let partition = rows(&all, d.partition)?;
    let order = rows(&all, d.order)?;
    let mut indices: Vec<u32> = (0..all.num_rows() as u32).collect();
    indices.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        partition
            .row(a)
            .cmp(&partition.row(b))
            .then_with(|| order.row(a).cmp(&order.row(b)))
    });
    let of = column(&all, d.of)?;
    let of = of
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column `{}` is not a timestamp", d.of)))?;
    // The next change of each row, in partition order.
    let next: Vec<Option<i64>> = indices
        .iter()
        .zip(indices.iter().skip(1).map(Some).chain([None]))
        .map(|(&i, following)| {
            following
                .map(|&j| j as usize)
                .filter(|&j| partition.row(i as usize) == partition.row(j))
                .and_then(|j| of.is_valid(j).then(|| of.value(j)))
        })
        .collect();
    // Stored by when the entity changed next, each entity's latest row last (by time):
    // "the latest row before `as_of`" then reads only the rows whose next change is
    // after `as_of`, and the statistics of the row groups and pages before them skip
    // them unread. Rows of one entity keep their order, so deriving again gives the same.
    let mut stored: Vec<usize> = (0..indices.len()).collect();
    stored.sort_by_key(|&p| {
        let row = indices[p] as usize;
        (
            next[p].is_none(),
            next[p],
            of.is_valid(row).then(|| of.value(row)),
            p,
        )
    });
    let next: TimestampMicrosecondArray = stored.iter().map(|&p| next[p]).collect();
    let indices: Vec<u32> = stored.iter().map(|&p| indices[p]).collect();
    let sorted = take_record_batch(&all, &arrow::array::UInt32Array::from(indices))?;
    drop(all);
    let mut fields: Vec<Field> = sorted
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(d.name, crate::timestamp_type(), true));
    let mut columns: Vec<ArrayRef> = sorted.columns().to_vec();
    columns.push(Arc::new(next.with_timezone("UTC")));
    let out = Arc::new(Schema::new(fields));
    let whole = RecordBatch::try_new(out.clone(), columns)?;
    let batches = (0..whole.num_rows())
        .step_by(BATCH_ROWS)
        .map(|start| whole.slice(start, BATCH_ROWS.min(whole.num_rows() - start)))
        .collect();
    Ok((out, batches))
}

/// The named columns of a batch in Arrow's comparable row format.
fn rows(batch: &RecordBatch, names: &[&str]) -> Result<arrow::row::Rows, ArrowError> {
    let columns = names
        .iter()
        .map(|n| column(batch, n))
        .collect::<Result<Vec<_>, _>>()?;
    RowConverter::new(
        columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?
    .convert_columns(&columns)
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn history(rows: &[(&str, i64, i64)]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("entity", arrow::datatypes::DataType::Utf8, false),
            Field::new("entity_id", arrow::datatypes::DataType::Int64, false),
            Field::new("changed_at", crate::timestamp_type(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        // Two batches: rows of one entity arrive in both.
        let (a, b) = (
            batch.slice(0, rows.len() / 2),
            batch.slice(rows.len() / 2, rows.len() - rows.len() / 2),
        );
        (schema, vec![a, b])
    }

    fn lines(batches: &[RecordBatch]) -> Vec<(String, i64, i64, Option<i64>)> {
        let mut out = Vec::new();
        for b in batches {
            let e = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let id = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            let at = b
                .column(2)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            let next = b
                .column(3)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                out.push((
                    e.value(i).to_string(),
                    id.value(i),
                    at.value(i),
                    next.is_valid(i).then(|| next.value(i)),
                ));
            }
        }
        out
    }

    #[test]
    fn each_row_learns_when_its_entity_changed_next() {
        let (schema, batches) = history(&[
            ("deal", 2, 30),
            ("lead", 2, 5),
            ("deal", 2, 10),
            ("deal", 1, 20),
            ("deal", 2, 20),
        ]);
        let (out, batches) = derive("stage_history", schema, batches).unwrap();
        assert_eq!(out.field(3).name(), "next_changed_at");
        assert!(has_derived("stage_history", &out));
        assert_eq!(
            lines(&batches),
            // Rows with a next change first, by it; then each entity's latest, by time.
            vec![
                ("deal".into(), 2, 10, Some(20)),
                ("deal".into(), 2, 20, Some(30)),
                ("lead".into(), 2, 5, None),
                ("deal".into(), 1, 20, None),
                ("deal".into(), 2, 30, None),
            ]
        );
    }

    #[test]
    fn rows_at_the_same_moment_keep_their_delivered_order_and_point_to_each_other() {
        let (schema, batches) = history(&[("deal", 1, 10), ("deal", 1, 10), ("deal", 1, 5)]);
        let (_, batches) = derive("stage_history", schema, batches).unwrap();
        assert_eq!(
            lines(&batches),
            vec![
                ("deal".into(), 1, 5, Some(10)),
                ("deal".into(), 1, 10, Some(10)),
                ("deal".into(), 1, 10, None),
            ]
        );
    }

    #[test]
    fn a_delivered_derived_column_is_recomputed_and_derive_is_idempotent() {
        let (schema, batches) = history(&[("deal", 1, 10), ("deal", 1, 20)]);
        let (schema, batches) = derive("stage_history", schema, batches).unwrap();
        let (again, batches) = derive("stage_history", schema.clone(), batches).unwrap();
        assert_eq!(again, schema);
        assert_eq!(
            lines(&batches),
            vec![
                ("deal".into(), 1, 10, Some(20)),
                ("deal".into(), 1, 20, None)
            ]
        );
    }

    #[test]
    fn an_empty_table_gets_the_column_and_other_tables_are_untouched() {
        let (schema, _) = history(&[]);
        let (out, batches) = derive("stage_history", schema.clone(), vec![]).unwrap();
        assert!(has_derived("stage_history", &out));
        assert!(batches.is_empty());
        let (same, _) = derive("deals", schema.clone(), vec![]).unwrap();
        assert_eq!(same, schema);
        assert!(has_derived("deals", &schema));
    }
}
