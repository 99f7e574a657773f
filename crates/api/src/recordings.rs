//! Recordings over REST (issue 10): list a meeting's recordings, one recording with its files, download a file
//! (HTTP Range, so a browser can seek), delete (host). Visible to the meeting's host and moderators.

use crate::{ApiError, ApiResult, ApiState, Caller};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meeting::request::parse_meeting_id;
use proto::rest::{RestError, RestOk};
use proto::{ErrorCode, RecordingId, WireError};
use serde::Serialize;
use store::RecordingRecord;
use tower::ServiceExt;
use utoipa::ToSchema;

/// A recording's metadata (`files` only on the single-recording route).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordingView {
    recording_id: String,
    meeting_id: String,
    /// `recording` | `processing` | `ready` | `failed`
    status: String,
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

/// One file of a recording (per-track WebM, `manifest.json`, the chat transcript, the composite).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileView {
    name: String,
    size: u64,
    url: String,
}

fn view(r: &RecordingRecord) -> RecordingView {
    RecordingView {
        recording_id: r.id.to_string(),
        meeting_id: r.meeting_id.to_string(),
        status: r.status.as_str().to_owned(),
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

/// A meeting's recordings, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = RecordingList)]
pub(crate) struct List {
    recordings: Vec<RecordingView>,
}

/// A meeting's recordings (its host and moderators).
#[utoipa::path(get, path = "/api/meetings/{id}/recordings", tag = "recordings",
    params(("id" = String, Path, description = "The meeting id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The meeting's recordings.", body = List),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED` / `FORBIDDEN`: not the meeting's host or a moderator.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
    ))]
pub(crate) async fn list(
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

/// One recording with its files (its meeting's host and moderators).
#[utoipa::path(get, path = "/api/meetings/{id}/recordings/{rid}", tag = "recordings",
    params(("id" = String, Path, description = "The meeting id."),
           ("rid" = String, Path, description = "The recording id (`rec_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording and its files.", body = RecordingView),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED` / `FORBIDDEN`: not the meeting's host or a moderator.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND` / `NOT_FOUND`: no such recording in this meeting.", body = RestError),
    ))]
pub(crate) async fn one(
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

/// Downloads one file of a recording; honours HTTP `Range` (206 with `Content-Range`), so a browser can seek.
#[utoipa::path(get, path = "/api/meetings/{id}/recordings/{rid}/files/{name}", tag = "recordings",
    params(("id" = String, Path, description = "The meeting id."),
           ("rid" = String, Path, description = "The recording id (`rec_…`)."),
           ("name" = String, Path, description = "A file name as listed in the recording's `files`."),
           ("Range" = Option<String>, Header, description = "Optional byte range, e.g. `bytes=0-1023`.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole file.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range (an unsatisfiable range gets 416 with no body).", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED` / `FORBIDDEN`: not the meeting's host or a moderator.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND` / `NOT_FOUND`: no such recording or file.", body = RestError),
    ))]
pub(crate) async fn download(
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

/// Deletes a finished recording and its files (the meeting's host only).
#[utoipa::path(delete, path = "/api/meetings/{id}/recordings/{rid}", tag = "recordings",
    params(("id" = String, Path, description = "The meeting id."),
           ("rid" = String, Path, description = "The recording id (`rec_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted.", body = RestOk),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED` / `FORBIDDEN`: not the meeting's host.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND` / `NOT_FOUND`: no such recording in this meeting.", body = RestError),
        (status = 409, description = "`RECORDING_ACTIVE`: still being recorded or processed.", body = RestError),
    ))]
pub(crate) async fn delete(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult<Json<RestOk>> {
    let id = parse_meeting_id(&id)?;
    let rid = parse_recording_id(&rid)?;
    st.service.delete_recording(&who, &id, &rid).await?;
    let dir = st.recordings_dir.join(rid.as_str());
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(error = %e, dir = %dir.display(), "removing a recording's folder failed");
        }
    }
    Ok(Json(RestOk { ok: true }))
}
