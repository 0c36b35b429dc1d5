//! The settings an admin changes day to day (`imageguard settings`, the TUI): which keys of the
//! configuration they are, how a value is read from the command line, and writing one back into
//! the configuration file with `toml_edit`, so that the admin's comments and layout stay. Every
//! edit is checked by loading the result as a configuration before it is written.

use anyhow::{bail, Context, Result};
use toml_edit::{value, Array, DocumentMut, Item, Table};

use crate::config::Config;

/// What a setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Text,
    /// A list of strings, given comma-separated.
    List,
}

/// One setting: its key in the configuration (`table.key`), what it holds, whether the running
/// service applies it at once, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    pub live: bool,
    pub help: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "protection.auto_protect_backup_drives",
        kind: Kind::Bool,
        live: true,
        help: "automatically protect local backup drives (the saved definitions' destinations)",
    },
    Setting {
        key: "sync_tools.allow",
        kind: Kind::Bool,
        live: true,
        help: "allow sync tools (rsync, rclone) by the sync rules",
    },
    Setting {
        key: "protection.patterns",
        kind: Kind::List,
        live: false,
        help: "backup file name patterns",
    },
    Setting {
        key: "protection.destinations",
        kind: Kind::List,
        live: false,
        help: "folders whose every file is a backup",
    },
    Setting {
        key: "guard.passthrough",
        kind: Kind::Bool,
        live: false,
        help: "hand data I/O to the kernel (FUSE passthrough) when it supports it",
    },
    Setting {
        key: "guard.threads",
        kind: Kind::Integer,
        live: false,
        help: "threads serving each guard (0: one per CPU, at least 2)",
    },
    Setting {
        key: "guard.stopped_timeout",
        kind: Kind::Integer,
        live: false,
        help: "seconds a stopped service is waited for before its guards' callers are released",
    },
    Setting {
        key: "email.enabled",
        kind: Kind::Bool,
        live: false,
        help: "email alerts",
    },
    Setting {
        key: "email.server",
        kind: Kind::Text,
        live: false,
        help: "the SMTP server",
    },
    Setting {
        key: "email.port",
        kind: Kind::Integer,
        live: false,
        help: "its port",
    },
    Setting {
        key: "email.security",
        kind: Kind::Text,
        live: false,
        help: "starttls, tls or none",
    },
    Setting {
        key: "email.username",
        kind: Kind::Text,
        live: false,
        help: "SMTP user (the password in email.password_file)",
    },
    Setting {
        key: "email.from",
        kind: Kind::Text,
        live: false,
        help: "sender address",
    },
    Setting {
        key: "email.to",
        kind: Kind::List,
        live: false,
        help: "recipients",
    },
    Setting {
        key: "email.interval",
        kind: Kind::Integer,
        live: false,
        help: "seconds: at most one mail per interval",
    },
    Setting {
        key: "metrics.listen",
        kind: Kind::Text,
        live: false,
        help: "where the metrics are served (127.0.0.1:PORT or unix:PATH; empty: not served)",
    },
];

/// The setting named `key`.
pub fn find(key: &str) -> Result<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| {
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        anyhow::anyhow!("no setting {key:?}; the settings are: {}", keys.join(", "))
    })
}

/// The value of `setting` in `config`, as the command line writes it.
pub fn show(config: &Config, setting: &Setting) -> String {
    let list = |v: &[String]| v.join(",");
    match setting.key {
        "protection.auto_protect_backup_drives" => {
            config.protection.auto_protect_backup_drives.to_string()
        }
        "sync_tools.allow" => config.sync_tools.allow.to_string(),
        "protection.patterns" => list(&config.protection.patterns),
        "protection.destinations" => config
            .protection
            .destinations
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        "guard.passthrough" => config.guard.passthrough.to_string(),
        "guard.threads" => config.guard.threads.to_string(),
        "guard.stopped_timeout" => config.guard.stopped_timeout.to_string(),
        "metrics.listen" => config.metrics.listen.clone(),
        "email.enabled" => config.email.enabled.to_string(),
        "email.server" => config.email.server.clone(),
        "email.port" => config.email.port.to_string(),
        "email.security" => serde_json::to_value(config.email.security)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        "email.username" => config.email.username.clone(),
        "email.from" => config.email.from.clone(),
        "email.to" => config.email.to.join(","),
        "email.interval" => config.email.interval.to_string(),
        _ => String::new(),
    }
}

/// `text` (a configuration file) with `setting` set to `raw`, comments and layout kept; the
/// result is checked as a configuration.
pub fn set(text: &str, setting: &Setting, raw: &str) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .context("the configuration file is not valid TOML")?;
    let item =
        match setting.kind {
            Kind::Bool => match raw {
                "true" | "on" | "yes" | "1" => value(true),
                "false" | "off" | "no" | "0" => value(false),
                other => bail!("{}: expected true or false, not {other:?}", setting.key),
            },
            Kind::Integer => value(raw.parse::<i64>().ok().filter(|n| *n >= 0).with_context(
                || format!("{}: expected a whole number, not {raw:?}", setting.key),
            )?),
            Kind::Text => value(raw),
            Kind::List => {
                let mut a = Array::new();
                for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    a.push(part);
                }
                value(a)
            }
        };
    let (table, key) = setting.key.split_once('.').expect("settings are table.key");
    let t = doc
        .entry(table)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .with_context(|| format!("[{table}] in the configuration is not a table"))?;
    // A value already there keeps its comments.
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            let mut new = item.into_value().expect("a value");
            *new.decor_mut() = decor;
            *old = new;
        }
        None => {
            t.insert(key, item);
        }
    }
    let out = doc.to_string();
    Config::from_text(&out, std::path::Path::new("(the edited configuration)"))?;
    Ok(out)
}

/// Write `text` to `path` atomically (a temporary file beside it, renamed over it).
pub fn write(path: &std::path::Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TOML;

    #[test]
    fn a_setting_is_written_back_with_the_admins_comments() {
        let text = format!("# my own note\n{DEFAULT_TOML}");
        let s = find("sync_tools.allow").unwrap();
        let out = set(&text, s, "on").unwrap();
        assert!(out.starts_with("# my own note\n"));
        assert!(out.contains("# Allow the sync tools added with"));
        assert!(out.contains("allow = true"));
        let c = Config::from_text(&out, std::path::Path::new("x")).unwrap();
        assert!(c.sync_tools.allow);
        assert_eq!(show(&c, s), "true");

        let p = find("protection.patterns").unwrap();
        let out = set(&out, p, "*.img, *.qcow2").unwrap();
        let c = Config::from_text(&out, std::path::Path::new("x")).unwrap();
        assert_eq!(c.protection.patterns, vec!["*.img", "*.qcow2"]);
        assert!(out.contains("# Backup files: names matching these patterns"));

        // A table the file does not have yet.
        let m = find("metrics.listen").unwrap();
        let out = set("", m, "127.0.0.1:9755").unwrap();
        assert!(out.contains("[metrics]"));
    }

    #[test]
    fn bad_values_are_refused_with_what_was_expected() {
        let b = find("guard.passthrough").unwrap();
        let e = set(DEFAULT_TOML, b, "maybe").unwrap_err().to_string();
        assert!(e.contains("expected true or false"), "{e}");
        let n = find("guard.threads").unwrap();
        let e = set(DEFAULT_TOML, n, "-3").unwrap_err().to_string();
        assert!(e.contains("expected a whole number"), "{e}");
        // A pattern the rules refuse.
        let p = find("protection.patterns").unwrap();
        assert!(set(DEFAULT_TOML, p, "[").is_err());
        assert!(find("nope")
            .unwrap_err()
            .to_string()
            .contains("sync_tools.allow"));
    }
}
