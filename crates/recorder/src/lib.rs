//! The recorder of one node (issue 10; DESIGN §7): for each running recording a folder
//! `<dir>/<recordingId>/` with
//! - `chat.jsonl` (appended and flushed per message, so it survives `kill -9`) and `chat.vtt`, on the recording's
//!   timeline: only messages everyone could see (the service hands over `recipientType: all` ones only), none of a
//!   paused span;
//! - `manifest.json`: the recording, its participants and tracks, each track's start offset, and the paused spans,
//!   all on one timeline (ms since the recording started, paused spans left out);
//! - per-track media files (see `docs/recording.md` for what is and is not written yet).
//!
//! Limits: a per-node cap on concurrent recordings, a free-disk floor (both refuse `recording:start` with
//! RECORDING_UNAVAILABLE) and a maximum duration (the service stops the recording by itself). At start-up,
//! recordings a crash left `recording` or `processing` are finalized ([`Recorder::recover`]).

pub mod av1;
pub mod composite;
pub mod h264;
pub mod media;
pub mod mp4;
pub mod webm;

use meeting::{MediaPlane, RecordedProducer, RecordingSink};

/// For `examples/rec_bench.rs`: the recording thread alone, driven by hand.
#[doc(hidden)]
pub fn bench_thread(dir: PathBuf, started_at: i64) -> media::RecThread {
    media::RecThread::new(dir, started_at)
}

#[doc(hidden)]
pub fn bench_add_track(track: u32, codec: sfu::record::RecordedCodec, file: String) -> media::Ctl {
    media::Ctl::AddTrack {
        track,
        codec,
        file,
        need_keyframe: Arc::default(),
    }
}

#[doc(hidden)]
pub fn bench_stop(at: i64) -> media::Ctl {
    media::Ctl::Stop(at)
}
use proto::{MeetingId, RecordingId};
use serde::Serialize;
use sfu::record::{RecordMsg, RecordSink};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use store::{ChatRecord, RecordingRecord, RecordingStatus, Store};

/// `MEET_RECORDING__*`.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Where recordings' folders go.
    pub dir: PathBuf,
    /// Concurrent recordings this node holds (0: recording refused).
    pub max_concurrent: usize,
    /// A recording does not start when the directory's file system has less free space (MB).
    pub min_free_disk_mb: u64,
    /// Longest recorded time (s); 0: unlimited.
    pub max_duration_secs: u64,
    /// The ffmpeg binary for composites (looked up in PATH when bare).
    pub ffmpeg: String,
    /// Composites made at once on this node.
    pub composite_concurrency: usize,
    /// Packets a recording's queue holds (from the media workers to its thread); beyond, packets are dropped and
    /// counted, never waited for.
    pub queue_packets: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/recordings"),
            max_concurrent: 8,
            min_free_disk_mb: 1024,
            max_duration_secs: 4 * 3600,
            ffmpeg: "ffmpeg".to_owned(),
            composite_concurrency: 1,
            queue_packets: 4096,
        }
    }
}

/// The manifest's participant entry.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestParticipant {
    pub participant_id: String,
    pub user_id: String,
    pub user_name: String,
}

/// The manifest's track entry: one recorded producer.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTrack {
    pub track: u32,
    pub producer_id: String,
    pub participant_id: String,
    pub user_id: String,
    /// `audio` | `video`
    pub kind: String,
    /// `mic` | `camera` | `screen`
    pub source: String,
    /// Its file in the folder, when media was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// When it starts on the recording's timeline (ms): its first frame.
    pub start_offset_ms: i64,
    /// Its file's length (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    /// Why there is no file, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub recording_id: String,
    pub meeting_id: String,
    /// ISO 8601.
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Recorded time (paused spans left out).
    pub duration_ms: i64,
    pub options: proto::events::RecordingOptions,
    pub participants: Vec<ManifestParticipant>,
    pub tracks: Vec<ManifestTrack>,
    /// Paused spans as wall-clock ISO 8601 times and where they sit on the timeline (a cut at `atMs`).
    pub paused_spans: Vec<PausedSpan>,
    pub chat: Option<ChatFiles>,
    /// The grid of every video track with all audio mixed, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite: Option<String>,
    /// Packets dropped because the recording's queue was full (a slow disk).
    pub dropped_packets: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PausedSpan {
    pub from: String,
    pub to: Option<String>,
    /// Where the cut is on the recording's timeline.
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatFiles {
    pub jsonl: String,
    pub vtt: String,
    pub messages: usize,
}

/// One transcript line (`chat.jsonl`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    pub id: String,
    /// On the recording's timeline.
    pub offset_ms: i64,
    pub sender_id: String,
    pub sender_name: String,
    pub message: String,
    pub timestamp: String,
}

/// Wall-clock spans of one recording and the mapping onto its timeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    pub started_at: i64,
    /// (from, to) wall-clock ms; `to` None while paused.
    pub pauses: Vec<(i64, Option<i64>)>,
}

impl Timeline {
    /// Where wall-clock `t` is on the timeline; None inside a paused span (or before the start).
    pub fn offset(&self, t: i64) -> Option<i64> {
        if t < self.started_at {
            return None;
        }
        let mut paused = 0;
        for &(from, to) in &self.pauses {
            match to {
                _ if t < from => break,
                Some(to) if t >= to => paused += to - from,
                _ => return None,
            }
        }
        Some(t - self.started_at - paused)
    }

    /// Where wall-clock `t` lands: inside a pause, at the cut.
    pub fn clamped_offset(&self, t: i64) -> i64 {
        let mut paused = 0;
        for &(from, to) in &self.pauses {
            if t < from {
                break;
            }
            match to {
                Some(to) if t >= to => paused += to - from,
                _ => return (from - self.started_at - paused).max(0),
            }
        }
        (t - self.started_at - paused).max(0)
    }
}

/// The media side of a running recording: its thread and queue.
struct MediaSession {
    tx: std::sync::mpsc::SyncSender<RecordMsg>,
    ctl: std::sync::mpsc::Sender<media::Ctl>,
    thread: Option<std::thread::JoinHandle<Vec<media::TrackResult>>>,
    plane: Arc<dyn MediaPlane>,
    dropped: Arc<AtomicU64>,
}

struct Active {
    row: RecordingRecord,
    media: Option<MediaSession>,
    dir: PathBuf,
    timeline: Timeline,
    participants: Vec<ManifestParticipant>,
    tracks: Vec<ManifestTrack>,
    chat: Vec<ChatLine>,
    chat_file: Option<std::fs::File>,
}

/// The node's recorder: implements the service's [`RecordingSink`].
pub struct Recorder {
    cfg: RecorderConfig,
    store: Store,
    active: Mutex<HashMap<MeetingId, Active>>,
    composites: Arc<tokio::sync::Semaphore>,
    /// Packets dropped by every recording of this node (`meet_recording_dropped_packets_total`).
    dropped_total: Arc<AtomicU64>,
    me: std::sync::Weak<Recorder>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    proto::time::now_ms()
}

/// Free space of the file system holding `dir` (its closest existing ancestor), MB.
pub fn free_disk_mb(dir: &Path) -> Option<u64> {
    let mut p = dir.to_path_buf();
    loop {
        if p.exists() {
            break;
        }
        if !p.pop() {
            p = PathBuf::from(".");
            break;
        }
        if p.as_os_str().is_empty() {
            p = PathBuf::from(".");
            break;
        }
    }
    let s = nix::sys::statvfs::statvfs(&p).ok()?;
    #[allow(clippy::unnecessary_cast)] // the field types differ per platform
    let bytes = (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64);
    Some(bytes / (1024 * 1024))
}

/// WebVTT time `hh:mm:ss.mmm`.
fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `chat.vtt`: each message shown for 5 s (or until the next one).
pub fn chat_vtt(lines: &[ChatLine]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, l) in lines.iter().enumerate() {
        let end = lines
            .get(i + 1)
            .map_or(l.offset_ms + 5000, |n| n.offset_ms.min(l.offset_ms + 5000))
            .max(l.offset_ms + 1);
        // A cue's text may not contain "-->" nor blank lines.
        let text = l.message.replace("-->", "→").replace("\n\n", "\n");
        out.push_str(&format!(
            "{}\n{} --> {}\n<v {}>{}\n\n",
            i + 1,
            vtt_time(l.offset_ms),
            vtt_time(end),
            l.sender_name.replace('>', ""),
            text
        ));
    }
    out
}

impl Recorder {
    pub fn new(cfg: RecorderConfig, store: Store) -> Arc<Self> {
        let composites = Arc::new(tokio::sync::Semaphore::new(
            cfg.composite_concurrency.max(1),
        ));
        Arc::new_cyclic(|me| Self {
            cfg,
            store,
            active: Mutex::new(HashMap::new()),
            composites,
            dropped_total: Arc::default(),
            me: me.clone(),
        })
    }

    pub fn config(&self) -> &RecorderConfig {
        &self.cfg
    }

    fn me(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    /// A recording's folder.
    pub fn folder(&self, id: &RecordingId) -> PathBuf {
        self.cfg.dir.join(id.as_str())
    }

    /// Recordings running on this node.
    pub fn active_count(&self) -> usize {
        lock(&self.active).len()
    }

    fn set_status(&self, id: &RecordingId, status: RecordingStatus, reason: Option<String>) {
        let (store, id) = (self.store.clone(), id.clone());
        spawn(async move {
            if let Err(e) = store
                .set_recording_status(&id, status, reason.as_deref(), now_ms())
                .await
            {
                tracing::error!(error = %e, recording = %id, "storing a recording's status failed");
            }
        });
    }

    /// At start-up: recordings a crash left `recording` or `processing` are stopped (reason `server-restart`,
    /// at their files' last write) and finalized: `ready` when their folder is there, else `failed` with why.
    pub async fn recover(&self) -> usize {
        let rows = match self.store.unfinished_recordings().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "loading unfinished recordings failed");
                return 0;
            }
        };
        let n = rows.len();
        for row in rows {
            let dir = self.folder(&row.id);
            let last = last_write_ms(&dir)
                .unwrap_or(row.started_at)
                .max(row.started_at);
            if row.status == RecordingStatus::Recording {
                let _ = self
                    .store
                    .stop_recording(&row.id, last, last - row.started_at, "server-restart")
                    .await;
            }
            let (status, reason) = if dir.is_dir() {
                let path = dir.join("manifest.json");
                // The manifest written while recording lists the tracks: note the files they left, and the stop.
                let mut m: serde_json::Value = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_else(|| {
                        serde_json::json!({
                            "recordingId": row.id.as_str(),
                            "meetingId": row.meeting_id.as_str(),
                            "startedAt": proto::time::iso8601(row.started_at),
                            "options": options_of(&row),
                            "participants": [],
                            "tracks": [],
                            "pausedSpans": [],
                        })
                    });
                m["stoppedAt"] = serde_json::json!(proto::time::iso8601(last));
                m["durationMs"] = serde_json::json!(last - row.started_at);
                m["stopReason"] = serde_json::json!("server-restart");
                if let Some(tracks) = m.get_mut("tracks").and_then(|t| t.as_array_mut()) {
                    for t in tracks {
                        let stem = format!(
                            "{:02}-{}-{}",
                            t["track"].as_u64().unwrap_or(0),
                            t["source"].as_str().unwrap_or(""),
                            t["kind"].as_str().unwrap_or("")
                        );
                        // WebM, or MP4 for an H.264 track.
                        let found = ["webm", "mp4"]
                            .iter()
                            .map(|ext| format!("{stem}.{ext}"))
                            .find(|name| dir.join(name).is_file());
                        if let Some(name) = found {
                            t["file"] = serde_json::json!(name);
                        } else {
                            t["note"] =
                                serde_json::json!("no media was written before the server stopped");
                        }
                    }
                }
                let _ = write_json(&path, &m);
                if row.record_chat {
                    // chat.jsonl was written line by line: rebuild the WebVTT from it.
                    let lines: Vec<ChatLine> = std::fs::read_to_string(dir.join("chat.jsonl"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                        .map(|v| ChatLine {
                            id: v["id"].as_str().unwrap_or("").to_owned(),
                            offset_ms: v["offsetMs"].as_i64().unwrap_or(0),
                            sender_id: v["senderId"].as_str().unwrap_or("").to_owned(),
                            sender_name: v["senderName"].as_str().unwrap_or("").to_owned(),
                            message: v["message"].as_str().unwrap_or("").to_owned(),
                            timestamp: v["timestamp"].as_str().unwrap_or("").to_owned(),
                        })
                        .collect();
                    let _ = std::fs::write(dir.join("chat.vtt"), chat_vtt(&lines));
                }
                (
                    RecordingStatus::Ready,
                    Some(
                        "finalized at start-up after the server stopped during the recording (no composite)"
                            .to_owned(),
                    ),
                )
            } else {
                (
                    RecordingStatus::Failed,
                    Some(
                        "the server stopped during the recording and its folder is missing"
                            .to_owned(),
                    ),
                )
            };
            if let Err(e) = self
                .store
                .set_recording_status(&row.id, status, reason.as_deref(), now_ms())
                .await
            {
                tracing::error!(error = %e, recording = %row.id, "finalizing a recording failed");
            }
            tracing::warn!(recording = %row.id, status = status.as_str(), "recording left unfinished by a restart finalized");
        }
        n
    }

    /// The manifest of a running or stopped recording.
    fn manifest(a: &Active, stopped: Option<(i64, i64)>) -> Manifest {
        let mut timeline = a.timeline.clone();
        if let (Some(last), Some((at, _))) = (timeline.pauses.last_mut(), stopped) {
            if last.1.is_none() {
                last.1 = Some(at);
            }
        }
        Manifest {
            recording_id: a.row.id.to_string(),
            meeting_id: a.row.meeting_id.to_string(),
            started_at: proto::time::iso8601(a.row.started_at),
            stopped_at: stopped.map(|(at, _)| proto::time::iso8601(at)),
            duration_ms: stopped.map_or(0, |(_, d)| d),
            options: options_of(&a.row),
            participants: a.participants.clone(),
            tracks: a.tracks.clone(),
            paused_spans: timeline
                .pauses
                .iter()
                .map(|&(from, to)| PausedSpan {
                    from: proto::time::iso8601(from),
                    to: to.map(proto::time::iso8601),
                    at_ms: timeline.clamped_offset(from),
                })
                .collect(),
            chat: a.row.record_chat.then(|| ChatFiles {
                jsonl: "chat.jsonl".to_owned(),
                vtt: "chat.vtt".to_owned(),
                messages: a.chat.len(),
            }),
            composite: None,
            dropped_packets: a
                .media
                .as_ref()
                .map_or(0, |m| m.dropped.load(Ordering::Relaxed)),
        }
    }

    /// After the stop: the recording thread finishes its files; the manifest, the transcript's WebVTT and the
    /// composite follow; then the row's final status.
    fn finalize(self: &Arc<Self>, mut a: Active, stopped: &RecordingRecord) {
        let stopped_at = stopped.stopped_at.unwrap_or_else(now_ms);
        let duration = stopped.duration_ms.unwrap_or(0);
        let thread = a.media.as_mut().and_then(|m| {
            let _ = m.ctl.send(media::Ctl::Stop(stopped_at));
            m.thread.take()
        });
        if let Some(m) = &a.media {
            // Detach the taps (a tap also detaches itself once the queue is gone).
            let plane = m.plane.clone();
            let (router, producers): (String, Vec<String>) = (
                a.row.meeting_id.to_string(),
                a.tracks.iter().map(|t| t.producer_id.clone()).collect(),
            );
            spawn(async move {
                let _ = plane
                    .call(&router, move |core, _| {
                        for p in &producers {
                            core.stop_recording(p);
                        }
                    })
                    .await;
            });
        }
        if a.row.record_chat {
            if let Err(e) = std::fs::write(a.dir.join("chat.vtt"), chat_vtt(&a.chat)) {
                tracing::error!(error = %e, "writing chat.vtt failed");
            }
        }
        let me = self.clone();
        spawn(async move {
            let results = match thread {
                Some(h) => tokio::task::spawn_blocking(move || h.join().unwrap_or_default())
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for r in results {
                if let Some(t) = a.tracks.iter_mut().find(|t| t.track == r.track) {
                    t.file = r.file;
                    t.codec = r.codec;
                    if let Some(o) = r.start_offset_ms {
                        t.start_offset_ms = o;
                    }
                    t.duration_ms = (r.frames > 0).then_some(r.duration_ms);
                    t.frames = Some(r.frames);
                    t.width = r.width;
                    t.height = r.height;
                    t.note = r.note.or_else(|| {
                        (r.frames == 0).then(|| "no media arrived while recording".to_owned())
                    });
                }
            }
            let mut manifest = Self::manifest(&a, Some((stopped_at, duration)));
            if let Err(e) = write_json(&a.dir.join("manifest.json"), &manifest) {
                tracing::error!(error = %e, recording = %a.row.id, "writing the manifest failed");
                me.set_status(
                    &a.row.id,
                    RecordingStatus::Failed,
                    Some(format!("writing the manifest failed: {e}")),
                );
                return;
            }
            let (status, reason) = me.make_composite(&a.dir, &mut manifest, duration).await;
            if manifest.composite.is_some() {
                let _ = write_json(&a.dir.join("manifest.json"), &manifest);
            }
            me.set_status(&a.row.id, status, reason);
        });
        metrics::gauge!("meet_recordings_active").decrement(1.0);
    }

    /// Runs the composite (bounded concurrency). Ready without one when there is nothing to compose or no ffmpeg,
    /// saying why; failed when ffmpeg fails.
    async fn make_composite(
        &self,
        dir: &Path,
        manifest: &mut Manifest,
        duration_ms: i64,
    ) -> (RecordingStatus, Option<String>) {
        let inputs: Vec<composite::Input> = manifest
            .tracks
            .iter()
            .filter_map(|t| {
                Some(composite::Input {
                    file: dir.join(t.file.as_ref()?),
                    video: t.kind == "video",
                    offset_ms: t.start_offset_ms,
                })
            })
            .collect();
        if inputs.is_empty() {
            return (
                RecordingStatus::Ready,
                (manifest.options.record_video || manifest.options.record_audio)
                    .then(|| "no composite: no media was recorded".to_owned()),
            );
        }
        let Ok(_permit) = self.composites.acquire().await else {
            return (
                RecordingStatus::Failed,
                Some("the server is stopping".to_owned()),
            );
        };
        let out = dir.join("composite.mp4");
        match composite::run(&self.cfg.ffmpeg, &inputs, duration_ms, &out, &manifest.recording_id).await {
            Ok(()) => {
                manifest.composite = Some("composite.mp4".to_owned());
                (RecordingStatus::Ready, None)
            }
            Err(composite::Error::Missing(why)) => (
                RecordingStatus::Ready,
                Some(format!(
                    "no composite: ffmpeg is not available on this server ({why}); the per-track files are ready"
                )),
            ),
            Err(composite::Error::Failed(why)) => (
                RecordingStatus::Failed,
                Some(format!("the composite failed: {why}")),
            ),
        }
    }
}

fn options_of(r: &RecordingRecord) -> proto::events::RecordingOptions {
    proto::events::RecordingOptions {
        record_video: r.record_video,
        record_audio: r.record_audio,
        record_chat: r.record_chat,
    }
}

fn write_json(path: &Path, v: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
    // Written beside, then renamed: a crash never leaves half a manifest.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, path)
}

fn last_write_ms(dir: &Path) -> Option<i64> {
    let mut last = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let t = e.metadata().ok()?.modified().ok()?;
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())?;
        last = Some(last.map_or(ms, |l: i64| l.max(ms)));
    }
    last
}

/// Runs `f` on the ambient tokio runtime (the service calls the sink from inside one); without one, drops it.
fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(f);
        }
        Err(_) => tracing::error!("recorder called outside a tokio runtime"),
    }
}

impl RecordingSink for Recorder {
    fn refuse_start(&self) -> Option<String> {
        let n = self.active_count();
        if n >= self.cfg.max_concurrent {
            return Some(format!(
                "this server is already recording {n} meetings (its limit is {})",
                self.cfg.max_concurrent
            ));
        }
        match free_disk_mb(&self.cfg.dir) {
            Some(free) if free < self.cfg.min_free_disk_mb => Some(format!(
                "not enough free disk space for recordings ({free} MB free, {} MB required)",
                self.cfg.min_free_disk_mb
            )),
            Some(_) => None,
            None => Some("the recording directory's free space cannot be read".to_owned()),
        }
    }

    fn started(&self, rec: &RecordingRecord, plane: Arc<dyn MediaPlane>) {
        let dir = self.folder(&rec.id);
        let chat_file = match std::fs::create_dir_all(&dir) {
            Ok(()) if rec.record_chat => std::fs::File::create(dir.join("chat.jsonl"))
                .map_err(|e| tracing::error!(error = %e, "creating chat.jsonl failed"))
                .ok(),
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "creating a recording's folder failed");
                None
            }
        };
        let media = (rec.record_video || rec.record_audio).then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel(self.cfg.queue_packets.max(16));
            let (ctl, ctl_rx) = std::sync::mpsc::channel();
            let worker = media::RecThread::new(dir.clone(), rec.started_at);
            let thread = std::thread::Builder::new()
                .name(format!("rec-{}", rec.id))
                .spawn(move || worker.run(rx, ctl_rx))
                .map_err(|e| tracing::error!(error = %e, "starting a recording thread failed"))
                .ok();
            MediaSession {
                tx,
                ctl,
                thread,
                plane,
                dropped: Arc::default(),
            }
        });
        metrics::gauge!("meet_recordings_active").increment(1.0);
        metrics::counter!("meet_recordings_started_total").increment(1);
        let a = Active {
            row: rec.clone(),
            media,
            dir,
            timeline: Timeline {
                started_at: rec.started_at,
                pauses: Vec::new(),
            },
            participants: Vec::new(),
            tracks: Vec::new(),
            chat: Vec::new(),
            chat_file,
        };
        // A manifest from the start: what a crash leaves is described.
        let _ = write_json(&a.dir.join("manifest.json"), &Self::manifest(&a, None));
        lock(&self.active).insert(rec.meeting_id.clone(), a);
    }

    fn producer_added(&self, meeting: &MeetingId, p: &RecordedProducer) {
        let mut all = lock(&self.active);
        let Some(a) = all.get_mut(meeting) else {
            return;
        };
        let wanted = match p.kind.as_str() {
            "audio" => a.row.record_audio,
            _ => a.row.record_video,
        };
        if !a
            .participants
            .iter()
            .any(|x| x.participant_id == p.participant_id.as_str())
        {
            a.participants.push(ManifestParticipant {
                participant_id: p.participant_id.to_string(),
                user_id: p.user_id.to_string(),
                user_name: p.user_name.clone(),
            });
        }
        if !wanted || a.tracks.iter().any(|t| t.producer_id == p.producer_id) {
            return;
        }
        let track = u32::try_from(a.tracks.len() + 1).unwrap_or(u32::MAX);
        let file = format!("{track:02}-{}-{}.webm", p.source, p.kind);
        let offset = a.timeline.clamped_offset(now_ms());
        a.tracks.push(ManifestTrack {
            track,
            producer_id: p.producer_id.clone(),
            participant_id: p.participant_id.to_string(),
            user_id: p.user_id.to_string(),
            kind: p.kind.clone(),
            source: p.source.clone(),
            file: None,
            codec: None,
            start_offset_ms: offset,
            duration_ms: None,
            frames: None,
            width: None,
            height: None,
            note: None,
        });
        let _ = write_json(&a.dir.join("manifest.json"), &Self::manifest(a, None));
        let Some(m) = &a.media else { return };
        let need_keyframe = Arc::new(AtomicBool::new(false));
        let sink = RecordSink {
            track,
            tx: m.tx.clone(),
            need_keyframe: need_keyframe.clone(),
            dropped: m.dropped.clone(),
        };
        let (plane, ctl, router, producer) = (
            m.plane.clone(),
            m.ctl.clone(),
            meeting.to_string(),
            p.producer_id.clone(),
        );
        let total = self.dropped_total.clone();
        let dropped = m.dropped.clone();
        spawn(async move {
            let res = plane
                .call(&router, move |core, now| {
                    // The track is announced to the recording thread before its first packet can be queued (both
                    // happen on this media worker, in this order).
                    let r = core.start_recording(&producer, sink, now);
                    if let Ok(codec) = &r {
                        let _ = ctl.send(media::Ctl::AddTrack {
                            track,
                            codec: codec.clone(),
                            file,
                            need_keyframe,
                        });
                    }
                    r
                })
                .await;
            match res {
                Ok(Ok(codec)) => {
                    tracing::debug!(track, codec = %codec.mime_type, "recording a producer")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, track, "a producer to record is gone"),
                Err(e) => tracing::warn!(error = %e, track, "recording a producer failed"),
            }
            // Export this recording's drops into the node-wide counter until it ends.
            let mut seen = 0;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let now = dropped.load(Ordering::Relaxed);
                if now > seen {
                    let total = total.fetch_add(now - seen, Ordering::Relaxed) + now - seen;
                    metrics::counter!("meet_recording_dropped_packets_total").absolute(total);
                    seen = now;
                }
                if Arc::strong_count(&dropped) <= 1 {
                    return;
                }
            }
        });
    }

    fn paused(&self, meeting: &MeetingId, at: i64) {
        if let Some(a) = lock(&self.active).get_mut(meeting) {
            a.timeline.pauses.push((at, None));
            if let Some(m) = &a.media {
                let _ = m.ctl.send(media::Ctl::Pause(at));
            }
        }
    }

    fn resumed(&self, meeting: &MeetingId, at: i64) {
        if let Some(a) = lock(&self.active).get_mut(meeting) {
            if let Some(last) = a.timeline.pauses.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(at.max(last.0));
                }
            }
            if let Some(m) = &a.media {
                let _ = m.ctl.send(media::Ctl::Resume(at));
            }
        }
    }

    fn chat(&self, meeting: &MeetingId, msg: &ChatRecord) {
        if msg.recipient_type != store::RecipientType::All {
            return; // never private or hosts-only messages
        }
        let mut all = lock(&self.active);
        let Some(a) = all.get_mut(meeting) else {
            return;
        };
        if !a.row.record_chat {
            return;
        }
        let Some(offset) = a.timeline.offset(msg.created_at) else {
            return; // sent while paused
        };
        let line = ChatLine {
            id: msg.id.to_string(),
            offset_ms: offset,
            sender_id: msg.sender_id.to_string(),
            sender_name: msg.sender_name.clone(),
            message: msg.message.clone(),
            timestamp: proto::time::iso8601(msg.created_at),
        };
        if let Some(f) = a.chat_file.as_mut() {
            let mut row = serde_json::to_vec(&line).unwrap_or_default();
            row.push(b'\n');
            if let Err(e) = f.write_all(&row) {
                tracing::error!(error = %e, "appending to chat.jsonl failed");
            }
        }
        a.chat.push(line);
    }

    fn stopped(&self, rec: &RecordingRecord) {
        let Some(a) = lock(&self.active).remove(&rec.meeting_id) else {
            tracing::warn!(recording = %rec.id, "stopped a recording this node was not recording");
            return;
        };
        match self.me() {
            Some(me) => me.finalize(a, rec),
            None => tracing::error!(recording = %rec.id, "the recorder is gone"),
        }
    }

    fn max_duration_ms(&self) -> Option<u64> {
        (self.cfg.max_duration_secs > 0).then(|| self.cfg.max_duration_secs.saturating_mul(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_leaves_paused_spans_out() {
        let t = Timeline {
            started_at: 1000,
            pauses: vec![(7000, Some(10_000)), (12_000, None)],
        };
        assert_eq!(t.offset(999), None);
        assert_eq!(t.offset(1000), Some(0));
        assert_eq!(t.offset(6999), Some(5999));
        assert_eq!(t.offset(8000), None, "inside a pause");
        assert_eq!(t.offset(10_000), Some(6000));
        assert_eq!(t.offset(11_000), Some(7000));
        assert_eq!(t.offset(13_000), None, "paused still");
        assert_eq!(t.clamped_offset(8000), 6000);
        assert_eq!(t.clamped_offset(13_000), 8000);
    }

    #[test]
    fn vtt_cues_are_well_formed() {
        let line = |o: i64, m: &str| ChatLine {
            id: "msg_1".into(),
            offset_ms: o,
            sender_id: "u".into(),
            sender_name: "Ada".into(),
            message: m.into(),
            timestamp: String::new(),
        };
        let v = chat_vtt(&[line(1500, "hi --> there"), line(3_723_004, "bye")]);
        assert!(v.starts_with("WEBVTT\n\n1\n00:00:01.500 --> 00:00:06.500\n<v Ada>hi → there\n"));
        assert!(v.contains("2\n01:02:03.004 --> 01:02:08.004\n<v Ada>bye\n"));
    }
}
