//! The engine's entry points: settings of a report, run, explain and check — the calls the
//! CLI and the service are thin shells over.

use std::sync::Arc;

use chrono_tz::Tz;
use datafusion::common::{Column, DFSchema};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use datafusion::prelude::{DataFrame, Expr};

use crate::catalog::{Catalog, Report};
use crate::compile::{CompiledBlock, Compiler, variant_stand_in};
use crate::definition::join;
use crate::error::{Diagnostic, ReportError, did_you_mean};
use crate::expr::Bindings;
use crate::params::RunParams;
use crate::result::{BlockResult, ChildResult, Previous, ReportResult};
use crate::settings::{Setting, SettingValue};
use crate::tables::{LazyTables, TableSet};

/// A request to run (or explain) one report.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub report: String,
    pub params: RunParams,
    /// Setting overrides as `(name, value text)`, applied in order.
    pub settings: Vec<(String, String)>,
    /// Values of the report's declared parameters as `(name, value text)`.
    pub parameters: Vec<(String, String)>,
    /// Only this block, when set.
    pub block: Option<String>,
    /// Bytes the run's sorts, joins and aggregates may hold; beyond it the run fails with
    /// a resources error instead of exhausting the process. None: unbounded.
    pub memory_limit: Option<usize>,
    /// Where the plans execute.
    pub engine: Engine,
}

impl RunRequest {
    /// A run of `report` over `params` with the report's own settings and parameters, every
    /// block, no memory bound, in this process; callers set what they change.
    pub fn new(report: &str, params: RunParams) -> RunRequest {
        RunRequest {
            report: report.to_string(),
            params,
            settings: vec![],
            parameters: vec![],
            block: None,
            memory_limit: None,
            engine: Engine::Local,
        }
    }
}

/// Where a run's plans execute.
#[derive(Debug, Clone, Default)]
pub enum Engine {
    /// In this process: the models that blocks share are computed once and kept in memory
    /// for the run.
    #[default]
    Local,
    /// On another engine (a cluster). Nothing held in this process's memory can be shipped
    /// there, so every block's plan goes whole, its models inlined, and every table must be
    /// a Parquet scan (a snapshot store on a path that engine reads).
    Remote(Arc<dyn RemoteEngine>),
}

/// An engine that executes plans elsewhere.
pub trait RemoteEngine: std::fmt::Debug + Send + Sync {
    /// Where it is, for messages: "the cluster at host:7170".
    fn describe(&self) -> String;
    /// The run's session, made to execute its plans there.
    fn upgrade(
        &self,
        state: datafusion::execution::SessionState,
    ) -> Result<datafusion::execution::SessionState, String>;
    /// Whether a run that failed with `message` is to be started over as it is: the engine
    /// threw away a result it could not vouch for (a cluster that lost an executor mid-job).
    fn may_run_again(&self, message: &str) -> bool;
}

/// How many times a run is started on a remote engine that asks for it again.
const REMOTE_ATTEMPTS: usize = 3;

impl Engine {
    fn is_local(&self) -> bool {
        matches!(self, Engine::Local)
    }

    fn may_run_again(&self, error: &ReportError) -> bool {
        match self {
            Engine::Local => false,
            Engine::Remote(remote) => remote.may_run_again(&error.to_string()),
        }
    }
}

/// A DataFusion session with the report language's functions for time zone `tz`, its
/// operators' memory bounded by `memory_limit` bytes when given.
pub fn session(tz: Tz, memory_limit: Option<usize>) -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(parallelism());
    // Two optimizer passes, not three: for every shipped report the plans after two are
    // those after three (compared plan by plan), and a third pass over 20-odd plans is
    // ~2.5 % of a small run's instructions.
    config.options_mut().optimizer.max_passes = 2;
    let config = config.with_extension(Arc::new(crate::expr::ParsedTexts::default()));
    let ctx = match memory_limit {
        Some(bytes) => {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_limit(bytes, 1.0)
                .build_arc()
                .expect("a memory pool builds without I/O");
            SessionContext::new_with_config_rt(config, runtime)
        }
        None => SessionContext::new_with_config(config),
    };
    for udf in crate::functions::udfs(tz) {
        ctx.register_udf(udf);
    }
    ctx
}

/// The models a report reads, directly or through other models, in first-use order.
pub fn models_of(catalog: &Catalog, report: &Report) -> Vec<String> {
    let all: Vec<usize> = (0..report.spec.blocks.len()).collect();
    reachable_models(catalog, direct_models(report, &all))
}

/// The canonical tables a report reads through its models.
pub fn tables_of(catalog: &Catalog, report: &Report) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in models_of(catalog, report) {
        let model = &catalog.models[&m];
        let names =
            std::iter::once(&model.spec.from).chain(model.spec.joins.iter().map(|j| &j.from));
        for name in names {
            if let crate::catalog::Input::Table(t) = catalog.input(name, std::slice::from_ref(&m))
                && !out.iter().any(|o| o == t.name)
            {
                out.push(t.name.to_string());
            }
        }
    }
    out
}

/// `seeds` and every model they read through `from` or joins, in first-use order.
fn reachable_models(catalog: &Catalog, seeds: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut queue = std::collections::VecDeque::from(seeds);
    while let Some(m) = queue.pop_front() {
        if !catalog.models.contains_key(&m) || out.contains(&m) {
            continue;
        }
        queue.extend(models_read(catalog, &m).into_iter().map(str::to_string));
        out.push(m);
    }
    out
}

/// The models model `m` reads (its `from` and its joins'), as `Catalog::input` names
/// them: a model reading the table of its own name, or `tables.x`, reads no model.
fn models_read<'c>(catalog: &'c Catalog, m: &str) -> Vec<&'c str> {
    let Some(model) = catalog.models.get(m) else {
        return Vec::new();
    };
    let within = [m.to_string()];
    std::iter::once(&model.spec.from)
        .chain(model.spec.joins.iter().map(|j| &j.from))
        .filter_map(|name| match catalog.input(name, &within) {
            crate::catalog::Input::Model(read) => Some(read),
            _ => None,
        })
        .collect()
}

/// The settings of these models; one name declared twice must have one type.
fn settings_of_models(
    catalog: &Catalog,
    models: &[String],
    owner: &str,
) -> Result<Vec<Setting>, ReportError> {
    let mut out: Vec<Setting> = Vec::new();
    for m in models {
        let model = &catalog.models[m];
        for s in &model.settings {
            match out.iter().find(|o| o.name == s.name) {
                Some(o) if o.ty != s.ty => {
                    return Err(Diagnostic::at(
                        &model.src,
                        &join("settings", &s.name),
                        format!("model `{m}`"),
                        format!(
                            "setting `{}` is also declared by another model of {owner} with type {}",
                            s.name, o.ty
                        ),
                    )
                    .into());
                }
                Some(_) => {}
                None => out.push(s.clone()),
            }
        }
    }
    Ok(out)
}

/// The settings a report accepts: those of every model it reads, then its own (which may
/// re-declare a model's setting with another default, bounds or label, but not type).
pub fn settings_of(catalog: &Catalog, report: &Report) -> Result<Vec<Setting>, ReportError> {
    let mut out = settings_of_models(
        catalog,
        &models_of(catalog, report),
        &format!("report `{}`", report.id()),
    )?;
    for s in &report.settings {
        match out.iter_mut().find(|o| o.name == s.name) {
            Some(o) if o.ty != s.ty => {
                return Err(Diagnostic::at(
                    &report.src,
                    &join("settings", &s.name),
                    format!("report `{}`", report.id()),
                    format!(
                        "setting `{}` re-declares a model setting of type {} as {}",
                        s.name, o.ty, s.ty
                    ),
                )
                .into());
            }
            Some(o) => *o = s.clone(),
            None => out.push(s.clone()),
        }
    }
    Ok(out)
}

/// Applies `name=value` overrides to the defaults of settings.
pub fn setting_values(
    settings: &[Setting],
    overrides: &[(String, String)],
) -> Result<Vec<(String, SettingValue)>, ReportError> {
    typed_values(settings, overrides, "setting")
}

/// Applies `name=value` overrides to typed defaults; `kind` names them in messages
/// (setting or parameter).
fn typed_values(
    settings: &[Setting],
    overrides: &[(String, String)],
    kind: &str,
) -> Result<Vec<(String, SettingValue)>, ReportError> {
    let mut values: Vec<(String, SettingValue)> = settings
        .iter()
        .map(|s| (s.name.clone(), s.default.clone()))
        .collect();
    for (name, text) in overrides {
        let Some(setting) = settings.iter().find(|s| &s.name == name) else {
            return Err(ReportError::bad_input(
                format!("{kind} `{name}`"),
                format!(
                    "no such {kind}{}; this report has: {}",
                    did_you_mean(name, settings.iter().map(|s| s.name.as_str())),
                    settings
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let value = setting.parse(text).map_err(|m| {
            ReportError::bad_input(
                format!("{kind} `{name}`"),
                format!(
                    "{m}; written like its default: `{name}: {}`",
                    setting.default
                ),
            )
        })?;
        values
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("every setting has a default")
            .1 = value;
    }
    Ok(values)
}

struct Prepared<'a> {
    report: Arc<Report>,
    compiler: Compiler<'a>,
    /// The run's compilers for other periods (kept alive for the run).
    variants: Arc<crate::compile::Variants<'a>>,
    settings: Vec<(String, SettingValue)>,
    parameters: Vec<(String, SettingValue)>,
    labels: std::collections::HashMap<String, String>,
    blocks: Vec<usize>,
}

fn prepare<'a>(
    catalog: &'a Catalog,
    source: &'a dyn TableSet,
    req: &RunRequest,
) -> Result<Prepared<'a>, ReportError> {
    let report = catalog.report(&req.report)?.clone();
    req.params.check_addresses()?;
    let declared = settings_of(catalog, &report)?;
    let settings = setting_values(&declared, &req.settings)?;
    let parameters = typed_values(&report.parameters, &req.parameters, "parameter")?;
    let labels = declared
        .iter()
        .chain(&report.parameters)
        .filter_map(|s| s.label.clone().map(|l| (s.name.clone(), l)))
        .collect();
    let mut bindings = Bindings::default();
    for (name, value) in req.params.bindings() {
        bindings.0.insert(name.to_string(), value);
    }
    for (name, value) in settings.iter().chain(&parameters) {
        bindings.bind(name, value);
    }
    let filters = req
        .params
        .filters
        .iter()
        .map(|(f, vs)| {
            (
                f.clone(),
                vs.iter().map(crate::params::filter_scalar).collect(),
            )
        })
        .collect();
    let blocks = match &req.block {
        None => (0..report.spec.blocks.len()).collect(),
        Some(id) => vec![
            report
                .spec
                .blocks
                .iter()
                .position(|b| &b.id == id)
                .ok_or_else(|| ReportError::UnknownBlock {
                    report: report.id().to_string(),
                    block: id.clone(),
                    hint: did_you_mean(id, report.spec.blocks.iter().map(|b| b.id.as_str())),
                })?,
        ],
    };
    let ctx = session(req.params.timezone, req.memory_limit);
    for (at, store) in source.object_stores() {
        ctx.register_object_store(&at, store);
    }
    let state = ctx.state();
    let state = match &req.engine {
        Engine::Local => state,
        Engine::Remote(remote) => remote
            .upgrade(state)
            .map_err(|message| ReportError::Remote {
                engine: remote.describe(),
                message,
            })?,
    };
    let mut compiler = Compiler::new(
        catalog,
        source,
        state,
        req.params.clone(),
        bindings,
        filters,
    );
    let variants = compiler.share_variants();
    Ok(Prepared {
        compiler,
        variants,
        report,
        settings,
        parameters,
        labels,
        blocks,
    })
}

fn execution_error(
    report: &str,
    place: &str,
    e: datafusion::error::DataFusionError,
) -> ReportError {
    ReportError::Execution {
        report: report.to_string(),
        place: place.to_string(),
        source: Box::new(e),
    }
}

/// DataFusion failed while planning or computing model `model`'s rows.
fn model_error(report: &str, model: &str, e: datafusion::error::DataFusionError) -> ReportError {
    execution_error(report, &format!("model `{model}`"), e)
}

/// Where an error in the analysis of the columns a run's blocks read happened.
const COLUMNS_READ: &str = "the analysis of the columns its blocks read";

/// A plan's batches in one (a totals row, a compared period's row).
fn one_batch(
    declared: &DFSchema,
    batches: Vec<arrow::record_batch::RecordBatch>,
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(declared.as_arrow().clone()));
    arrow::compute::concat_batches(&schema, &batches)
}

/// Where and how many at a time a run executes its plans.
#[derive(Debug, Clone, Copy)]
struct Executing {
    /// In this process (models computed and kept in memory), not on a remote engine.
    local: bool,
    /// Plans executed side by side at most.
    slots: usize,
    /// The data is small ([`crate::tables::SMALL_DATA_ROWS`]): memory is not what a run
    /// saves, waiting is.
    small: bool,
}

/// How many plans a run executes at a time: the cores. Asked of the system once: each
/// answer reads the process's cgroup files, and a run asks for it dozens of times.
fn parallelism() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// Executes one compiled block's plans — its rows, totals, children and, when it is
/// compared with another period, its row over that period (`previous`) — each as a task
/// of its own in one of `slots`. Returns the block with the seconds its plans ran, in all.
async fn run_block(
    report: &str,
    spec: crate::spec::BlockSpec,
    compiled: CompiledBlock,
    previous: Option<(
        crate::spec::Shift,
        crate::result::RunInfo,
        datafusion::prelude::DataFrame,
    )>,
    slots: Slots,
) -> (Result<BlockResult, ReportError>, f64) {
    let CompiledBlock {
        kind,
        rows,
        totals,
        totals_summed,
        columns,
        children,
    } = compiled;
    // Each plan with the place its error names: a child level, the rows, the totals row,
    // the compared period.
    let mut places = Vec::new();
    let mut plans = Vec::new();
    let mut child_results = Vec::new();
    for child in children {
        places.push(format!("block `{}`, child rows `{}`", spec.id, child.id));
        plans.push(child.rows);
        child_results.push(ChildResult {
            id: child.id,
            title: child.title,
            parent_keys: child.parent_keys,
            columns: child.columns,
            batches: Vec::new(),
        });
    }
    let block = format!("block `{}`", spec.id);
    places.push(block.clone());
    plans.push(rows);
    let totals_schema = totals.as_ref().map(|t| t.schema().clone());
    if let Some(t) = totals {
        places.push(format!("{block}, totals row"));
        plans.push(t);
    }
    let previous = previous.map(|(shift, params, rows)| {
        places.push(format!("{block}, compared period"));
        let schema = rows.schema().clone();
        plans.push(rows);
        (shift, params, schema)
    });
    let collected = spawned(
        plans
            .into_iter()
            .map(|plan| slots.clone().run(BLOCK_RANK, plan.collect()))
            .collect(),
    )
    .await;
    let seconds = collected.iter().map(|(_, s)| s).sum();
    // In the order they were pushed: children, rows, totals, compared period.
    let result = (|| -> Result<BlockResult, ReportError> {
        let mut collected = collected
            .into_iter()
            .zip(places)
            .map(|((batches, _), place)| batches.map_err(|e| execution_error(report, &place, e)));
        let mut next = || collected.next().expect("one result per plan");
        for child in &mut child_results {
            child.batches = next()?;
        }
        let batches = next()?;
        let in_one = |schema: &DFSchema, batches| {
            one_batch(schema, batches).map_err(|e| execution_error(report, &block, e.into()))
        };
        let totals = match &totals_schema {
            Some(schema) => Some(in_one(schema, next()?)?),
            None => None,
        };
        let totals = match totals {
            Some(t) if !totals_summed.is_empty() => Some(
                crate::compile::summed_totals(t, &batches, &totals_summed).map_err(|e| {
                    execution_error(report, &format!("{block}, totals row"), e.into())
                })?,
            ),
            t => t,
        };
        let previous = match previous {
            Some((shift, params, schema)) => Some(Previous {
                shift,
                params,
                row: in_one(&schema, next()?)?,
            }),
            None => None,
        };
        Ok(BlockResult {
            id: spec.id,
            title: spec.title,
            description: spec.description,
            kind,
            columns,
            batches,
            totals,
            previous,
            children: child_results,
            chart: spec.chart,
            pivot: spec.pivot,
        })
    })();
    (result, seconds)
}

/// Runs a report over `source`. Models read by blocks are computed once and shared
/// between the blocks. A remote engine that discards a result it cannot vouch for gets
/// the whole run again, up to `REMOTE_ATTEMPTS` times.
pub async fn run(
    catalog: &Catalog,
    source: &dyn TableSet,
    req: &RunRequest,
) -> Result<ReportResult, ReportError> {
    let mut attempt = 1;
    loop {
        match run_once(catalog, source, req).await {
            Err(e) if attempt < REMOTE_ATTEMPTS && req.engine.may_run_again(&e) => attempt += 1,
            result => return result,
        }
    }
}

async fn run_once(
    catalog: &Catalog,
    source: &dyn TableSet,
    req: &RunRequest,
) -> Result<ReportResult, ReportError> {
    let p = prepare(catalog, source, req)?;
    let report = &p.report;
    let mut timings = Stopwatch::start();
    let tables = tables_of(catalog, report);
    source.prefetch(&tables)?;
    if let Engine::Remote(remote) = &req.engine {
        check_shippable(source, &tables, remote.as_ref())?;
    }
    timings.lap("load tables".into());
    // Compiling the blocks for the run's own period makes a compiler for each other
    // period they read (a measure's `shift`, a block's own month, `compare`) and tells
    // which columns of each period's models they read. Each such period's models are then
    // computed once, for all the blocks that read them.
    let how = Executing {
        local: req.engine.is_local(),
        // A run with a memory bound executes one plan at a time, each with the whole bound.
        slots: match req.memory_limit {
            Some(_) => 1,
            None => parallelism(),
        },
        small: req.memory_limit.is_none() && source.holds_small_data(),
    };
    let mut read = columns_read(&p.compiler, &p.variants, catalog, report, &p.blocks)?;
    timings.lap("columns read".into());
    // The run's own period, then each other period its blocks read.
    let made = p.variants.made();
    let mut periods = vec![(&p.compiler, read.main, String::new())];
    for (index, variant) in &made {
        let Some(narrowed) = read.variants.remove(index) else {
            continue;
        };
        let v = variant.params();
        let label = format!(" ({}…{}, as of {})", v.from, v.to, v.as_of);
        periods.push((variant.as_ref(), narrowed, label));
    }
    // Each period's models are narrowed by a compiler of its own: side by side.
    let narrowed = in_parallel(periods, |(compiler, narrowed, label)| {
        timed_now(|| narrow_period(compiler, catalog, report, narrowed, label))
    });
    let mut periods = Vec::new();
    for (period, seconds) in narrowed {
        let period = period?;
        timings.laps.push((
            format!("columns read through models{}", period.label),
            seconds,
        ));
        periods.push(period);
    }
    timings.lap("columns read through models, side by side".into());
    let slots = Slots::new(how.slots);
    let mut running = tokio::task::JoinSet::new();
    // The frames each period's models are planned over: the models kept so far.
    let mut keep: Vec<Vec<(String, bool)>> = vec![Vec::new(); periods.len()];
    let mut shared = SharedWaves::of(&periods, how);
    if !shared.all_kept() {
        for task in shared.start_next(report, &periods, &keep, &slots)? {
            running.spawn(task);
        }
    }
    // A model over the shared ones is planned once they are kept. At small data the others
    // start now, beside them: a plan's time is then mostly planning, on one core. At scale
    // the shared models fill the cores, and a model beside them would only add its rows
    // to their peak: every model waits.
    let shared_first = !shared.all_kept();
    let waits = |at: usize, n: &Narrowed| {
        shared_first && (!how.small || periods[at].over_shared.contains(&n.model))
    };
    let all_read: Vec<(usize, &Narrowed)> = read_by_blocks(&periods).collect();
    let gated: std::collections::BTreeSet<usize> = all_read
        .iter()
        .filter(|(at, n)| waits(*at, n))
        .flat_map(|(_, n)| n.scans.iter().copied())
        .collect();
    // At small data, the blocks that wait for rows: for a model computed as rows, or for
    // the shared ones. A model streamed into one of them would start only after that wait,
    // so it is computed as rows too, beside the others. (At a million deals keeping such a
    // model, `sales_plan`'s stage visits, took its peak from 1.06 to 1.41 GB and its time
    // from 4.0 to 4.9 s.)
    let waiting: std::collections::HashSet<usize> = match how.small {
        true => all_read
            .iter()
            .filter(|(_, n)| n.streams_into().is_none())
            .flat_map(|(_, n)| n.scans.iter().copied())
            .collect(),
        false => Default::default(),
    };
    let waiting_now: std::collections::HashSet<usize> = match how.small {
        true => waiting.iter().chain(&gated).copied().collect(),
        false => Default::default(),
    };
    let mut models = block_models(
        report,
        &periods,
        &mut keep,
        |at, n| !waits(at, n),
        &waiting_now,
        how,
        &slots,
        &mut timings,
    )?;
    // A block starts as soon as the models computed as rows that it reads are kept (and
    // the shared ones, when it reads a model over them): a block that waits for none of
    // them (reading only models streamed into it, or tables) beside them.
    let mut models_pending: std::collections::HashMap<usize, usize> =
        gated.iter().map(|b| (*b, 1)).collect();
    let mut kept_for: Vec<KeptFor> = Vec::new();
    let mut streaming = std::mem::take(&mut models.streaming);
    let mut models_left = spawn_models(models, &mut running, &mut kept_for, &mut models_pending);
    let (first, later): (Vec<_>, Vec<_>) = read
        .blocks
        .into_iter()
        .partition(|(i, _, _)| !models_pending.contains_key(i));
    let mut later: std::collections::HashMap<usize, _> =
        later.into_iter().map(|block| (block.0, block)).collect();
    let total = first.len() + later.len();
    // The blocks that wait for none of the models are made ready on this thread while
    // the models run.
    let (first, mut compiling) =
        timed_now(|| blocks_to_run(first, report, &p.compiler, &made, &streaming, how));
    let (first, mut reused) = first?;
    for task in block_tasks(first, report, req, &slots) {
        running.spawn(task);
    }
    let mut blocks = Vec::new();
    // The first error stops new blocks from starting; those running are waited for.
    let mut failed: Option<ReportError> = None;
    while let Some(done) = running.join_next().await {
        let done = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        // The blocks that waited for what is kept now.
        let mut waited: Vec<usize> = Vec::new();
        match done {
            Done::Block(i, block, seconds) => {
                blocks.push((i, *block, seconds));
                continue;
            }
            Done::Shared(at, m, rows, seconds) => {
                if failed.is_some() {
                    continue;
                }
                let kept = shared.keep(
                    report,
                    &periods,
                    &mut keep,
                    at,
                    &m,
                    *rows,
                    seconds,
                    &mut timings,
                );
                if let Err(e) = kept {
                    failed = Some(e);
                    continue;
                }
                if shared.computing > 0 {
                    continue;
                }
                release_freed_memory();
                if !shared.all_kept() {
                    match shared.start_next(report, &periods, &keep, &slots) {
                        Ok(tasks) => {
                            for task in tasks {
                                running.spawn(task);
                            }
                        }
                        Err(e) => failed = Some(e),
                    }
                    continue;
                }
                // Every shared model kept: the models over them.
                let over = block_models(
                    report,
                    &periods,
                    &mut keep,
                    waits,
                    &waiting,
                    how,
                    &slots,
                    &mut timings,
                );
                let mut over = match over {
                    Ok(over) => over,
                    Err(e) => {
                        failed = Some(e);
                        continue;
                    }
                };
                streaming.append(&mut over.streaming);
                models_left += spawn_models(over, &mut running, &mut kept_for, &mut models_pending);
                waited.extend(gated.iter().copied());
            }
            Done::Model(k, m, rows, seconds) => {
                models_left -= 1;
                if failed.is_some() {
                    continue;
                }
                let kept = &kept_for[k];
                if let Err(e) = keep_model(report, &periods, kept, &m, *rows, seconds, &mut timings)
                {
                    failed = Some(e);
                    continue;
                }
                waited.extend(kept.scanned_by.iter().copied());
            }
        }
        if models_left == 0 && shared.all_kept() {
            forget_shared_models(&periods);
            release_freed_memory();
        }
        let mut ready = Vec::new();
        for b in waited {
            let left = models_pending.get_mut(&b).expect("counted above");
            *left -= 1;
            if *left == 0 {
                ready.extend(later.remove(&b));
            }
        }
        if ready.is_empty() {
            continue;
        }
        let (compiled, seconds) =
            timed_now(|| blocks_to_run(ready, report, &p.compiler, &made, &streaming, how));
        compiling += seconds;
        match compiled {
            Ok((ready, planned)) => {
                reused += planned;
                for task in block_tasks(ready, report, req, &slots) {
                    running.spawn(task);
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    drop(periods);
    timings.laps.push((
        format!("blocks compiled ({reused} of {total} planned by the analysis)"),
        compiling,
    ));
    lap_blocks(&mut timings, &blocks);
    blocks.sort_by_key(|(i, _, _)| *i);
    let blocks = blocks
        .into_iter()
        .map(|(_, block, _)| block)
        .collect::<Result<Vec<_>, _>>()?;
    timings.lap("models and blocks side by side".into());
    Ok(ReportResult {
        report: report.id().to_string(),
        title: report.spec.title.clone(),
        description: report.spec.description.clone(),
        params: req.params.info(),
        settings: p.settings,
        parameters: p.parameters,
        labels: p.labels,
        blocks,
        filters: filters_of(catalog, report),
        timings: timings.laps,
    })
}

/// `state` executing plans as they are given: optimized already, by the analysis.
fn planned_state(
    state: &datafusion::execution::SessionState,
) -> datafusion::execution::SessionState {
    datafusion::execution::SessionStateBuilder::new_from_existing(state.clone())
        .with_analyzer_rules(vec![])
        .with_optimizer_rules(vec![])
        .build()
}

/// `state` optimizing the blocks' plans in the analysis: in one optimizer pass, not the
/// session's two. The second changes none of the shipped reports' block plans but in form
/// (two projections left unmerged, a limit kept over a sort that already fetches as many
/// rows) and costs 1.5–3.5 % of a small run's instructions, on the path every block waits
/// on. A block a model streams into is optimized again, whole and in full, once the model
/// is inlined; the models keep two passes (with one, a filter stays above a join).
fn analysis_state(
    state: &datafusion::execution::SessionState,
) -> datafusion::execution::SessionState {
    let mut state = state.clone();
    state.config_mut().options_mut().optimizer.max_passes = 1;
    state
}

/// Where a run's time went: each step and its seconds.
struct Stopwatch {
    laps: Vec<(String, f64)>,
    since: std::time::Instant,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            laps: Vec::new(),
            since: std::time::Instant::now(),
        }
    }

    /// Ends a step: the time since the last one.
    fn lap(&mut self, step: String) {
        self.laps.push((step, self.since.elapsed().as_secs_f64()));
        self.since = std::time::Instant::now();
    }
}

/// On a remote engine every table must be a Parquet scan: rows held in this process
/// cannot be shipped, and a plan that reads them would fail there with a codec error.
fn check_shippable(
    source: &dyn TableSet,
    tables: &[String],
    remote: &dyn RemoteEngine,
) -> Result<(), ReportError> {
    use datafusion::datasource::empty::EmptyTable;
    use datafusion::datasource::listing::ListingTable;
    for name in tables {
        let provider = source.table(name)?;
        let any: &dyn std::any::Any = provider.as_ref();
        if !any.is::<ListingTable>() && !any.is::<EmptyTable>() {
            return Err(ReportError::NotShippable {
                table: name.clone(),
                engine: remote.describe(),
                reason: "its rows are held in this process (a CSV folder, a plugin, or a \
                         store table written by an older version): import the data into a \
                         snapshot store on a path every executor reads (`svodka store \
                         import`, or sync it again) and run over that store"
                    .into(),
            });
        }
    }
    Ok(())
}

/// One period's models, narrowed to what the run reads and ready to compute.
struct PeriodModels<'c> {
    compiler: &'c Compiler<'c>,
    /// Told after each model's name in `--timings` (empty for the run's own period).
    label: String,
    /// The models blocks read, with the columns read of them.
    narrowed: Vec<Narrowed>,
    /// The models those read that two or more read and that the narrowed ones still
    /// reach, in waves (each reads only models of earlier waves), with the columns read
    /// of each.
    waves: Vec<Vec<String>>,
    widths: std::collections::HashMap<String, Vec<String>>,
    /// The models blocks read that read a shared one (of `waves`), directly or through
    /// others: planned once those are kept.
    over_shared: std::collections::HashSet<String>,
}

/// Narrows the models blocks read in `compiler`'s period (`narrowed`: the models with
/// the columns read of them): each model to those columns (its joins that bring none of
/// them left out), and each model they read through to the columns read of it; then tells
/// which models that two or more models read the narrowed ones still reach (the
/// per-entity activity facts, say), to be computed first.
fn narrow_period<'c>(
    compiler: &'c Compiler<'c>,
    catalog: &Catalog,
    report: &Report,
    narrowed: Vec<Narrowed>,
    label: String,
) -> Result<PeriodModels<'c>, ReportError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let read: Vec<String> = narrowed.iter().map(|n| n.model.clone()).collect();
    for n in &narrowed {
        compiler.narrow(&n.model, &n.columns);
    }
    // The models blocks read are built again, narrowed; the models under them, as other
    // models read them, are not narrowed yet: their stand-ins (left by `columns_read`)
    // still hold, and building over them is what keeps this step cheap.
    let order = dependency_order(catalog, &read);
    let unfiltered: Vec<(String, bool)> = order.iter().map(|m| (m.clone(), false)).collect();
    compiler.forget_frames_except(&unfiltered);
    // Which models each narrowed one reads (a stand-in's scan, or a model's frame under
    // its name), and every model those read.
    let mut reached_by: Vec<(String, Vec<String>)> = Vec::new();
    for m in &read {
        let plan = compiler
            .model_frame(m, true, &mut Vec::new())?
            .into_unoptimized_plan();
        // Below the model's own name: the models it reads.
        let below = match &plan {
            LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
            other => other,
        };
        let mut direct: Vec<String> = Vec::new();
        below
            .apply_with_subqueries(|node| {
                let name = match node {
                    LogicalPlan::SubqueryAlias(a) => a.alias.table().to_string(),
                    LogicalPlan::TableScan(scan) if is_stand_in(scan) => {
                        scan.table_name.table().to_string()
                    }
                    _ => return Ok(TreeNodeRecursion::Continue),
                };
                if !direct.contains(&name) {
                    direct.push(name);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(|e| model_error(report.id(), m, e))?;
        reached_by.push((m.clone(), reachable_models(catalog, direct)));
    }
    let inner: Vec<String> = order
        .into_iter()
        .filter(|m| reached_by.iter().any(|(_, reached)| reached.contains(m)))
        .collect();
    let widths = inner_columns(compiler, report, &inner, &narrowed)?;
    let shared: Vec<String> = shared_models(catalog, &read)
        .into_iter()
        .filter(|m| widths.contains_key(m))
        .collect();
    let over_shared = reached_by
        .into_iter()
        .filter(|(m, reached)| shared.contains(m) || reached.iter().any(|r| shared.contains(r)))
        .map(|(m, _)| m)
        .collect();
    Ok(PeriodModels {
        compiler,
        label,
        narrowed,
        waves: in_waves(catalog, &shared),
        widths,
        over_shared,
    })
}

/// The models that two or more models read under the models blocks read (the per-entity
/// facts) in every period the run reads (`PeriodModels::waves`), computed once, in memory,
/// with only the columns read, as tasks of the run: wave by wave, every period's side by
/// side, so that one period's small models run beside another's big ones. Not
/// `how.local`: none, the models stay plans inlined in every block's plan.
struct SharedWaves {
    /// The waves in all (of the period with the most).
    waves: usize,
    /// The next wave to start.
    next: usize,
    /// The models of the wave started that are not kept yet.
    computing: usize,
    /// Each model started, by period and name: its whole schema (what it is not computed
    /// with reads as typed nulls).
    schemas: std::collections::HashMap<(usize, String), datafusion::common::DFSchemaRef>,
}

impl SharedWaves {
    fn of(periods: &[PeriodModels<'_>], how: Executing) -> SharedWaves {
        SharedWaves {
            waves: match how.local {
                true => periods.iter().map(|p| p.waves.len()).max().unwrap_or(0),
                false => 0,
            },
            next: 0,
            computing: 0,
            schemas: Default::default(),
        }
    }

    /// Every shared model is kept (or there are none).
    fn all_kept(&self) -> bool {
        self.next >= self.waves && self.computing == 0
    }

    /// The tasks computing the next wave's models, planned over the frames in `keep` (the
    /// models computed so far); they ask for their slots before any model blocks read.
    fn start_next(
        &mut self,
        report: &Report,
        periods: &[PeriodModels<'_>],
        keep: &[Vec<(String, bool)>],
        slots: &Slots,
    ) -> Result<Vec<Task>, ReportError> {
        let wave = self.next;
        self.next += 1;
        let mut tasks: Vec<Task> = Vec::new();
        for (at, period) in periods.iter().enumerate() {
            let Some(models) = period.waves.get(wave) else {
                continue;
            };
            period.compiler.forget_frames_except(&keep[at]);
            for m in models {
                let full = period.compiler.model_frame(m, false, &mut Vec::new())?;
                self.schemas
                    .insert((at, m.clone()), Arc::new(full.schema().clone()));
                let frame = only_columns(full, m, &period.widths[m])
                    .map_err(|e| model_error(report.id(), m, e))?;
                let work = slots.clone().run(SHARED_RANK, in_memory(frame, m.clone()));
                tasks.push(Box::pin(async move {
                    let ((m, rows), seconds) = work.await;
                    Done::Shared(at, m, Box::new(rows), seconds)
                }));
            }
        }
        self.computing = tasks.len();
        Ok(tasks)
    }

    /// Hands shared model `m` of period `at`, computed, to its period's compiler (and to
    /// `keep`), for the models over it.
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &mut self,
        report: &Report,
        periods: &[PeriodModels<'_>],
        keep: &mut [Vec<(String, bool)>],
        at: usize,
        m: &str,
        rows: datafusion::error::Result<DataFrame>,
        seconds: f64,
        timings: &mut Stopwatch,
    ) -> Result<(), ReportError> {
        self.computing -= 1;
        let period = &periods[at];
        let rows = rows.map_err(|e| model_error(report.id(), m, e))?;
        let schema = &self.schemas[&(at, m.to_string())];
        let frame = crate::compile::unread_as_nulls(rows, m, schema)
            .map_err(|e| model_error(report.id(), m, e))?;
        period.compiler.set_frame(m, false, frame);
        keep[at].push((m.to_string(), false));
        timings
            .laps
            .push((format!("model {m}{}", period.label), seconds));
        Ok(())
    }
}

/// The rank of the plans of shared models: before every other's, for the models over them
/// wait for them.
const SHARED_RANK: usize = 0;

/// The models blocks read, of every period, each with its period's index.
fn read_by_blocks<'p>(
    periods: &'p [PeriodModels<'_>],
) -> impl Iterator<Item = (usize, &'p Narrowed)> {
    periods
        .iter()
        .enumerate()
        .flat_map(|(at, period)| period.narrowed.iter().map(move |n| (at, n)))
}

/// A model's rows being computed, with its name and the seconds it took.
type ModelWork = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = ((String, datafusion::error::Result<DataFrame>), f64)>
            + Send,
    >,
>;

/// The models blocks read, each either computed as rows (`work`, for the blocks to share)
/// or left a plan that streams into the one block that reads it.
struct BlockModels {
    /// Each model computed as rows, with what it is kept for in `kept_for`, in the same order.
    work: Vec<ModelWork>,
    kept_for: Vec<KeptFor>,
    /// The blocks that compute a model in their own plan (the one block that reads it,
    /// once): compiled again over the model's plan.
    streaming: Vec<usize>,
}

/// What a model computed as rows is kept for.
struct KeptFor {
    /// Its period, by index.
    period: usize,
    /// The one block it is kept for (its `where` applied), or none: for every block.
    reader: Option<usize>,
    /// How many columns it has.
    columns: usize,
    /// The blocks that read it: each runs once it, and every other model it reads, is kept.
    scanned_by: std::collections::BTreeSet<usize>,
}

/// Makes the models blocks read that `now` picks, of each period (`periods`; the frames
/// to plan them over in `keep`, the models computed so far), ready to compute: narrowed,
/// and as rows only where two or more of a block's plans, or two or more blocks, read
/// them. A model one block reads is kept as that block reads it (its `where` applied, for
/// the block's groupings to share), and not at all when the block reads it once: the rows
/// then stream into the block's aggregate — unless the block is `waiting` for other rows,
/// when the model would start only after that wait. Each model's frame, narrowed, goes
/// to `keep`. Not `how.local`: nothing to compute.
#[allow(clippy::too_many_arguments)]
fn block_models(
    report: &Report,
    periods: &[PeriodModels<'_>],
    keep: &mut [Vec<(String, bool)>],
    now: impl Fn(usize, &Narrowed) -> bool,
    waiting: &std::collections::HashSet<usize>,
    how: Executing,
    slots: &Slots,
    timings: &mut Stopwatch,
) -> Result<BlockModels, ReportError> {
    let mut out = BlockModels {
        work: Vec::new(),
        kept_for: Vec::new(),
        streaming: Vec::new(),
    };
    if !how.local {
        return Ok(out);
    }
    for (at, period) in periods.iter().enumerate() {
        period.compiler.forget_frames_except(&keep[at]);
    }
    // Each model's plan over the models kept, none over another's: side by side.
    let models: Vec<(usize, &Narrowed)> = read_by_blocks(periods)
        .filter(|(at, n)| now(*at, n))
        .collect();
    for (at, n) in &models {
        keep[*at].push((n.model.clone(), true));
    }
    let planned = in_parallel(models, |(at, n)| {
        let (compiler, m) = (periods[at].compiler, &n.model);
        let (frame, seconds) = timed_now(|| narrowed_frame(compiler, report, m, true, &n.columns));
        compiler.set_frame(m, true, frame?);
        // Rows to compute (and the one block they are kept for), or the block it streams into.
        let rows = match n.only_reader() {
            Some(b) if n.streams_into() == Some(b) && !waiting.contains(&b) => Err(b),
            Some(b) => Ok((compiler.block_input(report, b, m, None)?, Some(b))),
            None => Ok((compiler.model_frame(m, true, &mut Vec::new())?, None)),
        };
        Ok::<_, ReportError>((at, n, rows, seconds))
    });
    let mut computed = Vec::new();
    for model in planned {
        let (at, n, rows, seconds) = model?;
        let (m, columns) = (&n.model, n.columns.len());
        let (rows, reader) = match rows {
            Ok(rows) => rows,
            Err(b) => {
                let (label, block) = (&periods[at].label, &report.spec.blocks[b].id);
                timings.laps.push((
                    format!(
                        "model {m}{label} ({columns} columns, planned, streamed into block {block})"
                    ),
                    seconds,
                ));
                out.streaming.push(b);
                continue;
            }
        };
        let nodes = plan_nodes(&rows);
        computed.push((
            rows,
            m,
            nodes,
            KeptFor {
                period: at,
                reader,
                columns,
                scanned_by: n.scans.iter().copied().collect(),
            },
        ));
    }
    // The biggest plans first: blocks wait for every model they read, and the smaller
    // ones fit beside the biggest on the other cores.
    computed.sort_by_key(|(_, _, nodes, _)| std::cmp::Reverse(*nodes));
    for (rank, (rows, m, _, kept)) in computed.into_iter().enumerate() {
        out.work.push(Box::pin(
            slots
                .clone()
                .run(SHARED_RANK + 1 + rank, in_memory(rows, m.clone())),
        ));
        out.kept_for.push(kept);
    }
    Ok(out)
}

/// How many nodes `frame`'s plan has: at small data a plan's time is mostly planning,
/// which grows with them.
fn plan_nodes(frame: &DataFrame) -> usize {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut nodes = 0;
    // Counting never fails: the walk's `Result` is always `Ok`.
    let _ = frame.logical_plan().apply(|_| {
        nodes += 1;
        Ok(TreeNodeRecursion::Continue)
    });
    nodes
}

/// Spawns `models`' work on `running`, each task tagged with its index in `kept_for` (to
/// which what each is kept for is added), and counts each in `pending` for every block
/// that reads it. Returns how many were spawned.
fn spawn_models(
    models: BlockModels,
    running: &mut tokio::task::JoinSet<Done>,
    kept_for: &mut Vec<KeptFor>,
    pending: &mut std::collections::HashMap<usize, usize>,
) -> usize {
    let spawned = models.work.len();
    for (work, kept) in models.work.into_iter().zip(models.kept_for) {
        for b in &kept.scanned_by {
            *pending.entry(*b).or_default() += 1;
        }
        let k = kept_for.len();
        kept_for.push(kept);
        running.spawn(async move {
            let ((m, rows), seconds) = work.await;
            Done::Model(k, m, Box::new(rows), seconds)
        });
    }
    spawned
}

/// Hands a computed model's rows to its period's compiler, for the blocks to read.
fn keep_model(
    report: &Report,
    periods: &[PeriodModels<'_>],
    kept: &KeptFor,
    m: &str,
    rows: datafusion::error::Result<DataFrame>,
    seconds: f64,
    timings: &mut Stopwatch,
) -> Result<(), ReportError> {
    let period = &periods[kept.period];
    let rows = rows.map_err(|e| model_error(report.id(), m, e))?;
    let what = match kept.reader {
        Some(b) => {
            period.compiler.set_block_input(m, b, rows);
            format!(" for block {}", report.spec.blocks[b].id)
        }
        None => {
            period.compiler.set_frame(m, true, rows);
            String::new()
        }
    };
    timings.laps.push((
        format!("model {m}{} ({} columns){what}", period.label, kept.columns),
        seconds,
    ));
    Ok(())
}

/// Forgets the shared models' rows once every model over them is kept: needed no more
/// (a streamed model still holds what it reads).
fn forget_shared_models(periods: &[PeriodModels<'_>]) {
    for period in periods {
        let read_by_blocks: Vec<(String, bool)> = period
            .narrowed
            .iter()
            .map(|n| (n.model.clone(), true))
            .collect();
        period.compiler.forget_frames_except(&read_by_blocks);
    }
}

/// What one of the run's tasks gave: a shared model's rows (by its period and name), a
/// model's rows (by its index in the run's `KeptFor`s, and its name), or a block's result;
/// with its seconds.
enum Done {
    Shared(
        usize,
        String,
        Box<datafusion::error::Result<DataFrame>>,
        f64,
    ),
    Model(
        usize,
        String,
        Box<datafusion::error::Result<DataFrame>>,
        f64,
    ),
    Block(usize, Box<Result<BlockResult, ReportError>>, f64),
}

/// A model or a block being computed.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send>>;

/// A block's result by its index, with its seconds.
type FinishedBlock = (usize, Result<BlockResult, ReportError>, f64);

/// Each block's time (of those that ran without error) to `timings`.
fn lap_blocks(timings: &mut Stopwatch, blocks: &[FinishedBlock]) {
    for (_, block, seconds) in blocks {
        if let Ok(b) = block {
            timings.laps.push((format!("block {}", b.id), *seconds));
        }
    }
}

/// The blocks `blocks` (by index, compiled and optimized by the analysis) ready to run:
/// each plan re-pointed at the models as computed, so that it is only physically planned
/// — a block that computes a model in its own plan (`streaming`) gets the model's plan,
/// and is optimized again; a block that cannot be re-pointed, and every block on a
/// remote engine, compiled again over the models as they are now. The longest first:
/// those that compute a model. Returns them with how many were planned by the analysis.
#[allow(clippy::type_complexity)]
fn blocks_to_run<'a>(
    blocks: Vec<(usize, CompiledBlock, Option<DataFrame>)>,
    report: &Report,
    compiler: &Compiler<'a>,
    made: &[(usize, Arc<Compiler<'a>>)],
    streaming: &[usize],
    how: Executing,
) -> Result<(Vec<(usize, CompiledBlock, Option<DataFrame>)>, usize), ReportError> {
    let planned = planned_state(compiler.state());
    let mut compiled = Vec::new();
    let mut again = Vec::new();
    for (i, block, compared) in blocks {
        if !how.local {
            again.push(i);
            continue;
        }
        // A model streamed into the block is its plan in place of the stand-in: the
        // whole is optimized again, for the model's plan to be pruned to what is read.
        let streamed = streaming.contains(&i);
        let state = match streamed {
            true => compiler.state(),
            false => &planned,
        };
        let repointed = map_plans(block, compared, |df| {
            repoint(df.logical_plan(), i, compiler, made, streamed)
                .map(|plan| DataFrame::new(state.clone(), plan))
        });
        match repointed {
            Ok((block, compared)) => compiled.push((i, block, compared)),
            Err(_) => again.push(i),
        }
    }
    let reused = compiled.len();
    for block in in_parallel(again, |i| compile_block(compiler, report, i)) {
        compiled.push(block?);
    }
    compiled.sort_by_key(|(i, _, _)| !streaming.contains(i));
    Ok((compiled, reused))
}

/// A task running each of `blocks` (compiled, with its rows over the period it is
/// compared with).
fn block_tasks(
    blocks: Vec<(usize, CompiledBlock, Option<DataFrame>)>,
    report: &Report,
    req: &RunRequest,
    slots: &Slots,
) -> Vec<Task> {
    blocks
        .into_iter()
        .map(|(i, compiled, previous)| -> Task {
            let spec = report.spec.blocks[i].clone();
            let report_id = report.id().to_string();
            let previous = spec
                .compare
                .zip(previous)
                .map(|(shift, rows)| (shift, req.params.shifted(shift).info(), rows));
            let slots = slots.clone();
            Box::pin(async move {
                let (block, seconds) = run_block(&report_id, spec, compiled, previous, slots).await;
                Done::Block(i, Box::new(block), seconds)
            })
        })
        .collect()
}

/// Model `model`'s frame (`filtered`: as blocks read it) with only `columns`, under the
/// model's name.
fn narrowed_frame(
    compiler: &Compiler<'_>,
    report: &Report,
    model: &str,
    filtered: bool,
    columns: &[String],
) -> Result<datafusion::prelude::DataFrame, ReportError> {
    let df = compiler.model_frame(model, filtered, &mut Vec::new())?;
    only_columns(df, model, columns).map_err(|e| model_error(report.id(), model, e))
}

/// `df` (model `model`'s frame) with only `columns`, under the model's name.
fn only_columns(
    df: datafusion::prelude::DataFrame,
    model: &str,
    columns: &[String],
) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    let keep: Vec<Expr> = columns
        .iter()
        .map(|c| Expr::Column(Column::new(Some(model), c)))
        .collect();
    df.select(keep)?.alias(model)
}

/// The columns of each of the `inner` models (the models the `narrowed` ones read, and
/// the models those read; dependencies first) that the models over them read, for those
/// read at all. Found as the blocks' columns are (`columns_read`: the plans compiled over
/// stand-ins and pruned). Each inner model is then narrowed to them (`narrow_inner`): its
/// joins that bring none of them are left out — `clients`' `crm_unmatched` reads `deals`
/// without the activity facts — and a shared one is computed and kept with those columns
/// only (`entity_activity` keeps 5 columns of the activities, not all 13).
fn inner_columns(
    compiler: &Compiler<'_>,
    report: &Report,
    inner: &[String],
    narrowed: &[Narrowed],
) -> Result<std::collections::HashMap<String, Vec<String>>, ReportError> {
    let mut out = std::collections::HashMap::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut real = Vec::new();
    for m in inner {
        real.push((m.clone(), compiler.model_frame(m, false, &mut Vec::new())?));
    }
    let stand_ins: Vec<(String, bool)> = inner.iter().map(|m| (m.clone(), false)).collect();
    compiler.forget_frames_except(&[]);
    for (m, df) in &real {
        compiler.set_frame(m, false, stand_in(compiler, report, m, df)?);
    }
    let mut read = ColumnsRead::of(inner);
    let mut scanned: Vec<String> = Vec::new();
    let frames = narrowed
        .iter()
        .map(|n| narrowed_frame(compiler, report, &n.model, true, &n.columns))
        .collect::<Result<Vec<_>, _>>()?;
    scanned.extend(
        read.add_all(compiler, report, frames)?
            .into_iter()
            .flatten(),
    );
    // Readers first: a model's columns are all known once every model over it is added;
    // it is then narrowed, built over the stand-ins of the ones it reads, and added too.
    for (m, df) in real.iter().rev() {
        if !scanned.contains(m) {
            continue;
        }
        let columns = read.of_frame(m, df);
        compiler.narrow_inner(m, &columns, Arc::new(df.schema().clone()));
        let others: Vec<(String, bool)> =
            stand_ins.iter().filter(|(s, _)| s != m).cloned().collect();
        compiler.forget_frames_except(&others);
        let df_read = narrowed_frame(compiler, report, m, false, &columns)?;
        scanned.extend(read.add(compiler, report, df_read)?);
        compiler.set_frame(m, false, stand_in(compiler, report, m, df)?);
        out.insert(m.clone(), columns);
    }
    compiler.forget_frames_except(&[]);
    Ok(out)
}

/// A frame's rows computed and kept in memory, named `model` for the plans over them;
/// returned with the name.
async fn in_memory(
    frame: datafusion::prelude::DataFrame,
    model: String,
) -> (
    String,
    datafusion::error::Result<datafusion::prelude::DataFrame>,
) {
    let rows = async { kept_rows(frame).await?.alias(&model) }.await;
    (model, rows)
}

/// `frame`'s rows computed and held in memory, as a frame that reads them. Text read from
/// a store is a view into the Parquet pages it was decoded from, and a kept view would
/// hold its whole page: kept rows get text of their own where they use less than half of
/// the buffers they point into.
async fn kept_rows(
    frame: datafusion::prelude::DataFrame,
) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlanBuilder, UNNAMED_TABLE};
    let (state, plan) = frame.into_parts();
    let physical = state.create_physical_plan(&plan).await?;
    // The rows keep the columns as the plan declares them: a column the physical plan
    // knows has no nulls is still nullable in the plan, and the blocks planned over the
    // model's stand-in (`repoint`) read it as declared.
    let declared = Arc::new(plan.schema().as_arrow().clone());
    let schema = match declared.contains(&physical.schema()) {
        true => declared,
        false => physical.schema(),
    };
    let partitions =
        datafusion::physical_plan::collect_partitioned(physical, state.task_ctx()).await?;
    let partitions = partitions
        .into_iter()
        .map(|batches| {
            batches
                .iter()
                .map(|b| Ok(own_text(b)?.with_schema(schema.clone())?))
                .collect()
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let table = MemTable::try_new(schema, partitions)?;
    let scan = LogicalPlanBuilder::scan(UNNAMED_TABLE, provider_as_source(Arc::new(table)), None)?
        .build()?;
    Ok(datafusion::prelude::DataFrame::new(state, scan))
}

/// `batch` with each text view column that uses less than half of the buffers it points
/// into copied into buffers of its own (`kept_rows`).
fn own_text(
    batch: &arrow::record_batch::RecordBatch,
) -> datafusion::error::Result<arrow::record_batch::RecordBatch> {
    use arrow::array::AsArray;
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            Some(v) => {
                let held: usize = v.data_buffers().iter().map(|b| b.capacity()).sum();
                if v.total_buffer_bytes_used() * 2 < held {
                    Arc::new(v.gc()) as arrow::array::ArrayRef
                } else {
                    c.clone()
                }
            }
            None => c.clone(),
        })
        .collect();
    Ok(arrow::record_batch::RecordBatch::try_new(
        batch.schema(),
        columns,
    )?)
}

/// `work`'s output with the seconds it took.
fn timed_now<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = std::time::Instant::now();
    let out = work();
    (out, started.elapsed().as_secs_f64())
}

/// `work`'s output with the seconds it took.
async fn timed<T>(work: impl std::future::Future<Output = T>) -> (T, f64) {
    let started = std::time::Instant::now();
    let out = work.await;
    (out, started.elapsed().as_secs_f64())
}

/// The plans a run executes at a time: one per core (at small data a plan's time is
/// mostly planning, which runs on one core), one in all under a memory bound. Every plan
/// a run executes — a model's rows, each of a block's rows, totals, child levels and
/// compared period — takes a slot, so that a block's plans run side by side too. A free
/// slot goes to the plan of the lowest rank waiting, then to the one that asked first:
/// tasks start in no fixed order, and the biggest model, which blocks wait for, must not
/// queue behind small ones that the other cores could take beside it.
#[derive(Clone)]
struct Slots(Arc<std::sync::Mutex<SlotQueue>>);

/// The slots free, and the plans waiting for one by rank and order of asking.
struct SlotQueue {
    free: usize,
    /// How many plans have asked so far.
    asked: u64,
    waiting: std::collections::BTreeMap<(usize, u64), tokio::sync::oneshot::Sender<Slot>>,
}

/// A slot held: handed to the next plan waiting when dropped, or freed.
struct Slot(Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        let next = {
            let mut queue = self.0.lock();
            match queue.waiting.pop_first() {
                Some((_, next)) => next,
                None => {
                    queue.free += 1;
                    return;
                }
            }
        };
        // A plan that stopped waiting (its run was dropped) drops the slot it is sent, which
        // hands it on in turn.
        let _ = next.send(Slot(self.0.clone()));
    }
}

/// The rank of the plans of blocks: after every model's.
const BLOCK_RANK: usize = usize::MAX;

impl Slots {
    fn new(slots: usize) -> Slots {
        Slots(Arc::new(std::sync::Mutex::new(SlotQueue {
            free: slots.max(1),
            asked: 0,
            waiting: Default::default(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotQueue> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `work` once a slot is free and no plan of a lower rank (or of the same rank, asked
    /// earlier) waits, holding the slot, with the seconds it ran (the wait not counted).
    /// The plan asks for its slot here, not when first polled: plans asked for in rank
    /// order take the free slots in that order, whichever of their tasks starts first.
    fn run<T>(
        self,
        rank: usize,
        work: impl std::future::Future<Output = T>,
    ) -> impl std::future::Future<Output = (T, f64)> {
        let asked = {
            let mut queue = self.lock();
            if queue.free > 0 {
                queue.free -= 1;
                Ok(Slot(self.clone()))
            } else {
                let (give, given) = tokio::sync::oneshot::channel();
                queue.asked += 1;
                let asked = queue.asked;
                queue.waiting.insert((rank, asked), give);
                Err(given)
            }
        };
        async move {
            let _slot = match asked {
                Ok(slot) => slot,
                // A waiting plan leaves the queue only when a slot is sent to it.
                Err(given) => given
                    .await
                    .expect("a slot is sent to each plan taken from the queue"),
            };
            timed(work).await
        }
    }
}

/// Runs each of `work` as a task of its own; their outputs in order.
async fn spawned<T: Send + 'static>(
    work: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let running: Vec<_> = work.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(running.len());
    for task in running {
        match task.await {
            Ok(done) => out.push(done),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// `f` of each of `items`, in order, on as many threads as there are cores (for CPU-bound
/// work outside the async runtime's tasks: planning that borrows the run's compiler).
pub(crate) fn in_parallel<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = parallelism().min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    // Each thread takes the next item when done with its last: plans differ in size
    // tenfold, and a thread handed a fixed share could be left with the big ones.
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let (f, queue) = (&f, &queue);
    let work = move || -> Vec<(usize, U)> {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            match next {
                Some((i, item)) => done.push((i, f(item))),
                None => return done,
            }
        }
    };
    let mut out: Vec<(usize, U)> = std::thread::scope(|scope| {
        // Planning recurses as deep as an expression nests: each thread gets the stack a
        // main thread has.
        let running: Vec<_> = (1..threads)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, work)
                    .expect("the system starts a thread")
            })
            .collect();
        let mut out = work();
        for t in running {
            match t.join() {
                Ok(done) => out.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, u)| u).collect()
}

/// `models` (dependencies first) in waves: each model after every wave with a model it
/// reads, directly or through others.
fn in_waves(catalog: &Catalog, models: &[String]) -> Vec<Vec<String>> {
    let mut waves: Vec<Vec<String>> = Vec::new();
    let mut wave_of: std::collections::HashMap<&str, usize> = Default::default();
    for m in models {
        let reads = reachable_models(catalog, vec![m.clone()]);
        let wave = reads
            .iter()
            .filter(|r| *r != m)
            .filter_map(|r| wave_of.get(r.as_str()))
            .map(|w| w + 1)
            .max()
            .unwrap_or(0);
        wave_of.insert(m, wave);
        if waves.len() <= wave {
            waves.resize(wave + 1, Vec::new());
        }
        waves[wave].push(m.clone());
    }
    waves
}

/// Hands the memory a computation freed back to the system. glibc's allocator keeps freed
/// memory in its per-thread arenas, so without this a run's resident size only grows from
/// model to model: each next model's joins and sorts come on top of every earlier one's
/// garbage (`sales_dynamics` at 1 M deals: ~0.5 GB).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The columns of each model the run's blocks read, in the run's period and in each
/// other period they read (`variants`): every block is compiled over a stand-in of each
/// model (an empty table of its columns; one per period) and optimized, and DataFusion's
/// projection pushdown tells which columns each stand-in's scan keeps. The models are
/// then computed with those columns only, so the derived columns, joins and window
/// functions no block reaches are never planned. The optimized blocks come back too, for
/// the run to execute once re-pointed at the computed models (`repoint`).
fn columns_read(
    compiler: &Compiler<'_>,
    variants: &crate::compile::Variants<'_>,
    catalog: &Catalog,
    report: &Report,
    blocks: &[usize],
) -> Result<RunColumns, ReportError> {
    let models: Vec<String> = direct_models(report, blocks)
        .into_iter()
        .filter(|m| catalog.models.contains_key(m))
        .collect();
    // Only the schemas of the models blocks read are needed here: each model below them
    // is built over stand-ins of the ones it reads, dependencies first, instead of every
    // model planning the whole tree under it.
    let order = dependency_order(catalog, &models);
    for m in &order {
        // A model blocks read and no other model reads is only read filtered, below.
        if models.contains(m) && !order.iter().any(|r| reads(catalog, r, m)) {
            continue;
        }
        let df = compiler.model_frame(m, false, &mut Vec::new())?;
        compiler.set_frame(m, false, stand_in(compiler, report, m, &df)?);
    }
    let mut real = Vec::new();
    let mut schemas = std::collections::HashMap::new();
    // Each over the stand-ins of the models it reads, none over another: side by side.
    let built = in_parallel(models.clone(), |m| {
        let df = compiler.model_frame(&m, true, &mut Vec::new())?;
        let stand_in = stand_in(compiler, report, &m, &df)?;
        Ok::<_, ReportError>((m, df, stand_in))
    });
    for model in built {
        let (m, df, stand_in) = model?;
        compiler.set_frame(&m, true, stand_in);
        schemas.insert(m.clone(), Arc::new(df.schema().as_arrow().clone()));
        real.push((m, df));
    }
    // Each block compiled and its plans optimized as they will run, blocks side by side
    // on the cores (planning is most of a small run), one work item per block so that a
    // core that finishes a block takes the next instead of waiting for the others to
    // compile. What each scan of a stand-in keeps is what the block reads of that model,
    // and the plans, re-pointed at the models once they are computed (`repoint`), are
    // what the blocks execute.
    let state = &analysis_state(compiler.state());
    let compiled = variants.with_stand_ins(schemas, || {
        in_parallel(blocks.to_vec(), |i| {
            let (i, block, compared) = compile_block(compiler, report, i)?;
            let optimized: Vec<_> = plans_of(&block, compared.as_ref())
                .map(|df| state.optimize(df.logical_plan()))
                .collect();
            Ok::<_, ReportError>((i, block, compared, optimized))
        })
    });
    let made = variants.made();
    let mut tables = models.clone();
    for (v, _) in &made {
        tables.extend(models.iter().map(|m| variant_stand_in(m, *v)));
    }
    let mut read = ColumnsRead::of(&tables);
    let mut scans: std::collections::HashMap<String, Vec<usize>> = Default::default();
    let mut blocks_optimized = Vec::new();
    for block in compiled {
        let (i, block, compared, optimized) = block?;
        let mut plans = Vec::new();
        for plan in optimized {
            let plan = plan.map_err(|e| execution_error(report.id(), COLUMNS_READ, e))?;
            for scanned in read.add_pruned(report, &plan)? {
                scans.entry(scanned).or_default().push(i);
            }
            plans.push(plan);
        }
        let mut plans = plans.into_iter();
        let (block, compared) = map_plans(block, compared, |df| {
            let plan = plans
                .next()
                .expect("one optimized plan per plan of the block");
            Ok::<_, ReportError>(DataFrame::new(df.into_parts().0, plan))
        })?;
        blocks_optimized.push((i, block, compared));
    }
    // Back to the real frames, for the caller to narrow and compute.
    let mut out = RunColumns {
        main: Vec::new(),
        variants: Default::default(),
        blocks: blocks_optimized,
    };
    for (v, _) in &made {
        for (m, df) in &real {
            let table = variant_stand_in(m, *v);
            // A model another period's blocks never scan is not computed for it.
            let Some(scans) = scans.remove(&table) else {
                continue;
            };
            out.variants.entry(*v).or_default().push(Narrowed {
                model: m.clone(),
                columns: read.of_frame(&table, df),
                scans,
            });
        }
    }
    for (m, df) in real {
        let columns = read.of_frame(&m, &df);
        compiler.set_frame(&m, true, df);
        let scans = scans.remove(&m).unwrap_or_default();
        out.main.push(Narrowed {
            model: m,
            columns,
            scans,
        });
    }
    Ok(out)
}

/// The models a run's blocks read, with the columns read of them: in the run's period,
/// and per other period they read (by the index of its variant compiler).
struct RunColumns {
    main: Vec<Narrowed>,
    variants: std::collections::HashMap<usize, Vec<Narrowed>>,
    /// Each block (by index) compiled over the stand-ins and optimized, with its rows
    /// over the period it is compared with.
    blocks: Vec<(usize, CompiledBlock, Option<DataFrame>)>,
}

/// Block `i` compiled, with its rows over the period it is compared with.
fn compile_block(
    compiler: &Compiler<'_>,
    report: &Report,
    i: usize,
) -> Result<(usize, CompiledBlock, Option<DataFrame>), ReportError> {
    let block = compiler.block(report, i)?;
    let compared = match report.spec.blocks[i].compare {
        Some(shift) => Some(compiler.shifted(shift).block(report, i)?.rows),
        None => None,
    };
    Ok((i, block, compared))
}

/// A block's plans, in the order `map_plans` maps them: its rows, totals, children's rows
/// and its rows over the period it is compared with.
fn plans_of<'b>(
    block: &'b CompiledBlock,
    compared: Option<&'b DataFrame>,
) -> impl Iterator<Item = &'b DataFrame> {
    std::iter::once(&block.rows)
        .chain(block.totals.as_ref())
        .chain(block.children.iter().map(|c| &c.rows))
        .chain(compared)
}

/// A block with each of its plans (in `plans_of`'s order) replaced by `f` of it.
fn map_plans<E>(
    mut block: CompiledBlock,
    compared: Option<DataFrame>,
    mut f: impl FnMut(DataFrame) -> Result<DataFrame, E>,
) -> Result<(CompiledBlock, Option<DataFrame>), E> {
    block.rows = f(block.rows)?;
    block.totals = block.totals.map(&mut f).transpose()?;
    for child in &mut block.children {
        child.rows = f(child.rows.clone())?;
    }
    let compared = compared.map(&mut f).transpose()?;
    Ok((block, compared))
}

/// `plan` (block `block`'s, optimized over stand-ins) reading the rows the run computed
/// instead: each scan of a stand-in becomes a scan of its model's rows (of its period,
/// as kept for the block), with the same columns — or, with `streamed`, the model's plan
/// where it was not computed as rows (it streams into the block), for the caller to
/// optimize. An error when a model is a plan and not `streamed`, or when what replaces
/// a scan differs from it in a column's type.
fn repoint<'a>(
    plan: &datafusion::logical_expr::LogicalPlan,
    block: usize,
    compiler: &Compiler<'a>,
    made: &[(usize, Arc<Compiler<'a>>)],
    streamed: bool,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::datasource::source_as_provider;
    use datafusion::error::DataFusionError;
    use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, TableScanBuilder};
    let not_rows = |what: String| DataFusionError::Plan(format!("not re-pointed: {what}"));
    plan.clone()
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let provider = source_as_provider(&scan.source)?;
            let any: &dyn std::any::Any = provider.as_ref();
            let Some(stand_in) = any.downcast_ref::<crate::compile::StandIn>() else {
                return Ok(Transformed::no(node));
            };
            let holder = match stand_in.variant {
                None => compiler,
                Some(v) => match made.iter().find(|(i, _)| *i == v) {
                    Some((_, c)) => c.as_ref(),
                    None => return Err(not_rows(format!("no period {v}"))),
                },
            };
            let model = &stand_in.model;
            let held = holder
                .held_frame(model, block)
                .ok_or_else(|| not_rows(format!("{model} not held")))?;
            // Computed rows are a scan of them under the model's name.
            let rows = match held.logical_plan() {
                LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
                    LogicalPlan::TableScan(t)
                        if t.projection.is_none() && t.filters.is_empty() && t.fetch.is_none() =>
                    {
                        Some(t.source.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            let ours = provider.schema();
            let wanted: Vec<usize> = match &scan.projection {
                Some(p) => p.clone(),
                None => (0..ours.fields().len()).collect(),
            };
            let Some(rows) = rows else {
                if !streamed {
                    return Err(not_rows(format!("{model} is a plan")));
                }
                // The model's plan, its columns the scan's under the scan's name.
                let columns: Vec<Expr> = wanted
                    .iter()
                    .map(|&k| Expr::Column(Column::new(Some(model.as_str()), ours.field(k).name())))
                    .collect();
                let mut inlined = LogicalPlanBuilder::from(held.logical_plan().clone())
                    .project(columns)?
                    .alias(scan.table_name.clone())?;
                if let Some(all) =
                    datafusion::logical_expr::utils::conjunction(scan.filters.clone())
                {
                    inlined = inlined.filter(all)?;
                }
                if let Some(fetch) = scan.fetch {
                    inlined = inlined.limit(0, Some(fetch))?;
                }
                let inlined = inlined.build()?;
                if inlined.schema() != &scan.projected_schema {
                    return Err(not_rows(format!(
                        "{model}'s plan differs in a column's type"
                    )));
                }
                return Ok(Transformed::yes(inlined));
            };
            let theirs = rows.schema();
            let projection = wanted
                .iter()
                .map(|&k| theirs.index_of(ours.field(k).name()))
                .collect::<Result<Vec<_>, _>>()?;
            let scan2 = TableScanBuilder::new(scan.table_name.clone(), rows)
                .with_projection(Some(projection))
                .with_filters(scan.filters.clone())
                .with_fetch(scan.fetch)
                .build()?;
            if scan2.projected_schema != scan.projected_schema {
                return Err(not_rows(format!(
                    "{model}'s rows differ in a column's type"
                )));
            }
            Ok(Transformed::yes(LogicalPlan::TableScan(scan2)))
        })
        .map(|t| t.data)
}

/// The optimizer rules that tell which columns a plan reads: expressions simplified
/// (a setting's `case` folds to one branch) and projections pushed down to the scans.
/// The other rules would not read fewer columns; skipping them saves about a fifth of
/// this step (at 20 000 deals, `sales_plan`: 97 → 77 ms).
fn projection_pruning() -> datafusion::optimizer::Optimizer {
    use datafusion::optimizer::optimize_projections::OptimizeProjections;
    use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
    datafusion::optimizer::Optimizer::with_rules(vec![
        Arc::new(SimplifyExpressions::new()),
        Arc::new(OptimizeProjections::new()),
    ])
}

/// `df`'s plan, analyzed (types coerced) and pruned by `pruning`.
fn pruned(
    state: &datafusion::execution::SessionState,
    pruning: &datafusion::optimizer::Optimizer,
    df: datafusion::prelude::DataFrame,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    let plan = state.analyzer().execute_and_check(
        df.into_unoptimized_plan(),
        state.config_options(),
        |_, _| {},
    )?;
    pruning.optimize(plan, state, |_, _| {})
}

/// A model the run's blocks read, as they read it.
struct Narrowed {
    model: String,
    /// The columns any block reads.
    columns: Vec<String>,
    /// Per scan of the model in the blocks' plans, the block it is in.
    scans: Vec<usize>,
}

impl Narrowed {
    /// The one block that reads the model, if only one does.
    fn only_reader(&self) -> Option<usize> {
        let first = *self.scans.first()?;
        self.scans.iter().all(|&b| b == first).then_some(first)
    }

    /// The block that reads the model once, if one block does and no other.
    fn streams_into(&self) -> Option<usize> {
        self.only_reader().filter(|_| self.scans.len() == 1)
    }
}

/// A stand-in of `model` with `df`'s columns (`compile::stand_in`), its errors named.
fn stand_in(
    compiler: &Compiler<'_>,
    report: &Report,
    model: &str,
    df: &datafusion::prelude::DataFrame,
) -> Result<datafusion::prelude::DataFrame, ReportError> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    crate::compile::stand_in(compiler.state(), model, None, schema)
        .map_err(|e| model_error(report.id(), model, e))
}

/// The columns of stand-ins that plans read, as DataFusion's projection pushdown leaves
/// their scans.
struct ColumnsRead {
    /// Per stand-in (model name), the columns read so far.
    columns: std::collections::HashMap<String, std::collections::BTreeSet<String>>,
    pruning: datafusion::optimizer::Optimizer,
}

impl ColumnsRead {
    fn of(models: &[String]) -> Self {
        ColumnsRead {
            columns: models
                .iter()
                .map(|m| (m.clone(), Default::default()))
                .collect(),
            pruning: projection_pruning(),
        }
    }

    /// Adds the columns `df`'s plan reads of each stand-in; returns the stand-ins it
    /// scans, once per scan.
    fn add(
        &mut self,
        compiler: &Compiler<'_>,
        report: &Report,
        df: datafusion::prelude::DataFrame,
    ) -> Result<Vec<String>, ReportError> {
        let plan = pruned(compiler.state(), &self.pruning, df)
            .map_err(|e| execution_error(report.id(), COLUMNS_READ, e))?;
        self.add_pruned(report, &plan)
    }

    /// `add` for each of `dfs`, pruned side by side on the machine's cores (pruning is
    /// most of a small run's analysis).
    fn add_all(
        &mut self,
        compiler: &Compiler<'_>,
        report: &Report,
        dfs: Vec<datafusion::prelude::DataFrame>,
    ) -> Result<Vec<Vec<String>>, ReportError> {
        let pruning = &self.pruning;
        let plans = in_parallel(dfs, |df| pruned(compiler.state(), pruning, df));
        plans
            .into_iter()
            .map(|plan| {
                let plan = plan.map_err(|e| execution_error(report.id(), COLUMNS_READ, e))?;
                self.add_pruned(report, &plan)
            })
            .collect()
    }

    /// Adds the columns a pruned (or optimized) plan reads of each stand-in; returns the
    /// stand-ins it scans, once per scan.
    fn add_pruned(
        &mut self,
        report: &Report,
        plan: &datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<String>, ReportError> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::logical_expr::LogicalPlan;
        let failed = |e| execution_error(report.id(), COLUMNS_READ, e);
        let mut scanned = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && is_stand_in(scan)
                && let Some(cols) = self.columns.get_mut(scan.table_name.table())
            {
                cols.extend(
                    scan.projected_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone()),
                );
                scanned.push(scan.table_name.table().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(failed)?;
        Ok(scanned)
    }

    /// The columns of `df` (a model's real frame) read, in its order; one column when
    /// none is (a plan that only counts rows still needs the rows).
    fn of_frame(&self, model: &str, df: &datafusion::prelude::DataFrame) -> Vec<String> {
        let read = &self.columns[model];
        let mut cols: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| read.contains(c))
            .collect();
        if cols.is_empty()
            && let Some(f) = df.schema().fields().first()
        {
            cols.push(f.name().clone());
        }
        cols
    }
}

/// Whether `scan` reads a stand-in of a model (not a table of the same name).
fn is_stand_in(scan: &datafusion::logical_expr::TableScan) -> bool {
    datafusion::datasource::source_as_provider(&scan.source).is_ok_and(|p| {
        let any: &dyn std::any::Any = p.as_ref();
        any.is::<crate::compile::StandIn>()
    })
}

/// The filters the report's models accept, in first-seen order.
pub fn filters_of(catalog: &Catalog, report: &Report) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in models_of(catalog, report) {
        if let Some(model) = catalog.models.get(&m) {
            for f in model.spec.filters.keys() {
                if !out.contains(f) {
                    out.push(f.clone());
                }
            }
        }
    }
    out
}

/// Models read by two or more of the run's models, dependencies first: worth computing
/// once. (A model read by blocks directly is cached separately, with the run's filters.)
fn shared_models(catalog: &Catalog, direct: &[String]) -> Vec<String> {
    let reachable = reachable_models(catalog, direct.to_vec());
    let readers = |name: &str| reachable.iter().filter(|m| reads(catalog, m, name)).count();
    dependency_order(catalog, direct)
        .into_iter()
        .filter(|m| readers(m) >= 2)
        .collect()
}

/// Whether model `reader` reads model `model`.
fn reads(catalog: &Catalog, reader: &str, model: &str) -> bool {
    models_read(catalog, reader).contains(&model)
}

/// `direct` and every model they read, dependencies before their readers.
fn dependency_order(catalog: &Catalog, direct: &[String]) -> Vec<String> {
    fn visit(catalog: &Catalog, m: &str, seen: &mut Vec<String>, order: &mut Vec<String>) {
        if seen.iter().any(|s| s == m) {
            return;
        }
        seen.push(m.to_string());
        if !catalog.models.contains_key(m) {
            return;
        }
        for d in models_read(catalog, m) {
            visit(catalog, d, seen, order);
        }
        order.push(m.to_string());
    }
    let mut order = Vec::new();
    let mut seen = Vec::new();
    for m in direct {
        visit(catalog, m, &mut seen, &mut order);
    }
    order
}

/// The models blocks read directly (`from` and qualifiers), in first-use order.
fn direct_models(report: &Report, blocks: &[usize]) -> Vec<String> {
    // Names are found by the SQL parser alone: a session without functions will do, and
    // costs nothing to make (one with every function is a few milliseconds, per call).
    let state = datafusion::execution::SessionStateBuilder::new().build();
    let mut out: Vec<String> = Vec::new();
    for &i in blocks {
        for m in crate::compile::block_model_names(&state, &report.spec.blocks[i]) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Each block's measure definitions and optimized logical plan, as text.
pub async fn explain(
    catalog: &Catalog,
    source: &dyn TableSet,
    req: &RunRequest,
) -> Result<String, ReportError> {
    use std::fmt::Write;
    let p = prepare(catalog, source, req)?;
    let report = &p.report;
    let mut out = String::new();
    let _ = writeln!(out, "report {} — {}", report.id(), report.spec.title);
    let _ = writeln!(
        out,
        "period {} … {}, as of {}, time zone {}",
        req.params.from, req.params.to, req.params.as_of, req.params.timezone
    );
    for (name, value) in &p.parameters {
        let _ = writeln!(out, "parameter {name} = {value}");
    }
    for (name, value) in &p.settings {
        let _ = writeln!(out, "setting {name} = {value}");
    }
    for &i in &p.blocks {
        let spec = &report.spec.blocks[i];
        let compiled = p.compiler.block(report, i)?;
        let _ = writeln!(out, "\n== block {} — {}", spec.id, spec.title);
        for c in &compiled.columns {
            let _ = writeln!(
                out,
                "  {} ({}, {}): {}",
                c.name,
                c.label,
                c.ty.name(),
                c.definition
            );
            if let Some(d) = &c.description {
                let _ = writeln!(out, "      {d}");
            }
        }
        let plan = compiled
            .rows
            .into_optimized_plan()
            .map_err(|e| execution_error(report.id(), &format!("block `{}`", spec.id), e))?;
        let _ = writeln!(out, "  plan:");
        for line in plan.display_indent().to_string().lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    Ok(out)
}

/// Compiles every block of every report and every model against empty canonical tables,
/// so that each definition is checked before anything runs. Collects all problems.
pub async fn check(catalog: &Catalog) -> Result<(), ReportError> {
    let reports: Vec<String> = catalog.reports.keys().cloned().collect();
    let models: Vec<String> = catalog.models.keys().cloned().collect();
    check_only(catalog, &reports, &models).await
}

/// `check` of the named reports and models only (those an edit touched).
pub async fn check_only(
    catalog: &Catalog,
    reports: &[String],
    models: &[String],
) -> Result<(), ReportError> {
    let empty = LazyTables::empty();
    // Plans over empty tables do not depend on the day: any fixed one keeps checks
    // reproducible.
    let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("a valid day");
    let params = RunParams::resolve(
        None,
        None,
        None,
        today,
        svodka_schema::values::default_zone(),
    )?;
    let mut problems = Vec::new();
    let mut collect = |r: Result<(), ReportError>| match r {
        Ok(()) => {}
        Err(ReportError::Invalid(mut d)) => problems.append(&mut d),
        Err(other) => problems.push(Diagnostic {
            file: String::new(),
            pos: Default::default(),
            context: String::new(),
            message: other.to_string(),
        }),
    };
    for id in reports {
        let req = RunRequest::new(id, params.clone());
        collect(check_report(catalog, &empty, &req).await);
    }
    for name in models {
        let check_one = || -> Result<(), ReportError> {
            let models = reachable_models(catalog, vec![name.clone()]);
            let mut bindings = Bindings::default();
            for (n, v) in params.bindings() {
                bindings.0.insert(n.to_string(), v);
            }
            for s in settings_of_models(catalog, &models, &format!("model `{name}`"))? {
                bindings.bind(&s.name, &s.default);
            }
            let compiler = Compiler::new(
                catalog,
                &empty,
                session(params.timezone, None).state(),
                params.clone(),
                bindings,
                vec![],
            );
            compiler.check_model(name)
        };
        collect(check_one());
    }
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ReportError::Invalid(problems))
    }
}

async fn check_report(
    catalog: &Catalog,
    source: &dyn TableSet,
    req: &RunRequest,
) -> Result<(), ReportError> {
    let p = prepare(catalog, source, req)?;
    let mut problems = Vec::new();
    for &i in &p.blocks {
        let spec = &p.report.spec.blocks[i];
        match p.compiler.block(&p.report, i) {
            Ok(compiled) => {
                // Building the physical plan runs the analyzer and optimizer too.
                for df in std::iter::once(compiled.rows).chain(compiled.totals) {
                    if let Err(e) = df.create_physical_plan().await {
                        problems.push(Diagnostic::at(
                            &p.report.src,
                            &crate::definition::index("blocks", i),
                            format!("report `{}`, block `{}`", p.report.id(), spec.id),
                            crate::expr::clean(&e.to_string()),
                        ));
                    }
                }
            }
            Err(ReportError::Invalid(mut d)) => problems.append(&mut d),
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ReportError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, StringViewArray};

    fn batch_of(text: StringViewArray) -> arrow::record_batch::RecordBatch {
        arrow::record_batch::RecordBatch::try_from_iter([("t", Arc::new(text) as _)]).unwrap()
    }

    fn held(batch: &arrow::record_batch::RecordBatch) -> usize {
        let text = batch.column(0).as_string_view();
        text.data_buffers().iter().map(|b| b.capacity()).sum()
    }

    #[test]
    fn kept_text_owns_its_bytes_where_it_uses_few_of_those_it_points_into() {
        let long: Vec<String> = (0..1000)
            .map(|i| format!("a value longer than twelve {i}"))
            .collect();
        let all = StringViewArray::from_iter_values(&long);
        // Three rows of a thousand: the kept rows get buffers of their own, same values.
        let few = batch_of(all.slice(10, 3));
        let kept = own_text(&few).unwrap();
        assert_eq!(kept.column(0).as_string_view().value(1), long[11]);
        assert_eq!(kept.column(0).len(), 3);
        assert!(
            held(&kept) < held(&few) / 10,
            "{} of {}",
            held(&kept),
            held(&few)
        );
        // Rows that use their buffers whole are kept as they are, without a copy.
        let whole = batch_of(all);
        let kept = own_text(&whole).unwrap();
        assert_eq!(
            kept.column(0).as_string_view().data_buffers()[0].as_ptr(),
            whole.column(0).as_string_view().data_buffers()[0].as_ptr()
        );
    }

    #[tokio::test]
    async fn kept_rows_keep_the_columns_as_the_plan_declares_them() {
        use arrow::array::BooleanArray;
        use datafusion::prelude::{col, lit};
        // `true or flag` may be null as written; the physical plan, simplified, knows it
        // is not. Blocks planned over the model read it as written: so do its kept rows.
        let flags = BooleanArray::from(vec![Some(true), None, Some(false)]);
        let batch =
            arrow::record_batch::RecordBatch::try_from_iter([("flag", Arc::new(flags) as _)])
                .unwrap();
        let ctx = session(Tz::UTC, None);
        let frame = ctx
            .read_batch(batch)
            .unwrap()
            .select(vec![lit(true).or(col("flag")).alias("counted")])
            .unwrap();
        assert!(frame.schema().field(0).is_nullable());
        let kept = kept_rows(frame).await.unwrap();
        assert!(kept.schema().field(0).is_nullable());
        let batches = kept.collect().await.unwrap();
        let counted = batches[0].column(0).as_boolean();
        assert_eq!(counted.iter().collect::<Vec<_>>(), vec![Some(true); 3]);
    }

    /// The order in which plans get the one slot of a run once the plan holding it ends:
    /// each plan asks with its rank, in the order given; those named in `gone` stop
    /// waiting (their run is dropped) before the slot is freed.
    async fn turns(asks: &[(usize, &'static str)], gone: &[&str]) -> (Vec<&'static str>, usize) {
        let slots = Slots::new(1);
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn(slots.clone().run(0, async move { ended.await.ok() }));
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for &(rank, name) in asks {
            let ran = ran.clone();
            let plan = slots.clone().run(rank, async move {
                ran.lock().unwrap().push(name);
            });
            match gone.contains(&name) {
                true => drop(plan),
                false => waiting.push(tokio::spawn(plan)),
            }
        }
        end.send(()).unwrap();
        holder.await.unwrap();
        for plan in waiting {
            plan.await.unwrap();
        }
        let free = slots.lock().free;
        let ran = ran.lock().unwrap().clone();
        (ran, free)
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_lowest_rank_then_to_the_first_to_ask() {
        let asks = [(3, "c"), (1, "a"), (2, "b"), (1, "a, asked later")];
        let (ran, free) = turns(&asks, &[]).await;
        assert_eq!(ran, ["a", "a, asked later", "b", "c"]);
        assert_eq!(free, 1);
    }

    #[tokio::test]
    async fn a_plan_that_stops_waiting_does_not_take_a_slot_with_it() {
        let asks = [(0, "gone"), (1, "b"), (0, "gone too"), (2, "c")];
        let (ran, free) = turns(&asks, &["gone", "gone too"]).await;
        assert_eq!(ran, ["b", "c"]);
        assert_eq!(free, 1);
    }

    #[tokio::test]
    async fn a_plan_dropped_before_it_runs_hands_its_slot_on() {
        let slots = Slots::new(1);
        let first = slots.clone().run(5, async {});
        let second = slots.clone().run(0, async { "second" });
        drop(first);
        assert_eq!(second.await.0, "second");
        assert_eq!(slots.lock().free, 1);
    }
}
