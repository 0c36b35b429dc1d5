//! Definitions an administrator vetted (`imageguard definitions approve`). Definitions are
//! other programs' files, some in users' homes: any of them widens what is protected at once,
//! but what lets a sync tool delete or add (a purge's source, a move's target) comes only from
//! a vetted one. An approval records what the definition said when it was approved (its
//! destinations and sources): a definition that says anything else now is not approved until
//! approved again. imageguard's own `[[definition]]` tables are the administrator's (in the
//! configuration, sealed by the admin lock). Approvals live in the service's state (sealed
//! too).

use std::path::{Path, PathBuf};

use imageguard_definitions::{Definition, Destination, Program};
use serde::{Deserialize, Serialize};

/// One approved definition, as it was when approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub program: Program,
    pub file: PathBuf,
    pub name: String,
    pub destinations: Vec<Destination>,
    pub sources: Vec<PathBuf>,
    /// When (seconds since the epoch, wall clock: for the administrator's eyes only).
    pub approved_at: i64,
}

/// Where a definition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// imageguard's own `[[definition]]`.
    Own,
    Approved,
    /// Approved once, but its destinations or sources changed since.
    Changed,
    NotApproved,
}

impl Standing {
    /// Whether it lets a sync tool delete or add.
    pub fn vetted(self) -> bool {
        matches!(self, Standing::Own | Standing::Approved)
    }

    pub fn word(self) -> &'static str {
        match self {
            Standing::Own => "own",
            Standing::Approved => "yes",
            Standing::Changed => "changed",
            Standing::NotApproved => "no",
        }
    }
}

/// What names a definition: its program, file and name.
fn key_of(d: &Definition) -> (Program, &Path, &str) {
    (d.program, &d.file, &d.name)
}

fn same_definition(a: &Approval, d: &Definition) -> bool {
    (a.program, a.file.as_path(), a.name.as_str()) == key_of(d)
}

/// Where `d` stands with `approvals`, `found` being every definition found now. A file can
/// hold several definitions under one name (borgmatic: one per repository, named after the
/// file when unlabelled): those are approved together, and all of them stand as approved
/// only while they say exactly what they said then (one more repository is a change).
pub fn standing(approvals: &[Approval], found: &[Definition], d: &Definition) -> Standing {
    if d.program == Program::Imageguard {
        return Standing::Own;
    }
    let mut recorded: Vec<(&Vec<Destination>, &Vec<PathBuf>)> = approvals
        .iter()
        .filter(|a| same_definition(a, d))
        .map(|a| (&a.destinations, &a.sources))
        .collect();
    if recorded.is_empty() {
        return Standing::NotApproved;
    }
    let mut now: Vec<(&Vec<Destination>, &Vec<PathBuf>)> = found
        .iter()
        .filter(|f| key_of(f) == key_of(d))
        .map(|f| (&f.destinations, &f.sources))
        .collect();
    recorded.sort();
    now.sort();
    if recorded == now {
        Standing::Approved
    } else {
        Standing::Changed
    }
}

/// Record `chosen` (every definition of the names approved) as approved now, replacing
/// earlier approvals of the same names.
fn approve(approvals: &mut Vec<Approval>, chosen: &[&Definition], now: i64) {
    approvals.retain(|a| !chosen.iter().any(|d| same_definition(a, d)));
    for d in chosen {
        approvals.push(Approval {
            program: d.program,
            file: d.file.clone(),
            name: d.name.clone(),
            destinations: d.destinations.clone(),
            sources: d.sources.clone(),
            approved_at: now,
        });
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let c = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    a == b || c(a) == c(b)
}

fn destinations_text(d: &[Destination]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `imageguard definitions approve|revoke FILE [--name NAME]` over `approvals`: the
/// definitions of `found` read from `file` (named `name`, when given) approved as they are
/// now, or their approvals forgotten. One line for each, saying what it lets sync tools do;
/// an error naming what `file` holds when nothing matches.
pub fn apply(
    approvals: &mut Vec<Approval>,
    found: &[Definition],
    file: &Path,
    name: Option<&str>,
    revoke: bool,
    now: i64,
) -> Result<Vec<String>, String> {
    let in_file: Vec<&Definition> = found.iter().filter(|d| same_file(&d.file, file)).collect();
    let chosen: Vec<&Definition> = in_file
        .iter()
        .copied()
        .filter(|d| name.is_none_or(|n| d.name == n))
        .collect();
    if chosen.is_empty() && !(revoke && approvals.iter().any(|a| same_file(&a.file, file))) {
        return Err(if in_file.is_empty() {
            format!("no backup definition is read from {}", file.display())
        } else {
            format!(
                "{} holds no definition named {:?} (it holds: {})",
                file.display(),
                name.unwrap_or_default(),
                in_file
                    .iter()
                    .map(|d| format!("{:?}", d.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    if !revoke {
        let theirs: Vec<&Definition> = chosen
            .iter()
            .copied()
            .filter(|d| d.program != Program::Imageguard)
            .collect();
        approve(approvals, &theirs, now);
    }
    let mut lines = vec![];
    for d in chosen {
        if d.program == Program::Imageguard {
            lines.push(format!(
                "{} is imageguard's own: approved by being in its configuration",
                label(d.program, &d.file, &d.name)
            ));
            continue;
        }
        if revoke {
            approvals.retain(|a| !same_definition(a, d));
            lines.push(format!(
                "approval of {} withdrawn: sync tools no longer delete or add by it",
                label(d.program, &d.file, &d.name)
            ));
        } else {
            lines.push(format!(
                "approved {}: destinations {}; a sync tool may now prune copies of them and \
                 move into them (until its destinations or sources change)",
                label(d.program, &d.file, &d.name),
                destinations_text(&d.destinations)
            ));
        }
    }
    // Approvals of definitions no longer there (a file removed, a name changed).
    if revoke {
        let gone = revoke_file(approvals, file, name);
        if gone > 0 {
            lines.push(format!(
                "{gone} approval(s) of definitions no longer in {} withdrawn",
                file.display()
            ));
        }
    }
    Ok(lines)
}

/// Forget the approvals recorded for `file` (named `name`, when given); how many.
fn revoke_file(approvals: &mut Vec<Approval>, file: &Path, name: Option<&str>) -> usize {
    let before = approvals.len();
    approvals.retain(|a| !(same_file(&a.file, file) && name.is_none_or(|n| a.name == n)));
    before - approvals.len()
}

/// How a definition is named to an administrator.
pub fn label(program: Program, file: &Path, name: &str) -> String {
    format!("{} {} ({name})", program.name(), file.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(file: &str, name: &str, dest: &str) -> Definition {
        Definition {
            program: Program::Borgmatic,
            file: file.into(),
            name: name.into(),
            destinations: vec![Destination::Local { path: dest.into() }],
            sources: vec!["/etc".into()],
            writer: None,
        }
    }

    #[test]
    fn approved_as_it_was() {
        let mut approvals = vec![];
        let file = Path::new("/etc/borgmatic.d/a.yaml");
        let d = def("/etc/borgmatic.d/a.yaml", "a", "/mnt/usb/borg");
        let other = def("/etc/borgmatic.d/b.yaml", "a", "/mnt/usb/other");
        let found = vec![d.clone(), other.clone()];
        assert_eq!(standing(&approvals, &found, &d), Standing::NotApproved);
        apply(&mut approvals, &found, file, None, false, 1).unwrap();
        assert_eq!(standing(&approvals, &found, &d), Standing::Approved);
        // Same destination, another file: its own approval.
        assert_eq!(standing(&approvals, &found, &other), Standing::NotApproved);

        // Another destination now: approved no more until approved again.
        let moved = def("/etc/borgmatic.d/a.yaml", "a", "/home/bob/empty");
        let found = vec![moved.clone(), other.clone()];
        assert_eq!(standing(&approvals, &found, &moved), Standing::Changed);
        // More sources.
        let mut more_sources = d.clone();
        more_sources.sources.push("/home".into());
        let found2 = vec![more_sources.clone()];
        assert_eq!(
            standing(&approvals, &found2, &more_sources),
            Standing::Changed
        );
        // One more repository in the file (borgmatic: a definition per repository, all
        // named after the file): both stand changed, the old one too.
        let added = def("/etc/borgmatic.d/a.yaml", "a", "/srv/another");
        let found3 = vec![d.clone(), added.clone()];
        assert_eq!(standing(&approvals, &found3, &d), Standing::Changed);
        assert_eq!(standing(&approvals, &found3, &added), Standing::Changed);
        // Approved again, together.
        apply(&mut approvals, &found3, file, None, false, 2).unwrap();
        assert_eq!(approvals.len(), 2);
        assert_eq!(standing(&approvals, &found3, &d), Standing::Approved);
        assert_eq!(standing(&approvals, &found3, &added), Standing::Approved);
        // One removed again: a change too.
        assert_eq!(
            standing(&approvals, std::slice::from_ref(&d), &d),
            Standing::Changed
        );

        // imageguard's own tables are the administrator's.
        let own = Definition {
            program: Program::Imageguard,
            ..other.clone()
        };
        assert_eq!(standing(&approvals, &[], &own), Standing::Own);
        assert!(Standing::Own.vetted() && Standing::Approved.vetted());
        assert!(!Standing::Changed.vetted() && !Standing::NotApproved.vetted());

        // Withdrawn, by name; unknown names and files are said.
        let lines = apply(&mut approvals, &found3, file, Some("a"), true, 3).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(standing(&approvals, &found3, &d), Standing::NotApproved);
        let lines = apply(&mut approvals, &found, file, None, false, 4).unwrap();
        assert!(lines[0].contains("/home/bob/empty"), "{lines:?}");
        let e = apply(&mut approvals, &found, file, Some("zz"), false, 5).unwrap_err();
        assert!(e.contains("holds no definition named \"zz\""), "{e}");
        let e = apply(
            &mut approvals,
            &found,
            Path::new("/nowhere"),
            None,
            false,
            5,
        )
        .unwrap_err();
        assert!(e.contains("no backup definition"), "{e}");
    }
}
