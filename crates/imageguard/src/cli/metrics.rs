//! `imageguard metrics`: the service's metrics in Prometheus' text format on stdout (what
//! `[metrics] listen` serves), for a textfile collector or a look by hand.

use super::{client_error, exit, fail};
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

pub fn metrics(paths: &PathArgs) -> i32 {
    match request(&paths.socket(), &Request::Metrics) {
        Ok(Response::Metrics { text }) => {
            print!("{text}");
            exit::OK
        }
        Ok(Response::Error { message, code }) => fail(&message, code),
        Ok(other) => fail(&format!("unexpected answer: {other:?}"), 1),
        Err(e) => client_error(e),
    }
}
