//! The datagram path: arbitrary bytes into `Core::handle_receive` from a few fixed peers (two of which completed
//! ICE, so non-STUN bytes reach str0m's DTLS/SRTP demux), with time advancing, `handle_timeout` and
//! `poll_transmit` in between. Must never panic.
//!
//! Input: records of `[h][len_hi][len_lo][len bytes]`; `h & 3` picks the source, `h >> 2` advances the clock by
//! that many milliseconds (×16 when `h` has bit 7 set). A short last record takes what is left. 16-byte ufrag
//! placeholders (`SSSS…`, `RRRR…`) are replaced by the transports' real ufrags.
//!
//! Each input gets a fresh `Core` (deterministic replays), which costs two DTLS certificates per run and caps the
//! speed at tens of runs per second. `SFU_FUZZ_REUSE_CORE=1` keeps one `Core` (with media) for 1000 inputs at a
//! time instead: far faster, but a crash may then depend on earlier inputs and not replay alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu_fuzz::{source, Fixture};
use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

const REUSE_RUNS: u32 = 1000;

thread_local! {
    static KEPT: RefCell<Option<(Fixture, u32)>> = const { RefCell::new(None) };
}

fn reuse() -> bool {
    static REUSE: OnceLock<bool> = OnceLock::new();
    *REUSE.get_or_init(|| std::env::var_os("SFU_FUZZ_REUSE_CORE").is_some_and(|v| v != "0"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if !reuse() {
        // Media only when the first byte asks, so both the bare and the forwarding set-ups are covered.
        let mut f = Fixture::new(mode & 1 == 1);
        run(&mut f, rest);
        return;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.as_ref().is_none_or(|(_, runs)| *runs >= REUSE_RUNS) {
            *kept = Some((Fixture::new(true), 0));
        }
        if let Some((f, runs)) = kept.as_mut() {
            *runs += 1;
            f.refresh_ice();
            run(f, rest);
        }
    });
});

fn run(f: &mut Fixture, mut rest: &[u8]) {
    let mut now = f.now;
    let mut records = 0;
    while let [h, a, b, tail @ ..] = rest {
        let len = (usize::from(*a) << 8 | usize::from(*b)).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        records += 1;
        if records > 64 {
            break;
        }
        let step = u64::from(h & 0x7f) >> 2;
        now += Duration::from_millis(if h & 0x80 != 0 { step * 16 } else { step });
        let mut datagram = datagram.to_vec();
        f.substitute(&mut datagram);
        f.core.handle_receive(now, source(*h), &datagram);
        if f.core.next_deadline().is_some_and(|d| d <= now) {
            f.core.handle_timeout(now);
        }
        f.flush();
    }
    // Let the timers run: ICE keepalives, DTLS retransmits, RTCP, consent timeouts.
    for _ in 0..4 {
        now += Duration::from_millis(1_700);
        f.core.handle_timeout(now);
        f.flush();
    }
    let _ = f.core.stats();
    f.now = now;
}
