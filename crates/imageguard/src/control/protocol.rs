//! Requests and responses of the control socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::service::report::{CertifiedProgram, StatusReport};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Protect {
        path: PathBuf,
    },
    Unprotect {
        path: PathBuf,
    },
    /// Let a protected drive go so that it can be unplugged (nothing stays mounted).
    Eject {
        path: PathBuf,
    },
    /// Open (minutes > 0) or close (0) a maintenance window for key material on the protected
    /// volume holding `path`.
    Maintenance {
        path: PathBuf,
        minutes: u32,
    },
    Certify {
        path: PathBuf,
        force: bool,
        /// Files to add to the program's closure by hand.
        #[serde(default)]
        also: Vec<PathBuf>,
        /// Files `certify --learn` saw the program map executable.
        #[serde(default)]
        learned: Vec<PathBuf>,
        /// Home folders of the users who run it (root's when empty).
        #[serde(default)]
        homes: Vec<PathBuf>,
        /// The `--learn` job started with [`Request::Learn`]: what its processes mapped is
        /// added too, and learning ends.
        #[serde(default)]
        learn_job: Option<u32>,
        /// Certify it as a helper of this certified program only.
        #[serde(default)]
        helper_of: Option<PathBuf>,
        /// Add it as a sync tool with this dialect (not certified).
        #[serde(default)]
        sync_tool: Option<imageguard_policy::sync_tools::Dialect>,
    },
    /// `certify --learn`: the program's job `job` (stopped until this is answered) is about to
    /// run; record rather than refuse what its processes map outside the closure. The program
    /// is certified first if it is not yet.
    Learn {
        path: PathBuf,
        job: u32,
        force: bool,
        #[serde(default)]
        homes: Vec<PathBuf>,
    },
    Uncertify {
        path: PathBuf,
    },
    Certified,
    /// Metrics in Prometheus' text format.
    Metrics,
    /// The newest `limit` events (for the console: a non-root user may read them).
    Events {
        limit: u64,
    },
    /// `request`, with the admin lock's passphrase.
    Authorized {
        passphrase: String,
        request: Box<Request>,
    },
    /// Set the admin lock (a new passphrase); with a lock set already, authorized by it.
    LockSet {
        passphrase: String,
    },
    /// Remove the admin lock (authorized by it).
    LockClear,
    /// Send a test mail with the `[email]` settings (`imageguard settings email test`).
    EmailTest,
    /// Set one of the settings (`imageguard settings KEY VALUE`): written to the configuration
    /// file, applied at once where the service can.
    SetSetting {
        key: String,
        value: String,
    },
    /// `imageguard verify`: the service's own part of the check on the protected volume at
    /// `mount_point` (see `service::verify`).
    VerifyFile {
        mount_point: PathBuf,
        step: VerifyStep,
    },
    /// `imageguard definitions approve|revoke FILE [--name NAME]`: approve the definitions read
    /// from `file` as they are now (only approved definitions let a sync tool delete or add),
    /// or withdraw their approval.
    ApproveDefinitions {
        file: PathBuf,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        revoke: bool,
    },
    /// Stop the service, giving back every volume but those a retention lock is in force on.
    /// With the admin lock set, this (with its passphrase) is the only stop that gives volumes
    /// back: a plain SIGTERM leaves them closed.
    Stop,
    /// Turn protection off; with `restart_on_reboot` it comes back at the next boot.
    Off {
        restart_on_reboot: bool,
    },
    On,
}

impl Request {
    /// How long a client waits for the answer: certifying a program hashes every file of its
    /// closure (an interpreter's modules too), which a slow disk or an emulated machine takes
    /// minutes for; anything else answers within seconds, and a service that does not within
    /// five minutes is taken as hung.
    pub fn answer_timeout(&self) -> std::time::Duration {
        match self {
            Request::Certify { .. } | Request::Learn { .. } => std::time::Duration::from_secs(1800),
            Request::Authorized { request, .. } => request.answer_timeout(),
            _ => std::time::Duration::from_secs(300),
        }
    }
}

/// The service's steps of `imageguard verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyStep {
    /// Write the verification file through the guard; the answer's message is its content.
    Write,
    /// Remove it again.
    Remove,
    /// Is the 310 for the verifying child `pid` recorded? (500 logged when it is not.)
    Recorded { pid: u32 },
}

impl Request {
    /// Requests that can weaken protection: they need the admin lock's passphrase when one is
    /// set.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Request::Off { .. }
                | Request::Stop
                | Request::ApproveDefinitions { .. }
                | Request::Unprotect { .. }
                | Request::Eject { .. }
                | Request::Maintenance { .. }
                | Request::Certify { .. }
                | Request::Learn { .. }
                | Request::Uncertify { .. }
                | Request::SetSetting { .. }
                | Request::LockSet { .. }
                | Request::LockClear
        )
    }

    /// What the request is, for the log (never its passphrase).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Protect { .. } => "protect",
            Request::Unprotect { .. } => "unprotect",
            Request::Eject { .. } => "eject",
            Request::Maintenance { .. } => "maintenance",
            Request::Certify { .. } => "certify",
            Request::Learn { .. } => "certify --learn",
            Request::Uncertify { .. } => "uncertify",
            Request::Certified => "certified",
            Request::Metrics => "metrics",
            Request::Events { .. } => "events",
            Request::Authorized { .. } => "authorized",
            Request::LockSet { .. } => "lock set",
            Request::LockClear => "lock clear",
            Request::EmailTest => "settings email test",
            Request::VerifyFile { .. } => "verify",
            Request::SetSetting { .. } => "settings",
            Request::Off { .. } => "off",
            Request::Stop => "stop",
            Request::ApproveDefinitions { revoke: false, .. } => "definitions approve",
            Request::ApproveDefinitions { revoke: true, .. } => "definitions revoke",
            Request::On => "on",
        }
    }

    /// Requests that change something: root only.
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            Request::Status | Request::Certified | Request::Metrics | Request::Events { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Ok {
        message: String,
        warnings: Vec<String>,
    },
    Status(Box<StatusReport>),
    Certified {
        programs: Vec<CertifiedProgram>,
    },
    Metrics {
        text: String,
    },
    Events {
        events: Vec<imageguard_eventstore::StoredEvent>,
    },
    Error {
        message: String,
        code: i32,
    },
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response::Ok {
            message: message.into(),
            warnings: vec![],
        }
    }

    pub fn error(message: impl Into<String>, code: i32) -> Response {
        Response::Error {
            message: message.into(),
            code,
        }
    }
}
