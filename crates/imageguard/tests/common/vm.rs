//! What the tests that boot a virtual machine share: Debian's kernel to boot (virtme-ng runs it
//! under QEMU with this machine's files).

use std::path::PathBuf;

/// The newest kernel image in /boot.
pub fn kernel() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("no kernel in /boot for the virtual machine (apt-get install linux-image-amd64)")
}
