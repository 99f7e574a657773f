//! Redis implementations of [`RuntimeStore`] and [`RateLimiter`]: what a cluster's nodes share.
//!
//! **Connection.** [`RedisState`] holds one `ConnectionManager` (a multiplexed connection that reconnects by
//! itself after Redis restarts) and the key prefix; the store and the limiter are cheap handles on it. Every call
//! is bounded by a timeout (2 s by default), so while Redis is down requests fail with
//! [`StateError::Backend`] instead of hanging; the next call after Redis is back reconnects.
//!
//! **Keys** (`{prefix}` is configurable, e.g. `meet`):
//! - `{prefix}:m:{meetingId}` — one hash per meeting, one field per participant, index entry, dropped hand,
//!   moderator mute and announce-log entry, plus `meta`, `n` (participant count) and `v` (version); the field
//!   layout is in `codec.rs`.
//! - `{prefix}:ml:{meetingId}` — the meeting's change log: a list with, per write, the JSON array of the field
//!   names it set or deleted, trimmed to the last [`LOG_LEN`] writes.
//! - `{prefix}:meetings` — the set of meeting ids that have a hash (`held`, `totals`).
//! - `{prefix}:rl:{key}` — one sorted set per rate-limit key (see [`RedisRateLimiter`]).
//!
//! **Versions.** `v` is `{epoch}.{seq}`: the epoch is drawn at random when the hash is made (so a meeting removed
//! and made again never repeats a version: no ABA), `seq` counts the writes since. The log's last entry is always
//! the write that made `seq`, so a copy at `seq - k` needs exactly the log's last k entries.
//!
//! **`modify`** runs the closure on the meeting's state and writes only the fields whose value changed
//! (HSET/HDEL) in one Lua script that first checks the version is still the one the state was read at, bumps it
//! and appends the changed field names to the log (compare-and-set). On a conflict (another node wrote in between)
//! the copy catches up (below) and the closure reruns, up to [`MAX_ATTEMPTS`] conflicts with a small jittered
//! backoff, then fails with [`StateError::Backend`]. A node's own concurrent modifies of one meeting queue on a
//! local lock first, so conflicts only happen between nodes. This works on a multiplexed connection, which
//! WATCH/MULTI does not.
//!
//! **Per-node copy and catch-up.** Each store keeps the decoded state of the meetings it read or wrote, with its
//! version. `modify` starts from that copy without reading (the compare-and-set catches a stale one); when the
//! closure wants no write, the copy is confirmed first, since the closure's answer must hold on the current state.
//! `read`/`get` confirm the copy the same way. Confirming is one script (`CATCH_UP`): it answers "current", or —
//! when another node wrote since — the current value of every field named in the log entries after the copy's
//! version (the deleted ones as deleted), which the node applies to its copy in place. Only a copy more than
//! [`LOG_LEN`] writes behind, of another epoch, or missing changes to more than [`CATCH_UP_FIELDS`] fields is read
//! whole (HGETALL). A stale copy thus costs what changed, never a wrong answer. Copies go when this node removes
//! the meeting, when a read finds it gone, or after 5 idle minutes.
//!
//! **Costs.** A change to one participant writes that participant's field (and the index entries it touched),
//! `meta` only when a scalar changed, `n` only when the count changed, plus one log entry: no whole-meeting
//! rewrite. Another node learns of it by reading those fields only. Measured by `tests/redis_store.rs`: a raised
//! hand in a 1,000-member meeting of ~480 KiB sends Redis < 1 KiB; another node's copy catches up on it receiving
//! ~2 KiB (INFO's own ~1.5 KiB answer included), not the meeting. What still grows with the meeting is CPU on the
//! node: each `modify` clones its copy and compares the result field by field (no network; ~1 ms per modify at
//! 1,000 members in a release build, `one_participant_change_writes_only_its_field` prints it), and `get` clones it.
//! `totals` reads `n` of every meeting in one pipeline: O(meetings), for a metrics scrape; `held` is one SCARD.
//!
//! **Not retried:** a write whose answer was lost (timeout, connection drop) is reported as an error, never rerun,
//! since it may have been applied and the closure need not be idempotent across *committed* runs. Keys of one
//! meeting and the `meetings` set are touched by one script, so this needs a single Redis (or Sentinel), not
//! Redis Cluster (that would need hash tags in the key names).
//!
//! The log is only written by the write script and only read by the catch-up script; if it is lost (a Redis
//! restarted without its data keeps neither hash nor log) or trimmed, readers fall back to whole reads.

pub(crate) mod codec;
mod limiter;
mod store;

pub use limiter::RedisRateLimiter;
pub use store::RedisRuntimeStore;
pub use store::{CATCH_UP_FIELDS, LOG_LEN, MAX_ATTEMPTS};

use crate::StateError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Timeouts of the Redis connection.
#[derive(Clone, Copy, Debug)]
pub struct RedisOptions {
    /// The longest any one call may take, connecting included; past it the call fails with
    /// [`StateError::Backend`].
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
        }
    }
}

/// A connection to Redis and the key prefix, shared by [`RedisRuntimeStore`] and [`RedisRateLimiter`] (clone it:
/// clones share the connection).
#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connects to `url` (`redis://host:port/db`) and checks Redis answers (`PING`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StateError> {
        Self::connect_with(url, prefix, RedisOptions::default()).await
    }

    pub async fn connect_with(
        url: &str,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, StateError> {
        let s = Self::open(url, prefix, options)?;
        s.ping().await?;
        Ok(s)
    }

    /// Like [`RedisState::connect_with`] but without waiting for Redis: the connection is made by the first call
    /// (a node may start while Redis is still down; `/readyz` tells). Fails only on a malformed URL.
    pub fn open(url: &str, prefix: &str, options: RedisOptions) -> Result<Self, StateError> {
        let client = redis::Client::open(url)
            .map_err(|e| StateError::Backend(format!("redis url {url:?}: {e}")))?;
        // Each connection attempt and each answer is bounded well inside `timeout`; the manager retries a broken
        // connection a couple of times, then the next call starts again (so it recovers after a Redis restart).
        let part = options.timeout / 2;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(part))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StateError::Backend(format!("redis: {e}")))?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
            timeout: options.timeout,
        })
    }

    /// Whether Redis answers (`PING`), for `/readyz`.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        self.call("PING", async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// The meeting store on this connection.
    pub fn runtime_store(&self) -> RedisRuntimeStore {
        RedisRuntimeStore::new(self.clone())
    }

    /// The rate limiter on this connection.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.clone())
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = String::from(&*self.prefix);
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// Runs one Redis call under the timeout, mapping every failure to [`StateError::Backend`] naming `what`.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StateError::Backend(format!("redis {what}: {e}"))),
            Err(_) => Err(StateError::Backend(format!(
                "redis {what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}
