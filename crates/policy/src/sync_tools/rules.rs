//! The reference's rules for a sync tool (its "Allow RoboCopy to sync and move backup files on
//! protected volumes" and "RoboCopy and Network Shares"), decided for one operation of a sync
//! tool's process on a backup entry of a protected volume.
//!
//! The adapter says where the entry lies with respect to the command's folders and what each
//! folder is ([`Place`]: on a protected volume, reached over the network, a backup destination
//! of a saved definition). The rules:
//! - a **move** deletes backup files in its source only if its target is on a protected volume
//!   ([`MOVE`]); imageguard adds one condition: out of a backup destination only into one (a
//!   move to a plain protected folder followed by an overwrite there would otherwise destroy a
//!   destination's files in two permitted steps);
//! - a **purge or mirror** deletes backup files in its target only if its source is a backup
//!   destination and its target is not ([`PURGE`]);
//! - what lets a sync tool delete or add (a purge's source, a move's target, the source of a
//!   copy arriving in a repository) counts as a backup destination only when a definition an
//!   administrator vetted names it ([`APPROVED`]): definitions are other programs' files, some
//!   in users' homes, and anyone who may write one must not decide what gets deleted. Any
//!   definition's destination still refuses (protecting more is safe);
//! - an **overwrite** of an existing backup file is allowed only if the target folder is not a
//!   backup destination ([`OVERWRITE`]);
//! - the source of a move or the target of a purge on a protected volume reached over the
//!   network: every delete is blocked ([`NETWORK`]);
//! - anything else falls to the ordinary rules (the tool is not certified): refused.

use serde::{Deserialize, Serialize};

use super::{SyncCommand, Unreadable};
use crate::classify::{BackupReason, Class};
use crate::operation::Operation;

/// The reference's sentences, quoted as the rules cite them.
pub const ENABLES: &str = "Enables the MS utility RoboCopy to delete and overwrite backup files on protected volumes with the /MOV, /MOVE, /PURGE and /MIR parameters.";
pub const MOVE: &str = "If the source folder is on a protected volume then the /MOVE /MOV parameters will only delete backup files in the source folder if the destination folder is also on a protected volume.";
pub const PURGE: &str = "If the target folder is on a protected volume then the the /MIR /PURGE parameters will only delete backup files in the target folder if both of the following conditions are true: 1. The source folder is a backup destination in any saved backup definition xml file. 2. The target folder is not a backup destination in any saved backup defintion xml file";
pub const OVERWRITE: &str = "If the result of any parameter is to overwrite an existing backup file on a protected volume then this will only be allowed if the target folder is not a backup destination in any saved backup definition xml file.";
pub const NETWORK: &str = "If the source of a /MOVE /MOV or target of a /MIR /PURGE operation is a MIG protected volume on a network share then all delete operations are blocked.";
/// imageguard's own condition on what definitions may allow (see the module documentation).
pub const APPROVED: &str = "imageguard: a definition lets a sync tool delete or add only when an administrator approved it (imageguard definitions approve), or it is imageguard's own.";
/// imageguard's own condition on moves (see the module documentation).
pub const MOVE_KEEPS_DESTINATION: &str = "imageguard: a move out of a backup destination deletes only if its target is a backup destination too.";

/// What is known of one of a sync command's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Place {
    /// On a volume (or folder) imageguard protects.
    pub protected: bool,
    /// Reached over the network: a network file system mounted here, or this machine's
    /// protected volume served to another machine.
    pub network: bool,
    /// At or under a backup destination of a saved definition (any: what it refuses).
    pub destination: bool,
    /// At or under a backup destination of a definition an administrator vetted (approved,
    /// or imageguard's own): what it allows. Implies `destination`.
    pub vetted: bool,
}

/// Where the entry an operation touches lies, and what the command's folders are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Situation {
    /// The entry is in (one of) the command's source folders.
    pub in_source: bool,
    /// The entry is in the command's target folder.
    pub in_target: bool,
    pub source: Place,
    pub target: Place,
}

/// What an operation does to a backup entry, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// It goes from its folder (unlink, rmdir, exchange; a rename out of a source).
    Remove,
    /// Its content, attributes or name are replaced (write, truncate, rename onto it, and a
    /// sync's renames in its target: its temp-file-then-rename and `--backup-dir`).
    Overwrite,
    /// A new file named like a backup beside others (a copy arriving).
    Add,
    /// A new entry in a repository's or a backup destination's structure: a copy of a
    /// repository arriving in its target.
    Insert,
}

impl Act {
    /// The act `op` is for an entry of class `class`; `None` when no sync rule covers it (a
    /// new hard link, or a change through another name of a backup's inode, whose other names
    /// may lie anywhere).
    pub fn of(op: Operation, class: &Class, situation: &Situation) -> Option<Act> {
        use Operation as O;
        let shared = matches!(class, Class::Backup(BackupReason::SameInodeAsBackup));
        match op {
            O::Delete | O::RemoveDirectory | O::Exchange => Some(Act::Remove),
            O::Rename | O::RenameInFolder if situation.in_target && !situation.in_source => {
                Some(Act::Overwrite)
            }
            O::Rename | O::RenameInFolder => Some(Act::Remove),
            O::HardLink => None,
            O::CreateDuplicate => Some(Act::Add),
            O::CreateInStructure => Some(Act::Insert),
            O::CreateVerification => None,
            O::OpenWrite
            | O::OpenAppend
            | O::Truncate
            | O::Write
            | O::Replace
            | O::Fallocate
            | O::CopyInto
            | O::SetAttributes
            | O::SetXattr
            | O::RemoveXattr => (!shared).then_some(Act::Overwrite),
        }
    }
}

/// The rule that decided, in words an admin understands (the 320's detail) and the reference
/// sentence it follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    MoveToProtected,
    MoveToUnprotected,
    MoveOutOfDestination,
    /// A move out of a destination into one no vetted definition names.
    MoveIntoUnapproved,
    MoveFromNetwork,
    Purge,
    PurgeSourceNotDestination,
    PurgeIntoDestination,
    /// A purge whose source only definitions nobody approved name as a destination.
    PurgeSourceNotApproved,
    PurgeOnNetwork,
    /// The served end of a transfer another machine drives (`rsync --server`).
    Served,
    Overwrite,
    OverwriteInDestination,
    CopyIn,
    /// A copy of a backup destination arriving in a repository or destination in its target.
    InsertFromDestination,
    /// What arrives in a repository or destination must come from a backup destination.
    InsertSourceNotDestination,
    /// ... of a vetted definition.
    InsertSourceNotApproved,
    /// Its command line does not ask for this (a delete without a move or purge, say).
    NotAsked,
    /// The entry is not in the folders its command line names.
    OutsideItsFolders,
    /// A hard link, or a change through another name of a backup's inode.
    NotASyncOperation,
    /// Its command line cannot be read as a permitted sync.
    Unreadable(Unreadable),
    /// A folder on its command line that is not an absolute path of this machine.
    FolderNotAbsolute(String),
    /// It runs in another mount namespace or root than the service: its paths name other files.
    ElsewhereRooted,
}

impl Rule {
    /// The reference sentence (or imageguard's own condition) the rule follows.
    pub fn reference(&self) -> &'static str {
        match self {
            Rule::MoveToProtected | Rule::MoveToUnprotected => MOVE,
            Rule::MoveOutOfDestination => MOVE_KEEPS_DESTINATION,
            Rule::MoveIntoUnapproved
            | Rule::PurgeSourceNotApproved
            | Rule::InsertSourceNotApproved => APPROVED,
            Rule::MoveFromNetwork | Rule::PurgeOnNetwork | Rule::Served => NETWORK,
            Rule::Purge | Rule::PurgeSourceNotDestination | Rule::PurgeIntoDestination => PURGE,
            Rule::Overwrite | Rule::OverwriteInDestination => OVERWRITE,
            _ => ENABLES,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::MoveToProtected => f.write_str("a move whose target is on a protected volume"),
            Rule::MoveToUnprotected => f.write_str(
                "a move deletes backup files from its source only when its target is on a protected volume, and this target is not",
            ),
            Rule::MoveOutOfDestination => f.write_str(
                "a move out of a backup destination deletes only when its target is a backup destination too",
            ),
            Rule::MoveIntoUnapproved => f.write_str(
                "a move out of a backup destination deletes only when its target is the destination of a definition an administrator approved, and no approved definition names this target",
            ),
            Rule::PurgeSourceNotApproved => f.write_str(
                "a purge or mirror deletes backup files only when its source is the destination of a definition an administrator approved, and no approved definition names this source",
            ),
            Rule::InsertSourceNotApproved => f.write_str(
                "a sync tool adds to a repository or backup destination only what it copies from the destination of a definition an administrator approved, and no approved definition names this source",
            ),
            Rule::MoveFromNetwork => f.write_str(
                "the source of this move is a protected volume reached over the network: every delete is blocked",
            ),
            Rule::Purge => f.write_str(
                "a purge from a backup destination into a folder that is not one",
            ),
            Rule::PurgeSourceNotDestination => f.write_str(
                "a purge or mirror deletes backup files only when its source is a backup destination of a saved definition, and this source is not",
            ),
            Rule::PurgeIntoDestination => f.write_str(
                "a purge or mirror never deletes in a backup destination of a saved definition, and this target is one",
            ),
            Rule::PurgeOnNetwork => f.write_str(
                "the target of this purge or mirror is a protected volume reached over the network: every delete is blocked",
            ),
            Rule::Served => f.write_str(
                "it serves this volume to another machine, which drives the transfer: every delete over the network is blocked",
            ),
            Rule::Overwrite => f.write_str("an overwrite outside every backup destination"),
            Rule::OverwriteInDestination => f.write_str(
                "a sync tool never overwrites backup files in a backup destination of a saved definition",
            ),
            Rule::CopyIn => f.write_str("a copy arriving in its target folder"),
            Rule::InsertFromDestination => f.write_str(
                "a copy of a backup destination arriving in a repository or destination",
            ),
            Rule::InsertSourceNotDestination => f.write_str(
                "a sync tool adds to a repository or backup destination only what it copies from a backup destination, and this source is not one",
            ),
            Rule::NotAsked => f.write_str(
                "its command line asks for no move, purge or mirror that would delete this",
            ),
            Rule::OutsideItsFolders => f.write_str(
                "the file is not in the folders its command line names",
            ),
            Rule::NotASyncOperation => f.write_str(
                "hard links and changes through another name of a backup are not sync operations",
            ),
            Rule::Unreadable(u) => write!(f, "{u}"),
            Rule::FolderNotAbsolute(p) => write!(
                f,
                "its command line names {p:?}: a sync tool's folders must be absolute paths of this machine"
            ),
            Rule::ElsewhereRooted => f.write_str(
                "it runs in another mount namespace or root: its paths do not name this machine's folders",
            ),
        }
    }
}

/// The outcome for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub allowed: bool,
    pub rule: Rule,
}

impl Ruling {
    fn allow(rule: Rule) -> Ruling {
        Ruling {
            allowed: true,
            rule,
        }
    }
    fn refuse(rule: Rule) -> Ruling {
        Ruling {
            allowed: false,
            rule,
        }
    }
}

fn move_rule(at: &Situation) -> Ruling {
    if at.source.network {
        Ruling::refuse(Rule::MoveFromNetwork)
    } else if !at.target.protected {
        Ruling::refuse(Rule::MoveToUnprotected)
    } else if at.source.destination && !at.target.destination {
        Ruling::refuse(Rule::MoveOutOfDestination)
    } else if at.source.destination && !at.target.vetted {
        Ruling::refuse(Rule::MoveIntoUnapproved)
    } else {
        Ruling::allow(Rule::MoveToProtected)
    }
}

fn purge_rule(at: &Situation) -> Ruling {
    if at.target.network {
        Ruling::refuse(Rule::PurgeOnNetwork)
    } else if !at.source.destination {
        Ruling::refuse(Rule::PurgeSourceNotDestination)
    } else if at.target.destination {
        Ruling::refuse(Rule::PurgeIntoDestination)
    } else if !at.source.vetted {
        Ruling::refuse(Rule::PurgeSourceNotApproved)
    } else {
        Ruling::allow(Rule::Purge)
    }
}

fn overwrite_rule(at: &Situation) -> Ruling {
    if at.target.destination {
        Ruling::refuse(Rule::OverwriteInDestination)
    } else {
        Ruling::allow(Rule::Overwrite)
    }
}

/// Decide `act` on a backup entry for a sync tool running `cmd`, the entry and folders being
/// as `at` says.
pub fn judge(cmd: &SyncCommand, act: Act, at: &Situation) -> Ruling {
    if !at.in_source && !at.in_target {
        return Ruling::refuse(Rule::OutsideItsFolders);
    }
    match act {
        // The other machine's command line is not here to read: whatever it asked, no delete.
        Act::Remove if cmd.served => Ruling::refuse(Rule::Served),
        Act::Remove => {
            let mut rulings = Vec::with_capacity(2);
            if at.in_source && cmd.moves {
                rulings.push(move_rule(at));
            }
            if at.in_target && cmd.purges {
                rulings.push(purge_rule(at));
            }
            // Every rule that applies must allow (an entry in both folders of a nested
            // command answers to both).
            match rulings.iter().find(|r| !r.allowed) {
                Some(refused) => refused.clone(),
                None => rulings
                    .into_iter()
                    .next()
                    .unwrap_or(Ruling::refuse(Rule::NotAsked)),
            }
        }
        Act::Overwrite if at.in_target && (cmd.copies || cmd.moves || cmd.purges) => {
            overwrite_rule(at)
        }
        Act::Overwrite => Ruling::refuse(Rule::NotAsked),
        Act::Add if at.in_target => Ruling::allow(Rule::CopyIn),
        // Junk added to a repository stops its restores: only a copy of a destination (whose
        // files only certified programs write) may arrive there.
        Act::Insert if at.in_target && at.source.vetted => {
            Ruling::allow(Rule::InsertFromDestination)
        }
        Act::Insert if at.in_target && at.source.destination => {
            Ruling::refuse(Rule::InsertSourceNotApproved)
        }
        Act::Insert if at.in_target => Ruling::refuse(Rule::InsertSourceNotDestination),
        Act::Add | Act::Insert => Ruling::refuse(Rule::NotAsked),
    }
}
