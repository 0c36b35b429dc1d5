//! File servers: programs that act on this machine's files for another machine (Samba's
//! `smbd`, the kernel's `ksmbd`, OpenSSH's `sftp-server`, NFS's `nfsd`). The reference: "In the
//! case of a network share, the remote computer is opening the files and will block all delete
//! operations." Such a program is never a sync tool, and its denials say whose request it was.

/// Executable names (the last path component) of file servers.
pub const FILE_SERVERS: &[&str] = &["smbd", "ksmbd", "sftp-server", "nfsd", "rpc.nfsd"];

/// The file server `exe` (a path) is, if it is one.
pub fn file_server(exe: &str) -> Option<&'static str> {
    let name = exe
        .strip_suffix(" (deleted)")
        .unwrap_or(exe)
        .rsplit('/')
        .next()
        .unwrap_or(exe);
    FILE_SERVERS.iter().copied().find(|s| *s == name)
}

/// Whether the program at `exe` (its resolved path) may be added as a sync tool of `dialect`:
/// never a file server, which acts for another machine (and every delete over the network is
/// blocked). The refusal's reason when not.
pub fn may_be_sync_tool(exe: &str, dialect: super::Dialect) -> Result<(), String> {
    match file_server(exe) {
        Some(server) => Err(format!(
            "a file server ({server}): it acts for other machines, whose deletes are always \
             blocked; it cannot be a sync tool ({dialect} dialect)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_file_name() {
        assert_eq!(file_server("/usr/sbin/smbd"), Some("smbd"));
        assert_eq!(
            file_server("/usr/lib/openssh/sftp-server"),
            Some("sftp-server")
        );
        assert_eq!(file_server("/usr/sbin/smbd (deleted)"), Some("smbd"));
        assert_eq!(file_server("/usr/bin/rsync"), None);
        assert_eq!(file_server("/usr/bin/smbdx"), None);
    }

    #[test]
    fn a_file_server_is_never_a_sync_tool() {
        use crate::sync_tools::Dialect;
        for (exe, ok) in [
            ("/usr/sbin/smbd", false),
            ("/usr/lib/openssh/sftp-server", false),
            ("/usr/bin/rsync", true),
            ("/usr/bin/rclone", true),
        ] {
            assert_eq!(may_be_sync_tool(exe, Dialect::Rsync).is_ok(), ok, "{exe}");
        }
    }
}
