//! The plugin SDK: what a connector author depends on. Implement [`Connector`] (a name,
//! the tables with their schemas, and `configure` giving a [`Session`] whose `open(table)`
//! gives record batches), call [`export!`] once, build the crate as a `cdylib`; Svodka
//! loads it at run time. The canonical tables, value parsers and row builders come with it
//! ([`canonical`], [`money_text`], [`local_time`], [`TableBuilder`]).
//!
//! The ABI (version [`ABI_VERSION`]) is seven C functions, the Arrow C Data interface for
//! schemas and the Arrow C Stream interface for rows:
//!
//! ```c
//! uint32_t    svodka_plugin_abi_version(void);      // the handshake: checked first
//! const char *svodka_plugin_describe(void);          // JSON {name, version, tables: [name…]}
//! int32_t     svodka_plugin_schema(const char *table, struct ArrowSchema *out);   // 0: ok
//! int32_t     svodka_plugin_configure(const char *request_json, void **session,
//!                                     char **error);  // once per sync; 0: ok
//! int32_t     svodka_plugin_open(void *session, const char *table,
//!                                struct ArrowArrayStream *out, char **error);     // 0: ok
//! void        svodka_plugin_close(void *session);
//! void        svodka_plugin_free_error(char *error);
//! ```
//!
//! A panic inside the connector — in `tables`, `configure`, `open` or while a stream is
//! read — is caught here at the boundary and reaches the host as an error naming where it
//! happened; it never unwinds into the host, and nothing is printed of it on the way. A
//! batch whose columns differ from the stream's declared schema is refused here, naming
//! the column, before it crosses the boundary.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};

use arrow::array::RecordBatchReader;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi::FFI_ArrowSchema;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::RecordBatch;

pub use arrow;
pub use chrono;
pub use chrono_tz;
pub use serde_json;
pub use svodka_schema::values::{DEFAULT_TIMEZONE, Tz, local_time, local_to_utc, money_text, zone};
pub use svodka_schema::{ColumnType, TableBuilder, Value};

/// The ABI this SDK speaks; the host refuses a plugin of another.
pub const ABI_VERSION: u32 = 2;

/// The canonical schema of a table (`deals`, `activities`…), as Svodka checks it: declare
/// a canonical table with it (or with fewer nullable columns) and build its rows with
/// [`builder`].
pub fn canonical(table: &str) -> Option<SchemaRef> {
    svodka_schema::table(table).map(|t| t.schema())
}

/// The names of the canonical tables, in Svodka's order.
pub fn canonical_tables() -> impl Iterator<Item = &'static str> {
    svodka_schema::TABLES.iter().map(|t| t.name)
}

/// A row builder for a canonical table: rows by column name or in canonical order, each
/// value checked against its column's type before anything is appended.
pub fn builder(table: &str) -> Result<TableBuilder, String> {
    svodka_schema::table(table)
        .map(TableBuilder::new)
        .ok_or_else(|| format!("`{table}` is not a canonical table"))
}

/// What the host hands `configure`: the plugin's settings (the `--plugin-config` file as
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
    /// names, see [`canonical`]; others are extra tables for custom models).
    fn tables(&self) -> Vec<(String, SchemaRef)>;
    /// Called once per sync, before any table is opened: read the settings, log in, read
    /// the files every table needs. A settings error belongs here, not to a table.
    fn configure(&self, request: &Request) -> Result<Box<dyn Session>, String>;
    /// Where the CRM's pages of its entities are: `deal`, `lead`, `company` or `contact`
    /// → an address with `{id}` for the id and `{portal}` for the portal's address
    /// (`{portal}/leads/detail/{id}`). Reports link ids and titles to them; none by
    /// default.
    fn links(&self) -> Vec<(String, String)> {
        vec![]
    }
}

/// One sync's state, shared by every table it opens.
pub trait Session: Send + Sync {
    /// A table's rows, as a stream of batches that fit the schema `tables` declared.
    fn open(&self, table: &str) -> Result<Box<dyn RecordBatchReader + Send>, String>;
}

thread_local! {
    /// True while this thread runs connector code under [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panics of guarded connector code to the error the host gets instead of standard
/// error (the host prints that error once, in its own words); other panics of the plugin
/// (its own threads) go to the hook that was there before.
fn quiet_guarded_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs connector code; a panic comes back as `Err("panicked: message (at file:line)")`.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    quiet_guarded_panics();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        match PANIC_AT.with(|p| p.borrow_mut().take()) {
            Some(at) => format!("panicked: {message} (at {at})"),
            None => format!("panicked: {message}"),
        }
    })
}

/// A table's stream as it crosses the boundary: every read guarded against panics, every
/// batch checked against the declared schema (a mismatch would otherwise surface in the
/// host as an unreadable C Data error).
struct Checked {
    inner: Box<dyn RecordBatchReader + Send>,
    schema: SchemaRef,
    batches: usize,
}

impl Checked {
    fn check(&self, batch: &RecordBatch) -> Result<(), String> {
        let declared = self.schema.fields();
        let got = batch.schema();
        if got.fields().len() != declared.len() {
            return Err(format!(
                "batch {}: {} columns, the table declared {}",
                self.batches,
                got.fields().len(),
                declared.len()
            ));
        }
        for (d, g) in declared.iter().zip(got.fields()) {
            if d.name() != g.name() || d.data_type() != g.data_type() {
                return Err(format!(
                    "batch {}, column `{}`: {} `{}`, the table declared {} `{}`",
                    self.batches,
                    d.name(),
                    g.data_type(),
                    g.name(),
                    d.data_type(),
                    d.name()
                ));
            }
        }
        Ok(())
    }
}

impl Iterator for Checked {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches += 1;
        let item = match guarded(|| self.inner.next()) {
            Ok(item) => item?,
            Err(panic) => Err(ArrowError::ExternalError(
                format!("batch {}: {panic}", self.batches).into(),
            )),
        };
        let checked = item.and_then(|batch| {
            self.check(&batch)
                .map_err(|e| ArrowError::ExternalError(e.into()))
                .map(|()| batch)
        });
        // Arrow's stream export panics on an error text with a NUL in it.
        Some(checked.map_err(|e| match e {
            ArrowError::ExternalError(inner) => {
                ArrowError::ExternalError(inner.to_string().replace('\0', " ").into())
            }
            other => ArrowError::ExternalError(other.to_string().replace('\0', " ").into()),
        }))
    }
}

impl RecordBatchReader for Checked {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// The machinery behind [`export!`]; not for direct use.
#[doc(hidden)]
pub mod ffi {
    use super::*;

    /// A connector's tables, asked for once.
    fn tables(c: &dyn Connector) -> &'static Result<Vec<(String, SchemaRef)>, String> {
        static TABLES: std::sync::OnceLock<Result<Vec<(String, SchemaRef)>, String>> =
            std::sync::OnceLock::new();
        TABLES.get_or_init(|| guarded(|| c.tables()))
    }

    pub fn describe(c: &dyn Connector) -> *const c_char {
        static TEXT: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let text = match tables(c) {
                Ok(tables) => {
                    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
                    let described =
                        guarded(|| (c.name().to_string(), c.version().to_string(), c.links()));
                    match described {
                        Ok((name, version, links)) => {
                            let links: serde_json::Map<String, serde_json::Value> =
                                links.into_iter().map(|(e, t)| (e, t.into())).collect();
                            serde_json::json!({"name": name, "version": version, "tables": names, "links": links})
                        }
                        Err(e) => serde_json::json!({"error": e}),
                    }
                }
                Err(e) => serde_json::json!({"error": format!("listing its tables: {e}")}),
            };
            CString::new(text.to_string().replace('\0', " ")).unwrap_or_default()
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
    /// `s` is null or a NUL-terminated string.
    unsafe fn text(s: *const c_char) -> Option<String> {
        // SAFETY: as documented.
        (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    }

    /// # Safety
    /// `table` is a NUL-terminated string; `out` points to a writable `ArrowSchema`.
    pub unsafe fn schema(
        c: &dyn Connector,
        table: *const c_char,
        out: *mut FFI_ArrowSchema,
    ) -> i32 {
        // SAFETY: per the ABI.
        let Some(table) = (unsafe { text(table) }) else {
            return 1;
        };
        if out.is_null() {
            return 1;
        }
        let Ok(tables) = tables(c) else {
            return 1;
        };
        let Some((_, schema)) = tables.iter().find(|(n, _)| *n == table) else {
            return 1;
        };
        match FFI_ArrowSchema::try_from(schema.as_ref()) {
            Ok(ffi) => {
                // SAFETY: `out` is non-null and writable; the host takes ownership.
                unsafe { std::ptr::write(out, ffi) };
                0
            }
            Err(_) => 1,
        }
    }

    /// # Safety
    /// `request` is null or a NUL-terminated string; `session` points to a writable
    /// `void *`; `error` is null or points to a writable `char *`.
    pub unsafe fn configure(
        c: &dyn Connector,
        request: *const c_char,
        session: *mut *mut c_void,
        error: *mut *mut c_char,
    ) -> i32 {
        if session.is_null() {
            return error_out(error, "null session slot".into());
        }
        // SAFETY: per the ABI.
        let request: serde_json::Value = unsafe { text(request) }
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let request = Request {
            settings: request.get("settings").cloned().unwrap_or_default(),
            since: request
                .get("since")
                .and_then(|s| s.as_str())
                .map(str::to_string),
        };
        match guarded(|| c.configure(&request)) {
            Ok(Ok(s)) => {
                // SAFETY: `session` is non-null and writable; `close` takes it back.
                unsafe { *session = Box::into_raw(Box::new(s)).cast() };
                0
            }
            Ok(Err(e)) => error_out(error, e),
            Err(panic) => error_out(error, panic),
        }
    }

    /// # Safety
    /// `session` came from `configure` and is not closed; `table` is a NUL-terminated
    /// string; `out` points to a writable `ArrowArrayStream`; `error` is null or points to
    /// a writable `char *`.
    pub unsafe fn open(
        c: &dyn Connector,
        session: *mut c_void,
        table: *const c_char,
        out: *mut FFI_ArrowArrayStream,
        error: *mut *mut c_char,
    ) -> i32 {
        // SAFETY: per the ABI.
        let (Some(table), false, false) =
            (unsafe { text(table) }, session.is_null(), out.is_null())
        else {
            return error_out(error, "null argument".into());
        };
        // SAFETY: made by `configure` from a `Box<Box<dyn Session>>`, not yet closed.
        let s: &dyn Session = unsafe { &**session.cast::<Box<dyn Session>>() };
        let Some(schema) = tables(c)
            .as_ref()
            .ok()
            .and_then(|ts| ts.iter().find(|(n, _)| *n == table))
            .map(|(_, s)| Arc::clone(s))
        else {
            return error_out(error, format!("the plugin declares no table `{table}`"));
        };
        match guarded(|| s.open(&table)) {
            Ok(Ok(reader)) => {
                let checked = Checked {
                    inner: reader,
                    schema,
                    batches: 0,
                };
                let stream = FFI_ArrowArrayStream::new(Box::new(checked));
                // SAFETY: `out` is non-null and writable; the host takes ownership.
                unsafe { std::ptr::write(out, stream) };
                0
            }
            Ok(Err(e)) => error_out(error, e),
            Err(panic) => error_out(error, panic),
        }
    }

    /// # Safety
    /// `session` is null or came from `configure` and is closed once.
    pub unsafe fn close(session: *mut c_void) {
        if !session.is_null() {
            // SAFETY: as documented; a panic in the session's drop stays here.
            let s = unsafe { Box::from_raw(session.cast::<Box<dyn Session>>()) };
            let _ = guarded(move || drop(s));
        }
    }

    /// # Safety
    /// `e` is null or a string `configure` or `open` gave out.
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
        /// See `svodka_plugin_sdk::ffi::schema`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_schema(
            table: *const std::ffi::c_char,
            out: *mut $crate::arrow::ffi::FFI_ArrowSchema,
        ) -> i32 {
            // SAFETY: the host keeps the contract of the ABI.
            unsafe { $crate::ffi::schema(__svodka_connector(), table, out) }
        }

        /// # Safety
        /// See `svodka_plugin_sdk::ffi::configure`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_configure(
            request: *const std::ffi::c_char,
            session: *mut *mut std::ffi::c_void,
            error: *mut *mut std::ffi::c_char,
        ) -> i32 {
            // SAFETY: the host keeps the contract of the ABI.
            unsafe { $crate::ffi::configure(__svodka_connector(), request, session, error) }
        }

        /// # Safety
        /// See `svodka_plugin_sdk::ffi::open`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_open(
            session: *mut std::ffi::c_void,
            table: *const std::ffi::c_char,
            out: *mut $crate::arrow::ffi_stream::FFI_ArrowArrayStream,
            error: *mut *mut std::ffi::c_char,
        ) -> i32 {
            // SAFETY: the host keeps the contract of the ABI.
            unsafe { $crate::ffi::open(__svodka_connector(), session, table, out, error) }
        }

        /// # Safety
        /// See `svodka_plugin_sdk::ffi::close`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_close(session: *mut std::ffi::c_void) {
            // SAFETY: the host keeps the contract of the ABI.
            unsafe { $crate::ffi::close(session) }
        }

        /// # Safety
        /// `e` is null or an error this plugin gave out.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn svodka_plugin_free_error(e: *mut std::ffi::c_char) {
            // SAFETY: as documented.
            unsafe { $crate::ffi::free_error(e) }
        }
    };
}
