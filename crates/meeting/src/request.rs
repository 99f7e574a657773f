//! Parsing and validating client requests: a socket.io payload (untyped JSON) becomes a typed [`Request`] here,
//! once; every failure is a VALIDATION_ERROR naming the field. The domain never sees raw JSON.

use proto::{
    Layout, MeetingId, ParticipantId, Role, UserId, WireError, MAX_CHAT_CHARS, REACTION_EMOJI,
};
use serde_json::{Map, Value};
use store::{RecipientType, StatsRecord};

/// Every request event a client can send.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    // --- meeting
    Join {
        meeting: MeetingId,
        /// Our extension for reconnecting clients: the participant id this user had before its connection dropped.
        /// That session (if it is still there, and is this user's) leaves at once instead of lingering until the
        /// server's ping timeout.
        replaces: Option<ParticipantId>,
    },
    Leave {
        meeting: MeetingId,
    },
    ScreenStart {
        meeting: MeetingId,
    },
    ScreenStop {
        meeting: MeetingId,
    },
    HandRaise {
        meeting: MeetingId,
    },
    HandLower {
        meeting: MeetingId,
    },
    Mute {
        meeting: MeetingId,
        target: UserId,
        kind: MuteType,
    },
    /// Lifts a moderator mute (our extension: `participant:unmute`); the person then unmutes themselves.
    Unmute {
        meeting: MeetingId,
        target: UserId,
        kind: MuteType,
    },
    Reaction {
        meeting: MeetingId,
        emoji: String,
    },
    Layout {
        meeting: MeetingId,
        layout: Layout,
    },
    Pin {
        meeting: MeetingId,
        target: UserId,
    },
    Spotlight {
        meeting: MeetingId,
        target: Option<UserId>,
    },
    SetRole {
        meeting: MeetingId,
        target: UserId,
        role: Role,
    },
    End {
        meeting: MeetingId,
    },
    Stats {
        meeting: MeetingId,
        stats: StatsRecord,
    },
    Recording {
        meeting: MeetingId,
        action: RecordingAction,
        /// What to record (`recording:start`; defaults otherwise).
        options: proto::events::RecordingOptions,
    },
    // --- chat
    SendMessage {
        meeting: MeetingId,
        message: String,
        recipient: Recipient,
    },
    Typing {
        meeting: MeetingId,
        typing: bool,
    },
    // --- media plane; `meeting` is None when the payload names none (the guide's connect-transport,
    // resume-consumer …): the socket's meeting is meant.
    Media {
        meeting: Option<MeetingId>,
        op: MediaOp,
    },
}

/// The WebRTC requests, parsed (RTP parameters and capabilities into mediasoup's typed shapes).
#[derive(Clone, Debug, PartialEq)]
pub enum MediaOp {
    CreateTransport {
        send: bool,
    },
    ConnectTransport {
        transport: String,
        dtls: Value,
    },
    RestartIce {
        transport: String,
    },
    Produce {
        kind: sfu::Kind,
        rtp: Box<sfu::RtpParameters>,
        source: Option<String>,
    },
    Consume {
        target: ConsumeTarget,
        caps: Box<sfu::RtpCapabilities>,
    },
    ConsumerPaused {
        consumer: String,
        paused: bool,
    },
    ProducerPaused {
        producer: String,
        paused: bool,
    },
    CloseProducer {
        producer: String,
    },
    Quality {
        participant: String,
        layer: usize,
        quality: proto::events::Quality,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConsumeTarget {
    Producer(String),
    Participant {
        participant: String,
        kind: sfu::Kind,
        source: Option<String>,
    },
}

/// A moderator's `muteType`: the wire enum itself.
pub use proto::events::MediaKind as MuteType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingAction {
    Start,
    Stop,
    Pause,
    Resume,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Recipient {
    All,
    Private(UserId),
    Hosts,
}

impl Recipient {
    pub fn kind(&self) -> RecipientType {
        match self {
            Recipient::All => RecipientType::All,
            Recipient::Private(_) => RecipientType::Private,
            Recipient::Hosts => RecipientType::Host,
        }
    }
}

/// The media-plane events of the guide and DESIGN.md §4.
pub const MEDIA_EVENTS: [&str; 11] = [
    "create-transport",
    "connect-transport",
    "produce",
    "consume",
    "resume-consumer",
    "pause-consumer",
    "producer:pause",
    "producer:resume",
    "producer:close",
    "quality:change",
    "restart-ice",
];

/// Every event name the server answers (besides the media ones).
pub const EVENTS: [&str; 21] = [
    "join-meeting",
    "leave-meeting",
    "screen:start",
    "screen:stop",
    "hand:raise",
    "hand:lower",
    "participant:mute",
    "participant:unmute",
    "reaction:send",
    "layout:change",
    "participant:pin",
    "participant:spotlight",
    "participant:role",
    "meeting:end",
    "stats:report",
    "recording:start",
    "recording:stop",
    "recording:pause",
    "recording:resume",
    "send-message",
    "typing",
];

const MAX_ID_LEN: usize = 128;

impl Request {
    /// Parses `payload` of `event`. Unknown events are NOT_SUPPORTED; malformed payloads VALIDATION_ERROR naming
    /// the field and what was expected. Two layers: the checks below (ids' charset and length, the emoji list,
    /// message length …), then the payload must also deserialize into its `proto::requests` struct — the struct
    /// the TypeScript declarations and the AsyncAPI document are generated from — so what the server accepts
    /// cannot drift from what it publishes.
    pub fn parse(event: &str, payload: Option<&Value>) -> Result<Request, WireError> {
        let req = Self::parse_fields(event, payload)?;
        if let Some(v) = payload {
            check_contract(event, v)?;
        }
        Ok(req)
    }

    fn parse_fields(event: &str, payload: Option<&Value>) -> Result<Request, WireError> {
        if MEDIA_EVENTS.contains(&event) {
            let obj = match payload {
                Some(Value::Object(o)) => Fields(o),
                _ => return Err(WireError::validation("payload must be an object")),
            };
            let meeting = match obj.0.get("meetingId") {
                None | Some(Value::Null) => None,
                Some(_) => Some(obj.meeting_id()?),
            };
            return Ok(Request::Media {
                meeting,
                op: obj.media(event)?,
            });
        }
        if !EVENTS.contains(&event) {
            return Err(WireError::new(
                proto::ErrorCode::NotSupported,
                format!("unknown event '{}'", truncate(event, 64)),
            ));
        }
        let obj = match payload {
            Some(Value::Object(o)) => Fields(o),
            _ => return Err(WireError::validation("payload must be an object")),
        };
        let meeting = obj.meeting_id()?;
        Ok(match event {
            "join-meeting" => Request::Join {
                meeting,
                replaces: match obj.0.get("previousParticipantId") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(ParticipantId::new(obj.opaque_id("previousParticipantId")?)),
                },
            },
            "leave-meeting" => Request::Leave { meeting },
            "screen:start" => Request::ScreenStart { meeting },
            "screen:stop" => Request::ScreenStop { meeting },
            "hand:raise" => Request::HandRaise { meeting },
            "hand:lower" => Request::HandLower { meeting },
            "participant:mute" => Request::Mute {
                meeting,
                target: obj.user_id("targetUserId")?,
                kind: obj.mute_type()?,
            },
            "participant:unmute" => Request::Unmute {
                meeting,
                target: obj.user_id("targetUserId")?,
                kind: obj.mute_type()?,
            },
            "reaction:send" => {
                let emoji = obj.string("emoji", 16)?;
                if !REACTION_EMOJI.contains(&emoji.as_str()) {
                    return Err(WireError::validation(format!(
                        "emoji must be one of {}",
                        REACTION_EMOJI.join(" ")
                    )));
                }
                Request::Reaction { meeting, emoji }
            }
            "layout:change" => Request::Layout {
                meeting,
                layout: match obj.choice("layout", &["grid", "speaker", "presentation"])? {
                    "grid" => Layout::Grid,
                    "speaker" => Layout::Speaker,
                    _ => Layout::Presentation,
                },
            },
            "participant:pin" => Request::Pin {
                meeting,
                target: obj.user_id("targetUserId")?,
            },
            "participant:spotlight" => Request::Spotlight {
                meeting,
                target: match obj.0.get("targetUserId") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(obj.user_id("targetUserId")?),
                },
            },
            "participant:role" => Request::SetRole {
                meeting,
                target: obj.user_id("targetUserId")?,
                role: match obj.choice("role", &["moderator", "participant"])? {
                    "moderator" => Role::Moderator,
                    _ => Role::Participant,
                },
            },
            "meeting:end" => Request::End { meeting },
            "stats:report" => Request::Stats {
                meeting,
                stats: obj.stats()?,
            },
            "recording:start" | "recording:stop" | "recording:pause" | "recording:resume" => {
                let mut options = proto::events::RecordingOptions::default();
                match obj.0.get("options") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(o)) => {
                        for (key, slot) in [
                            ("recordVideo", &mut options.record_video),
                            ("recordAudio", &mut options.record_audio),
                            ("recordChat", &mut options.record_chat),
                        ] {
                            match o.get(key) {
                                None | Some(Value::Null) => {}
                                Some(Value::Bool(b)) => *slot = *b,
                                Some(_) => {
                                    return Err(WireError::validation(format!(
                                        "options.{key} must be a boolean"
                                    )))
                                }
                            }
                        }
                        if !options.record_video && !options.record_audio && !options.record_chat {
                            return Err(WireError::validation(
                                "options must record something (recordVideo, recordAudio or recordChat)",
                            ));
                        }
                    }
                    Some(_) => return Err(WireError::validation("options must be an object")),
                }
                Request::Recording {
                    meeting,
                    options,
                    action: match event {
                        "recording:start" => RecordingAction::Start,
                        "recording:stop" => RecordingAction::Stop,
                        "recording:pause" => RecordingAction::Pause,
                        _ => RecordingAction::Resume,
                    },
                }
            }
            "send-message" => {
                let message = obj.string("message", usize::MAX)?;
                let chars = message.chars().count();
                if chars > MAX_CHAT_CHARS {
                    return Err(WireError::validation(format!(
                        "message is {chars} characters; at most {MAX_CHAT_CHARS} are allowed"
                    )));
                }
                if message.trim().is_empty() {
                    return Err(WireError::validation("message must not be blank"));
                }
                let kind = match obj.0.get("recipientType") {
                    None | Some(Value::Null) => "all",
                    Some(_) => obj.choice("recipientType", &["all", "private", "host"])?,
                };
                let recipient = match kind {
                    "private" => match obj.0.get("recipientId") {
                        None | Some(Value::Null) => {
                            return Err(WireError::validation(
                                "recipientId is required for private messages",
                            ))
                        }
                        Some(_) => Recipient::Private(obj.user_id("recipientId")?),
                    },
                    "host" => Recipient::Hosts,
                    _ => Recipient::All,
                };
                Request::SendMessage {
                    meeting,
                    message,
                    recipient,
                }
            }
            "typing" => Request::Typing {
                meeting,
                typing: obj.boolean("typing")?,
            },
            _ => {
                return Err(WireError::new(
                    proto::ErrorCode::NotSupported,
                    "unknown event",
                ))
            }
        })
    }

    /// The meeting a request acts in (None for media events, which name transports instead).
    pub fn meeting(&self) -> Option<&MeetingId> {
        use Request::*;
        match self {
            Join { meeting, .. }
            | Leave { meeting }
            | ScreenStart { meeting }
            | ScreenStop { meeting }
            | HandRaise { meeting }
            | HandLower { meeting }
            | Mute { meeting, .. }
            | Unmute { meeting, .. }
            | Reaction { meeting, .. }
            | Layout { meeting, .. }
            | Pin { meeting, .. }
            | Spotlight { meeting, .. }
            | SetRole { meeting, .. }
            | End { meeting }
            | Stats { meeting, .. }
            | Recording { meeting, .. }
            | SendMessage { meeting, .. }
            | Typing { meeting, .. } => Some(meeting),
            Media { meeting, .. } => meeting.as_ref(),
        }
    }
}

/// Deserializes `v` into the `proto::requests` struct of `event`; a failure names the field (its JSON path) and
/// what was expected.
fn check_contract(event: &str, v: &Value) -> Result<(), WireError> {
    use proto::requests as r;
    match event {
        "join-meeting" => typed_as::<r::JoinMeeting>(v),
        "leave-meeting" | "screen:start" | "screen:stop" | "hand:raise" | "hand:lower"
        | "meeting:end" => typed_as::<r::MeetingRequest>(v),
        "participant:mute" | "participant:unmute" => typed_as::<r::MuteRequest>(v),
        "reaction:send" => typed_as::<r::ReactionSend>(v),
        "layout:change" => typed_as::<r::LayoutChange>(v),
        "participant:pin" => typed_as::<r::PinRequest>(v),
        "participant:spotlight" => typed_as::<r::SpotlightRequest>(v),
        "participant:role" => typed_as::<r::RoleRequest>(v),
        "stats:report" => typed_as::<r::StatsReport>(v),
        "recording:start" | "recording:stop" | "recording:pause" | "recording:resume" => {
            typed_as::<r::RecordingRequest>(v)
        }
        "send-message" => typed_as::<r::SendMessage>(v),
        "typing" => typed_as::<r::TypingRequest>(v),
        "create-transport" => typed_as::<r::CreateTransport>(v),
        "connect-transport" => typed_as::<r::ConnectTransport>(v),
        "restart-ice" => typed_as::<r::RestartIce>(v),
        "produce" => typed_as::<r::Produce>(v),
        "consume" => typed_as::<r::Consume>(v),
        "resume-consumer" | "pause-consumer" => typed_as::<r::ConsumerRequest>(v),
        "producer:pause" | "producer:resume" | "producer:close" => {
            typed_as::<r::ProducerRequest>(v)
        }
        "quality:change" => typed_as::<r::QualityChange>(v),
        _ => Ok(()),
    }
}

fn typed_as<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), WireError> {
    serde_path_to_error::deserialize::<_, T>(v)
        .map(|_| ())
        .map_err(|e| WireError::validation(path_error(None, &e)))
}

/// `field.path: what serde expected` (e.g. `rtpParameters.codecs[0].payloadType: invalid type: string "x",
/// expected u8`).
fn path_error(root: Option<&str>, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let field = match (root, path.as_str()) {
        (Some(r), ".") => r.to_owned(),
        (Some(r), p) => format!("{r}.{p}"),
        (None, p) => p.to_owned(),
    };
    format!("{field}: {}", e.inner())
}

/// Validates a meeting id from anywhere (socket payloads and REST paths).
pub fn parse_meeting_id(s: &str) -> Result<MeetingId, WireError> {
    valid_id(s, "meetingId").map(MeetingId::new)
}

/// Validates a user id (`targetUserId`, `recipientId`, REST paths).
pub fn parse_user_id(s: &str, field: &str) -> Result<UserId, WireError> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(WireError::validation(format!(
            "{field} must be a non-empty string of at most {MAX_ID_LEN} bytes"
        )));
    }
    Ok(UserId::new(s))
}

fn valid_id(s: &str, field: &str) -> Result<String, WireError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(WireError::validation(format!(
            "{field} must be 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ -"
        )))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn meeting_id(&self) -> Result<MeetingId, WireError> {
        match self.0.get("meetingId") {
            Some(Value::String(s)) => parse_meeting_id(s),
            None | Some(Value::Null) => Err(WireError::validation("meetingId is required")),
            Some(_) => Err(WireError::validation("meetingId must be a string")),
        }
    }

    fn string(&self, name: &str, max_bytes: usize) -> Result<String, WireError> {
        match self.0.get(name) {
            Some(Value::String(s)) if s.len() <= max_bytes => Ok(s.clone()),
            Some(Value::String(_)) => Err(WireError::validation(format!("{name} is too long"))),
            None | Some(Value::Null) => Err(WireError::validation(format!("{name} is required"))),
            Some(_) => Err(WireError::validation(format!("{name} must be a string"))),
        }
    }

    fn user_id(&self, name: &str) -> Result<UserId, WireError> {
        let s = self.string(name, MAX_ID_LEN)?;
        parse_user_id(&s, name)
    }

    fn choice(&self, name: &str, allowed: &[&'static str]) -> Result<&'static str, WireError> {
        let s = self.string(name, 64).map_err(|_| {
            WireError::validation(format!("{name} must be one of: {}", allowed.join(", ")))
        })?;
        allowed.iter().find(|a| **a == s).copied().ok_or_else(|| {
            WireError::validation(format!("{name} must be one of: {}", allowed.join(", ")))
        })
    }

    fn mute_type(&self) -> Result<MuteType, WireError> {
        Ok(match self.choice("muteType", &["audio", "video"])? {
            "audio" => MuteType::Audio,
            _ => MuteType::Video,
        })
    }

    fn boolean(&self, name: &str) -> Result<bool, WireError> {
        match self.0.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            None | Some(Value::Null) => Err(WireError::validation(format!("{name} is required"))),
            Some(_) => Err(WireError::validation(format!("{name} must be a boolean"))),
        }
    }

    fn opaque_id(&self, name: &str) -> Result<String, WireError> {
        let s = self.string(name, MAX_ID_LEN)?;
        valid_id(&s, name)
    }

    fn kind(&self) -> Result<sfu::Kind, WireError> {
        Ok(match self.choice("kind", &["audio", "video"])? {
            "audio" => sfu::Kind::Audio,
            _ => sfu::Kind::Video,
        })
    }

    fn typed<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, WireError> {
        match self.0.get(name) {
            Some(v @ Value::Object(_)) => serde_path_to_error::deserialize(v)
                .map_err(|e| WireError::validation(path_error(Some(name), &e))),
            None | Some(Value::Null) => Err(WireError::validation(format!("{name} is required"))),
            Some(_) => Err(WireError::validation(format!("{name} must be an object"))),
        }
    }

    fn media(&self, event: &str) -> Result<MediaOp, WireError> {
        Ok(match event {
            "create-transport" => MediaOp::CreateTransport {
                send: self.choice("direction", &["send", "recv"])? == "send",
            },
            "restart-ice" => MediaOp::RestartIce {
                transport: self.opaque_id("transportId")?,
            },
            "connect-transport" => {
                let dtls = match self.0.get("dtlsParameters") {
                    Some(v @ Value::Object(_)) => v.clone(),
                    _ => return Err(WireError::validation("dtlsParameters must be an object")),
                };
                MediaOp::ConnectTransport {
                    transport: self.opaque_id("transportId")?,
                    dtls,
                }
            }
            "produce" => {
                let source = match self.0.get("appData").and_then(|a| a.get("source")) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if ["mic", "camera", "screen"].contains(&s.as_str()) => {
                        Some(s.clone())
                    }
                    Some(_) => {
                        return Err(WireError::validation(
                            "appData.source must be one of: mic, camera, screen",
                        ))
                    }
                };
                MediaOp::Produce {
                    kind: self.kind()?,
                    rtp: Box::new(self.typed("rtpParameters")?),
                    source,
                }
            }
            "consume" => {
                let target = match self.0.get("producerId") {
                    Some(Value::String(_)) => {
                        ConsumeTarget::Producer(self.opaque_id("producerId")?)
                    }
                    _ => {
                        let source = match self.0.get("source") {
                            None | Some(Value::Null) => None,
                            Some(_) => Some(
                                self.choice("source", &["mic", "camera", "screen"])?
                                    .to_owned(),
                            ),
                        };
                        ConsumeTarget::Participant {
                            participant: self.opaque_id("producerParticipantId").map_err(|_| {
                                WireError::validation(
                                    "consume needs producerId, or producerParticipantId and kind",
                                )
                            })?,
                            kind: self.kind()?,
                            source,
                        }
                    }
                };
                MediaOp::Consume {
                    target,
                    caps: Box::new(self.typed("rtpCapabilities")?),
                }
            }
            "resume-consumer" | "pause-consumer" => MediaOp::ConsumerPaused {
                consumer: self.opaque_id("consumerId")?,
                paused: event == "pause-consumer",
            },
            "producer:pause" | "producer:resume" => MediaOp::ProducerPaused {
                producer: self.opaque_id("producerId")?,
                paused: event == "producer:pause",
            },
            "producer:close" => MediaOp::CloseProducer {
                producer: self.opaque_id("producerId")?,
            },
            _ => {
                let quality = self.choice("quality", &["low", "medium", "high"])?;
                MediaOp::Quality {
                    participant: self.opaque_id("participantId")?,
                    layer: match quality {
                        "low" => 0,
                        "medium" => 1,
                        _ => 2,
                    },
                    quality: match quality {
                        "low" => proto::events::Quality::Low,
                        "medium" => proto::events::Quality::Medium,
                        _ => proto::events::Quality::High,
                    },
                }
            }
        })
    }

    fn stats(&self) -> Result<StatsRecord, WireError> {
        let Some(Value::Object(s)) = self.0.get("stats") else {
            return Err(WireError::validation("stats must be an object"));
        };
        let num = |name: &str| -> Result<Option<f64>, WireError> {
            match s.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                    _ => Err(WireError::validation(format!(
                        "stats.{name} must be a non-negative number"
                    ))),
                },
                Some(_) => Err(WireError::validation(format!(
                    "stats.{name} must be a non-negative number"
                ))),
            }
        };
        Ok(StatsRecord {
            rtt: num("rtt")?,
            packet_loss: num("packetLoss")?,
            jitter: num("jitter")?,
            bitrate: num("bitrate")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ErrorCode;
    use serde_json::json;

    fn parse(event: &str, v: Value) -> Result<Request, WireError> {
        Request::parse(event, Some(&v))
    }

    fn msg(r: Result<Request, WireError>) -> String {
        match r {
            Err(e) => {
                assert_eq!(e.code, ErrorCode::ValidationError, "{e:?}");
                e.message
            }
            Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }

    #[test]
    fn parses_the_guides_payloads() {
        assert_eq!(
            parse(
                "join-meeting",
                json!({"meetingId":"meeting_abc123","userId":"x","userName":"y"})
            ),
            Ok(Request::Join {
                meeting: MeetingId::new("meeting_abc123"),
                replaces: None,
            })
        );
        assert_eq!(
            parse(
                "participant:mute",
                json!({"meetingId":"m","targetUserId":"user_456","muteType":"video"})
            ),
            Ok(Request::Mute {
                meeting: MeetingId::new("m"),
                target: UserId::new("user_456"),
                kind: MuteType::Video
            })
        );
        assert_eq!(
            parse(
                "participant:unmute",
                json!({"meetingId":"m","targetUserId":"user_456","muteType":"audio"})
            ),
            Ok(Request::Unmute {
                meeting: MeetingId::new("m"),
                target: UserId::new("user_456"),
                kind: MuteType::Audio
            })
        );
        assert!(msg(parse(
            "participant:unmute",
            json!({"meetingId":"m","targetUserId":"user_456","muteType":"screen"})
        ))
        .contains("muteType"));
        assert!(msg(parse(
            "participant:unmute",
            json!({"meetingId":"m","muteType":"audio"})
        ))
        .contains("targetUserId"));
        assert_eq!(
            parse(
                "send-message",
                json!({"meetingId":"m","message":"hi","recipientType":"private","recipientId":"u2"})
            ),
            Ok(Request::SendMessage {
                meeting: MeetingId::new("m"),
                message: "hi".into(),
                recipient: Recipient::Private(UserId::new("u2"))
            })
        );
        assert_eq!(
            parse(
                "stats:report",
                json!({"meetingId":"m","stats":{"rtt":45,"packetLoss":0.5,"jitter":10,"bitrate":1500000}})
            ),
            Ok(Request::Stats {
                meeting: MeetingId::new("m"),
                stats: StatsRecord {
                    rtt: Some(45.0),
                    packet_loss: Some(0.5),
                    jitter: Some(10.0),
                    bitrate: Some(1.5e6)
                }
            })
        );
        assert_eq!(
            parse(
                "participant:spotlight",
                json!({"meetingId":"m","targetUserId":null})
            ),
            Ok(Request::Spotlight {
                meeting: MeetingId::new("m"),
                target: None
            })
        );
        for e in REACTION_EMOJI {
            assert!(
                parse("reaction:send", json!({"meetingId":"m","emoji":e})).is_ok(),
                "{e}"
            );
        }
        assert_eq!(
            parse("resume-consumer", json!({"consumerId": "co_1"})),
            Ok(Request::Media {
                meeting: None,
                op: MediaOp::ConsumerPaused {
                    consumer: "co_1".into(),
                    paused: false
                }
            })
        );
        assert!(msg(parse(
            "produce",
            json!({"kind":"video","rtpParameters":{"codecs":5}})
        ))
        .contains("rtpParameters"));
        assert!(msg(parse(
            "consume",
            json!({"kind":"video","rtpCapabilities":{}})
        ))
        .contains("producerParticipantId"));
        assert!(msg(parse("create-transport", json!({"direction":"both"}))).contains("direction"));
    }

    #[test]
    fn rejects_bad_payloads_with_a_reason() {
        assert!(msg(Request::parse("join-meeting", None)).contains("object"));
        assert!(msg(parse("join-meeting", json!([1, 2]))).contains("object"));
        assert!(msg(parse("join-meeting", json!({}))).contains("meetingId is required"));
        assert!(msg(parse("join-meeting", json!({"meetingId": 5}))).contains("string"));
        assert!(msg(parse("join-meeting", json!({"meetingId": "a b"}))).contains("meetingId"));
        assert!(
            msg(parse("join-meeting", json!({"meetingId": "x".repeat(129)}))).contains("meetingId")
        );
        assert!(msg(parse(
            "reaction:send",
            json!({"meetingId":"m","emoji":"💩"})
        ))
        .contains("emoji"));
        assert!(msg(parse(
            "layout:change",
            json!({"meetingId":"m","layout":"tiles"})
        ))
        .contains("grid"));
        assert!(msg(parse("typing", json!({"meetingId":"m","typing":"yes"}))).contains("boolean"));
        assert!(msg(parse(
            "send-message",
            json!({"meetingId":"m","message":"   "})
        ))
        .contains("blank"));
        assert!(msg(parse(
            "send-message",
            json!({"meetingId":"m","message":"x","recipientType":"private"})
        ))
        .contains("recipientId"));
        assert!(msg(parse(
            "send-message",
            json!({"meetingId":"m","message":"x","recipientType":"everyone"})
        ))
        .contains("recipientType"));
        assert!(msg(parse(
            "stats:report",
            json!({"meetingId":"m","stats":{"rtt":-1}})
        ))
        .contains("rtt"));
        assert!(msg(parse("participant:pin", json!({"meetingId":"m"}))).contains("targetUserId"));
        let unknown = parse("does-not-exist", json!({}));
        assert_eq!(unknown.map_err(|e| e.code), Err(ErrorCode::NotSupported));
    }

    #[test]
    fn chat_length_counts_characters_not_bytes() {
        let ok = "é".repeat(MAX_CHAT_CHARS);
        assert!(parse("send-message", json!({"meetingId":"m","message":ok})).is_ok());
        let long = "é".repeat(MAX_CHAT_CHARS + 1);
        assert!(msg(parse(
            "send-message",
            json!({"meetingId":"m","message":long})
        ))
        .contains("2001"));
    }

    /// Issue 12 item 5: for every request event, a missing or wrongly typed field is refused with a message that
    /// names the field and says what was expected, and the refusal is a VALIDATION_ERROR (nothing is handled).
    #[test]
    fn every_request_names_the_bad_field_and_what_was_expected() {
        let m = "meeting_a";
        // (event, payload, the field the message must name, a word of what was expected)
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            ("join-meeting", json!({}), "meetingId", "required"),
            (
                "join-meeting",
                json!({"meetingId": m, "previousParticipantId": 7}),
                "previousParticipantId",
                "string",
            ),
            (
                "leave-meeting",
                json!({"meetingId": 5}),
                "meetingId",
                "string",
            ),
            (
                "screen:start",
                json!({"meetingId": "bad id!"}),
                "meetingId",
                "A-Z",
            ),
            ("screen:stop", json!({}), "meetingId", "required"),
            (
                "hand:raise",
                json!({"meetingId": null}),
                "meetingId",
                "required",
            ),
            (
                "hand:lower",
                json!({"meetingId": []}),
                "meetingId",
                "string",
            ),
            (
                "participant:mute",
                json!({"meetingId": m, "targetUserId": "u"}),
                "muteType",
                "audio, video",
            ),
            (
                "participant:unmute",
                json!({"meetingId": m, "muteType": "audio"}),
                "targetUserId",
                "required",
            ),
            (
                "reaction:send",
                json!({"meetingId": m, "emoji": "x"}),
                "emoji",
                "one of",
            ),
            (
                "layout:change",
                json!({"meetingId": m, "layout": "tiles"}),
                "layout",
                "grid, speaker, presentation",
            ),
            (
                "participant:pin",
                json!({"meetingId": m, "targetUserId": 1}),
                "targetUserId",
                "string",
            ),
            (
                "participant:spotlight",
                json!({"meetingId": m, "targetUserId": true}),
                "targetUserId",
                "string",
            ),
            (
                "participant:role",
                json!({"meetingId": m, "targetUserId": "u", "role": "host"}),
                "role",
                "moderator, participant",
            ),
            ("meeting:end", json!({}), "meetingId", "required"),
            (
                "stats:report",
                json!({"meetingId": m, "stats": {"rtt": -1}}),
                "stats.rtt",
                "non-negative",
            ),
            (
                "recording:start",
                json!({"meetingId": m, "options": 3}),
                "options",
                "object",
            ),
            (
                "recording:start",
                json!({"meetingId": m, "options": {"recordVideo": "yes"}}),
                "options.recordVideo",
                "boolean",
            ),
            (
                "recording:start",
                json!({"meetingId": m, "options": {"recordVideo": false, "recordAudio": false, "recordChat": false}}),
                "options",
                "record something",
            ),
            (
                "recording:stop",
                json!({"meetingId": 3}),
                "meetingId",
                "string",
            ),
            ("recording:pause", json!({}), "meetingId", "required"),
            ("recording:resume", json!({}), "meetingId", "required"),
            (
                "send-message",
                json!({"meetingId": m}),
                "message",
                "required",
            ),
            (
                "send-message",
                json!({"meetingId": m, "message": "hi", "recipientType": "private"}),
                "recipientId",
                "required",
            ),
            (
                "typing",
                json!({"meetingId": m, "typing": "yes"}),
                "typing",
                "boolean",
            ),
            (
                "create-transport",
                json!({"meetingId": m, "direction": "both"}),
                "direction",
                "send, recv",
            ),
            (
                "connect-transport",
                json!({"transportId": "t"}),
                "dtlsParameters",
                "object",
            ),
            (
                "restart-ice",
                json!({"meetingId": m, "transportId": 7}),
                "transportId",
                "string",
            ),
            (
                "produce",
                json!({"meetingId": m, "kind": "smell", "rtpParameters": {}}),
                "kind",
                "audio, video",
            ),
            (
                "produce",
                json!({"meetingId": m, "kind": "audio", "rtpParameters": {"codecs": "x"}}),
                "rtpParameters.codecs",
                "expected",
            ),
            (
                "produce",
                json!({"meetingId": m, "kind": "audio", "rtpParameters": {"codecs": []}, "appData": {"source": "tv"}}),
                "appData.source",
                "mic, camera, screen",
            ),
            (
                "consume",
                json!({"meetingId": m, "producerId": "p"}),
                "rtpCapabilities",
                "required",
            ),
            ("resume-consumer", json!({}), "consumerId", "required"),
            (
                "pause-consumer",
                json!({"consumerId": 4}),
                "consumerId",
                "string",
            ),
            ("producer:pause", json!({}), "producerId", "required"),
            (
                "producer:resume",
                json!({"producerId": {}}),
                "producerId",
                "string",
            ),
            ("producer:close", json!({}), "producerId", "required"),
            (
                "quality:change",
                json!({"meetingId": m, "participantId": "p", "quality": "ultra"}),
                "quality",
                "low, medium, high",
            ),
        ];
        let mut covered: Vec<&str> = Vec::new();
        for (event, payload, field, expected) in &cases {
            let message = msg(parse(event, payload.clone()));
            assert!(
                message.contains(field),
                "{event}: `{message}` does not name `{field}`"
            );
            assert!(
                message.contains(expected),
                "{event}: `{message}` does not say `{expected}`"
            );
            covered.push(event);
        }
        for event in EVENTS.iter().chain(MEDIA_EVENTS.iter()) {
            assert!(covered.contains(event), "{event} has no validation case");
        }
    }

    /// What only the contract structs catch (the field checks above let it through) is refused too, naming the
    /// field's JSON path and serde's expectation.
    #[test]
    fn the_contract_structs_refuse_what_they_do_not_declare() {
        let message = msg(parse(
            "send-message",
            json!({"meetingId": "m", "message": "hi", "recipientType": "all", "recipientId": 42}),
        ));
        assert!(
            message.starts_with("recipientId: invalid type: integer `42`"),
            "{message}"
        );
        // Nested shapes name their path too.
        let message = msg(parse(
            "produce",
            json!({"meetingId": "m", "kind": "audio", "rtpParameters": {}}),
        ));
        assert_eq!(message, "rtpParameters: missing field `codecs`");
    }
}
