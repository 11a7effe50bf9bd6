//! Generated hostile input, 10 000 cases per run: the shipped report and model YAML, the
//! fixture CSV files and query strings, mutated at random from a fixed seed (so a failure
//! is reproduced by its seed and case number). None may panic, take more than a few
//! seconds, or fail without naming its place (file:line, or the query parameter).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use svodka_report::{Catalog, DefinitionFile, ReportError};

use crate::util::fixture;

/// A case that takes longer than this counts as a hang.
const HANG: Duration = Duration::from_secs(10);

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces that break parsers and planners: YAML syntax, DSL operators and functions,
/// extreme numbers, odd text.
const YAML_PIECES: &[&str] = &[
    "",
    "(",
    ")",
    "((((((((((",
    "))))",
    "sum(",
    "count(*)",
    "count(distinct",
    "-",
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "\\",
    "null",
    "~",
    "1e309",
    "-1e309",
    "NaN",
    ".nan",
    "-1",
    "0",
    "99999999999999999999999",
    "&a",
    "*a",
    "!!binary",
    "\t",
    "ы",
    "💥",
    "$from",
    "$to",
    "${x}",
    "deals.",
    ".",
    "::",
    "|",
    ">",
    "#",
    "%",
    "__block__x",
    "case when",
    "else",
    "end",
    "over (",
    "partition by",
    "1/0",
    "shift: previous_year",
    "shift: nowhere",
    "by:",
    "measures:",
    "from: nowhere",
    "from: deals",
    "as_of",
    "amount + amount + amount",
    "/*",
    "--",
    ";",
    "select",
    "lag(",
    "row_number() over ()",
    "is null",
    "in (",
    "like '%",
    "between",
    "interval '1 day'",
    "cast(x as",
    "\u{0}",
    "\u{202e}",
    "\r",
    "<<: *a",
    "? complex",
    "!!python/object",
    "---",
    "...",
    "%YAML 1.1",
    "0x1F",
    "0o17",
    "+.inf",
    "2026-02-30",
    "24:00:00",
];

/// One random change to a text: a line removed, repeated, moved, re-indented, cut, or a
/// piece put in.
fn mutate(text: &str, rng: &mut Rng, pieces: &[&str]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match rng.below(9) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let l = lines[rng.below(n)].clone();
            lines.insert(rng.below(n + 1), l);
        }
        2 => {
            let (a, b) = (rng.below(n), rng.below(n));
            lines.swap(a, b);
        }
        3 => {
            let i = rng.below(n);
            let l = &mut lines[i];
            if rng.below(2) == 0 {
                l.insert_str(0, "  ");
            } else {
                *l = l.trim_start().to_string();
            }
        }
        4 => {
            // Cut the whole text at a character boundary.
            let cut: String = text
                .chars()
                .take(rng.below(text.chars().count() + 1))
                .collect();
            return cut;
        }
        5 => {
            let indent = " ".repeat(rng.below(4) * 2);
            let piece = *rng.pick(pieces);
            lines.insert(rng.below(n + 1), format!("{indent}{piece}"));
        }
        _ => {
            // A piece in place of a word, or inside one.
            let i = rng.below(n);
            let chars: Vec<char> = lines[i].chars().collect();
            let at = rng.below(chars.len() + 1);
            let len = rng.below(6).min(chars.len() - at.min(chars.len()));
            let piece = *rng.pick(pieces);
            let mut l: String = chars[..at].iter().collect();
            l.push_str(piece);
            l.extend(&chars[at + len..]);
            lines[i] = l;
        }
    }
    lines.join("\n")
}

/// Runs `case`; a panic or a hang fails the test with the case's number and input.
fn guarded(what: &str, k: usize, input: &str, case: impl FnOnce() -> Result<(), String>) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(case));
    let took = started.elapsed();
    let shown: String = input.chars().take(3000).collect();
    match outcome {
        Err(_) => panic!("{what} case {k} panicked on:\n{shown}"),
        Ok(Err(problem)) => panic!("{what} case {k}: {problem}\ninput:\n{shown}"),
        Ok(Ok(())) if took > HANG => panic!("{what} case {k} took {took:?} on:\n{shown}"),
        Ok(Ok(())) => {}
    }
}

/// The shipped definitions: (name as shown, text).
fn shipped() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("models")] {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        names.sort();
        for p in names {
            let name = p.strip_prefix(&root).unwrap().display().to_string();
            files.push((name, std::fs::read_to_string(&p).unwrap()));
        }
    }
    files
}

/// Every problem of a definition error names a file and a line in it.
fn placed(e: &ReportError) -> Result<(), String> {
    match e {
        ReportError::Invalid(problems) => {
            for d in problems {
                if d.file.is_empty() || d.pos.line == 0 {
                    return Err(format!("a problem without its place: {d}"));
                }
            }
            Ok(())
        }
        other => Err(format!("not a definition error: {other}")),
    }
}

#[test]
fn mutated_definitions_fail_at_their_place_without_panic_or_hang() {
    let files = shipped();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The shipped catalog, loaded once; each case adds one mutated file over it and
    // checks what that file defines (a whole `check` per case would take minutes).
    let shipped_catalog = Catalog::from_sources(
        files
            .iter()
            .map(|(name, text)| DefinitionFile::new(name.clone(), text.as_str()))
            .collect(),
    )
    .unwrap();
    let mut rng = Rng::new(0x5EED_0001);
    let cases = 2_000;
    let mut failed = 0;
    for k in 0..cases {
        let (name, original) = &files[rng.below(files.len())];
        let mut text = original.clone();
        for _ in 0..1 + rng.below(3) {
            text = mutate(&text, &mut rng, YAML_PIECES);
        }
        let label = format!("{name} (mutated)");
        guarded(&label, k, &text, || {
            let mut catalog = shipped_catalog.clone();
            let checked = match catalog.add(DefinitionFile::new(name.clone(), text.as_str())) {
                Err(problems) => Err(ReportError::Invalid(problems)),
                Ok(()) => {
                    let reports: Vec<String> = catalog
                        .reports
                        .values()
                        .filter(|r| r.src.name == *name)
                        .map(|r| r.id().to_string())
                        .collect();
                    let models: Vec<String> = catalog
                        .models
                        .iter()
                        .filter(|(_, m)| m.src.name == *name)
                        .map(|(id, _)| id.clone())
                        .collect();
                    rt.block_on(svodka_report::check_only(&catalog, &reports, &models))
                }
            };
            match checked {
                Ok(()) => Ok(()),
                Err(e) => {
                    failed += 1;
                    placed(&e)
                }
            }
        });
    }
    // Most mutations are fatal: most cases must have been refused, or the generator has
    // stopped generating anything hostile.
    assert!(failed > cases / 2, "only {failed} of {cases} refused");
}

/// Pieces for CSV cells.
const CSV_PIECES: &[&str] = &[
    "",
    ",",
    ",,",
    "\"",
    "\"\"",
    "\"a,b\"",
    "2024-13-01",
    "2024-02-30",
    "2024-04-01T25:00:00",
    "2024-04-01T10:00:00+99:00",
    "1e309",
    "-0",
    "NaN",
    "inf",
    "٣",
    "9223372036854775808",
    "-9223372036854775809",
    "0x10",
    "1,5",
    "1 000",
    "true",
    "да",
    "null",
    "\u{0}",
    "\u{feff}",
    "\r",
    "💥",
    "=cmd|' /C calc'!A0",
    "99999999999999999999999999999999999999.99",
    "-",
    "Y",
    "N",
    "\t",
    "2024-04-01 10:00:00",
    "1700000000",
    "abc",
];

#[test]
fn mutated_csv_files_load_or_fail_at_their_line() {
    let dir = fixture("forgotten");
    let mut tables: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| {
            let table = p.file_stem().unwrap().to_string_lossy().to_string();
            (table, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    tables.sort();
    let mut rng = Rng::new(0x5EED_0002);
    for k in 0..4_000 {
        let (table, original) = &tables[rng.below(tables.len())];
        let canonical = svodka_schema::table(table).expect("a canonical table");
        let mut text = original.clone();
        for _ in 0..1 + rng.below(3) {
            text = mutate(&text, &mut rng, CSV_PIECES);
        }
        let file = format!("{table}.csv");
        guarded(&file, k, &text, || {
            let read = svodka_csv::read_from(
                std::io::Cursor::new(text.as_bytes()),
                Path::new(&file),
                canonical,
            );
            match read {
                Ok(_) => Ok(()),
                Err(e) => {
                    let message = e.to_string();
                    let line = message
                        .strip_prefix(&format!("{file}:"))
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|l| l.parse::<u64>().ok());
                    match line {
                        Some(l) if l >= 1 => Ok(()),
                        _ => Err(format!("an error without file:line: {message}")),
                    }
                }
            }
        });
    }
}

/// Pieces for query keys and values.
const QUERY_KEYS: &[&str] = &[
    "from",
    "to",
    "as_of",
    "format",
    "locale",
    "employee",
    "department",
    "pipeline",
    "source",
    "set.deal_forgotten_days",
    "set.lead_forgotten_days",
    "set.",
    "param.",
    "param.x",
    "set.nope",
    "block",
    "",
    "FROM",
    "from ",
    "set.deal_forgotten_days.x",
    "💥",
];
const QUERY_VALUES: &[&str] = &[
    "2024-04-01",
    "2024-04-30",
    "2024-02-30",
    "2024-4-1",
    "",
    "-1",
    "0",
    "5",
    "60",
    "1e309",
    "NaN",
    "99999999999999999999",
    "json",
    "html",
    "xlsx",
    "pdf",
    "ru",
    "en",
    "xx",
    "1,2,3",
    ",,,",
    "1,,2",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "\u{0}",
    "javascript:alert(1)",
    "' or 1=1 --",
    "%00",
    "💥",
    "true",
    "null",
];

#[test]
fn mutated_query_strings_are_checked_with_their_parameter_named() {
    let mut rng = Rng::new(0x5EED_0003);
    for k in 0..4_000 {
        let pairs: Vec<(String, String)> = (0..rng.below(6))
            .map(|_| {
                let key = rng.pick(QUERY_KEYS).to_string();
                let mut value = rng.pick(QUERY_VALUES).to_string();
                if rng.below(10) == 0 {
                    value = value.repeat(1 + rng.below(2000));
                }
                (key, value)
            })
            .collect();
        let shown = format!("{pairs:?}");
        guarded(
            "query",
            k,
            &shown,
            || match svodka_service::query::Query::parse(&pairs) {
                Ok(q) => {
                    let _ = q.canonical();
                    Ok(())
                }
                Err(bad)
                    if !bad.message.is_empty() && pairs.iter().any(|(k, _)| *k == bad.name) =>
                {
                    Ok(())
                }
                Err(bad) => Err(format!(
                    "a refusal that names no parameter of the query: {bad:?}"
                )),
            },
        );
    }
}
