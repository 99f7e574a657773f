//! Recording rows (issue 10): what was recorded, by whom, and where its processing stands
//! (`recording` → `processing` → `ready` | `failed`).

use crate::{Result, Store, StoreError};
use proto::{MeetingId, RecordingId, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Where a recording stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingStatus {
    /// Media is being written.
    Recording,
    /// Stopped; files are being finalized and the composite made.
    Processing,
    Ready,
    Failed,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Processing => "processing",
            RecordingStatus::Ready => "ready",
            RecordingStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "recording" => Some(RecordingStatus::Recording),
            "processing" => Some(RecordingStatus::Processing),
            "ready" => Some(RecordingStatus::Ready),
            "failed" => Some(RecordingStatus::Failed),
            _ => None,
        }
    }
}

/// One recording as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingRecord {
    pub id: RecordingId,
    pub meeting_id: MeetingId,
    pub status: RecordingStatus,
    pub started_by: UserId,
    pub started_by_name: String,
    pub record_video: bool,
    pub record_audio: bool,
    pub record_chat: bool,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// Recorded time, paused spans left out.
    pub duration_ms: Option<i64>,
    /// `stopped`, `meeting-ended`, `empty`, `max-duration`, `server-restart`.
    pub stop_reason: Option<String>,
    /// Why it failed, or why a ready recording has no composite.
    pub failure_reason: Option<String>,
}

const COLUMNS: &str = "id, meeting_id, status, started_by, started_by_name, record_video, record_audio, \
                       record_chat, started_at, stopped_at, duration_ms, stop_reason, failure_reason";

fn from_row(r: &AnyRow) -> Result<RecordingRecord> {
    let status: String = r.try_get("status")?;
    let flag = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(RecordingRecord {
        id: RecordingId::new(r.try_get::<String, _>("id")?),
        meeting_id: MeetingId::new(r.try_get::<String, _>("meeting_id")?),
        status: RecordingStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("recording status {status:?}")))?,
        started_by: UserId::new(r.try_get::<String, _>("started_by")?),
        started_by_name: r.try_get("started_by_name")?,
        record_video: flag("record_video")?,
        record_audio: flag("record_audio")?,
        record_chat: flag("record_chat")?,
        started_at: r.try_get("started_at")?,
        stopped_at: r.try_get("stopped_at")?,
        duration_ms: r.try_get("duration_ms")?,
        stop_reason: r.try_get("stop_reason")?,
        failure_reason: r.try_get("failure_reason")?,
    })
}

impl Store {
    pub async fn insert_recording(&self, rec: &RecordingRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO recordings (id, meeting_id, status, started_by, started_by_name, record_video, \
             record_audio, record_chat, started_at, stopped_at, duration_ms, stop_reason, failure_reason, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $9)",
        )
        .bind(rec.id.as_str())
        .bind(rec.meeting_id.as_str())
        .bind(rec.status.as_str())
        .bind(rec.started_by.as_str())
        .bind(&rec.started_by_name)
        .bind(i64::from(rec.record_video))
        .bind(i64::from(rec.record_audio))
        .bind(i64::from(rec.record_chat))
        .bind(rec.started_at)
        .bind(rec.stopped_at)
        .bind(rec.duration_ms)
        .bind(&rec.stop_reason)
        .bind(&rec.failure_reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_recording(&self, id: &RecordingId) -> Result<Option<RecordingRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// A meeting's recordings, oldest first.
    pub async fn recordings_of(&self, meeting: &MeetingId) -> Result<Vec<RecordingRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE meeting_id = $1 ORDER BY started_at, id"
        ))
        .bind(meeting.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Recordings still `recording` or `processing` (left so by a crash, when read at start-up).
    pub async fn unfinished_recordings(&self) -> Result<Vec<RecordingRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE status IN ('recording', 'processing') ORDER BY started_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// `recording` → `processing` with when and why it stopped; false when it was not `recording`.
    pub async fn stop_recording(
        &self,
        id: &RecordingId,
        at: i64,
        duration_ms: i64,
        reason: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recordings SET status = 'processing', stopped_at = $1, duration_ms = $2, stop_reason = $3, \
             updated_at = $1 WHERE id = $4 AND status = 'recording'",
        )
        .bind(at)
        .bind(duration_ms)
        .bind(reason)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets the status (and the failure reason, or clears it).
    pub async fn set_recording_status(
        &self,
        id: &RecordingId,
        status: RecordingStatus,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recordings SET status = $1, failure_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a recording's row; false when there was none.
    pub async fn delete_recording(&self, id: &RecordingId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
