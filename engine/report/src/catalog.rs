//! The loaded set of models and reports: files read and deserialised, names and settings
//! checked. Later layers (a client's folder, `--reports DIR`) replace earlier ones by id.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::definition::{DefinitionFile, join};
use crate::error::{Diagnostic, ReportError, did_you_mean};
use crate::settings::Setting;
use crate::spec::{ModelSpec, ReportSpec};

/// Names every run binds; settings may not take them.
pub const BUILTIN_PARAMETERS: &[&str] = &[
    "from",
    "to",
    "period_start",
    "period_end",
    "as_of",
    "as_of_end",
    "portal_url",
    "link_deal",
    "link_lead",
    "link_company",
    "link_contact",
];

/// Report filters every report accepts, and whether their values are ids (else text).
pub const FILTERS: &[(&str, bool)] = &[
    ("employee", true),
    ("department", true),
    ("pipeline", true),
    ("source", false),
];

/// A model as loaded.
#[derive(Debug)]
pub struct Model {
    pub spec: ModelSpec,
    pub src: Arc<DefinitionFile>,
    pub settings: Vec<Setting>,
}

/// A report as loaded.
#[derive(Debug)]
pub struct Report {
    pub spec: ReportSpec,
    pub src: Arc<DefinitionFile>,
    /// Settings the report itself declares (including re-declared model settings).
    pub settings: Vec<Setting>,
    /// Per-request parameters the report declares (selectors such as `metric`).
    pub parameters: Vec<Setting>,
}

impl Report {
    pub fn id(&self) -> &str {
        &self.spec.report
    }
}

/// All models and reports available to a run.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub models: IndexMap<String, Arc<Model>>,
    pub reports: IndexMap<String, Arc<Report>>,
}

/// What a model's `from` or a join's `from` names.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A model of the catalog, by name.
    Model(&'a str),
    /// A canonical table.
    Table(&'static svodka_schema::Table),
    /// Neither.
    Unknown(&'a str),
}

impl Catalog {
    /// What `name` reads when named inside the models `within` (the chain being built,
    /// innermost last; empty for a block): `tables.x` is always the canonical table; a
    /// model's name means the model, except inside the model of that name (model `deals`
    /// reads table `deals`); any other name, the canonical table of that name.
    pub fn input<'a>(&self, name: &'a str, within: &[String]) -> Input<'a> {
        let (name, explicit) = match name.strip_prefix("tables.") {
            Some(t) => (t, true),
            None => (name, false),
        };
        let table = svodka_schema::table(name);
        if !explicit
            && self.models.contains_key(name)
            && !(table.is_some() && within.iter().any(|m| m == name))
        {
            return Input::Model(name);
        }
        match table {
            Some(t) => Input::Table(t),
            None => Input::Unknown(name),
        }
    }

    /// Loads files in order; a later definition with the same id replaces an earlier one.
    /// Every problem in every file is collected before failing.
    pub fn from_sources(files: Vec<DefinitionFile>) -> Result<Catalog, ReportError> {
        let (catalog, problems) = Catalog::from_sources_lenient(files);
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(ReportError::Invalid(problems))
        }
    }

    /// Loads every file that is valid on its own and lists the problems of the others
    /// (for `check`, which goes on to compile what loaded).
    pub fn from_sources_lenient(files: Vec<DefinitionFile>) -> (Catalog, Vec<Diagnostic>) {
        let mut catalog = Catalog::default();
        let mut problems = Vec::new();
        // Parsed side by side (YAML parsing is most of a small run's start), added in the
        // files' order: a later file of the same name replaces an earlier one.
        for parsed in crate::run::in_parallel(files, parse) {
            match parsed {
                Ok(parsed) => catalog.insert(parsed),
                Err(mut d) => problems.append(&mut d),
            }
        }
        (catalog, problems)
    }

    /// Adds one file (a model or a report).
    pub fn add(&mut self, file: DefinitionFile) -> Result<(), Vec<Diagnostic>> {
        self.insert(parse(file)?);
        Ok(())
    }

    /// Adds a parsed file, in place of one of the same name.
    fn insert(&mut self, parsed: Parsed) {
        match parsed {
            Parsed::Model(model) => {
                self.models
                    .insert(model.spec.model.clone(), Arc::new(model));
            }
            Parsed::Report(report) => {
                self.reports
                    .insert(report.spec.report.clone(), Arc::new(report));
            }
        }
    }

    /// The report of this id, or an error suggesting the nearest one.
    pub fn report(&self, id: &str) -> Result<&Arc<Report>, ReportError> {
        self.reports
            .get(id)
            .ok_or_else(|| ReportError::UnknownReport {
                id: id.to_string(),
                hint: did_you_mean(id, self.reports.keys().map(String::as_str)),
            })
    }
}

/// Reads every `*.yaml`/`*.yml` file under `dir` (recursively, in name order).
pub fn read_dir(dir: &Path) -> Result<Vec<DefinitionFile>, ReportError> {
    let io = |path: &Path, source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            files.extend(read_dir(&path)?);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(read_file(&path)?);
        }
    }
    Ok(files)
}

/// Reads one definition file.
pub fn read_file(path: &Path) -> Result<DefinitionFile, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(DefinitionFile::new(path.display().to_string(), text))
}

enum FileKind {
    Model,
    Report,
}

/// A definition file parsed and checked on its own.
enum Parsed {
    Model(Model),
    Report(Report),
}

/// Parses and checks one file (a model or a report).
fn parse(file: DefinitionFile) -> Result<Parsed, Vec<Diagnostic>> {
    let src = Arc::new(file);
    let value: serde_yaml::Value =
        serde_yaml::from_str(&src.text).map_err(|e| vec![yaml_diagnostic(&src, &e)])?;
    match file_kind(&src, &value).map_err(|d| vec![d])? {
        FileKind::Model => {
            let spec: ModelSpec = deserialize(&src, value).map_err(|d| vec![d])?;
            Ok(Parsed::Model(check_model(spec, src)?))
        }
        FileKind::Report => {
            let spec: ReportSpec = deserialize(&src, value).map_err(|d| vec![d])?;
            Ok(Parsed::Report(check_report(spec, src)?))
        }
    }
}

fn file_kind(src: &DefinitionFile, value: &serde_yaml::Value) -> Result<FileKind, Diagnostic> {
    let map = value.as_mapping();
    let has = |k: &str| map.is_some_and(|m| m.contains_key(k));
    match (has("model"), has("report")) {
        (true, false) => Ok(FileKind::Model),
        (false, true) => Ok(FileKind::Report),
        _ => Err(Diagnostic::at(
            src,
            "",
            "",
            "a definition file starts with `model: <name>` or `report: <id>`",
        )),
    }
}

/// `value` (`src` parsed) as a `T`. From the parsed tree, which saves scanning the text
/// again (most of reading a catalog); when that fails, from the text, whose errors say
/// where — and which takes a plain scalar as text where the tree holds a number.
fn deserialize<T: serde::de::DeserializeOwned>(
    src: &DefinitionFile,
    value: serde_yaml::Value,
) -> Result<T, Diagnostic> {
    serde_yaml::from_value(value)
        .or_else(|_| serde_yaml::from_str(&src.text))
        .map_err(|e| yaml_diagnostic(src, &e))
}

/// Turns a serde_yaml error into a located diagnostic, with a suggestion for unknown keys.
fn yaml_diagnostic(src: &DefinitionFile, e: &serde_yaml::Error) -> Diagnostic {
    let pos = e
        .location()
        .map(|l| crate::definition::Pos {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or_else(|| unlocated_yaml_error(&src.text));
    let mut message = strip_locations(&e.to_string());
    if let Some(hint) = yaml_hint(&message).or_else(|| unknown_key_hint(&message)) {
        message.push_str(&hint);
    }
    Diagnostic::at_pos(src, pos, "", message)
}

/// What YAML's own words mean for someone writing a definition, and what to write instead:
/// the mistakes people make (an expression cut at a comma in an inline map, a value that
/// must be quoted, indentation, a value of the wrong shape).
fn yaml_hint(message: &str) -> Option<String> {
    const QUOTE: &str =
        "put the whole value in double quotes, e.g. `expr: \"days_between(created_at, $as_of)\"`";
    if let Some(i) = message.find("unknown field `") {
        let key = message[i + "unknown field `".len()..].split('`').next()?;
        // A flow map `{expr: f(a, b), label: …}` ends the value at the comma: what
        // follows becomes a key, which no definition has.
        if key.contains(['(', ')', '$', ' ', '<', '>', '=', '+', '*', '/', '\''])
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Some(format!(
                "; `{key}` looks like the rest of an expression cut at a comma: in an inline \
                 map `{{…}}` a comma ends the value — {QUOTE}"
            ));
        }
        // A key of another kind of named expression (`shift` on a model's measure).
        if let Some((_, home)) = crate::spec::KEY_HOMES.iter().find(|(k, _)| *k == key) {
            return Some(format!(
                "; `{key}` belongs on {home}, it means nothing here"
            ));
        }
        return None;
    }
    if message.contains("found character that cannot start any token") {
        return Some(format!(
            "; a value that starts with `` ` ``, `@`, `%`, `|`, `>`, `!`, `&` or `*` must be \
             quoted — {QUOTE}"
        ));
    }
    if message.contains("did not find expected ',' or '}'")
        || message.contains("did not find expected ',' or ']'")
    {
        return Some(format!(
            "; inside an inline `{{…}}` or `[…]`, a value holding `,`, `:`, `{{`, `}}`, `[` or \
             `]` must be quoted — {QUOTE}"
        ));
    }
    if message.contains("did not find expected key")
        || message.contains("did not find expected '-'")
    {
        return Some(
            "; the indentation does not line up here: the keys of one map start in the same \
             column, a nested map or list is indented further than the key it belongs to, \
             and every line of a list starts with `- ` in the same column"
                .into(),
        );
    }
    if message.contains("mapping values are not allowed in this context") {
        return Some(format!(
            "; a value holds `: ` (or a line is indented under a value): quote a value with \
             `: ` in it — {QUOTE} — or move the line to its key's indentation"
        ));
    }
    if let Some(i) = message.find("invalid type: ") {
        let expected = message[i..].split(", expected ").nth(1)?;
        let example = if expected.starts_with("a map") || expected.starts_with("struct") {
            "a map: `key: value` lines indented under this key, or inline `{key: value}`"
        } else if expected.starts_with("a sequence") {
            "a list: `- item` lines indented under this key, or inline `[a, b]`"
        } else if expected.starts_with("a string") {
            "text: quote it if it could be read as a number or `true`/`false`, e.g. `\"21\"`"
        } else {
            return None;
        };
        return Some(format!("; write {example}"));
    }
    None
}

/// Where an error serde_yaml gives no place for belongs: a second document's `---` (the
/// one such error a file can have), else the file's first line.
fn unlocated_yaml_error(text: &str) -> crate::definition::Pos {
    let mut content_seen = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if content_seen && (line.starts_with("---") || line.starts_with("...")) {
            return crate::definition::Pos {
                line: i + 1,
                column: 1,
            };
        }
        content_seen = true;
    }
    crate::definition::Pos { line: 1, column: 1 }
}

/// Removes serde_yaml's " at line N column M" (the position is reported separately).
fn strip_locations(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n = digits(tail);
        match tail[n..].strip_prefix(" column ") {
            Some(after) if n > 0 => rest = &after[digits(after)..],
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// For "unknown field `x`, expected one of `a`, `b`", the nearest of a, b.
fn unknown_key_hint(message: &str) -> Option<String> {
    let (kind, rest) = if let Some(i) = message.find("unknown field `") {
        ("field", &message[i + "unknown field `".len()..])
    } else if let Some(i) = message.find("unknown variant `") {
        ("variant", &message[i + "unknown variant `".len()..])
    } else {
        return None;
    };
    let _ = kind;
    let (wanted, expected) = rest.split_once('`')?;
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = did_you_mean(wanted, known);
    (!hint.is_empty()).then_some(hint)
}

/// A name usable as an id: lowercase letters, digits and single underscores.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lowercase letters, digits and single underscores, starting with a letter"
        ))
    }
}

fn resolve_settings(
    src: &DefinitionFile,
    context: &str,
    section: &str,
    specs: &IndexMap<String, crate::spec::SettingSpec>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<Setting> {
    let mut out = Vec::new();
    for (name, spec) in specs {
        let path = join(section, name);
        if let Err(m) = check_name(name) {
            problems.push(Diagnostic {
                pos: src.key_pos(&path),
                ..Diagnostic::at(src, &path, context, m)
            });
            continue;
        }
        if BUILTIN_PARAMETERS.contains(&name.as_str()) {
            problems.push(Diagnostic {
                pos: src.key_pos(&path),
                ..Diagnostic::at(
                    src,
                    &path,
                    context,
                    format!("`{name}` is a built-in parameter; choose another name"),
                )
            });
            continue;
        }
        match Setting::from_spec(name, spec) {
            Ok(s) => out.push(s),
            Err(m) => problems.push(Diagnostic::at(
                src,
                &path,
                format!("{context}, {} `{name}`", section.trim_end_matches('s')),
                m,
            )),
        }
    }
    out
}

fn check_model(spec: ModelSpec, src: Arc<DefinitionFile>) -> Result<Model, Vec<Diagnostic>> {
    let context = format!("model `{}`", spec.model);
    let mut problems = Vec::new();
    if let Err(m) = check_name(&spec.model) {
        problems.push(Diagnostic::at(&src, "model", "", m));
    }
    for (name, _) in spec.filters.iter() {
        if !FILTERS.iter().any(|(f, _)| f == name) {
            problems.push(Diagnostic {
                pos: src.key_pos(&join("filters", name)),
                ..Diagnostic::at(
                    &src,
                    "filters",
                    context.clone(),
                    format!(
                        "unknown filter `{name}`{}; filters are {}",
                        did_you_mean(name, FILTERS.iter().map(|(f, _)| *f)),
                        FILTERS
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            });
        }
    }
    check_unique_names(
        &src,
        &context,
        "columns",
        spec.columns.names(),
        &mut problems,
    );
    check_unique_names(
        &src,
        &context,
        "measures",
        spec.measures.names(),
        &mut problems,
    );
    let settings = resolve_settings(&src, &context, "settings", &spec.settings, &mut problems);
    if problems.is_empty() {
        Ok(Model {
            spec,
            src,
            settings,
        })
    } else {
        Err(problems)
    }
}

fn check_report(spec: ReportSpec, src: Arc<DefinitionFile>) -> Result<Report, Vec<Diagnostic>> {
    let context = format!("report `{}`", spec.report);
    let mut problems = Vec::new();
    if let Err(m) = check_name(&spec.report) {
        problems.push(Diagnostic::at(&src, "report", "", m));
    }
    if spec.blocks.is_empty() {
        problems.push(Diagnostic::at(
            &src,
            "blocks",
            context.clone(),
            "a report needs at least one block",
        ));
    }
    for (i, block) in spec.blocks.iter().enumerate() {
        let path = crate::definition::index("blocks", i);
        if let Err(m) = check_name(&block.id) {
            problems.push(Diagnostic::at(&src, &join(&path, "id"), context.clone(), m));
        }
        if spec.blocks[..i].iter().any(|b| b.id == block.id) {
            problems.push(Diagnostic::at(
                &src,
                &join(&path, "id"),
                context.clone(),
                format!("block id `{}` is used twice", block.id),
            ));
        }
        let bctx = format!("{context}, block `{}`", block.id);
        let list = !block.columns.is_empty();
        if list && (!block.measures.is_empty() || !block.by.is_empty() || block.totals) {
            problems.push(Diagnostic::at(
                &src,
                &path,
                bctx.clone(),
                "a block has either `columns` (a list) or `by`/`measures`/`totals` (a table), not both",
            ));
        } else if !list && block.measures.is_empty() {
            problems.push(Diagnostic::at(
                &src,
                &path,
                bctx.clone(),
                "a block needs `measures` (a table) or `columns` (a list)",
            ));
        }
        if list && block.from.is_none() {
            problems.push(Diagnostic::at(
                &src,
                &path,
                bctx.clone(),
                "a list block needs `from: <model>`",
            ));
        }
        let names: Vec<&str> = block
            .by
            .names()
            .chain(block.measures.names())
            .chain(block.columns.names())
            .collect();
        check_unique_names(&src, &bctx, &path, names.into_iter(), &mut problems);
    }
    let settings = resolve_settings(&src, &context, "settings", &spec.settings, &mut problems);
    let parameters = resolve_settings(
        &src,
        &context,
        "parameters",
        &spec.parameters,
        &mut problems,
    );
    for p in &parameters {
        if settings.iter().any(|s| s.name == p.name) {
            problems.push(Diagnostic {
                pos: src.key_pos(&join("parameters", &p.name)),
                ..Diagnostic::at(
                    &src,
                    "parameters",
                    context.clone(),
                    format!("`{}` is both a setting and a parameter", p.name),
                )
            });
        }
    }
    if problems.is_empty() {
        Ok(Report {
            spec,
            src,
            settings,
            parameters,
        })
    } else {
        Err(problems)
    }
}

/// Output names must be valid and distinct.
fn check_unique_names<'a>(
    src: &DefinitionFile,
    context: &str,
    path: &str,
    names: impl Iterator<Item = &'a str>,
    problems: &mut Vec<Diagnostic>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if let Err(m) = check_name(name) {
            problems.push(Diagnostic::at(src, path, context, m));
        } else if seen.contains(&name) {
            problems.push(Diagnostic::at(
                src,
                path,
                context,
                format!("`{name}` is defined twice"),
            ));
        }
        seen.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &str)]) -> Catalog {
        let files = files
            .iter()
            .map(|(name, text)| DefinitionFile::new(*name, *text))
            .collect();
        Catalog::from_sources(files).unwrap()
    }

    /// What a `from` names: `tables.x` the table always; a model's name the model, but
    /// inside that model (or a model it reads) the table it refines; other names the
    /// canonical table, or nothing.
    #[test]
    fn a_from_names_a_model_or_a_table_by_one_rule() {
        let c = catalog(&[
            (
                "deals.yaml",
                "model: deals\nfrom: deals\nmeasures:\n  n: count(*)\n",
            ),
            (
                "won.yaml",
                "model: won\nfrom: deals\nmeasures:\n  n: count(*)\n",
            ),
        ]);
        let name = |i: Input| match i {
            Input::Model(m) => format!("model {m}"),
            Input::Table(t) => format!("table {}", t.name),
            Input::Unknown(u) => format!("unknown {u}"),
        };
        let within = |models: &[&str]| models.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(name(c.input("deals", &[])), "model deals");
        assert_eq!(name(c.input("tables.deals", &[])), "table deals");
        assert_eq!(name(c.input("deals", &within(&["deals"]))), "table deals");
        assert_eq!(
            name(c.input("deals", &within(&["deals", "won"]))),
            "table deals"
        );
        assert_eq!(name(c.input("deals", &within(&["won"]))), "model deals");
        assert_eq!(name(c.input("won", &within(&["won"]))), "model won");
        assert_eq!(name(c.input("leads", &[])), "table leads");
        assert_eq!(name(c.input("tables.won", &[])), "unknown won");
        assert_eq!(name(c.input("dealz", &[])), "unknown dealz");
    }

    /// A key of another kind of named expression is refused where it stands, and the
    /// error says where it belongs.
    #[test]
    fn a_key_of_another_kind_says_where_it_belongs() {
        let file = DefinitionFile::new(
            "m.yaml",
            "model: m\nfrom: deals\nmeasures:\n  n: { expr: count(*), total: sum }\n",
        );
        let err = Catalog::from_sources(vec![file]).unwrap_err().to_string();
        assert!(
            err.contains("m.yaml:4:")
                && err.contains("unknown field `total`")
                && err.contains("`total` belongs on block measures, it means nothing here"),
            "{err}"
        );
    }
}
