//! In-memory stand-ins for the domain's ports, for unit tests of its rules: a [`MemStore`] (no database) and a
//! [`TestMedia`] plane (one `sfu::Core`, no sockets), plus a small [`World`] to drive a [`MeetingService`].

use crate::ports::{MediaError, MediaJob, MediaPlane, MeetingStore};
use crate::{
    DomainConfig, Emit, Identity, MeetingService, NewMeeting, Outcome, Request, Session, Target,
};
use proto::{MeetingId, MessageId, ParticipantId, RecordingId, Role, UserId, WireError};
use serde_json::{json, Value};
use state::{LocalRateLimiter, LocalRuntimeStore, MeetingRuntime, RuntimeStore};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use store::{
    ChatRecord, MeetingRecord, MeetingStatus, RecipientType, RecordingRecord, RecordingStatus,
    StatsRecord, Viewer,
};

#[derive(Default)]
pub struct MemData {
    pub meetings: HashMap<MeetingId, MeetingRecord>,
    pub roles: HashMap<(MeetingId, UserId), Role>,
    /// participant → (meeting, user, left_at)
    pub sessions: HashMap<ParticipantId, (MeetingId, UserId, Option<i64>)>,
    pub messages: Vec<ChatRecord>,
    pub stats: Vec<(ParticipantId, StatsRecord)>,
    /// (actor, action, target, detail)
    pub audit: Vec<(String, String, Option<String>, String)>,
    pub recordings: Vec<RecordingRecord>,
}

/// The store, in memory, with the visibility rules of the SQL it stands in for.
#[derive(Default)]
pub struct MemStore(Mutex<MemData>);

impl MemStore {
    pub fn data(&self) -> MutexGuard<'_, MemData> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl MeetingStore for MemStore {
    async fn ping(&self) -> store::Result<()> {
        Ok(())
    }
    async fn insert_meeting(&self, m: &MeetingRecord) -> store::Result<()> {
        let mut d = self.data();
        if d.meetings.contains_key(&m.id) {
            return Err(store::StoreError::Corrupt(format!(
                "duplicate meeting {}",
                m.id
            )));
        }
        d.meetings.insert(m.id.clone(), m.clone());
        Ok(())
    }
    async fn get_meeting(&self, id: &MeetingId) -> store::Result<Option<MeetingRecord>> {
        Ok(self.data().meetings.get(id).cloned())
    }
    async fn end_meeting(&self, id: &MeetingId, at: i64) -> store::Result<bool> {
        Ok(match self.data().meetings.get_mut(id) {
            Some(m) if m.status == MeetingStatus::Active => {
                m.status = MeetingStatus::Ended;
                m.ended_at = Some(at);
                true
            }
            _ => false,
        })
    }
    async fn set_role(&self, meeting: &MeetingId, user: &UserId, role: Role) -> store::Result<()> {
        self.data()
            .roles
            .insert((meeting.clone(), user.clone()), role);
        Ok(())
    }
    async fn granted_role(
        &self,
        meeting: &MeetingId,
        user: &UserId,
    ) -> store::Result<Option<Role>> {
        Ok(self
            .data()
            .roles
            .get(&(meeting.clone(), user.clone()))
            .copied())
    }
    async fn open_session(
        &self,
        id: &ParticipantId,
        meeting: &MeetingId,
        user: &UserId,
        _user_name: &str,
        _role: Role,
        _at: i64,
    ) -> store::Result<()> {
        self.data()
            .sessions
            .insert(id.clone(), (meeting.clone(), user.clone(), None));
        Ok(())
    }
    async fn close_session(&self, id: &ParticipantId, at: i64) -> store::Result<()> {
        if let Some(s) = self.data().sessions.get_mut(id) {
            s.2.get_or_insert(at);
        }
        Ok(())
    }
    async fn insert_message(&self, m: &ChatRecord) -> store::Result<()> {
        self.data().messages.push(m.clone());
        Ok(())
    }
    async fn messages_visible(
        &self,
        meeting: &MeetingId,
        viewer: &Viewer<'_>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> store::Result<Vec<ChatRecord>> {
        let d = self.data();
        let end = match before {
            None => d.messages.len(),
            Some(id) => match d
                .messages
                .iter()
                .position(|m| &m.id == id && &m.meeting_id == meeting)
            {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
        };
        let visible: Vec<ChatRecord> = d.messages[..end]
            .iter()
            .filter(|m| &m.meeting_id == meeting)
            .filter(|m| {
                m.recipient_type == RecipientType::All
                    || &m.sender_id == viewer.user_id
                    || (m.recipient_type == RecipientType::Private
                        && m.recipient_id.as_ref() == Some(viewer.user_id))
                    || (m.recipient_type == RecipientType::Host && viewer.sees_host_messages)
            })
            .cloned()
            .collect();
        let skip = visible.len().saturating_sub(limit as usize);
        Ok(visible.into_iter().skip(skip).collect())
    }
    async fn insert_stats(
        &self,
        _meeting: &MeetingId,
        participant: &ParticipantId,
        _user: &UserId,
        s: &StatsRecord,
        _at: i64,
    ) -> store::Result<()> {
        self.data().stats.push((participant.clone(), s.clone()));
        Ok(())
    }
    async fn audit(
        &self,
        _meeting: &MeetingId,
        actor: &UserId,
        action: &str,
        target: Option<&UserId>,
        detail: &str,
        _at: i64,
    ) -> store::Result<()> {
        self.data().audit.push((
            actor.to_string(),
            action.to_owned(),
            target.map(ToString::to_string),
            detail.to_owned(),
        ));
        Ok(())
    }
    async fn insert_recording(&self, rec: &RecordingRecord) -> store::Result<()> {
        self.data().recordings.push(rec.clone());
        Ok(())
    }
    async fn get_recording(&self, id: &RecordingId) -> store::Result<Option<RecordingRecord>> {
        Ok(self.data().recordings.iter().find(|r| &r.id == id).cloned())
    }
    async fn recordings_of(&self, meeting: &MeetingId) -> store::Result<Vec<RecordingRecord>> {
        Ok(self
            .data()
            .recordings
            .iter()
            .filter(|r| &r.meeting_id == meeting)
            .cloned()
            .collect())
    }
    async fn stop_recording(
        &self,
        id: &RecordingId,
        at: i64,
        duration_ms: i64,
        reason: &str,
    ) -> store::Result<bool> {
        let mut d = self.data();
        Ok(match d.recordings.iter_mut().find(|r| &r.id == id) {
            Some(r) if r.status == RecordingStatus::Recording => {
                r.status = RecordingStatus::Processing;
                r.stopped_at = Some(at);
                r.duration_ms = Some(duration_ms);
                r.stop_reason = Some(reason.to_owned());
                true
            }
            _ => false,
        })
    }
    async fn set_recording_status(
        &self,
        id: &RecordingId,
        status: RecordingStatus,
        reason: Option<&str>,
        _at: i64,
    ) -> store::Result<bool> {
        let mut d = self.data();
        Ok(match d.recordings.iter_mut().find(|r| &r.id == id) {
            Some(r) => {
                r.status = status;
                r.failure_reason = reason.map(str::to_owned);
                true
            }
            None => false,
        })
    }
    async fn delete_recording(&self, id: &RecordingId) -> store::Result<bool> {
        let mut d = self.data();
        let before = d.recordings.len();
        d.recordings.retain(|r| &r.id != id);
        Ok(d.recordings.len() != before)
    }
}

/// The media plane in process: one `sfu::Core` behind a mutex, no UDP socket (nothing is ever received or sent,
/// which the signaling rules do not need).
pub struct TestMedia(Mutex<sfu::Core>);

impl TestMedia {
    pub fn new() -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], 40_000).into();
        let mut core = sfu::Core::new(addr, addr);
        core.set_clock_base(Instant::now(), std::time::SystemTime::now());
        Self(Mutex::new(core))
    }

    pub fn core(&self) -> MutexGuard<'_, sfu::Core> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the core holds `producer` paused (forwards nothing), asked the way a new consumer learns it.
    pub fn paused_on_server(&self, meeting: &MeetingId, producer: &str) -> bool {
        let mut core = self.core();
        let now = Instant::now();
        let t = core
            .create_transport(meeting.as_str(), sfu::Direction::Recv, now)
            .expect("probe transport");
        let info = core
            .consume(&t.id, producer, &sfu::ortc::router_capabilities())
            .expect("probe consumer");
        core.close_transport(&t.id);
        info.producer_paused
    }
}

#[async_trait::async_trait]
impl MediaPlane for TestMedia {
    async fn run(&self, _router: &str, job: MediaJob) -> Result<(), MediaError> {
        job(&mut self.core(), Instant::now());
        Ok(())
    }
}

/// [`TestMedia`] with a gate: once armed, the next job waits until the test lets it run, so a test can put another
/// request between an operation's state check and its media call.
pub struct GatedMedia {
    inner: Arc<TestMedia>,
    gate: Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
}

impl GatedMedia {
    /// Holds the next job: `reached` resolves when it arrives; it runs once `release` is sent.
    pub fn arm(
        &self,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel();
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some((reached_tx, release_rx));
        (reached, release)
    }
}

#[async_trait::async_trait]
impl MediaPlane for GatedMedia {
    async fn run(&self, router: &str, job: MediaJob) -> Result<(), MediaError> {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((reached, release)) = gate {
            let _ = reached.send(());
            let _ = release.await;
        }
        self.inner.run(router, job).await
    }
}

/// A service on in-memory ports, and helpers to act as users.
pub struct World {
    pub svc: Arc<MeetingService>,
    pub store: Arc<MemStore>,
    pub media: Arc<TestMedia>,
    pub runtime: Arc<LocalRuntimeStore>,
}

/// One user's socket in a meeting.
#[derive(Debug)]
pub struct Member {
    pub session: Session,
    pub meeting: MeetingId,
}

impl Member {
    pub fn user_id(&self) -> &UserId {
        &self.session.identity.user_id
    }
    pub fn participant_id(&self) -> ParticipantId {
        self.session
            .membership
            .as_ref()
            .map(|m| m.participant.clone())
            .unwrap_or_else(|| ParticipantId::new("none"))
    }
}

pub fn identity(name: &str, campus: &str) -> Identity {
    Identity {
        user_id: UserId::new(format!("user_{name}")),
        user_name: name.to_owned(),
        campus_id: campus.to_owned(),
        email: format!("{name}@example.org"),
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_config(DomainConfig::default())
    }

    pub fn with_config(config: DomainConfig) -> Self {
        let media = Arc::new(TestMedia::new());
        Self::build(config, media.clone(), media)
    }

    /// A world whose media plane can hold a job (see [`GatedMedia`]).
    pub fn gated() -> (Self, Arc<GatedMedia>) {
        let media = Arc::new(TestMedia::new());
        let gated = Arc::new(GatedMedia {
            inner: media.clone(),
            gate: Mutex::new(None),
        });
        (
            Self::build(DomainConfig::default(), gated.clone(), media),
            gated,
        )
    }

    fn build(config: DomainConfig, plane: Arc<dyn MediaPlane>, media: Arc<TestMedia>) -> Self {
        let store = Arc::new(MemStore::default());
        let runtime = Arc::new(LocalRuntimeStore::new());
        let svc = Arc::new(MeetingService::new(
            store.clone(),
            runtime.clone(),
            Arc::new(LocalRateLimiter::new()),
            plane,
            config,
        ));
        Self {
            svc,
            store,
            media,
            runtime,
        }
    }

    /// A meeting created by `host` (campus `c1`) with these settings.
    pub async fn meeting(&self, host: &Identity, new: NewMeeting) -> MeetingId {
        match self.svc.create_meeting(host, new).await {
            Ok(m) => m.id,
            Err(e) => panic!("create meeting: {e:?}"),
        }
    }

    pub async fn try_join(
        &self,
        who: &Identity,
        meeting: &MeetingId,
    ) -> Result<(Member, Outcome), WireError> {
        let mut session = Session::new(who.clone());
        let out = self
            .svc
            .handle(
                &mut session,
                Request::Join {
                    meeting: meeting.clone(),
                    replaces: None,
                },
            )
            .await?;
        Ok((
            Member {
                session,
                meeting: meeting.clone(),
            },
            out,
        ))
    }

    pub async fn join(&self, who: &Identity, meeting: &MeetingId) -> Member {
        match self.try_join(who, meeting).await {
            Ok((m, _)) => m,
            Err(e) => panic!("{} joining: {e:?}", who.user_name),
        }
    }

    /// Sends `event` with `payload` (meetingId added) as `m`, through the real parser.
    pub async fn send(
        &self,
        m: &mut Member,
        event: &str,
        mut payload: Value,
    ) -> Result<Outcome, WireError> {
        if let Some(o) = payload.as_object_mut() {
            o.entry("meetingId").or_insert(json!(m.meeting));
        }
        let req = Request::parse(event, Some(&payload))?;
        self.svc.handle(&mut m.session, req).await
    }

    pub async fn ok(&self, m: &mut Member, event: &str, payload: Value) -> Outcome {
        match self.send(m, event, payload).await {
            Ok(o) => o,
            Err(e) => panic!("{event} by {}: {e:?}", m.session.identity.user_name),
        }
    }

    pub async fn runtime(&self, meeting: &MeetingId) -> MeetingRuntime {
        self.runtime
            .get(meeting)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// The emits of `event` in an outcome.
pub fn emits<'a>(out: &'a Outcome, event: &str) -> Vec<&'a Emit> {
    out.emits.iter().filter(|e| e.event == event).collect()
}

/// Whether `who` is addressed by `target` in `meeting` (for Participants targets; Meeting targets reach all).
pub fn reaches(target: &Target, who: &ParticipantId) -> bool {
    match target {
        Target::Requester => false,
        Target::Meeting(_) => true,
        Target::MeetingExcept(_, except) => except != who,
        Target::Participants(list) => list.contains(who),
    }
}

/// What mediasoup-client sends for Chrome's microphone (as tests/js/media-signaling.test.mjs).
pub fn opus(mid: &str, ssrc: u32) -> Value {
    json!({
        "mid": mid,
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {}},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": ssrc, "dtx": false}],
        "rtcp": {"cname": "abcd", "reducedSize": true}
    })
}

/// A non-simulcast VP8 camera.
pub fn vp8(mid: &str, ssrc: u32) -> Value {
    json!({
        "mid": mid,
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
             "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"}]},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}, "rtcpFeedback": []}
        ],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}],
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}}],
        "rtcp": {"cname": "abcd", "reducedSize": true}
    })
}
