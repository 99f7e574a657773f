//! The REST edge (axum): meetings, participants, chat history, roles, the guide's webrtc-config, health,
//! readiness, Prometheus metrics and, in development mode, token minting. Handlers parse, call the domain, and map
//! its coded errors to HTTP statuses in one place ([`ApiError`]).

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use meeting::request::{parse_meeting_id, parse_user_id};
use meeting::{Identity, MeetingService, NewMeeting};
use metrics_exporter_prometheus::PrometheusHandle;
use proto::{ErrorCode, MessageId, Role, WireError};
use serde::Deserialize;
use serde_json::Value;
use signaling::auth::{DevSigner, Verifier};
use socketioxide::SocketIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod recordings;

#[derive(Clone)]
pub struct ApiState {
    pub service: Arc<MeetingService>,
    pub verifier: Arc<Verifier>,
    pub io: SocketIo,
    pub prometheus: PrometheusHandle,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Development mode: `/dev/token` works (from loopback only), signing with the run's dev key.
    pub dev_signer: Option<Arc<DevSigner>>,
    /// False once shutdown has begun (readiness).
    pub ready: Arc<AtomicBool>,
    /// Test hooks (`POST /debug/media/drop`, loopback only); off by default (`MEET_MEDIA__DEBUG_HOOKS`).
    pub debug_hooks: bool,
    /// Where recordings' folders are (`MEET_RECORDING__DIR`).
    pub recordings_dir: std::path::PathBuf,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/meetings", post(create_meeting))
        .route("/api/meetings/{id}", get(get_meeting))
        .route("/api/meetings/{id}/end", post(end_meeting))
        .route("/api/meetings/{id}/participants", get(participants))
        .route("/api/meetings/{id}/messages", get(messages))
        .route("/api/meetings/{id}/roles/{user_id}", put(set_role))
        .route("/meeting/{id}/webrtc-config", get(webrtc_config))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/dev/token", post(dev_token))
        .route("/debug/media/drop", post(debug_media_drop))
        .merge(recordings::routes())
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .with_state(state)
}

/// A coded error as an HTTP response: `{error: {code, message}}` with the code's status.
pub struct ApiError(WireError);

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("meet_errors_total", "code" => self.0.code.as_str()).increment(1);
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = proto::rest::RestError {
            error: proto::rest::RestErrorBody {
                code: self.0.code,
                message: self.0.message,
            },
        };
        let mut res = (status, Json(body)).into_response();
        if self.0.code == ErrorCode::Unauthorized {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The caller, from `Authorization: Bearer <JWT>` (same rules as the socket handshake).
pub struct Caller(pub Identity);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: String| ApiError(WireError::new(ErrorCode::Unauthorized, m));
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "authentication required: send Authorization: Bearer <JWT>".into(),
            ));
        };
        let token = bearer(value).ok_or_else(|| {
            unauthorized("authentication required: send Authorization: Bearer <JWT>".into())
        })?;
        state
            .verifier
            .verify(token)
            .map(Caller)
            .map_err(|e| unauthorized(e.to_string()))
    }
}

/// JSON body parsing with a coded 400 instead of axum's plain-text rejection.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| ApiError(WireError::validation(e.to_string())));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError(WireError::validation(format!("invalid JSON body: {e}"))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    title: Option<String>,
    max_participants: Option<u32>,
    recording_enabled: Option<bool>,
    allow_self_unmute: Option<bool>,
    #[serde(default)]
    allowed_campuses: Vec<String>,
    #[serde(default)]
    invited_user_ids: Vec<String>,
}

async fn create_meeting(
    State(st): State<ApiState>,
    Caller(who): Caller,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: CreateBody = parse_body(&body)?;
    let rec = st
        .service
        .create_meeting(
            &who,
            NewMeeting {
                title: b.title,
                max_participants: b.max_participants,
                recording_enabled: b.recording_enabled,
                allow_self_unmute: b.allow_self_unmute,
                allowed_campuses: b.allowed_campuses,
                invited_user_ids: b.invited_user_ids,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(meeting::service_json::meeting(&rec)),
    )
        .into_response())
}

async fn get_meeting(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::MeetingView>> {
    let id = parse_meeting_id(&id)?;
    Ok(Json(st.service.meeting_view(&who, &id).await?))
}

async fn end_meeting(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::RestOk>> {
    let id = parse_meeting_id(&id)?;
    let out = st.service.end_meeting(&who, &id).await?;
    signaling::deliver(&st.io, None, &out).await;
    Ok(Json(proto::rest::RestOk { ok: true }))
}

async fn participants(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::ParticipantList>> {
    let id = parse_meeting_id(&id)?;
    Ok(Json(st.service.participants(&who, &id).await?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

async fn messages(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<proto::rest::MessagePage>> {
    let id = parse_meeting_id(&id)?;
    let limit = match q.limit.as_deref() {
        None | Some("") => 50,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError(WireError::validation(
                    "limit must be an integer from 1 to 100",
                ))
            })?,
    };
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(s) if s.len() <= 128 => Some(MessageId::new(s)),
        Some(_) => {
            return Err(ApiError(WireError::validation(
                "before must be a message id",
            )))
        }
    };
    Ok(Json(
        st.service
            .history(&who, &id, before.as_ref(), limit)
            .await?,
    ))
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn set_role(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path((id, user)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<proto::rest::RoleSet>> {
    let id = parse_meeting_id(&id)?;
    let user = parse_user_id(&user, "userId")?;
    let b: RoleBody = parse_body(&body)?;
    let role = match b.role.as_str() {
        "moderator" => Role::Moderator,
        "participant" => Role::Participant,
        _ => {
            return Err(ApiError(WireError::validation(
                "role must be one of: moderator, participant",
            )))
        }
    };
    let out = st.service.change_role(&who, &id, &user, role).await?;
    signaling::deliver(&st.io, None, &out).await;
    Ok(Json(proto::rest::RoleSet {
        ok: true,
        user_id: user,
        role,
    }))
}

async fn api_not_found() -> ApiError {
    ApiError(WireError::new(ErrorCode::NotFound, "no such endpoint"))
}

/// The token of an `Authorization: Bearer <JWT>` header value.
fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
}

/// The guide's path, fetched by its example client without a token: router capabilities are not secret, and
/// every id gets the same answer so the endpoint reveals nothing about which meetings exist.
/// `{rtpCapabilities}` for everyone (the guide's client sends no token); with `Authorization: Bearer <JWT>` also
/// the caller's `iceServers` (TURN credentials for that user) and `iceTransportPolicy` when relay is forced.
async fn webrtc_config(
    State(st): State<ApiState>,
    Path(_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut out = serde_json::json!({"rtpCapabilities": sfu::ortc::router_capabilities()});
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = bearer(value).unwrap_or_default();
        let who = st
            .verifier
            .verify(token)
            .map_err(|e| ApiError(WireError::new(ErrorCode::Unauthorized, e.to_string())))?;
        let now = u64::try_from(proto::time::now_ms() / 1000).unwrap_or(0);
        st.service
            .config()
            .ice
            .decorate(&mut out, who.user_id.as_str(), now);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DropBody {
    meeting_id: String,
    transport_id: String,
    ms: u64,
}

/// Test hook (only with `media.debug_hooks`, only from loopback): drops every packet of one transport, both
/// ways, for `ms` — a browser's network outage, for the ICE restart test. 404 when off.
async fn debug_media_drop(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError(WireError::new(ErrorCode::NotFound, "no such endpoint"));
    if !st.debug_hooks
        || !peer.ip().is_loopback()
        || PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
    {
        return Err(not_found());
    }
    let b: DropBody = parse_body(&body)?;
    if !(1..=120_000).contains(&b.ms) {
        return Err(ApiError(WireError::validation("ms must be 1..=120000")));
    }
    let meeting = parse_meeting_id(&b.meeting_id)?;
    if b.transport_id.is_empty() || b.transport_id.len() > 128 {
        return Err(ApiError(WireError::validation("transportId is malformed")));
    }
    let found = st
        .service
        .debug_drop_transport(&meeting, b.transport_id, b.ms)
        .await?;
    if !found {
        return Err(ApiError(WireError::new(
            ErrorCode::NotFound,
            "transport not found",
        )));
    }
    Ok(Json(serde_json::json!({"ok": true})))
}

async fn readyz(State(st): State<ApiState>) -> Response {
    if !st.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match st.service.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = &st.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError(WireError::new(
                ErrorCode::Unauthorized,
                "metrics need Authorization: Bearer <metrics token>",
            ))
            .into_response();
        }
    }
    metrics::gauge!("meet_meeting_states").set(st.service.meetings_held().await as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.prometheus.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevTokenBody {
    user_name: Option<String>,
    user_id: Option<String>,
    campus_id: Option<String>,
    email: Option<String>,
}

/// Headers a reverse proxy adds. A request carrying one came through a proxy, so its loopback TCP peer (the proxy)
/// says nothing about where it came from.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Development only, loopback only: a token for the bundled web client. 404 otherwise (it does not exist). The
/// caller is judged by the TCP peer address, never by headers; a proxied request is refused.
async fn dev_token(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<proto::rest::DevToken>> {
    let not_found = || ApiError(WireError::new(ErrorCode::NotFound, "no such endpoint"));
    let Some(signer) = &st.dev_signer else {
        return Err(not_found());
    };
    if !peer.ip().is_loopback() || PROXY_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return Err(not_found());
    }
    let b: DevTokenBody = parse_body(&body)?;
    // The same cleaning as a JWT's userName (bidi and control characters removed).
    let name = signaling::auth::clean_display_name(&b.user_name.unwrap_or_default());
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError(WireError::validation(
            "userName must be 1-64 characters",
        )));
    }
    let user_id = match b.user_id {
        Some(u) => parse_user_id(&u, "userId")?.to_string(),
        None => format!("user_{}", proto::ids::random_base62(10)),
    };
    let campus = b.campus_id.unwrap_or_else(|| "campus_dev".to_owned());
    if campus.is_empty() || campus.len() > 128 {
        return Err(ApiError(WireError::validation(
            "campusId must be 1-128 characters",
        )));
    }
    let token = signer
        .mint(&user_id, &name, &campus, b.email.as_deref().unwrap_or(""))
        .map_err(|e| {
            tracing::error!(error = %e, "minting dev token failed");
            ApiError(WireError::internal())
        })?;
    Ok(Json(proto::rest::DevToken {
        token,
        user_id: proto::UserId::new(user_id),
    }))
}
