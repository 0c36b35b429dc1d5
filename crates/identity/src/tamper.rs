//! What can reach into a running certified process without the tracer check seeing it.
//!
//! Root can write into another process's memory through `/proc/PID/mem` without attaching as
//! a tracer (`TracerPid` stays 0). The kernel allows it when `ptrace_may_access` does, which
//! Yama's `ptrace_scope = 3` ("no attach") refuses to everyone, root included, until reboot.

use std::path::Path;

const PTRACE_SCOPE: &str = "/proc/sys/kernel/yama/ptrace_scope";

/// Whether `/proc/PID/mem` writes into other processes are closed on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryWrites {
    /// Yama refuses every attach (ptrace_scope 3): closed for everyone, root included.
    ClosedByYama,
    /// Yama is active with a lower scope: root may still write.
    OpenYamaScope(u8),
    /// Yama is not in this kernel: root may write.
    OpenNoYama,
}

/// Read the machine's setting.
pub fn memory_writes() -> MemoryWrites {
    memory_writes_at(Path::new(PTRACE_SCOPE))
}

fn memory_writes_at(path: &Path) -> MemoryWrites {
    match std::fs::read_to_string(path) {
        Err(_) => MemoryWrites::OpenNoYama,
        Ok(s) => match s.trim().parse::<u8>() {
            Ok(3) => MemoryWrites::ClosedByYama,
            Ok(n) => MemoryWrites::OpenYamaScope(n),
            Err(_) => MemoryWrites::OpenYamaScope(0),
        },
    }
}

impl MemoryWrites {
    /// What to tell the administrator, when the door is open.
    pub fn warning(self) -> Option<String> {
        let how = match self {
            MemoryWrites::ClosedByYama => return None,
            MemoryWrites::OpenYamaScope(n) => format!(
                "set kernel.yama.ptrace_scope = 3 (now {n}; it cannot be lowered again until reboot)"
            ),
            MemoryWrites::OpenNoYama => {
                "this kernel has no Yama LSM: boot one with Yama (security=yama or lsm=...,yama) \
                 and set kernel.yama.ptrace_scope = 3"
                    .to_string()
            }
        };
        Some(format!(
            "root can write into a running certified program's memory through /proc/PID/mem \
             without attaching a tracer, which the guard cannot see: {how}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_settings() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ptrace_scope");
        assert_eq!(memory_writes_at(&p), MemoryWrites::OpenNoYama);
        std::fs::write(&p, "1\n").unwrap();
        assert_eq!(memory_writes_at(&p), MemoryWrites::OpenYamaScope(1));
        assert!(memory_writes_at(&p)
            .warning()
            .unwrap()
            .contains("ptrace_scope = 3"));
        std::fs::write(&p, "3\n").unwrap();
        assert_eq!(memory_writes_at(&p), MemoryWrites::ClosedByYama);
        assert_eq!(MemoryWrites::ClosedByYama.warning(), None);
    }
}
