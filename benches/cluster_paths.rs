//! The click write on a Redis Cluster: one multiplexed cluster connection
//! against a deadpool pool of cluster connections ("measure, don't guess").
//!
//! Every variant writes a click the way `RedisStore` does on a cluster: one
//! `EVALSHA` of `src/store/scripts/slot_batch.lua` carrying the click's
//! commands (the duplicate marker's `SET NX EX`, the record's `HSET` into
//! its hour bucket, the bucket's `EXPIRE NX` and the click counter's
//! `HINCRBY`), all under the click's shard tag `{S}`. `TASKS` concurrent
//! tokio tasks (64, like `wrk -c64`) write clicks back to back for `SECS`
//! seconds; the program prints clicks/s and per-click latency.
//!
//! Variants:
//! - `mux`: one `cluster_async::ClusterConnection` cloned into every task
//!   (what the store does: one per runtime);
//! - `pool16`, `pool64`: a `deadpool_redis::cluster` pool of 16 / 64 cluster
//!   connections, one checked out per click;
//! - `mux_pipe`: `mux` with the commands as a plain one-slot pipeline
//!   instead of the script: what the script costs (a pipeline is not safe
//!   during a slot migration, `src/store/redis/slots.rs`).
//!
//! Needs a cluster it may write to: `CLUSTER_NODES` (`host:port,…`;
//! `benches/cluster_paths.sh` starts one). Env: `SECS` (default 5),
//! `TASKS` (64), `THREADS` (tokio worker threads, 1), `ONLY`, `ROUNDS`
//! (repeat every variant, interleaved, and print medians; 1).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickback::domain::ClickId;

/// The store's per-slot batch script.
const SLOT_BATCH: &str = include_str!("../src/store/scripts/slot_batch.lua");
/// A stored click's size, as `benches/memory.sh` measures them (~75 bytes).
const VALUE: &str = "3\x001763900000\x002592000\x00summer-sale\x00aff_42\x00120210456789\x00ad_7f3k2q\x00\x00\x00\x00fb\x00x3Kq9vTz0aB";

/// One round of a variant: clicks/s, p50 ms, p99 ms, errors.
type Row = (f64, f64, f64, usize);

enum Path {
    Mux(redis::cluster_async::ClusterConnection, bool),
    Pool(deadpool_redis::cluster::Pool),
}

/// The commands of one click, as the store sends them.
fn click_commands(prefix: &str, n: u64) -> redis::Pipeline {
    let id = ClickId::generate();
    let shard = id.shard();
    let bucket = format!("{prefix}:{{{shard}}}:c:{}", &id.as_str()[1..7]);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(format!(
            "{prefix}:{{{shard}}}:u:o|a|{}",
            &id.as_str()[7..18]
        ))
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(86_400)
        .hset(&bucket, &id.as_str()[7..], VALUE)
        .cmd("EXPIRE")
        .arg(&bucket)
        .arg(600)
        .arg("NX")
        .hincr(
            format!("{prefix}:{{{shard}}}:st:20260101"),
            format!("o|a|clk{}", n % 2),
            1,
        );
    pipe
}

/// The click's commands as one call of the slot batch script.
fn as_script(pipe: &redis::Pipeline) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(SLOT_BATCH));
    let mut invocation = SCRIPT.prepare_invoke();
    let mut keys = Vec::new();
    for cmd in pipe.cmd_iter() {
        let words: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(w) => Some(w.to_vec()),
                _ => None,
            })
            .collect();
        if !keys.contains(&words[1]) {
            keys.push(words[1].clone());
        }
        invocation.arg(words.len());
        for word in words {
            invocation.arg(word);
        }
    }
    for key in keys {
        invocation.key(key);
    }
    invocation
}

async fn write(path: &Path, prefix: &str, n: u64) -> redis::RedisResult<()> {
    let pipe = click_commands(prefix, n);
    match path {
        Path::Mux(conn, false) => {
            let mut conn = conn.clone();
            as_script(&pipe)
                .invoke_async::<redis::Value>(&mut conn)
                .await?;
        }
        Path::Mux(conn, true) => {
            let mut conn = conn.clone();
            pipe.query_async::<redis::Value>(&mut conn).await?;
        }
        Path::Pool(pool) => {
            let mut conn = pool.get().await.map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "pool", e.to_string()))
            })?;
            as_script(&pipe)
                .invoke_async::<redis::Value>(&mut conn)
                .await?;
        }
    }
    Ok(())
}

async fn run(path: Arc<Path>, prefix: String, tasks: usize, secs: f64) -> (f64, Vec<u32>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (path, prefix, stop) = (Arc::clone(&path), prefix.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut lat, mut errors, mut n) = (Vec::new(), 0, t as u64 * 1_000_000);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t0 = Instant::now();
                    match write(&path, &prefix, n).await {
                        Ok(()) => lat.push(t0.elapsed().as_micros() as u32),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for h in handles {
        let (lat, e) = h.await.expect("task");
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / elapsed, all, errors)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let nodes: Vec<String> = std::env::var("CLUSTER_NODES")
        .expect("CLUSTER_NODES=host:port,… (benches/cluster_paths.sh starts a cluster)")
        .split(',')
        .map(|n| format!("redis://{n}"))
        .collect();
    let threads = env_or("THREADS", 1usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(nodes));
}

async fn bench(nodes: Vec<String>) {
    let secs = env_or("SECS", 5.0f64);
    let tasks = env_or("TASKS", 64usize);
    let rounds = env_or("ROUNDS", 1usize);
    let only = std::env::var("ONLY").unwrap_or_else(|_| "mux,pool16,pool64,mux_pipe".into());
    let prefix = format!("bench{}", std::process::id());
    let client = redis::cluster::ClusterClient::new(nodes.clone()).expect("cluster client");
    let mut results: Vec<(String, Vec<Row>)> = Vec::new();
    for _ in 0..rounds {
        for name in only.split(',') {
            let path = match name {
                "mux" | "mux_pipe" => Path::Mux(
                    client
                        .get_async_connection()
                        .await
                        .expect("cluster connection"),
                    name == "mux_pipe",
                ),
                "pool16" | "pool64" => {
                    let mut config = deadpool_redis::cluster::Config::from_urls(nodes.clone());
                    config.pool = Some(deadpool_redis::PoolConfig::new(if name == "pool16" {
                        16
                    } else {
                        64
                    }));
                    Path::Pool(
                        config
                            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                            .expect("pool"),
                    )
                }
                other => panic!("unknown variant {other}"),
            };
            let (rps, lat, errors) = run(Arc::new(path), prefix.clone(), tasks, secs).await;
            let row = (rps, percentile(&lat, 0.5), percentile(&lat, 0.99), errors);
            eprintln!(
                "{name}: {:.0} clicks/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                row.0, row.1, row.2, row.3
            );
            match results.iter_mut().find(|(n, _)| n == name) {
                Some((_, rows)) => rows.push(row),
                None => results.push((name.to_owned(), vec![row])),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    println!("| variant | clicks/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    for (name, mut rows) in results {
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rps, p50, p99, errors) = rows[rows.len() / 2];
        println!("| {name} | {rps:.0} | {p50:.2} | {p99:.2} | {errors} |");
    }
}
