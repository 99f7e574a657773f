//! The TypeScript declarations of the contract (`clients/ts/src/index.ts`), generated with ts-rs from the payload
//! structs of [`crate::events`] and [`crate::requests`], plus the socket.io-client event maps.
//!
//! Regenerate with `UPDATE_CONTRACT=1 cargo test -p proto --test contract`; the test `typescript_is_fresh` fails while the
//! committed file differs from what this module produces.

use crate::events::*;
use crate::requests::*;
use crate::rest::{
    DevToken, MeetingStatus, MeetingView, MessagePage, ParticipantList, RestError, RestErrorBody,
    RestOk, RoleSet, WebRtcConfig,
};
use crate::{
    ErrorCode, Layout, MeetingId, MessageId, ParticipantId, RecordingId, Role, UserId, WireError,
};
use ts_rs::{Config, TS};

/// Server → client events: (name, payload type).
pub const SERVER_TO_CLIENT: &[(&str, &str)] = &[
    ("meeting-state", "MeetingState"),
    ("participant-joined", "ParticipantJoined"),
    ("participant-left", "ParticipantLeft"),
    ("screen:started", "ParticipantAction"),
    ("screen:stopped", "ParticipantAction"),
    ("hand:raised", "ParticipantAction"),
    ("hand:lowered", "ParticipantAction"),
    ("participant:muted", "ParticipantMuted"),
    ("participant:unmuted", "ParticipantMuted"),
    ("reaction:received", "ReactionReceived"),
    ("layout:changed", "LayoutChanged"),
    ("participant:pinned", "ParticipantPinned"),
    ("participant:spotlighted", "ParticipantSpotlighted"),
    ("participant:role-changed", "RoleChanged"),
    ("meeting:ended", "MeetingEnded"),
    ("new-message", "NewMessage"),
    ("user-typing", "UserTyping"),
    ("transport-created", "TransportCreated"),
    ("transport-connected", "TransportConnected"),
    ("ice-restarted", "IceRestarted"),
    ("produced", "Produced"),
    ("new-producer", "NewProducer"),
    ("subscribed", "Subscribed"),
    ("producer:paused", "ProducerPaused"),
    ("producer:resumed", "ProducerPaused"),
    ("consumer-closed", "ConsumerClosed"),
    ("quality:changed", "QualityChanged"),
    ("transport:closed", "TransportClosed"),
    ("active-speaker", "ActiveSpeaker"),
    ("audio-levels", "AudioLevels"),
    ("connection-quality", "ConnectionQuality"),
    ("producer:layers-needed", "ProducerLayersNeeded"),
    ("consumer:layers-changed", "ConsumerLayersChanged"),
    ("auth:expired", "AuthExpired"),
    ("server:shutdown", "ServerShutdown"),
    ("recording:started", "RecordingStarted"),
    ("recording:stopped", "RecordingStopped"),
    ("recording:paused", "RecordingPausedEvent"),
    ("recording:resumed", "RecordingPausedEvent"),
    ("error", "WireError"),
];

/// Client → server requests: (name, payload type, ack payload type besides `ok`).
pub const CLIENT_TO_SERVER: &[(&str, &str, &str)] = &[
    ("join-meeting", "JoinMeeting", "JoinAck"),
    ("leave-meeting", "MeetingRequest", "Empty"),
    ("screen:start", "MeetingRequest", "ScreenStartAck"),
    ("screen:stop", "MeetingRequest", "Empty"),
    ("hand:raise", "MeetingRequest", "HandAck"),
    ("hand:lower", "MeetingRequest", "HandAck"),
    ("participant:mute", "MuteRequest", "ParticipantMuted"),
    ("participant:unmute", "MuteRequest", "UnmuteAck"),
    ("reaction:send", "ReactionSend", "Empty"),
    ("layout:change", "LayoutChange", "LayoutChanged"),
    ("participant:pin", "PinRequest", "ParticipantPinned"),
    (
        "participant:spotlight",
        "SpotlightRequest",
        "ParticipantSpotlighted",
    ),
    ("participant:role", "RoleRequest", "RoleChanged"),
    ("meeting:end", "MeetingRequest", "Empty"),
    ("stats:report", "StatsReport", "Empty"),
    ("recording:start", "RecordingRequest", "RecordingStatus"),
    ("recording:stop", "RecordingRequest", "RecordingStatus"),
    ("recording:pause", "RecordingRequest", "RecordingStatus"),
    ("recording:resume", "RecordingRequest", "RecordingStatus"),
    ("send-message", "SendMessage", "NewMessage"),
    ("typing", "TypingRequest", "Empty"),
    ("create-transport", "CreateTransport", "TransportCreated"),
    (
        "connect-transport",
        "ConnectTransport",
        "TransportConnected",
    ),
    ("restart-ice", "RestartIce", "IceRestarted"),
    ("produce", "Produce", "Produced"),
    ("consume", "Consume", "Subscribed"),
    ("pause-consumer", "ConsumerRequest", "ConsumerPausedAck"),
    ("resume-consumer", "ConsumerRequest", "ConsumerPausedAck"),
    ("producer:pause", "ProducerRequest", "ProducerAck"),
    ("producer:resume", "ProducerRequest", "ProducerAck"),
    ("producer:close", "ProducerRequest", "ProducerAck"),
    ("quality:change", "QualityChange", "QualityChanged"),
    ("auth:refresh", "AuthRefresh", "AuthRefreshAck"),
];

fn decl<T: TS>(cfg: &Config, out: &mut String) {
    let docs = T::docs().unwrap_or_default();
    out.push_str(&docs);
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

/// The whole `clients/ts/src/index.ts`.
pub fn typescript() -> String {
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// GENERATED by `UPDATE_CONTRACT=1 cargo test -p proto --test contract` from crates/proto (events.rs, requests.rs).\n\
         // Do not edit by hand: CI fails when this file differs from what the Rust structs generate.\n\n\
         // Opaque mediasoup shapes (RTP parameters and capabilities, a browser's DTLS parameters) are `unknown`:\n\
         // pass them to mediasoup-client as they come.\n\n",
    );
    macro_rules! all {
        ($($t:ty),* $(,)?) => { $(decl::<$t>(&cfg, &mut out);)* };
    }
    contract_types!(all);
    out.push_str(
        "/** Every request's optional socket.io ack: `{ok: true, …}` or `{ok: false, error}`. */\n\
         export type Ack<T> = ({ ok: true } & T) | { ok: false; error: WireError };\n\n",
    );
    out.push_str("/** Events the server emits (for `io()` typed as `Socket<ServerToClientEvents, ClientToServerEvents>`). */\nexport interface ServerToClientEvents {\n");
    for (name, ty) in SERVER_TO_CLIENT {
        out.push_str(&format!("  \"{name}\": (payload: {ty}) => void;\n"));
    }
    out.push_str("}\n\n/** Requests a client sends; each takes an optional ack callback. */\nexport interface ClientToServerEvents {\n");
    for (name, ty, ack) in CLIENT_TO_SERVER {
        out.push_str(&format!(
            "  \"{name}\": (payload: {ty}, ack?: (res: Ack<{ack}>) => void) => void;\n"
        ));
    }
    out.push_str("}\n\n/** Request payloads by event name. */\nexport interface Requests {\n");
    for (name, ty, _) in CLIENT_TO_SERVER {
        out.push_str(&format!("  \"{name}\": {ty};\n"));
    }
    out.push_str("}\n\n/** What each request's successful ack carries besides `ok: true`. */\nexport interface Replies {\n");
    for (name, _, ack) in CLIENT_TO_SERVER {
        out.push_str(&format!("  \"{name}\": {ack};\n"));
    }
    out.push_str(
        "}\n\n/** Server events' payloads by event name. */\nexport interface ServerEvents {\n",
    );
    for (name, ty) in SERVER_TO_CLIENT {
        out.push_str(&format!("  \"{name}\": {ty};\n"));
    }
    out.push_str("}\n\n/** Every error code a client can see. */\nexport const ERROR_CODES: readonly ErrorCode[] = [\n");
    for c in crate::error::ALL_CODES {
        out.push_str(&format!("  \"{}\",\n", c.as_str()));
    }
    out.push_str("];\n\n/** The guide's ten reaction emoji. */\nexport const REACTION_EMOJI = [");
    let emoji: Vec<String> = crate::REACTION_EMOJI
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    out.push_str(&emoji.join(", "));
    out.push_str("] as const;\n");
    out
}
