//! The errors of the report engine, each carrying where it happened: a definition error
//! points at `file:line:column` and names the report, block and column it concerns.

use std::fmt;

use crate::definition::{DefinitionFile, Pos};

/// A problem in a definition file, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as shown to the user.
    pub file: String,
    pub pos: Pos,
    /// What the problem concerns, e.g. "report `forgotten`, block `totals`, measure `x`".
    pub context: String,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at the value of `path` in `src`.
    pub fn at(
        src: &DefinitionFile,
        path: &str,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::at_pos(src, src.pos(path), context, message)
    }

    /// A diagnostic at a known position in `src`.
    pub fn at_pos(
        src: &DefinitionFile,
        pos: Pos,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: src.name.clone(),
            pos,
            context: context.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.column)?;
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        f.write_str(&self.message)
    }
}

/// Everything that can go wrong loading, checking, compiling or running a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A definition file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// One or more definitions are invalid; each diagnostic says where and why.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// No report with this id is loaded.
    #[error("unknown report `{id}`{hint}")]
    UnknownReport { id: String, hint: String },
    /// The report has no block with this id.
    #[error("report `{report}` has no block `{block}`{hint}")]
    UnknownBlock {
        report: String,
        block: String,
        hint: String,
    },
    /// A run parameter or setting value given by the caller is invalid.
    #[error("{name}: {message}")]
    BadInput { name: String, message: String },
    /// A table could not be supplied by the data source.
    #[error("table `{table}`: {message}")]
    Table { table: String, message: String },
    /// The engine a run was sent to (a cluster) could not take it.
    #[error("{engine}: {message}")]
    Remote { engine: String, message: String },
    /// A table a run reads cannot be read where the run executes (a CSV folder's rows held
    /// in this process, sent to a cluster).
    #[error("table `{table}` cannot be read by {engine}: {reason}")]
    NotShippable {
        table: String,
        engine: String,
        reason: String,
    },
    /// DataFusion failed while planning or running a report's plan: `place` names it (a
    /// block, a block's child level, a model, the analysis of the columns read).
    #[error("report `{report}`, {place}: {source}")]
    Execution {
        report: String,
        place: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
}

fn join_lines(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl ReportError {
    /// A single-diagnostic `Invalid`.
    pub fn invalid(d: Diagnostic) -> Self {
        ReportError::Invalid(vec![d])
    }

    /// A bad caller input (`--set`, a parameter).
    pub fn bad_input(name: impl Into<String>, message: impl Into<String>) -> Self {
        ReportError::BadInput {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// ", did you mean `x`?" for the known name closest to `wanted`, or "" when none is close.
pub fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let wanted_lower = wanted.to_lowercase();
    // Close in spelling, or the start of a longer name (`min_won` → `min_won_count`).
    let best = known
        .into_iter()
        .map(|k| (edit_distance(&wanted_lower, &k.to_lowercase()), k))
        .filter(|(d, k)| {
            *d <= (k.chars().count().max(wanted.chars().count()) / 3).max(1)
                || (wanted.chars().count() >= 3 && k.to_lowercase().starts_with(&wanted_lower))
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!(", did you mean `{k}`?"),
        None => String::new(),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("amout", ["amount", "title"]),
            ", did you mean `amount`?"
        );
        assert_eq!(
            did_you_mean("measurs", ["measures", "by"]),
            ", did you mean `measures`?"
        );
        assert_eq!(did_you_mean("zzz", ["amount", "title"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
