//! Recordings over REST (issue 10): list a meeting's recordings, one recording with its files, download a file
//! (HTTP Range, so a browser can seek), delete (host). Visible to the meeting's host and moderators.

use crate::{ApiError, ApiResult, ApiState, Caller};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meeting::request::parse_meeting_id;
use proto::{ErrorCode, RecordingId, WireError};
use serde::Serialize;
use store::RecordingRecord;
use tower::ServiceExt;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/meetings/{id}/recordings", get(list))
        .route(
            "/api/meetings/{id}/recordings/{rid}",
            get(one).delete(delete),
        )
        .route(
            "/api/meetings/{id}/recordings/{rid}/files/{name}",
            get(download),
        )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordingView {
    recording_id: String,
    meeting_id: String,
    /// `recording` | `processing` | `ready` | `failed`
    status: &'static str,
    started_by: proto::events::UserRef,
    options: proto::events::RecordingOptions,
    started_at: String,
    stopped_at: Option<String>,
    duration_ms: Option<i64>,
    stop_reason: Option<String>,
    /// Why it failed, or why a ready recording lacks something (e.g. the composite).
    failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileView>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileView {
    name: String,
    size: u64,
    url: String,
}

fn view(r: &RecordingRecord) -> RecordingView {
    RecordingView {
        recording_id: r.id.to_string(),
        meeting_id: r.meeting_id.to_string(),
        status: r.status.as_str(),
        started_by: proto::events::UserRef {
            user_id: r.started_by.clone(),
            user_name: r.started_by_name.clone(),
        },
        options: proto::events::RecordingOptions {
            record_video: r.record_video,
            record_audio: r.record_audio,
            record_chat: r.record_chat,
        },
        started_at: proto::time::iso8601(r.started_at),
        stopped_at: r.stopped_at.map(proto::time::iso8601),
        duration_ms: r.duration_ms,
        stop_reason: r.stop_reason.clone(),
        failure_reason: r.failure_reason.clone(),
        files: None,
    }
}

fn parse_recording_id(s: &str) -> ApiResult<RecordingId> {
    let ok = s.len() <= 64
        && s.starts_with("rec_")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(ApiError(WireError::validation("invalid recording id")));
    }
    Ok(RecordingId::new(s))
}

/// A file name inside a recording's folder: no path separators, no dot files.
fn valid_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[derive(Serialize)]
struct List {
    recordings: Vec<RecordingView>,
}

async fn list(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<List>> {
    let id = parse_meeting_id(&id)?;
    let rows = st.service.recordings(&who, &id).await?;
    Ok(Json(List {
        recordings: rows.iter().map(view).collect(),
    }))
}

async fn one(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult<Json<RecordingView>> {
    let id = parse_meeting_id(&id)?;
    let rid = parse_recording_id(&rid)?;
    let r = st.service.recording(&who, &id, &rid).await?;
    let mut v = view(&r);
    let dir = st.recordings_dir.join(rid.as_str());
    let mut files = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || !valid_file_name(&name) || name.ends_with(".tmp") {
                continue;
            }
            files.push(FileView {
                url: format!("/api/meetings/{id}/recordings/{rid}/files/{name}"),
                name,
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    v.files = Some(files);
    Ok(Json(v))
}

async fn download(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path((id, rid, name)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let id = parse_meeting_id(&id)?;
    let rid = parse_recording_id(&rid)?;
    st.service.recording(&who, &id, &rid).await?;
    let not_found = || {
        ApiError(WireError::new(
            ErrorCode::NotFound,
            "no such file in this recording",
        ))
    };
    if !valid_file_name(&name) {
        return Err(not_found());
    }
    let path = st.recordings_dir.join(rid.as_str()).join(&name);
    if !path.is_file() {
        return Err(not_found());
    }
    // tower-http answers Range requests (206 with Content-Range) and sets Content-Type from the extension.
    let res = tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(|e| ApiError(WireError::new(ErrorCode::InternalError, e.to_string())))?;
    Ok(res.into_response())
}

async fn delete(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult<Json<proto::rest::RestOk>> {
    let id = parse_meeting_id(&id)?;
    let rid = parse_recording_id(&rid)?;
    st.service.delete_recording(&who, &id, &rid).await?;
    let dir = st.recordings_dir.join(rid.as_str());
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(error = %e, dir = %dir.display(), "removing a recording's folder failed");
        }
    }
    Ok(Json(proto::rest::RestOk { ok: true }))
}
