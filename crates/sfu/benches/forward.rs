//! Forwarding-path benchmark of `sfu::Core`, on simulated time with fake str0m clients in memory.
//!
//! One publisher (VP8 at 30 fps, 3–4 packets of ~1100 B per frame, plus opus at 50 packets/s of 120 B) is consumed
//! by N subscribers (N = 1, 10, 50, 100). Only the Core's calls are timed with `Instant` (`handle_receive` +
//! `drain_dirty` + `poll_transmit`, and separately `handle_timeout`, called every simulated millisecond); the fake
//! clients' work (their SRTP, RTCP, pacing) is not. Reported: Core CPU time per forwarded RTP packet = core time /
//! (publisher packets in × N), and per input packet. The measured window is cut into 10 slices; the median slice
//! is the headline (robust against the machine's other load preempting a slice), the minimum is shown too.
//!
//! Run: `cargo bench -p sfu --bench forward`. `SFU_BENCH_SECS=<s>` changes the measured simulated time per row
//! (default 10 s); `SFU_BENCH_N=1,10` picks the rows. `SFU_BENCH_RECORD=1` also records the publisher's two
//! producers (the recorder's virtual subscriber, issue 10: a tap per producer whose queue a thread drains), so the
//! rows show what recording adds to the forwarding path.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::time::{Duration, Instant};

const SLICES: usize = 10;

struct Slice {
    rtp_in: u64,
    rtp_out: u64,
    core: Duration,
    timers: Duration,
}

impl Slice {
    /// µs of Core time (receive path + timers) per forwarded packet, and of the receive path alone.
    fn per_fwd(&self, n: usize) -> (f64, f64) {
        let fwd = (self.rtp_in * n as u64).max(1) as f64;
        (
            (self.core + self.timers).as_secs_f64() * 1e6 / fwd,
            self.core.as_secs_f64() * 1e6 / fwd,
        )
    }
}

struct Row {
    /// str0m timer wakeups per transport per simulated second.
    timer_wakeups: f64,
    sim: Duration,
    slices: Vec<Slice>,
    wall: Duration,
    min_received: u64,
}

fn run(n: usize, secs: f64) -> Row {
    let wall = Instant::now();
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let a = w.produce(p, sfu::Kind::Audio, false);
    let v = w.produce(p, sfu::Kind::Video, false);
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected),
        "publisher connect"
    );
    for t in &mut w.pubs[p].tracks {
        t.record = false;
    }
    if std::env::var("SFU_BENCH_RECORD").is_ok_and(|v| v == "1") {
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        // Drained like the recorder's thread does: poll and sleep, so a send never wakes a blocked receiver.
        std::thread::spawn(move || loop {
            match rx.try_recv() {
                Ok(_) => {}
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        });
        for (track, id) in [(1, &a), (2, &v)] {
            let sink = sfu::record::RecordSink {
                track,
                tx: tx.clone(),
                need_keyframe: Default::default(),
                dropped: Default::default(),
            };
            w.core
                .start_recording(id, sink, Instant::now())
                .expect("start_recording");
        }
    }
    for _ in 0..n {
        let (s, _) = w.subscriber_for(ROUTER, &[&a, &v]);
        w.subs[s].ep.keep_rtp = false;
        w.subs[s].ep.rtp.clear();
    }
    // Warm up: every consumer started on its keyframe; caches and estimators settled.
    w.run(Duration::from_secs(1));

    let received0: Vec<u64> = w.subs.iter().map(|s| s.ep.rtp_count).collect();
    let timeouts0 = w.core.stats().transport_timeouts;
    let sim = Duration::from_secs_f64(secs);
    let mut slices = Vec::with_capacity(SLICES);
    for _ in 0..SLICES {
        let s0 = w.core.stats();
        w.core_busy = Duration::ZERO;
        w.core_timer_busy = Duration::ZERO;
        w.run(sim / SLICES as u32);
        let s1 = w.core.stats();
        slices.push(Slice {
            rtp_in: s1.rtp_in - s0.rtp_in,
            rtp_out: s1.rtp_out - s0.rtp_out,
            core: w.core_busy,
            timers: w.core_timer_busy,
        });
    }
    let min_received = w
        .subs
        .iter()
        .zip(&received0)
        .map(|(s, r0)| s.ep.rtp_count - r0)
        .min()
        .unwrap_or(0);
    let timeouts = w.core.stats().transport_timeouts - timeouts0;
    Row {
        timer_wakeups: timeouts as f64 / (n as f64 + 1.0) / secs,
        sim,
        slices,
        wall: wall.elapsed(),
        min_received,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// µs per `create_transport` (what every join pays twice: a send and a recv transport).
fn create_transport_cost() -> f64 {
    let mut core = sfu::Core::new(server_addr(), server_addr());
    let now = Instant::now();
    let n = 200;
    let t0 = Instant::now();
    for i in 0..n {
        let dir = if i % 2 == 0 {
            sfu::Direction::Send
        } else {
            sfu::Direction::Recv
        };
        core.create_transport(ROUTER, dir, now)
            .expect("create_transport");
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    println!(
        "create_transport: {:.1} µs each (200 transports)",
        create_transport_cost()
    );
    let secs: Option<f64> = std::env::var("SFU_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let ns: Vec<usize> = std::env::var("SFU_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 50, 100]);
    if cfg!(debug_assertions) {
        println!("note: debug build; `cargo bench -p sfu` gives release figures");
    }
    println!("sfu::Core forwarding, simulated time: 1 publisher (VP8 30 fps, 3-4 pkts x 1100 B/frame; opus 50 pps x 120 B) -> N subscribers");
    println!(
        "{:>4} {:>5} {:>7} {:>8} {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>10} {:>7} {:>7}",
        "N",
        "sim s",
        "pkts in",
        "fwd pkts",
        "core ms",
        "timer ms",
        "µs/in pkt",
        "µs/fwd",
        "(min)",
        "µs/fwd rx",
        "wall s",
        "wakes/s"
    );
    for n in ns {
        let secs = secs.unwrap_or(10.0);
        let r = run(n, secs);
        let rtp_in: u64 = r.slices.iter().map(|s| s.rtp_in).sum();
        let rtp_out: u64 = r.slices.iter().map(|s| s.rtp_out).sum();
        let core: Duration = r.slices.iter().map(|s| s.core).sum();
        let timers: Duration = r.slices.iter().map(|s| s.timers).sum();
        let per: Vec<(f64, f64)> = r.slices.iter().map(|s| s.per_fwd(n)).collect();
        let total = median(per.iter().map(|p| p.0).collect());
        let min = per.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let rx = median(per.iter().map(|p| p.1).collect());
        println!(
            "{:>4} {:>5.1} {:>7} {:>8} {:>9.1} {:>9.1} | {:>10.2} {:>10.3} {:>10.3} | {:>10.3} {:>7.1} {:>7.1}",
            n,
            r.sim.as_secs_f64(),
            rtp_in,
            rtp_out,
            core.as_secs_f64() * 1e3,
            timers.as_secs_f64() * 1e3,
            total * n as f64,
            total,
            min,
            rx,
            r.wall.as_secs_f64(),
            r.timer_wakeups,
        );
        // Sanity: the Core forwarded, and every subscriber got, (nearly) everything the publisher sent.
        assert!(
            rtp_out >= rtp_in * n as u64 * 95 / 100,
            "forwarded {rtp_out} of {rtp_in} x {n}"
        );
        assert!(
            r.min_received >= rtp_in * 95 / 100,
            "a subscriber got {} of {rtp_in}",
            r.min_received
        );
    }
    println!("core ms: handle_receive + drain_dirty + poll_transmit (sum); timer ms: handle_timeout every 1 ms (sum).");
    println!("µs/fwd = (core + timers) / (pkts in x N), median of 10 slices (min: the best slice); µs/in pkt = µs/fwd x N;");
    println!("µs/fwd rx = the receive path alone (median). Forwarded = RTP packets written to subscribers (SRTP, RTCP incl.).");
    println!("wakes/s = str0m timer wakeups per transport per simulated second (its own schedule: feedback, NACK, TWCC,");
    println!("RTCP); timer ms / wakeups gives str0m's cost per wakeup — finding the due transports is a small part of it.");
}
