//! 1C:Enterprise into the snapshot store (facts: `../shared/docs/onec-1c.md`): the
//! standard OData interface with a mapping checked against `$metadata` (`odata`,
//! `metadata`), a custom HTTP service (`service`) or exported files (`files`), each a
//! `Reader` of counterparties and sales; `sync` writes them as `onec_counterparties` and
//! `onec_sales`, re-reading a window of recent documents on each run.

pub mod config;
pub mod files;
pub mod http;
pub mod metadata;
pub mod odata;
pub mod rows;
pub mod service;
pub mod sync;
pub mod value;

use std::path::PathBuf;

use rows::{Counterparty, Sale};

/// Where counterparties and sales come from.
pub trait Reader {
    /// Every counterparty (the catalog is small: read whole each time).
    fn counterparties(
        &mut self,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Counterparty>, Error>;
    /// Sales dated at or after `since` (microseconds, UTC), or all.
    fn sales(
        &mut self,
        since: Option<i64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Sale>, Error>;
    /// HTTP requests sent so far.
    fn requests(&self) -> u64;
    /// Rows left out, with why (`sale without a number, date or counterparty: 2`).
    fn skipped(&self) -> Vec<String>;
}

/// What went wrong reading 1C.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are incomplete or wrong.
    #[error("1C settings: {0}")]
    Settings(String),
    /// The mapping names what `$metadata` does not have.
    #[error("1C mapping does not fit the infobase's $metadata:\n  {}", .0.join("\n  "))]
    Mapping(Vec<String>),
    /// 1C refused the login.
    #[error("1C {url}: {message}")]
    Refused { url: String, message: String },
    /// An OData error reply (`odata.error`): its internal code and message.
    #[error("1C {url}: HTTP {status}, OData error {code}: {message}")]
    OData {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    /// A reply that is not what was asked for (an HTML page, not JSON).
    #[error("1C {url}: {message}")]
    Reply { url: String, message: String },
    /// The server could not be reached, again and again.
    #[error("1C {url}: {message} (after {attempts} attempts)")]
    Unreachable {
        url: String,
        message: String,
        attempts: u32,
    },
    /// An exported file could not be read.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// Rows could not be made into a canonical table.
    #[error("1C sync, table `{table}`: {message}")]
    Map { table: String, message: String },
    /// The snapshot store refused.
    #[error(transparent)]
    Store(#[from] svodka_store::StoreError),
}
