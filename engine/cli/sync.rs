//! `svodka sync`: a Bitrix24 portal into a snapshot store, with a progress line per list
//! on a terminal and plain log lines otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use svodka_bitrix24::pace::Limit;
use svodka_bitrix24::portal::{Auth, Portal};
use svodka_bitrix24::settings::{Tokens, portal_of};
use svodka_bitrix24::sync::{Event, SyncOptions};
use svodka_config::Bitrix24Config;

use crate::data::Progress;

#[derive(Args)]
pub struct SyncArgs {
    /// The snapshot store to write (created if missing); with --client, default: the
    /// client's data folder.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The portal's incoming-webhook URL (`https://portal.bitrix24.ru/rest/1/secret/`).
    #[arg(long, value_name = "URL", conflicts_with = "client")]
    bitrix24: Option<String>,
    /// 1C: a settings file (OData, HTTP service or files; docs/onec.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["client", "bitrix24"])]
    onec: Option<PathBuf>,
    /// A connector plugin: a library's path, or a plugin's name in --plugin-dir.
    #[arg(long, value_name = "PATH|NAME", conflicts_with_all = ["client", "bitrix24", "onec"])]
    plugin: Option<String>,
    /// The plugin's settings (YAML, handed to it as JSON).
    #[arg(long, value_name = "FILE", requires = "plugin")]
    plugin_config: Option<PathBuf>,
    /// Where plugins are installed (default: $SVODKA_PLUGIN_DIR).
    #[arg(long, value_name = "DIR", env = "SVODKA_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
    /// Read 1C's `$metadata` again instead of the copy kept in the store.
    #[arg(long)]
    fresh_metadata: bool,
    /// A client of the service: its `bitrix24:` settings, time zone and retention.
    #[arg(long)]
    client: Option<String>,
    /// The service folder holding `clients/` (with --client).
    #[arg(long, value_name = "DIR", default_value = ".")]
    config: PathBuf,
    /// Read everything again instead of what changed since the last sync.
    #[arg(long)]
    full: bool,
    /// Sweep ids for deleted records now, whenever the last sweep was.
    #[arg(long)]
    sweep: bool,
    /// Read timeline comments of leads and deals (one subquery per item).
    #[arg(long)]
    comments: bool,
    /// The portal's plan: standard (2 requests/s, 50 at once) or enterprise (5/s, 250).
    #[arg(long, value_name = "PLAN")]
    plan: Option<String>,
    /// A raised rate limit agreed with Bitrix24: requests per second and burst (`10/500`).
    #[arg(long, value_name = "RATE/BURST", conflicts_with = "plan")]
    rate_limit: Option<String>,
    /// Months of activities and stage history to keep (default: all; with --client, the
    /// client's retention).
    #[arg(long, value_name = "N")]
    retention_months: Option<u32>,
    /// A custom field as an extra column: `deals.UF_CRM_1700000001=region` (repeatable).
    #[arg(long = "field", value_name = "TABLE.UF_FIELD=COLUMN")]
    fields: Vec<String>,
    /// The data set's time zone when the store is new (default Europe/Moscow).
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// The longest one request may take, in seconds.
    #[arg(long, default_value_t = 90)]
    timeout: u64,
    /// Snapshots to keep.
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// List pages per batch call (1–50); fewer spend less of the portal's operating time
    /// per call.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=50))]
    batch_pages: u16,
}

fn rate_limit(text: &str) -> Result<Limit> {
    let (rate, burst) = text
        .split_once('/')
        .context("--rate-limit: expected RATE/BURST, e.g. 10/500")?;
    let (rate, burst): (f64, f64) = (
        rate.trim().parse().context("--rate-limit: rate")?,
        burst.trim().parse().context("--rate-limit: burst")?,
    );
    if rate <= 0.0 || burst < 1.0 {
        bail!("--rate-limit: the rate must be above 0 and the burst at least 1");
    }
    Ok(Limit { rate, burst })
}

fn field(text: &str, fields: &mut BTreeMap<String, BTreeMap<String, String>>) -> Result<()> {
    let parsed = text
        .split_once('=')
        .and_then(|(l, column)| l.split_once('.').map(|(t, f)| (t, f, column)));
    let Some((table, uf, column)) = parsed else {
        bail!(
            "--field {text}: expected TABLE.UF_FIELD=COLUMN, e.g. deals.UF_CRM_1700000001=region"
        );
    };
    fields
        .entry(table.to_string())
        .or_default()
        .insert(uf.to_string(), column.to_string());
    Ok(())
}

/// What `svodka sync` was asked to sync, resolved.
struct Target {
    store: PathBuf,
    timezone: Option<String>,
    retention: Option<u32>,
    name: Option<String>,
    /// The client's folder (relative paths in its settings start there).
    dir: PathBuf,
    /// "Now": the retention cut-off and the day a snapshot is dated.
    clock: svodka_config::Clock,
}

pub fn sync(a: SyncArgs, clock: svodka_config::Clock) -> Result<()> {
    let mut bitrix24 = a.bitrix24.as_ref().map(|url| Bitrix24Config {
        webhook: Some(url.clone()),
        ..Default::default()
    });
    let mut onec = match &a.onec {
        Some(path) => Some((
            svodka_config::OnecConfig::read(path)?,
            path.parent().map(PathBuf::from).unwrap_or_default(),
        )),
        None => None,
    };
    let mut target = Target {
        store: PathBuf::new(),
        timezone: a.timezone.clone(),
        retention: a.retention_months,
        name: None,
        dir: PathBuf::new(),
        clock,
    };
    let mut store = a.data.clone();
    if let Some(client) = &a.client {
        let dir = a.config.join("clients").join(client);
        let config = svodka_config::ClientConfig::read(&dir)?;
        bitrix24 = config.bitrix24.clone();
        onec = config.onec.clone().map(|c| (c, dir.clone()));
        if bitrix24.is_none() && onec.is_none() {
            bail!(
                "{}: no `bitrix24:` section (nor `onec:`): nothing to sync",
                dir.join("client.yaml").display()
            );
        }
        store = store.or_else(|| Some(svodka_sources::client_data(&dir, &config.data.folder)));
        target.timezone = target.timezone.or(config.timezone.clone());
        target.retention = target.retention.or(Some(config.retention_months));
        target.name = Some(config.name.clone());
        target.dir = dir;
    } else if bitrix24.is_none() && onec.is_none() && a.plugin.is_none() {
        bail!(
            "give the source: --bitrix24 WEBHOOK_URL, --onec SETTINGS.yaml, --plugin PATH, or --client NAME"
        );
    }
    target.store = store.context("--data DIR: the snapshot store to write")?;
    if svodka_sources::in_bucket(&target.store) {
        bail!(
            "{}: a sync writes a store folder; copy its snapshot to the bucket afterwards with \
             `svodka store push --store FOLDER --to {}`",
            target.store.display(),
            target.store.display()
        );
    }
    let made = !target.store.exists();
    std::fs::create_dir_all(&target.store)
        .with_context(|| format!("creating {}", target.store.display()))?;
    let synced = (|| {
        if let Some(settings) = bitrix24 {
            sync_bitrix24(&a, settings, &target)?;
        }
        if let Some((config, dir)) = onec {
            sync_onec(&a, &config, &dir, &target)?;
        }
        if let Some(plugin) = &a.plugin {
            sync_plugin(&a, plugin, &target)?;
        }
        Ok(())
    })();
    if synced.is_err() && made {
        // A failed first sync leaves no folder behind — unless it holds a spool to resume
        // from (`remove_dir` removes only an empty folder).
        let _ = std::fs::remove_dir(&target.store);
    }
    synced
}

/// Finds a plugin: a file path, or a name among the plugins of `dir`.
pub fn find_plugin(which: &str, dir: Option<&std::path::Path>) -> Result<svodka_plugins::Plugin> {
    let path = std::path::Path::new(which);
    if path.is_file() {
        return Ok(svodka_plugins::Plugin::load(path)?);
    }
    let dir = dir
        .with_context(|| format!("--plugin {which}: not a file, and no --plugin-dir to look in"))?;
    for (_, p) in svodka_plugins::discover(dir) {
        if let Ok(p) = p
            && p.name == which
        {
            return Ok(p);
        }
    }
    bail!(
        "--plugin {which}: no such file, and no plugin of that name in {}",
        dir.display()
    )
}

/// A plugin's tables into the store, checked against the canonical schema.
fn sync_plugin(a: &SyncArgs, which: &str, target: &Target) -> Result<()> {
    let started = std::time::Instant::now();
    let plugin = find_plugin(which, a.plugin_dir.as_deref())?;
    let settings: serde_json::Value = match &a.plugin_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let yaml: serde_yaml::Value =
                serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
            serde_json::to_value(yaml).with_context(|| format!("{}", path.display()))?
        }
        None => serde_json::Value::Null,
    };
    eprintln!(
        "syncing plugin {} {} into {}",
        plugin.name,
        plugin.version,
        target.store.display()
    );
    let problems = plugin.problems();
    if !problems.is_empty() {
        bail!(
            "plugin {} declares tables that cannot be canonical ({}):\n  {}",
            plugin.name,
            plugin.path.display(),
            problems.join("\n  ")
        );
    }
    let session = plugin.configure(&settings, None)?;
    let mut read = Vec::new();
    for t in &plugin.tables {
        let (schema, batches) = session.read(&t.name)?;
        eprintln!(
            "{}: {} rows",
            t.name,
            batches.iter().map(|b| b.num_rows()).sum::<usize>()
        );
        read.push((t.name.clone(), schema, batches));
    }
    let store = svodka_store::Store::new(&target.store);
    let current = store.current_if_any()?;
    let mut writer = store.begin(&format!("plugin {} {}", plugin.name, plugin.version))?;
    let mut tables = Vec::new();
    for (name, schema, batches) in &read {
        tables.push((name.clone(), writer.table(name, schema.clone(), batches)?));
    }
    tables.extend(writer.carry_rest(current.as_ref())?);
    let timezone = target
        .timezone
        .clone()
        .unwrap_or_else(|| svodka_schema::values::DEFAULT_TIMEZONE.to_string());
    let tz: chrono_tz::Tz = timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown time zone {timezone}"))?;
    let day = target.clock.today(&tz);
    let info = svodka_store::synced_info(
        current.as_ref(),
        || svodka_config::DatasetInfo {
            name: target.name.clone().unwrap_or_else(|| plugin.name.clone()),
            timezone: timezone.clone(),
            portal_url: None,
            snapshot_date: day,
            origin: None,
            links: Default::default(),
        },
        day,
        &format!("plugin {} {}", plugin.name, plugin.version),
        &plugin.links,
    );
    let snapshot = writer.commit(Some(&info), a.keep)?;
    outln!(
        "snapshot {} (plugin {} {}) in {:.1}s",
        snapshot.name,
        plugin.name,
        plugin.version,
        started.elapsed().as_secs_f64()
    );
    for (t, rows) in tables {
        outln!("  {t}: {rows}");
    }
    Ok(())
}

/// A 1C source into the store.
fn sync_onec(
    a: &SyncArgs,
    config: &svodka_config::OnecConfig,
    dir: &std::path::Path,
    target: &Target,
) -> Result<()> {
    use svodka_onec::Reader;
    let (mut source, described): (Box<dyn Reader>, String) =
        match (&config.odata, &config.http, &config.files) {
            (Some(o), None, None) => {
                eprintln!("reading the 1C $metadata of {} …", o.url);
                (
                    Box::new(svodka_onec::odata::OData::connect(
                        config,
                        Some(&target.store),
                        a.fresh_metadata,
                    )?),
                    format!("odata {}", o.url),
                )
            }
            (None, Some(h), None) => (
                Box::new(svodka_onec::service::Service::connect(config)?),
                format!("http {}", h.url),
            ),
            (None, None, Some(_)) => (
                Box::new(svodka_onec::files::Files::new(config, dir)?),
                "files".to_string(),
            ),
            _ => bail!("1C settings: give exactly one of `odata`, `http` and `files`"),
        };
    let options = svodka_onec::sync::SyncOptions {
        source: described.clone(),
        // A file export is whole each time.
        full: a.full || config.files.is_some(),
        overlap_days: config.overlap_days,
        keep: a.keep,
        name: target.name.clone().unwrap_or_else(|| "1C".to_string()),
        timezone: target
            .timezone
            .clone()
            .unwrap_or_else(|| config.timezone.clone()),
        clock: target.clock,
    };
    eprintln!("syncing 1C ({described}) into {}", target.store.display());
    let mut bars: BTreeMap<String, Progress> = BTreeMap::new();
    let store = svodka_store::Store::new(&target.store);
    let o = svodka_onec::sync::sync(
        source.as_mut(),
        &store,
        &options,
        &mut |list, rows, total| {
            bars.entry(list.to_string())
                .or_insert_with(|| Progress::new(format!("1C {list}")))
                .update(rows, total.unwrap_or(rows).max(rows));
        },
    )
    .with_context(|| format!("syncing 1C into {}", target.store.display()))?;
    for bar in bars.values() {
        bar.finish();
    }
    outln!(
        "snapshot {} ({} 1C sync): {} counterparties, {} sales ({} read: {} new, {} changed, {} removed) in {:.1}s, {} requests",
        o.snapshot,
        if o.full { "full" } else { "incremental" },
        o.counterparties,
        o.sales,
        o.read,
        o.new,
        o.changed,
        o.removed,
        o.seconds,
        o.requests
    );
    for s in &o.skipped {
        outln!("  left out: {s}");
    }
    Ok(())
}

/// A Bitrix24 portal into the store.
fn sync_bitrix24(a: &SyncArgs, settings: Bitrix24Config, target: &Target) -> Result<()> {
    let (store, client_dir) = (target.store.clone(), target.dir.clone());
    let (timezone, retention, name) = (
        target.timezone.clone(),
        target.retention,
        target.name.clone(),
    );
    let (auth, token_file) = svodka_bitrix24::settings::auth(&settings, &client_dir)?;
    let limit = match (&a.rate_limit, &a.plan) {
        (Some(r), _) => rate_limit(r)?,
        (None, Some(p)) => svodka_bitrix24::settings::limit(&Bitrix24Config {
            plan: Some(p.clone()),
            ..Default::default()
        })?,
        (None, None) => svodka_bitrix24::settings::limit(&settings)?,
    };
    let url = match &auth {
        Auth::Webhook { url } => url.clone(),
        Auth::OAuth { endpoint, .. } => endpoint.clone(),
    };
    let portal = portal_of(&url);
    let mut options = SyncOptions::new(&portal);
    options.full = a.full;
    options.comments = a.comments || settings.comments;
    options.sweep_every = if a.sweep {
        Duration::ZERO
    } else {
        settings.sweep_every()
    };
    options.retention_months = retention;
    options.fields = settings.fields.clone();
    for f in &a.fields {
        field(f, &mut options.fields)?;
    }
    options.keep = a.keep;
    options.pages_per_batch = a.batch_pages as usize;
    options.name = name.unwrap_or_else(|| portal.clone());
    options.timezone =
        timezone.unwrap_or_else(|| svodka_schema::values::DEFAULT_TIMEZONE.to_string());
    options.portal_url = Some(format!(
        "{}://{portal}",
        url.split("://").next().unwrap_or("https")
    ));
    options.clock = target.clock;
    let mut client = Portal::new(auth, limit).timeout(Duration::from_secs(a.timeout));
    if let (
        Some(path),
        Auth::OAuth {
            client_id,
            client_secret,
            ..
        },
    ) = (&token_file, &client.auth().clone())
    {
        let (path, id, secret) = (path.clone(), client_id.clone(), client_secret.clone());
        client = client.on_refresh(move |access, refresh| {
            let t = Tokens {
                client_id: id.clone(),
                client_secret: secret.clone(),
                access_token: access.to_string(),
                refresh_token: refresh.to_string(),
            };
            if let Err(e) = t.write(&path) {
                eprintln!("warning: the refreshed token was not stored: {e}");
            }
        });
    }
    let store_handle = svodka_store::Store::new(&store);
    eprintln!("syncing {portal} into {}", store.display());
    let mut bars: BTreeMap<String, Progress> = BTreeMap::new();
    let outcome =
        svodka_bitrix24::sync::sync(&mut client, &store_handle, &options, &mut |e| match e {
            Event::Step(step) => eprintln!("{step} …"),
            Event::Rows {
                list,
                rows,
                total,
                done,
            } => {
                let bar = bars
                    .entry(list.to_string())
                    .or_insert_with(|| Progress::new(list.to_string()));
                bar.update(rows, total.unwrap_or(rows).max(rows));
                if done {
                    bar.finish();
                    eprintln!("{list}: {rows} rows");
                }
            }
        })
        .with_context(|| format!("syncing {portal} into {}", store.display()))?;
    outln!(
        "snapshot {} ({} sync{}): {} rows read in {:.1}s ({:.0} rows/s), {} requests{}",
        outcome.snapshot,
        if outcome.full { "full" } else { "incremental" },
        if outcome.swept { ", ids swept" } else { "" },
        outcome.rows_read,
        outcome.seconds,
        outcome.rows_read as f64 / outcome.seconds.max(0.001),
        outcome.requests,
        if outcome.resumed_rows > 0 {
            format!(
                ", resumed after {} rows kept from an interrupted run",
                outcome.resumed_rows
            )
        } else {
            String::new()
        }
    );
    for (table, rows) in &outcome.tables {
        let changed = outcome
            .changed
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n);
        let deleted = outcome
            .deleted
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n);
        let mut line = format!("  {table}: {rows}");
        if let (Some(c), false) = (changed, outcome.full) {
            line += &format!(" ({c} new or changed");
            if let Some(d) = deleted.filter(|d| *d > 0) {
                line += &format!(", {d} removed");
            }
            line += ")";
        }
        outln!("{line}");
    }
    for u in &outcome.unknowns {
        outln!("  unmapped: {u}");
    }
    Ok(())
}
