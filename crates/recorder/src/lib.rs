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

use meeting::{MediaPlane, RecordedProducer, RecordingSink};
use proto::{MeetingId, RecordingId};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
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
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/recordings"),
            max_concurrent: 8,
            min_free_disk_mb: 1024,
            max_duration_secs: 4 * 3600,
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
    /// When it starts on the recording's timeline (ms).
    pub start_offset_ms: i64,
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

struct Active {
    row: RecordingRecord,
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
        Arc::new(Self {
            cfg,
            store,
            active: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &RecorderConfig {
        &self.cfg
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
            let last = last_write_ms(&dir).unwrap_or(row.started_at).max(row.started_at);
            if row.status == RecordingStatus::Recording {
                let _ = self
                    .store
                    .stop_recording(&row.id, last, last - row.started_at, "server-restart")
                    .await;
            }
            let (status, reason) = if dir.is_dir() {
                let manifest = dir.join("manifest.json");
                if !manifest.exists() {
                    let m = Manifest {
                        recording_id: row.id.to_string(),
                        meeting_id: row.meeting_id.to_string(),
                        started_at: proto::time::iso8601(row.started_at),
                        stopped_at: Some(proto::time::iso8601(last)),
                        duration_ms: last - row.started_at,
                        options: options_of(&row),
                        participants: Vec::new(),
                        tracks: Vec::new(),
                        paused_spans: Vec::new(),
                        chat: None,
                    };
                    let _ = write_json(&manifest, &m);
                }
                (
                    RecordingStatus::Ready,
                    Some("finalized at start-up after the server stopped during the recording".to_owned()),
                )
            } else {
                (
                    RecordingStatus::Failed,
                    Some("the server stopped during the recording and its folder is missing".to_owned()),
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

    fn finalize(&self, a: Active, stopped: &RecordingRecord) {
        let stopped_at = stopped.stopped_at.unwrap_or_else(now_ms);
        let mut timeline = a.timeline.clone();
        if let Some(last) = timeline.pauses.last_mut() {
            if last.1.is_none() {
                last.1 = Some(stopped_at);
            }
        }
        let chat = if a.row.record_chat {
            let vtt = chat_vtt(&a.chat);
            if let Err(e) = std::fs::write(a.dir.join("chat.vtt"), vtt) {
                tracing::error!(error = %e, "writing chat.vtt failed");
            }
            Some(ChatFiles {
                jsonl: "chat.jsonl".to_owned(),
                vtt: "chat.vtt".to_owned(),
                messages: a.chat.len(),
            })
        } else {
            None
        };
        let manifest = Manifest {
            recording_id: a.row.id.to_string(),
            meeting_id: a.row.meeting_id.to_string(),
            started_at: proto::time::iso8601(a.row.started_at),
            stopped_at: Some(proto::time::iso8601(stopped_at)),
            duration_ms: stopped.duration_ms.unwrap_or(0),
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
            chat,
        };
        let res = write_json(&a.dir.join("manifest.json"), &manifest);
        match res {
            Ok(()) => {
                // No per-track media is written by this build: say so instead of pretending a composite exists.
                let reason = (a.row.record_video || a.row.record_audio).then(|| {
                    "media tracks are not recorded by this server yet; the chat transcript and manifest are ready"
                        .to_owned()
                });
                self.set_status(&a.row.id, RecordingStatus::Ready, reason);
            }
            Err(e) => {
                tracing::error!(error = %e, recording = %a.row.id, "writing the manifest failed");
                self.set_status(
                    &a.row.id,
                    RecordingStatus::Failed,
                    Some(format!("writing the manifest failed: {e}")),
                );
            }
        }
        metrics::gauge!("meet_recordings_active").decrement(1.0);
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

    fn started(&self, rec: &RecordingRecord, _media: Arc<dyn MediaPlane>) {
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
        metrics::gauge!("meet_recordings_active").increment(1.0);
        metrics::counter!("meet_recordings_started_total").increment(1);
        lock(&self.active).insert(
            rec.meeting_id.clone(),
            Active {
                row: rec.clone(),
                dir,
                timeline: Timeline {
                    started_at: rec.started_at,
                    pauses: Vec::new(),
                },
                participants: Vec::new(),
                tracks: Vec::new(),
                chat: Vec::new(),
                chat_file,
            },
        );
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
        let offset = a.timeline.clamped_offset(now_ms());
        a.tracks.push(ManifestTrack {
            producer_id: p.producer_id.clone(),
            participant_id: p.participant_id.to_string(),
            user_id: p.user_id.to_string(),
            kind: p.kind.clone(),
            source: p.source.clone(),
            file: None,
            codec: None,
            start_offset_ms: offset,
        });
    }

    fn paused(&self, meeting: &MeetingId, at: i64) {
        if let Some(a) = lock(&self.active).get_mut(meeting) {
            a.timeline.pauses.push((at, None));
        }
    }

    fn resumed(&self, meeting: &MeetingId, at: i64) {
        if let Some(a) = lock(&self.active).get_mut(meeting) {
            if let Some(last) = a.timeline.pauses.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(at.max(last.0));
                }
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
        self.finalize(a, rec);
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
