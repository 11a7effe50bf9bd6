//! Renderers: turn a `ReportResult` into something people or programs read — JSON (the
//! public contract), a self-contained HTML page, an xlsx workbook. They see Arrow batches
//! and column metadata, never plans.

pub mod chart;
pub mod format;
pub mod html;
pub mod json;
pub mod table;
pub mod values;
pub mod xlsx;

pub use format::Locale;

/// How output is presented, beyond the report's own data.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub locale: Locale,
    /// When the output was made (shown on the page and the parameters sheet).
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// Which data the report was computed from (a data set's name and snapshot).
    pub data_version: Option<String>,
    /// Rows beyond this are left out of HTML tables (the page says so); xlsx has them all.
    pub max_html_rows: usize,
    /// The page is served live — period and filter controls, export and refresh buttons,
    /// and clicking a dimension value re-runs it with that filter — at these addresses;
    /// None: a file.
    pub live: Option<LivePage>,
}

/// Where a live page's controls lead: the serving service's own addresses (the renderer
/// knows none of them).
#[derive(Debug, Clone, Default)]
pub struct LivePage {
    /// The run's query string as the service received it (without the output options),
    /// kept by the controls and the export links.
    pub query: String,
    /// The report's workbook: `?{query}&format=xlsx` follows.
    pub export: String,
    /// The start of a block's workbook: the block id, then `?{query}&format=xlsx`.
    pub block_export: String,
    /// Where a refresh of the data is asked for (POST, answering `{"job": id}`).
    pub refresh: String,
    /// The start of a refresh job's state: the job id follows.
    pub jobs: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            locale: Locale::Ru,
            generated_at: chrono::Utc::now(),
            data_version: None,
            max_html_rows: 2000,
            live: None,
        }
    }
}

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
    /// The page template failed (a bug in the template, reported with its line).
    #[error("HTML template: {0}")]
    Template(String),
    /// The workbook could not be written.
    #[error("xlsx, {context}: {message}")]
    Xlsx { context: String, message: String },
}
