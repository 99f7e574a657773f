//! One struct per payload on the wire: every server → client event and ack, every client → server request.
//!
//! These are the single source of truth for the contract. The domain (`meeting`) builds every outgoing event from
//! them; `clients/ts/src/index.ts` is generated from them (`contract::typescript`, checked by a test), so the guide's
//! field names (camelCase, except `new-message`'s snake_case) cannot drift between the server, the docs and the
//! clients. Opaque mediasoup shapes (RTP parameters, ICE/DTLS parameters) stay `JsonValue`: the SFU owns them.

use crate::{Layout, MeetingId, MessageId, ParticipantId, RecordingId, Role, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------------------------
// Enums shared by several payloads

/// `audio` or `video` (a producer's or consumer's kind, a moderator's `muteType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What a producer carries (`appData.source` of `produce`; default `mic` for audio, `camera` for video).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Mic,
    Camera,
    Screen,
}

/// A transport's direction, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

/// The preferred quality a subscriber asks for (`quality:change`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Low,
    Medium,
    High,
}

/// Who a chat message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecipientType {
    All,
    Private,
    Host,
}

/// Roles a host may give (`participant:role`): never `host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantableRole {
    Moderator,
    Participant,
}

/// `{userId, userName}`: who did something (`changedBy`, `endedBy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    pub user_id: UserId,
    pub user_name: String,
}

// ---------------------------------------------------------------------------------------------------------------
// Server → client: meeting and presence

/// `participant-joined`: to everyone in the meeting, the joiner included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJoined {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub role: Role,
    pub participant_count: u32,
}

/// `participant-left`. `reason`: `left`, `disconnected`, `replaced`, `meeting-ended`, `node-lost`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantLeft {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub participant_count: u32,
    pub reason: String,
}

/// `screen:started`, `screen:stopped`, `hand:raised`, `hand:lowered`: something one participant did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantAction {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub timestamp: String,
}

/// `reaction:received`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionReceived {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub emoji: String,
    pub timestamp: String,
}

/// `user-typing`: to everyone but the typist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserTyping {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub typing: bool,
}

/// `participant:muted` / `participant:unmuted` (a moderator's mute of one kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantMuted {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
    pub mute_type: MediaKind,
    pub moderator_id: UserId,
    pub moderator_name: String,
    pub timestamp: String,
}

/// The `participant:unmute` ack: `participant:unmuted` plus whether anything was muted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmuteAck {
    #[serde(flatten)]
    pub unmuted: ParticipantMuted,
    pub lifted: bool,
}

/// `layout:changed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayoutChanged {
    pub meeting_id: MeetingId,
    pub layout: Layout,
    pub changed_by: UserRef,
    pub timestamp: String,
}

/// `participant:pinned` (to the requester only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantPinned {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
    pub timestamp: String,
}

/// `participant:spotlighted`; `targetUserId` and `userName` are null when the spotlight was cleared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantSpotlighted {
    pub meeting_id: MeetingId,
    pub target_user_id: Option<UserId>,
    pub user_name: Option<String>,
    pub changed_by: UserRef,
    pub timestamp: String,
}

/// `participant:role-changed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleChanged {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
    pub role: Role,
    pub changed_by: UserRef,
}

/// `meeting:ended`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingEnded {
    pub meeting_id: MeetingId,
    pub ended_by: UserRef,
    pub timestamp: String,
}

/// `new-message`: the guide's snake_case fields, exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct NewMessage {
    pub id: MessageId,
    pub meeting_id: MeetingId,
    pub sender_id: UserId,
    pub sender_name: String,
    pub message: String,
    /// Always `text` today.
    pub message_type: String,
    pub recipient_type: RecipientType,
    pub recipient_id: Option<UserId>,
    pub timestamp: String,
}

// ---------------------------------------------------------------------------------------------------------------
// Server → client: the join snapshot

/// `you` in `meeting-state` and the `join-meeting` ack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct You {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub role: Role,
}

/// A producer in the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerSummary {
    pub producer_id: String,
    pub kind: MediaKind,
    pub source: Source,
    pub paused: bool,
}

/// A participant in the snapshot and in `GET /api/meetings/{id}/participants` (there without `producers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantSummary {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub role: Role,
    pub hand_raised: bool,
    pub joined_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub producers: Option<Vec<ProducerSummary>>,
}

/// `spotlight` in the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spotlight {
    pub user_id: UserId,
}

/// `screenShare` in the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScreenShare {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
}

/// `recording` in the snapshot: `{state: 'idle'}`, or the running recording (a late joiner shows the indicator).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStatus {
    /// `idle` | `recording` | `paused`
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub recording_id: Option<RecordingId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub started_by: Option<UserRef>,
    /// ISO 8601, when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub options: Option<RecordingOptions>,
    /// Recorded time so far (paused spans left out), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub duration_ms: Option<u64>,
}

/// What a recording records (the guide's `options`; each defaults to true).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingOptions {
    pub record_video: bool,
    pub record_audio: bool,
    pub record_chat: bool,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        Self {
            record_video: true,
            record_audio: true,
            record_chat: true,
        }
    }
}

/// `recording:started`: to everyone in the meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStarted {
    pub meeting_id: MeetingId,
    pub recording_id: RecordingId,
    /// The name of who started it (the guide's field).
    pub host_name: String,
    pub started_by: UserRef,
    pub options: RecordingOptions,
    pub timestamp: String,
}

/// `recording:stopped`: to everyone in the meeting. `reason`: `stopped` (a host or moderator),
/// `meeting-ended`, `empty` (the last participant left), `max-duration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStopped {
    pub meeting_id: MeetingId,
    pub recording_id: RecordingId,
    pub host_name: String,
    /// Who stopped it; null when the server did (`reason` says why).
    pub stopped_by: Option<UserRef>,
    /// Recorded time, paused spans left out.
    pub duration_ms: u64,
    pub reason: String,
    pub timestamp: String,
}

/// `recording:paused` / `recording:resumed`: to everyone in the meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingPausedEvent {
    pub meeting_id: MeetingId,
    pub recording_id: RecordingId,
    pub host_name: String,
    pub by: UserRef,
    /// Recorded time so far, paused spans left out.
    pub duration_ms: u64,
    pub timestamp: String,
}

/// `settings` in the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingSettings {
    pub max_participants: u32,
    pub recording_enabled: bool,
    pub allow_self_unmute: bool,
}

/// `meeting-state`: the joiner's snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingState {
    pub meeting_id: MeetingId,
    pub title: String,
    pub you: You,
    pub participants: Vec<ParticipantSummary>,
    pub layout: Layout,
    pub spotlight: Option<Spotlight>,
    pub screen_share: Option<ScreenShare>,
    pub recording: RecordingStatus,
    pub settings: MeetingSettings,
    pub recent_messages: Vec<NewMessage>,
}

/// The `join-meeting` ack (besides `ok`); the snapshot comes in `meeting-state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinAck {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub you: You,
}

// ---------------------------------------------------------------------------------------------------------------
// Server → client: media

/// `new-producer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewProducer {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub producer_id: String,
    pub kind: MediaKind,
    pub source: Source,
}

/// `producer:paused` / `producer:resumed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerPaused {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub producer_id: String,
    pub kind: MediaKind,
    pub source: Source,
    pub by_moderator: bool,
}

/// `iceParameters` of a transport (the server is ICE-lite).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceParameters {
    pub username_fragment: String,
    pub password: String,
    pub ice_lite: bool,
}

/// One entry of `iceServers` (the browser's `RTCIceServer`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub credential: Option<String>,
    /// `"password"` whenever there are credentials.
    #[serde(
        default,
        rename = "credentialType",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional)]
    pub credential_type: Option<String>,
}

/// One ICE candidate of a transport.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct IceCandidate {
    pub foundation: String,
    pub priority: u32,
    pub ip: String,
    pub address: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    pub port: u16,
    /// `host`.
    #[serde(rename = "type")]
    pub candidate_type: String,
    /// `passive` on TCP candidates (the server only accepts connections).
    #[serde(default, rename = "tcpType", skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub tcp_type: Option<String>,
}

/// A DTLS certificate fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct DtlsFingerprint {
    pub algorithm: String,
    pub value: String,
}

/// `dtlsParameters` of a transport (`role` is `auto` from the server, `client` or `server` from a browser).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct DtlsParameters {
    pub role: String,
    pub fingerprints: Vec<DtlsFingerprint>,
}

/// What mediasoup-client's `createSendTransport` / `createRecvTransport` takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportParams {
    pub id: String,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub dtls_parameters: DtlsParameters,
    /// TURN servers for this user (time-limited credentials), when the operator configured TURN; mediasoup-client
    /// hands them to its RTCPeerConnection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ice_servers: Option<Vec<IceServer>>,
    /// `"relay"` when the operator forces TURN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ice_transport_policy: Option<String>,
    /// Fields the media plane adds that this struct does not name yet (kept, so nothing is dropped on the way).
    #[serde(flatten)]
    #[ts(skip)]
    pub extra: serde_json::Map<String, Value>,
}

/// `transport-created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct TransportCreated {
    pub direction: Direction,
    pub params: TransportParams,
}

/// `ice-restarted` (and the `restart-ice` ack): the transport's new ICE credentials; hand `iceParameters` to
/// mediasoup-client's `transport.restartIce({ iceParameters })`. DTLS, producers and consumers are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceRestarted {
    pub transport_id: String,
    pub ice_parameters: IceParameters,
}

/// `transport-connected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportConnected {
    pub transport_id: String,
}

/// `produced`; `paused` only when a moderator's mute of that kind holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Produced {
    pub producer_id: String,
    pub kind: MediaKind,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub paused: Option<bool>,
}

/// `subscribed`: what mediasoup-client's `transport.consume` takes, plus who it is from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub id: String,
    pub producer_id: String,
    pub kind: MediaKind,
    #[ts(type = "unknown")]
    pub rtp_parameters: Value,
    /// `simple` or `simulcast`.
    #[serde(rename = "type")]
    pub consumer_type: String,
    pub producer_paused: bool,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub source: Source,
}

/// The `pause-consumer` / `resume-consumer` ack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerPausedAck {
    pub consumer_id: String,
    pub paused: bool,
}

/// The `producer:pause` / `producer:resume` / `producer:close` ack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerAck {
    pub producer_id: String,
}

/// `quality:changed` (to the requester).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityChanged {
    pub participant_id: String,
    pub quality: Quality,
}

/// `consumer-closed`. `reason`: `producer-closed` or `participant-left`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerClosed {
    pub consumer_id: String,
    pub producer_id: String,
    pub reason: String,
}

/// `transport:closed`. `reason`: `dtls-failed`, `ice-timeout`, `connect-timeout`, `transport-error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportClosed {
    pub transport_id: String,
    pub direction: Direction,
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------------------------
// Server → client: speakers (from the audio-level header extension, measured on the server)

/// `active-speaker` (to the meeting): the dominant speaker changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSpeaker {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: UserId,
}

/// One entry of `audio-levels`: a linear amplitude, 0 (silence) to 1 (0 dBov), averaged over the last 500 ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioLevel {
    pub participant_id: ParticipantId,
    pub level: f64,
}

/// `audio-levels` (to the meeting, at most every 500 ms while someone makes a sound): the loudest few, loudest
/// first; an empty list once when the meeting falls silent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioLevels {
    pub meeting_id: MeetingId,
    pub levels: Vec<AudioLevel>,
}

/// `producer:layers-needed` (to the producer's owner): how many spatial layers (simulcast encodings, lowest
/// first) its consumers need now; the client may stop sending the others (mediasoup-client `setMaxSpatialLayer`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerLayersNeeded {
    pub producer_id: String,
    pub spatial_layers: u32,
}

/// `consumer:layers-changed` (to the consumer's owner): the spatial layer (and its highest temporal layer) a simulcast
/// consumer now receives — mediasoup's `layerschange`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLayersChanged {
    pub consumer_id: String,
    pub spatial_layer: u32,
    pub temporal_layer: u32,
}

/// A participant's connection quality, best first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionQualityLevel {
    Excellent,
    Good,
    Poor,
    Lost,
}

/// `connection-quality` (to the meeting): a participant's connection quality changed (the worse of its send and
/// recv transports, measured on the server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionQuality {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub quality: ConnectionQualityLevel,
}

// ---------------------------------------------------------------------------------------------------------------
// Server → client: connection

/// `auth:expired`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthExpired {
    pub expired_at: String,
    pub grace_ms: u64,
}

/// The `auth:refresh` ack; `expiresAt` is null for a token without `exp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthRefreshAck {
    pub expires_at: Option<String>,
}

/// `server:shutdown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerShutdown {
    pub reconnect_after_ms: u64,
}

/// Acks with nothing but `ok`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct Empty {}

/// The `hand:raise` / `hand:lower` ack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandAck {
    pub hand_raised: bool,
}

/// The `screen:start` ack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct ScreenStartAck {
    pub sharing: bool,
}

/// A successful ack: `{ok: true, …reply}` (the reply is one of the ack structs above).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AckOk<'a, T: Serialize> {
    pub ok: bool,
    #[serde(flatten)]
    pub reply: &'a T,
}

impl<'a, T: Serialize> AckOk<'a, T> {
    pub fn new(reply: &'a T) -> Self {
        Self { ok: true, reply }
    }
}

/// A failed ack: `{ok: false, error: {code, message, event, retryAfterMs?}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AckErr<'a> {
    pub ok: bool,
    pub error: &'a crate::WireError,
}

impl<'a> AckErr<'a> {
    pub fn new(error: &'a crate::WireError) -> Self {
        Self { ok: false, error }
    }
}
