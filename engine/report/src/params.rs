//! Run parameters: the period, `as_of`, the time zone and the report filters, resolved by
//! the rules of reports.md and turned into the values plans bind (`$from`, `$as_of_end`…).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use datafusion::scalar::ScalarValue;

use crate::catalog::FILTERS;
use crate::error::{ReportError, did_you_mean};
use crate::time::{day_start_micros, days_since_epoch, month_end, month_start};

/// The longest period a run accepts; longer ones are refused rather than computed.
pub const MAX_PERIOD_DAYS: i64 = 25 * 366;

pub use svodka_results::{FilterValue, RunInfo};

/// The literal a filter value becomes inside a plan.
pub fn filter_scalar(value: &FilterValue) -> ScalarValue {
    match value {
        FilterValue::Id(v) => ScalarValue::Int64(Some(*v)),
        FilterValue::Text(v) => ScalarValue::Utf8(Some(v.clone())),
    }
}

/// Everything that varies between two runs of the same report besides settings: the run
/// as results show it (`RunInfo`, whose fields read through), with the rules that
/// resolve, shift and bind it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunParams(pub RunInfo);

impl std::ops::Deref for RunParams {
    type Target = RunInfo;
    fn deref(&self) -> &RunInfo {
        &self.0
    }
}

impl std::ops::DerefMut for RunParams {
    fn deref_mut(&mut self) -> &mut RunInfo {
        &mut self.0
    }
}

/// `$link_{entity}`: the page address of each entity of `svodka_schema::LINKED_ENTITIES`,
/// with `{id}` where its id goes (null when the data set has none).
pub const LINK_BINDINGS: [(&str, &str); 4] = [
    ("deal", "link_deal"),
    ("lead", "link_lead"),
    ("company", "link_company"),
    ("contact", "link_contact"),
];

impl RunParams {
    /// The portal URL and the page links land in every output (a page's links, the JSON's
    /// `url`, workbooks), so each must be a web address: `javascript:` and the like are
    /// refused, whichever file or flag gave them.
    pub fn check_addresses(&self) -> Result<(), ReportError> {
        let urls = self
            .portal_url
            .iter()
            .map(|u| ("portal_url".to_string(), u))
            .chain(self.links.iter().map(|(e, t)| (format!("links.{e}"), t)));
        for (name, url) in urls.filter(|(_, u)| !u.is_empty()) {
            let lower = url.trim().to_ascii_lowercase();
            let web = ["http://", "https://"]
                .iter()
                .any(|s| lower.starts_with(s) && lower.len() > s.len());
            if web && !url.chars().any(|c| c.is_control() || c.is_whitespace()) {
                continue;
            }
            let shown: String = url.chars().take(80).collect();
            return Err(ReportError::bad_input(
                name,
                format!(
                    "{shown:?} is not a web address: give https://… (the CRM portal's address)"
                ),
            ));
        }
        Ok(())
    }

    /// `links` from a data set's templates: `{portal}` becomes the portal's address; a
    /// template that needs a portal when none is known gives no link.
    pub fn set_links(&mut self, templates: &BTreeMap<String, String>) {
        let portal = self.portal_url.as_deref().map(|p| p.trim_end_matches('/'));
        self.links = templates
            .iter()
            .filter_map(|(entity, t)| match (t.contains("{portal}"), portal) {
                (false, _) => Some((entity.clone(), t.clone())),
                (true, Some(p)) if !p.is_empty() => {
                    Some((entity.clone(), t.replace("{portal}", p)))
                }
                (true, _) => None,
            })
            .collect();
    }

    /// Applies the defaults of reports.md: the period defaults to the month of `today`;
    /// `as_of` defaults to the period's last day, or `today` if that is earlier.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        as_of: Option<NaiveDate>,
        today: NaiveDate,
        timezone: Tz,
    ) -> Result<RunParams, ReportError> {
        let (from, to) = match (from, to) {
            (Some(f), Some(t)) => (f, t),
            (Some(f), None) => (f, month_end(f).max(f)),
            (None, Some(t)) => (month_start(t), t),
            (None, None) => (month_start(today), month_end(today)),
        };
        if from > to {
            return Err(ReportError::bad_input(
                "from",
                format!("the period starts ({from}) after it ends ({to})"),
            ));
        }
        if (to - from).num_days() > MAX_PERIOD_DAYS {
            return Err(ReportError::bad_input(
                "to",
                format!("the period {from} – {to} is longer than 25 years"),
            ));
        }
        let as_of = as_of.unwrap_or_else(|| to.min(today));
        Ok(RunParams(RunInfo {
            from,
            to,
            as_of,
            timezone,
            filters: BTreeMap::new(),
            portal_url: None,
            links: BTreeMap::new(),
        }))
    }

    /// The run as outputs show it.
    pub fn info(&self) -> RunInfo {
        self.0.clone()
    }

    /// Adds values to filter `name` (employee, department, pipeline, source), parsing
    /// them as that filter requires.
    pub fn add_filter(&mut self, name: &str, values: &[String]) -> Result<(), ReportError> {
        let Some((_, is_id)) = FILTERS.iter().find(|(f, _)| *f == name) else {
            return Err(ReportError::bad_input(
                name,
                format!(
                    "unknown filter{}",
                    did_you_mean(name, FILTERS.iter().map(|(f, _)| *f))
                ),
            ));
        };
        if values.is_empty() {
            return Ok(());
        }
        let entry = self.filters.entry(name.to_string()).or_default();
        for v in values {
            let value = if *is_id {
                FilterValue::Id(v.trim().parse().map_err(|_| {
                    ReportError::bad_input(name, format!("expected a numeric id, got {v:?}"))
                })?)
            } else {
                FilterValue::Text(v.clone())
            };
            if !entry.contains(&value) {
                entry.push(value);
            }
        }
        entry.sort();
        Ok(())
    }

    /// The same run over another period of the calendar: the same dates a year or a month
    /// earlier (a month's last day to the previous month's last), or the period just
    /// before — as many whole calendar months when the period is whole months (November →
    /// October, Q4 → Q3), else as many days; `as_of` moves with the period.
    pub fn shifted(&self, shift: crate::spec::Shift) -> RunParams {
        use crate::spec::Shift;
        use crate::time::{month_end, month_start};
        let months_back = |d: NaiveDate, n: u32| {
            let back = d.checked_sub_months(chrono::Months::new(n)).unwrap_or(d);
            if d == month_end(d) {
                month_end(back)
            } else {
                back
            }
        };
        let back = |n: u32| {
            (
                months_back(self.from, n),
                months_back(self.to, n),
                months_back(self.as_of, n),
            )
        };
        let (from, to, as_of) = match shift {
            Shift::PreviousYear => back(12),
            Shift::PreviousMonth => back(1),
            Shift::PreviousPeriod
                if self.from == month_start(self.from) && self.to == month_end(self.to) =>
            {
                let months = (self.to.year() - self.from.year()) * 12 + self.to.month() as i32
                    - self.from.month() as i32
                    + 1;
                back(months.max(1) as u32)
            }
            Shift::PreviousPeriod => {
                let len = chrono::Duration::days((self.to - self.from).num_days() + 1);
                (self.from - len, self.to - len, self.as_of - len)
            }
        };
        RunParams(RunInfo {
            from,
            to,
            as_of,
            ..self.0.clone()
        })
    }

    /// The built-in values every plan may use as `$name`.
    pub fn bindings(&self) -> Vec<(&'static str, ScalarValue)> {
        let tz = self.timezone;
        let ts = |micros: i64| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        let next = |d: NaiveDate| d.succ_opt().unwrap_or(d);
        let mut out = vec![
            (
                "from",
                ScalarValue::Date32(Some(days_since_epoch(self.from))),
            ),
            ("to", ScalarValue::Date32(Some(days_since_epoch(self.to)))),
            ("period_start", ts(day_start_micros(self.from, tz))),
            ("period_end", ts(day_start_micros(next(self.to), tz))),
            (
                "as_of",
                ScalarValue::Date32(Some(days_since_epoch(self.as_of))),
            ),
            ("as_of_end", ts(day_start_micros(next(self.as_of), tz))),
            (
                "portal_url",
                ScalarValue::Utf8(self.portal_url.clone().filter(|u| !u.is_empty())),
            ),
        ];
        for (entity, name) in LINK_BINDINGS {
            out.push((name, ScalarValue::Utf8(self.links.get(entity).cloned())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_url_is_a_web_address() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let mut p = RunParams::resolve(Some(day), None, None, day, chrono_tz::UTC).unwrap();
        for ok in [
            None,
            Some(""),
            Some("https://acme.bitrix24.ru"),
            Some("HTTP://crm.local:8080"),
        ] {
            p.portal_url = ok.map(str::to_string);
            assert!(p.check_addresses().is_ok(), "{ok:?}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript://x%0aalert(1)",
            "data:text/html,x",
            "https://",
            "https://a b",
            "//evil.example",
            "https://x\n",
        ] {
            p.portal_url = Some(bad.to_string());
            let e = p.check_addresses().unwrap_err().to_string();
            assert!(
                e.starts_with("portal_url: ") && e.contains("not a web address"),
                "{bad}: {e}"
            );
        }
    }

    /// A data set's link templates get the portal; one that needs a portal when none is
    /// known gives no link; a template that is no web address is refused like the portal.
    #[test]
    fn links_take_the_portal_and_are_web_addresses() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let mut p = RunParams::resolve(Some(day), None, None, day, chrono_tz::UTC).unwrap();
        let templates: BTreeMap<String, String> = [
            ("deal", "{portal}/leads/detail/{id}"),
            ("lead", "https://fixed.example/l/{id}"),
        ]
        .map(|(e, t)| (e.to_string(), t.to_string()))
        .into();
        p.set_links(&templates);
        assert_eq!(p.links.len(), 1, "no portal: no deal link");
        assert_eq!(p.links["lead"], "https://fixed.example/l/{id}");
        p.portal_url = Some("https://acme.amocrm.ru/".into());
        p.set_links(&templates);
        assert_eq!(p.links["deal"], "https://acme.amocrm.ru/leads/detail/{id}");
        let bound: BTreeMap<&str, ScalarValue> = p.bindings().into_iter().collect();
        assert_eq!(
            bound["link_deal"],
            ScalarValue::Utf8(Some("https://acme.amocrm.ru/leads/detail/{id}".into()))
        );
        assert_eq!(bound["link_company"], ScalarValue::Utf8(None));
        p.links
            .insert("contact".into(), "javascript:alert({id})".into());
        let e = p.check_addresses().unwrap_err().to_string();
        assert!(e.starts_with("links.contact: "), "{e}");
        // One binding per entity with pages.
        let entities: Vec<&str> = LINK_BINDINGS.iter().map(|(e, _)| *e).collect();
        assert_eq!(entities, svodka_schema::LINKED_ENTITIES);
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_follow_reports_md() {
        let tz = chrono_tz::Europe::Moscow;
        let p = RunParams::resolve(None, None, None, d("2024-05-14"), tz).unwrap();
        assert_eq!(
            (p.from, p.to, p.as_of),
            (d("2024-05-01"), d("2024-05-31"), d("2024-05-14"))
        );
        let p = RunParams::resolve(
            Some(d("2024-01-01")),
            Some(d("2024-03-31")),
            None,
            d("2024-05-14"),
            tz,
        )
        .unwrap();
        assert_eq!(p.as_of, d("2024-03-31"));
        let p = RunParams::resolve(
            Some(d("2024-01-01")),
            Some(d("2024-03-31")),
            Some(d("2024-02-10")),
            d("2024-05-14"),
            tz,
        )
        .unwrap();
        assert_eq!(p.as_of, d("2024-02-10"));
    }

    #[test]
    fn bad_periods_are_refused() {
        let tz = chrono_tz::Europe::Moscow;
        let e = RunParams::resolve(
            Some(d("2024-02-01")),
            Some(d("2024-01-01")),
            None,
            d("2024-05-14"),
            tz,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("starts (2024-02-01) after it ends (2024-01-01)")
        );
        let e = RunParams::resolve(
            Some(d("1900-01-01")),
            Some(d("2024-01-01")),
            None,
            d("2024-05-14"),
            tz,
        )
        .unwrap_err();
        assert!(e.to_string().contains("longer than 25 years"));
    }

    #[test]
    fn shifts() {
        use crate::spec::Shift;
        let p = RunParams::resolve(
            Some(d("2024-03-01")),
            Some(d("2024-03-31")),
            None,
            d("2024-05-14"),
            chrono_tz::UTC,
        )
        .unwrap();
        let y = p.shifted(Shift::PreviousYear);
        assert_eq!(
            (y.from, y.to, y.as_of),
            (d("2023-03-01"), d("2023-03-31"), d("2023-03-31"))
        );
        // A whole month: the month before, whole.
        let q = p.shifted(Shift::PreviousPeriod);
        assert_eq!(
            (q.from, q.to, q.as_of),
            (d("2024-02-01"), d("2024-02-29"), d("2024-02-29"))
        );
        // A quarter: the quarter before.
        let quarter = RunParams(RunInfo {
            from: d("2024-04-01"),
            to: d("2024-06-30"),
            as_of: d("2024-06-30"),
            ..p.info()
        })
        .shifted(Shift::PreviousPeriod);
        assert_eq!(
            (quarter.from, quarter.to, quarter.as_of),
            (d("2024-01-01"), d("2024-03-31"), d("2024-03-31"))
        );
        // Days: as many days just before.
        let days = RunParams(RunInfo {
            from: d("2024-03-05"),
            to: d("2024-03-14"),
            as_of: d("2024-03-14"),
            ..p.info()
        })
        .shifted(Shift::PreviousPeriod);
        assert_eq!(
            (days.from, days.to, days.as_of),
            (d("2024-02-24"), d("2024-03-04"), d("2024-03-04"))
        );
        let m = RunParams::resolve(
            Some(d("2024-04-01")),
            Some(d("2024-04-30")),
            None,
            d("2024-05-14"),
            chrono_tz::UTC,
        )
        .unwrap();
        let m = m.shifted(Shift::PreviousMonth);
        assert_eq!(
            (m.from, m.to, m.as_of),
            (d("2024-03-01"), d("2024-03-31"), d("2024-03-31"))
        );
        let leap = RunParams::resolve(
            Some(d("2024-02-29")),
            Some(d("2024-02-29")),
            None,
            d("2024-05-14"),
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(leap.shifted(Shift::PreviousYear).from, d("2023-02-28"));
    }

    #[test]
    fn filters_parse_by_kind() {
        let mut p = RunParams::resolve(None, None, None, d("2024-05-14"), chrono_tz::UTC).unwrap();
        p.add_filter("employee", &["3".into(), "1".into(), "3".into()])
            .unwrap();
        assert_eq!(
            p.filters["employee"],
            vec![FilterValue::Id(1), FilterValue::Id(3)]
        );
        assert!(p.add_filter("employee", &["x".into()]).is_err());
        let e = p
            .add_filter("employe", &["1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `employee`"), "{e}");
    }
}
