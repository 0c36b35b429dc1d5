//! RoboCopy's own syntax, `robocopy SOURCE DESTINATION [FILE...] [/OPTION...]`, options
//! case-insensitive. No Linux tool speaks it; an admin maps a tool (a wrapper script around
//! rsync, say) to this dialect, and the reference's sentences about `/MOV`, `/MOVE`, `/PURGE`
//! and `/MIR` become tests verbatim. Source and destination are always the first two
//! arguments (so Linux paths beginning with `/` are not taken for options); after them an
//! argument beginning with `/` must be an option this table knows.
//!
//! - `/MOV`: move files (delete them from the source after copying); `/MOVE`: files and folders.
//! - `/PURGE`: delete destination files and folders that no longer exist in the source.
//! - `/MIR`: mirror a tree (`/E` plus `/PURGE`).
//! - `/XX`: exclude "extra" files: nothing is purged.

use super::{texts, Operand, SyncCommand, Unreadable};

/// Options without a value (compared in upper case).
const FLAGS: &[&str] = &[
    "S",
    "E",
    "Z",
    "B",
    "ZB",
    "J",
    "EFSRAW",
    "SEC",
    "COPYALL",
    "NOCOPY",
    "SECFIX",
    "TIMFIX",
    "CREATE",
    "FAT",
    "256",
    "PF",
    "SJ",
    "SL",
    "NODCOPY",
    "NOOFFLOAD",
    "COMPRESS",
    "A",
    "M",
    "XC",
    "XN",
    "XO",
    "XL",
    "IS",
    "IT",
    "IM",
    "MAXLAD",
    "MINLAD",
    "XJ",
    "FFT",
    "DST",
    "XJD",
    "XJF",
    "REG",
    "TBD",
    "LFSM",
    "L",
    "X",
    "V",
    "TS",
    "FP",
    "BYTES",
    "NS",
    "NC",
    "NFL",
    "NDL",
    "NP",
    "ETA",
    "TEE",
    "NJH",
    "NJS",
    "UNICODE",
    "NOSD",
    "NODD",
    "IF",
    "QUIT",
];

/// Options with a value after a colon (`/R:3`).
const WITH_VALUE: &[&str] = &[
    "LEV", "COPY", "DCOPY", "A+", "A-", "MON", "MOT", "RH", "IPG", "IA", "XA", "MAX", "MIN",
    "MAXAGE", "MINAGE", "R", "W", "LOG", "LOG+", "UNILOG", "UNILOG+", "MT", "LFSM",
];

/// Read a robocopy-style command line (`argv[0]` included).
pub fn parse<S: AsRef<[u8]>>(argv: &[S]) -> Result<SyncCommand, Unreadable> {
    let args = texts(argv)?;
    let [source, target, rest @ ..] = args.as_slice() else {
        return Err(Unreadable::Operands);
    };
    let mut cmd = SyncCommand {
        copies: true,
        sources: vec![Operand::Local(source.to_string())],
        target: Some(Operand::Local(target.to_string())),
        ..SyncCommand::default()
    };
    let mut keeps_extras = false;
    for a in rest {
        // Anything else is a file name or pattern: of the copy, or of an /XF or /XD list.
        let Some(opt) = a.strip_prefix('/') else {
            continue;
        };
        let upper = opt.to_ascii_uppercase();
        let (name, value) = match upper.split_once(':') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (upper.clone(), None),
        };
        match (name.as_str(), &value) {
            ("MOV" | "MOVE", None) => cmd.moves = true,
            ("PURGE", None) => cmd.purges = true,
            ("MIR", None) => {
                cmd.purges = true;
                cmd.mirrors = true;
            }
            ("XX", None) => keeps_extras = true,
            ("XF" | "XD", None) => {}
            ("JOB" | "SAVE", _) => return Err(Unreadable::ElsewhereDefined(format!("/{opt}"))),
            (n, None) if FLAGS.contains(&n) => {}
            (n, Some(_)) if WITH_VALUE.contains(&n) => {}
            _ => return Err(Unreadable::UnknownOption(a.to_string())),
        }
    }
    if keeps_extras {
        cmd.purges = false;
        cmd.mirrors = false;
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<SyncCommand, Unreadable> {
        parse(&line.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn the_four_parameters_case_insensitive() {
        let c = p("robocopy /srv/b /mnt/o *.mrimg /mov /R:1 /W:1").unwrap();
        assert!(c.moves && !c.purges);
        assert_eq!(c.sources, vec![Operand::Local("/srv/b".into())]);
        assert!(p("robocopy /a /b /MOVE").unwrap().moves);
        let c = p("robocopy /a /b /Purge").unwrap();
        assert!(c.purges && !c.mirrors);
        let c = p("robocopy /a /b /MIR /XF *.tmp /XD cache").unwrap();
        assert!(c.purges && c.mirrors);
        assert!(!p("robocopy /a /b /MIR /XX").unwrap().purges);
    }

    #[test]
    fn unknown_or_elsewhere() {
        assert_eq!(
            p("robocopy /a /b /MIR /etc"),
            Err(Unreadable::UnknownOption("/etc".into()))
        );
        assert_eq!(
            p("robocopy /a /b /JOB:x"),
            Err(Unreadable::ElsewhereDefined("/JOB:x".into()))
        );
        assert_eq!(p("robocopy /a"), Err(Unreadable::Operands));
        assert_eq!(
            p("robocopy /a /b /MOV:3"),
            Err(Unreadable::UnknownOption("/MOV:3".into()))
        );
    }
}
