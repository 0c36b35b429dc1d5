//! The event database: SQLite in WAL mode, one row per coalesced event.
//!
//! If the database file is deleted or corrupted under the running service, the next write notices,
//! moves any damaged file aside and starts a fresh database rather than losing new events.

use std::path::{Path, PathBuf};

use imageguard_policy::{Event, EventKind};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::coalesce::Occurrences;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    first_ns    INTEGER NOT NULL,
    last_ns     INTEGER NOT NULL,
    event_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    message     TEXT NOT NULL,
    exe         TEXT,
    pid         INTEGER,
    operation   TEXT,
    file        TEXT,
    device      TEXT,
    uuid        TEXT,
    mount_point TEXT,
    error_code  INTEGER,
    detail      TEXT,
    count       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_by_id ON events(event_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events(first_ns);
CREATE TABLE IF NOT EXISTS spool (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL
);
";

/// One stored event row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    /// Unix time of the first occurrence, nanoseconds.
    pub first_ns: i64,
    pub last_ns: i64,
    pub id: u32,
    pub name: String,
    pub severity: String,
    pub message: String,
    pub exe: Option<String>,
    pub pid: Option<u32>,
    pub operation: Option<String>,
    pub file: Option<String>,
    pub device: Option<String>,
    pub uuid: Option<String>,
    pub mount_point: Option<String>,
    pub error_code: Option<i32>,
    pub count: u64,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub id: Option<u32>,
    pub since_ns: Option<i64>,
    pub after_seq: Option<i64>,
    /// The newest `limit` rows (still returned oldest first).
    pub limit: Option<u64>,
}

pub struct EventDb {
    path: PathBuf,
    conn: Connection,
}

fn wrap(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

impl EventDb {
    /// Open (creating if needed) the database for writing.
    pub fn open(path: &Path) -> Result<EventDb, StoreError> {
        let conn = Connection::open(path).map_err(wrap(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(wrap(path))?;
        conn.execute_batch(SCHEMA).map_err(wrap(path))?;
        Ok(EventDb {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Open an existing database for reading only.
    pub fn open_read_only(path: &Path) -> Result<EventDb, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(wrap(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(wrap(path))?;
        Ok(EventDb {
            path: path.to_path_buf(),
            conn,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Insert a batch in one transaction.
    pub fn insert(&mut self, batch: &[(Event, Occurrences)]) -> Result<(), StoreError> {
        self.insert_spooled(batch, None)
    }

    /// The last spool file whose events are stored (see [`crate::spool`]); 0 for none.
    pub fn spooled(&self) -> u64 {
        self.conn
            .query_row("SELECT seq FROM spool WHERE id = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|s| s as u64)
            .unwrap_or(0)
    }

    /// Insert a batch in one transaction, recording that spool file `spool` is stored with it.
    pub fn insert_spooled(
        &mut self,
        batch: &[(Event, Occurrences)],
        spool: Option<u64>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(wrap(&path))?;
        if let Some(seq) = spool {
            tx.execute(
                "INSERT INTO spool (id, seq) VALUES (0, ?1)
                 ON CONFLICT(id) DO UPDATE SET seq = max(seq, excluded.seq)",
                params![seq as i64],
            )
            .map_err(wrap(&path))?;
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events (first_ns, last_ns, event_id, name, severity, message, exe, pid,
                        operation, file, device, uuid, mount_point, error_code, detail, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(wrap(&path))?;
            for (e, o) in batch {
                let v = e.volume.as_ref();
                stmt.execute(params![
                    o.first_ns,
                    o.last_ns,
                    e.kind.id(),
                    e.kind.name(),
                    e.kind.severity().name(),
                    e.message(),
                    e.process.as_ref().map(|p| p.exe.as_str()),
                    e.process.as_ref().map(|p| p.pid),
                    e.operation.map(|op| op.name()),
                    e.file.as_deref(),
                    v.map(|v| v.device.as_str()),
                    v.and_then(|v| v.uuid.as_deref()),
                    v.map(|v| v.mount_point.as_str()),
                    e.error_code,
                    e.detail.as_deref(),
                    o.count as i64,
                ])
                .map_err(wrap(&path))?;
            }
        }
        tx.commit().map_err(wrap(&path))
    }

    /// Is the file this connection writes to still the one at `path`, and readable?
    /// A cheap check, made after every batch, that what was just written can be read back: the
    /// database and its write-ahead log still exist and the database still starts with SQLite's
    /// header (someone may have deleted or overwritten them under the open connection).
    pub fn intact(&self) -> bool {
        use std::io::Read;
        let mut head = [0u8; 16];
        let header = std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && &head == b"SQLite format 3\0";
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        header && std::path::Path::new(&wal).exists()
    }

    pub fn healthy(&self) -> bool {
        self.path.exists()
            && self
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
                .optional()
                .ok()
                .flatten()
                .as_deref()
                == Some("ok")
    }

    pub fn query(&self, f: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, first_ns, last_ns, event_id, name, severity, message, exe, pid, operation, file,
                    device, uuid, mount_point, error_code, count FROM events WHERE 1=1",
        );
        let mut args: Vec<i64> = Vec::new();
        if let Some(id) = f.id {
            sql.push_str(" AND event_id = ?");
            args.push(id as i64);
        }
        if let Some(s) = f.since_ns {
            sql.push_str(" AND last_ns >= ?");
            args.push(s);
        }
        if let Some(a) = f.after_seq {
            sql.push_str(" AND seq > ?");
            args.push(a);
        }
        sql.push_str(" ORDER BY seq DESC");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(wrap(&self.path))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(StoredEvent {
                    seq: r.get(0)?,
                    first_ns: r.get(1)?,
                    last_ns: r.get(2)?,
                    id: r.get(3)?,
                    name: r.get(4)?,
                    severity: r.get(5)?,
                    message: r.get(6)?,
                    exe: r.get(7)?,
                    pid: r.get(8)?,
                    operation: r.get(9)?,
                    file: r.get(10)?,
                    device: r.get(11)?,
                    uuid: r.get(12)?,
                    mount_point: r.get(13)?,
                    error_code: r.get(14)?,
                    count: r.get::<_, i64>(15)? as u64,
                })
            })
            .map_err(wrap(&self.path))?;
        let mut out: Vec<StoredEvent> = rows.collect::<Result<_, _>>().map_err(wrap(&self.path))?;
        out.reverse();
        Ok(out)
    }

    /// Total occurrences per event id.
    pub fn counts(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event_id, SUM(count) FROM events GROUP BY event_id ORDER BY event_id")
            .map_err(wrap(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(wrap(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(wrap(&self.path))
    }

    /// Refused operations (event 320) by operation and volume mount point, with their counts.
    pub fn denials(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT COALESCE(operation, ''), COALESCE(mount_point, ''), SUM(count) FROM events
                 WHERE event_id = 320 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .map_err(wrap(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(wrap(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(wrap(&self.path))
    }
}

/// Name of an event id for listings, or the number when unknown.
pub fn event_name(id: u32) -> String {
    EventKind::from_id(id)
        .map(|k| k.name().to_string())
        .unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::{EventKind, Operation};

    #[test]
    fn insert_query_count() {
        let d = tempfile::tempdir().unwrap();
        let mut db = EventDb::open(&d.path().join("events.db")).unwrap();
        let e = Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", 3)
            .with_file("/m/a.mrimg")
            .with_operation(Operation::Delete);
        let o = Occurrences {
            count: 5,
            first_ns: 10,
            last_ns: 20,
        };
        db.insert(&[
            (e.clone(), o),
            (
                Event::new(EventKind::ServiceStarted),
                Occurrences {
                    count: 1,
                    first_ns: 30,
                    last_ns: 30,
                },
            ),
        ])
        .unwrap();
        let all = db.query(&EventFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, 320);
        assert_eq!(all[0].count, 5);
        assert_eq!(all[0].message, e.message());
        assert_eq!(all[0].operation.as_deref(), Some("delete"));
        let only = db
            .query(&EventFilter {
                id: Some(100),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(only.len(), 1);
        let since = db
            .query(&EventFilter {
                since_ns: Some(25),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(since.len(), 1);
        let after = db
            .query(&EventFilter {
                after_seq: Some(all[0].seq),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(after[0].id, 100);
        assert_eq!(db.counts().unwrap(), vec![(100, 1), (320, 5)]);
        assert!(db.healthy());
        let ro = EventDb::open_read_only(db.path()).unwrap();
        assert_eq!(
            ro.query(&EventFilter {
                limit: Some(1),
                ..Default::default()
            })
            .unwrap()[0]
                .id,
            100
        );
    }
}
