//! Reconnect delays: exponential with ±20 % jitter (so that many agents behind one outage
//! do not come back in step), reset once a connection has stayed up for a while.

use std::time::{Duration, Instant};

use rand::Rng;

/// Spread of the jitter around the nominal delay.
const JITTER: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_after: Duration,
    failures: u32,
    up_since: Option<Instant>,
}

impl Default for Backoff {
    /// 1 s doubling to 60 s; reset after 60 s of a healthy connection.
    fn default() -> Self {
        Self::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, healthy_after: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            healthy_after,
            failures: 0,
            up_since: None,
        }
    }

    /// The connection is up (from `now`).
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// Something worked: the next failure starts again from the initial delay.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.up_since = None;
    }

    /// The connection failed or dropped at `now`: how long to wait before the next try.
    /// A connection that had been up for `healthy_after` starts the sequence over.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        if let Some(up) = self.up_since.take()
            && now.saturating_duration_since(up) >= self.healthy_after
        {
            self.failures = 0;
        }
        let nominal = self.nominal();
        self.failures = self.failures.saturating_add(1);
        nominal.mul_f64(rand::rng().random_range(1.0 - JITTER..=1.0 + JITTER))
    }

    /// The delay before jitter for the next failure.
    fn nominal(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, nominal_ms: u64) -> bool {
        let nominal = Duration::from_millis(nominal_ms);
        d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2)
    }

    #[test]
    fn server_backoff_doubles_within_jitter_up_to_the_cap() {
        let now = Instant::now();
        let mut b = Backoff::default();
        for nominal in [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000] {
            let d = b.next_delay(now);
            assert!(within(d, nominal), "{d:?} is not {nominal} ms ± 20 %");
        }
        for _ in 0..100 {
            assert!(within(b.next_delay(now), 60_000));
        }
    }

    #[test]
    fn server_backoff_resets_only_after_a_healthy_connection() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.next_delay(t0);
        }
        // Up for 10 s only: keeps growing.
        b.connected(t0);
        assert!(within(b.next_delay(t0 + Duration::from_secs(10)), 16_000));
        // Up for 60 s: starts over.
        b.connected(t0);
        assert!(within(b.next_delay(t0 + Duration::from_secs(60)), 1_000));
        assert!(within(b.next_delay(t0 + Duration::from_secs(61)), 2_000));
        b.reset();
        assert!(within(b.next_delay(t0), 1_000));
    }
}
