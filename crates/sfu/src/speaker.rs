//! Active speaker and audio levels from the ssrc-audio-level header extension (RFC 6464): each audio packet
//! carries the sender's level in −dBov, so nothing is decoded. One meter per audio producer, grouped by router
//! (meeting); time comes in from the caller (sans-IO).
//!
//! Every [`TICK`] each meter's packets since the last tick become one window: its mean amplitude, in dB above a
//! speech threshold ([`SPEECH_DBOV`]), feeds a score smoothed over about a second (no packets = silence). The
//! dominant speaker is the best score; another participant takes the role only when its score beats the holder's by
//! a clear margin ([`SWITCH_RATIO`], [`SWITCH_MARGIN`]) for [`SWITCH_HOLD`] in a row — mediasoup's
//! ActiveSpeakerObserver in spirit (it also needs a challenger to be clearly and durably louder), with a simpler
//! score. Every [`REPORT_INTERVAL`] a room with any sound gets the loudest few levels (linear amplitude, 0–1), plus
//! one empty report when it falls silent, so a silent meeting costs nothing. A paused producer is silenced by the
//! caller ([`Speakers::silence`]) and fed nothing while paused.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often meters are turned into scores.
pub const TICK: Duration = Duration::from_millis(100);
/// Levels are reported at most this often per room.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// A window quieter than this (mean amplitude, dBov) is silence: breathing and room noise after the browser's
/// noise suppression stay below it, speech (typically −40…−10 dBov) is well above.
pub const SPEECH_DBOV: f32 = -60.0;
/// Score smoothing per tick: 0.9 per 100 ms is a time constant of about one second.
const SMOOTHING: f32 = 0.9;
/// Below this score (dB above the threshold, smoothed) nobody is speaking.
const MIN_SCORE: f32 = 1.0;
/// A challenger must score above `holder × SWITCH_RATIO + SWITCH_MARGIN` …
pub const SWITCH_RATIO: f32 = 1.5;
pub const SWITCH_MARGIN: f32 = 2.0;
/// … for this long without a break to take the role.
pub const SWITCH_HOLD: Duration = Duration::from_millis(800);
/// The loudest this many are reported.
pub const MAX_LEVELS: usize = 5;

/// What the observer reports.
#[derive(Clone, Debug, PartialEq)]
pub enum SpeakerEvent<K> {
    /// The dominant speaker of `room` changed to `key`.
    Dominant { room: String, key: K },
    /// The loudest producers of `room` over the last report interval, loudest first, each a linear amplitude in
    /// 0–1 (1 = 0 dBov); empty once when the room falls silent.
    Levels { room: String, levels: Vec<(K, f32)> },
}

struct Meter {
    room: String,
    /// Sum of linear amplitudes and packet count since the last tick, and since the last report.
    tick_sum: f32,
    tick_count: u32,
    report_sum: f32,
    report_count: u32,
    /// Smoothed dB above [`SPEECH_DBOV`].
    score: f32,
}

/// The meters of one core, keyed by the caller's producer handle.
pub struct Speakers<K> {
    meters: HashMap<K, Meter>,
    rooms: HashMap<String, RoomOf<K>>,
    next_tick: Option<Instant>,
    next_report: Option<Instant>,
}

struct RoomOf<K> {
    dominant: Option<K>,
    challenger: Option<(K, Instant)>,
    reported_sound: bool,
}

impl<K> Default for RoomOf<K> {
    fn default() -> Self {
        Self {
            dominant: None,
            challenger: None,
            reported_sound: false,
        }
    }
}

impl<K> Default for Speakers<K> {
    fn default() -> Self {
        Self {
            meters: HashMap::new(),
            rooms: HashMap::new(),
            next_tick: None,
            next_report: None,
        }
    }
}

/// RFC 6464's level (0 = loudest, 127 = silence, str0m gives it negated) as a linear amplitude.
fn amplitude(dbov: i8) -> f32 {
    let db = -f32::from(dbov.unsigned_abs().min(127));
    10f32.powf(db / 20.0)
}

fn db_of(amplitude: f32) -> f32 {
    if amplitude <= 0.0 {
        -127.0
    } else {
        (20.0 * amplitude.log10()).max(-127.0)
    }
}

impl<K: Copy + Eq + Hash + Ord> Speakers<K> {
    /// One audio packet's level (`audio_level` as str0m parses it: −127…0 dBov).
    pub fn on_level(&mut self, key: K, room: &str, dbov: i8, now: Instant) {
        let m = self.meters.entry(key).or_insert_with(|| Meter {
            room: room.to_owned(),
            tick_sum: 0.0,
            tick_count: 0,
            report_sum: 0.0,
            report_count: 0,
            score: 0.0,
        });
        let a = amplitude(dbov);
        m.tick_sum += a;
        m.tick_count += 1;
        m.report_sum += a;
        m.report_count += 1;
        if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
        if self.next_report.is_none() {
            self.next_report = Some(now + REPORT_INTERVAL);
        }
    }

    /// A paused (muted) producer: silent from now on, until its packets are fed again.
    pub fn silence(&mut self, key: K) {
        if let Some(m) = self.meters.get_mut(&key) {
            m.tick_sum = 0.0;
            m.tick_count = 0;
            m.report_sum = 0.0;
            m.report_count = 0;
            m.score = 0.0;
        }
    }

    /// A closed producer. If it held the role, the next speaker takes it without a challenge.
    pub fn remove(&mut self, key: K) {
        if let Some(m) = self.meters.remove(&key) {
            if let Some(r) = self.rooms.get_mut(&m.room) {
                if r.dominant == Some(key) {
                    r.dominant = None;
                }
                if r.challenger.is_some_and(|(c, _)| c == key) {
                    r.challenger = None;
                }
            }
        }
    }

    /// When [`Speakers::tick`] has work next (None while there are no meters).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.meters.is_empty() {
            return None;
        }
        self.next_tick
    }

    /// Turns the windows into scores and reports; call at or after [`Speakers::next_deadline`] (earlier calls do
    /// nothing).
    pub fn tick(&mut self, now: Instant) -> Vec<SpeakerEvent<K>> {
        let mut out = Vec::new();
        if self.meters.is_empty() {
            self.rooms.clear();
            self.next_tick = None;
            self.next_report = None;
            return out;
        }
        if self.next_tick.is_some_and(|t| now < t) {
            return out;
        }
        self.next_tick = Some(now + TICK);
        for m in self.meters.values_mut() {
            let mean = if m.tick_count == 0 {
                0.0
            } else {
                m.tick_sum / m.tick_count as f32
            };
            let excess = (db_of(mean) - SPEECH_DBOV).max(0.0);
            m.score = m.score * SMOOTHING + excess * (1.0 - SMOOTHING);
            m.tick_sum = 0.0;
            m.tick_count = 0;
        }
        // Rooms in a stable order, each with its best score (ties: the smaller key).
        let mut best: HashMap<&str, (K, f32)> = HashMap::new();
        for (&k, m) in &self.meters {
            let e = best.entry(m.room.as_str()).or_insert((k, m.score));
            if m.score > e.1 || (m.score == e.1 && k < e.0) {
                *e = (k, m.score);
            }
        }
        let mut rooms: Vec<(&str, (K, f32))> = best.into_iter().collect();
        rooms.sort_by(|a, b| a.0.cmp(b.0));
        for (room, (top, top_score)) in rooms {
            let r = self.rooms.entry(room.to_owned()).or_default();
            if top_score < MIN_SCORE {
                r.challenger = None;
                continue;
            }
            match r.dominant {
                None => {
                    r.dominant = Some(top);
                    r.challenger = None;
                    out.push(SpeakerEvent::Dominant {
                        room: room.to_owned(),
                        key: top,
                    });
                }
                Some(d) if d == top => r.challenger = None,
                Some(d) => {
                    let holder = self.meters.get(&d).map_or(0.0, |m| m.score);
                    if top_score <= holder * SWITCH_RATIO + SWITCH_MARGIN {
                        r.challenger = None;
                        continue;
                    }
                    match r.challenger {
                        Some((c, since)) if c == top => {
                            if now.saturating_duration_since(since) >= SWITCH_HOLD {
                                r.dominant = Some(top);
                                r.challenger = None;
                                out.push(SpeakerEvent::Dominant {
                                    room: room.to_owned(),
                                    key: top,
                                });
                            }
                        }
                        _ => r.challenger = Some((top, now)),
                    }
                }
            }
        }
        if self.next_report.is_some_and(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            let threshold = 10f32.powf(SPEECH_DBOV / 20.0);
            let mut levels: HashMap<&str, Vec<(K, f32)>> = HashMap::new();
            for (&k, m) in self.meters.iter_mut() {
                let mean = if m.report_count == 0 {
                    0.0
                } else {
                    m.report_sum / m.report_count as f32
                };
                m.report_sum = 0.0;
                m.report_count = 0;
                let entry = levels.entry(m.room.as_str()).or_default();
                if mean > threshold {
                    entry.push((k, (mean * 1000.0).round() / 1000.0));
                }
            }
            let mut rooms: Vec<(&str, Vec<(K, f32)>)> = levels.into_iter().collect();
            rooms.sort_by(|a, b| a.0.cmp(b.0));
            for (room, mut list) in rooms {
                let r = self.rooms.entry(room.to_owned()).or_default();
                if list.is_empty() && !r.reported_sound {
                    continue;
                }
                r.reported_sound = !list.is_empty();
                list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(MAX_LEVELS);
                out.push(SpeakerEvent::Levels {
                    room: room.to_owned(),
                    levels: list,
                });
            }
        }
        // Rooms whose meters are all gone.
        let live: HashSet<&str> = self.meters.values().map(|m| m.room.as_str()).collect();
        self.rooms.retain(|room, _| live.contains(room.as_str()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated time: every key sends a packet every 20 ms at its level (None = no packets); the observer is
    /// ticked every 10 ms. Returns the events with their time since `start`.
    struct Sim {
        s: Speakers<u32>,
        start: Instant,
        now: Instant,
    }

    impl Sim {
        fn new() -> Self {
            let now = Instant::now();
            Self {
                s: Speakers::default(),
                start: now,
                now,
            }
        }

        fn run(&mut self, ms: u64, levels: &[(u32, Option<i8>)]) -> Vec<(u64, SpeakerEvent<u32>)> {
            let mut out = Vec::new();
            for step in 0..ms / 10 {
                self.now += Duration::from_millis(10);
                if step % 2 == 0 {
                    for &(k, l) in levels {
                        if let Some(l) = l {
                            self.s.on_level(k, "m1", l, self.now);
                        }
                    }
                }
                if self.s.next_deadline().is_some_and(|d| self.now >= d) {
                    let at = (self.now - self.start).as_millis() as u64;
                    out.extend(self.s.tick(self.now).into_iter().map(|e| (at, e)));
                }
            }
            out
        }
    }

    fn dominants(ev: &[(u64, SpeakerEvent<u32>)]) -> Vec<(u64, u32)> {
        ev.iter()
            .filter_map(|(t, e)| match e {
                SpeakerEvent::Dominant { key, .. } => Some((*t, *key)),
                _ => None,
            })
            .collect()
    }

    fn levels(ev: &[(u64, SpeakerEvent<u32>)]) -> Vec<(u64, Vec<(u32, f32)>)> {
        ev.iter()
            .filter_map(|(t, e)| match e {
                SpeakerEvent::Levels { levels, .. } => Some((*t, levels.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_one_who_speaks_is_dominant_and_the_muted_one_has_no_level() {
        let mut sim = Sim::new();
        // 1 speaks at −20 dBov; 2 sends silence (a muted track still sends packets at −127).
        let ev = sim.run(3_000, &[(1, Some(-20)), (2, Some(-127))]);
        let d = dominants(&ev);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].1, 1);
        assert!(d[0].0 <= 300, "dominant after {} ms", d[0].0);
        let l = levels(&ev);
        assert!((5..=6).contains(&l.len()), "one report per 500 ms: {l:?}");
        for (_, list) in &l {
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0].0, 1);
            assert!((list[0].1 - 0.1).abs() < 0.001, "−20 dBov = 0.1: {list:?}");
        }
        for w in l.windows(2) {
            assert!(
                w[1].0 - w[0].0 >= 500,
                "reports at most every 500 ms: {l:?}"
            );
        }
    }

    #[test]
    fn levels_are_ordered_loudest_first_and_capped() {
        let mut sim = Sim::new();
        let keys: Vec<(u32, Option<i8>)> = (1..=8).map(|k| (k, Some(-(k as i8) * 5))).collect();
        let ev = sim.run(1_100, &keys);
        let l = levels(&ev);
        let last = &l.last().expect("a report").1;
        assert_eq!(last.len(), MAX_LEVELS);
        let order: Vec<u32> = last.iter().map(|x| x.0).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
        assert!(last.windows(2).all(|w| w[0].1 > w[1].1), "{last:?}");
    }

    #[test]
    fn a_silent_meeting_gets_nothing_and_silence_is_reported_once() {
        let mut sim = Sim::new();
        let ev = sim.run(5_000, &[(1, Some(-127)), (2, Some(-90)), (3, None)]);
        assert!(ev.is_empty(), "{ev:?}");
        let ev = sim.run(2_000, &[(1, Some(-25)), (2, Some(-90))]);
        assert!(!levels(&ev).is_empty());
        let ev = sim.run(5_000, &[(1, Some(-127)), (2, Some(-90))]);
        let l = levels(&ev);
        assert!(l.last().is_some_and(|x| x.1.is_empty()), "{l:?}");
        assert_eq!(l.iter().filter(|x| x.1.is_empty()).count(), 1, "{l:?}");
        assert!(dominants(&ev).is_empty());
    }

    #[test]
    fn a_close_challenger_does_not_take_the_role_and_no_oscillation() {
        let mut sim = Sim::new();
        let ev = sim.run(2_000, &[(1, Some(-30))]);
        assert_eq!(
            dominants(&ev).iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![1]
        );
        // 2 is a little louder, steadily, and both talk over each other for 20 s: the holder keeps the role.
        let ev = sim.run(20_000, &[(1, Some(-30)), (2, Some(-27))]);
        assert!(dominants(&ev).is_empty(), "{:?}", dominants(&ev));
        // 1 falls silent: 2 takes over after the hold, once.
        let ev = sim.run(5_000, &[(1, Some(-127)), (2, Some(-27))]);
        let d = dominants(&ev);
        assert_eq!(d.iter().map(|x| x.1).collect::<Vec<_>>(), vec![2], "{d:?}");
        assert!(d[0].0 >= 22_000 + SWITCH_HOLD.as_millis() as u64, "{d:?}");
        assert!(d[0].0 <= 22_000 + 2_500, "{d:?}");
    }

    #[test]
    fn a_short_interjection_does_not_switch() {
        let mut sim = Sim::new();
        sim.run(3_000, &[(1, Some(-30))]);
        // 2 shouts for 300 ms while 1 keeps talking.
        let ev = sim.run(300, &[(1, Some(-30)), (2, Some(-5))]);
        let ev2 = sim.run(3_000, &[(1, Some(-30))]);
        assert!(dominants(&ev).is_empty() && dominants(&ev2).is_empty());
    }

    #[test]
    fn a_paused_producer_is_silent_and_a_closed_holder_is_replaced() {
        let mut sim = Sim::new();
        sim.run(2_000, &[(1, Some(-20))]);
        // 1 is paused (fed nothing from now on); 2 talks quietly: it takes the role after the hold.
        sim.s.silence(1);
        let ev = sim.run(3_000, &[(2, Some(-45))]);
        assert_eq!(
            dominants(&ev).iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![2]
        );
        for (_, list) in levels(&ev) {
            assert!(list.iter().all(|x| x.0 != 1), "{list:?}");
        }
        // 2 leaves while 3 talks: 3 at once (no challenge against a holder that is gone).
        sim.run(1_000, &[(2, Some(-45)), (3, Some(-45))]);
        sim.s.remove(2);
        let ev = sim.run(300, &[(3, Some(-45))]);
        assert_eq!(
            dominants(&ev).iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![3]
        );
        sim.s.remove(1);
        sim.s.remove(3);
        assert_eq!(sim.s.next_deadline(), None);
    }

    #[test]
    fn rooms_are_separate() {
        let mut s: Speakers<u32> = Speakers::default();
        let mut now = Instant::now();
        let mut ev = Vec::new();
        for _ in 0..100 {
            now += Duration::from_millis(20);
            s.on_level(1, "a", -20, now);
            s.on_level(2, "b", -30, now);
            ev.extend(s.tick(now));
        }
        let mut d: Vec<(String, u32)> = ev
            .iter()
            .filter_map(|e| match e {
                SpeakerEvent::Dominant { room, key } => Some((room.clone(), *key)),
                _ => None,
            })
            .collect();
        d.sort();
        assert_eq!(d, vec![("a".into(), 1), ("b".into(), 2)]);
    }
}
