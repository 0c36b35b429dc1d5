//! Volumes: which mount a path is on, what device and file system it is, and how the guard takes
//! a protected volume's backing out of everyone else's reach.
//!
//! - [`mountinfo`]: `/proc/self/mountinfo` parsing and lookups.
//! - [`fsid`]: file-system UUIDs read from the device, local vs network.
//! - [`fs_kind`]: overlayfs and btrfs, whose identities differ from what `stat` says, and the
//!   file systems (tmpfs, an overlay on one) whose times miss writes through shared mappings.
//! - [`mountapi`]: `open_tree`, `move_mount`, `mount_setattr` and friends.
//! - [`keeper`]: the service's private mount namespace, pinned under the runtime directory, that
//!   holds the backing mounts of protected volumes across service restarts.
//! - [`backing`]: acquiring, hiding and restoring one volume's backing.
//! - [`layers`]: the devices and image files beneath a volume's block device (sysfs).
//! - [`presence`]: whether a protected volume's device is still there (a drive pulled out).

pub mod backing;
pub mod fs_kind;
pub mod fsid;
pub mod keeper;
pub mod layers;
pub mod mountapi;
pub mod mountinfo;
pub mod presence;

pub use backing::{Backing, BackingMode, VolumeError};
pub use mountinfo::{MountEntry, MountTable};
