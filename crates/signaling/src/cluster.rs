//! Cluster membership (issue 9 item 5, DESIGN §6): nodes heartbeat in Redis, and one of them (the leader of the
//! moment, by a Redis lease) removes the sessions of a node whose heartbeat stopped.
//!
//! Keys (under the cluster's prefix): `node:{id}` — the node's heartbeat, a small JSON with a 3 s TTL refreshed
//! every second; `nodes` — the set of nodes that registered (a member without its heartbeat key is dead);
//! `reaper` — the leader's lease. A killed node is found within TTL + one tick (≤ 4 s): its sessions leave their
//! meetings with reason `node-lost` (the others get `participant-left`, and what a leave releases), then it is
//! forgotten. A node that stops gracefully deregisters itself (its sockets left their meetings on disconnect).
//!
//! **Fencing.** A node that was only paused (SIGSTOP, a long GC-like stall, a partition from Redis) for longer than
//! the TTL is reaped like a dead one, yet its sockets are still connected when it resumes. The reaper leaves a
//! marker `reaped:{id}` (60 s); each heartbeat takes it (GETDEL), and a node that finds its own marker knows its
//! sessions are gone: it tells its sockets `server:shutdown {reconnectAfterMs: 0}` and disconnects them, so their
//! clients reconnect and rejoin (as after a drain), instead of talking to sessions that no longer exist. The node
//! itself goes on serving.

use crate::deliver;
use meeting::MeetingService;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use socketioxide::adapter::Adapter;
use socketioxide::SocketIo;
use std::sync::Arc;
use std::time::Duration;

/// How often a node refreshes its heartbeat, and how often the leader looks for dead nodes.
const TICK: Duration = Duration::from_secs(1);
/// A heartbeat older than this means the node is dead.
const HEARTBEAT_TTL_MS: u64 = 3_000;

/// Takes or renews the leader's lease: 1 when this node holds it afterwards.
const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// This node's entry in the cluster.
#[derive(Clone)]
pub struct NodeInfo {
    pub node_id: String,
    /// How other nodes reach this one (node-to-node calls).
    pub internal_address: String,
    /// The media plane's load (open transports), published with every heartbeat: new media homes go to the least
    /// loaded node.
    pub load: Arc<dyn Fn() -> usize + Send + Sync>,
}

/// The node's membership: heartbeats and the reaper run until [`Membership::deregister`].
pub struct Membership {
    conn: ConnectionManager,
    prefix: String,
    node: NodeInfo,
    task: tokio::task::JoinHandle<()>,
}

/// A Redis connection for cluster duties: reconnects by itself (backoff ≤ 1 s); each command fails after 2 s.
async fn manager(redis_url: &str, what: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(redis_url).map_err(|e| format!("cluster.redis_url: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| format!("{what}: {e}"))
}

fn key(prefix: &str, rest: &str) -> String {
    format!("{prefix}:{rest}")
}

impl Membership {
    /// Registers this node and starts its heartbeat and the reaper.
    pub async fn start<A: Adapter>(
        redis_url: &str,
        prefix: &str,
        node: NodeInfo,
        io: SocketIo<A>,
        service: Arc<MeetingService>,
    ) -> Result<Self, String> {
        let conn = manager(redis_url, "connecting to Redis for the node registry").await?;
        let mut first = conn.clone();
        // A marker left by the reaper of an earlier run with this node id is taken here: no socket of this run
        // was reaped.
        heartbeat(&mut first, prefix, &node, false)
            .await
            .map_err(|e| format!("registering the node in Redis: {e}"))?;
        let task = tokio::spawn(run(
            conn.clone(),
            prefix.to_owned(),
            node.clone(),
            io,
            service,
        ));
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            node,
            task,
        })
    }

    /// Graceful stop: no more heartbeats, and the node leaves the registry (nobody reaps it).
    pub async fn deregister(self) {
        self.task.abort();
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<()> = redis::pipe()
            .del(key(&self.prefix, &format!("node:{}", self.node.node_id)))
            .srem(key(&self.prefix, "nodes"), &self.node.node_id)
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "leaving the node registry failed (the node will be reaped)");
        }
    }
}

/// Refreshes the heartbeat; answers whether the reaper had declared this node dead since the last one.
async fn heartbeat(
    conn: &mut ConnectionManager,
    prefix: &str,
    node: &NodeInfo,
    draining: bool,
) -> redis::RedisResult<bool> {
    let value = serde_json::json!({
        "nodeId": node.node_id,
        "internalAddress": node.internal_address,
        "at": proto::time::now_ms(),
        "load": (node.load)(),
        "draining": draining,
    })
    .to_string();
    redis::pipe()
        .cmd("SET")
        .arg(key(prefix, &format!("node:{}", node.node_id)))
        .arg(value)
        .arg("PX")
        .arg(HEARTBEAT_TTL_MS)
        .ignore()
        .sadd(key(prefix, "nodes"), &node.node_id)
        .ignore()
        .cmd("GETDEL")
        .arg(reaped_key(prefix, &node.node_id))
        .query_async::<(Option<String>,)>(conn)
        .await
        .map(|(marker,)| marker.is_some())
}

fn reaped_key(prefix: &str, node: &str) -> String {
    key(prefix, &format!("reaped:{node}"))
}

/// How long the reaper's marker waits for a paused node to resume and find it.
const REAPED_MARKER_MS: u64 = 60_000;

async fn run<A: Adapter>(
    mut conn: ConnectionManager,
    prefix: String,
    node: NodeInfo,
    io: SocketIo<A>,
    service: Arc<MeetingService>,
) {
    let lease = redis::Script::new(LEASE);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match heartbeat(&mut conn, &prefix, &node, service.is_draining()).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::error!(
                    node = %node.node_id,
                    "this node missed its heartbeats long enough to be declared dead (paused or cut off from \
                     Redis): its sessions were removed from their meetings; disconnecting its sockets so their \
                     clients reconnect and rejoin"
                );
                metrics::counter!("meet_cluster_fenced_total").increment(1);
                crate::disconnect_local(&io, Duration::ZERO).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster heartbeat failed");
                continue;
            }
        }
        let leader: redis::RedisResult<i64> = lease
            .key(key(&prefix, "reaper"))
            .arg(&node.node_id)
            .arg(HEARTBEAT_TTL_MS)
            .invoke_async(&mut conn)
            .await;
        let members: Vec<String> = match redis::cmd("SMEMBERS")
            .arg(key(&prefix, "nodes"))
            .query_async(&mut conn)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "reading the node registry failed");
                continue;
            }
        };
        let mut alive = 0usize;
        let mut dead = Vec::new();
        for m in members {
            let exists: redis::RedisResult<bool> = redis::cmd("EXISTS")
                .arg(key(&prefix, &format!("node:{m}")))
                .query_async(&mut conn)
                .await;
            match exists {
                Ok(true) => alive += 1,
                Ok(false) => dead.push(m),
                Err(_) => {}
            }
        }
        metrics::gauge!("meet_cluster_nodes_alive").set(alive as f64);
        if !matches!(leader, Ok(1)) {
            continue;
        }
        for lost in dead {
            reap(&mut conn, &prefix, &lost, &io, &service).await;
        }
    }
}

/// Removes a dead node's sessions, then the node (only once its sessions are gone: a failed reap is retried).
async fn reap<A: Adapter>(
    conn: &mut ConnectionManager,
    prefix: &str,
    lost: &str,
    io: &SocketIo<A>,
    service: &MeetingService,
) {
    match service.reap_node(lost).await {
        Ok(outcomes) => {
            tracing::warn!(
                node = lost,
                sessions = outcomes.len(),
                "node lost: its sessions left their meetings"
            );
            metrics::counter!("meet_cluster_nodes_lost_total").increment(1);
            for out in &outcomes {
                deliver(io, None, out).await;
            }
            // The marker tells the node, should it only have been paused, that its sessions are gone.
            let res: redis::RedisResult<()> = redis::pipe()
                .srem(key(prefix, "nodes"), lost)
                .ignore()
                .cmd("SET")
                .arg(reaped_key(prefix, lost))
                .arg(proto::time::now_ms())
                .arg("PX")
                .arg(REAPED_MARKER_MS)
                .ignore()
                .query_async(conn)
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, node = lost, "forgetting a lost node failed");
            }
        }
        Err(e) => {
            tracing::warn!(node = lost, error = %e.message, "reaping a lost node failed; retrying")
        }
    }
}

/// Releases a presence lease only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How long a presence lease lives if its holder dies holding it.
const PRESENCE_LEASE_MS: u64 = 5_000;

/// Joins and leaves of one meeting, one at a time across the cluster (what `presence_lock` does on one node): a
/// Redis lease per meeting, taken with `SET NX PX`, released by its holder.
#[derive(Clone)]
pub struct PresenceLeases {
    conn: ConnectionManager,
    prefix: String,
}

/// A held lease; released (in the background) when dropped.
pub struct PresenceLease {
    conn: ConnectionManager,
    key: String,
    token: String,
}

impl PresenceLeases {
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Self, String> {
        let conn = manager(redis_url, "connecting to Redis for presence leases").await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// Waits for the meeting's lease (polling every few ms). After the lease's lifetime it goes on without one (a
    /// holder that died keeps nobody out longer than that), and while Redis is unreachable at once: the request
    /// then meets the same outage in the shared state and answers SERVICE_UNAVAILABLE.
    pub async fn acquire(&self, meeting: &proto::MeetingId) -> Option<PresenceLease> {
        let key = key(&self.prefix, &format!("presence:{meeting}"));
        let token = proto::ids::random_base62(16);
        let mut conn = self.conn.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(PRESENCE_LEASE_MS);
        let mut wait = Duration::from_millis(2);
        loop {
            let got: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(PRESENCE_LEASE_MS)
                .query_async(&mut conn)
                .await;
            match got {
                Ok(Some(_)) => {
                    return Some(PresenceLease {
                        conn: self.conn.clone(),
                        key,
                        token,
                    })
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(20));
                }
                Ok(None) => {
                    tracing::warn!(%meeting, "presence lease not released in time; going on without it");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "presence lease unavailable");
                    return None;
                }
            }
        }
    }
}

impl Drop for PresenceLease {
    fn drop(&mut self) {
        let mut conn = self.conn.clone();
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        tokio::spawn(async move {
            let res: redis::RedisResult<i64> = redis::Script::new(RELEASE)
                .key(key)
                .arg(token)
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = res {
                tracing::debug!(error = %e, "releasing a presence lease failed (it expires by itself)");
            }
        });
    }
}

/// The node-to-node calls of cluster mode (issue 9 item 4): a node whose socket makes a media request for a meeting
/// whose media lives on another node has that node run it. Plain HTTP to the home's internal address (from its
/// heartbeat), authenticated by the cluster's shared secret; the home answers what the requester's socket must get.
pub struct HttpRemote {
    http: reqwest::Client,
    conn: ConnectionManager,
    prefix: String,
    secret: String,
}

/// The header that carries the cluster secret on node-to-node calls.
pub const SECRET_HEADER: &str = "x-meet-cluster-secret";

/// Body of `POST /internal/media/request`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ForwardedRequest {
    pub identity: meeting::Identity,
    pub membership: meeting::Membership,
    pub event: String,
    pub payload: Option<serde_json::Value>,
}

/// Answer of `POST /internal/media/request`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ForwardedAnswer {
    Ok { reply: meeting::ports::RemoteReply },
    Err { error: proto::WireError },
}

/// Body of `POST /internal/media/release`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ForwardedRelease {
    pub meeting: proto::MeetingId,
    pub participant: state::RuntimeParticipant,
    pub reason: String,
}

impl HttpRemote {
    pub async fn connect(redis_url: &str, prefix: &str, secret: &str) -> Result<Self, String> {
        let conn = manager(redis_url, "connecting to Redis for node addresses").await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("node-to-node HTTP client: {e}"))?;
        Ok(Self {
            http,
            conn,
            prefix: prefix.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The live node with the fewest open transports that is not stopping (ties: the lowest id, so racing nodes
    /// agree more often).
    async fn least_loaded(&self) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key(&self.prefix, "nodes"))
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = members
            .iter()
            .map(|m| key(&self.prefix, &format!("node:{m}")))
            .collect();
        let beats: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut best: Option<(u64, String)> = None;
        for (id, beat) in members.into_iter().zip(beats) {
            let Some(v) = beat.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            else {
                continue; // dead
            };
            if v.get("draining").and_then(serde_json::Value::as_bool) == Some(true) {
                continue;
            }
            let load = v
                .get("load")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            if best.as_ref().is_none_or(|(l, b)| (load, &id) < (*l, b)) {
                best = Some((load, id));
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    /// The node's internal address, from its heartbeat.
    async fn address(&self, node: &str) -> Result<String, proto::WireError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(key(&self.prefix, &format!("node:{node}")))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(format!("reading the node registry: {e}")))?;
        let raw = raw
            .ok_or_else(|| unavailable(format!("the meeting's media node {node} is not alive")))?;
        let v: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| unavailable(format!("node registry: {e}")))?;
        v.get("internalAddress")
            .and_then(serde_json::Value::as_str)
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or_else(|| unavailable(format!("node {node} has no internal address")))
    }

    async fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        node: &str,
        path: &str,
        body: &T,
    ) -> Result<R, proto::WireError> {
        let url = format!("{}{path}", self.address(node).await?);
        let res = self
            .http
            .post(&url)
            .header(SECRET_HEADER, &self.secret)
            .json(body)
            .send()
            .await
            .map_err(|e| unavailable(format!("calling the media node {node}: {e}")))?;
        if !res.status().is_success() {
            return Err(unavailable(format!(
                "the media node {node} answered {}",
                res.status()
            )));
        }
        res.json::<R>()
            .await
            .map_err(|e| unavailable(format!("the media node {node}'s answer: {e}")))
    }
}

fn unavailable(why: String) -> proto::WireError {
    tracing::warn!("{why}");
    proto::WireError::new(
        proto::ErrorCode::ServiceUnavailable,
        "the meeting's media node is briefly unreachable; retry in a moment",
    )
}

#[async_trait::async_trait]
impl meeting::ports::MediaRemote for HttpRemote {
    async fn request(
        &self,
        node: &str,
        session: &meeting::Session,
        event: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<meeting::ports::RemoteReply, proto::WireError> {
        let Some(membership) = session.membership.clone() else {
            return Err(proto::WireError::internal());
        };
        let body = ForwardedRequest {
            identity: session.identity.clone(),
            membership,
            event: event.to_owned(),
            payload: payload.cloned(),
        };
        match self
            .post::<_, ForwardedAnswer>(node, "/internal/media/request", &body)
            .await?
        {
            ForwardedAnswer::Ok { reply } => Ok(reply),
            ForwardedAnswer::Err { error } => Err(error),
        }
    }

    async fn pick_home(&self, mine: &str) -> String {
        match self.least_loaded().await {
            Ok(Some(node)) => node,
            Ok(None) => mine.to_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "reading node loads failed; this node takes the media");
                mine.to_owned()
            }
        }
    }

    async fn release(
        &self,
        node: &str,
        meeting: &proto::MeetingId,
        participant: &state::RuntimeParticipant,
        reason: &str,
    ) -> Result<(), proto::WireError> {
        let body = ForwardedRelease {
            meeting: meeting.clone(),
            participant: participant.clone(),
            reason: reason.to_owned(),
        };
        self.post::<_, serde_json::Value>(node, "/internal/media/release", &body)
            .await
            .map(|_| ())
    }
}
