//! amoCRM's CSV export of deals («Сделки» → «Экспорт»: `;`-separated, Russian headers,
//! `дд.мм.гггг чч:мм` dates, budgets with spaces) as Svodka's canonical `deals`, `users`,
//! `pipelines`, `stages` and `companies` — for a company that moved from amoCRM and wants
//! its history in the same reports. Loaded by Svodka at run time (`--plugin`).
//!
//! Settings (`--plugin-config`): `path` of the export (required), `timezone` (default
//! Europe/Moscow), and `columns` to rename any of the headers below.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatchIterator,
    RecordBatchReader, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::TimeZone;
use svodka_plugin_sdk::{Connector, Request};

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

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema(table: &str) -> SchemaRef {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    let fields = match table {
        "users" => vec![
            f("id", DataType::Int64, false),
            f("name", DataType::Utf8, false),
            f("active", DataType::Boolean, false),
        ],
        "pipelines" => vec![
            f("id", DataType::Int64, false),
            f("name", DataType::Utf8, false),
            f("sort", DataType::Int64, false),
        ],
        "stages" => vec![
            f("entity", DataType::Utf8, false),
            f("pipeline_id", DataType::Int64, true),
            f("stage_id", DataType::Utf8, false),
            f("name", DataType::Utf8, false),
            f("sort", DataType::Int64, false),
            f("semantic", DataType::Utf8, false),
        ],
        "companies" => vec![
            f("id", DataType::Int64, false),
            f("title", DataType::Utf8, false),
            f("created_at", ts(), false),
        ],
        _ => vec![
            f("id", DataType::Int64, false),
            f("title", DataType::Utf8, false),
            f("pipeline_id", DataType::Int64, false),
            f("stage_id", DataType::Utf8, false),
            f("semantic", DataType::Utf8, false),
            f("amount", DataType::Decimal128(18, 2), true),
            f("currency", DataType::Utf8, true),
            f("assigned_id", DataType::Int64, false),
            f("created_at", ts(), false),
            f("closed_at", ts(), true),
            f("modified_at", ts(), false),
            f("company_id", DataType::Int64, true),
        ],
    };
    Arc::new(Schema::new(fields))
}

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

/// Kopecks of `1 500 000`, `1500000,50` or `1500000.50`.
fn money(s: &str) -> Option<i128> {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ',' || *c == '.' || *c == '-')
        .collect();
    let t = t.replace(',', ".");
    if t.is_empty() {
        return None;
    }
    let f: f64 = t.parse().ok()?;
    Some((f * 100.0).round() as i128)
}

fn time(s: &str, tz: chrono_tz::Tz) -> Option<i64> {
    let s = s.trim();
    ["%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%d.%m.%Y")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .and_then(|n| tz.from_local_datetime(&n).earliest())
        .map(|t| t.timestamp_micros())
}

/// The export read and checked: every line, with its number in errors.
fn read(request: &Request) -> Result<Vec<Deal>, String> {
    let settings = &request.settings;
    let path = settings["path"]
        .as_str()
        .ok_or("settings: `path` of the amoCRM export is required")?;
    let tz: chrono_tz::Tz = settings["timezone"]
        .as_str()
        .unwrap_or("Europe/Moscow")
        .parse()
        .map_err(|_| "settings: unknown `timezone`")?;
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
                Some(s) => time(s, tz).map(Some).ok_or_else(|| {
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
                Some(s) => Some(money(s).ok_or_else(|| {
                    format!(
                        "{path}: line {line}: «{}»: not an amount: {s:?}",
                        header_of("amount")
                    )
                })?),
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
    let batch = |table: &str, cols: Vec<ArrayRef>| {
        RecordBatch::try_new(schema(table), cols).map_err(|e| e.to_string())
    };
    let mut out = HashMap::new();
    let strings = |v: &mut dyn Iterator<Item = Option<String>>| {
        let mut b = StringBuilder::new();
        for s in v {
            b.append_option(s);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let ints = |v: &mut dyn Iterator<Item = Option<i64>>| {
        let mut b = Int64Builder::new();
        for s in v {
            b.append_option(s);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let times = |v: &mut dyn Iterator<Item = Option<i64>>| {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for s in v {
            b.append_option(s);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let mut active = BooleanBuilder::new();
    users.iter().for_each(|_| active.append_value(true));
    out.insert(
        "users",
        batch(
            "users",
            vec![
                ints(&mut (1..=users.len() as i64).map(Some)),
                strings(&mut users.iter().cloned().map(Some)),
                Arc::new(active.finish()),
            ],
        )?,
    );
    out.insert(
        "pipelines",
        batch(
            "pipelines",
            vec![
                ints(&mut (1..=pipelines.len() as i64).map(Some)),
                strings(&mut pipelines.iter().cloned().map(Some)),
                ints(&mut (1..=pipelines.len() as i64).map(|i| Some(i * 10))),
            ],
        )?,
    );
    out.insert(
        "stages",
        batch(
            "stages",
            vec![
                strings(&mut stages.iter().map(|_| Some("deal".to_string()))),
                ints(&mut stages.iter().map(|(p, _)| Some(*p))),
                strings(&mut stages.iter().map(|(p, s)| Some(stage_id(*p, s)))),
                strings(&mut stages.iter().map(|(_, s)| Some(s.clone()))),
                ints(
                    &mut stages
                        .iter()
                        .enumerate()
                        .map(|(i, _)| Some(i as i64 * 10 + 10)),
                ),
                strings(&mut stages.iter().map(|(_, s)| Some(semantic(s).to_string()))),
            ],
        )?,
    );
    out.insert(
        "companies",
        batch(
            "companies",
            vec![
                ints(&mut (1..=companies.len() as i64).map(Some)),
                strings(&mut companies.iter().cloned().map(Some)),
                times(
                    &mut companies
                        .iter()
                        .map(|c| first_deal.get(c.as_str()).copied()),
                ),
            ],
        )?,
    );
    let mut amount = Decimal128Builder::new()
        .with_precision_and_scale(18, 2)
        .map_err(|e| e.to_string())?;
    for d in deals {
        amount.append_option(d.amount);
    }
    out.insert(
        "deals",
        batch(
            "deals",
            vec![
                ints(&mut deals.iter().map(|d| Some(d.id))),
                strings(&mut deals.iter().map(|d| Some(d.title.clone()))),
                ints(&mut deals.iter().map(|d| Some(pipeline_of(d)))),
                strings(
                    &mut deals
                        .iter()
                        .map(|d| Some(stage_id(pipeline_of(d), &d.stage))),
                ),
                strings(&mut deals.iter().map(|d| Some(semantic(&d.stage).to_string()))),
                Arc::new(amount.finish()),
                strings(&mut deals.iter().map(|d| d.amount.map(|_| "RUB".to_string()))),
                ints(&mut deals.iter().map(|d| user_ids.get(&d.responsible).copied())),
                times(&mut deals.iter().map(|d| Some(d.created))),
                times(&mut deals.iter().map(|d| d.closed)),
                times(&mut deals.iter().map(|d| Some(d.modified))),
                ints(
                    &mut deals
                        .iter()
                        .map(|d| d.company.as_ref().and_then(|c| company_ids.get(c).copied())),
                ),
            ],
        )?,
    );
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
        TABLES.iter().map(|t| (t.to_string(), schema(t))).collect()
    }

    fn open(
        &self,
        table: &str,
        request: &Request,
    ) -> Result<Box<dyn RecordBatchReader + Send>, String> {
        if !TABLES.contains(&table) {
            return Err(format!(
                "no table `{table}`; this plugin has {}",
                TABLES.join(", ")
            ));
        }
        let deals = read(request)?;
        let mut all = tables(&deals)?;
        let batch = all.remove(table).expect("every table is built");
        // In slices, as a stream would come from a bigger source.
        let slices: Vec<RecordBatch> = (0..batch.num_rows())
            .step_by(8192)
            .map(|at| batch.slice(at, 8192.min(batch.num_rows() - at)))
            .collect();
        Ok(Box::new(RecordBatchIterator::new(
            slices.into_iter().map(Ok),
            schema(table),
        )))
    }
}

svodka_plugin_sdk::export!(AmoCrm);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Int64Type};

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
