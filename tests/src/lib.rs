//! Support for the end-to-end tests: a throwaway server root, the real
//! `modproxy` binary started on it with the real modules the workspace
//! built, real backend servers and a raw HTTP/1.1 client, all on loopback
//! ports chosen by the kernel.
//!
//! The modules must be built first (`cargo build --release --workspace`,
//! which the README's test command does); [`target_dir`] explains if not.
#![forbid(unsafe_code)]

pub mod apache;
pub mod backend;
pub mod balancer;
pub mod client;
pub mod discovery;
pub mod figures;
pub mod fpm;
pub mod member;
pub mod proxied;
pub mod scripted;
pub mod server;
pub mod third_party;
pub mod tomcat;

pub use apache::Apache;
pub use backend::{Backend, Seen};
pub use client::{checksum, get, noise, request, send_raw, Conn, Response};
pub use fpm::PhpFpm;
pub use proxied::Proxied;
pub use scripted::{Peer, Scripted};
pub use server::{h2c_proxy, modproxy, Server, ServerRoot};

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where cargo put the binary and modules of this build profile.
pub fn target_dir() -> PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = dir.join(profile);
    let bin = dir.join("modproxy");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build{} --workspace)",
        bin.display(),
        if profile == "release" {
            " --release"
        } else {
            ""
        }
    );
    dir
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
