//! Sharing one subscriber transport's bandwidth estimate out across its video consumers (issue 11 item 1), pure and
//! on the caller's clock: given the estimate and each consumer's demand (the measured bitrate of each spatial layer
//! of its producer, the client's `quality:change` cap, a priority), which spatial layer each may receive.
//!
//! Order: screen shares first, then spotlighted/large tiles, then the rest (ties by key, so the result is
//! deterministic). Every unpaused consumer first gets its lowest layer, then, in priority order, each climbs as high
//! as the remaining budget and its cap allow. A "layer" here is a rung of the consumer's [`ladder`]: the lowest
//! spatial layer's temporal layers one by one (TL0, TL0+1, …, when the packets carry temporal ids), then each
//! spatial layer above with all its temporal layers — so temporal layers are dropped only when even the lowest
//! spatial layer does not fit.
//!
//! Hysteresis (mediasoup and LiveKit do the same): the plan at 100 % of the estimate lowers a consumer at once; a
//! consumer climbs only to what the plan at 100 / [`UP_MARGIN`] % allows, and only after that plan has allowed it
//! for [`UP_HOLD`] without a break. A steady estimate near a layer boundary therefore never oscillates.
//! [`Allocator::probe_target`] says what to ask the estimator to probe for: only what the next layer up of the
//! first consumer below its cap needs, so nothing is probed for a paused consumer or one at its cap.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Climbing needs this much more estimate than the layers cost.
pub const UP_MARGIN: f64 = 1.2;
/// … for this long in a row.
pub const UP_HOLD: Duration = Duration::from_secs(2);

/// Screen shares before spotlighted/large tiles before the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Normal,
    Large,
    Screen,
}

/// What one video consumer of the transport wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand<K> {
    pub key: K,
    pub priority: Priority,
    /// Highest spatial layer the client allows (`quality:change`).
    pub cap: usize,
    /// Measured bitrate of each spatial layer of its producer, bps; 0 = the layer does not flow now.
    pub layer_bps: Vec<u64>,
    /// Paused consumers get nothing and are not probed for.
    pub paused: bool,
}

impl<K> Demand<K> {
    /// The flowing layers up to the cap, lowest first.
    fn layers(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.layer_bps
            .iter()
            .copied()
            .enumerate()
            .take(self.cap.saturating_add(1))
            .filter(|&(_, bps)| bps > 0)
    }
}

/// The layer each demand gets from `budget` bps (None: paused, or no layer flows).
fn plan<K: Copy + Ord>(budget: f64, demands: &[&Demand<K>]) -> Vec<Option<usize>> {
    let mut out: Vec<Option<usize>> = vec![None; demands.len()];
    let mut cost: Vec<u64> = vec![0; demands.len()];
    let mut left = budget;
    for (i, d) in demands.iter().enumerate() {
        if d.paused {
            continue;
        }
        if let Some((layer, bps)) = d.layers().next() {
            out[i] = Some(layer);
            cost[i] = bps;
            left -= bps as f64;
        }
    }
    for (i, d) in demands.iter().enumerate() {
        if out[i].is_none() {
            continue;
        }
        // The highest layer whose extra cost over the lowest still fits.
        let best = d
            .layers()
            .filter(|&(_, bps)| bps.saturating_sub(cost[i]) as f64 <= left)
            .last();
        if let Some((layer, bps)) = best {
            left -= bps.saturating_sub(cost[i]) as f64;
            cost[i] = bps;
            out[i] = Some(layer);
        }
    }
    out
}

struct State {
    layer: Option<usize>,
    /// Since when the up-plan has allowed more than `layer`.
    up_since: Option<Instant>,
}

/// One transport's allocation across its video consumers.
pub struct Allocator<K> {
    state: HashMap<K, State>,
}

impl<K> Default for Allocator<K> {
    fn default() -> Self {
        Self {
            state: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Allocator<K> {
    /// The layer a consumer is allowed now (None before the first allocation that included it).
    pub fn allowed(&self, key: K) -> Option<usize> {
        self.state.get(&key).and_then(|s| s.layer)
    }

    /// Re-plans from `estimate_bps`; returns the consumers whose allowed layer changed, with the new one.
    pub fn allocate(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        demands: &[Demand<K>],
    ) -> Vec<(K, Option<usize>)> {
        let mut order: Vec<&Demand<K>> = demands.iter().collect();
        order.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.key.cmp(&b.key)));
        let down = plan(estimate_bps as f64, &order);
        let up = plan(estimate_bps as f64 / UP_MARGIN, &order);
        let mut changed = Vec::new();
        for (i, d) in order.iter().enumerate() {
            let st = self.state.entry(d.key).or_insert(State {
                layer: None,
                up_since: None,
            });
            let next = match st.layer {
                // New (or coming back from nothing): the cautious plan, at once.
                None => up[i].or(down[i]),
                Some(cur) => match down[i] {
                    None => None,
                    Some(dl) if dl < cur => {
                        st.up_since = None;
                        Some(dl)
                    }
                    Some(_) => match up[i] {
                        Some(ul) if ul > cur => {
                            let since = *st.up_since.get_or_insert(now);
                            if now.saturating_duration_since(since) >= UP_HOLD {
                                st.up_since = None;
                                Some(ul)
                            } else {
                                Some(cur)
                            }
                        }
                        _ => {
                            st.up_since = None;
                            // A cap lowered by the client applies at once.
                            Some(cur.min(d.cap))
                        }
                    },
                },
            };
            if next != st.layer {
                st.layer = next;
                changed.push((d.key, next));
            }
        }
        let keys: std::collections::HashSet<K> = demands.iter().map(|d| d.key).collect();
        self.state.retain(|k, _| keys.contains(k));
        changed
    }

    /// What to ask the estimator for (bps): the allowed layers' sum plus the step to the next layer up of the first
    /// consumer (in priority order) below its cap, × [`UP_MARGIN`] (what climbing needs); None when everyone is at
    /// its cap (nothing to probe for).
    pub fn probe_target(&self, demands: &[Demand<K>]) -> Option<u64> {
        let mut order: Vec<&Demand<K>> = demands.iter().filter(|d| !d.paused).collect();
        order.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.key.cmp(&b.key)));
        let current = |d: &Demand<K>| {
            self.allowed(d.key)
                .and_then(|l| d.layer_bps.get(l).copied())
                .unwrap_or(0)
        };
        let sum: u64 = order.iter().map(|d| current(d)).sum();
        order.iter().find_map(|d| {
            let cur = self.allowed(d.key)?;
            let (_, next) = d.layers().find(|&(l, _)| l > cur)?;
            // Climbing needs UP_MARGIN over the cost, so that is what must be found.
            Some(((sum + next.saturating_sub(current(d))) as f64 * UP_MARGIN) as u64)
        })
    }
}

/// A consumer's rungs, lowest first: ((spatial, temporal), bps; 0 = not flowing now). `spatial_bps` per spatial
/// layer (empty for a stream without spatial layers); `temporal_bps` per temporal layer of the lowest spatial layer
/// (fewer than two entries: no temporal ids seen, the lowest spatial layer is one rung); `cumulative` when a spatial
/// layer is sent with the ones below it (full SVC) rather than alone (simulcast, k-SVC between keyframes).
pub fn ladder(
    spatial_bps: &[u64],
    temporal_bps: &[u64],
    cumulative: bool,
    top_temporal: u8,
) -> Vec<((usize, u8), u64)> {
    let mut out = Vec::new();
    let top = usize::from(top_temporal);
    if temporal_bps.len() > 1 {
        let mut sum = 0;
        for (t, &bps) in temporal_bps.iter().enumerate().take(top + 1) {
            sum += bps;
            out.push(((0, t as u8), if bps > 0 { sum } else { 0 }));
        }
        // A temporal layer announced but never seen (yet): the lowest spatial layer whole is the last rung.
        if let Some(last) = out.last_mut() {
            last.0 .1 = top_temporal;
        }
    } else {
        let base = spatial_bps
            .first()
            .copied()
            .unwrap_or_else(|| temporal_bps.iter().sum());
        out.push(((0, top_temporal), base));
    }
    for s in 1..spatial_bps.len() {
        let own = spatial_bps[s];
        let cost = if cumulative {
            spatial_bps[..=s].iter().sum()
        } else {
            own
        };
        out.push(((s, top_temporal), if own > 0 { cost } else { 0 }));
    }
    out
}

/// Each spatial layer's bitrate over windows of about a second (what a layer costs a subscriber).
#[derive(Clone, Debug, Default)]
pub struct LayerRates {
    bytes: Vec<u64>,
    bps: Vec<u64>,
    since: Option<Instant>,
}

/// A window shorter than this is not turned into rates yet.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

impl LayerRates {
    pub fn on_packet(&mut self, layer: usize, bytes: usize, now: Instant) {
        if self.bytes.len() <= layer {
            self.bytes.resize(layer + 1, 0);
        }
        self.bytes[layer] += bytes as u64;
        self.since.get_or_insert(now);
    }

    /// Closes the window when it is long enough; a layer with no packet in it is 0 (not flowing).
    pub fn roll(&mut self, now: Instant) {
        let Some(since) = self.since else {
            return;
        };
        let elapsed = now.saturating_duration_since(since);
        if elapsed < RATE_WINDOW {
            return;
        }
        let secs = elapsed.as_secs_f64();
        self.bps = self
            .bytes
            .iter()
            .map(|&b| (b as f64 * 8.0 / secs) as u64)
            .collect();
        self.bytes.iter_mut().for_each(|b| *b = 0);
        self.since = Some(now);
    }

    /// The last window's bitrate of each layer, bps.
    pub fn bps(&self) -> &[u64] {
        &self.bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chrome's three VP8 simulcast layers at 320x180, 640x360, 1280x720, roughly.
    const LAYERS: [u64; 3] = [150_000, 500_000, 1_500_000];

    fn d(key: u32, priority: Priority, cap: usize) -> Demand<u32> {
        Demand {
            key,
            priority,
            cap,
            layer_bps: LAYERS.to_vec(),
            paused: false,
        }
    }

    /// Runs `secs` of 100 ms re-plans at a fixed estimate; returns every change with its time (ms).
    fn run(
        a: &mut Allocator<u32>,
        t: &mut Instant,
        start: Instant,
        secs: f64,
        estimate: u64,
        demands: &[Demand<u32>],
    ) -> Vec<(u128, u32, Option<usize>)> {
        let mut out = Vec::new();
        for _ in 0..(secs * 10.0) as u32 {
            *t += Duration::from_millis(100);
            for (k, l) in a.allocate(*t, estimate, demands) {
                out.push(((*t - start).as_millis(), k, l));
            }
        }
        out
    }

    fn layers(a: &Allocator<u32>, keys: &[u32]) -> Vec<Option<usize>> {
        keys.iter().map(|&k| a.allowed(k)).collect()
    }

    #[test]
    fn estimate_steps_down_at_once_and_up_after_the_hold() {
        let start = Instant::now();
        let mut t = start;
        let mut a = Allocator::default();
        let ds = [d(1, Priority::Normal, 2)];
        run(&mut a, &mut t, start, 1.0, 5_000_000, &ds);
        assert_eq!(a.allowed(1), Some(2));
        // The estimate falls to 800 kbps: the middle layer at the next re-plan.
        let ch = run(&mut a, &mut t, start, 1.0, 800_000, &ds);
        assert_eq!(
            ch.first().map(|c| (c.0 - 1_000, c.2)),
            Some((100, Some(1))),
            "{ch:?}"
        );
        // 300 kbps: the lowest.
        run(&mut a, &mut t, start, 0.5, 300_000, &ds);
        assert_eq!(a.allowed(1), Some(0));
        // Back to 5 Mbps: up only after UP_HOLD, straight to the top.
        let t0 = (t - start).as_millis();
        let ch = run(&mut a, &mut t, start, 4.0, 5_000_000, &ds);
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].2, Some(2));
        let after = ch[0].0 - t0;
        assert!(
            (UP_HOLD.as_millis()..=UP_HOLD.as_millis() + 200).contains(&after),
            "{after}"
        );
    }

    #[test]
    fn no_oscillation_under_a_steady_estimate_near_a_boundary() {
        let start = Instant::now();
        let mut t = start;
        let mut a = Allocator::default();
        let ds = [d(1, Priority::Normal, 2)];
        // Just over what the top layer costs, but under its 120 %: it is not climbed to, and nothing flaps.
        for estimate in [1_510_000u64, 1_600_000, 1_790_000] {
            let mut a2 = Allocator::default();
            let ch = run(&mut a2, &mut t, start, 30.0, estimate, &ds);
            assert_eq!(ch.len(), 1, "{estimate}: {ch:?}");
            assert_eq!(a2.allowed(1), Some(1));
        }
        // Wobbling ±5 % around the boundary after having climbed: at most one change (the first dip).
        run(&mut a, &mut t, start, 3.0, 3_000_000, &ds);
        assert_eq!(a.allowed(1), Some(2));
        let mut changes = Vec::new();
        for i in 0..300u64 {
            let e = if i % 2 == 0 { 1_450_000 } else { 1_560_000 };
            t += Duration::from_millis(100);
            changes.extend(a.allocate(t, e, &ds));
        }
        assert_eq!(changes, vec![(1, Some(1))], "{changes:?}");
    }

    #[test]
    fn several_consumers_share_by_priority_and_caps_are_never_exceeded() {
        let start = Instant::now();
        let mut t = start;
        let mut a = Allocator::default();
        let ds = [
            d(1, Priority::Normal, 2),
            d(2, Priority::Screen, 2),
            d(3, Priority::Large, 2),
            d(4, Priority::Normal, 0), // the client asked `low`
        ];
        // 2.6 Mbps: lowest layers for all (600 k), then the screen share climbs to the top (+1.35 M), the large
        // tile to the middle (+350 k); what is left (~300 k) lifts nobody else.
        run(&mut a, &mut t, start, 3.0, 2_600_000 * 12 / 10, &ds);
        assert_eq!(
            layers(&a, &[1, 2, 3, 4]),
            vec![Some(0), Some(2), Some(1), Some(0)]
        );
        // Plenty: everyone at its cap, consumer 4 still at `low`.
        run(&mut a, &mut t, start, 3.0, 50_000_000, &ds);
        assert_eq!(
            layers(&a, &[1, 2, 3, 4]),
            vec![Some(2), Some(2), Some(2), Some(0)]
        );
        assert_eq!(
            a.probe_target(&ds),
            None,
            "nothing to probe for at the caps"
        );
        // The client lowers consumer 1 to `medium`: applied at once, whatever the estimate.
        let mut ds2 = ds.clone();
        ds2[0].cap = 1;
        let ch = a.allocate(t + Duration::from_millis(100), 50_000_000, &ds2);
        assert_eq!(ch, vec![(1, Some(1))]);
        // Very little: everyone on the lowest layer (nothing lower exists without temporal layers).
        t += Duration::from_millis(200);
        a.allocate(t, 100_000, &ds2);
        assert_eq!(layers(&a, &[1, 2, 3, 4]), vec![Some(0); 4]);
    }

    #[test]
    fn paused_consumers_get_nothing_and_are_not_probed_for() {
        let start = Instant::now();
        let mut t = start;
        let mut a = Allocator::default();
        let mut ds = [d(1, Priority::Normal, 2), d(2, Priority::Normal, 2)];
        ds[1].paused = true;
        run(&mut a, &mut t, start, 1.0, 700_000, &ds);
        assert_eq!(layers(&a, &[1, 2]), vec![Some(1), None]);
        // Probing asks for consumer 1's next layer only: 500 k now + the step to 1.5 M, with the climbing margin.
        assert_eq!(a.probe_target(&ds), Some(1_800_000));
        ds[0].paused = true;
        run(&mut a, &mut t, start, 0.2, 700_000, &ds);
        assert_eq!(a.probe_target(&ds), None);
    }

    #[test]
    fn a_layer_that_stops_flowing_is_not_allocated() {
        let start = Instant::now();
        let mut t = start;
        let mut a = Allocator::default();
        let mut ds = [d(1, Priority::Normal, 2)];
        ds[0].layer_bps[2] = 0; // the publisher switched r2 off
        run(&mut a, &mut t, start, 3.0, 50_000_000, &ds);
        assert_eq!(a.allowed(1), Some(1));
        ds[0].layer_bps = vec![0, 0, 0];
        run(&mut a, &mut t, start, 0.2, 50_000_000, &ds);
        assert_eq!(a.allowed(1), None);
        // Forgotten when it is no longer a demand.
        a.allocate(t, 1, &[]);
        assert!(a.state.is_empty());
    }
}
