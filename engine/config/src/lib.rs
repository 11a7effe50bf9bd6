//! Svodka's configuration as plain data: a data set's `dataset.yaml`, a client's
//! `client.yaml` with its connector sections (`bitrix24:`, `onec:`), and the [`Clock`]
//! every run, sync and service reads "now" from. Reading and checking the files is all
//! this crate does: the CLI, the service and the connectors share it, and none of them
//! needs another's code to read a field.

mod client;
mod clock;
mod dataset;

pub mod bitrix24;
pub mod onec;

use std::path::PathBuf;

pub use crate::bitrix24::Bitrix24Config;
pub use crate::client::{CLIENT_FILE, ClientConfig, DataConfig};
pub use crate::clock::Clock;
pub use crate::dataset::{DATASET_FILE, DatasetInfo};
pub use crate::onec::OnecConfig;

/// What went wrong reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid YAML, or has an unknown or mistyped key.
    #[error("{file}:{line}: {message}")]
    Yaml {
        file: PathBuf,
        line: u64,
        message: String,
    },
    /// A value of the right type that means nothing (an unknown time zone, a token hash
    /// that is not one).
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

/// Reads a YAML file into `T`, its errors naming the file and line.
fn read_yaml<T: serde::de::DeserializeOwned>(file: &std::path::Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    parse_yaml(&text, file)
}

/// A YAML file's text as `T`; `file` names it in errors.
fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &std::path::Path,
) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line() as u64).unwrap_or(1),
        message: e.to_string(),
    })
}

/// An IANA time zone by name, or why not (`key` names the field in `file`).
fn zone_named(name: &str, file: &std::path::Path, key: &str) -> Result<chrono_tz::Tz, ConfigError> {
    svodka_schema::values::zone(name).map_err(|message| ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests;
