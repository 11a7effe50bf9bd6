//! Client companies: `clients/<name>/client.yaml` (display name, time zone, locale, CRM
//! portal, data connector, report settings, token hashes) with the client's own report
//! and model files in `clients/<name>/reports/` layered over the shipped ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use svodka_report::{Catalog, LazyTables, TableSet};

use crate::ServiceError;

/// The most a client's result cache holds (Arrow buffers of cached results).
pub const CACHE_BYTES: usize = 512 << 20;

/// The most a client's cache of rendered pages and workbooks holds.
pub const PAGE_CACHE_BYTES: usize = 128 << 20;

pub use svodka_config::{ClientConfig, DataConfig};

/// Reads and checks `dir/client.yaml`, its cluster address included.
pub fn read_config(dir: &Path) -> Result<ClientConfig, ServiceError> {
    let config = ClientConfig::read(dir)?;
    client_engine(dir, &config)?;
    Ok(config)
}

/// The data a client's reports run on, as of one load.
pub struct Data {
    pub tables: LazyTables,
    pub info: Option<svodka_config::DatasetInfo>,
    /// Bumped by each refresh: part of every cache key.
    pub version: u64,
    /// Tables of a CSV folder that had no file (read as empty).
    pub absent: Vec<String>,
}

impl Data {
    /// Refuses `next` when a table file this version read is gone from it: a deleted or
    /// moved `deals.csv` must not turn every report into zeros.
    pub fn check_successor(&self, next: &Data) -> Result<(), String> {
        let gone: Vec<String> = next
            .absent
            .iter()
            .filter(|t| !self.absent.contains(t))
            .map(|t| format!("{t}.csv"))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} {} gone from the data folder since the version being served; put {} back (a table with no rows is a file with only its header line)",
            gone.join(", "),
            if gone.len() == 1 { "is" } else { "are" },
            if gone.len() == 1 { "it" } else { "them" },
        ))
    }
}

/// A client as the service holds it.
pub struct Client {
    /// The folder name: the client's id.
    pub id: String,
    pub dir: PathBuf,
    pub config: ClientConfig,
    /// The last catalog that loaded without errors.
    pub catalog: RwLock<Arc<Catalog>>,
    pub data: RwLock<Arc<Data>>,
    /// Result cache: (report, block, query, data version) → result.
    pub cache: Mutex<crate::cache::Cache<Arc<svodka_report::ReportResult>>>,
    /// Pages and workbooks rendered from cached results: (result key, format, locale,
    /// live or not) → bytes. A page shows when it was first rendered.
    pub pages: Mutex<crate::cache::Cache<axum::body::Bytes>>,
    /// Where its reports run, from `cluster:` (resolved once); None: the service's engine.
    pub engine: Option<svodka_report::Engine>,
    /// Why the client cannot serve (its definitions or data failed to load at start and
    /// no refresh has loaded them since); its requests answer 503 with it.
    pub problem: RwLock<Option<String>>,
}

impl Client {
    /// Reads `dir/client.yaml`, the client's definitions and its data.
    pub fn load(dir: &Path) -> Result<Client, ServiceError> {
        Client::new(client_id(dir), dir, read_config(dir)?)
    }

    /// As `load`, but a client whose definitions or data do not load is still made: with
    /// nothing to serve and the error as its `problem`, for a refresh to repair. Only an
    /// unreadable `client.yaml` (no tokens, no data folder known) is an error.
    pub fn load_or_hold(dir: &Path) -> Result<Client, ServiceError> {
        let id = client_id(dir);
        let config = ClientConfig::read(dir)?;
        let engine = client_engine(dir, &config)?;
        let loaded = load_definitions(dir, &config)
            .and_then(|catalog| Ok((catalog, load_data(dir, &config, 1)?)));
        let (catalog, data, problem) = match loaded {
            Ok((catalog, data)) => (catalog, data, None),
            Err(e) => {
                let none = Data {
                    tables: LazyTables::empty(),
                    info: None,
                    version: 0,
                    absent: Vec::new(),
                };
                (Catalog::default(), none, Some(e.to_string()))
            }
        };
        Ok(Client::assemble(
            id, dir, config, engine, catalog, data, problem,
        ))
    }

    /// A client from its config (its folder holds `reports/` and relative data paths).
    pub fn new(id: String, dir: &Path, config: ClientConfig) -> Result<Client, ServiceError> {
        let catalog = load_definitions(dir, &config)?;
        let data = load_data(dir, &config, 1)?;
        let engine = client_engine(dir, &config)?;
        Ok(Client::assemble(
            id, dir, config, engine, catalog, data, None,
        ))
    }

    fn assemble(
        id: String,
        dir: &Path,
        config: ClientConfig,
        engine: Option<svodka_report::Engine>,
        catalog: Catalog,
        data: Data,
        problem: Option<String>,
    ) -> Client {
        Client {
            problem: RwLock::new(problem),
            engine,
            id,
            dir: dir.to_path_buf(),
            config,
            catalog: RwLock::new(Arc::new(catalog)),
            data: RwLock::new(Arc::new(data)),
            cache: Mutex::new(crate::cache::Cache::new(64, CACHE_BYTES)),
            pages: Mutex::new(crate::cache::Cache::new(64, PAGE_CACHE_BYTES)),
        }
    }

    /// Why the client cannot serve now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        self.problem.read().expect("problem lock").clone()
    }

    /// Every report's settings with the client's overrides applied.
    pub fn effective_settings(&self) -> Result<Vec<ReportSettings>, ServiceError> {
        effective_settings(&self.catalog(), &self.config, &self.dir)
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    pub fn data(&self) -> Arc<Data> {
        self.data.read().expect("data lock").clone()
    }

    /// The client's setting overrides of a report, as `(name, value text)`.
    pub fn settings_of(&self, report: &str) -> Vec<(String, String)> {
        let catalog = self.catalog();
        let has = catalog
            .reports
            .get(report)
            .and_then(|r| svodka_report::settings_of(&catalog, r).ok())
            .unwrap_or_default();
        client_overrides(&catalog, &self.config, report, &has)
            .into_iter()
            .map(|(name, text, _)| (name, text))
            .collect()
    }
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingSource {
    /// The report's own default.
    Default,
    /// `settings: {name: value}` in `client.yaml`: every report that has the setting.
    Client,
    /// `settings: {report: {name: value}}` in `client.yaml`: this report only.
    ClientReport,
}

/// One setting as a client's report sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSetting {
    pub name: String,
    pub value: String,
    pub source: SettingSource,
}

/// A report's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub report: String,
    pub settings: Vec<EffectiveSetting>,
}

/// The settings of every report with the client's overrides applied. Every problem —
/// an entry that names neither a report nor a setting, a report's entry that is not a
/// map, a value out of type or bounds — is found, not just the first, each at its
/// `file:line:column`.
pub fn effective_settings(
    catalog: &Catalog,
    config: &ClientConfig,
    dir: &Path,
) -> Result<Vec<ReportSettings>, ServiceError> {
    let file = dir.join("client.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let src = svodka_report::DefinitionFile::new(file.display().to_string(), text);
    let mut problems: Vec<String> = Vec::new();
    let mut problem = |path: &str, message: String| {
        let pos = src.key_pos(path);
        let line = format!(
            "{}:{}:{}: {path}: {message}",
            src.name, pos.line, pos.column
        );
        if !problems.contains(&line) {
            problems.push(line);
        }
    };
    let declared: BTreeMap<&String, Vec<svodka_report::settings::Setting>> = catalog
        .reports
        .iter()
        .map(|(id, report)| Ok((id, svodka_report::settings_of(catalog, report)?)))
        .collect::<Result<_, svodka_report::ReportError>>()
        .map_err(|e| ServiceError::Config {
            file: file.clone(),
            message: e.to_string(),
        })?;
    for (key, value) in &config.settings {
        let path = format!("settings.{key}");
        if catalog.reports.contains_key(key) {
            if !value.is_mapping() {
                problem(
                    &path,
                    format!("the settings of report `{key}` are a map: `{key}: {{name: value}}`"),
                );
            }
        } else if !declared.values().flatten().any(|s| &s.name == key) {
            let names: Vec<&str> = catalog
                .reports
                .keys()
                .map(String::as_str)
                .chain(declared.values().flatten().map(|s| s.name.as_str()))
                .collect();
            problem(
                &path,
                format!(
                    "`{key}` is neither a report nor a setting of any report{}",
                    svodka_report::error::did_you_mean(key, names)
                ),
            );
        }
    }
    let mut out = Vec::new();
    for (id, report_settings) in &declared {
        let overrides = client_overrides(catalog, config, id, report_settings);
        let pairs: Vec<(String, String)> = overrides
            .iter()
            .map(|(n, t, _)| (n.clone(), t.clone()))
            .collect();
        let Ok(values) = svodka_report::run::setting_values(report_settings, &pairs) else {
            // One override at a time, so that every bad one is named.
            for (name, text, source) in &overrides {
                let one = [(name.clone(), text.clone())];
                if let Err(e) = svodka_report::run::setting_values(report_settings, &one) {
                    let path = match source {
                        SettingSource::ClientReport => format!("settings.{id}.{name}"),
                        _ => format!("settings.{name}"),
                    };
                    problem(&path, format!("report `{id}`: {e}"));
                }
            }
            continue;
        };
        out.push(ReportSettings {
            report: id.to_string(),
            settings: values
                .into_iter()
                .map(|(name, v)| EffectiveSetting {
                    source: overrides
                        .iter()
                        .rev()
                        .find(|(n, _, _)| *n == name)
                        .map_or(SettingSource::Default, |(_, _, s)| *s),
                    name,
                    value: v.to_string(),
                })
                .collect(),
        });
    }
    if !problems.is_empty() {
        return Err(ServiceError::Settings { problems });
    }
    Ok(out)
}

/// The client's overrides of `report`'s settings as `(name, value text, source)`: the
/// client-wide ones among the report's own settings `has`, then the report's own entry
/// (which wins, coming later).
fn client_overrides(
    catalog: &Catalog,
    config: &ClientConfig,
    report: &str,
    has: &[svodka_report::settings::Setting],
) -> Vec<(String, String, SettingSource)> {
    let text = svodka_report::settings::setting_text;
    let mut out: Vec<(String, String, SettingSource)> = config
        .settings
        .iter()
        .filter(|(k, _)| !catalog.reports.contains_key(*k) && has.iter().any(|s| &s.name == *k))
        .map(|(k, v)| (k.clone(), text(v), SettingSource::Client))
        .collect();
    if let Some(serde_yaml::Value::Mapping(own)) = config.settings.get(report) {
        out.extend(own.iter().filter_map(|(k, v)| {
            Some((
                k.as_str()?.to_string(),
                text(v),
                SettingSource::ClientReport,
            ))
        }));
    }
    out
}

/// The client's definitions, checked as loading and every refresh need them: every block
/// compiles, and the client's setting overrides fit the reports.
pub fn load_definitions(dir: &Path, config: &ClientConfig) -> Result<Catalog, ServiceError> {
    let catalog = load_catalog(dir)?;
    effective_settings(&catalog, config, dir)?;
    Ok(catalog)
}

/// A client's id: the name of its folder.
fn client_id(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Where a client's reports run when `cluster:` names a scheduler, checked (the file
/// named in the error); None: wherever the service runs them.
fn client_engine(
    dir: &Path,
    config: &ClientConfig,
) -> Result<Option<svodka_report::Engine>, ServiceError> {
    let Some(addr) = &config.cluster else {
        return Ok(None);
    };
    let cluster =
        svodka_cluster::Cluster::at(addr, "cluster:").map_err(|e| ServiceError::Config {
            file: dir.join(svodka_config::CLIENT_FILE),
            message: e.to_string(),
        })?;
    Ok(Some(svodka_report::Engine::Remote(Arc::new(cluster))))
}

/// The shipped definitions with the client's `reports/` folder over them.
fn load_catalog(dir: &Path) -> Result<Catalog, ServiceError> {
    let own = dir.join("reports");
    let paths = if own.is_dir() { vec![own] } else { vec![] };
    let err = |message: String| ServiceError::Definitions {
        client: dir.display().to_string(),
        message,
    };
    let catalog = svodka_sources::catalog(&paths).map_err(|e| err(e.to_string()))?;
    // Every block compiled against empty tables, as `svodka check` does, on a thread of
    // its own: callers may be inside the service's runtime.
    let checked = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| e.to_string())?
                    .block_on(svodka_report::check(&catalog))
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the definitions check stopped".into()))
    });
    checked.map_err(err)?;
    Ok(catalog)
}

/// Opens the client's data and reads every table now, so that a broken file is found
/// at load or refresh, not by the first request.
pub fn load_data(dir: &Path, config: &ClientConfig, version: u64) -> Result<Data, ServiceError> {
    let folder = svodka_sources::client_data(dir, &config.data.folder);
    let (tables, info) =
        svodka_sources::open_data(&folder, |_| {}).map_err(|e| ServiceError::Data {
            client: dir.display().to_string(),
            message: e.to_string(),
        })?;
    let names: Vec<String> = svodka_schema::TABLES
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    tables.prefetch(&names).map_err(|e| ServiceError::Data {
        client: dir.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Data {
        tables,
        info,
        version,
        absent: svodka_sources::absent_tables(&folder),
    })
}
