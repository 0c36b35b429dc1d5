//! What the shield refused, as its programs report it (one `shield_event` per refusal, through
//! the `events` ring buffer): decoded for event 320, and read by whoever keeps the shield.

use std::os::fd::AsFd;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};

use imageguard_policy::compiled::{ClassCode, VerdictCode};
use imageguard_policy::operation::Operation;

use crate::bindings::{shield_event, shield_op, SHIELD_PATH_DEPTH};

/// The kind of change the shield refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    OpenWrite,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Create,
    SetXattr,
    RemoveXattr,
    Truncate,
    Chmod,
    Chown,
    /// Any other change of attributes (a file's times).
    SetAttr,
    /// Opening a shielded block device (or one beneath a shielded volume) for writing.
    OpenDevice,
    /// Reaching into the service (ptrace, /proc/PID/mem, fd, root, cwd, ns, process_vm_*).
    Ptrace,
    /// A signal to the service while the admin lock is set.
    Signal,
    /// Reaching the shield itself: its pins, or a descriptor for one of its programs, maps or
    /// links (`target` is the id, `signal` the kind: 1 program, 2 map, 3 link; 0 the pins).
    Undo,
    /// Mounting a protected volume again, or anything on or inside it or its guard.
    Mount,
    /// Unmounting a guard or a hidden backing, or moving it away.
    Unmount,
    /// Reaching into a certified process (as [`Refused::Ptrace`] for the service).
    PtraceCertified,
    /// A traced process executing a certified program (`path`: the program's name).
    ExecTraced,
    /// Loading a BPF program that could overrule the shield (`target`: its program type,
    /// `signal`: its expected attach type).
    BpfLoad,
    /// In the namespace the guards are mounted in: a mount moved (`mount --move`), the root
    /// pivoted, a mount with mounts beneath it unmounted (it would take a guard along), or a
    /// mount made where it would hide mounts beneath.
    MoveMount,
    /// A btrfs subvolume deleted (by name or id: which one, the hook cannot tell) on a file
    /// system holding a protected volume, folder or image file.
    SubvolumeDelete,
    /// Not a refusal: a certified process's certification ended (`signal`: why, as
    /// [`Uncertified::of`] decodes it; `path`: the variable, the home or the file's name).
    Uncertified,
    /// The policy refused an operation on a volume the kernel decides ([`Refusal::case`]
    /// says which case, and its verdict).
    Policy,
}

/// The case the kernel backend looked up for a [`Refused::Policy`] refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyCase {
    pub op: Operation,
    pub class: ClassCode,
    pub certified: bool,
    pub verdict: VerdictCode,
}

impl PolicyCase {
    fn of(e: &shield_event) -> Option<PolicyCase> {
        Some(PolicyCase {
            op: Operation::ALL
                .into_iter()
                .find(|o| u32::from(o.code()) == e.policy_op)?,
            class: ClassCode::ALL
                .into_iter()
                .find(|c| *c as u32 == e.policy_class)?,
            certified: e.certified != 0,
            verdict: VerdictCode::ALL
                .into_iter()
                .find(|v| *v as u32 == e.verdict)?,
        })
    }
}

/// Why the programs ended a process's certification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncertified {
    /// A start-up variable that changes its code (`path` names it).
    Variable,
    /// Python's user site would come from a home not certified (`path`; empty: HOME unset).
    Home,
    /// Its start-up strings could not be read whole.
    Unreadable,
    /// Executable code of a file outside its closure (`path`: the file's name).
    ForeignCode,
    /// Anonymous executable memory.
    AnonymousCode,
    /// A Python program opened a module outside its closure (`path`: its name).
    ForeignModule,
    /// It asked to be traced (PTRACE_TRACEME).
    TraceMe,
}

impl Uncertified {
    pub fn of(signal: u32) -> Option<Uncertified> {
        use crate::bindings::shield_uncertified as u;
        Some(match signal {
            u::SHIELD_UNCERTIFIED_VARIABLE => Uncertified::Variable,
            u::SHIELD_UNCERTIFIED_HOME => Uncertified::Home,
            u::SHIELD_UNCERTIFIED_UNREADABLE => Uncertified::Unreadable,
            u::SHIELD_UNCERTIFIED_FOREIGN_CODE => Uncertified::ForeignCode,
            u::SHIELD_UNCERTIFIED_ANONYMOUS_CODE => Uncertified::AnonymousCode,
            u::SHIELD_UNCERTIFIED_FOREIGN_MODULE => Uncertified::ForeignModule,
            u::SHIELD_UNCERTIFIED_TRACEME => Uncertified::TraceMe,
            _ => return None,
        })
    }

    /// Why, in words, of the thing `what` (the refusal's path).
    pub fn describe(self, what: &str) -> String {
        match self {
            Uncertified::Variable => format!("its start-up environment sets {what}"),
            Uncertified::Home if what.is_empty() => {
                "a Python program started without HOME (its user site is not certified)".into()
            }
            Uncertified::Home => format!(
                "a Python program started with HOME={what}, whose user site is not certified"
            ),
            Uncertified::Unreadable => "its start-up strings could not be read whole".into(),
            Uncertified::ForeignCode => format!("it mapped code of {what}, outside its closure"),
            Uncertified::AnonymousCode => "it mapped anonymous executable memory".into(),
            Uncertified::ForeignModule => {
                format!("it opened the module {what}, outside its closure")
            }
            Uncertified::TraceMe => "it asked to be traced".into(),
        }
    }
}

impl Refused {
    fn from_op(op: u32) -> Option<Refused> {
        Some(match op {
            shield_op::SHIELD_OP_OPEN_WRITE => Refused::OpenWrite,
            shield_op::SHIELD_OP_UNLINK => Refused::Unlink,
            shield_op::SHIELD_OP_RMDIR => Refused::Rmdir,
            shield_op::SHIELD_OP_RENAME => Refused::Rename,
            shield_op::SHIELD_OP_LINK => Refused::Link,
            shield_op::SHIELD_OP_CREATE => Refused::Create,
            shield_op::SHIELD_OP_SETXATTR => Refused::SetXattr,
            shield_op::SHIELD_OP_REMOVEXATTR => Refused::RemoveXattr,
            shield_op::SHIELD_OP_TRUNCATE => Refused::Truncate,
            shield_op::SHIELD_OP_CHMOD => Refused::Chmod,
            shield_op::SHIELD_OP_CHOWN => Refused::Chown,
            shield_op::SHIELD_OP_SETATTR => Refused::SetAttr,
            shield_op::SHIELD_OP_OPEN_DEVICE => Refused::OpenDevice,
            shield_op::SHIELD_OP_PTRACE => Refused::Ptrace,
            shield_op::SHIELD_OP_SIGNAL => Refused::Signal,
            shield_op::SHIELD_OP_UNDO => Refused::Undo,
            shield_op::SHIELD_OP_MOUNT => Refused::Mount,
            shield_op::SHIELD_OP_UNMOUNT => Refused::Unmount,
            shield_op::SHIELD_OP_PTRACE_CERTIFIED => Refused::PtraceCertified,
            shield_op::SHIELD_OP_EXEC_TRACED => Refused::ExecTraced,
            shield_op::SHIELD_OP_BPF_LOAD => Refused::BpfLoad,
            shield_op::SHIELD_OP_MOVE_MOUNT => Refused::MoveMount,
            shield_op::SHIELD_OP_SUBVOLUME_DELETE => Refused::SubvolumeDelete,
            shield_op::SHIELD_OP_UNCERTIFIED => Refused::Uncertified,
            shield_op::SHIELD_OP_POLICY => Refused::Policy,
            _ => return None,
        })
    }
}

/// One refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: Refused,
    /// The superblock device (kernel encoding) of the file system it was refused on, or the
    /// device opened for [`Refused::OpenDevice`].
    pub dev: u32,
    pub ino: u64,
    /// The thread group that tried, its real uid, and its command name.
    pub tgid: u32,
    pub uid: u32,
    pub comm: String,
    /// The entry's path from its file system's root, without the leading `/`. When its folders
    /// are nested deeper than the event carries, it starts with `…/`. For [`Refused::Ptrace`]
    /// and [`Refused::Signal`]: the command name of the process reached. For
    /// [`Refused::Uncertified`]: the variable's name or HOME's value, or `…/` and the file's name.
    pub path: String,
    /// For [`Refused::Ptrace`] and [`Refused::Signal`]: the thread group reached, and the
    /// signal.
    pub target: u32,
    pub signal: u32,
    /// For [`Refused::Policy`]: the case and its verdict.
    pub case: Option<PolicyCase>,
}

fn c_string(bytes: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Refusal {
    /// Decode one ring buffer record; `None` when it is not a whole event of a known kind.
    pub fn decode(record: &[u8]) -> Option<Refusal> {
        if record.len() < std::mem::size_of::<shield_event>() {
            return None;
        }
        // SAFETY: the record holds at least a whole `shield_event` (checked above), a plain C
        // structure of integers and byte arrays for which any bit pattern is valid; it is read
        // unaligned, as ring buffer records promise 8-byte alignment only.
        let e: shield_event =
            unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<shield_event>()) };
        let what = Refused::from_op(e.op)?;
        let case = match what {
            Refused::Policy => Some(PolicyCase::of(&e)?),
            _ => None,
        };
        let depth = (e.depth as usize).min(SHIELD_PATH_DEPTH as usize);
        let mut names: Vec<String> = e.names[..depth].iter().map(|n| c_string(n)).collect();
        names.reverse();
        let mut path = names.join("/");
        if e.complete == 0 {
            path = format!("…/{path}");
        }
        Some(Refusal {
            what,
            dev: e.dev,
            ino: e.ino,
            tgid: e.tgid,
            uid: e.uid,
            comm: c_string(&e.comm),
            path,
            target: e.target,
            signal: e.signal,
            case,
        })
    }
}

/// The shield's refusals as they come.
pub struct Refusals {
    ring: RingBuf<MapData>,
}

impl Refusals {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Refusals {
        Refusals { ring }
    }

    /// Wait up to `timeout` for refusals and return those there are (none when the time ran
    /// out).
    pub fn wait(&mut self, timeout: Duration) -> std::io::Result<Vec<Refusal>> {
        let mut out = self.drain();
        if !out.is_empty() {
            return Ok(out);
        }
        let fd = self.ring.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as i64,
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        out = self.drain();
        Ok(out)
    }

    fn drain(&mut self) -> Vec<Refusal> {
        let mut out = vec![];
        while let Some(item) = self.ring.next() {
            if let Some(r) = Refusal::decode(&item) {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(op: u32, names: &[&str], complete: bool) -> Vec<u8> {
        // SAFETY: all-zero is a valid shield_event (integers and byte arrays).
        let mut e: shield_event = unsafe { std::mem::zeroed() };
        e.op = op;
        e.tgid = 4242;
        e.uid = 1000;
        e.dev = (7 << 20) | 3;
        e.ino = 12;
        e.depth = names.len() as u32;
        e.complete = complete as u32;
        for (i, c) in b"rm".iter().enumerate() {
            e.comm[i] = *c as std::os::raw::c_char;
        }
        for (slot, n) in e.names.iter_mut().zip(names) {
            for (i, c) in n.bytes().enumerate() {
                slot[i] = c as std::os::raw::c_char;
            }
        }
        let size = std::mem::size_of::<shield_event>();
        // SAFETY: reading the bytes of a plain C structure.
        unsafe { std::slice::from_raw_parts((&e as *const shield_event).cast::<u8>(), size) }
            .to_vec()
    }

    #[test]
    fn a_refusal_names_its_path_from_the_root() {
        let r = Refusal::decode(&event(
            shield_op::SHIELD_OP_UNLINK,
            &["b.img", "host", "backups"],
            true,
        ))
        .unwrap();
        assert_eq!(r.what, Refused::Unlink);
        assert_eq!(r.path, "backups/host/b.img");
        assert_eq!((r.tgid, r.uid, r.comm.as_str()), (4242, 1000, "rm"));
        let deep =
            Refusal::decode(&event(shield_op::SHIELD_OP_RENAME, &["x", "y"], false)).unwrap();
        assert_eq!(deep.path, "…/y/x");
    }

    #[test]
    fn a_policy_refusal_carries_its_case() {
        let mut bytes = event(shield_op::SHIELD_OP_POLICY, &["a.mrimg"], true);
        let size = std::mem::size_of::<shield_event>();
        // SAFETY: `bytes` holds a whole shield_event (made by `event`), read unaligned.
        let mut e: shield_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        e.policy_op = u32::from(Operation::Delete.code());
        e.policy_class = ClassCode::ResticKeyMaterial as u32;
        e.certified = 1;
        e.verdict = VerdictCode::HeldKeyMaterial as u32;
        // SAFETY: reading the bytes of a plain C structure.
        bytes =
            unsafe { std::slice::from_raw_parts((&e as *const shield_event).cast::<u8>(), size) }
                .to_vec();
        let r = Refusal::decode(&bytes).unwrap();
        assert_eq!(r.what, Refused::Policy);
        assert_eq!(
            r.case,
            Some(PolicyCase {
                op: Operation::Delete,
                class: ClassCode::ResticKeyMaterial,
                certified: true,
                verdict: VerdictCode::HeldKeyMaterial,
            })
        );
        // A case with codes this build does not know is no refusal it could describe.
        e.policy_class = 99;
        // SAFETY: as above.
        bytes =
            unsafe { std::slice::from_raw_parts((&e as *const shield_event).cast::<u8>(), size) }
                .to_vec();
        assert_eq!(Refusal::decode(&bytes), None);
        // Other refusals carry none.
        let other = Refusal::decode(&event(shield_op::SHIELD_OP_UNLINK, &["x"], true)).unwrap();
        assert_eq!(other.case, None);
    }

    #[test]
    fn short_records_and_unknown_kinds_are_not_refusals() {
        assert_eq!(Refusal::decode(&[0u8; 16]), None);
        assert_eq!(Refusal::decode(&event(99, &["x"], true)), None);
    }
}
