//! Graceful shutdown of the real `clickback` binary on SIGTERM, as an
//! orchestrator stops it: new connections are refused at once, requests in
//! flight get `CLICKBACK_SHUTDOWN_TIMEOUT_SECS` to finish, what they queued
//! for the background writers is written, and the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Long enough for a debug build on a busy machine to start or to stop.
const LIMIT: Duration = Duration::from_secs(30);

/// A `clickback` process on a free loopback port, killed when dropped.
pub(crate) struct Clickback {
    child: Child,
    pub(crate) port: u16,
    /// Every line it wrote to stderr so far, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl Clickback {
    /// Starts the binary with nothing from the caller's environment but
    /// `PATH`, `vars` on top, and waits until it names its port.
    pub(crate) fn start(vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clickback"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CLICKBACK_LISTEN", "127.0.0.1:0")
            .env("CLICKBACK_WORKERS", "2")
            .env("CLICKBACK_DEMO", "0")
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("clickback starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ports, port) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on port ").nth(1) {
                    let _ = ports.send(rest.trim().parse::<u16>().ok());
                }
                kept.lock().expect("log lock").push(line);
            }
        });
        let mut started = Self {
            child,
            port: 0,
            log,
        };
        match port.recv_timeout(LIMIT) {
            Ok(Some(port)) => started.port = port,
            _ => panic!("clickback named no port:\n{}", started.log()),
        }
        started
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Sends SIGTERM, as `docker stop` and Kubernetes do.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Its exit status, or `None` if it is still running after `limit`.
    async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for clickback") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a connection and proves it is being served (a keep-alive
    /// `/healthz` answered on it), so that shutdown counts it as in flight.
    async fn served_connection(&self) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to clickback");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: clickback\r\n\r\n")
            .await
            .expect("send /healthz");
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let read = tokio::time::timeout(LIMIT, stream.read(&mut buffer))
                .await
                .expect("/healthz answered in time")
                .expect("read /healthz");
            assert!(read > 0, "connection closed before /healthz answered");
            answer.extend_from_slice(&buffer[..read]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The health answer has a short fixed body; read it whole.
        if let Some(length) = content_length(&answer) {
            let body_read = answer.split("\r\n\r\n").nth(1).map_or(0, str::len);
            let mut rest = vec![0u8; length.saturating_sub(body_read)];
            stream.read_exact(&mut rest).await.expect("read the body");
        }
        stream
    }

    /// Whether a new connection to its port is refused.
    async fn refuses_connections(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).await.is_err()
    }
}

impl Drop for Clickback {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
        })
        .flatten()
}

/// Sends the head of `POST /postback` with `body` announced whole but only
/// its first half written: a request in flight, waiting for the rest. The
/// head asks `Expect: 100-continue`, and the half is sent once the server
/// answers `100 Continue`: the handler is then reading the body, so the
/// request is in flight for certain (not bytes the server has yet to read
/// when a test stops it).
async fn start_postback(stream: &mut TcpStream, body: &str) -> usize {
    let half = body.len() / 2;
    let head = format!(
        "POST /postback HTTP/1.1\r\nHost: clickback\r\nConnection: close\r\n\
         Expect: 100-continue\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len(),
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(LIMIT, stream.read(&mut byte))
            .await
            .expect("100 Continue in time")
            .expect("read");
        assert_eq!(read, 1, "connection closed before 100 Continue");
        seen.push(byte[0]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    stream
        .write_all(&body.as_bytes()[..half])
        .await
        .expect("send the first half");
    half
}

/// Writes the rest of the body and reads the answer to the end.
async fn finish_postback(stream: &mut TcpStream, rest: &str) -> (String, Value) {
    stream
        .write_all(rest.as_bytes())
        .await
        .expect("send the rest of the body");
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, body)
}

#[tokio::test]
async fn sigterm_refuses_new_connections_lets_a_request_in_flight_finish_and_exits_zero() {
    // Arrange: a postback whose body has half arrived; its click id is
    // malformed, so the answer shows that the whole body was read and judged.
    let mut clickback = Clickback::start(&[]);
    let mut stream = clickback.served_connection().await;
    let body = "click_id=not-a-click-id&token=some-token&txid=t1";
    let half = start_postback(&mut stream, body).await;

    // Act
    clickback.terminate();
    let refused = eventually(LIMIT, || async { clickback.refuses_connections().await }).await;
    let (status, answer) = finish_postback(&mut stream, &body[half..]).await;
    let exit = clickback.exit_within(LIMIT).await;

    // Assert
    let log = clickback.log();
    assert!(
        refused.is_some(),
        "new connections still accepted after SIGTERM:\n{log}"
    );
    assert!(
        status.starts_with("HTTP/1.1 400"),
        "{status} {answer}\n{log}"
    );
    assert_eq!(answer["reason"], "invalid_request", "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("click_id")),
        "{answer}"
    );
    let exit = exit.unwrap_or_else(|| panic!("still running after SIGTERM:\n{log}"));
    assert_eq!(exit.code(), Some(0), "{log}");
}

#[tokio::test]
async fn a_request_that_outlasts_the_shutdown_timeout_is_cut_and_the_process_exits() {
    // Arrange: a body that never finishes, on a server that would wait a
    // minute for it but gives shutdown one second.
    let mut clickback = Clickback::start(&[
        ("CLICKBACK_SHUTDOWN_TIMEOUT_SECS", "1"),
        ("CLICKBACK_BODY_TIMEOUT_MS", "60000"),
    ]);
    let mut stream = clickback.served_connection().await;
    start_postback(&mut stream, "click_id=never-finished&token=t&txid=t1").await;

    // Act
    let terminated = Instant::now();
    clickback.terminate();
    let exit = clickback.exit_within(LIMIT).await;
    let took = terminated.elapsed();

    // Assert: well before the default timeout of 10 s, and the connection closed.
    let log = clickback.log();
    assert!(exit.is_some(), "still running after SIGTERM:\n{log}");
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} to stop with CLICKBACK_SHUTDOWN_TIMEOUT_SECS=1:\n{log}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the cut connection was left open");
}

#[tokio::test]
async fn a_postback_answered_during_shutdown_is_credited_and_logged_before_the_process_exits() {
    // Arrange: an offer and an affiliate in Redis, a clickback on them, a
    // click through it, and the click's postback half sent.
    let admin = spawn_app().await;
    admin.with_offer_and_affiliate().await;
    let Backend::Redis { url, prefix } = admin.backend.clone() else {
        panic!("spawn_app runs on Redis")
    };
    let mut clickback = Clickback::start(&[
        (redis_server::target_variable(&url), &url),
        ("CLICKBACK_KEY_PREFIX", &prefix),
        ("CLICKBACK_HASH_SALT", "shutdown-test-salt"),
    ]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let redirect = client
        .get(format!(
            "http://127.0.0.1:{}/c/o1?aff_id=a1",
            clickback.port
        ))
        .send()
        .await
        .expect("click sent");
    assert_eq!(redirect.status(), 302, "{}", clickback.log());
    let click_id = click_id_from(&location(&redirect)).expect("a tracked click");
    let mut stream = clickback.served_connection().await;
    let body = format!("click_id={click_id}&token={OFFER_TOKEN}&txid=drained-1");
    let half = start_postback(&mut stream, &body).await;

    // Act
    clickback.terminate();
    let (status, answer) = finish_postback(&mut stream, &body[half..]).await;
    let exit = clickback.exit_within(LIMIT).await;

    // Assert: answered, and after the exit both the conversion and the
    // postback log entry (written in the background) are in Redis.
    let log = clickback.log();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{log}");
    assert_eq!(answer["status"], "credited", "{answer}");
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "{log}");
    let logged = ok_json(admin.admin_get("/api/v1/postbacks?offer_id=o1").await).await;
    let entries = logged["postbacks"].as_array().expect("postbacks");
    assert!(
        entries
            .iter()
            .any(|e| e["click_id"] == click_id.as_str() && e["outcome"] == "credited"),
        "the drained postback is not in the log: {logged}"
    );
    let totals = admin.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
}
