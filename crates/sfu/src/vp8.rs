//! The VP8 payload descriptor (RFC 7741 §4.2) fields a simulcast or temporal-layer consumer rewrites: PictureID and
//! TL0PICIDX.
//!
//! Every simulcast layer is its own VP8 stream with its own picture-id and tl0picidx sequences. A consumer that
//! switches layers must keep both continuous (mediasoup's SimulcastConsumer does the same), or the receiver's frame
//! reference finder sees a jump: Chromium accepts a backward jump only on a keyframe with a newer timestamp, other
//! receivers may drop frames until the ids catch up.

/// Where the rewritable fields sit in one packet's payload descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Offset of the PictureID and whether it is the 15-bit form (M bit) rather than 7 bits.
    pub picture_id: Option<(usize, bool)>,
    /// Offset of TL0PICIDX.
    pub tl0_pic_idx: Option<usize>,
}

impl Descriptor {
    /// Parses the descriptor at the start of `payload`; `None` when it is truncated.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let mut d = Descriptor {
            picture_id: None,
            tl0_pic_idx: None,
        };
        if first & 0x80 == 0 {
            return Some(d); // X = 0: no extension byte, nothing to rewrite
        }
        let ext = *payload.get(1)?;
        let mut at = 2;
        if ext & 0x80 != 0 {
            let b = *payload.get(at)?;
            let long = b & 0x80 != 0;
            if long {
                payload.get(at + 1)?;
            }
            d.picture_id = Some((at, long));
            at += if long { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            payload.get(at)?;
            d.tl0_pic_idx = Some(at);
        }
        Some(d)
    }

    pub fn picture_id(&self, payload: &[u8]) -> Option<u16> {
        let (at, long) = self.picture_id?;
        Some(if long {
            (u16::from(*payload.get(at)? & 0x7f) << 8) | u16::from(*payload.get(at + 1)?)
        } else {
            u16::from(*payload.get(at)? & 0x7f)
        })
    }

    pub fn tl0_pic_idx(&self, payload: &[u8]) -> Option<u8> {
        payload.get(self.tl0_pic_idx?).copied()
    }

    /// Modulus of the picture id (2^15 or 2^7).
    pub fn picture_id_modulus(&self) -> u16 {
        match self.picture_id {
            Some((_, false)) => 0x80,
            _ => 0x8000,
        }
    }

    /// Writes `id` (reduced to the field's width) in place.
    pub fn set_picture_id(&self, payload: &mut [u8], id: u16) {
        let Some((at, long)) = self.picture_id else {
            return;
        };
        if long {
            if let [hi, lo] = payload.get_mut(at..at + 2).unwrap_or_default() {
                *hi = 0x80 | ((id >> 8) as u8 & 0x7f);
                *lo = id as u8;
            }
        } else if let Some(b) = payload.get_mut(at) {
            *b = id as u8 & 0x7f;
        }
    }

    pub fn set_tl0_pic_idx(&self, payload: &mut [u8], idx: u8) {
        if let Some(b) = self.tl0_pic_idx.and_then(|at| payload.get_mut(at)) {
            *b = idx;
        }
    }
}

/// Per-consumer offsets that map a layer's picture ids and tl0picidx onto one continuous output sequence.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewriter {
    /// Output minus input, per field, for the current layer (set on a switch).
    pid_delta: u16,
    tl0_delta: u8,
    /// The newest values written (the next layer continues after them).
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
}

impl Rewriter {
    /// Called on the first packet of a new layer (a keyframe start): its picture continues right after the last
    /// one sent.
    pub fn switch(&mut self, payload: &[u8]) {
        let Some(d) = Descriptor::parse(payload) else {
            return;
        };
        if let Some(pid) = d.picture_id(payload) {
            let m = d.picture_id_modulus();
            let want = self.last_pid.map_or(pid, |l| (l + 1) % m);
            self.pid_delta = want.wrapping_sub(pid) % m;
        }
        if let Some(tl0) = d.tl0_pic_idx(payload) {
            let want = self.last_tl0.map_or(tl0, |l| l.wrapping_add(1));
            self.tl0_delta = want.wrapping_sub(tl0);
        }
    }

    /// A picture dropped on purpose (a temporal layer above the consumer's target), called once per picture, on its
    /// first packet, when it is the newest: the pictures after it take its id, so the receiver sees no gap (a gap
    /// makes Chromium hold later frames of the upper layers while it waits for the missing one).
    pub fn drop_picture(&mut self, payload: &[u8]) {
        if let Some(d) = Descriptor::parse(payload) {
            if d.picture_id.is_some() {
                let m = d.picture_id_modulus();
                self.pid_delta = (self.pid_delta % m + m - 1) % m;
            }
        }
    }

    /// Rewrites one forwarded packet's payload in place; `newest` when it is the newest packet sent so far (a
    /// retransmission or a reordered packet must not move the continuation point back).
    pub fn rewrite(&mut self, payload: &mut [u8], newest: bool) {
        if let Some(d) = Descriptor::parse(payload) {
            self.apply(&d, payload, newest);
        }
    }

    /// A rewritten copy of a shared payload, or `None` when its descriptor has nothing to rewrite (the caller
    /// forwards the shared one): the descriptor is parsed once, and only packets that need it are copied.
    pub fn rewritten(&mut self, payload: &[u8], newest: bool) -> Option<Vec<u8>> {
        let d = Descriptor::parse(payload)?;
        if d.picture_id.is_none() && d.tl0_pic_idx.is_none() {
            return None;
        }
        let mut own = payload.to_vec();
        self.apply(&d, &mut own, newest);
        Some(own)
    }

    fn apply(&mut self, d: &Descriptor, payload: &mut [u8], newest: bool) {
        if let Some(pid) = d.picture_id(payload) {
            let m = d.picture_id_modulus();
            let out = pid.wrapping_add(self.pid_delta) % m;
            d.set_picture_id(payload, out);
            if newest {
                self.last_pid = Some(out);
            }
        }
        if let Some(tl0) = d.tl0_pic_idx(payload) {
            let out = tl0.wrapping_add(self.tl0_delta);
            d.set_tl0_pic_idx(payload, out);
            if newest {
                self.last_tl0 = Some(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X=1, I=1 (15-bit), L=1, then a VP8 header byte.
    fn long(pid: u16, tl0: u8) -> Vec<u8> {
        vec![0x90, 0xc0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, 0x00]
    }

    #[test]
    fn parses_every_descriptor_form() {
        assert_eq!(
            Descriptor::parse(&[0x10, 0x00]),
            Some(Descriptor {
                picture_id: None,
                tl0_pic_idx: None
            })
        );
        let p = long(0x1234, 7);
        let d = Descriptor::parse(&p).expect("long");
        assert_eq!(d.picture_id(&p), Some(0x1234));
        assert_eq!(d.tl0_pic_idx(&p), Some(7));
        let short = [0x90, 0xc0, 0x05, 9, 0];
        let d = Descriptor::parse(&short).expect("short");
        assert_eq!(
            (d.picture_id(&short), d.tl0_pic_idx(&short)),
            (Some(5), Some(9))
        );
        // I=0, L=1
        let only_tl0 = [0x90, 0x40, 3, 0];
        let d = Descriptor::parse(&only_tl0).expect("tl0 only");
        assert_eq!(
            (d.picture_id(&only_tl0), d.tl0_pic_idx(&only_tl0)),
            (None, Some(3))
        );
        // truncated: never a panic, never a rewrite
        for cut in [
            &[][..],
            &[0x90],
            &[0x90, 0xc0],
            &[0x90, 0xc0, 0x80],
            &[0x90, 0xc0, 0x80, 1],
        ] {
            assert_eq!(Descriptor::parse(cut), None, "{cut:?}");
            let mut r = Rewriter::default();
            let mut v = cut.to_vec();
            r.switch(&v);
            r.rewrite(&mut v, true);
            assert_eq!(v, cut);
        }
    }

    #[test]
    fn a_switch_continues_both_sequences_across_wraps() {
        let mut r = Rewriter::default();
        // layer A: ids 32766, 32767, 0 (wrap), tl0 254, 255, 0
        r.switch(&long(32766, 254));
        let mut out = Vec::new();
        for (pid, tl0) in [(32766, 254), (32767, 255), (0, 0)] {
            let mut p = long(pid, tl0);
            r.rewrite(&mut p, true);
            let d = Descriptor::parse(&p).expect("parse");
            out.push((
                d.picture_id(&p).expect("pid"),
                d.tl0_pic_idx(&p).expect("tl0"),
            ));
        }
        assert_eq!(out, vec![(32766, 254), (32767, 255), (0, 0)]);
        // layer B starts far behind: continues at 1 / 1
        r.switch(&long(100, 40));
        for (i, (pid, tl0)) in [(100u16, 40u8), (100, 40), (101, 41)]
            .into_iter()
            .enumerate()
        {
            let mut p = long(pid, tl0);
            r.rewrite(&mut p, true);
            let d = Descriptor::parse(&p).expect("parse");
            let want = if i < 2 { (1, 1) } else { (2, 2) };
            assert_eq!(
                (
                    d.picture_id(&p).expect("pid"),
                    d.tl0_pic_idx(&p).expect("tl0")
                ),
                want
            );
            assert_eq!(p[2] & 0x80, 0x80, "still the 15-bit form");
        }
        // a late retransmission of an older packet is rewritten but does not move the continuation point
        let mut old = long(99, 39);
        r.rewrite(&mut old, false);
        r.switch(&long(5000, 1));
        let mut p = long(5000, 1);
        r.rewrite(&mut p, true);
        let d = Descriptor::parse(&p).expect("parse");
        assert_eq!((d.picture_id(&p), d.tl0_pic_idx(&p)), (Some(3), Some(3)));
    }

    /// Whatever a publisher sends as the first bytes of a payload: no panic, and bytes past the descriptor fields
    /// are never touched.
    #[test]
    fn any_first_bytes_are_safe() {
        let mut r = Rewriter::default();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for len in 0..6 {
                    let mut v: Vec<u8> = [a, b, 0xff, 0x7f, 0xaa, 0x55]
                        .into_iter()
                        .take(len)
                        .collect();
                    let tail = v.get(5).copied();
                    r.switch(&v);
                    r.rewrite(&mut v, a & 1 == 0);
                    assert_eq!(v.len(), len);
                    assert_eq!(v.get(5).copied(), tail);
                }
            }
        }
    }

    #[test]
    fn dropped_pictures_leave_no_gap() {
        let mut r = Rewriter::default();
        r.switch(&long(32766, 1));
        let mut ids = Vec::new();
        for pid in [32766u16, 32767, 0, 1, 2, 3] {
            let p = long(pid, 1);
            if pid % 2 == 1 {
                r.drop_picture(&p);
                continue;
            }
            let mut p = p;
            r.rewrite(&mut p, true);
            let d = Descriptor::parse(&p).expect("parse");
            ids.push(d.picture_id(&p).expect("pid"));
        }
        assert_eq!(
            ids,
            [32766, 32767, 0],
            "one id per forwarded picture, across the wrap"
        );
    }

    #[test]
    fn seven_bit_ids_wrap_at_128() {
        let mut r = Rewriter::default();
        let short = |pid: u8| vec![0x90, 0x80, pid, 0];
        r.switch(&short(127));
        let mut p = short(127);
        r.rewrite(&mut p, true);
        r.switch(&short(40));
        let mut p = short(40);
        r.rewrite(&mut p, true);
        assert_eq!(p[2], 0, "127 + 1 wraps to 0 in 7 bits");
    }
}
