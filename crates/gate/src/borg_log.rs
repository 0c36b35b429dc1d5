//! Reading a borg repository's segment log on the backing, for the retention lock's question
//! "does this segment hold committed data?" (the format and the rule are the policy's:
//! [`imageguard_policy::borg_log`]). Any doubt (a read error, a folder that cannot be listed)
//! answers "committed": the lock then holds, never the reverse.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use imageguard_policy::borg_log::{entry_header, segment_number, HEADER_LEN, MAGIC};
use rustix::fs::{Mode, OFlags};

/// A folder below `dir`, never through a symbolic link.
fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> Option<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// At most this many segment files are read for one question (a rollback deletes the few
/// newest; a repository whose newest segments hold no commit for longer than this counts as
/// committed).
const MAX_SEGMENTS: usize = 64;
/// At most this many entries are read from one segment.
const MAX_ENTRIES: usize = 1 << 20;

/// Whether segment `number`, in the numbered folder `segment_dir` of a borg repository's
/// `data/`, was written after the repository's last commit: neither it nor any later segment
/// holds a valid COMMIT entry.
pub fn is_uncommitted(segment_dir: BorrowedFd<'_>, number: u64) -> bool {
    let Some(data) = open_dir(segment_dir, c"..") else {
        return false;
    };
    let Some(mut later) = later_segments(data.as_fd(), number) else {
        return false;
    };
    if later.len() > MAX_SEGMENTS {
        return false;
    }
    // Newest first: in a repository at rest the newest segment ends its last transaction.
    later.sort_by_key(|s| std::cmp::Reverse(s.0));
    later
        .iter()
        .all(|(_, dir, file)| holds_no_commit(data.as_fd(), dir, file) == Some(true))
}

/// Every segment numbered `from` or later: (number, folder, file).
fn later_segments(data: BorrowedFd<'_>, from: u64) -> Option<Vec<(u64, CString, CString)>> {
    let mut out = vec![];
    for dir in names(data)? {
        if segment_number(dir.as_bytes()).is_none() {
            continue;
        }
        let dfd = open_dir(data, &dir)?;
        for file in names(dfd.as_fd())? {
            match segment_number(file.as_bytes()) {
                Some(n) if n >= from => out.push((n, dir.clone(), file)),
                _ => {}
            }
        }
    }
    Some(out)
}

/// The names in a folder (not `.` and `..`).
fn names(dir: BorrowedFd<'_>) -> Option<Vec<CString>> {
    let fd = open_dir(dir, c".")?;
    let mut out = vec![];
    for entry in rustix::fs::Dir::read_from(&fd).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Some(out)
}

/// `Some(true)` when the segment file holds no valid COMMIT entry (read entry by entry from
/// its start), `Some(false)` when it does; `None` when it cannot be read.
fn holds_no_commit(data: BorrowedFd<'_>, dir: &CString, file: &CString) -> Option<bool> {
    let dfd = open_dir(data, dir)?;
    let fd = rustix::fs::openat(
        &dfd,
        file.as_c_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut magic = [0u8; 8];
    if rustix::io::pread(&fd, &mut magic, 0).ok()? != magic.len() || &magic != MAGIC {
        // Not (yet) a segment: a file borg created and had not written to.
        return Some(true);
    }
    let mut offset = MAGIC.len() as u64;
    let mut header = [0u8; HEADER_LEN];
    for _ in 0..MAX_ENTRIES {
        let n = rustix::io::pread(&fd, &mut header, offset).ok()?;
        if n < HEADER_LEN {
            return Some(true);
        }
        let Some(h) = entry_header(&header) else {
            return Some(true);
        };
        if h.valid_commit {
            return Some(false);
        }
        offset += u64::from(h.size);
    }
    None
}
