//! Bitrix24 REST as the connector speaks it (facts: `../shared/docs/bitrix24-api.md`):
//! values read leniently (`wire`), the reply envelope and its errors classified for
//! retrying (`wire`), fast-export pages packed into `batch` calls (`batch`), and the
//! portal's leaky-bucket rate limit kept on our side (`pace`), and records mapped to the
//! canonical tables with what did not map counted (`map`).

pub mod batch;
pub mod map;
pub mod pace;
pub mod portal;
pub mod settings;
pub mod spool;
pub mod sync;
pub mod wire;

pub use wire::{ApiError, ErrorKind};

use std::path::PathBuf;

/// What went wrong syncing with a portal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The portal refused, and retrying would not help (or the retries ran out).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The portal could not be reached, again and again.
    #[error("Bitrix24 {method}: {message} (after {attempts} attempts)")]
    Unreachable {
        method: String,
        message: String,
        attempts: u32,
    },
    /// Refreshing the OAuth token failed.
    #[error("Bitrix24 OAuth refresh: {0}")]
    Refresh(String),
    /// The sync's spool (pages kept for resuming) could not be written or read.
    #[error("{path}: {message}")]
    Spool { path: PathBuf, message: String },
    /// The snapshot store refused.
    #[error(transparent)]
    Store(#[from] svodka_store::StoreError),
    /// Records could not be made into a canonical table.
    #[error("Bitrix24 sync, table `{table}`: {message}")]
    Map { table: String, message: String },
    /// The sync's settings do not hold together.
    #[error("Bitrix24 sync: {0}")]
    Settings(String),
}
