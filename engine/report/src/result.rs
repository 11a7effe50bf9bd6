//! What a run produces: per block, Arrow batches plus what renderers need to present them
//! (labels, value types, definitions, chart hints). Renderers never see plans.

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::params::RunParams;
use crate::settings::SettingValue;
use crate::spec::{ChartSpec, Shift, ValueType};

/// One output column of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMeta {
    /// The public name (JSON key, xlsx header id).
    pub name: String,
    /// The human label (from YAML; the name when none is given).
    pub label: String,
    pub ty: ValueType,
    /// How the value is computed, for explain and hover: the SQL, with its model.
    pub definition: String,
    pub description: Option<String>,
    /// A dimension (a group key the rows are by), not a measure or a list field: its
    /// values can become filters.
    pub dimension: bool,
    /// A decrease is good news (`better: lower`).
    pub lower_is_better: bool,
    /// What pages and workbooks show for some of the column's text values (an unpivoted
    /// block's `metric` names the measures it lists: `won_sum` reads «Выиграно, ₽»). The
    /// JSON keeps the values themselves.
    pub value_labels: Vec<(String, String)>,
}

impl ColumnMeta {
    /// What a page shows for `value` of this column: its label, else the value.
    pub fn shown_value<'a>(&'a self, value: &'a str) -> &'a str {
        self.value_labels
            .iter()
            .find(|(v, _)| v == value)
            .map_or(value, |(_, label)| label.as_str())
    }
}

/// The kinds of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Grouped measures (`by` + `measures`), possibly one row.
    Table,
    /// Rows of a model (`columns`).
    List,
}

/// One computed block.
#[derive(Debug, Clone)]
pub struct BlockResult {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub kind: BlockKind,
    pub columns: Vec<ColumnMeta>,
    pub batches: Vec<RecordBatch>,
    /// The totals row, when the block asks for one.
    pub totals: Option<RecordBatch>,
    /// The same one-row block over the period `compare` names (KPI change arrows).
    pub previous: Option<Previous>,
    /// The rows each row expands into, per level (department → employees, → pipelines).
    pub children: Vec<ChildResult>,
    pub chart: Option<ChartSpec>,
    /// The dimension whose values pages and workbooks spread into columns.
    pub pivot: Option<String>,
}

impl BlockResult {
    /// A block of rows with nothing else (no totals, comparison, children or chart).
    pub fn of_rows(
        id: &str,
        title: &str,
        kind: BlockKind,
        columns: Vec<ColumnMeta>,
        batches: Vec<RecordBatch>,
    ) -> BlockResult {
        BlockResult {
            id: id.to_string(),
            title: title.to_string(),
            description: None,
            kind,
            columns,
            batches,
            totals: None,
            previous: None,
            children: vec![],
            chart: None,
            pivot: None,
        }
    }

    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// A one-row block computed over another period, for comparison.
#[derive(Debug, Clone)]
pub struct Previous {
    pub shift: Shift,
    pub params: RunParams,
    pub row: RecordBatch,
}

/// One level of expansion of a block's rows.
#[derive(Debug, Clone)]
pub struct ChildResult {
    pub id: String,
    pub title: Option<String>,
    /// The block's dimensions: a child row belongs to the row with equal values there.
    pub parent_keys: Vec<String>,
    /// Parent dimensions, then the child's dimensions, then the measures.
    pub columns: Vec<ColumnMeta>,
    pub batches: Vec<RecordBatch>,
}

/// A whole report run.
#[derive(Debug, Clone)]
pub struct ReportResult {
    pub report: String,
    pub title: String,
    pub description: Option<String>,
    pub params: RunParams,
    /// Effective settings, in declaration order.
    pub settings: Vec<(String, SettingValue)>,
    /// The report's declared parameters and their values.
    pub parameters: Vec<(String, SettingValue)>,
    /// Human labels of settings and parameters, by name.
    pub labels: std::collections::HashMap<String, String>,
    pub blocks: Vec<BlockResult>,
    /// The filters the report's models accept (`employee`, `department`…): dimension
    /// values with these names (or `<name>_id`) can filter the report.
    pub filters: Vec<String>,
    /// Where the run's time went: (step, seconds), in order.
    pub timings: Vec<(String, f64)>,
}

impl ReportResult {
    /// A result of these blocks with no settings, parameters or filters.
    pub fn of_blocks(report: &str, params: RunParams, blocks: Vec<BlockResult>) -> ReportResult {
        ReportResult {
            report: report.to_string(),
            title: report.to_string(),
            description: None,
            params,
            settings: vec![],
            parameters: vec![],
            labels: Default::default(),
            blocks,
            filters: vec![],
            timings: vec![],
        }
    }

    /// The human label of a setting or parameter (its name when it has none).
    pub fn label<'a>(&'a self, name: &'a str) -> &'a str {
        self.labels.get(name).map(String::as_str).unwrap_or(name)
    }
}

/// The presentation type of a column from its Arrow type and name, when YAML gives none.
pub fn infer_type(name: &str, data_type: &DataType) -> ValueType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            if name == "id" || name.ends_with("_id") {
                ValueType::Id
            } else {
                ValueType::Int
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ValueType::Number,
        DataType::Decimal128(..) | DataType::Decimal256(..) => ValueType::Money,
        DataType::Boolean => ValueType::Bool,
        DataType::Date32 | DataType::Date64 => ValueType::Date,
        DataType::Timestamp(..) => ValueType::Timestamp,
        _ => ValueType::Text,
    }
}

/// Whether a declared presentation type can show values of this Arrow type.
pub fn type_fits(ty: ValueType, data_type: &DataType) -> bool {
    let numeric = data_type.is_numeric() || matches!(data_type, DataType::Null);
    match ty {
        t if t.is_numeric() => numeric,
        ValueType::Bool => matches!(data_type, DataType::Boolean | DataType::Null),
        ValueType::Date => matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Null
        ),
        ValueType::Timestamp => matches!(data_type, DataType::Timestamp(..) | DataType::Null),
        _ => true,
    }
}
