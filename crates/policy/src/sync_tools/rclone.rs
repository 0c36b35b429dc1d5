//! rclone's command line: `rclone [flags] SUBCOMMAND [flags] SOURCE TARGET`, flags anywhere
//! (pflag): `--flag`, `--flag=value`, `--flag value` for flags that take one, bundled short
//! flags (`-vP`). What it means for the sync rules (from rclone's documentation):
//! - `move`, `moveto`: copy, then delete the source files (robocopy's `/MOV`); on one file
//!   system rclone renames instead, which the guard sees as a removal from the source folder;
//! - `sync`: make the target identical to the source, deleting what the source lacks (`/MIR`);
//! - `copy`, `copyto`: copy, replacing target files that differ (an overwrite);
//! - `--backup-dir DIR`: "any files which would have been overwritten or deleted are moved in
//!   their original hierarchies into this directory" (a rename out of the target);
//! - `delete`, `purge`, `rmdir`, `rmdirs`, `dedupe`, `deletefile`, `cleanup`, `bisync` and every
//!   other subcommand are not transfers: they never delete or change backup files.
//!
//! A flag this table does not know makes the command unreadable (`--rc` would let another
//! process command rclone over HTTP; `--files-from` takes the list elsewhere).

use super::{operand, texts, SyncCommand, Unreadable};

/// Long flags that take a value.
const WITH_VALUE: &[&str] = &[
    "backup-dir",
    "suffix",
    "max-delete",
    "max-delete-size",
    "compare-dest",
    "copy-dest",
    "partial-suffix",
    "config",
    "log-file",
    "log-level",
    "log-format",
    "stats",
    "stats-log-level",
    "stats-unit",
    "transfers",
    "checkers",
    "retries",
    "retries-sleep",
    "low-level-retries",
    "bwlimit",
    "bwlimit-file",
    "max-transfer",
    "max-duration",
    "cutoff-mode",
    "order-by",
    "exclude",
    "include",
    "filter",
    "exclude-from",
    "include-from",
    "filter-from",
    "exclude-if-present",
    "min-age",
    "max-age",
    "min-size",
    "max-size",
    "max-depth",
    "multi-thread-streams",
    "multi-thread-cutoff",
    "multi-thread-chunk-size",
    "buffer-size",
    "timeout",
    "contimeout",
    "user-agent",
    "modify-window",
    "tpslimit",
    "tpslimit-burst",
    "cache-dir",
    "temp-dir",
];

/// Long boolean flags (also accepted as `--flag=true|false`).
const BOOLS: &[&str] = &[
    "delete-before",
    "delete-during",
    "delete-after",
    "delete-excluded",
    "delete-empty-src-dirs",
    "create-empty-src-dirs",
    "track-renames",
    "suffix-keep-extension",
    "ignore-existing",
    "immutable",
    "check-first",
    "no-traverse",
    "no-check-dest",
    "no-update-modtime",
    "inplace",
    "links",
    "copy-links",
    "skip-links",
    "one-file-system",
    "local-no-check-updated",
    "metadata",
    "stats-one-line",
    "progress",
    "dry-run",
    "interactive",
    "verbose",
    "quiet",
    "checksum",
    "update",
    "size-only",
    "ignore-times",
    "ignore-size",
    "ignore-checksum",
    "ignore-errors",
    "human-readable",
    "use-json-log",
    "fast-list",
    "error-on-no-transfer",
    "no-console",
    "ask-password",
    "ignore-case",
    "ignore-case-sync",
    "no-gzip-encoding",
    "retries-sleep-disabled",
];

/// Short boolean flags: -v (counted), -q, -P, -n, -i, -c, -u, -I, -l, -L, -x, -M.
const SHORT: &str = "vqPnicuIlLxM";

/// Read an rclone command line (`argv[0]` included).
pub fn parse<S: AsRef<[u8]>>(argv: &[S]) -> Result<SyncCommand, Unreadable> {
    let args = texts(argv)?;
    let mut positional: Vec<&str> = Vec::new();
    let mut backup_dir = None;
    let mut keeps_existing = false;
    let mut i = 0;
    let mut no_more_flags = false;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if no_more_flags || a == "-" || !a.starts_with('-') {
            positional.push(a);
            continue;
        }
        if a == "--" {
            no_more_flags = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if name == "files-from" || name == "files-from-raw" {
                return Err(Unreadable::ElsewhereDefined(format!("--{name}")));
            }
            if WITH_VALUE.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| Unreadable::MissingValue(format!("--{name}")))?;
                        i += 1;
                        v
                    }
                };
                if name == "backup-dir" {
                    backup_dir = Some(value);
                }
                continue;
            }
            if BOOLS.contains(&name) {
                let on = match inline {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(_) => return Err(Unreadable::UnknownOption(a.to_string())),
                };
                if matches!(name, "ignore-existing" | "immutable") && on {
                    keeps_existing = true;
                }
                continue;
            }
            return Err(Unreadable::UnknownOption(a.to_string()));
        }
        for c in a[1..].chars() {
            if !SHORT.contains(c) {
                return Err(Unreadable::UnknownOption(format!("-{c}")));
            }
        }
    }
    let (&sub, operands) = positional
        .split_first()
        .ok_or_else(|| Unreadable::NotATransfer(String::new()))?;
    let (moves, purges) = match sub {
        "move" | "moveto" => (true, false),
        "sync" => (false, true),
        "copy" | "copyto" => (false, false),
        other => return Err(Unreadable::NotATransfer(other.to_string())),
    };
    let [source, target] = operands else {
        return Err(Unreadable::Operands);
    };
    Ok(SyncCommand {
        moves,
        purges,
        mirrors: purges,
        copies: !keeps_existing,
        backup_dir: backup_dir.map(operand),
        served: false,
        sources: vec![operand(source)],
        target: Some(operand(target)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Operand;
    use super::*;

    fn p(line: &str) -> Result<SyncCommand, Unreadable> {
        parse(&line.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn subcommands_and_flags() {
        let c = p("rclone sync -vP --transfers 8 /srv/backups /mnt/offsite").unwrap();
        assert!(c.purges && c.mirrors && c.copies && !c.moves);
        assert_eq!(c.sources, vec![Operand::Local("/srv/backups".into())]);
        assert_eq!(c.target, Some(Operand::Local("/mnt/offsite".into())));

        let c = p("rclone --log-level=INFO move /a /b --delete-empty-src-dirs").unwrap();
        assert!(c.moves && !c.purges);

        let c = p("rclone copy --ignore-existing /a b2:bucket/x").unwrap();
        assert!(!c.copies && !c.moves && !c.purges);
        assert_eq!(c.target, Some(Operand::Remote("b2:bucket/x".into())));

        let c = p("rclone sync /a /b --backup-dir /b-old").unwrap();
        assert_eq!(c.backup_dir, Some(Operand::Local("/b-old".into())));
        assert!(!p("rclone copy --immutable=true /a /b").unwrap().copies);
        assert!(p("rclone copy --immutable=false /a /b").unwrap().copies);
    }

    #[test]
    fn what_is_not_a_readable_transfer() {
        for (line, why) in [
            (
                "rclone delete /mnt/b",
                Unreadable::NotATransfer("delete".into()),
            ),
            (
                "rclone purge /mnt/b",
                Unreadable::NotATransfer("purge".into()),
            ),
            (
                "rclone rmdirs /mnt/b",
                Unreadable::NotATransfer("rmdirs".into()),
            ),
            (
                "rclone dedupe /mnt/b",
                Unreadable::NotATransfer("dedupe".into()),
            ),
            (
                "rclone bisync /a /b",
                Unreadable::NotATransfer("bisync".into()),
            ),
            (
                "rclone sync --rc /a /b",
                Unreadable::UnknownOption("--rc".into()),
            ),
            (
                "rclone sync -vZ /a /b",
                Unreadable::UnknownOption("-Z".into()),
            ),
            (
                "rclone copy --files-from=l /a /b",
                Unreadable::ElsewhereDefined("--files-from".into()),
            ),
            (
                "rclone sync /a /b --backup-dir",
                Unreadable::MissingValue("--backup-dir".into()),
            ),
            ("rclone sync /a", Unreadable::Operands),
            ("rclone sync /a /b /c", Unreadable::Operands),
            (
                "rclone sync --dry-run=maybe /a /b",
                Unreadable::UnknownOption("--dry-run=maybe".into()),
            ),
        ] {
            assert_eq!(p(line), Err(why), "{line}");
        }
    }
}
