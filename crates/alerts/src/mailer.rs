//! The thread that mails the pending summary: at most once per interval, never while the
//! guard waits (the guard only adds to the summary under a short lock), and what could not be
//! sent is kept for the next attempt.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imageguard_policy::Event;
use parking_lot::Mutex;

use crate::settings::EmailSettings;
use crate::smtp;
use crate::summary::Summary;

struct Shared {
    settings: EmailSettings,
    host: String,
    pending: Mutex<Summary>,
    stop: AtomicBool,
    /// Mails sent, and attempts that failed (their summaries kept).
    sent: AtomicU64,
    failed: AtomicU64,
}

/// The running alerts (cheap to clone).
#[derive(Clone)]
pub struct Alerts {
    shared: Arc<Shared>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// This machine's name, for subjects.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into())
}

impl Alerts {
    /// Start mailing, when the settings enable it and are complete.
    pub fn start(settings: &EmailSettings) -> Result<Option<Alerts>, String> {
        if !settings.enabled {
            return Ok(None);
        }
        if let Some(p) = settings.problem() {
            return Err(p);
        }
        let a = Alerts {
            shared: Arc::new(Shared {
                settings: settings.clone(),
                host: host_name(),
                pending: Mutex::new(Summary::default()),
                stop: AtomicBool::new(false),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        };
        let s = a.shared.clone();
        std::thread::Builder::new()
            .name("email alerts".into())
            .spawn(move || run(s))
            .map_err(|e| format!("starting the email thread: {e}"))?;
        Ok(Some(a))
    }

    /// An event happened: counted when it is one the admin mails about.
    pub fn notify(&self, event: &Event) {
        if self.shared.settings.events.contains(&event.kind.id()) {
            self.shared.pending.lock().add(event, now());
        }
    }

    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Send one test mail with `settings` (enabled or not): `imageguard settings email test`.
pub fn send_test(settings: &EmailSettings) -> Result<(), smtp::SendError> {
    let host = host_name();
    smtp::send(
        settings,
        &format!("imageguard on {host}: test mail"),
        &format!(
            "This is a test mail from imageguard on {host}: alerts about events {:?} arrive \
             here, at most one every {} s.\n",
            settings.events, settings.interval
        ),
    )
}

fn run(s: Arc<Shared>) {
    let interval = Duration::from_secs(s.settings.interval.max(1));
    let mut last = Instant::now() - interval;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        if last.elapsed() < interval || s.pending.lock().is_empty() {
            continue;
        }
        let summary = std::mem::take(&mut *s.pending.lock());
        last = Instant::now();
        match smtp::send(
            &s.settings,
            &summary.subject(&s.host),
            &summary.body(&s.host, s.settings.interval),
        ) {
            Ok(()) => {
                s.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                s.failed.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "email alert of {} event(s) not sent ({e}); kept for the next attempt",
                    summary.total()
                );
                eprintln!(
                    "imageguard: email alert of {} event(s) not sent ({e}); kept for the next attempt",
                    summary.total()
                );
                s.pending.lock().merge(summary);
            }
        }
    }
}
