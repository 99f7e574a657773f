//! The recorder's virtual subscriber (issue 10; DESIGN §7): a tap on one producer, inside the core. Per packet it
//! picks the layer to record (the best one that flows: simulcast producers are recorded from their highest live
//! layer, switching on a keyframe), and hands the packet to a recording thread through a bounded queue with
//! `try_send` — a full queue drops the packet and counts it; forwarding is never delayed. Keyframes are asked for
//! (through the core's per-stream rate limit, shared with consumers) when the recording starts, when the recording
//! thread saw loss or a resume (`need_keyframe`), and when the layer changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One RTP packet of a recorded producer.
#[derive(Clone, Debug)]
pub struct RecordedPacket {
    /// The recorder's track number.
    pub track: u32,
    /// Bumped on every layer change: the recording thread starts a fresh reorder buffer and waits for the
    /// keyframe the switch was made on.
    pub epoch: u32,
    /// Extended sequence number (str0m's, per SSRC).
    pub seq: u64,
    pub rtp_ts: u32,
    pub marker: bool,
    pub keyframe: bool,
    /// Capture time, µs since the Unix epoch: from the producer's RTCP sender reports (its NTP↔RTP mapping), so
    /// audio and video of one sender line up; the arrival time until the first report.
    pub wallclock_us: i64,
    pub payload: Arc<[u8]>,
}

/// What the queue carries.
#[derive(Clone, Debug)]
pub enum RecordMsg {
    Packet(RecordedPacket),
    /// The producer was closed (or its recording detached).
    End {
        track: u32,
    },
}

/// The recorder's side of a tap: where packets go and the flags it shares with the recording thread.
#[derive(Clone, Debug)]
pub struct RecordSink {
    pub track: u32,
    pub tx: SyncSender<RecordMsg>,
    /// Set by the recording thread (loss, resume); the tap asks for a keyframe on the next packet and clears it.
    pub need_keyframe: Arc<AtomicBool>,
    /// Packets dropped because the queue was full (exported as a metric by the recorder).
    pub dropped: Arc<AtomicU64>,
}

/// The codec a recorded producer sends (the router's: what the recorder writes without transcoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCodec {
    /// e.g. `video/VP8`, `audio/opus`
    pub mime_type: String,
    pub clock_rate: u32,
    pub channels: u8,
}

/// A layer that carried nothing for this long is not "available".
const LAYER_QUIET: Duration = Duration::from_millis(1500);

pub(crate) struct Tap {
    pub(crate) sink: RecordSink,
    pub(crate) video: bool,
    /// The layer being recorded (None until a keyframe started it).
    pub(crate) current: Option<usize>,
    pub(crate) epoch: u32,
    /// The queue went away (the recording stopped): the core removes the tap.
    pub(crate) gone: bool,
}

/// What the tap decided for one packet.
pub(crate) struct TapDecision {
    /// Ask this layer for a keyframe.
    pub(crate) keyframe_for: Option<usize>,
}

impl Tap {
    pub(crate) fn new(sink: RecordSink, video: bool) -> Self {
        Self {
            sink,
            video,
            current: None,
            epoch: 0,
            gone: false,
        }
    }

    /// The best layer that flows: the highest with a packet within `LAYER_QUIET`.
    fn best(last_packet: &[Option<Instant>], now: Instant) -> Option<usize> {
        last_packet
            .iter()
            .enumerate()
            .rev()
            .find(|(_, t)| t.is_some_and(|t| now.saturating_duration_since(t) <= LAYER_QUIET))
            .map(|(i, _)| i)
    }

    /// Handles one packet of `layer`; sends it on when it belongs to the recorded layer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_packet(
        &mut self,
        layer: usize,
        keyframe: bool,
        last_packet: &[Option<Instant>],
        now: Instant,
        seq: u64,
        rtp_ts: u32,
        marker: bool,
        wallclock_us: i64,
        payload: &Arc<[u8]>,
    ) -> TapDecision {
        let mut decision = TapDecision { keyframe_for: None };
        if self.video {
            let best = Self::best(last_packet, now).unwrap_or(layer);
            if self.sink.need_keyframe.swap(false, Ordering::Relaxed) {
                decision.keyframe_for = Some(self.current.unwrap_or(best));
            }
            match self.current {
                Some(cur) if cur == layer => {
                    if best != cur {
                        // A better layer came up, or ours went quiet: ask the best one for a keyframe.
                        decision.keyframe_for = Some(best);
                    }
                }
                _ if layer == best && keyframe => {
                    // Start, or switch, on a keyframe of the best layer.
                    self.current = Some(layer);
                    self.epoch = self.epoch.wrapping_add(1);
                }
                None => {
                    decision.keyframe_for = Some(best);
                    return decision;
                }
                Some(_) => {
                    if layer == best {
                        // Our layer is no longer the best (it went quiet, or a better one came up).
                        decision.keyframe_for = Some(best);
                    }
                    return decision;
                }
            }
        } else {
            self.current = Some(layer);
        }
        let msg = RecordMsg::Packet(RecordedPacket {
            track: self.sink.track,
            epoch: self.epoch,
            seq,
            rtp_ts,
            marker,
            keyframe,
            wallclock_us,
            payload: payload.clone(),
        });
        match self.sink.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.sink.dropped.fetch_add(1, Ordering::Relaxed);
                // What follows cannot be decoded without a new keyframe.
                if self.video {
                    self.sink.need_keyframe.store(true, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Disconnected(_)) => self.gone = true,
        }
        decision
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.sink.tx.try_send(RecordMsg::End {
            track: self.sink.track,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(cap: usize) -> (RecordSink, std::sync::mpsc::Receiver<RecordMsg>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(cap);
        (
            RecordSink {
                track: 7,
                tx,
                need_keyframe: Arc::default(),
                dropped: Arc::default(),
            },
            rx,
        )
    }

    fn packets(rx: &std::sync::mpsc::Receiver<RecordMsg>) -> Vec<(u32, u64)> {
        rx.try_iter()
            .filter_map(|m| match m {
                RecordMsg::Packet(p) => Some((p.epoch, p.seq)),
                RecordMsg::End { .. } => None,
            })
            .collect()
    }

    #[test]
    fn video_starts_on_a_keyframe_of_the_best_layer_and_moves_when_it_goes_quiet() {
        let (s, rx) = sink(64);
        let mut tap = Tap::new(s, true);
        let t0 = Instant::now();
        let both = [Some(t0), Some(t0)];
        let p: Arc<[u8]> = Arc::from(&b"x"[..]);
        // a delta frame of layer 1: not recorded, a keyframe of layer 1 is asked for
        let d = tap.on_packet(1, false, &both, t0, 1, 0, false, 0, &p);
        assert_eq!(d.keyframe_for, Some(1));
        // a keyframe of layer 0 while layer 1 flows: still waiting for the best
        tap.on_packet(0, true, &both, t0, 1, 0, false, 0, &p);
        // keyframe of layer 1: recording starts
        tap.on_packet(1, true, &both, t0, 2, 0, true, 0, &p);
        tap.on_packet(1, false, &both, t0, 3, 0, true, 0, &p);
        tap.on_packet(0, false, &both, t0, 2, 0, true, 0, &p);
        // layer 1 goes quiet: layer 0 is asked for a keyframe and taken on it
        let later = t0 + Duration::from_secs(2);
        let only0 = [Some(later), Some(t0)];
        let d = tap.on_packet(0, false, &only0, later, 3, 0, true, 0, &p);
        assert_eq!(
            d.keyframe_for,
            Some(0),
            "not recorded (no keyframe); one is asked for"
        );
        let d = tap.on_packet(0, true, &only0, later, 4, 0, true, 0, &p);
        assert_eq!(d.keyframe_for, None);
        tap.on_packet(0, false, &only0, later, 5, 0, true, 0, &p);
        assert_eq!(packets(&rx), vec![(1, 2), (1, 3), (2, 4), (2, 5)]);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_asks_for_a_keyframe() {
        let (s, rx) = sink(1);
        let (dropped, need) = (s.dropped.clone(), s.need_keyframe.clone());
        let mut tap = Tap::new(s, true);
        let t0 = Instant::now();
        let one = [Some(t0)];
        let p: Arc<[u8]> = Arc::from(&b"x"[..]);
        tap.on_packet(0, true, &one, t0, 1, 0, false, 0, &p);
        tap.on_packet(0, false, &one, t0, 2, 0, false, 0, &p);
        tap.on_packet(0, false, &one, t0, 3, 0, false, 0, &p);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert!(need.load(Ordering::Relaxed));
        let d = tap.on_packet(0, false, &one, t0, 4, 0, false, 0, &p);
        assert_eq!(
            d.keyframe_for,
            Some(0),
            "the flag turns into a keyframe request"
        );
        assert_eq!(packets(&rx), vec![(1, 1)]);
        drop(rx);
        tap.on_packet(0, false, &one, t0, 5, 0, false, 0, &p);
        assert!(tap.gone, "a stopped recording detaches the tap");
    }
}
