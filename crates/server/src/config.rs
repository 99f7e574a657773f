//! Configuration: one tree, layered defaults → optional TOML file (`--config`) → environment (`MEET_…`, nested
//! keys joined by `__`, e.g. `MEET_HTTP__PORT=8080`, `MEET_AUTH__SECRET=…`), validated at start-up. Secrets never
//! reach the logs (`Debug` redacts them).

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use signaling::auth::{AuthConfig, JwtAlgorithm};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: Http,
    pub database: Database,
    pub auth: AuthConfig,
    /// Development mode: meetings are created on first join and `/dev/token` mints tokens (loopback only).
    pub dev_mode: bool,
    pub metrics: Metrics,
    pub meetings: Meetings,
    pub limits: RateLimits,
    pub socket: Socket,
    pub shutdown: Shutdown,
    pub web: Web,
    pub media: Media,
    pub webhooks: Webhooks,
    pub recording: Recording,
    pub cluster: Cluster,
}

/// Cluster mode (docs/cluster.md, DESIGN §6): set `redis_url` and this node becomes a member of the cluster that
/// Redis holds together (socket.io rooms across nodes, shared meeting state and rate limits); unset (the default) it
/// is a single node with everything in process.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `redis://host:port[/db]` (Redis ≥ 7: the socket.io adapter uses RESP3). Unset: single node.
    pub redis_url: Option<String>,
    /// This node's id in the cluster (unique per node; default: a random id at each start).
    pub node_id: Option<String>,
    /// The address other nodes reach this node's HTTP server at, e.g. `http://10.0.0.5:3000` (default: the
    /// listening address).
    pub internal_address: Option<String>,
    /// Prefix of every Redis key and channel of this cluster, so clusters (or test runs) can share one Redis.
    pub key_prefix: String,
    /// How long a request that asks the other nodes (through Redis) waits for their answers (ms).
    pub request_timeout_ms: u64,
    /// Shared by every node of the cluster: authenticates node-to-node calls (at least 16 characters; required in
    /// cluster mode).
    pub secret: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(store::redact_url),
            )
            .field("node_id", &self.node_id)
            .field("internal_address", &self.internal_address)
            .field("key_prefix", &self.key_prefix)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Recording (docs/recording.md): where recordings go and this node's limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Each recording gets a folder here.
    pub dir: String,
    /// Concurrent recordings this node holds (0: recording refused).
    pub max_concurrent: u32,
    /// A recording does not start when the directory's file system has less free space (MB).
    pub min_free_disk_mb: u64,
    /// Longest recorded time (s; paused time does not count); 0 = unlimited.
    pub max_duration_secs: u64,
    /// The ffmpeg binary that makes composites (a bare name is looked up in PATH).
    pub ffmpeg: String,
    /// Composites made at once on this node.
    pub composite_concurrency: u32,
    /// Packets each recording's queue holds between the media workers and its thread (full: dropped, counted).
    pub queue_packets: u32,
}

/// Webhooks for integrators (docs/webhooks.md): events POSTed, signed, to every URL in `urls`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// Receiver URLs, comma-separated (`http://` or `https://`); empty = webhooks off.
    pub urls: String,
    /// HMAC-SHA256 key for `X-Meet-Signature` (at least 16 characters; required when `urls` is set).
    pub secret: Option<String>,
    /// Per delivery attempt.
    pub timeout_ms: u64,
    /// Attempts per event and receiver before it is given up.
    pub max_attempts: u32,
    /// Wait before the second attempt, doubled per attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Webhooks {
    pub fn url_list(&self) -> Vec<String> {
        self.urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field(
                "urls",
                &self
                    .url_list()
                    .iter()
                    .map(|u| store::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base_ms", &self.retry_base_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// The address the media UDP sockets bind to (a concrete address; it is also the ICE candidate).
    pub listen_ip: String,
    /// The address announced to clients (a public address when behind NAT); `listen_ip` when unset.
    pub announced_ip: Option<String>,
    pub port_min: u16,
    pub port_max: u16,
    /// Media worker threads; 0 = one per core.
    pub workers: usize,
    /// A connected transport with no STUN consent check from its browser for this long is closed and its owner
    /// told (`transport:closed`, reason `ice-timeout`).
    pub consent_timeout_ms: u64,
    /// A transport whose DTLS is not up this long after `connect-transport` is closed (`connect-timeout`).
    pub connect_timeout_ms: u64,
    /// More addresses to listen on and announce, comma-separated, each `ip` or `ip=announced_ip` (IPv6 next to
    /// IPv4, a private next to a public address), e.g. `::1` or `10.0.0.5=203.0.113.7`.
    pub extra_ips: String,
    /// ICE over UDP (off: only TCP candidates).
    pub udp: bool,
    /// ICE over TCP: every media worker also listens on TCP (same port; `tcp passive` candidates).
    pub tcp: bool,
    /// Test hooks (`POST /debug/media/drop`, `/debug/media/cap`, `/debug/media/temporal`, loopback only). Never on in production.
    pub debug_hooks: bool,
    /// Bandwidth estimation on recv transports (str0m's transport-wide-cc BWE) driving each consumer's simulcast
    /// layer. On by default (docs/media.md); off = each consumer gets the layer its client asks for.
    pub bwe: bool,
    /// Recv transports of one meeting on its home media worker before its next ones go to the least loaded
    /// worker, which gets the meeting's producers through in-process pipes (docs/media.md); 0 = never.
    pub pipe_threshold: usize,
    pub turn: Turn,
}

/// TURN servers handed to clients (`transport-created.params.iceServers`, `webrtc-config`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Comma-separated `turn:`/`turns:` URLs (empty: no TURN).
    pub urls: String,
    /// Shared secret for time-limited per-user credentials (coturn `use-auth-secret` / `static-auth-secret`).
    pub secret: Option<String>,
    /// Static credentials, used when no secret is set.
    pub username: Option<String>,
    pub credential: Option<String>,
    /// How long time-limited credentials last.
    pub ttl_secs: u64,
    /// Tell clients `iceTransportPolicy: 'relay'` (media only through TURN).
    pub force_relay: bool,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("ttl_secs", &self.ttl_secs)
            .field("force_relay", &self.force_relay)
            .finish()
    }
}

impl Media {
    /// `extra_ips` parsed: (listen, announced).
    pub fn extra_ips(&self) -> Result<Vec<(std::net::IpAddr, Option<std::net::IpAddr>)>, String> {
        let ip = |s: &str| {
            s.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("media.extra_ips: {s:?} is not an IP address"))
        };
        self.extra_ips
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|item| match item.split_once('=') {
                Some((l, a)) => Ok((ip(l)?, Some(ip(a)?))),
                None => Ok((ip(item)?, None)),
            })
            .collect()
    }

    /// The TURN settings as the domain takes them.
    pub fn ice(&self) -> meeting::ice::IceConfig {
        meeting::ice::IceConfig {
            turn_urls: self
                .turn
                .urls
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            turn_secret: self.turn.secret.clone().filter(|s| !s.is_empty()),
            turn_username: self.turn.username.clone(),
            turn_credential: self.turn.credential.clone(),
            turn_ttl_secs: self.turn.ttl_secs,
            force_relay: self.turn.force_relay,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// `sqlite://path/file.db?mode=rwc` (default) or `postgres://user:pass@host:5432/db`.
    pub url: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &store::redact_url(&self.url))
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meetings {
    pub default_max_participants: u32,
    pub recent_messages: u32,
    /// A dropped connection that rejoins within this many seconds keeps its raised hand.
    pub rejoin_grace_secs: u32,
    /// An ended meeting's in-memory state (a guard against joins racing the end) is dropped after this long.
    pub ended_state_secs: u32,
}

/// One limit: at most `count` per `window_ms` (sliding window).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub count: u32,
    pub window_ms: u64,
}

/// The guide's limits (change them only for benchmarks), and ours on media requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub send_message: LimitConfig,
    pub typing: LimitConfig,
    pub reaction: LimitConfig,
    pub stats: LimitConfig,
    pub create_transport: LimitConfig,
    pub connect_transport: LimitConfig,
    pub produce: LimitConfig,
    pub consume: LimitConfig,
    /// pause-consumer, resume-consumer, producer:pause/resume/close, quality:change.
    pub media_control: LimitConfig,
    /// restart-ice.
    pub restart_ice: LimitConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socket {
    pub max_payload_bytes: u64,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// How long to wait for sockets to finish their last writes.
    pub grace_ms: u64,
    /// Told to clients in `server:shutdown`.
    pub reconnect_after_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// The built web client (served at `/`).
    pub dir: String,
}

impl Default for Config {
    fn default() -> Self {
        let limit = |count, window_ms| LimitConfig { count, window_ms };
        Self {
            http: Http {
                host: "127.0.0.1".into(),
                port: 3000,
            },
            database: Database {
                url: "sqlite://data/meet.db?mode=rwc".into(),
            },
            auth: AuthConfig {
                algorithm: JwtAlgorithm::HS256,
                secret: None,
                public_key_pem: None,
                public_key_file: None,
                issuer: None,
                audience: None,
                allow_no_exp: false,
                expiry_grace_secs: 60,
            },
            dev_mode: false,
            metrics: Metrics { token: None },
            meetings: Meetings {
                default_max_participants: 100,
                recent_messages: 50,
                rejoin_grace_secs: 30,
                ended_state_secs: 60,
            },
            limits: RateLimits {
                send_message: limit(10, 60_000),
                typing: limit(1, 1_000),
                reaction: limit(3, 1_000),
                stats: limit(1, 5_000),
                create_transport: limit(10, 10_000),
                connect_transport: limit(10, 10_000),
                produce: limit(20, 10_000),
                consume: limit(300, 10_000),
                media_control: limit(100, 10_000),
                restart_ice: limit(10, 60_000),
            },
            socket: Socket {
                max_payload_bytes: 64 * 1024,
                ping_interval_ms: 25_000,
                ping_timeout_ms: 20_000,
            },
            shutdown: Shutdown {
                grace_ms: 5_000,
                reconnect_after_ms: 5_000,
            },
            web: Web {
                dir: "web/dist".into(),
            },
            media: Media {
                listen_ip: "127.0.0.1".into(),
                announced_ip: None,
                port_min: 40_000,
                port_max: 49_999,
                workers: 0,
                consent_timeout_ms: 30_000,
                connect_timeout_ms: 30_000,
                extra_ips: String::new(),
                udp: true,
                tcp: true,
                debug_hooks: false,
                bwe: true,
                pipe_threshold: media::DEFAULT_PIPE_THRESHOLD,
                turn: Turn {
                    urls: String::new(),
                    secret: None,
                    username: None,
                    credential: None,
                    ttl_secs: 86_400,
                    force_relay: false,
                },
            },
            webhooks: Webhooks {
                urls: String::new(),
                secret: None,
                timeout_ms: 5_000,
                max_attempts: 10,
                retry_base_ms: 1_000,
                retry_max_ms: 300_000,
            },
            recording: Recording {
                dir: "./data/recordings".to_owned(),
                max_concurrent: 8,
                min_free_disk_mb: 1024,
                max_duration_secs: 4 * 3600,
                ffmpeg: "ffmpeg".to_owned(),
                composite_concurrency: 1,
                queue_packets: 4096,
            },
            cluster: Cluster {
                redis_url: None,
                node_id: None,
                internal_address: None,
                key_prefix: "meet".to_owned(),
                request_timeout_ms: 2_000,
                secret: None,
            },
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(format!("config file {} does not exist", f.display()));
            }
            fig = fig.merge(Toml::file(f));
        }
        // MEET_CONFIG names the file (clap reads it for `--config`); it is not a key of the tree.
        fig = fig.merge(
            Env::prefixed("MEET_")
                .filter(|key| key != "config")
                .split("__"),
        );
        fig.extract().map_err(|e| format!("configuration: {e}"))
    }

    /// Cluster mode needs a database every node shares, and Redis ≥ 7.
    fn validate_cluster(&mut self) -> Result<(), String> {
        let c = &mut self.cluster;
        if c.redis_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
            c.redis_url = None; // `MEET_CLUSTER__REDIS_URL=` (empty) means single node
        }
        let Some(url) = &c.redis_url else {
            return Ok(());
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "cluster.redis_url (MEET_CLUSTER__REDIS_URL) must start with redis:// or rediss://, got {:?}",
                store::redact_url(url)
            ));
        }
        if !self.database.url.starts_with("postgres") {
            return Err(
                "cluster mode (MEET_CLUSTER__REDIS_URL is set) needs PostgreSQL, which every node shares: set \
                 MEET_DATABASE__URL=postgres://… (SQLite is one node's file; chat acked on one node must be \
                 readable on every other)"
                    .into(),
            );
        }
        if self.dev_mode {
            // Each node would sign development tokens with a key of its own, valid nowhere else.
            return Err("development mode (--dev) is single-node only: unset MEET_CLUSTER__REDIS_URL, or run \
                 without --dev and a shared MEET_AUTH__SECRET / public key"
                .into());
        }
        if c.secret.as_ref().is_none_or(|s| s.len() < 16) {
            return Err(
                "cluster mode needs MEET_CLUSTER__SECRET (at least 16 characters, the same on every node): it \
                 authenticates the nodes' calls to each other"
                    .into(),
            );
        }
        if let Some(id) = &c.node_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(format!(
                    "cluster.node_id (MEET_CLUSTER__NODE_ID) must be 1–64 letters, digits, '-' or '_', got {id:?}"
                ));
            }
        }
        if c.key_prefix.is_empty()
            || c.key_prefix.len() > 64
            || c.key_prefix.contains(char::is_whitespace)
        {
            return Err("cluster.key_prefix must be 1–64 characters without spaces".into());
        }
        in_range(
            "cluster.request_timeout_ms",
            c.request_timeout_ms,
            100..=60_000,
        )?;
        Ok(())
    }

    /// Checks what serde cannot; fills the public key from its file. Every number has a range: a zero or absurd
    /// value stops the server with a message naming the setting, instead of a server that misbehaves later.
    pub fn validate(&mut self) -> Result<(), String> {
        let host: std::net::IpAddr = self.http.host.parse().map_err(|_| {
            format!(
                "http.host (MEET_HTTP__HOST) must be an IP address, got {:?}",
                self.http.host
            )
        })?;
        if self.dev_mode && !host.is_loopback() {
            return Err(format!(
                "development mode (MEET_DEV_MODE / --dev) mints tokens for anyone who asks and creates meetings on \
                 first join, so it listens only on a loopback address: set MEET_HTTP__HOST to 127.0.0.1 or ::1 \
                 (got {:?}), or turn development mode off",
                self.http.host
            ));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err("database.url must start with sqlite: or postgres://".into());
        }
        self.validate_cluster()?;
        if let Some(file) = &self.auth.public_key_file {
            let pem = std::fs::read_to_string(file)
                .map_err(|e| format!("auth.public_key_file {file}: {e}"))?;
            self.auth.public_key_pem = Some(pem);
        }
        if self.metrics.token.as_deref().is_some_and(str::is_empty) {
            return Err("metrics.token (MEET_METRICS__TOKEN) must not be empty when set".into());
        }
        const HOUR_MS: u64 = 3_600_000;
        in_range(
            "meetings.default_max_participants",
            self.meetings.default_max_participants,
            1..=meeting::service_limits::MAX_PARTICIPANTS,
        )?;
        in_range(
            "meetings.recent_messages",
            self.meetings.recent_messages,
            0..=500,
        )?;
        in_range(
            "meetings.ended_state_secs",
            self.meetings.ended_state_secs,
            1..=86_400,
        )?;
        in_range(
            "meetings.rejoin_grace_secs",
            self.meetings.rejoin_grace_secs,
            0..=3600,
        )?;
        for (name, l) in [
            ("send_message", self.limits.send_message),
            ("typing", self.limits.typing),
            ("reaction", self.limits.reaction),
            ("stats", self.limits.stats),
            ("create_transport", self.limits.create_transport),
            ("connect_transport", self.limits.connect_transport),
            ("produce", self.limits.produce),
            ("consume", self.limits.consume),
            ("media_control", self.limits.media_control),
        ] {
            in_range(&format!("limits.{name}.count"), l.count, 1..=1_000_000)?;
            // The limiter forgets logs idle for an hour, so a longer window would not be enforced.
            in_range(
                &format!("limits.{name}.window_ms"),
                l.window_ms,
                1..=HOUR_MS,
            )?;
        }
        in_range(
            "socket.max_payload_bytes",
            self.socket.max_payload_bytes,
            1024..=16 * 1024 * 1024,
        )?;
        in_range(
            "socket.ping_interval_ms",
            self.socket.ping_interval_ms,
            1_000..=300_000,
        )?;
        in_range(
            "socket.ping_timeout_ms",
            self.socket.ping_timeout_ms,
            1_000..=300_000,
        )?;
        in_range("shutdown.grace_ms", self.shutdown.grace_ms, 100..=300_000)?;
        in_range(
            "shutdown.reconnect_after_ms",
            self.shutdown.reconnect_after_ms,
            0..=HOUR_MS,
        )?;
        in_range(
            "auth.expiry_grace_secs",
            self.auth.expiry_grace_secs,
            1..=3600,
        )?;
        in_range("media.workers", self.media.workers, 0..=256)?;
        let ip: std::net::IpAddr = self.media.listen_ip.parse().map_err(|_| {
            format!(
                "media.listen_ip must be an IP address, got {:?}",
                self.media.listen_ip
            )
        })?;
        if ip.is_unspecified() {
            return Err(
                "media.listen_ip must be a concrete address (not 0.0.0.0): it is the ICE candidate"
                    .into(),
            );
        }
        if let Some(a) = &self.media.announced_ip {
            a.parse::<std::net::IpAddr>()
                .map_err(|_| format!("media.announced_ip must be an IP address, got {a:?}"))?;
        }
        for (ip, _) in self.media.extra_ips()? {
            if ip.is_unspecified() {
                return Err(
                    "media.extra_ips must be concrete addresses (they are ICE candidates)".into(),
                );
            }
        }
        if !self.media.udp && !self.media.tcp {
            return Err("media.udp and media.tcp cannot both be off".into());
        }
        let ice = self.media.ice();
        for u in &ice.turn_urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:")) {
                return Err(format!(
                    "media.turn.urls: {u:?} is not a turn:, turns: or stun: URL"
                ));
            }
        }
        if !ice.turn_urls.is_empty()
            && ice.turn_secret.is_none()
            && (ice.turn_username.is_none() || ice.turn_credential.is_none())
            && ice.turn_urls.iter().any(|u| !u.starts_with("stun:"))
        {
            return Err("media.turn: set secret, or username and credential".into());
        }
        if ice.force_relay && ice.turn_urls.iter().all(|u| u.starts_with("stun:")) {
            return Err("media.turn.force_relay needs a TURN URL in media.turn.urls".into());
        }
        in_range(
            "media.turn.ttl_secs",
            self.media.turn.ttl_secs,
            60..=30 * 86_400,
        )?;
        if self.media.port_min == 0 || self.media.port_min > self.media.port_max {
            return Err("media.port_min must be 1..=media.port_max".into());
        }
        in_range(
            "media.consent_timeout_ms",
            self.media.consent_timeout_ms,
            1_000..=600_000,
        )?;
        in_range(
            "media.connect_timeout_ms",
            self.media.connect_timeout_ms,
            1_000..=600_000,
        )?;
        let r = &self.recording;
        if r.dir.trim().is_empty() {
            return Err("recording.dir (MEET_RECORDING__DIR) must not be empty".into());
        }
        in_range("recording.max_concurrent", r.max_concurrent, 0..=10_000)?;
        in_range(
            "recording.min_free_disk_mb",
            r.min_free_disk_mb,
            0..=100_000_000,
        )?;
        in_range(
            "recording.max_duration_secs",
            r.max_duration_secs,
            0..=7 * 86_400,
        )?;
        in_range(
            "recording.composite_concurrency",
            r.composite_concurrency,
            1..=64,
        )?;
        in_range("recording.queue_packets", r.queue_packets, 16..=1_000_000)?;
        let w = &self.webhooks;
        in_range("webhooks.timeout_ms", w.timeout_ms, 100..=120_000)?;
        in_range("webhooks.max_attempts", w.max_attempts, 1..=100)?;
        in_range("webhooks.retry_base_ms", w.retry_base_ms, 10..=3_600_000)?;
        in_range(
            "webhooks.retry_max_ms",
            w.retry_max_ms,
            w.retry_base_ms..=86_400_000,
        )?;
        for url in w.url_list() {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
                return Err(format!(
                    "webhooks.urls (MEET_WEBHOOKS__URLS) must be comma-separated http:// or https:// URLs, got {:?}",
                    store::redact_url(&url)
                ));
            }
        }
        if !w.url_list().is_empty() && w.secret.as_deref().map_or(0, str::len) < 16 {
            return Err(
                "webhooks.secret (MEET_WEBHOOKS__SECRET) of at least 16 characters is required when webhooks.urls is \
                 set: receivers verify each delivery's signature with it"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `key` as an environment variable: `socket.ping_interval_ms` → `MEET_SOCKET__PING_INTERVAL_MS`.
fn env_name(key: &str) -> String {
    format!("MEET_{}", key.to_uppercase().replace('.', "__"))
}

fn in_range<T>(key: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<(), String>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} ({}) must be {}..={}, got {value}",
            env_name(key),
            range.start(),
            range.end()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_env_overrides() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MEET_HTTP__PORT", "0");
            jail.set_env("MEET_AUTH__SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret");
            jail.set_env("MEET_LIMITS__SEND_MESSAGE__COUNT", "1000");
            jail.create_file(
                "meet.toml",
                "dev_mode = true\n[database]\nurl = \"postgres://u:pw@h/db\"\n",
            )?;
            let mut c = Config::load(Some(Path::new("meet.toml"))).map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())?;
            assert_eq!(c.http.port, 0);
            assert!(c.dev_mode);
            assert_eq!(c.limits.send_message.count, 1000);
            let dbg = format!("{c:?}");
            assert!(!dbg.contains("s3cret"), "{dbg}");
            assert!(!dbg.contains(":pw@"), "{dbg}");
            Ok(())
        });
    }

    #[test]
    fn cluster_mode_needs_postgres_a_redis_url_and_no_dev_mode() {
        let cluster = |c: &mut Config| {
            c.auth.secret = Some("s3cret-s3cret-s3cret-s3cret-s3cret".into());
            c.database.url = "postgres://u:pw@h/db".into();
            c.cluster.redis_url = Some("redis://:hunter2@127.0.0.1:6379".into());
            c.cluster.node_id = Some("node-1".into());
            c.cluster.secret = Some("cluster-secret-0123456789".into());
        };
        let mut ok = Config::default();
        cluster(&mut ok);
        ok.validate().expect("a cluster member on PostgreSQL");
        let dbg = format!("{:?}", ok.cluster);
        assert!(!dbg.contains("hunter2"), "{dbg}");

        let mut sqlite = Config::default();
        cluster(&mut sqlite);
        sqlite.database.url = "sqlite://data/meet.db?mode=rwc".into();
        let e = sqlite.validate().unwrap_err();
        assert!(e.contains("needs PostgreSQL"), "{e}");

        let mut dev = Config::default();
        cluster(&mut dev);
        dev.dev_mode = true;
        assert!(dev.validate().unwrap_err().contains("single-node only"));

        let mut url = Config::default();
        cluster(&mut url);
        url.cluster.redis_url = Some("http://127.0.0.1:6379".into());
        assert!(url
            .validate()
            .unwrap_err()
            .contains("MEET_CLUSTER__REDIS_URL"));

        let mut id = Config::default();
        cluster(&mut id);
        id.cluster.node_id = Some("node 1; drop".into());
        assert!(id.validate().unwrap_err().contains("MEET_CLUSTER__NODE_ID"));

        // an empty URL (e.g. `MEET_CLUSTER__REDIS_URL=`) is a single node, SQLite fine
        let mut empty = Config::default();
        empty.cluster.redis_url = Some(String::new());
        empty.validate().expect("single node");
        assert!(empty.cluster.redis_url.is_none());
    }

    #[test]
    fn rejects_bad_values_clearly() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MEET_HTTP__PORT", "not-a-port");
            assert!(Config::load(None).is_err());
            jail.set_env("MEET_HTTP__PORT", "1");
            jail.set_env("MEET_NOPE", "x");
            assert!(Config::load(None).unwrap_err().contains("nope"));
            Ok(())
        });
        let mut c = Config::default();
        c.media.listen_ip = "0.0.0.0".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn zero_and_absurd_numbers_are_refused_with_the_setting_named() {
        type Edit = fn(&mut Config);
        let cases: [(&str, Edit); 16] = [
            ("MEET_SOCKET__PING_INTERVAL_MS", |c| {
                c.socket.ping_interval_ms = 0
            }),
            ("MEET_SOCKET__PING_INTERVAL_MS", |c| {
                c.socket.ping_interval_ms = 86_400_000
            }),
            ("MEET_SOCKET__PING_TIMEOUT_MS", |c| {
                c.socket.ping_timeout_ms = 0
            }),
            ("MEET_SOCKET__MAX_PAYLOAD_BYTES", |c| {
                c.socket.max_payload_bytes = 10
            }),
            ("MEET_SOCKET__MAX_PAYLOAD_BYTES", |c| {
                c.socket.max_payload_bytes = u64::MAX
            }),
            ("MEET_MEETINGS__RECENT_MESSAGES", |c| {
                c.meetings.recent_messages = 1_000_000
            }),
            ("MEET_MEETINGS__REJOIN_GRACE_SECS", |c| {
                c.meetings.rejoin_grace_secs = u32::MAX
            }),
            ("MEET_MEETINGS__DEFAULT_MAX_PARTICIPANTS", |c| {
                c.meetings.default_max_participants = 0
            }),
            ("MEET_LIMITS__TYPING__COUNT", |c| c.limits.typing.count = 0),
            ("MEET_LIMITS__STATS__WINDOW_MS", |c| {
                c.limits.stats.window_ms = 0
            }),
            ("MEET_LIMITS__SEND_MESSAGE__WINDOW_MS", |c| {
                c.limits.send_message.window_ms = 86_400_000
            }),
            ("MEET_SHUTDOWN__GRACE_MS", |c| c.shutdown.grace_ms = 0),
            ("MEET_SHUTDOWN__RECONNECT_AFTER_MS", |c| {
                c.shutdown.reconnect_after_ms = u64::MAX
            }),
            ("MEET_AUTH__EXPIRY_GRACE_SECS", |c| {
                c.auth.expiry_grace_secs = 0
            }),
            ("MEET_MEDIA__WORKERS", |c| c.media.workers = 100_000),
            ("MEET_METRICS__TOKEN", |c| {
                c.metrics.token = Some(String::new())
            }),
        ];
        for (setting, edit) in cases {
            let mut c = Config::default();
            edit(&mut c);
            let err = c.validate().expect_err(setting);
            assert!(err.contains(setting), "{setting}: {err}");
        }
        // the bounds themselves pass
        let mut c = Config::default();
        c.socket.ping_interval_ms = 1_000;
        c.socket.max_payload_bytes = 16 * 1024 * 1024;
        c.meetings.rejoin_grace_secs = 0;
        c.limits.send_message.count = 1_000_000; // the load benchmark's setting
        c.media.workers = 0;
        c.validate().expect("bounds are inclusive");
    }

    #[test]
    fn development_mode_listens_only_on_loopback() {
        for host in ["0.0.0.0", "192.168.1.10", "::"] {
            let mut c = Config {
                dev_mode: true,
                ..Config::default()
            };
            c.http.host = host.into();
            let err = c.validate().expect_err(host);
            assert!(err.contains("MEET_HTTP__HOST"), "{err}");
            c.dev_mode = false;
            c.validate().expect("production may listen anywhere");
        }
        for host in ["127.0.0.1", "::1"] {
            let mut c = Config {
                dev_mode: true,
                ..Config::default()
            };
            c.http.host = host.into();
            c.validate().expect(host);
        }
    }

    #[test]
    fn meet_config_names_the_file_and_is_not_a_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MEET_CONFIG", "meet.toml");
            jail.create_file("meet.toml", "[meetings]\nrecent_messages = 7\n")?;
            let c = Config::load(Some(Path::new("meet.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.meetings.recent_messages, 7);
            Ok(())
        });
    }
}
