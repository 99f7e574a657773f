//! The media load phase (`--media-scenario`): bot participants that speak our Socket.IO signaling and
//! mediasoup-client's flow, with real ICE-lite / DTLS-SRTP over UDP on loopback (str0m as the client stack, one
//! UDP socket and one driver task per bot transport).
//!
//! - A publisher adds sendonly m-lines to its own str0m offer (Chrome's numbering, VP8 simulcast r0..r2), signals
//!   the `rtpParameters` read from that offer (`produce` with `appData.source`), and accepts the answer
//!   mediasoup-client's RemoteSdp builds from the transport parameters (`sfu::client_sdp`). It sends Opus-sized
//!   packets every 20 ms and VP8 frames at 30 fps on three layers (~150 kbps / 500 kbps / 1.5 Mbps, keyframes 5×
//!   larger, a VP8 payload descriptor with the keyframe bit), a keyframe when a PLI/FIR arrives; str0m answers
//!   NACKs from its RTX buffer and sends sender reports.
//! - A subscriber consumes every `new-producer` (`consume` → rebuilds the remote offer from `subscribed.rtpParameters`
//!   and the transport's ICE/DTLS parameters, answers it, `connect-transport` the first time, `resume-consumer`);
//!   str0m sends receiver reports, NACKs, PLIs and TWCC feedback. Every RTP packet is counted per SSRC (loss from
//!   the extended sequence numbers, RFC 3550 interarrival jitter).
//!
//! Each scenario steps its size up (`--media-steps`), and per step: set-up, warm-up, a measurement window, teardown.

use crate::server;
use crate::sio::{classify, Conn, Packet};
use crate::soak::request;
use serde_json::{json, Value};
use sfu::client_sdp::{
    browser_config, device_caps, dtls_parameters, publisher_answer, send_rtp_parameters,
    subscriber_offer, OfferedConsumer,
};
use sfu::{Kind, RtpParameters};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{
    Direction as MediaDirection, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{watch, Notify, Semaphore};

/// Simulcast layer bitrates (r0, r1, r2), bits per second, at 30 fps.
const LAYER_BPS: [u32; 3] = [150_000, 500_000, 1_500_000];
/// A keyframe is this many times a delta frame of its layer.
const KEYFRAME_FACTOR: u32 = 5;
/// Largest RTP payload written.
const MAX_PAYLOAD: usize = 1100;
/// An Opus packet of ~32 kbps.
const OPUS_BYTES: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 1 publisher → N subscribers.
    Fanout,
    /// N meetings of 10, everyone publishes and subscribes to everyone.
    Meeting10,
    /// N meetings of 5, everyone publishes and subscribes to everyone.
    Meetings5,
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Scenario, String> {
        match s {
            "fanout" => Ok(Scenario::Fanout),
            "meeting10" => Ok(Scenario::Meeting10),
            "meetings5" => Ok(Scenario::Meetings5),
            _ => Err(format!(
                "unknown media scenario {s} (fanout, meeting10, meetings5)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Meeting10 => "meeting10",
            Scenario::Meetings5 => "meetings5",
        }
    }
    /// What a step's number counts.
    pub fn unit(self) -> &'static str {
        match self {
            Scenario::Fanout => "subscribers",
            Scenario::Meeting10 | Scenario::Meetings5 => "meetings",
        }
    }
    pub fn default_steps(self) -> Vec<usize> {
        match self {
            Scenario::Fanout => vec![10, 50, 100, 200, 400],
            Scenario::Meeting10 => vec![1, 2, 4, 8],
            Scenario::Meetings5 => vec![2, 5, 10, 20, 40],
        }
    }
    /// (meetings, participants per meeting) of a step.
    fn layout(self, n: usize) -> (usize, usize) {
        match self {
            Scenario::Fanout => (1, n + 1),
            Scenario::Meeting10 => (n, 10),
            Scenario::Meetings5 => (n, 5),
        }
    }
}

pub struct MediaRun {
    pub addr: Arc<str>,
    pub pid: u32,
    pub minter: Arc<server::Minter>,
    pub scenario: Scenario,
    pub steps: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
    pub setup_timeout: Duration,
    pub max_loss_pct: f64,
    pub max_worker_cpu_pct: f64,
    pub concurrency: usize,
    /// Record every meeting of the scenario (`--media-record`): a second session of each meeting's host starts
    /// `recording:start` once the bots are set up, so the figures include the recorder's cost.
    pub record: bool,
}

/// One step's figures.
#[derive(Clone, Debug, Default)]
pub struct StepFigures {
    pub n: usize,
    pub bots: usize,
    pub ready: usize,
    pub setup_secs: f64,
    pub transports: u64,
    pub consumers: u64,
    pub secs: f64,
    pub sent_pps: f64,
    pub fwd_pps: f64,
    pub server_cpu_pct: f64,
    pub us_per_fwd: f64,
    /// (thread name, % of one core)
    pub workers: Vec<(String, f64)>,
    pub loss_pct: f64,
    pub jitter_audio_ms: f64,
    pub jitter_video_ms: f64,
    pub kb_per_transport: f64,
    pub rss_mb: f64,
    pub bot_cpu_pct: f64,
    pub keyframe_requests: u64,
    /// Datagrams the kernel dropped in the window at the server's media sockets and at the bots' sockets.
    pub udp_drops_server: u64,
    pub udp_drops_bots: u64,
    pub errors: Vec<String>,
    /// Why this step counts as saturated, if it does.
    pub saturated: Option<String>,
}

// ---- one bot transport: a str0m Rtc on its own UDP socket

struct Track {
    kind: Kind,
    mid: Mid,
    rids: Vec<Option<Rid>>,
    pt: Pt,
    seq: Vec<u64>,
    frame: u32,
    /// Per layer: a keyframe is due (at the start, and after a PLI/FIR for that layer).
    keyframe_pending: Vec<bool>,
}

struct RxStream {
    kind: Kind,
    received: u64,
    max_seq: u64,
    last: Option<(Instant, u32)>,
    /// RFC 3550 interarrival jitter, seconds.
    jitter: f64,
}

struct PcState {
    rtc: Rtc,
    rtc_deadline: Instant,
    connected: bool,
    error: Option<String>,
    index: usize,
    /// Publisher side.
    tracks: Vec<Track>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    answer_version: u64,
    sent_packets: u64,
    keyframe_requests: u64,
    /// Subscriber side: consumers as signaled, and what arrived per SSRC.
    consumers: Vec<(String, Kind, RtpParameters)>,
    ssrc_kind: HashMap<u32, Kind>,
    rx: HashMap<u32, RxStream>,
    offer_version: u64,
    /// The server's media port (from the transport's ICE candidate).
    server_port: Option<u16>,
    local_port: u16,
}

type Pc = Arc<Mutex<PcState>>;

fn lock(pc: &Pc) -> std::sync::MutexGuard<'_, PcState> {
    pc.lock().unwrap_or_else(|e| e.into_inner())
}

impl PcState {
    fn new(local: SocketAddr, index: usize) -> Result<Self, String> {
        let now = Instant::now();
        let mut rtc = browser_config().build(now);
        rtc.add_local_candidate(
            Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?,
        );
        Ok(PcState {
            rtc,
            rtc_deadline: now,
            connected: false,
            error: None,
            index,
            tracks: Vec::new(),
            next_audio: None,
            next_video: None,
            answer_version: 0,
            sent_packets: 0,
            keyframe_requests: 0,
            consumers: Vec::new(),
            ssrc_kind: HashMap::new(),
            rx: HashMap::new(),
            offer_version: 1,
            server_port: None,
            local_port: local.port(),
        })
    }

    /// Everything str0m has to say, until its next timeout.
    fn drain(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => out.push((t.destination, t.contents.to_vec())),
                Ok(Output::Timeout(t)) => {
                    self.rtc_deadline = t;
                    return;
                }
                Ok(Output::Event(e)) => match e {
                    Event::RtpPacket(p) => {
                        let ssrc = *p.header.ssrc;
                        let kind = self.ssrc_kind.get(&ssrc).copied().unwrap_or(Kind::Video);
                        let clock = if kind == Kind::Audio {
                            48_000.0
                        } else {
                            90_000.0
                        };
                        let s = self.rx.entry(ssrc).or_insert(RxStream {
                            kind,
                            received: 0,
                            max_seq: 0,
                            last: None,
                            jitter: 0.0,
                        });
                        s.received += 1;
                        s.max_seq = s.max_seq.max(*p.seq_no);
                        let ts = p.header.timestamp;
                        if let Some((at, last_ts)) = s.last {
                            let arrival = p.timestamp.saturating_duration_since(at).as_secs_f64();
                            let media = f64::from(ts.wrapping_sub(last_ts) as i32) / clock;
                            let d = (arrival - media).abs();
                            s.jitter += (d - s.jitter) / 16.0;
                        }
                        s.last = Some((p.timestamp, ts));
                    }
                    Event::KeyframeRequest(r) => {
                        self.keyframe_requests += 1;
                        if let Some(t) = self.tracks.iter_mut().find(|t| t.mid == r.mid) {
                            for (l, rid) in t.rids.iter().enumerate() {
                                if r.rid.is_none() || *rid == r.rid {
                                    t.keyframe_pending[l] = true;
                                }
                            }
                        }
                    }
                    Event::Connected => self.connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.error = Some("ICE disconnected".to_owned());
                    }
                    _ => {}
                },
                Err(e) => {
                    self.error = Some(format!("str0m: {e}"));
                    self.rtc_deadline = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }

    /// The publisher's media clock: audio every 20 ms, a video frame every 33.3 ms, once connected.
    fn media(&mut self, now: Instant) {
        if !self.connected || self.tracks.is_empty() || self.error.is_some() {
            return;
        }
        let due = *self.next_audio.get_or_insert(now);
        if due <= now {
            self.next_audio =
                Some(due.max(now - Duration::from_millis(100)) + Duration::from_millis(20));
            self.send_audio(now);
        }
        let due = *self.next_video.get_or_insert(now);
        if due <= now {
            self.next_video =
                Some(due.max(now - Duration::from_millis(100)) + Duration::from_micros(33_333));
            self.send_video(now);
        }
    }

    fn media_due(&self) -> Option<Instant> {
        if !self.connected || self.tracks.is_empty() {
            return None;
        }
        match (self.next_audio, self.next_video) {
            (Some(a), Some(v)) => Some(a.min(v)),
            (a, v) => a.or(v),
        }
    }

    fn send_audio(&mut self, now: Instant) {
        let index = self.index;
        for t in self.tracks.iter_mut().filter(|t| t.kind == Kind::Audio) {
            let seq = t.seq[0];
            t.seq[0] += 1;
            let mut payload = vec![0x5Au8; OPUS_BYTES];
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            payload[8] = index as u8;
            let ts = (seq as u32).wrapping_mul(960);
            if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(t.mid, None) {
                let ext = ExtensionValues {
                    audio_level: Some(-30 - (seq % 20) as i8),
                    voice_activity: Some(true),
                    ..ExtensionValues::default()
                };
                tx.write_rtp(
                    RtpWrite::new(t.pt, SeqNo::from(seq), ts, now, Arc::<[u8]>::from(payload))
                        .marker(seq == 1)
                        .ext_vals(ext),
                );
                self.sent_packets += 1;
            }
        }
    }

    fn send_video(&mut self, now: Instant) {
        for t in self.tracks.iter_mut().filter(|t| t.kind == Kind::Video) {
            let ts = t.frame.wrapping_mul(3000);
            let layers = t.seq.len();
            for layer in 0..layers {
                let keyframe = std::mem::take(&mut t.keyframe_pending[layer]);
                let bps = LAYER_BPS[(3 - layers + layer).min(2)];
                // ±20 % around the layer's mean frame size, a deterministic wobble.
                let wobble = 80 + (t.frame.wrapping_mul(2_654_435_761) >> 27) % 41;
                let mut bytes = (bps / 8 / 30 * wobble / 100) as usize;
                if keyframe {
                    bytes *= KEYFRAME_FACTOR as usize;
                }
                let n = bytes.div_ceil(MAX_PAYLOAD).max(1);
                let size = (bytes / n).max(16);
                let (pid, tl0) = vp8_ids(layer, t.frame);
                for k in 0..n {
                    let seq = t.seq[layer];
                    t.seq[layer] += 1;
                    let mut payload = vec![t.frame as u8; size];
                    // VP8 payload descriptor: X, S on the first packet, PID 0; I (15-bit PictureID), L (TL0PICIDX);
                    // then the VP8 payload header's first byte, P = 0 on a keyframe.
                    payload[0] = if k == 0 { 0x90 } else { 0x80 };
                    payload[1] = 0xc0;
                    payload[2] = 0x80 | (pid >> 8) as u8;
                    payload[3] = pid as u8;
                    payload[4] = tl0;
                    payload[5] = if keyframe { 0x00 } else { 0x01 };
                    if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(t.mid, t.rids[layer]) {
                        tx.write_rtp(
                            RtpWrite::new(
                                t.pt,
                                SeqNo::from(seq),
                                ts,
                                now,
                                Arc::<[u8]>::from(payload),
                            )
                            .marker(k + 1 == n)
                            .nackable(true),
                        );
                        self.sent_packets += 1;
                    }
                }
            }
            t.frame += 1;
        }
    }

    /// mediasoup-client's `transport.produce()`: a new sendonly m-line, the offer, `rtpParameters` from it, the
    /// answer from the transport parameters. Returns the `rtpParameters` and the `dtlsParameters` (for `connect`).
    fn add_send_track(
        &mut self,
        params: &Value,
        kind: Kind,
        simulcast: bool,
        ip: IpAddr,
    ) -> Result<(Value, Value), String> {
        let mut api = self.rtc.sdp_api();
        let layers = simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in ["r0", "r1", "r2"] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let n = self.tracks.len();
        let mid = api.add_media(
            if kind == Kind::Audio {
                MediaKind::Audio
            } else {
                MediaKind::Video
            },
            MediaDirection::SendOnly,
            Some(format!("stream{}", self.index)),
            Some(format!("track{}-{n}", self.index)),
            layers,
        );
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        let offer_text = offer.to_sdp_string();
        let (_, sections) = sfu::client_sdp::parse_sdp(&offer_text);
        let section = sections
            .iter()
            .find(|s| s.mid() == Some(&*mid.to_string()))
            .ok_or("the offer lacks the new m-section")?;
        let rtp = send_rtp_parameters(section, simulcast);
        self.answer_version += 1;
        let answer = publisher_answer(params, self.answer_version, &offer_text, ip);
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| format!("answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer refused: {e}"))?;
        let pt = rtp
            .pointer("/codecs/0/payloadType")
            .and_then(Value::as_u64)
            .ok_or("no codec chosen")? as u8;
        let rids: Vec<Option<Rid>> = if simulcast {
            ["r0", "r1", "r2"]
                .iter()
                .map(|r| Some(Rid::from(*r)))
                .collect()
        } else {
            vec![None]
        };
        self.tracks.push(Track {
            kind,
            mid,
            seq: vec![1; rids.len()],
            keyframe_pending: vec![true; rids.len()],
            rids,
            pt: Pt::from(pt),
            frame: 0,
        });
        self.rtc_deadline = Instant::now();
        Ok((rtp, dtls_parameters(&offer_text)))
    }

    /// mediasoup-client's `transport.consume()`: the remote offer rebuilt with the new consumer, answered.
    /// Returns the `dtlsParameters` the first time (for `connect`).
    fn add_consumer(
        &mut self,
        params: &Value,
        id: String,
        kind: Kind,
        rtp: RtpParameters,
        ip: IpAddr,
    ) -> Result<Option<Value>, String> {
        for e in &rtp.encodings {
            if let Some(s) = e.ssrc {
                self.ssrc_kind.insert(s, kind);
            }
        }
        let first = self.consumers.is_empty();
        self.consumers.push((id, kind, rtp));
        let offered: Vec<OfferedConsumer<'_>> = self
            .consumers
            .iter()
            .map(|(id, kind, rtp)| OfferedConsumer {
                id,
                kind: *kind,
                rtp_parameters: rtp,
            })
            .collect();
        let offer = subscriber_offer(params, self.offer_version, &offered, ip);
        self.offer_version += 1;
        if first {
            // Chrome answers `actpass` with `active` (DTLS client) and controls ICE.
            let mut api = self.rtc.direct_api();
            api.start_dtls(true)
                .map_err(|e| format!("start_dtls: {e}"))?;
            api.set_ice_controlling(true);
        }
        let offer = SdpOffer::from_sdp_string(&offer).map_err(|e| format!("offer: {e}"))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("offer refused: {e}"))?;
        self.rtc_deadline = Instant::now();
        Ok(first.then(|| dtls_parameters(&answer.to_sdp_string())))
    }
}

/// The (15-bit PictureID, TL0PICIDX) of `frame` on `layer`: every layer numbers its frames from elsewhere.
fn vp8_ids(layer: usize, frame: u32) -> (u16, u8) {
    let pid_start = [32_700u32, 200, 16_000][layer % 3];
    let tl0_start = [250u32, 10, 128][layer % 3];
    (
        ((pid_start + frame) % 0x8000) as u16,
        ((tl0_start + frame) % 0x100) as u8,
    )
}

/// Drives one transport: datagrams in, str0m's timeouts, the publisher's media clock, datagrams out.
async fn drive(sock: UdpSocket, pc: Pc, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let Ok(local) = sock.local_addr() else { return };
    let mut buf = vec![0u8; 2048];
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    loop {
        let deadline = {
            let mut st = lock(&pc);
            let now = Instant::now();
            if st.rtc_deadline <= now && st.error.is_none() {
                if let Err(e) = st.rtc.handle_input(Input::Timeout(now)) {
                    st.error = Some(format!("timeout: {e}"));
                }
            }
            st.drain(&mut out);
            st.media(now);
            st.drain(&mut out);
            let d = st.rtc_deadline;
            st.media_due().map_or(d, |m| m.min(d))
        };
        for (dest, d) in out.drain(..) {
            let _ = sock.send_to(&d, dest).await;
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = sock.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                let mut st = lock(&pc);
                let mut handle = |st: &mut PcState, n: usize, src: SocketAddr| {
                    if st.error.is_some() {
                        return;
                    }
                    if let Ok(r) = Receive::new(Protocol::Udp, src, local, &buf[..n]) {
                        if let Err(e) = st.rtc.handle_input(Input::Receive(Instant::now(), r)) {
                            st.error = Some(format!("receive: {e}"));
                        }
                    }
                    st.drain(&mut out);
                };
                handle(&mut st, n, src);
                // Whatever else is queued, without going back to the reactor.
                for _ in 0..64 {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, src)) => {
                            let mut h = |st: &mut PcState| {
                                if st.error.is_some() {
                                    return;
                                }
                                if let Ok(r) = Receive::new(Protocol::Udp, src, local, &buf[..n]) {
                                    if let Err(e) = st.rtc.handle_input(Input::Receive(Instant::now(), r)) {
                                        st.error = Some(format!("receive: {e}"));
                                    }
                                }
                                st.drain(&mut out);
                            };
                            h(&mut st);
                        }
                        Err(_) => break,
                    }
                }
            }
            _ = sleep => {}
            _ = wake.notified() => {}
        }
    }
}

async fn open_pc(index: usize, stop: &watch::Receiver<bool>) -> Result<(Pc, Arc<Notify>), String> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("udp bind: {e}"))?;
    let local = sock.local_addr().map_err(|e| format!("udp addr: {e}"))?;
    let pc = Arc::new(Mutex::new(PcState::new(local, index)?));
    let wake = Arc::new(Notify::new());
    tokio::spawn(drive(sock, pc.clone(), wake.clone(), stop.clone()));
    Ok((pc, wake))
}

// ---- one bot: a Socket.IO connection and up to two transports

struct BotSpec {
    index: usize,
    meeting: Arc<str>,
    user: String,
    publish: bool,
    subscribe: bool,
}

/// What the orchestrator sees of a bot.
#[derive(Default)]
struct BotView {
    send: Option<Pc>,
    recv: Option<Pc>,
    produced: usize,
    resumed: usize,
    error: Option<String>,
}

type SharedView = Arc<Mutex<BotView>>;

fn transport_ip(params: &Value) -> IpAddr {
    params
        .pointer("/iceCandidates/0/address")
        .or_else(|| params.pointer("/iceCandidates/0/ip"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn transport_port(params: &Value) -> Option<u16> {
    params
        .pointer("/iceCandidates/0/port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

async fn bot(
    spec: BotSpec,
    addr: Arc<str>,
    minter: Arc<server::Minter>,
    view: SharedView,
    setup: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let r = bot_inner(&spec, &addr, &minter, &view, setup, &mut stop).await;
    if let Err(e) = r {
        let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
        v.error.get_or_insert(e);
    }
}

async fn bot_inner(
    spec: &BotSpec,
    addr: &str,
    minter: &server::Minter,
    view: &SharedView,
    setup: Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let caps = serde_json::to_value(device_caps()).map_err(|e| e.to_string())?;
    let meeting = &*spec.meeting;
    let permit = setup.acquire_owned().await.map_err(|e| e.to_string())?;
    let token = minter.token(&spec.user)?;
    let mut c = Conn::connect(addr, &token).await?;
    let mut ev: Vec<(String, Value)> = Vec::new();
    request(
        &mut c,
        "join-meeting",
        json!({"meetingId": meeting}),
        &mut ev,
    )
    .await?;
    let mut recv: Option<(Pc, Arc<Notify>, Value, bool)> = None;
    if spec.subscribe {
        let ack = request(
            &mut c,
            "create-transport",
            json!({"meetingId": meeting, "direction": "recv"}),
            &mut ev,
        )
        .await?;
        let params = ack.get("params").cloned().ok_or("no transport params")?;
        let (pc, wake) = open_pc(spec.index, stop).await?;
        lock(&pc).server_port = transport_port(&params);
        lock_view(view).recv = Some(pc.clone());
        recv = Some((pc, wake, params, false));
    }
    if spec.publish {
        let ack = request(
            &mut c,
            "create-transport",
            json!({"meetingId": meeting, "direction": "send"}),
            &mut ev,
        )
        .await?;
        let params = ack.get("params").cloned().ok_or("no transport params")?;
        let tid = params["id"].as_str().unwrap_or_default().to_owned();
        let ip = transport_ip(&params);
        let (pc, wake) = open_pc(spec.index, stop).await?;
        lock(&pc).server_port = transport_port(&params);
        lock_view(view).send = Some(pc.clone());
        for (i, (kind, source, simulcast)) in
            [(Kind::Audio, "mic", false), (Kind::Video, "camera", true)]
                .into_iter()
                .enumerate()
        {
            let (rtp, dtls) = lock(&pc).add_send_track(&params, kind, simulcast, ip)?;
            wake.notify_one();
            if i == 0 {
                request(
                    &mut c,
                    "connect-transport",
                    json!({"transportId": tid, "dtlsParameters": dtls}),
                    &mut ev,
                )
                .await?;
            }
            request(
                &mut c,
                "produce",
                json!({"meetingId": meeting, "kind": kind.as_str(), "rtpParameters": rtp,
                       "appData": {"source": source}}),
                &mut ev,
            )
            .await?;
            lock_view(view).produced += 1;
        }
    }
    drop(permit);
    loop {
        // Events that came during a request first.
        while let Some((name, p)) = (!ev.is_empty()).then(|| ev.remove(0)) {
            if name != "new-producer" {
                continue;
            }
            let Some((pc, wake, params, connected)) = recv.as_mut() else {
                continue;
            };
            let producer = p.get("producerId").cloned().unwrap_or(Value::Null);
            let sub = match request(
                &mut c,
                "consume",
                json!({"meetingId": meeting, "producerId": producer, "rtpCapabilities": caps}),
                &mut ev,
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    lock_view(view).error.get_or_insert(e);
                    continue;
                }
            };
            let id = sub["id"].as_str().unwrap_or_default().to_owned();
            let kind = if sub["kind"] == "audio" {
                Kind::Audio
            } else {
                Kind::Video
            };
            let rtp: RtpParameters = serde_json::from_value(sub["rtpParameters"].clone())
                .map_err(|e| format!("subscribed rtpParameters: {e}"))?;
            let dtls =
                lock(pc).add_consumer(params, id.clone(), kind, rtp, transport_ip(params))?;
            wake.notify_one();
            if let (Some(dtls), false) = (dtls, *connected) {
                let tid = params["id"].as_str().unwrap_or_default().to_owned();
                request(
                    &mut c,
                    "connect-transport",
                    json!({"transportId": tid, "dtlsParameters": dtls}),
                    &mut ev,
                )
                .await?;
                *connected = true;
            }
            request(
                &mut c,
                "resume-consumer",
                json!({"consumerId": id}),
                &mut ev,
            )
            .await?;
            lock_view(view).resumed += 1;
        }
        tokio::select! {
            _ = stop.changed() => {
                c.close().await;
                return Ok(());
            }
            r = c.recv() => match r {
                Ok(Some(text)) => match classify(&text) {
                    Packet::Event(array) => {
                        if let Ok(Value::Array(mut a)) = serde_json::from_str::<Value>(array) {
                            if let (Some(Value::String(name)), Some(p)) = (a.first().cloned(), a.pop()) {
                                ev.push((name, p));
                            }
                        }
                    }
                    Packet::Disconnect => return Err("disconnected".to_owned()),
                    _ => {}
                },
                Ok(None) => return Err("connection closed".to_owned()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn lock_view(v: &SharedView) -> std::sync::MutexGuard<'_, BotView> {
    v.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- measurement

/// Datagrams the kernel dropped (receive buffer full) on loopback UDP sockets so far: (on the server's media ports,
/// on the bots' ports), from `/proc/net/udp`.
fn udp_drops(server_ports: &[u16], bot_ports: &[u16]) -> (u64, u64) {
    let (mut server, mut other) = (0, 0);
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return (0, 0);
    };
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
            continue;
        };
        let port = local
            .split(':')
            .nth(1)
            .and_then(|p| u16::from_str_radix(p, 16).ok())
            .unwrap_or(0);
        let drops: u64 = drops.parse().unwrap_or(0);
        if server_ports.contains(&port) {
            server += drops;
        } else if bot_ports.contains(&port) {
            other += drops;
        }
    }
    (server, other)
}

/// CPU ticks (utime + stime) of every thread of `pid` whose name starts with `media-`.
fn media_threads(pid: u32) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !name.starts_with("media-") {
            continue;
        }
        let mut f = stat[close + 1..].split_whitespace().skip(11);
        let (Some(u), Some(s)) = (f.next(), f.next()) else {
            continue;
        };
        let ticks = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        *out.entry(name.to_owned()).or_insert(0) += ticks;
    }
    out
}

struct Snapshot {
    at: Instant,
    drops: (u64, u64),
    server_cpu: f64,
    bot_cpu: f64,
    threads: HashMap<String, u64>,
    /// (bot, ssrc) → (kind, received, max_seq)
    rx: HashMap<(usize, u32), (Kind, u64, u64)>,
    sent: u64,
    keyframe_requests: u64,
    jitter_audio: Vec<f64>,
    jitter_video: Vec<f64>,
}

fn snapshot(pid: u32, views: &[SharedView], ports: &(Vec<u16>, Vec<u16>)) -> Snapshot {
    let mut rx = HashMap::new();
    let (mut sent, mut kfr) = (0, 0);
    let (mut ja, mut jv) = (Vec::new(), Vec::new());
    for (i, v) in views.iter().enumerate() {
        let (send, recv) = {
            let v = lock_view(v);
            (v.send.clone(), v.recv.clone())
        };
        if let Some(pc) = send {
            let st = lock(&pc);
            sent += st.sent_packets;
            kfr += st.keyframe_requests;
        }
        if let Some(pc) = recv {
            let st = lock(&pc);
            for (ssrc, s) in &st.rx {
                rx.insert((i, *ssrc), (s.kind, s.received, s.max_seq));
                if s.kind == Kind::Audio {
                    ja.push(s.jitter);
                } else {
                    jv.push(s.jitter);
                }
            }
        }
    }
    Snapshot {
        at: Instant::now(),
        drops: udp_drops(&ports.0, &ports.1),
        server_cpu: server::cpu_secs(pid).unwrap_or(0.0),
        bot_cpu: server::cpu_secs(std::process::id()).unwrap_or(0.0),
        threads: media_threads(pid),
        rx,
        sent,
        keyframe_requests: kfr,
        jitter_audio: ja,
        jitter_video: jv,
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

async fn metric(addr: &str, name: &str) -> u64 {
    server::metrics(addr)
        .await
        .ok()
        .and_then(|m| m.get(name).copied())
        .unwrap_or(0.0) as u64
}

/// One step: set-up, warm-up, measurement, teardown.
async fn step(r: &MediaRun, n: usize, run_id: usize) -> Result<StepFigures, String> {
    let (meetings, size) = r.scenario.layout(n);
    let mut f = StepFigures {
        n,
        bots: meetings * size,
        ..StepFigures::default()
    };
    let rss_before = server::rss_kb(r.pid).unwrap_or(0);
    let transports_before = metric(&r.addr, "meet_media_transports").await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup = Arc::new(Semaphore::new(r.concurrency.max(1)));
    let mut views: Vec<SharedView> = Vec::new();
    let mut tasks = Vec::new();
    let mut expected = Vec::new();
    let mut hosts: Vec<(String, Arc<str>)> = Vec::new();
    for m in 0..meetings {
        let host = format!("media_{run_id}_{m}_0");
        let meeting: Arc<str> = Arc::from(
            server::create_meeting_with(
                &r.addr,
                &r.minter.token(&host)?,
                size as u32 + 2,
                r.record,
            )
            .await?,
        );
        hosts.push((host, meeting.clone()));
        for k in 0..size {
            let (publish, subscribe) = match r.scenario {
                Scenario::Fanout => (k == 0, k != 0),
                _ => (true, true),
            };
            // Each subscriber consumes audio + video of every publisher but itself.
            let publishers = if r.scenario == Scenario::Fanout {
                1
            } else {
                size - 1
            };
            expected.push((publish, if subscribe { 2 * publishers } else { 0 }));
            let view = SharedView::default();
            views.push(view.clone());
            let spec = BotSpec {
                index: views.len(),
                meeting: meeting.clone(),
                user: format!("media_{run_id}_{m}_{k}"),
                publish,
                subscribe,
            };
            tasks.push(tokio::spawn(bot(
                spec,
                r.addr.clone(),
                r.minter.clone(),
                view,
                setup.clone(),
                stop_rx.clone(),
            )));
        }
    }
    // Set-up: every publisher connected with its two producers, every subscriber connected with all its consumers
    // resumed.
    let t0 = Instant::now();
    let is_ready = |v: &SharedView, (publish, consumers): (bool, usize)| {
        let v = lock_view(v);
        let send_ok =
            !publish || (v.produced == 2 && v.send.as_ref().is_some_and(|p| lock(p).connected));
        let recv_ok = consumers == 0
            || (v.resumed >= consumers && v.recv.as_ref().is_some_and(|p| lock(p).connected));
        send_ok && recv_ok
    };
    let ready = AtomicUsize::new(0);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let k = views
            .iter()
            .zip(&expected)
            .filter(|(v, e)| is_ready(v, **e))
            .count();
        ready.store(k, Ordering::Relaxed);
        let failed = views
            .iter()
            .filter(|v| lock_view(v).error.is_some())
            .count();
        if k + failed >= views.len() || t0.elapsed() > r.setup_timeout {
            break;
        }
    }
    f.ready = ready.load(Ordering::Relaxed);
    f.setup_secs = t0.elapsed().as_secs_f64();
    // Recording: one more session of each host (no media) starts the meeting's recording; kept open until the
    // step ends (the recording stops when the meeting empties).
    let mut recorders = Vec::new();
    if r.record {
        for (host, meeting) in &hosts {
            let mut c = Conn::connect(&r.addr, &r.minter.token(host)?).await?;
            let mut ev = Vec::new();
            request(
                &mut c,
                "join-meeting",
                json!({"meetingId": &**meeting}),
                &mut ev,
            )
            .await?;
            request(
                &mut c,
                "recording:start",
                json!({"meetingId": &**meeting}),
                &mut ev,
            )
            .await?;
            recorders.push(c);
        }
        eprintln!("meet-load: recording {} meeting(s)", recorders.len());
    }
    tokio::time::sleep(r.warmup).await;
    // The server's media ports: those its transports announce.
    let mut server_ports: Vec<u16> = Vec::new();
    let mut bot_ports: Vec<u16> = Vec::new();
    for v in &views {
        let v = lock_view(v);
        for p in [&v.send, &v.recv].into_iter().flatten() {
            let st = lock(p);
            bot_ports.push(st.local_port);
            if let Some(port) = st.server_port {
                if !server_ports.contains(&port) {
                    server_ports.push(port);
                }
            }
        }
    }
    let ports = (server_ports, bot_ports);
    let a = snapshot(r.pid, &views, &ports);
    tokio::time::sleep(r.measure).await;
    let b = snapshot(r.pid, &views, &ports);
    f.udp_drops_server = b.drops.0.saturating_sub(a.drops.0);
    f.udp_drops_bots = b.drops.1.saturating_sub(a.drops.1);
    f.transports = metric(&r.addr, "meet_media_transports")
        .await
        .saturating_sub(transports_before);
    f.consumers = metric(&r.addr, "meet_media_consumers").await;
    let rss_after = server::rss_kb(r.pid).unwrap_or(0);
    f.rss_mb = rss_after as f64 / 1024.0;
    f.kb_per_transport = if f.transports > 0 {
        (rss_after as f64 - rss_before as f64) / f.transports as f64
    } else {
        0.0
    };
    let secs = (b.at - a.at).as_secs_f64();
    f.secs = secs;
    let (mut received, mut expected_pkts) = (0u64, 0u64);
    for (key, (_, rb, mb)) in &b.rx {
        let (ra, ma) = a.rx.get(key).map_or((0, 0), |(_, r, m)| (*r, *m));
        if ra == 0 {
            continue; // a stream that started inside the window
        }
        received += rb - ra;
        expected_pkts += mb.saturating_sub(ma);
    }
    f.fwd_pps = received as f64 / secs;
    f.sent_pps = (b.sent - a.sent) as f64 / secs;
    f.keyframe_requests = b.keyframe_requests - a.keyframe_requests;
    f.loss_pct = if expected_pkts > 0 {
        100.0 * expected_pkts.saturating_sub(received) as f64 / expected_pkts as f64
    } else {
        0.0
    };
    f.jitter_audio_ms = mean(&b.jitter_audio) * 1000.0;
    f.jitter_video_ms = mean(&b.jitter_video) * 1000.0;
    let server_cpu = b.server_cpu - a.server_cpu;
    f.server_cpu_pct = 100.0 * server_cpu / secs;
    f.bot_cpu_pct = 100.0 * (b.bot_cpu - a.bot_cpu) / secs;
    f.us_per_fwd = if received > 0 {
        server_cpu * 1e6 / received as f64
    } else {
        0.0
    };
    let mut workers: Vec<(String, f64)> = b
        .threads
        .iter()
        .map(|(name, t)| {
            let before = a.threads.get(name).copied().unwrap_or(0);
            (name.clone(), (t - before) as f64 / secs) // ticks are 1/100 s → % of a core
        })
        .collect();
    workers.sort_by(|x, y| x.0.cmp(&y.0));
    f.workers = workers;
    let mut errors: HashMap<String, usize> = HashMap::new();
    for v in &views {
        let v = lock_view(v);
        let pc_err = [&v.send, &v.recv]
            .into_iter()
            .flatten()
            .find_map(|p| lock(p).error.clone());
        if let Some(e) = v.error.clone().or(pc_err) {
            *errors.entry(e).or_insert(0) += 1;
        }
    }
    f.errors = errors
        .into_iter()
        .map(|(e, n)| format!("{n}× {e}"))
        .collect();
    // Verdict.
    let hot = f
        .workers
        .iter()
        .filter(|(_, p)| *p >= r.max_worker_cpu_pct)
        .map(|(n, p)| format!("{n} at {p:.0} %"))
        .collect::<Vec<_>>();
    f.saturated = if f.ready < f.bots {
        Some(format!("only {} of {} bots set up", f.ready, f.bots))
    } else if f.loss_pct > r.max_loss_pct {
        Some(format!(
            "loss {:.2} % > {} % (UDP drops: {} at the server, {} at the bots)",
            f.loss_pct, r.max_loss_pct, f.udp_drops_server, f.udp_drops_bots
        ))
    } else if !hot.is_empty() {
        Some(format!("media thread {}", hot.join(", ")))
    } else {
        None
    };
    // Teardown: bots close their connections, the server drops their transports.
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if metric(&r.addr, "meet_media_transports").await <= transports_before {
            break;
        }
    }
    Ok(f)
}

pub fn header() -> String {
    format!(
        "{:>10} {:>5} {:>6} {:>9} {:>9} {:>8} {:>9} {:>15} {:>7} {:>11} {:>9} {:>8}  {}",
        "scenario",
        "n",
        "trans",
        "sent/s",
        "fwd/s",
        "srv CPU",
        "µs/fwd",
        "media-* CPU",
        "loss",
        "jitter a/v",
        "KB/trans",
        "bot CPU",
        "verdict"
    )
}

pub fn line(s: Scenario, f: &StepFigures) -> String {
    let workers = f
        .workers
        .iter()
        .map(|(_, p)| format!("{p:.0}"))
        .collect::<Vec<_>>()
        .join("/");
    format!(
        "{:>10} {:>5} {:>6} {:>9.0} {:>9.0} {:>7.0}% {:>9.1} {:>14}% {:>6.2}% {:>5.1}/{:<5.1} {:>9.1} {:>7.0}%  {}",
        s.name(),
        f.n,
        f.transports,
        f.sent_pps,
        f.fwd_pps,
        f.server_cpu_pct,
        f.us_per_fwd,
        workers,
        f.loss_pct,
        f.jitter_audio_ms,
        f.jitter_video_ms,
        f.kb_per_transport,
        f.bot_cpu_pct,
        f.saturated.as_deref().unwrap_or("ok")
    )
}

/// Runs the scenario's steps until one saturates. Returns every step's figures.
pub async fn run(r: &MediaRun, run_id: usize) -> Vec<StepFigures> {
    let mut out = Vec::new();
    println!(
        "media {}: steps {:?} ({}), warm-up {:?}, window {:?}",
        r.scenario.name(),
        r.steps,
        r.scenario.unit(),
        r.warmup,
        r.measure
    );
    println!("{}", header());
    for (i, &n) in r.steps.iter().enumerate() {
        let f = match step(r, n, run_id * 1000 + i).await {
            Ok(f) => f,
            Err(e) => {
                println!("media {} n={n}: set-up failed: {e}", r.scenario.name());
                break;
            }
        };
        println!("{}", line(r.scenario, &f));
        for e in f.errors.iter().take(3) {
            println!("    bot errors: {e}");
        }
        let stop = f.saturated.is_some();
        out.push(f);
        if stop {
            break;
        }
    }
    out
}
