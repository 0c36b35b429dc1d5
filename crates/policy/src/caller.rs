//! What the guard knows about the process that issued a request.

use serde::{Deserialize, Serialize};

/// Why a process does not count as certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "why", content = "detail")]
pub enum Untrusted {
    /// Its executable is not on the certified list.
    NotCertified,
    /// Its executable is on the list by path but its content no longer matches the recorded hash.
    BinaryChanged,
    /// It is being traced (ptrace) by this pid.
    Traced(u32),
    /// Its initial environment injects code (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, PYTHONPATH...).
    Injected(String),
    /// The request carried no usable pid, or the process was gone before it could be identified.
    Unidentified,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::NotCertified => f.write_str("not certified"),
            Untrusted::BinaryChanged => f.write_str("certified binary changed on disk"),
            Untrusted::Traced(p) => write!(f, "traced by pid {p}"),
            Untrusted::Injected(v) => write!(f, "environment injects code ({v})"),
            Untrusted::Unidentified => f.write_str("process could not be identified"),
        }
    }
}

/// Facts about a caller, gathered by the identity adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerFacts {
    pub pid: u32,
    /// Executable path as the kernel reports it (`/proc/PID/exe`), or a placeholder.
    pub exe: String,
    /// `Ok(certified entry path)` or why the caller is not trusted.
    pub trust: Result<String, Untrusted>,
}

impl CallerFacts {
    pub fn is_certified(&self) -> bool {
        self.trust.is_ok()
    }

    pub fn untrusted(pid: u32, exe: impl Into<String>, why: Untrusted) -> CallerFacts {
        CallerFacts {
            pid,
            exe: exe.into(),
            trust: Err(why),
        }
    }

    pub fn certified(pid: u32, exe: impl Into<String>, entry: impl Into<String>) -> CallerFacts {
        CallerFacts {
            pid,
            exe: exe.into(),
            trust: Ok(entry.into()),
        }
    }
}
