//! The plugin SDK: what a connector author depends on. Implement [`Connector`] (a name,
//! the tables with their schemas, and `open(table, request)` giving record batches), call
//! [`export!`] once, build the crate as a `cdylib`; Svodka loads it at run time.
//!
//! The ABI (version [`ABI_VERSION`]) is four C functions and the Arrow C Stream interface:
//!
//! ```c
//! uint32_t    svodka_plugin_abi_version(void);     // the handshake: checked first
//! const char *svodka_plugin_describe(void);         // JSON {name, version, tables: [{name, columns}]}
//! int32_t     svodka_plugin_open(const char *table, const char *request_json,
//!                                struct ArrowArrayStream *out, char **error);  // 0: ok
//! void        svodka_plugin_free_error(char *error);
//! ```
//!
//! A panic inside the connector — in `open` or while a stream is read — is caught here at
//! the boundary and reaches the host as an error; it never unwinds into the host.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow::array::RecordBatchReader;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::RecordBatch;

pub use arrow;
pub use serde_json;

/// The ABI this SDK speaks; the host refuses a plugin of another.
pub const ABI_VERSION: u32 = 1;

/// What the host asks of a table: the plugin's settings (the `--plugin-config` file as
/// JSON) and, for incremental connectors, the moment to read changes from.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub settings: serde_json::Value,
    /// RFC 3339, when the host has a watermark.
    pub since: Option<String>,
}

/// A connector.
pub trait Connector: Send + Sync + 'static {
    /// A short name (`amocrm`).
    fn name(&self) -> &str;
    /// The plugin's own version.
    fn version(&self) -> &str;
    /// The tables it provides, with their schemas (canonical tables by their canonical
    /// names; others are extra tables for custom models).
    fn tables(&self) -> Vec<(String, SchemaRef)>;
    /// A table's rows.
    fn open(
        &self,
        table: &str,
        request: &Request,
    ) -> Result<Box<dyn RecordBatchReader + Send>, String>;
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A stream whose every read is guarded against panics.
struct Guarded {
    inner: Box<dyn RecordBatchReader + Send>,
    schema: SchemaRef,
    plugin: String,
}

impl Iterator for Guarded {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.next())) {
            Ok(item) => item,
            Err(p) => Some(Err(ArrowError::ExternalError(
                format!(
                    "plugin {} panicked while reading: {}",
                    self.plugin,
                    panic_text(p)
                )
                .into(),
            ))),
        }
    }
}

impl RecordBatchReader for Guarded {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// The machinery behind [`export!`]; not for direct use.
#[doc(hidden)]
pub mod ffi {
    use super::*;

    pub fn describe(c: &dyn Connector) -> *const c_char {
        static TEXT: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let text = catch_unwind(AssertUnwindSafe(|| {
                let tables: Vec<serde_json::Value> = c
                    .tables()
                    .iter()
                    .map(|(name, schema)| {
                        let columns: Vec<serde_json::Value> = schema
                            .fields()
                            .iter()
                            .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                            .collect();
                        serde_json::json!({"name": name, "columns": columns})
                    })
                    .collect();
                serde_json::json!({"name": c.name(), "version": c.version(), "tables": tables}).to_string()
            }))
            .unwrap_or_else(|p| serde_json::json!({"error": panic_text(p)}).to_string());
            CString::new(text).unwrap_or_default()
        })
        .as_ptr()
    }

    fn error_out(error: *mut *mut c_char, text: String) -> i32 {
        if !error.is_null() {
            let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
            // SAFETY: the host passes a valid pointer to a `char *` it owns.
            unsafe { *error = c.into_raw() };
        }
        1
    }

    /// # Safety
    /// `table` and `request` are NUL-terminated strings; `out` points to a writable
    /// `ArrowArrayStream`; `error` is null or points to a writable `char *`.
    pub unsafe fn open(
        c: &dyn Connector,
        table: *const c_char,
        request: *const c_char,
        out: *mut FFI_ArrowArrayStream,
        error: *mut *mut c_char,
    ) -> i32 {
        if table.is_null() || out.is_null() {
            return error_out(error, "null argument".into());
        }
        // SAFETY: checked non-null; the host passes NUL-terminated strings.
        let table = unsafe { CStr::from_ptr(table) }
            .to_string_lossy()
            .into_owned();
        let request = if request.is_null() {
            serde_json::Value::Null
        } else {
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(request) }
                .to_string_lossy()
                .into_owned();
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        };
        let request = Request {
            settings: request.get("settings").cloned().unwrap_or_default(),
            since: request
                .get("since")
                .and_then(|s| s.as_str())
                .map(str::to_string),
        };
        let name = c.name().to_string();
        match catch_unwind(AssertUnwindSafe(|| c.open(&table, &request))) {
            Ok(Ok(reader)) => {
                let schema = reader.schema();
                let guarded = Guarded {
                    inner: reader,
                    schema,
                    plugin: name,
                };
                let stream = FFI_ArrowArrayStream::new(Box::new(guarded));
                // SAFETY: `out` is non-null and writable; the host takes ownership.
                unsafe { std::ptr::write(out, stream) };
                0
            }
            Ok(Err(e)) => error_out(error, e),
            Err(p) => error_out(
                error,
                format!(
                    "plugin {name} panicked opening `{table}`: {}",
                    panic_text(p)
                ),
            ),
        }
    }

    /// # Safety
    /// `e` is null or a string `open` gave out.
    pub unsafe fn free_error(e: *mut c_char) {
        if !e.is_null() {
            // SAFETY: made by `CString::into_raw` in `error_out`.
            drop(unsafe { CString::from_raw(e) });
        }
    }
}

/// Exports a connector: `svodka_plugin_sdk::export!(MyConnector::new());`
#[macro_export]
macro_rules! export {
    ($make:expr) => {
        fn __svodka_connector() -> &'static dyn $crate::Connector {
            static C: std::sync::OnceLock<Box<dyn $crate::Connector>> = std::sync::OnceLock::new();
            C.get_or_init(|| Box::new($make)).as_ref()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn svodka_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn svodka_plugin_describe() -> *const std::ffi::c_char {
            $crate::ffi::describe(__svodka_connector())
        }

        /// # Safety
        /// See `svodka_plugin_sdk::ffi::open`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_open(
            table: *const std::ffi::c_char,
            request: *const std::ffi::c_char,
            out: *mut $crate::arrow::ffi_stream::FFI_ArrowArrayStream,
            error: *mut *mut std::ffi::c_char,
        ) -> i32 {
            // SAFETY: the host keeps the contract of the ABI.
            unsafe { $crate::ffi::open(__svodka_connector(), table, request, out, error) }
        }

        /// # Safety
        /// `e` is null or an error `svodka_plugin_open` gave out.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_free_error(e: *mut std::ffi::c_char) {
            // SAFETY: as documented.
            unsafe { $crate::ffi::free_error(e) }
        }
    };
}
