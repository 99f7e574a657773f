//! (c) Pausing a producer stops forwarding to all of its consumers while its client keeps sending; resuming asks
//! the producer for a keyframe and every consumer restarts on it, with continuous sequence numbers.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn producer_pause_stops_forwarding() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let a = pair.audio.clone().expect("audio");
    let v = pair.video.clone().expect("video");
    let vc = pair.video_consumer.clone().expect("video consumer");
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let (s2, second) = w.subscriber_for(ROUTER, &[&v]);
    let vc2 = second[0].clone();
    w.run(Duration::from_secs(1));
    let video_mid = w.pubs[0].tracks[1].mid;

    w.core
        .set_producer_paused(&v, true, w.now)
        .expect("pause video producer");
    w.run(Duration::from_millis(100));
    let before = (
        w.subs[0].rtp_of(&vc).len(),
        w.subs[0].rtp_of(&ac).len(),
        w.subs[s2].rtp_of(&vc2).len(),
    );
    let out = w.core.stats().rtp_out;
    let sent = w.pubs[0].tracks[1].packets;
    w.run(Duration::from_secs(2));
    assert!(
        w.pubs[0].tracks[1].packets > sent + 150,
        "the client kept sending video"
    );
    assert_eq!(
        w.subs[0].rtp_of(&vc).len(),
        before.0,
        "video forwarded while paused"
    );
    assert_eq!(
        w.subs[s2].rtp_of(&vc2).len(),
        before.2,
        "video forwarded while paused"
    );
    let audio_now = w.subs[0].rtp_of(&ac).len();
    assert!(audio_now > before.1 + 80, "audio producer is not paused");
    assert_eq!(
        w.core.stats().rtp_out - out,
        (audio_now - before.1) as u64,
        "only audio went out"
    );

    // A consumer created now learns the producer is paused.
    let s3 = w.add_subscriber(ROUTER);
    let info = w.consume_with(s3, &v, true);
    assert!(info.producer_paused);
    let info_a = w.consume_with(s3, &a, true);
    assert!(!info_a.producer_paused);

    // Resume: PLI to the client, both consumers restart on its keyframe.
    let requests = w.pubs[0].ep.keyframe_requests_for(video_mid);
    w.core
        .set_producer_paused(&v, false, w.now)
        .expect("resume video producer");
    assert!(
        w.run_until(Duration::from_millis(100), |w| w.pubs[0]
            .ep
            .keyframe_requests_for(video_mid)
            > requests),
        "resume sent no keyframe request to the producer"
    );
    w.run(Duration::from_millis(500));
    for (s, info) in [(0, &vc), (s2, &vc2)] {
        let got = w.subs[s].rtp_of(info);
        let start = if s == 0 { before.0 } else { before.2 };
        assert!(got.len() > start + 20, "video flows again");
        assert!(
            is_vp8_keyframe(&got[start].payload),
            "restart on a keyframe"
        );
        assert_continuous(&got, "video across producer pause");
    }
}

#[test]
fn pausing_twice_and_unknown_producers() {
    let mut pair = pair(false, true, false);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    w.core.set_producer_paused(&v, true, w.now).expect("pause");
    w.core
        .set_producer_paused(&v, true, w.now)
        .expect("pause again");
    w.core
        .set_producer_paused(&v, false, w.now)
        .expect("resume");
    w.core
        .set_producer_paused(&v, false, w.now)
        .expect("resume again");
    assert_eq!(
        w.core.set_producer_paused("pr_nope", true, w.now),
        Err(sfu::SfuError::NotFound("producer"))
    );
    assert_eq!(
        w.core.set_consumer_paused("co_nope", true, w.now),
        Err(sfu::SfuError::NotFound("consumer"))
    );
    w.run(Duration::from_millis(500));
    let vc = pair.video_consumer.as_ref().expect("consumer");
    assert!(w.subs[0].rtp_of(vc).len() > 20);
}
