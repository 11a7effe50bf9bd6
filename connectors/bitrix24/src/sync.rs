//! A sync: the portal's lists read into the spool (fast export in batches, the small
//! lists by offset, timeline comments per item), made into canonical tables — whole, or
//! merged into the current snapshot's — and written as a new snapshot, with the tables
//! that are not Bitrix24's (plans, 1C) carried over unchanged.
//!
//! Incremental: records modified since the last sync's start (less an overlap, for
//! clocks and commits running late), stage history after the last history id; deleted
//! records found by a periodic sweep of ids; history older than the retention dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::{concat_batches, filter_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::{Months, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use svodka_config::{Clock, DatasetInfo};
use svodka_store::{Snapshot, Store};

use crate::Error;
use crate::batch::{self, ListCall, MAX_COMMANDS, PAGE};
use crate::map::{self, Mapped, Unknowns};
use crate::portal::Portal;
use crate::spool::Spool;
use crate::wire::{self, ApiError, ErrorKind, Reply};

/// The canonical tables a sync writes; every other table of the store is carried over.
pub const TABLES: &[&str] = svodka_schema::CRM_TABLES;

/// The sync state kept in each snapshot a sync writes.
pub const STATE_FILE: &str = "bitrix24.json";
/// The spool's folder inside the store.
pub const SPOOL_DIR: &str = "bitrix24.sync";
/// Tables whose custom fields can become columns.
pub const CUSTOM_FIELD_TABLES: &[&str] = &["deals", "leads", "companies", "contacts"];

/// What a sync needs to know beyond the portal.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The portal (its host), to tell one portal's state from another's.
    pub portal: String,
    /// Read everything again, whatever the last sync left.
    pub full: bool,
    /// Read timeline comments of companies, contacts, leads and deals (one subquery per
    /// item: see the docs).
    pub comments: bool,
    /// Records modified this long before the last sync's start are read again.
    pub overlap: Duration,
    /// Ids are swept for deletions when the last sweep is older than this.
    pub sweep_every: Duration,
    /// Months of activities and stage history kept; `None` keeps all.
    pub retention_months: Option<u32>,
    /// Per table (`deals`, `leads`, `companies`, `contacts`): custom field → column.
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
    /// Snapshots kept in the store.
    pub keep: usize,
    /// List pages per `batch` call (1–50): fewer spend less of the portal's operating
    /// time per call.
    pub pages_per_batch: usize,
    /// The data set's name and time zone when the store has none yet.
    pub name: String,
    pub timezone: String,
    pub portal_url: Option<String>,
    /// "Now" for the retention cut-off and the sweep's age (the portal's own clock dates
    /// the snapshot and the watermark).
    pub clock: Clock,
}

impl SyncOptions {
    pub fn new(portal: &str) -> SyncOptions {
        SyncOptions {
            portal: portal.to_string(),
            full: false,
            comments: false,
            overlap: Duration::from_secs(600),
            sweep_every: Duration::from_secs(24 * 3600),
            retention_months: None,
            fields: BTreeMap::new(),
            keep: 3,
            pages_per_batch: MAX_COMMANDS,
            name: portal.to_string(),
            timezone: svodka_schema::values::DEFAULT_TIMEZONE.to_string(),
            portal_url: None,
            clock: Clock::System,
        }
    }
}

/// What a snapshot written by a sync remembers for the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    pub portal: String,
    /// The portal's clock when the sync began (unix seconds).
    pub watermark: f64,
    /// The portal's clock when the last sync that swept ids (or read all) began.
    pub swept: f64,
    /// Per entity (`lead`, `deal`): the last stage-history id read.
    pub history_after: BTreeMap<String, i64>,
    pub comments: bool,
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
    pub retention_months: Option<u32>,
}

/// What a sync reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// Rows of a list read so far, of how many (when the portal counted them).
    Rows {
        list: &'a str,
        rows: u64,
        total: Option<u64>,
        done: bool,
    },
    /// A step without rows (counting, building tables, writing the snapshot).
    Step(&'a str),
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The snapshot written.
    pub snapshot: String,
    pub full: bool,
    pub swept: bool,
    /// Rows read from the portal by this run, and rows found in the spool of a run that died.
    pub rows_read: u64,
    pub resumed_rows: u64,
    /// HTTP requests of this run.
    pub requests: u64,
    /// Rows per table written.
    pub tables: Vec<(String, u64)>,
    /// Per table: rows read as new or changed, and rows removed as deleted.
    pub changed: Vec<(String, u64)>,
    pub deleted: Vec<(String, u64)>,
    /// What did not map as is (`deals.semantic "X": 3`).
    pub unknowns: Vec<String>,
    pub seconds: f64,
}

/// A list read by fast export into the spool.
struct Fast {
    list: &'static str,
    call: ListCall,
}

const UTM: [&str; 5] = [
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
];

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// The fields read of each list (only what the mapping needs, as the portal advises).
fn select_of(list: &str) -> Vec<String> {
    let mut s = match list {
        "companies" => strings(&[
            "TITLE",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
            "DATE_CREATE",
            "DATE_MODIFY",
        ]),
        "contacts" => strings(&[
            "NAME",
            "LAST_NAME",
            "COMPANY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
        ]),
        "leads" => strings(&[
            "TITLE",
            "STATUS_ID",
            "STATUS_SEMANTIC_ID",
            "SOURCE_ID",
            "ASSIGNED_BY_ID",
            "DATE_CREATE",
            "DATE_CLOSED",
            "DATE_MODIFY",
            "OPPORTUNITY",
            "CURRENCY_ID",
            "COMPANY_ID",
            "CONTACT_ID",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
        ]),
        "deals" => strings(&[
            "TITLE",
            "CATEGORY_ID",
            "STAGE_ID",
            "STAGE_SEMANTIC_ID",
            "CLOSED",
            "OPPORTUNITY",
            "CURRENCY_ID",
            "OPPORTUNITY_ACCOUNT",
            "ACCOUNT_CURRENCY_ID",
            "ASSIGNED_BY_ID",
            "DATE_CREATE",
            "CLOSEDATE",
            "DATE_MODIFY",
            "COMPANY_ID",
            "CONTACT_ID",
            "LEAD_ID",
            "SOURCE_ID",
        ]),
        "activities" => strings(&[
            "OWNER_ID",
            "OWNER_TYPE_ID",
            "TYPE_ID",
            "PROVIDER_ID",
            "DIRECTION",
            "CREATED",
            "LAST_UPDATED",
            "START_TIME",
            "END_TIME",
            "DEADLINE",
            "COMPLETED",
            "RESPONSIBLE_ID",
        ]),
        "requisites" => strings(&["ENTITY_TYPE_ID", "ENTITY_ID", "RQ_INN"]),
        "lead_history" => strings(&[
            "TYPE_ID",
            "OWNER_ID",
            "CREATED_TIME",
            "STATUS_ID",
            "STATUS_SEMANTIC_ID",
        ]),
        "deal_history" => strings(&[
            "TYPE_ID",
            "OWNER_ID",
            "CREATED_TIME",
            "CATEGORY_ID",
            "STAGE_ID",
            "STAGE_SEMANTIC_ID",
        ]),
        _ => vec![],
    };
    if matches!(list, "leads" | "deals") {
        s.extend(strings(&UTM));
    }
    s
}

/// The lists that are swept for deleted ids, with the table they belong to.
const SWEPT: &[(&str, &str)] = &[
    ("companies", "crm.company.list"),
    ("contacts", "crm.contact.list"),
    ("leads", "crm.lead.list"),
    ("deals", "crm.deal.list"),
    ("activities", "crm.activity.list"),
];

/// The lists whose items have timeline comments, and each item's `ENTITY_TYPE`.
const COMMENTED: [(&str, &str); 4] = [
    ("companies", "company"),
    ("contacts", "contact"),
    ("leads", "lead"),
    ("deals", "deal"),
];

/// The lists read by offset, all at once.
const DIRECTORY: &[(&str, &str, &str)] = &[
    ("departments", "department.get", "START"),
    ("users", "user.get", "start"),
    ("pipelines", "crm.category.list", "start"),
    ("dictionaries", "crm.status.list", "start"),
];

/// A moment as the portal writes it: `2026-11-27T09:30:00+03:00`.
fn wire_time(unix: f64, tz: chrono_tz::Tz) -> String {
    tz.timestamp_opt(unix.floor() as i64, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default()
}

/// The plan of one run: what is read, and how it is merged.
struct Scope {
    full: bool,
    sweep: bool,
    base: Option<SyncState>,
    /// The first microsecond of kept history, under a retention.
    cutoff: Option<i64>,
    fast: Vec<Fast>,
}

fn plan(
    current: Option<&Snapshot>,
    options: &SyncOptions,
    tz: chrono_tz::Tz,
    now: f64,
) -> Result<Scope, Error> {
    for (table, fields) in &options.fields {
        if !CUSTOM_FIELD_TABLES.contains(&table.as_str()) {
            return Err(Error::Settings(format!(
                "custom fields of `{table}`: only {} have them",
                CUSTOM_FIELD_TABLES.join(", ")
            )));
        }
        for (field, column) in fields {
            if !field.starts_with("UF_") {
                return Err(Error::Settings(format!(
                    "custom field `{field}` of `{table}`: custom fields start with UF_"
                )));
            }
            let canonical = svodka_schema::table(table).and_then(|t| t.column(column));
            if canonical.is_some()
                || column.is_empty()
                || !column
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(Error::Settings(format!(
                    "custom field `{field}` of `{table}`: `{column}` must be a new column \
                     name of lower-case letters, digits and _"
                )));
            }
        }
    }
    let base = current
        .and_then(|s| s.file(STATE_FILE))
        .and_then(|b| serde_json::from_slice::<SyncState>(&b).ok())
        .filter(|b| {
            b.portal == options.portal
                && b.comments == options.comments
                && b.fields == options.fields
                && b.retention_months == options.retention_months
        });
    let full = options.full || base.is_none();
    // A zero interval sweeps now, whatever the clock says (it may be pinned before the
    // portal's own clock that dated the last sweep).
    let sweep = !full
        && base.as_ref().is_some_and(|b| {
            options.sweep_every.is_zero() || now - b.swept >= options.sweep_every.as_secs_f64()
        });
    let cutoff = options.retention_months.map(|m| {
        let today = tz
            .timestamp_opt(now as i64, 0)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let first = today.checked_sub_months(Months::new(m)).unwrap_or(today);
        tz.from_local_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|t| t.timestamp_micros())
            .unwrap_or(0)
    });
    let since = base
        .as_ref()
        .filter(|_| !full)
        .map(|b| wire_time(b.watermark - options.overlap.as_secs_f64(), tz));
    let kept_from = cutoff.map(|c| wire_time((c / 1_000_000) as f64, tz));
    let list = |list: &'static str, method: &str, params: &[(&str, &str)]| {
        let mut call = ListCall {
            method: method.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            select: select_of(list),
            ..Default::default()
        };
        if let Some(fields) = options.fields.get(list) {
            call.select.extend(fields.keys().cloned());
        }
        Fast { list, call }
    };
    let mut fast = vec![{
        let mut f = list("requisites", "crm.requisite.list", &[]);
        f.call.filter.push(("ENTITY_TYPE_ID".into(), "4".into()));
        f
    }];
    for (name, method, modified) in [
        ("companies", "crm.company.list", "DATE_MODIFY"),
        ("contacts", "crm.contact.list", "DATE_MODIFY"),
        ("leads", "crm.lead.list", "DATE_MODIFY"),
        ("deals", "crm.deal.list", "DATE_MODIFY"),
        ("activities", "crm.activity.list", "LAST_UPDATED"),
    ] {
        let mut f = list(name, method, &[]);
        if let Some(since) = &since {
            f.call.filter.push((format!(">={modified}"), since.clone()));
        }
        if name == "activities"
            && let Some(from) = &kept_from
        {
            f.call.filter.push((">=CREATED".into(), from.clone()));
        }
        fast.push(f);
    }
    for (name, type_id) in [("lead_history", "1"), ("deal_history", "2")] {
        let mut f = list(name, "crm.stagehistory.list", &[("entityTypeId", type_id)]);
        f.call.nested = Some("items".into());
        if let Some(from) = &kept_from {
            f.call.filter.push((">=CREATED_TIME".into(), from.clone()));
        }
        fast.push(f);
    }
    if sweep {
        for (name, method) in SWEPT {
            let list: &'static str = match *name {
                "companies" => "companies.ids",
                "contacts" => "contacts.ids",
                "leads" => "leads.ids",
                "deals" => "deals.ids",
                _ => "activities.ids",
            };
            fast.push(Fast {
                list,
                call: ListCall {
                    method: method.to_string(),
                    ..Default::default()
                },
            });
        }
    }
    Ok(Scope {
        full,
        sweep,
        base,
        cutoff,
        fast,
    })
}

impl Scope {
    /// Where each list starts: history after the last id read, the rest from the start.
    fn starts(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .fast
            .iter()
            .map(|f| {
                let after = match (f.list, &self.base) {
                    ("lead_history", Some(b)) if !self.full => b.history_after.get("lead"),
                    ("deal_history", Some(b)) if !self.full => b.history_after.get("deal"),
                    _ => None,
                };
                (f.list.to_string(), after.copied().unwrap_or(0))
            })
            .collect();
        out.extend(DIRECTORY.iter().map(|(l, _, _)| (l.to_string(), 0)));
        out.push(("comments".to_string(), 0));
        out
    }

    /// Names what this run reads, so that only a spool of the same plan is resumed.
    fn fingerprint(&self, current: Option<&Snapshot>, options: &SyncOptions) -> String {
        json!({
            "full": self.full,
            "sweep": self.sweep,
            "base": current.map(|s| s.name.clone()),
            "portal": options.portal,
            "comments": options.comments,
            "fields": options.fields,
            "retention_months": options.retention_months,
        })
        .to_string()
    }
}

/// Calls `batch` and reads its reply, retrying a batch whose subquery hit a rate or time
/// limit (the HTTP call itself succeeded, so the client did not retry it).
fn batch_call<T>(
    client: &mut Portal,
    body: &Value,
    read: impl Fn(&Reply) -> Result<T, ApiError>,
) -> Result<(T, Reply), Error> {
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let reply = client.call("batch", body)?;
        match read(&reply) {
            Ok(t) => return Ok((t, reply)),
            Err(e)
                if attempt < client.attempts
                    && matches!(
                        e.kind,
                        ErrorKind::RateLimited | ErrorKind::TimeLimited | ErrorKind::Transient
                    ) =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(60));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs one sync of `store` from the portal behind `client`.
pub fn sync(
    client: &mut Portal,
    store: &Store,
    options: &SyncOptions,
    progress: &mut dyn FnMut(Event),
) -> Result<Outcome, Error> {
    let begun = Instant::now();
    let requests_before = client.requests;
    let tz = svodka_schema::values::zone(&options.timezone).map_err(Error::Settings)?;
    let current = store.current_if_any()?;
    let plan = plan(current.as_ref(), options, tz, options.clock.unix())?;
    let mut spool = Spool::open(
        &store.dir.join(SPOOL_DIR),
        &plan.fingerprint(current.as_ref(), options),
        &plan.starts(),
    )?;
    let resumed_rows = spool.resumed_rows;

    progress(Event::Step("counting"));
    let totals = count(client, &mut spool, &plan, options.clock)?;
    export_directory(client, &mut spool, progress)?;
    for f in &plan.fast {
        let total = totals.get(f.list).copied();
        export_fast(
            client,
            &mut spool,
            f,
            total,
            options.pages_per_batch,
            progress,
        )?;
    }
    // The items whose comments this sync reads (and whose stored comments it replaces).
    let commented = if options.comments {
        comment_owners(&spool, &plan)?
    } else {
        Vec::new()
    };
    if options.comments {
        export_comments(client, &mut spool, &commented, progress)?;
    }
    spool.state.requests += client.requests - requests_before;
    spool.save()?;

    progress(Event::Step("building tables"));
    let started = spool.state.started.unwrap_or_else(|| options.clock.unix());
    let built = build(&spool, current.as_ref(), &plan, options, &commented)?;

    progress(Event::Step("writing the snapshot"));
    let mut writer = store.begin(&format!("bitrix24 sync {}", options.portal))?;
    let mut tables = Vec::new();
    for (name, schema, batches) in &built.tables {
        let rows = writer.table(name, schema.clone(), batches)?;
        tables.push((name.clone(), rows));
    }
    tables.extend(writer.carry_rest(current.as_ref())?);
    let state = SyncState {
        portal: options.portal.clone(),
        watermark: started,
        swept: if plan.full || plan.sweep {
            started
        } else {
            plan.base.as_ref().map(|b| b.swept).unwrap_or(started)
        },
        history_after: [
            ("lead".to_string(), spool.list("lead_history").after),
            ("deal".to_string(), spool.list("deal_history").after),
        ]
        .into(),
        comments: options.comments,
        fields: options.fields.clone(),
        retention_months: options.retention_months,
    };
    writer.file(
        STATE_FILE,
        serde_json::to_string_pretty(&state)
            .expect("plain struct serialises")
            .as_bytes(),
    )?;
    let info = dataset(current.as_ref(), options, tz, started);
    let snapshot = writer.commit(Some(&info), options.keep)?;
    let rows_read = spool.state.lists.values().map(|l| l.rows).sum::<u64>() - resumed_rows;
    spool.remove()?;
    Ok(Outcome {
        snapshot: snapshot.name,
        full: plan.full,
        swept: plan.sweep,
        rows_read,
        resumed_rows,
        requests: client.requests - requests_before,
        tables,
        changed: built.changed,
        deleted: built.deleted,
        unknowns: built.unknowns.lines(),
        seconds: begun.elapsed().as_secs_f64(),
    })
}

/// The data set's description: the store's, with the sync's day as its date.
fn dataset(
    current: Option<&Snapshot>,
    options: &SyncOptions,
    tz: chrono_tz::Tz,
    at: f64,
) -> DatasetInfo {
    let day = tz
        .timestamp_opt(at as i64, 0)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    svodka_store::synced_info(
        current,
        || DatasetInfo {
            name: options.name.clone(),
            timezone: options.timezone.clone(),
            portal_url: options.portal_url.clone(),
            snapshot_date: day,
            origin: None,
            links: Default::default(),
        },
        day,
        &format!("bitrix24 sync {}", options.portal),
        &svodka_config::bitrix24::links(),
    )
}

/// One batch counting what each unfinished list will read (for the progress' ETA); its
/// reply also gives the portal's clock at the start of the sync.
fn count(
    client: &mut Portal,
    spool: &mut Spool,
    plan: &Scope,
    clock: Clock,
) -> Result<HashMap<&'static str, u64>, Error> {
    let mut cmd = Map::new();
    for f in plan.fast.iter().filter(|f| !spool.list(f.list).done) {
        let mut call = f.call.clone();
        call.select = vec!["ID".into()];
        let after = spool.list(f.list).after;
        if after > 0 {
            call.filter.push((">ID".into(), after.to_string()));
        }
        cmd.insert(f.list.to_string(), Value::String(call.page("start", 0)));
    }
    if cmd.is_empty() && spool.state.started.is_some() {
        return Ok(HashMap::new());
    }
    if cmd.is_empty() {
        cmd.insert("time".into(), Value::String("user.current".into()));
    }
    let body = json!({"halt": 0, "cmd": cmd});
    let (totals, reply) = batch_call(client, &body, |reply| {
        let mut out = HashMap::new();
        for f in &plan.fast {
            if let Some((_, Some(total))) = cmd
                .contains_key(f.list)
                .then(|| batch::read_page(reply, f.list))
                .transpose()?
            {
                out.insert(f.list, total);
            }
        }
        Ok(out)
    })?;
    if spool.state.started.is_none() {
        spool.state.started = Some(reply.started.unwrap_or_else(|| clock.unix()));
        spool.save()?;
    }
    Ok(totals)
}

/// Users, departments, pipelines and the dictionaries: small lists read by offset, the
/// first pages of all in one batch, the rest (if any) in the next.
fn export_directory(
    client: &mut Portal,
    spool: &mut Spool,
    progress: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    if DIRECTORY.iter().all(|(l, _, _)| spool.list(l).done) {
        return Ok(());
    }
    let call = |method: &str| ListCall {
        method: method.to_string(),
        params: if method == "crm.category.list" {
            vec![("entityTypeId".into(), "2".into())]
        } else {
            vec![]
        },
        ..Default::default()
    };
    let mut rows: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    // (list, offset) pages still to read.
    let mut pending: Vec<(&str, u64)> = DIRECTORY.iter().map(|(l, _, _)| (*l, 0)).collect();
    while !pending.is_empty() {
        let take: Vec<(&str, u64)> = pending.drain(..pending.len().min(MAX_COMMANDS)).collect();
        let mut cmd = Map::new();
        for (list, offset) in &take {
            let (_, method, start_key) = DIRECTORY
                .iter()
                .find(|(l, _, _)| l == list)
                .expect("a directory list");
            cmd.insert(
                format!("{list}_{offset}"),
                Value::String(call(method).page(start_key, *offset)),
            );
        }
        let body = json!({"halt": 0, "cmd": cmd});
        let (pages, _) = batch_call(client, &body, |reply| {
            take.iter()
                .map(|(list, offset)| batch::read_page(reply, &format!("{list}_{offset}")))
                .collect::<Result<Vec<_>, _>>()
        })?;
        for ((list, offset), (page, total)) in take.iter().zip(pages) {
            let full = page.len() >= PAGE;
            rows.entry(list).or_default().extend(page);
            if *offset == 0 {
                match total {
                    Some(total) => pending.extend(
                        (1..)
                            .map(|k| k * PAGE as u64)
                            .take_while(|o| *o < total)
                            .map(|o| (*list, o)),
                    ),
                    None if full => pending.push((list, PAGE as u64)),
                    None => {}
                }
            } else if total.is_none() && full {
                pending.push((list, offset + PAGE as u64));
            }
        }
    }
    for (list, _, _) in DIRECTORY {
        let r = rows.remove(list).unwrap_or_default();
        spool.append(list, &r, 0, true)?;
        progress(Event::Rows {
            list,
            rows: r.len() as u64,
            total: Some(r.len() as u64),
            done: true,
        });
    }
    Ok(())
}

/// One list by fast export: batches of 50 linked pages until a short page.
fn export_fast(
    client: &mut Portal,
    spool: &mut Spool,
    f: &Fast,
    total: Option<u64>,
    pages_per_batch: usize,
    progress: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let mut state = spool.list(f.list);
    let already = state.rows;
    while !state.done {
        // No more pages than the count says are left (and one to see the end): pages
        // linked past the end cost the portal a scan each.
        let left = total.map(|t| t.saturating_sub(state.rows - already));
        let pages = left
            .map(|l| l as usize / PAGE + 1)
            .unwrap_or(MAX_COMMANDS)
            .clamp(1, pages_per_batch.clamp(1, MAX_COMMANDS));
        let body = f.call.batch(state.after, pages);
        let after = state.after;
        let (pages, _) = batch_call(client, &body, |reply| {
            batch::read_pages(reply, after, pages)
        })?;
        let last = pages
            .rows
            .last()
            .and_then(|r| wire::id(&r["ID"]))
            .unwrap_or(after);
        spool.append(
            f.list,
            &pages.rows,
            pages.next_after.unwrap_or(last),
            pages.next_after.is_none(),
        )?;
        state = spool.list(f.list);
        progress(Event::Rows {
            list: f.list,
            rows: state.rows,
            total: total.map(|t| t + already),
            done: state.done,
        });
    }
    Ok(())
}

/// The CRM items whose timeline comments a sync reads: every company, contact, lead and
/// deal it read, and on a sweep every item that still exists (a comment does not change
/// its item's `DATE_MODIFY`, so an incremental sync alone would miss it until the item
/// next changes). In a fixed order, so that a resumed sync continues where it stopped.
fn comment_owners(spool: &Spool, plan: &Scope) -> Result<Vec<(&'static str, i64)>, Error> {
    let mut items = Vec::new();
    for (list, entity) in COMMENTED {
        let mut ids: std::collections::BTreeSet<i64> = ids_read(spool, list)?.into_iter().collect();
        if plan.sweep {
            ids.extend(ids_read(spool, &format!("{list}.ids"))?);
        }
        items.extend(ids.into_iter().map(|id| (entity, id)));
    }
    Ok(items)
}

/// Timeline comments of the items `comment_owners` names: one subquery per item (the
/// method lists one item's comments only), 50 items a request.
fn export_comments(
    client: &mut Portal,
    spool: &mut Spool,
    items: &[(&str, i64)],
    progress: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let mut state = spool.list("comments");
    let total = items.len() as u64;
    while !state.done {
        let from = state.after as usize;
        let chunk = &items[from.min(items.len())..(from + MAX_COMMANDS).min(items.len())];
        let mut rows = Vec::new();
        let mut pending: Vec<(&str, i64, u64)> = chunk.iter().map(|(e, id)| (*e, *id, 0)).collect();
        while !pending.is_empty() {
            let take: Vec<_> = pending.drain(..pending.len().min(MAX_COMMANDS)).collect();
            let mut cmd = Map::new();
            for (k, (entity, id, start)) in take.iter().enumerate() {
                let call = ListCall {
                    method: "crm.timeline.comment.list".into(),
                    params: vec![("order[ID]".into(), "ASC".into())],
                    select: strings(&["ENTITY_ID", "ENTITY_TYPE", "CREATED", "AUTHOR_ID"]),
                    filter: vec![
                        ("ENTITY_ID".into(), id.to_string()),
                        ("ENTITY_TYPE".into(), entity.to_string()),
                    ],
                    nested: None,
                };
                cmd.insert(format!("c{k}"), Value::String(call.page("start", *start)));
            }
            let body = json!({"halt": 0, "cmd": cmd});
            let (pages, _) = batch_call(client, &body, |reply| {
                (0..take.len())
                    .map(|k| batch::read_page(reply, &format!("c{k}")))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            for ((entity, id, start), (page, _)) in take.iter().zip(pages) {
                if page.len() >= PAGE {
                    pending.push((entity, *id, start + PAGE as u64));
                }
                rows.extend(page);
            }
        }
        let done_items = from + chunk.len();
        spool.append(
            "comments",
            &rows,
            done_items as i64,
            done_items >= items.len(),
        )?;
        state = spool.list("comments");
        progress(Event::Rows {
            list: "comments",
            rows: done_items as u64,
            total: Some(total),
            done: state.done,
        });
    }
    Ok(())
}

/// The tables a sync writes, and what changed.
struct Built {
    tables: Vec<(String, SchemaRef, Vec<RecordBatch>)>,
    changed: Vec<(String, u64)>,
    deleted: Vec<(String, u64)>,
    unknowns: Unknowns,
}

/// Rows mapped a chunk at a time, so that a big list is not held as JSON and Arrow at once.
fn map_list(
    spool: &Spool,
    list: &str,
    table: &str,
    fields: Option<&BTreeMap<String, String>>,
    unknowns: &mut Unknowns,
    f: &dyn Fn(&[Value]) -> Result<Mapped, String>,
) -> Result<Vec<RecordBatch>, Error> {
    let rows = spool.rows(list)?;
    let mut out = Vec::new();
    for chunk in rows.chunks(20_000) {
        let m = f(chunk).map_err(|message| Error::Map {
            table: table.to_string(),
            message,
        })?;
        unknowns.merge(m.unknowns);
        let batch = match fields {
            Some(fields) => {
                map::custom_columns(m.batch, chunk, fields).map_err(|message| Error::Map {
                    table: table.to_string(),
                    message,
                })?
            }
            None => m.batch,
        };
        out.push(batch);
    }
    Ok(out)
}

/// The ids of the rows a list read into the spool.
fn ids_read(spool: &Spool, list: &str) -> Result<HashSet<i64>, Error> {
    Ok(spool
        .rows(list)?
        .iter()
        .filter_map(|r| wire::id(&r["ID"]))
        .collect())
}

fn id_set(batches: &[RecordBatch], column: &str) -> HashSet<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(column)
                .map(|c| c.as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default()
        })
        .collect()
}

fn map_err(table: &str) -> impl Fn(arrow::error::ArrowError) -> Error + '_ {
    move |e| Error::Map {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// Keeps the rows `keep(batch, row)` says, of batches in the table's schema.
fn keep_rows(
    table: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    keep: &dyn Fn(&RecordBatch, usize) -> bool,
) -> Result<Vec<RecordBatch>, Error> {
    let mut out = Vec::new();
    for b in batches {
        let mask: BooleanArray = (0..b.num_rows()).map(|i| Some(keep(&b, i))).collect();
        let kept = filter_record_batch(&b, &mask).map_err(map_err(table))?;
        if kept.num_rows() > 0 {
            let kept =
                RecordBatch::try_new(schema.clone(), kept.columns().to_vec()).map_err(|e| {
                    Error::Map {
                        table: table.to_string(),
                        message: format!(
                            "the stored table no longer fits (run a full sync with --full): {e}"
                        ),
                    }
                })?;
            out.push(kept);
        }
    }
    Ok(out)
}

/// One batch sorted by id.
fn sorted_by_id(
    table: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>, Error> {
    let all = concat_batches(schema, batches).map_err(map_err(table))?;
    let Some(ids) = all.column_by_name("id") else {
        return Ok(vec![all]);
    };
    let order = sort_to_indices(ids, None, None).map_err(map_err(table))?;
    Ok(vec![
        take_record_batch(&all, &order).map_err(map_err(table))?,
    ])
}

/// A canonical column's value in row `i` (tables are checked against their schema, so a
/// missing column is a bug).
fn int_at(b: &RecordBatch, column: &str, i: usize) -> i64 {
    b.column_by_name(column)
        .expect("a canonical column")
        .as_primitive::<Int64Type>()
        .value(i)
}

fn ts_at(b: &RecordBatch, column: &str, i: usize) -> i64 {
    b.column_by_name(column)
        .expect("a canonical column")
        .as_primitive::<TimestampMicrosecondType>()
        .value(i)
}

fn text_at<'b>(b: &'b RecordBatch, column: &str, i: usize) -> &'b str {
    b.column_by_name(column)
        .expect("a canonical column")
        .as_string::<i32>()
        .value(i)
}

/// Ids found deleted, per table.
struct Gone(HashMap<&'static str, HashSet<i64>>);

impl Gone {
    fn of(&self, table: &str) -> &HashSet<i64> {
        static NONE: std::sync::OnceLock<HashSet<i64>> = std::sync::OnceLock::new();
        self.0
            .get(table)
            .unwrap_or_else(|| NONE.get_or_init(HashSet::new))
    }

    /// Whether a lead or deal (by entity name) is gone.
    fn owner(&self, entity: &str, id: i64) -> bool {
        match entity {
            "lead" => self.of("leads").contains(&id),
            "deal" => self.of("deals").contains(&id),
            _ => false,
        }
    }
}

fn build(
    spool: &Spool,
    current: Option<&Snapshot>,
    plan: &Scope,
    options: &SyncOptions,
    commented: &[(&'static str, i64)],
) -> Result<Built, Error> {
    let mut unknowns = Unknowns::default();
    let mut tables = Vec::new();
    let mut changed = Vec::new();
    let mut deleted = Vec::new();
    // The stored table (empty on a full sync).
    let old = |table: &str| -> Result<Vec<RecordBatch>, Error> {
        match current {
            Some(s) if !plan.full => Ok(s.read(table)?.1),
            _ => Ok(vec![]),
        }
    };
    let map_error = |table: &str| {
        let table = table.to_string();
        move |message: String| Error::Map {
            table: table.clone(),
            message,
        }
    };

    // The small lists are read whole every time.
    let rows = spool.rows("departments")?;
    let m = map::departments(&rows).map_err(map_error("departments"))?;
    unknowns.merge(m.unknowns);
    tables.push(("departments".to_string(), m.batch.schema(), vec![m.batch]));
    let m = map::users(&spool.rows("users")?).map_err(map_error("users"))?;
    unknowns.merge(m.unknowns);
    tables.push(("users".to_string(), m.batch.schema(), vec![m.batch]));
    let m = map::pipelines(&spool.rows("pipelines")?).map_err(map_error("pipelines"))?;
    unknowns.merge(m.unknowns);
    tables.push(("pipelines".to_string(), m.batch.schema(), vec![m.batch]));
    let (stages, sources) =
        map::dictionaries(&spool.rows("dictionaries")?).map_err(map_error("stages"))?;
    unknowns.merge(stages.unknowns);
    tables.push((
        "stages".to_string(),
        stages.batch.schema(),
        vec![stages.batch],
    ));
    tables.push((
        "sources".to_string(),
        sources.batch.schema(),
        vec![sources.batch],
    ));

    // Ids that are gone: stored or read now, but not in the sweep.
    let mut gone: HashMap<&'static str, HashSet<i64>> = HashMap::new();
    let mut fresh: HashMap<&str, Vec<RecordBatch>> = HashMap::new();
    let mut stored: HashMap<&str, Vec<RecordBatch>> = HashMap::new();
    for (table, mapper) in [
        (
            "companies",
            map::companies as fn(&[Value]) -> Result<Mapped, String>,
        ),
        ("contacts", map::contacts),
        ("leads", map::leads),
    ] {
        let fields = options.fields.get(table);
        fresh.insert(
            table,
            map_list(spool, table, table, fields, &mut unknowns, &mapper)?,
        );
        stored.insert(table, old(table)?);
    }
    let activities = {
        let mut b = map_list(
            spool,
            "activities",
            "activities",
            None,
            &mut unknowns,
            &map::activities,
        )?;
        b.extend(map_list(
            spool,
            "comments",
            "activities",
            None,
            &mut unknowns,
            &map::comments,
        )?);
        b
    };
    fresh.insert("activities", activities);
    stored.insert("activities", old("activities")?);
    stored.insert("deals", old("deals")?);
    let deal_ids_read = ids_read(spool, "deals")?;
    if plan.sweep {
        for (table, _) in SWEPT {
            let swept = ids_read(spool, &format!("{table}.ids"))?;
            let mut known = id_set(stored.get(table).map(Vec::as_slice).unwrap_or(&[]), "id");
            match *table {
                "deals" => known.extend(deal_ids_read.iter().copied()),
                t => known.extend(id_set(fresh.get(t).map(Vec::as_slice).unwrap_or(&[]), "id")),
            }
            // Comments are not swept: they go with their owner, or when it is read again.
            known.retain(|id| *id > 0 && !swept.contains(id));
            gone.insert(table, known);
        }
    }
    let gone = Gone(gone);

    // Stage history: the stored rows of owners still there and within the retention,
    // then the rows read now.
    let cutoff = plan.cutoff.unwrap_or(i64::MIN);
    let history_schema = svodka_schema::table("stage_history")
        .expect("canonical")
        .schema();
    let owner_gone =
        |b: &RecordBatch, i: usize| gone.owner(text_at(b, "entity", i), int_at(b, "entity_id", i));
    let mut history = keep_rows(
        "stage_history",
        &history_schema,
        old("stage_history")?,
        &|b, i| !owner_gone(b, i) && ts_at(b, "changed_at", i) >= cutoff,
    )?;
    let mut history_read = 0;
    for (list, entity) in [("lead_history", "lead"), ("deal_history", "deal")] {
        let read = map_list(spool, list, "stage_history", None, &mut unknowns, &|r| {
            map::stage_history(entity, r)
        })?;
        history_read += read.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        history.extend(keep_rows(
            "stage_history",
            &history_schema,
            read,
            &|b, i| !owner_gone(b, i),
        )?);
    }
    let closings = map::deal_closings(&history);
    let deals_read = map_list(
        spool,
        "deals",
        "deals",
        options.fields.get("deals"),
        &mut unknowns,
        &|r| map::deals(r, &closings),
    )?;
    fresh.insert("deals", deals_read);

    // The INN of every company from its requisites, read whole each time.
    let requisites = spool.rows("requisites")?;
    let inn = map::company_inns(&requisites);
    // Owners whose comments were read again: their stored comments are replaced.
    let reread: HashSet<(&str, i64)> = commented.iter().copied().collect();
    let activity_owner_gone = |b: &RecordBatch, i: usize| {
        gone.owner(text_at(b, "owner_type", i), int_at(b, "owner_id", i))
    };

    for table in ["companies", "contacts", "leads", "deals", "activities"] {
        let read = fresh.remove(table).unwrap_or_default();
        let read_ids = id_set(&read, "id");
        let gone_ids = gone.of(table);
        let schema = match read.first() {
            Some(b) => b.schema(),
            None => match stored.get(table).and_then(|s| s.first()) {
                Some(b) => b.schema(),
                None => svodka_schema::table(table).expect("canonical").schema(),
            },
        };
        let before = stored.remove(table).unwrap_or_default();
        let before_rows: u64 = before.iter().map(|b| b.num_rows() as u64).sum();
        let replaced = std::cell::Cell::new(0u64);
        let kept = keep_rows(table, &schema, before, &|b, i| {
            let id = int_at(b, "id", i);
            if read_ids.contains(&id) {
                replaced.set(replaced.get() + 1);
                return false;
            }
            if gone_ids.contains(&id) {
                return false;
            }
            if table != "activities" {
                return true;
            }
            let owner = (text_at(b, "owner_type", i), int_at(b, "owner_id", i));
            let comment_reread = id < 0 && reread.contains(&owner);
            !activity_owner_gone(b, i) && !comment_reread && ts_at(b, "created_at", i) >= cutoff
        })?;
        let kept_rows: u64 = kept.iter().map(|b| b.num_rows() as u64).sum();
        let read_rows: u64 = read.iter().map(|b| b.num_rows() as u64).sum();
        // What was read of records deleted meanwhile (or of their deleted owners) goes too.
        let read = keep_rows(table, &schema, read, &|b, i| {
            !gone_ids.contains(&int_at(b, "id", i))
                && (table != "activities" || !activity_owner_gone(b, i))
        })?;
        let mut all = kept;
        all.extend(read);
        let mut batches = sorted_by_id(table, &schema, &all)?;
        if table == "companies" {
            batches = batches
                .into_iter()
                .map(|b| map::with_inns(b, &inn).map_err(map_error("companies")))
                .collect::<Result<_, _>>()?;
        }
        changed.push((table.to_string(), read_rows));
        deleted.push((table.to_string(), before_rows - kept_rows - replaced.get()));
        tables.push((table.to_string(), schema, batches));
    }
    changed.push(("stage_history".to_string(), history_read));
    tables.push(("stage_history".to_string(), history_schema, history));
    Ok(Built {
        tables,
        changed,
        deleted,
        unknowns,
    })
}
