//! What lies beneath a volume's block device, as sysfs tells: the whole disk of a partition, the
//! devices under a device-mapper or md device (`slaves/`), and the image file a loop device
//! reads (`loop/backing_file`), each layer's own layers too. Writing any of them changes the
//! volume's blocks without its file system knowing.

use std::path::{Path, PathBuf};

/// The layers beneath one block device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layers {
    /// Block devices (major, minor) beneath it, not the device itself.
    pub devices: Vec<(u32, u32)>,
    /// Image files loop devices among them (or itself) read.
    pub backing_files: Vec<PathBuf>,
    /// Character devices that send commands to the disks among them (or itself): SCSI generic
    /// (`/dev/sgN`), block SCSI generic (`/dev/bsg/...`) and NVMe generic (`/dev/ngXnY`)
    /// nodes, through which a disk is written without opening it for writing.
    pub char_devices: Vec<(u32, u32)>,
}

/// How deep layers are followed (a loop over a partition of a loop over an md device...).
const MAX_DEPTH: usize = 8;

/// The layers beneath the block device `major:minor`, from `/sys`.
pub fn beneath(major: u32, minor: u32) -> Layers {
    beneath_in(Path::new("/sys"), major, minor)
}

/// The same, from a sysfs mounted at `sys` (tests hand a made-up tree).
pub fn beneath_in(sys: &Path, major: u32, minor: u32) -> Layers {
    let mut layers = Layers::default();
    walk(sys, (major, minor), 0, &mut layers);
    layers.devices.retain(|&d| d != (major, minor));
    let disks: Vec<(u32, u32)> = std::iter::once((major, minor))
        .chain(layers.devices.iter().copied())
        .collect();
    for d in disks {
        command_nodes(sys, d, &mut layers.char_devices);
    }
    layers
}

fn walk(sys: &Path, dev: (u32, u32), depth: usize, out: &mut Layers) {
    if depth > MAX_DEPTH {
        return;
    }
    let node = sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    let Ok(node) = node.canonicalize() else {
        return;
    };
    let mut below = vec![];
    // A partition: its whole disk is the folder above it.
    if node.join("partition").exists() {
        if let Some(disk) = node.parent().and_then(|p| read_dev(&p.join("dev"))) {
            below.push(disk);
        }
    }
    if let Ok(entries) = std::fs::read_dir(node.join("slaves")) {
        for e in entries.flatten() {
            if let Some(d) = read_dev(&e.path().join("dev")) {
                below.push(d);
            }
        }
    }
    if let Ok(file) = std::fs::read_to_string(node.join("loop/backing_file")) {
        let file = PathBuf::from(file.trim_end_matches('\n'));
        if !out.backing_files.contains(&file) {
            out.backing_files.push(file);
        }
    }
    for d in below {
        if !out.devices.contains(&d) {
            out.devices.push(d);
            walk(sys, d, depth + 1, out);
        }
    }
}

/// The inodes the kernel may know the file at `path` by, as (major, minor, inode): the one
/// `stat` gives, and on overlayfs (where `stat` gives a per-layer pseudo device) the overlay's
/// own inode and the file in its upper and lower layers, each of which, written, changes what
/// the path reads.
pub fn file_identities(path: &Path) -> std::io::Result<Vec<(u32, u32, u64)>> {
    file_identities_in(&crate::MountTable::read()?, path)
}

/// [`file_identities`] with the mount table already read (`table`), for many paths at once.
pub fn file_identities_in(
    table: &crate::MountTable,
    path: &Path,
) -> std::io::Result<Vec<(u32, u32, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    let mut ids = vec![(libc::major(m.dev()), libc::minor(m.dev()), m.ino())];
    let path = path.canonicalize()?;
    let Some(mount) = table.containing(&path) else {
        return Ok(ids);
    };
    if mount.fstype != "overlay" {
        return Ok(ids);
    }
    ids.push((mount.major, mount.minor, m.ino()));
    let Ok(below_mount) = path.strip_prefix(&mount.mount_point) else {
        return Ok(ids);
    };
    // The path inside the overlay (a mount of one of its folders starts there).
    let rel = mount
        .root
        .strip_prefix("/")
        .unwrap_or(&mount.root)
        .join(below_mount);
    let options = mount.super_options.split(',');
    let layers = options.flat_map(|o| match o.split_once('=') {
        Some(("upperdir", d)) => vec![PathBuf::from(d)],
        Some(("lowerdir", ds)) => ds.split(':').map(PathBuf::from).collect(),
        _ => vec![],
    });
    for layer in layers {
        if let Ok(lm) = std::fs::metadata(layer.join(&rel)) {
            let id = (libc::major(lm.dev()), libc::minor(lm.dev()), lm.ino());
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The command nodes of the disk `dev` (its `device/` folder in sysfs: `scsi_generic/*`,
/// `bsg/*`, and for NVMe the controller's `ng*` namespaces).
fn command_nodes(sys: &Path, dev: (u32, u32), out: &mut Vec<(u32, u32)>) {
    let device = sys.join(format!("dev/block/{}:{}/device", dev.0, dev.1));
    let mut dev_files = vec![];
    for sub in ["scsi_generic", "bsg"] {
        if let Ok(entries) = std::fs::read_dir(device.join(sub)) {
            dev_files.extend(entries.flatten().map(|e| e.path().join("dev")));
        }
    }
    if let Ok(entries) = std::fs::read_dir(&device) {
        dev_files.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("ng"))
                .map(|e| e.path().join("dev")),
        );
    }
    for f in dev_files {
        if let Some(d) = read_dev(&f) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
}

/// A sysfs `dev` file: "major:minor".
/// The block devices of the btrfs file system that `member` (major, minor) belongs to, itself
/// included: a btrfs superblock's device is an anonymous one (major 0), and its devices are
/// found in `/sys/fs/btrfs/FSID/devices/`, one link per member; none when `member` is in no
/// mounted btrfs.
pub fn btrfs_members(member: (u32, u32)) -> Vec<(u32, u32)> {
    btrfs_members_in(Path::new("/sys"), member)
}

/// The same, from a sysfs mounted at `sys`.
pub fn btrfs_members_in(sys: &Path, member: (u32, u32)) -> Vec<(u32, u32)> {
    let Ok(filesystems) = std::fs::read_dir(sys.join("fs/btrfs")) else {
        return vec![];
    };
    for fs in filesystems.flatten() {
        let Ok(devices) = std::fs::read_dir(fs.path().join("devices")) else {
            continue;
        };
        let members: Vec<(u32, u32)> = devices
            .flatten()
            .filter_map(|d| read_dev(&d.path().join("dev")))
            .collect();
        if members.contains(&member) {
            return members;
        }
    }
    vec![]
}

fn read_dev(file: &Path) -> Option<(u32, u32)> {
    crate::mountinfo::parse_device_number(std::fs::read_to_string(file).ok()?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_btrfs_member_brings_its_file_systems_other_devices() {
        let sys = tempfile::tempdir().unwrap();
        let s = sys.path();
        for (name, dev) in [("loop0", "7:0"), ("loop1", "7:1"), ("sda1", "8:1")] {
            std::fs::create_dir_all(s.join("devices/virtual/block").join(name)).unwrap();
            std::fs::write(s.join("devices/virtual/block").join(name).join("dev"), dev).unwrap();
        }
        let fs_a = s.join("fs/btrfs/aaaa/devices");
        let fs_b = s.join("fs/btrfs/bbbb/devices");
        std::fs::create_dir_all(&fs_a).unwrap();
        std::fs::create_dir_all(&fs_b).unwrap();
        symlink(s.join("devices/virtual/block/loop0"), fs_a.join("loop0")).unwrap();
        symlink(s.join("devices/virtual/block/loop1"), fs_a.join("loop1")).unwrap();
        symlink(s.join("devices/virtual/block/sda1"), fs_b.join("sda1")).unwrap();
        let mut m = btrfs_members_in(s, (7, 1));
        m.sort();
        assert_eq!(m, vec![(7, 0), (7, 1)]);
        assert_eq!(btrfs_members_in(s, (8, 1)), vec![(8, 1)]);
        assert!(btrfs_members_in(s, (9, 9)).is_empty());
    }

    /// A made-up sysfs: sda (8:0) with partition sda1 (8:1); dm-0 (253:0) over sda1 and md0
    /// (9:0); md0 over loop0 (7:0), which reads /images/disk.img.
    fn sysfs(root: &Path) {
        let dev = |path: &str, n: &str| {
            std::fs::create_dir_all(root.join(path)).unwrap();
            std::fs::write(root.join(path).join("dev"), format!("{n}\n")).unwrap();
        };
        dev("devices/sda", "8:0");
        dev("devices/host0/target0/0:0:0:0/scsi_generic/sg0", "21:0");
        dev("devices/host0/target0/0:0:0:0/bsg/0:0:0:0", "247:0");
        symlink(
            root.join("devices/host0/target0/0:0:0:0"),
            root.join("devices/sda/device"),
        )
        .unwrap();
        dev("devices/sda/sda1", "8:1");
        std::fs::write(root.join("devices/sda/sda1/partition"), "1\n").unwrap();
        dev("devices/dm-0", "253:0");
        dev("devices/md0", "9:0");
        dev("devices/loop0", "7:0");
        std::fs::create_dir_all(root.join("devices/loop0/loop")).unwrap();
        std::fs::write(
            root.join("devices/loop0/loop/backing_file"),
            "/images/disk.img\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("devices/dm-0/slaves")).unwrap();
        symlink(
            root.join("devices/sda/sda1"),
            root.join("devices/dm-0/slaves/sda1"),
        )
        .unwrap();
        symlink(
            root.join("devices/md0"),
            root.join("devices/dm-0/slaves/md0"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("devices/md0/slaves")).unwrap();
        symlink(
            root.join("devices/loop0"),
            root.join("devices/md0/slaves/loop0"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("dev/block")).unwrap();
        for (n, p) in [
            ("8:0", "sda"),
            ("8:1", "sda/sda1"),
            ("253:0", "dm-0"),
            ("9:0", "md0"),
            ("7:0", "loop0"),
        ] {
            symlink(root.join("devices").join(p), root.join("dev/block").join(n)).unwrap();
        }
    }

    #[test]
    fn every_layer_beneath_a_device_mapper_device_is_found() {
        let dir = tempfile::tempdir().unwrap();
        sysfs(dir.path());
        let l = beneath_in(dir.path(), 253, 0);
        let mut devices = l.devices.clone();
        devices.sort();
        assert_eq!(devices, vec![(7, 0), (8, 0), (8, 1), (9, 0)]);
        assert_eq!(l.backing_files, vec![PathBuf::from("/images/disk.img")]);
        let mut chars = l.char_devices.clone();
        chars.sort();
        assert_eq!(
            chars,
            vec![(21, 0), (247, 0)],
            "sda's SCSI generic and bsg nodes"
        );
    }

    #[test]
    fn a_partition_has_its_disk_beneath_and_a_loop_device_its_file() {
        let dir = tempfile::tempdir().unwrap();
        sysfs(dir.path());
        assert_eq!(beneath_in(dir.path(), 8, 1).devices, vec![(8, 0)]);
        let l = beneath_in(dir.path(), 7, 0);
        assert!(l.devices.is_empty());
        assert_eq!(l.backing_files, vec![PathBuf::from("/images/disk.img")]);
        assert_eq!(beneath_in(dir.path(), 1, 1), Layers::default());
    }
}
