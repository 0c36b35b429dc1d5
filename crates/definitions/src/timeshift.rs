//! Timeshift: `/etc/timeshift/timeshift.json`. The destination is the file system whose UUID is
//! `backup_device_uuid`, wherever it is mounted: rsync snapshots live in `timeshift/` at its
//! root, btrfs ones in `timeshift-btrfs/`. What it backs up is the system (`/`).

use std::path::{Path, PathBuf};

use crate::{Definition, Destination, Parsed, Program};

/// Parse `text`, the contents of `file`.
pub fn parse(file: &Path, text: &str) -> Parsed {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Parsed::problem(file, Some(e.line()), format!("not valid JSON: {e}")),
    };
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let uuid = field("backup_device_uuid");
    if uuid.is_empty() {
        // Timeshift not set up yet (the shipped default): nothing to protect.
        return Parsed::default();
    }
    let folder = if field("btrfs_mode") == "true" {
        "timeshift-btrfs"
    } else {
        "timeshift"
    };
    Parsed {
        definitions: vec![Definition {
            program: Program::Timeshift,
            file: file.to_path_buf(),
            name: "timeshift".into(),
            destinations: vec![Destination::Device {
                uuid,
                folder: PathBuf::from(folder),
            }],
            sources: vec![PathBuf::from("/")],
            writer: None,
        }],
        problems: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's timeshift package ships this as /etc/timeshift/default.json (extracted from
    /// the real .deb into the fixtures, without installing its desktop dependencies).
    const SHIPPED_DEFAULT: &str = include_str!("../fixtures/timeshift-default.json");

    #[test]
    fn shipped_default_then_configured() {
        let f = Path::new("/etc/timeshift/timeshift.json");
        assert_eq!(parse(f, SHIPPED_DEFAULT), Parsed::default());
        let set = SHIPPED_DEFAULT.replace(
            "\"backup_device_uuid\" : \"\"",
            "\"backup_device_uuid\" : \"0b8d5a2e-1c4f-4a57-9e2b-55a1f0c3d7e1\"",
        );
        let p = parse(f, &set);
        assert_eq!(
            p.definitions[0].destinations,
            vec![Destination::Device {
                uuid: "0b8d5a2e-1c4f-4a57-9e2b-55a1f0c3d7e1".into(),
                folder: "timeshift".into()
            }]
        );
        let btrfs = set.replace("\"btrfs_mode\" : \"false\"", "\"btrfs_mode\" : \"true\"");
        assert!(matches!(
            &parse(f, &btrfs).definitions[0].destinations[0],
            Destination::Device { folder, .. } if folder == Path::new("timeshift-btrfs")
        ));
        let broken = parse(f, "{\n \"backup_device_uuid\": \n");
        assert_eq!(broken.problems[0].line, Some(3));
    }
}
