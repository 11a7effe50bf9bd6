//! A client's Bitrix24 settings (the `bitrix24:` section of `client.yaml`) and its OAuth
//! token file, which a sync rewrites (by a rename) each time the token is refreshed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::Auth;
use crate::pace::Limit;

/// The `bitrix24:` section of `client.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// An incoming webhook: `https://portal.bitrix24.ru/rest/1/secret/`.
    #[serde(default)]
    pub webhook: Option<String>,
    /// An OAuth application instead of a webhook.
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// `standard` (2 requests/s, 50 at once; the default) or `enterprise` (5/s, 250).
    #[serde(default)]
    pub plan: Option<String>,
    /// Read timeline comments of leads and deals (one subquery per item).
    #[serde(default)]
    pub comments: bool,
    /// Hours between sweeps of ids for deleted records (default 24).
    #[serde(default)]
    pub sweep_hours: Option<u64>,
    /// Per table (`deals`, `leads`, `companies`, `contacts`): custom field → column.
    #[serde(default)]
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
}

/// An OAuth application's endpoint and the file holding its tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `https://portal.bitrix24.ru/rest/`.
    pub endpoint: String,
    /// The token file (relative to the client's folder).
    pub tokens: PathBuf,
    /// Default: `https://oauth.bitrix.info/oauth/token/`.
    #[serde(default)]
    pub token_url: Option<String>,
}

/// The OAuth token file: the application's id and secret and the current pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub client_id: String,
    pub client_secret: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Tokens {
    pub fn read(path: &Path) -> Result<Tokens, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Settings(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::Settings(format!("{}: {e}", path.display())))
    }

    /// Writes the file by a rename, so that a crash leaves the old pair or the new.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).expect("plain struct serialises");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Settings(format!("{}: {e}", path.display())))
    }
}

impl Settings {
    /// The rate limit of the portal's plan.
    pub fn limit(&self) -> Result<Limit, Error> {
        match self.plan.as_deref() {
            None | Some("standard") => Ok(Limit::STANDARD),
            Some("enterprise") => Ok(Limit::ENTERPRISE),
            Some(other) => Err(Error::Settings(format!(
                "plan `{other}`: expected standard or enterprise"
            ))),
        }
    }

    /// How the connector is let in; `dir` is the client's folder (for the token file).
    pub fn auth(&self, dir: &Path) -> Result<(Auth, Option<PathBuf>), Error> {
        match (&self.webhook, &self.oauth) {
            (Some(url), None) => Ok((Auth::Webhook { url: url.clone() }, None)),
            (None, Some(o)) => {
                let path = dir.join(&o.tokens);
                let t = Tokens::read(&path)?;
                Ok((
                    Auth::OAuth {
                        endpoint: o.endpoint.clone(),
                        access_token: t.access_token,
                        refresh_token: t.refresh_token,
                        client_id: t.client_id,
                        client_secret: t.client_secret,
                        token_url: o
                            .token_url
                            .clone()
                            .unwrap_or_else(|| "https://oauth.bitrix.info/oauth/token/".into()),
                    },
                    Some(path),
                ))
            }
            _ => Err(Error::Settings(
                "bitrix24: give either `webhook` or `oauth`".into(),
            )),
        }
    }

    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(self.sweep_hours.unwrap_or(24) * 3600)
    }
}

/// The portal's host from its URL, naming it in sync states (`portal.bitrix24.ru`).
pub fn portal_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}
