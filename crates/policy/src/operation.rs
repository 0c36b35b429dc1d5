//! The operations a caller can attempt on a file of a protected volume.

use serde::{Deserialize, Serialize};

/// One file-system operation, as the guard sees it. Reads, stats and listings are not here:
/// they are always allowed and never reach the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Open an existing file for writing (O_WRONLY, O_RDWR, O_RDWR|O_APPEND).
    OpenWrite,
    /// Open an existing file write-only for appending (O_WRONLY|O_APPEND): every write lands
    /// at its end, and the descriptor cannot be mapped to write elsewhere.
    OpenAppend,
    /// Open with O_TRUNC, or truncate by path or descriptor.
    Truncate,
    /// chmod, chown, utimes and other attribute changes.
    SetAttributes,
    /// unlink of a file.
    Delete,
    /// rmdir of a directory.
    RemoveDirectory,
    /// rename with this entry as the source.
    Rename,
    /// rename of this file to a free name in its own folder under which it is still a backup
    /// (a temporary file moved into place).
    RenameInFolder,
    /// rename of another entry onto this one, replacing it.
    Replace,
    /// renameat2(RENAME_EXCHANGE) involving this entry.
    Exchange,
    /// A new hard link to this file, or a link named like a backup.
    HardLink,
    /// fallocate of any mode (allocate, punch hole, collapse, zero range).
    Fallocate,
    /// setxattr.
    SetXattr,
    /// removexattr.
    RemoveXattr,
    /// copy_file_range or clone into this file.
    CopyInto,
    /// A data write through a file handle (only seen when kernel passthrough is off).
    Write,
    /// Creating a new file named like a backup next to existing backups.
    CreateDuplicate,
    /// Creating the verification file (see [`crate::classify::VERIFICATION_FILE`]).
    CreateVerification,
    /// Adding an entry to a repository's or a backup destination's structure (creating,
    /// renaming or linking it in; see [`crate::classify::Rules::classify_new`]): one junk
    /// index or snapshot file stops every restore.
    CreateInStructure,
}

impl Operation {
    /// Every operation, in the order of their [`Operation::code`]s.
    pub const ALL: [Operation; 19] = [
        Operation::OpenWrite,
        Operation::OpenAppend,
        Operation::Truncate,
        Operation::SetAttributes,
        Operation::Delete,
        Operation::RemoveDirectory,
        Operation::Rename,
        Operation::RenameInFolder,
        Operation::Replace,
        Operation::Exchange,
        Operation::HardLink,
        Operation::Fallocate,
        Operation::SetXattr,
        Operation::RemoveXattr,
        Operation::CopyInto,
        Operation::Write,
        Operation::CreateDuplicate,
        Operation::CreateVerification,
        Operation::CreateInStructure,
    ];

    /// Its number, stable, for tables an enforcement point looks up (see
    /// [`crate::compiled`]): its place in [`Operation::ALL`].
    pub fn code(self) -> u8 {
        match self {
            Operation::OpenWrite => 0,
            Operation::OpenAppend => 1,
            Operation::Truncate => 2,
            Operation::SetAttributes => 3,
            Operation::Delete => 4,
            Operation::RemoveDirectory => 5,
            Operation::Rename => 6,
            Operation::RenameInFolder => 7,
            Operation::Replace => 8,
            Operation::Exchange => 9,
            Operation::HardLink => 10,
            Operation::Fallocate => 11,
            Operation::SetXattr => 12,
            Operation::RemoveXattr => 13,
            Operation::CopyInto => 14,
            Operation::Write => 15,
            Operation::CreateDuplicate => 16,
            Operation::CreateVerification => 17,
            Operation::CreateInStructure => 18,
        }
    }

    /// Short verb used in event texts and listings.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::OpenWrite => "open for writing",
            Operation::OpenAppend => "open for appending",
            Operation::Truncate => "truncate",
            Operation::SetAttributes => "change attributes of",
            Operation::Delete => "delete",
            Operation::RemoveDirectory => "remove directory",
            Operation::Rename => "rename",
            Operation::RenameInFolder => "rename in its folder",
            Operation::Replace => "replace",
            Operation::Exchange => "exchange",
            Operation::HardLink => "hard link",
            Operation::Fallocate => "allocate or punch",
            Operation::SetXattr => "set extended attribute on",
            Operation::RemoveXattr => "remove extended attribute from",
            Operation::CopyInto => "copy into",
            Operation::Write => "write",
            Operation::CreateDuplicate => "create a duplicate backup",
            Operation::CreateVerification => "create the verification file",
            Operation::CreateInStructure => "add to a repository or backup destination",
        }
    }

    /// Stable machine name (matches the serde form).
    pub fn name(self) -> &'static str {
        match self {
            Operation::OpenWrite => "open-write",
            Operation::OpenAppend => "open-append",
            Operation::Truncate => "truncate",
            Operation::SetAttributes => "set-attributes",
            Operation::Delete => "delete",
            Operation::RemoveDirectory => "remove-directory",
            Operation::Rename => "rename",
            Operation::RenameInFolder => "rename-in-folder",
            Operation::Replace => "replace",
            Operation::Exchange => "exchange",
            Operation::HardLink => "hard-link",
            Operation::Fallocate => "fallocate",
            Operation::SetXattr => "set-xattr",
            Operation::RemoveXattr => "remove-xattr",
            Operation::CopyInto => "copy-into",
            Operation::Write => "write",
            Operation::CreateDuplicate => "create-duplicate",
            Operation::CreateVerification => "create-verification",
            Operation::CreateInStructure => "create-in-structure",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
