//! Test support: a fake mediasoup-client built on str0m, and an in-memory network on simulated time.
//!
//! - [`Publisher`]: one client send transport (one str0m `Rtc`, not ICE-lite, ICE-controlling, DTLS client). For each
//!   produce it adds a sendonly m-line with its own SDP API, reads from its own offer what mediasoup-client signals
//!   (`rtpParameters`: mid, the first codec + its RTX with the client's PTs, header extensions with the client's ids,
//!   `[{ssrc, rtx}]` or `[{rid}]` encodings, `rtcp.cname`) and accepts the answer mediasoup-client's `RemoteSdp`
//!   would build from the transport parameters (ice-lite, the server's ufrag/pwd/candidate/fingerprint,
//!   `setup:passive`, the router's codecs under the client's PTs).
//! - [`Subscriber`]: one client recv transport. For each consumer it rebuilds the remote offer mediasoup-client
//!   builds from the consumers' `rtpParameters` (router PTs and ids, ssrc + rtx ssrc, mid) and answers it.
//! - [`World`]: the [`sfu::Core`] plus the fake clients; datagrams move in memory, time is a virtual `Instant`.
//!
//! The clients use Chrome's numbering (opus 111, VP8 96/97, H264 102/103, audio-level=1, abs-send-time=2,
//! transport-cc=3, mid=4, rid=10, repaired-rid=11, video-orientation=13, toffset=14), so the Core has to map it.
//! Both clients run str0m in RTP mode: the publisher writes exact RTP payloads, the subscriber sees exact RTP.
#![allow(dead_code)]

use serde_json::{json, Value};
pub use sfu::client_sdp::*;
use sfu::ortc::RtpParameters;
use sfu::{ConsumerInfo, Core, Direction, Kind, SfuError, TransportInfo};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{
    Direction as MediaDirection, KeyframeRequest, MediaKind, Mid, Pt, Rid, Simulcast,
    SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub const ROUTER: &str = "router-1";

/// The Core's UDP address (local = announced).
pub fn server_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_000)
}

/// The second Core's UDP address (`World::with_second_core`): another worker of the same process.
pub fn second_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_001)
}

/// A distinct address per fake client.
pub fn client_addr(n: usize) -> SocketAddr {
    let n = n as u32 + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8)),
        50_000,
    )
}

thread_local! {
    /// Set by [`signal_fingerprint`]: the algorithm the fake clients of this test signal, and whether they lie.
    static CLIENT_FINGERPRINT: std::cell::RefCell<Option<(String, bool)>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes the fake clients created afterwards on this thread signal only a fingerprint of `algorithm` (as
/// pymediasoup does with aiortc's sha-512), computed from their certificate; `wrong` flips one of its bytes.
pub fn signal_fingerprint(algorithm: &str, wrong: bool) {
    CLIENT_FINGERPRINT.with(|c| *c.borrow_mut() = Some((algorithm.to_owned(), wrong)));
}

/// The `dtlsParameters` mediasoup-client's `connect` sends: its local fingerprint, role client.
fn dtls_parameters(local_sdp: &str, cert_der: &[u8]) -> Value {
    if let Some((algorithm, wrong)) = CLIENT_FINGERPRINT.with(|c| c.borrow().clone()) {
        let mut digest = sfu::fingerprint::digest(&algorithm, cert_der).expect("known algorithm");
        if wrong {
            digest[0] ^= 0xff;
        }
        let value: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        return json!({"role": "client", "fingerprints": [{"algorithm": algorithm, "value": value.join(":")}]});
    }
    let (session, sections) = parse_sdp(local_sdp);
    let (algorithm, value) = sdp_fingerprint(&session, &sections);
    json!({"role": "client", "fingerprints": [{"algorithm": algorithm, "value": value}]})
}

// ---- one fake browser PeerConnection

/// A datagram/Rtc endpoint: the str0m `Rtc`, its outgoing datagrams, and what it reported.
pub struct Endpoint {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    /// Datagrams to the server, in order.
    pub out: VecDeque<Vec<u8>>,
    /// Received RTP (subscribers), when `keep_rtp`.
    pub rtp: Vec<RtpPacket>,
    pub keep_rtp: bool,
    pub rtp_count: u64,
    pub keyframe_requests: Vec<(Instant, KeyframeRequest)>,
    pub connected: bool,
    deadline: Option<Instant>,
    /// The DER certificate this client's DTLS uses.
    pub cert_der: Vec<u8>,
}

impl Endpoint {
    /// A client at `addr` (its host candidate: a real socket's address when datagrams go over real UDP).
    pub fn new(addr: SocketAddr, now: Instant) -> Self {
        Self::with_config(addr, now, browser_config())
    }

    fn with_config(addr: SocketAddr, now: Instant, config: str0m::RtcConfig) -> Self {
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .expect("client certificate");
        let cert_der = cert.certificate.clone();
        let mut rtc = config.set_dtls_cert(cert).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        Self {
            rtc,
            addr,
            out: VecDeque::new(),
            rtp: Vec::new(),
            keep_rtp: true,
            rtp_count: 0,
            keyframe_requests: Vec::new(),
            connected: false,
            deadline: Some(now),
            cert_der,
        }
    }

    /// Polls the client until it only has a deadline left (its datagrams go to `out`, its events are recorded).
    pub fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.out.push_back(t.contents.to_vec()),
                Ok(Output::Timeout(t)) => {
                    self.deadline = Some(t);
                    return;
                }
                Ok(Output::Event(e)) => match e {
                    Event::RtpPacket(p) => {
                        self.rtp_count += 1;
                        if self.keep_rtp {
                            self.rtp.push(p);
                        }
                    }
                    Event::KeyframeRequest(r) => self.keyframe_requests.push((now, r)),
                    Event::Connected => self.connected = true,
                    _ => {}
                },
                Err(e) => panic!("client {} failed: {e}", self.addr),
            }
        }
    }

    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let r = Receive::new(Protocol::Udp, source, self.addr, data).expect("datagram from server");
        self.rtc
            .handle_input(Input::Receive(now, r))
            .unwrap_or_else(|e| panic!("client {} refused a datagram: {e}", self.addr));
        self.drain(now);
    }

    pub fn timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| d <= now) {
            self.rtc
                .handle_input(Input::Timeout(now))
                .unwrap_or_else(|e| panic!("client {} timeout: {e}", self.addr));
            self.drain(now);
        }
    }

    /// RTP received on `ssrc`, in arrival order.
    pub fn rtp_on(&self, ssrc: u32) -> Vec<&RtpPacket> {
        self.rtp.iter().filter(|p| *p.header.ssrc == ssrc).collect()
    }

    pub fn keyframe_requests_for(&self, mid: Mid) -> usize {
        self.keyframe_requests
            .iter()
            .filter(|(_, r)| r.mid == mid)
            .count()
    }
}

/// One producer as the fake client sees it.
pub struct Track {
    pub kind: Kind,
    pub mid: Mid,
    /// Simulcast rids (r0 lowest), or empty for one ssrc+rtx encoding.
    pub rids: Vec<Rid>,
    pub pt: Pt,
    pub producer: String,
    pub rtp_parameters: RtpParameters,
    /// Next sequence number and RTP time per encoding.
    seq: Vec<u64>,
    frame: u32,
    pub keyframe_pending: bool,
    kf_seen: usize,
    /// Every payload written, per encoding (when `record`).
    pub sent: Vec<Vec<Arc<[u8]>>>,
    pub record: bool,
    /// Simulcast layers being sent (a browser drops upper layers under CPU or bandwidth pressure).
    pub layer_active: Vec<bool>,
    /// Write Chrome's VP8 payload descriptor (X, I with a 15-bit PictureID, L with TL0PICIDX), each layer with its
    /// own sequences from its own start (`vp8_ids`). Payload layout then: 5 descriptor bytes, the VP8 header byte
    /// (P bit), layer, packet index, frame number (4 bytes).
    pub vp8_descriptor: bool,
    /// With `vp8_descriptor`: Chrome's L1T3 in every layer — T set, TID in the pattern 0,2,1,2 from each keyframe
    /// (Y on the first TID 1 and 2 pictures after it), TL0PICIDX counting TL0 pictures. Payload layout then: 6
    /// descriptor bytes, the VP8 header byte, layer, packet index, frame number (4 bytes), TID.
    pub vp8_temporal: bool,
    /// VP9 k-SVC L3T3_KEY in one stream: every frame is a picture of spatial layers 0, 1, 2 (1, 2, 3 packets; 3, 4,
    /// 5 on a keyframe), non-flexible descriptor (I with a 15-bit id, L, TL0PICIDX), B/E per layer frame, the
    /// marker on the picture's last packet; TID as `vp8_temporal`. Payload layout: 5 descriptor bytes, SID, TID,
    /// packet index, frame number (4 bytes).
    pub vp9_svc: bool,
    /// VP9 SVC spatial layers being sent (an encoder short of bandwidth or CPU sends fewer): 3 by default.
    pub svc_layers_sent: u8,
    /// Position in the temporal pattern since the last keyframe, and each layer's TL0PICIDX.
    temporal_phase: u32,
    tl0: Vec<u8>,
    pub frames: u64,
    pub packets: u64,
}

/// The temporal layer of each picture from a keyframe on (Chrome's L1T3).
pub const TEMPORAL_PATTERN: [u8; 4] = [0, 2, 1, 2];

/// Packets per delta frame, keyframe and their sizes, per layer (layer 0 small).
pub const VIDEO_PACKET: usize = 1100;
pub const AUDIO_PACKET: usize = 120;

impl Track {
    /// Packets of one frame: 3 or 4 for a delta frame of the top layer, 10 for its keyframe; lower layers less.
    fn frame_packets(&self, layer: usize, keyframe: bool) -> usize {
        let top = self.rids.len().max(1) - 1;
        let base = if keyframe {
            10
        } else {
            3 + (self.frame % 2) as usize
        };
        (base >> (2 * (top - layer))).max(1)
    }
}

/// An edit of the `rtpParameters` JSON a fake client signals.
pub type RtpEdit = Box<dyn Fn(&mut Value) + Send>;

pub struct Publisher {
    /// Changes the `rtpParameters` this client signals in `produce` (a client with other capabilities).
    pub edit_rtp_parameters: Option<RtpEdit>,
    pub ep: Endpoint,
    pub transport: TransportInfo,
    pub tracks: Vec<Track>,
    answer_version: u64,
    connected_core: bool,
    /// `World::run` makes this client send media.
    pub auto: bool,
    pub index: usize,
    /// The level every audio packet carries (−dBov as str0m writes it); None = a sweep (−(seq mod 100)).
    pub audio_level: Option<i8>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
}

impl Publisher {
    /// A client send transport on `transport` (tests that drive the Core themselves, e.g. through real UDP).
    pub fn new(ep: Endpoint, transport: TransportInfo, index: usize) -> Self {
        Self {
            edit_rtp_parameters: None,
            ep,
            transport,
            tracks: Vec::new(),
            answer_version: 0,
            connected_core: false,
            auto: true,
            index,
            audio_level: None,
            next_audio: None,
            next_video: None,
        }
    }

    /// A produce, the mediasoup-client way: new sendonly m-line, offer, `rtpParameters` from the offer, the answer
    /// from the transport parameters, then `connect` (first time) and `produce` on the Core.
    pub fn produce(
        &mut self,
        core: &mut Core,
        kind: Kind,
        simulcast: bool,
    ) -> Result<String, SfuError> {
        let mut api = self.ep.rtc.sdp_api();
        let layers = simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in ["r0", "r1", "r2"] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let mid = api.add_media(
            if kind == Kind::Audio {
                MediaKind::Audio
            } else {
                MediaKind::Video
            },
            MediaDirection::SendOnly,
            Some(format!("stream{}", self.index)),
            Some(format!("track{}{}", self.index, self.tracks.len())),
            layers,
        );
        let (offer, pending) = api.apply().expect("offer");
        let offer_text = offer.to_sdp_string();
        let (_, sections) = parse_sdp(&offer_text);
        let section = sections
            .iter()
            .find(|s| s.mid() == Some(&*mid.to_string()))
            .expect("m-section of the new mid");
        let mut rtp = send_rtp_parameters(section, simulcast);
        if let Some(edit) = &self.edit_rtp_parameters {
            edit(&mut rtp);
        }
        self.accept_answer(&offer_text, pending);
        self.ep.deadline = None;
        if !self.connected_core {
            core.connect_transport(
                &self.transport.id,
                &dtls_parameters(&offer_text, &self.ep.cert_der),
            )?;
            self.connected_core = true;
        }
        let rtp_parameters: RtpParameters =
            serde_json::from_value(rtp).expect("rtpParameters deserialize");
        let producer = core.produce(&self.transport.id, kind, &rtp_parameters)?;
        let pt = Pt::from(rtp_parameters.codecs[0].payload_type);
        let rids: Vec<Rid> = rtp_parameters
            .encodings
            .iter()
            .filter_map(|e| e.rid.as_deref().map(Rid::from))
            .collect();
        let layers = rids.len().max(1);
        self.tracks.push(Track {
            kind,
            mid,
            rids,
            pt,
            producer: producer.clone(),
            rtp_parameters,
            seq: vec![1; layers],
            frame: 0,
            keyframe_pending: true,
            kf_seen: 0,
            sent: vec![Vec::new(); layers],
            record: true,
            layer_active: vec![true; layers],
            vp8_descriptor: false,
            vp8_temporal: false,
            vp9_svc: false,
            svc_layers_sent: 3,
            temporal_phase: 0,
            tl0: (0..layers).map(|l| vp8_ids(l, 0).1).collect(),
            frames: 0,
            packets: 0,
        });
        Ok(producer)
    }

    /// The answer mediasoup-client's RemoteSdp builds for the whole offer.
    fn accept_answer(&mut self, offer_text: &str, pending: SdpPendingOffer) {
        self.answer_version += 1;
        let sdp = publisher_answer(
            &self.transport.params,
            self.answer_version,
            offer_text,
            server_addr().ip(),
        );
        let answer = SdpAnswer::from_sdp_string(&sdp)
            .unwrap_or_else(|e| panic!("answer does not parse: {e}\n{sdp}"));
        self.ep
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .unwrap_or_else(|e| panic!("answer refused: {e}\n{sdp}"));
    }

    fn track_for(&mut self, mid: Mid) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.mid == mid)
    }

    /// Writes one audio packet (20 ms of opus) on every audio track.
    pub fn send_audio(&mut self, now: Instant) {
        for t in self.tracks.iter_mut().filter(|t| t.kind == Kind::Audio) {
            let seq = t.seq[0];
            t.seq[0] += 1;
            let mut payload = vec![0xA5u8; AUDIO_PACKET];
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            payload[8] = self.index as u8;
            let payload: Arc<[u8]> = payload.into();
            if t.record {
                t.sent[0].push(payload.clone());
            }
            let ts = (seq as u32).wrapping_mul(960);
            if let Some(tx) = self.ep.rtc.direct_api().stream_tx_by_mid(t.mid, None) {
                // The audio level travels under the client's extension id (1) and must reach subscribers under
                // the router's (10).
                let ext = ExtensionValues {
                    audio_level: Some(self.audio_level.unwrap_or(-((seq % 100) as i8))),
                    voice_activity: Some(true),
                    ..ExtensionValues::default()
                };
                tx.write_rtp(
                    RtpWrite::new(t.pt, SeqNo::from(seq), ts, now, payload)
                        .marker(seq == 1)
                        .ext_vals(ext),
                );
            }
            t.packets += 1;
        }
        self.ep.drain(now);
    }

    /// Writes one frame on every video track (every simulcast layer); a keyframe when one was asked for.
    pub fn send_video_frame(&mut self, now: Instant) {
        let requests = self.ep.keyframe_requests.len();
        for i in 0..self.tracks.len() {
            let seen = self.tracks[i].kf_seen;
            let mid = self.tracks[i].mid;
            if self.ep.keyframe_requests[seen..]
                .iter()
                .any(|(_, r)| r.mid == mid)
            {
                self.tracks[i].keyframe_pending = true;
            }
            self.tracks[i].kf_seen = requests;
        }
        for t in self.tracks.iter_mut().filter(|t| t.kind == Kind::Video) {
            let keyframe = std::mem::take(&mut t.keyframe_pending);
            let ts = t.frame.wrapping_mul(3000);
            if keyframe {
                t.temporal_phase = 0;
            }
            let tid = TEMPORAL_PATTERN[(t.temporal_phase % 4) as usize];
            // A switching point: the first TID 1 and TID 2 pictures after a keyframe reference only TL0.
            let sync = t.temporal_phase > 0 && t.temporal_phase < 3;
            t.temporal_phase += 1;
            if tid == 0 {
                t.tl0.iter_mut().for_each(|x| *x = x.wrapping_add(1));
            }
            if t.vp9_svc {
                let pid = ((1000 + t.frame) % 0x8000) as u16;
                let top = t.svc_layers_sent.clamp(1, 3) - 1;
                for sid in 0..=top {
                    let n = usize::from(sid) + if keyframe { 3 } else { 1 };
                    for k in 0..n {
                        let seq = t.seq[0];
                        t.seq[0] += 1;
                        let mut payload = vec![t.frame as u8; 300 << sid];
                        payload[0] = 0x80
                            | 0x20
                            | if keyframe { 0 } else { 0x40 }
                            | if k == 0 { 0x08 } else { 0 }
                            | if k + 1 == n { 0x04 } else { 0 };
                        payload[1] = 0x80 | (pid >> 8) as u8;
                        payload[2] = pid as u8;
                        payload[3] = (tid << 5)
                            | if sync { 0x10 } else { 0 }
                            | (sid << 1)
                            | u8::from(keyframe && sid > 0);
                        payload[4] = t.tl0[0];
                        payload[5] = sid;
                        payload[6] = tid;
                        payload[7] = k as u8;
                        payload[8..12].copy_from_slice(&t.frame.to_be_bytes());
                        let payload: Arc<[u8]> = payload.into();
                        if t.record {
                            t.sent[0].push(payload.clone());
                        }
                        if let Some(tx) = self.ep.rtc.direct_api().stream_tx_by_mid(t.mid, None) {
                            tx.write_rtp(
                                RtpWrite::new(t.pt, SeqNo::from(seq), ts, now, payload)
                                    .marker(sid == top && k + 1 == n)
                                    .nackable(true),
                            );
                        }
                        t.packets += 1;
                    }
                }
                t.frame += 1;
                t.frames += 1;
                continue;
            }
            for layer in 0..t.seq.len() {
                if !t.layer_active.get(layer).copied().unwrap_or(true) {
                    continue;
                }
                let n = t.frame_packets(layer, keyframe);
                let rid = t.rids.get(layer).copied();
                for k in 0..n {
                    let seq = t.seq[layer];
                    t.seq[layer] += 1;
                    let size = VIDEO_PACKET >> (2 * (t.seq.len() - 1 - layer));
                    let mut payload = vec![t.frame as u8; size.max(64)];
                    if t.vp8_descriptor && t.vp8_temporal {
                        let (pid, _) = vp8_ids(layer, t.frame);
                        payload[0] = if k == 0 { 0x90 } else { 0x80 };
                        payload[1] = 0xe0;
                        payload[2] = 0x80 | (pid >> 8) as u8;
                        payload[3] = pid as u8;
                        payload[4] = t.tl0[layer];
                        payload[5] = (tid << 6) | if sync { 0x20 } else { 0 };
                        payload[6] = if keyframe { 0x00 } else { 0x01 };
                        payload[7] = layer as u8;
                        payload[8] = k as u8;
                        payload[9..13].copy_from_slice(&t.frame.to_be_bytes());
                        payload[13] = tid;
                    } else if t.vp8_descriptor {
                        let (pid, tl0) = vp8_ids(layer, t.frame);
                        payload[0] = if k == 0 { 0x90 } else { 0x80 };
                        payload[1] = 0xc0;
                        payload[2] = 0x80 | (pid >> 8) as u8;
                        payload[3] = pid as u8;
                        payload[4] = tl0;
                        payload[5] = if keyframe { 0x00 } else { 0x01 };
                        payload[6] = layer as u8;
                        payload[7] = k as u8;
                        payload[8..12].copy_from_slice(&t.frame.to_be_bytes());
                    } else {
                        // VP8 payload descriptor: S=1, PID=0 on the first packet; P=0 marks a keyframe.
                        payload[0] = if k == 0 { 0x10 } else { 0x00 };
                        payload[1] = if keyframe { 0x00 } else { 0x01 };
                        payload[2] = layer as u8;
                        payload[3] = k as u8;
                        payload[4..8].copy_from_slice(&t.frame.to_be_bytes());
                        payload[8..16].copy_from_slice(&seq.to_be_bytes());
                        payload[16] = self.index as u8;
                    }
                    let payload: Arc<[u8]> = payload.into();
                    if t.record {
                        t.sent[layer].push(payload.clone());
                    }
                    if let Some(tx) = self.ep.rtc.direct_api().stream_tx_by_mid(t.mid, rid) {
                        tx.write_rtp(
                            RtpWrite::new(t.pt, SeqNo::from(seq), ts, now, payload)
                                .marker(k + 1 == n)
                                .nackable(true),
                        );
                    }
                    t.packets += 1;
                }
            }
            t.frame += 1;
            t.frames += 1;
        }
        self.ep.drain(now);
    }
}

pub struct Subscriber {
    pub ep: Endpoint,
    pub transport: TransportInfo,
    pub consumers: Vec<ConsumerInfo>,
    /// Its transport is on the World's second Core.
    pub on_second: bool,
    version: u64,
    connected_core: bool,
}

impl Subscriber {
    /// A client recv transport on `transport` (see [`Publisher::new`]).
    pub fn new(ep: Endpoint, transport: TransportInfo) -> Self {
        Self {
            ep,
            transport,
            consumers: Vec::new(),
            on_second: false,
            version: 1,
            connected_core: false,
        }
    }

    /// mediasoup-client's `transport.consume()`: the remote offer rebuilt with the new consumer, answered; then
    /// `connect` (first time). The consumer stays as the server created it (paused).
    pub fn receive(&mut self, core: &mut Core, info: ConsumerInfo) -> Result<(), SfuError> {
        self.consumers.push(info);
        let first = self.version == 1;
        let offer = self.remote_offer();
        if first {
            // Chrome answers `actpass` with `active`, mediasoup-client signals role 'client'; str0m would take
            // passive, so the fake browser takes the DTLS client role itself (and, with it, ICE control).
            let mut api = self.ep.rtc.direct_api();
            api.start_dtls(true).expect("dtls client");
            api.set_ice_controlling(true);
        }
        let offer = SdpOffer::from_sdp_string(&offer)
            .unwrap_or_else(|e| panic!("remote offer does not parse: {e}\n{offer}"));
        let answer = self
            .ep
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .unwrap_or_else(|e| panic!("remote offer refused: {e}"));
        self.ep.deadline = None;
        if !self.connected_core {
            core.connect_transport(
                &self.transport.id,
                &dtls_parameters(&answer.to_sdp_string(), &self.ep.cert_der),
            )?;
            self.connected_core = true;
        }
        Ok(())
    }

    fn remote_offer(&mut self) -> String {
        let consumers: Vec<OfferedConsumer<'_>> = self
            .consumers
            .iter()
            .map(|c| OfferedConsumer {
                id: &c.id,
                kind: c.kind,
                rtp_parameters: &c.rtp_parameters,
            })
            .collect();
        let sdp = subscriber_offer(
            &self.transport.params,
            self.version,
            &consumers,
            server_addr().ip(),
        );
        self.version += 1;
        sdp
    }

    /// The SSRC of a consumer.
    pub fn ssrc(info: &ConsumerInfo) -> u32 {
        info.rtp_parameters.encodings[0]
            .ssrc
            .expect("consumer ssrc")
    }

    /// The subscriber's client asks a keyframe (PLI) for this consumer, as a browser does on loss.
    pub fn send_pli(&mut self, info: &ConsumerInfo) {
        let ssrc = str0m::rtp::Ssrc::from(Self::ssrc(info));
        self.ep
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .expect("consumer's stream")
            .request_keyframe(str0m::media::KeyframeRequestKind::Pli);
    }

    /// RTP received for this consumer, in arrival order.
    pub fn rtp_of(&self, info: &ConsumerInfo) -> Vec<&RtpPacket> {
        self.ep.rtp_on(Self::ssrc(info))
    }
}

// ---- the world

/// `true` = deliver. Arguments: source, destination, datagram.
pub type Filter = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> bool>;

pub struct World {
    pub core: Core,
    /// Another worker's Core (`with_second_core`): subscribers there get the first Core's producers through pipes,
    /// which `pump` moves both ways like datagrams.
    pub second: Option<Core>,
    pub start: Instant,
    pub now: Instant,
    pub pubs: Vec<Publisher>,
    pub subs: Vec<Subscriber>,
    /// Client → Core datagrams pass through this when set.
    pub uplink: Option<Filter>,
    /// Core → client datagrams pass through this when set.
    pub downlink: Option<Filter>,
    pub tick: Duration,
    /// Datagrams the Core sent to an address no client has (after a transport closed, say).
    pub undeliverable: u64,
    /// Wall time spent inside the Core: `handle_receive` + `drain_dirty` + `poll_transmit`, and `handle_timeout`.
    pub core_busy: Duration,
    pub core_timer_busy: Duration,
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
    clients: usize,
    by_addr: HashMap<SocketAddr, (bool, usize)>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            core: Core::new(server_addr(), server_addr()),
            second: None,
            start: now,
            now,
            pubs: Vec::new(),
            subs: Vec::new(),
            uplink: None,
            downlink: None,
            tick: Duration::from_millis(1),
            undeliverable: 0,
            core_busy: Duration::ZERO,
            core_timer_busy: Duration::ZERO,
            outgoing: Vec::new(),
            clients: 0,
            by_addr: HashMap::new(),
        }
    }

    pub fn add_publisher(&mut self, router: &str) -> usize {
        self.add_publisher_with(router, browser_config())
    }

    /// A publisher whose browser sends VP9 (`browser_config_vp9`).
    pub fn add_publisher_vp9(&mut self, router: &str) -> usize {
        self.add_publisher_with(router, browser_config_vp9())
    }

    fn add_publisher_with(&mut self, router: &str, config: str0m::RtcConfig) -> usize {
        let transport = self
            .core
            .create_transport(router, Direction::Send, self.now)
            .expect("send transport");
        let addr = client_addr(self.clients);
        self.clients += 1;
        let index = self.pubs.len();
        self.by_addr.insert(addr, (true, index));
        self.pubs.push(Publisher::new(
            Endpoint::with_config(addr, self.now, config),
            transport,
            index,
        ));
        index
    }

    /// A World with a second Core (another worker) at `second_addr`.
    pub fn with_second_core() -> Self {
        let mut w = Self::new();
        w.second = Some(Core::new(second_addr(), second_addr()));
        w
    }

    /// The second Core (panics without one).
    pub fn second(&mut self) -> &mut Core {
        self.second.as_mut().expect("a World with a second core")
    }

    /// The Core that has this consumer.
    fn core_of_consumer(&mut self, consumer: &str) -> &mut Core {
        match &mut self.second {
            Some(second) if second.consumer_transport(consumer).is_some() => second,
            _ => &mut self.core,
        }
    }

    pub fn add_subscriber(&mut self, router: &str) -> usize {
        self.add_subscriber_at(router, false)
    }

    /// A subscriber whose recv transport is on the second Core.
    pub fn add_subscriber_on_second(&mut self, router: &str) -> usize {
        self.add_subscriber_at(router, true)
    }

    fn add_subscriber_at(&mut self, router: &str, on_second: bool) -> usize {
        let now = self.now;
        let core = if on_second {
            self.second()
        } else {
            &mut self.core
        };
        let transport = core
            .create_transport(router, Direction::Recv, now)
            .expect("recv transport");
        let addr = client_addr(self.clients);
        self.clients += 1;
        let index = self.subs.len();
        self.by_addr.insert(addr, (false, index));
        self.subs.push(Subscriber {
            ep: Endpoint::new(addr, self.now),
            transport,
            consumers: Vec::new(),
            on_second,
            version: 1,
            connected_core: false,
        });
        index
    }

    pub fn produce(&mut self, p: usize, kind: Kind, simulcast: bool) -> String {
        self.pubs[p]
            .produce(&mut self.core, kind, simulcast)
            .expect("produce")
    }

    /// `consume` on the Core, the client's `transport.consume()`, and (unless `paused`) the resume.
    pub fn consume_with(&mut self, s: usize, producer: &str, paused: bool) -> ConsumerInfo {
        let now = self.now;
        let core = match (self.subs[s].on_second, &mut self.second) {
            (true, Some(second)) => second,
            _ => &mut self.core,
        };
        let sub = &mut self.subs[s];
        let info = core
            .consume(&sub.transport.id, producer, &device_caps())
            .expect("consume");
        sub.receive(core, info.clone()).expect("client consume");
        if !paused {
            core.set_consumer_paused(&info.id, false, now)
                .expect("resume");
        }
        self.pump();
        info
    }

    pub fn resume(&mut self, consumer: &str) {
        let now = self.now;
        self.core_of_consumer(consumer)
            .set_consumer_paused(consumer, false, now)
            .expect("resume");
        self.pump();
    }

    pub fn pause(&mut self, consumer: &str) {
        let now = self.now;
        self.core_of_consumer(consumer)
            .set_consumer_paused(consumer, true, now)
            .expect("pause");
        self.pump();
    }

    /// Adds a subscriber, consumes `producers` on it and resumes them once it is connected.
    pub fn subscriber_for(
        &mut self,
        router: &str,
        producers: &[&str],
    ) -> (usize, Vec<ConsumerInfo>) {
        let s = self.add_subscriber(router);
        let infos: Vec<ConsumerInfo> = producers
            .iter()
            .map(|p| self.consume_with(s, p, true))
            .collect();
        assert!(
            self.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected),
            "subscriber never connected"
        );
        for c in &infos {
            self.resume(&c.id);
        }
        (s, infos)
    }

    pub fn consume(&mut self, s: usize, producer: &str) -> ConsumerInfo {
        self.consume_with(s, producer, false)
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn endpoint(&mut self, addr: SocketAddr) -> Option<&mut Endpoint> {
        match *self.by_addr.get(&addr)? {
            (true, i) => self.pubs.get_mut(i).map(|p| &mut p.ep),
            (false, i) => self.subs.get_mut(i).map(|s| &mut s.ep),
        }
    }

    /// Forgets a client (its datagrams stop, datagrams to it are counted as undeliverable).
    pub fn disconnect_client(&mut self, addr: SocketAddr) {
        self.by_addr.remove(&addr);
    }

    /// Moves datagrams both ways until nothing is in flight.
    /// A datagram from a core (`from`) to a client, through the downlink filter when one is set.
    fn deliver_down(&mut self, now: Instant, from: SocketAddr, dest: SocketAddr, d: &[u8]) {
        if let Some(f) = &mut self.downlink {
            if !f(from, dest, d) {
                return;
            }
        }
        match self.endpoint(dest) {
            Some(ep) => ep.receive(now, from, d),
            None => self.undeliverable += 1,
        }
    }

    pub fn pump(&mut self) {
        let now = self.now;
        for _ in 0..64 {
            let mut moved = false;
            let addrs: Vec<SocketAddr> = self.by_addr.keys().copied().collect();
            for addr in addrs {
                let on_second =
                    matches!(self.by_addr.get(&addr), Some(&(false, i)) if self.subs[i].on_second);
                let server = if on_second {
                    second_addr()
                } else {
                    server_addr()
                };
                while let Some(d) = self.endpoint(addr).and_then(|e| e.out.pop_front()) {
                    moved = true;
                    let deliver = match &mut self.uplink {
                        Some(f) => f(addr, server, &d),
                        None => true,
                    };
                    if deliver {
                        let t0 = Instant::now();
                        match (&mut self.second, on_second) {
                            (Some(second), true) => second.handle_receive(now, addr, &d),
                            _ => self.core.handle_receive(now, addr, &d),
                        }
                        self.core_busy += t0.elapsed();
                    }
                }
            }
            // Pipes between the two Cores, as the shell's channels move them.
            if let Some(second) = &mut self.second {
                while let Some(m) = self.core.poll_pipe_out() {
                    moved = true;
                    second.handle_pipe_out(now, m);
                }
                while let Some(m) = second.poll_pipe_back() {
                    moved = true;
                    self.core.handle_pipe_back(now, m);
                }
                second.drain_dirty(now);
                let mut from_second = Vec::new();
                while let Some(x) = second.poll_transmit() {
                    from_second.push(x);
                }
                for (dest, d) in from_second {
                    moved = true;
                    self.deliver_down(now, second_addr(), dest, &d);
                }
            }
            // Collect the Core's output first, so only the Core's work is timed.
            let t0 = Instant::now();
            self.core.drain_dirty(now);
            let mut outgoing = std::mem::take(&mut self.outgoing);
            while let Some(x) = self.core.poll_transmit() {
                outgoing.push(x);
            }
            self.core_busy += t0.elapsed();
            for (dest, d) in outgoing.drain(..) {
                moved = true;
                self.deliver_down(now, server_addr(), dest, &d);
            }
            self.outgoing = outgoing;
            if !moved {
                return;
            }
        }
    }

    /// One tick: timers of every client and of the Core, then the network.
    pub fn step(&mut self) {
        self.now += self.tick;
        let now = self.now;
        for p in &mut self.pubs {
            if self.by_addr.contains_key(&p.ep.addr) {
                p.ep.timeout(now);
            }
        }
        for s in &mut self.subs {
            if self.by_addr.contains_key(&s.ep.addr) {
                s.ep.timeout(now);
            }
        }
        let t0 = Instant::now();
        self.core.handle_timeout(now);
        if let Some(second) = &mut self.second {
            second.handle_timeout(now);
        }
        self.core_timer_busy += t0.elapsed();
        self.pump();
        self.media(now);
        self.pump();
    }

    /// Publishers with `auto` send audio every 20 ms and a video frame every 33 ms once connected.
    fn media(&mut self, now: Instant) {
        for p in &mut self.pubs {
            if !p.auto || !p.ep.connected || !self.by_addr.contains_key(&p.ep.addr) {
                continue;
            }
            if p.tracks.iter().any(|t| t.kind == Kind::Audio) {
                let due = p.next_audio.get_or_insert(now);
                if *due <= now {
                    *due += Duration::from_millis(20);
                    p.send_audio(now);
                }
            }
            if p.tracks.iter().any(|t| t.kind == Kind::Video) {
                let due = p.next_video.get_or_insert(now);
                if *due <= now {
                    *due += Duration::from_micros(33_333);
                    p.send_video_frame(now);
                }
            }
        }
    }

    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `done` holds, at most `limit`; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }
}

// ---- checks

/// Sequence numbers of `pkts` (arrival order) must be continuous, each exactly one more than the previous.
pub fn assert_continuous(pkts: &[&RtpPacket], what: &str) {
    for w in pkts.windows(2) {
        assert_eq!(
            *w[1].seq_no,
            *w[0].seq_no + 1,
            "{what}: sequence jumps from {} to {}",
            *w[0].seq_no,
            *w[1].seq_no
        );
    }
}

/// Whether this RTP payload is the first packet of a VP8 keyframe.
/// The (15-bit PictureID, TL0PICIDX) a `vp8_descriptor` track writes for `frame` of `layer`: every layer starts
/// somewhere else (a switch jumps backwards, forwards and across the 15-bit wrap).
pub fn vp8_ids(layer: usize, frame: u32) -> (u16, u8) {
    let pid_start = [32_700u32, 200, 16_000][layer % 3];
    let tl0_start = [250u32, 10, 128][layer % 3];
    (
        ((pid_start + frame) % 0x8000) as u16,
        ((tl0_start + frame) % 0x100) as u8,
    )
}

pub fn is_vp8_keyframe(payload: &[u8]) -> bool {
    str0m::format::detect_vp8_keyframe(payload)
}

/// RTP (not RTCP) header fields of a clear-header SRTP datagram: (ssrc, seq, payload type).
pub fn rtp_header(d: &[u8]) -> Option<(u32, u16, u8)> {
    if d.len() < 12 || !(128..192).contains(&d[0]) {
        return None;
    }
    let pt = d[1] & 0x7f;
    if (64..96).contains(&pt) {
        return None; // RTCP
    }
    let seq = u16::from_be_bytes([d[2], d[3]]);
    let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    Some((ssrc, seq, pt))
}

/// The whole handshake for one publisher (audio and/or video) and one subscriber consuming everything.
pub struct Pair {
    pub world: World,
    pub audio: Option<String>,
    pub video: Option<String>,
    pub audio_consumer: Option<ConsumerInfo>,
    pub video_consumer: Option<ConsumerInfo>,
}

pub fn pair(audio: bool, video: bool, simulcast: bool) -> Pair {
    let mut w = World::new();
    let p = w.add_publisher(ROUTER);
    let s = w.add_subscriber(ROUTER);
    let a = audio.then(|| w.produce(p, Kind::Audio, false));
    let v = video.then(|| w.produce(p, Kind::Video, simulcast));
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.pubs[p].ep.connected),
        "publisher never connected"
    );
    // Consumers are resumed once the subscriber is connected, so every check starts from a settled session
    // (resuming earlier, as apps do, has its own test: `resume_before_connect_*` in consumer_pause.rs).
    let ac = a.as_deref().map(|a| w.consume_with(s, a, true));
    let vc = v.as_deref().map(|v| w.consume_with(s, v, true));
    assert!(
        w.run_until(Duration::from_secs(3), |w| w.subs[s].ep.connected),
        "subscriber never connected"
    );
    for c in ac.iter().chain(vc.iter()) {
        w.resume(&c.id);
    }
    Pair {
        world: w,
        audio: a,
        video: v,
        audio_consumer: ac,
        video_consumer: vc,
    }
}
