//! gRPC through proxy_http2 to a real grpcio server (grpc_backend.py):
//! the request's `te: trailers` and `content-type` reach it, its
//! messages come back byte-exact, and its status survives.
//!
//! The first test uses an HTTP/1.1 client. The second is gRPC end to end:
//! grpcio's client → modproxy over h2c (`protocols`) → proxy_http2 →
//! grpcio's server, unary and a bidi stream, grpc-status and trailing
//! metadata preserved both ways.

#[path = "support/h2.rs"]
mod h2;

use h2::{serve, serve_on_vhost, Backend};
use modproxy_tests::request;

/// One gRPC message on the wire: not compressed, its length, its bytes.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[test]
fn a_grpc_call_from_an_http1_client_reaches_grpcio_and_comes_back() {
    let grpc = Backend::grpc();
    let (root, server) = serve(
        &[],
        &format!(
            "pass = [{{ path = \"/test.Echo/\", url = \"{}/test.Echo/\" }}]",
            grpc.h2c_url()
        ),
    );
    let grpc_headers = [("Content-Type", "application/grpc"), ("TE", "trailers")];
    let r = request(
        server.port,
        "POST",
        "/test.Echo/Unary",
        &grpc_headers,
        &frame(b"hello"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", root.log(), grpc.log());
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(r.body, frame(b"echo:hello"), "{:?}", r.text());
    // A failure is a trailers-only answer: grpc-status in the head.
    let r = request(
        server.port,
        "POST",
        "/test.Echo/Fail",
        &grpc_headers,
        &frame(b"x"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("grpc-status"),
        Some("5"),
        "NOT_FOUND: {:?}",
        r.headers
    );
    assert_eq!(r.header("grpc-message"), Some("no such thing"));
}

#[test]
fn grpc_end_to_end_unary_and_bidi_streaming_keep_status_and_trailers() {
    let grpc = Backend::grpc();
    let (root, server) = serve_on_vhost(
        &[],
        "protocols = [\"h2c\", \"http/1.1\"]",
        &format!(
            "pass = [{{ path = \"/test.Echo/\", url = \"{}/test.Echo/\" }}]",
            grpc.h2c_url()
        ),
    );
    let client =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/grpc_client.py");
    let out = std::process::Command::new("python3")
        .arg(client)
        .arg(format!("127.0.0.1:{}", server.port))
        .output()
        .expect("python3 with grpcio: run tests/setup.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "unary echo:hello grpcio\n\
         chat chat:one,chat:two,chat:three 0 3\n\
         fail NOT_FOUND no such thing\n",
        "stderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        root.log()
    );
}
