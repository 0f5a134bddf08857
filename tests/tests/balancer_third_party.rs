//! The third-party story as a stranger lives it: the example lbmethod in
//! examples/lbmethod_clienthash and a crate made by `modproxy
//! new-lbmethod` are built outside the workspace, installed into
//! mods-available, enabled with `modproxy enmod`, named in the balancer and
//! picked up by `modproxy restart`.

use modproxy_tests::balancer::{assert_each_client_sticks, member, picks, site};
use modproxy_tests::third_party::{build, with_library};
use modproxy_tests::{free_port, modproxy, repo_root, Backend, Server, ServerRoot};
use std::collections::HashSet;
use std::process::Command;

/// Restarts onto a new balancer config.
fn restart_with(root: &ServerRoot, port: u16, keys: &str, members: &[String]) {
    root.config(&site(port, keys, members));
    root.restart();
}

#[test]
fn out_of_tree_lbmethods_build_install_and_are_selected_by_name() {
    let b: Vec<Backend> = (0..3).map(|i| Backend::text(&format!("m{i}"))).collect();
    let members: Vec<String> = b.iter().map(|m| member(&m.url(), "")).collect();
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "lbmethod_byrequests"]);
    let port = free_port();
    root.config(&site(port, "", &members));
    let _server = Server::start(&root, port);

    // The example: built in its own directory, its descriptor copied in
    // with an absolute library path.
    let example = repo_root().join("examples/lbmethod_clienthash");
    let lib = build(&example, "lbmethod_clienthash");
    let descriptor = std::fs::read_to_string(example.join("lbmethod_clienthash.toml")).unwrap();
    root.write(
        "mods-available/lbmethod_clienthash.toml",
        &with_library(&descriptor, &lib),
    );
    root.enable(&["lbmethod_clienthash"]);
    restart_with(&root, port, "lbmethod = \"clienthash\"", &members);

    // One client, one member; byrequests would rotate.
    assert_each_client_sticks(port, || root.log());
    let by_addr = picks(port, "/", &[], 4);
    assert!(
        by_addr.iter().all(|g| *g == by_addr[0]),
        "by client address: {by_addr:?}"
    );
    // Many clients spread over the members.
    let spread: HashSet<String> = (0..30)
        .flat_map(|i| picks(port, "/", &[("X-Client-Id", &format!("client{i}"))], 1))
        .collect();
    assert_eq!(spread.len(), 3, "{spread:?}");

    // `modproxy new-lbmethod`: the crate as generated builds and loads. Its
    // descriptor is linked, not copied: `library` stays relative to it.
    let dir = root.dir.join("src/lbmethod_rr");
    let out = Command::new(modproxy())
        .args(["new-lbmethod", "rr"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = build(&dir, "lbmethod_rr");
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::fs::copy(&lib, dir.join("target/release/liblbmethod_rr.so")).unwrap();
    std::os::unix::fs::symlink(
        dir.join("lbmethod_rr.toml"),
        root.dir.join("mods-available/lbmethod_rr.toml"),
    )
    .unwrap();
    root.enable(&["lbmethod_rr"]);
    restart_with(&root, port, "lbmethod = \"rr\"", &members);
    assert_eq!(
        picks(port, "/", &[], 4),
        ["m0", "m1", "m2", "m0"],
        "{}",
        root.log()
    );
}

#[test]
fn new_lbmethod_refuses_bad_names_and_non_empty_directories() {
    let root = ServerRoot::new();
    let run = |args: &[&str]| Command::new(modproxy()).args(args).output().unwrap();
    let out = run(&[
        "new-lbmethod",
        "Bad-Name",
        root.dir.join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowercase letters"));
    let out = run(&["new-lbmethod", "ok", root.dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

/// A descriptor whose `provides` names a provider the module does not
/// register is refused at load, naming both, instead of leaving configtest
/// to say "enable the module" about a module that is enabled.
#[test]
fn a_descriptor_promising_a_provider_the_module_does_not_register_is_refused() {
    let example = repo_root().join("examples/lbmethod_clienthash");
    let lib = build(&example, "lbmethod_clienthash");
    let descriptor = std::fs::read_to_string(example.join("lbmethod_clienthash.toml"))
        .unwrap()
        .replace("lbmethod:clienthash\"", "lbmethod:client_hash\"");
    let root = ServerRoot::new();
    root.write(
        "mods-available/lbmethod_clienthash.toml",
        &with_library(&descriptor, &lib),
    );
    root.enable(&["proxy_http", "lbmethod_clienthash"]);
    root.config(&site(free_port(), "lbmethod = \"client_hash\"", &[]));
    let out = root.cli(&["configtest"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "provides lbmethod:client_hash, but the module registered lbmethod:clienthash"
        ),
        "{text}"
    );
}
