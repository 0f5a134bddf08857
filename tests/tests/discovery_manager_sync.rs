//! `manager_sync` with three modproxy processes on loopback and one real
//! etcd: a change on one node's balancer manager reaches the other two
//! within a second; concurrent changes end with every node as the store
//! has it (last writer by etcd revision); a node that restarts reads the
//! current state.

use modproxy_tests::balancer::{member, site};
use modproxy_tests::discovery::{log_lines, member_state, status, wait_until, Etcd};
use modproxy_tests::member::Member;
use modproxy_tests::{free_port, get, request, Server, ServerRoot};
use std::time::Duration;

struct Node {
    root: ServerRoot,
    server: Option<Server>,
    port: u16,
}

impl Node {
    fn start(etcd: &Etcd, members: &[String]) -> Node {
        let root = ServerRoot::new();
        root.enable(&[
            "proxy_http",
            "proxy_balancer",
            "lbmethod_byrequests",
            "proxy_discovery",
        ]);
        let port = free_port();
        let keys = format!(
            "manager_sync = {{ etcd = [\"{}\"], prefix = \"/modproxy/manager/\" }}",
            etcd.endpoint()
        );
        root.config(&format!(
            "{}\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n",
            site(port, &keys, members)
        ));
        let server = Some(Server::start(&root, port));
        Node { root, server, port }
    }

    fn restart(&mut self) {
        drop(self.server.take());
        self.server = Some(Server::start(&self.root, self.port));
    }

    fn token(&self) -> String {
        let body = get(self.port, "/balancer-manager/api", &[]).unwrap().text();
        let start = body.find("\"token\":\"").expect("a token") + 9;
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    }

    fn change(&self, url: &str, set: &str) {
        let body = format!("{{\"balancer\":\"c\",\"member\":\"{url}\",\"set\":{set}}}");
        let token = self.token();
        let headers = [
            ("Content-Type", "application/json"),
            ("Connection", "close"),
            ("X-Modproxy-Token", token.as_str()),
        ];
        let r = request(
            self.port,
            "POST",
            "/balancer-manager/api",
            &headers,
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }

    fn state(&self, url: &str) -> Option<(String, u32)> {
        member_state(&status(&self.root), url)
    }
}

#[test]
fn three_nodes_share_manager_changes_through_etcd() {
    let (m0, m1) = (Member::start("m0"), Member::start("m1"));
    let etcd = Etcd::start();
    let members = [member(&m0.url(), ""), member(&m1.url(), "")];
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(&etcd, &members)).collect();
    let logs = |nodes: &[Node]| {
        nodes
            .iter()
            .map(|n| log_lines(&n.root.log()))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };

    // One node disables m0: the other two follow within a second.
    nodes[0].change(&m0.url(), "{\"status\":\"+D\"}");
    let mut slowest = Duration::ZERO;
    for n in &nodes[1..] {
        let took = wait_until(
            "the change reaches every node",
            Duration::from_secs(1),
            || n.state(&m0.url()).is_some_and(|(s, _)| s == "disabled"),
            || logs(&nodes),
        );
        slowest = slowest.max(took);
    }
    let key = format!("/modproxy/manager/c/{}", m0.url());
    assert!(
        etcd.get(&key).unwrap().contains("+D"),
        "written to the store"
    );

    // Drain, hot standby, loadfactor and route travel the same way.
    nodes[2].change(
        &m1.url(),
        "{\"status\":\"+N\",\"loadfactor\":4,\"route\":\"r1\"}",
    );
    for n in &nodes[..2] {
        wait_until(
            "drain, loadfactor and route reach every node",
            Duration::from_secs(2),
            || {
                let s = status(&n.root);
                member_state(&s, &m1.url()) == Some(("draining".into(), 4)) && s.contains("r1")
            },
            || logs(&nodes),
        );
    }

    // Concurrent changes of one member on two nodes: every node ends as
    // the store has it.
    std::thread::scope(|s| {
        s.spawn(|| nodes[1].change(&m0.url(), "{\"status\":\"-D+H\",\"loadfactor\":5}"));
        s.spawn(|| nodes[2].change(&m0.url(), "{\"status\":\"-D\",\"loadfactor\":9}"));
    });
    // Every node ends as the store has it (read again at each look: the
    // store is the reference, whichever write came last). The writes are
    // only nearly concurrent: if node 1's change reached node 2 before
    // node 2's own, node 2 wrote "-D" over standby and stored `+H` with
    // loadfactor 9; the store's status says which.
    let expected = || {
        let stored = etcd.get(&key).unwrap_or_default();
        let loadfactor = if stored.contains("\"loadfactor\":5") {
            5
        } else {
            9
        };
        let standby = stored
            .split("\"status\":\"")
            .nth(1)
            .is_some_and(|s| s.split('"').next().unwrap_or("").contains('H'));
        let state = if standby { "standby" } else { "ok" };
        (state.to_owned(), loadfactor)
    };
    wait_until(
        "every node as the store has it",
        Duration::from_secs(2),
        || {
            let want = expected();
            nodes
                .iter()
                .all(|n| n.state(&m0.url()).as_ref() == Some(&want))
        },
        || format!("store: {:?}\n{}", etcd.get(&key), logs(&nodes)),
    );

    // A node that restarts reads the current state.
    nodes[0].change(&m1.url(), "{\"status\":\"-N\",\"loadfactor\":6}");
    let n2 = &mut nodes[2];
    wait_until(
        "node 2 has the change",
        Duration::from_secs(2),
        || n2.state(&m1.url()) == Some(("ok".into(), 6)),
        String::new,
    );
    drop(n2.server.take());
    nodes[1].change(&m1.url(), "{\"loadfactor\":7,\"route\":\"r7\"}");
    nodes[2].restart();
    wait_until(
        "the restarted node reads the store",
        Duration::from_secs(3),
        || nodes[2].state(&m1.url()) == Some(("ok".into(), 7)),
        || logs(&nodes),
    );
    eprintln!(
        "figures: a manager change on one node reached the other two in at most {} ms",
        slowest.as_millis()
    );
}

#[test]
fn discovered_members_take_the_stored_manager_settings_too() {
    let (m0, m1) = (Member::start("m0"), Member::start("m1"));
    let etcd = Etcd::start();
    etcd.put("/modproxy/c/m0", &format!("{{\"url\": \"{}\"}}", m0.url()));
    // An operator disabled m1 on some node before this one ever saw it.
    etcd.put(
        &format!("/modproxy/manager/c/{}", m1.url()),
        "{\"loadfactor\":1,\"lbset\":0,\"route\":\"\",\"status\":\"+D\"}",
    );
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_balancer",
        "lbmethod_byrequests",
        "proxy_discovery",
    ]);
    let port = free_port();
    let keys = format!(
        "discovery = {{ etcd = [\"{e}\"], prefix = \"/modproxy/c/\" }}\nmanager_sync = {{ etcd = [\"{e}\"], prefix = \"/modproxy/manager/\" }}",
        e = etcd.endpoint()
    );
    root.config(&format!(
        "{}\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n",
        site(port, &keys, &[])
    ));
    let server = Server::start(&root, port);
    let log = || log_lines(&root.log());
    etcd.put(
        "/modproxy/c/m1",
        &format!("{{\"url\": \"{}\", \"loadfactor\": 1}}", m1.url()),
    );
    wait_until(
        "m1 joins, disabled as the store says",
        Duration::from_secs(3),
        || member_state(&status(&root), &m1.url()).is_some_and(|(s, _)| s == "disabled"),
        log,
    );
    // Its source rewrites it (a new weight): the manager's setting stays.
    etcd.put(
        "/modproxy/c/m1",
        &format!("{{\"url\": \"{}\", \"loadfactor\": 4}}", m1.url()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        member_state(&status(&root), &m1.url()).map(|(s, _)| s),
        Some("disabled".into()),
        "{}",
        log()
    );
    let got: Vec<String> = (0..4)
        .map(|_| get(server.port, "/", &[]).unwrap().text())
        .collect();
    assert!(got.iter().all(|g| g == "m0"), "only m0 serves: {got:?}");
}
