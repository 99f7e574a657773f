//! Wire types shared by every layer: typed ids, error codes and the payloads the server emits.
//!
//! Nothing here does I/O. Incoming payloads are parsed and validated in `meeting::request` (parse at the edge,
//! once); outgoing payloads are plain serde structs so the wire shape is visible in one place.

pub mod error;
pub mod events;
pub mod ids;
pub mod requests;
pub mod rest;
pub mod time;
pub mod typescript;

pub use error::{ErrorCode, WireError};
pub use ids::{MeetingId, MessageId, ParticipantId, RecordingId, UserId};

/// Roles inside one meeting. The host created it; moderators are granted by a host.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Moderator,
    Participant,
}

impl Role {
    /// Hosts and moderators may moderate (mute, spotlight, layout, recording).
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Host | Role::Moderator)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Moderator => "moderator",
            Role::Participant => "participant",
        }
    }
}

/// The meeting-wide layout (`layout:change`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Grid,
    Speaker,
    Presentation,
}

/// The guide's ten reaction emoji, exactly.
pub const REACTION_EMOJI: [&str; 10] = ["👍", "❤️", "😂", "😮", "😢", "👏", "🎉", "🤔", "👎", "🔥"];

/// Longest chat message accepted, in characters (Unicode scalar values).
pub const MAX_CHAT_CHARS: usize = 2000;
