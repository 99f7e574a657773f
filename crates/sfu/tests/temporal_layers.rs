//! VP8 temporal layers (Chrome's L1T3 in each simulcast encoding) through DTLS-SRTP on simulated time: a consumer
//! held at temporal layer 0 receives only TL0 pictures, with sequence numbers, PictureID and TL0PICIDX continuous
//! (no hole for the receiver to NACK, no missing picture for its reference finder to wait on); back at the top it
//! climbs at a safe picture and receives every temporal layer again. `consumer:layers-changed` names the real
//! temporal layer.

mod common;

use common::*;
use sfu::CoreEvent;
use std::time::Duration;

/// Payload layout of a `vp8_temporal` track (see `Track::vp8_temporal`).
fn tid(p: &str0m::rtp::RtpPacket) -> u8 {
    p.payload[13]
}

fn frame(p: &str0m::rtp::RtpPacket) -> u32 {
    u32::from_be_bytes([p.payload[9], p.payload[10], p.payload[11], p.payload[12]])
}

/// (spatial, temporal) reported for `consumer`, in order.
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

/// PictureID +1 and TL0PICIDX +1 per forwarded picture when only TL0 goes out; both the same within a picture.
fn assert_ids_continuous(pkts: &[&str0m::rtp::RtpPacket], tl0_each_picture: bool) {
    let mut prev: Option<(u32, u16, u8)> = None;
    for p in pkts {
        let d = sfu::vp8::Descriptor::parse(&p.payload).expect("descriptor");
        let pid = d.picture_id(&p.payload).expect("picture id");
        let tl0 = d.tl0_pic_idx(&p.payload).expect("tl0picidx");
        // A switch may land on the same frame number of another layer: a picture is (frame, layer).
        let f = frame(p) * 4 + u32::from(p.payload[7]);
        if let Some((pf, ppid, ptl0)) = prev {
            if f == pf {
                assert_eq!((pid, tl0), (ppid, ptl0), "one picture, one id");
            } else {
                assert_eq!(
                    pid,
                    (ppid + 1) % 0x8000,
                    "picture id after {ppid}, frame {f}"
                );
                if tl0_each_picture {
                    assert_eq!(tl0, ptl0.wrapping_add(1), "tl0picidx after {ptl0}");
                }
            }
        }
        prev = Some((f, pid, tl0));
    }
}

#[test]
fn a_consumer_at_temporal_layer_0_gets_only_tl0_without_holes() {
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let s = w.add_subscriber(ROUTER);
    let v = w.produce(p, sfu::Kind::Video, true);
    w.pubs[p].tracks[0].vp8_descriptor = true;
    w.pubs[p].tracks[0].vp8_temporal = true;
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.core
        .set_consumer_preferred_temporal_layer(&vc.id, 0)
        .expect("temporal 0");
    let frames_before = w.pubs[p].tracks[0].frames;
    w.resume(&vc.id);
    w.run(Duration::from_secs(2));

    let got = w.subs[s].rtp_of(&vc);
    assert!(got.len() > 30, "{} packets", got.len());
    assert!(got.iter().all(|p| tid(p) == 0), "only TL0: {:?}", {
        got.iter().map(|p| tid(p)).collect::<Vec<_>>()
    });
    // The publisher sent every temporal layer meanwhile: the consumer got about a quarter of its pictures.
    let frames: std::collections::BTreeSet<u32> = got.iter().map(|p| frame(p)).collect();
    let sent = w.pubs[p].tracks[0].frames - frames_before;
    assert!(
        (frames.len() as u64) * 4 <= sent + 4 && (frames.len() as u64) * 4 + 12 >= sent,
        "{} pictures of {sent}",
        frames.len()
    );
    assert_continuous(&got, "temporal layer 0");
    assert_ids_continuous(&got, true);
    let mark = got.len();
    let seen = reported(&mut w, &vc.id);
    assert_eq!(seen.last(), Some(&(2, 0)), "{seen:?}");

    // Back to every temporal layer: the climb happens at a TL0 picture, then TID 1 and 2 pictures flow again.
    w.core
        .set_consumer_preferred_temporal_layer(&vc.id, 2)
        .expect("temporal 2");
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&vc);
    let after = &got[mark..];
    let first_up = after
        .iter()
        .position(|p| tid(p) > 0)
        .expect("higher temporal layers again");
    assert!(
        after[..first_up].iter().any(|p| tid(p) == 0),
        "the climb follows a TL0 picture"
    );
    let tids: std::collections::BTreeSet<u8> = after[first_up..].iter().map(|p| tid(p)).collect();
    assert_eq!(tids.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_continuous(&got, "down and back up");
    assert_ids_continuous(&got, false);
    assert_eq!(reported(&mut w, &vc.id), vec![(2, 2)]);
}

/// Dropping temporal layers follows the spatial layer's switches too: at the lowest spatial layer and temporal
/// layer 1, TID 2 never goes out, across a spatial switch.
#[test]
fn temporal_filtering_holds_across_a_spatial_switch() {
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let s = w.add_subscriber(ROUTER);
    let v = w.produce(p, sfu::Kind::Video, true);
    w.pubs[p].tracks[0].vp8_descriptor = true;
    w.pubs[p].tracks[0].vp8_temporal = true;
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.core
        .set_consumer_preferred_temporal_layer(&vc.id, 1)
        .expect("temporal 1");
    w.resume(&vc.id);
    w.run(Duration::from_secs(1));
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("spatial 0");
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&vc);
    assert!(got.iter().all(|p| tid(p) <= 1));
    assert!(got.iter().any(|p| tid(p) == 1));
    assert_eq!(
        got.last().map(|p| p.payload[7]),
        Some(0),
        "on spatial layer 0"
    );
    assert_continuous(&got, "spatial switch at temporal 1");
    assert_ids_continuous(&got, false);
    let seen = reported(&mut w, &vc.id);
    assert_eq!(seen.last(), Some(&(0, 1)), "{seen:?}");
}
