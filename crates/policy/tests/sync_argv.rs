//! The sync tools' command-line readers take any argv without panicking, and an option they do
//! not know anywhere in it makes the command unreadable (never a permitted sync).
//! `PROPTEST_CASES` sets the number of cases.

use imageguard_policy::sync_tools::rsync;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "-a",
    "-avz",
    "-e",
    "ssh",
    "-essh",
    "--delete",
    "--del",
    "--remove-source-files",
    "-r",
    "--no-r",
    "--exclude",
    "*.tmp",
    "--exclude=*.part",
    "--",
    "-",
    "/srv/",
    "/mnt/b",
    ".",
    "--server",
    "-B",
    "1024",
    "--info=progress2",
    "--files-from=x",
    "-@",
    "",
    "=",
    "--=",
    "-\u{e9}",
    "--backup-dir",
    "\u{0}",
];

proptest! {
    #[test]
    fn any_argv_is_read_or_refused(idx in proptest::collection::vec(0..TOKENS.len(), 0..40)) {
        let mut argv = vec!["rsync"];
        argv.extend(idx.iter().map(|&i| TOKENS[i]));
        let _ = rsync::parse(&argv);
    }

    #[test]
    fn random_bytes(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..12)) {
        let mut argv = vec![b"rsync".to_vec()];
        argv.extend(args);
        let _ = rsync::parse(&argv);
    }

    #[test]
    fn an_unknown_option_anywhere_before_the_operands_is_never_a_sync(
        idx in proptest::collection::vec(0..TOKENS.len(), 0..20),
        at in 0usize..20,
    ) {
        let mut argv: Vec<&str> = vec!["rsync"];
        argv.extend(idx.iter().map(|&i| TOKENS[i]).filter(|t| !t.starts_with("--") || *t == "--" || t.len() > 2));
        // Insert before any `--` and not as the value of an option taking one.
        let end = argv.iter().position(|a| *a == "--").unwrap_or(argv.len());
        let at = 1 + at % end.max(1);
        let at = at.min(end);
        let takes_value = |a: &str| matches!(a, "-e" | "-B" | "-@" | "--exclude" | "--backup-dir");
        prop_assume!(!takes_value(argv[at - 1]));
        argv.insert(at, "--surely-not-an-rsync-option");
        prop_assert!(rsync::parse(&argv).is_err());
    }
}

/// rclone and robocopy readers: any argv, read or refused; an unknown flag is never a sync.
mod other_dialects {
    use imageguard_policy::sync_tools::{read, Dialect};
    use proptest::prelude::*;

    const TOKENS: &[&str] = &[
        "sync",
        "move",
        "copy",
        "delete",
        "-vP",
        "--transfers",
        "8",
        "--backup-dir",
        "/b",
        "--",
        "/srv/",
        "/mnt/o",
        "remote:x",
        "--dry-run=true",
        "/MIR",
        "/mov",
        "/PURGE",
        "/XF",
        "*.tmp",
        "/R:3",
        "/XX",
        "-",
        "",
        "=",
        "--files-from",
        "\u{e9}",
    ];

    proptest! {
        #[test]
        fn any_argv_is_read_or_refused(
            idx in proptest::collection::vec(0..TOKENS.len(), 0..30),
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..6),
        ) {
            for (d, argv0) in [(Dialect::Rclone, "rclone"), (Dialect::Robocopy, "robocopy")] {
                let mut argv: Vec<Vec<u8>> = vec![argv0.as_bytes().to_vec()];
                argv.extend(idx.iter().map(|&i| TOKENS[i].as_bytes().to_vec()));
                let _ = read(d, &argv);
                argv.extend(raw.iter().cloned());
                let _ = read(d, &argv);
            }
        }

        #[test]
        fn an_unknown_flag_is_never_a_sync(idx in proptest::collection::vec(0..TOKENS.len(), 0..20)) {
            let mut argv: Vec<&str> = vec!["rclone", "--surely-not-an-rclone-flag"];
            argv.extend(idx.iter().map(|&i| TOKENS[i]));
            prop_assert!(read(Dialect::Rclone, &argv).is_err());
            let mut argv: Vec<&str> = vec!["robocopy", "/a", "/b"];
            argv.extend(idx.iter().map(|&i| TOKENS[i]));
            argv.push("/SURELYNOTANOPTION");
            prop_assert!(read(Dialect::Robocopy, &argv).is_err());
        }
    }
}
