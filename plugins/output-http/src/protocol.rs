//! Which protocol carries a message: `--output-http-protocol h1|h2|auto` with the target's
//! scheme and the message's own start line (`HTTP/2` or `HTTP/1.x`).
//!
//! | protocol | `http://`            | `h2c://` | `https://`                                    |
//! |----------|----------------------|----------|-----------------------------------------------|
//! | `auto`   | HTTP/1.1             | HTTP/2   | HTTP/2 messages: HTTP/2 if ALPN picks `h2`, else HTTP/1.1; HTTP/1 messages: HTTP/1.1 |
//! | `h2`     | HTTP/2 (prior knowledge) | HTTP/2 | HTTP/2 (ALPN offers only `h2`)             |
//! | `h1`     | HTTP/1.1             | (a usage error) | HTTP/1.1                               |

use crate::target::Scheme;

/// `--output-http-protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// HTTP/1.1 for everything.
    H1,
    /// HTTP/2 for everything.
    H2,
    /// HTTP/2 messages over HTTP/2 where the target allows it, the rest over HTTP/1.1.
    Auto,
}

/// The protocol one message goes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/1.1 (an HTTP/2-form message is converted).
    Http1,
    /// HTTP/2 (an HTTP/1 message is converted).
    Http2,
}

/// What the table decides without asking the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// This protocol.
    Decided(Wire),
    /// HTTP/2 if the https target picks `h2` by ALPN, else HTTP/1.1.
    AskAlpn,
}

/// The protocol for a message (`h2_form`: its start line says `HTTP/2`).
pub fn wire(protocol: Protocol, scheme: Scheme, h2_form: bool) -> Choice {
    match (protocol, scheme) {
        (Protocol::H1, _) => Choice::Decided(Wire::Http1),
        (Protocol::H2, _) | (Protocol::Auto, Scheme::H2c) => Choice::Decided(Wire::Http2),
        (Protocol::Auto, Scheme::Http) => Choice::Decided(Wire::Http1),
        (Protocol::Auto, Scheme::Https) if h2_form => Choice::AskAlpn,
        (Protocol::Auto, Scheme::Https) => Choice::Decided(Wire::Http1),
    }
}

/// Whether any message may go over HTTP/2 (then workers run an HTTP/2 connection).
pub fn may_use_h2(protocol: Protocol, scheme: Scheme) -> bool {
    !matches!(
        (protocol, scheme),
        (Protocol::H1, _) | (Protocol::Auto, Scheme::Http)
    )
}

/// Whether every message goes over HTTP/2.
pub fn only_h2(protocol: Protocol, scheme: Scheme) -> bool {
    matches!(
        (protocol, scheme),
        (Protocol::H2, _) | (Protocol::Auto, Scheme::H2c)
    )
}

/// The ALPN protocols to offer on HTTP/2 connections to an https target.
pub fn h2_alpn(protocol: Protocol) -> &'static [&'static [u8]] {
    match protocol {
        Protocol::H2 => &[b"h2"],
        _ => &[b"h2", b"http/1.1"],
    }
}

/// Why a protocol and a scheme do not go together.
pub fn check(protocol: Protocol, scheme: Scheme) -> Result<(), &'static str> {
    match (protocol, scheme) {
        (Protocol::H1, Scheme::H2c) => Err("h2c:// is HTTP/2 with prior knowledge: \
             --output-http-protocol h1 cannot reach it (use http://)"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Choice::*;
        use Wire::*;
        assert_eq!(wire(Protocol::Auto, Scheme::Http, true), Decided(Http1));
        assert_eq!(wire(Protocol::Auto, Scheme::H2c, false), Decided(Http2));
        assert_eq!(wire(Protocol::Auto, Scheme::Https, true), AskAlpn);
        assert_eq!(wire(Protocol::Auto, Scheme::Https, false), Decided(Http1));
        assert_eq!(wire(Protocol::H2, Scheme::Http, false), Decided(Http2));
        assert_eq!(wire(Protocol::H1, Scheme::Https, true), Decided(Http1));
        assert!(check(Protocol::H1, Scheme::H2c).is_err());
        assert!(!may_use_h2(Protocol::Auto, Scheme::Http));
        assert!(may_use_h2(Protocol::Auto, Scheme::Https));
        assert!(!only_h2(Protocol::Auto, Scheme::Https));
        assert!(only_h2(Protocol::H2, Scheme::Http) && only_h2(Protocol::Auto, Scheme::H2c));
        assert!(check(Protocol::H2, Scheme::Http).is_ok());
    }
}
