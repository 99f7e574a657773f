//! `producer:layers-needed` (issue 11 item 3): a simulcast producer's publisher is told how many spatial layers its
//! consumers need — the highest layer an unpaused consumer targets, plus one — whenever that changes, so it can stop
//! encoding the rest. Creating a (paused) consumer reports nothing; the lowest layer is always needed.

mod common;

use common::*;
use sfu::CoreEvent;
use std::time::Duration;

fn needed(w: &mut World) -> Vec<usize> {
    std::iter::from_fn(|| w.core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::LayersNeeded {
                spatial_layers,
                router,
                ..
            } => {
                assert_eq!(router, ROUTER);
                Some(spatial_layers)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_publisher_learns_how_many_layers_its_consumers_need() {
    let mut pair = pair(false, true, true);
    let w = &mut pair.world;
    let v = pair.video.clone().expect("video");
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_secs(1));
    assert_eq!(
        needed(w),
        Vec::<usize>::new(),
        "one consumer of the top layer: all three, as sent"
    );

    // The only subscriber asks for the lowest layer: one is needed.
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("preferred layer");
    assert_eq!(needed(w), vec![1]);
    // A second subscriber: created paused (nothing), resumed with the default target (all three).
    let (s2, second) = w.subscriber_for(ROUTER, &[&v]);
    w.run(Duration::from_millis(500));
    assert_eq!(needed(w), vec![3]);
    // It asks for the middle layer: two; pauses: back to one; the first goes medium too: two.
    w.core
        .set_consumer_preferred_layer(&second[0].id, 1, w.now)
        .expect("preferred layer");
    assert_eq!(needed(w), vec![2]);
    w.pause(&second[0].id);
    assert_eq!(needed(w), vec![1]);
    w.core
        .set_consumer_preferred_layer(&vc.id, 1, w.now)
        .expect("preferred layer");
    assert_eq!(needed(w), vec![2]);
    // Its consumer closes: the first still needs two (no change); the first closes too: one.
    w.core.close_consumer(&second[0].id);
    assert_eq!(needed(w), Vec::<usize>::new());
    w.core.close_consumer(&vc.id);
    assert_eq!(needed(w), vec![1]);
    let _ = s2;
}

fn layers_changed(w: &mut World, consumer: &str) -> Vec<(usize, usize)> {
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

#[test]
fn a_simulcast_consumer_reports_the_layer_it_receives() {
    let mut pair = pair(false, true, true);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_secs(2));
    let seen = layers_changed(w, &vc.id);
    assert_eq!(
        seen.last().map(|x| x.0),
        Some(2),
        "on the top layer: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|p| p[0] != p[1]),
        "only changes: {seen:?}"
    );
    w.core
        .set_consumer_preferred_layer(&vc.id, 0, w.now)
        .expect("preferred layer");
    w.run(Duration::from_secs(2));
    assert_eq!(
        layers_changed(w, &vc.id)
            .iter()
            .map(|x| x.0)
            .collect::<Vec<_>>(),
        vec![0]
    );
    // Nothing more while it stays there.
    w.run(Duration::from_secs(2));
    assert_eq!(layers_changed(w, &vc.id), Vec::new());
}
