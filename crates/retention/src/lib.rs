//! The retention lock's adapters (the rule itself is `imageguard_policy::holds`):
//!
//! - [`clock`]: the service's own notion of elapsed time. It counts only time the kernel's
//!   boot clock counts (never the wall clock, which root sets at will), is kept across
//!   restarts, and notices every setting of the wall clock so it can be logged.
//! - [`ages`]: when the guard first saw each backup file of a volume, on that clock, keyed by
//!   the file's kernel handle (its inode *and* generation: a number reused by a new file is
//!   another key), kept in the service's state.

pub mod ages;
pub mod clock;

pub use ages::AgeStore;
pub use clock::ServiceClock;
