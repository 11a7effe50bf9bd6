//! Compiles models and blocks into DataFusion DataFrames (logical plans) through the
//! DataFrame API. Settings and parameters enter as literal values; report filters as
//! `IN` lists on the columns each model names for them.
//!
//! A table block reads one or more models. Each model is aggregated by the block's
//! dimensions on its own; when there are several, the per-model results are stacked
//! (UNION ALL, each model's measures null in the others' rows) and folded by dimension,
//! which is a full outer join on the dimensions that also matches null keys. Measures that
//! combine other measures are computed after that, so they may mix models.
//!
//! Here: the `Compiler` (one per run and period) and what a block is. The stages, each in
//! its own module: `models` (a model's rows and measures), `periods` (time dimensions),
//! `table` (table blocks), `steps` (lookups, totals, unpivot, sort), `list` (list blocks
//! and output columns), `names` (what an expression's text names).

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
use crate::definition::{DefinitionFile, index, join};
use crate::error::{Diagnostic, ReportError, did_you_mean};
use crate::expr::{self, Bindings, ExprSite, Resolved, Scope, Target, TargetKind};
use crate::params::RunParams;
use crate::result::{BlockKind, ColumnMeta, infer_type, type_fits};
use crate::spec::{BlockPeriod, Empty, ExprSpec, Limit, Shift, TimeSpec};
use crate::tables::TableSet;
use crate::time::Grain;

mod list;
mod models;
pub(crate) use models::unread_as_nulls;
mod names;
mod periods;
mod steps;
mod table;

use models::*;
pub(crate) use names::block_model_names;
use names::*;
pub(crate) use steps::summed_totals;
use steps::*;
use table::*;

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
    /// Measures of the totals row summed from the computed rows (`summed_totals`).
    pub totals_summed: Vec<String>,
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
    source: &'a dyn TableSet,
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
    /// Per model read through other models, the columns they read of it and its whole
    /// schema, once known (`narrow_inner`): it is built as `needed` narrows a block's
    /// model, its other columns typed nulls that no plan computes.
    inner: Mutex<HashMap<String, (HashSet<String>, datafusion::common::DFSchemaRef)>>,
    /// A block's rows of a model after the block's `where`, when the run computed them
    /// once for all the block's groupings (`run::block_models`), by (model, block index).
    scopes: Mutex<HashMap<(String, usize), DataFrame>>,
    /// The run's compilers for other parameters, shared (empty when the run keeps none).
    variants: std::sync::Weak<Variants<'a>>,
}

/// The compilers of one run for parameters other than its own (a shifted period, a
/// block's own month): each made once and shared by every block that asks for it, so that
/// the run can compute its models once (`run::SharedWaves`, `run::block_models`).
#[derive(Default)]
pub struct Variants<'a> {
    made: Mutex<Vec<(RunParams, Arc<Compiler<'a>>)>>,
    /// While the run learns which columns its blocks read (`with_stand_ins`), the schema
    /// of each model blocks read: a variant made meanwhile reads stand-ins of those models
    /// (empty tables scanned as `variant_stand_in`) instead of planning them whole.
    stand_ins: Mutex<Option<HashMap<String, arrow::datatypes::SchemaRef>>>,
}

impl<'a> Variants<'a> {
    /// Every variant made so far, by index (what `variant_stand_in` names it by).
    pub fn made(&self) -> Vec<(usize, Arc<Compiler<'a>>)> {
        let made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.iter().map(|(_, c)| c.clone()).enumerate().collect()
    }

    /// Runs `compile` with every variant made meanwhile reading stand-ins of the models
    /// in `schemas` (name → columns) instead of the models; the variants then forget
    /// them, to plan the models when they are asked next.
    pub fn with_stand_ins<T>(
        &self,
        schemas: HashMap<String, arrow::datatypes::SchemaRef>,
        compile: impl FnOnce() -> T,
    ) -> T {
        *self.stand_ins.lock().unwrap_or_else(|e| e.into_inner()) = Some(schemas);
        let out = compile();
        *self.stand_ins.lock().unwrap_or_else(|e| e.into_inner()) = None;
        for (_, c) in self.made() {
            c.forget_frames_except(&[]);
        }
        out
    }
}

/// An empty table of a model's columns: what a plan over the model is compiled against
/// to learn which of its columns it reads, without computing it. Its scans are later
/// re-pointed at the model's computed rows (`run`), so each one says which model, of which
/// period, it stands for.
#[derive(Debug)]
pub(crate) struct StandIn {
    /// The model stood for.
    pub model: String,
    /// The run's variant (another period) whose model it is; `None`: the run's own.
    pub variant: Option<usize>,
    schema: arrow::datatypes::SchemaRef,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for StandIn {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let schema = datafusion::physical_plan::project_schema(&self.schema, projection)?;
        Ok(Arc::new(datafusion::physical_plan::empty::EmptyExec::new(
            schema,
        )))
    }
}

/// A stand-in (`StandIn`) of `model` (of the run's `variant`, if given) with `schema`'s
/// columns, named `model`.
pub(crate) fn stand_in(
    state: &SessionState,
    model: &str,
    variant: Option<usize>,
    schema: arrow::datatypes::SchemaRef,
) -> datafusion::error::Result<DataFrame> {
    let table = match variant {
        Some(index) => variant_stand_in(model, index),
        None => model.to_string(),
    };
    let rows = StandIn {
        model: model.to_string(),
        variant,
        schema,
    };
    let mut plan = LogicalPlanBuilder::scan(&table, provider_as_source(Arc::new(rows)), None)?;
    if table != model {
        plan = plan.alias(model)?;
    }
    Ok(DataFrame::new(state.clone(), plan.build()?))
}

/// `df` with `columns` (name, expression over `df`) in one projection: a column of the
/// same name replaced where it stands, the others added after the last, in order — what
/// `DataFrame::with_column` does, one projection each. A plan step per column makes
/// every optimizer rule walk one node more.
pub(crate) fn with_columns(
    df: DataFrame,
    columns: &[(String, Expr)],
) -> datafusion::error::Result<DataFrame> {
    let (state, plan) = df.into_parts();
    let mut fields: Vec<(Expr, bool)> = plan
        .schema()
        .iter()
        .map(
            |(qualifier, field)| match columns.iter().find(|(n, _)| n == field.name()) {
                Some((n, e)) => (e.clone().alias(n), true),
                None => (Expr::Column(Column::from((qualifier, field))), false),
            },
        )
        .collect();
    for (n, e) in columns {
        if plan.schema().fields().iter().all(|f| f.name() != n) {
            fields.push((e.clone().alias(n), true));
        }
    }
    let plan = LogicalPlanBuilder::from(plan)
        .project_with_validation(fields)?
        .build()?;
    Ok(DataFrame::new(state, plan))
}

/// The table a stand-in of `model` is scanned as in the run's variant `index`: told
/// apart from the run's own period's.
pub(crate) fn variant_stand_in(model: &str, index: usize) -> String {
    format!("{model}@{index}")
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
    src: &DefinitionFile,
    path: &str,
    context: &str,
    e: datafusion::error::DataFusionError,
) -> ReportError {
    Diagnostic::at(src, path, context, expr::clean(&e.to_string())).into()
}

impl<'a> Compiler<'a> {
    pub fn new(
        catalog: &'a Catalog,
        source: &'a dyn TableSet,
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
            inner: Mutex::new(HashMap::new()),
            scopes: Mutex::new(HashMap::new()),
            variants: std::sync::Weak::new(),
        }
    }

    /// From now on this compiler and every variant made from it share one set of
    /// variants, which lives as long as the returned handle.
    pub fn share_variants(&mut self) -> Arc<Variants<'a>> {
        let variants = Arc::new(Variants::default());
        self.variants = Arc::downgrade(&variants);
        variants
    }

    /// The run's parameters.
    pub fn params(&self) -> &RunParams {
        &self.params
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// A compiler for the same run over a shifted period (its own caches: every model it
    /// reads is computed for that period).
    pub(crate) fn shifted(&self, shift: Shift) -> Arc<Compiler<'a>> {
        self.with_params(self.params.shifted(shift))
    }

    /// A compiler for the same run over other parameters (its own caches): the run's one
    /// for those parameters when it shares variants, else a new one.
    fn with_params(&self, params: RunParams) -> Arc<Compiler<'a>> {
        let make = |params: RunParams| {
            let mut bindings = self.bindings.clone();
            for (name, value) in params.bindings() {
                bindings.0.insert(name.to_string(), value);
            }
            let mut c = Compiler::new(
                self.catalog,
                self.source,
                self.state.clone(),
                params,
                bindings,
                self.filters.clone(),
            );
            c.variants = self.variants.clone();
            Arc::new(c)
        };
        let Some(variants) = self.variants.upgrade() else {
            return make(params);
        };
        let mut made = variants.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = made.iter().position(|(p, _)| *p == params) {
            return made[i].1.clone();
        }
        let c = make(params.clone());
        let index = made.len();
        let stand_ins = variants.stand_ins.lock().unwrap_or_else(|e| e.into_inner());
        for (model, schema) in stand_ins.iter().flatten() {
            // Without a stand-in the variant plans the model itself: slower to analyse,
            // the same columns.
            if let Ok(df) = stand_in(&self.state, model, Some(index), schema.clone()) {
                c.set_frame(model, true, df);
            }
        }
        made.push((params, c.clone()));
        c
    }

    /// From now on the model (as blocks read it) is built for these columns only.
    pub fn narrow(&self, model: &str, columns: &[String]) {
        self.needed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.to_string(), columns.iter().cloned().collect());
    }

    /// From now on the model, as other models read it, is built for these columns only,
    /// with the rest of `schema` (its whole) as typed nulls.
    pub fn narrow_inner(
        &self,
        model: &str,
        columns: &[String],
        schema: datafusion::common::DFSchemaRef,
    ) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).insert(
            model.to_string(),
            (columns.iter().cloned().collect(), schema),
        );
    }

    /// Forgets every model frame but `keep`'s, so that frames are built again over the
    /// ones kept (models computed in memory since).
    pub fn forget_frames_except(&self, keep: &[(String, bool)]) {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep.contains(k));
    }

    /// Replaces a model's frame by a given one (e.g. its rows cached in memory).
    pub fn set_frame(&self, model: &str, filtered: bool, df: DataFrame) {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((model.to_string(), filtered), df);
    }

    /// From now on block `i` reads `model` as these rows (the block's `where` applied).
    pub fn set_block_input(&self, model: &str, i: usize, df: DataFrame) {
        self.scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((model.to_string(), i), df);
    }

    /// The rows of `model` the run kept for block `i` (`set_block_input`), if any.
    fn kept_input(&self, model: &str, i: usize) -> Option<DataFrame> {
        self.scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(model.to_string(), i))
            .cloned()
    }

    /// What the run holds of `model` for block `i`: the rows kept for the block, else the
    /// model's frame as blocks read it (its rows once computed); `None` before either.
    pub fn held_frame(&self, model: &str, i: usize) -> Option<DataFrame> {
        self.kept_input(model, i).or_else(|| {
            self.frames
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(model.to_string(), true))
                .cloned()
        })
    }

    /// The rows of `model` block `i` reads: the model's, filtered by the block's `where`
    /// (`what` says which model in an error), or the ones the run kept for the block.
    pub fn block_input(
        &self,
        report: &Report,
        i: usize,
        model: &str,
        what: Option<&str>,
    ) -> Result<DataFrame, ReportError> {
        if let Some(df) = self.kept_input(model, i) {
            return Ok(df);
        }
        let df = self.model_frame(model, true, &mut Vec::new())?;
        match &report.spec.blocks[i].filter {
            Some(w) => self.filter(df, &self.block_site(report, i, "where", what), w),
            None => Ok(df),
        }
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

    /// An expression over `df`'s columns that has a value per row, parsed, resolved and
    /// planned in one step: an aggregate in it is refused where it stands, with what to
    /// write instead.
    fn row_expr(&self, site: &ExprSite, text: &str, df: &DataFrame) -> Result<Expr, Diagnostic> {
        self.expr_over(site, text, df, false)
    }

    /// An expression over `df`'s columns; aggregates allowed (a grouped model's columns).
    fn expr_over(
        &self,
        site: &ExprSite,
        text: &str,
        df: &DataFrame,
        aggregates: bool,
    ) -> Result<Expr, Diagnostic> {
        let scope = column_scope(&frame_columns(df));
        let resolved = self.resolve(site, text, &scope)?;
        if let (Some((name, line, column)), false) = (&resolved.aggregate, aggregates) {
            return Err(site.error_at(*line, *column, row_aggregate_message(&site.path, name)));
        }
        self.plan(site, &resolved, df.schema())
    }

    fn filter(&self, df: DataFrame, site: &ExprSite, text: &str) -> Result<DataFrame, ReportError> {
        let predicate = self.row_expr(site, text, &df)?;
        df.filter(predicate)
            .map_err(|e| df_error(&site.src, &site.path, &site.context, e))
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
        if let Some(p) = &block.pivot {
            let site = self.block_site(report, i, "pivot", None);
            if !dims.contains(&p.as_str()) {
                return Err(site
                    .error(format!(
                        "`{p}` is not a dimension of the block{}; `pivot` spreads a dimension's values into columns",
                        did_you_mean(p, dims.iter().copied())
                    ))
                    .into());
            }
            if !block.children.is_empty() || block.unpivot.is_some() {
                return Err(site
                    .error("`pivot` goes with neither `children` nor `unpivot`")
                    .into());
            }
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
        if chart.kind == crate::spec::ChartKind::Heatmap && chart.y.len() > 1 {
            return Err(self
                .block_site(report, i, "chart.y", None)
                .error("a heatmap colours each cell by one value: `y` names one column")
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
            let params = RunParams(crate::params::RunInfo {
                from: crate::time::month_start(self.params.as_of),
                to: crate::time::month_end(self.params.as_of),
                ..self.params.info()
            });
            return self.with_params(params).block_rows(report, i);
        }
        if block.columns.is_empty() {
            let err = |e| df_error(&report.src, &index("blocks", i), &block.id, e);
            let all: Vec<String> = block.by.names().map(str::to_string).collect();
            let plan = self.table_plan(report, i)?;
            let (mut rows, columns) = self.table_grouping(report, &plan, &block.by.0)?;
            // The rows a totals row sums (`total: sum`): without subtotal rows, which the
            // rows gain below.
            let detail = (block.totals && !block.subtotals.is_empty()).then(|| rows.clone());
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
                let sub = self.table_grouping(report, &plan, &dims)?.0;
                let sub = align(sub, &rows).map_err(err)?;
                rows = rows.union(sub).map_err(err)?;
            }
            let (totals, totals_summed) = if block.totals {
                // Same columns as the rows: dimensions are typed nulls in the totals row.
                let totals =
                    align(self.table_grouping(report, &plan, &[])?.0, &rows).map_err(err)?;
                let (totals, summed) = self
                    .totals_overrides(block, totals, detail.as_ref().unwrap_or(&rows))
                    .map_err(err)?;
                (Some(totals), summed)
            } else {
                (None, vec![])
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
            // Hidden dimensions and measures: grouped by, computed and sorted on, not shown.
            let hidden: Vec<&str> = block
                .by
                .iter()
                .filter(|(_, spec)| spec.hidden)
                .map(|(d, _)| d.as_str())
                .chain(
                    block
                        .measures
                        .iter()
                        .filter(|(_, spec)| spec.hidden)
                        .map(|(m, _)| m.as_str()),
                )
                .collect();
            if let Some((d, _)) = block.by.iter().find(|(_, spec)| spec.hidden)
                && !block.children.is_empty()
            {
                return Err(self
                    .block_site(report, i, &join(&join("by", d), "hidden"), None)
                    .error(format!(
                        "a hidden dimension cannot key child rows (`{d}` would be missing from the rows they expand): show it, or group the children by visible dimensions"
                    ))
                    .into());
            }
            let (rows, columns) = list::without(rows, columns, &hidden).map_err(err)?;
            // The totals row keeps the columns the rows keep.
            let totals = totals
                .map(|t| t.select(columns.iter().map(|c| column(&c.name)).collect::<Vec<_>>()))
                .transpose()
                .map_err(err)?;
            if let Some(u) = &block.unpivot {
                let (rows, columns) = self.unpivot(report, i, u, rows, &columns)?;
                return Ok(CompiledBlock {
                    kind: BlockKind::Table,
                    rows,
                    totals: None,
                    totals_summed: vec![],
                    columns,
                    children: vec![],
                });
            }
            // Children: the same measures by the block's dimensions and the child's.
            let mut children = Vec::new();
            for child in &block.children {
                let mut dims = block.by.0.clone();
                dims.extend(child.by.iter().cloned());
                let (frame, child_columns) = self.table_grouping(report, &plan, &dims)?;
                let (frame, child_columns) =
                    list::without(frame, child_columns, &hidden).map_err(err)?;
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
                totals_summed,
                columns,
                children,
            })
        } else {
            let (rows, columns) = self.list_block(report, i)?;
            Ok(CompiledBlock {
                kind: BlockKind::List,
                rows,
                totals: None,
                totals_summed: vec![],
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
}

/// Why an aggregate cannot stand where each row gets its own value, and what to write
/// instead: the place decides the words (a filter, a dimension, a join key, a column).
fn row_aggregate_message(path: &str, name: &str) -> String {
    let what = path.rsplit('.').next().unwrap_or(path);
    let what = what.split('[').next().unwrap_or(what);
    if what == "where" {
        format!(
            "an aggregate (`{name}`) cannot filter rows: `where` keeps or drops each row on its own values. \
             To keep only some groups, use the block's `having:`; to count only some rows, \
             give the measure a filter: `count(*) filter (where …)`"
        )
    } else {
        format!(
            "an aggregate (`{name}`) cannot be a row's value: this expression is computed row by \
             row. Make it a measure (under `measures:`), or use a window: `{name}(…) over (…)`"
        )
    }
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
