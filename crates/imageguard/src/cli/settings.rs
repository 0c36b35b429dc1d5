//! `imageguard settings [KEY [VALUE]] [--json]`: show the settings, one of them, or set one.
//! Setting goes through the running service (which writes the configuration file, comments
//! kept, and applies what it can at once); without a service the file is edited directly and
//! read at the next start.

use serde::Serialize;

use super::{client_error, exit, fail};
use crate::config::{Config, DEFAULT_TOML};
use crate::control::client::{request_admin, ClientError};
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;
use crate::settings::{self, SETTINGS};

#[derive(Serialize)]
struct Shown {
    key: &'static str,
    value: String,
    live: bool,
    help: &'static str,
}

pub fn settings(paths: &PathArgs, key: Option<&str>, value: Option<&str>, json: bool) -> i32 {
    let config = match Config::load(&paths.config) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{e:#}"), 1),
    };
    match (key, value) {
        (None, _) => {
            let all: Vec<Shown> = SETTINGS
                .iter()
                .map(|s| Shown {
                    key: s.key,
                    value: settings::show(&config, s),
                    live: s.live,
                    help: s.help,
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                for s in &all {
                    println!(
                        "{:<40} {:<24} {}{}",
                        s.key,
                        s.value,
                        s.help,
                        if s.live { "" } else { " (at the next start)" }
                    );
                }
            }
            exit::OK
        }
        (Some(k), None) => match settings::find(k) {
            Ok(s) => {
                let v = settings::show(&config, s);
                if json {
                    println!("{}", serde_json::json!({ "key": s.key, "value": v }));
                } else {
                    println!("{v}");
                }
                exit::OK
            }
            Err(e) => fail(&format!("{e:#}"), libc::EINVAL),
        },
        (Some("email"), Some("test")) => match request_admin(paths, Request::EmailTest) {
            Ok(Response::Ok { message, .. }) => {
                println!("{message}");
                exit::OK
            }
            Ok(Response::Error { message, code }) => fail(&message, code),
            Ok(other) => fail(&format!("unexpected answer: {other:?}"), 1),
            Err(e) => client_error(e),
        },
        (Some(k), Some(v)) => {
            let req = Request::SetSetting {
                key: k.to_string(),
                value: v.to_string(),
            };
            match request_admin(paths, req) {
                Ok(Response::Ok { message, .. }) => {
                    println!("{message}");
                    exit::OK
                }
                Ok(Response::Error { message, code }) => fail(&message, code),
                Ok(other) => fail(&format!("unexpected answer: {other:?}"), 1),
                Err(ClientError::NotRunning(_)) => edit_file(paths, k, v),
                Err(e) => client_error(e),
            }
        }
    }
}

/// Without a service: edit the configuration file itself.
fn edit_file(paths: &PathArgs, key: &str, raw: &str) -> i32 {
    let r = (|| -> anyhow::Result<String> {
        let lock = crate::admin_lock::offline(&paths.state_dir, paths.passphrase_file.as_deref())?;
        let s = settings::find(key)?;
        let text = match std::fs::read_to_string(&paths.config) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_TOML.to_string(),
            Err(e) => return Err(e.into()),
        };
        let new = settings::set(&text, s, raw)?;
        settings::write(&paths.config, &new)?;
        if let Some(l) = lock {
            l.seal(&paths.config)?;
        }
        let c = Config::from_text(&new, &paths.config)?;
        Ok(format!(
            "{key} = {} (the service is not running: read at its start)",
            settings::show(&c, s)
        ))
    })();
    match r {
        Ok(m) => {
            println!("{m}");
            exit::OK
        }
        Err(e) => fail(&format!("{e:#}"), libc::EINVAL),
    }
}
