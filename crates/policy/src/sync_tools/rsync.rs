//! rsync's command line, read the way rsync reads it (popt): bundled short options (`-avz`),
//! short options with their value attached or next (`-e ssh`, `-essh`), `--opt=value` and
//! `--opt value`, `--no-OPTION`, `--` ending the options; the operands are sources then the
//! target. What it means for the sync rules: `--remove-source-files` is a move (robocopy's
//! `/MOV`), any `--del*` is a purge (`/PURGE`), and a recursive purge (`-r`, `-a`) a mirror
//! (`/MIR`). `rsync --server` (the receiving side of a remote transfer, under sshd) cannot name
//! its source. An option this table does not know makes the command unreadable: the caller is
//! then not a permitted sync, never allowed by default.

use super::{operand, texts, SyncCommand, Unreadable};

/// What an rsync command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RsyncCommand {
    /// `--remove-source-files`.
    pub remove_source_files: bool,
    /// Any of `--del`, `--delete`, `--delete-before/-during/-delay/-after/-excluded`,
    /// `--delete-missing-args`.
    pub delete: bool,
    /// `-r`, `--recursive`, or `-a`/`--archive` (which implies it), not turned off again.
    pub recursive: bool,
    /// The receiving (or sending) side of a remote transfer: `--server`.
    pub server: bool,
    /// `--backup-dir DIR`: replaced and deleted files are moved there.
    pub backup_dir: Option<String>,
    /// `--ignore-existing`: files already in the target are never replaced.
    pub ignore_existing: bool,
    /// The operands before the last (as given; a trailing `/` means "the folder's contents").
    pub sources: Vec<String>,
    /// The last operand.
    pub target: Option<String>,
}

/// Long options that take a value (`--opt=value` or `--opt value`).
const LONG_WITH_VALUE: &[&str] = &[
    "info",
    "debug",
    "backup-dir",
    "suffix",
    "confine-root",
    "chmod",
    "checksum-choice",
    "block-size",
    "rsh",
    "rsync-path",
    "max-delete",
    "max-size",
    "min-size",
    "max-alloc",
    "partial-dir",
    "usermap",
    "groupmap",
    "chown",
    "timeout",
    "contimeout",
    "modify-window",
    "temp-dir",
    "compare-dest",
    "copy-dest",
    "link-dest",
    "compress-choice",
    "compress-level",
    "compress-threads",
    "skip-compress",
    "filter",
    "exclude",
    "exclude-from",
    "include",
    "include-from",
    "copy-as",
    "address",
    "port",
    "sockopts",
    "outbuf",
    "remote-option",
    "out-format",
    "log-file",
    "log-file-format",
    "password-file",
    "early-input",
    "bwlimit",
    "stop-after",
    "stop-at",
    "write-batch",
    "only-write-batch",
    "protocol",
    "iconv",
    "checksum-seed",
    "zc",
    "cc",
    "log-format",
    "new-compress",
    "old-compress",
];

/// Long options whose input decides what is transferred, off the command line.
const LONG_ELSEWHERE: &[&str] = &["files-from", "read-batch"];

/// Long options without a value that change nothing the sync rules look at.
const LONG_FLAGS: &[&str] = &[
    "verbose",
    "stderr",
    "quiet",
    "no-motd",
    "checksum",
    "archive",
    "inc-recursive",
    "i-r",
    "relative",
    "no-implied-dirs",
    "backup",
    "update",
    "inplace",
    "append",
    "append-verify",
    "dirs",
    "old-dirs",
    "old-d",
    "mkpath",
    "links",
    "copy-links",
    "copy-unsafe-links",
    "safe-links",
    "insecure-links",
    "munge-links",
    "copy-dirlinks",
    "keep-dirlinks",
    "hard-links",
    "perms",
    "executability",
    "acls",
    "xattrs",
    "owner",
    "group",
    "devices",
    "copy-devices",
    "write-devices",
    "specials",
    "times",
    "atimes",
    "open-noatime",
    "crtimes",
    "omit-dir-times",
    "omit-link-times",
    "super",
    "fake-super",
    "sparse",
    "preallocate",
    "dry-run",
    "whole-file",
    "one-file-system",
    "existing",
    "ignore-non-existing",
    "ignore-existing",
    "ignore-missing-args",
    "ignore-errors",
    "force",
    "partial",
    "delay-updates",
    "prune-empty-dirs",
    "numeric-ids",
    "ignore-times",
    "size-only",
    "fuzzy",
    "compress",
    "cvs-exclude",
    "from0",
    "old-args",
    "secluded-args",
    "protect-args",
    "trust-sender",
    "blocking-io",
    "stats",
    "8-bit-output",
    "human-readable",
    "progress",
    "itemize-changes",
    "list-only",
    "fsync",
    "ipv4",
    "ipv6",
    "version",
    "help",
    "sender",
];

const DELETES: &[&str] = &[
    "del",
    "delete",
    "delete-before",
    "delete-during",
    "delete-delay",
    "delete-after",
    "delete-excluded",
    "delete-missing-args",
];

/// Short options that take a value.
const SHORT_WITH_VALUE: &[char] = &['B', 'e', 'f', 'T', 'M', '@'];
/// Short options without a value (bundled freely).
const SHORT_FLAGS: &str = "vqcarRbudlLkKHpEAXogtUNOJSnWxmIyzC0s8hi46VDPF";

/// Read an rsync command line (`argv[0]` included).
pub fn parse<S: AsRef<[u8]>>(argv: &[S]) -> Result<RsyncCommand, Unreadable> {
    let args = texts(argv)?;
    let mut cmd = RsyncCommand::default();
    let mut operands = Vec::new();
    let mut i = 0;
    let mut no_more_options = false;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if no_more_options || a == "-" || !a.starts_with('-') {
            operands.push(a.to_string());
            continue;
        }
        if a == "--" {
            no_more_options = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if LONG_ELSEWHERE.contains(&name) {
                return Err(Unreadable::ElsewhereDefined(format!("--{name}")));
            }
            if LONG_WITH_VALUE.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        if i >= args.len() {
                            return Err(Unreadable::MissingValue(format!("--{name}")));
                        }
                        i += 1;
                        args[i - 1]
                    }
                };
                if name == "backup-dir" {
                    cmd.backup_dir = Some(value.to_string());
                }
                continue;
            }
            if inline.is_some() {
                return Err(Unreadable::UnknownOption(a.to_string()));
            }
            match name {
                "remove-source-files" => cmd.remove_source_files = true,
                "recursive" | "archive" => cmd.recursive = true,
                "no-recursive" | "no-r" => cmd.recursive = false,
                "server" | "sender" => cmd.server = true,
                "ignore-existing" => cmd.ignore_existing = true,
                n if DELETES.contains(&n) => cmd.delete = true,
                n if LONG_FLAGS.contains(&n) => {}
                // `--no-OPTION` turns off a flag; turning off a deletion is not a deletion.
                n if n.strip_prefix("no-").is_some_and(|f| {
                    LONG_FLAGS.contains(&f) || f.len() == 1 && SHORT_FLAGS.contains(f)
                }) => {}
                _ => return Err(Unreadable::UnknownOption(a.to_string())),
            }
            continue;
        }
        // Bundled short options: `-avz`, `-essh`, `-e ssh`.
        for (at, c) in a[1..].char_indices() {
            if SHORT_WITH_VALUE.contains(&c) {
                let rest = &a[1 + at + c.len_utf8()..];
                if rest.is_empty() {
                    if i >= args.len() {
                        return Err(Unreadable::MissingValue(format!("-{c}")));
                    }
                    i += 1;
                }
                break;
            }
            match c {
                'r' | 'a' => cmd.recursive = true,
                c if SHORT_FLAGS.contains(c) => {}
                _ => return Err(Unreadable::UnknownOption(format!("-{c}"))),
            }
        }
    }
    cmd.target = operands.pop();
    cmd.sources = operands;
    Ok(cmd)
}

impl RsyncCommand {
    /// What it asks for, in the words of every dialect.
    pub fn into_sync(self) -> SyncCommand {
        SyncCommand {
            moves: self.remove_source_files,
            purges: self.delete,
            mirrors: self.delete && self.recursive,
            copies: !self.ignore_existing,
            backup_dir: self.backup_dir.map(|d| operand(&d)),
            served: self.server,
            sources: self.sources.iter().map(|s| operand(s)).collect(),
            target: self.target.as_deref().map(operand),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<RsyncCommand, Unreadable> {
        parse(&line.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn what_each_command_line_asks_for() {
        let c = p("rsync -avz --delete /srv/backups/ /mnt/offsite/backups").unwrap();
        assert!(c.delete && c.recursive && !c.remove_source_files && !c.server);
        assert_eq!(c.sources, vec!["/srv/backups/"]);
        assert_eq!(c.target.as_deref(), Some("/mnt/offsite/backups"));

        let c = p("rsync --remove-source-files -t a.img b.img /mnt/old/").unwrap();
        assert!(c.remove_source_files && !c.delete && !c.recursive);
        assert_eq!(c.sources, vec!["a.img", "b.img"]);

        // Values attached, separate, and `=`; `--` ends the options.
        let c =
            p("rsync -essh -e ssh --exclude *.tmp --exclude=*.part -B 1024 -- -odd /t").unwrap();
        assert_eq!(c.sources, vec!["-odd"]);
        assert!(!c.delete);

        // A purge without recursion is not a mirror; --no-r turns recursion off again.
        assert!(!p("rsync --del -d /a/ /b").unwrap().recursive);
        assert!(
            !p("rsync -a --no-r --delete-after /a/ /b")
                .unwrap()
                .recursive
        );
        // Whether `--no-delete` clears every deletion variant is rsync's business: unread.
        assert!(p("rsync --delete-after --no-delete -a /a/ /b").is_err());

        // The receiving side of a remote transfer.
        let c = p("rsync --server -logDtpre.iLsfxCIvu --delete . /srv/backups").unwrap();
        assert!(c.server && c.delete);
    }

    #[test]
    fn what_it_does_not_know_is_never_read_as_a_permitted_sync() {
        assert_eq!(
            p("rsync -a --delete-everything-now /a/ /b"),
            Err(Unreadable::UnknownOption("--delete-everything-now".into()))
        );
        assert_eq!(
            p("rsync -aQ /a/ /b"),
            Err(Unreadable::UnknownOption("-Q".into()))
        );
        assert_eq!(
            p("rsync -a /a/ /b -e"),
            Err(Unreadable::MissingValue("-e".into()))
        );
        assert_eq!(
            p("rsync -a --files-from=list / /b"),
            Err(Unreadable::ElsewhereDefined("--files-from".into()))
        );
        assert_eq!(
            p("rsync --archive=yes /a /b"),
            Err(Unreadable::UnknownOption("--archive=yes".into()))
        );
        assert_eq!(
            parse(&[b"rsync".as_slice(), b"\xff"]),
            Err(Unreadable::NotText)
        );
    }
}
