use std::path::Path;

use super::*;

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// No `dataset.yaml` is "no description"; a place that cannot be looked into is an error
/// naming the file, never "no description".
#[test]
fn an_absent_description_is_none_an_unreadable_place_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(DatasetInfo::read(dir.path()).unwrap(), None);
    let not_a_folder = dir.path().join("data");
    std::fs::write(&not_a_folder, "").unwrap();
    let err = DatasetInfo::read(&not_a_folder).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}/dataset.yaml: ", not_a_folder.display())),
        "{err}"
    );
}

/// A broken dataset.yaml is a YAML error at its line; a zone that is none is refused
/// when read, naming the key (not later, as if the run's own `--tz` were wrong).
#[test]
fn a_broken_dataset_file_is_named_with_its_line_or_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), DATASET_FILE, "name: demo\ntimezone: [\n");
    let e = DatasetInfo::read(dir.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Yaml { line: 2, .. }), "{e:?}");
    write(
        dir.path(),
        DATASET_FILE,
        "name: demo\ntimezone: Europe/Moskow\nsnapshot_date: 2026-10-31\n",
    );
    let e = DatasetInfo::read(dir.path()).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "dataset.yaml: timezone: unknown time zone `Europe/Moskow` (an IANA name, e.g. Europe/Moscow)"
        ),
        "{e}"
    );
    write(
        dir.path(),
        DATASET_FILE,
        "name: demo\ntimezone: Asia/Yekaterinburg\nsnapshot_date: 2026-10-31\n",
    );
    let info = DatasetInfo::read(dir.path()).unwrap().unwrap();
    assert_eq!(info.timezone, "Asia/Yekaterinburg");
    info.write(dir.path()).unwrap();
    assert_eq!(DatasetInfo::read(dir.path()).unwrap(), Some(info));
}

/// `client.yaml` with every section reads into plain data; each wrong value is refused
/// naming the file and the key.
#[test]
fn a_client_file_reads_its_sections_and_refuses_wrong_values() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "a".repeat(64);
    write(
        dir.path(),
        CLIENT_FILE,
        &format!(
            "name: ООО Ромашка\ntimezone: Asia/Novosibirsk\nlocale: en\ndata: {{ folder: store }}\n\
             tokens: [{hash}]\nsettings: {{ deal_forgotten_days: 21, forgotten: {{ lead_forgotten_days: 3 }} }}\n\
             bitrix24:\n  webhook: https://x.bitrix24.ru/rest/1/s/\n  sweep_hours: 6\n\
             onec:\n  http: {{ url: http://1c/base/hs/svodka, user: svodka, password_env: ONEC_PASSWORD }}\n"
        ),
    );
    let c = ClientConfig::read(dir.path()).unwrap();
    assert_eq!(c.name, "ООО Ромашка");
    assert_eq!(c.zone(), Some(chrono_tz::Asia::Novosibirsk));
    assert_eq!(c.data.folder, Path::new("store"));
    assert_eq!(c.retention_months, 24);
    assert_eq!(c.settings.len(), 2);
    let b = c.bitrix24.as_ref().unwrap();
    assert_eq!(b.sweep_every(), std::time::Duration::from_secs(6 * 3600));
    let onec = c.onec.as_ref().unwrap();
    assert_eq!(onec.timezone, "Europe/Moscow");
    assert_eq!(onec.overlap_days, 45);
    assert_eq!(
        onec.http.as_ref().unwrap().password_env.as_deref(),
        Some("ONEC_PASSWORD")
    );

    for (text, expected) in [
        (
            "name: x\ndata: { folder: d }\ntokens: [abc]\n",
            "client.yaml: tokens: each is the SHA-256",
        ),
        (
            "name: x\ndata: { folder: d }\ntimezone: Mars/Base\n",
            "client.yaml: timezone: unknown time zone `Mars/Base`",
        ),
        (
            "name: x\ndata: { folder: d }\nlocale: de\n",
            "client.yaml: locale: expected ru or en",
        ),
        (
            "name: x\ndata: { folder: d }\nonec: { timezone: Nowhere }\n",
            "client.yaml: onec.timezone: unknown time zone",
        ),
        (
            "name: x\ndata: { folder: d }\nbitrix24: { webhok: u }\n",
            "client.yaml:3: bitrix24: unknown field `webhok`",
        ),
    ] {
        write(dir.path(), CLIENT_FILE, text);
        let e = ClientConfig::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
    }
}

/// A data set's links name entities with pages and say where the id goes.
#[test]
fn links_name_entities_with_pages_and_where_the_id_goes() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name: demo\ntimezone: Europe/Moscow\nsnapshot_date: 2026-10-31\n";
    write(
        dir.path(),
        DATASET_FILE,
        &format!("{head}links:\n  deal: \"{{portal}}/leads/detail/{{id}}\"\n"),
    );
    let info = DatasetInfo::read(dir.path()).unwrap().unwrap();
    assert_eq!(info.links["deal"], "{portal}/leads/detail/{id}");
    for (links, expected) in [
        (
            "  invoice: \"{portal}/i/{id}\"\n",
            "dataset.yaml: links.invoice: not an entity with pages; links name deal, lead, company, contact",
        ),
        (
            "  deal: \"{portal}/deals/\"\n",
            "dataset.yaml: links.deal: \"{portal}/deals/\" has no `{id}`",
        ),
        (
            "  deal: \"javascript:alert({id})\"\n",
            "dataset.yaml: links.deal: \"javascript:alert({id})\" is not a web address",
        ),
    ] {
        write(dir.path(), DATASET_FILE, &format!("{head}links:\n{links}"));
        let e = DatasetInfo::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
    assert_eq!(
        bitrix24::links()["company"],
        "{portal}/crm/company/details/{id}/"
    );
}
