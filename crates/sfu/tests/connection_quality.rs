//! Connection quality per transport from str0m's once-a-second stats, through real DTLS-SRTP on simulated time: a
//! clean link is excellent, packet loss on a publisher's uplink makes its transport poor, a subscriber whose
//! datagrams are all dropped becomes lost; each comes back when its link does.

mod common;

use common::*;
use sfu::quality::Quality;
use sfu::CoreEvent;
use std::collections::HashMap;
use std::time::Duration;

/// (elapsed ms, transport, quality) of every quality change since the last call.
fn changes(w: &mut World) -> Vec<(u128, String, Quality)> {
    let at = w.elapsed().as_millis();
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::ConnectionQuality {
                transport, quality, ..
            } => Some((at, transport, quality)),
            _ => None,
        })
        .collect()
}

fn run(w: &mut World, d: Duration) -> Vec<(u128, String, Quality)> {
    let mut out = Vec::new();
    let end = w.elapsed() + d;
    while w.elapsed() < end {
        w.run(Duration::from_millis(100));
        out.extend(changes(w));
    }
    out
}

fn last_of(ev: &[(u128, String, Quality)], transport: &str) -> Option<(u128, Quality)> {
    ev.iter()
        .filter(|x| x.1 == transport)
        .map(|x| (x.0, x.2))
        .next_back()
}

#[test]
fn loss_makes_a_link_poor_silence_makes_it_lost_and_both_come_back() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let publisher = w.pubs[0].transport.id.clone();
    let subscriber = w.subs[0].transport.id.clone();
    let pub_addr = w.pubs[0].ep.addr;
    let ev = run(w, Duration::from_secs(5));
    assert_eq!(
        last_of(&ev, &publisher).map(|x| x.1),
        Some(Quality::Excellent),
        "{ev:?}"
    );
    assert_eq!(
        last_of(&ev, &subscriber).map(|x| x.1),
        Some(Quality::Excellent),
        "{ev:?}"
    );
    assert_eq!(
        w.core.transport_quality(&publisher),
        Some(Quality::Excellent)
    );

    // One datagram in five from the publisher is lost (20 %): its transport goes poor within a few seconds.
    let mut n = 0u64;
    w.uplink = Some(Box::new(move |from, _, _| {
        if from != pub_addr {
            return true;
        }
        n += 1;
        !n.is_multiple_of(5)
    }));
    let t0 = w.elapsed().as_millis();
    let ev = run(w, Duration::from_secs(6));
    let (at, q) = last_of(&ev, &publisher).expect("a change");
    assert_eq!(q, Quality::Poor, "{ev:?}");
    assert!(at - t0 <= 4_000, "poor after {} ms: {ev:?}", at - t0);
    // The subscriber's own link is clean, but the gaps of what it is forwarded show in its receiver reports (the
    // loss is not split into upstream and downstream): it may drop a class, never to poor.
    assert!(
        last_of(&ev, &subscriber).is_none_or(|x| x.1 < Quality::Poor),
        "{ev:?}"
    );

    w.uplink = None;
    let t0 = w.elapsed().as_millis();
    // Up one class per four clean windows at most, and receiver reports carry the old loss for a few seconds
    // (str0m reports the last one): poor → good → excellent in about 13 s here.
    let ev = run(w, Duration::from_secs(18));
    let (at, q) = last_of(&ev, &publisher).expect("recovered");
    assert_eq!(q, Quality::Excellent, "{ev:?}");
    assert!(at - t0 <= 16_000, "excellent again after {} ms", at - t0);

    // Everything to and from the subscriber dropped for 10 s: lost, then excellent again once it is lifted.
    let until = w.now + Duration::from_secs(10);
    assert!(w.core.debug_drop_transport(&subscriber, until));
    let t0 = w.elapsed().as_millis();
    let ev = run(w, Duration::from_secs(10));
    let seen: HashMap<&str, Vec<Quality>> = ev.iter().fold(HashMap::new(), |mut m, x| {
        m.entry(x.1.as_str()).or_default().push(x.2);
        m
    });
    assert_eq!(
        seen.get(subscriber.as_str()),
        Some(&vec![Quality::Lost]),
        "{ev:?}"
    );
    let lost_at = last_of(&ev, &subscriber).expect("lost").0 - t0;
    assert!(
        (5_000..=8_000).contains(&lost_at),
        "lost after {lost_at} ms"
    );
    let ev = run(w, Duration::from_secs(15));
    assert_eq!(
        last_of(&ev, &subscriber).map(|x| x.1),
        Some(Quality::Excellent),
        "{ev:?}"
    );
}
