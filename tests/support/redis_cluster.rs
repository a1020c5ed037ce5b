//! A private Redis Cluster for tests: three primaries on loopback (or three
//! primaries with a replica each), made of `redis-server --cluster-enabled
//! yes` processes in a temporary directory and joined by `redis-cli
//! --cluster create`. Every node is held by a watchdog shell that kills it
//! when the test process exits (like [`super::RedisServer`]).
//!
//! [`shared_cluster`] is the one a test binary shares (the suites run on it
//! with `CLICKBACK_TEST_BACKEND=cluster`); tests that move slots or kill
//! nodes start their own with [`RedisCluster::start`].

#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a cluster may take to form or heal on a busy machine.
const SETTLE: Duration = Duration::from_secs(60);

/// One node of a [`RedisCluster`].
struct Node {
    port: u16,
    /// The shell holding redis-server; closing its stdin kills the server.
    watchdog: Mutex<Option<Child>>,
}

/// A running Redis Cluster on loopback.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: std::path::PathBuf,
}

/// The cluster most cluster-backed tests of one binary share: three
/// primaries, no replicas, started on first use.
pub fn shared_cluster() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(|| RedisCluster::start(3, 0))
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each and waits
    /// until every node reports `cluster_state:ok` with all 16384 slots
    /// served (and, with replicas, every replica in sync).
    ///
    /// `cluster-node-timeout` is short with replicas (a killed primary is
    /// replaced within seconds) and long without (a busy machine must not
    /// make a healthy node look failed).
    pub fn start(primaries: usize, replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "clickback-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let node_timeout_ms = if replicas > 0 { 1_000 } else { 15_000 };
        let count = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        let mut taken = Vec::new();
        while nodes.len() < count {
            let port = cluster_port();
            // The cluster bus listens on port + 10000: keep both free and distinct.
            if taken.contains(&port)
                || std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_err()
            {
                continue;
            }
            taken.push(port);
            nodes.push(Node {
                port,
                watchdog: Mutex::new(None),
            });
        }
        let cluster = Self { nodes, dir };
        for node in &cluster.nodes {
            cluster.launch(node, node_timeout_ms);
        }
        let mut create = Command::new(cli());
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = create
            .output()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_healthy();
        cluster
    }

    fn launch(&self, node: &Node, node_timeout_ms: u64) {
        // Each node keeps its nodes.conf in a directory of its own, which
        // its watchdog removes once the node is gone (the shared cluster is
        // never dropped: it ends with the test process).
        let dir = self.dir.join(node.port.to_string());
        std::fs::create_dir_all(&dir).expect("node dir");
        let script = format!(
            "{} --port {port} --bind 127.0.0.1 --cluster-enabled yes \
             --cluster-config-file nodes.conf --cluster-node-timeout {node_timeout_ms} \
             --dir '{dir}' --save '' --appendonly no --daemonize no --loglevel warning \
             & pid=$!; read _; kill -9 $pid; wait $pid 2>/dev/null; rm -rf '{dir}'; rmdir '{parent}' 2>/dev/null",
            server(),
            dir = dir.display(),
            parent = self.dir.display(),
            port = node.port,
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        *node.watchdog.lock().expect("watchdog lock") = Some(child);
        let deadline = Instant::now() + SETTLE;
        while self.ask(node.port, &["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "cluster node {} did not come up",
                node.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The nodes as `REDIS_CLUSTER_NODES` lists them: `127.0.0.1:<port>,…`.
    pub fn nodes(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node URLs (`redis://127.0.0.1:<port>`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of the nodes that are primaries now (as the first live
    /// node sees them).
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes_by_role("master")
    }

    /// The ports of the nodes that are replicas now.
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes_by_role("slave")
    }

    fn nodes_by_role(&self, role: &str) -> Vec<u16> {
        let table = self
            .nodes
            .iter()
            .find_map(|n| self.ask(n.port, &["CLUSTER", "NODES"]))
            .expect("a live node");
        let mut ports: Vec<u16> = table
            .lines()
            .filter(|line| {
                let flags = line.split(' ').nth(2).unwrap_or("");
                flags.split(',').any(|f| f == role) && !flags.contains("fail")
            })
            .filter_map(|line| {
                let address = line.split(' ').nth(1)?;
                address.split('@').next()?.rsplit(':').next()?.parse().ok()
            })
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the primary serving `slot` now.
    pub fn owner_of(&self, slot: u16) -> u16 {
        let table = self
            .nodes
            .iter()
            .find_map(|n| self.ask(n.port, &["CLUSTER", "NODES"]))
            .expect("a live node");
        for line in table.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (low, high) = match range.split_once('-') {
                    Some((l, h)) => (l.parse().unwrap_or(u16::MAX), h.parse().unwrap_or(0)),
                    None => {
                        let one = range.parse().unwrap_or(u16::MAX);
                        (one, one)
                    }
                };
                if (low..=high).contains(&slot) {
                    let address = fields[1].split('@').next().expect("address");
                    return address
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .expect("port");
                }
            }
        }
        panic!("no primary serves slot {slot}: {table}")
    }

    /// The node id of the node on `port`.
    pub fn node_id(&self, port: u16) -> String {
        self.ask(port, &["CLUSTER", "MYID"]).expect("node answers")
    }

    /// Kills the node on `port` (SIGKILL, like a crash).
    pub fn kill(&self, port: u16) {
        let node = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        stop(node);
    }

    /// Waits until every live node says `cluster_state:ok` with every slot
    /// served and, when the cluster has replicas, every live replica is in
    /// sync with its primary.
    pub fn wait_until_healthy(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let live: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.watchdog.lock().expect("lock").is_some())
                .map(|n| n.port)
                .collect();
            let healthy = live.iter().all(|&port| {
                let info = self.ask(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                let replication = self.ask(port, &["INFO", "replication"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (!replication.contains("role:slave")
                        || replication.contains("master_link_status:up"))
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy within {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One command to one node through redis-cli; its output, trimmed, or
    /// `None` when the node does not answer.
    pub fn ask(&self, port: u16, words: &[&str]) -> Option<String> {
        let output = Command::new(cli())
            .arg("-p")
            .arg(port.to_string())
            .args(words)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// `redis-cli --cluster <words…>` against the node on `port`: whether it succeeded, and its output.
    pub fn cli_cluster(&self, words: &[&str]) -> (bool, String) {
        let port = self
            .nodes
            .iter()
            .find(|n| n.watchdog.lock().expect("lock").is_some())
            .expect("a live node")
            .port;
        let output = Command::new(cli())
            .arg("--cluster")
            .args(
                words
                    .iter()
                    .map(|w| w.replace("{node}", &format!("127.0.0.1:{port}"))),
            )
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

/// A free port between 10000 and 20000, so that its cluster bus port
/// (+10000) stays below Linux's ephemeral range too (see
/// [`super::free_port`]).
fn cluster_port() -> u16 {
    const LOW: u128 = 10_000;
    const HIGH: u128 = 20_000;
    for _ in 0..1_000 {
        let candidate = LOW + uuid::Uuid::new_v4().as_u128() % (HIGH - LOW);
        let port = u16::try_from(candidate).expect("below 20000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free local port between {LOW} and {HIGH}")
}

fn stop(node: &Node) {
    if let Some(mut child) = node.watchdog.lock().expect("watchdog lock").take() {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = child.wait();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            stop(node);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

fn cli() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}
