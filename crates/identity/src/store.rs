//! The certified list on disk: one JSON file in the state directory, written atomically and
//! readable by root only.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use imageguard_policy::CertifiedList;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a valid certified list: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The certified list file.
#[derive(Debug, Clone)]
pub struct CertifiedStore {
    path: PathBuf,
}

impl CertifiedStore {
    pub fn new(path: impl Into<PathBuf>) -> CertifiedStore {
        CertifiedStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Load the list; a missing file is an empty list.
    pub fn load(&self) -> Result<CertifiedList, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CertifiedList::default()),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Replace the list atomically (temp file, fsync, rename).
    pub fn save(&self, list: &CertifiedList) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(list).expect("certified list serialises");
        let tmp = self.path.with_extension("json.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::certify_path;
    use crate::closure::ClosureOptions;

    #[test]
    fn round_trip_and_missing_is_empty() {
        let d = tempfile::tempdir().unwrap();
        let store = CertifiedStore::new(d.path().join("certified.json"));
        assert!(store.load().unwrap().entries.is_empty());
        let mut list = CertifiedList::default();
        list.upsert(
            certify_path(Path::new("/bin/true"), &ClosureOptions::default(), 1)
                .unwrap()
                .entry,
        );
        store.save(&list).unwrap();
        assert_eq!(store.load().unwrap(), list);
        fs::write(store.path(), b"{nope").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Parse { .. })));
    }
}
