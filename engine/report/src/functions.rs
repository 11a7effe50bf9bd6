//! SQL functions the report language adds to DataFusion, bound to the client's time zone:
//! `local_date(ts)`, `days_between(a, b)`, `period_start(grain, ts)`, `iso_week(ts)` and
//! `bucket(x, bounds)` / `bucket_index(x, bounds)`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array};
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use chrono_tz::Tz;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::time::LocalDays;

/// The functions to register in a session for a client in `tz`.
pub fn udfs(tz: Tz) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(LocalDate::new(tz)),
        ScalarUDF::new_from_impl(DaysBetween::new(tz)),
        ScalarUDF::new_from_impl(PeriodStart::new(tz)),
        ScalarUDF::new_from_impl(IsoWeek::new(tz)),
        ScalarUDF::new_from_impl(Bucket::new(false)),
        ScalarUDF::new_from_impl(Bucket::new(true)),
    ]
}

/// What a plan shipped to another process must carry for one of these functions to mean
/// the same there: `"<name>"` for the ones without a time zone, `"<name>@<zone>"` for the
/// others. None for a function that is not the report language's.
pub fn definition(udf: &ScalarUDF) -> Option<String> {
    let inner: &dyn std::any::Any = udf.inner().as_ref();
    let tz = if let Some(f) = inner.downcast_ref::<LocalDate>() {
        Some(f.tz)
    } else if let Some(f) = inner.downcast_ref::<DaysBetween>() {
        Some(f.tz)
    } else if let Some(f) = inner.downcast_ref::<PeriodStart>() {
        Some(f.tz)
    } else if let Some(f) = inner.downcast_ref::<IsoWeek>() {
        Some(f.tz)
    } else if inner.is::<Bucket>() {
        None
    } else {
        return None;
    };
    Some(match tz {
        Some(tz) => format!("{}@{}", udf.name(), tz.name()),
        None => udf.name().to_string(),
    })
}

/// The function a [`definition`] describes; None for a text that is not one.
pub fn from_definition(text: &str) -> Option<ScalarUDF> {
    let (name, zone) = match text.split_once('@') {
        Some((name, zone)) => (name, Some(zone.parse::<Tz>().ok()?)),
        None => (text, None),
    };
    let tz = zone.unwrap_or(Tz::UTC);
    let udf = udfs(tz).into_iter().find(|f| f.name() == name)?;
    // A zone given to a function without one, or none to one that needs it, is no definition.
    (definition(&udf)? == text).then_some(udf)
}

/// `bucket(x, bounds)`: the label of the range of ascending `bounds` that holds `x` —
/// `≤30`, `31–90`, `91–180`, `>180` for bounds [30, 90, 180] — and `bucket_index(x,
/// bounds)`, its position (0, 1, …), for sorting.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bucket {
    index: bool,
    signature: Signature,
}

impl Bucket {
    fn new(index: bool) -> Self {
        Bucket {
            index,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Bucket {
    fn name(&self) -> &str {
        if self.index { "bucket_index" } else { "bucket" }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [x, DataType::List(_)] if x.is_numeric() || x.is_null() => Ok(if self.index {
                DataType::Int64
            } else {
                DataType::Utf8
            }),
            _ => plan_err!(
                "{}(x, bounds) takes a number and a list of numbers (a list setting)",
                self.name()
            ),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bounds: Vec<f64> = match &args.args[1] {
            ColumnarValue::Scalar(datafusion::scalar::ScalarValue::List(list)) => {
                let values = arrow::compute::cast(&list.value(0), &DataType::Float64)?;
                let values = values.as_primitive::<arrow::datatypes::Float64Type>();
                let mut b: Vec<f64> = values.iter().flatten().collect();
                b.sort_by(|x, y| x.total_cmp(y));
                b
            }
            _ => return exec_err!("{}: the bounds must be a constant list", self.name()),
        };
        let fmt = |v: f64| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        };
        let labels: Vec<String> = (0..=bounds.len())
            .map(|k| match k {
                0 => format!(
                    "≤{}",
                    bounds
                        .first()
                        .map(|b| fmt(*b))
                        .unwrap_or_else(|| "∞".into())
                ),
                k if k == bounds.len() => format!(">{}", fmt(bounds[k - 1])),
                k if bounds[k - 1].fract() == 0.0 && bounds[k].fract() == 0.0 => {
                    format!("{}–{}", fmt(bounds[k - 1] + 1.0), fmt(bounds[k]))
                }
                k => format!("({}; {}]", fmt(bounds[k - 1]), fmt(bounds[k])),
            })
            .collect();
        let x = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let x = arrow::compute::cast(&x[0], &DataType::Float64)?;
        let x = x.as_primitive::<arrow::datatypes::Float64Type>();
        let position = |v: f64| bounds.iter().take_while(|b| v > **b).count();
        if self.index {
            let out: Int64Array = x.iter().map(|v| v.map(|v| position(v) as i64)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        } else {
            let out: arrow::array::StringArray = x
                .iter()
                .map(|v| v.map(|v| labels[position(v)].clone()))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
}

/// `period_start(grain, ts)`: the first day of the day/week/month/quarter/year that
/// contains `ts`, in the client's time zone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PeriodStart {
    tz: Tz,
    signature: Signature,
}

impl PeriodStart {
    fn new(tz: Tz) -> Self {
        PeriodStart {
            tz,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PeriodStart {
    fn name(&self) -> &str {
        "period_start"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8, t] => {
                Ok(vec![DataType::Utf8, coerce_day_arg("period_start", t)?])
            }
            _ => plan_err!("period_start takes a grain ('month', …) and a date or timestamp"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let grain = match &args.args[0] {
            ColumnarValue::Scalar(datafusion::scalar::ScalarValue::Utf8(Some(g))) => g.clone(),
            _ => return exec_err!("period_start: the grain must be a constant"),
        };
        let Some(grain) = crate::time::Grain::parse(&grain) else {
            return exec_err!(
                "period_start: unknown grain {grain:?}; use one of {}",
                crate::time::Grain::NAMES.join(", ")
            );
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args[1..])?;
        let mut days = LocalDays::new(self.tz);
        let local = to_local_days(&arrays[0], &mut days)?;
        let out: Date32Array = local
            .iter()
            .map(|d| {
                d.map(|d| {
                    let date = crate::time::date_from_days(d);
                    crate::time::days_since_epoch(grain.start(date))
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `local_date(ts)`: the calendar date of a timestamp in the client's time zone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalDate {
    tz: Tz,
    signature: Signature,
}

impl LocalDate {
    fn new(tz: Tz) -> Self {
        LocalDate {
            tz,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LocalDate {
    fn name(&self) -> &str {
        "local_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] => Ok(vec![coerce_day_arg("local_date", t)?]),
            _ => plan_err!("local_date takes one argument, a timestamp"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut days = LocalDays::new(self.tz);
        Ok(ColumnarValue::Array(Arc::new(to_local_days(
            &arrays[0], &mut days,
        )?)))
    }
}

/// `days_between(a, b)`: whole days from the local date of `a` to the local date of `b`
/// (dates or timestamps); positive when `b` is later.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DaysBetween {
    tz: Tz,
    signature: Signature,
}

impl DaysBetween {
    fn new(tz: Tz) -> Self {
        DaysBetween {
            tz,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DaysBetween {
    fn name(&self) -> &str {
        "days_between"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [a, b] => Ok(vec![
                coerce_day_arg("days_between", a)?,
                coerce_day_arg("days_between", b)?,
            ]),
            _ => plan_err!("days_between takes two arguments, each a date or a timestamp"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut days = LocalDays::new(self.tz);
        let a = to_local_days(&arrays[0], &mut days)?;
        let b = to_local_days(&arrays[1], &mut days)?;
        let out: Int64Array = a
            .iter()
            .zip(b.iter())
            .map(|(a, b)| Some(i64::from(b?) - i64::from(a?)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `iso_week(d)`: the ISO 8601 week of a date or of a timestamp's local date, as text
/// that sorts in time order: `2026-W40` (weeks begin on Monday; the week of 1 January
/// 2027, a Friday, is `2026-W53`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IsoWeek {
    tz: Tz,
    signature: Signature,
}

impl IsoWeek {
    fn new(tz: Tz) -> Self {
        IsoWeek {
            tz,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IsoWeek {
    fn name(&self) -> &str {
        "iso_week"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] => Ok(vec![coerce_day_arg("iso_week", t)?]),
            _ => plan_err!("iso_week takes one argument, a date or a timestamp"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use chrono::Datelike;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut days = LocalDays::new(self.tz);
        let out: arrow::array::StringArray = to_local_days(&arrays[0], &mut days)?
            .iter()
            .map(|d| {
                let week = crate::time::date_from_days(d?).iso_week();
                Some(format!("{}-W{:02}", week.year(), week.week()))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Dates stay dates; any timestamp becomes µs UTC; NULL stays as is.
fn coerce_day_arg(function: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Date32 | DataType::Null => Ok(t.clone()),
        DataType::Date64 => Ok(DataType::Date32),
        DataType::Timestamp(_, _) => Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        other => plan_err!("{function} expects a date or a timestamp, got {other}"),
    }
}

fn to_local_days(array: &ArrayRef, days: &mut LocalDays) -> Result<Date32Array> {
    match array.data_type() {
        DataType::Date32 => Ok(array.as_primitive::<Date32Type>().clone()),
        DataType::Null => Ok(Date32Array::new_null(array.len())),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Ok(array
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|v| v.map(|micros| days.days(micros)))
            .collect()),
        other => exec_err!("expected a date or a timestamp, got {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_names_the_function_and_its_zone_and_gives_it_back() {
        let tz: Tz = "Asia/Vladivostok".parse().unwrap();
        let texts: Vec<String> = udfs(tz).iter().map(|f| definition(f).unwrap()).collect();
        assert_eq!(
            texts,
            [
                "local_date@Asia/Vladivostok",
                "days_between@Asia/Vladivostok",
                "period_start@Asia/Vladivostok",
                "iso_week@Asia/Vladivostok",
                "bucket",
                "bucket_index"
            ]
        );
        for (f, text) in udfs(tz).iter().zip(&texts) {
            let back = from_definition(text).unwrap();
            assert!(&back == f, "{text}");
        }
        for bad in [
            "local_date",
            "local_date@Mars/Base",
            "bucket@UTC",
            "upper",
            "",
            "@",
        ] {
            assert!(from_definition(bad).is_none(), "{bad}");
        }
        let upper = datafusion::functions::string::upper();
        assert_eq!(definition(&upper), None);
    }
}
