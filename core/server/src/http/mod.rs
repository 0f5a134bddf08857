//! HTTP/1.1 towards the client, in pieces that each do one job: the
//! client's connection, reading a request body, queuing what goes out;
//! parsing heads and writing them is I/O-free and lives in core/http1. The connection loop that strings them together is
//! `server::connection`; the pieces hold no policy of their own.
//!
//! Why not hyper: a module sets response fields one by one, and with
//! hyper each went into a `HeaderMap` (a name lookup and an allocation
//! per field) to be encoded again; an idle hyper connection keeps its
//! buffers (12 KiB). Here fields live in one arena, are written as they
//! are, and an idle connection holds no buffer (docs/performance.md).

pub mod client_io;
pub mod client_tcp;
pub mod outbox;
pub mod request_body;
pub mod splice;

pub use modproxy_http1::{fields, path, request_head, response_head};
