//! The event log the rest of imageguard writes to: `emit` appends the event to the spool (one
//! `write`, see [`crate::spool`]: it survives the service being killed) and counts it in
//! memory; a background thread flushes coalesced batches to SQLite and the journal every
//! [`FLUSH_INTERVAL`], so a storm of denials never waits on the database. At start, spool files
//! a killed service left are replayed into the database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use imageguard_policy::Event;
use parking_lot::{Condvar, Mutex};

use crate::coalesce::{now_ns, Coalescer};
use crate::journal::Journal;
use crate::spool::{self, Spool};
use crate::sqlite::{EventDb, StoreError};

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// What `emit` adds to, under one lock: the window's counts and its spool file.
struct Pending {
    coalescer: Coalescer,
    spool: Option<Spool>,
}

struct Inner {
    pending: Mutex<Pending>,
    wake: Condvar,
    stop: AtomicBool,
    /// A caller waits in `flush`: write without waiting for the batch interval.
    flush_requested: AtomicBool,
    /// Set by `flush()` callers waiting for their events to be on disk.
    flushed: Condvar,
    generation: Mutex<u64>,
}

/// Handle to the event log (cheap to clone).
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    db_path: PathBuf,
}

impl EventLog {
    /// Open the database at `db_path` and start the writer thread.
    pub fn start(db_path: &Path, journal_socket: &Path) -> Result<EventLog, StoreError> {
        let mut db = EventDb::open(db_path)?;
        let spool_dir = spool::folder(db_path);
        let next = replay(&mut db, &spool_dir);
        let spool = match Spool::start(&spool_dir, next) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(
                    "event spool {}: {e}; events reach the database only with the next batch",
                    spool_dir.display()
                );
                None
            }
        };
        let inner = Arc::new(Inner {
            pending: Mutex::new(Pending {
                coalescer: Coalescer::default(),
                spool,
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            flush_requested: AtomicBool::new(false),
            flushed: Condvar::new(),
            generation: Mutex::new(0),
        });
        let journal = Journal::new(journal_socket);
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("event writer".into())
                .spawn(move || writer_loop(inner, db, journal, spool_dir))
                .expect("spawn event writer")
        };
        Ok(EventLog {
            inner,
            thread: Arc::new(Mutex::new(Some(thread))),
            db_path: db_path.to_path_buf(),
        })
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Record an event: when this returns, the event survives the service being killed (it
    /// is in the spool); it reaches the database with the next batch.
    pub fn emit(&self, event: Event) {
        let t = now_ns();
        let mut p = self.inner.pending.lock();
        if let Some(s) = p.spool.as_mut() {
            s.append(&event, t);
        }
        p.coalescer.add(event, t);
    }

    /// Wait until everything emitted so far is written.
    pub fn flush(&self) {
        self.flush_within(Duration::from_secs(30));
    }

    /// Wait at most `limit` for everything emitted so far to be written; true when it was.
    pub fn flush_within(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut g = self.inner.generation.lock();
        let target = *g + 2;
        self.inner.flush_requested.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        while *g < target && !self.inner.stop.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            self.inner.flushed.wait_for(&mut g, wait);
            self.inner.wake.notify_one();
        }
        true
    }

    /// Flush and stop the writer.
    pub fn close(&self) {
        self.flush();
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// Store the spool files a killed service left (those the database does not have yet) and
/// remove them all; returns the next spool file's number.
fn replay(db: &mut EventDb, dir: &std::path::Path) -> u64 {
    let stored = db.spooled();
    let found = spool::files(dir);
    for &seq in &found {
        if seq > stored {
            match spool::read(dir, seq) {
                Ok(batch) if !batch.is_empty() => {
                    if let Err(e) = db.insert_spooled(&batch, Some(seq)) {
                        log::error!("replaying event spool {seq}: {e}");
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => log::error!("reading event spool {seq}: {e}"),
            }
        }
        spool::remove(dir, seq);
    }
    found.last().copied().unwrap_or(0).max(stored) + 1
}

fn writer_loop(inner: Arc<Inner>, mut db: EventDb, mut journal: Journal, spool_dir: PathBuf) {
    loop {
        {
            // One batch per interval: a storm of identical events becomes one counted row per
            // interval, not one per event.
            let mut p = inner.pending.lock();
            if !inner.stop.load(Ordering::Relaxed)
                && !inner.flush_requested.swap(false, Ordering::Relaxed)
            {
                inner.wake.wait_for(&mut p, FLUSH_INTERVAL);
            }
        }
        // The window's events and its spool file, together: what is emitted from here on goes
        // to the next of both.
        let (batch, seq) = {
            let mut p = inner.pending.lock();
            let batch = p.coalescer.drain();
            let seq = match (&mut p.spool, batch.is_empty()) {
                (Some(s), false) => Some(s.rotate()),
                _ => None,
            };
            (batch, seq)
        };
        if !batch.is_empty() {
            for (e, o) in &batch {
                journal.send(e, o);
            }
            let mut stored = true;
            if let Err(e) = db.insert_spooled(&batch, seq) {
                log::error!("{e}; reopening the event database");
                db = reopen(db.path().to_path_buf(), db);
                if let Err(e) = db.insert_spooled(&batch, seq) {
                    log::error!(
                        "{e}; {} events not stored (kept in the spool for the next start)",
                        batch.len()
                    );
                    stored = false;
                }
            } else if !db.intact() {
                // Deleted or overwritten under us: what we just wrote went to an unlinked or
                // damaged file; write the batch again into a sound one.
                db = reopen(db.path().to_path_buf(), db);
                stored = db.insert_spooled(&batch, seq).is_ok();
            }
            if let (Some(seq), true) = (seq, stored) {
                spool::remove(&spool_dir, seq);
            }
        }
        {
            let mut g = inner.generation.lock();
            *g += 1;
            inner.flushed.notify_all();
        }
        if inner.stop.load(Ordering::Relaxed) && inner.pending.lock().coalescer.is_empty() {
            return;
        }
    }
}

/// Reopen the database at `path`, moving a damaged file aside.
fn reopen(path: PathBuf, old: EventDb) -> EventDb {
    drop(old);
    match EventDb::open(&path) {
        Ok(db) if db.healthy() => db,
        _ => {
            let aside = path.with_extension(format!("corrupt-{}", now_ns()));
            let _ = std::fs::rename(&path, &aside);
            for ext in ["db-wal", "db-shm"] {
                let _ = std::fs::remove_file(path.with_extension(ext));
            }
            log::error!("event database damaged; moved to {}", aside.display());
            EventDb::open(&path).unwrap_or_else(|e| panic!("cannot recreate event database: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::EventFilter;
    use imageguard_policy::{EventKind, Operation};

    #[test]
    fn storm_is_coalesced_and_stored() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("events.db");
        let log = EventLog::start(&db, &d.path().join("nojournal")).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..100_000 {
            log.emit(
                Event::new(EventKind::BlockedFileAccess)
                    .with_process("/bin/rm", 1)
                    .with_file("/m/a.mrimg")
                    .with_operation(Operation::Delete),
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "emit must not wait on disk"
        );
        log.flush();
        let rows = EventDb::open_read_only(&db)
            .unwrap()
            .query(&EventFilter::default())
            .unwrap();
        let total: u64 = rows.iter().map(|r| r.count).sum();
        assert_eq!(total, 100_000);
        assert!(
            rows.len() < 100,
            "coalesced into few rows, got {}",
            rows.len()
        );
        log.close();
    }

    #[test]
    fn a_killed_services_spool_is_replayed_once() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("events.db");
        let dir = spool::folder(&db);
        let denial = Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", 9)
            .with_file("/m/a.mrimg")
            .with_operation(Operation::Delete);
        // What a service killed before its writer ran left behind: two windows.
        let mut s = Spool::start(&dir, 1).unwrap();
        for i in 0..3 {
            s.append(&denial, i);
        }
        s.rotate();
        s.append(&Event::new(EventKind::ServiceStarted), 10);
        drop(s);
        let log = EventLog::start(&db, &d.path().join("nojournal")).unwrap();
        log.flush();
        let rows = EventDb::open_read_only(&db)
            .unwrap()
            .query(&EventFilter::default())
            .unwrap();
        let count = |id: u32| -> u64 { rows.iter().filter(|r| r.id == id).map(|r| r.count).sum() };
        assert_eq!((count(320), count(100)), (3, 1), "{rows:?}");
        assert_eq!(
            spool::files(&dir).len(),
            1,
            "only the new spool file is left"
        );
        log.close();

        // A spool file the database already has (killed between the two) is not stored twice.
        let mut stale = Spool::start(&dir, 1).unwrap();
        stale.append(&denial, 20);
        drop(stale);
        let log = EventLog::start(&db, &d.path().join("nojournal")).unwrap();
        log.emit(denial.clone());
        log.flush();
        let rows = EventDb::open_read_only(&db)
            .unwrap()
            .query(&EventFilter::default())
            .unwrap();
        let total: u64 = rows.iter().filter(|r| r.id == 320).map(|r| r.count).sum();
        assert_eq!(total, 4, "{rows:?}");
        log.close();
    }

    #[test]
    fn survives_deletion_and_corruption_of_the_database() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("events.db");
        let log = EventLog::start(&db, &d.path().join("nojournal")).unwrap();
        log.emit(Event::new(EventKind::ServiceStarted));
        log.flush();
        std::fs::remove_file(&db).unwrap();
        log.emit(Event::new(EventKind::ServiceStopped));
        log.flush();
        let rows = EventDb::open_read_only(&db)
            .unwrap()
            .query(&EventFilter::default())
            .unwrap();
        assert!(rows.iter().any(|r| r.id == 200), "{rows:?}");
        std::fs::write(&db, vec![0x55u8; 8192]).unwrap();
        let _ = std::fs::remove_file(d.path().join("events.db-wal"));
        log.emit(Event::new(EventKind::ServiceStarted).with_detail("after corruption"));
        log.flush();
        log.emit(Event::new(EventKind::ServiceStarted).with_detail("after corruption 2"));
        log.flush();
        let rows = EventDb::open_read_only(&db)
            .unwrap()
            .query(&EventFilter::default())
            .unwrap();
        assert!(
            rows.iter().any(|r| r.message.contains("after corruption")),
            "{rows:?}"
        );
        log.close();
    }
}
