//! Finding the definition files where each program keeps them, and parsing them all. Every
//! location can be changed (the service's configuration does, and tests use temporary
//! folders); the defaults are the programs' own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::writer::{writer_of, Writer};
use crate::{
    backintime, borgmatic, restic_systemd, rsnapshot, text, timeshift, Parsed, Problem, Reader,
};

/// Where definition files are looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Locations {
    /// borgmatic files or folders of `*.yaml` (system-wide).
    pub borgmatic: Vec<PathBuf>,
    pub rsnapshot: Vec<PathBuf>,
    pub timeshift: Vec<PathBuf>,
    /// Folders of systemd units.
    pub systemd_units: Vec<PathBuf>,
    /// The password database, for users' homes (`~/.config/borgmatic`, Back In Time).
    pub passwd: PathBuf,
}

impl Default for Locations {
    fn default() -> Locations {
        Locations {
            borgmatic: vec![
                "/etc/borgmatic/config.yaml".into(),
                "/etc/borgmatic.d".into(),
            ],
            rsnapshot: vec!["/etc/rsnapshot.conf".into()],
            timeshift: vec!["/etc/timeshift/timeshift.json".into()],
            systemd_units: vec![
                "/etc/systemd/system".into(),
                "/usr/lib/systemd/system".into(),
            ],
            passwd: "/etc/passwd".into(),
        }
    }
}

/// Homes of root and of the users who log in (uid ≥ 1000), from the password database, by uid.
fn homes(passwd: &Path) -> Vec<(u32, PathBuf)> {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    let mut out: Vec<(u32, PathBuf)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid: u32 = f.get(2)?.parse().ok()?;
            let home = f.get(5)?;
            (uid == 0 || (1000..65534).contains(&uid)).then(|| (uid, PathBuf::from(home)))
        })
        .filter(|(_, h)| h.is_dir())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `path` itself if it is a file, the files of it ending in `suffix` if it is a folder.
fn files(path: &Path, suffix: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(list) => {
            let mut v: Vec<PathBuf> = list
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix) && p.is_file())
                .collect();
            v.sort();
            v
        }
        Err(_) if path.is_file() => vec![path.to_path_buf()],
        Err(_) => vec![],
    }
}

/// A reader of the files a definition names (relative to `parent`), which notes each one in
/// `read` (who may write them decides what the definition may do).
fn read_for<'a>(
    parent: &'a Path,
    read: &'a mut Vec<PathBuf>,
) -> impl FnMut(&Path) -> Result<String, Problem> + 'a {
    move |p: &Path| {
        let p = if p.is_relative() {
            parent.join(p)
        } else {
            p.to_path_buf()
        };
        read.push(p.clone());
        text::read(&p).map(|(t, _)| t)
    }
}

/// Who wrote a file: the user whose home it is in, else whoever besides root may write it or
/// what it includes.
enum Author<'a> {
    Home(u32, &'a Path),
    System(&'a [(u32, PathBuf)]),
}

/// Parse one file with `parse` (given a reader for what it includes), reporting what kept it
/// from being read, and mark each definition with who besides root can change it.
fn each(
    out: &mut Parsed,
    file: &Path,
    author: Author<'_>,
    parse: impl FnOnce(&str, &mut Reader<'_>) -> Parsed,
) {
    match text::read(file) {
        Ok((t, bad_encoding)) => {
            out.problems.extend(bad_encoding);
            let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
            let mut included = vec![];
            let mut parsed = parse(&t, &mut read_for(&dir, &mut included));
            let writer = match author {
                Author::Home(uid, home) => Some(Writer {
                    uid: Some(uid),
                    home: Some(home.to_path_buf()),
                }),
                Author::System(homes) => {
                    included.insert(0, file.to_path_buf());
                    writer_of(&included, homes)
                }
            };
            for d in &mut parsed.definitions {
                d.writer = writer.clone();
            }
            out.extend(parsed);
        }
        Err(p) => out.problems.push(p),
    }
}

/// The folders whose changes can add, change or remove a definition found at `loc` (for a
/// watch): the configured folders, the folders of configured files, and in each home the
/// programs' folders under `.config` (or `.config` itself, where they may appear).
pub fn watched_folders(loc: &Locations) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = vec![];
    // A folder, or for a file or a folder not there yet, its nearest existing ancestor (where
    // it would appear).
    let mut add = |p: &Path| {
        if let Some(existing) = p.ancestors().find(|a| a.is_dir()) {
            out.push(existing.to_path_buf());
        }
    };
    for p in loc
        .borgmatic
        .iter()
        .chain(&loc.rsnapshot)
        .chain(&loc.timeshift)
        .chain(&loc.systemd_units)
    {
        add(p);
    }
    for (_, home) in homes(&loc.passwd) {
        let cfg = home.join(".config");
        add(&cfg);
        for p in ["borgmatic", "borgmatic.d", "backintime"] {
            if cfg.join(p).is_dir() {
                add(&cfg.join(p));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every definition found at `loc`, and every problem met.
pub fn discover(loc: &Locations) -> Parsed {
    let mut out = Parsed::default();
    let by_uid = homes(&loc.passwd);
    let root_home = by_uid
        .iter()
        .find(|(uid, _)| *uid == 0)
        .map(|(_, h)| h.clone())
        .unwrap_or_else(|| PathBuf::from("/root"));
    let system = || Author::System(&by_uid);
    // Users' homes (root's is the administrator's: its files are root's alone).
    // Each home read once (two accounts may share one), as its lowest uid's: root's if root's.
    let mut by_home = by_uid.clone();
    by_home.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    by_home.dedup_by(|a, b| a.1 == b.1);
    let users: Vec<(u32, PathBuf)> = by_home.iter().filter(|(u, _)| *u != 0).cloned().collect();
    for file in loc.borgmatic.iter().flat_map(|p| files(p, ".yaml")) {
        each(&mut out, &file, system(), |t, _| {
            borgmatic::parse(&file, t, &root_home)
        });
    }
    let root_files = by_home
        .iter()
        .filter(|(u, _)| *u == 0)
        .flat_map(|(_, h)| {
            let cfg = h.join(".config");
            [cfg.join("borgmatic/config.yaml"), cfg.join("borgmatic.d")]
        })
        .flat_map(|p| files(&p, ".yaml"));
    for file in root_files.collect::<Vec<_>>() {
        each(&mut out, &file, system(), |t, _| {
            borgmatic::parse(&file, t, &root_home)
        });
    }
    for (uid, home) in &users {
        let cfg = home.join(".config");
        for p in [cfg.join("borgmatic/config.yaml"), cfg.join("borgmatic.d")] {
            for file in files(&p, ".yaml") {
                each(&mut out, &file, Author::Home(*uid, home), |t, _| {
                    borgmatic::parse(&file, t, home)
                });
            }
        }
    }
    for file in loc.rsnapshot.iter().flat_map(|p| files(p, ".conf")) {
        each(&mut out, &file, system(), |t, read| {
            rsnapshot::parse(&file, t, read)
        });
    }
    for file in loc.timeshift.iter().flat_map(|p| files(p, ".json")) {
        each(&mut out, &file, system(), |t, _| timeshift::parse(&file, t));
    }
    for (uid, home) in &by_home {
        let file = home.join(".config/backintime/config");
        if file.is_file() {
            let author = if *uid == 0 {
                system()
            } else {
                Author::Home(*uid, home)
            };
            each(&mut out, &file, author, |t, _| backintime::parse(&file, t));
        }
    }
    for file in loc.systemd_units.iter().flat_map(|p| files(p, ".service")) {
        each(&mut out, &file, system(), |t, read| {
            // Most units have nothing to do with restic: parse only those that name it.
            if t.contains("restic") {
                restic_systemd::parse(&file, t, read)
            } else {
                Parsed::default()
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Destination, Program};

    /// A machine in a temporary folder: a borgmatic file of root's and one of a user's,
    /// rsnapshot, Timeshift, Back In Time and a restic unit; and a broken file.
    #[test]
    fn finds_every_program_and_reports_problems() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let w = |p: &str, t: &str| {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        let home = r.join("home/alice");
        let root = r.join("root");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        w("etc/passwd", &format!(
            "root:x:0:0:root:{}:/bin/bash\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nalice:x:1000:1000::{}:/bin/bash\n",
            root.display(), home.display()
        ));
        w(
            "etc/borgmatic/config.yaml",
            "location:\n  repositories:\n    - /mnt/usb/borg\n",
        );
        w(
            "etc/borgmatic.d/second.yaml",
            "repositories:\n  - path: ~/repo\n",
        );
        w("etc/borgmatic.d/broken.yaml", "repositories: [\n");
        w(
            "home/alice/.config/borgmatic/config.yaml",
            "repositories:\n  - ~/alice-repo\n",
        );
        w("etc/rsnapshot.conf", "snapshot_root\t/mnt/snap/\n");
        w(
            "etc/timeshift/timeshift.json",
            "{\"backup_device_uuid\": \"abcd\"}",
        );
        w(
            "home/alice/.config/backintime/config",
            "profile1.snapshots.path=/media/bit\n",
        );
        w(
            "etc/systemd/system/backup.service",
            "[Service]\nExecStart=/usr/bin/restic -r /mnt/restic backup /\n",
        );
        w(
            "etc/systemd/system/other.service",
            "[Service]\nExecStart=/bin/true\n",
        );
        let loc = Locations {
            borgmatic: vec![
                r.join("etc/borgmatic/config.yaml"),
                r.join("etc/borgmatic.d"),
            ],
            rsnapshot: vec![r.join("etc/rsnapshot.conf")],
            timeshift: vec![r.join("etc/timeshift/timeshift.json")],
            systemd_units: vec![
                r.join("etc/systemd/system"),
                r.join("usr/lib/systemd/system"),
            ],
            passwd: r.join("etc/passwd"),
        };
        let found = discover(&loc);
        let mut got: Vec<(Program, Destination)> = found
            .definitions
            .iter()
            .map(|d| (d.program, d.destinations[0].clone()))
            .collect();
        got.sort();
        let local = |p: PathBuf| Destination::Local { path: p };
        let mut want = vec![
            (Program::Borgmatic, local("/mnt/usb/borg".into())),
            (Program::Borgmatic, local(root.join("repo"))),
            (Program::Borgmatic, local(home.join("alice-repo"))),
            (Program::Rsnapshot, local("/mnt/snap/".into())),
            (
                Program::Timeshift,
                Destination::Device {
                    uuid: "abcd".into(),
                    folder: "timeshift".into(),
                },
            ),
            (Program::BackInTime, local("/media/bit".into())),
            (Program::Restic, local("/mnt/restic".into())),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert!(found.problems[0].file.ends_with("broken.yaml"));
    }
}
