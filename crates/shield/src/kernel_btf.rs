//! What the running kernel's BTF says of an LSM hook's arguments: some hooks gained an argument
//! between kernels (inode_setattr took the mount's idmap first from 6.8 on), and the shield
//! loads the program written for the one this kernel has. Reads `/sys/kernel/btf/vmlinux` (only
//! the type section's layout, as `include/uapi/linux/btf.h` defines it: no full parser).

use std::io;
use std::path::Path;

/// Where the running kernel's BTF is.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("BTF: {what}"))
}

/// The parameter names of the LSM hook `hook` (as the kernel's `bpf_lsm_<hook>` declares
/// them), from the BTF at `path`; `None` when the kernel has no such hook.
pub fn hook_params(path: &Path, hook: &str) -> io::Result<Option<Vec<String>>> {
    params_of(&std::fs::read(path)?, &format!("bpf_lsm_{hook}"))
}

fn u16_at(b: &[u8], at: usize) -> io::Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| invalid("truncated"))
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| invalid("truncated"))
}

/// The parameter names of the function `name` in the BTF blob `btf`.
fn params_of(btf: &[u8], name: &str) -> io::Result<Option<Vec<String>>> {
    if u16_at(btf, 0)? != BTF_MAGIC {
        return Err(invalid("not little-endian BTF"));
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
    let types = btf
        .get(hdr_len + type_off..hdr_len + type_off + type_len)
        .ok_or_else(|| invalid("type section out of bounds"))?;
    let strings = btf
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .ok_or_else(|| invalid("string section out of bounds"))?;
    let string = |off: u32| -> &[u8] {
        let s = strings.get(off as usize..).unwrap_or(&[]);
        &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
    };
    // Every type's offset, by id (ids start at 1), and the function wanted.
    let mut offsets = vec![0usize];
    let mut wanted = None;
    let mut at = 0;
    while at < types.len() {
        let (name_off, info, size_or_type) = (
            u32_at(types, at)?,
            u32_at(types, at + 4)?,
            u32_at(types, at + 8)?,
        );
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if kind == KIND_FUNC && string(name_off) == name.as_bytes() {
            wanted = Some(size_or_type);
        }
        offsets.push(at);
        at += 12
            + match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                _ => return Err(invalid(&format!("unknown kind {kind}"))),
            };
    }
    let Some(proto) = wanted else {
        return Ok(None);
    };
    let at = *offsets
        .get(proto as usize)
        .ok_or_else(|| invalid("function type out of range"))?;
    let info = u32_at(types, at + 4)?;
    if (info >> 24) & 0x1f != KIND_FUNC_PROTO {
        return Err(invalid("a function whose type is no prototype"));
    }
    let params = (0..(info & 0xffff) as usize)
        .map(|i| {
            let name_off = u32_at(types, at + 12 + 8 * i)?;
            Ok(String::from_utf8_lossy(string(name_off)).into_owned())
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with an int, a pointer, a prototype (a, b) and a function `f` of it.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0a\0b\0f\0".to_vec();
        let mut types = vec![];
        let mut ty = |name: u32, info: u32, rest: u32, extra: &[u32]| {
            for v in [name, info, rest].iter().chain(extra) {
                types.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(1, 1 << 24, 4, &[32]); // [1] INT "int"
        ty(0, 2 << 24, 1, &[]); // [2] PTR -> int
        ty(0, (13 << 24) | 2, 1, &[5, 2, 7, 1]); // [3] FUNC_PROTO (a: int *, b: int)
        ty(9, 12 << 24, 3, &[]); // [4] FUNC "f"
        let mut b = vec![];
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn a_functions_parameters_are_named_in_order() {
        assert_eq!(
            params_of(&blob(), "f").unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(params_of(&blob(), "g").unwrap(), None);
    }

    #[test]
    fn anything_but_btf_is_refused() {
        assert!(params_of(b"\x7fELF and more bytes than a header", "f").is_err());
        assert!(params_of(&blob()[..30], "f").is_err());
    }

    #[test]
    fn this_kernels_inode_setattr_has_a_dentry() {
        // Every kernel with BTF names the hook's dentry (first before 6.8, second after).
        match hook_params(Path::new(VMLINUX_BTF), "inode_setattr") {
            Ok(Some(p)) => assert!(p.iter().any(|n| n == "dentry"), "{p:?}"),
            Ok(None) => panic!("a kernel with BTF and no bpf_lsm_inode_setattr"),
            // A kernel without BTF: the shield cannot load there anyway.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("{e}"),
        }
    }
}
