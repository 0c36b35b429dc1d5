//! File-system identity: the UUID a volume carries, and whether it is local or a network share.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// File-system types that are network shares.
pub fn is_network_fstype(fstype: &str) -> bool {
    matches!(
        fstype,
        "nfs"
            | "nfs4"
            | "cifs"
            | "smb3"
            | "smbfs"
            | "9p"
            | "ceph"
            | "glusterfs"
            | "afs"
            | "lustre"
            | "gfs2"
            | "ocfs2"
    ) || fstype == "fuse.sshfs"
        || fstype == "fuse.rclone"
        || fstype == "fuse.s3fs"
        || fstype == "fuse.glusterfs"
}

fn format_uuid(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn read_at(dev: &mut File, offset: u64, buf: &mut [u8]) -> Option<()> {
    dev.seek(SeekFrom::Start(offset)).ok()?;
    dev.read_exact(buf).ok()
}

/// The UUID of the file system on `device`, read from its superblock (ext2/3/4, xfs, btrfs), or
/// from /dev/disk/by-uuid.
pub fn fs_uuid(device: &Path, fstype: &str) -> Option<String> {
    if let Some(u) = superblock_uuid(device, fstype) {
        return Some(u);
    }
    let canonical = device.canonicalize().ok()?;
    std::fs::read_dir("/dev/disk/by-uuid")
        .ok()?
        .flatten()
        .find_map(|e| {
            (e.path().canonicalize().ok()? == canonical)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
}

fn superblock_uuid(device: &Path, fstype: &str) -> Option<String> {
    let mut dev = File::open(device).ok()?;
    let mut uuid = [0u8; 16];
    match fstype {
        "ext2" | "ext3" | "ext4" => {
            let mut magic = [0u8; 2];
            read_at(&mut dev, 1024 + 0x38, &mut magic)?;
            if magic != [0x53, 0xEF] {
                return None;
            }
            read_at(&mut dev, 1024 + 0x68, &mut uuid)?;
        }
        "xfs" => {
            let mut magic = [0u8; 4];
            read_at(&mut dev, 0, &mut magic)?;
            if &magic != b"XFSB" {
                return None;
            }
            read_at(&mut dev, 32, &mut uuid)?;
        }
        "btrfs" => {
            let mut magic = [0u8; 8];
            read_at(&mut dev, 65536 + 0x40, &mut magic)?;
            if &magic != b"_BHRfS_M" {
                return None;
            }
            read_at(&mut dev, 65536 + 0x20, &mut uuid)?;
        }
        _ => return None,
    }
    Some(format_uuid(&uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_types() {
        assert!(is_network_fstype("nfs4"));
        assert!(is_network_fstype("cifs"));
        assert!(is_network_fstype("fuse.sshfs"));
        assert!(!is_network_fstype("ext4"));
        assert!(!is_network_fstype("fuse.imageguard"));
    }

    #[test]
    fn ext4_uuid_from_an_image() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let uuid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        let ok = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", uuid])
            .arg(&img)
            .status();
        match ok {
            Ok(s) if s.success() => assert_eq!(fs_uuid(&img, "ext4").as_deref(), Some(uuid)),
            other => panic!("mkfs.ext4 is required for this test (install e2fsprogs): {other:?}"),
        }
        assert_eq!(superblock_uuid(&img, "xfs"), None);
    }
}
