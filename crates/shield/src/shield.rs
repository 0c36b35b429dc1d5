//! Loading the shield's programs with aya, attaching them, pinning them so that they outlive the
//! service (fail closed), taking them over, and the maps the service keeps.

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, Map, MapData, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::Lsm;
use aya::{Btf, Ebpf};

use crate::bindings::{
    shield_code, shield_env_name, shield_home, shield_id, shield_inode, shield_kind, shield_name,
    shield_program, shield_service, SHIELD_ENV_NAME, SHIELD_ENV_NO_USER_SITE, SHIELD_HOME_LEN,
};
use crate::events::Refusals;
use crate::kernel::{active_lsms, bpf_lsm_active};
use crate::policy_maps::PolicyMaps;
use crate::task::Task;
use imageguard_policy::compiled::environment::CompiledEnvironment;

// SAFETY: plain C structures of integers (generated from shield.h), valid for any bits.
unsafe impl aya::Pod for shield_service {}
// SAFETY: as above.
unsafe impl aya::Pod for shield_inode {}
// SAFETY: as above.
unsafe impl aya::Pod for shield_id {}
// SAFETY: as above (integers and a byte array).
unsafe impl aya::Pod for shield_name {}
// SAFETY: as above (integers and byte arrays).
unsafe impl aya::Pod for shield_program {}
// SAFETY: as above.
unsafe impl aya::Pod for shield_code {}
// SAFETY: as above (an integer and a byte array).
unsafe impl aya::Pod for shield_home {}
// SAFETY: as above (a byte array).
unsafe impl aya::Pod for shield_env_name {}
// SAFETY: as above (one integer).
unsafe impl aya::Pod for crate::bindings::shield_volume {}
// SAFETY: as above (one integer).
unsafe impl aya::Pod for crate::bindings::shield_mark {}

/// A certified program as the programs judge its processes (struct shield_program): its number
/// in the closure files and certified homes, and its runtimes
/// (`compiled::environment::runtime_mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Program {
    pub id: u32,
    pub runtimes: u32,
}

/// The shield's object, as built by `build-bpf.sh`.
static OBJECT: &[u8] = aya::include_bytes_aligned!("bpf/shield.bpf.o");

/// Which build of the programs this is (FNV-1a of the object), recorded in the service map so
/// that a service of another build replaces pinned programs instead of taking them over (the
/// same pin names with other programs or maps behind them).
pub fn object_id() -> u64 {
    // Hashed once: every write of the service map carries it.
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        OBJECT.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Each program and the LSM hook it attaches to.
const PROGRAMS: &[(&str, &str)] = &[
    ("shield_file_open", "file_open"),
    ("shield_file_ioctl", "file_ioctl"),
    ("shield_inode_unlink", "inode_unlink"),
    ("shield_inode_rmdir", "inode_rmdir"),
    ("shield_inode_rename", "inode_rename"),
    ("shield_inode_link", "inode_link"),
    ("shield_inode_create", "inode_create"),
    ("shield_inode_mkdir", "inode_mkdir"),
    ("shield_inode_mknod", "inode_mknod"),
    ("shield_inode_symlink", "inode_symlink"),
    ("shield_inode_setxattr", "inode_setxattr"),
    ("shield_inode_removexattr", "inode_removexattr"),
    ("shield_inode_setattr", "inode_setattr"),
    ("shield_inode_setattr_idmap", "inode_setattr"),
    ("shield_path_truncate", "path_truncate"),
    ("shield_path_chmod", "path_chmod"),
    ("shield_path_chown", "path_chown"),
    ("shield_sb_kern_mount", "sb_kern_mount"),
    ("shield_sb_mount", "sb_mount"),
    ("shield_move_mount", "move_mount"),
    ("shield_sb_umount", "sb_umount"),
    ("shield_sb_pivotroot", "sb_pivotroot"),
    ("shield_ptrace_access_check", "ptrace_access_check"),
    ("shield_bprm_creds_for_exec", "bprm_creds_for_exec"),
    ("shield_bprm_check_security", "bprm_check_security"),
    ("shield_bprm_committed_creds", "bprm_committed_creds"),
    ("shield_task_kill", "task_kill"),
    ("shield_task_free", "task_free"),
    ("shield_mmap_file", "mmap_file"),
    ("shield_file_mprotect", "file_mprotect"),
    ("shield_ptrace_traceme", "ptrace_traceme"),
    ("shield_inode_permission", "inode_permission"),
    ("shield_bpf", "bpf"),
];

/// The programs this kernel runs: of those written for two forms of a hook, the one its BTF
/// declares (inode_setattr took the mount's idmap first from 6.8 on); a hook in neither form is
/// left out (the FUSE guard still decides what reaches it through the guard).
fn programs() -> Vec<(&'static str, &'static str)> {
    let setattr =
        crate::kernel_btf::hook_params(Path::new(crate::kernel_btf::VMLINUX_BTF), "inode_setattr")
            .ok()
            .flatten()
            .unwrap_or_default();
    let setattr = match setattr.iter().position(|p| p == "dentry") {
        Some(0) => Some("shield_inode_setattr"),
        Some(1) => Some("shield_inode_setattr_idmap"),
        _ => None,
    };
    PROGRAMS
        .iter()
        .copied()
        .filter(|(name, hook)| *hook != "inode_setattr" || Some(*name) == setattr)
        .collect()
}

/// Why the shield is not there.
#[derive(Debug, thiserror::Error)]
pub enum ShieldError {
    #[error("the bpf LSM is not active on this kernel (active: {0}); add bpf to the lsm= boot parameter")]
    LsmInactive(String),
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux): {0}")]
    NoBtf(String),
    #[error("loading the shield's programs: {0}")]
    Load(String),
    #[error("the shield's map {0} is missing from its object")]
    MissingMap(&'static str),
    #[error("the service's process: {0}")]
    Task(#[from] std::io::Error),
}

/// The shield, loaded and attached: it holds while this value lives, or, pinned, until
/// [`Shield::unpin`] (a service that dies leaves it refusing: fail closed).
pub struct Shield {
    /// The object, when this process loaded it, and its programs' links unless pinned (they
    /// detach when dropped).
    _ebpf: Option<Ebpf>,
    _links: Vec<aya::programs::lsm::LsmLink>,
    protected_sb: HashMap<MapData, u32, u8>,
    guard_sb: HashMap<MapData, u32, u8>,
    protected_dev: HashMap<MapData, u32, u8>,
    /// Values: the superblock device of a btrfs file's file system (counted in `dir_sb`), or 0.
    protected_inode: HashMap<MapData, shield_inode, u32>,
    certified_exe: HashMap<MapData, shield_inode, shield_program>,
    closure_file: HashMap<MapData, shield_code, u8>,
    certified_home: HashMap<MapData, shield_home, u8>,
    env_exact: HashMap<MapData, shield_env_name, u32>,
    env_prefix: HashMap<MapData, shield_env_name, u32>,
    /// Values: the folder's file system's superblock device (counted in `dir_sb`).
    protected_dir: HashMap<MapData, shield_inode, u32>,
    dir_sb: HashMap<MapData, u32, u32>,
    held_name: HashMap<MapData, shield_name, u8>,
    own_ids: HashMap<MapData, shield_id, u8>,
    /// The kernel backend's maps.
    policy: PolicyMaps,
    /// The pinned links, held open while this process lives (unmounting the pins' file system
    /// does not detach them then).
    _pinned_links: Vec<PinnedLink>,
    /// The superblock device of the bpf file system the shield is pinned in (0: not pinned).
    pins_dev: u32,
    service: Array<MapData, shield_service>,
    /// The service, as the programs know it, and whether the admin lock is set.
    task: Task,
    admin_locked: bool,
    /// How many names `held_name` holds (the programs read names only when some).
    held_names: u32,
    /// How many guards `guard_sb` holds, and the service's mount namespace (its inode number):
    /// while it has guards, there nobody else moves mounts (see shield.h).
    guards: u32,
    mount_ns: u32,
    /// Where btrfs keeps a file's subvolume device, once this kernel's BTF said.
    btrfs: Option<crate::kernel_btf::BtrfsLayout>,
    /// Its refusals, until [`Shield::refusals`] hands them out.
    refusals: Option<Refusals>,
    /// Where it is pinned, if it is.
    pins: Option<PathBuf>,
}

/// The maps the service keeps, by name.
const MAPS: [&str; 18] = [
    "protected_sb",
    "guard_sb",
    "protected_dev",
    "protected_inode",
    "certified_exe",
    "closure_file",
    "certified_home",
    "env_exact",
    "env_prefix",
    "protected_dir",
    "dir_sb",
    "held_name",
    "service",
    "kernel_volume",
    "backup_mark",
    "verdicts",
    "events",
    "own_ids",
];

pub(crate) fn load_error(e: impl std::fmt::Display) -> ShieldError {
    ShieldError::Load(e.to_string())
}

/// The object loaded and its file hooks attached; the link of each is handed to `keep`.
fn load_and_attach(
    mut keep: impl FnMut(&str, aya::programs::lsm::LsmLink) -> Result<(), ShieldError>,
) -> Result<Ebpf, ShieldError> {
    if !bpf_lsm_active() {
        return Err(ShieldError::LsmInactive(active_lsms().trim().to_string()));
    }
    let btf = Btf::from_sys_fs().map_err(|e| ShieldError::NoBtf(e.to_string()))?;
    let mut ebpf = Ebpf::load(OBJECT).map_err(load_error)?;
    for (name, hook) in programs() {
        let program: &mut Lsm = ebpf
            .program_mut(name)
            .ok_or_else(|| ShieldError::Load(format!("no program {name}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| load_error(e))?;
        program
            .load(hook, &btf)
            .map_err(|e| ShieldError::Load(format!("{name}: {e}")))?;
        let id = program
            .attach()
            .map_err(|e| ShieldError::Load(format!("{name}: {e}")))?;
        let link = program.take_link(id).map_err(load_error)?;
        keep(name, link)?;
    }
    Ok(ebpf)
}

impl Shield {
    /// Load and attach the shield for the service `service`; it
    /// holds while the value lives.
    pub fn load(service: Task) -> Result<Shield, ShieldError> {
        let mut links = vec![];
        let mut ebpf = load_and_attach(|_, link| {
            links.push(link);
            Ok(())
        })?;
        let ids = own_ids(&ebpf)?;
        let maps = MAPS.map(|name| ebpf.take_map(name));
        let mut shield = Shield::from_maps(maps, None)?;
        shield._ebpf = Some(ebpf);
        shield._links = links;
        for id in ids {
            shield.own_ids.insert(id, 1, 0).map_err(|e| {
                ShieldError::Load(format!(
                    "recording its own ids in own_ids (room for {}): {e}",
                    crate::bindings::SHIELD_MAX_IDS
                ))
            })?;
        }
        shield.set_service(service)?;
        Ok(shield)
    }

    /// Load, attach and pin the shield in `dir` (on a bpf file system): its programs stay
    /// attached and its maps as they are when this process ends, until [`Shield::unpin`]. A
    /// shield pinned there already is taken over instead ([`Shield::take_over`]).
    pub fn load_pinned(service: Task, dir: &Path) -> Result<Shield, ShieldError> {
        if dir.join("service").exists() {
            return match Shield::take_over(service, dir) {
                Ok(shield) => Ok(shield),
                // Pinned by another version of the service (its programs or maps differ: an
                // upgrade after a stop that kept it): replaced, without a moment uncovered.
                Err(first) => Shield::replace(service, dir).map_err(|e| {
                    ShieldError::Load(format!(
                        "taking over the shield pinned in {}: {first}; replacing it: {e}",
                        dir.display()
                    ))
                }),
            };
        }
        Shield::pin_new(service, dir)
    }

    /// Replace the shield pinned in `dir` by one that cannot be taken over (another version's):
    /// its links are held open while its pins are removed and this version's are loaded and
    /// pinned, what it shielded is copied over, and only then are its links let go; so some
    /// shield refuses at every moment.
    fn replace(service: Task, dir: &Path) -> Result<Shield, ShieldError> {
        let io = |what: &str, e: std::io::Error| ShieldError::Load(format!("{what}: {e}"));
        let mut old_links = vec![];
        let mut old_maps = vec![];
        let mut pins = vec![];
        for entry in std::fs::read_dir(dir).map_err(|e| io("listing the old pins", e))? {
            let path = entry.map_err(|e| io("listing the old pins", e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with("link_") {
                old_links.push(
                    PinnedLink::from_pin(&path)
                        .map_err(|e| ShieldError::Load(format!("holding {name}: {e}")))?,
                );
            } else if let Ok(data) = MapData::from_pin(&path) {
                old_maps.push((name, data));
            }
            pins.push(path);
        }
        for pin in pins {
            std::fs::remove_file(&pin)
                .map_err(|e| io(&format!("removing {}", pin.display()), e))?;
        }
        let mut shield = Shield::pin_new(service, dir)?;
        for (name, data) in old_maps {
            let Ok(map) = Map::from_map_data(data) else {
                continue;
            };
            match name.as_str() {
                "protected_sb" | "guard_sb" | "protected_dev" => {
                    let Ok(old) = HashMap::<MapData, u32, u8>::try_from(map) else {
                        continue;
                    };
                    for key in old.keys().flatten() {
                        match name.as_str() {
                            "protected_sb" => shield.protect(key)?,
                            "guard_sb" => shield.protect_guard(key)?,
                            _ => shield.protect_device(key)?,
                        }
                    }
                }
                "protected_inode" | "protected_dir" | "held_dir" => {
                    // Values: the file system (0: none) from this build on, 1 before.
                    let entries: Vec<(shield_inode, u32)> =
                        match HashMap::<&MapData, shield_inode, u32>::try_from(&map) {
                            Ok(old) => old.iter().flatten().collect(),
                            Err(_) => match HashMap::<&MapData, shield_inode, u8>::try_from(&map) {
                                Ok(old) => old.keys().flatten().map(|k| (k, 0)).collect(),
                                Err(_) => continue,
                            },
                        };
                    for (key, fs) in entries {
                        match (name.as_str(), fs) {
                            ("protected_inode", 0) => shield.protect_inode(key.dev, key.ino)?,
                            ("protected_inode", fs) => {
                                shield.protect_inode_on(key.dev, key.ino, fs)?
                            }
                            // Folders (held_dir: what an earlier version called those the
                            // admin lock holds).
                            (_, 0) => shield.protect_dir(key.dev, key.ino)?,
                            (_, fs) => shield.protect_dir_on(key.dev, key.ino, fs)?,
                        }
                    }
                }
                "held_name" => {
                    let Ok(old) = HashMap::<MapData, shield_name, u8>::try_from(map) else {
                        continue;
                    };
                    for key in old.keys().flatten() {
                        let bytes: Vec<u8> = key
                            .name
                            .iter()
                            .take_while(|&&c| c != 0)
                            .map(|&c| c as u8)
                            .collect();
                        shield.hold_name(key.dev, key.ino, &String::from_utf8_lossy(&bytes))?;
                    }
                }
                _ => {}
            }
        }
        drop(old_links);
        Ok(shield)
    }

    /// Load, attach and pin a new shield in `dir`.
    fn pin_new(service: Task, dir: &Path) -> Result<Shield, ShieldError> {
        let mut pinned = vec![];
        let mut ebpf = load_and_attach(|name, link| {
            let fd: FdLink = link.into();
            pinned.push(
                fd.pin(dir.join(format!("link_{name}")))
                    .map_err(|e| ShieldError::Load(format!("pinning {name}: {e}")))?,
            );
            Ok(())
        })?;
        let ids = own_ids(&ebpf)?;
        let maps = MAPS.map(|name| ebpf.take_map(name));
        for (name, map) in MAPS.iter().zip(&maps) {
            if let Some(m) = map {
                m.pin(dir.join(name))
                    .map_err(|e| ShieldError::Load(format!("pinning {name}: {e}")))?;
            }
        }
        let mut shield = Shield::from_maps(maps, Some(dir.to_path_buf()))?;
        shield._ebpf = Some(ebpf);
        shield._pinned_links = pinned;
        for id in ids {
            shield.own_ids.insert(id, 1, 0).map_err(|e| {
                ShieldError::Load(format!(
                    "recording its own ids in own_ids (room for {}): {e}",
                    crate::bindings::SHIELD_MAX_IDS
                ))
            })?;
        }
        shield.pins_dev = pins_dev(dir)?;
        shield.set_service(service)?;
        Ok(shield)
    }

    /// Take over the shield pinned in `dir` by an earlier service: its maps, now kept by
    /// the service `service`.
    pub fn take_over(service: Task, dir: &Path) -> Result<Shield, ShieldError> {
        let maps = MAPS.map(|name| {
            MapData::from_pin(dir.join(name))
                .ok()
                .and_then(|d| Map::from_map_data(d).ok())
        });
        let mut shield = Shield::from_maps(maps, Some(dir.to_path_buf()))?;
        // Only pins of this very build: the same names may hold another build's programs.
        let pinned = shield.service.get(&0, 0).map_err(load_error)?;
        if pinned.object_id != object_id() {
            return Err(ShieldError::Load(format!(
                "the pins in {} are of another build ({:016x}, this one {:016x})",
                dir.display(),
                pinned.object_id,
                object_id()
            )));
        }
        // The links' pins, held open by this process as by its predecessor.
        for (name, _) in programs() {
            let pin = dir.join(format!("link_{name}"));
            shield._pinned_links.push(
                PinnedLink::from_pin(&pin).map_err(|e| {
                    ShieldError::Load(format!("taking over {}: {e}", pin.display()))
                })?,
            );
        }
        shield.pins_dev = pins_dev(dir)?;
        shield.set_service(service)?;
        Ok(shield)
    }

    fn from_maps(maps: [Option<Map>; 18], pins: Option<PathBuf>) -> Result<Shield, ShieldError> {
        let [sb, guard, dev, inode, certified, closure, homes, env_exact, env_prefix, dirs, dir_sb, names, service, volumes, marks, verdicts, events, ids] =
            maps;
        let held_name: HashMap<MapData, shield_name, u8> =
            HashMap::try_from(names.ok_or(ShieldError::MissingMap("held_name"))?)
                .map_err(load_error)?;
        // Taken over: as many held names and guards as its predecessor left.
        let held_names = held_name.keys().filter(|k| k.is_ok()).count() as u32;
        let guard_sb: HashMap<MapData, u32, u8> =
            HashMap::try_from(guard.ok_or(ShieldError::MissingMap("guard_sb"))?)
                .map_err(load_error)?;
        let guards = guard_sb.keys().filter(|k| k.is_ok()).count() as u32;
        Ok(Shield {
            _ebpf: None,
            _links: vec![],
            protected_sb: HashMap::try_from(sb.ok_or(ShieldError::MissingMap("protected_sb"))?)
                .map_err(load_error)?,
            guard_sb,
            protected_dev: HashMap::try_from(dev.ok_or(ShieldError::MissingMap("protected_dev"))?)
                .map_err(load_error)?,
            protected_inode: HashMap::try_from(
                inode.ok_or(ShieldError::MissingMap("protected_inode"))?,
            )
            .map_err(load_error)?,
            certified_exe: HashMap::try_from(
                certified.ok_or(ShieldError::MissingMap("certified_exe"))?,
            )
            .map_err(load_error)?,
            closure_file: HashMap::try_from(
                closure.ok_or(ShieldError::MissingMap("closure_file"))?,
            )
            .map_err(load_error)?,
            certified_home: HashMap::try_from(
                homes.ok_or(ShieldError::MissingMap("certified_home"))?,
            )
            .map_err(load_error)?,
            env_exact: HashMap::try_from(env_exact.ok_or(ShieldError::MissingMap("env_exact"))?)
                .map_err(load_error)?,
            env_prefix: HashMap::try_from(env_prefix.ok_or(ShieldError::MissingMap("env_prefix"))?)
                .map_err(load_error)?,
            protected_dir: HashMap::try_from(dirs.ok_or(ShieldError::MissingMap("protected_dir"))?)
                .map_err(load_error)?,
            dir_sb: HashMap::try_from(dir_sb.ok_or(ShieldError::MissingMap("dir_sb"))?)
                .map_err(load_error)?,
            held_name,
            held_names,
            policy: PolicyMaps::from_maps(volumes, marks, verdicts)?,
            service: Array::try_from(service.ok_or(ShieldError::MissingMap("service"))?)
                .map_err(load_error)?,
            own_ids: HashMap::try_from(ids.ok_or(ShieldError::MissingMap("own_ids"))?)
                .map_err(load_error)?,
            _pinned_links: vec![],
            pins_dev: 0,
            guards,
            mount_ns: 0,
            task: Task {
                tgid: 0,
                start_ticks: 0,
                boottime_offset_ns: 0,
            },
            admin_locked: false,
            btrfs: None,
            refusals: Some(Refusals::new(
                RingBuf::try_from(events.ok_or(ShieldError::MissingMap("events"))?)
                    .map_err(load_error)?,
            )),
            pins,
        })
    }

    fn set_service(&mut self, task: Task) -> Result<(), ShieldError> {
        use std::os::unix::fs::MetadataExt;
        self.set_environment()?;
        self.policy
            .set_verdicts(&imageguard_policy::compiled::VerdictTable::compile())?;
        self.task = task;
        // Its mount namespace's inode number is what the programs compare (ns_common.inum).
        self.mount_ns = std::fs::metadata(format!("/proc/{}/ns/mnt", task.tgid))?.ino() as u32;
        self.write_service()
    }

    fn write_service(&mut self) -> Result<(), ShieldError> {
        let value = shield_service {
            tgid: self.task.tgid,
            admin_locked: self.admin_locked as u32,
            start_ticks: self.task.start_ticks,
            pins_dev: self.pins_dev,
            held_names: self.held_names,
            mount_ns: if self.guards > 0 { self.mount_ns } else { 0 },
            _pad: 0,
            object_id: object_id(),
            boottime_offset_ns: self.task.boottime_offset_ns,
            btrfs_root_from_inode: self.btrfs.map_or(0, |l| l.root_from_inode),
            btrfs_anon_dev: self.btrfs.map_or(0, |l| l.anon_dev),
            btrfs_known: self.btrfs.is_some() as u32,
            _pad2: 0,
        };
        self.service.set(0, value, 0).map_err(load_error)
    }

    /// Whether the programs can tell btrfs subvolumes apart (see `shield_service` in
    /// shield.h): asked of this kernel's BTF until it says, since btrfs may be a module loaded
    /// later. Until then btrfs files must not be shielded by identity: their identities repeat
    /// across subvolumes.
    pub fn knows_btrfs(&mut self) -> Result<bool, ShieldError> {
        // No btrfs loaded: nothing of btrfs to shield, and no BTF to read for it.
        if self.btrfs.is_none() && Path::new("/sys/fs/btrfs").exists() {
            let layout = crate::kernel_btf::btrfs_layout()
                .map_err(|e| ShieldError::Load(format!("btrfs's layout in BTF: {e}")))?;
            if layout.is_some() {
                self.btrfs = layout;
                if let Err(e) = self.write_service() {
                    self.btrfs = None;
                    return Err(e);
                }
            }
        }
        Ok(self.btrfs.is_some())
    }

    /// The admin lock is set (or not): while it is, no other task may signal the service.
    pub fn set_admin_locked(&mut self, locked: bool) -> Result<(), ShieldError> {
        self.admin_locked = locked;
        self.write_service()
    }

    /// What the shield refuses from now on, to be read by one thread (the first call hands it
    /// out; later ones get `None`).
    pub fn refusals(&mut self) -> Option<Refusals> {
        self.refusals.take()
    }

    /// Remove the pins: the programs detach once nothing holds them (`imageguard off` with
    /// the passphrase is the only way there).
    pub fn unpin(self) -> Result<(), ShieldError> {
        let Some(dir) = &self.pins else {
            return Ok(());
        };
        let names = PROGRAMS
            .iter()
            .map(|(n, _)| format!("link_{n}"))
            .chain(MAPS.iter().map(|m| m.to_string()));
        for name in names {
            match std::fs::remove_file(dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ShieldError::Load(format!("unpinning {name}: {e}"))),
            }
        }
        Ok(())
    }

    /// The kernel backend's maps: where the kernel decides the policy, and the classes of
    /// the entries there.
    pub fn policy(&mut self) -> &mut PolicyMaps {
        &mut self.policy
    }

    /// Shield the file system whose superblock device is `dev` (see [`kernel_dev`]).
    pub fn protect(&mut self, dev: u32) -> Result<(), ShieldError> {
        self.protected_sb.insert(dev, 1, 0).map_err(load_error)
    }

    /// Shield the guard whose superblock device is `dev`: nobody but the service may mount on
    /// or inside it, unmount it or move it (changes through it stay the guard's to decide).
    pub fn protect_guard(&mut self, dev: u32) -> Result<(), ShieldError> {
        self.guard_sb.insert(dev, 1, 0).map_err(load_error)?;
        self.count_guards()
    }

    /// The devices shielded as protected volumes' superblocks, and those beneath them (block
    /// devices only), as the programs hold them now (a predecessor's included).
    pub fn shielded_block_devices(&self) -> (Vec<u32>, Vec<u32>) {
        let sb = self.protected_sb.keys().flatten().collect();
        let beneath = self
            .protected_dev
            .keys()
            .flatten()
            .filter(|d| d & crate::bindings::SHIELD_CHAR_DEV == 0)
            .collect();
        (sb, beneath)
    }

    /// Stop shielding the guard whose superblock device is `dev`.
    pub fn release_guard(&mut self, dev: u32) -> Result<(), ShieldError> {
        removed(self.guard_sb.remove(&dev))?;
        self.count_guards()
    }

    /// Count the guards again; the mount namespace rule holds while there is one.
    fn count_guards(&mut self) -> Result<(), ShieldError> {
        let guards = self.guard_sb.keys().filter(|k| k.is_ok()).count() as u32;
        if (guards > 0) != (self.guards > 0) {
            self.guards = guards;
            return self.write_service();
        }
        self.guards = guards;
        Ok(())
    }

    /// Shield the block device `dev` (kernel encoding) beneath a protected volume that is not
    /// the volume's own (its whole disk, the layers under device-mapper or md): opening it for
    /// writing is refused. The volume's own device is refused by [`Shield::protect`].
    pub fn protect_device(&mut self, dev: u32) -> Result<(), ShieldError> {
        self.protected_dev.insert(dev, 1, 0).map_err(load_error)
    }

    /// Shield a character device that sends commands to a disk beneath a protected volume (its
    /// SCSI generic, bsg or NVMe generic node): opening it for writing, and SG_IO or NVMe
    /// passthrough on it, are refused.
    pub fn protect_char_device(&mut self, dev: u32) -> Result<(), ShieldError> {
        self.protected_dev
            .insert(dev | crate::bindings::SHIELD_CHAR_DEV, 1, 0)
            .map_err(load_error)
    }

    /// Stop shielding the character device `dev`.
    pub fn release_char_device(&mut self, dev: u32) -> Result<(), ShieldError> {
        removed(
            self.protected_dev
                .remove(&(dev | crate::bindings::SHIELD_CHAR_DEV)),
        )
    }

    /// Shield one file beneath a protected volume on another file system (the image file a
    /// loop device reads it from): by its file system's device (kernel encoding) and inode.
    pub fn protect_inode(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        self.protected_inode
            .insert(inode_key(dev, ino), 0, 0)
            .map_err(load_error)
    }

    /// The same for a file of btrfs, whose `dev` is its subvolume's (as `stat` shows it) and
    /// `fs` its file system's superblock device: nobody but the service deletes a subvolume
    /// there (one would take the file along).
    pub fn protect_inode_on(&mut self, dev: u32, ino: u64, fs: u32) -> Result<(), ShieldError> {
        self.protected_inode
            .insert(inode_key(dev, ino), fs, 0)
            .map_err(load_error)?;
        self.count_fs(fs)
    }

    /// A certified program's file (native program or script), by its file system's device
    /// (kernel encoding) and inode as exec opens it: processes that execute it, and what they
    /// fork, are reached into by nobody but the service, and no traced process may execute it;
    /// each stays certified while only code of `program`'s closure arrives in it (see
    /// certify.bpf.h).
    pub fn protect_program(
        &mut self,
        dev: u32,
        ino: u64,
        program: &Program,
    ) -> Result<(), ShieldError> {
        let record = shield_program {
            id: program.id,
            runtimes: program.runtimes,
        };
        self.certified_exe
            .insert(inode_key(dev, ino), record, 0)
            .map_err(load_error)
    }

    /// The file `ino` of `dev` (kernel encoding) is code the certified program `program` may
    /// load (its closure, its own file, its interpreter).
    pub fn allow_code(&mut self, program: u32, dev: u32, ino: u64) -> Result<(), ShieldError> {
        self.closure_file
            .insert(code_key(program, dev, ino), 1, 0)
            .map_err(|e| {
                ShieldError::Load(format!(
                    "closure files (room for {}): {e}",
                    crate::bindings::SHIELD_MAX_CODE_FILES
                ))
            })
    }

    /// `home`'s Python user site is in the closure of the certified program `program` (a
    /// home of [`SHIELD_HOME_LEN`] bytes or more cannot be: its processes are not certified
    /// there, which is the safe side).
    pub fn allow_home(&mut self, program: u32, home: &str) -> Result<(), ShieldError> {
        match home_key(program, home) {
            Some(key) => self.certified_home.insert(key, 1, 0).map_err(load_error),
            None => Ok(()),
        }
    }

    /// No longer one of `program`'s certified homes.
    pub fn disallow_home(&mut self, program: u32, home: &str) -> Result<(), ShieldError> {
        match home_key(program, home) {
            Some(key) => removed(self.certified_home.remove(&key)),
            None => Ok(()),
        }
    }

    /// The start-up variables that end a certification, as the policy core compiles them
    /// (the same for every build of the core this object was built with: written at every
    /// start).
    fn set_environment(&mut self) -> Result<(), ShieldError> {
        let env = CompiledEnvironment::compile();
        for (name, mask) in &env.exact {
            let mut m = *mask;
            if *name == env.no_user_site {
                m |= SHIELD_ENV_NO_USER_SITE;
            }
            self.env_exact
                .insert(env_key(name)?, m, 0)
                .map_err(load_error)?;
        }
        for (prefix, mask) in &env.prefixes {
            self.env_prefix
                .insert(env_key(prefix)?, *mask, 0)
                .map_err(load_error)?;
        }
        Ok(())
    }

    /// No longer code `program` may load.
    pub fn disallow_code(&mut self, program: u32, dev: u32, ino: u64) -> Result<(), ShieldError> {
        removed(self.closure_file.remove(&code_key(program, dev, ino)))
    }

    /// No longer a certified program's file.
    pub fn release_program(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        removed(self.certified_exe.remove(&inode_key(dev, ino)))
    }

    /// Shield the folder `ino` of `dev` (kernel encoding): nothing in it, the folder included and
    /// at any depth, may change but by the service, whatever mount or name leads there (a
    /// protected folder of a larger file system; imageguard's state folder under the admin lock).
    pub fn protect_dir(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        self.protect_dir_on(dev, ino, dev)
    }

    /// The same for a folder whose file system's superblock device `fs` is not `dev` (btrfs:
    /// `dev` is the folder's subvolume's, as `stat` shows it).
    pub fn protect_dir_on(&mut self, dev: u32, ino: u64, fs: u32) -> Result<(), ShieldError> {
        self.protected_dir
            .insert(inode_key(dev, ino), fs, 0)
            .map_err(load_error)?;
        self.count_fs(fs)
    }

    /// Let the folder `ino` of `dev` go.
    pub fn release_dir(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        let key = inode_key(dev, ino);
        let Ok(fs) = self.protected_dir.get(&key, 0) else {
            return Ok(());
        };
        removed(self.protected_dir.remove(&key))?;
        self.count_fs(fs)
    }

    /// Tell the programs how many protected folders (and btrfs image files) the file system
    /// `fs` holds: they follow an entry's parents only on such a file system, and refuse
    /// subvolume deletion there.
    fn count_fs(&mut self, fs: u32) -> Result<(), ShieldError> {
        let on = |v: &Result<(shield_inode, u32), aya::maps::MapError>| {
            v.as_ref().is_ok_and(|&(_, value)| value == fs)
        };
        let n = (self.protected_dir.iter().filter(on).count()
            + self.protected_inode.iter().filter(on).count()) as u32;
        if n == 0 {
            removed(self.dir_sb.remove(&fs))
        } else {
            self.dir_sb.insert(fs, n, 0).map_err(load_error)
        }
    }

    /// Hold the name `name` in the folder `ino` of `dev`: nobody but the service may create,
    /// remove, rename or replace an entry of that name there.
    pub fn hold_name(&mut self, dev: u32, ino: u64, name: &str) -> Result<(), ShieldError> {
        let key = name_key(dev, ino, name)?;
        if self.held_name.get(&key, 0).is_err() {
            self.held_name.insert(key, 1, 0).map_err(load_error)?;
            self.held_names += 1;
            self.write_service()?;
        }
        Ok(())
    }

    /// Let the name `name` in the folder `ino` of `dev` go.
    pub fn release_name(&mut self, dev: u32, ino: u64, name: &str) -> Result<(), ShieldError> {
        let key = name_key(dev, ino, name)?;
        if self.held_name.get(&key, 0).is_ok() {
            removed(self.held_name.remove(&key))?;
            self.held_names = self.held_names.saturating_sub(1);
            self.write_service()?;
        }
        Ok(())
    }

    /// Stop shielding the volume whose superblock device is `dev`.
    pub fn release(&mut self, dev: u32) -> Result<(), ShieldError> {
        removed(self.protected_sb.remove(&dev))
    }

    /// Stop shielding the device `dev` beneath a volume.
    pub fn release_device(&mut self, dev: u32) -> Result<(), ShieldError> {
        removed(self.protected_dev.remove(&dev))
    }

    /// Stop shielding the file `ino` of `dev`.
    pub fn release_inode(&mut self, dev: u32, ino: u64) -> Result<(), ShieldError> {
        let key = inode_key(dev, ino);
        let Ok(fs) = self.protected_inode.get(&key, 0) else {
            return Ok(());
        };
        removed(self.protected_inode.remove(&key))?;
        if fs != 0 {
            self.count_fs(fs)?;
        }
        Ok(())
    }
}

/// The superblock device (kernel encoding) of the bpf file system at `dir`.
fn pins_dev(dir: &Path) -> Result<u32, ShieldError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok(crate::kernel::kernel_dev(
        rustix::fs::major(m.dev()),
        rustix::fs::minor(m.dev()),
    ))
}

/// The ids of the shield's programs, of the maps they use and of their links, as the kernel
/// numbers them, for `own_ids`.
fn own_ids(ebpf: &Ebpf) -> Result<Vec<shield_id>, ShieldError> {
    let loaded = programs();
    let mut ids = vec![];
    let mut programs = vec![];
    for (name, program) in ebpf.programs() {
        // A program written for another kernel's form of its hook stays unloaded.
        if !loaded.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let info = program.info().map_err(load_error)?;
        programs.push(info.id());
        for map in info.map_ids().map_err(load_error)?.unwrap_or_default() {
            let id = shield_id {
                kind: shield_kind::SHIELD_KIND_MAP,
                id: map,
            };
            if !ids
                .iter()
                .any(|i: &shield_id| (i.kind, i.id) == (id.kind, id.id))
            {
                ids.push(id);
            }
        }
    }
    ids.extend(programs.iter().map(|&id| shield_id {
        kind: shield_kind::SHIELD_KIND_PROG,
        id,
    }));
    for link in aya::programs::loaded_links().flatten() {
        if programs.contains(&link.program_id()) {
            ids.push(shield_id {
                kind: shield_kind::SHIELD_KIND_LINK,
                id: link.id(),
            });
        }
    }
    Ok(ids)
}

fn inode_key(dev: u32, ino: u64) -> shield_inode {
    shield_inode { dev, _pad: 0, ino }
}

fn code_key(program: u32, dev: u32, ino: u64) -> shield_code {
    shield_code { program, dev, ino }
}

/// A certified home's key: without trailing slashes, NUL-padded; `None` when too long.
fn home_key(program: u32, home: &str) -> Option<shield_home> {
    let home = imageguard_policy::compiled::environment::trim_home(home.as_bytes());
    if home.len() >= SHIELD_HOME_LEN as usize {
        return None;
    }
    let mut key = shield_home {
        program,
        home: [0; SHIELD_HOME_LEN as usize],
    };
    for (c, b) in key.home.iter_mut().zip(home) {
        *c = *b as std::os::raw::c_char;
    }
    Some(key)
}

/// A variable name's key (names longer than the programs compare cannot be compiled: the
/// policy core's test proves none is).
fn env_key(name: &[u8]) -> Result<shield_env_name, ShieldError> {
    if name.len() > SHIELD_ENV_NAME as usize {
        return Err(ShieldError::Load(format!(
            "the variable name {} is longer than the programs compare",
            String::from_utf8_lossy(name)
        )));
    }
    let mut key = shield_env_name {
        name: [0; SHIELD_ENV_NAME as usize],
    };
    for (c, b) in key.name.iter_mut().zip(name) {
        *c = *b as std::os::raw::c_char;
    }
    Ok(key)
}

/// A removal from a map: one that was not there is as good.
/// The key of the name `name` in the folder `ino` of `dev` (names longer than the programs
/// read are refused: they could never match).
fn name_key(dev: u32, ino: u64, name: &str) -> Result<shield_name, ShieldError> {
    let mut key = shield_name {
        dev,
        _pad: 0,
        ino,
        name: [0; crate::bindings::SHIELD_NAME_LEN as usize],
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= key.name.len() {
        return Err(ShieldError::Load(format!(
            "a name of 1 to {} bytes: {name:?}",
            key.name.len() - 1
        )));
    }
    for (k, b) in key.name.iter_mut().zip(bytes) {
        *k = *b as std::os::raw::c_char;
    }
    Ok(key)
}

pub(crate) fn removed(r: Result<(), aya::maps::MapError>) -> Result<(), ShieldError> {
    match r {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(load_error(e)),
    }
}
