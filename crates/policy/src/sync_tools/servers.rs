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
}
