//! Wiring the guard's ports to their adapters: callers are resolved from /proc by
//! imageguard-identity, events go to the event log (and to the email alerts, when on).

use imageguard_eventstore::EventLog;
use imageguard_gate::fresh::ProcessKey;
use imageguard_gate::{CallerSource, EventSink};
use imageguard_identity::CallerResolver;
use imageguard_policy::{CallerFacts, Event};

pub struct ProcCallers(pub std::sync::Arc<CallerResolver>);

impl CallerSource for ProcCallers {
    fn resolve(&self, pid: u32) -> CallerFacts {
        self.0.resolve(pid)
    }

    fn process(&self, pid: u32) -> Option<ProcessKey> {
        let (tgid, start) = imageguard_identity::procfs::process_of(pid).ok()?;
        Some(ProcessKey { tgid, start })
    }
}

pub struct LogSink {
    pub log: EventLog,
    pub alerts: Option<imageguard_alerts::Alerts>,
}

impl EventSink for LogSink {
    fn emit(&self, event: Event) {
        if let Some(a) = &self.alerts {
            a.notify(&event);
        }
        self.log.emit(event)
    }
}
