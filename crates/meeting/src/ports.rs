//! What the domain needs of the world, behind traits (as `state` already is): persistence ([`MeetingStore`],
//! implemented by `store::Store`) and the media plane ([`MediaPlane`], implemented by `media::MediaEngine`). The
//! domain's rules are then unit-tested with in-memory implementations: no database, no UDP (`testkit`).

use proto::{MeetingId, MessageId, ParticipantId, Role, UserId};
use std::time::Instant;
use store::{ChatRecord, MeetingRecord, StatsRecord, Viewer};

pub use media::MediaError;

/// The persistence the domain uses: the methods of `store::Store` it calls, with the same signatures.
#[async_trait::async_trait]
pub trait MeetingStore: Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> store::Result<()>;
    async fn insert_meeting(&self, m: &MeetingRecord) -> store::Result<()>;
    async fn get_meeting(&self, id: &MeetingId) -> store::Result<Option<MeetingRecord>>;
    /// Marks the meeting ended; false when it already was.
    async fn end_meeting(&self, id: &MeetingId, at: i64) -> store::Result<bool>;
    async fn set_role(&self, meeting: &MeetingId, user: &UserId, role: Role) -> store::Result<()>;
    async fn granted_role(&self, meeting: &MeetingId, user: &UserId)
        -> store::Result<Option<Role>>;
    async fn open_session(
        &self,
        id: &ParticipantId,
        meeting: &MeetingId,
        user: &UserId,
        user_name: &str,
        role: Role,
        at: i64,
    ) -> store::Result<()>;
    async fn close_session(&self, id: &ParticipantId, at: i64) -> store::Result<()>;
    async fn insert_message(&self, m: &ChatRecord) -> store::Result<()>;
    /// Up to `limit` messages `viewer` may see, older than `before` (when given), oldest first.
    async fn messages_visible(
        &self,
        meeting: &MeetingId,
        viewer: &Viewer<'_>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> store::Result<Vec<ChatRecord>>;
    async fn insert_stats(
        &self,
        meeting: &MeetingId,
        participant: &ParticipantId,
        user: &UserId,
        s: &StatsRecord,
        at: i64,
    ) -> store::Result<()>;
    async fn audit(
        &self,
        meeting: &MeetingId,
        actor: &UserId,
        action: &str,
        target: Option<&UserId>,
        detail: &str,
        at: i64,
    ) -> store::Result<()>;
}

#[async_trait::async_trait]
impl MeetingStore for store::Store {
    async fn ping(&self) -> store::Result<()> {
        store::Store::ping(self).await
    }
    async fn insert_meeting(&self, m: &MeetingRecord) -> store::Result<()> {
        store::Store::insert_meeting(self, m).await
    }
    async fn get_meeting(&self, id: &MeetingId) -> store::Result<Option<MeetingRecord>> {
        store::Store::get_meeting(self, id).await
    }
    async fn end_meeting(&self, id: &MeetingId, at: i64) -> store::Result<bool> {
        store::Store::end_meeting(self, id, at).await
    }
    async fn set_role(&self, meeting: &MeetingId, user: &UserId, role: Role) -> store::Result<()> {
        store::Store::set_role(self, meeting, user, role).await
    }
    async fn granted_role(
        &self,
        meeting: &MeetingId,
        user: &UserId,
    ) -> store::Result<Option<Role>> {
        store::Store::granted_role(self, meeting, user).await
    }
    async fn open_session(
        &self,
        id: &ParticipantId,
        meeting: &MeetingId,
        user: &UserId,
        user_name: &str,
        role: Role,
        at: i64,
    ) -> store::Result<()> {
        store::Store::open_session(self, id, meeting, user, user_name, role, at).await
    }
    async fn close_session(&self, id: &ParticipantId, at: i64) -> store::Result<()> {
        store::Store::close_session(self, id, at).await
    }
    async fn insert_message(&self, m: &ChatRecord) -> store::Result<()> {
        store::Store::insert_message(self, m).await
    }
    async fn messages_visible(
        &self,
        meeting: &MeetingId,
        viewer: &Viewer<'_>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> store::Result<Vec<ChatRecord>> {
        store::Store::messages_visible(self, meeting, viewer, before, limit).await
    }
    async fn insert_stats(
        &self,
        meeting: &MeetingId,
        participant: &ParticipantId,
        user: &UserId,
        s: &StatsRecord,
        at: i64,
    ) -> store::Result<()> {
        store::Store::insert_stats(self, meeting, participant, user, s, at).await
    }
    async fn audit(
        &self,
        meeting: &MeetingId,
        actor: &UserId,
        action: &str,
        target: Option<&UserId>,
        detail: &str,
        at: i64,
    ) -> store::Result<()> {
        store::Store::audit(self, meeting, actor, action, target, detail, at).await
    }
}

/// A unit of work on the media core that owns a router.
pub type MediaJob = Box<dyn FnOnce(&mut sfu::Core, Instant) + Send>;

/// The media plane the domain drives: runs a job on the [`sfu::Core`] that owns `router` and resolves once it ran.
/// Object-safe; `call` (on `dyn MediaPlane`) gives the job a result.
#[async_trait::async_trait]
pub trait MediaPlane: Send + Sync + 'static {
    async fn run(&self, router: &str, job: MediaJob) -> Result<(), MediaError>;
}

impl dyn MediaPlane {
    /// Runs `f` on the core that owns `router`, and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        router: &str,
        f: impl FnOnce(&mut sfu::Core, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.run(
            router,
            Box::new(move |core, now| {
                let _ = tx.send(f(core, now));
            }),
        )
        .await?;
        rx.await.map_err(|_| MediaError::WorkerGone)
    }
}

#[async_trait::async_trait]
impl MediaPlane for media::MediaEngine {
    async fn run(&self, router: &str, job: MediaJob) -> Result<(), MediaError> {
        self.call(router, move |core, now| job(core, now)).await
    }
}
