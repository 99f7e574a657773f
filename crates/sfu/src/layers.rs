//! Layers inside one RTP stream: VP8 temporal layers (Chrome's L1T3 in each simulcast encoding) and VP9 SVC
//! (spatial and temporal layers under one SSRC, `L3T3` or k-SVC `L3T3_KEY`). A consumer forwards only the layers up
//! to its targets; what it drops leaves no hole in its sequence numbers (`SeqGaps`), so the receiver never NACKs a
//! packet that was dropped on purpose.
//!
//! Switching (mediasoup's VP8/VP9 encoding contexts do the same):
//! - temporal up only where it is safe: a TL0 picture (nothing above it is referenced across it) or a packet the
//!   encoder marked as a switching point (VP8 `Y`, VP9 `U`); temporal down at the next picture;
//! - spatial up only on a keyframe; spatial down at the next picture in full SVC, on a keyframe in k-SVC (there a
//!   delta picture of the upper layer does not need the lower ones, so only the current layer is forwarded between
//!   keyframes, and a lower layer has nothing to decode from until its next keyframe);
//! - the RTP marker goes on the last packet of the target spatial layer's frame (VP9 `E`), which ends the picture
//!   for the receiver.

/// What the filter needs of one packet, from its payload descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketLayers {
    /// Spatial layer (VP9 SID; 0 for VP8).
    pub spatial: u8,
    /// Temporal layer (VP8 TID, VP9 TID).
    pub temporal: u8,
    /// Climbing to this packet's temporal layer is safe from here (VP8 `Y`, VP9 `U`).
    pub switch_up: bool,
    /// The first packet of a layer frame (VP8 `S` with partition 0, VP9 `B`).
    pub frame_start: bool,
    /// The last packet of a layer frame (VP9 `E`; VP8 has no such bit: false).
    pub frame_end: bool,
    /// Predicted from an earlier picture (VP9 `P`; VP8: the frame header's P bit on a frame's first packet).
    pub inter: bool,
}

impl PacketLayers {
    /// The first packet of a new picture (where temporal switches happen).
    pub fn picture_start(&self) -> bool {
        self.frame_start && self.spatial == 0
    }

    /// The first packet of a keyframe picture.
    pub fn keyframe_start(&self) -> bool {
        self.picture_start() && !self.inter
    }
}

/// The VP8 payload descriptor's layer fields (RFC 7741 §4.2); None without a TID (`T` = 0) or when truncated.
pub fn vp8(payload: &[u8]) -> Option<PacketLayers> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let ext = *payload.get(1)?;
    if ext & 0x20 == 0 {
        return None; // no TID
    }
    let mut at = 2;
    if ext & 0x80 != 0 {
        at += if *payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        at += 1;
    }
    let tk = *payload.get(at)?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    // The VP8 frame header follows the descriptor on a frame's first packet: its lowest bit is P (0 = keyframe).
    let inter = if start {
        payload.get(at + 1).is_none_or(|h| h & 0x01 != 0)
    } else {
        true
    };
    Some(PacketLayers {
        spatial: 0,
        temporal: tk >> 6,
        switch_up: tk & 0x20 != 0,
        frame_start: start,
        frame_end: false,
        inter,
    })
}

/// A VP9 payload descriptor (draft-ietf-payload-vp9 / RFC 9628 §4.2), flexible and non-flexible mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9Descriptor {
    pub picture_id: Option<u16>,
    /// `L` present: TID, U, SID, D.
    pub has_layers: bool,
    pub temporal: u8,
    pub switch_up: bool,
    pub spatial: u8,
    /// Inter-layer dependency (`D`).
    pub inter_layer: bool,
    /// Non-flexible mode only.
    pub tl0_pic_idx: Option<u8>,
    pub inter: bool,
    pub flexible: bool,
    pub begin: bool,
    pub end: bool,
    /// A scalability structure follows (`V`).
    pub ss: bool,
}

impl Vp9Descriptor {
    /// None when truncated before the end of the fields it announces (the scalability structure is not read).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b = *payload.first()?;
        let mut d = Vp9Descriptor {
            inter: b & 0x40 != 0,
            flexible: b & 0x10 != 0,
            begin: b & 0x08 != 0,
            end: b & 0x04 != 0,
            ss: b & 0x02 != 0,
            ..Vp9Descriptor::default()
        };
        let mut at = 1;
        if b & 0x80 != 0 {
            let hi = *payload.get(at)?;
            if hi & 0x80 != 0 {
                let lo = *payload.get(at + 1)?;
                d.picture_id = Some((u16::from(hi & 0x7f) << 8) | u16::from(lo));
                at += 2;
            } else {
                d.picture_id = Some(u16::from(hi));
                at += 1;
            }
        }
        if b & 0x20 != 0 {
            let l = *payload.get(at)?;
            at += 1;
            d.has_layers = true;
            d.temporal = l >> 5;
            d.switch_up = l & 0x10 != 0;
            d.spatial = (l >> 1) & 0x07;
            d.inter_layer = l & 0x01 != 0;
            if !d.flexible {
                d.tl0_pic_idx = Some(*payload.get(at)?);
                at += 1;
            }
        }
        if d.flexible && d.inter {
            // Up to three reference indices, each with N (another follows) as its lowest bit.
            for _ in 0..3 {
                let r = *payload.get(at)?;
                at += 1;
                if r & 0x01 == 0 {
                    break;
                }
            }
        }
        Some(d)
    }

    pub fn layers(&self) -> PacketLayers {
        PacketLayers {
            spatial: self.spatial,
            temporal: self.temporal,
            switch_up: self.switch_up,
            frame_start: self.begin,
            frame_end: self.end,
            inter: self.inter,
        }
    }
}

/// What to do with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    /// Forward with this marker bit.
    Forward {
        marker: bool,
    },
}

/// One consumer's layer selection inside a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerFilter {
    /// Spatial layers are filtered (VP9 SVC); otherwise every packet counts as spatial layer 0.
    pub svc: bool,
    /// k-SVC (`_KEY` modes): upper layers depend on lower ones only in keyframes.
    pub ksvc: bool,
    pub target_spatial: u8,
    pub target_temporal: u8,
    /// The producer's highest temporal layer: at it nothing is dropped for its temporal id (a publisher sending an
    /// id above what it announced is forwarded as before layers were filtered).
    top_temporal: u8,
    current_spatial: Option<u8>,
    current_temporal: Option<u8>,
}

impl LayerFilter {
    /// The targets start at the top: `top_spatial`, `top_temporal`.
    pub fn new(svc: bool, ksvc: bool, top_spatial: u8, top_temporal: u8) -> Self {
        Self {
            svc,
            ksvc,
            target_spatial: top_spatial,
            target_temporal: top_temporal,
            top_temporal,
            current_spatial: None,
            current_temporal: None,
        }
    }

    /// The stream (re)starts on a keyframe: the targets apply from it.
    pub fn start(&mut self) {
        self.current_spatial = Some(self.target_spatial);
        self.current_temporal = Some(self.target_temporal);
    }

    /// After a pause: nothing is current until the next start.
    pub fn stop(&mut self) {
        self.current_spatial = None;
        self.current_temporal = None;
    }

    pub fn current_spatial(&self) -> Option<u8> {
        self.current_spatial
    }

    pub fn current_temporal(&self) -> Option<u8> {
        self.current_temporal
    }

    /// A keyframe is needed to reach the target spatial layer (up; or down in k-SVC).
    pub fn wants_keyframe(&self) -> bool {
        self.svc
            && self.current_spatial.is_some_and(|cur| {
                self.target_spatial > cur || (self.ksvc && self.target_spatial < cur)
            })
    }

    /// Decides one packet; `marker` is the packet's own RTP marker.
    pub fn on_packet(&mut self, l: &PacketLayers, marker: bool) -> Verdict {
        let (Some(mut spatial), Some(mut temporal)) = (self.current_spatial, self.current_temporal)
        else {
            return Verdict::Drop;
        };
        if self.svc && self.target_spatial != spatial {
            let up = self.target_spatial > spatial;
            let now = if up || self.ksvc {
                l.keyframe_start()
            } else {
                l.picture_start()
            };
            if now {
                spatial = self.target_spatial;
            }
        }
        // Temporal switches happen at a picture's first packet (SID 0), dropped or not.
        if l.picture_start() {
            if self.target_temporal < temporal {
                temporal = self.target_temporal;
            } else if self.target_temporal > temporal {
                if l.temporal == 0 {
                    // A TL0 picture: what follows references nothing above it from before.
                    temporal = self.target_temporal;
                } else if l.switch_up && l.temporal > temporal && l.temporal <= self.target_temporal
                {
                    temporal = l.temporal;
                }
            }
        }
        self.current_spatial = Some(spatial);
        self.current_temporal = Some(temporal);
        if self.svc && (l.spatial > spatial || (self.ksvc && l.inter && l.spatial != spatial)) {
            return Verdict::Drop;
        }
        if l.temporal > temporal && temporal < self.top_temporal {
            return Verdict::Drop;
        }
        let end_of_target = self.svc && l.spatial == spatial && l.frame_end;
        Verdict::Forward {
            marker: marker || end_of_target,
        }
    }
}

/// How many packets a consumer remembers having dropped (for packets that arrive late, after newer ones).
const REMEMBERED_DROPS: usize = 256;

/// Sequence numbers without holes across packets dropped on purpose: each dropped packet newer than everything seen
/// moves the output back by one; a late packet is placed by the drops newer than it.
#[derive(Clone, Debug, Default)]
pub struct SeqGaps {
    /// Input sequence numbers dropped since the last reset, ascending (the newest at the back).
    dropped: std::collections::VecDeque<u64>,
    /// Whether older drops were forgotten (a late packet older than every remembered drop cannot be placed).
    forgot: bool,
    newest: Option<u64>,
}

impl SeqGaps {
    /// A new mapping starts (a layer switch sets the base offset): forget the drops.
    pub fn reset(&mut self, newest: u64) {
        self.dropped.clear();
        self.forgot = false;
        self.newest = Some(newest);
    }

    /// Records a dropped packet; returns how much the output offset grows (1 when the packet was the newest).
    pub fn drop_packet(&mut self, seq: u64) -> i64 {
        if self.newest.is_some_and(|n| seq <= n) {
            return 0; // late: its number is already taken (or was dropped before)
        }
        self.newest = Some(seq);
        self.dropped.push_back(seq);
        if self.dropped.len() > REMEMBERED_DROPS {
            self.dropped.pop_front();
            self.forgot = true;
        }
        1
    }

    /// For a packet to forward: how much to add back to the current offset's output (drops newer than a late
    /// packet), or None when it must not go out (it was dropped before, or it is too old to be placed).
    pub fn forward(&mut self, seq: u64) -> Option<i64> {
        if self.newest.is_none_or(|n| seq > n) {
            self.newest = Some(seq);
            return Some(0);
        }
        if self.dropped.back().is_none_or(|&d| d < seq) {
            return Some(0);
        }
        if self.dropped.binary_search(&seq).is_ok() {
            return None;
        }
        if self.forgot && self.dropped.front().is_some_and(|&d| seq < d) {
            return None;
        }
        let newer = self.dropped.len() - self.dropped.partition_point(|&d| d < seq);
        Some(newer as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-flexible VP9 descriptor: I (15-bit), L, then TL0PICIDX.
    fn vp9(pid: u16, sid: u8, tid: u8, inter: bool, begin: bool, end: bool, up: bool) -> Vec<u8> {
        let b0 = 0x80
            | 0x20
            | if inter { 0x40 } else { 0 }
            | if begin { 0x08 } else { 0 }
            | if end { 0x04 } else { 0 };
        let l = (tid << 5) | if up { 0x10 } else { 0 } | (sid << 1) | u8::from(sid > 0 && !inter);
        vec![b0, 0x80 | (pid >> 8) as u8, pid as u8, l, 7, 0xaa]
    }

    #[test]
    fn parses_non_flexible_and_flexible_vp9() {
        let p = vp9(0x1234, 2, 1, true, true, false, true);
        let d = Vp9Descriptor::parse(&p).expect("parse");
        assert_eq!(d.picture_id, Some(0x1234));
        assert_eq!((d.spatial, d.temporal, d.switch_up), (2, 1, true));
        assert_eq!(
            (d.begin, d.end, d.inter, d.flexible),
            (true, false, true, false)
        );
        assert_eq!(d.tl0_pic_idx, Some(7));
        // Flexible mode, 7-bit picture id, two reference indices (N on the first), no TL0PICIDX.
        let f = [0xf8, 0x05, 0x22, 0x03, 0x04, 0x99];
        let d = Vp9Descriptor::parse(&f).expect("flexible");
        assert!(d.flexible && d.inter && d.begin);
        assert_eq!(d.picture_id, Some(5));
        assert_eq!((d.temporal, d.spatial, d.inter_layer), (1, 1, false));
        assert_eq!(d.tl0_pic_idx, None);
        // Truncated in the reference indices (N says another follows).
        assert_eq!(Vp9Descriptor::parse(&[0xf8, 0x05, 0x22, 0x03]), None);
        // No I, no L: a keyframe start of a stream without layers.
        let d = Vp9Descriptor::parse(&[0x0c]).expect("bare");
        assert!(!d.has_layers && d.begin && d.end && !d.inter);
        assert!(d.layers().keyframe_start());
        for cut in [&[][..], &[0x80], &[0x80, 0x80], &[0xa0, 0x01], &[0x20]] {
            assert_eq!(Vp9Descriptor::parse(cut), None, "{cut:?}");
        }
        // Any two first bytes: never a panic.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = Vp9Descriptor::parse(&[a, b]);
                let _ = Vp9Descriptor::parse(&[a, b, 0xff, 0x01]);
                let _ = vp8(&[a, b, 0xff]);
            }
        }
    }

    #[test]
    fn parses_the_vp8_tid() {
        // X, S, partition 0; I (15-bit) L T; TID 2, Y; VP8 header P=1.
        let p = [0x90, 0xe0, 0x81, 0x00, 9, 0x80 | 0x20, 0x01];
        let l = vp8(&p).expect("layers");
        assert_eq!(
            (l.temporal, l.switch_up, l.frame_start, l.inter),
            (2, true, true, true)
        );
        // A keyframe's first packet: TID 0, P=0.
        let k = [0x90, 0xe0, 0x81, 0x00, 9, 0x00, 0x00];
        assert!(vp8(&k).expect("key").keyframe_start());
        // A middle packet (S=0).
        let m = [0x80, 0x60, 9, 0x40];
        let l = vp8(&m).expect("middle");
        assert_eq!((l.temporal, l.frame_start), (1, false));
        // T=0: no temporal information.
        assert_eq!(vp8(&[0x90, 0xc0, 0x81, 0, 9, 0]), None);
        assert_eq!(vp8(&[0x90, 0xe0, 0x81, 0, 9]), None, "truncated");
    }

    fn l(spatial: u8, temporal: u8, start: bool, end: bool, inter: bool, up: bool) -> PacketLayers {
        PacketLayers {
            spatial,
            temporal,
            switch_up: up,
            frame_start: start,
            frame_end: end,
            inter,
        }
    }

    /// Pictures of the L1T3 pattern 0,2,1,2: only TL0 passes at temporal 0, and the climb back waits for a TL0
    /// picture or a switching point.
    #[test]
    fn temporal_layers_are_dropped_and_climbed_at_safe_points() {
        let mut f = LayerFilter::new(false, false, 0, 2);
        f.target_temporal = 0;
        f.start();
        let pattern = [0u8, 2, 1, 2, 0, 2, 1, 2];
        let pass: Vec<bool> = pattern
            .iter()
            .map(|&t| {
                matches!(
                    f.on_packet(&l(0, t, true, false, true, false), true),
                    Verdict::Forward { .. }
                )
            })
            .collect();
        assert_eq!(pass, [true, false, false, false, true, false, false, false]);
        // Target 2 from a TID 2 picture without Y: not yet; a TID 1 picture with Y: up to 1; the TL0: all.
        f.target_temporal = 2;
        assert_eq!(
            f.on_packet(&l(0, 2, true, false, true, false), true),
            Verdict::Drop
        );
        assert_eq!(
            f.on_packet(&l(0, 1, true, false, true, true), true),
            Verdict::Forward { marker: true }
        );
        assert_eq!(f.current_temporal(), Some(1));
        assert_eq!(
            f.on_packet(&l(0, 2, true, false, true, false), false),
            Verdict::Drop
        );
        assert!(matches!(
            f.on_packet(&l(0, 0, true, false, true, false), true),
            Verdict::Forward { .. }
        ));
        assert_eq!(f.current_temporal(), Some(2));
        assert!(matches!(
            f.on_packet(&l(0, 2, true, false, true, false), true),
            Verdict::Forward { .. }
        ));
        // Down at once at the next picture; a middle packet of a TID 2 frame already forwarded is kept.
        f.target_temporal = 0;
        assert!(matches!(
            f.on_packet(&l(0, 2, false, false, true, false), false),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            f.on_packet(&l(0, 1, true, false, true, false), true),
            Verdict::Drop
        );
        assert_eq!(f.current_temporal(), Some(0));
    }

    /// At the top temporal layer nothing is dropped for its temporal id, even one above what the producer announced
    /// (the fuzz target's invariant: with no layer lowered, every packet goes out with the same offsets).
    #[test]
    fn nothing_is_dropped_at_the_top_temporal_layer() {
        let mut f = LayerFilter::new(false, false, 0, 2);
        f.start();
        for t in [0u8, 3, 2, 7] {
            assert!(matches!(
                f.on_packet(&l(0, t, true, false, true, false), false),
                Verdict::Forward { marker: false }
            ));
        }
        f.target_temporal = 1;
        assert_eq!(
            f.on_packet(&l(0, 3, true, false, true, false), false),
            Verdict::Drop
        );
    }

    /// k-SVC L3T3_KEY: at spatial 0 only SID 0 goes out and its end of frame carries the marker; climbing waits for
    /// a keyframe; on top, delta pictures carry only SID 2.
    #[test]
    fn vp9_spatial_layers_follow_the_target() {
        let mut f = LayerFilter::new(true, true, 2, 2);
        f.target_spatial = 0;
        f.start();
        let picture = |key: bool| {
            (0..3u8)
                .map(move |s| l(s, 0, true, true, !key, false))
                .collect::<Vec<_>>()
        };
        let run = |f: &mut LayerFilter, key: bool| -> Vec<(u8, bool)> {
            picture(key)
                .iter()
                .filter_map(|p| match f.on_packet(p, p.spatial == 2) {
                    Verdict::Forward { marker } => Some((p.spatial, marker)),
                    Verdict::Drop => None,
                })
                .collect()
        };
        assert_eq!(run(&mut f, false), [(0, true)]);
        f.target_spatial = 2;
        assert!(f.wants_keyframe());
        assert_eq!(
            run(&mut f, false),
            [(0, true)],
            "no climb on a delta picture"
        );
        assert_eq!(run(&mut f, true), [(0, false), (1, false), (2, true)]);
        assert!(!f.wants_keyframe());
        assert_eq!(
            run(&mut f, false),
            [(2, true)],
            "k-SVC: only the current layer"
        );
        f.target_spatial = 1;
        assert!(f.wants_keyframe(), "k-SVC goes down on a keyframe");
        assert_eq!(run(&mut f, false), [(2, true)]);
        assert_eq!(run(&mut f, true), [(0, false), (1, true)]);
        // Full SVC: down at the next picture, every layer up to the current one.
        let mut f = LayerFilter::new(true, false, 2, 2);
        f.start();
        assert_eq!(run(&mut f, false), [(0, false), (1, false), (2, true)]);
        f.target_spatial = 0;
        assert!(!f.wants_keyframe());
        assert_eq!(run(&mut f, false), [(0, true)]);
    }

    #[test]
    fn sequence_numbers_close_over_drops_and_place_late_packets() {
        let mut g = SeqGaps::default();
        g.reset(10);
        let mut offset = 0;
        let mut out = Vec::new();
        for seq in 11..=20u64 {
            if seq % 3 == 0 {
                offset += g.drop_packet(seq);
            } else {
                let add = g.forward(seq).expect("forwarded");
                out.push(seq as i64 - offset + add);
            }
        }
        assert_eq!(out, [11, 12, 13, 14, 15, 16, 17]);
        // Late: 13 (forwarded before) keeps its number 13 - 1 drop before it = 12; 15 was dropped.
        assert_eq!(g.forward(13).map(|a| 13 - offset + a), Some(12));
        assert_eq!(g.forward(15), None);
        assert_eq!(g.drop_packet(14), 0, "a late drop moves nothing");
    }
}
