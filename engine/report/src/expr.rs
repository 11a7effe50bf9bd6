//! SQL fragments of the report language: parsed with DataFusion's SQL parser, every name
//! resolved by our own scoping rules (so an unknown name is reported at its exact place
//! with the nearest valid names), then planned into a DataFusion `Expr` with settings and
//! parameters bound as literal values — never spliced into SQL text.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self as ast, ExprWithAlias, Ident, Value, VisitMut, VisitorMut, visit_expressions,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use crate::definition::{DefinitionFile, Pos};
use crate::error::{Diagnostic, did_you_mean};

/// Where an expression was written: file, YAML path, and what it defines (for messages).
#[derive(Debug, Clone)]
pub struct ExprSite {
    pub src: Arc<DefinitionFile>,
    pub path: String,
    pub context: String,
}

impl ExprSite {
    /// A diagnostic at the expression's start.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.src, &self.path, self.context.clone(), message)
    }

    /// A diagnostic at a line/column inside the expression text (1-based).
    pub fn error_at(&self, line: u64, column: u64, message: impl Into<String>) -> Diagnostic {
        let pos = self
            .src
            .pos_in_value(&self.path, line as usize, column as usize);
        Diagnostic::at_pos(&self.src, pos, self.context.clone(), message)
    }

    /// A diagnostic at the first whole-word occurrence of `needle` in the expression.
    pub fn error_near(&self, needle: &str, message: impl Into<String>) -> Diagnostic {
        let pos: Pos = self.src.pos_within(&self.path, needle);
        Diagnostic::at_pos(&self.src, pos, self.context.clone(), message)
    }
}

/// What a name in an expression refers to, and the column it becomes in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The plan column the name is rewritten to.
    pub column: String,
    pub kind: TargetKind,
}

/// The kinds of things a name can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A row-level column of a model or table.
    Column,
    /// A measure of a model.
    Measure { model: String, name: String },
    /// Another measure of the same block.
    BlockMeasure(String),
    /// A dimension of the block (for window partitions over measures).
    Dimension(String),
}

/// The names visible to an expression: `(qualifier, name) → target`.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    entries: HashMap<(Option<String>, String), Target>,
    /// What a qualifier may name (for "unknown model" hints).
    qualifiers: Vec<String>,
}

impl Scope {
    pub fn add(&mut self, qualifier: Option<&str>, name: &str, target: Target) {
        if let Some(q) = qualifier
            && !self.qualifiers.iter().any(|k| k == q)
        {
            self.qualifiers.push(q.to_string());
        }
        self.entries
            .insert((qualifier.map(str::to_string), name.to_string()), target);
    }

    /// Adds every column name as an unqualified row-level column of the same name.
    pub fn add_columns<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for n in names {
            self.add(
                None,
                n,
                Target {
                    column: n.to_string(),
                    kind: TargetKind::Column,
                },
            );
        }
    }

    /// Makes `q` a known qualifier even when nothing is added under it yet.
    pub fn add_qualifier(&mut self, q: &str) {
        if !self.qualifiers.iter().any(|k| k == q) {
            self.qualifiers.push(q.to_string());
        }
    }

    pub fn get(&self, qualifier: Option<&str>, name: &str) -> Option<&Target> {
        self.entries
            .get(&(qualifier.map(str::to_string), name.to_string()))
    }

    /// Removes an unqualified name.
    pub fn remove(&mut self, name: &str) {
        self.entries.remove(&(None, name.to_string()));
    }

    fn lookup(&self, qualifier: Option<&str>, name: &str) -> Result<&Target, String> {
        if let Some(t) = self
            .entries
            .get(&(qualifier.map(str::to_string), name.to_string()))
        {
            return Ok(t);
        }
        match qualifier {
            Some(q) if !self.qualifiers.iter().any(|k| k == q) => Err(format!(
                "unknown model `{q}` in `{q}.{name}`{}",
                did_you_mean(q, self.qualifiers.iter().map(String::as_str))
            )),
            Some(q) => {
                let known = self
                    .entries
                    .keys()
                    .filter(|(kq, _)| kq.as_deref() == Some(q))
                    .map(|(_, n)| n.as_str());
                Err(format!(
                    "model `{q}` has no measure `{name}`{}",
                    did_you_mean(name, known)
                ))
            }
            None => {
                let known = self
                    .entries
                    .keys()
                    .filter(|(kq, _)| kq.is_none())
                    .map(|(_, n)| n.as_str());
                Err(format!(
                    "unknown name `{name}`{}",
                    did_you_mean(name, known)
                ))
            }
        }
    }
}

/// The name of `f` when it is an aggregate call, not a window (`count(*)`, not
/// `sum(x) over ()`); `aggregates` are the session's aggregate functions, lowercase.
fn aggregate_call<'f>(f: &'f ast::Function, aggregates: &[String]) -> Option<&'f Ident> {
    let id = f.name.0.last()?.as_ident()?;
    (f.over.is_none() && aggregates.contains(&id.value.to_lowercase())).then_some(id)
}

/// A parsed expression with its names resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub ast: ast::Expr,
    /// Every distinct target the expression refers to, in order of appearance.
    pub refs: Vec<Target>,
    /// Every `$name` used.
    pub placeholders: Vec<String>,
    /// The first aggregate call that is not a window (`count(*)`, not `sum(x) over ()`):
    /// its name and where it starts in the text (line, column; 1-based).
    pub aggregate: Option<(String, u64, u64)>,
}

/// Parses `text` and resolves its names in `scope`. Errors point into the expression.
pub fn resolve(
    state: &SessionState,
    site: &ExprSite,
    text: &str,
    scope: &Scope,
) -> Result<Resolved, Diagnostic> {
    resolve_layered(state, site, text, scope, None)
}

/// As `resolve`, but names inside the arguments of an aggregate call (`sum(amount)`,
/// not a window `sum(n) over ()`) look in `in_aggregates` first: there a name means a
/// row-level column even where a measure of the same name shadows it outside.
pub fn resolve_layered(
    state: &SessionState,
    site: &ExprSite,
    text: &str,
    scope: &Scope,
    in_aggregates: Option<&Scope>,
) -> Result<Resolved, Diagnostic> {
    let parsed = match parse(state, text).as_ref() {
        Parsed::TooBig(message) => return Err(site.error(message.clone())),
        Parsed::Failed(message) => {
            return Err(site.error(format!("cannot parse SQL `{text}`: {message}")));
        }
        Parsed::Expr(parsed) => (**parsed).clone(),
    };
    if let Some(alias) = parsed.alias {
        return Err(site.error_at(
            alias.span.start.line,
            alias.span.start.column,
            "an expression here takes no alias: the YAML key names it",
        ));
    }
    let mut ast = parsed.expr;
    let aggregates: Vec<String> = state
        .aggregate_functions()
        .keys()
        .map(|k| k.to_lowercase())
        .collect();
    let mut resolver = Resolver {
        site,
        scope,
        in_aggregates,
        aggregates: &aggregates,
        refs: Vec::new(),
        failure: None,
    };
    let _ = ast.visit(&mut resolver);
    if let Some(d) = resolver.failure {
        return Err(d);
    }
    let refs = resolver.refs;
    let mut placeholders = Vec::new();
    let mut aggregate = None;
    let _ = visit_expressions(&ast, |e| {
        match e {
            ast::Expr::Value(v) => {
                if let Value::Placeholder(p) = &v.value
                    && !placeholders.contains(p)
                {
                    placeholders.push(p.clone());
                }
            }
            ast::Expr::Function(f) if aggregate.is_none() => {
                if let Some(id) = aggregate_call(f, &aggregates) {
                    aggregate = Some((id.value.clone(), id.span.start.line, id.span.start.column));
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Resolved {
        ast,
        refs,
        placeholders,
        aggregate,
    })
}

/// An expression's text as the parser reads it.
pub enum Parsed {
    /// Refused before parsing (`too_many_operators`), with why.
    TooBig(String),
    /// Not SQL, with the parser's message.
    Failed(String),
    /// Parsed.
    Expr(Box<ExprWithAlias>),
}

impl Parsed {
    /// The expression, where the text parsed (too big or not SQL: none).
    pub fn expr(&self) -> Option<&ast::Expr> {
        match self {
            Parsed::Expr(parsed) => Some(&parsed.expr),
            Parsed::TooBig(_) | Parsed::Failed(_) => None,
        }
    }
}

/// The texts a session has parsed, each parsed once: a run builds each model for every
/// period it reads and over stand-ins as well as rows, naming the same columns each time,
/// and parsing them again was ~5 % of a small run's instructions. A session extension, so
/// it lives as long as the run's session and is shared by all its compilers.
#[derive(Default)]
pub struct ParsedTexts(std::sync::Mutex<HashMap<String, Arc<Parsed>>>);

/// `text` parsed in `state`'s dialect, once per session (`ParsedTexts`; parsed every time
/// where the session has none).
pub fn parse(state: &SessionState, text: &str) -> Arc<Parsed> {
    let memo = state.config().get_extension::<ParsedTexts>();
    if let Some(memo) = &memo
        && let Some(parsed) = memo.0.lock().unwrap_or_else(|e| e.into_inner()).get(text)
    {
        return parsed.clone();
    }
    let parsed = Arc::new(match too_many_operators(text) {
        Some(message) => Parsed::TooBig(message),
        None => {
            let dialect = state.config().options().sql_parser.dialect;
            match state.sql_to_expr_with_alias(text, &dialect) {
                Ok(parsed) => Parsed::Expr(Box::new(parsed)),
                Err(e) => Parsed::Failed(clean(&e.to_string())),
            }
        }
    });
    if let Some(memo) = memo {
        memo.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(text.to_string(), parsed.clone());
    }
    parsed
}

/// How many operators one expression may hold (`a + b + c …` holds one per term). The SQL
/// parser, DataFusion and our own passes all walk an expression recursively; a chain of
/// thousands of terms would exhaust the stack of the whole process (and take minutes to
/// plan), so a definition beyond this is refused with its place, before it is parsed.
pub const MAX_OPERATORS: usize = 256;

/// Why `text` is refused before parsing: more operators than `MAX_OPERATORS`, counted on
/// its tokens (a flat scan that cannot overflow).
pub fn too_many_operators(text: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, text).tokenize().ok()?;
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq => true,
            Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
            _ => false,
        })
        .count();
    (operators > MAX_OPERATORS).then(|| {
        format!(
            "the expression has {operators} operators (at most {MAX_OPERATORS}): split it into named columns or measures"
        )
    })
}

/// Rewrites every name to the plan column it resolves to. A rewritten name has an empty
/// span, which marks it as done for the enclosing pass.
struct Resolver<'a> {
    site: &'a ExprSite,
    scope: &'a Scope,
    in_aggregates: Option<&'a Scope>,
    aggregates: &'a [String],
    refs: Vec<Target>,
    failure: Option<Diagnostic>,
}

impl VisitorMut for Resolver<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        if let (ast::Expr::Function(f), Some(inner)) = (&*e, self.in_aggregates)
            && aggregate_call(f, self.aggregates).is_some()
        {
            let mut nested = Resolver {
                site: self.site,
                scope: inner,
                in_aggregates: None,
                aggregates: self.aggregates,
                refs: Vec::new(),
                failure: None,
            };
            let _ = e.visit(&mut nested);
            for t in nested.refs {
                if !self.refs.contains(&t) {
                    self.refs.push(t);
                }
            }
            if let Some(d) = nested.failure {
                self.failure = Some(d);
                return ControlFlow::Break(());
            }
            return ControlFlow::Continue(());
        }
        let (qualifier, ident) = match &*e {
            ast::Expr::Identifier(id) if id.span == Span::empty() => {
                return ControlFlow::Continue(());
            }
            ast::Expr::Identifier(id) => (None, id.clone()),
            ast::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                (Some(normalize(&parts[0])), parts[1].clone())
            }
            ast::Expr::CompoundIdentifier(parts) => {
                self.failure = Some(self.site.error_at(
                    parts[0].span.start.line,
                    parts[0].span.start.column,
                    format!(
                        "`{}`: names have at most one qualifier (`model.measure`)",
                        parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(".")
                    ),
                ));
                return ControlFlow::Break(());
            }
            _ => return ControlFlow::Continue(()),
        };
        match self.scope.lookup(qualifier.as_deref(), &normalize(&ident)) {
            Ok(target) => {
                if !self.refs.contains(target) {
                    self.refs.push(target.clone());
                }
                *e = ast::Expr::Identifier(Ident {
                    value: target.column.clone(),
                    quote_style: Some('"'),
                    span: Span::empty(),
                });
                ControlFlow::Continue(())
            }
            Err(message) => {
                self.failure = Some(self.site.error_at(
                    ident.span.start.line,
                    ident.span.start.column,
                    message,
                ));
                ControlFlow::Break(())
            }
        }
    }
}

/// Unquoted identifiers are case-insensitive (as in SQL); quoted ones are exact.
fn normalize(id: &Ident) -> String {
    match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_lowercase(),
    }
}

/// Values bound to `$name` placeholders.
#[derive(Debug, Clone, Default)]
pub struct Bindings(
    pub HashMap<String, ScalarValue>,
    /// Structured settings (map, list, table), read as tables with `from: $name`.
    pub HashMap<String, crate::settings::Rows>,
);

impl Bindings {
    /// Binds a setting or parameter value: a scalar as `$name`, a structured one as a table.
    pub fn bind(&mut self, name: &str, value: &crate::settings::SettingValue) {
        match (crate::settings::scalar(value), value) {
            (Some(v), _) => {
                self.0.insert(name.to_string(), v);
            }
            (None, crate::settings::SettingValue::Rows(rows)) => {
                // A list is also a value (an SQL array), for functions such as `bucket`.
                if rows.kind == crate::spec::SettingType::List {
                    let ty = crate::settings::arrow_type(rows.columns[0].1);
                    let items: Vec<ScalarValue> = rows
                        .rows
                        .iter()
                        .filter_map(|r| crate::settings::scalar(&r[0]))
                        .filter_map(|v| v.cast_to(&ty).ok())
                        .collect();
                    self.0.insert(
                        name.to_string(),
                        ScalarValue::List(ScalarValue::new_list(&items, &ty, true)),
                    );
                }
                self.1.insert(name.to_string(), rows.clone());
            }
            (None, _) => unreachable!("only structured values have no scalar"),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Plans a resolved expression against `schema` and binds its placeholders.
pub fn plan(
    state: &SessionState,
    site: &ExprSite,
    resolved: &Resolved,
    schema: &DFSchema,
    bindings: &Bindings,
) -> Result<Expr, Diagnostic> {
    for p in &resolved.placeholders {
        let name = p.trim_start_matches('$');
        if bindings.1.contains_key(name) && !bindings.0.contains_key(name) {
            return Err(site.error_near(
                name,
                format!("`${name}` is a {} setting: read it as a table with `from: ${name}` (in a join or a model)", bindings.1[name].kind),
            ));
        }
        if !bindings.0.contains_key(name) {
            return Err(site.error_near(
                name,
                format!(
                    "unknown setting or parameter `${name}`{}",
                    did_you_mean(name, bindings.names())
                ),
            ));
        }
    }
    let expr = state
        .create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: resolved.ast.clone(),
                alias: None,
            },
            schema,
        )
        .map_err(|e| site.error(clean(&e.to_string())))?;
    let bound = expr
        .transform_up(|e| match e {
            Expr::Placeholder(p) => {
                let name = p.id.trim_start_matches('$');
                Ok(Transformed::yes(Expr::Literal(
                    bindings.0[name].clone(),
                    None,
                )))
            }
            Expr::Case(case) if chooses_by_value(&case) => Ok(Transformed::yes(searched(case))),
            other => Ok(Transformed::no(other)),
        })
        .map_err(|e| site.error(clean(&e.to_string())))?
        .data;
    // Computing the type of every sub-expression runs DataFusion's type checks now, so
    // that a type error is reported here, at the expression, rather than later inside a
    // whole plan (an aggregate's FILTER clause is not checked by the aggregate's own type).
    let mut failure = None;
    let _ = bound.apply(|e| {
        if let Err(err) = e.to_field(schema) {
            failure = Some(err);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if let Some(err) = failure {
        return Err(site.error(clean(&err.to_string())));
    }
    Ok(bound)
}

/// True for a simple `CASE` over a value known when the expression is planned, every
/// `WHEN` a value of the same type: `case $metric when 'won_sum' then won_sum … end`.
fn chooses_by_value(case: &datafusion::logical_expr::expr::Case) -> bool {
    let Some(Expr::Literal(value, _)) = case.expr.as_deref() else {
        return false;
    };
    let ty = value.data_type();
    case.when_then_expr
        .iter()
        .all(|(when, _)| matches!(when.as_ref(), Expr::Literal(w, _) if w.data_type() == ty))
}

/// A simple `CASE` as the searched one it stands for: `case v when a then x … end` as
/// `case when v = a then x … end` — the same rows, the same result type. Over values
/// known when planned (`chooses_by_value`), DataFusion's simplifier folds each `v = a`
/// and keeps only the branch taken, so the measures the other branches read (an index
/// over a window, say) are neither planned nor computed; it does not fold the simple
/// form.
fn searched(case: datafusion::logical_expr::expr::Case) -> Expr {
    let datafusion::logical_expr::expr::Case {
        expr,
        when_then_expr,
        else_expr,
    } = case;
    let value = *expr.expect("a simple CASE has a value");
    Expr::Case(datafusion::logical_expr::expr::Case {
        expr: None,
        when_then_expr: when_then_expr
            .into_iter()
            .map(|(when, then)| (Box::new(value.clone().eq(*when)), then))
            .collect(),
        else_expr,
    })
}

/// DataFusion messages carry category prefixes, a bug-report hint and, for signature
/// mismatches, one line per candidate; keep what a report author needs.
pub fn clean(message: &str) -> String {
    const HINT: &str = "This issue was likely caused by a bug in DataFusion's code. Please help us to resolve this by filing a bug report in our issue tracker: https://github.com/apache/datafusion/issues.";
    const NO_MATCH: &str = "No function matches the given name and argument types";
    let mut m = message.replace(HINT, "");
    if let Some(at) = m.find(NO_MATCH) {
        let rest = &m[at + NO_MATCH.len()..];
        let call = rest.split('.').next().unwrap_or("").trim();
        let candidates: Vec<&str> = rest
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Candidate") && !l.starts_with("You might"))
            .collect();
        m = format!(
            "no function matches {call}; it accepts {}",
            candidates.join(", ")
        );
    }
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "Arrow error: ",
        "Execution error: ",
        "Internal error: ",
        "type_coercion\ncaused by\n",
    ] {
        m = m.replace(prefix, "");
    }
    plain(m.trim())
}

/// No plan dump reaches a user: a message that quotes DataFusion's plans or expressions
/// (their debug form runs to thousands of characters) keeps its own words up to the first
/// quoted plan, and any message is kept to a readable length.
fn plain(message: &str) -> String {
    const PLAN_TEXT: [&str; 7] = [
        "AggregateFunction(",
        "WindowFunction(",
        "ScalarFunction(",
        "LogicalPlan",
        "Projection:",
        "TableScan:",
        "Column { relation",
    ];
    const MAX: usize = 400;
    let mut m = message.to_string();
    if m.contains("does not support logical expression AggregateFunction") {
        return "an aggregate (count, sum …) cannot stand where each row needs its own value: \
                compute it in a measure"
            .to_string();
    }
    if let Some(at) = PLAN_TEXT.iter().filter_map(|p| m.find(p)).min() {
        m.truncate(at);
        m = format!("{} …", m.trim_end().trim_end_matches([':', ',']));
    }
    if m.chars().count() > MAX {
        m = m.chars().take(MAX).collect::<String>() + " …";
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_plan_text_reaches_a_user() {
        let dump = format!(
            "This feature is not implemented: Physical plan does not support logical expression AggregateFunction(AggregateFunction {{ func: AggregateUDF {{ inner: Count {{ {} }} }} }})",
            "x".repeat(1900)
        );
        let m = clean(&dump);
        assert_eq!(
            m,
            "an aggregate (count, sum …) cannot stand where each row needs its own value: compute it in a measure"
        );
        let m = clean(&format!(
            "Error during planning: cannot join on Projection: a, b\n  TableScan: deals {}",
            "y".repeat(500)
        ));
        assert_eq!(m, "cannot join on …");
        let long = "z".repeat(1000);
        assert_eq!(clean(&long).chars().count(), 402);
        // Ordinary messages pass as they are.
        assert_eq!(
            clean("Schema error: No field named amout"),
            "No field named amout"
        );
    }
}
