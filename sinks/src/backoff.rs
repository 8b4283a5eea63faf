//! Waiting between attempts (design rule 5: bounded in rate, not in patience).

use std::time::Duration;

/// Exponential backoff with jitter: 100 ms doubling up to 30 s, each delay
/// drawn from the upper half of its step so that many sinks (or many
/// sidecars) retrying the same outage do not retry in lockstep.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let cap = Duration::from_millis(100u64.saturating_mul(1 << self.attempt.min(9)))
            .min(Duration::from_secs(30));
        self.attempt += 1;
        cap.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_a_cap() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(30)));
        assert!(later[19] >= Duration::from_secs(15));
    }
}
