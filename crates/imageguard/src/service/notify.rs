//! systemd's readiness protocol (`Type=notify`): once every volume is guarded the service says
//! `READY=1` (and a status line) on `$NOTIFY_SOCKET`; `STOPPING=1` when it stops. Without the
//! variable (not started by systemd) nothing is sent.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Send `state` (newline-separated `KEY=VALUE` lines) to systemd, if it is listening.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|a| {
        let s = UnixDatagram::unbound()?;
        s.send_to_addr(state.as_bytes(), &a)
    });
    if let Err(e) = sent {
        eprintln!("imageguard: telling systemd {state:?}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_the_notify_socket() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("notify");
        let listener = UnixDatagram::bind(&sock).unwrap();
        // The variable is this process's: set it only for the call.
        std::env::set_var("NOTIFY_SOCKET", &sock);
        notify("READY=1\nSTATUS=2 volume(s) protected");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 128];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=2 volume(s) protected");
    }
}
