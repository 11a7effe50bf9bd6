//! A custom HTTP service the customer's 1C developer publishes (`/hs/<root>`), speaking
//! the contract of `docs/onec.md`: `GET counterparties` and `GET sales?from=…&page=N`,
//! JSON lists in canonical names.

use std::time::Duration;

use serde_json::Value;

use crate::config::OnecConfig;
use crate::http::{Http, enc};
use crate::odata::datetime_literal;
use crate::rows::{Counterparty, Sale};
use crate::value;
use crate::{Error, Reader};

pub struct Service {
    http: Http,
    url: String,
    tz: chrono_tz::Tz,
    skipped: u64,
}

impl Service {
    pub fn connect(config: &OnecConfig) -> Result<Service, Error> {
        let login = config
            .http
            .as_ref()
            .ok_or_else(|| Error::Settings("no `http:` section".into()))?;
        Ok(Service {
            http: Http::new(
                &login.user,
                &crate::config::password(login)?,
                Duration::from_secs(300),
            ),
            url: login.url.trim_end_matches('/').to_string(),
            tz: crate::config::zone(config)?,
            skipped: 0,
        })
    }

    fn items(&mut self, url: &str) -> Result<(Vec<Value>, Option<u64>), Error> {
        let reply = self.http.get_json(url)?;
        let items = reply
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| Error::Reply {
                url: url.to_string(),
                message: "no `items` list: see the contract in docs/onec.md".into(),
            })?;
        let next = reply.get("next_page").and_then(Value::as_u64);
        Ok((items, next))
    }
}

impl Reader for Service {
    fn counterparties(
        &mut self,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Counterparty>, Error> {
        let url = format!("{}/counterparties", self.url);
        let (items, _) = self.items(&url)?;
        let mut out = Vec::new();
        for r in &items {
            let (Some(id), Some(name)) = (value::text(&r["id"]), value::text(&r["name"])) else {
                self.skipped += 1;
                continue;
            };
            out.push(Counterparty {
                id,
                name,
                inn: value::text(&r["inn"]),
                kpp: value::text(&r["kpp"]),
            });
        }
        progress(out.len() as u64, Some(out.len() as u64));
        Ok(out)
    }

    fn sales(
        &mut self,
        since: Option<i64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<Sale>, Error> {
        let mut out = Vec::new();
        let mut page = Some(1);
        while let Some(n) = page {
            let mut url = format!("{}/sales?page={n}", self.url);
            if let Some(since) = since {
                let literal = datetime_literal(since, self.tz);
                let naive = literal
                    .trim_start_matches("datetime'")
                    .trim_end_matches('\'');
                url += &format!("&from={}", enc(naive));
            }
            let (items, next) = self.items(&url)?;
            for r in &items {
                let (Some(id), Some(date), Some(counterparty_id), Some(amount)) = (
                    value::text(&r["id"]),
                    value::micros(&r["date"], self.tz),
                    value::text(&r["counterparty_id"]),
                    value::cents(&r["amount"]),
                ) else {
                    self.skipped += 1;
                    continue;
                };
                out.push(Sale {
                    id,
                    version: value::text(&r["version"]),
                    date,
                    counterparty_id,
                    contract: value::text(&r["contract"]),
                    amount,
                    quantity: value::number(&r["quantity"]),
                    volume: value::number(&r["volume"]),
                    posted: value::flag(&r["posted"]).unwrap_or(true),
                });
            }
            progress(out.len() as u64, None);
            page = next.filter(|p| *p > n);
        }
        Ok(out)
    }

    fn requests(&self) -> u64 {
        self.http.requests
    }

    fn skipped(&self) -> Vec<String> {
        if self.skipped == 0 {
            vec![]
        } else {
            vec![format!("items without a required field: {}", self.skipped)]
        }
    }
}
