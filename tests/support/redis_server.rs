//! A private `redis-server` for tests: started on a free port, killed when
//! the handle is dropped or, for the shared one, when the test process exits.
//!
//! Set `REDIS_URL` to run the suite against an existing Redis instead (each
//! test still isolates itself under a random key prefix). Tests that kill and
//! restart Redis always start their own.

#![allow(dead_code)]

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

/// The Redis most tests share: `REDIS_URL` if set, else one private server
/// per test binary, started on first use.
pub fn shared_redis_url() -> String {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => SHARED.get_or_init(RedisServer::start).url(),
    }
}

/// A key prefix no other test uses.
pub fn random_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Deletes every key under `prefix` (tests clean up after themselves).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
    }
}
