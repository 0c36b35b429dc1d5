//! The sync-tool rules over every combination the issue names: {move, purge, mirror,
//! overwrite} x source {protected or not, local or network} x target {protected or not, local
//! or network} x {source is a backup destination of an approved definition, of an unapproved
//! one only, or not one} x {the same for the target} (issue 17: only a definition an
//! administrator approved lets a sync tool delete). Each row
//! names the reference sentence it follows; rows where the entry's own folder is not protected
//! are listed as such (the guard never sees them). Then the reference's sentences verbatim,
//! through the robocopy dialect.

use imageguard_policy::classify::{BackupReason, Class};
use imageguard_policy::sync_tools::rules::{
    judge, Act, Place, Rule, Situation, APPROVED, MOVE, MOVE_KEEPS_DESTINATION, NETWORK, OVERWRITE,
    PURGE,
};
use imageguard_policy::sync_tools::{read, Dialect, SyncCommand};
use imageguard_policy::Operation;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Move,
    Purge,
    Mirror,
    Overwrite,
}

fn command(kind: Kind) -> SyncCommand {
    let line = match kind {
        Kind::Move => "robocopy /s /t /MOV",
        Kind::Purge => "robocopy /s /t /PURGE",
        Kind::Mirror => "robocopy /s /t /MIR",
        Kind::Overwrite => "robocopy /s /t",
    };
    read(Dialect::Robocopy, &line.split(' ').collect::<Vec<_>>()).unwrap()
}

/// What the reference's sentences say of one row, read sentence by sentence: `None` when the
/// entry's own folder is not protected (nothing to decide), else (allowed, sentence).
fn reference_says(kind: Kind, src: Place, tgt: Place) -> Option<(bool, &'static str)> {
    let backup_on = if kind == Kind::Move { src } else { tgt };
    if !backup_on.protected {
        return None;
    }
    Some(match kind {
        // "If the source of a /MOVE /MOV ... is a MIG protected volume on a network share then
        // all delete operations are blocked."
        Kind::Move if src.network => (false, NETWORK),
        // "... will only delete backup files in the source folder if the destination folder is
        // also on a protected volume."
        Kind::Move if !tgt.protected => (false, MOVE),
        Kind::Move if src.destination && !tgt.destination => (false, MOVE_KEEPS_DESTINATION),
        // imageguard: only an approved definition's destination lets a move delete into it.
        Kind::Move if src.destination && !tgt.vetted => (false, APPROVED),
        Kind::Move => (true, MOVE),
        // "... or target of a /MIR /PURGE operation is a MIG protected volume on a network
        // share then all delete operations are blocked."
        Kind::Purge | Kind::Mirror if tgt.network => (false, NETWORK),
        // "1. The source folder is a backup destination ... 2. The target folder is not ..."
        Kind::Purge | Kind::Mirror if !src.destination || tgt.destination => (false, PURGE),
        // imageguard: and the source's definition an administrator approved.
        Kind::Purge | Kind::Mirror if !src.vetted => (false, APPROVED),
        Kind::Purge | Kind::Mirror => (true, PURGE),
        // "... overwrite ... only be allowed if the target folder is not a backup destination"
        Kind::Overwrite => (!tgt.destination, OVERWRITE),
    })
}

fn places() -> Vec<Place> {
    let mut v = Vec::new();
    for protected in [false, true] {
        for network in [false, true] {
            for (destination, vetted) in [(false, false), (true, false), (true, true)] {
                v.push(Place {
                    protected,
                    network,
                    destination,
                    vetted,
                });
            }
        }
    }
    v
}

fn describe(p: Place) -> String {
    format!(
        "{}{}{}",
        if p.protected {
            "protected"
        } else {
            "unprotected"
        },
        if p.network { ",network" } else { ",local" },
        match (p.destination, p.vetted) {
            (true, true) => ",approved destination",
            (true, false) => ",unapproved destination",
            _ => "",
        }
    )
}

#[test]
fn every_combination_follows_the_reference() {
    let backup = Class::Backup(BackupReason::Pattern("*.mrimg".into()));
    let mut rows = 0;
    let mut decided = 0;
    let mut table = String::new();
    for kind in [Kind::Move, Kind::Purge, Kind::Mirror, Kind::Overwrite] {
        let cmd = command(kind);
        for src in places() {
            for tgt in places() {
                rows += 1;
                let expected = reference_says(kind, src, tgt);
                let Some((allowed, sentence)) = expected else {
                    table += &format!(
                        "{kind:?} | {} -> {} | not guarded (the backup is not on a protected volume)\n",
                        describe(src),
                        describe(tgt)
                    );
                    continue;
                };
                decided += 1;
                let at = Situation {
                    in_source: kind == Kind::Move,
                    in_target: kind != Kind::Move,
                    source: src,
                    target: tgt,
                };
                let op = match kind {
                    Kind::Overwrite => Operation::Truncate,
                    _ => Operation::Delete,
                };
                let act = Act::of(op, &backup, &at).unwrap();
                let ruling = judge(&cmd, act, &at);
                assert_eq!(
                    (ruling.allowed, ruling.rule.reference()),
                    (allowed, sentence),
                    "{kind:?} {src:?} -> {tgt:?}: {}",
                    ruling.rule
                );
                table += &format!(
                    "{kind:?} | {} -> {} | {} | {} | {sentence}\n",
                    describe(src),
                    describe(tgt),
                    if allowed { "allowed" } else { "refused" },
                    ruling.rule
                );
            }
        }
    }
    assert_eq!(rows, 4 * 12 * 12);
    assert_eq!(decided, 4 * 12 * 6);
    println!("{table}");
}

/// A few rows written out by hand, not derived: the cases an admin meets.
#[test]
fn rows_an_admin_meets() {
    let p = |protected, network, destination| Place {
        protected,
        network,
        destination,
        vetted: destination,
    };
    let dest = p(true, false, true);
    let offsite = p(true, false, false);
    let usb_unprotected = p(false, false, false);
    let nfs_protected = p(true, true, false);
    // A folder a user's own definition (not approved) names as its destination.
    let users_own = Place {
        vetted: false,
        ..dest
    };
    let backup = Class::Backup(BackupReason::Repository(
        imageguard_policy::RepoKind::Restic,
    ));
    // (command, operation, in source, in target, source, target, allowed, rule)
    type Row = (
        &'static str,
        Operation,
        bool,
        bool,
        Place,
        Place,
        bool,
        Rule,
    );
    let cases: &[Row] = &[
        // Mirror a destination to an offsite copy: old backup files there are pruned.
        (
            "robocopy /s /t /MIR",
            Operation::Delete,
            false,
            true,
            dest,
            offsite,
            true,
            Rule::Purge,
        ),
        // The same mirror the other way, into the destination: nothing is deleted.
        (
            "robocopy /s /t /MIR",
            Operation::Delete,
            false,
            true,
            offsite,
            dest,
            false,
            Rule::PurgeSourceNotDestination,
        ),
        // A user's fresh definition names an empty folder: its mirror prunes nothing.
        (
            "robocopy /s /t /MIR",
            Operation::Delete,
            false,
            true,
            users_own,
            offsite,
            false,
            Rule::PurgeSourceNotApproved,
        ),
        // Nor does a move out of a destination into a user's own one delete.
        (
            "robocopy /s /t /MOV",
            Operation::Delete,
            true,
            false,
            dest,
            users_own,
            false,
            Rule::MoveIntoUnapproved,
        ),
        // A copy of an approved destination arriving in a repository in its target.
        (
            "robocopy /s /t",
            Operation::CreateInStructure,
            false,
            true,
            dest,
            offsite,
            true,
            Rule::InsertFromDestination,
        ),
        // ... and from anywhere else, or from a user's own destination: refused.
        (
            "robocopy /s /t",
            Operation::CreateInStructure,
            false,
            true,
            usb_unprotected,
            offsite,
            false,
            Rule::InsertSourceNotDestination,
        ),
        (
            "robocopy /s /t",
            Operation::CreateInStructure,
            false,
            true,
            users_own,
            offsite,
            false,
            Rule::InsertSourceNotApproved,
        ),
        // Ransomware's empty folder purged onto a destination.
        (
            "robocopy /s /t /PURGE",
            Operation::Delete,
            false,
            true,
            usb_unprotected,
            dest,
            false,
            Rule::PurgeSourceNotDestination,
        ),
        // Move to an unprotected drive: copied, the source stays.
        (
            "robocopy /s /t /MOVE",
            Operation::Delete,
            true,
            false,
            offsite,
            usb_unprotected,
            false,
            Rule::MoveToUnprotected,
        ),
        // Move out of a destination to a plain protected folder: refused (imageguard's rule).
        (
            "robocopy /s /t /MOV",
            Operation::Delete,
            true,
            false,
            dest,
            offsite,
            false,
            Rule::MoveOutOfDestination,
        ),
        // A rename out of the source is the move's removal.
        (
            "robocopy /s /t /MOV",
            Operation::Rename,
            true,
            false,
            offsite,
            offsite,
            true,
            Rule::MoveToProtected,
        ),
        // Overwrite in a destination.
        (
            "robocopy /s /t",
            Operation::Replace,
            false,
            true,
            offsite,
            dest,
            false,
            Rule::OverwriteInDestination,
        ),
        // rsync's temp-file-then-rename in an offsite copy.
        (
            "robocopy /s /t",
            Operation::Rename,
            false,
            true,
            dest,
            offsite,
            true,
            Rule::Overwrite,
        ),
        // A mirror onto a protected NFS mount.
        (
            "robocopy /s /t /MIR",
            Operation::Delete,
            false,
            true,
            dest,
            nfs_protected,
            false,
            Rule::PurgeOnNetwork,
        ),
        // A plain copy deletes nothing.
        (
            "robocopy /s /t",
            Operation::Delete,
            false,
            true,
            dest,
            offsite,
            false,
            Rule::NotAsked,
        ),
        // A copy arriving next to other backups.
        (
            "robocopy /s /t",
            Operation::CreateDuplicate,
            false,
            true,
            dest,
            offsite,
            true,
            Rule::CopyIn,
        ),
        // Outside its folders.
        (
            "robocopy /s /t /MIR",
            Operation::Delete,
            false,
            false,
            dest,
            offsite,
            false,
            Rule::OutsideItsFolders,
        ),
        // /XX: extras are never purged.
        (
            "robocopy /s /t /MIR /XX",
            Operation::Delete,
            false,
            true,
            dest,
            offsite,
            false,
            Rule::NotAsked,
        ),
    ];
    for (line, op, in_source, in_target, source, target, allowed, rule) in cases {
        let cmd = read(Dialect::Robocopy, &line.split(' ').collect::<Vec<_>>()).unwrap();
        let at = Situation {
            in_source: *in_source,
            in_target: *in_target,
            source: *source,
            target: *target,
        };
        let act = Act::of(*op, &backup, &at).unwrap();
        let r = judge(&cmd, act, &at);
        assert_eq!((r.allowed, &r.rule), (*allowed, rule), "{line} {op:?}");
    }
    // A hard link, or a write through a hard link of a backup, is never a sync operation.
    let at = Situation {
        in_target: true,
        ..Default::default()
    };
    assert_eq!(Act::of(Operation::HardLink, &backup, &at), None);
    let linked = Class::Backup(BackupReason::SameInodeAsBackup);
    assert_eq!(Act::of(Operation::OpenWrite, &linked, &at), None);
}

/// The same command read in each dialect means the same.
#[test]
fn dialects_agree() {
    let line = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let rsync = read(Dialect::Rsync, &line("rsync -a --delete /srv/b/ /mnt/o")).unwrap();
    let rclone = read(Dialect::Rclone, &line("rclone sync /srv/b/ /mnt/o")).unwrap();
    let robo = read(Dialect::Robocopy, &line("robocopy /srv/b/ /mnt/o /MIR")).unwrap();
    for c in [&rsync, &rclone, &robo] {
        assert!(c.mirrors && c.purges && !c.moves, "{c:?}");
        assert_eq!(c.what(), "mirror");
    }
    let rsync = read(
        Dialect::Rsync,
        &line("rsync --remove-source-files /srv/b/ /mnt/o"),
    )
    .unwrap();
    let rclone = read(Dialect::Rclone, &line("rclone move /srv/b/ /mnt/o")).unwrap();
    let robo = read(Dialect::Robocopy, &line("robocopy /srv/b/ /mnt/o /MOV")).unwrap();
    for c in [&rsync, &rclone, &robo] {
        assert!(c.moves && !c.purges, "{c:?}");
    }
    // rsync --server cannot name its source: served.
    let served = read(
        Dialect::Rsync,
        &line("rsync --server -logDtpre.iLsfxCIvu --delete . /srv/b"),
    )
    .unwrap();
    assert!(served.served && served.purges);
}
