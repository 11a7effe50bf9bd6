//! Renderers: turn a `ReportResult` into something people or programs read. They see
//! Arrow batches and column metadata, never plans.

pub mod json;
pub mod values;

/// What went wrong rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A column's Arrow type cannot be shown as its declared value type.
    #[error("block `{block}`, column `{column}`: cannot show {data_type} as {value_type}")]
    Unrepresentable {
        block: String,
        column: String,
        data_type: String,
        value_type: &'static str,
    },
    /// The result lacks a column its metadata announces.
    #[error("block `{block}`: the result has no column `{column}`")]
    MissingColumn { block: String, column: String },
}
