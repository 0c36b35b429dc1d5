//! What this kernel offers imageguard, per feature, and how to turn on what is missing
//! (`imageguard doctor`, and the service's own account of the kernel shield): the bpf LSM and
//! BTF (the kernel shield), Yama (other processes' memory), lockdown, Secure Boot and module
//! signatures (what root can still do below the shield), FUSE passthrough and FUSE over io_uring
//! (the guard's speed). [`KernelFacts::read`] reads them from /sys and /proc; [`findings`]
//! turns facts into advice and does no I/O (table-tested).

use std::path::Path;

use serde::Serialize;

/// The raw facts, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// The active LSMs, comma-separated (`/sys/kernel/security/lsm`).
    pub lsms: Option<String>,
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// `/proc/sys/kernel/yama/ptrace_scope`, when Yama is built in.
    pub yama_ptrace_scope: Option<u8>,
    /// The lockdown mode in force (`/sys/kernel/security/lockdown`: the word in brackets).
    pub lockdown: Option<String>,
    /// Secure Boot: `None` when the machine did not boot by EFI.
    pub secure_boot: Option<bool>,
    /// `/sys/module/module/parameters/sig_enforce`.
    pub module_sig_enforce: Option<bool>,
    /// `/sys/module/fuse/parameters/enable_uring`, when the kernel has FUSE over io_uring.
    pub fuse_uring: Option<bool>,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl KernelFacts {
    pub fn read() -> KernelFacts {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let lockdown = read_trimmed("/sys/kernel/security/lockdown").and_then(|s| {
            let open = s.find('[')?;
            let close = s[open..].find(']')? + open;
            Some(s[open + 1..close].to_string())
        });
        // The EFI variable: 4 bytes of attributes, then the value.
        let secure_boot = Path::new("/sys/firmware/efi").exists().then(|| {
            std::fs::read(
                "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
            )
            .ok()
            .and_then(|b| b.get(4).copied())
                == Some(1)
        });
        KernelFacts {
            release,
            lsms: read_trimmed("/sys/kernel/security/lsm"),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            yama_ptrace_scope: read_trimmed("/proc/sys/kernel/yama/ptrace_scope")
                .and_then(|s| s.parse().ok()),
            lockdown,
            secure_boot,
            module_sig_enforce: read_trimmed("/sys/module/module/parameters/sig_enforce")
                .map(|s| s == "Y"),
            fuse_uring: read_trimmed("/sys/module/fuse/parameters/enable_uring").map(|s| s == "Y"),
        }
    }

    fn bpf_lsm(&self) -> bool {
        self.lsms
            .as_deref()
            .is_some_and(|l| l.split(',').any(|x| x.trim() == "bpf"))
    }

    /// (major, minor) of the kernel release.
    fn version(&self) -> (u32, u32) {
        let mut parts = self
            .release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok());
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

/// How a feature stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// There and on.
    Ok,
    /// Missing or off: protection is weaker, the advice says how to turn it on.
    Missing,
    /// Not knowable here, or not relevant.
    Unknown,
}

/// One feature's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub feature: &'static str,
    pub standing: Standing,
    /// What was found, in words.
    pub found: String,
    /// What it means for imageguard and how to turn it on, when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

fn finding(
    feature: &'static str,
    standing: Standing,
    found: String,
    advice: Option<String>,
) -> Finding {
    Finding {
        feature,
        standing,
        found,
        advice,
    }
}

/// Every feature's finding, in the order `doctor` prints them.
pub fn findings(f: &KernelFacts) -> Vec<Finding> {
    let mut out = vec![];
    let lsms = f.lsms.clone().unwrap_or_default();
    out.push(if f.bpf_lsm() {
        finding("bpf LSM", Standing::Ok, format!("active ({lsms})"), None)
    } else {
        let with_bpf = if lsms.is_empty() {
            "bpf".to_string()
        } else {
            format!("{lsms},bpf")
        };
        finding(
            "bpf LSM",
            Standing::Missing,
            if lsms.is_empty() {
                "not active (no LSM list: securityfs not mounted?)".into()
            } else {
                format!("not active (active: {lsms})")
            },
            Some(format!(
                "the kernel shield needs it (without it, root can mount a protected device \
                 again, write it under the file system or reach the service's descriptors). \
                 Add lsm={with_bpf} to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub \
                 and reboot (the kernel must be built with CONFIG_BPF_LSM=y, as Debian's and \
                 Ubuntu's are)"
            )),
        )
    });
    out.push(if f.btf {
        finding("BTF", Standing::Ok, "/sys/kernel/btf/vmlinux".into(), None)
    } else {
        finding(
            "BTF",
            Standing::Missing,
            "no /sys/kernel/btf/vmlinux".into(),
            Some(
                "the kernel shield's programs are relocated against it: use a kernel built \
                 with CONFIG_DEBUG_INFO_BTF=y (Debian 12 and later, Ubuntu 20.10 and later)"
                    .into(),
            ),
        )
    });
    out.push(match f.yama_ptrace_scope {
        Some(s) if s >= 1 => finding(
            "Yama",
            Standing::Ok,
            format!("ptrace_scope = {s}"),
            (s < 2).then(|| {
                "root may still trace any process: ptrace_scope = 2 (admin only) or 3 (none) \
                 narrows it further (sysctl kernel.yama.ptrace_scope)"
                    .to_string()
            }),
        ),
        Some(s) => finding(
            "Yama",
            Standing::Missing,
            format!("ptrace_scope = {s}"),
            Some(
                "any process may write the memory of another of its user (a certified \
                 backup program's too): set kernel.yama.ptrace_scope = 1 or more in \
                 /etc/sysctl.d/"
                    .into(),
            ),
        ),
        None => finding(
            "Yama",
            Standing::Missing,
            "not built in".into(),
            Some(
                "no limit on tracing other processes beyond the usual permission checks: the \
                 kernel shield refuses tracing the service; certified programs are guarded \
                 by their closure only"
                    .into(),
            ),
        ),
    });
    out.push(match f.lockdown.as_deref() {
        Some("integrity") | Some("confidentiality") => finding(
            "lockdown",
            Standing::Ok,
            f.lockdown.clone().unwrap_or_default(),
            None,
        ),
        other => finding(
            "lockdown",
            Standing::Missing,
            other.map_or("not available".into(), |m| m.to_string()),
            Some(
                "root can write kernel memory (/dev/mem, unsigned modules, kexec) and so undo \
                 any kernel protection: boot with lockdown=integrity (Secure Boot turns it on \
                 on Debian)"
                    .into(),
            ),
        ),
    });
    out.push(match f.secure_boot {
        Some(true) => finding("Secure Boot", Standing::Ok, "on".into(), None),
        Some(false) => finding(
            "Secure Boot",
            Standing::Missing,
            "off".into(),
            Some(
                "root can boot another kernel (one without the shield) or a changed boot \
                 loader: turn Secure Boot on in the firmware"
                    .into(),
            ),
        ),
        None => finding(
            "Secure Boot",
            Standing::Unknown,
            "not an EFI boot".into(),
            Some("root can boot another kernel, one without the shield".into()),
        ),
    });
    out.push(match f.module_sig_enforce {
        Some(true) => finding("module signatures", Standing::Ok, "enforced".into(), None),
        Some(false) | None => finding(
            "module signatures",
            Standing::Missing,
            "not enforced".into(),
            Some(
                "root can load a kernel module of its own, which can undo the shield: boot \
                 with module.sig_enforce=1 (or lockdown, or Secure Boot)"
                    .into(),
            ),
        ),
    });
    let (major, minor) = f.version();
    out.push(if (major, minor) >= (6, 9) {
        finding(
            "FUSE passthrough",
            Standing::Ok,
            format!("kernel {}", f.release),
            None,
        )
    } else {
        finding(
            "FUSE passthrough",
            Standing::Missing,
            format!("kernel {} (6.9 brought it)", f.release),
            Some(
                "every read and write of an open file crosses the guard (slower, never less \
                 safe): a 6.9 or later kernel hands them to the kernel"
                    .into(),
            ),
        )
    });
    out.push(match f.fuse_uring {
        Some(true) => finding("FUSE over io_uring", Standing::Ok, "enabled".into(), None),
        Some(false) => finding(
            "FUSE over io_uring",
            Standing::Missing,
            "available, not enabled".into(),
            Some(
                "requests cross the guard by read/write on /dev/fuse: echo Y > \
                 /sys/module/fuse/parameters/enable_uring (fuse.enable_uring=1 at boot)"
                    .into(),
            ),
        ),
        None => finding(
            "FUSE over io_uring",
            Standing::Unknown,
            "not in this kernel (6.14 brought it)".into(),
            None,
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian_6_1() -> KernelFacts {
        KernelFacts {
            release: "6.1.0-28-amd64".into(),
            lsms: Some("lockdown,capability,landlock,yama,apparmor,tomoyo,bpf".into()),
            btf: true,
            yama_ptrace_scope: Some(0),
            lockdown: Some("none".into()),
            secure_boot: None,
            module_sig_enforce: Some(false),
            fuse_uring: None,
        }
    }

    fn by_feature<'a>(fs: &'a [Finding], feature: &str) -> &'a Finding {
        fs.iter().find(|f| f.feature == feature).unwrap()
    }

    #[test]
    fn a_kernel_with_the_bpf_lsm_can_run_the_shield() {
        let fs = findings(&debian_6_1());
        assert_eq!(by_feature(&fs, "bpf LSM").standing, Standing::Ok);
        assert_eq!(by_feature(&fs, "BTF").standing, Standing::Ok);
        assert_eq!(by_feature(&fs, "Yama").standing, Standing::Missing);
        assert_eq!(by_feature(&fs, "lockdown").standing, Standing::Missing);
        assert_eq!(
            by_feature(&fs, "FUSE passthrough").standing,
            Standing::Missing
        );
        assert_eq!(
            by_feature(&fs, "FUSE over io_uring").standing,
            Standing::Unknown
        );
    }

    #[test]
    fn without_the_bpf_lsm_the_advice_keeps_the_active_list_and_adds_bpf() {
        let mut f = debian_6_1();
        f.lsms = Some("lockdown,capability,landlock,yama,apparmor".into());
        let fs = findings(&f);
        let lsm = by_feature(&fs, "bpf LSM");
        assert_eq!(lsm.standing, Standing::Missing);
        assert!(
            lsm.advice
                .as_deref()
                .unwrap()
                .contains("lsm=lockdown,capability,landlock,yama,apparmor,bpf"),
            "{lsm:?}"
        );
    }

    #[test]
    fn newer_kernels_have_passthrough_and_say_how_to_enable_io_uring() {
        let mut f = debian_6_1();
        f.release = "6.18.0".into();
        f.fuse_uring = Some(false);
        f.yama_ptrace_scope = Some(2);
        f.lockdown = Some("integrity".into());
        let fs = findings(&f);
        assert_eq!(by_feature(&fs, "FUSE passthrough").standing, Standing::Ok);
        let uring = by_feature(&fs, "FUSE over io_uring");
        assert_eq!(uring.standing, Standing::Missing);
        assert!(uring.advice.as_deref().unwrap().contains("enable_uring"));
        assert_eq!(by_feature(&fs, "Yama").advice, None);
        assert_eq!(by_feature(&fs, "lockdown").standing, Standing::Ok);
    }

    #[test]
    fn this_machine_can_be_read() {
        let f = KernelFacts::read();
        assert!(!f.release.is_empty());
        assert_eq!(findings(&f).len(), 8);
    }
}
