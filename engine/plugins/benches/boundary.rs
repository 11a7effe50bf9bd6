//! Rows per second of the amoCRM connector's `deals` built in (called as a crate) and
//! loaded as a plugin (the release `cdylib`, batches over the Arrow C Stream interface):
//! the same CSV parsing on both sides, so the difference is the boundary.
//!
//! `cargo bench -p svodka-plugins` (builds the plugin in release first).

use std::time::Instant;

use svodka_plugin_sdk::{Connector, Request};

fn main() {
    let rows = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deals.csv");
    let mut csv = String::from(
        "ID;Название сделки;Бюджет;Ответственный;Дата создания;Дата закрытия;Этап сделки;Воронка;Компания\n",
    );
    for i in 0..rows {
        let stage = [
            "Переговоры",
            "Успешно реализовано",
            "Закрыто и не реализовано",
        ][i % 3];
        let closed = if i % 3 == 0 {
            String::new()
        } else {
            format!("{:02}.11.2026 12:00", i % 27 + 1)
        };
        csv += &format!(
            "{};Сделка {i};{} 000;Менеджер {};{:02}.10.2026 10:00;{closed};{stage};Продажи;ООО «Клиент {}»\n",
            i + 1,
            i % 900 + 1,
            i % 40,
            i % 28 + 1,
            i % 5000
        );
    }
    std::fs::write(&path, csv).unwrap();
    let request = Request {
        settings: serde_json::json!({"path": path.to_str().unwrap()}),
        since: None,
    };
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "svodka-plugin-amocrm",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .status()
        .unwrap();
    assert!(status.success());
    let lib = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release"))
        .join(format!(
            "{}svodka_plugin_amocrm{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
    let plugin = svodka_plugins::Plugin::load(&lib).unwrap();
    let settings = serde_json::json!({"path": path.to_str().unwrap()});
    for round in 0..3 {
        let t = Instant::now();
        let n: usize = svodka_plugin_amocrm::AmoCrm
            .configure(&request)
            .unwrap()
            .open("deals")
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        let built_in = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (_, batches) = plugin
            .configure(&settings, None)
            .unwrap()
            .read("deals")
            .unwrap();
        let m: usize = batches.iter().map(|b| b.num_rows()).sum();
        let loaded = t.elapsed().as_secs_f64();
        assert_eq!(n, m);
        println!(
            "round {round}: {n} deals built in {:.0} rows/s ({built_in:.3} s), as a plugin {:.0} rows/s ({loaded:.3} s, schema check included)",
            n as f64 / built_in,
            m as f64 / loaded
        );
    }
}
