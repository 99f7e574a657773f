//! What the domain needs of the world, behind traits (as `state` already is): persistence ([`MeetingStore`],
//! implemented by `store::Store`) and the media plane ([`MediaPlane`], implemented by `media::MediaEngine`). The
//! domain's rules are then unit-tested with in-memory implementations: no database, no UDP (`testkit`).

use proto::{MeetingId, MessageId, ParticipantId, RecordingId, Role, UserId};
use std::time::Instant;
use store::{ChatRecord, MeetingRecord, RecordingRecord, RecordingStatus, StatsRecord, Viewer};

pub use media::MediaError;

/// Cluster mode (issue 9 item 4): a meeting's media lives on one node, its media home; a node whose socket makes a
/// media request for a meeting homed elsewhere has the home node run it. Implemented by the signaling edge over an
/// authenticated node-to-node HTTP call.
#[async_trait::async_trait]
pub trait MediaRemote: Send + Sync + 'static {
    /// Runs the media request `event` with `payload` on `node` for this session. What comes back is the ack's reply
    /// and every event the request caused, in order, for the requester's node to deliver (delivering the others'
    /// events on the home would let them overtake the requester's: the guide's client matches `subscribed` to its
    /// `consume` by order, and the next paced `new-producer` must come after it).
    async fn request(
        &self,
        node: &str,
        session: &crate::Session,
        event: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<RemoteReply, proto::WireError>;

    /// The node a meeting's media should live on, for a meeting that has no media home yet: the least loaded live
    /// node that is not stopping (`mine` when that cannot be learned).
    async fn pick_home(&self, mine: &str) -> String {
        mine.to_owned()
    }

    /// Closes a participant's transports on `node` (the participant left); the home node delivers what that
    /// causes (`consumer-closed` to the consumers' owners).
    async fn release(
        &self,
        node: &str,
        meeting: &MeetingId,
        participant: &state::RuntimeParticipant,
        reason: &str,
    ) -> Result<(), proto::WireError>;
}

/// What a media request run on the meeting's media home answers.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteReply {
    /// Extra fields of the `{ok: true, …}` ack.
    pub reply: serde_json::Value,
    /// The events, in order: (addressees, event name, payload).
    pub emits: Vec<(crate::Target, String, serde_json::Value)>,
}

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
    async fn insert_recording(&self, rec: &RecordingRecord) -> store::Result<()>;
    async fn get_recording(&self, id: &RecordingId) -> store::Result<Option<RecordingRecord>>;
    async fn recordings_of(&self, meeting: &MeetingId) -> store::Result<Vec<RecordingRecord>>;
    /// `recording` → `processing`; false when it was not `recording`.
    async fn stop_recording(
        &self,
        id: &RecordingId,
        at: i64,
        duration_ms: i64,
        reason: &str,
    ) -> store::Result<bool>;
    async fn set_recording_status(
        &self,
        id: &RecordingId,
        status: RecordingStatus,
        reason: Option<&str>,
        at: i64,
    ) -> store::Result<bool>;
    async fn delete_recording(&self, id: &RecordingId) -> store::Result<bool>;
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
    async fn insert_recording(&self, rec: &RecordingRecord) -> store::Result<()> {
        store::Store::insert_recording(self, rec).await
    }
    async fn get_recording(&self, id: &RecordingId) -> store::Result<Option<RecordingRecord>> {
        store::Store::get_recording(self, id).await
    }
    async fn recordings_of(&self, meeting: &MeetingId) -> store::Result<Vec<RecordingRecord>> {
        store::Store::recordings_of(self, meeting).await
    }
    async fn stop_recording(
        &self,
        id: &RecordingId,
        at: i64,
        duration_ms: i64,
        reason: &str,
    ) -> store::Result<bool> {
        store::Store::stop_recording(self, id, at, duration_ms, reason).await
    }
    async fn set_recording_status(
        &self,
        id: &RecordingId,
        status: RecordingStatus,
        reason: Option<&str>,
        at: i64,
    ) -> store::Result<bool> {
        store::Store::set_recording_status(self, id, status, reason, at).await
    }
    async fn delete_recording(&self, id: &RecordingId) -> store::Result<bool> {
        store::Store::delete_recording(self, id).await
    }
}

/// Where recordings go (issue 10): the recorder of this node. Calls are cheap and never block (the recorder does
/// its work on its own threads); the service keeps the state machine, the stored rows and the events.
pub trait RecordingSink: Send + Sync + 'static {
    /// Why a new recording cannot start on this node now (concurrent recordings, free disk space), if it cannot.
    fn refuse_start(&self) -> Option<String>;
    /// A recording started (its row is stored, status `recording`); `media` runs its virtual subscribers.
    fn started(&self, rec: &store::RecordingRecord, media: std::sync::Arc<dyn MediaPlane>);
    /// A producer appeared in a meeting (recorded when the meeting is being recorded).
    fn producer_added(&self, meeting: &MeetingId, producer: &RecordedProducer);
    fn paused(&self, meeting: &MeetingId, at: i64);
    fn resumed(&self, meeting: &MeetingId, at: i64);
    /// A chat message everyone in the meeting could see.
    fn chat(&self, meeting: &MeetingId, msg: &ChatRecord);
    /// The recording stopped (its row is `processing`): the recorder finalizes its files and sets the final
    /// status (`ready` | `failed`).
    fn stopped(&self, rec: &store::RecordingRecord);
    /// The longest a recording may run (recorded time), if limited.
    fn max_duration_ms(&self) -> Option<u64>;
}

/// A producer to record, with who it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedProducer {
    pub producer_id: String,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    /// `audio` | `video`
    pub kind: String,
    /// `mic` | `camera` | `screen`
    pub source: String,
}

/// A unit of work on the media core that owns a router.
pub type MediaJob = Box<dyn FnOnce(&mut sfu::Core, Instant) + Send>;

/// The media plane the domain drives: runs a job on the [`sfu::Core`] that owns `router` and resolves once it ran.
/// Object-safe; `call` (on `dyn MediaPlane`) gives the job a result.
/// The media object a job is about: a meeting spread over several media workers (`media` crate, `placement.rs`)
/// has its recv transports and their consumers on other workers than its home, and a job runs on its object's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaAt<'a> {
    /// The meeting's home: its send transports and producers (and anything not listed here).
    Home,
    Transport(&'a str),
    Consumer(&'a str),
}

#[async_trait::async_trait]
pub trait MediaPlane: Send + Sync + 'static {
    async fn run(&self, router: &str, job: MediaJob) -> Result<(), MediaError>;

    /// Runs `job` on the core that has `at` (by default the router's: one core per meeting).
    async fn run_at(
        &self,
        router: &str,
        _at: MediaAt<'_>,
        job: MediaJob,
    ) -> Result<(), MediaError> {
        self.run(router, job).await
    }

    /// Creates a transport on the core the media plane places it on (by default the router's).
    async fn create_transport(
        &self,
        router: &str,
        direction: sfu::Direction,
    ) -> Result<Result<sfu::TransportInfo, sfu::SfuError>, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let r = router.to_owned();
        self.run(
            router,
            Box::new(move |core, now| {
                let _ = tx.send(core.create_transport(&r, direction, now));
            }),
        )
        .await?;
        rx.await.map_err(|_| MediaError::WorkerGone)
    }

    /// `consume` on the recv transport's core; a producer on another core is piped there first (by default
    /// the router's core has both).
    async fn consume(
        &self,
        router: &str,
        transport: &str,
        producer: &str,
        caps: sfu::RtpCapabilities,
    ) -> Result<Result<sfu::ConsumerInfo, sfu::SfuError>, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (t, p) = (transport.to_owned(), producer.to_owned());
        self.run(
            router,
            Box::new(move |core, _| {
                let _ = tx.send(core.consume(&t, &p, &caps));
            }),
        )
        .await?;
        rx.await.map_err(|_| MediaError::WorkerGone)
    }

    /// A transport, producer or consumer was closed: the media plane may forget where it was.
    fn forget(&self, _transports: &[String], _producers: &[String], _consumers: &[String]) {}
}

impl dyn MediaPlane {
    /// Runs `f` on the core that owns `router`, and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        router: &str,
        f: impl FnOnce(&mut sfu::Core, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        self.call_at(router, MediaAt::Home, f).await
    }

    /// Runs `f` on the core that has `at`, and returns its result.
    pub async fn call_at<R: Send + 'static>(
        &self,
        router: &str,
        at: MediaAt<'_>,
        f: impl FnOnce(&mut sfu::Core, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.run_at(
            router,
            at,
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

    async fn run_at(&self, router: &str, at: MediaAt<'_>, job: MediaJob) -> Result<(), MediaError> {
        let worker = match at {
            MediaAt::Home => self.home_worker(router),
            MediaAt::Transport(t) => self.transport_worker(router, t),
            MediaAt::Consumer(c) => self.consumer_worker(router, c),
        };
        self.call_on(worker, move |core, now| job(core, now)).await
    }

    async fn create_transport(
        &self,
        router: &str,
        direction: sfu::Direction,
    ) -> Result<Result<sfu::TransportInfo, sfu::SfuError>, MediaError> {
        media::MediaEngine::create_transport(self, router, direction).await
    }

    async fn consume(
        &self,
        router: &str,
        transport: &str,
        producer: &str,
        caps: sfu::RtpCapabilities,
    ) -> Result<Result<sfu::ConsumerInfo, sfu::SfuError>, MediaError> {
        media::MediaEngine::consume(self, router, transport, producer, caps).await
    }

    fn forget(&self, transports: &[String], producers: &[String], consumers: &[String]) {
        media::MediaEngine::forget(self, transports, producers, consumers);
    }
}
