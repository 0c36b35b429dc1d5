//! Back In Time: `~/.config/backintime/config` of root and of each user, `key=value` lines.
//! `profiles=1:2` lists the profiles (profile 1 alone when absent); a profile's destination is
//! `profileN.snapshots.path` when its mode is local (`local`, `local_encfs`), its SSH host
//! otherwise; its sources are `profileN.snapshots.include.M.value`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Definition, Destination, Parsed, Problem, Program};

/// Parse `text`, the contents of `file`.
pub fn parse(file: &Path, text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.trim(), v.trim());
            }
            None => out
                .problems
                .push(Problem::new(file, Some(i + 1), "not a key=value line")),
        }
    }
    let profiles: Vec<&str> = kv
        .get("profiles")
        .map(|p| p.split(':').filter(|s| !s.is_empty()).collect())
        .unwrap_or_else(|| vec!["1"]);
    for id in profiles {
        let get = |k: &str| kv.get(format!("profile{id}.{k}").as_str()).copied();
        let mode = get("snapshots.mode").unwrap_or("local");
        let destination = if mode.starts_with("local") {
            match get("snapshots.path") {
                Some(p) if p.starts_with('/') => Destination::Local {
                    path: PathBuf::from(p),
                },
                Some(p) => {
                    out.problems.push(Problem::new(
                        file,
                        None,
                        format!("profile {id}: snapshots.path {p:?} is not an absolute path"),
                    ));
                    continue;
                }
                // A profile never configured.
                None => continue,
            }
        } else {
            let host = get("snapshots.ssh.host").unwrap_or("");
            let path = get("snapshots.ssh.path").unwrap_or("");
            Destination::Remote {
                location: format!("{mode}:{host}:{path}"),
            }
        };
        let mut includes: Vec<(u32, PathBuf)> = kv
            .iter()
            .filter_map(|(k, v)| {
                let n = k
                    .strip_prefix(&format!("profile{id}.snapshots.include."))?
                    .strip_suffix(".value")?;
                Some((n.parse().ok()?, PathBuf::from(v)))
            })
            .collect();
        includes.sort();
        out.definitions.push(Definition {
            program: Program::BackInTime,
            file: file.to_path_buf(),
            name: get("name").map(str::to_string).unwrap_or_else(|| {
                if id == "1" {
                    "Main profile".into()
                } else {
                    format!("profile {id}")
                }
            }),
            destinations: vec![destination],
            sources: includes.into_iter().map(|(_, p)| p).collect(),
            writer: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_ssh_profiles() {
        let text = "config.version=6\nprofiles=1:2:3\n\
            profile1.snapshots.path=/media/usb/bit\nprofile1.snapshots.include.1.value=/home/alice\n\
            profile1.snapshots.include.2.value=/etc\n\
            profile2.name=offsite\nprofile2.snapshots.mode=ssh\nprofile2.snapshots.ssh.host=nas\n\
            profile2.snapshots.ssh.path=/srv/bit\n\
            profile3.snapshots.mode=local\nprofile3.snapshots.path=relative/path\n\
            this line is broken\n";
        let p = parse(Path::new("/root/.config/backintime/config"), text);
        assert_eq!(p.definitions.len(), 2);
        assert_eq!(p.definitions[0].name, "Main profile");
        assert_eq!(
            p.definitions[0].destinations,
            vec![Destination::Local {
                path: "/media/usb/bit".into()
            }]
        );
        assert_eq!(
            p.definitions[0].sources,
            vec![PathBuf::from("/home/alice"), PathBuf::from("/etc")]
        );
        assert!(matches!(
            p.definitions[1].destinations[0],
            Destination::Remote { .. }
        ));
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert_eq!(p.problems[0].line, Some(12));
    }
}
