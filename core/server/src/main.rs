//! `modproxy`: Apache httpd's mod_proxy family as a small Rust core that
//! loads its proxy modules as shared libraries.
//!
//! Layout: `cli` reads the command line and runs one command; `startup`
//! loads config and modules; `loader` is the module boundary (all of the
//! host's unsafe code); `server` serves HTTP and handles restarts; `log`
//! writes the error and access logs; `metrics` counts requests for `/metrics`.
#![deny(unsafe_code)]

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
