//! Retry delays for every reconnect loop (RabbitMQ, Redis, Docker): exponential, capped, with
//! jitter. The jitter matters in a fleet: when RabbitMQ restarts, every api and runner notices at
//! the same instant, and without it they would all knock again in lockstep.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is uniformly random in `[d/2, d]`, where
/// `d` doubles from `base` up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            current: base,
        }
    }

    /// The usual one for reconnecting to a dependency: 100 ms doubling to 5 s.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The delay to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to `base`, after a success.
    pub fn reset(&mut self) {
        self.current = self.base;
    }

    /// Sleeps for [`Backoff::next_delay`], or less if `stop` fires; true when stopped.
    pub async fn wait(&mut self, stop: &tokio_util::sync::CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(delay) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let expected_caps = [100, 200, 400, 800, 800, 800];
        for cap in expected_caps {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= cap / 2 && d <= cap,
                "{d} ms outside [{}, {cap}]",
                cap / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::BTreeSet<u128> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)))
            .map(|mut b| b.next_delay().as_micros())
            .collect();
        assert!(
            delays.len() > 1,
            "twenty fresh backoffs all chose the same delay"
        );
    }
}
