//! One track into one WebM file, written as it comes: an unknown-size Segment and unknown-size Clusters, each
//! block written through to the file, so a killed server leaves a file that decodes up to its last block. A clean
//! finish patches the Segment's Duration into a Void reserved for it in Info (a crash leaves the Void: the file
//! still decodes, its duration is then read from the blocks).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};
use webm_iterable::WebmWriter;
use webm_iterable::WriteOptions;

/// What a track file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackCodec {
    Vp8 {
        width: u16,
        height: u16,
    },
    Vp9 {
        width: u16,
        height: u16,
    },
    /// `av1c`: the CodecPrivate (AV1 codec configuration record with the sequence header).
    Av1 {
        width: u16,
        height: u16,
        av1c: Vec<u8>,
    },
    Opus {
        channels: u8,
    },
}

impl TrackCodec {
    pub fn name(&self) -> &'static str {
        match self {
            TrackCodec::Vp8 { .. } => "vp8",
            TrackCodec::Vp9 { .. } => "vp9",
            TrackCodec::Av1 { .. } => "av1",
            TrackCodec::Opus { .. } => "opus",
        }
    }
}

/// The Void reserved for Duration: ID 0xEC, size 9, nine zero bytes (11 bytes, as a Duration element).
const VOID_FOR_DURATION: [u8; 11] = [0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0];

pub struct TrackFile {
    w: WebmWriter<File>,
    video: bool,
    cluster_ts: Option<i64>,
    last_ts: i64,
    pub frames: u64,
    pub bytes: u64,
}

fn werr(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl TrackFile {
    pub fn create(path: &Path, codec: &TrackCodec) -> std::io::Result<Self> {
        // Read back at the finish (to patch the Duration in).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut w = WebmWriter::new(file);
        w.write(&MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType("webm".to_owned()),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ])))
        .map_err(werr)?;
        w.write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )
        .map_err(werr)?;
        w.write(&MatroskaSpec::Info(Master::Start)).map_err(werr)?;
        w.write(&MatroskaSpec::TimestampScale(1_000_000))
            .map_err(werr)?;
        w.write(&MatroskaSpec::MuxingApp("meet-server".to_owned()))
            .map_err(werr)?;
        w.write(&MatroskaSpec::WritingApp("meet-server recorder".to_owned()))
            .map_err(werr)?;
        w.write_raw(0xEC, &VOID_FOR_DURATION[2..]).map_err(werr)?;
        w.write(&MatroskaSpec::Info(Master::End)).map_err(werr)?;
        let mut entry = vec![
            MatroskaSpec::TrackNumber(1),
            MatroskaSpec::TrackUID(1),
            MatroskaSpec::FlagLacing(0),
        ];
        let video = !matches!(codec, TrackCodec::Opus { .. });
        match codec {
            TrackCodec::Vp8 { width, height }
            | TrackCodec::Vp9 { width, height }
            | TrackCodec::Av1 { width, height, .. } => {
                entry.push(MatroskaSpec::TrackType(1));
                entry.push(MatroskaSpec::CodecID(
                    match codec {
                        TrackCodec::Vp8 { .. } => "V_VP8",
                        TrackCodec::Vp9 { .. } => "V_VP9",
                        _ => "V_AV1",
                    }
                    .to_owned(),
                ));
                if let TrackCodec::Av1 { av1c, .. } = codec {
                    entry.push(MatroskaSpec::CodecPrivate(av1c.clone()));
                }
                // Variable frame rate: frames keep their capture times (block timestamps, ms). A small declared
                // frame duration (2 ms) keeps ffmpeg from guessing a constant rate from the first frames and then
                // folding two jittered frames into one tick of it.
                entry.push(MatroskaSpec::DefaultDuration(2_000_000));
                entry.push(MatroskaSpec::Video(Master::Full(vec![
                    MatroskaSpec::PixelWidth(u64::from(*width).max(1)),
                    MatroskaSpec::PixelHeight(u64::from(*height).max(1)),
                ])));
            }
            TrackCodec::Opus { channels } => {
                entry.push(MatroskaSpec::TrackType(2));
                entry.push(MatroskaSpec::CodecID("A_OPUS".to_owned()));
                // OpusHead (RFC 7845 §5.1): version 1, channels, pre-skip 0, 48 kHz, gain 0, mapping family 0.
                let mut head = b"OpusHead".to_vec();
                head.push(1);
                head.push((*channels).clamp(1, 2));
                head.extend_from_slice(&0u16.to_le_bytes());
                head.extend_from_slice(&48_000u32.to_le_bytes());
                head.extend_from_slice(&0i16.to_le_bytes());
                head.push(0);
                entry.push(MatroskaSpec::CodecPrivate(head));
                entry.push(MatroskaSpec::Audio(Master::Full(vec![
                    MatroskaSpec::SamplingFrequency(48_000.0),
                    MatroskaSpec::Channels(u64::from((*channels).clamp(1, 2))),
                ])));
            }
        }
        w.write(&MatroskaSpec::Tracks(Master::Full(vec![
            MatroskaSpec::TrackEntry(Master::Full(entry)),
        ])))
        .map_err(werr)?;
        Ok(Self {
            w,
            video,
            cluster_ts: None,
            last_ts: -1,
            frames: 0,
            bytes: 0,
        })
    }

    /// Writes one frame at `ts` ms (from the file's start; increasing).
    pub fn write(&mut self, ts: i64, keyframe: bool, data: &[u8]) -> std::io::Result<()> {
        // Strictly increasing (video: at least 2 ms apart, its declared frame duration).
        let step = if self.video { 2 } else { 1 };
        let ts = ts.max(self.last_ts + step).max(0);
        let new_cluster = match self.cluster_ts {
            None => true,
            Some(c) => {
                (self.video && keyframe)
                    || ts - c > if self.video { 5_000 } else { 1_000 }
                    || ts - c > i64::from(i16::MAX)
            }
        };
        if new_cluster {
            if self.cluster_ts.is_some() {
                self.w
                    .write(&MatroskaSpec::Cluster(Master::End))
                    .map_err(werr)?;
            }
            self.w
                .write_advanced(
                    &MatroskaSpec::Cluster(Master::Start),
                    WriteOptions::is_unknown_sized_element(),
                )
                .map_err(werr)?;
            self.w
                .write(&MatroskaSpec::Timestamp(u64::try_from(ts).unwrap_or(0)))
                .map_err(werr)?;
            self.cluster_ts = Some(ts);
        }
        let rel = i16::try_from(ts - self.cluster_ts.unwrap_or(ts)).unwrap_or(0);
        let block =
            SimpleBlock::new_uncheked(data, 1, rel, false, None, false, keyframe || !self.video);
        self.w.write(&MatroskaSpec::from(block)).map_err(werr)?;
        self.last_ts = ts;
        self.frames += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// The last frame's time (ms from the file's start), -1 before the first.
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// Closes the file, writing `duration_ms` into the Void reserved for it.
    pub fn finish(self, duration_ms: f64) -> std::io::Result<()> {
        let mut file = self.w.into_inner().map_err(werr)?;
        file.flush()?;
        // The Void sits in the first bytes (EBML header + Segment start + Info).
        file.seek(SeekFrom::Start(0))?;
        let mut head = vec![0u8; 256];
        let n = file.read(&mut head)?;
        head.truncate(n);
        if let Some(pos) = head
            .windows(VOID_FOR_DURATION.len())
            .position(|w| w == VOID_FOR_DURATION)
        {
            let mut dur = vec![0x44, 0x89, 0x88];
            dur.extend_from_slice(&duration_ms.to_be_bytes());
            file.seek(SeekFrom::Start(pos as u64))?;
            file.write_all(&dur)?;
        }
        file.sync_all()
    }
}

/// VP8 (RFC 7741): the payload after the descriptor, and whether the packet starts a partition-0 frame.
pub fn vp8_payload(p: &[u8]) -> Option<(&[u8], bool)> {
    let b0 = *p.first()?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let pid = *p.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    Some((p.get(i..)?, start))
}

/// VP9 (RFC 9628): the payload after the descriptor, begin-of-frame and end-of-frame flags.
pub fn vp9_payload(p: &[u8]) -> Option<(&[u8], bool, bool)> {
    let b0 = *p.first()?;
    let (i_bit, p_bit, l_bit, f_bit) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
    );
    let (begin, end, v_bit) = (b0 & 0x08 != 0, b0 & 0x04 != 0, b0 & 0x02 != 0);
    let mut i = 1;
    if i_bit {
        let pid = *p.get(i)?;
        i += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if l_bit {
        i += 1;
        if !f_bit {
            i += 1; // TL0PICIDX
        }
    }
    if f_bit && p_bit {
        for _ in 0..3 {
            let d = *p.get(i)?;
            i += 1;
            if d & 0x01 == 0 {
                break;
            }
        }
    }
    if v_bit {
        let ss = *p.get(i)?;
        i += 1;
        let n_s = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            i += 4 * n_s;
        }
        if ss & 0x08 != 0 {
            let n_g = usize::from(*p.get(i)?);
            i += 1;
            for _ in 0..n_g {
                let g = *p.get(i)?;
                i += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    Some((p.get(i..)?, begin, end))
}

/// A VP8 keyframe's size (its frame header).
pub fn vp8_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

/// A VP9 keyframe's size (its uncompressed header).
pub fn vp9_size(frame: &[u8]) -> Option<(u16, u16)> {
    struct Bits<'a>(&'a [u8], usize);
    impl Bits<'_> {
        fn bit(&mut self) -> Option<u32> {
            let b = self.0.get(self.1 / 8)?;
            let v = (b >> (7 - self.1 % 8)) & 1;
            self.1 += 1;
            Some(u32::from(v))
        }
        fn bits(&mut self, n: usize) -> Option<u32> {
            let mut v = 0;
            for _ in 0..n {
                v = (v << 1) | self.bit()?;
            }
            Some(v)
        }
    }
    let mut r = Bits(frame, 0);
    if r.bits(2)? != 2 {
        return None; // frame marker
    }
    let lo = r.bit()?;
    let hi = r.bit()?;
    let profile = (hi << 1) | lo;
    if profile == 3 {
        r.bit()?;
    }
    if r.bit()? == 1 {
        return None; // show_existing_frame
    }
    if r.bit()? != 0 {
        return None; // not a keyframe
    }
    r.bits(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        r.bit()?;
    }
    let color_space = r.bits(3)?;
    if color_space != 7 {
        r.bit()?;
        if profile == 1 || profile == 3 {
            r.bits(3)?;
        }
    } else if profile == 1 || profile == 3 {
        r.bit()?;
    }
    let w = r.bits(16)? + 1;
    let h = r.bits(16)? + 1;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}
