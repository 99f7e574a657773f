//! The domain's rules, on in-memory ports (no database, no UDP): join/leave, access, roles and permissions, chat
//! targeting, rate limits, screen share.

use crate::testkit::{emits, identity, reaches, World};
use crate::{DomainConfig, Limits, NewMeeting, Target};
use proto::{ErrorCode, Layout, WireError};
use serde_json::json;
use state::{Limit, RuntimeStore};
use std::time::Duration;

fn code<T: std::fmt::Debug>(r: Result<T, WireError>) -> ErrorCode {
    match r {
        Err(e) => e.code,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[tokio::test]
async fn join_sends_the_snapshot_to_the_joiner_and_participant_joined_to_everyone() {
    let w = World::new();
    let (host, bob) = (identity("host", "c1"), identity("bob", "c1"));
    let m = w.meeting(&host, NewMeeting::default()).await;
    let h = w.join(&host, &m).await;
    let (b, out) = w.try_join(&bob, &m).await.expect("bob joins");
    let state = emits(&out, "meeting-state");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].target, Target::Requester);
    assert_eq!(state[0].payload["you"]["role"], "participant");
    assert_eq!(
        state[0].payload["participants"].as_array().map(Vec::len),
        Some(2)
    );
    // rtpCapabilities come from GET /meeting/{id}/webrtc-config, not the snapshot
    assert!(state[0].payload.get("rtpCapabilities").is_none());
    // the ack is small (DESIGN §4): the snapshot is not repeated in it
    assert_eq!(
        out.reply,
        json!({"meetingId": m, "participantId": b.participant_id(), "you": state[0].payload["you"]})
    );
    let joined = emits(&out, "participant-joined");
    assert_eq!(joined[0].target, Target::Meeting(m.clone()));
    assert_eq!(joined[0].payload["participantCount"], 2);
    assert_eq!(
        joined[0].payload["participantId"],
        json!(b.participant_id())
    );
    // the host's role comes from the meeting record
    let rt = w.runtime(&m).await;
    assert_eq!(rt.participants[&h.participant_id()].role, proto::Role::Host);
}

#[tokio::test]
async fn joining_an_unknown_ended_or_foreign_meeting_is_refused_and_changes_nothing() {
    let w = World::new();
    let host = identity("host", "c1");
    let unknown = proto::MeetingId::new("meeting_nope");
    assert_eq!(
        code(w.try_join(&host, &unknown).await),
        ErrorCode::MeetingNotFound
    );
    assert!(
        w.runtime.get(&unknown).await.expect("runtime").is_none(),
        "no state made"
    );

    let m = w.meeting(&host, NewMeeting::default()).await;
    let stranger = identity("eve", "other_campus");
    assert_eq!(
        code(w.try_join(&stranger, &m).await),
        ErrorCode::AccessDenied
    );
    assert!(w.runtime(&m).await.participants.is_empty());

    // allowed campuses and invitations open the door
    let open = w
        .meeting(
            &host,
            NewMeeting {
                allowed_campuses: vec!["c2".into()],
                invited_user_ids: vec!["user_ivy".into()],
                ..NewMeeting::default()
            },
        )
        .await;
    w.join(&identity("cara", "c2"), &open).await;
    w.join(&identity("ivy", "c9"), &open).await;
    assert_eq!(
        code(w.try_join(&stranger, &open).await),
        ErrorCode::AccessDenied
    );

    let mut h = w.join(&host, &m).await;
    w.ok(&mut h, "meeting:end", json!({})).await;
    assert_eq!(code(w.try_join(&host, &m).await), ErrorCode::MeetingEnded);
    assert!(w.runtime(&m).await.participants.is_empty());
}

#[tokio::test]
async fn a_full_meeting_refuses_the_next_joiner_until_someone_leaves() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w
        .meeting(
            &host,
            NewMeeting {
                max_participants: Some(2),
                ..NewMeeting::default()
            },
        )
        .await;
    w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let carl = identity("carl", "c1");
    assert_eq!(code(w.try_join(&carl, &m).await), ErrorCode::MeetingFull);
    assert_eq!(w.runtime(&m).await.participants.len(), 2);
    let left = w.ok(&mut b, "leave-meeting", json!({})).await;
    let ev = emits(&left, "participant-left");
    assert_eq!(ev[0].payload["participantCount"], 1);
    assert_eq!(ev[0].payload["reason"], "left");
    w.join(&carl, &m).await;
}

#[tokio::test]
async fn after_leaving_meeting_events_are_not_in_meeting() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    w.ok(&mut h, "leave-meeting", json!({})).await;
    assert_eq!(
        code(w.send(&mut h, "hand:raise", json!({})).await),
        ErrorCode::NotInMeeting
    );
    assert_eq!(
        code(w.send(&mut h, "leave-meeting", json!({})).await),
        ErrorCode::NotInMeeting
    );
}

#[tokio::test]
async fn participants_may_not_moderate_and_their_attempts_change_nothing() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let target = h.user_id().to_string();
    for (event, payload) in [
        (
            "participant:mute",
            json!({"targetUserId": target, "muteType": "audio"}),
        ),
        (
            "participant:unmute",
            json!({"targetUserId": target, "muteType": "audio"}),
        ),
        ("layout:change", json!({"layout": "speaker"})),
        ("participant:spotlight", json!({"targetUserId": target})),
        (
            "participant:role",
            json!({"targetUserId": b.user_id().to_string(), "role": "moderator"}),
        ),
        ("meeting:end", json!({})),
    ] {
        assert_eq!(
            code(w.send(&mut b, event, payload).await),
            ErrorCode::Forbidden,
            "{event}"
        );
    }
    let rt = w.runtime(&m).await;
    assert_eq!(rt.layout, Layout::Grid);
    assert_eq!(rt.spotlight, None);
    assert!(rt.moderator_mutes.is_empty());
    assert_eq!(
        rt.participants[&b.participant_id()].role,
        proto::Role::Participant
    );
    assert!(!rt.ended);
    // pinning is personal: allowed, told to the requester only
    let out = w
        .ok(&mut b, "participant:pin", json!({"targetUserId": target}))
        .await;
    assert_eq!(
        emits(&out, "participant:pinned")[0].target,
        Target::Requester
    );
}

#[tokio::test]
async fn a_moderator_may_change_layout_and_spotlight_but_not_roles_or_end_the_meeting() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let c = w.join(&identity("carl", "c1"), &m).await;
    let out = w
        .ok(
            &mut h,
            "participant:role",
            json!({"targetUserId": b.user_id().to_string(), "role": "moderator"}),
        )
        .await;
    assert_eq!(
        emits(&out, "participant:role-changed")[0].target,
        Target::Meeting(m.clone())
    );
    assert_eq!(
        w.store.data().roles.get(&(m.clone(), b.user_id().clone())),
        Some(&proto::Role::Moderator),
        "the role is stored, so it survives a rejoin"
    );

    let out = w
        .ok(&mut b, "layout:change", json!({"layout": "speaker"}))
        .await;
    assert_eq!(
        emits(&out, "layout:changed")[0].payload["changedBy"]["userName"],
        "bob"
    );
    w.ok(
        &mut b,
        "participant:spotlight",
        json!({"targetUserId": c.user_id().to_string()}),
    )
    .await;
    let rt = w.runtime(&m).await;
    assert_eq!(rt.layout, Layout::Speaker);
    assert_eq!(rt.spotlight.as_ref(), Some(c.user_id()));

    let carl = c.user_id().to_string();
    assert_eq!(
        code(
            w.send(
                &mut b,
                "participant:role",
                json!({"targetUserId": carl, "role": "moderator"})
            )
            .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.send(&mut b, "meeting:end", json!({})).await),
        ErrorCode::Forbidden
    );
    // nobody can take the host's role
    let host_id = h.user_id().to_string();
    assert_eq!(
        code(
            w.send(
                &mut h,
                "participant:role",
                json!({"targetUserId": host_id, "role": "participant"})
            )
            .await
        ),
        ErrorCode::Forbidden
    );
    // spotlight needs a present target
    assert_eq!(
        code(
            w.send(
                &mut b,
                "participant:spotlight",
                json!({"targetUserId": "user_ghost"})
            )
            .await
        ),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn ending_the_meeting_removes_everyone_and_closes_the_rooms() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let out = w.ok(&mut h, "meeting:end", json!({})).await;
    assert_eq!(
        emits(&out, "meeting:ended")[0].target,
        Target::Meeting(m.clone())
    );
    assert_eq!(out.close_rooms, vec![m.clone()]);
    let rt = w.runtime(&m).await;
    assert!(rt.ended && rt.participants.is_empty());
    assert_eq!(
        code(w.send(&mut b, "hand:raise", json!({})).await),
        ErrorCode::NotInMeeting
    );
    assert!(
        w.store.data().sessions.values().all(|s| s.2.is_some()),
        "every session is closed"
    );
}

#[tokio::test]
async fn private_and_host_chat_reach_only_their_addressees_and_history_respects_it() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let c = w.join(&identity("carl", "c1"), &m).await;

    let out = w
        .ok(&mut b, "send-message", json!({"message": "psst", "recipientType": "private", "recipientId": c.user_id().to_string()}))
        .await;
    let t = &emits(&out, "new-message")[0].target;
    assert!(reaches(t, &b.participant_id()) && reaches(t, &c.participant_id()));
    assert!(
        !reaches(t, &h.participant_id()),
        "the host does not read private messages"
    );

    let out = w
        .ok(
            &mut b,
            "send-message",
            json!({"message": "to the hosts", "recipientType": "host"}),
        )
        .await;
    let t = &emits(&out, "new-message")[0].target;
    assert!(reaches(t, &h.participant_id()) && reaches(t, &b.participant_id()));
    assert!(!reaches(t, &c.participant_id()));

    // refused messages are not stored
    assert_eq!(
        code(
            w.send(
                &mut b,
                "send-message",
                json!({"message": "x", "recipientType": "private", "recipientId": "user_ghost"})
            )
            .await
        ),
        ErrorCode::NotFound
    );
    let me = b.user_id().to_string();
    assert_eq!(
        code(
            w.send(
                &mut b,
                "send-message",
                json!({"message": "x", "recipientType": "private", "recipientId": me})
            )
            .await
        ),
        ErrorCode::ValidationError
    );
    assert_eq!(w.store.data().messages.len(), 2);

    // a late joiner's snapshot holds only what it may see
    let dan = w
        .try_join(&identity("dan", "c1"), &m)
        .await
        .expect("dan joins")
        .1;
    assert_eq!(
        emits(&dan, "meeting-state")[0].payload["recentMessages"],
        json!([]),
        "neither the private nor the host-only message"
    );
}

fn tight_limits() -> DomainConfig {
    DomainConfig {
        limits: Limits {
            send_message: Limit {
                count: 2,
                window: Duration::from_secs(60),
            },
            ..Limits::default()
        },
        ..DomainConfig::default()
    }
}

#[tokio::test]
async fn send_message_over_its_limit_is_refused_with_retry_after_and_not_stored() {
    let w = World::with_config(tight_limits());
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    for i in 0..2 {
        w.ok(&mut h, "send-message", json!({"message": format!("m{i}")}))
            .await;
    }
    match w
        .send(&mut h, "send-message", json!({"message": "one too many"}))
        .await
    {
        Err(e) => {
            assert_eq!(e.code, ErrorCode::RateLimitExceeded);
            assert!(
                e.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 60_000),
                "{e:?}"
            );
        }
        Ok(o) => panic!("third message passed: {o:?}"),
    }
    assert_eq!(w.store.data().messages.len(), 2);
    // the limit is per user
    w.ok(&mut b, "send-message", json!({"message": "mine"}))
        .await;
}

#[tokio::test]
async fn reactions_are_limited_to_three_per_second() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    for _ in 0..3 {
        let out = w.ok(&mut h, "reaction:send", json!({"emoji": "👍"})).await;
        assert_eq!(emits(&out, "reaction:received").len(), 1);
    }
    assert_eq!(
        code(
            w.send(&mut h, "reaction:send", json!({"emoji": "👍"}))
                .await
        ),
        ErrorCode::RateLimitExceeded
    );
    assert_eq!(
        code(
            w.send(&mut h, "reaction:send", json!({"emoji": "🍕"}))
                .await
        ),
        ErrorCode::ValidationError
    );
}

#[tokio::test]
async fn one_screen_sharer_at_a_time_stopped_by_the_sharer_a_host_or_leaving() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    let mut b = w.join(&identity("bob", "c1"), &m).await;
    let mut c = w.join(&identity("carl", "c1"), &m).await;

    assert_eq!(
        code(w.send(&mut b, "screen:stop", json!({})).await),
        ErrorCode::NotFound
    );
    let out = w.ok(&mut b, "screen:start", json!({})).await;
    assert_eq!(emits(&out, "screen:started").len(), 1);
    assert_eq!(
        code(w.send(&mut c, "screen:start", json!({})).await),
        ErrorCode::ScreenShareActive
    );
    assert_eq!(
        code(w.send(&mut c, "screen:stop", json!({})).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        w.runtime(&m).await.screen_share.map(|s| s.participant_id),
        Some(b.participant_id())
    );
    let out = w.ok(&mut h, "screen:stop", json!({})).await;
    assert_eq!(emits(&out, "screen:stopped")[0].payload["userName"], "bob");

    w.ok(&mut c, "screen:start", json!({})).await;
    let out = w.ok(&mut c, "leave-meeting", json!({})).await;
    assert_eq!(emits(&out, "screen:stopped").len(), 1);
    assert!(w.runtime(&m).await.screen_share.is_none());
    w.ok(&mut b, "screen:start", json!({})).await;
}

#[tokio::test]
async fn hand_raise_is_told_only_when_it_changes() {
    let w = World::new();
    let host = identity("host", "c1");
    let m = w.meeting(&host, NewMeeting::default()).await;
    let mut h = w.join(&host, &m).await;
    assert_eq!(
        emits(&w.ok(&mut h, "hand:raise", json!({})).await, "hand:raised").len(),
        1
    );
    assert!(w.ok(&mut h, "hand:raise", json!({})).await.emits.is_empty());
    assert_eq!(
        emits(&w.ok(&mut h, "hand:lower", json!({})).await, "hand:lowered").len(),
        1
    );
}

#[tokio::test]
async fn recording_state_machine_rows_and_the_servers_own_stops() {
    let w = World::new();
    let (host, bob) = (identity("host", "c1"), identity("bob", "c1"));
    let m = w
        .meeting(
            &host,
            NewMeeting {
                recording_enabled: Some(true),
                ..NewMeeting::default()
            },
        )
        .await;
    let mut h = w.join(&host, &m).await;
    let mut b = w.join(&bob, &m).await;
    assert_eq!(
        code(w.send(&mut b, "recording:start", json!({})).await),
        ErrorCode::UnauthorizedRecording
    );
    assert_eq!(
        code(w.send(&mut h, "recording:pause", json!({})).await),
        ErrorCode::RecordingNotActive
    );
    let out = w
        .send(
            &mut h,
            "recording:start",
            json!({"options": {"recordChat": false}}),
        )
        .await
        .expect("start");
    assert_eq!(out.reply["state"], "recording");
    let started = emits(&out, "recording:started");
    assert_eq!(started[0].target, Target::Meeting(m.clone()));
    assert_eq!(
        started[0].payload["options"],
        json!({"recordVideo": true, "recordAudio": true, "recordChat": false})
    );
    assert_eq!(
        code(w.send(&mut h, "recording:start", json!({})).await),
        ErrorCode::RecordingActive
    );
    w.send(&mut h, "recording:pause", json!({}))
        .await
        .expect("pause");
    assert_eq!(
        code(w.send(&mut h, "recording:pause", json!({})).await),
        ErrorCode::RecordingPaused
    );
    assert!(w
        .runtime(&m)
        .await
        .recording
        .is_some_and(|r| r.paused_at.is_some()));
    w.send(&mut h, "recording:resume", json!({}))
        .await
        .expect("resume");
    assert_eq!(
        code(w.send(&mut h, "recording:resume", json!({})).await),
        ErrorCode::RecordingNotPaused
    );
    let out = w
        .send(&mut h, "recording:stop", json!({}))
        .await
        .expect("stop");
    assert_eq!(
        emits(&out, "recording:stopped")[0].payload["reason"],
        "stopped"
    );
    assert!(w.runtime(&m).await.recording.is_none());
    {
        let d = w.store.data();
        assert_eq!(d.recordings.len(), 1);
        // no recorder on this service: the row says why there are no files
        assert_eq!(d.recordings[0].status, store::RecordingStatus::Failed);
        assert_eq!(d.recordings[0].stop_reason.as_deref(), Some("stopped"));
        assert!(!d.recordings[0].record_chat);
    }
    // the last participant leaving stops a running recording
    w.send(&mut h, "recording:start", json!({}))
        .await
        .expect("start again");
    w.send(&mut b, "leave-meeting", json!({}))
        .await
        .expect("bob leaves");
    assert!(
        w.runtime(&m).await.recording.is_some(),
        "one is still there"
    );
    w.send(&mut h, "leave-meeting", json!({}))
        .await
        .expect("host leaves");
    let d = w.store.data();
    assert_eq!(d.recordings.len(), 2);
    assert_eq!(d.recordings[1].stop_reason.as_deref(), Some("empty"));
}
