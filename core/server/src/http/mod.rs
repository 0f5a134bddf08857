//! HTTP/1.1 towards the client, in pieces that each do one job: parsing a
//! request head, reading its body, writing a response head and queuing
//! what goes out. The connection loop that strings them together is
//! `server::connection`; the pieces hold no policy of their own.
//!
//! Why not hyper: a module sets response fields one by one, and with
//! hyper each went into a `HeaderMap` (a name lookup and an allocation
//! per field) to be encoded again; an idle hyper connection keeps its
//! buffers (12 KiB). Here fields live in one arena, are written as they
//! are, and an idle connection holds no buffer (docs/performance.md).

pub mod client_io;
pub mod fields;
pub mod outbox;
pub mod request_body;
pub mod request_head;
pub mod response_head;
