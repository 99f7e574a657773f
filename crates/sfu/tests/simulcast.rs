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
