//! The REST edge (axum): meetings, participants, chat history, roles, the guide's webrtc-config, health,
//! readiness, Prometheus metrics and, in development mode, token minting. Handlers parse, call the domain, and map
//! its coded errors to HTTP statuses in one place ([`ApiError`]).
//!
//! Every route is documented: the OpenAPI 3.1 document (`GET /api/openapi.json`) is made by utoipa from the
//! `#[utoipa::path]` annotation on each handler, and the AsyncAPI 3.0 document of the Socket.IO events
//! (`GET /api/asyncapi.json`) from `proto`'s event tables; `GET /api/docs` renders both ([`docs`]).

pub mod docs;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use meeting::request::{parse_meeting_id, parse_user_id};
use meeting::{Identity, MeetingService, NewMeeting};
use metrics_exporter_prometheus::PrometheusHandle;
use proto::rest::{
    DevToken, MeetingView, MessagePage, ParticipantList, RestError, RestOk, RoleSet, WebRtcConfig,
};
use proto::{ErrorCode, MeetingId, MessageId, Role, WireError};
use serde::Deserialize;
use signaling::auth::{DevSigner, Verifier};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

mod recordings;

#[derive(Clone)]
pub struct ApiState {
    pub service: Arc<MeetingService>,
    pub verifier: Arc<Verifier>,
    /// Delivers what a REST call caused to the sockets (whatever the socket.io adapter: one node or a cluster).
    pub io: Arc<dyn signaling::Deliver>,
    pub prometheus: PrometheusHandle,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Development mode: `/dev/token` works (from loopback only), signing with the run's dev key.
    pub dev_signer: Option<Arc<DevSigner>>,
    /// False once shutdown has begun (readiness).
    pub ready: Arc<AtomicBool>,
    /// Cluster mode: whether the socket.io adapter's Redis link answers (readiness); `None` on a single node.
    pub pubsub_healthy: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Test hooks (`POST /debug/media/drop`, loopback only); off by default (`MEET_MEDIA__DEBUG_HOOKS`).
    pub debug_hooks: bool,
    /// Where recordings' folders are (`MEET_RECORDING__DIR`).
    pub recordings_dir: std::path::PathBuf,
}

/// The REST API's routes and their OpenAPI document, from one list.
///
/// **Adding a route:** write the handler, put a `#[utoipa::path(method, path = "…", tag = "…", responses(…))]`
/// annotation on it (copy a neighbour's: the body types, `security(("bearer" = []))` when it needs a token, every
/// error status with its codes; a development-only route gets `tag = "development"` and
/// `extensions(("x-dev-only" = json!(true)))`), and register it here with `.routes(routes!(handler))` — never with
/// axum's `.route(…)`: the test `every_route_is_documented` reads this crate's sources and fails on a route that
/// is not in the document.
pub fn api_routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_meeting))
        .routes(routes!(get_meeting))
        .routes(routes!(end_meeting))
        .routes(routes!(participants))
        .routes(routes!(messages))
        .routes(routes!(set_role))
        .routes(routes!(webrtc_config))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(dev_token))
        .routes(routes!(debug_media_drop))
        .routes(routes!(debug_media_cap))
        .routes(routes!(debug_media_temporal))
        .routes(routes!(recordings::list))
        .routes(routes!(recordings::one))
        .routes(routes!(recordings::delete))
        .routes(routes!(recordings::download))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::asyncapi_json))
        .routes(routes!(docs::viewer))
        .split_for_parts();
    add_internal_error(&mut doc);
    (routes, doc)
}

/// Every operation that answers coded errors can also answer 500 `INTERNAL_ERROR` (a server fault, logged).
fn add_internal_error(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let internal = ResponseBuilder::new()
        .description("`INTERNAL_ERROR`: a server fault (logged).")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("RestError")))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let coded = op.responses.responses.values().any(|r| {
                let RefOr::T(r) = r else { return false };
                r.content.values().any(|c| {
                    matches!(c, RefOr::T(c) if matches!(&c.schema,
                        Some(RefOr::Ref(x)) if x.ref_location.ends_with("/RestError")))
                })
            });
            if coded {
                op.responses
                    .responses
                    .entry("500".into())
                    .or_insert_with(|| RefOr::T(internal.clone()));
            }
        }
    }
}

pub fn router(state: ApiState) -> Router {
    let (routes, openapi) = api_routes();
    routes
        // Not an endpoint: every other `/api/…` path answers a coded 404 instead of falling through to the web client.
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .layer(axum::Extension(std::sync::Arc::new(docs::Documents::new(
            &openapi,
        ))))
        .with_state(state)
}

/// The document's frame: info, tags and the security schemes ([`SecuritySchemes`]); the paths come from the
/// handlers' annotations ([`api_routes`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "meet-server REST API",
        description = "Meetings, participants, chat history, roles, the guide's webrtc-config, health and metrics. \
                       Errors are `{error: {code, message}}` (RestError) with the code's HTTP status. The real-time \
                       API (Socket.IO) is described by the AsyncAPI document at /api/asyncapi.json; both are rendered \
                       at /api/docs. Behaviour is explained in docs/protocol.md."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "meetings", description = "Meetings and what is in them (Bearer JWT)."),
        (name = "media", description = "What a WebRTC client needs before it joins."),
        (name = "operations", description = "Health, readiness and Prometheus metrics."),
        (name = "docs", description = "These documents and their viewer."),
        (name = "development", description = "Development and test only: 404 unless enabled, loopback peers only."),
    )
)]
pub struct ApiDoc;

/// `bearer`: the JWT as `Authorization: Bearer <JWT>` (the same token and rules as the socket handshake);
/// `metricsToken`: the operator's `metrics.token`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        jwt.description = Some(
            "A JWT (claims `user_id`, `campus_id`, `userName`, `email`, `exp`), signed with the configured algorithm."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(jwt));
        let mut metrics = Http::new(HttpAuthScheme::Bearer);
        metrics.description =
            Some("The operator's `metrics.token`, when one is configured.".into());
        components.add_security_scheme("metricsToken", SecurityScheme::Http(metrics));
    }
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

/// `POST /api/meetings`. Every field is optional; an empty body is `{}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateMeeting)]
struct CreateBody {
    title: Option<String>,
    /// 1–10000; default 100.
    #[schema(minimum = 1, maximum = 10000)]
    max_participants: Option<u32>,
    /// Default false.
    recording_enabled: Option<bool>,
    /// Default true.
    allow_self_unmute: Option<bool>,
    /// Campuses besides the creator's whose users may join.
    #[serde(default)]
    allowed_campuses: Vec<String>,
    /// Users who may join from any campus.
    #[serde(default)]
    invited_user_ids: Vec<String>,
}

/// Create a meeting; the caller is its host.
#[utoipa::path(post, path = "/api/meetings", tag = "meetings",
    request_body(content = Option<CreateBody>, description = "Optional: an empty body is `{}`."),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new meeting.", body = MeetingView),
        (status = 400, description = "`VALIDATION_ERROR`: malformed body or a field out of range.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
    ))]
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

/// A meeting, with its live `participantCount`.
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings",
    params(("id" = String, Path, description = "The meeting id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The meeting with `participantCount`.", body = MeetingView),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED`: not of its campus, an allowed campus, or invited.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
    ))]
async fn get_meeting(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::MeetingView>> {
    let id = parse_meeting_id(&id)?;
    Ok(Json(st.service.meeting_view(&who, &id).await?))
}

/// End a meeting (host only); everyone in it gets `meeting:ended`.
#[utoipa::path(post, path = "/api/meetings/{id}/end", tag = "meetings",
    params(("id" = String, Path, description = "The meeting id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Ended.", body = RestOk),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED` (no access) or `FORBIDDEN` (not the host).", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
        (status = 409, description = "`MEETING_ENDED`: already ended.", body = RestError),
    ))]
async fn end_meeting(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::RestOk>> {
    let id = parse_meeting_id(&id)?;
    let out = st.service.end_meeting(&who, &id).await?;
    st.io.deliver(&out).await;
    Ok(Json(proto::rest::RestOk { ok: true }))
}

/// Who is in a meeting now.
#[utoipa::path(get, path = "/api/meetings/{id}/participants", tag = "meetings",
    params(("id" = String, Path, description = "The meeting id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live participants.", body = ParticipantList),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED`.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
    ))]
async fn participants(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<proto::rest::ParticipantList>> {
    let id = parse_meeting_id(&id)?;
    Ok(Json(st.service.participants(&who, &id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// A message id: only messages older than it (the previous page's `nextBefore`).
    before: Option<String>,
    /// 1–100; default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// Chat history, oldest first: only the messages the caller may see.
#[utoipa::path(get, path = "/api/meetings/{id}/messages", tag = "meetings",
    params(("id" = String, Path, description = "The meeting id."), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page, oldest first; `nextBefore` pages further back.", body = MessagePage),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id, `before` or `limit`.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED`.", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
    ))]
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

/// `PUT /api/meetings/{id}/roles/{userId}`.
#[derive(Deserialize, ToSchema)]
#[schema(as = SetRole)]
struct RoleBody {
    #[schema(value_type = proto::events::GrantableRole)]
    role: String,
}

/// Grant or take back the moderator role (host only); participants in the meeting get `participant:role-changed`.
#[utoipa::path(put, path = "/api/meetings/{id}/roles/{userId}", tag = "meetings",
    params(("id" = String, Path, description = "The meeting id."), ("userId" = String, Path, description = "The user whose role changes.")),
    request_body = RoleBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new role.", body = RoleSet),
        (status = 400, description = "`VALIDATION_ERROR`: malformed id, user id or role.", body = RestError),
        (status = 401, description = "`UNAUTHORIZED`: missing or invalid bearer token.", body = RestError),
        (status = 403, description = "`ACCESS_DENIED`, or `FORBIDDEN` (not the host; or the target is the host).", body = RestError),
        (status = 404, description = "`MEETING_NOT_FOUND`.", body = RestError),
    ))]
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
    st.io.deliver(&out).await;
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
#[utoipa::path(get, path = "/meeting/{id}/webrtc-config", tag = "media",
    params(("id" = String, Path, description = "Any meeting id: every id gets the same answer.")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "`rtpCapabilities`; with a token also `iceServers` / `iceTransportPolicy` when configured.", body = WebRtcConfig),
        (status = 401, description = "`UNAUTHORIZED`: a token was sent and is invalid.", body = RestError),
    ))]
async fn webrtc_config(
    State(st): State<ApiState>,
    Path(_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<WebRtcConfig>> {
    let mut out = WebRtcConfig {
        rtp_capabilities: serde_json::to_value(sfu::ortc::router_capabilities()).map_err(|e| {
            tracing::error!(error = %e, "serializing the router's capabilities");
            ApiError(WireError::internal())
        })?,
        ice_servers: None,
        ice_transport_policy: None,
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = bearer(value).unwrap_or_default();
        let who = st
            .verifier
            .verify(token)
            .map_err(|e| ApiError(WireError::new(ErrorCode::Unauthorized, e.to_string())))?;
        let now = u64::try_from(proto::time::now_ms() / 1000).unwrap_or(0);
        let ice = &st.service.config().ice;
        if let Some(servers) = ice.ice_servers(who.user_id.as_str(), now) {
            out.ice_servers = Some(serde_json::from_value(servers).map_err(|e| {
                tracing::error!(error = %e, "iceServers do not fit the IceServer struct");
                ApiError(WireError::internal())
            })?);
        }
        if ice.force_relay {
            out.ice_transport_policy = Some("relay".to_owned());
        }
    }
    Ok(Json(out))
}

/// `POST /debug/media/drop`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = MediaDrop)]
struct DropBody {
    meeting_id: String,
    transport_id: String,
    #[schema(minimum = 1, maximum = 120000)]
    ms: u64,
}

/// `POST /debug/media/cap` without `queueMs`: the media shell's default (`media::DEFAULT_CAP_QUEUE`).
const DEFAULT_CAP_QUEUE_MS: u64 = 150;

/// `POST /debug/media/cap`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = MediaCap)]
struct CapBody {
    meeting_id: String,
    transport_id: String,
    #[schema(minimum = 1, maximum = 1000000)]
    kbps: u64,
    /// How long a packet may wait behind the cap before it is dropped instead (a bottleneck's buffer); 150 when
    /// absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5000)]
    queue_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 120000)]
    ms: u64,
}

/// Test hook (only with `media.debug_hooks`, only from loopback): drops every packet of one transport, both
/// ways, for `ms` — a browser's network outage, for the ICE restart test. 404 when off.
#[utoipa::path(post, path = "/debug/media/drop", tag = "development",
    extensions(("x-dev-only" = json!(true))),
    request_body = DropBody,
    responses(
        (status = 200, description = "The transport drops its packets for `ms`.", body = RestOk),
        (status = 400, description = "`VALIDATION_ERROR`.", body = RestError),
        (status = 404, description = "`NOT_FOUND`: hooks off, not a loopback peer, or no such transport.", body = RestError),
    ))]
async fn debug_media_drop(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<RestOk>> {
    debug_hook_allowed(&st, peer, &headers)?;
    let b: DropBody = parse_body(&body)?;
    let meeting = debug_target(&b.meeting_id, &b.transport_id, b.ms)?;
    let found = st
        .service
        .debug_drop_transport(&meeting, b.transport_id, b.ms)
        .await?;
    transport_found(found)
}

/// Test hook (only with `media.debug_hooks`, only from loopback): caps what the media shell sends to one
/// transport's peer at `kbps` for `ms` (a downlink bottleneck: excess waits up to `queueMs`, 150 by default, then is
/// dropped).
#[utoipa::path(post, path = "/debug/media/cap", tag = "development",
    extensions(("x-dev-only" = json!(true))),
    request_body = CapBody,
    responses(
        (status = 200, description = "The transport's outgoing packets are capped for `ms`.", body = RestOk),
        (status = 400, description = "`VALIDATION_ERROR`.", body = RestError),
        (status = 404, description = "`NOT_FOUND`: hooks off, not a loopback peer, or no such transport.", body = RestError),
    ))]
async fn debug_media_cap(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<RestOk>> {
    debug_hook_allowed(&st, peer, &headers)?;
    let b: CapBody = parse_body(&body)?;
    let meeting = debug_target(&b.meeting_id, &b.transport_id, b.ms)?;
    if !(1..=1_000_000).contains(&b.kbps) {
        return Err(ApiError(WireError::validation("kbps must be 1..=1000000")));
    }
    let queue_ms = b.queue_ms.unwrap_or(DEFAULT_CAP_QUEUE_MS);
    if !(1..=5_000).contains(&queue_ms) {
        return Err(ApiError(WireError::validation("queueMs must be 1..=5000")));
    }
    let found = st
        .service
        .debug_cap_transport(&meeting, b.transport_id, b.kbps, queue_ms, b.ms)
        .await?;
    transport_found(found)
}

/// `POST /debug/media/temporal`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = MediaTemporal)]
struct TemporalBody {
    meeting_id: String,
    consumer_id: String,
    #[schema(minimum = 0, maximum = 3)]
    temporal_layer: u8,
}

/// Test hook (only with `media.debug_hooks`, only from loopback): the highest temporal layer one consumer gets
/// (VP8/VP9 temporal layers; what the bandwidth allocator does when even the lowest spatial layer does not fit).
#[utoipa::path(post, path = "/debug/media/temporal", tag = "development",
    extensions(("x-dev-only" = json!(true))),
    request_body = TemporalBody,
    responses(
        (status = 200, description = "The consumer's temporal layer is capped.", body = RestOk),
        (status = 400, description = "`VALIDATION_ERROR`.", body = RestError),
        (status = 404, description = "`NOT_FOUND`: hooks off, not a loopback peer, or no such consumer.", body = RestError),
    ))]
async fn debug_media_temporal(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<RestOk>> {
    debug_hook_allowed(&st, peer, &headers)?;
    let b: TemporalBody = parse_body(&body)?;
    let meeting = parse_meeting_id(&b.meeting_id)?;
    if b.consumer_id.is_empty() || b.consumer_id.len() > 128 || b.temporal_layer > 3 {
        return Err(ApiError(WireError::validation(
            "consumerId is malformed or temporalLayer is not 0..=3",
        )));
    }
    let found = st
        .service
        .debug_temporal_layer(&meeting, b.consumer_id, b.temporal_layer)
        .await?;
    if !found {
        return Err(ApiError(WireError::new(
            ErrorCode::NotFound,
            "consumer not found",
        )));
    }
    Ok(Json(RestOk { ok: true }))
}

/// The media test hooks answer only with `media.debug_hooks` on, to a loopback peer, with no proxy headers; to
/// anyone else they do not exist (404).
fn debug_hook_allowed(st: &ApiState, peer: SocketAddr, headers: &HeaderMap) -> ApiResult<()> {
    if !st.debug_hooks
        || !peer.ip().is_loopback()
        || PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
    {
        return Err(ApiError(WireError::new(
            ErrorCode::NotFound,
            "no such endpoint",
        )));
    }
    Ok(())
}

/// A media test hook's target and duration, checked.
fn debug_target(meeting_id: &str, transport_id: &str, ms: u64) -> ApiResult<MeetingId> {
    if !(1..=120_000).contains(&ms) {
        return Err(ApiError(WireError::validation("ms must be 1..=120000")));
    }
    let meeting = parse_meeting_id(meeting_id)?;
    if transport_id.is_empty() || transport_id.len() > 128 {
        return Err(ApiError(WireError::validation("transportId is malformed")));
    }
    Ok(meeting)
}

fn transport_found(found: bool) -> ApiResult<Json<RestOk>> {
    if !found {
        return Err(ApiError(WireError::new(
            ErrorCode::NotFound,
            "transport not found",
        )));
    }
    Ok(Json(RestOk { ok: true }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: not shutting down and the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`ok`", body = String, content_type = "text/plain"),
        (status = 503, description = "`shutting down`, `database unavailable` or `shared state unavailable` (cluster mode: Redis)", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(st): State<ApiState>) -> Response {
    if !st.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if let Err(e) = st.service.store().ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
    }
    if st.pubsub_healthy.as_ref().is_some_and(|ok| !ok()) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shared state unavailable").into_response();
    }
    if let Err(e) = st.service.shared_state_ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "shared state unavailable").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metricsToken" = [])),
    responses(
        (status = 200, description = "Prometheus text.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`UNAUTHORIZED`: a metrics token is configured and was not sent.", body = RestError),
    ))]
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

/// `POST /dev/token`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DevTokenRequest)]
struct DevTokenBody {
    /// 1–64 characters (control and bidi characters removed).
    user_name: Option<String>,
    /// Default: a random `user_…`.
    user_id: Option<String>,
    /// Default `campus_dev`.
    campus_id: Option<String>,
    email: Option<String>,
}

/// Headers a reverse proxy adds. A request carrying one came through a proxy, so its loopback TCP peer (the proxy)
/// says nothing about where it came from.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Development only, loopback only: a token for the bundled web client. 404 otherwise (it does not exist). The
/// caller is judged by the TCP peer address, never by headers; a proxied request is refused.
#[utoipa::path(post, path = "/dev/token", tag = "development",
    extensions(("x-dev-only" = json!(true))),
    request_body = DevTokenBody,
    responses(
        (status = 200, description = "A token (12 h) signed with the run's dev key.", body = DevToken),
        (status = 400, description = "`VALIDATION_ERROR`.", body = RestError),
        (status = 404, description = "`NOT_FOUND`: not in development mode, not a loopback peer, or proxied.", body = RestError),
    ))]
async fn dev_token(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<DevToken>> {
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
