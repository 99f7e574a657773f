//! AV1 RTP depacketization (the AOM "RTP Payload Format for AV1": a one-byte aggregation header Z/Y/W/N, then OBU
//! elements, length-prefixed with LEB128 except the last when W > 0; Z and Y mark an OBU fragmented across packets)
//! into one temporal unit as Matroska's `V_AV1` wants it: OBUs in the low-overhead format (each with its size
//! field), temporal delimiters, tile lists and padding dropped. The sequence header gives the `av1C`
//! (CodecPrivate) and the picture size. Bad input marks the unit broken; nothing here panics on packet data.

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;
const OBU_PADDING: u8 = 15;

/// One temporal unit (all the packets of one RTP timestamp), being assembled.
#[derive(Debug, Default)]
pub struct TemporalUnit {
    /// OBUs with their size fields.
    pub data: Vec<u8>,
    /// The OBU fragment carried over to the next packet (Y set).
    partial: Option<Vec<u8>>,
    pub broken: bool,
    /// The last sequence header OBU it holds (with its size field).
    pub sequence_header: Option<Vec<u8>>,
    /// A packet had N set (the first packet of a coded video sequence).
    pub new_sequence: bool,
}

/// LEB128 (at most 8 bytes): the value and how many bytes it took.
fn leb128(d: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..8 {
        let b = *d.get(i)?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn put_leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

impl TemporalUnit {
    /// Appends one whole OBU (as carried in RTP: its size field usually left out), rewritten with its size field.
    fn obu(&mut self, obu: &[u8]) {
        let Some(&h) = obu.first() else {
            self.broken = true;
            return;
        };
        if h & 0x80 != 0 {
            self.broken = true; // forbidden bit
            return;
        }
        let kind = (h >> 3) & 0x0f;
        let ext = h & 0x04 != 0;
        let has_size = h & 0x02 != 0;
        let head_len = if ext { 2 } else { 1 };
        let Some(head) = obu.get(..head_len) else {
            self.broken = true;
            return;
        };
        let payload = if has_size {
            let Some((n, used)) = obu.get(head_len..).and_then(leb128) else {
                self.broken = true;
                return;
            };
            let start = head_len + used;
            let Some(p) = usize::try_from(n)
                .ok()
                .and_then(|n| obu.get(start..start.checked_add(n)?))
            else {
                self.broken = true;
                return;
            };
            p
        } else {
            obu.get(head_len..).unwrap_or_default()
        };
        if matches!(kind, OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING) {
            return;
        }
        let at = self.data.len();
        self.data.push(head[0] | 0x02);
        self.data.extend_from_slice(&head[1..]);
        put_leb128(&mut self.data, payload.len() as u64);
        self.data.extend_from_slice(payload);
        if kind == OBU_SEQUENCE_HEADER {
            self.sequence_header = self.data.get(at..).map(<[u8]>::to_vec);
        }
    }

    /// Adds one RTP payload (packets in sequence order, no gap: a gap is handled by the caller).
    pub fn push(&mut self, p: &[u8]) {
        let Some(&agg) = p.first() else {
            self.broken = true;
            return;
        };
        let (z, y, w, n) = (
            agg & 0x80 != 0,
            agg & 0x40 != 0,
            usize::from((agg >> 4) & 0x03),
            agg & 0x08 != 0,
        );
        if n {
            self.new_sequence = true;
        }
        if z != self.partial.is_some() {
            // A continuation without its start, or a fragment that was not continued.
            self.partial = None;
            self.broken = true;
            if z {
                return;
            }
        }
        let mut rest = p.get(1..).unwrap_or_default();
        let mut k = 0;
        while !rest.is_empty() {
            k += 1;
            let element = if w != 0 && k == w {
                let e = rest;
                rest = &[];
                e
            } else {
                let Some((len, used)) = leb128(rest) else {
                    self.broken = true;
                    return;
                };
                let Some(e) = usize::try_from(len)
                    .ok()
                    .and_then(|len| rest.get(used..used.checked_add(len)?))
                else {
                    self.broken = true;
                    return;
                };
                rest = rest.get(used + e.len()..).unwrap_or_default();
                e
            };
            let last = rest.is_empty();
            let mut obu = match (k, self.partial.take()) {
                (1, Some(mut start)) => {
                    start.extend_from_slice(element);
                    start
                }
                _ => element.to_vec(),
            };
            if last && y {
                self.partial = Some(std::mem::take(&mut obu));
            } else if !obu.is_empty() {
                self.obu(&obu);
            }
        }
    }

    /// The temporal unit is complete: whether it can be written.
    pub fn finish(&mut self) -> bool {
        if self.partial.take().is_some() {
            self.broken = true;
        }
        !self.broken && !self.data.is_empty()
    }
}

/// What the `av1C` and the track header need from a sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceInfo {
    pub profile: u8,
    pub level: u8,
    pub tier: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub mono: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub width: u16,
    pub height: u16,
}

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
    fn flag(&mut self) -> Option<bool> {
        Some(self.bits(1)? == 1)
    }
    fn uvlc(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return None;
            }
        }
        Some(self.bits(zeros)? + (1u64 << zeros) - 1)
    }
}

/// Parses a sequence header OBU (header and size field included; AV1 spec §5.5).
pub fn sequence_info(obu: &[u8]) -> Option<SequenceInfo> {
    let h = *obu.first()?;
    if (h >> 3) & 0x0f != OBU_SEQUENCE_HEADER {
        return None;
    }
    let mut at = if h & 0x04 != 0 { 2 } else { 1 };
    if h & 0x02 != 0 {
        at += leb128(obu.get(at..)?)?.1;
    }
    let mut r = Bits {
        d: obu.get(at..)?,
        at: 0,
    };
    let profile = r.bits(3)? as u8;
    r.flag()?; // still_picture
    let reduced = r.flag()?;
    let (level, mut tier) = (0u8, 0u8);
    let level = if reduced {
        r.bits(5)? as u8
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_len = 0;
        if r.flag()? {
            // timing_info
            r.bits(32)?;
            r.bits(32)?;
            if r.flag()? {
                r.uvlc()?;
            }
            decoder_model_info = r.flag()?;
            if decoder_model_info {
                buffer_delay_len = r.bits(5)? as u32 + 1;
                r.bits(32)?;
                r.bits(5)?;
                r.bits(5)?;
            }
        }
        let initial_display_delay = r.flag()?;
        let ops = r.bits(5)? + 1;
        let mut first_level = level;
        for i in 0..ops {
            r.bits(12)?; // operating_point_idc
            let l = r.bits(5)? as u8;
            let t = if l > 7 { r.bits(1)? as u8 } else { 0 };
            if i == 0 {
                first_level = l;
                tier = t;
            }
            if decoder_model_info && r.flag()? {
                r.bits(buffer_delay_len)?;
                r.bits(buffer_delay_len)?;
                r.flag()?;
            }
            if initial_display_delay && r.flag()? {
                r.bits(4)?;
            }
        }
        first_level
    };
    let wb = r.bits(4)? as u32 + 1;
    let hb = r.bits(4)? as u32 + 1;
    let width = r.bits(wb)? + 1;
    let height = r.bits(hb)? + 1;
    if !reduced && r.flag()? {
        // frame_id_numbers_present
        r.bits(4)?;
        r.bits(3)?;
    }
    r.bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.bits(4)?; // interintra_compound, masked_compound, warped_motion, dual_filter
        let order_hint = r.flag()?;
        if order_hint {
            r.bits(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content_tools = if r.flag()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.flag()? {
            r.bits(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.bits(3)?;
        }
    }
    r.bits(3)?; // enable_superres, enable_cdef, enable_restoration
                // color_config
    let high_bitdepth = r.flag()?;
    let twelve_bit = profile == 2 && high_bitdepth && r.flag()?;
    let mono = profile != 1 && r.flag()?;
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if r.flag()? {
        cp = r.bits(8)?;
        tc = r.bits(8)?;
        mc = r.bits(8)?;
    }
    let (mut sx, mut sy, mut csp) = (true, true, 0u8);
    if mono {
        r.flag()?;
    } else if cp == 1 && tc == 13 && mc == 0 {
        sx = false;
        sy = false;
    } else {
        r.flag()?; // color_range
        match profile {
            0 => {}
            1 => {
                sx = false;
                sy = false;
            }
            _ => {
                if twelve_bit {
                    sx = r.flag()?;
                    sy = sx && r.flag()?;
                } else {
                    sy = false;
                }
            }
        }
        if sx && sy {
            csp = r.bits(2)? as u8;
        }
    }
    Some(SequenceInfo {
        profile,
        level,
        tier,
        high_bitdepth,
        twelve_bit,
        mono,
        subsampling_x: sx,
        subsampling_y: sy,
        chroma_sample_position: csp,
        width: u16::try_from(width).ok()?,
        height: u16::try_from(height).ok()?,
    })
}

/// The `av1C` (AV1 codec configuration record, Matroska's CodecPrivate for `V_AV1`): four bytes, then the
/// sequence header OBU as its configOBUs.
pub fn av1c(info: &SequenceInfo, sequence_header: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x81,
        (info.profile << 5) | (info.level & 0x1f),
        (info.tier << 7)
            | (u8::from(info.high_bitdepth) << 6)
            | (u8::from(info.twelve_bit) << 5)
            | (u8::from(info.mono) << 4)
            | (u8::from(info.subsampling_x) << 3)
            | (u8::from(info.subsampling_y) << 2)
            | (info.chroma_sample_position & 0x03),
        0,
    ];
    v.extend_from_slice(sequence_header);
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A low-overhead OBU stream (ffmpeg `-f obu`) → temporal units (lists of OBUs without their size fields),
    /// split at the temporal delimiters (kept out).
    pub(crate) fn obu_temporal_units(mut d: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
        while let Some(&h) = d.first() {
            let head = if h & 0x04 != 0 { 2 } else { 1 };
            assert!(h & 0x02 != 0, "OBUs with size fields");
            let (n, used) = leb128(&d[head..]).expect("size");
            let end = head + used + n as usize;
            let kind = (h >> 3) & 0x0f;
            if kind == OBU_TEMPORAL_DELIMITER {
                out.push(Vec::new());
            } else if let Some(tu) = out.last_mut() {
                // as RTP carries it: without the size field
                let mut obu = vec![h & !0x02];
                obu.extend_from_slice(&d[1..head]);
                obu.extend_from_slice(&d[head + used..end]);
                tu.push(obu);
            }
            d = &d[end..];
        }
        out.retain(|t| !t.is_empty());
        out
    }

    /// Packetizes one temporal unit: W = 0 (every element length-prefixed), OBUs fragmented across packets
    /// with Z/Y; N on the first packet when it holds a sequence header.
    pub(crate) fn packetize(tu: &[Vec<u8>], mtu: usize) -> Vec<Vec<u8>> {
        let n = tu.iter().any(|o| (o[0] >> 3) & 0x0f == OBU_SEQUENCE_HEADER);
        let mut packets = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut z = false;
        let flush = |cur: &mut Vec<u8>, packets: &mut Vec<Vec<u8>>, z: bool, y: bool| {
            let mut agg = 0u8;
            if z {
                agg |= 0x80;
            }
            if y {
                agg |= 0x40;
            }
            if packets.is_empty() && n {
                agg |= 0x08;
            }
            let mut p = vec![agg];
            p.append(cur);
            packets.push(p);
        };
        for obu in tu {
            let mut rest = &obu[..];
            loop {
                let room = mtu.saturating_sub(1 + cur.len() + 2);
                if rest.len() <= room {
                    put_leb128(&mut cur, rest.len() as u64);
                    cur.extend_from_slice(rest);
                    break;
                }
                if room < 16 {
                    flush(&mut cur, &mut packets, z, false);
                    z = false;
                    continue;
                }
                put_leb128(&mut cur, room as u64);
                cur.extend_from_slice(&rest[..room]);
                rest = &rest[room..];
                flush(&mut cur, &mut packets, z, true);
                z = true;
            }
        }
        if !cur.is_empty() {
            flush(&mut cur, &mut packets, z, false);
        }
        packets
    }

    #[test]
    fn aggregation_fragments_and_size_fields() {
        // a temporal delimiter (dropped), a sequence header-like OBU and a frame OBU split over two packets
        let mut tu = TemporalUnit::default();
        // W=2: first element length-prefixed, the last to the end; Y: it continues
        tu.push(&[0x60, 0x01, 0x10, 0x30, 0xaa, 0xbb]);
        // Z: continuation (the first element), W=1
        tu.push(&[0x90, 0xcc]);
        assert!(tu.finish());
        // the TD (0x10) is gone; the frame OBU (type 6 → 0x30) has its size field: 0x32, 3, aa bb cc
        assert_eq!(tu.data, vec![0x32, 3, 0xaa, 0xbb, 0xcc]);
    }

    #[test]
    fn bad_input_marks_the_unit_broken_and_never_panics() {
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![vec![]],
            vec![vec![0x80, 0x01, 0x30]], // Z without a fragment before
            vec![vec![0x40, 0x02, 0x30, 0x01]], // Y never continued
            vec![vec![0x00, 0x05, 0x30]], // length past the end
            vec![vec![
                0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ]], // bad LEB128
            vec![vec![0x10, 0xb0]],       // forbidden bit
            vec![vec![0x10, 0x32, 0x05, 1]], // size field past the end
        ];
        for c in cases {
            let mut tu = TemporalUnit::default();
            for p in &c {
                tu.push(p);
            }
            assert!(!tu.finish(), "{c:?}");
        }
        let mut x = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let mut tu = TemporalUnit::default();
            for _ in 0..4 {
                let len = (x % 48) as usize;
                let p: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                tu.push(&p);
                let _ = sequence_info(&p);
            }
            let _ = tu.finish();
        }
    }

    #[test]
    fn sequence_header_and_av1c() {
        // a libaom sequence header (320x240, profile 0, 8 bit 4:2:0), as `ffmpeg -c:v libaom-av1 -f obu` writes it
        let Ok(o) = std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=30",
                "-frames:v",
                "1",
            ])
            .args([
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libaom-av1",
                "-usage",
                "realtime",
                "-cpu-used",
                "8",
            ])
            .args(["-f", "obu", "-"])
            .output()
        else {
            panic!("ffmpeg is needed by this test: apt-get install ffmpeg (scripts/test does)");
        };
        assert!(
            o.status.success(),
            "ffmpeg could not encode AV1 with libaom-av1 (Debian's ffmpeg has it)"
        );
        let mut tu = TemporalUnit::default();
        for p in packetize(&obu_temporal_units(&o.stdout)[0], 1200) {
            tu.push(&p);
        }
        assert!(tu.finish());
        assert!(tu.new_sequence);
        let sh = tu.sequence_header.clone().expect("sequence header");
        let info = sequence_info(&sh).expect("parsed");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.profile, 0);
        assert!(!info.high_bitdepth && !info.mono && info.subsampling_x && info.subsampling_y);
        let c = av1c(&info, &sh);
        assert_eq!(c[0], 0x81);
        assert_eq!(&c[4..], &sh[..]);
    }
}
