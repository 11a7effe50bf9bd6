//! The canonical CRM tables (`schema.md`) as Arrow schemas, defined once, and the check
//! that every table a connector delivers passes before the engine sees it.

pub mod builder;
pub mod derived;
pub mod values;

pub use builder::{ColumnBuilder, TableBuilder, Value};
pub use derived::{derive, derived_column, has_derived};

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Money is exact: Decimal128 with this precision and scale, everywhere.
pub const MONEY_PRECISION: u8 = 18;
/// Two decimal places: kopecks.
pub const MONEY_SCALE: i8 = 2;

/// The logical type of a canonical column; each maps to exactly one Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Int64 identifier from the source system.
    Id,
    /// Int64 count or ordinal.
    Int,
    /// Float64 quantity.
    Float,
    /// Decimal128(18, 2).
    Money,
    /// Utf8.
    Text,
    /// Boolean.
    Bool,
    /// Date32 (calendar day, no time zone).
    Date,
    /// Timestamp(Microsecond, "UTC").
    Timestamp,
}

impl ColumnType {
    /// The Arrow type this logical type is stored as.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Id | ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
            ColumnType::Text => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => timestamp_type(),
        }
    }
}

/// Timestamp(Microsecond, "UTC"): the one timestamp type of the canonical tables.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// One canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The columns that name one row (empty: none do). Reports rely on it: a join on a
    /// table's key brings at most one row, so a join whose columns a run does not read
    /// can be left out.
    pub key: &'static [&'static str],
    /// Its free text: long, mostly different in every row of a table that grows with the
    /// business (a deal's title, a contact's name), read to be shown rather than compared.
    pub free_text: &'static [&'static str],
}

impl Table {
    /// The Arrow schema of this table.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, c.ty.arrow_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The column of this name, if the table has one.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn req(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn opt(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

use ColumnType::{Bool, Date, Float, Id, Int, Money, Text, Timestamp as Ts};

/// The CRM entities whose pages a report links to: a data set's `links:` names them, a
/// row's `{entity}_id` and a model's `url` (`$link_{entity}`) use them.
pub const LINKED_ENTITIES: &[&str] = &["deal", "lead", "company", "contact"];

/// Why `template` cannot be the page address of `entity`, if it cannot: the entity must
/// have pages, the address must be a web one (or start at `{portal}`) and say where the
/// id goes. The one check of a data set's `links` and of a plugin's.
pub fn link_problem(entity: &str, template: &str) -> Option<String> {
    if !LINKED_ENTITIES.contains(&entity) {
        return Some(format!(
            "not an entity with pages; links name {}",
            LINKED_ENTITIES.join(", ")
        ));
    }
    let lower = template.to_ascii_lowercase();
    if !["{portal}", "https://", "http://"]
        .iter()
        .any(|start| lower.starts_with(start))
    {
        return Some(format!(
            "{template:?} is not a web address: start it with `{{portal}}` or https://"
        ));
    }
    if !template.contains("{id}") {
        return Some(format!(
            "{template:?} has no `{{id}}`: write where the id goes, e.g. `{{portal}}/crm/{entity}/details/{{id}}/`"
        ));
    }
    None
}

/// The tables a CRM holds (Bitrix24's), as opposed to plans and 1C's.
pub const CRM_TABLES: &[&str] = &[
    "departments",
    "users",
    "pipelines",
    "stages",
    "sources",
    "companies",
    "contacts",
    "leads",
    "deals",
    "activities",
    "stage_history",
];

/// Every canonical table, in dependency order (referenced tables first).
pub const TABLES: &[Table] = &[
    Table {
        name: "departments",
        key: &["id"],
        free_text: &[],
        columns: &[req("id", Id), req("name", Text), opt("parent_id", Id)],
    },
    Table {
        name: "users",
        key: &["id"],
        free_text: &[],
        columns: &[
            req("id", Id),
            req("name", Text),
            opt("department_id", Id),
            req("active", Bool),
            opt("position", Text),
        ],
    },
    Table {
        name: "pipelines",
        key: &["id"],
        free_text: &[],
        columns: &[req("id", Id), req("name", Text), req("sort", Int)],
    },
    Table {
        name: "stages",
        key: &["entity", "pipeline_id", "stage_id"],
        free_text: &[],
        columns: &[
            req("entity", Text),
            opt("pipeline_id", Id),
            req("stage_id", Text),
            req("name", Text),
            req("sort", Int),
            req("semantic", Text),
        ],
    },
    Table {
        name: "sources",
        key: &["id"],
        free_text: &[],
        columns: &[req("id", Text), req("name", Text)],
    },
    Table {
        name: "companies",
        key: &["id"],
        free_text: &["title"],
        columns: &[
            req("id", Id),
            req("title", Text),
            opt("inn", Text),
            opt("city", Text),
            opt("country", Text),
            req("created_at", Ts),
        ],
    },
    Table {
        name: "contacts",
        key: &["id"],
        free_text: &["name"],
        columns: &[
            req("id", Id),
            req("name", Text),
            opt("company_id", Id),
            req("created_at", Ts),
        ],
    },
    Table {
        name: "leads",
        key: &["id"],
        free_text: &["title"],
        columns: &[
            req("id", Id),
            req("title", Text),
            req("status_id", Text),
            req("semantic", Text),
            opt("source_id", Text),
            req("assigned_id", Id),
            req("created_at", Ts),
            opt("closed_at", Ts),
            req("modified_at", Ts),
            opt("amount", Money),
            opt("currency", Text),
            opt("company_id", Id),
            opt("contact_id", Id),
            opt("city", Text),
            opt("country", Text),
            opt("utm_source", Text),
            opt("utm_medium", Text),
            opt("utm_campaign", Text),
            opt("utm_content", Text),
            opt("utm_term", Text),
        ],
    },
    Table {
        name: "deals",
        key: &["id"],
        free_text: &["title"],
        columns: &[
            req("id", Id),
            req("title", Text),
            req("pipeline_id", Id),
            req("stage_id", Text),
            req("semantic", Text),
            opt("amount", Money),
            opt("currency", Text),
            req("assigned_id", Id),
            req("created_at", Ts),
            opt("closed_at", Ts),
            req("modified_at", Ts),
            opt("company_id", Id),
            opt("contact_id", Id),
            opt("lead_id", Id),
            opt("source_id", Text),
            opt("utm_source", Text),
            opt("utm_medium", Text),
            opt("utm_campaign", Text),
            opt("utm_content", Text),
            opt("utm_term", Text),
        ],
    },
    Table {
        name: "activities",
        key: &["id"],
        free_text: &[],
        columns: &[
            req("id", Id),
            req("kind", Text),
            opt("direction", Text),
            req("owner_type", Text),
            req("owner_id", Id),
            req("responsible_id", Id),
            req("created_at", Ts),
            opt("deadline", Ts),
            req("completed", Bool),
            opt("completed_at", Ts),
            opt("duration_s", Int),
        ],
    },
    Table {
        name: "stage_history",
        key: &[],
        free_text: &[],
        columns: &[
            req("entity", Text),
            req("entity_id", Id),
            opt("pipeline_id", Id),
            req("stage_id", Text),
            req("semantic", Text),
            req("changed_at", Ts),
            req("kind", Text),
        ],
    },
    Table {
        name: "plans",
        key: &[],
        free_text: &[],
        columns: &[
            req("month", Date),
            opt("department_id", Id),
            opt("employee_id", Id),
            opt("company_id", Id),
            opt("pipeline_id", Id),
            opt("plan_amount", Money),
            opt("plan_count", Int),
        ],
    },
    Table {
        name: "bonus_tiers",
        key: &["min_won_count"],
        free_text: &[],
        columns: &[req("min_won_count", Int), req("bonus", Money)],
    },
    Table {
        name: "onec_counterparties",
        key: &["id"],
        free_text: &["name"],
        columns: &[
            req("id", Text),
            req("name", Text),
            opt("inn", Text),
            opt("kpp", Text),
        ],
    },
    Table {
        name: "onec_sales",
        key: &["id"],
        free_text: &[],
        columns: &[
            req("id", Text),
            req("date", Ts),
            req("counterparty_id", Text),
            opt("contract", Text),
            req("amount", Money),
            opt("quantity", Float),
            opt("volume", Float),
            req("posted", Bool),
        ],
    },
];

/// The canonical table of this name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// A delivered table that does not fit the canonical schema.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// The table name is not one of the canonical tables.
    #[error("unknown table `{table}`; canonical tables are: {known}")]
    UnknownTable { table: String, known: String },
    /// A required (non-nullable) column is absent.
    #[error("table `{table}`: required column `{column}` is missing")]
    MissingColumn { table: String, column: String },
    /// A column is present with an Arrow type other than the canonical one.
    #[error("table `{table}`, column `{column}`: expected type {expected}, found {found}")]
    WrongType {
        table: String,
        column: String,
        expected: DataType,
        found: DataType,
    },
    /// A required column carries nulls.
    #[error("table `{table}`, column `{column}`: {nulls} null value(s) in a required column")]
    NullInRequired {
        table: String,
        column: String,
        nulls: usize,
    },
    /// Two rows carry the same key (rows counted from 1, in delivery order).
    #[error("table `{table}`: rows {first} and {second} have the same key ({key}) = {value}")]
    DuplicateKey {
        table: String,
        key: String,
        value: String,
        first: usize,
        second: usize,
    },
}

/// Checks a delivered table — schema, then every batch — when `table_name` is canonical;
/// other tables (a custom model's) pass as they are.
pub fn check_table(
    table_name: &str,
    schema: &Schema,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<(), SchemaError> {
    if table(table_name).is_none() {
        return Ok(());
    }
    check_schema(table_name, schema)?;
    batches.iter().try_for_each(|b| check_batch(table_name, b))
}

/// Checks that no two rows of canonical table `table_name` share its key (a deal listed
/// twice would be counted twice). Other tables, and tables without a key, pass.
pub fn check_keys(
    table_name: &str,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<(), SchemaError> {
    use arrow::row::{RowConverter, SortField};
    let Some(table) = table(table_name).filter(|t| !t.key.is_empty()) else {
        return Ok(());
    };
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(());
    };
    let Ok(at) = table
        .key
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<Result<Vec<usize>, _>>()
    else {
        return Ok(()); // a missing key column is check_schema's to report
    };
    let fields = at
        .iter()
        .map(|&i| SortField::new(schema.field(i).data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).expect("canonical key types are comparable");
    let mut seen: std::collections::HashMap<Box<[u8]>, usize> = Default::default();
    let mut row = 0;
    for batch in batches {
        let columns: Vec<_> = at.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = converter
            .convert_columns(&columns)
            .expect("the key columns have the types given to the converter");
        for (r, key) in rows.iter().enumerate() {
            row += 1;
            if let Some(first) = seen.insert(key.as_ref().into(), row) {
                let value = columns
                    .iter()
                    .map(|c| {
                        arrow::util::display::array_value_to_string(c, r)
                            .unwrap_or_else(|_| "?".into())
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SchemaError::DuplicateKey {
                    table: table.name.into(),
                    key: table.key.join(", "),
                    value,
                    first,
                    second: row,
                });
            }
        }
    }
    Ok(())
}

/// Checks a delivered schema against the canonical one: every required column present,
/// every canonical column that is present of the canonical type. Extra columns pass (custom
/// models may use them); missing nullable columns pass (the loader fills them with nulls).
pub fn check_schema(table_name: &str, delivered: &Schema) -> Result<(), SchemaError> {
    let table = table(table_name).ok_or_else(|| SchemaError::UnknownTable {
        table: table_name.to_string(),
        known: TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
    })?;
    for column in table.columns {
        match delivered.field_with_name(column.name) {
            Err(_) if column.nullable => {}
            Err(_) => {
                return Err(SchemaError::MissingColumn {
                    table: table.name.into(),
                    column: column.name.into(),
                });
            }
            Ok(field) => {
                let expected = column.ty.arrow_type();
                if !same_type(field.data_type(), &expected) {
                    return Err(SchemaError::WrongType {
                        table: table.name.into(),
                        column: column.name.into(),
                        expected,
                        found: field.data_type().clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks a whole batch: its schema, then that required columns hold no nulls.
pub fn check_batch(
    table_name: &str,
    batch: &arrow::record_batch::RecordBatch,
) -> Result<(), SchemaError> {
    check_schema(table_name, &batch.schema())?;
    let table = table(table_name).expect("checked by check_schema");
    for column in table.columns.iter().filter(|c| !c.nullable) {
        let array = batch
            .column_by_name(column.name)
            .expect("checked by check_schema");
        if array.null_count() > 0 {
            return Err(SchemaError::NullInRequired {
                table: table.name.into(),
                column: column.name.into(),
                nulls: array.null_count(),
            });
        }
    }
    Ok(())
}

/// True when a delivered schema fits the canonical table as it is: it passes
/// `check_schema` and lacks no canonical column, so `complete` has nothing to add. Other
/// tables always fit.
pub fn fits_whole(table_name: &str, delivered: &Schema) -> bool {
    match table(table_name) {
        None => true,
        Some(t) => {
            check_schema(table_name, delivered).is_ok()
                && t.columns
                    .iter()
                    .all(|c| delivered.field_with_name(c.name).is_ok())
        }
    }
}

/// A checked canonical table with the nullable columns it lacks added as nulls: canonical
/// columns in canonical order, extra columns (for custom models) after them. Other tables
/// come back as they are.
pub fn complete(
    table_name: &str,
    schema: SchemaRef,
    batches: Vec<arrow::record_batch::RecordBatch>,
) -> Result<(SchemaRef, Vec<arrow::record_batch::RecordBatch>), arrow::error::ArrowError> {
    let Some(t) = table(table_name) else {
        return Ok((schema, batches));
    };
    if fits_whole(table_name, &schema) {
        return Ok((schema, batches));
    }
    let present = |name: &str| schema.index_of(name).ok();
    let mut fields: Vec<Field> = t
        .columns
        .iter()
        .map(|c| match present(c.name) {
            Some(i) => schema.field(i).clone(),
            None => Field::new(c.name, c.ty.arrow_type(), true),
        })
        .collect();
    let extra: Vec<usize> = (0..schema.fields().len())
        .filter(|i| t.column(schema.field(*i).name()).is_none())
        .collect();
    fields.extend(extra.iter().map(|i| schema.field(*i).clone()));
    let out = Arc::new(Schema::new(fields));
    let batches = batches
        .into_iter()
        .map(|b| {
            let mut columns: Vec<arrow::array::ArrayRef> = t
                .columns
                .iter()
                .map(|c| match present(c.name) {
                    Some(i) => b.column(i).clone(),
                    None => arrow::array::new_null_array(&c.ty.arrow_type(), b.num_rows()),
                })
                .collect();
            columns.extend(extra.iter().map(|i| b.column(*i).clone()));
            arrow::record_batch::RecordBatch::try_new(out.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, batches))
}

/// Timestamps compare by unit and by being UTC ("UTC" and "+00:00" are the same zone).
fn same_type(found: &DataType, expected: &DataType) -> bool {
    match (found, expected) {
        (DataType::Timestamp(fu, Some(fz)), DataType::Timestamp(eu, Some(_))) => {
            fu == eu && matches!(fz.as_ref(), "UTC" | "+00:00" | "Z")
        }
        _ => found == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_unique_columns_and_an_arrow_schema() {
        for t in TABLES {
            let schema = t.schema();
            assert_eq!(schema.fields().len(), t.columns.len(), "{}", t.name);
            let mut names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "{}", t.name);
        }
    }

    #[test]
    fn a_key_repeated_across_batches_is_refused_with_both_rows() {
        use arrow::array::{ArrayRef, Int64Array, StringArray};
        let batch = |ids: Vec<i64>, names: Vec<&str>| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ];
            let schema = Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, false),
            ]);
            arrow::record_batch::RecordBatch::try_new(Arc::new(schema), columns).unwrap()
        };
        let first = batch(vec![1, 2, 3], vec!["a", "b", "c"]);
        check_keys("departments", std::slice::from_ref(&first)).unwrap();
        let second = batch(vec![4, 2], vec!["d", "b again"]);
        let err = check_keys("departments", &[first, second]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `departments`: rows 2 and 5 have the same key (id) = 2"
        );
        // A composite key: the same stage of two entities is two rows.
        let stages = |entity: Vec<&str>| {
            let n = entity.len();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(entity)),
                Arc::new(Int64Array::from(vec![1; n])),
                Arc::new(StringArray::from(vec!["NEW"; n])),
            ];
            let schema = Schema::new(vec![
                Field::new("entity", DataType::Utf8, false),
                Field::new("pipeline_id", DataType::Int64, false),
                Field::new("stage_id", DataType::Utf8, false),
            ]);
            arrow::record_batch::RecordBatch::try_new(Arc::new(schema), columns).unwrap()
        };
        check_keys("stages", &[stages(vec!["deal", "lead"])]).unwrap();
        let err = check_keys("stages", &[stages(vec!["deal", "lead", "deal"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `stages`: rows 1 and 3 have the same key (entity, pipeline_id, stage_id) = deal, 1, NEW"
        );
        // Tables without a key, and tables that are not canonical, pass.
        check_keys("custom", &[batch(vec![1, 1], vec!["a", "a"])]).unwrap();
    }

    #[test]
    fn missing_required_column_is_named() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let err = check_schema("departments", &schema).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `departments`: required column `name` is missing"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
        ]);
        let err = check_schema("departments", &schema).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `departments`, column `id`: expected type Int64, found Utf8"
        );
    }

    #[test]
    fn extra_and_missing_nullable_columns_pass() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, true),
        ]);
        check_schema("departments", &schema).unwrap();
    }

    #[test]
    fn unknown_table_is_refused() {
        let err = check_schema("dealz", &Schema::empty()).unwrap_err();
        assert!(matches!(err, SchemaError::UnknownTable { .. }));
    }
}
