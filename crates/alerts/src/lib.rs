//! imageguard's email alerts (the reference's Email tab): the admin picks the events (by
//! default every refusal, 320, and every error), and at most one mail per interval goes out,
//! a storm summarised with its counts. Alerts never block the guard (the guard only adds to a
//! bounded in-memory summary) and are never dropped silently: a mail that cannot be sent keeps
//! its summary for the next attempt, and the failure is said.
//!
//! - [`settings`]: the `[email]` table.
//! - [`summary`]: what is pending, counted by event.
//! - [`smtp`]: composing and sending one mail (STARTTLS, TLS, authentication).
//! - [`mailer`]: the thread that sends the summaries.

pub mod mailer;
pub mod settings;
pub mod smtp;
pub mod summary;

pub use mailer::Alerts;
pub use settings::{EmailSettings, Security};
