//! The forwarding path: a connected session built with the scenario-test harness (`crates/sfu/tests/common`, a real
//! ICE-lite + DTLS-SRTP handshake in memory on simulated time) — one publisher with audio and VP8 simulcast (3 rids),
//! subscriber 0 consuming both, subscriber 1 consuming the video — then the fuzz input drives the publisher's str0m
//! client: RTP the fuzzer chooses (stream/layer, sequence-number and timestamp jumps incl. wrap, marker, arbitrary
//! payloads or a VP8 descriptor template around fuzz bytes), so packets reach `Core::on_rtp` → `forward` decrypted by
//! the real SRTP stack, interleaved with time steps, consumer pause/resume, `set_consumer_preferred_layer`,
//! subscriber PLI/FIR and producer pause/resume.
//!
//! Input: byte 0 = flags (bit 0: pad every payload to 6 bytes and tag it with an 8-byte trailer — a packet id and a
//! per-session nonce — and check the invariants below), bytes 1-2 = the first sequence number (big-endian; stream i
//! starts at it + 1000·i, so a wrap is a few packets away), then operations `[op][arg]…` (`op % 8`): 0-2 send RTP
//! `[stream·flags][len]` + optional seq jump (i16) / ts jump (u32) + payload; 3 time step `[ms]` (≥ 200:
//! (ms − 199)·250 ms; at most 10 s per input); 4 consumer pause/resume; 5 preferred layer; 6 subscriber keyframe
//! request; 7 producer pause/resume.
//!
//! Checked invariants (besides "no panic", in the Core and in the clients' str0m, which refuse nothing the Core
//! sends): a paused consumer (or one of a paused producer) forwards nothing; with tags, every packet a subscriber
//! gets is one the publisher sent on a stream of the consumed producer, byte for byte except the VP8 PictureID and
//! TL0PICIDX; and between two packets of one stream that arrive back to back (no other layer in between, no pause
//! or resume), the rewrite offsets — sequence number, timestamp, PictureID, TL0PICIDX — stay the same.
//!
//! Pause/resume operations first deliver what is in flight (str0m sends written RTP on its next timeout), so the
//! offsets check knows which packets came before them.
//!
//! Set-up (four DTLS certificates, three handshakes, ~50 ms under the sanitizer: ~13 runs/s) dominates, so by default
//! one session serves 1000 inputs (~25-45 runs/s on a shared 2-core machine): each input starts with every consumer
//! and producer resumed and the preferred layers back at the top, the streams continue where they were (`first seq`
//! unused), and packets of earlier inputs are told apart by a per-session nonce in the tag. A crash may then depend
//! on earlier inputs; `SFU_FUZZ_FRESH_SESSION=1` gives every input a fresh session (deterministic replays).
//! The target prints to stderr (after 10, 100, then every 1000 inputs) how many inputs forwarded, and the Core's
//! `rtp_in` / `rtp_out`, which shows the forwarding path is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::vp8::Descriptor;
use sfu::{ConsumerInfo, Kind};
use sfu_fuzz::scenario::{World, ROUTER};
use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, Ssrc};

const MAX_OPS: usize = 400;
/// Inputs one session serves (unless `SFU_FUZZ_FRESH_SESSION` is set).
const REUSE_RUNS: u32 = 1000;
/// Simulated time one input may advance (each step runs every client's and the Core's timers).
const MAX_TIME: Duration = Duration::from_secs(10);

static INPUTS: AtomicU64 = AtomicU64::new(0);
static FORWARDING_INPUTS: AtomicU64 = AtomicU64::new(0);
static RTP_IN: AtomicU64 = AtomicU64::new(0);
static RTP_OUT: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static SETUP_NANOS: AtomicU64 = AtomicU64::new(0);

/// One RTP stream of the publisher: 0 audio, 1-3 the video rids r0-r2.
#[derive(Default)]
struct Stream {
    seq: u64,
    ts: u32,
    pid: u16,
    tl0: u8,
    frame_start: bool,
}

struct Sent {
    stream: usize,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

struct Consumer {
    sub: usize,
    info: ConsumerInfo,
    /// 0 audio, 1 video producer.
    producer: usize,
    paused: bool,
    /// Positions in the subscriber's received-RTP list where the Core may restart this consumer's offsets.
    marks: Vec<usize>,
    /// The forwarded count while paused.
    frozen: Option<u64>,
}

struct Session {
    w: World,
    producers: [String; 2],
    producer_paused: [bool; 2],
    consumers: Vec<Consumer>,
    streams: [Stream; 4],
    /// What this input sent; `sent[i]` carries tag `sent_base + i`.
    sent: Vec<Sent>,
    sent_base: u32,
    /// In every tag: packets of another session's (or an untagged input's) payloads are not taken for ours.
    nonce: u32,
    tagged: bool,
    /// Whether every packet a subscriber gets must carry this input's tag (a fresh session, tagged).
    strict: bool,
    end: Instant,
}

fn session(tagged: bool, first_seq: u16) -> Session {
    let mut w = World::new();
    // A coarser tick while connecting: fewer steps, same handshake.
    w.tick = Duration::from_millis(5);
    let p = w.add_publisher(ROUTER);
    w.pubs[p].auto = false;
    let s0 = w.add_subscriber(ROUTER);
    let s1 = w.add_subscriber(ROUTER);
    let audio = w.produce(p, Kind::Audio, false);
    let video = w.produce(p, Kind::Video, true);
    assert!(w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected), "publisher never connected");
    let a0 = w.consume_with(s0, &audio, true);
    let v0 = w.consume_with(s0, &video, true);
    let v1 = w.consume_with(s1, &video, true);
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.subs[s0].ep.connected && w.subs[s1].ep.connected),
        "subscribers never connected"
    );
    let mut consumers = Vec::new();
    for (sub, info, producer) in [(s0, a0, 0), (s0, v0, 1), (s1, v1, 1)] {
        w.resume(&info.id);
        consumers.push(Consumer { sub, info, producer, paused: false, marks: Vec::new(), frozen: None });
    }
    let streams = std::array::from_fn(|i| Stream {
        seq: u64::from(first_seq.wrapping_add(1000 * i as u16)),
        ts: 1000 * i as u32,
        pid: [32_700, 200, 16_000, 5][i],
        tl0: [250, 10, 128, 0][i],
        frame_start: true,
    });
    let end = w.now + MAX_TIME;
    Session {
        w,
        producers: [audio, video],
        producer_paused: [false; 2],
        consumers,
        streams,
        sent: Vec::new(),
        sent_base: 0,
        nonce: RandomState::new().hash_one(0u8) as u32,
        tagged,
        strict: tagged,
        end,
    }
}

/// The fuzz input, read front to back; `None` once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }
}

impl Session {
    fn send(&mut self, input: &mut Input) -> Option<()> {
        let flags = input.byte()?;
        let len = usize::from(input.byte()?);
        let stream = usize::from(flags & 3);
        let template = (flags >> 2) & 3;
        let marker = flags & 0x10 != 0;
        let st = &mut self.streams[stream];
        if flags & 0x20 != 0 {
            let jump = input.u16()? as i16;
            st.seq = st.seq.saturating_add_signed(i64::from(jump));
        } else {
            st.seq += 1;
        }
        if flags & 0x40 != 0 {
            st.ts = st.ts.wrapping_add(input.u32()?);
        } else if flags & 0x80 != 0 {
            st.ts = st.ts.wrapping_add(if stream == 0 { 960 } else { 3000 });
        }
        let mut payload = Vec::with_capacity(len + 10);
        if template == 1 || template == 2 {
            // Chrome's VP8 descriptor: X, S on a frame's first packet, I (15-bit PictureID), L (TL0PICIDX); then
            // the VP8 header byte whose P bit says keyframe (template 1) or not.
            payload.extend_from_slice(&[
                if st.frame_start { 0x90 } else { 0x80 },
                0xc0,
                0x80 | (st.pid >> 8) as u8,
                st.pid as u8,
                st.tl0,
                if template == 1 { 0x10 } else { 0x11 },
            ]);
        }
        payload.extend_from_slice(input.bytes(len));
        if marker {
            st.pid = (st.pid + 1) % 0x8000;
            st.tl0 = st.tl0.wrapping_add(1);
        }
        st.frame_start = marker;
        let (seq, ts) = (st.seq, st.ts);
        if self.tagged {
            // The VP8 descriptor takes at most 6 bytes: the rewriter must not reach into the tag (truncated
            // descriptors are left to untagged inputs).
            if payload.len() < 6 {
                payload.resize(6, 0);
            }
            let id = self.sent_base.wrapping_add(self.sent.len() as u32);
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&self.nonce.to_be_bytes());
            self.sent.push(Sent { stream, seq: seq as u16, ts, payload: payload.clone() });
        }
        let now = self.w.now;
        let p = &mut self.w.pubs[0];
        let track = &p.tracks[usize::from(stream != 0)];
        let rid = stream.checked_sub(1).and_then(|l| track.rids.get(l).copied());
        let (mid, pt) = (track.mid, track.pt);
        if let Some(tx) = p.ep.rtc.direct_api().stream_tx_by_mid(mid, rid) {
            let payload: Arc<[u8]> = payload.into();
            let mut write = RtpWrite::new(pt, SeqNo::from(seq), ts, now, payload).marker(marker).nackable(stream != 0);
            if stream == 0 {
                write = write.ext_vals(ExtensionValues {
                    audio_level: Some(-((len % 128) as i8)),
                    voice_activity: Some(marker),
                    ..ExtensionValues::default()
                });
            }
            tx.write_rtp(write);
        }
        p.ep.drain(now);
        self.w.pump();
        Some(())
    }

    fn advance(&mut self, b: u8) {
        let ms = if b < 200 { u64::from(b) } else { u64::from(b - 199) * 250 };
        let end = (self.w.now + Duration::from_millis(ms)).min(self.end);
        while self.w.now < end {
            // Coarse ticks: the timers fire late but fire (time steps were half the cost at 50 ms).
            self.w.tick = (end - self.w.now).min(Duration::from_millis(200));
            self.w.step();
        }
    }

    /// Delivers what is in flight, without letting time pass: str0m sends written RTP on its next timeout (the null
    /// pacer's snapshot), so a packet forwarded before an operation can reach the subscriber after it.
    fn flush(&mut self) {
        let tick = self.w.tick;
        self.w.tick = Duration::ZERO;
        let count = |s: &Self| {
            let st = s.w.core.stats();
            let got: u64 = s.w.subs.iter().map(|x| x.ep.rtp_count).sum();
            (st.rtp_in, st.rtp_out, got)
        };
        for _ in 0..16 {
            let before = count(self);
            self.w.step();
            if count(self) == before {
                break;
            }
        }
        self.w.tick = tick;
    }

    /// From here on (after a `flush`), consumer `i` may restart its offsets.
    fn mark(&mut self, i: usize) {
        let c = &mut self.consumers[i];
        c.marks.push(self.w.subs[c.sub].ep.rtp.len());
    }

    fn op(&mut self, input: &mut Input) -> Option<()> {
        let op = input.byte()?;
        match op % 8 {
            0..=2 => self.send(input)?,
            3 => self.advance(input.byte()?),
            4 => {
                let b = input.byte()?;
                let i = usize::from(b & 0x7f) % self.consumers.len();
                let paused = b & 0x80 != 0;
                let now = self.w.now;
                self.flush();
                self.mark(i);
                let c = &mut self.consumers[i];
                c.paused = paused;
                self.w.core.set_consumer_paused(&c.info.id, paused, now).expect("consumer exists");
                self.w.pump();
            }
            5 => {
                let b = input.byte()?;
                let i = usize::from(b & 0x0f) % self.consumers.len();
                let layer = usize::from(b >> 4) % 4;
                let now = self.w.now;
                let id = &self.consumers[i].info.id;
                self.w.core.set_consumer_preferred_layer(id, layer, now).expect("consumer exists");
                self.w.pump();
            }
            6 => {
                let b = input.byte()?;
                let c = &self.consumers[usize::from(b & 0x7f) % self.consumers.len()];
                let ssrc = c.info.rtp_parameters.encodings[0].ssrc.expect("ssrc");
                let kind = if b & 0x80 != 0 { KeyframeRequestKind::Fir } else { KeyframeRequestKind::Pli };
                let now = self.w.now;
                let ep = &mut self.w.subs[c.sub].ep;
                if let Some(rx) = ep.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
                    rx.request_keyframe(kind);
                }
                ep.drain(now);
                self.w.pump();
            }
            _ => {
                let b = input.byte()?;
                let p = usize::from(b & 1);
                let paused = b & 0x80 != 0;
                self.flush();
                for i in 0..self.consumers.len() {
                    if self.consumers[i].producer == p {
                        self.mark(i);
                    }
                }
                self.producer_paused[p] = paused;
                let now = self.w.now;
                self.w.core.set_producer_paused(&self.producers[p], paused, now).expect("producer exists");
                self.w.pump();
            }
        }
        self.check_paused();
        Some(())
    }

    /// A paused consumer, or one whose producer is paused, forwards nothing.
    fn check_paused(&mut self) {
        for c in &mut self.consumers {
            let n = self.w.core.consumer_packets(&c.info.id).expect("consumer");
            if c.paused || self.producer_paused[c.producer] {
                let frozen = *c.frozen.get_or_insert(n);
                assert_eq!(n, frozen, "paused consumer {} forwarded", c.info.id);
            } else {
                c.frozen = None;
            }
        }
    }

    /// With tags: what the subscribers got is what the publisher sent, with steady rewrite offsets.
    fn check_received(&self) {
        for c in &self.consumers {
            let ssrc = c.info.rtp_parameters.encodings[0].ssrc.expect("ssrc");
            let rtp = &self.w.subs[c.sub].ep.rtp;
            // (position, stream, seq offset, ts offset, pid offset (mod 2^15 or 2^7), tl0 offset)
            let mut prev: Option<(usize, usize, u16, u32, Option<(u16, bool)>, Option<u8>)> = None;
            for (pos, p) in rtp.iter().enumerate() {
                if *p.header.ssrc != ssrc {
                    continue;
                }
                let got = &p.payload[..];
                let tag = got.len().checked_sub(8).map(|at| {
                    let word = |i: usize| u32::from_be_bytes([got[i], got[i + 1], got[i + 2], got[i + 3]]);
                    (word(at), word(at + 4))
                });
                let sent = tag
                    .filter(|(_, nonce)| *nonce == self.nonce)
                    .and_then(|(id, _)| self.sent.get(id.wrapping_sub(self.sent_base) as usize));
                let Some(sent) = sent else {
                    // A reused session: a late packet of an earlier input (a retransmission, say).
                    assert!(!self.strict, "consumer {} got a packet never sent", c.info.id);
                    prev = None;
                    continue;
                };
                assert_eq!(usize::from(sent.stream != 0), c.producer, "a packet of another producer");
                assert_eq!(got.len(), sent.payload.len(), "payload length changed");
                let (mut a, mut b) = (got.to_vec(), sent.payload.clone());
                let (mut pid, mut tl0) = (None, None);
                if c.producer == 1 {
                    if let Some(d) = Descriptor::parse(&sent.payload) {
                        assert_eq!(Descriptor::parse(got), Some(d), "descriptor layout changed");
                        if let (Some(o), Some(i)) = (d.picture_id(got), d.picture_id(&sent.payload)) {
                            let m = d.picture_id_modulus();
                            pid = Some((o.wrapping_sub(i) % m, m == 0x80));
                            d.set_picture_id(&mut a, 0);
                            d.set_picture_id(&mut b, 0);
                        }
                        if let (Some(o), Some(i)) = (d.tl0_pic_idx(got), d.tl0_pic_idx(&sent.payload)) {
                            tl0 = Some(o.wrapping_sub(i));
                            d.set_tl0_pic_idx(&mut a, 0);
                            d.set_tl0_pic_idx(&mut b, 0);
                        }
                    }
                }
                assert_eq!(a, b, "payload changed beyond the VP8 ids");
                let seq_off = p.header.sequence_number.wrapping_sub(sent.seq);
                let ts_off = p.header.timestamp.wrapping_sub(sent.ts);
                if let Some((ppos, pstream, pseq, pts, ppid, ptl0)) = prev {
                    let restarted = c.marks.iter().any(|&m| m > ppos && m <= pos);
                    if pstream == sent.stream && !restarted {
                        assert_eq!(seq_off, pseq, "{}: sequence offset moved within a layer", c.info.id);
                        assert_eq!(ts_off, pts, "{}: timestamp offset moved within a layer", c.info.id);
                        if let (Some((x, short_x)), Some((y, short_y))) = (pid, ppid) {
                            let m = if short_x || short_y { 0x80 } else { 0x8000 };
                            assert_eq!(x % m, y % m, "{}: PictureID offset moved within a layer", c.info.id);
                        }
                        if let (Some(x), Some(y)) = (tl0, ptl0) {
                            assert_eq!(x, y, "{}: TL0PICIDX offset moved within a layer", c.info.id);
                        }
                    }
                }
                // An offset seen once stays the reference of this run (the next packet compares to this one).
                let keep_pid = pid.or(prev.filter(|x| x.1 == sent.stream).and_then(|x| x.4));
                let keep_tl0 = tl0.or(prev.filter(|x| x.1 == sent.stream).and_then(|x| x.5));
                prev = Some((pos, sent.stream, seq_off, ts_off, keep_pid, keep_tl0));
            }
        }
    }
}

impl Session {
    /// A reused session before the next input: everything resumed, preferred layers back at the top, the tags of
    /// earlier inputs retired.
    fn reset(&mut self, tagged: bool) {
        self.flush();
        let now = self.w.now;
        for (p, paused) in self.producers.iter().zip(&mut self.producer_paused) {
            self.w.core.set_producer_paused(p, false, now).expect("producer exists");
            *paused = false;
        }
        for c in &mut self.consumers {
            let core = &mut self.w.core;
            core.set_consumer_paused(&c.info.id, false, now).expect("consumer exists");
            core.set_consumer_preferred_layer(&c.info.id, 2, now).expect("consumer exists");
            c.paused = false;
            c.frozen = None;
            c.marks = vec![0];
        }
        self.flush();
        for s in &mut self.w.subs {
            s.ep.rtp.clear();
        }
        self.sent_base = self.sent_base.wrapping_add(self.sent.len() as u32);
        self.sent.clear();
        self.tagged = tagged;
        self.strict = false;
        self.end = self.w.now + MAX_TIME;
    }
}

fn fresh() -> bool {
    static FRESH: OnceLock<bool> = OnceLock::new();
    *FRESH.get_or_init(|| std::env::var_os("SFU_FUZZ_FRESH_SESSION").is_some_and(|v| v != "0"))
}

thread_local! {
    static KEPT: RefCell<Option<(Session, u32)>> = const { RefCell::new(None) };
}

fn report() {
    let n = INPUTS.fetch_add(1, Relaxed) + 1;
    if n == 10 || n == 100 || n % 1000 == 0 {
        let setup_ms = SETUP_NANOS.load(Relaxed) as f64 / n as f64 / 1e6;
        eprintln!(
            "forward: {n} inputs, {} forwarded; Core rtp_in {} rtp_out {}; subscribers received {}; set-up {setup_ms:.1} ms/input",
            FORWARDING_INPUTS.load(Relaxed),
            RTP_IN.load(Relaxed),
            RTP_OUT.load(Relaxed),
            RECEIVED.load(Relaxed),
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(flags), Some(first_seq)) = (input.byte(), input.u16()) else {
        return;
    };
    let tagged = flags & 1 == 1;
    if fresh() {
        let t0 = Instant::now();
        let mut s = session(tagged, first_seq);
        SETUP_NANOS.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        run(&mut s, &mut input);
        return;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let t0 = Instant::now();
        match kept.as_mut() {
            Some((s, runs)) if *runs < REUSE_RUNS => {
                *runs += 1;
                s.reset(tagged);
            }
            _ => *kept = Some((session(tagged, first_seq), 1)),
        }
        SETUP_NANOS.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        if let Some((s, _)) = kept.as_mut() {
            run(s, &mut input);
        }
    });
});

fn run(s: &mut Session, input: &mut Input) {
    let base = s.w.core.stats();
    let received: Vec<u64> = s.w.subs.iter().map(|x| x.ep.rtp_count).collect();
    for _ in 0..MAX_OPS {
        if s.op(input).is_none() {
            break;
        }
    }
    // Let retransmissions, reports and keyframe requests play out.
    s.advance(100);
    s.check_paused();
    if s.tagged {
        s.check_received();
    }
    let stats = s.w.core.stats();
    RTP_IN.fetch_add(stats.rtp_in - base.rtp_in, Relaxed);
    RTP_OUT.fetch_add(stats.rtp_out - base.rtp_out, Relaxed);
    if stats.rtp_out > base.rtp_out {
        FORWARDING_INPUTS.fetch_add(1, Relaxed);
    }
    let got: u64 = s.w.subs.iter().zip(received).map(|(x, r)| x.ep.rtp_count - r).sum();
    RECEIVED.fetch_add(got, Relaxed);
    report();
}
