//! Charts from a block's chart hint: the data (categories × series, shared by the SVG of
//! the HTML page and the native chart of the workbook) and its drawing as inline SVG.

use std::fmt::Write;

use svodka_results::{ChartKind, ChartSpec, ValueType};

use crate::format::Locale;
use crate::table::Table;
use crate::values::Cell;

/// What a chart shows: a value per category and series.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    pub kind: ChartKind,
    /// The label of the category axis.
    pub x_label: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    /// How values read (money, percent…): the first `y` column's type.
    pub value_type: ValueType,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// One per category; `None` where the category has no row of this series.
    pub values: Vec<Option<f64>>,
}

/// The chart's data from the block's rows: categories in row order (by value for dates and
/// numbers, so a line runs through time), a series per `y` column, or per value of
/// `series` (× `y` when there are several); rows with the same category and series add up.
pub fn chart_data(spec: &ChartSpec, t: &Table, locale: Locale) -> Option<ChartData> {
    let col = |name: &str| t.columns.iter().position(|c| c.name == name);
    let x = col(&spec.x)?;
    let ys: Vec<usize> = spec.y.iter().filter_map(|y| col(y)).collect();
    let first_y = *ys.first()?;
    let series_col = spec.series.as_deref().and_then(col);
    let x_ty = t.columns[x].ty;
    // Categories: distinct x cells.
    let mut cats: Vec<&Cell> = Vec::new();
    for r in &t.rows {
        let c = &r.cells[x];
        if !cats.contains(&c) {
            cats.push(c);
        }
    }
    if matches!(
        x_ty,
        ValueType::Date | ValueType::Timestamp | ValueType::Int | ValueType::Number
    ) {
        cats.sort_by(|a, b| cell_order(a, b));
    }
    let mut series: Vec<(Option<&Cell>, usize, Series)> = Vec::new();
    for r in &t.rows {
        let cat = cats.iter().position(|c| *c == &r.cells[x]).unwrap_or(0);
        for &y in &ys {
            let key = series_col.map(|s| &r.cells[s]);
            let i = match series.iter().position(|(k, yy, _)| *k == key && *yy == y) {
                Some(i) => i,
                None => {
                    let label = &t.columns[y].label;
                    let name = match key {
                        Some(k) => {
                            let k = locale.label(k, t.columns[series_col.unwrap_or(y)].ty);
                            if ys.len() > 1 {
                                format!("{k} — {label}")
                            } else {
                                k
                            }
                        }
                        None => label.clone(),
                    };
                    series.push((
                        key,
                        y,
                        Series {
                            name,
                            values: vec![None; cats.len()],
                        },
                    ));
                    series.len() - 1
                }
            };
            if let Some(v) = number(&r.cells[y]) {
                let slot = &mut series[i].2.values[cat];
                *slot = Some(slot.unwrap_or(0.0) + v);
            }
        }
    }
    // A line needs two points: over one period (a month's run by months) it would be a
    // column of unconnected dots, so it is drawn as bars.
    let kind = match spec.kind {
        ChartKind::Line if cats.len() < 2 => ChartKind::Bar,
        kind => kind,
    };
    Some(ChartData {
        kind,
        x_label: t.columns[x].label.clone(),
        categories: {
            // Periods that all start a month read as months (`ноя 2026`).
            use chrono::Datelike;
            let months = cats
                .iter()
                .all(|c| matches!(c, Cell::Date(d) if d.day() == 1));
            cats.iter()
                .map(|c| match c {
                    Cell::Date(d) if months => locale.month(*d),
                    c => locale.column_label(&t.columns[x], c),
                })
                .collect()
        },
        series: series.into_iter().map(|(_, _, s)| s).collect(),
        value_type: t.columns[first_y].ty,
    })
}

fn number(c: &Cell) -> Option<f64> {
    match c {
        Cell::Int(v) => Some(*v as f64),
        Cell::Number(v) => Some(*v),
        _ => None,
    }
}

fn cell_order(a: &Cell, b: &Cell) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Greater,
        (_, Cell::Null) => Ordering::Less,
        (Cell::Date(a), Cell::Date(b)) => a.cmp(b),
        (Cell::Timestamp(a), Cell::Timestamp(b)) => a.cmp(b),
        _ => number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal),
    }
}

/// Colours of series and slices, distinguishable and printable.
pub const PALETTE: [&str; 10] = [
    "#2f6fde", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#7f7f7f",
];

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 72.0;

/// The chart as an `<svg>` element. Every mark (bar, point, slice, step) has class `mark`,
/// a `<title>` and a `data-tip` with its category, series and value.
pub fn svg(data: &ChartData, locale: Locale) -> String {
    let mut out = String::new();
    let legend = legend(data, locale);
    let height = match data.kind {
        ChartKind::Pie => {
            pie(&mut out, data, locale);
            H
        }
        ChartKind::Funnel => funnel(&mut out, data, locale),
        ChartKind::Heatmap => heatmap(&mut out, data, locale),
        _ => {
            axes_chart(&mut out, data, locale);
            H
        }
    };
    format!(
        "<figure class=\"chart chart-{kind}\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height:.0}\" role=\"img\" aria-label=\"{label}\">{out}</svg>{legend}</figure>",
        kind = kind_name(data.kind),
        label = xml_escape(&data.x_label),
    )
}

fn kind_name(k: ChartKind) -> &'static str {
    match k {
        ChartKind::Bar => "bar",
        ChartKind::StackedBar => "stacked_bar",
        ChartKind::Line => "line",
        ChartKind::Pie => "pie",
        ChartKind::Funnel => "funnel",
        ChartKind::Heatmap => "heatmap",
    }
}

/// The heatmap's colours: the lowest value lightest, the highest darkest.
const HEAT_LOW: (u8, u8, u8) = (0xee, 0xf4, 0xfd);
const HEAT_HIGH: (u8, u8, u8) = (0x1f, 0x4f, 0xa8);

/// The colour at `t` (0–1) of the heatmap's scale, as `0xRRGGBB`.
pub fn heat_rgb(t: f64) -> u32 {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u32;
    (mix(HEAT_LOW.0, HEAT_HIGH.0) << 16)
        | (mix(HEAT_LOW.1, HEAT_HIGH.1) << 8)
        | mix(HEAT_LOW.2, HEAT_HIGH.2)
}

/// The colour at `t` (0–1) of the heatmap's scale, as CSS writes it.
fn heat_colour(t: f64) -> String {
    format!("#{:06x}", heat_rgb(t))
}

/// The lowest and highest value of a chart's cells.
fn value_range(data: &ChartData) -> Option<(f64, f64)> {
    let values = data.series.iter().flat_map(|s| s.values.iter().flatten());
    values.fold(None, |r, &v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A row per series, a column per category, each cell coloured by its value and labelled
/// with it where it fits; an empty cell stays blank. Returns the height.
fn heatmap(out: &mut String, data: &ChartData, locale: Locale) -> f64 {
    const ROW: f64 = 24.0;
    let (lo, hi) = value_range(data).unwrap_or((0.0, 0.0));
    let n = data.categories.len().max(1);
    let width = (W - LEFT - RIGHT) / n as f64;
    for (r, s) in data.series.iter().enumerate() {
        let y = TOP + ROW * r as f64;
        let name: String = if s.name.chars().count() > 14 {
            s.name.chars().take(13).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        let _ = write!(
            out,
            "<text class=\"category\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}<title>{}</title></text>",
            LEFT - 6.0,
            y + ROW / 2.0 + 4.0,
            xml_escape(&name),
            xml_escape(&s.name)
        );
        for (c, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
            let x = LEFT + width * c as f64;
            let tip = format!(
                "{} · {}: {}",
                s.name,
                data.categories[c],
                locale.value(*v, data.value_type)
            );
            let _ = write!(
                out,
                "<rect {} x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">{}</rect>",
                mark_attrs(&tip),
                (width - 1.0).max(1.0),
                ROW - 1.0,
                heat_colour(t),
                title(&tip)
            );
            if width >= 30.0 {
                let ink = if t > 0.55 { "#ffffff" } else { "#1d2733" };
                let _ = write!(
                    out,
                    "<text class=\"cell-value\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{ink}\" pointer-events=\"none\">{}</text>",
                    x + width / 2.0,
                    y + ROW / 2.0 + 4.0,
                    xml_escape(&short_number(*v, locale))
                );
            }
        }
    }
    let bottom = TOP + ROW * data.series.len() as f64;
    category_labels(out, &data.categories, width, bottom + 14.0);
    bottom + BOTTOM
}

/// The categories under a plot whose columns are `band` wide, angled, at `y`: every k-th
/// when they would overlap, long ones cut (the whole text on hover).
fn category_labels(out: &mut String, categories: &[String], band: f64, y: f64) {
    let every = ((categories.len() as f64 * 60.0) / (W - LEFT - RIGHT))
        .ceil()
        .max(1.0) as usize;
    for (i, c) in categories.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let x = LEFT + band * (i as f64 + 0.5);
        let label: String = if c.chars().count() > 16 {
            c.chars().take(15).chain(['…']).collect()
        } else {
            c.clone()
        };
        let _ = write!(
            out,
            "<text class=\"category\" x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {x:.1} {y:.1})\">{}<title>{}</title></text>",
            xml_escape(&label),
            xml_escape(c)
        );
    }
}

fn legend(data: &ChartData, locale: Locale) -> String {
    let names: Vec<&str> = match data.kind {
        ChartKind::Pie => data.categories.iter().map(String::as_str).collect(),
        ChartKind::Funnel => return String::new(),
        ChartKind::Heatmap => {
            // The colour scale, from the lowest value to the highest.
            let Some((lo, hi)) = value_range(data) else {
                return String::new();
            };
            return format!(
                "<div class=\"heat-legend\"><span>{}</span><span class=\"heat-scale\" style=\"background:linear-gradient(to right,{},{})\"></span><span>{}</span></div>",
                xml_escape(&locale.value(lo, data.value_type)),
                heat_colour(0.0),
                heat_colour(1.0),
                xml_escape(&locale.value(hi, data.value_type))
            );
        }
        _ if data.series.len() < 2 => return String::new(),
        _ => data.series.iter().map(|s| s.name.as_str()).collect(),
    };
    let mut out = String::from("<ul class=\"legend\">");
    for (i, n) in names.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
            PALETTE[i % PALETTE.len()],
            xml_escape(n)
        );
    }
    out.push_str("</ul>");
    out
}

fn mark_attrs(tip: &str) -> String {
    format!("class=\"mark\" data-tip=\"{}\"", xml_escape(tip))
}

fn title(tip: &str) -> String {
    format!("<title>{}</title>", xml_escape(tip))
}

/// A rounded step for about five grid lines over `span`.
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let nice = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 2.5 {
        2.5
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Bar, stacked bar and line charts: a value axis with grid lines, categories below.
fn axes_chart(out: &mut String, data: &ChartData, locale: Locale) {
    let stacked = data.kind == ChartKind::StackedBar;
    let n = data.categories.len().max(1);
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for c in 0..data.categories.len() {
        if stacked {
            let (pos, neg) = data.series.iter().fold((0.0, 0.0), |(p, m), s| {
                let v = s.values[c].unwrap_or(0.0);
                if v >= 0.0 { (p + v, m) } else { (p, m + v) }
            });
            hi = hi.max(pos);
            lo = lo.min(neg);
        } else {
            for s in &data.series {
                if let Some(v) = s.values[c] {
                    hi = hi.max(v);
                    lo = lo.min(v);
                }
            }
        }
    }
    let step = nice_step(hi - lo);
    let hi = if hi <= 0.0 && lo >= 0.0 {
        step
    } else {
        (hi / step).ceil() * step
    };
    let lo = (lo / step).floor() * step;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y_of = |v: f64| TOP + plot_h * (hi - v) / (hi - lo);
    // Grid and value labels.
    let mut v = lo;
    while v <= hi + step / 2.0 {
        let y = y_of(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            xml_escape(&short_number(v, locale))
        );
        v += step;
    }
    let band = plot_w / n as f64;
    category_labels(out, &data.categories, band, H - BOTTOM + 14.0);
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        W - RIGHT,
        y_of(0.0),
        y_of(0.0)
    );
    let tip = |c: usize, s: &Series, v: f64| {
        format!(
            "{} · {}: {}",
            data.categories[c],
            s.name,
            locale.value(v, data.value_type)
        )
    };
    match data.kind {
        ChartKind::Line => {
            for (k, s) in data.series.iter().enumerate() {
                let color = PALETTE[k % PALETTE.len()];
                let points: Vec<(usize, f64)> = s
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(c, v)| v.map(|v| (c, v)))
                    .collect();
                let path: Vec<String> = points
                    .iter()
                    .map(|(c, v)| format!("{:.1},{:.1}", LEFT + band * (*c as f64 + 0.5), y_of(*v)))
                    .collect();
                let _ = write!(
                    out,
                    "<polyline class=\"line\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                    path.join(" ")
                );
                for (c, v) in points {
                    let t = tip(c, s, v);
                    let _ = write!(
                        out,
                        "<circle {} cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\">{}</circle>",
                        mark_attrs(&t),
                        LEFT + band * (c as f64 + 0.5),
                        y_of(v),
                        title(&t)
                    );
                }
            }
        }
        _ => {
            let groups = if stacked { 1 } else { data.series.len().max(1) };
            let inner = band * 0.8;
            let bar_w = inner / groups as f64;
            for c in 0..data.categories.len() {
                let (mut up, mut down) = (0.0f64, 0.0f64);
                for (k, s) in data.series.iter().enumerate() {
                    let Some(v) = s.values[c] else { continue };
                    let color = PALETTE[k % PALETTE.len()];
                    let x0 = LEFT + band * c as f64 + band * 0.1;
                    let (x, base) = if stacked {
                        let base = if v >= 0.0 { up } else { down };
                        if v >= 0.0 {
                            up += v
                        } else {
                            down += v
                        }
                        (x0, base)
                    } else {
                        (x0 + bar_w * k as f64, 0.0)
                    };
                    let (y1, y2) = (y_of(base + v), y_of(base));
                    let t = tip(c, s, v);
                    let _ = write!(
                        out,
                        "<rect {} x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\">{}</rect>",
                        mark_attrs(&t),
                        y1.min(y2),
                        (bar_w - 1.0).max(1.0),
                        (y2 - y1).abs().max(0.5),
                        title(&t)
                    );
                }
            }
        }
    }
}

/// Axis numbers kept short: 1,5 млн / 1.5M.
fn short_number(v: f64, locale: Locale) -> String {
    let (k, m, b) = match locale {
        Locale::Ru => ("\u{a0}тыс.", "\u{a0}млн", "\u{a0}млрд"),
        Locale::En => ("K", "M", "B"),
    };
    let a = v.abs();
    if a >= 1e9 {
        format!("{}{b}", locale.number(v / 1e9, 1, false))
    } else if a >= 1e6 {
        format!("{}{m}", locale.number(v / 1e6, 1, false))
    } else if a >= 1e4 {
        format!("{}{k}", locale.number(v / 1e3, 0, false))
    } else {
        locale.number(v, 1, false)
    }
}

/// A donut of the first series: a slice per category with its share.
fn pie(out: &mut String, data: &ChartData, locale: Locale) {
    let Some(s) = data.series.first() else { return };
    let total: f64 = s.values.iter().flatten().filter(|v| **v > 0.0).sum();
    let (cx, cy, r, hole) = (W / 2.0, H / 2.0, H / 2.0 - 12.0, (H / 2.0 - 12.0) * 0.55);
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, v) in s.values.iter().enumerate() {
        let v = v.unwrap_or(0.0);
        if v <= 0.0 || total <= 0.0 {
            continue;
        }
        let share = v / total;
        let t = format!(
            "{}: {} ({})",
            data.categories[i],
            locale.value(v, data.value_type),
            locale.value(share * 100.0, ValueType::Percent)
        );
        let color = PALETTE[i % PALETTE.len()];
        let sweep = (share * std::f64::consts::TAU).min(std::f64::consts::TAU - 1e-4);
        let (a0, a1) = (angle, angle + sweep);
        let large = if sweep > std::f64::consts::PI { 1 } else { 0 };
        let p = |a: f64, rr: f64| (cx + rr * a.cos(), cy + rr * a.sin());
        let (x0, y0) = p(a0, r);
        let (x1, y1) = p(a1, r);
        let (x2, y2) = p(a1, hole);
        let (x3, y3) = p(a0, hole);
        let _ = write!(
            out,
            "<path {} fill=\"{color}\" d=\"M{x0:.2},{y0:.2} A{r:.2},{r:.2} 0 {large} 1 {x1:.2},{y1:.2} L{x2:.2},{y2:.2} A{hole:.2},{hole:.2} 0 {large} 0 {x3:.2},{y3:.2} Z\">{}</path>",
            mark_attrs(&t),
            title(&t)
        );
        angle = a1;
    }
    let _ = write!(
        out,
        "<text class=\"pie-total\" x=\"{cx}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        cy + 5.0,
        xml_escape(&locale.value(total, data.value_type))
    );
}

/// Steps as centred bars narrowing with the value, each with its share of the first step.
/// Returns the drawing's height.
fn funnel(out: &mut String, data: &ChartData, locale: Locale) -> f64 {
    let Some(s) = data.series.first() else {
        return H;
    };
    let n = data.categories.len().max(1);
    let max = s.values.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    let first = s.values.first().copied().flatten().unwrap_or(0.0);
    let row_h = ((H - 8.0) / n as f64).min(40.0);
    let label_w = 220.0;
    let plot_w = W - label_w - 16.0;
    for (i, v) in s.values.iter().enumerate() {
        let v = v.unwrap_or(0.0);
        let w = if max > 0.0 { plot_w * v / max } else { 0.0 };
        let x = label_w + (plot_w - w) / 2.0;
        let y = 4.0 + row_h * i as f64;
        let share = if first > 0.0 {
            format!(" ({})", locale.value(100.0 * v / first, ValueType::Percent))
        } else {
            String::new()
        };
        let t = format!(
            "{}: {}{share}",
            data.categories[i],
            locale.value(v, data.value_type)
        );
        let _ = write!(
            out,
            "<rect {} x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">{}</rect><text class=\"category\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text class=\"value\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            mark_attrs(&t),
            y + 2.0,
            w.max(1.0),
            (row_h - 4.0).max(2.0),
            PALETTE[0],
            title(&t),
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            xml_escape(&data.categories[i]),
            label_w + plot_w / 2.0,
            y + row_h / 2.0 + 4.0,
            xml_escape(&format!("{}{share}", locale.value(v, data.value_type)))
        );
    }
    8.0 + row_h * n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Row;
    use svodka_results::ColumnMeta;

    fn dynamics() -> Table {
        let col = |name: &str, ty, dimension| ColumnMeta {
            name: name.into(),
            label: name.to_uppercase(),
            ty,
            definition: String::new(),
            description: None,
            dimension,
            lower_is_better: false,
            value_labels: vec![],
        };
        let d = |m| Cell::Date(chrono::NaiveDate::from_ymd_opt(2026, m, 1).unwrap());
        let row = |e: &str, m, v| Row {
            cells: vec![Cell::Text(e.into()), d(m), Cell::Int(v)],
            children: vec![],
        };
        Table {
            columns: vec![
                col("employee", ValueType::Text, true),
                col("period_start", ValueType::Date, true),
                col("calls", ValueType::Int, false),
            ],
            // Sorted by employee: B's October comes after A's November.
            rows: vec![
                row("A", 11, 10),
                row("A", 12, 7),
                row("B", 10, 5),
                row("B", 11, 1),
            ],
            totals: None,
            previous: None,
            levels: vec![],
        }
    }

    #[test]
    fn a_series_per_value_of_the_series_column() {
        let spec = ChartSpec {
            kind: ChartKind::Line,
            x: "period_start".into(),
            y: vec!["calls".into()],
            series: Some("employee".into()),
        };
        let d = chart_data(&spec, &dynamics(), Locale::Ru).unwrap();
        assert_eq!(d.categories, ["окт 2026", "ноя 2026", "дек 2026"]);
        assert_eq!(d.series.len(), 2);
        assert_eq!(d.series[0].name, "A");
        assert_eq!(d.series[0].values, [None, Some(10.0), Some(7.0)]);
        assert_eq!(d.series[1].values, [Some(5.0), Some(1.0), None]);
        let svg = svg(&d, Locale::Ru);
        assert_eq!(svg.matches("<circle class=\"mark\"").count(), 4);
    }

    #[test]
    fn a_line_over_one_period_is_drawn_as_bars() {
        let spec = ChartSpec {
            kind: ChartKind::Line,
            x: "period_start".into(),
            y: vec!["calls".into()],
            series: Some("employee".into()),
        };
        let mut one_month = dynamics();
        one_month.rows.truncate(1);
        let d = chart_data(&spec, &one_month, Locale::Ru).unwrap();
        assert_eq!(d.kind, ChartKind::Bar);
        let svg = svg(&d, Locale::Ru);
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 0);
        // Two periods or more stay a line.
        assert_eq!(
            chart_data(&spec, &dynamics(), Locale::Ru).unwrap().kind,
            ChartKind::Line
        );
    }

    #[test]
    fn a_heatmap_colours_each_cell_by_its_value() {
        let spec = ChartSpec {
            kind: ChartKind::Heatmap,
            x: "period_start".into(),
            y: vec!["calls".into()],
            series: Some("employee".into()),
        };
        let d = chart_data(&spec, &dynamics(), Locale::Ru).unwrap();
        let svg = svg(&d, Locale::Ru);
        // A cell per value (A: Nov 10, Dec 7; B: Oct 5, Nov 1), none for the empty ones.
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 4);
        assert!(
            svg.contains("fill=\"#1f4fa8\""),
            "10, the highest, is darkest"
        );
        assert!(
            svg.contains("fill=\"#eef4fd\""),
            "1, the lowest, is lightest"
        );
        assert!(svg.contains("data-tip=\"A · ноя 2026: 10\""), "{svg}");
        assert!(svg.contains("class=\"heat-scale\""));
        assert_eq!(heat_colour(f64::NAN), heat_colour(0.0));
    }

    #[test]
    fn long_category_names_are_cut_and_whole_on_hover() {
        let spec = ChartSpec {
            kind: ChartKind::Bar,
            x: "employee".into(),
            y: vec!["calls".into()],
            series: None,
        };
        let mut t = dynamics();
        t.rows[0].cells[0] = Cell::Text("Отдел оптовых продаж Северо-Запада".into());
        let svg = svg(&chart_data(&spec, &t, Locale::Ru).unwrap(), Locale::Ru);
        assert!(
            svg.contains("transform=\"rotate(-35")
                && svg
                    .contains(">Отдел оптовых п…<title>Отдел оптовых продаж Северо-Запада</title>"),
            "{svg}"
        );
    }

    #[test]
    fn rows_of_the_same_category_add_up_without_a_series() {
        let spec = ChartSpec {
            kind: ChartKind::StackedBar,
            x: "period_start".into(),
            y: vec!["calls".into()],
            series: None,
        };
        let d = chart_data(&spec, &dynamics(), Locale::Ru).unwrap();
        assert_eq!(d.series.len(), 1);
        assert_eq!(d.series[0].name, "CALLS");
        assert_eq!(d.series[0].values, [Some(5.0), Some(11.0), Some(7.0)]);
        assert_eq!(
            svg(&d, Locale::Ru).matches("<rect class=\"mark\"").count(),
            3
        );
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(1_000_000.0), 200_000.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            xml_escape("<img src=x onerror=\"a\">&'"),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
    }
}
