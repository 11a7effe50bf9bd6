//! Compiles models and blocks into DataFusion DataFrames (logical plans) through the
//! DataFrame API. Settings and parameters enter as literal values; report filters as
//! `IN` lists on the columns each model names for them.
//!
//! A table block reads one or more models. Each model is aggregated by the block's
//! dimensions on its own; when there are several, the per-model results are stacked
//! (UNION ALL, each model's measures null in the others' rows) and folded by dimension,
//! which is a full outer join on the dimensions that also matches null keys. Measures that
//! combine other measures are computed after that, so they may mix models.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::execution::session_state::SessionState;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::utils::find_aggregate_exprs;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, LogicalPlanBuilder, SortExpr};
use indexmap::IndexMap;

use crate::catalog::{Catalog, Model, Report};
use crate::error::{Diagnostic, ReportError, did_you_mean};
use crate::expr::{self, Bindings, ExprSite, Resolved, Scope, Target, TargetKind};
use crate::params::RunParams;
use crate::result::{BlockKind, ColumnMeta, infer_type, type_fits};
use crate::source::{SourceFile, index, join};
use crate::spec::{BlockPeriod, Empty, ExprSpec, Limit, Shift, TimeSpec};
use crate::tables::TableSource;
use crate::time::Grain;

impl From<Diagnostic> for ReportError {
    fn from(d: Diagnostic) -> Self {
        ReportError::invalid(d)
    }
}

/// A compiled block: the plan of its rows (and of its totals row), with column metadata.
#[derive(Debug, Clone)]
pub struct CompiledBlock {
    pub kind: BlockKind,
    pub rows: DataFrame,
    pub totals: Option<DataFrame>,
    pub columns: Vec<ColumnMeta>,
    pub children: Vec<CompiledChild>,
}

/// The rows a block's rows expand into (department → its employees).
#[derive(Debug, Clone)]
pub struct CompiledChild {
    pub id: String,
    pub title: Option<String>,
    /// The block's dimensions: a child row belongs to the row with the same values.
    pub parent_keys: Vec<String>,
    /// Parent dimensions, child dimensions, measures.
    pub rows: DataFrame,
    pub columns: Vec<ColumnMeta>,
}

/// A measure of a model, parsed once per compiler.
#[derive(Debug, Clone)]
struct Measure {
    model: String,
    name: String,
    spec: ExprSpec,
    text: String,
    kind: MeasureKind,
}

#[derive(Debug, Clone)]
enum MeasureKind {
    /// An aggregate over the model's rows.
    Base { expr: Expr, empty: Empty },
    /// An expression over other measures (names rewritten to their plan columns).
    Derived {
        resolved: Box<Resolved>,
        site: ExprSite,
    },
}

/// Builds plans for one run (one set of bindings and filters).
pub struct Compiler<'a> {
    catalog: &'a Catalog,
    source: &'a dyn TableSource,
    state: SessionState,
    params: RunParams,
    bindings: Bindings,
    filters: Vec<(String, Vec<ScalarValue>)>,
    frames: Mutex<HashMap<(String, bool), DataFrame>>,
    measures: Mutex<HashMap<String, Arc<IndexMap<String, Measure>>>>,
    /// Per model read by blocks, the columns the run reads of it, once known
    /// (`narrow`): a join that brings none of them, directly or through the model's
    /// derived columns, and cannot change the row count, is left out of the model.
    needed: Mutex<HashMap<String, HashSet<String>>>,
}

/// One aggregation of a table block: a model, over the run's period or a shifted one.
type Part = (String, Option<Shift>);

/// The plan column a model measure becomes inside a block.
fn measure_column(model: &str, name: &str) -> String {
    format!("{model}__{name}")
}

/// The plan column of a block's own measure before it is renamed for output.
fn block_column(name: &str) -> String {
    format!("__block__{name}")
}

/// An unqualified column reference (names never contain dots, but `col()` would parse them).
fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn frame_columns(df: &DataFrame) -> Vec<String> {
    df.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn column_scope(names: &[String]) -> Scope {
    let mut scope = Scope::default();
    scope.add_columns(names.iter().map(String::as_str));
    scope
}

/// Attaches the block or model context to a DataFusion error raised while building.
fn df_error(
    src: &SourceFile,
    path: &str,
    context: &str,
    e: datafusion::error::DataFusionError,
) -> ReportError {
    Diagnostic::at(src, path, context, expr::clean(&e.to_string())).into()
}

impl<'a> Compiler<'a> {
    pub fn new(
        catalog: &'a Catalog,
        source: &'a dyn TableSource,
        state: SessionState,
        params: RunParams,
        bindings: Bindings,
        filters: Vec<(String, Vec<ScalarValue>)>,
    ) -> Self {
        Compiler {
            catalog,
            source,
            state,
            params,
            bindings,
            filters,
            frames: Mutex::new(HashMap::new()),
            measures: Mutex::new(HashMap::new()),
            needed: Mutex::new(HashMap::new()),
        }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// A compiler for the same run over a shifted period (its own caches: every model it
    /// reads is computed for that period).
    pub(crate) fn shifted(&self, shift: Shift) -> Compiler<'a> {
        self.with_params(self.params.shifted(shift))
    }

    /// A compiler for the same run over other parameters (its own caches).
    fn with_params(&self, params: RunParams) -> Compiler<'a> {
        let mut bindings = self.bindings.clone();
        for (name, value) in params.bindings() {
            bindings.0.insert(name.to_string(), value);
        }
        Compiler::new(
            self.catalog,
            self.source,
            self.state.clone(),
            params,
            bindings,
            self.filters.clone(),
        )
    }

    /// From now on the model (as blocks read it) is built for these columns only.
    pub fn narrow(&self, model: &str, columns: &[String]) {
        self.needed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.to_string(), columns.iter().cloned().collect());
    }

    /// Forgets every model frame but `keep`'s, so that frames are built again over the
    /// ones kept (models computed in memory since).
    pub fn forget_frames_except(&self, keep: &[(String, bool)]) {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep.contains(k));
    }

    /// For a model narrowed by the run (`narrow`): the columns it must still compute, and
    /// the joins (by index) it leaves out — those that bring no column the run reads,
    /// directly or through derived columns, report filters or the keys of the joins kept,
    /// and match at most one row (`one_row_per_key`), so that leaving them out changes no
    /// row.
    fn narrowing(
        &self,
        model: &Model,
        stack: &[String],
    ) -> Option<(HashSet<String>, HashSet<usize>)> {
        let mut required = self
            .needed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&model.spec.model)
            .cloned()?;
        let spec = &model.spec;
        required.extend(spec.filters.values().cloned());
        let kept = |j: &crate::spec::JoinSpec, required: &HashSet<String>| {
            j.take.iter().any(|(name, _)| required.contains(name))
                || !self.one_row_per_key(j, stack)
        };
        loop {
            let before = required.len();
            let mut more: Vec<String> = Vec::new();
            for (c, column) in spec.columns.iter() {
                if required.contains(c) {
                    more.extend(identifiers(
                        &self.state,
                        column.expr.as_deref().unwrap_or(c),
                    ));
                }
            }
            for j in spec.joins.iter().filter(|j| kept(j, &required)) {
                for ours in j.on.keys() {
                    more.extend(identifiers(&self.state, ours));
                }
            }
            required.extend(more);
            if required.len() == before {
                break;
            }
        }
        let left_out = spec
            .joins
            .iter()
            .enumerate()
            .filter(|(_, j)| !kept(j, &required))
            .map(|(i, _)| i)
            .collect();
        Some((required, left_out))
    }

    /// True when the join matches at most one row of its right side: the join's keys,
    /// with the columns its `where` fixes to a value, cover the groups of a `group_by`
    /// model or the key of a canonical table.
    fn one_row_per_key(&self, j: &crate::spec::JoinSpec, stack: &[String]) -> bool {
        let (name, explicit) = match j.from.strip_prefix("tables.") {
            Some(t) => (t, true),
            None => (j.from.as_str(), false),
        };
        let model = self
            .catalog
            .models
            .get(name)
            .filter(|_| !explicit && !stack.iter().any(|m| m == name));
        let key: Vec<&str> = match model {
            Some(m) => match &m.spec.group_by {
                Some(groups) => groups.iter().map(|(g, _)| g.as_str()).collect(),
                None => return false,
            },
            None => match svodka_schema::table(name) {
                Some(t) if !t.key.is_empty() => t.key.to_vec(),
                _ => return false,
            },
        };
        let mut matched: HashSet<String> = j.on.values().cloned().collect();
        if let Some(w) = &j.filter {
            matched.extend(fixed_columns(&self.state, w));
        }
        key.iter().all(|k| matched.contains(*k))
    }

    /// Replaces a model's frame by a given one (e.g. its rows cached in memory).
    pub fn set_frame(&self, model: &str, filtered: bool, df: DataFrame) {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((model.to_string(), filtered), df);
    }

    fn resolve(&self, site: &ExprSite, text: &str, scope: &Scope) -> Result<Resolved, Diagnostic> {
        expr::resolve(&self.state, site, text, scope)
    }

    fn plan(
        &self,
        site: &ExprSite,
        resolved: &Resolved,
        schema: &DFSchema,
    ) -> Result<Expr, Diagnostic> {
        expr::plan(&self.state, site, resolved, schema, &self.bindings)
    }

    /// Parses, resolves against the frame's columns and plans, in one step.
    fn row_expr(&self, site: &ExprSite, text: &str, df: &DataFrame) -> Result<Expr, Diagnostic> {
        let scope = column_scope(&frame_columns(df));
        let resolved = self.resolve(site, text, &scope)?;
        self.plan(site, &resolved, df.schema())
    }

    fn filter(&self, df: DataFrame, site: &ExprSite, text: &str) -> Result<DataFrame, ReportError> {
        let predicate = self.row_expr(site, text, &df)?;
        df.filter(predicate)
            .map_err(|e| df_error(&site.src, &site.path, &site.context, e))
    }

    /// A table or a model, by name. A model may share its name with the table it refines
    /// (model `deals` reads table `deals`): inside that model the name means the table,
    /// everywhere else the model.
    fn source_frame(
        &self,
        name: &str,
        src: &SourceFile,
        path: &str,
        context: &str,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        if let Some(setting) = name.strip_prefix('$') {
            return self.setting_frame(setting, src, path, context);
        }
        // `tables.x` is always the canonical table, whatever the models are called.
        let (name, explicit) = match name.strip_prefix("tables.") {
            Some(t) => (t, true),
            None => (name, false),
        };
        let is_table = svodka_schema::table(name).is_some();
        if !explicit
            && self.catalog.models.contains_key(name)
            && !(is_table && stack.iter().any(|m| m == name))
        {
            return self.model_frame(name, false, stack);
        }
        if !is_table {
            let known = svodka_schema::TABLES
                .iter()
                .map(|t| t.name)
                .chain(self.catalog.models.keys().map(String::as_str));
            return Err(Diagnostic::at(
                src,
                path,
                context,
                format!(
                    "unknown table or model `{name}`{}",
                    did_you_mean(name, known)
                ),
            )
            .into());
        }
        let provider = self.source.table(name)?;
        let plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)
            .and_then(|b| b.build())
            .map_err(|e| df_error(src, path, context, e))?;
        Ok(DataFrame::new(self.state.clone(), plan))
    }

    /// A structured setting (map, list, table) as a table.
    fn setting_frame(
        &self,
        name: &str,
        src: &SourceFile,
        path: &str,
        context: &str,
    ) -> Result<DataFrame, ReportError> {
        let Some(rows) = self.bindings.1.get(name) else {
            let known = self.bindings.1.keys().map(String::as_str);
            return Err(Diagnostic::at(
                src,
                path,
                context,
                format!(
                    "`${name}` is not a map, list or table setting{}",
                    did_you_mean(name, known)
                ),
            )
            .into());
        };
        let fields: Vec<arrow::datatypes::Field> = rows
            .columns
            .iter()
            .map(|(c, t)| arrow::datatypes::Field::new(c, crate::settings::arrow_type(*t), true))
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let build = || -> datafusion::error::Result<DataFrame> {
            let mut arrays = Vec::new();
            for (k, (_, t)) in rows.columns.iter().enumerate() {
                let ty = crate::settings::arrow_type(*t);
                let values: Vec<ScalarValue> = rows
                    .rows
                    .iter()
                    .map(|r| r[k].scalar().expect("cells are scalars").cast_to(&ty))
                    .collect::<datafusion::error::Result<_>>()?;
                arrays.push(if values.is_empty() {
                    arrow::array::new_empty_array(&ty)
                } else {
                    ScalarValue::iter_to_array(values)?
                });
            }
            let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), arrays)?;
            let table =
                datafusion::datasource::MemTable::try_new(schema.clone(), vec![vec![batch]])?;
            let plan = LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?
                .build()?;
            Ok(DataFrame::new(self.state.clone(), plan))
        };
        build().map_err(|e| df_error(src, path, context, e))
    }

    /// The rows of a model: source, joins, derived columns, report filters (when
    /// `filtered`, i.e. read by a block directly rather than through another model), and
    /// grouping. Columns come out unqualified, under the model's name.
    pub fn model_frame(
        &self,
        name: &str,
        filtered: bool,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        let key = (name.to_string(), filtered);
        if let Some(df) = self
            .frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(df.clone());
        }
        let model = self.catalog.models[name].clone();
        let src = &model.src;
        let context = format!("model `{name}`");
        if stack.iter().any(|m| m == name) {
            let mut cycle = stack.clone();
            cycle.push(name.to_string());
            return Err(Diagnostic::at(
                src,
                "from",
                &context,
                format!(
                    "models refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            )
            .into());
        }
        stack.push(name.to_string());
        let site = |path: &str, what: String| ExprSite {
            src: src.clone(),
            path: path.to_string(),
            context: what,
        };
        let mut df = self.source_frame(&model.spec.from, src, "from", &context, stack)?;
        if let Some(w) = &model.spec.filter {
            df = self.filter(df, &site("where", context.clone()), w)?;
        }
        let grouped = model.spec.group_by.is_some();
        let narrowing = (filtered && !grouped)
            .then(|| self.narrowing(&model, stack))
            .flatten();
        for (i, j) in model.spec.joins.iter().enumerate() {
            if !narrowing.as_ref().is_some_and(|(_, out)| out.contains(&i)) {
                df = self.join(df, &model, i, j, stack)?;
            }
        }
        if !grouped {
            df = self.derived_columns(df, &model, narrowing.as_ref().map(|(r, _)| r))?;
        }
        if filtered {
            df = self.apply_filters(df, &model)?;
        }
        if let Some(group_by) = &model.spec.group_by {
            let mut groups = Vec::new();
            for (g, spec) in group_by.iter() {
                let text = spec.expr.as_deref().unwrap_or(g);
                let e = self.row_expr(
                    &site(&join("group_by", g), format!("{context}, group `{g}`")),
                    text,
                    &df,
                )?;
                groups.push(e.alias(g));
            }
            let mut aggs = Vec::new();
            for (c, spec) in model.spec.columns.iter() {
                let path = join("columns", c);
                let s = site(&path, format!("{context}, column `{c}`"));
                let text = spec.expr.as_deref().unwrap_or(c);
                let e = self.row_expr(&s, text, &df)?;
                if find_aggregate_exprs([&e]).is_empty() {
                    return Err(s
                        .error("in a model with `group_by`, every column is an aggregate (count, sum, max …)")
                        .into());
                }
                aggs.push((c.clone(), e));
            }
            df = aggregate(df, groups, aggs).map_err(|e| df_error(src, "group_by", &context, e))?;
        }
        // One flat namespace under the model's name, whatever the joins left qualified.
        let flat: Vec<Expr> = df
            .schema()
            .iter()
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())).alias(f.name()))
            .collect();
        df = df
            .select(flat)
            .and_then(|d| d.alias(name))
            .map_err(|e| df_error(src, "model", &context, e))?;
        stack.pop();
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, df.clone());
        Ok(df)
    }

    fn join(
        &self,
        df: DataFrame,
        model: &Model,
        i: usize,
        j: &crate::spec::JoinSpec,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        let src = &model.src;
        let path = index("joins", i);
        let context = format!("model `{}`, join `{}`", model.spec.model, j.from);
        let site = |p: &str| ExprSite {
            src: src.clone(),
            path: p.to_string(),
            context: context.clone(),
        };
        let mut right = self.source_frame(&j.from, src, &join(&path, "from"), &context, stack)?;
        if let Some(w) = &j.filter {
            right = self.filter(right, &site(&join(&path, "where")), w)?;
        }
        let left_cols = frame_columns(&df);
        let right_cols = frame_columns(&right);
        let mut select = Vec::new();
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        if j.on.is_empty() {
            return Err(site(&path)
                .error("a join needs `on: {our_column: their_column}`")
                .into());
        }
        // Our side of a key is a column or an expression over the model's columns so far.
        let mut df = df;
        let mut scratch = Vec::new();
        for (k, (ours, theirs)) in j.on.iter().enumerate() {
            let on_path = join(&join(&path, "on"), ours);
            let left_key = if left_cols.contains(ours) {
                ours.clone()
            } else {
                let e = self.row_expr(&site(&on_path), ours, &df)?;
                let name = format!("__lkey{k}");
                df = df
                    .with_column(&name, e)
                    .map_err(|e| df_error(src, &on_path, &context, e))?;
                scratch.push(name.clone());
                name
            };
            if !right_cols.contains(theirs) {
                return Err(site(&on_path)
                    .error(format!(
                        "`{}` has no column `{theirs}`{}",
                        j.from,
                        did_you_mean(theirs, right_cols.iter().map(String::as_str))
                    ))
                    .into());
            }
            let key = format!("__key{k}");
            select.push(column(theirs).alias(&key));
            left_keys.push(left_key);
            right_keys.push(key);
        }
        for (name, spec) in j.take.iter() {
            let take_path = join(&join(&path, "take"), name);
            if left_cols.contains(name) {
                return Err(site(&take_path)
                    .error(format!(
                        "the model already has a column `{name}`; take it under another name"
                    ))
                    .into());
            }
            let text = spec.expr.as_deref().unwrap_or(name);
            let e = self.row_expr(&site(&take_path), text, &right)?;
            select.push(e.alias(name));
        }
        let right = right
            .select(select)
            .map_err(|e| df_error(src, &path, &context, e))?;
        let lk: Vec<&str> = left_keys.iter().map(String::as_str).collect();
        let rk: Vec<&str> = right_keys.iter().map(String::as_str).collect();
        let mut dropped = rk.clone();
        dropped.extend(scratch.iter().map(String::as_str));
        df.join(right, JoinType::Left, &lk, &rk, None)
            .and_then(|d| d.drop_columns(&dropped))
            .map_err(|e| df_error(src, &path, &context, e))
    }

    /// Row-level derived columns, each after the ones it uses; a cycle is an error.
    /// With `only` (a narrowed model), just those columns: the others may read joins left
    /// out.
    fn derived_columns(
        &self,
        mut df: DataFrame,
        model: &Model,
        only: Option<&HashSet<String>>,
    ) -> Result<DataFrame, ReportError> {
        let src = &model.src;
        let existing = frame_columns(&df);
        let mut scope = column_scope(&existing);
        let wanted = |name: &String| only.is_none_or(|o| o.contains(name));
        let derived: Vec<(&String, &ExprSpec)> = model
            .spec
            .columns
            .iter()
            .filter(|(n, s)| s.expr.is_some() && wanted(n))
            .map(|(n, s)| (n, s))
            .collect();
        for (name, spec) in model.spec.columns.iter().filter(|(n, _)| wanted(n)) {
            let path = join("columns", name);
            if spec.expr.is_none() && !existing.contains(name) {
                return Err(Diagnostic {
                    pos: src.key_pos(&path),
                    ..Diagnostic::at(
                        src,
                        &path,
                        format!("model `{}`", model.spec.model),
                        format!(
                            "`{name}` has no `expr` and is not a column of `{}`{}",
                            model.spec.from,
                            did_you_mean(name, existing.iter().map(String::as_str))
                        ),
                    )
                }
                .into());
            }
            if spec.expr.is_some() && existing.contains(name) && !spec.replace {
                return Err(Diagnostic {
                    pos: src.key_pos(&path),
                    ..Diagnostic::at(
                        src,
                        &path,
                        format!("model `{}`", model.spec.model),
                        format!("`{name}` is already a column of the source or a join; give the derived column another name, or say `replace: true`"),
                    )
                }
                .into());
            }
        }
        for (name, _) in &derived {
            scope.add_columns([name.as_str()]);
        }
        let mut parsed: IndexMap<String, (ExprSite, Resolved)> = IndexMap::new();
        for (name, spec) in &derived {
            let site = ExprSite {
                src: src.clone(),
                path: join("columns", name),
                context: format!("model `{}`, column `{name}`", model.spec.model),
            };
            let r = self.resolve(&site, spec.expr.as_deref().unwrap_or_default(), &scope)?;
            parsed.insert((*name).clone(), (site, r));
        }
        // A column that replaces a source column reads the source's value under its name.
        let deps = |n: &str| -> Vec<String> {
            parsed[n]
                .1
                .refs
                .iter()
                .map(|t| t.column.clone())
                .filter(|c| parsed.contains_key(c) && !(c == n && existing.contains(c)))
                .collect()
        };
        let order = topo_order(parsed.keys().cloned().collect(), deps).map_err(|cycle| {
            let (site, _) = &parsed[&cycle[0]];
            ReportError::from(site.error(format!(
                "columns refer to each other in a cycle: {}",
                cycle.join(" → ")
            )))
        })?;
        for name in order {
            let (site, resolved) = &parsed[&name];
            let e = self.plan(site, resolved, df.schema())?;
            df = df
                .with_column(&name, e)
                .map_err(|e| df_error(src, &site.path, &site.context, e))?;
        }
        Ok(df)
    }

    fn apply_filters(&self, mut df: DataFrame, model: &Model) -> Result<DataFrame, ReportError> {
        let cols = frame_columns(&df);
        for (filter, col_name) in &model.spec.filters {
            let path = join("filters", filter);
            if !cols.contains(col_name) {
                return Err(Diagnostic::at(
                    &model.src,
                    &path,
                    format!("model `{}`", model.spec.model),
                    format!(
                        "filter `{filter}` names unknown column `{col_name}`{}",
                        did_you_mean(col_name, cols.iter().map(String::as_str))
                    ),
                )
                .into());
            }
            let values = self
                .filters
                .iter()
                .find(|(f, _)| f == filter)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            if values.is_empty() {
                continue;
            }
            let list = values
                .iter()
                .map(|v| Expr::Literal(v.clone(), None))
                .collect();
            df = df
                .filter(column(col_name).in_list(list, false))
                .map_err(|e| df_error(&model.src, &path, &model.spec.model, e))?;
        }
        Ok(df)
    }

    /// The measures of a model, parsed and classified (once per compiler).
    fn model_measures(&self, name: &str) -> Result<Arc<IndexMap<String, Measure>>, ReportError> {
        if let Some(m) = self
            .measures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(m.clone());
        }
        let model = self.catalog.models[name].clone();
        let df = self.model_frame(name, true, &mut Vec::new())?;
        let cols = frame_columns(&df);
        let mut scope = column_scope(&cols);
        for (m, _) in model.spec.measures.iter() {
            if cols.contains(m) {
                let path = join("measures", m);
                return Err(Diagnostic {
                    pos: model.src.key_pos(&path),
                    ..Diagnostic::at(
                        &model.src,
                        &path,
                        format!("model `{name}`"),
                        format!("measure `{m}` has the name of a column; measures and columns share one namespace"),
                    )
                }
                .into());
            }
            scope.add(
                None,
                m,
                Target {
                    column: measure_column(name, m),
                    kind: TargetKind::Measure {
                        model: name.to_string(),
                        name: m.clone(),
                    },
                },
            );
        }
        let mut out = IndexMap::new();
        for (m, spec) in model.spec.measures.iter() {
            let site = ExprSite {
                src: model.src.clone(),
                path: join("measures", m),
                context: format!("model `{name}`, measure `{m}`"),
            };
            let Some(text) = spec.expr.clone() else {
                return Err(site.error("a measure needs an `expr`").into());
            };
            let resolved = self.resolve(&site, &text, &scope)?;
            let uses_measures = resolved
                .refs
                .iter()
                .any(|t| matches!(t.kind, TargetKind::Measure { .. }));
            let kind = if uses_measures {
                if let Some(c) = resolved.refs.iter().find(|t| t.kind == TargetKind::Column) {
                    return Err(site
                        .error_near(
                            &c.column,
                            format!(
                                "column `{}` appears in a measure that combines other measures; \
                                 wrap it in an aggregate in a measure of its own",
                                c.column
                            ),
                        )
                        .into());
                }
                MeasureKind::Derived {
                    resolved: Box::new(resolved),
                    site: site.clone(),
                }
            } else {
                let (expr, empty) = self.aggregate_measure(&site, &resolved, &df, spec)?;
                MeasureKind::Base { expr, empty }
            };
            out.insert(
                m.clone(),
                Measure {
                    model: name.to_string(),
                    name: m.clone(),
                    spec: spec.clone(),
                    text,
                    kind,
                },
            );
        }
        let out = Arc::new(out);
        self.measures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), out.clone());
        Ok(out)
    }

    /// Builds a model's rows and parses its measures: the checks that need no report.
    pub fn check_model(&self, name: &str) -> Result<(), ReportError> {
        self.model_frame(name, true, &mut Vec::new())?;
        self.model_measures(name)?;
        Ok(())
    }

    /// Adds the columns of lookup `k` of block `i` to `df`: the row of the looked-up table
    /// with the highest `at_most` not above `key` (none: nulls).
    fn lookup(
        &self,
        df: DataFrame,
        report: &Report,
        i: usize,
        k: usize,
        key: &str,
    ) -> Result<DataFrame, ReportError> {
        use datafusion::functions_window::expr_fn::row_number;
        use datafusion::logical_expr::ExprFunctionExt;
        let lk = &report.spec.blocks[i].lookups[k];
        let path = index("lookups", k);
        let context = format!(
            "report `{}`, block `{}`, lookup in `{}`",
            report.id(),
            report.spec.blocks[i].id,
            lk.from
        );
        let err = |e| df_error(&report.src, &path, &context, e);
        let right = self.source_frame(
            &lk.from,
            &report.src,
            &join(&path, "from"),
            &context,
            &mut Vec::new(),
        )?;
        let right_cols = frame_columns(&right);
        if !right_cols.contains(&lk.at_most) {
            return Err(Diagnostic::at(
                &report.src,
                &join(&path, "at_most"),
                &context,
                format!(
                    "`{}` has no column `{}`{}",
                    lk.from,
                    lk.at_most,
                    did_you_mean(&lk.at_most, right_cols.iter().map(String::as_str))
                ),
            )
            .into());
        }
        let mut select = vec![column(&lk.at_most).alias("__lk_at")];
        for (name, spec) in lk.take.iter() {
            let site = ExprSite {
                src: report.src.clone(),
                path: join(&join(&path, "take"), name),
                context: context.clone(),
            };
            let text = spec.expr.as_deref().unwrap_or(name);
            select.push(
                self.row_expr(&site, text, &right)?
                    .alias(block_column(name)),
            );
        }
        let right = right.select(select).map_err(err)?;
        let rank = row_number()
            .partition_by(vec![column("__lk_row")])
            .order_by(vec![SortExpr::new(column("__lk_at"), false, true)])
            .build()
            .map_err(err)?;
        df.with_column("__lk_row", row_number())
            .and_then(|d| {
                d.join_on(
                    right,
                    JoinType::Left,
                    [column(key).gt_eq(column("__lk_at"))],
                )
            })
            .and_then(|d| d.with_column("__lk_rank", rank))
            .and_then(|d| {
                d.filter(column("__lk_rank").eq(Expr::Literal(ScalarValue::UInt64(Some(1)), None)))
            })
            .and_then(|d| d.drop_columns(&["__lk_row", "__lk_at", "__lk_rank"]))
            .map_err(err)
    }

    /// Measures whose total is the sum of the rows' values (or nothing) instead of the
    /// measure over all rows.
    fn totals_overrides(
        &self,
        block: &crate::spec::BlockSpec,
        totals: DataFrame,
        rows: &DataFrame,
    ) -> datafusion::error::Result<DataFrame> {
        use crate::spec::TotalKind;
        use datafusion::functions_aggregate::expr_fn::sum;
        let kind = |name: &str| block.measures.get(name).and_then(|s| s.total);
        let sums: Vec<Expr> = block
            .measures
            .iter()
            .filter(|(_, s)| s.total == Some(TotalKind::Sum) && !s.hidden)
            .map(|(n, _)| sum(column(n)).alias(format!("__sum_{n}")))
            .collect();
        let mut totals = totals;
        if !sums.is_empty() {
            let agg = rows.clone().aggregate(vec![], sums)?;
            let plan = LogicalPlanBuilder::from(totals.logical_plan().clone())
                .cross_join(agg.logical_plan().clone())?
                .build()?;
            totals = DataFrame::new(self.state.clone(), plan);
        }
        let select = rows
            .schema()
            .fields()
            .iter()
            .map(|f| match kind(f.name()) {
                Some(TotalKind::Sum) => Ok(datafusion::logical_expr::cast(
                    column(&format!("__sum_{}", f.name())),
                    f.data_type().clone(),
                )
                .alias(f.name())),
                Some(TotalKind::None) => ScalarValue::try_from(f.data_type())
                    .map(|null| Expr::Literal(null, None).alias(f.name())),
                None => Ok(column(f.name())),
            })
            .collect::<datafusion::error::Result<Vec<Expr>>>()?;
        totals.select(select)
    }

    /// Turns each row of measures into one row per listed item: the item's name, then one
    /// value per output column, taken from the measure the column's pattern names.
    fn unpivot(
        &self,
        report: &Report,
        i: usize,
        u: &crate::spec::UnpivotSpec,
        rows: DataFrame,
        columns: &[ColumnMeta],
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let block = &report.spec.blocks[i];
        let err = |e| {
            df_error(
                &report.src,
                &join(&index("blocks", i), "unpivot"),
                &block.id,
                e,
            )
        };
        let dims: Vec<String> = block.by.names().map(str::to_string).collect();
        let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut stacked: Option<DataFrame> = None;
        for (k, item) in u.rows.iter().enumerate() {
            let mut select: Vec<Expr> = dims.iter().map(|d| column(d)).collect();
            select.push(Expr::Literal(ScalarValue::Utf8(Some(item.clone())), None).alias(&u.name));
            for (out, pattern) in &u.columns {
                let source = pattern.replace("{}", item);
                if !have.contains(&source.as_str()) {
                    let site =
                        self.block_site(report, i, &index(&join("unpivot", "rows"), k), None);
                    return Err(site
                        .error(format!(
                            "column `{out}` of `{item}` reads measure `{source}`, which the block does not have{}",
                            did_you_mean(&source, have.iter().copied())
                        ))
                        .into());
                }
                select.push(
                    datafusion::logical_expr::cast(
                        column(&source),
                        arrow::datatypes::DataType::Float64,
                    )
                    .alias(out),
                );
            }
            let part = rows.clone().select(select).map_err(err)?;
            stacked = Some(match stacked {
                None => part,
                Some(s) => s.union(part).map_err(err)?,
            });
        }
        let Some(df) = stacked else {
            return Err(self
                .block_site(report, i, "unpivot", None)
                .error("`unpivot` needs `rows`")
                .into());
        };
        if let Some(k) = u.labels.keys().find(|k| !u.columns.contains_key(*k)) {
            return Err(self
                .block_site(report, i, &format!("unpivot.labels.{k}"), None)
                .error(format!(
                    "`{k}` is not an output column of `unpivot.columns`{}",
                    did_you_mean(k, u.columns.keys().map(String::as_str))
                ))
                .into());
        }
        let mut metas: Vec<ColumnMeta> = dims
            .iter()
            .filter_map(|d| columns.iter().find(|c| &c.name == d).cloned())
            .collect();
        metas.push(ColumnMeta {
            name: u.name.clone(),
            label: u.label.clone().unwrap_or_else(|| u.name.clone()),
            ty: crate::spec::ValueType::Text,
            definition: format!("one of: {}", u.rows.join(", ")),
            description: None,
            dimension: true,
            lower_is_better: false,
        });
        // One column holds several metrics (money, counts…): plain numbers.
        for (out, pattern) in &u.columns {
            metas.push(ColumnMeta {
                name: out.clone(),
                label: u.labels.get(out).cloned().unwrap_or_else(|| out.clone()),
                ty: crate::spec::ValueType::Number,
                definition: format!("the measure `{pattern}` of each row's item"),
                description: None,
                dimension: false,
                lower_is_better: false,
            });
        }
        // Keep the row order of `rows:` (the union has none of its own).
        let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
        for (k, item) in u.rows.iter().enumerate() {
            let is_item =
                column(&u.name).eq(Expr::Literal(ScalarValue::Utf8(Some(item.clone())), None));
            let rank = Expr::Literal(ScalarValue::Int64(Some(k as i64)), None);
            case = Some(match case {
                None => datafusion::logical_expr::when(is_item, rank),
                Some(mut b) => b.when(is_item, rank),
            });
        }
        let df = match case {
            Some(b) => df
                .sort(vec![SortExpr::new(b.end().map_err(err)?, true, false)])
                .map_err(err)?,
            None => df,
        };
        Ok((df, metas))
    }

    /// The value bound to `$name`, or an error at `site` naming the nearest one.
    fn bound(&self, site: &ExprSite, name: &str) -> Result<&ScalarValue, ReportError> {
        self.bindings.0.get(name).ok_or_else(|| {
            site.error(format!(
                "unknown setting or parameter `${name}`{}",
                did_you_mean(name, self.bindings.names())
            ))
            .into()
        })
    }

    /// The block's time dimension, if it has one: (name, time expression text, grain).
    fn time_dimension(
        &self,
        report: &Report,
        i: usize,
        dims: &[(String, ExprSpec)],
    ) -> Result<Option<(String, TimeSpec, Grain)>, ReportError> {
        let mut found = None;
        for (d, spec) in dims {
            let Some(time) = &spec.time else {
                if spec.grain.is_some() {
                    let site = self.block_site(report, i, &join(&join("by", d), "grain"), None);
                    return Err(site.error("`grain` goes with `time:`").into());
                }
                continue;
            };
            let site = self.block_site(
                report,
                i,
                &join(&join("by", d), "grain"),
                Some(&format!("dimension `{d}`")),
            );
            if found.is_some() {
                return Err(site.error("a block has at most one time dimension").into());
            }
            if spec.expr.is_some() {
                return Err(site
                    .error("a time dimension takes `time:` (and `grain:`), not `expr:`")
                    .into());
            }
            let grain_text = match spec.grain.as_deref() {
                None => "month".to_string(),
                Some(g) => match g.strip_prefix('$') {
                    Some(name) => match self.bound(&site, name)? {
                        ScalarValue::Utf8(Some(v)) => v.clone(),
                        _ => {
                            return Err(site
                                .error(format!("`${name}` must be a text setting or parameter"))
                                .into());
                        }
                    },
                    None => g.to_string(),
                },
            };
            let grain = Grain::parse(&grain_text).ok_or_else(|| {
                ReportError::from(site.error(format!(
                    "unknown grain `{grain_text}`{}; grains are {}",
                    did_you_mean(&grain_text, Grain::NAMES.iter().copied()),
                    Grain::NAMES.join(", ")
                )))
            })?;
            found = Some((d.clone(), time.clone(), grain));
        }
        Ok(found)
    }

    /// `t` within the run's period: timestamps against the period's instants in the
    /// client's zone, dates against its days.
    fn in_period(&self, site: &ExprSite, t: &Expr, schema: &DFSchema) -> Result<Expr, ReportError> {
        let bound = |name: &str| Expr::Literal(self.bindings.0[name].clone(), None);
        match t.get_type(schema) {
            Ok(arrow::datatypes::DataType::Timestamp(..)) => Ok(t
                .clone()
                .gt_eq(bound("period_start"))
                .and(t.clone().lt(bound("period_end")))),
            Ok(arrow::datatypes::DataType::Date32) => Ok(t
                .clone()
                .gt_eq(bound("from"))
                .and(t.clone().lt_eq(bound("to")))),
            Ok(other) => Err(site
                .error(format!("`time` must be a timestamp or a date, not {other}"))
                .into()),
            Err(e) => Err(site.error(expr::clean(&e.to_string())).into()),
        }
    }

    fn period_start_expr(&self, grain: Grain, t: Expr) -> Result<Expr, ReportError> {
        let udf = self
            .state
            .scalar_functions()
            .get("period_start")
            .cloned()
            .ok_or_else(|| ReportError::bad_input("period_start", "function not registered"))?;
        let name = Grain::NAMES[[
            Grain::Day,
            Grain::Week,
            Grain::Month,
            Grain::Quarter,
            Grain::Year,
        ]
        .iter()
        .position(|g| *g == grain)
        .expect("every grain has a name")];
        Ok(udf.call(vec![
            Expr::Literal(ScalarValue::Utf8(Some(name.into())), None),
            t,
        ]))
    }

    /// Every period of the run's range for every combination of the other dimensions that
    /// occurs, so that empty periods appear as rows (0 or null), never go missing.
    fn period_spine(
        &self,
        parts: &[DataFrame],
        dims: &[String],
        time_dim: &str,
        grain: Grain,
    ) -> datafusion::error::Result<DataFrame> {
        let days = |name: &str| match &self.bindings.0[name] {
            ScalarValue::Date32(Some(d)) => crate::time::date_from_days(*d),
            _ => unreachable!("`from` and `to` are bound as dates"),
        };
        let periods: Vec<Vec<Expr>> = grain
            .periods(days("from"), days("to"))
            .into_iter()
            .map(|p| {
                vec![Expr::Literal(
                    ScalarValue::Date32(Some(crate::time::days_since_epoch(p))),
                    None,
                )]
            })
            .collect();
        let values = LogicalPlanBuilder::values(periods)?.build()?;
        let periods = DataFrame::new(self.state.clone(), values)
            .select(vec![column("column1").alias(time_dim)])?;
        let others: Vec<&String> = dims.iter().filter(|d| d.as_str() != time_dim).collect();
        if others.is_empty() {
            return Ok(periods);
        }
        let mut keys: Option<DataFrame> = None;
        for p in parts {
            let k = p
                .clone()
                .select(others.iter().map(|d| column(d)).collect::<Vec<Expr>>())?;
            keys = Some(match keys {
                None => k,
                Some(all) => all.union(k)?,
            });
        }
        let keys = keys.expect("at least one part").distinct()?;
        let plan = LogicalPlanBuilder::from(keys.logical_plan().clone())
            .cross_join(periods.logical_plan().clone())?
            .build()?;
        DataFrame::new(self.state.clone(), plan)
            .select(dims.iter().map(|d| column(d)).collect::<Vec<Expr>>())
    }

    /// Plans a measure that aggregates the rows of `df`; refuses one that does not.
    fn aggregate_measure(
        &self,
        site: &ExprSite,
        resolved: &Resolved,
        df: &DataFrame,
        spec: &ExprSpec,
    ) -> Result<(Expr, Empty), ReportError> {
        let expr = self.plan(site, resolved, df.schema())?;
        if find_aggregate_exprs([&expr]).is_empty() {
            return Err(site
                .error("a measure must aggregate rows (count, sum, avg, min, max …) or combine other measures")
                .into());
        }
        let empty = spec.empty.unwrap_or_else(|| default_empty(&expr));
        Ok((expr, empty))
    }

    /// Compiles block `i` of `report`.
    pub fn block(&self, report: &Report, i: usize) -> Result<CompiledBlock, ReportError> {
        let mut compiled = self.block_rows(report, i)?;
        let block = &report.spec.blocks[i];
        let dims: Vec<&str> = block.by.names().collect();
        for c in &mut compiled.columns {
            c.dimension |= dims.contains(&c.name.as_str());
        }
        for child in &mut compiled.children {
            let child_dims: Vec<&str> = report.spec.blocks[i]
                .children
                .iter()
                .find(|c| c.id == child.id)
                .map(|c| c.by.names().collect())
                .unwrap_or_default();
            for c in &mut child.columns {
                c.dimension =
                    dims.contains(&c.name.as_str()) || child_dims.contains(&c.name.as_str());
            }
        }
        if let Some(chart) = &block.chart {
            self.check_chart(report, i, chart, &compiled.columns)?;
        }
        if block.compare.is_some()
            && (!block.by.0.is_empty() || !block.columns.is_empty() || block.unpivot.is_some())
        {
            return Err(self
                .block_site(report, i, "compare", None)
                .error("`compare` shows a one-row block against another period; this block has rows by dimensions (use `shift` on measures instead)")
                .into());
        }
        Ok(compiled)
    }

    /// The chart hint names output columns: `x` and `series` any, `y` numeric ones.
    fn check_chart(
        &self,
        report: &Report,
        i: usize,
        chart: &crate::spec::ChartSpec,
        columns: &[ColumnMeta],
    ) -> Result<(), ReportError> {
        let names = || columns.iter().map(|c| c.name.as_str());
        let find = |key: &str, name: &str| {
            columns.iter().find(|c| c.name == name).ok_or_else(|| {
                ReportError::from(self.block_site(report, i, &join("chart", key), None).error(
                    format!(
                        "`{name}` is not an output column of the block{}",
                        did_you_mean(name, names())
                    ),
                ))
            })
        };
        find("x", &chart.x)?;
        if let Some(s) = &chart.series {
            find("series", s)?;
        }
        if chart.y.is_empty() {
            return Err(self
                .block_site(report, i, "chart", None)
                .error("`y` names no column to draw")
                .into());
        }
        for y in &chart.y {
            let c = find("y", y)?;
            if !c.ty.is_numeric() {
                return Err(self
                    .block_site(report, i, "chart.y", None)
                    .error(format!("`{y}` is {}, not a number to draw", c.ty.name()))
                    .into());
            }
        }
        Ok(())
    }

    fn block_rows(&self, report: &Report, i: usize) -> Result<CompiledBlock, ReportError> {
        let block = &report.spec.blocks[i];
        if block.period == Some(BlockPeriod::AsOfMonth)
            && self.params.from != crate::time::month_start(self.params.as_of)
        {
            // The block's own period: the calendar month of `as_of`.
            let params = RunParams {
                from: crate::time::month_start(self.params.as_of),
                to: crate::time::month_end(self.params.as_of),
                ..self.params.clone()
            };
            return self.with_params(params).block_rows(report, i);
        }
        if block.columns.is_empty() {
            let err = |e| df_error(&report.src, &index("blocks", i), &block.id, e);
            let all: Vec<String> = block.by.names().map(str::to_string).collect();
            let (mut rows, columns) = self.table_block(report, i, &block.by.0)?;
            if !block.subtotals.is_empty() {
                for (k, d) in block.subtotals.iter().enumerate() {
                    if !all.contains(d) {
                        return Err(self
                            .block_site(report, i, &index("subtotals", k), None)
                            .error(format!(
                                "`{d}` is not a dimension of the block{}",
                                did_you_mean(d, all.iter().map(String::as_str))
                            ))
                            .into());
                    }
                }
                // Subtotal rows: grouped by fewer dimensions, the others null.
                let dims: Vec<(String, ExprSpec)> = block
                    .by
                    .iter()
                    .filter(|(d, _)| block.subtotals.contains(d))
                    .cloned()
                    .collect();
                let sub = self.table_block(report, i, &dims)?.0;
                let sub = align(sub, &rows).map_err(err)?;
                rows = rows.union(sub).map_err(err)?;
            }
            let totals = if block.totals {
                // Same columns as the rows: dimensions are typed nulls in the totals row.
                let totals = align(self.table_block(report, i, &[])?.0, &rows).map_err(err)?;
                Some(self.totals_overrides(block, totals, &rows).map_err(err)?)
            } else {
                None
            };
            if let Some(h) = &block.having {
                let site = self.block_site(report, i, "having", None);
                if block.totals {
                    return Err(site
                        .error("a totals row would count the rows `having` drops; use one or the other")
                        .into());
                }
                rows = self.filter(rows, &site, h)?;
            }
            let rows = self.sort_and_limit(rows, report, i)?;
            if let Some(u) = &block.unpivot {
                let (rows, columns) = self.unpivot(report, i, u, rows, &columns)?;
                return Ok(CompiledBlock {
                    kind: BlockKind::Table,
                    rows,
                    totals: None,
                    columns,
                    children: vec![],
                });
            }
            // Children: the same measures by the block's dimensions and the child's.
            let mut children = Vec::new();
            for child in &block.children {
                let mut dims = block.by.0.clone();
                dims.extend(child.by.iter().cloned());
                let (frame, child_columns) = self.table_block(report, i, &dims)?;
                let order: Vec<SortExpr> = dims
                    .iter()
                    .map(|(d, _)| SortExpr::new(column(d), true, false))
                    .collect();
                let frame = frame.sort(order).map_err(err)?;
                children.push(CompiledChild {
                    id: child.id.clone(),
                    title: child.title.clone(),
                    parent_keys: all.clone(),
                    rows: frame,
                    columns: child_columns,
                });
            }
            Ok(CompiledBlock {
                kind: BlockKind::Table,
                rows,
                totals,
                columns,
                children,
            })
        } else {
            let (rows, columns) = self.list_block(report, i)?;
            Ok(CompiledBlock {
                kind: BlockKind::List,
                rows,
                totals: None,
                children: vec![],
                columns,
            })
        }
    }

    fn block_site(&self, report: &Report, i: usize, sub: &str, what: Option<&str>) -> ExprSite {
        let block = &report.spec.blocks[i];
        let base = index("blocks", i);
        let mut context = format!("report `{}`, block `{}`", report.id(), block.id);
        if let Some(w) = what {
            context.push_str(", ");
            context.push_str(w);
        }
        ExprSite {
            src: report.src.clone(),
            path: if sub.is_empty() {
                base
            } else {
                join(&base, sub)
            },
            context,
        }
    }

    fn known_model(&self, report: &Report, i: usize, name: &str) -> Result<(), ReportError> {
        if self.catalog.models.contains_key(name) {
            return Ok(());
        }
        Err(self
            .block_site(report, i, "from", None)
            .error(format!(
                "unknown model `{name}`{}",
                did_you_mean(name, self.catalog.models.keys().map(String::as_str))
            ))
            .into())
    }

    fn list_block(
        &self,
        report: &Report,
        i: usize,
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let block = &report.spec.blocks[i];
        let from = block.from.as_deref().unwrap_or_default();
        self.known_model(report, i, from)?;
        let model = self.catalog.models[from].clone();
        let mut df = self.model_frame(from, true, &mut Vec::new())?;
        if let Some(w) = &block.filter {
            df = self.filter(df, &self.block_site(report, i, "where", None), w)?;
        }
        let mut select = Vec::new();
        let mut metas = Vec::new();
        for (name, spec) in block.columns.iter() {
            let site = self.block_site(
                report,
                i,
                &join("columns", name),
                Some(&format!("column `{name}`")),
            );
            let text = spec.expr.as_deref().unwrap_or(name);
            let e = self.row_expr(&site, text, &df)?;
            select.push(e.alias(name));
            let inherited = if is_identifier(text) {
                model_column_spec(&model, text)
            } else {
                None
            };
            metas.push((
                name.clone(),
                spec.clone(),
                inherited,
                text.to_string(),
                site,
            ));
        }
        let df = df
            .select(select)
            .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        let columns = self.column_metas(&df, metas, |text, inherited| match inherited {
            Some(_) => format!("{from}.{text}"),
            None => format!("{text} (over {from})"),
        })?;
        let df = self.sort_and_limit(df, report, i)?;
        Ok((df, columns))
    }

    fn column_metas(
        &self,
        df: &DataFrame,
        metas: Vec<(String, ExprSpec, Option<ExprSpec>, String, ExprSite)>,
        definition: impl Fn(&str, Option<&ExprSpec>) -> String,
    ) -> Result<Vec<ColumnMeta>, ReportError> {
        let mut out = Vec::new();
        for (name, spec, inherited, text, site) in metas {
            let field = df
                .schema()
                .field_with_unqualified_name(&name)
                .map_err(|e| ReportError::from(site.error(expr::clean(&e.to_string()))))?;
            let declared = spec.ty.or(inherited.as_ref().and_then(|s| s.ty));
            let ty = declared.unwrap_or_else(|| infer_type(&name, field.data_type()));
            if !type_fits(ty, field.data_type()) {
                return Err(site
                    .error(format!(
                        "declared type `{}` does not fit the computed type {}",
                        ty.name(),
                        field.data_type()
                    ))
                    .into());
            }
            let label = spec
                .label
                .clone()
                .or_else(|| inherited.as_ref().and_then(|s| s.label.clone()))
                .unwrap_or_else(|| name.clone());
            let description = spec
                .description
                .clone()
                .or_else(|| inherited.as_ref().and_then(|s| s.description.clone()));
            let mut def = definition(&text, inherited.as_ref());
            if let Some(inner) = inherited.as_ref().and_then(|s| s.expr.as_deref())
                && inner != text
            {
                def = format!("{def} = {inner}");
            }
            out.push(ColumnMeta {
                name,
                label,
                ty,
                definition: def,
                description,
                dimension: false,
                lower_is_better: spec.better.or(inherited.as_ref().and_then(|s| s.better))
                    == Some(crate::spec::Better::Lower),
            });
        }
        Ok(out)
    }

    fn sort_and_limit(
        &self,
        df: DataFrame,
        report: &Report,
        i: usize,
    ) -> Result<DataFrame, ReportError> {
        let block = &report.spec.blocks[i];
        let cols = frame_columns(&df);
        let mut sort = Vec::new();
        for (k, item) in block.sort.iter().enumerate() {
            let site = self.block_site(report, i, &index("sort", k), None);
            let (name, asc, nulls_first) =
                parse_sort(item).map_err(|m| ReportError::from(site.error(m)))?;
            if !cols.contains(&name) {
                return Err(site
                    .error(format!(
                        "sort by unknown column `{name}`{}; sort names an output column",
                        did_you_mean(&name, cols.iter().map(String::as_str))
                    ))
                    .into());
            }
            sort.push(SortExpr::new(column(&name), asc, nulls_first));
        }
        // Ties are broken by the dimensions (a list's columns), so that rows come out in
        // the same order whatever the input's order or partitioning.
        let sorted: Vec<String> = block
            .sort
            .iter()
            .filter_map(|item| parse_sort(item).ok().map(|(n, _, _)| n))
            .collect();
        let tie_breakers: Vec<String> = if block.columns.is_empty() {
            block.by.names().map(str::to_string).collect()
        } else {
            cols.clone()
        };
        for name in tie_breakers {
            if cols.contains(&name) && !sorted.contains(&name) {
                sort.push(SortExpr::new(column(&name), true, false));
            }
        }
        let mut df = df;
        if !sort.is_empty() {
            df = df
                .sort(sort)
                .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        }
        if let Some(limit) = &block.limit {
            let site = self.block_site(report, i, "limit", None);
            let n = match limit {
                Limit::Fixed(n) => *n as usize,
                Limit::Setting(s) => match self.bound(&site, s)? {
                    ScalarValue::Int64(Some(n)) if *n >= 0 => *n as usize,
                    _ => {
                        return Err(site
                            .error(format!("limit `${s}` must be a non-negative int setting"))
                            .into());
                    }
                },
            };
            df = df
                .limit(0, Some(n))
                .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        }
        Ok(df)
    }

    /// The models a table block reads: its `from`, then every model named as a qualifier.
    fn block_models(&self, report: &Report, i: usize) -> Result<Vec<String>, ReportError> {
        let block = &report.spec.blocks[i];
        if let Some(from) = &block.from {
            self.known_model(report, i, from)?;
        }
        for (name, spec) in block.measures.iter() {
            for q in qualifiers(&self.state, spec.expr.as_deref().unwrap_or(name)) {
                if !self.catalog.models.contains_key(&q) {
                    let site = self.block_site(
                        report,
                        i,
                        &join("measures", name),
                        Some(&format!("measure `{name}`")),
                    );
                    return Err(site
                        .error_near(
                            &q,
                            format!(
                                "unknown model `{q}`{}",
                                did_you_mean(&q, self.catalog.models.keys().map(String::as_str))
                            ),
                        )
                        .into());
                }
            }
        }
        Ok(block_model_names(&self.state, block))
    }

    /// A table block: with `dims` its rows, without them its totals row.
    fn table_block(
        &self,
        report: &Report,
        i: usize,
        group: &[(String, ExprSpec)],
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let block = &report.spec.blocks[i];
        let block_path = index("blocks", i);
        let err = |e| {
            df_error(
                &report.src,
                &block_path,
                &format!("report `{}`, block `{}`", report.id(), block.id),
                e,
            )
        };
        let models = self.block_models(report, i)?;
        if models.is_empty() {
            return Err(self
                .block_site(report, i, "", None)
                .error("name the model with `from:` or qualify measures as `model.measure`")
                .into());
        }
        let from = block.from.clone();
        let mut measures: IndexMap<String, Arc<IndexMap<String, Measure>>> = IndexMap::new();
        for m in &models {
            measures.insert(m.clone(), self.model_measures(m)?);
        }
        let from_cols = match &from {
            Some(f) => frame_columns(&self.model_frame(f, true, &mut Vec::new())?),
            None => Vec::new(),
        };

        // The names block expressions see.
        let mut scope = column_scope(&from_cols);
        for q in self.catalog.models.keys() {
            scope.add_qualifier(q);
        }
        for (model, ms) in &measures {
            for m in ms.keys() {
                let target = Target {
                    column: measure_column(model, m),
                    kind: TargetKind::Measure {
                        model: model.clone(),
                        name: m.clone(),
                    },
                };
                scope.add(Some(model), m, target.clone());
                if from.as_deref() == Some(model.as_str()) {
                    scope.add(None, m, target);
                }
            }
        }
        // Block measures shadow the model's, except inside their own definition, where a
        // bare `x` means the model's measure `x`.
        let mut block_scope = scope.clone();
        let block_target = |name: &str| Target {
            column: block_column(name),
            kind: TargetKind::BlockMeasure(name.to_string()),
        };
        for lk in &block.lookups {
            for (name, _) in lk.take.iter() {
                block_scope.add(None, name, block_target(name));
            }
        }
        for (d, _) in group {
            block_scope.add(
                None,
                d,
                Target {
                    column: d.to_string(),
                    kind: TargetKind::Dimension(d.to_string()),
                },
            );
        }
        for (name, _) in block.measures.iter() {
            block_scope.add(None, name, block_target(name));
        }

        enum Out {
            Alias(Measure),
            Inline {
                expr: Expr,
                empty: Empty,
            },
            Derived {
                resolved: Resolved,
                site: ExprSite,
            },
            /// A measure of `model` over a shifted period: a model measure, or an inline
            /// aggregate (re-planned with the shifted values).
            Shifted {
                model: String,
                shift: Shift,
                measure: Option<String>,
                resolved: Resolved,
            },
        }
        let mut outs: IndexMap<String, (Out, ExprSite, String)> = IndexMap::new();
        for (name, spec) in block.measures.iter() {
            let site = self.block_site(
                report,
                i,
                &join("measures", name),
                Some(&format!("measure `{name}`")),
            );
            let text = spec.expr.clone().unwrap_or_else(|| name.clone());
            let mut own_scope = block_scope.clone();
            if let Some(target) = scope_target(&scope, name) {
                own_scope.add(None, name, target);
            } else {
                own_scope.remove(name);
            }
            let resolved = expr::resolve_layered(
                &self.state,
                &site,
                &text,
                &own_scope,
                Some(&column_scope(&from_cols)),
            )?;
            let has_columns = resolved.refs.iter().any(|t| t.kind == TargetKind::Column);
            let has_measures = resolved.refs.iter().any(|t| t.kind != TargetKind::Column);
            let out = if let Some(shift) = spec.shift {
                // A model measure, named directly or through a block measure that aliases it.
                let alias = match resolved.refs.as_slice() {
                    [
                        Target {
                            kind: TargetKind::Measure { model, name: m },
                            ..
                        },
                    ] if is_identifier(&text) => Some((model.clone(), m.clone())),
                    [
                        Target {
                            kind: TargetKind::BlockMeasure(b),
                            ..
                        },
                    ] if is_identifier(&text) => match outs.get(b) {
                        Some((Out::Alias(m), _, _)) => Some((m.model.clone(), m.name.clone())),
                        _ => None,
                    },
                    _ => None,
                };
                match alias {
                    Some((model, m)) => {
                        if matches!(measures[&model][&m].kind, MeasureKind::Derived { .. }) {
                            return Err(site
                                .error(format!("`shift` applies to a measure that aggregates rows; `{model}.{m}` combines other measures: shift those and combine them here"))
                                .into());
                        }
                        Out::Shifted {
                            model,
                            shift,
                            measure: Some(m),
                            resolved,
                        }
                    }
                    None if !has_measures => Out::Shifted {
                        model: from.clone().unwrap_or_default(),
                        shift,
                        measure: None,
                        resolved,
                    },
                    None => {
                        return Err(site
                            .error("`shift` applies to a model measure or an aggregate over rows, not to a combination of measures")
                            .into());
                    }
                }
            } else if has_columns && has_measures {
                let c = resolved
                    .refs
                    .iter()
                    .find(|t| t.kind == TargetKind::Column)
                    .expect("checked");
                return Err(site
                    .error_near(&c.column, format!("column `{}` appears beside measures; put the aggregate in a measure of its own", c.column))
                    .into());
            } else if is_identifier(&text)
                && let [
                    Target {
                        kind: TargetKind::Measure { model, name: m },
                        ..
                    },
                ] = resolved.refs.as_slice()
            {
                Out::Alias(measures[model][m].clone())
            } else if has_measures {
                Out::Derived {
                    resolved,
                    site: site.clone(),
                }
            } else if resolved.refs.is_empty() && from.is_none() {
                // A constant (`$from`): computed beside the measures, with the run's values.
                Out::Derived {
                    resolved,
                    site: site.clone(),
                }
            } else {
                let f = from.as_deref().unwrap_or_default();
                let df = self.model_frame(f, true, &mut Vec::new())?;
                let planned = self.plan(&site, &resolved, df.schema())?;
                if resolved.refs.is_empty() && find_aggregate_exprs([&planned]).is_empty() {
                    Out::Derived {
                        resolved,
                        site: site.clone(),
                    }
                } else {
                    let (expr, empty) = self.aggregate_measure(&site, &resolved, &df, spec)?;
                    Out::Inline { expr, empty }
                }
            };
            outs.insert(name.clone(), (out, site, text));
        }

        // Everything the outputs need, split into per-model aggregates and derived steps.
        let mut base: IndexMap<Part, Vec<(String, Expr, Empty)>> = IndexMap::new();
        let mut shifted: HashMap<Shift, Compiler<'a>> = HashMap::new();
        let mut derived: IndexMap<String, (Resolved, ExprSite)> = IndexMap::new();
        let mut pending: Vec<Target> = Vec::new();
        for (name, (out, _, _)) in &outs {
            match out {
                Out::Alias(m) => pending.push(Target {
                    column: measure_column(&m.model, &m.name),
                    kind: TargetKind::Measure {
                        model: m.model.clone(),
                        name: m.name.clone(),
                    },
                }),
                Out::Inline { expr, empty } => base
                    .entry((from.clone().unwrap_or_default(), None))
                    .or_default()
                    .push((block_column(name), expr.clone(), *empty)),
                Out::Shifted {
                    model,
                    shift,
                    measure,
                    resolved,
                } => {
                    let c = shifted
                        .entry(*shift)
                        .or_insert_with(|| self.shifted(*shift));
                    let (expr, empty) = match measure {
                        Some(m) => match &c.model_measures(model)?[m].kind {
                            MeasureKind::Base { expr, empty } => (expr.clone(), *empty),
                            MeasureKind::Derived { .. } => unreachable!("refused above"),
                        },
                        None => {
                            let df = c.model_frame(model, true, &mut Vec::new())?;
                            let spec = block.measures.get(name).cloned().unwrap_or_default();
                            c.aggregate_measure(&outs[name].1, resolved, &df, &spec)?
                        }
                    };
                    base.entry((model.clone(), Some(*shift)))
                        .or_default()
                        .push((block_column(name), expr, empty));
                }
                Out::Derived { resolved, site } => {
                    derived.insert(block_column(name), (resolved.clone(), site.clone()));
                    pending.extend(resolved.refs.iter().cloned());
                }
            }
        }
        let mut seen: Vec<String> = Vec::new();
        while let Some(t) = pending.pop() {
            if seen.contains(&t.column) {
                continue;
            }
            seen.push(t.column.clone());
            if let TargetKind::Measure { model, name } = &t.kind {
                let m = &measures[model][name];
                match &m.kind {
                    MeasureKind::Base { expr, empty } => base
                        .entry((model.clone(), None))
                        .or_default()
                        .push((t.column.clone(), expr.clone(), *empty)),
                    MeasureKind::Derived { resolved, site } => {
                        derived.insert(t.column.clone(), ((**resolved).clone(), site.clone()));
                        pending.extend(resolved.refs.iter().cloned());
                    }
                }
            }
        }
        if base.is_empty() {
            return Err(self
                .block_site(report, i, "measures", None)
                .error("the block aggregates nothing: at least one measure must count or sum rows")
                .into());
        }

        // Aggregate each model by the block's dimensions.
        let dims = !group.is_empty();
        let dim_names: Vec<String> = group.iter().map(|(d, _)| d.clone()).collect();
        let time_dim = self.time_dimension(report, i, group)?;
        let mut parts: Vec<DataFrame> = Vec::new();
        for ((model, shift), aggs) in &base {
            let c: &Compiler = match shift {
                Some(s) => &shifted[s],
                None => self,
            };
            let mut df = c.model_frame(model, true, &mut Vec::new())?;
            if let Some(w) = &block.filter {
                df = c.filter(
                    df,
                    &self.block_site(report, i, "where", Some(&format!("in model `{model}`"))),
                    w,
                )?;
            }
            // A time dimension keeps the rows whose time falls in the run's period.
            let mut time_expr = None;
            if let Some((d, time, grain)) = &time_dim {
                let site = self.block_site(
                    report,
                    i,
                    &join(&join("by", d), "time"),
                    Some(&format!("time dimension `{d}` in model `{model}`")),
                );
                let Some(text) = time.for_model(model) else {
                    return Err(site
                        .error(format!("`time` names no column for model `{model}`"))
                        .into());
                };
                let t = c.row_expr(&site, text, &df)?;
                let keep = c.in_period(&site, &t, df.schema())?;
                df = df.filter(keep).map_err(err)?;
                if matches!(shift, Some(Shift::PreviousPeriod | Shift::PreviousMonth)) {
                    return Err(site
                        .error("this `shift` does not align with a time dimension; use `previous_year`")
                        .into());
                }
                time_expr = Some((d.clone(), t, *grain));
            }
            let mut groups = Vec::new();
            if dims {
                for (d, spec) in group {
                    if let Some((td, t, grain)) = &time_expr
                        && td == d
                    {
                        let mut start = self.period_start_expr(*grain, t.clone())?;
                        if *shift == Some(Shift::PreviousYear) {
                            // Last year's period is shown beside this year's.
                            start = start
                                + Expr::Literal(ScalarValue::IntervalYearMonth(Some(12)), None);
                        }
                        groups.push(start.alias(d));
                        continue;
                    }
                    let site = self.block_site(
                        report,
                        i,
                        &join("by", d),
                        Some(&format!("dimension `{d}` in model `{model}`")),
                    );
                    let text = spec.expr.as_deref().unwrap_or(d);
                    groups.push(c.row_expr(&site, text, &df)?.alias(d));
                }
            }
            let aggs = aggs
                .iter()
                .map(|(c, e, _)| (c.clone(), e.clone()))
                .collect();
            parts.push(aggregate(df, groups, aggs).map_err(err)?);
        }
        if let Some((d, _, grain)) = &time_dim
            && dim_names.contains(d)
        {
            let spine = self
                .period_spine(&parts, &dim_names, d, *grain)
                .map_err(err)?;
            parts.push(spine);
        }
        let mut df = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            merge(parts, &dim_names).map_err(err)?
        };

        // Empty groups: counts and sums are 0, not null.
        let fills: Vec<&String> = base
            .values()
            .flatten()
            .filter(|(_, _, e)| *e == Empty::Zero)
            .map(|(c, _, _)| c)
            .collect();
        if !fills.is_empty() {
            let exprs: Vec<Expr> = df
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let c = column(f.name());
                    if fills.contains(&f.name()) {
                        datafusion::functions::expr_fn::coalesce(vec![
                            c,
                            Expr::Literal(
                                ScalarValue::new_zero(f.data_type())
                                    .unwrap_or(ScalarValue::Int64(Some(0))),
                                None,
                            ),
                        ])
                        .alias(f.name())
                    } else {
                        c
                    }
                })
                .collect();
            df = df.select(exprs).map_err(err)?;
        }

        // Measures over measures, each after those it uses. A block measure that names a
        // model measure is copied under its block name, for the block's own expressions.
        let copies: HashMap<String, String> = outs
            .iter()
            .filter_map(|(name, (out, _, _))| match out {
                Out::Alias(m) => Some((block_column(name), measure_column(&m.model, &m.name))),
                _ => None,
            })
            .collect();
        // Lookups are steps too: `__lookup{k}` after its key, its outputs after it.
        let mut lookup_deps: HashMap<String, Vec<String>> = HashMap::new();
        for (k, lk) in block.lookups.iter().enumerate() {
            let site = self.block_site(report, i, &join(&index("lookups", k), "key"), None);
            let key = if outs.contains_key(&lk.key) {
                block_column(&lk.key)
            } else if dim_names.contains(&lk.key) {
                lk.key.clone()
            } else {
                let known = outs
                    .keys()
                    .map(String::as_str)
                    .chain(dim_names.iter().map(String::as_str));
                return Err(site
                    .error(format!(
                        "unknown measure or dimension `{}`{}",
                        lk.key,
                        did_you_mean(&lk.key, known)
                    ))
                    .into());
            };
            let step = format!("__lookup{k}");
            lookup_deps.insert(step.clone(), vec![key]);
            for (name, _) in lk.take.iter() {
                lookup_deps.insert(block_column(name), vec![step.clone()]);
            }
        }
        let nodes: Vec<String> = derived
            .keys()
            .chain(copies.keys())
            .chain(lookup_deps.keys())
            .cloned()
            .collect();
        let order = topo_order(nodes.clone(), |c| {
            match copies.get(c).or(lookup_deps.get(c).and_then(|d| d.first())) {
                Some(source) => vec![source.clone()]
                    .into_iter()
                    .filter(|d| nodes.contains(d))
                    .collect(),
                None => derived[c]
                    .0
                    .refs
                    .iter()
                    .map(|t| t.column.clone())
                    .filter(|d| nodes.contains(d))
                    .collect(),
            }
        })
        .map_err(|cycle| {
            let site = cycle
                .iter()
                .find_map(|c| derived.get(c).map(|(_, site)| site))
                .expect("a cycle runs through an expression");
            ReportError::from(site.error(format!(
                "measures refer to each other in a cycle: {}",
                cycle
                    .iter()
                    .map(|c| c.replace("__block__", "").replace("__", "."))
                    .collect::<Vec<_>>()
                    .join(" → ")
            )))
        })?;
        for c in order {
            if let Some(source) = copies.get(&c) {
                df = df.with_column(&c, column(source)).map_err(err)?;
                continue;
            }
            if let Some(k) = c.strip_prefix("__lookup") {
                let k: usize = k.parse().expect("lookup steps are numbered");
                df = self.lookup(df, report, i, k, &lookup_deps[&c][0])?;
                continue;
            }
            if lookup_deps.contains_key(&c) {
                continue; // brought in by its lookup
            }
            let (resolved, site) = &derived[&c];
            let e = self.plan(site, resolved, df.schema())?;
            if !find_aggregate_exprs([&e]).is_empty() {
                return Err(site.error("an aggregate of a measure is not allowed; aggregate rows in a measure of its own").into());
            }
            df = df.with_column(&c, e).map_err(err)?;
        }

        // Output: dimensions, then measures under their public names.
        let mut select: Vec<Expr> = dim_names.iter().map(|d| column(d)).collect();
        let mut metas = Vec::new();
        if dims {
            let first = from.clone().unwrap_or_else(|| models[0].clone());
            let model = self.catalog.models[&first].clone();
            for (d, spec) in group {
                let site =
                    self.block_site(report, i, &join("by", d), Some(&format!("dimension `{d}`")));
                let text = spec.expr.clone().unwrap_or_else(|| d.clone());
                let inherited = if is_identifier(&text) {
                    model_column_spec(&model, &text)
                } else {
                    None
                };
                metas.push((d.clone(), spec.clone(), inherited, text, site));
            }
        }
        for (name, (out, site, text)) in &outs {
            let spec = block.measures.get(name).cloned().unwrap_or_default();
            if spec.hidden {
                continue;
            }
            let (col, inherited, shown) = match out {
                Out::Alias(m) => {
                    let mut spec = m.spec.clone();
                    spec.expr = Some(m.text.clone());
                    (
                        measure_column(&m.model, &m.name),
                        Some(spec),
                        format!("{}.{}", m.model, m.name),
                    )
                }
                _ => (block_column(name), None, text.clone()),
            };
            select.push(column(&col).alias(name));
            metas.push((name.clone(), spec, inherited, shown, site.clone()));
        }
        let df = df.select(select).map_err(err)?;
        let columns = self.column_metas(&df, metas, |text, _| text.to_string())?;
        Ok((df, columns))
    }
}

/// `frame` with the columns of `like`, in its order: those it lacks as typed nulls.
fn align(frame: DataFrame, like: &DataFrame) -> datafusion::error::Result<DataFrame> {
    let have = frame_columns(&frame);
    let select = like
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if have.contains(f.name()) {
                Ok(column(f.name()))
            } else {
                ScalarValue::try_from(f.data_type())
                    .map(|null| Expr::Literal(null, None).alias(f.name()))
            }
        })
        .collect::<datafusion::error::Result<Vec<Expr>>>()?;
    frame.select(select)
}

/// `from`, then the qualifiers of the block's measures: the names of the models it reads
/// (some may not exist; compiling reports those).
pub(crate) fn block_model_names(
    state: &SessionState,
    block: &crate::spec::BlockSpec,
) -> Vec<String> {
    let mut out: Vec<String> = block.from.iter().cloned().collect();
    for (name, spec) in block.measures.iter() {
        for q in qualifiers(state, spec.expr.as_deref().unwrap_or(name)) {
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// The qualifiers (`x` in `x.y`) an expression uses, found syntactically.
/// A SQL fragment as the parser reads it, in the session's dialect; None when it does not
/// parse (the planner reports that, with its place).
fn parse_fragment(
    state: &SessionState,
    text: &str,
) -> Option<datafusion::sql::sqlparser::ast::Expr> {
    let dialect = state.config().options().sql_parser.dialect;
    state
        .sql_to_expr_with_alias(text, &dialect)
        .ok()
        .map(|parsed| parsed.expr)
}

fn qualifiers(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    let Some(parsed) = parse_fragment(state, text) else {
        return vec![];
    };
    let mut out = Vec::new();
    let _ = ast::visit_expressions(&parsed, |e| {
        if let ast::Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
        {
            let q = parts[0].value.to_lowercase();
            if !out.contains(&q) {
                out.push(q);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// Every name an expression mentions (`a`, and `b` of `m.b`): a superset of the columns
/// it reads.
fn identifiers(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    let Some(parsed) = parse_fragment(state, text) else {
        return vec![text.to_string()];
    };
    let mut out = Vec::new();
    let _ = ast::visit_expressions(&parsed, |e| {
        match e {
            ast::Expr::Identifier(id) => out.push(id.value.clone()),
            ast::Expr::CompoundIdentifier(parts) => {
                out.extend(parts.last().map(|p| p.value.clone()));
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// The columns a filter fixes to one value: `c = 'literal'` among its `and`-ed terms.
fn fixed_columns(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    fn walk(e: &ast::Expr, out: &mut Vec<String>) {
        match e {
            ast::Expr::Nested(inner) => walk(inner, out),
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::And,
                right,
            } => {
                walk(left, out);
                walk(right, out);
            }
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } => match (left.as_ref(), right.as_ref()) {
                (ast::Expr::Identifier(id), ast::Expr::Value(_))
                | (ast::Expr::Value(_), ast::Expr::Identifier(id)) => out.push(id.value.clone()),
                _ => {}
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(parsed) = parse_fragment(state, text) {
        walk(&parsed, &mut out);
    }
    out
}

fn scope_target(scope: &Scope, name: &str) -> Option<Target> {
    scope.get(None, name).cloned()
}

/// True when `text` is one plain name (possibly `model.name`).
fn is_identifier(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.split('.').count() <= 2
        && t.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The declaration of a model's column (derived, taken by a join, or a group key).
fn model_column_spec(model: &Model, name: &str) -> Option<ExprSpec> {
    if let Some((_, s)) = model.spec.columns.iter().find(|(n, _)| n == name) {
        return Some(s.clone());
    }
    if let Some((_, s)) = model
        .spec
        .group_by
        .iter()
        .flat_map(|g| g.iter())
        .find(|(n, _)| n == name)
    {
        return Some(s.clone());
    }
    // A join's column is shown with the table or model it comes from.
    model.spec.joins.iter().find_map(|j| {
        j.take
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, s)| ExprSpec {
                expr: Some(format!("{}.{}", j.from, s.expr.as_deref().unwrap_or(n))),
                ..s.clone()
            })
    })
}

/// `count` and `sum` give 0 for an empty group; everything else gives null.
fn default_empty(expr: &Expr) -> Empty {
    let mut e = expr;
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    match e {
        Expr::AggregateFunction(f) if matches!(f.func.name(), "count" | "sum") => Empty::Zero,
        _ => Empty::Null,
    }
}

/// "name [asc|desc] [nulls first|nulls last]" → (name, ascending, nulls_first).
fn parse_sort(item: &str) -> Result<(String, bool, bool), String> {
    let words: Vec<String> = item.split_whitespace().map(str::to_lowercase).collect();
    let bad =
        || format!("sort item `{item}`: expected `column [asc|desc] [nulls first|nulls last]`");
    let name = words.first().ok_or_else(bad)?.clone();
    let mut asc = true;
    let mut nulls_first = false;
    let mut rest = &words[1..];
    if let Some(w) = rest.first()
        && (w == "asc" || w == "desc")
    {
        asc = w == "asc";
        rest = &rest[1..];
    }
    match rest {
        [] => {}
        [n, f] if n == "nulls" && f == "first" => nulls_first = true,
        [n, l] if n == "nulls" && l == "last" => nulls_first = false,
        _ => return Err(bad()),
    }
    Ok((name, asc, nulls_first))
}

/// Aggregates `df` by `groups`; measures may wrap aggregates in further arithmetic, which
/// is computed in a projection on top.
fn aggregate(
    df: DataFrame,
    groups: Vec<Expr>,
    measures: Vec<(String, Expr)>,
) -> datafusion::error::Result<DataFrame> {
    let group_names: Vec<String> = groups.iter().map(|g| g.schema_name().to_string()).collect();
    let mut aggs: Vec<Expr> = Vec::new();
    let mut post: Vec<Expr> = Vec::new();
    let mut complex = false;
    for (name, e) in measures {
        if matches!(e, Expr::AggregateFunction(_)) {
            aggs.push(e.alias(&name));
            post.push(column(&name));
            continue;
        }
        complex = true;
        let found = find_aggregate_exprs([&e]);
        let mut names = Vec::new();
        for a in &found {
            let inner = format!("__agg{}", aggs.len());
            aggs.push(a.clone().alias(&inner));
            names.push(inner);
        }
        let rewritten = e
            .transform_up(|x| match found.iter().position(|a| a == &x) {
                Some(p) => Ok(Transformed::yes(column(&names[p]))),
                None => Ok(Transformed::no(x)),
            })?
            .data;
        post.push(rewritten.alias(&name));
    }
    let df = df.aggregate(groups, aggs)?;
    if !complex {
        return Ok(df);
    }
    let mut select: Vec<Expr> = group_names.iter().map(|g| column(g)).collect();
    select.extend(post);
    df.select(select)
}

/// Stacks per-model aggregates and folds them by dimension (see the module doc).
fn merge(parts: Vec<DataFrame>, dims: &[String]) -> datafusion::error::Result<DataFrame> {
    let mut measure_types: Vec<(String, arrow::datatypes::DataType)> = Vec::new();
    for p in &parts {
        for f in p.schema().fields() {
            if !dims.contains(f.name()) {
                measure_types.push((f.name().clone(), f.data_type().clone()));
            }
        }
    }
    let mut stacked: Option<DataFrame> = None;
    for p in parts {
        let own = frame_columns(&p);
        let mut select: Vec<Expr> = dims.iter().map(|d| column(d)).collect();
        for (name, ty) in &measure_types {
            select.push(if own.contains(name) {
                column(name)
            } else {
                Expr::Literal(ScalarValue::try_from(ty)?, None).alias(name)
            });
        }
        let p = p.select(select)?;
        stacked = Some(match stacked {
            None => p,
            Some(s) => s.union(p)?,
        });
    }
    let stacked = stacked.expect("at least two parts");
    let groups = dims.iter().map(|d| column(d)).collect();
    let folds = measure_types
        .iter()
        .map(|(name, _)| max(column(name)).alias(name))
        .collect();
    stacked.aggregate(groups, folds)
}

/// Orders `nodes` so that each comes after its dependencies; Err(cycle) on a cycle.
fn topo_order(
    nodes: Vec<String>,
    deps: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, Vec<String>> {
    fn visit(
        n: &str,
        deps: &dyn Fn(&str) -> Vec<String>,
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.iter().any(|d| d == n) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == n) {
            let mut cycle = path[start..].to_vec();
            cycle.push(n.to_string());
            return Err(cycle);
        }
        path.push(n.to_string());
        for d in deps(n) {
            visit(&d, deps, done, path)?;
        }
        path.pop();
        done.push(n.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for n in &nodes {
        visit(n, &deps, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_items() {
        assert_eq!(parse_sort("a desc").unwrap(), ("a".into(), false, false));
        assert_eq!(parse_sort("a").unwrap(), ("a".into(), true, false));
        assert_eq!(
            parse_sort("a asc nulls first").unwrap(),
            ("a".into(), true, true)
        );
        assert!(parse_sort("a sideways").is_err());
    }

    #[test]
    fn cycles_are_found() {
        let deps = |n: &str| match n {
            "a" => vec!["b".to_string()],
            "b" => vec!["c".to_string()],
            "c" => vec!["a".to_string()],
            _ => vec![],
        };
        let err = topo_order(vec!["a".into(), "d".into()], deps).unwrap_err();
        assert_eq!(err, vec!["a", "b", "c", "a"]);
        let ok = topo_order(vec!["b".into()], |n| {
            if n == "b" { vec!["x".into()] } else { vec![] }
        })
        .unwrap();
        assert_eq!(ok, vec!["x", "b"]);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("deals.won_count"));
        assert!(is_identifier("won_count"));
        assert!(!is_identifier("count(*)"));
        assert!(!is_identifier("a.b.c"));
    }
}
