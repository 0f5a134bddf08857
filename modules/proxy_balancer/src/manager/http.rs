//! Small HTTP helpers for the manager: a whole response in one go, and a
//! bounded request body.

use modproxy_api::{Bytes, Headers, Request, Status};

/// The largest change a POST may carry; real ones are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// Sends `body` with `status` and headers that keep the manager from being
/// cached, sniffed or framed by another site.
pub async fn reply(mut req: Request, status: u16, content_type: &str, body: String) -> Status {
    req.set_status(status);
    let len = body.len().to_string();
    for (name, value) in [
        ("content-type", content_type),
        ("content-length", len.as_str()),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ),
    ] {
        req.set_header(Headers::Response, name, value.as_bytes());
    }
    if req.send_head().is_ok() && req.method() != "HEAD" {
        let _ = req.write_body(Bytes::from(body)).await;
    }
    Status::Ok
}

/// `{"error": msg}` with `status`.
pub async fn error(req: Request, status: u16, msg: &str) -> Status {
    let body = serde_json::json!({ "error": msg }).to_string();
    reply(req, status, "application/json", body).await
}

/// The whole request body, or why not.
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = req.read_body().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!(
                "the body is over {MAX_BODY} bytes; send one change per request"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
