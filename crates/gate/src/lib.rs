//! The decision point every enforcement point calls (the FUSE guard today, the kernel
//! backend's user-space half next): one place where an operation on a protected volume is
//! put to the policy core, so that no rule exists twice.
//!
//! - [`gate`]: the call into the pure policy with the caller's facts (its ports:
//!   [`CallerSource`], [`EventSink`], [`SyncPlaces`], [`Retention`]) and the refusal's event.
//! - [`meaning`]: what a request means for the policy from the facts an enforcement point
//!   has (who made the entry in this session, its folder): the makers' adjustments.
//! - [`fresh`]: entries created in this session, and by whom.
//! - [`latency`]: how long the gate's decisions take (exported as metrics).
//! - [`walk`]: zone-aware walks of a volume's tree (the protect-time scan, "does this folder
//!   hold backups").
//! - [`borg_log`]: whether a borg segment holds committed data (the retention lock's rollback
//!   rule), read through a folder descriptor whichever backend holds it.

pub mod borg_log;
pub mod fresh;
pub mod gate;
pub mod latency;
pub mod meaning;
pub mod walk;

pub use gate::{CallerSource, EventSink, Gate, GateCounters, Retention, SyncPlaces};
