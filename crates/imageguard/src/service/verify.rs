//! The service's part of `imageguard verify` (the command's own part, the uncertified probes,
//! runs in the caller's namespace: see `cli::verify`): writing and removing the verification
//! file through the volume's guard, as the service itself, and confirming that the guard
//! recorded the probe's 310 (logging 500 when it did not, as the reference does).

use std::path::Path;

use anyhow::{Context, Result};
use imageguard_eventstore::{EventDb, EventFilter};
use imageguard_policy::classify::VERIFICATION_FILE;
use imageguard_policy::{Event, EventKind};

use super::volumes::volume_ref;
use super::Service;
use crate::control::protocol::{Response, VerifyStep};

impl Service {
    pub(super) fn verify_file(&self, mount_point: &Path, step: VerifyStep) -> Result<Response> {
        let mp = mount_point
            .canonicalize()
            .unwrap_or_else(|_| mount_point.to_path_buf());
        let vref = {
            let inner = self.inner.lock();
            let v = inner
                .volumes
                .get(&mp)
                .ok_or_else(|| anyhow::anyhow!("{} is not protected", mp.display()))?;
            if !v.guard.is_running() {
                anyhow::bail!("the guard on {} is not running", mp.display());
            }
            volume_ref(&v.info)
        };
        // Through the guard, as the service: no lock is held meanwhile (the guard's threads
        // answer this very request).
        let file = mp.join(VERIFICATION_FILE);
        match step {
            VerifyStep::Write => {
                let content = format!(
                    "imageguard verification {} {}\n",
                    std::process::id(),
                    crate::timefmt::now_ns()
                );
                std::fs::write(&file, &content)
                    .with_context(|| format!("writing {}", file.display()))?;
                Ok(Response::ok(content))
            }
            VerifyStep::Remove => {
                std::fs::remove_file(&file)
                    .with_context(|| format!("removing {}", file.display()))?;
                Ok(Response::ok(format!("{} removed", file.display())))
            }
            VerifyStep::Recorded { pid } => {
                self.log.flush();
                let found = EventDb::open_read_only(self.log.db_path())
                    .and_then(|db| {
                        db.query(&EventFilter {
                            id: Some(EventKind::BlockVerificationFileAccess.id()),
                            ..EventFilter::default()
                        })
                    })
                    .map(|rows| rows.iter().any(|r| r.pid == Some(pid)));
                match found {
                    Ok(true) => Ok(Response::ok("recorded")),
                    Ok(false) | Err(_) => {
                        let code = match &found {
                            Err(_) => libc::EIO,
                            _ => libc::ENOENT,
                        };
                        self.emit(
                            Event::new(EventKind::ErrorBadEvent)
                                .with_volume(vref)
                                .with_error(code)
                                .with_detail(format!(
                                    "the verification's 310 for pid {pid} is not in the event store"
                                )),
                        );
                        anyhow::bail!("the verification's event (310, pid {pid}) was not recorded")
                    }
                }
            }
        }
    }
}
