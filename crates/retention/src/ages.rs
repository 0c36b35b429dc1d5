//! When the guard first saw each backup file of one volume: kernel file handle → seconds on
//! the service's clock. A file not in the store is young (its age is unknown). Entries go when
//! their file is deleted; a handle names one inode generation, so a reused inode number is a
//! new key and inherits nothing.
//!
//! Saved as JSON lines (`[handle hex, first seen]`) in the state folder, atomically, by the
//! service when it changed; a crash loses at most what came after the last save, which then
//! counts as new when seen again: a file only ever looks younger than it is.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// The first-seen times of one volume's backup files.
#[derive(Debug)]
pub struct AgeStore {
    file: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    first_seen: HashMap<Vec<u8>, u64>,
    dirty: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl AgeStore {
    /// Open the store saved at `file` (empty when there is none yet).
    pub fn open(file: &Path) -> io::Result<AgeStore> {
        let mut first_seen = HashMap::new();
        match std::fs::File::open(file) {
            Ok(f) => {
                for line in io::BufReader::new(f).lines() {
                    let line = line?;
                    let Ok((h, t)) = serde_json::from_str::<(String, u64)>(&line) else {
                        continue;
                    };
                    if let Some(h) = unhex(&h) {
                        first_seen.insert(h, t);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(AgeStore {
            file: file.to_path_buf(),
            inner: Mutex::new(Inner {
                first_seen,
                dirty: false,
            }),
        })
    }

    /// The file it is saved to.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// A store that knows no file yet (every file counts as new), saved to `file`: for when the
    /// saved one cannot be read.
    pub fn empty(file: &Path) -> AgeStore {
        AgeStore {
            file: file.to_path_buf(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// When the file with `handle` was first seen, if it was.
    pub fn first_seen(&self, handle: &[u8]) -> Option<u64> {
        self.inner.lock().first_seen.get(handle).copied()
    }

    /// The file with `handle` is seen at `now`: remembered if it was not yet.
    pub fn seen(&self, handle: &[u8], now: u64) {
        let mut i = self.inner.lock();
        if !i.first_seen.contains_key(handle) {
            i.first_seen.insert(handle.to_vec(), now);
            i.dirty = true;
        }
    }

    /// The file with `handle` is gone.
    pub fn forget(&self, handle: &[u8]) {
        let mut i = self.inner.lock();
        if i.first_seen.remove(handle).is_some() {
            i.dirty = true;
        }
    }

    /// How many files the store knows.
    pub fn len(&self) -> usize {
        self.inner.lock().first_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many files are younger than `secs` at `now` (what a lock of that length holds).
    pub fn younger_than(&self, secs: u64, now: u64) -> usize {
        self.inner
            .lock()
            .first_seen
            .values()
            .filter(|&&t| now.saturating_sub(t) < secs)
            .count()
    }

    /// Save if anything changed since the last save (atomically).
    pub fn save(&self) -> io::Result<()> {
        let lines: Vec<String> = {
            let mut i = self.inner.lock();
            if !i.dirty {
                return Ok(());
            }
            i.dirty = false;
            i.first_seen
                .iter()
                .map(|(h, t)| format!("[\"{}\",{t}]", hex(h)))
                .collect()
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file).inspect_err(|_| {
            self.inner.lock().dirty = true;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_is_kept_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ages/vol.jsonl");
        let s = AgeStore::open(&f).unwrap();
        assert!(s.is_empty());
        s.seen(b"\x01\x02", 100);
        s.seen(b"\x01\x02", 900);
        s.seen(b"\x03", 500);
        assert_eq!(s.first_seen(b"\x01\x02"), Some(100));
        assert_eq!(s.younger_than(1000, 1200), 1);
        s.save().unwrap();
        let again = AgeStore::open(&f).unwrap();
        assert_eq!(again.first_seen(b"\x01\x02"), Some(100));
        assert_eq!(again.first_seen(b"\x03"), Some(500));
        again.forget(b"\x03");
        assert_eq!(again.first_seen(b"\x03"), None);
        again.save().unwrap();
        assert_eq!(AgeStore::open(&f).unwrap().len(), 1);
    }
}
