//! What `imageguard status` reports.

use std::path::PathBuf;

use imageguard_policy::{CertifiedEntry, ClosureChange};
use imageguard_volume::BackingMode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeReport {
    pub mount_point: PathBuf,
    pub device: String,
    pub device_number: String,
    pub fstype: String,
    pub uuid: Option<String>,
    /// "local" or "network".
    pub location: String,
    pub mode: BackingMode,
    /// How strong the protection is, in words.
    pub protection: String,
    pub files_protected: u64,
    pub denied: u64,
    pub allowed_certified: u64,
    /// The longest retention lock on it, in days (0: none), and how many files it holds now.
    #[serde(default)]
    pub lock_days: u32,
    #[serde(default)]
    pub locked_files: usize,
    /// Protection is off here (`imageguard off`, `unprotect`) but a retention lock is in
    /// force: the guard stays, only the lock and key material refusing.
    #[serde(default)]
    pub lock_only: bool,
    /// Minutes left in a maintenance window for key material, when one is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_window_minutes_left: Option<u64>,
    /// Operations of sync tools the sync rules allowed.
    #[serde(default)]
    pub allowed_sync: u64,
    pub passthrough: bool,
    pub guard_running: bool,
    pub also_mounted_at: Vec<PathBuf>,
    pub writers_at_protect: bool,
    /// Why it is protected when the user did not ask (automatic protection of a backup drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the kernel shield covers of it, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_shield: Option<String>,
}

/// A protected drive that is not here now (pulled out without eject, not plugged in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbsentReport {
    pub mount_point: PathBuf,
    pub uuid: Option<String>,
    pub device: String,
    /// Since when (seconds since the epoch).
    pub since: i64,
    /// How it went.
    pub why: String,
    /// Why it was protected, when the service did it on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// "on" or "off".
    pub protection: String,
    pub restart_on_reboot: bool,
    pub pid: u32,
    pub volumes: Vec<VolumeReport>,
    /// Protected drives that are not here now: protected again when they are mounted.
    #[serde(default)]
    pub absent: Vec<AbsentReport>,
    pub certified_programs: usize,
    /// Sync tools on the list (not certified) and whether the setting allows them.
    #[serde(default)]
    pub sync_tools: usize,
    #[serde(default)]
    pub sync_tools_allowed: bool,
    /// An admin lock is set (protecting commands need its passphrase).
    #[serde(default)]
    pub admin_lock: bool,
    /// The setting "automatically protect local backup drives", as the service runs it.
    #[serde(default)]
    pub auto_protect_backup_drives: bool,
    /// Certified programs whose closure changed since certification (no longer certified).
    #[serde(default)]
    pub certified_broken: usize,
    /// What weakens the protection on this machine, in words, with what to do about it.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The retention locks in force.
    #[serde(default)]
    pub retention_locks: Vec<LockReport>,
    /// (event id, total occurrences).
    pub event_counts: Vec<(u32, u64)>,
    /// The kernel shield, in words: on, off, or unavailable and why.
    #[serde(default)]
    pub kernel_shield: String,
    #[serde(default)]
    pub kernel_shield_on: bool,
}

/// A retention lock in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockReport {
    pub folder: PathBuf,
    pub days: u32,
    /// For a lock shortened or removed in the configuration: until when it stays in force
    /// (local time, as things stand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A certified program and whether it is still certified now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertifiedProgram {
    #[serde(flatten)]
    pub entry: CertifiedEntry,
    /// True while its closure is as recorded.
    pub intact: bool,
    /// What changed in its closure since certification (why it is no longer certified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ClosureChange>,
}
