//! GET requests to a 1C publication: HTTP Basic with a UTF-8 login, JSON back; a failure
//! turned into words — an `odata.error` body (JSON or XML), an HTML error page (IIS
//! answers an over-long URL with an HTML 404), a refused login — with retries for what
//! passes (a dropped connection, 502–504, an HTML 500 from a restarting server).

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::Error;

/// A client of one publication.
pub struct Http {
    agent: ureq::Agent,
    authorization: String,
    user: String,
    pub attempts: u32,
    /// Requests sent (for the figures).
    pub requests: u64,
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a path segment or query value (Cyrillic names included); the
/// characters OData literals are made of stay as they are.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~'(),:$*/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text inside `<tag>…</tag>`, for error pages.
fn inner<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = body.find(&format!("<{tag}"))?;
    let start = open + body[open..].find('>')? + 1;
    let end = start + body[start..].find(&format!("</{tag}"))?;
    Some(body[start..end].trim())
}

impl Http {
    pub fn new(user: &str, password: &str, timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent("svodka/0.1")
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            authorization: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            user: user.to_string(),
            attempts: 4,
            requests: 0,
        }
    }

    fn once(&mut self, url: &str) -> Result<(u16, String), String> {
        self.requests += 1;
        let mut response = self
            .agent
            .get(url)
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut body = String::new();
        response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .reader()
            .read_to_string(&mut body)
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// A body as text (for `$count` and `$metadata`), retrying what passes.
    pub fn get_text(&mut self, url: &str) -> Result<String, Error> {
        let mut wait = Duration::from_millis(300);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.once(url) {
                Ok((200, body)) => return Ok(body),
                Ok((status, body)) => {
                    let e = self.error(url, status, &body);
                    let html = body.trim_start().starts_with('<') && !body.contains("m:error");
                    let passing = matches!(status, 502..=504) || (status == 500 && html);
                    if !passing || attempt == self.attempts {
                        return Err(e);
                    }
                    last = e.to_string();
                }
                Err(message) => last = message,
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        Err(Error::Unreachable {
            url: url.to_string(),
            message: last,
            attempts: self.attempts,
        })
    }

    /// A JSON body.
    pub fn get_json(&mut self, url: &str) -> Result<Value, Error> {
        let body = self.get_text(url)?;
        serde_json::from_str(&body).map_err(|e| Error::Reply {
            url: url.to_string(),
            message: format!(
                "not JSON ({e}): {}",
                body.chars().take(200).collect::<String>()
            ),
        })
    }

    /// What a failed reply says.
    fn error(&self, url: &str, status: u16, body: &str) -> Error {
        if status == 401 || status == 403 {
            return Error::Refused {
                url: url.to_string(),
                message: format!(
                    "HTTP {status}: the user `{}` is not let in (wrong password, or no rights to what is asked)",
                    self.user
                ),
            };
        }
        if let Ok(v) = serde_json::from_str::<Value>(body)
            && let Some(e) = v.get("odata.error")
        {
            let code = crate::value::text(&e["code"]).unwrap_or_default();
            let message = e["message"]["value"]
                .as_str()
                .or_else(|| e["message"].as_str())
                .unwrap_or_default();
            return Error::OData {
                url: url.to_string(),
                status,
                code,
                message: message.to_string(),
            };
        }
        if let (Some(code), Some(message)) = (inner(body, "m:code"), inner(body, "m:message")) {
            return Error::OData {
                url: url.to_string(),
                status,
                code: code.to_string(),
                message: message.to_string(),
            };
        }
        let title = inner(body, "title")
            .or_else(|| inner(body, "h1"))
            .unwrap_or_else(|| body.trim())
            .chars()
            .take(200)
            .collect::<String>();
        let hint = if status == 404 && url.len() > 2000 {
            " — the URL is over 2 048 bytes, which IIS refuses; lower `page` or the filters"
        } else {
            ""
        };
        Error::Reply {
            url: url.to_string(),
            message: format!("HTTP {status}: {title}{hint}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_of_a_cyrillic_login() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(
            base64("Администратор:".as_bytes()),
            "0JDQtNC80LjQvdC40YHRgtGA0LDRgtC+0YA6"
        );
        assert_eq!(
            enc("Catalog_Контрагенты"),
            "Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B"
        );
        assert_eq!(
            enc("Date ge datetime'2024-01-01T00:00:00'"),
            "Date%20ge%20datetime'2024-01-01T00:00:00'"
        );
    }
}
