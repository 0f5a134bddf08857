//! The request side: the head for the backend, built once per exchange
//! from the client's request and the ProxyPass flags (so a retry resends
//! the same bytes), and the client's body streamed behind it.

use crate::backend::{Backend, SPLICE_MIN};
use crate::target::Target;
use modproxy_api::proxy::{exchange_flags, BodyProgress};
use modproxy_api::sdk::FieldList;
use modproxy_api::sdk::{IoError, Spliced};
use modproxy_api::{Headers, Request};
use modproxy_http1::backend_request::{write_request_head, BodyFraming, RequestHead};
use modproxy_http1::forwarded::{via_value, Forwarded};
use modproxy_http1::{chunk_header, eq_lower_str as eq_lower, LAST_CHUNK};

/// What the exchange needs to know about the request, decided up front.
pub struct Plan {
    pub head: Vec<u8>,
    pub framing: BodyFraming,
    /// The client sent `Expect: 100-continue` and there is a body.
    pub expect_continue: bool,
    pub is_head: bool,
    /// Safe to send twice (RFC 9110 §9.2.2): the keep-alive race retry.
    pub idempotent: bool,
    /// The client asked for a protocol upgrade (which we cannot tunnel).
    pub upgrade_requested: bool,
    /// Our Via element when ProxyVia is on, also added to the response.
    pub via: Option<String>,
}

/// Builds the plan; `Err` is a log line (the client's request is at fault).
pub fn plan(req: &Request, target: &Target<'_>, flags: u32, close: bool) -> Result<Plan, String> {
    let headers = ClientHeaders::of(req.headers(Headers::Request));
    build(req, &headers, target, flags, close)
}

fn build(
    req: &Request,
    headers: &ClientHeaders<'_>,
    target: &Target<'_>,
    flags: u32,
    close: bool,
) -> Result<Plan, String> {
    let method = req.method();
    let framing = client_framing(
        headers.first(Known::TransferEncoding),
        headers.first(Known::ContentLength),
    )?;
    let client_host = headers.first(Known::Host);
    let target_host;
    let host = match client_host.and_then(modproxy_api::sdk::utf8) {
        Some(h) if flags & exchange_flags::PRESERVE_HOST != 0 => h,
        _ => {
            target_host = target.host_header();
            &target_host
        }
    };
    let (addr, server) = (req.client_addr(), req.server_name());
    let via = (flags & exchange_flags::VIA != 0).then(|| via_value(req.version(), server));
    let forwarded = (flags & exchange_flags::ADD_FORWARDED != 0)
        .then(|| Forwarded::new(addr, client_host, server, req.scheme()));
    let mut out = Vec::with_capacity(512);
    let head = RequestHead {
        method,
        path_and_query: &target.path_and_query,
        host,
        headers: headers.iter(),
        framing,
        forwarded,
        via: via.as_deref(),
        close,
        upgrade: None,
    };
    write_request_head(&head, &mut out).map_err(|e| e.to_string())?;
    drop(head);
    let expect = headers
        .first(Known::Expect)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Plan {
        head: out,
        framing,
        // Nothing to hold back for an empty body, so no reason to wait.
        expect_continue: expect
            && !matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0)),
        is_head: method.eq_ignore_ascii_case("HEAD"),
        idempotent: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"].contains(&method),
        upgrade_requested: headers.first(Known::Upgrade).is_some(),
        via,
    })
}

/// The headers `plan` reads itself, found in one pass over them all.
#[derive(Clone, Copy)]
enum Known {
    TransferEncoding,
    ContentLength,
    Host,
    Expect,
    Upgrade,
}

impl Known {
    const COUNT: usize = 5;

    /// Any case, as `Request::header` matches (`Request::headers` gives
    /// names lower-case, but that is the host's to keep).
    fn of(name: &str) -> Option<Known> {
        let (known, wanted) = match name.len() {
            17 => (Known::TransferEncoding, "transfer-encoding"),
            14 => (Known::ContentLength, "content-length"),
            4 => (Known::Host, "host"),
            6 => (Known::Expect, "expect"),
            7 => (Known::Upgrade, "upgrade"),
            _ => return None,
        };
        eq_lower(name, wanted).then_some(known)
    }
}

/// The client's headers as the core lends them, with the first value of
/// each [`Known`] one found in a single pass.
struct ClientHeaders<'a> {
    list: FieldList<'a>,
    known: [Option<&'a [u8]>; Known::COUNT],
}

impl<'a> ClientHeaders<'a> {
    fn of(list: FieldList<'a>) -> ClientHeaders<'a> {
        let mut known = [None; Known::COUNT];
        for (name, value) in list.iter() {
            if let Some(k) = Known::of(name) {
                known[k as usize].get_or_insert(value);
            }
        }
        ClientHeaders { list, known }
    }

    /// The first value of header `k`, as `Request::header` would give it.
    fn first(&self, k: Known) -> Option<&'a [u8]> {
        self.known[k as usize]
    }

    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + Clone + 'a {
        self.list.iter()
    }
}

/// How the body goes to the backend, from the client's framing. The core
/// has already de-chunked a chunked body, so any Transfer-Encoding means
/// "length unknown": we re-chunk it.
fn client_framing(te: Option<&[u8]>, cl: Option<&[u8]>) -> Result<BodyFraming, String> {
    if te.is_some() {
        return Ok(BodyFraming::Chunked);
    }
    let Some(cl) = cl else {
        return Ok(BodyFraming::None);
    };
    modproxy_http1::parse_decimal(cl.trim_ascii())
        .map(BodyFraming::ContentLength)
        .ok_or_else(|| "client sent an invalid Content-Length".to_owned())
}

pub enum BodyError {
    /// Reading the client's body failed (gone, over the limit).
    Client(IoError),
    /// The client's body did not match its Content-Length.
    Length { got: u64, want: u64 },
    /// Writing to the backend failed.
    Backend(IoError),
}

/// Chunks up to this size go out with their framing in one write.
const COALESCE: usize = 8 * 1024;

/// Streams the client's body to the backend with `framing` (never
/// `BodyFraming::None`), one client chunk at a time: nothing is buffered
/// beyond the chunk in hand. Reading the body is also what makes the core
/// answer `100 Continue` to the client.
pub async fn send_body(
    req: &mut Request,
    b: &mut Backend,
    framing: BodyFraming,
    progress: &mut BodyProgress,
) -> Result<(), BodyError> {
    let mut scratch = Vec::new();
    // A retry first sends again what the client already gave us.
    let kept = progress.kept();
    for chunk in &kept {
        send_chunk(b, framing, chunk, &mut scratch)
            .await
            .map_err(BodyError::Backend)?;
    }
    let mut spliced = progress.host_kept() > 0;
    if spliced {
        b.replay_spliced(req, progress.host_kept())
            .await
            .map_err(BodyError::Backend)?;
    }
    while !progress.ended {
        // A Content-Length body goes to the backend in the kernel where
        // the host allows it (what is kept for a replay too), and once
        // begun, to its end: a chunk read after spliced bytes could not
        // be replayed in order.
        let left = match framing {
            BodyFraming::ContentLength(want) => want.saturating_sub(progress.consumed),
            _ => 0,
        };
        if left >= SPLICE_MIN || (spliced && left > 0) {
            let max = usize::try_from(left).unwrap_or(usize::MAX);
            // What the backend's socket had not taken yet goes first.
            b.flush().await.map_err(BodyError::Backend)?;
            match b.splice_from_client(req, max, progress.splice_keep()).await {
                Ok(Spliced::Moved(n)) => {
                    progress.spliced(n);
                    spliced = true;
                    continue;
                }
                Ok(Spliced::Ended) => {
                    progress.ended = true;
                    break;
                }
                Ok(Spliced::Unsupported) => {} // this piece is read below
                Err(e) => return Err(BodyError::Client(e)),
            }
        }
        let chunk = match req.read_body().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                progress.ended = true;
                break;
            }
            Err(e) => return Err(BodyError::Client(e)),
        };
        if chunk.is_empty() {
            continue;
        }
        progress.consumed += chunk.len() as u64;
        if let BodyFraming::ContentLength(want) = framing {
            if progress.consumed > want {
                return Err(BodyError::Length {
                    got: progress.consumed,
                    want,
                });
            }
        }
        progress.keep(&chunk);
        send_chunk(b, framing, &chunk, &mut scratch)
            .await
            .map_err(BodyError::Backend)?;
    }
    if spliced {
        // The body's tail may still be held for the backend's socket.
        b.flush().await.map_err(BodyError::Backend)?;
    }
    match framing {
        BodyFraming::Chunked => b.write(LAST_CHUNK).await.map_err(BodyError::Backend),
        BodyFraming::ContentLength(want) if progress.consumed != want => Err(BodyError::Length {
            got: progress.consumed,
            want,
        }),
        _ => Ok(()),
    }
}

/// `data` in the body's framing.
async fn send_chunk(
    b: &mut Backend,
    framing: BodyFraming,
    data: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), IoError> {
    match framing {
        BodyFraming::Chunked => write_chunk(b, data, scratch).await,
        _ => b.write(data).await,
    }
}

/// One chunk with its size line and CRLF: copied into one write when small
/// (three syscalls would cost more than the copy), written in place when large.
async fn write_chunk(b: &mut Backend, data: &[u8], scratch: &mut Vec<u8>) -> Result<(), IoError> {
    let (size, n) = chunk_header(data.len() as u64);
    let size = size.get(..n).unwrap_or_default();
    if data.len() <= COALESCE {
        scratch.clear();
        scratch.extend_from_slice(size);
        scratch.extend_from_slice(data);
        scratch.extend_from_slice(b"\r\n");
        return b.write(scratch).await;
    }
    b.write(size).await?;
    b.write(data).await?;
    b.write(b"\r\n").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_from_client() {
        assert_eq!(client_framing(None, None), Ok(BodyFraming::None));
        assert_eq!(
            client_framing(None, Some(b" 12 ")),
            Ok(BodyFraming::ContentLength(12))
        );
        assert_eq!(
            client_framing(None, Some(b"0")),
            Ok(BodyFraming::ContentLength(0))
        );
        assert_eq!(
            client_framing(Some(b"chunked"), Some(b"5")),
            Ok(BodyFraming::Chunked)
        );
        for bad in [&b"-1"[..], b"+1", b"1,1", b"", b"99999999999999999999"] {
            assert!(client_framing(None, Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn known_headers_in_any_case() {
        assert!(matches!(Known::of("host"), Some(Known::Host)));
        assert!(matches!(
            Known::of("Transfer-Encoding"),
            Some(Known::TransferEncoding)
        ));
        assert!(matches!(
            Known::of("content-length"),
            Some(Known::ContentLength)
        ));
        assert!(matches!(Known::of("EXPECT"), Some(Known::Expect)));
        assert!(matches!(Known::of("upgrade"), Some(Known::Upgrade)));
        assert!(Known::of("hose").is_none() && Known::of("x-upgrade").is_none());
    }
}
