//! Mount a guard over a folder with nobody certified but the given pid, and print denials.
//! Usage: guard_folder DIR [CERTIFIED_EXE]   (as root; Ctrl-C leaves the mount: umount -l DIR)

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use imageguard_guardfs::{mount_guard, CallerSource, EventSink, Gate, GuardOptions, GuardShared};
use imageguard_policy::{CallerFacts, Event, Rules, Untrusted, VolumeRef};

struct ByExe(Option<String>);
impl CallerSource for ByExe {
    fn resolve(&self, pid: u32) -> CallerFacts {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match &self.0 {
            Some(c) if *c == exe => CallerFacts::certified(pid, exe.clone(), exe),
            _ => CallerFacts::untrusted(pid, exe, Untrusted::NotCertified),
        }
    }
}

struct Print;
impl EventSink for Print {
    fn emit(&self, e: Event) {
        eprintln!("[{}] {}", e.kind.id(), e.message());
    }
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).expect("DIR"));
    let cert = std::env::args().nth(2);
    let root: OwnedFd = std::fs::File::open(&dir)?.into();
    let vol = VolumeRef {
        device: "folder".into(),
        uuid: None,
        mount_point: dir.display().to_string(),
    };
    let gate = Arc::new(Gate::new(Arc::new(ByExe(cert)), Arc::new(Print), vol));
    let shared = Arc::new(GuardShared::new(gate, Rules::with_defaults()));
    let opts = GuardOptions {
        mount_point: dir,
        threads: 4,
        passthrough: true,
        mount_attrs: 0,
        cache_ttl: std::time::Duration::from_secs(1),
    };
    let g = mount_guard(root, &opts, shared.clone(), || Ok(()))?;
    eprintln!(
        "mounted; passthrough={}",
        shared
            .passthrough
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if !g.is_running() {
            break;
        }
    }
    Ok(())
}
