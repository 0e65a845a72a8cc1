//! `URL/INDEX` values: the cluster's base URL, credentials from the URL, and index names with
//! date tokens.

use chrono::{DateTime, Utc};
use reqwest::Url;
use shadowtap_listener::redact_url;
use std::fmt;

/// Basic-auth credentials (`Debug` hides the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Basic {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Option<String>,
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Basic")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One `--output-es` value, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Base URL without credentials and without the index, never ending in `/`.
    pub base: String,
    /// The index name template.
    pub index: IndexName,
    /// `user:pass@` from the URL.
    pub basic: Option<Basic>,
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Endpoint {
    /// Parses `scheme://[user:pass@]host[:port][/prefix]/INDEX`; a value without a scheme is
    /// `http://` with port 9200 unless given (GoReplay's default).
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        let expected = "expected URL/INDEX, e.g. http://localhost:9200/http-%Y.%m.%d";
        let text = value.trim();
        // Errors show the value with its password hidden.
        let value = redact_url(text);
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            let (authority, rest) = text.split_once('/').unwrap_or((text, ""));
            let host_part = authority.rsplit('@').next().unwrap_or(authority);
            let has_port = host_part
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let port = if has_port { "" } else { ":9200" };
            format!("http://{authority}{port}/{rest}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| format!("{value:?}: {e} ({expected})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{value:?}: scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{value:?}: no host ({expected})"));
        }
        let mut segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let index = segments
            .pop()
            .ok_or_else(|| format!("{value:?}: no index name ({expected})"))?;
        let index = IndexName::parse(index)?;
        let basic = (!url.username().is_empty()).then(|| Basic {
            username: decode(url.username()),
            password: url.password().map(decode),
        });
        let mut base = url.clone();
        base.set_username("").ok();
        base.set_password(None).ok();
        base.set_query(None);
        base.set_fragment(None);
        base.set_path(&segments.join("/"));
        let base = base.as_str().trim_end_matches('/').to_string();
        Ok(Endpoint { base, index, basic })
    }
}

/// An index name that may contain `%Y`, `%m`, `%d`, `%H` (UTC, from the message time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexName {
    template: String,
    dated: bool,
}

impl IndexName {
    /// Validates a template: Elasticsearch's index name rules, and only known tokens.
    pub fn parse(template: &str) -> Result<IndexName, String> {
        let mut dated = false;
        let mut chars = template.chars();
        let mut plain = String::new();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('Y' | 'm' | 'd' | 'H') => {
                        dated = true;
                        plain.push('0');
                    }
                    other => {
                        return Err(format!(
                            "index {template:?}: unknown token %{} (use %Y %m %d %H)",
                            other.map(String::from).unwrap_or_default()
                        ))
                    }
                }
            } else {
                plain.push(c);
            }
        }
        let invalid = plain.is_empty()
            || plain.len() > 255
            || plain == "."
            || plain == ".."
            || plain.starts_with(['-', '_', '+'])
            || plain
                .chars()
                .any(|c| c.is_uppercase() || " \\/*?\"<>|,#:".contains(c) || c.is_control());
        if invalid {
            return Err(format!(
                "invalid index name {template:?} (lowercase, no spaces or \\/*?\"<>|,#:, not starting with - _ +)"
            ));
        }
        Ok(IndexName {
            template: template.to_string(),
            dated,
        })
    }

    /// The index for a message with `timestamp_ns`.
    pub fn render(&self, timestamp_ns: i64) -> String {
        if !self.dated {
            return self.template.clone();
        }
        // `parse` let through only %Y %m %d %H, which are chrono's own.
        let time: DateTime<Utc> = DateTime::from_timestamp_nanos(timestamp_ns);
        time.format(&self.template).to_string()
    }

    /// The pattern of every index this template yields (tokens become `*`).
    pub fn pattern(&self) -> String {
        let mut out = String::new();
        let mut chars = self.template.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                chars.next();
                if !out.ends_with('*') {
                    out.push('*');
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://user:p%40ss@es.local:9200/http-%Y.%m.%d").unwrap();
        assert_eq!(e.base, "http://es.local:9200");
        assert_eq!(
            e.basic,
            Some(Basic {
                username: "user".into(),
                password: Some("p@ss".into())
            })
        );
        assert_eq!(e.index.render(1_700_000_000_000_000_000), "http-2023.11.14");
        assert_eq!(e.index.pattern(), "http-*.*.*");
        let e = Endpoint::parse("https://proxy.example/es/a/gor").unwrap();
        assert_eq!(e.base, "https://proxy.example/es/a");
        assert_eq!(e.index.render(0), "gor");
        assert_eq!(e.index.pattern(), "gor");
        // GoReplay's documented scheme-less form gets http and port 9200.
        let e = Endpoint::parse("localhost/gor").unwrap();
        assert_eq!(e.base, "http://localhost:9200");
        let e = Endpoint::parse("localhost:9201/gor").unwrap();
        assert_eq!(e.base, "http://localhost:9201");
        assert!(Endpoint::parse("http://localhost:9200").is_err());
        assert!(Endpoint::parse("http://localhost:9200/").is_err());
        assert!(Endpoint::parse("http://localhost:9200/Upper").is_err());
        assert!(Endpoint::parse("http://localhost:9200/a%Qb").is_err());
        assert!(Endpoint::parse("ftp://h/x").is_err());
    }

    #[test]
    fn hourly_indices() {
        let name = IndexName::parse("t-%Y%m%d%H").unwrap();
        assert_eq!(name.render(1_700_000_000_000_000_000), "t-2023111422");
        assert_eq!(name.pattern(), "t-*");
    }
}
