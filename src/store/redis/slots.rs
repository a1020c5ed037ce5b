//! The per-slot splitter: how a pipeline runs on a Redis Cluster.
//!
//! The operations build plain `redis::pipe()` pipelines, some of them over
//! many slots (the stats read spans the 64 shards; the unique-count and
//! postback-log writers and the listings span whatever they hold). One Redis
//! takes any pipeline; a cluster client refuses one that spans slots. So on
//! a cluster connection ([`super::connection::Conn::Cluster`]) every
//! pipeline comes here: its commands are grouped by the slot of their key,
//! each group runs as one call of `scripts/slot_batch.lua` (all groups at
//! once), and the replies are put back in the pipeline's order, so the
//! operation reads them exactly as it would from one Redis.
//!
//! Why a script per slot rather than a pipeline per slot: a script is one
//! command, atomic on its node, that names its keys. During a slot
//! migration the node answers it as a whole (run, `ASK`, `TRYAGAIN`) and
//! the cluster client follows the answer; a multi-command pipeline would be
//! half run on the old node and retried whole on the new one, counting a
//! click twice. A `MULTI` pipeline takes the same path (its commands must
//! share one slot) and stays atomic.
//!
//! Cost: one call per slot touched. The stats read of a day touches its 64
//! shard slots: 64 script calls, sent together, at most a few per node per
//! round trip (docs/architecture.md, "Slots touched by each operation").

use std::sync::LazyLock;

use futures_util::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Arg, Cmd, ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind, Value};

/// `scripts/slot_batch.lua`: a slot's commands as one atomic call.
static SLOT_BATCH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/slot_batch.lua")));

/// Runs `pipeline` on a cluster, one atomic script call per slot it
/// touches, and answers what the pipeline would have: one reply per command
/// in order (for a `MULTI` pipeline, `EXEC`'s one array).
pub(super) async fn run_per_slot(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
) -> RedisResult<Vec<Value>> {
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let groups = group_by_slot(&commands)?;
    if pipeline.is_transaction() && groups.len() > 1 {
        return Err(RedisError::from((
            ServerErrorKind::CrossSlot.into(),
            "a MULTI pipeline spans slots",
        )));
    }
    let runs = groups.iter().map(|group| {
        let mut conn = conn.clone();
        let commands = &commands;
        async move { run_group(&mut conn, commands, group).await }
    });
    let answers = try_join_all(runs).await?;
    let mut replies = vec![Value::Nil; commands.len()];
    for (group, answer) in groups.iter().zip(answers) {
        if answer.len() != group.len() {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "the slot batch answered a reply count unlike its commands'",
            )));
        }
        for (&at, reply) in group.iter().zip(answer) {
            replies[at] = reply;
        }
    }
    Ok(if pipeline.is_transaction() {
        vec![Value::Array(replies)]
    } else {
        replies
    })
}

/// The commands' positions grouped by the slot of their key (each
/// clickback command names exactly one key, its first argument), groups in
/// order of first appearance.
fn group_by_slot(commands: &[&Cmd]) -> RedisResult<Vec<Vec<usize>>> {
    let mut slots: Vec<Slot> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (at, cmd) in commands.iter().enumerate() {
        let slot = Slot::for_key(key_of(cmd)?);
        match slots.iter().position(|s| *s == slot) {
            Some(i) => groups[i].push(at),
            None => {
                slots.push(slot);
                groups.push(vec![at]);
            }
        }
    }
    Ok(groups)
}

/// The key a command touches: its first argument after the name.
fn key_of(cmd: &Cmd) -> RedisResult<&[u8]> {
    match cmd.args_iter().nth(1) {
        Some(Arg::Simple(key)) => Ok(key),
        _ => Err(RedisError::from((
            ErrorKind::Client,
            "a pipelined command without a key cannot be routed on a cluster",
        ))),
    }
}

/// Runs the commands at `positions` as one call of the slot batch script
/// (`EVALSHA`, or `EVAL` once when the node does not know it yet, as after
/// a failover); its reply array, errors left in place.
async fn run_group(
    conn: &mut ClusterConnection,
    commands: &[&Cmd],
    positions: &[usize],
) -> RedisResult<Vec<Value>> {
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut words = 0;
    for &at in positions {
        let key = key_of(commands[at])?;
        if !keys.contains(&key) {
            keys.push(key);
        }
        words += commands[at].args_iter().len() + 1;
    }
    let call = |name: &str, script: &str| {
        let mut call = redis::cmd(name);
        call.arg(script).arg(keys.len()).arg(&keys[..]);
        let mut argv: Vec<&[u8]> = Vec::with_capacity(words);
        let mut counts: Vec<String> = Vec::with_capacity(positions.len());
        for &at in positions {
            counts.push(commands[at].args_iter().len().to_string());
        }
        for (&at, count) in positions.iter().zip(&counts) {
            argv.push(count.as_bytes());
            for arg in commands[at].args_iter() {
                if let Arg::Simple(word) = arg {
                    argv.push(word);
                }
            }
        }
        call.arg(argv);
        call
    };
    let answer = match conn
        .req_packed_command(&call("EVALSHA", SLOT_BATCH.get_hash()))
        .await
    {
        Ok(Value::ServerError(e)) if e.kind() == Some(ServerErrorKind::NoScript) => {
            conn.req_packed_command(&call("EVAL", include_str!("../scripts/slot_batch.lua")))
                .await?
        }
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            conn.req_packed_command(&call("EVAL", include_str!("../scripts/slot_batch.lua")))
                .await?
        }
        other => other?,
    };
    match answer {
        Value::Array(replies) => Ok(replies),
        Value::ServerError(e) => Err(e.into()),
        _ => Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "the slot batch answered no array",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_grouped_by_the_slot_of_their_key_in_pipeline_order() {
        let mut pipe = redis::pipe();
        pipe.hincr("cb:{a}:st:1", "f", 1)
            .hgetall("cb:{b}:st:1")
            .lpush("cb:{a}:log", "x")
            .hgetall("cb:{b}:st:2");
        let commands: Vec<&Cmd> = pipe.cmd_iter().collect();

        let groups = group_by_slot(&commands).expect("every command names a key");

        assert_eq!(groups, vec![vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn a_pipelined_command_without_a_key_is_refused_rather_than_sent_anywhere() {
        let mut pipe = redis::pipe();
        pipe.hgetall("cb:{a}:st:1").cmd("PING");
        let commands: Vec<&Cmd> = pipe.cmd_iter().collect();

        let refused = group_by_slot(&commands).expect_err("PING names no key");

        assert_eq!(refused.kind(), ErrorKind::Client);
    }
}
