//! The cluster: a scheduler and two executors, each a `svodka cluster` process on
//! loopback, run every report on a store; the JSON must be byte-identical to the local
//! run's. Also: what cannot be shipped is refused, a run that loses an executor finishes
//! with the local numbers, a silent executor is dropped within a minute, and peers of
//! another version are turned away.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{fails, ok, svodka_command};

/// A free loopback port (bound and released: the process started next takes it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process killed when the test ends, passed or not.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scheduler and `executors` executors on loopback, ready for work.
struct LocalCluster {
    scheduler: String,
    _scheduler: Process,
    executors: Vec<Process>,
    _work: tempfile::TempDir,
    /// The environment of every process (a bucket's endpoint and keys).
    env: Vec<(&'static str, String)>,
}

impl LocalCluster {
    fn start(executors: usize) -> LocalCluster {
        LocalCluster::start_with(executors, Vec::new())
    }

    fn start_with(executors: usize, env: Vec<(&'static str, String)>) -> LocalCluster {
        let work = tempfile::tempdir().unwrap();
        let scheduler = format!("127.0.0.1:{}", free_port());
        let sched = Process(
            svodka_command()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args(["cluster", "scheduler", "--bind", &scheduler])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(
            || std::net::TcpStream::connect(&scheduler).is_ok(),
            "the scheduler",
        );
        let mut cluster = LocalCluster {
            scheduler,
            _scheduler: sched,
            executors: Vec::new(),
            _work: work,
            env,
        };
        for i in 0..executors {
            cluster.add_executor(i);
        }
        let want = executors;
        wait_for(
            || cluster.status_lines().len() == want,
            "the executors to register",
        );
        cluster
    }

    fn add_executor(&mut self, i: usize) {
        let work_dir = self._work.path().join(format!("executor-{i}"));
        let child = svodka_command()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args([
                "cluster",
                "executor",
                "--scheduler",
                &self.scheduler,
                "--port",
                &free_port().to_string(),
                "--grpc-port",
                &free_port().to_string(),
                "--work-dir",
                work_dir.to_str().unwrap(),
                "--concurrent-tasks",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.executors.push(Process(child));
    }

    /// `svodka cluster status`'s executor lines.
    fn status_lines(&self) -> Vec<String> {
        let out = svodka_command()
            .args(["cluster", "status", "--scheduler", &self.scheduler])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()
    }
}

/// A store in a bucket: the scheduler lists its files and the executors read them
/// through clients made from their own environment; every report equals the local run.
#[test]
fn every_report_on_the_cluster_reads_a_store_in_a_bucket() {
    let bucket = crate::buckets::Bucket::start();
    let store = crate::util::import_store(&crate::util::fixture("forgotten"));
    let url = "s3://reports/acme";
    bucket.push(store.path(), url);
    let cluster = LocalCluster::start_with(2, bucket.env.clone());
    let folder = store.path().to_str().unwrap();
    let before = bucket.s3.log().len();
    for report in crate::util::REPORTS {
        let args = |data: &str| {
            let mut args = vec![report.to_string(), "--data".into(), data.to_string()];
            args.extend(["--from", "2024-04-01", "--to", "2024-04-30"].map(String::from));
            args
        };
        let mut on_cluster = args(url);
        on_cluster.extend(["--cluster".to_string(), cluster.scheduler.clone()]);
        let on_folder = args(folder);
        let run = |args: &[String]| -> Vec<String> {
            std::iter::once("run".to_string())
                .chain(args.iter().cloned())
                .collect()
        };
        let (on_cluster, on_folder) = (run(&on_cluster), run(&on_folder));
        assert_eq!(
            bucket.ok(&strs(&on_cluster)),
            ok(&strs(&on_folder)),
            "{report}"
        );
    }
    // Column chunks are read by range by the executors (a run on a cluster reads only
    // footers, suffix ranges, to plan).
    let chunks = bucket.s3.log()[before..]
        .iter()
        .filter(|r| r.starts_with("GET /reports/acme/snapshots/") && !r.contains("bytes=-"))
        .count();
    assert!(chunks > 0, "{:?}", &bucket.s3.log()[before..]);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An executor that dies without a word (killed, its machine gone) is dropped within
/// the scheduler's timeout, not Ballista's three minutes: its work goes to the others.
#[test]
fn a_silent_executor_is_taken_for_lost_within_a_minute() {
    let mut cluster = LocalCluster::start(2);
    drop(cluster.executors.remove(0));
    // `wait_for` gives up after a minute.
    wait_for(
        || cluster.status_lines().len() == 1,
        "the killed executor to go",
    );
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_json(report: &str, store: &Path, cluster: Option<&str>) -> String {
    let mut args = vec![
        "run",
        report,
        "--data",
        store.to_str().unwrap(),
        "--from",
        "2026-09-01",
        "--to",
        "2026-11-30",
    ];
    if let Some(c) = cluster {
        args.extend(["--cluster", c]);
    }
    ok(&args)
}

#[test]
fn every_report_on_a_two_executor_cluster_equals_the_local_run_byte_for_byte() {
    let (_demo, store) = crate::util::demo_and_store("1500");
    let cluster = LocalCluster::start(2);
    let status = cluster.status_lines();
    assert_eq!(status.len(), 2, "{status:?}");
    for line in &status {
        let cells: Vec<&str> = line.split('\t').collect();
        assert!(cells[1].starts_with("127.0.0.1:"), "{line}");
        assert_eq!(cells[3], "2", "slots: {line}");
        assert_eq!(cells[5], env!("CARGO_PKG_VERSION"), "{line}");
    }
    for report in [
        "forgotten",
        "manager_efficiency",
        "marketing",
        "sales_dynamics",
        "sales_plan",
        "clients",
    ] {
        let local = run_json(report, store.path(), None);
        let remote = run_json(report, store.path(), Some(&cluster.scheduler));
        assert!(
            local == remote,
            "{report}: the cluster's JSON differs from the local run's"
        );
    }
    // The service: a client whose client.yaml names the cluster answers as one that does not.
    let local = service_json(store.path(), None, "sales_dynamics");
    let remote = service_json(store.path(), Some(&cluster.scheduler), "sales_dynamics");
    assert_eq!(local.0, 200, "{}", String::from_utf8_lossy(&local.1));
    assert!(
        local == remote,
        "the service's JSON through the cluster differs"
    );
}

/// `GET /api/reports/{report}` of a client on `store`, run on `cluster` when given.
fn service_json(store: &Path, cluster: Option<&str>, report: &str) -> (u16, Vec<u8>) {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("clients/acme");
    let cluster_line = cluster
        .map(|c| format!("cluster: {c}\n"))
        .unwrap_or_default();
    crate::util::write(
        &client,
        "client.yaml",
        &format!(
            "name: acme\ndata: {{ folder: {} }}\n{cluster_line}tokens: [{}]\n",
            store.display(),
            svodka_service::auth::hash_token("tok")
        ),
    );
    let mut service =
        svodka_service::Service::load(dir.path(), svodka_service::Limits::default()).unwrap();
    service.clock = crate::util::clock();
    let router = svodka_service::router(std::sync::Arc::new(service));
    let request = axum::http::Request::builder()
        .uri(format!(
            "/api/reports/{report}?from=2026-09-01&to=2026-11-30"
        ))
        .header("authorization", "Bearer tok")
        .body(axum::body::Body::empty())
        .unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let reply = router.oneshot(request).await.unwrap();
            let status = reply.status().as_u16();
            let body = axum::body::to_bytes(reply.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec();
            (status, body)
        })
}

#[test]
fn what_cannot_be_shipped_is_refused_with_the_way_out() {
    let cluster = LocalCluster::start(1);
    let fixture = crate::util::fixture("forgotten");
    let err = fails(&[
        "run",
        "forgotten",
        "--data",
        fixture.to_str().unwrap(),
        "--cluster",
        &cluster.scheduler,
    ]);
    assert!(
        err.contains("cannot be read by the cluster at 127.0.0.1:")
            && err.contains("svodka store import"),
        "{err}"
    );
    // No scheduler there: the run fails naming the address, it does not hang or panic.
    let nobody = format!("127.0.0.1:{}", free_port());
    // A store without some tables (no 1C here) still goes: an absent table is empty.
    let demo = tempfile::tempdir().unwrap();
    let d = demo.path().to_str().unwrap();
    ok(&["demo", "--out", d, "--deals", "200"]);
    std::fs::remove_file(demo.path().join("onec_sales.csv")).unwrap();
    let store = crate::util::import_store(demo.path());
    let local = run_json("clients", store.path(), None);
    assert!(local == run_json("clients", store.path(), Some(&cluster.scheduler)));
    let err = fails(&[
        "run",
        "forgotten",
        "--data",
        store.path().to_str().unwrap(),
        "--cluster",
        &nobody,
    ]);
    assert!(
        err.contains(&format!(
            "the cluster at {nobody}: cannot reach the scheduler"
        )) && !err.contains("panicked"),
        "{err}"
    );
    for bad in ["nohost:", "a b:1", "h:99999"] {
        let err = fails(&["run", "forgotten", "--demo", "--cluster", bad]);
        assert!(
            err.contains("--cluster") && err.contains("HOST:PORT"),
            "{err}"
        );
    }
    // A client file naming no address stops that client from loading, with the file named.
    let dir = tempfile::tempdir().unwrap();
    crate::util::write(
        &dir.path().join("clients/acme"),
        "client.yaml",
        &format!(
            "name: acme\ndata: {{ folder: {} }}\ncluster: \"sched; rm -rf /\"\n",
            store.path().display()
        ),
    );
    let err = svodka_service::Service::load(dir.path(), svodka_service::Limits::default())
        .err()
        .expect("a bad cluster address is refused")
        .to_string();
    assert!(
        err.contains("client.yaml") && err.contains("cluster:") && err.contains("HOST:PORT"),
        "{err}"
    );
}

#[test]
fn a_run_that_loses_an_executor_finishes_with_the_local_numbers() {
    let (_demo, store) = crate::util::demo_and_store("3000");
    let mut cluster = LocalCluster::start(2);
    let local = run_json("sales_plan", store.path(), None);
    let out_file = store.path().join("remote.json");
    let mut run = svodka_command()
        .args([
            "run",
            "sales_plan",
            "--data",
            store.path().to_str().unwrap(),
            "--from",
            "2026-09-01",
            "--to",
            "2026-11-30",
            "--cluster",
            &cluster.scheduler,
            "--out",
            out_file.to_str().unwrap(),
            "--timeout",
            "150",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // sales_plan runs for seconds on this store: the executor dies in the middle.
    std::thread::sleep(Duration::from_millis(1500));
    drop(cluster.executors.remove(0));
    let (status, err) = wait_with_timeout(&mut run, Duration::from_secs(200));
    // The run finishes: the scheduler gives back the slots of tasks whose stage was
    // rolled back, so the executor left keeps taking work (on a busy 2-core machine, a
    // debug build took up to 49 s).
    assert!(status.success(), "{err}");
    // Ballista may list a result it redid beside the lost one; the scheduler fails such a
    // job and the run starts over, so the run has the local numbers.
    let remote = std::fs::read_to_string(&out_file).unwrap();
    // The first line that differs, with its neighbours, says which number went wrong.
    let first_difference = remote
        .lines()
        .zip(local.lines())
        .position(|(r, l)| r != l)
        .map(|at| {
            let around = |text: &str| {
                let lines: Vec<&str> = text.lines().collect();
                lines[at.saturating_sub(3)..(at + 3).min(lines.len())].join("\n")
            };
            format!(
                "line {}:\nremote:\n{}\nlocal:\n{}",
                at + 1,
                around(&remote),
                around(&local)
            )
        });
    assert!(
        remote == local,
        "a run that lost an executor must give the same result; {}",
        first_difference.unwrap_or_else(|| format!(
            "{} lines against {}",
            remote.lines().count(),
            local.lines().count()
        ))
    );
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// An executor or a run of another Svodka version, or a gRPC peer that is not Svodka at
/// all, is turned away at the scheduler's door with FAILED_PRECONDITION naming both
/// versions — over the wire, from a real scheduler process, whatever it asks; a peer of
/// this version passes the gate.
#[test]
fn a_peer_of_another_version_is_turned_away_by_the_scheduler() {
    use ballista_core::serde::protobuf::GetJobStatusParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let cluster = LocalCluster::start(0);
    let ours = format!("svodka/{}", env!("CARGO_PKG_VERSION"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (agent, refused_with) in [
            (
                Some("svodka/0.0.9"),
                Some(format!(
                    "this scheduler runs Svodka {} and the peer Svodka 0.0.9",
                    env!("CARGO_PKG_VERSION")
                )),
            ),
            (None, Some("accepts only Svodka executors".to_string())),
            (Some(ours.as_str()), None),
        ] {
            let mut endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.scheduler))
                    .unwrap();
            if let Some(agent) = agent {
                endpoint = endpoint.user_agent(agent).unwrap();
            }
            let channel = endpoint.connect().await.unwrap();
            let answer = SchedulerGrpcClient::new(channel)
                .get_job_status(GetJobStatusParams {
                    job_id: "no-such-job".into(),
                })
                .await;
            match (refused_with, answer) {
                (Some(words), Err(status)) => {
                    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{agent:?}");
                    assert!(status.message().contains(&words), "{agent:?}: {status:?}");
                }
                (Some(_), Ok(_)) => panic!("{agent:?} was let in"),
                (None, Err(status)) => assert!(
                    status.code() != tonic::Code::FailedPrecondition
                        && !status.message().contains("this scheduler runs Svodka"),
                    "our own version was turned away: {status:?}"
                ),
                (None, Ok(_)) => {}
            }
        }
    });
}
