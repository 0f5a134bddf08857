//! `modproxy`: Apache httpd's mod_proxy family as a small Rust core that
//! loads its proxy modules as shared libraries.
//!
//! Layout: `cli` reads the command line and runs one command; `startup`
//! loads config and modules; `loader` is the module boundary (all of the
//! host's unsafe code); `server` serves HTTP and handles restarts; `log`
//! writes the error and access logs; `metrics` counts requests for `/metrics`;
//! `http` is the client side of HTTP/1.1.
#![deny(unsafe_code)]

/// mimalloc, linked in "override" mode: the binary exports `malloc` and
/// `free`, so modules, which allocate through the C library as any
/// shared library does, use it too without knowing. glibc's malloc cost
/// about 6 k instructions per proxied request, mimalloc a fifth of that
/// (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod http;
mod loader;
mod log;
mod metrics;
mod server;
mod startup;

fn main() {
    std::process::exit(cli::main());
}
