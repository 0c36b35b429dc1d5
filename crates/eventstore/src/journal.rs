//! Sending events to the systemd journal over its native datagram protocol.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use imageguard_policy::Event;

use crate::coalesce::Occurrences;

/// The journal's native socket.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    socket: PathBuf,
    sock: Option<UnixDatagram>,
    /// Events the journal could not take (its queue was full); they are still in the database.
    pub dropped: u64,
}

fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend(value.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
    out.push(b'\n');
}

/// The datagram for one coalesced event.
pub fn encode(e: &Event, o: &Occurrences) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    let mut text = e.message();
    if o.count > 1 {
        text.push_str(&format!(" (repeated {} times)", o.count));
    }
    field(&mut m, "MESSAGE", &text);
    field(&mut m, "MESSAGE_ID", &e.kind.journal_message_id());
    field(
        &mut m,
        "PRIORITY",
        &e.kind.severity().syslog_priority().to_string(),
    );
    field(&mut m, "SYSLOG_IDENTIFIER", "imageguard");
    field(&mut m, "IMAGEGUARD_EVENT_ID", &e.kind.id().to_string());
    field(&mut m, "IMAGEGUARD_EVENT", e.kind.name());
    field(&mut m, "IMAGEGUARD_COUNT", &o.count.to_string());
    if let Some(p) = &e.process {
        field(&mut m, "IMAGEGUARD_EXE", &p.exe);
        field(&mut m, "IMAGEGUARD_PID", &p.pid.to_string());
    }
    if let Some(op) = e.operation {
        field(&mut m, "IMAGEGUARD_OPERATION", op.name());
    }
    if let Some(f) = &e.file {
        field(&mut m, "IMAGEGUARD_FILE", f);
    }
    if let Some(v) = &e.volume {
        field(&mut m, "IMAGEGUARD_DEVICE", &v.device);
        field(&mut m, "IMAGEGUARD_MOUNT_POINT", &v.mount_point);
        if let Some(u) = &v.uuid {
            field(&mut m, "IMAGEGUARD_UUID", u);
        }
    }
    if let Some(c) = e.error_code {
        field(&mut m, "IMAGEGUARD_ERROR_CODE", &c.to_string());
    }
    m
}

impl Journal {
    pub fn new(socket: impl Into<PathBuf>) -> Journal {
        Journal {
            socket: socket.into(),
            sock: None,
            dropped: 0,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send one event; does nothing when the journal is not running, and never waits for a
    /// journal that is slow to read (the event is then only in the database).
    pub fn send(&mut self, e: &Event, o: &Occurrences) {
        if !self.socket.exists() {
            return;
        }
        if self.sock.is_none() {
            self.sock = UnixDatagram::unbound()
                .ok()
                .filter(|s| s.set_nonblocking(true).is_ok());
        }
        if let Some(s) = &self.sock {
            if let Err(err) = s.send_to(&encode(e, o), &self.socket) {
                self.dropped += 1;
                log::debug!("journal {}: {err}", self.socket.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::EventKind;

    #[test]
    fn datagram_reaches_a_listening_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("journal.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::new(&path);
        let e = Event::new(EventKind::BlockedFileAccess)
            .with_process("/bin/rm", 9)
            .with_file("/m/x.mrimg");
        j.send(
            &e,
            &Occurrences {
                count: 3,
                first_ns: 0,
                last_ns: 0,
            },
        );
        let mut buf = vec![0u8; 4096];
        let n = listener.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.contains("PRIORITY=4\n"), "{text}");
        assert!(text.contains(&format!(
            "MESSAGE_ID={}\n",
            EventKind::BlockedFileAccess.journal_message_id()
        )));
        assert!(text.contains("IMAGEGUARD_COUNT=3\n"));
        assert!(text.contains("(repeated 3 times)"));
        Journal::new(d.path().join("absent")).send(
            &e,
            &Occurrences {
                count: 1,
                first_ns: 0,
                last_ns: 0,
            },
        );
    }

    #[test]
    fn a_journal_that_does_not_read_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("journal.sock");
        let _listener = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::new(&path);
        let e = Event::new(EventKind::BlockedFileAccess);
        let o = Occurrences {
            count: 1,
            first_ns: 0,
            last_ns: 0,
        };
        let t = std::time::Instant::now();
        for _ in 0..10_000 {
            j.send(&e, &o);
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(j.dropped > 0);
    }
}
