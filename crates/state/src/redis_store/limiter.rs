//! The exact sliding-log limiter of [`crate::LocalRateLimiter`], on Redis: one sorted set per key
//! (`{prefix}:rl:{key}`), member = one accepted event, score = its time in µs on the Redis server's clock.
//!
//! One Lua script per check drops the entries that left the window, counts the rest, adds the event when under the
//! limit and sets the key to expire one window after it (idle keys vanish by themselves, like the local sweep);
//! when over, it answers how long until the oldest entry leaves the window. The time is the server's (`TIME` in the
//! script; Redis 7 replicates a script's effects, not the script, so this is allowed), so nodes whose clocks
//! disagree still share one exact window.

use super::RedisState;
use crate::{Limit, RateLimiter, StateError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// KEYS[1] the key's sorted set; ARGV: window (µs), count, a unique member. Returns 0 when the event is accepted,
/// otherwise the wait in µs (at least 1 ms, as the local limiter). Numbers go to Redis through `%.0f`: Lua's
/// default number-to-string keeps 14 digits, and a time in µs has 16.
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
-- (now - window) itself has left: the local limiter drops an event once its age reaches the window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) < count then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000)))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = window
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
if wait < 1000 then wait = 1000 end
return wait
";

/// The cluster-wide [`RateLimiter`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisRateLimiter {
    state: RedisState,
    script: Arc<redis::Script>,
    /// Members must be unique within a key across nodes: a random id per limiter and a counter.
    node: u64,
    seq: Arc<AtomicU64>,
}

impl RedisRateLimiter {
    pub fn new(state: RedisState) -> Self {
        Self {
            state,
            script: Arc::new(redis::Script::new(CHECK)),
            node: rand::random(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Connects (see [`RedisState::connect`]).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StateError> {
        Ok(Self::new(RedisState::connect(url, prefix).await?))
    }

    /// Whether Redis answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.state.ping().await
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, StateError> {
        let window_us = u64::try_from(limit.window.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let member = format!(
            "{:016x}-{}",
            self.node,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = self.state.conn.clone();
        let mut inv = self.script.key(self.state.key(&["rl", key]));
        inv.arg(window_us).arg(limit.count).arg(member);
        let wait: u64 = self
            .state
            .call("rate-limit check", inv.invoke_async(&mut conn))
            .await?;
        Ok(match wait {
            0 => Ok(()),
            us => Err(Duration::from_micros(us)),
        })
    }
}
