//! The host side of connector plugins (`plugins/sdk` is the other): a `cdylib` loaded with
//! its ABI version checked before anything else is called, described (name, version,
//! tables with their declared schemas, checked against the canonical ones), configured
//! once per sync, and its tables read as Arrow C streams from that session and checked
//! against the canonical schema. A loaded library stays loaded until the process ends:
//! every batch it gave is freed by a function inside it, and batches outlive streams and
//! plugin handles alike.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatchReader;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ffi::FFI_ArrowSchema;
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
    /// The plugin refused its settings (or the start of a sync), or panicked doing it.
    #[error("plugin {plugin}: {message}")]
    Configure { plugin: String, message: String },
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
    /// A table (as declared, or as delivered) does not fit the canonical schema.
    #[error("plugin {plugin}: {message}")]
    Schema { plugin: String, message: String },
}

/// A table a plugin provides, as it declares it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub schema: SchemaRef,
    /// Why the declared schema cannot be a canonical table's (a wrong type, a required
    /// column missing); `None` when it fits, or for a table that is not canonical.
    pub problem: Option<String>,
}

impl TableInfo {
    /// `name: type` of each column.
    pub fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect()
    }
}

type SchemaFn = unsafe extern "C" fn(*const c_char, *mut FFI_ArrowSchema) -> i32;
type ConfigureFn = unsafe extern "C" fn(*const c_char, *mut *mut c_void, *mut *mut c_char) -> i32;
type OpenFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *mut FFI_ArrowArrayStream,
    *mut *mut c_char,
) -> i32;
type CloseFn = unsafe extern "C" fn(*mut c_void);
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// A loaded plugin.
pub struct Plugin {
    lib: &'static Library,
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub abi: u32,
    pub tables: Vec<TableInfo>,
    /// Where the CRM's pages of its entities are (`Connector::links`), for the data set's
    /// description; absent from plugins that declare none.
    pub links: std::collections::BTreeMap<String, String>,
}

fn symbol<'l, T>(lib: &'l Library, path: &Path, name: &str) -> Result<Symbol<'l, T>, PluginError> {
    // SAFETY: the type is the ABI's for this name; the symbol does not outlive `lib`.
    unsafe { lib.get::<T>(name.as_bytes()) }.map_err(|_| PluginError::MissingSymbol {
        path: path.to_path_buf(),
        symbol: name.to_string(),
    })
}

/// The ABI's functions after the handshake, each checked present at load.
const FUNCTIONS: [&str; 6] = [
    "svodka_plugin_describe",
    "svodka_plugin_schema",
    "svodka_plugin_configure",
    "svodka_plugin_open",
    "svodka_plugin_close",
    "svodka_plugin_free_error",
];

impl Plugin {
    /// Loads a plugin: the ABI version first, then its description and each table's
    /// declared schema, checked against the canonical one.
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
        for name in FUNCTIONS {
            symbol::<unsafe extern "C" fn()>(&lib, path, name)?;
        }
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
        let names: Vec<String> = v["tables"]
            .as_array()
            .ok_or_else(|| bad("no `tables`".into()))?
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`tables` is not a list of names".into()))?;
        let mut links = std::collections::BTreeMap::new();
        if let Some(declared) = v.get("links") {
            let map = declared
                .as_object()
                .ok_or_else(|| bad("`links` is not a map of entity to address".into()))?;
            for (entity, template) in map {
                let template = template
                    .as_str()
                    .ok_or_else(|| bad(format!("links.{entity}: not a text")))?;
                // What the sync writes into dataset.yaml must read back.
                if let Some(problem) = svodka_schema::link_problem(entity, template) {
                    return Err(bad(format!("links.{entity}: {problem}")));
                }
                links.insert(entity.clone(), template.to_string());
            }
        }
        let schema_of: Symbol<SchemaFn> = symbol(&lib, path, "svodka_plugin_schema")?;
        let mut tables = Vec::new();
        for name in names {
            let c_name = CString::new(name.as_str()).map_err(|e| bad(e.to_string()))?;
            let mut ffi = FFI_ArrowSchema::empty();
            // SAFETY: a valid string and a writable schema, per the ABI.
            if unsafe { schema_of(c_name.as_ptr(), &mut ffi) } != 0 {
                return Err(bad(format!("no schema for its table `{name}`")));
            }
            let schema = Schema::try_from(&ffi)
                .map_err(|e| bad(format!("table `{name}`: unreadable schema: {e}")))?;
            // Other tables are the plugin's own (for custom models): any schema goes.
            let problem = svodka_schema::table(&name)
                .and_then(|_| svodka_schema::check_schema(&name, &schema).err())
                .map(|e| e.to_string());
            tables.push(TableInfo {
                name,
                schema: Arc::new(schema),
                problem,
            });
        }
        Ok(Plugin {
            // Never unloaded: see the module's note.
            lib: Box::leak(Box::new(lib)),
            path: path.to_path_buf(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            version: v["version"].as_str().unwrap_or_default().to_string(),
            abi,
            tables,
            links,
        })
    }

    /// The plugin's word on a failed call: its error text, freed by its own function.
    fn error_text(&self, error: *mut c_char, code: i32) -> String {
        if error.is_null() {
            return format!("failed (code {code})");
        }
        // SAFETY: the plugin wrote a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        if let Ok(free) = symbol::<FreeFn>(self.lib, &self.path, "svodka_plugin_free_error") {
            // SAFETY: a string this plugin gave out, freed once.
            unsafe { free(error) };
        }
        text
    }

    /// What is wrong with the declared schemas, one line a table: what `plugins list`
    /// shows and a sync refuses before asking the plugin for anything.
    pub fn problems(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter_map(|t| t.problem.clone())
            .collect()
    }

    /// Starts a sync: the plugin reads its settings (`--plugin-config` as JSON) once;
    /// every table of the sync is opened from the session.
    pub fn configure(
        &self,
        settings: &serde_json::Value,
        since: Option<&str>,
    ) -> Result<Session<'_>, PluginError> {
        let configure_err = |message: String| PluginError::Configure {
            plugin: self.name.clone(),
            message,
        };
        let request = serde_json::json!({"settings": settings, "since": since}).to_string();
        let c_request = CString::new(request).map_err(|e| configure_err(e.to_string()))?;
        let configure: Symbol<ConfigureFn> =
            symbol(self.lib, &self.path, "svodka_plugin_configure")?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: a valid string and writable slots, per the ABI.
        let code = unsafe { configure(c_request.as_ptr(), &mut handle, &mut error) };
        if code != 0 || handle.is_null() {
            return Err(configure_err(self.error_text(error, code)));
        }
        Ok(Session {
            plugin: self,
            handle,
        })
    }
}

/// One sync's session with a plugin; closed (in the plugin) when dropped.
pub struct Session<'p> {
    plugin: &'p Plugin,
    handle: *mut c_void,
}

impl Session<'_> {
    /// Opens a table as a stream of batches.
    pub fn open(&self, table: &str) -> Result<PluginStream, PluginError> {
        let p = self.plugin;
        let open_err = |message: String| PluginError::Open {
            plugin: p.name.clone(),
            table: table.to_string(),
            message,
        };
        let c_table = CString::new(table).map_err(|e| open_err(e.to_string()))?;
        let open: Symbol<OpenFn> = symbol(p.lib, &p.path, "svodka_plugin_open")?;
        let mut stream = FFI_ArrowArrayStream::empty();
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: an open session, a valid string, a writable stream and error slot.
        let code = unsafe { open(self.handle, c_table.as_ptr(), &mut stream, &mut error) };
        if code != 0 {
            return Err(open_err(p.error_text(error, code)));
        }
        let reader =
            ArrowArrayStreamReader::try_new(stream).map_err(|e| open_err(e.to_string()))?;
        Ok(PluginStream {
            reader,
            plugin: p.name.clone(),
            table: table.to_string(),
        })
    }

    /// A whole table, checked against the canonical schema when it is a canonical table
    /// (one whose declared schema cannot fit is not opened).
    pub fn read(&self, table: &str) -> Result<(SchemaRef, Vec<RecordBatch>), PluginError> {
        let declared = self.plugin.tables.iter().find(|t| t.name == table);
        if let Some(problem) = declared.and_then(|t| t.problem.clone()) {
            return Err(PluginError::Schema {
                plugin: self.plugin.name.clone(),
                message: problem,
            });
        }
        let stream = self.open(table)?;
        let schema = stream.schema();
        let plugin = stream.plugin.clone();
        let batches = stream
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PluginError::Read {
                plugin: plugin.clone(),
                table: table.to_string(),
                // The plugin's own words, as the SDK sends them (an external error).
                message: match e {
                    ArrowError::CDataInterface(m) => {
                        m.strip_prefix("External error: ").unwrap_or(&m).to_string()
                    }
                    other => other.to_string(),
                },
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

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Ok(close) =
            symbol::<CloseFn>(self.plugin.lib, &self.plugin.path, "svodka_plugin_close")
        {
            // SAFETY: the handle `configure` gave, closed once.
            unsafe { close(self.handle) };
        }
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
