//! The `--http-*` filters and rewrites of GoReplay (§5 of the reference), applied to requests
//! (kind 1) whose payload starts with an HTTP request line; anything else passes unchanged.
//!
//! Evaluation order: allow-sni and disallow-sni (shadowtap's, on the TLS session of decrypted
//! requests), then GoReplay's: allow-method, set-header, set-param, allow-url,
//! disallow-url, allow-header, disallow-header, basic-auth-filter, header-limiter,
//! param-limiter, rewrite-url, rewrite-header. Set-header runs before the filters, so filters
//! see injected headers. A filtered request is dropped by the emitter (reason `filtered`) and
//! so are the responses with its id.
//!
//! Two GoReplay bugs are fixed: a `--http-rewrite-header` rule whose header is missing skips
//! that rule only (GoReplay stopped processing the remaining rules), and headers are looked up
//! in the header block only (GoReplay's lookup ran on into the body).

use bytes::Bytes;
use regex::bytes::Regex;
use shadowtap_api::fnv32a;
use shadowtap_http1::headers::{self, Place};
use std::borrow::Cow;
use std::ops::Range;

/// The `--http-*` flags.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTP modifiers")]
pub struct ModifierArgs {
    /// Keep only requests decrypted from TLS whose server name (SNI) matches one of these
    /// regexps (repeatable; requests without SNI, plain HTTP included, are dropped)
    #[arg(id = "http-allow-sni", long = "http-allow-sni", value_name = "REGEXP", value_parser = regex_value)]
    pub http_allow_sni: Vec<Regex>,
    /// Drop requests decrypted from TLS whose server name (SNI) matches any of these regexps
    #[arg(id = "http-disallow-sni", long = "http-disallow-sni", value_name = "REGEXP", value_parser = regex_value)]
    pub http_disallow_sni: Vec<Regex>,
    /// Keep only requests with this method (exact, case-sensitive; repeatable)
    #[arg(
        id = "http-allow-method",
        long = "http-allow-method",
        value_name = "METHOD",
        value_parser = method_value
    )]
    pub http_allow_method: Vec<String>,
    /// Keep only requests whose request-target (path and query) matches one of these regexps
    #[arg(id = "http-allow-url", long = "http-allow-url", value_name = "REGEXP", value_parser = regex_value)]
    pub http_allow_url: Vec<Regex>,
    /// Drop requests whose request-target matches any of these regexps
    #[arg(id = "http-disallow-url", long = "http-disallow-url", value_name = "REGEXP", value_parser = regex_value)]
    pub http_disallow_url: Vec<Regex>,
    /// Keep only requests where every listed header is present and matches (Name:regexp)
    #[arg(id = "http-allow-header", long = "http-allow-header", value_name = "NAME:REGEXP", value_parser = header_filter_value)]
    pub http_allow_header: Vec<HeaderFilter>,
    /// Drop requests where any listed header is present and matches (Name:regexp)
    #[arg(id = "http-disallow-header", long = "http-disallow-header", value_name = "NAME:REGEXP", value_parser = header_filter_value)]
    pub http_disallow_header: Vec<HeaderFilter>,
    /// Drop requests with Basic credentials whose decoded user:password does not match
    #[arg(id = "http-basic-auth-filter", long = "http-basic-auth-filter", value_name = "REGEXP", value_parser = regex_value)]
    pub http_basic_auth_filter: Vec<Regex>,
    /// Consistent sampling by header value: Name:N% keeps N % of the values (FNV-1a)
    #[arg(id = "http-header-limiter", long = "http-header-limiter", value_name = "NAME:N%", value_parser = sampling_value)]
    pub http_header_limiter: Vec<Sampling>,
    /// Consistent sampling by query parameter value: name:N% keeps N % of the values
    #[arg(id = "http-param-limiter", long = "http-param-limiter", value_name = "NAME:N%", value_parser = sampling_value)]
    pub http_param_limiter: Vec<Sampling>,
    /// Set or replace a header ("Name: value"); setting Host implies --http-original-host
    #[arg(id = "http-set-header", long = "http-set-header", value_name = "NAME: VALUE", value_parser = set_header_value)]
    pub http_set_header: Vec<SetHeader>,
    /// Set or replace a query parameter (name=value)
    #[arg(id = "http-set-param", long = "http-set-param", value_name = "NAME=VALUE", value_parser = set_param_value)]
    pub http_set_param: Vec<SetParam>,
    /// Rewrite the request-target with the first matching rule (regexp:replacement, $1 for groups)
    #[arg(id = "http-rewrite-url", long = "http-rewrite-url", value_name = "REGEXP:REPLACEMENT", value_parser = rewrite_url_value)]
    pub http_rewrite_url: Vec<UrlRewrite>,
    /// Rewrite a header's value ("Name: regexp,replacement"; a missing header skips the rule)
    #[arg(id = "http-rewrite-header", long = "http-rewrite-header", value_name = "NAME: REGEXP,REPLACEMENT", value_parser = rewrite_header_value)]
    pub http_rewrite_header: Vec<HeaderRewrite>,
}

/// `Name:regexp` of the header filters.
#[derive(Debug, Clone)]
pub struct HeaderFilter {
    name: String,
    regex: Regex,
}

/// `Name:N%` (or the deprecated `Name:a/b`) of the limiters.
#[derive(Debug, Clone)]
pub struct Sampling {
    name: String,
    percent: u32,
}

/// `Name: value` of `--http-set-header`.
#[derive(Debug, Clone)]
pub struct SetHeader {
    name: String,
    value: String,
}

impl SetHeader {
    /// The header name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `name=value` of `--http-set-param`.
#[derive(Debug, Clone)]
pub struct SetParam {
    name: String,
    value: String,
}

/// `regexp:replacement` of `--http-rewrite-url`.
#[derive(Debug, Clone)]
pub struct UrlRewrite {
    regex: Regex,
    replacement: String,
}

/// `Name: regexp,replacement` of `--http-rewrite-header`.
#[derive(Debug, Clone)]
pub struct HeaderRewrite {
    name: String,
    regex: Regex,
    replacement: String,
}

fn compile(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| format!("invalid regexp {text:?}: {e}"))
}

fn regex_value(text: &str) -> Result<Regex, String> {
    compile(text)
}

fn method_value(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(|c: char| c.is_whitespace()) {
        return Err(format!("invalid method {text:?}"));
    }
    Ok(text.to_string())
}

fn split_name<'a>(text: &'a str, sep: char, example: &str) -> Result<(&'a str, &'a str), String> {
    let (name, rest) = text
        .split_once(sep)
        .ok_or_else(|| format!("{text:?} has no '{sep}' (example: {example})"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
        return Err(format!("invalid name in {text:?} (example: {example})"));
    }
    Ok((name, rest))
}

fn header_filter_value(text: &str) -> Result<HeaderFilter, String> {
    let (name, regex) = split_name(text, ':', "X-Env:^prod$")?;
    Ok(HeaderFilter {
        name: name.to_string(),
        regex: compile(regex.trim())?,
    })
}

fn sampling_value(text: &str) -> Result<Sampling, String> {
    let (name, value) = split_name(text, ':', "user-id:25%")?;
    let value = value.trim();
    let bad = || format!("invalid sampling {value:?} in {text:?} (use N% or a/b)");
    let percent = if let Some(number) = value.strip_suffix('%') {
        number.trim().parse::<u32>().map_err(|_| bad())?
    } else if let Some((a, b)) = value.split_once('/') {
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        if b == 0 {
            return Err(bad());
        }
        (a as f64 / b as f64 * 100.0) as u32
    } else {
        return Err(bad());
    };
    Ok(Sampling {
        name: name.to_string(),
        percent,
    })
}

fn set_header_value(text: &str) -> Result<SetHeader, String> {
    let (name, value) = split_name(text, ':', "\"X-Env: staging\"")?;
    headers::check_field(name.as_bytes(), value.trim().as_bytes())
        .map_err(|e| format!("{text:?}: {e}"))?;
    Ok(SetHeader {
        name: name.to_string(),
        value: value.trim().to_string(),
    })
}

fn set_param_value(text: &str) -> Result<SetParam, String> {
    let (name, value) = split_name(text, '=', "api_key=test")?;
    Ok(SetParam {
        name: name.to_string(),
        value: value.trim().to_string(),
    })
}

fn rewrite_url_value(text: &str) -> Result<UrlRewrite, String> {
    let (regex, replacement) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} has no ':' (example: /v1/(.*):/v2/$1)"))?;
    Ok(UrlRewrite {
        regex: compile(regex)?,
        replacement: replacement.to_string(),
    })
}

fn rewrite_header_value(text: &str) -> Result<HeaderRewrite, String> {
    let example = "\"Host: (.*)\\.example\\.com,$1.staging\"";
    let (name, rest) = split_name(text, ':', example)?;
    let (regex, replacement) = rest
        .trim()
        .split_once(',')
        .ok_or_else(|| format!("{text:?} has no ',' after the regexp (example: {example})"))?;
    Ok(HeaderRewrite {
        name: name.to_string(),
        regex: compile(regex)?,
        replacement: replacement.to_string(),
    })
}

impl ModifierArgs {
    /// True if a `--http-set-header` sets `Host` (which implies `--http-original-host`).
    pub fn sets_host(&self) -> bool {
        self.http_set_header
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("host"))
    }

    fn is_empty(&self) -> bool {
        self.http_allow_sni.is_empty()
            && self.http_disallow_sni.is_empty()
            && self.http_allow_method.is_empty()
            && self.http_allow_url.is_empty()
            && self.http_disallow_url.is_empty()
            && self.http_allow_header.is_empty()
            && self.http_disallow_header.is_empty()
            && self.http_basic_auth_filter.is_empty()
            && self.http_header_limiter.is_empty()
            && self.http_param_limiter.is_empty()
            && self.http_set_header.is_empty()
            && self.http_set_param.is_empty()
            && self.http_rewrite_url.is_empty()
            && self.http_rewrite_header.is_empty()
    }
}

/// The configured filters and rewrites.
#[derive(Debug, Clone)]
pub struct Modifier {
    args: ModifierArgs,
}

impl Modifier {
    /// `None` when no `--http-*` flag is set.
    pub fn new(args: ModifierArgs) -> Option<Modifier> {
        (!args.is_empty()).then_some(Modifier { args })
    }

    /// Whether a request decrypted from a TLS session with server name `sni` (`None`: no SNI
    /// or not TLS) passes `--http-allow-sni` and `--http-disallow-sni`.
    pub fn admits_sni(&self, sni: Option<&str>) -> bool {
        let a = &self.args;
        let matches = |r: &Regex| sni.is_some_and(|name| r.is_match(name.as_bytes()));
        (a.http_allow_sni.is_empty() || a.http_allow_sni.iter().any(matches))
            && !a.http_disallow_sni.iter().any(matches)
    }

    /// Applies every rule to a request payload: `None` if it is filtered out, else the
    /// (possibly rewritten) payload. A payload without a request line passes unchanged.
    pub fn rewrite(&self, payload: &Bytes) -> Option<Bytes> {
        let Some(line) = headers::request_line(payload) else {
            return Some(payload.clone());
        };
        let a = &self.args;
        if !a.http_allow_method.is_empty() {
            let method = line.method;
            if !a.http_allow_method.iter().any(|m| m.as_bytes() == method) {
                return None;
            }
        }
        let mut p: Cow<[u8]> = Cow::Borrowed(&payload[..]);
        for set in &a.http_set_header {
            set_header(p.to_mut(), set.name.as_bytes(), set.value.as_bytes());
        }
        for set in &a.http_set_param {
            set_param(p.to_mut(), set.name.as_bytes(), set.value.as_bytes());
        }
        let target = |p: &[u8]| target(p).to_vec();
        if !a.http_allow_url.is_empty() {
            let t = target(&p);
            if !a.http_allow_url.iter().any(|r| r.is_match(&t)) {
                return None;
            }
        }
        if !a.http_disallow_url.is_empty() {
            let t = target(&p);
            if a.http_disallow_url.iter().any(|r| r.is_match(&t)) {
                return None;
            }
        }
        for filter in &a.http_allow_header {
            match header_value(&p, filter.name.as_bytes()) {
                Some(v) if !v.is_empty() && filter.regex.is_match(v) => {}
                _ => return None,
            }
        }
        for filter in &a.http_disallow_header {
            if let Some(v) = header_value(&p, filter.name.as_bytes()) {
                if filter.regex.is_match(v) {
                    return None;
                }
            }
        }
        if !a.http_basic_auth_filter.is_empty() {
            if let Some(credentials) = header_value(&p, b"Authorization")
                .and_then(|v| v.strip_prefix(b"Basic "))
                .map(base64_decode)
            {
                if a.http_basic_auth_filter
                    .iter()
                    .any(|r| !r.is_match(&credentials))
                {
                    return None;
                }
            }
        }
        for limit in &a.http_header_limiter {
            if let Some(v) = header_value(&p, limit.name.as_bytes()) {
                if fnv32a(v) % 100 >= limit.percent {
                    return None;
                }
            }
        }
        for limit in &a.http_param_limiter {
            let t = target(&p);
            if let Some(range) = param_range(&t, limit.name.as_bytes()) {
                if fnv32a(&t[range]) % 100 >= limit.percent {
                    return None;
                }
            }
        }
        if !a.http_rewrite_url.is_empty() {
            let t = target(&p);
            if let Some(rule) = a.http_rewrite_url.iter().find(|r| r.regex.is_match(&t)) {
                let new = rule
                    .regex
                    .replace_all(&t, rule.replacement.as_bytes())
                    .into_owned();
                set_target(p.to_mut(), &new);
            }
        }
        for rule in &a.http_rewrite_header {
            let Some(value) = header_value(&p, rule.name.as_bytes()) else {
                continue; // GoReplay stops at the first missing header (`break`): fixed.
            };
            if rule.regex.is_match(value) {
                let new = rule
                    .regex
                    .replace_all(value, rule.replacement.as_bytes())
                    .into_owned();
                set_header(p.to_mut(), rule.name.as_bytes(), &new);
            }
        }
        Some(match p {
            Cow::Borrowed(_) => payload.clone(),
            Cow::Owned(bytes) => Bytes::from(bytes),
        })
    }
}

fn target(p: &[u8]) -> &[u8] {
    headers::request_line(p).map_or(&[], |l| l.target)
}

/// The value of the first header called `name`, in the header block.
pub fn header_value<'a>(p: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    headers::value(p, name)
}

/// Replaces the value of the first header `name`, or inserts `name: value` after the
/// request line; a value that cannot be a header value (CR, LF, NUL) leaves `p` unchanged.
fn set_header(p: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    // Names and `--http-set-header` values are checked when the flags are parsed; only a
    // regexp replacement can yield a bad value, and then the rule does nothing.
    let _ = headers::set(p, name, value, Place::First);
}

fn set_target(p: &mut Vec<u8>, target: &[u8]) {
    headers::set_target(p, target);
}

/// The value of query parameter `name` in `target` (`?name=` or `&name=`, up to `&` or end).
fn param_range(target: &[u8], name: &[u8]) -> Option<Range<usize>> {
    let mut needle = Vec::with_capacity(name.len() + 2);
    needle.push(b'?');
    needle.extend_from_slice(name);
    needle.push(b'=');
    let find = |needle: &[u8]| target.windows(needle.len()).position(|w| w == needle);
    let question = find(&needle);
    needle[0] = b'&';
    let ampersand = find(&needle);
    let start = match (question, ampersand) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    } + needle.len();
    let end = target[start..]
        .iter()
        .position(|&b| b == b'&')
        .map_or(target.len(), |i| start + i);
    Some(start..end)
}

fn set_param(p: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let Some(line) = headers::request_line(p) else {
        return;
    };
    let mut target = line.target.to_vec();
    match param_range(&target, name) {
        Some(r) => {
            target.splice(r, value.iter().copied());
        }
        None => {
            target.push(if target.contains(&b'?') { b'&' } else { b'?' });
            target.extend_from_slice(name);
            target.push(b'=');
            target.extend_from_slice(value);
        }
    }
    set_target(p, &target);
}

/// Standard base64, lenient: decoding stops at the first byte that is not base64.
fn base64_decode(text: &[u8]) -> Vec<u8> {
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in text {
        let Some(v) = value(b) else { break };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        m: ModifierArgs,
    }

    fn modifier(flags: &[&str]) -> Modifier {
        let mut argv = vec!["t"];
        argv.extend_from_slice(flags);
        Modifier::new(Cli::try_parse_from(argv).unwrap().m).unwrap()
    }

    fn apply(flags: &[&str], payload: &str) -> Option<String> {
        modifier(flags)
            .rewrite(&Bytes::from(payload.to_string()))
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    const GET: &str = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: shop\r\nX-Env: prod\r\n\r\n";

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv32a(b"1") % 100, 44);
        assert_eq!(fnv32a(b"3") % 100, 82);
    }

    #[test]
    fn tolerant_heads_and_bad_rewrites() {
        // Bare-LF lines, an obs-folded header and a head cut short are edited in place.
        assert_eq!(
            apply(
                &["--http-set-header", "X-Env: dev"],
                "GET / HTTP/1.1\nX-Env: a\n b\n\n"
            )
            .unwrap(),
            "GET / HTTP/1.1\nX-Env: dev\n\n"
        );
        assert_eq!(
            apply(
                &["--http-allow-header", "Host:^cut$"],
                "GET / HTTP/1.1\r\nHost: cut"
            )
            .as_deref(),
            Some("GET / HTTP/1.1\r\nHost: cut")
        );
        // A replacement that would break the line leaves the header as it was.
        assert_eq!(
            apply(&["--http-rewrite-header", "Host: (.*),$1\r\nEvil: 1"], GET).unwrap(),
            GET
        );
    }

    #[test]
    fn filters() {
        assert!(apply(&["--http-allow-method", "GET"], GET).is_some());
        assert!(apply(&["--http-allow-method", "get"], GET).is_none());
        assert!(apply(&["--http-allow-url", "^/a/"], GET).is_some());
        assert!(apply(&["--http-allow-url", "^/b"], GET).is_none());
        assert!(apply(&["--http-disallow-url", "y=2"], GET).is_none());
        assert!(apply(&["--http-allow-header", "x-env:^prod$"], GET).is_some());
        assert!(apply(&["--http-allow-header", "X-Other:.*"], GET).is_none());
        assert!(apply(&["--http-disallow-header", "X-Env: pro"], GET).is_none());
        assert!(apply(&["--http-disallow-header", "X-Env: dev"], GET).is_some());
    }

    #[test]
    fn header_lookup_stops_at_the_body() {
        let post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nX-Env: prod";
        assert!(apply(&["--http-allow-header", "X-Env:prod"], post).is_none());
        assert_eq!(
            apply(&["--http-set-header", "X-Env: dev"], post).unwrap(),
            "POST / HTTP/1.1\r\nX-Env: dev\r\nHost: a\r\nContent-Length: 11\r\n\r\nX-Env: prod"
        );
    }

    #[test]
    fn basic_auth() {
        // "user:pass"
        let req = "GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n";
        assert!(apply(&["--http-basic-auth-filter", "^user:"], req).is_some());
        assert!(apply(&["--http-basic-auth-filter", "^admin:"], req).is_none());
        assert!(apply(&["--http-basic-auth-filter", "^admin:"], GET).is_some());
    }

    #[test]
    fn limiters() {
        let with = |v: &str| format!("GET /?uid={v} HTTP/1.1\r\nX-Uid: {v}\r\n\r\n");
        assert!(apply(&["--http-header-limiter", "X-Uid:50%"], &with("1")).is_some());
        assert!(apply(&["--http-header-limiter", "X-Uid:50%"], &with("3")).is_none());
        assert!(apply(&["--http-param-limiter", "uid:50%"], &with("1")).is_some());
        assert!(apply(&["--http-param-limiter", "uid:1/2"], &with("3")).is_none());
        assert!(apply(&["--http-param-limiter", "other:0%"], &with("3")).is_some());
    }

    #[test]
    fn sets_and_rewrites() {
        assert_eq!(
            apply(&["--http-set-header", "x-env:  staging "], GET).unwrap(),
            "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: shop\r\nX-Env: staging\r\n\r\n"
        );
        assert_eq!(
            apply(&["--http-set-param", "y=9", "--http-set-param", "z=0"], GET).unwrap(),
            GET.replace("y=2", "y=9&z=0")
        );
        assert_eq!(
            apply(&["--http-rewrite-url", "/a/(\\w+):/v2/${1}_x"], GET).unwrap(),
            GET.replace("/a/b?", "/v2/b_x?")
        );
        // A missing header skips only its own rule.
        assert_eq!(
            apply(
                &[
                    "--http-rewrite-header",
                    "X-Missing: .*,x",
                    "--http-rewrite-header",
                    "Host: sh(op),wh$1"
                ],
                GET
            )
            .unwrap(),
            GET.replace("Host: shop", "Host: whop")
        );
    }

    #[test]
    fn non_requests_pass() {
        let resp = Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            modifier(&["--http-allow-method", "GET"]).rewrite(&resp),
            Some(resp)
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        for flags in [
            ["--http-allow-url", "("],
            ["--http-allow-header", "NoColon"],
            ["--http-header-limiter", "X:50"],
            ["--http-param-limiter", "x:abc%"],
            ["--http-set-header", "NoColon"],
            ["--http-set-header", "Bad@Name: x"],
            ["--http-set-param", "novalue"],
            ["--http-rewrite-url", "nocolon"],
            ["--http-rewrite-header", "Host: nocomma"],
        ] {
            assert!(
                Cli::try_parse_from(["t", flags[0], flags[1]]).is_err(),
                "{flags:?}"
            );
        }
    }
}
