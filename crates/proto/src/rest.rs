//! REST bodies (`crates/api`), one struct each, so the OpenAPI document and the TypeScript declarations come from
//! the same source as the handlers' JSON.

use crate::events::{IceServer, NewMessage, ParticipantSummary};
use crate::{MeetingId, MessageId, UserId};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `active` or `ended`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MeetingStatus {
    Active,
    Ended,
}

/// A meeting (`POST /api/meetings` → 201, `GET /api/meetings/{id}` with `participantCount`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingView {
    pub meeting_id: MeetingId,
    pub title: String,
    pub host_user_id: UserId,
    pub campus_id: String,
    pub max_participants: u32,
    pub recording_enabled: bool,
    pub allow_self_unmute: bool,
    pub allowed_campuses: Vec<String>,
    pub invited_user_ids: Vec<String>,
    pub status: MeetingStatus,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// Live participants (`GET /api/meetings/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub participant_count: Option<u32>,
}

/// `GET /api/meetings/{id}/participants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct ParticipantList {
    pub participants: Vec<ParticipantSummary>,
}

/// `GET /api/meetings/{id}/messages`: oldest first; `nextBefore` pages further back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub messages: Vec<NewMessage>,
    pub next_before: Option<MessageId>,
}

/// A REST error: `{error: {code, message}}` with the code's HTTP status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct RestError {
    pub error: RestErrorBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct RestErrorBody {
    pub code: crate::ErrorCode,
    pub message: String,
}

/// `POST /api/meetings/{id}/end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
pub struct RestOk {
    pub ok: bool,
}

/// `PUT /api/meetings/{id}/roles/{userId}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSet {
    pub ok: bool,
    pub user_id: UserId,
    pub role: crate::Role,
}

/// `GET /meeting/{id}/webrtc-config`: the router's RTP capabilities (mediasoup-client's `device.load`); with a
/// token also the caller's TURN servers and the relay policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebRtcConfig {
    /// mediasoup's `RtpCapabilities` (opaque: pass to `device.load({routerRtpCapabilities})`).
    #[ts(type = "unknown")]
    pub rtp_capabilities: serde_json::Value,
    /// With a token, when TURN is configured: that user's servers (time-limited credentials with a shared secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ice_servers: Option<Vec<IceServer>>,
    /// With a token: `"relay"` when the operator forces TURN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ice_transport_policy: Option<String>,
}

/// `POST /dev/token` (development mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    pub token: String,
    pub user_id: UserId,
}
