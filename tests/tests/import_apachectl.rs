//! apachectl's and a2enmod's habits on the real binary: `-t`, `-M`, `-S`,
//! `-v`, `-k start|graceful|stop`, with `-d`/`-f` before or after the
//! flag, and `enmod -q mod_proxy_http`.

use modproxy_tests::{free_port, get, Backend, ServerRoot};
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a2enmod_names_and_quiet() {
    let root = ServerRoot::new();
    let out = root.cli(&["enmod", "-q", "mod_proxy_http", "mod_lbmethod_byrequests"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "", "-q says nothing when all went well");
    let mut enabled: Vec<String> = std::fs::read_dir(root.dir.join("mods-enabled"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    enabled.sort();
    assert_eq!(
        enabled,
        [
            "lbmethod_byrequests.toml",
            "proxy.toml",
            "proxy_balancer.toml",
            "proxy_http.toml"
        ]
    );
    let out = root.cli(&["dismod", "mod_lbmethod_byrequests"]);
    assert!(
        text(&out)
            .0
            .contains("Disabling module lbmethod_byrequests"),
        "{:?}",
        text(&out)
    );
    let out = root.cli(&["enmod", "mod_nonesuch"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("mod_nonesuch"), "{:?}", text(&out));
}

#[test]
fn t_m_s_v_and_k() {
    let root = ServerRoot::new();
    root.enable(&["proxy", "proxy_http"]);
    let backend = Backend::text("hello");
    let (a, b) = (free_port(), free_port());
    root.config(&format!(
        "server_name = \"main.test\"\n[[vhost]]\nlisten = \"127.0.0.1:{a}\"\nserver_name = \"one.test\"\nserver_alias = [\"www.one.test\"]\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n[[vhost]]\nlisten = \"127.0.0.1:{a}\"\nserver_name = \"two.test\"\n[[vhost]]\nlisten = \"127.0.0.1:{b}\"\n",
        backend.url()
    ));
    let (stdout, _) = text(&root.cli(&["-t"]));
    assert_eq!(stdout.trim(), "Syntax OK");
    // -f after the flag, as `apache2ctl -t -f FILE`.
    let dir = root.dir.to_str().unwrap().to_string();
    let out = std::process::Command::new(modproxy_tests::modproxy())
        .args(["-t", "-d", &dir, "-f", "modproxy.toml"])
        .output()
        .unwrap();
    assert_eq!(text(&out).0.trim(), "Syntax OK", "{:?}", text(&out));
    let (stdout, _) = text(&root.cli(&["-M"]));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("proxy_http ") && l.contains(" yes ")),
        "{stdout}"
    );
    let (stdout, _) = text(&root.cli(&["-v"]));
    assert!(stdout.starts_with("modproxy "), "{stdout}");

    let (stdout, stderr) = text(&root.cli(&["-S"]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "VirtualHost configuration:", "{stdout}{stderr}");
    assert_eq!(
        lines[1],
        format!("{:<22} is a NameVirtualHost", format!("127.0.0.1:{a}"))
    );
    assert_eq!(
        lines[2],
        "         default server one.test (modproxy.toml vhost[0])"
    );
    assert_eq!(
        lines[3],
        format!("         port {a} namevhost one.test (modproxy.toml vhost[0])")
    );
    assert_eq!(lines[4], "                 alias www.one.test");
    assert_eq!(
        lines[5],
        format!("         port {a} namevhost two.test (modproxy.toml vhost[1])")
    );
    assert_eq!(
        lines[6],
        format!(
            "{:<22} main.test (modproxy.toml vhost[2])",
            format!("127.0.0.1:{b}")
        )
    );
    assert!(
        stdout.contains(&format!("PidFile: \"{dir}/run/modproxy.pid\"")),
        "{stdout}"
    );

    let out = root.cli(&["-k", "start"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(a, "/", &[]).is_err() {
        assert!(Instant::now() < deadline, "not serving after -k start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(a, "/", &[]).unwrap().text(), "hello");
    let out = root.cli(&["-k", "graceful"]);
    assert!(
        text(&out).0.contains("restarted gracefully"),
        "{:?}",
        text(&out)
    );
    assert_eq!(get(a, "/", &[]).unwrap().text(), "hello");
    let out = root.cli(&["-k", "stop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(get(a, "/", &[]).is_err(), "stopped");
    let out = root.cli(&["-k", "reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out)
        .1
        .contains("use -k start, stop, restart, graceful or graceful-stop"));
}
