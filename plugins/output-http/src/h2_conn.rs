//! HTTP/2 connections to the target (`h2` crate on a tokio runtime) and the exchange of one
//! stream, with the retries that are safe.
//!
//! A [`ConnSlot`] holds one of a worker's connections: opened when a stream first needs it
//! (prior knowledge over TCP for `h2c://` and `http://`, TLS with ALPN for `https://`),
//! replaced when it is gone (closed, GOAWAY). A stream that could not be opened (the
//! connection had closed or sent GOAWAY) goes to a fresh connection; a stream that was sent
//! is retried once when it was certainly not processed: above a graceful GOAWAY's last
//! stream id (on a fresh connection) or refused (REFUSED_STREAM). A reset, a protocol error
//! or a lost connection after the stream was sent fail that stream only; the connection's
//! other streams go on.

use crate::conn::{Client, ExchangeError, Failure};
use crate::h2_request::H2Request;
use crate::h2_response::Received;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::Reason;
use http::{HeaderMap, StatusCode};
use std::cell::Cell;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Receive windows: large enough that flow control never paces a replay.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
/// Fresh connections tried for a stream that could not be opened (nothing was sent).
const REOPENS: usize = 3;

/// One connection of a worker, opened on demand.
#[derive(Default)]
pub struct ConnSlot {
    current: Mutex<Option<(SendRequest<Bytes>, u64)>>,
    generation: Cell<u64>,
}

impl ConnSlot {
    /// The connection, opening one if there is none; with its generation.
    async fn get(&self, client: &Client) -> Result<(SendRequest<Bytes>, u64), ExchangeError> {
        let mut current = self.current.lock().await;
        if let Some((sender, generation)) = &*current {
            return Ok((sender.clone(), *generation));
        }
        let sender = connect(client).await?;
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        *current = Some((sender.clone(), generation));
        Ok((sender, generation))
    }

    /// Forgets connection `generation` (if it is still the current one).
    async fn discard(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(_, g)| *g == generation) {
            *current = None;
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Answer {
    /// `:status`.
    pub status: StatusCode,
    /// The regular fields.
    pub headers: HeaderMap,
    /// Body (kept part) and trailers.
    pub received: Received,
}

/// Sends `request` on the slot's connection and reads the whole response, keeping at most
/// `keep` body bytes; retried once when that is safe (see the module documentation), and
/// moved to a fresh connection (up to [`REOPENS`] times) when it could not be opened.
pub async fn exchange(
    client: &Client,
    slot: &ConnSlot,
    request: &H2Request,
    keep: usize,
) -> Result<Answer, ExchangeError> {
    let mut retried = false;
    let mut reopened = 0;
    loop {
        let (sender, generation) = slot.get(client).await?;
        let failed = match exchange_on(sender, request, keep).await {
            Ok(answer) => return Ok(answer),
            Err(failed) => failed,
        };
        if failed.connection_gone() {
            slot.discard(generation).await;
        }
        match failed {
            StreamFailure::Unopened(_) if reopened < REOPENS => reopened += 1,
            failed if failed.unprocessed() && !retried => retried = true,
            failed => return Err(failed.into_error()),
        }
    }
}

/// How one attempt failed.
#[derive(Debug)]
enum StreamFailure {
    /// The stream could not be opened: the connection is unusable.
    Unopened(h2::Error),
    /// The stream failed; `answered`: its response head had arrived.
    Failed { error: h2::Error, answered: bool },
}

impl StreamFailure {
    fn error(&self) -> &h2::Error {
        match self {
            StreamFailure::Unopened(e) | StreamFailure::Failed { error: e, .. } => e,
        }
    }

    /// The connection will not carry another stream.
    fn connection_gone(&self) -> bool {
        let e = self.error();
        matches!(self, StreamFailure::Unopened(_)) || e.is_go_away() || e.is_io()
    }

    /// The server certainly did not process the stream.
    fn unprocessed(&self) -> bool {
        match self {
            StreamFailure::Unopened(_) => true,
            StreamFailure::Failed { answered: true, .. } => false,
            StreamFailure::Failed { error, .. } => {
                let graceful_goaway = error.is_go_away()
                    && error.is_remote()
                    && error.reason() == Some(Reason::NO_ERROR);
                let refused = error.is_reset()
                    && error.is_remote()
                    && error.reason() == Some(Reason::REFUSED_STREAM);
                graceful_goaway || refused
            }
        }
    }

    fn into_error(self) -> ExchangeError {
        let error = match self {
            StreamFailure::Unopened(e) | StreamFailure::Failed { error: e, .. } => e,
        };
        ExchangeError::new(classify(&error), error.to_string())
    }
}

/// The counted class of an `h2` error.
fn classify(error: &h2::Error) -> Failure {
    if let Some(io) = error.get_io() {
        return Failure::of_io(io);
    }
    if error.is_reset() && error.is_remote() {
        if error.reason() == Some(Reason::REFUSED_STREAM) {
            Failure::H2Refused
        } else {
            Failure::H2Reset
        }
    } else if error.is_go_away() && error.is_remote() {
        Failure::H2GoAway
    } else {
        Failure::H2Protocol
    }
}

async fn exchange_on(
    sender: SendRequest<Bytes>,
    request: &H2Request,
    keep: usize,
) -> Result<Answer, StreamFailure> {
    let mut sender = sender.ready().await.map_err(StreamFailure::Unopened)?;
    let failed = |error| StreamFailure::Failed {
        error,
        answered: false,
    };
    let body_ends = request.trailers.is_none();
    let end_at_head = request.body.is_empty() && body_ends;
    let (response, mut stream) = sender
        .send_request(request.duplicate().head, end_at_head)
        .map_err(StreamFailure::Unopened)?;
    if !request.body.is_empty() {
        // Buffered by h2 and sent as the flow-control windows allow.
        stream
            .send_data(request.body.clone(), body_ends)
            .map_err(failed)?;
    }
    if let Some(trailers) = &request.trailers {
        stream.send_trailers(trailers.clone()).map_err(failed)?;
    }
    let response = response.await.map_err(failed)?;
    let answered = |error| StreamFailure::Failed {
        error,
        answered: true,
    };
    let (head, mut body) = response.into_parts();
    let mut received = Received::default();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(answered)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let room = keep.saturating_sub(received.body.len());
        received
            .body
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    received.trailers = body.trailers().await.map_err(answered)?;
    drop(stream);
    Ok(Answer {
        status: head.status,
        headers: head.headers,
        received,
    })
}

/// Opens a connection to the target and starts its driver on the runtime.
async fn connect(client: &Client) -> Result<SendRequest<Bytes>, ExchangeError> {
    let tcp = connect_tcp(&client.target.connect_address()).await?;
    match client.h2_tls() {
        None => handshake(tcp).await,
        Some((config, name)) => {
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| ExchangeError::new(Failure::Tls, format!("TLS handshake: {e}")))?;
            match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") | None => handshake(tls).await,
                Some(other) => Err(ExchangeError::new(
                    Failure::H2Protocol,
                    format!(
                        "the server chose ALPN {:?}, not h2",
                        String::from_utf8_lossy(other)
                    ),
                )),
            }
        }
    }
}

async fn connect_tcp(address: &str) -> Result<TcpStream, ExchangeError> {
    let addrs: Vec<_> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| ExchangeError::new(Failure::Dns, format!("resolving {address}: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(ExchangeError::io(e, &format!("connecting to {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| {
        ExchangeError::new(Failure::Dns, format!("{address} resolved to no address"))
    }))
}

/// The HTTP/2 handshake; the connection's driver runs as a task until it closes.
async fn handshake<T>(io: T) -> Result<SendRequest<Bytes>, ExchangeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::Builder::new()
        // A replay has no use for pushed responses.
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<T, Bytes>(io)
        .await
        .map_err(|e| ExchangeError::new(classify(&e), format!("HTTP/2 handshake: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("HTTP/2 connection ended: {e}");
        }
    });
    Ok(sender)
}
