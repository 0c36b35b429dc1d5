//! The little of the ELF format imageguard needs: is a file an ELF object, and which dynamic
//! loader (`PT_INTERP`) does it name? A program without one is statically linked: no loader,
//! no shared libraries, nothing the loader's environment variables can change.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Whether `path` starts with the ELF magic.
pub fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The dynamic loader a 64-bit little-endian ELF file names, or `None` for a static program
/// or a shared library.
pub fn loader(path: &Path) -> io::Result<Option<PathBuf>> {
    let mut f = File::open(path)?;
    let mut header = [0u8; 64];
    f.read_exact(&mut header)
        .map_err(|_| invalid("too short for an ELF header"))?;
    if header[..4] != *b"\x7fELF" {
        return Err(invalid("not an ELF file"));
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(invalid("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let phoff = u64_at(&header, 32);
    let phentsize = u16_at(&header, 54) as usize;
    let phnum = u16_at(&header, 56) as usize;
    if phnum == 0 {
        return Ok(None);
    }
    if phentsize < 56 || phnum > 4096 {
        return Err(invalid("malformed program headers"));
    }
    let mut table = vec![0u8; phentsize * phnum];
    f.seek(SeekFrom::Start(phoff))?;
    f.read_exact(&mut table)
        .map_err(|_| invalid("truncated program headers"))?;
    for ph in table.chunks_exact(phentsize) {
        if u32_at(ph, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(ph, 8), u64_at(ph, 32));
        if size == 0 || size > 4096 {
            return Err(invalid("malformed PT_INTERP"));
        }
        let mut name = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut name)
            .map_err(|_| invalid("truncated PT_INTERP"))?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let name = std::str::from_utf8(&name[..end]).map_err(|_| invalid("PT_INTERP not UTF-8"))?;
        return Ok(Some(PathBuf::from(name)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_static_and_not_elf() {
        let ld = loader(Path::new("/bin/true"))
            .unwrap()
            .expect("/bin/true is dynamic");
        assert!(ld.to_string_lossy().contains("ld-linux"), "{ld:?}");
        assert!(is_elf(Path::new("/bin/true")));
        // A shared library names no loader (libc, which can also run as a program, does).
        let libm = Path::new("/usr/lib/x86_64-linux-gnu/libm.so.6");
        assert_eq!(loader(libm).unwrap(), None);
        let d = tempfile::tempdir().unwrap();
        // A statically linked program (as restic's and rclone's release builds are).
        let src = d.path().join("s.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let prog = d.path().join("static");
        let built = std::process::Command::new("gcc")
            .args(["-static", "-o"])
            .arg(&prog)
            .arg(&src)
            .status()
            .unwrap();
        assert!(built.success());
        assert_eq!(loader(&prog).unwrap(), None);
        let script = d.path().join("s");
        std::fs::write(&script, b"#!/bin/sh\n").unwrap();
        assert!(!is_elf(&script));
        assert!(loader(&script).is_err());
        std::fs::write(&script, b"\x7fELF\x02\x01").unwrap();
        assert!(loader(&script).is_err());
    }
}
