//! What the saved backup definitions say about a folder: is it a backup destination of one (of
//! any: what that refuses), of one an administrator vetted (what that allows), is it a source
//! of one? The sync-tool rules ask exactly this (a mirror may prune a folder only if its source
//! is a vetted backup destination and the folder itself is no destination at all). The adapter resolves each
//! definition's destinations to folders of this machine (a Timeshift UUID to where that file
//! system is mounted); here they are only compared.

use std::path::{Component, Path, PathBuf};

/// The folders the saved definitions back up to, and those they back up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedDefinitions {
    destinations: Vec<PathBuf>,
    /// The destinations of definitions an administrator vetted (a subset of `destinations`).
    vetted: Vec<PathBuf>,
    sources: Vec<PathBuf>,
}

/// `p` without `.` components and trailing slashes; `None` for a relative path or one with
/// `..` (a definition means an absolute folder; `..` cannot be resolved without the disk).
fn normal(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether `folder` is `base` or lies under it (by whole components).
fn within(folder: &Path, bases: &[PathBuf]) -> bool {
    normal(folder).is_some_and(|f| bases.iter().any(|b| f.starts_with(b)))
}

impl SavedDefinitions {
    pub fn new(
        destinations: impl IntoIterator<Item = PathBuf>,
        sources: impl IntoIterator<Item = PathBuf>,
    ) -> SavedDefinitions {
        SavedDefinitions {
            destinations: destinations
                .into_iter()
                .filter_map(|p| normal(&p))
                .collect(),
            vetted: vec![],
            sources: sources.into_iter().filter_map(|p| normal(&p)).collect(),
        }
    }

    /// These definitions, with `vetted` the destinations of those an administrator vetted
    /// (approved, or imageguard's own); each is a destination too.
    pub fn with_vetted(mut self, vetted: impl IntoIterator<Item = PathBuf>) -> SavedDefinitions {
        self.vetted = vetted.into_iter().filter_map(|p| normal(&p)).collect();
        for v in &self.vetted {
            if !self.destinations.contains(v) {
                self.destinations.push(v.clone());
            }
        }
        self
    }

    /// Whether `folder` is (or is inside) the destination of a vetted definition.
    pub fn is_vetted_destination(&self, folder: &Path) -> bool {
        within(folder, &self.vetted)
    }

    /// Whether `folder` is a backup destination of a saved definition (or inside one).
    pub fn is_destination(&self, folder: &Path) -> bool {
        within(folder, &self.destinations)
    }

    /// Whether a backup destination lies at or below `folder` (moving or removing `folder`
    /// would take the destination with it).
    pub fn holds_destination(&self, folder: &Path) -> bool {
        normal(folder).is_some_and(|f| self.destinations.iter().any(|d| d.starts_with(&f)))
    }

    /// Whether `folder` is backed up by a saved definition (or inside what one backs up).
    pub fn is_source(&self, folder: &Path) -> bool {
        within(folder, &self.sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_sources_by_whole_components() {
        let saved = SavedDefinitions::new(
            [
                "/mnt/usb/borg/".into(),
                "/var/cache/rsnapshot".into(),
                "relative/x".into(),
            ],
            ["/home".into(), "/etc/".into()],
        );
        // (folder, is a destination, is a source)
        let table: &[(&str, bool, bool)] = &[
            ("/mnt/usb/borg", true, false),
            ("/mnt/usb/borg/", true, false),
            ("/mnt/usb/borg/data/0", true, false),
            ("/mnt/usb/./borg", true, false),
            ("/mnt/usb/borgX", false, false),
            ("/mnt/usb", false, false),
            ("/", false, false),
            ("/var/cache/rsnapshot/daily.0/localhost", true, false),
            ("/mnt/usb/borg/../../etc", false, false),
            ("relative/x", false, false),
            ("/home/alice", false, true),
            ("/homework", false, false),
            ("/etc", false, true),
        ];
        for (folder, dest, src) in table {
            assert_eq!(
                saved.is_destination(Path::new(folder)),
                *dest,
                "{folder} destination"
            );
            assert_eq!(saved.is_source(Path::new(folder)), *src, "{folder} source");
        }
        assert!(!SavedDefinitions::default().is_destination(Path::new("/")));
        // Nothing is vetted unless said; what is vetted is a destination too.
        assert!(!saved.is_vetted_destination(Path::new("/mnt/usb/borg")));
        let vetted = saved
            .clone()
            .with_vetted(["/mnt/usb/borg".into(), "/srv/copy".into()]);
        assert!(vetted.is_vetted_destination(Path::new("/mnt/usb/borg/data")));
        assert!(!vetted.is_vetted_destination(Path::new("/var/cache/rsnapshot")));
        assert!(vetted.is_destination(Path::new("/srv/copy/x")));
        assert!(!vetted.is_vetted_destination(Path::new("/srv/copyx")));
        assert!(saved.holds_destination(Path::new("/mnt/usb")));
        assert!(saved.holds_destination(Path::new("/mnt/usb/borg")));
        assert!(!saved.holds_destination(Path::new("/mnt/usb/borg/data")));
        assert!(!saved.holds_destination(Path::new("/mnt/other")));
    }
}
