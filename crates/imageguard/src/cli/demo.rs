//! `imageguard demo`: a throw-away "backup drive" (loop-mounted ext4) is protected, a certified
//! backup program writes backups to it, then an uncertified "ransomware" process attacks them.
//! Prints what was blocked and what was logged, checks every backup is byte-identical, cleans up.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use imageguard_eventstore::{EventDb, EventFilter};
use imageguard_identity::hashing::sha256_hex;

use super::exit;
use crate::sandbox::Sandbox;

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// A backup job's command: started the way cron or systemd would start it, with a plain
/// environment (`cargo run` adds LD_LIBRARY_PATH, which can change the code a program loads,
/// so a process started with it is not trusted as certified).
fn job(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(home) = std::env::var_os("HOME") {
        c.env("HOME", home);
    }
    c
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn ok(out: std::process::Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The demo's stand-in backup program: writes a few image files into `dir`.
pub fn writer(dir: &Path) -> i32 {
    let r = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for i in 1..=3u8 {
            let mut f = std::fs::File::create(dir.join(format!("disk-{i}.mrimg")))?;
            let block: Vec<u8> = (0..65536u32)
                .map(|b| (b as u8).wrapping_mul(i).wrapping_add(7))
                .collect();
            for _ in 0..16 {
                f.write_all(&block)?;
            }
            f.sync_all()?;
        }
        std::fs::write(dir.join("catalog.mrbak"), b"backup catalog\n")?;
        Ok(())
    })();
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("demo-writer: {e}");
            exit::FAILURE
        }
    }
}

fn hashes(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.insert(e.path(), sha256_hex(std::fs::File::open(e.path())?)?);
            }
        }
    }
    Ok(out)
}

pub fn demo(keep: bool) -> i32 {
    match run_demo(keep) {
        Ok(true) => exit::OK,
        Ok(false) => exit::FAILURE,
        Err(e) => {
            eprintln!("imageguard demo: {e:#}");
            exit::FAILURE
        }
    }
}

fn run_demo(keep: bool) -> Result<bool> {
    let exe = std::env::current_exe().context("locating the imageguard binary")?;
    step("creating a 256 MiB ext4 \"backup drive\" on a loop device");
    let mut sb = Sandbox::new(&exe, 256)?;
    if keep {
        eprintln!("    (--keep: files stay in {})", sb.path().display());
    }
    let mnt = sb.mnt.clone();
    eprintln!(
        "    {} on {}",
        sb.loop_device.as_deref().unwrap_or("?"),
        mnt.display()
    );

    step("starting imageguard service (all state inside the demo directory)");
    sb.start_service()?;
    step(&format!("protecting {}", mnt.display()));
    println!(
        "{}",
        ok(
            sb.imageguard(&["protect", &mnt.to_string_lossy()])?,
            "protect"
        )?
    );

    // A certified backup program of our own: a copy of this binary under another name.
    let writer_bin = sb.path().join("bin/imageguard-backup-writer");
    std::fs::create_dir_all(writer_bin.parent().unwrap_or(sb.path()))?;
    std::fs::copy(&exe, &writer_bin)?;
    step("certifying the backup programs");
    println!(
        "{}",
        ok(
            sb.imageguard(&["certify", &writer_bin.to_string_lossy()])?,
            "certify"
        )?
    );
    let restic = which("restic");
    if let Some(r) = &restic {
        println!(
            "{}",
            ok(
                sb.imageguard(&["certify", &r.to_string_lossy()])?,
                "certify restic"
            )?
        );
    }

    step("running certified backups onto the protected volume");
    let images = mnt.join("images");
    ok(
        job(&writer_bin).arg("demo-writer").arg(&images).output()?,
        "the backup writer",
    )?;
    println!("    image backups written to {}", images.display());
    let repo = mnt.join("restic-repo");
    if let Some(r) = &restic {
        let data = sb.path().join("source");
        std::fs::create_dir_all(&data)?;
        for i in 0..20 {
            std::fs::write(
                data.join(format!("document-{i}.txt")),
                format!("important document {i}\n").repeat(500),
            )?;
        }
        let env = [
            ("RESTIC_PASSWORD", "demo"),
            ("RESTIC_REPOSITORY", repo.to_str().unwrap_or_default()),
        ];
        ok(
            job(r)
                .arg("init")
                .envs(env)
                .env("RESTIC_CACHE_DIR", sb.path().join("cache"))
                .output()?,
            "restic init",
        )?;
        ok(
            job(r)
                .args(["backup", "--quiet"])
                .arg(&data)
                .envs(env)
                .env("RESTIC_CACHE_DIR", sb.path().join("cache"))
                .output()?,
            "restic backup",
        )?;
        println!(
            "    restic repository with one snapshot at {}",
            repo.display()
        );
    } else {
        println!("    (restic is not installed: only the built-in backup writer runs)");
    }

    let before = hashes(&mnt)?;
    let target = images.join("disk-1.mrimg");
    let t = target.to_string_lossy().to_string();
    let pack = before
        .keys()
        .find(|p| p.starts_with(repo.join("data")))
        .map(|p| p.to_string_lossy().to_string());
    let img = images.to_string_lossy().to_string();
    let mut attacks: Vec<(&str, String)> = vec![
        ("overwrite", format!("echo ENCRYPTED > {t}")),
        (
            "overwrite in place",
            format!("dd if=/dev/urandom of={t} bs=4k count=1 conv=notrunc status=none"),
        ),
        ("append", format!("echo ransom >> {t}")),
        ("truncate", format!("truncate -s 0 {t}")),
        ("rename to .locked", format!("mv {t} {t}.locked")),
        ("delete", format!("rm -f {t}")),
        ("hard link", format!("ln {t} {img}/copy")),
        (
            "encrypt and delete original",
            format!("tr a-z b-za < {t} > {t}.enc && rm -f {t}"),
        ),
        ("chmod", format!("chmod 000 {t}")),
        ("rm -rf the folder", format!("rm -rf {img}")),
        (
            "rename the folder",
            format!("mv {img} {}/gone", mnt.display()),
        ),
    ];
    if let Some(p) = &pack {
        attacks.push(("delete a restic pack", format!("rm -f {p}")));
        attacks.push((
            "rm -rf the restic repository",
            format!("rm -rf {}", repo.display()),
        ));
    }

    step("running an uncertified \"ransomware\" process (as root) against the backups");
    println!("\n{:<32} {:<10} ERROR", "ATTACK", "RESULT");
    let mut all_blocked = true;
    for (name, cmd) in &attacks {
        let out = Command::new("/bin/sh").arg("-c").arg(cmd).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").to_string();
        let blocked = !out.status.success() && err.contains("Operation not permitted");
        all_blocked &= blocked;
        println!(
            "{:<32} {:<10} {}",
            name,
            if blocked { "BLOCKED" } else { "NOT BLOCKED" },
            first
        );
    }
    let after = hashes(&mnt)?;
    let mut intact = true;
    for (p, h) in &before {
        if after.get(p) != Some(h) {
            intact = false;
            println!("CHANGED OR MISSING: {}", p.display());
        }
    }
    println!(
        "\n{} backup files checked: {}",
        before.len(),
        if intact {
            "all byte-identical"
        } else {
            "SOME CHANGED"
        }
    );

    if let Some(r) = &restic {
        step("a certified restic may still maintain its repository (forget --prune, check)");
        let env = [
            ("RESTIC_PASSWORD", "demo"),
            ("RESTIC_REPOSITORY", repo.to_str().unwrap_or_default()),
        ];
        let c = job(r)
            .args(["check"])
            .envs(env)
            .env("RESTIC_CACHE_DIR", sb.path().join("cache"))
            .output()?;
        println!(
            "    restic check: {}",
            if c.status.success() {
                "no errors"
            } else {
                "FAILED"
            }
        );
        intact &= c.status.success();
    }

    step("events logged (totals, then the latest)");
    let _ = sb.imageguard(&["status"]);
    let db = EventDb::open_read_only(&sb.path().join("state/events.db"))?;
    for (id, n) in db.counts()? {
        println!(
            "  {id} {:<40} {n}",
            imageguard_eventstore::sqlite::event_name(id)
        );
    }
    println!();
    for e in db.query(&EventFilter {
        limit: Some(12),
        ..Default::default()
    })? {
        let count = if e.count > 1 {
            format!(" (x{})", e.count)
        } else {
            String::new()
        };
        println!("  {} {:<13} {}{}", e.id, e.severity, e.message, count);
    }

    step("stopping the service: the volume is given back to the host, then removed");
    sb.stop_service()?;
    if keep {
        let dir = sb.path().to_path_buf();
        std::mem::forget(sb);
        eprintln!(
            "    kept {} (volume still mounted at {})",
            dir.display(),
            mnt.display()
        );
    }
    let success = all_blocked && intact;
    println!(
        "\ndemo {}",
        if success {
            "passed: every attack was blocked and every backup is intact"
        } else {
            "FAILED"
        }
    );
    Ok(success)
}
