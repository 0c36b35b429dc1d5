//! The policy gate: where the guard asks the pure policy about one operation and, on a denial,
//! reports the event. Callers are identified lazily: only an operation on a backup entry costs a
//! look at `/proc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use imageguard_policy::{
    decide, CallerFacts, Class, Event, EventKind, Operation, Verdict, VolumeRef,
};

/// Identifies the process behind a request (implemented over `/proc` by imageguard-identity).
pub trait CallerSource: Send + Sync {
    fn resolve(&self, pid: u32) -> CallerFacts;
}

/// Receives the events the guard raises (implemented by the event store).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Counters shown by `imageguard status`.
#[derive(Debug, Default)]
pub struct GateCounters {
    pub denied: AtomicU64,
    pub allowed_certified: AtomicU64,
}

pub struct Gate {
    callers: Arc<dyn CallerSource>,
    sink: Arc<dyn EventSink>,
    volume: VolumeRef,
    pub counters: GateCounters,
}

impl Gate {
    pub fn new(
        callers: Arc<dyn CallerSource>,
        sink: Arc<dyn EventSink>,
        volume: VolumeRef,
    ) -> Gate {
        Gate {
            callers,
            sink,
            volume,
            counters: GateCounters::default(),
        }
    }

    pub fn volume(&self) -> &VolumeRef {
        &self.volume
    }

    pub fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }

    /// Whether the process behind `pid` is certified (for checks that only concern others).
    pub fn is_certified(&self, pid: u32) -> bool {
        self.callers.resolve(pid).is_certified()
    }

    /// Ok when `op` on an entry of class `class` by `pid` may proceed; otherwise logs event 320
    /// (naming the file by `path()`) and returns the errno to fail the request with.
    pub fn check(
        &self,
        pid: u32,
        op: Operation,
        class: &Class,
        path: impl FnOnce() -> String,
    ) -> Result<(), i32> {
        if !class.is_backup() {
            return Ok(());
        }
        let caller = self.callers.resolve(pid);
        match decide(&caller, op, class) {
            Verdict::Allow => {
                self.counters
                    .allowed_certified
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Deny => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
                let why = match &caller.trust {
                    Ok(_) => String::new(),
                    Err(u) => u.to_string(),
                };
                let reason = match class {
                    Class::Backup(r) => r.to_string(),
                    Class::Ordinary => String::new(),
                };
                let event = Event::new(EventKind::BlockedFileAccess)
                    .with_process(caller.exe, caller.pid)
                    .with_volume(self.volume.clone())
                    .with_file(path())
                    .with_operation(op)
                    .with_detail(format!("{why}; {reason}"));
                self.sink.emit(event);
                Err(libc::EPERM)
            }
        }
    }
}
