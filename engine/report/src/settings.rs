//! Typed, bounded settings: declared in YAML with a default, overridden per client or per
//! run (`--set name=value`), and bound into plans as literal values.

use std::fmt;

use chrono::NaiveDate;
use datafusion::scalar::ScalarValue;

use crate::spec::{SettingSpec, SettingType};

/// A setting's value.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Int(i64),
    Number(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
}

impl SettingValue {
    /// The literal this value becomes inside a plan.
    pub fn scalar(&self) -> ScalarValue {
        match self {
            SettingValue::Int(v) => ScalarValue::Int64(Some(*v)),
            SettingValue::Number(v) => ScalarValue::Float64(Some(*v)),
            SettingValue::Bool(v) => ScalarValue::Boolean(Some(*v)),
            SettingValue::Text(v) => ScalarValue::Utf8(Some(v.clone())),
            SettingValue::Date(d) => ScalarValue::Date32(Some(crate::time::days_since_epoch(*d))),
        }
    }

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
        }
    }
}

/// A resolved setting declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub ty: SettingType,
    pub default: SettingValue,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub values: Vec<String>,
    pub label: Option<String>,
    pub description: Option<String>,
}

impl Setting {
    /// Resolves a declaration; the error message says what is wrong (the caller adds where).
    pub fn from_spec(name: &str, spec: &SettingSpec) -> Result<Setting, String> {
        let ty = spec.ty.ok_or_else(|| {
            "a setting needs a `type` (int, number, bool, text, enum, date)".to_string()
        })?;
        if ty == SettingType::Enum && spec.values.is_empty() {
            return Err("an enum setting needs `values`".into());
        }
        if ty != SettingType::Enum && !spec.values.is_empty() {
            return Err("`values` is only for enum settings".into());
        }
        if (spec.min.is_some() || spec.max.is_some())
            && !matches!(ty, SettingType::Int | SettingType::Number)
        {
            return Err("`min`/`max` are only for int and number settings".into());
        }
        if let (Some(lo), Some(hi)) = (spec.min, spec.max)
            && lo > hi
        {
            return Err(format!("min {lo} is greater than max {hi}"));
        }
        let mut setting = Setting {
            name: name.to_string(),
            ty,
            default: SettingValue::Bool(false),
            min: spec.min,
            max: spec.max,
            values: spec.values.clone(),
            label: spec.label.clone(),
            description: spec.description.clone(),
        };
        let default = spec
            .default
            .as_ref()
            .ok_or_else(|| "a setting needs a `default`".to_string())?;
        setting.default = setting
            .parse_yaml(default)
            .map_err(|e| format!("default: {e}"))?;
        Ok(setting)
    }

    /// Parses a value given as text (command line, URL) and checks its bounds.
    pub fn parse(&self, text: &str) -> Result<SettingValue, String> {
        let value = match self.ty {
            SettingType::Int => SettingValue::Int(
                text.trim()
                    .parse()
                    .map_err(|_| format!("expected a whole number, got {text:?}"))?,
            ),
            SettingType::Number => {
                let v: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("expected a number, got {text:?}"))?;
                if !v.is_finite() {
                    return Err(format!("expected a finite number, got {text:?}"));
                }
                SettingValue::Number(v)
            }
            SettingType::Bool => match text.trim() {
                "true" => SettingValue::Bool(true),
                "false" => SettingValue::Bool(false),
                _ => return Err(format!("expected true or false, got {text:?}")),
            },
            SettingType::Text | SettingType::Enum => SettingValue::Text(text.to_string()),
            SettingType::Date => SettingValue::Date(
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map_err(|_| format!("expected a date YYYY-MM-DD, got {text:?}"))?,
            ),
        };
        self.check(value)
    }

    /// Parses a YAML value and checks its bounds.
    pub fn parse_yaml(&self, value: &serde_yaml::Value) -> Result<SettingValue, String> {
        use serde_yaml::Value as Y;
        let parsed = match (self.ty, value) {
            (SettingType::Int, Y::Number(n)) => SettingValue::Int(
                n.as_i64()
                    .ok_or_else(|| format!("expected a whole number, got {n}"))?,
            ),
            (SettingType::Number, Y::Number(n)) => {
                SettingValue::Number(n.as_f64().ok_or_else(|| format!("bad number {n}"))?)
            }
            (SettingType::Bool, Y::Bool(b)) => SettingValue::Bool(*b),
            (SettingType::Text | SettingType::Enum | SettingType::Date, Y::String(s)) => {
                return self.parse(s);
            }
            (ty, other) => {
                return Err(format!(
                    "expected a value of type {ty}, got {}",
                    serde_yaml::to_string(other).unwrap_or_default().trim_end()
                ));
            }
        };
        self.check(parsed)
    }

    fn check(&self, value: SettingValue) -> Result<SettingValue, String> {
        let number = match &value {
            SettingValue::Int(v) => Some(*v as f64),
            SettingValue::Number(v) => Some(*v),
            _ => None,
        };
        if let Some(v) = number {
            if let Some(lo) = self.min
                && v < lo
            {
                return Err(format!("{value} is below the minimum {lo}"));
            }
            if let Some(hi) = self.max
                && v > hi
            {
                return Err(format!("{value} is above the maximum {hi}"));
            }
        }
        if let SettingValue::Text(t) = &value
            && self.ty == SettingType::Enum
            && !self.values.contains(t)
        {
            return Err(format!(
                "{t:?} is not one of: {}{}",
                self.values.join(", "),
                crate::error::did_you_mean(t, self.values.iter().map(String::as_str))
            ));
        }
        Ok(value)
    }
}
