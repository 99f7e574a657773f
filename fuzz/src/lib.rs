//! Fixtures shared by the fuzz targets: a `Core` on 127.0.0.1:40000 with one send and one recv transport, ICE
//! completed from fixed source addresses (real, correctly signed STUN binding requests), DTLS started against a
//! fake client fingerprint, and optionally media (an opus and a VP8-simulcast producer, each consumed).

use serde_json::{json, Value};
use sfu::ortc::{self, Kind};
use sfu::{Core, Direction, RtpParameters};
use std::net::SocketAddr;
use std::time::Instant;
use str0m::ice::{StunMessage, TransId};

pub const LOCAL: &str = "127.0.0.1:40000";

/// A well-formed sha-256 fingerprint no real peer has.
pub const FAKE_FINGERPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

/// The browser's ICE ufrag in every fixture.
pub const REMOTE_UFRAG: &str = "fuzzRemoteUfrag1";

/// In fuzz input, these 16 bytes are replaced by the send / recv transport's real (random) ufrag, so STUN routing by
/// ufrag is reachable.
pub const SEND_UFRAG_PLACEHOLDER: &[u8; 16] = b"SSSSSSSSSSSSSSSS";
pub const RECV_UFRAG_PLACEHOLDER: &[u8; 16] = b"RRRRRRRRRRRRRRRR";

/// Fixed peers: 0 completed ICE on the send transport, 1 on the recv transport, 2 and 3 never did.
pub fn source(i: u8) -> SocketAddr {
    let s = match i & 3 {
        0 => "10.0.0.1:50000",
        1 => "10.0.0.2:50001",
        2 => "[2001:db8::7]:50002",
        _ => "192.168.1.9:3478",
    };
    s.parse().expect("fixed address")
}

pub struct Endpoint {
    pub id: String,
    pub ufrag: String,
    pub pwd: String,
}

pub struct Fixture {
    pub core: Core,
    pub now: Instant,
    pub send: Endpoint,
    pub recv: Endpoint,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    use aws_lc_rs::hmac;
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key));
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// A binding request as Chrome sends it to an ICE-lite server: USERNAME `ours:theirs`, PRIORITY, ICE-CONTROLLING,
/// USE-CANDIDATE, MESSAGE-INTEGRITY with our password, FINGERPRINT.
pub fn stun_binding_request(local_ufrag: &str, remote_ufrag: &str, local_pwd: &str) -> Vec<u8> {
    let username = format!("{local_ufrag}:{remote_ufrag}");
    let msg = StunMessage::binding_request(&username, TransId::new(), true, 0x1234_5678_9abc_def0, 1_853_824_767, true);
    let mut buf = vec![0u8; 1500];
    let n = msg.to_bytes(Some(local_pwd.as_bytes()), &mut buf, hmac_sha1).expect("stun encodes");
    buf.truncate(n);
    buf
}

fn endpoint(core: &mut Core, direction: Direction, now: Instant) -> Endpoint {
    let info = core.create_transport("router", direction, now).expect("transport");
    let ice = &info.params["iceParameters"];
    let text = |v: &Value| v.as_str().expect("string").to_owned();
    Endpoint {
        id: info.id.clone(),
        ufrag: text(&ice["usernameFragment"]),
        pwd: text(&ice["password"]),
    }
}

/// mediasoup-client 3.24 on Chrome: `produce({track: mic})`.
pub fn chrome_opus() -> Value {
    json!({
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}},
            {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2, "encrypt": false, "parameters": {}},
            {"uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3, "encrypt": false, "parameters": {}},
            {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": 2_938_128_811u32, "dtx": false}],
        "rtcp": {"cname": "Gk0Ss2oOnz0nvUTk", "reducedSize": true}
    })
}

/// mediasoup-client 3.24 on Chrome: `produce({track: cam, encodings: [3]})`, VP8 simulcast by rid.
pub fn chrome_vp8_simulcast() -> Value {
    let fb = json!([{"type": "goog-remb", "parameter": ""}, {"type": "transport-cc", "parameter": ""},
                    {"type": "ccm", "parameter": "fir"}, {"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"}]);
    json!({
        "mid": "1",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {}, "rtcpFeedback": fb},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": 10},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", "id": 11},
            {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2},
            {"uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3},
            {"uri": "urn:3gpp:video-orientation", "id": 13},
            {"uri": "urn:ietf:params:rtp-hdrext:toffset", "id": 14}
        ],
        "encodings": [
            {"active": true, "rid": "r0", "scalabilityMode": "L1T3", "scaleResolutionDownBy": 4, "maxBitrate": 150000},
            {"active": true, "rid": "r1", "scalabilityMode": "L1T3", "scaleResolutionDownBy": 2, "maxBitrate": 500000},
            {"active": true, "rid": "r2", "scalabilityMode": "L1T3", "scaleResolutionDownBy": 1, "maxBitrate": 1200000}
        ],
        "rtcp": {"cname": "", "reducedSize": true}
    })
}

impl Fixture {
    /// The core with both transports connected (DTLS started, we are the DTLS server) and ICE done from sources 0/1.
    pub fn new(with_media: bool) -> Self {
        let now = Instant::now();
        let local: SocketAddr = LOCAL.parse().expect("fixed address");
        let mut core = Core::new(local, local);
        let send = endpoint(&mut core, Direction::Send, now);
        let recv = endpoint(&mut core, Direction::Recv, now);
        let dtls = json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": FAKE_FINGERPRINT}]});
        core.connect_transport(&send.id, &dtls).expect("connect send");
        core.connect_transport(&recv.id, &dtls).expect("connect recv");
        let mut f = Fixture {
            core,
            now,
            send,
            recv,
            producers: Vec::new(),
            consumers: Vec::new(),
        };
        f.refresh_ice();
        if with_media {
            let caps = ortc::router_capabilities();
            for (kind, v) in [(Kind::Audio, chrome_opus()), (Kind::Video, chrome_vp8_simulcast())] {
                let rtp: RtpParameters = serde_json::from_value(v).expect("fixture parses");
                let pid = f.core.produce(&f.send.id, kind, &rtp).expect("fixture produces");
                let c = f.core.consume(&f.recv.id, &pid, &caps).expect("fixture consumes");
                f.core.set_consumer_paused(&c.id, false, now).expect("resume");
                f.producers.push(pid);
                f.consumers.push(c.id);
            }
        }
        f.core.drain_dirty(now);
        f.flush();
        f
    }

    /// A valid binding request from source 0 to the send transport and from source 1 to the recv transport (ICE
    /// consent; the first one also teaches the core the browser's ufrag and source).
    pub fn refresh_ice(&mut self) {
        let (now, send, recv) = (self.now, &self.send, &self.recv);
        let to_send = stun_binding_request(&send.ufrag, REMOTE_UFRAG, &send.pwd);
        let to_recv = stun_binding_request(&recv.ufrag, REMOTE_UFRAG, &recv.pwd);
        self.core.handle_receive(now, source(0), &to_send);
        self.core.handle_receive(now, source(1), &to_recv);
        self.flush();
    }

    /// Drops whatever the core wants to send (bounded).
    pub fn flush(&mut self) -> usize {
        let mut n = 0;
        while n < 10_000 && self.core.poll_transmit().is_some() {
            n += 1;
        }
        n
    }

    /// Replaces the ufrag placeholders in a datagram with the transports' real ufrags.
    pub fn substitute(&self, datagram: &mut [u8]) {
        for (placeholder, ufrag) in [(SEND_UFRAG_PLACEHOLDER, &self.send.ufrag), (RECV_UFRAG_PLACEHOLDER, &self.recv.ufrag)] {
            let ufrag = ufrag.as_bytes();
            if ufrag.len() != placeholder.len() {
                continue;
            }
            let mut i = 0;
            while i + placeholder.len() <= datagram.len() {
                if &datagram[i..i + placeholder.len()] == placeholder {
                    datagram[i..i + placeholder.len()].copy_from_slice(ufrag);
                    i += placeholder.len();
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// The scenario-test harness of `crates/sfu/tests` (a `World` with a `Core` and fake mediasoup-clients on str0m that
/// do real ICE-lite + DTLS-SRTP in memory on simulated time), shared rather than copied: the `forward` target drives it.
#[path = "../../crates/sfu/tests/common/mod.rs"]
pub mod scenario;
