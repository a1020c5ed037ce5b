//! Redis write-path comparison for the click hot path ("measure, don't guess").
//!
//! Every variant writes one click as one key,
//! `SET <prefix>:{S}:c:<id> <encoded click> EX <ttl>`, plus the click counter
//! `HINCRBY <prefix>:{S}:st:<day> <offer>|<aff>|clk 1`, both under the click's
//! hash tag, with values built by the library itself (`Keys`,
//! `ClickId::generate`, `Click::encode`). The server keeps clicks in hour
//! buckets instead (`HSET` + `EXPIRE`; `benches/memory.sh` measures them);
//! here every variant keeps one key per click so that they all compare on
//! the same writes. `TASKS` concurrent tokio tasks (64,
//! like `wrk -c64`) each write clicks back to back for `SECS` seconds; the
//! program prints clicks/s and per-click latency for each variant.
//!
//! Variants:
//! - `pool16_multi`, `pool64_multi`: deadpool-redis pool (16 / 64 connections),
//!   `MULTI; SET; HINCRBY; EXEC`;
//! - `pool16_pipe`, `pool64_pipe`: the same pool, a plain (non-atomic) pipeline;
//! - `mux_multi`, `mux_pipe`: one `MultiplexedConnection` cloned into every
//!   task (redis-rs pipelines concurrent requests on one socket);
//! - `mux_script`: one Lua script doing both writes, `EVALSHA` on the
//!   multiplexed connection;
//! - `mux4_multi`: four multiplexed connections, round-robin;
//! - `mux_batch`: explicit group commit: tasks hand clicks to one writer task
//!   that sends everything queued (up to 256 clicks) as one MULTI/EXEC;
//! - `pool64_dedup`, `mux_dedup`: the whole click in one Lua script that
//!   also sets a duplicate-visitor marker (`SET NX EX`) and a unique-click
//!   counter, all five commands inside Lua, on the pool / on one
//!   multiplexed connection;
//! - `mux_dedup_split`: the unconditional writes (record, click counter) as
//!   plain commands, only the duplicate decision (`SET NX EX` + unique
//!   counter) as a two-command script, all in one pipeline;
//! - `mux_dedup_plain`: the shape of the server's click write: the marker's
//!   `SET NX EX`, the record and the click counter as plain commands in one
//!   pipeline, no script (the server writes the unique count later, summed
//!   over many clicks; it is left out here).
//!
//! Needs a Redis it may write to: `REDIS_URL` (required; use a private,
//! throw-away server: `benches/redis_paths.sh` starts one). Keys are written
//! under a fresh prefix with a short TTL. Env: `SECS` (default 5), `TASKS`
//! (64), `THREADS` (tokio worker threads, default 1 = one actix worker),
//! `ONLY` (comma-separated variant names), `ROUNDS` (repeat every variant,
//! interleaved, and print medians; default 1), `FLUSH=1` (FLUSHALL before
//! each variant: only on a private server), `REDIS_PID` (the server's pid,
//! so that the `other` column can leave its CPU time out).
//!
//! Run: `benches/redis_paths.sh`, or
//! `REDIS_URL=redis://127.0.0.1:6390 cargo bench --bench redis_paths`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickback::domain::counter::Counter;
use clickback::domain::{Click, ClickId, Day};
use clickback::store::keys::{counter_field, Keys};
use tokio::sync::{mpsc, oneshot};

/// TTL of the benchmark's click keys: long enough to outlive the run, short
/// enough that a shared Redis cleans itself up.
const TTL_SECS: u64 = 600;
const BATCH_MAX: usize = 256;

static LUA_CLICK: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return 1
";

/// The whole click in Lua (one key per click): the click plus a
/// duplicate-visitor marker (`SET NX EX`) and a unique-click counter, every
/// command inside the script.
static LUA_CLICK_DEDUP: &str = r"
local unique = '1'
if ARGV[4] ~= '0' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
  unique = '0'
end
redis.call('SET', KEYS[1], ARGV[1] .. unique, 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'clk', 1)
if unique == '1' then
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'uclk', 1)
end
return tonumber(unique)
";
/// Only the duplicate decision as a script (marker and unique counter), run
/// inside the click's pipeline next to the plain writes of the record and
/// the click counter.
static LUA_UNIQUE_CLICK: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
";
/// Duplicate-click window of the dedup variants.
const DEDUP_WINDOW_SECS: u64 = 86_400;

/// One click's writes, as the server would issue them.
struct Write {
    click_key: String,
    value: String,
    stats_key: String,
    field: String,
    /// `<prefix>:{S}:u:<offer>|<aff>|<visitor>`, used by the dedup variants.
    marker_key: String,
    /// `<offer>|<aff>|`, the dedup script appends the metric.
    field_prefix: String,
}

#[derive(Clone)]
struct Maker {
    keys: Keys,
    prefix: String,
    template: Click,
    field: String,
    field_prefix: String,
}

/// The stored form of a click without the fields some versions of the record
/// append; read back with `Click::decode` so that this program does not
/// depend on `Click`'s field list.
const STORED_BASE: &str =
    "1\x001763900000\x00summer-sale\x00aff_42\x00120210456789\x00ad_7f3k2q\x00\x00\x00\x00fb\x00x3Kq9vTz0aB";

impl Maker {
    fn new(prefix: &str) -> Self {
        let id = ClickId::generate();
        let template = Click::decode(id.clone(), &format!("{STORED_BASE}\x001"))
            .or_else(|_| Click::decode(id, STORED_BASE))
            .expect("the template click decodes");
        let field = counter_field(
            template.offer_id.as_str(),
            template.aff_id.as_str(),
            Counter::Clicks,
        );
        let field_prefix = format!("{}|{}|", template.offer_id, template.aff_id);
        Self {
            keys: Keys::new(prefix),
            prefix: prefix.to_owned(),
            template,
            field,
            field_prefix,
        }
    }

    /// A realistic click: 12-digit campaign id, 8-char ad id, source `fb`.
    fn next(&self, n: u64) -> Write {
        let id = ClickId::generate();
        let now = clickback::domain::unix_now();
        let mut click = self.template.clone();
        click.id = id.clone();
        click.created_at = now;
        click.expires_at = now + 30 * 86_400;
        click.subs[0] = format!("{:012}", 120_210_000_000u64 + n % 1000);
        click.subs[1] = format!("ad{:06x}", n % 0xff_ffff);
        // Every click a distinct visitor: 11 base64url characters.
        let visitor_id = ClickId::generate();
        let visitor = &visitor_id.as_str()[..11];
        Write {
            // One key per click in every variant, so that they all compare
            // on the same writes (see the module doc).
            click_key: format!("{}:{{{}}}:c:{}", self.prefix, id.shard(), id.as_str()),
            value: click.encode(),
            stats_key: self.keys.stats(id.shard(), Day::from_unix(now)),
            field: self.field.clone(),
            marker_key: format!(
                "{}:{{{}}}:u:{}{visitor}",
                self.prefix,
                id.shard(),
                self.field_prefix
            ),
            field_prefix: self.field_prefix.clone(),
        }
    }
}

fn pipeline(w: &Write, atomic: bool) -> redis::Pipeline {
    let mut p = redis::pipe();
    if atomic {
        p.atomic();
    }
    p.set_ex(&w.click_key, &w.value, TTL_SECS)
        .ignore()
        .hincr(&w.stats_key, &w.field, 1)
        .ignore();
    p
}

/// How one variant writes one click.
#[derive(Clone)]
enum Path {
    Pool {
        pool: deadpool_redis::Pool,
        atomic: bool,
    },
    Mux {
        conns: Arc<Vec<redis::aio::MultiplexedConnection>>,
        next: Arc<AtomicUsize>,
        atomic: bool,
    },
    Script {
        conn: redis::aio::MultiplexedConnection,
        script: Arc<redis::Script>,
    },
    /// The dedup script, on the pool or on one multiplexed connection.
    DedupScript {
        pool: Option<deadpool_redis::Pool>,
        conn: Option<redis::aio::MultiplexedConnection>,
        script: Arc<redis::Script>,
    },
    Batch {
        tx: mpsc::Sender<(Write, oneshot::Sender<redis::RedisResult<()>>)>,
    },
    /// The marker, the record and the counter as plain commands.
    DedupPlain {
        conn: redis::aio::MultiplexedConnection,
    },
    /// Plain commands plus the duplicate decision as a script, one pipeline.
    DedupSplit {
        conn: redis::aio::MultiplexedConnection,
        script: Arc<redis::Script>,
    },
}

impl Path {
    async fn write(&self, w: Write) -> redis::RedisResult<()> {
        match self {
            Path::Pool { pool, atomic } => {
                let mut conn = pool.get().await.map_err(|e| {
                    redis::RedisError::from((redis::ErrorKind::Io, "pool", e.to_string()))
                })?;
                pipeline(&w, *atomic).query_async::<()>(&mut conn).await
            }
            Path::Mux {
                conns,
                next,
                atomic,
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % conns.len();
                let mut conn = conns[i].clone();
                pipeline(&w, *atomic).query_async::<()>(&mut conn).await
            }
            Path::Script { conn, script } => {
                let mut conn = conn.clone();
                script
                    .key(&w.click_key)
                    .key(&w.stats_key)
                    .arg(&w.value)
                    .arg(TTL_SECS)
                    .arg(&w.field)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map(|_| ())
            }
            Path::DedupScript { pool, conn, script } => {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&w.click_key)
                    .key(&w.stats_key)
                    .key(&w.marker_key)
                    .arg(&w.value)
                    .arg(TTL_SECS)
                    .arg(&w.field_prefix)
                    .arg(DEDUP_WINDOW_SECS);
                match (pool, conn) {
                    (Some(pool), _) => {
                        let mut c = pool.get().await.map_err(|e| {
                            redis::RedisError::from((redis::ErrorKind::Io, "pool", e.to_string()))
                        })?;
                        invocation.invoke_async::<i64>(&mut c).await.map(|_| ())
                    }
                    (None, Some(conn)) => {
                        let mut c = conn.clone();
                        invocation.invoke_async::<i64>(&mut c).await.map(|_| ())
                    }
                    (None, None) => unreachable!("a dedup path has a connection"),
                }
            }
            Path::DedupPlain { conn } => {
                let mut conn = conn.clone();
                let mut p = redis::pipe();
                p.cmd("SET")
                    .arg(&w.marker_key)
                    .arg("1")
                    .arg("NX")
                    .arg("EX")
                    .arg(DEDUP_WINDOW_SECS)
                    .ignore();
                p.set_ex(&w.click_key, &w.value, TTL_SECS)
                    .ignore()
                    .hincr(&w.stats_key, &w.field, 1)
                    .ignore();
                p.query_async::<()>(&mut conn).await
            }
            Path::DedupSplit { conn, script } => {
                let mut conn = conn.clone();
                let unique_field = format!("{}uclk", w.field_prefix);
                let mut p = pipeline(&w, false);
                p.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(2)
                    .arg(&w.marker_key)
                    .arg(&w.stats_key)
                    .arg(DEDUP_WINDOW_SECS)
                    .arg(&unique_field)
                    .ignore();
                // Loaded when the variant was set up (FLUSHALL keeps scripts).
                p.query_async::<()>(&mut conn).await
            }
            Path::Batch { tx } => {
                let (done, wait) = oneshot::channel();
                tx.send((w, done)).await.map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "batch writer gone"))
                })?;
                wait.await.map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "batch writer dropped"))
                })?
            }
        }
    }
}

/// The group-commit writer: everything queued goes out as one MULTI/EXEC.
async fn batch_writer(
    mut conn: redis::aio::MultiplexedConnection,
    mut rx: mpsc::Receiver<(Write, oneshot::Sender<redis::RedisResult<()>>)>,
    batches: Arc<AtomicUsize>,
) {
    let mut queued = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut queued, BATCH_MAX).await > 0 {
        let mut p = redis::pipe();
        p.atomic();
        for (w, _) in &queued {
            p.set_ex(&w.click_key, &w.value, TTL_SECS)
                .ignore()
                .hincr(&w.stats_key, &w.field, 1)
                .ignore();
        }
        let result = p.query_async::<()>(&mut conn).await;
        batches.fetch_add(1, Ordering::Relaxed);
        for (_, done) in queued.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

struct Outcome {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

async fn run(path: Path, maker: Maker, tasks: usize, secs: f64) -> (Outcome, Duration) {
    // Warm-up: connections opened, script loaded.
    for i in 0..tasks as u64 {
        path.write(maker.next(i)).await.expect("warm-up write");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (path, maker, stop) = (path.clone(), maker.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut out = Outcome {
                ok: 0,
                errors: 0,
                latencies_us: Vec::with_capacity(1 << 16),
            };
            let mut n = (t as u64) << 40;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let w = maker.next(n);
                let began = Instant::now();
                match path.write(w).await {
                    Ok(()) => {
                        out.ok += 1;
                        out.latencies_us
                            .push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Err(_) => out.errors += 1,
                }
            }
            out
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome {
        ok: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    for h in handles {
        let o = h.await.expect("task");
        total.ok += o.ok;
        total.errors += o.errors;
        total.latencies_us.extend(o.latencies_us);
    }
    (total, start.elapsed())
}

/// Busy and total jiffies of all CPUs (`/proc/stat`), or zeros elsewhere.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return (0, 0);
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    (busy, busy + v[3] + v[4])
}

/// utime + stime of a process (all threads), jiffies.
fn process_jiffies(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let f: Vec<u64> = after_comm
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if f.len() < 13 {
        return 0;
    }
    f[11] + f[12]
}

/// CPU use of this program and of the Redis server (`REDIS_PID`), to tell
/// how much of the machine other work took during a variant.
struct CpuProbe {
    busy: u64,
    total: u64,
    ours: u64,
}

impl CpuProbe {
    fn ours() -> u64 {
        let redis = std::env::var("REDIS_PID").unwrap_or_default();
        process_jiffies("self")
            + if redis.is_empty() {
                0
            } else {
                process_jiffies(&redis)
            }
    }

    fn start() -> Self {
        let ours = Self::ours();
        let (busy, total) = cpu_jiffies();
        Self { busy, total, ours }
    }

    /// Percent of all CPUs used by other processes since `start`.
    fn other_percent(&self) -> u64 {
        let (busy, total) = cpu_jiffies();
        let ours = Self::ours();
        let busy = busy.saturating_sub(self.busy);
        let mine = ours.saturating_sub(self.ours);
        busy.saturating_sub(mine) * 100 / total.saturating_sub(self.total).max(1)
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

async fn pool(url: &str, size: usize) -> deadpool_redis::Pool {
    let mut cfg = deadpool_redis::Config::from_url(url);
    cfg.pool = Some(deadpool_redis::PoolConfig {
        max_size: size,
        ..Default::default()
    });
    cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("pool")
}

async fn mux(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    client
        .get_multiplexed_async_connection()
        .await
        .expect("multiplexed connection")
}

async fn bench(url: String) {
    let secs: f64 = env_or("SECS", 5.0);
    let tasks: usize = env_or("TASKS", 64);
    let only: Vec<String> = std::env::var("ONLY")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
    let prefix = format!("rpb{}", std::process::id());
    let maker = Maker::new(&prefix);

    let names = [
        "pool16_multi",
        "pool64_multi",
        "pool16_pipe",
        "pool64_pipe",
        "mux_multi",
        "mux_pipe",
        "mux_script",
        "mux4_multi",
        "mux_batch",
        "pool64_dedup",
        "mux_dedup",
        "mux_dedup_split",
        "mux_dedup_plain",
    ];
    let rounds: usize = env_or("ROUNDS", 1).max(1);
    let flush = std::env::var("FLUSH").is_ok_and(|v| v == "1");
    // FLUSHALL of a few million keys takes longer than the default reply timeout.
    let mut admin = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(120))),
        )
        .await
        .expect("admin connection");
    println!(
        "redis write paths: {tasks} tasks, {secs} s per variant, {rounds} round(s), \
         click = SET EX + HINCRBY under one hash tag{}",
        if flush { ", FLUSHALL before each" } else { "" }
    );
    println!(
        "{:<14} {:>11} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "variant", "clicks/s", "p50 ms", "p99 ms", "max ms", "errors", "other"
    );
    println!("(other = share of all CPUs that other processes used during the variant)");
    let selected: Vec<&str> = names
        .into_iter()
        .filter(|name| only.is_empty() || only.iter().any(|o| o == name))
        .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); selected.len()];
    for round in 0..rounds {
        if rounds > 1 {
            println!("-- round {}", round + 1);
        }
        for (v, name) in selected.iter().copied().enumerate() {
            if flush {
                // A private server (FLUSH=1 is set by redis_paths.sh): every
                // variant starts from an empty keyspace.
                redis::cmd("FLUSHALL")
                    .query_async::<()>(&mut admin)
                    .await
                    .expect("FLUSHALL");
            }
            let batches = Arc::new(AtomicUsize::new(0));
            let path = make_path(name, &url, &client, &batches).await;
            let probe = CpuProbe::start();
            let (mut out, elapsed) = run(path, maker.clone(), tasks, secs).await;
            let other = probe.other_percent();
            out.latencies_us.sort_unstable();
            let rate = out.ok as f64 / elapsed.as_secs_f64();
            rates[v].push(rate);
            let extra = match batches.load(Ordering::Relaxed) {
                0 => String::new(),
                b => format!("  (mean batch {:.1} clicks)", out.ok as f64 / b as f64),
            };
            println!(
                "{:<14} {:>11.0} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>6}{extra}",
                name,
                rate,
                percentile(&out.latencies_us, 0.50),
                percentile(&out.latencies_us, 0.99),
                percentile(&out.latencies_us, 1.0),
                out.errors,
                format!("{other}%"),
            );
            // Let Redis settle (and pools drop) between variants.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    if rounds > 1 {
        println!("-- median of {rounds} rounds (min..max)");
        for (v, name) in selected.iter().enumerate() {
            let r = &mut rates[v];
            r.sort_by(f64::total_cmp);
            let median = if r.len() % 2 == 1 {
                r[r.len() / 2]
            } else {
                (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
            };
            println!(
                "{:<14} {:>11.0}   ({:.0}..{:.0})",
                name,
                median,
                r[0],
                r[r.len() - 1]
            );
        }
    }
}

async fn make_path(
    name: &str,
    url: &str,
    client: &redis::Client,
    batches: &Arc<AtomicUsize>,
) -> Path {
    match name {
        "pool16_multi" => Path::Pool {
            pool: pool(url, 16).await,
            atomic: true,
        },
        "pool64_multi" => Path::Pool {
            pool: pool(url, 64).await,
            atomic: true,
        },
        "pool16_pipe" => Path::Pool {
            pool: pool(url, 16).await,
            atomic: false,
        },
        "pool64_pipe" => Path::Pool {
            pool: pool(url, 64).await,
            atomic: false,
        },
        "mux_multi" | "mux_pipe" => Path::Mux {
            conns: Arc::new(vec![mux(client).await]),
            next: Arc::new(AtomicUsize::new(0)),
            atomic: name == "mux_multi",
        },
        "mux4_multi" => {
            let mut conns = Vec::new();
            for _ in 0..4 {
                conns.push(mux(client).await);
            }
            Path::Mux {
                conns: Arc::new(conns),
                next: Arc::new(AtomicUsize::new(0)),
                atomic: true,
            }
        }
        "mux_script" => Path::Script {
            conn: mux(client).await,
            script: Arc::new(redis::Script::new(LUA_CLICK)),
        },
        "pool64_dedup" => Path::DedupScript {
            pool: Some(pool(url, 64).await),
            conn: None,
            script: Arc::new(redis::Script::new(LUA_CLICK_DEDUP)),
        },
        "mux_dedup" => Path::DedupScript {
            pool: None,
            conn: Some(mux(client).await),
            script: Arc::new(redis::Script::new(LUA_CLICK_DEDUP)),
        },
        "mux_dedup_plain" => Path::DedupPlain {
            conn: mux(client).await,
        },
        "mux_dedup_split" => {
            let mut conn = mux(client).await;
            let script = redis::Script::new(LUA_UNIQUE_CLICK);
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .expect("SCRIPT LOAD");
            Path::DedupSplit {
                conn,
                script: Arc::new(script),
            }
        }
        "mux_batch" => {
            let (tx, rx) = mpsc::channel(4 * BATCH_MAX);
            tokio::spawn(batch_writer(mux(client).await, rx, batches.clone()));
            Path::Batch { tx }
        }
        other => panic!("unknown variant {other}"),
    }
}

fn main() {
    // `cargo bench` (and benches/redis_paths.sh) pass `--bench`; `cargo test
    // --all-targets` runs this binary without it, and must not load a Redis
    // that happens to be named by REDIS_URL for the tests.
    if !std::env::args().any(|a| a == "--bench") {
        println!("redis_paths: a benchmark; run it with `cargo bench --bench redis_paths` or benches/redis_paths.sh");
        return;
    }
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("redis_paths: set REDIS_URL to a throw-away Redis (benches/redis_paths.sh starts one); skipping");
        return;
    };
    let threads: usize = env_or("THREADS", 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(url));
}
