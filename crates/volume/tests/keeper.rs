//! The keeper namespace holds what it keeps and nothing else of the host: a drive mounted
//! before the keeper was made, then unmounted in the host, is let go (its loop device can be
//! detached), while the keeper still sees its runtime directory and /proc. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard_volume::keeper::Keeper;
use imageguard_volume::mountinfo::MountTable;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Undoes what the test set up, also when it fails.
struct Cleanup {
    keeper: Keeper,
    mount: PathBuf,
    loop_dev: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = self.keeper.dismantle();
        if let Some(dev) = &self.loop_dev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

fn attached(dev: &str) -> bool {
    let name = dev.trim_start_matches("/dev/");
    Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists()
}

#[test]
fn a_drive_unmounted_in_the_host_is_not_held_by_the_keeper() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts: run as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("run");
    let drive = tmp.path().join("drive");
    std::fs::create_dir_all(&drive).unwrap();
    let image = tmp.path().join("drive.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
    let mut cleanup = Cleanup {
        keeper: Keeper::new(&runtime),
        mount: drive.clone(),
        loop_dev: None,
    };
    let dev = run("losetup", &["-f", "--show", image.to_str().unwrap()]);
    cleanup.loop_dev = Some(dev.clone());
    run("mount", &[&dev, drive.to_str().unwrap()]);

    // The keeper is made while the drive is mounted in the host.
    cleanup.keeper.ensure().unwrap();
    let inside = cleanup
        .keeper
        .run_inside(|| MountTable::read_from(Path::new("/proc/thread-self/mountinfo")))
        .unwrap();
    let points: Vec<&Path> = inside
        .entries
        .iter()
        .map(|e| e.mount_point.as_path())
        .collect();
    let rt = runtime.canonicalize().unwrap();
    // The control: what the keeper needs is there.
    assert!(points.contains(&Path::new("/")), "{points:?}");
    assert!(points.contains(&Path::new("/proc")), "{points:?}");
    assert!(points.contains(&rt.as_path()), "{points:?}");
    let drive = drive.canonicalize().unwrap();
    assert!(
        !points.contains(&drive.as_path()),
        "the keeper holds a copy of the drive: {points:?}"
    );

    // Unmounted in the host, the drive is free: its loop device detaches at once.
    run("umount", &[drive.to_str().unwrap()]);
    run("losetup", &["-d", &dev]);
    let t0 = std::time::Instant::now();
    while attached(&dev) && t0.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !attached(&dev),
        "{dev} is still attached: something still holds its file system"
    );
    cleanup.loop_dev = None;
}
