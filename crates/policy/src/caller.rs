//! What the guard knows about the process that issued a request.

use serde::{Deserialize, Serialize};

use crate::closure::ClosureChange;
use crate::sync_tools::{Dialect, SyncCommand, Unreadable};

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
    /// Its start-up environment can change the code it runs (the variable, and what reads it).
    Injected(String),
    /// Its program's closure (libraries, modules, start-up hooks) changed since certification.
    ClosureChanged(ClosureChange),
    /// It maps code from outside its program's closure (the file, or anonymous memory).
    ForeignCode(String),
    /// Its program was certified before closures were recorded.
    NoClosure,
    /// Its interpreter was started under another name than the script's `#!` line gives it
    /// (Python finds its library and virtual environments from that name).
    StartedAs(String),
    /// It is certified only as a helper of certified programs, and is not running as one now
    /// (what started it, or that it was orphaned).
    HelperOutside(String),
    /// It is a sync tool: not certified, allowed only what the sync rules allow.
    SyncTool,
    /// The request carried no usable pid, or the process was gone before it could be identified.
    Unidentified,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::NotCertified => f.write_str("not certified"),
            Untrusted::BinaryChanged => f.write_str("certified binary changed on disk"),
            Untrusted::Traced(p) => write!(f, "traced by pid {p}"),
            Untrusted::Injected(v) => write!(f, "its environment can change its code: {v}"),
            Untrusted::ClosureChanged(c) => write!(
                f,
                "its code changed since certification: {c} (certify it again if that was intended)"
            ),
            Untrusted::ForeignCode(p) => {
                write!(f, "runs code from outside what was certified: {p}")
            }
            Untrusted::NoClosure => f.write_str(
                "certified before its libraries and modules were recorded: certify it again",
            ),
            Untrusted::StartedAs(a) => write!(
                f,
                "its interpreter was started as {a:?}, not as the script's #! line names it"
            ),
            Untrusted::HelperOutside(why) => write!(f, "{why}"),
            Untrusted::SyncTool => f.write_str("a sync tool, not certified"),
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
    /// For a sync tool whose program is intact (trust is then `Err(SyncTool)`): what its
    /// command line asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncCaller>,
}

/// A sync tool's process, as the sync rules need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCaller {
    /// Its entry on the certified list (a sync-tool entry).
    pub entry: String,
    pub dialect: Dialect,
    /// Its command line, read in its dialect.
    pub command: Result<SyncCommand, Unreadable>,
    /// It runs in another mount namespace or root than the service: its paths name other
    /// files than the service's.
    pub elsewhere: bool,
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
            sync: None,
        }
    }

    pub fn certified(pid: u32, exe: impl Into<String>, entry: impl Into<String>) -> CallerFacts {
        CallerFacts {
            pid,
            exe: exe.into(),
            trust: Ok(entry.into()),
            sync: None,
        }
    }
}
