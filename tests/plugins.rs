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
    assert!(listed.starts_with("amocrm 0.1.0 (ABI 1) "), "{listed}");
    assert!(
        listed.contains("  deals: id: Int64, title: Utf8, pipeline_id: Int64"),
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
    let out = ok(&[
        "sync",
        "--data",
        s,
        "--plugin",
        "amocrm",
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--plugin-config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.starts_with("snapshot 000001 (plugin amocrm 0.1.0)"),
        "{out}"
    );
    assert!(
        out.contains("  deals: 3\n") && out.contains("  users: 2\n"),
        "{out}"
    );
    // The reports run on what the plugin gave: October's won sales.
    let report = crate::util::json(&[
        "run",
        "sales_dynamics",
        "--data",
        s,
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-31",
        "--as-of",
        "2026-10-31",
    ]);
    let text = report.to_string();
    assert!(text.contains("1500000"), "the won deal's amount: {text}");
}

#[test]
fn faulty_plugins_are_refused_with_their_words_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let old = library("svodka-plugin-fixture-old-abi");
    let err = fails(&["sync", "--data", s, "--plugin", old.to_str().unwrap()]);
    assert!(
        err.contains("plugin ABI version 0, this Svodka speaks 1: rebuild the plugin"),
        "{err}"
    );
    let not = write(dir.path(), "libnot.so", "not a library");
    let err = fails(&["sync", "--data", s, "--plugin", not.to_str().unwrap()]);
    assert!(err.contains("libnot.so: not a loadable library"), "{err}");
    // The faulty plugin: each of its tables fails its own way, in the same process.
    let faulty = svodka_plugins::Plugin::load(&library("svodka-plugin-fixture-faulty")).unwrap();
    let none = serde_json::Value::Null;
    let e = faulty.read("users", &none).unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin faulty: table `users`, column `active`: expected type Boolean, found Utf8"
    );
    let e = faulty.read("deals", &none).unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin faulty: table `deals`: required column `title` is missing"
    );
    let e = faulty.read("boom", &none).unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin faulty, table `boom`: plugin faulty panicked opening `boom`: cannot open boom"
    );
    let e = faulty.read("late", &none).unwrap_err().to_string();
    assert!(
        e.contains("plugin faulty panicked while reading: the source went away"),
        "{e}"
    );
    // Extra tables are fine, and the plugin still answers after its panics.
    let (_, batches) = faulty.read("extra", &none).unwrap();
    assert_eq!(batches[0].num_rows(), 2);
    // Batches and streams outlive the plugin handle: the library stays loaded.
    let stream = faulty.open("extra", &none).unwrap();
    drop(faulty);
    assert_eq!(stream.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);
    // Through the CLI: the wrong schema names table and column; the store is untouched.
    let err = fails(&[
        "sync",
        "--data",
        s,
        "--plugin",
        library("svodka-plugin-fixture-faulty").to_str().unwrap(),
    ]);
    assert!(
        err.contains(
            "plugin faulty: table `users`, column `active`: expected type Boolean, found Utf8"
        ),
        "{err}"
    );
    assert!(!store.join("CURRENT").exists());
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
        text.contains("error: ") && text.contains("amocrm 0.1.0 (ABI 1)"),
        "{text}"
    );
}
