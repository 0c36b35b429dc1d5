//! imageguard's event log.
//!
//! - [`coalesce`]: events arrive on the guard's hot path; identical repeats are counted in memory
//!   (bounded), never dropped.
//! - [`sqlite`]: the store, one SQLite database in WAL mode under the state directory.
//! - [`journal`]: the systemd journal's native protocol, when its socket exists.
//! - [`spool`]: every event on disk before `emit` returns, replayed at the next start.
//! - [`writer`]: the background thread that flushes coalesced events to both in batches.

pub mod coalesce;
pub mod journal;
pub mod spool;
pub mod sqlite;
pub mod writer;

pub use sqlite::{EventDb, EventFilter, StoreError, StoredEvent};
pub use writer::EventLog;
