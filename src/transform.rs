//! The dispatch steps that act on each message, before it is routed: an ordered list built
//! once from the settings ([`Transforms::new`]). In order:
//!
//! 1. [`CopyBufferCut`] — a payload longer than `--copy-buffer-size` is cut (counted
//!    `truncated`);
//! 2. [`Prettify`] — `--prettify-http`: chunked bodies joined, gzip bodies decoded;
//! 3. [`Modify`] — the `--http-*` filters and rewrites: a filtered request is dropped as
//!    `filtered`, and so are later responses with its id.
//!
//! Then [`crate::route`] picks each message's outputs (split, limits) and the dispatcher
//! fans it out. A step that drops a message returns the [`Reason`]; the dispatcher counts it
//! on the emitter's counters and runs no later step for that message.

use crate::limiter::RecentIds;
use crate::modifier::Modifier;
use crate::prettify::Prettifier;
use shadowtap_api::{Counters, Message, Reason};

/// What a step decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next step.
    Pass,
    /// Stop here: the message is dropped for this reason.
    Drop(Reason),
}

/// One dispatch step over a message.
pub trait Transform: Send {
    /// The step's name (for logs and tests).
    fn name(&self) -> &'static str;
    /// Applies the step to `msg` in place; counts what it does besides dropping (`truncated`,
    /// extra counters) on `counters`, the emitter's.
    fn apply(&mut self, msg: &mut Message, counters: &Counters) -> Verdict;
}

/// The settings the message steps are built from.
pub struct TransformSettings {
    /// `--copy-buffer-size`, in bytes.
    pub copy_buffer_size: usize,
    /// `--prettify-http`, with the run's gRPC descriptor set.
    pub prettify: Option<Prettifier>,
    /// The `--http-*` filters and rewrites, if any.
    pub modifier: Option<Modifier>,
}

/// The message steps, in their fixed order (see the module documentation).
pub struct Transforms {
    steps: Vec<Box<dyn Transform>>,
}

impl Transforms {
    /// The steps `settings` ask for, in order: the cut always, then prettify and modify when
    /// configured.
    pub fn new(settings: TransformSettings) -> Self {
        let mut steps: Vec<Box<dyn Transform>> =
            vec![Box::new(CopyBufferCut::new(settings.copy_buffer_size))];
        if let Some(prettifier) = settings.prettify {
            steps.push(Box::new(Prettify::new(
                settings.copy_buffer_size,
                prettifier,
            )));
        }
        if let Some(modifier) = settings.modifier {
            steps.push(Box::new(Modify::new(modifier)));
        }
        Transforms { steps }
    }

    /// Runs every step on `msg` in order, stopping at the first that drops it.
    pub fn apply(&mut self, msg: &mut Message, counters: &Counters) -> Verdict {
        for step in &mut self.steps {
            if let Verdict::Drop(reason) = step.apply(msg, counters) {
                return Verdict::Drop(reason);
            }
        }
        Verdict::Pass
    }

    /// The names of the steps, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name()).collect()
    }
}

/// Cuts payloads longer than the copy buffer (`--copy-buffer-size`), counting `truncated`.
#[derive(Debug)]
pub struct CopyBufferCut {
    limit: usize,
}

impl CopyBufferCut {
    /// Cuts at `limit` bytes.
    pub fn new(limit: usize) -> Self {
        CopyBufferCut { limit }
    }
}

impl Transform for CopyBufferCut {
    fn name(&self) -> &'static str {
        "copy-buffer-cut"
    }

    fn apply(&mut self, msg: &mut Message, counters: &Counters) -> Verdict {
        if msg.truncate_payload(self.limit) {
            counters.add_truncated(1);
        }
        Verdict::Pass
    }
}

/// `--prettify-http` (see [`crate::prettify`]); never drops.
#[derive(Debug)]
pub struct Prettify {
    limit: usize,
    prettifier: Prettifier,
}

impl Prettify {
    /// Prettifies bodies up to `limit` bytes once decoded.
    pub fn new(limit: usize, prettifier: Prettifier) -> Self {
        Prettify { limit, prettifier }
    }
}

impl Transform for Prettify {
    fn name(&self) -> &'static str {
        "prettify"
    }

    fn apply(&mut self, msg: &mut Message, counters: &Counters) -> Verdict {
        self.prettifier.apply(msg, self.limit, counters);
        Verdict::Pass
    }
}

/// The `--http-*` filters and rewrites (see [`crate::modifier`]), applied to requests; a
/// response is dropped when its request was filtered.
pub struct Modify {
    modifier: Modifier,
    filtered: RecentIds,
}

impl Modify {
    /// Applies `modifier`.
    pub fn new(modifier: Modifier) -> Self {
        Modify {
            modifier,
            filtered: RecentIds::default(),
        }
    }
}

impl Transform for Modify {
    fn name(&self) -> &'static str {
        "modify"
    }

    fn apply(&mut self, msg: &mut Message, _: &Counters) -> Verdict {
        if msg.kind().is_request() {
            let sni = msg.tls.as_ref().and_then(|facts| facts.sni.as_deref());
            let rewritten = self
                .modifier
                .admits_sni(sni)
                .then(|| self.modifier.rewrite(&msg.payload))
                .flatten();
            match rewritten {
                Some(payload) => msg.payload = payload,
                None => {
                    self.filtered.insert(msg.id());
                    return Verdict::Drop(Reason::Filtered);
                }
            }
        } else if self.filtered.contains(msg.id()) {
            return Verdict::Drop(Reason::Filtered);
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use shadowtap_api::{Kind, Ledger, Meta, Role};

    fn msg(kind: Kind, id: &str, payload: &str) -> Message {
        Message::new(Meta::new(kind, id, 1, 0).unwrap(), payload.to_string())
    }

    fn counters() -> std::sync::Arc<Counters> {
        Ledger::new().register("emitter", Role::Engine)
    }

    /// The modifier of `flags` (the core command line's `--http-*` flags).
    fn modifier(flags: &[&str]) -> Modifier {
        let mut argv = vec!["shadowtap"];
        argv.extend(flags);
        let core = crate::cli::CoreArgs::try_parse_from(argv).unwrap();
        Modifier::new(core.modifiers).expect("flags make a modifier")
    }

    fn settings(prettify: bool, modifier: Option<Modifier>) -> TransformSettings {
        TransformSettings {
            copy_buffer_size: 64,
            prettify: prettify.then(Prettifier::default),
            modifier,
        }
    }

    #[test]
    fn steps_are_built_in_their_fixed_order() {
        let m = || Some(modifier(&["--http-allow-method", "GET"]));
        assert_eq!(
            Transforms::new(settings(false, None)).names(),
            ["copy-buffer-cut"]
        );
        assert_eq!(
            Transforms::new(settings(true, m())).names(),
            ["copy-buffer-cut", "prettify", "modify"]
        );
        assert_eq!(
            Transforms::new(settings(false, m())).names(),
            ["copy-buffer-cut", "modify"]
        );
    }

    #[test]
    fn copy_buffer_cut_counts_truncated() {
        let counters = counters();
        let mut cut = CopyBufferCut::new(4);
        let mut long = msg(Kind::Request, "a", "GET /long");
        let mut short = msg(Kind::Request, "b", "GET");
        assert_eq!(cut.apply(&mut long, &counters), Verdict::Pass);
        assert_eq!(cut.apply(&mut short, &counters), Verdict::Pass);
        assert_eq!(&long.payload[..], b"GET ");
        assert_eq!(&short.payload[..], b"GET");
        assert_eq!(counters.snapshot().truncated, 1);
    }

    #[test]
    fn prettify_joins_chunks_and_never_drops() {
        let counters = counters();
        let mut step = Prettify::new(1 << 20, Prettifier::default());
        let mut chunked = msg(
            Kind::Response,
            "a",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        );
        assert_eq!(step.apply(&mut chunked, &counters), Verdict::Pass);
        let text = String::from_utf8_lossy(&chunked.payload).into_owned();
        assert!(text.ends_with("\r\n\r\nok"), "{text:?}");
        assert!(!text.contains("chunked"), "{text:?}");
        let mut broken = msg(
            Kind::Response,
            "b",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        );
        assert_eq!(step.apply(&mut broken, &counters), Verdict::Pass);
    }

    #[test]
    fn modify_filters_requests_and_their_responses() {
        let counters = counters();
        let mut step = Modify::new(modifier(&["--http-allow-method", "GET"]));
        let mut get = msg(Kind::Request, "1", "GET / HTTP/1.1\r\n\r\n");
        let mut post = msg(Kind::Request, "2", "POST / HTTP/1.1\r\n\r\n");
        assert_eq!(step.apply(&mut get, &counters), Verdict::Pass);
        assert_eq!(
            step.apply(&mut post, &counters),
            Verdict::Drop(Reason::Filtered)
        );
        let mut post_response = msg(Kind::Response, "2", "HTTP/1.1 200 OK\r\n\r\n");
        let mut get_response = msg(Kind::Response, "1", "HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            step.apply(&mut post_response, &counters),
            Verdict::Drop(Reason::Filtered)
        );
        assert_eq!(step.apply(&mut get_response, &counters), Verdict::Pass);
    }

    #[test]
    fn sni_filters_match_the_tls_session_of_requests() {
        let counters = counters();
        let mut step = Modify::new(modifier(&["--http-allow-sni", "^api\\."]));
        let over_tls = |id: &str, sni: Option<&str>| {
            msg(Kind::Request, id, "GET / HTTP/1.1\r\n\r\n").with_tls(std::sync::Arc::new(
                shadowtap_api::TlsFacts {
                    version: "1.3",
                    cipher: "TLS_AES_128_GCM_SHA256",
                    sni: sni.map(Into::into),
                    alpn: None,
                },
            ))
        };
        let filtered = Verdict::Drop(Reason::Filtered);
        assert_eq!(
            step.apply(&mut over_tls("1", Some("api.shop")), &counters),
            Verdict::Pass
        );
        assert_eq!(
            step.apply(&mut over_tls("2", Some("www.shop")), &counters),
            filtered
        );
        assert_eq!(step.apply(&mut over_tls("3", None), &counters), filtered);
        let mut plain = msg(Kind::Request, "4", "GET / HTTP/1.1\r\n\r\n");
        assert_eq!(step.apply(&mut plain, &counters), filtered);
        let mut deny = Modify::new(modifier(&["--http-disallow-sni", "^www\\."]));
        assert_eq!(
            deny.apply(&mut over_tls("5", Some("www.shop")), &counters),
            filtered
        );
        assert_eq!(deny.apply(&mut plain, &counters), Verdict::Pass);
    }

    #[test]
    fn modify_rewrites_requests() {
        let counters = counters();
        let mut step = Modify::new(modifier(&["--http-set-header", "X-Test: 1"]));
        let mut get = msg(Kind::Request, "1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(step.apply(&mut get, &counters), Verdict::Pass);
        let text = String::from_utf8_lossy(&get.payload).into_owned();
        assert!(text.contains("X-Test: 1\r\n"), "{text:?}");
    }

    #[test]
    fn the_list_stops_at_the_first_drop() {
        let counters = counters();
        // The cut runs first: the modifier sees (and drops) the cut payload.
        let mut steps = Transforms::new(TransformSettings {
            copy_buffer_size: 40,
            prettify: Some(Prettifier::default()),
            modifier: Some(modifier(&["--http-allow-method", "GET"])),
        });
        let body = "x".repeat(100);
        let mut post = msg(
            Kind::Request,
            "1",
            &format!("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{body}"),
        );
        assert_eq!(
            steps.apply(&mut post, &counters),
            Verdict::Drop(Reason::Filtered)
        );
        assert_eq!(post.payload.len(), 40);
        assert_eq!(counters.snapshot().truncated, 1);
    }
}
