//! The portal's leaky bucket kept on our side: every request adds one, the bucket drains
//! `rate` per second, a request that would overflow `burst` (less one place for timing
//! jitter) waits. Staying under the
//! limit costs less than being refused with 503 and backing off.

use std::time::{Duration, Instant};

/// Bitrix24 plan limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests drained per second.
    pub rate: f64,
    /// Requests the bucket holds.
    pub burst: f64,
}

impl Limit {
    /// Every plan but Enterprise: 2 requests/s, 50 at once.
    pub const STANDARD: Limit = Limit {
        rate: 2.0,
        burst: 50.0,
    };
    /// Enterprise: 5 requests/s, 250 at once.
    pub const ENTERPRISE: Limit = Limit {
        rate: 5.0,
        burst: 250.0,
    };
}

/// The bucket's level as of a moment.
#[derive(Debug, Clone)]
pub struct Pace {
    limit: Limit,
    level: f64,
    at: Instant,
    /// Extra wait after refusals: doubles per refusal, cleared by a success.
    backoff: Duration,
}

impl Pace {
    pub fn new(limit: Limit, now: Instant) -> Pace {
        Pace {
            limit,
            level: 0.0,
            at: now,
            backoff: Duration::ZERO,
        }
    }

    fn drain(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level - secs * self.limit.rate).max(0.0);
        self.at = now;
    }

    /// How long to wait before the next request may go. One place of the bucket is kept
    /// free: our requests reach the portal a little late or early, and the portal counts
    /// by their arrival.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.drain(now);
        let over = self.level + 1.0 - (self.limit.burst - 1.0).max(1.0);
        let bucket = if over > 0.0 {
            Duration::from_secs_f64(over / self.limit.rate)
        } else {
            Duration::ZERO
        };
        bucket.max(self.backoff)
    }

    /// A request went out now.
    pub fn sent(&mut self, now: Instant) {
        self.drain(now);
        self.level += 1.0;
    }

    /// The portal refused for the rate: assume the bucket full and back off, doubling
    /// from half a second up to a minute.
    pub fn refused(&mut self) {
        self.level = self.limit.burst;
        self.backoff = (self.backoff * 2)
            .max(Duration::from_millis(500))
            .min(Duration::from_secs(60));
    }

    /// A request succeeded: no extra wait.
    pub fn succeeded(&mut self) {
        self.backoff = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(Limit::STANDARD, t0);
        for _ in 0..49 {
            assert_eq!(p.wait(t0), Duration::ZERO);
            p.sent(t0);
        }
        // The 50th (one place is kept free) waits for half a request to drain at 2/s.
        assert_eq!(p.wait(t0), Duration::from_millis(500));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(p.wait(later), Duration::ZERO);
        p.sent(later);
        assert_eq!(p.wait(later), Duration::from_millis(500));
        // Past the burst, 100 requests take 50 s: the documented 2 requests/s.
        let mut t = later;
        let mut waited = Duration::ZERO;
        for _ in 0..100 {
            let w = p.wait(t);
            waited += w;
            t += w;
            p.sent(t);
        }
        assert_eq!(waited, Duration::from_millis(50_000));
    }

    #[test]
    fn refusals_back_off_and_success_clears() {
        let t0 = Instant::now();
        let mut p = Pace::new(Limit::ENTERPRISE, t0);
        p.refused();
        assert_eq!(
            p.wait(t0),
            Duration::from_millis(500).max(Duration::from_secs_f64(1.0 / 5.0))
        );
        p.refused();
        p.refused();
        assert_eq!(p.wait(t0), Duration::from_secs(2));
        p.succeeded();
        // Only the bucket remains: full (and a place kept free), so two drain at 5/s.
        assert_eq!(p.wait(t0), Duration::from_millis(400));
    }
}
