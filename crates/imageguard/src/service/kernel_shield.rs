//! The kernel shield as the service drives it (`[guard] kernel_shield`): loaded at start, or
//! taken over from the service before it (pinned in a bpf file system of its own under the
//! runtime directory); while a whole volume is protected, its superblock, the block devices
//! beneath it and the image files its loop devices read are shielded, so the guard is the only
//! way to change it; a protected folder of a larger file system is marked (everything in it,
//! whatever mount or name leads there, with the backups hard-linked from outside it), the rest
//! of that file system staying writable; what the shield refuses is logged as event 320.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use imageguard_policy::certification::CertifiedList;
use imageguard_policy::compiled::VerdictCode;
use imageguard_policy::{Event, EventKind, Operation, VolumeRef};
use imageguard_shield::{kernel_dev, Refusal, Refusals, Refused, Shield, Task};
use imageguard_volume::backing::VolumeInfo;
use imageguard_volume::{mountapi, BackingMode};
use parking_lot::Mutex;

use crate::config::KernelShieldMode;

/// Where the shield is pinned, under the runtime directory: a bpf file system mounted there.
pub fn pin_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("shield")
}

/// What the shield covers for one protected volume.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cover {
    /// The guard's superblock (kernel encoding), when its mount is found.
    guard: Option<u32>,
    /// A whole volume's superblock (none for a folder: the rest of its file system must stay
    /// writable).
    sb: Option<u32>,
    /// Block devices beneath it.
    devices: Vec<u32>,
    /// Character devices that send commands to its disks (SCSI generic, bsg, NVMe generic).
    char_devices: Vec<u32>,
    /// Image files beneath it.
    files: Vec<ImageFile>,
    /// A folder of a larger file system: the folder (device, inode), and its path from that
    /// file system's root (to name what was refused).
    folder: Option<(u32, u64, PathBuf)>,
    /// Its backups that have names outside it too (hard links made before protection).
    linked: Vec<(u32, u64)>,
    /// The superblock device of the btrfs file system its folder lies on: the folder's
    /// identity above names its subvolume's device (as `stat` does), refusals the superblock's.
    btrfs_fs: Option<u32>,
    /// What the shield leaves to the FUSE guard alone, and why (files on btrfs, on a kernel
    /// whose BTF does not say where btrfs keeps a file's subvolume).
    uncovered: Vec<String>,
    /// For event 320: the volume as events name it.
    volume: VolumeRef,
    mount_point: PathBuf,
}

/// An image file beneath a volume, as the shield marks it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageFile {
    /// Its device as `stat` shows it (on btrfs, its subvolume's) and inode.
    dev: u32,
    ino: u64,
    /// The superblock device of its btrfs file system, when it lies on one (refusals name
    /// that).
    btrfs_fs: Option<u32>,
    path: PathBuf,
}

impl ImageFile {
    /// Whether the refusal `r` is of this file.
    fn names(&self, r: &Refusal) -> bool {
        names_file(self.dev, self.ino, self.btrfs_fs, r)
    }
}

/// Whether the refusal `r` (which names a file by its superblock's device) is of the file `ino`
/// of `dev` (its device as `stat` shows it: on btrfs, its subvolume's, `btrfs_fs` then being
/// the superblock's).
fn names_file(dev: u32, ino: u64, btrfs_fs: Option<u32>, r: &Refusal) -> bool {
    ino == r.ino && (dev == r.dev || btrfs_fs == Some(r.dev))
}

/// Why the shield cannot name a file of btrfs on some kernels: the kernel knows it by the file
/// system's one device and an inode number, and inode numbers repeat from one subvolume to the
/// next (each subvolume's root is 256), so a mark would cover other subvolumes' files too; its
/// subvolume's device is found only where the kernel's BTF describes btrfs's inodes.
const ON_BTRFS: &str =
    "on btrfs, whose subvolumes this kernel's BTF does not describe (inode numbers repeat across them)";

/// The identities the kernel may know the file at `path` by, as (device in kernel encoding,
/// inode): the one `stat` gives and, on overlayfs, its layers'.
fn kernel_identities(path: &Path) -> std::io::Result<Vec<(u32, u64)>> {
    kernel_identities_in(&imageguard_volume::MountTable::read()?, path)
}

/// [`kernel_identities`] with the mount table already read, for many paths at once.
fn kernel_identities_in(
    table: &imageguard_volume::MountTable,
    path: &Path,
) -> std::io::Result<Vec<(u32, u64)>> {
    Ok(imageguard_volume::layers::file_identities_in(table, path)?
        .into_iter()
        .map(|(major, minor, ino)| (kernel_dev(major, minor), ino))
        .collect())
}

impl Cover {
    /// What to shield of the volume `info` describes, whose backing's root is `root` (device
    /// and inode as `stat` gives them) and whose backups `linked` (inodes) have other names.
    /// `btrfs`: whether the programs tell btrfs subvolumes apart.
    fn of(
        info: &VolumeInfo,
        volume: VolumeRef,
        root: (u64, u64),
        linked: impl IntoIterator<Item = u64>,
        btrfs: bool,
    ) -> Result<Cover> {
        let table = imageguard_volume::MountTable::read().context("reading the mount table")?;
        let guard = table
            .at(&info.mount_point)
            .filter(|e| e.fstype == imageguard_volume::backing::GUARD_FSTYPE)
            .map(|e| kernel_dev(e.major, e.minor));
        let mut cover = Cover {
            guard,
            sb: None,
            devices: vec![],
            char_devices: vec![],
            files: vec![],
            folder: None,
            linked: vec![],
            btrfs_fs: None,
            uncovered: vec![],
            volume,
            mount_point: info.mount_point.clone(),
        };
        if info.mode != BackingMode::Hidden {
            let host = host_mount(&table, info);
            let on_btrfs = host.is_some_and(|e| e.fstype == "btrfs");
            if on_btrfs && btrfs {
                cover.btrfs_fs = host.map(|e| kernel_dev(e.major, e.minor));
            } else if on_btrfs {
                log::warn!(
                    "kernel shield: {} is {ON_BTRFS}: the FUSE guard alone guards it",
                    info.mount_point.display()
                );
                cover
                    .uncovered
                    .push(format!("the folder and its files ({ON_BTRFS})"));
                return Ok(cover);
            }
            let dev = kernel_dev(rustix::fs::major(root.0), rustix::fs::minor(root.0));
            cover.folder = Some((dev, root.1, folder_from_root(&table, info)));
            cover.linked = linked.into_iter().map(|ino| (dev, ino)).collect();
            return Ok(cover);
        }
        let (major, minor) = imageguard_volume::mountinfo::parse_device_number(&info.device_number)
            .with_context(|| format!("device number {:?}", info.device_number))?;
        let mut layers = imageguard_volume::layers::beneath(major, minor);
        // btrfs's superblock device is an anonymous one: its block devices are its members,
        // found from the device it was mounted from.
        if info.fstype == "btrfs" {
            use std::os::unix::fs::FileTypeExt;
            use std::os::unix::fs::MetadataExt;
            let from = std::fs::metadata(&info.device)
                .ok()
                .filter(|m| m.file_type().is_block_device())
                .map(|m| (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())));
            let members = from.map(imageguard_volume::layers::btrfs_members);
            match members {
                Some(members) if !members.is_empty() => {
                    for m in members {
                        let below = imageguard_volume::layers::beneath(m.0, m.1);
                        layers.devices.push(m);
                        layers.devices.extend(below.devices);
                        layers.char_devices.extend(below.char_devices);
                        layers.backing_files.extend(below.backing_files);
                    }
                    layers.devices.sort();
                    layers.devices.dedup();
                    layers.char_devices.sort();
                    layers.char_devices.dedup();
                    layers.backing_files.sort();
                    layers.backing_files.dedup();
                }
                _ => {
                    log::warn!(
                        "kernel shield: the btrfs devices of {} not found: not shielded",
                        info.mount_point.display()
                    );
                    cover.uncovered.push(format!(
                        "its devices ({} not found in /sys/fs/btrfs)",
                        info.device
                    ));
                }
            }
        }
        for f in &layers.backing_files {
            let on_btrfs = imageguard_volume::fs_kind::on_btrfs(f);
            let mut files_fs = None;
            if on_btrfs && btrfs {
                let fs = std::fs::canonicalize(f)
                    .ok()
                    .and_then(|p| table.containing(&p).map(|e| kernel_dev(e.major, e.minor)));
                if fs.is_none() {
                    log::warn!(
                        "kernel shield: image file {}: no mount of its btrfs: not shielded",
                        f.display()
                    );
                    cover.uncovered.push(format!(
                        "image file {} (its btrfs mount not found)",
                        f.display()
                    ));
                    continue;
                }
                files_fs = fs;
            } else if on_btrfs {
                log::warn!(
                    "kernel shield: image file {} is {ON_BTRFS}: not shielded",
                    f.display()
                );
                cover
                    .uncovered
                    .push(format!("image file {} ({ON_BTRFS})", f.display()));
                continue;
            }
            match kernel_identities(f) {
                Ok(ids) => cover
                    .files
                    .extend(ids.into_iter().map(|(dev, ino)| ImageFile {
                        dev,
                        ino,
                        btrfs_fs: files_fs,
                        path: f.clone(),
                    })),
                Err(e) => log::warn!("kernel shield: image file {}: {e}", f.display()),
            }
        }
        cover.sb = Some(kernel_dev(major, minor));
        cover.devices = layers
            .devices
            .iter()
            .map(|&(a, b)| kernel_dev(a, b))
            .collect();
        cover.char_devices = layers
            .char_devices
            .iter()
            .map(|&(a, b)| kernel_dev(a, b))
            .collect();
        Ok(cover)
    }
}

/// The host mount of the file system a protected folder of `info` lies on (the guard over it
/// left aside): the deepest mount of its device above the folder.
fn host_mount<'t>(
    table: &'t imageguard_volume::MountTable,
    info: &VolumeInfo,
) -> Option<&'t imageguard_volume::MountEntry> {
    table
        .entries
        .iter()
        .filter(|e| {
            e.device_number() == info.device_number
                && e.fstype != imageguard_volume::backing::GUARD_FSTYPE
                && info.mount_point.starts_with(&e.mount_point)
        })
        .max_by_key(|e| e.mount_point.components().count())
}

/// The folder a volume of `info` protects, as a path from its file system's root (the shield
/// names what it refused that way), through its [`host_mount`].
fn folder_from_root(table: &imageguard_volume::MountTable, info: &VolumeInfo) -> PathBuf {
    match host_mount(table, info).and_then(|e| {
        Some(
            e.root
                .join(info.mount_point.strip_prefix(&e.mount_point).ok()?),
        )
    }) {
        Some(p) => p,
        None => info.mount_point.clone(),
    }
}

impl Cover {
    /// The path of what `r` was refused on, when that lies in this cover's folder (as far as
    /// the names the shield sent tell; a path too deep for them is taken as inside).
    fn in_folder(&self, r: &Refusal) -> Option<String> {
        let (dev, _, from_root) = self.folder.as_ref()?;
        if *dev != r.dev && self.btrfs_fs != Some(r.dev) {
            return None;
        }
        if r.path.starts_with('…') {
            return Some(format!("{}/{}", self.mount_point.display(), r.path));
        }
        let rel = from_root.strip_prefix("/").unwrap_or(from_root);
        let rest = Path::new(&r.path).strip_prefix(rel).ok()?;
        Some(self.mount_point.join(rest).display().to_string())
    }

    /// Whether it marks the folder `ino` of `dev`.
    fn has_folder(&self, dev: u32, ino: u64) -> bool {
        self.folder
            .as_ref()
            .is_some_and(|f| (f.0, f.1) == (dev, ino))
    }
}

/// Let go of what `gone` shielded that no cover in `covers` needs.
fn release_unneeded(
    shield: &mut Shield,
    gone: Cover,
    covers: &BTreeMap<PathBuf, Cover>,
) -> Result<()> {
    let others: Vec<&Cover> = covers.values().collect();
    if let Some(g) = gone.guard {
        if !others.iter().any(|c| c.guard == Some(g)) {
            shield.release_guard(g)?;
        }
    }
    if let Some(sb) = gone.sb {
        if !others.iter().any(|c| c.sb == Some(sb)) {
            shield.release(sb)?;
        }
    }
    for d in gone.devices {
        if !others.iter().any(|c| c.devices.contains(&d)) {
            shield.release_device(d)?;
        }
    }
    for d in gone.char_devices {
        if !others.iter().any(|c| c.char_devices.contains(&d)) {
            shield.release_char_device(d)?;
        }
    }
    for f in gone.files {
        if !others
            .iter()
            .any(|c| c.files.iter().any(|o| (o.dev, o.ino) == (f.dev, f.ino)))
        {
            shield.release_inode(f.dev, f.ino)?;
        }
    }
    if let Some((dev, ino, _)) = gone.folder {
        if !others.iter().any(|c| c.has_folder(dev, ino)) {
            shield.release_dir(dev, ino)?;
        }
    }
    for (dev, ino) in gone.linked {
        if !others.iter().any(|c| c.linked.contains(&(dev, ino))) {
            shield.release_inode(dev, ino)?;
        }
    }
    Ok(())
}

/// What would change the next service's behaviour, held while the admin lock is set: files
/// nobody but the service may change, rename or remove, folders whose entries (and theirs) are
/// the service's alone, and names nobody else may create, remove or replace in a folder.
#[derive(Debug, Clone, Default)]
pub struct OwnFiles {
    pub files: Vec<PathBuf>,
    pub folders: Vec<PathBuf>,
    /// (folder, name).
    pub names: Vec<(PathBuf, String)>,
}

/// What one held identity stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeldKind {
    File,
    Folder,
    /// A name in the folder the identity is.
    Name(String),
}

/// One identity held for the admin lock.
#[derive(Debug, Clone)]
struct Held {
    dev: u32,
    ino: u64,
    kind: HeldKind,
    /// Where its file system is mounted (to name what was refused in it).
    mount_point: PathBuf,
    /// Its file system's superblock device when that is btrfs (`dev` is its subvolume's).
    btrfs_fs: Option<u32>,
}

/// The identities of `path` (on overlayfs, its layers' too), with its file system's mount point.
fn held_identities(path: &Path, kind: HeldKind) -> Vec<Held> {
    let mount = std::fs::canonicalize(path).ok().and_then(|p| {
        imageguard_volume::MountTable::read()
            .ok()?
            .containing(&p)
            .map(|e| (e.mount_point.clone(), e.fstype.clone(), e.major, e.minor))
    });
    let btrfs_fs = mount
        .as_ref()
        .filter(|m| m.1 == "btrfs")
        .map(|m| kernel_dev(m.2, m.3));
    let mount_point = mount.map_or_else(|| PathBuf::from("/"), |m| m.0);
    kernel_identities(path)
        .unwrap_or_default()
        .into_iter()
        .map(|(dev, ino)| Held {
            dev,
            ino,
            kind: kind.clone(),
            mount_point: mount_point.clone(),
            btrfs_fs,
        })
        .collect()
}

/// The shield, as the service runs it.
pub struct KernelShield {
    mode: KernelShieldMode,
    /// Why it is not running (`auto` on a kernel that cannot), when it is not.
    unavailable: Option<String>,
    shield: Mutex<Option<Shield>>,
    covers: Mutex<BTreeMap<PathBuf, Cover>>,
    /// The certified programs as the shield knows them.
    certified: Mutex<super::kernel_certified::CertifiedInKernel>,
    /// What the admin lock holds of imageguard's own files and folders.
    held: Mutex<Vec<Held>>,
    runtime_dir: PathBuf,
}

/// What the service logs when the shield ends a process's certification (not a refusal: the
/// process goes on, no longer certified).
pub fn uncertified(r: &Refusal) -> String {
    let why = imageguard_shield::Uncertified::of(r.signal)
        .map_or_else(|| format!("reason {}", r.signal), |u| u.describe(&r.path));
    format!(
        "kernel shield: process {} ({}, uid {}) is no longer certified: {why}",
        r.tgid, r.comm, r.uid
    )
}

/// Whether `dir` is the root of a bpf file system.
fn is_bpffs(dir: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == BPF_FS_MAGIC)
}

impl KernelShield {
    /// Start the shield as `mode` says: `required` fails when this kernel cannot run it;
    /// `auto` runs without it and says why.
    pub fn start(mode: KernelShieldMode, runtime_dir: &Path) -> Result<KernelShield> {
        let mut ks = KernelShield {
            mode,
            unavailable: None,
            shield: Mutex::new(None),
            covers: Mutex::new(BTreeMap::new()),
            certified: Mutex::default(),
            held: Mutex::new(vec![]),
            runtime_dir: runtime_dir.to_path_buf(),
        };
        if mode == KernelShieldMode::Off {
            return Ok(ks);
        }
        match Self::load(runtime_dir) {
            Ok(s) => {
                *ks.shield.lock() = Some(s);
                // The runtime directory's own mount carries the pins' file system.
                ks.hold(runtime_dir)?;
            }
            Err(e) if mode == KernelShieldMode::Required => {
                return Err(e.context(
                    "the kernel shield is required ([guard] kernel_shield = \"required\"); \
                     `imageguard doctor` says what this kernel lacks",
                ))
            }
            Err(e) => ks.unavailable = Some(format!("{e:#}")),
        }
        Ok(ks)
    }

    fn load(runtime_dir: &Path) -> Result<Shield> {
        if !imageguard_shield::bpf_lsm_active() {
            // Said before anything is mounted for it.
            return Err(imageguard_shield::ShieldError::LsmInactive(
                imageguard_shield::active_lsms().trim().to_string(),
            )
            .into());
        }
        let dir = pin_dir(runtime_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // The runtime directory becomes a private mount of its own (as the keeper makes it)
        // before the bpf file system goes under it: made later, it would hide the pins from
        // the next service, which would load a second shield beside the first.
        let rd = runtime_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", runtime_dir.display()))?;
        let table = imageguard_volume::MountTable::read().context("reading the mount table")?;
        if table.at(&rd).is_none() {
            mountapi::bind(&rd, &rd).with_context(|| format!("bind-mounting {}", rd.display()))?;
        }
        mountapi::make_private(&rd, false)
            .with_context(|| format!("making {} private", rd.display()))?;
        if !is_bpffs(&dir) {
            // A bpf file system of the shield's own: its pins are the only files in it.
            rustix::mount::mount(
                "imageguard-shield",
                &dir,
                "bpf",
                rustix::mount::MountFlags::NOSUID
                    | rustix::mount::MountFlags::NODEV
                    | rustix::mount::MountFlags::NOEXEC,
                c"mode=0700",
            )
            .with_context(|| format!("mounting a bpf file system on {}", dir.display()))?;
        }
        let task = Task::current().context("the service's own process")?;
        let mut shield = Shield::load_pinned(task, &dir)?;
        release_emptied_devices(&mut shield)?;
        Ok(shield)
    }

    /// Nobody but the service may unmount the mount rooted at `path`, rename or remove it (the
    /// runtime directory's mount, which the pins' file system sits on; the pinned keeper
    /// namespace): held up for as long as the shield is pinned, whether a service lives or not.
    pub fn hold(&self, path: &Path) -> Result<()> {
        let mut guard = self.shield.lock();
        let Some(shield) = guard.as_mut() else {
            return Ok(());
        };
        for (dev, ino) in kernel_identities(path).with_context(|| format!("{}", path.display()))? {
            shield.protect_inode(dev, ino)?;
        }
        Ok(())
    }

    /// Whether the shield runs.
    pub fn is_on(&self) -> bool {
        self.shield.lock().is_some()
    }

    /// In words, for `status`.
    pub fn describe(&self) -> String {
        match (self.mode, &self.unavailable) {
            (KernelShieldMode::Off, _) => "off ([guard] kernel_shield = \"off\")".into(),
            (_, Some(why)) => format!(
                "unavailable: {why} (the FUSE guard protects alone; `imageguard doctor` says \
                 how to turn it on)"
            ),
            (_, None) => format!(
                "on ({} volume(s) shielded: only the service changes them, whatever mount, \
                 descriptor or device leads there)",
                self.covers.lock().len()
            ),
        }
    }

    /// What the shield covers of the protected volume at `mount_point`, in words (`None`: not
    /// shielded).
    pub fn describe_volume(&self, mount_point: &Path) -> Option<String> {
        let covers = self.covers.lock();
        let c = covers.get(mount_point)?;
        let mut parts = vec![];
        if c.guard.is_some() {
            parts.push("its guard's mount (nothing mounted on or in it, no unmount)".to_string());
        }
        if c.sb.is_some() {
            parts.push("its file system".to_string());
        }
        if c.folder.is_some() {
            parts.push("everything in the folder, whatever mount leads there".to_string());
        }
        if !c.linked.is_empty() {
            parts.push(format!(
                "{} backup(s) hard-linked from outside it, by every name",
                c.linked.len()
            ));
        }
        if !c.devices.is_empty() {
            parts.push(format!("{} device(s) beneath", c.devices.len()));
        }
        if !c.char_devices.is_empty() {
            parts.push(format!(
                "{} command node(s) of its disk (SCSI generic, bsg, NVMe generic)",
                c.char_devices.len()
            ));
        }
        let mut files: Vec<&PathBuf> = c.files.iter().map(|f| &f.path).collect();
        files.dedup();
        for f in files {
            parts.push(format!("image file {}", f.display()));
        }
        if !c.uncovered.is_empty() {
            parts.push(format!(
                "not {}: the FUSE guard alone",
                c.uncovered.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Shield the volume just protected: its guard (nobody mounts on or inside it, unmounts or
    /// moves it), and for a whole volume its superblock, the devices beneath it and its image
    /// files. A cover this mount point had (its guard mounted again) is replaced, the new one
    /// shielded before what only the old one needed is let go. Nothing when the shield is not
    /// running.
    pub fn cover(
        &self,
        info: &VolumeInfo,
        volume: VolumeRef,
        backing_root: (u64, u64),
        linked: impl IntoIterator<Item = u64>,
    ) -> Result<()> {
        let mut guard = self.shield.lock();
        let Some(shield) = guard.as_mut() else {
            return Ok(());
        };
        let btrfs = match shield.knows_btrfs() {
            Ok(known) => known,
            Err(e) => {
                log::warn!("kernel shield: {e}");
                false
            }
        };
        let cover = Cover::of(info, volume, backing_root, linked, btrfs)?;
        if let Some(g) = cover.guard {
            shield.protect_guard(g)?;
        }
        if let Some(sb) = cover.sb {
            shield.protect(sb)?;
        }
        for &d in &cover.devices {
            shield.protect_device(d)?;
        }
        for &d in &cover.char_devices {
            shield.protect_char_device(d)?;
        }
        for f in &cover.files {
            match f.btrfs_fs {
                Some(fs) => shield.protect_inode_on(f.dev, f.ino, fs)?,
                None => shield.protect_inode(f.dev, f.ino)?,
            }
        }
        if let Some((dev, ino, _)) = &cover.folder {
            match (cover.btrfs_fs, cover.sb) {
                (Some(fs), None) => shield.protect_dir_on(*dev, *ino, fs)?,
                _ => shield.protect_dir(*dev, *ino)?,
            }
        }
        for &(dev, ino) in &cover.linked {
            match (cover.btrfs_fs, &cover.folder) {
                (Some(fs), Some(_)) => shield.protect_inode_on(dev, ino, fs)?,
                _ => shield.protect_inode(dev, ino)?,
            }
        }
        let mut covers = self.covers.lock();
        if let Some(old) = covers.insert(info.mount_point.clone(), cover) {
            release_unneeded(shield, old, &covers)?;
        }
        Ok(())
    }

    /// Stop shielding the volume at `mount_point` (given back or gone): what no other
    /// protected volume needs is released.
    pub fn uncover(&self, mount_point: &Path) -> Result<()> {
        let mut guard = self.shield.lock();
        let mut covers = self.covers.lock();
        let Some(gone) = covers.remove(mount_point) else {
            return Ok(());
        };
        let Some(shield) = guard.as_mut() else {
            return Ok(());
        };
        release_unneeded(shield, gone, &covers)
    }

    /// The certified programs are those of `list` (at start, after `certify` and `uncertify`,
    /// and on every watchdog round, so a program replaced at its path is followed): each file
    /// as exec opens it now (on overlayfs, its layers' identities too), so that nothing but the
    /// service reaches into their processes, with the code its closure may load (see
    /// [`super::kernel_certified`]).
    pub fn set_certified(&self, list: &CertifiedList) -> Result<()> {
        let mut guard = self.shield.lock();
        let Some(shield) = guard.as_mut() else {
            return Ok(());
        };
        let table = imageguard_volume::MountTable::read().context("reading the mount table")?;
        self.certified.lock().sync(shield, list, |path| {
            kernel_identities_in(&table, path).unwrap_or_default()
        })
    }

    /// The admin lock is set or removed: while it is set, no other task may signal the service,
    /// nor change `own` (its program, configuration, units and state).
    pub fn set_admin_locked(&self, locked: bool, own: &OwnFiles) -> Result<()> {
        let mut guard = self.shield.lock();
        let Some(shield) = guard.as_mut() else {
            return Ok(());
        };
        let mut held = self.held.lock();
        let covers = self.covers.lock();
        for h in held.drain(..) {
            match &h.kind {
                // Unless a protected folder is that very folder.
                HeldKind::Folder if covers.values().any(|c| c.has_folder(h.dev, h.ino)) => {}
                HeldKind::Folder => shield.release_dir(h.dev, h.ino)?,
                HeldKind::File => shield.release_inode(h.dev, h.ino)?,
                HeldKind::Name(n) => shield.release_name(h.dev, h.ino, n)?,
            }
        }
        if locked {
            let btrfs = shield.knows_btrfs().unwrap_or_else(|e| {
                log::warn!("kernel shield: {e}");
                false
            });
            let files = own
                .files
                .iter()
                .flat_map(|f| held_identities(f, HeldKind::File));
            let folders = own
                .folders
                .iter()
                .flat_map(|f| held_identities(f, HeldKind::Folder));
            let names = own
                .names
                .iter()
                .flat_map(|(dir, n)| held_identities(dir, HeldKind::Name(n.clone())));
            for h in files.chain(folders).chain(names) {
                match (&h.kind, h.btrfs_fs) {
                    (_, Some(_)) if !btrfs => log::warn!(
                        "kernel shield: {} is {ON_BTRFS}: the admin lock holds it through the \
                         FUSE guard and the service alone",
                        h.mount_point.display()
                    ),
                    (HeldKind::Folder, Some(fs)) => shield.protect_dir_on(h.dev, h.ino, fs)?,
                    (HeldKind::File, Some(fs)) => shield.protect_inode_on(h.dev, h.ino, fs)?,
                    (HeldKind::Folder, None) => shield.protect_dir(h.dev, h.ino)?,
                    (HeldKind::File, None) => shield.protect_inode(h.dev, h.ino)?,
                    (HeldKind::Name(n), _) => shield.hold_name(h.dev, h.ino, n)?,
                }
                held.push(h);
            }
        }
        shield.set_admin_locked(locked)?;
        Ok(())
    }

    /// What the shield refuses, for the thread that logs it (once).
    pub fn refusals(&self) -> Option<Refusals> {
        self.shield.lock().as_mut().and_then(|s| s.refusals())
    }

    /// Event 320 for a refusal: the volume whose superblock, device or image file it was
    /// refused on, and the path tried.
    pub fn event_of(&self, r: &Refusal) -> Event {
        let covers = self.covers.lock();
        let cover = covers.values().find(|c| match r.what {
            Refused::OpenDevice => {
                c.sb == Some(r.dev) || c.devices.contains(&r.dev) || c.char_devices.contains(&r.dev)
            }
            _ => {
                c.sb == Some(r.dev)
                    || c.guard == Some(r.dev)
                    || c.files.iter().any(|f| f.names(r))
                    || c.linked
                        .iter()
                        .any(|&(dev, ino)| names_file(dev, ino, c.btrfs_fs, r))
                    || c.in_folder(r).is_some()
                    || (r.what == Refused::SubvolumeDelete
                        && (c.btrfs_fs == Some(r.dev)
                            || c.files.iter().any(|f| f.btrfs_fs == Some(r.dev))))
            }
        });
        let file = match (cover, r.what) {
            (_, Refused::Ptrace | Refused::PtraceCertified | Refused::Signal) => {
                format!("/proc/{}", r.target)
            }
            (_, Refused::ExecTraced) => r.path.trim_start_matches("…/").to_string(),
            (_, Refused::BpfLoad) => "bpf(BPF_PROG_LOAD)".to_string(),
            // Where the mount was to go, or the mount point unmounted (on whichever file
            // system holds it).
            (_, Refused::MoveMount) => r.path.clone(),
            (_, Refused::Undo) => match r.signal {
                1 => format!("BPF program id {}", r.target),
                2 => format!("BPF map id {}", r.target),
                3 => format!("BPF link id {}", r.target),
                _ => pin_dir(&self.runtime_dir).display().to_string(),
            },
            (_, Refused::OpenDevice) => format!(
                "device {}:{} ({})",
                r.dev >> 20,
                r.dev & 0xfffff,
                r.path.rsplit('/').next().unwrap_or(&r.path)
            ),
            (Some(c), _) if c.sb == Some(r.dev) || c.guard == Some(r.dev) => {
                c.mount_point.join(&r.path).display().to_string()
            }
            (Some(c), _) if c.in_folder(r).is_some() => c.in_folder(r).unwrap_or_default(),
            (Some(c), _) => c
                .files
                .iter()
                .find(|f| f.names(r))
                .map_or_else(|| r.path.clone(), |f| f.path.display().to_string()),
            // One of imageguard's own files, or an entry of its folders, held by the admin lock.
            (None, _) => match self.held.lock().iter().find(|h| h.dev == r.dev) {
                Some(h) if !r.path.starts_with('…') => {
                    h.mount_point.join(&r.path).display().to_string()
                }
                _ => r.path.clone(),
            },
        };
        let exe = std::fs::read_link(format!("/proc/{}/exe", r.tgid))
            .map_or_else(|_| r.comm.clone(), |p| p.display().to_string());
        let detail = match r.what {
            Refused::Ptrace => format!(
                "by the kernel shield (uid {}): reaching into the service ({}: ptrace, its \
                 memory, descriptors, root, working folder or namespaces) is refused",
                r.uid, r.path
            ),
            Refused::PtraceCertified => format!(
                "by the kernel shield (uid {}): reaching into a certified process ({}: ptrace, \
                 its memory, descriptors, root, working folder or namespaces) is refused",
                r.uid, r.path
            ),
            Refused::ExecTraced => format!(
                "by the kernel shield (uid {}): a traced process may not execute a certified \
                 program (its tracer would hold it)",
                r.uid
            ),
            Refused::BpfLoad => format!(
                "by the kernel shield (uid {}): a BPF program of type {} (attach type {}) could \
                 overrule it (an fmod_ret program or an extension always; with the admin lock \
                 set, every tracing program: it may write a certified process's memory)",
                r.uid, r.target, r.signal
            ),
            Refused::Signal => format!(
                "by the kernel shield (uid {}): signal {} to the service ({}) refused while the \
                 admin lock is set (`imageguard stop` with the passphrase stops it)",
                r.uid, r.signal, r.path
            ),
            Refused::Undo => format!(
                "by the kernel shield (uid {}): undoing the shield (its pins, programs, maps or \
                 links) is the service's alone",
                r.uid
            ),
            Refused::Mount => format!(
                "by the kernel shield (uid {}): mounting the protected volume again, or a file \
                 system on or inside it, is the service's alone",
                r.uid
            ),
            Refused::Unmount => format!(
                "by the kernel shield (uid {}): unmounting or moving the guard or the hidden \
                 volume is the service's alone (`imageguard unprotect` or `eject`)",
                r.uid
            ),
            Refused::MoveMount => format!(
                "by the kernel shield (uid {}): where the guards are mounted, moving a mount \
                 (mount --move), pivoting the root, unmounting a mount with mounts beneath it \
                 (it would take a guard along), or mounting where mounts would be hidden \
                 beneath is the service's alone",
                r.uid
            ),
            Refused::SubvolumeDelete => format!(
                "by the kernel shield (uid {}): deleting a btrfs subvolume, with every file in \
                 it, on a file system that holds a protected volume, folder or image file is \
                 the service's alone",
                r.uid
            ),
            Refused::Uncertified => uncertified(r),
            Refused::Policy => policy_refusal(r),
            _ if cover.is_none() => format!(
                "by the kernel shield (uid {}): with the admin lock set, imageguard's program, \
                 configuration, units (and their names in systemd's folders) and state are the \
                 service's alone",
                r.uid
            ),
            _ => format!(
                "by the kernel shield (uid {}, outside the guard: only the service may change \
                 a protected volume)",
                r.uid
            ),
        };
        let mut e = Event::new(EventKind::BlockedFileAccess)
            .with_process(exe, r.tgid)
            .with_file(file)
            .with_detail(detail);
        if let Some(op) = operation_of(r) {
            e = e.with_operation(op);
        }
        if let Some(c) = cover {
            e = e.with_volume(c.volume.clone());
        }
        e
    }

    /// The service stops. `keep`: the volumes stay closed (a stop the admin lock did not
    /// authorize, a retention lock in force): the shield stays pinned and refusing until the
    /// next service takes it over. Otherwise it is unpinned and its file system unmounted, and
    /// it detaches as this process ends.
    pub fn stop(&self, keep: bool) {
        let Some(shield) = self.shield.lock().take() else {
            return;
        };
        if keep {
            return;
        }
        if let Err(e) = shield.unpin() {
            log::warn!("kernel shield: {e}");
        }
        let dir = pin_dir(&self.runtime_dir);
        if let Err(e) = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH) {
            log::warn!("kernel shield: unmounting {}: {e}", dir.display());
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Let go of the block devices a predecessor shielded that hold nothing now (their size 0: a
/// loop device detached after its service was killed, a drive whose medium is gone): whatever
/// takes the number next (the next `losetup -f`) is another device, and would stay unwritable.
/// A device that vanished altogether stays shielded (it may come back with its backups).
fn release_emptied_devices(shield: &mut Shield) -> Result<()> {
    let empty = |dev: u32| {
        std::fs::read_to_string(format!(
            "/sys/dev/block/{}:{}/size",
            dev >> 20,
            dev & 0xfffff
        ))
        .is_ok_and(|s| s.trim() == "0")
    };
    let (sb, beneath) = shield.shielded_block_devices();
    // A superblock's device of major 0 is no block device (tmpfs, btrfs): never "empty".
    let sb = sb.into_iter().filter(|&d| d >> 20 != 0).map(|d| (d, true));
    for (dev, own) in sb.chain(beneath.into_iter().map(|d| (d, false))) {
        if !empty(dev) {
            continue;
        }
        log::info!(
            "kernel shield: device {}:{} holds nothing now: let go",
            dev >> 20,
            dev & 0xfffff
        );
        if own {
            shield.release(dev)?;
        } else {
            shield.release_device(dev)?;
        }
    }
    Ok(())
}

/// What the kernel backend's refusal says: why (the verdict; the caller not certified), and
/// the entry's class, as the FUSE guard's refusals say it.
fn policy_refusal(r: &Refusal) -> String {
    let Some(case) = r.case else {
        return format!("by the kernel backend (uid {})", r.uid);
    };
    let why = match case.verdict {
        VerdictCode::HeldKeyMaterial => "key material: only added to",
        VerdictCode::HeldYoung => "younger than the retention lock",
        _ if case.certified => "refused to certified programs too",
        _ => "not a certified backup program",
    };
    let reason = match case.class.class("a configured pattern") {
        imageguard_policy::Class::Backup(reason) => reason.to_string(),
        imageguard_policy::Class::Ordinary => String::new(),
    };
    format!("by the kernel backend (uid {}): {why}; {reason}", r.uid)
}

/// The policy's name for what the shield refused (none for reaching into the service).
fn operation_of(r: &Refusal) -> Option<Operation> {
    Some(match r.what {
        Refused::Policy => return r.case.map(|c| c.op),
        Refused::OpenWrite | Refused::OpenDevice => Operation::OpenWrite,
        Refused::Unlink => Operation::Delete,
        Refused::Rmdir => Operation::RemoveDirectory,
        Refused::Rename => Operation::Rename,
        Refused::Link => Operation::HardLink,
        Refused::Create => Operation::CreateInStructure,
        Refused::SetXattr => Operation::SetXattr,
        Refused::RemoveXattr => Operation::RemoveXattr,
        Refused::Truncate => Operation::Truncate,
        Refused::Chmod | Refused::Chown | Refused::SetAttr => Operation::SetAttributes,
        Refused::Ptrace
        | Refused::Signal
        | Refused::Undo
        | Refused::Mount
        | Refused::Unmount
        | Refused::PtraceCertified
        | Refused::ExecTraced
        | Refused::BpfLoad
        | Refused::MoveMount
        | Refused::Uncertified => return None,
        Refused::SubvolumeDelete => Operation::Delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_runs_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KernelShield::start(KernelShieldMode::Off, dir.path()).unwrap();
        assert!(!ks.is_on());
        assert!(ks.describe().starts_with("off"));
        assert!(!pin_dir(dir.path()).exists());
    }
}
