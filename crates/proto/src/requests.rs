//! Client → server request payloads, one struct per shape. `meeting::request` validates a payload against these
//! (serde names the field and what was expected) before its own checks (id charset, lengths, the emoji list), so
//! the contract generated from them is the one the server enforces. Unknown fields are ignored.

use crate::events::{Direction, GrantableRole, MediaKind, Quality, RecipientType, Source};
use crate::{Layout, MeetingId, ParticipantId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use utoipa::ToSchema;

/// `{meetingId}`: `leave-meeting`, `screen:start|stop`, `hand:raise|lower`, `meeting:end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingRequest {
    pub meeting_id: MeetingId,
}

/// `join-meeting`. Identity always comes from the JWT: `userId`/`userName` are accepted (the guide sends them) and
/// ignored. `previousParticipantId` (our extension) replaces this user's dropped session at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinMeeting {
    pub meeting_id: MeetingId,
    /// Ignored (any JSON is accepted, as before this struct existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "string")]
    pub user_id: Option<Value>,
    /// Ignored (any JSON is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "string")]
    pub user_name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub previous_participant_id: Option<ParticipantId>,
}

/// `participant:mute` / `participant:unmute`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteRequest {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
    pub mute_type: MediaKind,
}

/// `reaction:send`; `emoji` is one of the guide's ten (`proto::REACTION_EMOJI`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionSend {
    pub meeting_id: MeetingId,
    pub emoji: String,
}

/// `layout:change`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayoutChange {
    pub meeting_id: MeetingId,
    pub layout: Layout,
}

/// `participant:pin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinRequest {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
}

/// `participant:spotlight`; a null or missing `targetUserId` clears the spotlight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpotlightRequest {
    pub meeting_id: MeetingId,
    #[serde(default)]
    #[ts(optional = nullable)]
    pub target_user_id: Option<UserId>,
}

/// `participant:role` (host only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRequest {
    pub meeting_id: MeetingId,
    pub target_user_id: UserId,
    pub role: GrantableRole,
}

/// `stats` of `stats:report`: non-negative numbers, any may be omitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub rtt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub packet_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub jitter: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bitrate: Option<f64>,
}

/// `stats:report`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub meeting_id: MeetingId,
    pub stats: Stats,
}

/// `recording:start|stop|pause|resume` (`options` only for start; at least one of them true).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingRequest {
    pub meeting_id: MeetingId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub options: Option<RecordingOptionsRequest>,
}

/// The guide's recording `options`; a missing one is true.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingOptionsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub record_video: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub record_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub record_chat: Option<bool>,
}

/// `send-message`: 1–2000 characters, not blank; `recipientId` names a user and is required for `private`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub meeting_id: MeetingId,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub recipient_type: Option<RecipientType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional = nullable)]
    pub recipient_id: Option<UserId>,
}

/// `typing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    pub meeting_id: MeetingId,
    pub typing: bool,
}

/// `create-transport`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTransport {
    pub meeting_id: MeetingId,
    pub direction: Direction,
}

/// `restart-ice`: new ICE credentials for one of the requester's own transports (mediasoup's `restartIce`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartIce {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub meeting_id: Option<MeetingId>,
    pub transport_id: String,
}

/// `connect-transport`: mediasoup-client's `connect` event data (`meetingId` optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectTransport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub meeting_id: Option<MeetingId>,
    pub transport_id: String,
    #[ts(type = "unknown")]
    pub dtls_parameters: Value,
}

/// `appData` of `produce`: `source` is `mic`, `camera` or `screen` (default by kind).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct ProduceAppData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub source: Option<Source>,
}

/// `produce`: mediasoup-client's `produce` event data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Produce {
    pub meeting_id: MeetingId,
    pub kind: MediaKind,
    #[ts(type = "unknown")]
    pub rtp_parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub app_data: Option<ProduceAppData>,
}

/// `consume`: either `producerId`, or the guide's `producerParticipantId` + `kind` (+ `source`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consume {
    pub meeting_id: MeetingId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub producer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub producer_participant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub kind: Option<MediaKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub source: Option<Source>,
    #[ts(type = "unknown")]
    pub rtp_capabilities: Value,
}

/// `pause-consumer` / `resume-consumer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerRequest {
    pub consumer_id: String,
}

/// `producer:pause` / `producer:resume` / `producer:close`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerRequest {
    pub producer_id: String,
}

/// `quality:change`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityChange {
    pub meeting_id: MeetingId,
    pub participant_id: String,
    pub quality: Quality,
}

/// `auth:refresh`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct AuthRefresh {
    pub token: String,
}
