//! Where imageguard keeps things. Every path has a flag and an environment variable so tests and
//! the demo run entirely inside a temporary directory.

use std::path::PathBuf;

use clap::Args;

pub const DEFAULT_CONFIG: &str = "/etc/imageguard/imageguard.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/imageguard";
pub const DEFAULT_RUNTIME_DIR: &str = "/run/imageguard";

#[derive(Debug, Clone, Args)]
pub struct PathArgs {
    /// Configuration file.
    #[arg(long, global = true, env = "IMAGEGUARD_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// State directory (certified list, protected volumes, event database).
    #[arg(long, global = true, env = "IMAGEGUARD_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Runtime directory (keeper namespace, default socket location).
    #[arg(long, global = true, env = "IMAGEGUARD_RUNTIME_DIR", default_value = DEFAULT_RUNTIME_DIR)]
    pub runtime_dir: PathBuf,
    /// Control socket [default: RUNTIME_DIR/control.sock].
    #[arg(long, global = true, env = "IMAGEGUARD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// A file holding the admin lock's passphrase (for commands that need it, when the lock is
    /// set); without it, the passphrase is asked on the terminal.
    #[arg(long, global = true, env = "IMAGEGUARD_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// systemd journal socket (events are also sent there when it exists).
    #[arg(long, global = true, env = "IMAGEGUARD_JOURNAL_SOCKET", default_value = imageguard_eventstore::journal::DEFAULT_SOCKET)]
    pub journal_socket: PathBuf,
}

impl PathArgs {
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("control.sock"))
    }

    pub fn events_db(&self) -> PathBuf {
        self.state_dir.join("events.db")
    }

    pub fn certified_list(&self) -> PathBuf {
        self.state_dir.join("certified.json")
    }

    pub fn service_state(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}
