//! The native part of a closure: what glibc's dynamic loader maps into a program.
//!
//! - the loader itself and every shared library it resolves, asked of the loader itself
//!   (`ld.so --list`, which loads without running any of the code), for the program and for
//!   every shared object the program's interpreter can load (Python extension modules...);
//! - the name-service modules glibc loads on demand (`/etc/nsswitch.conf`);
//! - what decides what the loader maps: `/etc/ld.so.preload`, `/etc/ld.so.conf` and its
//!   folder, and, in every folder the loader searches, the names of the libraries the program
//!   needs (a same-named library dropped into an earlier folder is a change).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard_policy::Role;

use super::scan::Builder;
use super::ClosureError;

/// What the loader reads before it maps anything.
const LOADER_INPUTS: &[&str] = &["ld.so.preload", "ld.so.conf", "nsswitch.conf"];
const LD_SO_CONF: &str = "/etc/ld.so.conf";
const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";
/// glibc's built-in search folders (after those of `/etc/ld.so.conf`), on Debian's multiarch.
const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The native closure being recorded: the loader, and the library names and folders seen.
pub(crate) struct Native {
    loader: PathBuf,
    /// The loader's real path (resolved once: every library line is compared with it).
    loader_canonical: PathBuf,
    /// Library paths the loader named, resolved (each program and extension module names
    /// mostly the same libraries).
    resolved: HashMap<PathBuf, PathBuf>,
    sonames: BTreeSet<String>,
    dirs: BTreeSet<PathBuf>,
    listed: BTreeSet<PathBuf>,
}

impl Native {
    pub fn new(loader: PathBuf) -> Native {
        Native {
            loader_canonical: loader.canonicalize().unwrap_or_default(),
            loader,
            resolved: HashMap::new(),
            sonames: BTreeSet::new(),
            dirs: BTreeSet::new(),
            listed: BTreeSet::new(),
        }
    }

    /// Record `object` (a program or shared object) and every library the loader resolves
    /// for it.
    pub fn object(&mut self, b: &mut Builder, object: &Path) -> Result<(), ClosureError> {
        if !self.listed.insert(object.to_path_buf()) {
            return Ok(());
        }
        let out = Command::new(&self.loader)
            .arg("--list")
            .arg(object)
            .env_clear()
            .output()
            .map_err(|source| ClosureError::Io {
                path: self.loader.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(ClosureError::Loader {
                object: object.to_path_buf(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        for (soname, path) in parse_list(&text) {
            let Some(path) = path else {
                return Err(ClosureError::Loader {
                    object: object.to_path_buf(),
                    detail: format!("{} => not found", soname.unwrap_or_default()),
                });
            };
            let canonical = match self.resolved.get(&path) {
                Some(c) => c.clone(),
                None => {
                    let c = path.canonicalize().map_err(|source| ClosureError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    self.resolved.insert(path.clone(), c.clone());
                    c
                }
            };
            let role = if canonical == self.loader_canonical {
                Role::Loader
            } else {
                Role::Library
            };
            b.file(&canonical, role)?;
            if let Some(name) = soname {
                self.sonames.insert(name);
            }
            for dir in [path.parent(), canonical.parent()].into_iter().flatten() {
                self.dirs.insert(dir.to_path_buf());
            }
        }
        Ok(())
    }

    /// Record the name-service modules `/etc/nsswitch.conf` names (those installed, and the
    /// names of those not installed, so that one dropped in later is a change).
    pub fn nss_modules(&mut self, b: &mut Builder) -> Result<(), ClosureError> {
        let conf = fs::read_to_string(NSSWITCH_CONF).unwrap_or_default();
        for service in nss_services(&conf) {
            let name = format!("libnss_{service}.so.2");
            self.sonames.insert(name.clone());
            let found = self
                .search_dirs()
                .into_iter()
                .map(|d| d.join(&name))
                .find(|p| p.is_file());
            if let Some(p) = found {
                let p = p.canonicalize().unwrap_or(p);
                b.file(&p, Role::NssModule)?;
                self.object(b, &p)?;
            }
        }
        Ok(())
    }

    /// Every folder the loader searches: those of `/etc/ld.so.conf`, glibc's own, and those
    /// libraries were found in (run paths).
    fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = ld_so_conf_dirs(Path::new(LD_SO_CONF), 0);
        dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
        dirs.extend(self.dirs.iter().cloned());
        let mut seen = BTreeSet::new();
        dirs.into_iter()
            .filter_map(|d| d.canonicalize().ok())
            .filter(|d| seen.insert(d.clone()))
            .collect()
    }

    /// Record what decides what the loader maps. Call last.
    pub fn finish(self, b: &mut Builder) -> Result<(), ClosureError> {
        let inputs: Vec<String> = LOADER_INPUTS.iter().map(|s| s.to_string()).collect();
        b.names(Path::new("/etc"), &inputs, Role::LoaderInput)?;
        if Path::new("/etc/ld.so.conf.d").is_dir() {
            b.tree(Path::new("/etc/ld.so.conf.d"), Role::LoaderInput)?;
        }
        let mut names: Vec<String> = self.sonames.iter().cloned().collect();
        names.push("glibc-hwcaps".into());
        for dir in self.search_dirs() {
            b.names(&dir, &names, Role::Library)?;
            let hwcaps = dir.join("glibc-hwcaps");
            if let Ok(list) = fs::read_dir(&hwcaps) {
                for level in list.flatten() {
                    b.names(&level.path(), &names, Role::Library)?;
                }
            }
        }
        Ok(())
    }
}

/// `ld.so --list` lines: `soname => /path (0x...)`, `/path (0x...)` (the loader), `soname
/// (0x...)` (the vDSO, no file), `soname => not found`.
fn parse_list(text: &str) -> Vec<(Option<String>, Option<PathBuf>)> {
    let mut out = vec![];
    for line in text.lines().map(str::trim) {
        if let Some((soname, rest)) = line.split_once(" => ") {
            let path = rest.split(" (0x").next().unwrap_or("").trim();
            let path = (path.starts_with('/')).then(|| PathBuf::from(path));
            out.push((Some(soname.to_string()), path));
        } else if line.starts_with('/') {
            let path = line.split(" (0x").next().unwrap_or("").trim();
            out.push((None, Some(PathBuf::from(path))));
        }
    }
    out
}

/// The services of every database in nsswitch.conf (`passwd: files systemd` -> files,
/// systemd), without the `[NOTFOUND=return]` actions.
fn nss_services(conf: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((_, services)) = line.split_once(':') else {
            continue;
        };
        let mut in_action = false;
        for tok in services.split_whitespace() {
            if tok.starts_with('[') {
                in_action = !tok.ends_with(']');
                continue;
            }
            if in_action {
                in_action = !tok.ends_with(']');
                continue;
            }
            if tok
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                out.insert(tok.to_string());
            }
        }
    }
    out
}

/// The folders `/etc/ld.so.conf` lists, following `include` lines (a `*` in the last
/// component).
fn ld_so_conf_dirs(conf: &Path, depth: usize) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string(conf) else {
        return vec![];
    };
    if depth > 8 {
        return vec![];
    }
    let mut dirs = vec![];
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for file in expand(pattern.trim(), conf.parent().unwrap_or(Path::new("/"))) {
                dirs.extend(ld_so_conf_dirs(&file, depth + 1));
            }
        } else if line.starts_with('/') {
            dirs.extend(
                line.split([':', ',', ' ', '\t'])
                    .filter(|d| d.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
    dirs
}

fn expand(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let p = base.join(pattern);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return vec![];
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![p.clone()];
    };
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .map(|e| e.path())
                .filter(|f| {
                    let n = f.file_name().map(|n| n.to_string_lossy().into_owned());
                    n.is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_list_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007efe984cc000)\n\
                    \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007efe983dd000)\n\
                    \tlibgone.so.1 => not found\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007efe984ce000)\n";
        assert_eq!(
            parse_list(text),
            vec![
                (
                    Some("libssl.so.3".into()),
                    Some(PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"))
                ),
                (Some("libgone.so.1".into()), None),
                (None, Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2"))),
            ]
        );
    }

    #[test]
    fn nsswitch_services() {
        let conf = "# comment\npasswd:         files systemd\nhosts: files [NOTFOUND=return] dns\n\
                    netgroup: nis # trailing\nbad line\n";
        let got: Vec<String> = nss_services(conf).into_iter().collect();
        assert_eq!(got, ["dns", "files", "nis", "systemd"]);
    }

    #[test]
    fn ld_so_conf_includes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        std::fs::write(
            d.path().join("ld.so.conf"),
            "include conf.d/*.conf\n/opt/lib # comment\n",
        )
        .unwrap();
        std::fs::write(d.path().join("conf.d/a.conf"), "/usr/local/lib\n").unwrap();
        std::fs::write(d.path().join("conf.d/b.txt"), "/nope\n").unwrap();
        assert_eq!(
            ld_so_conf_dirs(&d.path().join("ld.so.conf"), 0),
            vec![PathBuf::from("/usr/local/lib"), PathBuf::from("/opt/lib")]
        );
    }
}
