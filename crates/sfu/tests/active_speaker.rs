//! Active speaker and audio levels from the ssrc-audio-level extension, end to end through real DTLS-SRTP on
//! simulated time: the level a publisher's packets carry reaches the core's meters; the one who speaks is named,
//! a muted (silent) or paused one is not; a silent meeting reports nothing.

mod common;

use common::*;
use sfu::{CoreEvent, Kind};
use std::time::Duration;

/// Two publishers with audio in one router and a subscriber of both; returns the world and the producers.
fn meeting(levels: [i8; 2]) -> (World, [String; 2]) {
    let mut w = World::new();
    let p0 = w.add_publisher(ROUTER);
    let p1 = w.add_publisher(ROUTER);
    w.pubs[p0].audio_level = Some(levels[0]);
    w.pubs[p1].audio_level = Some(levels[1]);
    let a0 = w.produce(p0, Kind::Audio, false);
    let a1 = w.produce(p1, Kind::Audio, false);
    assert!(
        w.run_until(Duration::from_secs(3), |w| w
            .pubs
            .iter()
            .all(|p| p.ep.connected)),
        "publishers never connected"
    );
    w.subscriber_for(ROUTER, &[&a0, &a1]);
    (w, [a0, a1])
}

/// (elapsed ms, event) for the speaker reports since the last call.
fn events(w: &mut World) -> Vec<(u128, CoreEvent)> {
    let at = w.elapsed().as_millis();
    std::iter::from_fn(|| w.core.poll_event())
        .filter(|e| {
            matches!(
                e,
                CoreEvent::ActiveSpeaker { .. } | CoreEvent::AudioLevels { .. }
            )
        })
        .map(|e| (at, e))
        .collect()
}

/// Runs `d` in steps of 50 ms, collecting events with their time.
fn run(w: &mut World, d: Duration) -> Vec<(u128, CoreEvent)> {
    let mut out = Vec::new();
    let end = w.elapsed() + d;
    while w.elapsed() < end {
        w.run(Duration::from_millis(50));
        out.extend(events(w));
    }
    out
}

fn speakers(ev: &[(u128, CoreEvent)]) -> Vec<(u128, String)> {
    ev.iter()
        .filter_map(|(t, e)| match e {
            CoreEvent::ActiveSpeaker { router, producer } => {
                assert_eq!(router, ROUTER);
                Some((*t, producer.clone()))
            }
            _ => None,
        })
        .collect()
}

fn levels(ev: &[(u128, CoreEvent)]) -> Vec<(u128, Vec<(String, f32)>)> {
    ev.iter()
        .filter_map(|(t, e)| match e {
            CoreEvent::AudioLevels { levels, .. } => Some((*t, levels.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_speaker_is_named_the_muted_one_is_not_and_pause_hands_over() {
    // Publisher 0 speaks at −20 dBov, publisher 1 sends silence (a disabled track sends −127).
    let (mut w, [a0, a1]) = meeting([-20, -127]);
    let start = w.elapsed().as_millis();
    let ev = run(&mut w, Duration::from_secs(3));
    let s = speakers(&ev);
    assert_eq!(
        s.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec![a0.as_str()],
        "{s:?}"
    );
    assert!(s[0].0 - start <= 1_000, "named after {} ms", s[0].0 - start);
    let l = levels(&ev);
    assert!(l.len() >= 4, "{l:?}");
    for w2 in l.windows(2) {
        assert!(
            w2[1].0 - w2[0].0 >= 450,
            "levels at most every 500 ms: {l:?}"
        );
    }
    for (_, list) in &l {
        assert_eq!(list.len(), 1, "only the speaker has a level: {list:?}");
        assert_eq!(list[0].0, a0);
        assert!((list[0].1 - 0.1).abs() < 0.01, "{list:?}");
    }

    // Publisher 0 is paused (its client keeps sending at −20) and publisher 1 starts talking: 1 takes over and
    // 0 has no level any more.
    w.core.set_producer_paused(&a0, true, w.now).expect("pause");
    w.pubs[1].audio_level = Some(-30);
    let ev = run(&mut w, Duration::from_secs(4));
    let s = speakers(&ev);
    assert_eq!(
        s.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec![a1.as_str()],
        "{s:?}"
    );
    let l = levels(&ev);
    let last = &l.last().expect("levels").1;
    assert_eq!(
        last.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        vec![a1.as_str()]
    );

    // Closing the speaking producer: the core forgets its meter (no report names it again).
    w.core.close_producer(&a1);
    let ev = run(&mut w, Duration::from_secs(2));
    assert!(speakers(&ev).is_empty());
    for (_, list) in levels(&ev) {
        assert!(list.is_empty(), "{list:?}");
    }
}

#[test]
fn a_silent_meeting_reports_nothing() {
    let (mut w, _) = meeting([-127, -100]);
    let ev = run(&mut w, Duration::from_secs(5));
    assert!(ev.is_empty(), "{ev:?}");
}
