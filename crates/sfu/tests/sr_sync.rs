//! RTCP sender reports stay consistent for A/V sync: the publisher's video reaches the Core 150 ms later than its
//! audio (a slower path), yet the subscriber's sender reports map both streams' RTP times to the same capture
//! clock — because the Core stamps forwarded packets with the wallclock from the producer's own sender reports,
//! not with their arrival time (with arrival time the skew would be the full 150 ms).

mod common;

use common::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

const VIDEO_DELAY: Duration = Duration::from_millis(150);

/// Datagrams held back: (release time, source, bytes).
type Held = Rc<RefCell<VecDeque<(Instant, SocketAddr, Vec<u8>)>>>;

/// Capture time implied by the subscriber's SR mapping, minus the RTP time (seconds): equal for audio and video
/// when the two streams are in sync (the fake publisher starts both RTP clocks together).
fn sync_offset(pkts: &[&str0m::rtp::RtpPacket], clock: f64) -> f64 {
    let p = pkts
        .iter()
        .rev()
        .find(|p| p.last_sender_info.is_some())
        .expect("a packet after a sender report");
    let sr = p.last_sender_info.as_ref().expect("sender info");
    let diff = p.header.timestamp.wrapping_sub(sr.rtp_time.numer() as u32) as i32;
    let ntp = sr
        .ntp_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("ntp after epoch")
        .as_secs_f64()
        + f64::from(diff) / clock;
    ntp - f64::from(p.header.timestamp) / clock
}

#[test]
fn sender_reports_keep_audio_and_video_in_sync_across_uneven_paths() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    w.core.set_clock_base(w.now, SystemTime::now());
    let video_ssrc = w.pubs[0]
        .tracks
        .iter()
        .find(|t| t.kind == sfu::Kind::Video)
        .and_then(|t| t.rtp_parameters.encodings[0].ssrc)
        .expect("video ssrc");

    // Hold the publisher's video RTP (not its RTCP) for 150 ms on the way to the Core.
    let clock = Rc::new(RefCell::new(w.now));
    let held: Held = Rc::default();
    {
        let (clock, held) = (clock.clone(), held.clone());
        w.uplink = Some(Box::new(move |from, _to, d| match rtp_header(d) {
            Some((ssrc, _, _)) if ssrc == video_ssrc => {
                held.borrow_mut()
                    .push_back((*clock.borrow() + VIDEO_DELAY, from, d.to_vec()));
                false
            }
            _ => true,
        }));
    }
    let end = w.now + Duration::from_secs(12);
    while w.now < end {
        w.step();
        *clock.borrow_mut() = w.now;
        loop {
            let due = held.borrow().front().is_some_and(|(t, _, _)| *t <= w.now);
            if !due {
                break;
            }
            let Some((_, from, d)) = held.borrow_mut().pop_front() else {
                break;
            };
            w.core.handle_receive(w.now, from, &d);
        }
        w.pump();
    }

    let ac = pair.audio_consumer.as_ref().expect("audio consumer");
    let vc = pair.video_consumer.as_ref().expect("video consumer");
    let sub = &pair.world.subs[0];
    let audio = sub.rtp_of(ac);
    let video = sub.rtp_of(vc);
    assert!(
        audio.len() > 200 && video.len() > 400,
        "media flowed: {} / {}",
        audio.len(),
        video.len()
    );
    let skew = sync_offset(&audio, 48_000.0) - sync_offset(&video, 90_000.0);
    assert!(
        skew.abs() < 0.045,
        "audio/video skew in the subscriber's sender reports: {:.1} ms (video arrived {} ms late at the Core)",
        skew * 1000.0,
        VIDEO_DELAY.as_millis()
    );
}
