//! Typed, bounded settings: declared in YAML with a default, overridden per client or per
//! run (`--set name=value`), and bound into plans as literal values.

use chrono::NaiveDate;
use datafusion::scalar::ScalarValue;

use crate::spec::{SettingSpec, SettingType};

pub use svodka_results::{Rows, SettingValue};

/// The literal a setting's value becomes inside a plan (None for a structured value,
/// which becomes a table instead).
pub fn scalar(value: &SettingValue) -> Option<ScalarValue> {
    Some(match value {
        SettingValue::Int(v) => ScalarValue::Int64(Some(*v)),
        SettingValue::Number(v) => ScalarValue::Float64(Some(*v)),
        SettingValue::Bool(v) => ScalarValue::Boolean(Some(*v)),
        SettingValue::Text(v) => ScalarValue::Utf8(Some(v.clone())),
        SettingValue::Date(d) => ScalarValue::Date32(Some(crate::time::days_since_epoch(*d))),
        SettingValue::Rows(_) => return None,
    })
}

/// A resolved setting declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub ty: SettingType,
    /// The columns of a map, list or table setting (empty for scalars).
    pub columns: Vec<(String, SettingType)>,
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
        let structured = matches!(
            ty,
            SettingType::Map | SettingType::List | SettingType::Table
        );
        let scalar = |t: Option<SettingType>, what: &str| -> Result<Option<SettingType>, String> {
            match t {
                Some(
                    SettingType::Map | SettingType::List | SettingType::Table | SettingType::Enum,
                ) => Err(format!("`{what}` must be int, number, bool, text or date")),
                other => Ok(other),
            }
        };
        let columns: Vec<(String, SettingType)> = match ty {
            SettingType::Map => vec![
                (
                    "key".into(),
                    scalar(spec.key, "key")?.unwrap_or(SettingType::Text),
                ),
                (
                    "value".into(),
                    scalar(spec.value, "value")?.ok_or("a map setting needs `value: <type>`")?,
                ),
            ],
            SettingType::List => vec![(
                "item".into(),
                scalar(spec.item, "item")?.ok_or("a list setting needs `item: <type>`")?,
            )],
            SettingType::Table => {
                if spec.columns.is_empty() {
                    return Err("a table setting needs `columns: {name: type, …}`".into());
                }
                spec.columns
                    .iter()
                    .map(|(c, t)| scalar(Some(*t), c).map(|t| (c.clone(), t.expect("given"))))
                    .collect::<Result<_, _>>()?
            }
            _ => vec![],
        };
        if !structured
            && (spec.key.is_some()
                || spec.value.is_some()
                || spec.item.is_some()
                || !spec.columns.is_empty())
        {
            return Err(
                "`key`, `value`, `item` and `columns` are for map, list and table settings".into(),
            );
        }
        if ty == SettingType::Enum && spec.values.is_empty() {
            return Err("an enum setting needs `values`".into());
        }
        if ty != SettingType::Enum && !spec.values.is_empty() {
            return Err("`values` is only for enum settings".into());
        }
        if (spec.min.is_some() || spec.max.is_some())
            && !matches!(ty, SettingType::Int | SettingType::Number)
            && !structured
        {
            return Err("`min`/`max` are for int and number settings (and the numbers of maps, lists and tables)".into());
        }
        if let (Some(lo), Some(hi)) = (spec.min, spec.max)
            && lo > hi
        {
            return Err(format!("min {lo} is greater than max {hi}"));
        }
        let mut setting = Setting {
            name: name.to_string(),
            ty,
            columns,
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
            SettingType::Map | SettingType::List | SettingType::Table => {
                // Structured values are written in YAML (or JSON, a subset of it).
                let value: serde_yaml::Value = serde_yaml::from_str(text)
                    .map_err(|e| format!("expected a {} in YAML or JSON: {e}", self.ty))?;
                return self.parse_yaml(&value);
            }
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
        if matches!(
            self.ty,
            SettingType::Map | SettingType::List | SettingType::Table
        ) {
            return self.parse_rows(value);
        }
        let parsed = match (self.ty, value) {
            (SettingType::Int, Y::Number(n)) => SettingValue::Int(
                n.as_i64()
                    .ok_or_else(|| format!("expected a whole number, got {n}"))?,
            ),
            (SettingType::Number, Y::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => SettingValue::Number(v),
                _ => return Err(format!("expected a finite number, got {n}")),
            },
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

    /// A scalar of type `ty` from YAML, with the bounds of this setting.
    fn cell(&self, ty: SettingType, value: &serde_yaml::Value) -> Result<SettingValue, String> {
        let scalar = Setting {
            ty,
            columns: vec![],
            values: vec![],
            ..self.clone()
        };
        match value {
            // Keys of YAML maps arrive as strings even when they look like numbers.
            serde_yaml::Value::String(s) if ty != SettingType::Text => scalar.parse(s),
            v => scalar.parse_yaml(v),
        }
    }

    fn parse_rows(&self, value: &serde_yaml::Value) -> Result<SettingValue, String> {
        use serde_yaml::Value as Y;
        let mut rows = Vec::new();
        match (self.ty, value) {
            (SettingType::Map, Y::Mapping(m)) => {
                for (k, v) in m {
                    let key = self
                        .cell(self.columns[0].1, k)
                        .map_err(|e| format!("key {}: {e}", yaml_text(k)))?;
                    let val = self
                        .cell(self.columns[1].1, v)
                        .map_err(|e| format!("`{}`: {e}", yaml_text(k)))?;
                    rows.push(vec![key, val]);
                }
            }
            (SettingType::List, Y::Sequence(items)) => {
                for (i, v) in items.iter().enumerate() {
                    rows.push(vec![
                        self.cell(self.columns[0].1, v)
                            .map_err(|e| format!("item {}: {e}", i + 1))?,
                    ]);
                }
            }
            (SettingType::Table, Y::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Y::Mapping(m) = item else {
                        return Err(format!(
                            "row {}: expected a mapping of column: value",
                            i + 1
                        ));
                    };
                    for k in m.keys() {
                        let k = yaml_text(k);
                        if !self.columns.iter().any(|(c, _)| *c == k) {
                            return Err(format!(
                                "row {}: unknown column `{k}`{}",
                                i + 1,
                                crate::error::did_you_mean(
                                    &k,
                                    self.columns.iter().map(|(c, _)| c.as_str())
                                )
                            ));
                        }
                    }
                    let mut row = Vec::new();
                    for (c, t) in &self.columns {
                        let v = m
                            .get(c.as_str())
                            .ok_or_else(|| format!("row {}: missing `{c}`", i + 1))?;
                        row.push(
                            self.cell(*t, v)
                                .map_err(|e| format!("row {}, `{c}`: {e}", i + 1))?,
                        );
                    }
                    rows.push(row);
                }
            }
            (ty, other) => {
                return Err(format!("expected a {ty}, got {}", yaml_text(other)));
            }
        }
        Ok(SettingValue::Rows(Rows {
            kind: self.ty,
            columns: self.columns.clone(),
            rows,
        }))
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

/// A setting's value written in YAML (a client file, a test case) as the text an override
/// takes (`--set name=text`): a string as it is, anything else as YAML text.
pub fn setting_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        other => yaml_text(other),
    }
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// The Arrow type a scalar setting type is stored as.
pub fn arrow_type(ty: SettingType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType;
    match ty {
        SettingType::Int => DataType::Int64,
        SettingType::Number => DataType::Float64,
        SettingType::Bool => DataType::Boolean,
        SettingType::Date => DataType::Date32,
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SettingSpec;

    fn spec(yaml: &str) -> SettingSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    /// NaN and infinities pass every `min`/`max` comparison: refused as text and as YAML,
    /// alone or inside a map.
    #[test]
    fn a_number_setting_is_finite() {
        let n =
            Setting::from_spec("k", &spec("{type: number, default: 1, min: 0, max: 10}")).unwrap();
        for text in ["NaN", "inf", "-inf"] {
            assert!(n.parse(text).unwrap_err().contains("finite"), "{text}");
        }
        for yaml in [".nan", ".inf", "-.inf"] {
            let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
            assert!(n.parse_yaml(&v).unwrap_err().contains("finite"), "{yaml}");
        }
        let w =
            Setting::from_spec("w", &spec("{type: map, value: number, default: {a: 1}}")).unwrap();
        let e = w.parse("{call: .nan}").unwrap_err();
        assert!(e.contains("finite"), "{e}");
        assert_eq!(n.parse("2.5"), Ok(SettingValue::Number(2.5)));
    }

    #[test]
    fn map_setting() {
        let s = Setting::from_spec(
            "w",
            &spec("{type: map, value: number, default: {meeting: 5, call: 2}, min: 0}"),
        )
        .unwrap();
        let SettingValue::Rows(r) = &s.default else {
            panic!()
        };
        assert_eq!(
            r.rows,
            vec![
                vec![
                    SettingValue::Text("meeting".into()),
                    SettingValue::Number(5.0)
                ],
                vec![SettingValue::Text("call".into()), SettingValue::Number(2.0)],
            ]
        );
        assert_eq!(
            s.default.to_json(),
            serde_json::json!({"meeting": 5.0, "call": 2.0})
        );
        let e = s.parse("{call: -1}").unwrap_err();
        assert_eq!(e, "`call`: -1 is below the minimum 0");
        assert!(s.parse("[1, 2]").unwrap_err().starts_with("expected a map"));
    }

    #[test]
    fn list_and_table_settings() {
        let l = Setting::from_spec(
            "b",
            &spec("{type: list, item: int, default: [30, 90, 180]}"),
        )
        .unwrap();
        assert_eq!(l.default.to_json(), serde_json::json!([30, 90, 180]));
        assert!(l.parse("[30, x]").unwrap_err().starts_with("item 2:"));
        let t = Setting::from_spec(
            "tiers",
            &spec("{type: table, columns: {min_won_count: int, bonus: number}, default: [{min_won_count: 5, bonus: 10000}]}"),
        )
        .unwrap();
        assert_eq!(
            t.default.to_json(),
            serde_json::json!([{"min_won_count": 5, "bonus": 10000.0}])
        );
        let e = t.parse("[{min_won: 5, bonus: 1}]").unwrap_err();
        assert!(
            e.contains("unknown column `min_won`, did you mean `min_won_count`?"),
            "{e}"
        );
    }
}
