//! The 1C connector end to end against the emulated OData publication
//! (`tests/emulators/onec`): a sync gives the generator's 1C tables and the same `clients`
//! report as the CSV; a mapping that does not fit `$metadata` is refused with the nearest
//! names; error replies are named and leave the store as it was; the incremental window,
//! the HTTP-service contract and file exports.

use std::collections::BTreeMap;
use std::path::Path;

use svodka_emulator_onec::{Emulator, Fault, PASSWORD, USER};
use svodka_store::Store;

use crate::util::{csv_lines, fails, ok, store_lines, write};

fn demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--out",
        dir.path().to_str().unwrap(),
        "--deals",
        "300",
        "--seed",
        "5",
    ]);
    dir
}

/// The settings of the emulated publication, with `sales` lines replaced where given.
fn settings(dir: &Path, url: &str, extra: &str) -> String {
    let text = format!(
        "odata: {{ url: \"{url}\", user: {USER}, password_env: SVODKA_TEST_1C_PASSWORD }}\n\
         timezone: Europe/Moscow\npage: 40\n\
         counterparties: {{ set: Catalog_Контрагенты, inn: ИНН, kpp: КПП }}\n\
         sales:\n  set: Document_РеализацияТоваровУслуг\n  counterparty: Контрагент_Key\n  amount: СуммаДокумента\n\
         \x20 quantity: Товары/Количество\n  volume: Товары/Объем\n\
         \x20 contract: {{ key: ДоговорКонтрагента_Key, set: Catalog_ДоговорыКонтрагентов }}\n{extra}"
    );
    write(dir, "onec.yaml", &text).to_str().unwrap().to_string()
}

fn sync_1c(store: &str, settings: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sync", "--data", store, "--onec", settings];
    args.extend_from_slice(extra);
    crate::util::svodka_command()
        .args(&args)
        .env("SVODKA_TEST_1C_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn ok_1c(store: &str, settings: &str, extra: &[&str]) -> String {
    let out = sync_1c(store, settings, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails_1c(store: &str, settings: &str) -> String {
    let out = sync_1c(store, settings, &[]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn an_odata_sync_gives_the_generator_tables_and_the_same_clients_report() {
    let data = demo();
    let d = data.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
    let base = Emulator::start(data.path()).unwrap();
    let conf = tempfile::tempdir().unwrap();
    let settings = settings(conf.path(), &base.url, "");
    let out = ok_1c(s, &settings, &[]);
    assert!(out.starts_with("snapshot 000002 (full 1C sync): "), "{out}");
    for table in ["onec_counterparties", "onec_sales"] {
        assert_eq!(
            store_lines(store.path(), table),
            csv_lines(data.path(), table),
            "{table}"
        );
    }
    // The CRM tables were carried over; `$metadata` is kept for the next sync.
    assert_eq!(
        store_lines(store.path(), "deals"),
        csv_lines(data.path(), "deals")
    );
    assert!(store.path().join("onec-metadata.xml").exists());
    let run = |data: &str| {
        ok(&[
            "run",
            "clients",
            "--data",
            data,
            "--from",
            "2026-06-01",
            "--to",
            "2026-11-30",
            "--as-of",
            "2026-11-25",
        ])
    };
    assert_eq!(run(s), run(d));
    // Incremental: a back-dated edit inside the window and nothing else re-read outside it.
    let before = base.requests();
    let number = base.with(|b| {
        let docs = &b.sets["Document_РеализацияТоваровУслуг"];
        let last = docs
            .values()
            .filter(|r| r["DeletionMark"] == false)
            .map(|r| r["Date"].as_str().unwrap().to_string())
            .max()
            .unwrap();
        let doc = docs
            .values()
            .find(|r| r["Date"].as_str().unwrap() == last)
            .unwrap();
        doc["Number"].as_str().unwrap().to_string()
    });
    base.with(|b| b.edit_sale(&number, "СуммаДокумента", serde_json::json!(123456.78)));
    let out = ok_1c(s, &settings, &[]);
    assert!(
        out.contains("(incremental 1C sync)") && out.contains("1 changed"),
        "{out}"
    );
    let sales = store_lines(store.path(), "onec_sales");
    assert!(
        sales
            .iter()
            .any(|l| l.contains(&number) && l.contains("123456.78")),
        "the edit is in"
    );
    assert_eq!(sales.len(), csv_lines(data.path(), "onec_sales").len());
    assert!(base.requests() - before < 20, "the window, not everything");
}

#[test]
fn a_mapping_that_does_not_fit_metadata_is_refused_with_the_nearest_names() {
    let data = demo();
    let base = Emulator::start(data.path()).unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let good = settings(conf.path(), &base.url, "");
    let broken = std::fs::read_to_string(&good)
        .unwrap()
        .replace("СуммаДокумента", "СуммаДокументов")
        .replace("Товары/Объем", "Товары/Объём");
    let path = write(conf.path(), "broken.yaml", &broken);
    let err = fails_1c(s, path.to_str().unwrap());
    assert!(
        err.contains("1C mapping does not fit the infobase's $metadata"),
        "{err}"
    );
    assert!(
        err.contains("sales.amount: `Document_РеализацияТоваровУслуг` has no field `СуммаДокументов` (nearest: СуммаДокумента"),
        "{err}"
    );
    assert!(err.contains("sales.volume: `Document_РеализацияТоваровУслуг/Товары` has no field `Объём` (nearest: Объем"), "{err}");
    assert!(!Store::is_store(store.path()), "nothing written");
}

#[test]
fn error_replies_are_named_and_the_store_is_untouched() {
    let data = demo();
    let d = data.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    ok(&["store", "import", "--data", d, "--store", s]);
    let base = Emulator::start(data.path()).unwrap();
    let conf = tempfile::tempdir().unwrap();
    let good = settings(conf.path(), &base.url, "");
    // A wrong password.
    let wrong = write(
        conf.path(),
        "wrong.yaml",
        &std::fs::read_to_string(&good).unwrap().replace(
            "password_env: SVODKA_TEST_1C_PASSWORD",
            "password: неверный",
        ),
    );
    let err = fails_1c(s, wrong.to_str().unwrap());
    assert!(
        err.contains("HTTP 401: the user `Администратор` is not let in"),
        "{err}"
    );
    // An OData error of the server (500, code -1) is not retried.
    base.set_faults(BTreeMap::from([(1, Fault::Business500)]));
    let err = fails_1c(s, &good);
    assert!(
        err.contains("HTTP 500, OData error -1: Ошибка при выполнении запроса"),
        "{err}"
    );
    // A publication that is not there answers an HTML page.
    let gone = write(
        conf.path(),
        "gone.yaml",
        &std::fs::read_to_string(&good)
            .unwrap()
            .replace("/base\"", "/other\""),
    );
    let err = fails_1c(s, gone.to_str().unwrap());
    assert!(err.contains("HTTP 404: 404 Not Found"), "{err}");
    // A URL over IIS's limit is answered by an HTML 404: named as such.
    let long = write(
        conf.path(),
        "long.yaml",
        &std::fs::read_to_string(&good)
            .unwrap()
            .replace("/base\"", &format!("/base/{}/..\"", "x".repeat(2100))),
    );
    let err = fails_1c(s, long.to_str().unwrap());
    assert!(
        err.contains("the URL is over 2 048 bytes, which IIS refuses"),
        "{err}"
    );
    assert!(ok(&["store", "show", "--store", s]).starts_with("snapshot 000001 (csv import)"));
    // An HTML 500 once (a restarting server) is waited out.
    base.set_faults(BTreeMap::from([(3, Fault::Html500)]));
    let out = ok_1c(s, &good, &[]);
    assert!(out.starts_with("snapshot 000002 (full 1C sync)"), "{out}");
}

#[test]
fn a_custom_http_service_and_file_exports() {
    let data = demo();
    let dir = tempfile::tempdir().unwrap();
    // File exports as a 1C user saves them: `;`, decimal commas, dd.mm.yyyy dates.
    let mut c = String::from("Код;Наименование;ИНН;КПП\n");
    let mut r = csv::Reader::from_path(data.path().join("onec_counterparties.csv")).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        c += &format!(
            "{};\"{}\";{};{}\n",
            &rec[0],
            &rec[1].replace('"', "\"\""),
            &rec[2],
            &rec[3]
        );
    }
    write(dir.path(), "контрагенты.csv", &c);
    let mut sales = String::from("Номер;Дата;Контрагент;Договор;Сумма;Количество;Объем;Проведен\n");
    let mut r = csv::Reader::from_path(data.path().join("onec_sales.csv")).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(&rec[1]).unwrap();
        sales += &format!(
            "{};{};{};{};{};{};{};{}\n",
            &rec[0],
            t.format("%d.%m.%Y %H:%M:%S"),
            &rec[2],
            &rec[3],
            rec[4].replace('.', ","),
            rec[5].replace('.', ","),
            rec[6].replace('.', ","),
            if &rec[7] == "true" { "Да" } else { "Нет" }
        );
    }
    write(dir.path(), "продажи.csv", &sales);
    let settings = write(
        dir.path(),
        "files.yaml",
        "files:\n  counterparties: { path: контрагенты.csv, columns: { id: Код, name: Наименование, inn: ИНН, kpp: КПП } }\n\
         \x20 sales:\n    path: продажи.csv\n    columns: { id: Номер, date: Дата, counterparty_id: Контрагент, contract: Договор, amount: Сумма, quantity: Количество, volume: Объем, posted: Проведен }\n",
    );
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let out = ok_1c(s, settings.to_str().unwrap(), &[]);
    assert!(out.contains("(full 1C sync)"), "{out}");
    for table in ["onec_counterparties", "onec_sales"] {
        assert_eq!(
            store_lines(store.path(), table),
            csv_lines(data.path(), table),
            "{table}"
        );
    }
    // A bad value names the file, line and column.
    write(
        dir.path(),
        "продажи.csv",
        &sales.replacen(";Да\n", ";Может быть\n", 1),
    );
    let err = fails_1c(s, settings.to_str().unwrap());
    assert!(
        err.contains("продажи.csv: line ")
            && err.contains("column `posted`: cannot read \"Может быть\""),
        "{err}"
    );
    // The HTTP service of the contract in docs/onec.md.
    let base = Emulator::start(data.path()).unwrap();
    let service = write(
        dir.path(),
        "http.yaml",
        &format!(
            "http: {{ url: \"{}/hs/svodka\", user: {USER}, password: {PASSWORD} }}\n",
            base.url
        ),
    );
    let other = tempfile::tempdir().unwrap();
    let o = other.path().to_str().unwrap();
    let out = ok_1c(o, service.to_str().unwrap(), &[]);
    assert!(out.contains("(full 1C sync)"), "{out}");
    for table in ["onec_counterparties", "onec_sales"] {
        assert_eq!(
            store_lines(other.path(), table),
            csv_lines(data.path(), table),
            "{table}"
        );
    }
    let err = fails(&[
        "sync",
        "--data",
        o,
        "--onec",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert!(err.contains("missing.yaml"), "{err}");
}
