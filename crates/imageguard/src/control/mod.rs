//! The control socket: a Unix stream socket speaking one JSON request and one JSON response per
//! line. The server checks the peer's credentials (SO_PEERCRED): anyone may read, only root may
//! change anything.

pub mod client;
pub mod protocol;
pub mod server;
