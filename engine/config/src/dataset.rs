//! `dataset.yaml`: what a data folder or a snapshot holds — whose data, in which time
//! zone, from which portal, and the day it was extracted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, parse_yaml, read_yaml, zone_named};

/// The file name of the data set's description inside a data folder or snapshot.
pub const DATASET_FILE: &str = "dataset.yaml";

/// `dataset.yaml`: what a data folder describes — whose data, in which time zone, and the
/// day it was extracted (the "today" of reports run on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    pub name: String,
    /// IANA time zone of the client, e.g. `Europe/Moscow` (checked when read).
    pub timezone: String,
    /// The CRM portal base URL, for links.
    #[serde(default)]
    pub portal_url: Option<String>,
    /// The day the data was extracted.
    pub snapshot_date: chrono::NaiveDate,
    /// How the data was produced (`demo seed 42`, `bitrix24 sync`…).
    #[serde(default)]
    pub origin: Option<String>,
    /// Where each CRM entity's page is: `deal`, `lead`, `company` or `contact` → an
    /// address with `{id}` for the entity's id and `{portal}` for `portal_url`
    /// (`{portal}/crm/deal/details/{id}/`). A sync writes its CRM's; none: no links.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

impl DatasetInfo {
    /// Reads and checks `dir/dataset.yaml`; Ok(None) when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<DatasetInfo>, ConfigError> {
        let file = dir.join(DATASET_FILE);
        let exists = file.try_exists().map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        if !exists {
            return Ok(None);
        }
        let info: DatasetInfo = read_yaml(&file)?;
        info.checked(file).map(Some)
    }

    /// Reads and checks the text of a `dataset.yaml` kept elsewhere (in a bucket); `file`
    /// names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<DatasetInfo, ConfigError> {
        parse_yaml::<DatasetInfo>(text, file)?.checked(file.to_path_buf())
    }

    /// The description if what it says holds: an IANA zone, page links that are web
    /// addresses.
    fn checked(self, file: std::path::PathBuf) -> Result<DatasetInfo, ConfigError> {
        let info = self;
        zone_named(&info.timezone, &file, "timezone")?;
        for (entity, template) in &info.links {
            if let Some(message) = svodka_schema::link_problem(entity, template) {
                return Err(ConfigError::Invalid {
                    file,
                    key: format!("links.{entity}"),
                    message,
                });
            }
        }
        Ok(info)
    }

    /// The text of its `dataset.yaml`.
    pub fn to_text(&self) -> String {
        serde_yaml::to_string(self).expect("plain struct serialises")
    }

    /// Writes `dir/dataset.yaml`.
    pub fn write(&self, dir: &Path) -> Result<(), ConfigError> {
        let file = dir.join(DATASET_FILE);
        let text = self.to_text();
        std::fs::write(&file, text).map_err(|source| ConfigError::Io { file, source })
    }
}
