//! Test hook (`POST /debug/media/cap`, only with `media.debug_hooks`): a downlink bandwidth cap in the shell, not in
//! the sans-IO core. Datagrams to a capped address leave at the set rate; the excess waits in a queue (so the
//! subscriber sees delay grow, as on a real bottleneck, and a delay-based estimator can react) and what would wait
//! longer than the cap's queue (by default [`DEFAULT_QUEUE`]: a shallow drop-tail buffer; a home router's is often
//! far deeper) is dropped. Caps are process-wide (a test caps one transport's addresses); with none
//! set, shaping is one atomic load per batch.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a datagram may wait behind a cap before it is dropped instead, unless the cap says otherwise.
pub const DEFAULT_QUEUE: Duration = Duration::from_millis(150);

static ANY: AtomicBool = AtomicBool::new(false);
static CAPS: Mutex<Vec<(SocketAddr, u64, Duration, Instant)>> = Mutex::new(Vec::new());

/// Caps what is sent to `addrs` at `bps` until `until` (replacing earlier caps of those addresses); what would wait
/// longer than `queue` is dropped.
pub fn debug_cap(addrs: &[SocketAddr], bps: u64, queue: Duration, until: Instant) {
    if let Ok(mut caps) = CAPS.lock() {
        caps.retain(|(a, _, _, _)| !addrs.contains(a));
        caps.extend(addrs.iter().map(|&a| (a, bps, queue, until)));
        ANY.store(!caps.is_empty(), Ordering::Release);
    }
}

struct Bucket {
    bps: u64,
    tokens: f64,
    last: Instant,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
}

/// One worker's shaping state.
#[derive(Default)]
pub(crate) struct Shaper {
    buckets: HashMap<SocketAddr, Bucket>,
}

impl Shaper {
    /// Holds back what exceeds a capped destination's rate and releases what the rate allows since last time.
    pub(crate) fn shape(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        if !ANY.load(Ordering::Acquire) && self.buckets.is_empty() {
            return;
        }
        let caps: Vec<(SocketAddr, u64, Duration)> = match CAPS.lock() {
            Ok(mut caps) => {
                caps.retain(|(_, _, _, until)| *until > now);
                ANY.store(!caps.is_empty(), Ordering::Release);
                caps.iter().map(|(a, b, q, _)| (*a, *b, *q)).collect()
            }
            Err(_) => Vec::new(),
        };
        // Lifted caps: whatever waits goes now.
        let lifted: Vec<SocketAddr> = self
            .buckets
            .keys()
            .filter(|a| !caps.iter().any(|(c, _, _)| c == *a))
            .copied()
            .collect();
        for a in lifted {
            if let Some(b) = self.buckets.remove(&a) {
                out.extend(b.queue.into_iter().map(|d| (a, d)));
            }
        }
        if caps.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(out.len());
        for (dest, data) in out.drain(..) {
            match caps.iter().find(|(a, _, _)| *a == dest) {
                Some(&(_, bps, queue)) => {
                    let b = self.buckets.entry(dest).or_insert(Bucket {
                        bps,
                        tokens: 0.0,
                        last: now,
                        queue: VecDeque::new(),
                        queued: 0,
                    });
                    b.bps = bps;
                    let limit = (bps as f64 / 8.0 * queue.as_secs_f64()) as usize;
                    if b.queued + data.len() <= limit.max(1_500) {
                        b.queued += data.len();
                        b.queue.push_back(data);
                    }
                }
                None => kept.push((dest, data)),
            }
        }
        for (&dest, b) in self.buckets.iter_mut() {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.last = now;
            // At most 20 ms of burst.
            b.tokens =
                (b.tokens + elapsed * b.bps as f64 / 8.0).min(b.bps as f64 / 8.0 * 0.02 + 1_500.0);
            while let Some(front) = b.queue.front() {
                if (front.len() as f64) > b.tokens {
                    break;
                }
                b.tokens -= front.len() as f64;
                b.queued -= front.len();
                if let Some(d) = b.queue.pop_front() {
                    kept.push((dest, d));
                }
            }
        }
        *out = kept;
    }
}
