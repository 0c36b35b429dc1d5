//! The event spool: every event is appended to a small file before `EventLog::emit` returns,
//! so that a refused caller never gets its `EPERM` before its event would survive the service
//! being killed (`SIGKILL` included: what `write` handed the kernel is in the page cache and
//! reaches the disk without the process). The writer thread moves each batch into SQLite and
//! then deletes its spool file; the spool's sequence number is stored in the same transaction,
//! so a file found at the next start is replayed exactly once.
//!
//! A file holds one flush window: a line per event, the first of each distinct event in full
//! (`{"t":NS,"e":EVENT}`), its repeats as a reference to that line (`{"t":NS,"same":N}`), so a
//! storm's count is durable at a few bytes per denial.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use imageguard_policy::Event;
use serde::{Deserialize, Serialize};

use crate::coalesce::Coalescer;
use crate::coalesce::Occurrences;

/// One line of a spool file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    same: Option<u32>,
}

/// The spool files next to the database at `db`: `DB.spool/SEQ`.
pub fn folder(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".spool");
    PathBuf::from(p)
}

/// The spool being written.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    seq: u64,
    file: Option<File>,
    /// Line number of each distinct event in the current file.
    lines: HashMap<Event, u32>,
    written: u32,
    /// A write failed (disk full, folder gone): said once, events still reach the database.
    failing: bool,
}

impl Spool {
    /// Start writing spool file `seq` in `dir`.
    pub fn start(dir: &Path, seq: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut s = Spool {
            dir: dir.to_path_buf(),
            seq,
            file: None,
            lines: HashMap::new(),
            written: 0,
            failing: false,
        };
        s.open()?;
        Ok(s)
    }

    fn open(&mut self) -> std::io::Result<()> {
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(self.seq.to_string()))?,
        );
        Ok(())
    }

    /// Append `event`, seen at `t_ns`; returns when the kernel has it.
    pub fn append(&mut self, event: &Event, t_ns: i64) {
        let line = match self.lines.get(event) {
            Some(&n) => Line {
                t: t_ns,
                e: None,
                same: Some(n),
            },
            None => {
                self.lines.insert(event.clone(), self.written);
                Line {
                    t: t_ns,
                    e: Some(event.clone()),
                    same: None,
                }
            }
        };
        self.written += 1;
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        let r = match self.file.as_mut() {
            Some(f) => f.write_all(&bytes),
            None => Err(std::io::Error::other("no spool file")),
        };
        if let Err(e) = r {
            if !self.failing {
                log::error!(
                    "event spool {}: {e}; events are kept in memory until written to the database",
                    self.dir.display()
                );
                self.failing = true;
            }
        }
    }

    /// Start the next file (the current one's events are about to be written to the
    /// database); returns the sequence number of the one just closed.
    pub fn rotate(&mut self) -> u64 {
        let done = self.seq;
        self.seq += 1;
        self.lines.clear();
        self.written = 0;
        if let Err(e) = self.open() {
            if !self.failing {
                log::error!("event spool {}: {e}", self.dir.display());
                self.failing = true;
            }
            self.file = None;
        }
        done
    }
}

/// Remove spool file `seq` of `dir` (its events are in the database).
pub fn remove(dir: &Path, seq: u64) {
    let _ = std::fs::remove_file(dir.join(seq.to_string()));
}

/// The spool files in `dir`, oldest first.
pub fn files(dir: &Path) -> Vec<u64> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    seqs.sort_unstable();
    seqs
}

/// The events of spool file `seq` in `dir`, counted as the writer would have (a line cut short
/// by the end of the file is the last write the kernel did not finish: dropped).
pub fn read(dir: &Path, seq: u64) -> std::io::Result<Vec<(Event, Occurrences)>> {
    let f = File::open(dir.join(seq.to_string()))?;
    // Each line's event, by line number (what a repeat refers to).
    let mut by_line: Vec<Option<Event>> = vec![];
    let mut c = Coalescer::default();
    for line in BufReader::new(f).lines() {
        let parsed = serde_json::from_str::<Line>(&line?).ok();
        let event = parsed.as_ref().and_then(|l| match (&l.e, l.same) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(n)) => by_line.get(n as usize).cloned().flatten(),
            (None, None) => None,
        });
        by_line.push(event.clone());
        if let (Some(e), Some(l)) = (event, parsed) {
            c.add(e, l.t);
        }
    }
    Ok(c.drain())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::{EventKind, Operation};

    fn denial(file: &str) -> Event {
        Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", 7)
            .with_file(file)
            .with_operation(Operation::Delete)
    }

    #[test]
    fn a_window_is_read_back_with_its_counts() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::start(d.path(), 5).unwrap();
        for i in 0..1000 {
            s.append(&denial("/m/a.mrimg"), i);
        }
        s.append(&denial("/m/b.mrimg"), 2000);
        s.append(&Event::new(EventKind::ServiceStarted), 2001);
        assert_eq!(files(d.path()), vec![5]);
        let read_back = read(d.path(), 5).unwrap();
        assert_eq!(read_back.len(), 3);
        assert_eq!(read_back[0].0, denial("/m/a.mrimg"));
        assert_eq!(read_back[0].1.count, 1000);
        assert_eq!((read_back[0].1.first_ns, read_back[0].1.last_ns), (0, 999));
        assert_eq!(read_back[1].1.count, 1);
        // A repeat is a few bytes.
        let size = std::fs::metadata(d.path().join("5")).unwrap().len();
        assert!(size < 40_000, "{size} bytes for 1002 events");

        assert_eq!(s.rotate(), 5);
        s.append(&denial("/m/c.mrimg"), 3000);
        remove(d.path(), 5);
        assert_eq!(files(d.path()), vec![6]);
        assert_eq!(read(d.path(), 6).unwrap()[0].0, denial("/m/c.mrimg"));
    }

    #[test]
    fn a_torn_last_line_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::start(d.path(), 1).unwrap();
        s.append(&denial("/m/a.mrimg"), 1);
        s.append(&denial("/m/a.mrimg"), 2);
        drop(s);
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join("1"))
            .unwrap();
        f.write_all(b"{\"t\":3,\"sa").unwrap();
        let r = read(d.path(), 1).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1.count, 2);
    }
}
