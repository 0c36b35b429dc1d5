//! How long the guard's decisions take: a fixed-bucket histogram of the time from a request on
//! a backup entry reaching the gate to its verdict (identifying the caller, the rules, the
//! retention lock), updated with atomics only, exported by `imageguard metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket is everything above).
pub const BOUNDS_US: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000,
];

#[derive(Debug, Default)]
pub struct Latency {
    /// Decisions at or under each bound (not cumulative); one more for above the last.
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

/// A reading: cumulative counts per bound (Prometheus' `le`), the total, the sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub cumulative: Vec<(u64, u64)>,
    pub count: u64,
    pub sum_ns: u64,
}

impl Latency {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let mut running = 0;
        let cumulative = BOUNDS_US
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                running += self.buckets[i].load(Ordering::Relaxed);
                (b, running)
            })
            .collect();
        let count = running + self.buckets[BOUNDS_US.len()].load(Ordering::Relaxed);
        LatencySnapshot {
            cumulative,
            count,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_rest_counts() {
        let l = Latency::default();
        l.record(Duration::from_micros(3));
        l.record(Duration::from_micros(40));
        l.record(Duration::from_millis(70));
        let s = l.snapshot();
        assert_eq!(s.cumulative[0], (5, 1));
        assert_eq!(s.cumulative[3], (50, 2));
        assert_eq!(s.cumulative.last(), Some(&(50_000, 2)));
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_ns, 3_000 + 40_000 + 70_000_000);
    }
}
