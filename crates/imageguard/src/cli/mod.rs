//! The command line: one module per user action.

pub mod certify;
pub mod definitions;
pub mod demo;
pub mod doctor;
pub mod events;
pub mod generate;
pub mod helpers;
pub mod learn;
pub mod lock;
pub mod metrics;
pub mod protect;
pub mod settings;
pub mod status;
pub mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::paths::PathArgs;

/// Exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NOT_RUNNING: i32 = 3;
    pub const PERMISSION: i32 = 4;
    /// `imageguard service` ended by `imageguard stop`: the systemd unit does not restart it
    /// (`RestartPreventExitStatus=`), while a plain SIGTERM's exit (0) is restarted.
    pub const STOPPED_ON_REQUEST: i32 = 10;
}

#[derive(Debug, Parser)]
#[command(
    name = "imageguard",
    version,
    about = "Ransomware protection for backup files: only certified backup programs may modify them"
)]
pub struct Cli {
    #[command(flatten)]
    pub paths: PathArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the guard service in the foreground (what the systemd unit runs).
    Service,
    /// Protect a mounted volume (or, weaker, a folder).
    Protect { path: PathBuf },
    /// Stop protecting a volume and give it back to the host.
    Unprotect { path: PathBuf },
    /// Let a protected drive go so that it can be unplugged: the guard and the hidden mount are
    /// unmounted (the volume is never writable in between). Plugged in again, a backup drive
    /// is protected again.
    Eject { path: PathBuf },
    /// Open a short maintenance window for repository keys on a protected volume: certified
    /// programs may then remove and rewrite key material (`restic key passwd`, `restic key
    /// remove`, `borg key change-passphrase`), which is otherwise only ever added to.
    Maintenance {
        /// The protected volume (or a folder on it).
        path: PathBuf,
        /// How long it stays open (1 to 60 minutes).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
        minutes: u32,
        /// Close it now.
        #[arg(long, conflicts_with = "minutes")]
        close: bool,
    },
    /// Prove that each protected volume (or those named) is guarded right now, as this
    /// process sees it: an uncertified child is refused creating, overwriting and deleting the
    /// verification file, the service writes and removes its own. Exit 1 on any FAIL: run it
    /// from a backup job before the job.
    Verify {
        mount_points: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show the settings, one of them (KEY), or set one (KEY VALUE): written to the
    /// configuration file with its comments kept, applied at once where the service can.
    Settings {
        key: Option<String>,
        value: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The admin lock: a passphrase that off, unprotect, eject, maintenance, certify,
    /// uncertify, stop and settings changes need, and a seal on the configuration, the certified
    /// list and the state (a file changed by hand is refused at the next start).
    Lock {
        #[command(subcommand)]
        command: lock::LockCommand,
    },
    /// The admin's console (terminal UI): settings, volumes, certified programs and events,
    /// as the service has them now; changes applied at once (read-only for a non-root user).
    Tui,
    /// The service's metrics in Prometheus' text format (denials by operation and volume,
    /// events by id, protected volumes, the guard's decision latency).
    Metrics,
    /// The manual page (`man`) or shell completions (`completions SHELL`), for packaging.
    #[command(hide = true)]
    Generate { what: String, shell: Option<String> },
    /// What `verify` runs as its uncertified child.
    #[command(hide = true)]
    Probe { op: String, file: PathBuf },
    /// What this kernel offers imageguard (the bpf LSM and BTF for the kernel shield, Yama,
    /// lockdown, Secure Boot, module signatures, FUSE passthrough and io_uring) and how to turn
    /// on what is missing.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Show whether protection is on, the protected volumes and event counts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Certify a backup program: it may then modify backup files, as long as everything it
    /// loads code from (its closure: libraries, modules, start-up hooks) stays as recorded now.
    Certify {
        path: PathBuf,
        /// Certify even a shell or interpreter (every script it runs could then modify
        /// backups), or a script whose interpreter imageguard does not model.
        #[arg(long)]
        force: bool,
        /// Add a file to the closure by hand (a plugin the program loads only sometimes, a
        /// file a shell script sources). Repeatable.
        #[arg(long, value_name = "FILE")]
        also: Vec<PathBuf>,
        /// Home folder of a user who runs the program (a Python program imports from the user
        /// site folder under it). Default: root's. Repeatable.
        #[arg(long, value_name = "DIR")]
        home: Vec<PathBuf>,
        /// Run the program's usual job once (the command after `--`) and add every library it
        /// maps to the closure.
        #[arg(long, requires = "command")]
        learn: bool,
        /// Also certify the helper programs PATH is known to run as separate processes (rsnapshot:
        /// cp, rm, rsync), as its helpers: they count as certified only while started by it.
        #[arg(long)]
        helpers: bool,
        /// Certify this program (name or path) as a helper of PATH too. Repeatable.
        #[arg(long, value_name = "PROGRAM")]
        helper: Vec<String>,
        /// Certify PATH only as a helper of this certified program.
        #[arg(long, value_name = "PROGRAM", conflicts_with_all = ["helpers", "helper", "learn"])]
        helper_of: Option<PathBuf>,
        /// Add PATH as a sync tool, not certified: reading its command line in this dialect
        /// (rsync, rclone, robocopy), it may delete and overwrite backup files only as the
        /// sync rules allow, while `[sync_tools] allow = true` (docs/sync-tools.md).
        #[arg(long, value_name = "DIALECT", conflicts_with_all = ["helpers", "helper", "helper_of", "force"])]
        sync_tool: Option<imageguard_policy::sync_tools::Dialect>,
        /// The job for --learn, e.g. `-- /usr/bin/rsync -a /srv/ /mnt/backup/srv/`.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Remove a program from the certified list.
    Uncertify { path: PathBuf },
    /// List certified programs.
    Certified {
        #[arg(long)]
        json: bool,
    },
    /// List the saved backup definitions found (borgmatic, rsnapshot, Timeshift, Back In Time,
    /// restic units), where each backs up to, whether that is protected, and whether an
    /// administrator approved the definition (only approved ones let a sync tool delete).
    Definitions {
        #[command(subcommand)]
        action: Option<definitions::Action>,
        #[arg(long)]
        json: bool,
    },
    /// List events.
    Events {
        /// Keep printing new events as they are logged.
        #[arg(long, short)]
        follow: bool,
        /// Only this event id (100, 110, 200, 300, 310, 320, 330, 340, 500, 510, 520).
        #[arg(long)]
        id: Option<u32>,
        /// Only events since this time (15m, 2h, 7d, 2026-11-24, 2026-11-24T10:00:00, @UNIX).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 200)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Turn protection off on every volume.
    Off {
        /// Turn it back on automatically at the next boot.
        #[arg(long)]
        restart_on_reboot: bool,
    },
    /// Turn protection back on.
    On,
    /// Stop the service, giving every protected volume back to the host (but those a
    /// retention lock is in force on), and wait until it has ended. With the admin lock set,
    /// this, with its passphrase, is the only stop that gives volumes back: a plain SIGTERM
    /// (`systemctl stop`) leaves them closed until the service starts again.
    Stop,
    /// Print the default configuration file.
    DefaultConfig,
    /// Demonstrate imageguard on a throw-away loop-mounted ext4 volume (root only).
    Demo {
        /// Leave the demo volume's files in place for inspection.
        #[arg(long)]
        keep: bool,
    },
    /// Internal: the demo's stand-in backup program.
    #[command(hide = true)]
    DemoWriter { dir: PathBuf },
    /// Internal: the service's sentinel (aborts the guards of a stopped service).
    #[command(hide = true)]
    Sentinel {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        state_file: PathBuf,
        #[arg(long)]
        runtime_dir: PathBuf,
        #[arg(long)]
        after_ms: u64,
    },
}

use crate::control::client::ClientError;
use crate::control::protocol::{Request, Response};

/// Send a request and turn the answer into output and an exit code.
pub fn run_simple(paths: &PathArgs, req: Request) -> i32 {
    match crate::control::client::request_admin(paths, req) {
        Ok(Response::Ok { message, warnings }) => {
            for w in warnings {
                eprintln!("imageguard: {w}");
            }
            println!("{message}");
            exit::OK
        }
        Ok(Response::Error { message, code }) => fail(&message, code),
        Ok(other) => fail(&format!("unexpected answer: {other:?}"), 1),
        Err(e) => client_error(e),
    }
}

pub fn fail(message: &str, code: i32) -> i32 {
    eprintln!("imageguard: {message}");
    if code == libc::EPERM && message.starts_with("permission denied") {
        exit::PERMISSION
    } else {
        exit::FAILURE
    }
}

pub fn client_error(e: ClientError) -> i32 {
    eprintln!("imageguard: {e}");
    match e {
        ClientError::NotRunning(_) => exit::NOT_RUNNING,
        ClientError::Other(_) => exit::FAILURE,
    }
}
