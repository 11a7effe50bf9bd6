//! Stores in an S3-compatible bucket (`s3://bucket/prefix`), for clusters whose executors
//! share no file system: read by runs, schedulers and executors; written by pushing a
//! store folder's current snapshot (`push`). The layout is the folder's. Credentials,
//! region and endpoint come from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for a store other than Amazon's…).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::StoreError;

/// The scheme of a store in a bucket.
pub const SCHEME: &str = "s3://";

/// Bytes per part of an upload (S3 takes 5 MiB at least, except for the last part).
const PART_BYTES: usize = 16 << 20;

/// A store's place in a bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `s3://bucket/prefix`, without a trailing slash.
    url: String,
    /// `s3://bucket`: what the bucket's client is registered under, and what every key
    /// is relative to.
    root: url::Url,
    /// The client, its requests spawned on the I/O runtime whichever runtime awaits them.
    store: Arc<dyn ObjectStore>,
}

/// Whether a store location is a bucket's address (`s3://…`): what it says, without
/// opening a client.
pub fn is_address(location: &Path) -> bool {
    location.to_str().is_some_and(|t| t.starts_with(SCHEME))
}

impl Bucket {
    /// The bucket a store location names, if it names one (`s3://…`), with its client.
    pub fn of(location: &Path) -> Option<Result<Bucket, StoreError>> {
        let text = location.to_str()?;
        is_address(location).then(|| Bucket::open(text))
    }

    fn open(text: &str) -> Result<Bucket, StoreError> {
        let url = text.trim_end_matches('/').to_string();
        let bad = |message: String| StoreError::Bucket {
            url: url.clone(),
            message,
        };
        let parsed =
            url::Url::parse(&url).map_err(|e| bad(format!("not a bucket address: {e}")))?;
        let name = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no bucket name (write s3://BUCKET/PREFIX)".into()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a bucket address has no `?` or `#` part".into()));
        }
        let root = url::Url::parse(&format!("s3://{name}"))
            .map_err(|e| bad(format!("not a bucket name: {e}")))?;
        let store = s3(name).map_err(bad)?;
        Ok(Bucket { url, root, store })
    }

    /// A store at `url` through a client made elsewhere (tests give one for a stand-in).
    #[cfg(test)]
    pub(crate) fn with_client(url: &str, store: Arc<dyn ObjectStore>) -> Bucket {
        let name = url::Url::parse(url).expect("a test's address");
        Bucket {
            url: url.to_string(),
            root: url::Url::parse(&format!("s3://{}", name.host_str().unwrap_or_default()))
                .expect("a test's bucket"),
            store,
        }
    }

    /// The object store serving `s3://bucket`, and that address: a run registers it so
    /// that its scans reach the bucket.
    pub fn registration(&self) -> (url::Url, Arc<dyn ObjectStore>) {
        (self.root.clone(), Arc::clone(&self.store))
    }

    /// The object key of `path`, an address inside this store (`s3://bucket/prefix/x`).
    fn key(&self, path: &Path) -> Result<Key, StoreError> {
        let text = path.to_string_lossy();
        let rest = text
            .strip_prefix(self.root.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StoreError::Bucket {
                url: text.to_string(),
                message: format!("not inside {}", self.url),
            })?;
        Key::parse(rest).map_err(|e| StoreError::Bucket {
            url: text.to_string(),
            message: e.to_string(),
        })
    }

    /// A place inside the store, as an address.
    pub fn join(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("{}/{rel}", self.url))
    }

    /// An object's bytes; `None` when there is no such object.
    pub fn get(&self, path: &Path) -> Result<Option<bytes::Bytes>, StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        match on_io(async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        })? {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(failed(path, "reading", e)),
        }
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        match on_io(async move { store.head(&key).await })? {
            Ok(_) => Ok(true),
            Err(e) if absent(&e) => Ok(false),
            Err(e) => Err(failed(path, "looking at", e)),
        }
    }

    /// A Parquet object's Arrow schema, read from its footer only (one request when the
    /// footer is under 64 KiB, as a store's are).
    pub fn parquet_schema(&self, path: &Path) -> Result<arrow::datatypes::SchemaRef, StoreError> {
        use datafusion::parquet::file::metadata::ParquetMetaDataReader;
        use object_store::{GetOptions, GetRange};
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        let bad = |message: String| StoreError::Parquet {
            path: path.to_path_buf(),
            message,
        };
        let (size, tail) = on_io(async move {
            let options = GetOptions {
                range: Some(GetRange::Suffix(64 << 10)),
                ..GetOptions::default()
            };
            let got = store.get_opts(&key, options).await?;
            let size = got.meta.size;
            let tail = got.bytes().await?;
            match footer_len(&tail) {
                // A footer bigger than the first read: read it whole.
                Some(len) if len + 8 > tail.len() as u64 && len + 8 <= size => {
                    let whole = store.get_range(&key, size - 8 - len..size).await?;
                    Ok((size, whole))
                }
                _ => Ok::<_, object_store::Error>((size, tail)),
            }
        })?
        .map_err(|e| failed(path, "reading", e))?;
        let meta_len = footer_len(&tail)
            .ok_or_else(|| bad(format!("not a Parquet file ({size} bytes, no footer)")))?;
        let end = tail.len() - 8;
        let meta = end
            .checked_sub(meta_len as usize)
            .map(|start| &tail[start..end])
            .ok_or_else(|| bad(format!("its footer claims {meta_len} bytes of {size}")))?;
        let metadata =
            ParquetMetaDataReader::decode_metadata(meta).map_err(|e| bad(e.to_string()))?;
        let file = metadata.file_metadata();
        datafusion::parquet::arrow::parquet_to_arrow_schema(
            file.schema_descr(),
            file.key_value_metadata(),
        )
        .map(Arc::new)
        .map_err(|e| bad(e.to_string()))
    }

    /// The names of the folders directly under `path`.
    pub fn folders(&self, path: &Path) -> Result<Vec<String>, StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        let listed = on_io(async move { store.list_with_delimiter(Some(&key)).await })?
            .map_err(|e| failed(path, "listing", e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Writes an object whole.
    pub fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        on_io(async move { store.put(&key, PutPayload::from(bytes)).await })?
            .map(|_| ())
            .map_err(|e| failed(path, "writing", e))
    }

    /// Uploads a local file: whole when small, else in parts (a table of a million deals
    /// is hundreds of MB); an upload that fails midway is aborted, so no half object is
    /// left.
    pub fn upload(&self, file: &Path, path: &Path) -> Result<u64, StoreError> {
        use std::io::Read;
        let local = |what: &'static str| {
            move |source| StoreError::Io {
                path: file.to_path_buf(),
                what,
                source,
            }
        };
        let mut input = std::fs::File::open(file).map_err(local("opening"))?;
        let size = input.metadata().map_err(local("looking at"))?.len();
        if size <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            input.read_to_end(&mut bytes).map_err(local("reading"))?;
            self.put(path, bytes)?;
            return Ok(size);
        }
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        let mut upload = on_io(async move { store.put_multipart(&key).await })?
            .map_err(|e| failed(path, "starting an upload to", e))?;
        let mut sent = 0u64;
        while sent < size {
            let mut part = Vec::with_capacity(PART_BYTES);
            let read = (&mut input)
                .take(PART_BYTES as u64)
                .read_to_end(&mut part)
                .map_err(local("reading"));
            let stopped = match read {
                Ok(0) => Some(StoreError::Io {
                    path: file.to_path_buf(),
                    what: "reading (it shrank while being uploaded)",
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                }),
                Ok(n) => {
                    sent += n as u64;
                    match on_io(upload.put_part(PutPayload::from(part))) {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(failed(path, "uploading", e)),
                        Err(e) => Some(e),
                    }
                }
                Err(e) => Some(e),
            };
            if let Some(e) = stopped {
                let _ = on_io(async move { upload.abort().await });
                return Err(e);
            }
        }
        on_io(async move { upload.complete().await })?
            .map_err(|e| failed(path, "finishing the upload of", e))?;
        Ok(sent)
    }

    /// Deletes every object under `path`.
    pub fn delete_all(&self, path: &Path) -> Result<(), StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        on_io(async move {
            // Listed, then deleted a thousand keys a request (S3's DeleteObjects).
            let keys = store.list(Some(&key)).map_ok(|meta| meta.location).boxed();
            store
                .delete_stream(keys)
                .try_collect::<Vec<Key>>()
                .await
                .map(|_| ())
        })?
        .map_err(|e| failed(path, "deleting", e))
    }
}

/// The length of a Parquet file's metadata, from the last 8 bytes of `tail` (the file's
/// end): `None` when they are not a Parquet footer.
fn footer_len(tail: &[u8]) -> Option<u64> {
    let footer = tail.get(tail.len().checked_sub(8)?..)?;
    (&footer[4..] == b"PAR1")
        .then(|| u32::from_le_bytes(footer[..4].try_into().expect("four bytes")) as u64)
}

/// An S3 client for `bucket`, configured from the environment.
fn s3(bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    client(AmazonS3Builder::from_env().with_bucket_name(bucket))
}

/// The client `builder` configures, its requests on the I/O runtime.
pub(crate) fn client(builder: AmazonS3Builder) -> Result<Arc<dyn ObjectStore>, String> {
    let runtime = io_runtime()?;
    let store = builder
        .with_http_connector(object_store::client::SpawnedReqwestConnector::new(
            runtime.handle().clone(),
        ))
        .build()
        .map_err(|e| format!("the S3 client cannot be configured from the environment: {e}"))?;
    Ok(Arc::new(store))
}

/// Whether a "not found" is the bucket's, not an object's (S3 says `NoSuchBucket`).
fn no_bucket(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) && e.to_string().contains("NoSuchBucket")
}

/// Whether an error says only that the object is not there (in a bucket that is).
fn absent(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) && !no_bucket(e)
}

/// An object store error as a message that says what to check.
fn failed(path: &Path, what: &'static str, e: object_store::Error) -> StoreError {
    let message = match &e {
        _ if no_bucket(&e) => format!("there is no such bucket ({e})"),
        object_store::Error::NotFound { .. } => "not found".to_string(),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            format!("access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({e})")
        }
        _ => e.to_string(),
    };
    StoreError::Bucket {
        url: path.display().to_string(),
        message: format!("{what}: {message}"),
    }
}

/// The runtime every bucket request runs on: a request's connection outlives the runtime
/// that asked for it only if neither is dropped, and callers come from threads of their
/// own, the CLI's runtime and the service's alike.
fn io_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("svodka-bucket-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the I/O threads: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `f` on the I/O runtime and waits for it from any thread (inside another runtime
/// too: the caller's thread only waits).
fn on_io<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Result<T, StoreError> {
    let runtime = io_runtime().map_err(|message| StoreError::Bucket {
        url: SCHEME.into(),
        message,
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| StoreError::Bucket {
        url: SCHEME.into(),
        message: "a bucket request stopped without an answer".into(),
    })
}

/// The object stores of a scheduler's or executor's plans: local files, and a bucket's
/// client made from the environment the first time a plan names `s3://bucket`.
#[derive(Debug, Default)]
pub struct Buckets {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Buckets {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match self.known.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" && url.host_str().is_some_and(|h| !h.is_empty()) => {
                let bucket = url.host_str().unwrap_or_default();
                let store =
                    s3(bucket).map_err(datafusion::error::DataFusionError::Configuration)?;
                self.known.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}
