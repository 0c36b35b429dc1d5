//! A throw-away protected volume: an ext4 image in a temporary directory, loop-mounted, with an
//! imageguard service whose every path (config, state, runtime, socket, journal) lives in that
//! directory. Used by `imageguard demo` and by the test suite. Dropping it stops the service,
//! unmounts everything under the directory and detaches the loop device, even after a failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use imageguard_volume::MountTable;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub exe: PathBuf,
    pub image: PathBuf,
    pub mnt: PathBuf,
    pub loop_device: Option<String>,
    service: Option<Child>,
    /// The service's own pid when a wrapper started it (the wrapper's child).
    wrapped_pid: Option<u32>,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Sandbox {
    /// Create an ext4 image of `size_mib`, attach it to a loop device and mount it at `DIR/mnt`;
    /// the sandbox's configuration file starts as the default one.
    pub fn new(exe: &Path, size_mib: u64) -> Result<Sandbox> {
        Self::new_in(&std::env::temp_dir(), exe, size_mib)
    }

    /// Like [`Sandbox::new`], with the temporary directory (and the image) under `base`.
    pub fn new_in(base: &Path, exe: &Path, size_mib: u64) -> Result<Sandbox> {
        if unsafe { libc::geteuid() } != 0 {
            bail!("this needs root (it creates a loop device and mounts file systems); run it with sudo");
        }
        let dir = tempfile::Builder::new()
            .prefix("imageguard-")
            .tempdir_in(base)
            .with_context(|| format!("creating a temporary directory in {}", base.display()))?;
        let image = dir.path().join("volume.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt)?;
        std::fs::create_dir_all(dir.path().join("state"))?;
        // The machine's own backup definitions are none of a sandbox's business: it looks for
        // them in its own folder only.
        std::fs::write(
            dir.path().join("imageguard.toml"),
            format!(
                "{}\n[definitions]\nborgmatic = [\"{1}/etc/borgmatic.d\"]\nrsnapshot = [\"{1}/etc/rsnapshot.conf\"]\ntimeshift = [\"{1}/etc/timeshift.json\"]\nsystemd_units = [\"{1}/etc/systemd\"]\npasswd = \"{1}/etc/passwd\"\n",
                crate::config::DEFAULT_TOML,
                dir.path().display()
            ),
        )?;
        std::fs::File::create(&image)?.set_len(size_mib << 20)?;
        let mut sb = Sandbox {
            dir,
            exe: exe.to_path_buf(),
            image,
            mnt,
            loop_device: None,
            service: None,
            wrapped_pid: None,
        };
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(&sb.image))
        .context("mkfs.ext4 (install e2fsprogs)")?;
        let dev = run(Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&sb.image))
        .context("losetup")?;
        sb.loop_device = Some(dev.clone());
        run(Command::new("mount").arg(&dev).arg(&sb.mnt)).context("mounting the volume")?;
        Ok(sb)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/control.sock")
    }

    /// The global options pointing imageguard at this sandbox.
    pub fn global_args(&self) -> Vec<OsString> {
        let p = self.path();
        vec![
            "--config".into(),
            p.join("imageguard.toml").into(),
            "--state-dir".into(),
            p.join("state").into(),
            "--runtime-dir".into(),
            p.join("run").into(),
            "--journal-socket".into(),
            p.join("journal.sock").into(),
        ]
    }

    /// The sandbox's configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.path().join("imageguard.toml")
    }

    /// Rewrite the configuration file with `edit` (read at service start).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) -> Result<()> {
        let text = std::fs::read_to_string(self.config_file())?;
        std::fs::write(self.config_file(), edit(text))?;
        Ok(())
    }

    /// The configuration line of a retention lock of `days` on `folder`, under `[retention]`.
    pub fn retention_line(folder: &Path, days: u32) -> String {
        format!("\"{}\" = {days}\n", folder.display())
    }

    /// Add a retention lock of `days` on `folder` to the configuration.
    pub fn add_retention_lock(&self, folder: &Path, days: u32) -> Result<()> {
        let text = std::fs::read_to_string(self.config_file())?;
        if !text.contains("[retention]\n") {
            bail!("the sandbox's configuration has no [retention] table");
        }
        let line = format!("[retention]\n{}", Self::retention_line(folder, days));
        std::fs::write(self.config_file(), text.replacen("[retention]\n", &line, 1))?;
        Ok(())
    }

    /// Add an own `[[definition]]` named `name` backing up to `destination`.
    pub fn add_definition(&self, name: &str, destination: &Path) -> Result<()> {
        self.edit_config(|text| {
            format!(
                "{text}\n[[definition]]\nname = \"{name}\"\nprogram = \"image-backup\"\ndestinations = [\"{}\"]\n",
                destination.display()
            )
        })
    }

    /// Run an imageguard command against this sandbox.
    pub fn imageguard(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.exe)
            .args(self.global_args())
            .args(args)
            .env_remove("IMAGEGUARD_SOCKET")
            .output()
            .context("running imageguard")
    }

    /// Start `imageguard service` and wait until it answers.
    pub fn start_service(&mut self) -> Result<()> {
        self.start_service_under(&[])
    }

    /// [`Sandbox::start_service`] with the service run by `wrapper` (a command and its
    /// arguments, e.g. `unshare --time --fork ...`, which must pass SIGTERM on); empty for none.
    pub fn start_service_under(&mut self, wrapper: &[&str]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("service.log"))?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        let child = cmd
            .args(self.global_args())
            .arg("service")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting imageguard service")?;
        self.service = Some(child);
        // Generous: under emulation (the VM tests and benchmarks) loading the kernel shield and
        // every command take many times longer; a service that exits fails at once.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(c) = self.service.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!("the service exited ({st}): {}", self.service_log());
                }
            }
            if self
                .imageguard(&["status"])
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                // Under a wrapper, the service is its child: signals go to it directly.
                self.wrapped_pid = match (wrapper.is_empty(), self.service.as_ref()) {
                    (false, Some(c)) => {
                        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id()))
                            .ok()
                            .and_then(|s| s.split_whitespace().next()?.parse().ok())
                    }
                    _ => None,
                };
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "the service did not answer within 120 s: {}",
            self.service_log()
        )
    }

    pub fn service_pid(&self) -> Option<u32> {
        self.wrapped_pid
            .or_else(|| self.service.as_ref().map(|c| c.id()))
    }

    pub fn service_log(&self) -> String {
        std::fs::read_to_string(self.path().join("service.log")).unwrap_or_default()
    }

    /// SIGTERM the service and wait for it (it gives the volumes back to the host).
    pub fn stop_service(&mut self) -> Result<()> {
        if let Some(mut c) = self.service.take() {
            let wrapped = self.wrapped_pid.take();
            let pid = wrapped.unwrap_or(c.id());
            if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
                let e = std::io::Error::last_os_error();
                // Refused (the kernel shield, while the admin lock is set): the service is
                // still there and stops only through its own door.
                self.service = Some(c);
                self.wrapped_pid = wrapped;
                bail!("SIGTERM to the service refused: {e}");
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    bail!("the service did not stop within 20 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Under a wrapper the service itself may outlive it briefly: it removes its
            // socket last.
            while wrapped.is_some() && self.socket().exists() {
                if Instant::now() > deadline {
                    bail!("the service did not stop within 20 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Wait up to `timeout` for the service to end by itself (`imageguard stop`); its exit
    /// status.
    pub fn wait_service(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let Some(c) = self.service.as_mut() else {
            bail!("no service was started");
        };
        loop {
            if let Some(st) = c.try_wait()? {
                self.service = None;
                self.wrapped_pid = None;
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("the service did not end within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the service (no clean-up: its guards stay mounted and dead). Where the kernel
    /// shield refuses the signal (the admin lock set), it is stopped with the passphrase the
    /// sandbox was locked with ([`Sandbox::admin_passphrase_file`]), and left running when
    /// even that fails, rather than waited for forever.
    pub fn kill_service(&mut self) {
        if let Some(pid) = self.wrapped_pid.take() {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Some(mut c) = self.service.take() {
            if c.kill().is_err() && c.try_wait().ok().flatten().is_none() {
                let _ = self.imageguard(&[
                    "--passphrase-file",
                    &self.admin_passphrase_file().to_string_lossy(),
                    "stop",
                ]);
                self.service = Some(c);
                let _ = self.wait_service(Duration::from_secs(30));
                return;
            }
            let _ = c.wait();
        }
    }

    /// Where a test that sets the admin lock on this sandbox leaves its passphrase, so that
    /// the sandbox can stop a service the kernel shield keeps from being killed.
    pub fn admin_passphrase_file(&self) -> PathBuf {
        self.path().join("admin-passphrase")
    }

    /// Unmount everything under the sandbox directory, deepest first.
    fn unmount_all(&self) {
        for _ in 0..10 {
            let Ok(table) = MountTable::read() else {
                return;
            };
            let mut mine: Vec<PathBuf> = table
                .entries
                .iter()
                .map(|e| e.mount_point.clone())
                .filter(|m| m.starts_with(self.path()))
                .collect();
            if mine.is_empty() {
                return;
            }
            mine.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
            for m in mine {
                let _ = imageguard_volume::mountapi::detach(&m);
            }
        }
    }
}

impl Sandbox {
    /// Whether a kernel shield is still pinned under the runtime directory (its bpf file
    /// system mounted there) though no service of this sandbox runs: a killed service leaves
    /// it refusing (fail closed), a device number of its volume included.
    fn shield_left_pinned(&self) -> bool {
        let pins = self.path().join("run/shield");
        MountTable::read()
            .map(|t| t.at(&pins).is_some_and(|e| e.fstype == "bpf"))
            .unwrap_or(false)
    }

    /// Stop the service, and when it leaves a kernel shield pinned behind (killed, or stopped
    /// while the admin lock was set), start it once more so that it takes the shield over and
    /// lets it go in a clean stop (with the admin passphrase when one was left for the
    /// sandbox). A retention lock in force keeps it: nothing may let go of that.
    fn stop_and_let_go(&mut self) {
        if self.stop_service().is_err() {
            self.kill_service();
        }
        if self.service.is_some() || !self.shield_left_pinned() || self.start_service().is_err() {
            return;
        }
        let passphrase = self.admin_passphrase_file();
        if passphrase.exists() {
            let _ = self.imageguard(&["--passphrase-file", &passphrase.to_string_lossy(), "stop"]);
            if self.wait_service(Duration::from_secs(30)).is_ok() {
                return;
            }
        }
        if self.stop_service().is_err() {
            self.kill_service();
        }
    }

    /// In a VM (`imageguard::vm`), a sandbox dropped by a failing test leaves its service's log
    /// and event store in the shared folder (`sandbox-<name>/`), since its own folder dies with
    /// the VM's tmpfs.
    fn keep_evidence(&self) {
        let Some(shared) = std::env::var_os(crate::vm::IN_VM) else {
            return;
        };
        if !std::thread::panicking() {
            return;
        }
        let name = self
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = Path::new(&shared).join(format!("sandbox-{name}"));
        if std::fs::create_dir_all(&to).is_err() {
            return;
        }
        for f in [
            "service.log",
            "state/events.db",
            "state/events.db-wal",
            "imageguard.toml",
        ] {
            let from = self.path().join(f);
            if from.exists() {
                let _ = std::fs::copy(&from, to.join(f.replace('/', "_")));
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.keep_evidence();
        self.stop_and_let_go();
        self.unmount_all();
        if let Some(dev) = self.loop_device.take() {
            for _ in 0..50 {
                if Command::new("losetup")
                    .args(["-d", &dev])
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
