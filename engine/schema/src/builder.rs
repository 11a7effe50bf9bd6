//! Building canonical columns and tables from typed values: the one place that knows
//! which Arrow builder holds which column type. Connectors parse their own formats into
//! `Value`s and hand them here.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use crate::{ColumnType, MONEY_PRECISION, MONEY_SCALE, Table};

/// One value of a canonical column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    /// Ids and counts.
    Int(i64),
    Float(f64),
    /// Hundredths.
    Money(i128),
    Text(&'a str),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

enum Inner {
    Int(Int64Builder),
    Float(Float64Builder),
    Money(Decimal128Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// Accumulates one column of a type; refuses a value of another type or a null in a
/// required column.
pub struct ColumnBuilder {
    ty: ColumnType,
    nullable: bool,
    inner: Inner,
}

impl ColumnBuilder {
    pub fn new(ty: ColumnType, nullable: bool) -> Self {
        let inner = match ty {
            ColumnType::Id | ColumnType::Int => Inner::Int(Int64Builder::new()),
            ColumnType::Float => Inner::Float(Float64Builder::new()),
            ColumnType::Money => Inner::Money(
                Decimal128Builder::new()
                    .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                    .expect("valid decimal type"),
            ),
            ColumnType::Text => Inner::Text(StringBuilder::new()),
            ColumnType::Bool => Inner::Bool(BooleanBuilder::new()),
            ColumnType::Date => Inner::Date(Date32Builder::new()),
            ColumnType::Timestamp => {
                Inner::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
        };
        ColumnBuilder {
            ty,
            nullable,
            inner,
        }
    }

    pub fn ty(&self) -> ColumnType {
        self.ty
    }

    pub fn nullable(&self) -> bool {
        self.nullable
    }

    /// Whether `value` fits this column: its type, and not null where required.
    pub fn check(&self, value: Value) -> Result<(), String> {
        let fits = match (&self.inner, value) {
            (_, Value::Null) => self.nullable,
            (Inner::Int(_), Value::Int(_))
            | (Inner::Float(_), Value::Float(_) | Value::Int(_))
            | (Inner::Money(_), Value::Money(_))
            | (Inner::Text(_), Value::Text(_))
            | (Inner::Bool(_), Value::Bool(_))
            | (Inner::Date(_), Value::Date(_))
            | (Inner::Timestamp(_), Value::Timestamp(_)) => true,
            _ => false,
        };
        match (fits, value) {
            (true, _) => Ok(()),
            (false, Value::Null) => Err("empty value in a required column".into()),
            (false, v) => Err(format!("{v:?} is not a value of type {:?}", self.ty)),
        }
    }

    pub fn append(&mut self, value: Value) -> Result<(), String> {
        self.check(value)?;
        match (&mut self.inner, value) {
            (Inner::Int(b), Value::Null) => b.append_null(),
            (Inner::Float(b), Value::Null) => b.append_null(),
            (Inner::Money(b), Value::Null) => b.append_null(),
            (Inner::Text(b), Value::Null) => b.append_null(),
            (Inner::Bool(b), Value::Null) => b.append_null(),
            (Inner::Date(b), Value::Null) => b.append_null(),
            (Inner::Timestamp(b), Value::Null) => b.append_null(),
            (Inner::Int(b), Value::Int(v)) => b.append_value(v),
            (Inner::Float(b), Value::Float(v)) => b.append_value(v),
            (Inner::Float(b), Value::Int(v)) => b.append_value(v as f64),
            (Inner::Money(b), Value::Money(v)) => b.append_value(v),
            (Inner::Text(b), Value::Text(v)) => b.append_value(v),
            (Inner::Bool(b), Value::Bool(v)) => b.append_value(v),
            (Inner::Date(b), Value::Date(v)) => b.append_value(v),
            (Inner::Timestamp(b), Value::Timestamp(v)) => b.append_value(v),
            _ => unreachable!("checked above"),
        }
        Ok(())
    }

    /// Values appended so far.
    pub fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        match &self.inner {
            Inner::Int(b) => b.len(),
            Inner::Float(b) => b.len(),
            Inner::Money(b) => b.len(),
            Inner::Text(b) => b.len(),
            Inner::Bool(b) => b.len(),
            Inner::Date(b) => b.len(),
            Inner::Timestamp(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(&mut self) -> ArrayRef {
        match &mut self.inner {
            Inner::Int(b) => Arc::new(b.finish()),
            Inner::Float(b) => Arc::new(b.finish()),
            Inner::Money(b) => Arc::new(b.finish()),
            Inner::Text(b) => Arc::new(b.finish()),
            Inner::Bool(b) => Arc::new(b.finish()),
            Inner::Date(b) => Arc::new(b.finish()),
            Inner::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of one canonical table, in its column order.
pub struct TableBuilder {
    table: &'static Table,
    columns: Vec<ColumnBuilder>,
}

impl TableBuilder {
    pub fn new(table: &'static Table) -> Self {
        TableBuilder {
            table,
            columns: table
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.ty, c.nullable))
                .collect(),
        }
    }

    /// Appends a row, one value per column in the table's order, or nothing: a bad value
    /// is refused naming its column, before any column is touched.
    pub fn push(&mut self, row: &[Value]) -> Result<(), String> {
        if row.len() != self.columns.len() {
            return Err(format!(
                "table `{}`: {} values for {} columns",
                self.table.name,
                row.len(),
                self.columns.len()
            ));
        }
        for ((b, v), c) in self.columns.iter().zip(row).zip(self.table.columns) {
            b.check(*v)
                .map_err(|e| format!("table `{}`, column `{}`: {e}", self.table.name, c.name))?;
        }
        for (b, v) in self.columns.iter_mut().zip(row) {
            b.append(*v)?;
        }
        Ok(())
    }

    /// Appends a row given by column name, in any order: a column not named is null
    /// (refused when it is required); a name the table lacks, or one given twice, is
    /// refused. Names in the table's order are found without a search.
    pub fn push_named(&mut self, values: &[(&str, Value)]) -> Result<(), String> {
        let columns = self.table.columns;
        let mut row = vec![Value::Null; columns.len()];
        let mut given = vec![false; columns.len()];
        let mut next = 0;
        for (name, value) in values {
            let i = match columns.get(next) {
                Some(c) if c.name == *name => next,
                _ => columns
                    .iter()
                    .position(|c| c.name == *name)
                    .ok_or_else(|| format!("table `{}` has no column `{name}`", self.table.name))?,
            };
            if std::mem::replace(&mut given[i], true) {
                return Err(format!(
                    "table `{}`: column `{name}` given twice",
                    self.table.name
                ));
            }
            row[i] = *value;
            next = i + 1;
        }
        self.push(&row)
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        match self.columns.first() {
            Some(c) => c.len(),
            None => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.table.schema(), arrays)
            .expect("builders follow the table's own schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_into_a_canonical_batch() {
        let t = crate::table("pipelines").unwrap();
        let mut b = TableBuilder::new(t);
        b.push(&[Value::Int(0), Value::Text("Общая"), Value::Int(10)])
            .unwrap();
        let err = b
            .push(&[Value::Int(1), Value::Null, Value::Int(20)])
            .unwrap_err();
        assert_eq!(
            err,
            "table `pipelines`, column `name`: empty value in a required column"
        );
        let err = b.push(&[Value::Text("x")]).unwrap_err();
        assert!(err.contains("1 values for 3 columns"), "{err}");
        // By name, in any order; what is not named is null.
        b.push_named(&[
            ("sort", Value::Int(20)),
            ("name", Value::Text("Сервис")),
            ("id", Value::Int(1)),
        ])
        .unwrap();
        let err = b
            .push_named(&[("id", Value::Int(2)), ("title", Value::Text("x"))])
            .unwrap_err();
        assert_eq!(err, "table `pipelines` has no column `title`");
        let err = b
            .push_named(&[
                ("id", Value::Int(2)),
                ("name", Value::Text("a")),
                ("id", Value::Int(3)),
            ])
            .unwrap_err();
        assert_eq!(err, "table `pipelines`: column `id` given twice");
        let err = b
            .push_named(&[("id", Value::Int(2)), ("sort", Value::Int(1))])
            .unwrap_err();
        assert_eq!(
            err,
            "table `pipelines`, column `name`: empty value in a required column"
        );
        // The refused rows left nothing behind.
        assert_eq!(b.len(), 2);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        crate::check_table("pipelines", &batch.schema(), &[batch]).unwrap();
        let mut money = ColumnBuilder::new(ColumnType::Money, true);
        assert!(
            money
                .append(Value::Text("1"))
                .unwrap_err()
                .contains("not a value of type Money")
        );
    }
}
