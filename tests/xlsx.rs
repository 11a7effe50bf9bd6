//! xlsx workbooks read back: sheet names, values, number formats, dates as dates, the
//! children as outline rows, the charts, hostile text as text.

use std::io::Read;
use std::path::{Path, PathBuf};

use calamine::{Data, DataType, Reader, Xlsx, open_workbook};

use crate::util::{block, fixture, fixture_copy, ok, run_args, run_on_fixture, write};

fn workbook(report: &str, data: &Path, extra: &[&str], dir: &Path) -> PathBuf {
    let out = dir.join(format!("{report}.xlsx"));
    let mut args = run_args(report, data, "2024-04-01", "2024-04-30");
    args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    out
}

fn open(path: &Path) -> Xlsx<std::io::BufReader<std::fs::File>> {
    open_workbook(path).unwrap()
}

/// A cell by row and column, counting from the sheet's top-left A1.
fn at(book: &mut Xlsx<std::io::BufReader<std::fs::File>>, sheet: &str, r: u32, c: u32) -> Data {
    let range = book.worksheet_range(sheet).unwrap();
    range.get_value((r, c)).cloned().unwrap_or(Data::Empty)
}

fn number_format(
    book: &mut Xlsx<std::io::BufReader<std::fs::File>>,
    sheet: &str,
    r: u32,
    c: u32,
) -> String {
    let styles = book.worksheet_style(sheet).unwrap();
    styles
        .get((r, c))
        .and_then(|s| s.number_format.as_ref())
        .map(|f| f.format_code.clone())
        .unwrap_or_default()
}

/// The text of a part of the xlsx package.
fn part(path: &Path, name: &str) -> Option<String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut f = zip.by_name(name).ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    Some(s)
}

fn parts(path: &Path) -> Vec<String> {
    let zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    zip.file_names().map(|n| n.unwrap().to_string()).collect()
}

#[test]
fn forgotten_workbook_values_formats_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let path = workbook("forgotten", &fixture("forgotten"), &[], dir.path());
    let mut book = open(&path);
    assert_eq!(
        book.sheet_names(),
        [
            "Параметры",
            "Итого",
            "По отделам",
            "По сотрудникам",
            "Забытые лиды",
            "Забытые сделки"
        ]
    );
    // Parameters: what was computed, over which period, from which data.
    let params = book.worksheet_range("Параметры").unwrap();
    let pairs: Vec<(String, String)> = params
        .rows()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(get("Отчёт").as_deref(), Some("Незабудка (forgotten)"));
    assert_eq!(get("Период").as_deref(), Some("01.04.2024 — 30.04.2024"));
    assert_eq!(get("На дату").as_deref(), Some("30.04.2024"));
    assert_eq!(get("Фильтры").as_deref(), Some("без фильтров"));
    assert_eq!(get("Лид забыт через, дней").as_deref(), Some("3"));
    assert!(
        get("Версия данных")
            .unwrap()
            .contains("snapshot 2024-05-06")
    );
    assert!(get("Сформирован").is_some());

    // KPIs as label / value rows.
    assert_eq!(
        at(&mut book, "Итого", 0, 1),
        Data::String("Значение".into())
    );
    let kpis = book.worksheet_range("Итого").unwrap();
    let sum_row = kpis
        .rows()
        .position(|r| r[0] == Data::String("Сумма забытых сделок".into()))
        .expect("the forgotten sum row") as u32;
    assert_eq!(at(&mut book, "Итого", sum_row, 1), Data::Float(4400.5));
    assert_eq!(
        number_format(&mut book, "Итого", sum_row, 1),
        "#,##0.00\\ \"₽\""
    );

    // A block sheet: header labels, numbers as numbers with their formats.
    let header: Vec<String> = book
        .worksheet_range("По отделам")
        .unwrap()
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header[..3], ["ID отдела", "Отдел", "Забытых лидов"]);
    assert_eq!(at(&mut book, "По отделам", 1, 0), Data::Float(1.0));
    assert_eq!(
        at(&mut book, "По отделам", 1, 1),
        Data::String("Продажи".into())
    );
    assert_eq!(at(&mut book, "По отделам", 1, 3), Data::Float(3.0));
    assert_eq!(at(&mut book, "По отделам", 1, 4), Data::Float(1400.5));
    assert_eq!(
        number_format(&mut book, "По отделам", 1, 4),
        "#,##0.00\\ \"₽\""
    );
    // Percent as a fraction with a percent format: 50 % is 0.5.
    assert_eq!(at(&mut book, "По отделам", 1, 6), Data::Float(0.5));
    assert_eq!(number_format(&mut book, "По отделам", 1, 6), "0.0%");
    assert_eq!(number_format(&mut book, "По отделам", 1, 2), "#,##0");

    // Timestamps are Excel dates in the client's time zone.
    let touched = at(&mut book, "Забытые сделки", 1, 5);
    assert_eq!(
        touched.as_datetime().unwrap().to_string(),
        "2024-04-01 09:00:00",
        "{touched:?}"
    );
    assert_eq!(
        number_format(&mut book, "Забытые сделки", 1, 5),
        "dd.mm.yyyy hh:mm"
    );

    // Frozen header and a filter on each block sheet; two native bar charts.
    let sheet3 = part(&path, "xl/worksheets/sheet3.xml").unwrap();
    assert!(sheet3.contains("<autoFilter ref=\"A1:"), "autofilter");
    assert!(sheet3.contains("state=\"frozen\""), "frozen pane");
    let charts: Vec<String> = parts(&path)
        .into_iter()
        .filter(|p| p.starts_with("xl/charts/chart"))
        .collect();
    assert_eq!(charts.len(), 2, "{charts:?}");
    let chart = part(&path, "xl/charts/chart1.xml").unwrap();
    assert!(chart.contains("<c:barDir val=\"col\"/>"));
    assert_eq!(chart.matches("<c:ser>").count(), 2, "leads and deals");
    assert!(chart.contains("По отделам"));
    // The link column holds hyperlinks into the CRM.
    let rels = part(&path, "xl/worksheets/_rels/sheet6.xml.rels").unwrap();
    assert!(rels.contains("https://fixture.bitrix24.ru/crm/deal/details/5/"));
}

#[test]
fn children_are_collapsed_outline_rows_and_totals_close_the_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let path = workbook("sales_plan", &fixture("forgotten"), &[], dir.path());
    let json = run_on_fixture("sales_plan", None, "2024-04-01", "2024-04-30", &[]);
    let rows = block(&json, "by_department")["rows"].as_array().unwrap();
    let children: usize = rows
        .iter()
        .flat_map(|r| r["children"].as_object().unwrap().values())
        .map(|v| v.as_array().unwrap().len())
        .sum();
    let mut book = open(&path);
    let names = book.sheet_names();
    let i = names.iter().position(|n| n == "По отделам").unwrap();
    let xml = part(&path, &format!("xl/worksheets/sheet{}.xml", i + 1)).unwrap();
    assert_eq!(xml.matches("outlineLevel=\"1\"").count(), children);
    assert_eq!(xml.matches("hidden=\"1\"").count(), children);
    let range = book.worksheet_range("По отделам").unwrap();
    let last = range.rows().next_back().unwrap();
    assert_eq!(last[0], Data::String("Итого".into()));
    // Every block has a sheet after the parameters.
    assert_eq!(names.len(), 1 + json["blocks"].as_array().unwrap().len());
}

#[test]
fn one_block_exports_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = workbook(
        "forgotten",
        &fixture("forgotten"),
        &["--block", "forgotten_deals"],
        dir.path(),
    );
    let mut book = open(&path);
    assert_eq!(book.sheet_names(), ["Параметры", "Забытые сделки"]);
    let range = book.worksheet_range("Забытые сделки").unwrap();
    assert_eq!(range.rows().count(), 1 + 4);
}

#[test]
fn hostile_text_stays_text() {
    let data = fixture_copy("forgotten");
    let deals = std::fs::read_to_string(data.path().join("deals.csv")).unwrap();
    write(
        data.path(),
        "deals.csv",
        &deals
            .replace(
                "Сделка пять",
                "\"=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"",
            )
            .replace("Сделка семь", "<img src=x onerror=alert(1)>"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = workbook(
        "forgotten",
        data.path(),
        &["--block", "forgotten_deals"],
        dir.path(),
    );
    let mut book = open(&path);
    assert_eq!(
        at(&mut book, "Забытые сделки", 1, 1),
        Data::String("=HYPERLINK(\"http://evil\",\"x\")".into())
    );
    assert_eq!(
        at(&mut book, "Забытые сделки", 2, 1),
        Data::String("<img src=x onerror=alert(1)>".into())
    );
    let sheet = part(&path, "xl/worksheets/sheet2.xml").unwrap();
    assert!(!sheet.contains("<f>"), "no formulas");
}

/// A heatmap in a workbook is its matrix — a row per employee, a column per week — under
/// a two-colour scale.
#[test]
fn a_heatmap_is_a_colour_scaled_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let reports = crate::util::root().join("tests/fixtures/heatmap");
    let path = workbook(
        "weekly",
        &fixture("forgotten"),
        &["--reports", reports.to_str().unwrap()],
        dir.path(),
    );
    let mut book = open(&path);
    let sheet = "Созданные сделки по неделям";
    let range = book.worksheet_range(sheet).unwrap();
    let find = |text: &str| {
        range
            .cells()
            .find(|(_, _, v)| **v == Data::String(text.to_string()))
            .map(|(r, c, _)| (r as u32, c as u32))
            .unwrap_or_else(|| panic!("no {text}"))
    };
    let (r14, c14) = find("2024-W14");
    assert_eq!(find("2024-W15"), (r14, c14 + 1));
    let (_, c05) = find("2024-W05");
    let (rg, cg) = find("Глеб");
    assert_eq!(cg, c05 - 1, "names left of the first week");
    assert_eq!(at(&mut book, sheet, rg, c14), Data::Float(1.0));
    let (ra, _) = find("Анна");
    let (_, c09) = find("2024-W09");
    assert_eq!(at(&mut book, sheet, ra, c09), Data::Float(2.0));
    let xml = parts(&path)
        .into_iter()
        .filter(|p| p.starts_with("xl/worksheets/sheet"))
        .filter_map(|p| part(&path, &p))
        .find(|x| x.contains("<conditionalFormatting"))
        .expect("a conditional format");
    assert!(xml.contains("<colorScale>"), "{xml}");
}
