//! In-process implementations: one node, no network.

use crate::{Limit, MeetingRuntime, RateLimiter, RuntimeStore, StateError};
use proto::MeetingId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data is plain state; a panic in one
/// request must not take every later request down with it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The map of meetings is behind a std mutex held only for a lookup; each meeting's state is behind an async
/// mutex, so a task waiting for a busy meeting (a join storm into one big meeting) yields its runtime thread
/// instead of blocking it while another thread runs a closure on that meeting.
#[derive(Default)]
pub struct LocalRuntimeStore {
    meetings: Mutex<HashMap<MeetingId, Arc<AsyncMutex<Slot>>>>,
}

/// One meeting's state. `removed` tells a `modify` that fetched the slot just before `remove_if_empty` dropped it
/// from the map to fetch a fresh one instead of writing into an orphan.
#[derive(Default)]
struct Slot {
    rt: MeetingRuntime,
    removed: bool,
}

impl LocalRuntimeStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&self, meeting: &MeetingId) -> Arc<AsyncMutex<Slot>> {
        lock(&self.meetings)
            .entry(meeting.clone())
            .or_insert_with(|| {
                Arc::new(AsyncMutex::new(Slot {
                    rt: MeetingRuntime {
                        meeting_id: Some(meeting.clone()),
                        ..MeetingRuntime::default()
                    },
                    removed: false,
                }))
            })
            .clone()
    }
}

#[async_trait::async_trait]
impl RuntimeStore for LocalRuntimeStore {
    async fn modify(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError> {
        loop {
            let entry = self.entry(meeting);
            let mut slot = entry.lock().await;
            if slot.removed {
                continue;
            }
            // In process the state is changed in place; the returned flag only matters to stores that write back.
            f(&mut slot.rt);
            // Nothing to write back: the record of what changed is not needed (and must not grow).
            slot.rt.commit();
            return Ok(());
        }
    }

    async fn read(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(Option<&'r MeetingRuntime>) + Send),
    ) -> Result<(), StateError> {
        let entry = lock(&self.meetings).get(meeting).cloned();
        match entry {
            Some(e) => {
                let slot = e.lock().await;
                f(Some(&slot.rt));
            }
            None => f(None),
        }
        Ok(())
    }

    async fn get(&self, meeting: &MeetingId) -> Result<Option<MeetingRuntime>, StateError> {
        let entry = lock(&self.meetings).get(meeting).cloned();
        Ok(match entry {
            Some(e) => Some(e.lock().await.rt.clone()),
            None => None,
        })
    }

    async fn remove(&self, meeting: &MeetingId) -> Result<(), StateError> {
        lock(&self.meetings).remove(meeting);
        Ok(())
    }

    /// Also keeps a meeting that still holds dropped participants' raised hands: its last participant's connection
    /// dropped, and a rejoin within the grace period must get the hand back. The domain calls this again once
    /// the grace period is over (after pruning the expired hands), so such a slot does not stay behind.
    async fn remove_if_empty(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let Some(entry) = lock(&self.meetings).get(meeting).cloned() else {
            return Ok(());
        };
        let mut slot = entry.lock().await;
        let empty = !slot.removed
            && slot.rt.participants.is_empty()
            && !slot.rt.ended
            && slot.rt.raised_hands_of_dropped.is_empty();
        if empty {
            // Marked and unmapped while the slot is locked: a `modify` that fetched this slot sees `removed` and
            // fetches a fresh one.
            slot.removed = true;
            let mut map = lock(&self.meetings);
            if map.get(meeting).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                map.remove(meeting);
            }
        }
        Ok(())
    }

    async fn meeting_ids(&self) -> Result<Vec<MeetingId>, StateError> {
        Ok(lock(&self.meetings).keys().cloned().collect())
    }

    async fn held(&self) -> Result<usize, StateError> {
        Ok(lock(&self.meetings).len())
    }

    async fn totals(&self) -> Result<(usize, usize), StateError> {
        let slots: Vec<_> = lock(&self.meetings).values().cloned().collect();
        let (mut live, mut participants) = (0, 0);
        for s in slots {
            let n = s.lock().await.rt.participants.len();
            live += usize::from(n > 0);
            participants += n;
        }
        Ok((live, participants))
    }
}

/// A sliding-log limiter: per key, the instants of the last `count` accepted events. An event is accepted when
/// fewer than `count` accepted events lie within the last `window`. This is exact ("no more than N in any window
/// of that length"), which a GCRA/token bucket (e.g. `governor`) is not: with burst N it admits almost 2N in the
/// first window. Memory is bounded by `count` instants per active key; idle keys are swept.
pub struct LocalRateLimiter {
    inner: Mutex<LimiterInner>,
    clock: Box<dyn Fn() -> Instant + Send + Sync>,
}

struct LimiterInner {
    /// Per key: its window (for the sweep) and the instants of its accepted events.
    logs: HashMap<String, (Duration, VecDeque<Instant>)>,
    last_sweep: Option<Instant>,
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::with_clock(Box::new(Instant::now))
    }
}

impl LocalRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A limiter reading time from `clock` (tests drive it by hand).
    pub fn with_clock(clock: Box<dyn Fn() -> Instant + Send + Sync>) -> Self {
        Self {
            inner: Mutex::new(LimiterInner {
                logs: HashMap::new(),
                last_sweep: None,
            }),
            clock,
        }
    }

    /// Accepts or refuses one event at `now`.
    pub fn check_at(&self, key: &str, limit: Limit, now: Instant) -> Result<(), Duration> {
        let mut inner = lock(&self.inner);
        inner.sweep(now);
        let (window, log) = inner
            .logs
            .entry(key.to_owned())
            .or_insert_with(|| (limit.window, VecDeque::new()));
        *window = limit.window;
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
        {
            log.pop_front();
        }
        if log.len() < limit.count as usize {
            log.push_back(now);
            return Ok(());
        }
        // Full: the oldest accepted event leaves the window at `oldest + window`.
        let oldest = log.front().copied().unwrap_or(now);
        Err((oldest + limit.window)
            .saturating_duration_since(now)
            .max(Duration::from_millis(1)))
    }
}

impl LimiterInner {
    /// Drops logs whose newest entry has left their own window (they would accept anything), at most every 10 s.
    /// Keys are per meeting, user and event, so churn (people coming and going) would otherwise pile them up: the
    /// soak in the load tool showed it, ~5 keys per visit kept for an hour when this swept by the longest window.
    fn sweep(&mut self, now: Instant) {
        const EVERY: Duration = Duration::from_secs(10);
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.logs.retain(|_, (window, log)| {
            log.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < *window)
        });
    }
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, StateError> {
        Ok(self.check_at(key, limit, (self.clock)()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_PER_MIN: Limit = Limit {
        count: 10,
        window: Duration::from_secs(60),
    };

    #[test]
    fn tenth_passes_eleventh_fails_then_window_slides() {
        let l = LocalRateLimiter::new();
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(
                l.check_at("k", TEN_PER_MIN, t0 + Duration::from_secs(i)),
                Ok(()),
                "message {i}"
            );
        }
        let retry = l.check_at("k", TEN_PER_MIN, t0 + Duration::from_secs(10));
        assert_eq!(retry, Err(Duration::from_secs(50)));
        // refused events are not counted: at t0+60 the first one has left the window
        assert_eq!(
            l.check_at("k", TEN_PER_MIN, t0 + Duration::from_secs(60)),
            Ok(())
        );
        assert!(l
            .check_at("k", TEN_PER_MIN, t0 + Duration::from_secs(60))
            .is_err());
        assert_eq!(
            l.check_at("k", TEN_PER_MIN, t0 + Duration::from_secs(61)),
            Ok(())
        );
    }

    #[test]
    fn idle_keys_are_swept_once_their_own_window_has_passed() {
        let l = LocalRateLimiter::new();
        let t0 = Instant::now();
        let short = Limit {
            count: 1,
            window: Duration::from_secs(1),
        };
        for i in 0..1000 {
            assert_eq!(l.check_at(&format!("visitor{i}"), short, t0), Ok(()));
        }
        assert_eq!(l.check_at("long", TEN_PER_MIN, t0), Ok(()));
        // A sweep after 11 s keeps only the key whose window (60 s) still holds an event.
        assert_eq!(
            l.check_at("other", short, t0 + Duration::from_secs(11)),
            Ok(())
        );
        let keys = lock(&l.inner).logs.len();
        assert_eq!(
            keys, 2,
            "the 1000 idle keys are gone; 'long' and 'other' stay"
        );
    }

    #[test]
    fn never_more_than_n_in_any_window() {
        // Hammer one key every 7 ms for 10 s with 3/s and check every 1 s window of accepted events.
        let l = LocalRateLimiter::new();
        let lim = Limit {
            count: 3,
            window: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        let accepted: Vec<Duration> = (0..1430u64)
            .map(|i| Duration::from_millis(i * 7))
            .filter(|d| l.check_at("k", lim, t0 + *d).is_ok())
            .collect();
        for (i, t) in accepted.iter().enumerate() {
            let in_window = accepted[i..]
                .iter()
                .take_while(|u| **u < *t + lim.window)
                .count();
            assert!(
                in_window <= 3,
                "{in_window} events in the window starting at {t:?}"
            );
        }
        // and the limit is reached: 3 per second over 10 s
        assert!(accepted.len() >= 29, "{}", accepted.len());
    }

    #[test]
    fn keys_are_independent() {
        let l = LocalRateLimiter::new();
        let lim = Limit {
            count: 1,
            window: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        assert!(l.check_at("a", lim, t0).is_ok());
        assert!(l.check_at("a", lim, t0).is_err());
        assert!(l.check_at("b", lim, t0).is_ok());
    }

    /// A task waiting for a busy meeting must not block its runtime thread: on a current-thread runtime, a second
    /// task still runs while the first holds the meeting (with a std mutex this would deadlock).
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_a_busy_meeting_yields_the_thread() {
        let s = Arc::new(LocalRuntimeStore::new());
        let m = MeetingId::new("m");
        let slot = s.entry(&m);
        let held = slot.lock().await;
        let (s2, m2) = (s.clone(), m.clone());
        let waiter = tokio::spawn(async move {
            s2.modify(&m2, &mut |rt| {
                rt.next_seq += 1;
                true
            })
            .await
            .expect("modify");
        });
        // the waiter runs up to the lock and parks; this task keeps running on the only thread
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.expect("join");
        assert_eq!(s.get(&m).await.expect("get").map(|r| r.next_seq), Some(1));
    }

    #[tokio::test]
    async fn runtime_modify_read_remove() {
        let s = LocalRuntimeStore::new();
        let m = MeetingId::new("m");
        let mut seen = None;
        s.read(&m, &mut |rt| seen = Some(rt.is_some()))
            .await
            .expect("read");
        assert_eq!(seen, Some(false));
        s.modify(&m, &mut |rt| {
            rt.next_seq = 7;
            true
        })
        .await
        .expect("modify");
        assert_eq!(s.get(&m).await.expect("get").map(|r| r.next_seq), Some(7));
        assert_eq!(s.totals().await.expect("totals"), (0, 0));
        s.remove_if_empty(&m).await.expect("remove");
        assert_eq!(s.get(&m).await.expect("get"), None);
    }

    #[tokio::test]
    async fn an_empty_meeting_holding_a_dropped_hand_is_kept_until_it_is_pruned() {
        let s = LocalRuntimeStore::new();
        let m = MeetingId::new("m");
        s.modify(&m, &mut |rt| {
            rt.raised_hands_of_dropped
                .insert(proto::UserId::new("u"), 1_000);
            true
        })
        .await
        .expect("modify");
        s.remove_if_empty(&m).await.expect("remove");
        let kept = s.get(&m).await.expect("get");
        assert_eq!(
            kept.map(|rt| rt.raised_hands_of_dropped.len()),
            Some(1),
            "the hand must outlive the last participant"
        );
        // it counts as no live meeting
        assert_eq!(s.totals().await.expect("totals"), (0, 0));
        // once the hand has expired (pruned by the domain), the slot goes: no leak
        s.modify(&m, &mut |rt| {
            rt.raised_hands_of_dropped.clear();
            true
        })
        .await
        .expect("modify");
        s.remove_if_empty(&m).await.expect("remove");
        assert_eq!(s.get(&m).await.expect("get"), None);
    }
}
