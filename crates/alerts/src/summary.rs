//! What is waiting to be mailed: counts by event id, and the first distinct events with their
//! own counts (bounded: further distinct events only add to the counts).

use std::collections::BTreeMap;

use imageguard_policy::{Event, EventKind};

/// Distinct events listed in one mail.
pub const LISTED: usize = 20;

#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Occurrences by event id.
    pub by_id: BTreeMap<u32, u64>,
    /// The first distinct events, with how often each occurred.
    pub listed: Vec<(Event, u64)>,
    /// Seconds since the epoch of the first occurrence.
    pub since: i64,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.by_id.values().sum()
    }

    pub fn add(&mut self, event: &Event, now: i64) {
        if self.is_empty() {
            self.since = now;
        }
        *self.by_id.entry(event.kind.id()).or_default() += 1;
        if let Some(l) = self.listed.iter_mut().find(|(e, _)| e == event) {
            l.1 += 1;
        } else if self.listed.len() < LISTED {
            self.listed.push((event.clone(), 1));
        }
    }

    /// Fold an unsent summary back in (its occurrences are older).
    pub fn merge(&mut self, older: Summary) {
        for (id, n) in older.by_id {
            *self.by_id.entry(id).or_default() += n;
        }
        let mut listed = older.listed;
        for (m, n) in std::mem::take(&mut self.listed) {
            if let Some(l) = listed.iter_mut().find(|(x, _)| *x == m) {
                l.1 += n;
            } else if listed.len() < LISTED {
                listed.push((m, n));
            }
        }
        self.listed = listed;
        if older.since != 0 && (self.since == 0 || older.since < self.since) {
            self.since = older.since;
        }
    }

    /// The mail's subject.
    pub fn subject(&self, host: &str) -> String {
        let parts: Vec<String> = self
            .by_id
            .iter()
            .map(|(id, n)| format!("{n} x {id}"))
            .collect();
        format!("imageguard on {host}: {}", parts.join(", "))
    }

    /// The mail's text.
    pub fn body(&self, host: &str, interval: u64) -> String {
        let mut out = format!(
            "imageguard on {host}: {} event(s) since the last mail (at most one mail every {interval} s).\n\nBy event:\n",
            self.total()
        );
        for (id, n) in &self.by_id {
            let name = EventKind::from_id(*id).map_or("unknown", |k| k.name());
            out.push_str(&format!("  {id} {name}: {n}\n"));
        }
        out.push_str("\nEvents (the first distinct ones, each with its count):\n");
        for (e, n) in &self.listed {
            out.push_str(&format!("  {n} x {}\n", e.message()));
        }
        out.push_str("\nSee them all: imageguard events --since 1h\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::Operation;

    fn denial(f: &str) -> Event {
        Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", 1)
            .with_file(f)
            .with_operation(Operation::Delete)
    }

    #[test]
    fn a_storm_is_counted_and_its_list_bounded() {
        let mut s = Summary::default();
        for i in 0..100_000 {
            s.add(&denial(&format!("/m/{}.mrimg", i % 50)), 10);
        }
        s.add(&Event::new(EventKind::ErrorProtectingVolume), 11);
        assert_eq!(s.total(), 100_001);
        assert_eq!(s.by_id[&320], 100_000);
        assert_eq!(s.listed.len(), LISTED);
        assert_eq!(s.listed[0].1, 2_000);
        let body = s.body("host", 300);
        assert!(
            body.contains("320 EVT_MIG_BLOCKED_FILE_ACCESS: 100000"),
            "{body}"
        );
        assert!(
            body.contains("510 EVT_MIG_ERROR_PROTECTING_VOLUME: 1"),
            "{body}"
        );
        assert_eq!(
            s.subject("host"),
            "imageguard on host: 100000 x 320, 1 x 510"
        );

        let mut newer = Summary::default();
        newer.add(&denial("/m/0.mrimg"), 20);
        newer.merge(s);
        assert_eq!(newer.by_id[&320], 100_001);
        assert_eq!(newer.since, 10);
        assert_eq!(newer.listed[0].1, 2_001);
    }
}
