//! `imageguard settings KEY VALUE` in the running service: the configuration file is edited
//! (comments kept, the result checked), and the settings the service can apply live are
//! applied at once (automatic protection of backup drives, sync tools); the others at the next
//! start.

use std::sync::atomic::Ordering;

use anyhow::Result;

use super::Service;
use crate::config::{Config, DEFAULT_TOML};
use crate::control::protocol::Response;
use crate::settings;

impl Service {
    pub(super) fn set_setting(&self, key: &str, raw: &str) -> Result<Response> {
        let setting = settings::find(key)?;
        let _changing = self.changes.lock();
        let path = &self.paths.config;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_TOML.to_string(),
            Err(e) => return Err(e.into()),
        };
        let new = settings::set(&text, setting, raw)?;
        let config = Config::from_text(&new, path)?;
        settings::write(path, &new)?;
        self.seal(path);
        let shown = settings::show(&config, setting);
        match setting.key {
            "protection.auto_protect_backup_drives" => self.auto_protect.store(
                config.protection.auto_protect_backup_drives,
                Ordering::Relaxed,
            ),
            "sync_tools.allow" => self.sync_places.set_allowed(config.sync_tools.allow),
            _ => {}
        }
        eprintln!("imageguard: setting {key} = {shown}");
        Ok(Response::ok(format!(
            "{key} = {shown}{}",
            if setting.live {
                " (applied)"
            } else {
                " (written; takes effect at the next start of the service)"
            }
        )))
    }
}
