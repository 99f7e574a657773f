//! (e) Garbage fed to `handle_receive` while a session is running — random bytes, zero-length, truncated and
//! malformed STUN, STUN for unknown ufrags, DTLS records and RTP/RTCP for unknown SSRCs from strangers and from the
//! publisher's own address — never panics, is never answered, and never disturbs the session.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use str0m::ice::{StunMessage, TransId};

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn stranger(rng: &mut Rng) -> SocketAddr {
    SocketAddr::from((
        [192, 0, 2, rng.below(250) as u8 + 1],
        1024 + rng.below(60_000) as u16,
    ))
}

/// A binding request with USERNAME `username` and a MESSAGE-INTEGRITY computed with a made-up key.
fn forged_stun(username: &str) -> Vec<u8> {
    let msg = StunMessage::binding_request(username, TransId::new(), true, 42, 1_853_824_767, true);
    let mut buf = vec![0u8; 1500];
    let n = msg
        .to_bytes(Some(b"not-the-password"), &mut buf, |_, _| [7u8; 20])
        .expect("stun serialize");
    buf.truncate(n);
    buf
}

/// One datagram of garbage and where it claims to come from.
fn garbage(rng: &mut Rng, server_ufrag: &str, publisher: SocketAddr) -> (SocketAddr, Vec<u8>) {
    let from = stranger(rng);
    match rng.below(15) {
        0 => (from, Vec::new()),
        1 => (publisher, Vec::new()),
        2 => {
            let n = 1 + rng.below(1500);
            (from, rng.bytes(n))
        }
        3 => {
            // Truncated binding request (length field no longer matches).
            let mut s = forged_stun(&format!("{server_ufrag}:abcd"));
            let n = rng.below(s.len());
            s.truncate(n);
            (from, s)
        }
        4 => {
            // Bad magic cookie / bad length / header only.
            let mut s = forged_stun("nobody:abcd");
            match rng.below(3) {
                0 => s[5] ^= 0xff,
                1 => s[3] = s[3].wrapping_add(4),
                _ => s.truncate(20),
            }
            (from, s)
        }
        5 => (from, forged_stun("nobodyknowsthisufrag:abcd")),
        6 => (from, forged_stun(&format!("{server_ufrag}x:abcd"))),
        7 => (from, forged_stun(":")),
        8 => {
            // A DTLS handshake record (ClientHello-shaped) from a stranger.
            let mut d = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
            let n = 40 + rng.below(200);
            let body = rng.bytes(n);
            d.extend_from_slice(&(body.len() as u16).to_be_bytes());
            d.extend_from_slice(&body);
            (from, d)
        }
        9 | 10 => {
            // RTP with an unknown SSRC, from a stranger or spoofing the publisher's address.
            let mut d = vec![0x80, 96];
            d.extend_from_slice(&(rng.next() as u16).to_be_bytes());
            d.extend_from_slice(&(rng.next() as u32).to_be_bytes());
            d.extend_from_slice(&(rng.next() as u32 | 1).to_be_bytes());
            let n = rng.below(1200);
            d.extend(rng.bytes(n));
            (if rng.below(2) == 0 { from } else { publisher }, d)
        }
        11 => {
            // RTCP (SR/RR/PLI-shaped) with junk, spoofing the publisher's address.
            let mut d = vec![0x81, [200u8, 201, 206][rng.below(3)], 0, 7];
            let n = 28 + 4 * rng.below(8);
            d.extend(rng.bytes(n));
            (publisher, d)
        }
        12 => {
            // Random bytes with each demux byte (STUN 0-3, DTLS 20-63, RTP 128-191, nothing) from a stranger.
            let n = 2 + rng.below(300);
            let mut d = rng.bytes(n);
            d[0] = [0u8, 1, 3, 20, 23, 63, 64, 127, 128, 191, 192, 255][rng.below(12)];
            (from, d)
        }
        13 => {
            // DTLS records (handshake, alert, application data; epochs 0 and 1) spoofing the publisher's address.
            let ct = [20u8, 21, 22, 23][rng.below(4)];
            let mut d = vec![
                ct,
                0xfe,
                0xfd,
                0,
                rng.below(2) as u8,
                0,
                0,
                0,
                0,
                0,
                rng.below(50) as u8,
            ];
            let n = 2 + rng.below(120);
            let body = rng.bytes(n);
            d.extend_from_slice(&(body.len() as u16).to_be_bytes());
            d.extend_from_slice(&body);
            (publisher, d)
        }
        _ => {
            let n = 2000 + rng.below(8000);
            (from, rng.bytes(n))
        }
    }
}

#[test]
fn garbage_never_disturbs_a_session() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    let ac = pair.audio_consumer.clone().expect("audio consumer");
    let server_ufrag = w.pubs[0].transport.params["iceParameters"]["usernameFragment"]
        .as_str()
        .expect("ufrag")
        .to_owned();
    let publisher = w.pubs[0].ep.addr;
    w.run(Duration::from_millis(500));
    let before = (w.subs[0].rtp_of(&vc).len(), w.subs[0].rtp_of(&ac).len());
    let dropped = w.core.stats().dropped_datagrams;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut fed = 0u64;
    for _ in 0..3000 {
        for _ in 0..4 {
            let (from, d) = garbage(&mut rng, &server_ufrag, publisher);
            w.core.handle_receive(w.now, from, &d);
            fed += 1;
        }
        w.step();
    }
    w.pubs[0].auto = false;
    w.run(Duration::from_millis(300));

    let video = w.subs[0].rtp_of(&vc);
    let audio = w.subs[0].rtp_of(&ac);
    // 3 s at ~105 video and 50 audio packets per second.
    assert!(
        video.len() > before.0 + 280,
        "video during garbage: {}",
        video.len() - before.0
    );
    assert!(
        audio.len() > before.1 + 140,
        "audio during garbage: {}",
        audio.len() - before.1
    );
    assert_continuous(&video, "video");
    assert_continuous(&audio, "audio");
    let last_sent = w.pubs[0].tracks[1].sent[0].last().cloned();
    assert_eq!(
        video.last().map(|p| p.payload.clone()),
        last_sent,
        "the last frame arrived"
    );
    let dropped_now = w.core.stats().dropped_datagrams - dropped;
    assert!(
        dropped_now > fed / 2,
        "garbage should be counted as dropped: {dropped_now} of {fed}"
    );
    assert_eq!(w.undeliverable, 0, "the Core answered a stranger");
    assert!(w.pubs[0].ep.rtc.is_connected() && w.subs[0].ep.rtc.is_connected());
}

/// Every kind of garbage, each alone, before any client connected: no panic, nothing sent, nothing created.
#[test]
fn garbage_on_an_idle_core() {
    let mut w = World::new();
    let _p = w.add_publisher(ROUTER);
    let server_ufrag = w.pubs[0].transport.params["iceParameters"]["usernameFragment"]
        .as_str()
        .expect("ufrag")
        .to_owned();
    let mut rng = Rng(7);
    for _ in 0..5000 {
        let (from, d) = garbage(&mut rng, &server_ufrag, client_addr(99));
        w.core.handle_receive(w.now, from, &d);
    }
    w.core.handle_timeout(w.now);
    w.core.drain_dirty(w.now);
    let mut answered = 0;
    while let Some((dest, _)) = w.core.poll_transmit() {
        assert!(
            !dest.ip().to_string().starts_with("192.0.2."),
            "answered a stranger"
        );
        answered += 1;
    }
    assert_eq!(answered, 0);
    let stats = w.core.stats();
    assert_eq!((stats.transports, stats.producers, stats.rtp_in), (1, 0, 0));
}

/// Forged binding requests carrying the transport's real server ufrag but made-up client ufrags (and a bogus
/// MESSAGE-INTEGRITY), from other addresses — what anyone who saw one STUN packet of the session can send. The Core
/// switches its remote ICE ufrag to the forged one before str0m rejects the integrity (and back on the client's
/// next consent check); the session must survive that, and the forger must never be answered.
#[test]
fn forged_stun_with_the_server_ufrag_does_not_hijack() {
    let mut pair = pair(true, true, false);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    let server_ufrag = w.pubs[0].transport.params["iceParameters"]["usernameFragment"]
        .as_str()
        .expect("ufrag")
        .to_owned();
    w.run(Duration::from_millis(500));
    let mut rng = Rng(3);
    for i in 0..60 {
        w.core.handle_receive(
            w.now,
            stranger(&mut rng),
            &forged_stun(&format!("{server_ufrag}:evil{i}")),
        );
        w.run(Duration::from_millis(250));
    }
    let before = w.subs[0].rtp_of(&vc).len();
    w.run(Duration::from_secs(2));
    assert!(
        w.subs[0].rtp_of(&vc).len() > before + 150,
        "the session stopped after forged STUN"
    );
    assert!(w.pubs[0].ep.rtc.is_connected());
    assert_eq!(w.undeliverable, 0, "the Core answered a forged request");
}
