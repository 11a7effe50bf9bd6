//! A block's rows as cells, with each row's children rows under it: the one shape JSON,
//! HTML and xlsx are written from.

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;
use chrono_tz::Tz;
use svodka_results::{BlockResult, ColumnMeta};

use crate::RenderError;
use crate::values::{Cell, cells};

/// A block ready to present.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<ColumnMeta>,
    pub rows: Vec<Row>,
    pub totals: Option<Vec<Cell>>,
    /// The row over the comparison period (`compare`).
    pub previous: Option<Vec<Cell>>,
    /// The levels rows expand into, in the order of `Row::children`.
    pub levels: Vec<Level>,
}

/// One level of children: its columns exclude the parent's dimensions.
#[derive(Debug, Clone)]
pub struct Level {
    pub id: String,
    pub title: Option<String>,
    pub columns: Vec<ColumnMeta>,
}

impl Level {
    /// What names a child row under its parent: its own dimensions (names, not ids),
    /// joined — `Иванов · Общая`.
    pub fn label(&self, cells: &[Cell], locale: crate::format::Locale) -> String {
        self.columns
            .iter()
            .zip(cells)
            .filter(|(c, _)| c.dimension && !c.name.ends_with("_id"))
            .map(|(c, v)| locale.label(v, c.ty))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// Per level, the rows under this one (cells in the level's column order).
    pub children: Vec<Vec<Vec<Cell>>>,
}

impl Table {
    /// One row of measures and no dimensions: shown as KPI cards (a list of measures in
    /// a workbook), not as a table.
    pub fn is_kpi(&self, kind: svodka_results::BlockKind) -> bool {
        kind == svodka_results::BlockKind::Table
            && self.rows.len() == 1
            && !self.columns.iter().any(|c| c.dimension)
            && self.levels.is_empty()
    }

    /// The table with the values of dimension `dim` spread into columns: a row per value of
    /// the other dimensions (in order of first appearance), a column per measure and value
    /// of `dim` (labelled by the value alone when there is one measure). The totals row,
    /// which has no value of `dim`, is left out; an absent combination is empty.
    pub fn pivoted(&self, dim: &str, locale: crate::format::Locale) -> Table {
        let Some(p) = self.columns.iter().position(|c| c.name == dim) else {
            return self.clone();
        };
        let keys: Vec<usize> = (0..self.columns.len())
            .filter(|&i| i != p && self.columns[i].dimension)
            .collect();
        let measures: Vec<usize> = (0..self.columns.len())
            .filter(|&i| i != p && !self.columns[i].dimension)
            .collect();
        let mut values: Vec<&Cell> = Vec::new();
        for r in &self.rows {
            if !values.contains(&&r.cells[p]) {
                values.push(&r.cells[p]);
            }
        }
        let value_label = |v: &Cell| locale.column_label(&self.columns[p], v);
        let mut columns: Vec<ColumnMeta> = keys.iter().map(|&i| self.columns[i].clone()).collect();
        for &m in &measures {
            let measure = &self.columns[m];
            for (k, v) in values.iter().enumerate() {
                columns.push(ColumnMeta {
                    name: format!("{}@{k}", measure.name),
                    label: if measures.len() == 1 {
                        value_label(v)
                    } else {
                        format!("{} · {}", measure.label, value_label(v))
                    },
                    ..measure.clone()
                });
            }
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut row_keys: Vec<Vec<&Cell>> = Vec::new();
        for r in &self.rows {
            let key: Vec<&Cell> = keys.iter().map(|&i| &r.cells[i]).collect();
            let at = match row_keys.iter().position(|k| *k == key) {
                Some(at) => at,
                None => {
                    let mut cells: Vec<Cell> = key.iter().map(|c| (*c).clone()).collect();
                    cells.resize(columns.len(), Cell::Null);
                    rows.push(Row {
                        cells,
                        children: Vec::new(),
                    });
                    row_keys.push(key);
                    rows.len() - 1
                }
            };
            let v = values
                .iter()
                .position(|v| **v == r.cells[p])
                .expect("every value was collected");
            for (j, &m) in measures.iter().enumerate() {
                rows[at].cells[keys.len() + j * values.len() + v] = r.cells[m].clone();
            }
        }
        Table {
            columns,
            rows,
            totals: None,
            previous: None,
            levels: Vec::new(),
        }
    }

    /// The cell of `column` in `row`, if the block has that column.
    pub fn get<'a>(&self, cells: &'a [Cell], column: &str) -> Option<&'a Cell> {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .map(|i| &cells[i])
    }
}

/// The block's batches as rows of cells, in the client's time zone.
pub fn table(block: &BlockResult, tz: Tz) -> Result<Table, RenderError> {
    let mut rows: Vec<Row> = Vec::with_capacity(block.row_count());
    for batch in &block.batches {
        rows.extend(
            rows_of(&block.id, &block.columns, batch, tz)?
                .into_iter()
                .map(|cells| Row {
                    cells,
                    children: Vec::new(),
                }),
        );
    }
    around(block, tz, rows)
}

/// `table` without its rows, for a writer that lays them out batch by batch (`rows_of`)
/// so that a long list never waits whole as cells; `None` for a block with child levels
/// (each row's children are found by its cells). Whatever laying out the rows could
/// refuse — a missing column, a type that is not the column's — depends on the columns
/// only, and is refused here.
pub fn table_without_rows(block: &BlockResult, tz: Tz) -> Result<Option<Table>, RenderError> {
    if !block.children.is_empty() {
        return Ok(None);
    }
    for batch in &block.batches {
        rows_of(&block.id, &block.columns, &batch.slice(0, 0), tz)?;
    }
    around(block, tz, Vec::new()).map(Some)
}

/// The table of `rows`: the block's columns, its totals and comparison rows, and the rows
/// of its child levels under each row.
fn around(block: &BlockResult, tz: Tz, mut rows: Vec<Row>) -> Result<Table, RenderError> {
    let one = |batch: &RecordBatch| -> Result<Option<Vec<Cell>>, RenderError> {
        Ok(rows_of(&block.id, &block.columns, batch, tz)?.pop())
    };
    let totals = block.totals.as_ref().map(one).transpose()?.flatten();
    let previous = block
        .previous
        .as_ref()
        .map(|p| one(&p.row))
        .transpose()?
        .flatten();
    let mut levels = Vec::new();
    for child in &block.children {
        // A child row belongs to the parent row with equal values of the parent keys.
        let positions = |columns: &[ColumnMeta]| -> Vec<Option<usize>> {
            child
                .parent_keys
                .iter()
                .map(|k| columns.iter().position(|c| &c.name == k))
                .collect()
        };
        let (in_child, in_block) = (positions(&child.columns), positions(&block.columns));
        let key = |at: &[Option<usize>], cells: &[Cell]| -> String {
            let parts: Vec<String> = at
                .iter()
                .map(|i| i.map(|i| format!("{:?}", cells[i])).unwrap_or_default())
                .collect();
            parts.join("\u{1f}")
        };
        let own: Vec<usize> = (0..child.columns.len())
            .filter(|&i| !child.parent_keys.contains(&child.columns[i].name))
            .collect();
        let mut by_parent: HashMap<String, Vec<Vec<Cell>>> = HashMap::new();
        for batch in &child.batches {
            for cells in rows_of(&block.id, &child.columns, batch, tz)? {
                let k = key(&in_child, &cells);
                let kept = own.iter().map(|&i| cells[i].clone()).collect();
                by_parent.entry(k).or_default().push(kept);
            }
        }
        for row in &mut rows {
            let k = key(&in_block, &row.cells);
            row.children.push(by_parent.remove(&k).unwrap_or_default());
        }
        levels.push(Level {
            id: child.id.clone(),
            title: child.title.clone(),
            columns: own.iter().map(|&i| child.columns[i].clone()).collect(),
        });
    }
    Ok(Table {
        columns: block.columns.clone(),
        rows,
        totals,
        previous,
        levels,
    })
}

/// A batch as rows of cells in the order of `columns`.
pub fn rows_of(
    block: &str,
    columns: &[ColumnMeta],
    batch: &RecordBatch,
    tz: Tz,
) -> Result<Vec<Vec<Cell>>, RenderError> {
    let mut by_column = Vec::with_capacity(columns.len());
    for c in columns {
        let array = batch
            .column_by_name(&c.name)
            .ok_or_else(|| RenderError::MissingColumn {
                block: block.to_string(),
                column: c.name.clone(),
            })?;
        by_column.push(cells(array, c.ty, tz, block, &c.name)?);
    }
    let mut by_column: Vec<std::vec::IntoIter<Cell>> =
        by_column.into_iter().map(Vec::into_iter).collect();
    Ok((0..batch.num_rows())
        .map(|_| {
            by_column
                .iter_mut()
                .map(|c| c.next().unwrap_or(Cell::Null))
                .collect()
        })
        .collect())
}
