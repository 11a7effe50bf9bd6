//! Plans and bonus tiers kept in an xlsx workbook that a client fills in: the template
//! (every department, active employee and month, ready for amounts), and reading the
//! filled workbook into the canonical `plans` and `bonus_tiers` tables. A bad cell is an
//! error naming sheet, row and column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Decimal128Builder, Int64Builder};
use arrow::record_batch::RecordBatch;
use calamine::{Data, Reader, Xlsx, open_workbook};
use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use svodka_schema::{MONEY_PRECISION, MONEY_SCALE};

/// The sheet of monthly plans.
pub const PLAN_SHEET: &str = "План";
/// The sheet of bonus tiers.
pub const BONUS_SHEET: &str = "Бонусы";

/// Plan sheet columns: header, canonical column (None: for people only).
const PLAN_COLUMNS: &[(&str, Option<&str>)] = &[
    ("Месяц", Some("month")),
    ("ID отдела", Some("department_id")),
    ("Отдел", None),
    ("ID сотрудника", Some("employee_id")),
    ("Сотрудник", None),
    ("ID воронки", Some("pipeline_id")),
    ("Воронка", None),
    ("ID компании", Some("company_id")),
    ("План, сумма", Some("plan_amount")),
    ("План, сделок", Some("plan_count")),
];

const BONUS_COLUMNS: &[(&str, &str)] = &[("Сделок от", "min_won_count"), ("Бонус", "bonus")];

/// What went wrong with a plans workbook.
#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    /// The workbook could not be written.
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    /// The workbook could not be opened or is not an xlsx file.
    #[error("{path}: {message}")]
    Open { path: PathBuf, message: String },
    /// A required sheet is missing.
    #[error("{path}: no sheet «{sheet}»")]
    MissingSheet { path: PathBuf, sheet: String },
    /// A required column header is missing.
    #[error("{path}: sheet «{sheet}», row 1: no column «{column}»")]
    MissingColumn {
        path: PathBuf,
        sheet: String,
        column: String,
    },
    /// A cell does not hold what its column needs.
    #[error("{0}")]
    BadCell(Box<CellError>),
    /// Building the Arrow batch failed.
    #[error("{path}: {message}")]
    Arrow { path: PathBuf, message: String },
}

/// Where a bad cell is and what is wrong with it.
#[derive(Debug)]
pub struct CellError {
    pub path: PathBuf,
    pub sheet: String,
    /// 1-based, as Excel shows it.
    pub row: usize,
    pub letter: String,
    pub column: String,
    pub value: String,
    pub problem: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: sheet «{}», row {}, column {} «{}»: {}: {}",
            self.path.display(),
            self.sheet,
            self.row,
            self.letter,
            self.column,
            self.problem,
            self.value
        )
    }
}

/// Who and what the template lists.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub departments: Vec<(i64, String)>,
    /// (id, name, department id) of active employees.
    pub employees: Vec<(i64, String, Option<i64>)>,
    pub pipelines: Vec<(i64, String)>,
}

/// Writes the template: per month, a row per department and per active employee, with
/// the plan cells left empty; the pipelines listed on a sheet of their own.
pub fn write_template(
    dir: &Directory,
    months: &[NaiveDate],
    path: &Path,
) -> Result<(), PlansError> {
    let fail = |e: rust_xlsxwriter::XlsxError| PlansError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("dd.mm.yyyy");
    let plan = book.add_worksheet().set_name(PLAN_SHEET).map_err(fail)?;
    for (c, (header, _)) in PLAN_COLUMNS.iter().enumerate() {
        plan.write_string_with_format(0, c as u16, *header, &bold)
            .map_err(fail)?;
        plan.set_column_width(c as u16, if header.len() > 12 { 18 } else { 14 })
            .map_err(fail)?;
    }
    let department_name = |id: Option<i64>| {
        dir.departments
            .iter()
            .find(|(d, _)| Some(*d) == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    let mut row = 1u32;
    for month in months {
        let excel =
            ExcelDateTime::from_ymd(month.year() as u16, month.month() as u8, 1).map_err(fail)?;
        let mut put =
            |department: Option<i64>, employee: Option<(i64, &str)>| -> Result<(), PlansError> {
                plan.write_datetime_with_format(row, 0, &excel, &date)
                    .map_err(fail)?;
                if let Some(d) = department {
                    plan.write_number(row, 1, d as f64).map_err(fail)?;
                    plan.write_string(row, 2, department_name(Some(d)))
                        .map_err(fail)?;
                }
                if let Some((id, name)) = employee {
                    plan.write_number(row, 3, id as f64).map_err(fail)?;
                    plan.write_string(row, 4, name).map_err(fail)?;
                }
                row += 1;
                Ok(())
            };
        for (id, _) in &dir.departments {
            put(Some(*id), None)?;
        }
        for (id, name, department) in &dir.employees {
            put(*department, Some((*id, name)))?;
        }
    }
    let bonus = book.add_worksheet().set_name(BONUS_SHEET).map_err(fail)?;
    for (c, (header, _)) in BONUS_COLUMNS.iter().enumerate() {
        bonus
            .write_string_with_format(0, c as u16, *header, &bold)
            .map_err(fail)?;
    }
    let pipes = book.add_worksheet().set_name("Воронки").map_err(fail)?;
    pipes
        .write_string_with_format(0, 0, "ID воронки", &bold)
        .map_err(fail)?;
    pipes
        .write_string_with_format(0, 1, "Воронка", &bold)
        .map_err(fail)?;
    for (i, (id, name)) in dir.pipelines.iter().enumerate() {
        pipes
            .write_number(i as u32 + 1, 0, *id as f64)
            .map_err(fail)?;
        pipes.write_string(i as u32 + 1, 1, name).map_err(fail)?;
    }
    book.save(path).map_err(fail)
}

/// Reads a filled workbook into the canonical `plans` and `bonus_tiers` tables. Plan rows
/// with neither an amount nor a count are template rows left empty and are not plans.
pub fn read(path: &Path) -> Result<(RecordBatch, RecordBatch), PlansError> {
    let mut book: Xlsx<_> =
        open_workbook(path).map_err(|e: calamine::XlsxError| PlansError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let plans = read_plans(&mut book, path)?;
    let tiers = read_tiers(&mut book, path)?;
    Ok((plans, tiers))
}

type Book = Xlsx<std::io::BufReader<std::fs::File>>;

struct Sheet<'a> {
    path: &'a Path,
    name: &'static str,
    range: calamine::Range<Data>,
    columns: Vec<(usize, &'static str)>,
}

impl Sheet<'_> {
    fn open<'a>(
        book: &mut Book,
        path: &'a Path,
        name: &'static str,
        headers: &[&'static str],
    ) -> Result<Sheet<'a>, PlansError> {
        let range = book
            .worksheet_range(name)
            .map_err(|_| PlansError::MissingSheet {
                path: path.to_path_buf(),
                sheet: name.into(),
            })?;
        let header_row: Vec<String> = range
            .rows()
            .next()
            .map(|r| r.iter().map(|c| c.to_string().trim().to_string()).collect())
            .unwrap_or_default();
        let mut columns = Vec::new();
        for h in headers {
            let i = header_row.iter().position(|c| c == h).ok_or_else(|| {
                PlansError::MissingColumn {
                    path: path.to_path_buf(),
                    sheet: name.into(),
                    column: (*h).into(),
                }
            })?;
            columns.push((i, *h));
        }
        Ok(Sheet {
            path,
            name,
            range,
            columns,
        })
    }

    fn bad(&self, row: usize, col: usize, value: &Data, problem: &str) -> PlansError {
        PlansError::BadCell(Box::new(CellError {
            path: self.path.to_path_buf(),
            sheet: self.name.into(),
            row: row + 1,
            letter: column_letter(col),
            column: self
                .columns
                .iter()
                .find(|(c, _)| *c == col)
                .map(|(_, h)| (*h).to_string())
                .unwrap_or_default(),
            value: format!("{value:?}"),
            problem: problem.into(),
        }))
    }

    fn cell(&self, row: usize, k: usize) -> (usize, &Data) {
        let col = self.columns[k].0;
        let start = self.range.start().unwrap_or((0, 0));
        let value = self
            .range
            .get_value((start.0 + row as u32, start.1 + col as u32))
            .unwrap_or(&Data::Empty);
        (col, value)
    }

    fn int(&self, row: usize, k: usize) -> Result<Option<i64>, PlansError> {
        let (col, v) = self.cell(row, k);
        match v {
            Data::Empty => Ok(None),
            Data::String(s) if s.trim().is_empty() => Ok(None),
            Data::Int(i) => Ok(Some(*i)),
            Data::Float(f) if f.fract() == 0.0 => Ok(Some(*f as i64)),
            Data::String(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(row, col, v, "expected a whole number")),
            _ => Err(self.bad(row, col, v, "expected a whole number")),
        }
    }

    fn money(&self, row: usize, k: usize) -> Result<Option<i128>, PlansError> {
        let (col, v) = self.cell(row, k);
        let number = match v {
            Data::Empty => return Ok(None),
            Data::String(s) if s.trim().is_empty() => return Ok(None),
            Data::Int(i) => *i as f64,
            Data::Float(f) => *f,
            Data::String(s) => s
                .trim()
                .replace([' ', '\u{a0}'], "")
                .replace(',', ".")
                .parse()
                .map_err(|_| self.bad(row, col, v, "expected an amount"))?,
            _ => return Err(self.bad(row, col, v, "expected an amount")),
        };
        if !number.is_finite() || number < 0.0 || number.abs() >= 1e16 {
            return Err(self.bad(row, col, v, "expected a non-negative amount"));
        }
        Ok(Some((number * 100.0).round() as i128))
    }

    fn month(&self, row: usize, k: usize) -> Result<Option<NaiveDate>, PlansError> {
        let (col, v) = self.cell(row, k);
        let date = match v {
            Data::Empty => return Ok(None),
            Data::DateTime(dt) => excel_date(dt.as_f64()),
            Data::Float(f) => excel_date(*f),
            Data::String(s) | Data::DateTimeIso(s) => {
                let s = s.trim();
                NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .or_else(|_| NaiveDate::parse_from_str(s, "%d.%m.%Y"))
                    .ok()
            }
            _ => None,
        };
        let date =
            date.ok_or_else(|| self.bad(row, col, v, "expected a date (the month's first day)"))?;
        if date.day() != 1 {
            return Err(self.bad(row, col, v, "expected the first day of a month"));
        }
        Ok(Some(date))
    }
}

/// Excel's serial day number → date (1900 system).
fn excel_date(serial: f64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1899, 12, 30)?
        .checked_add_signed(chrono::Duration::days(serial.floor() as i64))
}

/// 0 → A, 25 → Z, 26 → AA.
fn column_letter(mut col: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn read_plans(book: &mut Book, path: &Path) -> Result<RecordBatch, PlansError> {
    let headers: Vec<&'static str> = PLAN_COLUMNS
        .iter()
        .filter(|(_, c)| c.is_some())
        .map(|(h, _)| *h)
        .collect();
    let sheet = Sheet::open(book, path, PLAN_SHEET, &headers)?;
    let mut month = Date32Builder::new();
    let mut ids: [Int64Builder; 4] = Default::default();
    let mut amount = Decimal128Builder::new()
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .expect("valid decimal");
    let mut count = Int64Builder::new();
    for row in 1..sheet.range.height() {
        let plan_amount = sheet.money(row, 5)?;
        let plan_count = sheet.int(row, 6)?;
        if plan_amount.is_none() && plan_count.is_none() {
            continue;
        }
        let m = sheet.month(row, 0)?.ok_or_else(|| {
            let (col, v) = sheet.cell(row, 0);
            sheet.bad(row, col, v, "a plan needs its month")
        })?;
        let department = sheet.int(row, 1)?;
        let employee = sheet.int(row, 2)?;
        if department.is_none() && employee.is_none() {
            let (col, v) = sheet.cell(row, 1);
            return Err(sheet.bad(row, col, v, "a plan needs a department or an employee"));
        }
        month.append_value(
            (m - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32,
        );
        for (k, b) in [department, employee, sheet.int(row, 3)?, sheet.int(row, 4)?]
            .into_iter()
            .zip(ids.iter_mut())
        {
            b.append_option(k);
        }
        amount.append_option(plan_amount);
        count.append_option(plan_count);
    }
    let [department, employee, pipeline, company] = &mut ids;
    // Canonical order: month, department_id, employee_id, company_id, pipeline_id, …
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(month.finish()),
        Arc::new(department.finish()),
        Arc::new(employee.finish()),
        Arc::new(company.finish()),
        Arc::new(pipeline.finish()),
        Arc::new(amount.finish()),
        Arc::new(count.finish()),
    ];
    batch("plans", arrays, path)
}

fn read_tiers(book: &mut Book, path: &Path) -> Result<RecordBatch, PlansError> {
    let headers: Vec<&'static str> = BONUS_COLUMNS.iter().map(|(h, _)| *h).collect();
    let sheet = Sheet::open(book, path, BONUS_SHEET, &headers)?;
    let mut min = Int64Builder::new();
    let mut bonus = Decimal128Builder::new()
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .expect("valid decimal");
    for row in 1..sheet.range.height() {
        let (n, b) = (sheet.int(row, 0)?, sheet.money(row, 1)?);
        match (n, b) {
            (None, None) => continue,
            (Some(n), Some(b)) => {
                min.append_value(n);
                bonus.append_value(b);
            }
            _ => {
                let k = if n.is_none() { 0 } else { 1 };
                let (col, v) = sheet.cell(row, k);
                return Err(sheet.bad(row, col, v, "a tier needs both a deal count and a bonus"));
            }
        }
    }
    batch(
        "bonus_tiers",
        vec![Arc::new(min.finish()), Arc::new(bonus.finish())],
        path,
    )
}

fn batch(table: &str, arrays: Vec<ArrayRef>, path: &Path) -> Result<RecordBatch, PlansError> {
    let schema = svodka_schema::table(table)
        .expect("canonical table")
        .schema();
    RecordBatch::try_new(schema, arrays).map_err(|e| PlansError::Arrow {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
