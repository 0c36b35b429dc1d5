//! rsnapshot: `/etc/rsnapshot.conf`, parsed the way rsnapshot parses it: one directive a line,
//! its fields separated by tabs (rsnapshot splits on `\t+` and refuses spaces), `#` comments,
//! `include_conf` of another file (a backquoted command is not run: reported). The destination
//! is `snapshot_root` (the last one given); the sources are the local sources of `backup`
//! lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::{is_remote, Definition, Destination, Parsed, Problem, Program, Reader};

/// How deep `include_conf` may go.
const MAX_INCLUDES: usize = 8;

/// Parse `text`, the contents of `file`, following `include_conf` through `read`.
pub fn parse(file: &Path, text: &str, read: &mut Reader<'_>) -> Parsed {
    let mut out = Parsed::default();
    let mut root: Option<PathBuf> = None;
    let mut sources = BTreeSet::new();
    let mut seen = BTreeSet::from([file.to_path_buf()]);
    directives(
        file,
        text,
        read,
        &mut seen,
        0,
        &mut |_, d| match d {
            Directive::Root(p) => root = Some(p),
            Directive::Source(p) => {
                sources.insert(p);
            }
        },
        &mut out.problems,
    );
    match root {
        Some(path) => out.definitions.push(Definition {
            program: Program::Rsnapshot,
            file: file.to_path_buf(),
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            destinations: vec![Destination::Local { path }],
            sources: sources.into_iter().collect(),
            writer: None,
        }),
        None => out.problems.push(Problem::new(
            file,
            None,
            "no snapshot_root: rsnapshot would not run",
        )),
    }
    out
}

enum Directive {
    Root(PathBuf),
    Source(PathBuf),
}

fn directives(
    file: &Path,
    text: &str,
    read: &mut Reader<'_>,
    seen: &mut BTreeSet<PathBuf>,
    depth: usize,
    found: &mut dyn FnMut(&Path, Directive),
    problems: &mut Vec<Problem>,
) {
    for (i, line) in text.lines().enumerate() {
        let n = Some(i + 1);
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').filter(|f| !f.is_empty()).collect();
        let key = fields[0];
        if key.contains(' ') {
            problems.push(Problem::new(
                file,
                n,
                format!(
                    "{:?}: fields must be separated by tabs",
                    key.split(' ').next().unwrap_or("")
                ),
            ));
            continue;
        }
        match (key, fields.get(1)) {
            ("snapshot_root", Some(p)) if p.starts_with('/') => {
                found(file, Directive::Root(PathBuf::from(p)))
            }
            ("snapshot_root", Some(p)) => problems.push(Problem::new(
                file,
                n,
                format!("snapshot_root {p:?} is not an absolute path"),
            )),
            ("backup", Some(src)) if src.starts_with('/') && !is_remote(src) => {
                found(file, Directive::Source(PathBuf::from(src)))
            }
            ("include_conf", Some(inc)) if inc.starts_with('`') => problems.push(Problem::new(
                file,
                n,
                "include_conf of a command's output is not followed (imageguard runs nothing)",
            )),
            ("include_conf", Some(inc)) => {
                let inc = PathBuf::from(inc);
                if depth >= MAX_INCLUDES || !seen.insert(inc.clone()) {
                    problems.push(Problem::new(
                        file,
                        n,
                        format!(
                            "include_conf {}: loop or too deep, not followed",
                            inc.display()
                        ),
                    ));
                    continue;
                }
                match read(&inc) {
                    Ok(t) => directives(&inc, &t, read, seen, depth + 1, found, problems),
                    Err(p) => problems.push(Problem::new(file, n, format!("include_conf: {p}"))),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_includes(p: &Path) -> Result<String, Problem> {
        Err(Problem::new(p, None, "not found"))
    }

    /// The configuration Debian's rsnapshot package ships, with a destination set.
    #[test]
    fn debian_shipped_configuration() {
        let shipped = std::fs::read_to_string("/etc/rsnapshot.conf")
            .expect("the rsnapshot package (installed by .ci/run)");
        let p = parse(Path::new("/etc/rsnapshot.conf"), &shipped, &mut no_includes);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let d = &p.definitions[0];
        assert_eq!(d.program, Program::Rsnapshot);
        assert_eq!(
            d.destinations,
            vec![Destination::Local {
                path: "/var/cache/rsnapshot/".into()
            }]
        );
        assert!(d.sources.contains(&PathBuf::from("/home/")));
        let moved = shipped.replace(
            "snapshot_root\t/var/cache/rsnapshot/",
            "snapshot_root\t/mnt/usb/snapshots/",
        );
        let p = parse(Path::new("/etc/rsnapshot.conf"), &moved, &mut no_includes);
        assert_eq!(
            p.definitions[0].destinations,
            vec![Destination::Local {
                path: "/mnt/usb/snapshots/".into()
            }]
        );
    }

    #[test]
    fn spaces_includes_and_loops() {
        let mut files = std::collections::HashMap::new();
        files.insert(
            PathBuf::from("/etc/a.conf"),
            "snapshot_root\t/mnt/a/\ninclude_conf\t/etc/b.conf\n".to_string(),
        );
        files.insert(
            PathBuf::from("/etc/b.conf"),
            "include_conf\t/etc/a.conf\nbackup\troot@host:/etc/\thost/\n".to_string(),
        );
        let mut read = |p: &Path| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| Problem::new(p, None, "missing"))
        };
        let main = "snapshot_root /mnt/spaces/\ninclude_conf\t/etc/a.conf\ninclude_conf\t`cat x`\ninclude_conf\t/etc/missing.conf\n";
        let p = parse(Path::new("/etc/rsnapshot.conf"), main, &mut read);
        assert_eq!(
            p.definitions[0].destinations,
            vec![Destination::Local {
                path: "/mnt/a/".into()
            }]
        );
        assert!(
            p.definitions[0].sources.is_empty(),
            "a remote source is not a local one"
        );
        let lines: Vec<_> = p
            .problems
            .iter()
            .map(|p| (p.file.display().to_string(), p.line))
            .collect();
        assert_eq!(
            lines,
            [
                ("/etc/rsnapshot.conf".to_string(), Some(1)),
                ("/etc/b.conf".to_string(), Some(1)),
                ("/etc/rsnapshot.conf".to_string(), Some(3)),
                ("/etc/rsnapshot.conf".to_string(), Some(4)),
            ]
        );
        let none = parse(Path::new("/x"), "# nothing\n", &mut no_includes);
        assert!(
            none.definitions.is_empty() && none.problems[0].message.contains("no snapshot_root")
        );
    }
}
