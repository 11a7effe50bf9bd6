//! The report language, data-driven: each `tests/language/*.case` file holds definition
//! files and `svodka` commands with the output each must give, the way a user sees it.
//! `UPDATE_GOLDEN=1` rewrites the outputs from the current build (check the diff).
//!
//! A case file:
//!
//! ```text
//! # What the case shows (comment lines, kept as they are).
//! //- r.yaml
//! report: bad
//! …
//! $ svodka check r.yaml
//! error: r.yaml:8:18: report `bad`, block `totals`, measure `total`: unknown name …
//! [exit 1]
//! ```
//!
//! `//- NAME` starts a file written into the case's own empty folder, where the commands
//! run; `$ svodka ARGS` a command (arguments split at spaces; `$FIXTURES` is
//! `tests/fixtures`), followed by its standard output, then its standard error, then
//! `[exit N]` unless it succeeded. Lines starting with `#` outside a file are comments.
//! The clock is pinned, as in every test.

use std::path::Path;

use crate::util::{root, svodka_command};

/// A part of a case file.
enum Part {
    /// Comment lines (`#`), outside files: kept as they are.
    Comment(String),
    /// A file and its text.
    File { name: String, text: String },
    /// A command and the output it must give.
    Command { args: String, expected: String },
}

fn parse(text: &str) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(name) = bare.strip_prefix("//- ") {
            parts.push(Part::File {
                name: name.trim().to_string(),
                text: String::new(),
            });
        } else if let Some(args) = bare.strip_prefix("$ svodka ") {
            parts.push(Part::Command {
                args: args.trim().to_string(),
                expected: String::new(),
            });
        } else if bare.starts_with('#') && !matches!(parts.last(), Some(Part::File { .. })) {
            match parts.last_mut() {
                Some(Part::Comment(c)) => c.push_str(line),
                _ => parts.push(Part::Comment(line.to_string())),
            }
        } else {
            match parts.last_mut() {
                Some(Part::File { text, .. }) => text.push_str(line),
                Some(Part::Command { expected, .. }) => expected.push_str(line),
                Some(Part::Comment(c)) => c.push_str(line),
                None => parts.push(Part::Comment(line.to_string())),
            }
        }
    }
    parts
}

/// Runs a command of a case in `dir`: its output as a case file writes it.
fn output_of(dir: &Path, args: &str) -> String {
    let fixtures = root().join("tests/fixtures");
    let args: Vec<String> = args
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| a.replace("$FIXTURES", fixtures.to_str().unwrap()))
        .collect();
    let out = svodka_command()
        .current_dir(dir)
        .args(&args)
        .output()
        .expect("svodka runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut text = text
        .replace(&format!("{}/", dir.display()), "")
        .replace(fixtures.to_str().unwrap(), "$FIXTURES");
    if !out.status.success() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[exit {}]\n", out.status.code().unwrap_or(-1)));
    }
    text
}

/// Runs one case file; returns the file as it would be with the actual outputs.
fn run_case(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rewritten = String::new();
    let mut differences = Vec::new();
    let parts = parse(&text);
    let last = parts.len().saturating_sub(1);
    for (n, part) in parts.into_iter().enumerate() {
        match part {
            Part::Comment(c) => rewritten.push_str(&c),
            Part::File { name, text } => {
                crate::util::write(dir.path(), &name, &text);
                rewritten.push_str(&format!("//- {name}\n{text}"));
            }
            Part::Command { args, expected } => {
                let actual = output_of(dir.path(), &args);
                if actual.trim_end() != expected.trim_end() {
                    differences.push(format!(
                        "{}: $ svodka {args}\n--- expected\n{}\n--- actual\n{}",
                        path.display(),
                        expected.trim_end(),
                        actual.trim_end()
                    ));
                }
                // One blank line after each output but the file's last.
                rewritten.push_str(&format!("$ svodka {args}\n{}\n", actual.trim_end()));
                if n < last {
                    rewritten.push('\n');
                }
            }
        }
    }
    (rewritten, differences)
}

#[test]
fn every_language_case_gives_its_output() {
    let folder = root().join("tests/language");
    let mut cases: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "{} cases in {}",
        cases.len(),
        folder.display()
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut differences = Vec::new();
    for case in &cases {
        let (rewritten, mut found) = run_case(case);
        if update {
            std::fs::write(case, rewritten).unwrap();
        } else {
            differences.append(&mut found);
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} cases differ (UPDATE_GOLDEN=1 rewrites them after checking):\n\n{}",
        differences.len(),
        cases.len(),
        differences.join("\n\n")
    );
}

/// The case format reads what it writes: files, commands, comments and blank lines.
#[test]
fn a_case_file_parses_into_its_parts() {
    let parts = parse(
        "# A case.\n\n//- r.yaml\n# yaml\na: 1\n\n$ svodka check r.yaml\nok\n[exit 1]\n\n# Then.\n",
    );
    let shapes: Vec<String> = parts
        .iter()
        .map(|p| match p {
            Part::Comment(c) => format!("comment {c:?}"),
            Part::File { name, text } => format!("file {name} {text:?}"),
            Part::Command { args, expected } => format!("command {args} {expected:?}"),
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "comment \"# A case.\\n\\n\"",
            "file r.yaml \"# yaml\\na: 1\\n\\n\"",
            "command check r.yaml \"ok\\n[exit 1]\\n\\n\"",
            "comment \"# Then.\\n\"",
        ]
    );
}
