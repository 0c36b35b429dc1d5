//! Counting identical events between flushes, in bounded memory.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use imageguard_policy::Event;

/// Distinct events held between flushes before further distinct ones are folded per process and
/// operation (their file names are dropped, their count kept).
pub const MAX_PENDING: usize = 20_000;

/// How often an event occurred in one flush window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrences {
    pub count: u64,
    pub first_ns: i64,
    pub last_ns: i64,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
pub struct Coalescer {
    pending: HashMap<Event, Occurrences>,
    order: Vec<Event>,
}

impl Coalescer {
    pub fn add(&mut self, mut event: Event, at_ns: i64) {
        if !self.pending.contains_key(&event) && self.pending.len() >= MAX_PENDING {
            event.file = None;
            event.detail = Some("further files coalesced under load".to_string());
        }
        match self.pending.get_mut(&event) {
            Some(o) => {
                o.count += 1;
                o.last_ns = at_ns;
            }
            None => {
                self.pending.insert(
                    event.clone(),
                    Occurrences {
                        count: 1,
                        first_ns: at_ns,
                        last_ns: at_ns,
                    },
                );
                self.order.push(event);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Everything pending, in first-seen order.
    pub fn drain(&mut self) -> Vec<(Event, Occurrences)> {
        let mut pending = std::mem::take(&mut self.pending);
        std::mem::take(&mut self.order)
            .into_iter()
            .filter_map(|e| pending.remove(&e).map(|o| (e, o)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::{EventKind, Operation};

    fn denial(pid: u32, file: &str) -> Event {
        Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", pid)
            .with_file(file)
            .with_operation(Operation::Delete)
    }

    #[test]
    fn identical_repeats_are_counted() {
        let mut c = Coalescer::default();
        for i in 0..1000 {
            c.add(denial(1, "/m/a.mrimg"), i);
        }
        c.add(denial(1, "/m/b.mrimg"), 2000);
        let d = c.drain();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].1,
            Occurrences {
                count: 1000,
                first_ns: 0,
                last_ns: 999
            }
        );
        assert_eq!(d[1].1.count, 1);
        assert!(c.is_empty());
    }

    #[test]
    fn memory_is_bounded_and_nothing_is_dropped() {
        let mut c = Coalescer::default();
        let n = MAX_PENDING + 50_000;
        for i in 0..n {
            c.add(denial(7, &format!("/m/{i}.mrimg")), i as i64);
        }
        assert!(c.len() <= MAX_PENDING + 1);
        let total: u64 = c.drain().iter().map(|(_, o)| o.count).sum();
        assert_eq!(total, n as u64);
    }
}
