//! The portal's data: the canonical tables of a CSV folder kept as text rows, rendered as
//! Bitrix24 writes its records (string ids, `"19999.99"`, `Y`/`N`, datetimes with the
//! portal's offset, `"0"` for no company, integers in stage history, camelCase
//! categories), and changed the way a portal changes them (an edit moves the modification
//! time; deleting a deal takes its history and activities along).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::TimeZone;
use serde_json::{Map, Value, json};

use crate::query::{self, PAGE, Refusal, refuse};

/// One table as text cells, `None` for empty.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// A row and what the portal keeps beside the canonical columns.
#[derive(Debug, Clone)]
pub struct Row {
    pub cells: Vec<Option<String>>,
    /// The wire id (stage history rows have one; others use their `id` column).
    pub wire_id: i64,
    /// `DATE_MODIFY` / `LAST_UPDATED` where the canonical table keeps none.
    pub modified: Option<String>,
}

impl Table {
    pub fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    pub fn get<'a>(&self, row: &'a Row, name: &str) -> Option<&'a str> {
        row.cells[self.col(name)].as_deref()
    }

    fn set(&mut self, i: usize, name: &str, value: Option<String>) {
        let c = self.col(name);
        self.rows[i].cells[c] = value;
    }

    fn find(&self, id: i64) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.wire_id).ok()
    }
}

/// The CRM tables a portal serves; the rest of a data folder is not the portal's.
pub const CRM_TABLES: &[&str] = svodka_schema::CRM_TABLES;

/// Rendered records of a list in id order: (wire id, record).
type Records<'a> = Box<dyn Iterator<Item = (i64, Map<String, Value>)> + 'a>;

/// The portal's records.
pub struct Portal {
    pub tables: BTreeMap<String, Table>,
    pub tz: chrono_tz::Tz,
    /// A fixed clock for edits, when the test wants one.
    pub clock: Option<i64>,
}

fn opt(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null)
}

fn num(v: Option<&str>) -> Value {
    v.and_then(|s| s.parse::<i64>().ok())
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// `P`, `S` or `F`.
fn semantic_letter(s: Option<&str>) -> &'static str {
    match s {
        Some("success") => "S",
        Some("failure") => "F",
        _ => "P",
    }
}

fn yn(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

/// `Кирилл Яковлев` → (`Кирилл`, `Яковлев`).
fn split_name(name: Option<&str>) -> (String, String) {
    let name = name.unwrap_or_default();
    match name.split_once(' ') {
        Some((first, last)) => (first.to_string(), last.to_string()),
        None => (name.to_string(), String::new()),
    }
}

fn micros_of(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

/// The regions of the deals' custom field.
const REGIONS: [&str; 4] = ["Север", "Юг", "Центр", "Восток"];

/// The custom fields every deal carries: a region (a list field) and tags (multiple).
pub fn deal_custom_fields(id: i64) -> (String, Vec<String>) {
    let region = REGIONS[(id % 4) as usize].to_string();
    let tags = if id % 2 == 0 {
        vec!["опт".to_string(), "ВЭД".to_string()]
    } else {
        vec![]
    };
    (region, tags)
}

impl Portal {
    /// Reads the canonical CSV files of `dir` (those absent are empty).
    pub fn load(dir: &Path, timezone: &str) -> Result<Portal, String> {
        let tz: chrono_tz::Tz = timezone
            .parse()
            .map_err(|_| format!("unknown time zone {timezone}"))?;
        let mut tables = BTreeMap::new();
        for name in CRM_TABLES {
            let path = dir.join(format!("{name}.csv"));
            let mut t = Table::default();
            if path.exists() {
                let mut r = csv::Reader::from_path(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                t.columns = r
                    .headers()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(str::to_string)
                    .collect();
                for (n, rec) in r.records().enumerate() {
                    let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
                    let cells: Vec<Option<String>> = rec
                        .iter()
                        .map(|c| (!c.is_empty()).then(|| c.to_string()))
                        .collect();
                    t.rows.push(Row {
                        wire_id: n as i64 + 1,
                        modified: None,
                        cells,
                    });
                }
            }
            tables.insert(name.to_string(), t);
        }
        let mut portal = Portal {
            tables,
            tz,
            clock: None,
        };
        for name in [
            "departments",
            "users",
            "pipelines",
            "companies",
            "contacts",
            "leads",
            "deals",
            "activities",
        ] {
            let t = portal.tables.get_mut(name).expect("loaded");
            if t.columns.is_empty() {
                continue;
            }
            let id = t.col("id");
            for r in &mut t.rows {
                r.wire_id = r.cells[id]
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            t.rows.sort_by_key(|r| r.wire_id);
        }
        for name in ["companies", "contacts"] {
            let t = portal.tables.get_mut(name).expect("loaded");
            if t.columns.is_empty() {
                continue;
            }
            let created = t.col("created_at");
            for r in &mut t.rows {
                r.modified = r.cells[created].clone();
            }
        }
        Ok(portal)
    }

    /// Now as the portal writes it (the fixed clock when set).
    pub fn now(&self) -> String {
        let secs = self.clock.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        self.tz
            .timestamp_opt(secs, 0)
            .single()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
            .unwrap_or_default()
    }

    fn t(&self, name: &str) -> &Table {
        &self.tables[name]
    }

    // ---- rendering ---------------------------------------------------------------

    fn department(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("departments");
        let mut m =
            json!({"ID": t.get(r, "id"), "NAME": t.get(r, "name"), "SORT": 500, "UF_HEAD": "1"});
        if let Some(p) = t.get(r, "parent_id") {
            m["PARENT"] = json!(p);
        }
        m.as_object().cloned().expect("object")
    }

    fn user(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("users");
        let (first, last) = split_name(t.get(r, "name"));
        let id = t.get(r, "id").unwrap_or_default();
        json!({
            "ID": id, "XML_ID": format!("user{id}"), "ACTIVE": t.get(r, "active") == Some("true"),
            "NAME": first, "LAST_NAME": last, "SECOND_NAME": "", "EMAIL": format!("user{id}@example.ru"),
            "LAST_LOGIN": "2026-11-20T09:00:00+03:00", "DATE_REGISTER": "2024-01-10T00:00:00+03:00",
            "IS_ONLINE": "N", "TIME_ZONE_OFFSET": "0", "TIMESTAMP_X": "10.01.2024 10:00:00",
            "PERSONAL_GENDER": "", "UF_DEPARTMENT": t.get(r, "department_id").and_then(|d| d.parse::<i64>().ok()).into_iter().collect::<Vec<_>>(),
            "WORK_POSITION": t.get(r, "position").unwrap_or_default(), "USER_TYPE": "employee",
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    fn category(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("pipelines");
        json!({
            "id": num(t.get(r, "id")), "name": t.get(r, "name"), "sort": num(t.get(r, "sort")),
            "entityTypeId": 2, "isDefault": yn(t.get(r, "id") == Some("0")), "originId": "", "originatorId": "",
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    /// `crm.status.list` rows: lead statuses, deal stages per pipeline, sources, and a
    /// dictionary the connector does not read (deal types).
    fn statuses(&self) -> Vec<Map<String, Value>> {
        let mut out = Vec::new();
        let t = self.t("stages");
        for r in &t.rows {
            let (entity_id, category) = match (t.get(r, "entity"), t.get(r, "pipeline_id")) {
                (Some("lead"), _) => ("STATUS".to_string(), Value::Null),
                (_, Some("0")) | (_, None) => ("DEAL_STAGE".to_string(), json!(0)),
                (_, Some(p)) => (format!("DEAL_STAGE_{p}"), num(Some(p))),
            };
            let stage = t.get(r, "stage_id").unwrap_or_default();
            let semantic = t.get(r, "semantic");
            let extra = match semantic {
                Some("failure") if stage.ends_with("APOLOGY") => "apology",
                Some(s) => s,
                None => "process",
            };
            let letter = semantic_letter(semantic);
            out.push(json!({
                "ENTITY_ID": entity_id, "STATUS_ID": stage, "NAME": t.get(r, "name"),
                "NAME_INIT": "", "SORT": t.get(r, "sort").unwrap_or("10"), "SYSTEM": "N",
                "CATEGORY_ID": category, "COLOR": "#39A8EF",
                "SEMANTICS": if letter == "P" { Value::Null } else { json!(letter) },
                "EXTRA": {"SEMANTICS": extra, "COLOR": "#39A8EF"},
            }));
        }
        let s = self.t("sources");
        for (k, r) in s.rows.iter().enumerate() {
            out.push(json!({
                "ENTITY_ID": "SOURCE", "STATUS_ID": s.get(r, "id"), "NAME": s.get(r, "name"),
                "NAME_INIT": "", "SORT": ((k + 1) * 10).to_string(), "SYSTEM": "N", "CATEGORY_ID": null,
                "COLOR": null, "SEMANTICS": null,
            }));
        }
        for (code, name) in [("SALE", "Продажа"), ("COMPLEX", "Комплексная продажа")]
        {
            out.push(
                json!({"ENTITY_ID": "DEAL_TYPE", "STATUS_ID": code, "NAME": name, "SORT": "10",
                            "SYSTEM": "Y", "CATEGORY_ID": null, "SEMANTICS": null}),
            );
        }
        out.into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v["ID"] = json!((i + 1).to_string());
                v.as_object().cloned().expect("object")
            })
            .collect()
    }

    fn company(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("companies");
        json!({
            "ID": t.get(r, "id"), "TITLE": t.get(r, "title"), "COMPANY_TYPE": "CUSTOMER",
            "INDUSTRY": "TRANSPORT", "ADDRESS_CITY": opt(t.get(r, "city")),
            "ADDRESS_COUNTRY": opt(t.get(r, "country")), "ASSIGNED_BY_ID": "1", "OPENED": "Y",
            "IS_MY_COMPANY": "N", "DATE_CREATE": t.get(r, "created_at"), "DATE_MODIFY": r.modified,
            "HAS_PHONE": "Y", "HAS_EMAIL": "N",
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    /// One requisite per company with an INN; its id is the company's.
    fn requisite(&self, r: &Row) -> Option<Map<String, Value>> {
        let t = self.t("companies");
        let inn = t.get(r, "inn")?;
        Some(
            json!({
                "ID": t.get(r, "id"), "ENTITY_TYPE_ID": "4", "ENTITY_ID": t.get(r, "id"),
                "PRESET_ID": "1", "NAME": "Организация", "RQ_COMPANY_NAME": t.get(r, "title"),
                "RQ_INN": inn, "RQ_KPP": "770501001", "DATE_CREATE": t.get(r, "created_at"),
                "DATE_MODIFY": r.modified, "ACTIVE": "Y",
            })
            .as_object()
            .cloned()
            .expect("object"),
        )
    }

    fn contact(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("contacts");
        let (first, last) = split_name(t.get(r, "name"));
        json!({
            "ID": t.get(r, "id"), "NAME": first, "LAST_NAME": last, "SECOND_NAME": null,
            "COMPANY_ID": t.get(r, "company_id").unwrap_or("0"), "ASSIGNED_BY_ID": "1",
            "DATE_CREATE": t.get(r, "created_at"), "DATE_MODIFY": r.modified, "OPENED": "Y",
            "HAS_EMAIL": "N", "HAS_PHONE": "Y",
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    fn lead(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("leads");
        let g = |c: &str| t.get(r, c);
        let mut m = json!({
            "ID": g("id"), "TITLE": g("title"), "STATUS_ID": g("status_id"),
            "STATUS_SEMANTIC_ID": semantic_letter(g("semantic")), "STATUS_DESCRIPTION": null,
            "SOURCE_ID": opt(g("source_id")), "SOURCE_DESCRIPTION": null,
            "ASSIGNED_BY_ID": g("assigned_id"), "CREATED_BY_ID": g("assigned_id"),
            "DATE_CREATE": g("created_at"), "DATE_MODIFY": g("modified_at"),
            "DATE_CLOSED": g("closed_at").unwrap_or(""), "OPPORTUNITY": opt(g("amount")),
            "CURRENCY_ID": opt(g("currency")), "COMPANY_ID": g("company_id").unwrap_or("0"),
            "CONTACT_ID": opt(g("contact_id")), "ADDRESS_CITY": opt(g("city")),
            "ADDRESS_COUNTRY": opt(g("country")), "OPENED": "Y", "IS_RETURN_CUSTOMER": "N",
        });
        for (col, key) in UTM {
            m[key] = opt(g(col));
        }
        m.as_object().cloned().expect("object")
    }

    fn deal(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("deals");
        let g = |c: &str| t.get(r, c);
        let id: i64 = g("id").and_then(|s| s.parse().ok()).unwrap_or(0);
        let closed = g("closed_at").is_some();
        // The date typed in the deal: the closing day at midnight; an open deal's expected
        // day a month after its creation.
        let closedate = match (g("closed_at"), g("created_at")) {
            (Some(c), _) => format!("{}T00:00:00{}", &c[..10], &c[19..]),
            (None, Some(c)) => match micros_of(c) {
                Some(s) => {
                    let t = self
                        .tz
                        .timestamp_opt(s + 30 * 86_400, 0)
                        .single()
                        .expect("valid");
                    format!("{}T00:00:00{}", t.format("%Y-%m-%d"), t.format("%:z"))
                }
                None => String::new(),
            },
            _ => String::new(),
        };
        // Every 50th deal is priced in dollars; the account currency is roubles.
        let (opportunity, currency) = match g("amount") {
            Some(a) if id % 50 == 7 => {
                let cents: i64 = a.replace('.', "").parse().unwrap_or(0);
                (
                    json!(format!("{}.{:02}", cents / 9000, (cents / 90) % 100)),
                    json!("USD"),
                )
            }
            Some(a) => (json!(a), opt(g("currency"))),
            None => (Value::Null, Value::Null),
        };
        let (region, tags) = deal_custom_fields(id);
        let mut m = json!({
            "ID": g("id"), "TITLE": g("title"), "TYPE_ID": "SALE", "CATEGORY_ID": g("pipeline_id"),
            "STAGE_ID": g("stage_id"), "STAGE_SEMANTIC_ID": semantic_letter(g("semantic")),
            "IS_NEW": "N", "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N", "IS_REPEATED_APPROACH": "N",
            "PROBABILITY": null, "CURRENCY_ID": currency, "OPPORTUNITY": opportunity,
            "IS_MANUAL_OPPORTUNITY": "N", "TAX_VALUE": "0.00",
            "COMPANY_ID": g("company_id").unwrap_or("0"), "CONTACT_ID": opt(g("contact_id")),
            "QUOTE_ID": null, "BEGINDATE": g("created_at"), "CLOSEDATE": closedate,
            "OPENED": "Y", "CLOSED": yn(closed), "COMMENTS": null,
            "ASSIGNED_BY_ID": g("assigned_id"), "CREATED_BY_ID": g("assigned_id"),
            "MODIFY_BY_ID": g("assigned_id"), "MOVED_BY_ID": g("assigned_id"),
            "DATE_CREATE": g("created_at"), "DATE_MODIFY": g("modified_at"),
            "SOURCE_ID": opt(g("source_id")), "SOURCE_DESCRIPTION": null, "LEAD_ID": opt(g("lead_id")),
            "ADDITIONAL_INFO": null, "ORIGINATOR_ID": null, "ORIGIN_ID": null,
            "OPPORTUNITY_ACCOUNT": opt(g("amount")),
            "ACCOUNT_CURRENCY_ID": if g("amount").is_some() { json!("RUB") } else { Value::Null },
            "UF_CRM_1700000001": region, "UF_CRM_1700000002": tags,
        });
        for (col, key) in UTM {
            m[key] = opt(g(col));
        }
        m.as_object().cloned().expect("object")
    }

    fn owner_type_id(owner: Option<&str>) -> i64 {
        match owner {
            Some("lead") => 1,
            Some("deal") => 2,
            Some("contact") => 3,
            _ => 4,
        }
    }

    fn activity(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("activities");
        let g = |c: &str| t.get(r, c);
        let (type_id, provider, provider_type) = match g("kind") {
            Some("meeting") => ("1", "CRM_MEETING", "MEETING"),
            Some("call") => ("2", "VOXIMPLANT_CALL", "CALL"),
            Some("email") => ("4", "CRM_EMAIL", "EMAIL"),
            Some("task") => ("6", "CRM_TODO", "TODO"),
            _ => ("6", "REST_APP", "DOCUMENT"),
        };
        let direction = match g("direction") {
            Some("in") => "1",
            Some("out") => "2",
            _ => "0",
        };
        let completed = g("completed") == Some("true");
        let created = g("created_at").unwrap_or_default();
        let end = match g("duration_s").and_then(|d| d.parse::<i64>().ok()) {
            Some(d) => micros_of(created)
                .and_then(|s| self.tz.timestamp_opt(s + d, 0).single())
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
                .unwrap_or_default(),
            None => String::new(),
        };
        // The portal keeps no completion time: a completed activity was last updated then.
        let updated = r
            .modified
            .clone()
            .or_else(|| {
                if completed {
                    g("completed_at").map(str::to_string)
                } else {
                    None
                }
            })
            .unwrap_or_else(|| created.to_string());
        json!({
            "ID": g("id"), "OWNER_ID": g("owner_id"),
            "OWNER_TYPE_ID": Self::owner_type_id(g("owner_type")).to_string(),
            "TYPE_ID": type_id, "PROVIDER_ID": provider, "PROVIDER_TYPE_ID": provider_type,
            "PROVIDER_GROUP_ID": null, "ASSOCIATED_ENTITY_ID": "0",
            "SUBJECT": format!("{} #{}", provider_type, g("id").unwrap_or_default()),
            "CREATED": created, "LAST_UPDATED": updated, "START_TIME": created, "END_TIME": end,
            "DEADLINE": g("deadline").unwrap_or(""), "COMPLETED": yn(completed),
            "STATUS": if completed { "2" } else { "1" }, "RESPONSIBLE_ID": g("responsible_id"),
            "PRIORITY": "2", "NOTIFY_TYPE": "1", "NOTIFY_VALUE": "15", "DESCRIPTION": "",
            "DESCRIPTION_TYPE": "1", "DIRECTION": direction, "LOCATION": "", "SETTINGS": [],
            "ORIGINATOR_ID": null, "ORIGIN_ID": null, "AUTHOR_ID": g("responsible_id"),
            "EDITOR_ID": g("responsible_id"), "PROVIDER_PARAMS": [], "PROVIDER_DATA": null,
            "RESULT_MARK": "0", "RESULT_VALUE": null, "RESULT_SUM": null,
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    fn comment(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("activities");
        let g = |c: &str| t.get(r, c);
        json!({
            "ID": g("id"), "ENTITY_ID": g("owner_id"), "ENTITY_TYPE": g("owner_type"),
            "CREATED": g("created_at"), "COMMENT": "Клиент просил перезвонить после обеда",
            "AUTHOR_ID": g("responsible_id"), "FILES": null,
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    fn history(&self, r: &Row) -> Map<String, Value> {
        let t = self.t("stage_history");
        let g = |c: &str| t.get(r, c);
        let type_id = match (g("kind"), g("semantic")) {
            (Some("created"), _) => 1,
            (Some("pipeline_changed"), _) => 5,
            (_, Some("success" | "failure")) => 3,
            _ => 2,
        };
        let mut m = json!({
            "ID": r.wire_id, "TYPE_ID": type_id, "OWNER_ID": num(g("entity_id")),
            "CREATED_TIME": g("changed_at"),
        });
        if g("entity") == Some("lead") {
            m["STATUS_ID"] = json!(g("stage_id"));
            m["STATUS_SEMANTIC_ID"] = json!(semantic_letter(g("semantic")));
        } else {
            m["CATEGORY_ID"] = num(g("pipeline_id"));
            m["STAGE_ID"] = json!(g("stage_id"));
            m["STAGE_SEMANTIC_ID"] = json!(semantic_letter(g("semantic")));
        }
        m.as_object().cloned().expect("object")
    }

    // ---- lists ------------------------------------------------------------------

    /// The records of a list method in id order, rendered lazily.
    fn records<'a>(
        &'a self,
        method: &str,
        params: &Map<String, Value>,
        floor: i64,
    ) -> Result<Records<'a>, Refusal> {
        // Rows are in id order: those below the floor are skipped unread.
        let from = |t: &'a Table| &t.rows[t.rows.partition_point(|r| r.wire_id < floor)..];
        let rows = |table: &'a str, f: fn(&Portal, &Row) -> Map<String, Value>| {
            let t = &self.tables[table];
            Box::new(from(t).iter().map(move |r| (r.wire_id, f(self, r))))
                as Box<dyn Iterator<Item = (i64, Map<String, Value>)>>
        };
        let activities = |comments: bool| {
            let t = &self.tables["activities"];
            let kind = t.col("kind");
            Box::new(
                from(t)
                    .iter()
                    .filter(move |r| (r.cells[kind].as_deref() == Some("comment")) == comments)
                    .map(move |r| {
                        let m = if comments {
                            self.comment(r)
                        } else {
                            self.activity(r)
                        };
                        (r.wire_id, m)
                    }),
            ) as Box<dyn Iterator<Item = (i64, Map<String, Value>)>>
        };
        let it = match method {
            "department.get" => rows("departments", Portal::department),
            "user.get" => rows("users", Portal::user),
            "crm.company.list" => rows("companies", Portal::company),
            "crm.contact.list" => rows("contacts", Portal::contact),
            "crm.lead.list" => rows("leads", Portal::lead),
            "crm.deal.list" => rows("deals", Portal::deal),
            "crm.activity.list" => activities(false),
            "crm.timeline.comment.list" => {
                let filter = query::param(params, "filter").and_then(Value::as_object);
                if !filter
                    .is_some_and(|f| f.contains_key("ENTITY_ID") && f.contains_key("ENTITY_TYPE"))
                {
                    return Err(refuse(
                        400,
                        "",
                        "ENTITY_ID and ENTITY_TYPE are required in the filter",
                    ));
                }
                activities(true)
            }
            "crm.requisite.list" => {
                let t = &self.tables["companies"];
                Box::new(
                    t.rows
                        .iter()
                        .filter_map(move |r| self.requisite(r).map(|m| (r.wire_id, m))),
                ) as Box<dyn Iterator<Item = _>>
            }
            "crm.stagehistory.list" => {
                let entity = match query::param(params, "entityTypeId").and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                }) {
                    Some(1) => "lead",
                    Some(2) => "deal",
                    _ => {
                        return Err(refuse(
                            400,
                            "ENTITY_TYPE_NOT_SUPPORTED",
                            "Entity type is not supported",
                        ));
                    }
                };
                let t = &self.tables["stage_history"];
                let e = t.col("entity");
                Box::new(
                    from(t)
                        .iter()
                        .filter(move |r| r.cells[e].as_deref() == Some(entity))
                        .map(move |r| (r.wire_id, self.history(r))),
                ) as Box<dyn Iterator<Item = _>>
            }
            "crm.category.list" => {
                let entity = query::param(params, "entityTypeId").and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                });
                if entity != Some(2) {
                    return Err(refuse(
                        400,
                        "ENTITY_TYPE_NOT_SUPPORTED",
                        "entityTypeId is required",
                    ));
                }
                rows("pipelines", Portal::category)
            }
            "crm.status.list" => Box::new(
                self.statuses()
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| (i as i64 + 1, m)),
            ) as Box<dyn Iterator<Item = _>>,
            _ => {
                return Err(refuse(
                    404,
                    "ERROR_METHOD_NOT_FOUND",
                    format!("Method not found: {method}"),
                ));
            }
        };
        Ok(it)
    }

    /// A list method: the page asked for, the total (unless `start=-1`) and `next`.
    pub fn list(
        &self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<(Value, Option<u64>, Option<u64>), Refusal> {
        // Filters may name only fields the records have (judged on the first record).
        let sample: Option<Map<String, Value>> = self
            .records(method, params, i64::MIN)?
            .next()
            .map(|(_, m)| m);
        let known = |f: &str| {
            sample.as_ref().is_none_or(|s| s.contains_key(f))
                || (method == "user.get" && f == "UF_DEPARTMENT")
        };
        let conditions = query::conditions(params, &known)?;
        let descending = query::descending(params)?;
        let start = query::start(params)?;
        let floor = if descending {
            i64::MIN
        } else {
            query::id_floor(&conditions).unwrap_or(i64::MIN)
        };
        let matched = self
            .records(method, params, floor)?
            .filter(|(_, m)| query::matches(m, &conditions));
        let (page, total, next) = match (start, descending) {
            // No counting: the first page is all that is read.
            (None, false) => (matched.take(PAGE).collect::<Vec<_>>(), None, None),
            (start, _) => {
                let mut all: Vec<_> = matched.collect();
                if descending {
                    all.reverse();
                }
                let total = all.len();
                let s = start.unwrap_or(0);
                let page: Vec<_> = all.into_iter().skip(s).take(PAGE).collect();
                let next = (start.is_some() && s + PAGE < total).then_some((s + PAGE) as u64);
                (page, start.map(|_| total as u64), next)
            }
        };
        let rows: Vec<Value> = page
            .into_iter()
            .map(|(_, m)| Value::Object(query::select(m, params)))
            .collect();
        let result = match method {
            "crm.stagehistory.list" => json!({ "items": rows }),
            "crm.category.list" => json!({ "categories": rows }),
            _ => Value::Array(rows),
        };
        Ok((result, total, next))
    }

    // ---- changes ------------------------------------------------------------------

    fn table_mut(&mut self, name: &str) -> &mut Table {
        self.tables
            .get_mut(name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }

    /// Sets a canonical column of a record and moves its modification time, as an edit in
    /// the CRM does. An INN edit changes the company's requisite only.
    pub fn edit(&mut self, table: &str, id: i64, column: &str, value: Option<&str>) -> String {
        let now = self.now();
        let t = self.table_mut(table);
        let i = t.find(id).unwrap_or_else(|| panic!("no {table} {id}"));
        t.set(i, column, value.map(str::to_string));
        match table {
            "deals" | "leads" => t.set(i, "modified_at", Some(now.clone())),
            // A completed activity's completion is read as its last update.
            "activities" => {
                if t.get(&t.rows[i], "completed") == Some("true") {
                    t.set(i, "completed_at", Some(now.clone()));
                }
                t.rows[i].modified = Some(now.clone());
            }
            _ => t.rows[i].modified = Some(now.clone()),
        }
        now
    }

    /// Deletes a record; a lead's or deal's stage history and activities go with it.
    pub fn delete(&mut self, table: &str, id: i64) {
        let t = self.table_mut(table);
        if let Some(i) = t.find(id) {
            t.rows.remove(i);
        }
        let owner = match table {
            "leads" => "lead",
            "deals" => "deal",
            _ => return,
        };
        let id = id.to_string();
        let h = self.table_mut("stage_history");
        let (e, o) = (h.col("entity"), h.col("entity_id"));
        h.rows.retain(|r| {
            !(r.cells[e].as_deref() == Some(owner) && r.cells[o].as_deref() == Some(&id))
        });
        let a = self.table_mut("activities");
        let (e, o) = (a.col("owner_type"), a.col("owner_id"));
        a.rows.retain(|r| {
            !(r.cells[e].as_deref() == Some(owner) && r.cells[o].as_deref() == Some(&id))
        });
    }

    /// Moves a deal to a stage: its stage, semantic, closing and modification, and a row
    /// of stage history.
    pub fn move_deal(&mut self, id: i64, stage: &str, semantic: &str) -> String {
        let now = self.now();
        let t = self.table_mut("deals");
        let i = t.find(id).unwrap_or_else(|| panic!("no deal {id}"));
        let pipeline = t.get(&t.rows[i], "pipeline_id").map(str::to_string);
        t.set(i, "stage_id", Some(stage.to_string()));
        t.set(i, "semantic", Some(semantic.to_string()));
        t.set(i, "modified_at", Some(now.clone()));
        t.set(i, "closed_at", (semantic != "process").then(|| now.clone()));
        let h = self.table_mut("stage_history");
        let wire_id = h.rows.iter().map(|r| r.wire_id).max().unwrap_or(0) + 1;
        let mut cells = vec![None; h.columns.len()];
        for (c, v) in [
            ("entity", Some("deal".to_string())),
            ("entity_id", Some(id.to_string())),
            ("pipeline_id", pipeline),
            ("stage_id", Some(stage.to_string())),
            ("semantic", Some(semantic.to_string())),
            ("changed_at", Some(now.clone())),
            ("kind", Some("moved".to_string())),
        ] {
            cells[h.col(c)] = v;
        }
        h.rows.push(Row {
            cells,
            wire_id,
            modified: None,
        });
        now
    }

    /// Adds a completed call to a deal or lead; returns its id.
    pub fn add_call(&mut self, owner_type: &str, owner: i64, responsible: i64) -> i64 {
        let now = self.now();
        self.add_activity(&[
            ("kind", "call".into()),
            ("direction", "out".into()),
            ("owner_type", owner_type.into()),
            ("owner_id", owner.to_string()),
            ("responsible_id", responsible.to_string()),
            ("created_at", now.clone()),
            ("completed", "true".into()),
            ("completed_at", now),
            ("duration_s", "95".into()),
        ])
    }

    /// Adds a timeline comment by `author` to any CRM item (`company`, `contact`, `lead`,
    /// `deal`) without touching the item, as the portal does; returns its id.
    pub fn add_comment(&mut self, owner_type: &str, owner: i64, author: i64) -> i64 {
        let now = self.now();
        self.add_activity(&[
            ("kind", "comment".into()),
            ("owner_type", owner_type.into()),
            ("owner_id", owner.to_string()),
            ("responsible_id", author.to_string()),
            ("created_at", now.clone()),
            ("completed", "true".into()),
            ("completed_at", now),
        ])
    }

    /// Appends an activity (a comment is one, by `kind`) with the next id.
    fn add_activity(&mut self, values: &[(&str, String)]) -> i64 {
        let a = self.table_mut("activities");
        let id = a.rows.iter().map(|r| r.wire_id).max().unwrap_or(0) + 1;
        let mut cells = vec![None; a.columns.len()];
        cells[a.col("id")] = Some(id.to_string());
        for (c, v) in values {
            cells[a.col(c)] = Some(v.clone());
        }
        a.rows.push(Row {
            cells,
            wire_id: id,
            modified: None,
        });
        id
    }

    /// The portal's records as canonical CSV files, as a sync should find them: comments
    /// carry negative ids, as the connector keeps them apart from activities.
    pub fn write_csv(&self, dir: &Path) -> Result<(), String> {
        for (name, t) in &self.tables {
            if t.columns.is_empty() {
                continue;
            }
            let path = dir.join(format!("{name}.csv"));
            let mut w = csv::Writer::from_path(&path).map_err(|e| e.to_string())?;
            w.write_record(&t.columns).map_err(|e| e.to_string())?;
            let comment_id = (name == "activities").then(|| (t.col("kind"), t.col("id")));
            for r in &t.rows {
                let mut cells: Vec<String> = r
                    .cells
                    .iter()
                    .map(|c| c.clone().unwrap_or_default())
                    .collect();
                if let Some((kind, id)) = comment_id
                    && cells[kind] == "comment"
                {
                    cells[id] = format!("-{}", cells[id]);
                }
                w.write_record(&cells).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// How many records a list holds (for the figures).
    pub fn count(&self, table: &str) -> usize {
        self.tables.get(table).map(|t| t.rows.len()).unwrap_or(0)
    }
}

/// UTM columns and their wire names.
const UTM: [(&str, &str); 5] = [
    ("utm_source", "UTM_SOURCE"),
    ("utm_medium", "UTM_MEDIUM"),
    ("utm_campaign", "UTM_CAMPAIGN"),
    ("utm_content", "UTM_CONTENT"),
    ("utm_term", "UTM_TERM"),
];
