//! (a) Audio + video from one fake mediasoup-client to another through the Core: the subscriber's str0m emits RTP
//! for both consumers, payloads byte-identical to what the publisher wrote and in the same order with nothing
//! missing, sequence numbers continuous from the consumer's first packet (which is 1), router payload types, marker
//! bits kept, and the audio level remapped from the client's extension id to the router's.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;

/// `received` must be a gap-free run of `sent`: the same bytes, in the same order.
fn assert_contiguous_run(received: &[Arc<[u8]>], sent: &[Arc<[u8]>], what: &str) {
    let first = received
        .first()
        .unwrap_or_else(|| panic!("{what}: nothing received"));
    let start = sent
        .iter()
        .position(|s| s == first)
        .unwrap_or_else(|| panic!("{what}: first received payload was never sent"));
    assert!(
        start + received.len() <= sent.len(),
        "{what}: more received than sent"
    );
    for (i, r) in received.iter().enumerate() {
        assert!(
            *r == sent[start + i],
            "{what}: payload {i} differs from sent payload {}",
            start + i
        );
    }
}

#[test]
fn audio_and_video_reach_the_subscriber_intact() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    w.run(Duration::from_secs(3));
    // Let the last written packets drain, then compare.
    w.pubs[0].auto = false;
    w.run(Duration::from_millis(300));

    let ac = pair.audio_consumer.as_ref().expect("audio consumer");
    let vc = pair.video_consumer.as_ref().expect("video consumer");
    assert_eq!(ac.consumer_type, "simple");
    assert_eq!(vc.consumer_type, "simple");
    assert!(!ac.producer_paused && !vc.producer_paused);
    let sub = &w.subs[0];
    let publ = &w.pubs[0];
    let audio = sub.rtp_of(ac);
    let video = sub.rtp_of(vc);
    let audio_track = publ
        .tracks
        .iter()
        .find(|t| t.kind == sfu::Kind::Audio)
        .expect("audio track");
    let video_track = publ
        .tracks
        .iter()
        .find(|t| t.kind == sfu::Kind::Video)
        .expect("video track");

    // ~50 pps audio and ~105 pps video for 3 s, minus the connection set-up.
    assert!(audio.len() > 120, "audio packets: {}", audio.len());
    assert!(video.len() > 250, "video packets: {}", video.len());

    // Everything the publisher wrote after the consumer started arrived, identical and in order.
    let a_payloads: Vec<Arc<[u8]>> = audio.iter().map(|p| p.payload.clone()).collect();
    let v_payloads: Vec<Arc<[u8]>> = video.iter().map(|p| p.payload.clone()).collect();
    assert_contiguous_run(&a_payloads, &audio_track.sent[0], "audio");
    assert_contiguous_run(&v_payloads, &video_track.sent[0], "video");
    assert_eq!(
        a_payloads.last(),
        audio_track.sent[0].last(),
        "the last audio packet arrived"
    );
    assert_eq!(
        v_payloads.last(),
        video_track.sent[0].last(),
        "the last video packet arrived"
    );

    // Sequence numbers: 1, 2, 3, … from the consumer's first packet.
    assert_eq!(*audio[0].seq_no, 1);
    assert_eq!(*video[0].seq_no, 1);
    assert_continuous(&audio, "audio");
    assert_continuous(&video, "video");

    // Video starts on a keyframe; timestamps advance by one frame (3000) per marker; router payload types.
    assert!(
        is_vp8_keyframe(&video[0].payload),
        "video starts on a keyframe"
    );
    assert!(video.iter().all(|p| *p.header.payload_type == 101));
    assert!(audio.iter().all(|p| *p.header.payload_type == 100));
    for w2 in video.windows(2) {
        let step = w2[1].header.timestamp.wrapping_sub(w2[0].header.timestamp);
        if w2[0].header.marker {
            assert_eq!(step, 3000, "one frame per marker");
        } else {
            assert_eq!(step, 0, "packets of one frame share a timestamp");
        }
    }
    assert!(
        video.iter().filter(|p| p.header.marker).count() as u64 >= video_track.frames / 2,
        "marker bits survive"
    );
    for w2 in audio.windows(2) {
        assert_eq!(
            w2[1].header.timestamp.wrapping_sub(w2[0].header.timestamp),
            960
        );
    }

    // The audio level was written under the client's id 1 and arrives under the router's id 10.
    let with_level = audio
        .iter()
        .filter(|p| p.header.ext_vals.audio_level.is_some())
        .count();
    assert_eq!(
        with_level,
        audio.len(),
        "every audio packet carries its level"
    );
    for p in &audio {
        let level = p.header.ext_vals.audio_level.expect("level");
        let written =
            -((u64::from_be_bytes(p.payload[..8].try_into().expect("8 bytes")) % 100) as i8);
        assert_eq!(level, written, "audio level forwarded unchanged");
    }

    // The Core's counters agree.
    assert_eq!(w.core.consumer_packets(&ac.id), Some(audio.len() as u64));
    assert_eq!(w.core.consumer_packets(&vc.id), Some(video.len() as u64));
    let stats = w.core.stats();
    assert_eq!(
        (stats.transports, stats.producers, stats.consumers),
        (2, 2, 2)
    );
    assert_eq!(stats.rtp_out, (audio.len() + video.len()) as u64);
    assert_eq!(stats.dropped_datagrams, 0);
}

/// Two subscribers of the same producers get the same payloads, each with its own SSRC.
#[test]
fn two_subscribers_get_the_same_media() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let a = pair.audio.clone().expect("audio");
    let v = pair.video.clone().expect("video");
    let (s2, infos) = w.subscriber_for(ROUTER, &[&a, &v]);
    let (ac2, vc2) = (infos[0].clone(), infos[1].clone());
    w.run(Duration::from_secs(2));
    w.pubs[0].auto = false;
    w.run(Duration::from_millis(300));
    let vc1 = pair.video_consumer.as_ref().expect("video consumer");
    assert_ne!(
        Subscriber::ssrc(vc1),
        Subscriber::ssrc(&vc2),
        "consumers have their own SSRCs"
    );
    for (info, what) in [(&ac2, "audio"), (&vc2, "video")] {
        let got = w.subs[s2].rtp_of(info);
        assert!(got.len() > 50, "{what}: {} packets", got.len());
        assert_continuous(&got, what);
        assert_eq!(*got[0].seq_no, 1);
    }
    // Both subscribers end on the same last payload.
    let last1 = w.subs[0].rtp_of(vc1).last().map(|p| p.payload.clone());
    let last2 = w.subs[s2].rtp_of(&vc2).last().map(|p| p.payload.clone());
    assert_eq!(last1, last2);
}
