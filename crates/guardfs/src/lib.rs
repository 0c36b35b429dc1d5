//! The guard filesystem of imageguard.
//!
//! A FUSE passthrough mounted over a protected mount point. It serves every request relative to a
//! descriptor of the backing tree opened before the mount, hands data I/O of opened files to the
//! kernel (FUSE passthrough), and asks the policy gate before anything that could modify an
//! existing backup: opening for write, truncation, attribute and xattr changes, deletion,
//! renames, hard links, fallocate and copies into a file.
//!
//! Layout follows virtiofsd's passthrough: one file per concern.
//! - [`sys`]: `*at` system call wrappers.
//! - [`inode_store`]: node ids ↔ backing `O_PATH` descriptors.
//! - [`handles`]: open file and directory handles.
//! - [`credentials`]: creating files as the caller.
//! - [`walk`]: zone-aware tree walks (protect-time scan, "does this directory hold backups").
//! - [`gate`]: the call into the pure policy and event reporting.
//! - [`latency`]: how long the gate's decisions take (exported as metrics).
//! - [`fresh`]: entries created in this session, and by whom.
//! - [`borg_log`]: whether a borg segment holds committed data (the retention lock's rollback
//!   rule).
//! - [`filesystem`]: the `fuser::Filesystem` implementation.
//! - [`mount`]: mounting and unmounting.

pub mod borg_log;
pub mod credentials;
pub mod file_handle;
pub mod filesystem;
pub mod fresh;
pub mod gate;
pub mod handles;
pub mod inode_store;
pub mod latency;
pub mod mount;
pub mod sys;
pub mod walk;

pub use filesystem::GuardShared;
pub use gate::{CallerSource, EventSink, Gate, Retention, SyncPlaces};
pub use mount::{mount_guard, GuardOptions, MountedGuard};
pub use walk::{scan, ScanResult};
