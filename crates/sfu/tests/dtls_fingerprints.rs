//! (k) Every DTLS fingerprint algorithm mediasoup accepts works: a client that signals only a sha-1, sha-224,
//! sha-384 or sha-512 fingerprint (pymediasoup on aiortc sends only sha-512) gets media both ways, checked against
//! its real certificate; a fingerprint that does not match the certificate fails the transport, which is closed
//! and reported (`CoreEvent::TransportClosed` with reason `dtls-failed`) instead of being acked and left silent.

mod common;

use common::*;
use sfu::{CoreEvent, Direction, Kind};
use std::time::Duration;

fn media_flows_with(algorithm: &str) {
    signal_fingerprint(algorithm, false);
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_secs(1));
    assert!(
        w.subs[0].rtp_of(&ac).len() > 30,
        "{algorithm}: audio reaches the subscriber"
    );
    assert!(
        w.subs[0].rtp_of(&vc).len() > 30,
        "{algorithm}: video reaches the subscriber"
    );
    assert_eq!(
        std::iter::from_fn(|| w.core.poll_event())
            .find(|e| matches!(e, CoreEvent::TransportClosed { .. })),
        None,
        "{algorithm}: no transport failed"
    );
    assert_eq!(w.core.stats().transports, 2);
}

#[test]
fn a_client_signalling_only_sha_512_gets_media() {
    media_flows_with("sha-512");
}

#[test]
fn a_client_signalling_only_sha_384_gets_media() {
    media_flows_with("sha-384");
}

#[test]
fn a_client_signalling_only_sha_224_gets_media() {
    media_flows_with("sha-224");
}

#[test]
fn a_client_signalling_only_sha_1_gets_media() {
    media_flows_with("sha-1");
}

#[test]
fn a_client_signalling_sha_256_gets_media() {
    media_flows_with("sha-256");
}

fn wrong_fingerprint_fails_the_transport(algorithm: &str) {
    signal_fingerprint(algorithm, true);
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let producer = w.produce(p, Kind::Audio, false);
    let transport = w.pubs[p].transport.id.clone();
    let mut event = None;
    w.run_until(Duration::from_secs(3), |_| false);
    while let Some(e) = w.core.poll_event() {
        if matches!(e, CoreEvent::TransportClosed { .. }) {
            event.get_or_insert(e);
        }
    }
    assert_eq!(
        event,
        Some(CoreEvent::TransportClosed {
            transport,
            router: ROUTER.to_owned(),
            direction: Direction::Send,
            reason: "dtls-failed",
            producers: vec![producer.clone()],
            consumers: Vec::new(),
        }),
        "{algorithm}"
    );
    let stats = w.core.stats();
    assert_eq!((stats.transports, stats.producers), (0, 0), "{algorithm}");
    assert_eq!(
        stats.rtp_in, 0,
        "{algorithm}: nothing of a failed transport is handled"
    );
}

#[test]
fn a_sha_512_fingerprint_that_does_not_match_fails_the_transport() {
    wrong_fingerprint_fails_the_transport("sha-512");
}

#[test]
fn a_sha_256_fingerprint_that_does_not_match_fails_the_transport() {
    wrong_fingerprint_fails_the_transport("sha-256");
}
