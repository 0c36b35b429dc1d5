//! The policy compiled for enforcement points that cannot call it (the kernel backend's
//! programs look verdicts and names up in maps): each table is made from the policy core's own
//! functions, and tests here prove it answers as they do.
//!
//! - [`verdicts`]: [`crate::decide`] as one verdict per case.
//! - [`names`]: the configured name patterns as literal pieces a bounded matcher compares, or
//!   the pattern that cannot be put so.
//! - [`environment`]: the start-up variables that end a program's certification, as names
//!   and prefixes a bounded matcher compares.

pub mod environment;
pub mod names;
pub mod verdicts;

pub use names::{NamePattern, NamePatterns, Uncompiled};
pub use verdicts::{Case, ClassCode, LockCode, VerdictCode, VerdictTable, CASES};
