//! (d) Closing a producer or a transport returns exactly the consumer ids it closed and stops their traffic, while
//! everything else keeps flowing; closing twice or closing unknown ids is harmless.

mod common;

use common::*;
use std::time::Duration;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn close_producer_returns_its_consumers_and_stops_them() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    let vc = pair.video_consumer.clone().expect("video consumer");
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let (s2, second) = w.subscriber_for(ROUTER, &[&v]);
    w.run(Duration::from_secs(1));

    let closed = w.core.close_producer(&v);
    assert_eq!(
        sorted(closed),
        sorted(vec![vc.id.clone(), second[0].id.clone()])
    );
    assert_eq!(w.core.consumer_packets(&vc.id), None);
    assert_eq!(w.core.consumer_transport(&vc.id), None);
    let stats = w.core.stats();
    assert_eq!((stats.producers, stats.consumers), (1, 1));

    w.run(Duration::from_millis(100));
    let before = (
        w.subs[0].rtp_of(&vc).len(),
        w.subs[s2].rtp_of(&second[0]).len(),
    );
    let audio_before = w.subs[0].rtp_of(&ac).len();
    let sent = w.pubs[0].tracks[1].packets;
    w.run(Duration::from_secs(1));
    assert!(
        w.pubs[0].tracks[1].packets > sent + 80,
        "the client still sends video"
    );
    assert_eq!(
        w.subs[0].rtp_of(&vc).len(),
        before.0,
        "closed consumer received"
    );
    assert_eq!(
        w.subs[s2].rtp_of(&second[0]).len(),
        before.1,
        "closed consumer received"
    );
    let audio = w.subs[0].rtp_of(&ac);
    assert!(audio.len() > audio_before + 40, "audio keeps flowing");
    assert_continuous(&audio, "audio");

    // Again, and unknown: nothing to close.
    assert!(w.core.close_producer(&v).is_empty());
    assert!(w.core.close_producer("pr_unknown").is_empty());
    // Consuming a closed producer: NotFound.
    let s3 = w.add_subscriber(ROUTER);
    assert_eq!(
        w.core
            .consume(&w.subs[s3].transport.id, &v, &device_caps())
            .map(|c| c.id),
        Err(sfu::SfuError::NotFound("producer"))
    );

    // The same client produces video again on the same transport: a new m-line, and it is forwarded.
    let v2 = w.produce(0, sfu::Kind::Video, false);
    let c = w.consume_with(s3, &v2, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s3].ep.connected));
    w.resume(&c.id);
    w.run(Duration::from_secs(1));
    let got = w.subs[s3].rtp_of(&c);
    assert!(got.len() > 50, "re-produced video: {} packets", got.len());
    assert!(is_vp8_keyframe(&got[0].payload));
    assert_continuous(&got, "re-produced video");
}

#[test]
fn close_recv_transport_returns_its_consumers() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    let vc = pair.video_consumer.clone().expect("video consumer");
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let (s2, second) = w.subscriber_for(ROUTER, &[&v]);
    w.run(Duration::from_millis(500));

    let recv = w.subs[0].transport.id.clone();
    let (producers, consumers) = w.core.close_transport(&recv);
    assert!(producers.is_empty());
    assert_eq!(
        sorted(consumers),
        sorted(vec![vc.id.clone(), ac.id.clone()])
    );
    assert_eq!(w.core.stats().transports, 2);
    assert_eq!(w.core.stats().consumers, 1);
    assert!(w.core.transport_router(&recv).is_none());

    // Its client keeps talking (STUN consent, RTCP): dropped, never answered; the other subscriber is unaffected.
    let dropped = w.core.stats().dropped_datagrams;
    let before = w.subs[0].ep.rtp_count;
    let other = w.subs[s2].rtp_of(&second[0]).len();
    w.run(Duration::from_secs(3));
    assert_eq!(
        w.subs[0].ep.rtp_count, before,
        "closed transport still receives RTP"
    );
    assert!(
        w.core.stats().dropped_datagrams > dropped,
        "the closed transport's client was not heard (test is vacuous)"
    );
    let got = w.subs[s2].rtp_of(&second[0]);
    assert!(got.len() > other + 200);
    assert_continuous(&got, "other subscriber");

    // Twice / unknown.
    assert_eq!(w.core.close_transport(&recv), (vec![], vec![]));
    assert_eq!(w.core.close_transport("tr_unknown"), (vec![], vec![]));
    assert_eq!(
        w.core.connect_transport(&recv, &serde_json::json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": vec!["00"; 32].join(":")}]})),
        Err(sfu::SfuError::NotFound("transport"))
    );
}

#[test]
fn close_send_transport_closes_producers_and_all_their_consumers() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let a = pair.audio.clone().expect("audio");
    let v = pair.video.clone().expect("video");
    let vc = pair.video_consumer.clone().expect("video consumer");
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let (s2, second) = w.subscriber_for(ROUTER, &[&a, &v]);
    w.run(Duration::from_millis(500));

    let send = w.pubs[0].transport.id.clone();
    let (producers, consumers) = w.core.close_transport(&send);
    assert_eq!(sorted(producers), sorted(vec![a.clone(), v.clone()]));
    let mut expected = vec![vc.id.clone(), ac.id.clone()];
    expected.extend(second.iter().map(|c| c.id.clone()));
    assert_eq!(sorted(consumers), sorted(expected));
    let stats = w.core.stats();
    assert_eq!(
        (stats.transports, stats.producers, stats.consumers),
        (2, 0, 0)
    );

    let before = (w.subs[0].ep.rtp_count, w.subs[s2].ep.rtp_count);
    let (rtp_in, rtp_out) = (w.core.stats().rtp_in, w.core.stats().rtp_out);
    let sent = w.pubs[0].tracks[1].packets;
    w.run(Duration::from_secs(1));
    assert!(
        w.pubs[0].tracks[1].packets > sent + 50,
        "the publisher keeps sending"
    );
    assert_eq!((w.subs[0].ep.rtp_count, w.subs[s2].ep.rtp_count), before);
    assert_eq!(
        w.core.stats().rtp_in,
        rtp_in,
        "nothing is parsed for a closed transport"
    );
    assert_eq!(w.core.stats().rtp_out, rtp_out, "nothing is forwarded");

    // The recv transports survive and can consume a new publisher.
    let p2 = w.add_publisher(ROUTER);
    let v2 = w.produce(p2, sfu::Kind::Video, false);
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p2].ep.connected));
    let c = w.consume(s2, &v2);
    w.run(Duration::from_secs(1));
    let got = w.subs[s2].rtp_of(&c);
    assert!(
        got.len() > 50,
        "new producer on a surviving recv transport: {}",
        got.len()
    );
    assert_continuous(&got, "new producer");
}

/// A user who starts and stops screen sharing over and over on one send transport: every stop closes the producer
/// (its m-section stays, closed), every start opens a new one. Closing the last open producer leaves no section to
/// bundle (str0m refuses such an offer, so it is not applied), and more than 32 producers over the transport's life
/// must still work: only the open ones are capped.
#[test]
fn producing_again_after_closing_everything_many_times_still_forwards() {
    let mut pair = pair(false, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    w.core.close_producer(&v);
    w.pubs[0].tracks[0]
        .layer_active
        .iter_mut()
        .for_each(|a| *a = false);
    w.run(Duration::from_millis(50));
    for round in 0..40 {
        let p = w.produce(0, sfu::Kind::Video, false);
        w.run(Duration::from_millis(30));
        assert_eq!(
            w.core.close_producer(&p),
            Vec::<String>::new(),
            "round {round}"
        );
        let last = w.pubs[0].tracks.len() - 1;
        w.pubs[0].tracks[last]
            .layer_active
            .iter_mut()
            .for_each(|a| *a = false);
    }
    assert_eq!(w.core.stats().producers, 0);

    let v2 = w.produce(0, sfu::Kind::Video, false);
    let s = w.add_subscriber(ROUTER);
    let c = w.consume_with(s, &v2, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected));
    w.resume(&c.id);
    w.run(Duration::from_secs(1));
    let got = w.subs[s].rtp_of(&c);
    assert!(
        got.len() > 50,
        "video after 41 producers: {} packets",
        got.len()
    );
    assert!(is_vp8_keyframe(&got[0].payload));
    assert_continuous(&got, "video after 41 producers");
}
