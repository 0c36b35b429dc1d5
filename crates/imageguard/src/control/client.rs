//! Talking to the service.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};

use super::protocol::{Request, Response};

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the imageguard service is not running (no answer on {0}); start it with `imageguard service` or `systemctl start imageguard`")]
    NotRunning(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Send `req`, with the admin lock's passphrase where it needs one: from `--passphrase-file`
/// (or `IMAGEGUARD_PASSPHRASE_FILE`) when given, else asked on the terminal when the service
/// says the lock is set.
pub fn request_admin(
    paths: &crate::paths::PathArgs,
    req: Request,
) -> Result<Response, ClientError> {
    let authorized = |passphrase: String, req: Request| Request::Authorized {
        passphrase,
        request: Box::new(req),
    };
    if let Some(f) = &paths.passphrase_file {
        let p = std::fs::read_to_string(f)
            .with_context(|| format!("reading the passphrase from {}", f.display()))?;
        let p = p.trim_end_matches(['\n', '\r']).to_string();
        return request(&paths.socket(), &authorized(p, req));
    }
    let answer = request(&paths.socket(), &req)?;
    match &answer {
        Response::Error { message, .. }
            if message.contains(crate::admin_lock::NEEDS_PASSPHRASE)
                && std::io::IsTerminal::is_terminal(&std::io::stdin()) =>
        {
            let p = rpassword::prompt_password("imageguard admin passphrase: ")
                .context("reading the passphrase")?;
            request(&paths.socket(), &authorized(p, req))
        }
        _ => Ok(answer),
    }
}

pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(socket)
        .map_err(|_| ClientError::NotRunning(socket.display().to_string()))?;
    s.set_read_timeout(Some(req.answer_timeout())).ok();
    let mut line = serde_json::to_vec(req).context("encoding request")?;
    line.push(b'\n');
    s.write_all(&line).context("sending request")?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).with_context(|| {
        format!(
            "no answer from the service within {} s",
            req.answer_timeout().as_secs()
        )
    })?;
    if answer.is_empty() {
        return Err(anyhow::anyhow!("the service closed the connection without answering").into());
    }
    Ok(serde_json::from_str(&answer).context("decoding answer")?)
}
