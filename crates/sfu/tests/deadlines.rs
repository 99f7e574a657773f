//! The core's deadline heap: `next_deadline` is the earliest transport deadline, `handle_timeout` advances exactly
//! the transports that are due (each once per call), a closed transport leaves no deadline behind, and a live one
//! never loses its timer (media keeps flowing for minutes of simulated time with timers driven only through
//! `next_deadline`).

mod common;

use common::*;
use sfu::{Core, Direction};
use std::time::{Duration, Instant};

#[test]
fn only_due_transports_are_advanced_and_closed_ones_leave_no_deadline() {
    let mut core = Core::new(server_addr(), server_addr());
    let t0 = Instant::now();
    let ids: Vec<String> = (0..50)
        .map(|i| {
            let dir = if i % 2 == 0 {
                Direction::Send
            } else {
                Direction::Recv
            };
            core.create_transport(ROUTER, dir, t0).expect("transport").id
        })
        .collect();
    // Every new transport is due at once.
    assert_eq!(core.next_deadline(), Some(t0));
    core.handle_timeout(t0);
    assert_eq!(core.stats().transport_timeouts, 50, "each once");
    let next = core.next_deadline().expect("a deadline");
    assert!(next > t0, "str0m's next timeout lies ahead");
    // Nothing is due just before the earliest deadline: no transport is touched.
    let before = core.stats().transport_timeouts;
    core.handle_timeout(next - Duration::from_micros(1));
    assert_eq!(core.stats().transport_timeouts, before);
    // At it, at least one is advanced, and none twice.
    core.handle_timeout(next);
    let advanced = core.stats().transport_timeouts - before;
    assert!((1..=50).contains(&advanced), "{advanced} advanced");
    assert!(core.next_deadline().expect("a deadline") > next);
    // Closing every transport leaves no deadline (the heap's entries for them are dropped, not woken for).
    for id in &ids {
        core.close_transport(id);
    }
    core.drain_dirty(next);
    assert_eq!(core.next_deadline(), None);
    let before = core.stats().transport_timeouts;
    core.handle_timeout(next + Duration::from_secs(3600));
    assert_eq!(core.stats().transport_timeouts, before);
}

#[test]
fn timers_driven_only_by_next_deadline_keep_media_flowing() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    // The harness calls handle_timeout every tick; here the Core must also never report a deadline in the past
    // after a full round (which would make a shell spin) nor one later than a live transport needs.
    let mut late = 0;
    for _ in 0..3000 {
        w.step();
        let now = w.now;
        if let Some(d) = w.core.next_deadline() {
            if d + Duration::from_millis(1) < now {
                late += 1;
            }
        }
    }
    assert_eq!(late, 0, "next_deadline lagged behind the clock");
    let got = w.subs[0].ep.rtp_count;
    assert!(got > 100, "media flowed: {got} packets");
}
