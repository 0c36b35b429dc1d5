//! Every parser takes arbitrary input without panicking: random bytes, and random sequences of
//! the tokens each format is made of (which reach further into the parsers than random bytes).
//! `PROPTEST_CASES` sets the number of cases (default below).

use std::path::Path;

use imageguard_definitions::{
    backintime, borgmatic, restic_systemd, rsnapshot, text, timeshift, Problem,
};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

fn all_parsers(input: &str) {
    let f = Path::new("/fuzz/file");
    let mut nothing = |p: &Path| -> Result<String, Problem> { Err(Problem::new(p, None, "no")) };
    // Includes that always answer with the same input: loops must end.
    let mut echo = |_: &Path| -> Result<String, Problem> { Ok(input.to_string()) };
    let _ = borgmatic::parse(f, input, Path::new("/root"));
    let _ = rsnapshot::parse(f, input, &mut nothing);
    let _ = rsnapshot::parse(f, input, &mut echo);
    let _ = timeshift::parse(f, input);
    let _ = backintime::parse(f, input);
    let _ = restic_systemd::parse(f, input, &mut nothing);
    let _ = restic_systemd::parse(f, input, &mut echo);
}

const TOKENS: &[&str] = &[
    "\n",
    "\t",
    " ",
    "  ",
    "- ",
    ":",
    "=",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "#",
    "\\",
    "~/",
    "/",
    "repositories",
    "location",
    "path",
    "label",
    "source_directories",
    "ssh://u@h/r",
    "u@h:r",
    "snapshot_root",
    "backup",
    "include_conf",
    "`",
    "/etc/x.conf",
    "backup_device_uuid",
    "btrfs_mode",
    "true",
    "profiles",
    "1:2",
    "profile1.snapshots.path",
    "profile1.snapshots.mode",
    "ssh",
    "profile2.snapshots.include.1.value",
    "[Service]",
    "ExecStart",
    "Environment",
    "EnvironmentFile",
    "-",
    "restic",
    "/usr/bin/restic",
    "-r",
    "--repo",
    "--repository-file",
    "RESTIC_REPOSITORY",
    "local:",
    "é",
    "\u{0}",
    "\r",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (input, _) = text::decode(Path::new("/fuzz/file"), &bytes);
        all_parsers(&input);
    }

    #[test]
    fn random_token_sequences(idx in proptest::collection::vec(0..TOKENS.len(), 0..400)) {
        let input: String = idx.into_iter().map(|i| TOKENS[i]).collect();
        all_parsers(&input);
    }
}
