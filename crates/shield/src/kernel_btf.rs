//! What the running kernel's BTF says that the programs' CO-RE relocations cannot: an LSM
//! hook's arguments (inode_setattr took the mount's idmap first from 6.8 on, and the shield
//! loads the program written for the one this kernel has), and where btrfs keeps a file's
//! subvolume device (in the btrfs module's own BTF when btrfs is a module, split on the
//! kernel's). Reads `/sys/kernel/btf/*` (only the type section's layout, as
//! `include/uapi/linux/btf.h` defines it: no full parser).

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

/// Where the btrfs module's BTF is, when btrfs is a module.
pub const BTRFS_MODULE_BTF: &str = "/sys/kernel/btf/btrfs";

/// Where btrfs keeps the device `stat` shows for a file (see `shield_service` in shield.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtrfsLayout {
    /// From a `struct inode` (the `vfs_inode` of its `struct btrfs_inode`) to that
    /// btrfs_inode's `root` pointer, in bytes.
    pub root_from_inode: i32,
    /// `anon_dev`'s offset in `struct btrfs_root`.
    pub anon_dev: u32,
}

/// This kernel's [`BtrfsLayout`]: from its own BTF when btrfs is built in, else from the
/// btrfs module's; `None` when neither describes it (no btrfs loaded, no module BTF, or
/// another layout than the shield knows how to read).
pub fn btrfs_layout() -> io::Result<Option<BtrfsLayout>> {
    let base = Types::parse(&std::fs::read(VMLINUX_BTF)?, None)?;
    if let Some(l) = base.btrfs_layout() {
        return Ok(Some(l));
    }
    match std::fs::read(BTRFS_MODULE_BTF) {
        Ok(blob) => Ok(Types::parse(&blob, Some(&base))?.btrfs_layout()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

/// One type: its kind, name, size or referenced type, and a struct's members (name, type,
/// offset in bits) or a prototype's parameters (name, type, 0).
#[derive(Debug, Clone, Default)]
struct Type {
    kind: u32,
    name: Vec<u8>,
    size_or_type: u32,
    members: Vec<(Vec<u8>, u32, u32)>,
}

/// A BTF blob's types by id (0: void), a split blob's after its base's, and the strings they
/// are named from (a split blob's after its base's: its string offsets go on from there).
struct Types {
    types: Vec<Type>,
    strings: Vec<u8>,
}

/// The bytes a type's record takes after its 12-byte header.
fn extra_len(kind: u32, vlen: usize) -> io::Result<usize> {
    Ok(match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
        _ => return Err(invalid(&format!("unknown kind {kind}"))),
    })
}

impl Types {
    /// Parse `btf`; a module's BTF is split on its kernel's (`base`).
    fn parse(btf: &[u8], base: Option<&Types>) -> io::Result<Types> {
        if u16_at(btf, 0)? != BTF_MAGIC {
            return Err(invalid("not little-endian BTF"));
        }
        let hdr_len = u32_at(btf, 4)? as usize;
        let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
        let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
        let section = |off: usize, len: usize, what: &str| {
            btf.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| invalid(&format!("{what} section out of bounds")))
        };
        let types = section(type_off, type_len, "type")?;
        let mut strings = base.map(|b| b.strings.clone()).unwrap_or_default();
        strings.extend_from_slice(section(str_off, str_len, "string")?);
        let mut all = match base {
            Some(b) => b.types.clone(),
            None => vec![Type::default()],
        };
        let name = |off: u32| -> Vec<u8> {
            let s = strings.get(off as usize..).unwrap_or(&[]);
            s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())].to_vec()
        };
        let mut at = 0;
        while at < types.len() {
            let (name_off, info, size_or_type) = (
                u32_at(types, at)?,
                u32_at(types, at + 4)?,
                u32_at(types, at + 8)?,
            );
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let mut ty = Type {
                kind,
                name: name(name_off),
                size_or_type,
                members: vec![],
            };
            if kind == KIND_FUNC_PROTO {
                // Its parameters: name and type, 8 bytes each.
                for i in 0..vlen {
                    let m = at + 12 + 8 * i;
                    ty.members
                        .push((name(u32_at(types, m)?), u32_at(types, m + 4)?, 0));
                }
            }
            if kind == KIND_STRUCT {
                // With kind_flag set, a member's offset holds its bitfield size above bit 24.
                let bitfields = info >> 31 == 1;
                for i in 0..vlen {
                    let m = at + 12 + 12 * i;
                    let offset = u32_at(types, m + 8)?;
                    ty.members.push((
                        name(u32_at(types, m)?),
                        u32_at(types, m + 4)?,
                        if bitfields {
                            offset & 0xff_ffff
                        } else {
                            offset
                        },
                    ));
                }
            }
            all.push(ty);
            at += 12 + extra_len(kind, vlen)?;
        }
        Ok(Types {
            types: all,
            strings,
        })
    }

    /// The struct named `name` that has members (not a declaration).
    fn struct_named(&self, name: &str) -> Option<&Type> {
        self.types
            .iter()
            .find(|t| t.kind == KIND_STRUCT && t.name == name.as_bytes() && !t.members.is_empty())
    }

    /// A member of `st` by name: its type and its offset in whole bytes.
    fn member(st: &Type, name: &str) -> Option<(u32, u32)> {
        st.members
            .iter()
            .find(|m| m.0 == name.as_bytes())
            .filter(|m| m.2 % 8 == 0)
            .map(|m| (m.1, m.2 / 8))
    }

    /// The type `id` is, through typedefs and qualifiers.
    fn resolved(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    fn btrfs_layout(&self) -> Option<BtrfsLayout> {
        let inode = self.struct_named("btrfs_inode")?;
        let (root_ty, root_at) = Self::member(inode, "root")?;
        let (_, vfs_at) = Self::member(inode, "vfs_inode")?;
        // `root` must be a pointer to struct btrfs_root, and anon_dev 32 bits.
        let ptr = self.resolved(root_ty)?;
        if ptr.kind != KIND_PTR {
            return None;
        }
        let pointee = self.resolved(ptr.size_or_type)?;
        if pointee.kind != KIND_STRUCT || pointee.name != b"btrfs_root" {
            return None;
        }
        let root = self.struct_named("btrfs_root")?;
        let (dev_ty, anon_dev) = Self::member(root, "anon_dev")?;
        let dev = self.resolved(dev_ty)?;
        if dev.kind != KIND_INT || dev.size_or_type != 4 {
            return None;
        }
        Some(BtrfsLayout {
            root_from_inode: i32::try_from(i64::from(root_at) - i64::from(vfs_at)).ok()?,
            anon_dev,
        })
    }
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
    let types = Types::parse(btf, None)?;
    let Some(func) = types
        .types
        .iter()
        .find(|t| t.kind == KIND_FUNC && t.name == name.as_bytes())
    else {
        return Ok(None);
    };
    let proto = types
        .types
        .get(func.size_or_type as usize)
        .ok_or_else(|| invalid("function type out of range"))?;
    if proto.kind != KIND_FUNC_PROTO {
        return Err(invalid("a function whose type is no prototype"));
    }
    Ok(Some(
        proto
            .members
            .iter()
            .map(|m| String::from_utf8_lossy(&m.0).into_owned())
            .collect(),
    ))
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
    fn this_kernels_btrfs_layout_is_read_where_btrfs_is_loaded() {
        // btrfs built in (its types in the kernel's BTF) or a loaded module (its own, split).
        if !Path::new("/sys/fs/btrfs").exists() || !Path::new(VMLINUX_BTF).exists() {
            return;
        }
        let layout = btrfs_layout()
            .unwrap()
            .expect("btrfs is loaded: its layout");
        // btrfs_inode keeps `root` before its vfs_inode, and btrfs_root's anon_dev after the
        // fields before it.
        assert!(layout.root_from_inode < 0, "{layout:?}");
        assert!(layout.anon_dev > 0, "{layout:?}");
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
