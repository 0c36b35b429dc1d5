//! The `[email]` table of the configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on this machine only).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub server: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub security: Security,
    /// SMTP authentication (empty: none).
    #[serde(default)]
    pub username: String,
    /// A file holding the SMTP password (root-only; never the password itself here).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: Vec<String>,
    /// The event ids mailed about.
    #[serde(default = "default_events")]
    pub events: Vec<u32>,
    /// Seconds: at most one mail per interval.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// A PEM file of CA certificates to trust besides the built-in roots (a private server).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds one conversation with the server may take (a hanging server only delays mail).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_timeout() -> u64 {
    20
}

fn default_port() -> u16 {
    587
}

/// Every refusal and every error.
fn default_events() -> Vec<u32> {
    vec![320, 500, 510, 520]
}

fn default_interval() -> u64 {
    300
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            enabled: false,
            server: String::new(),
            port: default_port(),
            security: Security::default(),
            username: String::new(),
            password_file: None,
            from: String::new(),
            to: vec![],
            events: default_events(),
            interval: default_interval(),
            ca_file: None,
            timeout: default_timeout(),
        }
    }
}

impl EmailSettings {
    /// What is missing for mail to go out, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.server.is_empty() {
            return Some("[email] server is not set".into());
        }
        if self.from.is_empty() {
            return Some("[email] from is not set".into());
        }
        if self.to.is_empty() {
            return Some("[email] to names no recipient".into());
        }
        if self.interval == 0 {
            return Some("[email] interval must be at least 1 second".into());
        }
        None
    }
}
