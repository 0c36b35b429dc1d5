//! File servers for the network tests, each confined to its own temporary folder and stopped
//! when dropped: a Samba server (Debian's `smbd`, on 127.0.0.1:4450, guests mapped to root) and
//! an OpenSSH server (on 127.0.0.1, key-only root login, internal sftp). sshd needs its
//! privilege-separation folder `/run/sshd`; it runs in a mount namespace of its own with a
//! tmpfs on `/run`, so nothing outside the test's folder is touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Wait until something listens on 127.0.0.1:`port`.
fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Samba {
    child: Child,
    pub port: u16,
}

impl Samba {
    /// Share `path` as `//127.0.0.1/backups` (port [`Samba::port`]), writable by guests as root.
    pub fn share(dir: &Path, path: &Path) -> Samba {
        let port = free_port();
        for d in ["lock", "state", "cache", "pid", "private", "ncalrpc"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let d = dir.display();
        let conf = dir.join("smb.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\n  server role = standalone server\n  interfaces = 127.0.0.1\n  \
                 bind interfaces only = yes\n  smb ports = {port}\n  disable netbios = yes\n  \
                 lock directory = {d}/lock\n  state directory = {d}/state\n  \
                 cache directory = {d}/cache\n  pid directory = {d}/pid\n  \
                 private dir = {d}/private\n  ncalrpc dir = {d}/ncalrpc\n  \
                 log file = {d}/log.%m\n  map to guest = Bad User\n  guest account = root\n  \
                 load printers = no\n  printing = bsd\n  printcap name = /dev/null\n  \
                 disable spoolss = yes\n[backups]\n  path = {}\n  read only = no\n  \
                 guest ok = yes\n  guest only = yes\n",
                path.display()
            ),
        )
        .unwrap();
        let log = dir.join("smbd.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("smbd")
            .args(["--foreground", "--no-process-group", "--debug-stdout"])
            .arg(format!("--configfile={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("smbd (install samba)");
        wait_listening(port, "smbd", &log);
        Samba { child, port }
    }

    /// Run smbclient commands (`-c`) against the share as a guest.
    pub fn client(&self, commands: &str, cwd: &Path) -> std::process::Output {
        Command::new("smbclient")
            .arg("//127.0.0.1/backups")
            .args(["-p", &self.port.to_string(), "-N", "-c", commands])
            .current_dir(cwd)
            .output()
            .expect("smbclient (install smbclient)")
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Ssh {
    child: Child,
    pub port: u16,
    pub key: PathBuf,
}

impl Ssh {
    /// Start sshd for root with a fresh key pair in `dir`.
    pub fn start(dir: &Path) -> Ssh {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let key = dir.join("key");
        for k in [dir.join("hostkey"), key.clone()] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&k)
                .output()
                .expect("ssh-keygen (install openssh-client)");
            assert!(o.status.success(), "ssh-keygen");
        }
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
        let d = dir.display();
        let conf = dir.join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n"
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs none /run && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {}",
                conf.display()
            ))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("sshd (install openssh-server)");
        wait_listening(port, "sshd", &log);
        Ssh { child, port, key }
    }

    /// The ssh command line rsync's `-e` and sshfs use.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.key.display()
        )
    }

    /// Mount `remote` (a folder of this machine, reached over ssh) at `at` with sshfs.
    pub fn sshfs(&self, remote: &Path, at: &Path) -> SshfsMount {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("sshfs")
            .arg(format!("root@127.0.0.1:{}", remote.display()))
            .arg(at)
            .args(["-p", &self.port.to_string(), "-o"])
            .arg(format!(
                "IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null",
                self.key.display()
            ))
            .output()
            .expect("sshfs (install sshfs)");
        assert!(
            o.status.success(),
            "sshfs: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SshfsMount(at.to_path_buf())
    }
}

/// The processes descending from `pid` (children first found, then theirs).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(parent) && !found.contains(&p) {
                found.push(p);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Ssh {
    fn drop(&mut self) {
        // unshare execs sshd: the child is sshd itself; its sessions are its descendants.
        for p in descendants(self.child.id()) {
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An sshfs mount, unmounted when dropped.
pub struct SshfsMount(pub PathBuf);

impl Drop for SshfsMount {
    fn drop(&mut self) {
        for _ in 0..3 {
            let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        }
    }
}
