//! Keep-alive connections to one target and the exchange of one request: write the bytes,
//! read the response, retry once on a fresh connection when a connection failed before any
//! byte of the response arrived, follow same-origin redirects when asked to.

use crate::protocol::{self, Choice, Protocol, Wire};
use crate::request::{self, Edits, RequestError, RequestInfo};
use crate::response::{Response, ResponseError, ResponseReader};
use crate::target::{Scheme, Target};
use bytes::Bytes;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Slack allowed past the deadline before a socket timeout is re-armed (saves a syscall per
/// read on fast exchanges).
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

/// Why an exchange failed, as counted in the ledger (`error: <name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The name did not resolve.
    Dns,
    /// Connection refused.
    Refused,
    /// Any other connect failure (unreachable network…).
    Connect,
    /// The whole exchange took longer than `--output-http-timeout`.
    Timeout,
    /// Reset or broken pipe.
    Reset,
    /// Closed before the response was complete.
    Closed,
    /// TLS handshake or record failure (certificate verification included).
    Tls,
    /// The response is not valid HTTP/1.x.
    BadResponse,
    /// The server reset the HTTP/2 stream with REFUSED_STREAM (it did not process it).
    H2Refused,
    /// The server reset the HTTP/2 stream with another error code.
    H2Reset,
    /// The server sent GOAWAY before the stream was answered.
    H2GoAway,
    /// An HTTP/2 protocol error (detected by the client library, or an ALPN mismatch).
    H2Protocol,
}

impl Failure {
    /// The extra counter's name.
    pub fn counter(self) -> &'static str {
        match self {
            Failure::Dns => "error: dns",
            Failure::Refused => "error: refused",
            Failure::Connect => "error: connect",
            Failure::Timeout => "error: timeout",
            Failure::Reset => "error: reset",
            Failure::Closed => "error: closed",
            Failure::Tls => "error: tls",
            Failure::BadResponse => "error: bad response",
            Failure::H2Refused => "error: h2 refused stream",
            Failure::H2Reset => "error: h2 reset",
            Failure::H2GoAway => "error: h2 goaway",
            Failure::H2Protocol => "error: h2 protocol",
        }
    }

    pub(crate) fn of_io(e: &io::Error) -> Failure {
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            return Failure::Tls;
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Failure::Reset,
            io::ErrorKind::UnexpectedEof => Failure::Closed,
            io::ErrorKind::InvalidData => Failure::Tls,
            _ => Failure::Connect,
        }
    }
}

/// A failed exchange.
#[derive(Debug)]
pub struct ExchangeError {
    /// The counted reason.
    pub failure: Failure,
    /// What happened, for the log.
    pub detail: String,
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.failure.counter(), self.detail)
    }
}

impl ExchangeError {
    /// A failure of the given class.
    pub(crate) fn new(failure: Failure, detail: impl Into<String>) -> Self {
        ExchangeError {
            failure,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(e: io::Error, what: &str) -> Self {
        ExchangeError {
            failure: Failure::of_io(&e),
            detail: format!("{what}: {e}"),
        }
    }

    fn response(e: ResponseError) -> Self {
        match e {
            ResponseError::Io(e) => ExchangeError::io(e, "reading the response"),
            ResponseError::Closed => ExchangeError {
                failure: Failure::Closed,
                detail: "connection closed before the response was complete".into(),
            },
            ResponseError::Bad(why) => ExchangeError {
                failure: Failure::BadResponse,
                detail: why,
            },
        }
    }
}

/// Why a message was not replayed.
#[derive(Debug)]
pub enum SendError {
    /// The captured request itself cannot be sent.
    Request(RequestError),
    /// The network exchange failed.
    Exchange(ExchangeError),
}

/// What one `--output-http` connects to and how.
pub struct Client {
    /// The target.
    pub target: Target,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// `--output-http-timeout`: connect + write + read of one request, retries included.
    pub timeout: Duration,
    /// `--output-http-redirects`.
    pub redirects: u32,
    /// `--http-original-host`.
    pub original_host: bool,
    /// How messages choose HTTP/1.1 or HTTP/2.
    pub h2: H2Settings,
    /// Whether the https target picked `h2` by ALPN (asked once, when an HTTP/2 message
    /// first may go there).
    alpn_h2: OnceLock<bool>,
}

/// The HTTP/2 side of a client.
#[derive(Clone)]
pub struct H2Settings {
    /// `--output-http-protocol`.
    pub protocol: Protocol,
    /// `--output-http-h2-streams`: concurrent streams per connection.
    pub streams: usize,
    /// For https: the TLS setup offering `h2` by ALPN.
    pub tls: Option<Arc<ClientConfig>>,
    /// `--output-http-workers`: HTTP/2 connections of all workers together.
    pub connections: usize,
    /// Connections one worker thread runs.
    pub connections_per_worker: usize,
}

impl Client {
    /// A client for `target`; `tls` is required for https targets.
    pub fn new(
        target: Target,
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
        timeout: Duration,
        redirects: u32,
        original_host: bool,
    ) -> Self {
        Client {
            target,
            tls,
            timeout,
            redirects,
            original_host,
            h2: H2Settings {
                protocol: Protocol::Auto,
                streams: 100,
                tls: None,
                connections: 1,
                connections_per_worker: 1,
            },
            alpn_h2: OnceLock::new(),
        }
    }

    /// The same client with these HTTP/2 settings.
    pub fn with_h2(mut self, h2: H2Settings) -> Self {
        self.h2 = h2;
        self
    }

    /// Whether any message may go over HTTP/2.
    pub fn may_use_h2(&self) -> bool {
        protocol::may_use_h2(self.h2.protocol, self.target.scheme)
    }

    /// Whether every message goes over HTTP/2.
    pub fn only_h2(&self) -> bool {
        protocol::only_h2(self.h2.protocol, self.target.scheme)
    }

    /// The TLS setup and server name of HTTP/2 connections (https targets only).
    pub fn h2_tls(&self) -> Option<(Arc<ClientConfig>, ServerName<'static>)> {
        let (_, name) = self.tls.as_ref()?;
        Some((self.h2.tls.clone()?, name.clone()))
    }

    /// Which protocol carries `payload`; may ask an https target once which protocol it
    /// picks by ALPN (a failure to ask is that message's failure, and asked again next time).
    pub fn wire_for(&self, payload: &[u8]) -> Result<Wire, ExchangeError> {
        let h2_form = crate::form::is_h2_form(payload);
        match protocol::wire(self.h2.protocol, self.target.scheme, h2_form) {
            Choice::Decided(wire) => Ok(wire),
            Choice::AskAlpn => {
                if let Some(&h2) = self.alpn_h2.get() {
                    return Ok(if h2 { Wire::Http2 } else { Wire::Http1 });
                }
                let h2 = self.probe_alpn()?;
                let _ = self.alpn_h2.set(h2);
                Ok(if h2 { Wire::Http2 } else { Wire::Http1 })
            }
        }
    }

    /// Connects with the HTTP/2 TLS setup and tells whether the server picked `h2`.
    fn probe_alpn(&self) -> Result<bool, ExchangeError> {
        let deadline = Instant::now() + self.timeout;
        let Some(tls) = self.h2_tls() else {
            return Ok(false);
        };
        let tcp = self.connect_tcp(deadline)?;
        let (session, _tcp) = handshake(tcp, &tls)?;
        Ok(session.alpn_protocol() == Some(b"h2"))
    }

    fn connect_tcp(&self, deadline: Instant) -> Result<TcpStream, ExchangeError> {
        let address = self.target.connect_address();
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| ExchangeError {
                failure: Failure::Dns,
                detail: format!("resolving {address}: {e}"),
            })?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            let remaining = remaining(deadline)?;
            match TcpStream::connect_timeout(&addr, remaining) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some(ExchangeError::io(e, &format!("connecting to {addr}"))),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            last.unwrap_or(ExchangeError {
                failure: Failure::Dns,
                detail: format!("{address} resolved to no address"),
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let timeout = remaining(deadline)?;
        set_timeouts(&tcp, timeout).map_err(|e| ExchangeError::io(e, "configuring socket"))?;
        Ok(tcp)
    }

    fn connect(&self, deadline: Instant) -> Result<Connection, ExchangeError> {
        let tcp = self.connect_tcp(deadline)?;
        let timeout = remaining(deadline)?;
        let stream = match (&self.tls, self.target.scheme) {
            (Some(tls), Scheme::Https) => {
                let (session, tcp) = handshake(tcp, tls)?;
                Stream::Tls(Box::new(StreamOwned::new(session, tcp)))
            }
            _ => Stream::Plain(tcp),
        };
        Ok(Connection {
            stream,
            reader: ResponseReader::default(),
            timeout_set: timeout,
        })
    }
}

/// A TLS handshake on `tcp`.
fn handshake(
    mut tcp: TcpStream,
    (config, name): &(Arc<ClientConfig>, ServerName<'static>),
) -> Result<(ClientConnection, TcpStream), ExchangeError> {
    let mut session = ClientConnection::new(config.clone(), name.clone())
        .map_err(|e| ExchangeError::new(Failure::Tls, e.to_string()))?;
    while session.is_handshaking() {
        session
            .complete_io(&mut tcp)
            .map_err(|e| tls_error(e, "TLS handshake"))?;
    }
    Ok((session, tcp))
}

fn tls_error(e: io::Error, what: &str) -> ExchangeError {
    let mut error = ExchangeError::io(e, what);
    if matches!(error.failure, Failure::Connect | Failure::Closed) {
        error.failure = Failure::Tls;
    }
    error
}

fn remaining(deadline: Instant) -> Result<Duration, ExchangeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ExchangeError {
            failure: Failure::Timeout,
            detail: "timed out".into(),
        })
    } else {
        Ok(left)
    }
}

fn set_timeouts(tcp: &TcpStream, timeout: Duration) -> io::Result<()> {
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

/// One open connection with its read buffer.
struct Connection {
    stream: Stream,
    reader: ResponseReader,
    timeout_set: Duration,
}

/// The connection's stream, bounded by a deadline.
struct Deadlined<'a> {
    stream: &'a mut Stream,
    timeout_set: &'a mut Duration,
    deadline: Instant,
}

impl Deadlined<'_> {
    fn arm(&mut self, retrying: bool) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        if retrying || *self.timeout_set > left + TIMEOUT_SLACK {
            set_timeouts(self.stream.tcp(), left)?;
            *self.timeout_set = left;
        }
        Ok(())
    }

    fn again<T>(&mut self, mut op: impl FnMut(&mut Stream) -> io::Result<T>) -> io::Result<T> {
        self.arm(false)?;
        loop {
            match op(self.stream) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // The socket timeout was shorter than what is left: wait again.
                    self.arm(true)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.again(|s| match s {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        })
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.again(|s| match s {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.again(|s| match s {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        })
    }
}

/// A worker's connection to the target and its reusable buffers.
pub struct Session {
    client: Arc<Client>,
    connection: Option<Connection>,
    request: Vec<u8>,
    converted: Vec<u8>,
    /// Redirects not followed because they point elsewhere.
    pub foreign_redirects: u64,
}

impl Session {
    /// A session without a connection yet.
    pub fn new(client: Arc<Client>) -> Self {
        Session {
            client,
            connection: None,
            request: Vec::new(),
            converted: Vec::new(),
            foreign_redirects: 0,
        }
    }

    /// Replays `payload` over HTTP/1.1 (an HTTP/2-form message converted first), keeping at
    /// most `keep` bytes of the response.
    pub fn send(&mut self, payload: &Bytes, keep: usize) -> Result<Response, SendError> {
        let mut converted = std::mem::take(&mut self.converted);
        let result = crate::form::as_http1(payload, &mut converted)
            .map_err(|e| SendError::Request(RequestError::Form(e)))
            .and_then(|http1| self.send_http1(http1, keep));
        self.converted = converted;
        result
    }

    fn send_http1(&mut self, payload: &[u8], keep: usize) -> Result<Response, SendError> {
        let client = self.client.clone();
        let host = (!client.original_host).then_some(client.target.authority.as_str());
        let edits = Edits {
            host,
            base_path: &client.target.base_path,
            ..Edits::default()
        };
        let mut request = std::mem::take(&mut self.request);
        let result = (|| {
            let info =
                request::rewrite(payload, &edits, &mut request).map_err(SendError::Request)?;
            let deadline = Instant::now() + client.timeout;
            let mut response = self
                .exchange(&request, info, keep, deadline)
                .map_err(SendError::Exchange)?;
            for _ in 0..client.redirects {
                let Some(next) = redirect_target(&response, &client.target) else {
                    if is_redirect(response.status) && response.location.is_some() {
                        self.foreign_redirects += 1;
                    }
                    break;
                };
                let method_is_post = request.starts_with(b"POST ");
                let into_get = response.status == 303
                    || (matches!(response.status, 301 | 302) && method_is_post);
                let previous = std::mem::take(&mut request);
                let edits = Edits {
                    host: None,
                    base_path: "",
                    replace_target: Some(&next),
                    into_get,
                };
                let info = request::rewrite(&previous, &edits, &mut request)
                    .map_err(SendError::Request)?;
                response = self
                    .exchange(&request, info, keep, deadline)
                    .map_err(SendError::Exchange)?;
            }
            Ok(response)
        })();
        self.request = request;
        result
    }

    /// One request on a pooled (or new) connection, retried once on a fresh connection when
    /// the failure came before any byte of the response.
    fn exchange(
        &mut self,
        request: &[u8],
        info: RequestInfo,
        keep: usize,
        deadline: Instant,
    ) -> Result<Response, ExchangeError> {
        let mut retried = false;
        loop {
            let mut connection = match self.connection.take() {
                Some(c) => c,
                None => self.client.connect(deadline)?,
            };
            let result = exchange_on(&mut connection, request, info, keep, deadline);
            match result {
                Ok(response) => {
                    if response.reusable {
                        self.connection = Some(connection);
                    }
                    return Ok(response);
                }
                Err(error) => {
                    let retry = !retried
                        && !connection.reader.received_any()
                        && error.failure != Failure::Timeout
                        && Instant::now() < deadline;
                    if !retry {
                        return Err(error);
                    }
                    retried = true;
                }
            }
        }
    }
}

fn exchange_on(
    connection: &mut Connection,
    request: &[u8],
    info: RequestInfo,
    keep: usize,
    deadline: Instant,
) -> Result<Response, ExchangeError> {
    connection.reader.begin();
    let mut io = Deadlined {
        stream: &mut connection.stream,
        timeout_set: &mut connection.timeout_set,
        deadline,
    };
    io.write_all(request)
        .and_then(|_| io.flush())
        .map_err(|e| ExchangeError::io(e, "sending the request"))?;
    connection
        .reader
        .read(&mut io, info.head, keep)
        .map_err(ExchangeError::response)
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The request-target to follow a redirect to, when it stays on the target's origin.
fn redirect_target(response: &Response, target: &Target) -> Option<String> {
    if !is_redirect(response.status) {
        return None;
    }
    let location = response.location.as_deref()?.trim();
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_string());
    }
    let (scheme, rest) = location.split_once("://")?;
    let same_scheme = match target.scheme {
        Scheme::Http | Scheme::H2c => scheme.eq_ignore_ascii_case("http"),
        Scheme::Https => scheme.eq_ignore_ascii_case("https"),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let same_origin = Target::parse(&format!("{scheme}://{authority}"))
        .is_ok_and(|t| t.host.eq_ignore_ascii_case(&target.host) && t.port == target.port);
    (same_scheme && same_origin).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, location: &str) -> Response {
        Response {
            status,
            raw: Vec::new(),
            reusable: true,
            location: Some(location.to_string()),
        }
    }

    #[test]
    fn redirects_stay_on_the_origin() {
        let target = Target::parse("http://127.0.0.1:8080/api").unwrap();
        let follow = |status, location| redirect_target(&response(status, location), &target);
        assert_eq!(follow(302, "/next?x=1").as_deref(), Some("/next?x=1"));
        assert_eq!(
            follow(307, "http://127.0.0.1:8080/b").as_deref(),
            Some("/b")
        );
        assert_eq!(
            follow(301, "http://127.0.0.1:8080?q").as_deref(),
            Some("/?q")
        );
        assert_eq!(follow(302, "https://127.0.0.1:8080/b"), None);
        assert_eq!(follow(302, "http://elsewhere:8080/b"), None);
        assert_eq!(follow(302, "//elsewhere/b"), None);
        assert_eq!(follow(200, "/next"), None);
    }

    #[test]
    fn io_failures_are_classified() {
        let kind = |k| Failure::of_io(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), Failure::Refused);
        assert_eq!(kind(io::ErrorKind::WouldBlock), Failure::Timeout);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), Failure::Reset);
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::General("bad cert".into()),
        );
        assert_eq!(Failure::of_io(&tls), Failure::Tls);
    }
}
