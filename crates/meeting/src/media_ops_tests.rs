//! Media-plane rules on an in-process `sfu::Core` (no UDP): moderator mute as participant state, ownership,
//! screen share through `produce`, `new-producer` pacing.

use crate::media_ops::{ANNOUNCE_FALLBACK_MS, REPLY_IN_FLIGHT_MS};
use crate::testkit::{emits, identity, opus, reaches, vp8, Member, World};
use crate::NewMeeting;
use proto::{ErrorCode, MeetingId, WireError};
use serde_json::{json, Value};

fn code<T: std::fmt::Debug>(r: Result<T, WireError>) -> ErrorCode {
    match r {
        Err(e) => e.code,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

struct Room {
    w: World,
    m: MeetingId,
    host: Member,
    bob: Member,
}

/// A meeting with a host and bob; bob has a send transport.
async fn room(allow_self_unmute: bool) -> Room {
    room_in(World::new(), allow_self_unmute).await
}

async fn room_in(w: World, allow_self_unmute: bool) -> Room {
    let host = identity("host", "c1");
    let m = w
        .meeting(
            &host,
            NewMeeting {
                allow_self_unmute: Some(allow_self_unmute),
                ..NewMeeting::default()
            },
        )
        .await;
    let host = w.join(&host, &m).await;
    let mut bob = w.join(&identity("bob", "c1"), &m).await;
    w.ok(&mut bob, "create-transport", json!({"direction": "send"}))
        .await;
    Room { w, m, host, bob }
}

impl Room {
    async fn produce(&mut self, kind: &str, ssrc: u32) -> String {
        // mids are never reused on a transport: name each after its ssrc
        let mid = ssrc.to_string();
        let rtp = if kind == "audio" {
            opus(&mid, ssrc)
        } else {
            vp8(&mid, ssrc)
        };
        let out = self
            .w
            .ok(
                &mut self.bob,
                "produce",
                json!({"kind": kind, "rtpParameters": rtp}),
            )
            .await;
        out.reply["producerId"]
            .as_str()
            .expect("producerId")
            .to_owned()
    }

    async fn mute(&mut self, kind: &str) -> crate::Outcome {
        let bob = self.bob.user_id().to_string();
        self.w
            .ok(
                &mut self.host,
                "participant:mute",
                json!({"targetUserId": bob, "muteType": kind}),
            )
            .await
    }

    async fn bob_sends(
        &mut self,
        event: &str,
        producer: &str,
    ) -> Result<crate::Outcome, WireError> {
        self.w
            .send(&mut self.bob, event, json!({"producerId": producer}))
            .await
    }

    async fn paused_in_runtime(&self, producer: &str) -> bool {
        let rt = self.w.runtime(&self.m).await;
        rt.producer_owner(producer)
            .and_then(|o| o.producers.iter().find(|p| p.producer_id == producer))
            .is_some_and(|p| p.paused)
    }

    /// Paused both in the runtime state and on the media core.
    async fn held(&self, producer: &str) -> bool {
        let runtime = self.paused_in_runtime(producer).await;
        let server = self.w.media.paused_on_server(&self.m, producer);
        assert_eq!(
            runtime, server,
            "runtime and media core agree on {producer}"
        );
        runtime
    }
}

fn by_moderator(out: &crate::Outcome) -> Vec<&Value> {
    emits(out, "producer:paused")
        .into_iter()
        .filter(|e| e.payload["byModerator"] == true)
        .map(|e| &e.payload)
        .collect()
}

#[tokio::test]
async fn moderator_mute_pauses_that_kind_on_the_server_and_marks_the_participant() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    let cam = r.produce("video", 2000).await;
    let out = r.mute("audio").await;
    assert_eq!(emits(&out, "participant:muted").len(), 1);
    let paused = by_moderator(&out);
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["producerId"], json!(mic));
    assert!(r.held(&mic).await);
    assert!(!r.held(&cam).await, "a mute is per kind");
    let rt = r.w.runtime(&r.m).await;
    assert!(rt.moderator_muted(&r.bob.participant_id(), "audio"));
    assert!(!rt.moderator_muted(&r.bob.participant_id(), "video"));
}

#[tokio::test]
async fn without_self_unmute_resume_is_forbidden_even_after_an_own_pause() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    r.mute("audio").await;
    assert_eq!(
        code(r.bob_sends("producer:resume", &mic).await),
        ErrorCode::Forbidden
    );
    assert!(r.held(&mic).await);
    // pausing yourself is fine, but it does not turn the moderator's mute into your own
    let out = r
        .bob_sends("producer:pause", &mic)
        .await
        .expect("own pause");
    assert_eq!(
        emits(&out, "producer:paused")[0].payload["byModerator"],
        false
    );
    assert_eq!(
        code(r.bob_sends("producer:resume", &mic).await),
        ErrorCode::Forbidden
    );
    assert!(r.held(&mic).await);
    // a producer paused by its owner before the mute stays held too
    let cam = r.produce("video", 2000).await;
    r.bob_sends("producer:pause", &cam)
        .await
        .expect("own pause");
    r.mute("video").await;
    assert_eq!(
        code(r.bob_sends("producer:resume", &cam).await),
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn without_self_unmute_a_new_producer_of_a_muted_kind_starts_paused_on_the_server() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    r.mute("audio").await;
    let out = r.bob_sends("producer:close", &mic).await.expect("close");
    assert_eq!(out.reply["producerId"], json!(mic));
    let rtp = opus("2", 3000);
    let out =
        r.w.ok(
            &mut r.bob,
            "produce",
            json!({"kind": "audio", "rtpParameters": rtp}),
        )
        .await;
    let again = out.reply["producerId"]
        .as_str()
        .expect("producerId")
        .to_owned();
    assert_eq!(emits(&out, "produced")[0].payload["paused"], true);
    let paused = by_moderator(&out);
    assert_eq!(paused.len(), 1, "everyone is told it is muted");
    assert_eq!(paused[0]["producerId"], json!(again));
    let names: Vec<&str> = out.emits.iter().map(|e| e.event).collect();
    assert!(
        names.iter().position(|e| *e == "produced")
            < names.iter().position(|e| *e == "producer:paused"),
        "produced, then producer:paused: {names:?}"
    );
    assert!(r.held(&again).await);
    assert_eq!(
        code(r.bob_sends("producer:resume", &again).await),
        ErrorCode::Forbidden
    );
    // video was not muted: a camera starts live
    let cam = r.produce("video", 2000).await;
    assert!(!r.held(&cam).await);
}

#[tokio::test]
async fn a_host_lifts_the_mute_without_resuming_then_the_person_unmutes_themselves() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    r.mute("audio").await;
    let bob = r.bob.user_id().to_string();
    let out =
        r.w.ok(
            &mut r.host,
            "participant:unmute",
            json!({"targetUserId": bob, "muteType": "audio"}),
        )
        .await;
    let ev = emits(&out, "participant:unmuted");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].target, crate::Target::Meeting(r.m.clone()));
    assert_eq!(ev[0].payload["targetUserId"], json!(bob));
    assert_eq!(ev[0].payload["muteType"], "audio");
    assert_eq!(ev[0].payload["moderatorName"], "host");
    assert!(
        emits(&out, "producer:resumed").is_empty(),
        "lifting does not unmute"
    );
    assert!(r.held(&mic).await);
    let out = r
        .bob_sends("producer:resume", &mic)
        .await
        .expect("allowed now");
    assert_eq!(emits(&out, "producer:resumed").len(), 1);
    assert!(!r.held(&mic).await);
    // lifting again lifts nothing: no event
    let out =
        r.w.ok(
            &mut r.host,
            "participant:unmute",
            json!({"targetUserId": bob, "muteType": "audio"}),
        )
        .await;
    assert_eq!(out.reply["lifted"], false);
    assert!(out.emits.is_empty());
    assert!(r.w.store.data().audit.iter().any(|a| a.1 == "unmute"));
}

#[tokio::test]
async fn unmute_needs_a_moderator_and_a_present_target() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    r.mute("audio").await;
    let me = r.bob.user_id().to_string();
    assert_eq!(
        code(
            r.w.send(
                &mut r.bob,
                "participant:unmute",
                json!({"targetUserId": me, "muteType": "audio"})
            )
            .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            r.w.send(
                &mut r.host,
                "participant:unmute",
                json!({"targetUserId": "user_ghost", "muteType": "audio"})
            )
            .await
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(
            r.w.send(
                &mut r.host,
                "participant:unmute",
                json!({"targetUserId": me, "muteType": "both"})
            )
            .await
        ),
        ErrorCode::ValidationError
    );
    assert!(r
        .w
        .runtime(&r.m)
        .await
        .moderator_muted(&r.bob.participant_id(), "audio"));
    assert_eq!(
        code(r.bob_sends("producer:resume", &mic).await),
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn with_self_unmute_the_muted_person_may_resume_and_produce_live() {
    let mut r = room(true).await;
    let mic = r.produce("audio", 1000).await;
    r.mute("audio").await;
    assert!(r.held(&mic).await);
    let out = r
        .bob_sends("producer:resume", &mic)
        .await
        .expect("self unmute");
    assert_eq!(emits(&out, "producer:resumed").len(), 1);
    assert!(!r.held(&mic).await);
    assert!(
        !r.w.runtime(&r.m)
            .await
            .moderator_muted(&r.bob.participant_id(), "audio"),
        "unmuting yourself ends the moderator's mute"
    );
    r.mute("audio").await;
    r.bob_sends("producer:close", &mic).await.expect("close");
    let again = r.produce("audio", 3000).await;
    assert!(!r.held(&again).await);
}

#[tokio::test]
async fn the_mute_ends_when_the_participant_leaves() {
    let mut r = room(false).await;
    r.produce("audio", 1000).await;
    r.mute("audio").await;
    let old = r.bob.participant_id();
    r.w.ok(&mut r.bob, "leave-meeting", json!({})).await;
    assert!(!r.w.runtime(&r.m).await.moderator_muted(&old, "audio"));
    r.bob = r.w.join(&identity("bob", "c1"), &r.m).await;
    r.w.ok(&mut r.bob, "create-transport", json!({"direction": "send"}))
        .await;
    let mic = r.produce("audio", 4000).await;
    assert!(!r.held(&mic).await, "a new session starts unmuted");
}

#[tokio::test]
async fn producers_are_only_their_owners_and_screen_share_is_exclusive_through_produce() {
    let mut r = room(true).await;
    let mic = r.produce("audio", 1000).await;
    for event in ["producer:pause", "producer:resume", "producer:close"] {
        assert_eq!(
            code(
                r.w.send(&mut r.host, event, json!({"producerId": mic}))
                    .await
            ),
            ErrorCode::NotFound,
            "{event}"
        );
    }
    assert!(!r.held(&mic).await);
    // bob shares his screen by producing it; the host cannot share at the same time
    let rtp = vp8("2", 5000);
    let out =
        r.w.ok(
            &mut r.bob,
            "produce",
            json!({"kind": "video", "rtpParameters": rtp, "appData": {"source": "screen"}}),
        )
        .await;
    assert_eq!(emits(&out, "screen:started").len(), 1);
    let screen = out.reply["producerId"].as_str().expect("id").to_owned();
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "send"}),
    )
    .await;
    let rtp = vp8("0", 6000);
    assert_eq!(
        code(
            r.w.send(
                &mut r.host,
                "produce",
                json!({"kind": "video", "rtpParameters": rtp, "appData": {"source": "screen"}})
            )
            .await
        ),
        ErrorCode::ScreenShareActive
    );
    assert_eq!(
        code(r.w.send(&mut r.host, "screen:start", json!({})).await),
        ErrorCode::ScreenShareActive
    );
    // closing the screen producer ends the share
    let out = r.bob_sends("producer:close", &screen).await.expect("close");
    assert_eq!(emits(&out, "screen:stopped").len(), 1);
    assert!(r.w.runtime(&r.m).await.screen_share.is_none());
}

#[tokio::test]
async fn new_producer_is_announced_one_at_a_time_and_only_with_a_recv_transport() {
    let mut r = room(true).await;
    // no recv transport yet: nothing announced to the host
    let mic = r.produce("audio", 1000).await;
    let host_pid = r.host.participant_id();
    let rt = r.w.runtime(&r.m).await;
    assert_eq!(rt.participants[&host_pid].announce_cursor, 0);
    assert_eq!(*rt.announce_log, vec![mic.clone()], "one shared log entry");
    // the recv transport starts the announcements: the first one now
    let out =
        r.w.ok(
            &mut r.host,
            "create-transport",
            json!({"direction": "recv"}),
        )
        .await;
    let np = emits(&out, "new-producer");
    assert_eq!(np.len(), 1);
    assert_eq!(np[0].payload["producerId"], json!(mic));
    assert_eq!(
        np[0].target,
        crate::Target::Participants(vec![host_pid.clone()])
    );
    // a second producer waits for the host's consume of the first
    let out =
        r.w.ok(
            &mut r.bob,
            "produce",
            json!({"kind": "video", "rtpParameters": vp8("1", 2000)}),
        )
        .await;
    let cam = out.reply["producerId"].as_str().expect("id").to_owned();
    assert!(
        emits(&out, "new-producer").is_empty(),
        "one outstanding at a time"
    );
    let caps = serde_json::to_value(sfu::ortc::router_capabilities()).expect("caps");
    let out =
        r.w.ok(
            &mut r.host,
            "consume",
            json!({"producerId": mic, "rtpCapabilities": caps}),
        )
        .await;
    assert_eq!(emits(&out, "subscribed").len(), 1);
    let np = emits(&out, "new-producer");
    assert_eq!(np.len(), 1, "the next after the consume");
    assert_eq!(np[0].payload["producerId"], json!(cam));
}

#[tokio::test]
async fn a_mute_names_a_user_every_session_of_it_is_muted_and_lifted_together() {
    let mut r = room(false).await;
    let mic = r.produce("audio", 1000).await;
    // bob also joins from a second device
    let mut second = r.w.join(&identity("bob", "c1"), &r.m).await;
    r.w.ok(
        &mut second,
        "create-transport",
        json!({"direction": "send"}),
    )
    .await;
    r.mute("audio").await;
    let rt = r.w.runtime(&r.m).await;
    assert!(rt.moderator_muted(&r.bob.participant_id(), "audio"));
    assert!(rt.moderator_muted(&second.participant_id(), "audio"));
    // the second device's new microphone is held too
    let out =
        r.w.ok(
            &mut second,
            "produce",
            json!({"kind": "audio", "rtpParameters": opus("7", 7000)}),
        )
        .await;
    let other = out.reply["producerId"].as_str().expect("id").to_owned();
    assert!(r.held(&other).await);
    let bob = r.bob.user_id().to_string();
    r.w.ok(
        &mut r.host,
        "participant:unmute",
        json!({"targetUserId": bob, "muteType": "audio"}),
    )
    .await;
    assert!(r.w.runtime(&r.m).await.moderator_mutes.is_empty());
    r.bob_sends("producer:resume", &mic)
        .await
        .expect("first device");
    r.w.ok(&mut second, "producer:resume", json!({"producerId": other}))
        .await;
}

#[tokio::test]
async fn a_resume_racing_a_moderator_mute_loses() {
    // bob paused his mic himself; his resume and the host's mute cross: the resume passed its first check (not
    // muted yet), then the mute lands (it leaves the already paused producer alone) before the resume is recorded
    let (w, gate) = World::gated();
    let mut r = room_in(w, false).await;
    let mic = r.produce("audio", 1000).await;
    r.bob_sends("producer:pause", &mic)
        .await
        .expect("own pause");
    let (reached, release) = gate.arm();
    let svc = r.w.svc.clone();
    let mut session = r.bob.session.clone();
    let req = crate::Request::parse(
        "producer:resume",
        Some(&json!({"producerId": mic, "meetingId": r.m})),
    )
    .expect("request");
    let resume = tokio::spawn(async move { svc.handle(&mut session, req).await });
    reached.await.expect("the resume reaches the media plane");
    let out = r.mute("audio").await;
    assert!(by_moderator(&out).is_empty(), "nothing live to pause");
    let _ = release.send(());
    let res = resume.await.expect("resume task");
    assert_eq!(code(res), ErrorCode::Forbidden);
    assert!(r.held(&mic).await, "still paused, on the server too");
}

// ---- big meetings: owner indexes and the shared announce log (issue 8 item 4)

/// The owner indexes match the participants' records.
async fn consistent(w: &crate::testkit::World, m: &MeetingId) -> state::MeetingRuntime {
    let rt = w.runtime(m).await;
    if let Err(e) = rt.check_indexes() {
        panic!("indexes out of step: {e}");
    }
    rt
}

/// The host consumes `producer` (needs its recv transport); the consumer id.
async fn host_consumes(r: &mut Room, producer: &str) -> String {
    let caps = serde_json::to_value(sfu::ortc::router_capabilities()).expect("caps");
    let out =
        r.w.ok(
            &mut r.host,
            "consume",
            json!({"producerId": producer, "rtpCapabilities": caps}),
        )
        .await;
    out.reply["id"].as_str().expect("consumer id").to_owned()
}

#[tokio::test]
async fn owner_indexes_follow_produce_consume_close_and_leave() {
    let mut r = room(true).await;
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "recv"}),
    )
    .await;
    let mic = r.produce("audio", 1000).await;
    let cam = r.produce("video", 2000).await;
    let rt = consistent(&r.w, &r.m).await;
    let (bob, host) = (r.bob.participant_id(), r.host.participant_id());
    assert_eq!(rt.producer_owners.get(&mic), Some(&bob));
    assert_eq!(rt.producer_owners.get(&cam), Some(&bob));
    assert_eq!(rt.transport_owners.len(), 2, "bob's send, the host's recv");
    let c_mic = host_consumes(&mut r, &mic).await;
    let c_cam = host_consumes(&mut r, &cam).await;
    let rt = consistent(&r.w, &r.m).await;
    assert_eq!(
        rt.consumer_owner(&c_mic).map(|p| &p.participant_id),
        Some(&host)
    );
    // closing a producer drops it and the host's consumer of it from the indexes
    let out = r.bob_sends("producer:close", &mic).await.expect("close");
    assert_eq!(emits(&out, "consumer-closed").len(), 1);
    let rt = consistent(&r.w, &r.m).await;
    assert!(rt.producer_owner(&mic).is_none());
    assert!(rt.consumer_owner(&c_mic).is_none());
    assert!(rt.consumer_owner(&c_cam).is_some());
    // a second send transport replaces the first: its producer goes, the index follows
    r.w.ok(&mut r.bob, "create-transport", json!({"direction": "send"}))
        .await;
    let rt = consistent(&r.w, &r.m).await;
    assert!(rt.producer_owners.is_empty(), "{:?}", rt.producer_owners);
    assert!(rt.consumer_owners.is_empty());
    // bob produces again, the host consumes, then bob leaves: nothing of bob's is left in any index
    let mic2 = r.produce("audio", 3000).await;
    host_consumes(&mut r, &mic2).await;
    consistent(&r.w, &r.m).await;
    let out = r.w.ok(&mut r.bob, "leave-meeting", json!({})).await;
    assert_eq!(emits(&out, "consumer-closed").len(), 1);
    let rt = consistent(&r.w, &r.m).await;
    assert!(rt.producer_owners.is_empty() && rt.consumer_owners.is_empty());
    assert_eq!(rt.transport_owners.len(), 1, "the host's recv transport");
    assert!(rt.transport_owners.values().all(|p| *p == host));
}

#[tokio::test]
async fn owner_indexes_follow_a_failed_transport() {
    let mut r = room(true).await;
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "recv"}),
    )
    .await;
    let mic = r.produce("audio", 1000).await;
    let consumer = host_consumes(&mut r, &mic).await;
    let rt = consistent(&r.w, &r.m).await;
    let send = rt.participants[&r.bob.participant_id()]
        .send_transport
        .clone()
        .expect("send transport");
    // the media plane fails bob's send transport (closing it there with its producer and the host's consumer)
    let (producers, consumers) = r.w.media.core().close_transport(&send);
    assert_eq!((producers.len(), consumers.len()), (1, 1));
    let out =
        r.w.svc
            .transport_failed(media::CoreEvent::TransportClosed {
                transport: send.clone(),
                router: r.m.to_string(),
                direction: sfu::Direction::Send,
                reason: "dtls-failed",
                producers,
                consumers,
            })
            .await;
    assert_eq!(emits(&out, "transport:closed").len(), 1);
    let closed = emits(&out, "consumer-closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].payload["consumerId"], json!(consumer));
    let rt = consistent(&r.w, &r.m).await;
    assert!(rt.transport_owner(&send).is_none());
    assert!(rt.producer_owner(&mic).is_none());
    assert!(rt.consumer_owner(&consumer).is_none());
    assert!(rt.participants[&r.bob.participant_id()]
        .send_transport
        .is_none());
}

#[tokio::test]
async fn the_announce_log_is_shared_skips_closed_producers_and_is_compacted() {
    let mut config = crate::DomainConfig::default();
    config.limits.produce.count = 1000;
    let mut r = room_in(crate::testkit::World::with_config(config), true).await;
    // many producers come and go before the host has a recv transport: one log, no per-participant copies
    let mut last = String::new();
    for i in 0..60u32 {
        let id = r.produce("audio", 10_000 + i).await;
        if i < 59 {
            r.bob_sends("producer:close", &id).await.expect("close");
        }
        last = id;
    }
    let rt = consistent(&r.w, &r.m).await;
    assert!(
        rt.announce_log.len() <= 2 * rt.producer_owners.len() + 32,
        "compacted: {} entries for {} producers",
        rt.announce_log.len(),
        rt.producer_owners.len()
    );
    // the late recv transport announces only the live producer
    let out =
        r.w.ok(
            &mut r.host,
            "create-transport",
            json!({"direction": "recv"}),
        )
        .await;
    let np = emits(&out, "new-producer");
    assert_eq!(np.len(), 1);
    assert_eq!(np[0].payload["producerId"], json!(last));
    host_consumes(&mut r, &last).await;
    let rt = consistent(&r.w, &r.m).await;
    let host = &rt.participants[&r.host.participant_id()];
    assert_eq!(
        host.announce_cursor,
        rt.announce_log.len(),
        "nothing left to announce"
    );
    // Only the short hold behind the consume's `subscribed` reply remains (REPLY_IN_FLIGHT_MS).
    assert!(host.announced_at.is_some_and(
        |t| proto::time::now_ms() - t >= ANNOUNCE_FALLBACK_MS - REPLY_IN_FLIGHT_MS - 100
    ));
}

#[tokio::test]
async fn a_producer_right_after_a_consume_does_not_overtake_its_subscribed_reply() {
    let mut r = room(true).await;
    let mic = r.produce("audio", 1000).await;
    let host_pid = r.host.participant_id();
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "recv"}),
    )
    .await;
    let caps = serde_json::to_value(sfu::ortc::router_capabilities()).expect("caps");
    // The host consumes the only producer: nothing is left to announce with the reply.
    let out =
        r.w.ok(
            &mut r.host,
            "consume",
            json!({"producerId": mic, "rtpCapabilities": caps}),
        )
        .await;
    assert!(emits(&out, "new-producer").is_empty());
    // Bob's camera arrives while the host's `subscribed` may still be on its way: not announced by bob's request.
    let out =
        r.w.ok(
            &mut r.bob,
            "produce",
            json!({"kind": "video", "rtpParameters": vp8("1", 2000)}),
        )
        .await;
    let cam = out.reply["producerId"].as_str().expect("id").to_owned();
    assert!(
        emits(&out, "new-producer")
            .iter()
            .all(|e| !reaches(&e.target, &host_pid)),
        "the host's next announcement waits for its subscribed reply"
    );
    // It is pending and goes once the reply had time to leave (the pacer's next tick).
    let mut rt = r.w.runtime(&r.m).await;
    let held = rt.participants[&host_pid].announced_at.expect("held");
    assert!(rt.announcing(&rt.participants[&host_pid]));
    let next = rt
        .next_announcement(&host_pid)
        .map(|(_, p)| p.producer_id.clone());
    assert_eq!(next, Some(cam));
    let now = proto::time::now_ms();
    assert!(
        now - held < ANNOUNCE_FALLBACK_MS
            && now - held >= ANNOUNCE_FALLBACK_MS - REPLY_IN_FLIGHT_MS - 100,
        "held for about {REPLY_IN_FLIGHT_MS} ms"
    );
}

#[tokio::test]
async fn speaker_reports_name_participants_and_skip_producers_that_are_gone() {
    let mut r = room(true).await;
    let mic = r.produce("audio", 3000).await;
    let bob = r.bob.participant_id().to_string();
    let router = r.m.to_string();
    let out =
        r.w.svc
            .media_event(media::CoreEvent::ActiveSpeaker {
                router: router.clone(),
                producer: mic.clone(),
            })
            .await;
    let e = emits(&out, "active-speaker");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].target, crate::Target::Meeting(r.m.clone()));
    assert_eq!(
        e[0].payload,
        json!({"meetingId": router, "participantId": bob, "userId": r.bob.user_id().to_string()})
    );
    // A producer closed meanwhile: nothing.
    let out =
        r.w.svc
            .media_event(media::CoreEvent::ActiveSpeaker {
                router: router.clone(),
                producer: "pr_gone".into(),
            })
            .await;
    assert!(out.emits.is_empty());

    let out =
        r.w.svc
            .media_event(media::CoreEvent::AudioLevels {
                router: router.clone(),
                levels: vec![("pr_gone".into(), 0.5), (mic.clone(), 0.25)],
            })
            .await;
    let e = emits(&out, "audio-levels");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].payload,
        json!({"meetingId": router, "levels": [{"participantId": bob, "level": 0.25}]})
    );
    // Only producers that are gone: nothing; silence (an empty list): said once, as the media plane sends it.
    let out =
        r.w.svc
            .media_event(media::CoreEvent::AudioLevels {
                router: router.clone(),
                levels: vec![("pr_gone".into(), 0.5)],
            })
            .await;
    assert!(out.emits.is_empty());
    let out =
        r.w.svc
            .media_event(media::CoreEvent::AudioLevels {
                router: router.clone(),
                levels: Vec::new(),
            })
            .await;
    assert_eq!(emits(&out, "audio-levels")[0].payload["levels"], json!([]));
}

#[tokio::test]
async fn connection_quality_names_the_transports_owner_and_only_changes_are_sent() {
    use sfu::quality::Quality;
    let r = room(true).await;
    let rt = consistent(&r.w, &r.m).await;
    let send = rt.participants[&r.bob.participant_id()]
        .send_transport
        .clone()
        .expect("send transport");
    let event = |transport: &str, quality, previous| media::CoreEvent::ConnectionQuality {
        router: r.m.to_string(),
        transport: transport.to_owned(),
        quality,
        previous,
    };
    let out =
        r.w.svc
            .media_event(event(&send, Quality::Excellent, None))
            .await;
    let e = emits(&out, "connection-quality");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].target, crate::Target::Meeting(r.m.clone()));
    assert_eq!(
        e[0].payload,
        json!({"meetingId": r.m.to_string(), "participantId": r.bob.participant_id().to_string(), "quality": "excellent"})
    );
    let out =
        r.w.svc
            .media_event(event(&send, Quality::Lost, Some(Quality::Excellent)))
            .await;
    assert_eq!(
        emits(&out, "connection-quality")[0].payload["quality"],
        json!("lost")
    );
    // A transport nobody owns (closed meanwhile): nothing.
    let out =
        r.w.svc
            .media_event(event("tr_gone", Quality::Poor, None))
            .await;
    assert!(out.emits.is_empty());
}

#[tokio::test]
async fn layers_needed_goes_to_the_producers_owner_only() {
    let mut r = room(true).await;
    let cam = r.produce("video", 4000).await;
    let out =
        r.w.svc
            .media_event(media::CoreEvent::LayersNeeded {
                router: r.m.to_string(),
                producer: cam.clone(),
                spatial_layers: 1,
            })
            .await;
    let e = emits(&out, "producer:layers-needed");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].target,
        crate::Target::Participants(vec![r.bob.participant_id()])
    );
    assert_eq!(e[0].payload, json!({"producerId": cam, "spatialLayers": 1}));
    let out =
        r.w.svc
            .media_event(media::CoreEvent::LayersNeeded {
                router: r.m.to_string(),
                producer: "pr_gone".into(),
                spatial_layers: 2,
            })
            .await;
    assert!(out.emits.is_empty());
}

#[tokio::test]
async fn layers_changed_goes_to_the_consumers_owner() {
    let mut r = room(true).await;
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "recv"}),
    )
    .await;
    let cam = r.produce("video", 5000).await;
    let consumer = host_consumes(&mut r, &cam).await;
    let out =
        r.w.svc
            .media_event(media::CoreEvent::ConsumerLayersChanged {
                router: r.m.to_string(),
                consumer: consumer.clone(),
                spatial_layer: 1,
                temporal_layer: 2,
            })
            .await;
    let e = emits(&out, "consumer:layers-changed");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].target,
        crate::Target::Participants(vec![r.host.participant_id()])
    );
    assert_eq!(
        e[0].payload,
        json!({"consumerId": consumer, "spatialLayer": 1, "temporalLayer": 2})
    );
}

/// Issue 11 item 1: the media plane learns which video comes first when a subscriber's bandwidth is short — the
/// screen share, then the spotlighted participant's camera, then the rest — from `produce` and the spotlight.
#[tokio::test]
async fn screen_share_and_spotlight_set_the_media_priorities() {
    use sfu::allocator::Priority;
    let mut r = room(true).await;
    let prio = |r: &Room, id: &str| r.w.media.core().producer_priority(id);
    let camera = r.produce("video", 1000).await;
    let mic = r.produce("audio", 2000).await;
    assert_eq!(prio(&r, &camera), Some(Priority::Normal));
    let rtp = vp8("3", 3000);
    let out =
        r.w.ok(
            &mut r.bob,
            "produce",
            json!({"kind": "video", "rtpParameters": rtp, "appData": {"source": "screen"}}),
        )
        .await;
    let screen = out.reply["producerId"].as_str().expect("id").to_owned();
    assert_eq!(prio(&r, &screen), Some(Priority::Screen));
    assert_eq!(prio(&r, &camera), Some(Priority::Normal));

    // The host spotlights bob: his camera comes next; the screen share stays first.
    let bob = r.bob.user_id().to_string();
    r.w.ok(
        &mut r.host,
        "participant:spotlight",
        json!({"targetUserId": bob}),
    )
    .await;
    assert_eq!(prio(&r, &camera), Some(Priority::Large));
    assert_eq!(prio(&r, &screen), Some(Priority::Screen));
    assert_eq!(
        prio(&r, &mic),
        Some(Priority::Normal),
        "audio is not shared out"
    );
    // A camera produced while spotlighted comes next too.
    let camera2 = r.produce("video", 4000).await;
    assert_eq!(prio(&r, &camera2), Some(Priority::Large));

    // The spotlight moves to the host: bob's cameras back to the rest, the host's camera next.
    let host = r.host.user_id().to_string();
    r.w.ok(
        &mut r.host,
        "create-transport",
        json!({"direction": "send"}),
    )
    .await;
    let rtp = vp8("0", 5000);
    let out =
        r.w.ok(
            &mut r.host,
            "produce",
            json!({"kind": "video", "rtpParameters": rtp}),
        )
        .await;
    let host_camera = out.reply["producerId"].as_str().expect("id").to_owned();
    assert_eq!(prio(&r, &host_camera), Some(Priority::Normal));
    r.w.ok(
        &mut r.host,
        "participant:spotlight",
        json!({"targetUserId": host}),
    )
    .await;
    assert_eq!(prio(&r, &host_camera), Some(Priority::Large));
    assert_eq!(prio(&r, &camera), Some(Priority::Normal));
    assert_eq!(prio(&r, &camera2), Some(Priority::Normal));
    assert_eq!(prio(&r, &screen), Some(Priority::Screen));
    // Cleared: nobody's camera comes first.
    r.w.ok(
        &mut r.host,
        "participant:spotlight",
        json!({"targetUserId": null}),
    )
    .await;
    assert_eq!(prio(&r, &host_camera), Some(Priority::Normal));
    assert_eq!(prio(&r, &screen), Some(Priority::Screen));
}
