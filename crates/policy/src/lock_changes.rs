//! Changes to the retention lock are locked too: a lock that was in force and is shortened or
//! removed keeps its old length until the period it promised has passed (as an object lock's
//! compliance mode does), so that an edited configuration or `imageguard off` by ransomware
//! does not release young backups. Lengthening takes effect at once.
//!
//! The service keeps the locks in force as [`LockRecord`]s in its state; at every start it
//! hands them and the configuration's locks to [`carry_over`], which says what is in force
//! now, what to record, and what changed (for the log). Times are seconds on the service's
//! own clock (never the wall clock).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A lock in force on a folder (a protected volume or a destination folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub folder: PathBuf,
    pub days: u32,
    /// `None` while the configuration sets it; once shortened or removed, the service-clock
    /// second until which it stays in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

/// What changed between the recorded locks and the configuration's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChange {
    /// A new lock, or a longer one: in force at once.
    Set { folder: PathBuf, days: u32 },
    /// A lock shortened (to `to` days, 0 = removed): the old one stays until `until`.
    Kept {
        folder: PathBuf,
        days: u32,
        to: u32,
        until: u64,
    },
    /// A shortened or removed lock whose period has passed: no longer in force.
    Expired { folder: PathBuf, days: u32 },
}

/// The locks in force given what was `recorded` and what is `configured` (folder, days; 0 =
/// none) at service-clock second `now`: the records to keep (the configuration's locks, and
/// the old ones still within their period) and the changes.
pub fn carry_over(
    recorded: &[LockRecord],
    configured: &[(PathBuf, u32)],
    now: u64,
) -> (Vec<LockRecord>, Vec<LockChange>) {
    let mut kept: Vec<LockRecord> = vec![];
    let mut changes = vec![];
    let configured_days = |folder: &PathBuf| {
        configured
            .iter()
            .filter(|(f, _)| f == folder)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0)
    };
    for r in recorded {
        let to = configured_days(&r.folder);
        match r.until {
            // In force and not shortened: the configuration's record stands for it.
            None if to >= r.days => {}
            None => {
                let until = now.saturating_add(u64::from(r.days) * 86_400);
                changes.push(LockChange::Kept {
                    folder: r.folder.clone(),
                    days: r.days,
                    to,
                    until,
                });
                kept.push(LockRecord {
                    until: Some(until),
                    ..r.clone()
                });
            }
            Some(until) if until > now && to < r.days => kept.push(r.clone()),
            // Lengthened again to at least its days: the configuration's record covers it.
            Some(until) if until > now => {}
            Some(_) => changes.push(LockChange::Expired {
                folder: r.folder.clone(),
                days: r.days,
            }),
        }
    }
    for (folder, days) in configured {
        if *days == 0 || configured_days(folder) != *days {
            continue;
        }
        if kept
            .iter()
            .any(|k| &k.folder == folder && k.until.is_none())
        {
            continue;
        }
        let before = recorded
            .iter()
            .filter(|r| &r.folder == folder && r.until.is_none())
            .map(|r| r.days)
            .max()
            .unwrap_or(0);
        if *days > before {
            changes.push(LockChange::Set {
                folder: folder.clone(),
                days: *days,
            });
        }
        kept.push(LockRecord {
            folder: folder.clone(),
            days: *days,
            until: None,
        });
    }
    (kept, changes)
}

/// The locks in force from `records` (folder, days), for the guard: the configuration's and
/// the shortened ones within their period at `now`.
pub fn in_force(records: &[LockRecord], now: u64) -> Vec<(PathBuf, u32)> {
    records
        .iter()
        .filter(|r| r.until.is_none_or(|u| u > now))
        .map(|r| (r.folder.clone(), r.days))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn rec(folder: &str, days: u32, until: Option<u64>) -> LockRecord {
        LockRecord {
            folder: folder.into(),
            days,
            until,
        }
    }

    fn conf(list: &[(&str, u32)]) -> Vec<(PathBuf, u32)> {
        list.iter().map(|(f, d)| (PathBuf::from(f), *d)).collect()
    }

    #[test]
    fn a_lock_set_for_the_first_time_is_in_force_at_once() {
        let (kept, changes) = carry_over(&[], &conf(&[("/mnt/usb", 14), ("/mnt/off", 0)]), 100);
        assert_eq!(kept, vec![rec("/mnt/usb", 14, None)]);
        assert_eq!(
            changes,
            vec![LockChange::Set {
                folder: "/mnt/usb".into(),
                days: 14
            }]
        );
        assert_eq!(in_force(&kept, 100), vec![(PathBuf::from("/mnt/usb"), 14)]);
        // Unchanged at the next start: nothing to log.
        let (again, changes) = carry_over(&kept, &conf(&[("/mnt/usb", 14)]), 5 * DAY);
        assert_eq!(again, kept);
        assert!(changes.is_empty());
    }

    #[test]
    fn a_removed_or_shortened_lock_stays_for_its_period() {
        let t0 = 10 * DAY;
        for (to, conf_now) in [(0, conf(&[])), (7, conf(&[("/mnt/usb", 7)]))] {
            let recorded = [rec("/mnt/usb", 14, None)];
            let (kept, changes) = carry_over(&recorded, &conf_now, t0);
            assert_eq!(
                changes,
                vec![LockChange::Kept {
                    folder: "/mnt/usb".into(),
                    days: 14,
                    to,
                    until: t0 + 14 * DAY
                }],
                "to {to}"
            );
            // 14 days stay in force until t0 + 14 days, whatever the configuration says.
            let force = in_force(&kept, t0 + 13 * DAY);
            assert!(force.contains(&(PathBuf::from("/mnt/usb"), 14)), "to {to}");
            // Restarts meanwhile keep the same end (not a new period from each start).
            let (later, changes) = carry_over(&kept, &conf_now, t0 + 5 * DAY);
            assert_eq!(later, kept, "to {to}");
            assert!(changes.is_empty(), "to {to}");
            // After it: only the configuration's lock.
            let (after, changes) = carry_over(&later, &conf_now, t0 + 14 * DAY);
            assert_eq!(
                changes,
                vec![LockChange::Expired {
                    folder: "/mnt/usb".into(),
                    days: 14
                }]
            );
            assert_eq!(
                in_force(&after, t0 + 14 * DAY),
                conf_now
                    .iter()
                    .filter(|(_, d)| *d > 0)
                    .cloned()
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_lengthened_lock_is_in_force_at_once_and_covers_an_old_shortening() {
        let recorded = [
            rec("/mnt/usb", 14, Some(30 * DAY)),
            rec("/mnt/usb", 7, None),
        ];
        let (kept, changes) = carry_over(&recorded, &conf(&[("/mnt/usb", 30)]), 20 * DAY);
        assert_eq!(kept, vec![rec("/mnt/usb", 30, None)]);
        assert_eq!(
            changes,
            vec![LockChange::Set {
                folder: "/mnt/usb".into(),
                days: 30
            }]
        );
    }

    #[test]
    fn the_longest_of_a_folders_configured_locks_counts() {
        let (kept, _) = carry_over(&[], &conf(&[("/a", 7), ("/a", 14)]), 0);
        assert_eq!(kept, vec![rec("/a", 14, None)]);
        // Removing one folder's lock leaves the others alone.
        let recorded = [rec("/a", 14, None), rec("/b", 3, None)];
        let (kept, changes) = carry_over(&recorded, &conf(&[("/b", 3)]), DAY);
        assert_eq!(
            kept,
            vec![rec("/a", 14, Some(15 * DAY)), rec("/b", 3, None)]
        );
        assert_eq!(changes.len(), 1);
    }
}
