//! The response side: reads the backend's head (skipping interim 1xx),
//! hands status and headers to the core, and streams the body back with
//! its framing checked to the last byte, so a truncated body never ends
//! like a complete one.

use crate::backend::{body_want, Backend, BODY_READ, HEAD_READ, SPLICE_MIN};
use bytes::Buf;
use modproxy_api::sdk::{IoError, Spliced};
use modproxy_api::{Headers, Request};
use modproxy_http1::backend_response::{
    parse_response_head, ResponseFraming, ResponseHead, MAX_FIELD, MAX_HEADERS, MAX_INTERIM,
};
use modproxy_http1::{eq_lower_str as eq_lower, ChunkedDecoder};
use std::future::poll_fn;

/// What [`read_head`] found.
pub enum Got {
    /// `100 Continue`, when asked to stop there: send the body now.
    Continue,
    Final(ResponseHead),
}

/// Why no usable head arrived (the caller's deadline aside).
pub enum HeadFail {
    /// Closed or reset before the backend sent a single byte on this
    /// connection: the keep-alive race, if the connection was pooled.
    ClosedEarly,
    /// Anything else: a 502, with this for the log.
    Bad(String),
}

/// What the request side told us about the exchange.
pub struct HeadOpts {
    pub is_head: bool,
    pub upgrade_requested: bool,
    /// Return [`Got::Continue`] on a `100` instead of reading on.
    pub stop_at_continue: bool,
}

/// Reads heads from `b` until a final one (or a `100`, see [`HeadOpts`]).
/// `interim` counts 1xx responses across calls. No deadline of its own.
pub async fn read_head(
    b: &mut Backend,
    opts: &HeadOpts,
    interim: &mut u32,
) -> Result<Got, HeadFail> {
    loop {
        let parsed = match b.buf.is_empty() {
            true => Ok(None),
            false => parse_response_head(&b.buf, MAX_HEADERS, MAX_FIELD, opts.is_head),
        };
        match parsed {
            Ok(Some((head, n))) => {
                b.buf.advance(n);
                if !(100..200).contains(&head.status) {
                    return Ok(Got::Final(head));
                }
                check_interim(head.status, opts.upgrade_requested, interim)?;
                if head.status == 100 && opts.stop_at_continue {
                    return Ok(Got::Continue);
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(HeadFail::Bad(e.to_string())),
        }
        match b.fill(HEAD_READ).await {
            Ok(0) | Err(_) if b.received == 0 => return Err(HeadFail::ClosedEarly),
            Ok(0) => {
                return Err(bad(
                    "backend closed the connection before a complete response head",
                ))
            }
            Err(e) => return Err(HeadFail::Bad(format!("reading the response head: {e}"))),
            Ok(_) => {}
        }
    }
}

/// Interim responses are dropped, within limits. A `101` would turn the
/// connection into a tunnel, which the host API cannot do (and we never
/// forward `Upgrade`, so a backend sending one is broken).
fn check_interim(status: u16, upgrade_requested: bool, interim: &mut u32) -> Result<(), HeadFail> {
    if status == 101 {
        return Err(bad(if upgrade_requested {
            "backend switched protocols, but upgrades are not supported by proxy_http"
        } else {
            "backend sent 101 Switching Protocols without an upgrade request"
        }));
    }
    *interim += 1;
    if *interim > MAX_INTERIM {
        return Err(HeadFail::Bad(format!(
            "backend sent more than {MAX_INTERIM} interim responses"
        )));
    }
    Ok(())
}

fn bad(why: &str) -> HeadFail {
    HeadFail::Bad(why.to_owned())
}

/// Why relaying stopped short: either way the client connection is aborted.
pub enum RelayError {
    /// The client went away (or the core refused the head).
    Client(IoError),
    /// The backend broke the body: closed, reset, timed out, bad chunking.
    Backend(String),
}

/// Sends `head` and its body to the client. `Ok(true)`: the body was read
/// exactly to its end with nothing left over, so the connection may be
/// reused if `head` allows it.
pub async fn relay(
    req: &mut Request,
    b: &mut Backend,
    head: ResponseHead,
    via: Option<&str>,
) -> Result<bool, RelayError> {
    req.set_status(head.status);
    copy_headers(req, &head, via);
    req.send_head().map_err(RelayError::Client)?;
    let relayed = match head.framing {
        ResponseFraming::NoBody => Ok(true),
        ResponseFraming::ContentLength(n) => length_body(req, b, n).await.map(|()| true),
        ResponseFraming::Chunked => chunked_body(req, b).await.map(|()| true),
        ResponseFraming::CloseDelimited => close_body(req, b).await.map(|()| false),
    };
    Ok(relayed? && b.buf.is_empty())
}

/// Response headers minus hop-by-hop and Connection-named ones; repeated
/// fields (Set-Cookie) stay separate. Content-Length is ours to set: the
/// core re-frames chunked and close-delimited bodies itself.
fn copy_headers(req: &mut Request, head: &ResponseHead, via: Option<&str>) {
    for (name, value) in head.headers.end_to_end() {
        if !eq_lower(name, "content-length") {
            req.add_header(Headers::Response, name, value);
        }
    }
    match head.framing {
        ResponseFraming::ContentLength(n) => {
            let mut digits = [0u8; 20];
            req.set_header(
                Headers::Response,
                "Content-Length",
                modproxy_http1::decimal(n, &mut digits),
            )
        }
        // HEAD and 304: the length of the body that was not sent, as the
        // backend gave it. 1xx and 204 must not carry one.
        ResponseFraming::NoBody if head.status >= 200 && head.status != 204 => {
            let mut lengths = head.headers.iter();
            let length = lengths.find(|(n, _)| eq_lower(n, "content-length"));
            if let Some((_, v)) = length {
                req.set_header(Headers::Response, "Content-Length", v);
            }
        }
        _ => {}
    }
    if let Some(via) = via {
        req.add_header(Headers::Response, "Via", via.as_bytes());
    }
}

/// Exactly `left` bytes. A byte past them stays in the buffer, and the
/// caller does not reuse the connection (see [`body_want`]). What did not
/// arrive with the head is spliced when it is large enough to be worth a
/// pipe, and the host allows it; a byte past it is then caught by the
/// peek before reuse.
async fn length_body(req: &mut Request, b: &mut Backend, mut left: u64) -> Result<(), RelayError> {
    let mut splice = left >= SPLICE_MIN;
    loop {
        let have = usize::try_from(left).map_or(b.buf.len(), |l| l.min(b.buf.len()));
        if have > 0 {
            left -= have as u64;
            let data = b.buf.split_to(have).freeze();
            req.write_body(data).await.map_err(RelayError::Client)?;
        }
        if left == 0 {
            return Ok(());
        }
        if splice {
            poll_fn(|cx| req.poll_body_ready(cx))
                .await
                .map_err(RelayError::Client)?;
            let max = usize::try_from(left).unwrap_or(usize::MAX);
            match b.splice_to_client(req, max).await {
                Ok(Spliced::Moved(n)) => left -= n as u64,
                Ok(Spliced::Ended) => return Err(missing(left)),
                Ok(Spliced::Unsupported) => splice = false,
                Err(e) => return Err(body_error(e)),
            }
            continue;
        }
        let want = body_want(left);
        match b.fill_timed(want).await {
            Ok(0) => return Err(missing(left)),
            Err(e) => return Err(body_error(e)),
            Ok(_) => {}
        }
    }
}

fn missing(left: u64) -> RelayError {
    RelayError::Backend(format!(
        "backend closed the connection with {left} bytes of the body missing"
    ))
}

/// Decodes chunked framing and forwards only the data, as zero-copy slices
/// of the read buffer. Trailers are dropped (the core re-frames the body).
async fn chunked_body(req: &mut Request, b: &mut Backend) -> Result<(), RelayError> {
    let mut dec = ChunkedDecoder::new();
    loop {
        while !b.buf.is_empty() {
            let d = dec
                .decode(&b.buf)
                .map_err(|e| RelayError::Backend(format!("chunked body: {e}")))?;
            if d.consumed > b.buf.len() || d.data.end > d.consumed {
                return Err(RelayError::Backend(
                    "chunked decoder out of step".to_owned(),
                ));
            }
            if d.data.is_empty() {
                b.buf.advance(d.consumed);
            } else {
                b.buf.advance(d.data.start);
                let data = b.buf.split_to(d.data.len()).freeze();
                b.buf.advance(d.consumed - d.data.end);
                req.write_body(data).await.map_err(RelayError::Client)?;
            }
            if d.done {
                return Ok(());
            }
            if d.consumed == 0 {
                break;
            }
        }
        match b.fill_timed(BODY_READ).await {
            Ok(0) => {
                return Err(RelayError::Backend(
                    "backend closed the connection inside a chunked body".to_owned(),
                ))
            }
            Err(e) => return Err(body_error(e)),
            Ok(_) => {}
        }
    }
}

/// Until the backend closes. A reset or timeout is a truncation, not an end.
async fn close_body(req: &mut Request, b: &mut Backend) -> Result<(), RelayError> {
    loop {
        if !b.buf.is_empty() {
            let data = b.buf.split().freeze();
            req.write_body(data).await.map_err(RelayError::Client)?;
        }
        match b.fill_timed(BODY_READ).await {
            Ok(0) => return Ok(()),
            Err(e) => return Err(body_error(e)),
            Ok(_) => {}
        }
    }
}

fn body_error(e: IoError) -> RelayError {
    RelayError::Backend(format!("reading the response body: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lengths_are_written_in_decimal() {
        let mut buf = [0u8; 20];
        assert_eq!(modproxy_http1::decimal(0, &mut buf), b"0");
        assert_eq!(modproxy_http1::decimal(8_388_608, &mut buf), b"8388608");
        assert_eq!(
            modproxy_http1::decimal(u64::MAX, &mut buf),
            u64::MAX.to_string().as_bytes()
        );
    }

    use super::*;

    #[test]
    fn a_body_read_asks_one_byte_past_what_is_left() {
        assert_eq!(body_want(1), 2);
        assert_eq!(body_want(28_916), 28_917);
        assert_eq!(body_want(BODY_READ as u64 - 1), BODY_READ);
        assert_eq!(body_want(BODY_READ as u64), BODY_READ);
        assert_eq!(body_want(u64::MAX), BODY_READ);
    }

    #[test]
    fn interim_limits() {
        let mut n = 0;
        for _ in 0..MAX_INTERIM {
            assert!(check_interim(103, false, &mut n).is_ok());
        }
        assert!(matches!(
            check_interim(100, false, &mut n),
            Err(HeadFail::Bad(_))
        ));
        let mut n = 0;
        assert!(
            matches!(check_interim(101, false, &mut n), Err(HeadFail::Bad(w)) if w.contains("without an upgrade"))
        );
        assert!(
            matches!(check_interim(101, true, &mut n), Err(HeadFail::Bad(w)) if w.contains("not supported"))
        );
    }
}
