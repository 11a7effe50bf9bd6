//! An S3-compatible object store for tests: a real HTTP server speaking the S3 REST API
//! as Amazon documents it, path-style (`/BUCKET/KEY`) — GetObject and HeadObject with
//! byte ranges (`bytes=a-b`, `bytes=a-`, suffix `bytes=-n`), PutObject, ListObjectsV2
//! with a delimiter and continuation tokens, multipart uploads, DeleteObjects — checking
//! every request's AWS Signature Version 4 against one key pair, keeping objects in memory,
//! and refusing requests with 503 `SlowDown` on demand.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The region the emulator signs for.
pub const REGION: &str = "us-east-1";
/// Keys a ListObjectsV2 page holds at most (S3's own is 1000; smaller, so tests page).
const PAGE_KEYS: usize = 100;

struct Object {
    bytes: Bytes,
    etag: String,
    modified: chrono::DateTime<chrono::Utc>,
}

struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, Bytes>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    key_id: String,
    secret: String,
    /// Requests still to refuse with 503 `SlowDown`.
    refuse: usize,
    /// Requests still to answer before every request is denied (403 `AccessDenied`).
    deny_after: Option<usize>,
    /// `METHOD /path?query[ bytes=a-b]` of every request, in order.
    log: Vec<String>,
}

/// A running object store.
pub struct S3 {
    /// `http://127.0.0.1:port`: the endpoint (`AWS_ENDPOINT`).
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl S3 {
    /// Serves an empty store on a free loopback port; requests must be signed with this
    /// key pair.
    pub fn start(key_id: &str, secret: &str) -> Result<S3, String> {
        let state = Arc::new(Mutex::new(State {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            ..State::default()
        }));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                // S3 takes parts and objects of up to 5 GiB in one request.
                let app = Router::new()
                    .fallback(handle)
                    .layer(axum::extract::DefaultBodyLimit::max(5 << 30))
                    .with_state(shared);
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx.recv().map_err(|e| e.to_string())??;
        Ok(S3 {
            endpoint: format!("http://{addr}"),
            state,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes an empty bucket.
    pub fn create_bucket(&self, name: &str) {
        self.state().buckets.entry(name.to_string()).or_default();
    }

    /// Refuses the next `n` requests with 503 `SlowDown` (S3's "reduce your request rate").
    pub fn refuse_next(&self, n: usize) {
        self.state().refuse = n;
    }

    /// Answers `n` more requests, then denies every request (403 `AccessDenied`, as when
    /// a key is revoked midway); `None` answers again.
    pub fn deny_after(&self, n: Option<usize>) {
        self.state().deny_after = n;
    }

    /// The keys of a bucket with their sizes, in key order.
    pub fn objects(&self, bucket: &str) -> Vec<(String, usize)> {
        self.state()
            .buckets
            .get(bucket)
            .map(|b| b.iter().map(|(k, o)| (k.clone(), o.bytes.len())).collect())
            .unwrap_or_default()
    }

    /// An object's bytes.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.state()
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .map(|o| o.bytes.to_vec())
    }

    /// Writes an object directly (a test's own change to the bucket).
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let object = new_object(Bytes::from(bytes));
        self.state()
            .buckets
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), object);
    }

    /// `METHOD /path?query[ bytes=a-b]` of every request so far (with its range, if any).
    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// Uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state().uploads.len()
    }
}

fn new_object(bytes: Bytes) -> Object {
    let etag = format!("\"{}\"", &hex(&Sha256::digest(&bytes))[..32]);
    Object {
        bytes,
        etag,
        modified: chrono::Utc::now(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut h = Sha256::new();
    h.update(&inner);
    h.update(data);
    let inner_hash = h.finalize();
    let mut h = Sha256::new();
    h.update(&outer);
    h.update(inner_hash);
    h.finalize().to_vec()
}

/// An S3 error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
        escape(message)
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
        .into_response()
}

/// Percent-encodes as SigV4 does: everything but `A-Za-z0-9-._~`.
fn strict_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path's `%XX` escapes decoded (a path keeps `+` as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| (bytes.get(j).copied().map(char::from)?).to_digit(16);
        match (bytes[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's pairs, decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Checks the request's `Authorization` (AWS4-HMAC-SHA256), or says why it fails.
fn check_signature(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let denied = |code: &str, message: &str| Box::new(error(StatusCode::FORBIDDEN, code, message));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| denied("AccessDenied", "Anonymous access is forbidden"))?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| denied("AccessDenied", "Only AWS4-HMAC-SHA256 is accepted"))?;
    let mut credential = "";
    let mut signed = "";
    let mut signature = "";
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[3] != "s3" || scope[4] != "aws4_request" {
        return Err(denied(
            "AuthorizationHeaderMalformed",
            "the credential scope is not KEY/DATE/REGION/s3/aws4_request",
        ));
    }
    if scope[0] != state.key_id {
        return Err(denied(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let amz_date =
        header("x-amz-date").ok_or_else(|| denied("AccessDenied", "x-amz-date is missing"))?;
    let payload = header("x-amz-content-sha256")
        .ok_or_else(|| denied("InvalidRequest", "x-amz-content-sha256 is missing"))?;
    if payload != "UNSIGNED-PAYLOAD" && payload != hex(&Sha256::digest(body)) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )));
    }
    let mut pairs = query_pairs(uri);
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", strict_encode(k), strict_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed}\n{payload}",
        method.as_str(),
        uri.path()
    );
    let scope_text = scope[1..].join("/");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope_text}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = [scope[1], scope[2], scope[3], scope[4]]
        .iter()
        .fold(format!("AWS4{}", state.secret).into_bytes(), |k, part| {
            hmac(&k, part.as_bytes())
        });
    if hex(&hmac(&key, to_sign.as_bytes())) != signature {
        return Err(denied(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ));
    }
    Ok(())
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` over an object of `size` bytes: the bytes to send,
/// or `None` when the range cannot be met.
fn byte_range(spec: &str, size: usize) -> Option<(usize, usize)> {
    let spec = spec.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: usize = b.parse().ok()?;
        if n == 0 || size == 0 {
            return None;
        }
        return Some((size.saturating_sub(n), size));
    }
    let start: usize = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        (b.parse::<usize>().ok()? + 1).min(size)
    };
    (start < size && start < end).then_some((start, end))
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

async fn handle(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.log.push(format!(
        "{method} {}{}{}",
        uri.path(),
        uri.query().map(|q| format!("?{q}")).unwrap_or_default(),
        headers
            .get("range")
            .and_then(|r| r.to_str().ok())
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    ));
    if state.refuse > 0 {
        state.refuse -= 1;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        );
    }
    match state.deny_after {
        Some(0) => return error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied"),
        Some(n) => state.deny_after = Some(n - 1),
        None => {}
    }
    if let Err(refused) = check_signature(&state, &method, &uri, &headers, &body) {
        return *refused;
    }
    let path = uri.path().trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b.to_string(), k.to_string()),
        None => (path.to_string(), String::new()),
    };
    let key = percent_decode(&key);
    if !state.buckets.contains_key(&bucket) {
        return error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    let query: HashMap<String, String> = query_pairs(&uri).into_iter().collect();
    match (&method, key.is_empty()) {
        (&Method::GET, true) => list(&state, &bucket, &query),
        (&Method::POST, true) if query.contains_key("delete") => {
            delete_many(&mut state, &bucket, &body)
        }
        (&Method::GET | &Method::HEAD, false) => get(&state, &bucket, &key, &method, &headers),
        (&Method::PUT, false) => match (query.get("uploadId"), query.get("partNumber")) {
            (Some(id), Some(n)) => put_part(&mut state, id, n, body),
            _ => {
                let object = new_object(body);
                let etag = object.etag.clone();
                state
                    .buckets
                    .get_mut(&bucket)
                    .expect("checked above")
                    .insert(key, object);
                (StatusCode::OK, [("etag", etag)]).into_response()
            }
        },
        (&Method::POST, false) if query.contains_key("uploads") => {
            state.next_upload += 1;
            let id = format!("upload-{}", state.next_upload);
            state.uploads.insert(
                id.clone(),
                Upload {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    parts: BTreeMap::new(),
                },
            );
            xml(format!(
                "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                escape(&bucket),
                escape(&key)
            ))
        }
        (&Method::POST, false) => match query.get("uploadId") {
            Some(id) => complete(&mut state, id, &body),
            None => error(StatusCode::BAD_REQUEST, "InvalidRequest", "unknown POST"),
        },
        (&Method::DELETE, false) => {
            if let Some(id) = query.get("uploadId") {
                return match state.uploads.remove(id) {
                    Some(_) => StatusCode::NO_CONTENT.into_response(),
                    None => error(StatusCode::NOT_FOUND, "NoSuchUpload", "no such upload"),
                };
            }
            state
                .buckets
                .get_mut(&bucket)
                .expect("checked above")
                .remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        ),
    }
}

fn get(state: &State, bucket: &str, key: &str, method: &Method, headers: &HeaderMap) -> Response {
    let Some(object) = state.buckets.get(bucket).and_then(|b| b.get(key)) else {
        if method == Method::HEAD {
            return StatusCode::NOT_FOUND.into_response();
        }
        return error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let size = object.bytes.len();
    let common = [
        ("etag", object.etag.clone()),
        ("last-modified", http_date(object.modified)),
        ("accept-ranges", "bytes".to_string()),
    ];
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size),
        Some(spec) => match byte_range(spec, size) {
            Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
            None => {
                return error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                );
            }
        },
    };
    let mut response = if method == Method::HEAD {
        (status, common.clone(), Bytes::new()).into_response()
    } else {
        (status, common.clone(), object.bytes.slice(start..end)).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        "content-length",
        (end - start)
            .to_string()
            .parse()
            .expect("a number is a header value"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            "content-range",
            format!("bytes {start}-{}/{size}", end - 1)
                .parse()
                .expect("a range is a header value"),
        );
    }
    response
}

fn list(state: &State, bucket: &str, query: &HashMap<String, String>) -> Response {
    if query.get("list-type").map(String::as_str) != Some("2") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "only ListObjectsV2 is served",
        );
    }
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let delimiter = query.get("delimiter").cloned().unwrap_or_default();
    let after = query
        .get("continuation-token")
        .or_else(|| query.get("start-after"))
        .cloned()
        .unwrap_or_default();
    let objects = &state.buckets[bucket];
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut truncated = false;
    for (key, object) in objects.range(after.clone()..) {
        if key <= &after || !key.starts_with(&prefix) {
            continue;
        }
        if contents.len() + prefixes.len() == PAGE_KEYS {
            truncated = true;
            break;
        }
        let rest = &key[prefix.len()..];
        match (!delimiter.is_empty()).then(|| rest.find(&delimiter)).flatten() {
            Some(at) => {
                let common = format!("{prefix}{}", &rest[..at + delimiter.len()]);
                if !prefixes.contains(&common) {
                    prefixes.push(common);
                }
            }
            None => contents.push(format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                escape(key),
                object.modified.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                escape(&object.etag),
                object.bytes.len()
            )),
        }
        last = key.clone();
    }
    let token = if truncated {
        format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            escape(&last)
        )
    } else {
        String::new()
    };
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                escape(p)
            )
        })
        .collect();
    xml(format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{PAGE_KEYS}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{token}{}{common}</ListBucketResult>",
        escape(bucket),
        escape(&prefix),
        contents.len() + prefixes.len(),
        contents.join("")
    ))
}

fn put_part(state: &mut State, id: &str, number: &str, body: Bytes) -> Response {
    let Ok(n) = number.parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, "InvalidArgument", "partNumber");
    };
    let Some(upload) = state.uploads.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "NoSuchUpload", "no such upload");
    };
    let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..32]);
    upload.parts.insert(n, body);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// The texts of every `<tag>…</tag>` in `body`, in order.
fn elements<'a>(body: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(a) = rest.find(&open) {
        let inner = &rest[a + open.len()..];
        let Some(b) = inner.find(&close) else { break };
        out.push(&inner[..b]);
        rest = &inner[b + close.len()..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn complete(state: &mut State, id: &str, body: &[u8]) -> Response {
    let text = String::from_utf8_lossy(body);
    let Some(upload) = state.uploads.remove(id) else {
        return error(StatusCode::NOT_FOUND, "NoSuchUpload", "no such upload");
    };
    let mut bytes = Vec::new();
    for part in elements(&text, "Part") {
        let number = elements(part, "PartNumber")
            .first()
            .and_then(|n| n.parse::<u32>().ok());
        match number.and_then(|n| upload.parts.get(&n)) {
            Some(p) => bytes.extend_from_slice(p),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPart",
                    "a listed part was not uploaded",
                );
            }
        }
    }
    let object = new_object(Bytes::from(bytes));
    let etag = object.etag.clone();
    let (bucket, key) = (upload.bucket.clone(), upload.key.clone());
    state
        .buckets
        .entry(bucket.clone())
        .or_default()
        .insert(key.clone(), object);
    xml(format!(
        "<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
        escape(&bucket),
        escape(&key),
        escape(&etag)
    ))
}

fn delete_many(state: &mut State, bucket: &str, body: &[u8]) -> Response {
    let text = String::from_utf8_lossy(body);
    let objects = state
        .buckets
        .get_mut(bucket)
        .expect("checked by the caller");
    let mut deleted = String::new();
    for object in elements(&text, "Object") {
        if let Some(key) = elements(object, "Key").first() {
            let key = unescape(key);
            objects.remove(&key);
            deleted.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)));
        }
    }
    xml(format!(
        "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{deleted}</DeleteResult>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Amazon's own worked example of a signed GET (S3 API reference, "Signature
    /// Calculations for the Authorization Header: Transferring Payload in a Single Chunk",
    /// GET Object): the stand-in accepts exactly the signature Amazon computes, and
    /// refuses it for another secret or another range.
    #[test]
    fn amazons_worked_example_of_a_signed_get_is_accepted() {
        let state = State {
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ..State::default()
        };
        let uri: Uri = "/test.txt".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        headers.insert("range", "bytes=0-9".parse().unwrap());
        headers.insert(
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse()
                .unwrap(),
        );
        headers.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                .parse()
                .unwrap(),
        );
        assert!(check_signature(&state, &Method::GET, &uri, &headers, b"").is_ok());
        let other = State {
            secret: "another".into(),
            key_id: state.key_id.clone(),
            ..State::default()
        };
        assert!(check_signature(&other, &Method::GET, &uri, &headers, b"").is_err());
        headers.insert("range", "bytes=0-10".parse().unwrap());
        assert!(check_signature(&state, &Method::GET, &uri, &headers, b"").is_err());
    }

    #[test]
    fn byte_ranges_as_http_defines_them() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(byte_range("bytes=-8", 100), Some((92, 100)));
        assert_eq!(byte_range("bytes=-800", 100), Some((0, 100)));
        assert_eq!(byte_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
    }
}
