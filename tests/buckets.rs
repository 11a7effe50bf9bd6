//! Stores in an S3-compatible bucket, against an emulator that speaks S3's REST API and
//! checks every request's signature: a store folder pushed there runs every report as the
//! folder does; a push is current only once whole; wrong credentials, a missing bucket
//! or store, a revoked key midway and 503s each end as the user would want.

use std::path::Path;
use std::process::Output;

use svodka_emulator_s3::S3;

use crate::util::{REPORTS, fixture, import_store, ok, svodka_command};

const KEY_ID: &str = "AKIDSVODKATEST";
const SECRET: &str = "secret/with+signs";

/// The emulator with bucket `reports`, and the environment a process reads it with.
pub struct Bucket {
    pub s3: S3,
    pub env: Vec<(&'static str, String)>,
}

impl Bucket {
    pub fn start() -> Bucket {
        let s3 = S3::start(KEY_ID, SECRET).unwrap();
        s3.create_bucket("reports");
        let env = vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", svodka_emulator_s3::REGION.to_string()),
            ("AWS_ENDPOINT", s3.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ];
        Bucket { s3, env }
    }

    /// Runs `svodka` with this bucket's environment.
    pub fn svodka(&self, args: &[&str]) -> Output {
        svodka_command()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.svodka(args);
        assert!(
            out.status.success(),
            "svodka {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.svodka(args);
        assert!(
            !out.status.success(),
            "svodka {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `svodka store push` of store folder `store` to `url`, with `extra` arguments.
    pub fn push_command(&self, store: &Path, url: &str, extra: &[&str]) -> Output {
        let args = [
            "store",
            "push",
            "--store",
            store.to_str().unwrap(),
            "--to",
            url,
        ];
        self.svodka(&[&args[..], extra].concat())
    }

    /// Pushes store folder `store` to `url`.
    pub fn push(&self, store: &Path, url: &str) -> String {
        let out = self.push_command(store, url, &[]);
        assert!(
            out.status.success(),
            "push failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

fn run_args<'a>(report: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        report,
        "--data",
        data,
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
    ]
}

#[test]
fn a_store_pushed_to_a_bucket_runs_every_report_as_the_folder_does() {
    let bucket = Bucket::start();
    let store = import_store(&fixture("forgotten"));
    let url = "s3://reports/clients/acme";
    let pushed = bucket.push(store.path(), url);
    assert!(pushed.contains("deals.parquet: "), "{pushed}");
    assert!(
        pushed.contains("snapshot 000001 in s3://reports/clients/acme ("),
        "{pushed}"
    );
    let keys: Vec<String> = bucket
        .s3
        .objects("reports")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.contains(&"clients/acme/CURRENT".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"clients/acme/snapshots/000001/deals.parquet".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"clients/acme/snapshots/000001/manifest.json".to_string()),
        "{keys:?}"
    );
    assert_eq!(
        bucket.s3.object("reports", "clients/acme/CURRENT").unwrap(),
        b"000001\n"
    );
    let shown = bucket.ok(&["store", "show", "--store", url]);
    assert_eq!(
        shown,
        ok(&["store", "show", "--store", store.path().to_str().unwrap()])
    );
    assert!(shown.contains("  deals: 9\n"), "{shown}");
    let folder = store.path().to_str().unwrap();
    for report in REPORTS {
        let requests = bucket.s3.log().len();
        assert_eq!(
            bucket.ok(&run_args(report, url)),
            ok(&run_args(report, folder)),
            "{report}"
        );
        // Tables are scanned: their footers and column chunks are read by range.
        let ranged = bucket.s3.log()[requests..]
            .iter()
            .filter(|r| r.starts_with("GET /reports/clients/acme/snapshots/000001/"))
            .count();
        assert!(ranged > 0, "{report}: {:?}", &bucket.s3.log()[requests..]);
    }
}

#[test]
fn a_push_is_current_only_once_whole_and_old_snapshots_go() {
    let bucket = Bucket::start();
    let url = "s3://reports/acme";
    let first = import_store(&fixture("forgotten"));
    let before = ok(&run_args("forgotten", first.path().to_str().unwrap()));
    bucket.push(first.path(), url);
    // A key revoked midway through the second push: it fails, names the place, and the
    // bucket's current snapshot is still the first, whole.
    let second = import_store(&fixture("edges"));
    bucket.s3.deny_after(Some(3));
    let out = bucket.push_command(second.path(), url, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://reports/acme/") && err.contains("access denied"),
        "{err}"
    );
    bucket.s3.deny_after(None);
    assert_eq!(
        bucket.s3.object("reports", "acme/CURRENT").unwrap(),
        b"000001\n"
    );
    assert_eq!(bucket.ok(&run_args("forgotten", url)), before);
    // Pushed again, it is the next snapshot after the broken one; with --keep 1 the
    // others go.
    let out = bucket.push_command(second.path(), url, &["--keep", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let current = String::from_utf8(bucket.s3.object("reports", "acme/CURRENT").unwrap()).unwrap();
    assert!(current == "000002\n" || current == "000003\n", "{current}");
    let snapshots: std::collections::BTreeSet<String> = bucket
        .s3
        .objects("reports")
        .into_iter()
        .filter_map(|(k, _)| {
            k.strip_prefix("acme/snapshots/")
                .map(|r| r[..6].to_string())
        })
        .collect();
    assert_eq!(
        snapshots.into_iter().collect::<Vec<_>>(),
        vec![current.trim().to_string()]
    );
    assert_eq!(bucket.s3.open_uploads(), 0);
    assert_eq!(
        bucket.ok(&run_args("marketing", url)),
        ok(&run_args("marketing", second.path().to_str().unwrap()))
    );
}

#[test]
fn requests_refused_for_the_rate_are_retried() {
    let bucket = Bucket::start();
    let store = import_store(&fixture("forgotten"));
    bucket.push(store.path(), "s3://reports/acme");
    bucket.s3.refuse_next(2);
    assert_eq!(
        bucket.ok(&run_args("forgotten", "s3://reports/acme")),
        ok(&run_args("forgotten", store.path().to_str().unwrap()))
    );
    let refused = bucket.s3.log();
    assert!(refused.len() > 2, "{refused:?}");
}

#[test]
fn a_bucket_that_cannot_be_read_is_named_with_what_to_check() {
    let bucket = Bucket::start();
    let store = import_store(&fixture("forgotten"));
    bucket.push(store.path(), "s3://reports/acme");
    let run = |b: &Bucket, data: &str| b.fails(&run_args("forgotten", data));

    // A store prefix with nothing in it.
    let err = run(&bucket, "s3://reports/nobody");
    assert!(
        err.contains("s3://reports/nobody: no snapshot yet"),
        "{err}"
    );
    // No such bucket.
    let err = run(&bucket, "s3://missing/acme");
    assert!(
        err.contains("s3://missing/acme/CURRENT: reading: there is no such bucket")
            && err.contains("NoSuchBucket"),
        "{err}"
    );
    // A wrong secret: the signature does not match.
    let mut wrong = Bucket {
        s3: S3::start(KEY_ID, "other").unwrap(),
        env: bucket.env.clone(),
    };
    wrong.env.retain(|(k, _)| *k != "AWS_ENDPOINT");
    wrong.env.push(("AWS_ENDPOINT", wrong.s3.endpoint.clone()));
    wrong.s3.create_bucket("reports");
    let err = run(&wrong, "s3://reports/acme");
    assert!(
        err.contains("s3://reports/acme/CURRENT: reading: access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    // Not a bucket address.
    let err = run(&bucket, "s3:///acme");
    assert!(
        err.contains("s3:///acme: no bucket name (write s3://BUCKET/PREFIX)"),
        "{err}"
    );
    // A sync or an import writes a folder, never a bucket, and says how to get there.
    let err = bucket.fails(&[
        "store",
        "import",
        "--data",
        fixture("forgotten").to_str().unwrap(),
        "--store",
        "s3://reports/acme",
    ]);
    assert!(
        err.contains("svodka store push --store FOLDER --to s3://BUCKET/PREFIX"),
        "{err}"
    );
    assert_eq!(
        bucket.s3.object("reports", "acme/CURRENT").unwrap(),
        b"000001\n"
    );
}

/// A client whose `data:` is a store in a bucket is served as the same client over the
/// folder: `svodka serve` as a process, asked over a socket. A snapshot pushed later is
/// served after a refresh, as a client over its folder serves it.
#[test]
fn the_service_serves_a_client_whose_store_is_in_a_bucket() {
    use std::io::{Read, Write};
    let bucket = Bucket::start();
    let store = import_store(&fixture("forgotten"));
    let later = import_store(&fixture("edges"));
    bucket.push(store.path(), "s3://reports/acme");
    let config = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("acme", "s3://reports/acme".to_string()),
        ("beta", store.path().display().to_string()),
        ("gamma", later.path().display().to_string()),
    ] {
        crate::util::write(
            &config.path().join("clients").join(name),
            "client.yaml",
            &format!(
                "name: {name}\ndata: {{ folder: \"{data}\" }}\ntokens: [{}]\n",
                svodka_service::auth::hash_token(&format!("tok-{name}"))
            ),
        );
    }
    let mut cmd = svodka_command();
    cmd.envs(bucket.env.iter().map(|(k, v)| (k, v)));
    let (mut child, addr) = crate::util::serve_process(cmd, config.path());
    let call = |method: &str, path: &str, client: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-{client}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        response
    };
    let body = |r: &str| r[r.find("\r\n\r\n").unwrap() + 4..].to_string();
    let report = |client: &str| {
        call(
            "GET",
            "/api/reports/forgotten?from=2024-04-01&to=2024-04-30",
            client,
        )
    };
    let (acme, beta) = (report("acme"), report("beta"));
    assert!(acme.starts_with("HTTP/1.1 200"), "{acme}");
    assert_eq!(body(&acme), body(&beta));
    assert!(body(&acme).contains("\"forgotten_deals\""), "{acme}");
    // The next snapshot goes to the bucket; a refresh serves it.
    bucket.push(later.path(), "s3://reports/acme");
    let job: serde_json::Value =
        serde_json::from_str(&body(&call("POST", "/api/refresh", "acme"))).unwrap();
    let job = job["job"].as_str().unwrap().to_string();
    let mut state = String::new();
    for _ in 0..600 {
        let j: serde_json::Value =
            serde_json::from_str(&body(&call("GET", &format!("/api/jobs/{job}"), "acme"))).unwrap();
        state = j["state"].as_str().unwrap_or_default().to_string();
        if state != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (acme, gamma) = (report("acme"), report("gamma"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(state, "done");
    assert_eq!(body(&acme), body(&gamma));
    assert_ne!(body(&acme), body(&beta));
}

/// A prefix is a path of any characters S3 takes: spaces, Cyrillic, `+`.
#[test]
fn a_prefix_with_spaces_and_cyrillic_reads_back() {
    let bucket = Bucket::start();
    let store = import_store(&fixture("forgotten"));
    let url = "s3://reports/клиенты 2026/a+b";
    bucket.push(store.path(), url);
    assert!(
        bucket
            .s3
            .object("reports", "клиенты 2026/a+b/CURRENT")
            .is_some()
    );
    assert_eq!(
        bucket.ok(&run_args("forgotten", url)),
        ok(&run_args("forgotten", store.path().to_str().unwrap()))
    );
}
