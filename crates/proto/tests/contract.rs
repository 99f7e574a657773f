//! The contract, checked from the payload structs:
//! - every payload struct round-trips through JSON unchanged, from a sample in the server's full shape;
//! - every field the guide (`../shared/spec/api-guide.md`) shows for an event is there, spelled as the guide spells it
//!   (camelCase, `new-message` snake_case);
//! - the committed TypeScript declarations (`clients/ts/src/index.ts`) are what the structs generate.

use proto::events::*;
use proto::requests::*;
use proto::WireError;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

/// Deserializes `sample` into `T`, serializes it back and requires the very same JSON; returns it.
fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(sample: Value) -> Value {
    let typed: T = match serde_json::from_value(sample.clone()) {
        Ok(t) => t,
        Err(e) => panic!(
            "{} does not accept {sample}: {e}",
            std::any::type_name::<T>()
        ),
    };
    let back = serde_json::to_value(&typed).unwrap_or(Value::Null);
    assert_eq!(
        back,
        sample,
        "{} changed the JSON",
        std::any::type_name::<T>()
    );
    back
}

/// The guide's field names for one event are all present in the server's shape.
fn has_guide_fields(event: &str, v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(
            v.get(f).is_some(),
            "{event}: the guide's field `{f}` is missing in {v}"
        );
    }
}

const TS: &str = "2025-11-03T10:30:00.123Z";

#[test]
fn server_to_client_payloads_round_trip_in_the_guides_shape() {
    let joined = round_trip::<ParticipantJoined>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_456",
        "userName": "Jane Smith", "role": "participant", "participantCount": 5
    }));
    has_guide_fields(
        "participant-joined",
        &joined,
        &["participantId", "userName", "userId", "participantCount"],
    );
    let left = round_trip::<ParticipantLeft>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_456",
        "userName": "Jane Smith", "participantCount": 4, "reason": "left"
    }));
    has_guide_fields("participant-left", &left, &["participantId", "userName"]);
    let action = round_trip::<ParticipantAction>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_123",
        "userName": "John Doe", "timestamp": TS
    }));
    for e in ["screen:started", "hand:raised"] {
        has_guide_fields(
            e,
            &action,
            &["meetingId", "userId", "userName", "timestamp"],
        );
    }
    let reaction = round_trip::<ReactionReceived>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_123",
        "userName": "John Doe", "emoji": "👍", "timestamp": TS
    }));
    has_guide_fields(
        "reaction:received",
        &reaction,
        &["meetingId", "userId", "userName", "emoji", "timestamp"],
    );
    let typing = round_trip::<UserTyping>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_456",
        "userName": "Jane Smith", "typing": true
    }));
    has_guide_fields("user-typing", &typing, &["userId", "userName", "typing"]);
    let muted = json!({
        "meetingId": "meeting_abc123", "targetUserId": "user_456", "muteType": "audio",
        "moderatorId": "user_123", "moderatorName": "John Doe", "timestamp": TS
    });
    let m = round_trip::<ParticipantMuted>(muted.clone());
    has_guide_fields("participant:muted", &m, &["targetUserId", "moderatorName"]);
    let mut unmute = muted;
    unmute["lifted"] = json!(true);
    round_trip::<UnmuteAck>(unmute);
    let who = json!({"userId": "user_123", "userName": "John Doe"});
    let layout = round_trip::<LayoutChanged>(
        json!({"meetingId": "meeting_abc123", "layout": "speaker", "changedBy": who, "timestamp": TS}),
    );
    has_guide_fields("layout:changed", &layout, &["layout"]);
    let pinned = round_trip::<ParticipantPinned>(
        json!({"meetingId": "meeting_abc123", "targetUserId": "user_456", "timestamp": TS}),
    );
    has_guide_fields("participant:pinned", &pinned, &["targetUserId"]);
    let spot = round_trip::<ParticipantSpotlighted>(json!({
        "meetingId": "meeting_abc123", "targetUserId": "user_456", "userName": "Jane Smith",
        "changedBy": who, "timestamp": TS
    }));
    has_guide_fields("participant:spotlighted", &spot, &["targetUserId"]);
    round_trip::<ParticipantSpotlighted>(json!({
        "meetingId": "meeting_abc123", "targetUserId": null, "userName": null, "changedBy": who, "timestamp": TS
    }));
    round_trip::<RoleChanged>(json!({
        "meetingId": "meeting_abc123", "targetUserId": "user_456", "role": "moderator", "changedBy": who
    }));
    round_trip::<MeetingEnded>(
        json!({"meetingId": "meeting_abc123", "endedBy": who, "timestamp": TS}),
    );
    let message = json!({
        "id": "msg_xyz", "meeting_id": "meeting_abc123", "sender_id": "user_123", "sender_name": "John Doe",
        "message": "Hello everyone!", "message_type": "text", "recipient_type": "all", "recipient_id": null,
        "timestamp": TS
    });
    let nm = round_trip::<NewMessage>(message.clone());
    has_guide_fields(
        "new-message",
        &nm,
        &[
            "id",
            "meeting_id",
            "sender_id",
            "sender_name",
            "message",
            "message_type",
            "recipient_type",
            "timestamp",
        ],
    );
    round_trip::<NewMessage>(json!({
        "id": "msg_xyz", "meeting_id": "meeting_abc123", "sender_id": "user_123", "sender_name": "John Doe",
        "message": "psst", "message_type": "text", "recipient_type": "private", "recipient_id": "user_456",
        "timestamp": TS
    }));
    let you = json!({"participantId": "participant_xyz", "userId": "user_123", "role": "host"});
    round_trip::<MeetingState>(json!({
        "meetingId": "meeting_abc123", "title": "Standup", "you": you,
        "participants": [{"participantId": "participant_xyz", "userId": "user_123", "userName": "John Doe",
            "role": "host", "handRaised": false, "joinedAt": TS,
            "producers": [{"producerId": "p1", "kind": "video", "source": "camera", "paused": false}]}],
        "layout": "grid", "spotlight": {"userId": "user_123"},
        "screenShare": {"participantId": "participant_xyz", "userId": "user_123", "userName": "John Doe"},
        "recording": {"state": "idle"},
        "settings": {"maxParticipants": 100, "recordingEnabled": false, "allowSelfUnmute": true},
        "recentMessages": [message]
    }));
    round_trip::<MeetingState>(json!({
        "meetingId": "meeting_abc123", "title": "Standup", "you": you, "participants": [], "layout": "presentation",
        "spotlight": null, "screenShare": null, "recording": {"state": "idle"},
        "settings": {"maxParticipants": 10000, "recordingEnabled": true, "allowSelfUnmute": false},
        "recentMessages": []
    }));
    round_trip::<JoinAck>(
        json!({"meetingId": "meeting_abc123", "participantId": "participant_xyz", "you": you}),
    );
    let np = round_trip::<NewProducer>(json!({
        "participantId": "participant_xyz", "userId": "user_456", "userName": "Jane Smith",
        "producerId": "producer_xyz", "kind": "video", "source": "camera"
    }));
    has_guide_fields(
        "new-producer",
        &np,
        &["participantId", "producerId", "kind"],
    );
    round_trip::<ProducerPaused>(json!({
        "meetingId": "meeting_abc123", "participantId": "participant_xyz", "userId": "user_456",
        "userName": "Jane Smith", "producerId": "producer_xyz", "kind": "audio", "source": "mic", "byModerator": true
    }));
    let tc = round_trip::<TransportCreated>(json!({
        "direction": "send",
        "params": {"id": "transport_id_xyz", "iceParameters": {"usernameFragment": "u", "password": "p", "iceLite": true},
            "iceCandidates": [], "dtlsParameters": {"role": "auto", "fingerprints": []}}
    }));
    has_guide_fields("transport-created", &tc, &["direction", "params"]);
    round_trip::<TransportConnected>(json!({"transportId": "transport_id_xyz"}));
    round_trip::<Produced>(
        json!({"producerId": "producer_xyz", "kind": "video", "source": "camera"}),
    );
    round_trip::<Produced>(
        json!({"producerId": "producer_xyz", "kind": "audio", "source": "mic", "paused": true}),
    );
    let sub = round_trip::<Subscribed>(json!({
        "id": "consumer_xyz", "producerId": "producer_xyz", "kind": "video", "rtpParameters": {"codecs": []},
        "type": "simulcast", "producerPaused": false, "participantId": "participant_xyz", "userId": "user_456",
        "source": "camera"
    }));
    has_guide_fields(
        "subscribed",
        &sub,
        &["id", "producerId", "kind", "rtpParameters"],
    );
    round_trip::<ConsumerPausedAck>(json!({"consumerId": "consumer_xyz", "paused": true}));
    round_trip::<ProducerAck>(json!({"producerId": "producer_xyz"}));
    let q = round_trip::<QualityChanged>(
        json!({"participantId": "participant_xyz", "quality": "high"}),
    );
    has_guide_fields("quality:changed", &q, &["quality", "participantId"]);
    round_trip::<ConsumerClosed>(
        json!({"consumerId": "consumer_xyz", "producerId": "producer_xyz", "reason": "producer-closed"}),
    );
    round_trip::<TransportClosed>(
        json!({"transportId": "t", "direction": "recv", "reason": "ice-timeout"}),
    );
    round_trip::<AuthExpired>(json!({"expiredAt": TS, "graceMs": 60000}));
    round_trip::<AuthRefreshAck>(json!({"expiresAt": TS}));
    round_trip::<AuthRefreshAck>(json!({"expiresAt": null}));
    round_trip::<ServerShutdown>(json!({"reconnectAfterMs": 5000}));
    round_trip::<Empty>(json!({}));
    round_trip::<HandAck>(json!({"handRaised": true}));
    round_trip::<ScreenStartAck>(json!({"sharing": true}));
    let err = round_trip::<WireError>(json!({
        "code": "RATE_LIMIT_EXCEEDED", "message": "slow down", "event": "send-message", "retryAfterMs": 1200
    }));
    has_guide_fields("error", &err, &["code", "message"]);
}

#[test]
fn client_to_server_payloads_round_trip_in_the_guides_shape() {
    round_trip::<JoinMeeting>(
        json!({"meetingId": "meeting_abc123", "userId": "user_123", "userName": "John Doe"}),
    );
    round_trip::<JoinMeeting>(
        json!({"meetingId": "meeting_abc123", "previousParticipantId": "participant_old"}),
    );
    round_trip::<MeetingRequest>(json!({"meetingId": "meeting_abc123"}));
    round_trip::<MuteRequest>(
        json!({"meetingId": "meeting_abc123", "targetUserId": "user_456", "muteType": "audio"}),
    );
    round_trip::<ReactionSend>(json!({"meetingId": "meeting_abc123", "emoji": "👍"}));
    round_trip::<LayoutChange>(json!({"meetingId": "meeting_abc123", "layout": "grid"}));
    round_trip::<PinRequest>(json!({"meetingId": "meeting_abc123", "targetUserId": "user_456"}));
    round_trip::<SpotlightRequest>(
        json!({"meetingId": "meeting_abc123", "targetUserId": "user_456"}),
    );
    round_trip::<SpotlightRequest>(json!({"meetingId": "meeting_abc123", "targetUserId": null}));
    round_trip::<RoleRequest>(
        json!({"meetingId": "meeting_abc123", "targetUserId": "user_456", "role": "moderator"}),
    );
    round_trip::<StatsReport>(json!({
        "meetingId": "meeting_abc123", "stats": {"rtt": 45.0, "packetLoss": 0.5, "jitter": 10.0, "bitrate": 1500000.0}
    }));
    round_trip::<StatsReport>(json!({"meetingId": "meeting_abc123", "stats": {}}));
    round_trip::<RecordingRequest>(
        json!({"meetingId": "meeting_abc123", "options": {"recordVideo": true, "recordAudio": false, "recordChat": true}}),
    );
    round_trip::<RecordingRequest>(json!({"meetingId": "meeting_abc123"}));
    round_trip::<SendMessage>(json!({
        "meetingId": "meeting_abc123", "message": "Hello everyone!", "recipientType": "private", "recipientId": "user_456"
    }));
    round_trip::<SendMessage>(json!({"meetingId": "meeting_abc123", "message": "Hello everyone!"}));
    round_trip::<TypingRequest>(json!({"meetingId": "meeting_abc123", "typing": false}));
    round_trip::<CreateTransport>(json!({"meetingId": "meeting_abc123", "direction": "recv"}));
    round_trip::<ConnectTransport>(json!({
        "transportId": "t1", "dtlsParameters": {"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "AB"}]}
    }));
    round_trip::<Produce>(json!({
        "meetingId": "meeting_abc123", "kind": "video", "rtpParameters": {"codecs": []}, "appData": {"source": "screen"}
    }));
    round_trip::<Consume>(json!({
        "meetingId": "meeting_abc123", "producerParticipantId": "participant_xyz", "kind": "video",
        "rtpCapabilities": {"codecs": []}
    }));
    round_trip::<Consume>(
        json!({"meetingId": "meeting_abc123", "producerId": "producer_xyz", "rtpCapabilities": {"codecs": []}}),
    );
    round_trip::<ConsumerRequest>(json!({"consumerId": "consumer_xyz"}));
    round_trip::<ProducerRequest>(json!({"producerId": "producer_xyz"}));
    round_trip::<QualityChange>(
        json!({"meetingId": "meeting_abc123", "participantId": "user_456", "quality": "low"}),
    );
    round_trip::<AuthRefresh>(json!({"token": "eyJ..."}));
}

#[test]
fn a_misspelt_field_is_refused_by_the_structs() {
    // What the issue is about: `sender_name` written `senderName` must not pass silently.
    let bad = json!({
        "id": "m", "meeting_id": "meeting_a", "sender_id": "u", "senderName": "x", "message": "hi",
        "message_type": "text", "recipient_type": "all", "recipient_id": null, "timestamp": TS
    });
    let e = serde_json::from_value::<NewMessage>(bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("sender_name"), "{e}");
}

#[test]
fn every_event_in_the_maps_has_a_declared_type() {
    let ts = proto::typescript::typescript();
    for (name, ty) in proto::typescript::SERVER_TO_CLIENT {
        assert!(
            ts.contains(&format!("export type {ty} ")),
            "{name}: {ty} is not declared"
        );
    }
    for (name, ty, ack) in proto::typescript::CLIENT_TO_SERVER {
        for t in [ty, ack] {
            assert!(
                ts.contains(&format!("export type {t} ")),
                "{name}: {t} is not declared"
            );
        }
    }
}

/// CI's staleness check: the committed `clients/ts/src/index.ts` is exactly what the structs generate.
#[test]
fn contract_typescript_is_fresh() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/ts/src/index.ts");
    let generated = proto::typescript::typescript();
    if std::env::var_os("UPDATE_CONTRACT").is_some() {
        if let Err(e) = std::fs::write(&path, &generated) {
            panic!("writing {}: {e}", path.display());
        }
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "clients/ts/src/index.ts is stale: the payload structs in crates/proto changed.\n\
         Regenerate it with:  UPDATE_CONTRACT=1 cargo test -p proto --test contract\n\
         then fix what `npx tsc --noEmit -p clients/ts` and `web/build.sh` report."
    );
}
