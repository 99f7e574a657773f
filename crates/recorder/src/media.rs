//! The recording thread of one recording: receives RTP of its recorded producers from the media workers (a bounded
//! queue filled with `try_send` by the core's taps), reorders per track, depacketizes (VP8, VP9, H.264, Opus) and
//! writes each track to its own file without transcoding (WebM; fragmented MP4 for H.264), timed on the recording's timeline from the packets'
//! sender-report wallclocks, paused spans left out.

use crate::av1::{av1c, sequence_info, TemporalUnit};
use crate::h264::{sps_size, AccessUnit};
use crate::mp4::Mp4File;
use crate::webm::{vp8_payload, vp8_size, vp9_payload, vp9_size, TrackCodec, TrackFile};
use crate::Timeline;
use sfu::record::{RecordMsg, RecordedCodec, RecordedPacket};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Control messages (from the recorder, in order).
pub enum Ctl {
    AddTrack {
        track: u32,
        codec: RecordedCodec,
        file: String,
        need_keyframe: Arc<AtomicBool>,
    },
    Pause(i64),
    Resume(i64),
    /// Finish every file (the recording stopped at this wall-clock ms).
    Stop(i64),
}

/// What one track became.
#[derive(Clone, Debug, Default)]
pub struct TrackResult {
    pub track: u32,
    pub file: Option<String>,
    pub codec: Option<String>,
    /// On the recording's timeline, ms (its first frame).
    pub start_offset_ms: Option<i64>,
    pub duration_ms: i64,
    pub frames: u64,
    pub bytes: u64,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub note: Option<String>,
}

enum Kind {
    Vp8,
    Vp9,
    H264,
    Av1,
    Opus,
    Unsupported(String),
}

impl Kind {
    fn video(&self) -> bool {
        matches!(self, Kind::Vp8 | Kind::Vp9 | Kind::H264 | Kind::Av1)
    }
}

/// A track's file: WebM, or fragmented MP4 for H.264.
enum Out {
    Webm(TrackFile),
    Mp4(Box<Mp4File>),
}

impl Out {
    fn write(&mut self, ts: i64, keyframe: bool, data: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Webm(f) => f.write(ts, keyframe, data),
            Out::Mp4(f) => f.write(ts, keyframe, data),
        }
    }
    fn last_ts(&self) -> i64 {
        match self {
            Out::Webm(f) => f.last_ts(),
            Out::Mp4(f) => f.last_ts(),
        }
    }
    fn frames(&self) -> u64 {
        match self {
            Out::Webm(f) => f.frames,
            Out::Mp4(f) => f.frames,
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            Out::Webm(f) => f.bytes,
            Out::Mp4(f) => f.bytes,
        }
    }
    fn finish(self, duration_ms: f64) -> std::io::Result<()> {
        match self {
            Out::Webm(f) => f.finish(duration_ms),
            Out::Mp4(f) => f.finish(duration_ms),
        }
    }
}

struct Track {
    kind: Kind,
    channels: u8,
    file_name: String,
    need_keyframe: Arc<AtomicBool>,
    epoch: Option<u32>,
    next_seq: Option<u64>,
    /// Reorder buffer: seq → (packet, when it came).
    buf: BTreeMap<u64, (RecordedPacket, Instant)>,
    /// The frame being assembled: its RTP timestamp, wallclock, keyframe flag, data, and whether it is whole.
    frame: Option<(u32, i64, bool, Vec<u8>, bool)>,
    waiting_keyframe: bool,
    /// H.264: the access unit being assembled, and the last parameter sets seen (for the `avcC`).
    au: AccessUnit,
    /// AV1: the temporal unit being assembled, and the last sequence header seen (for the `av1C`).
    tu: TemporalUnit,
    seq_header: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    out: Option<Out>,
    start_offset: Option<i64>,
    last_offset: i64,
    size: Option<(u16, u16)>,
    ended: bool,
    note: Option<String>,
    /// RTP clock rate (90 kHz video, 48 kHz Opus).
    clock: i64,
    /// Frame times follow the RTP timestamps (smooth, monotonic) from an anchor: the sender-report wallclock of
    /// a run's first frame (a run: from the start, a layer switch or a resume). Re-anchored when the reports say
    /// the stream runs more than `REANCHOR_US` late (e.g. a loss-induced stall), never for a small step back.
    anchor: Option<(u32, i64)>,
}

const REANCHOR_US: i64 = 120_000;

/// A gap this old (or this many packets behind it) is loss.
const REORDER_WAIT: Duration = Duration::from_millis(150);
const REORDER_MAX: usize = 128;
/// How long the recording thread sleeps when its queue is empty (4096 packets hold far longer than this).
const POLL: Duration = Duration::from_millis(10);

pub struct RecThread {
    dir: PathBuf,
    timeline: Timeline,
    tracks: HashMap<u32, Track>,
}

impl RecThread {
    pub fn new(dir: PathBuf, started_at: i64) -> Self {
        Self {
            dir,
            timeline: Timeline {
                started_at,
                pauses: Vec::new(),
            },
            tracks: HashMap::new(),
        }
    }

    /// Runs until `Stop`; returns what each track became.
    pub fn run(mut self, media: Receiver<RecordMsg>, ctl: Receiver<Ctl>) -> Vec<TrackResult> {
        loop {
            // Control first: a track's AddTrack is always sent before its first packet.
            while let Ok(c) = ctl.try_recv() {
                if let Some(stop) = self.control(c) {
                    // Whatever is still queued was captured before the stop: take it.
                    while let Ok(m) = media.try_recv() {
                        self.media(m);
                    }
                    return self.finish(stop);
                }
            }
            // Drain what is queued, then sleep: the media workers' `try_send` never has to wake a blocked
            // receiver (a futex call per packet on their thread), they only push.
            let mut got = 0;
            loop {
                match media.try_recv() {
                    Ok(m) => {
                        self.media(m);
                        got += 1;
                        if got >= 512 {
                            break; // let control messages in
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        // Every sender is gone (the recorder dropped the session): wait for the stop.
                        return match ctl.recv() {
                            Ok(c) => match self.control(c) {
                                Some(stop) => self.finish(stop),
                                None => self.finish(proto::time::now_ms()),
                            },
                            Err(_) => self.finish(proto::time::now_ms()),
                        };
                    }
                }
            }
            if got == 0 {
                std::thread::sleep(POLL);
            }
            self.flush_stale();
        }
    }

    fn control(&mut self, c: Ctl) -> Option<i64> {
        match c {
            Ctl::AddTrack {
                track,
                codec,
                file,
                need_keyframe,
            } => {
                let mime = codec.mime_type.to_ascii_lowercase();
                let kind = match mime.as_str() {
                    "video/vp8" => Kind::Vp8,
                    "video/vp9" => Kind::Vp9,
                    "video/h264" => Kind::H264,
                    "video/av1" => Kind::Av1,
                    "audio/opus" => Kind::Opus,
                    other => Kind::Unsupported(other.to_owned()),
                };
                let note = match &kind {
                    Kind::Unsupported(m) => Some(format!("{m} is not recorded by this server yet")),
                    _ => None,
                };
                // The recorder names files `.webm`; H.264 goes into MP4.
                let file_name = match (&kind, file.strip_suffix(".webm")) {
                    (Kind::H264, Some(stem)) => format!("{stem}.mp4"),
                    _ => file,
                };
                self.tracks.insert(
                    track,
                    Track {
                        waiting_keyframe: kind.video(),
                        kind,
                        channels: codec.channels.max(1),
                        file_name,
                        need_keyframe,
                        epoch: None,
                        next_seq: None,
                        buf: BTreeMap::new(),
                        frame: None,
                        au: AccessUnit::default(),
                        tu: TemporalUnit::default(),
                        seq_header: None,
                        sps: None,
                        pps: None,
                        out: None,
                        start_offset: None,
                        last_offset: -1,
                        size: None,
                        ended: false,
                        note,
                        clock: if mime.starts_with("audio/") {
                            48_000
                        } else {
                            90_000
                        },
                        anchor: None,
                    },
                );
                None
            }
            Ctl::Pause(at) => {
                self.timeline.pauses.push((at, None));
                None
            }
            Ctl::Resume(at) => {
                if let Some(last) = self.timeline.pauses.last_mut() {
                    if last.1.is_none() {
                        last.1 = Some(at.max(last.0));
                    }
                }
                // Video restarts on a keyframe after the cut.
                for t in self.tracks.values_mut() {
                    if t.kind.video() {
                        t.waiting_keyframe = true;
                        t.frame = None;
                        t.need_keyframe.store(true, Ordering::Relaxed);
                    }
                    t.anchor = None;
                }
                None
            }
            Ctl::Stop(at) => {
                // Nothing captured after the stop belongs to the recording (packets still queued may be).
                if self.timeline.pauses.last().is_none_or(|p| p.1.is_some()) {
                    self.timeline.pauses.push((at, None));
                }
                Some(at)
            }
        }
    }

    fn media(&mut self, m: RecordMsg) {
        match m {
            RecordMsg::End { track } => {
                if let Some(t) = self.tracks.get_mut(&track) {
                    drain(t, &self.timeline, &self.dir, true);
                    t.ended = true;
                }
            }
            RecordMsg::Packet(p) => {
                let Some(t) = self.tracks.get_mut(&p.track) else {
                    return;
                };
                if t.ended || matches!(t.kind, Kind::Unsupported(_)) {
                    return;
                }
                if t.epoch != Some(p.epoch) {
                    // A new layer (or the start): a fresh sequence space, starting on a keyframe.
                    t.epoch = Some(p.epoch);
                    t.buf.clear();
                    t.next_seq = Some(p.seq);
                    t.frame = None;
                    t.anchor = None;
                }
                match t.next_seq {
                    Some(n) if p.seq < n => return, // late duplicate or too late
                    None => t.next_seq = Some(p.seq),
                    _ => {}
                }
                t.buf.insert(p.seq, (p, Instant::now()));
                drain(t, &self.timeline, &self.dir, false);
            }
        }
    }

    /// Gaps that waited too long are loss.
    fn flush_stale(&mut self) {
        for t in self.tracks.values_mut() {
            drain(t, &self.timeline, &self.dir, false);
        }
    }

    fn finish(mut self, stop: i64) -> Vec<TrackResult> {
        // The timeline ends at the stop (an open span from the stop, or from a pause still running).
        let total = self.timeline.clamped_offset(stop);
        let mut out = Vec::new();
        for (&track, t) in self.tracks.iter_mut() {
            drain(t, &self.timeline, &self.dir, true);
            let mut r = TrackResult {
                track,
                note: t.note.clone(),
                width: t.size.map(|s| s.0),
                height: t.size.map(|s| s.1),
                ..TrackResult::default()
            };
            if let Some(f) = t.out.take() {
                let start = t.start_offset.unwrap_or(0);
                // The file lasts until the track ended (its last frame plus one frame's time) or the stop.
                let end = if t.ended {
                    f.last_ts() + if matches!(t.kind, Kind::Opus) { 20 } else { 33 }
                } else {
                    (total - start).max(f.last_ts() + 1)
                };
                r.file = Some(t.file_name.clone());
                r.codec = Some(
                    match t.kind {
                        Kind::Vp8 => "vp8",
                        Kind::Vp9 => "vp9",
                        Kind::H264 => "h264",
                        Kind::Av1 => "av1",
                        Kind::Opus => "opus",
                        Kind::Unsupported(_) => "",
                    }
                    .to_owned(),
                );
                r.start_offset_ms = Some(start);
                r.duration_ms = end;
                r.frames = f.frames();
                r.bytes = f.bytes();
                if let Err(e) = f.finish(end as f64) {
                    tracing::error!(error = %e, file = %t.file_name, "finishing a track file failed");
                }
            }
            out.push(r);
        }
        out.sort_by_key(|r| r.track);
        out
    }
}

/// Feeds the in-order packets of a track into its frames; skips a gap that waited too long (or on `force`).
fn drain(t: &mut Track, tl: &Timeline, dir: &std::path::Path, force: bool) {
    loop {
        let Some(next) = t.next_seq else { return };
        if let Some((p, _)) = t.buf.remove(&next) {
            t.next_seq = Some(next + 1);
            packet(t, p, tl, dir);
            continue;
        }
        let Some((&first, (_, at))) = t.buf.iter().next() else {
            return;
        };
        if !(force || t.buf.len() > REORDER_MAX || at.elapsed() > REORDER_WAIT) {
            return;
        }
        // Loss: go on after the gap; video waits for a keyframe (asked for now).
        t.next_seq = Some(first);
        if t.kind.video() {
            t.frame = None;
            t.waiting_keyframe = true;
            t.need_keyframe.store(true, Ordering::Relaxed);
        }
    }
}

fn packet(t: &mut Track, p: RecordedPacket, tl: &Timeline, dir: &std::path::Path) {
    match t.kind {
        Kind::Opus => {
            write_frame(t, p.rtp_ts, p.wallclock_us, true, &p.payload, tl, dir);
        }
        Kind::Vp8 | Kind::Vp9 => {
            let parsed = match t.kind {
                Kind::Vp8 => vp8_payload(&p.payload).map(|(d, s)| (d, s, false)),
                _ => vp9_payload(&p.payload),
            };
            let Some((data, begin, vp9_end)) = parsed else {
                t.frame = None;
                return;
            };
            // A new timestamp closes the frame in progress (its marker was lost).
            if t.frame.as_ref().is_some_and(|f| f.0 != p.rtp_ts) {
                complete(t, tl, dir);
            }
            match t.frame.as_mut() {
                Some(f) => f.3.extend_from_slice(data),
                None if begin => {
                    t.frame = Some((p.rtp_ts, p.wallclock_us, p.keyframe, data.to_vec(), true));
                }
                None => return, // the frame's start was lost
            }
            if p.marker || vp9_end {
                complete(t, tl, dir);
            }
        }
        Kind::H264 => {
            // An access unit is every packet of one RTP timestamp; the marker ends it (a new timestamp also
            // does, when the marker was lost).
            if t.frame.as_ref().is_some_and(|f| f.0 != p.rtp_ts) {
                complete(t, tl, dir);
            }
            if t.frame.is_none() {
                t.frame = Some((p.rtp_ts, p.wallclock_us, p.keyframe, Vec::new(), true));
                t.au = AccessUnit::default();
            }
            t.au.push(&p.payload);
            if p.marker {
                complete(t, tl, dir);
            }
        }
        Kind::Av1 => {
            // A temporal unit is every packet of one RTP timestamp; the marker ends it.
            if t.frame.as_ref().is_some_and(|f| f.0 != p.rtp_ts) {
                complete(t, tl, dir);
            }
            if t.frame.is_none() {
                t.frame = Some((p.rtp_ts, p.wallclock_us, p.keyframe, Vec::new(), true));
                t.tu = TemporalUnit::default();
            }
            t.tu.push(&p.payload);
            if p.marker {
                complete(t, tl, dir);
            }
        }
        Kind::Unsupported(_) => {}
    }
}

fn complete(t: &mut Track, tl: &Timeline, dir: &std::path::Path) {
    let Some((rtp_ts, wall, _, mut data, mut whole)) = t.frame.take() else {
        return;
    };
    let mut idr = false;
    if matches!(t.kind, Kind::H264) {
        let mut au = std::mem::take(&mut t.au);
        whole = whole && au.finish();
        if !whole {
            // A broken access unit: the next frames reference it; wait for a keyframe.
            t.waiting_keyframe = true;
            t.need_keyframe.store(true, Ordering::Relaxed);
            return;
        }
        if let Some(s) = au.sps.take() {
            t.sps = Some(s);
        }
        if let Some(p) = au.pps.take() {
            t.pps = Some(p);
        }
        idr = au.idr;
        data = au.data;
    }
    if matches!(t.kind, Kind::Av1) {
        let mut tu = std::mem::take(&mut t.tu);
        whole = whole && tu.finish();
        if !whole {
            t.waiting_keyframe = true;
            t.need_keyframe.store(true, Ordering::Relaxed);
            return;
        }
        // A temporal unit that carries a sequence header starts a coded video sequence (a keyframe): the
        // browsers send one with every keyframe.
        if let Some(sh) = tu.sequence_header.take() {
            if sequence_info(&sh).is_some() {
                idr = true;
                t.seq_header = Some(sh);
            }
        }
        data = tu.data;
    }
    if !whole || data.is_empty() {
        return;
    }
    let keyframe = match t.kind {
        Kind::Vp8 => data.first().is_some_and(|b| b & 0x01 == 0),
        Kind::Vp9 => vp9_size(&data).is_some(),
        // An IDR is a keyframe once the parameter sets are known (the file's avcC needs them).
        Kind::H264 => idr && t.sps.is_some() && t.pps.is_some(),
        Kind::Av1 => idr,
        _ => true,
    };
    if t.waiting_keyframe {
        if !keyframe {
            t.need_keyframe.store(true, Ordering::Relaxed);
            return;
        }
        t.waiting_keyframe = false;
    }
    if keyframe && t.size.is_none() {
        t.size = match t.kind {
            Kind::Vp8 => vp8_size(&data),
            Kind::Vp9 => vp9_size(&data),
            Kind::H264 => t.sps.as_deref().and_then(sps_size),
            Kind::Av1 => t
                .seq_header
                .as_deref()
                .and_then(sequence_info)
                .map(|i| (i.width, i.height)),
            _ => None,
        };
    }
    write_frame(t, rtp_ts, wall, keyframe, &data, tl, dir);
}

fn write_frame(
    t: &mut Track,
    rtp_ts: u32,
    sr_wall_us: i64,
    keyframe: bool,
    data: &[u8],
    tl: &Timeline,
    dir: &std::path::Path,
) {
    let wall_us = match t.anchor {
        Some((r, w)) => {
            let predicted = w + i64::from(rtp_ts.wrapping_sub(r) as i32) * 1_000_000 / t.clock;
            // Forward only (a backward jump would squeeze frames together); a big jump back is a new clock.
            let drift = sr_wall_us - predicted;
            if !(-1_000_000..=REANCHOR_US).contains(&drift) {
                t.anchor = Some((rtp_ts, sr_wall_us));
                sr_wall_us
            } else {
                predicted
            }
        }
        None => {
            t.anchor = Some((rtp_ts, sr_wall_us));
            sr_wall_us
        }
    };
    let wall = wall_us.div_euclid(1000);
    // A frame captured just before the start (it was on its way): at the start.
    let offset = if wall < tl.started_at && tl.started_at - wall < 1000 {
        Some(0)
    } else {
        tl.offset(wall)
    };
    let Some(offset) = offset else {
        // Paused: leave it out; video restarts on a keyframe after the cut.
        if t.kind.video() {
            t.waiting_keyframe = true;
        }
        return;
    };
    let video = t.kind.video();
    if offset <= t.last_offset && !video {
        return; // audio never goes back
    }
    if t.out.is_none() {
        let path = dir.join(&t.file_name);
        let created = if let Kind::H264 = t.kind {
            let (w, h) = t.size.unwrap_or((640, 480));
            match (&t.sps, &t.pps) {
                (Some(sps), Some(pps)) => {
                    Mp4File::create(&path, sps, pps, w, h).map(|f| Out::Mp4(Box::new(f)))
                }
                _ => return, // not before a keyframe with its parameter sets
            }
        } else if let Kind::Av1 = t.kind {
            let Some((sh, info)) = t
                .seq_header
                .as_ref()
                .and_then(|sh| Some((sh, sequence_info(sh)?)))
            else {
                return; // not before a keyframe with its sequence header
            };
            let codec = TrackCodec::Av1 {
                width: info.width,
                height: info.height,
                av1c: av1c(&info, sh),
            };
            TrackFile::create(&path, &codec).map(Out::Webm)
        } else {
            TrackFile::create(&path, &webm_codec(t)).map(Out::Webm)
        };
        match created {
            Ok(f) => {
                t.out = Some(f);
                t.start_offset = Some(offset);
            }
            Err(e) => {
                tracing::error!(error = %e, file = %t.file_name, "creating a track file failed");
                t.kind = Kind::Unsupported("an unwritable file".to_owned());
                t.note = Some(format!("the file could not be created: {e}"));
                return;
            }
        }
    }
    let start = t.start_offset.unwrap_or(0);
    let Some(f) = t.out.as_mut() else { return };
    if let Err(e) = f.write(offset - start, keyframe, data) {
        tracing::error!(error = %e, file = %t.file_name, "writing a track file failed");
        t.note = Some(format!("writing stopped: {e}"));
        t.ended = true;
        return;
    }
    t.last_offset = offset.max(t.last_offset);
    metrics::counter!("meet_recording_bytes_total").increment(data.len() as u64);
}

/// The WebM track header of a VP8 / VP9 / Opus track.
fn webm_codec(t: &Track) -> TrackCodec {
    let (width, height) = t.size.unwrap_or((640, 480));
    match t.kind {
        Kind::Vp8 => TrackCodec::Vp8 { width, height },
        Kind::Vp9 => TrackCodec::Vp9 { width, height },
        _ => TrackCodec::Opus {
            channels: t.channels,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::tests::{annexb_access_units, decode_errors, packetize, probe, require_ffmpeg};
    use std::process::Command;
    use std::sync::mpsc::{channel, sync_channel};

    /// The recording thread with an H.264 producer (a real libx264 stream in RTP, packetization-mode 1): it starts
    /// mid-GOP (waits for the IDR), loses a packet (waits for the next IDR, asks for it), and writes
    /// `NN-camera-video.mp4` that ffprobe reads as h264 and ffmpeg decodes with no error.
    #[test]
    fn h264_track_goes_to_an_mp4_file() {
        require_ffmpeg();
        let dir = std::env::temp_dir().join(format!("rec-h264-thread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // (tick_rate: see the mp4 test)
        let src = dir.join("src.h264");
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
                "4",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
            ])
            .args([
                "-g",
                "30",
                "-bsf:v",
                "h264_metadata=aud=insert:tick_rate=400",
                "-f",
                "h264",
            ])
            .arg(&src)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
        let aus = annexb_access_units(&std::fs::read(&src).expect("read"));
        assert_eq!(aus.len(), 120);

        let start = 1_700_000_000_000i64;
        let (tx, rx) = sync_channel(1 << 16);
        let (ctl, ctl_rx) = channel();
        let need_keyframe = Arc::new(AtomicBool::new(false));
        ctl.send(Ctl::AddTrack {
            track: 1,
            codec: RecordedCodec {
                mime_type: "video/H264".to_owned(),
                clock_rate: 90_000,
                channels: 1,
            },
            file: "01-camera-video.webm".to_owned(),
            need_keyframe: need_keyframe.clone(),
        })
        .expect("ctl");
        let mut seq = 100u64;
        let mut lost = false;
        // from frame 10 (mid-GOP: the first IDR it can use is frame 30)
        for (k, nals) in aus.iter().enumerate().skip(10) {
            let packets = packetize(nals, 1000);
            let n = packets.len();
            for (i, p) in packets.into_iter().enumerate() {
                seq += 1;
                // one packet of frame 45 is lost: frames until the IDR at 60 are left out
                if k == 45 && i == 0 && !lost {
                    lost = true;
                    continue;
                }
                tx.send(RecordMsg::Packet(RecordedPacket {
                    track: 1,
                    epoch: 1,
                    seq,
                    rtp_ts: (k as u32) * 3000,
                    marker: i + 1 == n,
                    keyframe: nals.iter().any(|x| x[0] & 0x1f == 5),
                    wallclock_us: (start + (k as i64) * 100 / 3) * 1000,
                    payload: Arc::from(p),
                }))
                .expect("send");
            }
        }
        // a malformed packet and an empty one: skipped, no panic
        for p in [vec![0x7c], vec![]] {
            seq += 1;
            tx.send(RecordMsg::Packet(RecordedPacket {
                track: 1,
                epoch: 1,
                seq,
                rtp_ts: 200 * 3000,
                marker: true,
                keyframe: false,
                wallclock_us: (start + 4000) * 1000,
                payload: Arc::from(p),
            }))
            .expect("send");
        }
        ctl.send(Ctl::Stop(start + 4100)).expect("ctl");
        let results = RecThread::new(dir.clone(), start).run(rx, ctl_rx);
        let r = &results[0];
        assert_eq!(r.file.as_deref(), Some("01-camera-video.mp4"));
        assert_eq!(r.codec.as_deref(), Some("h264"));
        assert_eq!((r.width, r.height), (Some(320), Some(240)));
        // frames 30..45 and 60..120
        assert_eq!(r.frames, 15 + 60, "{r:?}");
        assert_eq!(r.start_offset_ms, Some(1000));
        assert!(need_keyframe.load(Ordering::Relaxed));
        let file = dir.join("01-camera-video.mp4");
        let p = probe(&file);
        assert!(p.contains("codec_name=h264"), "{p}");
        assert!(p.contains("nb_read_frames=75"), "{p}");
        assert_eq!(decode_errors(&file), "");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The recording thread with an AV1 producer (a real libaom stream, packetized per the AV1 RTP format with
    /// aggregation headers and OBU fragments): starts on a keyframe (sequence header), loses a packet (waits for
    /// the next keyframe), and writes a WebM (`V_AV1`, av1C) that ffprobe reads as av1 and ffmpeg decodes.
    #[test]
    fn av1_track_goes_to_a_webm_file() {
        require_ffmpeg();
        let dir = std::env::temp_dir().join(format!("rec-av1-thread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let src = dir.join("src.obu");
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
                "libaom-av1",
                "-usage",
                "realtime",
            ])
            .args(["-cpu-used", "8", "-g", "30", "-f", "obu"])
            .arg(&src)
            .status()
            .expect("ffmpeg");
        assert!(
            st.success(),
            "ffmpeg could not encode AV1 with libaom-av1 (Debian's ffmpeg has it)"
        );
        let tus = crate::av1::tests::obu_temporal_units(&std::fs::read(&src).expect("read"));
        assert_eq!(tus.len(), 90);
        let keyframes: Vec<usize> = tus
            .iter()
            .enumerate()
            .filter(|(_, tu)| tu.iter().any(|o| (o[0] >> 3) & 0x0f == 1))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keyframes, vec![0, 30, 60]);

        let start = 1_700_000_000_000i64;
        let (tx, rx) = sync_channel(1 << 16);
        let (ctl, ctl_rx) = channel();
        let need_keyframe = Arc::new(AtomicBool::new(false));
        ctl.send(Ctl::AddTrack {
            track: 2,
            codec: RecordedCodec {
                mime_type: "video/AV1".to_owned(),
                clock_rate: 90_000,
                channels: 1,
            },
            file: "02-screen-video.webm".to_owned(),
            need_keyframe: need_keyframe.clone(),
        })
        .expect("ctl");
        let mut seq = 7u64;
        let mut lost = false;
        let mut fragmented = 0;
        for (k, tu) in tus.iter().enumerate().skip(10) {
            let packets = crate::av1::tests::packetize(tu, 400);
            fragmented += packets.iter().filter(|p| p[0] & 0x40 != 0).count();
            let n = packets.len();
            for (i, p) in packets.into_iter().enumerate() {
                seq += 1;
                if k == 45 && i == 0 && !lost {
                    lost = true;
                    continue;
                }
                tx.send(RecordMsg::Packet(RecordedPacket {
                    track: 2,
                    epoch: 1,
                    seq,
                    rtp_ts: (k as u32) * 3000,
                    marker: i + 1 == n,
                    keyframe: false,
                    wallclock_us: (start + (k as i64) * 100 / 3) * 1000,
                    payload: Arc::from(p),
                }))
                .expect("send");
            }
        }
        assert!(fragmented > 0, "some OBUs span packets");
        ctl.send(Ctl::Stop(start + 3100)).expect("ctl");
        let results = RecThread::new(dir.clone(), start).run(rx, ctl_rx);
        let r = &results[0];
        assert_eq!(r.file.as_deref(), Some("02-screen-video.webm"));
        assert_eq!(r.codec.as_deref(), Some("av1"));
        assert_eq!((r.width, r.height), (Some(320), Some(240)));
        assert_eq!(r.frames, 15 + 30, "{r:?}");
        assert_eq!(r.start_offset_ms, Some(1000));
        assert!(need_keyframe.load(Ordering::Relaxed));
        let file = dir.join("02-screen-video.webm");
        let p = probe(&file);
        assert!(p.contains("codec_name=av1"), "{p}");
        assert!(p.contains("width=320|height=240"), "{p}");
        assert!(p.contains("nb_read_frames=45"), "{p}");
        assert_eq!(decode_errors(&file), "");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
