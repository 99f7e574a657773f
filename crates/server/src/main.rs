//! `meet-server`: the video-meeting backend. Thin main: configuration, tracing, wiring, graceful shutdown.

mod config;
mod internal;

use anyhow::Context;
use axum::Router;
use clap::Parser;
use config::Config;
use meeting::{DomainConfig, Limits, MeetingService};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use signaling::auth::{DevKey, JwtAlgorithm, Verifier};
use state::{Limit, LocalRateLimiter, LocalRuntimeStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::ServeDir;

#[derive(Parser, Debug)]
#[command(
    name = "meet-server",
    version,
    about = "Video-meeting backend: Socket.IO signaling + REST"
)]
struct Cli {
    /// TOML configuration file (layered over the defaults; the environment overrides it).
    #[arg(long, env = "MEET_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: meetings are created on first join and the bundled web client gets tokens from
    /// `/dev/token` (loopback only), signed with a per-run random key. Listens on loopback only.
    #[arg(long)]
    dev: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,socketioxide=warn,engineioxide=warn".into()),
        )
        .init();
    let mut cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meet-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.dev {
        cfg.dev_mode = true;
    }
    if cfg.dev_mode && cfg.auth.algorithm == JwtAlgorithm::HS256 && cfg.auth.secret.is_none() {
        // Nobody knows this one: with no secret configured, only this run's dev tokens are accepted.
        cfg.auth.secret = Some(proto::ids::random_base62(48));
    }
    if let Err(e) = cfg.validate() {
        eprintln!("meet-server: invalid configuration: {e}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meet-server: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meet-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn limit(l: config::LimitConfig) -> Limit {
    Limit {
        count: l.count,
        window: Duration::from_millis(l.window_ms),
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    tracing::info!(config = ?cfg, "starting");
    let prometheus = PrometheusBuilder::new()
        // Connection figures as histograms (a summary's quantiles cannot be summed across nodes).
        .set_buckets_for_metric(
            Matcher::Full("meet_connection_loss_ratio".into()),
            &[0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Prefix("meet_connection_rtt".into()),
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Prefix("meet_connection_jitter".into()),
                &[0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25],
            )
        })
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe_metrics();

    // Development mode signs its tokens with a key of its own, never with the configured secret: a dev token must
    // mean nothing to a production server that shares that secret.
    let dev_key = cfg.dev_mode.then(DevKey::generate);
    let verifier = Arc::new(Verifier::new(&cfg.auth, dev_key.as_ref()).map_err(|e| {
        anyhow::anyhow!(
            "invalid auth configuration: {e} (set MEET_AUTH__SECRET, or run with --dev)"
        )
    })?);
    let dev_signer = dev_key.as_ref().map(|k| Arc::new(k.signer()));

    let mut store = store::Store::connect(&cfg.database.url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                store::redact_url(&cfg.database.url)
            )
        })?;
    tracing::info!(backend = ?store.backend(), "database ready (migrations applied)");
    let webhook_urls = cfg.webhooks.url_list();
    if !webhook_urls.is_empty() {
        store.set_webhook_urls(webhook_urls.clone());
        webhooks::spawn(
            store.clone(),
            webhooks::WebhookConfig {
                secret: cfg.webhooks.secret.clone().unwrap_or_default(),
                timeout: Duration::from_millis(cfg.webhooks.timeout_ms),
                max_attempts: cfg.webhooks.max_attempts,
                retry_base: Duration::from_millis(cfg.webhooks.retry_base_ms),
                retry_max: Duration::from_millis(cfg.webhooks.retry_max_ms),
            },
        )
        .map_err(anyhow::Error::msg)?;
        tracing::info!(receivers = webhook_urls.len(), "webhooks on");
    }

    let media = media::MediaEngine::start(&media::MediaConfig {
        listen_ip: cfg.media.listen_ip.parse().context("media.listen_ip")?,
        announced_ip: cfg
            .media
            .announced_ip
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("media.announced_ip")?,
        port_min: cfg.media.port_min,
        port_max: cfg.media.port_max,
        workers: cfg.media.workers,
        extra_ips: cfg.media.extra_ips().map_err(anyhow::Error::msg)?,
        udp: cfg.media.udp,
        tcp: cfg.media.tcp,
        bwe: cfg.media.bwe,
        pipe_threshold: cfg.media.pipe_threshold,
        liveness: media::Liveness {
            consent_timeout: Duration::from_millis(cfg.media.consent_timeout_ms),
            connect_timeout: Duration::from_millis(cfg.media.connect_timeout_ms),
        },
    })
    .context("starting the media workers")?;
    tracing::info!(addresses = ?media.addresses(), "media plane ready");
    let media_load = media.clone(); // cluster mode publishes its load
    let media_events = media.take_events();
    let recorder = recorder::Recorder::new(
        recorder::RecorderConfig {
            dir: cfg.recording.dir.clone().into(),
            max_concurrent: cfg.recording.max_concurrent as usize,
            min_free_disk_mb: cfg.recording.min_free_disk_mb,
            max_duration_secs: cfg.recording.max_duration_secs,
            ffmpeg: cfg.recording.ffmpeg.clone(),
            composite_concurrency: cfg.recording.composite_concurrency as usize,
            queue_packets: cfg.recording.queue_packets as usize,
        },
        store.clone(),
    );
    let recovered = recorder.recover().await;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "recordings left unfinished by the last run were finalized"
        );
    }
    let (runtime_store, rate_limiter) = shared_state(&cfg.cluster).await?;
    let service = Arc::new(
        MeetingService::new(
            Arc::new(store.clone()),
            runtime_store,
            rate_limiter,
            Arc::new(media.clone()),
            DomainConfig {
                dev_mode: cfg.dev_mode,
                default_max_participants: cfg.meetings.default_max_participants,
                limits: Limits {
                    send_message: limit(cfg.limits.send_message),
                    typing: limit(cfg.limits.typing),
                    reaction: limit(cfg.limits.reaction),
                    stats: limit(cfg.limits.stats),
                    create_transport: limit(cfg.limits.create_transport),
                    connect_transport: limit(cfg.limits.connect_transport),
                    produce: limit(cfg.limits.produce),
                    consume: limit(cfg.limits.consume),
                    media_control: limit(cfg.limits.media_control),
                    restart_ice: limit(cfg.limits.restart_ice),
                },
                recent_messages: cfg.meetings.recent_messages,
                rejoin_grace_ms: i64::from(cfg.meetings.rejoin_grace_secs) * 1000,
                ended_state_ms: u64::from(cfg.meetings.ended_state_secs) * 1000,
                ice: cfg.media.ice(),
                node_id: cfg
                    .cluster
                    .redis_url
                    .is_some()
                    .then(|| node_id(&cfg.cluster)),
            },
        )
        .with_recorder(recorder.clone()),
    );
    let service = match &cfg.cluster.redis_url {
        // Cluster mode: media requests for a meeting whose media lives on another node run there.
        Some(url) => {
            let remote = signaling::cluster::HttpRemote::connect(
                &signaling::resp3_url(url),
                &cfg.cluster.key_prefix,
                cfg.cluster.secret.as_deref().unwrap_or_default(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            let service = Arc::into_inner(service)
                .context("the meeting service is not shared yet")?
                .with_remote(Arc::new(remote));
            Arc::new(service)
        }
        None => service,
    };
    if let Some(events) = media_events {
        service.spawn_media_events(events);
    }
    let limits = signaling::SocketLimits {
        max_payload_bytes: cfg.socket.max_payload_bytes,
        ping_interval: Duration::from_millis(cfg.socket.ping_interval_ms),
        ping_timeout: Duration::from_millis(cfg.socket.ping_timeout_ms),
    };
    // Bound before anything registers this node (a cluster member announces its address, and port 0 picks one).
    let listener = tokio::net::TcpListener::bind((cfg.http.host.as_str(), cfg.http.port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.http.host, cfg.http.port))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let edge = Edge {
        service,
        verifier,
        prometheus,
        dev_signer,
        store,
    };
    match &cfg.cluster.redis_url {
        Some(url) => {
            let link = signaling::ClusterLink {
                redis_url: url.clone(),
                prefix: cfg.cluster.key_prefix.clone(),
                request_timeout: Duration::from_millis(cfg.cluster.request_timeout_ms),
            };
            let (layer, io, shared, driver) = signaling::build_cluster(
                edge.service.clone(),
                edge.verifier.clone(),
                &limits,
                &link,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            tracing::info!(node = %node_id(&cfg.cluster), "cluster member: socket.io rooms over Redis");
            let healthy: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || driver.healthy());
            let node = signaling::cluster::NodeInfo {
                node_id: node_id(&cfg.cluster),
                internal_address: cfg
                    .cluster
                    .internal_address
                    .clone()
                    .unwrap_or_else(|| format!("http://{bound}")),
                load: {
                    let media = media_load.clone();
                    Arc::new(move || media.load())
                },
            };
            let membership = signaling::cluster::Membership::start(
                &signaling::resp3_url(url),
                &cfg.cluster.key_prefix,
                node,
                io.clone(),
                edge.service.clone(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            let internal = internal::routes(internal::Internal {
                service: edge.service.clone(),
                io: Arc::new(io.clone()),
                secret: cfg.cluster.secret.clone().unwrap_or_default().into(),
            });
            let member = Member {
                healthy,
                internal,
                node_id: node_id(&cfg.cluster),
            };
            serve(&cfg, edge, listener, layer, io, shared, Some(member)).await?;
            membership.deregister().await;
            Ok(())
        }
        None => {
            let (layer, io, shared) =
                signaling::build(edge.service.clone(), edge.verifier.clone(), &limits);
            serve(&cfg, edge, listener, layer, io, shared, None).await
        }
    }
}

/// What a cluster member's HTTP edge adds: the adapter's health (readiness) and the node-to-node routes.
struct Member {
    healthy: Arc<dyn Fn() -> bool + Send + Sync>,
    internal: Router,
    node_id: String,
}

/// What the HTTP edge needs besides the socket.io layer.
struct Edge {
    service: Arc<MeetingService>,
    verifier: Arc<Verifier>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    dev_signer: Option<Arc<signaling::auth::DevSigner>>,
    store: store::Store,
}

/// The meetings' runtime state and the rate-limit windows: in process on a single node, in Redis for a cluster
/// member (every node sees one meeting state and one window per user, DESIGN §6).
async fn shared_state(
    cluster: &config::Cluster,
) -> anyhow::Result<(Arc<dyn state::RuntimeStore>, Arc<dyn state::RateLimiter>)> {
    let Some(url) = &cluster.redis_url else {
        return Ok((
            Arc::new(LocalRuntimeStore::new()),
            Arc::new(LocalRateLimiter::new()),
        ));
    };
    let redis = state::RedisState::connect(url, &cluster.key_prefix)
        .await
        .with_context(|| format!("connecting to Redis at {}", store::redact_url(url)))?;
    Ok((
        Arc::new(redis.runtime_store()),
        Arc::new(redis.rate_limiter()),
    ))
}

/// This node's id in the cluster: configured, or made up at start.
fn node_id(cluster: &config::Cluster) -> String {
    static RANDOM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    cluster.node_id.clone().unwrap_or_else(|| {
        RANDOM
            .get_or_init(|| format!("node-{}", proto::ids::random_base62(8)))
            .clone()
    })
}

/// Serves HTTP (REST, metrics, the web client) and socket.io until a shutdown signal, then stops gracefully.
async fn serve<A: socketioxide::adapter::Adapter>(
    cfg: &Config,
    edge: Edge,
    listener: tokio::net::TcpListener,
    io_layer: socketioxide::layer::SocketIoLayer<A>,
    io: socketioxide::SocketIo<A>,
    shared: signaling::Shared,
    member: Option<Member>,
) -> anyhow::Result<()> {
    let (pubsub_healthy, internal, drain) = match member {
        Some(m) => (Some(m.healthy), Some(m.internal), Some(m.node_id)),
        None => (None, None, None),
    };
    let Edge {
        service,
        verifier,
        prometheus,
        dev_signer,
        store,
    } = edge;
    let ready = Arc::new(AtomicBool::new(true));
    let api = api::router(api::ApiState {
        recordings_dir: cfg.recording.dir.clone().into(),
        service,
        verifier,
        io: Arc::new(io.clone()),
        prometheus,
        metrics_token: cfg.metrics.token.clone(),
        dev_signer,
        ready: ready.clone(),
        pubsub_healthy,
        debug_hooks: cfg.media.debug_hooks,
    });
    let api = match internal {
        Some(routes) => api.merge(routes),
        None => api,
    };
    let app: Router = api
        .fallback_service(web_client(&cfg.web.dir))
        .layer(io_layer)
        .layer(axum::middleware::map_request(detach_request_head));

    let signal = shutdown_signal()?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Tests and scripts read this line to learn the port (bind to port 0 for a free one).
    println!("meet-server listening on http://{addr}");
    if cfg.dev_mode {
        println!("development mode: open http://{addr}/ in two browser tabs to meet");
    }
    tracing::info!(%addr, dev_mode = cfg.dev_mode, "listening");

    let grace = Duration::from_millis(cfg.shutdown.grace_ms);
    let reconnect_after = Duration::from_millis(cfg.shutdown.reconnect_after_ms);
    let shutdown = {
        let io = io.clone();
        async move {
            signal.await;
            tracing::info!("shutdown requested: notifying clients");
            ready.store(false, Ordering::Release);
            // Watchdog: whatever hangs, the process ends.
            tokio::spawn(async move {
                tokio::time::sleep(grace * 3).await;
                tracing::error!("graceful shutdown took too long; exiting");
                std::process::exit(1);
            });
            if let Some(node) = &drain {
                // Cluster mode: no meeting's media stays on a node that is going away. Participants on other nodes
                // set their media up again (on a new home) now, not when this process is gone.
                for out in shared.service.drain_media_homes(node).await {
                    signaling::deliver(&io, None, &out).await;
                }
            }
            signaling::shutdown(&io, &shared, reconnect_after, grace).await;
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// hyper parses a request's URI and header values as slices of the connection's HTTP/1 read buffer (8–16 KB), and
/// engineioxide keeps every socket.io session's request head for the session's life (`req_parts`): each websocket
/// would pin that whole buffer (heaptrack: ~16 KB per connection in `Buffered::poll_read_from_io`). Copying the
/// head out (a few hundred bytes) before socket.io sees it lets the buffer go after the upgrade.
async fn detach_request_head(mut req: axum::extract::Request) -> axum::extract::Request {
    if req.uri().path().starts_with("/socket.io") {
        let owned: axum::http::HeaderMap = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.clone(),
                    axum::http::HeaderValue::from_bytes(v.as_bytes()).ok()?,
                ))
            })
            .collect();
        *req.headers_mut() = owned;
        if let Ok(uri) = req.uri().to_string().parse::<axum::http::Uri>() {
            // axum's router stored a clone of the parsed URI as `OriginalUri` before any layer ran: that clone is
            // a slice of the same read buffer, so it is replaced too (else the buffer stays pinned).
            req.extensions_mut()
                .insert(axum::extract::OriginalUri(uri.clone()));
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The built web client when present (unknown paths 404); otherwise a short page at `/` saying how to build it.
fn web_client(dir: &str) -> Router {
    if std::path::Path::new(dir).join("index.html").exists() {
        Router::new().fallback_service(ServeDir::new(dir))
    } else {
        let page = || async {
            axum::response::Html(
                "<!doctype html><title>meet-server</title><h1>meet-server is running</h1>\
                 <p>The web client is not built in this checkout (web/dist is missing). The signaling API is \
                 available over Socket.IO at this address; see README.md and docs/protocol.md.</p>",
            )
        };
        Router::new()
            .route("/", axum::routing::get(page))
            .route("/index.html", axum::routing::get(page))
    }
}

/// Registers the SIGTERM/SIGINT handlers now (before the "listening" line, so a signal sent right after it is
/// never lost to the default action) and resolves when one arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn describe_metrics() {
    metrics::describe_gauge!("meet_connections", "Connected Socket.IO clients");
    metrics::describe_gauge!(
        "meet_meetings_active",
        "Meetings with at least one participant"
    );
    metrics::describe_gauge!("meet_participants", "Participants in meetings");
    metrics::describe_counter!("meet_events_total", "Socket.IO requests received, by event");
    metrics::describe_counter!("meet_errors_total", "Coded errors returned, by code");
    metrics::describe_histogram!(
        "meet_connection_loss_ratio",
        "Packet loss of each connected transport, per one-second window (the worse direction)"
    );
    metrics::describe_histogram!(
        "meet_connection_rtt_seconds",
        "Round-trip time of each connected transport, per one-second window"
    );
    metrics::describe_histogram!(
        "meet_connection_jitter_seconds",
        "Jitter of what each connected send transport delivers, per one-second window"
    );
    metrics::describe_counter!(
        "meet_connection_quality_changes_total",
        "Participants' connection-quality changes, by the new quality"
    );
    metrics::describe_counter!("meet_auth_failures_total", "Refused socket handshakes");
    metrics::describe_counter!(
        "meet_transports_failed_total",
        "WebRTC transports closed because they failed (DTLS, ICE consent lost, never connected), by reason"
    );
    metrics::describe_gauge!(
        "meet_media_transports",
        "Open WebRTC transports, by media worker"
    );
    metrics::describe_gauge!("meet_media_producers", "Open producers, by media worker");
    metrics::describe_gauge!(
        "meet_media_routers",
        "Meetings whose media this node carries (cluster mode: the meetings whose media home it is), by media worker"
    );
    metrics::describe_gauge!(
        "meet_cluster_nodes_alive",
        "Cluster mode: nodes whose heartbeat is fresh, as this node sees them"
    );
    metrics::describe_counter!(
        "meet_cluster_nodes_lost_total",
        "Cluster mode: dead nodes whose sessions this node (the reaper of the moment) removed"
    );
    metrics::describe_gauge!(
        "meet_meeting_states",
        "Meetings with in-memory state: live, ended (kept a while), empty but holding a dropped hand"
    );
    metrics::describe_gauge!("meet_media_consumers", "Open consumers, by media worker");
    metrics::gauge!("meet_connections").set(0.0);
    metrics::gauge!("meet_meetings_active").set(0.0);
    metrics::gauge!("meet_participants").set(0.0);
    metrics::counter!("meet_events_total", "event" => "join-meeting").absolute(0);
    metrics::counter!("meet_errors_total", "code" => "INTERNAL_ERROR").absolute(0);
    metrics::counter!("meet_auth_failures_total").absolute(0);
}
