//! One cell as a typed value, shared by every renderer: numbers rounded to the report
//! contract (ratios, averages, money to 2 decimals in output only), dates and timestamps
//! in the client's time zone.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit};
use chrono_tz::Tz;
use svodka_results::ValueType;

use crate::RenderError;

/// A cell ready to present.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    /// Already rounded to 2 decimals.
    Number(f64),
    Text(String),
    Bool(bool),
    Date(chrono::NaiveDate),
    Timestamp(chrono::DateTime<Tz>),
}

/// Rounds half away from zero to 2 decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A column converted to cells.
pub fn cells(
    array: &ArrayRef,
    ty: ValueType,
    tz: Tz,
    block: &str,
    column: &str,
) -> Result<Vec<Cell>, RenderError> {
    let bad = || RenderError::Unrepresentable {
        block: block.to_string(),
        column: column.to_string(),
        data_type: array.data_type().to_string(),
        value_type: ty.name(),
    };
    let n = array.len();
    if array.data_type() == &DataType::Null {
        return Ok(vec![Cell::Null; n]);
    }
    let out = match ty {
        ValueType::Id | ValueType::Int if array.data_type().is_integer() => {
            let a = cast(array, &DataType::Int64).map_err(|_| bad())?;
            let a = a.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Int(a.value(i))
                    }
                })
                .collect()
        }
        t if t.is_numeric() => {
            let a = cast(array, &DataType::Float64).map_err(|_| bad())?;
            let a = a.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) || !a.value(i).is_finite() {
                        Cell::Null
                    } else if matches!(t, ValueType::Id | ValueType::Int) {
                        Cell::Int(a.value(i).round() as i64)
                    } else {
                        Cell::Number(round2(a.value(i)))
                    }
                })
                .collect()
        }
        ValueType::Bool => {
            let a = array.as_boolean_opt().ok_or_else(bad)?;
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Bool(a.value(i))
                    }
                })
                .collect()
        }
        ValueType::Date => {
            let a = cast(array, &DataType::Date32).map_err(|_| bad())?;
            let a = a.as_primitive::<Date32Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Date(svodka_schema::values::date_from_days(a.value(i)))
                    }
                })
                .collect()
        }
        ValueType::Timestamp => {
            let a = cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
            .map_err(|_| bad())?;
            let a = a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        return Cell::Null;
                    }
                    let micros = a.value(i);
                    match chrono::DateTime::from_timestamp_micros(micros) {
                        Some(t) => Cell::Timestamp(t.with_timezone(&tz)),
                        None => Cell::Null,
                    }
                })
                .collect()
        }
        _ => {
            let a = cast(array, &DataType::Utf8).map_err(|_| bad())?;
            let a = a.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Text(a.value(i).to_string())
                    }
                })
                .collect()
        }
    };
    Ok(out)
}
