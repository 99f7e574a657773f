//! The meeting domain: meetings, participants, roles and permissions, chat, reactions, hands, layout, spotlight,
//! screen share, rate limits.
//!
//! The domain does no socket I/O. Each operation returns an [`Outcome`]: the reply for the requester and a list of
//! [`Emit`]s addressed by [`Target`] (the whole meeting, the meeting but one participant, some participants, or the
//! requester). The signaling edge turns targets into socket.io rooms, so the same outcome works on one node and,
//! with the Redis adapter, on many.

pub mod ice;
mod media_ops;
#[cfg(test)]
mod media_ops_tests;
pub mod ports;
mod recording;
pub mod request;
mod service;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod testkit;

pub use ports::{MediaPlane, MeetingStore, RecordedProducer, RecordingSink};
pub use request::{Recipient, Request};
pub use service::{DomainConfig, Limits, MeetingService, NewMeeting};

/// Limits the configuration validates against.
pub mod service_limits {
    pub const MAX_PARTICIPANTS: u32 = crate::service::MAX_PARTICIPANTS_LIMIT;
}

/// JSON views the REST edge returns.
pub mod service_json {
    pub use crate::service::meeting_json as meeting;
    pub use crate::service::message_json as message;
}

use proto::{MeetingId, ParticipantId, UserId};
use serde_json::Value;

/// Who the caller is, from a verified JWT.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub user_id: UserId,
    pub user_name: String,
    pub campus_id: String,
    pub email: String,
}

/// A socket's place in a meeting.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    pub meeting: MeetingId,
    pub participant: ParticipantId,
}

/// What one socket carries between requests.
#[derive(Clone, Debug)]
pub struct Session {
    pub identity: Identity,
    pub membership: Option<Membership>,
}

impl Session {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            membership: None,
        }
    }
}

/// Addressees of an emitted event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// The socket that made the request.
    Requester,
    /// Every participant of a meeting.
    Meeting(MeetingId),
    /// Every participant of a meeting but one.
    MeetingExcept(MeetingId, ParticipantId),
    /// These participant sessions.
    Participants(Vec<ParticipantId>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Emit {
    pub target: Target,
    pub event: &'static str,
    pub payload: Value,
}

/// A change of the requesting socket's rooms, applied by the edge before the emits.
#[derive(Clone, Debug, PartialEq)]
pub enum RoomChange {
    Join(Membership),
    Leave(Membership),
}

/// The result of a successful operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Extra fields for the `{ok: true, …}` ack.
    pub reply: Value,
    /// Room changes of the requesting socket, in order, before `emits`.
    pub rooms: Vec<RoomChange>,
    pub emits: Vec<Emit>,
    /// Meetings whose every socket leaves its room after `emits` (the meeting ended).
    pub close_rooms: Vec<MeetingId>,
    /// Participants whose sockets are disconnected after `emits` (a session replaced by its user's rejoin).
    pub disconnect: Vec<ParticipantId>,
}

impl Outcome {
    /// An outcome whose ack carries `reply` (one of `proto::events`' ack structs).
    fn reply(reply: &impl serde::Serialize) -> Self {
        Self {
            reply: wire(reply),
            ..Self::default()
        }
    }

    /// Adds an event; `payload` is its `proto::events` struct.
    fn emit(
        mut self,
        target: Target,
        event: &'static str,
        payload: &impl serde::Serialize,
    ) -> Self {
        self.emits.push(Emit::new(target, event, payload));
        self
    }
}

impl Emit {
    pub fn new(target: Target, event: &'static str, payload: &impl serde::Serialize) -> Self {
        Self {
            target,
            event,
            payload: wire(payload),
        }
    }
}

/// A payload struct as the JSON the edge sends. The structs of `proto::events` have string keys and no
/// fallible `Serialize`, so this cannot fail; if it ever did, the event goes out as `null` and is logged.
pub(crate) fn wire(payload: &impl serde::Serialize) -> Value {
    serde_json::to_value(payload).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serializing a payload failed");
        Value::Null
    })
}

/// Socket.io room names. One place, so the edge and the REST layer agree.
pub mod rooms {
    use proto::{MeetingId, ParticipantId};

    pub fn meeting(id: &MeetingId) -> String {
        format!("m:{id}")
    }

    pub fn participant(id: &ParticipantId) -> String {
        format!("p:{id}")
    }
}
