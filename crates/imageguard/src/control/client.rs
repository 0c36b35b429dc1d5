//! Talking to the service.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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

pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(socket)
        .map_err(|_| ClientError::NotRunning(socket.display().to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let mut line = serde_json::to_vec(req).context("encoding request")?;
    line.push(b'\n');
    s.write_all(&line).context("sending request")?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .context("reading answer")?;
    if answer.is_empty() {
        return Err(anyhow::anyhow!("the service closed the connection without answering").into());
    }
    Ok(serde_json::from_str(&answer).context("decoding answer")?)
}
