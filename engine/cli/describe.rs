//! `svodka describe`: the reports of a catalog as a Markdown reference — each report's
//! settings and parameters, the tables it reads, and every block's columns with their
//! labels, types, definitions and descriptions — made from the definitions themselves
//! (each report compiled and run over empty tables), so it cannot drift from them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use chrono::NaiveDate;
use datafusion::catalog::TableProvider;
use svodka_report::{Catalog, LazyTables, ReportError, RunParams, RunRequest, TableSet};

/// Empty canonical tables that remember which were asked for.
struct Recording {
    tables: LazyTables,
    asked: Mutex<BTreeSet<String>>,
}

impl TableSet for Recording {
    fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>, ReportError> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        self.tables.table(name)
    }

    fn prefetch(&self, names: &[String]) -> Result<(), ReportError> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(names.iter().cloned());
        self.tables.prefetch(names)
    }
}

/// The canonical table a table or model reads its rows from, through the models it
/// refines (`manager_activities` → `activities`).
fn base_table(catalog: &Catalog, name: &str) -> Option<String> {
    let mut name = name.strip_prefix("tables.").unwrap_or(name).to_string();
    for _ in 0..32 {
        match catalog.models.get(&name) {
            Some(m) if m.spec.from != name => {
                name = m
                    .spec
                    .from
                    .strip_prefix("tables.")
                    .unwrap_or(&m.spec.from)
                    .to_string();
            }
            _ => return svodka_schema::table(&name).map(|t| t.name.to_string()),
        }
    }
    None
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

/// The Markdown reference of every report of `catalog`, in id order.
pub async fn describe(catalog: &Catalog, title: &str) -> Result<String> {
    let mut out = format!("# {title}\n\n");
    out.push_str(
        "Made by `svodka describe` from the report definitions: every report, its settings \
         and parameters, the tables it reads, and each block's columns — the JSON keys of \
         the block's rows — with their labels, types, definitions and descriptions.\n\n",
    );
    for id in catalog.reports.keys() {
        let _ = writeln!(
            out,
            "- [`{id}`](#{id}) — {}",
            catalog.reports[id].spec.title
        );
    }
    // Any fixed period: the reference shows definitions, not values.
    let day = |d| NaiveDate::from_ymd_opt(2026, 1, d).expect("a January day");
    let params = RunParams::resolve(
        Some(day(1)),
        Some(day(31)),
        Some(day(31)),
        day(31),
        svodka_schema::values::default_zone(),
    )?;
    for (id, report) in &catalog.reports {
        let source = Recording {
            tables: LazyTables::empty(),
            asked: Mutex::new(BTreeSet::new()),
        };
        let req = RunRequest::new(id, params.clone());
        let result = svodka_report::run(catalog, &source, &req).await?;
        let settings = svodka_report::settings_of(catalog, report)?;
        let _ = writeln!(out, "\n## {id}\n\n**{}**", result.title);
        if let Some(d) = &result.description {
            let _ = writeln!(out, "\n{d}");
        }
        let asked = source.asked.lock().unwrap_or_else(|e| e.into_inner());
        let tables: Vec<String> = asked.iter().map(|t| format!("`{t}`")).collect();
        let _ = writeln!(out, "\nReads: {}.", tables.join(", "));
        // The models each block counts: its `from`, and those its measures name
        // (`manager_activities.points`).
        let counted: BTreeSet<String> = report
            .spec
            .blocks
            .iter()
            .flat_map(|b| {
                let named = b.measures.iter().flat_map(|(name, spec)| {
                    let text = spec.expr.clone().unwrap_or_else(|| name.clone());
                    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                        .filter_map(|word| word.split_once('.').map(|(m, _)| m.to_string()))
                        .filter(|m| catalog.models.contains_key(m))
                        .collect::<Vec<_>>()
                });
                b.from.clone().into_iter().chain(named).collect::<Vec<_>>()
            })
            .filter_map(|model| base_table(catalog, &model))
            .collect();
        if !counted.is_empty() {
            let names: Vec<String> = counted.iter().map(|t| format!("`{t}`")).collect();
            let _ = writeln!(
                out,
                "Counts the rows of {}: with no rows there, its blocks show zeros.",
                names.join(", ")
            );
        }
        if !report.spec.parameters.is_empty() {
            out.push_str("\n| parameter | values | default | label |\n|---|---|---|---|\n");
            for (name, value) in &result.parameters {
                let spec = &report.spec.parameters[name];
                let _ = writeln!(
                    out,
                    "| `{name}` | {} | `{value}` | {} |",
                    cell(&spec.values.join(", ")),
                    cell(result.labels.get(name).map_or("", String::as_str))
                );
            }
        }
        if !settings.is_empty() {
            out.push_str("\n| setting | default | label | description |\n|---|---|---|---|\n");
            for s in &settings {
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} | {} |",
                    s.name,
                    cell(&s.default.to_string()),
                    cell(s.label.as_deref().unwrap_or("")),
                    cell(s.description.as_deref().unwrap_or(""))
                );
            }
        }
        for b in &result.blocks {
            let _ = writeln!(out, "\n### `{id}.{}` — {}", b.id, b.title);
            if let Some(d) = &b.description {
                let _ = writeln!(out, "\n{d}");
            }
            out.push_str(
                "\n| column | label | type | definition | description |\n|---|---|---|---|---|\n",
            );
            for c in &b.columns {
                let kind = if c.dimension { " (dimension)" } else { "" };
                let _ = writeln!(
                    out,
                    "| `{}`{kind} | {} | {} | `{}` | {} |",
                    c.name,
                    cell(&c.label),
                    c.ty.name(),
                    cell(&c.definition).replace('`', "'"),
                    cell(c.description.as_deref().unwrap_or(""))
                );
            }
            for child in &b.children {
                let names: Vec<String> = child
                    .columns
                    .iter()
                    .filter(|c| !b.columns.iter().any(|p| p.name == c.name))
                    .map(|c| format!("`{}` ({})", c.name, cell(&c.label)))
                    .collect();
                let _ = writeln!(
                    out,
                    "\nEach row expands into `{}`: {}.",
                    child.id,
                    names.join(", ")
                );
            }
        }
    }
    Ok(out)
}
