//! The report language: YAML models and reports, validated with exact positions and
//! compiled to DataFusion logical plans, then run over tables a caller supplies.
//!
//! Flow: `catalog` loads and checks files (`spec` is their shape, `source` their
//! positions) → `compile` builds plans (`expr` resolves names, binds values) → `run`
//! executes them into a `result::ReportResult`.

pub mod catalog;
pub mod compile;
pub mod definition;
pub mod error;
pub mod expr;
pub mod functions;
pub mod params;
pub mod result;
pub mod run;
pub mod settings;
pub mod spec;
pub mod tables;
pub mod time;

pub use catalog::Catalog;
pub use definition::DefinitionFile;
pub use error::{Diagnostic, ReportError};
pub use params::{FilterValue, RunParams};
pub use result::{BlockKind, BlockResult, ChildResult, ColumnMeta, Previous, ReportResult};
pub use run::{Engine, RemoteEngine, RunRequest, check, check_only, explain, run, settings_of};
pub use settings::{Setting, SettingValue};
pub use spec::{ChartKind, ChartSpec, Shift, ValueType};
pub use tables::{LazyTables, Loaded, ObjectStoreAt, Opened, TableSet};
