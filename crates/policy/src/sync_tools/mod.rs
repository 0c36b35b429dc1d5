//! Sync tools (issue 9): how their command lines are read, and the reference's rules for them.
//!
//! A sync tool is not certified: it is a program the admin allows (setting "allow sync tools")
//! to delete and overwrite backup files only as the reference product lets RoboCopy do it with
//! `/MOV`, `/MOVE`, `/PURGE` and `/MIR`. Each dialect module reads one tool's command line into
//! the same [`SyncCommand`]; [`rules`] decides one operation of such a caller.
//!
//! - [`rsync`]: rsync's options as rsync reads them.
//! - [`rclone`]: rclone's subcommands and flags.
//! - [`robocopy`]: RoboCopy's own syntax, for any tool an admin maps to it.
//! - [`rules`]: move, purge/mirror, overwrite and network shares.
//! - [`situation`]: where an entry lies with respect to a command's folders.
//! - [`servers`]: file servers, which act for another machine.

pub mod rclone;
pub mod robocopy;
pub mod rsync;
pub mod rules;
pub mod servers;
pub mod situation;

use serde::{Deserialize, Serialize};

/// How a sync tool's command line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Rsync,
    Rclone,
    Robocopy,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Rsync, Dialect::Rclone, Dialect::Robocopy];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Rsync => "rsync",
            Dialect::Rclone => "rclone",
            Dialect::Robocopy => "robocopy",
        }
    }

    /// The dialect a program's file name suggests (`rsync`, `rclone`), if any.
    pub fn of_program(path: &str) -> Option<Dialect> {
        let name = path.rsplit('/').next().unwrap_or(path);
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Dialect, String> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown sync-tool dialect {s:?} (rsync, rclone, robocopy)"))
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A folder named on a sync tool's command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operand {
    /// A path of this machine, as written (absolute or relative; a trailing `/` kept).
    Local(String),
    /// On another machine or a configured remote (`host:path`, `rsync://`, `remote:path`).
    Remote(String),
}

impl Operand {
    /// The absolute folder this operand names, without `.` components and trailing slashes;
    /// `None` for a remote, a relative path or one with `..` (the rules need a folder that
    /// cannot mean two things).
    pub fn absolute(&self) -> Option<std::path::PathBuf> {
        use std::path::{Component, Path, PathBuf};
        let Operand::Local(p) = self else { return None };
        let p = Path::new(p);
        if !p.is_absolute() {
            return None;
        }
        let mut out = PathBuf::from("/");
        for c in p.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => out.push(n),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        Some(out)
    }

    pub fn text(&self) -> &str {
        match self {
            Operand::Local(s) | Operand::Remote(s) => s,
        }
    }
}

/// What a sync tool's command line asks for, whatever its dialect.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncCommand {
    /// It deletes what it copied from its sources (`/MOV`, `/MOVE`, `--remove-source-files`,
    /// `rclone move`).
    pub moves: bool,
    /// It deletes from its target what its sources do not have (`/PURGE`, `--delete`).
    pub purges: bool,
    /// A purge of the whole tree (`/MIR`, `rsync -a --delete`, `rclone sync`).
    pub mirrors: bool,
    /// It copies into its target, replacing files that changed (every transfer unless told
    /// otherwise).
    pub copies: bool,
    /// It keeps what it would delete or replace in this folder instead (`--backup-dir`):
    /// its renames out of the target are that.
    pub backup_dir: Option<Operand>,
    /// The local end of a transfer another machine drives (`rsync --server` under sshd): what
    /// it deletes is deleted over the network.
    pub served: bool,
    pub sources: Vec<Operand>,
    pub target: Option<Operand>,
}

impl SyncCommand {
    /// How an admin would name what it does, for event texts.
    pub fn what(&self) -> &'static str {
        match (self.moves, self.mirrors, self.purges) {
            (true, _, _) => "move",
            (_, true, _) => "mirror",
            (_, _, true) => "purge",
            _ if self.copies => "copy",
            _ => "other",
        }
    }
}

/// Why a command line is not read as a permitted sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unreadable {
    /// An option this table does not know (it could change what the command does).
    UnknownOption(String),
    /// An option that needs a value came last.
    MissingValue(String),
    /// `--files-from`, `--read-batch` and the like: what is transferred is not on the command
    /// line.
    ElsewhereDefined(String),
    /// An argument that is not valid UTF-8.
    NotText,
    /// A subcommand (rclone) that is not a transfer this table reads.
    NotATransfer(String),
    /// Not the operands the command needs (a source and a target).
    Operands,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::UnknownOption(o) => write!(
                f,
                "its command line has an option imageguard does not read ({o})"
            ),
            Unreadable::MissingValue(o) => {
                write!(f, "its command line ends in {o} without its value")
            }
            Unreadable::ElsewhereDefined(o) => {
                write!(f, "what it transfers is not on its command line ({o})")
            }
            Unreadable::NotText => f.write_str("its command line is not text"),
            Unreadable::NotATransfer(s) => {
                write!(
                    f,
                    "{s:?} is not a sync, copy or move (it never deletes backup files)"
                )
            }
            Unreadable::Operands => {
                f.write_str("its command line does not name a source and a target")
            }
        }
    }
}

/// Read a sync tool's command line (`argv[0]` included) in its dialect.
pub fn read<S: AsRef<[u8]>>(dialect: Dialect, argv: &[S]) -> Result<SyncCommand, Unreadable> {
    match dialect {
        Dialect::Rsync => rsync::parse(argv).map(rsync::RsyncCommand::into_sync),
        Dialect::Rclone => rclone::parse(argv),
        Dialect::Robocopy => robocopy::parse(argv),
    }
}

/// The arguments after `argv[0]` as text.
fn texts<S: AsRef<[u8]>>(argv: &[S]) -> Result<Vec<&str>, Unreadable> {
    argv.iter()
        .skip(1)
        .map(|a| std::str::from_utf8(a.as_ref()).map_err(|_| Unreadable::NotText))
        .collect()
}

/// An rsync or rclone operand: remote when a `:` comes before any `/` (`host:path`,
/// `user@host:path`, `host::module`, `remote:`), or a URL.
fn operand(s: &str) -> Operand {
    let colon = s.find(':');
    let slash = s.find('/');
    let remote = s.starts_with("rsync://")
        || matches!((colon, slash), (Some(c), Some(sl)) if c < sl)
        || (colon.is_some() && slash.is_none());
    if remote {
        Operand::Remote(s.to_string())
    } else {
        Operand::Local(s.to_string())
    }
}
