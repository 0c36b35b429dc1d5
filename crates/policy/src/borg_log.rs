//! borg's repository log, as far as the retention lock needs it: which segment files hold
//! committed data. A borg repository is a log of numbered segment files (`data/D/N`); each
//! transaction ends with a COMMIT entry in its last segment. Segments written after the last
//! COMMIT belong to a transaction that never completed, and borg's next run deletes them
//! (its rollback, `LoggedIO.cleanup`); holding those by age would stop every later borg run
//! for the whole lock period after one interrupted run (seen with borg 1.2.4: `prepare_txn`
//! fails with `EPERM`, then every `create` with `EEXIST`).
//!
//! A segment is committed when it or a later one holds a COMMIT entry, read entry by entry
//! from the start (a crc-checked header of size 9, tag 2). Reading from the start matters:
//! borg's own test looks only at a segment's last 9 bytes, so bytes appended after a COMMIT
//! would make a committed segment look uncommitted to it, not to this.
//!
//! Pure: the adapter reads the headers and asks.

/// Every segment file starts with this.
pub const MAGIC: &[u8; 8] = b"BORG_SEG";
/// An entry's header: crc32 (of what follows it in the entry), size (of the whole entry,
/// header included), tag.
pub const HEADER_LEN: usize = 9;
/// The tag of a COMMIT entry (its whole entry is its header).
pub const TAG_COMMIT: u8 = 2;
/// The largest tag borg 1.2 writes (PUT 0, DELETE 1, COMMIT 2, PUT2 3).
const TAG_MAX: u8 = 3;

/// One entry's header, as read from a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// The whole entry's length, header included.
    pub size: u32,
    pub tag: u8,
    /// For a COMMIT: its crc matches (the header alone is the entry).
    pub valid_commit: bool,
}

/// Decode an entry header; `None` for what cannot be one (the scan stops there).
pub fn entry_header(h: &[u8; HEADER_LEN]) -> Option<EntryHeader> {
    let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let tag = h[8];
    if tag > TAG_MAX || (size as usize) < HEADER_LEN {
        return None;
    }
    Some(EntryHeader {
        size,
        tag,
        valid_commit: tag == TAG_COMMIT && size as usize == HEADER_LEN && crc == crc32(&h[4..]),
    })
}

/// The segment number of a file named `name` in a numbered folder of `data/`.
pub fn segment_number(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 20 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Whether the entries read from a segment (`headers`, in order) include a valid COMMIT.
pub fn holds_commit(headers: impl IntoIterator<Item = EntryHeader>) -> bool {
    headers.into_iter().any(|h| h.valid_commit)
}

/// CRC-32 (IEEE, as zlib's `crc32`, which borg uses).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A COMMIT entry as borg writes it (for tests and the attack suite).
pub fn commit_entry() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[4..8].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[8] = TAG_COMMIT;
    let crc = crc32(&h[4..]);
    h[..4].copy_from_slice(&crc.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_commit_is_recognised_and_a_forged_one_is_not() {
        let c = commit_entry();
        // As borg 1.2.4 writes it (a real segment's last 9 bytes).
        assert_eq!(c, [0x40, 0xf4, 0x3c, 0x25, 0x09, 0, 0, 0, 0x02]);
        let h = entry_header(&c).unwrap();
        assert!(h.valid_commit);
        assert!(holds_commit([h]));
        let mut bad = c;
        bad[0] ^= 1;
        assert!(!entry_header(&bad).unwrap().valid_commit);
        // A PUT of 100 bytes, a tag borg does not write, a size below a header.
        let put = [0, 0, 0, 0, 100, 0, 0, 0, 0];
        assert_eq!(
            entry_header(&put),
            Some(EntryHeader {
                size: 100,
                tag: 0,
                valid_commit: false
            })
        );
        assert_eq!(entry_header(&[0, 0, 0, 0, 100, 0, 0, 0, 9]), None);
        assert_eq!(entry_header(&[0, 0, 0, 0, 3, 0, 0, 0, 2]), None);
        assert!(!holds_commit([entry_header(&put).unwrap()]));
    }

    #[test]
    fn segment_numbers() {
        assert_eq!(segment_number(b"0"), Some(0));
        assert_eq!(segment_number(b"1234"), Some(1234));
        for no in [
            &b""[..],
            b"12a",
            b"index.12",
            b"-1",
            b"123456789012345678901",
        ] {
            assert_eq!(segment_number(no), None, "{no:?}");
        }
    }
}
