//! VP9 SVC (k-SVC `L3T3_KEY`, one SSRC, as mediasoup-client asks Chromium for) through DTLS-SRTP on simulated time:
//! the consumer is `svc` with the producer's scalability mode; at spatial layer 0 it receives only SID 0 frames,
//! each ending with the marker bit; climbing waits for a keyframe (asked for with PLI); between keyframes only the
//! current spatial layer goes out (k-SVC); temporal layers drop as for VP8; sequence numbers stay continuous.

mod common;

use common::*;
use sfu::CoreEvent;
use std::time::Duration;

/// Payload layout of a `vp9_svc` track (see `Track::vp9_svc`).
fn sid(p: &str0m::rtp::RtpPacket) -> u8 {
    p.payload[5]
}
fn tid(p: &str0m::rtp::RtpPacket) -> u8 {
    p.payload[6]
}
fn frame(p: &str0m::rtp::RtpPacket) -> u32 {
    u32::from_be_bytes([p.payload[8], p.payload[9], p.payload[10], p.payload[11]])
}
fn keyframe_start(p: &str0m::rtp::RtpPacket) -> bool {
    sfu::layers::Vp9Descriptor::parse(&p.payload).is_some_and(|d| d.layers().keyframe_start())
}

/// The marker is set exactly on the last packet forwarded of each picture.
fn assert_markers(pkts: &[&str0m::rtp::RtpPacket]) {
    for (i, p) in pkts.iter().enumerate() {
        let last_of_picture = pkts.get(i + 1).is_none_or(|n| frame(n) != frame(p));
        if i + 1 < pkts.len() {
            assert_eq!(
                p.header.marker,
                last_of_picture,
                "marker of seq {} (frame {}, sid {})",
                *p.seq_no,
                frame(p),
                sid(p)
            );
        }
    }
}

/// A VP9 publisher producing `L3T3_KEY` (a `vp9_svc` track) and a subscriber, not yet connected.
fn vp9_world() -> (World, usize, usize, String) {
    vp9_world_with("L3T3_KEY")
}

fn vp9_world_with(mode: &'static str) -> (World, usize, usize, String) {
    let mut w = World::new();
    let p = w.add_publisher_vp9(ROUTER);
    let s = w.add_subscriber(ROUTER);
    w.pubs[p].edit_rtp_parameters = Some(Box::new(move |rtp| {
        rtp["encodings"][0]["scalabilityMode"] = serde_json::json!(mode);
    }));
    let v = w.produce(p, sfu::Kind::Video, false);
    w.pubs[p].tracks[0].vp9_svc = true;
    (w, p, s, v)
}

fn reported(w: &mut World, consumer: &str) -> Vec<(usize, usize)> {
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::ConsumerLayersChanged {
                consumer: c,
                spatial_layer,
                temporal_layer,
                ..
            } if c == consumer => Some((spatial_layer, temporal_layer)),
            _ => None,
        })
        .collect()
}

#[test]
fn vp9_svc_spatial_and_temporal_layers_follow_the_consumer() {
    let (mut w, p, s, v) = vp9_world();
    assert_eq!(
        w.pubs[p].tracks[0].rtp_parameters.codecs[0].mime_type,
        "video/VP9"
    );
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert_eq!(vc.consumer_type, "svc");
    assert_eq!(
        vc.rtp_parameters.encodings[0].scalability_mode.as_deref(),
        Some("L3T3_KEY")
    );
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&vc.id);
    w.run(Duration::from_secs(1));

    // Top layer: a keyframe picture with SID 0, 1, 2, then delta pictures with SID 2 only.
    let got = w.subs[s].rtp_of(&vc);
    assert!(got.len() > 30, "{} packets", got.len());
    assert!(keyframe_start(got[0]), "starts on a keyframe picture");
    let first_delta = got
        .iter()
        .position(|p| frame(p) != frame(got[0]))
        .expect("more than one picture");
    let key_sids: Vec<u8> = got[..first_delta].iter().map(|p| sid(p)).collect();
    assert!(key_sids.contains(&0) && key_sids.contains(&1) && key_sids.contains(&2));
    assert!(got[first_delta..]
        .iter()
        .all(|p| sid(p) == 2 || keyframe_start(p) || {
            // Later keyframe pictures carry every layer again.
            sfu::layers::Vp9Descriptor::parse(&p.payload).is_some_and(|d| !d.inter)
        }));
    assert_continuous(&got, "top layer");
    assert_markers(&got);
    let n = got.len();
    assert_eq!(reported(&mut w, &vc.id).last(), Some(&(2, 2)));

    // `low`: spatial layer 0 — at once in k-SVC only on a keyframe, which the core asks for.
    let pli_before = w.pubs[p].ep.keyframe_requests.len();
    let mark = n;
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("spatial 0");
    w.run(Duration::from_secs(1));
    assert!(
        w.pubs[p].ep.keyframe_requests.len() > pli_before,
        "PLI asked"
    );
    let got = w.subs[s].rtp_of(&vc);
    let after = &got[mark..];
    let switch = after
        .iter()
        .position(|p| sid(p) == 0)
        .expect("never reached spatial 0");
    assert!(keyframe_start(after[switch]), "down on a keyframe (k-SVC)");
    let low = &after[switch..];
    assert!(low.len() > 20);
    assert!(low.iter().all(|p| sid(p) == 0), "only SID 0 at spatial 0");
    let pictures: std::collections::BTreeSet<u32> = low.iter().map(|p| frame(p)).collect();
    assert_eq!(
        low.iter().filter(|p| p.header.marker).count(),
        pictures.len(),
        "each SID 0 frame ends its picture with the marker"
    );
    assert_continuous(&got, "down to spatial 0");
    assert_markers(&got);
    let n = got.len();
    assert_eq!(reported(&mut w, &vc.id).last(), Some(&(0, 2)));

    // Temporal layer 0 as well: TL0 pictures of SID 0 only.
    w.core
        .set_consumer_preferred_temporal_layer(&vc.id, 0)
        .expect("temporal 0");
    let mark = n;
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&vc);
    let low = &got[mark + 1..];
    assert!(low.len() > 5);
    assert!(low.iter().all(|p| sid(p) == 0 && tid(p) == 0), "{:?}", {
        low.iter().map(|p| (sid(p), tid(p))).collect::<Vec<_>>()
    });
    assert_continuous(&got, "temporal 0");
    let n = got.len();
    assert_eq!(reported(&mut w, &vc.id).last(), Some(&(0, 0)));

    // Back up to the top: on the next keyframe, every temporal layer again.
    w.core
        .set_consumer_preferred_temporal_layer(&vc.id, 2)
        .expect("temporal 2");
    w.core
        .set_consumer_preferred_layer(&vc.id, 2, w.now)
        .expect("spatial 2");
    let mark = n;
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&vc);
    let after = &got[mark..];
    let up = after
        .iter()
        .position(|p| sid(p) == 2)
        .expect("back on spatial 2");
    assert!(
        after[..up]
            .iter()
            .rev()
            .take_while(|p| frame(p) == frame(after[up]))
            .count()
            > 0
            && after[..up].iter().any(|p| keyframe_start(p)),
        "the climb is a keyframe picture"
    );
    let tids: std::collections::BTreeSet<u8> = after[up..].iter().map(|p| tid(p)).collect();
    assert_eq!(tids.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_continuous(&got, "back up");
    assert_markers(&got);
    assert_eq!(reported(&mut w, &vc.id).last(), Some(&(2, 2)));
}

/// Chromium's VP9 SVC encoder sends only its lowest layer until its bandwidth estimate grows, and drops upper layers
/// under pressure. A k-SVC consumer on a layer that is not sent would get nothing between keyframes: it falls to
/// the highest layer that flows (on a keyframe it asks for), and climbs back when the top layer returns.
#[test]
fn a_vp9_spatial_layer_that_goes_quiet_is_left() {
    let (mut w, p, s, v) = vp9_world();
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&vc.id);
    w.run(Duration::from_secs(1));
    let n = w.subs[s].rtp_of(&vc).len();
    assert_eq!(w.subs[s].rtp_of(&vc).last().map(|p| sid(p)), Some(2));

    w.pubs[p].tracks[0].svc_layers_sent = 2;
    w.run(Duration::from_secs(2));
    let got = w.subs[s].rtp_of(&vc);
    let after = &got[n..];
    let fell = after
        .iter()
        .position(|p| sid(p) == 1)
        .expect("never fell to spatial layer 1");
    assert!(
        keyframe_start(after[fell - 1]) || sid(after[fell - 1]) == 0,
        "on a keyframe picture"
    );
    let freeze = after[fell]
        .timestamp
        .saturating_duration_since(got[n - 1].timestamp);
    assert!(
        freeze <= sfu::core::LAYER_QUIET + Duration::from_millis(200),
        "froze {freeze:?} before falling back"
    );
    assert!(after[fell..].len() > 40, "video flows on layer 1");
    assert!(after[fell..].iter().all(|p| sid(p) <= 1));
    assert_continuous(&got, "falling back");
    assert_markers(&got);

    w.pubs[p].tracks[0].svc_layers_sent = 3;
    let n = got.len();
    w.run(Duration::from_secs(2));
    let got = w.subs[s].rtp_of(&vc);
    assert_eq!(got.last().map(|p| sid(p)), Some(2), "back on the top layer");
    assert!(got[n..].iter().any(|p| keyframe_start(p)));
    assert_continuous(&got, "back up");
    assert_markers(&got);
    assert!(!got.is_empty());
}

/// Full SVC (`L3T3`): every spatial layer up to the current one goes out in every picture, and going down needs no
/// keyframe — the next picture already stops at the target layer, its frame carrying the marker.
#[test]
fn full_svc_forwards_every_layer_up_to_the_target_and_goes_down_at_once() {
    let (mut w, p, s, v) = vp9_world_with("L3T3");
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert_eq!(vc.consumer_type, "svc");
    assert_eq!(
        vc.rtp_parameters.encodings[0].scalability_mode.as_deref(),
        Some("L3T3")
    );
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&vc.id);
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&vc);
    let last = frame(got.last().expect("packets"));
    let sids: std::collections::BTreeSet<u8> = got
        .iter()
        .filter(|p| frame(p) + 1 == last)
        .map(|p| sid(p))
        .collect();
    assert_eq!(
        sids.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "a delta picture carries every layer"
    );
    assert_markers(&got);
    let n = got.len();

    let pli_before = w.pubs[p].ep.keyframe_requests.len();
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("spatial 0");
    w.run(Duration::from_millis(200));
    let got = w.subs[s].rtp_of(&vc);
    let after = &got[n..];
    // The pictures after the last upper-layer packet: SID 0 alone, from a delta picture on.
    let low = &after[after.iter().rposition(|p| sid(p) != 0).map_or(0, |i| i + 1)..];
    assert!(low.len() >= 4, "{} packets at spatial 0", low.len());
    assert!(!keyframe_start(low[0]), "down without a keyframe");
    assert!(
        low.iter().all(|p| p.header.marker),
        "each SID 0 frame ends its picture"
    );
    assert_eq!(
        w.pubs[p].ep.keyframe_requests.len(),
        pli_before,
        "no keyframe asked"
    );
    assert_continuous(&got, "full SVC down");
    assert_markers(&got);
}
