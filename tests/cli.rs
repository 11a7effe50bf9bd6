//! The command line as a user meets it: list, explain, demo, errors for bad input.

use crate::util::{fails, fails_on_fixture, fixture, fixture_copy, json, ok, write};

#[test]
fn list_shows_forgotten() {
    let out = ok(&["list"]);
    assert!(out.lines().any(|l| l.starts_with("forgotten\tНезабудка\t[totals, by_department, by_employee, forgotten_leads, forgotten_deals]")), "{out}");
}

#[test]
fn explain_prints_definitions_and_plans() {
    let data = fixture("forgotten");
    let out = ok(&[
        "explain",
        "forgotten",
        "--block",
        "by_department",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.contains("== block by_department — По отделам"), "{out}");
    assert!(out.contains("forgotten_share (Доля забытых, %, percent): deals.forgotten_share = 100.0 * forgotten_created / nullif(created, 0)"), "{out}");
    assert!(out.contains("Aggregate:"), "{out}");
    // Without data, against the empty canonical tables.
    let out = ok(&["explain", "forgotten"]);
    assert!(out.contains("== block forgotten_deals"), "{out}");
}

#[test]
fn help_everywhere() {
    for cmd in ["run", "demo", "list", "explain", "check"] {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage: svodka"), "{cmd}: {out}");
    }
}

#[test]
fn unknown_report_and_block() {
    let err = fails_on_fixture("forgoten", &[]);
    assert!(
        err.contains("unknown report `forgoten`, did you mean `forgotten`?"),
        "{err}"
    );
    let err = fails_on_fixture("forgotten", &["--block", "total"]);
    assert!(
        err.contains("report `forgotten` has no block `total`, did you mean `totals`?"),
        "{err}"
    );
}

#[test]
fn bad_parameters() {
    let err = fails_on_fixture("forgotten", &["--from", "2024-13-01"]);
    assert!(err.contains("expected YYYY-MM-DD"), "{err}");
    let err = fails_on_fixture("forgotten", &["--from", "2024-05-01", "--to", "2024-04-01"]);
    assert!(
        err.contains("the period starts (2024-05-01) after it ends (2024-04-01)"),
        "{err}"
    );
    let err = fails_on_fixture("forgotten", &["--employee", "x"]);
    assert!(
        err.contains("employee: expected a numeric id, got \"x\""),
        "{err}"
    );
    let err = fails(&["run", "forgotten", "--data", "/nonexistent/folder"]);
    assert!(err.contains("/nonexistent/folder: not a folder"), "{err}");
}

#[test]
fn csv_error_names_file_line_column_and_value() {
    let dir = fixture_copy("forgotten");
    let deals = std::fs::read_to_string(dir.path().join("deals.csv")).unwrap();
    write(
        dir.path(),
        "deals.csv",
        &deals.replace(
            "2024-04-10T10:00:00+03:00,,2024-04-10",
            "10.04.2024,,2024-04-10",
        ),
    );
    let err = fails(&["run", "forgotten", "--data", dir.path().to_str().unwrap()]);
    assert!(err.contains("table `deals`:"), "{err}");
    assert!(
        err.contains(
            "deals.csv:4: column `created_at`: expected an ISO 8601 timestamp with an offset"
        ),
        "{err}"
    );
    assert!(err.contains("\"10.04.2024\""), "{err}");
}

#[test]
fn demo_is_deterministic_and_complete() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--out",
        a.path().to_str().unwrap(),
        "--deals",
        "300",
        "--seed",
        "7",
    ]);
    ok(&[
        "demo",
        "--out",
        b.path().to_str().unwrap(),
        "--deals",
        "300",
        "--seed",
        "7",
    ]);
    for t in svodka_schema::TABLES.iter().map(|t| t.name) {
        let file = format!("{t}.csv");
        let x = std::fs::read(a.path().join(&file)).unwrap_or_else(|_| panic!("{file} written"));
        let y = std::fs::read(b.path().join(&file)).unwrap();
        assert!(x == y, "{file} differs between two runs with one seed");
    }
    let deals = std::fs::read_to_string(a.path().join("deals.csv")).unwrap();
    assert_eq!(deals.lines().count(), 301, "header + 300 deals");
    // And the report runs on it.
    let r = json(&["run", "forgotten", "--data", a.path().to_str().unwrap()]);
    assert_eq!(r["params"]["as_of"], "2026-11-25");
    let c = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--out",
        c.path().to_str().unwrap(),
        "--deals",
        "300",
        "--seed",
        "8",
    ]);
    assert_ne!(
        std::fs::read(c.path().join("deals.csv")).unwrap(),
        deals.into_bytes()
    );
}

#[test]
fn a_new_report_needs_no_rust() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "models/big_deals.yaml",
        "model: big_deals\n# `deals` here is the shipped model: its columns (employee…) come along.\nfrom: deals\nwhere: amount >= $min_amount\nsettings:\n  min_amount: { type: number, default: 1000, min: 0 }\nmeasures:\n  count: { expr: count(*), label: Крупных сделок }\n  total: { expr: sum(amount), type: money }\n",
    );
    write(
        dir.path(),
        "big.yaml",
        "report: big\ntitle: Крупные сделки\nblocks:\n  - id: by_employee\n    title: По сотрудникам\n    from: big_deals\n    by: [employee]\n    measures: [count, total]\n    sort: [total desc, employee]\n",
    );
    let data = fixture("forgotten");
    let r = json(&[
        "run",
        "big",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let rows = crate::util::block(&r, "by_employee")["rows"].clone();
    assert_eq!(
        rows,
        serde_json::json!([
            {"employee": "Борис", "count": 1, "total": 5000.0},
            {"employee": "Анна", "count": 2, "total": 3000.0},
            {"employee": "Вера", "count": 1, "total": 3000.0},
        ])
    );
    let r = json(&[
        "run",
        "big",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--set",
        "min_amount=2500",
    ]);
    assert_eq!(
        crate::util::block(&r, "by_employee")["rows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_worked_example_of_the_language_guide_runs() {
    let dir = crate::util::root().join("docs/examples/big_deals");
    let data = fixture("forgotten");
    let r = json(&[
        "run",
        "big",
        "--reports",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--set",
        "min_amount=1000",
    ]);
    let b = crate::util::block(&r, "by_employee");
    // Deals ≥ 1000: Анна 1 (1000) and 2 (2000), Борис 4 (5000, won), Вера 5 (3000, won), 8 (900: no).
    assert_eq!(
        b["rows"],
        serde_json::json!([
            {"employee_id": 2, "employee": "Борис", "count": 1, "total": 5000.0, "win_rate": 100.0},
            {"employee_id": 1, "employee": "Анна", "count": 2, "total": 3000.0, "win_rate": 0.0},
            {"employee_id": 3, "employee": "Вера", "count": 1, "total": 3000.0, "win_rate": 100.0},
        ])
    );
    assert_eq!(
        b["totals"],
        serde_json::json!({"employee_id": null, "employee": null, "count": 4, "total": 11000.0, "win_rate": 50.0})
    );
}

#[test]
fn selector_parameter_chooses_a_measure() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pick.yaml",
        r#"report: pick
title: Выбор показателя
parameters:
  metric: { type: enum, values: [created, open, forgotten], default: open, label: Показатель }
blocks:
  - id: by_employee
    title: По сотрудникам
    from: deals
    by: [employee_id]
    measures:
      value: "case $metric when 'created' then created when 'open' then open else forgotten end"
    sort: [employee_id]
"#,
    );
    let run = |extra: &[&str]| {
        crate::util::run_on_fixture("pick", Some(dir.path()), "2024-04-01", "2024-04-30", extra)
    };
    let values = |r: &serde_json::Value| -> Vec<i64> {
        crate::util::block(r, "by_employee")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_i64().unwrap())
            .collect()
    };
    let open = run(&[]);
    assert_eq!(open["params"]["metric"], "open");
    assert_eq!(
        values(&open),
        vec![3, 1, 1, 1],
        "open deals of Анна, Борис, Вера, Глеб at 2024-04-30"
    );
    let forgotten = run(&["--param", "metric=forgotten"]);
    assert_eq!(values(&forgotten), vec![2, 1, 1, 0]);
    let err = fails(&[
        "run",
        "pick",
        "--reports",
        dir.path().to_str().unwrap(),
        "--data",
        fixture("forgotten").to_str().unwrap(),
        "--param",
        "metric=forgoten",
    ]);
    assert!(err.contains("parameter `metric`: \"forgoten\" is not one of: created, open, forgotten, did you mean `forgotten`?"), "{err}");
}

#[test]
fn explain_works_for_every_block_of_every_report() {
    let list = ok(&["list"]);
    for line in list.lines() {
        let mut parts = line.split('\t');
        let report = parts.next().unwrap();
        let blocks = parts
            .nth(1)
            .unwrap()
            .trim_matches(['[', ']'])
            .split(", ")
            .count();
        let out = ok(&["explain", report]);
        assert_eq!(out.matches("\n== block ").count(), blocks, "{report}");
        assert_eq!(out.matches("  plan:").count(), blocks, "{report}");
    }
    assert_eq!(list.lines().count(), 6, "the six reports of reports.md");
}

#[test]
fn plans_workbook_template_and_reading() {
    let dir = fixture_copy("forgotten");
    let book = dir.path().join("plans.xlsx");
    ok(&[
        "plan",
        "template",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        book.to_str().unwrap(),
        "--year",
        "2024",
    ]);
    // The workbook, still empty, now replaces plans.csv: no plan at all.
    let r = json(&[
        "run",
        "sales_plan",
        "--data",
        dir.path().to_str().unwrap(),
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
        "--block",
        "plan_fact",
    ]);
    assert_eq!(crate::util::block(&r, "plan_fact")["rows"][0]["plan"], 0.0);
    std::fs::write(&book, "not a workbook").unwrap();
    let err = fails(&[
        "run",
        "sales_plan",
        "--data",
        dir.path().to_str().unwrap(),
        "--block",
        "plan_fact",
    ]);
    assert!(
        err.contains("table `plans`:") && err.contains("plans.xlsx"),
        "{err}"
    );
}

/// docs/tables.md is the contract users read: every canonical table has its paragraph
/// there, naming each of its columns, its derived ones and its key.
#[test]
fn the_tables_page_lists_every_canonical_column() {
    let page = std::fs::read_to_string(crate::util::root().join("docs/tables.md")).unwrap();
    for t in svodka_schema::TABLES {
        let start = page
            .find(&format!("**`{}`**", t.name))
            .unwrap_or_else(|| panic!("no paragraph for `{}`", t.name));
        let end = page[start + 1..]
            .find("\n**`")
            .or_else(|| page[start + 1..].find("\n## "))
            .map_or(page.len(), |e| start + 1 + e);
        let paragraph = &page[start..end];
        let derived = svodka_schema::derived_column(t.name).map(|d| d.name);
        for column in t.columns.iter().map(|c| c.name).chain(derived) {
            assert!(
                paragraph.contains(&format!("`{column}`")),
                "docs/tables.md: `{}` lacks `{column}`",
                t.name
            );
        }
        let key = match t.key {
            [] => "No key".to_string(),
            key => format!(
                "Key {}",
                key.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        assert!(
            paragraph.replace('\n', " ").contains(&key),
            "docs/tables.md: `{}` should say {key}",
            t.name
        );
    }
}

#[test]
fn a_closed_standard_output_ends_every_command_quietly() {
    use std::process::Stdio;
    let data = fixture("forgotten");
    let d = data.to_str().unwrap();
    for args in [
        vec!["list"],
        vec!["describe"],
        vec!["test"],
        vec!["check"],
        vec!["run", "forgotten", "--data", d],
        vec!["run", "forgotten", "--data", d, "--format", "html"],
        vec!["explain", "forgotten", "--data", d],
    ] {
        let mut child = crate::util::svodka_command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first line, as `svodka list | head -0` does.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// A YAML snippet of the docs: its page, first line, fence info and text.
struct Snippet {
    page: String,
    line: usize,
    info: String,
    text: String,
}

/// The ```yaml blocks of a Markdown page (indented ones, in list items, unindented).
fn yaml_snippets(page: &str, text: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, String, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => open = Some((i + 1, indent, info.trim().to_string(), vec![])),
            (Some(_), Some("")) => {
                let (line, _, info, lines) = open.take().unwrap();
                if info == "yaml" || info.starts_with("yaml ") {
                    out.push(Snippet {
                        page: page.to_string(),
                        line,
                        info,
                        text: lines.join("\n") + "\n",
                    });
                }
            }
            (Some((_, indent, _, lines)), _) => {
                lines.push(line.get(*indent..).unwrap_or(line.trim_start()).to_string())
            }
            (None, None) => {}
        }
    }
    out
}

/// A mapping key that holds `(`, `)` or `$`: the rest of an expression an inline map cut at
/// an unquoted comma (no definition has such a key).
fn cut_expression(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Mapping(m) => m.iter().find_map(|(k, v)| {
            k.as_str()
                .filter(|k| k.contains(['(', ')', '$']))
                .map(str::to_string)
                .or_else(|| cut_expression(v))
        }),
        serde_yaml::Value::Sequence(s) => s.iter().find_map(cut_expression),
        _ => None,
    }
}

/// Every YAML snippet of the README and `docs/` is valid as written: it parses, holds no
/// expression cut at a comma, and the complete definitions of each page (a fence of
/// `yaml` starting with `report:` or `model:`; `yaml excerpt` shows one in part) pass
/// `svodka check` together.
#[test]
fn every_yaml_snippet_in_the_docs_is_valid() {
    let root = crate::util::root();
    let mut pages: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.push(root.join("README.md"));
    pages.sort();
    let mut checked = 0;
    for page in pages {
        let name = page.strip_prefix(&root).unwrap().display().to_string();
        let snippets = yaml_snippets(&name, &std::fs::read_to_string(&page).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let mut complete = 0;
        for s in &snippets {
            let at = format!("{}:{}", s.page, s.line);
            let value: serde_yaml::Value = serde_yaml::from_str(&s.text)
                .unwrap_or_else(|e| panic!("{at}: not YAML: {e}\n{}", s.text));
            if let Some(key) = cut_expression(&value) {
                panic!(
                    "{at}: `{key}` is an expression cut at a comma: quote it\n{}",
                    s.text
                );
            }
            let whole = value.get("report").or_else(|| value.get("model")).is_some();
            if whole && s.info == "yaml" {
                complete += 1;
                write(dir.path(), &format!("{complete:02}.yaml"), &s.text);
            }
            checked += 1;
        }
        if complete > 0 {
            let out = crate::util::svodka(&["check", dir.path().to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{name}: its definitions do not pass `svodka check`:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(checked >= 25, "{checked} snippets");
}

/// docs/reports.md is `svodka describe` of the shipped reports, so the reference users
/// read is the definitions themselves (`UPDATE_GOLDEN=1` rewrites it after a change).
#[test]
fn the_reports_page_is_the_reports_described() {
    let described = ok(&["describe"]);
    let path = crate::util::root().join("docs/reports.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &described).unwrap();
    }
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(
        page == described,
        "docs/reports.md differs from `svodka describe`: run the tests with UPDATE_GOLDEN=1"
    );
    // Every block of every report is there, by id.
    let list = ok(&["list"]);
    for line in list.lines() {
        let report = line.split('\t').next().unwrap();
        let blocks = line.rsplit('\t').next().unwrap().trim_matches(['[', ']']);
        for block in blocks.split(", ") {
            assert!(
                page.contains(&format!("### `{report}.{block}`")),
                "{report}.{block}"
            );
        }
    }
}

/// `svodka test`: the shipped cases pass; a case that expects other numbers fails with
/// each difference named (block, row, column, expected, got) and exit 1; a bad case file
/// is named with its place.
#[test]
fn report_test_cases_pass_and_a_wrong_expectation_is_shown() {
    let out = ok(&["test"]);
    assert!(
        out.contains("ok    tests/cases/forgotten_april.yaml"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("test case(s) passed"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("forgotten");
    write(
        dir.path(),
        "wrong.yaml",
        &format!(
            "report: forgotten\ndata: {}\nfrom: 2024-04-01\nto: 2024-04-30\nexpect:\n  totals:\n    rows:\n      - {{ forgotten_deals: 3, forgotten_sum: 4400.5 }}\n  by_employee:\n    row_count: 2\n  nowhere:\n    rows: []\n",
            data.display()
        ),
    );
    write(
        dir.path(),
        "right.yaml",
        &format!(
            "report: forgotten\ndata: {}\nfrom: 2024-04-01\nto: 2024-04-30\ntolerance: 0.1\nexpect:\n  totals:\n    rows:\n      - {{ forgotten_sum: 4400.45 }}\n",
            data.display()
        ),
    );
    let out = crate::util::svodka(&["test", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "ok    ",
        "right.yaml\n",
        "FAIL  ",
        "      block `totals`, row 1, column `forgotten_deals`: expected 3, got 4\n",
        "      block `by_employee`: 4 rows, expected 2\n",
        "      block `nowhere`: the report has no such block\n",
    ] {
        assert!(text.contains(line), "{line:?}\n{text}");
    }
    assert!(
        !text.contains("forgotten_sum"),
        "within the tolerance: {text}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("1 of 2 test case(s) failed"), "{err}");
    // A case file with a key it cannot have.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "report: forgotten\ndata: x\nfrom: 2024-04-01\nto: 2024-04-30\nexpectt: {}\n",
    );
    let out = crate::util::svodka(&["test", bad.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("bad.yaml:5:1: unknown field `expectt`"),
        "{text}"
    );
}
