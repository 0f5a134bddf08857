//! The upgrade handshake with the backend: the client's request goes out
//! with its WebSocket headers; a 101 turns the exchange into a tunnel,
//! any other answer is relayed as an ordinary response. Both heads go
//! through core/http1's backend side, as proxy_http's do, so the same
//! fields stop at the proxy and the same X-Forwarded-* are added.

use crate::target::{self, Target};
use bytes::BytesMut;
use modproxy_api::proxy::{
    exchange_flags, worker_flags, Exchange, ExchangeOutcome, ExchangeStatus, WorkerParams,
};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::sdk::tunnel;
use modproxy_api::{log, Headers, IoError, Level, Request};
use modproxy_http1::backend_request::{write_request_head, BodyFraming, RequestHead};
use modproxy_http1::backend_response::{
    parse_response_head, ResponseFraming, ResponseHead, MAX_FIELD, MAX_HEADERS, MAX_INTERIM,
};
use modproxy_http1::eq_lower_str as eq_lower;
use modproxy_http1::forwarded::{via_value, Forwarded};
use std::time::Duration;

/// The most a backend's response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// Used when a worker's timeout is 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `Upgrade: websocket` (any case, possibly among other protocols).
pub fn wants_websocket(req: &Request) -> bool {
    req.header(Headers::Request, "upgrade")
        .is_some_and(names_websocket)
}

pub async fn run(req: &mut Request, ex: &mut Exchange) -> (ExchangeStatus, ExchangeOutcome) {
    let mut outcome = ExchangeOutcome::default();
    let url = ex.target().to_owned();
    let worker = ex.worker().to_owned();
    let fail = |why: String| {
        log(
            Level::Error,
            format_args!("proxy_wstunnel: {worker}: {why}"),
        )
    };
    let t = match target::parse(&url) {
        Ok(t) => t,
        Err(why) => {
            fail(format!("invalid target URL {url:?}: {why}"));
            return (ExchangeStatus::ClientError, outcome);
        }
    };
    let head = match request_head(req, &t, ex.flags()) {
        Ok(h) => h,
        Err(why) => {
            fail(why);
            return (ExchangeStatus::ClientError, outcome);
        }
    };
    let params = ex.params();
    let io_timeout = timeout_or_default(params.timeout_ms);
    let mut backend = match connect(&t, &params).await {
        Ok(c) => c,
        Err(why) => {
            fail(why);
            return (ExchangeStatus::ConnectFailed, outcome);
        }
    };
    match timeout(io_timeout, backend.write_all(&head)).await {
        Ok(Ok(())) => outcome.bytes_sent += head.len() as u64,
        Ok(Err(e)) => {
            fail(format!("sending the upgrade request failed: {e}"));
            return (ExchangeStatus::ConnectFailed, outcome);
        }
        Err(_) => return (ExchangeStatus::Timeout, outcome),
    }
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let is_head = req.method().eq_ignore_ascii_case("HEAD");
    let answer = timeout(io_timeout, read_head(&mut backend, &mut buf, is_head)).await;
    let head = match answer {
        Ok(Ok((h, head_bytes))) => {
            outcome.bytes_received += head_bytes as u64;
            h
        }
        Ok(Err(why)) => {
            fail(why);
            return (ExchangeStatus::BadResponse, outcome);
        }
        Err(_) => {
            fail(format!(
                "no answer to the upgrade within {} ms: raise the worker's timeout if the backend is slow",
                io_timeout.as_millis()
            ));
            return (ExchangeStatus::Timeout, outcome);
        }
    };
    outcome.status = head.status;
    outcome.bytes_received += buf.len() as u64;
    req.set_status(head.status);
    if head.status != 101 {
        let length = match refusal_length(req, &head) {
            Ok(length) => length,
            Err(why) => {
                fail(why);
                return (ExchangeStatus::BadResponse, outcome);
            }
        };
        return relay_refusal(req, &mut backend, buf, length, io_timeout, &mut outcome).await;
    }
    if let Err(why) = switch_headers(req, &head) {
        fail(why);
        return (ExchangeStatus::BadResponse, outcome);
    }
    tunnel(req, backend, buf, io_timeout, &worker, outcome).await
}

/// The 101 goes to the client, whose connection the host then hands over;
/// bytes flow both ways until the tunnel ends.
async fn tunnel(
    req: &mut Request,
    backend: TcpConn,
    buf: BytesMut,
    io_timeout: Duration,
    worker: &str,
    mut outcome: ExchangeOutcome,
) -> (ExchangeStatus, ExchangeOutcome) {
    if req.send_head().is_err() {
        return (ExchangeStatus::Aborted, outcome);
    }
    let client = match TcpConn::upgrade(req).await {
        Ok(c) => c,
        Err(e) => {
            log(
                Level::Info,
                format_args!(
                    "proxy_wstunnel: {worker}: the client connection was not handed over: {e}"
                ),
            );
            return (ExchangeStatus::Aborted, outcome);
        }
    };
    let moved = tunnel::run(client, backend, buf.freeze(), io_timeout).await;
    outcome.bytes_sent += moved.up;
    outcome.bytes_received += moved.down;
    if let Some(why) = moved.ended {
        log(
            Level::Debug,
            format_args!("proxy_wstunnel: {worker}: tunnel ended: {why}"),
        );
    }
    (ExchangeStatus::Relayed, outcome)
}

/// A worker's timeout in milliseconds; 0 means the default.
fn timeout_or_default(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms)
    }
}

/// A connection to the backend, with TLS for `wss://` and `https://`;
/// `Err` is a log line.
async fn connect(t: &Target<'_>, params: &WorkerParams) -> Result<TcpConn, String> {
    let limit = timeout_or_default(params.connect_timeout_ms);
    let connected = if t.tls {
        let verify = params.flags & worker_flags::TLS_INSECURE == 0;
        let ca = params.tls_ca_file.as_str();
        TcpConn::connect_tls(&t.addr, t.host, verify, ca, limit).await
    } else {
        TcpConn::connect(&t.addr, limit).await
    };
    connected.map_err(|e| format!("connect to {} failed: {e}", t.addr))
}

/// The backend said no (400, 403, 426…): its fields go to the client as
/// proxy_http would pass them (Content-Length aside: the core frames the
/// body). Returns the body's length, `None` for one that runs until close.
fn refusal_length(req: &mut Request, head: &ResponseHead) -> Result<Option<u64>, String> {
    let length = match head.framing {
        ResponseFraming::NoBody => Some(0),
        ResponseFraming::ContentLength(n) => Some(n),
        ResponseFraming::CloseDelimited => None,
        ResponseFraming::Chunked => {
            return Err(format!(
                "backend refused the upgrade ({}) with a chunked body, which is not relayed: \
                 have it answer with a Content-Length",
                head.status
            ))
        }
    };
    for (name, value) in head.headers.end_to_end() {
        if !eq_lower(name, "content-length") {
            req.add_header(Headers::Response, name, value);
        }
    }
    Ok(length)
}

/// The 101's fields for the client: those that pass a proxy (not the
/// hop-by-hop ones, nor those the 101's Connection names), then the
/// switch itself, `Upgrade` as the backend gave it and `Connection:
/// Upgrade`, as Apache's mod_proxy_http sets them on its upgrade path. A
/// backend that switched to anything but WebSocket is refused (502), as
/// Apache refuses an Upgrade other than the one asked for.
fn switch_headers(req: &mut Request, head: &ResponseHead) -> Result<(), String> {
    let upgrade = head.headers.iter().find(|(n, _)| eq_lower(n, "upgrade"));
    let Some((_, protocol)) = upgrade.filter(|(_, v)| names_websocket(v)) else {
        return Err(
            "backend answered 101 without Upgrade: websocket: check that the worker's URL is a \
             WebSocket endpoint"
                .into(),
        );
    };
    for (name, value) in head.headers.end_to_end() {
        req.add_header(Headers::Response, name, value);
    }
    req.add_header(Headers::Response, "Upgrade", protocol);
    req.add_header(Headers::Response, "Connection", b"Upgrade");
    Ok(())
}

/// `websocket` among the comma-separated protocols of an Upgrade value.
fn names_websocket(value: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// The backend said no (400, 403, 426…): its answer goes to the client.
async fn relay_refusal(
    req: &mut Request,
    backend: &mut TcpConn,
    mut buf: BytesMut,
    length: Option<u64>,
    io_timeout: Duration,
    outcome: &mut ExchangeOutcome,
) -> (ExchangeStatus, ExchangeOutcome) {
    if req.send_head().is_err() {
        return (ExchangeStatus::Aborted, *outcome);
    }
    let mut left = length.unwrap_or(u64::MAX);
    loop {
        if !buf.is_empty() {
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buf.split_to(take).freeze();
            left -= chunk.len() as u64;
            if req.write_body(chunk).await.is_err() {
                return (ExchangeStatus::Aborted, *outcome);
            }
        }
        if left == 0 {
            return (ExchangeStatus::Relayed, *outcome);
        }
        match timeout(io_timeout, backend.read_buf(&mut buf, 64 * 1024)).await {
            Ok(Ok(0)) if length.is_none() => return (ExchangeStatus::Relayed, *outcome),
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return (ExchangeStatus::Aborted, *outcome),
            Ok(Ok(n)) => outcome.bytes_received += n as u64,
        }
    }
}

/// The request head for the backend, written by the code proxy_http uses
/// (core/http1), so both filter and add the same fields: the client's
/// less the hop-by-hop ones and those its Connection names, our Host,
/// X-Forwarded-* and Via as the flags say, and the upgrade asked for
/// anew. `Err` is a log line (the client's request is at fault).
fn request_head(req: &Request, t: &Target<'_>, flags: u32) -> Result<Vec<u8>, String> {
    let client_host = req.header(Headers::Request, "host");
    let host = match client_host.and_then(|h| std::str::from_utf8(h).ok()) {
        Some(h) if flags & exchange_flags::PRESERVE_HOST != 0 && !h.is_empty() => h,
        _ => t.authority,
    };
    let (addr, server) = (req.client_addr(), req.server_name());
    let via = (flags & exchange_flags::VIA != 0).then(|| via_value(req.version(), server));
    let forwarded = (flags & exchange_flags::ADD_FORWARDED != 0)
        .then(|| Forwarded::new(addr, client_host, server, req.scheme()));
    let head = RequestHead {
        method: req.method(),
        path_and_query: t.path_and_query,
        host,
        headers: req.headers(Headers::Request).iter(),
        // An upgrade request has no body; the tunnel carries what follows.
        framing: BodyFraming::None,
        forwarded,
        via: via.as_deref(),
        close: false,
        upgrade: Some("websocket"),
    };
    let mut out = Vec::with_capacity(512);
    write_request_head(&head, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Reads until a complete response head is in `buf` and takes it off;
/// interim answers other than 101 are skipped, up to [`MAX_INTERIM`].
/// Returns the head and the bytes of the heads taken off. `Err` is a log
/// line.
async fn read_head(
    conn: &mut TcpConn,
    buf: &mut BytesMut,
    is_head: bool,
) -> Result<(ResponseHead, usize), String> {
    let (mut interim, mut taken) = (0, 0);
    loop {
        match parse_response_head(buf, MAX_HEADERS, MAX_FIELD, is_head) {
            Ok(Some((head, len))) => {
                let _ = buf.split_to(len);
                taken += len;
                if head.status == 101 || !(100..200).contains(&head.status) {
                    return Ok((head, taken));
                }
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(format!(
                        "backend sent more than {MAX_INTERIM} interim responses"
                    ));
                }
                continue;
            }
            Ok(None) if buf.len() < MAX_HEAD => {}
            Ok(None) => {
                return Err(format!(
                    "backend sent a response head over {MAX_HEAD} bytes"
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
        match conn.read_buf(buf, 16 * 1024).await {
            Ok(0) => {
                return Err("backend closed the connection without answering the upgrade".into())
            }
            Ok(_) => {}
            Err(IoError::Tls) => return Err("TLS failure while reading the answer".into()),
            Err(e) => return Err(format!("reading the answer failed: {e}")),
        }
    }
}
