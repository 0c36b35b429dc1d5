//! imageguard's own `[[definition]]` tables, for backup scripts and tools no module reads:
//! `name`, `program` (free text), `destinations` (folders, or remote locations, which are never
//! protected from here) and `sources`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{destination, Definition, Parsed, Problem, Program};

/// One `[[definition]]` table of imageguard's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnDefinition {
    pub name: String,
    /// What runs the job (for the administrator; not checked).
    #[serde(default)]
    pub program: String,
    pub destinations: Vec<String>,
    #[serde(default)]
    pub sources: Vec<PathBuf>,
}

/// The definitions of `config_file`'s tables.
pub fn parse(config_file: &Path, tables: &[OwnDefinition]) -> Parsed {
    let mut out = Parsed::default();
    for t in tables {
        let bad = |m: String| {
            Problem::new(
                config_file,
                None,
                format!("[[definition]] {:?}: {m}", t.name),
            )
        };
        if t.destinations.is_empty() {
            out.problems.push(bad("no destinations".into()));
            continue;
        }
        if let Some(d) = t
            .destinations
            .iter()
            .find(|d| !crate::is_remote(d) && !d.starts_with('/') && !d.starts_with("file://"))
        {
            out.problems
                .push(bad(format!("destination {d:?} is not an absolute path")));
            continue;
        }
        out.definitions.push(Definition {
            program: Program::Imageguard,
            file: config_file.to_path_buf(),
            name: if t.program.is_empty() {
                t.name.clone()
            } else {
                format!("{} ({})", t.name, t.program)
            },
            destinations: t
                .destinations
                .iter()
                .map(|d| destination(d, Path::new("/root")))
                .collect(),
            sources: t.sources.clone(),
            writer: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Destination;

    #[test]
    fn tables_become_definitions() {
        let t = |name: &str, dests: &[&str]| OwnDefinition {
            name: name.into(),
            program: "nightly.sh".into(),
            destinations: dests.iter().map(|s| s.to_string()).collect(),
            sources: vec!["/srv".into()],
        };
        let p = parse(
            Path::new("/etc/imageguard/imageguard.toml"),
            &[
                t("images", &["/mnt/usb/images", "nas:/backups"]),
                t("empty", &[]),
                t("relative", &["backups"]),
            ],
        );
        assert_eq!(p.definitions.len(), 1);
        assert_eq!(p.definitions[0].name, "images (nightly.sh)");
        assert_eq!(
            p.definitions[0].destinations,
            vec![
                Destination::Local {
                    path: "/mnt/usb/images".into()
                },
                Destination::Remote {
                    location: "nas:/backups".into()
                }
            ]
        );
        assert_eq!(p.problems.len(), 2);
    }
}
