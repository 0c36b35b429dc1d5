//! The kernel backend's maps (`src/bpf/decide.bpf.h`): which file systems the kernel decides
//! the policy on, with their circumstances; the class the policy core gave each backup entry
//! there; and the policy core's compiled decision, one verdict per case, which the programs
//! look up (no rule is written in the kernel: `imageguard_policy::compiled::VerdictTable` is
//! `decide` for every case).

use aya::maps::{Array, HashMap, Map, MapData};
use imageguard_policy::compiled::{ClassCode, VerdictTable, CASES};

use crate::bindings::{
    shield_inode, shield_mark, shield_volume, SHIELD_MAX_MARKS, SHIELD_MAX_VOLUMES,
    SHIELD_VOLUME_KEY_WINDOW, SHIELD_VOLUME_PROTECTION_OFF,
};
use crate::shield::{load_error, removed, ShieldError};

/// What the policy needs to know of a volume beside each entry's class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeCircumstances {
    /// Protection is off (the service's `off`, or the volume's).
    pub protection_off: bool,
    /// A key window is open: key material may be added.
    pub key_window_open: bool,
}

/// The maps, as the service keeps them.
pub struct PolicyMaps {
    volumes: HashMap<MapData, u32, shield_volume>,
    marks: HashMap<MapData, shield_inode, shield_mark>,
    verdicts: Array<MapData, u8>,
}

impl PolicyMaps {
    pub(crate) fn from_maps(
        volumes: Option<Map>,
        marks: Option<Map>,
        verdicts: Option<Map>,
    ) -> Result<PolicyMaps, ShieldError> {
        Ok(PolicyMaps {
            volumes: HashMap::try_from(volumes.ok_or(ShieldError::MissingMap("kernel_volume"))?)
                .map_err(load_error)?,
            marks: HashMap::try_from(marks.ok_or(ShieldError::MissingMap("backup_mark"))?)
                .map_err(load_error)?,
            verdicts: Array::try_from(verdicts.ok_or(ShieldError::MissingMap("verdicts"))?)
                .map_err(load_error)?,
        })
    }

    /// Write the policy core's compiled decision (the same for every volume).
    pub(crate) fn set_verdicts(&mut self, table: &VerdictTable) -> Result<(), ShieldError> {
        let bytes = table.bytes();
        if bytes.len() != CASES || self.verdicts.len() as usize != CASES {
            return Err(ShieldError::Load(format!(
                "the verdict table has {} cases, the programs' {} (built from another policy core)",
                bytes.len(),
                self.verdicts.len()
            )));
        }
        for (i, v) in bytes.into_iter().enumerate() {
            self.verdicts.set(i as u32, v, 0).map_err(load_error)?;
        }
        Ok(())
    }

    /// Decide the policy in the kernel on the file system whose superblock device is `dev`,
    /// in circumstances `now` (called again when they change).
    pub fn decide_volume(&mut self, dev: u32, now: VolumeCircumstances) -> Result<(), ShieldError> {
        let mut flags = 0;
        if now.protection_off {
            flags |= SHIELD_VOLUME_PROTECTION_OFF;
        }
        if now.key_window_open {
            flags |= SHIELD_VOLUME_KEY_WINDOW;
        }
        self.volumes
            .insert(dev, shield_volume { flags }, 0)
            .map_err(|e| {
                ShieldError::Load(format!(
                    "volumes the kernel decides (room for {SHIELD_MAX_VOLUMES}): {e}"
                ))
            })
    }

    /// No longer decide the policy on `dev` (its marks stay until [`PolicyMaps::unmark`]).
    pub fn release_volume(&mut self, dev: u32) -> Result<(), ShieldError> {
        removed(self.volumes.remove(&dev))
    }

    /// The entry (`dev`, `ino`) is of class `class` (a backup, or what holds backups).
    pub fn mark(&mut self, dev: u32, ino: u64, class: ClassCode) -> Result<(), ShieldError> {
        let key = shield_inode { dev, _pad: 0, ino };
        self.marks
            .insert(
                key,
                shield_mark {
                    class: class as u32,
                },
                0,
            )
            .map_err(|e| {
                ShieldError::Load(format!("backup marks (room for {SHIELD_MAX_MARKS}): {e}"))
            })
    }

    /// The entry (`dev`, `ino`) is ordinary again, or gone.
    pub fn unmark(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        removed(self.marks.remove(&shield_inode { dev, _pad: 0, ino }))
    }
}
