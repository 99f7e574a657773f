//! A recv transport's bandwidth estimate bounds the simulcast layer its consumers get (`allocator.rs` wired into
//! forwarding), on simulated time through real DTLS-SRTP. The estimate is set by the test hook, as str0m's
//! estimator would (its BWE is not enabled on recv transports yet): down at the next share-out, up only after the
//! hold, never above the client's `quality:change` cap, nothing limited without an estimate.

mod common;

use common::*;
use sfu::allocator::UP_HOLD;
use sfu::CoreEvent;
use std::time::Duration;

/// (elapsed ms, spatial layer) of the consumer's layer changes since the last call.
fn changes(w: &mut World, consumer: &str) -> Vec<(u128, usize)> {
    let at = w.elapsed().as_millis();
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::ConsumerLayersChanged {
                consumer: c,
                spatial_layer,
                ..
            } if c == consumer => Some((at, spatial_layer)),
            _ => None,
        })
        .collect()
}

fn run(w: &mut World, d: Duration, consumer: &str) -> Vec<(u128, usize)> {
    let mut out = Vec::new();
    let end = w.elapsed() + d;
    while w.elapsed() < end {
        w.run(Duration::from_millis(20));
        out.extend(changes(w, consumer));
    }
    out
}

#[test]
fn the_estimate_bounds_the_layer_down_at_once_up_after_the_hold() {
    let mut pair = pair(false, true, true);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    let sub = w.subs[0].transport.id.clone();
    // Layer rates of the fake publisher: ~16 kbps, ~66 kbps, ~900 kbps.
    let seen = run(w, Duration::from_secs(2), &vc.id);
    assert_eq!(
        seen.last().map(|x| x.1),
        Some(2),
        "no estimate, no limit: {seen:?}"
    );

    // 200 kbps: the middle layer, at the next share-out (≤ 500 ms) plus a keyframe.
    assert!(w.core.debug_set_estimate(&sub, Some(200_000)));
    let t0 = w.elapsed().as_millis();
    let seen = run(w, Duration::from_secs(2), &vc.id);
    assert_eq!(
        seen.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1],
        "{seen:?}"
    );
    assert!(seen[0].0 - t0 <= 700, "down after {} ms", seen[0].0 - t0);
    // 40 kbps: the lowest.
    w.core.debug_set_estimate(&sub, Some(40_000));
    let seen = run(w, Duration::from_secs(2), &vc.id);
    assert_eq!(
        seen.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![0],
        "{seen:?}"
    );

    // 5 Mbps: to the top (possibly through the middle layer's keyframe on the way), but only after the hold.
    w.core.debug_set_estimate(&sub, Some(5_000_000));
    let t0 = w.elapsed().as_millis();
    let seen = run(w, Duration::from_secs(4), &vc.id);
    assert_eq!(seen.last().map(|x| x.1), Some(2), "{seen:?}");
    let after = seen[0].0 - t0;
    assert!(
        after >= UP_HOLD.as_millis() && after <= UP_HOLD.as_millis() + 1_200,
        "up after {after} ms"
    );

    // The client's cap holds whatever the estimate.
    w.core
        .set_consumer_preferred_layer(&vc.id, 1, w.now)
        .expect("preferred layer");
    let seen = run(w, Duration::from_secs(4), &vc.id);
    assert_eq!(
        seen.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1],
        "{seen:?}"
    );

    // A steady estimate just over the middle layer: no oscillation for 10 s.
    w.core
        .set_consumer_preferred_layer(&vc.id, 2, w.now)
        .expect("preferred layer");
    w.core.debug_set_estimate(&sub, Some(100_000));
    let seen = run(w, Duration::from_secs(10), &vc.id);
    assert!(seen.is_empty(), "{seen:?}");

    // No estimate: no limit.
    w.core.debug_set_estimate(&sub, None);
    let seen = run(w, Duration::from_secs(2), &vc.id);
    assert_eq!(
        seen.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![2],
        "{seen:?}"
    );
}

/// (elapsed ms, (spatial, temporal)) of the consumer's layer changes since the last call.
fn both(w: &mut World, consumer: &str) -> Vec<(u128, (usize, usize))> {
    let at = w.elapsed().as_millis();
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::ConsumerLayersChanged {
                consumer: c,
                spatial_layer,
                temporal_layer,
                ..
            } if c == consumer => Some((at, (spatial_layer, temporal_layer))),
            _ => None,
        })
        .collect()
}

fn run_both(w: &mut World, d: Duration, consumer: &str) -> Vec<(u128, (usize, usize))> {
    let mut out = Vec::new();
    let end = w.elapsed() + d;
    while w.elapsed() < end {
        w.run(Duration::from_millis(20));
        out.extend(both(w, consumer));
    }
    out
}

/// Issue 11 item 2: an estimate below even the lowest spatial layer drops temporal layers of that layer (TL0 alone
/// costs about a quarter of it in the L1T3 pattern), and the consumer climbs back to the top once the estimate
/// returns, after the hold. Sequence numbers stay continuous throughout.
#[test]
fn an_estimate_below_the_lowest_layer_drops_temporal_layers_and_climbs_back() {
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let s = w.add_subscriber(ROUTER);
    let v = w.produce(p, sfu::Kind::Video, true);
    w.pubs[p].tracks[0].vp8_descriptor = true;
    w.pubs[p].tracks[0].vp8_temporal = true;
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected));
    let vc = w.consume_with(s, &v, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&vc.id);
    let sub = w.subs[s].transport.id.clone();
    let seen = run_both(&mut w, Duration::from_secs(2), &vc.id);
    assert_eq!(seen.last().map(|x| x.1), Some((2, 2)), "{seen:?}");

    // The lowest layer costs ~19 kbps (TL0 ~5, TL0+TL1 ~10): at 7 kbps only its TL0 fits.
    assert!(w.core.debug_set_estimate(&sub, Some(7_000)));
    let t0 = w.elapsed().as_millis();
    let seen = run_both(&mut w, Duration::from_secs(3), &vc.id);
    assert_eq!(seen.last().map(|x| x.1), Some((0, 0)), "{seen:?}");
    assert!(seen[0].0 - t0 <= 700, "down after {} ms", seen[0].0 - t0);
    let mark = w.subs[s].rtp_of(&vc).len();
    let seen = run_both(&mut w, Duration::from_secs(2), &vc.id);
    assert!(seen.is_empty(), "steady: {seen:?}");
    let got = w.subs[s].rtp_of(&vc);
    assert!(got.len() > mark + 10);
    assert!(
        got[mark..]
            .iter()
            .all(|p| p.payload[7] == 0 && p.payload[13] == 0),
        "layer 0, TL0 only"
    );

    // 14 kbps: TL0 + TL1 of the lowest layer, after the hold.
    w.core.debug_set_estimate(&sub, Some(14_000));
    let seen = run_both(&mut w, Duration::from_secs(4), &vc.id);
    assert_eq!(
        seen.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![(0, 1)],
        "{seen:?}"
    );

    // Plenty: back to the top.
    w.core.debug_set_estimate(&sub, Some(5_000_000));
    let t0 = w.elapsed().as_millis();
    let seen = run_both(&mut w, Duration::from_secs(4), &vc.id);
    assert_eq!(seen.last().map(|x| x.1), Some((2, 2)), "{seen:?}");
    assert!(seen[0].0 - t0 >= UP_HOLD.as_millis(), "{seen:?}");
    let got = w.subs[s].rtp_of(&vc);
    assert_continuous(&got, "temporal drops and climbs");
}

/// The spatial layer each consumer was last reported at (None: nothing reported yet).
fn layers_now(w: &mut World, consumers: &[&str], last: &mut [Option<usize>]) {
    for e in std::iter::from_fn(|| w.core.poll_event()) {
        if let CoreEvent::ConsumerLayersChanged {
            consumer,
            spatial_layer,
            ..
        } = e
        {
            if let Some(i) = consumers.iter().position(|c| *c == consumer) {
                last[i] = Some(spatial_layer);
            }
        }
    }
}

/// Issue 11 item 1: one subscriber with three simulcast consumers (a screen share, the spotlighted camera, another
/// camera) under a limited estimate. Everyone gets its lowest layer; what is left goes to the screen share first,
/// then to the spotlighted camera. When the spotlight moves, the layers follow: the old one down at once, the new
/// one up after the hold.
#[test]
fn a_limited_estimate_goes_to_the_screen_share_then_the_spotlight() {
    let mut w = World::new();
    let pubs: Vec<usize> = (0..3).map(|_| w.add_publisher(ROUTER)).collect();
    let producers: Vec<String> = pubs
        .iter()
        .map(|&p| w.produce(p, sfu::Kind::Video, true))
        .collect();
    assert!(w.run_until(Duration::from_secs(3), |w| w
        .pubs
        .iter()
        .all(|p| p.ep.connected)));
    let refs: Vec<&str> = producers.iter().map(String::as_str).collect();
    let (s, infos) = w.subscriber_for(ROUTER, &refs);
    let sub = w.subs[s].transport.id.clone();
    let ids: Vec<String> = infos.iter().map(|c| c.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    // 0: a camera, 1: the spotlighted camera, 2: the screen share.
    use sfu::allocator::Priority;
    w.core
        .set_producer_priority(&producers[2], Priority::Screen)
        .expect("priority");
    w.core
        .set_producer_priority(&producers[1], Priority::Large)
        .expect("priority");
    assert_eq!(
        w.core.producer_priority(&producers[0]),
        Some(Priority::Normal)
    );
    assert!(w
        .core
        .set_producer_priority("pr_nobody", Priority::Large)
        .is_err());
    let mut last = [None; 3];
    let step = |w: &mut World, secs: u64, last: &mut [Option<usize>; 3]| {
        let end = w.elapsed() + Duration::from_secs(secs);
        while w.elapsed() < end {
            w.run(Duration::from_millis(20));
            layers_now(w, &ids, last);
        }
    };
    step(&mut w, 2, &mut last);
    assert_eq!(last, [Some(2); 3], "no estimate, no limit");

    // Layers cost ~19, ~70 and ~1,000 kbps each. 2.8 Mbps: three lowest layers, the screen share's top, the
    // spotlighted camera's top; the other camera's middle layer (its top would need ~3.1 Mbps).
    assert!(w.core.debug_set_estimate(&sub, Some(2_800_000)));
    step(&mut w, 2, &mut last);
    assert_eq!(last, [Some(1), Some(2), Some(2)], "2.8 Mbps");

    // The spotlight moves to camera 0: camera 1 down at once, camera 0 up after the hold; the screen share stays.
    w.core
        .set_producer_priority(&producers[1], Priority::Normal)
        .expect("priority");
    w.core
        .set_producer_priority(&producers[0], Priority::Large)
        .expect("priority");
    step(&mut w, 1, &mut last);
    assert_eq!(last, [Some(1), Some(1), Some(2)], "moved, before the hold");
    step(&mut w, 3, &mut last);
    assert_eq!(last, [Some(2), Some(1), Some(2)], "moved, after the hold");

    // 1.6 Mbps: the screen share keeps its top layer; both cameras on the middle one.
    w.core.debug_set_estimate(&sub, Some(1_600_000));
    step(&mut w, 2, &mut last);
    assert_eq!(last, [Some(1), Some(1), Some(2)], "1.6 Mbps");

    // The screen share stops being one (its priority back to Normal) and the estimate falls to 135 kbps: the three
    // lowest layers (~58 kbps) and the spotlighted camera's middle layer (+~52 kbps) fit, nothing more.
    w.core
        .set_producer_priority(&producers[2], Priority::Normal)
        .expect("priority");
    w.core.debug_set_estimate(&sub, Some(135_000));
    step(&mut w, 2, &mut last);
    assert_eq!(last, [Some(1), Some(0), Some(0)], "135 kbps");
}
