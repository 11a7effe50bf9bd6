//! The report as an xlsx workbook: a «Параметры» sheet (what was computed, how, from
//! which data), then a sheet per block with real numbers, dates and number formats, the
//! children rows as collapsed outline groups, and a native chart where the block has one.

use std::collections::HashSet;

use rust_xlsxwriter::{
    Chart, ChartType, ConditionalFormat2ColorScale, ExcelDateTime, Format, FormatBorder, Url,
    Workbook, Worksheet, XlsxError,
};
use svodka_results::{BlockKind, ChartKind, ColumnMeta, ReportResult, ValueType};

use crate::chart::{ChartData, chart_data};
use crate::format::{Locale, Word};
use crate::table::{Table, table};
use crate::values::Cell;
use crate::{RenderError, RenderOptions};

/// List blocks with this many rows or more are written in constant-memory mode.
pub const CONSTANT_MEMORY_ROWS: usize = 100_000;
/// Excel's longest cell text.
const MAX_TEXT: usize = 32_767;
const MAX_WIDTH: f64 = 60.0;

/// The whole report as xlsx bytes.
pub fn report_xlsx(result: &ReportResult, options: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let locale = options.locale;
    let tz = result.params.timezone;
    let mut wb = Workbook::new();
    let formats = Formats::new(locale);
    let mut names = SheetNames::default();

    let params_name = names.claim(locale.word(Word::Parameters), "params");
    let sheet = wb.add_worksheet();
    parameters_sheet(sheet, &params_name, result, options, &formats)
        .map_err(|e| xerr(&params_name, e))?;

    for block in &result.blocks {
        let t = table(block, tz)?;
        let name = names.claim(&block.title, &block.id);
        let constant = block.kind == BlockKind::List
            && t.rows.len() >= CONSTANT_MEMORY_ROWS
            && block.chart.is_none();
        let sheet = if constant {
            wb.add_worksheet_with_constant_memory()
        } else {
            Ok(wb.add_worksheet())
        }
        .map_err(|e| xerr(&name, e))?;
        sheet.set_name(&name).map_err(|e| xerr(&name, e))?;
        let context = format!("sheet «{name}» (block `{}`)", block.id);
        let used_cols = if t.is_kpi(block.kind) {
            kpi_sheet(sheet, &t, locale, &formats).map_err(|e| xerr(&context, e))?
        } else {
            let pivoted = block.pivot.as_ref().map(|p| t.pivoted(p, locale));
            block_sheet(sheet, pivoted.as_ref().unwrap_or(&t), locale, &formats)
                .map_err(|e| xerr(&context, e))?
        };
        if let Some(data) = block
            .chart
            .as_ref()
            .and_then(|spec| chart_data(spec, &t, locale))
            .filter(|d| !d.categories.is_empty())
        {
            chart(sheet, &name, &block.title, &data, used_cols + 1, &formats)
                .map_err(|e| xerr(&context, e))?;
        }
    }
    wb.save_to_buffer()
        .map_err(|e| xerr("saving the workbook", e))
}

fn xerr(context: &str, e: XlsxError) -> RenderError {
    RenderError::Xlsx {
        context: context.to_string(),
        message: e.to_string(),
    }
}

/// The formats cells take by value type.
struct Formats {
    header: Format,
    bold: Format,
    label: Format,
    id: Format,
    int: Format,
    number: Format,
    money: Format,
    percent: Format,
    days: Format,
    date: Format,
    timestamp: Format,
    text: Format,
    child_label: Format,
}

impl Formats {
    fn new(locale: Locale) -> Formats {
        let (date, ts) = match locale {
            Locale::Ru => ("dd.mm.yyyy", "dd.mm.yyyy hh:mm"),
            Locale::En => ("yyyy-mm-dd", "yyyy-mm-dd hh:mm"),
        };
        Formats {
            header: Format::new()
                .set_bold()
                .set_background_color("#EEF1F7")
                .set_border_bottom(FormatBorder::Thin)
                .set_text_wrap(),
            bold: Format::new().set_bold(),
            label: Format::new().set_font_color("#555555"),
            id: Format::new().set_num_format("0"),
            int: Format::new().set_num_format("#,##0"),
            number: Format::new().set_num_format("#,##0.00"),
            money: Format::new().set_num_format("#,##0.00\\ \"₽\""),
            percent: Format::new().set_num_format("0.0%"),
            days: Format::new().set_num_format("0.0"),
            date: Format::new().set_num_format(date),
            timestamp: Format::new().set_num_format(ts),
            text: Format::new(),
            child_label: Format::new().set_indent(2),
        }
    }

    /// The format of a value type; `bold` for totals rows.
    fn of(&self, ty: ValueType, bold: bool) -> Format {
        let f = match ty {
            ValueType::Id => &self.id,
            ValueType::Int => &self.int,
            ValueType::Number => &self.number,
            ValueType::Money => &self.money,
            ValueType::Percent => &self.percent,
            ValueType::Days => &self.days,
            ValueType::Date => &self.date,
            ValueType::Timestamp => &self.timestamp,
            ValueType::Text | ValueType::Bool => &self.text,
        };
        if bold {
            f.clone().set_bold()
        } else {
            f.clone()
        }
    }
}

/// Sheet names: the block's title cut to Excel's 31 characters, without the characters
/// Excel refuses, unique regardless of case.
#[derive(Default)]
struct SheetNames {
    taken: HashSet<String>,
}

impl SheetNames {
    fn claim(&mut self, title: &str, fallback: &str) -> String {
        let clean: String = title
            .chars()
            .map(|c| {
                if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') || c.is_control() {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let clean = clean.trim().trim_matches('\'').trim().to_string();
        let base = if clean.is_empty() {
            fallback.to_string()
        } else {
            clean
        };
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!(" ({n})")
            };
            let keep = 31 - suffix.chars().count();
            // Cut, the name may end in an apostrophe, which Excel refuses as well.
            let cut: String = base.chars().take(keep).collect();
            let name = cut.trim_end().trim_end_matches('\'').trim_end().to_string() + &suffix;
            if self.taken.insert(name.to_lowercase()) {
                return name;
            }
            n += 1;
        }
    }
}

fn parameters_sheet(
    sheet: &mut Worksheet,
    name: &str,
    result: &ReportResult,
    options: &RenderOptions,
    f: &Formats,
) -> Result<(), XlsxError> {
    let locale = options.locale;
    sheet.set_name(name)?;
    let p = &result.params;
    let mut rows: Vec<(String, String)> = vec![
        (
            locale.word(Word::Report).into(),
            format!("{} ({})", result.title, result.report),
        ),
        (
            locale.word(Word::Period).into(),
            format!("{} — {}", locale.date(p.from), locale.date(p.to)),
        ),
        (locale.word(Word::AsOf).into(), locale.date(p.as_of)),
        (locale.word(Word::TimeZone).into(), p.timezone.name().into()),
    ];
    let active: Vec<_> = p.filters.iter().filter(|(_, v)| !v.is_empty()).collect();
    if active.is_empty() {
        rows.push((
            locale.word(Word::Filters).into(),
            locale.word(Word::NoFilters).into(),
        ));
    }
    for (filter, values) in active {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        rows.push((
            format!("{}: {filter}", locale.word(Word::Filters)),
            values.join(", "),
        ));
    }
    for (n, v) in result.parameters.iter().chain(&result.settings) {
        rows.push((result.label(n).to_string(), v.to_string()));
    }
    rows.push((
        locale.word(Word::Generated).into(),
        options
            .generated_at
            .with_timezone(&p.timezone)
            .format("%d.%m.%Y %H:%M:%S")
            .to_string(),
    ));
    if let Some(v) = &options.data_version {
        rows.push((locale.word(Word::DataVersion).into(), v.clone()));
    }
    sheet.write_string_with_format(0, 0, locale.word(Word::Parameter), &f.header)?;
    sheet.write_string_with_format(0, 1, locale.word(Word::Value), &f.header)?;
    let mut widths = [12usize, 12];
    for (i, (k, v)) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string_with_format(r, 0, clip(k), &f.label)?;
        sheet.write_string(r, 1, clip(v))?;
        widths[0] = widths[0].max(k.chars().count());
        widths[1] = widths[1].max(v.chars().count());
    }
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, (*w as f64 + 2.0).min(MAX_WIDTH * 1.5))?;
    }
    Ok(())
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes one cell with its type's format.
fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    cell: &Cell,
    column: &ColumnMeta,
    format: &Format,
) -> Result<(), XlsxError> {
    match cell {
        Cell::Null => {
            sheet.write_blank(row, col, format)?;
        }
        Cell::Int(v) => {
            sheet.write_number_with_format(row, col, *v as f64, format)?;
        }
        Cell::Number(v) => {
            sheet.write_number_with_format(row, col, excel_value(*v, column.ty), format)?;
        }
        Cell::Bool(b) => {
            sheet.write_boolean_with_format(row, col, *b, format)?;
        }
        Cell::Date(d) => {
            use chrono::Datelike;
            match ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8) {
                Ok(dt) => sheet.write_datetime_with_format(row, col, &dt, format)?,
                Err(_) => sheet.write_string(row, col, d.to_string())?,
            };
        }
        Cell::Timestamp(t) => {
            use chrono::{Datelike, Timelike};
            let dt = ExcelDateTime::from_ymd(t.year() as u16, t.month() as u8, t.day() as u8)
                .and_then(|d| d.and_hms(t.hour() as u16, t.minute() as u8, t.second()));
            match dt {
                Ok(dt) => sheet.write_datetime_with_format(row, col, &dt, format)?,
                Err(_) => sheet.write_string(row, col, t.to_rfc3339())?,
            };
        }
        Cell::Text(s) => {
            let link = column.name == "url"
                && (s.starts_with("https://") || s.starts_with("http://"))
                && s.len() < 2000;
            if link {
                sheet.write_url(row, col, Url::new(s.as_str()))?;
            } else {
                sheet.write_string_with_format(row, col, clip(column.shown_value(s)), format)?;
            }
        }
    }
    Ok(())
}

/// A block as a table: a bold frozen header with a filter, the rows, each row's children
/// as a collapsed outline group under it, and the totals row. Returns the columns used.
fn block_sheet(
    sheet: &mut Worksheet,
    t: &Table,
    locale: Locale,
    f: &Formats,
) -> Result<u16, XlsxError> {
    let cols = &t.columns;
    // Widths from the longest shown text, computed before writing (constant-memory
    // sheets cannot revisit rows).
    let mut widths: Vec<usize> = cols
        .iter()
        .map(|c| c.label.chars().count().min(30))
        .collect();
    let mut measure = |cells: &[Cell], columns: &[ColumnMeta]| {
        for (i, (c, v)) in columns.iter().zip(cells).enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(locale.cell(v, c.ty).chars().count());
            }
        }
    };
    for r in t.rows.iter().take(5000) {
        measure(&r.cells, cols);
    }
    if let Some(tot) = &t.totals {
        measure(tot, cols);
    }
    for (i, w) in widths.iter().enumerate() {
        sheet.set_column_width(i as u16, (*w as f64 * 1.1 + 2.0).clamp(6.0, MAX_WIDTH))?;
    }
    for (i, c) in cols.iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, clip(&c.label), &f.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    let plain: Vec<Format> = cols.iter().map(|c| f.of(c.ty, false)).collect();
    let bold: Vec<Format> = cols.iter().map(|c| f.of(c.ty, true)).collect();
    let first_dim = cols.iter().position(|c| c.dimension);
    let mut r: u32 = 1;
    for row in &t.rows {
        for (i, (c, v)) in cols.iter().zip(&row.cells).enumerate() {
            write_cell(sheet, r, i as u16, v, c, &plain[i])?;
        }
        r += 1;
        let first_child = r;
        for (level, rows) in t.levels.iter().zip(&row.children) {
            for child in rows {
                let label = level.label(child, locale);
                if let Some(d) = first_dim {
                    sheet.write_string_with_format(r, d as u16, clip(&label), &f.child_label)?;
                }
                for (i, c) in cols.iter().enumerate() {
                    if c.dimension {
                        continue;
                    }
                    if let Some(j) = level.columns.iter().position(|x| x.name == c.name) {
                        write_cell(sheet, r, i as u16, &child[j], c, &plain[i])?;
                    }
                }
                r += 1;
            }
        }
        if r > first_child {
            sheet.group_rows_collapsed(first_child, r - 1)?;
        }
    }
    let last_data = r.saturating_sub(1).max(1);
    if !cols.is_empty() {
        sheet.autofilter(0, 0, last_data, cols.len() as u16 - 1)?;
    }
    if let Some(tot) = &t.totals {
        for (i, (c, v)) in cols.iter().zip(tot).enumerate() {
            write_cell(sheet, r, i as u16, v, c, &bold[i])?;
        }
        if matches!(tot.first(), Some(Cell::Null)) {
            sheet.write_string_with_format(r, 0, locale.word(Word::Total), &f.bold)?;
        }
    }
    Ok(cols.len() as u16)
}

/// A one-row block (KPIs) as a list of measures: label, value, and the comparison
/// period's value when the block has one.
fn kpi_sheet(
    sheet: &mut Worksheet,
    t: &Table,
    locale: Locale,
    f: &Formats,
) -> Result<u16, XlsxError> {
    sheet.write_string_with_format(0, 0, locale.word(Word::Parameter), &f.header)?;
    sheet.write_string_with_format(0, 1, locale.word(Word::Value), &f.header)?;
    if t.previous.is_some() {
        sheet.write_string_with_format(0, 2, locale.word(Word::Previous), &f.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    let mut width = 12;
    for (i, c) in t.columns.iter().enumerate() {
        let r = i as u32 + 1;
        width = width.max(c.label.chars().count());
        sheet.write_string(r, 0, clip(&c.label))?;
        write_cell(sheet, r, 1, &t.rows[0].cells[i], c, &f.of(c.ty, true))?;
        if let Some(p) = &t.previous {
            write_cell(sheet, r, 2, &p[i], c, &f.of(c.ty, false))?;
        }
    }
    sheet.set_column_width(0, (width as f64 + 2.0).min(MAX_WIDTH))?;
    sheet.set_column_width(1, 18)?;
    sheet.set_column_width(2, 18)?;
    Ok(3)
}

/// A value of type `ty` as a cell holds it: a percent is a fraction there (45.2 → 0.452,
/// shown `45.2%` by the cell's format).
fn excel_value(v: f64, ty: ValueType) -> f64 {
    if ty == ValueType::Percent {
        v / 100.0
    } else {
        v
    }
}

/// A heatmap as a matrix right of the block's — a row per series, a column per category —
/// under a two-colour scale (Excel has no heatmap chart; a colour-scaled range is one).
fn heatmap(
    sheet: &mut Worksheet,
    data: &ChartData,
    col: u16,
    f: &Formats,
) -> Result<(), XlsxError> {
    let value_format = f.of(data.value_type, false);
    let width = data
        .series
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(8);
    sheet.set_column_width(col, (width as f64 + 2.0).clamp(8.0, MAX_WIDTH))?;
    for (c, category) in data.categories.iter().enumerate() {
        let at = col + 1 + c as u16;
        sheet.write_string_with_format(0, at, clip(category), &f.header)?;
        sheet.set_column_width(at, (category.chars().count() as f64 + 2.0).clamp(8.0, 16.0))?;
    }
    for (r, s) in data.series.iter().enumerate() {
        let row = r as u32 + 1;
        sheet.write_string(row, col, clip(&s.name))?;
        for (c, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                sheet.write_number_with_format(
                    row,
                    col + 1 + c as u16,
                    excel_value(*v, data.value_type),
                    &value_format,
                )?;
            }
        }
    }
    if !data.series.is_empty() && !data.categories.is_empty() {
        let scale = ConditionalFormat2ColorScale::new()
            .set_minimum_color(crate::chart::heat_rgb(0.0))
            .set_maximum_color(crate::chart::heat_rgb(1.0));
        sheet.add_conditional_format(
            1,
            col + 1,
            data.series.len() as u32,
            col + data.categories.len() as u16,
            &scale,
        )?;
    }
    Ok(())
}

/// The chart's data as a small table right of the block's, and a native chart over it.
fn chart(
    sheet: &mut Worksheet,
    sheet_name: &str,
    title: &str,
    data: &ChartData,
    col: u16,
    f: &Formats,
) -> Result<(), XlsxError> {
    if data.kind == ChartKind::Heatmap {
        return heatmap(sheet, data, col, f);
    }
    let n = data.categories.len() as u32;
    sheet.write_string_with_format(0, col, clip(&data.x_label), &f.header)?;
    let width = data
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(8);
    sheet.set_column_width(col, (width as f64 + 2.0).clamp(8.0, MAX_WIDTH))?;
    for (i, c) in data.categories.iter().enumerate() {
        sheet.write_string(i as u32 + 1, col, clip(c))?;
    }
    let value_format = f.of(data.value_type, false);
    let series: &[crate::chart::Series] = match data.kind {
        ChartKind::Pie | ChartKind::Funnel => &data.series[..data.series.len().min(1)],
        _ => &data.series,
    };
    for (k, s) in series.iter().enumerate() {
        let c = col + 1 + k as u16;
        sheet.write_string_with_format(0, c, clip(&s.name), &f.header)?;
        sheet.set_column_width(c, (s.name.chars().count() as f64 + 2.0).clamp(10.0, 30.0))?;
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                sheet.write_number_with_format(
                    i as u32 + 1,
                    c,
                    excel_value(*v, data.value_type),
                    &value_format,
                )?;
            }
        }
    }
    let kind = match data.kind {
        ChartKind::Bar => ChartType::Column,
        ChartKind::StackedBar => ChartType::ColumnStacked,
        ChartKind::Line => ChartType::Line,
        ChartKind::Pie => ChartType::Doughnut,
        ChartKind::Funnel => ChartType::Bar,
        // Drawn as a colour-scaled range by `heatmap`, before this.
        ChartKind::Heatmap => ChartType::Column,
    };
    let mut chart = Chart::new(kind);
    chart.title().set_name(title);
    for k in 0..series.len() {
        let c = col + 1 + k as u16;
        chart
            .add_series()
            .set_name((sheet_name, 0, c))
            .set_categories((sheet_name, 1, col, n, col))
            .set_values((sheet_name, 1, c, n, c));
    }
    if series.len() < 2 && data.kind != ChartKind::Pie {
        chart.legend().set_hidden();
    }
    if data.kind == ChartKind::Funnel {
        // The first step on top.
        chart.x_axis().set_reverse();
    }
    chart.set_width(720).set_height(360);
    sheet.insert_chart(1, col + series.len() as u16 + 2, &chart)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::SheetNames;

    #[test]
    fn sheet_names_are_valid_and_unique() {
        let mut n = SheetNames::default();
        assert_eq!(n.claim("Параметры", "p"), "Параметры");
        assert_eq!(n.claim("По сотрудникам", "a"), "По сотрудникам");
        assert_eq!(n.claim("по сотрудникам", "b"), "по сотрудникам (2)");
        assert_eq!(n.claim("План/факт: [итоги]?", "c"), "План факт   итоги");
        assert_eq!(n.claim("'", "fallback"), "fallback");
        // Cut at 31 characters, the name would end in an apostrophe.
        let quoted = format!("{}'s deals", "x".repeat(30));
        assert_eq!(n.claim(&quoted, "q"), "x".repeat(30));
        let long = n.claim("Очень длинное название блока отчёта о продажах", "d");
        assert_eq!(long.chars().count(), 31);
        let again = n.claim("Очень длинное название блока отчёта о продажах", "d");
        assert!(
            again.ends_with(" (2)") && again.chars().count() <= 31,
            "{again}"
        );
    }
}

#[cfg(test)]
mod big_lists {
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use calamine::{Data, Reader, Xlsx};
    use svodka_results::{BlockKind, BlockResult, ColumnMeta, ReportResult, RunInfo, ValueType};

    use super::{CONSTANT_MEMORY_ROWS, report_xlsx};

    fn column(name: &str, ty: ValueType) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            label: name.into(),
            ty,
            definition: name.into(),
            description: None,
            dimension: false,
            lower_is_better: false,
            value_labels: vec![],
        }
    }

    #[test]
    fn a_list_of_more_than_100_000_rows_is_written_whole() {
        let n = CONSTANT_MEMORY_ROWS + 20_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("title", DataType::Utf8, false),
        ]));
        let ids: Vec<i64> = (1..=n as i64).collect();
        let titles: Vec<String> = ids.iter().map(|i| format!("Сделка {i}")).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(titles)),
            ],
        )
        .unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let params = RunInfo {
            from: day,
            to: svodka_schema::values::month_end(day),
            as_of: day,
            timezone: chrono_tz::Europe::Moscow,
            filters: Default::default(),
            portal_url: None,
            links: Default::default(),
        };
        let block = BlockResult::of_rows(
            "deals",
            "Сделки",
            BlockKind::List,
            vec![
                column("id", ValueType::Id),
                column("title", ValueType::Text),
            ],
            vec![batch],
        );
        let result = ReportResult::of_blocks("big", params, vec![block]);
        let bytes = report_xlsx(&result, &crate::RenderOptions::default()).unwrap();
        let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
        let range = book.worksheet_range("Сделки").unwrap();
        assert_eq!(range.height(), n + 1);
        assert_eq!(range.get_value((n as u32, 0)), Some(&Data::Float(n as f64)));
        assert_eq!(
            range.get_value((n as u32, 1)),
            Some(&Data::String(format!("Сделка {n}")))
        );
    }
}
