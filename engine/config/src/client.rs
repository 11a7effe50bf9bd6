//! `clients/<name>/client.yaml`: a client company of the service — display name, time
//! zone, locale, CRM portal, data folder, report settings, token hashes, its connectors
//! and the cluster its reports run on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Bitrix24Config, ConfigError, OnecConfig, read_yaml, zone_named};

/// The file name of a client's configuration inside its folder.
pub const CLIENT_FILE: &str = "client.yaml";

/// `client.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The company's name as shown on pages.
    pub name: String,
    /// IANA time zone; default: the data set's, else Europe/Moscow.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `ru` (default) or `en`.
    #[serde(default)]
    pub locale: Option<String>,
    /// The CRM portal, for links; default: the data set's.
    #[serde(default)]
    pub portal_url: Option<String>,
    pub data: DataConfig,
    /// Setting overrides: a setting by name for every report that has it
    /// (`deal_forgotten_days: 21`), or a report by id with its own
    /// (`forgotten: {deal_forgotten_days: 30}`), which wins over the former.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_yaml::Value>,
    /// Months of history kept by refreshes.
    #[serde(default = "default_retention")]
    pub retention_months: u32,
    /// SHA-256 (hex) of each API token of the client (`svodka token hash`).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// No token needed (the demo client on loopback).
    #[serde(default)]
    pub open: bool,
    /// The client's Bitrix24 portal, for `svodka sync --client`.
    #[serde(default)]
    pub bitrix24: Option<Bitrix24Config>,
    /// The client's 1C, for `svodka sync --client`.
    #[serde(default)]
    pub onec: Option<OnecConfig>,
    /// The scheduler (`HOST:PORT`) of the cluster this client's reports run on; default:
    /// the service's (`serve --cluster`), else in the service's process.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// Where a client's data comes from (`data: { folder: path }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A snapshot store or a folder in the CSV layout (relative to the client's folder),
    /// or a store in a bucket (`s3://bucket/prefix`).
    pub folder: PathBuf,
}

fn default_retention() -> u32 {
    24
}

impl ClientConfig {
    /// A client named `name` over data folder `folder`, everything else as a `client.yaml`
    /// that says nothing more: no tokens, not open, the shipped settings.
    pub fn over(name: &str, folder: &Path) -> ClientConfig {
        ClientConfig {
            name: name.to_string(),
            timezone: None,
            locale: None,
            portal_url: None,
            data: DataConfig {
                folder: folder.to_path_buf(),
            },
            settings: Default::default(),
            retention_months: default_retention(),
            tokens: vec![],
            open: false,
            bitrix24: None,
            onec: None,
            cluster: None,
        }
    }

    /// Reads and checks `dir/client.yaml`: its keys, its time zones and its token hashes.
    pub fn read(dir: &Path) -> Result<ClientConfig, ConfigError> {
        let file = dir.join(CLIENT_FILE);
        let config: ClientConfig = read_yaml(&file)?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            message: message.to_string(),
        };
        for t in &config.tokens {
            if t.len() != 64 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "tokens",
                    "each is the SHA-256 of a token, 64 hex digits (`svodka token hash`)",
                ));
            }
        }
        if let Some(zone) = &config.timezone {
            zone_named(zone, &file, "timezone")?;
        }
        if let Some(onec) = &config.onec {
            zone_named(&onec.timezone, &file, "onec.timezone")?;
        }
        if let Some(locale) = &config.locale
            && !matches!(locale.as_str(), "ru" | "en")
        {
            return Err(invalid("locale", "expected ru or en"));
        }
        Ok(config)
    }

    /// The client's time zone when `client.yaml` names one (checked when read).
    pub fn zone(&self) -> Option<chrono_tz::Tz> {
        self.timezone.as_deref().and_then(|z| z.parse().ok())
    }
}
