//! A private `redis-server` for tests: started on a free port, killed when
//! the handle is dropped or, for the shared one, when the test process exits.
//!
//! Set `REDIS_URL` to run the suite against an existing Redis instead (each
//! test still isolates itself under a random key prefix). Tests that kill and
//! restart Redis always start their own.
//!
//! `CLICKBACK_TEST_BACKEND=cluster` runs the suites on a Redis Cluster
//! instead: [`shared_redis_url`] then answers the cluster's node list
//! (`host:port,host:port,…`, what `REDIS_CLUSTER_NODES` takes), and
//! [`open_store`], [`connect`] and [`delete_prefix`] take either form.

#![allow(dead_code)]

#[path = "redis_cluster.rs"]
pub mod redis_cluster;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A `redis-server` child process owned by the test.
pub struct RedisServer {
    port: u16,
    /// With persistence: the data directory, kept across [`RedisServer::restart`]
    /// (an append-only file fsynced on every write, as a durable deployment runs).
    data_dir: Option<std::path::PathBuf>,
    /// A shell that holds redis-server and kills it when its stdin closes,
    /// so not even a panicking or aborted test leaves a server behind.
    watchdog: Mutex<Option<Child>>,
}

/// A port nobody listens on, below Linux's ephemeral range (32768–60999):
/// a port from that range (what binding port 0 hands out) can be taken by
/// any outgoing connection between this check and redis-server's bind, or
/// while a test has the server stopped, and the server would not start.
fn free_port() -> u16 {
    const LOW: u128 = 20_000;
    const HIGH: u128 = 32_768;
    for _ in 0..1_000 {
        let candidate = LOW + uuid::Uuid::new_v4().as_u128() % (HIGH - LOW);
        let port = u16::try_from(candidate).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free local port between {LOW} and {HIGH}")
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

impl RedisServer {
    /// Starts a fresh server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        let server = Self {
            port: free_port(),
            data_dir: None,
            watchdog: Mutex::new(None),
        };
        server.launch();
        server
    }

    /// Starts a server that persists every write (`appendfsync always`), so
    /// that a kill and restart keeps every acknowledged write.
    pub fn start_persistent() -> Self {
        let dir =
            std::env::temp_dir().join(format!("clickback-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis data dir");
        let server = Self {
            port: free_port(),
            data_dir: Some(dir),
            watchdog: Mutex::new(None),
        };
        server.launch();
        server
    }

    fn launch(&self) {
        let persistence = match &self.data_dir {
            Some(dir) => format!(
                "--dir '{}' --appendonly yes --appendfsync always --save ''",
                dir.display()
            ),
            None => "--save '' --appendonly no".to_owned(),
        };
        let script = format!(
            "{} --port {} --bind 127.0.0.1 {persistence} --daemonize no --loglevel warning & pid=$!; read _; kill -9 $pid; wait $pid 2>/dev/null",
            binary(),
            self.port
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed (apt-get install redis-server) or REDIS_URL set",
            );
        *self.watchdog.lock().expect("watchdog lock") = Some(child);
        self.wait_until(true);
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: like a crash) and waits until the port is closed.
    pub fn stop(&self) {
        if let Some(mut child) = self.watchdog.lock().expect("watchdog lock").take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
        self.wait_until(false);
    }

    /// Starts the server again on the same port: empty, or with its data when persistent.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    fn wait_until(&self, up: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers_ping() != up {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come {}",
                self.port,
                if up { "up" } else { "down" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether the suites run on a Redis Cluster (`CLICKBACK_TEST_BACKEND=cluster`).
pub fn on_cluster() -> bool {
    std::env::var("CLICKBACK_TEST_BACKEND").is_ok_and(|b| b == "cluster")
}

/// The Redis most tests share: on a cluster, the shared cluster's node list;
/// else `REDIS_URL` if set, else one private server per test binary, started
/// on first use.
pub fn shared_redis_url() -> String {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    if on_cluster() {
        return redis_cluster::shared_cluster().nodes();
    }
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => SHARED.get_or_init(RedisServer::start).url(),
    }
}

/// Whether `target` is a cluster's node list rather than one Redis URL.
pub fn is_cluster(target: &str) -> bool {
    !target.starts_with("redis://") || target.contains(',')
}

/// The node URLs of a cluster target.
fn node_urls(target: &str) -> Vec<String> {
    target
        .split(',')
        .map(|node| {
            if node.contains("://") {
                node.to_owned()
            } else {
                format!("redis://{node}")
            }
        })
        .collect()
}

/// The environment variable that hands `target` to a clickback process:
/// `REDIS_CLUSTER_NODES` for a cluster, else `REDIS_URL`.
pub fn target_variable(target: &str) -> &'static str {
    if is_cluster(target) {
        "REDIS_CLUSTER_NODES"
    } else {
        "REDIS_URL"
    }
}

/// A store on `target` (a Redis URL or a cluster's node list).
pub fn open_store(
    target: &str,
    keys: clickback::store::keys::Keys,
    pool_size: usize,
    timeout: Duration,
) -> clickback::store::RedisStore {
    if is_cluster(target) {
        clickback::store::RedisStore::new_cluster(&node_urls(target), keys, timeout)
            .expect("valid cluster nodes")
    } else {
        clickback::store::RedisStore::new(target, keys, pool_size, timeout)
            .expect("valid redis url")
    }
}

/// A synchronous connection to one Redis or to a cluster, for looking
/// inside: on a cluster each command goes to its key's node, and `KEYS` asks
/// every primary.
pub enum Inspector {
    /// One Redis.
    Single(redis::Connection),
    /// A cluster.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl redis::ConnectionLike for Inspector {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Single(c) => c.req_command(cmd),
            Self::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Self::Single(c) => c.check_connection(),
            Self::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Single(c) => c.is_open(),
            Self::Cluster(c) => c.is_open(),
        }
    }
}

/// A synchronous connection to `target` (a Redis URL or a cluster's node list).
pub fn connect(target: &str) -> redis::RedisResult<Inspector> {
    if is_cluster(target) {
        let client = redis::cluster::ClusterClient::builder(node_urls(target))
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Inspector::Cluster(Box::new(client.get_connection()?)))
    } else {
        let client = redis::Client::open(target)?;
        Ok(Inspector::Single(
            client.get_connection_with_timeout(Duration::from_secs(1))?,
        ))
    }
}

/// A key prefix no other test uses.
pub fn random_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Deletes every key under `prefix` (tests clean up after themselves).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(mut conn) = connect(url) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap_or_default();
    if let Inspector::Cluster(conn) = &mut conn {
        // One key per command: a cluster takes no DEL over several slots.
        let mut pipe = redis::cluster::cluster_pipe();
        for key in &keys {
            pipe.del(key).ignore();
        }
        let _: Result<(), _> = pipe.query(conn.as_mut());
        return;
    }
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
    }
}
