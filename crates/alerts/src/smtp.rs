//! Composing and sending one mail with lettre: STARTTLS (required, not opportunistic), TLS from
//! the first byte, or none; authentication when a user is set; a private CA when configured.
//! Every connection is bounded by a timeout, so a hanging server only delays the next mail.

use std::time::Duration;

use lettre::message::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use crate::settings::{EmailSettings, Security};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(String);

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> SendError + '_ {
    move |e| SendError(format!("{what}: {e}"))
}

/// Send one mail with `subject` and `body` to the configured recipients.
pub fn send(s: &EmailSettings, subject: &str, body: &str) -> Result<(), SendError> {
    if let Some(p) = s.problem() {
        return Err(SendError(p));
    }
    let mut b = Message::builder()
        .from(s.from.parse().map_err(|e| err("[email] from")(&e))?)
        .subject(subject);
    for to in &s.to {
        b = b.to(to.parse().map_err(|e| err("[email] to")(&e))?);
    }
    let msg = b
        .body(body.to_string())
        .map_err(|e| err("composing the mail")(&e))?;
    let tls = || -> Result<TlsParameters, SendError> {
        let mut p = TlsParameters::builder(s.server.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| err("[email] ca_file")(&e))?;
            p = p.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| err("[email] ca_file")(&e))?,
            );
        }
        p.build().map_err(|e| err("TLS")(&e))
    };
    let mut t = SmtpTransport::builder_dangerous(&s.server)
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout.max(1))));
    t = match s.security {
        Security::Starttls => t.tls(Tls::Required(tls()?)),
        Security::Tls => t.tls(Tls::Wrapper(tls()?)),
        Security::None => t.tls(Tls::None),
    };
    if !s.username.is_empty() {
        let password = match &s.password_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| err("[email] password_file")(&e))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            None => String::new(),
        };
        t = t.credentials(Credentials::new(s.username.clone(), password));
    }
    t.build()
        .send(&msg)
        .map(drop)
        .map_err(|e| err(&format!("sending to {}:{}", s.server, s.port))(&e))
}
