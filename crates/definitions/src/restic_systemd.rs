//! restic run from systemd: unit files (under `/etc/systemd/system` and
//! `/usr/lib/systemd/system`) whose `ExecStart` runs restic. The repository is the `-r`/`--repo`
//! option, else the first line of `--repository-file`, else `RESTIC_REPOSITORY` (or
//! `RESTIC_REPOSITORY_FILE`) from the unit's `Environment=` and `EnvironmentFile=`. Only local
//! repositories (a path, or `local:`) are local destinations; the sources are the paths after
//! `backup`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{destination, Definition, Destination, Parsed, Problem, Program, Reader};

/// Parse `text`, the contents of unit `file`.
pub fn parse(file: &Path, text: &str, read: &mut Reader<'_>) -> Parsed {
    let mut out = Parsed::default();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut starts: Vec<(usize, Vec<String>)> = vec![];
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "Environment" => {
                for word in words(value.trim()) {
                    if let Some((k, v)) = word.split_once('=') {
                        env.insert(k.to_string(), v.to_string());
                    }
                }
            }
            "EnvironmentFile" => {
                let v = value.trim();
                let (optional, path) = match v.strip_prefix('-') {
                    Some(p) => (true, p),
                    None => (false, v),
                };
                match read(Path::new(path)) {
                    Ok(t) => env.extend(env_file(&t)),
                    Err(_) if optional => {}
                    Err(p) => out.problems.push(Problem::new(
                        file,
                        Some(i + 1),
                        format!("EnvironmentFile: {p}"),
                    )),
                }
            }
            "ExecStart" => {
                let cmd = value.trim().trim_start_matches(['@', '-', ':', '+', '!']);
                starts.push((i + 1, words(cmd)));
            }
            _ => {}
        }
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (line, argv) in starts {
        let Some(program) = argv.first() else {
            continue;
        };
        if Path::new(program).file_name().is_none_or(|n| n != "restic") {
            continue;
        }
        let args = &argv[1..];
        let option = |long: &str, short: Option<&str>| -> Option<String> {
            let mut it = args.iter();
            while let Some(a) = it.next() {
                if let Some(v) = a.strip_prefix(&format!("{long}=")) {
                    return Some(v.to_string());
                }
                if a == long || short.is_some_and(|s| a == s) {
                    return it.next().cloned();
                }
                if let Some(s) = short {
                    if let Some(v) = a
                        .strip_prefix(s)
                        .filter(|v| !v.is_empty() && !a.starts_with("--"))
                    {
                        return Some(v.trim_start_matches('=').to_string());
                    }
                }
            }
            None
        };
        let from_file = |f: String, read: &mut Reader<'_>| -> Result<String, Problem> {
            read(Path::new(&f)).map(|t| t.lines().next().unwrap_or("").trim().to_string())
        };
        let repo = match (
            option("--repo", Some("-r")),
            option("--repository-file", None),
            env.get("RESTIC_REPOSITORY"),
            env.get("RESTIC_REPOSITORY_FILE"),
        ) {
            (Some(r), ..) => Ok(r),
            (None, Some(f), ..) => from_file(f, read),
            (None, None, Some(r), _) => Ok(r.clone()),
            (None, None, None, Some(f)) => from_file(f.clone(), read),
            _ => {
                out.problems.push(Problem::new(
                    file,
                    Some(line),
                    "restic without a repository",
                ));
                continue;
            }
        };
        let repo = match repo {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => {
                out.problems
                    .push(Problem::new(file, Some(line), "empty repository"));
                continue;
            }
            Err(p) => {
                out.problems.push(Problem::new(
                    file,
                    Some(line),
                    format!("repository file: {p}"),
                ));
                continue;
            }
        };
        let dest = match repo.strip_prefix("local:") {
            Some(p) => Destination::Local {
                path: PathBuf::from(p),
            },
            None => destination(&repo, Path::new("/root")),
        };
        let sources = args
            .iter()
            .skip_while(|a| *a != "backup")
            .skip(1)
            .filter(|a| a.starts_with('/'))
            .map(PathBuf::from)
            .collect();
        out.definitions.push(Definition {
            program: Program::Restic,
            file: file.to_path_buf(),
            name: name.clone(),
            destinations: vec![dest],
            sources,
            writer: None,
        });
    }
    out
}

/// `KEY=VALUE` lines of an environment file (quotes removed, comments skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), unquote(v.trim())))
        })
        .collect()
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Split a command line the way systemd does for `ExecStart=` and `Environment=`: whitespace,
/// with double and single quotes grouping.
fn words(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_from_options_environment_and_files() {
        let mut files = std::collections::HashMap::new();
        files.insert(PathBuf::from("/etc/restic/env"), "# job\nexport RESTIC_REPOSITORY=\"/mnt/usb/restic\"\nRESTIC_PASSWORD_FILE=/etc/restic/pw\n".to_string());
        files.insert(
            PathBuf::from("/etc/restic/repo"),
            "/srv/restic-repo\n".to_string(),
        );
        let mut read = |p: &Path| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| Problem::new(p, None, "missing"))
        };
        let unit = |exec: &str, extra: &str| {
            format!("[Unit]\nDescription=backup\nExecStart=/bin/false\n[Service]\nType=oneshot\n{extra}ExecStart={exec}\n")
        };
        let cases: Vec<(String, Option<Destination>)> = vec![
            (
                unit("/usr/bin/restic -r /mnt/a backup /home /etc", ""),
                Some(Destination::Local {
                    path: "/mnt/a".into(),
                }),
            ),
            (
                unit("/usr/bin/restic --repo=local:/mnt/b backup /home", ""),
                Some(Destination::Local {
                    path: "/mnt/b".into(),
                }),
            ),
            (
                unit("restic -r/mnt/c backup /", ""),
                Some(Destination::Local {
                    path: "/mnt/c".into(),
                }),
            ),
            (
                unit(
                    "/usr/bin/restic --repository-file /etc/restic/repo backup /",
                    "",
                ),
                Some(Destination::Local {
                    path: "/srv/restic-repo".into(),
                }),
            ),
            (
                unit(
                    "/usr/bin/restic backup /home",
                    "Environment=\"RESTIC_REPOSITORY=/mnt/d\" OTHER=1\n",
                ),
                Some(Destination::Local {
                    path: "/mnt/d".into(),
                }),
            ),
            (
                unit(
                    "/usr/bin/restic backup /home",
                    "EnvironmentFile=/etc/restic/env\n",
                ),
                Some(Destination::Local {
                    path: "/mnt/usb/restic".into(),
                }),
            ),
            (
                unit("/usr/bin/restic -r sftp:user@host:/srv/r backup /", ""),
                Some(Destination::Remote {
                    location: "sftp:user@host:/srv/r".into(),
                }),
            ),
            (unit("/usr/bin/rsync -a /a /b", ""), None),
        ];
        for (text, want) in cases {
            let p = parse(
                Path::new("/etc/systemd/system/backup.service"),
                &text,
                &mut read,
            );
            assert_eq!(
                p.definitions.first().map(|d| d.destinations[0].clone()),
                want,
                "{text}"
            );
        }
        let p = parse(
            Path::new("/u.service"),
            &unit("/usr/bin/restic -r /mnt/a backup /home /etc", ""),
            &mut read,
        );
        assert_eq!(
            p.definitions[0].sources,
            vec![PathBuf::from("/home"), PathBuf::from("/etc")]
        );
        let p = parse(
            Path::new("/u.service"),
            &unit(
                "/usr/bin/restic backup /",
                "EnvironmentFile=/etc/restic/gone\nEnvironmentFile=-/etc/restic/optional\n",
            ),
            &mut read,
        );
        assert!(p.definitions.is_empty());
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
    }

    #[test]
    fn systemd_words() {
        assert_eq!(words(r#"a "b c" 'd e' f\ g"#), ["a", "b c", "d e", "f g"]);
        assert_eq!(words(r#""" x"#), ["", "x"]);
    }
}
