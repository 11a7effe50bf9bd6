//! The `bitrix24:` section of `client.yaml`: how a sync reaches a client's portal.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The `bitrix24:` section of `client.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bitrix24Config {
    /// An incoming webhook: `https://portal.bitrix24.ru/rest/1/secret/`.
    #[serde(default)]
    pub webhook: Option<String>,
    /// An OAuth application instead of a webhook.
    #[serde(default)]
    pub oauth: Option<OAuthConfig>,
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
pub struct OAuthConfig {
    /// `https://portal.bitrix24.ru/rest/`.
    pub endpoint: String,
    /// The token file (relative to the client's folder).
    pub tokens: PathBuf,
    /// Default: `https://oauth.bitrix.info/oauth/token/`.
    #[serde(default)]
    pub token_url: Option<String>,
}

/// The pages of a Bitrix24 portal's CRM entities (`{portal}` is its address): what a sync
/// from Bitrix24, and the demo data set of a Bitrix24 company, write as `links`.
pub fn links() -> std::collections::BTreeMap<String, String> {
    svodka_schema::LINKED_ENTITIES
        .iter()
        .map(|e| (e.to_string(), format!("{{portal}}/crm/{e}/details/{{id}}/")))
        .collect()
}

impl Bitrix24Config {
    /// Time between sweeps of ids for deleted records.
    pub fn sweep_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.sweep_hours.unwrap_or(24) * 3600)
    }
}
