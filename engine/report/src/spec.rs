//! The report language as written: serde shapes of model and report files, exactly what
//! a YAML file may contain. Meaning (names resolved, types checked) comes in `catalog`.

use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
pub use svodka_results::{ChartKind, ChartSpec, SettingType, Shift, ValueType};

/// A model file: a reusable view over a canonical table or another model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's name, by which reports and other models refer to it.
    pub model: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// A canonical table or another model.
    pub from: String,
    /// Row filter on the source, applied before joins (SQL boolean).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    #[serde(default)]
    pub joins: Vec<JoinSpec>,
    /// Makes this an aggregated model: one row per group; `columns` are then aggregates.
    #[serde(default, deserialize_with = "group_columns")]
    pub group_by: Option<NamedExprs>,
    /// The columns that name one row of a model that is not aggregated but has one row per
    /// key all the same (the latest row of each entity): a join on them brings at most one
    /// row, so a run that reads none of its columns leaves it out.
    #[serde(default)]
    pub key: Vec<String>,
    /// Report filter name (`employee`, `department`, `pipeline`, `source`) → column.
    #[serde(default)]
    pub filters: IndexMap<String, String>,
    #[serde(default)]
    pub settings: IndexMap<String, SettingSpec>,
    /// Derived columns (row-level SQL), or aggregates in an aggregated model.
    #[serde(default, deserialize_with = "columns")]
    pub columns: NamedExprs,
    /// Aggregates over the model's rows, or expressions over other measures.
    #[serde(default, deserialize_with = "model_measures")]
    pub measures: NamedExprs,
}

/// A left join that brings named columns from a table or model, matched on key columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// A canonical table or a model.
    pub from: String,
    /// Filter on the joined side before matching (SQL boolean over its columns).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Our column → their column; all pairs must match.
    pub on: IndexMap<String, String>,
    /// Columns to bring: our new name → their column or SQL expression.
    #[serde(deserialize_with = "columns")]
    pub take: NamedExprs,
}

/// A report file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// The report id used on the command line, in URLs and in JSON.
    pub report: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Settings of the report; may also re-declare a model's setting to change its
    /// default, bounds or label (not its type).
    #[serde(default)]
    pub settings: IndexMap<String, SettingSpec>,
    /// Choices made per request (`metric`, `grain`): typed and bounded like settings,
    /// bound as `$name`, shown in the output's `params`.
    #[serde(default)]
    pub parameters: IndexMap<String, SettingSpec>,
    pub blocks: Vec<BlockSpec>,
}

/// One block of a report: an aggregate table (`by` + `measures`) or a list (`columns`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The model that unqualified names refer to.
    #[serde(default)]
    pub from: Option<String>,
    /// Row filter applied to every model the block reads (SQL boolean).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Row filter on the block's output (SQL boolean over its output columns), applied
    /// after the measures are computed: clients whose turnover fell, say.
    #[serde(default)]
    pub having: Option<String>,
    /// Group-by dimensions (columns present in every model the block reads).
    #[serde(default, deserialize_with = "dimensions")]
    pub by: NamedExprs,
    /// Output measures: `name: model.measure`, `name: measure`, or an inline expression.
    #[serde(default, deserialize_with = "block_measures")]
    pub measures: NamedExprs,
    /// A list block's output columns (row-level expressions over `from`).
    #[serde(default, deserialize_with = "list_columns")]
    pub columns: NamedExprs,
    /// Adds a totals row: the block's measures computed over all its rows.
    #[serde(default)]
    pub totals: bool,
    /// Adds subtotal rows grouped by these dimensions only (the others null), e.g. a
    /// row per stage beside the rows per stage and employee.
    #[serde(default)]
    pub subtotals: Vec<String>,
    /// Rows each row expands into: the same measures by more dimensions.
    #[serde(default)]
    pub children: Vec<ChildSpec>,
    /// The block's own period instead of the run's: `as_of_month`, the calendar month of
    /// `as_of` (comparisons with `shift` then move from that month).
    #[serde(default)]
    pub period: Option<BlockPeriod>,
    /// Turns the block's measures into rows, one per item (a funnel's steps, metrics).
    #[serde(default)]
    pub unpivot: Option<UnpivotSpec>,
    /// A dimension whose values become columns on pages and in workbooks (one per week,
    /// say); JSON keeps one row per value.
    #[serde(default)]
    pub pivot: Option<String>,
    /// Values looked up per row in a table by a range: the row of `from` with the highest
    /// `at_most` not above the row's `key` (a bonus tier reached by a won count).
    #[serde(default)]
    pub lookups: Vec<LookupSpec>,
    /// Output column names, each optionally followed by `asc`/`desc`.
    #[serde(default)]
    pub sort: Vec<String>,
    /// Maximum rows: a number or `$setting`.
    #[serde(default)]
    pub limit: Option<Limit>,
    /// A rendering hint for charts.
    #[serde(default)]
    pub chart: Option<ChartSpec>,
    /// For a one-row block: the same block over another period as well (KPI cards show
    /// the change).
    #[serde(default)]
    pub compare: Option<Shift>,
}

/// A level of expansion of a block's rows (department → employees).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildSpec {
    /// Stable id: the key of these rows under their parent row in JSON.
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    /// The dimensions added to the block's.
    #[serde(deserialize_with = "dimensions")]
    pub by: NamedExprs,
}

/// A block period other than the run's.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockPeriod {
    AsOfMonth,
}

/// Rows from measures: for each item of `rows`, a row with `name` = the item and, per
/// output column, the measure its pattern names (`{}` = the item).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnpivotSpec {
    /// The column that holds the item's name (`metric`, `step`).
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    pub rows: Vec<String>,
    /// Output column → measure name pattern, e.g. `previous: "{}_previous"`.
    pub columns: IndexMap<String, String>,
    /// Output column → its human label (`current: Текущий месяц`).
    #[serde(default)]
    pub labels: IndexMap<String, String>,
}

/// A range lookup of a block's rows in a table, model or table setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// A table, a model or `$setting`.
    pub from: String,
    /// A measure or dimension of the block.
    pub key: String,
    /// Their column compared with the key: the match is the highest value ≤ key.
    pub at_most: String,
    /// Their columns (or expressions) brought in as block measures, by name.
    #[serde(deserialize_with = "columns")]
    pub take: NamedExprs,
}

/// A row limit: fixed, or taken from a setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    Fixed(u64),
    Setting(String),
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive number or `$setting`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
                Ok(Limit::Fixed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
                match v.strip_prefix('$') {
                    Some(name) => Ok(Limit::Setting(name.to_string())),
                    None => Err(E::custom(format!(
                        "limit `{v}`: expected a positive number or `$setting`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A typed, bounded setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    #[serde(rename = "type")]
    pub ty: Option<SettingType>,
    #[serde(default)]
    pub default: Option<serde_yaml::Value>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The allowed values of an `enum` setting.
    #[serde(default)]
    pub values: Vec<String>,
    /// `map` settings: the type of keys (default text) and of values.
    #[serde(default)]
    pub key: Option<SettingType>,
    #[serde(default)]
    pub value: Option<SettingType>,
    /// `list` settings: the type of items.
    #[serde(default)]
    pub item: Option<SettingType>,
    /// `table` settings: column name → type, in order.
    #[serde(default)]
    pub columns: IndexMap<String, SettingType>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// What a measure shows for a group with no rows in its model.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Empty {
    Zero,
    Null,
}

/// The dictionary a dimension takes every value of: `column` of table or model `from`,
/// the rows `where` keeps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllValues {
    pub from: String,
    pub column: String,
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
}

/// A named column, dimension or measure as the compiler reads it: an expression with
/// presentation details. Files are read through the kind's own shape ([`ColumnSpec`],
/// [`ModelMeasureSpec`], [`DimensionSpec`], [`MeasureSpec`], [`ListColumnSpec`]), which
/// refuses the keys that mean nothing there; the keys a kind lacks are at their defaults.
#[derive(Debug, Clone, Default)]
pub struct ExprSpec {
    /// SQL expression; absent means "the column or measure of the same name".
    pub expr: Option<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub ty: Option<ValueType>,
    /// Value for an empty group (default: 0 for `count` and `sum`, else null).
    pub empty: Option<Empty>,
    /// Makes a dimension a time dimension: the timestamp (or date) column or expression
    /// whose period is the group. Rows outside the run's period drop out, and every
    /// period of the range is present in the result.
    pub time: Option<TimeSpec>,
    /// The period length of a time dimension: day, week, month, quarter, year or
    /// `$parameter` (default month).
    pub grain: Option<String>,
    /// Computes a measure over another period of the calendar: `previous_year` (the same
    /// dates a year earlier) or `previous_period` (as many days just before).
    pub shift: Option<Shift>,
    /// A block measure computed but not shown: it still brings its model's groups into
    /// the block (e.g. every active employee, even one without activities).
    pub hidden: bool,
    /// Dimensions: every value of a dictionary is a row, zeros included (every deal stage,
    /// even one no deal is in).
    pub all_values: Option<AllValues>,
    /// Model columns: redefines a column of the source or a join under its own name
    /// (inside the expression the name still means the original value).
    pub replace: bool,
    /// Block measures: what the totals row shows — the measure over all rows (default),
    /// the `sum` of the rows' values (a bonus), or `none`.
    pub total: Option<TotalKind>,
    /// Which way is good news: `higher` (default) or `lower` (forgotten deals, lost
    /// deals, what remains of a plan). Colours the change arrows of KPI cards.
    pub better: Option<Better>,
}

/// One kind of named expression as a file writes it.
pub trait ExprKind: Default + Into<ExprSpec> {
    /// The short form `name: expression`.
    fn of_expr(expr: String) -> Self;
}

/// Writes one kind of named expression: a struct with the keys every kind has (`expr`,
/// `label`, `description`, `type`) and its own, refusing any other key, and its
/// conversion to [`ExprSpec`].
macro_rules! expr_kind {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default)]
            pub expr: Option<String>,
            #[serde(default)]
            pub label: Option<String>,
            #[serde(default)]
            pub description: Option<String>,
            #[serde(default, rename = "type")]
            pub ty: Option<ValueType>,
            $(
                #[serde(default)]
                pub $field: $ty,
            )*
        }

        impl ExprKind for $name {
            fn of_expr(expr: String) -> $name {
                $name {
                    expr: Some(expr),
                    ..$name::default()
                }
            }
        }

        impl From<$name> for ExprSpec {
            fn from(s: $name) -> ExprSpec {
                ExprSpec {
                    expr: s.expr,
                    label: s.label,
                    description: s.description,
                    ty: s.ty,
                    $($field: s.$field,)*
                    ..ExprSpec::default()
                }
            }
        }
    };
}

expr_kind! {
    /// A row-level column: a model's `columns` and `group_by`, a join's or a lookup's
    /// `take`. `replace` redefines a column of the source under its own name.
    ColumnSpec { replace: bool }
}

expr_kind! {
    /// A model's measure: `empty` and `better` travel to the blocks that show it.
    ModelMeasureSpec { empty: Option<Empty>, better: Option<Better> }
}

expr_kind! {
    /// A block's dimension (`by`, a child level's `by`).
    DimensionSpec {
        time: Option<TimeSpec>,
        grain: Option<String>,
        hidden: bool,
        all_values: Option<AllValues>,
    }
}

expr_kind! {
    /// A table block's measure.
    MeasureSpec {
        empty: Option<Empty>,
        shift: Option<Shift>,
        hidden: bool,
        total: Option<TotalKind>,
        better: Option<Better>,
    }
}

expr_kind! {
    /// A list block's column.
    ListColumnSpec { hidden: bool, better: Option<Better> }
}

/// Where each key of a named expression belongs, for the error on a key given where it
/// means nothing.
pub const KEY_HOMES: &[(&str, &str)] = &[
    ("replace", "model columns"),
    ("empty", "measures (a model's or a block's)"),
    ("better", "measures and list columns"),
    ("time", "block dimensions (`by`)"),
    ("grain", "block dimensions (`by`), with `time`"),
    ("all_values", "block dimensions (`by`)"),
    (
        "hidden",
        "block dimensions, block measures and list columns",
    ),
    ("shift", "block measures"),
    ("total", "block measures"),
];

/// Which direction of change is good.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// How a measure appears in the totals row.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TotalKind {
    Sum,
    None,
}

/// The time of a time dimension: one expression for every model, or one per model
/// (`{deals: closed_at, activities: created_at}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TimeSpec {
    One(String),
    PerModel(IndexMap<String, String>),
}

impl TimeSpec {
    /// The expression for `model`, if one is given for it.
    pub fn for_model(&self, model: &str) -> Option<&str> {
        match self {
            TimeSpec::One(t) => Some(t),
            TimeSpec::PerModel(m) => m.get(model).map(String::as_str),
        }
    }
}

/// An ordered list of named expressions. Accepted forms:
/// a mapping `name: expr` / `name: {expr: …, label: …}`, or a list whose items are
/// `name` (meaning `name: name`) or single-entry mappings.
#[derive(Debug, Clone, Default)]
pub struct NamedExprs(pub Vec<(String, ExprSpec)>);

impl NamedExprs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &(String, ExprSpec)> {
        self.0.iter()
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
    /// The spec named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&ExprSpec> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// An entry's value: a bare expression (string, number or bool) or a full spec of kind
/// `S`.
struct ExprSpecValue<S>(S);

impl<'de, S: Deserialize<'de> + ExprKind> Deserialize<'de> for ExprSpecValue<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de> + ExprKind> Visitor<'de> for V<S> {
            type Value = ExprSpecValue<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an SQL expression or a mapping with `expr`, `label`, `type`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExprSpecValue(S::of_expr(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.visit_str(if v { "true" } else { "false" })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ExprSpecValue(S::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                S::deserialize(de::value::MapAccessDeserializer::new(map)).map(ExprSpecValue)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A list item: `name` or `{name: spec}`.
struct ListItem<S>(String, S);

impl<'de, S: Deserialize<'de> + ExprKind> Deserialize<'de> for ListItem<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de> + ExprKind> Visitor<'de> for V<S> {
            type Value = ListItem<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a single `name: expression` entry")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ListItem(v.to_string(), S::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some((name, ExprSpecValue(spec))) =
                    map.next_entry::<String, ExprSpecValue<S>>()?
                else {
                    return Err(de::Error::custom(
                        "empty entry: expected `name: expression`",
                    ));
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a list item must hold exactly one `name: expression` entry",
                    ));
                }
                Ok(ListItem(name, spec))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Named expressions of kind `S`, read in either accepted form.
struct NamedOf<S>(Vec<(String, S)>);

impl<'de, S: Deserialize<'de> + ExprKind> Deserialize<'de> for NamedOf<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de> + ExprKind> Visitor<'de> for V<S> {
            type Value = NamedOf<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to expressions, or a list of names")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(NamedOf(vec![]))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((name, ExprSpecValue(spec))) =
                    map.next_entry::<String, ExprSpecValue<S>>()?
                {
                    out.push((name, spec));
                }
                Ok(NamedOf(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(ListItem(name, spec)) = seq.next_element()? {
                    out.push((name, spec));
                }
                Ok(NamedOf(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Reads named expressions of kind `S` into the compiler's form.
fn named<'de, S, D>(d: D) -> Result<NamedExprs, D::Error>
where
    S: Deserialize<'de> + ExprKind,
    D: Deserializer<'de>,
{
    let NamedOf(items) = NamedOf::<S>::deserialize(d)?;
    Ok(NamedExprs(
        items.into_iter().map(|(n, s)| (n, s.into())).collect(),
    ))
}

fn columns<'de, D: Deserializer<'de>>(d: D) -> Result<NamedExprs, D::Error> {
    named::<ColumnSpec, D>(d)
}

fn group_columns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NamedExprs>, D::Error> {
    named::<ColumnSpec, D>(d).map(Some)
}

fn model_measures<'de, D: Deserializer<'de>>(d: D) -> Result<NamedExprs, D::Error> {
    named::<ModelMeasureSpec, D>(d)
}

fn dimensions<'de, D: Deserializer<'de>>(d: D) -> Result<NamedExprs, D::Error> {
    named::<DimensionSpec, D>(d)
}

fn block_measures<'de, D: Deserializer<'de>>(d: D) -> Result<NamedExprs, D::Error> {
    named::<MeasureSpec, D>(d)
}

fn list_columns<'de, D: Deserializer<'de>>(d: D) -> Result<NamedExprs, D::Error> {
    named::<ListColumnSpec, D>(d)
}
