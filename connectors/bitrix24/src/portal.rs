//! Calls to a portal: an incoming webhook or an OAuth token (refreshed on
//! `expired_token`, the new pair handed to the caller to store), paced by the leaky
//! bucket, retried on what is worth retrying (rate and time limits, transient failures,
//! a dropped connection), failing fast on the rest with the portal's own words.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Error;
use crate::pace::{Limit, Pace};
use crate::wire::{self, ErrorKind, Reply};

/// How the connector is let in.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// `https://portal.bitrix24.ru/rest/1/secret/` — methods are appended.
    Webhook { url: String },
    /// `client_endpoint` (`https://portal.bitrix24.ru/rest/`) with an access token, and
    /// what refreshing it takes.
    OAuth {
        endpoint: String,
        access_token: String,
        refresh_token: String,
        client_id: String,
        client_secret: String,
        /// `https://oauth.bitrix.info/oauth/token/`.
        token_url: String,
    },
}

/// Hears a refreshed (access, refresh) token pair.
type TokenSink = Box<dyn FnMut(&str, &str) + Send>;

/// A portal client. Not shared between threads: Bitrix24 asks for one series of
/// requests per portal.
pub struct Portal {
    agent: ureq::Agent,
    auth: Auth,
    pace: Pace,
    /// Attempts per call before giving up.
    pub attempts: u32,
    /// The longest wait for a time-limit reset before giving up.
    pub max_wait: Duration,
    /// HTTP requests sent so far (for the sync log and figures).
    pub requests: u64,
    /// Hears each new (access, refresh) token pair, to store it.
    on_refresh: Option<TokenSink>,
}

impl Portal {
    pub fn new(auth: Auth, limit: Limit) -> Portal {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .user_agent("svodka/0.1")
            .build();
        Portal {
            agent: ureq::Agent::new_with_config(config),
            auth,
            pace: Pace::new(limit, Instant::now()),
            attempts: 8,
            max_wait: Duration::from_secs(600),
            requests: 0,
            on_refresh: None,
        }
    }

    /// The longest a request may take, from connecting to the last byte (default 90 s:
    /// the portal's own limit is 60 s per request).
    pub fn timeout(mut self, limit: Duration) -> Portal {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(limit))
            .user_agent("svodka/0.1")
            .build();
        self.agent = ureq::Agent::new_with_config(config);
        self
    }

    /// How the client is let in (with the latest token pair).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Where refreshed tokens go.
    pub fn on_refresh(mut self, f: impl FnMut(&str, &str) + Send + 'static) -> Portal {
        self.on_refresh = Some(Box::new(f));
        self
    }

    fn url(&self, method: &str) -> String {
        match &self.auth {
            Auth::Webhook { url } => format!("{}/{method}", url.trim_end_matches('/')),
            Auth::OAuth {
                endpoint,
                access_token,
                ..
            } => format!(
                "{}/{method}?auth={access_token}",
                endpoint.trim_end_matches('/')
            ),
        }
    }

    /// One POST with a JSON body: status and body, or a transport failure.
    fn post(&mut self, method: &str, body: &Value) -> Result<(u16, Vec<u8>), String> {
        let wait = self.pace.wait(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.pace.sent(Instant::now());
        self.requests += 1;
        let mut response = self
            .agent
            .post(&self.url(method))
            .header("Accept", "application/json")
            .send_json(body)
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok((status, bytes))
    }

    /// Calls `method` with a JSON body, retrying what can be retried.
    pub fn call(&mut self, method: &str, body: &Value) -> Result<Reply, Error> {
        let mut transient = Duration::from_millis(500);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let outcome = match self.post(method, body) {
                Ok((status, bytes)) => wire::reply(method, status, &bytes),
                Err(message) => {
                    last = message;
                    std::thread::sleep(transient);
                    transient = (transient * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let e = match outcome {
                Ok(reply) => {
                    self.pace.succeeded();
                    return Ok(reply);
                }
                Err(e) => e,
            };
            if attempt == self.attempts {
                return Err(e.into());
            }
            match e.kind {
                ErrorKind::RateLimited => self.pace.refused(),
                ErrorKind::TimeLimited => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    let wait = e
                        .reset_at
                        .map(|at| Duration::from_secs((at - now).clamp(1, 3600) as u64))
                        .unwrap_or(Duration::from_secs(60));
                    if wait > self.max_wait {
                        return Err(e.into());
                    }
                    std::thread::sleep(wait);
                }
                ErrorKind::ExpiredToken => self.refresh()?,
                ErrorKind::Transient => {
                    std::thread::sleep(transient);
                    transient = (transient * 2).min(Duration::from_secs(30));
                }
                ErrorKind::Fatal => return Err(e.into()),
            }
        }
        Err(Error::Unreachable {
            method: method.to_string(),
            message: last,
            attempts: self.attempts,
        })
    }

    /// Trades the refresh token for a new pair and keeps it.
    fn refresh(&mut self) -> Result<(), Error> {
        let Auth::OAuth {
            refresh_token,
            client_id,
            client_secret,
            token_url,
            ..
        } = &self.auth
        else {
            return Err(Error::Refresh(
                "a webhook's access cannot be refreshed; check the webhook URL".into(),
            ));
        };
        self.requests += 1;
        let mut response = self
            .agent
            .get(token_url)
            .query("grant_type", "refresh_token")
            .query("client_id", client_id)
            .query("client_secret", client_secret)
            .query("refresh_token", refresh_token)
            .call()
            .map_err(|e| Error::Refresh(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Refresh(e.to_string()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|_| Error::Refresh(format!("HTTP {status}: {text}")))?;
        let (Some(access), Some(refresh)) =
            (v["access_token"].as_str(), v["refresh_token"].as_str())
        else {
            return Err(Error::Refresh(format!(
                "HTTP {status}: {} {}",
                v["error"].as_str().unwrap_or_default(),
                v["error_description"].as_str().unwrap_or_default()
            )));
        };
        if let Auth::OAuth {
            access_token,
            refresh_token,
            endpoint,
            ..
        } = &mut self.auth
        {
            *access_token = access.to_string();
            *refresh_token = refresh.to_string();
            if let Some(e) = v["client_endpoint"].as_str().filter(|e| !e.is_empty()) {
                *endpoint = e.to_string();
            }
        }
        if let Some(f) = &mut self.on_refresh {
            f(access, refresh);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    /// A portal that answers `crm.deal.list` with a 503, a truncated body and an expired
    /// token before it answers properly to the refreshed token; `crm.lead.list` is a bad
    /// request.
    fn portal() -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let state = calls.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new()
                    .route(
                        "/rest/crm.deal.list",
                        post(
                            |State(calls): State<Arc<AtomicUsize>>,
                             Query(q): Query<std::collections::HashMap<String, String>>| async move {
                                let n = calls.fetch_add(1, Ordering::SeqCst);
                                let token = q.get("auth").cloned().unwrap_or_default();
                                match (n, token.as_str()) {
                                    (0, _) => (StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#.to_string()),
                                    (1, _) => (StatusCode::OK, r#"{"result":[{"ID":"1"#.to_string()),
                                    (_, "T1") => (StatusCode::UNAUTHORIZED, r#"{"error":"expired_token","error_description":"The access token provided has expired."}"#.to_string()),
                                    (_, "T2") => (StatusCode::OK, r#"{"result":[{"ID":"1"}],"total":1,"time":{}}"#.to_string()),
                                    _ => (StatusCode::UNAUTHORIZED, r#"{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}"#.to_string()),
                                }
                            },
                        ),
                    )
                    .route(
                        "/rest/crm.lead.list",
                        post(|| async {
                            (StatusCode::BAD_REQUEST, r#"{"error":"","error_description":"Parameter 'filter' must be array."}"#)
                        }),
                    )
                    .route(
                        "/oauth/token/",
                        get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                            if q.get("refresh_token").map(String::as_str) == Some("R1")
                                && q.get("grant_type").map(String::as_str) == Some("refresh_token")
                            {
                                r#"{"access_token":"T2","refresh_token":"R2","expires_in":3600}"#.to_string()
                            } else {
                                r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#.to_string()
                            }
                        }),
                    )
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        (format!("http://{}", rx.recv().unwrap()), calls)
    }

    #[test]
    fn retries_what_can_be_retried_and_refreshes_the_token() {
        let (base, calls) = portal();
        let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = stored.clone();
        let mut c = Portal::new(
            Auth::OAuth {
                endpoint: format!("{base}/rest/"),
                access_token: "T1".into(),
                refresh_token: "R1".into(),
                client_id: "app".into(),
                client_secret: "secret".into(),
                token_url: format!("{base}/oauth/token/"),
            },
            Limit::STANDARD,
        )
        .on_refresh(move |a, r| keep.lock().unwrap().push((a.to_string(), r.to_string())));
        let reply = c.call("crm.deal.list", &json!({"start": -1})).unwrap();
        assert_eq!(reply.result, json!([{"ID": "1"}]));
        // 503, truncated, expired, then the answer; one refresh in between.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(c.requests, 5);
        assert_eq!(
            *stored.lock().unwrap(),
            [("T2".to_string(), "R2".to_string())]
        );
    }

    #[test]
    fn a_bad_request_fails_at_once_with_the_portal_words() {
        let (base, _) = portal();
        let mut c = Portal::new(
            Auth::Webhook {
                url: format!("{base}/rest"),
            },
            Limit::STANDARD,
        );
        let err = c
            .call("crm.lead.list", &json!({"filter": "x"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bitrix24 crm.lead.list: HTTP 400 : Parameter 'filter' must be array."
        );
        assert_eq!(c.requests, 1);
        // Through a 503 and a truncated body to a wrong-credentials answer, which no retry
        // mends.
        let err = c.call("crm.deal.list", &json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bitrix24 crm.deal.list: HTTP 401 NO_AUTH_FOUND: Wrong authorization data"
        );
        assert_eq!(c.requests, 4);
    }

    #[test]
    fn an_unreachable_portal_is_named() {
        let mut c = Portal::new(
            Auth::Webhook {
                url: "http://127.0.0.1:9/rest/1/x".into(),
            },
            Limit::STANDARD,
        );
        c.attempts = 2;
        let err = c.call("crm.deal.list", &json!({})).unwrap_err();
        assert!(
            err.to_string().starts_with("Bitrix24 crm.deal.list:")
                && err.to_string().contains("after 2 attempts"),
            "{err}"
        );
    }
}
