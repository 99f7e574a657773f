//! Pipes between cores (issue 8 item 3, `core/pipe.rs`): a producer on one worker's core feeds a pipe producer on
//! another worker's core; subscribers on both receive its media through real DTLS-SRTP, a PLI from a subscriber on
//! the second core reaches the publisher, its layer needs count, and closing the producer closes the far side.

mod common;

use common::*;
use sfu::{CoreEvent, Kind};
use std::time::Duration;

/// A publisher (audio + video, simulcast when asked) on the first core, one subscriber there and one on the second
/// core, each consuming everything; the second through pipes 1 (audio) and 2 (video).
struct Piped {
    w: World,
    audio: String,
    video: String,
    near: usize,
    far: usize,
    near_consumers: Vec<sfu::ConsumerInfo>,
    far_consumers: Vec<sfu::ConsumerInfo>,
}

fn piped(simulcast: bool) -> Piped {
    let mut w = World::with_second_core();
    let p = w.add_publisher(ROUTER);
    let audio = w.produce(p, Kind::Audio, false);
    let video = w.produce(p, Kind::Video, simulcast);
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected),
        "publisher never connected"
    );
    // Before the pipe, the second core does not know the producer.
    let now = w.now;
    let probe = w
        .second()
        .create_transport(ROUTER, sfu::Direction::Recv, now)
        .expect("transport");
    assert_eq!(
        w.second()
            .consume(&probe.id, &video, &device_caps())
            .map(|_| ()),
        Err(sfu::SfuError::NotFound("producer"))
    );
    w.second().close_transport(&probe.id);
    for (pipe, id) in [(1, &audio), (2, &video)] {
        let src = w.core.pipe_producer(id, pipe).expect("pipe out");
        assert_eq!(&src.producer, id);
        w.second().create_pipe_producer(src, pipe).expect("pipe in");
    }
    assert!(w.second().is_pipe_producer(&video));
    assert!(!w.core.is_pipe_producer(&video));
    let (near, near_consumers) = w.subscriber_for(ROUTER, &[&audio, &video]);
    let far = w.add_subscriber_on_second(ROUTER);
    let far_consumers: Vec<_> = [&audio, &video]
        .iter()
        .map(|id| w.consume_with(far, id, true))
        .collect();
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.subs[far].ep.connected),
        "far subscriber never connected"
    );
    for c in &far_consumers {
        w.resume(&c.id);
    }
    Piped {
        w,
        audio,
        video,
        near,
        far,
        near_consumers,
        far_consumers,
    }
}

#[test]
fn subscribers_on_two_cores_receive_one_producer() {
    let Piped {
        mut w,
        near,
        far,
        near_consumers,
        far_consumers,
        ..
    } = piped(false);
    w.run(Duration::from_secs(2));
    for (s, infos) in [(near, &near_consumers), (far, &far_consumers)] {
        let audio = w.subs[s].rtp_of(&infos[0]);
        let video = w.subs[s].rtp_of(&infos[1]);
        assert!(audio.len() > 80, "subscriber {s}: {} audio", audio.len());
        assert!(video.len() > 100, "subscriber {s}: {} video", video.len());
        assert!(
            is_vp8_keyframe(&video[0].payload),
            "subscriber {s} starts on a keyframe"
        );
        assert_continuous(&audio, "audio");
        assert_continuous(&video, "video");
    }
    // The same payloads on both sides: the far subscriber gets the publisher's frames, not something else.
    let near_v: Vec<_> = w.subs[near]
        .rtp_of(&near_consumers[1])
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    let far_v: Vec<_> = w.subs[far]
        .rtp_of(&far_consumers[1])
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    let common = far_v.iter().filter(|p| near_v.contains(p)).count();
    assert!(
        common * 10 >= far_v.len() * 9,
        "{common} of {} far payloads were sent to the near subscriber too",
        far_v.len()
    );
    let s1 = w.core.stats();
    let s2 = w.second().stats();
    assert!(s1.piped_out > 150, "first core piped {}", s1.piped_out);
    assert!(s2.piped_in > 150, "second core took {}", s2.piped_in);
    assert_eq!(s2.rtp_in, 0, "the second core has no publisher");
}

#[test]
fn a_pli_from_the_far_subscriber_reaches_the_publisher() {
    let Piped {
        mut w,
        far,
        far_consumers,
        ..
    } = piped(false);
    w.run(Duration::from_secs(1));
    let video_mid = w.pubs[0].tracks[1].mid;
    let before = w.pubs[0].ep.keyframe_requests_for(video_mid);
    let far_before = w.second().stats().keyframe_requests;
    w.subs[far].send_pli(&far_consumers[1]);
    assert!(
        w.run_until(Duration::from_millis(200), |w| w.pubs[0]
            .ep
            .keyframe_requests_for(video_mid)
            > before),
        "the far subscriber's PLI never reached the publisher"
    );
    assert!(w.second().stats().keyframe_requests > far_before);
    // The new keyframe reaches the far subscriber.
    let got = w.subs[far].rtp_of(&far_consumers[1]).len();
    w.run(Duration::from_millis(300));
    let video = w.subs[far].rtp_of(&far_consumers[1]);
    assert!(
        video[got..].iter().any(|p| is_vp8_keyframe(&p.payload)),
        "no keyframe after the PLI"
    );
}

fn layers_needed(w: &mut World) -> Vec<usize> {
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::LayersNeeded { spatial_layers, .. } => Some(spatial_layers),
            _ => None,
        })
        .collect()
}

#[test]
fn far_consumers_count_in_layers_needed_and_pause_and_close_follow() {
    let Piped {
        mut w,
        video,
        audio,
        near,
        far,
        near_consumers,
        far_consumers,
    } = piped(true);
    w.run(Duration::from_secs(1));
    let _ = layers_needed(&mut w);
    let _ = std::iter::from_fn(|| w.second().poll_event()).count();
    // The near subscriber only wants the lowest layer; the far one still wants the top: three are needed.
    let now = w.now;
    w.core
        .set_consumer_preferred_layer(&near_consumers[1].id, 0, now)
        .expect("near layer");
    w.run(Duration::from_millis(100));
    assert_eq!(layers_needed(&mut w), Vec::<usize>::new());
    // The far one drops to the middle: two; it pauses: one.
    w.second()
        .set_consumer_preferred_layer(&far_consumers[1].id, 1, now)
        .expect("far layer");
    w.run(Duration::from_millis(100));
    assert_eq!(layers_needed(&mut w), vec![2]);
    w.pause(&far_consumers[1].id);
    w.run(Duration::from_millis(100));
    assert_eq!(layers_needed(&mut w), vec![1]);
    // The second core reports no LayersNeeded of its own: the publisher is told by the first.
    let far_events: Vec<_> = std::iter::from_fn(|| w.second().poll_event()).collect();
    assert!(
        !far_events
            .iter()
            .any(|e| matches!(e, CoreEvent::LayersNeeded { .. })),
        "{far_events:?}"
    );
    w.resume(&far_consumers[1].id);

    // A priority set at home reaches the pipe producer.
    w.core
        .set_producer_priority(&video, sfu::allocator::Priority::Screen)
        .expect("priority");
    w.run(Duration::from_millis(10));
    assert_eq!(
        w.second().producer_priority(&video),
        Some(sfu::allocator::Priority::Screen)
    );

    // Pausing the producer pauses the pipe producer: nothing reaches the far subscriber.
    let now = w.now;
    w.core
        .set_producer_paused(&audio, true, now)
        .expect("pause");
    w.run(Duration::from_millis(100));
    let audio_before = w.subs[far].rtp_of(&far_consumers[0]).len();
    w.run(Duration::from_millis(500));
    assert_eq!(w.subs[far].rtp_of(&far_consumers[0]).len(), audio_before);
    let now = w.now;
    w.core
        .set_producer_paused(&audio, false, now)
        .expect("resume");
    w.run(Duration::from_millis(500));
    assert!(w.subs[far].rtp_of(&far_consumers[0]).len() > audio_before + 15);

    // Closing the producer closes the pipe producer and its consumer on the second core.
    let near_closed = w.core.close_producer(&video);
    assert_eq!(near_closed, vec![near_consumers[1].id.clone()]);
    w.run(Duration::from_millis(50));
    assert!(!w.second().is_pipe_producer(&video));
    assert_eq!(w.second().consumer_transport(&far_consumers[1].id), None);
    assert!(w.second().is_pipe_producer(&audio));
    let _ = near;
}
