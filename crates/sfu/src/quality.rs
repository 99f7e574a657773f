//! Connection quality of one transport, from the figures the server sees once a second (str0m's stats: packet loss
//! both ways, round-trip time, the jitter of what it receives, and whether anything arrived at all), and from the
//! client's own `stats:report` when it sends one. Four classes, best first: excellent, good, poor, lost.
//!
//! Each window is classified on its own ([`classify`]); the reported class moves with hysteresis ([`Meter`]):
//! down after [`DOWN_WINDOWS`] worse windows in a row (a single bad second is not worth a banner), up only after
//! [`UP_WINDOWS`] better ones, to the worst of them, so a link near a threshold does not flap. Nothing received for
//! [`LOST_AFTER`] windows is `lost` at once.

use std::time::Duration;

/// Best first: a smaller value is a better link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    Excellent,
    Good,
    Poor,
    Lost,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Excellent => "excellent",
            Quality::Good => "good",
            Quality::Poor => "poor",
            Quality::Lost => "lost",
        }
    }
}

/// One window's figures (None = not measured in this window).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Fraction of packets lost, 0–1 (the worse direction).
    pub loss: Option<f32>,
    pub rtt: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Whether any datagram arrived from the peer in the window.
    pub received: bool,
}

/// Thresholds (loss fraction, RTT, jitter) at or above which a window is no better than `good` / `poor`, in the
/// spirit of LiveKit's and Zoom's indicators: 2 % loss is audible with no FEC to spare, 10 % breaks video; 250 ms
/// of RTT is a noticeable talk-over delay, 500 ms makes conversation hard.
pub const GOOD_LOSS: f32 = 0.02;
pub const POOR_LOSS: f32 = 0.10;
pub const LOST_LOSS: f32 = 0.50;
pub const GOOD_RTT: Duration = Duration::from_millis(250);
pub const POOR_RTT: Duration = Duration::from_millis(500);
pub const GOOD_JITTER: Duration = Duration::from_millis(30);
pub const POOR_JITTER: Duration = Duration::from_millis(100);
pub const DOWN_WINDOWS: u32 = 2;
pub const UP_WINDOWS: u32 = 4;
/// Windows with nothing from the peer before it is `lost`: a browser with no media to send still sends a STUN
/// check every ~2.5 s (Chrome), so six seconds of nothing is a dead path, not a quiet one.
pub const LOST_AFTER: u32 = 6;

/// One window on its own.
pub fn classify(f: &Figures) -> Quality {
    if !f.received || f.loss.is_some_and(|l| l >= LOST_LOSS) {
        return Quality::Lost;
    }
    let loss = f.loss.unwrap_or(0.0);
    let rtt = f.rtt.unwrap_or_default();
    let jitter = f.jitter.unwrap_or_default();
    if loss >= POOR_LOSS || rtt >= POOR_RTT || jitter >= POOR_JITTER {
        Quality::Poor
    } else if loss >= GOOD_LOSS || rtt >= GOOD_RTT || jitter >= GOOD_JITTER {
        Quality::Good
    } else {
        Quality::Excellent
    }
}

/// The reported class of one link, with hysteresis.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    current: Option<Quality>,
    /// Consecutive windows worse / better than `current`, and the worst of the better ones.
    worse: u32,
    better: u32,
    better_worst: Option<Quality>,
    silent: u32,
}

impl Meter {
    pub fn current(&self) -> Option<Quality> {
        self.current
    }

    /// One window; returns the new class when it changed.
    pub fn window(&mut self, f: &Figures) -> Option<Quality> {
        let raw = if f.received {
            self.silent = 0;
            classify(f)
        } else {
            self.silent += 1;
            if self.silent < LOST_AFTER {
                // A quiet second or two is not a verdict yet: it counts as neither worse nor better.
                return None;
            }
            Quality::Lost
        };
        let Some(cur) = self.current else {
            self.current = Some(raw);
            return self.current;
        };
        if raw == cur {
            self.worse = 0;
            self.better = 0;
            self.better_worst = None;
            return None;
        }
        if raw > cur {
            self.better = 0;
            self.better_worst = None;
            self.worse += 1;
            if raw == Quality::Lost || self.worse >= DOWN_WINDOWS {
                self.worse = 0;
                self.current = Some(raw);
                return self.current;
            }
            return None;
        }
        self.worse = 0;
        self.better += 1;
        let worst = self.better_worst.map_or(raw, |w| w.max(raw));
        self.better_worst = Some(worst);
        if self.better >= UP_WINDOWS {
            self.better = 0;
            self.better_worst = None;
            self.current = Some(worst);
            return self.current;
        }
        None
    }
}

/// One transport's link: str0m's stats events of a window gathered, and the window closed by its peer stats (str0m
/// emits them together, once per stats interval).
#[derive(Clone, Debug, Default)]
pub struct Link {
    meter: Meter,
    /// The peer's total bytes received at the last window, to tell whether anything arrived since.
    last_rx: Option<u64>,
    loss: Option<f32>,
    rtt: Option<Duration>,
    jitter: Option<Duration>,
    /// The client's own figures (`stats:report`, every 5 s) and for how many more windows they count.
    client: Figures,
    client_windows: u32,
}

/// A client's report counts for this many windows (it reports every 5 s).
pub const CLIENT_WINDOWS: u32 = 6;

fn worse_f(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl Link {
    pub fn current(&self) -> Option<Quality> {
        self.meter.current()
    }

    /// A stream's figures within the window (the worst stream counts): loss, RTT, and jitter (already in time).
    pub fn on_stream(
        &mut self,
        loss: Option<f32>,
        rtt: Option<Duration>,
        jitter: Option<Duration>,
    ) {
        self.loss = worse_f(self.loss, loss.filter(|l| l.is_finite()));
        self.rtt = self.rtt.max(rtt);
        self.jitter = self.jitter.max(jitter);
    }

    /// The client's own view (its getStats(): loss, RTT, jitter), folded into the next [`CLIENT_WINDOWS`] windows;
    /// non-finite or negative values are ignored.
    pub fn on_client(
        &mut self,
        loss: Option<f32>,
        rtt: Option<Duration>,
        jitter: Option<Duration>,
    ) {
        self.client = Figures {
            loss: loss
                .filter(|l| l.is_finite() && *l >= 0.0)
                .map(|l| l.min(1.0)),
            rtt,
            jitter,
            received: true,
        };
        self.client_windows = CLIENT_WINDOWS;
    }

    /// Closes the window with the transport's totals: bytes received from the peer so far, loss both ways and
    /// RTT as str0m sums them up. Returns the window's figures and the new class when it changed.
    pub fn on_peer(
        &mut self,
        bytes_rx: u64,
        loss: [Option<f32>; 2],
        rtt: Option<Duration>,
    ) -> (Figures, Option<Quality>) {
        let received = self.last_rx.is_none_or(|last| bytes_rx > last);
        self.last_rx = Some(bytes_rx);
        for l in loss {
            self.loss = worse_f(self.loss, l.filter(|l| l.is_finite()));
        }
        if self.client_windows > 0 {
            self.client_windows -= 1;
            let c = self.client;
            self.on_stream(c.loss, c.rtt, c.jitter);
        }
        let f = Figures {
            loss: self.loss.map(|l| l.clamp(0.0, 1.0)),
            rtt: self.rtt.max(rtt),
            jitter: self.jitter,
            received,
        };
        self.loss = None;
        self.rtt = None;
        self.jitter = None;
        (f, self.meter.window(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(loss: f32, rtt_ms: u64, jitter_ms: u64) -> Figures {
        Figures {
            loss: Some(loss),
            rtt: Some(Duration::from_millis(rtt_ms)),
            jitter: Some(Duration::from_millis(jitter_ms)),
            received: true,
        }
    }

    #[test]
    fn a_link_window_takes_the_worst_stream_and_notices_silence() {
        let mut l = Link::default();
        l.on_stream(Some(0.01), Some(Duration::from_millis(30)), None);
        l.on_stream(Some(0.15), None, Some(Duration::from_millis(4)));
        let (fig, q) = l.on_peer(1_000, [None, Some(0.0)], None);
        assert_eq!(fig.loss, Some(0.15));
        assert_eq!(fig.rtt, Some(Duration::from_millis(30)));
        assert!(fig.received);
        assert_eq!(q, Some(Quality::Poor));
        // The next window starts empty: nothing arrived (same byte total) LOST_AFTER times = lost.
        for _ in 1..LOST_AFTER {
            assert_eq!(l.on_peer(1_000, [None, None], None).1, None);
        }
        let (fig, q) = l.on_peer(1_000, [None, None], None);
        assert!(!fig.received && fig.loss.is_none());
        assert_eq!(q, Some(Quality::Lost));
    }

    #[test]
    fn a_clients_report_counts_for_a_few_windows() {
        let mut l = Link::default();
        assert_eq!(
            l.on_peer(1, [Some(0.0), None], None).1,
            Some(Quality::Excellent)
        );
        // The client sees 600 ms of RTT (a path the server's figures do not show, e.g. a far TURN relay).
        l.on_client(Some(f32::NAN), Some(Duration::from_millis(600)), None);
        let mut rx = 1;
        let mut seen = Vec::new();
        for _ in 0..CLIENT_WINDOWS + UP_WINDOWS + 1 {
            rx += 100;
            let (fig, q) = l.on_peer(rx, [Some(0.0), None], None);
            assert_eq!(fig.loss, Some(0.0), "NaN from a client is ignored");
            seen.extend(q);
        }
        assert_eq!(seen, vec![Quality::Poor, Quality::Excellent]);
    }

    #[test]
    fn classes_by_threshold() {
        assert_eq!(classify(&f(0.0, 20, 5)), Quality::Excellent);
        assert_eq!(
            classify(&Figures {
                received: true,
                ..Figures::default()
            }),
            Quality::Excellent
        );
        assert_eq!(classify(&f(0.03, 20, 5)), Quality::Good);
        assert_eq!(classify(&f(0.0, 300, 5)), Quality::Good);
        assert_eq!(classify(&f(0.0, 20, 40)), Quality::Good);
        assert_eq!(classify(&f(0.12, 20, 5)), Quality::Poor);
        assert_eq!(classify(&f(0.0, 600, 5)), Quality::Poor);
        assert_eq!(classify(&f(0.0, 20, 150)), Quality::Poor);
        assert_eq!(classify(&f(0.6, 20, 5)), Quality::Lost);
        assert_eq!(classify(&Figures::default()), Quality::Lost);
    }

    #[test]
    fn first_window_sets_the_class_then_down_after_two_and_up_after_four() {
        let mut m = Meter::default();
        assert_eq!(m.window(&f(0.0, 20, 5)), Some(Quality::Excellent));
        assert_eq!(
            m.window(&f(0.15, 20, 5)),
            None,
            "one bad second is not a verdict"
        );
        assert_eq!(m.window(&f(0.0, 20, 5)), None);
        assert_eq!(m.window(&f(0.15, 20, 5)), None);
        assert_eq!(m.window(&f(0.15, 20, 5)), Some(Quality::Poor));
        // Better for three windows: still poor; the fourth lifts it to the worst of the four (good).
        assert_eq!(m.window(&f(0.0, 20, 5)), None);
        assert_eq!(m.window(&f(0.03, 20, 5)), None);
        assert_eq!(m.window(&f(0.0, 20, 5)), None);
        assert_eq!(m.window(&f(0.0, 20, 5)), Some(Quality::Good));
        for _ in 0..3 {
            assert_eq!(m.window(&f(0.0, 20, 5)), None);
        }
        assert_eq!(m.window(&f(0.0, 20, 5)), Some(Quality::Excellent));
    }

    #[test]
    fn a_link_near_a_threshold_does_not_flap() {
        let mut m = Meter::default();
        m.window(&f(0.0, 20, 5));
        let mut changes = Vec::new();
        // Loss alternating just under and just over 2 % for a minute.
        for i in 0..60 {
            let loss = if i % 2 == 0 { 0.019 } else { 0.021 };
            if let Some(q) = m.window(&f(loss, 20, 5)) {
                changes.push(q);
            }
        }
        assert!(changes.len() <= 1, "{changes:?}");
    }

    #[test]
    fn silence_is_lost_after_six_windows_and_recovery_takes_four() {
        let mut m = Meter::default();
        m.window(&f(0.0, 20, 5));
        let quiet = Figures::default();
        for _ in 1..LOST_AFTER {
            assert_eq!(m.window(&quiet), None);
        }
        assert_eq!(m.window(&quiet), Some(Quality::Lost));
        assert_eq!(m.window(&quiet), None);
        for _ in 0..3 {
            assert_eq!(m.window(&f(0.0, 20, 5)), None);
        }
        assert_eq!(m.window(&f(0.0, 20, 5)), Some(Quality::Excellent));
        assert_eq!(m.current(), Some(Quality::Excellent));
    }
}
