//! amoCRM's CSV export of deals («Сделки» → «Экспорт»: `;`-separated, Russian headers,
//! `дд.мм.гггг чч:мм` dates, budgets with spaces) as Svodka's canonical `deals`, `users`,
//! `pipelines`, `stages` and `companies` — for a company that moved from amoCRM and wants
//! its history in the same reports. Loaded by Svodka at run time (`--plugin`).
//!
//! Settings (`--plugin-config`): `path` of the export (required), `timezone` (default
//! Europe/Moscow), and `columns` to rename any of the headers below.

use std::collections::HashMap;

use svodka_plugin_sdk::arrow::array::{RecordBatchIterator, RecordBatchReader};
use svodka_plugin_sdk::arrow::datatypes::SchemaRef;
use svodka_plugin_sdk::arrow::record_batch::RecordBatch;
use svodka_plugin_sdk::{
    Connector, DEFAULT_TIMEZONE, Request, Session, Tz, Value, builder, canonical, local_time,
    money_text, zone,
};

/// The export's headers, by what they hold.
const HEADERS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("title", "Название сделки"),
    ("amount", "Бюджет"),
    ("responsible", "Ответственный"),
    ("created", "Дата создания"),
    ("modified", "Дата изменения"),
    ("closed", "Дата закрытия"),
    ("stage", "Этап сделки"),
    ("pipeline", "Воронка"),
    ("company", "Компания"),
];

/// amoCRM's two final statuses, in every pipeline.
const WON: &str = "Успешно реализовано";
const LOST: &str = "Закрыто и не реализовано";

const TABLES: [&str; 5] = ["deals", "users", "pipelines", "stages", "companies"];

/// One deal of the export.
struct Deal {
    id: i64,
    title: String,
    amount: Option<i128>,
    responsible: String,
    created: i64,
    modified: i64,
    closed: Option<i64>,
    stage: String,
    pipeline: String,
    company: Option<String>,
}

/// The export read and checked: every line, with its number in errors.
fn read(request: &Request) -> Result<Vec<Deal>, String> {
    let settings = &request.settings;
    let path = settings["path"]
        .as_str()
        .ok_or("settings: `path` of the amoCRM export is required")?;
    let tz: Tz = zone(settings["timezone"].as_str().unwrap_or(DEFAULT_TIMEZONE))
        .map_err(|e| format!("settings: `timezone`: {e}"))?;
    let header_of = |key: &str| -> String {
        settings["columns"][key]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                HEADERS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_default()
            })
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let text = text.trim_start_matches('\u{feff}');
    let mut r = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| format!("{path}: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut at = HashMap::new();
    for (key, _) in HEADERS {
        let h = header_of(key);
        if let Some(i) = header.iter().position(|x| *x == h) {
            at.insert(*key, i);
        } else if !matches!(*key, "modified" | "closed" | "company" | "amount") {
            return Err(format!(
                "{path}: no column «{h}»; the export has: {}",
                header.join(", ")
            ));
        }
    }
    let mut deals = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| format!("{path}: line {line}: {e}"))?;
        let get = |key: &str| {
            at.get(key)
                .and_then(|i| rec.get(*i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let need = |key: &str| {
            get(key).ok_or_else(|| format!("{path}: line {line}: «{}» is empty", header_of(key)))
        };
        let when = |key: &str| -> Result<Option<i64>, String> {
            match get(key) {
                None => Ok(None),
                Some(s) => local_time(s, tz).map(Some).map_err(|_| {
                    format!(
                        "{path}: line {line}: «{}»: not a date: {s:?}",
                        header_of(key)
                    )
                }),
            }
        };
        let id = need("id")?
            .parse()
            .map_err(|_| format!("{path}: line {line}: ID is not a number"))?;
        let created = when("created")?
            .ok_or_else(|| format!("{path}: line {line}: «{}» is empty", header_of("created")))?;
        let closed = when("closed")?;
        let stage = need("stage")?.to_string();
        deals.push(Deal {
            id,
            title: get("title").unwrap_or_default().to_string(),
            amount: match get("amount") {
                None => None,
                Some(s) => {
                    Some(money_text(s).map_err(|e| {
                        format!("{path}: line {line}: «{}»: {e}", header_of("amount"))
                    })?)
                }
            },
            responsible: need("responsible")?.to_string(),
            modified: when("modified")?.or(closed).unwrap_or(created),
            closed: if stage == WON || stage == LOST {
                closed.or(Some(created))
            } else {
                None
            },
            created,
            stage,
            pipeline: need("pipeline")?.to_string(),
            company: get("company").map(str::to_string),
        });
    }
    Ok(deals)
}

/// Names numbered in order of first appearance (from 1): the names, and each one's number.
fn numbered<'a>(names: impl Iterator<Item = &'a str>) -> (Vec<String>, HashMap<String, i64>) {
    let mut out: Vec<String> = Vec::new();
    let mut ids = HashMap::new();
    for n in names {
        if !ids.contains_key(n) {
            out.push(n.to_string());
            ids.insert(n.to_string(), out.len() as i64);
        }
    }
    (out, ids)
}

fn semantic(stage: &str) -> &'static str {
    match stage {
        WON => "success",
        LOST => "failure",
        _ => "process",
    }
}

/// All five tables from the deals.
fn tables(deals: &[Deal]) -> Result<HashMap<&'static str, RecordBatch>, String> {
    let (users, user_ids) = numbered(deals.iter().map(|d| d.responsible.as_str()));
    let (pipelines, pipeline_ids) = numbered(deals.iter().map(|d| d.pipeline.as_str()));
    let (companies, company_ids) = numbered(deals.iter().filter_map(|d| d.company.as_deref()));
    let pipeline_of = |d: &Deal| pipeline_ids.get(&d.pipeline).copied().unwrap_or(0);
    // Stages per pipeline, in order of first appearance; the final ones last.
    let mut stages: Vec<(i64, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in deals {
        let key = (pipeline_of(d), d.stage.clone());
        if seen.insert(key.clone()) {
            stages.push(key);
        }
    }
    stages.sort_by_key(|(p, s)| (*p, semantic(s) != "process"));
    let mut codes: HashMap<(i64, String), String> = HashMap::new();
    let mut per_pipeline: HashMap<i64, usize> = HashMap::new();
    for (p, s) in &stages {
        let k = per_pipeline.entry(*p).or_default();
        *k += 1;
        codes.insert((*p, s.clone()), format!("P{p}:{k}"));
    }
    let stage_id = |p: i64, s: &str| codes.get(&(p, s.to_string())).cloned().unwrap_or_default();
    let mut first_deal: HashMap<&str, i64> = HashMap::new();
    for d in deals {
        if let Some(c) = d.company.as_deref() {
            let e = first_deal.entry(c).or_insert(d.created);
            *e = (*e).min(d.created);
        }
    }
    let mut out = HashMap::new();
    let mut users_out = builder("users")?;
    for (i, name) in users.iter().enumerate() {
        users_out.push_named(&[
            ("id", Value::Int(i as i64 + 1)),
            ("name", Value::Text(name)),
            ("active", Value::Bool(true)),
        ])?;
    }
    out.insert("users", users_out.finish());
    let mut pipelines_out = builder("pipelines")?;
    for (i, name) in pipelines.iter().enumerate() {
        let id = i as i64 + 1;
        pipelines_out.push_named(&[
            ("id", Value::Int(id)),
            ("name", Value::Text(name)),
            ("sort", Value::Int(id * 10)),
        ])?;
    }
    out.insert("pipelines", pipelines_out.finish());
    let mut stages_out = builder("stages")?;
    for (i, (p, s)) in stages.iter().enumerate() {
        stages_out.push_named(&[
            ("entity", Value::Text("deal")),
            ("pipeline_id", Value::Int(*p)),
            ("stage_id", Value::Text(&stage_id(*p, s))),
            ("name", Value::Text(s)),
            ("sort", Value::Int(i as i64 * 10 + 10)),
            ("semantic", Value::Text(semantic(s))),
        ])?;
    }
    out.insert("stages", stages_out.finish());
    let mut companies_out = builder("companies")?;
    for (i, title) in companies.iter().enumerate() {
        let first = first_deal.get(title.as_str()).copied();
        companies_out.push_named(&[
            ("id", Value::Int(i as i64 + 1)),
            ("title", Value::Text(title)),
            ("created_at", first.map_or(Value::Null, Value::Timestamp)),
        ])?;
    }
    out.insert("companies", companies_out.finish());
    let mut deals_out = builder("deals")?;
    for d in deals {
        let pipeline = pipeline_of(d);
        deals_out
            .push_named(&[
                ("id", Value::Int(d.id)),
                ("title", Value::Text(&d.title)),
                ("pipeline_id", Value::Int(pipeline)),
                ("stage_id", Value::Text(&stage_id(pipeline, &d.stage))),
                ("semantic", Value::Text(semantic(&d.stage))),
                ("amount", d.amount.map_or(Value::Null, Value::Money)),
                (
                    "currency",
                    d.amount.map_or(Value::Null, |_| Value::Text("RUB")),
                ),
                (
                    "assigned_id",
                    user_ids
                        .get(&d.responsible)
                        .map_or(Value::Null, |u| Value::Int(*u)),
                ),
                ("created_at", Value::Timestamp(d.created)),
                ("closed_at", d.closed.map_or(Value::Null, Value::Timestamp)),
                ("modified_at", Value::Timestamp(d.modified)),
                (
                    "company_id",
                    d.company
                        .as_ref()
                        .and_then(|c| company_ids.get(c))
                        .map_or(Value::Null, |c| Value::Int(*c)),
                ),
            ])
            .map_err(|e| format!("deal {}: {e}", d.id))?;
    }
    out.insert("deals", deals_out.finish());
    Ok(out)
}

/// The connector.
pub struct AmoCrm;

impl Connector for AmoCrm {
    fn name(&self) -> &str {
        "amocrm"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn tables(&self) -> Vec<(String, SchemaRef)> {
        TABLES
            .iter()
            .map(|t| (t.to_string(), canonical(t).expect("canonical tables")))
            .collect()
    }

    /// The export is read once a sync; every table is made from it.
    fn configure(&self, request: &Request) -> Result<Box<dyn Session>, String> {
        let deals = read(request)?;
        Ok(Box::new(Export {
            tables: tables(&deals)?,
        }))
    }

    /// amoCRM's pages: its deals are "leads" in its addresses.
    fn links(&self) -> Vec<(String, String)> {
        [
            ("deal", "{portal}/leads/detail/{id}"),
            ("company", "{portal}/companies/detail/{id}"),
            ("contact", "{portal}/contacts/detail/{id}"),
        ]
        .map(|(e, t)| (e.to_string(), t.to_string()))
        .to_vec()
    }
}

/// One sync: the export's tables.
pub struct Export {
    tables: HashMap<&'static str, RecordBatch>,
}

impl Session for Export {
    fn open(&self, table: &str) -> Result<Box<dyn RecordBatchReader + Send>, String> {
        let batch = self
            .tables
            .get(table)
            .ok_or_else(|| format!("no table `{table}`; this plugin has {}", TABLES.join(", ")))?;
        // In slices, as a stream would come from a bigger source.
        let slices: Vec<RecordBatch> = (0..batch.num_rows())
            .step_by(8192)
            .map(|at| batch.slice(at, 8192.min(batch.num_rows() - at)))
            .collect();
        Ok(Box::new(RecordBatchIterator::new(
            slices.into_iter().map(Ok),
            batch.schema(),
        )))
    }
}

svodka_plugin_sdk::export!(AmoCrm);

#[cfg(test)]
mod tests {
    use super::*;
    use svodka_plugin_sdk::arrow::array::{Array, AsArray};
    use svodka_plugin_sdk::arrow::datatypes::{Decimal128Type, Int64Type};
    use svodka_plugin_sdk::{arrow, serde_json};

    #[test]
    fn an_export_into_canonical_tables() {
        let dir = std::env::temp_dir().join(format!("amocrm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deals.csv");
        std::fs::write(&path, "\u{feff}ID;Название сделки;Бюджет;Ответственный;Дата создания;Дата закрытия;Этап сделки;Воронка;Компания\n\
            101;Поставка;1 500 000;Анна Петрова;01.10.2026 10:00;15.10.2026 12:30;Успешно реализовано;Продажи;ООО «Альфа»\n\
            102;Монтаж;250000,50;Борис Иванов;02.10.2026 11:00;;Переговоры;Продажи;\n\
            103;Сервис;;Анна Петрова;03.10.2026 09:15;20.10.2026 18:00;Закрыто и не реализовано;Сервис;ООО «Альфа»\n").unwrap();
        let request = Request {
            settings: serde_json::json!({"path": path.to_str().unwrap()}),
            since: None,
        };
        let t = tables(&read(&request).unwrap()).unwrap();
        let deals = &t["deals"];
        assert_eq!(deals.num_rows(), 3);
        let amount = deals
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        assert_eq!(
            (amount.value(0), amount.value(1)),
            (150_000_000, 25_000_050)
        );
        assert!(amount.is_null(2));
        let closed = deals.column_by_name("closed_at").unwrap();
        assert!(!closed.is_null(0) && closed.is_null(1) && !closed.is_null(2));
        // 15.10.2026 12:30 in Moscow is 09:30 UTC.
        assert_eq!(
            closed
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1_792_056_600_000_000
        );
        let assigned = deals
            .column_by_name("assigned_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(assigned.values(), &[1, 2, 1]);
        assert_eq!(t["users"].num_rows(), 2);
        assert_eq!(t["pipelines"].num_rows(), 2);
        assert_eq!(t["companies"].num_rows(), 1);
        let stages = &t["stages"];
        let sem = stages
            .column_by_name("semantic")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            (0..stages.num_rows())
                .map(|i| sem.value(i))
                .collect::<Vec<_>>(),
            ["process", "success", "failure"]
        );
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "ID;Название сделки;Ответственный;Дата создания;Этап сделки;Воронка\n7;x;Анна;вчера;Новая;Продажи\n").unwrap();
        let err = read(&Request {
            settings: serde_json::json!({"path": bad.to_str().unwrap()}),
            since: None,
        })
        .err()
        .unwrap();
        assert!(
            err.ends_with("line 2: «Дата создания»: not a date: \"вчера\""),
            "{err}"
        );
    }
}
