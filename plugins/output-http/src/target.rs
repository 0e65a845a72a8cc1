//! The `--output-http` URL: scheme (`http`, `https`, `h2c`), host, port and an optional base
//! path.

use shadowtap_listener::redact_url;

/// `http`, `https` or `h2c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS (rustls).
    Https,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
}

impl Scheme {
    /// The `:scheme` of HTTP/2 requests.
    pub fn h2_scheme(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http | Scheme::H2c => "http",
        }
    }
}

/// Where one `--output-http` sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http`, `https` or `h2c`.
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// Port (80 / 443 when the URL has none).
    pub port: u16,
    /// The Host header value: the URL's authority as written (`host` or `host:port`).
    pub authority: String,
    /// Path prefix without a trailing slash (`/api`), empty when the URL has none.
    pub base_path: String,
}

impl Target {
    /// Parses `http://host[:port][/base]`, `https://…`, `h2c://…`, or a scheme-less
    /// `host[:port][/base]` (plain http). User info, queries and fragments are rejected.
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        // Errors show the URL with its password hidden.
        let shown = redact_url(url);
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("h2c") => (Scheme::H2c, rest),
            Some((s, _)) => {
                return Err(format!(
                    "unsupported scheme {s:?} in {shown:?} (use http://, https:// or h2c://)"
                ))
            }
            None => (Scheme::Http, url),
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "{shown:?}: a query or fragment in the target URL is not supported"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "{shown:?}: credentials in the target URL are not supported \
                 (the captured Authorization header is sent as is)"
            ));
        }
        let default_port = match scheme {
            Scheme::Http | Scheme::H2c => 80,
            Scheme::Https => 443,
        };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("{shown:?}: invalid host or port"))?;
        if host.is_empty() {
            return Err(format!("{shown:?}: no host"));
        }
        Ok(Target {
            scheme,
            host,
            port,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` for connecting (IPv6 hosts in brackets).
    pub fn connect_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            if host.contains(':') {
                return None;
            }
            Some((host.to_string(), port.parse().ok()?))
        }
        None => Some((authority.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn full_urls() {
        let target = t("http://staging:8080/api/");
        assert_eq!(target.scheme, Scheme::Http);
        assert_eq!(target.host, "staging");
        assert_eq!(target.port, 8080);
        assert_eq!(target.authority, "staging:8080");
        assert_eq!(target.base_path, "/api");
        let target = t("HTTPS://example.com");
        assert_eq!(target.scheme, Scheme::Https);
        assert_eq!(target.port, 443);
        assert_eq!(target.authority, "example.com");
        assert_eq!(target.base_path, "");
        assert_eq!(t("http://h/").base_path, "");
    }

    #[test]
    fn h2c_targets() {
        let target = t("h2c://127.0.0.1:8080/base");
        assert_eq!(target.scheme, Scheme::H2c);
        assert_eq!((target.port, target.base_path.as_str()), (8080, "/base"));
        assert_eq!(t("H2C://h").port, 80);
        assert_eq!(target.scheme.h2_scheme(), "http");
    }

    #[test]
    fn scheme_less_targets_are_http() {
        let target = t("staging:8080");
        assert_eq!(
            (target.scheme, target.host.as_str(), target.port),
            (Scheme::Http, "staging", 8080)
        );
        let target = t("127.0.0.1:8080");
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8080));
        assert_eq!(target.connect_address(), "127.0.0.1:8080");
        let target = t("staging.com");
        assert_eq!((target.host.as_str(), target.port), ("staging.com", 80));
        let target = t("localhost:8080/base");
        assert_eq!(target.base_path, "/base");
    }

    #[test]
    fn ipv6() {
        let target = t("http://[::1]:9000");
        assert_eq!(target.host, "::1");
        assert_eq!(target.connect_address(), "[::1]:9000");
        assert_eq!(target.authority, "[::1]:9000");
        assert_eq!(t("[::1]").port, 80);
    }

    #[test]
    fn rejects() {
        for bad in [
            "ftp://x",
            "http://x:port",
            "http://x:99999",
            "http://",
            "http://u:p@x",
            "http://x/?q=1",
            "http://x/#f",
            "::1:80",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
