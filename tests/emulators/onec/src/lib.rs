//! A 1C:Enterprise publication for tests and benchmarks: the standard OData interface (v3)
//! on a loopback port, serving a canonical CSV folder's 1C tables as a custom
//! configuration would (`Catalog_Контрагенты`, `Catalog_ДоговорыКонтрагентов`,
//! `Document_РеализацияТоваровУслуг` with its `Товары` table part; naive local datetimes,
//! JSON numbers for Double, strings for Int64, zero GUIDs), with `$metadata`, `$select`,
//! `$filter`, `$orderby=Ref_Key`, `$top`/`$skip`, `$count`, HTTP Basic, and the error
//! replies 1C and IIS give (odata.error codes, HTML pages, 404 for long URLs).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::TimeZone;
use serde_json::{Map, Value, json};

pub const USER: &str = "Администратор";
pub const PASSWORD: &str = "пароль";
const ZERO: &str = "00000000-0000-0000-0000-000000000000";
const CATALOG: &str = "Catalog_Контрагенты";
const CONTRACTS: &str = "Catalog_ДоговорыКонтрагентов";
const SALES: &str = "Document_РеализацияТоваровУслуг";

/// What the publication answers instead, by request number.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// An HTML 500 page (a restarting server).
    Html500,
    /// 500 with `odata.error` code -1.
    Business500,
    /// The answer, late.
    Slow(Duration),
}

/// The infobase's records.
pub struct Base {
    pub tz: chrono_tz::Tz,
    /// Ref_Key → record, per set.
    pub sets: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Entity types added to `$metadata` beyond the ones served (a real configuration
    /// publishes thousands).
    pub filler_types: usize,
}

struct State {
    base: Base,
    faults: BTreeMap<u64, Fault>,
    requests: u64,
}

/// A running publication.
pub struct Emulator {
    /// `http://127.0.0.1:port/base` (the infobase URL).
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// A GUID made of text, stable across runs.
pub fn guid_of(text: &str) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in text.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn read_csv(path: &Path) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        out.push(
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect(),
        );
    }
    Ok(out)
}

/// Splits an amount in thousandths into table-part lines (as decimal JSON numbers).
fn split(total: &str, lines: usize) -> Vec<Value> {
    let milli = (total.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as i64;
    let mut parts = Vec::new();
    let mut left = milli;
    for k in 0..lines {
        let part = if k + 1 == lines { left } else { milli * 4 / 10 };
        left -= part;
        let text = format!("{}.{:03}", part / 1000, (part % 1000).abs());
        parts.push(serde_json::from_str::<Value>(&text).unwrap_or(json!(0)));
    }
    parts
}

impl Base {
    /// The 1C tables of a canonical CSV folder, as the infobase holds them.
    pub fn load(dir: &Path, timezone: &str) -> Result<Base, String> {
        let tz: chrono_tz::Tz = timezone
            .parse()
            .map_err(|_| format!("unknown zone {timezone}"))?;
        let mut sets: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
        let counterparties = read_csv(&dir.join("onec_counterparties.csv"))?;
        let catalog = sets.entry(CATALOG.into()).or_default();
        for (n, c) in counterparties.iter().enumerate() {
            let rec = json!({
                "Ref_Key": c["id"], "DataVersion": "AAAAAQAAAAA=", "DeletionMark": false,
                "Parent_Key": guid_of("Покупатели"), "IsFolder": false,
                "Code": format!("00-{:07}", n + 1), "Description": c["name"],
                "НаименованиеПолное": c["name"], "ЮридическоеФизическоеЛицо": "ЮридическоеЛицо",
                "ИНН": c["inn"], "КПП": c["kpp"], "ГоловнойКонтрагент_Key": ZERO,
                "ОбособленноеПодразделение": false, "Predefined": false, "PredefinedDataName": "",
            });
            catalog.insert(c["id"].clone(), rec.as_object().cloned().expect("object"));
        }
        // Folders and a counterparty marked for deletion: none is a counterparty.
        for (name, folder, deleted) in [
            ("Покупатели", true, false),
            ("Поставщики", true, false),
            ("Удалённый контрагент", false, true),
        ] {
            let key = guid_of(name);
            let rec = json!({
                "Ref_Key": key, "DataVersion": "AAAAAQAAAAA=", "DeletionMark": deleted,
                "Parent_Key": ZERO, "IsFolder": folder, "Code": "", "Description": name,
                "НаименованиеПолное": name, "ЮридическоеФизическоеЛицо": "", "ИНН": "", "КПП": "",
                "ГоловнойКонтрагент_Key": ZERO, "ОбособленноеПодразделение": false,
                "Predefined": false, "PredefinedDataName": "",
            });
            catalog.insert(key, rec.as_object().cloned().expect("object"));
        }
        let sales = read_csv(&dir.join("onec_sales.csv"))?;
        let mut contracts = BTreeMap::new();
        let mut docs = BTreeMap::new();
        for (n, s) in sales.iter().enumerate() {
            let contract_key = match s.get("contract").filter(|c| !c.is_empty()) {
                Some(c) => {
                    let key = guid_of(c);
                    contracts.entry(key.clone()).or_insert_with(|| {
                        json!({"Ref_Key": key, "DataVersion": "AAAAAQAAAAA=", "DeletionMark": false,
                               "Owner_Key": s["counterparty_id"], "Description": c, "ВидДоговора": "СПокупателем"})
                        .as_object().cloned().expect("object")
                    });
                    key
                }
                None => ZERO.to_string(),
            };
            let date = chrono::DateTime::parse_from_rfc3339(&s["date"])
                .map_err(|e| format!("onec_sales.csv: {e}"))?
                .with_timezone(&tz)
                .naive_local()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let lines = 1 + n % 3;
            let q = split(
                s.get("quantity")
                    .map(String::as_str)
                    .filter(|v| !v.is_empty())
                    .unwrap_or("0"),
                lines,
            );
            let v = split(
                s.get("volume")
                    .map(String::as_str)
                    .filter(|v| !v.is_empty())
                    .unwrap_or("0"),
                lines,
            );
            let rows: Vec<Value> = (0..lines)
                .map(|k| json!({"Ref_Key": guid_of(&s["id"]), "LineNumber": (k + 1).to_string(),
                                "Номенклатура_Key": guid_of("Перевозка"), "Количество": q[k], "Объем": v[k],
                                "Цена": 0, "Сумма": 0, "СтавкаНДС": "НДС20"}))
                .collect();
            let key = guid_of(&s["id"]);
            let amount: Value = serde_json::from_str(&s["amount"]).unwrap_or(json!(0));
            let rec = json!({
                "Ref_Key": key, "DataVersion": "AAAAAgAAAAA=", "DeletionMark": false,
                "Number": s["id"], "Date": date, "Posted": s["posted"] == "true",
                "Организация_Key": guid_of("Сводка Логистик"), "Контрагент_Key": s["counterparty_id"],
                "ДоговорКонтрагента_Key": contract_key, "ВалютаДокумента_Key": guid_of("RUB"),
                "СуммаДокумента": amount, "СуммаВключаетНДС": true, "ДоверенностьДата": "0001-01-01T00:00:00",
                "Комментарий": "", "Товары": rows,
            });
            docs.insert(key, rec.as_object().cloned().expect("object"));
        }
        // Documents marked for deletion: not sales.
        for k in 0..3 {
            let number = format!("РТУ-У{k:07}");
            let key = guid_of(&number);
            let first = sales
                .first()
                .map(|s| s["counterparty_id"].clone())
                .unwrap_or_default();
            let rec = json!({"Ref_Key": key, "DataVersion": "AAAAAQAAAAA=", "DeletionMark": true, "Number": number,
                "Date": "2025-06-01T12:00:00", "Posted": false, "Организация_Key": guid_of("Сводка Логистик"),
                "Контрагент_Key": first, "ДоговорКонтрагента_Key": ZERO, "ВалютаДокумента_Key": guid_of("RUB"),
                "СуммаДокумента": 1000, "СуммаВключаетНДС": true, "ДоверенностьДата": "0001-01-01T00:00:00",
                "Комментарий": "Ошибочный", "Товары": []});
            docs.insert(key, rec.as_object().cloned().expect("object"));
        }
        sets.insert(CONTRACTS.into(), contracts);
        sets.insert(SALES.into(), docs);
        Ok(Base {
            tz,
            sets,
            filler_types: 0,
        })
    }

    /// Changes a sale document (by number): a new version.
    pub fn edit_sale(&mut self, number: &str, field: &str, value: Value) {
        let doc = self
            .sets
            .get_mut(SALES)
            .and_then(|d| d.values_mut().find(|r| r["Number"] == number))
            .unwrap_or_else(|| panic!("no document {number}"));
        doc.insert(field.to_string(), value);
        let v = doc["DataVersion"].as_str().unwrap_or_default().to_string();
        doc.insert("DataVersion".into(), json!(format!("{v}+")));
    }

    /// `$metadata`: the served sets as a real configuration describes them, and filler.
    pub fn metadata(&self) -> String {
        let mut x = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">
<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" m:DataServiceVersion="3.0" m:MaxDataServiceVersion="3.0">
<Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">
"#,
        );
        let prop = |name: &str, ty: &str| {
            format!("<Property Name=\"{name}\" Type=\"{ty}\" Nullable=\"true\"/>")
        };
        let entity = |name: &str, props: &[(&str, &str)]| {
            let mut s = format!(
                "<EntityType Name=\"{name}\" OpenType=\"true\"><Key><PropertyRef Name=\"Ref_Key\"/></Key><Property Name=\"Ref_Key\" Type=\"Edm.Guid\" Nullable=\"false\"/>"
            );
            for (n, t) in props {
                s += &prop(n, t);
            }
            s + "</EntityType>\n"
        };
        x += &entity(
            CATALOG,
            &[
                ("DataVersion", "Edm.String"),
                ("DeletionMark", "Edm.Boolean"),
                ("Parent_Key", "Edm.Guid"),
                ("IsFolder", "Edm.Boolean"),
                ("Code", "Edm.String"),
                ("Description", "Edm.String"),
                ("НаименованиеПолное", "Edm.String"),
                ("ЮридическоеФизическоеЛицо", "Edm.String"),
                ("ИНН", "Edm.String"),
                ("КПП", "Edm.String"),
                ("ГоловнойКонтрагент_Key", "Edm.Guid"),
                ("ОбособленноеПодразделение", "Edm.Boolean"),
                ("Predefined", "Edm.Boolean"),
                ("PredefinedDataName", "Edm.String"),
            ],
        );
        x += &entity(
            CONTRACTS,
            &[
                ("DataVersion", "Edm.String"),
                ("DeletionMark", "Edm.Boolean"),
                ("Owner_Key", "Edm.Guid"),
                ("Description", "Edm.String"),
                ("ВидДоговора", "Edm.String"),
            ],
        );
        x += &entity(
            SALES,
            &[
                ("DataVersion", "Edm.String"),
                ("DeletionMark", "Edm.Boolean"),
                ("Number", "Edm.String"),
                ("Date", "Edm.DateTime"),
                ("Posted", "Edm.Boolean"),
                ("Организация_Key", "Edm.Guid"),
                ("Контрагент_Key", "Edm.Guid"),
                ("ДоговорКонтрагента_Key", "Edm.Guid"),
                ("ВалютаДокумента_Key", "Edm.Guid"),
                ("СуммаДокумента", "Edm.Double"),
                ("СуммаВключаетНДС", "Edm.Boolean"),
                ("ДоверенностьДата", "Edm.DateTime"),
                ("Комментарий", "Edm.String"),
                (
                    "Товары",
                    "Collection(StandardODATA.Document_РеализацияТоваровУслуг_Товары_RowType)",
                ),
            ],
        );
        x += "<ComplexType Name=\"Document_РеализацияТоваровУслуг_Товары_RowType\">";
        for (n, t) in [
            ("Ref_Key", "Edm.Guid"),
            ("LineNumber", "Edm.Int64"),
            ("Номенклатура_Key", "Edm.Guid"),
            ("Количество", "Edm.Double"),
            ("Объем", "Edm.Double"),
            ("Цена", "Edm.Double"),
            ("Сумма", "Edm.Double"),
            ("СтавкаНДС", "Edm.String"),
        ] {
            x += &prop(n, t);
        }
        x += "</ComplexType>\n";
        for k in 0..self.filler_types {
            x += &entity(
                &format!("Catalog_Справочник{k}"),
                &[
                    ("DataVersion", "Edm.String"),
                    ("DeletionMark", "Edm.Boolean"),
                    ("Code", "Edm.String"),
                    ("Description", "Edm.String"),
                    ("Реквизит1", "Edm.String"),
                    ("Реквизит2", "Edm.Double"),
                    ("Реквизит3_Key", "Edm.Guid"),
                    ("Реквизит4", "Edm.DateTime"),
                    ("Комментарий", "Edm.String"),
                ],
            );
        }
        x += "<EntityContainer Name=\"EnterpriseV8\" m:IsDefaultEntityContainer=\"true\">\n";
        let mut names: Vec<String> = vec![CATALOG.into(), CONTRACTS.into(), SALES.into()];
        names.extend((0..self.filler_types).map(|k| format!("Catalog_Справочник{k}")));
        for n in names {
            x += &format!("<EntitySet Name=\"{n}\" EntityType=\"StandardODATA.{n}\"/>\n");
        }
        x += "<FunctionImport Name=\"Turnovers\" IsBindable=\"true\" IsSideEffecting=\"false\"/>\n</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>\n";
        x
    }
}

// ---- $filter ----------------------------------------------------------------------

/// A comparison of a field with a literal.
struct Comparison {
    field: String,
    op: String,
    value: Value,
}

/// `A eq false and Date ge datetime'…'`: conjunctions of comparisons (what a connector
/// asks for); anything else is a parse error, as 1C gives one for what it cannot read.
fn parse_filter(text: &str) -> Result<Vec<Comparison>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    loop {
        let (field, tail) = rest.split_once(' ').ok_or("expected a field")?;
        let (op, tail) = tail
            .trim_start()
            .split_once(' ')
            .ok_or("expected an operator")?;
        if !["eq", "ne", "gt", "ge", "lt", "le"].contains(&op) {
            return Err(format!("unknown operator {op}"));
        }
        let tail = tail.trim_start();
        let (literal, after) = if let Some(t) = tail
            .strip_prefix("datetime'")
            .or_else(|| tail.strip_prefix("guid'"))
        {
            let end = t.find('\'').ok_or("an unterminated literal")?;
            (json!(t[..end].to_string()), &t[end + 1..])
        } else if let Some(t) = tail.strip_prefix('\'') {
            let mut s = String::new();
            let mut chars = t.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, c)| *c) == Some('\'') {
                        chars.next();
                        s.push('\'');
                    } else {
                        end = Some(i);
                        break;
                    }
                } else {
                    s.push(c);
                }
            }
            let end = end.ok_or("an unterminated string")?;
            (json!(s), &t[end + 1..])
        } else {
            let (word, after) = tail.split_once(' ').unwrap_or((tail, ""));
            let v = match word {
                "true" => json!(true),
                "false" => json!(false),
                w => serde_json::from_str::<Value>(w).map_err(|_| format!("cannot read {w}"))?,
            };
            (v, after)
        };
        out.push(Comparison {
            field: field.to_string(),
            op: op.to_string(),
            value: literal,
        });
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(out);
        }
        rest = after
            .strip_prefix("and ")
            .ok_or_else(|| format!("cannot read `{after}`"))?;
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        _ => None,
    }
}

fn matches(rec: &Map<String, Value>, filter: &[Comparison]) -> bool {
    filter.iter().all(|c| {
        let o = compare(rec.get(&c.field).unwrap_or(&Value::Null), &c.value);
        use std::cmp::Ordering::*;
        match c.op.as_str() {
            "eq" => o == Some(Equal),
            "ne" => o != Some(Equal),
            "gt" => o == Some(Greater),
            "ge" => matches!(o, Some(Greater | Equal)),
            "lt" => o == Some(Less),
            _ => matches!(o, Some(Less | Equal)),
        }
    })
}

// ---- the server -----------------------------------------------------------------------

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}});
    (
        status,
        [("content-type", "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn html(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    );
    (status, [("content-type", "text/html")], body).into_response()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = format!("{USER}:{PASSWORD}").into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    ABC[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        format!("Basic {out}")
    };
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn answer(base: &Base, path: &str, query: &str) -> Response {
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let path = decode(path);
    if path.is_empty() {
        let sets: Vec<Value> = base
            .sets
            .keys()
            .map(|k| json!({"name": k, "url": k}))
            .collect();
        return Json(json!({"odata.metadata": "$metadata", "value": sets}));
    }
    if path == "$metadata" {
        return (
            StatusCode::OK,
            [("content-type", "application/xml")],
            base.metadata(),
        )
            .into_response();
    }
    let (set, count) = match path.strip_suffix("/$count") {
        Some(s) => (s.to_string(), true),
        None => (path.clone(), false),
    };
    let Some(records) = base.sets.get(&set) else {
        return odata_error(
            StatusCode::NOT_FOUND,
            "8",
            &format!("Не найден тип \"{set}\""),
        );
    };
    let filter = match params.get("$filter").map(|f| parse_filter(f)) {
        None => vec![],
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            return odata_error(
                StatusCode::BAD_REQUEST,
                "14",
                &format!("Ошибка разбора параметра запроса $filter: {e}"),
            );
        }
    };
    let sample = records.values().next();
    for c in &filter {
        if sample.is_some_and(|s| !s.contains_key(&c.field)) {
            return odata_error(
                StatusCode::BAD_REQUEST,
                "14",
                &format!(
                    "Ошибка разбора параметра запроса $filter: неизвестное свойство {}",
                    c.field
                ),
            );
        }
    }
    let matched: Vec<&Map<String, Value>> =
        records.values().filter(|r| matches(r, &filter)).collect();
    if count {
        return (
            StatusCode::OK,
            [("content-type", "text/plain;charset=utf-8")],
            matched.len().to_string(),
        )
            .into_response();
    }
    if params.get("$format").map(String::as_str) != Some("json") {
        return (
            StatusCode::OK,
            [("content-type", "application/atom+xml")],
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"/>",
        )
            .into_response();
    }
    if let Some(order) = params.get("$orderby")
        && !order.trim().eq_ignore_ascii_case("Ref_Key asc")
        && !order.trim().eq_ignore_ascii_case("Ref_Key")
    {
        return odata_error(
            StatusCode::BAD_REQUEST,
            "14",
            &format!("Ошибка разбора параметра запроса $orderby: {order}"),
        );
    }
    let top: usize = params
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(usize::MAX);
    let skip: usize = params
        .get("$skip")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let select: Option<Vec<String>> = params.get("$select").map(|s| {
        s.split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect()
    });
    if let (Some(select), Some(s)) = (&select, sample) {
        for f in select {
            let head = f.split('/').next().unwrap_or_default();
            let ok = s.contains_key(head)
                && match f.split_once('/') {
                    Some((part, inner)) => {
                        s[part]
                            .as_array()
                            .is_some_and(|rows| rows.is_empty() || rows[0].get(inner).is_some())
                            || records.values().any(|r| {
                                r[part]
                                    .as_array()
                                    .and_then(|a| a.first())
                                    .is_some_and(|row| row.get(inner).is_some())
                            })
                    }
                    None => true,
                };
            if !ok {
                return odata_error(
                    StatusCode::BAD_REQUEST,
                    "6",
                    &format!("Неправильный URL ресурса: не найдено свойство {f}"),
                );
            }
        }
    }
    let value: Vec<Value> = matched
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|r| match &select {
            None => Value::Object(r.clone()),
            Some(fields) => {
                let mut m = Map::new();
                for f in fields {
                    match f.split_once('/') {
                        None => {
                            if let Some(v) = r.get(f) {
                                m.insert(f.clone(), v.clone());
                            }
                        }
                        Some((part, inner)) => {
                            let rows = r[part].as_array().cloned().unwrap_or_default();
                            let existing = m.entry(part.to_string()).or_insert_with(|| {
                                Value::Array(
                                    rows.iter()
                                        .map(|row| json!({"LineNumber": row["LineNumber"]}))
                                        .collect(),
                                )
                            });
                            if let Value::Array(out) = existing {
                                for (o, row) in out.iter_mut().zip(rows.iter()) {
                                    o[inner] = row[inner].clone();
                                }
                            }
                        }
                    }
                }
                Value::Object(m)
            }
        })
        .collect();
    Json(json!({"odata.metadata": format!("$metadata#{set}"), "value": value}))
}

/// The HTTP service of the contract in `docs/onec.md`: `counterparties`, and `sales`
/// from a date, 100 a page.
fn service(base: &Base, what: &str, query: &str) -> Response {
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    match what {
        "counterparties" => {
            let items: Vec<Value> = base.sets[CATALOG]
                .values()
                .filter(|r| r["IsFolder"] == false && r["DeletionMark"] == false)
                .map(|r| json!({"id": r["Ref_Key"], "name": r["Description"], "inn": r["ИНН"], "kpp": r["КПП"]}))
                .collect();
            Json(json!({ "items": items }))
        }
        "sales" => {
            let page: usize = params
                .get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1);
            let from = params.get("from").cloned().unwrap_or_default();
            let contracts = &base.sets[CONTRACTS];
            let docs: Vec<&Map<String, Value>> = base.sets[SALES]
                .values()
                .filter(|r| {
                    r["DeletionMark"] == false
                        && r["Date"].as_str().unwrap_or_default() >= from.as_str()
                })
                .collect();
            let sum = |r: &Map<String, Value>, f: &str| -> f64 {
                let s: f64 = r["Товары"]
                    .as_array()
                    .map(|rows| rows.iter().filter_map(|x| x[f].as_f64()).sum())
                    .unwrap_or(0.0);
                (s * 1000.0).round() / 1000.0
            };
            let items: Vec<Value> = docs
                .iter()
                .skip((page - 1) * 100)
                .take(100)
                .map(|r| json!({
                    "id": r["Number"], "date": r["Date"], "counterparty_id": r["Контрагент_Key"],
                    "contract": r["ДоговорКонтрагента_Key"].as_str().and_then(|k| contracts.get(k)).map(|c| c["Description"].clone()),
                    "amount": r["СуммаДокумента"], "quantity": sum(r, "Количество"), "volume": sum(r, "Объем"),
                    "posted": r["Posted"], "version": r["DataVersion"],
                }))
                .collect();
            let next = (page * 100 < docs.len()).then_some(page + 1);
            Json(json!({ "items": items, "next_page": next }))
        }
        _ => html(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

#[allow(non_snake_case)]
fn Json(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

async fn handle(
    Shared(state): Shared<Arc<Mutex<State>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let raw = uri.to_string();
    let (fault, response) = {
        let mut s = state.lock().expect("emulator state");
        s.requests += 1;
        let fault = s.faults.get(&s.requests).cloned();
        let response = if raw.len() > 2048 {
            // IIS refuses long query strings before 1C sees them.
            html(
                StatusCode::NOT_FOUND,
                "404 - File or directory not found. HTTP Error 404.15 - Query string too long",
            )
        } else if !authorized(&headers) {
            html(StatusCode::UNAUTHORIZED, "401 Unauthorized")
        } else {
            match fault {
                Some(Fault::Html500) => html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                ),
                Some(Fault::Business500) => odata_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "-1",
                    "Ошибка при выполнении запроса: нарушение прав доступа",
                ),
                _ => match (
                    uri.path().strip_prefix("/base/odata/standard.odata"),
                    uri.path().strip_prefix("/base/hs/svodka/"),
                ) {
                    (Some(rest), _) => answer(
                        &s.base,
                        rest.trim_start_matches('/'),
                        uri.query().unwrap_or_default(),
                    ),
                    (_, Some(what)) => service(&s.base, what, uri.query().unwrap_or_default()),
                    _ => html(StatusCode::NOT_FOUND, "404 Not Found"),
                },
            }
        };
        (fault, response)
    };
    if let Some(Fault::Slow(d)) = fault {
        tokio::time::sleep(d).await;
    }
    response
}

impl Emulator {
    /// Serves a canonical CSV folder's 1C tables on a free loopback port.
    pub fn start(dir: &Path) -> Result<Emulator, String> {
        Self::serve(Base::load(dir, "Europe/Moscow")?)
    }

    pub fn serve(base: Base) -> Result<Emulator, String> {
        let state = Arc::new(Mutex::new(State {
            base,
            faults: BTreeMap::new(),
            requests: 0,
        }));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let app = Router::new().fallback(handle).with_state(shared);
                match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => {
                        let _ = tx.send(Ok(l.local_addr().expect("bound")));
                        let _ = axum::serve(l, app).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let addr = rx.recv().map_err(|e| e.to_string())??;
        Ok(Emulator {
            url: format!("http://{addr}/base"),
            state,
        })
    }

    /// Faults from the next request on (numbered from 1).
    pub fn set_faults(&self, faults: BTreeMap<u64, Fault>) {
        let mut s = self.state.lock().expect("emulator state");
        let base = s.requests;
        s.faults = faults.into_iter().map(|(n, f)| (n + base, f)).collect();
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Base) -> R) -> R {
        f(&mut self.state.lock().expect("emulator state").base)
    }

    pub fn requests(&self) -> u64 {
        self.state.lock().expect("emulator state").requests
    }

    /// The date of `now` in the infobase's zone (for edits), naive.
    pub fn local(&self, unix: i64) -> String {
        let tz = self.with(|b| b.tz);
        tz.timestamp_opt(unix, 0)
            .single()
            .map(|t| t.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default()
    }
}
