//! One H.264 track into one fragmented MP4 file (ISO BMFF, boxes from the `mp4-atom` crate), written as it comes:
//! `ftyp` + `moov` (with `mvex`, the `avcC` from the stream's SPS/PPS) at the start, then one `moof` + `mdat`
//! fragment per frame, each written through to the file — so a killed server leaves a file that decodes up to its
//! last fragment (the same idea as the WebM writer's unknown-size clusters). A frame is written when the next one
//! comes (its duration is the gap to it); a clean finish writes the last one and patches the durations into the
//! `moov` (same size: the boxes' fields are fixed-width).

use mp4_atom::{
    Avc1, Avcc, Dinf, Dref, Encode, Ftyp, Hdlr, Mdhd, Mdia, Mehd, Mfhd, Minf, Moof, Moov, Mvex,
    Mvhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, SttsEntry, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, TrunSamples, Url, Visual, Vmhd,
};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// ms: frame times are on the recording's ms timeline, as in the WebM files.
const TIMESCALE: u32 = 1000;
/// sample_depends_on = 2 (an I frame).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1, sample_is_non_sync_sample.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// Frames are at least this far apart (ms): the frame duration declared in the `stts` (200 fps).
const MIN_STEP_MS: i64 = 5;

pub struct Mp4File {
    file: File,
    moov_at: u64,
    moov: Moov,
    moov_len: usize,
    seq: u32,
    /// The frame waiting for the next one (its duration): ts, keyframe, AVCC data.
    pending: Option<(i64, bool, Vec<u8>)>,
    last_ts: i64,
    pub frames: u64,
    pub bytes: u64,
}

fn merr(e: mp4_atom::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn encode(b: &impl Encode) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    b.encode(&mut v).map_err(merr)?;
    Ok(v)
}

impl Mp4File {
    /// `sps`/`pps`: NAL units (header byte included), for the `avcC`.
    pub fn create(
        path: &Path,
        sps: &[u8],
        pps: &[u8],
        width: u16,
        height: u16,
    ) -> std::io::Result<Self> {
        let avcc = Avcc::new(sps, pps).map_err(merr)?;
        let ftyp = Ftyp {
            major_brand: b"iso5".into(),
            minor_version: 512,
            compatible_brands: vec![
                b"iso5".into(),
                b"iso6".into(),
                b"avc1".into(),
                b"mp41".into(),
            ],
        };
        let moov = Moov {
            mvhd: Mvhd {
                timescale: TIMESCALE,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: 2,
                ..Default::default()
            },
            mvex: Some(Mvex {
                // Patched at the finish (the whole duration of the fragments).
                mehd: Some(Mehd {
                    fragment_duration: 0,
                }),
                trex: vec![Trex {
                    track_id: 1,
                    default_sample_description_index: 1,
                    ..Default::default()
                }],
            }),
            trak: vec![Trak {
                tkhd: Tkhd {
                    track_id: 1,
                    enabled: true,
                    in_movie: true,
                    width: width.into(),
                    height: height.into(),
                    ..Default::default()
                },
                mdia: Mdia {
                    mdhd: Mdhd {
                        timescale: TIMESCALE,
                        language: "und".into(),
                        ..Default::default()
                    },
                    hdlr: Hdlr {
                        handler: b"vide".into(),
                        name: "meet-server recorder".into(),
                    },
                    minf: Minf {
                        vmhd: Some(Vmhd::default()),
                        dinf: Dinf {
                            dref: Dref {
                                entries: vec![Url {
                                    location: String::new(),
                                }
                                .into()],
                            },
                        },
                        stbl: Stbl {
                            stsd: Stsd {
                                codecs: vec![Avc1 {
                                    visual: Visual {
                                        data_reference_index: 1,
                                        width,
                                        height,
                                        horizresolution: 72.into(),
                                        vertresolution: 72.into(),
                                        frame_count: 1,
                                        compressor: "".into(),
                                        depth: 24,
                                    },
                                    avcc,
                                    btrt: None,
                                    colr: None,
                                    pasp: None,
                                    taic: None,
                                    fiel: None,
                                    spatial: None,
                                }
                                .into()],
                            },
                            // No sample lives in the moov (they are in the fragments); the one entry of zero
                            // samples declares a 5 ms frame duration, as the WebM files' DefaultDuration does:
                            // ffmpeg takes it as the stream's frame rate (200 fps; above 210 it would fall back
                            // to the average rate) instead of guessing a constant rate from the first, jittered
                            // frames and then folding two of them into one tick of it ("non monotonically
                            // increasing dts"). Frames are kept at least that far apart.
                            stts: Stts {
                                entries: vec![SttsEntry {
                                    sample_count: 0,
                                    sample_delta: MIN_STEP_MS as u32,
                                }],
                            },
                            stsc: Stsc::default(),
                            stsz: Stsz::default(),
                            stco: Some(Stco::default()),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                },
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let head = encode(&ftyp)?;
        let moov_bytes = encode(&moov)?;
        file.write_all(&head)?;
        file.write_all(&moov_bytes)?;
        Ok(Self {
            file,
            moov_at: head.len() as u64,
            moov_len: moov_bytes.len(),
            moov,
            seq: 0,
            pending: None,
            last_ts: -1,
            frames: 0,
            bytes: 0,
        })
    }

    /// Writes one frame (AVCC: NAL units behind 4-byte lengths) at `ts` ms from the file's start (increasing).
    pub fn write(&mut self, ts: i64, keyframe: bool, data: &[u8]) -> std::io::Result<()> {
        let ts = ts.max(self.last_ts + MIN_STEP_MS).max(0);
        if let Some(prev) = self.pending.take() {
            self.fragment(&prev, ts - prev.0)?;
        }
        self.pending = Some((ts, keyframe, data.to_vec()));
        self.last_ts = ts;
        self.frames += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// One `moof` + `mdat` holding one sample.
    fn fragment(
        &mut self,
        (ts, key, data): &(i64, bool, Vec<u8>),
        duration: i64,
    ) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let size = u32::try_from(data.len()).map_err(std::io::Error::other)?;
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: self.seq,
            },
            traf: vec![Traf {
                tfhd: Tfhd {
                    track_id: 1,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: u64::try_from(*ts).unwrap_or(0),
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(vec![TrunEntry {
                        duration: Some(u32::try_from(duration.max(1)).unwrap_or(1)),
                        size: Some(size),
                        flags: Some(if *key { FLAGS_SYNC } else { FLAGS_NON_SYNC }),
                        cts: None,
                    }]),
                }],
                ..Default::default()
            }],
        };
        // The sample starts after this moof and the mdat header (the moof's size does not depend on the offset).
        let len = encode(&moof)?.len();
        if let Some(trun) = moof.traf.first_mut().and_then(|t| t.trun.first_mut()) {
            trun.data_offset = Some(i32::try_from(len + 8).map_err(std::io::Error::other)?);
        }
        let mut out = encode(&moof)?;
        out.extend_from_slice(&(size + 8).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(data);
        // One write per fragment: a crash leaves whole fragments (and at most one cut short at the end).
        self.file.write_all(&out)
    }

    /// The last frame's time (ms from the file's start), -1 before the first.
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// Writes the last frame (lasting until `duration_ms`) and the durations into the `moov`.
    pub fn finish(mut self, duration_ms: f64) -> std::io::Result<()> {
        let end = duration_ms.round() as i64;
        if let Some(prev) = self.pending.take() {
            let d = (end - prev.0).max(MIN_STEP_MS);
            self.fragment(&prev, d)?;
        }
        let total = u64::try_from(end.max(self.last_ts + MIN_STEP_MS)).unwrap_or(0);
        self.moov.mvhd.duration = total;
        if let Some(m) = self.moov.mvex.as_mut().and_then(|m| m.mehd.as_mut()) {
            m.fragment_duration = total;
        }
        let bytes = encode(&self.moov)?;
        if bytes.len() == self.moov_len {
            self.file.seek(SeekFrom::Start(self.moov_at))?;
            self.file.write_all(&bytes)?;
        }
        self.file.sync_all()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::h264::AccessUnit;
    use std::process::Command;

    /// These tests check files with real decoders: without ffmpeg/ffprobe they fail (never skip). `scripts/test`
    /// installs Debian's `ffmpeg` (with libx264 and libaom) before the Rust tests.
    pub(crate) fn require_ffmpeg() {
        let ok = Command::new("ffmpeg").arg("-version").output().is_ok()
            && Command::new("ffprobe").arg("-version").output().is_ok();
        assert!(
            ok,
            "ffmpeg and ffprobe are needed by the recorder's tests: apt-get install ffmpeg (scripts/test does)"
        );
    }

    /// Annex B byte stream → access units (lists of NAL units), split at access unit delimiters.
    pub(crate) fn annexb_access_units(b: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut nals = Vec::new();
        let mut i = 0;
        let mut start = None;
        while i + 3 <= b.len() {
            if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
                if let Some(s) = start {
                    let mut e = i;
                    while e > s && b[e - 1] == 0 {
                        e -= 1;
                    }
                    nals.push(b[s..e].to_vec());
                }
                i += 3;
                start = Some(i);
            } else {
                i += 1;
            }
        }
        if let Some(s) = start {
            nals.push(b[s..].to_vec());
        }
        let mut aus: Vec<Vec<Vec<u8>>> = Vec::new();
        for n in nals {
            if n.is_empty() {
                continue;
            }
            if n[0] & 0x1f == 9 || aus.is_empty() {
                aus.push(Vec::new());
            }
            if n[0] & 0x1f != 9 {
                if let Some(a) = aus.last_mut() {
                    a.push(n);
                }
            }
        }
        aus.retain(|a| !a.is_empty());
        aus
    }

    /// RFC 6184 packetization (mode 1), as a sender would: small NAL units aggregated in STAP-A, big ones in FU-A.
    pub(crate) fn packetize(au: &[Vec<u8>], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut stap: Vec<u8> = Vec::new();
        let flush = |stap: &mut Vec<u8>, out: &mut Vec<Vec<u8>>| {
            if !stap.is_empty() {
                out.push(std::mem::take(stap));
            }
        };
        for n in au {
            if n.len() + 3 < mtu / 4 {
                if stap.is_empty() {
                    stap.push(0x18 | (n[0] & 0x60));
                }
                stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                stap.extend_from_slice(n);
                continue;
            }
            flush(&mut stap, &mut out);
            if n.len() <= mtu {
                out.push(n.clone());
                continue;
            }
            let body = &n[1..];
            let chunks: Vec<&[u8]> = body.chunks(mtu - 2).collect();
            for (k, c) in chunks.iter().enumerate() {
                let mut p = vec![(n[0] & 0xe0) | 28, n[0] & 0x1f];
                if k == 0 {
                    p[1] |= 0x80;
                }
                if k == chunks.len() - 1 {
                    p[1] |= 0x40;
                }
                p.extend_from_slice(c);
                out.push(p);
            }
        }
        flush(&mut stap, &mut out);
        out
    }

    pub(crate) fn probe(file: &Path) -> String {
        let o = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
            ])
            .args(["-count_frames", "-of", "compact"])
            .arg(file)
            .output()
            .expect("ffprobe");
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    pub(crate) fn decode_errors(file: &Path) -> String {
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).trim().to_owned()
    }

    /// A real H.264 stream (ffmpeg's libx264, baseline, as browsers send) packetized into RTP payloads, through
    /// the depacketizer into the MP4 writer; ffprobe reads it as h264 with every frame, ffmpeg decodes it with no
    /// error — both after a clean finish and when the writer is dropped without one (a killed server).
    #[test]
    fn h264_rtp_to_fragmented_mp4_decodes() {
        require_ffmpeg();
        let dir = std::env::temp_dir().join(format!("rec-mp4-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let src = dir.join("src.h264");
        // x264 writes VUI timing (the nominal rate), which `ffmpeg -f null` takes as the output's constant rate;
        // browsers' openh264 writes none. `tick_rate=400` makes the VUI say 200 fps, so ffmpeg treats the stream
        // as the browsers' one: the rate it uses is the `stts`'s 5 ms.
        let st = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=30",
            ])
            .args([
                "-t",
                "3",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-g",
                "30",
                "-bsf:v",
            ])
            .args(["h264_metadata=aud=insert:tick_rate=400", "-f", "h264"])
            .arg(&src)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
        let aus = annexb_access_units(&std::fs::read(&src).expect("read"));
        assert_eq!(aus.len(), 90);

        let (mut sps, mut pps) = (None, None);
        let mut files: Vec<(Mp4File, std::path::PathBuf)> = Vec::new();
        let clean = dir.join("clean.mp4");
        let killed = dir.join("killed.mp4");
        for (k, nals) in aus.iter().enumerate() {
            let mut au = AccessUnit::default();
            for p in packetize(nals, 300) {
                au.push(&p);
            }
            assert!(au.finish(), "access unit {k}");
            sps = au.sps.clone().or(sps);
            pps = au.pps.clone().or(pps);
            if files.is_empty() {
                assert!(au.idr);
                let (s, p) = (sps.clone().expect("sps"), pps.clone().expect("pps"));
                assert_eq!(crate::h264::sps_size(&s), Some((320, 240)));
                for path in [&clean, &killed] {
                    files.push((
                        Mp4File::create(path, &s, &p, 320, 240).expect("create"),
                        path.clone(),
                    ));
                }
            }
            // capture times with jitter, as from the sender reports: 25 fps, with every tenth frame 10 ms after
            // the one before it (two frames in one tick of a guessed 25 fps rate)
            let k = k as i64;
            let ts = k * 40 + (k * 7919) % 5 - 2 + if k % 10 == 6 { -30 } else { 0 };
            for (f, _) in files.iter_mut() {
                f.write(ts, au.idr, &au.data).expect("write");
            }
        }
        let mut files = files.into_iter();
        let (f, _) = files.next().expect("clean");
        f.finish(3600.0).expect("finish");
        drop(files); // the "killed" one: never finished

        let p = probe(&clean);
        assert!(p.contains("codec_name=h264"), "{p}");
        assert!(p.contains("width=320|height=240"), "{p}");
        assert!(p.contains("nb_read_frames=90"), "{p}");
        assert_eq!(decode_errors(&clean), "");
        let dur = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(&clean)
            .output()
            .expect("ffprobe");
        let dur: f64 = String::from_utf8_lossy(&dur.stdout)
            .trim()
            .parse()
            .unwrap_or(0.0);
        assert!((dur - 3.6).abs() < 0.1, "duration {dur}");

        // killed: decodes, every frame but the one waiting for its duration
        let p = probe(&killed);
        assert!(p.contains("codec_name=h264"), "{p}");
        assert!(p.contains("nb_read_frames=89"), "{p}");
        assert_eq!(decode_errors(&killed), "");
        // killed mid-fragment: the file cut short still decodes up to its last whole fragment
        let bytes = std::fs::read(&killed).expect("read");
        let cut = dir.join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() - 700]).expect("write");
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&cut)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        assert!(o.status.success());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
