//! The operations. Each validates, checks membership and permissions, applies the change to the runtime state
//! and the store, and says what to emit. Nothing is changed when an operation fails.

use crate::ports::{MediaPlane, MeetingStore, RecordingSink};
use crate::request::{Recipient, Request};
use crate::{Emit, Identity, Membership, Outcome, RoomChange, Session, Target};
use proto::events as ev;
use proto::time::{iso8601, now_ms};
use proto::{ErrorCode, Layout, MeetingId, MessageId, ParticipantId, Role, UserId, WireError};
use serde_json::Value;
use state::{Limit, MeetingRuntime, RateLimiter, RuntimeParticipant, RuntimeStore, ScreenShare};
use std::sync::Arc;
use std::time::Duration;
use store::{ChatRecord, MeetingRecord, MeetingStatus, Viewer};

/// The guide's rate limits (configurable for benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub send_message: Limit,
    pub typing: Limit,
    pub reaction: Limit,
    pub stats: Limit,
    /// Media requests (not in the guide): what one participant may ask of the media worker its meeting shares
    /// with others. Each create-transport costs the worker ~1 ms (DTLS set-up), so a client looping on it could
    /// starve every meeting on that worker.
    pub create_transport: Limit,
    pub connect_transport: Limit,
    pub produce: Limit,
    pub consume: Limit,
    /// pause-consumer, resume-consumer, producer:pause/resume/close, quality:change.
    pub media_control: Limit,
    /// restart-ice: a browser restarts on a network change (`disconnected`, `failed`, back `online`).
    pub restart_ice: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        let per = |count, secs| Limit {
            count,
            window: Duration::from_secs(secs),
        };
        Self {
            send_message: per(10, 60),
            typing: per(1, 1),
            reaction: per(3, 1),
            stats: per(1, 5),
            // A join needs 2 transports, 1 connect each, ≤ 3 producers; a reconnect doubles that. A late joiner of
            // a 100-person meeting consumes ~200 producers, paced one at a time.
            create_transport: per(10, 10),
            connect_transport: per(10, 10),
            produce: per(20, 10),
            consume: per(300, 10),
            media_control: per(100, 10),
            restart_ice: per(10, 60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// Development mode: joining an unknown meeting creates it, with the joiner as host.
    pub dev_mode: bool,
    pub default_max_participants: u32,
    pub limits: Limits,
    /// Chat messages in the join snapshot.
    pub recent_messages: u32,
    /// A user whose connection dropped and who rejoins within this many ms gets its raised hand back (roles are
    /// stored, so they survive anyway).
    pub rejoin_grace_ms: i64,
    /// An ended meeting's runtime state is kept this long (it stops a join racing the end; later joins are refused
    /// by the stored status), then dropped.
    pub ended_state_ms: u64,
    /// TURN servers and the ICE transport policy handed to clients (`transport-created.params`).
    pub ice: crate::ice::IceConfig,
    /// Cluster mode: this node's id, recorded on the sessions it holds (`None` on a single node).
    pub node_id: Option<String>,
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            dev_mode: false,
            default_max_participants: 100,
            limits: Limits::default(),
            recent_messages: 50,
            rejoin_grace_ms: 30_000,
            ended_state_ms: 60_000,
            ice: crate::ice::IceConfig::default(),
            node_id: None,
        }
    }
}

/// `POST /api/meetings`, typed (the REST edge checks JSON types; ranges are checked here).
#[derive(Clone, Debug, Default)]
pub struct NewMeeting {
    pub title: Option<String>,
    pub max_participants: Option<u32>,
    pub recording_enabled: Option<bool>,
    pub allow_self_unmute: Option<bool>,
    pub allowed_campuses: Vec<String>,
    pub invited_user_ids: Vec<String>,
}

pub const MAX_PARTICIPANTS_LIMIT: u32 = 10_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_LIST: usize = 1000;

pub struct MeetingService {
    pub(crate) store: Arc<dyn MeetingStore>,
    pub(crate) runtime: Arc<dyn RuntimeStore>,
    limiter: Arc<dyn RateLimiter>,
    config: DomainConfig,
    pub(crate) media: Arc<dyn MediaPlane>,
    /// Outcomes not caused by a request (paced `new-producer` announcements), delivered by the edge.
    pub(crate) background: tokio::sync::mpsc::UnboundedSender<Outcome>,
    background_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>>>,
    /// Meetings with announcements waiting for their 2 s fallback.
    pub(crate) pacing: std::sync::Mutex<std::collections::HashSet<MeetingId>>,
    /// This node's recorder (None: recordings keep their events and rows, but no files are written).
    pub(crate) recorder: Option<Arc<dyn RecordingSink>>,
    /// Cluster mode: runs media requests on a meeting's media home when that is another node.
    pub(crate) remote: Option<Arc<dyn crate::ports::MediaRemote>>,
    /// Cluster mode: set once this node is stopping; it takes no new media home then.
    draining: std::sync::atomic::AtomicBool,
    /// The service itself, for timers it starts (set by `spawn_pacer`, which the edge calls once).
    pub(crate) me: std::sync::OnceLock<std::sync::Weak<MeetingService>>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

/// Logs an infrastructure failure and hides its details from the client.
/// The shared state (Redis, in cluster mode) failed: the request changed nothing and may be retried.
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> WireError {
    tracing::warn!(error = %e, "{what} failed");
    err(
        ErrorCode::ServiceUnavailable,
        "the meeting service is briefly unavailable (shared state unreachable); retry in a moment",
    )
}

pub(crate) fn internal(what: &str, e: impl std::fmt::Display) -> WireError {
    tracing::error!(error = %e, "{what} failed");
    WireError::internal()
}

fn can_access(m: &MeetingRecord, who: &Identity) -> bool {
    m.host_user_id == who.user_id
        || m.campus_id == who.campus_id
        || m.allowed_campuses.contains(&who.campus_id)
        || m.invited_user_ids.iter().any(|u| u == who.user_id.as_str())
}

fn who_ref(who: &Identity) -> ev::UserRef {
    ev::UserRef {
        user_id: who.user_id.clone(),
        user_name: who.user_name.clone(),
    }
}

/// The runtime keeps a producer's kind as `sfu::Kind::as_str` wrote it: `audio` or `video`.
pub(crate) fn media_kind(kind: &str) -> ev::MediaKind {
    if kind == "audio" {
        ev::MediaKind::Audio
    } else {
        ev::MediaKind::Video
    }
}

/// The runtime keeps a producer's source as the request parser validated it: `mic`, `camera` or `screen`.
pub(crate) fn source_of(source: &str) -> ev::Source {
    match source {
        "mic" => ev::Source::Mic,
        "screen" => ev::Source::Screen,
        _ => ev::Source::Camera,
    }
}

/// A participant in the snapshot; `with_producers` false for the REST list.
fn participant_summary(p: &RuntimeParticipant, with_producers: bool) -> ev::ParticipantSummary {
    ev::ParticipantSummary {
        participant_id: p.participant_id.clone(),
        user_id: p.user_id.clone(),
        user_name: p.user_name.clone(),
        role: p.role,
        hand_raised: p.hand_raised,
        joined_at: iso8601(p.joined_at),
        producers: with_producers.then(|| {
            p.producers
                .iter()
                .map(|x| ev::ProducerSummary {
                    producer_id: x.producer_id.clone(),
                    kind: media_kind(&x.kind),
                    source: source_of(&x.source),
                    paused: x.paused,
                })
                .collect()
        }),
    }
}

/// `new-message` (the guide's snake_case fields).
pub fn new_message(m: &ChatRecord) -> ev::NewMessage {
    ev::NewMessage {
        id: m.id.clone(),
        meeting_id: m.meeting_id.clone(),
        sender_id: m.sender_id.clone(),
        sender_name: m.sender_name.clone(),
        message: m.message.clone(),
        message_type: "text".to_owned(),
        recipient_type: match m.recipient_type {
            store::RecipientType::All => ev::RecipientType::All,
            store::RecipientType::Private => ev::RecipientType::Private,
            store::RecipientType::Host => ev::RecipientType::Host,
        },
        recipient_id: m.recipient_id.clone(),
        timestamp: iso8601(m.created_at),
    }
}

/// `new-message` as JSON, for the REST history.
pub fn message_json(m: &ChatRecord) -> Value {
    crate::wire(&new_message(m))
}

/// The REST meeting object.
pub fn meeting_json(m: &MeetingRecord) -> proto::rest::MeetingView {
    proto::rest::MeetingView {
        meeting_id: m.id.clone(),
        title: m.title.clone(),
        host_user_id: m.host_user_id.clone(),
        campus_id: m.campus_id.clone(),
        max_participants: m.max_participants,
        recording_enabled: m.recording_enabled,
        allow_self_unmute: m.allow_self_unmute,
        allowed_campuses: m.allowed_campuses.clone(),
        invited_user_ids: m.invited_user_ids.clone(),
        status: match m.status {
            MeetingStatus::Active => proto::rest::MeetingStatus::Active,
            MeetingStatus::Ended => proto::rest::MeetingStatus::Ended,
        },
        created_at: iso8601(m.created_at),
        ended_at: m.ended_at.map(iso8601),
        participant_count: None,
    }
}

impl MeetingService {
    pub fn new(
        store: Arc<dyn MeetingStore>,
        runtime: Arc<dyn RuntimeStore>,
        limiter: Arc<dyn RateLimiter>,
        media: Arc<dyn MediaPlane>,
        config: DomainConfig,
    ) -> Self {
        let (background, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            store,
            runtime,
            limiter,
            config,
            media,
            background,
            background_rx: std::sync::Mutex::new(Some(rx)),
            pacing: Default::default(),
            recorder: None,
            remote: None,
            draining: Default::default(),
            me: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn weak_self(&self) -> Option<std::sync::Weak<MeetingService>> {
        self.me.get().cloned()
    }

    /// Attaches this node's recorder (before the service is shared).
    pub fn with_recorder(mut self, recorder: Arc<dyn RecordingSink>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Cluster mode: how media requests reach a meeting's media home on another node (before the service is
    /// shared; needs `DomainConfig::node_id`).
    pub fn with_remote(mut self, remote: Arc<dyn crate::ports::MediaRemote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Cluster mode: the node hosting `meeting`'s media when it is another node (`None`: here). The first media
    /// request of a meeting gives it a home: the least loaded live node (recorded in the shared state, atomically:
    /// two nodes racing agree on one).
    pub async fn remote_media_home(
        &self,
        session: &Session,
        meeting: Option<&MeetingId>,
    ) -> Result<Option<String>, WireError> {
        let (Some(mine), Some(remote)) = (&self.config.node_id, &self.remote) else {
            return Ok(None);
        };
        let Some(meeting) = meeting.or(session.membership.as_ref().map(|m| &m.meeting)) else {
            return Ok(None); // not in a meeting: handled here, which answers NOT_IN_MEETING
        };
        if session.membership.as_ref().map(|m| &m.meeting) != Some(meeting) {
            return Ok(None); // idem
        }
        let mut home = None;
        self.read(meeting, |rt| home = rt.and_then(|r| r.media_home.clone()))
            .await?;
        if let Some(home) = home {
            return Ok(Some(home).filter(|h| h != mine));
        }
        let draining = self.draining.load(std::sync::atomic::Ordering::Acquire);
        let candidate = if draining {
            None
        } else {
            Some(remote.pick_home(mine).await)
        };
        self.modify(meeting, |rt| {
            if rt.participants.is_empty() {
                return false; // not a live meeting: nothing to claim
            }
            if rt.media_home.is_none() && candidate.is_some() {
                rt.media_home = candidate.clone();
                home = rt.media_home.clone();
                return true;
            }
            home = rt.media_home.clone();
            false
        })
        .await?;
        if home.is_none() && draining {
            return Err(err(
                ErrorCode::ServiceUnavailable,
                "this server is shutting down; reconnect and set up media again",
            ));
        }
        Ok(home.filter(|h| h != mine))
    }

    /// Cluster mode: has the meeting's media home (`node`, another node) run this socket's media request; the
    /// outcome carries the ack's reply and every event the request caused, in order, for this node to deliver.
    pub async fn forward_media(
        &self,
        node: &str,
        session: &Session,
        event: &str,
        payload: Option<&Value>,
    ) -> Result<Outcome, WireError> {
        let Some(remote) = &self.remote else {
            return Err(WireError::internal());
        };
        let answer = remote.request(node, session, event, payload).await?;
        let mut out = Outcome {
            reply: answer.reply,
            ..Outcome::default()
        };
        for (target, name, payload) in answer.emits {
            // Event names are `&'static str` in an outcome: the home can only send names of the contract.
            match proto::typescript::SERVER_TO_CLIENT
                .iter()
                .find(|(n, _)| *n == name)
            {
                Some((n, _)) => out.emits.push(Emit {
                    target,
                    event: n,
                    payload,
                }),
                None => {
                    tracing::warn!(event = %name, "the media home sent an unknown event; dropped")
                }
            }
        }
        Ok(out)
    }

    /// Cluster mode, on the media home: a media request forwarded by the node holding the requester's socket. Runs
    /// like the request of a local socket; the caller delivers the outcome's events.
    pub async fn handle_forwarded(
        &self,
        identity: Identity,
        membership: Membership,
        event: &str,
        payload: Option<&Value>,
    ) -> Result<Outcome, WireError> {
        if !crate::request::MEDIA_EVENTS.contains(&event) {
            return Err(WireError::validation("only media requests are forwarded"));
        }
        let mut session = Session {
            identity,
            membership: Some(membership),
        };
        let req = Request::parse(event, payload)?;
        self.handle(&mut session, req).await
    }

    /// Cluster mode, on the media home: closes a participant's media (it left, on another node).
    pub async fn release_forwarded(
        &self,
        meeting: &MeetingId,
        participant: &RuntimeParticipant,
        reason: &str,
    ) -> Vec<Emit> {
        self.release_here(meeting, participant, reason).await
    }

    /// The stream of outcomes not caused by a request; the edge takes it once and delivers them.
    pub fn take_background(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>> {
        self.background_rx.lock().ok().and_then(|mut g| g.take())
    }

    pub fn store(&self) -> &dyn MeetingStore {
        &*self.store
    }

    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// Whether the shared runtime state answers (`/readyz`; always in process, Redis in cluster mode).
    pub async fn shared_state_ping(&self) -> Result<(), String> {
        self.runtime.ping().await.map_err(|e| e.to_string())
    }

    /// Meetings with runtime state (see `RuntimeStore::held`), for `/metrics`.
    pub async fn meetings_held(&self) -> usize {
        self.runtime.held().await.unwrap_or(0)
    }

    /// Handles one socket request.
    pub async fn handle(&self, session: &mut Session, req: Request) -> Result<Outcome, WireError> {
        if let Request::Join { meeting, replaces } = &req {
            return self.join(session, meeting, replaces.as_ref()).await;
        }
        if let Request::Media { meeting, op } = req {
            let Some(meeting) =
                meeting.or_else(|| session.membership.as_ref().map(|m| m.meeting.clone()))
            else {
                return Err(self.not_in_meeting());
            };
            let me = self.member(session, &meeting).await?;
            return self.handle_media(&meeting, &me, op).await;
        }
        let Some(meeting) = req.meeting().cloned() else {
            return Err(WireError::validation("meetingId is required"));
        };
        let me = self.member(session, &meeting).await?;
        let who = &session.identity;
        let now = now_ms();
        let action = || ev::ParticipantAction {
            meeting_id: meeting.clone(),
            participant_id: me.participant_id.clone(),
            user_id: me.user_id.clone(),
            user_name: me.user_name.clone(),
            timestamp: iso8601(now),
        };
        match req {
            Request::Leave { .. } => {
                let Some(m) = session.membership.take() else {
                    return Err(self.not_in_meeting());
                };
                Ok(self.leave(&m, "left").await)
            }
            Request::ScreenStart { .. } => {
                let mut res = Ok(false);
                self.modify(&meeting, |rt| match &rt.screen_share {
                    Some(s) if s.participant_id != me.participant_id => {
                        res = Err(err(
                            ErrorCode::ScreenShareActive,
                            format!("{} is already sharing their screen", s.user_name),
                        ));
                        false
                    }
                    Some(_) => {
                        res = Ok(false);
                        false
                    }
                    None => {
                        rt.screen_share = Some(ScreenShare {
                            participant_id: me.participant_id.clone(),
                            user_id: me.user_id.clone(),
                            user_name: me.user_name.clone(),
                            started_at: now,
                        });
                        res = Ok(true);
                        true
                    }
                })
                .await?;
                let started = res?;
                let out = Outcome::reply(&ev::ScreenStartAck { sharing: true });
                Ok(if started {
                    out.emit(
                        Target::Meeting(meeting.clone()),
                        "screen:started",
                        &action(),
                    )
                } else {
                    out
                })
            }
            Request::ScreenStop { .. } => {
                let mut res = Err(err(ErrorCode::NotFound, "no screen share is active"));
                self.modify(&meeting, |rt| match &rt.screen_share {
                    None => false,
                    Some(s) if s.participant_id != me.participant_id && !me.role.can_moderate() => {
                        res = Err(err(
                            ErrorCode::Forbidden,
                            "only the sharer, a host or a moderator can stop this screen share",
                        ));
                        false
                    }
                    Some(_) => {
                        res = Ok(rt.screen_share.take());
                        true
                    }
                })
                .await?;
                let share = res?;
                let out = Outcome::reply(&ev::Empty {});
                Ok(match share {
                    Some(s) => out.emit(
                        Target::Meeting(meeting.clone()),
                        "screen:stopped",
                        &screen_stopped(&meeting, &s, now),
                    ),
                    None => out,
                })
            }
            Request::HandRaise { .. } | Request::HandLower { .. } => {
                let raise = matches!(req, Request::HandRaise { .. });
                let mut changed = false;
                self.modify(&meeting, |rt| {
                    match rt.participants.get_mut(&me.participant_id) {
                        Some(p) if p.hand_raised != raise => {
                            p.hand_raised = raise;
                            changed = true;
                            true
                        }
                        _ => false,
                    }
                })
                .await?;
                let out = Outcome::reply(&ev::HandAck { hand_raised: raise });
                Ok(if changed {
                    let event = if raise { "hand:raised" } else { "hand:lowered" };
                    out.emit(Target::Meeting(meeting.clone()), event, &action())
                } else {
                    out
                })
            }
            Request::Mute { target, kind, .. } => {
                if !me.role.can_moderate() {
                    return Err(err(
                        ErrorCode::Forbidden,
                        "only hosts and moderators can mute participants",
                    ));
                }
                self.require_present(&meeting, &target).await?;
                let paused = self.pause_for_moderator(&meeting, &target, kind).await?;
                self.audit(&meeting, &who.user_id, "mute", Some(&target), kind.as_str())
                    .await;
                let payload = ev::ParticipantMuted {
                    meeting_id: meeting.clone(),
                    target_user_id: target.clone(),
                    mute_type: kind,
                    moderator_id: who.user_id.clone(),
                    moderator_name: who.user_name.clone(),
                    timestamp: iso8601(now),
                };
                let mut out = Outcome::reply(&payload).emit(
                    Target::Meeting(meeting.clone()),
                    "participant:muted",
                    &payload,
                );
                out.emits.extend(paused);
                Ok(out)
            }
            Request::Unmute { target, kind, .. } => {
                if !me.role.can_moderate() {
                    return Err(err(
                        ErrorCode::Forbidden,
                        "only hosts and moderators can allow participants to unmute",
                    ));
                }
                self.require_present(&meeting, &target).await?;
                let lifted = self.lift_moderator_mute(&meeting, &target, kind).await?;
                let payload = ev::ParticipantMuted {
                    meeting_id: meeting.clone(),
                    target_user_id: target.clone(),
                    mute_type: kind,
                    moderator_id: who.user_id.clone(),
                    moderator_name: who.user_name.clone(),
                    timestamp: iso8601(now),
                };
                let reply = ev::UnmuteAck {
                    unmuted: payload.clone(),
                    lifted,
                };
                if !lifted {
                    // Nothing to lift: no event (as hand:raise when already raised).
                    return Ok(Outcome::reply(&reply));
                }
                self.audit(
                    &meeting,
                    &who.user_id,
                    "unmute",
                    Some(&target),
                    kind.as_str(),
                )
                .await;
                Ok(Outcome::reply(&reply).emit(
                    Target::Meeting(meeting.clone()),
                    "participant:unmuted",
                    &payload,
                ))
            }
            Request::Reaction { emoji, .. } => {
                self.rate_limit(
                    &meeting,
                    &who.user_id,
                    "reaction:send",
                    self.config.limits.reaction,
                )
                .await?;
                let payload = ev::ReactionReceived {
                    meeting_id: meeting.clone(),
                    participant_id: me.participant_id.clone(),
                    user_id: me.user_id.clone(),
                    user_name: me.user_name.clone(),
                    emoji,
                    timestamp: iso8601(now),
                };
                Ok(Outcome::reply(&ev::Empty {}).emit(
                    Target::Meeting(meeting),
                    "reaction:received",
                    &payload,
                ))
            }
            Request::Layout { layout, .. } => {
                if !me.role.can_moderate() {
                    return Err(err(
                        ErrorCode::Forbidden,
                        "only hosts and moderators can change the layout",
                    ));
                }
                self.modify(&meeting, |rt| {
                    rt.layout = layout;
                    true
                })
                .await?;
                let name = layout_str(layout);
                self.audit(&meeting, &who.user_id, "layout", None, name)
                    .await;
                let payload = ev::LayoutChanged {
                    meeting_id: meeting.clone(),
                    layout,
                    changed_by: who_ref(who),
                    timestamp: iso8601(now),
                };
                Ok(Outcome::reply(&payload).emit(
                    Target::Meeting(meeting),
                    "layout:changed",
                    &payload,
                ))
            }
            Request::Pin { target, .. } => {
                self.require_present(&meeting, &target).await?;
                let payload = ev::ParticipantPinned {
                    meeting_id: meeting.clone(),
                    target_user_id: target,
                    timestamp: iso8601(now),
                };
                Ok(
                    Outcome::reply(&payload).emit(
                        Target::Requester,
                        "participant:pinned",
                        &payload,
                    ),
                )
            }
            Request::Spotlight { target, .. } => {
                if !me.role.can_moderate() {
                    return Err(err(
                        ErrorCode::Forbidden,
                        "only hosts and moderators can spotlight participants",
                    ));
                }
                let target_name = match &target {
                    Some(t) => Some(self.require_present(&meeting, t).await?),
                    None => None,
                };
                let t = target.clone();
                self.modify(&meeting, |rt| {
                    rt.spotlight = t.clone();
                    true
                })
                .await?;
                self.audit(&meeting, &who.user_id, "spotlight", target.as_ref(), "")
                    .await;
                // The spotlighted camera comes before the rest in every subscriber's bandwidth share-out.
                self.apply_priorities(&meeting).await;
                let payload = ev::ParticipantSpotlighted {
                    meeting_id: meeting.clone(),
                    target_user_id: target,
                    user_name: target_name,
                    changed_by: who_ref(who),
                    timestamp: iso8601(now),
                };
                Ok(Outcome::reply(&payload).emit(
                    Target::Meeting(meeting),
                    "participant:spotlighted",
                    &payload,
                ))
            }
            Request::SetRole { target, role, .. } => {
                let who = who.clone();
                self.change_role(&who, &meeting, &target, role).await
            }
            Request::End { .. } => {
                let who = who.clone();
                self.end_meeting(&who, &meeting).await
            }
            Request::Stats { stats, .. } => {
                self.rate_limit(
                    &meeting,
                    &who.user_id,
                    "stats:report",
                    self.config.limits.stats,
                )
                .await?;
                self.store
                    .insert_stats(&meeting, &me.participant_id, &who.user_id, &stats, now)
                    .await
                    .map_err(|e| internal("storing stats", e))?;
                crate::media_ops::client_stats(self, &meeting, &me, &stats).await;
                Ok(Outcome::reply(&ev::Empty {}))
            }
            Request::Recording {
                action, options, ..
            } => {
                let rec = self.meeting_record(&meeting).await?;
                if !rec.recording_enabled {
                    return Err(err(
                        ErrorCode::RecordingDisabled,
                        "recording is disabled for this meeting",
                    ));
                }
                if !me.role.can_moderate() {
                    return Err(err(
                        ErrorCode::UnauthorizedRecording,
                        "only hosts and moderators can control recording",
                    ));
                }
                let who = who.clone();
                self.recording_action(&meeting, &who, action, options).await
            }
            Request::SendMessage {
                message, recipient, ..
            } => {
                self.rate_limit(
                    &meeting,
                    &who.user_id,
                    "send-message",
                    self.config.limits.send_message,
                )
                .await?;
                self.send_message(&meeting, &me, who, message, recipient, now)
                    .await
            }
            Request::Typing { typing, .. } => {
                self.rate_limit(&meeting, &who.user_id, "typing", self.config.limits.typing)
                    .await?;
                let payload = ev::UserTyping {
                    meeting_id: meeting.clone(),
                    participant_id: me.participant_id.clone(),
                    user_id: me.user_id.clone(),
                    user_name: me.user_name.clone(),
                    typing,
                };
                Ok(Outcome::reply(&ev::Empty {}).emit(
                    Target::MeetingExcept(meeting, me.participant_id.clone()),
                    "user-typing",
                    &payload,
                ))
            }
            Request::Join { .. } | Request::Media { .. } => Err(WireError::internal()),
        }
    }

    /// The socket went away: leave its meeting, if it is still in one.
    pub async fn disconnect(&self, session: &mut Session) -> Outcome {
        match session.membership.take() {
            Some(m) if self.is_present(&m).await => self.leave(&m, "disconnected").await,
            _ => Outcome::default(),
        }
    }

    /// Cluster mode: a node was found dead. Every session it held leaves its meeting (`participant-left` with reason
    /// `node-lost`, and what a leave releases), one outcome per session, for the caller to deliver. Scans every
    /// meeting with runtime state: a rare event, paid once per dead node.
    pub async fn reap_node(&self, node: &str) -> Result<Vec<Outcome>, WireError> {
        let meetings = self
            .runtime
            .meeting_ids()
            .await
            .map_err(|e| unavailable("listing meetings", e))?;
        let mut outcomes = Vec::new();
        for meeting in meetings {
            let mut lost = Vec::new();
            self.read(&meeting, |rt| {
                if let Some(rt) = rt {
                    lost.extend(
                        rt.participants
                            .values()
                            .filter(|p| p.node.as_deref() == Some(node))
                            .map(|p| p.participant_id.clone()),
                    );
                }
            })
            .await?;
            for participant in lost {
                let m = Membership {
                    meeting: meeting.clone(),
                    participant,
                };
                let mut out = self.leave(&m, "node-lost").await;
                out.reply = Value::Null;
                out.rooms.clear(); // the sockets are gone with their node
                outcomes.push(out);
            }
            outcomes.extend(self.rehome_media(&meeting, node, "node-lost").await);
        }
        Ok(outcomes)
    }

    /// Cluster mode: whether this node is stopping (it takes no new media home).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Cluster mode, graceful stop (SIGTERM): this node takes no new media home, and every meeting whose media it
    /// hosts gets a new home at its next media request: its participants get `transport:closed` with reason
    /// `node-drain` and set their media up again, on another node.
    pub async fn drain_media_homes(&self, node: &str) -> Vec<Outcome> {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
        let meetings = match self.runtime.meeting_ids().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "draining media homes: listing meetings failed");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for m in meetings {
            out.extend(self.rehome_media(&m, node, "node-drain").await);
        }
        out
    }

    /// The meeting's media home died: the meeting gets a new one at its next media request, and every transport
    /// (all on the dead node) is forgotten: each owner gets `transport:closed` with reason `node-lost` and sets up
    /// media again (the guide's client does on a failed transport).
    async fn rehome_media(&self, meeting: &MeetingId, dead: &str, reason: &str) -> Option<Outcome> {
        let mut closed = Vec::new();
        let res = self
            .modify(meeting, |rt| {
                closed.clear();
                if rt.media_home.as_deref() != Some(dead) {
                    return false;
                }
                rt.media_home = None;
                for p in rt.participants.values_mut() {
                    for (t, dir) in [
                        (p.send_transport.take(), ev::Direction::Send),
                        (p.recv_transport.take(), ev::Direction::Recv),
                    ] {
                        if let Some(t) = t {
                            closed.push((p.participant_id.clone(), t, dir));
                        }
                    }
                    p.producers.clear();
                    p.consumers.clear();
                    p.announce_cursor = 0;
                    p.announced_at = None;
                }
                rt.producer_owners.clear();
                rt.consumer_owners.clear();
                rt.transport_owners.clear();
                rt.announce_log.clear();
                true
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e.message, %meeting, "re-homing a meeting's media failed");
            return None;
        }
        if closed.is_empty() {
            return None;
        }
        let mut out = Outcome::default();
        for (owner, transport_id, direction) in closed {
            out = out.emit(
                Target::Participants(vec![owner]),
                "transport:closed",
                &ev::TransportClosed {
                    transport_id,
                    direction,
                    reason: reason.to_owned(),
                },
            );
        }
        Some(out)
    }

    // ---- join / leave

    async fn join(
        &self,
        session: &mut Session,
        meeting: &MeetingId,
        replaces: Option<&ParticipantId>,
    ) -> Result<Outcome, WireError> {
        let who = session.identity.clone();
        let rec = match self
            .store
            .get_meeting(meeting)
            .await
            .map_err(|e| internal("loading meeting", e))?
        {
            Some(rec) => rec,
            None if self.config.dev_mode => self.auto_create(meeting, &who).await?,
            None => {
                return Err(err(
                    ErrorCode::MeetingNotFound,
                    format!("meeting {meeting} not found"),
                ))
            }
        };
        // Access first: whether a meeting has ended is none of an outsider's business.
        if !can_access(&rec, &who) {
            return Err(err(
                ErrorCode::AccessDenied,
                "you do not have access to this meeting",
            ));
        }
        if rec.status == MeetingStatus::Ended {
            return Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        if let Some(m) = &session.membership {
            if &m.meeting == meeting && self.is_present(m).await {
                return Err(WireError::validation(
                    "you have already joined this meeting",
                ));
            }
        }
        // A reconnecting client names the session its dropped connection left behind: if that is this user's, in
        // this meeting, it leaves now (its socket is disconnected) instead of lingering until the ping timeout.
        let mut replaced = Outcome::default();
        if let Some(old) = replaces {
            let mut stale = false;
            let _ = self
                .read(meeting, |rt| {
                    stale = rt
                        .and_then(|r| r.participants.get(old))
                        .is_some_and(|p| p.user_id == who.user_id)
                })
                .await;
            let mine = session
                .membership
                .as_ref()
                .is_some_and(|m| &m.participant == old);
            if stale && !mine {
                let m = Membership {
                    meeting: meeting.clone(),
                    participant: old.clone(),
                };
                // (Should the join still fail below — only a meeting ending at this very moment can do that —
                // these events are dropped; everyone gets `meeting:ended` then anyway.)
                replaced = self.leave(&m, "replaced").await;
                replaced.rooms.clear(); // the requester's rooms are not the replaced socket's
                replaced.disconnect.push(old.clone());
            }
        }
        let role = if rec.host_user_id == who.user_id {
            Role::Host
        } else {
            self.store
                .granted_role(meeting, &who.user_id)
                .await
                .map_err(|e| internal("loading role", e))?
                .unwrap_or(Role::Participant)
        };
        let now = now_ms();
        let pid = ParticipantId::generate();
        let max = rec.max_participants as usize;
        let grace = self.config.rejoin_grace_ms;
        // The snapshot's runtime part is built from the state in place (no copy of a big meeting's state).
        let mut res: Result<(RuntimeSnapshot, usize, bool), WireError> = Err(WireError::internal());
        let mut hand_back = false;
        self.modify(meeting, |rt| {
            if rt.ended {
                res = Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
                return false;
            }
            if rt.participants.len() >= max {
                res = Err(err(
                    ErrorCode::MeetingFull,
                    format!("meeting is full ({max} participants)"),
                ));
                return false;
            }
            let first = rt.participants.is_empty();
            rt.raised_hands_of_dropped
                .retain(|_, at| now.saturating_sub(*at) <= grace);
            hand_back = rt.raised_hands_of_dropped.remove(&who.user_id).is_some();
            rt.next_seq += 1;
            rt.insert_participant(RuntimeParticipant {
                participant_id: pid.clone(),
                user_id: who.user_id.clone(),
                user_name: who.user_name.clone(),
                role,
                hand_raised: hand_back,
                joined_at: now,
                joined_seq: rt.next_seq,
                send_transport: None,
                recv_transport: None,
                producers: Vec::new(),
                consumers: Vec::new(),
                announce_cursor: 0,
                announced_at: None,
                node: self.config.node_id.clone(),
            });
            res = Ok((runtime_snapshot(rt), rt.participants.len(), first));
            true
        })
        .await?;
        let (runtime_state, count, first) = res?;
        metrics::gauge!("meet_participants").increment(1.0);
        if first {
            metrics::gauge!("meet_meetings_active").increment(1.0);
        }
        let membership = Membership {
            meeting: meeting.clone(),
            participant: pid.clone(),
        };
        // Leaving a previous meeting only once the new join is certain, so a refused join changes nothing.
        let mut out = match session.membership.take() {
            Some(old) if self.is_present(&old).await => self.leave(&old, "left").await,
            _ => Outcome::default(),
        };
        // The replaced session's participant-left (and consumer closes) go out before this join's events.
        replaced.emits.append(&mut out.emits);
        out.emits = replaced.emits;
        out.disconnect.append(&mut replaced.disconnect);
        if let Err(e) = self
            .store
            .open_session(&pid, meeting, &who.user_id, &who.user_name, role, now)
            .await
        {
            tracing::error!(error = %e, "recording participant session failed");
        }
        let recent = self
            .store
            .messages_visible(
                meeting,
                &Viewer {
                    user_id: &who.user_id,
                    sees_host_messages: role.can_moderate(),
                },
                None,
                self.config.recent_messages,
            )
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "loading recent chat failed");
                Vec::new()
            });
        let you = ev::You {
            participant_id: pid.clone(),
            user_id: who.user_id.clone(),
            role,
        };
        let (participants, layout, spotlight, screen_share, recording) = runtime_state;
        let state = ev::MeetingState {
            meeting_id: meeting.clone(),
            title: rec.title.clone(),
            you: you.clone(),
            participants,
            layout,
            spotlight,
            screen_share,
            recording,
            settings: ev::MeetingSettings {
                max_participants: rec.max_participants,
                recording_enabled: rec.recording_enabled,
                allow_self_unmute: rec.allow_self_unmute,
            },
            recent_messages: recent.iter().map(new_message).collect(),
        };
        session.membership = Some(membership.clone());
        out.rooms.push(RoomChange::Join(membership));
        // The ack carries no copy of the snapshot (DESIGN §4: it would double every socket's largest write).
        out.reply = crate::wire(&ev::JoinAck {
            meeting_id: meeting.clone(),
            participant_id: pid.clone(),
            you,
        });
        out.emits
            .push(Emit::new(Target::Requester, "meeting-state", &state));
        out.emits.push(Emit::new(
            Target::Meeting(meeting.clone()),
            "participant-joined",
            &ev::ParticipantJoined {
                meeting_id: meeting.clone(),
                participant_id: pid.clone(),
                user_id: who.user_id.clone(),
                user_name: who.user_name.clone(),
                role,
                participant_count: count_u32(count),
            },
        ));
        if hand_back {
            // The others saw the hand go with `participant-left`; tell them it is back.
            out.emits.push(Emit::new(
                Target::MeetingExcept(meeting.clone(), pid.clone()),
                "hand:raised",
                &ev::ParticipantAction {
                    meeting_id: meeting.clone(),
                    participant_id: pid.clone(),
                    user_id: who.user_id.clone(),
                    user_name: who.user_name.clone(),
                    timestamp: iso8601(now),
                },
            ));
        }
        Ok(out)
    }

    async fn auto_create(
        &self,
        meeting: &MeetingId,
        who: &Identity,
    ) -> Result<MeetingRecord, WireError> {
        let rec = MeetingRecord {
            id: meeting.clone(),
            title: meeting.to_string(),
            host_user_id: who.user_id.clone(),
            campus_id: who.campus_id.clone(),
            max_participants: self.config.default_max_participants,
            recording_enabled: true,
            allow_self_unmute: true,
            allowed_campuses: Vec::new(),
            invited_user_ids: Vec::new(),
            status: MeetingStatus::Active,
            created_at: now_ms(),
            ended_at: None,
        };
        if let Err(e) = self.store.insert_meeting(&rec).await {
            // Two first joiners raced: the other one created it.
            return match self.store.get_meeting(meeting).await {
                Ok(Some(existing)) => Ok(existing),
                _ => Err(internal("creating meeting", e)),
            };
        }
        tracing::info!(%meeting, host = %who.user_id, "development mode: meeting created on first join");
        Ok(rec)
    }

    async fn leave(&self, m: &Membership, reason: &str) -> Outcome {
        let mut removed: Option<(RuntimeParticipant, Option<ScreenShare>, usize)> = None;
        let mut recording = None;
        let (now, grace) = (now_ms(), self.config.rejoin_grace_ms);
        let mut dropped_hands = 0;
        let res = self
            .runtime
            .modify(&m.meeting, &mut |rt| {
                let Some(p) = rt.remove_participant(&m.participant) else {
                    return false;
                };
                rt.raised_hands_of_dropped
                    .retain(|_, at| now.saturating_sub(*at) <= grace);
                // Only a dropped connection keeps the hand for a rejoin; leaving on purpose lowers it.
                if matches!(reason, "disconnected" | "replaced" | "node-lost")
                    && p.hand_raised
                    && grace > 0
                {
                    rt.raised_hands_of_dropped.insert(p.user_id.clone(), now);
                }
                dropped_hands = rt.raised_hands_of_dropped.len();
                let share = match &rt.screen_share {
                    Some(s) if s.participant_id == m.participant => rt.screen_share.take(),
                    _ => None,
                };
                if rt.participants.is_empty() {
                    // The last participant left: the recording stops.
                    recording = rt.recording.take();
                }
                removed = Some((p, share, rt.participants.len()));
                true
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "leaving meeting failed");
        }
        let mut out = Outcome::reply(&ev::Empty {});
        out.rooms.push(RoomChange::Leave(m.clone()));
        let Some((p, share, count)) = removed else {
            return out;
        };
        metrics::gauge!("meet_participants").decrement(1.0);
        out.emits
            .extend(self.release_media(&m.meeting, &p, "participant-left").await);
        if let Some(r) = recording {
            self.finish_recording(&m.meeting, &r, None, "empty", now_ms())
                .await;
        }
        if count == 0 {
            metrics::gauge!("meet_meetings_active").decrement(1.0);
            if let Err(e) = self.runtime.remove_if_empty(&m.meeting).await {
                tracing::error!(error = %e, "dropping empty meeting state failed");
            }
            if dropped_hands > 0 {
                // The empty meeting's state is kept for the dropped hands (even the last participant's hand comes
                // back on a rejoin); once the grace period is over, prune them and forget the meeting.
                let (runtime, meeting) = (self.runtime.clone(), m.meeting.clone());
                let wait = Duration::from_millis(u64::try_from(grace).unwrap_or(0) + 100);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let now = now_ms();
                    let pruned = runtime
                        .modify(&meeting, &mut |rt| {
                            let before = rt.raised_hands_of_dropped.len();
                            rt.raised_hands_of_dropped
                                .retain(|_, at| now.saturating_sub(*at) <= grace);
                            rt.raised_hands_of_dropped.len() != before
                        })
                        .await;
                    if let Err(e) = pruned.and(runtime.remove_if_empty(&meeting).await) {
                        tracing::error!(error = %e, "dropping empty meeting state failed");
                    }
                });
            }
        }
        if let Err(e) = self.store.close_session(&m.participant, now_ms()).await {
            tracing::error!(error = %e, "closing participant session failed");
        }
        let now = now_ms();
        if let Some(s) = share {
            out = out.emit(
                Target::Meeting(m.meeting.clone()),
                "screen:stopped",
                &screen_stopped(&m.meeting, &s, now),
            );
        }
        out.emit(
            Target::Meeting(m.meeting.clone()),
            "participant-left",
            &ev::ParticipantLeft {
                meeting_id: m.meeting.clone(),
                participant_id: p.participant_id.clone(),
                user_id: p.user_id.clone(),
                user_name: p.user_name.clone(),
                participant_count: count_u32(count),
                reason: reason.to_owned(),
            },
        )
    }

    // ---- chat

    async fn send_message(
        &self,
        meeting: &MeetingId,
        me: &RuntimeParticipant,
        who: &Identity,
        message: String,
        recipient: Recipient,
        now: i64,
    ) -> Result<Outcome, WireError> {
        let (target, recipient_id) = match &recipient {
            // The common case needs no copy of the meeting's state (big meetings: 10,000 participants).
            Recipient::All => (Target::Meeting(meeting.clone()), None),
            _ => self.chat_target(meeting, who, &recipient).await?,
        };
        let record = ChatRecord {
            id: MessageId::generate(),
            meeting_id: meeting.clone(),
            sender_id: who.user_id.clone(),
            sender_name: me.user_name.clone(),
            message,
            recipient_type: recipient.kind(),
            recipient_id,
            created_at: now,
        };
        // Stored before it is broadcast: a message others saw is never lost.
        self.store
            .insert_message(&record)
            .await
            .map_err(|e| internal("storing chat message", e))?;
        if record.recipient_type == store::RecipientType::All {
            self.record_chat(meeting, &record);
        }
        let payload = new_message(&record);
        Ok(Outcome::reply(&payload).emit(target, "new-message", &payload))
    }

    /// Who a private or host-only chat message reaches (the sender's own sessions too).
    async fn chat_target(
        &self,
        meeting: &MeetingId,
        who: &Identity,
        recipient: &Recipient,
    ) -> Result<(Target, Option<UserId>), WireError> {
        // Only the ids it needs are copied out of the state (no copy of a big meeting's state per message).
        let mut own = Vec::new();
        let mut theirs = Vec::new();
        let mut hosts = Vec::new();
        let mut present = false;
        self.read(meeting, |rt| {
            let Some(rt) = rt else { return };
            present = true;
            own = rt
                .sessions_of(&who.user_id)
                .map(|p| p.participant_id.clone())
                .collect();
            match recipient {
                Recipient::All => {}
                Recipient::Private(to) => {
                    theirs = rt
                        .sessions_of(to)
                        .map(|p| p.participant_id.clone())
                        .collect();
                }
                Recipient::Hosts => {
                    hosts = rt
                        .participants
                        .values()
                        .filter(|p| p.role.can_moderate() && p.user_id != who.user_id)
                        .map(|p| p.participant_id.clone())
                        .collect();
                }
            }
        })
        .await?;
        if !present {
            return Err(self.not_in_meeting());
        }
        Ok(match recipient {
            Recipient::All => (Target::Meeting(meeting.clone()), None),
            Recipient::Private(to) => {
                if *to == who.user_id {
                    return Err(WireError::validation(
                        "you cannot send a private message to yourself",
                    ));
                }
                if theirs.is_empty() {
                    return Err(err(
                        ErrorCode::NotFound,
                        format!("user {to} is not in this meeting"),
                    ));
                }
                (
                    Target::Participants(own.into_iter().chain(theirs).collect()),
                    Some(to.clone()),
                )
            }
            Recipient::Hosts => (
                Target::Participants(own.into_iter().chain(hosts).collect()),
                None,
            ),
        })
    }

    // ---- operations shared with REST

    /// `POST /api/meetings`: the caller becomes the host; the campus comes from the token.
    pub async fn create_meeting(
        &self,
        who: &Identity,
        new: NewMeeting,
    ) -> Result<MeetingRecord, WireError> {
        let title = new.title.unwrap_or_else(|| "Meeting".to_owned());
        let title = title.trim().to_owned();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(WireError::validation(format!(
                "title must be 1-{MAX_TITLE_CHARS} characters"
            )));
        }
        let max = new
            .max_participants
            .unwrap_or(self.config.default_max_participants);
        if !(1..=MAX_PARTICIPANTS_LIMIT).contains(&max) {
            return Err(WireError::validation(format!(
                "maxParticipants must be between 1 and {MAX_PARTICIPANTS_LIMIT}"
            )));
        }
        for (name, list) in [
            ("allowedCampuses", &new.allowed_campuses),
            ("invitedUserIds", &new.invited_user_ids),
        ] {
            if list.len() > MAX_LIST || list.iter().any(|s| s.is_empty() || s.len() > 128) {
                return Err(WireError::validation(format!(
                    "{name} must hold at most {MAX_LIST} non-empty strings of at most 128 bytes"
                )));
            }
        }
        let rec = MeetingRecord {
            id: MeetingId::generate(),
            title,
            host_user_id: who.user_id.clone(),
            campus_id: who.campus_id.clone(),
            max_participants: max,
            recording_enabled: new.recording_enabled.unwrap_or(false),
            allow_self_unmute: new.allow_self_unmute.unwrap_or(true),
            allowed_campuses: new.allowed_campuses,
            invited_user_ids: new.invited_user_ids,
            status: MeetingStatus::Active,
            created_at: now_ms(),
            ended_at: None,
        };
        self.store
            .insert_meeting(&rec)
            .await
            .map_err(|e| internal("creating meeting", e))?;
        tracing::info!(meeting = %rec.id, host = %who.user_id, "meeting created");
        Ok(rec)
    }

    /// A meeting the caller may see, with its live participant count.
    pub async fn meeting_view(
        &self,
        who: &Identity,
        id: &MeetingId,
    ) -> Result<proto::rest::MeetingView, WireError> {
        let rec = self.accessible(who, id).await?;
        let mut count = 0;
        self.read(id, |rt| count = rt.map_or(0, |r| r.participants.len()))
            .await?;
        let mut v = meeting_json(&rec);
        v.participant_count = Some(count_u32(count));
        Ok(v)
    }

    /// Current participants, in join order.
    pub async fn participants(
        &self,
        who: &Identity,
        id: &MeetingId,
    ) -> Result<proto::rest::ParticipantList, WireError> {
        self.accessible(who, id).await?;
        let mut list = Vec::new();
        self.read(id, |rt| {
            list = rt.map_or_else(Vec::new, |r| {
                r.in_join_order()
                    .into_iter()
                    .map(|p| participant_summary(p, false))
                    .collect()
            })
        })
        .await?;
        Ok(proto::rest::ParticipantList { participants: list })
    }

    /// Chat history the caller may see, `limit` messages before message `before`, oldest first.
    pub async fn history(
        &self,
        who: &Identity,
        id: &MeetingId,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<proto::rest::MessagePage, WireError> {
        let rec = self.accessible(who, id).await?;
        let sees_host = rec.host_user_id == who.user_id
            || self
                .store
                .granted_role(id, &who.user_id)
                .await
                .map_err(|e| internal("loading role", e))?
                .is_some_and(Role::can_moderate);
        // One more than asked tells whether an older page exists.
        let mut msgs = self
            .store
            .messages_visible(
                id,
                &Viewer {
                    user_id: &who.user_id,
                    sees_host_messages: sees_host,
                },
                before,
                limit + 1,
            )
            .await
            .map_err(|e| internal("loading chat history", e))?;
        let next = if msgs.len() > limit as usize {
            msgs.remove(0);
            msgs.first().map(|m| m.id.clone())
        } else {
            None
        };
        Ok(proto::rest::MessagePage {
            messages: msgs.iter().map(new_message).collect(),
            next_before: next,
        })
    }

    /// Ends a meeting (host only): everyone gets `meeting:ended` and is removed; sockets stay connected.
    pub async fn end_meeting(&self, who: &Identity, id: &MeetingId) -> Result<Outcome, WireError> {
        let rec = self.meeting_record(id).await?;
        if rec.host_user_id != who.user_id {
            return Err(err(
                ErrorCode::Forbidden,
                "only the host can end the meeting",
            ));
        }
        if rec.status == MeetingStatus::Ended {
            return Err(err(
                ErrorCode::MeetingEnded,
                "this meeting has already ended",
            ));
        }
        let now = now_ms();
        if !self
            .store
            .end_meeting(id, now)
            .await
            .map_err(|e| internal("ending meeting", e))?
        {
            return Err(err(
                ErrorCode::MeetingEnded,
                "this meeting has already ended",
            ));
        }
        let mut gone: Vec<RuntimeParticipant> = Vec::new();
        let mut recording = None;
        self.modify(id, |rt| {
            rt.ended = true;
            recording = rt.recording.take();
            gone = rt.take_participants();
            rt.screen_share = None;
            true
        })
        .await?;
        if !gone.is_empty() {
            metrics::gauge!("meet_participants").decrement(gone.len() as f64);
            metrics::gauge!("meet_meetings_active").decrement(1.0);
        }
        let (runtime, meeting) = (self.runtime.clone(), id.clone());
        let keep = Duration::from_millis(self.config.ended_state_ms);
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            if let Err(e) = runtime.remove(&meeting).await {
                tracing::warn!(error = %e, "dropping an ended meeting's state failed");
            }
        });
        for p in &gone {
            self.release_media(id, p, "participant-left").await;
            if let Err(e) = self.store.close_session(&p.participant_id, now).await {
                tracing::error!(error = %e, "closing participant session failed");
            }
        }
        self.audit(id, &who.user_id, "end", None, "").await;
        tracing::info!(meeting = %id, by = %who.user_id, removed = gone.len(), "meeting ended");
        let mut out = Outcome::reply(&ev::Empty {});
        if let Some(r) = recording {
            let stopped = self
                .finish_recording(id, &r, Some(who_ref(who)), "meeting-ended", now)
                .await;
            out = out.emit(Target::Meeting(id.clone()), "recording:stopped", &stopped);
        }
        let mut out = out.emit(
            Target::Meeting(id.clone()),
            "meeting:ended",
            &ev::MeetingEnded {
                meeting_id: id.clone(),
                ended_by: who_ref(who),
                timestamp: iso8601(now),
            },
        );
        out.close_rooms.push(id.clone());
        Ok(out)
    }

    /// Grants or removes the moderator role (host only; the host's own role cannot change).
    pub async fn change_role(
        &self,
        who: &Identity,
        id: &MeetingId,
        target: &UserId,
        role: Role,
    ) -> Result<Outcome, WireError> {
        let rec = self.meeting_record(id).await?;
        if rec.status == MeetingStatus::Ended {
            return Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        if rec.host_user_id != who.user_id {
            return Err(err(ErrorCode::Forbidden, "only the host can change roles"));
        }
        if *target == rec.host_user_id || role == Role::Host {
            return Err(err(
                ErrorCode::Forbidden,
                "the host's role cannot be given or changed",
            ));
        }
        self.store
            .set_role(id, target, role)
            .await
            .map_err(|e| internal("storing role", e))?;
        self.modify(id, |rt| {
            // By id, so only the target's sessions count as changed (values_mut would mark every participant).
            let sessions: Vec<ParticipantId> = rt
                .sessions_of(target)
                .map(|p| p.participant_id.clone())
                .collect();
            for id in &sessions {
                if let Some(p) = rt.participants.get_mut(id) {
                    p.role = role;
                }
            }
            !sessions.is_empty()
        })
        .await?;
        self.audit(id, &who.user_id, "role", Some(target), role.as_str())
            .await;
        let payload = ev::RoleChanged {
            meeting_id: id.clone(),
            target_user_id: target.clone(),
            role,
            changed_by: who_ref(who),
        };
        Ok(Outcome::reply(&payload).emit(
            Target::Meeting(id.clone()),
            "participant:role-changed",
            &payload,
        ))
    }

    // ---- helpers

    pub(crate) fn not_in_meeting(&self) -> WireError {
        err(ErrorCode::NotInMeeting, "join the meeting first")
    }

    /// The requester's participant record, if the socket is (still) in `meeting`.
    async fn member(
        &self,
        session: &Session,
        meeting: &MeetingId,
    ) -> Result<RuntimeParticipant, WireError> {
        let Some(m) = session
            .membership
            .as_ref()
            .filter(|m| &m.meeting == meeting)
        else {
            return Err(self.not_in_meeting());
        };
        let mut found = None;
        self.read(meeting, |rt| {
            found = rt.and_then(|r| r.participants.get(&m.participant).cloned())
        })
        .await?;
        found.ok_or_else(|| self.not_in_meeting())
    }

    async fn is_present(&self, m: &Membership) -> bool {
        let mut present = false;
        let _ = self
            .read(&m.meeting, |rt| {
                present = rt.is_some_and(|r| r.participants.contains_key(&m.participant))
            })
            .await;
        present
    }

    /// The user's name when they are in the meeting; NOT_FOUND otherwise.
    async fn require_present(
        &self,
        meeting: &MeetingId,
        user: &UserId,
    ) -> Result<String, WireError> {
        let mut name = None;
        self.read(meeting, |rt| {
            name = rt.and_then(|r| r.sessions_of(user).next().map(|p| p.user_name.clone()))
        })
        .await?;
        name.ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!("user {user} is not in this meeting"),
            )
        })
    }

    pub(crate) async fn meeting_record_pub(
        &self,
        id: &MeetingId,
    ) -> Result<MeetingRecord, WireError> {
        self.meeting_record(id).await
    }

    async fn meeting_record(&self, id: &MeetingId) -> Result<MeetingRecord, WireError> {
        self.store
            .get_meeting(id)
            .await
            .map_err(|e| internal("loading meeting", e))?
            .ok_or_else(|| {
                err(
                    ErrorCode::MeetingNotFound,
                    format!("meeting {id} not found"),
                )
            })
    }

    async fn accessible(&self, who: &Identity, id: &MeetingId) -> Result<MeetingRecord, WireError> {
        let rec = self.meeting_record(id).await?;
        if !can_access(&rec, who) {
            return Err(err(
                ErrorCode::AccessDenied,
                "you do not have access to this meeting",
            ));
        }
        Ok(rec)
    }

    /// Runs `f` on the meeting's runtime state. The store creates the state when it is missing (a join needs
    /// that); when `f` leaves it empty — a pacer tick or a late media report racing the last leave — it is dropped
    /// again, so no call leaves an empty meeting behind.
    pub(crate) async fn modify(
        &self,
        meeting: &MeetingId,
        mut f: impl FnMut(&mut MeetingRuntime) -> bool + Send,
    ) -> Result<(), WireError> {
        let mut empty = false;
        self.runtime
            .modify(meeting, &mut |rt| {
                let changed = f(rt);
                empty = rt.participants.is_empty() && !rt.ended;
                changed
            })
            .await
            .map_err(|e| unavailable("updating meeting state", e))?;
        if empty {
            if let Err(e) = self.runtime.remove_if_empty(meeting).await {
                tracing::warn!(error = %e, "dropping empty meeting state failed");
            }
        }
        Ok(())
    }

    pub(crate) async fn read(
        &self,
        meeting: &MeetingId,
        mut f: impl FnMut(Option<&MeetingRuntime>) + Send,
    ) -> Result<(), WireError> {
        self.runtime
            .read(meeting, &mut f)
            .await
            .map_err(|e| unavailable("reading meeting state", e))
    }

    pub(crate) async fn rate_limit(
        &self,
        meeting: &MeetingId,
        user: &UserId,
        event: &str,
        limit: Limit,
    ) -> Result<(), WireError> {
        let key = format!("{meeting}/{user}/{event}");
        match self.limiter.check(&key, limit).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => {
                let mut e = err(
                    ErrorCode::RateLimitExceeded,
                    format!(
                        "rate limit exceeded for {event}: at most {} per {} s",
                        limit.count,
                        limit.window.as_secs_f64()
                    ),
                );
                e.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
                Err(e)
            }
            Err(e) => Err(unavailable("rate limiter", e)),
        }
    }

    pub(crate) async fn audit(
        &self,
        meeting: &MeetingId,
        actor: &UserId,
        action: &str,
        target: Option<&UserId>,
        detail: &str,
    ) {
        if let Err(e) = self
            .store
            .audit(meeting, actor, action, target, detail, now_ms())
            .await
        {
            tracing::error!(error = %e, "writing audit log failed");
        }
    }
}

fn layout_str(l: Layout) -> &'static str {
    match l {
        Layout::Grid => "grid",
        Layout::Speaker => "speaker",
        Layout::Presentation => "presentation",
    }
}

/// The runtime part of the `meeting-state` snapshot (participants in join order, layout, spotlight, screen share),
/// built from the state in place.
type RuntimeSnapshot = (
    Vec<ev::ParticipantSummary>,
    Layout,
    Option<ev::Spotlight>,
    Option<ev::ScreenShare>,
    ev::RecordingStatus,
);

fn runtime_snapshot(rt: &MeetingRuntime) -> RuntimeSnapshot {
    (
        rt.in_join_order()
            .into_iter()
            .map(|p| participant_summary(p, true))
            .collect(),
        rt.layout,
        rt.spotlight
            .as_ref()
            .map(|u| ev::Spotlight { user_id: u.clone() }),
        rt.screen_share.as_ref().map(|s| ev::ScreenShare {
            participant_id: s.participant_id.clone(),
            user_id: s.user_id.clone(),
            user_name: s.user_name.clone(),
        }),
        crate::recording::recording_status(rt, now_ms()),
    )
}

/// A participant count on the wire (a meeting holds at most `MAX_PARTICIPANTS_LIMIT`, far below `u32::MAX`).
pub(crate) fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn screen_stopped(
    meeting: &MeetingId,
    s: &ScreenShare,
    now: i64,
) -> ev::ParticipantAction {
    ev::ParticipantAction {
        meeting_id: meeting.clone(),
        participant_id: s.participant_id.clone(),
        user_id: s.user_id.clone(),
        user_name: s.user_name.clone(),
        timestamp: iso8601(now),
    }
}
