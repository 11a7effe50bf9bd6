//! Numbers, dates and words as people read them, per locale: `18 825,00 ₽`, `45,2 %`,
//! `25.11.2026` in Russian (the default), `18,825.00 ₽` and `2026-11-25` in English.

use svodka_results::{ColumnMeta, ValueType};

use crate::values::Cell;

/// The language and number conventions of rendered output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    Ru,
    En,
}

impl std::str::FromStr for Locale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ru" | "ru-ru" => Ok(Locale::Ru),
            "en" | "en-us" | "en-gb" => Ok(Locale::En),
            other => Err(format!("unknown locale `{other}`: expected `ru` or `en`")),
        }
    }
}

/// The words of the page and workbook around the report's own labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Total,
    Period,
    AsOf,
    Filters,
    NoFilters,
    Settings,
    Parameters,
    Generated,
    DataVersion,
    TimeZone,
    Report,
    Value,
    Previous,
    Yes,
    No,
    Empty,
    RowsShown,
    Open,
    PercentPoints,
    Parameter,
    Block,
    /// A dimension without a value (deals of no department).
    NotSet,
}

impl Locale {
    pub fn code(self) -> &'static str {
        match self {
            Locale::Ru => "ru",
            Locale::En => "en",
        }
    }

    pub fn word(self, w: Word) -> &'static str {
        use Word::*;
        match (self, w) {
            (Locale::Ru, Total) => "Итого",
            (Locale::Ru, Period) => "Период",
            (Locale::Ru, AsOf) => "На дату",
            (Locale::Ru, Filters) => "Фильтры",
            (Locale::Ru, NoFilters) => "без фильтров",
            (Locale::Ru, Settings) => "Настройки",
            (Locale::Ru, Parameters) => "Параметры",
            (Locale::Ru, Generated) => "Сформирован",
            (Locale::Ru, DataVersion) => "Версия данных",
            (Locale::Ru, TimeZone) => "Часовой пояс",
            (Locale::Ru, Report) => "Отчёт",
            (Locale::Ru, Value) => "Значение",
            (Locale::Ru, Previous) => "Предыдущий период",
            (Locale::Ru, Yes) => "да",
            (Locale::Ru, No) => "нет",
            (Locale::Ru, Empty) => "нет данных",
            (Locale::Ru, RowsShown) => {
                "Показаны первые {shown} строк из {total}; все строки — в xlsx."
            }
            (Locale::Ru, Open) => "открыть",
            (Locale::Ru, PercentPoints) => "п.п.",
            (Locale::Ru, Parameter) => "Параметр",
            (Locale::Ru, Block) => "Блок",
            (Locale::Ru, NotSet) => "(не указано)",
            (Locale::En, Total) => "Total",
            (Locale::En, Period) => "Period",
            (Locale::En, AsOf) => "As of",
            (Locale::En, Filters) => "Filters",
            (Locale::En, NoFilters) => "none",
            (Locale::En, Settings) => "Settings",
            (Locale::En, Parameters) => "Parameters",
            (Locale::En, Generated) => "Generated",
            (Locale::En, DataVersion) => "Data version",
            (Locale::En, TimeZone) => "Time zone",
            (Locale::En, Report) => "Report",
            (Locale::En, Value) => "Value",
            (Locale::En, Previous) => "Previous period",
            (Locale::En, Yes) => "yes",
            (Locale::En, No) => "no",
            (Locale::En, Empty) => "no data",
            (Locale::En, RowsShown) => {
                "The first {shown} of {total} rows are shown; the xlsx has them all."
            }
            (Locale::En, Open) => "open",
            (Locale::En, PercentPoints) => "pp",
            (Locale::En, Parameter) => "Parameter",
            (Locale::En, Block) => "Block",
            (Locale::En, NotSet) => "(not set)",
        }
    }

    fn separators(self) -> (char, char) {
        match self {
            // A no-break space: a number never wraps inside.
            Locale::Ru => ('\u{a0}', ','),
            Locale::En => (',', '.'),
        }
    }

    /// A number with `decimals` digits after the point (trailing zeros dropped unless
    /// `fixed`), digits grouped by thousands.
    pub fn number(self, x: f64, decimals: usize, fixed: bool) -> String {
        let (group, point) = self.separators();
        let text = format!("{:.*}", decimals, x.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let frac = if fixed {
            frac
        } else {
            frac.trim_end_matches('0')
        };
        let mut out = String::new();
        let negative = x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
        if negative {
            out.push('−');
        }
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push(group);
            }
            out.push(c);
        }
        if !frac.is_empty() {
            out.push(point);
            out.push_str(frac);
        }
        out
    }

    /// A date: `25.11.2026` (ru) or `2026-11-25` (en).
    pub fn date(self, d: chrono::NaiveDate) -> String {
        match self {
            Locale::Ru => d.format("%d.%m.%Y").to_string(),
            Locale::En => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// A month: `ноя 2026` (ru) or `Nov 2026` (en).
    pub fn month(self, d: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        const RU: [&str; 12] = [
            "янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек",
        ];
        const EN: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let names = match self {
            Locale::Ru => RU,
            Locale::En => EN,
        };
        format!("{} {}", names[d.month0() as usize], d.year())
    }

    /// A cell as text for a column of type `ty`; empty for null.
    pub fn cell(self, cell: &Cell, ty: ValueType) -> String {
        match cell {
            Cell::Null => String::new(),
            Cell::Int(v) if ty == ValueType::Id => v.to_string(),
            Cell::Int(v) => self.value(*v as f64, ty),
            Cell::Number(v) => self.value(*v, ty),
            Cell::Text(s) => s.clone(),
            Cell::Bool(b) => self.word(if *b { Word::Yes } else { Word::No }).into(),
            Cell::Date(d) => self.date(*d),
            Cell::Timestamp(t) => match self {
                Locale::Ru => t.format("%d.%m.%Y %H:%M").to_string(),
                Locale::En => t.format("%Y-%m-%d %H:%M").to_string(),
            },
        }
    }

    /// A dimension value as text: a null is "(не указано)", not an empty space.
    pub fn label(self, cell: &Cell, ty: ValueType) -> String {
        match cell {
            Cell::Null => self.word(Word::NotSet).into(),
            c => self.cell(c, ty),
        }
    }

    /// A value of dimension `column` as text, by the label the column gives it (an
    /// unpivoted metric's measure label) where it has one.
    pub fn column_label(self, column: &ColumnMeta, cell: &Cell) -> String {
        match cell {
            Cell::Text(v) => column.shown_value(v).to_string(),
            c => self.label(c, column.ty),
        }
    }

    /// A number shown as type `ty`: money with 2 decimals and ₽, percent with %.
    pub fn value(self, x: f64, ty: ValueType) -> String {
        match ty {
            ValueType::Money => format!("{}\u{a0}₽", self.number(x, 2, true)),
            ValueType::Percent => format!("{}\u{a0}%", self.number(x, 1, false)),
            ValueType::Id => self.number(x, 0, false).replace(self.separators().0, ""),
            ValueType::Int => self.number(x, 0, false),
            ValueType::Days => self.number(x, 1, false),
            _ => self.number(x, 2, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn russian_numbers() {
        let ru = Locale::Ru;
        assert_eq!(ru.value(18825.0, ValueType::Money), "18\u{a0}825,00\u{a0}₽");
        assert_eq!(
            ru.value(1234567.891, ValueType::Number),
            "1\u{a0}234\u{a0}567,89"
        );
        assert_eq!(ru.value(45.26, ValueType::Percent), "45,3\u{a0}%");
        assert_eq!(ru.value(100.0, ValueType::Percent), "100\u{a0}%");
        assert_eq!(ru.value(-1500.0, ValueType::Int), "−1\u{a0}500");
        assert_eq!(ru.value(-0.001, ValueType::Number), "0");
        assert_eq!(ru.value(12.5, ValueType::Days), "12,5");
        assert_eq!(ru.cell(&Cell::Int(123456), ValueType::Id), "123456");
        assert_eq!(ru.cell(&Cell::Int(999), ValueType::Int), "999");
        assert_eq!(ru.cell(&Cell::Int(1000), ValueType::Int), "1\u{a0}000");
        assert_eq!(
            ru.cell(
                &Cell::Date(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap()),
                ValueType::Date
            ),
            "05.11.2026"
        );
        assert_eq!(ru.cell(&Cell::Bool(true), ValueType::Bool), "да");
        assert_eq!(
            ru.month(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
            "ноя 2026"
        );
        assert_eq!(
            Locale::En.month(NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()),
            "May 2026"
        );
        assert_eq!(ru.cell(&Cell::Null, ValueType::Money), "");
    }

    #[test]
    fn english_numbers() {
        let en = Locale::En;
        assert_eq!(en.value(18825.0, ValueType::Money), "18,825.00\u{a0}₽");
        assert_eq!(en.value(0.5, ValueType::Number), "0.5");
        assert_eq!(
            en.date(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap()),
            "2026-11-05"
        );
        assert_eq!("EN".parse::<Locale>(), Ok(Locale::En));
        assert!("de".parse::<Locale>().is_err());
    }
}
