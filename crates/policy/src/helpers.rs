//! Helper processes of a certified program: rsnapshot runs `cp -al`, `rm -rf` and `rsync` as
//! separate processes, Timeshift and Back In Time run rsync, rm, mv and cp, borgmatic runs borg.
//! A helper is certified only as a helper of named programs (its entry's `helper_of`), and a
//! helper *process* counts as certified only while its parent is a live certified process of one
//! of those programs, or a certified helper process descending from one: an uncertified process
//! in between (a shell a configuration hook started), a helper started by anything else, and an
//! orphan re-parented elsewhere (its program ended or was killed) all count as uncertified.
//!
//! Which helpers a program is known to run is a table here, by the program's file name;
//! the configuration can add to it.

use crate::{CertifiedEntry, CertifiedList, Role, Untrusted};

/// General file tools that are refused as certified programs on their own (every use of them
/// could modify backups) but are fine as a program's helpers, which count only under it.
pub const FILE_TOOLS: &[&str] = &["cp", "mv", "rm", "install", "tee", "truncate", "dd", "ln"];

/// The helpers each known backup program runs as separate processes (by file name).
pub const KNOWN_HELPERS: &[(&str, &[&str])] = &[
    // `cmd_cp` (`cp -al` for the hard-linked copy), `cmd_rm` (`rm -rf` of the oldest
    // snapshot), `cmd_rsync`; rotation itself is Perl's rename in rsnapshot's own process.
    ("rsnapshot", &["cp", "rm", "rsync"]),
    // Snapshots by rsync (through bash scripts it writes), rotation and removal by rm, mv, cp.
    ("timeshift", &["rsync", "rm", "mv", "cp", "bash"]),
    ("timeshift-launcher", &["rsync", "rm", "mv", "cp", "bash"]),
    // Back In Time (a Python program) runs rsync, and rm/mv/cp for removal and renaming.
    ("backintime", &["rsync", "rm", "mv", "cp"]),
    // borgmatic runs borg for every action.
    ("borgmatic", &["borg"]),
];

/// The helpers a program (by path or file name) is known to run, the known ones first, then
/// the ones `extra` (from the configuration: file name → helper names) adds.
pub fn known_helpers(program: &str, extra: &[(String, Vec<String>)]) -> Vec<String> {
    let name = program.rsplit('/').next().unwrap_or(program);
    let mut out: Vec<String> = KNOWN_HELPERS
        .iter()
        .filter(|(p, _)| *p == name)
        .flat_map(|(_, h)| h.iter().map(|s| s.to_string()))
        .collect();
    for (p, helpers) in extra {
        if p == name || p == program {
            for h in helpers {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
    }
    out
}

/// What is known of a helper process's parent, at the moment of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent<'a> {
    /// The helper was re-parented (to init or a subreaper): what started it is gone.
    Gone,
    /// The parent is certified now, as part of the certified program `root` (itself, or one of
    /// its helpers).
    Certified { root: &'a str },
    /// The parent is not certified (its executable, and why).
    Uncertified { exe: &'a str, why: &'a Untrusted },
}

/// Whether a process certified as a helper of `helper_of` counts as certified, given its parent.
pub fn judge_helper(helper_of: &[String], parent: &Parent<'_>) -> Result<(), Untrusted> {
    let programs = helper_of.join(", ");
    match parent {
        Parent::Certified { root } if helper_of.iter().any(|p| p == root) => Ok(()),
        Parent::Certified { root } => Err(Untrusted::HelperOutside(format!(
            "a helper of {programs}, started by {root}"
        ))),
        Parent::Gone => Err(Untrusted::HelperOutside(format!(
            "a helper of {programs} whose program is gone (re-parented)"
        ))),
        Parent::Uncertified { exe, why } => Err(Untrusted::HelperOutside(format!(
            "a helper of {programs}, started by {exe}, which is not certified ({why})"
        ))),
    }
}

/// What certifying a helper did to the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperMerge {
    /// A new entry, a helper of the program only.
    New,
    /// It was a helper of other programs: now of this one too (its record renewed).
    Added,
    /// It is certified on its own, everywhere: left so (a helper would be less).
    Standalone,
}

/// Record `entry` (freshly certified) as a helper of `program` in `list`.
pub fn merge_helper(
    list: &mut CertifiedList,
    mut entry: CertifiedEntry,
    program: &str,
) -> HelperMerge {
    match list.get(&entry.path) {
        Some(old) if old.helper_of.is_empty() => HelperMerge::Standalone,
        Some(old) => {
            let mut of = old.helper_of.clone();
            if !of.iter().any(|p| p == program) {
                of.push(program.to_string());
            }
            entry.helper_of = of;
            list.upsert(entry);
            HelperMerge::Added
        }
        None => {
            entry.helper_of = vec![program.to_string()];
            list.upsert(entry);
            HelperMerge::New
        }
    }
}

/// One line about a new certification: what was recorded.
pub fn describe(e: &CertifiedEntry) -> String {
    let mut msg = match e.sync_tool {
        Some(d) => format!(
            "added {} as a sync tool, {d} dialect (sha256 {}): not certified; it may delete and \
             overwrite backup files only as the sync rules allow, while [sync_tools] allow = true",
            e.path, e.sha256
        ),
        None => format!("certified {} (sha256 {})", e.path, e.sha256),
    };
    if let Some(i) = &e.interpreter {
        msg.push_str(&format!(", a script run by {}", i.path));
    }
    if let Some(c) = &e.closure {
        let count = |r: Role| c.files.iter().filter(|f| f.role == r).count();
        let linkage = if c.runtimes.is_empty() {
            "statically linked".to_string()
        } else {
            format!(
                "{} libraries",
                count(Role::Library) + count(Role::NssModule)
            )
        };
        msg.push_str(&format!(
            "; closure: {} files in {} watched folders ({linkage}, {} modules, {} learned, {} \
             listed); `imageguard certified --json` lists them",
            c.files.len(),
            c.dirs.len(),
            count(Role::Module),
            count(Role::Learned),
            count(Role::Listed)
        ));
    }
    msg
}

/// Put a freshly certified entry on the list (as a helper of `helper_of`, a program's path,
/// when given): what was recorded, and whether the list changed (a program certified on its
/// own is not narrowed to a helper, nor its record renewed).
pub fn record(
    list: &mut CertifiedList,
    entry: CertifiedEntry,
    helper_of: Option<&str>,
) -> (String, bool) {
    let described = describe(&entry);
    let Some(program) = helper_of else {
        list.upsert(entry);
        return (described, true);
    };
    let path = entry.path.clone();
    match merge_helper(list, entry, program) {
        HelperMerge::Standalone => (
            format!(
                "{path} is certified on its own already (everywhere, not only under {program}): \
                 left so"
            ),
            false,
        ),
        HelperMerge::New | HelperMerge::Added => (
            format!(
                "{described}; as a helper of {} only",
                list.get(&path)
                    .map(|e| e.helper_of.join(", "))
                    .unwrap_or_default()
            ),
            true,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> CertifiedEntry {
        crate::certification::tests::entry(path, 2)
    }

    #[test]
    fn helpers_are_merged_and_a_standalone_certification_is_never_narrowed() {
        let mut list = CertifiedList::default();
        assert_eq!(
            merge_helper(&mut list, entry("/usr/bin/cp"), "/usr/bin/rsnapshot"),
            HelperMerge::New
        );
        assert_eq!(
            merge_helper(&mut list, entry("/usr/bin/cp"), "/usr/bin/backintime"),
            HelperMerge::Added
        );
        assert_eq!(
            merge_helper(&mut list, entry("/usr/bin/cp"), "/usr/bin/rsnapshot"),
            HelperMerge::Added
        );
        assert_eq!(
            list.get("/usr/bin/cp").unwrap().helper_of,
            vec!["/usr/bin/rsnapshot", "/usr/bin/backintime"]
        );
        list.upsert(entry("/usr/bin/rsync"));
        assert_eq!(
            merge_helper(&mut list, entry("/usr/bin/rsync"), "/usr/bin/rsnapshot"),
            HelperMerge::Standalone
        );
        assert!(list.get("/usr/bin/rsync").unwrap().helper_of.is_empty());
    }

    #[test]
    fn known_programs_have_their_helpers_and_the_configuration_adds() {
        assert_eq!(
            known_helpers("/usr/bin/rsnapshot", &[]),
            vec!["cp", "rm", "rsync"]
        );
        assert_eq!(known_helpers("borgmatic", &[]), vec!["borg"]);
        assert!(known_helpers("/usr/bin/restic", &[]).is_empty());
        let extra = vec![
            (
                "rsnapshot".to_string(),
                vec!["du".to_string(), "rm".to_string()],
            ),
            ("/opt/job".to_string(), vec!["tar".to_string()]),
        ];
        assert_eq!(
            known_helpers("/usr/bin/rsnapshot", &extra),
            vec!["cp", "rm", "rsync", "du"]
        );
        assert_eq!(known_helpers("/opt/job", &extra), vec!["tar"]);
    }

    #[test]
    fn a_helper_counts_only_under_its_own_live_certified_program() {
        let of = vec!["/usr/bin/rsnapshot".to_string()];
        let not = Untrusted::NotCertified;
        let rows: Vec<(Parent<'_>, bool, &str)> = vec![
            (
                Parent::Certified {
                    root: "/usr/bin/rsnapshot",
                },
                true,
                "",
            ),
            (
                Parent::Certified {
                    root: "/usr/bin/borgmatic",
                },
                false,
                "started by /usr/bin/borgmatic",
            ),
            (Parent::Gone, false, "re-parented"),
            (
                Parent::Uncertified {
                    exe: "/usr/bin/dash",
                    why: &not,
                },
                false,
                "started by /usr/bin/dash, which is not certified (not certified)",
            ),
        ];
        for (parent, ok, says) in rows {
            let v = judge_helper(&of, &parent);
            assert_eq!(v.is_ok(), ok, "{parent:?}");
            if let Err(e) = v {
                assert!(e.to_string().contains(says), "{parent:?}: {e}");
                assert!(e.to_string().contains("/usr/bin/rsnapshot"), "{e}");
            }
        }
    }
}
