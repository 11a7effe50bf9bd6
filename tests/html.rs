//! HTML pages in headless Chromium: they load with no console error and no network request,
//! charts have a mark per value, headers sort, `+` expands children, numbers explain
//! themselves on hover, hostile text stays text. Screenshots go to target/screenshots/.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::browser::Browser;
use crate::util::{
    REPORTS, block, fixture, fixture_copy, ok, root, run_args, run_on_fixture, write,
};

/// Renders `report` on the fixture (April 2024) as HTML into `dir`.
fn page(report: &str, data: &Path, reports: Option<&Path>, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{report}.html"));
    let mut args = run_args(report, data, "2024-04-01", "2024-04-30");
    args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    if let Some(r) = reports {
        args.extend(["--reports".to_string(), r.to_str().unwrap().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    out
}

fn screenshot_path(name: &str) -> PathBuf {
    root()
        .join("target")
        .join("screenshots")
        .join(format!("{name}.png"))
}

fn count(b: &mut Browser, selector: &str) -> u64 {
    let sel = serde_json::to_string(selector).unwrap();
    b.eval(&format!("document.querySelectorAll({sel}).length"))
        .as_u64()
        .unwrap()
}

fn texts(b: &mut Browser, selector: &str) -> Vec<String> {
    let sel = serde_json::to_string(selector).unwrap();
    let v = b.eval(&format!(
        "Array.from(document.querySelectorAll({sel})).map(e => e.textContent.trim())"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn clean_load(b: &mut Browser, path: &Path) {
    b.open(path);
    assert_eq!(b.errors(), Vec::<String>::new(), "console errors");
    assert_eq!(b.requests(path), Vec::<String>::new(), "network requests");
}

#[test]
fn forgotten_page_charts_sorting_links_and_hover() {
    let dir = tempfile::tempdir().unwrap();
    let path = page("forgotten", &fixture("forgotten"), None, dir.path());
    let html = std::fs::read_to_string(&path).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for external in [
        "<link rel=\"stylesheet\"",
        "<script src",
        "<img",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    let mut b = Browser::start();
    clean_load(&mut b, &path);

    // The description's code spans are code, not backticks.
    assert_eq!(
        texts(&mut b, "p.lead code"),
        ["as_of", "lead_forgotten_days", "deal_forgotten_days"]
    );
    assert!(!texts(&mut b, "p.lead")[0].contains('`'));
    // KPI cards: the seven measures of `totals`, Russian number format.
    assert_eq!(count(&mut b, "#block-totals .kpi"), 7);
    assert_eq!(
        texts(
            &mut b,
            "#block-totals .kpi[data-column=forgotten_sum] .kpi-value"
        ),
        ["4\u{a0}400,50\u{a0}₽"]
    );
    // A bar per department and series: Продажи, Опт and «no department» × leads, deals.
    assert_eq!(count(&mut b, "#block-by_department svg rect.mark"), 6);
    assert_eq!(count(&mut b, "#block-by_employee svg rect.mark"), 8);
    let tips = b.eval(
        "Array.from(document.querySelectorAll('#block-by_department rect.mark')).map(r => r.dataset.tip)",
    );
    assert_eq!(tips[0], "Продажи · Забытых лидов: 1");
    assert_eq!(tips[1], "Продажи · Забытых сделок: 3");

    // Table: rows in the block's order; clicking «Забытых сделок» sorts ascending, again
    // descending.
    let first_col = "#block-by_department tbody tr.row td:first-child";
    assert_eq!(texts(&mut b, first_col), ["Продажи", "Опт", "(не указано)"]);
    b.click("#block-by_department th[data-column=forgotten_deals]");
    assert_eq!(texts(&mut b, first_col), ["(не указано)", "Опт", "Продажи"]);
    b.click("#block-by_department th[data-column=forgotten_deals]");
    assert_eq!(texts(&mut b, first_col), ["Продажи", "Опт", "(не указано)"]);
    // Ids hidden where names are shown; the name carries its filter.
    assert_eq!(
        count(&mut b, "#block-by_department th[data-column=department_id]"),
        0
    );
    assert_eq!(
        b.eval("document.querySelector('#block-by_department td[data-filter=department]').dataset.value"),
        "1"
    );

    // Deal ids and titles link into the CRM.
    let href =
        b.eval("document.querySelector('#block-forgotten_deals tbody td a').getAttribute('href')");
    assert_eq!(href, "https://fixture.bitrix24.ru/crm/deal/details/5/");
    assert_eq!(
        count(&mut b, "#block-forgotten_deals th[data-column=url]"),
        0
    );

    // Hovering a number tells its definition and the filters in force.
    b.hover("#block-by_department tbody tr.row td.num");
    let tip = b.eval(
        "document.getElementById('tip').hidden ? null : document.getElementById('tip').textContent",
    );
    let tip = tip.as_str().expect("the tooltip shows");
    assert!(tip.contains("Забытых лидов = leads.forgotten"), "{tip}");
    assert!(tip.contains("Период: 01.04.2024 — 30.04.2024"), "{tip}");
    assert!(tip.contains("Фильтры: без фильтров"), "{tip}");

    // Clicking a department marks its rows in every block.
    b.click("#block-by_department td[data-filter=department] span");
    assert_eq!(count(&mut b, "tr.highlight"), 1);

    b.screenshot(&screenshot_path("forgotten"));
    assert_eq!(b.errors(), Vec::<String>::new());
}

#[test]
fn every_report_loads_cleanly_with_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("forgotten");
    let mut b = Browser::start();
    let mut seen_kinds = std::collections::BTreeSet::new();
    for report in REPORTS {
        let path = page(report, &data, None, dir.path());
        b.events.clear();
        clean_load(&mut b, &path);
        let json = run_on_fixture(report, None, "2024-04-01", "2024-04-30", &[]);
        // Every block is on the page, with its title.
        for blk in json["blocks"].as_array().unwrap() {
            let id = blk["id"].as_str().unwrap();
            assert_eq!(
                count(&mut b, &format!("#block-{id} h2")),
                1,
                "{report}.{id}"
            );
        }
        let kinds =
            b.eval("Array.from(document.querySelectorAll('figure.chart')).map(f => f.className)");
        for k in kinds.as_array().unwrap() {
            seen_kinds.insert(k.as_str().unwrap().to_string());
        }
        if report == "sales_plan" {
            // Unpivoted metrics read by their labels; the JSON keeps their names.
            assert_eq!(
                texts(
                    &mut b,
                    "#block-month_vs_previous tbody tr.row td:first-child"
                ),
                ["Сумма выигранных", "Выиграно сделок", "Средний чек"]
            );
            let rows = &crate::util::block(&json, "month_vs_previous")["rows"];
            assert_eq!(rows[0]["metric"], "won_sum");
        }
        b.screenshot(&screenshot_path(report));
    }
    // Each chart kind of the shipped reports is drawn on the fixture (lines over one month
    // are bars: `marketing_pie_funnel_and_line_have_a_mark_per_value` draws one).
    assert_eq!(
        seen_kinds.into_iter().collect::<Vec<_>>(),
        [
            "chart chart-bar",
            "chart chart-funnel",
            "chart chart-pie",
            "chart chart-stacked_bar"
        ]
    );
}

#[test]
fn marketing_pie_funnel_and_line_have_a_mark_per_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = page("marketing", &fixture("forgotten"), None, dir.path());
    let json = run_on_fixture("marketing", None, "2024-04-01", "2024-04-30", &[]);
    let mut b = Browser::start();
    clean_load(&mut b, &path);
    // Pie: a slice per source that received leads.
    let slices = block(&json, "source_share")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["received"].as_f64().unwrap_or(0.0) > 0.0)
        .count() as u64;
    assert!(slices > 0);
    assert_eq!(count(&mut b, "#block-source_share path.mark"), slices);
    // Funnel: a step per row (received, converted, won).
    assert_eq!(count(&mut b, "#block-funnel rect.mark"), 3);
    // A line over one month would be a column of dots: it is drawn as bars, one per row
    // with a value.
    let values = |json: &Value| {
        block(json, "source_dynamics")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["value"].is_null())
            .count() as u64
    };
    assert_eq!(count(&mut b, "#block-source_dynamics circle.mark"), 0);
    assert_eq!(
        count(&mut b, "#block-source_dynamics rect.mark"),
        values(&json)
    );
    // Over two months it is a line: a point per row with a value.
    let out = dir.path().join("marketing-2.html");
    let mut args = run_args(
        "marketing",
        &fixture("forgotten"),
        "2024-03-01",
        "2024-04-30",
    );
    args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let json = run_on_fixture("marketing", None, "2024-03-01", "2024-04-30", &[]);
    b.events.clear();
    clean_load(&mut b, &out);
    assert_eq!(count(&mut b, "#block-source_dynamics figure.chart-line"), 1);
    assert_eq!(
        count(&mut b, "#block-source_dynamics circle.mark"),
        values(&json)
    );
}

#[test]
fn plus_expands_children_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = page("sales_plan", &fixture("forgotten"), None, dir.path());
    let json = run_on_fixture("sales_plan", None, "2024-04-01", "2024-04-30", &[]);
    let first = &block(&json, "by_department")["rows"][0];
    let children: usize = first["children"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert!(children > 0);
    let mut b = Browser::start();
    clean_load(&mut b, &path);
    let visible = "#block-by_department tbody.group:first-of-type tr.child:not([hidden])";
    assert_eq!(count(&mut b, visible), 0);
    b.click("#block-by_department tbody.group:first-of-type button.toggle");
    assert_eq!(count(&mut b, visible), children as u64);
    let employee = first["children"]["employees"][0]["employee"]
        .as_str()
        .unwrap();
    let cells = texts(&mut b, &format!("{visible} td.indent"));
    assert_eq!(cells[0], employee);
    b.click("#block-by_department tbody.group:first-of-type button.toggle");
    assert_eq!(count(&mut b, visible), 0);
    // The totals row, labelled, after the groups.
    let totals = texts(&mut b, "#block-by_department tfoot td");
    assert_eq!(totals[1], "Итого");

    // KPI cards compare with March, whole; a smaller remainder of the plan is good news.
    let plan = block(&json, "plan_fact");
    assert_eq!(plan["previous"]["from"], "2024-03-01");
    assert_eq!(plan["previous"]["to"], "2024-03-31");
    let tone = |now: f64, before: f64, lower_is_better: bool| {
        if (now - before).abs() < 0.005 {
            "flat"
        } else if (now > before) != lower_is_better {
            "good"
        } else {
            "bad"
        }
    };
    for (column, lower) in [("fact", false), ("remaining", true)] {
        let now = plan["rows"][0][column].as_f64().unwrap();
        let before = plan["previous"]["row"][column].as_f64().unwrap();
        let class = b.eval(&format!(
            "document.querySelector('#block-plan_fact .kpi[data-column={column}] .kpi-change').className"
        ));
        assert_eq!(
            class,
            format!("kpi-change {}", tone(now, before, lower)),
            "{column}: {now} against {before}"
        );
    }
}

#[test]
fn hostile_text_is_shown_as_text() {
    let data = fixture_copy("forgotten");
    let deals = std::fs::read_to_string(data.path().join("deals.csv")).unwrap();
    write(
        data.path(),
        "deals.csv",
        &deals.replace(
            "Сделка пять",
            "\"<img src=x onerror=\"\"window.pwned=1\"\">\"",
        ),
    );
    let reports = tempfile::tempdir().unwrap();
    write(
        reports.path(),
        "hostile.yaml",
        r#"report: hostile
title: "Итоги </script><script>window.pwned=2</script>"
description: "Код `<b>as_of</b>` и `x`, и непарная ` кавычка"
blocks:
  - id: deals
    title: "Сделки <b>жирно</b>"
    from: deals
    where: is_forgotten
    columns: [id, title, amount, url]
    sort: [id]
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = page("hostile", data.path(), Some(reports.path()), dir.path());
    let mut b = Browser::start();
    clean_load(&mut b, &path);
    assert_eq!(b.eval("window.pwned === undefined"), Value::Bool(true));
    assert_eq!(count(&mut b, "img"), 0);
    assert_eq!(count(&mut b, "h2 b"), 0);
    assert_eq!(count(&mut b, "p.lead b"), 0);
    assert_eq!(texts(&mut b, "p.lead code"), ["<b>as_of</b>", "x"]);
    assert!(texts(&mut b, "p.lead")[0].ends_with("и непарная ` кавычка"));
    assert_eq!(
        texts(&mut b, "h1"),
        ["Итоги </script><script>window.pwned=2</script>"]
    );
    let titles = texts(&mut b, "#block-deals tbody td:nth-child(2)");
    assert!(
        titles.contains(&"<img src=x onerror=\"window.pwned=1\">".to_string()),
        "{titles:?}"
    );
}

#[test]
fn the_page_shows_the_filters_applied() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.html");
    ok(&[
        "run",
        "forgotten",
        "--data",
        fixture("forgotten").to_str().unwrap(),
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
        "--department",
        "1",
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut b = Browser::start();
    clean_load(&mut b, &out);
    assert_eq!(texts(&mut b, "#filters .chip"), ["Отдел: Продажи (1)"]);
    b.hover("#block-by_employee tbody tr.row td.num");
    let tip = b.eval("document.getElementById('tip').textContent");
    assert!(
        tip.as_str()
            .unwrap()
            .contains("Фильтры: Отдел: Продажи (1)"),
        "{tip}"
    );
}

#[test]
fn english_locale_numbers_dates_and_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("en.html");
    let mut args = run_args(
        "forgotten",
        &fixture("forgotten"),
        "2024-04-01",
        "2024-04-30",
    );
    args.extend(["--locale", "en", "--out", out.to_str().unwrap()].map(String::from));
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("4,400.50\u{a0}₽"), "money in English format");
    assert!(
        html.contains(">2024-04-01 — 2024-04-30<"),
        "dates in ISO form"
    );
    assert!(html.contains("<dt>Period</dt>") && html.contains("<dt>Filters</dt>"));
}

/// A heatmap: a cell per employee and week with deals, coloured on a scale shown in a
/// legend, its value on hover.
#[test]
fn a_heatmap_has_a_cell_per_value_and_a_colour_scale() {
    let dir = tempfile::tempdir().unwrap();
    let reports = crate::util::root().join("tests/fixtures/heatmap");
    let path = page("weekly", &fixture("forgotten"), Some(&reports), dir.path());
    let mut b = Browser::start();
    clean_load(&mut b, &path);
    // Deals by their creation week (the block counts every deal of the model): Борис in
    // weeks 5, 15 and 16, Вера 5 and 18, Анна 9 (two deals) and 13, Глеб 14.
    assert_eq!(
        count(&mut b, "#block-heat figure.chart-heatmap rect.mark"),
        8
    );
    let tips = b.eval(
        "Array.from(document.querySelectorAll('#block-heat rect.mark')).map(r => r.dataset.tip)",
    );
    assert_eq!(
        tips,
        serde_json::json!([
            "Борис · 2024-W05: 1",
            "Борис · 2024-W15: 1",
            "Борис · 2024-W16: 1",
            "Вера · 2024-W05: 1",
            "Вера · 2024-W18: 1",
            "Анна · 2024-W09: 2",
            "Анна · 2024-W13: 1",
            "Глеб · 2024-W14: 1"
        ])
    );
    // Two deals, the most: the darkest cell.
    let fills = b.eval(
        "Array.from(document.querySelectorAll('#block-heat rect.mark')).map(r => r.getAttribute('fill'))",
    );
    assert_eq!(fills[5], "#1f4fa8");
    assert_eq!(fills[0], "#eef4fd");
    assert_eq!(count(&mut b, "#block-heat .heat-legend .heat-scale"), 1);
    // `pivot: week`: the table has a column per week and a row per employee.
    let headers = texts(&mut b, "#block-heat thead th");
    assert_eq!(
        headers[1..],
        [
            "2024-W05", "2024-W09", "2024-W13", "2024-W14", "2024-W15", "2024-W16", "2024-W18"
        ]
    );
    assert_eq!(
        texts(&mut b, "#block-heat tbody tr.row td:first-child"),
        ["Борис", "Вера", "Анна", "Глеб"]
    );
    let cells = texts(&mut b, "#block-heat tbody tr.row td");
    assert_eq!(cells.len(), 4 * 8);
    assert_eq!(
        cells[2 * 8 + 2],
        "2",
        "Анна's two deals of week 9: {cells:?}"
    );
    // JSON keeps a row per employee and week.
    let json =
        crate::util::run_on_fixture("weekly", Some(&reports), "2024-04-01", "2024-04-30", &[]);
    assert_eq!(block(&json, "heat")["rows"].as_array().unwrap().len(), 8);
    assert_eq!(b.errors(), Vec::<String>::new());
}
