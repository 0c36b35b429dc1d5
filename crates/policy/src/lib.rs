//! The pure policy core of imageguard.
//!
//! Everything here is a function of its inputs: no file system, no /proc, no clock. Adapters
//! (the FUSE guard, the /proc reader, the event store) gather facts, hand them to this crate and
//! carry out what it decides. That keeps every rule testable to exhaustion.
//!
//! - [`classify`]: which files and directories are backups (patterns, repository layouts,
//!   backup destinations).
//! - [`operation`]: the operations a caller can attempt on a protected volume.
//! - [`caller`]: what is known about the process that asks.
//! - [`certification`]: the certified-program list and how an executable matches it.
//! - [`closure`]: what a certified program is made of (libraries, modules, start-up hooks) and
//!   the judgements over it.
//! - [`environment`]: which start-up variables can change the code a certified program runs.
//! - [`decide`]: allow or deny, and the event a denial logs.
//! - [`compiled`]: the decision as a table, for enforcement points that look verdicts up (the
//!   kernel backend's programs).
//! - [`definitions`]: is a folder a backup destination, or a source, of a saved definition?
//! - [`helpers`]: which helper processes of a certified program count as certified.
//! - [`holds`]: what holds a backup even against a certified program (key material, the
//!   retention lock).
//! - [`borg_log`]: which of a borg repository's segments hold committed data.
//! - [`lock_changes`]: shortening or removing a retention lock waits for its period.
//! - [`sync_tools`]: sync tools' command lines (rsync, rclone, robocopy) and the reference's
//!   rules for them (move, purge/mirror, overwrite, network shares).
//! - [`event`]: the event catalogue (IDs, severities, texts).

pub mod borg_log;
pub mod caller;
pub mod certification;
pub mod classify;
pub mod closure;
pub mod compiled;
pub mod decide;
pub mod definitions;
pub mod environment;
pub mod event;
pub mod helpers;
pub mod holds;
pub mod lock_changes;
pub mod operation;
pub mod sync_tools;

pub use caller::{CallerFacts, SyncCaller, Untrusted};
pub use certification::{CertifiedEntry, CertifiedList, FileIdentity, Interpreter};
pub use classify::{BackupReason, Class, EntryKind, RepoKind, Rules, RulesError, Zone};
pub use closure::{
    ChangeKind, Closure, ClosureChange, ClosureDir, ClosureFile, Entries, Role, Runtime,
};
pub use decide::{decide, Verdict};
pub use event::{Event, EventKind, ProcessRef, Severity, VolumeRef};
pub use operation::Operation;
