//! Entries created through the guard in this session, and by which process: a sync tool that
//! created one may finish it (write, set times and modes, move its temp file into place,
//! remove it) even where a new file is a backup at once (in a backup destination, inside a
//! repository); see [`crate::gate::Gate::may_finish_its_own`].
//! Nothing of such an entry existed before its creator made it; what it replaces or links
//! to is still checked on its own. The policy's [`imageguard_policy::classify::for_its_creator`]
//! decides; this only remembers the facts.
//!
//! Entries are keyed by backing inode number and forgotten when removed (a number reused by a
//! later file must not inherit the mark); when the table is full it is cleared, which only
//! makes the guard stricter.

use std::collections::HashMap;

use parking_lot::Mutex;

/// A process: its thread group id and start time (a recycled pid is another process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub tgid: u32,
    pub start: u64,
}

/// How many entries are remembered before the table is cleared.
const LIMIT: usize = 1 << 16;

#[derive(Debug, Default)]
pub struct FreshEntries {
    created: Mutex<HashMap<u64, ProcessKey>>,
}

impl FreshEntries {
    /// The entry with backing inode `ino` was just created by `creator`.
    pub fn note(&self, ino: u64, creator: ProcessKey) {
        let mut m = self.created.lock();
        if m.len() >= LIMIT {
            m.clear();
        }
        m.insert(ino, creator);
    }

    /// Who created `ino` in this session, if it was created through the guard.
    pub fn creator(&self, ino: u64) -> Option<ProcessKey> {
        self.created.lock().get(&ino).copied()
    }

    /// `ino` was removed (its last name unlinked, replaced by a rename, its folder removed).
    pub fn forget(&self, ino: u64) {
        self.created.lock().remove(&ino);
    }
}
