//! The worker core: every WebRtcTransport, producer and consumer of one worker thread, and the forwarding between
//! them. Sans-IO: datagrams and `now` go in; datagrams to send, and the next deadline, come out. It never reads the
//! clock, never blocks and never panics on network input.
//!
//! Demultiplexing one UDP port among many transports (like mediasoup's WebRtcServer): STUN by the local ufrag in
//! its USERNAME, everything else by the source address a STUN request came from.

use crate::allocator;
use crate::fingerprint;
use crate::layers;
use crate::ortc::{self, Kind, ProducerMapping, RtpCapabilities, RtpParameters};
use crate::quality;
use crate::sdp::{self, Section, PLACEHOLDER_ICE_PWD};
use crate::speaker;
use crate::vp8;
mod pipe;
pub use pipe::{PipeBack, PipeOut, PipeSource, PipedRtp};
use serde_json::{json, Value};
use slotmap::SlotMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::format::{Codec, FormatParams};
use str0m::ice::StunMessage;
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues, RtpPacket, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

/// A simulcast layer with no packet for this long, while another layer of the same producer still flows, counts as
/// stopped: the consumer moves to a flowing layer. Chromium switches a layer off outright when its bandwidth estimate
/// or CPU drops; even at a degraded 5 fps a live layer has a packet every 200 ms. 1 s here froze a receiving
/// Chromium for 2.5 s in CI (the quiet second, then the keyframe round trip of a loaded encoder).
pub const LAYER_QUIET: Duration = Duration::from_millis(400);

/// Producers open at once on one send transport (a meeting client has at most audio, camera and screen).
const MAX_OPEN_SECTIONS: usize = 32;
/// Producers ever created on one send transport, closed ones included (their m-sections stay in the offer).
const MAX_SECTIONS: usize = 256;

/// Keyframe requests to one producer stream are at most this frequent.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// When a transport counts as dead (see [`Core::set_liveness`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// A connected transport with no authenticated STUN request (the browser's consent checks, RFC 7675: every few
    /// seconds) for this long has lost its peer.
    pub consent_timeout: Duration,
    /// A transport whose `connect` came but whose DTLS is not up this long after has failed (ICE never completed:
    /// UDP blocked, a wrong address announced, or the browser went away mid-setup).
    pub connect_timeout: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            consent_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// What the core tells its owner without being asked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CoreEvent {
    /// A transport failed and was closed, with its producers and its consumers (consumers of its producers on
    /// other transports included). `reason`: `dtls-failed` (handshake error or a peer certificate that does not
    /// match the fingerprint from `connect`), `ice-timeout` (consent lost), `connect-timeout` (DTLS never came up
    /// after `connect`), `transport-error`.
    TransportClosed {
        transport: String,
        router: String,
        direction: Direction,
        reason: &'static str,
        producers: Vec<String>,
        consumers: Vec<String>,
    },
    /// The dominant speaker of a router changed (`speaker.rs`): the producer of that audio.
    ActiveSpeaker { router: String, producer: String },
    /// A router's loudest audio producers over the last 500 ms, loudest first, linear amplitude 0–1 (`speaker.rs`);
    /// empty once when it falls silent.
    AudioLevels {
        router: String,
        levels: Vec<(String, f32)>,
    },
    /// How many spatial layers of a simulcast producer its consumers need changed (`producer:layers-needed`): the
    /// highest layer an unpaused consumer targets, plus one (at least 1: the lowest is always sent).
    LayersNeeded {
        router: String,
        producer: String,
        spatial_layers: usize,
    },
    /// A simulcast or SVC consumer now receives another spatial or temporal layer (mediasoup's `layerschange`):
    /// the highest of each it forwards (`temporal_layer` is the encoding's highest while every temporal layer goes
    /// out, or the payload carries no temporal layer ids).
    ConsumerLayersChanged {
        router: String,
        consumer: String,
        spatial_layer: usize,
        temporal_layer: usize,
    },
    /// A connected transport's connection quality changed (`quality.rs`); `previous` is None the first time.
    ConnectionQuality {
        router: String,
        transport: String,
        quality: quality::Quality,
        previous: Option<quality::Quality>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SfuError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    CannotConsume(String),
    #[error("{0}")]
    Unsupported(String),
}

impl From<ortc::OrtcError> for SfuError {
    fn from(e: ortc::OrtcError) -> Self {
        match e {
            ortc::OrtcError::Invalid(m) => SfuError::Invalid(format!("invalid rtpParameters: {m}")),
            ortc::OrtcError::Unsupported(m) => SfuError::Unsupported(m),
            ortc::OrtcError::CannotConsume(m) => SfuError::CannotConsume(m),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Send,
    Recv,
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn random_ssrc() -> u32 {
    use rand::Rng;
    rand::rng().random_range(100_000_000..=4_000_000_000)
}

slotmap::new_key_type! {
    /// A transport inside one core: an index + generation, so the packet path never hashes or clones the
    /// mediasoup-style id (`tr_…`), which is looked up once at the API boundary.
    struct TransportKey;
    /// A producer inside one core (see [`TransportKey`]).
    struct ProducerKey;
    /// A consumer inside one core (see [`TransportKey`]).
    struct ConsumerKey;
}

struct Transport {
    /// The external id (`tr_…`), for reports and logs.
    id: String,
    router: String,
    direction: Direction,
    rtc: Rtc,
    /// Our ICE username fragment (STUN routing key) and password (checks a request's MESSAGE-INTEGRITY before
    /// anything is learned from it).
    ufrag: String,
    pwd: String,
    /// The browser's, learned from its first binding request.
    remote_ufrag: Option<String>,
    /// A binding request was handed to str0m as nominating (see `route_stun`).
    nominated: bool,
    /// The browser's DTLS fingerprint (`sha-256 AB:…`), from `connect`.
    remote_fingerprint: Option<String>,
    /// The same as algorithm and digest: the peer's certificate is checked against it once DTLS is up.
    expected_fingerprint: Option<(String, Vec<u8>)>,
    /// The peer's DER certificate, captured while str0m hashes it (for algorithms str0m does not compute).
    peer_der: Option<Vec<u8>>,
    /// When the core first saw DTLS started by `connect` (its next liveness check), and when the last
    /// authenticated STUN request came (liveness).
    dtls_started: Option<Instant>,
    last_stun: Option<Instant>,
    /// Set when the transport failed: nothing more of it is handled; it is closed and reported.
    failed: Option<&'static str>,
    /// Send transports: the m-lines of the rebuilt offer, and whether it must be (re)applied.
    sections: Vec<Section>,
    offer_dirty: bool,
    offer_version: u64,
    /// Send transports: mid (as the client signalled it) → producer. Only read when an SSRC is first seen.
    mid_to_producer: HashMap<String, ProducerKey>,
    /// Send transports: incoming SSRC → (producer, spatial layer), learned from str0m's streams.
    ssrc_cache: HashMap<u32, (ProducerKey, usize)>,
    /// Recv transports: the next consumer mid, and mid → consumer (our mids: decimal numbers).
    next_mid: u32,
    mid_to_consumer: HashMap<Mid, ConsumerKey>,
    /// This transport's producers and consumers (closing a transport, its Connected event).
    producers: Vec<ProducerKey>,
    consumers: Vec<ConsumerKey>,
    sources: HashSet<SocketAddr>,
    /// str0m's next timeout for this transport.
    deadline: Instant,
    /// The deadline heap's live entry for this transport (see `Core::schedule`).
    scheduled: Option<Instant>,
    /// Queued in `Core::dirty` (written to since it was last drained).
    dirty: bool,
    connected: bool,
    /// One CNAME for every producer of a send transport (mediasoup's `cnameForProducers`): the first one a client
    /// gives, else a random one. mediasoup-client sends an empty CNAME for simulcast video, and a consumer with an
    /// empty CNAME gets an SDP `a=msid` Chrome refuses; one shared CNAME also keeps audio and video in sync.
    cname: Option<String>,
    /// Connection quality from str0m's once-a-second stats (`quality.rs`).
    link: quality::Link,
    /// Recv transports: the bandwidth estimate (bps) when there is one, and its share-out across video consumers.
    estimate: Option<u64>,
    allocation: allocator::Allocator<ConsumerKey>,
    /// What str0m was last asked to reach (bps), and when to ask again if the estimate stays below it.
    desired: u64,
    next_probe: Option<Instant>,
    /// A re-probe lowered the desired rate at the last share-out; the next raises it again.
    probe_lowered: bool,
    /// str0m's raw estimate while it has not moved by a single bit/s over loss-free peer stats, and since when
    /// (`BWE_STALL`).
    raw_flat: Option<(u64, Instant)>,
    /// When str0m's estimator was last started again (at most every `BWE_RESTART_INTERVAL`).
    restarted: Option<Instant>,
    /// str0m's last raw estimate and bytes sent, from its once-a-second peer stats (`on_raw_estimate`).
    last_tx: Option<(u64, Instant)>,
    /// With BWE, peer stats come every [`BWE_STATS_INTERVAL`]: this many of them close one link window.
    stats_per_window: u8,
    stats_seen: u8,
}

impl Transport {
    /// The peer certificate must be captured while str0m handles this transport (see `fingerprint.rs`).
    fn wants_peer_der(&self) -> bool {
        !self.connected
            && self.peer_der.is_none()
            && self
                .expected_fingerprint
                .as_ref()
                .is_some_and(|(a, _)| !fingerprint::str0m_computes(a))
    }
}

struct Producer {
    /// The external id (`pr_…`).
    id: String,
    router: String,
    transport: TransportKey,
    /// The mid of its m-section on the send transport.
    mid: String,
    mapping: ProducerMapping,
    /// The router codec as str0m knows it (keyframe detection), looked up once.
    codec: Codec,
    paused: bool,
    /// Fan-out list: iterated by index per packet, never cloned.
    consumers: Vec<ConsumerKey>,
    /// The SSRC seen for each spatial layer, and when a keyframe was last asked of it.
    layer_ssrcs: Vec<Option<u32>>,
    last_keyframe_request: Vec<Option<Instant>>,
    /// When each layer last carried a packet: a browser drops its upper layers under CPU or bandwidth pressure,
    /// and a consumer on a layer that went quiet must move to one that still flows.
    last_packet: Vec<Option<Instant>>,
    /// Spatial layers its consumers need, as last reported (all of them until a change is reported).
    needed_layers: usize,
    /// Each spatial layer's bitrate (simulcast encodings, or SVC spatial layers): what the allocator shares an
    /// estimate with.
    rates: allocator::LayerRates,
    /// The lowest spatial layer's bitrate per temporal layer (when its packets carry temporal layer ids).
    temporal_rates: allocator::LayerRates,
    /// VP8/VP9 with temporal layers or VP9 SVC: packets are parsed for their layers, consumers filter them.
    layered: bool,
    /// VP9 SVC: when each spatial layer last carried a packet. An encoder drops its upper layers when its bandwidth
    /// or CPU is short (Chromium starts with the lowest alone); in k-SVC a consumer on a layer that is not sent gets
    /// nothing between keyframes, so it aims at the highest layer that flows (as at `LAYER_QUIET` for simulcast).
    svc_last_packet: Vec<Option<Instant>>,
    /// The recorder's virtual subscriber, while this producer is recorded (`record.rs`).
    tap: Option<crate::record::Tap>,
    /// Its consumers' place when a transport's estimate is shared out (screen share, spotlight; the meeting sets it).
    priority: allocator::Priority,
    /// A pipe producer (`pipe.rs`): fed by this pipe from the real producer on another core, not by a transport.
    pipe_in: Option<u64>,
    /// The pipes this producer feeds (`pipe.rs`), each with the spatial layers its far side needs.
    pipes_out: Vec<(u64, usize)>,
}

impl Producer {
    /// Spatial layers a consumer can choose from: simulcast encodings or SVC layers.
    fn spatial_layers(&self) -> usize {
        self.layer_ssrcs
            .len()
            .max(usize::from(self.mapping.spatial_layers))
    }
}

struct Consumer {
    /// The external id (`co_…`).
    id: String,
    transport: TransportKey,
    producer: ProducerKey,
    mid: Mid,
    ssrc: u32,
    payload_type: u8,
    paused: bool,
    /// Highest spatial layer wanted (`quality:change` later; the highest by default).
    target_layer: usize,
    /// The layer being forwarded; None until a (key)frame starts the stream, and after a pause.
    current_layer: Option<usize>,
    /// out_seq = in_seq − seq_delta; out_ts = in_ts − ts_delta.
    seq_delta: i64,
    ts_delta: u32,
    /// Packets older than the switch point are dropped.
    floor_seq: u64,
    last_out_seq: u64,
    last_out_ts: u32,
    sent_any: bool,
    packets: u64,
    /// VP8 simulcast or temporal layers: keeps picture id and tl0picidx continuous across layer switches and
    /// dropped pictures.
    vp8: Option<vp8::Rewriter>,
    /// Temporal layers (VP8, VP9) and SVC spatial layers (VP9) inside the stream (`layers.rs`).
    filter: Option<layers::LayerFilter>,
    /// Sequence numbers stay continuous over what the filter drops.
    gaps: layers::SeqGaps,
    /// The producer's highest temporal layer.
    top_temporal: u8,
    /// Highest temporal layer wanted (`set_consumer_preferred_temporal_layer`; the highest by default).
    preferred_temporal: u8,
    /// The (spatial, temporal) layers last reported (`CoreEvent::ConsumerLayersChanged`).
    reported: Option<(usize, usize)>,
    /// Highest layer the transport's bandwidth estimate allows (`allocator.rs`); None = no estimate, no limit.
    allowed_layer: Option<usize>,
    /// Highest temporal layer the estimate allows (below the top only on the lowest spatial layer).
    allowed_temporal: Option<u8>,
}

impl Consumer {
    /// The layer forwarding aims at: the client's preference, within what the estimate allows.
    fn goal(&self) -> usize {
        self.allowed_layer
            .map_or(self.target_layer, |a| a.min(self.target_layer))
    }

    /// The temporal layer forwarding aims at: the preference, within what the estimate allows.
    fn temporal_goal(&self) -> u8 {
        let wanted = self.preferred_temporal.min(self.top_temporal);
        self.allowed_temporal.map_or(wanted, |t| t.min(wanted))
    }
}

/// What `create_transport` returns: mediasoup's WebRtcTransport shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportInfo {
    pub id: String,
    pub params: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerInfo {
    pub id: String,
    pub kind: Kind,
    pub rtp_parameters: RtpParameters,
    pub consumer_type: &'static str,
    pub producer_paused: bool,
}

/// Counters for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Routers with at least one transport: the meetings whose media this worker carries.
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub dropped_datagrams: u64,
    pub keyframe_requests: u64,
    /// Transport timers handled by `handle_timeout` (each one a str0m `Input::Timeout`).
    pub transport_timeouts: u64,
    /// RTP packets handed to pipes (one per pipe), and received from pipes (`pipe.rs`).
    pub piped_out: u64,
    pub piped_in: u64,
}

pub struct Core {
    liveness: Liveness,
    /// Reported transport failures, oldest first.
    events: VecDeque<CoreEvent>,
    /// Transports that failed inside a call, closed at its end (see `settle_failures`).
    failing: Vec<TransportKey>,
    /// Liveness is checked at most this often (it looks at every transport).
    next_liveness_check: Option<Instant>,
    local_addr: SocketAddr,
    announced: SocketAddr,
    transports: SlotMap<TransportKey, Transport>,
    producers: SlotMap<ProducerKey, Producer>,
    consumers: SlotMap<ConsumerKey, Consumer>,
    /// External ids → handles: the only place the API's strings are hashed.
    transport_ids: HashMap<String, TransportKey>,
    producer_ids: HashMap<String, ProducerKey>,
    consumer_ids: HashMap<String, ConsumerKey>,
    by_ufrag: HashMap<String, TransportKey>,
    by_source: HashMap<SocketAddr, TransportKey>,
    /// Transport deadlines, earliest first, with lazy invalidation: an entry is live only while it equals its
    /// transport's `scheduled` (a moved deadline pushes a new entry; the old one is skipped when it surfaces), so
    /// neither a datagram nor a timer tick looks at every transport.
    deadlines: BinaryHeap<Reverse<(Instant, TransportKey)>>,
    outgoing: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Transports written to since the last drain (each at most once: `Transport::dirty`).
    dirty: Vec<TransportKey>,
    stats: CoreStats,
    /// The shell's `(Instant, SystemTime)` at one moment, to turn a producer's RTCP sender-report NTP time into the
    /// `Instant` str0m takes as a packet's wallclock.
    clock_base: Option<(Instant, std::time::SystemTime)>,
    /// HMAC-SHA1 for STUN MESSAGE-INTEGRITY, looked up once.
    hmac: &'static dyn str0m::crypto::Sha1HmacProvider,
    /// One DTLS certificate for every transport of this core, as mediasoup has one per worker: generating one per
    /// transport cost ~1.4 ms of the worker thread each (`cargo bench -p sfu` prints create_transport).
    dtls_cert: Option<str0m::crypto::dtls::DtlsCert>,
    /// Every address a transport is reachable on (`set_listen_addrs`); empty = UDP on `local_addr` only.
    listens: Vec<ListenAddr>,
    /// What leaves from another socket than the primary UDP one (TCP, other addresses): see `poll_transmit_via`.
    outgoing_via: VecDeque<Transmit>,
    /// Test hook (`debug_drop_transport`): a transport's datagrams, both ways, are dropped until then.
    debug_drops: HashMap<TransportKey, Instant>,
    /// The protocol of each transport's latest routed STUN request (what its ICE ran over).
    ice_protocols: HashMap<TransportKey, Protocol>,
    /// ICE failures not yet taken by the shell: (protocol or `none`, reason).
    ice_failures: Vec<(&'static str, &'static str)>,
    /// Audio-level meters and the dominant speaker per router.
    speakers: speaker::Speakers<ProducerKey>,
    /// Link windows not yet taken by the shell (bounded: nobody may take them in tests).
    link_figures: Vec<quality::Figures>,
    /// When estimates are next shared out (`allocate_layers`).
    next_allocation: Option<Instant>,
    /// str0m's bandwidth estimation on recv transports created from now on (`set_bandwidth_estimation`).
    bwe: bool,
    /// Pipes (`pipe.rs`): what goes to the far cores (packets, pause, close) and back to the real producers'
    /// cores (keyframe requests, layers needed), and each pipe's producer here.
    pipe_out: VecDeque<PipeOut>,
    pipe_back: VecDeque<PipeBack>,
    pipes_in: HashMap<u64, ProducerKey>,
    pipes_out_ids: HashMap<u64, ProducerKey>,
}

/// How often a recv transport with BWE reports its raw estimate (peer stats).
const BWE_STATS_INTERVAL: Duration = Duration::from_millis(500);

/// Loss above this over a stats window (TWCC, what the subscriber did not receive) cuts the estimate to what got
/// through (libwebrtc's loss-based controller cuts above 10 %).
const LOSS_CUT: f32 = 0.1;

/// A recv transport's estimate from str0m's once-a-second peer stats: its raw estimate (the event's estimate is an
/// average over 3 s of values, which falls seconds after a link's capacity does and climbs as slowly), cut to what
/// reached the subscriber when the window lost more than [`LOSS_CUT`] (a queue that overflows: the delay-based
/// estimate may not have fallen yet). The allocator's hysteresis keeps the raw estimate's wobbles from moving
/// layers up; down moves are what must be fast.
fn on_raw_estimate(t: &mut Transport, s: &str0m::stats::PeerStats) {
    if t.direction != Direction::Recv {
        return;
    }
    let Some(raw) = s.bwe_tx else {
        return;
    };
    let mut estimate = raw.as_u64();
    let lossless = s.egress_loss_fraction.is_none_or(|l| l <= 0.0);
    t.raw_flat = match t.raw_flat {
        Some((v, since)) if v == estimate && lossless => Some((v, since)),
        _ if lossless => Some((estimate, s.timestamp)),
        _ => None,
    };
    let sent_bps = t.last_tx.and_then(|(bytes, at)| {
        let secs = s.timestamp.saturating_duration_since(at).as_secs_f64();
        (secs > 0.2).then(|| (s.peer_bytes_tx.saturating_sub(bytes) as f64 * 8.0 / secs) as u64)
    });
    t.last_tx = Some((s.peer_bytes_tx, s.timestamp));
    if let (Some(loss), Some(sent)) = (s.egress_loss_fraction, sent_bps) {
        if loss.is_finite() && loss > LOSS_CUT {
            let through = (sent as f64 * f64::from(1.0 - loss.min(1.0)) * 0.9) as u64;
            estimate = estimate.min(through);
        }
    }
    tracing::debug!(transport = %t.id, raw = raw.as_u64(), loss = ?s.egress_loss_fraction, sent = ?sent_bps, estimate, "estimate");
    t.estimate = Some(estimate);
}

/// Where str0m's estimate starts (mediasoup's `initialAvailableOutgoingBitrate` is 600 kbps).
const INITIAL_ESTIMATE_KBPS: u64 = 1_000;

/// How long str0m's raw estimate may stay exactly the same, with no loss, while consumers want more, before its
/// estimator is started again from that value (`allocate_layers`).
const BWE_STALL: Duration = Duration::from_secs(3);

/// The least time between two restarts of one transport's estimator: each restart probes (str0m's start-up probes
/// go to several times the estimate), which a link that really is that narrow should not get every few seconds.
const BWE_RESTART_INTERVAL: Duration = Duration::from_secs(10);

/// How often a transport whose estimate stays below what its consumers want is probed again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a transport's estimate is shared out across its consumers.
const ALLOCATION_INTERVAL: Duration = Duration::from_millis(100);

/// At most this many link windows wait for the shell (one per transport per second).
const MAX_LINK_FIGURES: usize = 16_384;

/// One address the worker listens on: its socket's address (what str0m's candidate must equal), what clients are
/// told, and the protocol (UDP, or TCP passive with RFC 4571 framing in the shell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub announced: SocketAddr,
}

/// A datagram to send from a particular local socket (`Core::poll_transmit_via`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub destination: SocketAddr,
    pub data: Vec<u8>,
}

/// An ICE candidate's priority as mediasoup computes it (RFC 8445 §5.1.2.1, host type): every UDP address above
/// every TCP one, and earlier addresses above later ones.
fn candidate_priority(protocol: Protocol, index: usize) -> u32 {
    let type_pref: u32 = if protocol == Protocol::Udp { 64 } else { 32 };
    let local_pref = 65_535u32.saturating_sub(index.min(65_535) as u32);
    (type_pref << 24) | (local_pref << 8) | 255
}

fn str0m_codec(mime: &str) -> Option<Codec> {
    match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => Some(Codec::Opus),
        "video/vp8" => Some(Codec::Vp8),
        "video/vp9" => Some(Codec::Vp9),
        "video/h264" => Some(Codec::H264),
        "video/av1" => Some(Codec::Av1),
        _ => None,
    }
}

/// A controlling agent's binding request without USE-CANDIDATE, rebuilt with it (and re-signed with `pwd`).
fn nominating_copy(
    msg: &StunMessage,
    pwd: &str,
    hmac: &'static dyn str0m::crypto::Sha1HmacProvider,
) -> Option<Vec<u8>> {
    if !msg.is_binding_request() || msg.use_candidate() {
        return None;
    }
    let tie_breaker = msg.ice_controlling()?;
    let username = msg.username()?;
    let copy = StunMessage::binding_request(
        username,
        msg.trans_id(),
        true,
        tie_breaker,
        msg.prio().unwrap_or(0),
        true,
    );
    let mut out = vec![0u8; 512];
    let n = copy
        .to_bytes(Some(pwd.as_bytes()), &mut out, |k, p| hmac.sha1_hmac(k, p))
        .ok()?;
    out.truncate(n);
    Some(out)
}

/// str0m's configuration for every transport: ICE-lite, RTP mode, the router's codecs and header extensions in
/// router numbering (a send transport learns the browser's numbering from the rebuilt offer).
fn rtc_config(ufrag: &str, pwd: &str) -> RtcConfig {
    let mut exts = ExtensionMap::empty();
    exts.set(1, Extension::RtpMid);
    exts.set(2, Extension::RtpStreamId);
    exts.set(3, Extension::RepairedRtpStreamId);
    exts.set(4, Extension::AbsoluteSendTime);
    exts.set(5, Extension::TransportSequenceNumber);
    exts.set(10, Extension::AudioLevel);
    exts.set(11, Extension::VideoOrientation);
    exts.set(12, Extension::TransmissionTimeOffset);
    let mut cfg = RtcConfig::new()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // The core checks the peer certificate itself, for every algorithm mediasoup accepts (`fingerprint.rs`).
        .set_fingerprint_verification(false)
        .set_crypto_provider(fingerprint::provider())
        .set_local_ice_credentials(IceCreds {
            ufrag: ufrag.to_owned(),
            pass: pwd.to_owned(),
        })
        .clear_codecs()
        .set_extension_map(exts)
        // Once a second: loss, RTT and jitter per transport for its connection quality (`quality.rs`).
        .set_stats_interval(Some(Duration::from_secs(1)));
    for c in ortc::router_codecs() {
        let Some(codec) = str0m_codec(c.mime_type) else {
            continue;
        };
        let mut format = FormatParams::default();
        match codec {
            Codec::Opus => {
                format.min_p_time = Some(10);
                format.use_inband_fec = Some(true);
            }
            Codec::H264 => {
                format.level_asymmetry_allowed = Some(true);
                format.packetization_mode = Some(1);
                format.profile_level_id = Some(0x42e01f);
            }
            Codec::Vp9 => format.profile_id = Some(0),
            _ => {}
        }
        cfg.codec_config().add_config(
            Pt::from(c.payload_type),
            c.rtx_payload_type.map(Pt::from),
            codec,
            Frequency::new(c.clock_rate).unwrap_or(Frequency::NINETY_KHZ),
            c.channels,
            format,
        );
    }
    cfg
}

fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => str0m::format::detect_vp8_keyframe(payload),
        Codec::Vp9 => str0m::format::detect_vp9_keyframe(payload),
        Codec::H264 => str0m::format::detect_h264_keyframe(payload),
        Codec::Av1 => str0m::format::detect_av1_keyframe(payload),
        _ => true,
    }
}

impl Core {
    /// `local_addr` is the socket's address (what str0m's candidate must equal); `announced` is what clients are
    /// told (a public address for servers behind NAT).
    pub fn new(local_addr: SocketAddr, announced: SocketAddr) -> Self {
        Self {
            liveness: Liveness::default(),
            events: VecDeque::new(),
            failing: Vec::new(),
            next_liveness_check: None,
            local_addr,
            announced,
            transports: SlotMap::with_key(),
            producers: SlotMap::with_key(),
            consumers: SlotMap::with_key(),
            transport_ids: HashMap::new(),
            producer_ids: HashMap::new(),
            consumer_ids: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_source: HashMap::new(),
            deadlines: BinaryHeap::new(),
            outgoing: VecDeque::new(),
            dirty: Vec::new(),
            stats: CoreStats::default(),
            clock_base: None,
            hmac: str0m::crypto::from_feature_flags().sha1_hmac_provider,
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            listens: Vec::new(),
            outgoing_via: VecDeque::new(),
            debug_drops: HashMap::new(),
            ice_protocols: HashMap::new(),
            ice_failures: Vec::new(),
            speakers: speaker::Speakers::default(),
            link_figures: Vec::new(),
            next_allocation: None,
            bwe: false,
            pipe_out: VecDeque::new(),
            pipe_back: VecDeque::new(),
            pipes_in: HashMap::new(),
            pipes_out_ids: HashMap::new(),
        }
    }

    /// Transports closed because ICE failed (`ice-timeout`, `connect-timeout`) since the last call, as
    /// `(protocol, reason)`: the protocol of the last STUN request that reached us (`udp`, `tcp`), or `none` when
    /// none ever did (the client's network blocks every path to us). For `/metrics`.
    pub fn take_ice_failures(&mut self) -> Vec<(&'static str, &'static str)> {
        std::mem::take(&mut self.ice_failures)
    }

    /// Every address new transports get a candidate for, in preference order (UDP ones first by priority). Without
    /// a call, UDP on the address given to `new`. An empty list keeps that default.
    pub fn set_listen_addrs(&mut self, listens: Vec<ListenAddr>) {
        self.listens = listens;
    }

    fn listen_addrs(&self) -> Vec<ListenAddr> {
        if self.listens.is_empty() {
            vec![ListenAddr {
                protocol: Protocol::Udp,
                local: self.local_addr,
                announced: self.announced,
            }]
        } else {
            self.listens.clone()
        }
    }

    /// The next datagram to send that does not leave from the primary UDP socket (`poll_transmit`'s): over TCP, or
    /// from another address.
    pub fn poll_transmit_via(&mut self) -> Option<Transmit> {
        self.outgoing_via.pop_front()
    }

    /// `restart-ice` (mediasoup's `WebRtcTransport.restartIce`): new local ICE credentials; the browser's checks
    /// with them select a path again (from any address). DTLS and media state are kept. Returns `iceParameters`.
    pub fn restart_ice(&mut self, id: &str) -> Result<Value, SfuError> {
        let tk = self
            .transport_key(id)
            .ok_or(SfuError::NotFound("transport"))?;
        let t = self
            .transports
            .get_mut(tk)
            .filter(|t| t.failed.is_none())
            .ok_or(SfuError::NotFound("transport"))?;
        let ufrag = random_token(16);
        let pwd = random_token(32);
        t.rtc.direct_api().set_local_ice_credentials(IceCreds {
            ufrag: ufrag.clone(),
            pass: pwd.clone(),
        });
        let old = std::mem::replace(&mut t.ufrag, ufrag.clone());
        t.pwd = pwd.clone();
        // The first check with the new credentials selects its pair at once (see `route_stun`).
        t.nominated = false;
        // Addresses are learned again from authenticated checks (the browser may come from elsewhere now).
        for s in t.sources.drain() {
            self.by_source.remove(&s);
        }
        self.by_ufrag.remove(&old);
        self.by_ufrag.insert(ufrag.clone(), tk);
        self.mark_dirty(tk);
        Ok(json!({"usernameFragment": ufrag, "password": pwd, "iceLite": true}))
    }

    /// Test hook (off unless the shell's debug setting enables the path that calls it): every datagram of this
    /// transport, in and out, is dropped until `until` — a network outage of one browser. False if unknown.
    pub fn debug_drop_transport(&mut self, id: &str, until: Instant) -> bool {
        let Some(tk) = self.transport_key(id) else {
            return false;
        };
        self.debug_drops.insert(tk, until);
        true
    }

    fn debug_dropped(&self, tk: TransportKey, now: Instant) -> bool {
        !self.debug_drops.is_empty() && self.debug_drops.get(&tk).is_some_and(|u| now < *u)
    }

    /// Lets the core map sender-report NTP times to `Instant`s (the shell reads both clocks once at start-up).
    /// Without it, forwarded packets carry their arrival time as wallclock.
    pub fn set_clock_base(&mut self, instant: Instant, system: std::time::SystemTime) {
        self.clock_base = Some((instant, system));
    }

    /// The wallclock of a forwarded packet: from the producer's latest sender report when there is one, so the
    /// consumer's own sender reports keep the publisher's audio/video timing (lip sync); else its arrival time.
    fn wallclock(&self, pkt: &RtpPacket, clock_rate: u32) -> Instant {
        let (Some((base_i, base_s)), Some(sr)) = (self.clock_base, pkt.last_sender_info.as_ref())
        else {
            return pkt.timestamp;
        };
        let sr_rtp = sr.rtp_time.numer() as u32;
        let diff = pkt.header.timestamp.wrapping_sub(sr_rtp) as i32;
        let offset_us = i64::from(diff) * 1_000_000 / i64::from(clock_rate.max(1));
        let at = match sr.ntp_time.duration_since(base_s) {
            Ok(d) => base_i.checked_add(d),
            Err(e) => base_i.checked_sub(e.duration()),
        };
        let at = if offset_us >= 0 {
            at.and_then(|t| t.checked_add(Duration::from_micros(offset_us as u64)))
        } else {
            at.and_then(|t| t.checked_sub(Duration::from_micros(offset_us.unsigned_abs())))
        };
        // A sender report far from the arrival time is a foreign clock; arrival time is safer than a wild jump.
        match at {
            Some(t)
                if t.max(pkt.timestamp)
                    .saturating_duration_since(t.min(pkt.timestamp))
                    < Duration::from_secs(5) =>
            {
                t
            }
            _ => pkt.timestamp,
        }
    }

    pub fn stats(&self) -> CoreStats {
        let routers: std::collections::HashSet<&str> = self
            .transports
            .values()
            .map(|t| t.router.as_str())
            .collect();
        CoreStats {
            routers: routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            ..self.stats.clone()
        }
    }

    fn transport_key(&self, id: &str) -> Option<TransportKey> {
        self.transport_ids.get(id).copied()
    }

    fn producer_key(&self, id: &str) -> Option<ProducerKey> {
        self.producer_ids.get(id).copied()
    }

    fn consumer_key(&self, id: &str) -> Option<ConsumerKey> {
        self.consumer_ids.get(id).copied()
    }

    /// Queues a transport for `drain_dirty` (once until it is drained).
    fn mark_dirty(&mut self, tk: TransportKey) {
        if let Some(t) = self.transports.get_mut(tk) {
            if !t.dirty {
                t.dirty = true;
                self.dirty.push(tk);
            }
        }
    }

    /// Records str0m's next timeout for a transport. The heap gets an entry only when the deadline moves earlier
    /// than the live one; a later deadline is re-queued when the live entry surfaces (`handle_timeout`).
    fn schedule(&mut self, tk: TransportKey, at: Instant) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        t.deadline = at;
        if t.scheduled.is_none_or(|s| at < s) {
            t.scheduled = Some(at);
            self.deadlines.push(Reverse((at, tk)));
        }
    }

    /// Whether a heap entry is its transport's live one.
    fn is_live(&self, at: Instant, tk: TransportKey) -> bool {
        self.transports
            .get(tk)
            .is_some_and(|t| t.scheduled == Some(at))
    }

    /// Drops stale entries from the top of the heap, so `next_deadline` sees a live one.
    fn prune_deadlines(&mut self) {
        while let Some(&Reverse((at, tk))) = self.deadlines.peek() {
            if self.is_live(at, tk) {
                return;
            }
            self.deadlines.pop();
        }
    }

    // ---- control

    pub fn create_transport(
        &mut self,
        router: &str,
        direction: Direction,
        now: Instant,
    ) -> Result<TransportInfo, SfuError> {
        let ufrag = random_token(16);
        let pwd = random_token(32);
        let mut cfg = rtc_config(&ufrag, &pwd);
        if self.bwe && direction == Direction::Recv {
            // Peer stats twice a second: the raw estimate and the loss they carry move layers down sooner
            // (`on_raw_estimate`); the link meter still closes a window every second (`on_link_stats`).
            cfg = cfg
                .enable_bwe(Some(str0m::bwe::Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
                .set_stats_interval(Some(BWE_STATS_INTERVAL));
        }
        if let Some(cert) = &self.dtls_cert {
            cfg = cfg.set_dtls_cert(cert.clone());
        }
        let mut rtc = cfg.build(now);
        let mut ice_candidates = Vec::new();
        for (i, l) in self.listen_addrs().iter().enumerate() {
            let tcp = l.protocol != Protocol::Udp;
            let candidate = Candidate::host(l.local, if tcp { "tcp" } else { "udp" })
                .map_err(|e| SfuError::Invalid(format!("candidate: {e}")))?;
            rtc.add_local_candidate(candidate);
            let mut c = json!({
                "foundation": if tcp { "tcpcandidate" } else { "udpcandidate" },
                "priority": candidate_priority(l.protocol, i),
                "ip": l.announced.ip().to_string(),
                "address": l.announced.ip().to_string(),
                "protocol": if tcp { "tcp" } else { "udp" },
                "port": l.announced.port(),
                "type": "host",
            });
            if tcp {
                c["tcpType"] = json!("passive");
            }
            ice_candidates.push(c);
        }
        let fp = rtc.direct_api().local_dtls_fingerprint().to_string();
        let (algorithm, value) = fp.split_once(' ').unwrap_or(("sha-256", fp.as_str()));
        let id = format!("tr_{}", random_token(16));
        let params = json!({
            "id": id,
            "iceParameters": {"usernameFragment": ufrag, "password": pwd, "iceLite": true},
            "iceCandidates": ice_candidates,
            "dtlsParameters": {"role": "auto", "fingerprints": [{"algorithm": algorithm, "value": value}]},
        });
        let tk = self.transports.insert(Transport {
            id: id.clone(),
            router: router.to_owned(),
            direction,
            rtc,
            ufrag: ufrag.clone(),
            pwd,
            remote_ufrag: None,
            nominated: false,
            remote_fingerprint: None,
            expected_fingerprint: None,
            peer_der: None,
            dtls_started: None,
            last_stun: None,
            failed: None,
            sections: Vec::new(),
            offer_dirty: false,
            offer_version: 1,
            mid_to_producer: HashMap::new(),
            ssrc_cache: HashMap::new(),
            next_mid: 0,
            mid_to_consumer: HashMap::new(),
            producers: Vec::new(),
            consumers: Vec::new(),
            sources: HashSet::new(),
            deadline: now,
            scheduled: None,
            dirty: false,
            connected: false,
            cname: None,
            link: quality::Link::default(),
            estimate: None,
            allocation: allocator::Allocator::default(),
            desired: 0,
            next_probe: None,
            probe_lowered: false,
            raw_flat: None,
            restarted: None,
            last_tx: None,
            stats_per_window: if self.bwe && direction == Direction::Recv {
                2
            } else {
                1
            },
            stats_seen: 0,
        });
        self.by_ufrag.insert(ufrag, tk);
        self.transport_ids.insert(id.clone(), tk);
        self.schedule(tk, now);
        self.mark_dirty(tk);
        Ok(TransportInfo { id, params })
    }

    /// The transport's router, if it exists (callers check ownership with it).
    pub fn transport_router(&self, id: &str) -> Option<&str> {
        let tk = self.transport_key(id)?;
        self.transports.get(tk).map(|t| t.router.as_str())
    }

    /// `connect-transport`: the client's DTLS fingerprint and role. Every algorithm mediasoup accepts is taken
    /// (sha-1, sha-224, sha-256, sha-384, sha-512; sha-256 preferred when several are given, else the last, as
    /// mediasoup does); the peer's certificate is checked against it when DTLS comes up.
    pub fn connect_transport(&mut self, id: &str, dtls: &Value) -> Result<(), SfuError> {
        let invalid = |m: &str| SfuError::Invalid(format!("invalid dtlsParameters: {m}"));
        let fps = dtls
            .get("fingerprints")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("fingerprints missing"))?;
        let algorithm_of = |f: &Value| {
            f.get("algorithm")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        };
        let pick = fps
            .iter()
            .rev()
            .find(|f| algorithm_of(f).as_deref() == Some("sha-256"))
            .or_else(|| fps.last())
            .ok_or_else(|| invalid("no fingerprint"))?;
        let algorithm = algorithm_of(pick).ok_or_else(|| invalid("algorithm missing"))?;
        let value = pick
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("value missing"))?;
        if algorithm.len() > 16
            || value.len() > 200
            || algorithm.contains(char::is_whitespace)
            || value.contains(char::is_whitespace)
        {
            return Err(invalid("malformed fingerprint"));
        }
        let Some(len) = fingerprint::digest_len(&algorithm) else {
            return Err(invalid(&format!(
                "unsupported fingerprint algorithm {algorithm:?} (accepted: {})",
                fingerprint::ALGORITHMS.join(", ")
            )));
        };
        let text = format!("{algorithm} {value}");
        let fp: str0m::config::Fingerprint =
            text.parse().map_err(|_| invalid("malformed fingerprint"))?;
        if fp.bytes.len() != len {
            return Err(invalid(&format!(
                "a {algorithm} fingerprint has {len} bytes, this one {}",
                fp.bytes.len()
            )));
        }
        let role = match dtls.get("role") {
            None | Some(Value::Null) => "client",
            Some(v) => v.as_str().ok_or_else(|| invalid("role must be a string"))?,
        };
        if !matches!(role, "client" | "server" | "auto") {
            return Err(invalid("role must be client, server or auto"));
        }
        let tk = self
            .transport_key(id)
            .ok_or(SfuError::NotFound("transport"))?;
        let t = self
            .transports
            .get_mut(tk)
            .ok_or(SfuError::NotFound("transport"))?;
        if t.remote_fingerprint.is_some() {
            return Err(SfuError::Invalid("transport already connected".into()));
        }
        t.expected_fingerprint = Some((algorithm, fp.bytes.clone()));
        let mut api = t.rtc.direct_api();
        api.set_remote_fingerprint(fp);
        // mediasoup's rule: a client-role peer makes us the DTLS server; server or auto makes us the client.
        api.start_dtls(role != "client")
            .map_err(|e| SfuError::Invalid(format!("dtls: {e}")))?;
        t.remote_fingerprint = Some(text);
        tracing::debug!(transport = %id, dtls_client = role != "client", "dtls started");
        if t.direction == Direction::Send && !t.sections.is_empty() {
            t.offer_dirty = true;
        }
        self.apply_offer(tk)?;
        self.mark_dirty(tk);
        Ok(())
    }

    /// How long a transport may go without its peer (defaults: [`Liveness::default`]).
    pub fn set_liveness(&mut self, liveness: Liveness) {
        self.liveness = liveness;
    }

    /// The next transport failure to report.
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// Marks a transport failed: nothing more of it is handled, and the end of the current call closes it.
    fn fail(&mut self, tk: TransportKey, reason: &'static str) {
        if let Some(t) = self.transports.get_mut(tk) {
            if t.failed.is_none() {
                t.failed = Some(reason);
                self.failing.push(tk);
            }
        }
    }

    /// Closes the transports that failed, and reports each.
    fn settle_failures(&mut self) {
        if self.failing.is_empty() {
            return;
        }
        for tk in std::mem::take(&mut self.failing) {
            let Some(t) = self.transports.get(tk) else {
                continue;
            };
            let (id, router, direction, reason) = (
                t.id.clone(),
                t.router.clone(),
                t.direction,
                t.failed.unwrap_or("transport-error"),
            );
            if matches!(reason, "ice-timeout" | "connect-timeout") {
                let protocol = match self.ice_protocols.get(&tk) {
                    Some(Protocol::Udp) => "udp",
                    Some(_) => "tcp",
                    None => "none",
                };
                self.ice_failures.push((protocol, reason));
            }
            let (producers, consumers) = self.close_transport_key(tk);
            tracing::debug!(transport = %id, reason, "transport failed and closed");
            self.events.push_back(CoreEvent::TransportClosed {
                transport: id,
                router,
                direction,
                reason,
                producers,
                consumers,
            });
        }
    }

    /// The peer's certificate against the fingerprint `connect` gave; the reason to fail the transport if not.
    fn check_peer_certificate(&mut self, tk: TransportKey) -> Result<(), &'static str> {
        let t = self.transports.get_mut(tk).ok_or("transport-error")?;
        let (algorithm, want) = t.expected_fingerprint.as_ref().ok_or("dtls-failed")?;
        let got = if fingerprint::str0m_computes(algorithm) {
            // With its own check off, str0m computes the peer's fingerprint with the announced algorithm.
            t.rtc
                .direct_api()
                .remote_dtls_fingerprint()
                .filter(|f| f.hash_func.eq_ignore_ascii_case(algorithm))
                .map(|f| f.bytes.clone())
        } else {
            t.peer_der
                .as_deref()
                .and_then(|der| fingerprint::digest(algorithm, der))
        };
        match got {
            Some(got) if fingerprint::same(&got, want) => Ok(()),
            _ => Err("dtls-failed"),
        }
    }

    /// Fails transports whose peer is gone (see [`Liveness`]). Looks at every transport, so at most every 500 ms.
    fn check_liveness(&mut self, now: Instant) {
        if self.next_liveness_check.is_some_and(|t| now < t) {
            return;
        }
        self.next_liveness_check = Some(now + Duration::from_millis(500));
        let Liveness {
            consent_timeout,
            connect_timeout,
        } = self.liveness;
        for t in self.transports.values_mut() {
            if t.remote_fingerprint.is_some() && t.dtls_started.is_none() {
                t.dtls_started = Some(now);
            }
        }
        let dead: Vec<(TransportKey, &'static str)> = self
            .transports
            .iter()
            .filter(|(_, t)| t.failed.is_none())
            .filter_map(|(tk, t)| {
                let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
                if t.connected {
                    // Connected means a STUN request came, so `last_stun` is set.
                    (since(t.last_stun).unwrap_or(Duration::ZERO) > consent_timeout)
                        .then_some((tk, "ice-timeout"))
                } else {
                    since(t.dtls_started)
                        .is_some_and(|d| d > connect_timeout)
                        .then_some((tk, "connect-timeout"))
                }
            })
            .collect();
        for (tk, reason) in dead {
            self.fail(tk, reason);
        }
    }

    /// `produce` on a send transport. Returns the producer id.
    pub fn produce(
        &mut self,
        transport_id: &str,
        kind: Kind,
        rtp: &RtpParameters,
    ) -> Result<String, SfuError> {
        let mut mapping = ortc::map_producer(kind, rtp)?;
        let tk = self
            .transport_key(transport_id)
            .ok_or(SfuError::NotFound("transport"))?;
        let t = self
            .transports
            .get_mut(tk)
            .ok_or(SfuError::NotFound("transport"))?;
        if t.direction != Direction::Send {
            return Err(SfuError::Invalid("produce needs a send transport".into()));
        }
        let valid_cname = !mapping.cname.is_empty() && !mapping.cname.contains(char::is_whitespace);
        let cname = t
            .cname
            .get_or_insert_with(|| {
                if valid_cname {
                    mapping.cname.clone()
                } else {
                    random_token(16)
                }
            })
            .clone();
        if !valid_cname {
            mapping.cname = cname;
        }
        let mid = mapping
            .mid
            .clone()
            .ok_or_else(|| SfuError::Invalid("invalid rtpParameters: mid is required".into()))?;
        if t.sections.iter().any(|s| s.mid == mid) {
            return Err(SfuError::Invalid(format!(
                "invalid rtpParameters: mid {mid} is already used"
            )));
        }
        // Closed producers keep their (closed) section: str0m does not let an m-line change its mid. A user who
        // starts and stops screen sharing many times on one transport must not run out, so the caps are separate.
        if t.sections.iter().filter(|s| !s.closed).count() >= MAX_OPEN_SECTIONS
            || t.sections.len() >= MAX_SECTIONS
        {
            return Err(SfuError::Invalid(
                "too many producers on this transport".into(),
            ));
        }
        let id = format!("pr_{}", random_token(16));
        let layers = mapping.encodings.len();
        t.sections.push(Section {
            mid: mid.clone(),
            mapping: mapping.clone(),
            closed: false,
        });
        t.offer_dirty = true;
        let router = t.router.clone();
        let codec = str0m_codec(mapping.router_codec.mime_type).unwrap_or(Codec::Vp8);
        let layered = matches!(codec, Codec::Vp8 | Codec::Vp9)
            && mapping.kind == Kind::Video
            && (mapping.temporal_layers > 1 || mapping.spatial_layers > 1);
        let pk = self.producers.insert(Producer {
            id: id.clone(),
            router,
            transport: tk,
            mid: mid.clone(),
            mapping,
            codec,
            paused: false,
            consumers: Vec::new(),
            layer_ssrcs: vec![None; layers],
            last_keyframe_request: vec![None; layers],
            last_packet: vec![None; layers],
            needed_layers: layers,
            rates: allocator::LayerRates::default(),
            temporal_rates: allocator::LayerRates::default(),
            layered,
            svc_last_packet: Vec::new(),
            tap: None,
            priority: allocator::Priority::Normal,
            pipe_in: None,
            pipes_out: Vec::new(),
        });
        self.producer_ids.insert(id.clone(), pk);
        if let Some(t) = self.transports.get_mut(tk) {
            t.mid_to_producer.insert(mid, pk);
            t.producers.push(pk);
        }
        if let Err(e) = self.apply_offer(tk) {
            self.close_producer(&id);
            return Err(e);
        }
        self.mark_dirty(tk);
        Ok(id)
    }

    /// Applies the rebuilt offer once the browser's ufrag and fingerprint are known.
    fn apply_offer(&mut self, tk: TransportKey) -> Result<(), SfuError> {
        let Some(t) = self.transports.get_mut(tk) else {
            return Ok(());
        };
        if !t.offer_dirty {
            return Ok(());
        }
        let (Some(ufrag), Some(fp)) = (t.remote_ufrag.clone(), t.remote_fingerprint.clone()) else {
            return Ok(()); // applied when both are known
        };
        t.offer_version += 1;
        let Some(text) = sdp::build_offer(&t.sections, &ufrag, &fp, t.offer_version) else {
            return Ok(());
        };
        t.offer_dirty = false;
        let offer = str0m::change::SdpOffer::from_sdp_string(&text).map_err(|e| {
            tracing::warn!(error = %e, "rebuilt offer does not parse");
            SfuError::Invalid(format!("rtpParameters produce an unusable offer: {e}"))
        })?;
        t.rtc.sdp_api().accept_offer(offer).map_err(|e| {
            tracing::warn!(error = %e, "rebuilt offer refused");
            SfuError::Invalid(format!("rtpParameters refused: {e}"))
        })?;
        Ok(())
    }

    pub fn producer_kind(&self, id: &str) -> Option<Kind> {
        let pk = self.producer_key(id)?;
        self.producers.get(pk).map(|p| p.mapping.kind)
    }

    pub fn producer_router(&self, id: &str) -> Option<&str> {
        let pk = self.producer_key(id)?;
        self.producers.get(pk).map(|p| p.router.as_str())
    }

    /// Where this producer's consumers come when their transport's estimate is shared out (`allocator.rs`): the
    /// meeting gives a screen share [`allocator::Priority::Screen`], the spotlighted participant's camera
    /// [`allocator::Priority::Large`], the rest `Normal` (the default). Applies at the next share-out.
    pub fn set_producer_priority(
        &mut self,
        id: &str,
        priority: allocator::Priority,
    ) -> Result<(), SfuError> {
        let p = self
            .producer_key(id)
            .and_then(|pk| self.producers.get_mut(pk))
            .ok_or(SfuError::NotFound("producer"))?;
        p.priority = priority;
        for &(pipe, _) in &p.pipes_out {
            self.pipe_out
                .push_back(PipeOut::Priority { pipe, priority });
        }
        Ok(())
    }

    /// A producer's priority (see [`Core::set_producer_priority`]).
    pub fn producer_priority(&self, id: &str) -> Option<allocator::Priority> {
        let pk = self.producer_key(id)?;
        self.producers.get(pk).map(|p| p.priority)
    }

    pub fn set_producer_paused(
        &mut self,
        id: &str,
        paused: bool,
        now: Instant,
    ) -> Result<(), SfuError> {
        let pk = self
            .producer_key(id)
            .ok_or(SfuError::NotFound("producer"))?;
        let p = self
            .producers
            .get_mut(pk)
            .ok_or(SfuError::NotFound("producer"))?;
        let was = p.paused;
        p.paused = paused;
        if was != paused {
            for &(pipe, _) in &p.pipes_out {
                self.pipe_out.push_back(PipeOut::Paused { pipe, paused });
            }
        }
        if paused {
            self.speakers.silence(pk);
        }
        for i in 0..self.producers.get(pk).map_or(0, |p| p.consumers.len()) {
            if let Some(&ck) = self.producers.get(pk).and_then(|p| p.consumers.get(i)) {
                self.sync_padding(ck);
            }
        }
        let Some(p) = self.producers.get_mut(pk) else {
            return Ok(());
        };
        if was && !paused {
            // Consumers restart on a keyframe.
            for &ck in &p.consumers {
                if let Some(c) = self.consumers.get_mut(ck) {
                    c.current_layer = None;
                }
            }
            for layer in 0..p.layer_ssrcs.len() {
                self.request_keyframe(pk, layer, now);
            }
        }
        Ok(())
    }

    /// Closes a producer and its consumers; returns the closed consumer ids.
    pub fn close_producer(&mut self, id: &str) -> Vec<String> {
        match self.producer_key(id) {
            Some(pk) => self.close_producer_key(pk),
            None => Vec::new(),
        }
    }

    fn close_producer_key(&mut self, pk: ProducerKey) -> Vec<String> {
        let Some(p) = self.producers.remove(pk) else {
            return Vec::new();
        };
        self.producer_ids.remove(&p.id);
        self.speakers.remove(pk);
        for &(pipe, _) in &p.pipes_out {
            self.pipes_out_ids.remove(&pipe);
            self.pipe_out.push_back(PipeOut::Closed { pipe });
        }
        if let Some(pipe) = p.pipe_in {
            self.pipes_in.remove(&pipe);
        }
        if let Some(t) = self.transports.get_mut(p.transport) {
            t.producers.retain(|&x| x != pk);
            if t.mid_to_producer.get(&p.mid) == Some(&pk) {
                t.mid_to_producer.remove(&p.mid);
            }
            if let Some(s) = t.sections.iter_mut().find(|s| s.mid == p.mid) {
                s.closed = true;
                t.offer_dirty = true;
            }
            t.ssrc_cache.retain(|_, (x, _)| *x != pk);
        }
        let _ = self.apply_offer(p.transport);
        let mut closed = Vec::with_capacity(p.consumers.len());
        for &ck in &p.consumers {
            if let Some(id) = self.close_consumer_key(ck) {
                closed.push(id);
            }
        }
        closed
    }

    /// `consume`: a consumer on a recv transport, created paused.
    pub fn consume(
        &mut self,
        transport_id: &str,
        producer_id: &str,
        caps: &RtpCapabilities,
    ) -> Result<ConsumerInfo, SfuError> {
        let pk = self
            .producer_key(producer_id)
            .ok_or(SfuError::NotFound("producer"))?;
        let tk = self
            .transport_key(transport_id)
            .ok_or(SfuError::NotFound("transport"))?;
        let p = self
            .producers
            .get(pk)
            .ok_or(SfuError::NotFound("producer"))?;
        let t = self
            .transports
            .get_mut(tk)
            .ok_or(SfuError::NotFound("transport"))?;
        if t.direction != Direction::Recv {
            return Err(SfuError::Invalid("consume needs a recv transport".into()));
        }
        if t.router != p.router {
            return Err(SfuError::NotFound("producer"));
        }
        if t.mid_to_consumer.len() >= 512 {
            return Err(SfuError::Invalid(
                "too many consumers on this transport".into(),
            ));
        }
        let mid = t.next_mid.to_string();
        let ssrc = random_ssrc();
        let rtx = (p.mapping.kind == Kind::Video).then(|| ssrc.wrapping_add(1));
        let (params, consumer_type) = ortc::consumer_parameters(&p.mapping, caps, &mid, ssrc, rtx)?;
        let rtx = params
            .encodings
            .first()
            .and_then(|e| e.rtx.as_ref())
            .map(|r| r.ssrc);
        t.next_mid += 1;
        let kind = p.mapping.kind;
        let str0m_mid = Mid::from(mid.as_str());
        let mut api = t.rtc.direct_api();
        api.declare_media(
            str0m_mid,
            if kind == Kind::Audio {
                MediaKind::Audio
            } else {
                MediaKind::Video
            },
        );
        let tx = api.declare_stream_tx(Ssrc::from(ssrc), rtx.map(Ssrc::from), str0m_mid, None);
        // Created paused: nothing at all on its stream, not even the pacer's padding (patches/str0m-0.25.0.patch).
        tx.set_padding_allowed(false);
        let id = format!("co_{}", random_token(16));
        let layers = p.mapping.encodings.len();
        let producer_paused = p.paused;
        let top_temporal = p.mapping.temporal_layers.saturating_sub(1);
        let filter = p.layered.then(|| {
            layers::LayerFilter::new(
                p.mapping.spatial_layers > 1,
                p.mapping.ksvc,
                p.mapping.spatial_layers.saturating_sub(1),
                top_temporal,
            )
        });
        let spatial_layers = p.spatial_layers();
        let vp8 = p.codec == Codec::Vp8 && (layers > 1 || p.layered);
        let ck = self.consumers.insert(Consumer {
            id: id.clone(),
            transport: tk,
            producer: pk,
            mid: str0m_mid,
            ssrc,
            payload_type: p.mapping.router_codec.payload_type,
            paused: true,
            target_layer: spatial_layers.saturating_sub(1),
            vp8: vp8.then(vp8::Rewriter::default),
            filter,
            gaps: layers::SeqGaps::default(),
            top_temporal,
            preferred_temporal: top_temporal,
            reported: None,
            allowed_layer: None,
            allowed_temporal: None,
            current_layer: None,
            seq_delta: 0,
            ts_delta: 0,
            floor_seq: 0,
            last_out_seq: 0,
            last_out_ts: 0,
            sent_any: false,
            packets: 0,
        });
        self.consumer_ids.insert(id.clone(), ck);
        if let Some(t) = self.transports.get_mut(tk) {
            t.mid_to_consumer.insert(str0m_mid, ck);
            t.consumers.push(ck);
        }
        if let Some(p) = self.producers.get_mut(pk) {
            p.consumers.push(ck);
        }
        Ok(ConsumerInfo {
            id,
            kind,
            rtp_parameters: params,
            consumer_type,
            producer_paused,
        })
    }

    pub fn consumer_transport(&self, id: &str) -> Option<&str> {
        let c = self.consumers.get(self.consumer_key(id)?)?;
        self.transports.get(c.transport).map(|t| t.id.as_str())
    }

    pub fn consumer_producer(&self, id: &str) -> Option<&str> {
        let c = self.consumers.get(self.consumer_key(id)?)?;
        self.producers.get(c.producer).map(|p| p.id.as_str())
    }

    /// Packets forwarded by a consumer so far.
    pub fn consumer_packets(&self, id: &str) -> Option<u64> {
        self.consumers
            .get(self.consumer_key(id)?)
            .map(|c| c.packets)
    }

    pub fn set_consumer_paused(
        &mut self,
        id: &str,
        paused: bool,
        now: Instant,
    ) -> Result<(), SfuError> {
        let ck = self
            .consumer_key(id)
            .ok_or(SfuError::NotFound("consumer"))?;
        let c = self
            .consumers
            .get_mut(ck)
            .ok_or(SfuError::NotFound("consumer"))?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        c.current_layer = None;
        let pk = c.producer;
        self.sync_padding(ck);
        self.update_needed_layers(pk);
        let Some(c) = self.consumers.get(ck) else {
            return Ok(());
        };
        let connected = self
            .transports
            .get(c.transport)
            .is_some_and(|t| t.connected);
        // Before DTLS is up a keyframe would be dropped, and the request would hold the per-stream limit for 500 ms
        // right when the Connected event asks again (mediasoup-client resumes before its DTLS handshake ends):
        // leave it to that event.
        if !paused && connected {
            // Fast start: ask every layer up to the target for a keyframe and start on the first that comes.
            let (producer, target) = (c.producer, c.goal());
            for layer in 0..=target {
                self.request_keyframe(producer, layer, now);
            }
        }
        Ok(())
    }

    /// A consumer that sends nothing (paused, or its producer paused) gets nothing on its stream: str0m's pacer
    /// would otherwise pad it with BWE on (its 50 kbit/s floor goes to the video stream that sent last). mediasoup
    /// sends nothing on a paused consumer either.
    fn sync_padding(&mut self, ck: ConsumerKey) {
        let Some(c) = self.consumers.get(ck) else {
            return;
        };
        let producer_paused = self.producers.get(c.producer).is_some_and(|p| p.paused);
        let allowed = !c.paused && !producer_paused;
        let ssrc = Ssrc::from(c.ssrc);
        if let Some(t) = self.transports.get_mut(c.transport) {
            if let Some(tx) = t.rtc.direct_api().stream_tx(&ssrc) {
                tx.set_padding_allowed(allowed);
            }
        }
    }

    /// The highest spatial layer this consumer should receive (clamped to the producer's layers).
    pub fn set_consumer_preferred_layer(
        &mut self,
        id: &str,
        layer: usize,
        now: Instant,
    ) -> Result<(), SfuError> {
        let ck = self
            .consumer_key(id)
            .ok_or(SfuError::NotFound("consumer"))?;
        let c = self
            .consumers
            .get_mut(ck)
            .ok_or(SfuError::NotFound("consumer"))?;
        let layers = self
            .producers
            .get(c.producer)
            .map_or(1, Producer::spatial_layers);
        c.target_layer = layer.min(layers.saturating_sub(1));
        let (producer, target) = (c.producer, c.target_layer);
        self.update_needed_layers(producer);
        // An SVC consumer's filter asks for a keyframe itself, only when its switch needs one (up, or down in
        // k-SVC): full SVC goes down at the next picture.
        if self
            .producers
            .get(producer)
            .is_some_and(|p| p.mapping.spatial_layers <= 1)
        {
            self.request_keyframe(producer, target, now);
        }
        Ok(())
    }

    /// The highest temporal layer this consumer should receive (mediasoup's `preferredLayers.temporalLayer`),
    /// clamped to the producer's; only streams whose payloads carry temporal layer ids (VP8, VP9) are filtered.
    /// Climbing back happens at the next TL0 picture or switching point.
    pub fn set_consumer_preferred_temporal_layer(
        &mut self,
        id: &str,
        layer: u8,
    ) -> Result<(), SfuError> {
        let ck = self
            .consumer_key(id)
            .ok_or(SfuError::NotFound("consumer"))?;
        let c = self
            .consumers
            .get_mut(ck)
            .ok_or(SfuError::NotFound("consumer"))?;
        c.preferred_temporal = layer.min(c.top_temporal);
        Ok(())
    }

    /// Reports a simulcast producer's needed layer count when it changed (`CoreEvent::LayersNeeded`). Consumers
    /// are created paused: one that was never resumed does not count, and creating it reports nothing.
    fn update_needed_layers(&mut self, pk: ProducerKey) {
        let Some(p) = self.producers.get(pk) else {
            return;
        };
        let layers = p.layer_ssrcs.len();
        if layers <= 1 {
            return;
        }
        let needed = p
            .consumers
            .iter()
            .filter_map(|&ck| self.consumers.get(ck))
            .filter(|c| !c.paused)
            .map(|c| c.target_layer.min(layers - 1) + 1)
            .chain(p.pipes_out.iter().map(|&(_, n)| n.min(layers)))
            .max()
            .unwrap_or(1);
        if needed == p.needed_layers {
            return;
        }
        let (router, producer, pipe_in) = (p.router.clone(), p.id.clone(), p.pipe_in);
        if let Some(p) = self.producers.get_mut(pk) {
            p.needed_layers = needed;
        }
        // A pipe producer's needs go back to the real producer, which reports them with its own consumers'.
        if let Some(pipe) = pipe_in {
            self.pipe_back.push_back(PipeBack::LayersNeeded {
                pipe,
                spatial_layers: needed,
            });
            return;
        }
        self.events.push_back(CoreEvent::LayersNeeded {
            router,
            producer,
            spatial_layers: needed,
        });
    }

    pub fn close_consumer(&mut self, id: &str) {
        if let Some(ck) = self.consumer_key(id) {
            self.close_consumer_key(ck);
        }
    }

    /// Returns the closed consumer's id.
    fn close_consumer_key(&mut self, ck: ConsumerKey) -> Option<String> {
        let c = self.consumers.remove(ck)?;
        self.consumer_ids.remove(&c.id);
        if let Some(p) = self.producers.get_mut(c.producer) {
            p.consumers.retain(|&x| x != ck);
        }
        self.update_needed_layers(c.producer);
        if let Some(t) = self.transports.get_mut(c.transport) {
            t.mid_to_consumer.remove(&c.mid);
            t.consumers.retain(|&x| x != ck);
            let mut api = t.rtc.direct_api();
            api.remove_stream_tx(Ssrc::from(c.ssrc));
            api.remove_media(c.mid);
        }
        Some(c.id)
    }

    /// Closes a transport with its producers and consumers; returns `(closed producers, closed consumers)`,
    /// consumers of other transports included.
    pub fn close_transport(&mut self, id: &str) -> (Vec<String>, Vec<String>) {
        match self.transport_key(id) {
            Some(tk) => self.close_transport_key(tk),
            None => (Vec::new(), Vec::new()),
        }
    }

    fn close_transport_key(&mut self, tk: TransportKey) -> (Vec<String>, Vec<String>) {
        let Some(t) = self.transports.get_mut(tk) else {
            return (Vec::new(), Vec::new());
        };
        let own_producers = std::mem::take(&mut t.producers);
        let own_consumers = std::mem::take(&mut t.consumers);
        let mut producers = Vec::with_capacity(own_producers.len());
        let mut consumers: Vec<String> = Vec::new();
        for pk in own_producers {
            if let Some(p) = self.producers.get(pk) {
                producers.push(p.id.clone());
            }
            consumers.extend(self.close_producer_key(pk));
        }
        for ck in own_consumers {
            consumers.extend(self.close_consumer_key(ck));
        }
        if let Some(mut t) = self.transports.remove(tk) {
            self.debug_drops.remove(&tk);
            self.ice_protocols.remove(&tk);
            t.rtc.disconnect();
            self.transport_ids.remove(&t.id);
            self.by_ufrag.remove(&t.ufrag);
            for s in &t.sources {
                if self.by_source.get(s) == Some(&tk) {
                    self.by_source.remove(s);
                }
            }
        }
        (producers, consumers)
    }

    // ---- network

    /// One datagram from the UDP socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, buf: &[u8]) {
        self.handle_receive_on(now, Protocol::Udp, self.local_addr, source, buf);
    }

    /// One datagram (or one RFC 4571 frame of a TCP connection) that arrived on the socket at `local`.
    pub fn handle_receive_on(
        &mut self,
        now: Instant,
        protocol: Protocol,
        local: SocketAddr,
        source: SocketAddr,
        buf: &[u8],
    ) {
        let Some(&first) = buf.first() else { return };
        let mut nominating = None;
        let tk = if first < 2 {
            match self.route_stun(now, source, buf) {
                Some((tk, copy)) => {
                    nominating = copy;
                    tk
                }
                None => {
                    self.stats.dropped_datagrams += 1;
                    return;
                }
            }
        } else {
            match self.by_source.get(&source) {
                Some(&tk) => tk,
                None => {
                    self.stats.dropped_datagrams += 1;
                    return;
                }
            }
        };
        if self.debug_dropped(tk, now) {
            self.stats.dropped_datagrams += 1;
            return;
        }
        if first < 2 && self.ice_protocols.get(&tk) != Some(&protocol) {
            self.ice_protocols.insert(tk, protocol);
        }
        let buf = nominating.as_deref().unwrap_or(buf);
        let Ok(receive) = Receive::new(protocol, source, local, buf) else {
            self.stats.dropped_datagrams += 1;
            return;
        };
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        if t.failed.is_some() {
            self.stats.dropped_datagrams += 1;
            return;
        }
        let input = Input::Receive(now, receive);
        if !t.rtc.accepts(&input) {
            self.stats.dropped_datagrams += 1;
            return;
        }
        let (res, der) = fingerprint::capturing(t.wants_peer_der(), || t.rtc.handle_input(input));
        if der.is_some() {
            t.peer_der = der;
        }
        if let Err(e) = res {
            tracing::debug!(transport = %t.id, error = %e, "input refused");
            self.stats.dropped_datagrams += 1;
        }
        self.drain(tk, now);
        self.settle_failures();
    }

    /// STUN: find the transport by our ufrag, learn the browser's ufrag (ICE-lite: mediasoup-client never signals
    /// it, and str0m answers no binding request until remote credentials are set) and the source address.
    ///
    /// Also returns, for a transport's first authenticated binding request without USE-CANDIDATE, the same request
    /// with USE-CANDIDATE to hand to str0m instead: mediasoup's ICE-lite server takes the first valid tuple at once
    /// (state `connected`) and lets DTLS run, while str0m's waits for the nomination, which Chrome sends one check
    /// interval later — the browser's ClientHello sat unanswered for ~57 ms of every join (server log timestamps).
    /// The copy is signed with our password, which is what the browser signed the original with.
    fn route_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        buf: &[u8],
    ) -> Option<(TransportKey, Option<Vec<u8>>)> {
        let msg = StunMessage::parse(buf).ok()?;
        let (local, remote) = msg.split_username()?;
        let tk = *self.by_ufrag.get(local)?;
        let t = self.transports.get_mut(tk)?;
        // Only an authenticated request may teach us a ufrag or a source address: the USERNAME is public in the
        // SDP, the password is not.
        let hmac = self.hmac;
        if !msg.verify(t.pwd.as_bytes(), |k, p| hmac.sha1_hmac(k, p)) {
            return None;
        }
        if t.remote_ufrag.as_deref() != Some(remote) {
            if remote.is_empty() || remote.len() > 256 {
                return None;
            }
            t.rtc.direct_api().set_remote_ice_credentials(IceCreds {
                ufrag: remote.to_owned(),
                pass: PLACEHOLDER_ICE_PWD.to_owned(),
            });
            t.remote_ufrag = Some(remote.to_owned());
            tracing::debug!(transport = %t.id, %source, "first authenticated STUN request");
            if !t.sections.is_empty() {
                t.offer_dirty = true;
            }
            let _ = self.apply_offer(tk);
        }
        let t = self.transports.get_mut(tk)?;
        t.last_stun = Some(now);
        if t.sources.insert(source) {
            if t.sources.len() > 8 {
                // A browser tries a handful of local addresses; more is someone else's noise.
                t.sources.remove(&source);
                return None;
            }
            self.by_source.insert(source, tk);
        }
        let copy = if t.nominated {
            None
        } else {
            t.nominated = true;
            nominating_copy(&msg, &t.pwd, hmac)
        };
        Some((tk, copy))
    }

    /// Advances every transport whose deadline passed: pops them off the deadline heap (no scan of all
    /// transports), hands each str0m a timeout, and re-queues a live entry whose transport's deadline moved later.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<TransportKey> = Vec::new();
        while let Some(&Reverse((at, tk))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(t) = self.transports.get_mut(tk) else {
                continue; // closed
            };
            if t.scheduled != Some(at) {
                continue; // superseded by an earlier entry
            }
            t.scheduled = None;
            if t.deadline <= now {
                due.push(tk);
            } else {
                // The deadline moved later since this entry was queued: queue the real one.
                let d = t.deadline;
                self.schedule(tk, d);
            }
        }
        for tk in due {
            self.stats.transport_timeouts += 1;
            let Some(t) = self.transports.get_mut(tk) else {
                continue;
            };
            if t.failed.is_some() {
                continue;
            }
            let (res, der) = fingerprint::capturing(t.wants_peer_der(), || {
                t.rtc.handle_input(Input::Timeout(now))
            });
            if der.is_some() {
                t.peer_der = der;
            }
            if let Err(e) = res {
                tracing::debug!(transport = %t.id, error = %e, "timeout refused");
            }
            self.drain(tk, now);
        }
        self.check_liveness(now);
        self.drain_dirty(now);
        self.tick_speakers(now);
        self.allocate_layers(now);
    }

    /// Every [`ALLOCATION_INTERVAL`]: producers' layer rates roll, and each recv transport with a bandwidth estimate
    /// shares it out across its simulcast consumers (`allocator.rs`); a consumer's allowed layer bounds what
    /// `forward` aims at. Without an estimate (str0m's BWE is not enabled yet) nothing is limited.
    fn allocate_layers(&mut self, now: Instant) {
        if self.next_allocation.is_some_and(|t| now < t) {
            return;
        }
        self.next_allocation = Some(now + ALLOCATION_INTERVAL);
        for p in self.producers.values_mut() {
            p.rates.roll(now);
            p.temporal_rates.roll(now);
        }
        let estimated: Vec<TransportKey> = self
            .transports
            .iter()
            .filter(|(_, t)| t.estimate.is_some())
            .map(|(k, _)| k)
            .collect();
        for tk in estimated {
            let Some(t) = self.transports.get(tk) else {
                continue;
            };
            let Some(estimate) = t.estimate else {
                continue;
            };
            // Each consumer's ladder of (spatial, temporal) rungs (`allocator::ladder`); the allocator picks a rung.
            let mut ladders: Vec<Vec<(usize, u8)>> = Vec::new();
            let demands: Vec<allocator::Demand<ConsumerKey>> = t
                .consumers
                .iter()
                .filter_map(|&ck| {
                    let c = self.consumers.get(ck)?;
                    let p = self.producers.get(c.producer)?;
                    let rungs = allocator::ladder(
                        p.rates.bps(),
                        p.temporal_rates.bps(),
                        p.mapping.spatial_layers > 1 && !p.mapping.ksvc,
                        c.top_temporal,
                    );
                    if p.mapping.kind != Kind::Video || rungs.is_empty() {
                        return None;
                    }
                    let cap = rungs
                        .iter()
                        .rposition(|((s, _), _)| *s <= c.target_layer)
                        .unwrap_or(0);
                    let (layers, layer_bps) = rungs.into_iter().unzip();
                    ladders.push(layers);
                    Some(allocator::Demand {
                        key: ck,
                        priority: p.priority,
                        cap,
                        layer_bps,
                        paused: c.paused,
                    })
                })
                .collect();
            let Some(t) = self.transports.get_mut(tk) else {
                continue;
            };
            t.allocation.allocate(now, estimate, &demands);
            // Every consumer's rung is mapped again, not only the changed ones: a ladder changes shape when its
            // producer's temporal ids start or stop flowing.
            let allowed: Vec<(ConsumerKey, Option<(usize, u8)>)> = demands
                .iter()
                .zip(&ladders)
                .map(|(d, l)| {
                    let rung = t.allocation.allowed(d.key);
                    (d.key, rung.and_then(|r| l.get(r).copied()))
                })
                .collect();
            // Probing asks only for the next layer someone is missing; nothing when every consumer is at its cap
            // or paused (a paused consumer must not be padded).
            // str0m probes when the desired rate goes up; a link that recovers later (a cap lifted) is probed again
            // every PROBE_INTERVAL while the estimate stays below what is wanted.
            if self.bwe {
                let desired = t.allocation.probe_target(&demands).unwrap_or(0);
                let minimum = desired.min(estimate);
                let ask = |t: &mut Transport, desired: u64| {
                    t.rtc.bwe().set_bitrate(
                        str0m::bwe::Bitrate::bps(minimum),
                        str0m::bwe::Bitrate::bps(desired),
                    );
                    t.desired = desired;
                };
                let stalled = t
                    .raw_flat
                    .is_some_and(|(_, since)| now.saturating_duration_since(since) >= BWE_STALL)
                    && t.restarted
                        .is_none_or(|at| now.saturating_duration_since(at) >= BWE_RESTART_INTERVAL);
                if desired > estimate && stalled {
                    // str0m's estimate can stay frozen after a lossy spell (its loss-based controller holds it, and
                    // then it does not probe): measured in Chromium after a cap was lifted, 305 kbps to the bit for
                    // 20 s with no loss, re-probes asked every 2 s and none sent. Starting its estimator again from
                    // the same value clears that state; its start-up probes then measure the link (a link that is
                    // really that narrow answers with about the same estimate).
                    tracing::debug!(transport = %t.id, desired, estimate, "estimator restarted");
                    t.rtc.bwe().reset(str0m::bwe::Bitrate::bps(estimate));
                    t.raw_flat = None;
                    t.restarted = Some(now);
                    t.probe_lowered = false;
                    ask(t, desired);
                } else if t.probe_lowered {
                    // The second half of a re-probe (below): the desired rate goes up again.
                    t.probe_lowered = false;
                    ask(t, desired);
                } else if desired > estimate && t.next_probe.is_none_or(|at| now >= at) {
                    // str0m probes when the desired rate rises above its estimate between two of its timeouts
                    // (its allocation probe), not while the same rate is asked again; padding alone does not
                    // raise its estimate (which stays at 1.5x the acknowledged media rate). So while the estimate
                    // stays below what is wanted, every PROBE_INTERVAL: lower the desired rate to the estimate
                    // now and raise it at the next share-out, 100 ms later. Without it, after a cap was lifted,
                    // the estimate sat for 10 s and more just below what the next layer needs.
                    tracing::debug!(transport = %t.id, desired, estimate, "re-probe");
                    ask(t, estimate);
                    t.probe_lowered = true;
                    t.next_probe = Some(now + PROBE_INTERVAL);
                } else if desired != t.desired {
                    ask(t, desired);
                }
            }
            for (ck, layers) in allowed {
                if let Some(c) = self.consumers.get_mut(ck) {
                    c.allowed_layer = layers.map(|(s, _)| s);
                    c.allowed_temporal = layers.map(|(_, t)| t);
                }
            }
        }
    }

    /// str0m's transport-wide-cc bandwidth estimation on the recv transports created from now on: its estimate is
    /// shared out across each transport's simulcast consumers (`allocate_layers`). Off in a bare Core; the media shell
    /// turns it on from `media.bwe` (on by default).
    pub fn set_bandwidth_estimation(&mut self, on: bool) {
        self.bwe = on;
    }

    /// The addresses a transport's peer was seen at (test hooks in the shell: a downlink cap).
    pub fn transport_sources(&self, id: &str) -> Vec<SocketAddr> {
        self.transport_key(id)
            .and_then(|tk| self.transports.get(tk))
            .map(|t| t.sources.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Test hook: sets (or clears) a recv transport's bandwidth estimate, as str0m's estimator would.
    pub fn debug_set_estimate(&mut self, transport: &str, bps: Option<u64>) -> bool {
        let Some(t) = self
            .transport_key(transport)
            .and_then(|tk| self.transports.get_mut(tk))
        else {
            return false;
        };
        t.estimate = bps;
        if bps.is_none() {
            for &ck in &t.consumers {
                if let Some(c) = self.consumers.get_mut(ck) {
                    c.allowed_layer = None;
                    c.allowed_temporal = None;
                }
            }
        }
        true
    }

    /// Audio levels and the dominant speaker, reported as events with the producers' ids (`speaker.rs`).
    fn tick_speakers(&mut self, now: Instant) {
        if self.speakers.next_deadline().is_none_or(|d| now < d) {
            return;
        }
        for e in self.speakers.tick(now) {
            match e {
                speaker::SpeakerEvent::Dominant { room, key } => {
                    if let Some(p) = self.producers.get(key) {
                        self.events.push_back(CoreEvent::ActiveSpeaker {
                            router: room,
                            producer: p.id.clone(),
                        });
                    }
                }
                speaker::SpeakerEvent::Levels { room, levels } => {
                    let levels = levels
                        .into_iter()
                        .filter_map(|(k, l)| self.producers.get(k).map(|p| (p.id.clone(), l)))
                        .collect();
                    self.events.push_back(CoreEvent::AudioLevels {
                        router: room,
                        levels,
                    });
                }
            }
        }
    }

    /// The earliest deadline of any transport (and of the next liveness check while there are transports): the
    /// top of the deadline heap.
    pub fn next_deadline(&self) -> Option<Instant> {
        let liveness = self
            .next_liveness_check
            .filter(|_| !self.transports.is_empty());
        // `drain_dirty` (which `handle_timeout` ends with) prunes stale entries off the top; one left by a later
        // call would only cost an early wake-up.
        let top = self.deadlines.peek().map(|Reverse((at, _))| *at);
        [top, liveness, self.speakers.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next datagram to send: `(destination, bytes)`.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outgoing.pop_front()
    }

    /// Datagrams waiting for `poll_transmit`.
    pub fn pending_transmits(&self) -> usize {
        self.outgoing.len()
    }

    /// Drains transports written to by forwarding or control calls.
    pub fn drain_dirty(&mut self, now: Instant) {
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 8 {
            rounds += 1;
            let dirty = std::mem::take(&mut self.dirty);
            for &tk in &dirty {
                if let Some(t) = self.transports.get_mut(tk) {
                    t.dirty = false;
                }
            }
            for tk in dirty {
                self.drain(tk, now);
            }
        }
        self.settle_failures();
        self.prune_deadlines();
    }

    /// Polls one transport until it only has a deadline left; forwards its media.
    fn drain(&mut self, tk: TransportKey, now: Instant) {
        loop {
            let out = match self.transports.get_mut(tk) {
                Some(t) if t.failed.is_none() => {
                    let (out, der) =
                        fingerprint::capturing(t.wants_peer_der(), || t.rtc.poll_output());
                    if der.is_some() {
                        t.peer_der = der;
                    }
                    out
                }
                _ => return,
            };
            match out {
                Ok(Output::Transmit(_)) if self.debug_dropped(tk, now) => {}
                Ok(Output::Transmit(tx))
                    if tx.proto != Protocol::Udp || tx.source != self.local_addr =>
                {
                    self.outgoing_via.push_back(Transmit {
                        protocol: tx.proto,
                        local: tx.source,
                        destination: tx.destination,
                        data: tx.contents.into(),
                    });
                }
                Ok(Output::Transmit(tx)) => {
                    // Moved, not copied: str0m's datagram is a Vec.
                    self.outgoing
                        .push_back((tx.destination, tx.contents.into()));
                }
                Ok(Output::Timeout(at)) => {
                    self.schedule(tk, at);
                    return;
                }
                Ok(Output::Event(e)) => self.on_event(tk, e, now),
                Err(e) => {
                    let Some(t) = self.transports.get(tk) else {
                        return;
                    };
                    let dead = !t.rtc.is_alive();
                    tracing::debug!(transport = %t.id, error = %e, dead, "transport error");
                    if dead {
                        let reason = match e {
                            str0m::RtcError::Dtls(_) | str0m::RtcError::RemoteSdp(_) => {
                                "dtls-failed"
                            }
                            _ => "transport-error",
                        };
                        self.fail(tk, reason);
                    } else {
                        self.schedule(tk, now + Duration::from_millis(100));
                    }
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, tk: TransportKey, e: Event, now: Instant) {
        match e {
            Event::RtpPacket(pkt) => self.on_rtp(tk, pkt, now),
            Event::KeyframeRequest(req) => {
                let Some(t) = self.transports.get(tk) else {
                    return;
                };
                let Some(&ck) = t.mid_to_consumer.get(&req.mid) else {
                    return;
                };
                let Some(c) = self.consumers.get(ck) else {
                    return;
                };
                let (producer, layer) = (c.producer, c.current_layer.unwrap_or(c.goal()));
                self.request_keyframe(producer, layer, now);
            }
            Event::Connected => {
                if let Err(reason) = self.check_peer_certificate(tk) {
                    if let Some(t) = self.transports.get(tk) {
                        tracing::debug!(transport = %t.id, "peer certificate does not match the fingerprint");
                    }
                    self.fail(tk, reason);
                    return;
                }
                let Some(t) = self.transports.get_mut(tk) else {
                    return;
                };
                t.connected = true;
                t.peer_der = None;
                tracing::debug!(transport = %t.id, "connected");
                // Consumers resumed before DTLS was up start now: ask their producers for keyframes.
                let mut waiting: Vec<(ProducerKey, usize)> = Vec::new();
                for &ck in &t.consumers {
                    if let Some(c) = self.consumers.get_mut(ck) {
                        if !c.paused {
                            c.current_layer = None;
                            waiting.push((c.producer, c.goal()));
                        }
                    }
                }
                for (producer, target) in waiting {
                    for layer in 0..=target {
                        self.request_keyframe(producer, layer, now);
                    }
                }
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                // Until the first peer stats bring the raw estimate (`on_raw_estimate`), which then rules.
                if let Some(t) = self.transports.get_mut(tk).filter(|t| t.last_tx.is_none()) {
                    t.estimate = Some(estimate.as_u64());
                }
            }
            Event::PeerStats(ref p) => {
                if let Some(t) = self.transports.get_mut(tk) {
                    on_raw_estimate(t, p);
                }
                self.on_link_stats(tk, e)
            }
            Event::MediaIngressStats(_) | Event::MediaEgressStats(_) => self.on_link_stats(tk, e),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if let Some(t) = self.transports.get(tk) {
                    tracing::debug!(transport = %t.id, "ice disconnected");
                }
            }
            _ => {}
        }
    }

    /// str0m's stats of a connected transport feed its link meter; a window that changes its class is reported,
    /// and every window's figures are kept for the shell's histograms (`take_link_figures`).
    fn on_link_stats(&mut self, tk: TransportKey, e: Event) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        if !t.connected || t.failed.is_some() {
            return;
        }
        match e {
            Event::MediaIngressStats(s) => {
                let clock_rate = match t
                    .mid_to_producer
                    .get(&*s.mid)
                    .and_then(|&pk| self.producers.get(pk))
                    .map(|p| p.mapping.kind)
                {
                    Some(Kind::Audio) => 48_000,
                    _ => 90_000,
                };
                let jitter = Duration::from_secs_f64(f64::from(s.jitter) / f64::from(clock_rate));
                t.link.on_stream(s.loss, s.rtt, Some(jitter));
            }
            Event::MediaEgressStats(s) => t.link.on_stream(s.loss, s.rtt, None),
            Event::PeerStats(s) => {
                t.stats_seen += 1;
                if t.stats_seen < t.stats_per_window {
                    // The first half-window's loss counts in the window.
                    t.link.on_stream(s.ingress_loss_fraction, s.rtt, None);
                    t.link.on_stream(s.egress_loss_fraction, None, None);
                    return;
                }
                t.stats_seen = 0;
                let previous = t.link.current();
                let (figures, changed) = t.link.on_peer(
                    s.peer_bytes_rx,
                    [s.ingress_loss_fraction, s.egress_loss_fraction],
                    s.rtt,
                );
                if self.link_figures.len() < MAX_LINK_FIGURES {
                    self.link_figures.push(figures);
                }
                if let Some(quality) = changed {
                    self.events.push_back(CoreEvent::ConnectionQuality {
                        router: t.router.clone(),
                        transport: t.id.clone(),
                        quality,
                        previous,
                    });
                }
            }
            _ => {}
        }
    }

    /// A transport's connection quality (None before its first full window, or when it is unknown).
    pub fn transport_quality(&self, id: &str) -> Option<quality::Quality> {
        let tk = self.transport_key(id)?;
        self.transports.get(tk)?.link.current()
    }

    /// A client's own figures (`stats:report`) for one of its transports: they count in its next windows.
    pub fn report_client_stats(
        &mut self,
        transport: &str,
        loss: Option<f32>,
        rtt: Option<Duration>,
        jitter: Option<Duration>,
    ) -> bool {
        let Some(t) = self
            .transport_key(transport)
            .and_then(|tk| self.transports.get_mut(tk))
        else {
            return false;
        };
        t.link.on_client(loss, rtt, jitter);
        true
    }

    /// The figures of every link window since the last call (the shell's `/metrics` histograms).
    pub fn take_link_figures(&mut self) -> Vec<quality::Figures> {
        std::mem::take(&mut self.link_figures)
    }

    /// Which producer layer an incoming SSRC is: cached per transport, resolved from str0m's stream (mid, rid) once.
    fn resolve_ssrc(&mut self, tk: TransportKey, ssrc: u32) -> Option<(ProducerKey, usize)> {
        let t = self.transports.get_mut(tk)?;
        if let Some(&m) = t.ssrc_cache.get(&ssrc) {
            return Some(m);
        }
        let (mid, rid) = t
            .rtc
            .direct_api()
            .stream_rx(&Ssrc::from(ssrc))
            .map(|s| (s.mid(), s.rid()))?;
        let pk = *t.mid_to_producer.get(&mid.to_string())?;
        let p = self.producers.get(pk)?;
        let layer = match rid {
            Some(rid) => p
                .mapping
                .encodings
                .iter()
                .position(|e| e.rid.as_deref() == Some(&*rid.to_string()))?,
            None => p
                .mapping
                .encodings
                .iter()
                .position(|e| e.ssrc == Some(ssrc))
                .unwrap_or(0),
        };
        t.ssrc_cache.insert(ssrc, (pk, layer));
        Some((pk, layer))
    }

    fn on_rtp(&mut self, tk: TransportKey, pkt: RtpPacket, now: Instant) {
        self.stats.rtp_in += 1;
        let ssrc = *pkt.header.ssrc;
        let Some((pk, layer)) = self.resolve_ssrc(tk, ssrc) else {
            return;
        };
        let video = self
            .producers
            .get(pk)
            .is_some_and(|p| p.mapping.kind == Kind::Video);
        // Header and payload move out of str0m's packet: nothing is copied, here or into a pipe.
        let pkt = PipedRtp {
            wallclock: self.wallclock(&pkt, if video { 90_000 } else { 48_000 }),
            seq_no: *pkt.seq_no,
            header: pkt.header,
            payload: pkt.payload,
        };
        self.on_producer_rtp(pk, layer, pkt, now);
    }

    /// One packet of a producer, from its transport or from a pipe: the producer's bookkeeping, then every
    /// consumer, then (moved) into its pipes.
    fn on_producer_rtp(&mut self, pk: ProducerKey, layer: usize, pkt: PipedRtp, now: Instant) {
        let ssrc = *pkt.header.ssrc;
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        if let Some(slot) = p.layer_ssrcs.get_mut(layer) {
            *slot = Some(ssrc);
        }
        if let Some(slot) = p.last_packet.get_mut(layer) {
            *slot = Some(now);
        }
        // The layers inside the stream, parsed once for every consumer.
        let inner = if p.layered {
            match p.codec {
                Codec::Vp8 => layers::vp8(&pkt.payload),
                _ => layers::Vp9Descriptor::parse(&pkt.payload)
                    .filter(|d| d.has_layers)
                    .map(|d| d.layers()),
            }
        } else {
            None
        };
        let bytes = pkt.payload.len() + 12;
        let spatial = match inner {
            Some(l) if p.mapping.spatial_layers > 1 => usize::from(l.spatial),
            _ => layer,
        };
        // Every video producer's rate counts when an estimate is shared out; a single-layer one is a fixed cost.
        if p.mapping.kind == Kind::Video {
            p.rates.on_packet(spatial, bytes, now);
        }
        if let (Some(l), 0) = (inner, spatial) {
            p.temporal_rates
                .on_packet(usize::from(l.temporal), bytes, now);
        }
        // The highest SVC spatial layer that flows (the layers up to it, for consumers aiming higher).
        let svc_flowing = match inner {
            Some(l) if p.mapping.spatial_layers > 1 => {
                let sid = usize::from(l.spatial).min(usize::from(p.mapping.spatial_layers) - 1);
                if p.svc_last_packet.len() <= sid {
                    p.svc_last_packet.resize(sid + 1, None);
                }
                p.svc_last_packet[sid] = Some(now);
                p.svc_last_packet
                    .iter()
                    .rposition(|t| {
                        t.is_some_and(|t| now.saturating_duration_since(t) <= LAYER_QUIET)
                    })
                    .and_then(|s| u8::try_from(s).ok())
            }
            _ => None,
        };
        if p.paused {
            return;
        }
        // A pipe producer's levels are metered on the real producer's core (one dominant speaker per meeting).
        if let (Kind::Audio, Some(level), None) =
            (p.mapping.kind, pkt.header.ext_vals.audio_level, p.pipe_in)
        {
            self.speakers.on_level(pk, &p.router, level, now);
        }
        if p.tap.is_some() {
            self.record_packet(pk, layer, &pkt, now);
        }
        let Some(p) = self.producers.get(pk) else {
            return;
        };
        if p.consumers.is_empty() {
            self.pipe_packet(pk, layer, pkt);
            return;
        }
        let video = p.mapping.kind == Kind::Video;
        // In VP9 SVC every packet of a keyframe picture has P=0: the stream starts at the picture's first packet.
        let keyframe = match inner {
            Some(l) if p.mapping.spatial_layers > 1 => l.keyframe_start(),
            _ => video && is_keyframe(p.codec, &pkt.payload),
        };
        // The same for every consumer: computed once per packet.
        let fwd = Incoming {
            layer,
            inner,
            svc_flowing,
            keyframe,
            video,
            wallclock: pkt.wallclock,
            ext: ExtensionValues {
                audio_level: pkt.header.ext_vals.audio_level,
                voice_activity: pkt.header.ext_vals.voice_activity,
                video_orientation: pkt.header.ext_vals.video_orientation,
                ..ExtensionValues::default()
            },
            pkt: &pkt,
        };
        // The fan-out list is walked by index: `forward` never adds or removes consumers, so no copy is needed.
        let mut i = 0;
        while let Some(&ck) = self.producers.get(pk).and_then(|p| p.consumers.get(i)) {
            i += 1;
            self.forward(ck, pk, &fwd, now);
        }
        self.pipe_packet(pk, layer, pkt);
    }

    /// mediasoup's SimulcastConsumer, reduced: start on a keyframe of any layer up to the target, climb (or drop)
    /// to the target on its keyframe, rewrite sequence numbers and timestamps so the stream stays continuous.
    fn forward(&mut self, ck: ConsumerKey, pk: ProducerKey, inc: &Incoming<'_>, now: Instant) {
        let Some(c) = self.consumers.get_mut(ck) else {
            return;
        };
        if c.paused {
            return;
        }
        // Nothing may start before the subscriber's DTLS is up: a keyframe sent into the void would leave it
        // waiting for the next one. The Connected event requests a fresh keyframe.
        if !self
            .transports
            .get(c.transport)
            .is_some_and(|t| t.connected)
        {
            return;
        }
        let (layer, keyframe, video, pkt) = (inc.layer, inc.keyframe, inc.video, inc.pkt);
        let in_seq = pkt.seq_no;
        let (goal, temporal_goal) = (c.goal(), c.temporal_goal());
        if let Some(f) = c.filter.as_mut() {
            if f.svc {
                let goal = u8::try_from(goal).unwrap_or(u8::MAX);
                f.target_spatial = inc.svc_flowing.map_or(goal, |top| goal.min(top));
            }
            f.target_temporal = temporal_goal;
        }
        let switch = match c.current_layer {
            None => {
                if video && !(keyframe && layer <= c.goal()) {
                    let target = c.goal();
                    self.request_keyframe(pk, target.min(layer), now);
                    return;
                }
                true
            }
            Some(cur) if cur != layer => {
                let current_quiet = self
                    .producers
                    .get(pk)
                    .and_then(|p| p.last_packet.get(cur).copied().flatten())
                    .is_none_or(|t| now.saturating_duration_since(t) > LAYER_QUIET);
                let target = c.goal();
                let towards = (cur < target && layer > cur && layer <= target)
                    || (cur > target && layer == target)
                    || (current_quiet && layer <= target);
                if !(towards && keyframe) {
                    if towards || cur > target {
                        // Ask the layer we want to land on: the target, or this one when the current went quiet.
                        let want = if current_quiet { layer } else { target };
                        self.request_keyframe(pk, want, now);
                    }
                    return;
                }
                true
            }
            Some(_) => false,
        };
        if switch {
            let step: u32 = if video { 3000 } else { 960 };
            if c.sent_any {
                c.seq_delta = in_seq as i64 - (c.last_out_seq as i64 + 1);
                c.ts_delta = pkt
                    .header
                    .timestamp
                    .wrapping_sub(c.last_out_ts.wrapping_add(step));
            } else {
                c.seq_delta = in_seq as i64 - 1;
                c.ts_delta = 0;
            }
            c.floor_seq = in_seq;
            c.gaps.reset(in_seq.saturating_sub(1));
            if let Some(r) = c.vp8.as_mut() {
                r.switch(&pkt.payload);
            }
            if let Some(f) = c.filter.as_mut() {
                f.start();
            }
            if video {
                tracing::debug!(consumer = %c.id, from = ?c.current_layer, to = layer, target = c.target_layer, "layer switch");
            }
            c.current_layer = Some(layer);
        }
        if in_seq < c.floor_seq {
            return;
        }
        let mut marker = pkt.header.marker;
        let mut dropped = false;
        if let (Some(f), Some(l)) = (c.filter.as_mut(), inc.inner.as_ref()) {
            match f.on_packet(l, marker) {
                layers::Verdict::Forward { marker: m } => marker = m,
                layers::Verdict::Drop => {
                    let grew = c.gaps.drop_packet(in_seq);
                    c.seq_delta += grew;
                    if grew > 0 && l.frame_start {
                        if let Some(r) = c.vp8.as_mut() {
                            r.drop_picture(&pkt.payload);
                        }
                    }
                    dropped = true;
                }
            }
        }
        // The client learns the layers it now receives (mediasoup's `layerschange`): simulcast and layered streams.
        let spatial_count = self.producers.get(pk).map_or(1, Producer::spatial_layers);
        if spatial_count > 1 || c.filter.is_some() {
            let now_layers = match c.filter {
                Some(f) => (
                    if f.svc {
                        f.current_spatial().map_or(0, usize::from)
                    } else {
                        layer
                    },
                    usize::from(f.current_temporal().unwrap_or(c.top_temporal)),
                ),
                None => (layer, usize::from(c.top_temporal)),
            };
            if c.reported != Some(now_layers) {
                c.reported = Some(now_layers);
                if let Some(t) = self.transports.get(c.transport) {
                    self.events.push_back(CoreEvent::ConsumerLayersChanged {
                        router: t.router.clone(),
                        consumer: c.id.clone(),
                        spatial_layer: now_layers.0,
                        temporal_layer: now_layers.1,
                    });
                }
            }
        }
        if c.filter.is_some_and(|f| f.wants_keyframe()) {
            self.request_keyframe(pk, 0, now);
        }
        if dropped {
            return;
        }
        let Some(c) = self.consumers.get_mut(ck) else {
            return;
        };
        let Some(late_drops) = c.gaps.forward(in_seq) else {
            return;
        };
        let out_seq = in_seq as i64 - c.seq_delta + late_drops;
        if out_seq <= 0 {
            return;
        }
        let out_seq = out_seq as u64;
        let out_ts = pkt.header.timestamp.wrapping_sub(c.ts_delta);
        let newest = out_seq > c.last_out_seq || !c.sent_any;
        if newest {
            c.last_out_seq = out_seq;
            c.last_out_ts = out_ts;
        }
        // Each VP8 simulcast consumer writes its own ids into a copy; everyone else shares the payload (an Arc).
        let payload: Arc<[u8]> = match c
            .vp8
            .as_mut()
            .and_then(|r| r.rewritten(&pkt.payload, newest))
        {
            Some(own) => own.into(),
            None => pkt.payload.clone(),
        };
        c.sent_any = true;
        c.packets += 1;
        let (ssrc, pt, tk) = (c.ssrc, c.payload_type, c.transport);
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(ssrc)) else {
            return;
        };
        tx.write_rtp(
            str0m::rtp::RtpWrite::new(
                Pt::from(pt),
                SeqNo::from(out_seq),
                out_ts,
                inc.wallclock,
                payload,
            )
            .marker(marker)
            .nackable(video)
            .ext_vals(inc.ext.clone()),
        );
        self.stats.rtp_out += 1;
        self.mark_dirty(tk);
    }

    /// Hands one packet of a recorded producer to its tap (a hook kept small: the logic is in `record.rs`).
    fn record_packet(&mut self, pk: ProducerKey, layer: usize, pkt: &PipedRtp, now: Instant) {
        let wallclock_us = self.unix_us(pkt.wallclock);
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        let video = p.mapping.kind == Kind::Video;
        let keyframe = video && is_keyframe(p.codec, &pkt.payload);
        let Some(tap) = p.tap.as_mut() else {
            return;
        };
        let d = tap.on_packet(
            layer,
            keyframe,
            &p.last_packet,
            now,
            pkt.seq_no,
            pkt.header.timestamp,
            pkt.header.marker,
            wallclock_us,
            &pkt.payload,
        );
        if tap.gone {
            p.tap = None;
        }
        if let Some(l) = d.keyframe_for {
            self.request_keyframe(pk, l, now);
        }
    }

    /// An `Instant` as µs since the Unix epoch (through the shell's clock base; else through `SystemTime::now`).
    fn unix_us(&self, t: Instant) -> i64 {
        let (base_i, base_s) = self
            .clock_base
            .unwrap_or_else(|| (Instant::now(), std::time::SystemTime::now()));
        let base = base_s
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        if t >= base_i {
            base + i64::try_from(t.duration_since(base_i).as_micros()).unwrap_or(0)
        } else {
            base - i64::try_from(base_i.duration_since(t).as_micros()).unwrap_or(0)
        }
    }

    /// Attaches the recorder's virtual subscriber to a producer (replacing one already there) and asks for a
    /// keyframe; returns the codec it sends.
    pub fn start_recording(
        &mut self,
        producer_id: &str,
        sink: crate::record::RecordSink,
        now: Instant,
    ) -> Result<crate::record::RecordedCodec, SfuError> {
        let pk = *self
            .producer_ids
            .get(producer_id)
            .ok_or(SfuError::NotFound("producer"))?;
        let Some(p) = self.producers.get_mut(pk) else {
            return Err(SfuError::NotFound("producer"));
        };
        let video = p.mapping.kind == Kind::Video;
        let codec = crate::record::RecordedCodec {
            mime_type: p.mapping.router_codec.mime_type.to_owned(),
            clock_rate: p.mapping.router_codec.clock_rate,
            channels: p.mapping.router_codec.channels.unwrap_or(1),
        };
        p.tap = Some(crate::record::Tap::new(sink, video));
        let top = p.layer_ssrcs.len().saturating_sub(1);
        self.request_keyframe(pk, top, now);
        Ok(codec)
    }

    /// Detaches the recorder from a producer; false when it had none (or the producer is gone).
    pub fn stop_recording(&mut self, producer_id: &str) -> bool {
        let Some(&pk) = self.producer_ids.get(producer_id) else {
            return false;
        };
        self.producers
            .get_mut(pk)
            .and_then(|p| p.tap.take())
            .is_some()
    }

    fn request_keyframe(&mut self, pk: ProducerKey, layer: usize, now: Instant) {
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        if p.mapping.kind != Kind::Video {
            return;
        }
        let Some(Some(ssrc)) = p.layer_ssrcs.get(layer).copied() else {
            return;
        };
        let Some(last) = p.last_keyframe_request.get_mut(layer) else {
            return;
        };
        if last.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL) {
            return;
        }
        *last = Some(now);
        if let Some(pipe) = p.pipe_in {
            self.pipe_back.push_back(PipeBack::Keyframe { pipe, layer });
            self.stats.keyframe_requests += 1;
            return;
        }
        // mediasoup's rule: PLI when the producer's codec takes `nack pli`, else FIR when it takes `ccm fir`.
        let has = |kind: &str, param: &str| {
            p.mapping.codec.rtcp_feedback.iter().any(|f| {
                f.kind.eq_ignore_ascii_case(kind)
                    && f.parameter
                        .as_deref()
                        .unwrap_or("")
                        .eq_ignore_ascii_case(param)
            })
        };
        let kind = if !has("nack", "pli") && has("ccm", "fir") {
            KeyframeRequestKind::Fir
        } else {
            KeyframeRequestKind::Pli
        };
        let tk = p.transport;
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let requested = match t.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            Some(rx) => {
                rx.request_keyframe(kind);
                true
            }
            None => false,
        };
        if requested {
            tracing::debug!(producer = %p.id, layer, "keyframe requested");
            self.stats.keyframe_requests += 1;
            self.mark_dirty(tk);
        }
    }
}

/// What every consumer of one incoming packet shares.
struct Incoming<'a> {
    layer: usize,
    /// Layers inside the stream (VP8 temporal, VP9 SVC), when the producer has them and the payload says.
    inner: Option<layers::PacketLayers>,
    /// VP9 SVC: the highest spatial layer with a packet in the last `LAYER_QUIET`.
    svc_flowing: Option<u8>,
    keyframe: bool,
    video: bool,
    wallclock: Instant,
    ext: ExtensionValues,
    pkt: &'a PipedRtp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::TransId;

    fn hmac() -> &'static dyn str0m::crypto::Sha1HmacProvider {
        str0m::crypto::from_feature_flags().sha1_hmac_provider
    }

    fn request(use_candidate: bool, controlling: bool, pwd: &str) -> Vec<u8> {
        let msg = StunMessage::binding_request(
            "ours:theirs",
            TransId::new(),
            controlling,
            42,
            1_845_501_695,
            use_candidate,
        );
        let mut out = vec![0u8; 512];
        let n = msg
            .to_bytes(Some(pwd.as_bytes()), &mut out, |k, p| {
                hmac().sha1_hmac(k, p)
            })
            .expect("serialize");
        out.truncate(n);
        out
    }

    #[test]
    fn the_nominating_copy_is_the_same_request_with_use_candidate_signed_with_our_password() {
        let original = request(false, true, "our-password");
        let msg = StunMessage::parse(&original).expect("parse");
        let copy = nominating_copy(&msg, "our-password", hmac()).expect("a copy");
        let c = StunMessage::parse(&copy).expect("the copy parses");
        assert!(c.is_binding_request() && c.use_candidate());
        assert_eq!(
            c.trans_id(),
            msg.trans_id(),
            "the browser matches our answer to its request"
        );
        assert_eq!(c.split_username(), Some(("ours", "theirs")));
        assert_eq!((c.prio(), c.ice_controlling()), (msg.prio(), Some(42)));
        assert!(c.verify(b"our-password", |k, p| hmac().sha1_hmac(k, p)));
        assert!(!c.verify(b"other", |k, p| hmac().sha1_hmac(k, p)));
    }

    /// Every open transport has exactly one live heap entry, at or before its str0m deadline (a later deadline is
    /// re-queued when the entry surfaces); `next_deadline` is the earliest live entry.
    fn assert_deadline_invariant(core: &Core) {
        for (tk, t) in &core.transports {
            let s = t.scheduled.expect("every open transport is scheduled");
            assert!(s <= t.deadline, "scheduled after its deadline");
            let live = core
                .deadlines
                .iter()
                .filter(|Reverse((at, k))| *k == tk && *at == s)
                .count();
            assert!(live >= 1, "the live entry is in the heap");
        }
        let earliest = core.transports.values().filter_map(|t| t.scheduled).min();
        let liveness = core
            .next_liveness_check
            .filter(|_| !core.transports.is_empty());
        let want = match (earliest, liveness) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        assert_eq!(core.next_deadline(), want);
    }

    #[test]
    fn the_deadline_heap_keeps_one_live_entry_per_transport_through_timeouts_and_closes() {
        let addr: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let mut core = Core::new(addr, addr);
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for i in 0..30 {
            let dir = if i % 3 == 0 {
                Direction::Send
            } else {
                Direction::Recv
            };
            ids.push(core.create_transport("r", dir, t0).expect("transport").id);
        }
        core.drain_dirty(t0);
        assert_deadline_invariant(&core);
        let mut now = t0;
        for step in 0..400 {
            now += Duration::from_millis(7);
            core.handle_timeout(now);
            assert_deadline_invariant(&core);
            // A live deadline is never in the past after a call: nothing due is left behind.
            if let Some(d) = core.transports.values().filter_map(|t| t.scheduled).min() {
                assert!(d >= now, "a due transport was left behind at step {step}");
            }
            if step % 40 == 0 {
                if let Some(id) = ids.pop() {
                    core.close_transport(&id);
                    core.drain_dirty(now);
                    assert_deadline_invariant(&core);
                }
            }
        }
        // The heap does not grow without bound: stale entries are dropped as they surface.
        assert!(
            core.deadlines.len() <= 4 * core.transports.len() + 4,
            "{} heap entries for {} transports",
            core.deadlines.len(),
            core.transports.len()
        );
        for id in ids {
            core.close_transport(&id);
        }
        core.drain_dirty(now);
        assert_eq!(core.next_deadline(), None);
    }

    #[test]
    fn no_copy_for_a_nominating_or_a_controlled_request() {
        for (use_candidate, controlling) in [(true, true), (false, false)] {
            let original = request(use_candidate, controlling, "pw");
            let msg = StunMessage::parse(&original).expect("parse");
            assert_eq!(nominating_copy(&msg, "pw", hmac()), None);
        }
    }
}
