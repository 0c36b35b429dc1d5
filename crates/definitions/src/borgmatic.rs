//! borgmatic: `/etc/borgmatic/config.yaml`, `/etc/borgmatic.d/*.yaml` and the same under users'
//! `~/.config/`. `repositories` in both of borgmatic's forms: 1.7's strings in a `location:`
//! section, and 1.8's top-level list of `{path, label}` (or strings). `ssh://` and
//! `user@host:` repositories are remote; `~` is the home of the user whose file it is.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::{destination, local_path, text, Definition, Parsed, Program};

/// Parse `text`, the contents of `file`, which belongs to the user whose home is `home`.
pub fn parse(file: &Path, text: &str, home: &Path) -> Parsed {
    if let Some(line) = text::too_deep(text) {
        return Parsed::problem(
            file,
            Some(line),
            "nested too deeply to be a borgmatic configuration",
        );
    }
    let docs = match YamlLoader::load_from_str(text) {
        Ok(d) => d,
        Err(e) => {
            return Parsed::problem(
                file,
                Some(e.marker().line()),
                format!("not valid YAML: {e}"),
            )
        }
    };
    let Some(doc) = docs.first() else {
        return Parsed::problem(file, None, "empty");
    };
    // 1.8: top level; 1.7: in `location:`.
    let section = if doc["repositories"].is_badvalue() {
        &doc["location"]
    } else {
        doc
    };
    let repos = match &section["repositories"] {
        Yaml::Array(a) => a,
        Yaml::BadValue => return Parsed::problem(file, None, "no repositories"),
        _ => return Parsed::problem(file, None, "repositories is not a list"),
    };
    let name_of_file = file
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sources: Vec<PathBuf> = match &section["source_directories"] {
        Yaml::Array(a) => a
            .iter()
            .filter_map(Yaml::as_str)
            .map(|s| local_path(s, home))
            .collect(),
        _ => vec![],
    };
    let mut out = Parsed::default();
    for r in repos {
        let (path, label) = match r {
            Yaml::String(s) => (s.as_str(), None),
            Yaml::Hash(_) => match r["path"].as_str() {
                Some(p) => (p, r["label"].as_str()),
                None => {
                    out.problems.push(crate::Problem::new(
                        file,
                        None,
                        "a repository without a path",
                    ));
                    continue;
                }
            },
            _ => {
                out.problems.push(crate::Problem::new(
                    file,
                    None,
                    "a repository that is neither a path nor {path, label}",
                ));
                continue;
            }
        };
        out.definitions.push(Definition {
            program: Program::Borgmatic,
            file: file.to_path_buf(),
            name: label
                .map(str::to_string)
                .unwrap_or_else(|| name_of_file.clone()),
            destinations: vec![destination(path, home)],
            sources: sources.clone(),
            writer: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Destination;

    /// What Debian's borgmatic (1.7) generates: `generate-borgmatic-config`.
    #[test]
    fn generated_by_the_debian_package() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("config.yaml");
        let st = std::process::Command::new("generate-borgmatic-config")
            .arg("-d")
            .arg(&cfg)
            .output()
            .expect("generate-borgmatic-config (the borgmatic package, installed by .ci/run)");
        assert!(st.status.success());
        let p = parse(
            &cfg,
            &std::fs::read_to_string(&cfg).unwrap(),
            Path::new("/root"),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let dests: Vec<_> = p
            .definitions
            .iter()
            .map(|d| d.destinations[0].clone())
            .collect();
        assert_eq!(dests.len(), 3);
        assert!(
            matches!(&dests[0], Destination::Remote { location } if location.starts_with("ssh://"))
        );
        assert_eq!(
            dests[2],
            Destination::Local {
                path: "/var/local/backups/local.borg".into()
            }
        );
        assert!(p.definitions[2].sources.contains(&PathBuf::from("/etc")));
    }

    #[test]
    fn the_1_8_form_tildes_and_bad_input() {
        let text = "source_directories:\n  - ~/docs\nrepositories:\n  - path: /mnt/usb/borg\n    label: usb\n  - path: user@host:repo\n  - ~/local-repo\n  - 7\n";
        let p = parse(
            Path::new("/home/alice/.config/borgmatic/config.yaml"),
            text,
            Path::new("/home/alice"),
        );
        assert_eq!(p.definitions.len(), 3);
        assert_eq!(p.definitions[0].name, "usb");
        assert_eq!(
            p.definitions[0].sources,
            vec![PathBuf::from("/home/alice/docs")]
        );
        assert!(matches!(
            p.definitions[1].destinations[0],
            Destination::Remote { .. }
        ));
        assert_eq!(
            p.definitions[2].destinations[0],
            Destination::Local {
                path: "/home/alice/local-repo".into()
            }
        );
        assert_eq!(p.problems.len(), 1);
        for bad in ["repositories: [", "a: b\n", "repositories: 3\n", ""] {
            let p = parse(Path::new("/x.yaml"), bad, Path::new("/root"));
            assert!(
                p.definitions.is_empty() && !p.problems.is_empty(),
                "{bad:?}"
            );
        }
        let deep = format!("repositories: {}", "[".repeat(10_000));
        let p = parse(Path::new("/x.yaml"), &deep, Path::new("/root"));
        assert!(p.problems[0].message.contains("too deeply"));
    }
}
