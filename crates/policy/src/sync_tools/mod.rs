//! Sync tools (issue 9): how their command lines are read. Each dialect is a module of its own;
//! the rules that use them (move, purge, mirror, overwrite, network shares) come with them.
//!
//! - [`rsync`]: rsync's options as rsync reads them.

pub mod rsync;
