//! The standard OData interface (v3) as a source: `$metadata` read (and kept beside the
//! store) to check the mapping first, then the counterparty catalog and the sales
//! documents in pages of `$top`/`$skip` ordered by `Ref_Key` — never by `nextLink`, which
//! 1C does not send — with `$select`, `$filter` literals written here (`datetime'…'`,
//! `guid'…'`, `''` in strings), and table-part rows summed per document.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Contract, Counterparties, OnecConfig, Sales};
use crate::http::{Http, enc};
use crate::metadata::Metadata;
use crate::rows::{Counterparty, Sale, rounded};
use crate::value;
use crate::{Error, Reader};

/// Where `$metadata` is kept between syncs.
pub const METADATA_FILE: &str = "onec-metadata.xml";

/// A connected publication with a checked mapping.
pub struct OData {
    http: Http,
    root: String,
    tz: chrono_tz::Tz,
    page: usize,
    counterparties: Counterparties,
    sales: Sales,
    /// `IsFolder` / `DeletionMark` where the catalog has them.
    catalog_filter: Option<String>,
    pub metadata: Metadata,
    /// Rows left out (no counterparty, no date), by reason.
    pub skipped: HashMap<String, u64>,
}

/// `datetime'2024-01-01T00:00:00'` in the server's zone.
pub fn datetime_literal(micros: i64, tz: chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    let t = tz
        .timestamp_micros(micros)
        .single()
        .map(|t| t.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    format!("datetime'{t}'")
}

impl OData {
    /// Connects: reads `$metadata` (from `cache` when it is there and `fresh_metadata` is
    /// not asked for) and checks the mapping against it.
    pub fn connect(
        config: &OnecConfig,
        cache: Option<&Path>,
        fresh_metadata: bool,
    ) -> Result<OData, Error> {
        let login = config
            .odata
            .as_ref()
            .ok_or_else(|| Error::Settings("no `odata:` section".into()))?;
        let counterparties = config
            .counterparties
            .clone()
            .ok_or_else(|| Error::Settings("OData needs `counterparties:` (the catalog)".into()))?;
        let sales = config
            .sales
            .clone()
            .ok_or_else(|| Error::Settings("OData needs `sales:` (the documents)".into()))?;
        let http = Http::new(
            &login.user,
            &crate::config::password(login)?,
            Duration::from_secs(120),
        );
        let root = format!("{}/odata/standard.odata", login.url.trim_end_matches('/'));
        let mut odata = OData {
            http,
            root,
            tz: crate::config::zone(config)?,
            page: config.page.clamp(1, 5000),
            counterparties,
            sales,
            catalog_filter: None,
            metadata: Metadata::default(),
            skipped: HashMap::new(),
        };
        odata.metadata = odata.read_metadata(cache, fresh_metadata)?;
        odata.check()?;
        Ok(odata)
    }

    fn read_metadata(&mut self, cache: Option<&Path>, fresh: bool) -> Result<Metadata, Error> {
        let cached = cache.map(|d| d.join(METADATA_FILE));
        if let Some(path) = &cached
            && path.exists()
            && !fresh
        {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::Settings(format!("{}: {e}", path.display())))?;
            if let Ok(m) = Metadata::parse(std::io::BufReader::new(file)) {
                return Ok(m);
            }
        }
        let url = format!("{}/$metadata", self.root);
        let text = self.http.get_text(&url)?;
        let m = Metadata::parse(text.as_bytes()).map_err(|message| Error::Reply {
            url: url.clone(),
            message: format!("`$metadata` is not EDMX: {message}"),
        })?;
        if let Some(path) = cached {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, &text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok(m)
    }

    /// Every field the mapping names must be in `$metadata`; all that are not are named,
    /// each with the nearest names.
    fn check(&mut self) -> Result<(), Error> {
        let m = &self.metadata;
        let (c, s) = (&self.counterparties, &self.sales);
        let mut problems = Vec::new();
        let mut need = |set: &str, field: &str, what: &str| {
            if let Err(e) = m.field(set, field) {
                problems.push(format!("{what}: {e}"));
            }
        };
        need(&c.set, "Ref_Key", "counterparties.set");
        need(&c.set, &c.name, "counterparties.name");
        need(&c.set, &c.inn, "counterparties.inn");
        if let Some(kpp) = &c.kpp {
            need(&c.set, kpp, "counterparties.kpp");
        }
        need(&s.set, "Ref_Key", "sales.set");
        for (field, what) in [
            (&s.id, "sales.id"),
            (&s.date, "sales.date"),
            (&s.counterparty, "sales.counterparty"),
            (&s.amount, "sales.amount"),
            (&s.posted, "sales.posted"),
            (&s.deletion_mark, "sales.deletion_mark"),
        ] {
            need(&s.set, field, what);
        }
        for (field, what) in [(&s.quantity, "sales.quantity"), (&s.volume, "sales.volume")] {
            if let Some(f) = field {
                need(&s.set, f, what);
            }
        }
        match &s.contract {
            Some(Contract::Field(f)) => need(&s.set, f, "sales.contract"),
            Some(Contract::Lookup { key, set, name }) => {
                need(&s.set, key, "sales.contract.key");
                need(set, name, "sales.contract.name");
            }
            None => {}
        }
        if !problems.is_empty() {
            return Err(Error::Mapping(problems));
        }
        let catalog = m.set(&c.set).expect("checked");
        let mut filter = Vec::new();
        if catalog.property("IsFolder").is_some() {
            filter.push("IsFolder eq false".to_string());
        }
        if catalog.property("DeletionMark").is_some() {
            filter.push("DeletionMark eq false".to_string());
        }
        self.catalog_filter = (!filter.is_empty()).then(|| filter.join(" and "));
        Ok(())
    }

    fn url(&self, set: &str, query: &[(&str, String)]) -> String {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!("{}/{}?{}", self.root, enc(set), q.join("&"))
    }

    /// How many rows a filter selects (`…/$count`, a bare number).
    fn count(&mut self, set: &str, filter: Option<&str>) -> Result<u64, Error> {
        let mut q = vec![];
        if let Some(f) = filter {
            q.push(("$filter", f.to_string()));
        }
        let url = format!(
            "{}/{}/$count?{}",
            self.root,
            enc(set),
            q.iter()
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        let text = self.http.get_text(&url)?;
        text.trim()
            .trim_start_matches('\u{feff}')
            .parse()
            .map_err(|_| Error::Reply {
                url,
                message: format!(
                    "expected a count, got {:?}",
                    text.chars().take(100).collect::<String>()
                ),
            })
    }

    /// Every row of a set in `Ref_Key` order, page by page until a short one.
    fn read_all(
        &mut self,
        set: &str,
        select: &[String],
        filter: Option<&str>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Value>, Error> {
        let total = self.count(set, filter)?;
        let mut rows = Vec::new();
        loop {
            let mut q = vec![
                ("$format", "json".to_string()),
                ("$select", select.join(",")),
                ("$orderby", "Ref_Key asc".to_string()),
                ("$top", self.page.to_string()),
                ("$skip", rows.len().to_string()),
            ];
            if let Some(f) = filter {
                q.push(("$filter", f.to_string()));
            }
            let url = self.url(set, &q);
            let reply = self.http.get_json(&url)?;
            let page = reply
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Reply {
                    url: url.clone(),
                    message: "no `value` list in the reply".into(),
                })?;
            let short = page.len() < self.page;
            rows.extend(page.iter().cloned());
            progress(rows.len() as u64, Some(total));
            if short {
                return Ok(rows);
            }
        }
    }

    /// A header field, or a table part's field summed over its rows.
    fn amount_of(row: &Value, field: &str) -> Option<f64> {
        match field.split_once('/') {
            None => value::number(&row[field]),
            Some((part, inner)) => {
                let rows = row[part].as_array()?;
                Some(rounded(
                    rows.iter().filter_map(|r| value::number(&r[inner])).sum(),
                ))
            }
        }
    }

    fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
    }
}

impl Reader for OData {
    fn counterparties(
        &mut self,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Counterparty>, Error> {
        let c = self.counterparties.clone();
        let mut select = vec!["Ref_Key".to_string(), c.name.clone(), c.inn.clone()];
        select.extend(c.kpp.clone());
        let filter = self.catalog_filter.clone();
        let rows = self.read_all(&c.set, &select, filter.as_deref(), progress)?;
        let mut out = Vec::new();
        for r in rows {
            let Some(id) = value::guid(&r["Ref_Key"]) else {
                self.skip("counterparty without Ref_Key");
                continue;
            };
            out.push(Counterparty {
                id,
                name: value::text(&r[c.name.as_str()]).unwrap_or_default(),
                inn: value::text(&r[c.inn.as_str()]),
                kpp: c.kpp.as_ref().and_then(|k| value::text(&r[k.as_str()])),
            });
        }
        Ok(out)
    }

    fn sales(
        &mut self,
        since: Option<i64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Sale>, Error> {
        let s = self.sales.clone();
        let contracts: HashMap<String, String> = match &s.contract {
            Some(Contract::Lookup { set, name, .. }) => {
                let rows = self.read_all(
                    set,
                    &["Ref_Key".to_string(), name.clone()],
                    None,
                    &mut |_, _| {},
                )?;
                rows.iter()
                    .filter_map(|r| {
                        Some((value::guid(&r["Ref_Key"])?, value::text(&r[name.as_str()])?))
                    })
                    .collect()
            }
            _ => HashMap::new(),
        };
        let mut select = vec!["Ref_Key".to_string(), "DataVersion".to_string()];
        for f in [&s.id, &s.date, &s.counterparty, &s.amount, &s.posted] {
            select.push(f.clone());
        }
        select.extend(s.quantity.clone());
        select.extend(s.volume.clone());
        match &s.contract {
            Some(Contract::Field(f)) => select.push(f.clone()),
            Some(Contract::Lookup { key, .. }) => select.push(key.clone()),
            None => {}
        }
        select.dedup();
        let mut filter = format!("{} eq false", s.deletion_mark);
        if let Some(since) = since {
            filter += &format!(" and {} ge {}", s.date, datetime_literal(since, self.tz));
        }
        let rows = self.read_all(&s.set, &select, Some(&filter), progress)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (Some(id), Some(date), Some(counterparty_id)) = (
                value::text(&r[s.id.as_str()]),
                value::micros(&r[s.date.as_str()], self.tz),
                value::guid(&r[s.counterparty.as_str()]),
            ) else {
                self.skip("sale without a number, date or counterparty");
                continue;
            };
            let contract = match &s.contract {
                Some(Contract::Field(f)) => value::text(&r[f.as_str()]),
                Some(Contract::Lookup { key, .. }) => {
                    value::guid(&r[key.as_str()]).and_then(|k| contracts.get(&k).cloned())
                }
                None => None,
            };
            out.push(Sale {
                id,
                version: value::text(&r["DataVersion"]),
                date,
                counterparty_id,
                contract,
                amount: value::cents(&r[s.amount.as_str()]).unwrap_or(0),
                quantity: s.quantity.as_deref().and_then(|f| Self::amount_of(&r, f)),
                volume: s.volume.as_deref().and_then(|f| Self::amount_of(&r, f)),
                posted: value::flag(&r[s.posted.as_str()]).unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn requests(&self) -> u64 {
        self.http.requests
    }

    fn skipped(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        out.sort();
        out
    }
}
