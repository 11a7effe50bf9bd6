//! Bitrix24 REST as the connector speaks it (facts: `../shared/docs/bitrix24-api.md`):
//! values read leniently (`wire`), the reply envelope and its errors classified for
//! retrying (`wire`), fast-export pages packed into `batch` calls (`batch`), and the
//! portal's leaky-bucket rate limit kept on our side (`pace`), and records mapped to the
//! canonical tables with what did not map counted (`map`).

pub mod batch;
pub mod client;
pub mod map;
pub mod pace;
pub mod wire;

pub use wire::{ApiError, ErrorKind};
