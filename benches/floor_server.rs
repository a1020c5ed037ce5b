//! The floor under clickback's click redirect: what this machine's stack
//! (actix-web + redis-rs) costs before clickback does any work of its own.
//!
//! clickback's throughput targets (docs/PERFORMANCE.md) are stated against
//! this floor: clicks against "a 302 after one awaited Redis `SET`",
//! postbacks against "a 302 after two". This server answers exactly those,
//! with the same actix-web and redis-rs versions, worker count and
//! per-worker multiplexed connection as clickback, so that `benches/load.sh`
//! can show how much of a request's cost is the stack and how much is
//! clickback:
//!
//! - `MODE=bare`: a fixed 302, nothing else (actix-web's own cost);
//! - `MODE=write`: one `SET <key> <82-byte value> EX <ttl>` (the size of a
//!   click record), awaited, then the same 302 (actix-web + one Redis round
//!   trip, auto-pipelined with the other requests in flight);
//! - `MODE=write2`: two such `SET`s one after the other, each awaited, then
//!   the 302: the shape of a postback (look-up round trip, then the credit
//!   round trip), without the postback's work;
//! - `MODE=write_raw`: the one `SET` of `write`, sent instead through a
//!   minimal hand-written RESP pipeline (one socket per worker, a writer and
//!   a reader task, replies matched in order): what the floor would be
//!   without redis-rs' multiplexed connection, to weigh replacing it on the
//!   hot path. It understands only `+OK` and errors; not for production.
//!
//! Every path gets the same answer, so the load test drives it with the
//! click phase's own wrk script (same requests, same cost to wrk).
//!
//! Env: `MODE` (required), `LISTEN` (address, required), `REDIS_URL` (required),
//! `WORKERS` (actix workers, default: the CPUs), `KEY_PREFIX` (default
//! `floor`). Keys expire after 10 minutes. Runs only with `--bench`, so that
//! `cargo test --all-targets` does not start a server.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use actix_web::{http::header, web, App, HttpResponse, HttpServer};
use redis::aio::ConnectionManager;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

/// A click record's size on the wire, so the write moves as many bytes.
const VALUE: &str =
    "3|bench-offer|bench-aff|120210456789|ad7f3k2q|fb|||1795482748|Bq2xk9XcA7mJ0pQ4rS8tUvWy";
const TTL_SECS: u64 = 600;
const LOCATION: &str = "https://shop.example/landing?x=1";

/// Per worker: the worker's Redis connection and a counter for distinct keys.
struct WorkerState {
    redis: ConnectionManager,
    raw: Option<Rc<RawPipe>>,
    prefix: String,
    next: Cell<u64>,
}

/// The minimal RESP pipeline of `MODE=write_raw`: commands are appended to
/// one buffer that a writer task sends whenever it has anything; a reader
/// task answers the waiting requests in order, one reply line each.
struct RawPipe {
    out: RefCell<Vec<u8>>,
    waiters: RefCell<VecDeque<oneshot::Sender<Result<(), String>>>>,
    wake: Notify,
}

impl RawPipe {
    /// Connects to `addr` (host:port) and starts the worker's two tasks.
    async fn connect(addr: &str) -> std::io::Result<Rc<Self>> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let pipe = Rc::new(RawPipe {
            out: RefCell::new(Vec::with_capacity(64 * 1024)),
            waiters: RefCell::new(VecDeque::new()),
            wake: Notify::new(),
        });
        let sending = Rc::clone(&pipe);
        tokio::task::spawn_local(async move {
            let mut batch = Vec::with_capacity(64 * 1024);
            loop {
                if sending.out.borrow().is_empty() {
                    sending.wake.notified().await;
                    continue;
                }
                std::mem::swap(&mut batch, &mut *sending.out.borrow_mut());
                if writer.write_all(&batch).await.is_err() {
                    break;
                }
                batch.clear();
            }
        });
        let answering = Rc::clone(&pipe);
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut filled = 0;
            loop {
                match reader.read(&mut buf[filled..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
                let mut start = 0;
                while let Some(end) = buf[start..filled].windows(2).position(|w| w == b"\r\n") {
                    let line = &buf[start..start + end];
                    let reply = if line.first() == Some(&b'+') {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(line).into_owned())
                    };
                    if let Some(waiter) = answering.waiters.borrow_mut().pop_front() {
                        let _ = waiter.send(reply);
                    }
                    start += end + 2;
                }
                buf.copy_within(start..filled, 0);
                filled -= start;
            }
            // The socket is gone: fail whoever still waits.
            answering.waiters.borrow_mut().clear();
        });
        Ok(pipe)
    }

    /// `SET key value EX ttl`, awaited.
    async fn set(&self, key: &str, value: &str, ttl: u64) -> Result<(), String> {
        let (answer, answered) = oneshot::channel();
        {
            let mut out = self.out.borrow_mut();
            let ttl = ttl.to_string();
            let args = [
                &b"SET"[..],
                key.as_bytes(),
                value.as_bytes(),
                b"EX",
                ttl.as_bytes(),
            ];
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
            self.waiters.borrow_mut().push_back(answer);
        }
        self.wake.notify_one();
        answered.await.map_err(|_| "connection closed".to_owned())?
    }
}

fn redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, LOCATION))
        .finish()
}

async fn bare() -> HttpResponse {
    redirect()
}

impl WorkerState {
    /// A key no request of this worker has written yet.
    fn fresh_key(&self) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("{}:{:?}:{n}", self.prefix, std::thread::current().id())
    }
}

/// One awaited `SET` of a fresh key.
async fn set_one(state: &WorkerState) -> redis::RedisResult<()> {
    let key = state.fresh_key();
    let mut conn = state.redis.clone();
    redis::cmd("SET")
        .arg(&key)
        .arg(VALUE)
        .arg("EX")
        .arg(TTL_SECS)
        .query_async(&mut conn)
        .await
}

async fn write(state: web::Data<WorkerState>) -> HttpResponse {
    match set_one(&state).await {
        Ok(()) => redirect(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

async fn write_twice(state: web::Data<WorkerState>) -> HttpResponse {
    let reply = match set_one(&state).await {
        Ok(()) => set_one(&state).await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(()) => redirect(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

async fn write_raw(state: web::Data<WorkerState>) -> HttpResponse {
    let key = state.fresh_key();
    let Some(raw) = &state.raw else {
        return HttpResponse::ServiceUnavailable().body("no raw connection");
    };
    match raw.set(&key, VALUE, TTL_SECS).await {
        Ok(()) => redirect(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e),
    }
}

/// What the server answers with.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Write,
    WriteTwice,
    WriteRaw,
}

fn main() -> std::io::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("floor_server: a benchmark server; benches/load.sh starts it");
        return Ok(());
    }
    let listen = std::env::var("LISTEN").map_err(|_| std::io::Error::other("set LISTEN"))?;
    let redis_url =
        std::env::var("REDIS_URL").map_err(|_| std::io::Error::other("set REDIS_URL"))?;
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let prefix = std::env::var("KEY_PREFIX").unwrap_or_else(|_| "floor".into());
    let mode = match std::env::var("MODE").as_deref() {
        Ok("bare") => Mode::Bare,
        Ok("write") => Mode::Write,
        Ok("write2") => Mode::WriteTwice,
        Ok("write_raw") => Mode::WriteRaw,
        _ => {
            return Err(std::io::Error::other(
                "set MODE to bare, write, write2 or write_raw",
            ))
        }
    };
    // host:port of redis://host:port[/db] for the raw pipeline.
    let raw_addr = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let client = redis::Client::open(redis_url).map_err(std::io::Error::other)?;

    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let client = client.clone();
            let prefix = prefix.clone();
            let raw_addr = raw_addr.clone();
            App::new()
                .data_factory(move || {
                    let client = client.clone();
                    let prefix = prefix.clone();
                    let raw_addr = raw_addr.clone();
                    async move {
                        let redis = ConnectionManager::new(client)
                            .await
                            .map_err(std::io::Error::other)?;
                        let raw = match mode {
                            Mode::WriteRaw => Some(RawPipe::connect(&raw_addr).await?),
                            _ => None,
                        };
                        Ok::<_, std::io::Error>(WorkerState {
                            redis,
                            raw,
                            prefix,
                            next: Cell::new(0),
                        })
                    }
                })
                .default_service(match mode {
                    Mode::Bare => web::to(bare),
                    Mode::Write => web::to(write),
                    Mode::WriteTwice => web::to(write_twice),
                    Mode::WriteRaw => web::to(write_raw),
                })
        })
        .workers(workers)
        .backlog(4096)
        .bind(listen)?
        .run()
        .await
    })
}
