//! The kernel shield (issue 18): BPF LSM programs that make one rule true in the kernel: on a
//! protected volume's file system, only the service (the FUSE guard's own tasks) may change
//! files, whichever path, mount, namespace or descriptor leads to them. The FUSE guard keeps
//! deciding who among its callers is certified; the shield makes sure nobody goes around it.
//!
//! - `src/bpf/*.bpf.c`: the programs, one per hook family (`files`: opening for write, every
//!   change of a name, truncation, modes, owners, extended attributes), with `shield.h` (the maps both sides share) and `kernel.h` (the kernel
//!   structures read, CO-RE). Built by `build-bpf.sh` with Debian's clang; the objects are
//!   committed (a fresh machine has no clang) and `.ci/run` rebuilds them and fails when they
//!   differ.
//! - [`Shield`]: loading them with aya, attaching them, and the maps the service keeps.
//!
//! Kernels: the bpf LSM must be active (`bpf` in `/sys/kernel/security/lsm`) and the kernel
//! must have BTF; elsewhere [`Shield::load`] says why not and the FUSE guard runs alone.

use aya::maps::{Array, HashMap};
use aya::programs::Lsm;
use aya::{Btf, Ebpf};

/// The file hooks' object, as built by `build-bpf.sh`.
static FILES_OBJECT: &[u8] = aya::include_bytes_aligned!("bpf/files.bpf.o");

/// Each program of the file hooks and the LSM hook it attaches to.
const FILE_PROGRAMS: &[(&str, &str)] = &[
    ("shield_file_open", "file_open"),
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
    ("shield_path_truncate", "path_truncate"),
    ("shield_path_chmod", "path_chmod"),
    ("shield_path_chown", "path_chown"),
];

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
}

/// The active LSMs, as the kernel lists them.
pub fn active_lsms() -> String {
    std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default()
}

/// Whether `bpf` is among the active LSMs.
pub fn bpf_lsm_active() -> bool {
    active_lsms().split(',').any(|l| l.trim() == "bpf")
}

/// The shield, loaded and attached: it holds while this value lives.
pub struct Shield {
    ebpf: Ebpf,
}

/// A superblock device as the kernel encodes `s_dev` (major << 20 | minor).
pub fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

impl Shield {
    /// Load and attach the shield for the service whose thread group is `service_tgid`.
    pub fn load(service_tgid: u32) -> Result<Shield, ShieldError> {
        if !bpf_lsm_active() {
            return Err(ShieldError::LsmInactive(active_lsms().trim().to_string()));
        }
        let btf = Btf::from_sys_fs().map_err(|e| ShieldError::NoBtf(e.to_string()))?;
        let mut ebpf = Ebpf::load(FILES_OBJECT).map_err(|e| ShieldError::Load(e.to_string()))?;
        {
            let map = ebpf
                .map_mut("service")
                .ok_or(ShieldError::MissingMap("service"))?;
            let mut service: Array<_, u32> =
                Array::try_from(map).map_err(|e| ShieldError::Load(e.to_string()))?;
            service
                .set(0, service_tgid, 0)
                .map_err(|e| ShieldError::Load(e.to_string()))?;
        }
        for (name, hook) in FILE_PROGRAMS {
            let program: &mut Lsm = ebpf
                .program_mut(name)
                .ok_or_else(|| ShieldError::Load(format!("no program {name}")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| ShieldError::Load(e.to_string()))?;
            program
                .load(hook, &btf)
                .map_err(|e| ShieldError::Load(format!("{name}: {e}")))?;
            program
                .attach()
                .map_err(|e| ShieldError::Load(format!("{name}: {e}")))?;
        }
        Ok(Shield { ebpf })
    }

    fn volumes(&mut self) -> Result<HashMap<&mut aya::maps::MapData, u32, u8>, ShieldError> {
        let map = self
            .ebpf
            .map_mut("protected_sb")
            .ok_or(ShieldError::MissingMap("protected_sb"))?;
        HashMap::try_from(map).map_err(|e| ShieldError::Load(e.to_string()))
    }

    /// Shield the file system whose superblock device is `dev` (see [`kernel_dev`]).
    pub fn protect(&mut self, dev: u32) -> Result<(), ShieldError> {
        self.volumes()?
            .insert(dev, 1, 0)
            .map_err(|e| ShieldError::Load(e.to_string()))
    }

    /// Shield the block device `dev` (kernel encoding) beneath a protected volume that is not
    /// the volume's own (its whole disk, the layers under device-mapper or md): opening it for
    /// writing is refused. The volume's own device is refused by [`Shield::protect`].
    pub fn protect_device(&mut self, dev: u32) -> Result<(), ShieldError> {
        let map = self
            .ebpf
            .map_mut("protected_dev")
            .ok_or(ShieldError::MissingMap("protected_dev"))?;
        let mut devices: HashMap<_, u32, u8> =
            HashMap::try_from(map).map_err(|e| ShieldError::Load(e.to_string()))?;
        devices
            .insert(dev, 1, 0)
            .map_err(|e| ShieldError::Load(e.to_string()))
    }

    /// Stop shielding it.
    pub fn release(&mut self, dev: u32) -> Result<(), ShieldError> {
        let mut v = self.volumes()?;
        match v.remove(&dev) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(ShieldError::Load(e.to_string())),
        }
    }
}
