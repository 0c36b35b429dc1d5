//! Who is asking: the identity of the process behind a file-system request, and the store of
//! certified programs.
//!
//! - [`procfs`]: facts read from `/proc/PID` (executable identity, command line, tracer,
//!   environment, executable mappings).
//! - [`elf`]: whether a program is dynamically linked, and by which loader.
//! - [`closure`]: recording everything a certified program can load code from, and comparing
//!   it with the disk again.
//! - [`mapping_id`]: the identity `/proc/PID/maps` gives a mapped file (on overlayfs, the
//!   layer's file, not the one `stat` names).
//! - [`tamper`]: what can reach into a running certified process unseen (`/proc/PID/mem`).
//! - [`watch`]: following every certified program's closure for changes.
//! - [`hashing`]: SHA-256 of executables.
//! - [`certify`]: turning a path into a certified-list entry (refusing shells and interpreters).
//! - [`store`]: the certified list on disk.
//! - [`resolver`]: pid → [`imageguard_policy::CallerFacts`], with caches so the hot path costs one
//!   `stat` for uncertified callers.

pub mod certify;
pub mod closure;
pub mod elf;
pub mod hashing;
pub mod mapping_id;
pub mod procfs;
pub mod resolver;
pub mod store;
pub mod tamper;
pub mod watch;

pub use certify::{certify_path, check_sync_tool, CertifyError};
pub use closure::ClosureOptions;
pub use resolver::CallerResolver;
pub use store::{CertifiedStore, StoreError};
pub use watch::ClosureWatch;
