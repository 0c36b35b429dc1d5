//! A drive of a test's own: an ext4 image on a loop device, mounted where the test says, as a
//! USB disk or a second backup volume would be; unmounted and detached when dropped.

use super::stderr;

/// A second drive for the test, unmounted and detached when dropped: drop it after the sandbox
/// whose service may protect it (declared before it, or after it in a struct).
pub struct Drive {
    pub image: std::path::PathBuf,
    pub mount_point: std::path::PathBuf,
    /// Another place it may be mounted at.
    pub elsewhere: std::path::PathBuf,
    pub device: String,
}

impl Drive {
    pub fn format(image: &std::path::Path, mount_point: &std::path::Path) -> Drive {
        std::fs::File::create(image)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let ok = |c: &mut std::process::Command| {
            let o = c.output().unwrap();
            assert!(o.status.success(), "{c:?}: {}", stderr(&o));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        ok(std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image));
        let device = ok(std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image));
        let elsewhere = mount_point.with_extension("elsewhere");
        std::fs::create_dir_all(mount_point).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        Drive {
            image: image.to_path_buf(),
            mount_point: mount_point.to_path_buf(),
            elsewhere,
            device,
        }
    }

    pub fn plug_in(&self) {
        self.plug_in_at(&self.mount_point)
    }

    pub fn plug_in_at(&self, at: &std::path::Path) {
        let o = std::process::Command::new("mount")
            .arg(&self.device)
            .arg(at)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", stderr(&o));
    }

    /// The unplug: the loop device is detached while its file system is mounted (it goes
    /// once its last user lets go).
    pub fn pull_out(&self) {
        let o = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup -d: {}", stderr(&o));
    }

    /// Whether the loop device still holds the image.
    pub fn attached(&self) -> bool {
        let name = self.device.trim_start_matches("/dev/");
        std::path::Path::new(&format!("/sys/block/{name}/loop")).exists()
    }

    /// Plugged in again: a new loop device for the same image.
    pub fn reattach(&mut self) {
        let o = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {}", stderr(&o));
        self.device = String::from_utf8_lossy(&o.stdout).trim().to_string();
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        for at in [&self.mount_point, &self.elsewhere] {
            for _ in 0..3 {
                let _ = std::process::Command::new("umount").arg(at).output();
            }
        }
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .output();
    }
}
