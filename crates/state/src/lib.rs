//! What must be shared between server nodes: each meeting's runtime state (who is in it, hands, layout, spotlight,
//! screen share) and rate-limit counters.
//!
//! Two traits, each with an in-process implementation (`local`, the default, one node) and a Redis one
//! (`redis_store`, what a cluster's nodes share). The traits are async and keyed by meeting for that reason, and
//! `modify` takes an `FnMut` so the Redis implementation can rerun it under optimistic locking (compare-and-set).

pub mod local;
pub mod redis_store;
pub mod runtime;
pub mod tracked;

pub use local::{LocalRateLimiter, LocalRuntimeStore};
pub use redis_store::{RedisOptions, RedisRateLimiter, RedisRuntimeStore, RedisState};
pub use runtime::{
    MeetingRuntime, MutedKinds, RuntimeConsumer, RuntimeParticipant, RuntimeProducer,
    RuntimeRecording, ScreenShare,
};

use proto::MeetingId;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("shared state backend unavailable: {0}")]
    Backend(String),
}

/// The runtime state of every live meeting.
#[async_trait::async_trait]
pub trait RuntimeStore: Send + Sync + 'static {
    /// Runs `f` on the meeting's runtime state (created empty when missing) with exclusive access. `f` returns
    /// whether it changed anything (and must not change anything when it returns false): a store that writes back
    /// skips the write then. `f` may run more than once (optimistic retry); it must only compute, never do I/O.
    async fn modify(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError>;

    /// Runs `f` on the meeting's runtime state (or `None`) without copying it.
    async fn read(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(Option<&'r MeetingRuntime>) + Send),
    ) -> Result<(), StateError>;

    /// A copy of the meeting's runtime state, if it has one.
    async fn get(&self, meeting: &MeetingId) -> Result<Option<MeetingRuntime>, StateError>;

    /// Forgets a meeting.
    async fn remove(&self, meeting: &MeetingId) -> Result<(), StateError>;

    /// Forgets a meeting only if nobody is in it, it has not ended (an ended meeting stays as a tombstone for a
    /// while, so a join racing the end cannot recreate it) and it holds no dropped participant's raised hand (kept
    /// for the rejoin grace). Atomic with respect to `modify`.
    async fn remove_if_empty(&self, meeting: &MeetingId) -> Result<(), StateError>;

    /// How many meetings have runtime state (live meetings), and how many participants they hold.
    async fn totals(&self) -> Result<(usize, usize), StateError>;

    /// Every meeting that has runtime state (the cluster reaper's scan for a dead node's sessions).
    async fn meeting_ids(&self) -> Result<Vec<MeetingId>, StateError>;

    /// Whether the backend answers (readiness). In process it always does.
    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// How many meetings have runtime state at all: live ones, ended ones (tombstones) and empty ones kept for a
    /// dropped hand. An operator's leak check (`meet_meeting_states`).
    async fn held(&self) -> Result<usize, StateError>;
}

/// A limit: at most `count` events in any window of length `window` (sliding window, as the guide means it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub window: Duration,
}

/// Rate-limit counters keyed by a string (the domain uses `meeting/user/event`).
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one event under `key` if the limit allows it; otherwise returns how long until it would.
    async fn check(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, StateError>;
}
