//! The floor under clickback's click redirect: what this machine's stack
//! (actix-web + redis-rs) costs before clickback does any work of its own.
//!
//! Issue #3 measures clicks against nginx's fixed `return 302` and calls the
//! limit "a bare HTTP 302 plus one pipelined Redis write". This server
//! answers exactly those two, with the same actix-web and redis-rs versions,
//! worker count and per-worker multiplexed connection as clickback, so that
//! `benches/load.sh` can show how much of the gap to nginx is the stack and
//! how much is clickback:
//!
//! - `MODE=bare`: a fixed 302, nothing else (actix-web's own cost);
//! - `MODE=write`: one `SET <key> <82-byte value> EX <ttl>` (the size of a
//!   click record), awaited, then the same 302 (actix-web + one Redis round
//!   trip, auto-pipelined with the other requests in flight);
//! - `MODE=write2`: two such `SET`s one after the other, each awaited, then
//!   the 302: the shape of a postback (look-up round trip, then the credit
//!   round trip), without the postback's work.
//!
//! Every path gets the same answer, so the load test drives it with the
//! click phase's own wrk script (same requests, same cost to wrk).
//!
//! Env: `MODE` (required), `LISTEN` (address, required), `REDIS_URL` (required),
//! `WORKERS` (actix workers, default: the CPUs), `KEY_PREFIX` (default
//! `floor`). Keys expire after 10 minutes. Runs only with `--bench`, so that
//! `cargo test --all-targets` does not start a server.

use std::cell::Cell;

use actix_web::{http::header, web, App, HttpResponse, HttpServer};
use redis::aio::ConnectionManager;

/// A click record's size on the wire, so the write moves as many bytes.
const VALUE: &str =
    "3|bench-offer|bench-aff|120210456789|ad7f3k2q|fb|||1795482748|Bq2xk9XcA7mJ0pQ4rS8tUvWy";
const TTL_SECS: u64 = 600;
const LOCATION: &str = "https://shop.example/landing?x=1";

/// Per worker: the worker's Redis connection and a counter for distinct keys.
struct WorkerState {
    redis: ConnectionManager,
    prefix: String,
    next: Cell<u64>,
}

fn redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, LOCATION))
        .finish()
}

async fn bare() -> HttpResponse {
    redirect()
}

/// One awaited `SET` of a fresh key.
async fn set_one(state: &WorkerState) -> redis::RedisResult<()> {
    let n = state.next.get();
    state.next.set(n + 1);
    let key = format!("{}:{:?}:{n}", state.prefix, std::thread::current().id());
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

/// What the server answers with.
#[derive(Clone, Copy)]
enum Mode {
    Bare,
    Write,
    WriteTwice,
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
        _ => return Err(std::io::Error::other("set MODE to bare, write or write2")),
    };
    let client = redis::Client::open(redis_url).map_err(std::io::Error::other)?;

    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let client = client.clone();
            let prefix = prefix.clone();
            App::new()
                .data_factory(move || {
                    let client = client.clone();
                    let prefix = prefix.clone();
                    async move {
                        let redis = ConnectionManager::new(client).await?;
                        Ok::<_, redis::RedisError>(WorkerState {
                            redis,
                            prefix,
                            next: Cell::new(0),
                        })
                    }
                })
                .default_service(match mode {
                    Mode::Bare => web::to(bare),
                    Mode::Write => web::to(write),
                    Mode::WriteTwice => web::to(write_twice),
                })
        })
        .workers(workers)
        .backlog(4096)
        .bind(listen)?
        .run()
        .await
    })
}
