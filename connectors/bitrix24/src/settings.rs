//! What a sync makes of a client's `bitrix24:` section (plain data in
//! `svodka_config::bitrix24`): the portal's rate limit, how it is let in, and the OAuth
//! token file, which a sync rewrites (by a rename) each time the token is refreshed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use svodka_config::bitrix24::{Bitrix24Config, OAuthConfig};

use crate::Error;
use crate::pace::Limit;
use crate::portal::Auth;

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

/// The rate limit of the portal's plan.
pub fn limit(config: &Bitrix24Config) -> Result<Limit, Error> {
    match config.plan.as_deref() {
        None | Some("standard") => Ok(Limit::STANDARD),
        Some("enterprise") => Ok(Limit::ENTERPRISE),
        Some(other) => Err(Error::Settings(format!(
            "plan `{other}`: expected standard or enterprise"
        ))),
    }
}

/// How the connector is let in; `dir` is the client's folder (for the token file).
pub fn auth(config: &Bitrix24Config, dir: &Path) -> Result<(Auth, Option<PathBuf>), Error> {
    match (&config.webhook, &config.oauth) {
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

/// The portal's host from its URL, naming it in sync states (`portal.bitrix24.ru`).
pub fn portal_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}
