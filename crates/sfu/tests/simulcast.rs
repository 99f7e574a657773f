//! Simulcast (rids r0/r1/r2 from str0m's simulcast API, empty CNAME as mediasoup-client sends it): the consumer
//! is `simulcast`, starts on the highest layer, follows `set_consumer_preferred_layer` down and up, switching
//! only on a keyframe of the new layer, with sequence numbers and frame timestamps continuous across switches.

mod common;

use common::*;
use std::time::Duration;

/// Layer of a forwarded packet: byte 2 of the fake payload.
fn layer(p: &str0m::rtp::RtpPacket) -> u8 {
    p.payload[2]
}

#[test]
fn simulcast_layers_follow_the_preferred_layer() {
    let mut pair = pair(false, true, true);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    assert_eq!(vc.consumer_type, "simulcast");
    assert_eq!(vc.rtp_parameters.encodings.len(), 1);
    assert_eq!(
        vc.rtp_parameters.encodings[0].scalability_mode.as_deref(),
        Some("L3T3")
    );
    let rtp = &w.pubs[0].tracks[0].rtp_parameters;
    assert_eq!(rtp.encodings.len(), 3);
    assert!(rtp
        .encodings
        .iter()
        .all(|e| e.ssrc.is_none() && e.rid.is_some()));
    assert_eq!(rtp.rtcp.cname.as_deref(), Some(""));
    // The consumer gets the transport's random CNAME, not the empty one.
    assert!(!vc
        .rtp_parameters
        .rtcp
        .cname
        .clone()
        .unwrap_or_default()
        .is_empty());

    w.run(Duration::from_secs(1));
    let got = w.subs[0].rtp_of(&vc);
    assert!(got.len() > 50);
    // Fast start: the first keyframe of any layer up to the target, then up to the target on its keyframe.
    let layers: Vec<u8> = got.iter().map(|p| layer(p)).collect();
    assert!(is_vp8_keyframe(&got[0].payload));
    assert!(
        layers.windows(2).all(|l| l[0] <= l[1]),
        "only climbs: {layers:?}"
    );
    assert_eq!(layers.last(), Some(&2), "reaches the top layer: {layers:?}");
    assert_continuous(&got, "start");

    for target in [0u8, 1, 2, 0] {
        let mark = w.subs[0].rtp_of(&vc).len();
        w.core
            .set_consumer_preferred_layer(&vc.id, usize::from(target), w.now)
            .expect("preferred layer");
        w.run(Duration::from_secs(1));
        let got = w.subs[0].rtp_of(&vc);
        let after = &got[mark..];
        let switch = after
            .iter()
            .position(|p| layer(p) == target)
            .unwrap_or_else(|| panic!("never switched to layer {target}"));
        assert!(
            is_vp8_keyframe(&after[switch].payload),
            "switch to {target} on a keyframe"
        );
        assert!(
            after[switch..].iter().all(|p| layer(p) == target),
            "stays on {target}"
        );
        assert!(after[switch..].len() > 20);
        assert_continuous(&got, "across layer switches");
        // The new layer's frame is stamped one frame after the last forwarded one. (The publisher's pacer
        // interleaves the layers, so the old layer's last frame can be cut short; the Core continues at last+1
        // then, where mediasoup leaves a one-number gap.)
        let (prev, first) = (&got[mark + switch - 1], &got[mark + switch]);
        assert_eq!(
            first.header.timestamp.wrapping_sub(prev.header.timestamp),
            3000
        );
    }

    // Out-of-range layers are clamped.
    w.core
        .set_consumer_preferred_layer(&vc.id, 9, w.now)
        .expect("clamped");
    let mark = w.subs[0].rtp_of(&vc).len();
    w.run(Duration::from_secs(1));
    assert!(w.subs[0].rtp_of(&vc)[mark..].iter().any(|p| layer(p) == 2));
}

/// A browser stops sending its top layer (CPU or bandwidth): a consumer on it moves down to a layer that still
/// flows, on that layer's keyframe, and goes back up once the top layer returns.
#[test]
fn a_layer_that_goes_quiet_is_left() {
    let mut pair = pair(false, true, true);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_secs(1));
    assert_eq!(w.subs[0].rtp_of(&vc).last().map(|p| layer(p)), Some(2));

    w.pubs[0].tracks[0].layer_active[2] = false;
    let mark = w.subs[0].rtp_of(&vc).len();
    w.run(Duration::from_secs(3));
    let got = w.subs[0].rtp_of(&vc);
    let after = &got[mark..];
    let switch = after
        .iter()
        .position(|p| layer(p) != 2)
        .expect("never left the quiet layer");
    assert!(is_vp8_keyframe(&after[switch].payload));
    // The picture freezes from the last top-layer packet to the first lower-layer keyframe: the quiet threshold
    // plus a keyframe round trip, well under a second (a CI run once froze for 2.5 s with a 1 s threshold).
    let freeze = after[switch]
        .timestamp
        .saturating_duration_since(got[mark - 1].timestamp);
    assert!(
        freeze <= sfu::core::LAYER_QUIET + Duration::from_millis(200),
        "froze {freeze:?} before falling back"
    );
    assert_eq!(
        after.last().map(|p| layer(p)),
        Some(1),
        "lands on the next layer down"
    );
    assert!(after[switch..].len() > 50, "video flows on the lower layer");
    assert_continuous(&got, "across the fallback");

    w.pubs[0].tracks[0].layer_active[2] = true;
    let mark = got.len();
    w.run(Duration::from_secs(2));
    let got = w.subs[0].rtp_of(&vc);
    assert_eq!(
        got.last().map(|p| layer(p)),
        Some(2),
        "back on the top layer"
    );
    assert!(got[mark..]
        .iter()
        .any(|p| layer(p) == 2 && is_vp8_keyframe(&p.payload)));
    assert_continuous(&got, "back up");
}

/// DESIGN §3 (mediasoup's SimulcastConsumer): across layer switches — fast start, climb, a preferred-layer drop, a
/// quiet-layer fallback — the consumer's VP8 PictureID advances by exactly one per frame and TL0PICIDX with it,
/// although every layer numbers its frames from elsewhere (backwards, forwards, across the 15-bit wrap).
#[test]
fn vp8_picture_id_and_tl0picidx_stay_continuous_across_switches() {
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let s = w.add_subscriber(ROUTER);
    let v = w.produce(p, sfu::Kind::Video, true);
    w.pubs[p].tracks[0].vp8_descriptor = true;
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&vc.id);
    w.run(Duration::from_secs(1));
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("prefer low");
    w.run(Duration::from_secs(1));
    w.core
        .set_consumer_preferred_layer(&vc.id, 2, w.now)
        .expect("prefer high");
    w.run(Duration::from_secs(1));
    w.pubs[p].tracks[0].layer_active[2] = false;
    w.run(Duration::from_secs(2));

    let got = w.subs[s].rtp_of(&vc);
    let layers: Vec<u8> = got.iter().map(|p| p.payload[6]).collect();
    let mut switches = layers.windows(2).filter(|x| x[0] != x[1]).count();
    switches += 1; // the start
    assert!(switches >= 4, "layers seen: {:?}", {
        let mut l = layers.clone();
        l.dedup();
        l
    });
    let mut prev: Option<(u32, u16, u8)> = None; // (frame key, pid, tl0)
    for p in &got {
        let d = sfu::vp8::Descriptor::parse(&p.payload).expect("descriptor");
        let pid = d.picture_id(&p.payload).expect("picture id");
        let tl0 = d.tl0_pic_idx(&p.payload).expect("tl0picidx");
        assert_eq!(p.payload[2] & 0x80, 0x80, "15-bit form kept");
        let frame = u32::from_be_bytes([p.payload[8], p.payload[9], p.payload[10], p.payload[11]]);
        let key = frame * 4 + u32::from(p.payload[6]);
        if let Some((pkey, ppid, ptl0)) = prev {
            if key == pkey {
                assert_eq!((pid, tl0), (ppid, ptl0), "one frame, one picture id");
            } else {
                assert_eq!(
                    pid,
                    (ppid + 1) % 0x8000,
                    "picture id after {ppid} (seq {})",
                    *p.seq_no
                );
                assert_eq!(tl0, ptl0.wrapping_add(1), "tl0picidx after {ptl0}");
            }
        }
        prev = Some((key, pid, tl0));
    }
    assert_continuous(&got, "vp8 rewrite");
}
