//! `svodka check` on what a case file cannot hold: the shipped reports, and definitions
//! generated in code (an expression of thousands of terms). The language's errors, each
//! with `file:line:column` and a suggestion, are cases in `tests/language/`.

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
