//! The core's deadline heap: `handle_timeout` advances exactly the transports that are due (each once per call), a
//! closed transport leaves no deadline behind, and live ones keep their timers (the heap's invariants are unit
//! tests in `core.rs`).

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
            core.create_transport(ROUTER, dir, t0)
                .expect("transport")
                .id
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
    // Following next_deadline (a transport's, or the liveness check's) advances transports, never more than the 50
    // per call.
    let mut at = next;
    for _ in 0..20 {
        let b = core.stats().transport_timeouts;
        core.handle_timeout(at);
        assert!(
            core.stats().transport_timeouts - b <= 50,
            "one timeout per due transport"
        );
        at = core.next_deadline().expect("a deadline").max(at);
    }
    let advanced = core.stats().transport_timeouts - before;
    assert!(advanced >= 1, "{advanced} advanced");
    let next = at;
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
fn media_and_timers_keep_going_with_the_heap() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let t0 = w.core.stats().transport_timeouts;
    let r0 = w.subs[0].ep.rtp_count;
    w.run(Duration::from_secs(3));
    // Every transport's str0m timers keep firing (feedback, RTCP: tens per second each), and media flows.
    let timeouts = w.core.stats().transport_timeouts - t0;
    assert!(timeouts > 2 * 3 * 10, "{timeouts} timer wake-ups in 3 s");
    let got = w.subs[0].ep.rtp_count - r0;
    assert!(got > 100, "media flowed: {got} packets");
}
