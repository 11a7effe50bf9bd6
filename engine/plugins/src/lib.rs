//! The host side of connector plugins (`plugins/sdk` is the other): a `cdylib` loaded with
//! its ABI version checked before anything else is called, described (name, version,
//! tables), and its tables read as Arrow C streams and checked against the canonical
//! schema. A loaded library stays loaded until the process ends: every batch it gave is
//! freed by a function inside it, and batches outlive streams and plugin handles alike.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatchReader;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow::record_batch::RecordBatch;
use libloading::{Library, Symbol};

pub use svodka_plugin_sdk::ABI_VERSION;

/// What went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be loaded as a library.
    #[error("{path}: not a loadable library: {message}")]
    NotALibrary { path: PathBuf, message: String },
    /// The library lacks a function of the ABI: not a Svodka plugin.
    #[error("{path}: not a Svodka plugin (no `{symbol}`)")]
    MissingSymbol { path: PathBuf, symbol: String },
    /// The plugin speaks another ABI version.
    #[error(
        "{path}: plugin ABI version {plugin}, this Svodka speaks {host}: rebuild the plugin against svodka-plugin-sdk for ABI {host}"
    )]
    AbiMismatch {
        path: PathBuf,
        plugin: u32,
        host: u32,
    },
    /// The plugin's description is unreadable.
    #[error("{path}: bad description: {message}")]
    Description { path: PathBuf, message: String },
    /// The plugin refused to open a table, or panicked doing it.
    #[error("plugin {plugin}, table `{table}`: {message}")]
    Open {
        plugin: String,
        table: String,
        message: String,
    },
    /// Reading a table's stream failed (or the plugin panicked while producing it).
    #[error("plugin {plugin}, table `{table}`: {message}")]
    Read {
        plugin: String,
        table: String,
        message: String,
    },
    /// A table does not fit the canonical schema.
    #[error("plugin {plugin}: {message}")]
    Schema { plugin: String, message: String },
}

/// A table a plugin provides.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub name: String,
    /// `name: type` of each column.
    pub columns: Vec<String>,
}

type OpenFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *mut FFI_ArrowArrayStream,
    *mut *mut c_char,
) -> i32;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// A loaded plugin.
pub struct Plugin {
    lib: &'static Library,
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub abi: u32,
    pub tables: Vec<TableInfo>,
}

fn symbol<'l, T>(lib: &'l Library, path: &Path, name: &str) -> Result<Symbol<'l, T>, PluginError> {
    // SAFETY: the type is the ABI's for this name; the symbol does not outlive `lib`.
    unsafe { lib.get::<T>(name.as_bytes()) }.map_err(|_| PluginError::MissingSymbol {
        path: path.to_path_buf(),
        symbol: name.to_string(),
    })
}

impl Plugin {
    /// Loads a plugin: the ABI version first, then its description.
    pub fn load(path: &Path) -> Result<Plugin, PluginError> {
        // SAFETY: loading runs the library's initialisers; a plugin is trusted code the
        // operator chose to install.
        let lib = unsafe { Library::new(path) }.map_err(|e| PluginError::NotALibrary {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let abi = {
            let f: Symbol<unsafe extern "C" fn() -> u32> =
                symbol(&lib, path, "svodka_plugin_abi_version")?;
            // SAFETY: the ABI's handshake takes nothing and returns a number.
            unsafe { f() }
        };
        if abi != ABI_VERSION {
            return Err(PluginError::AbiMismatch {
                path: path.to_path_buf(),
                plugin: abi,
                host: ABI_VERSION,
            });
        }
        symbol::<OpenFn>(&lib, path, "svodka_plugin_open")?;
        symbol::<FreeFn>(&lib, path, "svodka_plugin_free_error")?;
        let text = {
            let f: Symbol<unsafe extern "C" fn() -> *const c_char> =
                symbol(&lib, path, "svodka_plugin_describe")?;
            // SAFETY: returns a NUL-terminated string the plugin keeps for its lifetime.
            let p = unsafe { f() };
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: non-null and NUL-terminated, per the ABI.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        let bad = |message: String| PluginError::Description {
            path: path.to_path_buf(),
            message,
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(bad(e.to_string()));
        }
        let tables = v["tables"]
            .as_array()
            .ok_or_else(|| bad("no `tables`".into()))?
            .iter()
            .map(|t| TableInfo {
                name: t["name"].as_str().unwrap_or_default().to_string(),
                columns: t["columns"]
                    .as_array()
                    .map(|cs| {
                        cs.iter()
                            .map(|c| {
                                format!(
                                    "{}: {}",
                                    c["name"].as_str().unwrap_or_default(),
                                    c["type"].as_str().unwrap_or_default()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Plugin {
            // Never unloaded: see the module's note.
            lib: Box::leak(Box::new(lib)),
            path: path.to_path_buf(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            version: v["version"].as_str().unwrap_or_default().to_string(),
            abi,
            tables,
        })
    }

    /// Opens a table as a stream of batches; `settings` go to the plugin as JSON.
    pub fn open(
        &self,
        table: &str,
        settings: &serde_json::Value,
    ) -> Result<PluginStream, PluginError> {
        let open_err = |message: String| PluginError::Open {
            plugin: self.name.clone(),
            table: table.to_string(),
            message,
        };
        let c_table = CString::new(table).map_err(|e| open_err(e.to_string()))?;
        let request = serde_json::json!({"settings": settings}).to_string();
        let c_request = CString::new(request).map_err(|e| open_err(e.to_string()))?;
        let open: Symbol<OpenFn> = symbol(self.lib, &self.path, "svodka_plugin_open")?;
        let free: Symbol<FreeFn> = symbol(self.lib, &self.path, "svodka_plugin_free_error")?;
        let mut stream = FFI_ArrowArrayStream::empty();
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid strings, a writable stream and error slot, per the ABI.
        let code = unsafe {
            open(
                c_table.as_ptr(),
                c_request.as_ptr(),
                &mut stream,
                &mut error,
            )
        };
        if code != 0 {
            let message = if error.is_null() {
                format!("failed (code {code})")
            } else {
                // SAFETY: the plugin wrote a NUL-terminated string; freed by its own free.
                let m = unsafe { CStr::from_ptr(error) }
                    .to_string_lossy()
                    .into_owned();
                unsafe { free(error) };
                m
            };
            return Err(open_err(message));
        }
        let reader =
            ArrowArrayStreamReader::try_new(stream).map_err(|e| open_err(e.to_string()))?;
        Ok(PluginStream {
            reader,
            plugin: self.name.clone(),
            table: table.to_string(),
        })
    }

    /// A whole table, checked against the canonical schema when it is a canonical table.
    pub fn read(
        &self,
        table: &str,
        settings: &serde_json::Value,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), PluginError> {
        let stream = self.open(table, settings)?;
        let schema = stream.schema();
        let (plugin, t) = (stream.plugin.clone(), stream.table.clone());
        let batches = stream
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PluginError::Read {
                plugin: plugin.clone(),
                table: t,
                message: e.to_string(),
            })?;
        svodka_schema::check_table(table, &schema, &batches)
            .and_then(|()| svodka_schema::check_keys(table, &batches))
            .map_err(|e| PluginError::Schema {
                plugin,
                message: e.to_string(),
            })?;
        Ok((schema, batches))
    }
}

/// A table's stream.
pub struct PluginStream {
    reader: ArrowArrayStreamReader,
    pub plugin: String,
    pub table: String,
}

impl Iterator for PluginStream {
    type Item = Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next()
    }
}

impl RecordBatchReader for PluginStream {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }
}

/// The plugin files of a folder (`.so`, `.dylib`, `.dll`), each loaded or with its error.
pub fn discover(dir: &Path) -> Vec<(PathBuf, Result<Plugin, PluginError>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("so" | "dylib" | "dll")
            )
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let r = Plugin::load(&p);
            (p, r)
        })
        .collect()
}
