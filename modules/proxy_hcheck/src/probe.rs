//! One check of one member: a TCP connect, or an HTTP request on a
//! connection of its own (never a client's, never pooled), judged by the
//! member's condition; and the member's agent, asked for its one line.

use crate::expr::Expr;
use modproxy_api::proxy::worker_flags;
use modproxy_api::sdk::health::{AgentAnswer, AgentState, CheckMethod, CheckTarget};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_http1::backend_response::{parse_response_head, ResponseFraming};
use std::time::Duration;

/// The most of a body a check reads for its condition.
const BODY_LIMIT: usize = 64 * 1024;
/// The most of a head a check reads.
const HEAD_LIMIT: usize = 16 * 1024;

/// Runs the member's active check: `Ok` when it passed, else why not.
/// `hctimeout` bounds the whole check, connect included.
pub async fn active(t: &CheckTarget, expr: &Expr) -> Result<(), String> {
    let run = async {
        match t.method {
            CheckMethod::None => Ok(()),
            CheckMethod::Tcp => connect_only(t).await.map(drop),
            CheckMethod::Cping => cping(t).await,
            _ => http(t, expr).await,
        }
    };
    match timeout(t.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {} ms (hctimeout)",
            t.timeout.as_millis()
        )),
    }
}

async fn http(t: &CheckTarget, expr: &Expr) -> Result<(), String> {
    let (scheme, authority) = split_url(t.url)?;
    let addr = with_port(authority, scheme);
    let connect_timeout = Duration::from_millis(t.params.connect_timeout_ms).min(t.timeout);
    let mut conn = if scheme == "https" {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let verify = t.params.flags & worker_flags::TLS_INSECURE == 0;
        TcpConn::connect_tls(
            &addr,
            host.trim_matches(['[', ']']),
            verify,
            t.params.tls_ca_file.as_str(),
            connect_timeout,
        )
        .await
    } else {
        TcpConn::connect(&addr, connect_timeout).await
    }
    .map_err(|e| format!("connect to {addr}: {e}"))?;
    let method = t.method.http_method().unwrap_or("GET");
    let request = format!(
        "{method} {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: modproxy-hcheck\r\nConnection: close\r\n\r\n",
        t.uri
    );
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the check: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let (head, used) = loop {
        let mut chunk = [0u8; 4096];
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("closed without an answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_response_head(&buf, 100, HEAD_LIMIT, method == "HEAD") {
            Ok(Some((head, used))) if head.status >= 200 => break (head, used),
            Ok(Some((_, used))) => drop(buf.drain(..used)), // 1xx: the next head follows
            Ok(None) if buf.len() > HEAD_LIMIT => return Err("an oversized response head".into()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut body = buf.split_off(used);
    if expr.wants_body() {
        let want = match head.framing {
            ResponseFraming::NoBody => 0,
            ResponseFraming::ContentLength(n) => {
                usize::try_from(n).unwrap_or(BODY_LIMIT).min(BODY_LIMIT)
            }
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => BODY_LIMIT,
        };
        while body.len() < want {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body.truncate(BODY_LIMIT);
    }
    expr.judge(&head, &body)
}

/// Asks the member's agent (HAProxy's agent check): it answers one line of
/// words such as `up`, `down`, `drain`, `maint`, `ready`, and a weight like `75%`.
pub async fn ask_agent(agent: &str, limit: Duration) -> AgentAnswer {
    let failed = AgentAnswer {
        state: Some(AgentState::Failed),
        weight_percent: None,
    };
    let asked = timeout(limit, async {
        let mut conn = TcpConn::connect(agent, limit).await.ok()?;
        let mut line = Vec::new();
        let mut chunk = [0u8; 512];
        while !line.contains(&b'\n') && line.len() < 512 {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => line.extend_from_slice(&chunk[..n]),
            }
        }
        Some(line)
    });
    match asked.await {
        Ok(Some(line)) => parse_agent(&String::from_utf8_lossy(&line)).unwrap_or(failed),
        _ => failed,
    }
}

/// The words of an agent's line; `None` when none is understood.
pub fn parse_agent(line: &str) -> Option<AgentAnswer> {
    let mut answer = AgentAnswer::default();
    let line = line.lines().next().unwrap_or("");
    for word in line
        .split([' ', ',', '\t'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let w = word.to_ascii_lowercase();
        if let Some(pct) = w.strip_suffix('%') {
            answer.weight_percent = pct.parse().ok().filter(|p| *p <= 256);
            continue;
        }
        answer.state = match w.as_str() {
            "up" | "ready" => Some(AgentState::Up),
            "down" | "fail" | "failed" | "stopped" => Some(AgentState::Down),
            "drain" => Some(AgentState::Drain),
            "maint" => Some(AgentState::Maint),
            _ => answer.state,
        };
    }
    (answer.state.is_some() || answer.weight_percent.is_some()).then_some(answer)
}

fn split_url(url: &str) -> Result<(&str, &str), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url}: no scheme"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    match scheme {
        "http" | "https" | "ws" | "wss" => Ok((
            if scheme.ends_with('s') {
                "https"
            } else {
                "http"
            },
            authority,
        )),
        other => Err(format!(
            "{other}:// members cannot be checked over HTTP: use hcmethod = \"TCP\""
        )),
    }
}

fn with_port(authority: &str, scheme: &str) -> String {
    // After an IPv6 literal's `]`, or the whole authority without one.
    let after_host = authority.rsplit(']').next().unwrap_or(authority);
    if after_host.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if scheme == "https" { 443 } else { 80 })
    }
}

/// A TCP connect only: any scheme with a host:port.
async fn connect_only(t: &CheckTarget) -> Result<TcpConn, String> {
    let (_, rest) = t
        .url
        .split_once("://")
        .ok_or_else(|| format!("{}: no scheme", t.url))?;
    let addr = rest.split('/').next().unwrap_or(rest);
    let limit = Duration::from_millis(t.params.connect_timeout_ms).min(t.timeout);
    TcpConn::connect(addr, limit)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))
}

/// AJP13's CPING (a packet to the container: magic 0x1234, length 1,
/// type 10), which must be answered CPONG (magic "AB", length 1, type 9).
const CPING: [u8; 5] = [0x12, 0x34, 0x00, 0x01, 0x0a];
const CPONG: [u8; 5] = [b'A', b'B', 0x00, 0x01, 0x09];

async fn cping(t: &CheckTarget) -> Result<(), String> {
    let mut conn = connect_only(t).await?;
    conn.write_all(&CPING)
        .await
        .map_err(|e| format!("sending CPING: {e}"))?;
    let mut got = Vec::with_capacity(CPONG.len());
    while got.len() < CPONG.len() {
        let mut buf = [0u8; 5];
        match conn.read(&mut buf[..CPONG.len() - got.len()]).await {
            Ok(0) => return Err("closed without a CPONG".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the CPONG: {e}")),
        }
    }
    if got == CPONG {
        Ok(())
    } else {
        Err(format!("answered {got:02x?} to CPING, not CPONG"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_lines_as_haproxy_reads_them() {
        let a = parse_agent("75% drain\n").unwrap();
        assert_eq!(
            (a.state, a.weight_percent),
            (Some(AgentState::Drain), Some(75))
        );
        assert_eq!(parse_agent("up").unwrap().state, Some(AgentState::Up));
        assert_eq!(parse_agent("maint,20%").unwrap().weight_percent, Some(20));
        assert_eq!(parse_agent("hello"), None);
    }

    #[test]
    fn urls_give_the_address_to_check() {
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("http", "127.0.0.1:8080")
        );
        assert_eq!(with_port("example.com", "https"), "example.com:443");
        assert_eq!(with_port("127.0.0.1:8080", "http"), "127.0.0.1:8080");
        assert_eq!(with_port("[::1]", "http"), "[::1]:80");
        assert_eq!(with_port("[::1]:81", "http"), "[::1]:81");
        assert!(split_url("fcgi://127.0.0.1:9000")
            .unwrap_err()
            .contains("TCP"));
    }
}
