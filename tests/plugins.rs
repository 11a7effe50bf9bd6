//! Connector plugins built as `cdylib`s and loaded at run time: the amoCRM plugin's tables
//! synced into a store and reported on; a plugin of another ABI, a library that is not a
//! plugin, a panicking plugin and a wrong schema each refused with their words while the
//! host goes on.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::util::{fails, ok, write};

/// The plugin libraries, built once (`cargo build` of the three plugin crates).
fn library(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "svodka-plugin-amocrm",
                "-p",
                "svodka-plugin-fixture-faulty",
                "-p",
                "svodka-plugin-fixture-old-abi",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the plugins");
    });
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_svodka"))
        .parent()
        .unwrap()
        .to_path_buf();
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    dir.join(file)
}

/// `svodka sync` of a plugin (`plugin`: how it is named) into `store`, with its settings.
fn sync(store: &str, plugin: &[&str], config: &std::path::Path) -> String {
    let mut args = vec!["sync", "--data", store];
    args.extend_from_slice(plugin);
    args.extend(["--plugin-config", config.to_str().unwrap()]);
    ok(&args)
}

/// `run REPORT` on `store` for October 2026, as of its last day.
fn october<'a>(report: &'a str, store: &'a str) -> [&'a str; 10] {
    [
        "run",
        report,
        "--data",
        store,
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-31",
        "--as-of",
        "2026-10-31",
    ]
}

/// An amoCRM export: three deals, one won in October, one lost, one open.
fn export(dir: &std::path::Path) -> PathBuf {
    write(
        dir,
        "amocrm.csv",
        "ID;Название сделки;Бюджет;Ответственный;Дата создания;Дата закрытия;Этап сделки;Воронка;Компания\n\
         101;Поставка;1 500 000;Анна Петрова;01.10.2026 10:00;15.10.2026 12:30;Успешно реализовано;Продажи;ООО «Альфа»\n\
         102;Монтаж;250000,50;Борис Иванов;02.10.2026 11:00;;Переговоры;Продажи;\n\
         103;Сервис;80 000;Анна Петрова;03.10.2026 09:15;20.10.2026 18:00;Закрыто и не реализовано;Сервис;ООО «Альфа»\n",
    )
}

#[test]
fn the_amocrm_plugin_is_listed_synced_and_reported_on() {
    let amocrm = library("svodka-plugin-amocrm");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&amocrm, plugins.join(amocrm.file_name().unwrap())).unwrap();
    let listed = ok(&["plugins", "list", "--dir", plugins.to_str().unwrap()]);
    assert!(listed.starts_with("amocrm 0.1.0 (ABI 2) "), "{listed}");
    assert!(
        listed.contains("  deals: id: Int64, title: Utf8, pipeline_id: Int64"),
        "{listed}"
    );
    assert!(!listed.contains("error"), "{listed}");
    assert!(
        listed.contains("  page of a deal: {portal}/leads/detail/{id}\n"),
        "{listed}"
    );
    let csv = export(dir.path());
    let config = write(
        dir.path(),
        "amocrm.yaml",
        &format!("path: {}\ntimezone: Europe/Moscow\n", csv.display()),
    );
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // By name from the plugin folder.
    let out = sync(
        s,
        &[
            "--plugin",
            "amocrm",
            "--plugin-dir",
            plugins.to_str().unwrap(),
        ],
        &config,
    );
    assert!(
        out.starts_with("snapshot 000001 (plugin amocrm 0.1.0)"),
        "{out}"
    );
    assert!(
        out.contains("  deals: 3\n") && out.contains("  users: 2\n"),
        "{out}"
    );
    // The reports run on what the plugin gave: October's won sales.
    let report = crate::util::json(&october("sales_dynamics", s));
    let text = report.to_string();
    assert!(text.contains("1500000"), "the won deal's amount: {text}");
    // Links are amoCRM's own pages, from the plugin's `links` written into the data set's
    // description — none without a portal to put them on.
    let info = std::fs::read_to_string(store.join("snapshots/000001/dataset.yaml")).unwrap();
    assert!(
        info.contains("deal: '{portal}/leads/detail/{id}'"),
        "{info}"
    );
    let url = |report: &serde_json::Value| {
        crate::util::block(report, "deals_list")["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["url"].clone())
            .collect::<Vec<_>>()
    };
    assert!(url(&report).iter().all(|u| u.is_null()), "{text}");
    let mut args = october("sales_dynamics", s).to_vec();
    args.extend(["--portal", "https://acme.amocrm.ru"]);
    let linked = crate::util::json(&args);
    assert_eq!(
        url(&linked),
        [
            "https://acme.amocrm.ru/leads/detail/103",
            "https://acme.amocrm.ru/leads/detail/102",
            "https://acme.amocrm.ru/leads/detail/101"
        ]
    );
    // The plugin gave no activities: a report that reads them says so, once a table.
    let out = crate::util::svodka(&october("forgotten", s));
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let absent = format!(
        "note: {s}: snapshot 000001 (plugin amocrm 0.1.0) has no table `activities`; it reads as empty\n"
    );
    assert_eq!(err.matches(&absent).count(), 1, "{err}");
    assert!(!err.contains("`deals`"), "deals were delivered: {err}");
    // The plans template reads the store's employees (not an empty CSV folder).
    let book = dir.path().join("plans.xlsx");
    let out = crate::util::svodka(&[
        "plan",
        "template",
        "--data",
        s,
        "--out",
        book.to_str().unwrap(),
    ]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "wrote {}: 0 departments, 2 employees × 12 months of 2026",
            book.display()
        )),
        "{err}"
    );
    assert!(err.contains("has no table `departments`"), "{err}");
}

#[test]
fn faulty_plugins_are_refused_with_their_words_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let old = library("svodka-plugin-fixture-old-abi");
    let err = fails(&["sync", "--data", s, "--plugin", old.to_str().unwrap()]);
    assert!(
        err.contains("plugin ABI version 0, this Svodka speaks 2: rebuild the plugin"),
        "{err}"
    );
    let not = write(dir.path(), "libnot.so", "not a library");
    let err = fails(&["sync", "--data", s, "--plugin", not.to_str().unwrap()]);
    assert!(err.contains("libnot.so: not a loadable library"), "{err}");
    // The faulty plugin: each of its tables fails its own way, in the same process.
    let faulty_lib = library("svodka-plugin-fixture-faulty");
    let faulty = svodka_plugins::Plugin::load(&faulty_lib).unwrap();
    // Declared wrong: known at load, before any settings.
    assert_eq!(
        faulty.problems(),
        [
            "table `users`, column `active`: expected type Boolean, found Utf8",
            "table `deals`: required column `title` is missing"
        ]
    );
    let none = serde_json::Value::Null;
    let session = faulty.configure(&none, None).unwrap();
    let e = session.read("users").unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin faulty: table `users`, column `active`: expected type Boolean, found Utf8"
    );
    // Panics come back once, with where they happened.
    let e = session.read("boom").unwrap_err().to_string();
    assert!(
        e.starts_with("plugin faulty, table `boom`: panicked: cannot open boom (at plugins/fixtures/faulty/src/lib.rs:"),
        "{e}"
    );
    let e = session.read("late").unwrap_err().to_string();
    assert!(
        e.starts_with("plugin faulty, table `late`: batch 2: panicked: the source went away (at "),
        "{e}"
    );
    // A batch that differs from the declared schema is named by table, batch and column.
    let e = session.read("pipelines").unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin faulty, table `pipelines`: batch 2, column `sort`: Utf8 `sort`, the table declared Int64 `sort`"
    );
    // Extra tables are fine, and the plugin still answers after its panics.
    let (_, batches) = session.read("extra").unwrap();
    assert_eq!(batches[0].num_rows(), 2);
    // Batches and streams outlive the session and the plugin handle: the library stays
    // loaded.
    let stream = session.open("extra").unwrap();
    drop(session);
    let e = faulty
        .configure(&serde_json::json!({"panic": true}), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with(
            "plugin faulty: panicked: settings went wrong (at plugins/fixtures/faulty/src/lib.rs:"
        ),
        "{e}"
    );
    drop(faulty);
    assert_eq!(stream.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);
    // Through the CLI: the wrong declarations are refused before the plugin is asked for
    // anything; the store is untouched.
    let err = fails(&[
        "sync",
        "--data",
        s,
        "--plugin",
        faulty_lib.to_str().unwrap(),
    ]);
    assert!(
        err.contains("plugin faulty declares tables that cannot be canonical")
            && err.contains("\n  table `users`, column `active`: expected type Boolean, found Utf8\n  table `deals`: required column `title` is missing"),
        "{err}"
    );
    assert!(!store.exists());
    // A panic while syncing is told once, in Svodka's words: no raw panic output.
    let config = write(dir.path(), "panic.yaml", "panic: true\n");
    let out = crate::util::svodka_command()
        .env("SVODKA_FAULTY_FINE_ONLY", "1")
        .env("RUST_BACKTRACE", "1")
        .args([
            "sync",
            "--data",
            s,
            "--plugin",
            faulty_lib.to_str().unwrap(),
        ])
        .args(["--plugin-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        err.contains("error: plugin faulty: panicked: settings went wrong (at "),
        "{err}"
    );
    assert!(
        !err.contains("thread '") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.matches("settings went wrong").count(), 1, "{err}");
    // A mid-stream type mismatch, through the CLI: named; nothing written.
    let out = crate::util::svodka_command()
        .env("SVODKA_FAULTY_FINE_ONLY", "1")
        .args([
            "sync",
            "--data",
            s,
            "--plugin",
            faulty_lib.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("error: plugin faulty, table `pipelines`: batch 2, column `sort`: Utf8 `sort`, the table declared Int64 `sort`"),
        "{err}"
    );
    assert!(!store.exists());
    // `plugins list` shows the declared problems and fails.
    let listed =
        crate::util::svodka(&["plugins", "list", "--plugin", faulty_lib.to_str().unwrap()]);
    assert!(!listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("  users: id: Int64, name: Utf8, active: Utf8\n    error: table `users`, column `active`: expected type Boolean, found Utf8\n"),
        "{text}"
    );
    let listed = crate::util::svodka(&[
        "plugins",
        "list",
        "--plugin",
        old.to_str().unwrap(),
        "--plugin",
        library("svodka-plugin-amocrm").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("error: ") && text.contains("amocrm 0.1.0 (ABI 2)"),
        "{text}"
    );
}

/// A plugin crate outside the repository, as docs/plugins.md walks through it: its own
/// manifest depending on the SDK by path, Svodka's Cargo.lock and profile, built into
/// Svodka's target folder — where it reuses the compiled arrow instead of building it
/// again — then listed, synced and reported on.
#[test]
fn a_plugin_crate_outside_the_repository_builds_reuses_arrow_and_loads() {
    // The repository's plugins are built first: arrow with the SDK's features is there.
    library("svodka-plugin-amocrm");
    let root = crate::util::root();
    let fixture = root.join("tests/fixtures/plugin-jsonl");
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("svodka-plugin-jsonl");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml.in"))
        .unwrap()
        .replace("@SDK@", root.join("plugins/sdk").to_str().unwrap());
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(fixture.join("src/lib.rs"), krate.join("src/lib.rs")).unwrap();
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let target = PathBuf::from(env!("CARGO_BIN_EXE_svodka"))
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .to_path_buf();
    let out = std::process::Command::new(env!("CARGO"))
        .args(["build", "--offline", "--message-format=json"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&krate)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut arrow_units = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = m["target"]["name"].as_str().unwrap_or_default();
        if m["reason"] == "compiler-artifact" && name.starts_with("arrow") {
            arrow_units += 1;
            assert_eq!(m["fresh"], true, "{name} was compiled again");
        }
    }
    assert!(arrow_units >= 10, "{arrow_units} arrow crates");
    let lib = target.join("debug").join(format!(
        "{}svodka_plugin_jsonl{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let listed = ok(&["plugins", "list", "--plugin", lib.to_str().unwrap()]);
    assert!(listed.starts_with("jsonl 0.1.0 (ABI 2) "), "{listed}");
    let export = write(
        dir.path(),
        "export.jsonl",
        "{\"user\": {\"id\": 1, \"name\": \"Анна Петрова\"}}\n\
         {\"deal\": {\"id\": 10, \"title\": \"Поставка\", \"amount\": \"1 234,50\", \"manager\": 1, \"created\": \"01.10.2026 10:00\", \"closed\": \"15.10.2026 12:30\", \"won\": true}}\n\
         {\"deal\": {\"id\": 11, \"title\": \"Монтаж\", \"amount\": \"250 000\", \"manager\": 1, \"created\": \"02.10.2026 11:00\"}}\n",
    );
    let config = write(
        dir.path(),
        "jsonl.yaml",
        &format!("path: {}\n", export.display()),
    );
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let out = sync(s, &["--plugin", lib.to_str().unwrap()], &config);
    assert!(
        out.contains("  deals: 2\n") && out.contains("  users: 1\n"),
        "{out}"
    );
    let report = crate::util::json(&october("sales_dynamics", s));
    assert!(report.to_string().contains("1234.5"), "{report}");
}

/// The features Cargo resolves for each crate of a build (`cargo tree` of its normal and
/// build dependencies), by `name vX.Y.Z`.
fn resolved_features(args: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(["-f", "{p}|{f}"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        let id: Vec<&str> = package.split_whitespace().take(2).collect();
        found.entry(id.join(" ")).or_default().extend(
            features
                .trim_end_matches(" (*)")
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    found
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// With `svodka-target`, every crate the SDK shares with the `svodka` binary is built with
/// the same features as in Svodka's own build — what lets a plugin reuse Svodka's compiled
/// arrow. A dependency update that changes Svodka's features shows here, naming the crate.
#[test]
fn the_sdk_resolves_the_features_of_svodkas_own_build() {
    let svodka = resolved_features(&["-p", "svodka"]);
    let sdk = resolved_features(&[
        "-p",
        "svodka-plugin-sdk",
        "--features",
        "svodka-plugin-sdk/svodka-target",
    ]);
    let differing: Vec<String> = sdk
        .iter()
        .filter(|(id, _)| !id.starts_with("svodka-plugin-sdk "))
        .filter_map(|(id, features)| {
            let theirs = svodka.get(id)?;
            (theirs != features).then(|| format!("{id}: svodka {theirs:?}, sdk {features:?}"))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "pin these in plugins/sdk/Cargo.toml:\n{}",
        differing.join("\n")
    );
    assert!(sdk.keys().any(|k| k.starts_with("arrow-array ")), "{sdk:?}");
}
