//! meet-load: how much memory meet-server spends per joined connection, and how fast it fans a chat message out
//! to a big meeting. See README.md.

mod media;
mod server;
mod sio;
mod soak;
mod storm;

use clap::Parser;
use serde_json::json;
use server::{Minter, Server, StartOptions};
use sio::{classify, event_name, Conn, Packet};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

const DEFAULT_SECRET: &str = "meet-load-benchmark-secret-0123456789abcdef";
const SEQ_MARK: &str = "loadbench seq=";

#[derive(Parser, Debug)]
#[command(
    name = "meet-load",
    about = "Memory-per-connection and chat fan-out latency benchmark for meet-server"
)]
struct Args {
    /// Connections of the memory phase (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Participants per meeting in the memory phase (meetings are created via REST).
    #[arg(long, default_value_t = 100)]
    meeting_size: usize,
    /// Members of the fan-out meeting, not counting the sender (0 skips the phase).
    #[arg(long, default_value_t = 1_000)]
    fanout_members: usize,
    /// `send-message` events the sender sends.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Spacing of the sender's messages.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Connections allowed to be between "TCP connect" and "join acked" at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Wait after the last join before reading the server's RSS (and before the fan-out starts).
    #[arg(long, default_value_t = 2_000)]
    settle_ms: u64,
    /// Memory phase only connects (no join-meeting): isolates the cost of a bare Socket.IO connection.
    #[arg(long)]
    connect_only: bool,
    /// The meet-server binary to start [default: target/release/meet-server].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Attach to a running server (http://host:port) instead of starting one; needs --server-pid and --secret.
    #[arg(long, requires = "server_pid")]
    url: Option<String>,
    /// The pid of the server given by --url (its RSS is read from /proc/<pid>/status).
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// Cluster mode: more nodes of the same cluster (http://host:port, comma-separated). Connections of the memory
    /// and fan-out phases are spread over --url and these in turn (the fan-out sender stays on --url); memory is
    /// read per node from --also-pid.
    #[arg(long, value_delimiter = ',', requires = "url")]
    also_url: Vec<String>,
    /// The pids of --also-url's nodes, in the same order.
    #[arg(long, value_delimiter = ',', requires = "also_url")]
    also_pid: Vec<u32>,
    /// HS256 secret for the tokens (and for the server started here). An attached server needs the one it uses
    /// and a send-message rate limit high enough for --messages.
    #[arg(long, env = "MEET_AUTH__SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// RUST_LOG of the server started here.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Extra environment for the server started here, KEY=VALUE (repeatable).
    #[arg(long = "server-env", value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// campus_id of every benchmark user [default: a fresh one per run].
    #[arg(long)]
    campus: Option<String>,
    #[arg(long, default_value_t = 30)]
    startup_timeout_secs: u64,
    /// Timeout of one connection's connect, and separately of its join.
    #[arg(long, default_value_t = 30)]
    op_timeout_secs: u64,
    /// Timeout of each phase's connect-and-join part.
    #[arg(long, default_value_t = 300)]
    phase_timeout_secs: u64,
    /// How long to wait for outstanding deliveries after the last message was sent.
    #[arg(long, default_value_t = 15)]
    drain_timeout_secs: u64,
    /// Hard bound on the whole run; the server started here is killed either way.
    #[arg(long, default_value_t = 900)]
    max_runtime_secs: u64,
    /// Exit non-zero when more than this share of a phase's connections fail to connect or join.
    #[arg(long, default_value_t = 1.0)]
    max_failure_pct: f64,
    #[arg(long, default_value_t = 2)]
    progress_secs: u64,
    /// Goal for server memory per joined connection.
    #[arg(long, default_value_t = 15.0)]
    goal_kb: f64,
    /// Goal for the fan-out p99 latency.
    #[arg(long, default_value_t = 20.0)]
    goal_p99_ms: f64,
    /// Soak phase: participants join, set up media, leave or drop, over and over for this long (0 skips it).
    #[arg(long, default_value_t = 0)]
    soak_secs: u64,
    /// Participants cycling at once in the soak phase.
    #[arg(long, default_value_t = 40)]
    soak_clients: usize,
    /// Participants per meeting in the soak phase.
    #[arg(long, default_value_t = 5)]
    soak_meeting_size: usize,
    /// Media load instead of the memory and fan-out phases: bots with real ICE/DTLS-SRTP over UDP. Comma-separated
    /// scenarios: fanout (1 publisher → N subscribers), meeting10 (N meetings of 10, everyone publishes),
    /// meetings5 (N meetings of 5).
    #[arg(long, value_delimiter = ',')]
    media_scenario: Vec<String>,
    /// The N of each step, comma-separated [default: fanout 10,50,100,200,400; meeting10 1,2,4,8;
    /// meetings5 2,5,10,20,40]. Steps stop at the first saturated one.
    #[arg(long, value_delimiter = ',')]
    media_steps: Vec<usize>,
    /// Media flows this long after set-up before the measurement window.
    #[arg(long, default_value_t = 3)]
    media_warmup_secs: u64,
    /// The measurement window of each step.
    #[arg(long, default_value_t = 5)]
    media_measure_secs: u64,
    /// Set-up (join, transports, produce, consume, DTLS) bound of each step.
    #[arg(long, default_value_t = 60)]
    media_setup_timeout_secs: u64,
    /// A step is saturated when the receivers lose more than this share of packets.
    #[arg(long, default_value_t = 2.0)]
    media_max_loss_pct: f64,
    /// … or when a media worker thread uses at least this much of a core.
    #[arg(long, default_value_t = 90.0)]
    media_max_worker_cpu_pct: f64,
    /// Bots signaling their set-up at once.
    #[arg(long, default_value_t = 16)]
    media_concurrency: usize,
    /// Record every meeting of the media scenarios (the server's recorder: per-track files, no composite until
    /// the meeting ends); compare the figures with and without to see the recorder's cost.
    #[arg(long)]
    media_record: bool,
    /// Join storm: this many clients connect, then all send join-meeting into one meeting at once; every client
    /// must learn of every participant (0 skips it).
    #[arg(long, default_value_t = 0)]
    storm_clients: usize,
    /// Bound on the join storm from the start signal to the last delivery.
    #[arg(long, default_value_t = 120)]
    storm_timeout_secs: u64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s}"))
}

/// The figures table, filled as phases finish (so a run cut short still prints what it has).
#[derive(Default)]
struct Report {
    rows: Vec<(String, String)>,
    /// Reasons for a non-zero exit.
    failures: Vec<String>,
    /// Notes printed under the table.
    notes: Vec<String>,
}

impl Report {
    fn section(&mut self, name: &str) {
        self.rows.push((name.to_owned(), String::new()));
    }
    fn row(&mut self, label: &str, value: String) {
        self.rows.push((format!("  {label}"), value));
    }
}

type SharedReport = Arc<Mutex<Report>>;

fn with_report(r: &SharedReport, f: impl FnOnce(&mut Report)) {
    if let Ok(mut g) = r.lock() {
        f(&mut g);
    }
}

/// One phase's live counters, shared by its connection tasks.
#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    joined: AtomicUsize,
    failed: AtomicUsize,
    /// Connections that closed on their own after joining.
    dropped: AtomicUsize,
    /// `error` events the server sent.
    server_errors: AtomicUsize,
    /// Fan-out deliveries recorded.
    delivered: AtomicU64,
    /// Microseconds from the phase start to the last connection that finished joining (or failed).
    last_done_us: AtomicU64,
    errors: Mutex<BTreeMap<String, usize>>,
    /// Per connection: (connect µs, join µs).
    timings: Mutex<Vec<(u32, u32)>>,
}

impl Counters {
    fn fail(&self, start: Instant, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.done(start);
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(e).or_insert(0) += 1;
        }
    }
    fn done(&self, start: Instant) {
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_done_us.fetch_max(us, Ordering::Relaxed);
    }
    fn finished(&self) -> usize {
        self.joined.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
    fn error_summary(&self) -> String {
        self.errors
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(e, n)| format!("{n}× {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }
}

/// When each message was sent (monotonic clock), by sequence number.
struct SendTable {
    sent: Vec<OnceLock<Instant>>,
}

/// One connection's job: connect, join, then stay (and, in the fan-out meeting, time each `new-message`).
struct Member {
    addr: Arc<str>,
    token: String,
    meeting: Arc<str>,
    op_timeout: Duration,
    phase_start: Instant,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
    record: bool,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn parse_seq(array: &str) -> Option<u32> {
    let at = array.find(SEQ_MARK)? + SEQ_MARK.len();
    let rest = &array[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

async fn connect_and_join(
    addr: &str,
    token: &str,
    meeting: &str,
    op: Duration,
) -> Result<(Conn, Duration, Duration), String> {
    let t0 = Instant::now();
    let mut conn = tokio::time::timeout(op, Conn::connect(addr, token))
        .await
        .map_err(|_| "connect timed out".to_owned())??;
    let t1 = Instant::now();
    if meeting.is_empty() {
        return Ok((conn, t1 - t0, Duration::ZERO));
    }
    tokio::time::timeout(op, conn.join(meeting))
        .await
        .map_err(|_| "join timed out".to_owned())?
        .map_err(|e| format!("join: {e}"))?;
    Ok((conn, t1 - t0, t1.elapsed()))
}

/// Returns the arrivals `(seq, instant)` it recorded.
async fn member(m: Member, permit: OwnedSemaphorePermit) -> Vec<(u32, Instant)> {
    let Member {
        addr,
        token,
        meeting,
        op_timeout,
        phase_start,
        counters,
        mut stop,
        record,
    } = m;
    let mut conn = match connect_and_join(&addr, &token, &meeting, op_timeout).await {
        Ok((conn, c, j)) => {
            counters.connected.fetch_add(1, Ordering::Relaxed);
            counters.joined.fetch_add(1, Ordering::Relaxed);
            counters.done(phase_start);
            if let Ok(mut t) = counters.timings.lock() {
                t.push((micros(c), micros(j)));
            }
            conn
        }
        Err(e) => {
            if !e.starts_with("connect") && !e.starts_with("tcp") && !e.starts_with("websocket") {
                counters.connected.fetch_add(1, Ordering::Relaxed);
            }
            counters.fail(phase_start, e);
            return Vec::new();
        }
    };
    drop(token);
    drop(permit);
    let mut arrivals = Vec::new();
    if *stop.borrow() {
        return arrivals;
    }
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                conn.close().await;
                break;
            }
            r = conn.recv() => {
                let at = Instant::now();
                match r {
                    Ok(Some(text)) => match classify(&text) {
                        Packet::Event(array) => match event_name(array) {
                            Some("new-message") if record => {
                                if let Some(seq) = parse_seq(array) {
                                    arrivals.push((seq, at));
                                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Some("error") => {
                                counters.server_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        },
                        Packet::Disconnect => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ => {}
                    },
                    Ok(None) | Err(_) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
    arrivals
}

struct SenderResult {
    sent: usize,
    acked_ok: usize,
    ack_errors: BTreeMap<String, usize>,
    /// send → ack, µs
    ack_latency: Vec<u64>,
    /// from the first send to the last
    send_span: Duration,
}

struct Sender {
    addr: Arc<str>,
    token: String,
    meeting: Arc<str>,
    op_timeout: Duration,
    messages: usize,
    interval: Duration,
    ack_timeout: Duration,
    table: Arc<SendTable>,
    joined: oneshot::Sender<Result<(), String>>,
    go: oneshot::Receiver<()>,
    done: oneshot::Sender<Result<SenderResult, String>>,
    stop: watch::Receiver<bool>,
}

/// The fan-out sender: joins, waits for `go`, sends `messages` messages `interval` apart (recording each send
/// instant just before the write), collects the acks, reports, and stays connected until `stop`.
async fn sender(s: Sender) {
    let Sender {
        addr,
        token,
        meeting,
        op_timeout,
        messages,
        interval,
        ack_timeout,
        table,
        joined,
        go,
        done,
        mut stop,
    } = s;
    let mut conn = match connect_and_join(&addr, &token, &meeting, op_timeout).await {
        Ok((c, _, _)) => {
            let _ = joined.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = joined.send(Err(e));
            return;
        }
    };
    let mut go = go;
    loop {
        tokio::select! {
            _ = &mut go => break,
            r = conn.recv() => {
                if !matches!(r, Ok(Some(_))) {
                    let _ = done.send(Err("sender disconnected before sending".to_owned()));
                    return;
                }
            }
        }
    }
    let mut res = SenderResult {
        sent: 0,
        acked_ok: 0,
        ack_errors: BTreeMap::new(),
        ack_latency: Vec::with_capacity(messages),
        send_span: Duration::ZERO,
    };
    let mut ack_seq: BTreeMap<u64, usize> = BTreeMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ack_deadline = tokio::time::Instant::now() + Duration::from_secs(86_400);
    let mut failure = None;
    let first = Instant::now();
    while res.acked_ok + res.ack_errors.values().sum::<usize>() < messages {
        tokio::select! {
            _ = tick.tick(), if res.sent < messages => {
                let seq = res.sent;
                let payload = json!({
                    "meetingId": &*meeting,
                    "message": format!("{SEQ_MARK}{seq} fan-out probe"),
                    "recipientType": "all",
                });
                let now = Instant::now();
                let _ = table.sent[seq].set(now);
                match conn.emit_with_ack("send-message", &payload).await {
                    Ok(id) => { ack_seq.insert(id, seq); }
                    Err(e) => { failure = Some(e); break; }
                }
                res.sent += 1;
                if res.sent == messages {
                    res.send_span = first.elapsed();
                    ack_deadline = tokio::time::Instant::now() + ack_timeout;
                }
            }
            r = conn.recv() => {
                let at = Instant::now();
                match r {
                    Ok(Some(text)) => {
                        if let Packet::Ack(id, body) = classify(&text) {
                            if let Some(seq) = ack_seq.remove(&id) {
                                if let Some(t) = table.sent[seq].get() {
                                    res.ack_latency.push(u64::from(micros(at - *t)));
                                }
                                match sio::ack_result(body) {
                                    Ok(()) => res.acked_ok += 1,
                                    Err(e) => *res.ack_errors.entry(e).or_insert(0) += 1,
                                }
                            }
                        }
                    }
                    _ => { failure = Some("sender disconnected while sending".to_owned()); break; }
                }
            }
            _ = tokio::time::sleep_until(ack_deadline) => {
                *res.ack_errors.entry("no ack in time".to_owned()).or_insert(0) += ack_seq.len();
                break;
            }
        }
    }
    let _ = done.send(match failure {
        Some(e) => Err(e),
        None => Ok(res),
    });
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => { conn.close().await; break; }
            r = conn.recv() => if !matches!(r, Ok(Some(_))) { break },
        }
    }
}

/// Percentile of sorted values (nearest rank).
fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// CPU time (user + system) of the server and of this process, to see who used the 2 cores.
struct Cpu {
    server: f64,
    own: f64,
}

impl Cpu {
    fn now(server_pid: u32) -> Cpu {
        Cpu {
            server: server::cpu_secs(server_pid).unwrap_or(0.0),
            own: server::cpu_secs(std::process::id()).unwrap_or(0.0),
        }
    }
    /// (server, meet-load) CPU seconds since `self`.
    fn since(&self, server_pid: u32) -> (f64, f64) {
        let now = Cpu::now(server_pid);
        (now.server - self.server, now.own - self.own)
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

struct Ctx {
    args: Args,
    addr: Arc<str>,
    pid: u32,
    /// Every node's address and pid (the first is `addr`/`pid`); one entry on a single node.
    nodes: Vec<(Arc<str>, u32)>,
    minter: Arc<Minter>,
    report: SharedReport,
    /// Tells the memory-phase connections to close (attach mode; a started server is killed first).
    stop_all: watch::Sender<bool>,
    keep: Vec<JoinHandle<Vec<(u32, Instant)>>>,
}

fn progress(
    label: &'static str,
    counters: Arc<Counters>,
    pid: u32,
    every: Duration,
    start: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let d = counters.delivered.load(Ordering::Relaxed);
            println!(
                "[{label} {:>6.1}s] connected {} joined {} failed {} dropped {}{} | server RSS {} | meet-load RSS {}",
                start.elapsed().as_secs_f64(),
                counters.connected.load(Ordering::Relaxed),
                counters.joined.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed),
                counters.dropped.load(Ordering::Relaxed),
                if d > 0 { format!(" delivered {d}") } else { String::new() },
                server::rss_kb(pid).map(mb).unwrap_or_else(|| "?".into()),
                server::rss_kb(std::process::id()).map(mb).unwrap_or_else(|| "?".into()),
            );
        }
    })
}

/// A batch of connections: user `lb-u<first_user + i>` joins `meetings[i / per_meeting]`.
struct Batch<'a> {
    label: &'static str,
    first_user: usize,
    n: usize,
    meetings: &'a [Arc<str>],
    per_meeting: usize,
    counters: &'a Arc<Counters>,
    /// Record `new-message` arrivals (fan-out members).
    record: bool,
    stop: &'a watch::Receiver<bool>,
}

/// Spawns a batch with at most `--concurrency` connections joining at once, and waits until all joined or
/// failed (or the phase times out). Returns their handles.
async fn connect_many(
    ctx: &Ctx,
    b: Batch<'_>,
) -> Result<Vec<JoinHandle<Vec<(u32, Instant)>>>, String> {
    let Batch {
        label,
        first_user,
        n,
        meetings,
        per_meeting,
        counters,
        record,
        stop,
    } = b;
    let a = &ctx.args;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.phase_timeout_secs);
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let prog = progress(
        label,
        counters.clone(),
        ctx.pid,
        Duration::from_secs(a.progress_secs.max(1)),
        start,
    );
    let mut handles = Vec::with_capacity(n);
    let mut result = Ok(());
    for i in 0..n {
        let permit = match tokio::time::timeout_at(deadline, sem.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                result = Err(format!(
                    "{label}: phase timed out after {} s with {} of {n} connections started",
                    a.phase_timeout_secs, i
                ));
                break;
            }
        };
        let token = ctx.minter.token(&format!("lb-u{}", first_user + i))?;
        let m = Member {
            addr: ctx.nodes[i % ctx.nodes.len()].0.clone(),
            token,
            meeting: meetings[(i / per_meeting).min(meetings.len() - 1)].clone(),
            op_timeout: Duration::from_secs(a.op_timeout_secs),
            phase_start: start,
            counters: counters.clone(),
            stop: stop.clone(),
            record,
        };
        handles.push(tokio::spawn(member(m, permit)));
    }
    while result.is_ok() && counters.finished() < n {
        if tokio::time::Instant::now() >= deadline {
            result = Err(format!(
                "{label}: phase timed out after {} s: {} of {n} joined",
                a.phase_timeout_secs,
                counters.joined.load(Ordering::Relaxed)
            ));
            break;
        }
        if server::rss_kb(ctx.pid).is_none() {
            result = Err(format!("{label}: the server process {} is gone", ctx.pid));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    prog.abort();
    let joined = counters.joined.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    println!(
        "[{label}] done in {:.1}s: {joined} joined, {failed} failed{}",
        start.elapsed().as_secs_f64(),
        if failed > 0 {
            format!(" ({})", counters.error_summary())
        } else {
            String::new()
        }
    );
    result.map(|()| handles)
}

fn check_failures(ctx: &Ctx, label: &str, counters: &Counters, n: usize) {
    let failed = counters.failed.load(Ordering::Relaxed) + n.saturating_sub(counters.finished());
    if n > 0 && failed as f64 * 100.0 / n as f64 > ctx.args.max_failure_pct {
        with_report(&ctx.report, |r| {
            r.failures.push(format!(
                "{label}: {failed} of {n} connections failed (more than --max-failure-pct {}%): {}",
                ctx.args.max_failure_pct,
                counters.error_summary()
            ))
        });
    }
}

async fn create_meetings(ctx: &Ctx, n: usize, max: usize) -> Result<Vec<Arc<str>>, String> {
    let host = ctx.minter.token("lb-host")?;
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Arc::from(
            server::create_meeting(&ctx.addr, &host, max).await?,
        ));
    }
    Ok(out)
}

/// Every node's RSS (KB), in node order.
fn nodes_rss(ctx: &Ctx) -> Result<Vec<u64>, String> {
    ctx.nodes
        .iter()
        .map(|(_, pid)| server::rss_kb(*pid).ok_or(format!("cannot read the RSS of pid {pid}")))
        .collect()
}

async fn memory_phase(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.args.clients;
    let size = ctx.args.meeting_size.clamp(1, 10_000);
    let t = Instant::now();
    let meetings = if ctx.args.connect_only {
        println!("[memory] --connect-only: no meetings, no joins");
        vec![Arc::from("")]
    } else {
        let m = create_meetings(ctx, n.div_ceil(size), size).await?;
        println!(
            "[memory] created {} meetings (max {size} each) via REST in {:.2}s",
            m.len(),
            t.elapsed().as_secs_f64()
        );
        m
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = nodes_rss(ctx)?;
    println!(
        "[memory] server RSS before: {}; connecting {n} clients to {} node(s)",
        mb(before.iter().sum()),
        ctx.nodes.len()
    );
    let counters = Arc::new(Counters::default());
    let stop = ctx.stop_all.subscribe();
    let cpu = Cpu::now(ctx.pid);
    let result = connect_many(
        ctx,
        Batch {
            label: "memory",
            first_user: 0,
            n,
            meetings: &meetings,
            per_meeting: size,
            counters: &counters,
            record: false,
            stop: &stop,
        },
    )
    .await;
    let (server_cpu, own_cpu) = cpu.since(ctx.pid);
    let joined = counters.joined.load(Ordering::Relaxed);
    let secs = counters.last_done_us.load(Ordering::Relaxed) as f64 / 1e6;
    let mut timings = counters
        .timings
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let handles = result?;
    ctx.keep.extend(handles);
    println!("[memory] settling {} ms", ctx.args.settle_ms);
    tokio::time::sleep(Duration::from_millis(ctx.args.settle_ms)).await;
    let after_nodes = nodes_rss(ctx)?;
    let (before_nodes, before): (Vec<u64>, u64) = (before.clone(), before.iter().sum());
    let after: u64 = after_nodes.iter().sum();
    let per = if joined > 0 {
        after.saturating_sub(before) as f64 / joined as f64
    } else {
        0.0
    };
    // Connections went to the nodes in turn: node k holds every len-th one.
    let per_node: Vec<String> = after_nodes
        .iter()
        .zip(&before_nodes)
        .enumerate()
        .map(|(k, (a, b))| {
            let len = ctx.nodes.len();
            let here = joined / len + usize::from(k < joined % len);
            format!("{:.2} KB", a.saturating_sub(*b) as f64 / here.max(1) as f64)
        })
        .collect();
    let mut connect_us: Vec<u64> = timings.iter().map(|t| u64::from(t.0)).collect();
    let mut join_us: Vec<u64> = timings.drain(..).map(|t| u64::from(t.1)).collect();
    connect_us.sort_unstable();
    join_us.sort_unstable();
    let goal = ctx.args.goal_kb;
    let connect_only = ctx.args.connect_only;
    with_report(&ctx.report, |r| {
        r.section("memory phase");
        r.row(
            "clients connected / joined / failed",
            format!(
                "{} / {joined} / {}",
                counters.connected.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed)
            ),
        );
        r.row(
            "meetings × size",
            if connect_only {
                "none (--connect-only)".to_owned()
            } else {
                format!("{} × {size}", meetings.len())
            },
        );
        let what = if connect_only { "connects" } else { "joins" };
        r.row(
            if connect_only {
                "connect throughput"
            } else {
                "connect+join throughput"
            },
            format!(
                "{:.0} {what}/s ({joined} in {secs:.2} s, {} in flight)",
                joined as f64 / secs.max(1e-9),
                ctx.args.concurrency
            ),
        );
        r.row(
            "CPU while connecting: server / meet-load",
            format!("{server_cpu:.1} s / {own_cpu:.1} s (of {secs:.1} s wall × 2 cores)"),
        );
        r.row(
            "connect time p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms(pct(&connect_us, 0.5)),
                ms(pct(&connect_us, 0.99)),
                ms(pct(&connect_us, 1.0))
            ),
        );
        if !connect_only {
            r.row(
                "join-ack time p50 / p99 / max",
                format!(
                    "{} / {} / {}",
                    ms(pct(&join_us, 0.5)),
                    ms(pct(&join_us, 0.99)),
                    ms(pct(&join_us, 1.0))
                ),
            );
        }
        r.row(
            "server RSS before / after",
            format!("{} / {}", mb(before), mb(after)),
        );
        if per_node.len() > 1 {
            r.row(
                "memory per joined connection, per node",
                per_node.join(" / "),
            );
        }
        r.row(
            if connect_only {
                "server memory per connection (no join)"
            } else {
                "server memory per joined connection"
            },
            format!(
                "{per:.2} KB (goal ≤ {goal} KB: {})",
                if per <= goal { "PASS" } else { "FAIL" }
            ),
        );
        r.row(
            "dropped after join / server `error` events",
            format!(
                "{} / {}",
                counters.dropped.load(Ordering::Relaxed),
                counters.server_errors.load(Ordering::Relaxed)
            ),
        );
    });
    check_failures(ctx, "memory phase", &counters, n);
    Ok(())
}

async fn fanout_phase(ctx: &mut Ctx) -> Result<(), String> {
    let a = &ctx.args;
    let n = a.fanout_members;
    let messages = a.messages;
    if n + 1 > 10_000 {
        return Err(
            "--fanout-members must be at most 9999 (the server caps meetings at 10000)".into(),
        );
    }
    let meeting: Arc<str> = create_meetings(ctx, 1, n + 1)
        .await?
        .pop()
        .ok_or("no meeting created")?;
    println!(
        "[fanout] meeting {meeting}: sender + {n} members, {messages} messages every {} ms",
        a.interval_ms
    );
    let table = Arc::new(SendTable {
        sent: (0..messages).map(|_| OnceLock::new()).collect(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (joined_tx, joined_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let sender_task = tokio::spawn(sender(Sender {
        addr: ctx.addr.clone(),
        token: ctx.minter.token("lb-sender")?,
        meeting: meeting.clone(),
        op_timeout: Duration::from_secs(a.op_timeout_secs),
        messages,
        interval: Duration::from_millis(a.interval_ms.max(1)),
        ack_timeout: Duration::from_secs(a.drain_timeout_secs),
        table: table.clone(),
        joined: joined_tx,
        go: go_rx,
        done: done_tx,
        stop: stop_rx.clone(),
    }));
    match joined_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("fan-out sender could not join: {e}")),
        Err(_) => return Err("fan-out sender task ended".into()),
    }
    let counters = Arc::new(Counters::default());
    let first_user = a.clients + 1;
    let handles = connect_many(
        ctx,
        Batch {
            label: "fanout",
            first_user,
            n,
            meetings: std::slice::from_ref(&meeting),
            per_meeting: n.max(1),
            counters: &counters,
            record: true,
            stop: &stop_rx,
        },
    )
    .await?;
    let a = &ctx.args;
    let members = counters.joined.load(Ordering::Relaxed);
    let join_secs = counters.last_done_us.load(Ordering::Relaxed) as f64 / 1e6;
    check_failures(ctx, "fan-out phase", &counters, n);
    tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
    let dropped_before = counters.dropped.load(Ordering::Relaxed);
    println!("[fanout] {members} members joined; sending");
    let cpu = Cpu::now(ctx.pid);
    let _ = go_tx.send(());
    let start = Instant::now();
    let prog = progress(
        "fanout",
        counters.clone(),
        ctx.pid,
        Duration::from_secs(a.progress_secs.max(1)),
        start,
    );
    let send_budget = Duration::from_millis(a.interval_ms.max(1) * messages as u64)
        + Duration::from_secs(a.drain_timeout_secs + a.op_timeout_secs);
    let sent = match tokio::time::timeout(send_budget, done_rx).await {
        Ok(Ok(Ok(r))) => r,
        Ok(Ok(Err(e))) => {
            prog.abort();
            return Err(format!("fan-out sender: {e}"));
        }
        _ => {
            prog.abort();
            return Err("fan-out sender did not finish in time".into());
        }
    };
    let expected = (members * sent.sent) as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(a.drain_timeout_secs);
    // Messages the server refused (their ack says so) are never delivered: don't wait for them.
    let reachable = (members * sent.acked_ok) as u64;
    while counters.delivered.load(Ordering::Relaxed) < reachable && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    prog.abort();
    let (server_cpu, own_cpu) = cpu.since(ctx.pid);
    let wall = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut lat = Vec::with_capacity(expected as usize);
    let mut unique = 0u64;
    let mut dups = 0u64;
    let mut per_msg_last = vec![0u64; messages];
    for h in handles {
        let arrivals = match tokio::time::timeout(Duration::from_secs(5), h).await {
            Ok(Ok(v)) => v,
            _ => continue,
        };
        let mut seen = vec![false; messages];
        for (seq, at) in arrivals {
            let seq = seq as usize;
            let (Some(slot), Some(t)) = (
                seen.get_mut(seq),
                table.sent.get(seq).and_then(OnceLock::get),
            ) else {
                continue;
            };
            if *slot {
                dups += 1;
                continue;
            }
            *slot = true;
            unique += 1;
            let us = u64::from(micros(at.saturating_duration_since(*t)));
            per_msg_last[seq] = per_msg_last[seq].max(us);
            lat.push(us);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sender_task).await;
    lat.sort_unstable();
    let mut ack = sent.ack_latency.clone();
    ack.sort_unstable();
    let p99 = pct(&lat, 0.99) as f64 / 1000.0;
    let goal = a.goal_p99_ms;
    let missing = expected.saturating_sub(unique);
    with_report(&ctx.report, |r| {
        r.section("fan-out phase");
        r.row(
            "members joined / failed",
            format!(
                "{members} / {} (+1 sender)",
                counters.failed.load(Ordering::Relaxed)
            ),
        );
        r.row(
            "members' connect+join took",
            format!(
                "{join_secs:.2} s ({:.0} joins/s)",
                members as f64 / join_secs.max(1e-9)
            ),
        );
        r.row(
            "CPU while sending+draining: server / meet-load",
            format!("{server_cpu:.1} s / {own_cpu:.1} s (of {wall:.1} s wall × 2 cores)"),
        );
        r.row(
            "messages sent / acked ok",
            format!(
                "{} / {} in {:.2} s{}",
                sent.sent,
                sent.acked_ok,
                sent.send_span.as_secs_f64(),
                if sent.ack_errors.is_empty() {
                    String::new()
                } else {
                    format!(" (errors: {:?})", sent.ack_errors)
                }
            ),
        );
        r.row(
            "deliveries received / expected",
            format!("{unique} / {expected} (missing {missing}, duplicates {dups})"),
        );
        r.row(
            "latency p50 / p90 / p99 / max",
            format!(
                "{} / {} / {} / {}",
                ms(pct(&lat, 0.5)),
                ms(pct(&lat, 0.9)),
                ms(pct(&lat, 0.99)),
                ms(pct(&lat, 1.0))
            ),
        );
        r.row(
            "p99 vs goal",
            format!(
                "{p99:.2} ms (goal ≤ {goal} ms: {})",
                if p99 <= goal && missing == 0 {
                    "PASS"
                } else {
                    "FAIL"
                }
            ),
        );
        let mut last: Vec<u64> = per_msg_last.iter().copied().filter(|&v| v > 0).collect();
        last.sort_unstable();
        r.row(
            "last member's latency per msg p50 / max",
            format!("{} / {}", ms(pct(&last, 0.5)), ms(pct(&last, 1.0))),
        );
        r.row(
            "sender's ack latency p50 / p99",
            format!("{} / {}", ms(pct(&ack, 0.5)), ms(pct(&ack, 0.99))),
        );
        r.row(
            "members dropped while joined",
            format!(
                "{} ({} during sending)",
                counters.dropped.load(Ordering::Relaxed),
                counters.dropped.load(Ordering::Relaxed) - dropped_before
            ),
        );
        if !sent.ack_errors.is_empty() {
            r.notes.push(format!(
                "the server refused {} of {} messages (see `messages sent / acked ok`); an attached server needs \
                 MEET_LIMITS__SEND_MESSAGE__COUNT >= --messages",
                sent.sent - sent.acked_ok,
                sent.sent
            ));
        }
        if unique < reachable {
            r.notes.push(format!(
                "{} deliveries of accepted messages never arrived within --drain-timeout-secs {}",
                reachable - unique,
                a.drain_timeout_secs
            ));
        }
    });
    Ok(())
}

async fn run(ctx: &mut Ctx) -> Result<(), String> {
    if !ctx.args.media_scenario.is_empty() {
        return media_phase(ctx).await;
    }
    if ctx.args.clients > 0 {
        memory_phase(ctx).await?;
    }
    if ctx.args.fanout_members > 0 && ctx.args.messages > 0 {
        fanout_phase(ctx).await?;
    }
    if ctx.args.soak_secs > 0 {
        soak_phase(ctx).await?;
    }
    if ctx.args.storm_clients > 0 {
        storm_phase(ctx).await?;
    }
    Ok(())
}

async fn storm_phase(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.args.storm_clients;
    println!("storm: {n} clients join one meeting at once");
    let cpu = Cpu::now(ctx.pid);
    let f = storm::run(storm::Storm {
        addr: ctx.addr.clone(),
        minter: ctx.minter.clone(),
        clients: n,
        concurrency: ctx.args.concurrency,
        op_timeout: Duration::from_secs(ctx.args.op_timeout_secs),
        timeout: Duration::from_secs(ctx.args.storm_timeout_secs),
    })
    .await?;
    let (server_cpu, own_cpu) = cpu.since(ctx.pid);
    // Each joiner k (1-based, in the server's order) is told of itself and the n - k after it.
    let expected = (n * (n + 1) / 2) as u64;
    with_report(&ctx.report, |r| {
        r.section("join storm (all clients join one meeting at once)");
        r.row(
            "clients connected / joined / knew everyone",
            format!("{} / {} / {} of {n}", f.connected, f.joined, f.complete),
        );
        r.row(
            "participant-joined received / expected",
            format!("{} / {expected}", f.presence_events),
        );
        r.row(
            "last join ack after the start",
            format!("{:.2} s", f.last_ack.as_secs_f64()),
        );
        r.row(
            "last presence event delivered after the start",
            format!("{:.2} s", f.last_complete.as_secs_f64()),
        );
        r.row(
            "CPU during the storm: server / meet-load",
            format!("{server_cpu:.1} s / {own_cpu:.1} s"),
        );
        if !f.errors.is_empty() {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &f.errors {
                *counts.entry(e.as_str()).or_default() += 1;
            }
            let e: Vec<String> = counts.iter().map(|(e, n)| format!("{n}× {e}")).collect();
            r.notes.push(format!("storm failures: {}", e.join("; ")));
        }
        if f.complete < n || f.presence_events != expected {
            r.failures.push(format!(
                "join storm: {} of {n} clients learned of every participant, {} of {expected} presence events",
                f.complete, f.presence_events
            ));
        }
    });
    Ok(())
}

async fn media_phase(ctx: &mut Ctx) -> Result<(), String> {
    let scenarios = ctx
        .args
        .media_scenario
        .iter()
        .map(|s| media::Scenario::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut all = Vec::new();
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let steps = if ctx.args.media_steps.is_empty() {
            scenario.default_steps()
        } else {
            ctx.args.media_steps.clone()
        };
        let run = media::MediaRun {
            addr: ctx.addr.clone(),
            pid: ctx.pid,
            minter: ctx.minter.clone(),
            scenario,
            steps,
            warmup: Duration::from_secs(ctx.args.media_warmup_secs),
            measure: Duration::from_secs(ctx.args.media_measure_secs.max(1)),
            setup_timeout: Duration::from_secs(ctx.args.media_setup_timeout_secs),
            max_loss_pct: ctx.args.media_max_loss_pct,
            max_worker_cpu_pct: ctx.args.media_max_worker_cpu_pct,
            concurrency: ctx.args.media_concurrency,
            record: ctx.args.media_record,
        };
        let figures = media::run(&run, i).await;
        all.push((scenario, figures));
        // Record what is known so far, so a run cut short still prints it.
        with_report(&ctx.report, |r| media_report(r, &all[all.len() - 1..]));
    }
    Ok(())
}

fn media_report(r: &mut Report, all: &[(media::Scenario, Vec<media::StepFigures>)]) {
    for (scenario, steps) in all {
        r.section(&format!(
            "media {} (N = {}; real ICE/DTLS-SRTP bots on loopback)",
            scenario.name(),
            scenario.unit()
        ));
        for f in steps {
            let workers = f
                .workers
                .iter()
                .map(|(n, p)| format!("{n} {p:.0} %"))
                .collect::<Vec<_>>()
                .join(", ");
            r.row(
                &format!("N={} ({} bots, {} transports)", f.n, f.bots, f.transports),
                format!(
                    "{:.0} fwd pkt/s ({:.0} sent/s), server CPU {:.0} % = {:.1} µs/fwd pkt, [{workers}], \
                     loss {:.2} %, jitter audio {:.1} / video {:.1} ms, {:.0} KB/transport (RSS {:.0} MB), \
                     meet-load CPU {:.0} %, {} keyframe requests, UDP drops {} server / {} bots; {}",
                    f.fwd_pps,
                    f.sent_pps,
                    f.server_cpu_pct,
                    f.us_per_fwd,
                    f.loss_pct,
                    f.jitter_audio_ms,
                    f.jitter_video_ms,
                    f.kb_per_transport,
                    f.rss_mb,
                    f.bot_cpu_pct,
                    f.keyframe_requests,
                    f.udp_drops_server,
                    f.udp_drops_bots,
                    f.saturated.as_deref().unwrap_or("not saturated")
                ),
            );
        }
        let sat = steps.iter().find(|f| f.saturated.is_some());
        let last_ok = steps.iter().rev().find(|f| f.saturated.is_none());
        r.row(
            "saturation",
            match (sat, last_ok) {
                (Some(s), Some(ok)) => format!(
                    "held N={}, saturated at N={} ({})",
                    ok.n,
                    s.n,
                    s.saturated.as_deref().unwrap_or("")
                ),
                (Some(s), None) => format!(
                    "saturated at the first step N={} ({})",
                    s.n,
                    s.saturated.as_deref().unwrap_or("")
                ),
                (None, Some(ok)) => format!("not reached; held N={} (the last step)", ok.n),
                (None, None) => "no step completed".to_owned(),
            },
        );
    }
}

async fn soak_phase(ctx: &mut Ctx) -> Result<(), String> {
    println!(
        "soak: {} participants in meetings of {} for {} s",
        ctx.args.soak_clients, ctx.args.soak_meeting_size, ctx.args.soak_secs
    );
    let f = soak::run(soak::Soak {
        addr: ctx.addr.clone(),
        pid: ctx.pid,
        minter: ctx.minter.clone(),
        clients: ctx.args.soak_clients,
        meeting_size: ctx.args.soak_meeting_size,
        duration: Duration::from_secs(ctx.args.soak_secs),
    })
    .await?;
    with_report(&ctx.report, |r| {
        r.section("soak (join, media set-up, leave or drop, repeated)");
        r.row("visits", f.cycles.to_string());
        // Memory after the first fifth (warm-up: allocator pools, caches) against the end.
        let warm = f.samples.get(f.samples.len() / 5).or(f.samples.first());
        if let (Some(w), Some(last)) = (warm, f.samples.last()) {
            r.row(
                "server RSS after warm-up → end",
                format!(
                    "{} (at {:.0} s) → {} (at {:.0} s), {:+.1} MB",
                    mb(w.1),
                    w.0,
                    mb(last.1),
                    last.0,
                    (last.1 as f64 - w.1 as f64) / 1024.0
                ),
            );
        }
        let [t, p, c, n] = f.left;
        r.row(
            "left once everyone had gone",
            format!("{t} transports, {p} producers, {c} consumers, {n} participants"),
        );
        if !f.errors.is_empty() {
            let e: Vec<String> = f.errors.iter().map(|(e, n)| format!("{n}× {e}")).collect();
            r.notes
                .push(format!("soak request failures: {}", e.join("; ")));
        }
        if f.left != [0; 4] {
            r.failures.push(format!(
                "the soak left {t} transports, {p} producers, {c} consumers, {n} participants behind"
            ));
        }
    });
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and checks it covers `needed`.
fn raise_nofile(needed: u64) -> Result<u64, String> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("raising RLIMIT_NOFILE: {e}"))?;
    if limit < needed {
        return Err(format!(
            "RLIMIT_NOFILE is {limit} (hard limit) but this run needs about {needed} descriptors in this process \
             and as many in the server; lower --clients/--fanout-members or raise the hard limit (ulimit -Hn)"
        ));
    }
    Ok(limit)
}

fn server_nofile(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn default_server_bin() -> PathBuf {
    let local = PathBuf::from("target/release/meet-server");
    if local.is_file() {
        return local;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/release/meet-server"
    ))
}

async fn async_main(args: Args, nofile: u64) -> ExitCode {
    let secret = match (&args.url, &args.secret) {
        (Some(_), None) => {
            eprintln!(
                "meet-load: --url needs --secret (or MEET_AUTH__SECRET): the server's HS256 secret"
            );
            return ExitCode::from(2);
        }
        (_, Some(s)) => s.clone(),
        (None, None) => DEFAULT_SECRET.to_owned(),
    };
    let server = match (&args.url, args.server_pid) {
        (Some(url), Some(pid)) => Server::attach(url, pid),
        _ => {
            let bin = args.server_bin.clone().unwrap_or_else(default_server_bin);
            println!("starting {} (RLIMIT_NOFILE {nofile})", bin.display());
            Server::start(StartOptions {
                bin: &bin,
                secret: &secret,
                log_level: &args.server_log,
                extra_env: &args.server_env,
                timeout: Duration::from_secs(args.startup_timeout_secs),
            })
            .await
        }
    };
    let mut server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meet-load: the server failed to start: {e}");
            return ExitCode::from(2);
        }
    };
    let needed = (args.clients + args.fanout_members + args.storm_clients + 64) as u64;
    match server_nofile(server.pid) {
        Some(n) if n < needed => println!(
            "warning: the server's open-files limit is {n}, below the ~{needed} this run needs"
        ),
        _ => {}
    }
    println!("server pid {} at http://{}", server.pid, server.addr);
    let campus = args.campus.clone().unwrap_or_else(|| {
        format!(
            "loadbench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        )
    });
    let report: SharedReport = Arc::new(Mutex::new(Report::default()));
    let (stop_all, _) = watch::channel(false);
    let mut nodes: Vec<(Arc<str>, u32)> = vec![(Arc::from(server.addr.as_str()), server.pid)];
    if args.also_url.len() != args.also_pid.len() {
        eprintln!("meet-load: --also-url and --also-pid need one pid per URL");
        return ExitCode::from(2);
    }
    for (url, pid) in args.also_url.iter().zip(&args.also_pid) {
        match Server::attach(url, *pid) {
            Ok(s) => nodes.push((Arc::from(s.addr.as_str()), s.pid)),
            Err(e) => {
                eprintln!("meet-load: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if nodes.len() > 1 {
        println!(
            "cluster: {} nodes, connections spread over them in turn",
            nodes.len()
        );
    }
    let mut ctx = Ctx {
        nodes,
        addr: Arc::from(server.addr.as_str()),
        pid: server.pid,
        minter: Arc::new(Minter::new(&secret, &campus)),
        report: report.clone(),
        stop_all,
        keep: Vec::new(),
        args,
    };
    let max = Duration::from_secs(ctx.args.max_runtime_secs);
    let started = Instant::now();
    let outcome = tokio::select! {
        r = tokio::time::timeout(max, run(&mut ctx)) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("the run exceeded --max-runtime-secs {}", max.as_secs())),
        },
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
    };
    if let Err(e) = outcome {
        with_report(&report, |r| r.failures.push(e));
    }
    if let Some(status) = server.exited() {
        with_report(&report, |r| {
            r.failures
                .push(format!("the server exited during the run ({status})"))
        });
    }
    let log = server
        .log
        .lock()
        .map(|l| (l.warnings, l.errors, l.samples.clone()))
        .unwrap_or_default();
    let attached = ctx.args.url.is_some();
    if attached {
        // Leave the server as we found it: close our connections.
        let _ = ctx.stop_all.send(true);
        for h in ctx.keep.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
    }
    server.stop().await;
    let Ok(report) = report.lock() else {
        return ExitCode::FAILURE;
    };
    println!();
    println!(
        "== meet-load figures ({:.1} s) ==",
        started.elapsed().as_secs_f64()
    );
    let width = report
        .rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, value) in &report.rows {
        println!("{label:<width$}  {value}");
    }
    if !attached {
        println!(
            "server log (RUST_LOG={}): {} warnings, {} errors",
            ctx.args.server_log, log.0, log.1
        );
        for s in &log.2 {
            println!("  {s}");
        }
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &report.failures {
            eprintln!("meet-load: FAILED: {f}");
        }
        ExitCode::from(3)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let needed = (args.clients + args.fanout_members + args.storm_clients + 64) as u64;
    let nofile = match raise_nofile(needed) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("meet-load: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meet-load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async_main(args, nofile));
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_seq() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(pct(&v, 0.5), 50);
        assert_eq!(pct(&v, 0.99), 99);
        assert_eq!(pct(&v, 1.0), 100);
        assert_eq!(pct(&[], 0.5), 0);
        assert_eq!(
            parse_seq(r#"["new-message",{"message":"loadbench seq=42 fan-out probe"}]"#),
            Some(42)
        );
        assert_eq!(parse_seq(r#"["new-message",{"message":"hi"}]"#), None);
    }
}
