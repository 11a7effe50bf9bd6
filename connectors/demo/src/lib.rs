//! The demo data set: a deterministic, realistic CRM and 1C history of a logistics company
//! over two years, written in the CSV layout — every canonical table, consistent with each
//! other. Same seed and size → byte-identical files.
//!
//! What it contains on purpose: seasonality and growth, weekday and working-hour
//! patterns, repeat customers, leads converted into deals, skipped stages, reopened deals,
//! pipeline moves, forgotten leads and deals, dismissed employees, a manager whose results
//! drop in the last months, plans and bonus tiers, and 1C counterparties matched to CRM
//! companies by INN (with branches, formatting noise and unmatched records on both sides).

mod names;
mod rng;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use names::*;
use rng::Rng;
use write::{TableWriter, days_from_civil};

/// Deals in the default demo set.
pub const DEFAULT_DEALS: usize = 20_000;

/// The layout of the files the demo writes: raised whenever they change (2: `links` in
/// `dataset.yaml`), so that a demo folder kept from an earlier layout is made again.
pub const LAYOUT: u32 = 2;
/// The demo's "today": the day the data was extracted.
pub const SNAPSHOT_DATE: (i64, u32, u32) = (2026, 11, 25);
/// The demo portal, for links.
pub const PORTAL_URL: &str = "https://svodka-demo.bitrix24.ru";
/// History depth.
pub const HISTORY_DAYS: i64 = 730;

const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub deals: usize,
    pub seed: u64,
}

/// A failure writing the data set.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Creating or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CSV writer failed.
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    /// The request cannot be generated (e.g. zero deals).
    #[error("{0}")]
    Invalid(String),
}

impl DemoError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        DemoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn csv(path: &Path, source: csv::Error) -> Self {
        DemoError::Csv {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Rows written per table.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub tables: Vec<(&'static str, u64)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .tables
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

struct Employee {
    id: i64,
    department: Option<i64>,
    hired: i64,
    dismissed: Option<i64>,
    strength: f64,
    /// Results fall from this instant on (the manager who "fell into a pit").
    drop_from: Option<i64>,
}

impl Employee {
    fn active_at(&self, t: i64) -> bool {
        self.hired <= t && self.dismissed.is_none_or(|d| t < d)
    }
}

struct Company {
    id: i64,
    title: String,
    inn: Option<String>,
    city: &'static str,
    country: &'static str,
    created: i64,
    big: bool,
    owner: i64,
    contacts: Vec<i64>,
    has_won: bool,
    /// 1C counterparties of this company (Ref_Keys).
    onec: Vec<String>,
}

/// A lead, deal or company as the owner of activities and stage history.
#[derive(Clone, Copy)]
struct Entity {
    kind: &'static str,
    id: i64,
}

/// The lead a deal was converted from: its id, source and UTM tags pass to the deal.
struct LeadOrigin {
    id: i64,
    source: Source,
    utm: [Option<String>; 5],
}

#[derive(Clone, Copy)]
enum Journey {
    Lead { converts: bool },
    Direct,
}

/// Process stages of a deal pipeline, in order.
const DEAL_PROCESS: &[(&str, &str)] = &[
    ("NEW", "Новая"),
    ("PREPARATION", "Подготовка КП"),
    ("PREPAYMENT_INVOICE", "Счёт на предоплату"),
    ("EXECUTING", "В работе"),
    ("FINAL_INVOICE", "Финальный счёт"),
];

const PIPELINES: &[(i64, &str, i64)] = &[
    (0, "Общая воронка", 10),
    (1, "Ключевые клиенты", 20),
    (2, "Повторные продажи", 30),
];

fn stage_id(pipeline: i64, stage: &str) -> String {
    if pipeline == 0 {
        stage.to_string()
    } else {
        format!("C{pipeline}:{stage}")
    }
}

struct Gen {
    rng: Rng,
    now: i64,
    start: i64,
    employees: Vec<Employee>,
    companies: Vec<Company>,
    /// Indices of companies that have a won deal (repeat-sale candidates).
    won_companies: Vec<usize>,
    next_contact: i64,
    contacts: Vec<(i64, String, Option<i64>, i64)>,
    next_lead: i64,
    next_deal: i64,
    next_activity: i64,
    next_sale: i64,
    day_weights: Vec<f64>,
    leads: TableWriter,
    deals: TableWriter,
    activities: TableWriter,
    history: TableWriter,
    sales: TableWriter,
}

/// Writes the data set into `out` (created if missing). `progress(done, total)` is called
/// as work advances.
pub fn generate(
    config: &DemoConfig,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, DemoError> {
    if config.deals == 0 {
        return Err(DemoError::Invalid("--deals must be at least 1".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| DemoError::io(out, e))?;
    let (y, m, d) = SNAPSHOT_DATE;
    let snapshot_day = days_from_civil(y, m, d);
    // 10:00 Moscow on the snapshot day.
    let now = snapshot_day * DAY + 7 * HOUR;
    let start = (snapshot_day - HISTORY_DAYS) * DAY - 3 * HOUR;
    let mut rng = Rng::new(config.seed);
    let employees = make_employees(&mut rng, config.deals, start, now);
    let day_weights = (0..HISTORY_DAYS)
        .map(|i| day_weight(snapshot_day - HISTORY_DAYS + i, i))
        .collect();
    let mut g = Gen {
        rng: rng.fork(1),
        now,
        start,
        employees,
        companies: Vec::new(),
        won_companies: Vec::new(),
        next_contact: 1,
        contacts: Vec::new(),
        next_lead: 1,
        next_deal: 1,
        next_activity: 1,
        next_sale: 1,
        day_weights,
        leads: TableWriter::create(out, "leads")?,
        deals: TableWriter::create(out, "deals")?,
        activities: TableWriter::create(out, "activities")?,
        history: TableWriter::create(out, "stage_history")?,
        sales: TableWriter::create(out, "onec_sales")?,
    };
    let mut summary = Summary::default();
    summary
        .tables
        .push(("departments", write_departments(out, g.employees.len())?));
    summary
        .tables
        .push(("users", write_users(out, &mut rng.fork(2), &g.employees)?));
    summary.tables.push(("pipelines", write_pipelines(out)?));
    summary.tables.push(("stages", write_stages(out)?));
    summary.tables.push(("sources", write_sources(out)?));

    let journeys = g.plan_journeys(config.deals);
    let total = journeys.len() as u64;
    let step = (total / 100).max(1);
    for (i, (t, j)) in journeys.into_iter().enumerate() {
        match j {
            Journey::Lead { converts } => g.lead(t, converts)?,
            Journey::Direct => {
                let employee = g.pick_employee(t, false);
                g.deal(t, employee, None)?;
            }
        }
        if (i as u64).is_multiple_of(step) {
            progress(i as u64, total);
        }
    }
    progress(total, total);
    g.company_activities()?;
    summary.tables.push(("leads", g.leads.rows));
    summary.tables.push(("deals", g.deals.rows));
    let onec_only = g.onec_only_counterparties()?;
    summary
        .tables
        .push(("companies", write_companies(out, &g.companies)?));
    summary
        .tables
        .push(("contacts", write_contacts(out, &g.contacts)?));
    summary.tables.push((
        "onec_counterparties",
        write_counterparties(out, &mut g.rng.fork(3), &g.companies, &onec_only)?,
    ));
    summary.tables.push((
        "plans",
        write_plans(out, &g.employees, config.deals, snapshot_day)?,
    ));
    summary
        .tables
        .push(("bonus_tiers", write_bonus_tiers(out)?));
    let Gen {
        leads,
        deals,
        activities,
        history,
        sales,
        ..
    } = g;
    leads.finish()?;
    deals.finish()?;
    summary.tables.push(("activities", activities.finish()?));
    summary.tables.push(("stage_history", history.finish()?));
    summary.tables.push(("onec_sales", sales.finish()?));
    svodka_config::DatasetInfo {
        name: "Демо: ООО «Сводка Логистик»".into(),
        timezone: svodka_schema::values::DEFAULT_TIMEZONE.into(),
        portal_url: Some(PORTAL_URL.into()),
        snapshot_date: chrono::NaiveDate::from_ymd_opt(y as i32, m, d).expect("valid date"),
        origin: Some(format!(
            "svodka demo --deals {} --seed {}",
            config.deals, config.seed
        )),
        links: svodka_config::bitrix24::links(),
    }
    .write(out)
    .map_err(|e| DemoError::Invalid(e.to_string()))?;
    Ok(summary)
}

/// Relative volume of new business on a day: seasons, weekdays, growth, holidays.
fn day_weight(day: i64, index: i64) -> f64 {
    let (_, month, dom) = write::civil(day);
    let season = [
        0.55, 0.85, 1.1, 1.15, 1.0, 0.9, 0.75, 0.8, 1.15, 1.2, 1.15, 1.05,
    ][month as usize - 1];
    // 1970-01-01 was a Thursday: 0 = Monday.
    let weekday = (day + 3).rem_euclid(7);
    let week = [1.0, 1.05, 1.05, 1.0, 0.9, 0.18, 0.08][weekday as usize];
    let holiday = if month == 1 && dom <= 8 { 0.15 } else { 1.0 };
    let growth = 1.0 + 0.35 * index as f64 / HISTORY_DAYS as f64;
    season * week * holiday * growth
}

fn make_employees(rng: &mut Rng, deals: usize, start: i64, now: i64) -> Vec<Employee> {
    let n = (20 + deals / 1000).clamp(20, 60);
    let departments: &[i64] = if n >= 30 { &[2, 3, 4, 5] } else { &[2, 3, 4] };
    (0..n)
        .map(|i| {
            let id = i as i64 + 1;
            // One newcomer has no department yet.
            let department = if i == n - 1 {
                None
            } else {
                Some(departments[i % departments.len()])
            };
            let hired = if i < n * 8 / 10 {
                start - 200 * DAY
            } else {
                start + rng.range(60, 600) * DAY
            };
            let dismissed = if i % 9 == 5 {
                Some(hired.max(start) + rng.range(120, 600) * DAY).filter(|d| *d < now - 20 * DAY)
            } else {
                None
            };
            Employee {
                id,
                department,
                hired,
                dismissed,
                strength: rng.lognormal(1.0, 0.25).clamp(0.6, 1.6),
                drop_from: (i == 4).then_some(now - 120 * DAY),
            }
        })
        .collect()
}

fn write_departments(out: &Path, employees: usize) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "departments")?;
    let mut rows: Vec<(i64, &str, Option<i64>)> = vec![
        (1, "Коммерческая дирекция", None),
        (2, "Отдел продаж «Москва»", Some(1)),
        (3, "Отдел продаж «Санкт-Петербург»", Some(1)),
        (4, "Отдел ключевых клиентов", Some(1)),
    ];
    if employees >= 30 {
        rows.push((5, "Отдел регионального развития", Some(1)));
    }
    for (id, name, parent) in rows {
        w.int(id).text(name).opt_int(parent).end()?;
    }
    w.finish()
}

fn write_users(out: &Path, rng: &mut Rng, employees: &[Employee]) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "users")?;
    let mut heads: Vec<i64> = Vec::new();
    for e in employees {
        let female = rng.chance(0.45);
        let first = if female {
            rng.pick(FIRST_NAMES_F)
        } else {
            rng.pick(FIRST_NAMES_M)
        };
        let last = rng.pick(LAST_NAMES);
        let last = if female {
            format!("{last}а")
        } else {
            last.to_string()
        };
        let position = match e.department {
            Some(d) if !heads.contains(&d) => {
                heads.push(d);
                "Руководитель отдела"
            }
            Some(4) => "Менеджер по работе с ключевыми клиентами",
            Some(_) => "Менеджер по продажам",
            None => "Стажёр",
        };
        w.int(e.id)
            .text(&format!("{first} {last}"))
            .opt_int(e.department)
            .bool(e.dismissed.is_none())
            .text(position)
            .end()?;
    }
    w.finish()
}

fn write_pipelines(out: &Path) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "pipelines")?;
    for (id, name, sort) in PIPELINES {
        w.int(*id).text(name).int(*sort).end()?;
    }
    w.finish()
}

fn write_stages(out: &Path) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "stages")?;
    let lead: &[(&str, &str, i64, &str)] = &[
        ("NEW", "Не обработан", 10, "process"),
        ("IN_PROCESS", "В работе", 20, "process"),
        ("PROCESSED", "Обработан", 30, "process"),
        ("CONVERTED", "Качественный лид", 40, "success"),
        ("JUNK", "Некачественный лид", 50, "failure"),
    ];
    for (id, name, sort, semantic) in lead {
        w.text("lead")
            .text("")
            .text(id)
            .text(name)
            .int(*sort)
            .text(semantic)
            .end()?;
    }
    for (p, _, _) in PIPELINES {
        for (i, (id, name)) in DEAL_PROCESS.iter().enumerate() {
            w.text("deal")
                .int(*p)
                .text(&stage_id(*p, id))
                .text(name)
                .int(10 * (i as i64 + 1))
                .text("process")
                .end()?;
        }
        w.text("deal")
            .int(*p)
            .text(&stage_id(*p, "WON"))
            .text("Сделка успешна")
            .int(60)
            .text("success")
            .end()?;
        w.text("deal")
            .int(*p)
            .text(&stage_id(*p, "LOSE"))
            .text("Сделка провалена")
            .int(70)
            .text("failure")
            .end()?;
        if *p == 0 {
            w.text("deal")
                .int(0)
                .text("APOLOGY")
                .text("Анализ причины провала")
                .int(80)
                .text("failure")
                .end()?;
        }
    }
    w.finish()
}

fn write_sources(out: &Path) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "sources")?;
    for source in SOURCES {
        w.text(source.id).text(source.name).end()?;
    }
    w.finish()
}

impl Gen {
    /// Creation instants of every lead and direct deal, in time order.
    fn plan_journeys(&mut self, deals: usize) -> Vec<(i64, Journey)> {
        let converted = (deals as f64 * 0.55).round() as usize;
        let leads = ((deals as f64 * 1.5).round() as usize).max(converted);
        let direct = deals - converted;
        let cumulative: Vec<f64> = self
            .day_weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let total = *cumulative.last().expect("history has days");
        let mut out = Vec::with_capacity(leads + direct);
        for i in 0..leads + direct {
            let x = self.rng.f64() * total;
            let day = cumulative.partition_point(|c| *c < x) as i64;
            // Working hours, Moscow: mostly 9:00–19:00 local = 6:00–16:00 UTC.
            let hour = (8.0 + 10.0 * self.rng.f64() + 0.8 * self.rng.normal()).clamp(0.0, 23.9);
            let t = self.start + day * DAY + (hour * HOUR as f64) as i64;
            let t = t.min(self.now - HOUR);
            let journey = if i < converted {
                Journey::Lead { converts: true }
            } else if i < leads {
                Journey::Lead { converts: false }
            } else {
                Journey::Direct
            };
            out.push((t, journey));
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// An employee active at `t`, weighted by strength; key-account staff for big clients.
    fn pick_employee(&mut self, t: i64, key_account: bool) -> usize {
        let candidates: Vec<usize> = self
            .employees
            .iter()
            .enumerate()
            .filter(|(_, e)| e.active_at(t) && (e.department == Some(4)) == key_account)
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return self.rng.below(self.employees.len());
        }
        let weights: Vec<f64> = candidates
            .iter()
            .map(|&i| self.employees[i].strength)
            .collect();
        candidates[self.rng.weighted(&weights)]
    }

    fn lead(&mut self, t: i64, converts: bool) -> Result<(), DemoError> {
        let id = self.next_lead;
        self.next_lead += 1;
        let emp = self.pick_employee(t, false);
        let employee = self.employees[emp].id;
        let weights: Vec<f64> = SOURCES.iter().map(|s| s.weight).collect();
        let source = SOURCES[self.rng.weighted(&weights)];
        let age_days = (self.now - t) / DAY;
        // When and how the lead closes; None = still open at the snapshot.
        let close = if converts {
            // A converted lead always yields its deal, so the deal count is exact.
            let c = office_hours(t + (self.rng.lognormal(2.0, 1.0).min(60.0) * DAY as f64) as i64);
            Some((
                if c < self.now {
                    c
                } else {
                    t + (self.now - t) / 2
                },
                true,
            ))
        } else {
            let open_p = if age_days < 45 { 0.7 } else { 0.025 };
            if self.rng.chance(open_p) {
                None
            } else {
                Some((
                    office_hours(t + (self.rng.lognormal(3.0, 1.0).min(90.0) * DAY as f64) as i64),
                    false,
                ))
            }
        };
        let close = close.filter(|(c, _)| *c < self.now);
        let (status, semantic) = match close {
            Some((_, true)) => ("CONVERTED", "success"),
            Some((_, false)) => ("JUNK", "failure"),
            None => *self.rng.pick(&[
                ("NEW", "process"),
                ("IN_PROCESS", "process"),
                ("PROCESSED", "process"),
            ]),
        };
        // Stage history: NEW, maybe IN_PROCESS / PROCESSED, then the final status.
        let end = close.map(|(c, _)| c).unwrap_or(self.now - HOUR);
        self.history_row(
            Entity { kind: "lead", id },
            None,
            "NEW",
            "process",
            t,
            "created",
        )?;
        let mut last_change = t;
        let middle: Vec<&str> = match status {
            "NEW" => vec![],
            "IN_PROCESS" => vec!["IN_PROCESS"],
            "PROCESSED" => vec!["IN_PROCESS", "PROCESSED"],
            _ if self.rng.chance(0.6) => vec!["IN_PROCESS"],
            _ => vec![],
        };
        for (k, s) in middle.iter().enumerate() {
            let at =
                t + (end - t) * (k as i64 + 1) / (middle.len() as i64 + 2) + (k as i64 + 1) * 60;
            self.history_row(Entity { kind: "lead", id }, None, s, "process", at, "moved")?;
            last_change = at;
        }
        if let Some((c, _)) = close {
            self.history_row(
                Entity { kind: "lead", id },
                None,
                status,
                semantic,
                c,
                "moved",
            )?;
            last_change = c;
        }
        // Activities: forgotten open leads get none recently, or none at all.
        let n = match close {
            Some((_, true)) => self.rng.range(1, 5),
            Some((_, false)) => self.rng.range(0, 3),
            None if age_days > 45 => self.rng.range(0, 2),
            None => self.rng.range(0, 4),
        };
        let stale = close.is_none() && (age_days > 45 || self.rng.chance(0.3));
        let act_end = if stale { t + (end - t) / 4 } else { end };
        let mut last_act = self.activities_for(
            Entity { kind: "lead", id },
            employee,
            t,
            act_end,
            n as usize,
            1.0,
        )?;
        if close.is_none() && !stale && self.rng.chance(0.5) {
            last_act = last_act.max(self.planned_task(Entity { kind: "lead", id }, employee)?);
        }
        let (city, country) = *self.rng.pick(CITIES);
        let utm = self.utm(source);
        let amount = self
            .rng
            .chance(0.3)
            .then(|| (self.rng.lognormal(200_000.0, 0.8) as i64 / 100) * 10_000);
        let w = &mut self.leads;
        w.int(id)
            .text(&format!(
                "Заявка: {} ({})",
                CARGO[(id as usize * 7) % CARGO.len()],
                source.name
            ))
            .text(status)
            .text(semantic)
            .text(source.id)
            .int(employee)
            .ts(t)
            .opt_ts(close.map(|(c, _)| c))
            .ts(last_change.max(last_act).min(self.now))
            .opt_money(amount)
            .text(if amount.is_some() { "RUB" } else { "" })
            .text("")
            .text("")
            .text(city)
            .text(country);
        for u in &utm {
            w.opt_text(u.as_deref());
        }
        w.end()?;
        if let Some((c, true)) = close {
            self.deal(c, emp, Some(LeadOrigin { id, source, utm }))?;
        }
        Ok(())
    }

    fn utm(&mut self, source: Source) -> [Option<String>; 5] {
        match (source.utm_source, source.utm_medium) {
            (Some(s), Some(m)) => [
                Some(s.to_string()),
                Some(m.to_string()),
                Some(self.rng.pick(CAMPAIGNS).to_string()),
                self.rng
                    .chance(0.6)
                    .then(|| self.rng.pick(UTM_CONTENT).to_string()),
                (m == "cpc").then(|| self.rng.pick(UTM_TERM).to_string()),
            ],
            _ => [None, None, None, None, None],
        }
    }

    fn new_company(&mut self, t: i64, owner: i64) -> usize {
        let id = self.companies.len() as i64 + 1;
        let form = *self.rng.pick(COMPANY_FORMS);
        let title = if form == "ИП" {
            format!(
                "ИП {} {}.",
                self.rng.pick(LAST_NAMES),
                self.rng.pick(FIRST_NAMES_M).chars().next().unwrap_or('А')
            )
        } else {
            company_name(&mut self.rng, form)
        };
        let inn = if self.rng.chance(0.92) {
            Some(if form == "ИП" {
                format!("{:012}", 770_000_000_000i64 + (id * 7919) % 1_000_000_000)
            } else {
                format!("{:010}", 7_700_000_000i64 + (id * 7919) % 100_000_000)
            })
        } else {
            None
        };
        let (city, country) = *self.rng.pick(CITIES);
        let created = (t - self.rng.range(0, 300) * DAY).max(self.start - 400 * DAY);
        let mut contacts = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            let cid = self.next_contact;
            self.next_contact += 1;
            let name = format!(
                "{} {}",
                self.rng.pick(FIRST_NAMES_M),
                self.rng.pick(LAST_NAMES)
            );
            // Known by the time the company first comes to a lead or deal.
            let at = (created + self.rng.range(0, 30) * DAY).min(t);
            self.contacts.push((cid, name, Some(id), at));
            contacts.push(cid);
        }
        let big = self.rng.chance(0.1);
        let onec = if inn.is_some() && self.rng.chance(0.88) {
            let n = if self.rng.chance(0.1) { 2 } else { 1 };
            (0..n).map(|_| guid(&mut self.rng)).collect()
        } else {
            Vec::new()
        };
        self.companies.push(Company {
            id,
            title,
            inn,
            city,
            country,
            created,
            big,
            owner,
            contacts,
            has_won: false,
            onec,
        });
        self.companies.len() - 1
    }

    /// One deal created at `t`, by employee index `emp`, optionally from a lead.
    fn deal(&mut self, t: i64, emp: usize, lead: Option<LeadOrigin>) -> Result<(), DemoError> {
        let id = self.next_deal;
        self.next_deal += 1;
        // A repeat customer, or a new one (every lead brings a new company).
        let repeat = lead.is_none() && !self.won_companies.is_empty() && self.rng.chance(0.55);
        let ci = if repeat {
            let k = self.rng.below(self.won_companies.len());
            self.won_companies[k]
        } else {
            let owner = self.employees[emp].id;
            self.new_company(t, owner)
        };
        let big = self.companies[ci].big;
        let mut emp = emp;
        if big && lead.is_none() {
            emp = self.pick_employee(t, true);
        } else if repeat {
            let owner = self.companies[ci].owner;
            if let Some(i) = self
                .employees
                .iter()
                .position(|e| e.id == owner && e.active_at(t))
            {
                emp = i;
            }
        }
        let employee = self.employees[emp].id;
        let mut pipeline = if big {
            1
        } else if self.companies[ci].has_won && self.rng.chance(0.6) {
            2
        } else {
            0
        };
        let amount = (!self.rng.chance(0.02)).then(|| {
            let rub = self.rng.lognormal(250_000.0, 0.8) * if big { 3.0 } else { 1.0 };
            (rub as i64 / 100).max(1) * 10_000
        });
        let e = &self.employees[emp];
        let dropped = e.drop_from.is_some_and(|d| t >= d);
        let win_p = (0.42 * e.strength * if dropped { 0.25 } else { 1.0 }).clamp(0.05, 0.8);
        let effort = e.strength * if dropped { 0.4 } else { 1.0 };
        let cycle_days = self
            .rng
            .lognormal(if big { 45.0 } else { 22.0 }, 0.9)
            .clamp(0.2, 600.0);
        let mut close = office_hours(t + (cycle_days * DAY as f64) as i64);
        let mut won = self.rng.chance(win_p);
        let mut open = close >= self.now;
        // A deal dropped by a dismissed employee stays open and untouched.
        if let Some(d) = e.dismissed
            && close >= d
        {
            open = true;
        }
        let end = if open {
            (self.now - HOUR).max(t)
        } else {
            close
        };

        // Stage path.
        self.history_row(
            Entity { kind: "deal", id },
            Some(pipeline),
            &stage_id(pipeline, "NEW"),
            "process",
            t,
            "created",
        )?;
        let depth = if open {
            self.rng.range(1, 5) as usize
        } else if won {
            DEAL_PROCESS.len()
        } else {
            self.rng.range(1, DEAL_PROCESS.len() as i64 + 1) as usize
        };
        // A deal opened within the last day has not moved yet.
        let fresh = open && t > self.now - DAY;
        let moves: Vec<usize> = (1..depth)
            .filter(|_| !self.rng.chance(0.18) && !fresh)
            .collect();
        let mut last_change = t;
        let mut stage = stage_id(pipeline, "NEW");
        let span = if open { (end - t) * 6 / 10 } else { end - t };
        let pipeline_move = pipeline == 0 && moves.len() >= 2 && self.rng.chance(0.02);
        for (k, &s) in moves.iter().enumerate() {
            // Strictly after the previous change, even on a short span.
            let at = t + span * (k as i64 + 1) / (moves.len() as i64 + 1) + (k as i64 + 1) * 60;
            let kind = if pipeline_move && k == moves.len() / 2 {
                pipeline = 1;
                "pipeline_changed"
            } else {
                "moved"
            };
            stage = stage_id(pipeline, DEAL_PROCESS[s].0);
            self.history_row(
                Entity { kind: "deal", id },
                Some(pipeline),
                &stage,
                "process",
                at,
                kind,
            )?;
            last_change = at;
        }
        let mut semantic = "process";
        if !open {
            let lost_stage = if pipeline == 0 && self.rng.chance(0.1) {
                "APOLOGY"
            } else {
                "LOSE"
            };
            let final_stage = stage_id(pipeline, if won { "WON" } else { lost_stage });
            self.history_row(
                Entity { kind: "deal", id },
                Some(pipeline),
                &final_stage,
                if won { "success" } else { "failure" },
                close,
                "moved",
            )?;
            stage = final_stage;
            semantic = if won { "success" } else { "failure" };
            last_change = close;
            // Reopened: a lost deal taken back into work, then closed again (or still open).
            if !won && self.rng.chance(0.04) {
                let back = close + self.rng.range(2, 20) * DAY;
                if back < self.now {
                    stage = stage_id(pipeline, "EXECUTING");
                    self.history_row(
                        Entity { kind: "deal", id },
                        Some(pipeline),
                        &stage,
                        "process",
                        back,
                        "moved",
                    )?;
                    last_change = back;
                    semantic = "process";
                    open = true;
                    let again = back + self.rng.range(5, 60) * DAY;
                    if again < self.now {
                        won = self.rng.chance(0.5);
                        stage = stage_id(pipeline, if won { "WON" } else { "LOSE" });
                        semantic = if won { "success" } else { "failure" };
                        self.history_row(
                            Entity { kind: "deal", id },
                            Some(pipeline),
                            &stage,
                            semantic,
                            again,
                            "moved",
                        )?;
                        close = again;
                        last_change = again;
                        open = false;
                    }
                }
            }
        }

        // Activities over the deal's life; an open deal may be forgotten.
        let n = (self.rng.lognormal(6.0, 0.5) * effort)
            .round()
            .clamp(1.0, 40.0) as usize;
        let forgotten = open && (self.employees[emp].dismissed.is_some() || self.rng.chance(0.22));
        let act_end = if forgotten {
            office_hours(end - self.rng.range(15 * 24, 150 * 24) * HOUR - self.rng.range(0, HOUR))
                .max(t)
        } else if open {
            end - self.rng.range(0, 6) * DAY
        } else {
            end
        };
        let mut last_act = self.activities_for(
            Entity { kind: "deal", id },
            employee,
            t,
            act_end.max(t),
            n,
            effort,
        )?;
        if open && !forgotten && self.rng.chance(0.7) {
            last_act = last_act.max(self.planned_task(Entity { kind: "deal", id }, employee)?);
        }
        if won && !open {
            let company = &mut self.companies[ci];
            if !company.has_won {
                company.has_won = true;
                self.won_companies.push(ci);
            }
            self.onec_sales_for(ci, close, amount.unwrap_or(0))?;
        }
        let contact = {
            let cs = &self.companies[ci].contacts;
            (!cs.is_empty()).then(|| cs[self.rng.below(cs.len())])
        };
        let company_id = self.companies[ci].id;
        let title = format!(
            "{}: {}",
            self.companies[ci].title,
            CARGO[(id as usize * 3 + ci) % CARGO.len()]
        ) + &format!(", {}", ROUTES[(id as usize) % ROUTES.len()]);
        let (lead_id, source, utm) = match lead {
            Some(LeadOrigin { id, source, utm }) => (Some(id), Some(source.id), utm),
            None => (None, None, [None, None, None, None, None]),
        };
        let modified = last_change.max(last_act).max(t).min(self.now);
        let w = &mut self.deals;
        w.int(id)
            .text(&title)
            .int(pipeline)
            .text(&stage)
            .text(semantic)
            .opt_money(amount)
            .text(if amount.is_some() { "RUB" } else { "" })
            .int(employee)
            .ts(t)
            .opt_ts((!open).then_some(close))
            .ts(modified)
            .int(company_id)
            .opt_int(contact)
            .opt_int(lead_id)
            .opt_text(source);
        for u in &utm {
            w.opt_text(u.as_deref());
        }
        w.end()
    }

    /// `n` activities on an entity between `from` and `to`; returns the latest creation.
    fn activities_for(
        &mut self,
        owner: Entity,
        employee: i64,
        from: i64,
        to: i64,
        n: usize,
        effort: f64,
    ) -> Result<i64, DemoError> {
        let kinds = ["call", "email", "meeting", "task", "comment", "other"];
        let weights = [40.0, 24.0, 8.0 * effort, 14.0, 12.0, 2.0];
        let mut latest = from;
        for k in 0..n {
            // Spread over the span, the last one close to its end.
            let at = if k + 1 == n {
                to
            } else {
                office_hours(from + ((to - from) as f64 * self.rng.f64()) as i64).min(to)
            };
            let kind = kinds[self.rng.weighted(&weights)];
            let responsible = if self.rng.chance(0.05) {
                self.employees[self.rng.below(self.employees.len())].id
            } else {
                employee
            };
            self.activity(kind, owner, responsible, at, true)?;
            latest = latest.max(at);
        }
        Ok(latest)
    }

    /// An open task with a deadline ahead (or just missed); returns its creation instant.
    fn planned_task(&mut self, owner: Entity, employee: i64) -> Result<i64, DemoError> {
        let at = self.now - self.rng.range(1, 5 * 24) * HOUR;
        self.activity("task", owner, employee, at, false)?;
        Ok(at)
    }

    fn activity(
        &mut self,
        kind: &str,
        owner: Entity,
        responsible: i64,
        at: i64,
        done: bool,
    ) -> Result<(), DemoError> {
        let id = self.next_activity;
        self.next_activity += 1;
        let direction = match kind {
            "call" | "email" => Some(if self.rng.chance(0.6) { "out" } else { "in" }),
            _ => None,
        };
        let duration = match kind {
            "call" => Some(self.rng.range(20, 900)),
            "meeting" => Some(self.rng.range(1800, 5400)),
            _ => None,
        };
        let deadline = match kind {
            "task" | "meeting" => Some(if done {
                at + self.rng.range(1, 72) * HOUR
            } else {
                self.now + self.rng.range(-48, 240) * HOUR
            }),
            _ => None,
        };
        let completed_at = done.then(|| deadline.unwrap_or(at).min(self.now));
        self.activities
            .int(id)
            .text(kind)
            .opt_text(direction)
            .text(owner.kind)
            .int(owner.id)
            .int(responsible)
            .ts(at)
            .opt_ts(deadline)
            .bool(done)
            .opt_ts(completed_at)
            .opt_int(duration)
            .end()
    }

    /// Some activities live on companies: they must not count as touches of deals.
    fn company_activities(&mut self) -> Result<(), DemoError> {
        let n = self.companies.len() / 5;
        for _ in 0..n {
            let ci = self.rng.below(self.companies.len());
            let (cid, owner, created) = {
                let c = &self.companies[ci];
                (c.id, c.owner, c.created.max(self.start))
            };
            let at = created + ((self.now - created) as f64 * self.rng.f64()) as i64;
            self.activity(
                "call",
                Entity {
                    kind: "company",
                    id: cid,
                },
                owner,
                at.min(self.now - HOUR),
                true,
            )?;
        }
        Ok(())
    }

    fn history_row(
        &mut self,
        entity: Entity,
        pipeline: Option<i64>,
        stage: &str,
        semantic: &str,
        at: i64,
        kind: &str,
    ) -> Result<(), DemoError> {
        self.history
            .text(entity.kind)
            .int(entity.id)
            .opt_int(pipeline)
            .text(stage)
            .text(semantic)
            .ts(at)
            .text(kind)
            .end()
    }

    /// Shipments in 1C after a won deal: the turnover the `clients` report joins by INN.
    fn onec_sales_for(&mut self, ci: usize, won_at: i64, amount: i64) -> Result<(), DemoError> {
        if self.companies[ci].onec.is_empty() || amount == 0 {
            return Ok(());
        }
        let docs = self.rng.range(1, 5);
        for k in 0..docs {
            let at = won_at + self.rng.range(1, 90) * DAY + k * HOUR;
            if at >= self.now {
                continue;
            }
            let keys = &self.companies[ci].onec;
            let key = keys[self.rng.below(keys.len())].clone();
            let share = amount / docs * self.rng.range(90, 111) / 100;
            self.sale(&key, at, share)?;
        }
        Ok(())
    }

    fn sale(&mut self, counterparty: &str, at: i64, amount: i64) -> Result<(), DemoError> {
        let id = self.next_sale;
        self.next_sale += 1;
        let quantity = (self.rng.lognormal(8.0, 0.8) * 10.0).round() / 10.0;
        let posted = !self.rng.chance(0.03);
        self.sales
            .text(&format!("РТУ-{id:08}"))
            .ts(at)
            .text(counterparty)
            .text(&format!("Договор №{}", 100 + id % 900))
            .money(amount.max(100))
            .float(quantity)
            .float(quantity * 2.6)
            .bool(posted)
            .end()
    }

    /// Counterparties that exist only in 1C (no CRM company with their INN), with sales.
    fn onec_only_counterparties(&mut self) -> Result<Vec<(String, String, String)>, DemoError> {
        let n = (self.companies.len() / 25).max(2);
        let mut out = Vec::new();
        for k in 0..n {
            let key = guid(&mut self.rng);
            let name = company_name(&mut self.rng, "ООО");
            let inn = format!("{:010}", 5_000_000_000i64 + k as i64 * 104_729);
            for _ in 0..self.rng.range(1, 6) {
                let at = self.start + ((self.now - self.start) as f64 * self.rng.f64()) as i64;
                let amount = (self.rng.lognormal(200_000.0, 0.7) as i64 / 100) * 10_000;
                self.sale(&key, at, amount)?;
            }
            out.push((key, name, inn));
        }
        Ok(out)
    }
}

/// «Северный транзит», «Трансэкспресс»: adjectives stand apart, prefixes fuse.
fn company_name(rng: &mut Rng, form: &str) -> String {
    let a = *rng.pick(COMPANY_WORDS_A);
    let b = *rng.pick(COMPANY_WORDS_B);
    if a.ends_with('й') {
        format!("{form} «{a} {}»", b.to_lowercase())
    } else {
        format!("{form} «{a}{}»", b.to_lowercase())
    }
}

/// Moves an instant outside 8:00–20:00 Moscow time to the next morning.
fn office_hours(t: i64) -> i64 {
    let hour = (t + write::OFFSET_SECS).rem_euclid(DAY) / HOUR;
    match hour {
        0..8 => t + (9 - hour) * HOUR,
        20.. => t + (33 - hour) * HOUR,
        _ => t,
    }
}

fn guid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn write_companies(out: &Path, companies: &[Company]) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "companies")?;
    for c in companies {
        w.int(c.id)
            .text(&c.title)
            .opt_text(c.inn.as_deref())
            .text(c.city)
            .text(c.country)
            .ts(c.created)
            .end()?;
    }
    w.finish()
}

fn write_contacts(
    out: &Path,
    contacts: &[(i64, String, Option<i64>, i64)],
) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "contacts")?;
    for (id, name, company, created) in contacts {
        w.int(*id).text(name).opt_int(*company).ts(*created).end()?;
    }
    w.finish()
}

fn write_counterparties(
    out: &Path,
    rng: &mut Rng,
    companies: &[Company],
    onec_only: &[(String, String, String)],
) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "onec_counterparties")?;
    for c in companies {
        let inn = c.inn.as_deref().unwrap_or_default();
        for (k, key) in c.onec.iter().enumerate() {
            // 1C keeps INNs as typed: now and then with spaces.
            let shown = if rng.chance(0.05) && inn.len() == 10 {
                format!("{} {} {}", &inn[..2], &inn[2..4], &inn[4..])
            } else {
                inn.to_string()
            };
            let kpp = (inn.len() == 10).then(|| format!("77{:02}01001", k + 1));
            let name = if k == 0 {
                c.title.clone()
            } else {
                format!("{} (филиал {})", c.title, c.city)
            };
            w.text(key)
                .text(&name)
                .text(&shown)
                .opt_text(kpp.as_deref())
                .end()?;
        }
    }
    for (key, name, inn) in onec_only {
        w.text(key).text(name).text(inn).text("500101001").end()?;
    }
    w.finish()
}

/// Monthly plans per sales employee (key accounts per pipeline), plus department-only
/// rows for the regional department.
fn write_plans(
    out: &Path,
    employees: &[Employee],
    deals: usize,
    snapshot_day: i64,
) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "plans")?;
    let staff = employees
        .iter()
        .filter(|e| e.department.is_some())
        .count()
        .max(1) as f64;
    let per_month_deals = deals as f64 / 24.0 / staff;
    let plan_count = (per_month_deals * 0.45 * 1.1).round().max(1.0) as i64;
    let plan_kopecks =
        ((per_month_deals * 0.45 * 390_000.0 * 1.1) as i64 / 10_000).max(1) * 1_000_000;
    let (sy, sm, _) = write::civil(snapshot_day - HISTORY_DAYS);
    let (ey, em, _) = write::civil(snapshot_day);
    // Through the month after the snapshot's, so that the coming month has a plan.
    let last = if em == 12 { (ey + 1, 1) } else { (ey, em + 1) };
    let (mut y, mut m) = (sy, sm);
    while (y, m) <= last {
        let month_start = days_from_civil(y, m, 1);
        let season = [0.7, 0.9, 1.1, 1.1, 1.0, 0.9, 0.8, 0.8, 1.1, 1.2, 1.15, 1.1][m as usize - 1];
        for e in employees {
            let Some(d) = e.department else { continue };
            if !e.active_at(month_start * DAY + 15 * DAY) || d == 5 {
                continue;
            }
            let amount = ((plan_kopecks as f64 * season) as i64 / 1_000_000) * 1_000_000;
            let pipeline = (d == 4).then_some(1);
            w.date(month_start)
                .int(d)
                .int(e.id)
                .text("")
                .opt_int(pipeline)
                .money(amount)
                .int(plan_count)
                .end()?;
        }
        if employees.iter().any(|e| e.department == Some(5)) {
            let amount = ((plan_kopecks as f64 * season * 4.0) as i64 / 1_000_000) * 1_000_000;
            w.date(month_start)
                .int(5)
                .text("")
                .text("")
                .text("")
                .money(amount)
                .int(plan_count * 4)
                .end()?;
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    w.finish()
}

fn write_bonus_tiers(out: &Path) -> Result<u64, DemoError> {
    let mut w = TableWriter::create(out, "bonus_tiers")?;
    for (n, bonus) in [
        (3, 1_500_000),
        (6, 3_500_000),
        (10, 7_000_000),
        (15, 12_000_000),
    ] {
        w.int(n).money(bonus).end()?;
    }
    w.finish()
}
