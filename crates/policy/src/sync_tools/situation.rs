//! Where an entry lies with respect to a sync command's folders, and what those folders are:
//! the [`Situation`] the rules judge, worked out from the command, the entry's path (as the
//! guard knows it: this machine's absolute path) and the facts a [`Folders`] port gives.
//!
//! - Folders must be absolute paths of this machine (a relative one could mean two folders:
//!   rsync's processes change their working folder); a remote one is not on this machine.
//! - The entry's own side is known exactly: it is on this protected volume, reached over the
//!   network when the volume is a network file system or the tool is the served end of a
//!   transfer (`rsync --server`), and counts as a backup destination when it lies in one or
//!   holds one (a folder renamed or removed would take the destination with it).
//! - A move's target is where the data went: for rsync, the working folder of its local
//!   receiver (not the path as written, which a symlink could bend); for other tools, the
//!   target path as the port resolves it now.
//! - A purge's source counts as a backup destination only if every source lies in one.

use std::path::{Path, PathBuf};

use super::rules::{Place, Rule, Situation};
use super::{Dialect, Operand, SyncCommand};

/// Facts about this machine's folders, for one caller.
pub trait Folders {
    /// What the folder at `path` is, following symlinks as the tool would.
    fn place(&self, path: &Path) -> Place;
    /// Whether `folder` is at or under a backup destination of a saved definition.
    fn is_destination(&self, folder: &Path) -> bool;
    /// Whether `folder` is at or under a backup destination of a definition an administrator
    /// vetted.
    fn is_vetted(&self, folder: &Path) -> bool;
    /// Whether a backup destination lies at or below `folder`.
    fn holds_destination(&self, folder: &Path) -> bool;
    /// For an rsync sender: the folder its local receiver writes into, and what it is.
    fn receiving_folder(&self) -> Option<(PathBuf, Place)>;
}

fn absolute(o: &Operand) -> Result<Option<PathBuf>, Rule> {
    match o {
        Operand::Remote(_) => Ok(None),
        Operand::Local(text) => o
            .absolute()
            .map(Some)
            .ok_or_else(|| Rule::FolderNotAbsolute(text.clone())),
    }
}

/// The situation of the entry at `entry` (on a protected volume; `volume_network` when that
/// volume is a network file system) for a sync tool running `cmd`.
pub fn situation(
    folders: &dyn Folders,
    dialect: Dialect,
    cmd: &SyncCommand,
    entry: &Path,
    volume_network: bool,
) -> Result<Situation, Rule> {
    // The served end of a transfer cannot name its source ("." stands for the other machine).
    let sources: Vec<Option<PathBuf>> = if cmd.served {
        Vec::new()
    } else {
        cmd.sources.iter().map(absolute).collect::<Result<_, _>>()?
    };
    let target = match &cmd.target {
        Some(t) => absolute(t)?,
        None => None,
    };
    let in_source = sources.iter().flatten().any(|s| entry.starts_with(s));
    let in_target = target.as_ref().is_some_and(|t| entry.starts_with(t));
    let here = Place {
        protected: true,
        network: volume_network || cmd.served,
        destination: folders.is_destination(entry) || folders.holds_destination(entry),
        vetted: folders.is_vetted(entry),
    };
    let containing = |s: &PathBuf| entry.starts_with(s);
    let all = |is: &dyn Fn(&Path) -> bool| {
        !sources.is_empty() && sources.iter().all(|s| s.as_ref().is_some_and(|s| is(s)))
    };
    let source = if in_source {
        Place {
            destination: here.destination
                || sources
                    .iter()
                    .flatten()
                    .any(|s| containing(s) && folders.is_destination(s)),
            vetted: here.vetted
                || sources
                    .iter()
                    .flatten()
                    .any(|s| containing(s) && folders.is_vetted(s)),
            ..here
        }
    } else {
        Place {
            destination: all(&|s| folders.is_destination(s)),
            vetted: all(&|s| folders.is_vetted(s)),
            ..Place::default()
        }
    };
    let target_place = match &target {
        Some(t) if in_target => Place {
            destination: here.destination || folders.is_destination(t),
            vetted: here.vetted || folders.is_vetted(t),
            ..here
        },
        _ if !(cmd.moves && in_source) => Place::default(),
        None => Place::default(),
        Some(t) => match dialect {
            Dialect::Rsync => folders
                .receiving_folder()
                .map(|(_, place)| place)
                .unwrap_or_default(),
            Dialect::Rclone | Dialect::Robocopy => folders.place(t),
        },
    };
    Ok(Situation {
        in_source,
        in_target,
        source,
        target: target_place,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_tools::read;

    struct Machine {
        receiving: Option<(PathBuf, Place)>,
    }

    impl Folders for Machine {
        fn place(&self, path: &Path) -> Place {
            Place {
                protected: path.starts_with("/mnt/prot"),
                network: path.starts_with("/net"),
                destination: self.is_destination(path),
                vetted: self.is_vetted(path),
            }
        }
        fn is_destination(&self, folder: &Path) -> bool {
            folder.starts_with("/mnt/prot/dest") || folder.starts_with("/mnt/prot/users")
        }
        fn is_vetted(&self, folder: &Path) -> bool {
            folder.starts_with("/mnt/prot/dest")
        }
        fn holds_destination(&self, folder: &Path) -> bool {
            Path::new("/mnt/prot/dest").starts_with(folder)
        }
        fn receiving_folder(&self) -> Option<(PathBuf, Place)> {
            self.receiving.clone()
        }
    }

    fn at(
        dialect: Dialect,
        line: &str,
        entry: &str,
        receiving: Option<&str>,
    ) -> Result<Situation, Rule> {
        let m = Machine {
            receiving: receiving.map(|r| {
                let p = PathBuf::from(r);
                let place = Machine { receiving: None }.place(&p);
                (p, place)
            }),
        };
        let cmd = read(dialect, &line.split(' ').collect::<Vec<_>>()).unwrap();
        situation(&m, dialect, &cmd, Path::new(entry), false)
    }

    #[test]
    fn sides_and_places() {
        // A mirror of a destination into an offsite folder; the entry in the target.
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete /mnt/prot/dest/ /mnt/prot/off/",
            "/mnt/prot/off/a.img",
            None,
        )
        .unwrap();
        assert!(s.in_target && !s.in_source);
        assert!(s.source.destination && !s.target.destination && s.target.protected);
        assert!(s.source.vetted);
        // A source only an unvetted definition names is a destination, not a vetted one.
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete /mnt/prot/users/bob/ /mnt/prot/off/",
            "/mnt/prot/off/a.img",
            None,
        )
        .unwrap();
        assert!(s.source.destination && !s.source.vetted);
        // Every source must be vetted.
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete /mnt/prot/dest/ /mnt/prot/users/ /mnt/prot/off/",
            "/mnt/prot/off/a.img",
            None,
        )
        .unwrap();
        assert!(s.source.destination && !s.source.vetted);

        // rsync's move: the target as its receiver writes it, not as written.
        let line = "rsync --remove-source-files /mnt/prot/dest/ /mnt/prot/link/";
        let s = at(Dialect::Rsync, line, "/mnt/prot/dest/a.img", Some("/tmp/x")).unwrap();
        assert!(s.in_source && !s.target.protected);
        let s = at(Dialect::Rsync, line, "/mnt/prot/dest/a.img", None).unwrap();
        assert!(!s.target.protected, "no local receiver: sent away");
        let s = at(
            Dialect::Rsync,
            line,
            "/mnt/prot/dest/a.img",
            Some("/mnt/prot/dest/archive"),
        )
        .unwrap();
        assert!(s.target.protected && s.target.destination);

        // rclone's move: the target path as resolved now.
        let s = at(
            Dialect::Rclone,
            "rclone move /mnt/prot/dest /mnt/prot/archive",
            "/mnt/prot/dest/x/a.img",
            None,
        )
        .unwrap();
        assert!(s.in_source && s.target.protected && !s.target.destination);

        // A relative folder is refused by name; a remote one is simply elsewhere.
        assert_eq!(
            at(
                Dialect::Rsync,
                "rsync -a --delete src/ /mnt/prot/off",
                "/mnt/prot/off/a",
                None
            ),
            Err(Rule::FolderNotAbsolute("src/".into()))
        );
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete host:/b/ /mnt/prot/off",
            "/mnt/prot/off/a",
            None,
        )
        .unwrap();
        assert!(s.in_target && !s.source.destination);

        // The served end: network, and no source.
        let s = at(
            Dialect::Rsync,
            "rsync --server -logDtpre.iLsfxCIvu --delete . /mnt/prot/off",
            "/mnt/prot/off/a",
            None,
        )
        .unwrap();
        assert!(s.in_target && s.target.network && !s.source.destination);

        // A folder holding a destination counts as one (renamed, it would take it along).
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete /mnt/prot/dest/ /mnt/prot",
            "/mnt/prot/dest",
            None,
        )
        .unwrap();
        assert!(s.in_target && s.target.destination);
        let s = at(Dialect::Rclone, "rclone sync /src /mnt", "/mnt/prot", None).unwrap();
        assert!(s.in_target && s.target.destination);

        // Components, not prefixes of text.
        let s = at(
            Dialect::Rsync,
            "rsync -a --delete /mnt/prot/dest/ /mnt/prot/off",
            "/mnt/prot/offsite/a",
            None,
        )
        .unwrap();
        assert!(!s.in_target && !s.in_source);
    }
}
