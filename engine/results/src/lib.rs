//! What a report run produces — per block, Arrow batches plus what renderers need to
//! present them (labels, value types, definitions, chart hints), and the run's period,
//! filters and settings as shown. Arrow and plain data only: renderers depend on this
//! crate, never on the report language or its plans.

use std::collections::BTreeMap;
use std::fmt;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

/// The run a result is of, as outputs show it: its period, `as_of`, zone, filters and
/// where the CRM's pages are.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// First day of the period (inclusive).
    pub from: NaiveDate,
    /// Last day of the period (inclusive).
    pub to: NaiveDate,
    /// The day at whose end "now" is frozen.
    pub as_of: NaiveDate,
    pub timezone: Tz,
    /// Filter name → values; an absent or empty filter does not filter.
    pub filters: BTreeMap<String, Vec<FilterValue>>,
    /// The CRM portal's base URL, for links (`https://example.bitrix24.ru`).
    pub portal_url: Option<String>,
    /// Where each CRM entity's page is (`deal` → `https://…/crm/deal/details/{id}/`):
    /// the data set's `links` with `{portal}` filled in. Bound as `$link_deal`…; the
    /// renderers link a row's `deal_id`… with them.
    pub links: BTreeMap<String, String>,
}

/// One value of a report filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilterValue {
    Id(i64),
    Text(String),
}

impl FilterValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FilterValue::Id(v) => (*v).into(),
            FilterValue::Text(v) => v.clone().into(),
        }
    }
}

impl std::fmt::Display for FilterValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterValue::Id(v) => write!(f, "{v}"),
            FilterValue::Text(v) => f.write_str(v),
        }
    }
}

/// A calendar shift of the run's period (and `as_of`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    PreviousPeriod,
    PreviousYear,
    /// One calendar month back (a month's last day maps to the last day of the month before).
    PreviousMonth,
}

/// How a block may be drawn; renderers decide the details.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    #[serde(rename = "type")]
    pub kind: ChartKind,
    /// The column along the category axis (or the slice names of a pie).
    pub x: String,
    /// The value columns.
    pub y: Vec<String>,
    /// A column whose values make separate lines/bars (an employee per line); rows with
    /// the same `x` and series add up.
    #[serde(default)]
    pub series: Option<String>,
}

/// The chart kinds renderers know.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Bar,
    StackedBar,
    Line,
    Pie,
    Funnel,
    /// A grid of `series` (rows) × `x` (columns), each cell coloured by its one `y` value.
    Heatmap,
}

/// The value types a setting may have.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    Int,
    Number,
    Bool,
    Text,
    Enum,
    Date,
    /// key → value pairs; joinable as a table (key, value).
    Map,
    /// A list of values; joinable as a table (item).
    List,
    /// Rows of named, typed columns; joinable as a table.
    Table,
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettingType::Int => "int",
            SettingType::Number => "number",
            SettingType::Bool => "bool",
            SettingType::Text => "text",
            SettingType::Enum => "enum",
            SettingType::Date => "date",
            SettingType::Map => "map",
            SettingType::List => "list",
            SettingType::Table => "table",
        })
    }
}

/// How an output value is presented; also its JSON `type`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Id,
    Int,
    Number,
    Money,
    Percent,
    Days,
    Text,
    Bool,
    Date,
    Timestamp,
}

impl ValueType {
    /// The name used in JSON and in docs.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Id => "id",
            ValueType::Int => "int",
            ValueType::Number => "number",
            ValueType::Money => "money",
            ValueType::Percent => "percent",
            ValueType::Days => "days",
            ValueType::Text => "text",
            ValueType::Bool => "bool",
            ValueType::Date => "date",
            ValueType::Timestamp => "timestamp",
        }
    }

    /// True for types shown as numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Id
                | ValueType::Int
                | ValueType::Number
                | ValueType::Money
                | ValueType::Percent
                | ValueType::Days
        )
    }
}

/// A setting's value.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Int(i64),
    Number(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    /// A map, list or table setting: rows of scalar values under typed columns.
    Rows(Rows),
}

/// The value of a structured setting, as a small table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub kind: SettingType,
    pub columns: Vec<(String, SettingType)>,
    pub rows: Vec<Vec<SettingValue>>,
}

impl SettingValue {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SettingValue::Int(v) => (*v).into(),
            SettingValue::Number(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            SettingValue::Bool(v) => (*v).into(),
            SettingValue::Text(v) => v.clone().into(),
            SettingValue::Date(d) => d.to_string().into(),
            SettingValue::Rows(r) => match r.kind {
                SettingType::Map => serde_json::Value::Object(
                    r.rows
                        .iter()
                        .map(|row| (row[0].to_string(), row[1].to_json()))
                        .collect(),
                ),
                SettingType::List => r.rows.iter().map(|row| row[0].to_json()).collect(),
                _ => r
                    .rows
                    .iter()
                    .map(|row| {
                        serde_json::Value::Object(
                            r.columns
                                .iter()
                                .zip(row)
                                .map(|((c, _), v)| (c.clone(), v.to_json()))
                                .collect(),
                        )
                    })
                    .collect(),
            },
        }
    }
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Int(v) => write!(f, "{v}"),
            SettingValue::Number(v) => write!(f, "{v}"),
            SettingValue::Bool(v) => write!(f, "{v}"),
            SettingValue::Text(v) => write!(f, "{v}"),
            SettingValue::Date(d) => write!(f, "{d}"),
            SettingValue::Rows(_) => write!(f, "{}", self.to_json()),
        }
    }
}

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
    pub params: RunInfo,
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
    pub params: RunInfo,
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
    pub fn of_blocks(report: &str, params: RunInfo, blocks: Vec<BlockResult>) -> ReportResult {
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
