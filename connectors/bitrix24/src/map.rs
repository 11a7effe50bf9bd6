//! Bitrix24 records to the canonical tables. Unknown values (a new activity type, an
//! unheard-of semantic code) never fail a sync: they map to `other` (or the raw code) and
//! are counted, so the sync log can say what it met. A record without what the canonical
//! table requires (an id, a creation time, a responsible) is skipped and counted too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde_json::Value as Json;
use svodka_schema::{TableBuilder, Value};

use crate::wire;

/// What a mapping met that it could not take as is: `(table.column, raw value)` → count.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unknowns(pub BTreeMap<(String, String), u64>);

impl Unknowns {
    fn note(&mut self, at: &str, raw: &str) {
        *self.0.entry((at.to_string(), raw.to_string())).or_default() += 1;
    }

    /// Adds what another mapping met.
    pub fn merge(&mut self, other: Unknowns) {
        for (k, n) in other.0 {
            *self.0.entry(k).or_default() += n;
        }
    }

    /// Lines for the sync log: `deals.semantic "X": 3`.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|((at, raw), n)| format!("{at} {raw:?}: {n}"))
            .collect()
    }
}

/// A table's rows, and what did not map.
pub struct Mapped {
    pub batch: RecordBatch,
    pub unknowns: Unknowns,
}

fn table(name: &str) -> &'static svodka_schema::Table {
    svodka_schema::table(name).expect("a canonical table")
}

/// `P`/`S`/`F` (or the dictionaries' `process`/`success`/`failure`/`apology`).
fn semantic(raw: Option<&str>, at: &str, unknowns: &mut Unknowns) -> &'static str {
    match raw.map(str::trim) {
        Some("P") | Some("process") | None | Some("") => "process",
        Some("S") | Some("success") => "success",
        Some("F") | Some("failure") | Some("apology") => "failure",
        Some(other) => {
            unknowns.note(at, other);
            "process"
        }
    }
}

/// A foreign id where Bitrix24 writes `0` or `""` for none.
fn reference(v: &Json) -> Value<'static> {
    match wire::id(v) {
        Some(id) if id > 0 => Value::Int(id),
        _ => Value::Null,
    }
}

fn opt_id(v: &Json) -> Value<'static> {
    wire::id(v).map(Value::Int).unwrap_or(Value::Null)
}

fn ts(v: &Json) -> Value<'static> {
    wire::micros(v).map(Value::Timestamp).unwrap_or(Value::Null)
}

fn money(v: &Json) -> Value<'static> {
    wire::cents(v).map(Value::Money).unwrap_or(Value::Null)
}

fn txt(v: &Json) -> Option<String> {
    wire::text(v)
}

fn opt_text(s: &Option<String>) -> Value<'_> {
    match s {
        Some(t) => Value::Text(t),
        None => Value::Null,
    }
}

/// What every deal and lead row carries: its id, stage (or status), responsible, creation
/// and modification (the creation when the row has none).
struct Head {
    id: i64,
    stage: String,
    assigned: i64,
    created: i64,
    modified: i64,
    title: String,
}

/// The head of a row, or `None` (counted) when it lacks what the canonical table needs.
fn head(r: &Json, stage_key: &str, table: &str, unknowns: &mut Unknowns) -> Option<Head> {
    let got = (
        wire::id(&r["ID"]),
        txt(&r[stage_key]),
        wire::id(&r["ASSIGNED_BY_ID"]),
        wire::micros(&r["DATE_CREATE"]),
    );
    let (Some(id), Some(stage), Some(assigned), Some(created)) = got else {
        unknowns.note(
            table,
            &format!("record without ID, {stage_key}, ASSIGNED_BY_ID or DATE_CREATE"),
        );
        return None;
    };
    Some(Head {
        id,
        stage,
        assigned,
        created,
        modified: wire::micros(&r["DATE_MODIFY"]).unwrap_or(created),
        title: txt(&r["TITLE"]).unwrap_or_default(),
    })
}

/// The UTM tags of a row, in the canonical order.
fn utm(r: &Json) -> Vec<Option<String>> {
    [
        "UTM_SOURCE",
        "UTM_MEDIUM",
        "UTM_CAMPAIGN",
        "UTM_CONTENT",
        "UTM_TERM",
    ]
    .iter()
    .map(|k| txt(&r[*k]))
    .collect()
}

/// `department.get` rows.
pub fn departments(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("departments"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(id), Some(name)) = (wire::id(&r["ID"]), txt(&r["NAME"])) else {
            unknowns.note("departments", "record without ID or NAME");
            continue;
        };
        out.push_named(&[
            ("id", Value::Int(id)),
            ("name", Value::Text(&name)),
            ("parent_id", reference(&r["PARENT"])),
        ])
        .map_err(|e| format!("department {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// A person's name from `NAME` and `LAST_NAME` (either may be empty).
fn person(r: &Json) -> String {
    [txt(&r["NAME"]), txt(&r["LAST_NAME"])]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `user.get` rows: the first of `UF_DEPARTMENT` is the department.
pub fn users(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("users"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let Some(id) = wire::id(&r["ID"]) else {
            unknowns.note("users", "record without ID");
            continue;
        };
        let name = person(r);
        let department = r["UF_DEPARTMENT"]
            .as_array()
            .and_then(|a| a.first())
            .map(reference)
            .unwrap_or(Value::Null);
        let position = txt(&r["WORK_POSITION"]);
        out.push_named(&[
            ("id", Value::Int(id)),
            ("name", Value::Text(&name)),
            ("department_id", department),
            (
                "active",
                Value::Bool(wire::flag(&r["ACTIVE"]).unwrap_or(true)),
            ),
            ("position", opt_text(&position)),
        ])
        .map_err(|e| format!("user {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.category.list` (entity type 2) categories: camelCase, numeric.
pub fn pipelines(categories: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("pipelines"));
    let mut unknowns = Unknowns::default();
    for r in categories {
        let (Some(id), Some(name)) = (wire::id(&r["id"]), txt(&r["name"])) else {
            unknowns.note("pipelines", "category without id or name");
            continue;
        };
        out.push_named(&[
            ("id", Value::Int(id)),
            ("name", Value::Text(&name)),
            ("sort", Value::Int(wire::id(&r["sort"]).unwrap_or(0))),
        ])
        .map_err(|e| format!("pipeline {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.status.list` rows into stages (lead statuses from `STATUS`, deal stages from
/// `DEAL_STAGE` = pipeline 0 and `DEAL_STAGE_{n}`) and sources (`SOURCE`); other
/// dictionaries are not ours. The semantics: `EXTRA.SEMANTICS`, else `SEMANTICS`.
pub fn dictionaries(rows: &[Json]) -> Result<(Mapped, Mapped), String> {
    let mut stages = TableBuilder::new(table("stages"));
    let mut sources = TableBuilder::new(table("sources"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(dict), Some(code), Some(name)) =
            (txt(&r["ENTITY_ID"]), txt(&r["STATUS_ID"]), txt(&r["NAME"]))
        else {
            unknowns.note(
                "stages",
                "dictionary row without ENTITY_ID, STATUS_ID or NAME",
            );
            continue;
        };
        if dict == "SOURCE" {
            sources
                .push_named(&[("id", Value::Text(&code)), ("name", Value::Text(&name))])
                .map_err(|e| format!("source {code}: {e}"))?;
            continue;
        }
        let (entity, pipeline) = match dict.as_str() {
            "STATUS" => ("lead", Value::Null),
            "DEAL_STAGE" => ("deal", Value::Int(0)),
            d => match d.strip_prefix("DEAL_STAGE_").and_then(|n| n.parse().ok()) {
                Some(n) => ("deal", Value::Int(n)),
                None => continue,
            },
        };
        let raw = r
            .pointer("/EXTRA/SEMANTICS")
            .and_then(Json::as_str)
            .or_else(|| r["SEMANTICS"].as_str());
        let sem = semantic(raw, "stages.semantic", &mut unknowns);
        stages
            .push_named(&[
                ("entity", Value::Text(entity)),
                ("pipeline_id", pipeline),
                ("stage_id", Value::Text(&code)),
                ("name", Value::Text(&name)),
                ("sort", Value::Int(wire::id(&r["SORT"]).unwrap_or(0))),
                ("semantic", Value::Text(sem)),
            ])
            .map_err(|e| format!("stage {code}: {e}"))?;
    }
    Ok((
        Mapped {
            batch: stages.finish(),
            unknowns,
        },
        Mapped {
            batch: sources.finish(),
            unknowns: Unknowns::default(),
        },
    ))
}

/// The INN of each company from `crm.requisite.list` rows (`ENTITY_TYPE_ID` 4; the
/// requisite with the lowest id that has one).
pub fn company_inns(requisites: &[Json]) -> HashMap<i64, String> {
    let mut firsts: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for q in requisites {
        if wire::id(&q["ENTITY_TYPE_ID"]) == Some(4)
            && let (Some(company), Some(value)) = (wire::id(&q["ENTITY_ID"]), txt(&q["RQ_INN"]))
        {
            firsts.insert((company, wire::id(&q["ID"]).unwrap_or(0)), value);
        }
    }
    let mut inn = HashMap::new();
    for ((company, _), value) in firsts {
        inn.entry(company).or_insert(value);
    }
    inn
}

/// The companies' `inn` column set from `inn` (`company_inns`): a company's INN lives in
/// its requisites, which change without the company's modification time moving.
pub fn with_inns(batch: RecordBatch, inn: &HashMap<i64, String>) -> Result<RecordBatch, String> {
    let ids = batch
        .column_by_name("id")
        .ok_or("companies without an `id` column")?
        .as_primitive::<Int64Type>()
        .clone();
    let at = batch.schema().index_of("inn").map_err(|e| e.to_string())?;
    let mut b = StringBuilder::new();
    for id in ids.values() {
        b.append_option(inn.get(id));
    }
    let mut columns = batch.columns().to_vec();
    columns[at] = Arc::new(b.finish());
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())
}

/// `crm.company.list` rows; the INN comes from the requisites (`with_inns`).
pub fn companies(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("companies"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(id), Some(created)) = (wire::id(&r["ID"]), wire::micros(&r["DATE_CREATE"]))
        else {
            unknowns.note("companies", "record without ID or DATE_CREATE");
            continue;
        };
        let [title, city, country] =
            ["TITLE", "ADDRESS_CITY", "ADDRESS_COUNTRY"].map(|k| txt(&r[k]));
        let title = title.unwrap_or_default();
        out.push_named(&[
            ("id", Value::Int(id)),
            ("title", Value::Text(&title)),
            ("city", opt_text(&city)),
            ("country", opt_text(&country)),
            ("created_at", Value::Timestamp(created)),
        ])
        .map_err(|e| format!("company {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.contact.list` rows.
pub fn contacts(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("contacts"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(id), Some(created)) = (wire::id(&r["ID"]), wire::micros(&r["DATE_CREATE"]))
        else {
            unknowns.note("contacts", "record without ID or DATE_CREATE");
            continue;
        };
        let name = person(r);
        out.push_named(&[
            ("id", Value::Int(id)),
            ("name", Value::Text(&name)),
            ("company_id", reference(&r["COMPANY_ID"])),
            ("created_at", Value::Timestamp(created)),
        ])
        .map_err(|e| format!("contact {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// When each deal was closed, from the canonical stage history: its last move to a final
/// stage (`TYPE_ID` 3 on the wire). `CLOSEDATE` is only what the manager typed; the
/// history is when it happened.
pub fn deal_closings(history: &[RecordBatch]) -> HashMap<i64, i64> {
    let mut out = HashMap::new();
    for b in history {
        let col = |n: &str| {
            b.column_by_name(n)
                .expect("a canonical stage_history batch")
        };
        let (entity, owner, semantic, at, kind) = (
            col("entity"),
            col("entity_id"),
            col("semantic"),
            col("changed_at"),
            col("kind"),
        );
        let (entity, semantic, kind) = (
            entity.as_string::<i32>(),
            semantic.as_string::<i32>(),
            kind.as_string::<i32>(),
        );
        let owner = owner.as_primitive::<Int64Type>();
        let at = at.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            if entity.value(i) == "deal"
                && kind.value(i) == "moved"
                && semantic.value(i) != "process"
            {
                let e = out.entry(owner.value(i)).or_insert(at.value(i));
                *e = (*e).max(at.value(i));
            }
        }
    }
    out
}

/// `crm.deal.list` rows. The amount is the account-currency one where the portal has it;
/// a deal is closed when `CLOSED` says so, at its last move to a final stage in
/// `closings` (`deal_closings`), else at `CLOSEDATE` (on an open deal that is only the
/// expected date).
pub fn deals(rows: &[Json], closings: &HashMap<i64, i64>) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("deals"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let Some(h) = head(r, "STAGE_ID", "deals", &mut unknowns) else {
            continue;
        };
        let sem = semantic(
            r["STAGE_SEMANTIC_ID"].as_str(),
            "deals.semantic",
            &mut unknowns,
        );
        let closed = wire::flag(&r["CLOSED"]).unwrap_or(sem != "process");
        let (amount, currency) = match wire::cents(&r["OPPORTUNITY_ACCOUNT"]) {
            Some(a) => (Value::Money(a), txt(&r["ACCOUNT_CURRENCY_ID"])),
            None => (money(&r["OPPORTUNITY"]), txt(&r["CURRENCY_ID"])),
        };
        let source = txt(&r["SOURCE_ID"]);
        let utm = utm(r);
        out.push_named(&[
            ("id", Value::Int(h.id)),
            ("title", Value::Text(&h.title)),
            (
                "pipeline_id",
                Value::Int(wire::id(&r["CATEGORY_ID"]).unwrap_or(0)),
            ),
            ("stage_id", Value::Text(&h.stage)),
            ("semantic", Value::Text(sem)),
            ("amount", amount),
            ("currency", opt_text(&currency)),
            ("assigned_id", Value::Int(h.assigned)),
            ("created_at", Value::Timestamp(h.created)),
            (
                "closed_at",
                match (closed, closings.get(&h.id)) {
                    (false, _) => Value::Null,
                    (true, Some(at)) => Value::Timestamp(*at),
                    (true, None) => ts(&r["CLOSEDATE"]),
                },
            ),
            ("modified_at", Value::Timestamp(h.modified)),
            ("company_id", reference(&r["COMPANY_ID"])),
            ("contact_id", reference(&r["CONTACT_ID"])),
            ("lead_id", reference(&r["LEAD_ID"])),
            ("source_id", opt_text(&source)),
            ("utm_source", opt_text(&utm[0])),
            ("utm_medium", opt_text(&utm[1])),
            ("utm_campaign", opt_text(&utm[2])),
            ("utm_content", opt_text(&utm[3])),
            ("utm_term", opt_text(&utm[4])),
        ])
        .map_err(|e| format!("deal {}: {e}", h.id))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.lead.list` rows; a lead is closed at `DATE_CLOSED` once its status is final.
pub fn leads(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("leads"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let Some(h) = head(r, "STATUS_ID", "leads", &mut unknowns) else {
            continue;
        };
        let sem = semantic(
            r["STATUS_SEMANTIC_ID"].as_str(),
            "leads.semantic",
            &mut unknowns,
        );
        let [currency, source, city, country] = [
            "CURRENCY_ID",
            "SOURCE_ID",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
        ]
        .map(|k| txt(&r[k]));
        let utm = utm(r);
        out.push_named(&[
            ("id", Value::Int(h.id)),
            ("title", Value::Text(&h.title)),
            ("status_id", Value::Text(&h.stage)),
            ("semantic", Value::Text(sem)),
            ("source_id", opt_text(&source)),
            ("assigned_id", Value::Int(h.assigned)),
            ("created_at", Value::Timestamp(h.created)),
            (
                "closed_at",
                if sem == "process" {
                    Value::Null
                } else {
                    ts(&r["DATE_CLOSED"])
                },
            ),
            ("modified_at", Value::Timestamp(h.modified)),
            ("amount", money(&r["OPPORTUNITY"])),
            ("currency", opt_text(&currency)),
            ("company_id", reference(&r["COMPANY_ID"])),
            ("contact_id", reference(&r["CONTACT_ID"])),
            ("city", opt_text(&city)),
            ("country", opt_text(&country)),
            ("utm_source", opt_text(&utm[0])),
            ("utm_medium", opt_text(&utm[1])),
            ("utm_campaign", opt_text(&utm[2])),
            ("utm_content", opt_text(&utm[3])),
            ("utm_term", opt_text(&utm[4])),
        ])
        .map_err(|e| format!("lead {}: {e}", h.id))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.activity.list` rows: `TYPE_ID` (1 meeting, 2 call, 3 task, 4 email) or the
/// provider (to-dos and comments) gives the kind, `DIRECTION` 1/2 in/out, the owner type
/// id the owner; activities of other owners (invoices, smart processes) are left out.
pub fn activities(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("activities"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(id), Some(owner), Some(responsible), Value::Timestamp(created)) = (
            wire::id(&r["ID"]),
            wire::id(&r["OWNER_ID"]),
            wire::id(&r["RESPONSIBLE_ID"]),
            ts(&r["CREATED"]),
        ) else {
            unknowns.note(
                "activities",
                "record without ID, OWNER_ID, RESPONSIBLE_ID or CREATED",
            );
            continue;
        };
        let owner_type = match wire::id(&r["OWNER_TYPE_ID"]) {
            Some(1) => "lead",
            Some(2) => "deal",
            Some(3) => "contact",
            Some(4) => "company",
            other => {
                let raw = other.map(|o| o.to_string()).unwrap_or_default();
                unknowns.note("activities.owner_type", &raw);
                continue;
            }
        };
        let provider = txt(&r["PROVIDER_ID"]).unwrap_or_default();
        let kind = match (wire::id(&r["TYPE_ID"]), provider.as_str()) {
            (Some(1), _) => "meeting",
            (Some(2), _) => "call",
            (Some(3), _) | (_, "CRM_TODO" | "TASKS_TASK") => "task",
            (Some(4), _) => "email",
            (_, "CRM_TIMELINE_COMMENT") => "comment",
            (t, p) => {
                unknowns.note(
                    "activities.kind",
                    &format!("TYPE_ID {} {p}", t.unwrap_or(0)),
                );
                "other"
            }
        };
        let direction = match wire::id(&r["DIRECTION"]) {
            Some(1) => Value::Text("in"),
            Some(2) => Value::Text("out"),
            _ => Value::Null,
        };
        let completed = wire::flag(&r["COMPLETED"]).unwrap_or(false);
        // Bitrix24 keeps no completion time: the last update of a completed activity is
        // the closest it says.
        let completed_at = if completed {
            ts(&r["LAST_UPDATED"])
        } else {
            Value::Null
        };
        let duration = match (wire::micros(&r["START_TIME"]), wire::micros(&r["END_TIME"])) {
            (Some(s), Some(e)) if matches!(kind, "call" | "meeting") && e >= s => {
                Value::Int((e - s) / 1_000_000)
            }
            _ => Value::Null,
        };
        out.push_named(&[
            ("id", Value::Int(id)),
            ("kind", Value::Text(kind)),
            ("direction", direction),
            ("owner_type", Value::Text(owner_type)),
            ("owner_id", Value::Int(owner)),
            ("responsible_id", Value::Int(responsible)),
            ("created_at", Value::Timestamp(created)),
            ("deadline", ts(&r["DEADLINE"])),
            ("completed", Value::Bool(completed)),
            ("completed_at", completed_at),
            ("duration_s", duration),
        ])
        .map_err(|e| format!("activity {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// `crm.timeline.comment.list` rows as activities of kind `comment`. Comments have ids of
/// their own, which may equal an activity's: they are kept apart as negative ids.
pub fn comments(rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("activities"));
    let mut unknowns = Unknowns::default();
    for r in rows {
        let (Some(id), Some(owner), Some(author), Some(created)) = (
            wire::id(&r["ID"]),
            wire::id(&r["ENTITY_ID"]),
            wire::id(&r["AUTHOR_ID"]),
            wire::micros(&r["CREATED"]),
        ) else {
            unknowns.note(
                "comments",
                "record without ID, ENTITY_ID, AUTHOR_ID or CREATED",
            );
            continue;
        };
        let owner_type = match txt(&r["ENTITY_TYPE"]).as_deref() {
            Some("lead") => "lead",
            Some("deal") => "deal",
            Some("contact") => "contact",
            Some("company") => "company",
            other => {
                unknowns.note("comments.entity_type", other.unwrap_or_default());
                continue;
            }
        };
        out.push_named(&[
            ("id", Value::Int(-id)),
            ("kind", Value::Text("comment")),
            ("owner_type", Value::Text(owner_type)),
            ("owner_id", Value::Int(owner)),
            ("responsible_id", Value::Int(author)),
            ("created_at", Value::Timestamp(created)),
            ("completed", Value::Bool(true)),
            ("completed_at", Value::Timestamp(created)),
        ])
        .map_err(|e| format!("comment {id}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

/// Custom fields (`UF_CRM_*`) as extra text columns after the canonical ones:
/// `fields` maps a field to its column. A list value (a multiple field) is joined with
/// `, `; an absent or empty one is null.
pub fn custom_columns(
    batch: RecordBatch,
    rows: &[Json],
    fields: &BTreeMap<String, String>,
) -> Result<RecordBatch, String> {
    if fields.is_empty() {
        return Ok(batch);
    }
    // Rows skipped by the mapping are not in the batch: match by id.
    let ids = batch
        .column_by_name("id")
        .ok_or("custom fields need an `id` column")?
        .as_primitive::<Int64Type>()
        .clone();
    let by_id: HashMap<i64, &Json> = rows
        .iter()
        .filter_map(|r| wire::id(&r["ID"]).map(|id| (id, r)))
        .collect();
    let mut schema: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (field, column) in fields {
        if schema.iter().any(|f| f.name() == column) {
            return Err(format!(
                "custom field {field}: column `{column}` is already a column of the table"
            ));
        }
        let mut b = StringBuilder::new();
        for id in ids.values() {
            let v = by_id.get(id).map(|r| &r[field.as_str()]);
            let text = match v {
                Some(Json::Array(items)) => {
                    let parts: Vec<String> = items.iter().filter_map(wire::text).collect();
                    (!parts.is_empty()).then(|| parts.join(", "))
                }
                Some(v) => txt(v),
                None => None,
            };
            b.append_option(text);
        }
        schema.push(Arc::new(Field::new(column, DataType::Utf8, true)));
        columns.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema)), columns).map_err(|e| e.to_string())
}

/// `crm.stagehistory.list` items of leads (`entity` = `lead`) or deals: `TYPE_ID` 1
/// creation, 2 and 3 a move, 5 a pipeline change.
pub fn stage_history(entity: &str, rows: &[Json]) -> Result<Mapped, String> {
    let mut out = TableBuilder::new(table("stage_history"));
    let mut unknowns = Unknowns::default();
    let (stage_key, semantic_key) = if entity == "lead" {
        ("STATUS_ID", "STATUS_SEMANTIC_ID")
    } else {
        ("STAGE_ID", "STAGE_SEMANTIC_ID")
    };
    for r in rows {
        let (Some(owner), Some(stage), Value::Timestamp(at)) = (
            wire::id(&r["OWNER_ID"]),
            txt(&r[stage_key]),
            ts(&r["CREATED_TIME"]),
        ) else {
            unknowns.note(
                "stage_history",
                "item without OWNER_ID, stage or CREATED_TIME",
            );
            continue;
        };
        let kind = match wire::id(&r["TYPE_ID"]) {
            Some(1) => "created",
            Some(2 | 3) => "moved",
            Some(5) => "pipeline_changed",
            other => {
                unknowns.note(
                    "stage_history.kind",
                    &other.map(|o| o.to_string()).unwrap_or_default(),
                );
                "moved"
            }
        };
        let sem = semantic(
            r[semantic_key].as_str(),
            "stage_history.semantic",
            &mut unknowns,
        );
        let pipeline = if entity == "lead" {
            Value::Null
        } else {
            opt_id(&r["CATEGORY_ID"])
        };
        out.push_named(&[
            ("entity", Value::Text(entity)),
            ("entity_id", Value::Int(owner)),
            ("pipeline_id", pipeline),
            ("stage_id", Value::Text(&stage)),
            ("semantic", Value::Text(sem)),
            ("changed_at", Value::Timestamp(at)),
            ("kind", Value::Text(kind)),
        ])
        .map_err(|e| format!("stage history of {entity} {owner}: {e}"))?;
    }
    Ok(Mapped {
        batch: out.finish(),
        unknowns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use arrow::datatypes::Decimal128Type;
    use serde_json::json;

    #[test]
    fn deals_from_the_documented_rows() {
        // crm.deal.list's documented reply (two of its rows), and crm.deal.get's open deal
        // with an expected CLOSEDATE.
        let rows = vec![
            json!({"ID": "37", "TITLE": "[A] Deal", "TYPE_ID": "COMPLEX", "CATEGORY_ID": "1",
                   "STAGE_ID": "C1:NEW", "OPPORTUNITY": "19999.99", "IS_MANUAL_OPPORTUNITY": "Y",
                   "ASSIGNED_BY_ID": "1", "DATE_CREATE": "2024-09-02T18:37:18+02:00"}),
            json!({"ID": "410", "TITLE": "Open", "CATEGORY_ID": "0", "STAGE_ID": "NEW",
                   "STAGE_SEMANTIC_ID": "P", "CLOSED": "N", "CURRENCY_ID": "EUR",
                   "OPPORTUNITY": "1000000.00", "ASSIGNED_BY_ID": "6", "SOURCE_ID": "CALLBACK",
                   "UTM_SOURCE": "google", "UTM_MEDIUM": "CPC", "COMPANY_ID": "9", "CONTACT_ID": "0",
                   "LEAD_ID": null, "DATE_CREATE": "2024-08-01T10:00:00+02:00",
                   "DATE_MODIFY": "2024-08-30T14:29:00+02:00", "CLOSEDATE": "2024-09-09T02:00:00+02:00"}),
            json!({"ID": 411, "TITLE": "Won", "CATEGORY_ID": 2, "STAGE_ID": "C2:WON",
                   "STAGE_SEMANTIC_ID": "S", "CLOSED": "Y", "OPPORTUNITY": 5000,
                   "OPPORTUNITY_ACCOUNT": "450000.00", "ACCOUNT_CURRENCY_ID": "RUB", "CURRENCY_ID": "EUR",
                   "ASSIGNED_BY_ID": 6, "DATE_CREATE": "2024-08-01T10:00:00+03:00",
                   "CLOSEDATE": "2024-09-09T12:00:00+03:00"}),
            json!({"ID": "412", "TITLE": "no stage", "ASSIGNED_BY_ID": "1", "DATE_CREATE": "2024-08-01T10:00:00+03:00"}),
        ];
        // Deal 411's history says it was won on September 5th, not the typed 9th.
        let history = [
            json!({"ID": 1, "TYPE_ID": 3, "OWNER_ID": 411, "STAGE_ID": "C2:LOSE", "CATEGORY_ID": 2,
                   "STAGE_SEMANTIC_ID": "F", "CREATED_TIME": "2024-09-01T12:00:00+03:00"}),
            json!({"ID": 2, "TYPE_ID": 2, "OWNER_ID": 411, "STAGE_ID": "C2:WORK", "CATEGORY_ID": 2,
                   "STAGE_SEMANTIC_ID": "P", "CREATED_TIME": "2024-09-03T12:00:00+03:00"}),
            json!({"ID": 3, "TYPE_ID": 3, "OWNER_ID": 411, "STAGE_ID": "C2:WON", "CATEGORY_ID": 2,
                   "STAGE_SEMANTIC_ID": "S", "CREATED_TIME": "2024-09-05T12:00:00+03:00"}),
        ];
        let closings = deal_closings(&[stage_history("deal", &history).unwrap().batch]);
        assert_eq!(closings.len(), 1);
        let m = deals(&rows, &closings).unwrap();
        let b = &m.batch;
        assert_eq!(b.num_rows(), 3);
        svodka_schema::check_table("deals", &b.schema(), std::slice::from_ref(b)).unwrap();
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let ids = col("id");
        assert_eq!(ids.as_primitive::<Int64Type>().values(), &[37, 410, 411]);
        let amount = col("amount");
        let amount = amount.as_primitive::<Decimal128Type>();
        assert_eq!(amount.values(), &[1_999_999, 100_000_000, 45_000_000]);
        assert_eq!(col("currency").as_string::<i32>().value(2), "RUB");
        assert_eq!(
            col("pipeline_id").as_primitive::<Int64Type>().values(),
            &[1, 0, 2]
        );
        assert_eq!(col("semantic").as_string::<i32>().value(2), "success");
        let closed = col("closed_at");
        let closed = closed.as_primitive::<TimestampMicrosecondType>();
        assert!(
            closed.is_null(0) && closed.is_null(1),
            "open deals have no closing"
        );
        assert_eq!(closed.value(2), 1_725_526_800_000_000);
        // Without history, the typed CLOSEDATE of a closed deal.
        let typed = deals(&rows, &Default::default()).unwrap();
        let typed = typed.batch.column_by_name("closed_at").unwrap().clone();
        assert_eq!(
            typed.as_primitive::<TimestampMicrosecondType>().value(2),
            1_725_872_400_000_000
        );
        let contact = col("contact_id");
        assert!(contact.is_null(1), "CONTACT_ID \"0\" is none");
        assert_eq!(col("company_id").as_primitive::<Int64Type>().value(1), 9);
        assert_eq!(col("utm_medium").as_string::<i32>().value(1), "CPC");
        // modified_at falls back to the creation time.
        assert_eq!(
            col("modified_at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            col("created_at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0)
        );
        assert_eq!(
            m.unknowns.lines(),
            ["deals \"record without ID, STAGE_ID, ASSIGNED_BY_ID or DATE_CREATE\": 1"]
        );
    }

    fn strings(b: &RecordBatch, column: &str) -> Vec<Option<String>> {
        let c = b.column_by_name(column).unwrap();
        let c = c.as_string::<i32>();
        (0..c.len())
            .map(|i| (!c.is_null(i)).then(|| c.value(i).to_string()))
            .collect()
    }

    #[test]
    fn directory_entities() {
        let d = departments(&[
            json!({"ID": "1", "NAME": "Компания", "SORT": 500}),
            json!({"ID": "15", "NAME": "R&D", "SORT": 500, "PARENT": "1"}),
        ])
        .unwrap();
        assert!(d.batch.column_by_name("parent_id").unwrap().is_null(0));
        let u = users(&[
            json!({"ID": "1", "ACTIVE": true, "NAME": "Анна", "LAST_NAME": "Петрова",
                               "UF_DEPARTMENT": [15], "WORK_POSITION": "Менеджер"}),
            json!({"ID": "2", "ACTIVE": false, "NAME": "Борис", "UF_DEPARTMENT": []}),
        ])
        .unwrap();
        assert_eq!(
            strings(&u.batch, "name"),
            [Some("Анна Петрова".into()), Some("Борис".into())]
        );
        assert_eq!(
            u.batch
                .column_by_name("department_id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            15
        );
        assert!(u.batch.column_by_name("department_id").unwrap().is_null(1));
        let p = pipelines(&[
            json!({"id": 9, "name": "Опт", "sort": 200, "entityTypeId": 2, "isDefault": "N"}),
            json!({"id": 0, "name": "General", "sort": 300, "entityTypeId": 2, "isDefault": "Y"}),
        ])
        .unwrap();
        assert_eq!(p.batch.num_rows(), 2);
        let (stages, sources) = dictionaries(&[
            json!({"ENTITY_ID": "STATUS", "STATUS_ID": "NEW", "NAME": "Не обработан", "SORT": "10", "SEMANTICS": null, "EXTRA": {"SEMANTICS": "process"}}),
            json!({"ENTITY_ID": "STATUS", "STATUS_ID": "JUNK", "NAME": "Некачественный", "SORT": "60", "SEMANTICS": "F"}),
            json!({"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "WON", "NAME": "Успешна", "SORT": "60", "EXTRA": {"SEMANTICS": "success"}}),
            json!({"ENTITY_ID": "DEAL_STAGE_1", "STATUS_ID": "C1:APOLOGY", "NAME": "Анализ причины", "SORT": "70", "EXTRA": {"SEMANTICS": "apology"}}),
            json!({"ENTITY_ID": "SOURCE", "STATUS_ID": "CALL", "NAME": "Звонок", "SORT": "10"}),
            json!({"ENTITY_ID": "DEAL_TYPE", "STATUS_ID": "SALE", "NAME": "Продажа", "SORT": "10"}),
        ])
        .unwrap();
        assert_eq!(
            strings(&stages.batch, "entity"),
            ["lead", "lead", "deal", "deal"].map(|s| Some(s.to_string()))
        );
        assert_eq!(
            strings(&stages.batch, "semantic"),
            ["process", "failure", "success", "failure"].map(|s| Some(s.to_string()))
        );
        let pipeline = stages.batch.column_by_name("pipeline_id").unwrap();
        assert!(pipeline.is_null(0));
        assert_eq!(pipeline.as_primitive::<Int64Type>().value(3), 1);
        assert_eq!(strings(&sources.batch, "id"), [Some("CALL".to_string())]);
        let mut c = companies(&[
            json!({"ID": "3027", "TITLE": "Crossroads", "DATE_CREATE": "2024-02-26T00:00:00+02:00"}),
            json!({"ID": "3028", "TITLE": "No INN", "DATE_CREATE": "2024-02-26T00:00:00+02:00"}),
        ])
        .unwrap();
        let inn = company_inns(&[
            json!({"ENTITY_TYPE_ID": "4", "ENTITY_ID": "3027", "ID": "42", "RQ_INN": "7700000000"}),
            json!({"ENTITY_TYPE_ID": "4", "ENTITY_ID": "3027", "ID": "40", "RQ_INN": "1717586110"}),
            json!({"ENTITY_TYPE_ID": "3", "ENTITY_ID": "3028", "ID": "41", "RQ_INN": "000000000000"}),
        ]);
        c.batch = with_inns(c.batch, &inn).unwrap();
        assert_eq!(strings(&c.batch, "inn"), [Some("1717586110".into()), None]);
        let k = contacts(&[json!({"ID": "75", "NAME": "Anastasia", "ASSIGNED_BY_ID": "6",
                                  "DATE_CREATE": "2024-02-26T00:00:00+02:00", "COMPANY_ID": "3027"})])
        .unwrap();
        assert_eq!(
            k.batch
                .column_by_name("company_id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            3027
        );
        for (name, m) in [
            ("departments", &d),
            ("users", &u),
            ("pipelines", &p),
            ("stages", &stages),
            ("sources", &sources),
            ("companies", &c),
            ("contacts", &k),
        ] {
            svodka_schema::check_table(name, &m.batch.schema(), std::slice::from_ref(&m.batch))
                .unwrap();
        }
    }

    #[test]
    fn leads_with_statuses_and_closing() {
        let rows = vec![
            json!({"ID": "1", "TITLE": "Сайт", "STATUS_ID": "CONVERTED", "STATUS_SEMANTIC_ID": "S",
                   "SOURCE_ID": "WEB", "ASSIGNED_BY_ID": "3", "OPPORTUNITY": "15000.00", "CURRENCY_ID": "RUB",
                   "DATE_CREATE": "2024-04-01T10:00:00+03:00", "DATE_CLOSED": "2024-04-03T10:00:00+03:00",
                   "UTM_SOURCE": "yandex", "COMPANY_ID": "0"}),
            json!({"ID": "2", "TITLE": "Звонок", "STATUS_ID": "IN_PROCESS", "STATUS_SEMANTIC_ID": "P",
                   "ASSIGNED_BY_ID": "3", "DATE_CREATE": "2024-04-02T10:00:00+03:00",
                   "DATE_CLOSED": "2024-04-09T10:00:00+03:00", "OPPORTUNITY": ""}),
            json!({"ID": "3", "STATUS_ID": "NEW", "STATUS_SEMANTIC_ID": "X", "ASSIGNED_BY_ID": "3",
                   "DATE_CREATE": "2024-04-02T11:00:00+03:00"}),
        ];
        let m = leads(&rows).unwrap();
        let b = &m.batch;
        svodka_schema::check_table("leads", &b.schema(), std::slice::from_ref(b)).unwrap();
        assert_eq!(b.num_rows(), 3);
        let closed = b.column_by_name("closed_at").unwrap();
        assert!(!closed.is_null(0) && closed.is_null(1) && closed.is_null(2));
        assert!(b.column_by_name("amount").unwrap().is_null(1));
        assert!(b.column_by_name("company_id").unwrap().is_null(0));
        assert_eq!(
            b.column_by_name("semantic")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "success"
        );
        assert_eq!(m.unknowns.lines(), ["leads.semantic \"X\": 1"]);
    }

    #[test]
    fn activities_kinds_directions_and_owners() {
        let base = json!({"ID": "20", "OWNER_ID": "15", "OWNER_TYPE_ID": "3", "TYPE_ID": "2",
            "PROVIDER_ID": "VOXIMPLANT_CALL", "CREATED": "2020-09-27T13:26:55+03:00",
            "LAST_UPDATED": "2021-03-21T20:28:24+03:00", "START_TIME": "2020-09-27T13:25:00+03:00",
            "END_TIME": "2020-09-27T13:30:00+03:00", "DEADLINE": "2020-09-27T13:25:00+03:00",
            "COMPLETED": "Y", "RESPONSIBLE_ID": "505", "DIRECTION": "2"});
        let with = |patch: serde_json::Value| {
            let mut r = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        let rows = vec![
            base.clone(),
            with(
                json!({"ID": "21", "TYPE_ID": "6", "PROVIDER_ID": "CRM_TODO", "COMPLETED": "N", "DIRECTION": "0", "OWNER_TYPE_ID": "2"}),
            ),
            with(json!({"ID": "22", "TYPE_ID": "4", "DIRECTION": "1", "OWNER_TYPE_ID": "1"})),
            with(
                json!({"ID": "23", "TYPE_ID": "6", "PROVIDER_ID": "NEW_THING", "OWNER_TYPE_ID": "4"}),
            ),
            with(json!({"ID": "24", "OWNER_TYPE_ID": "31"})),
        ];
        let m = activities(&rows).unwrap();
        let b = &m.batch;
        assert_eq!(b.num_rows(), 4);
        let s = |n: &str, i: usize| {
            let c = b.column_by_name(n).unwrap();
            if c.is_null(i) {
                None
            } else {
                Some(c.as_string::<i32>().value(i).to_string())
            }
        };
        assert_eq!(
            [s("kind", 0), s("kind", 1), s("kind", 2), s("kind", 3)].map(|k| k.unwrap()),
            ["call", "task", "email", "other"]
        );
        assert_eq!(
            [s("direction", 0), s("direction", 1), s("direction", 2)],
            [Some("out".into()), None, Some("in".into())]
        );
        assert_eq!(
            [
                s("owner_type", 0),
                s("owner_type", 1),
                s("owner_type", 2),
                s("owner_type", 3)
            ]
            .map(|k| k.unwrap()),
            ["contact", "deal", "lead", "company"]
        );
        let dur = b.column_by_name("duration_s").unwrap();
        assert_eq!(dur.as_primitive::<Int64Type>().value(0), 300);
        assert!(b.column_by_name("completed_at").unwrap().is_null(1));
        assert_eq!(
            m.unknowns.lines(),
            [
                "activities.kind \"TYPE_ID 6 NEW_THING\": 1",
                "activities.owner_type \"31\": 1"
            ]
        );
    }

    #[test]
    fn stage_history_of_leads_and_deals() {
        let deals = vec![
            json!({"ID": 35, "TYPE_ID": 1, "OWNER_ID": 21, "CATEGORY_ID": 0, "STAGE_ID": "NEW",
                   "STAGE_SEMANTIC_ID": "P", "CREATED_TIME": "2024-04-01T10:00:00+03:00"}),
            json!({"ID": 36, "TYPE_ID": 3, "OWNER_ID": 21, "CATEGORY_ID": 0, "STAGE_ID": "WON",
                   "STAGE_SEMANTIC_ID": "S", "CREATED_TIME": "2024-04-05T10:00:00+03:00"}),
            json!({"ID": 37, "TYPE_ID": 5, "OWNER_ID": 21, "CATEGORY_ID": 1, "STAGE_ID": "C1:NEW",
                   "STAGE_SEMANTIC_ID": "P", "CREATED_TIME": "2024-04-06T10:00:00+03:00"}),
        ];
        let m = stage_history("deal", &deals).unwrap();
        let b = &m.batch;
        let kinds: Vec<&str> = (0..3)
            .map(|i| {
                b.column_by_name("kind")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i)
            })
            .collect();
        assert_eq!(kinds, ["created", "moved", "pipeline_changed"]);
        assert_eq!(
            b.column_by_name("semantic")
                .unwrap()
                .as_string::<i32>()
                .value(1),
            "success"
        );
        let leads = vec![
            json!({"ID": 1, "TYPE_ID": 2, "OWNER_ID": 7, "STATUS_ID": "JUNK",
                                "STATUS_SEMANTIC_ID": "F", "CREATED_TIME": "2024-04-02T10:00:00+03:00"}),
        ];
        let m = stage_history("lead", &leads).unwrap();
        assert!(m.batch.column_by_name("pipeline_id").unwrap().is_null(0));
        assert_eq!(
            m.batch
                .column_by_name("semantic")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "failure"
        );
    }
}
