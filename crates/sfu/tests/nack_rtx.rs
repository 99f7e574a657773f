//! (g) Packet loss: video packets dropped between the publisher and the Core are NACKed by the Core and recovered
//! by the publisher's RTX; packets dropped between the Core and a subscriber are NACKed by the subscriber and
//! resent by the Core from its RTX cache. Either way the subscriber ends up with every packet, byte-identical,
//! under gap-free sequence numbers.

mod common;

use common::*;
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Loss {
    /// (ssrc, seq) to drop, once each.
    drop: HashSet<(u32, u16)>,
    dropped: usize,
    /// Datagrams seen per SSRC of interest: RTX resends.
    rtx_ssrc: u32,
    rtx_seen: usize,
}

fn lossy(loss: Rc<RefCell<Loss>>, on: SocketAddr, from_side: bool) -> Filter {
    Box::new(move |from, to, d| {
        if (from_side && from != on) || (!from_side && to != on) {
            return true;
        }
        let Some((ssrc, seq, _)) = rtp_header(d) else {
            return true;
        };
        let mut l = loss.borrow_mut();
        if ssrc == l.rtx_ssrc {
            l.rtx_seen += 1;
        }
        if l.drop.remove(&(ssrc, seq)) {
            l.dropped += 1;
            return false;
        }
        true
    })
}

/// Every video packet the subscriber got, by sequence number, must cover a gap-free run of what was sent.
fn assert_complete(w: &World, vc: &sfu::ConsumerInfo) -> usize {
    let mut got: Vec<(u64, Arc<[u8]>)> = w.subs[0]
        .rtp_of(vc)
        .iter()
        .map(|p| (*p.seq_no, p.payload.clone()))
        .collect();
    got.sort_by_key(|(s, _)| *s);
    got.dedup_by_key(|(s, _)| *s);
    assert_eq!(got[0].0, 1);
    for (i, (seq, _)) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            i as u64 + 1,
            "sequence number {} missing at the subscriber",
            i + 1
        );
    }
    let sent = &w.pubs[0]
        .tracks
        .iter()
        .find(|t| t.kind == sfu::Kind::Video)
        .expect("video")
        .sent[0];
    let start = sent
        .iter()
        .position(|s| *s == got[0].1)
        .expect("first payload was sent");
    for (i, (_, payload)) in got.iter().enumerate() {
        assert!(
            *payload == sent[start + i],
            "payload of seq {} differs",
            i + 1
        );
    }
    assert_eq!(
        got.last().map(|g| &g.1),
        sent.last(),
        "the last packet arrived"
    );
    got.len()
}

#[test]
fn uplink_loss_is_recovered_by_nack_and_rtx() {
    let mut pair = pair(false, true, false);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_millis(500));
    let enc = w.pubs[0].tracks[0].rtp_parameters.encodings[0].clone();
    let ssrc = enc.ssrc.expect("publisher ssrc");
    let rtx = enc.rtx.expect("publisher rtx").ssrc;
    // The next ~2 s of video: every 9th packet, and a burst of 4.
    let next = w.pubs[0].tracks[0].packets as u16 + 1;
    let mut drop: HashSet<(u32, u16)> = (0..24).map(|i| (ssrc, next + 20 + i * 9)).collect();
    drop.extend((0..4).map(|i| (ssrc, next + 100 + i)));
    let expected = drop.len();
    let loss = Rc::new(RefCell::new(Loss {
        drop,
        rtx_ssrc: rtx,
        ..Loss::default()
    }));
    w.uplink = Some(lossy(loss.clone(), w.pubs[0].ep.addr, true));
    w.run(Duration::from_secs(3));
    w.pubs[0].auto = false;
    w.run(Duration::from_millis(500));

    let l = loss.borrow();
    assert_eq!(l.dropped, expected, "the filter dropped what it should");
    assert!(
        l.rtx_seen >= expected,
        "RTX resends from the publisher: {} for {expected} losses",
        l.rtx_seen
    );
    let n = assert_complete(w, &vc);
    assert!(n > 300, "{n} video packets");
}

#[test]
fn downlink_loss_is_recovered_by_nack_and_rtx() {
    let mut pair = pair(false, true, false);
    let w = &mut pair.world;
    let vc = pair.video_consumer.clone().expect("video consumer");
    w.run(Duration::from_millis(500));
    let enc = vc.rtp_parameters.encodings[0].clone();
    let ssrc = enc.ssrc.expect("consumer ssrc");
    let rtx = enc.rtx.expect("consumer rtx").ssrc;
    let next = w.subs[0].rtp_of(&vc).len() as u16 + 1;
    let mut drop: HashSet<(u32, u16)> = (0..24).map(|i| (ssrc, next + 20 + i * 9)).collect();
    drop.extend((0..4).map(|i| (ssrc, next + 100 + i)));
    let expected = drop.len();
    let loss = Rc::new(RefCell::new(Loss {
        drop,
        rtx_ssrc: rtx,
        ..Loss::default()
    }));
    w.downlink = Some(lossy(loss.clone(), w.subs[0].ep.addr, false));
    w.run(Duration::from_secs(3));
    w.pubs[0].auto = false;
    w.run(Duration::from_millis(500));

    let l = loss.borrow();
    assert_eq!(l.dropped, expected, "the filter dropped what it should");
    assert!(
        l.rtx_seen >= expected,
        "RTX resends from the Core: {} for {expected} losses",
        l.rtx_seen
    );
    let n = assert_complete(w, &vc);
    assert!(n > 300, "{n} video packets");
}
