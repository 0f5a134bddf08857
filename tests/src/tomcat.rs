//! A real Tomcat (Debian's tomcat10, installed by tests/setup.sh) on
//! loopback: its own CATALINA_BASE in a temp dir, one AJP connector on
//! 127.0.0.1, and the test servlet of tests/fixtures/tomcat/Echo.java,
//! compiled once per test binary with javac against Tomcat's servlet API.
//!
//! A JVM takes a second or two to start, so tests share instances
//! ([`shared`]). Statics are never dropped, so each instance runs under a
//! small shell watchdog that kills it when the test process is gone.

use crate::free_port;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOME: &str = "/usr/share/tomcat10";

/// How one instance is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The Engine's jvmRoute, the suffix of its session ids.
    pub route: &'static str,
    /// The connector's secret (secretRequired when set).
    pub secret: Option<&'static str>,
    /// The connector's packetSize.
    pub packet_size: usize,
}

/// A running Tomcat; stopped on drop.
pub struct Tomcat {
    pub port: u16,
    pub setup: Setup,
    base: PathBuf,
    watchdog: Option<Child>,
}

/// The compiled servlet, once per test binary.
fn classes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(
            Path::new(HOME).join("bin/bootstrap.jar").exists(),
            "{HOME} is missing: run tests/setup.sh (it installs Debian's tomcat10-common)"
        );
        let dir =
            std::env::temp_dir().join(format!("modproxy-tomcat-classes-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let src = crate::repo_root().join("tests/fixtures/tomcat/Echo.java");
        let out = Command::new("javac")
            .arg("-cp")
            .arg(format!("{HOME}/lib/servlet-api.jar"))
            .arg("-d")
            .arg(&dir)
            .arg(src)
            .output()
            .expect("run javac: install a JDK (tests/setup.sh installs default-jdk-headless)");
        assert!(
            out.status.success(),
            "javac failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Instances started once per test binary, by their route.
pub fn shared(setup: Setup) -> &'static Tomcat {
    static T1: OnceLock<Tomcat> = OnceLock::new();
    static T2: OnceLock<Tomcat> = OnceLock::new();
    let cell = match setup.route {
        "t1" => &T1,
        "t2" => &T2,
        other => panic!("no shared Tomcat for route {other}: use t1 or t2, or Tomcat::start"),
    };
    cell.get_or_init(|| Tomcat::start(setup))
}

impl Tomcat {
    /// Starts an instance on a free port and waits until its connector
    /// accepts (it binds after the application is deployed).
    pub fn start(setup: Setup) -> Tomcat {
        Tomcat::start_on(setup, free_port())
    }

    pub fn start_on(setup: Setup, port: u16) -> Tomcat {
        let base = std::env::temp_dir().join(format!(
            "modproxy-tomcat-{}-{}-{port}",
            std::process::id(),
            setup.route
        ));
        let app = base.join("webapps/app/WEB-INF");
        for d in ["conf", "logs", "temp", "work"] {
            fs::create_dir_all(base.join(d)).unwrap();
        }
        fs::create_dir_all(app.join("classes")).unwrap();
        fs::copy(classes().join("Echo.class"), app.join("classes/Echo.class")).unwrap();
        fs::write(app.join("web.xml"), WEB_XML).unwrap();
        let secret = match setup.secret {
            Some(s) => format!("secretRequired=\"true\" secret=\"{s}\""),
            None => "secretRequired=\"false\"".to_owned(),
        };
        let server = format!(
            r#"<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="{port}" bindOnInit="false" {secret} packetSize="{}"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
"#,
            setup.packet_size, setup.route
        );
        fs::write(base.join("conf/server.xml"), server).unwrap();
        let b = base.display();
        let java = format!(
            "java -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m -Dtest.route={route} \
             -Dcatalina.home={HOME} -Dcatalina.base={b} -Djava.io.tmpdir={b}/temp \
             -cp {HOME}/bin/bootstrap.jar:{HOME}/bin/tomcat-juli.jar org.apache.catalina.startup.Bootstrap start",
            route = setup.route
        );
        // The watchdog: Tomcat lives while the test process does.
        let script = format!(
            "{java} >{b}/logs/out.log 2>&1 & j=$!; echo $j >{b}/java.pid; \
             while kill -0 {me} 2>/dev/null && kill -0 $j 2>/dev/null; do sleep 0.5; done; kill -9 $j 2>/dev/null",
            me = std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh");
        let mut t = Tomcat {
            port,
            setup,
            base,
            watchdog: Some(watchdog),
        };
        t.wait_ready();
        t
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.watchdog.as_mut().map(|w| w.try_wait()) {
                panic!("tomcat exited ({status}) before listening:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "tomcat did not listen on {} within 60 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ajp://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ajp://127.0.0.1:{}", self.port)
    }

    /// What Tomcat wrote to its console log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.base.join("logs/out.log")).unwrap_or_default()
    }

    /// Kills the JVM and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.base.join("java.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

const WEB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0" metadata-complete="true">
  <servlet><servlet-name>echo</servlet-name><servlet-class>Echo</servlet-class></servlet>
  <servlet-mapping><servlet-name>echo</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"#;
