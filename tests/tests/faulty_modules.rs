//! Broken modules are refused at load with one line naming the module, and
//! a module that panics inside a hook costs one request, not the server.

use modproxy_tests::{free_port, get, Server, ServerRoot};

fn vhost(port: u16) -> String {
    format!("[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// Enables fixture `name` and returns what `configtest` and `run` said.
fn refused(name: &str, descriptor_extra: &str) -> (String, String) {
    let root = ServerRoot::new();
    root.fixture_module(name, &format!("libfixture_{name}.so"), descriptor_extra);
    root.enable(&[name]);
    root.config(&vhost(free_port()));
    let test = root.cli(&["configtest"]);
    assert_eq!(
        test.status.code(),
        Some(1),
        "configtest must fail for {name}"
    );
    let run = root.cli(&["run"]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "the server must not start with {name}"
    );
    (
        String::from_utf8_lossy(&test.stderr).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn a_module_built_against_another_abi_version_is_refused() {
    let (test, run) = refused("wrong_abi", "");
    for out in [&test, &run] {
        assert!(out.contains("module wrong_abi"), "{out}");
        assert!(
            out.contains("ABI 999.0") && out.contains("speaks ABI 1."),
            "{out}"
        );
        assert!(out.contains("rebuild"), "says what to do: {out}");
    }
}

#[test]
fn a_module_built_for_a_newer_minor_is_refused_naming_what_it_needs() {
    // `modproxy version` ends in "(module ABI MAJOR.MINOR)".
    let version = std::process::Command::new(modproxy_tests::modproxy())
        .arg("version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    let (major, minor) = host.split_once('.').unwrap();
    let next = format!("{major}.{}", minor.parse::<u32>().unwrap() + 1);
    let (test, run) = refused("future_minor", "");
    for out in [&test, &run] {
        let needs = format!(
            "module future_minor: needs module ABI {next}, but this server speaks ABI {host}"
        );
        assert!(out.contains(&needs), "{out}");
        assert!(out.contains("upgrade modproxy"), "says what to do: {out}");
        assert_eq!(
            out.lines().filter(|l| l.contains("future_minor")).count(),
            1,
            "{out}"
        );
    }
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let (test, _) = refused("no_symbol", "");
    assert!(
        test.contains("module no_symbol") && test.contains("not a modproxy module"),
        "{test}"
    );
}

#[test]
fn a_module_whose_init_fails_is_refused_with_its_reason() {
    let (test, _) = refused("init_fails", "");
    assert!(test.contains("module init_fails: init failed"), "{test}");
    assert!(
        test.contains("license server"),
        "the module's own reason: {test}"
    );
}

#[test]
fn a_missing_library_is_refused() {
    let root = ServerRoot::new();
    root.write(
        "mods-available/ghost.toml",
        "library = \"/nonexistent/libghost.so\"\n",
    );
    root.enable(&["ghost"]);
    root.config(&vhost(free_port()));
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("module ghost") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_missing_dependency_is_refused() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    // Remove proxy behind enmod's back.
    std::fs::remove_file(root.dir.join("mods-enabled/proxy.toml")).unwrap();
    root.config(&vhost(free_port()));
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("proxy_http") && err.contains("modproxy enmod proxy"),
        "{err}"
    );
}

#[test]
fn a_panic_in_any_hook_gives_500_and_the_server_keeps_serving() {
    let root = ServerRoot::new();
    root.fixture_module("panicky", "libfixture_panicky.so", "");
    root.enable(&["panicky"]);
    let port = free_port();
    root.config(&vhost(port));
    let mut server = Server::start(&root, port);
    assert_eq!(
        get(port, "/hello", &[]).unwrap().text(),
        "hello from panicky\n"
    );
    for path in [
        "/panic/translate_name",
        "/panic/fixups",
        "/panic/handler",
        "/panic/async",
    ] {
        let r = get(port, path, &[]).unwrap();
        assert_eq!(r.status, 500, "{path}");
        assert!(server.is_running());
        assert_eq!(
            get(port, "/hello", &[]).unwrap().status,
            200,
            "still serving after {path}"
        );
    }
    let log = root.log();
    assert!(
        log.contains("panic in module panicky: deliberate panic at /panic/translate_name"),
        "{log}"
    );
    assert!(
        log.contains("deliberate panic inside the handler's future"),
        "{log}"
    );
    assert!(
        log.contains("module panicky panicked in hook handler"),
        "{log}"
    );
}

/// A panic inside a host service, while a module calls it, fails that
/// call and so that request; the server keeps serving. The panic is
/// injected into the first `response_start` (the core sending the head
/// proxy_http asked for) with the tests-only MODPROXY_TEST_PANIC.
#[test]
fn a_panic_in_a_host_service_fails_the_request_and_the_server_keeps_serving() {
    let backend = modproxy_tests::Backend::text("fine");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n",
        backend.url()
    ));
    let _server = Server::start_with_env(&root, port, &[("MODPROXY_TEST_PANIC", "response_start")]);
    let first = get(port, "/", &[]);
    assert!(
        first.as_ref().map_or(true, |r| r.status >= 500),
        "the request whose host call panicked fails: {first:?}"
    );
    let log = root.log();
    assert!(
        log.contains("host service response_start panicked") && log.contains("keeps serving"),
        "{log}"
    );
    for _ in 0..3 {
        let r = get(port, "/", &[]).unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "fine"),
            "{}",
            root.log()
        );
    }
}
