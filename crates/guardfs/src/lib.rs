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
//! - the decision point it asks (the policy, the caller's facts, the refusal's event) is the
//!   backend-neutral [`imageguard_gate`], re-exported here.
//! - [`filesystem`]: the `fuser::Filesystem` implementation.
//! - [`mount`]: mounting and unmounting.

pub mod credentials;
pub mod file_handle;
pub mod filesystem;
pub mod handles;
pub mod inode_store;
pub mod mount;
pub mod sys;

pub use filesystem::GuardShared;
pub use imageguard_gate::{fresh, gate, latency, walk};
pub use imageguard_gate::{CallerSource, EventSink, Gate, Retention, SyncPlaces};
pub use mount::{mount_guard, GuardOptions, MountedGuard};
pub use walk::{scan, ScanResult};
