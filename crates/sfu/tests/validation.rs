//! (f) Routers are isolated (a transport of another router cannot consume: NotFound), and malformed control input —
//! rtpParameters (PT > 127, duplicate PTs, no encodings, RTX first, unknown codec, …), dtlsParameters, wrong
//! transport directions, capabilities without the codec — gives errors, never panics, and leaves a running
//! session untouched.

mod common;

use common::*;
use serde_json::json;
use sfu::ortc::{RtcpFeedback, RtpCodecParameters, RtpEncodingParameters, RtpParameters};
use sfu::{Kind, SfuError};
use std::time::Duration;

#[test]
fn another_router_cannot_consume() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    let a = pair.audio.clone().expect("audio");
    let other = w.add_subscriber("router-2");
    let tid = w.subs[other].transport.id.clone();
    assert_eq!(w.core.transport_router(&tid), Some("router-2"));
    for p in [&v, &a] {
        assert_eq!(
            w.core.consume(&tid, p, &device_caps()).map(|c| c.id),
            Err(SfuError::NotFound("producer"))
        );
    }
    assert_eq!(w.core.stats().consumers, 2);
    // A producer of router-2 is as invisible to router-1's subscribers.
    let p2 = w.add_publisher("router-2");
    let v2 = w.produce(p2, Kind::Video, false);
    assert_eq!(w.core.producer_router(&v2), Some("router-2"));
    let tid1 = w.subs[0].transport.id.clone();
    assert_eq!(
        w.core.consume(&tid1, &v2, &device_caps()).map(|c| c.id),
        Err(SfuError::NotFound("producer"))
    );
    // …while router-2's subscriber can consume it.
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p2].ep.connected));
    let c = w.consume_with(other, &v2, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[other].ep.connected));
    w.resume(&c.id);
    w.run(Duration::from_millis(500));
    assert!(w.subs[other].rtp_of(&c).len() > 20);
    // Router-1's subscriber saw nothing but its own two consumers.
    let own: Vec<u32> = w.subs[0].consumers.iter().map(Subscriber::ssrc).collect();
    assert!(w.subs[0]
        .ep
        .rtp
        .iter()
        .all(|p| own.contains(&*p.header.ssrc)));
}

#[test]
fn wrong_directions_unknown_ids_and_capabilities() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    let send = w.pubs[0].transport.id.clone();
    let recv = w.subs[0].transport.id.clone();
    let rtp = w.pubs[0].tracks[1].rtp_parameters.clone();
    // consume on a send transport, produce on a recv transport.
    assert!(matches!(
        w.core.consume(&send, &v, &device_caps()),
        Err(SfuError::Invalid(_))
    ));
    assert!(matches!(
        w.core.produce(&recv, Kind::Video, &rtp),
        Err(SfuError::Invalid(_))
    ));
    // Unknown ids.
    assert_eq!(
        w.core.consume("tr_nope", &v, &device_caps()).map(|c| c.id),
        Err(SfuError::NotFound("transport"))
    );
    assert_eq!(
        w.core
            .consume(&recv, "pr_nope", &device_caps())
            .map(|c| c.id),
        Err(SfuError::NotFound("producer"))
    );
    assert_eq!(
        w.core.produce("tr_nope", Kind::Video, &rtp),
        Err(SfuError::NotFound("transport"))
    );
    assert_eq!(
        w.core.set_consumer_preferred_layer("co_nope", 1, w.now),
        Err(SfuError::NotFound("consumer"))
    );
    // A device that cannot decode VP8 (H264 only) cannot consume; neither can an empty one.
    let mut caps = device_caps();
    caps.codecs
        .retain(|c| !c.mime_type.eq_ignore_ascii_case("video/vp8"));
    assert!(matches!(
        w.core.consume(&recv, &v, &caps),
        Err(SfuError::CannotConsume(_))
    ));
    let empty = sfu::RtpCapabilities {
        codecs: vec![],
        header_extensions: vec![],
    };
    assert!(matches!(
        w.core.consume(&recv, &v, &empty),
        Err(SfuError::CannotConsume(_))
    ));
    assert_eq!(w.core.stats().consumers, 2);
    // A device without RTX still consumes video, with no RTX in its parameters.
    let mut caps = device_caps();
    caps.codecs.retain(|c| !c.mime_type.ends_with("/rtx"));
    let c = w
        .core
        .consume(&recv, &v, &caps)
        .expect("consume without rtx");
    assert!(c.rtp_parameters.encodings[0].rtx.is_none());
    assert_eq!(c.rtp_parameters.codecs.len(), 1);
}

#[test]
fn malformed_rtp_parameters_are_errors() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let send = w.pubs[0].transport.id.clone();
    let video = w.pubs[0].tracks[1].rtp_parameters.clone();
    let audio = w.pubs[0].tracks[0].rtp_parameters.clone();
    let producers = w.core.stats().producers;
    assert_eq!(video.codecs.len(), 2, "VP8 + RTX from the fake client");

    let fresh = |mut p: RtpParameters| {
        p.mid = Some("fresh".into());
        p
    };
    let codec = |mime: &str, pt: u8| RtpCodecParameters {
        mime_type: mime.into(),
        payload_type: pt,
        clock_rate: 90_000,
        channels: None,
        parameters: Default::default(),
        rtcp_feedback: vec![RtcpFeedback {
            kind: "nack".into(),
            parameter: None,
        }],
    };
    type Case = (&'static str, Kind, RtpParameters, fn(&SfuError) -> bool);
    let mut cases: Vec<Case> = Vec::new();
    let invalid: fn(&SfuError) -> bool = |e| matches!(e, SfuError::Invalid(_));
    let unsupported: fn(&SfuError) -> bool = |e| matches!(e, SfuError::Unsupported(_));

    let mut p = fresh(video.clone());
    p.codecs[0].payload_type = 200;
    cases.push(("PT > 127", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.codecs[1].payload_type = 128;
    cases.push(("RTX PT > 127", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.codecs[1].payload_type = p.codecs[0].payload_type;
    cases.push(("duplicate PT", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.encodings.clear();
    cases.push(("no encodings", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.codecs.reverse();
    cases.push(("rtx first", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.codecs[0].mime_type = "video/FOO".into();
    cases.push(("unknown codec", Kind::Video, p, unsupported));
    let mut p = fresh(video.clone());
    p.codecs = vec![codec("video/H265", 49)];
    cases.push(("codec the router lacks", Kind::Video, p, unsupported));
    let mut p = fresh(video.clone());
    p.codecs.clear();
    cases.push(("no codecs", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.codecs = (0..20).map(|i| codec("video/VP8", 96 + i)).collect();
    cases.push(("20 codecs", Kind::Video, p, invalid));
    cases.push((
        "audio codec for video",
        Kind::Video,
        fresh(audio.clone()),
        invalid,
    ));
    cases.push((
        "video codec for audio",
        Kind::Audio,
        fresh(video.clone()),
        invalid,
    ));
    let mut p = fresh(audio.clone());
    p.encodings.push(p.encodings[0].clone());
    cases.push(("two audio encodings", Kind::Audio, p, invalid));
    let mut p = fresh(video.clone());
    p.encodings = vec![RtpEncodingParameters::default()];
    cases.push(("encoding without ssrc or rid", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.encodings = (0..5)
        .map(|i| RtpEncodingParameters {
            rid: Some(format!("r{i}")),
            ..Default::default()
        })
        .collect();
    cases.push(("5 encodings", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.encodings = vec![
        RtpEncodingParameters {
            rid: Some("r0".into()),
            ..Default::default()
        },
        RtpEncodingParameters {
            ssrc: Some(5),
            ..Default::default()
        },
    ];
    cases.push(("rid and ssrc mixed", Kind::Video, p, invalid));
    for rid in ["", "r 0", "r0;r1", "ridridridridridrid", "ü"] {
        let mut p = fresh(video.clone());
        p.encodings = vec![RtpEncodingParameters {
            rid: Some(rid.into()),
            ..Default::default()
        }];
        cases.push(("bad rid", Kind::Video, p, invalid));
    }
    for id in [0u8, 15, 255] {
        let mut p = fresh(video.clone());
        p.header_extensions[0].id = id;
        cases.push(("header extension id out of 1-14", Kind::Video, p, invalid));
    }
    let mut p = fresh(video.clone());
    p.header_extensions[0].uri = String::new();
    cases.push(("header extension without uri", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.mid = None;
    cases.push(("no mid", Kind::Video, p, invalid));
    for mid in ["", "a b", "0\r\na=x", &"m".repeat(33)] {
        let mut p = video.clone();
        p.mid = Some(mid.to_owned());
        cases.push(("bad mid", Kind::Video, p, invalid));
    }
    cases.push(("mid already used", Kind::Video, video.clone(), invalid));
    let mut p = fresh(video.clone());
    p.rtcp.cname = Some("x".repeat(300));
    cases.push(("cname too long", Kind::Video, p, invalid));
    let mut p = fresh(video.clone());
    p.rtcp.cname = Some("a\r\na=inject".into());
    cases.push(("cname with CRLF", Kind::Video, p, invalid));

    for (what, kind, params, expected) in cases {
        match w.core.produce(&send, kind, &params) {
            Ok(id) => panic!("{what}: accepted as {id}"),
            Err(e) => assert!(expected(&e), "{what}: unexpected error {e:?}"),
        }
    }
    assert_eq!(
        w.core.stats().producers,
        producers,
        "a failed produce left a producer"
    );

    // Wire-level nonsense never reaches the Core: serde refuses it.
    for bad in [
        json!({"codecs": [{"mimeType": "video/VP8", "payloadType": 300, "clockRate": 90000}]}),
        json!({"codecs": [{"mimeType": "video/VP8", "payloadType": -1, "clockRate": 90000}]}),
        json!({"codecs": "VP8"}),
        json!({"codecs": [], "encodings": [{"ssrc": "x"}]}),
    ] {
        assert!(serde_json::from_value::<RtpParameters>(bad).is_err());
    }

    // The session is untouched and the transport still accepts a valid producer.
    let vc = pair.video_consumer.clone().expect("video consumer");
    let before = w.subs[0].rtp_of(&vc).len();
    w.run(Duration::from_secs(1));
    let got = w.subs[0].rtp_of(&vc);
    assert!(got.len() > before + 80);
    assert_continuous(&got, "video after malformed produces");
    let again = w.produce(0, Kind::Audio, false);
    assert!(w.core.producer_kind(&again) == Some(Kind::Audio));
}

#[test]
fn malformed_dtls_parameters_are_errors() {
    let mut w = World::new();
    let fp = "AB:".repeat(31) + "AB";
    let cases = [
        ("empty", json!({})),
        ("no fingerprints", json!({"role": "client"})),
        (
            "fingerprints not a list",
            json!({"role": "client", "fingerprints": "x"}),
        ),
        ("empty list", json!({"role": "client", "fingerprints": []})),
        (
            "no value",
            json!({"role": "client", "fingerprints": [{"algorithm": "sha-256"}]}),
        ),
        (
            "no algorithm",
            json!({"role": "client", "fingerprints": [{"value": fp}]}),
        ),
        (
            "garbage value",
            json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "zz"}]}),
        ),
        (
            "value with spaces",
            json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "AB CD"}]}),
        ),
        (
            "huge value",
            json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "A".repeat(100_000)}]}),
        ),
        (
            "unknown algorithm",
            json!({"role": "client", "fingerprints": [{"algorithm": "md0", "value": fp}]}),
        ),
        (
            "bad role",
            json!({"role": "boss", "fingerprints": [{"algorithm": "sha-256", "value": fp}]}),
        ),
        (
            "role not a string",
            json!({"role": 1, "fingerprints": [{"algorithm": "sha-256", "value": fp}]}),
        ),
    ];
    for (what, dtls) in cases {
        let t = w
            .core
            .create_transport(ROUTER, sfu::Direction::Send, w.now)
            .expect("transport");
        match w.core.connect_transport(&t.id, &dtls) {
            Err(SfuError::Invalid(_)) => {}
            // Lenient (mediasoup refuses both): a non-string role means 'client'; an unknown algorithm is taken
            // and simply fails the DTLS handshake later.
            Ok(()) if what == "role not a string" || what == "unknown algorithm" => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(
        w.core.connect_transport(
            "tr_nope",
            &json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": fp}]})
        ),
        Err(SfuError::NotFound("transport"))
    );

    // A connected transport refuses a second connect, and keeps working.
    let mut pair = pair(true, false, false);
    let w = &mut pair.world;
    let id = w.pubs[0].transport.id.clone();
    assert_eq!(
        w.core.connect_transport(
            &id,
            &json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": fp}]})
        ),
        Err(SfuError::Invalid("transport already connected".into()))
    );
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let before = w.subs[0].rtp_of(&ac).len();
    w.run(Duration::from_millis(500));
    assert!(w.subs[0].rtp_of(&ac).len() > before + 20);
}
