//! Wire types shared by every layer: typed ids, error codes and the payloads the server emits.
//!
//! Nothing here does I/O. Incoming payloads are parsed and validated in `meeting::request` (parse at the edge,
//! once); outgoing payloads are plain serde structs so the wire shape is visible in one place.

/// Every type of the contract, in declaration order: `$m!(A, B, …)`. The TypeScript declarations
/// ([`typescript`]) and the JSON Schemas of the published documents ([`schemas`]) are both made from this list, so a
/// payload added here is in all of them (and a table entry in [`typescript`] naming a type missing here fails the
/// `tables_name_known_schemas` test).
macro_rules! contract_types {
    ($m:ident) => {
        $m!(
            // ids, enums and errors
            MeetingId,
            ParticipantId,
            UserId,
            MessageId,
            Role,
            Layout,
            MediaKind,
            Source,
            Direction,
            Quality,
            RecipientType,
            GrantableRole,
            ErrorCode,
            WireError,
            UserRef,
            // server -> client
            ParticipantJoined,
            ParticipantLeft,
            ParticipantAction,
            ReactionReceived,
            UserTyping,
            ParticipantMuted,
            UnmuteAck,
            LayoutChanged,
            ParticipantPinned,
            ParticipantSpotlighted,
            RoleChanged,
            MeetingEnded,
            NewMessage,
            You,
            ProducerSummary,
            ParticipantSummary,
            Spotlight,
            ScreenShare,
            RecordingId,
            RecordingOptions,
            RecordingStatus,
            RecordingStarted,
            RecordingStopped,
            RecordingPausedEvent,
            MeetingSettings,
            MeetingState,
            JoinAck,
            NewProducer,
            ProducerPaused,
            IceParameters,
            IceCandidate,
            DtlsFingerprint,
            DtlsParameters,
            TransportParams,
            TransportCreated,
            TransportConnected,
            IceRestarted,
            IceServer,
            Produced,
            Subscribed,
            ConsumerPausedAck,
            ProducerAck,
            QualityChanged,
            ConsumerClosed,
            TransportClosed,
            ActiveSpeaker,
            AudioLevel,
            AudioLevels,
            ConnectionQualityLevel,
            ConnectionQuality,
            ProducerLayersNeeded,
            ConsumerLayersChanged,
            AuthExpired,
            AuthRefreshAck,
            ServerShutdown,
            Empty,
            HandAck,
            ScreenStartAck,
            // client -> server
            MeetingRequest,
            JoinMeeting,
            MuteRequest,
            ReactionSend,
            LayoutChange,
            PinRequest,
            SpotlightRequest,
            RoleRequest,
            Stats,
            StatsReport,
            RecordingRequest,
            RecordingOptionsRequest,
            SendMessage,
            TypingRequest,
            CreateTransport,
            ConnectTransport,
            RestartIce,
            ProduceAppData,
            Produce,
            Consume,
            ConsumerRequest,
            ProducerRequest,
            QualityChange,
            AuthRefresh,
            // REST
            MeetingStatus,
            MeetingView,
            ParticipantList,
            MessagePage,
            RestErrorBody,
            RestError,
            RestOk,
            RoleSet,
            WebRtcConfig,
            DevToken,
        )
    };
}

pub mod asyncapi;
pub mod error;
pub mod events;
pub mod ids;
pub mod requests;
pub mod rest;
pub mod schemas;
pub mod time;
pub mod typescript;

pub use error::{ErrorCode, WireError};
pub use ids::{MeetingId, MessageId, ParticipantId, RecordingId, UserId};

/// Roles inside one meeting. The host created it; moderators are granted by a host.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    ts_rs::TS,
    utoipa::ToSchema,
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
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    ts_rs::TS,
    utoipa::ToSchema,
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
