//! scripts/install.sh lays out a server root under a prefix that runs as
//! installed: the binary, every module with its descriptor pointing into
//! PREFIX/modules, the tutorial's four modules enabled, the default config
//! passing configtest, and the systemd unit with the prefix filled in.
//! Then `start`, a request through it with curl, `restart`, `stop`; and a
//! second install over it keeps the operator's config.

use modproxy_tests::{free_port, repo_root, target_dir, Backend};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn install(prefix: &Path) -> String {
    // The release build the tests already have; the script's default is
    // the benchmarked dist profile.
    run(Command::new(repo_root().join("scripts/install.sh"))
        .arg("--no-build")
        .arg(prefix)
        .env("MODPROXY_PROFILE", "release")
        .env("CARGO_TARGET_DIR", target_dir().parent().unwrap()))
}

/// Stops the installed daemon if the test fails before it does.
struct Stop(std::path::PathBuf, std::path::PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new(&self.0)
            .arg("-d")
            .arg(&self.1)
            .arg("stop")
            .output();
    }
}

#[test]
fn the_installed_server_root_runs() {
    let prefix = std::env::temp_dir().join(format!("modproxy-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    install(&prefix);
    let bin = prefix.join("bin/modproxy");
    let mp = |args: &[&str]| run(Command::new(&bin).arg("-d").arg(&prefix).args(args));
    for m in [
        "proxy",
        "proxy_http",
        "proxy_balancer",
        "proxy_wstunnel",
        "lbmethod_byrequests",
        "lbmethod_bybusyness",
        "lbmethod_bytraffic",
        "lbmethod_ewma",
    ] {
        assert!(
            prefix.join(format!("modules/libmod_{m}.so")).is_file(),
            "{m}"
        );
        let d = std::fs::read_to_string(prefix.join(format!("mods-available/{m}.toml"))).unwrap();
        assert!(
            d.contains(&format!("library = \"../modules/libmod_{m}.so\"")),
            "{d}"
        );
    }
    assert!(
        mp(&["configtest"]).contains("Syntax OK"),
        "the default config as installed"
    );
    let modules = mp(&["-M"]);
    for m in [
        "proxy ",
        "proxy_http ",
        "proxy_balancer ",
        "lbmethod_byrequests ",
    ] {
        assert!(
            modules
                .lines()
                .any(|l| l.starts_with(m) && l.contains(" yes ")),
            "{m} enabled:\n{modules}"
        );
    }
    let unit = std::fs::read_to_string(prefix.join("share/modproxy.service")).unwrap();
    let p = prefix.display();
    for line in [
        "Type=forking",
        &format!("PIDFile={p}/run/modproxy.pid"),
        &format!("ExecStart={p}/bin/modproxy -d {p} start"),
        &format!("ExecReload={p}/bin/modproxy -d {p} restart"),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in:\n{unit}");
    }
    assert!(!unit.contains("/opt/modproxy"), "{unit}");

    // The operator's own config, then the daemon as systemd runs it.
    let backend = Backend::text("installed");
    let port = free_port();
    let config = format!("[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n", backend.url());
    std::fs::write(prefix.join("modproxy.toml"), &config).unwrap();
    mp(&["start"]);
    let _stop = Stop(bin.clone(), prefix.clone());
    let curl = || {
        run(Command::new("curl")
            .args([
                "-s",
                "--retry",
                "20",
                "--retry-connrefused",
                "--retry-delay",
                "0",
            ])
            .arg(format!("http://127.0.0.1:{port}/")))
    };
    assert_eq!(curl(), "installed");
    mp(&["restart"]);
    assert_eq!(curl(), "installed");
    let pid: i32 = std::fs::read_to_string(prefix.join("run/modproxy.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    mp(&["stop"]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "stopped"
    );
    assert!(
        std::fs::metadata(prefix.join("logs/error.log")).is_ok(),
        "start logs to PREFIX/logs"
    );

    // An upgrade keeps the config.
    install(&prefix);
    assert_eq!(
        std::fs::read_to_string(prefix.join("modproxy.toml")).unwrap(),
        config
    );
    std::fs::remove_dir_all(&prefix).unwrap();
}
