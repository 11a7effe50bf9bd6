//! The report as one self-contained HTML page: KPI cards, sortable tables with
//! expandable rows, SVG charts, a definition behind every number. No external resource of
//! any kind, so the file works offline; all text goes through minijinja's autoescape.

use std::collections::HashMap;

use minijinja::{Environment, context};
use serde::Serialize;
use svodka_results::{ColumnMeta, ReportResult, ValueType};

use crate::chart::{chart_data, svg};
use crate::format::{Locale, Word};
use crate::table::{Table, table};
use crate::values::Cell;
use crate::{RenderError, RenderOptions};

const TEMPLATE: &str = include_str!("html/report.html");
const STYLE: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");

#[derive(Serialize)]
struct Pair {
    label: String,
    value: String,
}

/// A link of a live page's control bar.
#[derive(Serialize)]
struct Link {
    label: String,
    href: String,
}

/// A filter's choices on a live page.
#[derive(Serialize)]
struct Picker {
    name: String,
    label: String,
    options: Vec<Pair>,
    selected: Vec<String>,
}

/// The controls of a page served live.
#[derive(Serialize)]
struct Controls {
    from: String,
    to: String,
    /// Whole months the period spans (the slider's position).
    months: i32,
    /// The query's other pairs, kept by the period form.
    keep: Vec<Pair>,
    presets: Vec<Link>,
    pickers: Vec<Picker>,
    /// Applied filters, each with the link that clears it.
    clear: Vec<Link>,
    export: String,
    /// Per-block export link prefix (the block id and query follow).
    block_export: String,
    query: String,
    /// Where the refresh button asks (POST) and the job's state is read (id follows).
    refresh: String,
    jobs: String,
}

#[derive(Serialize)]
struct BlockView {
    id: String,
    title: String,
    description: Option<String>,
    kpis: Vec<Kpi>,
    /// The SVG, built with every text escaped (chart.rs).
    chart: Option<String>,
    table: Option<TableView>,
    note: Option<String>,
    empty: bool,
}

#[derive(Serialize)]
struct Kpi {
    name: String,
    label: String,
    value: String,
    tip: String,
    change: Option<Change>,
}

#[derive(Serialize)]
struct Change {
    text: String,
    /// `good`, `bad` or `flat`: up is good unless the measure says `better: lower`.
    tone: &'static str,
    previous: String,
}

#[derive(Serialize)]
struct TableView {
    columns: Vec<ColumnView>,
    groups: Vec<Group>,
    totals: Option<Vec<CellView>>,
    expandable: bool,
}

#[derive(Serialize)]
struct ColumnView {
    name: String,
    label: String,
    tip: String,
    numeric: bool,
}

#[derive(Serialize)]
struct Group {
    cells: Vec<CellView>,
    children: Vec<Vec<CellView>>,
}

#[derive(Serialize, Default)]
struct CellView {
    text: String,
    sort: String,
    numeric: bool,
    href: Option<String>,
    filter: Option<String>,
    filter_value: Option<String>,
    indent: bool,
}

/// Renders the whole report as an HTML page.
pub fn report_html(result: &ReportResult, options: &RenderOptions) -> Result<String, RenderError> {
    let locale = options.locale;
    let tz = result.params.timezone;
    let tables: Vec<Table> = result
        .blocks
        .iter()
        .map(|b| table(b, tz))
        .collect::<Result<_, _>>()?;
    let names = FilterNames::collect(result, &tables);
    let filters = applied_filters(result, &names);
    let filters_text = if filters.is_empty() {
        locale.word(Word::NoFilters).to_string()
    } else {
        filters
            .iter()
            .map(|p| format!("{}: {}", p.label, p.value))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let period = format!(
        "{} — {}",
        locale.date(result.params.from),
        locale.date(result.params.to)
    );
    let scope = format!(
        "{}: {period}; {}: {filters_text}",
        locale.word(Word::Period),
        locale.word(Word::Filters)
    );
    let mut blocks = Vec::new();
    for (block, t) in result.blocks.iter().zip(&tables) {
        let is_kpi = t.is_kpi(block.kind);
        let chart = block
            .chart
            .as_ref()
            .and_then(|spec| chart_data(spec, t, locale))
            .filter(|d| !d.categories.is_empty())
            .map(|d| svg(&d, locale));
        let (kpis, table_view, note) = if is_kpi {
            (kpis(t, &scope, locale), None, None)
        } else {
            let shown = t.rows.len().min(options.max_html_rows);
            let note = (shown < t.rows.len()).then(|| {
                locale
                    .word(Word::RowsShown)
                    .replace("{shown}", &locale.value(shown as f64, ValueType::Int))
                    .replace(
                        "{total}",
                        &locale.value(t.rows.len() as f64, ValueType::Int),
                    )
            });
            let pivoted = block.pivot.as_ref().map(|p| t.pivoted(p, locale));
            let t = pivoted.as_ref().unwrap_or(t);
            (
                vec![],
                Some(table_view(
                    t,
                    shown.min(t.rows.len()),
                    result,
                    &names,
                    locale,
                )),
                note,
            )
        };
        blocks.push(BlockView {
            id: block.id.clone(),
            title: block.title.clone(),
            description: block.description.clone(),
            empty: t.rows.is_empty(),
            kpis,
            chart,
            table: table_view,
            note,
        });
    }
    let labelled = |values: &[(String, svodka_results::SettingValue)]| -> Vec<Pair> {
        values
            .iter()
            .map(|(n, v)| Pair {
                label: result.label(n).to_string(),
                value: v.to_string(),
            })
            .collect()
    };
    let (settings, parameters) = (labelled(&result.settings), labelled(&result.parameters));
    let words: HashMap<&str, &str> = [
        ("period", Word::Period),
        ("as_of", Word::AsOf),
        ("filters", Word::Filters),
        ("no_filters", Word::NoFilters),
        ("settings", Word::Settings),
        ("parameters", Word::Parameters),
        ("generated", Word::Generated),
        ("data_version", Word::DataVersion),
        ("timezone", Word::TimeZone),
        ("total", Word::Total),
        ("empty", Word::Empty),
        ("previous", Word::Previous),
    ]
    .into_iter()
    .map(|(k, w)| (k, locale.word(w)))
    .collect();
    let controls = options
        .live
        .as_ref()
        .map(|live| controls(result, live, &names, &filters));
    let mut env = Environment::new();
    env.add_filter("prose", |text: String| {
        minijinja::Value::from_safe_string(prose(&text))
    });
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| RenderError::Template(e.to_string()))?;
    let page = env
        .get_template("report.html")
        .and_then(|t| {
            t.render(context! {
                lang => locale.code(),
                report => &result.report,
                title => &result.title,
                description => &result.description,
                period => period,
                as_of => locale.date(result.params.as_of),
                timezone => result.params.timezone.name(),
                generated => options.generated_at.with_timezone(&tz).format("%d.%m.%Y %H:%M").to_string(),
                data_version => &options.data_version,
                filters => filters,
                filters_text => filters_text,
                settings => settings,
                parameters => parameters,
                words => words,
                blocks => blocks,
                live => options.live.is_some(),
                controls => controls,
                style => STYLE,
                script => SCRIPT,
            })
        })
        .map_err(|e| RenderError::Template(format!("{e:#}")))?;
    Ok(page)
}

/// The query's `key=value` pairs.
fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn join_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Period presets around the period's end, filter pickers from the ids and names seen in
/// the report, links that clear each filter, export links.
fn controls(
    result: &ReportResult,
    live: &crate::LivePage,
    names: &FilterNames,
    applied: &[Pair],
) -> Controls {
    let query = live.query.as_str();
    use chrono::{Datelike, Months};
    use svodka_schema::values::{month_end, month_start};
    let p = &result.params;
    let all = pairs(query);
    let rest: Vec<(String, String)> = all
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "from" | "to" | "as_of"))
        .cloned()
        .collect();
    let with_period = |from: chrono::NaiveDate, to: chrono::NaiveDate| {
        let mut q = vec![
            ("from".to_string(), from.to_string()),
            ("to".to_string(), to.to_string()),
        ];
        q.extend(rest.iter().cloned());
        format!("?{}", join_query(&q))
    };
    let end = p.to;
    let this_month = month_start(end);
    let prev = this_month
        .checked_sub_months(Months::new(1))
        .unwrap_or(this_month);
    let quarter = chrono::NaiveDate::from_ymd_opt(end.year(), (end.month0() / 3) * 3 + 1, 1)
        .unwrap_or(this_month);
    let year = chrono::NaiveDate::from_ymd_opt(end.year(), 1, 1).unwrap_or(this_month);
    let twelve = this_month
        .checked_sub_months(Months::new(11))
        .unwrap_or(this_month);
    let presets = [
        ("Месяц", this_month, month_end(end)),
        ("Прошлый месяц", prev, month_end(prev)),
        (
            "Квартал",
            quarter,
            month_end(
                quarter
                    .checked_add_months(Months::new(2))
                    .unwrap_or(quarter),
            ),
        ),
        (
            "Год",
            year,
            chrono::NaiveDate::from_ymd_opt(end.year(), 12, 31).unwrap_or(end),
        ),
        ("12 месяцев", twelve, month_end(end)),
    ]
    .into_iter()
    .map(|(label, f, t)| Link {
        label: label.into(),
        href: with_period(f, t),
    })
    .collect();
    let pickers = names
        .filters
        .iter()
        .filter_map(|f| {
            let labels = names.labels.get(f)?;
            let mut options: Vec<Pair> = labels
                .iter()
                .map(|(id, label)| Pair {
                    label: label.clone(),
                    value: id.clone(),
                })
                .collect();
            options.sort_by(|a, b| a.label.cmp(&b.label));
            let selected = p
                .filters
                .get(f)
                .map(|vs| vs.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default();
            Some(Picker {
                name: f.clone(),
                label: names.titles.get(f).cloned().unwrap_or_else(|| f.clone()),
                options,
                selected,
            })
        })
        .collect();
    let clear = p
        .filters
        .iter()
        .filter(|(_, vs)| !vs.is_empty())
        .zip(applied)
        .map(|((f, _), shown)| {
            let kept: Vec<(String, String)> = all.iter().filter(|(k, _)| k != f).cloned().collect();
            Link {
                label: format!("{}: {}", shown.label, shown.value),
                href: format!("?{}", join_query(&kept)),
            }
        })
        .collect();
    let sep = if query.is_empty() { "" } else { "&" };
    Controls {
        from: p.from.to_string(),
        to: p.to.to_string(),
        months: ((p.to.year() - p.from.year()) * 12 + p.to.month() as i32 - p.from.month() as i32
            + 1)
        .max(1),
        keep: rest
            .iter()
            .map(|(k, v)| Pair {
                label: k.clone(),
                value: v.clone(),
            })
            .collect(),
        presets,
        pickers,
        clear,
        export: format!("{}?{query}{sep}format=xlsx", live.export),
        block_export: live.block_export.clone(),
        query: format!("{query}{sep}format=xlsx"),
        refresh: live.refresh.clone(),
        jobs: live.jobs.clone(),
    }
}

/// KPI cards of a one-row block: each measure's value, definition, and change against the
/// comparison row when the block has one.
fn kpis(t: &Table, scope: &str, locale: Locale) -> Vec<Kpi> {
    let row = &t.rows[0].cells;
    t.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let change = t
                .previous
                .as_ref()
                .and_then(|p| change(&row[i], &p[i], c, locale));
            let mut tip = column_tip(c);
            tip.push('\n');
            tip.push_str(scope);
            Kpi {
                name: c.name.clone(),
                label: c.label.clone(),
                value: shown(locale, &row[i], c.ty),
                tip,
                change,
            }
        })
        .collect()
}

fn change(now: &Cell, before: &Cell, column: &ColumnMeta, locale: Locale) -> Option<Change> {
    let ty = column.ty;
    let value = |c: &Cell| match c {
        Cell::Int(v) => Some(*v as f64),
        Cell::Number(v) => Some(*v),
        _ => None,
    };
    let (a, b) = (value(now), value(before));
    let previous = shown(locale, before, ty);
    let b = b?;
    let a = a.unwrap_or(0.0);
    let delta = a - b;
    let dir = if delta.abs() < 0.005 {
        "flat"
    } else if delta > 0.0 {
        "up"
    } else {
        "down"
    };
    let arrow = match dir {
        "up" => "▲",
        "down" => "▼",
        _ => "■",
    };
    let text = if ty == ValueType::Percent {
        format!(
            "{arrow} {}\u{a0}{}",
            locale.number(delta, 1, false),
            locale.word(Word::PercentPoints)
        )
    } else if b.abs() > f64::EPSILON {
        format!(
            "{arrow} {}",
            locale.value(100.0 * delta / b.abs(), ValueType::Percent)
        )
    } else {
        format!("{arrow} {}", locale.value(delta, ty))
    };
    let tone = match (dir, column.lower_is_better) {
        ("flat", _) => "flat",
        ("up", false) | ("down", true) => "good",
        _ => "bad",
    };
    Some(Change {
        text,
        tone,
        previous,
    })
}

fn shown(locale: Locale, cell: &Cell, ty: ValueType) -> String {
    match cell {
        Cell::Null => "—".into(),
        c => locale.cell(c, ty),
    }
}

/// What hovering a number tells: its label, definition and description (as plain text:
/// a tip shows no markup).
fn column_tip(c: &ColumnMeta) -> String {
    let mut tip = format!("{} = {}", c.label, c.definition);
    if let Some(d) = &c.description {
        tip.push('\n');
        tip.push_str(&d.replace('`', ""));
    }
    tip
}

/// A description as HTML: escaped, its `code spans` (setting names, `as_of`) set as code —
/// the one piece of Markdown descriptions use. An unpaired backtick stays as it is.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let parts: Vec<&str> = text.split('`').collect();
    let paired = parts.len() % 2 == 1;
    for (k, part) in parts.iter().enumerate() {
        let escaped = crate::chart::xml_escape(part);
        match (k % 2 == 1, paired || k + 1 < parts.len()) {
            (true, true) => out.push_str(&format!("<code>{escaped}</code>")),
            (true, false) => out.push_str(&format!("`{escaped}")),
            _ => out.push_str(&escaped),
        }
    }
    out
}

/// Which dimension columns filter the report: `employee_id` (filter `employee`) and its
/// label column `employee` beside it; the labels of the ids, for the applied filters.
struct FilterNames {
    filters: Vec<String>,
    /// filter → id text → label seen beside it.
    labels: HashMap<String, HashMap<String, String>>,
    /// filter → the column label of its label column (`Сотрудник`).
    titles: HashMap<String, String>,
}

impl FilterNames {
    fn collect(result: &ReportResult, tables: &[Table]) -> FilterNames {
        let mut out = FilterNames {
            filters: result.filters.clone(),
            labels: HashMap::new(),
            titles: HashMap::new(),
        };
        for t in tables {
            for f in &result.filters {
                let id = t.columns.iter().position(|c| c.name == format!("{f}_id"));
                let label = t.columns.iter().position(|c| &c.name == f);
                if let (Some(id), Some(label)) = (id, label) {
                    out.titles
                        .entry(f.clone())
                        .or_insert_with(|| t.columns[label].label.clone());
                    let map = out.labels.entry(f.clone()).or_default();
                    for r in &t.rows {
                        if let (Cell::Int(v), Cell::Text(l)) = (&r.cells[id], &r.cells[label]) {
                            map.entry(v.to_string()).or_insert_with(|| l.clone());
                        }
                    }
                }
            }
        }
        out
    }

    /// The filter a dimension column sets, and the column holding the filter's value.
    fn of(&self, columns: &[ColumnMeta], i: usize) -> Option<(String, usize)> {
        let c = &columns[i];
        if !c.dimension {
            return None;
        }
        if let Some(f) = c.name.strip_suffix("_id")
            && self.filters.iter().any(|x| x == f)
        {
            return Some((f.to_string(), i));
        }
        if self.filters.contains(&c.name) {
            let id = format!("{}_id", c.name);
            return columns
                .iter()
                .position(|x| x.name == id)
                .map(|j| (c.name.clone(), j));
        }
        None
    }
}

fn applied_filters(result: &ReportResult, names: &FilterNames) -> Vec<Pair> {
    result
        .params
        .filters
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(f, values)| {
            let shown: Vec<String> = values
                .iter()
                .map(|v| {
                    let id = v.to_string();
                    match names.labels.get(f).and_then(|m| m.get(&id)) {
                        Some(label) => format!("{label} ({id})"),
                        None => id,
                    }
                })
                .collect();
            Pair {
                label: names.titles.get(f).cloned().unwrap_or_else(|| f.clone()),
                value: shown.join(", "),
            }
        })
        .collect()
}

/// A link into the CRM: the row's `url` for its `id` and `title`, or the page of the
/// entity an `{entity}_id` names, from the data set's `links`. Only http(s) addresses
/// become links.
fn crm_link(
    t: &Table,
    cells: &[Cell],
    column: &str,
    links: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let safe = |u: String| (u.starts_with("https://") || u.starts_with("http://")).then_some(u);
    if matches!(column, "id" | "title")
        && let Some(Cell::Text(u)) = t.get(cells, "url")
    {
        return safe(u.clone());
    }
    let template = links.get(column.strip_suffix("_id")?)?;
    let Some(Cell::Int(id)) = t.get(cells, column) else {
        return None;
    };
    safe(template.replace("{id}", &id.to_string()))
}

fn table_view(
    t: &Table,
    shown: usize,
    result: &ReportResult,
    names: &FilterNames,
    locale: Locale,
) -> TableView {
    let links = &result.params.links;
    // Hidden: the link column (ids and titles link instead), and ids of dimensions whose
    // names are shown beside them.
    let visible: Vec<usize> = (0..t.columns.len())
        .filter(|&i| {
            let c = &t.columns[i];
            if c.name == "url" && c.ty == ValueType::Text {
                return false;
            }
            !(c.dimension
                && c.name
                    .strip_suffix("_id")
                    .is_some_and(|base| t.columns.iter().any(|o| o.dimension && o.name == base)))
        })
        .collect();
    let numeric = |c: &ColumnMeta| c.ty.is_numeric() && c.ty != ValueType::Id;
    let cell_view = |cells: &[Cell], i: usize| -> CellView {
        let c = &t.columns[i];
        let filter = names.of(&t.columns, i).and_then(|(f, j)| match &cells[j] {
            Cell::Null => None,
            v => Some((f, locale.cell(v, ValueType::Id))),
        });
        CellView {
            text: if c.dimension {
                locale.column_label(c, &cells[i])
            } else {
                locale.cell(&cells[i], c.ty)
            },
            sort: sort_key(&cells[i]),
            numeric: numeric(c),
            href: crm_link(t, cells, &c.name, links),
            filter_value: filter.as_ref().map(|(_, v)| v.clone()),
            filter: filter.map(|(f, _)| f),
            indent: false,
        }
    };
    let first_dim = visible.iter().copied().find(|&i| t.columns[i].dimension);
    let groups = t.rows[..shown]
        .iter()
        .map(|row| {
            let mut children = Vec::new();
            for (level, rows) in t.levels.iter().zip(&row.children) {
                for child in rows {
                    children.push(child_cells(t, &visible, first_dim, level, child, locale));
                }
            }
            Group {
                cells: visible.iter().map(|&i| cell_view(&row.cells, i)).collect(),
                children,
            }
        })
        .collect();
    TableView {
        columns: visible
            .iter()
            .map(|&i| {
                let c = &t.columns[i];
                ColumnView {
                    name: c.name.clone(),
                    label: c.label.clone(),
                    tip: column_tip(c),
                    numeric: numeric(c),
                }
            })
            .collect(),
        groups,
        totals: t.totals.as_ref().map(|cells| {
            visible
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let mut v = cell_view(cells, i);
                    v.href = None;
                    v.filter = None;
                    if t.columns[i].dimension {
                        v.text.clear();
                    }
                    if k == 0 && v.text.is_empty() {
                        v.text = locale.word(Word::Total).into();
                    }
                    v
                })
                .collect()
        }),
        expandable: !t.levels.is_empty(),
    }
}

/// A child row under the parent's columns: its own dimensions in the first dimension
/// column, its measures under the parent's measures of the same names.
fn child_cells(
    t: &Table,
    visible: &[usize],
    first_dim: Option<usize>,
    level: &crate::table::Level,
    child: &[Cell],
    locale: Locale,
) -> Vec<CellView> {
    let label = level.label(child, locale);
    visible
        .iter()
        .map(|&i| {
            let c = &t.columns[i];
            if Some(i) == first_dim {
                return CellView {
                    text: label.clone(),
                    indent: true,
                    ..CellView::default()
                };
            }
            match level
                .columns
                .iter()
                .position(|x| x.name == c.name && !x.dimension)
            {
                Some(j) => CellView {
                    text: locale.cell(&child[j], c.ty),
                    sort: sort_key(&child[j]),
                    numeric: c.ty.is_numeric() && c.ty != ValueType::Id,
                    ..CellView::default()
                },
                None => CellView::default(),
            }
        })
        .collect()
}

/// What a column sorts by: numbers as numbers, dates ISO, text as is.
fn sort_key(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Int(v) => v.to_string(),
        Cell::Number(v) => v.to_string(),
        Cell::Text(s) => s.clone(),
        Cell::Bool(b) => (*b as u8).to_string(),
        Cell::Date(d) => d.to_string(),
        Cell::Timestamp(t) => t.to_rfc3339(),
    }
}
