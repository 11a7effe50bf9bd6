//! A full 1C sync of the default demo data (20 000 deals' worth of 1C) from the emulated
//! OData publication, and the parse of a large (10+ MB) `$metadata`.
//!
//! `cargo bench -p svodka-emulator-onec`.

use std::time::Instant;

use svodka_emulator_onec::{Base, Emulator, PASSWORD, USER};
use svodka_onec::config::OnecConfig;
use svodka_onec::metadata::Metadata;
use svodka_onec::odata::OData;
use svodka_onec::sync::{SyncOptions, sync};
use svodka_store::Store;

fn main() {
    let data = tempfile::tempdir().unwrap();
    svodka_demo::generate(
        &svodka_demo::DemoConfig {
            deals: 20_000,
            seed: 42,
        },
        data.path(),
        &mut |_, _| {},
    )
    .unwrap();
    let portal = Emulator::start(data.path()).unwrap();
    let config: OnecConfig = serde_yaml_config(&portal.url);
    let store = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut source = OData::connect(&config, Some(store.path()), false).unwrap();
    let options = SyncOptions {
        source: "odata".into(),
        full: false,
        overlap_days: 45,
        keep: 3,
        name: "bench".into(),
        timezone: "Europe/Moscow".into(),
        clock: Default::default(),
    };
    let o = sync(
        &mut source,
        &Store::new(store.path()),
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let rows = o.counterparties + o.sales;
    println!(
        "full 1C sync: {} counterparties + {} sales = {rows} rows in {secs:.2} s = {:.0} rows/s, {} requests (page 500)",
        o.counterparties,
        o.sales,
        rows as f64 / secs,
        o.requests
    );
    let started = Instant::now();
    let o = sync(
        &mut source,
        &Store::new(store.path()),
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    println!(
        "incremental 1C sync (45-day window): {} sales read in {:.2} s, {} requests",
        o.read,
        started.elapsed().as_secs_f64(),
        o.requests
    );

    let mut big = Base::load(data.path(), "Europe/Moscow").unwrap();
    big.filler_types = 12_000;
    let xml = big.metadata();
    let started = Instant::now();
    let m = Metadata::parse(xml.as_bytes()).unwrap();
    println!(
        "$metadata of {:.1} MB ({} entity sets) parsed in {:.0} ms",
        xml.len() as f64 / 1e6,
        m.sets.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn serde_yaml_config(url: &str) -> OnecConfig {
    let text = format!(
        "odata: {{ url: \"{url}\", user: {USER}, password: {PASSWORD} }}\n\
         counterparties: {{ set: Catalog_Контрагенты, inn: ИНН, kpp: КПП }}\n\
         sales:\n  set: Document_РеализацияТоваровУслуг\n  counterparty: Контрагент_Key\n  amount: СуммаДокумента\n\
         \x20 quantity: Товары/Количество\n  volume: Товары/Объем\n\
         \x20 contract: {{ key: ДоговорКонтрагента_Key, set: Catalog_ДоговорыКонтрагентов }}\n"
    );
    serde_yaml::from_str(&text).unwrap()
}
