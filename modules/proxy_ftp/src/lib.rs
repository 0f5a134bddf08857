//! proxy_ftp: the `ftp://` scheme handler of modproxy (Apache's
//! mod_proxy_ftp), a read-only FTP gateway: `GET` of a directory (a path
//! ending in `/`) answers its listing as an HTML page, of a file its
//! contents, streamed with Content-Length (from SIZE) and a Content-Type
//! from the extension. The user and password come from the URL, or the
//! login is anonymous; data connections are passive (EPSV, then PASV, to
//! the control connection's host only, never an address the server names).
//!
//! Answers: a missing file or directory 404, a directory asked without
//! its `/` a 301 to it, a refused login or any other refusal a 502 page
//! quoting the server's reply. Every wait is bounded by the worker's
//! `timeout`. Not for: uploads, active mode, FTPS.
#![forbid(unsafe_code)]

mod control;
mod render;
mod url;

use bytes::BytesMut;
use control::{Control, FtpError, Reply};
use modproxy_api::proxy::{
    register_scheme, Exchange, ExchangeOutcome, ExchangeStatus, SchemeHandler, WorkerParams,
};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::{log, Bytes, Headers, Level, Module, Registrar, Request};
use std::time::Duration;

/// Used when a worker's timeout is 0: no wait is unbounded.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest listing kept to render.
const MAX_LISTING: usize = 16 << 20;

pub struct ProxyFtp;

impl Module for ProxyFtp {
    const NAME: &'static str = "proxy_ftp";

    fn init() -> Result<Self, String> {
        Ok(ProxyFtp)
    }

    fn register(r: &mut Registrar<Self>) {
        let me = r.module();
        register_scheme(r, "ftp", me);
    }
}

impl SchemeHandler for ProxyFtp {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let mut outcome = ExchangeOutcome::default();
        let (target, worker, params) =
            (ex.target().to_owned(), ex.worker().to_owned(), ex.params());
        let code = run(&mut req, &target, &worker, params, &mut outcome).await;
        ex.set_outcome(outcome);
        code
    }
}

/// How a gateway request ended before any data was relayed.
enum Answer {
    /// A page of ours with this status (404, 301, 502...).
    Page(u16, String, Option<String>),
    Status(ExchangeStatus),
}

fn ms(v: u64) -> Duration {
    if v == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(v)
    }
}

async fn run(
    req: &mut Request,
    target: &str,
    worker: &str,
    params: WorkerParams,
    outcome: &mut ExchangeOutcome,
) -> ExchangeStatus {
    let fail = |why: &dyn std::fmt::Display| {
        log(Level::Error, format_args!("proxy_ftp: {worker}: {why}"));
    };
    if req.method() != "GET" && req.method() != "HEAD" {
        req.set_header(Headers::Response, "Allow", b"GET, HEAD");
        return page(
            req,
            outcome,
            405,
            "The FTP gateway only reads: use GET or HEAD.",
            None,
        )
        .await;
    }
    let target = match url::parse(target) {
        Ok(t) => t,
        Err(e) => {
            fail(&format_args!("invalid target URL: {e}"));
            return ExchangeStatus::ClientError;
        }
    };
    let conn = match TcpConn::connect(&target.addr, ms(params.connect_timeout_ms)).await {
        Ok(c) => c,
        Err(e) => {
            fail(&format_args!("connect to {} failed: {e}", target.addr));
            return ExchangeStatus::ConnectFailed;
        }
    };
    let mut ctl = Control::new(conn, &target.host, ms(params.timeout_ms));
    let answer = match converse(req, &mut ctl, &target, outcome).await {
        Ok(answer) => answer,
        Err(e) => {
            fail(&e);
            let text = format!("The FTP server {} did not answer as FTP: {e}.", target.addr);
            Answer::Page(502, text, None)
        }
    };
    // A polite end; its answer does not matter.
    let _ = timeout(Duration::from_secs(1), ctl.command("QUIT")).await;
    match answer {
        Answer::Status(s) => s,
        Answer::Page(status, text, location) => {
            if status >= 500 {
                fail(&text);
            }
            page(req, outcome, status, &text, location).await
        }
    }
}

/// A small HTML page of ours.
async fn page(
    req: &mut Request,
    outcome: &mut ExchangeOutcome,
    status: u16,
    text: &str,
    location: Option<String>,
) -> ExchangeStatus {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{status}</title></head><body><p>{}</p></body></html>\n",
        render::escape(text)
    );
    send_html(req, outcome, status, body, location.as_deref()).await
}

/// An HTML page (ours, or a directory listing) with its head; HEAD gets
/// the head only.
async fn send_html(
    req: &mut Request,
    outcome: &mut ExchangeOutcome,
    status: u16,
    body: String,
    location: Option<&str>,
) -> ExchangeStatus {
    outcome.status = status;
    req.set_status(status);
    req.set_header(
        Headers::Response,
        "Content-Type",
        b"text/html; charset=utf-8",
    );
    req.set_header(
        Headers::Response,
        "Content-Length",
        body.len().to_string().as_bytes(),
    );
    if let Some(l) = location {
        req.set_header(Headers::Response, "Location", l.as_bytes());
    }
    if req.send_head().is_err() {
        return ExchangeStatus::Aborted;
    }
    if req.method() != "HEAD" && req.write_body(Bytes::from(body)).await.is_err() {
        return ExchangeStatus::Aborted;
    }
    ExchangeStatus::Relayed
}

fn refused(what: &str, addr: &str, r: &Reply) -> Answer {
    Answer::Page(
        502,
        format!("The FTP server {addr} refused {what}: {r}"),
        None,
    )
}

/// Login, then the listing or the file.
async fn converse(
    req: &mut Request,
    ctl: &mut Control,
    t: &url::FtpUrl,
    outcome: &mut ExchangeOutcome,
) -> Result<Answer, FtpError> {
    let hello = ctl.reply().await?;
    if hello.code != 220 {
        return Ok(refused("the connection", &t.addr, &hello));
    }
    let mut login = ctl.command(&format!("USER {}", t.user)).await?;
    if login.code == 331 {
        login = ctl.command(&format!("PASS {}", t.password)).await?;
    }
    if login.code != 230 && login.code != 202 {
        return Ok(refused(
            &format!("the login of {}", t.user),
            &t.addr,
            &login,
        ));
    }
    let ty = ctl.command("TYPE I").await?;
    if ty.code != 200 {
        return Ok(refused("binary mode", &t.addr, &ty));
    }
    if t.path.ends_with('/') {
        return list(req, ctl, t, outcome).await;
    }
    retrieve(req, ctl, t, outcome).await
}

fn not_found(path: &str, r: &Reply) -> Answer {
    Answer::Page(404, format!("{path} is not on the FTP server ({r})."), None)
}

async fn list(
    req: &mut Request,
    ctl: &mut Control,
    t: &url::FtpUrl,
    outcome: &mut ExchangeOutcome,
) -> Result<Answer, FtpError> {
    let cwd = ctl.command(&format!("CWD {}", t.path)).await?;
    if cwd.code != 250 {
        return Ok(if cwd.code == 550 {
            not_found(&t.path, &cwd)
        } else {
            refused("CWD", &t.addr, &cwd)
        });
    }
    let mut data = ctl.passive().await?;
    let start = ctl.command("LIST").await?;
    if start.code != 150 && start.code != 125 {
        return Ok(refused("the listing", &t.addr, &start));
    }
    let mut buf = BytesMut::new();
    loop {
        match timeout(ctl.wait, data.read_buf(&mut buf, 64 * 1024)).await {
            Err(_) => {
                return Err(FtpError::Io(
                    "reading the listing",
                    modproxy_api::IoError::Timeout,
                ))
            }
            Ok(Err(e)) => return Err(FtpError::Io("reading the listing", e)),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) if buf.len() > MAX_LISTING => {
                return Err(FtpError::Protocol(format!(
                    "the listing is over {MAX_LISTING} bytes"
                )))
            }
            Ok(Ok(_)) => {}
        }
    }
    drop(data);
    let end = ctl.reply().await?;
    if end.code != 226 && end.code != 250 {
        return Ok(refused("to complete the listing", &t.addr, &end));
    }
    outcome.bytes_received += buf.len() as u64;
    let page = render::listing(&t.path, &String::from_utf8_lossy(&buf));
    Ok(Answer::Status(
        send_html(req, outcome, 200, page, None).await,
    ))
}

async fn retrieve(
    req: &mut Request,
    ctl: &mut Control,
    t: &url::FtpUrl,
    outcome: &mut ExchangeOutcome,
) -> Result<Answer, FtpError> {
    let size = ctl.command(&format!("SIZE {}", t.path)).await?;
    let length = (size.code == 213)
        .then(|| size.text.trim().parse::<u64>().ok())
        .flatten();
    if size.code == 550 || length.is_none() {
        // A directory has no size: send the client to its listing.
        let cwd = ctl.command(&format!("CWD {}", t.path)).await?;
        if cwd.code == 250 {
            let location = format!("{}/", req.path());
            let text = format!("{} is a directory: see {location}", t.path);
            return Ok(Answer::Page(301, text, Some(location)));
        }
        if size.code == 550 {
            return Ok(not_found(&t.path, &size));
        }
    }
    if req.method() == "HEAD" {
        return Ok(head_only(req, t, length, outcome));
    }
    let mut data = ctl.passive().await?;
    let start = ctl.command(&format!("RETR {}", t.path)).await?;
    if start.code == 550 {
        return Ok(not_found(&t.path, &start));
    }
    if start.code != 150 && start.code != 125 {
        return Ok(refused("the download", &t.addr, &start));
    }
    file_head(req, t, length, outcome);
    if req.send_head().is_err() {
        return Ok(Answer::Status(ExchangeStatus::Aborted));
    }
    let mut got = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let read = match timeout(ctl.wait, data.read_buf(&mut buf, 64 * 1024)).await {
            Err(_) => Err(modproxy_api::IoError::Timeout),
            Ok(r) => r,
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                got += n as u64;
                outcome.bytes_received += n as u64;
                if length.is_some_and(|l| got > l) || req.write_body(buf.freeze()).await.is_err() {
                    return Ok(Answer::Status(ExchangeStatus::Aborted));
                }
            }
            Err(e) => {
                log(
                    Level::Error,
                    format_args!(
                        "proxy_ftp: {}: download of {} broke off: {e}",
                        t.addr, t.path
                    ),
                );
                return Ok(Answer::Status(ExchangeStatus::Aborted));
            }
        }
    }
    drop(data);
    let end = ctl.reply().await;
    let complete = matches!(&end, Ok(r) if r.code == 226 || r.code == 250);
    if !complete || length.is_some_and(|l| l != got) {
        log(
            Level::Error,
            format_args!(
                "proxy_ftp: {}: download of {} incomplete ({got} bytes; {end:?})",
                t.addr, t.path
            ),
        );
        return Ok(Answer::Status(ExchangeStatus::Aborted));
    }
    ctl.clear();
    Ok(Answer::Status(ExchangeStatus::Relayed))
}

fn head_only(
    req: &mut Request,
    t: &url::FtpUrl,
    length: Option<u64>,
    outcome: &mut ExchangeOutcome,
) -> Answer {
    file_head(req, t, length, outcome);
    match req.send_head() {
        Ok(()) => Answer::Status(ExchangeStatus::Relayed),
        Err(_) => Answer::Status(ExchangeStatus::Aborted),
    }
}

/// A file's 200 head, for GET and HEAD alike: its type from its name, and
/// its length when the server told it (SIZE).
fn file_head(
    req: &mut Request,
    t: &url::FtpUrl,
    length: Option<u64>,
    outcome: &mut ExchangeOutcome,
) {
    outcome.status = 200;
    req.set_status(200);
    req.set_header(
        Headers::Response,
        "Content-Type",
        render::content_type(&t.path).as_bytes(),
    );
    if let Some(n) = length {
        req.set_header(
            Headers::Response,
            "Content-Length",
            n.to_string().as_bytes(),
        );
    }
}

modproxy_api::declare_module!(ProxyFtp);
