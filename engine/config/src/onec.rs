//! The 1C connector's settings (a YAML file of their own, or the `onec:` section of
//! `client.yaml`): where the data comes from — the standard OData interface, a custom
//! HTTP service or exported files — and, for OData, which catalog holds the
//! counterparties and which documents are the sales.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ConfigError, read_yaml, zone_named};

/// The 1C connector's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnecConfig {
    /// The standard OData interface (with `counterparties` and `sales` mappings).
    #[serde(default)]
    pub odata: Option<Login>,
    /// A custom HTTP service implementing the contract of `docs/onec.md`.
    #[serde(default)]
    pub http: Option<Login>,
    /// Exported CSV or XLSX files.
    #[serde(default)]
    pub files: Option<Files>,
    /// The 1C server's time zone: 1C writes local times without an offset.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub counterparties: Option<Counterparties>,
    #[serde(default)]
    pub sales: Option<Sales>,
    /// Days of documents read again before the last sync's latest (documents get
    /// back-dated and edited).
    #[serde(default = "default_overlap")]
    pub overlap_days: u32,
    /// Rows per OData page.
    #[serde(default = "default_page")]
    pub page: usize,
}

fn default_timezone() -> String {
    svodka_schema::values::DEFAULT_TIMEZONE.into()
}

fn default_overlap() -> u32 {
    45
}

fn default_page() -> usize {
    500
}

/// A URL and an infobase user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The infobase's publication: `http://server/base` (OData adds
    /// `/odata/standard.odata`; an HTTP service is given whole: `…/hs/svodka`).
    pub url: String,
    pub user: String,
    /// The password, or (better) the environment variable holding it.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

/// The counterparty catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counterparties {
    /// `Catalog_Контрагенты`.
    pub set: String,
    #[serde(default = "description")]
    pub name: String,
    pub inn: String,
    #[serde(default)]
    pub kpp: Option<String>,
}

fn description() -> String {
    "Description".into()
}

/// A document's contract: a text field, or a reference named by a catalog's field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Contract {
    Field(String),
    Lookup {
        /// `ДоговорКонтрагента_Key`.
        key: String,
        /// `Catalog_ДоговорыКонтрагентов`.
        set: String,
        #[serde(default = "description")]
        name: String,
    },
}

/// The sales documents.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sales {
    /// `Document_РеализацияТоваровУслуг`.
    pub set: String,
    /// The sale's id in reports: the document number by default.
    #[serde(default = "number")]
    pub id: String,
    #[serde(default = "date")]
    pub date: String,
    /// `Контрагент_Key`.
    pub counterparty: String,
    /// `СуммаДокумента`.
    pub amount: String,
    /// A header field, or `TablePart/Field` summed over the rows (`Товары/Количество`).
    #[serde(default)]
    pub quantity: Option<String>,
    #[serde(default)]
    pub volume: Option<String>,
    #[serde(default)]
    pub contract: Option<Contract>,
    #[serde(default = "posted")]
    pub posted: String,
    /// Documents marked for deletion are left out.
    #[serde(default = "deletion_mark")]
    pub deletion_mark: String,
}

fn number() -> String {
    "Number".into()
}
fn date() -> String {
    "Date".into()
}
fn posted() -> String {
    "Posted".into()
}
fn deletion_mark() -> String {
    "DeletionMark".into()
}

/// Exported files: a file per table and which column holds what.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub counterparties: FileTable,
    pub sales: FileTable,
}

/// One exported file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    /// A `.csv` (`;` or `,` separated, UTF-8) or `.xlsx` file, relative to the settings.
    pub path: PathBuf,
    /// The sheet of a workbook (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// Canonical column → the file's header (`inn: ИНН`).
    pub columns: BTreeMap<String, String>,
}

impl OnecConfig {
    /// Reads and checks a settings file of its own.
    pub fn read(file: &Path) -> Result<OnecConfig, ConfigError> {
        let config: OnecConfig = read_yaml(file)?;
        zone_named(&config.timezone, file, "timezone")?;
        Ok(config)
    }
}
