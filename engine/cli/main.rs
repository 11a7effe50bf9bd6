//! `svodka`: the command line over the engine — generate demo data, run, explain and check
//! reports. A thin shell: every command is a few library calls.

/// `println!` that survives a closed standard output (`svodka plugins list | head`): the
/// rest of the output is dropped and the command goes on (a sync still writes its
/// snapshot), where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

mod alloc;
mod cases;
mod data;
mod describe;
mod sync;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use svodka_report::RunRequest;

#[derive(Parser)]
#[command(
    name = "svodka",
    version,
    about = "CRM sales analytics: YAML reports over Bitrix24, 1C and CSV data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Pin "now" (the default period, a sync's retention and snapshot day, a page's time
    /// of generation): `2026-11-27T12:00:00+03:00`, or a day. Default: the system clock.
    #[arg(long, global = true, value_name = "MOMENT", env = svodka_config::Clock::ENV, value_parser = svodka_config::Clock::parse)]
    now: Option<svodka_config::Clock>,
}

#[derive(Subcommand)]
enum Command {
    /// Write a deterministic synthetic data set (CRM and 1C) in the CSV layout.
    Demo(DemoArgs),
    /// Run a report and print or save its result.
    Run(RunArgs),
    /// List the available reports.
    List(CatalogArgs),
    /// Print a Markdown reference of the reports (the shipped ones, with --reports layered
    /// over them): settings, parameters, tables read, every block's columns.
    Describe(CatalogArgs),
    /// Run the test cases of a folder: reports on small data sets against the rows,
    /// totals and counts they must give (a diff and exit 1 on a failure).
    Test {
        /// A folder of `*.yaml` cases, or one case file.
        #[arg(default_value = "tests/cases")]
        dir: PathBuf,
    },
    /// Print each block's measure definitions and DataFusion plan.
    Explain(ExplainArgs),
    /// Validate report and model files; exits non-zero on any error.
    Check(CheckArgs),
    /// Sales plans kept in an xlsx workbook.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Serve reports over HTTP: the API, live dashboards, refresh jobs.
    Serve(ServeArgs),
    /// API tokens of clients.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Clients of the service.
    #[command(subcommand)]
    Client(ClientCommand),
    /// The snapshot store: a client's tables as Parquet, switched atomically per sync.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Pull a Bitrix24 portal, a 1C infobase or a plugin's source into a snapshot store.
    Sync(sync::SyncArgs),
    /// Connector plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// A cluster that runs reports over big stores: its scheduler, executors and status.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Run the scheduler: executors register with it, runs with --cluster send plans to it.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
    },
    /// Run an executor: it registers with the scheduler and runs the tasks it is given.
    Executor {
        /// The scheduler's HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// The address to listen on, as the scheduler and other executors reach it.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port other executors and runs fetch results from (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port the scheduler sends tasks to.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Folder for intermediate results; default: a temporary one.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Tasks at once; default: the machine's cores.
        #[arg(long, value_name = "N")]
        concurrent_tasks: Option<usize>,
    },
    /// List the executors registered with a scheduler and their task slots.
    Status {
        /// The scheduler's HOST:PORT.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        scheduler: String,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Show the plugins of a folder (and given files): name, version, ABI version, tables.
    List {
        /// The folder plugins are installed in (default: $SVODKA_PLUGIN_DIR).
        #[arg(long, value_name = "DIR", env = "SVODKA_PLUGIN_DIR")]
        dir: Option<PathBuf>,
        /// A plugin library (repeatable).
        #[arg(long, value_name = "PATH")]
        plugin: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write a CSV folder's tables into a new snapshot (reports then run on `--data STORE`).
    Import {
        /// The CSV folder.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The store folder (created if missing).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Snapshots to keep.
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
    /// Print the current snapshot: its tables, rows and origin.
    Show {
        /// The store: a folder, or `s3://BUCKET/PREFIX`.
        #[arg(long, value_name = "DIR|URL")]
        store: PathBuf,
    },
    /// Copy a store folder's current snapshot to a store in an S3-compatible bucket, where
    /// every executor of a cluster reads it; it becomes current there once all its files
    /// are in. Credentials and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`).
    Push {
        /// The store folder.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The store in the bucket: `s3://BUCKET/PREFIX`.
        #[arg(long, value_name = "URL")]
        to: PathBuf,
        /// Snapshots to keep in the bucket.
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// The folder holding `clients/<name>/client.yaml`.
    #[arg(long, value_name = "DIR", required_unless_present = "demo")]
    config: Option<PathBuf>,
    /// Serve one client on the built-in demo data, with no token (on loopback only).
    #[arg(long, conflicts_with = "config")]
    demo: bool,
    /// Seconds a report may run before the request answers 503.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Memory a report's sorts, joins and aggregates may hold, in MiB; a rendered answer
    /// is held to it too.
    #[arg(long, default_value_t = 4096)]
    memory_mib: usize,
    /// Report runs at once over all clients (default: the machine's cores); more wait.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Report runs that may wait for a slot; beyond them requests answer 429.
    #[arg(long, value_name = "N", default_value_t = 32)]
    queue: usize,
    /// Seconds a connection has to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Connections held at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Run every client's reports on the cluster whose scheduler is at HOST:PORT (their
    /// data must be snapshot stores on paths every executor reads).
    #[arg(long, value_name = "HOST:PORT")]
    cluster: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token and print it with the hash to put in `client.yaml`.
    New,
    /// Print the hash of a token, for `tokens:` in `client.yaml`.
    Hash { token: String },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Write a workbook to fill in: every department and active employee for each month
    /// of a year, and a sheet of bonus tiers. Saved as `plans.xlsx` in a data folder, it
    /// is read instead of `plans.csv` and `bonus_tiers.csv`.
    Template(TemplateArgs),
}

#[derive(Args)]
struct TemplateArgs {
    /// The data folder whose departments, employees and pipelines to list.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Where to write the workbook.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The year of the months; default: the data set's (or this) year.
    #[arg(long)]
    year: Option<i32>,
}

#[derive(Args)]
struct CatalogArgs {
    /// A folder of report and model files layered over the shipped ones.
    #[arg(long, value_name = "DIR")]
    reports: Vec<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of deals to generate.
    #[arg(long, default_value_t = svodka_demo::DEFAULT_DEALS)]
    deals: usize,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
struct ParamArgs {
    /// The data: a folder in the CSV layout, a snapshot store folder, or a store in an
    /// S3-compatible bucket (`s3://BUCKET/PREFIX`, credentials from the environment).
    #[arg(long, value_name = "DIR|URL")]
    data: Option<PathBuf>,
    /// Use the built-in demo data set (generated on first use into the temp folder).
    #[arg(long, conflicts_with = "data")]
    demo: bool,
    /// First day of the period (YYYY-MM-DD); default: the first day of the current month.
    #[arg(long, value_parser = parse_date)]
    from: Option<NaiveDate>,
    /// Last day of the period, inclusive; default: the last day of `from`'s month.
    #[arg(long, value_parser = parse_date)]
    to: Option<NaiveDate>,
    /// The day at whose end the state is taken; default: `to`, or today if earlier.
    #[arg(long = "as-of", value_parser = parse_date)]
    as_of: Option<NaiveDate>,
    /// Only these employees (ids); repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    employee: Vec<String>,
    /// Only these departments (ids).
    #[arg(long, value_delimiter = ',')]
    department: Vec<String>,
    /// Only these pipelines (ids).
    #[arg(long, value_delimiter = ',')]
    pipeline: Vec<String>,
    /// Only these lead/deal sources (ids).
    #[arg(long, value_delimiter = ',')]
    source: Vec<String>,
    /// Override a setting: KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A report parameter (a selector such as metric or grain): KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    param: Vec<String>,
    /// Client time zone (IANA); default: the data set's, else Europe/Moscow.
    #[arg(long, value_parser = svodka_schema::values::zone)]
    tz: Option<chrono_tz::Tz>,
    /// CRM portal URL for links; default: the data set's.
    #[arg(long)]
    portal: Option<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Report id (see `svodka list`).
    report: String,
    #[command(flatten)]
    params: ParamArgs,
    /// Only this block.
    #[arg(long)]
    block: Option<String>,
    /// Output format; default: from the `--out` file's extension, else json.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Language and number format of HTML and xlsx: ru or en; default: the client's
    /// (with --client), else ru.
    #[arg(long)]
    locale: Option<svodka_render::Locale>,
    /// Run as the service runs it for this client of `--config`: its data, its reports
    /// over the shipped ones, its settings, time zone, portal and locale.
    #[arg(long, conflicts_with_all = ["data", "demo", "tz", "portal", "reports"])]
    client: Option<String>,
    /// The service folder holding `clients/` (with --client).
    #[arg(long, value_name = "DIR", default_value = ".", requires = "client")]
    config: PathBuf,
    /// Print where the time went (loading, models, blocks) to standard error.
    #[arg(long)]
    timings: bool,
    /// Give up after this many seconds (default: no limit; on a cluster, 3600, since a
    /// job that lost an executor can stall there instead of failing).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Run the blocks' plans on the cluster whose scheduler is at HOST:PORT (the data
    /// must be a snapshot store on a path every executor reads).
    #[arg(long, value_name = "HOST:PORT")]
    cluster: Option<String>,
}

#[derive(Args)]
struct ExplainArgs {
    report: String,
    /// Only this block.
    #[arg(long)]
    block: Option<String>,
    #[command(flatten)]
    params: ParamArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// Files or folders to check (layered over the shipped reports); none: the shipped ones.
    paths: Vec<PathBuf>,
    /// Check a client of the service instead: its client.yaml, its reports over the
    /// shipped ones, its settings and its data.
    #[arg(long, conflicts_with = "paths")]
    client: Option<String>,
    /// The service folder holding `clients/` (with --client).
    #[arg(long, value_name = "DIR", default_value = ".")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Print every report's effective settings for a client (and which the client set).
    Effective {
        name: String,
        /// The service folder holding `clients/`.
        #[arg(long, value_name = "DIR", default_value = ".")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The public JSON contract.
    Json,
    /// One self-contained page: KPI cards, tables, SVG charts.
    Html,
    /// A workbook: parameters, a sheet per block, native charts.
    Xlsx,
}

impl Format {
    /// The format a file name asks for by its extension.
    fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "html" | "htm" => Some(Format::Html),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("expected YYYY-MM-DD, got {s:?}"))
}

#[global_allocator]
static ALLOCATOR: alloc::Chosen = alloc::Chosen;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let clock = cli.now.unwrap_or_default();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Run(a) => run(a, clock).await,
        Command::Cluster(c) => cluster(c).await,
        Command::List(a) => list(a),
        Command::Describe(a) => describe_reports(a).await,
        Command::Test { dir } => cases::run_cases(&dir, clock).await,
        Command::Explain(a) => explain(a, clock).await,
        Command::Check(a) => check(a).await,
        Command::Plan(PlanCommand::Template(a)) => plan_template(a, clock),
        Command::Serve(a) => serve(a, clock).await,
        Command::Token(TokenCommand::New) => {
            let token = svodka_service::auth::random_id();
            outln!(
                "token: {token}\nhash:  {}",
                svodka_service::auth::hash_token(&token)
            );
            Ok(())
        }
        Command::Client(ClientCommand::Effective { name, config }) => {
            client_effective(&config, &name)
        }
        Command::Store(StoreCommand::Import { data, store, keep }) => {
            store_import(&data, &store, keep)
        }
        Command::Store(StoreCommand::Show { store }) => store_show(&store),
        Command::Store(StoreCommand::Push { store, to, keep }) => store_push(&store, &to, keep),
        Command::Sync(a) => sync::sync(a, clock),
        Command::Plugins(PluginsCommand::List { dir, plugin }) => {
            plugins_list(dir.as_deref(), &plugin)
        }
        Command::Token(TokenCommand::Hash { token }) => {
            outln!("{}", svodka_service::auth::hash_token(&token));
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_text(&e));
        std::process::exit(1);
    }
    // Ended here, not by returning: returning drops the runtime, which waits for its
    // threads and frees what each holds, ~2 ms of a small run that the process's end does
    // at no cost. Everything written is written: the output is closed and stdout is
    // flushed by `exit`.
    std::process::exit(0);
}

/// An error with its causes, each cause once: a library error's message often quotes its
/// cause already (`path: No such file`), and the cause's own cause again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// One line to standard output; a reader that has gone away is not an error.
fn write_out(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("warning: writing to standard output: {e}");
        }
        _ => {}
    }
}

/// `svodka plugins list`: each plugin, or why it did not load (the list goes on).
fn plugins_list(dir: Option<&std::path::Path>, files: &[PathBuf]) -> Result<()> {
    let mut found: Vec<(
        PathBuf,
        Result<svodka_plugins::Plugin, svodka_plugins::PluginError>,
    )> = dir.map(svodka_plugins::discover).unwrap_or_default();
    found.extend(
        files
            .iter()
            .map(|p| (p.clone(), svodka_plugins::Plugin::load(p))),
    );
    if found.is_empty() {
        outln!("no plugins (give --dir DIR or --plugin PATH)");
    }
    let mut failed = false;
    for (path, p) in found {
        match p {
            Ok(p) => {
                outln!(
                    "{} {} (ABI {}) {}",
                    p.name,
                    p.version,
                    p.abi,
                    path.display()
                );
                for t in &p.tables {
                    outln!("  {}: {}", t.name, t.columns().join(", "));
                    if let Some(problem) = &t.problem {
                        failed = true;
                        outln!("    error: {problem}");
                    }
                }
                for (entity, page) in &p.links {
                    outln!("  page of a {entity}: {page}");
                }
            }
            Err(e) => {
                failed = true;
                outln!("error: {e}");
            }
        }
    }
    if failed {
        bail!("some plugins did not load, or declare tables that cannot be canonical");
    }
    Ok(())
}

fn demo(a: DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut progress = data::Progress::new("demo");
    let summary = svodka_demo::generate(
        &svodka_demo::DemoConfig {
            deals: a.deals,
            seed: a.seed,
        },
        &a.out,
        &mut |done, total| progress.update(done, total),
    )
    .with_context(|| format!("writing demo data to {}", a.out.display()))?;
    progress.finish();
    eprintln!(
        "wrote {} in {:.1}s: {}",
        a.out.display(),
        started.elapsed().as_secs_f64(),
        summary
    );
    Ok(())
}

/// Resolves parameters and settings shared by `run` and `explain`.
fn request(
    report: &str,
    p: &ParamArgs,
    block: Option<String>,
    info: Option<&svodka_config::DatasetInfo>,
    clock: svodka_config::Clock,
) -> Result<RunRequest> {
    let mut params =
        svodka_sources::run_params((p.from, p.to, p.as_of), p.tz, p.portal.clone(), info, clock)?;
    for (name, values) in [
        ("employee", &p.employee),
        ("department", &p.department),
        ("pipeline", &p.pipeline),
        ("source", &p.source),
    ] {
        params.add_filter(name, values)?;
    }
    Ok(RunRequest {
        settings: key_values("--set", &p.set)?,
        parameters: key_values("--param", &p.param)?,
        block,
        ..RunRequest::new(report, params)
    })
}

/// `KEY=VALUE` arguments as pairs.
fn key_values(flag: &str, items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.to_string())),
            None => bail!("{flag} {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// What a run reads: its definitions, its tables (a data folder's, or a client's data),
/// the data set's description, and the locale a client asks for.
struct RunInputs {
    catalog: std::sync::Arc<svodka_report::Catalog>,
    tables: RunTables,
    info: Option<svodka_config::DatasetInfo>,
    locale: Option<svodka_render::Locale>,
}

/// The tables of a data folder, or of a client's data (shared with its description).
enum RunTables {
    Folder(svodka_report::LazyTables),
    Client(std::sync::Arc<svodka_service::clients::Data>),
}

impl RunTables {
    fn get(&self) -> &svodka_report::LazyTables {
        match self {
            RunTables::Folder(t) => t,
            RunTables::Client(data) => &data.tables,
        }
    }
}

/// A run of a client of the service, built by the service's own code: the options become
/// the query string a request would carry, checked and turned into a run as the service
/// does it.
async fn client_run(
    a: &RunArgs,
    name: &str,
    clock: svodka_config::Clock,
) -> Result<(RunInputs, RunRequest)> {
    let (config, owned) = (a.config.clone(), name.to_string());
    // Loading checks definitions on a runtime of its own: off this one's threads.
    let client = tokio::task::spawn_blocking(move || load_client(&config, &owned)).await??;
    let p = &a.params;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, date) in [("from", p.from), ("to", p.to), ("as_of", p.as_of)] {
        pairs.extend(date.map(|d| (key.to_string(), d.to_string())));
    }
    for (key, values) in [
        ("employee", &p.employee),
        ("department", &p.department),
        ("pipeline", &p.pipeline),
        ("source", &p.source),
    ] {
        pairs.extend(values.iter().map(|v| (key.to_string(), v.clone())));
    }
    for (prefix, flag, items) in [("set.", "--set", &p.set), ("param.", "--param", &p.param)] {
        for (k, v) in key_values(flag, items)? {
            pairs.push((format!("{prefix}{k}"), v));
        }
    }
    let query = svodka_service::query::Query::parse(&pairs)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.name, e.message))?;
    let engine = client
        .engine
        .clone()
        .unwrap_or(svodka_report::Engine::Local);
    let req = query.request(&client, &a.report, a.block.clone(), None, clock, engine)?;
    let data = client.data();
    data::choose_allocator(&data.tables);
    let inputs = RunInputs {
        catalog: client.catalog(),
        info: data.info.clone(),
        tables: RunTables::Client(data),
        locale: client.config.locale.as_deref().and_then(|l| l.parse().ok()),
    };
    Ok((inputs, req))
}

async fn run(a: RunArgs, clock: svodka_config::Clock) -> Result<()> {
    let (inputs, mut req) = match &a.client {
        Some(name) => client_run(&a, name, clock).await?,
        None => {
            let catalog = svodka_sources::catalog(&a.params.catalog.reports)?;
            let dir = match (&a.params.data, a.params.demo) {
                (Some(dir), _) => dir.clone(),
                (None, true) => data::demo_dir()?,
                (None, false) => bail!(
                    "--data DIR, --demo or --client NAME is required (make data with `svodka demo --out DIR`)"
                ),
            };
            let (tables, info) = data::open(&dir)?;
            let req = request(&a.report, &a.params, a.block.clone(), info.as_ref(), clock)?;
            let inputs = RunInputs {
                catalog: std::sync::Arc::new(catalog),
                tables: RunTables::Folder(tables),
                info,
                locale: None,
            };
            (inputs, req)
        }
    };
    let RunInputs {
        catalog,
        tables,
        info,
        locale,
    } = inputs;
    if let Some(addr) = &a.cluster {
        req.engine = cluster_engine(addr)?;
    }
    let limit = a
        .timeout
        .or(a.cluster.as_ref().map(|_| 3600))
        .map(std::time::Duration::from_secs);
    let running = svodka_report::run(&catalog, tables.get(), &req);
    let result = match limit {
        None => running.await?,
        Some(limit) => match tokio::time::timeout(limit, running).await {
            Ok(result) => result?,
            Err(_) => bail!(
                "report `{}` did not finish within {} s{}",
                a.report,
                limit.as_secs(),
                match &a.cluster {
                    Some(c) => format!(
                        " on the cluster at {c} (an executor may have been lost; \
                         `svodka cluster status` lists the live ones)"
                    ),
                    None => String::new(),
                }
            ),
        },
    };
    if a.timings {
        for (step, secs) in &result.timings {
            eprintln!("{secs:>8.3}s  {step}");
        }
    }
    let format = a
        .format
        .or_else(|| a.out.as_deref().and_then(Format::of_path))
        .unwrap_or(Format::Json);
    if format == Format::Xlsx && a.out.is_none() && std::io::stdout().is_terminal() {
        bail!("an xlsx workbook is binary: write it to a file with --out FILE.xlsx");
    }
    let options = svodka_render::RenderOptions {
        locale: a.locale.or(locale).unwrap_or_default(),
        data_version: info.as_ref().map(svodka_sources::data_version),
        generated_at: clock.now(),
        ..Default::default()
    };
    // Everything that can fail is done before the output is opened; JSON is then written
    // as it is serialized, so a big list never waits whole in memory.
    enum Rendered<'a> {
        Json(svodka_render::json::ReportJson<'a>),
        Bytes(Vec<u8>),
    }
    let rendered = match format {
        Format::Json => Rendered::Json(svodka_render::json::ReportJson::new(&result)?),
        Format::Html => {
            Rendered::Bytes(svodka_render::html::report_html(&result, &options)?.into_bytes())
        }
        Format::Xlsx => Rendered::Bytes(svodka_render::xlsx::report_xlsx(&result, &options)?),
    };
    let write = move |out: &mut dyn Write| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(out);
        match rendered {
            Rendered::Json(json) => {
                json.write_pretty(&mut out)?;
                out.write_all(b"\n")?;
            }
            Rendered::Bytes(bytes) => out.write_all(&bytes)?,
        }
        out.flush()
    };
    match &a.out {
        Some(path) => std::fs::File::create(path)
            .and_then(|mut file| write(&mut file))
            .with_context(|| format!("writing {}", path.display()))?,
        // A reader that has gone away (`| head`) took what it wanted: not an error.
        None => match write(&mut std::io::stdout().lock()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
            _ => {}
        },
    }
    Ok(())
}

/// The engine of a run on the cluster whose scheduler is at `addr`.
fn cluster_engine(addr: &str) -> Result<svodka_report::Engine> {
    let cluster = svodka_cluster::Cluster::at(addr, "--cluster")?;
    Ok(svodka_report::Engine::Remote(std::sync::Arc::new(cluster)))
}

async fn cluster(command: ClusterCommand) -> Result<()> {
    svodka_cluster::logging::init()?;
    match command {
        ClusterCommand::Scheduler { bind } => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("listening on {bind}"))?;
            eprintln!(
                "scheduler of Svodka {} listening on {} (Ctrl-C stops it)",
                svodka_cluster::handshake::VERSION,
                listener.local_addr()?
            );
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            svodka_cluster::scheduler::serve(listener, stop).await?;
        }
        ClusterCommand::Executor {
            scheduler,
            host,
            port,
            grpc_port,
            work_dir,
            concurrent_tasks,
        } => {
            eprintln!(
                "executor of Svodka {} on {host}:{port} (tasks on {grpc_port}), scheduler {scheduler}",
                svodka_cluster::handshake::VERSION
            );
            svodka_cluster::executor::run(svodka_cluster::executor::ExecutorOptions {
                scheduler,
                bind_host: host,
                port,
                grpc_port,
                work_dir,
                concurrent_tasks,
            })
            .await?;
        }
        ClusterCommand::Status { scheduler } => {
            let executors =
                tokio::task::spawn_blocking(move || svodka_cluster::status(&scheduler)).await??;
            outln!("executor\taddress\ttask port\tslots\tlast heartbeat\tversion");
            for e in &executors {
                let heartbeat = e
                    .last_heartbeat_unix
                    .and_then(|s| chrono::DateTime::from_timestamp(s as i64, 0))
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into());
                outln!(
                    "{}\t{}:{}\t{}\t{}\t{}\t{}",
                    e.id,
                    e.host,
                    e.port,
                    e.grpc_port,
                    e.slots,
                    heartbeat,
                    e.version
                );
            }
            let slots: u32 = executors.iter().map(|e| e.slots).sum();
            eprintln!("{} executor(s), {slots} task slot(s)", executors.len());
        }
    }
    Ok(())
}

async fn serve(a: ServeArgs, clock: svodka_config::Clock) -> Result<()> {
    let defaults = svodka_service::Limits::default();
    let limits = svodka_service::Limits {
        timeout: std::time::Duration::from_secs(a.timeout),
        memory: a.memory_mib << 20,
        runs: a.runs.map_or(defaults.runs, |n| n as usize),
        queued: a.queue,
        header_timeout: std::time::Duration::from_secs(a.header_timeout),
        connections: a.max_connections as usize,
    };
    let mut service = if a.demo {
        svodka_service::Service::demo(&data::demo_dir()?, limits)?
    } else {
        let config = a
            .config
            .as_ref()
            .expect("clap requires --config without --demo");
        svodka_service::Service::load(config, limits)?
    };
    service.check_listen(a.addr)?;
    for problem in service.problems() {
        eprintln!("warning: {problem}");
    }
    service.clock = clock;
    if let Some(addr) = &a.cluster {
        service.engine = cluster_engine(addr)?;
    }
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("listening on {}", a.addr))?;
    eprintln!(
        "serving {} client(s) on http://{}/ (Ctrl-C stops after the requests in flight)",
        service.clients.len(),
        listener.local_addr()?
    );
    svodka_service::serve(std::sync::Arc::new(service), listener).await?;
    Ok(())
}

async fn describe_reports(a: CatalogArgs) -> Result<()> {
    let catalog = svodka_sources::catalog(&a.reports)?;
    let title = if a.reports.is_empty() {
        "The shipped reports"
    } else {
        "Reports"
    };
    let text = describe::describe(&catalog, title).await?;
    outln!("{}", text.trim_end());
    Ok(())
}

fn list(a: CatalogArgs) -> Result<()> {
    let catalog = svodka_sources::catalog(&a.reports)?;
    for (id, report) in &catalog.reports {
        let blocks: Vec<&str> = report.spec.blocks.iter().map(|b| b.id.as_str()).collect();
        outln!("{id}\t{}\t[{}]", report.spec.title, blocks.join(", "));
    }
    Ok(())
}

async fn explain(a: ExplainArgs, clock: svodka_config::Clock) -> Result<()> {
    let catalog = svodka_sources::catalog(&a.params.catalog.reports)?;
    let data_dir = match (&a.params.data, a.params.demo) {
        (Some(dir), _) => Some(dir.clone()),
        (None, true) => Some(data::demo_dir()?),
        (None, false) => None,
    };
    let (text, _) = match &data_dir {
        Some(dir) => {
            let (tables, info) = data::open(dir)?;
            let req = request(&a.report, &a.params, a.block.clone(), info.as_ref(), clock)?;
            (svodka_report::explain(&catalog, &tables, &req).await?, ())
        }
        None => {
            let tables = svodka_report::LazyTables::empty();
            let req = request(&a.report, &a.params, a.block.clone(), None, clock)?;
            (svodka_report::explain(&catalog, &tables, &req).await?, ())
        }
    };
    outln!("{}", text.strip_suffix('\n').unwrap_or(&text));
    Ok(())
}

fn plan_template(a: TemplateArgs, clock: svodka_config::Clock) -> Result<()> {
    let (directory, info) = data::directory(&a.data)?;
    let year = a
        .year
        .or_else(|| info.map(|i| chrono::Datelike::year(&i.snapshot_date)))
        .unwrap_or_else(|| chrono::Datelike::year(&clock.today(&chrono::Utc)));
    let months: Vec<NaiveDate> = (1..=12)
        .filter_map(|m| NaiveDate::from_ymd_opt(year, m, 1))
        .collect();
    svodka_plans_xlsx::write_template(&directory, &months, &a.out)?;
    eprintln!(
        "wrote {}: {} departments, {} employees × 12 months of {year}",
        a.out.display(),
        directory.departments.len(),
        directory.employees.len()
    );
    Ok(())
}

/// A client of the service, loaded and checked as `serve` would.
fn load_client(config: &std::path::Path, name: &str) -> Result<svodka_service::Client> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--client {name:?}: a client is named by its folder under clients/");
    }
    Ok(svodka_service::Client::load(
        &config.join("clients").join(name),
    )?)
}

fn store_import(data: &std::path::Path, store: &std::path::Path, keep: usize) -> Result<()> {
    let started = std::time::Instant::now();
    let snap = svodka_sources::import_folder(data, store, keep, &mut |table, rows| {
        eprintln!("{table}: {rows} rows");
    })?;
    eprintln!(
        "snapshot {} in {} ({:.1}s)",
        snap.name,
        store.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn store_push(store: &std::path::Path, to: &std::path::Path, keep: usize) -> Result<()> {
    let started = std::time::Instant::now();
    let snap = svodka_store::Store::new(store).push(to, keep, &mut |file, bytes| {
        eprintln!("{file}: {bytes} bytes");
    })?;
    eprintln!(
        "snapshot {} in {} ({:.1}s)",
        snap.name,
        to.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn store_show(store: &std::path::Path) -> Result<()> {
    let snap = svodka_store::Store::new(store).current()?;
    outln!("snapshot {} ({})", snap.name, snap.manifest.origin);
    for (table, rows) in &snap.manifest.tables {
        outln!("  {table}: {rows}");
    }
    Ok(())
}

fn client_effective(config: &std::path::Path, name: &str) -> Result<()> {
    let client = load_client(config, name)?;
    for r in client.effective_settings()? {
        outln!("{}", r.report);
        for s in r.settings {
            let mark = match s.source {
                svodka_service::clients::SettingSource::Default => "",
                svodka_service::clients::SettingSource::Client => "  (client, every report)",
                svodka_service::clients::SettingSource::ClientReport => "  (client, this report)",
            };
            outln!("  {} = {}{mark}", s.name, s.value);
        }
    }
    Ok(())
}

async fn check(a: CheckArgs) -> Result<()> {
    if let Some(name) = &a.client {
        let config = a.config.clone();
        let name = name.clone();
        // Loading checks definitions on a runtime of its own: off this one's threads.
        let client = tokio::task::spawn_blocking(move || load_client(&config, &name)).await??;
        let data = client.data();
        outln!(
            "ok: client {}: {} reports, {} models, data {}",
            client.id,
            client.catalog().reports.len(),
            client.catalog().models.len(),
            data.info
                .as_ref()
                .map(svodka_sources::data_version)
                .unwrap_or_else(|| "without dataset.yaml".into())
        );
        return Ok(());
    }
    let (catalog, mut problems) =
        svodka_report::Catalog::from_sources_lenient(svodka_sources::definition_files(&a.paths)?);
    match svodka_report::check(&catalog).await {
        Ok(()) => {}
        Err(svodka_report::ReportError::Invalid(mut more)) => problems.append(&mut more),
        Err(other) => return Err(other.into()),
    }
    if !problems.is_empty() {
        return Err(svodka_report::ReportError::Invalid(problems).into());
    }
    outln!(
        "ok: {} reports, {} models",
        catalog.reports.len(),
        catalog.models.len()
    );
    Ok(())
}
