//! Endpoints: what differences are counted per. A request's endpoint is its method and URL
//! template: path segments that are ids (numbers, UUIDs, long hex, base64-like tokens) become
//! `{id}`, query keys are kept (sorted, without values). A `--output-diff-route` pattern that
//! matches takes precedence: `GET /users/{id}/orders`, `* /v1/{any}`.

/// Why a `--output-diff-route` pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not `METHOD /path`.
    #[error("{0:?} is not \"METHOD /path\" (e.g. 'GET /users/{{id}}/orders')")]
    Shape(String),
}

/// One `--output-diff-route`.
#[derive(Clone, Debug)]
struct Route {
    /// `None` for `*`.
    method: Option<String>,
    segments: Vec<Segment>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one segment.
    Any,
}

/// Turns requests into endpoint names.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    routes: Vec<Route>,
}

impl Endpoints {
    /// With the `--output-diff-route` patterns, tried in order.
    pub fn new(patterns: &[String]) -> Result<Endpoints, RouteError> {
        let routes = patterns
            .iter()
            .map(|p| parse_route(p))
            .collect::<Result<_, _>>()?;
        Ok(Endpoints { routes })
    }

    /// The endpoint of a request with this method and request-target.
    pub fn name(&self, method: &str, target: &str) -> String {
        let (path, query) = split_target(target);
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let Some(route) = self.routes.iter().find(|r| r.matches(method, &segments)) {
            return route.text.clone();
        }
        let mut name = String::with_capacity(method.len() + path.len() + 8);
        name.push_str(method);
        name.push(' ');
        for segment in &segments {
            name.push('/');
            name.push_str(if is_id(segment) { "{id}" } else { segment });
        }
        if segments.is_empty() {
            name.push('/');
        }
        if let Some(query) = query {
            push_query_keys(&mut name, query);
        }
        name
    }
}

impl Route {
    fn matches(&self, method: &str, segments: &[&str]) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(s, given)| match s {
                    Segment::Any => true,
                    Segment::Literal(text) => text == given,
                })
    }
}

fn parse_route(pattern: &str) -> Result<Route, RouteError> {
    let shape = || RouteError::Shape(pattern.to_string());
    let (method, path) = pattern.trim().split_once(' ').ok_or_else(shape)?;
    let path = path.trim();
    if method.is_empty() || !path.starts_with('/') || path.contains(' ') {
        return Err(shape());
    }
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Any
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect();
    Ok(Route {
        method: (method != "*").then(|| method.to_string()),
        segments,
        text: format!("{method} {path}"),
    })
}

/// The path and query of a request-target (origin or absolute form).
fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = match target.find("://") {
        Some(at) => {
            let rest = &target[at + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => target,
    };
    let target = target.split('#').next().unwrap_or(target);
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn push_query_keys(name: &mut String, query: &str) {
    let mut keys: Vec<&str> = query
        .split('&')
        .map(|pair| pair.split('=').next().unwrap_or(""))
        .filter(|k| !k.is_empty())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for (i, key) in keys.iter().enumerate() {
        name.push(if i == 0 { '?' } else { '&' });
        name.push_str(key);
    }
}

/// True for a segment that names one thing among many: a number, a UUID, a hex string of 16 or
/// more, or a token of 20 or more base64 characters with both letters and digits.
fn is_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(bytes) {
        return true;
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let base64 =
        |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=' | b'.');
    bytes.len() >= 20
        && bytes.iter().all(base64)
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_alphabetic)
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders_and_query_values_are_dropped() {
        let e = Endpoints::default();
        assert_eq!(e.name("GET", "/users/42/orders"), "GET /users/{id}/orders");
        assert_eq!(
            e.name("GET", "/o/123e4567-e89b-12d3-a456-426614174000"),
            "GET /o/{id}"
        );
        assert_eq!(e.name("GET", "/blob/0123456789abcdef01"), "GET /blob/{id}");
        assert_eq!(e.name("GET", "/t/eyJhbGciOiJIUzI1NiJ9abc"), "GET /t/{id}");
        assert_eq!(
            e.name("GET", "/search?q=x&page=2&q=y"),
            "GET /search?page&q"
        );
        assert_eq!(
            e.name("POST", "http://h:8/api/v1/items?x"),
            "POST /api/v1/items?x"
        );
        assert_eq!(e.name("GET", "/"), "GET /");
        assert_eq!(e.name("GET", "http://h"), "GET /");
        assert_eq!(e.name("GET", "/static/app.css"), "GET /static/app.css");
    }

    #[test]
    fn routes_override_in_order() {
        let e =
            Endpoints::new(&["GET /users/{user}/orders".into(), "* /files/{name}".into()]).unwrap();
        assert_eq!(
            e.name("GET", "/users/bob/orders?x=1"),
            "GET /users/{user}/orders"
        );
        assert_eq!(e.name("PUT", "/files/report.pdf"), "* /files/{name}");
        assert_eq!(e.name("GET", "/users/bob"), "GET /users/bob");
        for bad in ["GET", "GET users", "/x", "GET /a b"] {
            assert!(Endpoints::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
