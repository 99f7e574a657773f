//! The media plane's I/O shell. N worker threads (default one per core), each a single-threaded tokio loop that
//! owns one UDP socket (one port, shared by all of its transports) and one [`sfu::Core`]. The domain reaches a
//! worker through [`MediaEngine::call`], which runs a closure on the worker's core and returns its result; a
//! meeting's router lives on one worker, chosen by hashing the meeting id.
//!
//! What a core reports without being asked (a transport that failed and was closed, the dominant speaker and audio
//! levels of a meeting) comes out of
//! [`MediaEngine::take_events`]; each worker also publishes its object counts as gauges
//! (`meet_media_transports`, `meet_media_producers`, `meet_media_consumers`, labelled by worker).
//!
//! Datagrams move in batches (`recvmmsg`/`sendmmsg`, `udp.rs`).
//!
//! A meeting bigger than one worker (`placement.rs`): once a meeting's home worker carries
//! [`MediaConfig::pipe_threshold`] of its recv transports, new ones go to the least loaded worker, and the producers
//! their consumers need are piped there from the home worker (`sfu::Core::pipe_producer`): the packets, and the
//! keyframe requests and layer needs coming back, move over in-process channels between the worker threads.

mod placement;
mod shaper;
mod udp;

pub use shaper::{debug_cap, DEFAULT_QUEUE as DEFAULT_CAP_QUEUE};

pub mod tcp;

use sfu::Core;
pub use sfu::{CoreEvent, Liveness};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The address the UDP sockets bind to (and the ICE candidate str0m checks against): a concrete address.
    pub listen_ip: IpAddr,
    /// What clients are told to send to (a public address when behind NAT); the listen address when None.
    pub announced_ip: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// When a transport whose peer is gone is closed.
    pub liveness: Liveness,
    /// More addresses to listen on and announce, each with its announced address (itself when None): IPv6 next
    /// to IPv4, a private next to a public one. Every worker binds its port on each.
    pub extra_ips: Vec<(IpAddr, Option<IpAddr>)>,
    /// ICE over UDP (candidates for every address); off = only TCP candidates (the primary UDP socket stays
    /// bound, unannounced).
    pub udp: bool,
    /// ICE over TCP: each worker also listens on TCP, same port as its UDP socket (`tcp passive` candidates,
    /// RFC 4571 framing).
    pub tcp: bool,
    /// Bandwidth estimation on recv transports drives each consumer's simulcast layer (`Core::set_bandwidth_estimation`).
    pub bwe: bool,
    /// Recv transports of one meeting on its home worker before its next ones go to the least loaded worker,
    /// which gets the meeting's producers through pipes (`placement.rs`); 0 = every transport on the home worker.
    pub pipe_threshold: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            announced_ip: None,
            port_min: 40_000,
            port_max: 49_999,
            workers: 0,
            liveness: Liveness::default(),
            extra_ips: Vec::new(),
            udp: true,
            tcp: true,
            bwe: true,
            pipe_threshold: DEFAULT_PIPE_THRESHOLD,
        }
    }
}

/// See [`MediaConfig::pipe_threshold`]: 150 subscribers (audio and video: 300 consumers) on the home worker, about
/// what one core forwards of a 1 Mbps camera with room to spare; on four cores a 1 → 500 webinar uses all four
/// (150 at home, the rest shared out by load).
pub const DEFAULT_PIPE_THRESHOLD: usize = 150;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free UDP port in {0}-{1} on {2}")]
    NoPort(u16, u16, IpAddr),
    #[error("media worker stopped")]
    WorkerGone,
    #[error("starting media worker: {0}")]
    Start(String),
}

type Job = Box<dyn FnOnce(&mut Core, Instant) + Send>;

/// What moves between workers over a pipe (`sfu::PipeOut` to the far worker, `sfu::PipeBack` home).
#[allow(
    clippy::large_enum_variant,
    reason = "`Out` carries the packets: boxing it would allocate per packet"
)]
enum PipeMsg {
    Out(sfu::PipeOut),
    Back(sfu::PipeBack),
}

/// A pipe id names both ends: `(sequence << 32) | (home worker << 16) | far worker`, so a worker routes a pipe's
/// packets with a shift, no lookup.
fn pipe_id(seq: u64, home: usize, far: usize) -> u64 {
    (seq << 32) | ((home as u64 & 0xffff) << 16) | (far as u64 & 0xffff)
}

/// Pipe messages waiting for one worker past which further packets to it are dropped (control messages still go):
/// a worker that cannot keep up must not queue without bound. ~2 s of a 1 Mbps camera piped from 16 publishers.
const PIPE_QUEUE_MAX: usize = 8192;

fn pipe_home(pipe: u64) -> usize {
    ((pipe >> 16) & 0xffff) as usize
}

fn pipe_far(pipe: u64) -> usize {
    (pipe & 0xffff) as usize
}

struct Worker {
    tx: mpsc::UnboundedSender<Job>,
    addr: SocketAddr,
    /// Open transports, as the worker last published them (about once a second).
    transports: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Cloneable handle to every media worker.
#[derive(Clone)]
pub struct MediaEngine {
    workers: std::sync::Arc<Vec<Worker>>,
    events: std::sync::Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<CoreEvent>>>>,
    /// Which worker has which transport, producer and consumer, and the pipes (`placement.rs`).
    placement: std::sync::Arc<std::sync::Mutex<placement::Placement>>,
    /// Setting up a pipe is two calls on two workers: one at a time, so a second consumer waits for the pipe.
    pipe_setup: std::sync::Arc<tokio::sync::Mutex<()>>,
    pipe_threshold: usize,
}

impl MediaEngine {
    pub fn start(cfg: &MediaConfig) -> Result<Self, MediaError> {
        let n = if cfg.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.workers
        };
        if n > 0xffff {
            return Err(MediaError::Start(format!("{n} workers: at most 65535")));
        }
        let mut workers = Vec::with_capacity(n);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let placement = std::sync::Arc::new(std::sync::Mutex::new(placement::Placement::default()));
        let (pipe_txs, mut pipe_rxs): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel::<PipeMsg>()).unzip();
        let pipe_txs = std::sync::Arc::new(pipe_txs);
        let pipe_depths: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
            std::sync::Arc::new((0..n).map(|_| Default::default()).collect());
        let mut next_port = cfg.port_min;
        for i in 0..n {
            let (socket, port, extras) = bind_worker_sockets(cfg, next_port).ok_or(
                MediaError::NoPort(cfg.port_min, cfg.port_max, cfg.listen_ip),
            )?;
            next_port = port.saturating_add(1);
            let local = SocketAddr::new(cfg.listen_ip, port);
            let announced = SocketAddr::new(cfg.announced_ip.unwrap_or(cfg.listen_ip), port);
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let transports = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let shell = Shell {
                transports: transports.clone(),
                index: i,
                liveness: cfg.liveness,
                events: events_tx.clone(),
                bwe: cfg.bwe,
                pipes: pipe_txs.clone(),
                pipe_depths: pipe_depths.clone(),
                placement: placement.clone(),
            };
            let pipe_rx = pipe_rxs.remove(0);
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run_worker(socket, local, announced, (rx, pipe_rx), shell, extras))
                .map_err(|e| MediaError::Start(e.to_string()))?;
            tracing::info!(worker = i, %local, %announced, "media worker started");
            workers.push(Worker {
                tx,
                addr: local,
                transports,
            });
        }
        Ok(Self {
            workers: std::sync::Arc::new(workers),
            events: std::sync::Arc::new(std::sync::Mutex::new(Some(events_rx))),
            placement,
            pipe_setup: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            pipe_threshold: cfg.pipe_threshold,
        })
    }

    /// The stream of what the cores report (failed transports, already closed); taken once, by the domain.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<CoreEvent>> {
        self.events.lock().ok().and_then(|mut g| g.take())
    }

    /// How loaded this node's media plane is: open transports over every worker (cluster mode places new media
    /// homes on the least loaded node).
    pub fn load(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.transports.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// The UDP addresses of the workers.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addr).collect()
    }

    /// The worker that owns `router` (its home worker: its send transports and producers).
    pub fn home_worker(&self, router: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        router.hash(&mut h);
        let i = (h.finish() % self.workers.len().max(1) as u64) as usize;
        i.min(self.workers.len().saturating_sub(1))
    }

    /// Runs `f` on the core of the worker that owns `router`, and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        router: &str,
        f: impl FnOnce(&mut Core, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        self.call_on(self.home_worker(router), f).await
    }

    /// Runs `f` on the core of worker `worker`, and returns its result.
    pub async fn call_on<R: Send + 'static>(
        &self,
        worker: usize,
        f: impl FnOnce(&mut Core, Instant) -> R + Send + 'static,
    ) -> Result<R, MediaError> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |core, now| {
            let _ = reply.send(f(core, now));
        });
        self.workers
            .get(worker)
            .ok_or(MediaError::WorkerGone)?
            .tx
            .send(job)
            .map_err(|_| MediaError::WorkerGone)?;
        rx.await.map_err(|_| MediaError::WorkerGone)
    }
}

/// Last line of defence: the core must never panic on input (fuzzed, tested), but if a dependency does, one bad
/// datagram or request must not take down every meeting on this worker. The failing call is dropped and logged.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        metrics::counter!("meet_media_panics_total").increment(1);
        tracing::error!(what, "media worker caught a panic; the input was dropped");
    }
}

/// A worker's sockets beyond the primary UDP one, and the addresses its transports announce.
struct WorkerSockets {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    listens: Vec<sfu::ListenAddr>,
}

/// The first port from `from` on which every socket of a worker binds: UDP on the primary address, and (as
/// configured) UDP on the extra addresses and TCP on all of them.
fn bind_worker_sockets(
    cfg: &MediaConfig,
    from: u16,
) -> Option<(std::net::UdpSocket, u16, WorkerSockets)> {
    let ips: Vec<(IpAddr, IpAddr)> = std::iter::once((cfg.listen_ip, cfg.announced_ip))
        .chain(cfg.extra_ips.iter().copied())
        .map(|(ip, announced)| (ip, announced.unwrap_or(ip)))
        .collect();
    (from..=cfg.port_max).find_map(|port| {
        let primary = std::net::UdpSocket::bind((cfg.listen_ip, port)).ok()?;
        let mut out = WorkerSockets {
            udp: Vec::new(),
            tcp: Vec::new(),
            listens: Vec::new(),
        };
        let addr = |ip: IpAddr| SocketAddr::new(ip, port);
        if cfg.udp {
            for (i, (ip, announced)) in ips.iter().enumerate() {
                if i > 0 {
                    out.udp.push(std::net::UdpSocket::bind(addr(*ip)).ok()?);
                }
                out.listens.push(sfu::ListenAddr {
                    protocol: sfu::Protocol::Udp,
                    local: addr(*ip),
                    announced: addr(*announced),
                });
            }
        }
        if cfg.tcp {
            for (ip, announced) in &ips {
                out.tcp.push(std::net::TcpListener::bind(addr(*ip)).ok()?);
                out.listens.push(sfu::ListenAddr {
                    protocol: sfu::Protocol::Tcp,
                    local: addr(*ip),
                    announced: addr(*announced),
                });
            }
        }
        Some((primary, port, out))
    })
}

/// What a worker thread needs besides its socket and job queue.
struct Shell {
    transports: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    index: usize,
    liveness: Liveness,
    events: mpsc::UnboundedSender<CoreEvent>,
    bwe: bool,
    /// Every worker's pipe queue, by worker index.
    pipes: std::sync::Arc<Vec<mpsc::UnboundedSender<PipeMsg>>>,
    /// Messages sent to each worker's pipe queue and not yet taken (see [`PIPE_QUEUE_MAX`]).
    pipe_depths: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>>,
    placement: std::sync::Arc<std::sync::Mutex<placement::Placement>>,
}

impl Shell {
    /// Sends what the core has for other workers' pipe producers, and back to other workers' producers.
    fn send_pipes(&self, core: &mut Core) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut dropped = 0u64;
        while let Some(m) = core.poll_pipe_out() {
            let far = pipe_far(m.pipe());
            let (Some(tx), Some(depth)) = (self.pipes.get(far), self.pipe_depths.get(far)) else {
                continue;
            };
            if matches!(m, sfu::PipeOut::Rtp { .. }) && depth.load(Relaxed) >= PIPE_QUEUE_MAX {
                dropped += 1;
                continue;
            }
            depth.fetch_add(1, Relaxed);
            let _ = tx.send(PipeMsg::Out(m));
        }
        while let Some(m) = core.poll_pipe_back() {
            let home = pipe_home(m.pipe());
            if let (Some(tx), Some(depth)) = (self.pipes.get(home), self.pipe_depths.get(home)) {
                depth.fetch_add(1, Relaxed);
                let _ = tx.send(PipeMsg::Back(m));
            }
        }
        if dropped > 0 {
            metrics::counter!("meet_media_pipe_dropped_total").increment(dropped);
        }
    }

    /// One message taken off this worker's pipe queue.
    fn took_pipe_message(&self) {
        if let Some(depth) = self.pipe_depths.get(self.index) {
            depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hands the core's reports to the domain, logged and counted.
    fn forward_events(&self, core: &mut Core) {
        while let Some(e) = core.poll_event() {
            match &e {
                CoreEvent::TransportClosed {
                    transport,
                    router,
                    reason,
                    producers,
                    ..
                } => {
                    if let Ok(mut p) = self.placement.lock() {
                        p.forget_transport(transport);
                        for id in producers {
                            p.forget_producer(id);
                        }
                    }
                    tracing::warn!(%transport, meeting = %router, reason, "transport failed; closed");
                    metrics::counter!("meet_transports_failed_total", "reason" => *reason)
                        .increment(1);
                }
                CoreEvent::ActiveSpeaker { .. }
                | CoreEvent::AudioLevels { .. }
                | CoreEvent::ConnectionQuality { .. }
                | CoreEvent::LayersNeeded { .. }
                | CoreEvent::ConsumerLayersChanged { .. } => {
                    tracing::debug!(event = ?e, "media report")
                }
                _ => tracing::warn!(event = ?e, "media event"),
            }
            let _ = self.events.send(e);
        }
    }

    /// Every transport's once-a-second link figures as histograms (no per-user labels): loss, RTT, jitter.
    fn record_links(&self, core: &mut Core) {
        for f in core.take_link_figures() {
            if let Some(loss) = f.loss {
                metrics::histogram!("meet_connection_loss_ratio").record(f64::from(loss));
            }
            if let Some(rtt) = f.rtt {
                metrics::histogram!("meet_connection_rtt_seconds").record(rtt.as_secs_f64());
            }
            if let Some(jitter) = f.jitter {
                metrics::histogram!("meet_connection_jitter_seconds").record(jitter.as_secs_f64());
            }
        }
    }

    fn publish_counts(&self, core: &Core) {
        let s = core.stats();
        self.transports
            .store(s.transports, std::sync::atomic::Ordering::Relaxed);
        let worker = self.index.to_string();
        metrics::gauge!("meet_media_routers", "worker" => worker.clone()).set(s.routers as f64);
        metrics::gauge!("meet_media_transports", "worker" => worker.clone())
            .set(s.transports as f64);
        metrics::gauge!("meet_media_producers", "worker" => worker.clone()).set(s.producers as f64);
        metrics::gauge!("meet_media_consumers", "worker" => worker).set(s.consumers as f64);
    }
}

fn run_worker(
    socket: std::net::UdpSocket,
    local: SocketAddr,
    announced: SocketAddr,
    (mut rx, mut pipe_rx): (
        mpsc::UnboundedReceiver<Job>,
        mpsc::UnboundedReceiver<PipeMsg>,
    ),
    shell: Shell,
    sockets: WorkerSockets,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "media worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        if socket.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(socket) = tokio::net::UdpSocket::from_std(socket) else {
            return;
        };
        let mut core = Core::new(local, announced);
        core.set_listen_addrs(sockets.listens);
        let mut extras = tcp::Extras::start(sockets.udp, sockets.tcp);
        core.set_clock_base(Instant::now(), std::time::SystemTime::now());
        core.set_liveness(shell.liveness);
        core.set_bandwidth_estimation(shell.bwe);
        let mut shaper = shaper::Shaper::default();
        shell.publish_counts(&core);
        let mut next_counts = Instant::now() + Duration::from_secs(1);
        let mut receiver = udp::Receiver::default();
        let mut sender = udp::Sender::default();
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        loop {
            let now = Instant::now();
            // Cap the wait: str0m deadlines are often a few ms, and a cap keeps timers honest.
            let deadline = core
                .next_deadline()
                .unwrap_or(now + Duration::from_millis(100))
                .min(now + Duration::from_millis(100));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => guarded("command", || job(&mut core, Instant::now())),
                    None => break,
                },
                r = socket.readable() => match r.and_then(|()| receiver.recv(&socket)) {
                    // A batch in one system call; the transports it wrote to are drained once, below.
                    Ok(_) => {
                        let now = Instant::now();
                        for (source, data) in receiver.datagrams() {
                            guarded("datagram", || core.handle_receive(now, source, data));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => tracing::debug!(error = %e, "udp receive"),
                },
                Some(p) = extras.recv() => guarded("packet", || {
                    core.handle_receive_on(Instant::now(), p.protocol, p.local, p.source, &p.data)
                }),
                // Pipes from other workers: what is queued, in one go (bounded, so sockets get their turn).
                Some(m) = pipe_rx.recv() => guarded("pipe", || {
                    let now = Instant::now();
                    let mut next = Some(m);
                    let mut n = 0;
                    while let Some(m) = next.take() {
                        shell.took_pipe_message();
                        match m {
                            PipeMsg::Out(m) => core.handle_pipe_out(now, m),
                            PipeMsg::Back(m) => core.handle_pipe_back(now, m),
                        }
                        n += 1;
                        if n < 256 {
                            next = pipe_rx.try_recv().ok();
                        }
                    }
                }),
                _ = sleep => {}
            }
            let now = Instant::now();
            // Due transports come off the core's deadline heap: no scan of every transport per datagram.
            guarded("timers", || {
                core.handle_timeout(now);
                core.drain_dirty(now);
            });
            shell.send_pipes(&mut core);
            out.extend(std::iter::from_fn(|| core.poll_transmit()));
            shaper.shape(now, &mut out);
            let dropped = sender.dropped;
            sender.send(&socket, &mut out);
            if sender.dropped > dropped {
                metrics::counter!("meet_media_udp_send_dropped_total")
                    .increment(sender.dropped - dropped);
            }
            while let Some(tx) = core.poll_transmit_via() {
                extras.send(tx);
            }
            shell.forward_events(&mut core);
            shell.record_links(&mut core);
            for (protocol, reason) in core.take_ice_failures() {
                metrics::counter!("meet_ice_failures_total", "protocol" => protocol, "reason" => reason)
                    .increment(1);
            }
            if now >= next_counts {
                next_counts = now + Duration::from_secs(1);
                shell.publish_counts(&core);
            }
        }
    });
}
