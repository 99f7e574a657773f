//! Error codes on the wire. Built in one place so every surface (socket `error` event, ack, HTTP) agrees.

use serde::{Deserialize, Serialize};

/// Every code a client can see. The guide's codes first, then the ones DESIGN.md §4 adds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    // --- the guide's
    MeetingNotFound,
    AccessDenied,
    MeetingFull,
    MeetingEnded,
    RateLimitExceeded,
    UnauthorizedRecording,
    RecordingDisabled,
    // --- ours
    ValidationError,
    NotInMeeting,
    Forbidden,
    NotFound,
    CannotConsume,
    ScreenShareActive,
    NotSupported,
    InternalError,
    /// REST only: missing or invalid bearer token.
    Unauthorized,
    /// `recording:start` while the meeting is already being recorded.
    RecordingActive,
    /// `recording:stop|pause|resume` while the meeting is not being recorded.
    RecordingNotActive,
    /// `recording:pause` while the recording is already paused.
    RecordingPaused,
    /// `recording:resume` while the recording is not paused.
    RecordingNotPaused,
    /// `recording:start` refused by this node's limits (concurrent recordings, free disk space).
    RecordingUnavailable,
    /// A backend this node shares with the cluster (Redis, in cluster mode) is unreachable: nothing changed; retry
    /// later.
    ServiceUnavailable,
}

/// Every code, in declaration order (for generated clients and docs).
pub const ALL_CODES: [ErrorCode; 22] = [
    ErrorCode::MeetingNotFound,
    ErrorCode::AccessDenied,
    ErrorCode::MeetingFull,
    ErrorCode::MeetingEnded,
    ErrorCode::RateLimitExceeded,
    ErrorCode::UnauthorizedRecording,
    ErrorCode::RecordingDisabled,
    ErrorCode::ValidationError,
    ErrorCode::NotInMeeting,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::CannotConsume,
    ErrorCode::ScreenShareActive,
    ErrorCode::NotSupported,
    ErrorCode::InternalError,
    ErrorCode::Unauthorized,
    ErrorCode::RecordingActive,
    ErrorCode::RecordingNotActive,
    ErrorCode::RecordingPaused,
    ErrorCode::RecordingNotPaused,
    ErrorCode::RecordingUnavailable,
    ErrorCode::ServiceUnavailable,
];

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MeetingNotFound => "MEETING_NOT_FOUND",
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::MeetingFull => "MEETING_FULL",
            ErrorCode::MeetingEnded => "MEETING_ENDED",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::UnauthorizedRecording => "UNAUTHORIZED_RECORDING",
            ErrorCode::RecordingDisabled => "RECORDING_DISABLED",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::NotInMeeting => "NOT_IN_MEETING",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::CannotConsume => "CANNOT_CONSUME",
            ErrorCode::ScreenShareActive => "SCREEN_SHARE_ACTIVE",
            ErrorCode::NotSupported => "NOT_SUPPORTED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::RecordingActive => "RECORDING_ACTIVE",
            ErrorCode::RecordingNotActive => "RECORDING_NOT_ACTIVE",
            ErrorCode::RecordingPaused => "RECORDING_PAUSED",
            ErrorCode::RecordingNotPaused => "RECORDING_NOT_PAUSED",
            ErrorCode::RecordingUnavailable => "RECORDING_UNAVAILABLE",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status a REST response with this code carries.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::ValidationError | ErrorCode::CannotConsume => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::AccessDenied
            | ErrorCode::Forbidden
            | ErrorCode::UnauthorizedRecording
            | ErrorCode::RecordingDisabled
            | ErrorCode::NotInMeeting => 403,
            ErrorCode::MeetingNotFound | ErrorCode::NotFound => 404,
            ErrorCode::MeetingEnded
            | ErrorCode::MeetingFull
            | ErrorCode::ScreenShareActive
            | ErrorCode::RecordingActive
            | ErrorCode::RecordingNotActive
            | ErrorCode::RecordingPaused
            | ErrorCode::RecordingNotPaused => 409,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::NotSupported
            | ErrorCode::RecordingUnavailable
            | ErrorCode::ServiceUnavailable => 503,
            ErrorCode::InternalError => 500,
        }
    }
}

/// A coded error as it goes on the wire: `{code, message, event?, retryAfterMs?}`.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error, ts_rs::TS, utoipa::ToSchema,
)]
#[error("{code:?}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub event: Option<String>,
    #[serde(
        rename = "retryAfterMs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional)]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            event: None,
            retry_after_ms: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::InternalError,
            "internal error; it has been logged",
        )
    }

    pub fn for_event(mut self, event: &str) -> Self {
        self.event = Some(event.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_the_guide() {
        let mut e =
            WireError::new(ErrorCode::RateLimitExceeded, "slow down").for_event("send-message");
        e.retry_after_ms = Some(1200);
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"code":"RATE_LIMIT_EXCEEDED","message":"slow down","event":"send-message","retryAfterMs":1200})
        );
        assert_eq!(ErrorCode::MeetingFull.as_str(), "MEETING_FULL");
    }
}
