//! Backup definitions: the saved jobs of the backup programs Linux users run, read from each
//! program's real locations, and where each backs up to.
//!
//! One module per program, each a pure parser over a file's text (so that any bytes can be fed
//! to it) plus what it takes to find that program's files:
//! - [`borgmatic`]: `repositories` in both forms (1.7's `location:` strings, 1.8's list of
//!   `{path, label}`); `ssh://` and `user@host:` repositories are remote.
//! - [`rsnapshot`]: `snapshot_root`, tab-separated, `include_conf` followed.
//! - [`timeshift`]: `backup_device_uuid` (the snapshots live under `timeshift/` at that file
//!   system's root).
//! - [`backintime`]: `profileN.snapshots.path` (local profiles).
//! - [`restic_systemd`]: units whose `ExecStart` runs restic, with `-r`/`--repo`/
//!   `--repository-file`, `RESTIC_REPOSITORY` from `Environment=` and `EnvironmentFile=`.
//!
//! [`writer`] says who besides root can change a definition (a user's definitions protect
//! only inside that user's home unless approved).
//!
//! [`own`] turns imageguard's own `[[definition]]` tables (scripts and tools not listed) into
//! definitions. [`discover`] finds every program's files where it keeps them (every location overridable)
//! and parses them all. [`text`] reads a file with the limits every parser relies on (size, encoding); a problem in
//! one file never stops the others: it is reported with its file and line.

pub mod backintime;
pub mod borgmatic;
#[doc(hidden)]
pub mod corpus;
pub mod discover;
pub mod own;
pub mod restic_systemd;
pub mod rsnapshot;
pub mod text;
pub mod timeshift;
pub mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The program a definition belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    Borgmatic,
    Rsnapshot,
    Timeshift,
    BackInTime,
    Restic,
    /// imageguard's own `[[definition]]` tables, for scripts and tools not listed.
    Imageguard,
}

impl Program {
    /// Its name as listings show it (the same as its serde form).
    pub fn name(self) -> &'static str {
        match self {
            Program::Borgmatic => "borgmatic",
            Program::Rsnapshot => "rsnapshot",
            Program::Timeshift => "timeshift",
            Program::BackInTime => "back-in-time",
            Program::Restic => "restic",
            Program::Imageguard => "imageguard",
        }
    }
}

/// Where a definition backs up to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Destination {
    /// A folder of this machine (it may be on a network file system: the volume decides).
    Local { path: PathBuf },
    /// A folder on the file system with this UUID, wherever it is mounted (Timeshift).
    Device { uuid: String, folder: PathBuf },
    /// Another machine (`ssh://`, `user@host:path`, `sftp:`, `rclone:`...): never protected
    /// from here.
    Remote { location: String },
}

/// As the definition gives it: a path, `UUID=.../folder`, or the remote location.
impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local { path } => write!(f, "{}", path.display()),
            Destination::Device { uuid, folder } => {
                write!(f, "UUID={uuid}/{}", folder.display())
            }
            Destination::Remote { location } => f.write_str(location),
        }
    }
}

/// One saved backup job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub program: Program,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its name in that file (a label, a profile), or the file's name.
    pub name: String,
    pub destinations: Vec<Destination>,
    /// What it backs up (where the program says).
    pub sources: Vec<PathBuf>,
    /// Who besides root can change what it says (see [`writer`]); `None`: root alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<writer::Writer>,
}

/// Something wrong with a definition file, for the administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based, where known.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What a parser found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub definitions: Vec<Definition>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    pub fn problem(file: &Path, line: Option<usize>, message: impl Into<String>) -> Parsed {
        Parsed {
            definitions: vec![],
            problems: vec![Problem::new(file, line, message)],
        }
    }

    pub fn extend(&mut self, other: Parsed) {
        self.definitions.extend(other.definitions);
        self.problems.extend(other.problems);
    }
}

/// Reads a file a definition names (an `include_conf`, an `EnvironmentFile=`): the file
/// system, or a test's fixtures.
pub type Reader<'a> = dyn FnMut(&Path) -> Result<String, Problem> + 'a;

/// Whether a repository or destination string names another machine.
pub fn is_remote(location: &str) -> bool {
    if location.starts_with('/') || location.starts_with("~/") || location.starts_with("./") {
        return false;
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return scheme != "file";
    }
    // scp style (`user@host:path`, `host:path`) and rclone/sftp/s3 style (`name:path`).
    location.contains(':')
}

/// A local destination, with `file://` and a leading `~/` (of `home`) resolved.
pub fn local_path(location: &str, home: &Path) -> PathBuf {
    let location = location.strip_prefix("file://").unwrap_or(location);
    match location.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(location),
    }
}

/// Turn a repository string into a destination.
pub fn destination(location: &str, home: &Path) -> Destination {
    if is_remote(location) {
        Destination::Remote {
            location: location.to_string(),
        }
    } else {
        Destination::Local {
            path: local_path(location, home),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_are_their_serde_names() {
        for p in [
            Program::Borgmatic,
            Program::Rsnapshot,
            Program::Timeshift,
            Program::BackInTime,
            Program::Restic,
            Program::Imageguard,
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        let d = Destination::Device {
            uuid: "ab-cd".into(),
            folder: "timeshift".into(),
        };
        assert_eq!(d.to_string(), "UUID=ab-cd/timeshift");
    }

    #[test]
    fn remote_or_local() {
        for (loc, remote) in [
            ("/var/local/backups/local.borg", false),
            ("~/backups/repo", false),
            ("file:///mnt/backup", false),
            ("ssh://user@backupserver/./sourcehostname.borg", true),
            ("user@host:repo", true),
            ("host:/srv/repo", true),
            ("sftp:user@host:/srv/restic", true),
            ("s3:s3.amazonaws.com/bucket", true),
            ("rest:http://host:8000/", true),
        ] {
            assert_eq!(is_remote(loc), remote, "{loc}");
        }
        assert_eq!(
            destination("~/repo", Path::new("/root")),
            Destination::Local {
                path: "/root/repo".into()
            }
        );
        assert_eq!(
            destination("file:///mnt/b", Path::new("/root")),
            Destination::Local {
                path: "/mnt/b".into()
            }
        );
    }
}
