//! Who is asking: the identity of the process behind a file-system request, and the store of
//! certified programs.
//!
//! - [`procfs`]: facts read from `/proc/PID` (executable identity, command line, tracer,
//!   environment).
//! - [`hashing`]: SHA-256 of executables.
//! - [`certify`]: turning a path into a certified-list entry (refusing shells and interpreters).
//! - [`store`]: the certified list on disk.
//! - [`resolver`]: pid → [`imageguard_policy::CallerFacts`], with caches so the hot path costs one
//!   `stat` for uncertified callers.

pub mod certify;
pub mod hashing;
pub mod procfs;
pub mod resolver;
pub mod store;

pub use certify::{certify_path, CertifyError};
pub use resolver::CallerResolver;
pub use store::{CertifiedStore, StoreError};
