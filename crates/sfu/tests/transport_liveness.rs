//! (l) A transport whose peer is gone is closed and reported, so nothing lingers with timers firing for a browser
//! that left without a word: consent lost (no STUN for the consent timeout) → `ice-timeout`; DTLS never up after
//! `connect` → `connect-timeout`. A live transport is never closed by either (the client's checks keep it alive).

mod common;

use common::*;
use sfu::{CoreEvent, Direction, Kind, Liveness};
use std::time::Duration;

const LIVENESS: Liveness = Liveness {
    consent_timeout: Duration::from_secs(5),
    connect_timeout: Duration::from_secs(4),
};

/// The transports closed since the last call (speaker reports are not what these tests look at).
fn events(w: &mut World) -> Vec<CoreEvent> {
    std::iter::from_fn(|| w.core.poll_event())
        .filter(|e| matches!(e, CoreEvent::TransportClosed { .. }))
        .collect()
}

#[test]
fn a_subscriber_that_vanishes_is_closed_after_the_consent_timeout_and_a_live_one_never() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    w.core.set_liveness(LIVENESS);
    let (s2, _) = w.subscriber_for(ROUTER, &[pair.audio.as_deref().expect("audio")]);
    // Three consent timeouts with everyone alive: nothing is closed.
    w.run(Duration::from_secs(15));
    assert_eq!(events(w), Vec::new(), "a live transport was closed");
    assert_eq!(w.core.stats().transports, 3);

    // The first subscriber's browser goes away without a word.
    let gone = w.subs[0].ep.addr;
    let transport = w.subs[0].transport.id.clone();
    w.disconnect_client(gone);
    let start = w.elapsed();
    let closed = w.run_until(Duration::from_secs(10), |w| w.core.stats().transports == 2);
    assert!(closed, "the vanished subscriber's transport is still open");
    let took = w.elapsed() - start;
    // Counted from its last consent check, which str0m's client sends every ~3 s.
    assert!(
        took + Duration::from_millis(3_500) >= LIVENESS.consent_timeout
            && took <= LIVENESS.consent_timeout + Duration::from_secs(2),
        "closed after {took:?}"
    );
    let mut consumers = vec![
        pair.audio_consumer.clone().expect("ac").id,
        pair.video_consumer.clone().expect("vc").id,
    ];
    consumers.sort();
    let mut ev = events(w);
    for e in &mut ev {
        let CoreEvent::TransportClosed { consumers: c, .. } = e else {
            continue;
        };
        c.sort();
    }
    assert_eq!(
        ev,
        vec![CoreEvent::TransportClosed {
            transport,
            router: ROUTER.to_owned(),
            direction: Direction::Recv,
            reason: "ice-timeout",
            producers: Vec::new(),
            consumers,
        }]
    );
    // Counted for /metrics as an ICE failure over UDP (its checks came over UDP).
    assert_eq!(w.core.take_ice_failures(), vec![("udp", "ice-timeout")]);
    assert!(w.core.take_ice_failures().is_empty());
    // The publisher and the other subscriber go on.
    let before = w.subs[s2].ep.rtp_count;
    w.run(Duration::from_secs(1));
    assert!(
        w.subs[s2].ep.rtp_count > before + 30,
        "the other subscriber still receives"
    );
}

#[test]
fn a_publisher_that_vanishes_takes_its_producers_and_their_consumers() {
    let mut pair = pair(true, false, false);
    let w = &mut pair.world;
    w.core.set_liveness(LIVENESS);
    w.run(Duration::from_secs(1));
    w.disconnect_client(w.pubs[0].ep.addr);
    assert!(w.run_until(Duration::from_secs(8), |w| w.core.stats().transports == 1));
    let ev = events(w);
    assert!(
        matches!(&ev[..], [CoreEvent::TransportClosed { reason: "ice-timeout", direction: Direction::Send, producers, consumers, .. }]
            if producers == &vec![pair.audio.clone().expect("audio")]
            && consumers == &vec![pair.audio_consumer.clone().expect("ac").id]),
        "{ev:?}"
    );
    assert_eq!(w.core.stats().producers, 0);
}

#[test]
fn dtls_that_never_comes_up_after_connect_is_a_connect_timeout() {
    let mut w = World::new();
    w.core.set_liveness(LIVENESS);
    let p = w.add_publisher(ROUTER);
    // The browser signals `connect` and `produce`, then its packets never arrive (UDP blocked).
    let addr = w.pubs[p].ep.addr;
    w.uplink = Some(Box::new(move |from, _, _| from != addr));
    w.produce(p, Kind::Audio, false);
    let transport = w.pubs[p].transport.id.clone();
    assert!(w.run_until(Duration::from_secs(8), |w| w.core.stats().transports == 0));
    assert!(w.elapsed() >= LIVENESS.connect_timeout);
    assert!(
        matches!(&events(&mut w)[..], [CoreEvent::TransportClosed { reason: "connect-timeout", transport: t, .. }] if *t == transport)
    );
    // No STUN ever reached the server: an ICE failure with no protocol (the network blocks every path).
    assert_eq!(
        w.core.take_ice_failures(),
        vec![("none", "connect-timeout")]
    );
}

#[test]
fn a_transport_nobody_connects_stays_open() {
    // mediasoup-client connects a recv transport only at its first consume: a lone participant's transport waits.
    let mut w = World::new();
    w.core.set_liveness(LIVENESS);
    w.add_subscriber(ROUTER);
    w.run(Duration::from_secs(12));
    assert_eq!(w.core.stats().transports, 1);
    assert_eq!(events(&mut w), Vec::new());
}
