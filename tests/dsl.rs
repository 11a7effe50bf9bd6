//! Bad definitions are refused by `svodka check` before anything runs, each with
//! `file:line:column`, what it concerns, and a suggestion for near-miss names.

use crate::util::{fails, ok, write};

/// Checks one report file (over the shipped models) and returns the error text.
fn check_error(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.yaml", yaml);
    let err = fails(&["check", path.to_str().unwrap()]);
    // Make the message independent of the temp folder.
    err.replace(path.to_str().unwrap(), "r.yaml")
}

const HEAD: &str =
    "report: bad\ntitle: Bad\nblocks:\n  - id: totals\n    title: T\n    from: deals\n";

#[test]
fn shipped_reports_are_clean() {
    let out = ok(&["check"]);
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn unknown_column_points_into_the_expression() {
    let err = check_error(&format!("{HEAD}    measures:\n      total: sum(amout)\n"));
    assert_eq!(
        err.trim(),
        "error: r.yaml:8:18: report `bad`, block `totals`, measure `total`: unknown name `amout`, did you mean `amount`?"
    );
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let err = check_error(&format!("{HEAD}    measurs:\n      total: sum(amount)\n"));
    assert!(
        err.contains("r.yaml:7:5: blocks[0]: unknown field `measurs`"),
        "{err}"
    );
    assert!(err.contains("did you mean `measures`?"), "{err}");
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let err = check_error("report: bad\ntitle: [unclosed\nblocks: []\n");
    assert!(err.contains("r.yaml:3:"), "{err}");
    assert!(err.contains("while parsing a flow sequence"), "{err}");
}

#[test]
fn measure_cycle_is_named() {
    let err = check_error(&format!(
        "{HEAD}    measures:\n      a: b + 1\n      b: a * 2\n      c: count(*)\n"
    ));
    assert!(err.contains("r.yaml:8:10: report `bad`, block `totals`, measure `a`: measures refer to each other in a cycle: a → b → a"), "{err}");
}

#[test]
fn type_error_names_the_measure() {
    let err = check_error(&format!("{HEAD}    measures:\n      total: sum(title)\n"));
    assert!(err.contains("r.yaml:8:14: report `bad`, block `totals`, measure `total`: no function matches 'sum(Utf8)'"), "{err}");
}

#[test]
fn comparison_type_error() {
    let err = check_error(&format!(
        "{HEAD}    measures:\n      n: count(*) filter (where created_at > true)\n"
    ));
    assert!(
        err.contains("r.yaml:8:10: report `bad`, block `totals`, measure `n`:"),
        "{err}"
    );
}

#[test]
fn bad_setting_default_and_unknown_setting() {
    let err = check_error(
        "report: bad\ntitle: Bad\nsettings:\n  threshold: { type: int, default: abc }\nblocks:\n  - id: t\n    title: T\n    from: deals\n    measures:\n      n: count(*)\n",
    );
    assert!(err.contains("r.yaml:4:14: report `bad`, setting `threshold`: default: expected a value of type int, got abc"), "{err}");
    let err = check_error(&format!(
        "{HEAD}    measures:\n      n: count(*) filter (where amount > $treshold)\n"
    ));
    assert!(
        err.contains("unknown setting or parameter `$treshold`"),
        "{err}"
    );
}

#[test]
fn setting_bounds_are_checked_on_the_default() {
    let err = check_error(
        "report: bad\ntitle: Bad\nsettings:\n  days: { type: int, default: 0, min: 1 }\nblocks:\n  - id: t\n    title: T\n    from: deals\n    measures:\n      n: count(*)\n",
    );
    assert!(err.contains("default: 0 is below the minimum 1"), "{err}");
}

#[test]
fn unknown_model_and_measure() {
    let err = check_error(
        "report: bad\ntitle: Bad\nblocks:\n  - id: t\n    title: T\n    measures:\n      n: deals.forgoten\n",
    );
    assert!(err.contains("r.yaml:7:16: report `bad`, block `t`, measure `n`: model `deals` has no measure `forgoten`, did you mean `forgotten`?"), "{err}");
    let err = check_error(
        "report: bad\ntitle: Bad\nblocks:\n  - id: t\n    title: T\n    measures:\n      n: dels.created\n",
    );
    assert!(err.contains("r.yaml:7:10: report `bad`, block `t`, measure `n`: unknown model `dels`, did you mean `deals`?"), "{err}");
}

#[test]
fn model_column_cycle_and_unknown_table() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "model: loop\nfrom: deals\ncolumns:\n  a: b + 1\n  b: a + 1\nmeasures:\n  n: count(*)\n",
    );
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(err.contains("m.yaml:4:6: model `loop`, column `a`: columns refer to each other in a cycle: a → b → a"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "model: lost\nfrom: dealz\nmeasures:\n  n: count(*)\n",
    );
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(
        err.contains(
            "m.yaml:2:7: model `lost`: unknown table or model `dealz`, did you mean `deals`?"
        ),
        "{err}"
    );
}

#[test]
fn sort_by_unknown_column() {
    let err = check_error(&format!(
        "{HEAD}    by: [employee]\n    measures:\n      n: count(*)\n    sort: [emploee desc]\n"
    ));
    assert!(
        err.contains("sort by unknown column `emploee`, did you mean `employee`?"),
        "{err}"
    );
}

#[test]
fn every_problem_in_every_file_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "report: a\ntitle: A\nblocks:\n  - id: t\n    title: T\n    from: deals\n    measures:\n      n: sum(amout)\n",
    );
    write(dir.path(), "b.yaml", "report: b\ntitle: B\nblock: []\n");
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(err.contains("a.yaml:8:14"), "{err}");
    assert!(err.contains("b.yaml:3:1"), "{err}");
}

#[test]
fn chart_names_output_columns() {
    let err = check_error(&format!(
        "{HEAD}    by: [employee]\n    measures:\n      total: sum(amount)\n    chart: {{ type: bar, x: employe, y: [total] }}\n"
    ));
    assert!(
        err.contains("block `totals`")
            && err.contains(
                "`employe` is not an output column of the block, did you mean `employee`?"
            ),
        "{err}"
    );
    let err = check_error(&format!(
        "{HEAD}    by: [employee]\n    measures:\n      total: sum(amount)\n    chart: {{ type: bar, x: employee, y: [employee] }}\n"
    ));
    assert!(
        err.contains("`employee` is text, not a number to draw"),
        "{err}"
    );
}

#[test]
fn compare_is_for_one_row_blocks() {
    let err = check_error(&format!(
        "{HEAD}    compare: previous_period\n    by: [employee]\n    measures:\n      total: sum(amount)\n"
    ));
    assert!(
        err.contains("r.yaml:7:14")
            && err.contains("`compare` shows a one-row block against another period"),
        "{err}"
    );
}

#[test]
fn unpivot_labels_name_output_columns() {
    let err = check_error(&format!(
        "{HEAD}    measures:\n      a: count(*)\n    unpivot:\n      name: m\n      rows: [a]\n      columns: {{ value: \"{{}}\" }}\n      labels: {{ valu: Значение }}\n"
    ));
    assert!(
        err.contains("`valu` is not an output column of `unpivot.columns`, did you mean `value`?"),
        "{err}"
    );
}

/// A model's `key` names its own columns, and an aggregated model keys by its groups.
#[test]
fn a_model_key_names_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "model: latest\nfrom: stage_history\nkey: [entity, entiti_id]\nmeasures:\n  n: count(*)\n",
    );
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("m.yaml:3:6: model `latest`: key column `entiti_id` is not a column of the model, did you mean `entity_id`?"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "model: per\nfrom: deals\ngroup_by: { employee_id: assigned_id }\nkey: [employee_id]\ncolumns:\n  n: count(*)\n",
    );
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("m.yaml:4:6: model `per`: a model with `group_by` has its groups as key; leave `key` out"),
        "{err}"
    );
}

/// A chain of ten thousand terms would overflow the stack of every walker after the
/// parser (and abort the service that compiles it): it is refused, with its place, before
/// it is parsed; 256 operators still compile.
#[test]
fn an_expression_of_thousands_of_terms_is_refused_not_a_crash() {
    let chain = |n: usize| vec!["amount"; n].join(" + ");
    let err = check_error(&format!(
        "{HEAD}    measures:\n      s: \"sum({})\"\n",
        chain(10_000)
    ));
    assert!(
        err.contains("r.yaml:8:10: report `bad`, block `totals`, measure `s`: the expression has 9999 operators (at most 256): split it into named columns or measures"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &format!(
            "model: deep\nfrom: deals\ncolumns:\n  c: \"{}\"\nmeasures:\n  n: count(*)\n",
            chain(5_000)
        ),
    );
    let err = fails(&["check", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("m.yaml:4:6: model `deep`, column `c`: the expression has 4999 operators"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.yaml",
        &format!("{HEAD}    measures:\n      s: \"sum({})\"\n", chain(257)),
    );
    ok(&["check", path.to_str().unwrap()]);
}

/// A `shift:` over rows in a block without `from:` has no rows to shift: a clear error at
/// the measure (it used to panic).
#[test]
fn a_shifted_aggregate_without_a_model_is_refused_not_a_crash() {
    let err = check_error(
        "report: bad\ntitle: Bad\nblocks:\n  - id: b\n    title: B\n    measures:\n      n: deals.created\n      c: { expr: \"1\", shift: previous_period }\n",
    );
    assert!(
        err.contains("report `bad`, block `b`, measure `c`: `shift` on an aggregate over rows needs the block's `from:`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// A model column without `expr` must name a column it has; one with `expr` must not
/// take a name it has unless it says `replace: true`. Both point at the column's key.
#[test]
fn a_model_column_names_a_new_column_or_labels_an_existing_one() {
    for (column, expected) in [
        (
            "titel: { label: X }",
            "m.yaml:4:3: model `m`: `titel` has no `expr` and is not a column of `deals`",
        ),
        (
            "amount: amount * 2",
            "m.yaml:4:3: model `m`: `amount` is already a column of the source or a join; give the derived column another name, or say `replace: true`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "m.yaml",
            &format!("model: m\nfrom: deals\ncolumns:\n  {column}\nmeasures:\n  n: count(*)\n"),
        );
        let err = fails(&["check", dir.path().to_str().unwrap()]);
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn a_second_yaml_document_is_refused_at_its_marker() {
    let err = check_error(&format!(
        "{HEAD}    measures:\n      n: count(*)\n---\nreport: other\n"
    ));
    assert_eq!(
        err.trim(),
        "error: r.yaml:9:1: deserializing from YAML containing more than one document is not supported"
    );
}

#[test]
fn a_measure_over_a_dimension_is_refused_in_the_totals_row() {
    // `rank() over (order by employee)` needs the dimension, which the totals row lacks.
    let err = check_error(
        "report: bad\ntitle: Bad\nblocks:\n  - id: by_employee\n    title: T\n    from: deals\n    by:\n      employee: { expr: assigned_id }\n    totals: true\n    measures:\n      n: count(*)\n      first: min(n) over (partition by employee)\n",
    );
    assert_eq!(
        err.trim(),
        "error: r.yaml:12:40: report `bad`, block `by_employee`, measure `first`: dimension `employee` has no value in the totals row, which groups by no dimension"
    );
}

/// The YAML mistakes people make, each answered with what to write instead.
#[test]
fn yaml_mistakes_say_what_to_write() {
    // An expression with a comma in an inline map: YAML cuts it at the comma.
    let err = check_error(&format!(
        "{HEAD}    measures:\n      total: {{expr: round(sum(amount), 2), label: Сумма}}\n"
    ));
    assert!(err.contains("r.yaml:8:"), "{err}");
    assert!(
        err.contains("`2)` looks like the rest of an expression cut at a comma")
            && err.contains("put the whole value in double quotes"),
        "{err}"
    );
    // A value starting with a character YAML reserves.
    let err = check_error(&format!(
        "{HEAD}    measures:\n      total: {{expr: count(*), label: `Итого`}}\n"
    ));
    assert!(err.contains("r.yaml:8:"), "{err}");
    assert!(err.contains("must be quoted"), "{err}");
    // Indentation.
    let err = check_error(
        "report: bad\ntitle: Bad\nblocks:\n  - id: totals\n    title: T\n   from: deals\n",
    );
    assert!(err.contains("r.yaml:6:"), "{err}");
    assert!(
        err.contains("the indentation does not line up here"),
        "{err}"
    );
    // A value of the wrong shape.
    let err = check_error(&format!("{HEAD}    measures: 5\n"));
    assert!(
        err.contains("expected a map") && err.contains("write a map: `key: value` lines"),
        "{err}"
    );
}

/// An aggregate in a `where` is refused at the aggregate, in words, before anything runs —
/// in a block, a model and a list alike.
#[test]
fn an_aggregate_in_a_where_is_refused_where_it_stands() {
    let err = check_error(&format!(
        "{HEAD}    where: count(*) > 1\n    measures:\n      total: count(*)\n"
    ));
    assert_eq!(
        err.trim(),
        "error: r.yaml:7:12: report `bad`, block `totals`, in model `deals`: an aggregate (`count`) cannot filter rows: `where` keeps or drops each row on its own values. To keep only some groups, use the block's `having:`; to count only some rows, give the measure a filter: `count(*) filter (where …)`"
    );
    assert!(!err.contains("AggregateFunction"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let model = write(
        dir.path(),
        "m.yaml",
        "model: big_deals\nfrom: deals\nwhere: amount > avg(amount)\nmeasures:\n  n: count(*)\n",
    );
    let err = fails(&["check", model.to_str().unwrap()]);
    assert!(
        err.contains("m.yaml:3:17: ") && err.contains("an aggregate (`avg`) cannot filter rows"),
        "{err}"
    );
}

#[test]
fn pivot_names_a_dimension_of_the_block() {
    let err = check_error(&format!(
        "{HEAD}    by: [employee, stage]\n    pivot: stag\n    measures:\n      n: count(*)\n"
    ));
    assert!(
        err.contains("r.yaml:8:12: report `bad`, block `totals`: `stag` is not a dimension of the block, did you mean `stage`?"),
        "{err}"
    );
}
