//! Whether the block device under a protected volume is still there. A drive pulled out without
//! `eject` leaves its mount behind (every access fails), so the mount table cannot tell: sysfs
//! can. The device is gone when the kernel removed its disk (`/sys/dev/block/MAJ:MIN` vanished,
//! the USB unplug), when its medium was taken out (size 0, a card reader), or, for a loop device,
//! when someone detached it while it was mounted (`losetup -d` sets autoclear on a busy device:
//! it goes the moment its last user lets go).
//!
//! A loop device that had autoclear from the start (`mount -o loop`) gives no sign of being
//! detached: such a drive is let go with `imageguard eject`. File systems without a block device
//! of their own (device number 0:N: tmpfs, btrfs subvolumes, network) are never reported gone.

use std::path::PathBuf;

/// What was seen of a volume's device when it was protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    sys: PathBuf,
    /// For a loop device, whether it was already set to detach itself when last released.
    loop_autoclear: Option<bool>,
}

fn read_trimmed(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Presence {
    /// Record the device `device_number` ("MAJ:MIN", as in mountinfo) as it is now; `None` for
    /// a file system with no block device of its own, or one sysfs does not show.
    pub fn record(device_number: &str) -> Option<Presence> {
        Presence::record_under(PathBuf::from("/sys/dev/block"), device_number)
    }

    fn record_under(root: PathBuf, device_number: &str) -> Option<Presence> {
        let (major, minor) = crate::mountinfo::parse_device_number(device_number)?;
        if major == 0 {
            return None;
        }
        let sys = root.join(format!("{major}:{minor}"));
        if !sys.exists() {
            return None;
        }
        let loop_autoclear = read_trimmed(sys.join("loop/autoclear")).map(|s| s == "1");
        Some(Presence {
            sys,
            loop_autoclear,
        })
    }

    /// Why the device is gone, or `None` while it is there.
    pub fn gone(&self) -> Option<String> {
        if !self.sys.exists() {
            return Some("its device was removed (the drive was unplugged without eject)".into());
        }
        if read_trimmed(self.sys.join("size")).as_deref() == Some("0") {
            return Some("its medium was removed or its device emptied".into());
        }
        if self.loop_autoclear == Some(false)
            && read_trimmed(self.sys.join("loop/autoclear")).as_deref() == Some("1")
        {
            return Some("its loop device was detached while mounted (losetup -d)".into());
        }
        None
    }
}

/// Whether the block device MAJ:MIN is gone from the system (or has no medium); a file system
/// without a block device of its own (major 0) never is.
pub fn device_gone(major: u32, minor: u32) -> bool {
    if major == 0 {
        return false;
    }
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    !sys.exists() || read_trimmed(sys.join("size")).as_deref() == Some("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_device(root: &std::path::Path, id: &str, size: &str, autoclear: Option<&str>) {
        let d = root.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        if let Some(a) = autoclear {
            std::fs::create_dir_all(d.join("loop")).unwrap();
            std::fs::write(d.join("loop/autoclear"), format!("{a}\n")).unwrap();
        }
    }

    #[test]
    fn no_block_device_of_its_own_is_never_recorded() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Presence::record_under(t.path().into(), "0:52"), None);
        assert_eq!(Presence::record_under(t.path().into(), "8:1"), None);
        assert_eq!(Presence::record_under(t.path().into(), "nonsense"), None);
    }

    #[test]
    fn a_removed_disk_an_emptied_medium_and_a_detached_loop_are_gone() {
        let t = tempfile::tempdir().unwrap();
        fake_device(t.path(), "8:17", "1000", None);
        fake_device(t.path(), "7:3", "1000", Some("0"));
        fake_device(t.path(), "7:4", "1000", Some("1"));
        let disk = Presence::record_under(t.path().into(), "8:17").unwrap();
        let lo = Presence::record_under(t.path().into(), "7:3").unwrap();
        let auto = Presence::record_under(t.path().into(), "7:4").unwrap();
        assert_eq!((disk.gone(), lo.gone(), auto.gone()), (None, None, None));

        std::fs::write(t.path().join("7:3/loop/autoclear"), "1\n").unwrap();
        assert!(lo.gone().unwrap().contains("losetup -d"));
        // Set to detach itself from the start: no sign to read.
        assert_eq!(auto.gone(), None);

        std::fs::write(t.path().join("8:17/size"), "0\n").unwrap();
        assert!(disk.gone().unwrap().contains("medium"));
        std::fs::remove_dir_all(t.path().join("8:17")).unwrap();
        assert!(disk.gone().unwrap().contains("unplugged"));
    }
}
