//! `/proc/self/mountinfo`: which mount a path is on.

use std::io;
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    pub parent: u64,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its file system.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.split(',').any(|o| o == opt)
    }

    pub fn device_number(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// A device number as mountinfo and sysfs write it: "major:minor", in decimal.
pub fn parse_device_number(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            // Three octal digits: up to 0o777, so computed wide (a byte holds 0o377).
            let d = |k: usize| u32::from(b[i + k] - b'0');
            out.push((d(1) * 64 + d(2) * 8 + d(3)) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of the file systems that hold the system itself (by the usual layout): a
/// backup destination on one is guarded as a folder, never the whole file system.
pub const SYSTEM_MOUNT_POINTS: &[&str] = &[
    "/",
    "/usr",
    "/var",
    "/etc",
    "/boot",
    "/boot/efi",
    "/home",
    "/opt",
    "/tmp",
    "/root",
    "/srv",
];

/// Whether `p` is one of [`SYSTEM_MOUNT_POINTS`].
pub fn is_system_mount_point(p: &Path) -> bool {
    SYSTEM_MOUNT_POINTS.iter().any(|s| p == Path::new(s))
}

/// Parse mountinfo text.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            let (major, minor) = parse_device_number(l[2])?;
            Some(MountEntry {
                id: l[0].parse().ok()?,
                parent: l[1].parse().ok()?,
                major,
                minor,
                root: PathBuf::from(unescape(l[3])),
                mount_point: PathBuf::from(unescape(l[4])),
                options: l[5].to_string(),
                fstype: r[0].to_string(),
                source: unescape(r[1]),
                super_options: r[2].to_string(),
            })
        })
        .collect()
}

/// A snapshot of the mount table.
#[derive(Debug, Clone)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    pub fn read() -> io::Result<MountTable> {
        Self::read_from(Path::new("/proc/self/mountinfo"))
    }

    pub fn read_from(path: &Path) -> io::Result<MountTable> {
        Ok(MountTable {
            entries: parse(&std::fs::read_to_string(path)?),
        })
    }

    /// The mount visible at exactly `mount_point` (the topmost when mounts are stacked).
    pub fn at(&self, mount_point: &Path) -> Option<&MountEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.mount_point == mount_point)
    }

    /// The mount that `path` (canonical) lies on, found as path lookup finds it: from the root
    /// mount, component by component, into what is mounted there (the topmost of stacked
    /// mounts). A mount covered by one made later above it (/usr/lib, then /usr over it, as
    /// virtme-ng does) holds nothing of `path`, however long its mount point.
    pub fn containing(&self, path: &Path) -> Option<&MountEntry> {
        let Some(root) = self.root() else {
            // A table without its root (read from a chroot): the longest mount point, the last
            // of equals (the topmost of stacked mounts).
            return self
                .entries
                .iter()
                .filter(|e| path.starts_with(&e.mount_point))
                .max_by_key(|e| e.mount_point.components().count());
        };
        let mut current = self.topmost_on(root, Path::new("/"));
        let mut prefix = PathBuf::from("/");
        for c in path.components().skip(1) {
            prefix.push(c);
            current = self.topmost_on(current, &prefix);
        }
        Some(current)
    }

    /// The root mount: at `/`, its parent not in the table.
    fn root(&self) -> Option<&MountEntry> {
        self.entries.iter().find(|e| {
            e.mount_point == Path::new("/") && !self.entries.iter().any(|p| p.id == e.parent)
        })
    }

    /// What is mounted on `m` at `point`, and on that, to the top (`m` when nothing is).
    fn topmost_on<'a>(&'a self, mut m: &'a MountEntry, point: &Path) -> &'a MountEntry {
        // Each step goes to a mount made on the one before: at most one per entry.
        for _ in 0..self.entries.len() {
            match self
                .entries
                .iter()
                .rev()
                .find(|e| e.parent == m.id && e.id != m.id && e.mount_point == point)
            {
                Some(next) => m = next,
                None => break,
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_are_decimal_major_colon_minor() {
        assert_eq!(parse_device_number("7:3"), Some((7, 3)));
        assert_eq!(parse_device_number("259:65536"), Some((259, 65536)));
        assert_eq!(parse_device_number("7"), None);
        assert_eq!(parse_device_number("a:1"), None);
    }

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
60 22 7:3 / /mnt/back\\040up rw,nosuid,relatime shared:30 - ext4 /dev/loop3 rw
61 60 0:50 / /mnt/back\\040up rw,relatime - fuse.imageguard imageguard rw,user_id=0,group_id=0
70 22 0:60 /exports /srv/share rw - nfs4 server:/exports rw,vers=4.2
";

    #[test]
    fn parses_and_finds() {
        let t = MountTable {
            entries: parse(SAMPLE),
        };
        assert_eq!(t.entries.len(), 4);
        let top = t.at(Path::new("/mnt/back up")).unwrap();
        assert_eq!(top.fstype, "fuse.imageguard");
        assert_eq!(t.entries[1].source, "/dev/loop3");
        assert!(t.entries[1].has_option("nosuid"));
        assert_eq!(t.entries[1].device_number(), "7:3");
        assert_eq!(t.containing(Path::new("/mnt/back up/x/y")).unwrap().id, 61);
        assert_eq!(t.containing(Path::new("/home/u")).unwrap().id, 22);
        assert_eq!(
            t.containing(Path::new("/srv/share/a")).unwrap().root,
            PathBuf::from("/exports")
        );
    }

    /// virtme-ng's guest: /usr/lib mounted, then /usr over it (hiding it), then /tmp/x on /tmp.
    const COVERED: &str = "\
23 1 0:21 / / ro,relatime - 9p /dev/root ro
36 23 0:28 / /usr/lib rw,relatime - overlay virtme_rw_overlay1 rw,lowerdir=/lib
48 23 0:40 / /usr rw,relatime - overlay virtme_rw_overlay5 rw,lowerdir=/usr
54 23 0:46 / /tmp rw,relatime - overlay virtme_rw_overlay7 rw,lowerdir=/tmp
62 54 0:56 / /tmp/x rw,relatime - 9p virtme.initmount0 rw
63 62 0:57 / /tmp/x rw,relatime - tmpfs tmpfs rw
";

    #[test]
    fn a_covered_mount_holds_nothing() {
        let t = MountTable {
            entries: parse(COVERED),
        };
        let on = |p: &str| t.containing(Path::new(p)).unwrap().id;
        assert_eq!(on("/usr/lib/x86_64-linux-gnu/libc.so.6"), 48);
        assert_eq!(on("/usr/lib"), 48);
        assert_eq!(on("/usr"), 48);
        assert_eq!(on("/tmp/x/y"), 63, "the topmost of stacked mounts");
        assert_eq!(on("/tmp/xy"), 54, "a component, not a prefix of characters");
        assert_eq!(on("/etc/fstab"), 23);
        assert_eq!(on("/"), 23);
    }

    #[test]
    fn reads_live_table() {
        let t = MountTable::read().unwrap();
        assert!(t.containing(Path::new("/")).is_some());
    }
}
