//! H.264 RTP depacketization (RFC 6184, packetization-mode 1 as browsers send it: single NAL unit packets, STAP-A
//! and FU-A) into one access unit in AVCC form (each NAL unit behind a 4-byte big-endian length, as an MP4 sample
//! holds it), noting the IDR slices and the parameter sets (SPS/PPS) it carries for the `avcC`.
//! Bad input marks the access unit broken (it is then dropped); nothing here panics on packet data.

/// One access unit (all the packets of one RTP timestamp), being assembled.
#[derive(Debug, Default)]
pub struct AccessUnit {
    /// NAL units, each behind its 4-byte length.
    pub data: Vec<u8>,
    /// Where the length of the FU-A NAL unit being reassembled sits in `data`.
    fu: Option<usize>,
    /// A packet was malformed or a fragment is missing: not to be written.
    pub broken: bool,
    /// It holds an IDR slice (NAL type 5).
    pub idr: bool,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

impl AccessUnit {
    /// Appends a whole NAL unit.
    fn nal(&mut self, nal: &[u8]) {
        if nal.is_empty() {
            self.broken = true;
            return;
        }
        let Ok(len) = u32::try_from(nal.len()) else {
            self.broken = true;
            return;
        };
        let at = self.data.len();
        self.data.extend_from_slice(&len.to_be_bytes());
        self.data.extend_from_slice(nal);
        self.note(at);
    }

    /// Notes what the complete NAL unit whose length sits at `at` is.
    fn note(&mut self, at: usize) {
        let Some(nal) = self.data.get(at + 4..) else {
            return;
        };
        match nal.first().map(|b| b & 0x1f) {
            Some(NAL_IDR) => self.idr = true,
            Some(NAL_SPS) => self.sps = Some(nal.to_vec()),
            Some(NAL_PPS) => self.pps = Some(nal.to_vec()),
            _ => {}
        }
    }

    /// Adds one RTP payload (packets in sequence order, no gap: a gap is handled by the caller).
    pub fn push(&mut self, p: &[u8]) {
        let Some(&b0) = p.first() else {
            self.broken = true;
            return;
        };
        let kind = b0 & 0x1f;
        if kind != FU_A && self.fu.is_some() {
            // A fragmented NAL unit was never ended.
            self.fu = None;
            self.broken = true;
        }
        match kind {
            1..=23 => self.nal(p),
            STAP_A => {
                let mut rest = p.get(1..).unwrap_or_default();
                while !rest.is_empty() {
                    let (Some(&hi), Some(&lo)) = (rest.first(), rest.get(1)) else {
                        self.broken = true;
                        return;
                    };
                    let n = usize::from(u16::from_be_bytes([hi, lo]));
                    let Some(nal) = rest.get(2..2 + n) else {
                        self.broken = true;
                        return;
                    };
                    self.nal(nal);
                    rest = rest.get(2 + n..).unwrap_or_default();
                }
            }
            FU_A => {
                let (Some(&h), Some(body)) = (p.get(1), p.get(2..)) else {
                    self.broken = true;
                    return;
                };
                let (start, end) = (h & 0x80 != 0, h & 0x40 != 0);
                if start {
                    if self.fu.is_some() {
                        self.broken = true;
                    }
                    let at = self.data.len();
                    self.data.extend_from_slice(&[0; 4]);
                    self.data.push((b0 & 0xe0) | (h & 0x1f));
                    self.fu = Some(at);
                } else if self.fu.is_none() {
                    // The fragment's start was lost.
                    self.broken = true;
                    return;
                }
                self.data.extend_from_slice(body);
                if end {
                    if let Some(at) = self.fu.take() {
                        let len = u32::try_from(self.data.len() - at - 4).unwrap_or(0);
                        if let Some(slot) = self.data.get_mut(at..at + 4) {
                            slot.copy_from_slice(&len.to_be_bytes());
                        }
                        self.note(at);
                    }
                }
            }
            // STAP-B, MTAP16/24, FU-B (not in packetization-mode 1), 0 and reserved types.
            _ => self.broken = true,
        }
    }

    /// The access unit is complete: whether it can be written.
    pub fn finish(&mut self) -> bool {
        if self.fu.take().is_some() {
            self.broken = true;
        }
        !self.broken && !self.data.is_empty()
    }
}

/// The picture size an SPS (NAL unit, header byte included) describes, cropping applied.
pub fn sps_size(sps: &[u8]) -> Option<(u16, u16)> {
    // Remove the emulation prevention bytes (00 00 03 → 00 00) of the RBSP.
    let mut rbsp = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in sps.get(1..)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits { d: &rbsp, at: 0 };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bits(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1)? == 1 {
            // seq_scaling_matrix_present_flag: skip the scaling lists
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = r.ue()? + 1;
    let h_units = r.ue()? + 1;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?; // mb_adaptive_frame_field_flag
    }
    r.bits(1)?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bits(1)? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let (sub_w, sub_h) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = sub_w;
    let crop_y = sub_h * (2 - frame_mbs_only);
    let w = (w_mbs * 16).checked_sub((cl + cr) * crop_x)?;
    let h = (h_units * 16 * (2 - frame_mbs_only)).checked_sub((ct + cb) * crop_y)?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

/// A bit reader with Exp-Golomb codes (H.264 §9.1).
struct Bits<'a> {
    d: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            let b = self.d.get(self.at / 8)?;
            v = (v << 1) | u64::from((b >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::try_from(self.ue()?).ok()?;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nals(au: &AccessUnit) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut d = &au.data[..];
        while d.len() >= 4 {
            let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
            out.push(d[4..4 + n].to_vec());
            d = &d[4 + n..];
        }
        out
    }

    #[test]
    fn single_stap_a_and_fu_a() {
        let mut au = AccessUnit::default();
        // STAP-A: SPS + PPS
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xda];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut stap = vec![0x18];
        for n in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        au.push(&stap);
        // FU-A of an IDR slice (nri 3, type 5) in three parts
        au.push(&[0x7c, 0x85, 1, 2]);
        au.push(&[0x7c, 0x05, 3]);
        au.push(&[0x7c, 0x45, 4, 5]);
        // a single NAL (SEI)
        au.push(&[0x06, 9, 9]);
        assert!(au.finish());
        assert!(au.idr);
        assert_eq!(au.sps.as_deref(), Some(&sps[..]));
        assert_eq!(au.pps.as_deref(), Some(&pps[..]));
        assert_eq!(
            nals(&au),
            vec![
                sps.to_vec(),
                pps.to_vec(),
                vec![0x65, 1, 2, 3, 4, 5],
                vec![0x06, 9, 9]
            ]
        );
    }

    #[test]
    fn bad_input_marks_the_unit_broken_and_never_panics() {
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![vec![]],
            vec![vec![0x18, 0x00]],                   // STAP-A cut in a size
            vec![vec![0x18, 0x00, 0x05, 0x67]],       // STAP-A size past the end
            vec![vec![0x18, 0x00, 0x00]],             // empty NAL in a STAP-A
            vec![vec![0x7c]],                         // FU-A without its header
            vec![vec![0x7c, 0x05, 1]],                // FU-A middle without its start
            vec![vec![0x7c, 0x85, 1], vec![0x61, 1]], // FU-A never ended
            vec![vec![0x7c, 0x85, 1]],                // FU-A open at the end
            vec![vec![0x19, 1, 2]],                   // STAP-B
            vec![vec![0x1d, 0x85, 1]],                // FU-B
            vec![vec![0x00]],
        ];
        for c in cases {
            let mut au = AccessUnit::default();
            for p in &c {
                au.push(p);
            }
            assert!(!au.finish(), "{c:?}");
        }
        // and arbitrary bytes
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut au = AccessUnit::default();
            for _ in 0..4 {
                let len = (x % 40) as usize;
                let p: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                au.push(&p);
                let _ = sps_size(&p);
            }
            let _ = au.finish();
        }
    }

    #[test]
    fn sps_sizes() {
        // x264/openh264-style SPS for 320x240 baseline and 1280x720 (cropped from 1280x720: 45 MB rows exactly).
        // 0x67 0x42 0xc0 0x0d ...: built from the fields below rather than copied from an encoder.
        let mut w = BitWriter::default();
        w.put(66, 8); // profile_idc baseline
        w.put(0xc0, 8);
        w.put(13, 8); // level
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // pic_order_cnt_type 2
        w.ue(1); // max_num_ref_frames
        w.put(0, 1);
        w.ue(20 - 1); // 320 / 16
        w.ue(15 - 1); // 240 / 16
        w.put(1, 1); // frame_mbs_only
        w.put(1, 1); // direct_8x8
        w.put(0, 1); // no cropping
        w.put(0, 1); // no vui
        w.put(1, 1); // stop bit
        let mut sps = vec![0x67];
        sps.extend(w.bytes());
        assert_eq!(sps_size(&sps), Some((320, 240)));

        // 1920x1080: 68 MB rows cropped by 4 (8 lines)
        let mut w = BitWriter::default();
        w.put(100, 8); // high
        w.put(0, 8);
        w.put(40, 8);
        w.ue(0);
        w.ue(1); // chroma 4:2:0
        w.ue(0);
        w.ue(0);
        w.put(0, 1);
        w.put(0, 1); // no scaling matrix
        w.ue(0);
        w.ue(0); // poc type 0
        w.ue(0);
        w.ue(4);
        w.put(0, 1);
        w.ue(120 - 1);
        w.ue(68 - 1);
        w.put(1, 1);
        w.put(1, 1);
        w.put(1, 1); // cropping
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(4);
        w.put(0, 1);
        w.put(1, 1);
        let mut sps = vec![0x67];
        sps.extend(w.bytes());
        assert_eq!(sps_size(&sps), Some((1920, 1080)));
    }

    #[derive(Default)]
    pub(crate) struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        pub(crate) fn put(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
        }
        pub(crate) fn ue(&mut self, v: u64) {
            let x = v + 1;
            let n = 64 - x.leading_zeros();
            self.put(0, n - 1);
            self.put(x, n);
        }
        pub(crate) fn bytes(&self) -> Vec<u8> {
            self.bits
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |a, (i, &b)| a | (u8::from(b) << (7 - i)))
                })
                .collect()
        }
    }
}
