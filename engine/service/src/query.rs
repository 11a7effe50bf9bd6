//! A request's query string as a report run: every key known, every value checked, and
//! a canonical form for the cache key. `from`, `to`, `as_of` (YYYY-MM-DD), `employee`,
//! `department`, `pipeline`, `source` (ids, repeated or comma-separated), `set.KEY`,
//! `param.KEY`, `format` (json, html, xlsx), `locale` (ru, en).

use chrono::NaiveDate;
use svodka_render::Locale;
use svodka_report::RunRequest;
use svodka_report::catalog::FILTERS;

use crate::clients::Client;

/// What the output should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    Xlsx,
}

/// A checked query.
#[derive(Debug, Clone)]
pub struct Query {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub as_of: Option<NaiveDate>,
    pub filters: Vec<(String, Vec<String>)>,
    pub settings: Vec<(String, String)>,
    pub parameters: Vec<(String, String)>,
    pub format: Option<Format>,
    pub locale: Option<Locale>,
}

/// A parameter the caller got wrong: 400 with its name.
#[derive(Debug, Clone, PartialEq)]
pub struct BadParameter {
    pub name: String,
    pub message: String,
}

fn bad(name: &str, message: impl Into<String>) -> BadParameter {
    BadParameter {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Longer values are refused before any parsing.
const MAX_VALUE: usize = 1000;

impl Query {
    pub fn parse(pairs: &[(String, String)]) -> Result<Query, BadParameter> {
        let mut q = Query {
            from: None,
            to: None,
            as_of: None,
            filters: Vec::new(),
            settings: Vec::new(),
            parameters: Vec::new(),
            format: None,
            locale: None,
        };
        let date = |k: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| bad(k, format!("expected a date YYYY-MM-DD, got {v:?}")))
        };
        for (k, v) in pairs {
            if v.len() > MAX_VALUE || k.len() > 100 {
                return Err(bad(k, "value too long"));
            }
            match k.as_str() {
                "from" => q.from = Some(date(k, v)?),
                "to" => q.to = Some(date(k, v)?),
                "as_of" => q.as_of = Some(date(k, v)?),
                "format" => {
                    q.format = Some(match v.as_str() {
                        "json" => Format::Json,
                        "html" => Format::Html,
                        "xlsx" => Format::Xlsx,
                        _ => return Err(bad(k, format!("expected json, html or xlsx, got {v:?}"))),
                    })
                }
                "locale" => q.locale = Some(v.parse().map_err(|e: String| bad(k, e))?),
                f if let Some(&(_, is_id)) = FILTERS.iter().find(|(name, _)| *name == f) => {
                    // The engine's filters: ids are numbers, sources are codes (`WEB`).
                    let mut values = Vec::new();
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        if is_id {
                            part.parse::<i64>().map_err(|_| {
                                bad(k, format!("expected numeric ids, got {part:?}"))
                            })?;
                        }
                        values.push(part.to_string());
                    }
                    match q.filters.iter_mut().find(|(n, _)| n == f) {
                        Some((_, vs)) => vs.extend(values),
                        None => q.filters.push((f.to_string(), values)),
                    }
                }
                other => {
                    // One value each: a repeated setting would leave it to the order of
                    // the query which one counts (and the cache key sorts them).
                    let once = |list: &mut Vec<(String, String)>, name: &str| {
                        if list.iter().any(|(n, _)| n == name) {
                            return Err(bad(other, "given more than once; give one value"));
                        }
                        list.push((name.to_string(), v.clone()));
                        Ok(())
                    };
                    if let Some(name) = other.strip_prefix("set.") {
                        once(&mut q.settings, name)?;
                    } else if let Some(name) = other.strip_prefix("param.") {
                        once(&mut q.parameters, name)?;
                    } else {
                        return Err(bad(
                            other,
                            "unknown parameter (from, to, as_of, employee, department, pipeline, source, set.KEY, param.KEY, format, locale)",
                        ));
                    }
                }
            }
        }
        for (_, vs) in &mut q.filters {
            vs.sort();
            vs.dedup();
        }
        q.filters.sort();
        Ok(q)
    }

    /// The run this query asks of `report` for `client` (with the client's settings
    /// first, the query's over them).
    pub fn request(
        &self,
        client: &Client,
        report: &str,
        block: Option<String>,
        memory_limit: Option<usize>,
        clock: svodka_config::Clock,
        engine: svodka_report::Engine,
    ) -> Result<RunRequest, svodka_report::ReportError> {
        let data = client.data();
        let mut params = svodka_sources::run_params(
            (self.from, self.to, self.as_of),
            client.config.zone(),
            client.config.portal_url.clone(),
            data.info.as_ref(),
            clock,
        )?;
        for (name, values) in &self.filters {
            params.add_filter(name, values)?;
        }
        let mut settings = client.settings_of(report);
        settings.extend(self.settings.iter().cloned());
        Ok(RunRequest {
            settings,
            parameters: self.parameters.clone(),
            block,
            memory_limit,
            engine,
            ..RunRequest::new(report, params)
        })
    }

    /// The query without its output options, in a fixed order (equal runs, equal keys),
    /// values percent-encoded: usable as a URL query as is.
    pub fn canonical(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [("from", self.from), ("to", self.to), ("as_of", self.as_of)] {
            if let Some(d) = v {
                parts.push(format!("{k}={d}"));
            }
        }
        for (f, vs) in &self.filters {
            let values: Vec<String> = vs.iter().map(|v| encode(v)).collect();
            parts.push(format!("{f}={}", values.join(",")));
        }
        let mut s: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("set.{}={}", encode(k), encode(v)))
            .collect();
        s.sort();
        let mut p: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| format!("param.{}={}", encode(k), encode(v)))
            .collect();
        p.sort();
        parts.extend(s);
        parts.extend(p);
        parts.join("&")
    }
}

/// Percent-encodes all but unreserved characters (and the comma of id lists).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_setting_or_parameter_given_twice_is_refused_in_either_order() {
        for values in [["5", "60"], ["60", "5"]] {
            for key in ["set.deal_forgotten_days", "param.metric"] {
                let err = Query::parse(&pairs(&[(key, values[0]), (key, values[1])])).unwrap_err();
                assert_eq!(err.name, key);
                assert_eq!(err.message, "given more than once; give one value");
            }
        }
        // Different settings, and repeated filters, are fine.
        let q = Query::parse(&pairs(&[
            ("set.a", "1"),
            ("set.b", "2"),
            ("employee", "3"),
            ("employee", "3,4"),
        ]))
        .unwrap();
        assert_eq!(q.canonical(), "employee=3,4&set.a=1&set.b=2");
    }

    #[test]
    fn parses_and_canonicalises() {
        let q = Query::parse(&pairs(&[
            ("to", "2026-11-30"),
            ("employee", "7,3"),
            ("employee", "3"),
            ("from", "2026-11-01"),
            ("set.deal_forgotten_days", "21"),
            ("format", "html"),
        ]))
        .unwrap();
        assert_eq!(q.format, Some(Format::Html));
        // Sources are codes, not numbers.
        let q3 = Query::parse(&pairs(&[("source", "WEB,CALL")])).unwrap();
        assert_eq!(q3.canonical(), "source=CALL,WEB");
        let q2 = Query::parse(&pairs(&[("set.weights", "{call: 3}&x")])).unwrap();
        assert_eq!(q2.canonical(), "set.weights=%7Bcall%3A%203%7D%26x");
        assert_eq!(
            q.canonical(),
            "from=2026-11-01&to=2026-11-30&employee=3,7&set.deal_forgotten_days=21"
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = Query::parse(&pairs(&[("from", "01.11.2026")])).unwrap_err();
        assert_eq!(e.name, "from");
        let e = Query::parse(&pairs(&[("employee", "1 or 1=1")])).unwrap_err();
        assert_eq!(e.name, "employee");
        assert!(e.message.contains("numeric ids"));
        let e = Query::parse(&pairs(&[("../../etc/passwd", "x")])).unwrap_err();
        assert!(e.message.starts_with("unknown parameter"));
        let e = Query::parse(&pairs(&[("format", "pdf")])).unwrap_err();
        assert_eq!(e.name, "format");
    }
}
