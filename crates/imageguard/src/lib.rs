//! imageguard: the service, the control socket and the command line around the policy core and
//! the guard filesystem. `main.rs` only parses arguments and dispatches to [`cli`].

pub mod admin_lock;
pub mod approvals;
pub mod backup_drives;
pub mod cli;
pub mod config;
pub mod control;
pub mod kernel_features;
pub mod paths;
pub mod sandbox;
pub mod service;
pub mod settings;
pub mod state;
pub mod timefmt;
pub mod tui;
pub mod vm;
