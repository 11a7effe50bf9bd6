use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type};

fn directory() -> Directory {
    Directory {
        departments: vec![(1, "Продажи".into())],
        employees: vec![(7, "Анна".into(), Some(1))],
        pipelines: vec![(0, "Общая".into())],
    }
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A template filled in by hand: Анна's April plan, a department plan, one tier.
fn filled(path: &Path, amount_cell: Option<&str>) {
    let mut book = Workbook::new();
    let plan = book.add_worksheet().set_name(PLAN_SHEET).unwrap();
    for (c, (h, _)) in PLAN_COLUMNS.iter().enumerate() {
        plan.write_string(0, c as u16, *h).unwrap();
    }
    let april = ExcelDateTime::from_ymd(2024, 4, 1).unwrap();
    let date = Format::new().set_num_format("dd.mm.yyyy");
    plan.write_datetime_with_format(1, 0, &april, &date)
        .unwrap();
    plan.write_number(1, 1, 1.0).unwrap();
    plan.write_number(1, 3, 7.0).unwrap();
    plan.write_number(1, 8, 3000.5).unwrap();
    plan.write_number(1, 9, 3.0).unwrap();
    plan.write_datetime_with_format(2, 0, &april, &date)
        .unwrap();
    plan.write_number(2, 1, 1.0).unwrap();
    match amount_cell {
        Some(text) => plan.write_string(2, 8, text).unwrap(),
        None => plan.write_number(2, 8, 9000.0).unwrap(),
    };
    // A template row left empty: not a plan.
    plan.write_datetime_with_format(3, 0, &april, &date)
        .unwrap();
    plan.write_number(3, 3, 8.0).unwrap();
    let bonus = book.add_worksheet().set_name(BONUS_SHEET).unwrap();
    bonus.write_string(0, 0, "Сделок от").unwrap();
    bonus.write_string(0, 1, "Бонус").unwrap();
    bonus.write_number(1, 0, 5.0).unwrap();
    bonus.write_number(1, 1, 15000.0).unwrap();
    book.save(path).unwrap();
}

#[test]
fn template_lists_departments_and_employees_per_month_and_reads_back_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.xlsx");
    write_template(&directory(), &[d("2024-04-01"), d("2024-05-01")], &path).unwrap();
    let mut book: Xlsx<_> = open_workbook(&path).unwrap();
    let range = book.worksheet_range(PLAN_SHEET).unwrap();
    assert_eq!(
        range.height(),
        1 + 2 * 2,
        "header + (1 department + 1 employee) × 2 months"
    );
    assert_eq!(range.get_value((2, 4)), Some(&Data::String("Анна".into())));
    let (plans, tiers) = read(&path).unwrap();
    assert_eq!(
        (plans.num_rows(), tiers.num_rows()),
        (0, 0),
        "nothing filled in yet"
    );
    svodka_schema::check_batch("plans", &plans).unwrap();
}

#[test]
fn filled_workbook_becomes_canonical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.xlsx");
    filled(&path, None);
    let (plans, tiers) = read(&path).unwrap();
    svodka_schema::check_batch("plans", &plans).unwrap();
    svodka_schema::check_batch("bonus_tiers", &tiers).unwrap();
    assert_eq!(plans.num_rows(), 2);
    let month = plans
        .column_by_name("month")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(
        month.value(0),
        (d("2024-04-01") - d("1970-01-01")).num_days() as i32
    );
    let employee = plans
        .column_by_name("employee_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(employee.value(0), 7);
    assert!(employee.is_null(1), "a department's plan");
    let amount = plans
        .column_by_name("plan_amount")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!((amount.value(0), amount.value(1)), (300_050, 900_000));
    let bonus = tiers
        .column_by_name("bonus")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(bonus.value(0), 1_500_000);
}

#[test]
fn a_bad_cell_names_sheet_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.xlsx");
    filled(&path, Some("девять тысяч"));
    let err = read(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("sheet «План», row 3, column I «План, сумма»: expected an amount: String(\"девять тысяч\")"),
        "{err}"
    );
}

#[test]
fn not_an_xlsx_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.xlsx");
    std::fs::write(&path, "month,plan\n").unwrap();
    assert!(matches!(read(&path), Err(PlansError::Open { .. })));
}

#[test]
fn letters() {
    assert_eq!(column_letter(0), "A");
    assert_eq!(column_letter(8), "I");
    assert_eq!(column_letter(26), "AA");
}
