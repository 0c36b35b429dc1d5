//! What `imageguard status` reports.

use std::path::PathBuf;

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
    pub passthrough: bool,
    pub guard_running: bool,
    pub also_mounted_at: Vec<PathBuf>,
    pub writers_at_protect: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// "on" or "off".
    pub protection: String,
    pub restart_on_reboot: bool,
    pub pid: u32,
    pub volumes: Vec<VolumeReport>,
    pub certified_programs: usize,
    /// (event id, total occurrences).
    pub event_counts: Vec<(u32, u64)>,
}
