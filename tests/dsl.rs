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
