//! Serving the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::protocol::{Request, Response};

/// What the server dispatches to.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Response;
}

/// Credentials of the connected peer.
pub fn peer_uid(s: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// Bind the socket (replacing a stale one) and serve it on a background thread.
pub fn serve(path: &Path, handler: Arc<dyn Handler>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{}: another imageguard service is already listening",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let handler = handler.clone();
                let _ = std::thread::Builder::new()
                    .name("control conn".into())
                    .spawn(move || serve_one(conn, handler));
            }
        })?;
    Ok(())
}

fn serve_one(conn: UnixStream, handler: Arc<dyn Handler>) {
    let uid = peer_uid(&conn);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) if req.mutates() && uid != Some(0) => Response::error(
                format!(
                    "permission denied: only root may change imageguard (you are uid {})",
                    uid.map_or("unknown".into(), |u| u.to_string())
                ),
                libc::EPERM,
            ),
            Ok(req) => handler.handle(req),
            Err(e) => Response::error(format!("bad request: {e}"), libc::EINVAL),
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}
