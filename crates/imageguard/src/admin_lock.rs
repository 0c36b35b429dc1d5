//! The admin lock: an optional passphrase (its argon2id hash in the state folder) that the
//! commands able to weaken protection need (`off`, `unprotect`, `eject`, `maintenance`,
//! `certify`, `uncertify`, settings changes, and changing the lock itself), and a MAC (HMAC-
//! SHA-256, keyed from the passphrase by argon2id) on the files those commands change: the
//! configuration, the certified list and the service's state. A file changed by hand while the
//! lock is set is refused at load: it is moved aside and the last good copy (kept at every
//! sealed write) takes its place.
//!
//! What it does not stop: root who reads the lock file has the MAC key and can re-seal a file,
//! or replace the lock itself with the service stopped (SECURITY.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Marks the control socket's answer to a command that needs the passphrase (the command line
/// then asks for it on a terminal).
pub const NEEDS_PASSPHRASE: &str = "the admin lock is set: this needs its passphrase";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminLock {
    /// argon2id PHC string of the passphrase.
    hash: String,
    /// The MAC key (hex), derived from the passphrase with its own salt.
    mac_key: String,
}

/// What a sealed file came to at load.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// As sealed (or never sealed yet and absent).
    Intact,
    /// Changed by hand: moved to `aside`; the last good copy restored (if there was one).
    Refused { aside: PathBuf, restored: bool },
}

fn sidecar(path: &Path, ext: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

/// `N` bytes from the kernel's random source.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    let mut filled = 0;
    while filled < N {
        filled += rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty())
            .context("reading random bytes")?;
    }
    Ok(b)
}

impl AdminLock {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("admin-lock.json")
    }

    /// The lock, if one is set.
    pub fn load(state_dir: &Path) -> Result<Option<AdminLock>> {
        let f = Self::file(state_dir);
        match std::fs::read(&f) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("{}: invalid", f.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", f.display())),
        }
    }

    /// A new lock for `passphrase`.
    pub fn new(passphrase: &str) -> Result<AdminLock> {
        if passphrase.chars().count() < 8 {
            bail!("the passphrase must be at least 8 characters long");
        }
        let argon = Argon2::default();
        let salt =
            SaltString::encode_b64(&random::<16>()?).map_err(|e| anyhow::anyhow!("a salt: {e}"))?;
        let hash = argon
            .hash_password(passphrase.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing the passphrase: {e}"))?
            .to_string();
        let mac_salt = random::<16>()?;
        let mut key = [0u8; 32];
        argon
            .hash_password_into(passphrase.as_bytes(), &mac_salt, &mut key)
            .map_err(|e| anyhow::anyhow!("deriving the MAC key: {e}"))?;
        Ok(AdminLock {
            hash,
            mac_key: hex::encode(key),
        })
    }

    /// Save it (owner-only).
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = Self::file(state_dir);
        let tmp = f.with_extension("json.new");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::io::Write::write_all(&mut out, &serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &f).with_context(|| format!("writing {}", f.display()))
    }

    /// Whether `passphrase` is the lock's.
    pub fn check(&self, passphrase: &str) -> bool {
        PasswordHash::new(&self.hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(passphrase.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    fn mac(&self, bytes: &[u8]) -> String {
        let key = hex::decode(&self.mac_key).unwrap_or_default();
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key");
        m.update(bytes);
        hex::encode(m.finalize().into_bytes())
    }

    /// Seal the file at `path` as it is now: its MAC, and a copy as the last good one.
    pub fn seal(&self, path: &Path) -> Result<()> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let good = sidecar(path, ".good");
        std::fs::write(&good, &bytes).with_context(|| format!("writing {}", good.display()))?;
        let mac = sidecar(path, ".mac");
        std::fs::write(&mac, self.mac(&bytes)).with_context(|| format!("writing {}", mac.display()))
    }

    /// Check the file at `path` against its seal (at load, before it is read).
    pub fn check_file(&self, path: &Path) -> Result<Checked> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let sealed = std::fs::read_to_string(sidecar(path, ".mac")).ok();
        let intact = match (&bytes, &sealed) {
            (Some(b), Some(m)) => self.mac(b) == m.trim(),
            // Never sealed and not there: nothing to check.
            (None, None) => true,
            _ => false,
        };
        if intact {
            return Ok(Checked::Intact);
        }
        let aside = sidecar(
            path,
            &format!(".refused-{}", crate::timefmt::now_ns() / 1_000_000_000),
        );
        if bytes.is_some() {
            std::fs::rename(path, &aside)
                .with_context(|| format!("moving {} aside", path.display()))?;
        }
        let good = sidecar(path, ".good");
        let restored = match std::fs::copy(&good, path) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).with_context(|| format!("restoring {}", good.display())),
        };
        Ok(Checked::Refused { aside, restored })
    }
}

/// For a command that changes a sealed file without the service (it is not running): when the
/// lock is set, the passphrase (from `passphrase_file`, else asked on the terminal) must be
/// its own; the lock is returned to seal what the command writes.
pub fn offline(state_dir: &Path, passphrase_file: Option<&Path>) -> Result<Option<AdminLock>> {
    let Some(lock) = AdminLock::load(state_dir)? else {
        return Ok(None);
    };
    let passphrase = match passphrase_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the passphrase from {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            rpassword::prompt_password("imageguard admin passphrase: ")
                .context("reading the passphrase")?
        }
        None => bail!("{NEEDS_PASSPHRASE} (--passphrase-file)"),
    };
    if !lock.check(&passphrase) {
        bail!("the admin lock's passphrase is wrong");
    }
    Ok(Some(lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_and_the_seal() {
        let d = tempfile::tempdir().unwrap();
        assert!(AdminLock::new("short").is_err());
        let lock = AdminLock::new("correct horse battery").unwrap();
        lock.save(d.path()).unwrap();
        let lock = AdminLock::load(d.path()).unwrap().unwrap();
        assert!(lock.check("correct horse battery"));
        assert!(!lock.check("wrong horse battery"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(AdminLock::file(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let f = d.path().join("certified.json");
        std::fs::write(&f, b"[good]").unwrap();
        lock.seal(&f).unwrap();
        assert_eq!(lock.check_file(&f).unwrap(), Checked::Intact);
        std::fs::write(&f, b"[good, evil]").unwrap();
        match lock.check_file(&f).unwrap() {
            Checked::Refused { aside, restored } => {
                assert!(restored);
                assert_eq!(std::fs::read(&aside).unwrap(), b"[good, evil]");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&f).unwrap(), b"[good]");
        assert_eq!(lock.check_file(&f).unwrap(), Checked::Intact);
        // Another lock's seal does not pass.
        let other = AdminLock::new("another passphrase").unwrap();
        assert!(matches!(
            other.check_file(&f).unwrap(),
            Checked::Refused { .. }
        ));
    }
}
