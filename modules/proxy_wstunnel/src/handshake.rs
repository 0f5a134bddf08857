//! The upgrade handshake with the backend: the client's request goes out
//! with its WebSocket headers; a 101 turns the exchange into a tunnel,
//! any other answer is relayed as an ordinary response.

use crate::pump;
use crate::target::{self, Target};
use bytes::BytesMut;
use modproxy_api::proxy::{
    exchange as code, exchange_flags, worker_flags, Exchange, ExchangeOutcome,
};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::{log, Headers, IoError, Level, Request};
use std::time::Duration;

/// The most a backend's response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// Used when a worker's timeout is 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Hop-by-hop fields (RFC 9110 §7.6.1) and those written here.
const NOT_COPIED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// `Upgrade: websocket` (any case, possibly among other protocols).
pub fn wants_websocket(req: &Request) -> bool {
    req.header(Headers::Request, "upgrade").is_some_and(|v| {
        v.split(|b| *b == b',')
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

pub async fn run(req: &mut Request, ex: &mut Exchange) -> (i32, ExchangeOutcome) {
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
            return (code::CLIENT_ERROR, outcome);
        }
    };
    let params = ex.params();
    let ms = |v: u64| {
        if v == 0 {
            DEFAULT_TIMEOUT
        } else {
            Duration::from_millis(v)
        }
    };
    let io_timeout = ms(params.timeout_ms);
    let connected = if t.tls {
        let verify = params.flags & worker_flags::TLS_INSECURE == 0;
        let ca = params.tls_ca_file.as_str();
        TcpConn::connect_tls(&t.addr, t.host, verify, ca, ms(params.connect_timeout_ms)).await
    } else {
        TcpConn::connect(&t.addr, ms(params.connect_timeout_ms)).await
    };
    let mut backend = match connected {
        Ok(c) => c,
        Err(e) => {
            fail(format!("connect to {} failed: {e}", t.addr));
            return (code::CONNECT_FAILED, outcome);
        }
    };
    let head = request_head(req, &t, ex.flags());
    match timeout(io_timeout, backend.write_all(&head)).await {
        Ok(Ok(())) => outcome.bytes_sent += head.len() as u64,
        Ok(Err(e)) => {
            fail(format!("sending the upgrade request failed: {e}"));
            return (code::CONNECT_FAILED, outcome);
        }
        Err(_) => return (code::TIMEOUT, outcome),
    }
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let (status, headers, head_len) =
        match timeout(io_timeout, read_head(&mut backend, &mut buf)).await {
            Ok(Ok(h)) => h,
            Ok(Err(why)) => {
                fail(why);
                return (code::BAD_RESPONSE, outcome);
            }
            Err(_) => {
                fail(format!(
                    "no answer to the upgrade within {} ms",
                    io_timeout.as_millis()
                ));
                return (code::TIMEOUT, outcome);
            }
        };
    outcome.status = status;
    outcome.bytes_received += buf.len() as u64;
    let _ = buf.split_to(head_len);
    req.set_status(status);
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case(b"identity")
    });
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        let keep = if status == 101 {
            // The switch itself needs Connection and Upgrade.
            lower != "content-length" && lower != "transfer-encoding" && lower != "keep-alive"
        } else {
            !NOT_COPIED.contains(&lower.as_str())
        };
        if keep {
            req.add_header(Headers::Response, name, value);
        }
    }
    if status != 101 {
        if chunked {
            fail(format!(
                "backend refused the upgrade ({status}) with a chunked body, which is not relayed"
            ));
            return (code::BAD_RESPONSE, outcome);
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        return relay_refusal(req, &mut backend, buf, length, io_timeout, &mut outcome).await;
    }
    if req.send_head().is_err() {
        return (code::ABORTED, outcome);
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
            return (code::ABORTED, outcome);
        }
    };
    let moved = pump::run(client, backend, buf.freeze(), io_timeout).await;
    outcome.bytes_sent += moved.up;
    outcome.bytes_received += moved.down;
    if let Some(why) = moved.ended {
        log(
            Level::Debug,
            format_args!("proxy_wstunnel: {worker}: tunnel ended: {why}"),
        );
    }
    (code::OK, outcome)
}

/// The backend said no (400, 403, 426…): its answer goes to the client.
async fn relay_refusal(
    req: &mut Request,
    backend: &mut TcpConn,
    mut buf: BytesMut,
    length: Option<u64>,
    io_timeout: Duration,
    outcome: &mut ExchangeOutcome,
) -> (i32, ExchangeOutcome) {
    if req.send_head().is_err() {
        return (code::ABORTED, *outcome);
    }
    let mut left = length.unwrap_or(u64::MAX);
    loop {
        if !buf.is_empty() {
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buf.split_to(take).freeze();
            left -= chunk.len() as u64;
            if req.write_body(chunk).await.is_err() {
                return (code::ABORTED, *outcome);
            }
        }
        if left == 0 {
            return (code::OK, *outcome);
        }
        match timeout(io_timeout, backend.read_buf(&mut buf, 64 * 1024)).await {
            Ok(Ok(0)) if length.is_none() => return (code::OK, *outcome),
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return (code::ABORTED, *outcome),
            Ok(Ok(n)) => outcome.bytes_received += n as u64,
        }
    }
}

/// The request head for the backend: the client's fields less hop-by-hop
/// ones, then Host, the upgrade and (add_headers) X-Forwarded-*.
fn request_head(req: &Request, t: &Target<'_>, flags: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method().as_bytes());
    out.push(b' ');
    out.extend_from_slice(t.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let client_host = req.header_str(Headers::Request, "host").unwrap_or("");
    if flags & exchange_flags::PRESERVE_HOST != 0 && !client_host.is_empty() {
        out.extend_from_slice(client_host.as_bytes());
    } else {
        out.extend_from_slice(t.authority.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    let mut forwarded_for = None;
    req.for_each_header(Headers::Request, |name, value| {
        let lower = name.to_ascii_lowercase();
        if lower == "x-forwarded-for" {
            forwarded_for = Some(value.to_vec());
        }
        if NOT_COPIED.contains(&lower.as_str()) {
            return;
        }
        if flags & exchange_flags::ADD_FORWARDED != 0 && lower.starts_with("x-forwarded-") {
            return;
        }
        field(&mut out, name, value);
    });
    field(&mut out, "Upgrade", b"websocket");
    field(&mut out, "Connection", b"Upgrade");
    if flags & exchange_flags::ADD_FORWARDED != 0 {
        let ip = req
            .client_addr()
            .rsplit_once(':')
            .map_or(req.client_addr(), |(ip, _)| ip);
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let xff = match forwarded_for {
            Some(mut v) => {
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.as_bytes());
                v
            }
            None => ip.as_bytes().to_vec(),
        };
        field(&mut out, "X-Forwarded-For", &xff);
        if !client_host.is_empty() {
            field(&mut out, "X-Forwarded-Host", client_host.as_bytes());
        }
        field(&mut out, "X-Forwarded-Server", req.server_name().as_bytes());
        field(&mut out, "X-Forwarded-Proto", req.scheme().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

type Head = (u16, Vec<(String, Vec<u8>)>, usize);

/// Reads until a complete response head is in `buf`; returns (status,
/// fields, head length). Interim answers other than 101 are skipped.
async fn read_head(conn: &mut TcpConn, buf: &mut BytesMut) -> Result<Head, String> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut res = httparse::Response::new(&mut fields);
        match res.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = res.code.unwrap_or(0);
                if (100..200).contains(&status) && status != 101 {
                    let _ = buf.split_to(len);
                    continue;
                }
                let headers = res
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect();
                return Ok((status, headers, len));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(format!("response head over {MAX_HEAD} bytes"))
            }
            Err(e) => return Err(format!("malformed response head: {e}")),
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
