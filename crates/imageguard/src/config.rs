//! The configuration file (`/etc/imageguard/imageguard.toml`). A missing file means defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use imageguard_policy::classify::DEFAULT_PATTERNS;
use imageguard_policy::Rules;
use serde::{Deserialize, Serialize};

/// An annotated default configuration (`imageguard config --default` prints it).
pub const DEFAULT_TOML: &str = r#"# imageguard configuration

[protection]
# Backup files: names matching these patterns (case-insensitive; a pattern with a "/" matches the
# path relative to the volume root).
patterns = ["*.mrimg", "*.mrbak", "*.mrex", "*.mrsql", "*.mrimgx", "*.mrbakx", "*.tar*", "*.img", "*.qcow2"]
# Every file at or under these folders is a backup file.
destinations = []
# Recognise restic and borg repositories and protect everything in them but their lock files.
restic_repositories = true
borg_repositories = true
# Automatically protect local backup drives: at every start, the local drives (or, on a system
# volume, the folders) that saved backup definitions back up to (see `imageguard definitions`)
# are protected, even one turned off by hand before. Network file systems never are.
auto_protect_backup_drives = true

[guard]
# Threads serving file-system requests per protected volume; 0 = one per CPU, at least 2.
threads = 0
# Hand data I/O of opened files to the kernel (FUSE passthrough) when it supports it.
passthrough = true
# When the service is stopped (SIGSTOP, a debugger) this many seconds, its sentinel aborts the
# guards' connections: waiting callers get ENOTCONN instead of hanging, nothing gets through,
# and the guards are mounted again when the service runs. 0 = let callers wait indefinitely.
stopped_timeout = 10
# The kernel shield (BPF LSM programs): on a protected volume, only the service may change
# files, whatever mount, namespace, descriptor or device leads there. "auto": on where the kernel
# has the bpf LSM and BTF (`imageguard doctor` says how to turn them on), the FUSE guard alone
# elsewhere; "required": the service does not start without it; "off".
kernel_shield = "auto"

# Where the saved definitions of backup programs are looked for (`imageguard definitions`).
# These are the programs' own locations; users' ~/.config/borgmatic and Back In Time files are
# found through the password database.
# [definitions]
# borgmatic = ["/etc/borgmatic/config.yaml", "/etc/borgmatic.d"]
# rsnapshot = ["/etc/rsnapshot.conf"]
# timeshift = ["/etc/timeshift/timeshift.json"]
# systemd_units = ["/etc/systemd/system", "/usr/lib/systemd/system"]
# passwd = "/etc/passwd"

[sync_tools]
# Allow the sync tools added with `imageguard certify --sync-tool DIALECT PROGRAM` (rsync,
# rclone, or a tool speaking robocopy's /MOV /MOVE /PURGE /MIR) to delete and overwrite backup
# files on protected volumes, only as the sync rules say (see docs/sync-tools.md): a move
# deletes in its source only if its target is protected; a purge or mirror deletes in its
# target only if its source is a backup destination and its target is not; an overwrite only
# outside backup destinations; never over the network.
allow = false

[metrics]
# Serve the metrics (Prometheus' text format, as `imageguard metrics` prints them) at
# "127.0.0.1:PORT" (loopback only: they name protected folders) or "unix:/run/imageguard/metrics.sock".
# Empty: not served.
listen = ""

[email]
# Email alerts (the events below, at most one mail per interval, a storm summarised with counts).
enabled = false
server = ""
# 587 with security = "starttls" (required), 465 with "tls", or a local relay with "none".
port = 587
security = "starttls"
# SMTP authentication: the user, and a root-only file holding the password.
username = ""
# password_file = "/etc/imageguard/smtp-password"
from = ""
to = []
# Event ids: every refusal (320) and every error (500, 510, 520).
events = [320, 500, 510, 520]
interval = 300
# Seconds one conversation with the server may take.
timeout = 20
# ca_file = "/etc/imageguard/mail-ca.pem"

[retention]
# The retention lock: a backup file younger than this many days (since the guard first saw it,
# on the service's own clock) may not be deleted, truncated, overwritten, renamed away or
# replaced by anyone, certified programs included; new files and appends stay allowed. By
# protected volume or destination folder (the longest lock covering a file applies):
# "/mnt/backup" = 14

# Backup jobs of scripts and tools imageguard does not read itself, one table each:
# [[definition]]
# name = "nightly images"
# program = "/usr/local/sbin/image-backup"
# destinations = ["/mnt/usb/images"]
# sources = ["/srv"]
"#;

/// `FILE:LINE: [table] key: what was wrong`, from a TOML or schema error.
fn describe_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return format!("{}: {message}", path.display());
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text[line_start..line_end].trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|t| format!("{t} "))
        .unwrap_or_default();
    let key = match line.split_once('=') {
        Some((k, _)) if !line.starts_with('[') => format!("{}: ", k.trim()),
        _ if line.starts_with('[') => format!("{line}: "),
        _ => String::new(),
    };
    let table = if line.starts_with('[') {
        String::new()
    } else {
        table
    };
    format!("{}:{line_no}: {table}{key}{message}", path.display())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub protection: Protection,
    #[serde(default)]
    pub guard: GuardSection,
    #[serde(default)]
    pub definitions: imageguard_definitions::discover::Locations,
    /// `[[definition]]` tables: backup jobs of scripts and tools no module reads.
    #[serde(default, rename = "definition")]
    pub own_definitions: Vec<imageguard_definitions::own::OwnDefinition>,
    /// `[helpers]`: program file name (or path) → the helper programs it runs, added to the
    /// known ones (`rsnapshot = ["du"]`).
    #[serde(default)]
    pub helpers: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub sync_tools: SyncToolsSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub email: imageguard_alerts::EmailSettings,
    /// `[retention]`: days by protected volume or destination folder.
    #[serde(default)]
    pub retention: std::collections::BTreeMap<PathBuf, u32>,
}

/// `[metrics]`: where the metrics are served.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `127.0.0.1:PORT`, `[::1]:PORT` or `unix:PATH`; empty for none.
    #[serde(default)]
    pub listen: String,
}

/// `[sync_tools]`: the reference's "Allow RoboCopy to sync and move backup files on protected
/// volumes", for the sync tools added with `imageguard certify --sync-tool DIALECT PROGRAM`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncToolsSection {
    /// Off by default: sync tools are then refused like any uncertified program.
    #[serde(default)]
    pub allow: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub destinations: Vec<PathBuf>,
    #[serde(default = "yes")]
    pub restic_repositories: bool,
    #[serde(default = "yes")]
    pub borg_repositories: bool,
    /// Protect the local drives that saved backup definitions back up to, at every start.
    #[serde(default = "yes")]
    pub auto_protect_backup_drives: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSection {
    #[serde(default = "default_threads")]
    pub threads: usize,
    #[serde(default = "yes")]
    pub passthrough: bool,
    /// Seconds the service may be stopped before its sentinel aborts the guards (0 = never).
    #[serde(default = "default_stopped_timeout")]
    pub stopped_timeout: u64,
    #[serde(default)]
    pub kernel_shield: KernelShieldMode,
}

/// Whether the service runs the kernel shield.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelShieldMode {
    /// Where the kernel can run it.
    #[default]
    Auto,
    /// Always: the service does not start without it.
    Required,
    Off,
}

fn default_patterns() -> Vec<String> {
    DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect()
}
fn yes() -> bool {
    true
}
fn default_stopped_timeout() -> u64 {
    10
}
fn default_threads() -> usize {
    0
}

impl GuardSection {
    /// Threads to serve one volume: the configured number, or one per CPU (at least 2, since a
    /// single thread also has to answer the kernel's asynchronous releases and forgets).
    pub fn serving_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 16))
    }
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            patterns: default_patterns(),
            destinations: vec![],
            restic_repositories: true,
            borg_repositories: true,
            auto_protect_backup_drives: true,
        }
    }
}

impl Default for GuardSection {
    fn default() -> Self {
        GuardSection {
            threads: default_threads(),
            passthrough: true,
            stopped_timeout: default_stopped_timeout(),
            kernel_shield: KernelShieldMode::Auto,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str(DEFAULT_TOML).expect("embedded default configuration parses")
    }
}

impl Config {
    /// Every saved backup definition: those of the programs found where `[definitions]` says,
    /// and this configuration's own `[[definition]]` tables (`config_file` is where they are).
    /// The configured helpers, for [`imageguard_policy::helpers::known_helpers`].
    pub fn extra_helpers(&self) -> Vec<(String, Vec<String>)> {
        self.helpers
            .iter()
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect()
    }

    pub fn saved_definitions(&self, config_file: &Path) -> imageguard_definitions::Parsed {
        let mut found = imageguard_definitions::discover::discover(&self.definitions);
        found.extend(imageguard_definitions::own::parse(
            config_file,
            &self.own_definitions,
        ));
        found
    }

    pub fn load(path: &Path) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_text(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The configuration in `text` (the file at `path`); an invalid one is one clear error:
    /// file, line, table and key, and what was expected there.
    pub fn from_text(text: &str, path: &Path) -> Result<Config> {
        let c: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!(describe_error(path, text, &e)))?;
        c.rules_for(Path::new("/"), &[])
            .with_context(|| format!("{}: [protection] patterns", path.display()))?;
        Ok(c)
    }

    /// Classification rules for the volume mounted at `mount_point`: the destinations inside it,
    /// made relative to it.
    /// The rules for the volume at `mount_point`: the configured patterns and destinations, and
    /// the backup destinations of saved definitions on it (`found`).
    pub fn rules_for(&self, mount_point: &Path, found: &[PathBuf]) -> Result<Rules> {
        let rel: Vec<Vec<u8>> = self
            .protection
            .destinations
            .iter()
            .chain(found)
            .filter_map(|d| d.strip_prefix(mount_point).ok())
            .map(|r| std::os::unix::ffi::OsStrExt::as_bytes(r.as_os_str()).to_vec())
            .map(|r| if r.is_empty() { b"/".to_vec() } else { r })
            .collect();
        Ok(Rules::new(
            &self.protection.patterns,
            &rel,
            self.protection.restic_repositories,
            self.protection.borg_repositories,
        )?)
    }
}

#[cfg(test)]
mod config_errors {
    use super::*;

    #[test]
    fn an_invalid_configuration_is_one_line_naming_file_line_key_and_expectation() {
        let p = Path::new("/etc/imageguard/imageguard.toml");
        let bad_type = DEFAULT_TOML.replace("allow = false", "allow = \"sometimes\"");
        let e = format!("{:#}", Config::from_text(&bad_type, p).unwrap_err());
        let line = bad_type
            .lines()
            .position(|l| l.starts_with("allow ="))
            .unwrap()
            + 1;
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with(&format!(
                "/etc/imageguard/imageguard.toml:{line}: [sync_tools] allow: "
            )),
            "{e}"
        );
        assert!(e.contains("expected a boolean"), "{e}");
        let unknown = DEFAULT_TOML.replace("threads = 0", "threads = 0\nthreadz = 2");
        let e = format!("{:#}", Config::from_text(&unknown, p).unwrap_err());
        assert!(
            e.contains("[guard] threadz: unknown field `threadz`"),
            "{e}"
        );
        let syntax = "[guard\nthreads = 1\n";
        let e = format!("{:#}", Config::from_text(syntax, p).unwrap_err());
        assert!(e.starts_with("/etc/imageguard/imageguard.toml:1:"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn default_is_the_embedded_file() {
        let c = Config::default();
        assert_eq!(c.protection.patterns.len(), DEFAULT_PATTERNS.len());
        assert!(c.guard.passthrough);
        assert_eq!(c.guard.kernel_shield, KernelShieldMode::Auto);
    }

    #[test]
    fn the_kernel_shield_is_auto_required_or_off() {
        for (text, mode) in [
            ("auto", KernelShieldMode::Auto),
            ("required", KernelShieldMode::Required),
            ("off", KernelShieldMode::Off),
        ] {
            let c: Config =
                toml::from_str(&format!("[guard]\nkernel_shield = \"{text}\"\n")).unwrap();
            assert_eq!(c.guard.kernel_shield, mode);
        }
        assert!(toml::from_str::<Config>("[guard]\nkernel_shield = \"maybe\"\n").is_err());
    }

    #[test]
    fn destinations_become_volume_relative() {
        let mut c = Config::default();
        c.protection.destinations = vec![
            "/mnt/b/nightly".into(),
            "/elsewhere/x".into(),
            "/mnt/c".into(),
        ];
        let r = c.rules_for(Path::new("/mnt/b"), &[]).unwrap();
        assert!(r.is_destination_path(&[b"nightly"]));
        assert!(!r.is_destination_path(&[b"x"]));
        let whole = c.rules_for(Path::new("/mnt/c"), &[]).unwrap();
        assert!(whole.is_destination_path(&[]));
        assert!(r.matching_pattern(OsStr::new("a.mrimg")).is_some());
    }

    #[test]
    fn unknown_keys_and_bad_patterns_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "[protection]\npaterns = []\n").unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::write(&p, "[protection]\npatterns = [\"[x\"]\n").unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(format!("{e:#}").contains("[x"), "{e:#}");
        assert!(Config::load(&d.path().join("missing.toml")).is_ok());
    }
}
