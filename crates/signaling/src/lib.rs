//! The Socket.IO edge: JWT handshake, one ordered request queue per socket, payload parsing, and delivery of the
//! domain's outcomes to socket.io rooms.
//!
//! Why a queue: socketioxide runs every event handler in its own task, so two requests of one socket could finish
//! out of order, while the guide's client matches replies to requests by order (`socket.once`). Handlers here do
//! no work: a plain (non-async) closure puts the request on the socket's queue while socketioxide is still reading
//! the packet (extractors and the closure run before its `tokio::spawn`), and one task per socket works through it.
//!
//! Token expiry lives in that task too: at the token's `exp` the socket is told `auth:expired`, and unless an
//! `auth:refresh` (handled in order, like any request) brings a fresh token of the same user within the grace
//! period, the socket is disconnected (its meeting sees an ordinary disconnect).

pub mod auth;
pub mod cluster;
pub mod cluster_driver;

use auth::{AuthError, Verified, Verifier};
use meeting::{rooms, MeetingService, Outcome, Request, RoomChange, Session, Target};
use proto::{ErrorCode, WireError};
use serde_json::Value;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Requests a socket may have waiting before further ones are refused: at most this many…
const MAX_PENDING: usize = 256;
/// …holding at most this many payload bytes (a client flooding 64 KB payloads while its queue is busy must not
/// make the server hold 16 MB for it).
const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// What one socket has waiting in its queue, bounded in count and in bytes.
#[derive(Debug, Default)]
struct Backlog {
    count: AtomicUsize,
    bytes: AtomicUsize,
}

impl Backlog {
    /// Counts a request of `size` bytes in, unless the queue is full.
    fn admit(&self, size: usize) -> bool {
        let count = self.count.fetch_add(1, Ordering::AcqRel);
        let bytes = self.bytes.fetch_add(size, Ordering::AcqRel);
        if count >= MAX_PENDING || bytes.saturating_add(size) > MAX_PENDING_BYTES {
            self.release(size);
            return false;
        }
        true
    }

    /// A request left the queue.
    fn release(&self, size: usize) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(size, Ordering::AcqRel);
    }
}

/// About the size of a payload as JSON text (strings and numbers by their length, a few bytes per node), without
/// serializing it.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approx_size(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + approx_size(x))
                .sum::<usize>()
        }
    }
}

/// What every socket handler shares.
#[derive(Clone)]
pub struct Shared {
    pub service: Arc<MeetingService>,
    pub verifier: Arc<Verifier>,
    /// Live per-socket worker tasks (graceful shutdown waits for them to finish their writes).
    workers: Arc<AtomicUsize>,
    /// Cluster mode: the presence lock spans the nodes (see `lock_presence`).
    leases: Option<cluster::PresenceLeases>,
}

/// Socket.io limits, set explicitly (socketioxide's defaults differ between polling and websocket).
#[derive(Clone, Debug)]
pub struct SocketLimits {
    pub max_payload_bytes: u64,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

/// tungstenite's per-websocket read buffer (see `build`).
pub const WS_READ_BUFFER_BYTES: usize = 1024;

/// The socket.io builder with our limits. Set through the builder's own methods: `SocketIoBuilder::build_layer`
/// rebuilds the engine config from its builder, so engine settings passed inside `with_config(SocketIoConfig)` are
/// silently dropped (socketioxide 0.18.9) — that is how these limits once went unenforced.
/// Memory per connection (issue 8): tungstenite's read buffer is allocated at `ws_read_buffer_size` for every
/// websocket (engineioxide's default is 4 KiB). Client messages are small (the largest, `produce`, is ~2 KB); a
/// bigger frame still fits, the buffer grows for it.
fn builder(limits: &SocketLimits, shared: &Shared) -> socketioxide::SocketIoBuilder {
    SocketIo::builder()
        .max_payload(limits.max_payload_bytes)
        .ws_max_message_size(limits.max_payload_bytes as usize)
        .ws_max_frame_size(limits.max_payload_bytes as usize)
        .ping_interval(limits.ping_interval)
        .ping_timeout(limits.ping_timeout)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .with_state(shared.clone())
}

fn shared(service: Arc<MeetingService>, verifier: Arc<Verifier>) -> Shared {
    Shared {
        service,
        verifier,
        workers: Arc::new(AtomicUsize::new(0)),
        leases: None,
    }
}

/// What runs beside the sockets once the namespace is registered.
fn start_background<A: Adapter>(io: &SocketIo<A>, shared: &Shared) {
    // Outcomes no request caused (paced new-producer announcements) are delivered here.
    if let Some(mut rx) = shared.service.take_background() {
        let io = io.clone();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                deliver(&io, None, &out).await;
            }
        });
    }
    shared.service.spawn_pacer();
}

/// Builds the socket.io layer of a single node (rooms in process) and registers the `/` namespace.
pub fn build(
    service: Arc<MeetingService>,
    verifier: Arc<Verifier>,
    limits: &SocketLimits,
) -> (socketioxide::layer::SocketIoLayer, SocketIo, Shared) {
    let shared = shared(service, verifier);
    let (layer, io) = builder(limits, &shared).build_layer();
    io.ns("/", on_connect.with(authenticate::<LocalAdapter>));
    start_background(&io, &shared);
    (layer, io, shared)
}

/// The adapter of a cluster member: socketioxide's Redis adapter (pub/sub; RESP3, Redis ≥ 7) over our driver that
/// reconnects (`cluster_driver`).
pub type ClusterAdapter = socketioxide_redis::CustomRedisAdapter<
    socketioxide::adapter::Emitter,
    cluster_driver::ResilientDriver,
>;

/// Where a cluster member's socket.io layer meets Redis.
#[derive(Clone, Debug)]
pub struct ClusterLink {
    /// `redis://host:port/db` (RESP3 is asked for here when the URL does not say).
    pub redis_url: String,
    /// Channel prefix, so several clusters (or test runs) can share one Redis.
    pub prefix: String,
    /// How long a cross-node request (e.g. fetching remote sockets) waits for the other nodes.
    pub request_timeout: Duration,
}

/// The Redis URL with `protocol=resp3` (socketioxide-redis needs RESP3 push messages).
pub fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

/// Builds the socket.io layer of a cluster member: rooms span every node through Redis, so an emit to a meeting's
/// room reaches its participants wherever they are connected.
pub async fn build_cluster(
    service: Arc<MeetingService>,
    verifier: Arc<Verifier>,
    limits: &SocketLimits,
    link: &ClusterLink,
) -> Result<
    (
        socketioxide::layer::SocketIoLayer<ClusterAdapter>,
        SocketIo<ClusterAdapter>,
        Shared,
        cluster_driver::ResilientDriver,
    ),
    String,
> {
    let url = resp3_url(&link.redis_url);
    let client =
        redis::Client::open(url.as_str()).map_err(|e| format!("cluster.redis_url: {e}"))?;
    let config = socketioxide_redis::RedisAdapterConfig::new()
        .with_prefix(format!("{}-socket.io", link.prefix))
        .with_request_timeout(link.request_timeout);
    let driver = cluster_driver::ResilientDriver::connect(client)
        .await
        .map_err(|e| format!("connecting the socket.io adapter to Redis: {e}"))?;
    let ctr = socketioxide_redis::RedisAdapterCtr::new_with_driver(driver.clone(), config);
    let mut shared = shared(service, verifier);
    shared.leases = Some(cluster::PresenceLeases::connect(&url, &link.prefix).await?);
    let (layer, io) = builder(limits, &shared)
        .with_adapter::<ClusterAdapter>(ctr)
        .build_layer();
    io.ns("/", on_connect.with(authenticate::<ClusterAdapter>))
        .await
        .map_err(|e| format!("subscribing the socket.io adapter: {e}"))?;
    start_background(&io, &shared);
    Ok((layer, io, shared, driver))
}

/// Delivery of outcomes no socket caused (REST calls), whatever the adapter.
pub trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        out: &'a Outcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

impl<A: Adapter> Deliver for SocketIo<A> {
    fn deliver<'a>(
        &'a self,
        out: &'a Outcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(deliver(self, None, out))
    }
}

/// Connect middleware: a valid JWT in `auth.token`, or `connect_error` with the reason. On success the socket's
/// queue and handlers are set up here, not in the connect handler: socketioxide sends the CONNECT packet before it
/// runs the (spawned) connect handler, so a client that emits right after `connect` would race handlers registered
/// there and its first event could find none. The middleware finishes before CONNECT is sent.
async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(shared): State<Shared>,
    TryData(auth): TryData<Value>,
) -> Result<(), AuthError> {
    let token = match &auth {
        Ok(Value::Object(o)) => o.get("token").and_then(Value::as_str),
        _ => None,
    };
    let result = match token {
        None => Err(AuthError::Missing),
        Some(t) => shared.verifier.verify_token(t),
    };
    match result {
        Ok(verified) => {
            start_session(s, io, shared, verified);
            Ok(())
        }
        Err(e) => {
            metrics::counter!("meet_auth_failures_total").increment(1);
            tracing::debug!(reason = %e, "socket refused");
            Err(e)
        }
    }
}

enum Job<A: Adapter> {
    Request {
        event: String,
        payload: Option<Value>,
        /// Its share of the socket's `Backlog`.
        size: usize,
        ack: AckSender<A>,
    },
    Disconnect,
}

/// Everything happens in [`authenticate`]; the namespace still needs a connect handler.
async fn on_connect() {}

fn start_session<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, shared: Shared, verified: Verified) {
    metrics::gauge!("meet_connections").increment(1.0);
    // Jobs are boxed: the channel allocates its first block of 32 slots up front, per socket (2.6 KB unboxed, 0.3 KB
    // boxed — heaptrack on 2,000 joined sockets).
    let (tx, rx) = mpsc::unbounded_channel::<Box<Job<A>>>();
    let pending = Arc::new(Backlog::default());
    {
        let tx = tx.clone();
        let pending = pending.clone();
        s.on_fallback(
            move |s: SocketRef<A>,
                  Event(event): Event,
                  TryData(payload): TryData<Value>,
                  ack: AckSender<A>| {
                let size = payload.as_ref().map_or(0, approx_size);
                if !pending.admit(size) {
                    let e = WireError::new(
                        ErrorCode::RateLimitExceeded,
                        "too many requests waiting; slow down",
                    )
                    .for_event(&event);
                    reply_error(&s, ack, &e, false);
                } else {
                    let _ = tx.send(Box::new(Job::Request {
                        event,
                        payload: payload.ok(),
                        size,
                        ack,
                    }));
                }
                std::future::ready(())
            },
        );
    }
    s.on_disconnect(move || {
        let _ = tx.send(Box::new(Job::Disconnect));
        std::future::ready(())
    });
    shared.workers.fetch_add(1, Ordering::AcqRel);
    let expiry = Expiry::new(verified.expires_at, shared.verifier.expiry_grace());
    tokio::spawn(worker(
        s,
        io,
        shared,
        Session::new(verified.identity),
        expiry,
        rx,
        pending,
    ));
}

/// The event a client sends a fresh token with.
const REFRESH_EVENT: &str = "auth:refresh";

/// What the socket's token expiry asks for next.
#[derive(Debug, PartialEq, Eq)]
enum ExpiryStep {
    /// The token has expired: tell the client (`auth:expired`).
    Warn { expired_at_ms: i64 },
    /// The grace period is over: disconnect.
    Disconnect,
}

/// One socket's token expiry: when to warn, then when to disconnect. Times are unix milliseconds, so it can be
/// tested without a clock.
#[derive(Debug)]
struct Expiry {
    /// The token's `exp` in ms; `None` for a token without one (allowed only by configuration).
    expires_at_ms: Option<i64>,
    grace: Duration,
    /// Set once `auth:expired` was sent: the disconnect deadline.
    disconnect_at_ms: Option<i64>,
    done: bool,
}

impl Expiry {
    fn new(expires_at: Option<i64>, grace: Duration) -> Self {
        Self {
            expires_at_ms: expires_at.map(|s| s.saturating_mul(1000)),
            grace,
            disconnect_at_ms: None,
            done: false,
        }
    }

    /// A fresh token: its expiry replaces the old one and a pending disconnect is called off.
    fn refresh(&mut self, expires_at: Option<i64>) {
        *self = Self::new(expires_at, self.grace);
    }

    /// When the next step is due (unix ms), if any.
    fn due_at_ms(&self) -> Option<i64> {
        if self.done {
            return None;
        }
        self.disconnect_at_ms.or(self.expires_at_ms)
    }

    /// The step due at `now_ms`, if one is.
    fn step(&mut self, now_ms: i64) -> Option<ExpiryStep> {
        let due = self.due_at_ms()?;
        if now_ms < due {
            return None;
        }
        if self.disconnect_at_ms.is_some() {
            self.done = true;
            return Some(ExpiryStep::Disconnect);
        }
        let grace_ms = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        self.disconnect_at_ms = Some(now_ms.saturating_add(grace_ms));
        Some(ExpiryStep::Warn { expired_at_ms: due })
    }

    /// Sleeps until the next step is due (forever when none is).
    async fn wait(&self) {
        match self.due_at_ms() {
            Some(at) => {
                // At most a day at a time (the loop comes back and waits again): a far-future `exp` stays a plain
                // timer.
                let ms = u64::try_from(at.saturating_sub(proto::time::now_ms())).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms.min(86_400_000))).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Works through one socket's requests in order, until it disconnects.
async fn worker<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    shared: Shared,
    mut session: Session,
    mut expiry: Expiry,
    mut rx: mpsc::UnboundedReceiver<Box<Job<A>>>,
    pending: Arc<Backlog>,
) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
            () = expiry.wait() => {
                match expiry.step(proto::time::now_ms()) {
                    Some(ExpiryStep::Warn { expired_at_ms }) => {
                        let grace_ms = u64::try_from(expiry.grace.as_millis()).unwrap_or(u64::MAX);
                        let payload = proto::events::AuthExpired {
                            expired_at: proto::time::iso8601(expired_at_ms),
                            grace_ms,
                        };
                        if let Err(e) = s.emit("auth:expired", &payload) {
                            tracing::debug!(error = %e, "auth:expired not sent");
                        }
                    }
                    Some(ExpiryStep::Disconnect) => {
                        tracing::info!(user = %session.identity.user_id, "token expired and not refreshed: disconnecting");
                        // The disconnect handler queues Job::Disconnect, which leaves the meeting below.
                        if let Err(e) = s.clone().disconnect() {
                            tracing::debug!(error = %e, "disconnecting an expired socket failed");
                        }
                    }
                    None => {}
                }
                continue;
            }
        };
        match *job {
            Job::Request {
                event,
                payload,
                size,
                ack,
            } if event == REFRESH_EVENT => {
                pending.release(size);
                metrics::counter!("meet_events_total", "event" => REFRESH_EVENT).increment(1);
                match refresh(&shared.verifier, &session, payload.as_ref()) {
                    Ok(expires_at) => {
                        expiry.refresh(expires_at);
                        let expires =
                            expires_at.map(|e| proto::time::iso8601(e.saturating_mul(1000)));
                        let reply = proto::events::AuthRefreshAck {
                            expires_at: expires,
                        };
                        let _ = ack.send(&proto::events::AckOk::new(&reply));
                    }
                    Err(e) => reply_error(&s, ack, &e.for_event(REFRESH_EVENT), false),
                }
            }
            Job::Request {
                event,
                payload,
                size,
                ack,
            } => {
                pending.release(size);
                // Boxed: the request future is large, and an idle socket should not carry its space around.
                Box::pin(handle(
                    &s,
                    &io,
                    &shared,
                    &mut session,
                    &event,
                    payload.as_ref(),
                    ack,
                ))
                .await;
            }
            Job::Disconnect => {
                let meeting = session.membership.as_ref().map(|m| m.meeting.clone());
                let _presence = match &meeting {
                    Some(m) => Some(lock_presence(&shared, m).await),
                    None => None,
                };
                let out = Box::pin(shared.service.disconnect(&mut session)).await;
                deliver(&io, None, &out).await;
                break;
            }
        }
    }
    metrics::gauge!("meet_connections").decrement(1.0);
    shared.workers.fetch_sub(1, Ordering::AcqRel);
}

/// `auth:refresh {token}`: a fresh token of the same user replaces the socket's expiry. Nothing else of the session
/// changes (its identity is the one it connected with). Returns the new token's `exp` (unix seconds).
fn refresh(
    verifier: &Verifier,
    session: &Session,
    payload: Option<&Value>,
) -> Result<Option<i64>, WireError> {
    let token = payload
        .and_then(|p| p.get("token"))
        .and_then(Value::as_str)
        .ok_or_else(|| WireError::validation("auth:refresh needs {token: <JWT>}"))?;
    let fresh = verifier
        .verify_token(token)
        .map_err(|e| WireError::validation(format!("token refused: {e}")))?;
    if fresh.identity.user_id != session.identity.user_id {
        return Err(WireError::new(
            ErrorCode::Forbidden,
            "the fresh token names another user; reconnect to change user",
        ));
    }
    Ok(fresh.expires_at)
}

async fn handle<A: Adapter>(
    s: &SocketRef<A>,
    io: &SocketIo<A>,
    shared: &Shared,
    session: &mut Session,
    event: &str,
    payload: Option<&Value>,
    ack: AckSender<A>,
) {
    let label = if meeting::request::EVENTS.contains(&event)
        || meeting::request::MEDIA_EVENTS.contains(&event)
    {
        event.to_owned()
    } else {
        "unknown".to_owned()
    };
    metrics::counter!("meet_events_total", "event" => label).increment(1);
    let req = Request::parse(event, payload);
    // A join or leave changes who is in the meeting and who is in its room together (see `presence_lock`).
    let presence = match &req {
        Ok(Request::Join { meeting, .. }) => Some(meeting.clone()),
        Ok(Request::Leave { .. }) => session.membership.as_ref().map(|m| m.meeting.clone()),
        _ => None,
    };
    let _presence = match &presence {
        Some(m) => Some(lock_presence(shared, m).await),
        None => None,
    };
    // Cluster mode: a media request for a meeting whose media lives on another node runs there.
    let home = match &req {
        Ok(Request::Media { meeting, .. }) => {
            shared
                .service
                .remote_media_home(session, meeting.as_ref())
                .await
        }
        _ => Ok(None),
    };
    let result = match (req, home) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(_), Ok(Some(node))) => {
            shared
                .service
                .forward_media(&node, session, event, payload)
                .await
        }
        (Ok(req), Ok(None)) => shared.service.handle(session, req).await,
    };
    match result {
        Ok(out) => {
            deliver(io, Some(s), &out).await;
            // `out.reply` is an ack struct of `proto::events` (an object), or null when there is none.
            let empty = proto::events::Empty {};
            let _ = match &out.reply {
                Value::Object(_) => ack.send(&proto::events::AckOk::new(&out.reply)),
                _ => ack.send(&proto::events::AckOk::new(&empty)),
            };
        }
        Err(e) => {
            let e = e.for_event(event);
            // Periodic events are dropped silently when over their limit (DESIGN.md §4): an `error` event would
            // abort the guide's client while it sets up media. Their ack still says why.
            let silent = e.code == ErrorCode::RateLimitExceeded
                && matches!(event, "typing" | "stats:report");
            reply_error(s, ack, &e, silent);
        }
    }
}

fn reply_error<A: Adapter>(s: &SocketRef<A>, ack: AckSender<A>, e: &WireError, silent: bool) {
    metrics::counter!("meet_errors_total", "code" => e.code.as_str()).increment(1);
    if !silent {
        let _ = s.emit("error", e);
    }
    let _ = ack.send(&proto::events::AckErr::new(e));
}

/// Applies an outcome: the requesting socket's room changes, then the emits, then closed meetings' rooms.
/// `socket` is None when there is no requesting socket (REST, or a socket that is gone).
/// Joins and leaves of one meeting are applied and delivered one at a time. A join changes the meeting's state
/// (the joiner's snapshot is taken there) and only then, at delivery, puts the socket in the meeting's room; a
/// second join in between would be neither in the first joiner's snapshot nor heard by it (its
/// `participant-joined` reaching the room before the first joiner is in it). Holding this lock from the state change
/// to the end of the delivery closes that gap (meet-load's join storm: every client must learn of every
/// participant). Striped by meeting id: a fixed set, nothing to clean up; meetings sharing a stripe only wait for
/// each other's joins and leaves.
/// In cluster mode the same holds across nodes: a Redis lease per meeting is taken too (`cluster::PresenceLeases`),
/// and the delivery's publishes to Redis finish before it is released, so the next join's events come after them.
async fn lock_presence(shared: &Shared, meeting: &proto::MeetingId) -> PresenceGuard {
    let local = presence_lock(meeting).lock().await;
    let lease = match &shared.leases {
        Some(l) => l.acquire(meeting).await,
        None => None,
    };
    PresenceGuard {
        _lease: lease,
        _local: local,
    }
}

/// Held from a join's or leave's state change to the end of its delivery.
struct PresenceGuard {
    _lease: Option<cluster::PresenceLease>,
    _local: tokio::sync::MutexGuard<'static, ()>,
}

fn presence_lock(meeting: &proto::MeetingId) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static LOCKS: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(|| (0..256).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meeting.as_str().hash(&mut h);
    let i = usize::try_from(h.finish() % locks.len() as u64).unwrap_or(0);
    &locks[i]
}

pub async fn deliver<A: Adapter>(io: &SocketIo<A>, socket: Option<&SocketRef<A>>, out: &Outcome) {
    if let Some(s) = socket {
        for change in &out.rooms {
            match change {
                RoomChange::Join(m) => s.join([
                    rooms::meeting(&m.meeting),
                    rooms::participant(&m.participant),
                ]),
                RoomChange::Leave(m) => s.leave([
                    rooms::meeting(&m.meeting),
                    rooms::participant(&m.participant),
                ]),
            }
        }
    }
    for e in &out.emits {
        let sent = match &e.target {
            Target::Requester => match socket {
                Some(s) => s.emit(e.event, &e.payload).map_err(|err| err.to_string()),
                None => Ok(()),
            },
            Target::Meeting(m) => io
                .to(rooms::meeting(m))
                .emit(e.event, &e.payload)
                .await
                .map_err(|err| err.to_string()),
            Target::MeetingExcept(m, p) => io
                .to(rooms::meeting(m))
                .except(rooms::participant(p))
                .emit(e.event, &e.payload)
                .await
                .map_err(|err| err.to_string()),
            Target::Participants(ps) if ps.is_empty() => Ok(()),
            Target::Participants(ps) => io
                .to(ps.iter().map(rooms::participant).collect::<Vec<_>>())
                .emit(e.event, &e.payload)
                .await
                .map_err(|err| err.to_string()),
        };
        if let Err(err) = sent {
            tracing::warn!(event = e.event, error = %err, "emit failed");
        }
    }
    for p in &out.disconnect {
        // A session its user's rejoin replaced: its connection is most likely dead already (the client reconnected
        // on a new one); close it so it cannot linger until the ping timeout.
        if let Err(err) = io.to(rooms::participant(p)).disconnect().await {
            tracing::warn!(error = %err, "disconnecting a replaced session failed");
        }
    }
    for m in &out.close_rooms {
        let room = rooms::meeting(m);
        if let Err(err) = io.to(room.clone()).leave(room).await {
            tracing::warn!(error = %err, "closing meeting room failed");
        }
    }
}

/// Graceful stop of the socket layer: tell every client, disconnect them, and wait (up to `grace`) until every
/// socket's worker has finished (leaves written to the store).
pub async fn shutdown<A: Adapter>(
    io: &SocketIo<A>,
    shared: &Shared,
    reconnect_after: Duration,
    grace: Duration,
) {
    disconnect_local(io, reconnect_after).await;
    let deadline = tokio::time::Instant::now() + grace;
    while shared.workers.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells this node's sockets `server:shutdown {reconnectAfterMs}` and disconnects them (a graceful stop, or a node
/// that finds it was declared dead: see `cluster`).
pub(crate) async fn disconnect_local<A: Adapter>(io: &SocketIo<A>, reconnect_after: Duration) {
    let ms = u64::try_from(reconnect_after.as_millis()).unwrap_or(u64::MAX);
    // `local()`: in cluster mode a plain `io.emit` / `io.disconnect` would reach every node's sockets.
    if let Err(e) = io
        .local()
        .emit(
            "server:shutdown",
            &proto::events::ServerShutdown {
                reconnect_after_ms: ms,
            },
        )
        .await
    {
        tracing::warn!(error = %e, "shutdown notice failed");
    }
    // Give the notice a moment to leave the socket buffers before the disconnect packets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Err(e) = io.local().disconnect().await {
        tracing::warn!(error = %e, "disconnecting sockets failed");
    }
}

#[cfg(test)]
mod tests {
    use super::{approx_size, Backlog, MAX_PENDING, MAX_PENDING_BYTES};

    #[test]
    fn the_backlog_is_bounded_in_count_and_in_bytes() {
        let b = Backlog::default();
        for _ in 0..MAX_PENDING {
            assert!(b.admit(10));
        }
        assert!(!b.admit(10), "one more than MAX_PENDING");
        b.release(10);
        assert!(b.admit(10), "room again once one left");
        let big = Backlog::default();
        let chunk = 64 * 1024;
        let fits = MAX_PENDING_BYTES / chunk;
        for _ in 0..fits - 1 {
            assert!(big.admit(chunk));
        }
        assert!(big.admit(10), "a small request fits beside them");
        assert!(!big.admit(chunk), "bytes over MAX_PENDING_BYTES");
        big.release(chunk);
        assert!(big.admit(chunk), "room again once one left");
    }

    #[test]
    fn approx_size_is_close_to_the_json_length() {
        let v = serde_json::json!({
            "meetingId": "meeting_abc", "message": "x".repeat(5000), "n": [1, 2, 3], "o": {"a": null, "b": true},
        });
        let real = serde_json::to_string(&v).map(|t| t.len()).unwrap_or(0);
        let approx = approx_size(&v);
        assert!(
            approx >= real && approx < real + real / 10 + 64,
            "{approx} vs {real}"
        );
    }

    use super::*;

    #[test]
    fn expiry_warns_at_exp_then_disconnects_after_the_grace() {
        let mut e = Expiry::new(Some(100), Duration::from_secs(5));
        assert_eq!(e.due_at_ms(), Some(100_000));
        assert_eq!(e.step(99_999), None);
        assert_eq!(
            e.step(100_010),
            Some(ExpiryStep::Warn {
                expired_at_ms: 100_000
            })
        );
        assert_eq!(e.due_at_ms(), Some(105_010));
        assert_eq!(e.step(105_000), None);
        assert_eq!(e.step(105_010), Some(ExpiryStep::Disconnect));
        assert_eq!(e.due_at_ms(), None);
        assert_eq!(e.step(999_999), None);
    }

    #[test]
    fn a_refresh_calls_off_the_disconnect() {
        let mut e = Expiry::new(Some(100), Duration::from_secs(5));
        assert!(matches!(e.step(100_000), Some(ExpiryStep::Warn { .. })));
        e.refresh(Some(200));
        assert_eq!(e.due_at_ms(), Some(200_000));
        assert_eq!(e.step(105_000), None);
        // a token without exp (allowed by configuration) never expires
        e.refresh(None);
        assert_eq!(e.due_at_ms(), None);
        assert_eq!(e.step(i64::MAX), None);
    }
}
